#!/usr/bin/env bash
# Session 45, call 2: `split-l2b` (the tree as it stands: main + bench/trials/split-l2b.patch).
# The split step prefetches out_proj into L2 while split_x and split_scan wait on their chains
# (MB_SPLIT_L2 picks how: 0 none, 1 lines, 2 bulk, 3 bulk + the next in_proj's first 16 MB from
# the out kernel, 4 bulk before split_x's wait). B = main (the patch reversed) checks that mode 0
# is main. Prefetches change no value, so there is no break by hand: the suites run in modes 1-4.
#   bash scripts/s45_call2.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
END=${S45_END:-500}
source scripts/lean.sh
lean_env
B=/tmp/lean_b
lean_patched $B bench/trials/split-l2b.patch -R
lean_build "$PWD" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build $B bench/bench_generate &
lean_ready
for m in 1 2 4; do MB_SPLIT_L2=$m lean_suite "$PWD" gpu_test_ops test_block_step; done
MB_SPLIT_L2=3 lean_suite "$PWD" gpu_test_model 'test_lm*'
gen() { # TREE MODE ARGS...: one bench_generate run's rows
    local t=$1 m=$2
    shift 2
    lean_before $((END - 45)) || return 0
    echo "== $(basename "$t") mode $m: $* ($(el) s)"
    MB_SPLIT_L2=$m timeout 45 "$t/build-lean/bench/bench_generate" --device cuda "$@" | grep -E "sample|prefill"
}
for r in 1 2; do
    for m in 0 2 3 1 4; do gen "$PWD" $m --shape 130m --batch 1 --weights bf16; done
    for m in 0 2 3; do gen "$PWD" $m --shape 130m --batch 1 --weights fp32 --tokens 256; done
    for m in 0 2 3; do gen "$PWD" $m --shape 130m --batch 8 --weights bf16; done
done
for m in 0 2 3 4 1; do gen "$PWD" $m --shape 2.8b --batch 1 --tokens 128 --weights bf16; done
gen $B 0 --shape 2.8b --batch 1 --tokens 128 --weights bf16
for m in 0 2; do gen "$PWD" $m --shape 2.8b --batch 1 --tokens 64 --weights fp32; done
for m in 0 2 3; do gen "$PWD" $m --shape 2.8b --batch 1 --tokens 128 --weights bf16; done
lean_before $((END - 60)) && MB_SPLIT_L2=3 lean_racecheck "$PWD" gpu_test_ops test_block_step
echo "== done at $(el) s"
