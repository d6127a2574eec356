#!/usr/bin/env bash
# Session 37's fourth device call (carry .deps): the trials scan-turns and scan-turns-b4 (the
# complex decay's angle in whole turns, no FRND/F2I on the XU; b4: complex scan_fwd_out bound at
# 4 blocks, no spill) and split-l2 (not yet timed at the 2.8b shape), each built with its GPU
# suites; then two rounds of
#   bench_gpu --scan: this tree, scan-turns, scan-turns-b4
#   bench_generate --shape 2.8b --batch 1 (fp32 and bf16 copies): this tree, split-l2
# Output: stdout (spaces squeezed) and $OUT/c4.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
ROUNDS=1 BENCH=none timeout 300 bash scripts/gpu_trial.sh scan-turns,scan-turns-b4,split-l2 "-" |
    grep -v "^== .*no .*bench/none"
source scripts/deps.sh; deps_runtime
{
for r in 1 2; do
  for who in base scan-turns scan-turns-b4; do
    echo "== scan $who round $r"; timeout 40 "$(trial_bin $who bench_gpu)" --scan | grep -E "^\| +[0-9]"
  done
  for who in base split-l2; do
    echo "== generate 2.8b 1 $who round $r"
    timeout 90 "$(trial_bin $who bench_generate)" --device cuda --shape 2.8b --batch 1 --tokens 128 | grep -E "^\| 2\.8b"
  done
done
} > "$OUT/c4.txt" 2>&1
sed -E 's/ +/ /g; s/ \| sample / s /' "$OUT/c4.txt"
