#!/usr/bin/env bash
# Session 49, call 1: main after stk-fold (F) against three trials of the cluster step:
# stk-mpush (P: bench/trials/stk-mpush.patch, the one-row exchanges pushed by st.async on
# mbarriers), stk-gate (G: the gate silu(z) once a row and channel) and both (PG); their cluster
# tests, racecheck of P, two breaks by hand of P (K1: a block's own x_proj part dropped from dbc;
# K2: its own out_proj part dropped from the residual) and the rows, two rounds.
#   bash scripts/s49_call1.sh > $OUT/log 2>&1; tail -100 $OUT/log
set -uo pipefail
END=${S49_END:-160}
export LEAN_TIMEOUT=90
source scripts/lean.sh
lean_env
F=/tmp/s49/F P=/tmp/s49/P G=/tmp/s49/G PG=/tmp/s49/PG K1=/tmp/s49/K1 K2=/tmp/s49/K2
lean_copy "$F"
lean_patched "$P" bench/trials/stk-mpush.patch
lean_patched "$G" bench/trials/stk-gate.patch
lean_patched "$PG" bench/trials/stk-mpush.patch && patch -s -d "$PG" -p1 <bench/trials/stk-gate.patch
lean_broken "$K1" libmamba/src/ops/stack_step.cu 's/q == me ? act\[Y::APX + tid\]/q == me ? 0.f/' bench/trials/stk-mpush.patch
lean_broken "$K2" libmamba/src/ops/stack_step.cu 's/q == me ? act\[Y::APO + tid\]/q == me ? 0.f/' bench/trials/stk-mpush.patch
lean_build "$F" bench/bench_generate &
lean_build "$P" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$G" tests/gpu_test_ops bench/bench_generate &
lean_build "$PG" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K1" tests/gpu_test_ops &
lean_build "$K2" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=20 lean_suite "$P" gpu_test_ops test_stack_step "stack_step"
lean_suite "$P" gpu_test_model '*cluster*'
lean_suite "$G" gpu_test_ops test_stack_step "B=(1|61|64),"
lean_suite "$PG" gpu_test_ops test_stack_step "B=(1|61|64),"
lean_suite "$PG" gpu_test_model '*cluster*'
lean_suite "$K1" gpu_test_ops test_stack_step "stack_step"
lean_suite "$K2" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=2 lean_rounds "$((END - 25))" 20 "$F $P $G $PG" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape small --batch 1 --tokens 1024" "--device cuda --shape dna --batch 8" \
    "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 64"
lean_before "$((END + 10))" && lean_racecheck "$P" gpu_test_ops test_stack_step
lean_before "$((END + 25))" && lean_racecheck "$PG" gpu_test_ops test_stack_step
echo "== done at $(el) s"
