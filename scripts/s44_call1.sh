#!/usr/bin/env bash
# The next session's first device call (written in session 43; carry .deps).
#   main's GPU suites (gpu_test_model's *inner* tests first), then the DNA step at 2^20 in fp32,
#   TF32 and bf16, with the layer recompute and with in_proj's output kept (--inner,
#   MB_RECOMPUTE_INNER: 0.99 s fp32 on an H100 in session 43; issue 14's 1.0 s is asked on an
#   H200), two rounds alternated; on an H200, issue 15's generation rows (none since session 40).
# Output to $OUT/log as well, so that a call cut short still brings back what ran:
#   bash scripts/s44_call1.sh > $OUT/log 2>&1; tail -100 $OUT/log
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
END=${S44_END:-480}
source scripts/lean.sh
lean_env
lean_build "$PWD" tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu bench/bench_generate
echo "== built at $(el) s"
nvidia-smi --query-gpu=name --format=csv,noheader
deps_runtime
echo "== gpu_test_model *inner* ($(el) s)"
MB_TEST_FILTER='*inner*' timeout 100 build-lean/tests/gpu_test_model 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]|in_proj kept" | tail -6
for r in 1 2; do
    for p in fp32 tf32 bf16; do
        for x in "" --inner; do
            [ "$(el)" -lt $((END - 60)) ] || break 3
            echo "== round $r, $p ${x:-layers} ($(el) s)"
            timeout 40 build-lean/bench/bench_gpu $x --train 1048576 $p | grep -E "^\| dna"
        done
    done
done
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
    for a in "--shape dna --batch 1" "--shape dna --batch 64" "--shape 130m --batch 1" "--shape 130m --batch 64" \
        "--shape 2.8b --batch 1 --tokens 128 --weights bf16"; do
        [ "$(el)" -lt $((END - 50)) ] || break
        echo "== bench_generate --device cuda $a ($(el) s)"
        timeout 40 build-lean/bench/bench_generate --device cuda $a | grep -E "^\| " | tail -3
    done
fi
for t in gpu_test_scan gpu_test_ops gpu_test_model; do
    [ "$(el)" -lt $((END - 100)) ] || break
    echo "== $t ($(el) s)"
    timeout 150 build-lean/tests/$t 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
done
echo "== done at $(el) s"
