#!/usr/bin/env python3
"""Independent float64 golden reference for libmamba (NumPy only).

Writes small safetensors fixtures under tests/fixtures/ that tests/test_golden.c
checks libmamba's CPU ops and model against. The maths follows DESIGN.md and
mamba_ssm's reference implementations (selective_scan_ref, causal conv1d via
F.conv1d with left padding, Mamba.forward's slow path, MambaLMHeadModel); it
is written from those definitions, not from libmamba's C code.

Inputs are stored as F32 and the reference is computed in float64 from
exactly those float32-rounded values; expected outputs are stored as F64,
token ids as I32. Deterministic: fixed seed, re-runnable.

Reference gradients (grad.* tensors) come from a hand-written float64 reverse
mode of the same maths, cross-checked in this script against float64 central
finite differences of the forward functions above (five-point stencil, two
step sizes; the script fails if they disagree beyond 1e-7 per tensor; they
agree to ~3e-8 at worst, ~1e-11 for the scans). Finite differences are not
what is stored because their cancellation noise (~1e-15 / step absolute on
an O(1) loss) is not small against the small gradients of dt_proj, A_log
and A_imag (a 2-point difference at step 1e-6 is off by ~1e-5 relative
there), while the float64 reverse mode has only float64 rounding (~1e-13).
Scan fixtures: loss = sum(wy * y) + sum(wh * hT) (all options), grad.X for
every input X. LM *_expected files: targets (-100 ignored), the mean
cross-entropy `loss`, and grad.NAME for every parameter of the checkpoint.
The gradient-test draws (wy, wh, targets) come from a second generator, so
the forward fixtures are byte-identical to those made before they existed.
SaShiMi U-Net fixtures (sashimi_{real,complex}{,_mlp}: a checkpoint with the
config as mb_model_save writes it, and *_expected with tokens, logits,
targets, loss and grad.NAME as for the LM) come from generators of their own
(SEED + 4, + 5), drawn after everything above, so the older files stay
byte-identical; their fd check takes the best of three steps per tensor
(the center's gradients are ~5e-6: agreement to ~2e-8 at worst).
scan_{real,complex}_lanes: the scan at D 16, N 10 (the CPU's eight-wide
paths and their rest), A_imag up to 40, from generators of their own
(SEED + 20 .. 25).

    python3 scripts/golden.py            # writes tests/fixtures/*.safetensors
"""
import json
import math
import os
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures")

SEED = 20240611


# --------------------------------------------------------------------------
# safetensors writer (our own: 8-byte LE header length, JSON header padded
# with spaces to a multiple of 8, raw little-endian data)

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64",
           np.dtype("int32"): "I32", np.dtype("int64"): "I64"}


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, ndarray) in file order; metadata: dict str->str."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        dt = _DTYPES[arr.dtype]
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    return os.path.getsize(path)


def f32(x):
    """Round to float32 (what gets stored); the float64 maths uses this value."""
    return np.asarray(x, dtype=np.float64).astype(np.float32)


def up(x32):
    return x32.astype(np.float64)


# --------------------------------------------------------------------------
# maths (float64)

def softplus(x):
    # torch.nn.functional.softplus, beta 1, threshold 20
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


def silu(x):
    return x / (1.0 + np.exp(-x))


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False, h0=None):
    """mamba_ssm selective_scan_ref semantics, activations in (B, L, D) layout.

    u, delta, z: (Bt, L, Dm); A: (Dm, N) real or complex; B, C: (Bt, L, N),
    complex when A is complex; D, delta_bias: (Dm,); h0: (Bt, Dm, N).
    Returns out (Bt, L, Dm) float64 and the last state (Bt, Dm, N)."""
    Bt, L, Dm = u.shape
    N = A.shape[1]
    delta = delta.copy()
    if delta_bias is not None:
        delta = delta + delta_bias[None, None, :]
    if delta_softplus:
        delta = softplus(delta)
    cplx = np.iscomplexobj(A)
    h = np.zeros((Bt, Dm, N), dtype=np.complex128 if cplx else np.float64)
    if h0 is not None:
        h = h + h0
    y = np.zeros((Bt, L, Dm))
    for t in range(L):
        dt = delta[:, t, :][:, :, None]                    # (Bt, Dm, 1)
        dA = np.exp(dt * A[None, :, :])                     # (Bt, Dm, N)
        dBu = dt * B[:, t, None, :] * u[:, t, :][:, :, None]
        h = dA * h + dBu
        yt = np.sum(h * C[:, t, None, :], axis=2)          # no conjugation
        if cplx:
            yt = 2.0 * yt.real
        y[:, t, :] = yt
    if D is not None:
        y = y + u * D[None, None, :]
    if z is not None:
        y = y * silu(z)
    return y, h


def causal_conv1d(x, w, bias, prev=None):
    """x (Bt, L, D); w (D, 1, K); bias (D,); prev (Bt, K-1, D) or None (zeros).
    y[b,t,d] = bias[d] + sum_k w[d,0,k] * x[b, t-(K-1)+k, d]."""
    Bt, L, Dm = x.shape
    K = w.shape[2]
    if prev is None:
        prev = np.zeros((Bt, K - 1, Dm))
    xp = np.concatenate([prev, x], axis=1)               # (Bt, K-1+L, D)
    y = np.zeros((Bt, L, Dm)) + bias[None, None, :]
    for k in range(K):
        y += w[None, None, :, 0, k] * xp[:, k:k + L, :]
    return y


