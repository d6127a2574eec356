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
    const int C = d->C;
    int64_t maxn, maxlen;
    cl_val_extent(d, &maxn, &maxlen);
    memset(ev->conf, 0, sizeof(int64_t) * (size_t)C * C);
    ev->n = ev->correct = 0;
    ev->loss = 0;
    cl_pooler pl;
    if (cl_pooler_init(&pl, m, bmax < maxn ? bmax : maxn, maxlen)) return -1;
    const int64_t B = pl.B;
    float *probs = malloc(sizeof(float) * (size_t)(B * C));
    int rc = 0;
    if (!probs) {
        mb_cli_error(DNA_PROG, "validation: out of memory");
        rc = -1;
    }
    for (int c = 0; rc == 0 && c < C; c++) {
        const cl_class *k = &d->cls[c];
        for (int64_t w0 = 0; rc == 0 && w0 < k->nv; w0 += B) {
            const int64_t nb = k->nv - w0 < B ? k->nv - w0 : B;
            cl_val_windows f = {k, w0};
            if (cl_pooler_run(&pl, nb, k->vlen, cl_val_fetch, &f)) {
                rc = -1;
                break;
            }
            if (mb_model_classify_pooled(m, pl.pooled, (int)B, probs)) {
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
    cl_pooler_free(&pl);
    free(probs);
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
