#!/usr/bin/env bash
# Session 46, call 3 (no machine came for it: the next session's first call, about 300-400 s).
# F, the merged cluster step (a524e97 and after: rows a group at once, gathers a thread an output,
# split barriers; AUTO up to 12 rows a cluster): the GPU suites, generation rows by AUTO and by
# the layer path, racecheck and memcheck of the cluster tests. The pending trials against F, each
# with its test (and a break by hand where it changes a sum): T4 stk-push (K4), T5 stk-rs (K5),
# T6 stk-stage-mid. P: F with stk-prof (the layer's top split into the weights' wait, the
# barrier and the staging). Then the issues' rows (on an H200, the scan and the DNA step too).
#   bash scripts/s46_call3.sh > $OUT/log 2>&1; tail -150 $OUT/log
set -uo pipefail
END=${S46_END:-450}
source scripts/lean.sh
lean_env
F=/tmp/s46/F P=/tmp/s46/P T4=/tmp/s46/T4 K4=/tmp/s46/K4 T5=/tmp/s46/T5 K5=/tmp/s46/K5 T6=/tmp/s46/T6
lean_copy "$F"
lean_patched "$T4" bench/trials/stk-push.patch
lean_broken "$K4" libmamba/src/ops/stack_step.cu 's/for (int q = 0; q < C; q++) s += p\[q \* ld\];/for (int q = 1; q < C; q++) s += p[q * ld];/' \
    bench/trials/stk-push.patch
lean_patched "$T5" bench/trials/stk-rs.patch
lean_patched "$T6" bench/trials/stk-stage-mid.patch
lean_broken "$K5" libmamba/src/ops/stack_step.cu 's/t, (lane + RU) \& 31);/t, (lane + RU + 1) \& 31);/' bench/trials/stk-rs.patch
lean_patched "$P" bench/trials/stk-prof.patch
lean_build "$F" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_generate bench/bench_gpu &
lean_build "$P" bench/bench_generate &
lean_build "$T4" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K4" tests/gpu_test_ops &
lean_build "$T5" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K5" tests/gpu_test_ops &
lean_build "$T6" tests/gpu_test_ops bench/bench_generate &
lean_ready
for s in gpu_test_scan gpu_test_ops gpu_test_model; do lean_suite "$F" "$s"; done
LEAN_ROUNDS=1 lean_rounds 300 30 "$F" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 4" "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 16" \
    "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 1" \
    "--device cuda --shape small --batch 16" "--device cuda --shape small --batch 32" "--device cuda --shape small --batch 64"
echo "== the layer path (MB_CUDA_STEP=layer) at 32 and 64 rows"
MB_CUDA_STEP=layer LEAN_ROUNDS=1 lean_rounds 300 30 "$F" bench_generate "--device cuda --shape dna --batch 32" \
    "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 32" "--device cuda --shape small --batch 64"
echo "== T4 (stk-push: one row a cluster, the partial sums stored into every block's slots)"
lean_cluster_suites "$T4"
lean_cluster_suites "$K4"
lean_racecheck "$T4" gpu_test_ops test_stack_step
LEAN_ROUNDS=2 lean_rounds 320 30 "$F $T4" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 4" "--device cuda --shape small --batch 1"
echo "== T5 (stk-rs: the norm and in_proj's sums of several rows by one reduce-scatter)"
lean_cluster_suites "$T5"
lean_cluster_suites "$K5"
LEAN_ROUNDS=2 lean_rounds 340 30 "$F $T5" bench_generate "--device cuda --shape dna --batch 8" \
    "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 64" "--device cuda --shape small --batch 64"
echo "== T6 (stk-stage-mid: the next layer's rest of the weights issued after the norm and in_proj)"
lean_cluster_suites "$T6"
LEAN_ROUNDS=2 lean_rounds 360 30 "$F $T6" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 64"
lean_stk_prof "$P" 1 64
lean_racecheck "$F" gpu_test_ops test_stack_step
echo "== memcheck gpu_test_model *cluster*, small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER='*cluster*' timeout 60 compute-sanitizer --tool memcheck \
    "$F/build-lean/tests/gpu_test_model" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
LEAN_ROUNDS=1 lean_rounds "$END" 45 "$F" bench_generate "--device cuda --shape 130m --batch 1 --weights fp32" \
    "--device cuda --shape 130m --batch 1 --weights bf16" "--device cuda --shape 130m --batch 64 --weights tf32" \
    "--device cuda --shape 2.8b --batch 1 --tokens 128 --weights bf16"
if lean_on_h200 && lean_before 250; then
    echo "== H200: the scan and the DNA step ($(el) s)"
    timeout 70 "$F/build-lean/bench/bench_gpu" --scan | grep -E "^\| *[0-9(]|^\| (GPU|CPU)|floor|bandwidth"
    LEAN_ROUNDS=1 lean_rounds "$END" 30 "$F" bench_gpu "--auto --train 1048576 fp32" "--auto --train 1048576 bf16" \
        "--train 1048576 bf16"
fi
echo "== done at $(el) s"
