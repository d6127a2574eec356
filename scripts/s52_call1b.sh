#!/usr/bin/env bash
# Session 52's short first call (the device budget was spent on failed starts): s52_call1.sh's
# tensor-core trials only. M main; T stk-tc and K13 its break; TO stk-tc + stk-tco and K14 its
# break. Suites, breaks, one or two rounds at 64/32/16 rows, racecheck if time is left.
#   S52_END=330 bash scripts/s52_call1b.sh > $OUT/log 2>&1; tail -120 $OUT/log   (carry .deps)
set -uo pipefail
END=${S52_END:-330}
export LEAN_TIMEOUT=120
source scripts/lean.sh
lean_env
M=/tmp/s52/M T=/tmp/s52/T K13=/tmp/s52/K13 TO=/tmp/s52/TO K14=/tmp/s52/K14
lean_copy "$M"
lean_patched "$T" bench/trials/stk-tc.patch
lean_broken "$K13" libmamba/src/ops/stack_step.cu 's/ + pq\[192 + ch\],/,/' bench/trials/stk-tc.patch
lean_patched "$TO" bench/trials/stk-tc.patch && patch -s -d "$TO" -p1 <bench/trials/stk-tco.patch && echo "== TO: stk-tco applied"
lean_copy "$K14" && patch -s -d "$K14" -p1 <bench/trials/stk-tc.patch && patch -s -d "$K14" -p1 <bench/trials/stk-tco.patch &&
    cp "$K14/libmamba/src/ops/stack_step.cu" /tmp/k14_was &&
    sed -i 's/const int row = gq + 8 \* (i >> 1), col = c + (i \& 1);/const int row = gq + 8 * (i >> 1), col = c + ((i + 1) \& 1);/' \
        "$K14/libmamba/src/ops/stack_step.cu" &&
    echo "== K14: the break changed $(diff /tmp/k14_was "$K14/libmamba/src/ops/stack_step.cu" | grep -c '^>') line(s)"
lean_build "$M" tests/gpu_test_ops bench/bench_generate &
lean_build "$T" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K13" tests/gpu_test_ops &
lean_build "$TO" tests/gpu_test_ops tests/gpu_test_model bench/bench_generate &
lean_build "$K14" tests/gpu_test_ops &
lean_ready
for t in "$T" "$TO"; do LEAN_TAIL=22 lean_suite "$t" gpu_test_ops test_stack_step "stack_step"; done
for t in "$K13" "$K14"; do LEAN_TAIL=6 lean_suite "$t" gpu_test_ops test_stack_step "e-0[0-4] \(tol"; done
LEAN_ROUNDS=2 lean_rounds $((END - 110)) 20 "$M $T $TO" bench_generate "--device cuda --shape dna --batch 64" \
    "--device cuda --shape dna --batch 32" "--device cuda --shape dna --batch 16" "--device cuda --shape small --batch 64"
for t in "$T" "$TO"; do lean_before $((END - 60)) && lean_suite "$t" gpu_test_model '*cluster*'; done
lean_before $((END - 40)) && MB_CUDA_STK_ROWS=4 lean_racecheck "$TO" gpu_test_ops test_stack_step
echo "== done at $(el) s"
