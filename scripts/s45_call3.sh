#!/usr/bin/env bash
# Session 45, call 3: main's final tree (the library of call 1's tree, 0d79c26): the full build
# and `ctest -L gpu` (gpu_check.sh build), memcheck of AUTO's GPU test, and `mamba-dna pretrain`
# on the bundled genomes with windows of 128 Ki bases on the GPU by default (MB_RECOMPUTE_AUTO:
# stderr must say which recompute it took), then with --low-memory.
#   bash scripts/s45_call3.sh > $OUT/log 2>&1; tail -60 $OUT/log
set -uo pipefail
GPU_CHECK_BUDGET=${S45_BUDGET:-300} bash scripts/gpu_check.sh build 2>&1 | tail -25
source scripts/deps.sh
deps_env /opt/deps
deps_runtime
echo "== memcheck gpu_test_model (*auto*), small shapes"
MB_GPU_TEST_SMALL=1 MB_TEST_FILTER='*auto*' timeout 120 compute-sanitizer --tool memcheck \
    build-gpu/tests/gpu_test_model 2>&1 | grep -E "ERROR SUMMARY|^\[  (PASSED|FAILED)|auto took" | tail -4
for m in "" --low-memory; do
    echo "== mamba-dna pretrain --device cuda --seq-len 131072 --batch 8 --steps 4 ${m:-(default)}"
    s=$SECONDS
    timeout 120 build-gpu/apps/genomics/mamba-dna pretrain --device cuda \
        --seq-len 131072 --batch 8 --steps 4 --val-every 4 --val-tokens 131072 $m --force \
        --out /tmp/s45.safetensors data/dna/train.fa.gz 2>&1 | tail -8
    echo "($((SECONDS - s)) s)"
done
