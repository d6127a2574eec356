#!/usr/bin/env bash
# The next session's first device call (written in session 34, carry .deps): this tree (its GPU
# suites include test_lm_sample_bf16, new, never run) and the trials scan-cursor and gen-pin-A,
# each built with its suites; then
#   bench_gpu --scan (2^20 rows too) and --train 1048576 fp32: this tree against scan-cursor
#   bench_generate 130m and 2.8b at 64 rows (fp32, TF32, bf16 precision): against gen-pin-A
#   bench_generate --weights bf16p: the bf16-precision rows (first run)
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=bench_gpu timeout 330 bash scripts/gpu_trial.sh scan-cursor,gen-pin-A "--scan"
source scripts/deps.sh; deps_runtime
for r in 1 2; do
  for who in base scan-cursor; do
    bin=build-gpu/bench/bench_gpu; [ $who = base ] || bin=/tmp/trial_src_$who/build-gpu/bench/bench_gpu
    echo "== train 2^20 $who round $r"; timeout 30 $bin --train 1048576 fp32 | grep -E "^\| +dna"
  done
  for who in base gen-pin-A; do
    bin=build-gpu/bench/bench_generate; [ $who = base ] || bin=/tmp/trial_src_$who/build-gpu/bench/bench_generate
    echo "== generate $who round $r"
    timeout 60 $bin --device cuda --shape 130m --batch 64 | grep -E "^\| 1"
    timeout 60 $bin --device cuda --shape 2.8b --batch 64 --tokens 32 | grep -E "^\| 2"
  done
done
echo "== bf16 precision rows"; timeout 90 build-gpu/bench/bench_generate --device cuda --weights bf16p | grep -E "^gen|^\| "
