#!/usr/bin/env bash
# Session 39, call 3 (carry .deps): the trial ssm-step (ops/ssm_step.cu: the SSM half of a
# layer-path step as one cluster kernel) as this working tree holds it, against the same tree
# with bench/trials/ssm-step.patch reversed (base), and broken by hand (break-ssm-gather).
# Lean builds (no apps), all three at once. The trial's GPU suites (ctest -L gpu), then
# test_ssm_step on the break (must FAIL), bench_generate base / trial twice, then memcheck and
# racecheck of test_ssm_step's small cases.
set -uo pipefail
export PATH="$PATH:/usr/local/cuda/bin"
source scripts/deps.sh
deps_unpack /opt/deps .deps/*.deb >/dev/null
deps_env /opt/deps
lean_build() { # DIR TARGET...
    local d=$1; shift
    (cd "$d" && cmake -S . -B build-lean -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
        -DMAMBA_CUDA=ON -DMAMBA_APPS=OFF -DCMAKE_C_FLAGS=-DMB_HAVE_CUDA=1 >"/tmp/lean_$(basename "$d").log" 2>&1 &&
        ninja -C build-lean "$@" >>"/tmp/lean_$(basename "$d").log" 2>&1) ||
        { echo "$d: build FAILED"; grep -E "error" "/tmp/lean_$(basename "$d").log" | head; tail -5 "/tmp/lean_$(basename "$d").log"; }
}
copy_tree() { # DIR
    rm -rf "$1" && mkdir -p "$1"
    tar -c --exclude='./build*' --exclude=./.deps --exclude=./.git --exclude=./gpu-check-out . | tar -x -C "$1"
}
B=/tmp/lean_base K=/tmp/lean_break
copy_tree $B && patch -s -R -d $B -p1 <bench/trials/ssm-step.patch || echo "base: reverse patch FAILED"
copy_tree $K && patch -s -d $K -p1 <bench/trials/break-ssm-gather.patch || echo "break: patch FAILED"
s=$(date +%s)
lean_build "$PWD" tests/gpu_test_ops tests/gpu_test_model tests/gpu_test_scan bench/bench_generate &
lean_build $B bench/bench_generate &
lean_build $K tests/gpu_test_ops &
wait
echo "== built in $(($(date +%s) - s)) s"
deps_runtime
echo "== trial: test_ssm_step"
MB_TEST_FILTER=test_ssm_step timeout 60 build-lean/tests/gpu_test_ops 2>&1 | grep -E "ssm|state|PASSED|FAILED"
echo "== break-ssm-gather: test_ssm_step (must FAIL)"
MB_TEST_FILTER=test_ssm_step timeout 60 $K/build-lean/tests/gpu_test_ops 2>&1 | grep -E "ssm_step B|PASSED|FAILED" | head -4
rows() { grep -E "^\| (130m|dna)" | grep -v "prefill  *32768" | cut -c1-100; }
T=build-lean/bench/bench_generate Bb=$B/build-lean/bench/bench_generate
bench_round() { # R
    local r=$1
    echo "== round $r: 130m, 64 rows (the layer path), fp32 and TF32: base, trial"
    for bin in $Bb $T; do
        echo "-- ${bin%%/build-lean*}"
        timeout 60 $bin --device cuda --shape 130m --batch 64 --weights fp32 | rows
        timeout 60 $bin --device cuda --shape 130m --batch 64 --weights tf32 | rows
    done
    echo "== round $r: 130m, 1 and 8 rows (the split path): base, trial, trial with MB_CUDA_SPLIT_SSM=0"
    for run in "$Bb" "$T" "env MB_CUDA_SPLIT_SSM=0 $T"; do
        echo "-- ${run%%/build-lean*}"
        timeout 60 $run --device cuda --shape 130m --batch 1 --weights fp32 | rows
        timeout 60 $run --device cuda --shape 130m --batch 8 --weights fp32 | rows
    done
}
bench_round 1
echo "== the DNA model, every row count: base, trial"
for bin in $Bb $T; do echo "-- ${bin%%/build-lean*}"; timeout 90 $bin --device cuda --shape dna --weights fp32 | rows; done
echo "== trial: ctest -L gpu"
(cd build-lean && timeout 150 ctest -L gpu --output-on-failure >/tmp/ctest_gpu.log 2>&1; echo "rc $?")
grep -E "tests passed|tests failed|Failed|Passed" /tmp/ctest_gpu.log
grep -E "layer by layer|20 rows|FAILED|rel err [0-9.]+e-0[0-4]" /tmp/ctest_gpu.log | head -8
bench_round 2
for tool in memcheck racecheck; do
    echo "== $tool test_ssm_step (small cases)"
    MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_ssm_step timeout 80 compute-sanitizer --tool $tool \
        build-lean/tests/gpu_test_ops 2>&1 | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|Hazard|PASSED|FAILED" | head -5
done
