#!/usr/bin/env bash
# Builds mamba-dna's bacterial genome set from the Debian package
# ragout-examples (Ragout's example data, BSD-3-clause): the complete
# reference genomes of four species, 16 strains, 48.2 Mbp.
#
#   data/genomes/make_genomes.sh [OUT_DIR]        (default: data/genomes/out)
#
# For each strain it writes OUT_DIR/<species>_<strain>.fa.gz (bgzip, lines of
# 80 bases) with its .fai and .gzi, so that faidx reads windows without
# loading genomes; plus OUT_DIR/manifest.tsv and the package's copyright
# file. Records are renamed <species>_<strain>_c<k> (k = 1, 2, ... in file
# order); the original header follows the name as the description.
#
# manifest.tsv (tab-separated, with a header line) has one row per strain
# and task: species, strain, file, role, records, bases. Roles:
# pretrain-train, pretrain-val, classify-train, classify-val. One strain per
# species is held out whole, for both tasks (so the classifier is validated
# on strains neither the pretraining nor the fine-tuning has seen): the
# strain Ragout's examples use as their assembly target.
#
# Where the genomes come from: the installed package when its files are
# present (dpkg -L ragout-examples); otherwise `apt-get download` of the
# .deb into a temporary folder and `dpkg -x` there (no root needed). Set
# RAGOUT_EXAMPLES=DIR to use an already extracted examples folder.
#
# Needs bgzip (Debian: tabix) and gzip, awk; samtools, when present, is used
# only to check the .fai files written here.
set -euo pipefail
export LC_ALL=C # byte offsets in the .fai: awk must count bytes

