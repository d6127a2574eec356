#!/usr/bin/env bash
# The long-context curve of issue 17 (the Mamba paper's YouTubeMix figure,
# on our piano renderer): the default U-Net trained on the piano pieces at
# contexts 2^13 .. 2^19 samples with the same samples seen in all (a fixed
# token budget: the batch halves as the context doubles), each scored in
# bits per sample on the held-out pieces at its own context and at 2^19.
#
#   bash data/audio/make_piano.sh --pieces 28 --seconds 64 --seed 1 --format flac   (here: 40 MB)
#   bash scripts/gpu_piano.sh [RESULTS_DIR]     (default ./piano-out, git-ignored)
#   on a lent machine: bash scripts/gpu_piano.sh; cp piano-out/rows.tsv $OUT/
#
# On a GPU machine the pieces come along as a carried path
# (carry "data/audio/out/piano" beside ".deps"). Needs a built mamba-audio
# (build-gpu, else build). A row already in RESULTS_DIR/rows.tsv is not run
# again. Settings (environment):
#   DEVICE=cuda PREC=tf32 CONTEXTS="13 14 15 16 17 18 19" (log2)
#   TOKENS=134217728 (samples a run) STEP_TOKENS=524288 (samples a step)
#   HELD_OUT=4 (the last pieces, by name, scored and never trained on)
#   MODEL="" (the default U-Net: d_model 64, 2 blocks a stage, pools 4,4)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=deps.sh
source scripts/deps.sh
deps_runtime
R=${1:-piano-out}
mkdir -p "$R"
D=data/audio/out/piano
[ -d "$D" ] || { echo "gpu_piano.sh: $D missing (data/audio/make_piano.sh, see above)" >&2; exit 1; }
AUD=build-gpu/apps/audio/mamba-audio
[ -x "$AUD" ] || AUD=build/apps/audio/mamba-audio
[ -x "$AUD" ] || { echo "gpu_piano.sh: no mamba-audio built" >&2; exit 1; }
DEVICE=${DEVICE:-cuda}
PREC=${PREC:-tf32}
CONTEXTS=${CONTEXTS:-13 14 15 16 17 18 19}
TOKENS=${TOKENS:-134217728}
STEP_TOKENS=${STEP_TOKENS:-524288}
HELD_OUT=${HELD_OUT:-4}
MODEL=${MODEL:-}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
# the split: the last HELD_OUT pieces in name order are held out
mkdir -p "$W/train" "$W/val"
n=$(ls "$D" | wc -l)
i=0
for f in $(ls "$D" | LC_ALL=C sort); do
    if [ $i -lt $((n - HELD_OUT)) ]; then ln -s "$PWD/$D/$f" "$W/train/$f"; else ln -s "$PWD/$D/$f" "$W/val/$f"; fi
    i=$((i + 1))
done
echo "piano: $((n - HELD_OUT)) pieces train, $HELD_OUT held out: $(ls "$W/val" | tr '\n' ' ')"
rows=$R/rows.tsv
[ -f "$rows" ] || printf 'log2_context\tbatch\tsteps\tval_bits_own\tval_bits_2^19\tseconds\n' >"$rows"
rc=0
for c in $CONTEXTS; do
    if awk -v c="$c" '$1 == c { f = 1 } END { exit !f }' "$rows"; then echo "=== 2^$c: done before"; continue; fi
    L=$((1 << c))
    B=$((STEP_TOKENS / L)); [ "$B" -ge 1 ] || B=1
    S=$((TOKENS / (B * L))); [ "$S" -ge 1 ] || S=1
    M=$W/piano-$c.safetensors
    echo "=== context 2^$c: batch $B, $S steps ($(date -u +%H:%M:%S))"
    s=$(date +%s)
    # shellcheck disable=SC2086
    "$AUD" train --device "$DEVICE" --precision "$PREC" --data "$W/train" --val-frac 0 $MODEL --seq-len "$L" \
        --batch "$B" --steps "$S" --out "$M" --log "$R/train-$c.jsonl" || { rc=1; continue; }
    own=$("$AUD" eval --device "$DEVICE" --model "$M" --data "$W/val" --seq-len "$L" | sed -n 's/^eval: \([0-9.]*\) .*/\1/p')
    long=$("$AUD" eval --device "$DEVICE" --model "$M" --data "$W/val" --seq-len 524288 --batch 1 |
        sed -n 's/^eval: \([0-9.]*\) .*/\1/p')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$c" "$B" "$S" "${own:-NA}" "${long:-NA}" $(($(date +%s) - s)) | tee -a "$rows"
    [ -n "$own" ] && [ -n "$long" ] || rc=1
done
column -t "$rows" 2>/dev/null || cat "$rows"
exit $rc
