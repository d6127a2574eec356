#!/usr/bin/env bash
# Fault test of a training run's checkpoints (issue 13), through
# mamba-dna pretrain on a tiny model that checkpoints every step, so that
# saving is much of its time:
#
# 1. Kills: the run is killed with SIGKILL after a random delay, KILLS times
#    (default 20), each time resumed (a run that ends before its kill is
#    checked, and a new one started). After every kill, a probe (--resume
#    with --steps 1: it loads the newest complete checkpoint set, says which,
#    and trains nothing) must succeed, at a step no earlier than the last
#    probe's, and that set's weights are kept aside. At the end the run is
#    resumed to its last step, and an uninterrupted run with the same flags
#    gives the reference: every set kept aside, and each run's final model
#    (the best held-out one), its last set and optimizer state must equal the
#    reference's, to the byte (tensor data; the headers differ in the run
#    id).
# 2. Full disk (root, where a small tmpfs can be mounted; else skipped with
#    the reason): a run's folder on a tmpfs filled so that (a) nothing more
#    fits, (b) a set's model fits but not its optimizer state. The run must
#    exit 1 with one error line, the sets before it as they were, nothing of
#    the failed set or temporary files left, and --resume must take them.
#
# usage: ckpt_faults.sh MAMBA_DNA DATA_DIR   (MB_FAULT_KILLS, MB_FAULT_SEED
# override the count and the seed of the delays; the seed is printed)
set -u
BIN=${1:?usage: ckpt_faults.sh MAMBA_DNA DATA_DIR}
DATA=${2:?usage: ckpt_faults.sh MAMBA_DNA DATA_DIR}
KILLS=${MB_FAULT_KILLS:-20}
SEED=${MB_FAULT_SEED:-$(( $(date +%s) % 32768 ))}
RANDOM=$SEED
# one thread everywhere: the runs must be deterministic to the bit
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OMP_WAIT_POLICY=passive

STEPS=400
FLAGS="pretrain --d-model 8 --n-layer 1 --seq-len 64 --batch 2 --threads 1 --val-tokens 256 --val-every 20
       --steps $STEPS --save-every 1 --seed 3 $DATA/genomics/tiny.fa"

