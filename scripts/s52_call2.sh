#!/usr/bin/env bash
# Session 52's second call (written in session 51): where main's cluster step spends a token, at
# 1, 8 and 64 rows of the DNA model (stk-prof's phases), and Nsight Compute of its kernel at 64
# rows and at one row (scripts/s51_call3.sh: -lineinfo, full set, source counters into $OUT).
# Run it on the tree that call 1 leaves as main (merge its winners first, rebasing stk-prof).
#   bash scripts/s52_call2.sh > $OUT/log 2>&1; tail -80 $OUT/log   (timeout 420; carry .deps)
set -uo pipefail
source scripts/lean.sh
lean_env
SP=/tmp/s52/SP
lean_patched "$SP" bench/trials/stk-prof.patch
lean_build "$SP" bench/bench_generate &
lean_ready
lean_stk_prof "$SP" 1 8 64
bash scripts/s51_call3.sh
S51_ROWS=1 bash scripts/s51_call3.sh
echo "== done at $(el) s"
