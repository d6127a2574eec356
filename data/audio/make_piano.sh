#!/usr/bin/env bash
# Short piano pieces as 16 kHz mono 16-bit WAV: make_midi.py writes seeded
# random pieces in C major as standard MIDI files, fluidsynth renders them
# with the FluidR3 General MIDI soundfont, sox mixes to mono and scales each
# to a peak of -1 dBFS.
#
#   bash data/audio/make_piano.sh [--pieces N] [--seconds S] [--seed SEED] [--format wav|flac] [OUT_DIR]
#
# FLAC is about two thirds of WAV's size (what a set carried to a GPU
# machine needs: scripts/gpu_piano.sh's 28 pieces of 64 s are 40 MB).
#
# Defaults: 6 pieces of about 20 s, seed 1, into data/audio/out/piano
# (git-ignored). Needs python3, fluidsynth, fluid-soundfont-gm and sox
# (Debian: python3 fluidsynth fluid-soundfont-gm sox). SF2 overrides the
# soundfont path.
set -euo pipefail

pieces=6
seconds=20
seed=1
format=wav
out=""
while [ $# -gt 0 ]; do
    case "$1" in
    --pieces) pieces="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --format) format="$2"; shift 2 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    -*) echo "make_piano.sh: unknown option $1" >&2; exit 2 ;;
    *) out="$1"; shift ;;
    esac
done
case "$format" in wav | flac) ;; *) echo "make_piano.sh: --format is wav or flac" >&2; exit 2 ;; esac
here=$(dirname "$0")
[ -n "$out" ] || out="$here/out/piano"
sf2=${SF2:-/usr/share/sounds/sf2/FluidR3_GM.sf2}
for tool in python3 fluidsynth sox; do
    command -v "$tool" >/dev/null || { echo "make_piano.sh: $tool not found (Debian: apt-get install python3 fluidsynth fluid-soundfont-gm sox)" >&2; exit 1; }
done
[ -r "$sf2" ] || { echo "make_piano.sh: $sf2: soundfont not found (Debian: apt-get install fluid-soundfont-gm)" >&2; exit 1; }

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 "$here/make_midi.py" --out "$tmp" --pieces "$pieces" --seconds "$seconds" --seed "$seed"
for mid in "$tmp"/*.mid; do
    name=$(basename "$mid" .mid)
    # -n: no MIDI input, -i: no shell; -F renders to a file faster than real time
    fluidsynth -n -i -q -F "$tmp/$name.wav" -r 16000 "$sf2" "$mid" >/dev/null
    sox -D "$tmp/$name.wav" -r 16000 -c 1 -b 16 "$out/$name.$format" gain -n -1
done
echo "make_piano.sh: $pieces pieces in $out"
