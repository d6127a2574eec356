#!/usr/bin/env bash
# Session 40, call 2 (carry .deps): MB_RECOMPUTE_STACK (the LM's backward recomputing the whole
# stack a chunk at a time, keeping only the states entering each chunk) on this tree, one lean
# build. gpu_test_model's chunked tests (the stacked ones against the CPU, fp32, complex, bf16,
# the classifier), then the DNA training step at 2^20 (and 2^17, 2^22) with the layer recompute
# (main's) and stacked at 16, 32 and 64 Ki-token chunks, all in one binary (bench_gpu --stack);
# then memcheck of the stacked tests.
set -uo pipefail
source scripts/lean.sh
lean_start tests/gpu_test_model bench/bench_gpu
B=build-lean/bench/bench_gpu
MB_TEST_FILTER='*chunks*' timeout 200 build-lean/tests/gpu_test_model 2>&1 | grep -E "^# |PASSED|FAILED"
row() { grep -E "^\| dna"; }
for L in 1048576; do
    for p in bf16 tf32 fp32; do
        timeout 60 $B --train $L $p | row
        for c in 16384 32768 65536; do timeout 60 $B --stack $c --train $L $p | row; done
    done
done
timeout 40 $B --train 131072 bf16 | row
timeout 40 $B --stack 16384 --train 131072 bf16 | row
timeout 40 $B --stack 32768 --train 131072 bf16 | row
timeout 90 $B --stack 32768 --train 4194304 bf16 | row
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER='*stack_chunks*' timeout 120 compute-sanitizer --tool memcheck \
    build-lean/tests/gpu_test_model 2>&1 | grep -E "ERROR SUMMARY|FAILED|PASSED" | head -3
