#!/usr/bin/env bash
# Session 41, call 2 (carry .deps): this tree = the scan's carries rewritten (a thread four
# floats of a state, both directions of the backward in one launch, pointers moved by a chunk's
# stride) + scan-vec-io (the backward's per-chunk states and adjoints as 16-byte rows); C = the
# carries alone (scan-vec-io reversed); BASE = main before both (git archive HEAD). Lean
# builds; this tree's gpu_test_scan and gpu_test_model, break-carry's gpu_test_scan (must
# FAIL), then bench_gpu --scan and the DNA step at 2^20 in the three binaries; this tree's
# step by kernel under Nsight Compute; memcheck of gpu_test_scan's small cases; a second round
# if there is time. (The two patches, bench/trials/scan-vec-io.patch and break-carry.patch, were
# deleted once it had run: scan-vec-io merged, the break recorded in RESULTS.md.)
set -uo pipefail
start=$(date +%s)
source scripts/lean.sh
lean_env
T=$PWD BASE=/tmp/lean_base K=/tmp/lean_brk C=/tmp/lean_carry
rm -rf $BASE && mkdir -p $BASE && git archive HEAD | tar -x -C $BASE
lean_copy $C && patch -s -R -d $C -p1 <bench/trials/scan-vec-io.patch || echo "carry-only: patch FAILED"
lean_copy $K && patch -s -d $K -p1 <bench/trials/break-carry.patch || echo "break-carry: patch FAILED"
s=$(date +%s)
lean_build $T tests/gpu_test_scan tests/gpu_test_model tests/gpu_test_ops bench/bench_gpu &
lean_build $BASE bench/bench_gpu &
lean_build $C bench/bench_gpu &
lean_build $K tests/gpu_test_scan &
wait
echo "== built in $(($(date +%s) - s)) s"
deps_runtime
timeout 150 $T/build-lean/tests/gpu_test_scan 2>&1 | grep -E "PASSED|FAILED|rel err" | tail -8
echo "== break-carry (must FAIL) at $(($(date +%s) - start)) s"
timeout 100 $K/build-lean/tests/gpu_test_scan 2>&1 | grep -E "PASSED|FAILED" | head -6
round() {
    for t in $BASE $C $T; do
        echo "== round $1: $t ($(el) s)"
        if [ $t != $C ]; then
            s=$(date +%s); timeout 90 $t/build-lean/bench/bench_gpu --scan | grep -E "^\| +[0-9]+ \|" | head -12; echo "scan rows $(($(date +%s) - s)) s"
        fi
        for p in tf32 fp32 bf16; do timeout 40 $t/build-lean/bench/bench_gpu --train 1048576 $p | grep -E "^\| dna"; done
    done
}
el() { echo $(($(date +%s) - start)); }
round 1
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
OUT=${OUT:-/tmp/out}
eval "$(sed -n '/^ncu_sum() {/,/^}/p' scripts/gpu_profile.sh)"
if [ "$(el)" -lt 330 ]; then
    timeout 90 "$NCU" --profile-from-start off --metrics gpu__time_duration.sum --cache-control none --clock-control none \
        --csv --page raw $T/build-lean/bench/bench_gpu --train 131072 fp32 >"$OUT/ncu_train_fp32.csv" 2>/dev/null
    ncu_sum "$OUT/ncu_train_fp32.csv" 2>/dev/null | grep -E "kernels|scan_" | head -14
fi
echo "== at $(el) s"
if [ "$(el)" -lt 380 ]; then
    MB_GPU_TEST_SMALL=1 timeout 80 compute-sanitizer --tool memcheck $T/build-lean/tests/gpu_test_scan 2>&1 |
        grep -E "ERROR SUMMARY|PASSED|FAILED" | head -3
fi
if [ "$(el)" -lt 340 ]; then
    (cd $T/build-lean && timeout 120 ctest -L gpu >/tmp/ctest_gpu.log 2>&1; echo "ctest -L gpu rc $?")
    grep -E "tests passed|tests failed|Failed|\*\*\*" /tmp/ctest_gpu.log
fi
echo "== done at $(el) s"
