# The stage runner of the lent-machine scripts (gpu_check.sh, gpu_dist.sh):
# each stage under a time cap inside the run's budget, its output teed into
# a log under $OUT, its status recorded for the closing table. Sourced after
# OUT and BUDGET (seconds for the whole run) are set; the clock starts here.

now() { date +%s.%N; }
T_START=$(now)
elapsed() { awk -v a="$T_START" -v b="$(now)" 'BEGIN { printf "%d", b - a }'; }

STAGES=()
STATUS=()
SECS=()
record() { # name status seconds
    STAGES+=("$1")
    STATUS+=("$2")
    SECS+=("$3")
    echo "=== [$1] $2 in ${3}s (run at ${4:-?}s)"
}

# stage NAME CAP RESERVE LOG COMMAND: run COMMAND (a bash string) under a
# timeout of min(CAP, budget left - RESERVE); its output also goes to
# $OUT/LOG. STAGE_DEADLINE (epoch seconds) tells the command when it is cut.
stage() {
    local name=$1 cap=$2 reserve=$3 log=$4 cmd=$5
    local left=$((BUDGET - $(elapsed) - reserve))
    local to=$((cap < left ? cap : left))
    if ((to < 10)); then
        echo "=== [$name] not run: ${left}s of the budget left" | tee -a "$OUT/$log"
        record "$name" "SKIP(time)" 0 "$(elapsed)"
        return
    fi
    echo | tee -a "$OUT/$log"
    echo "=== [$name] start at $(elapsed)s, timeout ${to}s: $cmd" | tee -a "$OUT/$log"
    local t0 rc st
    t0=$(now)
    STAGE_DEADLINE=$(awk -v a="$t0" -v t="$to" 'BEGIN { printf "%d", a + t - 5 }') \
        timeout -k 10 "$to" bash -c "$cmd" 2>&1 | tee -a "$OUT/$log"
    rc=${PIPESTATUS[0]}
    case $rc in
    0) st=PASS ;;
    77) st=SKIP ;;
    124 | 137) st=TIMEOUT ;;
    *) st="FAIL($rc)" ;;
    esac
    record "$name" "$st" "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%d", b - a }')" \
        "$(elapsed)"
}

# stage_func NAME LOG FUNCTION: a shell function of the script as a stage
# with no time cap (in a subshell, as a pipeline: what it exports is lost).
stage_func() {
    local name=$1 log=$2 fn=$3 t0 rc
    t0=$(now)
    "$fn" 2>&1 | tee -a "$OUT/$log"
    rc=${PIPESTATUS[0]}
    record "$name" "$([ "$rc" -eq 0 ] && echo PASS || echo "FAIL($rc)")" \
        "$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%d", b - a }')" "$(elapsed)"
}

# stages_summary TITLE PROG: the closing table (stage, status, seconds), also
# into $OUT/summary.txt; 0 when no stage failed or timed out.
stages_summary() {
    local title=$1 prog=$2 bad=0 i gpu
    {
        echo
        gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
        echo "==== $title, ${gpu:-no GPU seen}, total $(elapsed)s"
        printf '| %-10s | %-12s | %5s |\n' stage status s
        printf '|%s|%s|%s|\n' ------------ -------------- -------
        for i in "${!STAGES[@]}"; do
            printf '| %-10s | %-12s | %5s |\n' "${STAGES[$i]}" "${STATUS[$i]}" "${SECS[$i]}"
        done
    } | tee "$OUT/summary.txt"
    for i in "${!STATUS[@]}"; do
        case "${STATUS[$i]}" in FAIL* | TIMEOUT) bad=$((bad + 1)) ;; esac
    done
    echo "$prog: $bad stage(s) failed or timed out; logs in \$OUT" | tee -a "$OUT/summary.txt"
    [ $bad -eq 0 ]
}
