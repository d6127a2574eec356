#!/usr/bin/env bash
# Session 43's device call (carry .deps), as it ran on an H100 (bench/RESULTS.md, "Session 43"):
#   lean builds of main, T = main + round-2d, S = main + scan-rd-use (both patches since deleted:
#   this script no longer runs as written), K = main with the GPU norms' r16 store dropped;
#   gpu_test_model's *inner* tests; the DNA step at 2^20 for main, main --inner, T and S; the
#   trials' suites, main's suites, K (must fail); a second round, the scan table, and on an H200
#   the generation rows, as time allowed. S43_SHORT=1: main against --inner alone.
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
source scripts/lean.sh
lean_env
T=/tmp/lean_r2d S=/tmp/lean_rduse U=/tmp/lean_rducvt
# S43_SHORT=1 (a short budget): main alone, in_proj's output kept against it, nothing else
if [ "${S43_SHORT:-0}" = 1 ]; then
    lean_build "$PWD" tests/gpu_test_model bench/bench_gpu
    echo "== built at $(el) s"
    nvidia-smi --query-gpu=name --format=csv,noheader
    deps_runtime
    MB_TEST_FILTER='*inner*' timeout 100 build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|in_proj kept" | tail -6
    for r in 1 2; do
        for p in fp32 tf32 bf16; do
            for x in "" --inner; do
                [ "$(el)" -lt "${S43_END:-300}" ] || break 3
                echo "== round $r, $p ${x:-main} ($(el) s)"
                timeout 40 build-lean/bench/bench_gpu $x --train 1048576 $p | grep -E "^\| dna"
            done
        done
    done
    echo "== done at $(el) s"
    exit 0
fi
lean_copy $T && patch -s -d $T -p1 <bench/trials/round-2d.patch || echo "round-2d: patch FAILED"
lean_copy $S && patch -s -d $S -p1 <bench/trials/scan-rd-use.patch || echo "scan-rd-use: patch FAILED"
lean_build "$PWD" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu bench/bench_generate &
lean_build $T tests/gpu_test_ops bench/bench_gpu &
lean_build $S tests/gpu_test_scan bench/bench_gpu &
# K: the GPU norms' r16 store dropped by hand (session 42 broke only the CPU's): gpu_test_ops must fail
K=/tmp/lean_normk
lean_copy $K && sed -i -e 's/return r16 ? mb_bf16_keep(v) : v;/return v;/' -e 's/yr\[j\] = r16 ? mb_bf16_keep(v) : v;/yr[j] = v;/' $K/libmamba/src/ops/norm.cu &&
    grep -c "r16 ? mb_bf16_keep" $K/libmamba/src/ops/norm.cu
lean_build $K tests/gpu_test_ops &
wait
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
# most wanted first, so that a call cut short still answers: the DNA step at 2^20 for main,
# main --inner (in_proj's output kept), T and S; then the suites; then a second round
dna_round() {
    for t in main inner T S; do
        b=build-lean/bench/bench_gpu x=
        [ $t = inner ] && x=--inner
        [ $t = T ] && b=$T/build-lean/bench/bench_gpu
        [ $t = S ] && b=$S/build-lean/bench/bench_gpu
        ps="fp32 tf32 bf16"
        [ $t = T ] || [ $t = S ] && ps=bf16
        echo "== round $1, $t ($(el) s)"
        for p in $ps; do timeout 40 $b $x --train 1048576 $p | grep -E "^\| dna"; done
    done
}
echo "== main: gpu_test_model *inner* ($(el) s)"
MB_TEST_FILTER='*inner*' timeout 100 build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|in_proj kept" | tail -6
dna_round 1
echo "== T: gpu_test_ops ($(el) s)"
timeout 150 $T/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|round_copy|round_rows" | tail -5
echo "== S: gpu_test_scan ($(el) s)"
timeout 150 $S/build-lean/tests/gpu_test_scan 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|[1-9][0-9]* of [0-9]+ differ" | tail -4
for t in gpu_test_scan gpu_test_ops; do
    echo "== main: $t ($(el) s)"
    timeout 150 build-lean/tests/$t 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
done
echo "== K (break, must FAIL): gpu_test_ops *norm* ($(el) s)"
MB_TEST_FILTER='*norm*' timeout 100 $K/build-lean/tests/gpu_test_ops 2>&1 | grep -E "^\[  (PASSED|FAILED)|[1-9][0-9]* of [0-9]+ not bf16" | head -3
echo "== main: gpu_test_model *bf16* ($(el) s)"
MB_TEST_FILTER='*bf16*' timeout 150 build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
[ "$(el)" -lt 330 ] && dna_round 2
if [ "$(el)" -lt 400 ]; then
    echo "== main: bench_gpu --scan ($(el) s)"
    timeout 70 build-lean/bench/bench_gpu --scan | grep -E "^\| +[0-9]+ \||^The same|bandwidth" | cut -c1-120
fi
# on an H200, issue 15's rows too (none measured on an H200 since session 40), as time allows
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
    for a in "--shape dna --batch 1" "--shape dna --batch 64" "--shape 130m --batch 1" "--shape 130m --batch 64" \
        "--shape 2.8b --batch 1 --tokens 128 --weights bf16"; do
        [ "$(el)" -lt 400 ] || break
        echo "== bench_generate --device cuda $a ($(el) s)"
        timeout 40 build-lean/bench/bench_generate --device cuda $a | grep -E "^\| " | tail -3
    done
fi
echo "== done at $(el) s"
