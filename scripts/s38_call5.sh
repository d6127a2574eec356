#!/usr/bin/env bash
# Session 38's fifth device call (carry .deps): this tree and two trees broken by hand on purpose,
# break-split-ddt (the split threads' ddt sum dropped in the backward's chunk kernel) and
# break-locals-part (the locals kernel's split threads both on the channel's first half), each
# built with its GPU suites: this tree's must PASS, the broken trees' must FAIL. No benchmark.
# Output: stdout (each tree's status, the broken trees' largest errors) and $OUT/trial_*.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 400 bash scripts/gpu_trial.sh break-split-ddt,break-locals-part "-" |
    grep -v "^== .*no .*bench/none"
for b in break-split-ddt break-locals-part; do
    echo "== $b: the comparisons past their tolerance (rel err 1e-5 and up)"
    tar -xzOf "/tmp/trial_check_$b/stage_logs.tar.gz" 3_test_gpu.log |
        grep -E "rel err [0-9.]+e-0[0-5]|rel err [0-9.]+e\+|rel err nan|Failed|FAILED" | head -8
done
