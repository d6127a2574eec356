#!/usr/bin/env bash
# Generated audio judged by a classifier along a training run: for every
# checkpoint MODEL.step-N that `mamba-audio train --save-every` kept, draw
# clips (with SaShiMi's likelihood rejection) and score them with
# `mamba-audio eval --metrics`, one TSV row a checkpoint. This is the curve
# of issue 17 (FID, IS, mIS, AM and NDB against training steps) for when a
# budget does not reach the targets.
#
#   bash scripts/audio_curve.sh MODEL CLASSIFIER REFERENCE OUT.tsv
#
# REFERENCE: a folder of real clips, or a .tsv that eval --save-reference
# wrote (a folder is read once, then its saved view).
#
# A step already in OUT.tsv is not scored again. Settings (environment):
#   AUD=mamba-audio binary (build-gpu's, else build's)  DEVICE=cpu
#   CURVE_N=160 draws a checkpoint  BAND=0.1,0.9 (the kept likelihood band)
#   SECONDS_=1 (clip length)  NDB_BINS=50  SEED=1
#   GEN_OPTS=""  more generate options (e.g. "--temperature 0.9")
#   LOG=MODEL's --log JSON lines, for the held-out bits/sample at each step
set -uo pipefail
[ $# -eq 4 ] || { sed -n '2,16p' "$0" >&2; exit 2; }
M=$1 CLS=$2 REF=$3 TSV=$4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AUD=${AUD:-$ROOT/build-gpu/apps/audio/mamba-audio}
[ -x "$AUD" ] || AUD=$ROOT/build/apps/audio/mamba-audio
[ -x "$AUD" ] || { echo "audio_curve.sh: no mamba-audio built" >&2; exit 1; }
DEVICE=${DEVICE:-cpu}
CURVE_N=${CURVE_N:-160}
BAND=${BAND:-0.1,0.9}
SECONDS_=${SECONDS_:-1}
NDB_BINS=${NDB_BINS:-50}
SEED=${SEED:-1}
GEN_OPTS=${GEN_OPTS:-}
LOG=${LOG:-}
for f in "$CLS" "$REF"; do [ -e "$f" ] || { echo "audio_curve.sh: $f: not found" >&2; exit 1; }; done
steps=$(for c in "$M".step-*; do
    s=${c##*.step-}
    case "$s" in '' | *[!0-9]*) ;; *) echo "$s" ;; esac
done | sort -n)
[ -n "$steps" ] || { echo "audio_curve.sh: no checkpoint $M.step-N" >&2; exit 1; }
[ -s "$TSV" ] || printf 'step\tval_bits\tFID\tIS\tmIS\tAM\tNDB\tkept\tseconds\n' >"$TSV"
G=$(mktemp -d)
trap 'rm -rf "$G"' EXIT
rc=0
for s in $steps; do
    if cut -f1 "$TSV" | grep -qx "$s"; then echo "step $s: in $TSV already"; continue; fi
    t0=$(date +%s)
    rm -rf "$G/gen" && mkdir -p "$G/gen"
    if ! "$AUD" generate --device "$DEVICE" --model "$M.step-$s" --n "$CURVE_N" --seconds "$SECONDS_" \
        --keep-band "$BAND" --seed "$SEED" $GEN_OPTS --out "$G/gen/clip.wav" --scores "$G/scores.tsv" >"$G/gen.txt" 2>&1; then
        echo "audio_curve.sh: step $s: generate failed: $(tail -1 "$G/gen.txt")" >&2
        rc=1
        continue
    fi
    # the reference is read through the classifier once; later checkpoints
    # read its saved view (the same figures: eval --save-reference)
    refargs=(--reference "$REF")
    case "$REF" in *.tsv) ;; *) if [ -s "$G/ref.tsv" ]; then refargs=(--reference "$G/ref.tsv")
        else refargs+=(--save-reference "$G/ref.tsv"); fi ;; esac
    if ! "$AUD" eval --metrics --device "$DEVICE" --classifier "$CLS" --generated "$G/gen" "${refargs[@]}" \
        --ndb-bins "$NDB_BINS" >"$G/eval.txt" 2>&1; then
        echo "audio_curve.sh: step $s: eval failed: $(tail -1 "$G/eval.txt")" >&2
        rc=1
        continue
    fi
    # "metrics: FID a  IS b  mIS c  AM d  NDB e  (...)"
    read -r fid is mis am ndb < <(sed -n 's/^metrics: FID \([^ ]*\)  IS \([^ ]*\)  mIS \([^ ]*\)  AM \([^ ]*\)  NDB \([^ ]*\) .*/\1 \2 \3 \4 \5/p' "$G/eval.txt")
    if [ -z "${ndb:-}" ]; then
        echo "audio_curve.sh: step $s: no metrics line in eval's output" >&2
        rc=1
        continue
    fi
    vb=-
    if [ -n "$LOG" ] && [ -f "$LOG" ]; then
        vb=$(grep "\"step\": $s," "$LOG" | grep -o '"val_bits": [0-9.]*' | tail -1 | cut -d' ' -f2)
        [ -n "$vb" ] || vb=-
    fi
    kept=$(find "$G/gen" -name '*.wav' | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$vb" "$fid" "$is" "$mis" "$am" "$ndb" "$kept" \
        "$(($(date +%s) - t0))" >>"$TSV"
    echo "step $s: val $vb bits/sample, FID $fid IS $is mIS $mis AM $am NDB $ndb ($kept clips)"
done
exit $rc
