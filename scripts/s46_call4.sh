#!/usr/bin/env bash
# Session 46, call 4 (call 3 cut to what a short budget allows): the merged cluster step's GPU
# suites and AUTO's rows against the layer path; the trial stk-push (T4: one row a cluster, the
# partial sums stored into every block's slots) with its break by hand (K4) and racecheck.
#   bash scripts/s46_call4.sh > $OUT/log 2>&1; tail -100 $OUT/log
set -uo pipefail
source scripts/lean.sh
lean_env
F=/tmp/s46/F T4=/tmp/s46/T4 K4=/tmp/s46/K4
lean_copy "$F"
lean_patched "$T4" bench/trials/stk-push.patch
lean_broken "$K4" libmamba/src/ops/stack_step.cu 's/for (int q = 0; q < C; q++) s += p\[q \* ld\];/for (int q = 1; q < C; q++) s += p[q * ld];/' \
    bench/trials/stk-push.patch
lean_build "$F" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$T4" tests/gpu_test_ops bench/bench_generate &
lean_build "$K4" tests/gpu_test_ops &
lean_ready
for s in gpu_test_scan gpu_test_ops gpu_test_model; do lean_suite "$F" "$s"; done
LEAN_ROUNDS=1 lean_rounds 240 30 "$F" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" \
    "--device cuda --shape small --batch 1" "--device cuda --shape small --batch 64"
echo "== the layer path (MB_CUDA_STEP=layer)"
MB_CUDA_STEP=layer LEAN_ROUNDS=1 lean_rounds 240 30 "$F" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape small --batch 64"
echo "== T4 (stk-push)"
lean_suite "$T4" gpu_test_ops test_stack_step "stack_step"
lean_suite "$K4" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=2 lean_rounds 260 30 "$F $T4" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape small --batch 1"
lean_racecheck "$T4" gpu_test_ops test_stack_step
echo "== memcheck gpu_test_model *cluster*, small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER='*cluster*' timeout 45 compute-sanitizer --tool memcheck \
    "$F/build-lean/tests/gpu_test_model" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
echo "== done at $(el) s"
