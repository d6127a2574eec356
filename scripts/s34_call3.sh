#!/usr/bin/env bash
# session 34, call 3: base against scan-both, bench_gpu --scan (2^20 rows too) and --train 2^20 fp32, bf16 (the
# DNA step), two rounds; then the 64-row 130m generation step's kernels with TF32
set -uo pipefail
export OUT=${OUT:-/tmp/out}
BENCH=bench_gpu timeout 300 bash scripts/gpu_trial.sh scan-both "--scan"
source scripts/deps.sh; deps_runtime
for r in 1 2; do for who in base both; do
  bin=build-gpu/bench/bench_gpu; [ $who = base ] || bin=/tmp/trial_src_scan-both/build-gpu/bench/bench_gpu
  echo "== model $who round $r"; for p in fp32 bf16; do timeout 60 $bin --train 1048576 $p | grep -E "^\| +dna"; done
done; done
timeout 150 bash scripts/gpu_profile.sh gen 130m 64 200 tf32 2>&1 | tail -30
cd "$OUT" && tar czf logs.tgz ./*.txt ./*.csv 2>/dev/null; ls "$OUT"
