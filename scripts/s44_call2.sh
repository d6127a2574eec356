#!/usr/bin/env bash
# Session 44's second device call (carry .deps): `gemv-hoist` (the split step's RMSNorm scale
# taken after the products, the conv taps and the residual loaded before a column's weights)
# against main at batch 1 and 8, where the split kernels run; gpu_test_ops on both, and on K
# (the trial with the 1/rms dropped: must fail).
#   bash scripts/s44_call2.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); gemv-hoist was merged after it and its
# patch deleted, so this script no longer runs as written.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
END=${S44_END:-480}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_copy $B && patch -s -R -d $B -p1 <bench/trials/gemv-hoist.patch || echo "base: patch -R FAILED"
lean_copy $K && sed -i 's/const float yv = acc\[m\] \* rstd\[m\];/const float yv = acc[m];/' $K/libmamba/src/ops/block_step_split.cu
grep -c "const float yv = acc\[m\];" $K/libmamba/src/ops/block_step_split.cu
lean_build "$PWD" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate bench/bench_gpu &
lean_build $B tests/gpu_test_ops bench/bench_generate &
lean_build $K tests/gpu_test_ops &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
for t in "$PWD" $B; do
    echo "== $t gpu_test_ops test_block_step ($(el) s)"
    MB_TEST_FILTER='test_block_step' timeout 100 $t/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|split.*(2560|768)|worst" | tail -8
done
echo "== K (1/rms dropped, must FAIL) ($(el) s)"
MB_TEST_FILTER='test_block_step' timeout 100 $K/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
for r in 1 2; do
    for a in "--shape 2.8b --batch 1 --tokens 128 --weights bf16" "--shape 2.8b --batch 1 --tokens 64" \
        "--shape 130m --batch 1" "--shape 130m --batch 1 --weights bf16" "--shape 130m --batch 8" \
        "--shape 130m --batch 64 --weights tf32"; do
        for t in "$PWD" $B; do
            [ "$(el)" -lt $((END - 40)) ] || break 3
            echo "== round $r, $(basename $t): $a ($(el) s)"
            timeout 40 $t/build-lean/bench/bench_generate --device cuda $a | grep -E "^\| " | tail -1
        done
    done
done
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
    for a in "--shape dna --batch 1" "--shape dna --batch 64"; do
        [ "$(el)" -lt $((END - 60)) ] || break
        echo "== H200: bench_generate --device cuda $a ($(el) s)"
        timeout 40 build-lean/bench/bench_generate --device cuda $a | grep -E "^\| " | tail -1
    done
    for x in "" --inner; do
        [ "$(el)" -lt $((END - 60)) ] || break
        echo "== H200: bench_gpu ${x:-layers} --train 1048576 fp32 ($(el) s)"
        timeout 40 build-lean/bench/bench_gpu $x --train 1048576 fp32 | grep -E "^\| dna"
    done
fi
if [ "$(el)" -lt $((END - 120)) ]; then
    echo "== trial gpu_test_ops, gpu_test_model ($(el) s)"
    timeout 60 build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
    timeout 150 build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
fi
echo "== done at $(el) s"
