#!/usr/bin/env bash
# Session 46, call 5 (the least the budget left allows): the merged cluster step's suites that
# touch it (gpu_test_ops, gpu_test_model: AUTO's new rule) and AUTO's DNA rows against the layer
# path at 64 rows.
#   bash scripts/s46_call5.sh > $OUT/log 2>&1; tail -60 $OUT/log
set -uo pipefail
source scripts/lean.sh
lean_start tests/gpu_test_ops tests/gpu_test_model bench/bench_generate
for s in gpu_test_ops gpu_test_model; do lean_suite "$PWD" "$s"; done
LEAN_ROUNDS=1 lean_rounds 200 30 "$PWD" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 64"
echo "== the layer path (MB_CUDA_STEP=layer)"
MB_CUDA_STEP=layer LEAN_ROUNDS=1 lean_rounds 200 30 "$PWD" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape small --batch 64"
echo "== done at $(el) s"
