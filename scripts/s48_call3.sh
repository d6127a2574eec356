#!/usr/bin/env bash
# Session 48, call 3: the trial stk-rsr (bench/trials/stk-rsr.patch: the cluster step's residuals
# by reduce-scatter, a block summing its slice of out_proj's outputs and writing each into every
# block, one cluster barrier more a layer, where every block summed every output) against main at
# two thresholds (T: from 4 rows a cluster, V: from 1), its tests, a break by hand (K: every block
# sums slice 0), racecheck of V (the reduce-scatter at the small shapes' one row a cluster).
# (Cut to fit the budget left after six requests got no machine: the threshold 2 and stk-prof's
# phases of main are not in it.)
#   bash scripts/s48_call3.sh > $OUT/log 2>&1; tail -120 $OUT/log
set -uo pipefail
END=${S48_END:-240}
export LEAN_TIMEOUT=60
source scripts/lean.sh
lean_env
F=/tmp/s48/F T=/tmp/s48/T V=/tmp/s48/V K=/tmp/s48/K
lean_copy "$F"
lean_patched "$T" bench/trials/stk-rsr.patch
lean_broken "$V" libmamba/src/ops/stack_step.cu 's/^#define STK_RS_ROWS 4$/#define STK_RS_ROWS 1/' bench/trials/stk-rsr.patch
lean_broken "$K" libmamba/src/ops/stack_step.cu 's/const int i = me \* RSN + tid, r = i \/ D/const int i = tid, r = i \/ D/' \
    bench/trials/stk-rsr.patch
lean_build "$F" bench/bench_generate &
lean_build "$T" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$V" tests/gpu_test_ops bench/bench_generate &
lean_build "$K" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=20 lean_suite "$T" gpu_test_ops test_stack_step "stack_step"
lean_suite "$K" gpu_test_ops test_stack_step "stack_step"
lean_suite "$V" gpu_test_ops test_stack_step
lean_suite "$T" gpu_test_model '*cluster*'
LEAN_ROUNDS=2 lean_rounds "$((END - 60))" 20 "$F $T $V" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" \
    "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 64"
lean_racecheck "$V" gpu_test_ops test_stack_step
echo "== done at $(el) s"
