#!/usr/bin/env bash
# Session 51's first call (written in session 50, whose budget ran out before it ran): main (M: its stack_step.cu's kernels each one of call 1's GPU-run
# trees', byte for byte: x_proj pushed at 2 rows a cluster, 4 rows a cluster of 8 on the barriers)
# with its suites, racecheck at 4 rows a cluster forced (the barrier instance of clusters of 8)
# and its rows; against it the trial stk-conv (T: phase 1 at several rows a cluster with two sums
# a row reduce-scattered, a warp a row's squares, the convs a thread a row and channel after a
# barrier) with its break K7 (row 0's squares taken for every row), racecheck at 2, 4, 8 and 12
# rows a cluster forced, memcheck; and K8, main with a block's own x_proj part dropped at 2 rows a
# cluster (the merged push), which must fail; and the phases (stk-prof) of M (S) and of T (ST).
# Added in session 51: R, the trial stk-rw (6 and 10 rows a cluster: 32 and 64 rows of the DNA
# model in one wave of 6 and 7 clusters of 16), its suite, racecheck at 6 and 10 rows forced, and
# its 64 and 32 rows with those rows forced (whether the GPU holds 7 clusters of 16 or not).
#   bash scripts/s51_call1.sh > $OUT/log 2>&1; tail -170 $OUT/log
set -uo pipefail
END=${S51_END:-480}
export LEAN_TIMEOUT=120
source scripts/lean.sh
lean_env
M=/tmp/s51/M T=/tmp/s51/T R=/tmp/s51/R K7=/tmp/s51/K7 K8=/tmp/s51/K8 S=/tmp/s51/S ST=/tmp/s51/ST
lean_copy "$M"
lean_broken "$K8" libmamba/src/ops/stack_step.cu 's/q == me ? act\[r \* Y::ACT + Y::APX + o\]/q == me ? 0.f/'
lean_patched "$T" bench/trials/stk-conv.patch
lean_broken "$K7" libmamba/src/ops/stack_step.cu 's/conv_row(r, ch, ar\[Y::ADBC\]/conv_row(r, ch, act[Y::ADBC]/' \
    bench/trials/stk-conv.patch
lean_build "$M" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$T" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_patched "$R" bench/trials/stk-rw.patch
lean_build "$R" tests/gpu_test_ops bench/bench_generate &
lean_build "$K7" tests/gpu_test_ops &
lean_build "$K8" tests/gpu_test_ops &
lean_patched "$S" bench/trials/stk-prof.patch
lean_patched "$ST" bench/trials/stk-conv.patch && patch -s -d "$ST" -p1 <bench/trials/stk-prof.patch
lean_build "$S" bench/bench_generate &
lean_build "$ST" bench/bench_generate &
lean_ready
LEAN_TAIL=20 lean_suite "$M" gpu_test_ops test_stack_step "stack_step"
lean_suite "$M" gpu_test_model '*cluster*'
LEAN_TAIL=20 lean_suite "$T" gpu_test_ops test_stack_step "stack_step"
lean_suite "$T" gpu_test_model '*cluster*'
LEAN_TAIL=20 lean_suite "$R" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=12 lean_suite "$K7" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=12 lean_suite "$K8" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=2 lean_rounds 300 20 "$M $T $R" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape dna --batch 32"
for r in 10 12; do echo "== R, MB_CUDA_STK_ROWS=$r: dna 64 rows"; MB_CUDA_STK_ROWS=$r timeout 20 "$R/build-lean/bench/bench_generate" --device cuda --shape dna --batch 64 | grep -E "^\| dna"; done
for r in 6 8; do echo "== R, MB_CUDA_STK_ROWS=$r: dna 32 rows"; MB_CUDA_STK_ROWS=$r timeout 20 "$R/build-lean/bench/bench_generate" --device cuda --shape dna --batch 32 | grep -E "^\| dna"; done
LEAN_ROUNDS=2 lean_rounds 300 20 "$M $T" bench_generate "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 8" \
    "--device cuda --shape small --batch 64" "--device cuda --shape small --batch 16" \
    "--device cuda --shape dna --batch 1 --tokens 1024"
lean_stk_prof "$S" 8 16 32 64
lean_stk_prof "$ST" 8 16 32 64
for r in 2 4 8 12; do MB_CUDA_STK_ROWS=$r lean_racecheck "$T" gpu_test_ops test_stack_step; done
MB_CUDA_STK_ROWS=4 lean_racecheck "$M" gpu_test_ops test_stack_step
for r in 6 10; do MB_CUDA_STK_ROWS=$r lean_racecheck "$R" gpu_test_ops test_stack_step; done
echo "== T: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 60 compute-sanitizer --tool memcheck \
    "$T/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
lean_before "$((END - 60))" && lean_suite "$M" gpu_test_model
echo "== done at $(el) s"
