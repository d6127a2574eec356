#!/usr/bin/env bash
# Session 52: did not fit the budget left; s52_call1b.sh ran its tensor-core trials, and all four
# trials it names were lost and deleted (bench/RESULTS.md "Session 52"): a record, no longer runnable.
# Session 52's first call (written in session 51, whose device budget ran out). Trees:
#   M    main: session 51's merge (stack_step.cu is the GPU-run XY tree's PTX) plus MB_CUDA_STK_SAY
#        (host code never run on a GPU): its suites, and which cluster instance AUTO takes
#   O    the trial stk-osum (out_proj's sums by reduce-scatters over an output's lanes); K12 its break
#   T    the trial stk-tc (in_proj at d_model 256 from 4 rows a cluster on the tensor cores,
#        3xTF32, the pack swizzled); K13 its break (a K quarter left out of the sums)
#   TO   stk-tc + stk-tco (x_proj's and out_proj's sums on the tensor cores too); K14 its break
#        (an output tile's columns swapped)
#   P10  the trial stk-rp10 (the residuals' reduce-scatter pushed at 10 rows a cluster)
# If T's suites fail, the mma fragment layout or the pack's swizzle is the first suspect (the
# float64 model in the patches checks both against PTX's documented layout). The phases and
# Nsight Compute: scripts/s52_call2.sh.
#   bash scripts/s52_call1.sh > $OUT/log 2>&1; tail -150 $OUT/log   (timeout 600; carry .deps)
set -uo pipefail
END=${S52_END:-560}
export LEAN_TIMEOUT=150
source scripts/lean.sh
lean_env
M=/tmp/s52/M O=/tmp/s52/O K12=/tmp/s52/K12 T=/tmp/s52/T K13=/tmp/s52/K13 TO=/tmp/s52/TO K14=/tmp/s52/K14
P10=/tmp/s52/P10
lean_copy "$M"
lean_patched "$O" bench/trials/stk-osum.patch
lean_broken "$K12" libmamba/src/ops/stack_step.cu \
    's/if (g \* TPO + q < RW) act\[(g \* TPO + q) \* Y::ACT/if (g * TPO + q < RW) act[(g * TPO + (q ^ 1)) * Y::ACT/' \
    bench/trials/stk-osum.patch
lean_patched "$T" bench/trials/stk-tc.patch
lean_broken "$K13" libmamba/src/ops/stack_step.cu 's/ + pq\[192 + ch\],/,/' bench/trials/stk-tc.patch
lean_patched "$TO" bench/trials/stk-tc.patch && patch -s -d "$TO" -p1 <bench/trials/stk-tco.patch && echo "== TO: stk-tco applied"
lean_copy "$K14" && patch -s -d "$K14" -p1 <bench/trials/stk-tc.patch && patch -s -d "$K14" -p1 <bench/trials/stk-tco.patch &&
    cp "$K14/libmamba/src/ops/stack_step.cu" /tmp/k14_was &&
    sed -i 's/const int row = gq + 8 \* (i >> 1), col = c + (i \& 1);/const int row = gq + 8 * (i >> 1), col = c + ((i + 1) \& 1);/' \
        "$K14/libmamba/src/ops/stack_step.cu" &&
    echo "== K14: the break changed $(diff /tmp/k14_was "$K14/libmamba/src/ops/stack_step.cu" | grep -c '^>') line(s)"
lean_patched "$P10" bench/trials/stk-rp10.patch
lean_build "$M" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$O" tests/gpu_test_ops bench/bench_generate &
lean_build "$K12" tests/gpu_test_ops &
lean_build "$T" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K13" tests/gpu_test_ops &
lean_build "$TO" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K14" tests/gpu_test_ops &
lean_build "$P10" tests/gpu_test_ops bench/bench_generate &
lean_ready
LEAN_TAIL=20 lean_suite "$M" gpu_test_ops test_stack_step "stack_step"
lean_suite "$M" gpu_test_model '*cluster*'
for t in "$O" "$T" "$TO" "$P10"; do LEAN_TAIL=22 lean_suite "$t" gpu_test_ops test_stack_step "stack_step"; done
for t in "$T" "$TO"; do lean_suite "$t" gpu_test_model '*cluster*'; done
for t in "$K12" "$K13" "$K14"; do LEAN_TAIL=6 lean_suite "$t" gpu_test_ops test_stack_step "e-0[0-4] \(tol"; done
echo "== M: which instance AUTO takes (MB_CUDA_STK_SAY=1)"
for a in "dna --batch 64" "dna --batch 48" "dna --batch 32" "dna --batch 16" "dna --batch 8" "small --batch 64" \
    "small --batch 16"; do
    # shellcheck disable=SC2086
    MB_CUDA_STK_SAY=1 timeout 30 "$M/build-lean/bench/bench_generate" --device cuda --shape $a 2>&1 |
        grep -E "cluster step:|^\| (dna|small)" | sort -u
done
LEAN_ROUNDS=2 lean_rounds $((END - 230)) 20 "$M $O $T $TO $P10" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 16" \
    "--device cuda --shape small --batch 64"
LEAN_ROUNDS=1 lean_rounds $((END - 200)) 20 "$M $O $T $TO" bench_generate "--device cuda --shape dna --batch 8" \
    "--device cuda --shape small --batch 16" "--device cuda --shape dna --batch 1 --tokens 1024"
for r in 4 12; do lean_before $((END - 150)) && MB_CUDA_STK_ROWS=$r lean_racecheck "$TO" gpu_test_ops test_stack_step; done
for r in 4 12; do lean_before $((END - 120)) && MB_CUDA_STK_ROWS=$r lean_racecheck "$T" gpu_test_ops test_stack_step; done
lean_before $((END - 100)) && MB_CUDA_STK_ROWS=10 lean_racecheck "$P10" gpu_test_ops test_stack_step
lean_before $((END - 90)) && MB_CUDA_STK_ROWS=10 lean_racecheck "$O" gpu_test_ops test_stack_step
lean_before $((END - 70)) && echo "== TO: memcheck gpu_test_ops (test_stack_step), small shapes ($(el) s)"
lean_before $((END - 70)) && MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_stack_step timeout 60 compute-sanitizer --tool memcheck \
    "$TO/build-lean/tests/gpu_test_ops" 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
lean_before "$((END - 60))" && lean_suite "$M" gpu_test_model
lean_before "$((END - 40))" && lean_suite "$M" gpu_test_ops
echo "== done at $(el) s"
