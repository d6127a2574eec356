/* Mean-pooled hidden states over records or windows (dna_pool.h). */
#include "dna_pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dna_cmd.h"

#define POOL_MAX_BATCH 32

typedef struct {
    mb_model *m;
    const char *model_path, *what;
    dna_set *set;
    const dna_pool_opts *o;
    dna_pool_row_fn row;
    void *ud;
    int d, B;
    mb_state *st1, *stB; /* one sequence in chunks; B whole windows (NULL when B is 1) */
    int32_t *tok;        /* one pass: chunk tokens, or B windows */
    float *hs;           /* (B, d) sums of one pass */
    double *acc;         /* (d) sum over a record's or window's chunks */
    int64_t *brec, *bstart;
    int nb;
    int64_t rows, bases, total; /* total: the bases of every row to come */
    int64_t rec;                /* the record being read */
    mb_cli_progress pg;
} pool_run;

/* Progress: bases done of the total (so one long record shows where it
 * is), the record, the rate and the ETA. */
static void pool_progress(pool_run *r)
{
    if (!mb_cli_progress_due(&r->pg)) return;
    char eta[48];
    mb_cli_progress_eta(&r->pg, (double)r->bases, (double)r->total, eta, sizeof eta);
    const double t = mb_cli_progress_elapsed(&r->pg);
    fprintf(stderr, DNA_PROG " %s: %lld/%lld bases (%.0f%%), record %lld/%lld %s, %lld rows, %.0f bases/s, %s\n",
            r->what, (long long)r->bases, (long long)r->total,
            r->total ? 100.0 * (double)r->bases / (double)r->total : 100.0, (long long)r->rec + 1,
            (long long)dna_set_nrec(r->set), dna_set_name(r->set, r->rec), (long long)r->rows,
            t > 0 ? (double)r->bases / t : 0.0, eta);
}

static int pool_model_error(pool_run *r, int64_t rec)
{
    mb_cli_error(DNA_PROG, "%s: record '%s': %s", r->model_path, dna_set_name(r->set, rec), mb_error_last());
    return -1;
}

static int pool_emit(pool_run *r, int64_t rec, int64_t start, int64_t end)
{
    /* a model whose numbers overflow gives nan or inf: an error, not a row */
    for (int k = 0; k < r->d && end > start; k++)
        if (!isfinite(r->acc[k])) {
            mb_cli_error(DNA_PROG, "%s: record '%s' [%lld, %lld): the hidden states are not finite (%s): the "
                                   "model's numbers overflow",
                         r->model_path, dna_set_name(r->set, rec), (long long)start, (long long)end,
                         mb_cli_nonfinite(r->acc[k]));
            return -1;
        }
    if (r->row(r->ud, rec, start, end, r->acc)) return -1;
    r->rows++;
    return 0;
}

