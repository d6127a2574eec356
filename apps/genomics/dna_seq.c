/* One input file as records: format detection, faidx, fetch. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <htslib/faidx.h>
#include <htslib/hts.h>

#include "mb_cli.h"
#include "dna_load.h"
#include "dna_seq.h"
#include "dna_store.h"
#include "dna_tok.h"

struct dna_src {
    char *path;
    dna_src_kind kind;
    char format[96];
    int64_t nrec;
    int64_t skipped;
    /* DNA_SRC_FASTA_INDEXED: names are the index's own strings */
    faidx_t *fai;
    const char **fai_name;
    int64_t *fai_len;
    /* the other kinds */
    dna_store mem;
};

void dna_src_opts_default(dna_src_opts *o)
{
    memset(o, 0, sizeof *o);
    o->index_mode = DNA_INDEX_AUTO;
}

/* ---- faidx --------------------------------------------------------------- */

static int file_exists(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (!p) return 0;
    snprintf(p, n, "%s%s", path, suffix);
    int ok = access(p, R_OK) == 0;
    free(p);
    return ok;
}

static int64_t fai_record_len(const faidx_t *fai, const char *name)
{
#ifdef DNA_HAVE_FAIDX_SEQ_LEN64
    return (int64_t)faidx_seq_len64(fai, name);
#else
    /* htslib before faidx_seq_len64: int lengths, enough below 2^31 bases */
    return (int64_t)faidx_seq_len(fai, name);
#endif
}

/* 1: s is now an indexed source; 0: no usable index (stream instead);
 * -1: error (message written). */
static int try_faidx(dna_src *s, int compression, dna_index_mode mode, char *err, size_t errlen)
{
    if (mode == DNA_INDEX_NEVER || compression == gzip) return 0;
    const int have = file_exists(s->path, ".fai") &&
                     (compression != bgzf || file_exists(s->path, ".gzi"));
    if (!have && mode != DNA_INDEX_BUILD) return 0;

    s->fai = fai_load3(s->path, NULL, NULL, mode == DNA_INDEX_BUILD ? FAI_CREATE : 0);
    if (!s->fai) {
        /* building can fail on a FASTA faidx cannot index (uneven line
         * lengths, a read-only folder): streaming still works. A present
         * index that does not load is the user's to fix. */
        if (!have) return 0;
        return mb_cli_errf(err, errlen, s->path,
                        "cannot load its FASTA index (%s.fai%s): rebuild it with samtools faidx "
                        "or remove it",
                        s->path, compression == bgzf ? ", .gzi" : "");
    }
    int n = faidx_nseq(s->fai);
    if (n <= 0) return mb_cli_errf(err, errlen, s->path, "no sequences (its .fai index is empty)");
    s->fai_name = malloc((size_t)n * sizeof *s->fai_name);
    s->fai_len = malloc((size_t)n * sizeof *s->fai_len);
    if (!s->fai_name || !s->fai_len) return mb_cli_errf(err, errlen, s->path, "out of memory");
    for (int i = 0; i < n; i++) {
        s->fai_name[i] = faidx_iseq(s->fai, i);
        s->fai_len[i] = s->fai_name[i] ? fai_record_len(s->fai, s->fai_name[i]) : -1;
        if (s->fai_len[i] < 0)
            return mb_cli_errf(err, errlen, s->path, "record %d of its .fai index is unreadable",
                            i + 1);
    }
    s->nrec = n;
    s->kind = DNA_SRC_FASTA_INDEXED;
    return 1;
}

/* ---- open ---------------------------------------------------------------- */

static int has_suffix(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    if (a < b) return 0;
    for (size_t i = 0; i < b; i++) {
        char c = s[a - b + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suf[i]) return 0;
    }
    return 1;
}

/* Content htslib does not recognise: say what the name promised. */
static int bad_content(const char *path, char *err, size_t errlen)
{
    if (has_suffix(path, ".bam")) return mb_cli_errf(err, errlen, path, "not a valid BAM file");
    if (has_suffix(path, ".cram")) return mb_cli_errf(err, errlen, path, "not a valid CRAM file");
    return mb_cli_errf(err, errlen, path, "not a FASTA, BAM or CRAM file (unrecognised content)");
}

