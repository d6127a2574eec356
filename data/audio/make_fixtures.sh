#!/usr/bin/env bash
# Rewrites the tiny audio fixtures of tests/test_audio_io.c (data/audio/fixtures/).
# Needs sox (Debian: sox; its libsox-fmt-base writes FLAC and Ogg Vorbis,
# libsox-fmt-mp3 MP3). The build and the tests never run it. sox runs in its default repeatable mode and without
# dither (-D), so WAV and FLAC come out the same on every run; Ogg streams
# carry a random serial number, so tone660_48k.ogg differs byte-wise (not in sound).
set -euo pipefail
cd "$(dirname "$0")/fixtures"
mkdir -p good bad

# The resampling test's input: stereo, 44.1 kHz, 16-bit, a 440 Hz sine at
# amplitude 0.5 on both channels for 0.25 s (11025 frames, RMS 0.3536).
sox -D -n -r 44100 -c 2 -b 16 good/sine440_44k_stereo.wav synth 0.25 sine 440 vol 0.5
# FLAC: mono, 22.05 kHz, a 1 kHz sine at 0.5 for 0.3 s.
sox -D -n -r 22050 -c 1 -b 16 good/tone1k_22k.flac synth 0.3 sine 1000 vol 0.5
# Ogg Vorbis: mono, 48 kHz, a 660 Hz sine at 0.5 for 0.3 s.
sox -D -n -r 48000 -c 1 good/tone660_48k.ogg synth 0.3 sine 660 vol 0.5
# MP3 (needs libsox-fmt-mp3): mono, 44.1 kHz, a 440 Hz sine at 0.5 for 0.3 s. An MP3
# header has no frame count: libsndfile estimates one from the file's size (15042
# here), and mpg123 decodes 14976 frames, all of the stream (LAME's delay and
# padding included): a complete file whose count is an estimate, not a cut one.
sox -D -n -r 44100 -c 1 good/tone440_44k.mp3 synth 0.3 sine 440 vol 0.5

# Not audio: text under an audio name.
printf 'This is a text file, not a WAV.\n' > bad/notaudio.wav
# Truncated: a WAV whose data chunk says 0.5 s (8000 frames of 16-bit mono at
# 16 kHz) but whose file ends after the first 1000 frames.
tmp=$(mktemp --suffix=.wav)
trap 'rm -f "$tmp"' EXIT
sox -D -n -r 16000 -c 1 -b 16 "$tmp" synth 0.5 sine 300 vol 0.5
head -c $((44 + 2000)) "$tmp" > bad/truncated.wav
ls -l good bad
