#!/usr/bin/env bash
# The strain benchmark's model rows (issue 16, item 5): which of a species'
# 5 strains a window comes from, for classifiers fine-tuned from three
# backbones (the causal LM; the bidirectional model; the bidirectional,
# RC-equivariant one) at several window lengths, windows of the held-out
# blocks of data/genomes/make_strains.sh only. Beside the k-mer baseline of
# scripts/strain_kmer_baseline.py.
#
#   bash scripts/gpu_strains.sh [RESULTS_DIR]        (default: ./strains-out)
#
# Needs data/genomes/out/strains (make_strains.sh) and a built mamba-dna
# (build-gpu, else build). Each backbone is pretrained once per species on
# its strains' training parts; each (species, backbone, context) classifier
# is trained with the same tokens a step at every context (the batch halves
# as the window doubles) and scored on the held-out windows. A row already
# in RESULTS_DIR/rows.tsv is not run again, so the table can be filled over
# several runs (a lent GPU's time is short); RESULTS_DIR/table.md is the
# table so far. With $OUT set (a lent machine, which returns at most 8 files
# from $OUT) the working files stay in RESULTS_DIR and $OUT/strains gets three:
# rows.tsv, table.md and logs.tgz (every log); carry RESULTS_DIR to the next
# call to go on where this one stopped. Settings (environment):
#   SPECIES="saureus hpylori"   BACKBONES="lm bidir bidir_rc"
#   CONTEXTS="10 12 14 16 18 20" (log2 of the window)
#   DEVICE=cuda  PREC=tf32  D_MODEL=128  N_LAYER=4
#   PT_LEN=16384 PT_BATCH=8 PT_STEPS=400   (pretraining)
#   TOKENS=1048576 CL_STEPS=150 VAL_WINDOWS=16  (classifiers: tokens a step)
#   BUDGET_S=0  stop starting new rows after this many seconds (0: no limit)
#   STRAINS_DIR=data/genomes/out/strains  DNA_BIN=build-gpu/... (else build/...)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=deps.sh
source scripts/deps.sh
deps_runtime
R=${1:-strains-out}
mkdir -p "$R"
S=${STRAINS_DIR:-data/genomes/out/strains}
[ -f "$S/strains.tsv" ] || { echo "gpu_strains.sh: $S/strains.tsv missing (run data/genomes/make_strains.sh)" >&2; exit 1; }
DNA=${DNA_BIN:-build-gpu/apps/genomics/mamba-dna}
[ -x "$DNA" ] || DNA=build/apps/genomics/mamba-dna
[ -x "$DNA" ] || { echo "gpu_strains.sh: no mamba-dna built" >&2; exit 1; }
SPECIES=${SPECIES:-saureus hpylori}
BACKBONES=${BACKBONES:-lm bidir bidir_rc}
CONTEXTS=${CONTEXTS:-10 12 14 16 18 20}
DEVICE=${DEVICE:-cuda}
PREC=${PREC:-tf32}
D_MODEL=${D_MODEL:-128}
N_LAYER=${N_LAYER:-4}
PT_LEN=${PT_LEN:-16384}
PT_BATCH=${PT_BATCH:-8}
PT_STEPS=${PT_STEPS:-400}
TOKENS=${TOKENS:-1048576}
CL_STEPS=${CL_STEPS:-150}
VAL_WINDOWS=${VAL_WINDOWS:-16}
BUDGET_S=${BUDGET_S:-0}
t0=$(date +%s)
rows="$R/rows.tsv"
[ -f "$rows" ] || printf 'species\tbackbone\tlog2_window\twindows\taccuracy\tseconds\n' >"$rows"

objective() {
    case $1 in
    lm) echo "--objective clm" ;;
    bidir) echo "--objective mlm" ;;
    bidir_rc) echo "--objective mlm --rc-equivariant" ;;
    *) return 1 ;;
    esac
}
have_row() { awk -F'\t' -v sp="$1" -v bk="$2" -v k="$3" '$1 == sp && $2 == bk && $3 == k { f = 1 } END { exit !f }' "$rows"; }
out_of_time() { [ "$BUDGET_S" -gt 0 ] && [ $(($(date +%s) - t0)) -ge "$BUDGET_S" ]; }

