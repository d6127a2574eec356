#!/usr/bin/env bash
# A trial patch (bench/trials/NAME.patch) checked and timed against this tree in one call on a
# lent GPU (carry .deps):
#
#   bash scripts/gpu_trial.sh NAME[,NAME...] "BENCH ARGS" [VAR=VALUE]
#   e.g. bash scripts/gpu_trial.sh gemm-rows "--device cuda --shape 130m --batch 64" MB_GEMM_ROWS_ALL=1
#
# 1. this tree: gpu_check.sh build (its GPU suites; build-gpu)
# 2. for each trial, a copy of this tree with its patch applied (/tmp/trial_src_NAME):
#    gpu_check.sh build there, so the trial's GPU suites run (again with VAR=VALUE set, when given)
# 3. $BENCH (default bench_generate) with BENCH ARGS: this tree, each trial, and each trial with
#    VAR=VALUE, in turn, two rounds (ROUNDS=), table rows printed; a trial named break-* (a tree
#    broken by hand, whose suites must fail) is not timed
# Output: stdout and $OUT/trial_*.txt. A trial is merged only when its suites pass (RESULTS.md
# gets the figures either way; bench/trials/README.md says how).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
NAMES=${1:?usage: $0 NAME[,NAME...] \"BENCH ARGS\" [VAR=VALUE]}
ARGS=${2:?usage: $0 NAME[,NAME...] \"BENCH ARGS\" [VAR=VALUE]}
SETV=${3:-}
BENCH=${BENCH:-bench_generate}
IFS=, read -r -a NAMEV <<<"$NAMES"
for NAME in "${NAMEV[@]}"; do
    [ -f "bench/trials/$NAME.patch" ] || { echo "gpu_trial: error: bench/trials/$NAME.patch: no such trial" >&2; exit 1; }
done
case "$SETV" in "" | *=*) ;; *) echo "gpu_trial: error: $SETV: not VAR=VALUE" >&2; exit 2 ;; esac
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"

# shellcheck source=scripts/deps.sh
source scripts/deps.sh
echo "== this tree (sources $(src_fingerprint))"
GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-200} OUT=/tmp/trial_check_base bash scripts/gpu_check.sh build \
    >"$OUT/trial_base_check.txt" 2>&1
grep -E "\| (build|test_gpu) " "$OUT/trial_base_check.txt"
# each trial in its own copy of this tree, built and its suites run once
for NAME in "${NAMEV[@]}"; do
    T=/tmp/trial_src_$NAME
    rm -rf "$T" && mkdir -p "$T"
    # this tree as it is, not `git archive HEAD`: a lent machine's copy keeps an older .git
    tar -c --exclude='./build*' --exclude=./.deps --exclude=./.ref --exclude=./.git --exclude=./gpu-check-out . |
        tar -x -C "$T" || exit 1
    ln -s "$PWD/.deps" "$T/.deps"
    patch -s -d "$T" -p1 <"bench/trials/$NAME.patch" ||
        { echo "gpu_trial: error: bench/trials/$NAME.patch does not apply to this tree"; exit 1; }
    echo "== trial $NAME (sources $(cd "$T" && src_fingerprint))"
    (cd "$T" && GPU_CHECK_BUDGET=${GPU_CHECK_BUDGET:-200} OUT=/tmp/trial_check_$NAME bash scripts/gpu_check.sh build) \
        >"$OUT/trial_check_$NAME.txt" 2>&1
    grep -E "\| (build|test_gpu) " "$OUT/trial_check_$NAME.txt"
done
deps_runtime
if [ -n "$SETV" ]; then
    for NAME in "${NAMEV[@]}"; do
        echo "== trial $NAME, GPU suites with $SETV"
        (cd "/tmp/trial_src_$NAME/build-gpu" && env "$SETV" timeout 200 ctest -L gpu --output-on-failure) \
            >"$OUT/trial_check_var_$NAME.txt" 2>&1
        grep -E "tests passed|tests failed|Failed" "$OUT/trial_check_var_$NAME.txt"
    done
fi
# the runs of a round: base, then each trial, and each trial with VAR=VALUE when given
RUNS=(base)
for NAME in "${NAMEV[@]}"; do
    case $NAME in break-*) continue ;; esac # broken by hand on purpose: built and checked, never timed
    RUNS+=("$NAME")
    [ -n "$SETV" ] && RUNS+=("$NAME+var")
done
for round in $(seq 1 "${ROUNDS:-2}"); do
    for run in "${RUNS[@]}"; do
        env=()
        case $run in
        base) bin=build-gpu/bench/$BENCH ;;
        *+var) bin=/tmp/trial_src_${run%+var}/build-gpu/bench/$BENCH env=("$SETV") ;;
        *) bin=/tmp/trial_src_$run/build-gpu/bench/$BENCH ;;
        esac
        [ -x "$bin" ] || { echo "== $run: no $bin"; continue; }
        echo "== $run${env:+ (${env[*]})}, round $round"
        # shellcheck disable=SC2086
        env "${env[@]}" timeout 200 "$bin" $ARGS >"$OUT/trial_${run/+/_}_$round.txt" 2>&1
        grep -E "^\| +[0-9]|^\| (dna|small|130m|2\.8b|bidir)" "$OUT/trial_${run/+/_}_$round.txt"
    done
done
