#!/usr/bin/env bash
# The next session's first device call (written in session 35, whose later calls found no
# machine; carry .deps): the trials cluster-rows (its test's token buffer mended),
# scan-cursor-in, scan-step-dt and step-residual, each built with its GPU suites (gpu_trial.sh, no
# benchmark); then
#   bench_gpu --scan, two rounds: this tree and scan-cursor-in (scan-cursor's rows: call 1)
#   bench_generate --shape dna (1 to 64 rows), two rounds: this tree (AUTO: the layer path from
#     16 rows), cluster-rows, scan-step-dt; and cluster-rows with MB_CUDA_STEP=cluster (its
#     clusters at every row count), to set AUTO's rule from where each path wins
#   bench_generate --shape 130m --batch 64, two rounds: this tree, scan-step-dt, step-residual
#   bench_gemm (first run): the step's GEMMs through cublasSgemm against cublasLt's algorithms
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 300 bash scripts/gpu_trial.sh cluster-rows,scan-cursor-in,scan-step-dt,step-residual "-" |
    grep -v "^== .*no .*bench/none"
source scripts/deps.sh; deps_runtime
bin_of() { [ "$1" = base ] && echo build-gpu/bench/$2 || echo /tmp/trial_src_$1/build-gpu/bench/$2; }
for r in 1 2; do
  for who in base scan-cursor-in; do
    echo "== scan $who round $r"; timeout 40 "$(bin_of $who bench_gpu)" --scan | grep -E "^\| +[0-9]"
  done
  for who in base cluster-rows scan-step-dt; do
    echo "== generate dna $who round $r"; timeout 30 "$(bin_of $who bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
  done
  for who in base scan-step-dt step-residual; do
    echo "== generate 130m 64 $who round $r"
    timeout 30 "$(bin_of $who bench_generate)" --device cuda --shape 130m --batch 64 | grep -E "^\| 130m"
  done
done
echo "== generate dna MB_CUDA_STEP=cluster cluster-rows"
MB_CUDA_STEP=cluster timeout 30 "$(bin_of cluster-rows bench_generate)" --device cuda --shape dna | grep -E "^\| dna"
echo "== bench_gemm"; timeout 120 build-gpu/bench/bench_gemm | grep -E "^\| [a-z0-9]|^GEMMs"
