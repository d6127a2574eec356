#!/usr/bin/env bash
# Session 49, call 1: main after stk-fold (F) against trials of the cluster step: stk-rpush (R:
# bench/trials/stk-rpush.patch; its one-row part is stk-mpush.patch, the exchanges pushed by
# st.async on mbarriers; from 2 to 8 rows a cluster the residuals' reduce-scatter pushed) and
# R with stk-gate (RG: the gate silu(z) once a row and channel); their cluster tests, racecheck,
# two breaks by hand (K1: a block's own x_proj part dropped from dbc at one row; K3: the slice
# owner's own out_proj part dropped from its sums at several rows) and the rows, two rounds.
#   bash scripts/s49_call1.sh > $OUT/log 2>&1; tail -100 $OUT/log
set -uo pipefail
END=${S49_END:-170}
export LEAN_TIMEOUT=90
source scripts/lean.sh
lean_env
F=/tmp/s49/F R=/tmp/s49/R RG=/tmp/s49/RG K1=/tmp/s49/K1 K3=/tmp/s49/K3
lean_copy "$F"
lean_patched "$R" bench/trials/stk-rpush.patch
lean_patched "$RG" bench/trials/stk-rpush.patch && patch -s -d "$RG" -p1 <bench/trials/stk-gate.patch
lean_broken "$K1" libmamba/src/ops/stack_step.cu 's/q == me ? act\[Y::APX + tid\]/q == me ? 0.f/' bench/trials/stk-rpush.patch
lean_broken "$K3" libmamba/src/ops/stack_step.cu 's/q == me ? act\[r \* Y::ACT + Y::APO + o\]/q == me ? 0.f/' \
    bench/trials/stk-rpush.patch
lean_build "$F" bench/bench_generate &
lean_build "$R" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$RG" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K1" tests/gpu_test_ops &
lean_build "$K3" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=20 lean_suite "$R" gpu_test_ops test_stack_step "stack_step"
lean_suite "$R" gpu_test_model '*cluster*'
lean_suite "$RG" gpu_test_ops test_stack_step "B=(1|61|64),"
lean_suite "$RG" gpu_test_model '*cluster*'
lean_suite "$K1" gpu_test_ops test_stack_step "stack_step"
lean_suite "$K3" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=2 lean_rounds "$((END - 30))" 20 "$F $R $RG" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape small --batch 1 --tokens 1024" "--device cuda --shape dna --batch 8" \
    "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" \
    "--device cuda --shape small --batch 64"
lean_before "$((END + 5))" && lean_racecheck "$R" gpu_test_ops test_stack_step
for r in 2 8; do
    lean_before "$((END + 20))" && MB_CUDA_STK_ROWS=$r lean_racecheck "$R" gpu_test_ops test_stack_step
done
echo "== done at $(el) s"
