#!/usr/bin/env bash
# Session 42's first device call (carry .deps). Two trees, built at once:
#   W = this tree + bench/trials/scan-bwd-t.patch (the backward's chunk from MB_SCAN_BWD_T,
#       default 32 = main's kernels)
#   C = this tree + bench/trials/scan-bwd-16.patch (a compile-time 16-step backward chunk, hs and
#       the staged tile sized for it)
# gpu_test_scan on W at MB_SCAN_BWD_T=16 and on C, then alternated in rounds: bench_gpu --scan and
# the DNA step at 2^20 (TF32, fp32, bf16) for W at 32 (main), W at 16, C; W at 24 once if time
# allows. On an H200 the 32 rows are also main's H200 figures for issue 14's table.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_env
W=/tmp/lean_bwdt C=/tmp/lean_bwd16
lean_copy $W && patch -s -d $W -p1 <bench/trials/scan-bwd-t.patch || echo "scan-bwd-t: patch FAILED"
lean_copy $C && patch -s -d $C -p1 <bench/trials/scan-bwd-16.patch || echo "scan-bwd-16: patch FAILED"
lean_build $W tests/gpu_test_scan bench/bench_gpu &
lean_build $C tests/gpu_test_scan bench/bench_gpu &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
echo "== gpu_test_scan, W with MB_SCAN_BWD_T=16"
MB_SCAN_BWD_T=16 timeout 150 $W/build-lean/tests/gpu_test_scan 2>&1 | grep -E "PASSED|FAILED|rel err" | tail -6
echo "== gpu_test_scan, C ($(el) s)"
timeout 150 $C/build-lean/tests/gpu_test_scan 2>&1 | grep -E "PASSED|FAILED" | tail -4
bench() { # label, binary, env
    local l=$1 b=$2
    shift 2
    echo "== $l ($(el) s)"
    env "$@" timeout 60 $b --scan | grep -E "^\| +[0-9]+ \|" | head -12 | cut -c1-110
    for p in tf32 fp32 bf16; do env "$@" timeout 40 $b --train 1048576 $p | grep -E "^\| dna"; done
}
for r in 1 2; do
    [ "$(el)" -lt 420 ] || break
    bench "round $r, main (W at 32)" $W/build-lean/bench/bench_gpu MB_SCAN_BWD_T=32
    [ "$(el)" -lt 470 ] || break
    bench "round $r, W at 16" $W/build-lean/bench/bench_gpu MB_SCAN_BWD_T=16
    [ "$(el)" -lt 470 ] || break
    bench "round $r, C (16 compiled)" $C/build-lean/bench/bench_gpu X=1
    if [ "$r" = 1 ] && [ "$(el)" -lt 260 ]; then bench "round 1, W at 24" $W/build-lean/bench/bench_gpu MB_SCAN_BWD_T=24; fi
done
echo "== done at $(el) s"