dna_src *dna_src_open(const char *path, const dna_src_opts *o, char *err, size_t errlen)
{
    dna_src_opts def;
    if (!o) {
        dna_src_opts_default(&def);
        o = &def;
    }
    if (!path || !*path) {
        mb_cli_errf(err, errlen, "''", "no file name given (an empty argument)");
        return NULL;
    }
    dna_src *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        mb_cli_errf(err, errlen, path, "out of memory");
        return NULL;
    }

    errno = 0;
    htsFile *fp = hts_open(path, "r");
    if (!fp) {
        int e = errno;
        /* htslib answers ENOEXEC for content it cannot identify */
        if (e == ENOEXEC || e == 0)
            bad_content(path, err, errlen);
        else
            mb_cli_errf(err, errlen, path, "%s", strerror(e));
        goto fail;
    }
    const htsFormat *f = hts_get_format(fp);
    char *desc = hts_format_description(f);
    snprintf(s->format, sizeof s->format, "%s", desc ? desc : "unknown format");
    free(desc);

    switch (f->format) {
    case empty_format:
        /* htslib saw no content: an empty file, or a compressed one that
         * breaks off before its first block inflates */
        if (f->compression != no_compression)
            mb_cli_errf(err, errlen, path, "truncated or corrupt %s file: it breaks off in its first compressed "
                                           "block, before any content",
                        f->compression == bgzf ? "bgzip" : "gzip");
        else
            mb_cli_errf(err, errlen, path, "no sequences (empty file)");
        goto fail;
    case fasta_format: {
        int compression = f->compression;
        if (o->index_mode != DNA_INDEX_NEVER && compression != gzip) {
            /* faidx opens the file itself */
            int r = hts_close(fp);
            fp = NULL;
            if (r != 0) {
                mb_cli_errf(err, errlen, path, "read error");
                goto fail;
            }
            r = try_faidx(s, compression, o->index_mode, err, errlen);
            if (r < 0) goto fail;
            if (r > 0) return s;
            errno = 0;
            fp = hts_open(path, "r");
            if (!fp) {
                mb_cli_errf(err, errlen, path, "%s", errno ? strerror(errno) : "cannot reopen");
                goto fail;
            }
        }
        s->kind = DNA_SRC_FASTA_MEMORY;
        if (dna_fasta_stream(fp, path, &s->mem, err, errlen)) goto fail;
        break;
    }
    case sam:
    case bam:
    case cram:
    case fastq_format:
        s->kind = DNA_SRC_READS;
        if (dna_reads_load(fp, path, o, &s->mem, &s->skipped, err, errlen)) goto fail;
        break;
    case text_format:
    case unknown_format:
        /* text that is none of htslib's formats: a FASTA that does not
         * start with '>' lands here, and the reader says what is wrong */
        if (f->category != unknown_category || has_suffix(path, ".bam") ||
            has_suffix(path, ".cram")) {
            bad_content(path, err, errlen);
            goto fail;
        }
        s->kind = DNA_SRC_FASTA_MEMORY;
        if (dna_fasta_stream(fp, path, &s->mem, err, errlen)) goto fail;
        break;
    default:
        mb_cli_errf(err, errlen, path, "is %s, not a FASTA, BAM or CRAM file", s->format);
        goto fail;
    }
    s->nrec = s->mem.nrec;
    if (hts_close(fp) != 0) {
        fp = NULL;
        mb_cli_errf(err, errlen, path, "read error (at close)");
        goto fail;
    }
    return s;

fail:
    if (fp) hts_close(fp);
    dna_src_close(s);
    return NULL;
}

void dna_src_close(dna_src *s)
{
    if (!s) return;
    if (s->fai) fai_destroy(s->fai);
    free(s->fai_name);
    free(s->fai_len);
    dna_store_free(&s->mem);
    free(s->path);
    free(s);
}

/* ---- accessors ----------------------------------------------------------- */

const char *dna_src_path(const dna_src *s) { return s->path; }
dna_src_kind dna_src_get_kind(const dna_src *s) { return s->kind; }
const char *dna_src_format(const dna_src *s) { return s->format; }
int64_t dna_src_nrec(const dna_src *s) { return s->nrec; }
int64_t dna_src_skipped(const dna_src *s) { return s->skipped; }

const char *dna_src_name(const dna_src *s, int64_t rec)
{
    if (rec < 0 || rec >= s->nrec) return NULL;
    return s->kind == DNA_SRC_FASTA_INDEXED ? s->fai_name[rec] : dna_store_name(&s->mem, rec);
}

int64_t dna_src_len(const dna_src *s, int64_t rec)
{
    if (rec < 0 || rec >= s->nrec) return -1;
    return s->kind == DNA_SRC_FASTA_INDEXED ? s->fai_len[rec] : s->mem.len[rec];
}

int dna_src_fetch(dna_src *s, int64_t rec, int64_t start, int64_t len, int32_t *out, char *err,
                  size_t errlen)
{
    if (rec < 0 || rec >= s->nrec)
        return mb_cli_errf(err, errlen, s->path, "no record %lld (it has %lld)", (long long)rec,
                        (long long)s->nrec);
    const int64_t n = dna_src_len(s, rec);
    if (start < 0 || len < 0 || start > n || len > n - start)
        return mb_cli_errf(err, errlen, s->path, "range %lld-%lld is outside '%s' (length %lld)",
                        (long long)start, (long long)(start + len), dna_src_name(s, rec),
                        (long long)n);
    if (len == 0) return 0;

    if (s->kind != DNA_SRC_FASTA_INDEXED) {
        const uint8_t *t = s->mem.tok + s->mem.off[rec] + start;
        for (int64_t i = 0; i < len; i++) out[i] = t[i];
        return 0;
    }
    hts_pos_t got = 0;
    /* faidx takes an inclusive end */
    char *seq = faidx_fetch_seq64(s->fai, s->fai_name[rec], (hts_pos_t)start,
                                  (hts_pos_t)(start + len - 1), &got);
    if (!seq || got != len) {
        free(seq);
        return mb_cli_errf(err, errlen, s->path,
                        "cannot read %s:%lld-%lld (truncated file, or a stale .fai index?)",
                        s->fai_name[rec], (long long)start, (long long)(start + len));
    }
    dna_tok_encode(seq, (size_t)len, out);
    free(seq);
    return 0;
}
