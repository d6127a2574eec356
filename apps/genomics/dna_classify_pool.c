/* mamba-dna classify: the validation windows as records of the shared
 * pooler (mb_cli_classify.h), what validation, the distance rule's fit and
 * its held-out check read. */
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"

void cl_val_extent(const cl_data *d, int64_t *maxn, int64_t *maxlen)
{
    *maxn = *maxlen = 1;
    for (int c = 0; c < d->C; c++) {
        *maxn = d->cls[c].nv > *maxn ? d->cls[c].nv : *maxn;
        *maxlen = d->cls[c].vlen > *maxlen ? d->cls[c].vlen : *maxlen;
    }
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
