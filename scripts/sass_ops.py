#!/usr/bin/env python3
"""Registers, spills and SASS opcode counts of a CUDA source's kernels, without a GPU.

    python3 scripts/sass_ops.py libmamba/src/ops/scan.cu 'scan_fwd_outILi16ELb1' [OTHER.cu]

Compiles the file for sm_90 with nvcc (-cubin, the library's include paths), prints ptxas's
registers and spill bytes for each kernel whose mangled name matches the regex, then the
counts of the opcodes that tell a scan kernel's pipes apart (MUFU and conversions on the XU,
FFMA/FMUL/FADD on the FMA pipe, shared and local memory). With a second source (say the same
file at another commit, from `git show REV:PATH > /tmp/old.cu`) it prints both side by side.

nvdisasm is not in the CUDA toolkit this machine has; it comes from PyPI:
    pip download --no-deps nvidia-cuda-nvdisasm -d /tmp/nvtools
    python3 -m zipfile -e /tmp/nvtools/nvidia_cuda_nvdisasm-*.whl /tmp/nvtools/x
and is found there, in PATH or at $NVDISASM. Static counts: a loop's body counts once.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NVCC = os.environ.get("NVCC", "/usr/local/cuda/bin/nvcc")
OPS = ["MUFU", "FRND", "F2I", "I2F", "FFMA", "FMUL", "FADD", "IMAD", "LEA", "SHFL", "LDS", "STS",
       "LDG", "STG", "LDL", "STL", "BAR"]


def nvdisasm():
    for p in [os.environ.get("NVDISASM"), shutil.which("nvdisasm")] + \
            glob.glob("/tmp/nvtools/x/nvidia/*/bin/nvdisasm"):
        if p and os.path.exists(p):
            return p
    sys.exit("sass_ops: nvdisasm not found (see this script's docstring)")


def build(src, cubin):
    cmd = [NVCC, "-DMB_HAVE_CUDA=1", "-I" + ROOT + "/libmamba/include", "-I" + ROOT + "/libmamba/src",
           "-O3", "-DNDEBUG", "-arch=sm_90", "-std=c++17", "-cubin", "-Xptxas", "-v", "-o", cubin, src]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit("sass_ops: nvcc failed:\n" + r.stderr[-3000:])
    regs, cur, spill = {}, None, "0/0"
    for line in r.stderr.splitlines():
        m = re.search(r"Compiling entry function '(\S+)'", line)
        if m:
            cur = m.group(1)
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            spill = m.group(1) + "/" + m.group(2)
        m = re.search(r"Used (\d+) registers", line)
        if m and cur:
            regs[cur] = (int(m.group(1)), spill)
    return regs


def opcodes(cubin):
    out = subprocess.run([nvdisasm(), "-c", cubin], capture_output=True, text=True, check=True).stdout
    secs, cur = {}, None
    for line in out.splitlines():
        m = re.match(r"\s*\.text\.(\S+):", line)
        if m:
            cur = m.group(1)
            secs[cur] = Counter()
            continue
        m = re.search(r"/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)", line)
        if cur and m:
            secs[cur][m.group(2).split(".")[0]] += 1
    return secs


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    srcs, pat = [sys.argv[1]] + sys.argv[3:4], re.compile(sys.argv[2])
    rows = []
    for i, src in enumerate(srcs):
        cubin = "/tmp/sass_ops_%d.cubin" % i
        regs = build(src, cubin)
        for name, c in sorted(opcodes(cubin).items()):
            if pat.search(name):
                r, s = regs.get(name, (0, "?"))
                rows.append((name[:58], os.path.basename(src), r, s, sum(c.values()), [c[o] for o in OPS]))
    print("| kernel | source | regs | spill st/ld | instrs | " + " | ".join(OPS) + " |")
    print("|" + "---|" * (5 + len(OPS)))
    for name, src, r, s, n, cs in rows:
        print("| %s | %s | %d | %s | %d | %s |" % (name, src, r, s, n, " | ".join(str(x) for x in cs)))


if __name__ == "__main__":
    main()