/* rec[start, start + len) in chunks with the state carried */
static int pool_single(pool_run *r, int64_t rec, int64_t start, int64_t len)
{
    char err[512];
    memset(r->acc, 0, sizeof(double) * (size_t)r->d);
    mb_state_reset(r->st1);
    r->rec = rec;
    for (int64_t p = 0; p < len; p += r->o->chunk) {
        const int64_t n = len - p < r->o->chunk ? len - p : r->o->chunk;
        if (dna_set_fetch(r->set, rec, start + p, n, r->tok, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return -1;
        }
        memset(r->hs, 0, sizeof(float) * (size_t)r->d);
        if (mb_model_forward_chunk_pooled(r->m, r->st1, r->tok, (int)n, NULL, r->hs)) return pool_model_error(r, rec);
        for (int k = 0; k < r->d; k++) r->acc[k] += r->hs[k];
        r->bases += n;
        pool_progress(r);
        if (mb_cli_interrupted()) return 0;
    }
    return pool_emit(r, rec, start, start + len);
}

/* the batched windows (all of length window) through one forward pass */
static int pool_flush(pool_run *r)
{
    if (!r->nb) return 0;
    const int64_t W = r->o->window;
    char err[512];
    for (int b = 0; b < r->nb; b++)
        if (dna_set_fetch(r->set, r->brec[b], r->bstart[b], W, r->tok + (size_t)b * W, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return -1;
        }
    /* rows past the last window: N, computed and dropped */
    for (size_t i = (size_t)r->nb * W; i < (size_t)r->B * W; i++) r->tok[i] = DNA_TOK_N;
    mb_state_reset(r->stB);
    memset(r->hs, 0, sizeof(float) * (size_t)r->B * r->d);
    if (mb_model_forward_chunk_pooled(r->m, r->stB, r->tok, (int)W, NULL, r->hs))
        return pool_model_error(r, r->brec[0]);
    for (int b = 0; b < r->nb; b++) {
        for (int k = 0; k < r->d; k++) r->acc[k] = r->hs[(size_t)b * r->d + k];
        if (pool_emit(r, r->brec[b], r->bstart[b], r->bstart[b] + W)) return -1;
    }
    r->bases += r->nb * W;
    r->nb = 0;
    pool_progress(r);
    return 0;
}

/* whole records, streamed (an indexed FASTA is read a chunk at a time) */
static int pool_records(pool_run *r)
{
    char err[512];
    dna_iter it;
    dna_iter_init(&it, r->set, NULL, r->o->chunk);
    dna_chunk c;
    int k;
    while ((k = dna_iter_next(&it, r->tok, &c, err, sizeof err)) == 1) {
        if (c.first) {
            mb_state_reset(r->st1);
            memset(r->acc, 0, sizeof(double) * (size_t)r->d);
        }
        r->rec = c.rec;
        if (c.len > 0) {
            memset(r->hs, 0, sizeof(float) * (size_t)r->d);
            if (mb_model_forward_chunk_pooled(r->m, r->st1, r->tok, (int)c.len, NULL, r->hs))
                return pool_model_error(r, c.rec);
            for (int j = 0; j < r->d; j++) r->acc[j] += r->hs[j];
        }
        r->bases += c.len;
        if (c.last && pool_emit(r, c.rec, 0, c.start + c.len)) return -1;
        pool_progress(r);
        if (mb_cli_interrupted()) return 0;
    }
    if (k < 0) {
        mb_cli_error(DNA_PROG, "%s", err);
        return -1;
    }
    return 0;
}

static int pool_windows(pool_run *r)
{
    const int64_t W = r->o->window, S = r->o->stride;
    for (int64_t rec = 0; rec < dna_set_nrec(r->set) && !mb_cli_interrupted(); rec++) {
        const int64_t len = dna_set_len(r->set, rec);
        if (len < W) {
            if (pool_flush(r) || pool_single(r, rec, 0, len)) return -1;
            continue;
        }
        for (int64_t s = 0; s + W <= len && !mb_cli_interrupted(); s += S) {
            if (!r->stB) {
                if (pool_single(r, rec, s, W)) return -1;
                continue;
            }
            r->rec = rec;
            r->brec[r->nb] = rec;
            r->bstart[r->nb] = s;
            if (++r->nb == r->B && pool_flush(r)) return -1;
        }
    }
    return pool_flush(r);
}

int dna_pool_run(mb_model *m, const char *model_path, dna_set *set, const dna_pool_opts *o, const char *what,
                 dna_pool_row_fn row, void *ud)
{
    pool_run r = {.m = m, .model_path = model_path, .what = what, .set = set, .o = o, .row = row, .ud = ud};
    r.d = mb_model_config(m)->d_model;
    /* whole windows that fit a forward pass go B at a time */
    r.B = 1;
    if (o->window && o->window <= o->chunk) {
        const int64_t b = o->chunk / o->window;
        r.B = (int)(b < POOL_MAX_BATCH ? b : POOL_MAX_BATCH);
    }
    int rc = -1;
    r.tok = malloc(sizeof(int32_t) * (size_t)o->chunk); /* B * window <= chunk */
    r.hs = malloc(sizeof(float) * (size_t)r.B * r.d);
    r.acc = malloc(sizeof(double) * (size_t)r.d);
    r.brec = malloc(sizeof(int64_t) * (size_t)r.B);
    r.bstart = malloc(sizeof(int64_t) * (size_t)r.B);
    if (!r.tok || !r.hs || !r.acc || !r.brec || !r.bstart) {
        mb_cli_error(DNA_PROG, "out of memory for %lld tokens a forward pass", (long long)o->chunk);
        goto done;
    }
    if (!(r.st1 = mb_state_create(m, 1)) || (r.B > 1 && !(r.stB = mb_state_create(m, r.B)))) {
        mb_cli_error(DNA_PROG, "recurrent state: %s", mb_error_last());
        goto done;
    }
    /* the bases of every row: whole records, or every window (a record
     * shorter than the window is one row of all of it) */
    r.total = o->window ? 0 : dna_set_bases(set);
    for (int64_t rec = 0; o->window && rec < dna_set_nrec(set); rec++) {
        const int64_t len = dna_set_len(set, rec);
        r.total += len < o->window ? len : ((len - o->window) / o->stride + 1) * o->window;
    }
    mb_cli_progress_start(&r.pg);
    rc = o->window ? pool_windows(&r) : pool_records(&r);
done:
    mb_state_free(r.st1);
    mb_state_free(r.stB);
    free(r.tok);
    free(r.hs);
    free(r.acc);
    free(r.brec);
    free(r.bstart);
    return rc;
}

void dna_pool_opts_init(dna_pool_opts *o)
{
    o->window = 0;
    o->stride = -1; /* unset: the window */
    o->chunk = 0;
}

int dna_pool_option(dna_pool_opts *o, int c, const char *arg, int *bad)
{
    const int64_t max = INT64_C(1) << 40;
    switch (c) {
    case DNA_POOL_O_WINDOW: *bad = mb_cli_parse_int(DNA_PROG, "--window", arg, 1, max, &o->window) != 0; return 1;
    case DNA_POOL_O_STRIDE: *bad = mb_cli_parse_int(DNA_PROG, "--stride", arg, 1, max, &o->stride) != 0; return 1;
    default: return 0;
    }
}

int dna_pool_check(dna_pool_opts *o)
{
    if (o->stride > 0 && !o->window) {
        mb_cli_error(DNA_PROG, "--stride goes with --window");
        return -1;
    }
    if (o->stride < 0) o->stride = o->window;
    return 0;
}
