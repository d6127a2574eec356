#!/usr/bin/env bash
# Session 45, call 6: graphs keyed by the context's precision and TF32 (mb_ctx_graph_key): the
# three GPU suites (every graph path: the LM's and the U-Net's sampling, the U-Net's steps), the
# new test_sashimi_graphs_follow_precision verbose, and its memcheck.
#   bash scripts/s45_call6.sh > $OUT/log 2>&1; tail -40 $OUT/log
set -uo pipefail
source scripts/lean.sh
lean_start tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model
for t in gpu_test_scan gpu_test_ops gpu_test_model; do lean_suite "$PWD" $t; done
lean_suite "$PWD" gpu_test_model 'test_sashimi_graphs*' 'logits not bf16'
echo "== memcheck gpu_test_model (test_sashimi_graphs*), small shapes ($(el) s)"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER='test_sashimi_graphs*' timeout 100 compute-sanitizer --tool memcheck \
    build-lean/tests/gpu_test_model 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)" | tail -3
echo "== done at $(el) s"
