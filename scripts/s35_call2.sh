#!/usr/bin/env bash
# The next session's second device call (written in session 34, carry .deps; build-gpu from call 1
# is reused when the machine is still warm): where the 130m step's time goes at 64 rows with TF32
# GEMMs and in bf16 precision (each kernel timed by Nsight Compute), after which the 100k
# tokens/s target's next step can be chosen; then memcheck of the new bf16 sampling test
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
timeout 200 bash scripts/gpu_profile.sh gen 130m 64 200 tf32 2>&1 | tail -30
timeout 200 bash scripts/gpu_profile.sh gen 130m 64 200 bf16p 2>&1 | tail -30
PARTS="test_lm_sample_bf16" timeout 150 bash scripts/gpu_sanitize.sh memcheck 140 2>&1 | tail -6
