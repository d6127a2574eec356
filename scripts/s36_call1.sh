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
# The builds take most of one call (about 90 s a tree), so the timed runs are scripts/s36_call2.sh,
# the next call on the same warm machine (it reuses /tmp/trial_src_*/build-gpu).
set -uo pipefail
export OUT=${OUT:-$PWD/gpu-check-out}
ROUNDS=1 BENCH=none timeout 570 bash scripts/gpu_trial.sh cluster-rows,scan-cursor-in,scan-step-dt,step-residual "-" |
    grep -v "^== .*no .*bench/none"
