#!/usr/bin/env bash
# Session 51's second call: the merge of call 1's two winners (stk-conv's phase 1 and stk-rw's 6
# and 10 rows a cluster), whose 6- and 10-row instances no GPU has run in this form (their groups
# of 3 and 5 rows padded to 8 and 16 sums for the reduce-scatter; every other kernel is call 1's T,
# byte for byte). MR: this tree, its suites, racecheck at 6 and 10 rows forced, memcheck;
# P2: the same with groups of 2 rows at 6 and 10 (no padding), timed against MR; K9: MR with the
# padded lanes' zeros stored as z sums (only the 6- and 10-row instances change), which must fail;
# M: main before the merge (26f7760 + this script), timed beside; SP: MR with stk-prof; X: MR with
# the trial stk-xsum (x_proj's sums at several rows by one reduce-scatter of all the rows), its
# suite, racecheck and rows, and K10 (X with the rows' sums stored to rows swapped in pairs); Y: MR
# with the trial stk-ysum (the scan phase's dt and y sums by reduce-scatters over a thread's
# items, the softplus once a row and channel), likewise, and K11 (Y's y stored to item n ^ 1's row).
#   bash scripts/s51_call2.sh > $OUT/log 2>&1; tail -150 $OUT/log
set -uo pipefail
END=${S51_END:-470}
export LEAN_TIMEOUT=150
source scripts/lean.sh
lean_env
MR=/tmp/s51/MR X=/tmp/s51/X K10=/tmp/s51/K10 Y=/tmp/s51/Y K11=/tmp/s51/K11 P2=/tmp/s51/P2 K9=/tmp/s51/K9 M=/tmp/s51/M0 SP=/tmp/s51/SP
lean_copy "$MR"
lean_broken "$P2" libmamba/src/ops/stack_step.cu 's/rw % 5 == 0 ? 5 : rw % 3 == 0 ? 3 : 2/2/'
lean_broken "$K9" libmamba/src/ops/stack_step.cu 's/if (lane < 2 \* RU) act\[(r0 + lane % RU)/if (lane < SX) act[(r0 + lane % RU)/'
lean_copy "$M" && patch -s -R -d "$M" -p1 <s51_merge.diff && echo "== M: the merge reversed (s51_merge.diff, git diff HEAD of libmamba and tests)"
lean_patched "$SP" bench/trials/stk-prof.patch
lean_patched "$X" bench/trials/stk-xsum.patch
lean_broken "$K10" libmamba/src/ops/stack_step.cu 's/if (lane < RW) act\[lane \* Y::ACT + Y::APX + o\] = t;/if (lane < RW) act[(lane ^ 1) * Y::ACT + Y::APX + o] = t;/' \
    bench/trials/stk-xsum.patch
lean_patched "$Y" bench/trials/stk-ysum.patch
lean_broken "$K11" libmamba/src/ops/stack_step.cu 's/float \*ar = act + (sr0() + 2 \* n) \* Y::ACT;/float *ar = act + (sr0() + 2 * (n ^ 1)) * Y::ACT;/' \
    bench/trials/stk-ysum.patch
lean_build "$X" tests/gpu_test_ops bench/bench_generate &
lean_build "$Y" tests/gpu_test_ops bench/bench_generate &
lean_build "$K11" tests/gpu_test_ops &
lean_build "$K10" tests/gpu_test_ops &
lean_build "$MR" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$P2" bench/bench_generate &
lean_build "$K9" tests/gpu_test_ops &
lean_build "$M" bench/bench_generate &
lean_build "$SP" bench/bench_generate &
lean_ready
LEAN_TAIL=22 lean_suite "$MR" gpu_test_ops test_stack_step "stack_step"
lean_suite "$MR" gpu_test_model '*cluster*'
LEAN_TAIL=14 lean_suite "$K9" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=22 lean_suite "$X" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=14 lean_suite "$K10" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=22 lean_suite "$Y" gpu_test_ops test_stack_step "stack_step"
LEAN_TAIL=14 lean_suite "$K11" gpu_test_ops test_stack_step "stack_step"
LEAN_ROUNDS=2 lean_rounds 300 20 "$M $MR $P2 $X $Y" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 48"
LEAN_ROUNDS=2 lean_rounds 300 20 "$M $MR $X $Y" bench_generate "--device cuda --shape dna --batch 16" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape small --batch 64" \
    "--device cuda --shape small --batch 16" "--device cuda --shape dna --batch 1 --tokens 1024"
lean_stk_prof "$SP" 32 64
for r in 6 10; do MB_CUDA_STK_ROWS=$r lean_racecheck "$MR" gpu_test_ops test_stack_step; done
for r in 2 12; do MB_CUDA_STK_ROWS=$r lean_racecheck "$X" gpu_test_ops test_stack_step; done
for r in 4 12; do MB_CUDA_STK_ROWS=$r lean_racecheck "$Y" gpu_test_ops test_stack_step; done
echo "== MR: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 60 compute-sanitizer --tool memcheck \
    "$MR/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
lean_before "$((END - 90))" && lean_suite "$MR" gpu_test_model
lean_before "$((END - 60))" && lean_suite "$MR" gpu_test_ops
echo "== done at $(el) s"
# Run after it on the warm machine (the trees above still in /tmp/s51; session 51), as typed:
#  1. XY = MR + stk-xsum + stk-ysum built, and K9b, MR's phase 1 with its row groups stepped by 4:
#     source scripts/lean.sh; lean_env; XY=/tmp/s51/XY; lean_patched $XY bench/trials/stk-xsum.patch;
#     patch -s -d $XY -p1 < bench/trials/stk-ysum.patch; lean_build $XY tests/gpu_test_ops bench/bench_generate &
#     F=/tmp/s51/MR/libmamba/src/ops/stack_step.cu; cp $F /tmp/F.bak
#     sed -i 's/for (int r0 = 0; r0 < RW; r0 += RU) {/for (int r0 = 0; r0 < RW; r0 += 4) {/' $F
#     cmake --build /tmp/s51/MR/build-lean --target gpu_test_ops; lean_suite /tmp/s51/MR gpu_test_ops test_stack_step; cp /tmp/F.bak $F
#     (its last step, a wait on `pgrep -f build-lean`, matched its own command line and ran to the limit)
#  2. LEAN_TAIL=4 lean_suite $XY gpu_test_ops test_stack_step "B=(33|61)"; LEAN_ROUNDS=2 lean_rounds 100 15
#     "/tmp/s51/MR $XY" bench_generate (dna 64, 32, 16; small 64)
#  3. racecheck of XY at MB_CUDA_STK_ROWS 2, 4, 12; memcheck; one round of dna 8, small 16, dna 1.
# stk-conv, stk-rw, stk-xsum and stk-ysum were then merged (main's stack_step.cu is XY's PTX) and
# their patches deleted.
