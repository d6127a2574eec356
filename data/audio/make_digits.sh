#!/usr/bin/env bash
# Spoken digits "zero" to "nine" in many voices, speeds and pitches, like the
# SC09 set of SaShiMi's experiments, synthesized with espeak-ng and written
# as 16 kHz mono 16-bit WAV (or FLAC).
#
#   bash data/audio/make_digits.sh [--variants N] [--format wav|flac] [OUT_DIR]
#
# N variants of each digit (default 20: 200 clips), into OUT_DIR (default
# data/audio/out/digits, git-ignored). Variant k speaks with voice
# VOICES[k mod 8], speed SPEEDS[k mod 5] words/min and pitch PITCHES[k mod 7]:
# the three lengths are pairwise coprime, so the first 280 variants are all
# different combinations. The output is the same on every run (espeak-ng is
# deterministic, sox runs without dither, -D).
#
# Each clip: espeak-ng's 22.05 kHz WAV, silence trimmed at both ends (below
# 0.5% of full scale), 50 ms of silence put back on each side, resampled to
# 16 kHz mono. Needs espeak-ng and sox (Debian: espeak-ng sox).
#
# The committed quick-start set data/audio/digits/ (40 FLAC clips) is
#   bash data/audio/make_digits.sh --variants 4 --format flac data/audio/digits
set -euo pipefail

variants=20
format=wav
out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --variants) variants="$2"; shift 2 ;;
    --format) format="$2"; shift 2 ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "make_digits.sh: unknown option $1" >&2; exit 2 ;;
    *) out="$1"; shift ;;
    esac
done
case "$variants" in '' | *[!0-9]*) echo "make_digits.sh: --variants expects a number" >&2; exit 2 ;; esac
case "$format" in wav | flac) ;; *) echo "make_digits.sh: --format is wav or flac" >&2; exit 2 ;; esac
[ -n "$out" ] || out="$(dirname "$0")/out/digits"
for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "make_digits.sh: $tool not found (Debian: apt-get install espeak-ng sox)" >&2; exit 1; }
done

VOICES=(en-us en-gb en-us+f3 en-gb+m3 en-029 en-gb-scotland+f2 en-us+m7 en-gb-x-rp+f4)
SPEEDS=(120 140 160 180 200)
PITCHES=(30 40 50 60 70 80 90)
WORDS=(zero one two three four five six seven eight nine)

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

n=0
for ((k = 0; k < variants; k++)); do
    v=${VOICES[k % ${#VOICES[@]}]}
    s=${SPEEDS[k % ${#SPEEDS[@]}]}
    p=${PITCHES[k % ${#PITCHES[@]}]}
    for w in "${WORDS[@]}"; do
        name=$(printf '%s_v%03d_%s_s%d_p%d.%s' "$w" "$k" "$v" "$s" "$p" "$format")
        espeak-ng -v "$v" -s "$s" -p "$p" -w "$tmp/raw.wav" "$w"
        # trim the start, reverse, trim the (old) end, reverse back; then pad
        sox -D "$tmp/raw.wav" -r 16000 -c 1 -b 16 "$out/$name" \
            silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse pad 0.05 0.05
        n=$((n + 1))
    done
done
echo "make_digits.sh: $n clips in $out"
