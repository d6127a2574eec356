#!/usr/bin/env bash
# (Ran on the grid-step branch; to run again: apply bench/trials/grid-step.patch to main first.)
# Session 47, call 2: the grid step (ops/stack_step_grid.cu, new: a wide model's every layer in
# one cooperative kernel over every SM, the weights streamed into shared memory). Its test
# against the CPU (gpu_test_ops test_stack_grid, fp32 and bf16 copies) and a break by hand (K:
# the first S blocks' partial sums of x_proj dropped from the gather); MB_CUDA_STEP=grid against
# AUTO (the split step) at the 130m shape, 1, 2 and 4 rows, fp32 and bf16 copies, and the DNA
# model at one row; the LM through it (gpu_test_model test_lm_grid: steps, draws, graphs); the
# three suites; memcheck and racecheck of the grid tests (small shapes).
#   bash scripts/s47_call2.sh > $OUT/log 2>&1; tail -120 $OUT/log
set -uo pipefail
END=${S47_END:-430}
source scripts/lean.sh
lean_env
G=/tmp/s47/G K=/tmp/s47/K
lean_copy "$G"
lean_broken "$K" libmamba/src/ops/stack_step_grid.cu 's/for (int q = s; q < G; q += S)/for (int q = s + S; q < G; q += S)/'
lean_build "$G" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=14 lean_suite "$G" gpu_test_ops test_stack_grid "stack_step|stack grid"
LEAN_TAIL=14 lean_suite "$K" gpu_test_ops test_stack_grid "stack_step|stack grid"
gen() { # STEP ARGS...: one bench_generate run's sample rows, MB_CUDA_STEP=STEP (auto: unset)
    local s=$1
    shift
    lean_before $((END - 40)) || return 0
    echo "== $s: bench_generate $* ($(el) s)"
    if [ "$s" = auto ]; then
        timeout 40 "$G/build-lean/bench/bench_generate" --device cuda "$@" | grep -E "sample"
    else
        MB_CUDA_STEP=$s timeout 40 "$G/build-lean/bench/bench_generate" --device cuda "$@" | grep -E "sample"
    fi
}
for round in 1 2; do
    for w in fp32 bf16; do
        for b in 1 4; do
            for s in auto grid; do gen $s --shape 130m --batch $b --weights $w --tokens 128; done
        done
    done
    [ $round = 1 ] && for s in auto grid; do gen $s --shape 130m --batch 2 --weights fp32 --tokens 128; done
    [ $round = 1 ] && for s in auto grid; do gen $s --shape dna --batch 1 --tokens 1024; done
done
lean_suite "$G" gpu_test_model test_lm_grid "LM step|grid"
for s in gpu_test_scan gpu_test_ops gpu_test_model; do lean_suite "$G" "$s"; done
echo "== memcheck test_stack_grid and test_lm_grid, small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_grid timeout 90 compute-sanitizer --tool memcheck \
    "$G/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_lm_grid timeout 90 compute-sanitizer --tool memcheck \
    "$G/build-lean/tests/gpu_test_model" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
lean_before $((END - 60)) && lean_racecheck "$G" gpu_test_ops test_stack_grid
echo "== done at $(el) s"
