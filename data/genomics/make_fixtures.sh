#!/usr/bin/env bash
# Rebuilds the tiny committed fixtures of the genomics tests (apps/genomics,
# tests/test_dna_io.c). Deterministic: the bases come from a fixed-seed
# splitmix64 written out below (not Python's own generator, whose choice()
# could change between versions), gzip runs with -n (no name or time stamp)
# and samtools / bcftools are told not to record their command lines, so a
# rerun gives the same bytes and a clean `git diff`.
#
# Needs python3, bgzip + tabix (Debian: tabix), samtools and bcftools. They
# are for regenerating only: the build and the tests never run them.
#
# The test file states the sequences it expects as literals; if you change
# the layout below, update tests/test_dna_io.c to match.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
for tool in python3 bgzip tabix samtools bcftools gzip; do
    command -v "$tool" >/dev/null 2>&1 || {
        echo "make_fixtures.sh: '$tool' not found (Debian: apt-get install python3 tabix samtools bcftools gzip)" >&2
        exit 1
    }
done

python3 - <<'PY'
M = (1 << 64) - 1

class Rng:
    """splitmix64: tiny, fixed, and the same in every language."""
    def __init__(self, seed):
        self.s = seed & M
    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        return z ^ (z >> 31)
    def bases(self, n):
        return "".join("ACGT"[self.next() >> 62] for _ in range(n))

r = Rng(20240604)

# chr1 (1200 bp): upper case, a soft-masked (lower case) stretch at
# 300-399, a run of 100 N at 400-499, upper case again.
chr1 = r.bases(300) + r.bases(100).lower() + "N" * 100 + r.bases(700)
# chr2 (700 bp): a lower-case n run at 100-119 and the IUPAC letter R at 350.
chr2 = r.bases(700)
chr2 = chr2[:100] + "n" * 20 + chr2[120:350] + "R" + chr2[351:]
# chr3 (500 bp): mostly N (320 of 500), for the window sampler's N check.
chr3 = "N" * 320 + r.bases(180)
assert (len(chr1), len(chr2), len(chr3)) == (1200, 700, 500)

def fasta(name, desc, seq, width):
    lines = [">" + name + (" " + desc if desc else "")]
    lines += [seq[i:i + width] for i in range(0, len(seq), width)]
    return "\n".join(lines) + "\n"

with open("tiny.fa", "w") as f:
    f.write(fasta("chr1", "first test contig", chr1, 60))
    f.write(fasta("chr2", "", chr2, 70))
    f.write(fasta("chr3", "mostly N", chr3, 50))

# Reads, coordinate-sorted so that the BAM can be indexed. Mapped reads
# copy the reference (upper case); BAM keeps the forward-strand sequence,
# so the reverse read r2 is stored as chr1[300:340] too.
up1, up2 = chr1.upper(), chr2.upper()
reads = [
    ("r1", 0, "chr1", 11, "40M", up1[10:50]),
    ("r2", 16, "chr1", 301, "40M", up1[300:340]),
    ("r3sec", 256, "chr1", 601, "30M", up1[600:630]),
    ("r4", 0, "chr2", 341, "20M", up2[340:360]),
    ("r5sup", 2048, "chr2", 501, "25M", up2[500:525]),
    ("u1", 4, "*", 0, "*", r.bases(17) + "N" + r.bases(17)),
    ("u2", 4, "*", 0, "*", r.bases(12)),
]
with open("reads.sam", "w") as f:
    f.write("@HD\tVN:1.6\tSO:coordinate\n")
    for name, seq in (("chr1", chr1), ("chr2", chr2), ("chr3", chr3)):
        f.write("@SQ\tSN:%s\tLN:%d\n" % (name, len(seq)))
    for name, flag, ref, pos, cigar, seq in reads:
        f.write("\t".join([name, str(flag), ref, str(pos), "60" if ref != "*" else "0",
                           cigar, "*", "0", "0", seq, "*"]) + "\n")
with open("reads.expected", "w") as f:
    for name, flag, _, _, _, seq in reads:
        if not flag & (256 | 2048):
            f.write("%s\t%s\n" % (name, seq))

# Variants whose REF is the FASTA's base(s) (1-based POS).
def ref(seq, pos, n=1):
    return seq[pos - 1:pos - 1 + n].upper()
