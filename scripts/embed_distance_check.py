#!/usr/bin/env python3
"""Would a distance from the classes' data tell "none of these"? An offline check.

    python3 scripts/embed_distance_check.py --train CLASS=TSV[,TSV...] ... --test NAME=TSV ...

The TSVs are `mamba-dna embed --window W` outputs (name, start, end, dim0..).
From the --train windows: each class's centroid, each dimension's spread over
all of them (the distance is in those units), and each class's radius, the
95th percentile of its own windows' distances to its centroid. For each
--test file: the median distance of its windows to their nearest centroid,
the share within that class's radius (what a "distance" unknown rule would
keep), and the share nearest each class. Markdown on stdout; standard
library only.
"""
import csv
import math
import statistics
import sys


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return [[float(x) for x in r[3:]] for r in rows[1:]]


def main(argv):
    train, tests = {}, []
    it = iter(argv)
    for a in it:
        if a in ("--train", "--test"):
            name, _, files = next(it).partition("=")
            if a == "--train":
                train[name] = [row for f in files.split(",") for row in load(f)]
            else:
                tests.append((name, load(files)))
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    if not train or not tests:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    allrows = [r for rows in train.values() for r in rows]
    d = len(allrows[0])
    mu = [sum(r[j] for r in allrows) / len(allrows) for j in range(d)]
    sd = [math.sqrt(sum((r[j] - mu[j]) ** 2 for r in allrows) / len(allrows)) or 1.0 for j in range(d)]
    cent = {c: [sum(r[j] for r in rows) / len(rows) for j in range(d)] for c, rows in train.items()}

    def dist(r, c):
        return math.sqrt(sum(((r[j] - cent[c][j]) / sd[j]) ** 2 for j in range(d)))

    rad = {}
    for c, rows in train.items():
        ds = sorted(dist(r, c) for r in rows)
        rad[c] = ds[min(len(ds) - 1, int(0.95 * len(ds)))]
    classes = list(train)
    print("radius (95th percentile of a class's own training windows): "
          + ", ".join(f"{c} {rad[c]:.2f}" for c in classes) + "\n")
    print("| file | windows | median distance | within the nearest class's radius | "
          + " | ".join(f"nearest {c}" for c in classes) + " |")
    print("|---|---|---|---|" + "---|" * len(classes))
    for name, rows in tests:
        near = [min(classes, key=lambda c: dist(r, c)) for r in rows]
        dn = [dist(r, c) for r, c in zip(rows, near)]
        inside = sum(1 for c, x in zip(near, dn) if x <= rad[c]) / len(rows)
        shares = " | ".join(f"{near.count(c) / len(rows):.3f}" for c in classes)
        print(f"| {name} | {len(rows)} | {statistics.median(dn):.2f} | {inside:.3f} | {shares} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
