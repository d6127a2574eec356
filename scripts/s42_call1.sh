#!/usr/bin/env bash
# Session 42's first device call (carry .deps). Three trees, built at once:
#   W = this tree + bench/trials/scan-bwd-t.patch (the backward's chunk from MB_SCAN_BWD_T,
#       default 32 = main's kernels)
#   C = this tree + bench/trials/scan-bwd-16.patch (a compile-time 16-step backward chunk)
#   R = this tree + bench/trials/bf16-reads.patch (bf16 precision: the conv and the scan round
#       what they read; four rounding passes a layer fewer)
# Tests: gpu_test_scan on W at 16, on C and on R; gpu_test_ops and gpu_test_model's bf16 tests on
# R. Then in rounds: bench_gpu --scan and the DNA step at 2^20 (TF32, fp32, bf16) for W at 32
# (main), W at 16, C, R.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_env
W=/tmp/lean_bwdt C=/tmp/lean_bwd16 R=/tmp/lean_r16
lean_copy $W && patch -s -d $W -p1 <bench/trials/scan-bwd-t.patch || echo "scan-bwd-t: patch FAILED"
lean_copy $C && patch -s -d $C -p1 <bench/trials/scan-bwd-16.patch || echo "scan-bwd-16: patch FAILED"
lean_copy $R && patch -s -d $R -p1 <bench/trials/bf16-reads.patch || echo "bf16-reads: patch FAILED"
lean_build $W tests/gpu_test_scan bench/bench_gpu &
lean_build $C tests/gpu_test_scan bench/bench_gpu &
lean_build $R tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
t() { # label, timeout, command...
    local l=$1 to=$2
    shift 2
    echo "== $l ($(el) s)"
    timeout "$to" "$@" 2>&1 | grep -E "PASSED|FAILED|differ|not bf16|rel err [0-9.e+-]+$" | grep -vE " 0 of [0-9]+ differ" | tail -8
}
MB_SCAN_BWD_T=16 t "gpu_test_scan, W at 16" 150 $W/build-lean/tests/gpu_test_scan
t "gpu_test_scan, C" 150 $C/build-lean/tests/gpu_test_scan
echo "== R: gpu_test_scan ($(el) s)"
timeout 150 $R/build-lean/tests/gpu_test_scan 2>&1 | grep -E "PASSED|FAILED|bf16 reads" | grep -E "PASSED|FAILED|[1-9][0-9]* of" | tail -6
echo "== R: gpu_test_ops ($(el) s)"
timeout 150 $R/build-lean/tests/gpu_test_ops 2>&1 | grep -E "PASSED|FAILED|conv1d bf16 reads|round_copy" | grep -E "PASSED|FAILED|[1-9][0-9]* of|round_copy" | tail -6
echo "== R: gpu_test_model *bf16* ($(el) s)"
MB_TEST_FILTER='*bf16*' timeout 150 $R/build-lean/tests/gpu_test_model 2>&1 | grep -E "PASSED|FAILED|bf16" | tail -12
bench() { # label, binary, precisions, env
    local l=$1 b=$2 ps=$3
    shift 3
    echo "== $l ($(el) s)"
    env "$@" timeout 60 $b --scan | grep -E "^\| +[0-9]+ \|" | head -12 | cut -c1-110
    for p in $ps; do env "$@" timeout 40 $b --train 1048576 $p | grep -E "^\| dna"; done
}
for r in 1 2; do
    [ "$(el)" -lt 400 ] || break
    bench "round $r, main (W at 32)" $W/build-lean/bench/bench_gpu "tf32 fp32 bf16" MB_SCAN_BWD_T=32
    [ "$(el)" -lt 460 ] || break
    bench "round $r, W at 16" $W/build-lean/bench/bench_gpu "tf32 fp32" MB_SCAN_BWD_T=16
    [ "$(el)" -lt 480 ] || break
    bench "round $r, C (16 compiled)" $W/../lean_bwd16/build-lean/bench/bench_gpu "tf32 fp32" X=1
    [ "$(el)" -lt 500 ] || break
    bench "round $r, R (bf16 reads)" $R/build-lean/bench/bench_gpu "bf16 fp32" X=1
done
echo "== done at $(el) s"
