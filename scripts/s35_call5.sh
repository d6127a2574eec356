#!/usr/bin/env bash
# Session 35's last device call (carry .deps), cut to the ~250 s left after four failed starts:
# the trials scan-step-dt and cluster-rows built with their GPU suites (gpu_trial.sh, no
# benchmark); then bench_generate, most wanted first:
#   --shape 130m --batch 64, two rounds: this tree and scan-step-dt
#   --shape dna (1 to 64 rows): this tree, scan-step-dt, cluster-rows, and cluster-rows with
#     MB_CUDA_STEP=cluster (its clusters at every row count: AUTO's rule)
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 140 bash scripts/gpu_trial.sh scan-step-dt,cluster-rows "-" |
    grep -v "^== .*no .*bench/none"
source scripts/deps.sh; deps_runtime
bin_of() { [ "$1" = base ] && echo build-gpu/bench/$2 || echo /tmp/trial_src_$1/build-gpu/bench/$2; }
for r in 1 2; do
  for who in base scan-step-dt; do
    echo "== generate 130m 64 $who round $r"
    timeout 25 "$(bin_of $who bench_generate)" --device cuda --shape 130m --batch 64 | grep -E "^\| 130m"
  done
done
for who in base scan-step-dt cluster-rows; do
  echo "== generate dna $who"; timeout 20 "$(bin_of $who bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
done
echo "== generate dna MB_CUDA_STEP=cluster cluster-rows"
MB_CUDA_STEP=cluster timeout 20 "$(bin_of cluster-rows bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
