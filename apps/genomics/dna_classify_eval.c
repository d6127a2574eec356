/* mamba-dna classify train: the validation, every held-out window
 * classified the way predict does it (dna_classify.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"

/* ---- validation -------------------------------------------------------------- */

/* Classifies every validation window through mb_model_forward_chunk_pooled
 * (the path predict takes): B windows of one class at a time, chunks of
 * MB_CLI_POOL_TOKENS / B tokens. Prints its error line. */
int cl_validate(mb_model *m, cl_data *d, int64_t bmax, mb_cli_eval *ev)
{
    const int C = d->C;
    int64_t maxn, maxlen;
    cl_val_extent(d, &maxn, &maxlen);
    memset(ev->conf, 0, sizeof(int64_t) * (size_t)C * C);
    ev->n = ev->correct = 0;
    ev->loss = 0;
    mb_cli_pooler pl;
    if (mb_cli_pooler_init(&pl, DNA_PROG, m, bmax < maxn ? bmax : maxn, maxlen, 0)) return -1;
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
            if (mb_cli_pooler_run(&pl, nb, k->vlen, cl_val_fetch, &f)) {
                rc = -1;
                break;
            }
            if (mb_model_classify_pooled(m, pl.pooled, (int)B, probs)) {
                mb_cli_error(DNA_PROG, "validation: %s", mb_error_last());
                rc = -1;
                break;
            }
            for (int64_t b = 0; b < nb; b++) mb_cli_eval_add(ev, c, probs + b * C);
        }
    }
    mb_cli_pooler_free(&pl);
    free(probs);
    return rc;
}

