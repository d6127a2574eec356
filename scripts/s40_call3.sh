#!/usr/bin/env bash
# Session 40, call 3 (carry .deps): this tree's GPU suites (ctest -L gpu, after the stacked
# recompute), then issue 14's and 15's rows on an H200 (the device the issues ask for; sessions
# 33-39 measured H100s): bench_gpu --scan (every scan row, fp32 and bf16, against its floor),
# bench_generate on the GPU (the DNA model at 1 to 64 rows, the 130m shape with bf16 copies at 1
# and 64 rows, the 2.8b shape with bf16 copies at 1 and 64 rows). Lean build, no apps. Each
# section's output also lands in $OUT.
set -uo pipefail
source scripts/lean.sh
O=${OUT:-/tmp}
lean_start tests/gpu_test_model tests/gpu_test_ops tests/gpu_test_scan bench/bench_gpu bench/bench_generate
s=$(date +%s)
(cd build-lean && timeout 200 ctest -L gpu >$O/ctest_gpu.log 2>&1; echo "ctest -L gpu rc $?")
grep -E "tests passed|tests failed|Failed|Passed" $O/ctest_gpu.log
echo "== gpu suites in $(($(date +%s) - s)) s"
G=build-lean/bench/bench_generate
{
    timeout 60 $G --device cuda --shape dna | grep -E "^\|" | cut -c1-120
    timeout 60 $G --device cuda --shape 130m --batch 1 --weights bf16 | grep -E "^\| 130m" | cut -c1-120
    timeout 90 $G --device cuda --shape 2.8b --batch 1 --weights bf16 | grep -E "^\|" | cut -c1-140
    timeout 60 $G --device cuda --shape 130m --batch 64 --weights bf16 | grep -E "^\| 130m" | cut -c1-120
} | tee $O/generate.txt
s=$(date +%s)
timeout 150 build-lean/bench/bench_gpu --scan | tee $O/scan.txt | grep -E "^\||copy|floor|GB/s" | cut -c1-180
echo "== scan rows in $(($(date +%s) - s)) s"