for sp in $SPECIES; do
    # the class arguments from strains.tsv (paths relative to this tree)
    train=$(awk -F'\t' -v sp="$sp" -v d="$S" '$1 == sp && $3 == "train" { printf "%s/%s ", d, $4 }' "$S/strains.tsv")
    cls=$(awk -F'\t' -v sp="$sp" -v d="$S" '$1 == sp { printf "--%s %s=%s/%s ", ($3 == "train" ? "class" : "val-class"), $2, d, $4 }' "$S/strains.tsv")
    [ -n "$train" ] || { echo "gpu_strains.sh: no strains of $sp in $S/strains.tsv" >&2; exit 1; }
    for bk in $BACKBONES; do
        obj=$(objective "$bk") || { echo "gpu_strains.sh: unknown backbone $bk" >&2; exit 1; }
        pre="$R/pre_${sp}_$bk.safetensors"
        todo=0
        for k in $CONTEXTS; do have_row "$sp" "$bk" "$k" || todo=1; done
        [ $todo = 1 ] || continue
        if [ ! -f "$pre" ]; then
            out_of_time && break 2
            echo "== pretrain $sp $bk ($(date +%T))"
            # shellcheck disable=SC2086
            "$DNA" pretrain --device "$DEVICE" --precision "$PREC" $obj --d-model "$D_MODEL" --n-layer "$N_LAYER" \
                --seq-len "$PT_LEN" --batch "$PT_BATCH" --steps "$PT_STEPS" --val-frac 0.02 --val-every "$PT_STEPS" \
                --select last --force --out "$pre" $train >"$R/pre_${sp}_$bk.log" 2>&1 ||
                { echo "pretrain $sp $bk failed:"; tail -3 "$R/pre_${sp}_$bk.log"; continue; }
            rm -f "$pre".step-* # the resumable sets: only the backbone is used (and $OUT keeps few bytes)
            tail -1 "$R/pre_${sp}_$bk.log"
        fi
        for k in $CONTEXTS; do
            have_row "$sp" "$bk" "$k" && continue
            out_of_time && break 3
            W=$((1 << k))
            B=$((TOKENS / W))
            [ "$B" -ge 1 ] || B=1
            c="$R/cls_${sp}_${bk}_$k.safetensors"
            s0=$(date +%s)
            echo "== classify $sp $bk W=2^$k batch $B ($(date +%T))"
            # shellcheck disable=SC2086
            "$DNA" classify train --device "$DEVICE" --precision "$PREC" --model "$pre" --out "$c" $cls \
                --seq-len "$W" --batch "$B" --steps "$CL_STEPS" --val-every "$CL_STEPS" --val-windows "$VAL_WINDOWS" \
                --select last --force >"$R/cls_${sp}_${bk}_$k.log" 2>&1 ||
                {
                    echo "classify $sp $bk 2^$k failed:"
                    tail -3 "$R/cls_${sp}_${bk}_$k.log"
                    # a window longer than every training part: a row that says so (not tried again)
                    grep -q "no training sequence is" "$R/cls_${sp}_${bk}_$k.log" &&
                        printf '%s\t%s\t%s\t0\ttoo-long\t0\n' "$sp" "$bk" "$k" >>"$rows"
                    continue
                }
            rm -f "$c".step-*
            line=$(grep -m1 "validation accuracy" "$R/cls_${sp}_${bk}_$k.log")
            acc=$(echo "$line" | sed -n 's/.*validation accuracy \([0-9.]*\) on \([0-9]*\) windows.*/\1/p')
            nw=$(echo "$line" | sed -n 's/.*validation accuracy \([0-9.]*\) on \([0-9]*\) windows.*/\2/p')
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sp" "$bk" "$k" "$nw" "$acc" $(($(date +%s) - s0)) >>"$rows"
            echo "   accuracy $acc on $nw windows"
        done
    done
done

# the table so far: a row per (species, context), a column per backbone
{
    echo "| species | window | ${BACKBONES// / | } |"
    echo "|---|---|$(for _ in $BACKBONES; do printf -- '---|'; done)"
    for sp in $SPECIES; do
        for k in $CONTEXTS; do
            printf '| %s | 2^%s |' "$sp" "$k"
            for bk in $BACKBONES; do
                v=$(awk -F'\t' -v sp="$sp" -v bk="$bk" -v k="$k" '$1 == sp && $2 == bk && $3 == k { printf "%s (%s)", $5, $4 }' "$rows")
                printf ' %s |' "${v:--}"
            done
            echo
        done
    done
} >"$R/table.md"
cat "$R/table.md"
if [ -n "${OUT:-}" ] && [ "$(cd "$R" && pwd)" != "$(cd "$OUT" 2>/dev/null && pwd)" ]; then
    mkdir -p "$OUT/strains"
    cp "$rows" "$R/table.md" "$OUT/strains/"
    (cd "$R" && ls ./*.log >/dev/null 2>&1 && tar czf "$OUT/strains/logs.tgz" ./*.log)
fi