def rmsnorm(x, w, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def cplx_from_interleaved(a):
    return a[..., 0::2] + 1j * a[..., 1::2]


def interleave(c):
    out = np.empty(c.shape[:-1] + (2 * c.shape[-1],))
    out[..., 0::2] = c.real
    out[..., 1::2] = c.imag
    return out


# --------------------------------------------------------------------------
# reverse mode (float64), written from the forward maths above.
#
# Complex convention: for a real loss f and a complex quantity w = a + ib the
# gradient is G_w = df/da + i df/db (so df = Re(conj(G_w) dw)). Then for
# w = p*q (holomorphic) G_p = conj(q) G_w, for w = exp(s) G_s = conj(w) G_w,
# and for w = r*c with r real, df/dr = Re(conj(G_w) c). Stored (re, im)
# pairs get (Re G, Im G), which is what perturbing the stored floats gives.

def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def dsilu(x):
    s = sigmoid(x)
    return s * (1.0 + x * (1.0 - s))


def dsoftplus(x):
    # torch's softplus backward: 1 above the threshold, else sigmoid
    return np.where(x > 20.0, 1.0, sigmoid(np.minimum(x, 20.0)))


def selective_scan_bwd(u, delta, A, B, C, D, z, delta_bias, h0, gy, ghT):
    """Gradients of sum(gy * out) + <ghT, hT> for selective_scan with all
    options (D, z, delta_bias, softplus; h0 may be None = zeros). ghT is
    complex (G convention above) when A is. Returns a dict keyed like the
    inputs: u, delta (w.r.t. the raw delta input), A (complex when A is),
    B, C (complex when A is), D, z, delta_bias, h0."""
    Bt, L, Dm = u.shape
    N = A.shape[1]
    cplx = np.iscomplexobj(A)
    c = 2.0 if cplx else 1.0
    conj = np.conj if cplx else (lambda a: a)
    dpre = delta + delta_bias[None, None, :]
    dl = softplus(dpre)
    h = np.zeros((Bt, Dm, N), dtype=np.complex128 if cplx else np.float64)
    if h0 is not None:
        h = h + h0
    hs, dAs = [h], []
    ycore = np.zeros((Bt, L, Dm))
    for t in range(L):
        dA = np.exp(dl[:, t, :, None] * A[None, :, :])
        h = dA * h + dl[:, t, :, None] * B[:, t, None, :] * u[:, t, :, None]
        hs.append(h)
        dAs.append(dA)
        ycore[:, t, :] = c * np.real(np.sum(h * C[:, t, None, :], axis=2))
    y1 = ycore + u * D[None, None, :]
    gz = gy * y1 * dsilu(z)
    gy1 = gy * silu(z)
    gD = np.sum(gy1 * u, axis=(0, 1))
    gu = gy1 * D[None, None, :]
    gdl = np.zeros((Bt, L, Dm))
    gA = np.zeros(A.shape, dtype=A.dtype)
    gB = np.zeros(B.shape, dtype=B.dtype)
    gC = np.zeros(C.shape, dtype=C.dtype)
    Gh = np.array(ghT, dtype=h.dtype, copy=True)
    for t in range(L - 1, -1, -1):
        g = gy1[:, t, :, None]                                # (Bt, Dm, 1)
        Ct, Bt_ = C[:, t, None, :], B[:, t, None, :]          # (Bt, 1, N)
        dlt, ut = dl[:, t, :, None], u[:, t, :, None]         # (Bt, Dm, 1)
        Gh = Gh + c * g * conj(Ct)                            # y_t = c Re(h_t . C_t)
        gC[:, t, :] = c * np.sum(g * conj(hs[t + 1]), axis=1)
        # h_t = exp(dl A) h_{t-1} + dl B u
        Gs = conj(dAs[t]) * Gh * conj(hs[t])                  # w.r.t. s = dl * A
        gA += np.sum(dlt * Gs, axis=0)
        r = np.real(conj(Gh) * Bt_)                           # w.r.t. the real dl*u
        gdl[:, t, :] += np.sum(np.real(conj(Gs) * A[None, :, :]), axis=2) + \
            np.sum(r * ut, axis=2)
        gu[:, t, :] += np.sum(r * dlt, axis=2)
        gB[:, t, :] = np.sum(Gh * (dlt * ut), axis=1)
        Gh = conj(dAs[t]) * Gh
    gdpre = gdl * dsoftplus(dpre)
    return {"u": gu, "delta": gdpre, "A": gA, "B": gB, "C": gC, "D": gD, "z": gz,
            "delta_bias": np.sum(gdpre, axis=(0, 1)), "h0": Gh}


def causal_conv1d_bwd(x, w, gy):
    """Zero history. Returns (gx, gw (D, 1, K), gbias)."""
    Bt, L, Dm = x.shape
    K = w.shape[2]
    xp = np.concatenate([np.zeros((Bt, K - 1, Dm)), x], axis=1)
    gxp = np.zeros_like(xp)
    gw = np.zeros(w.shape)
    for k in range(K):
        gw[:, 0, k] = np.sum(gy * xp[:, k:k + L, :], axis=(0, 1))
        gxp[:, k:k + L, :] += w[None, None, :, 0, k] * gy
    return gxp[:, K - 1:, :], gw, np.sum(gy, axis=(0, 1))


def rmsnorm_bwd(x, w, gy, eps=1e-5):
    """y = x r w, r = (mean(x^2) + eps)^-1/2. Returns (gx, gw)."""
    C = x.shape[-1]
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    gw = np.sum(gy * x * r, axis=tuple(range(x.ndim - 1)))
    q = gy * w
    gx = r * q - r ** 3 * x * np.sum(q * x, axis=-1, keepdims=True) / C
    return gx, gw


def xent_mean(logits, targets, ignore=-100):
    """Mean over counted targets of -log softmax(logits)[target] (all padded
    vocab entries take part) and its gradient w.r.t. logits."""
    Vp = logits.shape[-1]
    lg = logits.reshape(-1, Vp)
    tg = targets.reshape(-1)
    keep = tg != ignore
    n = int(np.sum(keep))
    mx = np.max(lg, axis=1, keepdims=True)
    e = np.exp(lg - mx)
    se = np.sum(e, axis=1, keepdims=True)
    lse = (mx + np.log(se))[:, 0]
    rows = np.nonzero(keep)[0]
    loss = float(np.sum(lse[rows] - lg[rows, tg[rows]])) / n
    g = e / se
    g[rows, tg[rows]] -= 1.0
    g[~keep] = 0.0
    return loss, (g / n).reshape(logits.shape)


# --------------------------------------------------------------------------
# float64 finite differences, to check the reverse mode

def fd_check(what, f, arrays, grads, rng, max_entries=24, rel_step=1e-3, tol=1e-7, steps=None):
    """Five-point central differences of the scalar f() w.r.t. entries of the
    float64 arrays (perturbed in place, restored), at steps h and h/2 with
    h = rel_step * max(1, |x|): truncation O(h^4) ~1e-12, cancellation
    ~1e-15 / h absolute, which limits the LM's small-gradient tensors
    (dt_proj, A_log, x_proj) to ~1e-8 relative (a 2-point difference at
    h = 1e-6 would give ~1e-5 there). Per tensor, over the checked entries:
    ||fd(h) - fd(h/2)|| / ||fd|| and ||analytic - fd|| / ||fd|| (fd(h/2) as
    the reference), asserted below tol. Small tensors are checked whole,
    larger ones at max_entries random entries plus their largest one.
    steps (a list of rel_step values): each tensor is differenced at each,
    and the one whose h and h/2 agree best is the reference (a tensor of
    small gradients wants a larger step against the cancellation noise, a
    strongly curved one a smaller step against truncation); the first whose
    steps agree to tol / 10 is taken at once."""
    worst_an, worst_st = 0.0, 0.0
    for name, arr in arrays:
        g = grads[name]
        if arr.size <= max_entries:
            idx = np.arange(arr.size)
        else:
            idx = np.unique(np.concatenate([
                rng.choice(arr.size, max_entries, replace=False),
                [int(np.argmax(np.abs(g)))]]))
        best = None
        for step in (steps or [rel_step]):
            fd1, fd2, an = [], [], []
            for i in idx:
                x0 = arr.flat[i]
                base = max(1.0, abs(x0))
                vals = []
                for h in (step * base, 0.5 * step * base):
                    fs = []
                    for k in (2, 1, -1, -2):
                        arr.flat[i] = x0 + k * h
                        fs.append(f())
                    arr.flat[i] = x0
                    vals.append((-fs[0] + 8.0 * fs[1] - 8.0 * fs[2] + fs[3]) / (12.0 * h))
                fd1.append(vals[0])
                fd2.append(vals[1])
                an.append(g.flat[i])
            fd1, fd2, an = np.array(fd1), np.array(fd2), np.array(an)
            nrm = max(np.linalg.norm(fd2), 1e-300)
            e_st = np.linalg.norm(fd1 - fd2) / nrm
            e_an = np.linalg.norm(an - fd2) / nrm
            if best is None or e_st < best[1]:
                best = (e_an, e_st)
            if e_st < tol / 10:
                break
        e_an, e_st = best
        worst_an, worst_st = max(worst_an, e_an), max(worst_st, e_st)
        if not (e_an < tol and e_st < tol):
            raise SystemExit("%s: grad.%s analytic vs finite differences %.2e, steps %.2e "
                             "(%d entries)" % (what, name, e_an, e_st, len(idx)))
    print("  %-14s fd check: analytic vs fd worst %.1e, fd(h) vs fd(h/2) worst %.1e "
          "(%d tensors)" % (what, worst_an, worst_st, len(arrays)))
    return worst_an


# --------------------------------------------------------------------------
# a. selective scan

def scan_inputs(t, is_complex):
    """float64 scan arguments from the stored (real, interleaved) tensors."""
    u, delta, Dsk, z, db = (t[k] for k in ("u", "delta", "Dskip", "z", "delta_bias"))
    if is_complex:
        A = t["A"] + 1j * t["A_imag"]
        Bm, Cm = cplx_from_interleaved(t["B"]), cplx_from_interleaved(t["C"])
        h0 = t["h0"][..., 0] + 1j * t["h0"][..., 1]
    else:
        A, Bm, Cm, h0 = t["A"], t["B"], t["C"], t["h0"]
    return u, delta, A, Bm, Cm, Dsk, z, db, h0


def make_scan(rng, is_complex, rng_g, rng_fd, dims=(2, 37, 6, 4), imag=6.0, tag_extra=""):
    # dims (B, L, D, N); the "lanes" files take D 16 and N 10 so that the CPU's
    # eight-wide paths (a block of eight channels' gates, eight states' decay)
    # and their one-at-a-time rest are both checked against float64
    Bt, L, Dm, N = dims
    nB = 2 * N if is_complex else N
    t = {}
    t["u"] = f32(rng.standard_normal((Bt, L, Dm)))
    # positive so the plain (no softplus, no bias) option set stays stable;
    # with the bias the softplus argument spans both signs
    t["delta"] = f32(rng.uniform(0.01, 0.6, (Bt, L, Dm)))
    t["A"] = f32(-rng.uniform(0.5, 4.0, (Dm, N)))
    if is_complex:
        t["A_imag"] = f32(rng.uniform(-imag, imag, (Dm, N)))
    t["B"] = f32(rng.standard_normal((Bt, L, nB)))
    t["C"] = f32(rng.standard_normal((Bt, L, nB)))
    t["Dskip"] = f32(rng.standard_normal(Dm))
    t["z"] = f32(rng.standard_normal((Bt, L, Dm)))
    t["delta_bias"] = f32(rng.uniform(-3.0, 0.5, Dm))
    t["h0"] = f32(rng.standard_normal((Bt, Dm, N, 2) if is_complex else (Bt, Dm, N)))

    t64 = {k: up(v) for k, v in t.items()}
    u, delta, A, Bm, Cm, Dsk, z, db, h0 = scan_inputs(t64, is_complex)

    y, hT = selective_scan(u, delta, A, Bm, Cm, D=Dsk, z=z, delta_bias=db,
                           delta_softplus=True, h0=h0)
    yp, hTp = selective_scan(u, delta, A, Bm, Cm)
    if is_complex:
        hT = np.stack([hT.real, hT.imag], axis=-1)
        hTp = np.stack([hTp.real, hTp.imag], axis=-1)
    order = ["u", "delta", "A"] + (["A_imag"] if is_complex else []) + \
        ["B", "C", "Dskip", "z", "delta_bias", "h0"]
    tensors = [(k, t[k]) for k in order]
    tensors += [("y", y), ("hT", hT), ("y_plain", yp), ("hT_plain", hTp)]

    # gradients of loss = sum(wy * y) + sum(wh * hT) (all-options y, hT as
    # stored); weights from the separate generator so the draws above (and
    # the files' forward values) stay as they were
    wy = f32(rng_g.standard_normal(y.shape))
    wh = f32(rng_g.standard_normal(hT.shape))
    wy64, wh64 = up(wy), up(wh)
    ghT = wh64[..., 0] + 1j * wh64[..., 1] if is_complex else wh64
    g = selective_scan_bwd(u, delta, A, Bm, Cm, Dsk, z, db, h0, wy64, ghT)
    grads = {"u": g["u"], "delta": g["delta"], "Dskip": g["D"], "z": g["z"],
             "delta_bias": g["delta_bias"]}
    if is_complex:
        grads.update({"A": g["A"].real, "A_imag": g["A"].imag, "B": interleave(g["B"]),
                      "C": interleave(g["C"]),
                      "h0": np.stack([g["h0"].real, g["h0"].imag], axis=-1)})
    else:
        grads.update({"A": g["A"], "B": g["B"], "C": g["C"], "h0": g["h0"]})

    def loss():
        a = scan_inputs(t64, is_complex)
        yy, hh = selective_scan(a[0], a[1], a[2], a[3], a[4], D=a[5], z=a[6], delta_bias=a[7],
                                delta_softplus=True, h0=a[8])
        if is_complex:
            hh = np.stack([hh.real, hh.imag], axis=-1)
        return float(np.sum(wy64 * yy) + np.sum(wh64 * hh))

    tag = "scan_" + ("complex" if is_complex else "real") + tag_extra
    # an A_imag of 40 makes the loss oscillate: smaller steps against truncation
    fd_check(tag, loss, [(k, t64[k]) for k in order], grads, rng_fd,
             steps=[1e-3, 2e-4, 5e-5] if tag_extra else None)
    tensors += [("wy", wy), ("wh", wh)]
    tensors += [("grad." + k, grads[k]) for k in order]

    meta = {"what": "selective scan, %s; y/hT: all options (D, z, delta_bias, softplus, h0); "
                    "y_plain/hT_plain: none of them; grad.X: float64 gradient w.r.t. input X of "
                    "loss = sum(wy * y) + sum(wh * hT) (all options)"
                    % ("complex" if is_complex else "real"),
            "batch": str(Bt), "seqlen": str(L), "dim": str(Dm), "dstate": str(N),
            "is_complex": "1" if is_complex else "0"}
    return tensors, meta


# --------------------------------------------------------------------------
# b. causal depthwise conv1d

def make_conv(rng):
    Bt, L, Dm, K = 2, 9, 5, 4
    x = f32(rng.standard_normal((Bt, L, Dm)))
    w = f32(rng.uniform(-0.5, 0.5, (Dm, 1, K)))
    b = f32(rng.uniform(-0.5, 0.5, Dm))
    prev = f32(rng.standard_normal((Bt, K - 1, Dm)))
    y = causal_conv1d(up(x), up(w), up(b))
    yprev = causal_conv1d(up(x), up(w), up(b), up(prev))
    tensors = [("x", x), ("weight", w), ("bias", b), ("prev", prev),
               ("y", y), ("y_prev", yprev)]
    meta = {"what": "causal depthwise conv1d, no activation; y: zero history; "
                    "y_prev: history prev (B, K-1, D)",
            "batch": str(Bt), "seqlen": str(L), "dim": str(Dm), "kernel": str(K)}
    return tensors, meta


# --------------------------------------------------------------------------
# c. tiny language models

# layer dict key -> state_dict name after "backbone.layers.{i}."
LAYER_NAMES = {"norm": "norm.weight", "in_proj": "mixer.in_proj.weight",
               "conv_w": "mixer.conv1d.weight", "conv_b": "mixer.conv1d.bias",
               "x_proj": "mixer.x_proj.weight", "dt_w": "mixer.dt_proj.weight",
               "dt_b": "mixer.dt_proj.bias", "A_log": "mixer.A_log", "A_imag": "mixer.A_imag",
               "D": "mixer.D", "out_proj": "mixer.out_proj.weight"}


def same(x):
    return x


def lm_mixer(L, u, dims, r=same):
    """The mixer; r is the precision's stored value (same: float64 throughout; bf16:
    mamba_ssm under bf16 autocast with fp32 weights, each product's weights and output,
    the conv + SiLU output and the gated scan output rounded; the conv's weights, A, D,
    the dt bias and all arithmetic unrounded)."""
    Di, R, nBC, is_complex = dims
    xz = r(u @ r(L["in_proj"]).T)                         # (Bt, L, 2Di)
    x, z = xz[..., :Di], xz[..., Di:]
    x = r(silu(causal_conv1d(x, L["conv_w"], L["conv_b"])))
    xdbl = r(x @ r(L["x_proj"]).T)                        # (Bt, L, R + 2 nBC)
    dtr = xdbl[..., :R]
    Bm = xdbl[..., R:R + nBC]
    Cm = xdbl[..., R + nBC:R + 2 * nBC]
    delta = r(dtr @ r(L["dt_w"]).T)                       # bias goes in the scan
    A = -np.exp(L["A_log"])
    if is_complex:
        A = A + 1j * L["A_imag"]
        Bm, Cm = cplx_from_interleaved(Bm), cplx_from_interleaved(Cm)
    y, _ = selective_scan(x, delta, A, Bm, Cm, D=L["D"], z=z,
                          delta_bias=L["dt_b"], delta_softplus=True)
    return r(r(y) @ r(L["out_proj"]).T)


def lm_logits(emb, layers, norm_f, head, tokens, dims, r=same):
    """r as lm_mixer's: the residual stream is never rounded (the embedding's rows and
    the sums), the norms' outputs and the logits are."""
    h = emb[tokens]                                       # (Bt, L, d)
    for L in layers:
        h = h + lm_mixer(L, r(rmsnorm(h, L["norm"])), dims, r)
    h = r(rmsnorm(h, norm_f))
    return r(h @ r(head).T)                               # (Bt, L, Vp)


def bf16(x):
    """bf16 precision's stored value: x rounded to float32, then to bf16 (round to
    nearest, ties to even on the float32 bits), as a float64 again."""
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float64).astype(np.float32))
    u = a.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return r.astype(np.uint32).view(np.float32).astype(np.float64)


