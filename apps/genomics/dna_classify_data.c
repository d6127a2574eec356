/* mamba-dna classify train: the classes' data -- the sets of their files,
 * their training intervals and window samplers, and the fixed validation
 * windows (dna_classify.h). */
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"

/* ---- the classes' data ----------------------------------------------------------- */

void cl_data_free(cl_data *d)
{
    for (int c = 0; c < d->C && d->cls; c++) {
        cl_class *k = &d->cls[c];
        dna_sampler_free(k->smp);
        dna_split_free(&k->a);
        dna_split_free(&k->b);
        free(k->vw);
    }
    free(d->cls);
    for (int i = 0; i < d->nsets; i++) dna_set_close(d->sets[i]);
    free(d->sets);
    mb_cli_names_free(&d->names);
    mb_cli_names_free(&d->vnames);
    cl_files_free(&d->files);
    cl_files_free(&d->vfiles);
    memset(d, 0, sizeof *d);
}

/* Opens paths as one set owned by d (NULL after an error line). */
static dna_set *cl_open(cl_data *d, const char *const *paths, int n, const char *reference)
{
    dna_set **v = realloc(d->sets, sizeof *v * (size_t)(d->nsets + 1));
    if (!v) {
        mb_cli_error(DNA_PROG, "out of memory");
        return NULL;
    }
    d->sets = v;
    dna_set *s = dna_cmd_open_set(paths, n, reference);
    if (s) d->sets[d->nsets++] = s;
    return s;
}

/* ---- setup ----------------------------------------------------------------------- */

