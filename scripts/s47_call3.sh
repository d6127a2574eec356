#!/usr/bin/env bash
# (Ran on the grid-step branch; to run again: apply bench/trials/grid-step.patch to main first.)
# Session 47, call 3: the grid step's second version (call 2's lost to the split step: 130m at one
# row 0.508 against 0.425 ms). C's gather and D's y loads all in flight at once (they were a chain
# of L2 round trips); MB_GSK_VAR's bits: 1, the weights' copies issued from warp 1 on (the grid
# barrier's release by thread 0 then has none of its own to wait for); 2, the barrier polled
# relaxed with one acquire fence after; 4, in_proj's and out_proj's rows by bulk copies
# (cp.async.bulk on mbarriers, one thread), where the cluster step's profile found 16-byte
# copies from every thread holding them at the issue (default 7). Its tests (both variants' ends), then the 130m shape at
# one row by AUTO (the split step) and by the grid step at each variant, fp32 and bf16 copies.
#   bash scripts/s47_call3.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
END=${S47_END:-250}
export LEAN_TIMEOUT=40 # a hung kernel (the bulk copies' counts) must not take the budget
source scripts/lean.sh
lean_env
G=/tmp/s47/G2
lean_copy "$G"
lean_build "$G" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_ready
LEAN_TAIL=14 lean_suite "$G" gpu_test_ops test_stack_grid "stack_step"
MB_GSK_VAR=0 LEAN_TAIL=4 lean_suite "$G" gpu_test_ops test_stack_grid "stack_step"
MB_GSK_VAR=3 LEAN_TAIL=4 lean_suite "$G" gpu_test_ops test_stack_grid "stack_step"
lean_suite "$G" gpu_test_model test_lm_grid "LM step"
gen() { # STEP VAR ARGS...: one bench_generate run's sample rows
    local s=$1 v=$2
    shift 2
    lean_before $((END - 30)) || return 0
    echo "== $s var $v: bench_generate $* ($(el) s)"
    if [ "$s" = auto ]; then
        timeout 30 "$G/build-lean/bench/bench_generate" --device cuda "$@" | grep -E "sample"
    else
        MB_CUDA_STEP=grid MB_GSK_VAR=$v timeout 30 "$G/build-lean/bench/bench_generate" --device cuda "$@" | grep -E "sample"
    fi
}
for w in bf16 fp32; do
    gen auto - --shape 130m --batch 1 --weights $w --tokens 128
    for v in 7 3; do gen grid $v --shape 130m --batch 1 --weights $w --tokens 128; done
done
for v in 0 4 5; do gen grid $v --shape 130m --batch 1 --weights bf16 --tokens 128; done
lean_before $((END - 25)) && echo "== memcheck test_stack_grid (bulk copies), small shapes ($(el) s)" &&
    MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_grid timeout 25 compute-sanitizer --tool memcheck \
        "$G/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
echo "== done at $(el) s"
