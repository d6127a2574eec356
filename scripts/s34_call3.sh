#!/usr/bin/env bash
# session 34, call 3: base against scan-both, bench_gpu --scan (2^20 rows) and --model (DNA step), two rounds
set -uo pipefail
source scripts/deps.sh; deps_runtime
B=/tmp/trial_src_scan-both/build-gpu/bench/bench_gpu
[ -x "$B" ] && [ -x build-gpu/bench/bench_gpu ] || { echo "builds gone"; BENCH=bench_gpu bash scripts/gpu_trial.sh scan-both "--scan" | tail -40; exit; }
for r in 1 2; do for who in base both; do
  bin=build-gpu/bench/bench_gpu; [ $who = base ] || bin=$B
  echo "== $who round $r"; timeout 100 $bin --scan | grep -E "^\| +1 \|"; timeout 120 $bin --model | grep -E "^\| "
done; done
