#!/usr/bin/env bash
# session 34, call 3 (what the device time left allows): base against scan-cursor, one round of
# bench_gpu --scan (the 2^20 rows too) and the DNA step at 2^20 in fp32; the 2.8b bf16 floor
set -uo pipefail
export OUT=${OUT:-/tmp/out}
ROUNDS=1 BENCH=bench_gpu timeout 170 bash scripts/gpu_trial.sh scan-cursor "--scan"
source scripts/deps.sh; deps_runtime
for who in base cursor; do
  bin=build-gpu/bench/bench_gpu; [ $who = base ] || bin=/tmp/trial_src_scan-cursor/build-gpu/bench/bench_gpu
  echo "== model $who"; timeout 15 $bin --train 1048576 fp32 | grep -E "^\| +dna"
done
# the floor against this GPU's measured copy bandwidth (bench_generate now probes it)
timeout 40 build-gpu/bench/bench_generate --device cuda --shape 2.8b --batch 1 --weights bf16 --tokens 32 | grep -E "^gen|^\| 2"