def lm_mixer_bwd(L, u, gout, dims, r=same):
    """Reverse mode of lm_mixer: (gradient w.r.t. u, {layer key: gradient}). r as
    lm_mixer's: each activation's gradient is stored as the activation was (the
    output's too; gradients meeting on one activation are summed, then rounded), the
    input gradients of products come from the rounded weights; the weights'
    gradients are unrounded."""
    Di, R, nBC, is_complex = dims
    d = u.shape[-1]
    xz = r(u @ r(L["in_proj"]).T)
    x, z = xz[..., :Di], xz[..., Di:]
    xc = causal_conv1d(x, L["conv_w"], L["conv_b"])
    xs = r(silu(xc))
    xdbl = r(xs @ r(L["x_proj"]).T)
    dtr = xdbl[..., :R]
    Bm = xdbl[..., R:R + nBC]
    Cm = xdbl[..., R + nBC:R + 2 * nBC]
    delta = r(dtr @ r(L["dt_w"]).T)
    A = -np.exp(L["A_log"])
    if is_complex:
        A = A + 1j * L["A_imag"]
        Bm, Cm = cplx_from_interleaved(Bm), cplx_from_interleaved(Cm)
    y, hT = selective_scan(xs, delta, A, Bm, Cm, D=L["D"], z=z,
                           delta_bias=L["dt_b"], delta_softplus=True)
    y = r(y)
    gout = r(gout)
    G = {}
    G["out_proj"] = gout.reshape(-1, d).T @ y.reshape(-1, Di)
    gy = r(gout @ r(L["out_proj"]))
    g = selective_scan_bwd(xs, delta, A, Bm, Cm, L["D"], z, L["dt_b"], None, gy,
                           np.zeros(hT.shape, hT.dtype))
    G["D"], G["dt_b"] = g["D"], g["delta_bias"]
    G["A_log"] = np.real(g["A"]) * -np.exp(L["A_log"])
    if is_complex:
        G["A_imag"] = np.imag(g["A"])
        gB, gC = interleave(g["B"]), interleave(g["C"])
    else:
        gB, gC = g["B"], g["C"]
    gdelta = r(g["delta"])
    G["dt_w"] = gdelta.reshape(-1, Di).T @ dtr.reshape(-1, R)
    gxdbl = np.concatenate([r(gdelta @ r(L["dt_w"])), r(gB), r(gC)], axis=-1)
    G["x_proj"] = gxdbl.reshape(-1, gxdbl.shape[-1]).T @ xs.reshape(-1, Di)
    gxs = r(r(g["u"]) + gxdbl @ r(L["x_proj"]))
    gx, G["conv_w"], G["conv_b"] = causal_conv1d_bwd(x, L["conv_w"], gxs * dsilu(xc))
    gxz = r(np.concatenate([gx, g["z"]], axis=-1))
    G["in_proj"] = gxz.reshape(-1, 2 * Di).T @ u.reshape(-1, d)
    return r(gxz @ r(L["in_proj"])), G


def lm_backbone(emb, layers, norm_f, tokens, dims, r=same):
    """The backbone's residual stream before each layer (and after the last), the
    layers' norm outputs and the final norm's output hf; r as lm_mixer's."""
    hs, xns = [emb[tokens]], []
    for L in layers:
        xns.append(r(rmsnorm(hs[-1], L["norm"])))
        hs.append(hs[-1] + lm_mixer(L, xns[-1], dims, r))
    return hs, xns, r(rmsnorm(hs[-1], norm_f))


def lm_backbone_bwd(emb, layers, norm_f, tokens, hs, xns, ghf, dims, r=same):
    """Reverse mode of lm_backbone from hf's gradient ghf (stored as hf was):
    {state_dict name: grad} of the norms, layers and embedding."""
    d = hs[0].shape[-1]
    G = {}
    gh, G["backbone.norm_f.weight"] = rmsnorm_bwd(hs[-1], norm_f, ghf)
    for i in range(len(layers) - 1, -1, -1):
        gxn, GL = lm_mixer_bwd(layers[i], xns[i], gh, dims, r)
        gx, GL["norm"] = rmsnorm_bwd(hs[i], layers[i]["norm"], gxn)
        gh = gh + gx
        for k, v in GL.items():
            G["backbone.layers.%d.%s" % (i, LAYER_NAMES[k])] = v
    gemb = np.zeros(emb.shape)
    np.add.at(gemb, tokens.reshape(-1), gh.reshape(-1, d))
    G["backbone.embedding.weight"] = gemb
    return G


