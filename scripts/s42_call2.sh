#!/usr/bin/env bash
# Session 42, call 2 (carry .deps): the merged tree (bf16-reads, the fp32 path's PTX kept): its
# GPU suites; the DNA step at 2^20 in TF32 / fp32 / bf16, alternated with the bf16 step of
# L = this tree + bench/trials/scan-f32r-lean.patch (the scan rounds only delta, z and dy as it
# reads them) and of N = this tree + bench/trials/bf16-norm.patch (the norms round xn in their
# store); then where the step's time goes at 2^17 in bf16 and TF32 (every kernel timed alone by
# Nsight Compute, summed by kernel and grid).
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_env
L=/tmp/lean_f32r N=/tmp/lean_norm
lean_copy $L && patch -s -d $L -p1 <bench/trials/scan-f32r-lean.patch || echo "scan-f32r-lean: patch FAILED"
lean_copy $N && patch -s -d $N -p1 <bench/trials/bf16-norm.patch || echo "bf16-norm: patch FAILED"
lean_build "$PWD" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu &
lean_build $L tests/gpu_test_scan bench/bench_gpu &
lean_build $N tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
for t in gpu_test_scan gpu_test_ops gpu_test_model; do
    echo "== $t ($(el) s)"
    timeout 200 build-lean/tests/$t 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -4
done
echo "== L: gpu_test_scan ($(el) s)"
timeout 150 $L/build-lean/tests/gpu_test_scan 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|[1-9][0-9]* of [0-9]+ differ" | tail -4
echo "== N: gpu_test_ops, gpu_test_model *bf16* ($(el) s)"
timeout 150 $N/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|[1-9][0-9]* of [0-9]+ not bf16" | tail -4
MB_TEST_FILTER='*bf16*' timeout 150 $N/build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -4
B=build-lean/bench/bench_gpu
for r in 1 2; do
    echo "== round $r ($(el) s)"
    for p in tf32 fp32 bf16; do timeout 40 $B --train 1048576 $p | grep -E "^\| dna"; done
    echo "-- L bf16, N bf16"
    timeout 40 $L/build-lean/bench/bench_gpu --train 1048576 bf16 | grep -E "^\| dna"
    timeout 40 $N/build-lean/bench/bench_gpu --train 1048576 bf16 | grep -E "^\| dna"
done
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
eval "$(sed -n '/^ncu_sum() {/,/^}/p' scripts/gpu_profile.sh)"
for p in bf16 tf32; do
    [ "$(el)" -lt 420 ] || break
    timeout 120 "$NCU" --profile-from-start off --metrics gpu__time_duration.sum \
        --cache-control none --clock-control none --csv --page raw \
        $B --train 131072 $p >"$OUT/ncu_train_$p.csv" 2>"$OUT/ncu_train_$p.err"
    echo "== ncu $p rc=$? ($(el) s)"
    ncu_sum "$OUT/ncu_train_$p.csv" >"$OUT/sum_$p.txt"; head -30 "$OUT/sum_$p.txt"; gzip -f "$OUT/ncu_train_$p.csv"
done
echo "== done at $(el) s"
