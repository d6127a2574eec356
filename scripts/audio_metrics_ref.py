#!/usr/bin/env python3
"""Reference values for tests/test_audio_metrics.c (apps/audio/audio_metrics.h).

Writes tests/fixtures/audio_metrics/{softmax,peaked,same}.safetensors: seeded
random classifier outputs (probabilities n x k, features n x d, stored as
float32, the classifier's precision, and read back exactly as doubles) and
the metrics computed here in float64, independently of the C code:

  FID   np.cov and scipy.linalg.sqrtm(S_ref @ S_gen), as SaShiMi's fid()
        (the real part of the trace: the imaginary one is round-off).
        Checked here against the eigenvalue route the C code takes.
  IS    the splitmix64 Fisher-Yates shuffle written again in Python
        integers, KL by scipy.stats.entropy row by row (axis=1).
  mIS   the direct double loop over all n^2 ordered pairs.
  AM    scipy.stats.entropy of the means, plus the rows' mean entropy.
  NDB   the bin counts and the two-proportion z-test (scipy.stats.norm)
        for centroids chosen here; the k-means itself is tested in C.

Every probability row goes through the header's rule first: divided by its
sum, then floored at 1e-30 (scipy would give inf for KL against an exact 0).

Deterministic (numpy.random.default_rng with fixed seeds): rerunning rewrites
the files byte-identically. Needs numpy and scipy (pip install scipy).
    python3 scripts/audio_metrics_ref.py
"""
import json
import os
import struct
import sys

import numpy as np
from scipy import linalg
from scipy.stats import entropy, norm

FLOOR = 1e-30
ALPHA = 0.05
MASK = (1 << 64) - 1
IS_SEEDS = [0, 12345678901234567]

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures",
                       "audio_metrics")


# --------------------------------------------------------------------------
# safetensors (8-byte little-endian header length, JSON header padded with
# spaces to a multiple of 8, raw little-endian tensor bytes)

