#!/usr/bin/env bash
# Session 44's last device call (carry .deps): the final tree's GPU suites (ctest -L gpu's three),
# its `bench_gpu --scan` table and the DNA step at 2^20 in fp32 / TF32 / bf16 (LAYERS and
# --inner), and on an H200 the generation rows of issue 15.
# (Its steps written with scripts/lean.sh's helpers since the call: the same steps, their time
# checks as the helpers make them.)
#   bash scripts/s44_call5.sh > $OUT/log 2>&1; tail -80 $OUT/log
set -uo pipefail
END=${S44_END:-300}
source scripts/lean.sh
lean_start tests/gpu_test_scan tests/gpu_test_ops tests/gpu_test_model bench/bench_gpu bench/bench_generate
for t in gpu_test_scan gpu_test_ops gpu_test_model; do lean_suite "$PWD" $t; done
echo "== bench_gpu --scan ($(el) s)"
timeout 60 build-lean/bench/bench_gpu --scan | grep -E "^\| *[0-9]|^\| (GPU|CPU)"
LEAN_ROUNDS=1 lean_rounds "$END" 30 "$PWD" bench_gpu "--train 1048576 fp32" "--inner --train 1048576 fp32" "--train 1048576 tf32" \
    "--inner --train 1048576 tf32" "--train 1048576 bf16" "--inner --train 1048576 bf16"
if lean_on_h200; then
    LEAN_ROUNDS=1 lean_rounds "$END" 30 "$PWD" bench_generate "--device cuda --shape dna --batch 1" "--device cuda --shape dna --batch 64" \
        "--device cuda --shape 130m --batch 1" "--device cuda --shape 130m --batch 64"
fi
echo "== done at $(el) s"
