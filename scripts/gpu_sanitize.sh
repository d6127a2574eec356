#!/usr/bin/env bash
# compute-sanitizer over every GPU suite, in parts run at once on the one GPU,
# for a lent machine (carry .deps; builds with gpu_check.sh build when
# build-gpu has no suites):
#
#   bash scripts/gpu_sanitize.sh [racecheck|memcheck|synccheck|initcheck] [CAP_SECONDS]
#
# gpu_test_scan and gpu_test_ops run whole; gpu_test_model (several minutes
# under racecheck, more than one call holds when run whole) in the parts
# below, by MB_TEST_FILTER. A test of gpu_test_model in no part is reported as
# not run. Every suite under MB_GPU_TEST_SMALL=1 (smaller problems, the same
# kernels and paths). CAP_SECONDS (default 300) bounds each part.
# Output: a table (part, tests run, verdict, seconds) on stdout and in
# $OUT/sanitize_TOOL.txt; the parts' logs in $OUT/sanitize_TOOL_logs.tar.gz.
# Exit 0 only when every part ran clean. BUILD_DIR (default build-gpu) and
# SAN (the sanitizer's path) may be set; PARTS (e.g. "gpu_test_ops
# test_lm_wide") runs only the parts named (a suite, or a filter below).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
TOOL=${1:-racecheck}
CAP=${2:-300}
case "$TOOL" in racecheck | memcheck | synccheck | initcheck) ;; *) echo "usage: $0 [racecheck|memcheck|synccheck|initcheck] [CAP_SECONDS]" >&2; exit 2 ;; esac
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
BUILD=${BUILD_DIR:-build-gpu}
[ -x "$BUILD/tests/gpu_test_model" ] || GPU_CHECK_BUDGET=200 OUT=/tmp/gpu_sanitize_check bash scripts/gpu_check.sh build >/dev/null 2>&1
# shellcheck source=scripts/deps.sh
source scripts/deps.sh
deps_runtime
SAN=${SAN:-$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer 2>/dev/null | head -1)}
[ -n "$SAN" ] || { echo "gpu_sanitize: error: compute-sanitizer not found" >&2; exit 1; }
MODEL_PARTS=("test_step*" "test_bidir*" "test_sashimi*" "test_c*" "test_recurrent" "test_lm_sample" "test_lm_sample_bf16" "test_lm_cluster" "test_lm_cluster_draws" "test_lm_layer" "test_lm_wide" "test_lm_wide_bf16")
LOGS=/tmp/gpu_sanitize_$TOOL
rm -rf "$LOGS" && mkdir -p "$LOGS"

# every test of gpu_test_model is in some part (cmocka's * at the end only here)
mapfile -t ALL < <(grep -oE 'cmocka_unit_test\(test_[a-z0-9_]+\)' tests/gpu_test_model.c | sed 's/.*(\(.*\))/\1/')
MISSING=()
for t in "${ALL[@]}"; do
    hit=0
    for p in "${MODEL_PARTS[@]}"; do
        # shellcheck disable=SC2053
        [[ $t == $p ]] && hit=1
    done
    [ $hit = 1 ] || MISSING+=("$t")
done

wanted() { [ -z "${PARTS:-}" ] || [[ " $PARTS " == *" $1 "* ]]; }
run_part() { # name binary [filter]
    local name=$1 bin=$2 filter=${3:-} t0=$SECONDS rc
    (cd "$BUILD/tests" && MB_GPU_TEST_SMALL=1 MB_TEST_FILTER=$filter timeout -k 5 "$CAP" \
        "$SAN" --tool "$TOOL" --error-exitcode 1 --print-limit 30 "./$bin") >"$LOGS/$name.log" 2>&1
    rc=$?
    echo "$rc $((SECONDS - t0))" >"$LOGS/$name.rc"
}
names=()
for b in gpu_test_scan gpu_test_ops; do
    wanted "$b" || continue
    run_part "$b" "$b" &
    names+=("$b")
done
for p in "${MODEL_PARTS[@]}"; do
    wanted "$p" || continue
    n="gpu_test_model:${p//\*/_}"
    run_part "$n" gpu_test_model "$p" &
    names+=("$n")
done
wait

{
    echo "compute-sanitizer --tool $TOOL, MB_GPU_TEST_SMALL=1, parts at once, cap ${CAP} s; sources $(src_fingerprint)"
    echo "| part | tests run | $TOOL | s |"
    echo "|---|---|---|---|"
    for n in "${names[@]}"; do
        read -r rc secs <"$LOGS/$n.rc"
        ran=$(grep -oE '^\[ *(OK|FAILED) *\] test_[a-z0-9_]+' "$LOGS/$n.log" | awk '{print $NF}' | sort -u | wc -l)
        summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOGS/$n.log" | tail -1 | sed 's/^========= //')
        case $rc in
        0) verdict="clean${summary:+ ($summary)}" ;;
        77) verdict="skipped (no GPU)" ;;
        124 | 137) verdict="TIMEOUT (not claimed)" ;;
        *) verdict="FAILED rc=$rc${summary:+ ($summary)}" ;;
        esac
        echo "| $n | $ran | $verdict | $secs |"
    done
    [ ${#MISSING[@]} -eq 0 ] || [ -n "${PARTS:-}" ] || echo "not run (in no part): ${MISSING[*]}"
} | tee "$OUT/sanitize_$TOOL.txt"
tar -czf "$OUT/sanitize_${TOOL}_logs.tar.gz" -C "$LOGS" .
grep -q "FAILED\|TIMEOUT\|skipped\|not run" "$OUT/sanitize_$TOOL.txt" && exit 1
exit 0
