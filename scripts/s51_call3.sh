#!/usr/bin/env bash
# Session 51's third call: where the merged cluster step's 64-row token goes, by Nsight Compute
# (full set, source counters) on one launch of stack_step_kernel at 64 rows of the DNA model
# (10 rows a cluster, 7 clusters of 16), main built with -lineinfo. Writes $OUT/stk64.txt (the
# details page) and $OUT/stk64_src.csv (the CUDA source page: per-line stalls and counts).
# S51_ROWS=1 (session 52) profiles one row instead, into $OUT/stk1*; a second run reuses the build.
#   bash scripts/s51_call3.sh > $OUT/log 2>&1; tail -60 $OUT/log
set -uo pipefail
source scripts/lean.sh
lean_env
D=/tmp/s51c3 R=${S51_ROWS:-64}
[ -x "$D/build-lean/bench/bench_generate" ] || { lean_copy "$D"
(cd "$D" && cmake -S . -B build-lean -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DMAMBA_CUDA=ON -DMAMBA_APPS=OFF -DCMAKE_C_FLAGS=-DMB_HAVE_CUDA=1 -DCMAKE_CUDA_FLAGS=-lineinfo >/tmp/c3.log 2>&1 &&
    ninja -C build-lean bench/bench_generate >>/tmp/c3.log 2>&1) || { grep error /tmp/c3.log | head; exit 1; }; }
lean_ready
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
echo "== built at $(el) s; ncu: $NCU"
timeout 150 "$NCU" -k regex:stack_step_kernel --launch-skip 40 --launch-count 1 --set full --import-source yes \
    -f -o "$OUT/stk$R" "$D/build-lean/bench/bench_generate" --device cuda --shape dna --batch "$R" --tokens 64 2>&1 | tail -4
echo "== profiled at $(el) s"
"$NCU" -i "$OUT/stk$R.ncu-rep" --page details >"$OUT/stk$R.txt" 2>&1
"$NCU" -i "$OUT/stk$R.ncu-rep" --page source --csv --print-source cuda >"$OUT/stk${R}_src.csv" 2>&1
wc -c "$OUT"/stk"$R"*
grep -E "Duration|Registers|Shared Memory Configuration Size|Achieved Occupancy|Issue Slots Busy|No Eligible|Stall|Bank Conflicts|Warp Cycles Per Issued" "$OUT/stk$R.txt" | head -40
echo "== done at $(el) s"
