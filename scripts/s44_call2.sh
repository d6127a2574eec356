#!/usr/bin/env bash
# Session 44's second device call (carry .deps): `gemv-hoist` (the split step's RMSNorm scale
# taken after the products, the conv taps and the residual loaded before a column's weights)
# against main at batch 1 and 8, where the split kernels run; gpu_test_ops on both, and on K
# (the trial with the 1/rms dropped: must fail).
#   bash scripts/s44_call2.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); gemv-hoist was merged after it and its
# patch deleted, so this script no longer runs as written. Its steps are written with
# scripts/lean.sh's helpers (since the call: the same
# steps, their time checks as the helpers make them).
set -uo pipefail
END=${S44_END:-480}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_patched $B bench/trials/gemv-hoist.patch -R
lean_broken $K libmamba/src/ops/block_step_split.cu 's/const float yv = acc\[m\] \* rstd\[m\];/const float yv = acc[m];/'
lean_build "$PWD" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate bench/bench_gpu &
lean_build $B tests/gpu_test_ops bench/bench_generate &
lean_build $K tests/gpu_test_ops &
lean_ready
for t in "$PWD" $B; do lean_suite $t gpu_test_ops test_block_step 'split.*(2560|768)|worst'; done
lean_suite $K gpu_test_ops test_block_step # the 1/rms dropped: must FAIL
lean_rounds "$END" 40 "$PWD $B" bench_generate "--device cuda --shape 2.8b --batch 1 --tokens 128 --weights bf16" \
    "--device cuda --shape 2.8b --batch 1 --tokens 64" "--device cuda --shape 130m --batch 1" \
    "--device cuda --shape 130m --batch 1 --weights bf16" "--device cuda --shape 130m --batch 8" \
    "--device cuda --shape 130m --batch 64 --weights tf32"
if lean_on_h200; then
    LEAN_ROUNDS=1 lean_rounds "$END" 60 "$PWD" bench_generate "--device cuda --shape dna --batch 1" \
        "--device cuda --shape dna --batch 64"
    LEAN_ROUNDS=1 lean_rounds "$END" 60 "$PWD" bench_gpu "--train 1048576 fp32" "--inner --train 1048576 fp32"
fi
if lean_before $((END - 120)); then
    lean_suite "$PWD" gpu_test_ops
    lean_suite "$PWD" gpu_test_model
fi
echo "== done at $(el) s"