def lm_loss_grads(emb, layers, norm_f, head, tied, tokens, targets, dims, r=same):
    """Mean cross-entropy and its gradients: (loss, {state_dict name: grad}); r as
    lm_mixer's (the logits' gradient and the final norm's output gradient stored as
    the logits and that output were)."""
    hs, xns, hf = lm_backbone(emb, layers, norm_f, tokens, dims, r)
    logits = r(hf @ r(head).T)
    loss, glog = xent_mean(logits, targets)
    glog = r(glog)
    d = hf.shape[-1]
    ghead = glog.reshape(-1, glog.shape[-1]).T @ hf.reshape(-1, d)
    G = lm_backbone_bwd(emb, layers, norm_f, tokens, hs, xns, r(glog @ r(head)), dims, r)
    if tied:
        G["backbone.embedding.weight"] += ghead
    else:
        G["lm_head.weight"] = ghead
    return loss, G


def cls_loss_grads(emb, layers, norm_f, Wc, bc, tokens, labels, dims, r=same):
    """The classifier of models/classify.c: the mean over positions of the final
    norm's output, a linear head (bias added unrounded, as every bias), the mean
    cross-entropy over counted labels. (logits, loss, {state_dict name: grad}); r as
    lm_mixer's: the pooled mean, the logits and their gradients stored as bf16; the
    mean's gradient is the pooled one times float32(1 / L), as the library scales."""
    hs, xns, hf = lm_backbone(emb, layers, norm_f, tokens, dims, r)
    L = tokens.shape[1]
    inv = float(np.float32(1.0 / L))
    pooled = r(np.sum(hf, axis=1) * inv)                   # (B, d)
    logits = r(pooled @ r(Wc).T + bc)                      # (B, C)
    loss, glog = xent_mean(logits[:, None, :], labels[:, None])
    glog = r(glog[:, 0, :])
    G = {"classifier.weight": glog.T @ pooled, "classifier.bias": np.sum(glog, axis=0)}
    gpooled = r(r(glog @ r(Wc)) * inv)
    ghf = np.repeat(gpooled[:, None, :], L, axis=1)
    G.update(lm_backbone_bwd(emb, layers, norm_f, tokens, hs, xns, ghf, dims, r))
    return logits, loss, G


def param_table():
    """A fixture's parameters: P, (name, float32 array) in file order (the
    parameter table's); W, name -> the float64 array the maths uses (shared,
    perturbed in place); add(name, array), which records one and returns
    its float64 array."""
    P, W = [], {}

    def add(name, arr):
        a = f32(arr)
        P.append((name, a))
        W[name] = up(a)
        return W[name]

    return P, W, add


def lm_weights(rng, add, d, n_layer, Vp, N, K, E, is_complex):
    """An LM backbone's weights drawn away from its initialization, each through
    add(name, array) (which keeps the float32 copy and returns the float64 one):
    (embedding, layers, final norm)."""
    R = math.ceil(d / 16)
    Di = E * d
    nBC = 2 * N if is_complex else N
    emb = add("backbone.embedding.weight", rng.standard_normal((Vp, d)))
    layers = []
    for i in range(n_layer):
        pre = "backbone.layers.%d." % i
        L = {}
        L["norm"] = add(pre + "norm.weight", rng.uniform(0.7, 1.3, d))
        L["in_proj"] = add(pre + "mixer.in_proj.weight",
                           rng.standard_normal((2 * Di, d)) / math.sqrt(d))
        L["conv_w"] = add(pre + "mixer.conv1d.weight", rng.uniform(-0.5, 0.5, (Di, 1, K)))
        L["conv_b"] = add(pre + "mixer.conv1d.bias", rng.uniform(-0.5, 0.5, Di))
        L["x_proj"] = add(pre + "mixer.x_proj.weight",
                          rng.standard_normal((R + 2 * nBC, Di)) / math.sqrt(Di))
        L["dt_w"] = add(pre + "mixer.dt_proj.weight", rng.uniform(-1, 1, (Di, R)) / math.sqrt(R))
        # softplus(bias) log-uniform in [1e-3, 0.3]: bias = inverse softplus
        dt = np.exp(rng.uniform(math.log(1e-3), math.log(0.3), Di))
        L["dt_b"] = add(pre + "mixer.dt_proj.bias", dt + np.log(-np.expm1(-dt)))
        # A = -exp(A_log) in [-4, -0.5]
        L["A_log"] = add(pre + "mixer.A_log", np.log(rng.uniform(0.5, 4.0, (Di, N))))
        if is_complex:
            L["A_imag"] = add(pre + "mixer.A_imag", rng.uniform(-3.0, 3.0, (Di, N)))
        L["D"] = add(pre + "mixer.D", rng.uniform(0.5, 1.5, Di))
        L["out_proj"] = add(pre + "mixer.out_proj.weight",
                            rng.standard_normal((d, Di)) / math.sqrt(Di))
        layers.append(L)
    norm_f = add("backbone.norm_f.weight", rng.uniform(0.7, 1.3, d))
    return emb, layers, norm_f


def make_lm(rng, is_complex, tied, rng_g, rng_fd):
    d, n_layer, vocab, N, K, E = 16, 2, 11, 4, 4, 2
    R = math.ceil(d / 16)
    Di = E * d
    mult = 8
    Vp = (vocab + mult - 1) // mult * mult
    cfg = {"d_model": d, "n_layer": n_layer, "vocab_size": vocab,
           "ssm_cfg": {"d_state": N, "d_conv": K, "expand": E, "dt_rank": "auto",
                       "init": "s4d-lin" if is_complex else "s4d-real"},
           "rms_norm": True, "tie_embeddings": tied,
           "pad_vocab_size_multiple": mult, "arch": "mamba-lm"}
    nBC = 2 * N if is_complex else N  # floats per B (and per C) row
    dims = (Di, R, nBC, is_complex)

    P, W, add = param_table()

    emb, layers, norm_f = lm_weights(rng, add, d, n_layer, Vp, N, K, E, is_complex)
    if tied:
        head = emb
    else:
        head = add("lm_head.weight", rng.standard_normal((Vp, d)) / 2.0)

    Bt, Lseq = 2, 23
    tokens = rng.integers(0, vocab, (Bt, Lseq)).astype(np.int32)
    logits = lm_logits(emb, layers, norm_f, head, tokens, dims)

    # targets from the separate generator (the draws above stay as they were):
    # about one position in five ignored
    targets = rng_g.integers(0, vocab, (Bt, Lseq)).astype(np.int32)
    targets[rng_g.random((Bt, Lseq)) < 0.2] = -100
    assert np.any(targets != -100)
    loss, G = lm_loss_grads(emb, layers, norm_f, head, tied, tokens, targets, dims)
    assert sorted(G) == sorted(W), (sorted(G), sorted(W))

    def fd_loss():
        return xent_mean(lm_logits(emb, layers, norm_f, head, tokens, dims), targets)[0]

    assert abs(fd_loss() - loss) <= 1e-14 * abs(loss)
    tag = "lm_" + ("complex" if is_complex else "real")
    fd_check(tag, fd_loss, [(name, W[name]) for name, _ in P], G, rng_fd)

    meta = {"config": json.dumps(cfg), "format": "pt"}
    expected = [("tokens", tokens), ("logits", logits), ("targets", targets),
                ("loss", np.array([loss]))]
    expected += [("grad." + name, G[name]) for name, _ in P]
    # bf16 precision (no draws: the files' other tensors are unchanged)
    logits16 = lm_logits(emb, layers, norm_f, head, tokens, dims, bf16)
    loss16, G16 = lm_loss_grads(emb, layers, norm_f, head, tied, tokens, targets, dims, bf16)
    assert loss16 == xent_mean(logits16, targets)[0]
    expected += [("bf16.logits", logits16), ("bf16.loss", np.array([loss16]))]
    expected += [("bf16.grad." + name, G16[name]) for name, _ in P]
    emeta = {"what": "tokens (B, L) and float64 logits (B, L, vocab_padded) of the "
                     "checkpoint next to this file; targets (B, L) (-100: ignored); loss: "
                     "mean over counted targets of -log softmax(logits)[target] (softmax over "
                     "all vocab_padded entries); grad.NAME: float64 gradient of loss w.r.t. "
                     "parameter NAME (tied: the embedding's includes the head's); bf16.logits, "
                     "bf16.loss, bf16.grad.NAME: the same in bf16 precision (lm_logits, lm_loss_grads "
                     "with r = bf16)"}
    return P, meta, expected, emeta


