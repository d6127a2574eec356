#!/usr/bin/env bash
# Session 44's sixth device call (carry .deps): `scan-b5` (the real backward chunk kernel at 5
# blocks an SM: its dA sums in shared memory too; 96 registers, 72 bytes spilled) against main
# (4 blocks, 127 registers); gpu_test_scan on it and on K (two threads on one dA row: must
# fail); `bench_gpu --scan` alternated, the DNA step if time allows.
#   bash scripts/s44_call6.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); scan-b5 lost and its patch is deleted,
# so this script no longer runs as written.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
END=${S44_END:-540}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_copy $B && patch -s -R -d $B -p1 <bench/trials/scan-b5.patch || echo "base: patch -R FAILED"
lean_copy $K && sed -i 's/float \*dA_acc = SD ? sdA + threadIdx.x \* (NT + 1) : dA_r;/float *dA_acc = SD ? sdA + (threadIdx.x \& ~1) * (NT + 1) : dA_r;/' $K/libmamba/src/ops/scan.cu
grep -c "threadIdx.x & ~1" $K/libmamba/src/ops/scan.cu
lean_build "$PWD" tests/gpu_test_scan bench/bench_gpu &
lean_build $B bench/bench_gpu &
lean_build $K tests/gpu_test_scan &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
echo "== trial gpu_test_scan ($(el) s)"
timeout 120 build-lean/tests/gpu_test_scan 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -4
echo "== K (must FAIL) ($(el) s)"
timeout 120 $K/build-lean/tests/gpu_test_scan 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -5
for r in 1 2; do
    for t in "$PWD" $B; do
        [ "$(el)" -lt $((END - 90)) ] || break 2
        echo "== round $r, $(basename $t): bench_gpu --scan ($(el) s)"
        timeout 90 $t/build-lean/bench/bench_gpu --scan | grep -E "^\| *\(|^\| *[0-9]|real|complex" | head -30
    done
    for p in fp32 bf16; do
        for t in "$PWD" $B; do
            [ "$(el)" -lt $((END - 60)) ] || break 3
            echo "== round $r, $(basename $t): --train 1048576 $p ($(el) s)"
            timeout 40 $t/build-lean/bench/bench_gpu --train 1048576 $p | grep -E "^\| dna"
        done
    done
done
echo "== done at $(el) s"
