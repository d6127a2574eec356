#!/usr/bin/env bash
# The next session's first device call (written in session 39, whose device time ran out before it
# could run; carry .deps). bench/trials/ssm-step.patch (second version: x_proj's columns and
# dt_proj's rows staged in shared memory before the wait; the first version, timed in session
# 39's call 3, read x_proj after the wait and lost at the 130m shape) applied to a copy of this
# tree, and break-ssm-gather on top of another; lean builds (no apps). The trial's suites
# (test_ssm_step, ctest -L gpu), the break's test_ssm_step (must FAIL), then per token, in the
# trial's one binary: MB_CUDA_SSM_STEP=0 (main's kernels), ssm-step staged, ssm-step unstaged
# (MB_CUDA_SSM_STAGE=0); then memcheck and racecheck of test_ssm_step's small cases.
set -uo pipefail
source scripts/lean.sh
lean_env
W=/tmp/lean_ssm K=/tmp/lean_ssm_break
lean_copy $W && patch -s -d $W -p1 <bench/trials/ssm-step.patch || echo "ssm-step: patch FAILED"
lean_copy $K && patch -s -d $K -p1 <bench/trials/ssm-step.patch && patch -s -d $K -p1 <bench/trials/break-ssm-gather.patch ||
    echo "break-ssm-gather: patch FAILED"
s=$(date +%s)
lean_build $W tests/gpu_test_ops tests/gpu_test_model tests/gpu_test_scan bench/bench_generate &
lean_build $K tests/gpu_test_ops &
wait
echo "== built in $(($(date +%s) - s)) s"
deps_runtime
cd $W || exit 1
MB_TEST_FILTER=test_ssm_step timeout 60 build-lean/tests/gpu_test_ops 2>&1 | grep -E "ssm_step B|PASSED|FAILED"
echo "== break-ssm-gather (must FAIL)"
MB_TEST_FILTER=test_ssm_step timeout 60 $K/build-lean/tests/gpu_test_ops 2>&1 | grep -E "ssm_step B|PASSED|FAILED" | head -3
(cd build-lean && timeout 120 ctest -L gpu >/tmp/ctest_gpu.log 2>&1; echo "ctest -L gpu rc $?")
grep -E "tests passed|tests failed|Failed" /tmp/ctest_gpu.log
T=build-lean/bench/bench_generate
rows() { grep -E "^\| (130m|dna)" | grep -v prefill | cut -c1-100; }
for r in 1 2; do
    for v in "MB_CUDA_SSM_STEP=0" "MB_X=1" "MB_CUDA_SSM_STAGE=0"; do
        echo "== round $r, $v"
        env $v timeout 40 $T --device cuda --shape 130m --batch 1 --weights fp32 | rows
        env $v timeout 40 $T --device cuda --shape 130m --batch 1 --weights bf16 | rows
        env $v timeout 40 $T --device cuda --shape 130m --batch 8 --weights fp32 | rows
        env $v timeout 40 $T --device cuda --shape 130m --batch 64 --weights tf32 | rows
        [ $r = 1 ] && env $v timeout 40 $T --device cuda --shape 130m --batch 64 --weights fp32 | rows
        env $v timeout 40 $T --device cuda --shape dna --batch 32 --weights fp32 | rows
        env $v timeout 40 $T --device cuda --shape dna --batch 64 --weights fp32 | rows
    done
done
for tool in memcheck racecheck; do
    MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_ssm_step timeout 60 compute-sanitizer --tool $tool \
        build-lean/tests/gpu_test_ops 2>&1 | grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAILED" | head -3
done
