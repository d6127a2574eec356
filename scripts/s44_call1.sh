#!/usr/bin/env bash
# The next session's first device call (written in session 43; carry .deps).
#   main's GPU suites (gpu_test_model's *inner* tests first), then the DNA step at 2^20 in fp32,
#   TF32 and bf16, with the layer recompute and with in_proj's output kept (--inner,
#   MB_RECOMPUTE_INNER: 0.99 s fp32 on an H100 in session 43; issue 14's 1.0 s is asked on an
#   H200), two rounds alternated; on an H200, issue 15's generation rows (none since session 40).
# Its steps are written with scripts/lean.sh's helpers (since the call: the same
# steps, their time checks as the helpers make them).
# Output to $OUT/log as well, so that a call cut short still brings back what ran:
#   bash scripts/s44_call1.sh > $OUT/log 2>&1; tail -100 $OUT/log
set -uo pipefail
END=${S44_END:-480}
source scripts/lean.sh
lean_start tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu bench/bench_generate
lean_suite "$PWD" gpu_test_model '*inner*' 'in_proj kept'
lean_rounds "$END" 40 "$PWD" bench_gpu "--train 1048576 fp32" "--inner --train 1048576 fp32" \
    "--train 1048576 tf32" "--inner --train 1048576 tf32" "--train 1048576 bf16" "--inner --train 1048576 bf16"
if lean_on_h200; then
    for a in "--shape dna --batch 1" "--shape dna --batch 64" "--shape 130m --batch 1" "--shape 130m --batch 64" \
        "--shape 2.8b --batch 1 --tokens 128 --weights bf16"; do
        lean_before $((END - 50)) || break
        echo "== bench_generate --device cuda $a ($(el) s)"
        timeout 40 build-lean/bench/bench_generate --device cuda $a | grep -E "^\| " | tail -3
    done
fi
for t in gpu_test_scan gpu_test_ops gpu_test_model; do
    lean_before $((END - 100)) || break
    lean_suite "$PWD" $t
done
echo "== done at $(el) s"