die() {
    echo "make_genomes.sh: $*" >&2
    exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
for tool in bgzip gzip awk; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (Debian: apt-get install tabix gzip gawk)"
done

# species folder in the package, short species name, strains (file stems),
# held-out strain
species_table="E.Coli ecoli DH1,MG1655-K12 DH1
H.Pylori hpylori ELS37,G27,Gambia94_24,Puno120,SJM180 SJM180
S.Aureus saureus COL,JKD6008,N315,RF122,USA300_FPR3757 USA300_FPR3757
V.Cholerae vcholerae H1,O1_Inaba,O1_biovar,O395 H1"

# ---- find the examples --------------------------------------------------------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

has_all() { # DIR: does it hold every reference genome?
    local line folder strains s
    while read -r folder _ strains _; do
        for s in ${strains//,/ }; do
            [ -r "$1/$folder/references/$s.fasta.gz" ] || return 1
        done
    done <<<"$species_table"
}

src=${RAGOUT_EXAMPLES:-}
if [ -n "$src" ]; then
    has_all "$src" || die "RAGOUT_EXAMPLES=$src does not hold the expected */references/*.fasta.gz"
    how="RAGOUT_EXAMPLES"
else
    if dpkg -L ragout-examples >/dev/null 2>&1; then
        src=$(dpkg -L ragout-examples | grep '/examples$' | head -n 1 || true)
    fi
    if [ -n "$src" ] && has_all "$src"; then
        how="installed package ragout-examples"
    else
        # not installed, or installed without its /usr/share/doc files
        # (minimal images exclude them): fetch the .deb and unpack it here
        command -v apt-get >/dev/null 2>&1 || die "ragout-examples is not installed and apt-get is not available"
        command -v dpkg >/dev/null 2>&1 || die "ragout-examples is not installed and dpkg is not available"
        echo "make_genomes.sh: downloading ragout-examples with apt-get download" >&2
        (cd "$tmp" && apt-get download ragout-examples >/dev/null) ||
            die "apt-get download ragout-examples failed (run apt-get update, or install the package)"
        deb=$(ls "$tmp"/ragout-examples_*.deb 2>/dev/null | head -n 1)
        [ -n "$deb" ] || die "apt-get download gave no ragout-examples .deb"
        dpkg -x "$deb" "$tmp/root" || die "dpkg -x $deb failed"
        src="$tmp/root/usr/share/doc/ragout/examples"
        has_all "$src" || die "the downloaded package does not hold the expected genomes"
        how="downloaded $(basename "$deb")"
        cp "$tmp/root/usr/share/doc/ragout-examples/copyright" "$tmp/copyright" 2>/dev/null || true
    fi
fi
echo "genomes from: $src ($how)"

mkdir -p "$out" || die "cannot create $out"
copyright=/usr/share/doc/ragout-examples/copyright
[ -r "$tmp/copyright" ] && copyright="$tmp/copyright"
if [ -r "$copyright" ]; then
    cp "$copyright" "$out/COPYRIGHT.ragout-examples"
else
    echo "make_genomes.sh: warning: the package's copyright file was not found (BSD-3-clause)" >&2
fi

# ---- one strain ---------------------------------------------------------------
# Rewraps to 80 bases a line, renames records and writes the .fai as it goes
# (name, length, offset of the first base, bases a line, bytes a line).
write_strain() { # IN.fasta.gz PREFIX OUT.fa.gz
    local in=$1 prefix=$2 dst=$3
    gzip -dc "$in" |
        awk -v prefix="$prefix" -v fai="$dst.fai" -v W=80 '
            function flush_line() {
                if (buf != "") { print buf; off += length(buf) + 1; buf = "" }
            }
            function end_record() {
                if (k == 0) return
                flush_line()
                printf "%s\t%d\t%d\t%d\t%d\n", name, len, start, W, W + 1 > fai
            }
            /^>/ {
                end_record()
                k++
                name = prefix "_c" k
                desc = substr($0, 2)
                header = ">" name " " desc
                print header
                off += length(header) + 1
                start = off; len = 0; buf = ""
                next
            }
            {
                gsub(/[ \t\r]/, "")
                if (k == 0 && $0 != "") { print "sequence before the first header" > "/dev/stderr"; exit 2 }
                len += length($0)
                buf = buf $0
                while (length(buf) >= W) {
                    print substr(buf, 1, W); off += W + 1
                    buf = substr(buf, W + 1)
                }
            }
            END { end_record(); if (k == 0) exit 3 }' |
        bgzip -c -i -I "$dst.gzi" >"$dst" ||
        die "could not convert $in"
}

printf 'species\tstrain\tfile\trole\trecords\tbases\n' >"$out/manifest.tsv"
total=0
nfiles=0
printf '%-10s %-16s %8s %11s  %s\n' species strain records bases held-out
while read -r folder sp strains heldout; do
    for s in ${strains//,/ }; do
        file="${sp}_${s}.fa.gz"
        write_strain "$src/$folder/references/$s.fasta.gz" "${sp}_${s}" "$out/$file"
        records=$(wc -l <"$out/$file.fai" | tr -d ' ')
        bases=$(awk '{ n += $2 } END { print n + 0 }' "$out/$file.fai")
        if [ "$s" = "$heldout" ]; then
            roles="pretrain-val classify-val"
            mark=yes
        else
            roles="pretrain-train classify-train"
            mark=""
        fi
        for role in $roles; do
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$sp" "$s" "$file" "$role" "$records" "$bases" \
                >>"$out/manifest.tsv"
        done
        printf '%-10s %-16s %8s %11s  %s\n' "$sp" "$s" "$records" "$bases" "$mark"
        total=$((total + bases))
        nfiles=$((nfiles + 1))
    done
done <<<"$species_table"

# ---- check the indexes against samtools when it is here -----------------------
if command -v samtools >/dev/null 2>&1; then
    for f in "$out"/*.fa.gz; do
        cp "$f" "$tmp/check.fa.gz"
        samtools faidx "$tmp/check.fa.gz" || die "samtools faidx cannot index $f"
        cmp -s "$tmp/check.fa.gz.fai" "$f.fai" || die "$f.fai differs from samtools faidx's"
        rm -f "$tmp"/check.fa.gz*
    done
    echo "checked: every .fai equals samtools faidx's"
fi
echo "wrote $nfiles genomes ($total bases), their .fai and .gzi, and manifest.tsv to $out"
