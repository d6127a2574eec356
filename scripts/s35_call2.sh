#!/usr/bin/env bash
# The next session's second device call (written in session 34, carry .deps): the trial gen-pin-A
# against this tree on the 64-row steps (fp32, TF32, bf16 precision rows); the bf16-precision rows
# (first run); where the 130m step's time goes at 64 rows with TF32 and in bf16 precision (each
# kernel timed by Nsight Compute), to choose the next step toward 100k tokens/s
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
timeout 280 bash scripts/gpu_trial.sh gen-pin-A "--device cuda --shape 130m --batch 64"
source scripts/deps.sh; deps_runtime
echo "== bf16 precision rows"; timeout 90 build-gpu/bench/bench_generate --device cuda --weights bf16p | grep -E "^gen|^\| "
timeout 110 bash scripts/gpu_profile.sh gen 130m 64 200 tf32 2>&1 | tail -30