def make_cls(rng, rng_fd):
    """A small LM backbone with a classification head of 3 classes (real A, an
    untied, unused LM head absent: n_classes models have none), labels with one
    ignored: logits, loss, gradients in fp32 (float64) and bf16 precision."""
    d, n_layer, vocab, N, K, E, C = 16, 2, 11, 4, 4, 2, 3
    mult = 8
    Vp = (vocab + mult - 1) // mult * mult
    cfg = {"d_model": d, "n_layer": n_layer, "vocab_size": vocab,
           "ssm_cfg": {"d_state": N, "d_conv": K, "expand": E, "dt_rank": "auto", "init": "s4d-real"},
           "rms_norm": True, "tie_embeddings": True, "pad_vocab_size_multiple": mult,
           "n_classes": C, "arch": "mamba-lm"}
    dims = (E * d, math.ceil(d / 16), N, False)
    P, W, add = param_table()

    emb, layers, norm_f = lm_weights(rng, add, d, n_layer, Vp, N, K, E, False)
    Wc = add("classifier.weight", rng.standard_normal((C, d)))
    bc = add("classifier.bias", rng.uniform(-0.5, 0.5, C))
    Bt, Lseq = 4, 19
    tokens = rng.integers(0, vocab, (Bt, Lseq)).astype(np.int32)
    labels = rng.integers(0, C, Bt).astype(np.int32)
    labels[2] = -100
    logits, loss, G = cls_loss_grads(emb, layers, norm_f, Wc, bc, tokens, labels, dims)
    assert sorted(G) == sorted(W), (sorted(set(G) ^ set(W)))

    def fd_loss():
        return cls_loss_grads(emb, layers, norm_f, Wc, bc, tokens, labels, dims)[1]

    fd_check("cls_real", fd_loss, [(name, W[name]) for name, _ in P], G, rng_fd, max_entries=10)
    logits16, loss16, G16 = cls_loss_grads(emb, layers, norm_f, Wc, bc, tokens, labels, dims, bf16)
    meta = {"config": json.dumps(cfg), "format": "pt"}
    expected = [("tokens", tokens), ("labels", labels), ("logits", logits), ("loss", np.array([loss]))]
    expected += [("grad." + name, G[name]) for name, _ in P]
    expected += [("bf16.logits", logits16), ("bf16.loss", np.array([loss16]))]
    expected += [("bf16.grad." + name, G16[name]) for name, _ in P]
    emeta = {"what": "tokens (B, L), labels (B) (-100: ignored) and float64 class logits (B, C) of "
                     "the classifier checkpoint next to this file (cls_loss_grads: the mean over "
                     "positions of the final norm's output, then the head); loss: mean over "
                     "counted labels of -log softmax(logits)[label]; grad.NAME: float64 "
                     "gradient of loss w.r.t. parameter NAME; bf16.*: the same in bf16 "
                     "precision (r = bf16)"}
    return P, meta, expected, emeta


# --------------------------------------------------------------------------
# c2. the bidirectional model (Caduceus' BiMamba blocks) and its reverse-
# complement parameter sharing (Caduceus-PS), from Schiff et al. 2024 and the
# module definitions of kuleshov-group/caduceus: BiMambaWrapper (out =
# mamba_fwd(x) + mamba_rev(x.flip(1)).flip(1), in_proj and out_proj tied),
# RCPSEmbedding, RCPSWrapper, RCPSAddNormWrapper, RCPSLMHead on 2 d channels.


def bi_mixer(L, u, dims):
    """BiMambaWrapper: the forward mixer plus the reverse one over the reversed sequence."""
    return lm_mixer(L["f"], u, dims) + lm_mixer(L["r"], u[:, ::-1], dims)[:, ::-1]


def bi_mixer_bwd(L, u, gout, dims):
    """Reverse mode of bi_mixer: (gradient w.r.t. u, forward mixer's {key: grad},
    reverse mixer's {key: grad}); the tied projections' gradients are in both."""
    gf, Gf = lm_mixer_bwd(L["f"], u, gout, dims)
    gr, Gr = lm_mixer_bwd(L["r"], u[:, ::-1], gout[:, ::-1], dims)
    return gf + gr[:, ::-1], Gf, Gr


def bidir_weights(rng, add, d, n_layer, Vp, N, K, E):
    """The bidirectional backbone's weights (real A), each through add: per layer
    {"norm", "f": forward mixer, "r": reverse mixer sharing f's in_proj and out_proj}."""
    R = math.ceil(d / 16)
    Di = E * d
    emb = add("backbone.embedding.weight", rng.standard_normal((Vp, d)))
    layers = []
    for i in range(n_layer):
        pre = "backbone.layers.%d." % i
        L = {"norm": add(pre + "norm.weight", rng.uniform(0.7, 1.3, d))}
        for key in ("f", "r"):
            mp = pre + ("mixer.mamba_fwd." if key == "f" else "mixer.mamba_rev.")
            M = {}
            if key == "f":
                M["in_proj"] = add(mp + "in_proj.weight", rng.standard_normal((2 * Di, d)) / math.sqrt(d))
            else:
                M["in_proj"] = L["f"]["in_proj"]
            M["conv_w"] = add(mp + "conv1d.weight", rng.uniform(-0.5, 0.5, (Di, 1, K)))
            M["conv_b"] = add(mp + "conv1d.bias", rng.uniform(-0.5, 0.5, Di))
            M["x_proj"] = add(mp + "x_proj.weight", rng.standard_normal((R + 2 * N, Di)) / math.sqrt(Di))
            M["dt_w"] = add(mp + "dt_proj.weight", rng.uniform(-1, 1, (Di, R)) / math.sqrt(R))
            dt = np.exp(rng.uniform(math.log(1e-3), math.log(0.3), Di))
            M["dt_b"] = add(mp + "dt_proj.bias", dt + np.log(-np.expm1(-dt)))
            M["A_log"] = add(mp + "A_log", np.log(rng.uniform(0.5, 4.0, (Di, N))))
            M["D"] = add(mp + "D", rng.uniform(0.5, 1.5, Di))
            if key == "f":
                M["out_proj"] = add(mp + "out_proj.weight", rng.standard_normal((d, Di)) / math.sqrt(Di))
            else:
                M["out_proj"] = L["f"]["out_proj"]
            L[key] = M
        layers.append(L)
    norm_f = add("backbone.norm_f.weight", rng.uniform(0.7, 1.3, d))
    return emb, layers, norm_f


def bidir_backbone(emb, layers, norm_f, tokens, dims):
    hs, xns = [emb[tokens]], []
    for L in layers:
        xns.append(rmsnorm(hs[-1], L["norm"]))
        hs.append(hs[-1] + bi_mixer(L, xns[-1], dims))
    return hs, xns, rmsnorm(hs[-1], norm_f)


def bidir_strands(tokens, comp, rc):
    """The sequences the network runs on: the tokens, and with rc their reverse
    complements after them."""
    if not rc:
        return tokens
    return np.concatenate([tokens, comp[tokens[:, ::-1]]], axis=0)


def bidir_combine(P, comp_p, rc):
    """The strands' logits (or hidden states, comp_p None) as one: the first
    strand's plus the second's reversed, its classes complemented."""
    if not rc:
        return P
    B = P.shape[0] // 2
    second = P[B:, ::-1, :]
    return P[:B] + (second[:, :, comp_p] if comp_p is not None else second)


def caduceus_logits(emb, layers, norm_f, head, tokens, comp, comp_p, dims, rc):
    """Caduceus' own formulation, for the check below: without rc the BiMamba
    LM; with rc the RCPS modules literally, on 2 d channels (the second half a
    reverse-complemented copy, every module applied to it flipped back and
    forth in sequence and channels, the head adding both halves' logits with
    the second's classes complemented)."""
    if not rc:
        hs, xns, hf = bidir_backbone(emb, layers, norm_f, tokens, dims)
        return hf @ head.T
    d = emb.shape[1]

    def flip(x):  # RCPSWrapper.rc: reverse the sequence and the channels
        return x[:, ::-1, ::-1]

    h = np.concatenate([emb[tokens], flip(emb[comp[tokens[:, ::-1]]])], axis=-1)
    for L in layers:
        x = np.concatenate([rmsnorm(h[..., :d], L["norm"]), flip(rmsnorm(flip(h[..., d:]), L["norm"]))], axis=-1)
        out = np.concatenate([bi_mixer(L, x[..., :d], dims), flip(bi_mixer(L, flip(x[..., d:]), dims))], axis=-1)
        h = h + out
    hf = np.concatenate([rmsnorm(h[..., :d], norm_f), flip(rmsnorm(flip(h[..., d:]), norm_f))], axis=-1)
    return hf[..., :d] @ head.T + hf[..., d:][..., ::-1] @ head[comp_p].T


def bidir_loss_grads(emb, layers, norm_f, head, tied, tokens, targets, comp, comp_p, dims, rc):
    """Mean cross-entropy of the combined logits and its gradients: (logits,
    loss, {state_dict name: grad}), by reverse mode through the strands."""
    toks = bidir_strands(tokens, comp, rc)
    hs, xns, hf = bidir_backbone(emb, layers, norm_f, toks, dims)
    P = hf @ head.T
    C = bidir_combine(P, comp_p, rc)
    loss, gC = xent_mean(C, targets)
    gP = np.concatenate([gC, gC[:, ::-1, :][:, :, comp_p]], axis=0) if rc else gC
    d = hf.shape[-1]
    G = {}
    ghead = gP.reshape(-1, gP.shape[-1]).T @ hf.reshape(-1, d)
    gh, G["backbone.norm_f.weight"] = rmsnorm_bwd(hs[-1], norm_f, gP @ head)
    for i in range(len(layers) - 1, -1, -1):
        gxn, Gf, Gr = bi_mixer_bwd(layers[i], xns[i], gh, dims)
        gx, G["backbone.layers.%d.norm.weight" % i] = rmsnorm_bwd(hs[i], layers[i]["norm"], gxn)
        gh = gh + gx
        for k, v in Gf.items():
            G["backbone.layers.%d.mixer.mamba_fwd.%s" % (i, LAYER_NAMES[k][len("mixer."):])] = v
        for k, v in Gr.items():
            if k in ("in_proj", "out_proj"):
                G["backbone.layers.%d.mixer.mamba_fwd.%s" % (i, LAYER_NAMES[k][len("mixer."):])] += v
            else:
                G["backbone.layers.%d.mixer.mamba_rev.%s" % (i, LAYER_NAMES[k][len("mixer."):])] = v
    gemb = np.zeros(emb.shape)
    np.add.at(gemb, toks.reshape(-1), gh.reshape(-1, d))
    G["backbone.embedding.weight"] = gemb
    if tied:
        G["backbone.embedding.weight"] += ghead
    else:
        G["lm_head.weight"] = ghead
    return C, loss, G


