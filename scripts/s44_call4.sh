#!/usr/bin/env bash
# Session 44's fourth device call (carry .deps): `scan-sa` (A and its rotation rates from shared
# memory in the complex backward chunk kernel, whose 120 bytes of spills go, and in both locals
# kernels, the real one at 6 blocks an SM, 80 registers, where it had 94 and 5) against main;
# gpu_test_scan on it and on K (the complex rates' store broken: must fail); `bench_gpu --scan`
# and the DNA step at 2^20, alternated; racecheck; main's generation rows at the end.
#   bash scripts/s44_call4.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); scan-sa was merged after it for complex
# A only and its patch deleted, so this script no longer runs as written. Its steps are written with
# scripts/lean.sh's helpers (since the call: the same
# steps, their time checks as the helpers make them).
set -uo pipefail
END=${S44_END:-540}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_patched $B bench/trials/scan-sa.patch -R
lean_broken $K libmamba/src/ops/scan.cu 's/if (CPLX) sAi\[threadIdx.x \* (NT + 1) + n\] = Aimr\[n\];/if (CPLX) sAi[threadIdx.x * (NT + 1) + n] = A2r[n];/'
lean_build "$PWD" tests/gpu_test_scan tests/gpu_test_ops bench/bench_gpu bench/bench_generate &
lean_build $B bench/bench_gpu &
lean_build $K tests/gpu_test_scan &
lean_ready
lean_suite "$PWD" gpu_test_scan
lean_suite $K gpu_test_scan # must FAIL
lean_rounds "$END" 90 "$PWD $B" bench_gpu --scan "--train 1048576 fp32" "--train 1048576 bf16"
lean_before $((END - 100)) && lean_racecheck "$PWD" gpu_test_scan
LEAN_ROUNDS=1 lean_rounds "$END" 30 "$PWD" bench_generate "--device cuda --shape 130m --batch 1" \
    "--device cuda --shape dna --batch 1" "--device cuda --shape dna --batch 64" "--device cuda --shape 130m --batch 64"
echo "== done at $(el) s"
