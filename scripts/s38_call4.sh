#!/usr/bin/env bash
# Session 38's fourth device call (carry .deps), on main with scan-bwd-split-cplx merged and the
# forward's new chunk counts (real A 1024 threads an SM, complex 2048):
#   this tree and the trial scan-bwd-split2-cplx built, GPU suites, bench_gpu --scan twice each;
#   gpu_test_scan under racecheck and memcheck (this tree);
#   the DNA training step at 2^20 in fp32 and bf16 (this tree).
# Output: stdout and $OUT.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
ROUNDS=2 BENCH=bench_gpu timeout 220 bash scripts/gpu_trial.sh scan-bwd-split2-cplx "--scan"
for tool in racecheck memcheck; do
    PARTS=gpu_test_scan timeout 110 bash scripts/gpu_sanitize.sh $tool 100 | tail -4
done
source scripts/deps.sh; deps_runtime
for p in fp32 bf16; do
    echo "== train 1048576 $p"
    timeout 70 build-gpu/bench/bench_gpu --train 1048576 $p | grep -E "^\| |GiB"
done
