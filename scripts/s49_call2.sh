#!/usr/bin/env bash
# Session 49, call 2: main after the pushes and the gate were merged (M: 135dca5): its cluster
# tests, racecheck (small shapes; at 2, 4 and 8 rows a cluster forced), memcheck, rows and its
# whole GPU suites; against it the trial stk-xpush (X: bench/trials/stk-xpush.patch, x_proj's
# partial sums pushed wherever the residuals' are) with its tests, racecheck and a break by hand
# (K4: a block's own x_proj part dropped from dbc, every pushed instance); and main's phases by
# stk-prof (S: bench/trials/stk-prof.patch) at 1, 8, 16 and 64 rows of the DNA model.
#   bash scripts/s49_call2.sh > $OUT/log 2>&1; tail -120 $OUT/log
set -uo pipefail
END=${S49_END:-200}  # the rows stop at 140 s, the suite starts only before 170
export LEAN_TIMEOUT=120
source scripts/lean.sh
lean_env
M=/tmp/s49b/M X=/tmp/s49b/X K4=/tmp/s49b/K4 S=/tmp/s49b/S
lean_copy "$M"
lean_patched "$S" bench/trials/stk-prof.patch
lean_patched "$X" bench/trials/stk-xpush.patch
lean_broken "$K4" libmamba/src/ops/stack_step.cu 's/q == me ? act\[r \* Y::ACT + Y::APX + o\]/q == me ? 0.f/' \
    bench/trials/stk-xpush.patch
lean_build "$M" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$S" bench/bench_generate &
lean_build "$X" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K4" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=20 lean_suite "$M" gpu_test_ops test_stack_step "stack_step"
lean_suite "$M" gpu_test_model '*cluster*'
lean_suite "$X" gpu_test_ops test_stack_step "B=(1|2|3|5|11|61|64),"
lean_suite "$X" gpu_test_model '*cluster*'
lean_suite "$K4" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=2 lean_rounds 160 20 "$M $X" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape small --batch 1 --tokens 1024" "--device cuda --shape dna --batch 8" \
    "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" \
    "--device cuda --shape small --batch 16" "--device cuda --shape small --batch 64"
lean_stk_prof "$S" 1 8 16 64
lean_racecheck "$M" gpu_test_ops test_stack_step
for r in 2 4; do MB_CUDA_STK_ROWS=$r lean_racecheck "$M" gpu_test_ops test_stack_step; done
echo "== M: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 60 compute-sanitizer --tool memcheck \
    "$M/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
MB_CUDA_STK_ROWS=4 lean_racecheck "$X" gpu_test_ops test_stack_step
lean_before "$((END - 30))" && lean_suite "$M" gpu_test_model
echo "== done at $(el) s"
