#!/usr/bin/env bash
# The next session's first device call (written in session 41; carry .deps). W = this tree with
# bench/trials/scan-bwd-t.patch (the backward's chunk length from MB_SCAN_BWD_T, default 32 =
# main's). gpu_test_scan at 16 and 24 (the default is main's, which passed in session 41), then
# in W's one binary, alternated: bench_gpu --scan and the DNA step at 2^20 (TF32, fp32, bf16)
# with MB_SCAN_BWD_T 32, 16 and 24. On an H200 these 32 rows are also main's figures for issue
# 14's table (session 41 measured the carries' rewrite on an H100 only).
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_env
W=/tmp/lean_bwdt
lean_copy $W && patch -s -d $W -p1 <bench/trials/scan-bwd-t.patch || echo "scan-bwd-t: patch FAILED"
lean_build $W tests/gpu_test_scan bench/bench_gpu
echo "== built at $(el) s"
deps_runtime
for t in 16 24; do
    echo "== gpu_test_scan, MB_SCAN_BWD_T=$t"
    MB_SCAN_BWD_T=$t timeout 120 $W/build-lean/tests/gpu_test_scan 2>&1 | grep -E "PASSED|FAILED" | head -4
done
B=$W/build-lean/bench/bench_gpu
for r in 1 2; do
    for t in 32 16 24; do
        [ "$(el)" -lt 420 ] || break 2
        echo "== round $r, MB_SCAN_BWD_T=$t ($(el) s)"
        MB_SCAN_BWD_T=$t timeout 60 $B --scan | grep -E "^\| +[0-9]+ \|" | head -12 | cut -c1-110
        for p in tf32 fp32 bf16; do MB_SCAN_BWD_T=$t timeout 40 $B --train 1048576 $p | grep -E "^\| dna"; done
    done
done
echo "== done at $(el) s"
