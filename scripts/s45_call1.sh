#!/usr/bin/env bash
# The next session's first device call (written in session 44; carry .deps).
#   1. main's MB_RECOMPUTE_AUTO (session 44, CPU-tested only): gpu_test_model's auto test, the
#      DNA step at 2^20 in fp32 with --auto against LAYERS and --inner, and at 2^23 in bf16, where
#      AUTO must step down to STACK.
#   2. `out-split` (bench/trials/out-split.patch: out_proj's one-row sums split over warps,
#      compiled only) against main: T = main + the patch, K = T with slice 0 taken off each
#      out_proj column's sum (must fail gpu_test_ops test_block_step); the generation rows the
#      split kernels run, alternated; T's suites and racecheck as time allows.
#   bash scripts/s45_call1.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
END=${S45_END:-480}
source scripts/lean.sh
lean_env
T=/tmp/lean_t K=/tmp/lean_k
lean_patched $T bench/trials/out-split.patch
lean_broken $K libmamba/src/ops/block_step_split.cu \
    's|acc\[0\] = s; /\* lane m.s row.s sum, in acc\[0\] \*/|acc[0] = s - part[warp][lane];|' bench/trials/out-split.patch
lean_build "$PWD" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate bench/bench_gpu &
lean_build $T tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build $K tests/gpu_test_ops &
lean_ready
# 1. MB_RECOMPUTE_AUTO: the GPU test, then at 2^20 against LAYERS and INNER (one round), and at
# 2^23 tokens, where LAYERS needs some 80 GiB: on an H100 AUTO must step down to STACK
# (auto:stack; on an H200 LAYERS may fit)
lean_suite "$PWD" gpu_test_model '*auto*' auto
for a in "--auto --train 1048576 fp32" "--train 1048576 fp32" "--inner --train 1048576 fp32"; do
    echo "== main: bench_gpu $a ($(el) s)"
    timeout 40 build-lean/bench/bench_gpu $a | grep -E "^\| dna"
done
echo "== main: bench_gpu --auto --train 8388608 bf16 ($(el) s)"
timeout 100 build-lean/bench/bench_gpu --auto --train 8388608 bf16 | grep -E "^\| dna"
# 2. out-split
lean_suite $T gpu_test_ops test_block_step 'split.*(768|40 )'
lean_suite $K gpu_test_ops test_block_step # slice 0 taken off each sum: must FAIL
lean_rounds "$END" 45 "$T $PWD" bench_generate "--device cuda --shape 130m --batch 1" \
    "--device cuda --shape 130m --batch 8" "--device cuda --shape 2.8b --batch 1 --tokens 128 --weights bf16" \
    "--device cuda --shape 2.8b --batch 1 --tokens 64"
if lean_before $((END - 150)); then
    lean_suite $T gpu_test_ops
    lean_suite $T gpu_test_model
fi
lean_before $((END - 60)) && lean_racecheck $T gpu_test_ops test_block_step
echo "== done at $(el) s"
