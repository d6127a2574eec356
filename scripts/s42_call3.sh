#!/usr/bin/env bash
# Session 42, call 3 (carry .deps): main (bf16-reads, bf16-norm, scan-f32r-lean merged) against
# V = main + bench/trials/conv-rd-late.patch (the conv's run kernels load a run whole, then
# round, R16 a template argument), and K = V with the backward's rounding of dy dropped (must
# fail test_conv1d_bf16_reads). V's gpu_test_ops and gpu_test_model's bf16 tests; the DNA step at
# 2^20 in TF32 / fp32 / bf16 for main and V, alternated, two rounds.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_env
V=/tmp/lean_conv K=/tmp/lean_convk
lean_copy $V && patch -s -d $V -p1 <bench/trials/conv-rd-late.patch || echo "conv-rd-late: patch FAILED"
lean_copy $K && patch -s -d $K -p1 <bench/trials/conv-rd-late.patch &&
    sed -i 's/for (int j = 0; j < R + KT - 1; j++) g\[j\] = mb_bf16_keep(g\[j\]);/;/' $K/libmamba/src/ops/conv1d.cu
grep -c "g\[j\] = mb_bf16_keep" $V/libmamba/src/ops/conv1d.cu $K/libmamba/src/ops/conv1d.cu
lean_build "$PWD" tests/gpu_test_model bench/bench_gpu &
lean_build $V tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu &
lean_build $K tests/gpu_test_ops &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
echo "== V: gpu_test_ops ($(el) s)"
timeout 150 $V/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|[1-9][0-9]* of [0-9]+ differ" | tail -4
echo "== V: gpu_test_model *bf16* ($(el) s)"
MB_TEST_FILTER='*bf16*' timeout 150 $V/build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -4
echo "== K (break): test_conv1d_bf16_reads ($(el) s)"
MB_TEST_FILTER='*reads*' timeout 100 $K/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|[1-9][0-9]* of [0-9]+ differ" | head -3
for r in 1 2; do
    for t in main V; do
        [ "$(el)" -lt 480 ] || break 2
        b=build-lean/bench/bench_gpu
        [ $t = V ] && b=$V/build-lean/bench/bench_gpu
        echo "== round $r, $t ($(el) s)"
        for p in tf32 fp32 bf16; do timeout 40 $b --train 1048576 $p | grep -E "^\| dna"; done
    done
done
echo "== done at $(el) s"
