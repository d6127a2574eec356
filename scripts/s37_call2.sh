#!/usr/bin/env bash
# The next session's second device call, on the machine of scripts/s37_call1.sh (its builds in
# build-gpu and /tmp/trial_src_*/build-gpu), two rounds of:
#   bench_gpu --scan: this tree, scan-cursor-real
#   bench_generate --shape 130m --batch 64 (fp32, bf16 copies, TF32, bf16 precision): this
#     tree, gemm-lt, and gemm-lt under MB_CUDA_GEMM=sgemm (its old path: the build's own A/B)
#   bench_generate --shape dna and small: this tree, fused-read-cap, gemm-lt
# Output: stdout (spaces squeezed) and $OUT/c2.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
source scripts/deps.sh; deps_runtime
{
for r in 1 2; do
  for who in base scan-cursor-real; do
    echo "== scan $who round $r"; timeout 40 "$(trial_bin $who bench_gpu)" --scan | grep -E "^\| +[0-9]"
  done
  for who in base gemm-lt gemm-lt+sgemm; do
    echo "== generate 130m 64 $who round $r"
    e=(); [ "$who" = gemm-lt+sgemm ] && e=(MB_CUDA_GEMM=sgemm)
    env "${e[@]}" timeout 30 "$(trial_bin ${who%+sgemm} bench_generate)" --device cuda --shape 130m --batch 64 | grep -E "^\| 130m"
  done
  for who in base fused-read-cap gemm-lt; do
    echo "== generate dna+small $who round $r"
    timeout 30 "$(trial_bin $who bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
    timeout 30 "$(trial_bin $who bench_generate)" --device cuda --shape small | grep -E "^\| small"
  done
done
} > "$OUT/c2.txt" 2>&1
sed -E 's/ +/ /g; s/ \| sample / s /' "$OUT/c2.txt"
