#!/usr/bin/env bash
# Session 49, call 3 (the budget's last ~280 s; call 2 never got a machine): main after the pushes
# and the gate were merged (M): its cluster tests, its rows once, racecheck (small shapes, and 4
# and 8 rows a cluster forced: the barrier path's new instances with the gate) and memcheck.
#   bash scripts/s49_call3.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
export LEAN_TIMEOUT=60
source scripts/lean.sh
lean_env
M=/tmp/s49c/M
lean_copy "$M"
lean_build "$M" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate
lean_ready
LEAN_TAIL=20 lean_suite "$M" gpu_test_ops test_stack_step "stack_step"
lean_suite "$M" gpu_test_model '*cluster*'
LEAN_ROUNDS=1 lean_rounds 150 20 "$M" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape small --batch 1 --tokens 1024" "--device cuda --shape dna --batch 8" \
    "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" \
    "--device cuda --shape small --batch 16" "--device cuda --shape small --batch 64"
lean_racecheck "$M" gpu_test_ops test_stack_step
for r in 4 8; do lean_before 140 && MB_CUDA_STK_ROWS=$r lean_racecheck "$M" gpu_test_ops test_stack_step; done
echo "== M: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
lean_before 150 && MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 40 compute-sanitizer --tool memcheck \
    "$M/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
echo "== done at $(el) s"