def other(b):
    return "ACGT"[("ACGT".index(b) + 1) % 4]
vcf_head = ("##fileformat=VCFv4.2\n"
            "##ALT=<ID=DEL,Description=\"Deletion\">\n"
            "##INFO=<ID=SVTYPE,Number=1,Type=String,Description=\"Type of structural variant\">\n"
            "##INFO=<ID=END,Number=1,Type=Integer,Description=\"End position\">\n")
rows = [
    ("chr1", 21, "snv1", ref(chr1, 21), other(ref(chr1, 21)), "."),
    ("chr1", 101, "ins1", ref(chr1, 101), ref(chr1, 101) + "GT", "."),
    ("chr1", 551, "del1", ref(chr1, 551, 3), ref(chr1, 551), "."),
    ("chr1", 601, "multi", ref(chr1, 601),
     other(ref(chr1, 601)) + "," + other(other(ref(chr1, 601))), "."),
    ("chr2", 201, "sv1", ref(chr2, 201), "<DEL>", "SVTYPE=DEL;END=260"),
    ("chr2", 401, ".", ref(chr2, 401), other(ref(chr2, 401)), "."),
    ("chr3", 401, "snv3", ref(chr3, 401), other(ref(chr3, 401)), "."),
]
with open("variants.vcf", "w") as f:
    f.write(vcf_head)
    for name, seq in (("chr1", chr1), ("chr2", chr2), ("chr3", chr3)):
        f.write("##contig=<ID=%s,length=%d>\n" % (name, len(seq)))
    f.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    for c, p, i, rf, alt, info in rows:
        f.write("\t".join([c, str(p), i, rf, alt, ".", "PASS", info]) + "\n")
with open("badcontig.vcf", "w") as f:
    f.write(vcf_head)
    f.write("##contig=<ID=chr1,length=1200>\n##contig=<ID=chrX,length=5000>\n")
    f.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    f.write("chr1\t21\tok\t%s\t%s\t.\tPASS\t.\n" % (ref(chr1, 21), other(ref(chr1, 21))))
    f.write("chrX\t10\tbad\tA\tG\t.\tPASS\t.\n")

with open("val.bed", "w") as f:
    f.write("# validation intervals (0-based, half open)\n")
    f.write("chr1\t800\t1000\tval_a\n")
    f.write("chr2\t0\t100\n")
    f.write("chr1\t950\t1100\n")          # overlaps val_a: merged
with open("badchrom.bed", "w") as f:
    f.write("chr1\t0\t10\n")
    f.write("chrZ\t5\t20\n")

# Bad inputs.
with open("noheader.fa", "w") as f:
    f.write("ACGTACGTAC\nGGTTAACC\n>late\nACGT\n")
open("empty.fa", "w").close()
with open("corrupt.bam", "wb") as f:
    f.write(bytes(r.next() & 0xFF for _ in range(600)))
PY

gzip -n -9 -c tiny.fa > plain.fa.gz
bgzip -c tiny.fa > tiny.fa.gz
# Both indexed: tiny.fa.fai also lets htslib use tiny.fa as the CRAM
# reference without writing an index into the source tree at test time.
samtools faidx tiny.fa                  # tiny.fa.fai
samtools faidx tiny.fa.gz               # tiny.fa.gz.fai and tiny.fa.gz.gzi
# a gzip stream cut in the middle: no end, no CRC
gzip -n -9 -c tiny.fa > full.tmp.gz
head -c "$(( $(wc -c < full.tmp.gz) / 2 ))" full.tmp.gz > truncated.fa.gz
rm -f full.tmp.gz

samtools view --no-PG -b -o reads.bam reads.sam
samtools index reads.bam
# The CRAM needs tiny.fa to decode (the tests pass it as the reference).
# samtools records the reference's absolute path (UR tag) in the header: drop
# it, so that the file does not depend on where it was made (M5 stays).
samtools view --no-PG -C -T tiny.fa -o reads.cram reads.sam
samtools view --no-PG -H reads.cram | sed 's/\tUR:[^\t]*//' > header.tmp.sam
samtools reheader --no-PG -i header.tmp.sam reads.cram
rm -f header.tmp.sam reads.sam

bgzip -c variants.vcf > variants.vcf.gz
tabix -f -p vcf variants.vcf.gz
bcftools view --no-version -O b -o variants.bcf variants.vcf

ls -l
