#!/usr/bin/env bash
# A trial patch (bench/trials/NAME.patch) checked and timed against this tree in one call on a
# lent GPU (carry .deps):
#
#   bash scripts/gpu_trial.sh NAME "BENCH ARGS" [VAR=VALUE]
#   e.g. bash scripts/gpu_trial.sh gemm-rows "--device cuda --shape 130m --batch 64" MB_GEMM_ROWS_ALL=1
#
# 1. this tree: gpu_check.sh build (its GPU suites; build-gpu)
# 2. a copy of this tree's HEAD with the patch applied (/tmp/trial_src): gpu_check.sh build there,
#    so the trial's GPU suites run (again with VAR=VALUE set, when given)
# 3. $BENCH (default bench_generate) with BENCH ARGS: this tree, the trial, and the trial with
#    VAR=VALUE, in turn, two rounds, table rows printed
# Output: stdout and $OUT/trial_*.txt. A trial is merged only when its suites pass (RESULTS.md
# gets the figures either way; bench/trials/README.md says how).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
NAME=${1:?usage: $0 NAME \"BENCH ARGS\" [VAR=VALUE]}
ARGS=${2:?usage: $0 NAME \"BENCH ARGS\" [VAR=VALUE]}
SETV=${3:-}
BENCH=${BENCH:-bench_generate}
PATCH=bench/trials/$NAME.patch
[ -f "$PATCH" ] || { echo "gpu_trial: error: $PATCH: no such trial" >&2; exit 1; }
case "$SETV" in "" | *=*) ;; *) echo "gpu_trial: error: $SETV: not VAR=VALUE" >&2; exit 2 ;; esac
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
T=/tmp/trial_src
rm -rf "$T" && mkdir -p "$T"
git archive HEAD | tar -x -C "$T" || exit 1
ln -s "$PWD/.deps" "$T/.deps"
patch -s -d "$T" -p1 <"$PATCH" || { echo "gpu_trial: error: $PATCH does not apply to HEAD"; exit 1; }

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
echo "== this tree (sources $(src_fingerprint))"
GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-200} OUT=/tmp/trial_check_base bash scripts/gpu_check.sh build \
    >"$OUT/trial_base_check.txt" 2>&1
grep -E "\| (build|test_gpu) " "$OUT/trial_base_check.txt"
echo "== trial $NAME (sources $(cd "$T" && src_fingerprint))"
(cd "$T" && GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-200} OUT=/tmp/trial_check bash scripts/gpu_check.sh build) \
    >"$OUT/trial_check.txt" 2>&1
grep -E "\| (build|test_gpu) " "$OUT/trial_check.txt"
deps_runtime
if [ -n "$SETV" ]; then
    echo "== trial $NAME, GPU suites with $SETV"
    (cd "$T/build-gpu" && env "$SETV" timeout 200 ctest -L gpu --output-on-failure) >"$OUT/trial_check_var.txt" 2>&1
    grep -E "tests passed|tests failed|Failed" "$OUT/trial_check_var.txt"
fi
for round in 1 2; do
    for who in base trial var; do
        case $who in
        base) bin=build-gpu/bench/$BENCH env=() ;;
        trial) bin=$T/build-gpu/bench/$BENCH env=() ;;
        var)
            [ -n "$SETV" ] || continue
            bin=$T/build-gpu/bench/$BENCH env=("$SETV")
            ;;
        esac
        [ -x "$bin" ] || { echo "== $who: no $bin"; continue; }
        echo "== $who${env:+ (${env[*]})}, round $round"
        # shellcheck disable=SC2086
        env "${env[@]}" timeout 200 "$bin" $ARGS >"$OUT/trial_${who}_$round.txt" 2>&1
        grep -E "^\| +[0-9]|^\| (dna|small|130m|2\.8b|bidir)" "$OUT/trial_${who}_$round.txt"
    done
done
