#!/usr/bin/env python3
"""Writes data/genomics/markov.fa: a synthetic genome drawn from an order-3
Markov chain with skewed transitions (fixed seed), for the test that a tiny
CPU pretrain learns: its entropy rate is far below the 2 bits per base of
uniform DNA, so a model that learns anything goes well below 2.0. Prints the
chain's entropy rate (the floor any model can reach). Deterministic."""
import math
import os
import random

K = 3
rng = random.Random(20261123)
probs = {}
for ctx in range(4 ** K):
    w = [rng.gammavariate(0.15, 1.0) + 1e-3 for _ in range(4)]
    s = sum(w)
    probs[ctx] = [x / s for x in w]

def draw(n):
    ctx, out = 0, []
    for _ in range(n):
        p = probs[ctx]
        u, acc, b = rng.random(), 0.0, 3
        for i in range(4):
            acc += p[i]
            if u < acc:
                b = i
                break
        out.append("ACGT"[b])
        ctx = ((ctx << 2) | b) & (4 ** K - 1)
    return "".join(out)

# stationary entropy rate, by running the chain
counts = {c: 0 for c in range(4 ** K)}
ctx = 0
for _ in range(200000):
    counts[ctx] += 1
    p = probs[ctx]
    b = rng.choices(range(4), p)[0]
    ctx = ((ctx << 2) | b) & (4 ** K - 1)
tot = sum(counts.values())
h = -sum(counts[c] / tot * sum(q * math.log2(q) for q in probs[c] if q > 0) for c in counts)

recs = [("chrA", draw(30000)), ("chrB", draw(12000))]
# a run of N and a soft-masked stretch, as real assemblies have
a = recs[0][1]
recs[0] = ("chrA", a[:12000] + "N" * 300 + a[12300:20000] + a[20000:21000].lower() + a[21000:])
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "markov.fa")
with open(path, "w") as f:
    for name, s in recs:
        f.write(">%s order-%d Markov chain, entropy rate %.3f bits/base\n" % (name, K, h))
        for i in range(0, len(s), 70):
            f.write(s[i:i + 70] + "\n")
print("markov.fa: %d records, entropy rate %.3f bits/base" % (len(recs), h))
