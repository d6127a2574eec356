#!/usr/bin/env python3
"""How a classifier's windows fall at several --min-prob thresholds.

    python3 scripts/classify_unknown_table.py [--truth CLASS] TSV [[--truth CLASS] TSV ...]

Each TSV is the output of `mamba-dna classify predict --window W` (columns
name, start, end, predicted, p_<class>...). For every file and every
threshold P, it prints the share of windows labelled each class (the highest
probability at least P) and `unknown` (below P), as `classify predict
--min-prob P` would label them. With --truth CLASS before a file (held-out
data of a known class), it also prints the share correct: a threshold is
worth what it keeps of those and what it turns to unknown of genomes of no
class. Markdown on stdout. Standard library only.
"""
import csv
import sys

THRESHOLDS = (0.0, 0.5, 0.7, 0.9, 0.99)


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    head = rows[0]
    classes = [h[2:] for h in head if h.startswith("p_")]
    first = head.index("p_" + classes[0])
    out = []
    for r in rows[1:]:
        p = [float(x) for x in r[first:first + len(classes)]]
        out.append(p)
    return classes, out


def main(argv):
    files, truth = [], None
    it = iter(argv)
    for a in it:
        if a == "--truth":
            truth = next(it)
            continue
        files.append((a, truth))
        truth = None
    if not files:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    classes = None
    rows_out = []
    for path, tr in files:
        cls, probs = read(path)
        classes = classes or cls
        if cls != classes:
            print(f"\n{path}: classes {cls} differ from {classes}", file=sys.stderr)
            return 1
        n = len(probs)
        for P in THRESHOLDS:
            counts = {c: 0 for c in cls}
            unknown = 0
            for p in probs:
                m = max(p)
                if m < P:
                    unknown += 1
                else:
                    counts[cls[p.index(m)]] += 1
            share = [f"{counts[c] / n:.3f}" for c in cls]
            correct = f"{counts[tr] / n:.3f}" if tr else ""
            rows_out.append((path.split("/")[-1], n, P, share, unknown / n, tr or "", correct))
    print("| file | windows | P | " + " | ".join(classes) + " | unknown | truth | correct |")
    print("|---|---|---|" + "---|" * len(classes) + "---|---|---|")
    for name, n, P, share, unk, tr, corr in rows_out:
        print(f"| {name} | {n} | {P:g} | " + " | ".join(share) + f" | {unk:.3f} | {tr} | {corr} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
