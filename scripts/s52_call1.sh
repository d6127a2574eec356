#!/usr/bin/env bash
# Session 52's first call (written in session 51, whose device budget ran out): main (M: session
# 51's merge, whose stack_step.cu is the GPU-run XY tree's PTX, plus MB_CUDA_STK_SAY, host code
# never run on a GPU) with its suites and which cluster instance AUTO takes at each row count
# (MB_CUDA_STK_SAY=1: does this GPU hold 7 clusters of 16, and 16 of 8?); the trial stk-osum (O:
# out_proj's sums at several rows by reduce-scatters over an output's lanes) with its break K12
# (row g TPO + (q ^ 1) stored), racecheck and rows; then Nsight Compute of M at 64 rows of the DNA
# model (s51_call3.sh: -lineinfo, full set, source counters into $OUT). And the trial stk-tc (T:
# in_proj at d_model 256 from 4 rows a cluster on the tensor cores, 3xTF32, the pack swizzled)
# with its break K13 (a K quarter's partials left out of the sums), its suites, racecheck,
# memcheck and rows; if T's suites fail, the fragment layout or the swizzle is the first suspect
# (the float64 model in the patch checks both against PTX's documented layout). SP: main with
# stk-prof at 1, 8 and 64 rows; and Nsight Compute of main at one row too (the 25,000 target).
# P10: the trial stk-rp10 (the residuals' reduce-scatter pushed at 10 rows a cluster, the DNA
# model's 64 rows), its suite, racecheck at 10 rows forced, its 64 rows against M.
#   bash scripts/s52_call1.sh > $OUT/log 2>&1; tail -150 $OUT/log   (timeout 600; carry .deps)
set -uo pipefail
END=${S52_END:-560}
export LEAN_TIMEOUT=150
source scripts/lean.sh
lean_env
M=/tmp/s52/M SP=/tmp/s52/SP P10=/tmp/s52/P10 O=/tmp/s52/O K12=/tmp/s52/K12 T=/tmp/s52/T K13=/tmp/s52/K13
lean_copy "$M"
lean_patched "$O" bench/trials/stk-osum.patch
lean_broken "$K12" libmamba/src/ops/stack_step.cu \
    's/if (g \* TPO + q < RW) act\[(g \* TPO + q) \* Y::ACT/if (g * TPO + q < RW) act[(g * TPO + (q ^ 1)) * Y::ACT/' \
    bench/trials/stk-osum.patch
lean_patched "$T" bench/trials/stk-tc.patch
lean_broken "$K13" libmamba/src/ops/stack_step.cu 's/ + pq\[192 + ch\],/,/' bench/trials/stk-tc.patch
lean_build "$M" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$T" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K13" tests/gpu_test_ops &
lean_patched "$P10" bench/trials/stk-rp10.patch
lean_build "$P10" tests/gpu_test_ops bench/bench_generate &
lean_patched "$SP" bench/trials/stk-prof.patch
lean_build "$SP" bench/bench_generate &
lean_build "$O" tests/gpu_test_ops bench/bench_generate &
lean_build "$K12" tests/gpu_test_ops &
lean_ready
LEAN_TAIL=20 lean_suite "$M" gpu_test_ops test_stack_step "stack_step"
lean_suite "$M" gpu_test_model '*cluster*'
LEAN_TAIL=20 lean_suite "$O" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=12 lean_suite "$K12" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=20 lean_suite "$T" gpu_test_ops test_stack_step "stack_step"
lean_suite "$T" gpu_test_model '*cluster*'
LEAN_TAIL=12 lean_suite "$K13" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=6 lean_suite "$P10" gpu_test_ops test_stack_step "B=(33|61)"
echo "== M: which instance AUTO takes (MB_CUDA_STK_SAY=1)"
for a in "dna --batch 64" "dna --batch 48" "dna --batch 32" "dna --batch 16" "dna --batch 8" "small --batch 64" "small --batch 16"; do
    # shellcheck disable=SC2086
    MB_CUDA_STK_SAY=1 timeout 30 "$M/build-lean/bench/bench_generate" --device cuda --shape $a 2>&1 |
        grep -E "cluster step:|^\| (dna|small)" | sort -u
done
LEAN_ROUNDS=2 lean_rounds 330 20 "$M $O $T" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 8" \
    "--device cuda --shape small --batch 64" "--device cuda --shape small --batch 16" \
    "--device cuda --shape dna --batch 1 --tokens 1024"
LEAN_ROUNDS=2 lean_rounds 360 20 "$M $P10" bench_generate "--device cuda --shape dna --batch 64"
MB_CUDA_STK_ROWS=10 lean_racecheck "$P10" gpu_test_ops test_stack_step
lean_stk_prof "$SP" 1 8 64
lean_before "$((END - 330))" && bash scripts/s51_call3.sh
lean_before "$((END - 280))" && S51_ROWS=1 bash scripts/s51_call3.sh
for r in 4 10 12; do MB_CUDA_STK_ROWS=$r lean_racecheck "$O" gpu_test_ops test_stack_step; done
for r in 4 10 12; do MB_CUDA_STK_ROWS=$r lean_racecheck "$T" gpu_test_ops test_stack_step; done
echo "== T: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 60 compute-sanitizer --tool memcheck \
    "$T/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
lean_before "$((END - 60))" && lean_suite "$M" gpu_test_model
lean_before "$((END - 40))" && lean_suite "$M" gpu_test_ops
echo "== done at $(el) s"
