#!/usr/bin/env python3
"""mamba_ssm's own CUDA selective scan, timed as bench_gpu --scan times ours, so that one call on a
lent GPU gives both tables from one machine (issue 14: "faster than mamba_ssm's at every shape").

    python3 scripts/mamba_ssm_scan.py SRC [--quick | --build-only]

SRC is state-spaces/mamba's csrc/selective_scan directory. It is not part of this repository:
fetch it where there is a network (git clone https://github.com/state-spaces/mamba, then copy
csrc/selective_scan to an ignored path such as .ref/selective_scan) and carry it to the GPU
machine. The extension is built by torch.utils.cpp_extension with mamba_ssm's own nvcc flags
(its setup.py), for sm_90 only, into build-gpu/mamba_ssm_ext (kept between calls on a warm machine:
--build-only in one call, the rows in the next, when both would not fit one call's ten minutes).
torch checks that nvcc's CUDA major version is the one it was built with, and refuses otherwise.

The rows are bench_gpu's: the same shapes, the same input ranges (u, z, B, C, dy in [-1, 1],
delta in [-4, 0], delta bias in [-4, -2], softplus, D; A in [-3, -0.5], its imaginary part in
[0, 10]), fp32 and bf16 inputs; the forward, then forward + backward, each timed on the host
around a device synchronize, median of 10 (3 at least, fewer when a pass is slow), after a
warm-up. mamba_ssm's layout is (batch, dim, seqlen); ours is (batch, seqlen, dim): each side runs
its own, as a user of each would.
"""
import os
import statistics
import sys
import time


def build(src):
    import torch.utils.cpp_extension as ext
    names = ["selective_scan.cpp"] + [f"selective_scan_fwd_{t}.cu" for t in ("fp32", "fp16", "bf16")] + [
        f"selective_scan_bwd_{t}_{a}.cu" for t in ("fp32", "fp16", "bf16") for a in ("real", "complex")]
    sources = [os.path.join(src, n) for n in names]
    missing = [s for s in sources if not os.path.exists(s)]
    if missing:
        sys.exit(f"mamba_ssm_scan: error: {missing[0]}: not found (SRC must be mamba's csrc/selective_scan)")
    nvcc = ["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
            "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
            "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo",
            "--threads", "4", "-gencode", "arch=compute_90,code=sm_90"]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build-gpu", "mamba_ssm_ext")
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 8))
    t0 = time.time()
    mod = ext.load("selective_scan_cuda", sources, extra_cflags=["-O3", "-std=c++17"], extra_cuda_cflags=nvcc,
                   extra_include_paths=[src], build_directory=out, verbose=False)
    print(f"# built selective_scan_cuda in {time.time() - t0:.0f} s")
    return mod


def timed(fn, reps):
    import torch
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    warm = time.perf_counter() - t0
    n = reps if warm * reps <= 10.0 else max(3, int(10.0 / warm))
    ts = []
    for _ in range(n):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), n


def row(mod, B, D, L, N, cplx, dtype, reps):
    import torch
    dev = "cuda"
    g = torch.Generator(device=dev)
    g.manual_seed(B * 7919 + L + D + N + cplx)

    def uni(shape, lo, hi, dt=torch.float32):
        return (torch.rand(shape, generator=g, device=dev) * (hi - lo) + lo).to(dt)

    u = uni((B, D, L), -1, 1, dtype)
    delta = uni((B, D, L), -4, 0, dtype)
    z = uni((B, D, L), -1, 1, dtype)
    Lbc = 2 * L if cplx else L  # complex B, C: (re, im) pairs along the sequence
    Bm = uni((B, 1, N, Lbc), -1, 1, dtype)
    Cm = uni((B, 1, N, Lbc), -1, 1, dtype)
    A = uni((D, N), -3, -0.5)
    if cplx:
        A = torch.complex(A, uni((D, N), 0, 10))
    Dk = uni((D,), -1, 1)
    bias = uni((D,), -4, -2)
    dout = uni((B, D, L), -1, 1, dtype)
    state = {}

    def fwd():
        state["r"] = mod.fwd(u, delta, A, Bm, Cm, Dk, z, bias, True)

    def fwd_bwd():
        out, x, out_z = mod.fwd(u, delta, A, Bm, Cm, Dk, z, bias, True)
        mod.bwd(u, delta, A, Bm, Cm, Dk, z, bias, dout, x, out, None, True, False)

    tf, n = timed(fwd, reps)
    del state["r"]
    tb, _ = timed(fwd_bwd, reps)
    kind = "complex" if cplx else "real"
    name = "fp32" if dtype == torch.float32 else "bf16"
    print(f"| {B:2d} | {D:5d} | {L:7d} | {N:2d} | {kind:7s} | {name} | {1e3 * tf:9.3f} | {1e3 * tb:9.3f} | {n:2d} |",
          flush=True)
    del u, delta, z, Bm, Cm, dout
    torch.cuda.empty_cache()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = [a for a in sys.argv[1:] if a.startswith("--")]
    if len(args) != 1 or any(o not in ("--quick", "--build-only") for o in opts):
        print("usage: mamba_ssm_scan.py SRC [--quick | --build-only]", file=sys.stderr)
        sys.exit(2)
    quick = "--quick" in opts
    import torch
    if not torch.cuda.is_available():
        sys.exit("mamba_ssm_scan: error: no CUDA device")
    mod = build(args[0])
    if "--build-only" in opts:
        return
    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA {torch.version.cuda}")
    print("# mamba_ssm selective_scan_cuda, all options (D, z, delta bias + softplus); median of up to 10")
    print("| B  |     D |       L |  N | A       | in   |  fwd (ms) |  f+b (ms) |  n |")
    print("|----|-------|---------|----|---------|------|-----------|-----------|----|")
    shapes = [(8, 1536, 2048, 16), (1, 512, 1 << 20, 16), (16, 128, 16384, 16)]
    if quick:
        shapes = [(8, 1536, 2048, 16)]
    for dtype in (torch.float32, torch.bfloat16):
        for (B, D, L, N) in shapes:
            for cplx in (0, 1):
                row(mod, B, D, L, N, cplx, dtype, 10)


if __name__ == "__main__":
    main()
