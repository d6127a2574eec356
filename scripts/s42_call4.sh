#!/usr/bin/env bash
# Session 42, call 4 (carry .deps): main (every merge of this session) against X = main +
# bench/trials/bf16-cvt.patch (bf16 precision's in-kernel roundings on the conversion unit).
# X's gpu_test_scan, gpu_test_ops and gpu_test_model's bf16 tests; the DNA step at 2^20 in TF32 /
# fp32 / bf16 for main and X, alternated, two rounds.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_env
X=/tmp/lean_cvt
lean_copy $X && patch -s -d $X -p1 <bench/trials/bf16-cvt.patch || echo "bf16-cvt: patch FAILED"
lean_build "$PWD" bench/bench_gpu &
lean_build $X tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
for t in gpu_test_scan gpu_test_ops; do
    echo "== X: $t ($(el) s)"
    timeout 150 $X/build-lean/tests/$t 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|[1-9][0-9]* of [0-9]+ (differ|not bf16)" | tail -4
done
echo "== X: gpu_test_model *bf16* ($(el) s)"
MB_TEST_FILTER='*bf16*' timeout 150 $X/build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -4
for r in 1 2; do
    for t in main X; do
        [ "$(el)" -lt 400 ] || break 2
        b=build-lean/bench/bench_gpu
        [ $t = X ] && b=$X/build-lean/bench/bench_gpu
        echo "== round $r, $t ($(el) s)"
        for p in tf32 fp32 bf16; do timeout 40 $b --train 1048576 $p | grep -E "^\| dna"; done
    done
done
echo "== done at $(el) s"
