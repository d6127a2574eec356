#!/usr/bin/env bash
# Builds the small genome set bundled for the quick start (README) from the
# full set that data/genomes/make_genomes.sh writes (ragout-examples, BSD-3):
#   train.fa.gz  the first 200 kbp of one training strain of each species
#   val.fa.gz    50 kbp from the middle of each species' held-out strain
# Deterministic: the same slices every time. Needs samtools and bgzip.
#
#   bash data/dna/make_quick.sh [GENOMES_DIR]   (default data/genomes/out)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../genomes/out}
[ -f "$src/manifest.tsv" ] || { echo "make_quick.sh: $src/manifest.tsv missing: run data/genomes/make_genomes.sh first" >&2; exit 1; }
for t in samtools bgzip; do command -v $t >/dev/null || { echo "make_quick.sh: $t not found (apt-get install samtools tabix)" >&2; exit 1; }; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# species: a training strain, the held-out strain
while read -r sp tr va; do
    f="$src/${sp}_${tr}.fa.gz"
    c=$(cut -f1 "$f.fai" | head -1)
    samtools faidx "$f" "$c:1-200000" | sed "1s/.*/>${sp}_${tr} ${c}:1-200000/" >>"$tmp/train.fa"
    g="$src/${sp}_${va}.fa.gz"
    c=$(cut -f1 "$g.fai" | head -1)
    len=$(cut -f2 "$g.fai" | head -1)
    s=$((len / 2))
    samtools faidx "$g" "$c:$s-$((s + 49999))" | sed "1s/.*/>${sp}_${va} ${c}:$s-$((s + 49999))/" >>"$tmp/val.fa"
done <<'LIST'
ecoli MG1655-K12 DH1
hpylori G27 SJM180
saureus COL USA300_FPR3757
vcholerae O395 H1
LIST
for n in train val; do
    bgzip -c "$tmp/$n.fa" >"$here/$n.fa.gz"
    samtools faidx "$here/$n.fa.gz"
done
ls -l "$here"/*.fa.gz*
