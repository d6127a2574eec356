#!/usr/bin/env bash
# Session 42, call 2 (carry .deps): the merged tree (bf16-reads with the fp32 path's PTX kept):
# its GPU suites, the DNA step at 2^20 in TF32 / fp32 / bf16 (two rounds), then where the step's
# time goes at 2^17 in bf16 and TF32 (every kernel timed alone by Nsight Compute, summed by
# kernel and grid), to see what separates bf16 from TF32 now.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_start tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu
nvidia-smi --query-gpu=name --format=csv,noheader
for t in gpu_test_scan gpu_test_ops gpu_test_model; do
    echo "== $t ($(el) s)"
    timeout 200 build-lean/tests/$t 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -4
done
B=build-lean/bench/bench_gpu
for r in 1 2; do
    echo "== round $r ($(el) s)"
    for p in tf32 fp32 bf16; do timeout 40 $B --train 1048576 $p | grep -E "^\| dna"; done
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
eval "$(sed -n '/^ncu_sum() {/,/^}/p' scripts/gpu_profile.sh)"
for p in bf16 tf32; do
    [ "$(el)" -lt 450 ] || break
    timeout 120 "$NCU" --profile-from-start off --metrics gpu__time_duration.sum \
        --cache-control none --clock-control none --csv --page raw \
        $B --train 131072 $p >"$OUT/ncu_train_$p.csv" 2>"$OUT/ncu_train_$p.err"
    echo "== ncu $p rc=$? ($(el) s)"
    ncu_sum "$OUT/ncu_train_$p.csv" | head -40
done
echo "== done at $(el) s"
