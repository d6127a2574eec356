#!/usr/bin/env bash
# Session 44's sixth device call (carry .deps): `scan-b5` (the real backward chunk kernel at 5
# blocks an SM: its dA sums in shared memory too; 96 registers, 72 bytes spilled) against main
# (4 blocks, 127 registers); gpu_test_scan on it and on K (two threads on one dA row: must
# fail); `bench_gpu --scan` alternated, the DNA step if time allows.
#   bash scripts/s44_call6.sh > $OUT/log 2>&1; tail -80 $OUT/log
# As it ran on an H100 (bench/RESULTS.md, "Session 44"); scan-b5 lost and its patch is deleted,
# so this script no longer runs as written. Its steps are written with
# scripts/lean.sh's helpers (since the call: the same
# steps, their time checks as the helpers make them).
set -uo pipefail
END=${S44_END:-540}
source scripts/lean.sh
lean_env
B=/tmp/lean_base K=/tmp/lean_k
lean_patched $B bench/trials/scan-b5.patch -R
lean_broken $K libmamba/src/ops/scan.cu 's/float \*dA_acc = SD ? sdA + threadIdx.x \* (NT + 1) : dA_r;/float *dA_acc = SD ? sdA + (threadIdx.x \& ~1) * (NT + 1) : dA_r;/'
lean_build "$PWD" tests/gpu_test_scan bench/bench_gpu &
lean_build $B bench/bench_gpu &
lean_build $K tests/gpu_test_scan &
lean_ready
lean_suite "$PWD" gpu_test_scan
lean_suite $K gpu_test_scan # must FAIL
lean_rounds "$END" 90 "$PWD $B" bench_gpu --scan "--train 1048576 fp32" "--train 1048576 bf16"
echo "== done at $(el) s"
