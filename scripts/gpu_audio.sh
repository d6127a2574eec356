#!/usr/bin/env bash
# mamba-audio on a GPU: the runs behind the figures of the mamba-audio issue,
# on the bundled spoken digits (data/audio/digits). From the repository root,
# after a CUDA build (default build-gpu, as scripts/gpu_check.sh makes it):
#
#   bash scripts/gpu_audio.sh [BUILD_DIR]
#
# 1. bench_audio --device cuda: training samples/s, generation samples/s and
#    real-time factor at batch 1 and 64
# 2. mamba-audio train on the digits (held-out clips against the unigram)
# 3. mamba-audio generate: 8 clips of 1 s, 64 of 10 s, one continuing a
#    recording (--prompt), then eval
# Output on stdout/stderr; metrics in $OUT/audio_metrics.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
B=${1:-build-gpu}
OUT=${OUT:-$PWD/gpu-check-out}
AUD=$B/apps/audio/mamba-audio
mkdir -p "$OUT"
W=$(mktemp -d)
rc=0
run() {
    echo "=== $*"
    local t0=$SECONDS
    "$@"
    local r=$?
    echo "=== exit $r in $((SECONDS - t0))s"
    [ $r -eq 0 ] || rc=1
}
run "$B/bench/bench_audio" --device cuda
if [ -x "$AUD" ]; then
    run "$AUD" train --device cuda --data data/audio/digits --seq-len 8192 --batch 16 --steps 400 \
        --val-every 100 --lr 2e-3 --out "$W/digits.safetensors" --log "$OUT/audio_metrics.jsonl"
    run "$AUD" generate --device cuda --model "$W/digits.safetensors" --n 8 --seconds 1 --out "$W/gen.wav"
    # 64 clips of 10 s, then one continuing a recording (steps through the prompt, then draws)
    run "$AUD" generate --device cuda --model "$W/digits.safetensors" --n 64 --seconds 10 --out "$W/gen64.wav"
    run "$AUD" generate --device cuda --model "$W/digits.safetensors" --seconds 2 --top-p 0.95 \
        --prompt "$(ls data/audio/digits/*.flac | head -1)" --out "$W/cont.wav"
    run "$AUD" eval --device cuda --model "$W/digits.safetensors" --data data/audio/digits
else
    echo "gpu_audio: $AUD not built (libsndfile/libsamplerate missing?)"
    rc=1
fi
rm -rf "$W"
exit $rc
