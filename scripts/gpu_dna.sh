#!/usr/bin/env bash
# mamba-dna on a GPU: the runs behind the figures of the mamba-dna issue.
# Needs the genome set of data/genomes/make_genomes.sh (data/genomes/out,
# carried to the GPU machine) and a CUDA build (default build-gpu, as
# scripts/gpu_check.sh makes it). From the repository root:
#
#   bash scripts/gpu_dna.sh [BUILD_DIR]
#
# 1. pretrain at --seq-len 1M with the d_model 256, 8-layer model (batch 1,
#    a few steps: it runs, its tokens/s and memory)
# 2. pretrain at 8k context on the training strains, validated on the
#    held-out strains against order-0 and order-5 baselines
# 3. score the held-out strains with that model
# 4. classify: the 4-species task on 16 kbp windows, whole strains held out
# Output on stdout/stderr; the runs' JSON-lines metrics in $OUT/dna_metrics.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
B=${1:-build-gpu}
OUT=${OUT:-$PWD/gpu-check-out}
G=data/genomes/out
DNA=$B/apps/genomics/mamba-dna
mkdir -p "$OUT"
[ -x "$DNA" ] || { echo "gpu_dna: $DNA not built (htslib missing?)"; exit 1; }
[ -f "$G/manifest.tsv" ] || { echo "gpu_dna: $G/manifest.tsv missing: run data/genomes/make_genomes.sh and carry $G"; exit 1; }
files() { awk -F'\t' -v r="$1" '$4 == r { print "'"$G"'/" $3 }' "$G/manifest.tsv" | tr '\n' ' '; }
TRAIN=$(files pretrain-train)
VAL=$(files pretrain-val)
VALARGS=$(for f in $VAL; do printf -- '--val %s ' "$f"; done)
W=$(mktemp -d)
rc=0
run() { # name, command...
    local name=$1
    shift
    echo "=== $name: $*"
    local t0=$SECONDS
    "$@"
    local r=$?
    echo "=== $name: exit $r in $((SECONDS - t0))s"
    [ $r -eq 0 ] || rc=1
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
# shellcheck disable=SC2086
run pretrain_1M "$DNA" pretrain --device cuda --d-model 256 --n-layer 8 --seq-len 1M --batch 1 \
    --steps 8 --val-every 8 --val-tokens 1M --lr 1e-3 --out "$W/m1M.safetensors" \
    --log "$OUT/dna_metrics.jsonl" $VALARGS $TRAIN
nvidia-smi --query-gpu=memory.used --format=csv,noheader
# shellcheck disable=SC2086
run pretrain_8k "$DNA" pretrain --device cuda --d-model 256 --n-layer 8 --seq-len 8192 --batch 16 \
    --steps 400 --val-every 100 --val-tokens 1M --lr 2e-3 --out "$W/m8k.safetensors" \
    --log "$OUT/dna_metrics.jsonl" $VALARGS $TRAIN
# shellcheck disable=SC2086
run score "$DNA" score --device cuda --model "$W/m8k.safetensors" $(for f in $VAL; do printf -- '--fasta %s ' "$f"; done)
CLS=$(bash data/genomes/make_classify.sh --args 2>/dev/null)
if [ -n "$CLS" ]; then
    # shellcheck disable=SC2086
    run classify "$DNA" classify train --device cuda --model "$W/m8k.safetensors" --out "$W/cls.safetensors" \
        --seq-len 16384 --batch 8 --steps 300 --lr 5e-4 --log "$OUT/dna_metrics.jsonl" $CLS
else
    echo "=== classify: data/genomes/make_classify.sh --args gave nothing"
    rc=1
fi
rm -rf "$W"
exit $rc
