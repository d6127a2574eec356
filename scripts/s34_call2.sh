#!/usr/bin/env bash
# session 34, call 2 (same warm machine: build-gpu kept): norm-row-put A/B on bench_generate
# 130m at 64 rows; this tree's TF32 generation rows; racecheck of the two long LM tests
set -uo pipefail
export OUT=${OUT:-/tmp/out}
source scripts/deps.sh
[ -x build-gpu/bench/bench_generate ] || GPU_CHECK_BUDGET=200 OUT=/tmp/base_check bash scripts/gpu_check.sh build | tail -3
T=$PWD/build-trial-src; rm -rf "$T"; mkdir -p "$T"; tar -c --exclude="./build*" --exclude=./.deps --exclude=./.ref --exclude=./.git --exclude=./gpu-check-out . | tar -x -C "$T"; ln -s "$PWD/.deps" "$T/.deps"
patch -s -d "$T" -p1 <bench/trials/norm-row-put.patch || exit 1
(cd "$T" && GPU_CHECK_BUDGET=200 OUT=/tmp/nrp_check bash scripts/gpu_check.sh build) >"$OUT/nrp_check.txt" 2>&1
grep -E "\| (build|test_gpu) " "$OUT/nrp_check.txt"
deps_runtime
for r in 1 2; do for who in base norm-row-put; do
  bin=build-gpu/bench/bench_generate; [ $who = base ] || bin=$T/build-gpu/bench/bench_generate
  echo "== gen $who round $r"; timeout 60 $bin --device cuda --shape 130m --batch 64 | grep -E "^\| "
  timeout 60 $bin --device cuda --shape 2.8b --batch 64 --tokens 32 | grep -E "^\| "
done; done
echo "== tf32 rows (base)"; timeout 150 build-gpu/bench/bench_generate --device cuda --weights tf32 | grep -E "^\| |floor"
PARTS="test_lm_cluster test_lm_wide test_lm_wide_bf16" timeout 200 bash scripts/gpu_sanitize.sh racecheck 190 2>&1 | tail -15
cd "$OUT" && tar czf logs.tgz ./*.txt 2>/dev/null; ls "$OUT"
