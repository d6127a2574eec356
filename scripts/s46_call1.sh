#!/usr/bin/env bash
# Session 46, call 1: main's GPU suites (session 45's review, host code, not yet run on a GPU);
# the trial stk-ilp (ops/stack_step.cu: the cluster step's rows taken a group at once, their
# loads and sums interleaved; 12 rows a cluster) against main at the DNA model's rows, in two
# group sizes (T: 4 rows in the norm/in_proj and the other phases, U: 2 and 2); P, T with the
# trial stk-prof (cycles between the kernel's phases, block 0's thread 0); on an H200, the
# issues' rows of main.
#   bash scripts/s46_call1.sh > $OUT/log 2>&1; tail -120 $OUT/log
set -uo pipefail
END=${S46_END:-570}
source scripts/lean.sh
lean_env
B=/tmp/s46/B T=/tmp/s46/T U=/tmp/s46/U P=/tmp/s46/P
lean_patched "$B" bench/trials/stk-ilp.patch -R
lean_copy "$T"
lean_copy "$U" && sed -i 's/^#define STK_RU 4/#define STK_RU 2/; s/^#define STK_RV 4/#define STK_RV 2/' "$U/libmamba/src/ops/stack_step.cu"
grep -c "STK_RU 2\|STK_RV 2" "$U/libmamba/src/ops/stack_step.cu"
lean_patched "$P" bench/trials/stk-prof.patch
lean_build "$P" bench/bench_generate &
lean_build "$B" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_generate bench/bench_gpu &
lean_build "$T" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$U" tests/gpu_test_ops bench/bench_generate &
lean_ready
echo "== B: ctest -L gpu suites ($(el) s)"
for s in gpu_test_scan gpu_test_ops gpu_test_model; do lean_suite "$B" "$s"; done
lean_cluster_suites "$T"
lean_cluster_suites "$U"
lean_racecheck "$T" gpu_test_ops test_stack_step
export MB_CUDA_STEP=cluster
LEAN_ROUNDS=2 lean_rounds 330 30 "$B $T $U" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 8" "--device cuda --shape dna --batch 16" "--device cuda --shape dna --batch 32" \
    "--device cuda --shape dna --batch 64"
lean_stk_prof "$P" 1 8 64
unset MB_CUDA_STEP
echo "== AUTO (main's rule) at 64 rows"
LEAN_ROUNDS=1 lean_rounds 360 30 "$B" bench_generate "--device cuda --shape dna --batch 64"
if lean_on_h200; then
    echo "== H200: main's rows of the issues ($(el) s)"
    timeout 70 "$B/build-lean/bench/bench_gpu" --scan | grep -E "^\| *[0-9(]|^\| (GPU|CPU)|floor|bandwidth"
    LEAN_ROUNDS=1 lean_rounds "$END" 30 "$B" bench_gpu "--auto --train 1048576 fp32" "--auto --train 1048576 bf16" \
        "--train 1048576 bf16"
    LEAN_ROUNDS=1 lean_rounds "$END" 45 "$B" bench_generate "--device cuda --shape 130m --batch 1 --weights fp32" \
        "--device cuda --shape 130m --batch 1 --weights bf16" "--device cuda --shape 130m --batch 64 --weights tf32" \
        "--device cuda --shape 2.8b --batch 1 --tokens 128 --weights bf16"
fi
echo "== done at $(el) s"
