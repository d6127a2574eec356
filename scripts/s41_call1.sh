#!/usr/bin/env bash
# Session 41, call 1 (carry .deps): s40_call4.sh (the stacked recompute with the head's rows
# a chunk's: gpu_test_model's chunked tests, LAYERS against STACK), then where the DNA step's
# time goes at 2^17 in fp32 and bf16: every kernel of one step timed alone by Nsight Compute,
# summed per kernel and grid (gpu_profile.sh's train mode on the lean build); then the
# model's training products by mode (bench_gemm --train: fp32, TF32, bf16, 3xTF32).
set -uo pipefail
bash scripts/s40_call4.sh
B=build-lean/bench/bench_gpu
for p in tf32 fp32; do timeout 40 $B --stack 65536 --train 1048576 $p | grep -E "^\| dna"; done
source scripts/lean.sh
lean_env
deps_runtime
lean_build "$PWD" bench_gemm
timeout 100 build-lean/bench/bench_gemm --train 131072
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
OUT=${OUT:-/tmp/out}
sum=$(sed -n '/^ncu_sum() {/,/^}/p' scripts/gpu_profile.sh)
eval "$sum"
for p in fp32 bf16; do
    timeout 120 "$NCU" --profile-from-start off --metrics gpu__time_duration.sum \
        --cache-control none --clock-control none --csv --page raw \
        $B --train 131072 $p >"$OUT/ncu_train_$p.csv" 2>"$OUT/ncu_train_$p.err"
    echo "== ncu $p rc=$?"
    ncu_sum "$OUT/ncu_train_$p.csv" | head -45
done
