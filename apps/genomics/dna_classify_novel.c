/* mamba-dna classify: the distance rule for "none of these" (dna_classify.h).
 *
 * A softmax over the known classes answers one of them for anything, often
 * with a probability near 1 (measured: a Klebsiella assembly, a species of
 * no class, called E. coli in 90% of its windows at p >= 0.9), so a
 * threshold on the probability cannot flag it. What differs is where its
 * pooled embedding lies: measured offline (scripts/embed_distance_check.py),
 * 49% of the Klebsiella windows lie within the 95th-percentile radius of
 * their nearest class against 95-99% of held-out windows of the known
 * strains. The rule, as measured there: each class's centroid of the
 * pooled embeddings of its training windows, distances in units of each
 * dimension's spread over all the classes' windows, a class's radius the
 * 95th percentile of its own windows' distances; a window farther from its
 * nearest centroid than that class's radius is unknown. (A spread per
 * class instead did worse on the tests' synthetic species: a sequence of
 * A and T only at 0.58 of a radius against 0.92.) The rule can only be
 * as good as the backbone's embeddings: classify train reports the share
 * of held-out windows it flags, and on a species of no class it was
 * measured to flag about half. Fitted by classify train on the model saved
 * in CLS and kept in CLS.novelty, a text file:
 *   mamba-dna-novelty 2 <d> <C> <percentile>
 *   sd <d spreads>
 *   <class name><TAB><radius> <d values of the centroid>   (C lines, in order) */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dna_classify.h"

#define CL_NOVEL_MAGIC "mamba-dna-novelty"

void cl_novel_free(cl_novel *nv)
{
    free(nv->sd);
    free(nv->cent);
    free(nv->radius);
    memset(nv, 0, sizeof *nv);
}

static int cl_novel_alloc(cl_novel *nv, int C, int d)
{
    memset(nv, 0, sizeof *nv);
    nv->C = C, nv->d = d;
    nv->sd = calloc((size_t)d, sizeof(double));
    nv->cent = calloc((size_t)C * d, sizeof(double));
    nv->radius = calloc((size_t)C, sizeof(double));
    if (nv->sd && nv->cent && nv->radius) return 0;
    cl_novel_free(nv);
    mb_cli_error(DNA_PROG, "out of memory");
    return -1;
}

double cl_novel_dist_to(const cl_novel *nv, const float *x, int c)
{
    double s = 0;
    for (int j = 0; j < nv->d; j++) {
        const double z = ((double)x[j] - nv->cent[(size_t)c * nv->d + j]) / nv->sd[j];
        s += z * z;
    }
    return sqrt(s);
}

