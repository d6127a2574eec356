#!/usr/bin/env bash
# Session 44's third device call (carry .deps): `scan-b4` (the real backward chunk kernel at 4
# blocks an SM: A log2(e) from shared memory and the dB/dC reduce-scatter's first level folded
# into the state loop, 127 registers, no spill, where main has 158 and 3 blocks) against main;
# gpu_test_scan on it and on K (the fold's pairing swapped: must fail); `bench_gpu --scan` and
# the DNA step at 2^20, alternated; the sanitizers on the changed kernels as time allows.
#   bash scripts/s44_call3.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); scan-b4 was merged after it and its
# patch deleted, so this script no longer runs as written.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
END=${S44_END:-540}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_copy $B && patch -s -R -d $B -p1 <bench/trials/scan-b4.patch || echo "base: patch -R FAILED"
lean_copy $K && sed -i 's/vals\[n\] = (upper ? vc : vb) + __shfl_xor_sync(0xffffffffu, upper ? vb : vc, 16);/vals[n] = (upper ? vb : vc) + __shfl_xor_sync(0xffffffffu, upper ? vc : vb, 16);/' $K/libmamba/src/ops/scan.cu
grep -c "vals\[n\] = (upper ? vb : vc)" $K/libmamba/src/ops/scan.cu
lean_build "$PWD" tests/gpu_test_scan tests/gpu_test_ops bench/bench_gpu &
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
if [ "$(el)" -lt $((END - 100)) ]; then
    echo "== racecheck gpu_test_scan (small) ($(el) s)"
    MB_GPU_TEST_SMALL=1 timeout 90 compute-sanitizer --tool racecheck build-lean/tests/gpu_test_scan 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
fi
if [ "$(el)" -lt $((END - 70)) ]; then
    echo "== racecheck gpu_test_ops test_block_step (small) ($(el) s)"
    MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_block_step timeout 60 compute-sanitizer --tool racecheck build-lean/tests/gpu_test_ops 2>&1 | grep -E "RACECHECK SUMMARY|ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
fi
echo "== done at $(el) s"
