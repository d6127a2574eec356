#!/usr/bin/env bash
# The next session's second device call, on the machine of scripts/s38_call1.sh (its builds in
# build-gpu and /tmp/trial_src_*/build-gpu): two rounds of bench_gpu --scan (every row, and the
# complex scan's accuracy over 2^20 steps, which session 37's scan-turns has not had measured) on
# this tree and the five scan trials; then the forward's chunk count swept through scan-chunks-env
# (--quick: the 2^20 rows, at 1024 chunks whatever the setting, left out).
# Output: stdout (spaces squeezed; the accuracy rows and the timing rows) and $OUT/c2.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
source scripts/deps.sh; deps_runtime
{
for r in 1 2; do
  for who in base scan-bwd-split scan-bwd-split2 scan-bwd-split-cplx scan-poly4 scan-poly2; do
    echo "== scan $who round $r"
    timeout 60 "$(trial_bin $who bench_gpu)" --scan | grep -E "^\| +[0-9]|^\| (GPU|CPU)"
  done
done
# the forward's chunking: threads wanted (default 132 x 4096 = 540672), both A kinds
for r in 1 2; do
  for th in 33792 67584 135168 270336 540672; do
    echo "== scan-chunks-env $th round $r"
    MB_SCAN_FWD_THREADS=$th MB_SCAN_FWD_THREADS_CPLX=$th timeout 40 "$(trial_bin scan-chunks-env bench_gpu)" --scan --quick |
        grep -E "^\| +[0-9]"
  done
done
} > "$OUT/c2.txt" 2>&1
sed -E 's/ +/ /g' "$OUT/c2.txt"
