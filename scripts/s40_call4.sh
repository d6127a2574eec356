#!/usr/bin/env bash
# Session 40, call 4 (carry .deps): the stacked recompute with the head's rows a chunk's too
# (norm_f recomputed with the stack, the logits' backward a chunk at a time, where no
# classifier needs hf whole). gpu_test_model's chunked tests, then the DNA training step:
# LAYERS and STACK at 2^20 in bf16, STACK at 2^22 (one binary).
set -uo pipefail
source scripts/lean.sh
lean_start tests/gpu_test_model bench/bench_gpu
B=build-lean/bench/bench_gpu
MB_TEST_FILTER='*chunks*' timeout 100 build-lean/tests/gpu_test_model 2>&1 | grep -E "stacked|PASSED|FAILED"
row() { grep -E "^\| dna"; }
timeout 40 $B --train 1048576 bf16 | row
for c in 16384 32768 65536; do timeout 40 $B --stack $c --train 1048576 bf16 | row; done
timeout 60 $B --stack 32768 --train 4194304 bf16 | row
