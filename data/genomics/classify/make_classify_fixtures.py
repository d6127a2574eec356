#!/usr/bin/env python3
"""Writes the fixtures of tests/test_dna_classify.c into this folder: three
synthetic "species" whose genomes are drawn from three order-2 Markov chains
of different base composition (GC 0.25, 0.50 and 0.75, each with transition
probabilities of its own), so that a tiny classifier separates windows of a
few hundred bases.

  <sp>_train.fa     2 records, <sp>_t1 (4000 bp) and <sp>_t2 (3000 bp): training
  <sp>_heldout.fa   4 records <sp>_h1..h4 of 700 bp, from a stream of their
                    own: the held-out "strain"
  regions.tsv       region<TAB>label over the *_train.fa records (a header,
                    a comment, whole records and 1-based inclusive ranges)
  val_regions.tsv   the held-out records as regions, for --val-tsv
  bad_outside.tsv   a region past the end of its record (line 3)
  bad_chrom.tsv     a region on a record no file has (line 2)
  bad_syntax.tsv    a region that does not parse (line 2)
  bad_short.tsv     a region of 50 bases (shorter than the tests' --seq-len)

Deterministic: the bases come from splitmix64 with fixed seeds (written out
below, not Python's generator), so a rerun rewrites the same bytes.

  python3 data/genomics/classify/make_classify_fixtures.py
"""
import os

M = (1 << 64) - 1


class Rng:
    """splitmix64, as in apps/genomics/dna_sample.c."""

    def __init__(self, seed):
        self.s = seed & M

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)

    def uniform(self):
        return (self.next() >> 11) / float(1 << 53)


def chain(gc, seed):
    """Order-2 transition probabilities: the composition (A, C, G, T) for
    this GC content, times a jitter of 0.3..1.7 per context and base."""
    r = Rng(seed)
    comp = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    probs = []
    for _ in range(16):
        w = [comp[b] * (0.3 + 1.4 * r.uniform()) for b in range(4)]
        s = sum(w)
        probs.append([x / s for x in w])
    return probs


def draw(probs, r, n):
    ctx, out = 0, []
    for _ in range(n):
        u, acc, b = r.uniform(), 0.0, 3
        for i in range(4):
            acc += probs[ctx][i]
            if u < acc:
                b = i
                break
        out.append("ACGT"[b])
        ctx = ((ctx << 2) | b) & 15
    return "".join(out)


def write_fasta(path, recs):
    with open(path, "w") as f:
        for name, seq in recs:
            f.write(">%s\n" % name)
            for i in range(0, len(seq), 70):
                f.write(seq[i:i + 70] + "\n")


here = os.path.dirname(os.path.abspath(__file__))
species = [("alpha", 0.25, 11), ("beta", 0.50, 22), ("gamma", 0.75, 33)]
for name, gc, seed in species:
    p = chain(gc, seed)
    train = Rng(seed * 1000 + 1)
    held = Rng(seed * 1000 + 2)
    write_fasta(os.path.join(here, name + "_train.fa"),
                [(name + "_t1", draw(p, train, 4000)), (name + "_t2", draw(p, train, 3000))])
    write_fasta(os.path.join(here, name + "_heldout.fa"),
                [("%s_h%d" % (name, k), draw(p, held, 700)) for k in range(1, 5)])


def write(fname, text):
    with open(os.path.join(here, fname), "w") as f:
        f.write(text)


write("regions.tsv",
      "region\tlabel\n"
      "# training regions of the three species (1-based, inclusive)\n"
      "alpha_t1:1-2500\talpha\n"
      "beta_t1:501-3500\tbeta\n"
      "gamma_t1\tgamma\n"
      "alpha_t2\talpha\n"
      "beta_t2:1-3000\tbeta\n"
      "gamma_t2:1001-3000\tgamma\n")
write("val_regions.tsv",
      "".join("%s_h%d\t%s\n" % (n, k, n) for n, _, _ in species for k in range(1, 5)))
write("bad_outside.tsv", "alpha_t1:1-2000\talpha\nbeta_t1\tbeta\nbeta_t2:2001-3100\tbeta\n")
write("bad_chrom.tsv", "alpha_t1\talpha\ndelta_t1:1-500\tbeta\n")
write("bad_syntax.tsv", "alpha_t1\talpha\nbeta_t1:1-x\tbeta\n")
write("bad_short.tsv", "alpha_t1\talpha\nbeta_t1:101-150\tbeta\n")
print("wrote the classify fixtures to %s" % here)
