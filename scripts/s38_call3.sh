#!/usr/bin/env bash
# The next session's third device call, on the machine of scripts/s38_call1.sh:
#   bench_generate --shape 130m --batch 64 (fp32, bf16 copies, TF32, bf16 precision), two rounds:
#     this tree, gemm-rows-tc, and gemm-rows-tc under MB_CUDA_GEMM_ROWS=0 (its cuBLAS path, the
#     same build)
#   bench_generate --shape 2.8b --batch 64 --tokens 64, once: this tree, gemm-rows-tc
#   bench_gemm --quick once (times now from graph replays: cuBLAS against cublasLt's algorithms
#     where the step runs)
# Output: stdout (spaces squeezed) and $OUT/c3.txt.
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
source scripts/deps.sh; deps_runtime
{
for r in 1 2; do
  for who in base gemm-rows-tc gemm-rows-tc+off; do
    e=(); [ "$who" = gemm-rows-tc+off ] && e=(MB_CUDA_GEMM_ROWS=0)
    echo "== generate 130m 64 $who round $r"
    env "${e[@]}" timeout 40 "$(trial_bin ${who%+off} bench_generate)" --device cuda --shape 130m --batch 64 | grep -E "^\| 130m"
  done
done
for who in base gemm-rows-tc; do
  echo "== generate 2.8b 64 $who"
  timeout 120 "$(trial_bin $who bench_generate)" --device cuda --shape 2.8b --batch 64 --tokens 64 | grep -E "^\| 2\.8b"
done
echo "== bench_gemm --quick"; timeout 120 build-gpu/bench/bench_gemm --quick | grep -E "^\| [a-z0-9]"
} > "$OUT/c3.txt" 2>&1
sed -E 's/ +/ /g; s/ \| sample / s /' "$OUT/c3.txt"
