#!/usr/bin/env bash
# session 34, call 1: three scan trials against this tree, bench_gpu --scan --quick
set -uo pipefail
export OUT=${OUT:-/tmp/out}
BENCH=bench_gpu bash scripts/gpu_trial.sh scan-cursor,scan-softplus,scan-both "--scan --quick"
cd "$OUT" && tar czf logs.tgz ./*.txt 2>/dev/null; ls "$OUT"
