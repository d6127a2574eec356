#!/usr/bin/env bash
# Session 44's fourth device call (carry .deps): `scan-sa` (A and its rotation rates from shared
# memory in the complex backward chunk kernel, whose 120 bytes of spills go, and in both locals
# kernels, the real one at 6 blocks an SM, 80 registers, where it had 94 and 5) against main;
# gpu_test_scan on it and on K (the complex rates' store broken: must fail); `bench_gpu --scan`
# and the DNA step at 2^20, alternated; racecheck; main's generation rows at the end.
#   bash scripts/s44_call4.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); scan-sa was merged after it for complex
# A only and its patch deleted, so this script no longer runs as written.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
END=${S44_END:-540}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_copy $B && patch -s -R -d $B -p1 <bench/trials/scan-sa.patch || echo "base: patch -R FAILED"
lean_copy $K && sed -i 's/if (CPLX) sAi\[threadIdx.x \* (NT + 1) + n\] = Aimr\[n\];/if (CPLX) sAi[threadIdx.x * (NT + 1) + n] = A2r[n];/' $K/libmamba/src/ops/scan.cu
grep -c "sAi\[threadIdx.x \* (NT + 1) + n\] = A2r\[n\]" $K/libmamba/src/ops/scan.cu
lean_build "$PWD" tests/gpu_test_scan tests/gpu_test_ops bench/bench_gpu bench/bench_generate &
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
for a in "--shape 130m --batch 1" "--shape dna --batch 1" "--shape dna --batch 64" "--shape 130m --batch 64"; do
    [ "$(el)" -lt $((END - 30)) ] || break
    echo "== trial bench_generate --device cuda $a ($(el) s)"
    timeout 40 build-lean/bench/bench_generate --device cuda $a | grep -E "^\| .*sample" | tail -2
done
echo "== done at $(el) s"
