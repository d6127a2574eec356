#!/usr/bin/env bash
# The next session's first device call (written in session 36; carry .deps): the trials gemm-lt
# (fp32 / TF32 GEMMs through cublasLt plans; its GPU suites again under MB_CUDA_GEMM=sgemm, the
# old path in the same build), scan-cursor-real (second version: the forward's cursors for real
# A, complex A and the backward as main) and fused-read-cap (AUTO's GEMM layer path for the DNA
# model from 29 rows), each built with its GPU suites; no benchmark (scripts/s37_call2.sh, the
# next call on the same warm machine: the idle machine goes back after 30 s).
# Output: stdout and $OUT/trial_*.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 500 bash scripts/gpu_trial.sh gemm-lt,scan-cursor-real,fused-read-cap "-" MB_CUDA_GEMM=sgemm |
    grep -v "^== .*no .*bench/none"
