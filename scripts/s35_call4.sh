#!/usr/bin/env bash
# Session 35, device call 4 (carry .deps): the trials cluster-rows (its test's token buffer
# mended), scan-cursor and scan-cursor-in, each built with its GPU suites (gpu_trial.sh, no
# benchmark); then
#   bench_gpu --scan, two rounds: this tree, scan-cursor, scan-cursor-in
#   bench_generate --shape dna (1 to 64 rows): this tree and cluster-rows under AUTO (two
#   rounds), and each with the step forced, MB_CUDA_STEP=cluster and =layer (one round), to
#   set AUTO's rule from where each path wins; last, racecheck on test_lm_cluster and
#   test_lm_cluster_draws (this tree; the narrowest cluster under the sanitizers)
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 330 bash scripts/gpu_trial.sh cluster-rows,scan-cursor,scan-cursor-in "-" | grep -v "^== .*no .*bench/none"
source scripts/deps.sh; deps_runtime
bin_of() { [ "$1" = base ] && echo build-gpu/bench/$2 || echo /tmp/trial_src_$1/build-gpu/bench/$2; }
for r in 1 2; do
  for who in base scan-cursor scan-cursor-in; do
    echo "== scan $who round $r"; timeout 45 "$(bin_of $who bench_gpu)" --scan | grep -E "^\| +[0-9]"
  done
  for who in base cluster-rows; do
    echo "== generate dna AUTO $who round $r"; timeout 45 "$(bin_of $who bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
  done
done
for step in cluster layer; do
  for who in base cluster-rows; do
    echo "== generate dna MB_CUDA_STEP=$step $who"
    MB_CUDA_STEP=$step timeout 45 "$(bin_of $who bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
  done
done
# racecheck of the cluster step's model tests, now at the narrowest cluster under the sanitizers
PARTS="test_lm_cluster test_lm_cluster_draws" timeout 170 bash scripts/gpu_sanitize.sh racecheck 150 2>&1 | tail -4
