#!/usr/bin/env bash
# Session 36's second device call, on the machine that ran scripts/s36_call1.sh (its trial builds
# in /tmp/trial_src_*/build-gpu): the timed runs that call 1's header lists.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
source scripts/deps.sh; deps_runtime
for r in 1 2; do
  for who in base scan-cursor-in; do
    echo "== scan $who round $r"; timeout 40 "$(trial_bin $who bench_gpu)" --scan | grep -E "^\| +[0-9]"
  done
  for who in base cluster-rows scan-step-dt; do
    echo "== generate dna $who round $r"; timeout 30 "$(trial_bin $who bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
  done
  for who in base scan-step-dt step-residual; do
    echo "== generate 130m 64 $who round $r"
    timeout 30 "$(trial_bin $who bench_generate)" --device cuda --shape 130m --batch 64 | grep -E "^\| 130m"
  done
done
echo "== generate dna MB_CUDA_STEP=cluster cluster-rows"
MB_CUDA_STEP=cluster timeout 30 "$(trial_bin cluster-rows bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
echo "== bench_gemm"; timeout 120 build-gpu/bench/bench_gemm | grep -E "^\| [a-z0-9]|^GEMMs"
