#!/usr/bin/env bash
# data/genomes/make_strains.sh on a made-up genome set: 5 strains of each
# species, random genomes of 210-255 kb in one record, a held-out block of
# 100 kb. Checks that each training part and held-out part together are
# the genome, in order, with nothing shared; that the held-out part is the
# genome's last HELDOUT bases; strains.tsv's coordinates; the class
# arguments; and that a genome too short for the block is refused in one
# line, leaving the set made before as it was.
# With the tool given, scripts/gpu_strains.sh on that set at a toy size on
# the CPU: its rows and table, a window longer than every training part as
# a "too-long" row, $OUT's three files, and a second run that trains
# nothing (every row is there).
#   tests/strains_script.sh REPO_ROOT [MAMBA_DNA]
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
[ -n "${2:-}" ] || exit 0
run_strains() {
    (cd "$ROOT" && OUT="$T/out" STRAINS_DIR="$S" DNA_BIN="$2" DEVICE=cpu PREC=fp32 D_MODEL=16 N_LAYER=1 PT_LEN=1024 \
        PT_BATCH=2 PT_STEPS=2 CL_STEPS=2 TOKENS=4096 VAL_WINDOWS=2 SPECIES=saureus BACKBONES=lm CONTEXTS="10 18" \
        bash scripts/gpu_strains.sh "$1")
}
mkdir -p "$T/out"
run_strains "$T/res" "$2" >"$T/log1" 2>&1 || fail "gpu_strains.sh: $(tail -5 "$T/log1")"
rows=$T/res/rows.tsv
[ "$(wc -l <"$rows")" = 3 ] || fail "rows.tsv: $(cat "$rows")"
awk -F'\t' '$1 == "saureus" && $2 == "lm" && $3 == 10 && $4 == 10 && $5 >= 0 && $5 <= 1 { f = 1 } END { exit !f }' "$rows" ||
    fail "no 2^10 row: $(cat "$rows")"
# the training parts are 110-155 kb: no 2^18 window in any
grep -q "$(printf 'saureus\tlm\t18\t0\ttoo-long')" "$rows" || fail "no too-long row: $(cat "$rows")"
grep -q "| saureus | 2^18 | too-long (0) |" "$T/res/table.md" || fail "table: $(cat "$T/res/table.md")"
[ "$(cd "$T/out/strains" && ls | tr '\n' ' ')" = "logs.tgz rows.tsv table.md " ] || fail "\$OUT/strains: $(ls "$T/out/strains")"
cmp -s "$rows" "$T/out/strains/rows.tsv" || fail "\$OUT's rows.tsv differs"
# (the listing whole first: grep -q closing the pipe early would make tar's
# SIGPIPE fail the line under pipefail)
logs=$(tar tzf "$T/out/strains/logs.tgz")
case "$logs" in *cls_saureus_lm_10.log*) ;; *) fail "logs.tgz: $logs" ;; esac
before=$(cksum <"$rows")
# the backbones gone too (as when a lent machine returned the rows alone):
# still nothing to train
rm -f "$T/res"/pre_*.safetensors
run_strains "$T/res" "$2" >"$T/log2" 2>&1 || fail "gpu_strains.sh again: $(tail -5 "$T/log2")"
! grep -q "^== " "$T/log2" || fail "the second run trained: $(grep "^== " "$T/log2")"
[ "$(cksum <"$rows")" = "$before" ] || fail "the second run changed rows.tsv"
echo "strains_script: gpu_strains.sh at a toy size checked"
