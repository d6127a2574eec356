#!/usr/bin/env bash
# Session 48, call 4: main after stk-pack and stk-rsr (from 2 rows a cluster) were merged: the
# three GPU suites, racecheck of the cluster step's test (small shapes: one row a cluster, the
# gathering residuals) and of the model's cluster draws, and the issue-15 rows of this session's
# change (the DNA model and mamba-dna's default on the cluster step by AUTO).
#   bash scripts/s48_call4.sh > $OUT/log 2>&1; tail -60 $OUT/log
set -uo pipefail
export LEAN_TIMEOUT=90
source scripts/lean.sh
lean_start tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_generate
for s in gpu_test_scan gpu_test_ops gpu_test_model; do lean_suite "$PWD" "$s"; done
LEAN_TAIL=20 lean_suite "$PWD" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=1 lean_rounds 170 20 "$PWD" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape dna --batch 4" "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 16" \
    "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 1 --tokens 1024" \
    "--device cuda --shape small --batch 16" "--device cuda --shape small --batch 64"
lean_racecheck "$PWD" gpu_test_ops test_stack_step
echo "== done at $(el) s"