double cl_novel_dist(const cl_novel *nv, const float *x, int *nearest)
{
    double best = INFINITY;
    *nearest = 0;
    for (int c = 0; c < nv->C; c++) {
        const double e = cl_novel_dist_to(nv, x, c);
        if (e < best) best = e, *nearest = c;
    }
    return best;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the windows a fit draws (mb_cli_pooler_run's fetch): B of them, whole */
typedef struct {
    const int32_t *tok;
    int64_t L;
} cl_drawn;

static int cl_drawn_fetch(void *ud, int64_t b, int64_t t0, int64_t n, int32_t *out)
{
    const cl_drawn *w = ud;
    memcpy(out, w->tok + b * w->L + t0, sizeof(int32_t) * (size_t)n);
    return 0;
}

int cl_novel_fit(mb_model *m, cl_data *d, int64_t per_class, int64_t L, int64_t seed, cl_novel *nv)
{
    const int C = d->C, dm = mb_model_config(m)->d_model;
    if (cl_novel_alloc(nv, C, dm)) return -1;
    mb_cli_pooler pl = {0};
    if (mb_cli_pooler_init(&pl, DNA_PROG, m, per_class, L, 0)) {
        cl_novel_free(nv);
        return -1;
    }
    const int64_t B = pl.B;
    float *emb = malloc(sizeof(float) * (size_t)(C * per_class * dm));
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * L));
    double *dist = malloc(sizeof(double) * (size_t)per_class);
    int rc = emb && tok && dist ? 0 : -1;
    if (rc) mb_cli_error(DNA_PROG, "out of memory for the distance rule's %lld windows", (long long)(C * per_class));
    char err[512];
    /* the windows: a stream of their own, not reverse-complemented */
    uint64_t rng = mb_cli_rng_row(seed, -2, 0);
    for (int c = 0; rc == 0 && c < C; c++)
        for (int64_t w0 = 0; rc == 0 && w0 < per_class; w0 += B) {
            const int64_t nb = per_class - w0 < B ? per_class - w0 : B;
            for (int64_t b = 0; rc == 0 && b < nb; b++)
                if (dna_sampler_draw(d->cls[c].smp, &rng, 0, tok + b * L, NULL, err, sizeof err)) {
                    mb_cli_error(DNA_PROG, "%s", err);
                    rc = -1;
                }
            cl_drawn w = {tok, L};
            if (rc == 0 && (rc = mb_cli_pooler_run(&pl, nb, L, cl_drawn_fetch, &w)) == 0)
                memcpy(emb + ((size_t)c * per_class + w0) * dm, pl.pooled, sizeof(float) * (size_t)(nb * dm));
        }
    if (rc == 0) {
        const int64_t n = C * per_class;
        for (int j = 0; j < dm; j++) {
            double mu = 0, v = 0;
            for (int64_t i = 0; i < n; i++) mu += emb[i * dm + j];
            mu /= (double)n;
            for (int64_t i = 0; i < n; i++) v += (emb[i * dm + j] - mu) * (emb[i * dm + j] - mu);
            /* a dimension constant over every window: a floor, not a division by 0 */
            const double sd = sqrt(v / (double)n);
            nv->sd[j] = sd > 1e-6 * (fabs(mu) + 1e-6) ? sd : 1e-6 * (fabs(mu) + 1e-6);
        }
        for (int c = 0; c < C; c++) {
            const float *e = emb + (size_t)c * per_class * dm;
            for (int j = 0; j < dm; j++) {
                double s = 0;
                for (int64_t i = 0; i < per_class; i++) s += e[i * dm + j];
                nv->cent[(size_t)c * dm + j] = s / (double)per_class;
            }
            for (int64_t i = 0; i < per_class; i++) dist[i] = cl_novel_dist_to(nv, e + i * dm, c);
            qsort(dist, (size_t)per_class, sizeof *dist, cmp_double);
            int64_t q = (int64_t)(CL_NOVEL_PERCENTILE / 100.0 * (double)per_class);
            nv->radius[c] = dist[q < per_class ? q : per_class - 1];
        }
    }
    mb_cli_pooler_free(&pl);
    free(emb);
    free(tok);
    free(dist);
    if (rc) cl_novel_free(nv);
    return rc;
}

int cl_novel_held_out(mb_model *m, cl_data *d, const cl_novel *nv, int64_t *flagged, int64_t *n)
{
    *flagged = *n = 0;
    int64_t maxn, maxlen;
    cl_val_extent(d, &maxn, &maxlen);
    mb_cli_pooler pl;
    if (mb_cli_pooler_init(&pl, DNA_PROG, m, maxn, maxlen, 0)) return -1;
    const int64_t B = pl.B;
    int rc = 0;
    for (int c = 0; rc == 0 && c < d->C; c++) {
        const cl_class *k = &d->cls[c];
        for (int64_t w0 = 0; rc == 0 && w0 < k->nv; w0 += B) {
            const int64_t nb = k->nv - w0 < B ? k->nv - w0 : B;
            cl_val_windows h = {k, w0};
            if ((rc = mb_cli_pooler_run(&pl, nb, k->vlen, cl_val_fetch, &h))) break;
            for (int64_t b = 0; b < nb; b++) {
                int near;
                const double e = cl_novel_dist(nv, pl.pooled + b * pl.d, &near);
                *flagged += e > nv->radius[near];
                (*n)++;
            }
        }
    }
    mb_cli_pooler_free(&pl);
    return rc;
}

mb_outfile *cl_novel_write(const char *model, const mb_cli_names *names, const cl_novel *nv)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s.novelty", model) >= (int)sizeof path) {
        mb_cli_error(DNA_PROG, "%s: path too long", model);
        return NULL;
    }
    mb_outfile *o = mb_cli_outfile_open(DNA_PROG, path);
    if (!o) return NULL;
    FILE *f = mb_outfile_fp(o);
    int bad = fprintf(f, CL_NOVEL_MAGIC " 2 %d %d %g\nsd", nv->d, nv->C, CL_NOVEL_PERCENTILE) < 0;
    for (int j = 0; j < nv->d && !bad; j++) bad = fprintf(f, " %.9g", nv->sd[j]) < 0;
    for (int c = 0; c < nv->C && !bad; c++) {
        bad = fprintf(f, "\n%s\t%.9g", names->v[c], nv->radius[c]) < 0;
        for (int j = 0; j < nv->d && !bad; j++) bad = fprintf(f, " %.9g", nv->cent[(size_t)c * nv->d + j]) < 0;
    }
    if (bad || fputc('\n', f) == EOF) {
        mb_cli_write_error(DNA_PROG, path);
        mb_outfile_discard(o);
        return NULL;
    }
    return o;
}

