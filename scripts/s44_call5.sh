#!/usr/bin/env bash
# Session 44's last device call (carry .deps): the final tree's GPU suites (ctest -L gpu's three),
# its `bench_gpu --scan` table and the DNA step at 2^20 in fp32 / TF32 / bf16 (LAYERS and
# --inner), and on an H200 the generation rows of issue 15.
#   bash scripts/s44_call5.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
start=$(date +%s)
el() { echo $(($(date +%s) - start)); }
END=${S44_END:-300}
source scripts/lean.sh
lean_start tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu bench/bench_generate
nvidia-smi --query-gpu=name --format=csv,noheader
for t in gpu_test_scan gpu_test_ops gpu_test_model; do
    echo "== $t ($(el) s)"
    timeout 150 build-lean/tests/$t 2>&1 | grep -E "^\[  (PASSED|FAILED)|FAILED  \]" | tail -3
done
echo "== bench_gpu --scan ($(el) s)"
timeout 60 build-lean/bench/bench_gpu --scan | grep -E "^\| *[0-9]|^\| (GPU|CPU)"
for p in fp32 tf32 bf16; do
    for x in "" --inner; do
        [ "$(el)" -lt $((END - 30)) ] || break 2
        echo "== $p ${x:-layers} ($(el) s)"
        timeout 40 build-lean/bench/bench_gpu $x --train 1048576 $p | grep -E "^\| dna"
    done
done
if nvidia-smi --query-gpu=name --format=csv,noheader | grep -q H200; then
    for a in "--shape dna --batch 1" "--shape dna --batch 64" "--shape 130m --batch 1" "--shape 130m --batch 64"; do
        [ "$(el)" -lt $((END - 30)) ] || break
        echo "== bench_generate --device cuda $a ($(el) s)"
        timeout 40 build-lean/bench/bench_generate --device cuda $a | grep -E "^\| .*sample" | tail -2
    done
fi
echo "== done at $(el) s"
