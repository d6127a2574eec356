#!/usr/bin/env bash
# Next session's first call (written in session 49, whose budget ran out before it): main (M:
# every kernel is session 49's GPU-run RG tree's, byte for byte): its whole gpu_test_model suite
# and test_stack_step, racecheck (small shapes; 2, 4 and 8 rows a cluster forced), memcheck, its
# rows and its phases by stk-prof (S); against it the trials stk-xpush (X: x_proj's sums pushed
# too up to 4 rows a cluster) with its break by hand (K4: a block's own x_proj part dropped) and
# stk-rp16 (N: the reduce-scatter pushed only at 2-4 rows in clusters of 16) and stk-xrs (XR:
# x_proj's sums by a pushed reduce-scatter at 8 and 12 rows a cluster) with its break (K5: a
# slice owner's own x_proj part dropped).
# Session 50 added SPX (bench/trials/spx.patch: x_proj inside the split step's scan kernel at one
# row, on clusters) with its break K6 (warp 0's part of each x_proj column dropped), its suites
# at the default, every row (MB_CUDA_SPX_ROWS=64), clusters of 16 and off, and the 130m shape's
# one-row rows against itself off (MB_CUDA_SPX_ROWS=0: main's kernels).
#   bash scripts/s50_call1.sh > $OUT/log 2>&1; tail -150 $OUT/log
set -uo pipefail
END=${S50_END:-470}
export LEAN_TIMEOUT=120
source scripts/lean.sh
lean_env
SPX=/tmp/s50/SPX K6=/tmp/s50/K6
M=/tmp/s50/M X=/tmp/s50/X N=/tmp/s50/N K4=/tmp/s50/K4 S=/tmp/s50/S XR=/tmp/s50/XR K5=/tmp/s50/K5
lean_copy "$M"
lean_patched "$X" bench/trials/stk-xpush.patch
lean_patched "$N" bench/trials/stk-rp16.patch
lean_patched "$S" bench/trials/stk-prof.patch
lean_patched "$XR" bench/trials/stk-xrs.patch
lean_broken "$K5" libmamba/src/ops/stack_step.cu 's/s += q == me ? act\[r \* Y::ACT + Y::APX + o\] : slr/s += q == me ? 0.f : slr/' \
    bench/trials/stk-xrs.patch
lean_broken "$K4" libmamba/src/ops/stack_step.cu 's/q == me ? act\[r \* Y::ACT + Y::APX + o\]/q == me ? 0.f/' \
    bench/trials/stk-xpush.patch
lean_patched "$SPX" bench/trials/spx.patch
lean_broken "$K6" libmamba/src/ops/block_step_split.cu 's/for (int w = 0; w < SP_WARPS; w++) v += part/for (int w = 1; w < SP_WARPS; w++) v += part/' \
    bench/trials/spx.patch
lean_build "$SPX" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K6" tests/gpu_test_ops &
lean_build "$M" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$X" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$N" tests/gpu_test_ops bench/bench_generate &
lean_build "$K4" tests/gpu_test_ops &
lean_build "$S" bench/bench_generate &
lean_build "$XR" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K5" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=20 lean_suite "$M" gpu_test_ops test_stack_step "stack_step"
lean_suite "$X" gpu_test_ops test_stack_step "B=(1|2|3|5|11|61|64),"
lean_suite "$X" gpu_test_model '*cluster*'
lean_suite "$N" gpu_test_ops test_stack_step "B=(1|2|3|5|11|61|64),"
lean_suite "$K4" gpu_test_ops test_stack_step "stack_step"
lean_suite "$XR" gpu_test_ops test_stack_step "B=(1|2|3|5|11|61|64),"
lean_suite "$XR" gpu_test_model '*cluster*'
lean_suite "$K5" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=12 lean_suite "$SPX" gpu_test_ops test_block_step "block_step" "B=1 d=(768|64|40|32)"
MB_CUDA_SPX_ROWS=64 lean_suite "$SPX" gpu_test_ops test_block_step "block_step"
MB_CUDA_SPX_CS=16 lean_suite "$SPX" gpu_test_ops test_block_step "block_step"
MB_CUDA_SPX_ROWS=0 lean_suite "$SPX" gpu_test_ops test_block_step "block_step"
LEAN_TAIL=12 lean_suite "$K6" gpu_test_ops test_block_step "block_step" "B=1 d=(768|64|40|32)"
spx_rows() { grep -E "^\| 130m" | grep -v prefill | cut -c1-110; }
for r in 1 2; do
    for v in MB_CUDA_SPX_ROWS=0 MB_CUDA_SPX_ROWS=1 MB_CUDA_SPX_CS=16; do
        echo "== round $r, SPX $v: 130m 1 row fp32, bf16 ($(el) s)"
        env $v timeout 40 "$SPX/build-lean/bench/bench_generate" --device cuda --shape 130m --batch 1 --weights fp32 | spx_rows
        env $v timeout 40 "$SPX/build-lean/bench/bench_generate" --device cuda --shape 130m --batch 1 --weights bf16 | spx_rows
    done
done
LEAN_ROUNDS=2 lean_rounds 320 20 "$M $X $N $XR" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape small --batch 1 --tokens 1024" "--device cuda --shape dna --batch 8" \
    "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" \
    "--device cuda --shape small --batch 16" "--device cuda --shape small --batch 64"
lean_stk_prof "$S" 1 8 16 64
lean_racecheck "$M" gpu_test_ops test_stack_step
for r in 2 4 8; do MB_CUDA_STK_ROWS=$r lean_racecheck "$M" gpu_test_ops test_stack_step; done
echo "== M: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 60 compute-sanitizer --tool memcheck \
    "$M/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
for r in 2 4; do MB_CUDA_STK_ROWS=$r lean_racecheck "$X" gpu_test_ops test_stack_step; done
for r in 8 12; do MB_CUDA_STK_ROWS=$r lean_racecheck "$XR" gpu_test_ops test_stack_step; done
lean_racecheck "$SPX" gpu_test_ops test_block_step
MB_CUDA_SPX_ROWS=64 lean_racecheck "$SPX" gpu_test_ops test_block_step
echo "== SPX: memcheck gpu_test_ops (test_block_step), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_block_step timeout 60 compute-sanitizer --tool memcheck \
    "$SPX/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
lean_before "$((END - 60))" && lean_suite "$SPX" gpu_test_model
lean_before "$((END - 30))" && lean_suite "$M" gpu_test_model
echo "== done at $(el) s"
