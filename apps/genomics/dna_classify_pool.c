/* mamba-dna classify: the mean final hidden state of a batch of windows
 * through chunks on a state of B rows (dna_classify.h), what validation,
 * the distance rule's fit and its held-out check read. */
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"

void cl_pooler_free(cl_pooler *p)
{
    mb_state_free(p->st);
    free(p->tok);
    free(p->hs);
    free(p->acc);
    free(p->pooled);
    memset(p, 0, sizeof *p);
}

void cl_val_extent(const cl_data *d, int64_t *maxn, int64_t *maxlen)
{
    *maxn = *maxlen = 1;
    for (int c = 0; c < d->C; c++) {
        *maxn = d->cls[c].nv > *maxn ? d->cls[c].nv : *maxn;
        *maxlen = d->cls[c].vlen > *maxlen ? d->cls[c].vlen : *maxlen;
    }
}

int cl_pooler_init(cl_pooler *p, mb_model *m, int64_t windows, int64_t L)
{
    memset(p, 0, sizeof *p);
    const int64_t B = windows < 1 ? 1 : windows < CL_MAX_BATCH ? windows : CL_MAX_BATCH;
    int64_t chunk = CL_VAL_TOKENS / B > 0 ? CL_VAL_TOKENS / B : 1;
    chunk = chunk < L ? chunk : L;
    p->m = m;
    p->B = B;
    p->chunk = chunk;
    p->d = mb_model_config(m)->d_model;
    p->tok = malloc(sizeof(int32_t) * (size_t)(B * chunk));
    p->hs = malloc(sizeof(float) * (size_t)(B * p->d));
    p->acc = malloc(sizeof(double) * (size_t)(B * p->d));
    p->pooled = malloc(sizeof(float) * (size_t)(B * p->d));
    if (!p->tok || !p->hs || !p->acc || !p->pooled) {
        mb_cli_error(DNA_PROG, "out of memory for %lld windows of %lld tokens a pass", (long long)B,
                     (long long)chunk);
        cl_pooler_free(p);
        return -1;
    }
    if (!(p->st = mb_state_create(m, (int)B))) {
        mb_cli_error(DNA_PROG, "state: %s", mb_error_last());
        cl_pooler_free(p);
        return -1;
    }
    return 0;
}

int cl_pooler_run(cl_pooler *p, int64_t nb, int64_t L, cl_fetch_fn fetch, void *ud)
{
    const int64_t B = p->B, dm = p->d;
    mb_state_reset(p->st);
    memset(p->acc, 0, sizeof(double) * (size_t)(B * dm));
    for (int64_t t0 = 0; t0 < L; t0 += p->chunk) {
        const int64_t n = L - t0 < p->chunk ? L - t0 : p->chunk;
        for (int64_t b = 0; b < nb; b++)
            if (fetch(ud, b, t0, n, p->tok + b * n)) return -1;
        /* the state holds B rows: rows past the last window run on copies of the first */
        for (int64_t b = nb; b < B; b++) memcpy(p->tok + b * n, p->tok, sizeof(int32_t) * (size_t)n);
        memset(p->hs, 0, sizeof(float) * (size_t)(B * dm));
        if (mb_model_forward_chunk_pooled(p->m, p->st, p->tok, (int)n, NULL, p->hs)) {
            mb_cli_error(DNA_PROG, "%s", mb_error_last());
            return -1;
        }
        for (int64_t i = 0; i < B * dm; i++) p->acc[i] += p->hs[i];
    }
    for (int64_t i = 0; i < B * dm; i++) p->pooled[i] = (float)(p->acc[i] / (double)L);
    return 0;
}

int cl_val_fetch(void *ud, int64_t b, int64_t t0, int64_t n, int32_t *out)
{
    const cl_val_windows *f = ud;
    const dna_window *w = &f->k->vw[f->w0 + b];
    char err[512];
    if (dna_set_fetch(f->k->vset, w->rec, w->start + t0, n, out, err, sizeof err)) {
        mb_cli_error(DNA_PROG, "%s", err);
        return -1;
    }
    return 0;
}
