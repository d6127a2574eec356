#!/usr/bin/env bash
# Session 46, call 2: the cluster step's trials against main (B): T1 = call 1's stk-ilp; T2 =
# stk-gather (T1, and the two gathers over the cluster's blocks a thread an output, the ranks in
# turn, by 32-bit shared::cluster loads); T3 = stk-split (T2, each cluster barrier split into
# arrive and wait around the global state traffic). T3's stack-step test, a break by hand (K:
# one rank dropped from the gathers), racecheck; the DNA and small models' rows forced onto
# the cluster step; P3, T3 with stk-prof's cycles between phases.
#   bash scripts/s46_call2.sh > $OUT/log 2>&1; tail -150 $OUT/log
set -uo pipefail
source scripts/lean.sh
lean_env
B=/tmp/s46/B T1=/tmp/s46/T1 T2=/tmp/s46/T2 T3=/tmp/s46/T3 P3=/tmp/s46/P3 K=/tmp/s46/K
lean_copy "$T3"
lean_patched "$T2" bench/trials/stk-split.patch -R
lean_patched "$B" bench/trials/stk-split.patch -R && patch -s -R -d "$B" -p1 <bench/trials/stk-gather.patch
lean_patched "$T1" bench/trials/stk-split.patch -R && patch -s -R -d "$T1" -p1 <bench/trials/stk-gather.patch &&
    patch -s -d "$T1" -p1 <bench/trials/stk-ilp.patch
lean_patched "$P3" bench/trials/stk-prof3.patch
lean_broken "$K" libmamba/src/ops/stack_step.cu 's/for (int q = 0; q < C; q++) s += v\[q\];/for (int q = 1; q < C; q++) s += v[q];/'
grep -c "STK_ROWS\|stk_cluster_sum\|stk_cluster_arrive" $B/libmamba/src/ops/stack_step.cu $T1/libmamba/src/ops/stack_step.cu \
    $T2/libmamba/src/ops/stack_step.cu $T3/libmamba/src/ops/stack_step.cu
for t in "$B" "$T1" "$T2" "$P3"; do lean_build "$t" bench/bench_generate & done
lean_build "$T3" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K" tests/gpu_test_ops &
lean_ready
lean_cluster_suites "$T3"
lean_cluster_suites "$K"
lean_racecheck "$T3" gpu_test_ops test_stack_step
export MB_CUDA_STEP=cluster
LEAN_ROUNDS=2 lean_rounds 420 30 "$B $T1 $T2 $T3" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" \
    "--device cuda --shape dna --batch 64"
LEAN_ROUNDS=1 lean_rounds 450 30 "$B $T3" bench_generate "--device cuda --shape small --batch 1" \
    "--device cuda --shape small --batch 16" "--device cuda --shape small --batch 32" "--device cuda --shape small --batch 64"
lean_stk_prof "$P3" 1 8 64
unset MB_CUDA_STEP
echo "== AUTO at 64 rows (main's rule: the layer path)"
LEAN_ROUNDS=1 lean_rounds 480 30 "$T3" bench_generate "--device cuda --shape dna --batch 64"
echo "== done at $(el) s"
