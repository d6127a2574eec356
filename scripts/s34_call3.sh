#!/usr/bin/env bash
# session 34, call 3: base against scan-cursor, bench_gpu --scan (2^20 rows too) and the DNA step
# at 2^20 in fp32 (bench_gpu --train 1048576 fp32), two rounds
set -uo pipefail
export OUT=${OUT:-/tmp/out}
BENCH=bench_gpu timeout 240 bash scripts/gpu_trial.sh scan-cursor "--scan"
source scripts/deps.sh; deps_runtime
for r in 1 2; do for who in base cursor; do
  bin=build-gpu/bench/bench_gpu; [ $who = base ] || bin=/tmp/trial_src_scan-cursor/build-gpu/bench/bench_gpu
  echo "== model $who round $r"; timeout 30 $bin --train 1048576 fp32 | grep -E "^\| +dna"
done; done

# the floor against this GPU's measured copy bandwidth (bench_generate now probes it)
timeout 60 build-gpu/bench/bench_generate --device cuda --shape 2.8b --batch 1 --weights bf16 --tokens 64 | grep -E "^gen|^\| 2"
cd "$OUT" && tar czf logs.tgz ./*.txt 2>/dev/null; ls "$OUT"
