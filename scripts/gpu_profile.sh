#!/usr/bin/env bash
# Profile the scan kernels on a lent GPU: the quick validation run, then
# Nsight Compute on the first launches of each scan kernel (the
# (8, 1536, 2048) real shape of bench_gpu), written to $OUT/ncu.txt.
#   bash scripts/gpu_profile.sh        (carry .deps)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
bash scripts/gpu_check.sh quick
OUT=${OUT:-$PWD/gpu-check-out}
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
export LD_LIBRARY_PATH="/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
timeout 240 "$NCU" --kernel-name regex:'scan_(fwd_local|fwd_out|bwd_local|bwd_chunk)' --launch-count 4 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
    --section MemoryWorkloadAnalysis build-gpu/bench/bench_gpu --quick > "$OUT/ncu.txt" 2>&1
echo "ncu rc=$?"
grep -E "scan_|Duration|Achieved Occupancy|Theoretical Occupancy|Registers Per|Memory Throughput|Compute \(SM\) Throughput|Stall|Warp Cycles Per Issued|Block Limit" "$OUT/ncu.txt" | head -80
