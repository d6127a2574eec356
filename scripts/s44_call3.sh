#!/usr/bin/env bash
# Session 44's third device call (carry .deps): `scan-b4` (the real backward chunk kernel at 4
# blocks an SM: A log2(e) from shared memory and the dB/dC reduce-scatter's first level folded
# into the state loop, 127 registers, no spill, where main has 158 and 3 blocks) against main;
# gpu_test_scan on it and on K (the fold's pairing swapped: must fail); `bench_gpu --scan` and
# the DNA step at 2^20, alternated; the sanitizers on the changed kernels as time allows.
#   bash scripts/s44_call3.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); scan-b4 was merged after it and its
# patch deleted, so this script no longer runs as written. Its steps are written with
# scripts/lean.sh's helpers (since the call: the same
# steps, their time checks as the helpers make them).
set -uo pipefail
END=${S44_END:-540}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_patched $B bench/trials/scan-b4.patch -R
lean_broken $K libmamba/src/ops/scan.cu 's/vals\[n\] = (upper ? vc : vb) + __shfl_xor_sync(0xffffffffu, upper ? vb : vc, 16);/vals[n] = (upper ? vb : vc) + __shfl_xor_sync(0xffffffffu, upper ? vc : vb, 16);/'
lean_build "$PWD" tests/gpu_test_scan tests/gpu_test_ops bench/bench_gpu &
lean_build $B bench/bench_gpu &
lean_build $K tests/gpu_test_scan &
lean_ready
lean_suite "$PWD" gpu_test_scan
lean_suite $K gpu_test_scan # must FAIL
lean_rounds "$END" 90 "$PWD $B" bench_gpu --scan "--train 1048576 fp32" "--train 1048576 bf16"
lean_before $((END - 100)) && lean_racecheck "$PWD" gpu_test_scan
lean_before $((END - 70)) && lean_racecheck "$PWD" gpu_test_ops test_block_step
echo "== done at $(el) s"
