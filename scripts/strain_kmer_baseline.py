#!/usr/bin/env python3
"""The k-mer baseline of the strain benchmark (data/genomes/make_strains.sh).

Which of a species' 5 strains a window of W bases comes from, by the nearest
centroid of k-mer frequencies: each strain's profile is the frequency of
every k-mer (both strands counted) over its training part; a held-out
window goes to the strain whose profile has the highest cosine similarity
with the window's own. Windows come only from the held-out parts: per strain
min(64, max(4, (H - W) // W + 1)) windows, evenly spaced over its held-out
block of H bases (so at W = 2^20 four windows overlapping, shifted 17 kb).
Prints a markdown table: species, W, windows, accuracy (chance 0.2).

With --shared, the rule is exact matching instead: a window goes to the
strain whose training part holds the most of the window's canonical k-mers
(default k 31 there; ties go to none, counted wrong). First a table of the
share of each held-out block's k-mers found in each strain's training part:
what any model could at best recall of a region it was never trained on.

    python3 scripts/strain_kmer_baseline.py [STRAINS_DIR] [--k K] [--shared]

STRAINS_DIR defaults to data/genomes/out/strains; K to 6 (31 with --shared).
Needs NumPy.
"""
import argparse
import gzip
import os
import sys

import numpy as np

CODE = np.full(256, -1, np.int8)
for i, b in enumerate(b"ACGT"):
    CODE[b] = i
    CODE[b + 32] = i  # lower case


def read_fasta(path):
    with gzip.open(path, "rb") as f:
        seq = b"".join(line.strip() for line in f if not line.startswith(b">"))
    return CODE[np.frombuffer(seq, np.uint8)]


def kmer_codes(s, k):
    """Per position i, the index of the k-mer at i and of its reverse
    complement (-1 where the k-mer holds a base other than A, C, G, T)."""
    n = len(s) - k + 1
    fwd = np.zeros(n, np.int64)
    rev = np.zeros(n, np.int64)
    bad = np.zeros(n, bool)
    for j in range(k):
        fwd = fwd * 4 + np.maximum(s[j:j + n], 0)
        rev = rev * 4 + (3 - np.maximum(s[k - 1 - j:k - 1 - j + n], 0))
        bad |= s[j:j + n] < 0
    fwd[bad] = -1
    rev[bad] = -1
    return fwd, rev


def profile(fwd, rev, k):
    c = np.bincount(fwd[fwd >= 0], minlength=4 ** k) + np.bincount(rev[rev >= 0], minlength=4 ** k)
    c = c.astype(np.float64)
    return c / max(np.linalg.norm(c), 1e-300)


def canonical(s, k):
    fwd, rev = kmer_codes(s, k)
    c = np.minimum(fwd, rev)
    return c[fwd >= 0]


def shared(a, rows):
    """The exact-matching rule (--shared): see the module's text."""
    k = a.k
    for sp in dict.fromkeys(r[0] for r in rows):
        strains = [r[1] for r in rows if r[0] == sp and r[2] == "train"]
        files = [{r[2]: r[3] for r in rows if r[0] == sp and r[1] == st} for st in strains]
        train = [np.unique(canonical(read_fasta(os.path.join(a.dir, f["train"])), k)) for f in files]
        held = [canonical(read_fasta(os.path.join(a.dir, f["heldout"])), k) for f in files]
        # member[i][j]: which of held-out block i's k-mers strain j's training part holds
        member = [np.stack([np.isin(h, t) for t in train]) for h in held]
        print("%s: share of a held-out block's %d-mers in each strain's training part" % (sp, k))
        print("| held-out \\ training | " + " | ".join(strains) + " |")
        print("|---|" + "---|" * len(strains))
        for i, st in enumerate(strains):
            print("| %s | " % st + " | ".join("%.4f" % m.mean() for m in member[i]) + " |")
        print()
        print("| species | W | windows | accuracy (most shared %d-mers) |" % k)
        print("|---|---|---|---|")
        for e in (10, 12, 14, 16, 18, 20):
            W = 1 << e
            right = total = 0
            for truth, m in enumerate(member):
                H = m.shape[1] + k - 1
                if H < W:
                    continue
                count = min(64, max(4, (H - W) // W + 1))
                for s0 in np.linspace(0, H - W, count).astype(np.int64):
                    hits = m[:, s0:s0 + W - k + 1].sum(axis=1)
                    best = np.flatnonzero(hits == hits.max())
                    right += int(len(best) == 1 and best[0] == truth)
                    total += 1
            print("| %s | 2^%d | %d | %.3f |" % (sp, e, total, right / total if total else float("nan")))
            sys.stdout.flush()
        print()
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", nargs="?", default="data/genomes/out/strains")
    ap.add_argument("--k", type=int, default=None)
    ap.add_argument("--shared", action="store_true", help="exact matching of canonical k-mers")
    a = ap.parse_args()
    if a.k is None:
        a.k = 31 if a.shared else 6
    if not 1 <= a.k <= 31:
        ap.error("--k must be 1..31")
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(a.dir, "strains.tsv"))][1:]
    if a.shared:
        return shared(a, rows)
    print("| species | W | windows | accuracy |")
    print("|---|---|---|---|")
    for sp in dict.fromkeys(r[0] for r in rows):
        strains = [r[1] for r in rows if r[0] == sp and r[2] == "train"]
        cent = []
        held = []
        for st in strains:
            f = {r[2]: r[3] for r in rows if r[0] == sp and r[1] == st}
            cent.append(profile(*kmer_codes(read_fasta(os.path.join(a.dir, f["train"])), a.k), a.k))
            held.append(kmer_codes(read_fasta(os.path.join(a.dir, f["heldout"])), a.k))
        cent = np.stack(cent)
        for e in (10, 12, 14, 16, 18, 20):
            W = 1 << e
            right = total = 0
            for truth, (fwd, rev) in enumerate(held):
                H = len(fwd) + a.k - 1
                if H < W:
                    continue
                count = min(64, max(4, (H - W) // W + 1))
                for s0 in np.linspace(0, H - W, count).astype(np.int64):
                    n = W - a.k + 1
                    p = profile(fwd[s0:s0 + n], rev[s0:s0 + n], a.k)
                    right += int(np.argmax(cent @ p) == truth)
                    total += 1
            print("| %s | 2^%d | %d | %.3f |" % (sp, e, total, right / total if total else float("nan")))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
