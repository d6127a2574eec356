#!/usr/bin/env bash
# scripts/audio_curve.sh on a tiny run: a 1 kHz classifier and a 1 kHz U-Net
# trained a few steps on the bundled digits, two checkpoints scored. Checks
# one row a checkpoint with every column filled (the metrics line parsed, the
# held-out bits found in the --log), a rerun that adds nothing, and a clear
# failure without a classifier.
#   bash tests/audio_curve_script.sh MAMBA_AUDIO PROJECT_DIR
set -uo pipefail
AUD=$1 ROOT=$2
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
for f in "$ROOT"/data/audio/digits/*.flac; do
    b=$(basename "$f")
    mkdir -p "$t/cls/${b%%_*}"
    ln -s "$f" "$t/cls/${b%%_*}/$b"
done
"$AUD" classify train --data "$t/cls" --out "$t/c.st" --rate 1000 --seq-len 992 --d-model 8 --n-layer 1 \
    --steps 2 --batch 4 --threads 1 >"$t/log" 2>&1 || { cat "$t/log"; fail "classify train"; }
"$AUD" train --data "$ROOT/data/audio/digits" --out "$t/m.st" --rate 1000 --seq-len 256 --d-model 8 --n-layer 1 \
    --steps 4 --batch 2 --val-every 2 --val-windows 2 --save-every 2 --threads 1 --log "$t/m.jsonl" \
    >"$t/log" 2>&1 || { cat "$t/log"; fail "train"; }
run() { AUD=$AUD CURVE_N=10 SECONDS_=0.2 NDB_BINS=2 LOG=$t/m.jsonl bash "$ROOT/scripts/audio_curve.sh" "$@"; }
run "$t/m.st" "$t/c.st" "$t/cls" "$t/curve.tsv" >"$t/out" 2>&1 || { cat "$t/out"; fail "audio_curve.sh"; }
cat "$t/curve.tsv"
[ "$(wc -l <"$t/curve.tsv")" -eq 3 ] || fail "expected a header and 2 rows"
[ "$(cut -f1 "$t/curve.tsv" | tail -n +2 | tr '\n' ' ')" = "2 4 " ] || fail "steps are not 2 and 4"
tail -n +2 "$t/curve.tsv" | while IFS=$'\t' read -r s vb fid is mis am ndb kept secs; do
    for v in "$vb" "$fid" "$is" "$mis" "$am" "$ndb"; do
        [[ "$v" =~ ^[0-9]+\.[0-9]+$ ]] || fail "step $s: '$v' is not a number"
    done
    # IS and mIS are at least 1 by definition; the band keeps 8 of 10 draws (ranks 1..8)
    awk -v a="$is" -v b="$mis" 'BEGIN { exit !(a >= 1 && b >= 1) }' || fail "step $s: IS $is mIS $mis below 1"
    [ "$kept" -eq 8 ] || fail "step $s: $kept clips kept, expected 8"
    want=$(grep "\"step\": $s," "$t/m.jsonl" | grep -o '"val_bits": [0-9.]*' | tail -1 | cut -d' ' -f2)
    [ "$vb" = "$want" ] || fail "step $s: val_bits $vb, the log says $want"
done || exit 1
cp "$t/curve.tsv" "$t/before"
run "$t/m.st" "$t/c.st" "$t/cls" "$t/curve.tsv" >"$t/out" 2>&1 || fail "rerun"
cmp -s "$t/before" "$t/curve.tsv" || fail "a rerun changed the table"
grep -q "step 4: in .* already" "$t/out" || fail "a rerun did not say the steps were done"
run "$t/m.st" "$t/none.st" "$t/cls" "$t/x.tsv" >"$t/out" 2>&1
[ $? -eq 1 ] && grep -q "none.st: not found" "$t/out" || fail "a missing classifier is not an error naming it"
echo "audio_curve.sh: ok"
