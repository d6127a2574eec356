#!/usr/bin/env bash
# Session 38's fifth device call (carry .deps): this tree, the trials scan-rs-smem (the backward's
# dB/dC sums through a shared-memory tile a warp, real A and complex A's split threads) and
# scan-rs-smem-real (real A only), and break-split-ddt (the split's ddt sum dropped by hand: its
# GPU suites must FAIL), each built with its GPU suites; bench_gpu --scan twice on this tree and
# the two rs-smem trials. Output: stdout and $OUT/trial_*.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=2 BENCH=bench_gpu timeout 500 bash scripts/gpu_trial.sh scan-rs-smem,scan-rs-smem-real,break-split-ddt "--scan" |
    grep -v "^== break-split-ddt, round"
tar -xzOf /tmp/trial_check_break-split-ddt/stage_logs.tar.gz 3_test_gpu.log | grep -E "rel err|FAIL|Failed" | grep -vE "e-0[6-9]|e-1[0-9]|0\.00e\+00" | head -12
