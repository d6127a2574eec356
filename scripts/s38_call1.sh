#!/usr/bin/env bash
# The next session's first device call (written in session 37; carry .deps): the trials
# scan-bwd-split, scan-bwd-split2 and scan-bwd-split-cplx (the backward's chunk kernel, in split2
# its locals kernel too, with two threads a channel for d_state 16; cplx: complex A only),
# scan-poly4 and scan-poly2 (the complex forward's last 4 or 2 of 16 states a step rotated on the
# FMA pipe), scan-chunks-env (the forward's chunk count from an environment variable, to sweep
# it) and gemm-rows-tc (TF32 products of up to 64 rows in our own tensor-core kernel), each built
# with its GPU suites; no benchmark (scripts/s38_call2.sh, the next call on the
# same warm machine, then s38_call3.sh: an idle machine goes back after 30 s).
# Output: stdout and $OUT/trial_*.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 560 bash scripts/gpu_trial.sh scan-bwd-split,scan-bwd-split2,scan-bwd-split-cplx,scan-poly4,scan-poly2,scan-chunks-env,gemm-rows-tc "-" |
    grep -v "^== .*no .*bench/none"
