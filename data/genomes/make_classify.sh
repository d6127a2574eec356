#!/usr/bin/env bash
# The 4-species classification task on the bacterial genome set, with whole
# strains held out for validation (like the Great Apes task of the HyenaDNA
# paper): the `--class` and `--val-class` arguments of
# `mamba-dna classify train`, from OUT_DIR/manifest.tsv (make_genomes.sh's
# output; run here first when it is missing).
#
#   data/genomes/make_classify.sh [--args] [OUT_DIR]     (default: data/genomes/out)
#
# Without --args: writes the arguments to OUT_DIR/classify.args (one line)
# and prints the classes, their training and held-out strains, and an
# example command. With --args: prints only the arguments, on one line, for
# the shell to splice in:
#
#   mamba-dna classify train --model pre.safetensors --out cls.safetensors \
#       $(bash data/genomes/make_classify.sh --args) --seq-len 65536 --steps 2000
#
# One class per species, in manifest order (ecoli hpylori saureus vcholerae):
# --class SPECIES=<its classify-train files, comma-separated> and
# --val-class SPECIES=<its classify-val file>, absolute paths. Training
# windows come from the 12 training strains, the validation windows only
# from the 4 held-out ones. The paths must not hold spaces (the $(...) above
# splits on them): the script refuses such an OUT_DIR.
set -euo pipefail

die() {
    echo "make_classify.sh: $*" >&2
    exit 1
}

args_only=0
if [ "${1:-}" = "--args" ]; then
    args_only=1
    shift
fi
case "${1:-}" in
-h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
-*) die "unknown option '$1' (usage: make_classify.sh [--args] [OUT_DIR])" ;;
esac
[ $# -le 1 ] || die "usage: make_classify.sh [--args] [OUT_DIR]"

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
if [ ! -r "$out/manifest.tsv" ]; then
    echo "make_classify.sh: $out/manifest.tsv not found: running make_genomes.sh" >&2
    bash "$here/make_genomes.sh" "$out" >&2 || die "make_genomes.sh failed"
fi
out=$(cd "$out" && pwd)
case "$out" in
*[[:space:]]*) die "'$out' holds whitespace: the arguments would not survive word splitting" ;;
esac

# species<TAB>train files (comma-separated)<TAB>held-out files, manifest order
table=$(awk -F'\t' -v dir="$out" '
    NR == 1 { next }
    $4 == "classify-train" || $4 == "classify-val" {
        if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
        k = $4 == "classify-train" ? 1 : 2
        f[$1, k] = f[$1, k] (f[$1, k] == "" ? "" : ",") dir "/" $3
    }
    END { for (i = 1; i <= n; i++) printf "%s\t%s\t%s\n", order[i], f[order[i], 1], f[order[i], 2] }
' "$out/manifest.tsv")
[ -n "$table" ] || die "$out/manifest.tsv has no classify-train / classify-val rows"

line=""
while IFS=$'\t' read -r sp train val; do
    [ -n "$train" ] || die "species $sp has no classify-train strain in $out/manifest.tsv"
    [ -n "$val" ] || die "species $sp has no classify-val strain in $out/manifest.tsv"
    for f in ${train//,/ } ${val//,/ }; do
        [ -r "$f" ] || die "$f is listed in $out/manifest.tsv but missing (rerun make_genomes.sh)"
    done
    line="$line${line:+ }--class $sp=$train --val-class $sp=$val"
done <<<"$table"

if [ "$args_only" = 1 ]; then
    printf '%s\n' "$line"
    exit 0
fi
printf '%s\n' "$line" >"$out/classify.args"
echo "4-species classification, whole strains held out for validation:"
while IFS=$'\t' read -r sp train val; do
    printf '  %-10s train: %s\n' "$sp" "$(for f in ${train//,/ }; do basename "$f" .fa.gz; done | tr '\n' ' ')"
    printf '  %-10s val:   %s\n' "" "$(for f in ${val//,/ }; do basename "$f" .fa.gz; done | tr '\n' ' ')"
done <<<"$table"
echo "wrote the arguments to $out/classify.args; e.g."
echo "  mamba-dna classify train --model pre.safetensors --out cls.safetensors \\"
echo "      \$(cat $out/classify.args) --seq-len 65536 --steps 2000"
