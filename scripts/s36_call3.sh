#!/usr/bin/env bash
# Session 36's third device call (carry .deps): the trials cluster-rows (second version: one row's
# conv taps in registers as main; AUTO one wave, at most 4 rows a cluster) and scan-cursor-fwd
# built with their GPU suites (gpu_trial.sh, no benchmark), then, two rounds:
#   bench_gpu --scan: this tree and scan-cursor-fwd
#   bench_generate --shape dna and --shape small: this tree and cluster-rows under AUTO, and
#     cluster-rows with MB_CUDA_STEP=layer (the layer path at every row count; once)
# Output: stdout (spaces squeezed) and $OUT/c3.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
{
ROUNDS=1 BENCH=none timeout 300 bash scripts/gpu_trial.sh cluster-rows,scan-cursor-fwd "-" |
    grep -v "^== .*no .*bench/none"
source scripts/deps.sh; deps_runtime
for r in 1 2; do
  for who in base scan-cursor-fwd; do
    echo "== scan $who round $r"; timeout 40 "$(trial_bin $who bench_gpu)" --scan | grep -E "^\| +[0-9]"
  done
  for who in base cluster-rows; do
    for sh in dna small; do
      echo "== generate $sh $who round $r"
      timeout 30 "$(trial_bin $who bench_generate)" --device cuda --shape $sh | grep -E "^\| (dna|small)"
    done
  done
done
for sh in dna small; do
  echo "== generate $sh MB_CUDA_STEP=layer cluster-rows"
  MB_CUDA_STEP=layer timeout 30 "$(trial_bin cluster-rows bench_generate)" --device cuda --shape $sh | grep -E "^\| (dna|small)"
done
} > "$OUT/c3.txt" 2>&1
sed -E 's/ +/ /g; s/ \| sample / s /' "$OUT/c3.txt"
