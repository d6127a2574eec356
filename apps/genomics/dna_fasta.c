/* FASTA streamed into memory through htslib's line reader, which inflates
 * gzip and bgzip transparently: the path for files without an index. */
#include <stdlib.h>
#include <string.h>

#include <htslib/kseq.h>
#include <htslib/kstring.h>

#include "mb_cli.h"
#include "dna_load.h"
#include "dna_tok.h"

/* Appends the bases of one sequence line, dropping blanks (a stray space or
 * tab is formatting, not an unknown base). */
static int append_line(dna_store *st, const char *s, size_t n)
{
    uint8_t *dst = dna_store_reserve(st, (int64_t)n);
    if (!dst) return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\v' || c == '\f') continue;
        dst[k++] = dna_tok_table[c];
    }
    dna_store_commit(st, (int64_t)k);
    return 0;
}

int dna_fasta_stream(htsFile *fp, const char *path, dna_store *st, char *err, size_t errlen)
{
    const int compressed = hts_get_format(fp)->compression != no_compression;
    kstring_t line = KS_INITIALIZE;
    int64_t lineno = 0;
    int r, rc = -1;

    while ((r = hts_getline(fp, KS_SEP_LINE, &line)) >= 0) {
        lineno++;
        /* a big unindexed FASTA takes a while: Ctrl-C and SIGTERM stop it */
        if ((lineno & 0xffff) == 0 && mb_cli_interrupted()) {
            mb_cli_errf(err, errlen, path, "interrupted while reading it (line %lld)", (long long)lineno);
            goto done;
        }
        size_t n = line.l;
        const char *s = line.s;
        if (n > 0 && s[n - 1] == '\r') n--; /* files written on Windows */
        if (n == 0) continue;
        if (s[0] == '>') {
            /* the name is the first word; the rest is a description */
            size_t a = 1;
            while (a < n && (s[a] == ' ' || s[a] == '\t')) a++;
            size_t b = a;
            while (b < n && s[b] != ' ' && s[b] != '\t') b++;
            if (b == a) {
                mb_cli_errf(err, errlen, path, "line %lld: FASTA header without a name",
                         (long long)lineno);
                goto done;
            }
            if (dna_store_begin(st, s + a, b - a)) goto oom;
        } else if (s[0] == ';') {
            continue; /* old-style FASTA comment */
        } else {
            if (st->nrec == 0) {
                mb_cli_errf(err, errlen, path,
                         "no FASTA header ('>') before sequence (line %lld)", (long long)lineno);
                goto done;
            }
            if (append_line(st, s, n)) goto oom;
        }
    }
    if (r < -1) {
        /* nothing read at all: the stream broke inside its first block
         * (gzip inflates a block before any line of it is seen) */
        if (compressed && lineno == 0)
            mb_cli_errf(err, errlen, path, "truncated or corrupt gzip file: it breaks off in its first "
                                           "compressed block, before a whole line");
        else if (compressed)
            mb_cli_errf(err, errlen, path, "truncated or corrupt gzip file (after %lld lines)",
                     (long long)lineno);
        else
            mb_cli_errf(err, errlen, path, "read error after %lld lines", (long long)lineno);
        goto done;
    }
    if (st->nrec == 0) {
        mb_cli_errf(err, errlen, path, "no sequences (no '>' record in the file)");
        goto done;
    }
    dna_store_shrink(st);
    rc = 0;
    goto done;
oom:
    mb_cli_errf(err, errlen, path, "out of memory after %lld bases", (long long)st->ntok);
done:
    free(line.s);
    return rc;
}
