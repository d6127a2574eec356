#!/usr/bin/env bash
# Session 47, call 4: the trial stk-bulk (the cluster step's weights staged by cp.async.bulk on
# mbarriers, where 16-byte cp.async copies from every thread cost 2,727 cycles of a one-row
# layer's top) against main: its cluster suites, a break by hand (K7: in_proj's z rows never
# copied, their bytes not expected), and the DNA model's and mamba-dna's default rows on the
# cluster step (a second round at one row).
#   bash scripts/s47_call4.sh > $OUT/log 2>&1; tail -60 $OUT/log
set -uo pipefail
END=${S47_END:-120}
export LEAN_TIMEOUT=40 # a hung kernel (the copies' counts) must not take the budget
source scripts/lean.sh
lean_env
F=/tmp/s47/F T7=/tmp/s47/T7 K7=/tmp/s47/K7
lean_copy "$F"
lean_patched "$T7" bench/trials/stk-bulk.patch
lean_broken "$K7" libmamba/src/ops/stack_step.cu 's/stk_mbar_expect(mbar + 16, 2u \* CH \* D \* 4u);/stk_mbar_expect(mbar + 16, 1u * CH * D * 4u);/; s/if (lane < 2)$/if (lane < 1)/' \
    bench/trials/stk-bulk.patch
lean_build "$F" bench/bench_generate &
lean_build "$T7" tests/gpu_test_ops bench/bench_generate &
lean_build "$K7" tests/gpu_test_ops &
lean_ready
lean_suite "$T7" gpu_test_ops test_stack_step "stack_step"
lean_suite "$K7" gpu_test_ops test_stack_step "stack_step"
MB_CUDA_STEP=cluster LEAN_ROUNDS=1 lean_rounds "$END" 12 "$F $T7" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 1 --tokens 1024"
MB_CUDA_STEP=cluster LEAN_ROUNDS=1 lean_rounds "$END" 12 "$F $T7" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024"
echo "== done at $(el) s"
