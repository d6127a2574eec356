#!/usr/bin/env bash
# The SC09 benchmark of issue 17 on a GPU: the spoken-digit corpus
# (data/audio/make_sc09.sh), a digit classifier trained on its training
# voices and scored on its test voices, SaShiMi-Mamba U-Nets (D 64, 8 blocks
# a stage, pools 4,4, expand 2) with S4D-Real and S4D-Lin trained for a
# fixed number of steps (--init real: S4D-Real; complex: S4D-Lin), their held-out NLL on the test voices, N clips of
# 1 s drawn from each with SaShiMi's likelihood rejection, and the metrics
# (FID, IS, mIS, AM, NDB) of those clips and of the real test set under the
# classifier.
#
#   bash scripts/gpu_sc09.sh [RESULTS_DIR]     (default ./sc09-out, git-ignored)
#
# On a lent machine (carry ".deps" and ".deps-tts"; $OUT is empty at every
# call and at most 8 files come back):
#   BUDGET_S=420 bash scripts/gpu_sc09.sh; tar czf $OUT/sc09.tgz sc09-out
#
# The TTS engines come as Debian packages in .deps-tts/ (bash
# scripts/fetch_deps.sh tts, here; carry ".deps-tts" beside ".deps"),
# unpacked into a prefix as scripts/deps.sh does for the build's libraries:
# the corpus is built on the machine itself, byte for byte the one built
# here. Needs a built mamba-audio (build-gpu, else build). Stages already
# done (their result file in RESULTS_DIR) are skipped, so a run can go on
# in another session when the results dir comes back; RESULTS_DIR/table.md
# is the table so far. Settings (environment):
#   DEVICE=cuda  PREC=tf32  CORPUS_OPTS="--takes 2" (make_sc09.sh's: 16320 clips)
#   CL_STEPS=2000 CL_BATCH=32 CL_MODEL="--d-model 64 --n-layer 2"   (the classifier)
#   CL_LR=1e-3   its peak learning rate (classify train's default since session 23:
#                2e-3 left the 16 kHz classifier at chance until the cosine had
#                brought it below ~1.2e-3, and collapsed a longer run: RESULTS.md)
#   LM_STEPS=1500 LM_BATCH=16 LM_INITS="real complex"  (SaShiMi-Mamba:
#   LM_MODEL="--d-model 64 --n-layer 8 --pool 4,4 --expand 2", the paper's SC09 size)
#   LM_SECONDS=0 a training budget in seconds of steps, the same for every init,
#                in place of LM_STEPS (0: LM_STEPS): a 24-step calibration run
#                first (--out sc09-work/calib-INIT) measures the init's samples/s
#                past its start-up (the log's last rate), and the run gets
#                LM_SECONDS x that rate / (LM_BATCH x 16000) steps with the whole
#                learning-rate schedule over them; validations are not counted.
#                The steps are kept in RESULTS_DIR/lm-INIT.steps, so a resumed
#                run keeps them. Session 25's S4D-Real: 1500 steps at 1.91 M
#                samples/s, about 201 s (LM_SECONDS=201 gives S4D-Lin that budget)
#   EVAL_BATCH=16  clips a forward pass of the held-out NLL (64 ran out of an
#                H100's 80 GB in session 23, before the forward without backward
#                kept two block buffers a level instead of one a block)
#   GEN_N=640 GEN_BAND=0.1,0.9 (draws, the kept band: 512 of 640)  NDB_BINS=50
#   GEN_OPTS=""  more generate options for those draws and the curve's
#                (e.g. "--temperature 0.9")
#   CURVE_N=160  draws at each of the run's six checkpoints, scored against the
#                validation voices by scripts/audio_curve.sh (0: no curve)
#   BUDGET_S=0   stop starting new stages after this many seconds (0: none)
#   SC09_EXPORT=DIR  after every stage: RESULTS_DIR as DIR/sc09-results.tgz and
#                the finished models (classifier, LMs, no checkpoint sets) as
#                DIR/sc09-models.tar.aa, .ab, ... (15 MB pieces: a file back
#                from a lent machine is at most 16 MiB). Give it $OUT: a call
#                cut by its time limit still brings back every finished stage
#                (session 24's second call brought back nothing). At most 8
#                files and 64 MiB in all come back: two LMs and the classifier
#                are 5 files, 57 MB, so send other logs elsewhere (OUT=/tmp/x
#                bash scripts/gpu_check.sh build)
#   SC09_IMPORT=./sc09-models  such pieces, carried to a fresh machine: the
#                models in them are unpacked into SC09_WORK where missing; with
#                RESULTS_DIR carried too, their stages are done (session 24
#                lost its models with the machine between two calls)
#   SC09_WORK=./sc09-work  the corpus and the models (git-ignored, so a lent
#                machine keeps them between calls while it stays warm)
# A device call runs at most 10 minutes: call it again (BUDGET_S=420 each
# time) until the table is complete. Measured on an H200 (RESULTS.md,
# session 22): corpus 41 s; classifier 436 clips/s (the default 2000 x 32:
# ~150 s); SaShiMi-Mamba 1.96 M samples/s real, 0.91 M complex (the default
# 1500 steps: ~200 s and ~420 s, each one call); 640 clips drawn in ~20 s;
# metrics ~20 s a set; a curve row ~7 s at CURVE_N=48.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=deps.sh
source scripts/deps.sh
deps_runtime
R=${1:-sc09-out}
mkdir -p "$R"
R=$(cd "$R" && pwd)
AUD=build-gpu/apps/audio/mamba-audio
[ -x "$AUD" ] || AUD=build/apps/audio/mamba-audio
[ -x "$AUD" ] || { echo "gpu_sc09.sh: no mamba-audio built" >&2; exit 1; }
AUD=$(cd "$(dirname "$AUD")" && pwd)/mamba-audio
DEVICE=${DEVICE:-cuda}
PREC=${PREC:-tf32}
CORPUS_OPTS=${CORPUS_OPTS:---takes 2}
CL_STEPS=${CL_STEPS:-2000}
CL_BATCH=${CL_BATCH:-32}
CL_MODEL=${CL_MODEL:---d-model 64 --n-layer 2}
CL_LR=${CL_LR:-1e-3}
LM_MODEL=${LM_MODEL:---d-model 64 --n-layer 8 --pool 4,4 --expand 2}
LM_STEPS=${LM_STEPS:-1500}
LM_BATCH=${LM_BATCH:-16}
LM_INITS=${LM_INITS:-real complex}
LM_SECONDS=${LM_SECONDS:-0}
EVAL_BATCH=${EVAL_BATCH:-16}
GEN_N=${GEN_N:-640}
GEN_BAND=${GEN_BAND:-0.1,0.9}
GEN_OPTS=${GEN_OPTS:-}
CURVE_N=${CURVE_N:-160}
NDB_BINS=${NDB_BINS:-50}
BUDGET_S=${BUDGET_S:-0}
W=${SC09_WORK:-$PWD/sc09-work}
C=$W/corpus
mkdir -p "$W"
IMP=${SC09_IMPORT:-$PWD/sc09-models}
if compgen -G "$IMP/sc09-models.tar.*" >/dev/null; then
    cat "$IMP"/sc09-models.tar.* | tar xf - -C "$W" --skip-old-files ||
        echo "gpu_sc09.sh: $IMP: the model pieces did not unpack"
