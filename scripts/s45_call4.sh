#!/usr/bin/env bash
# Session 45, call 4: the final tree's figures against issues 14 and 15 (asked for as an H200;
# the card is printed): bench_gpu's three scan tables and complex accuracy, the DNA step at 2^20
# by default (AUTO) and by layers in fp32 / TF32 / bf16, and bench_generate's rows of the
# issues' table.
#   bash scripts/s45_call4.sh > $OUT/log 2>&1; tail -90 $OUT/log
set -uo pipefail
END=${S45_END:-420}
source scripts/lean.sh
lean_start bench/bench_gpu bench/bench_generate
echo "== bench_gpu --scan ($(el) s)"
timeout 70 build-lean/bench/bench_gpu --scan | grep -E "^\| *[0-9(]|^\| (GPU|CPU)|floor|bandwidth"
LEAN_ROUNDS=1 lean_rounds "$END" 30 "$PWD" bench_gpu "--auto --train 1048576 fp32" "--train 1048576 fp32" \
    "--auto --train 1048576 tf32" "--auto --train 1048576 bf16" "--train 1048576 bf16"
LEAN_ROUNDS=1 lean_rounds "$END" 45 "$PWD" bench_generate "--device cuda --shape dna --batch 1" \
    "--device cuda --shape dna --batch 64" "--device cuda --shape 130m --batch 1 --weights fp32" \
    "--device cuda --shape 130m --batch 1 --weights bf16" "--device cuda --shape 130m --batch 64 --weights tf32" \
    "--device cuda --shape 2.8b --batch 1 --tokens 128 --weights bf16"
echo "== done at $(el) s"
