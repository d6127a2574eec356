#!/usr/bin/env bash
# The next session's first device call (written in session 34, carry .deps): this tree (its GPU
# suites include test_lm_sample_bf16, new, never run) and the trials scan-cursor and cluster-rows,
# each built with its suites (gpu_trial.sh with no benchmark); then, two rounds each,
#   bench_gpu --scan (2^20 rows too) and --train 1048576 fp32: this tree against scan-cursor
#   bench_generate --shape dna (1 to 64 rows): this tree against cluster-rows
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 300 bash scripts/gpu_trial.sh scan-cursor,cluster-rows "-"
source scripts/deps.sh; deps_runtime
for r in 1 2; do
  for who in base scan-cursor; do
    bin=build-gpu/bench/bench_gpu; [ $who = base ] || bin=/tmp/trial_src_$who/build-gpu/bench/bench_gpu
    echo "== scan $who round $r"; timeout 60 $bin --scan | grep -E "^\| +[0-9]"
    echo "== train 2^20 $who round $r"; timeout 30 $bin --train 1048576 fp32 | grep -E "^\| +dna"
  done
  for who in base cluster-rows; do
    bin=build-gpu/bench/bench_generate; [ $who = base ] || bin=/tmp/trial_src_$who/build-gpu/bench/bench_generate
    echo "== generate dna $who round $r"; timeout 60 $bin --device cuda --shape dna | grep -E "^\| dna"
  done
done
