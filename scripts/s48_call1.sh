#!/usr/bin/env bash
# Session 48, call 1 (written in session 47, whose device budget ran out; about 200 s on a GPU):
# 1. the trial stk-bulk against main (scripts/s47_call4.sh: its suites, a break by hand, the DNA
#    model's rows on the cluster step);
# 2. the grid step's profile: main + bench/trials/grid-step.patch + grid-prof.patch, the 130m
#    shape at one row on MB_CUDA_STEP=grid, fp32 and bf16 copies, MB_GSK_VAR 7 and 3: the cycles
#    a layer of each phase as block 0 and the last block see them (is it the three grid
#    barriers, at 3-4 us each as session 47's figures imply?);
# 3. main's cluster step under racecheck since stk-rs (its trial tree ran the suites only).
#   bash scripts/s48_call1.sh > $OUT/log 2>&1; tail -60 $OUT/log
set -uo pipefail
S47_END=130 bash scripts/s47_call4.sh
END=${S48_END:-240}
export LEAN_TIMEOUT=40
source scripts/lean.sh
lean_env
P=/tmp/s48/P M=/tmp/s48/M
lean_patched "$P" bench/trials/grid-step.patch
patch -s -d "$P" -p1 < bench/trials/grid-prof.patch
lean_copy "$M"
lean_build "$P" bench/bench_generate &
lean_build "$M" tests/gpu_test_ops &
lean_ready
for w in bf16 fp32; do
    for v in 7 3; do
        lean_before "$((END - 30))" || break
        echo "== grid-prof, $w, MB_GSK_VAR=$v ($(el) s)"
        MB_CUDA_STEP=grid MB_GSK_VAR=$v timeout 30 "$P/build-lean/bench/bench_generate" --device cuda --shape 130m \
            --batch 1 --weights $w --tokens 4096 | grep -E "gsk_prof|sample" | tail -3
    done
done
lean_racecheck "$M" gpu_test_ops test_stack_step
echo "== done at $(el) s"
