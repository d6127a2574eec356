#!/usr/bin/env bash
# The next session's first device call (written in session 44; carry .deps).
#   1. main's MB_RECOMPUTE_AUTO (session 44, CPU-tested only): gpu_test_model's auto test, the
#      DNA step at 2^20 in fp32 with --auto against LAYERS and --inner, and at 2^23 in bf16, where
#      AUTO must step down to STACK.
#   2. `out-split` (bench/trials/out-split.patch: out_proj's one-row sums split over warps,
#      compiled only) against main: T = main + the patch, K = T with slice 0 taken off each
#      out_proj column's sum (must fail gpu_test_ops test_block_step); the generation rows the
#      split kernels run, alternated; T's suites and racecheck as time allows.
#   bash scripts/s45_call1.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
END=${S45_END:-480}
source scripts/lean.sh
lean_env
T=/tmp/lean_t K=/tmp/lean_k
lean_copy $T && patch -s -d $T -p1 <bench/trials/out-split.patch || echo "out-split: patch FAILED"
lean_copy $K && patch -s -d $K -p1 <bench/trials/out-split.patch &&
    sed -i 's|acc\[0\] = s; /\* lane m.s row.s sum, in acc\[0\] \*/|acc[0] = s - part[warp][lane];|' \
        $K/libmamba/src/ops/block_step_split.cu
grep -c "acc\[0\] = s - part\[warp\]\[lane\];" $K/libmamba/src/ops/block_step_split.cu
lean_build "$PWD" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate bench/bench_gpu &
lean_build $T tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build $K tests/gpu_test_ops &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
echo "== main: gpu_test_model *auto* ($(el) s)"
MB_TEST_FILTER='*auto*' timeout 60 build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|auto" | tail -4
for x in --auto "" --inner; do
    echo "== main: bench_gpu ${x:-layers} --train 1048576 fp32 ($(el) s)"
    timeout 40 build-lean/bench/bench_gpu $x --train 1048576 fp32 | grep -E "^\| dna"
done
# 2^23 tokens: LAYERS needs some 80 GiB, so on an H100 AUTO must step down to STACK (auto:stack;
# on an H200 LAYERS may fit)
echo "== main: bench_gpu --auto --train 8388608 bf16 ($(el) s)"
timeout 100 build-lean/bench/bench_gpu --auto --train 8388608 bf16 | grep -E "^\| dna"
echo "== T gpu_test_ops test_block_step ($(el) s)"
MB_TEST_FILTER=test_block_step timeout 100 $T/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|split.*(768|40 )" | tail -8
echo "== K (slice 0 dropped, must FAIL) ($(el) s)"
MB_TEST_FILTER=test_block_step timeout 100 $K/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
for r in 1 2; do
    for a in "--shape 130m --batch 1" "--shape 130m --batch 8" "--shape 2.8b --batch 1 --tokens 128 --weights bf16" \
        "--shape 2.8b --batch 1 --tokens 64"; do
        for t in $T "$PWD"; do
            [ "$(el)" -lt $((END - 45)) ] || break 3
            echo "== round $r, $(basename $t): $a ($(el) s)"
            timeout 45 $t/build-lean/bench/bench_generate --device cuda $a | grep -E "^\| .*sample"
        done
    done
done
if [ "$(el)" -lt $((END - 150)) ]; then
    echo "== T gpu_test_ops, gpu_test_model ($(el) s)"
    timeout 60 $T/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
    timeout 150 $T/build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
fi
if [ "$(el)" -lt $((END - 60)) ]; then
    echo "== T racecheck test_block_step (small) ($(el) s)"
    MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_block_step timeout 60 compute-sanitizer --tool racecheck \
        $T/build-lean/tests/gpu_test_ops 2>&1 | grep -E "RACECHECK SUMMARY|^\[  (PASSED|FAILED)" | tail -2
fi
echo "== done at $(el) s"