fi
t0=$(date +%s)
rc=0

over_budget() { [ "$BUDGET_S" -gt 0 ] && [ $(($(date +%s) - t0)) -ge "$BUDGET_S" ]; }
stage() { # NAME: run it unless its result exists or the budget is spent
    if [ -s "$R/$1.done" ]; then echo "=== $1: done before ($(cat "$R/$1.done"))"; return 1; fi
    if over_budget; then echo "=== $1: skipped, BUDGET_S=$BUDGET_S spent"; return 1; fi
    echo "=== $1 ($(date -u +%H:%M:%S))"
    return 0
}
export_all() { # the results and the finished models into SC09_EXPORT
    [ -n "${SC09_EXPORT:-}" ] || return 0
    mkdir -p "$SC09_EXPORT" && rm -f "$SC09_EXPORT"/sc09-models.tar.*
    tar czf "$SC09_EXPORT/sc09-results.tgz" -C "$(dirname "$R")" "$(basename "$R")"
    (cd "$W" && ls cls.safetensors cls.safetensors.audio cls.safetensors.classes lm-*.safetensors \
        lm-*.safetensors.audio 2>/dev/null | tar cf - -T - | split -b 15000000 - "$SC09_EXPORT/sc09-models.tar.")
}
finish() { # NAME RC WHAT
    if [ "$2" -eq 0 ]; then echo "$3" >"$R/$1.done"; else echo "=== $1 failed (exit $2)"; rc=1; fi
    export_all
}

