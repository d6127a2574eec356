#!/usr/bin/env bash
# Session 53's first call (written in session 52). Trees: M main; C stk-tco10 (x_proj's and
# out_proj's sums on the tensor cores at 10 and 12 rows a cluster); K15 its break (an output
# tile's columns swapped). Suites, the break, rounds at 64 rows (10 a cluster: the changed
# kernels) and 32 rows (6: unchanged, the control), racecheck and memcheck at 10 and 12 rows
# forced; then, if time is left, stk-prof of main at 1, 8 and 64 rows.
#   bash scripts/s53_call1.sh > $OUT/log 2>&1; tail -100 $OUT/log   (timeout 420; carry .deps)
set -uo pipefail
END=${S53_END:-400}
export LEAN_TIMEOUT=120
source scripts/lean.sh
lean_env
M=/tmp/s53/M C=/tmp/s53/C K15=/tmp/s53/K15 SP=/tmp/s53/SP
lean_copy "$M"
lean_patched "$C" bench/trials/stk-tco10.patch
lean_broken "$K15" libmamba/src/ops/stack_step.cu \
    's/const int row = gq + 8 \* (i >> 1), col = c + (i \& 1);/const int row = gq + 8 * (i >> 1), col = c + ((i + 1) \& 1);/' \
    bench/trials/stk-tco10.patch
lean_patched "$SP" bench/trials/stk-prof.patch
lean_build "$M" tests/gpu_test_ops bench/bench_generate &
lean_build "$C" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K15" tests/gpu_test_ops &
lean_build "$SP" bench/bench_generate &
lean_ready
LEAN_TAIL=22 lean_suite "$C" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=6 lean_suite "$K15" gpu_test_ops test_stack_step "e-0[0-4] \(tol"
LEAN_ROUNDS=3 lean_rounds $((END - 200)) 20 "$M $C" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape dna --batch 61" "--device cuda --shape dna --batch 32"
lean_suite "$C" gpu_test_model '*cluster*'
for r in 10 12; do lean_before $((END - 120)) && MB_CUDA_STK_ROWS=$r lean_racecheck "$C" gpu_test_ops test_stack_step; done
lean_before $((END - 90)) && MB_CUDA_STK_ROWS=10 lean_memcheck "$C" gpu_test_ops test_stack_step
lean_before $((END - 60)) && lean_stk_prof "$SP" 1 8 64
lean_before $((END - 30)) && lean_suite "$C" gpu_test_model
echo "== done at $(el) s"
