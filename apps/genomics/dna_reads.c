/* Reads of a BAM / CRAM / SAM (or FASTQ: htslib reads it through the same
 * API) as records: one per primary read, mapped or not. Secondary and
 * supplementary records repeat (part of) a primary read's bases and would
 * count them twice. */
#include <stdlib.h>
#include <string.h>

#include <htslib/sam.h>

#include "mb_cli.h"
#include "dna_load.h"
#include "dna_tok.h"

/* BAM's 4-bit base codes "=ACMGRSVTWYHKDBN" mapped through the tokenizer's
 * table, so that reads and FASTA agree on every letter. */
static void nt16_table(uint8_t t[16])
{
    for (int i = 0; i < 16; i++) t[i] = dna_tok_table[(unsigned char)seq_nt16_str[i]];
}

static const char *kind_name(enum htsExactFormat f)
{
    switch (f) {
    case bam: return "BAM";
    case cram: return "CRAM";
    case sam: return "SAM";
    default: return "FASTQ";
    }
}

int dna_reads_load(htsFile *fp, const char *path, const dna_src_opts *o, dna_store *st,
                   int64_t *skipped, char *err, size_t errlen)
{
    const enum htsExactFormat fmt = hts_get_format(fp)->format;
    const char *kind = kind_name(fmt);
    sam_hdr_t *hdr = NULL;
    bam1_t *b = NULL;
    int rc = -1, r;
    int64_t nread = 0;
    uint8_t nt16[16];
    nt16_table(nt16);
    *skipped = 0;

    if (fmt == cram && o->reference && hts_set_fai_filename(fp, o->reference) != 0) {
        mb_cli_errf(err, errlen, path, "cannot use '%s' as the CRAM reference", o->reference);
        goto done;
    }
    hdr = sam_hdr_read(fp);
    if (!hdr) {
        mb_cli_errf(err, errlen, path, "not a valid %s file (cannot read its header)", kind);
        goto done;
    }
    b = bam_init1();
    if (!b) goto oom;

    while ((r = sam_read1(fp, hdr, b)) >= 0) {
        nread++;
        /* a big BAM takes a while: Ctrl-C and SIGTERM stop it */
        if ((nread & 0xffff) == 0 && mb_cli_interrupted()) {
            mb_cli_errf(err, errlen, path, "interrupted while reading it (record %lld)", (long long)nread);
            goto done;
        }
        const uint16_t flag = b->core.flag;
        const int64_t n = b->core.l_qseq;
        if ((flag & (BAM_FSECONDARY | BAM_FSUPPLEMENTARY)) || n <= 0) {
            (*skipped)++;
            continue;
        }
        const char *name = bam_get_qname(b);
        if (dna_store_begin(st, name, strlen(name))) goto oom;
        uint8_t *dst = dna_store_reserve(st, n);
        if (!dst) goto oom;
        const uint8_t *q = bam_get_seq(b);
        for (int64_t i = 0; i < n; i++) dst[i] = nt16[bam_seqi(q, i)];
        if (o->reads_as_sequenced && (flag & BAM_FREVERSE)) dna_tok_revcomp_u8(dst, (size_t)n);
        dna_store_commit(st, n);
    }
    if (r < -1) {
        if (fmt == cram)
            mb_cli_errf(err, errlen, path,
                     "cannot decode CRAM record %lld (corrupt file, or the reference is "
                     "missing or wrong: give it with --reference)",
                     (long long)nread + 1);
        else if (nread == 0)
            mb_cli_errf(err, errlen, path, "truncated or corrupt %s file: it breaks off before its first "
                                           "whole record", kind);
        else
            mb_cli_errf(err, errlen, path, "truncated or corrupt %s file (after %lld records)", kind,
                     (long long)nread);
        goto done;
    }
    if (st->nrec == 0) {
        mb_cli_errf(err, errlen, path, "no sequences (%lld records, none a primary read with bases)",
                 (long long)nread);
        goto done;
    }
    dna_store_shrink(st);
    rc = 0;
    goto done;
oom:
    mb_cli_errf(err, errlen, path, "out of memory after %lld reads", (long long)st->nrec);
done:
    bam_destroy1(b);
    sam_hdr_destroy(hdr);
    return rc;
}
