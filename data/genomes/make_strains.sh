#!/usr/bin/env bash
# The strain benchmark where context decides: which strain of a species a
# window comes from, for the 5 S. aureus and, separately, the 5 H. pylori
# strains of the genome set (make_genomes.sh; run here first when missing).
#
#   data/genomes/make_strains.sh [OUT_DIR]        (default: data/genomes/out)
#
# The split, per strain (each genome here is one record): the held-out part
# is the last HELDOUT bases of the genome (default 1,100,000: one window of
# 2^20 bases fits, with 51,424 bases to shift it), the training part all
# before it. No base of a held-out part is in any training part, and no
# window of a held-out part is ever trained on. Writes, under
# OUT_DIR/strains/:
#   <species>_<strain>.train.fa.gz, <species>_<strain>.heldout.fa.gz
#       one record each, named <species>_<strain>_train / _heldout, the
#       genome's [0, n - HELDOUT) and [n - HELDOUT, n)
#   strains.tsv   species, strain, part, file, start, end (0-based, half
#       open, in the genome)
#   <species>.args   mamba-dna classify train's class arguments: --class
#       <strain>=<train file> --val-class <strain>=<held-out file>, one line
# Needs gzip, awk, head, tail and fold. HELDOUT=N in the environment changes the block.
set -euo pipefail
export LC_ALL=C
OUT=${1:-data/genomes/out}
HELDOUT=${HELDOUT:-1100000}
die() {
    echo "make_strains.sh: $*" >&2
    exit 1
}
[ -f "$OUT/manifest.tsv" ] || bash "$(dirname "$0")/make_genomes.sh" "$OUT"
[ -f "$OUT/manifest.tsv" ] || die "$OUT/manifest.tsv missing"
# everything is written into a new folder that replaces OUT_DIR/strains
# only when it is complete: a failed run leaves the old set as it was
S="$OUT/strains"
FINAL="$(cd "$OUT" && pwd)/strains"
W=$(mktemp -d "$OUT/.strains.XXXXXX")
trap 'rm -rf "$W"' EXIT
printf 'species\tstrain\tpart\tfile\tstart\tend\n' >"$W/strains.tsv"
for sp in saureus hpylori; do
    args=""
    # one row per strain (the manifest lists each twice: pretrain and classify roles)
    while IFS=$'\t' read -r species strain file records bases; do
        [ "$records" = 1 ] || die "$file: $records records, the split expects one"
        [ "$bases" -gt $((HELDOUT + 100000)) ] || die "$file: $bases bases, too short for a held-out part of $HELDOUT"
        cut=$((bases - HELDOUT))
        # the record's sequence, one line, then each part wrapped at 80
        gzip -dc "$OUT/$file" | grep -v '^>' | tr -d '\n\r' >"$W/.seq"
        for part in train heldout; do
            f="$W/${species}_${strain}.$part.fa.gz"
            {
                echo ">${species}_${strain}_$part"
                if [ "$part" = train ]; then head -c "$cut" "$W/.seq"; else tail -c +$((cut + 1)) "$W/.seq"; fi |
                    fold -w 80
                echo
            } | grep -v '^$' | gzip -n >"$f"
            if [ "$part" = train ]; then
                printf '%s\t%s\ttrain\t%s\t0\t%d\n' "$species" "$strain" "$(basename "$f")" "$cut" >>"$W/strains.tsv"
                args="$args --class $strain=$FINAL/$(basename "$f")"
            else
                printf '%s\t%s\theldout\t%s\t%d\t%d\n' "$species" "$strain" "$(basename "$f")" "$cut" "$bases" >>"$W/strains.tsv"
                args="$args --val-class $strain=$FINAL/$(basename "$f")"
            fi
        done
    done < <(awk -F'\t' -v sp="$sp" 'NR > 1 && $1 == sp && $4 ~ /^classify/ { print $1 "\t" $2 "\t" $3 "\t" $5 "\t" $6 }' "$OUT/manifest.tsv")
    echo "${args# }" >"$W/$sp.args"
done
rm -f "$W/.seq"
rm -rf "$S.old"
if [ -d "$S" ]; then mv "$S" "$S.old"; fi
mv "$W" "$S"
rm -rf "$S.old"
echo "make_strains.sh: wrote $(($(wc -l <"$S/strains.tsv") - 1)) parts, strains.tsv and saureus.args, hpylori.args to $S (held-out block: the last $HELDOUT bases of each genome)" >&2