int cl_setup_data(const cl_opts *o, cl_data *d)
{
    char err[512], list[256];
    const int valsep = d->vfiles.n > 0 || o->val_tsv; /* validation from elsewhere */
    dna_set *fset = NULL;
    cl_regions rg = {0}, vrg = {0};
    int rc = -1;
    if (o->n_fasta && !(fset = cl_open(d, o->fasta, o->n_fasta, o->reference))) goto done;
    if (o->tsv) {
        if (cl_read_tsv(o->tsv, fset, &d->names, 1, o->t.seq_len, &rg)) goto done;
        if (d->names.n < 2) {
            mb_cli_error(DNA_PROG, "%s: one label ('%s'): a classifier needs at least two classes", o->tsv,
                         d->names.v[0]);
            goto done;
        }
    }
    d->C = d->names.n;
    if (!(d->cls = calloc((size_t)d->C, sizeof *d->cls))) {
        mb_cli_error(DNA_PROG, "out of memory");
        goto done;
    }
    /* training (and with --val-frac, validation) intervals */
    for (int c = 0; c < d->C; c++) {
        cl_class *k = &d->cls[c];
        if (o->tsv) {
            k->tset = k->vset = fset;
            k->src = o->tsv;
            if (cl_regions_ivals(&rg, c, valsep ? 0 : 1, o->val_frac, &k->a.train) ||
                (!valsep && cl_regions_ivals(&rg, c, 2, o->val_frac, &k->a.val))) {
                mb_cli_error(DNA_PROG, "out of memory");
                goto done;
            }
        } else {
            int n;
            const char **paths = cl_files_of(&d->files, c, &n);
            if (!paths) {
                mb_cli_error(DNA_PROG, "out of memory");
                goto done;
            }
            k->src = paths[0];
            k->tset = k->vset = cl_open(d, paths, n, o->reference);
            free(paths);
            if (!k->tset) goto done;
            if (dna_split_fraction(k->tset, valsep ? 0.0 : o->val_frac, &k->a, err, sizeof err)) {
                mb_cli_error(DNA_PROG, "%s", err);
                goto done;
            }
        }
        k->tiv = &k->a.train;
        k->viv = valsep ? NULL : &k->a.val;
    }
    /* held-out files per class */
    for (int v = 0; v < d->vnames.n; v++) {
        const int c = mb_cli_names_find(&d->names, d->vnames.v[v]);
        int n;
        const char **paths = cl_files_of(&d->vfiles, v, &n);
        if (!paths) {
            mb_cli_error(DNA_PROG, "out of memory");
            goto done;
        }
        if (c < 0) {
            mb_cli_error(DNA_PROG, "%s: --val-class '%s' is not one of the training classes (%s)", paths[0],
                         d->vnames.v[v], mb_cli_names_list(&d->names, list, sizeof list));
            free(paths);
            goto done;
        }
        cl_class *k = &d->cls[c];
        k->vset = cl_open(d, paths, n, o->reference);
        free(paths);
        if (!k->vset) goto done;
        if (dna_split_fraction(k->vset, 1.0, &k->b, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            goto done;
        }
        k->viv = &k->b.val;
    }
    /* held-out regions */
    if (o->val_tsv) {
        if (cl_read_tsv(o->val_tsv, fset, &d->names, 0, 0, &vrg)) goto done;
        for (int c = 0; c < d->C; c++) {
            cl_class *k = &d->cls[c];
            if (cl_regions_ivals(&vrg, c, 0, 0.0, &k->b.val)) {
                mb_cli_error(DNA_PROG, "out of memory");
                goto done;
            }
            k->vset = fset;
            k->viv = &k->b.val;
        }
    }
    rc = 0;
done:
    free(rg.v);
    free(vrg.v);
    return rc;
}

int cl_setup_windows(const cl_opts *o, cl_data *d, int64_t *nval)
{
    char err[512];
    *nval = 0;
    uint64_t vrng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)o->t.seed;
    for (int c = 0; c < d->C; c++) {
        cl_class *k = &d->cls[c];
        if (k->tiv->n == 0) {
            mb_cli_error(DNA_PROG, "%s: class '%s' has no training sequence", k->src, d->names.v[c]);
            return -1;
        }
        const int64_t tlong = dna_ivals_longest(k->tiv, NULL);
        if (tlong < o->t.seq_len) {
            const int held = k->viv == &k->a.val; /* --val-frac cut the training sequences */
            char how[96] = "";
            if (held) snprintf(how, sizeof how, " once the last %g of each is held out", o->val_frac);
            mb_cli_error(DNA_PROG, "%s: class '%s': no training sequence is --seq-len %lld bases long%s (the "
                                   "longest is %lld): use a shorter --seq-len%s",
                         k->src, d->names.v[c], (long long)o->t.seq_len, how, (long long)tlong,
                         held ? ", a smaller --val-frac, or --val-class / --val-tsv" : "");
            return -1;
        }
        if (!(k->smp = dna_sampler_create(k->tset, k->tiv, o->t.seq_len, err, sizeof err))) {
            mb_cli_error(DNA_PROG, "%s (training windows of class '%s')", err, d->names.v[c]);
            return -1;
        }
    }
    for (int c = 0; c < d->C; c++) {
        cl_class *k = &d->cls[c];
        const int64_t longest = k->viv ? dna_ivals_longest(k->viv, NULL) : 0;
        if (longest == 0) continue;
        k->vlen = longest < o->t.seq_len ? longest : o->t.seq_len;
        k->nv = o->val_windows;
        int32_t *scratch = malloc(sizeof(int32_t) * (size_t)k->vlen);
        k->vw = malloc(sizeof *k->vw * (size_t)k->nv);
        dna_sampler *vs = scratch && k->vw ? dna_sampler_create(k->vset, k->viv, k->vlen, err, sizeof err) : NULL;
        int bad = vs == NULL;
        if (bad)
            mb_cli_error(DNA_PROG, "%s (validation windows of class '%s')", scratch && k->vw ? err : "out of memory",
                         d->names.v[c]);
        for (int64_t i = 0; !bad && i < k->nv; i++)
            if (dna_sampler_draw(vs, &vrng, 0, scratch, &k->vw[i], err, sizeof err)) {
                mb_cli_error(DNA_PROG, "%s (validation windows of class '%s')", err, d->names.v[c]);
                bad = 1;
            }
        dna_sampler_free(vs);
        free(scratch);
        if (bad) return -1;
        *nval += k->nv;
    }
    if (*nval == 0) {
        mb_cli_error(DNA_PROG, "%s: no held-out sequence to validate on (see --val-class, --val-tsv, --val-frac)",
                     d->cls[0].src);
        return -1;
    }
    /* the notes, once nothing can fail: an error stays the only line */
    for (int c = 0; c < d->C; c++) {
        const cl_class *k = &d->cls[c];
        if (k->nv == 0) mb_cli_warn(DNA_PROG, "class '%s' has no validation sequence", d->names.v[c]);
        else if (k->vlen < o->t.seq_len)
            fprintf(stderr, DNA_PROG ": validation windows of class '%s' are %lld bases: its longest held-out "
                            "interval is that long\n", d->names.v[c], (long long)k->vlen);
    }
    return 0;
}
