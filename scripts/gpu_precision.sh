#!/usr/bin/env bash
# bf16 against fp32 on a GPU, judged by held-out loss: one training run per
# precision with the same seed, data, steps and validations, each validation
# (step, held-out bits) printed side by side with each run's time; the
# precision issue asks bf16 to end within 0.01 of fp32.
#   dna    the DNA model's 8k-context pretrain of scripts/gpu_dna.sh (d_model
#          256, 8 layers, batch 16, the training strains, validated in
#          bits/base on the held-out strains); needs data/genomes/out
#          (data/genomes/make_genomes.sh, carried)
#   audio  the digits U-Net of scripts/gpu_audio.sh (mamba-audio defaults,
#          batch 16 x 8192 samples, validated in bits/sample on the held-out
#          clips of data/audio/digits)
# Needs a CUDA build (scripts/gpu_check.sh build). From the repository root:
#
#   bash scripts/gpu_precision.sh [dna|audio [STEPS [PRECISIONS [BUILD_DIR]]]]
#
# Default dna, STEPS 400 (validation every STEPS/4), PRECISIONS "fp32 bf16"
# (tf32 also accepted). Logs: $OUT/precision_<model>_<P>.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=deps.sh
source scripts/deps.sh
deps_runtime
WHAT=${1:-dna}
STEPS=${2:-400}
PRECS=${3:-fp32 bf16}
B=${4:-build-gpu}
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
case "$WHAT" in
dna)
    G=data/genomes/out
    TOOL=$B/apps/genomics/mamba-dna
    KEY=val_bpb
    [ -f "$G/manifest.tsv" ] || { echo "gpu_precision: $G/manifest.tsv missing: run data/genomes/make_genomes.sh and carry $G"; exit 1; }
    files() { awk -F'\t' -v r="$1" '$4 == r { print "'"$G"'/" $3 }' "$G/manifest.tsv" | tr '\n' ' '; }
    VALARGS=$(for f in $(files pretrain-val); do printf -- '--val %s ' "$f"; done)
    # shellcheck disable=SC2206
    ARGS=(pretrain --d-model 256 --n-layer 8 --seq-len 8192 --batch 16 --val-tokens 1M --lr 2e-3 $VALARGS
        $(files pretrain-train))
    ;;
audio)
    TOOL=$B/apps/audio/mamba-audio
    KEY=val_bits
    ARGS=(train --data data/audio/digits --seq-len 8192 --batch 16 --lr 2e-3)
    ;;
*)
    echo "usage: $0 [dna|audio [STEPS [PRECISIONS [BUILD_DIR]]]]" >&2
    exit 2
    ;;
esac
[ -x "$TOOL" ] || { echo "gpu_precision: $TOOL not built"; exit 1; }
rc=0
for p in $PRECS; do
    log=$OUT/precision_${WHAT}_$p.jsonl
    rm -f "$log"
    t0=$SECONDS
    "$TOOL" "${ARGS[@]}" --device cuda --precision "$p" --steps "$STEPS" --val-every $((STEPS / 4)) --seed 7 \
        --select last --out "$W/m_$p.safetensors" --log "$log" 2>"$W/err_$p" | tail -1
    r=${PIPESTATUS[0]}
    echo "=== $WHAT $p: exit $r in $((SECONDS - t0)) s"
    [ "$r" -eq 0 ] || { rc=1; tail -3 "$W/err_$p"; }
    # the validation records: step and the held-out figure of each line that has one
    sed -n '/"event"/d; s/.*"step": \([0-9]*\).*"'"$KEY"'": \([0-9.]*\).*/\1 \2/p' "$log" >"$W/v_$p" 2>/dev/null
    [ -s "$W/v_$p" ] || rc=1
done
echo
echo "$WHAT: held-out $KEY at each validation (one column per precision)"
# shellcheck disable=SC2046
paste $(for p in $PRECS; do echo "$W/v_$p"; done) | awk -v h="$PRECS" '
    BEGIN { n = split(h, P, " "); printf "| step |"; for (i = 1; i <= n; i++) printf " %s |", P[i]; printf " %s - %s |\n", P[n], P[1] }
    { printf "| %s |", $1; for (i = 1; i <= n; i++) printf " %.4f |", $(2 * i); printf " %+.4f |\n", $(2 * n) - $2 }'
exit $rc
