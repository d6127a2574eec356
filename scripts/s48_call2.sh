#!/usr/bin/env bash
# Session 48, call 2: the trial stk-pack (bench/trials/stk-pack.patch: the cluster step's weights
# packed per block by mb_stack_step_pack, which the LM makes at each sample call, and staged by
# two cp.async.bulk copies a layer, where main gathers a block's columns by 16-byte cp.async
# copies from every thread) against main: its cluster tests (a step gathering, a step reading the
# pack), a break by hand (K: the pack's out_proj columns swapped in pairs), the DNA model's and
# mamba-dna's default rows under AUTO, racecheck and memcheck of its test, then the trial's three
# GPU suites whole (main's other kernels untouched by it).
#   bash scripts/s48_call2.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
END=${S48_END:-330}
export LEAN_TIMEOUT=60
source scripts/lean.sh
lean_env
F=/tmp/s48/F T=/tmp/s48/T K=/tmp/s48/K
lean_copy "$F"
lean_patched "$T" bench/trials/stk-pack.patch
lean_broken "$K" libmamba/src/ops/stack_step.cu \
    's/v = P.out_proj\[(size_t)o \* DI + c0 + j\];/v = P.out_proj[(size_t)o * DI + c0 + (j ^ 1)];/' bench/trials/stk-pack.patch
lean_build "$F" bench/bench_generate &
lean_build "$T" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K" tests/gpu_test_ops tests/gpu_test_model &
lean_ready
LEAN_TAIL=20 lean_suite "$T" gpu_test_ops test_stack_step "stack_step"
lean_suite "$K" gpu_test_ops test_stack_step "stack_step"
lean_suite "$T" gpu_test_model '*cluster*'
lean_suite "$K" gpu_test_model '*cluster_draws*'
LEAN_ROUNDS=2 lean_rounds "$((END - 120))" 20 "$F $T" bench_generate "--device cuda --shape dna --batch 1 --tokens 1024" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 1 --tokens 1024" \
    "--device cuda --shape small --batch 64"
lean_racecheck "$T" gpu_test_ops test_stack_step
echo "== T: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 60 compute-sanitizer --tool memcheck \
    "$T/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
for s in gpu_test_scan gpu_test_ops gpu_test_model; do lean_before "$((END - 20))" && lean_suite "$T" "$s"; done
echo "== done at $(el) s"
