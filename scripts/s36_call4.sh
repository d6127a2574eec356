#!/usr/bin/env bash
# Session 36's fourth device call (carry .deps): the trials cluster-rows (third version: one row's
# conv taps reloaded where main does) and scan-cursor-real (the forward's cursors for real A only)
# built with their GPU suites; bench_gpu --scan, this tree and scan-cursor-real, two rounds;
# bench_generate --shape dna and small, this tree and cluster-rows, two rounds; then racecheck of
# cluster-rows' kernels (gpu_test_ops whole and gpu_test_model's cluster tests, MB_GPU_TEST_SMALL)
# Output: stdout (spaces squeezed) and $OUT/c4.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
{
ROUNDS=1 BENCH=none timeout 240 bash scripts/gpu_trial.sh cluster-rows,scan-cursor-real "-" |
    grep -v "^== .*no .*bench/none"
source scripts/deps.sh; deps_runtime
for r in 1 2; do
  for who in base scan-cursor-real; do
    echo "== scan $who round $r"; timeout 40 "$(trial_bin $who bench_gpu)" --scan | grep -E "^\| +[0-9]"
  done
  for who in base cluster-rows; do
    echo "== generate dna+small $who round $r"
    timeout 30 "$(trial_bin $who bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
    timeout 30 "$(trial_bin $who bench_generate)" --device cuda --shape small | grep -E "^\| small"
  done
done
echo "== racecheck cluster-rows"
(cd /tmp/trial_src_cluster-rows && PARTS="gpu_test_ops test_lm_cluster test_lm_cluster_draws" OUT=/tmp/rc \
    timeout 200 bash scripts/gpu_sanitize.sh racecheck 180 | tail -6)
} > "$OUT/c4.txt" 2>&1
sed -E 's/ +/ /g; s/ \| sample / s /' "$OUT/c4.txt"
