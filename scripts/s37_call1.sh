#!/usr/bin/env bash
# The next session's first device call (written in session 36; carry .deps): the trials gemm-lt
# (fp32 / TF32 GEMMs through cublasLt plans; its GPU suites again under MB_CUDA_GEMM=sgemm, the
# old path in the same build), scan-cursor-real (second version: the forward's cursors for real
# A, complex A and the backward as main) and fused-read-cap (AUTO's GEMM layer path for the DNA
# model from 29 rows) and split-l2 (the split step prefetches its next GEMVs' weights into L2),
# each built with its GPU suites; no benchmark (scripts/s37_call2.sh and s37_call3.sh, the next
# calls on the same warm machine: an idle machine goes back after 30 s).
# Output: stdout and $OUT/trial_*.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 560 bash scripts/gpu_trial.sh gemm-lt,scan-cursor-real,fused-read-cap,split-l2 "-" MB_CUDA_GEMM=sgemm |
    grep -v "^== .*no .*bench/none"
