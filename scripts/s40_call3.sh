#!/usr/bin/env bash
# Session 40, call 3 (carry .deps): issue 14's and 15's rows on an H200 at this tree (the device
# the issues ask for; sessions 33-39 measured H100s). One lean build of bench_gpu and
# bench_generate; bench_gpu --scan (every scan row, fp32 and bf16, against its floor), then
# bench_generate on the GPU: the DNA model at 1 to 64 rows, the 130m shape with bf16 copies at 1
# and 64 rows, the 2.8b shape with bf16 copies at 1 and 64 rows (with its prefill rows).
set -uo pipefail
source scripts/lean.sh
lean_env
s=$(date +%s)
lean_build "$PWD" bench/bench_gpu bench/bench_generate
echo "== built in $(($(date +%s) - s)) s"
deps_runtime
s=$(date +%s)
timeout 300 build-lean/bench/bench_gpu --scan | grep -E "^\||copy|floor|GB/s" | cut -c1-180
echo "== scan rows in $(($(date +%s) - s)) s"
G=build-lean/bench/bench_generate
timeout 60 $G --device cuda --shape dna | grep -E "^\|" | cut -c1-120
timeout 60 $G --device cuda --shape 130m --batch 1 --weights bf16 | grep -E "^\| 130m" | cut -c1-120
timeout 60 $G --device cuda --shape 130m --batch 64 --weights bf16 | grep -E "^\| 130m" | cut -c1-120
timeout 90 $G --device cuda --shape 2.8b --batch 1 --weights bf16 | grep -E "^\|" | cut -c1-140
timeout 90 $G --device cuda --shape 2.8b --batch 64 --weights bf16 | grep -E "^\| 2.8b" | cut -c1-120
