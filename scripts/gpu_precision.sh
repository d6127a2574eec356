#!/usr/bin/env bash
# bf16 against fp32 on a GPU, judged by held-out loss: the DNA model's
# 8k-context pretrain of scripts/gpu_dna.sh (d_model 256, 8 layers, batch 16,
# the training strains, validated on the held-out strains) once per
# precision, with the same seed, data, steps and validations. Prints each
# validation (step, held-out bits/base) side by side and each run's time;
# the precision issue asks bf16 to end within 0.01 bits/base of fp32.
# Needs data/genomes/out (data/genomes/make_genomes.sh, carried) and a CUDA
# build (scripts/gpu_check.sh build). From the repository root:
#
#   bash scripts/gpu_precision.sh [STEPS [PRECISIONS [BUILD_DIR]]]
#
# STEPS default 400 (validation every STEPS/4), PRECISIONS default
# "fp32 bf16" (tf32 also accepted). Logs: $OUT/precision_<P>.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
STEPS=${1:-400}
PRECS=${2:-fp32 bf16}
B=${3:-build-gpu}
OUT=${OUT:-$PWD/gpu-check-out}
G=data/genomes/out
DNA=$B/apps/genomics/mamba-dna
mkdir -p "$OUT"
[ -x "$DNA" ] || { echo "gpu_precision: $DNA not built"; exit 1; }
[ -f "$G/manifest.tsv" ] || { echo "gpu_precision: $G/manifest.tsv missing: run data/genomes/make_genomes.sh and carry $G"; exit 1; }
files() { awk -F'\t' -v r="$1" '$4 == r { print "'"$G"'/" $3 }' "$G/manifest.tsv" | tr '\n' ' '; }
TRAIN=$(files pretrain-train)
VALARGS=$(for f in $(files pretrain-val); do printf -- '--val %s ' "$f"; done)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
rc=0
for p in $PRECS; do
    log=$OUT/precision_$p.jsonl
    rm -f "$log"
    t0=$SECONDS
    # shellcheck disable=SC2086
    "$DNA" pretrain --device cuda --precision "$p" --d-model 256 --n-layer 8 --seq-len 8192 --batch 16 \
        --steps "$STEPS" --val-every $((STEPS / 4)) --val-tokens 1M --lr 2e-3 --seed 7 --select last \
        --out "$W/m_$p.safetensors" --log "$log" $VALARGS $TRAIN 2>"$W/err_$p" | tail -1
    r=${PIPESTATUS[0]}
    echo "=== $p: exit $r in $((SECONDS - t0)) s"
    [ "$r" -eq 0 ] || { rc=1; tail -3 "$W/err_$p"; }
done
echo
echo "held-out bits/base at each validation (step: one column per precision)"
for p in $PRECS; do
    # the validation records: step and val_bpb of each line that has one
    sed -n '/"event"/d; s/.*"step": \([0-9]*\).*"val_bpb": \([0-9.]*\).*/\1 \2/p' "$OUT/precision_$p.jsonl" >"$W/v_$p"
done
first=$(echo "$PRECS" | awk '{print $1}')
paste $(for p in $PRECS; do echo "$W/v_$p"; done) | awk -v h="$PRECS" 'BEGIN { n = split(h, P, " "); printf "| step |"; for (i = 1; i <= n; i++) printf " %s |", P[i]; printf " %s - %s |\n", P[n], P[1] }
    { printf "| %s |", $1; for (i = 1; i <= n; i++) printf " %.4f |", $(2 * i); printf " %+.4f |\n", $(2 * n) - $2 }'
[ -s "$W/v_$first" ] || rc=1
exit $rc