def save(path, tensors, meta):
    kinds = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
    head = {"__metadata__": meta}
    data = b""
    for name, a in tensors:
        a = np.ascontiguousarray(a)
        raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        head[name] = {"dtype": kinds[a.dtype], "shape": list(a.shape),
                      "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)
    return len(h) + 8 + len(data)


# --------------------------------------------------------------------------
# the shuffle: splitmix64 and an unbiased draw below n, as mb_cli_rng.c
# specifies them, then Fisher-Yates from the last position down

class SplitMix:
    def __init__(self, seed):
        self.s = seed & MASK

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        if n <= 1:
            return 0
        reject = (2 ** 64 - n) % n  # draws under this favour small residues
        while True:
            x = self.next()
            if x >= reject:
                return x % n


def shuffled(n, seed):
    g = SplitMix(seed)
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = g.below(i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


# --------------------------------------------------------------------------
# metrics

def prepare(p):
    """The header's rule: rows to sum 1, then entries floored at 1e-30."""
    p = np.asarray(p, dtype=np.float64)
    return np.maximum(p / p.sum(axis=1, keepdims=True), FLOOR)


def fid_sashimi(ref, gen):
    """SaShiMi's fid(), float64 throughout."""
    mu_r, mu_g = ref.mean(axis=0), gen.mean(axis=0)
    s_r, s_g = np.cov(ref, rowvar=False), np.cov(gen, rowvar=False)
    covmean = linalg.sqrtm(s_r.dot(s_g))
    if isinstance(covmean, tuple):  # scipy before 1.18 may return (root, error)
        covmean = covmean[0]
    assert np.isfinite(covmean).all()
    val = np.sum(np.square(mu_g - mu_r)) + np.trace(s_g + s_r - 2 * covmean)
    scale = np.sum(np.square(mu_g - mu_r)) + np.trace(s_g) + np.trace(s_r)
    # the route the C code takes, as a check that sqrtm was accurate here
    l, q = np.linalg.eigh(s_r)
    r = (q * np.sqrt(np.maximum(l, 0))) @ q.T
    mu = np.linalg.eigvalsh(r @ s_g @ r)
    alt = scale - 2 * np.sum(np.sqrt(np.maximum(mu, 0)))
    assert abs(np.real(val) - alt) <= 1e-11 * scale, (val, alt)
    return float(np.real(val)), float(scale)


def inception(p, seed):
    p = prepare(p)
    perm = shuffled(len(p), seed)
    half = len(p) // 2
    first, second = p[perm[:half]], p[perm[half:]]
    mean2 = second.mean(axis=0)
    kl = entropy(first, np.repeat(mean2[None, :], half, axis=0), axis=1)
    return float(np.exp(kl.mean()))


def inception_sashimi_axis0(p, seed):
    """SaShiMi's literal call (scipy's default axis=0: over the samples of
    each class), on our halves: printed only, to show how far it is."""
    p = prepare(p)
    perm = shuffled(len(p), seed)
    half = len(p) // 2
    first, second = p[perm[:half]], p[perm[half:]]
    return float(np.exp(entropy(first, np.repeat(second.mean(axis=0)[None, :], half, axis=0)).mean()))


def modified_inception(p):
    p = prepare(p)
    n = len(p)
    total = 0.0
    for i in range(n):  # every ordered pair (i, j), i == j included
        total += entropy(np.repeat(p[i][None, :], n, axis=0), p, axis=1).sum()
    return float(np.exp(total / (n * n)))


def am(p_ref, p_gen):
    r, g = prepare(p_ref), prepare(p_gen)
    return float(entropy(r.mean(axis=0), g.mean(axis=0)) + np.mean(entropy(g, axis=1)))


def ndb_bins(cent, ref, gen):
    def labels(x):
        d2 = ((x[:, None, :] - cent[None, :, :]) ** 2).sum(axis=2)
        # the nearest must be clear of the runner-up, or summation order
        # could flip a row between the C code and this
        srt = np.sort(d2, axis=1)
        assert (srt[:, 1] - srt[:, 0] > 1e-9 * srt[:, 1]).all()
        return d2.argmin(axis=1)
    k = len(cent)
    c1 = np.bincount(labels(ref), minlength=k)
    c2 = np.bincount(labels(gen), minlength=k)
    n1, n2 = len(ref), len(gen)
    p1, p2 = c1 / n1, c2 / n2
    p = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    diff = 0
    for b in range(k):
        if se[b] == 0:
            continue
        pv = 2.0 * norm.cdf(-abs((p1[b] - p2[b]) / se[b]))
        # a p-value at the threshold would make the fixture fragile
        assert abs(pv - ALPHA) > 1e-6, pv
        diff += pv < ALPHA
    return c1.astype(np.int64), c2.astype(np.int64), int(diff)


# --------------------------------------------------------------------------
# cases

def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def features(rng, n, d, shift, spread):
    """Correlated Gaussian rows: mean `shift`, covariance A A^T."""
    a = rng.normal(size=(d, d)) * spread / np.sqrt(d)
    return rng.normal(size=(n, d)) @ a.T + shift


def centroids_from(rng, ref, k, far):
    """k rows of ref, moved a little (so no row sits exactly on two), plus,
    when far, one centroid no row is near: a bin empty in both sets."""
    c = ref[rng.choice(len(ref), size=k, replace=False)] + rng.normal(scale=0.05, size=(k, ref.shape[1]))
    if far:
        c = np.vstack([c, np.full((1, ref.shape[1]), 1e3)])
    return c


def make_case(name, rng, n_ref, n_gen, k, d, same=False, peaked=False):
    f32 = np.float32
    if peaked:
        # near-one-hot rows: a confident classifier
        pr = softmax(rng.normal(size=(n_ref, k)) * 12.0).astype(f32)
        pg = softmax(rng.normal(size=(n_gen, k)) * 12.0).astype(f32)
        pr[2, :] = 0.0
        pr[2, 7] = 1.0  # one-hot, zeros elsewhere
        pg[5, 3] = 0.0  # an exact 0 where others have mass
        pg[7, :] *= f32(3.0)  # a row that does not sum to 1
    else:
        pr = softmax(rng.normal(size=(n_ref, k)) * 2.0).astype(f32)
        # the generated set favours some classes
        pg = softmax(rng.normal(size=(n_gen, k)) * 2.0 + np.linspace(0, 1.5, k)).astype(f32)
    xr = features(rng, n_ref, d, 0.0, 1.0).astype(f32)
    xg = features(rng, n_gen, d, rng.normal(size=d) * 0.5, 1.3).astype(f32)
    if same:
        pg, xg = pr, xr
    cent = centroids_from(rng, xr.astype(np.float64), 6 if peaked else 8, far=not same)

    r64, g64 = xr.astype(np.float64), xg.astype(np.float64)
    fid, scale = fid_sashimi(r64, g64)
    is_vals = [inception(pg, s) for s in IS_SEEDS]
    mis = modified_inception(pg)
    amv = am(pr, pg)
    c1, c2, diff = ndb_bins(cent, r64, g64)

    tensors = [("ref_probs", pr), ("ref_feats", xr)]
    if not same:
        tensors += [("gen_probs", pg), ("gen_feats", xg)]
    tensors += [
        ("fid", np.array([fid])), ("fid_scale", np.array([scale])),
        ("is_seed", np.array(IS_SEEDS, dtype=np.int64)), ("is", np.array(is_vals)),
        ("mis", np.array([mis])), ("am", np.array([amv])),
        ("ndb_centroids", cent), ("ndb_count_ref", c1), ("ndb_count_gen", c2),
        ("ndb_different", np.array([diff], dtype=np.int64)),
    ]
    meta = {"generator": "scripts/audio_metrics_ref.py", "prob_floor": "1e-30",
            "gen": "same as ref" if same else "own tensors"}
    size = save(os.path.join(OUT_DIR, name + ".safetensors"), tensors, meta)
    print(f"{name}: n_ref {n_ref} n_gen {n_gen} k {k} d {d}: {size} bytes")
    print(f"  FID {fid:.12g} (scale {scale:.6g})  IS {is_vals}  mIS {mis:.12g}  AM {amv:.12g}")
    print(f"  NDB bins: ref {c1.tolist()} gen {c2.tolist()} different {diff}/{len(cent)}")
    print(f"  SaShiMi's literal IS (entropy over axis 0), seed 0: {inception_sashimi_axis0(pg, 0):.6g}")
    if peaked:
        with np.errstate(divide="ignore"):
            raw = np.mean([entropy(pg[i], pg[5]) for i in range(n_gen)])
        print(f"  without the floor, scipy's mean KL(p_i || p_5) = {raw} (p_5 has an exact 0)")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    make_case("softmax", np.random.default_rng(20240917), 120, 80, 10, 12)
    make_case("peaked", np.random.default_rng(20240918), 60, 41, 10, 8, peaked=True)
    make_case("same", np.random.default_rng(20240919), 100, 100, 10, 16, same=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
