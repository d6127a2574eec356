/* mamba-dna classify train: the validation -- every held-out window
 * classified the way predict does it -- and its report, the accuracy and
 * the confusion matrix (dna_classify.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"

/* ---- validation -------------------------------------------------------------- */

/* Classifies every validation window through mb_model_forward_chunk_pooled
 * (the path predict takes): B windows of one class at a time, chunks of
 * CL_VAL_TOKENS / B tokens. Prints its error line. */
int cl_validate(mb_model *m, cl_data *d, int64_t bmax, cl_eval *ev)
{
    const int C = d->C, dm = mb_model_config(m)->d_model;
    int64_t maxn = 0, maxlen = 1;
    for (int c = 0; c < C; c++) {
        maxn = d->cls[c].nv > maxn ? d->cls[c].nv : maxn;
        maxlen = d->cls[c].vlen > maxlen ? d->cls[c].vlen : maxlen;
    }
    int64_t B = bmax < maxn ? bmax : maxn;
    B = B < CL_MAX_BATCH ? B : CL_MAX_BATCH;
    B = B > 0 ? B : 1;
    int64_t chunk = CL_VAL_TOKENS / B > 0 ? CL_VAL_TOKENS / B : 1;
    chunk = chunk < maxlen ? chunk : maxlen;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * chunk));
    float *hs = malloc(sizeof(float) * (size_t)(B * dm));
    float *pooled = malloc(sizeof(float) * (size_t)(B * dm));
    float *probs = malloc(sizeof(float) * (size_t)(B * C));
    double *acc = malloc(sizeof(double) * (size_t)(B * dm));
    mb_state *st = (tok && hs && pooled && probs && acc) ? mb_state_create(m, (int)B) : NULL;
    memset(ev->conf, 0, sizeof(int64_t) * (size_t)C * C);
    ev->n = ev->correct = 0;
    ev->loss = 0;
    int rc = 0;
    char err[512];
    if (!st) {
        const int had_memory = tok && hs && pooled && probs && acc;
        mb_cli_error(DNA_PROG, "validation: %s", had_memory ? mb_error_last() : "out of memory");
        rc = -1;
    }
    for (int c = 0; rc == 0 && c < C; c++) {
        const cl_class *k = &d->cls[c];
        const int64_t L = k->vlen;
        for (int64_t w0 = 0; rc == 0 && w0 < k->nv; w0 += B) {
            const int64_t nb = k->nv - w0 < B ? k->nv - w0 : B;
            mb_state_reset(st);
            memset(acc, 0, sizeof(double) * (size_t)(B * dm));
            for (int64_t t0 = 0; rc == 0 && t0 < L; t0 += chunk) {
                const int64_t n = L - t0 < chunk ? L - t0 : chunk;
                for (int64_t b = 0; rc == 0 && b < nb; b++) {
                    const dna_window *w = &k->vw[w0 + b];
                    if (dna_set_fetch(k->vset, w->rec, w->start + t0, n, tok + b * n, err, sizeof err)) {
                        mb_cli_error(DNA_PROG, "%s", err);
                        rc = -1;
                    }
                }
                /* the state holds B rows: rows past the last window run on copies of the first */
                for (int64_t b = nb; rc == 0 && b < B; b++) memcpy(tok + b * n, tok, sizeof(int32_t) * (size_t)n);
                if (rc) break;
                memset(hs, 0, sizeof(float) * (size_t)(B * dm));
                if (mb_model_forward_chunk_pooled(m, st, tok, (int)n, NULL, hs)) {
                    mb_cli_error(DNA_PROG, "validation: %s", mb_error_last());
                    rc = -1;
                    break;
                }
                for (int64_t i = 0; i < B * dm; i++) acc[i] += hs[i];
            }
            if (rc) break;
            for (int64_t i = 0; i < B * dm; i++) pooled[i] = (float)(acc[i] / (double)L);
            if (mb_model_classify_pooled(m, pooled, (int)B, probs)) {
                mb_cli_error(DNA_PROG, "validation: %s", mb_error_last());
                rc = -1;
                break;
            }
            for (int64_t b = 0; b < nb; b++) {
                const float *p = probs + b * C;
                int best = 0;
                for (int j = 1; j < C; j++) best = p[j] > p[best] ? j : best;
                ev->conf[(size_t)c * C + best]++;
                ev->correct += best == c;
                ev->n++;
                ev->loss -= log(p[c] > 1e-30f ? (double)p[c] : 1e-30);
            }
        }
    }
    mb_state_free(st);
    free(tok);
    free(hs);
    free(pooled);
    free(probs);
    free(acc);
    return rc;
}

double cl_eval_acc(const cl_eval *ev) { return ev->n ? (double)ev->correct / (double)ev->n : NAN; }

double cl_eval_chance(const cl_eval *ev)
{
    int64_t best = 0;
    for (int c = 0; c < ev->C; c++) {
        int64_t row = 0;
        for (int j = 0; j < ev->C; j++) row += ev->conf[(size_t)c * ev->C + j];
        best = row > best ? row : best;
    }
    return ev->n ? (double)best / (double)ev->n : NAN;
}

void cl_print_confusion(FILE *f, const cl_names *names, const cl_eval *ev)
{
    const int C = ev->C;
    const char *corner = "true\\pred";
    int w0 = (int)strlen(corner);
    for (int c = 0; c < C; c++) w0 = (int)strlen(names->v[c]) > w0 ? (int)strlen(names->v[c]) : w0;
    fprintf(f, "%-*s", w0, corner);
    for (int j = 0; j < C; j++) {
        int w = (int)strlen(names->v[j]);
        w = w < 6 ? 6 : w;
        fprintf(f, "  %*s", w, names->v[j]);
    }
    fputc('\n', f);
    for (int c = 0; c < C; c++) {
        fprintf(f, "%-*s", w0, names->v[c]);
        for (int j = 0; j < C; j++) {
            int w = (int)strlen(names->v[j]);
            w = w < 6 ? 6 : w;
            fprintf(f, "  %*lld", w, (long long)ev->conf[(size_t)c * C + j]);
        }
        fputc('\n', f);
    }
}

void cl_log_confusion(FILE *f, const cl_eval *ev)
{
    fputs(", \"confusion\": [", f);
    for (int c = 0; c < ev->C; c++) {
        fputs(c ? ", [" : "[", f);
        for (int j = 0; j < ev->C; j++) fprintf(f, "%s%lld", j ? ", " : "", (long long)ev->conf[(size_t)c * ev->C + j]);
        fputc(']', f);
    }
    fputc(']', f);
}