# ---- the TTS engines from .deps-tts, where the machine has none ----
if { [ -n "${SC09_TTS_PREFIX:-}" ] || ! command -v espeak-ng >/dev/null; } && [ -d .deps-tts ]; then
    P=$W/tts
    deps_unpack "$P" .deps-tts/*.deb >/dev/null || echo "gpu_sc09.sh: a TTS package did not unpack"
    # the engines' libraries, where fetch_deps.sh checked they are
    for d in $DEPS_TTS_LIBDIRS; do LD_LIBRARY_PATH="$P/$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
    export LD_LIBRARY_PATH
    export ESPEAK_DATA_PATH="$P/usr/lib/x86_64-linux-gnu"
    # festival reads its init.scm under --datadir (else in /usr/share/festival,
    # whatever --libdir says: session 22's corpus build failed on that) and
    # its voices and lexicons under --libdir. text2wave (a
    # festival script whose #! names /usr/bin/festival) writes nothing when
    # festival runs with --libdir: its one use in make_sc09.sh (text on
    # stdin, -eval, -o) goes through festival -b instead, the same bytes
    # (checked against text2wave for the three voices)
    mkdir -p "$P/bin"
    printf '#!/bin/sh\nexec "%s/usr/bin/festival" --libdir "%s/usr/share/festival" --datadir "%s/usr/share/festival" "$@"\n' "$P" "$P" "$P" >"$P/bin/festival"
    cat >"$P/bin/text2wave" <<EOF2
#!/bin/sh
ev=""; out=""
while [ \$# -gt 0 ]; do case "\$1" in -eval) ev="\$ev\$2"; shift 2;; -o) out="\$2"; shift 2;; *) shift;; esac; done
text=\$(cat)
exec "$P/bin/festival" -b "\$ev" "(utt.save.wave (utt.synth (Utterance Text \\"\$text\\")) \\"\$out\\" 'riff)"
EOF2
    chmod +x "$P/bin/festival" "$P/bin/text2wave"
    export PATH="$P/bin:$P/usr/bin:$PATH"
fi

# ---- the corpus (not kept between sessions: rebuilt, the same bytes) ----
if [ ! -f "$C/manifest.tsv" ]; then
    # a library an engine cannot load, named before the corpus script fails on it
    for b in espeak-ng flite festival sox; do
        p=$(command -v "$b") || { echo "gpu_sc09.sh: $b not found"; continue; }
        [ -x "$(dirname "$p")/../usr/bin/$b" ] && p=$(dirname "$p")/../usr/bin/$b
        ldd "$p" 2>&1 | grep 'not found' | sed "s|^|gpu_sc09.sh: $b: |"
    done
    echo "=== corpus ($(date -u +%H:%M:%S))"
    s=$(date +%s)
    bash data/audio/make_sc09.sh --out "$C" $CORPUS_OPTS --jobs "$(nproc)" --force || {
        echo "gpu_sc09.sh: the corpus could not be built"
        exit 1
    }
    echo "corpus: $(($(tail -n +2 "$C/manifest.tsv" | wc -l))) clips in $(($(date +%s) - s)) s; manifest sha256 $(sha256sum "$C/manifest.tsv" | cut -c1-16)"
fi
CLS=$W/cls.safetensors
# The training clips' view under the classifier is saved (REF_TSV) the first
# time they are read and read from there after (eval --save-reference: the
# same figures, about 20 s of GPU time an eval fewer). REFA: eval's
# reference arguments.
REF_TSV=$W/ref-train.tsv
ref_args() {
    if [ -s "$REF_TSV" ]; then REFA=(--reference "$REF_TSV")
    else REFA=(--reference "$C/train" --save-reference "$REF_TSV"); fi
}
# a results dir from another machine without its models: the stages that
# need them are skipped, and this says why
for f in classifier:cls lm-real:lm-real lm-complex:lm-complex; do
    if [ -s "$R/${f%%:*}.done" ] && [ ! -f "$W/${f#*:}.safetensors" ]; then
        echo "gpu_sc09.sh: ${f%%:*} is done in $R but $W/${f#*:}.safetensors is missing: carry its pieces (SC09_IMPORT) or delete $R/${f%%:*}.done to train it again"
    fi
done

# ---- the classifier: trained on train voices, validated on valid, scored on test ----
if stage classifier; then
    s=$(date +%s)
    rm -f "$REF_TSV" # another classifier's view
    "$AUD" classify train --device "$DEVICE" --precision "$PREC" --data "$C/train" --val-data "$C/valid" \
        --out "$CLS" --force --steps "$CL_STEPS" --batch "$CL_BATCH" --lr "$CL_LR" $CL_MODEL \
        --val-every $(((CL_STEPS + 5) / 6)) --log "$R/classifier.jsonl" | tee "$R/classifier.txt"
    r=${PIPESTATUS[0]}
    if [ "$r" -eq 0 ]; then
        "$AUD" classify predict --device "$DEVICE" --model "$CLS" --labelled "$C/test" >"$R/classifier_test.tsv" \
            2>"$R/classifier_test.txt"
        r=$?
        cat "$R/classifier_test.txt"
    fi
    finish classifier "$r" "$(grep -o 'accuracy [0-9.]*' "$R/classifier_test.txt" | head -1), $(($(date +%s) - s)) s"
fi

# ---- the real test set under the same classifier: what the samples aim at.
# Right after the classifier (about 25 s): session 24's run spent its
# device time on the LMs and never reached it when it came last ----
if [ -f "$CLS" ] && stage real-test; then
    ref_args
    "$AUD" eval --metrics --device "$DEVICE" --classifier "$CLS" --generated "$C/test" "${REFA[@]}" \
        --ndb-bins "$NDB_BINS" --json "$R/real-test-metrics.json" | tee "$R/real-test.txt"
    finish real-test "${PIPESTATUS[0]}" "$(head -1 "$R/real-test.txt")"
fi

# ---- SaShiMi-Mamba, S4D-Real and S4D-Lin ----
# the steps that fit in LM_SECONDS for INIT, from a 24-step run's rate (on
# stdout; its lines to the results' lm-INIT.txt)
lm_budget_steps() {
    local init=$1 log=$W/calib-$1.jsonl rate
    rm -f "$log"
    "$AUD" train --device "$DEVICE" --precision "$PREC" --data "$C/train" --out "$W/calib-$init.safetensors" \
        --force $LM_MODEL --init "$init" --seq-len 16000 --batch "$LM_BATCH" --steps 24 --val-windows 1 \
        --log "$log" >>"$R/lm-$init.txt" 2>&1 || { echo "gpu_sc09.sh: the calibration run of $init failed" >&2; return 1; }
    rate=$(grep -o '"samples_per_s": [0-9.]*' "$log" | tail -1 | cut -d' ' -f2)
    rm -f "$W/calib-$init".safetensors*
    awk -v s="$LM_SECONDS" -v r="$rate" -v b="$LM_BATCH" -v init="$init" 'BEGIN {
        n = int(s * r / (b * 16000)); if (n < 6) n = 6
        printf "lm-%s: %d steps fit in %d s at %.0f samples/s (24-step calibration)\n", init, n, s, r > "/dev/stderr"
        print n }' 2> >(tee -a "$R/lm-$init.txt" >&2)
}
for init in $LM_INITS; do
    M=$W/lm-$init.safetensors
    if stage "lm-$init"; then
        s=$(date +%s)
        # a run cut by a device call's time limit goes on from its newest
        # checkpoint at the next call (the machine keeps SC09_WORK while warm)
        start=--force
        compgen -G "$M.step-*" >/dev/null && start=--resume
        steps=$LM_STEPS r=0
        if [ "$LM_SECONDS" -gt 0 ]; then
            if [ -s "$R/lm-$init.steps" ]; then steps=$(cat "$R/lm-$init.steps")
            else
                steps=$(lm_budget_steps "$init") || r=1
                [ "$r" -eq 0 ] && echo "$steps" >"$R/lm-$init.steps"
            fi
        fi
        if [ "$r" -eq 0 ]; then
            "$AUD" train --device "$DEVICE" --precision "$PREC" --data "$C/train" --out "$M" $start \
                $LM_MODEL --init "$init" --seq-len 16000 --batch "$LM_BATCH" \
                --steps "$steps" --val-every $(((steps + 5) / 6)) --save-every $(((steps + 5) / 6)) --keep 8 \
                --log "$R/lm-$init.jsonl" | tee -a "$R/lm-$init.txt"
            r=${PIPESTATUS[0]}
        fi
        if [ "$r" -eq 0 ]; then
            "$AUD" eval --device "$DEVICE" --model "$M" --data "$C/test" --seq-len 16000 --batch "$EVAL_BATCH" | tee -a "$R/lm-$init.txt"
            r=${PIPESTATUS[0]}
        fi
        finish "lm-$init" "$r" "$(grep -o 'eval: [0-9.]* bits/sample' "$R/lm-$init.txt"), $(($(date +%s) - s)) s"
    fi
    if [ -f "$M" ] && [ -f "$CLS" ] && stage "gen-$init"; then
        s=$(date +%s)
        G=$W/gen-$init
        rm -rf "$G" && mkdir -p "$G"
        "$AUD" generate --device "$DEVICE" --model "$M" --n "$GEN_N" --seconds 1 --keep-band "$GEN_BAND" $GEN_OPTS \
            --out "$G/digit.wav" --scores "$R/gen-$init-scores.tsv" &&
            ref_args &&
            "$AUD" eval --metrics --device "$DEVICE" --classifier "$CLS" --generated "$G" "${REFA[@]}" \
                --ndb-bins "$NDB_BINS" --json "$R/gen-$init-metrics.json" | tee "$R/gen-$init.txt"
        finish "gen-$init" "${PIPESTATUS[0]}" "$(head -1 "$R/gen-$init.txt" 2>/dev/null), $(($(date +%s) - s)) s"
    fi
    # the metrics at each kept checkpoint (every sixth of the run), against
    # the validation voices: what more training buys
    if [ "$CURVE_N" -gt 0 ] && [ -f "$M" ] && [ -f "$CLS" ] && stage "curve-$init"; then
        s=$(date +%s)
        AUD=$AUD DEVICE=$DEVICE CURVE_N=$CURVE_N BAND=$GEN_BAND NDB_BINS=$NDB_BINS LOG=$R/lm-$init.jsonl GEN_OPTS=$GEN_OPTS \
            bash scripts/audio_curve.sh "$M" "$CLS" "$C/valid" "$R/curve-$init.tsv"
        finish "curve-$init" $? "$(($(wc -l <"$R/curve-$init.tsv") - 1)) checkpoints, $(($(date +%s) - s)) s"
    fi
done

{
    echo "| stage | result |"
    echo "|---|---|"
    for f in "$R"/*.done; do [ -f "$f" ] && echo "| $(basename "$f" .done) | $(cat "$f") |"; done
} >"$R/table.md"
cat "$R/table.md"
exit $rc