def make_bidir(rng, rc, tied, rng_fd):
    """A small bidirectional model over a DNA-like vocabulary of 12 (the last
    five are A C G T N; the complement swaps A-T and C-G), masked-LM-like
    targets (about half ignored), with and without reverse-complement sharing."""
    d, n_layer, vocab, N, K, E = 16, 2, 12, 4, 4, 2
    mult = 8
    Vp = (vocab + mult - 1) // mult * mult
    comp = np.array([0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11], dtype=np.int64)
    comp_p = np.concatenate([comp, np.arange(vocab, Vp)])
    cfg = {"d_model": d, "n_layer": n_layer, "vocab_size": vocab,
           "ssm_cfg": {"d_state": N, "d_conv": K, "expand": E, "dt_rank": "auto", "init": "s4d-real"},
           "rms_norm": True, "tie_embeddings": tied, "pad_vocab_size_multiple": mult, "arch": "mamba-bidir"}
    if rc:
        cfg["rc_equivariant"] = True
        cfg["rc_complement"] = [int(c) for c in comp]
    dims = (E * d, math.ceil(d / 16), N, False)
    P, W, add = param_table()
    emb, layers, norm_f = bidir_weights(rng, add, d, n_layer, Vp, N, K, E)
    head = emb if tied else add("lm_head.weight", rng.standard_normal((Vp, d)) / 2.0)
    Bt, Lseq = 2, 13
    tokens = rng.integers(0, vocab, (Bt, Lseq)).astype(np.int32)
    targets = rng.integers(7, 11, (Bt, Lseq)).astype(np.int32)
    targets[rng.random((Bt, Lseq)) < 0.5] = -100
    assert np.any(targets != -100)
    logits, loss, G = bidir_loss_grads(emb, layers, norm_f, head, tied, tokens, targets, comp, comp_p, dims, rc)
    assert sorted(G) == sorted(W), sorted(set(G) ^ set(W))
    # the strands' formulation is Caduceus' own: same logits
    ref = caduceus_logits(emb, layers, norm_f, head, tokens, comp, comp_p, dims, rc)
    assert np.max(np.abs(ref - logits)) <= 1e-12 * np.max(np.abs(ref)), np.max(np.abs(ref - logits))

    def fd_loss():  # finite differences of Caduceus' formulation
        return xent_mean(caduceus_logits(emb, layers, norm_f, head, tokens, comp, comp_p, dims, rc), targets)[0]

    tag = "bidir_rc" if rc else "bidir"
    fd_check(tag, fd_loss, [(name, W[name]) for name, _ in P], G, rng_fd, max_entries=8)
    meta = {"config": json.dumps(cfg), "format": "pt"}
    expected = [("tokens", tokens), ("logits", logits), ("targets", targets), ("loss", np.array([loss]))]
    expected += [("grad." + name, G[name]) for name, _ in P]
    emeta = {"what": "tokens (B, L), float64 logits (B, L, vocab_padded) of the mamba-bidir checkpoint "
                     "next to this file (with rc_equivariant: Caduceus-PS's, f(x)[t, v] + f(rc x)[L-1-t, "
                     "comp v]); targets (B, L) (-100: ignored) at the positions themselves; loss: mean "
                     "over counted targets of -log softmax(logits)[target]; grad.NAME: float64 gradient "
                     "of loss w.r.t. parameter NAME (the tied in_proj and out_proj gather both mixers')"}
    return P, meta, expected, emeta


# --------------------------------------------------------------------------
# d. the draw of a generation step (mb_sample_bits, mb_sample_pick): the
# counter-based generator in Python integers and the rule in float64 by
# sorting (stable, so equal probabilities rank by index), as ops.h states it

M64 = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def sample_bits(seed, count, row):
    return mix64(mix64(mix64(seed) ^ (count & M64)) ^ (row & 0xFFFFFFFF)) >> 41


def sample_pick(z, T, top_p, u):
    """The class and its margin: how far (relative to the kept mass) u's
    target and every nucleus cut are from flipping."""
    q = np.exp((z - z.max()) / T)
    tot = q.sum()
    margin = 1.0
    if top_p < 1:
        order = np.argsort(-q, kind="stable")
        above = np.concatenate([[0.0], np.cumsum(q[order])[:-1]])
        keep = np.zeros(len(z), bool)
        keep[order] = above < top_p * tot
        margin = np.min(np.abs(above - top_p * tot)) / tot
        w = np.where(keep, q, 0.0)
    else:
        w = q
    c = np.cumsum(w)
    target = u * c[-1]
    k = int(np.searchsorted(c, target, side="right"))
    lo = c[k - 1] if k > 0 else 0.0
    margin = min(margin, (c[k] - target) / c[-1], (target - lo) / c[-1])
    return k, margin


