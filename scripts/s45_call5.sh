#!/usr/bin/env bash
# Session 45, call 5: the U-Net's recurrent steps in bf16 precision (mamba-audio generate
# --precision bf16): gpu_test_model's U-Net tests (the new test_sashimi_sample_bf16: GPU draws in
# bf16 replayed on the CPU in bf16) and the LM's sampling tests, memcheck of the new test, and
# bench_audio's rows (bf16 sampling at batch 1 and 64 beside fp32's).
#   bash scripts/s45_call5.sh > $OUT/log 2>&1; tail -60 $OUT/log
set -uo pipefail
source scripts/lean.sh
lean_start tests/gpu_test_model bench/bench_audio
lean_suite "$PWD" gpu_test_model 'test_sashimi*' 'sashimi|bf16: '
lean_suite "$PWD" gpu_test_model 'test_lm_sample*'
echo "== memcheck gpu_test_model (test_sashimi_sample_bf16), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=test_sashimi_sample_bf16 timeout 150 compute-sanitizer --tool memcheck \
    build-lean/tests/gpu_test_model 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
echo "== bench_audio --device cuda ($(el) s)"
timeout 150 build-lean/bench/bench_audio --device cuda | grep -E "^\|"
echo "== done at $(el) s"
