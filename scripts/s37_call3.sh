#!/usr/bin/env bash
# The next session's third device call, on the machine of scripts/s37_call1.sh, two rounds of:
#   bench_generate --shape 130m (every row: 1, 8 and 64 rows, prefill) and --shape 2.8b: this
#     tree, split-l2
#   bench_gpu --train 131072 fp32 and tf32 (the DNA model's training step): this tree, gemm-lt
# then bench_gemm --quick once (the 130m shape at 64 rows, fp32, TF32 and bf16: whether gemm-lt's
# plans should take bf16 precision's GEMMs too)
# Output: stdout (spaces squeezed) and $OUT/c3.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
source scripts/deps.sh; deps_runtime
{
for r in 1 2; do
  for who in base split-l2; do
    echo "== generate 130m + 2.8b $who round $r"
    timeout 60 "$(trial_bin $who bench_generate)" --device cuda --shape 130m | grep -E "^\| 130m"
    timeout 60 "$(trial_bin $who bench_generate)" --device cuda --shape 2.8b | grep -E "^\| 2\.8b"
  done
  for who in base gemm-lt; do
    for p in fp32 tf32; do
      echo "== train 2^17 $p $who round $r"; timeout 40 "$(trial_bin $who bench_gpu)" --train 131072 $p | grep -E "^\| +dna"
    done
  done
done
echo "== bench_gemm --quick"; timeout 60 build-gpu/bench/bench_gemm --quick | grep -E "^\| [a-z0-9]"
} > "$OUT/c3.txt" 2>&1
sed -E 's/ +/ /g; s/ \| sample / s /' "$OUT/c3.txt"
