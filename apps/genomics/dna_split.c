/* Train / validation intervals: by fraction (the tail of every record) or
 * from a BED of validation intervals. Deterministic by construction: no
 * randomness, only the record lengths and the BED's contents. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <htslib/hts.h>
#include <htslib/kseq.h>
#include <htslib/kstring.h>

#include "mb_cli.h"
#include "dna_seq.h"

static int push(dna_ivals *iv, int64_t *cap, int64_t rec, int64_t start, int64_t end)
{
    if (iv->n == *cap) {
        int64_t c = *cap ? *cap * 2 : 16;
        dna_ival *v = realloc(iv->v, (size_t)c * sizeof *v);
        if (!v) return -1;
        iv->v = v;
        *cap = c;
    }
    iv->v[iv->n++] = (dna_ival){rec, start, end};
    iv->bases += end - start;
    return 0;
}

void dna_split_free(dna_split *sp)
{
    if (!sp) return;
    free(sp->train.v);
    free(sp->val.v);
    memset(sp, 0, sizeof *sp);
}

int64_t dna_ivals_longest(const dna_ivals *iv, int64_t *idx)
{
    int64_t best = 0, at = -1;
    for (int64_t i = 0; i < iv->n; i++)
        if (iv->v[i].end - iv->v[i].start > best) best = iv->v[i].end - iv->v[i].start, at = i;
    if (idx) *idx = at;
    return best;
}

/* ---- by fraction --------------------------------------------------------- */

int dna_split_fraction(const dna_set *set, double frac, dna_split *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!(frac >= 0.0 && frac <= 1.0)) /* also refuses NaN */
        return mb_cli_errf(err, errlen, "(split)", "validation fraction %g is not in [0, 1]", frac);
    int64_t ct = 0, cv = 0;
    for (int64_t r = 0; r < dna_set_nrec(set); r++) {
        const int64_t len = dna_set_len(set, r);
        int64_t nv = (int64_t)((double)len * frac);
        if (nv > len) nv = len;
        if (len - nv > 0 && push(&out->train, &ct, r, 0, len - nv)) goto oom;
        if (nv > 0 && push(&out->val, &cv, r, len - nv, len)) goto oom;
    }
    return 0;
oom:
    dna_split_free(out);
    return mb_cli_errf(err, errlen, "(split)", "out of memory");
}

/* ---- from a BED ---------------------------------------------------------- */

static int cmp_ival(const void *a, const void *b)
{
    const dna_ival *x = a, *y = b;
    if (x->rec != y->rec) return (x->rec > y->rec) - (x->rec < y->rec);
    return (x->start > y->start) - (x->start < y->start);
}

/* Splits line s into up to max whitespace-separated fields (in place). */
static int fields(char *s, char **f, int max)
{
    int n = 0;
    while (*s && n < max) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) break;
        f[n++] = s;
        while (*s && *s != ' ' && *s != '\t') s++;
        if (*s) *s++ = '\0';
    }
    return n;
}

/* A non-negative decimal integer filling all of s. */
static int parse_pos(const char *s, int64_t *v)
{
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *v = x;
    return 0;
}

static int read_bed(const dna_set *set, const char *path, dna_ivals *val, char *err,
                    size_t errlen)
{
    int64_t cap = 0, lineno = 0;
    int r, rc = -1;
    kstring_t line = KS_INITIALIZE;
    errno = 0;
    htsFile *fp = hts_open(path, "r");
    if (!fp) {
        int e = errno;
        return mb_cli_errf(err, errlen, path, "%s",
                        e && e != ENOEXEC ? strerror(e) : "not a BED file (unrecognised content)");
    }
    if (hts_get_format(fp)->category != unknown_category &&
        hts_get_format(fp)->format != bed) {
        mb_cli_errf(err, errlen, path, "not a BED file");
        goto done;
    }
    while ((r = hts_getline(fp, KS_SEP_LINE, &line)) >= 0) {
        lineno++;
        if (line.l > 0 && line.s[line.l - 1] == '\r') line.s[--line.l] = '\0';
        char *f[3];
        int nf = fields(line.s, f, 3);
        if (nf == 0 || f[0][0] == '#' || !strcmp(f[0], "track") || !strcmp(f[0], "browser"))
            continue;
        int64_t beg, end;
        if (nf < 3 || parse_pos(f[1], &beg) || parse_pos(f[2], &end)) {
            mb_cli_errf(err, errlen, path, "line %lld: expected chrom, start, end (0-based integers)",
                     (long long)lineno);
            goto done;
        }
        const int64_t rec = dna_set_find(set, f[0]);
        if (rec == -1) {
            mb_cli_errf(err, errlen, path, "line %lld: contig '%s' not in the inputs",
                     (long long)lineno, f[0]);
            goto done;
        }
        if (rec == -2) {
            mb_cli_errf(err, errlen, path, "line %lld: contig '%s' is in the inputs more than once",
                     (long long)lineno, f[0]);
            goto done;
        }
        const int64_t len = dna_set_len(set, rec);
        if (beg > end || end > len) {
            mb_cli_errf(err, errlen, path, "line %lld: interval %lld-%lld is not inside '%s' (0-%lld)",
                     (long long)lineno, (long long)beg, (long long)end, f[0], (long long)len);
            goto done;
        }
        if (end > beg && push(val, &cap, rec, beg, end)) {
            mb_cli_errf(err, errlen, path, "out of memory");
            goto done;
        }
    }
    if (r < -1) {
        mb_cli_errf(err, errlen, path, "read error after line %lld", (long long)lineno);
        goto done;
    }
    if (val->n == 0) {
        mb_cli_errf(err, errlen, path, "no intervals");
        goto done;
    }
    rc = 0;
done:
    free(line.s);
    if (hts_close(fp) != 0 && rc == 0) rc = mb_cli_errf(err, errlen, path, "read error (at close)");
    return rc;
}

/* Sorts and merges overlapping or touching intervals in place. */
static void merge(dna_ivals *iv)
{
    if (iv->n == 0) return;
    qsort(iv->v, (size_t)iv->n, sizeof *iv->v, cmp_ival);
    int64_t k = 0;
    for (int64_t i = 1; i < iv->n; i++) {
        dna_ival *last = &iv->v[k];
        if (iv->v[i].rec == last->rec && iv->v[i].start <= last->end) {
            if (iv->v[i].end > last->end) last->end = iv->v[i].end;
        } else {
            iv->v[++k] = iv->v[i];
        }
    }
    iv->n = k + 1;
    iv->bases = 0;
    for (int64_t i = 0; i < iv->n; i++) iv->bases += iv->v[i].end - iv->v[i].start;
}

int dna_split_bed(const dna_set *set, const char *bed_path, dna_split *out, char *err,
                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (read_bed(set, bed_path, &out->val, err, errlen)) {
        dna_split_free(out);
        return -1;
    }
    merge(&out->val);
    /* train = the complement of val in every record */
    int64_t cap = 0, j = 0;
    for (int64_t r = 0; r < dna_set_nrec(set); r++) {
        int64_t at = 0;
        for (; j < out->val.n && out->val.v[j].rec == r; j++) {
            if (out->val.v[j].start > at && push(&out->train, &cap, r, at, out->val.v[j].start))
                goto oom;
            at = out->val.v[j].end;
        }
        const int64_t len = dna_set_len(set, r);
        if (len > at && push(&out->train, &cap, r, at, len)) goto oom;
    }
    return 0;
oom:
    dna_split_free(out);
    return mb_cli_errf(err, errlen, bed_path, "out of memory");
}
