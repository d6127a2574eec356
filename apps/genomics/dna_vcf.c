/* VCF / BCF records through htslib: bcf_read, then bcf_unpack of the
 * shared (string) part only, since the samples' fields are not needed. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <htslib/vcf.h>

#include "mb_cli.h"
#include "dna_tok.h"
#include "dna_vcf.h"

struct dna_vcf {
    char *path;
    htsFile *fp;
    bcf_hdr_t *hdr;
    bcf1_t *rec;
    dna_vcf_counts counts;
};

void dna_vcf_close(dna_vcf *v)
{
    if (!v) return;
    if (v->rec) bcf_destroy(v->rec);
    if (v->hdr) bcf_hdr_destroy(v->hdr);
    if (v->fp) hts_close(v->fp);
    free(v->path);
    free(v);
}

dna_vcf *dna_vcf_open(const char *path, char *err, size_t errlen)
{
    dna_vcf *v = calloc(1, sizeof *v);
    if (!v || !(v->path = strdup(path))) {
        free(v);
        mb_cli_errf(err, errlen, path, "out of memory");
        return NULL;
    }
    errno = 0;
    v->fp = bcf_open(path, "r");
    if (!v->fp) {
        int e = errno;
        mb_cli_errf(err, errlen, path, "%s",
                 e && e != ENOEXEC ? strerror(e) : "not a VCF or BCF file (unrecognised content)");
        goto fail;
    }
    const htsFormat *f = hts_get_format(v->fp);
    if (f->format != vcf && f->format != bcf) {
        char *d = hts_format_description(f);
        mb_cli_errf(err, errlen, path, "is %s, not a VCF or BCF file", d ? d : "another format");
        free(d);
        goto fail;
    }
    v->hdr = bcf_hdr_read(v->fp);
    if (!v->hdr) {
        mb_cli_errf(err, errlen, path, "not a valid VCF/BCF file (cannot read its header)");
        goto fail;
    }
    v->rec = bcf_init();
    if (!v->rec) {
        mb_cli_errf(err, errlen, path, "out of memory");
        goto fail;
    }
    return v;
fail:
    dna_vcf_close(v);
    return NULL;
}

const char *dna_vcf_path(const dna_vcf *v) { return v->path; }
const dna_vcf_counts *dna_vcf_get_counts(const dna_vcf *v) { return &v->counts; }

/* Made of A C G T N only (either case), and not empty. */
static int plain_bases(const char *s)
{
    if (!*s) return 0;
    for (; *s; s++) {
        int t = dna_tok_byte((unsigned char)*s);
        if (t < DNA_TOK_A || t > DNA_TOK_N) return 0;
    }
    return 1;
}

int dna_vcf_next(dna_vcf *v, dna_variant *out, char *err, size_t errlen)
{
    for (;;) {
        int r = bcf_read(v->fp, v->hdr, v->rec);
        if (r == -1) return 0;
        if (r < -1)
            return mb_cli_errf(err, errlen, v->path, "record %lld: truncated or malformed",
                            (long long)v->counts.records + 1);
        v->counts.records++;
        if (bcf_unpack(v->rec, BCF_UN_STR) != 0)
            return mb_cli_errf(err, errlen, v->path, "record %lld: cannot unpack",
                            (long long)v->counts.records);
        bcf1_t *b = v->rec;
        const char *contig = bcf_seqname(v->hdr, b);
        if (!contig || b->n_allele < 1 || !b->d.allele || !b->d.allele[0])
            return mb_cli_errf(err, errlen, v->path, "record %lld: no contig or no REF",
                            (long long)v->counts.records);
        if (b->n_allele < 2) {
            v->counts.no_alt++;
            continue;
        }
        if (!plain_bases(b->d.allele[0]) || !plain_bases(b->d.allele[1])) {
            v->counts.symbolic++;
            continue;
        }
        out->contig = contig;
        out->pos = (int64_t)b->pos;
        out->id = b->d.id ? b->d.id : ".";
        out->ref = b->d.allele[0];
        out->alt = b->d.allele[1];
        out->n_alt = b->n_allele - 1;
        out->index = v->counts.records;
        v->counts.returned++;
        return 1;
    }
}

int64_t dna_vcf_locate(const dna_vcf *v, dna_set *set, const dna_variant *var, int check_ref,
                       char *err, size_t errlen)
{
    const int64_t rec = dna_set_find(set, var->contig);
    if (rec == -1) return mb_cli_errf(err, errlen, v->path, "contig '%s' not in the FASTA", var->contig);
    if (rec == -2)
        return mb_cli_errf(err, errlen, v->path, "contig '%s' is in the FASTA inputs more than once",
                        var->contig);
    const int64_t len = dna_set_len(set, rec);
    const int64_t nref = (int64_t)strlen(var->ref);
    if (var->pos < 0)
        return mb_cli_errf(err, errlen, v->path, "record %lld: POS is not a position on %s (1 or more)",
                           (long long)var->index, var->contig);
    if (var->pos + nref > len)
        return mb_cli_errf(err, errlen, v->path,
                        "record %lld: REF at %s:%lld runs past the contig's end (length %lld)",
                        (long long)var->index, var->contig, (long long)var->pos + 1,
                        (long long)len);
    if (!check_ref) return rec;

    int32_t *seq = malloc((size_t)(nref ? nref : 1) * sizeof *seq);
    if (!seq) return mb_cli_errf(err, errlen, v->path, "out of memory");
    if (dna_set_fetch(set, rec, var->pos, nref, seq, err, errlen)) {
        free(seq);
        return -1;
    }
    for (int64_t i = 0; i < nref; i++) {
        const int32_t a = dna_tok_byte((unsigned char)var->ref[i]), b = seq[i];
        const int acgt_a = a >= DNA_TOK_A && a <= DNA_TOK_T, acgt_b = b >= DNA_TOK_A && b <= DNA_TOK_T;
        if (acgt_a && acgt_b && a != b) {
            mb_cli_errf(err, errlen, v->path,
                     "record %lld: REF '%s' at %s:%lld does not match the FASTA ('%c' at %lld)",
                     (long long)var->index, var->ref, var->contig, (long long)var->pos + 1,
                     dna_tok_char(b), (long long)(var->pos + i + 1));
            free(seq);
            return -1;
        }
    }
    free(seq);
    return rec;
}
