#!/usr/bin/env bash
# data/genomes/make_strains.sh on a made-up genome set: 5 strains of each
# species, random genomes of 210-255 kb in one record, a held-out block of
# 100 kb. Checks that each training part and held-out part together are
# the genome, in order, with nothing shared; that the held-out part is the
# genome's last HELDOUT bases; strains.tsv's coordinates; the class
# arguments; and that a genome too short for the block is refused in one
# line, leaving the set made before as it was.
#   tests/strains_script.sh REPO_ROOT
set -euo pipefail
ROOT=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*" >&2
    exit 1
}
mkdir -p "$T/set"
printf 'species\tstrain\tfile\trole\trecords\tbases\n' >"$T/set/manifest.tsv"
i=0
for sp in saureus hpylori; do
    for st in s1 s2 s3 s4 s5; do
        n=$((210000 + 5000 * i))
        i=$((i + 1))
        # a random genome, 70 bases a line, one record
        awk -v n="$n" -v seed="$i" 'BEGIN { srand(seed); print ">chr desc"; s = "";
            for (k = 0; k < n; k++) { s = s substr("ACGT", int(rand() * 4) + 1, 1); if (length(s) == 70) { print s; s = "" } }
            if (s != "") print s }' | gzip -n >"$T/set/${sp}_$st.fa.gz"
        for role in pretrain-train classify-train; do
            printf '%s\t%s\t%s\t%s\t1\t%d\n' "$sp" "$st" "${sp}_$st.fa.gz" "$role" "$n" >>"$T/set/manifest.tsv"
        done
    done
done
HELDOUT=100000 bash "$ROOT/data/genomes/make_strains.sh" "$T/set" 2>"$T/err" || fail "make_strains.sh: $(cat "$T/err")"
S="$T/set/strains"
[ "$(wc -l <"$S/strains.tsv")" = 21 ] || fail "strains.tsv: $(wc -l <"$S/strains.tsv") lines, want 21"
seqof() { gzip -dc "$1" | grep -v '^>' | tr -d '\n'; }
while IFS=$'\t' read -r sp st part file start end; do
    [ "$sp" = species ] && continue
    genome=$(seqof "$T/set/${sp}_$st.fa.gz")
    got=$(seqof "$S/$file")
    [ "${#got}" = $((end - start)) ] || fail "$file: ${#got} bases, strains.tsv says $((end - start))"
    [ "$got" = "${genome:start:end-start}" ] || fail "$file: not the genome's [$start, $end)"
    [ "$(gzip -dc "$S/$file" | head -1)" = ">${sp}_${st}_$part" ] || fail "$file: record name"
    if [ "$part" = heldout ]; then
        [ "$end" = "${#genome}" ] && [ $((end - start)) = 100000 ] || fail "$file: not the last 100000 bases"
    else
        [ "$start" = 0 ] && [ "$end" = $((${#genome} - 100000)) ] || fail "$file: not the bases before the block"
    fi
done <"$S/strains.tsv"
for sp in saureus hpylori; do
    a=$(cat "$S/$sp.args")
    [ "$(echo "$a" | grep -o -- '--class ' | wc -l)" = 5 ] || fail "$sp.args: $a"
    [ "$(echo "$a" | grep -o -- '--val-class ' | wc -l)" = 5 ] || fail "$sp.args: $a"
    echo "$a" | grep -q -- "--val-class s3=$S/${sp}_s3.heldout.fa.gz" || fail "$sp.args: $a"
done
# a block longer than a genome allows: one line, exit 1, the set made
# above as it was, no temporary folder left
before=$(cd "$S" && cat strains.tsv ./*.args | cksum)
if HELDOUT=120000 bash "$ROOT/data/genomes/make_strains.sh" "$T/set" 2>"$T/err"; then fail "a too-short genome was accepted"; fi
[ "$(wc -l <"$T/err")" = 1 ] && grep -q "too short for a held-out part of 120000" "$T/err" || fail "error: $(cat "$T/err")"
[ "$(cd "$S" && cat strains.tsv ./*.args | cksum)" = "$before" ] || fail "the earlier set changed after the error"
[ -z "$(find "$T/set" -maxdepth 1 -name '.strains.*')" ] || fail "a temporary folder was left"
echo "strains_script: the split of 10 genomes checked"
