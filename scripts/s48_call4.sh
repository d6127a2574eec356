#!/usr/bin/env bash
# Session 48, call 4: main after stk-pack and stk-rsr (from 2 rows a cluster) were merged (F): its
# cluster tests, racecheck of them (small shapes), and its rows by AUTO (the whole suites were cut:
# 331 s of budget were left after two more requests got no machine), and racecheck of its
# reduce-scatter at 2 and 4 rows a cluster (MB_CUDA_STK_ROWS, the small shapes);
# against it the trial stk-fold (T: bench/trials/stk-fold.patch, the pack holding in_proj times
# the norm's weights and A = -exp(A_log)) with its test, a break by hand (K: the pack's in_proj
# without the norm's weights) and the same rows.
#   bash scripts/s48_call4.sh > $OUT/log 2>&1; tail -90 $OUT/log
set -uo pipefail
END=${S48_END:-135}
export LEAN_TIMEOUT=90
source scripts/lean.sh
lean_env
F=/tmp/s48/F T=/tmp/s48/T K=/tmp/s48/K
lean_copy "$F"
lean_patched "$T" bench/trials/stk-fold.patch
lean_broken "$K" libmamba/src/ops/stack_step.cu 's/ \* D + (g - z \* CH \* D)\] \* P.norm_w\[g % D\];/ * D + (g - z * CH * D)];/' \
    bench/trials/stk-fold.patch
lean_build "$F" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$T" tests/gpu_test_ops bench/bench_generate &
lean_build "$K" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=20 lean_suite "$F" gpu_test_ops test_stack_step "stack_step"
lean_suite "$F" gpu_test_model '*cluster*'
lean_suite "$T" gpu_test_ops test_stack_step "cluster, packed) B=(1|61|64),"
lean_suite "$K" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=2 lean_rounds "$((END - 15))" 20 "$F $T" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" \
    "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 1 --tokens 1024" "--device cuda --shape small --batch 64"
lean_before "$((END + 10))" && lean_racecheck "$F" gpu_test_ops test_stack_step
# the reduce-scatter's instances (2 and 4 rows a cluster) at the small shapes, forced
for r in 2 4; do
    lean_before "$((END + 30))" && MB_CUDA_STK_ROWS=$r lean_racecheck "$F" gpu_test_ops test_stack_step
done
echo "== done at $(el) s"
