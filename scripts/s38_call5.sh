#!/usr/bin/env bash
# Session 38's fifth device call (carry .deps): this tree, the trial scan-tmax (the forward's
# chunks up to 4096 steps, its carry up to 512 chunks: the 2^20 rows' chunk counts) and
# break-split-ddt (the split threads' ddt sum dropped by hand: its GPU suites must FAIL), each
# built with its GPU suites; bench_gpu --scan twice on this tree and scan-tmax (the accuracy table
# over 2^20 steps in $OUT/trial_*.txt). Output: stdout and $OUT/trial_*.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=2 BENCH=bench_gpu timeout 420 bash scripts/gpu_trial.sh break-split-ddt,scan-tmax "--scan"
echo "== break-split-ddt (must fail): its comparisons past 1e-5"
tar -xzOf /tmp/trial_check_break-split-ddt/stage_logs.tar.gz 3_test_gpu.log |
    grep -E "rel err [0-9.]+e-0[0-4]|rel err [0-9.]+e\+|rel err nan|Failed|FAILED" | head -8
echo "== accuracy over 2^20 steps: base, scan-tmax"
grep -h -A1 "CPU fp32 (libm)" "$OUT"/trial_base_1.txt "$OUT"/trial_scan-tmax_1.txt 2>/dev/null | head -8
