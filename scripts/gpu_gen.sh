#!/usr/bin/env bash
# The LM's generation on a lent GPU (carry .deps): build and the GPU suites
# (gpu_check.sh build), the one-kernel step tests verbose, then
# bench_generate under each step path for the shapes that path can take:
#
#   bash scripts/gpu_gen.sh
#   GEN_PATHS="auto:130m grid:130m" bash scripts/gpu_gen.sh
#
# GEN_PATHS: PATH:SHAPE,SHAPE ... (default below). Paths (MB_CUDA_STEP):
# auto (unset), split (four kernels a layer over every SM), fused (a block
# a row), cluster (every layer in one kernel, a cluster of thread blocks a
# row, ops/stack_step.cu). A path that does not take a shape runs it layer
# by layer (AUTO's row).
# Then bench_gemv. Output: stdout, $OUT/gen_tests.log, $OUT/gen_<path>.txt
# and $OUT/gemv.txt.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
GEN_PATHS=${GEN_PATHS:-auto:small,dna,130m,2.8b split:small,dna cluster:small,dna}
# always: an incremental build is seconds, and a binary left from an
# earlier tree would time the wrong code
GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-200} OUT=/tmp/gpu_gen_check \
    bash scripts/gpu_check.sh build >/tmp/gpu_gen_check.log 2>&1
grep -E "tests passed|tests failed|\| (build|test_gpu) " /tmp/gpu_gen_check.log 2>/dev/null
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_runtime
{
    MB_TEST_FILTER='test_stack_step*' timeout 120 build-gpu/tests/gpu_test_ops
    MB_TEST_FILTER='test_lm_cluster' timeout 120 build-gpu/tests/gpu_test_model
} >"$OUT/gen_tests.log" 2>&1
grep -E "^# (stack_step|stack step|LM step|no )|OK \]|FAILED|PASSED" "$OUT/gen_tests.log"
for ps in $GEN_PATHS; do
    path=${ps%%:*}
    f="$OUT/gen_$path.txt"
    : >"$f"
    shapes=${ps#*:}
    for one in ${shapes//,/ }; do
        if [ "$path" = auto ]; then
            timeout 200 build-gpu/bench/bench_generate --device cuda --shape "$one" >>"$f" 2>&1
        else
            MB_CUDA_STEP=$path timeout 200 build-gpu/bench/bench_generate --device cuda --shape "$one" >>"$f" 2>&1
        fi
    done
    echo "== MB_CUDA_STEP=$path"
    grep -E "^\| [a-z0-9]" "$f" | grep -v "^| model"
done
# the GEMV's loads in flight against DRAM bandwidth (bench/bench_gemv.cu)
timeout 120 build-gpu/bench/bench_gemv >"$OUT/gemv.txt" 2>&1
grep -E "^\||bench_gemv" "$OUT/gemv.txt"