work=$(mktemp -d "${TMPDIR:-/tmp}/mb_faults.XXXXXX") || exit 1
mounted=
cleanup() {
    [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# the tensor bytes of a safetensors file: what follows its header
tensors() {
    local h
    [ -s "$1" ] || return 1
    h=$(od -An -tu8 -N8 "$1" | tr -d ' ') || return 1
    tail -c +$((9 + h)) "$1"
}
same_tensors() { [ -s "$1" ] && [ -s "$2" ] && cmp -s <(tensors "$1") <(tensors "$2"); }

echo "ckpt_faults: seed $SEED (MB_FAULT_SEED=$SEED replays the delays), $KILLS kills"

# ---- 1. kills --------------------------------------------------------------------
mkdir -p "$work/kept"
chains=0
# a new run in $run with a first complete set, so that every later start
# is a --resume
new_chain() {
    chains=$((chains + 1))
    run=$work/run$chains
    last=2
    mkdir -p "$run"
    if ! $BIN $FLAGS --stop-after 2 --out "$run/m.st" >"$work/first.log" 2>&1; then
        cat "$work/first.log"
        fail "the first run failed"
        exit 1
    fi
}
ended=() # the runs that reached their last step
kills=0 cut=0 fallbacks=0 swept=0 tries=0
new_chain
while [ $kills -lt "$KILLS" ] && [ $tries -lt $((KILLS * 3)) ]; do
    tries=$((tries + 1))
    $BIN $FLAGS --resume --out "$run/m.st" >"$work/run.log" 2>&1 &
    pid=$!
    # 30..330 ms: the start (~20 ms), then steps of a few ms, much of which
    # is the save
    sleep "0.$(printf %03d $((30 + RANDOM % 301)))"
    kill -KILL $pid 2>/dev/null
    wait $pid 2>/dev/null # (no "Killed" notice)
    rc=$?
    if [ $rc -eq 0 ]; then
        ended+=("$run") # done before the kill: checked below; on with a new run
        new_chain
        continue
    elif [ $rc -ne 137 ]; then
        cat "$work/run.log"
        fail "a resumed run exited $rc"
        break
    fi
    kills=$((kills + 1))
    # the probe: the newest complete set loads
    if ! $BIN $FLAGS --resume --steps 1 --out "$run/m.st" >"$work/probe.log" 2>&1; then
        cat "$work/probe.log"
        fail "kill $kills: no checkpoint set could be resumed"
        break
    fi
    step=$(sed -n 's/.* is already at step \([0-9]*\) of 1: nothing to do.*/\1/p' "$work/probe.log")
    if [ -z "$step" ] || [ "$step" -lt $last ]; then
        cat "$work/probe.log"
        fail "kill $kills: resumed at step '${step}', before step $last"
        break
    fi
    c=0
    if grep -q "skipped:" "$work/probe.log"; then fallbacks=$((fallbacks + 1)); c=1; fi
    if grep -q "removed .* temporary file" "$work/probe.log"; then swept=$((swept + 1)); c=1; fi
    cut=$((cut + c))
    last=$step
    tensors "$run/m.st.step-$step" >"$work/kept/$kills.$step" || fail "kill $kills: no m.st.step-$step"
done
[ $kills -eq "$KILLS" ] || fail "only $kills kills landed in $tries tries"

# the rest of the last run, then the uninterrupted reference (every set kept)
if ! $BIN $FLAGS --resume --out "$run/m.st" >"$work/run.log" 2>&1; then
    cat "$work/run.log"
    fail "the final resume failed"
fi
ended+=("$run")
mkdir -p "$work/ref"
if ! $BIN $FLAGS --keep $STEPS --out "$work/ref/m.st" >"$work/ref.log" 2>&1; then
    cat "$work/ref.log"
    fail "the reference run failed"
fi
identical=0
for f in "$work"/kept/*; do
    [ -e "$f" ] || continue
    step=${f##*.}
    if [ -s "$f" ] && cmp -s "$f" <(tensors "$work/ref/m.st.step-$step"); then
        identical=$((identical + 1))
    else
        fail "the set resumed at step $step after kill ${f##*/} differs from the uninterrupted run's"
    fi
done
final=0
for r in "${ended[@]}"; do
    if same_tensors "$r/m.st.step-$STEPS" "$work/ref/m.st.step-$STEPS" &&
        same_tensors "$r/m.st.step-$STEPS.optim" "$work/ref/m.st.step-$STEPS.optim" &&
        same_tensors "$r/m.st" "$work/ref/m.st"; then
        final=$((final + 1))
    else
        fail "$r: the final model or optimizer state differs from the uninterrupted run's"
    fi
    left=$(find "$r" -name '*.tmp*' | wc -l)
    [ "$left" -eq 0 ] || fail "$r: $left temporary files left after its last run"
done
echo "ckpt_faults: kills: $kills over $chains runs, $cut of them cut a save ($fallbacks resumed an older set" \
    "over a cut one, $swept left temporary files, swept); $identical of $kills resumed sets identical to the" \
    "uninterrupted run's; $final of ${#ended[@]} runs ended on its final model, to the byte"

# ---- 2. a full disk -----------------------------------------------------------------
disk_ran=0
disk_skip=
if [ "$(id -u)" != 0 ]; then
    disk_skip="not root (mounting a tmpfs needs it)"
else
    mkdir -p "$work/disk"
    if mount -t tmpfs -o size=512k tmpfs "$work/disk" 2>"$work/mount.err"; then
        mounted=$work/disk
    else
        disk_skip="mount -t tmpfs failed: $(head -1 "$work/mount.err")"
    fi
fi

# Fills the disk, then frees $1 bytes of the filler
fill_leaving() {
    dd if=/dev/zero of="$mounted/fill" bs=4k 2>/dev/null
    truncate -s "-$1" "$mounted/fill"
}
# a run whose save at step 6 meets a full disk: exit 1, one error line
# naming $2, the sets of steps 2 and 4 as they were, nothing else written
disk_case() {
    local what=$1 needle=$2 before after
    fill_leaving "$3"
    before=$(cd "$mounted" && ls -1 | grep -v '^fill$' | xargs md5sum)
    $BIN $FLAGS --resume --stop-after 8 --val-every 1000 --save-every 2 --out "$mounted/m.st" \
        >"$work/disk.out" 2>"$work/disk.err"
    local rc=$?
    after=$(cd "$mounted" && ls -1 | grep -v '^fill$' | xargs md5sum)
    local errs
    errs=$(grep -c "error:" "$work/disk.err")
    if [ $rc -ne 1 ] || [ "$errs" -ne 1 ] || ! tail -1 "$work/disk.err" | grep -q "mamba-dna: error: .*$needle"; then
        cat "$work/disk.err"
        fail "full disk ($what): exit $rc, $errs error lines, expected 1 and one line naming $needle"
    fi
    [ "$before" = "$after" ] || fail "full disk ($what): the files changed: $before -> $after"
    rm -f "$mounted/fill"
    if ! $BIN $FLAGS --resume --steps 1 --out "$mounted/m.st" >"$work/probe.log" 2>&1 ||
        ! grep -q "is already at step 4 of 1" "$work/probe.log"; then
        cat "$work/probe.log"
        fail "full disk ($what): the set of step 4 does not resume"
    fi
    echo "ckpt_faults: full disk ($what): $(tail -1 "$work/disk.err")"
    disk_ran=$((disk_ran + 1))
}

if [ -n "$mounted" ]; then
    if $BIN $FLAGS --stop-after 4 --save-every 2 --val-every 1000 --out "$mounted/m.st" >"$work/disk.log" 2>&1; then
        msize=$(stat -c %s "$mounted/m.st.step-4")
        disk_case "no room at all" "m.st.step-6: write error" 0
        # room for the model (in whole pages) and a little, not its state
        disk_case "room for the model, not its optimizer state" "m.st.step-6.optim: write error" \
            $(((msize / 4096 + 2) * 4096))
    else
        cat "$work/disk.log"
        fail "the run on the tmpfs failed"
    fi
    echo "ckpt_faults: full disk: $disk_ran of 2 cases run"
else
    echo "ckpt_faults: full disk: skipped, 2 cases: $disk_skip"
fi

if [ $failures -ne 0 ]; then
    echo "ckpt_faults: $failures failures (seed $SEED)"
    exit 1
fi
echo "ckpt_faults: passed"
