#!/usr/bin/env bash
# Our scan and mamba_ssm's on one lent GPU, for issue 14's comparison. Carry .deps and mamba's
# scan sources (not in this repository; get them where there is a network, into an ignored path):
#
#   git clone --depth 1 https://github.com/state-spaces/mamba /tmp/mamba &&
#       mkdir -p .ref && cp -r /tmp/mamba/csrc/selective_scan .ref/
#   bash scripts/gpu_mamba_ssm.sh [SRC] [--quick]       (SRC default .ref/selective_scan)
#
# mamba_ssm's extension takes minutes to build: if one call's ten minutes do not hold it all, run
# `python3 scripts/mamba_ssm_scan.py SRC --build-only` after gpu_check.sh build in a first call;
# its build (build-gpu/mamba_ssm_ext) stays on the warm machine for this script in the next.
#
# builds libmamba (gpu_check.sh build: the GPU suites too), runs `bench_gpu --scan` (fp32 and
# bf16 activations) and scripts/mamba_ssm_scan.py (mamba_ssm's extension built with its own nvcc
# flags, then the same rows in fp32 and bf16). Output: stdout, $OUT/ours.txt, $OUT/mamba_ssm.txt.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
SRC=.ref/selective_scan
QUICK=
for a in "$@"; do
    case "$a" in
    --quick) QUICK=--quick ;;
    -*) echo "usage: $0 [SRC] [--quick]" >&2; exit 2 ;;
    *) SRC=$a ;;
    esac
done
[ -f "$SRC/selective_scan.cpp" ] || { echo "gpu_mamba_ssm: error: $SRC: no selective_scan.cpp (see this script's header)" >&2; exit 1; }
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-200} OUT=/tmp/gpu_mamba_ssm_check bash scripts/gpu_check.sh build >/tmp/gpu_mamba_ssm_check.log 2>&1
grep -E "\| (build|test_gpu) " /tmp/gpu_mamba_ssm_check.log
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_runtime
# mamba_ssm's build first (minutes, on every core), then the two benchmarks one after the other
timeout 480 python3 scripts/mamba_ssm_scan.py "$SRC" $QUICK >"$OUT/mamba_ssm.txt" 2>"$OUT/mamba_ssm.err"
echo "mamba_ssm_scan rc=$?"
timeout 300 build-gpu/bench/bench_gpu --scan >"$OUT/ours.txt" 2>&1
echo "== libmamba (bench_gpu --scan)"
grep -E "^GPU|^\| +[0-9]|^Selective|bf16" "$OUT/ours.txt"
echo "== mamba_ssm"
cat "$OUT/mamba_ssm.txt"
tail -3 "$OUT/mamba_ssm.err"