/* the next whitespace-separated word of *s (NULL at the end), *s moved past it */
static char *cl_word(char **s)
{
    char *p = *s;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    if (!*p) return NULL;
    char *w = p;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') p++;
    if (*p) *p++ = '\0';
    *s = p;
    return w;
}

/* the rest of the line up to a tab (a class name may hold spaces) */
static char *cl_name_field(char **s)
{
    char *p = *s;
    while (*p == '\n' || *p == '\r') p++;
    char *t = strchr(p, '\t'), *nl = strchr(p, '\n');
    if (!t || (nl && nl < t)) return NULL;
    *t = '\0';
    *s = t + 1;
    return p;
}

static int cl_num(char **s, double *x)
{
    char *w = cl_word(s), *end;
    if (!w) return -1;
    *x = strtod(w, &end);
    return *end || !isfinite(*x) ? -1 : 0;
}

int cl_novel_read(const char *model, const mb_cli_names *names, int d, cl_novel *nv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s.novelty", model);
    FILE *f = fopen(path, "rb");
    if (!f) {
        mb_cli_error(DNA_PROG, "%s: cannot open it (%s): --novel needs the distance rule that classify train "
                               "writes beside the model", path, strerror(errno));
        return -1;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, k;
    char buf[65536];
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        if (len + k + 1 > cap) {
            cap = (len + k + 1) * 2;
            char *t = realloc(text, cap);
            if (!t) break;
            text = t;
        }
        memcpy(text + len, buf, k);
        len += k;
    }
    const int rerr = ferror(f) || (k > 0);
    fclose(f);
    if (!text || rerr) {
        free(text);
        mb_cli_error(DNA_PROG, "%s: read error", path);
        return -1;
    }
    text[len] = '\0';
    char *s = text, *w;
    double ver = 0, dd = 0, cc = 0, pct = 0;
    int rc = -1;
    const char *why = "not a mamba-dna distance rule";
    if (!(w = cl_word(&s)) || strcmp(w, CL_NOVEL_MAGIC) != 0 || cl_num(&s, &ver) || ver != 2 || cl_num(&s, &dd) ||
        cl_num(&s, &cc) || cl_num(&s, &pct))
        goto out;
    why = "written for another model (its width or classes differ)";
    if ((int)dd != d || (int)cc != names->n) goto out;
    if (cl_novel_alloc(nv, names->n, d)) {
        free(text);
        return -1;
    }
    why = "malformed";
    if (!(w = cl_word(&s)) || strcmp(w, "sd") != 0) goto out;
    for (int j = 0; j < d; j++)
        if (cl_num(&s, &nv->sd[j]) || !(nv->sd[j] > 0)) goto out;
    for (int c = 0; c < nv->C; c++) {
        why = "its classes are not the model's";
        if (!(w = cl_name_field(&s)) || strcmp(w, names->v[c]) != 0) goto out;
        why = "malformed";
        if (cl_num(&s, &nv->radius[c]) || nv->radius[c] < 0) goto out;
        for (int j = 0; j < d; j++)
            if (cl_num(&s, &nv->cent[(size_t)c * d + j])) goto out;
    }
    why = "malformed";
    if (cl_word(&s)) goto out;
    rc = 0;
out:
    free(text);
    if (rc) {
        cl_novel_free(nv);
        /* the likely cause of a names mismatch: the model's own list is
         * missing, so its classes were taken as class0 .. */
        char cls[4200];
        snprintf(cls, sizeof cls, "%s.classes", model);
        if (strcmp(why, "its classes are not the model's") == 0 && access(cls, F_OK) != 0)
            mb_cli_error(DNA_PROG, "%s: its classes are not the model's: %s is missing, so the model's are named "
                                   "class0 ..; copy it beside the model",
                         path, cls);
        else
            mb_cli_error(DNA_PROG, "%s: %s", path, why);
    }
    return rc;
}