def make_sample(rng):
    """Cases with every margin above 1e-6, so float32 logits read back and a
    float64 rule elsewhere must give the same class."""
    R, VMAX = 48, 256
    Ts = [1.0, 0.5, 1.7, 0.05]
    Ps = [1.0, 0.9, 0.5, 0.1]
    logits = np.zeros((R, VMAX), np.float32)
    vocab = np.zeros(R, np.int32)
    temp = np.zeros(R, np.float32)
    top_p = np.zeros(R, np.float32)
    seed = np.zeros(R, np.int64)
    count = np.zeros(R, np.int64)
    row = np.zeros(R, np.int32)
    bits = np.zeros(R, np.int64)
    cls = np.zeros(R, np.int32)
    r = 0
    while r < R:
        V = (256, 37, 5)[r % 3]
        z = f32(rng.normal(0.0, 2.0, V))
        T = float(np.float32(Ts[(r // 3) % 4]))
        P = float(np.float32(Ps[(r // 12) % 4]))
        sd = int(rng.integers(0, 1 << 62))
        ct = int(rng.integers(0, 1 << 40))
        rw = int(rng.integers(0, 200))
        b = sample_bits(sd, ct, rw)
        k, margin = sample_pick(up(z), T, P, (b + 0.5) * 2.0 ** -23)
        if margin < 1e-6:
            continue
        logits[r, :V] = z
        vocab[r], temp[r], top_p[r], seed[r], count[r], row[r], bits[r], cls[r] = V, T, P, sd, ct, rw, b, k
        r += 1
    meta = {"what": "draws of mb_sample_pick: u = (bits + 0.5) * 2^-23, bits = sample_bits(seed, count, row)"}
    return [("logits", logits), ("vocab", vocab), ("temperature", temp), ("top_p", top_p), ("seed", seed),
            ("count", count), ("row", row), ("bits", bits), ("class", cls)], meta


# --------------------------------------------------------------------------
# e. the SaShiMi U-Net of Mamba blocks (mamba.h, cfg.arch MB_ARCH_SASHIMI),
# written from its description there and in the pooling header's comment:
#
#   x_0 = embedding[tokens]
#   stage s = 0..S-1 going down: dn_s = blocks(x_s) (n_layer of them, width
#       D_s), x_{s+1} = DownPool_s(dn_s): (B, L_s, D_s) read as (B, L_s/p_s,
#       p_s D_s) (the p_s fine rows of a coarse step side by side), then a
#       linear p_s D_s -> D_{s+1} = pool_expand D_s with bias
#   center: y_S = blocks(x_S) + x_S
#   stage s = S-1..0 going up: u_s = UpPool_s(y_{s+1}) + dn_s, where UpPool
#       is a linear D_{s+1} -> p_s D_s with bias on the coarse rows, shifted
#       right by one coarse step within each sequence (step 0 reads zeros),
#       read as (B, L_s, D_s); y_s = blocks(u_s) + u_s
#   logits = RMSNorm(y_0) @ lm_head^T (untied, vocab padded)
#
# A block is h = h + mixer(RMSNorm(h)) and, with mlp, then
# h = h + fc2(gelu(fc1(RMSNorm'(h)))) (hidden 2 D_s, exact erf GELU, biases).
# The mixer at width D_s is the LM's with dt_rank ceil(D_s / 16).

SA_BLOCK_NAMES = dict(LAYER_NAMES, mlp_norm="mlp_norm.weight", fc1_w="mlp.fc1.weight",
                      fc1_b="mlp.fc1.bias", fc2_w="mlp.fc2.weight", fc2_b="mlp.fc2.bias")

_erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def dgelu(x):
    return 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def sa_block(P, h, dims, mlp, r=same):
    """A U-Net block; r as lm_mixer's (bf16: the MLP's norm output, both products'
    outputs and the GELU's output rounded, the products' weights too, the biases
    not; the residual sums never)."""
    mid = h + lm_mixer(P, r(rmsnorm(h, P["norm"])), dims, r)
    if not mlp:
        return mid
    a1 = r(r(rmsnorm(mid, P["mlp_norm"])) @ r(P["fc1_w"]).T + P["fc1_b"])
    return mid + r(r(gelu(a1)) @ r(P["fc2_w"]).T + P["fc2_b"])


def sa_block_bwd(P, h, gout, dims, mlp, r=same):
    """Reverse mode of sa_block: (gradient w.r.t. h, {block key: gradient}); each
    stored activation's gradient stored as it was (r)."""
    D = h.shape[-1]
    xn = r(rmsnorm(h, P["norm"]))
    mid = h + lm_mixer(P, xn, dims, r)
    G = {}
    gmid = gout
    if mlp:
        xn2 = r(rmsnorm(mid, P["mlp_norm"]))
        a1 = r(xn2 @ r(P["fc1_w"]).T + P["fc1_b"])
        g1 = r(gelu(a1))
        go = r(gout)                                     # fc2's output was stored
        G["fc2_w"] = go.reshape(-1, D).T @ g1.reshape(-1, 2 * D)
        G["fc2_b"] = np.sum(go, axis=(0, 1))
        ga1 = r(r(go @ r(P["fc2_w"])) * dgelu(a1))
        G["fc1_w"] = ga1.reshape(-1, 2 * D).T @ xn2.reshape(-1, D)
        G["fc1_b"] = np.sum(ga1, axis=(0, 1))
        gm, G["mlp_norm"] = rmsnorm_bwd(mid, P["mlp_norm"], r(ga1 @ r(P["fc1_w"])))
        gmid = gout + gm
    gxn, GM = lm_mixer_bwd(P, xn, gmid, dims, r)
    G.update(GM)
    gh, G["norm"] = rmsnorm_bwd(h, P["norm"], gxn)
    return gmid + gh, G


def sa_stack(blocks, h, dims, mlp, r=same):
    """The stack's output and each block's input."""
    ins = []
    for P in blocks:
        ins.append(h)
        h = sa_block(P, h, dims, mlp, r)
    return h, ins


def sa_stack_bwd(blocks, ins, g, dims, mlp, r=same):
    Gs = [None] * len(blocks)
    for i in range(len(blocks) - 1, -1, -1):
        g, Gs[i] = sa_block_bwd(blocks[i], ins[i], g, dims, mlp, r)
    return g, Gs


def downpool(W, b, x, p, r=same):
    """bf16 (r): the product reads a rounded copy of its input (the stage's
    residual stream stays fp32) and its output is stored rounded."""
    Bt, L, D = x.shape
    return r(r(x).reshape(Bt, L // p, p * D) @ r(W).T + b)


def downpool_bwd(W, x, gy, p, r=same):
    Bt, L, D = x.shape
    xr = r(x).reshape(Bt * (L // p), p * D)
    gyr = r(gy).reshape(-1, gy.shape[-1])
    return r(gyr @ r(W)).reshape(x.shape), gyr.T @ xr, np.sum(gyr, axis=0)


def uppool(W, b, z, p, r=same):
    Bt, Lc, _ = z.shape
    proj = r(r(z) @ r(W).T + b)                          # (Bt, Lc, p D)
    shifted = np.zeros(proj.shape)
    shifted[:, 1:, :] = proj[:, :-1, :]                  # coarse step k reads step k-1's
    return shifted.reshape(Bt, Lc * p, proj.shape[-1] // p)


def uppool_bwd(W, z, gy, p, r=same):
    Bt, Lc, Dc = z.shape
    gs = gy.reshape(Bt, Lc, -1)
    gproj = np.zeros(gs.shape)
    gproj[:, :-1, :] = gs[:, 1:, :]                      # the last step's projection feeds nothing
    gproj = r(gproj)
    gp = gproj.reshape(-1, gproj.shape[-1])
    return r(gproj @ r(W)), gp.T @ r(z).reshape(-1, Dc), np.sum(gp, axis=0)


def sa_forward(net, tokens, r=same):
    """logits and what the reverse mode needs; r as sa_block's (the head's norm
    output and the logits rounded, as the LM's)."""
    S, pools, mlp = net["S"], net["pools"], net["mlp"]
    x, dn, ins_dn = [net["emb"][tokens]], [], []
    for s in range(S):
        d, ins = sa_stack(net["down"][s], x[s], net["dims"][s], mlp, r)
        dn.append(d)
        ins_dn.append(ins)
        x.append(downpool(net["dpool"][s]["w"], net["dpool"][s]["b"], d, pools[s], r))
    c, ins_c = sa_stack(net["center"], x[S], net["dims"][S], mlp, r)
    y = [None] * (S + 1)
    u = [None] * S
    ins_up = [None] * S
    y[S] = c + x[S]
    for s in range(S - 1, -1, -1):
        u[s] = uppool(net["upool"][s]["w"], net["upool"][s]["b"], y[s + 1], pools[s], r) + dn[s]
        o, ins_up[s] = sa_stack(net["up"][s], u[s], net["dims"][s], mlp, r)
        y[s] = o + u[s]
    logits = r(r(rmsnorm(y[0], net["norm_f"])) @ r(net["head"]).T)
    cache = {"x": x, "dn": dn, "ins_dn": ins_dn, "ins_c": ins_c, "y": y, "u": u, "ins_up": ins_up}
    return logits, cache


def sa_loss_grads(net, tokens, targets, r=same):
    """Mean cross-entropy and its gradients: (loss, {parameter name: grad})."""
    S, pools, mlp, n = net["S"], net["pools"], net["mlp"], net["n_layer"]
    logits, k = sa_forward(net, tokens, r)
    loss, glog = xent_mean(logits, targets)
    glog = r(glog)
    G = {}
    y0 = k["y"][0]
    d = y0.shape[-1]
    hf = r(rmsnorm(y0, net["norm_f"]))
    G["lm_head.weight"] = glog.reshape(-1, glog.shape[-1]).T @ hf.reshape(-1, d)
    gy, G["norm_f.weight"] = rmsnorm_bwd(y0, net["norm_f"], r(glog @ r(net["head"])))

    def put(prefix, Gs):
        for i, GL in enumerate(Gs):
            for key, v in GL.items():
                G["%s.layers.%d.%s" % (prefix, i, SA_BLOCK_NAMES[key])] = v

    gdn = [None] * S
    for s in range(S):                                   # up the levels: y_s = up(u_s) + u_s
        gu, Gs = sa_stack_bwd(net["up"][s], k["ins_up"][s], gy, net["dims"][s], mlp, r)
        gu = gu + gy
        put("up.%d" % s, Gs)
        gdn[s] = gu                                      # the skip
        gy, G["up.%d.pool.linear.weight" % s], G["up.%d.pool.linear.bias" % s] = \
            uppool_bwd(net["upool"][s]["w"], k["y"][s + 1], gu, pools[s], r)
    gx, Gs = sa_stack_bwd(net["center"], k["ins_c"], gy, net["dims"][S], mlp, r)
    gx = gx + gy                                         # y_S = center(x_S) + x_S
    put("center", Gs)
    for s in range(S - 1, -1, -1):                       # and down: x_{s+1} = DownPool(dn_s)
        gd, G["down.%d.pool.linear.weight" % s], G["down.%d.pool.linear.bias" % s] = \
            downpool_bwd(net["dpool"][s]["w"], k["dn"][s], gx, pools[s], r)
        gx, Gs = sa_stack_bwd(net["down"][s], k["ins_dn"][s], gd + gdn[s], net["dims"][s], mlp, r)
        put("down.%d" % s, Gs)
    gemb = np.zeros(net["emb"].shape)
    np.add.at(gemb, tokens.reshape(-1), gx.reshape(-1, d))
    G["backbone.embedding.weight"] = gemb
    assert n == len(net["center"])
    return loss, G


def make_sashimi(rng, is_complex, mlp, n_layer, N, rng_fd, bf16_only=False):
    """A tiny U-Net drawn away from its initialization (norms, D, biases not
    at 1 and 0; delta = softplus(dt bias) in [0.3, 1] so that A_log's and
    dt_proj's gradients are not tiny), its logits, loss and gradients;
    bf16_only: those of bf16 precision instead (bf16.*)."""
    d, vocab, K, E, pools, pool_expand = 8, 11, 4, 2, [2, 2], 2
    S = len(pools)
    mult = 8
    Vp = (vocab + mult - 1) // mult * mult
    widths = [d]
    for s in range(S):
        widths.append(widths[-1] * pool_expand)
    # the config exactly as mb_model_save writes it (mb_config_to_json; the
    # top-level dt_rank resolved for d_model, the stages' own are "auto")
    ssm = json.dumps({"layer": "Mamba1", "d_state": N, "d_conv": K, "expand": E,
                      "dt_rank": math.ceil(d / 16)}, separators=(",", ":"))[:-1]
    ssm += ',"dt_min":0.001,"dt_max":0.1,"dt_init_floor":0.0001,"init":"%s"}' % (
        "s4d-lin" if is_complex else "s4d-real")
    config = ('{"d_model":%d,"d_intermediate":0,"n_layer":%d,"vocab_size":%d,"ssm_cfg":%s,'
              '"attn_layer_idx":[],"attn_cfg":{},"rms_norm":true,"residual_in_fp32":true,'
              '"fused_add_norm":false,"pad_vocab_size_multiple":%d,"tie_embeddings":false,'
              '"norm_epsilon":1e-05,"pool":[%s],"pool_expand":%d,"mlp":%s,'
              '"arch":"sashimi-mamba"}' % (d, n_layer, vocab, ssm, mult,
                                            ",".join(str(p) for p in pools), pool_expand,
                                            "true" if mlp else "false"))
    json.loads(config)
    nBC = 2 * N if is_complex else N
    dims = [(E * w, math.ceil(w / 16), nBC, is_complex) for w in widths]

    P, W, add = param_table()

    def block(prefix, w):
        Di, R = E * w, math.ceil(w / 16)
        B = {}
        pre = prefix + "."
        B["norm"] = add(pre + "norm.weight", rng.uniform(0.7, 1.3, w))
        B["in_proj"] = add(pre + "mixer.in_proj.weight",
                           rng.standard_normal((2 * Di, w)) / math.sqrt(w))
        B["conv_w"] = add(pre + "mixer.conv1d.weight", rng.uniform(-0.5, 0.5, (Di, 1, K)))
        B["conv_b"] = add(pre + "mixer.conv1d.bias", rng.uniform(-0.5, 0.5, Di))
        B["x_proj"] = add(pre + "mixer.x_proj.weight",
                          rng.standard_normal((R + 2 * nBC, Di)) / math.sqrt(Di))
        B["dt_w"] = add(pre + "mixer.dt_proj.weight", rng.uniform(-1, 1, (Di, R)) / math.sqrt(R))
        dt = rng.uniform(0.3, 1.0, Di)                    # softplus(bias): inverse softplus
        B["dt_b"] = add(pre + "mixer.dt_proj.bias", dt + np.log(-np.expm1(-dt)))
        B["A_log"] = add(pre + "mixer.A_log", np.log(rng.uniform(0.3, 2.0, (Di, N))))
        if is_complex:
            B["A_imag"] = add(pre + "mixer.A_imag", rng.uniform(-3.0, 3.0, (Di, N)))
        B["D"] = add(pre + "mixer.D", rng.uniform(0.5, 1.5, Di))
        B["out_proj"] = add(pre + "mixer.out_proj.weight",
                            rng.standard_normal((w, Di)) / math.sqrt(Di))
        if mlp:
            B["mlp_norm"] = add(pre + "mlp_norm.weight", rng.uniform(0.7, 1.3, w))
            B["fc1_w"] = add(pre + "mlp.fc1.weight", rng.standard_normal((2 * w, w)) / math.sqrt(w))
            B["fc1_b"] = add(pre + "mlp.fc1.bias", rng.uniform(-0.5, 0.5, 2 * w))
            B["fc2_w"] = add(pre + "mlp.fc2.weight",
                             rng.standard_normal((w, 2 * w)) / math.sqrt(2 * w))
            B["fc2_b"] = add(pre + "mlp.fc2.bias", rng.uniform(-0.5, 0.5, w))
        return B

    def pool(prefix, n_out, n_in):
        return {"w": add(prefix + ".linear.weight", rng.standard_normal((n_out, n_in)) / math.sqrt(n_in)),
                "b": add(prefix + ".linear.bias", rng.uniform(-0.5, 0.5, n_out))}

    net = {"S": S, "pools": pools, "mlp": mlp, "n_layer": n_layer, "dims": dims,
           "down": [], "dpool": [], "up": [None] * S, "upool": [None] * S}
    net["emb"] = add("backbone.embedding.weight", rng.standard_normal((Vp, d)))
    for s in range(S):
        net["down"].append([block("down.%d.layers.%d" % (s, i), widths[s]) for i in range(n_layer)])
        net["dpool"].append(pool("down.%d.pool" % s, widths[s + 1], pools[s] * widths[s]))
    net["center"] = [block("center.layers.%d" % i, widths[S]) for i in range(n_layer)]
    for s in range(S - 1, -1, -1):
        net["upool"][s] = pool("up.%d.pool" % s, pools[s] * widths[s], widths[s + 1])
        net["up"][s] = [block("up.%d.layers.%d" % (s, i), widths[s]) for i in range(n_layer)]
    net["norm_f"] = add("norm_f.weight", rng.uniform(0.7, 1.3, d))
    net["head"] = add("lm_head.weight", rng.standard_normal((Vp, d)) / 2.0)

    Bt, Lseq = 2, 16
    tokens = rng.integers(0, vocab, (Bt, Lseq)).astype(np.int32)
    targets = rng.integers(0, vocab, (Bt, Lseq)).astype(np.int32)
    targets[rng.random((Bt, Lseq)) < 0.2] = -100
    assert np.any(targets != -100) and np.any(targets == -100)
    logits, _ = sa_forward(net, tokens)
    loss, G = sa_loss_grads(net, tokens, targets)
    assert sorted(G) == sorted(W), (sorted(set(G) ^ set(W)))

    def fd_loss():
        return xent_mean(sa_forward(net, tokens)[0], targets)[0]

    assert abs(fd_loss() - loss) <= 1e-14 * abs(loss)
    tag = "sashimi_%s%s" % ("complex" if is_complex else "real", "_mlp" if mlp else "")
    # three steps: the center's dt_proj and A_log gradients are ~5e-6 (its
    # four coarse steps feed the loss only through two shifted UpPools), and
    # at 1e-3 the differences' cancellation noise reaches 1e-7 of them, while
    # 1e-2 is too coarse for some complex tensors' curvature
    fd_check(tag, fd_loss, [(name, W[name]) for name, _ in P], G, rng_fd, max_entries=10,
             steps=[1e-3, 3e-3, 1e-2])

    meta = {"config": config, "format": "pt"}
    what = ("tokens (B, L) and float64 logits (B, L, vocab_padded) of the SaShiMi "
            "U-Net checkpoint next to this file; targets (B, L) (-100: ignored); loss: "
            "mean over counted targets of -log softmax(logits)[target] (softmax over "
            "all vocab_padded entries); grad.NAME: float64 gradient of loss w.r.t. "
            "parameter NAME")
    if bf16_only:
        logits16 = sa_forward(net, tokens, bf16)[0]
        loss16, G16 = sa_loss_grads(net, tokens, targets, bf16)
        assert loss16 == xent_mean(logits16, targets)[0]
        expected = [("tokens", tokens), ("targets", targets), ("bf16.logits", logits16),
                    ("bf16.loss", np.array([loss16]))]
        expected += [("bf16.grad." + name, G16[name]) for name, _ in P]
        return P, meta, expected, {"what": what.replace("float64 logits", "bf16.logits: float64 logits")
                                   + "; bf16.*: those of bf16 precision (sa_loss_grads with r = bf16)"}
    expected = [("tokens", tokens), ("logits", logits), ("targets", targets),
                ("loss", np.array([loss]))]
    expected += [("grad." + name, G[name]) for name, _ in P]
    return P, meta, expected, {"what": what}


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(SEED)
    rng_g = np.random.default_rng(SEED + 1)    # gradient-test draws (weights, targets)
    rng_fd = np.random.default_rng(SEED + 2)   # which entries the fd check visits
    sizes = {}

    def w(name, tensors, meta):
        sizes[name] = write_safetensors(os.path.join(OUT_DIR, name), tensors, meta)

    w("scan_real.safetensors", *make_scan(rng, False, rng_g, rng_fd))
    w("scan_complex.safetensors", *make_scan(rng, True, rng_g, rng_fd))
    # the lanes' scans: generators of their own (the files above stay byte-identical);
    # A_imag up to 40 turns the decay through every quadrant (dt A_imag to ~56 rad)
    for cplx in (False, True):
        r_l = np.random.default_rng(SEED + 20 + cplx)
        w("scan_%s_lanes.safetensors" % ("complex" if cplx else "real"),
          *make_scan(r_l, cplx, np.random.default_rng(SEED + 22 + cplx), np.random.default_rng(SEED + 24 + cplx),
                     dims=(2, 24, 16, 10), imag=40.0, tag_extra="_lanes"))
    w("conv.safetensors", *make_conv(rng))
    for tag, cplx, tied in (("real", False, True), ("complex", True, False)):
        P, meta, exp, emeta = make_lm(rng, cplx, tied, rng_g, rng_fd)
        w("lm_%s.safetensors" % tag, P, meta)
        w("lm_%s_expected.safetensors" % tag, exp, emeta)
    w("sample.safetensors", *make_sample(np.random.default_rng(SEED + 3)))
    # the U-Nets: generators of their own (the files above stay byte-identical)
    rng_sa = np.random.default_rng(SEED + 4)       # weights, tokens, targets
    rng_sa_fd = np.random.default_rng(SEED + 5)    # which entries the fd check visits
    for tag, cplx, mlp, n_layer, N in (("real", False, False, 2, 3), ("complex", True, False, 1, 4),
                                       ("real_mlp", False, True, 1, 4), ("complex_mlp", True, True, 1, 3)):
        P, meta, exp, emeta = make_sashimi(rng_sa, cplx, mlp, n_layer, N, rng_sa_fd)
        w("sashimi_%s.safetensors" % tag, P, meta)
        w("sashimi_%s_expected.safetensors" % tag, exp, emeta)
    # the U-Net in bf16 precision: real A, an MLP, one block a stage
    P, meta, exp, emeta = make_sashimi(np.random.default_rng(SEED + 8), False, True, 1, 3,
                                       np.random.default_rng(SEED + 9), bf16_only=True)
    w("sashimi_bf16.safetensors", P, meta)
    w("sashimi_bf16_expected.safetensors", exp, emeta)
    # the classifier: generators of its own (the files above stay byte-identical)
    P, meta, exp, emeta = make_cls(np.random.default_rng(SEED + 6), np.random.default_rng(SEED + 7))
    w("cls_real.safetensors", P, meta)
    w("cls_real_expected.safetensors", exp, emeta)
    # the bidirectional models: generators of their own (the files above stay byte-identical)
    for tag, rc, tied, seed in (("bidir", False, False, 10), ("bidir_rc", True, True, 12)):
        P, meta, exp, emeta = make_bidir(np.random.default_rng(SEED + seed), rc, tied,
                                         np.random.default_rng(SEED + seed + 1))
        w("%s.safetensors" % tag, P, meta)
        w("%s_expected.safetensors" % tag, exp, emeta)
    for k, v in sizes.items():
        print("%-38s %7d bytes" % (k, v))
        # the U-Nets' center stage alone is ~7k floats at width 32 (d_inner 64)
        # the LMs' expected files hold fp32 and bf16 gradients
        assert v < (256_000 if k.startswith("sashimi") else 200_000 if k.startswith(("lm_", "cls_")) else 100_000), k
    return 0


if __name__ == "__main__":
    sys.exit(main())
