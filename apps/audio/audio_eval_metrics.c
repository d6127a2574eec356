/* mamba-audio eval --metrics: generated clips judged by a classifier as
 * SaShiMi judges its SC09 samples (audio_metrics.h): FID and AM against a
 * reference folder of real clips, IS and mIS of the generated ones, NDB of
 * the two; clips read the way classify predict reads them
 * (audio_classify.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_classify.h"
#include "audio_metrics.h"

/* The classifier's view of every file of a folder: probabilities (n, C)
 * and pooled features (n, d), in double. */
typedef struct {
    audio_set *set;
    double *probs, *feats;
    int64_t n;
    int64_t *hist; /* (C): clips predicted as each class */
} em_view;

static void em_view_free(em_view *v)
{
    audio_set_free(v->set);
    free(v->probs), free(v->feats), free(v->hist);
    memset(v, 0, sizeof *v);
}

static int em_view_read(mb_model *m, const char *path, const audio_set_opts *so, int64_t L, em_view *v)
{
    const mb_config *mc = mb_model_config(m);
    const int C = mc->n_classes, d = mc->d_model;
    memset(v, 0, sizeof *v);
    if (!(v->set = audio_cmd_load_set(path, so))) return -1;
    const int64_t n = audio_set_nfiles(v->set);
    int64_t *files = malloc(sizeof *files * (size_t)n);
    float *pf = malloc(sizeof *pf * (size_t)(n * C)), *ff = malloc(sizeof *ff * (size_t)(n * d));
    v->probs = malloc(sizeof *v->probs * (size_t)(n * C));
    v->feats = malloc(sizeof *v->feats * (size_t)(n * d));
    v->hist = calloc((size_t)C, sizeof *v->hist);
    int rc = -1;
    if (!files || !pf || !ff || !v->probs || !v->feats || !v->hist) {
        mb_cli_error(AUDIO_PROG, "out of memory for %lld clips", (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++) files[i] = i;
    if (acl_read_clips(m, v->set, files, n, L, path, ff, pf)) goto done;
    for (int64_t i = 0; i < n * C; i++) v->probs[i] = pf[i];
    for (int64_t i = 0; i < n * d; i++) v->feats[i] = ff[i];
    for (int64_t i = 0; i < n; i++) {
        int best = 0;
        for (int j = 1; j < C; j++) best = pf[i * C + j] > pf[i * C + best] ? j : best;
        v->hist[best]++;
    }
    v->n = n;
    rc = 0;
done:
    free(files), free(pf), free(ff);
    return rc;
}

int audio_eval_metrics(const mb_cli_train *t, const char *cls, const char *gen, const char *ref, const char *json,
                       int64_t seed, int64_t bins)
{
    int rc = 1;
    char err[512];
    mb_ctx *ctx = NULL;
    acl_model cm = {0};
    em_view g = {0}, r = {0};
    mb_outfile *jf = NULL;
    if (json && mb_cli_check_writable(AUDIO_PROG, json)) return 1;
    if (!(ctx = mb_cli_ctx(AUDIO_PROG, t)) || acl_model_load(ctx, cls, 0, &cm)) goto done;
    mb_model *m = cm.m;
    const mb_cli_names *names = &cm.names;
    const int C = names->n, d = mb_model_config(m)->d_model;
    const double t0 = mb_cli_now();
    if (em_view_read(m, gen, &cm.so, cm.L, &g) || em_view_read(m, ref, &cm.so, cm.L, &r)) goto done;
    if (r.n < bins) {
        mb_cli_error(AUDIO_PROG, "%s: %lld clips, fewer than NDB's %lld bins (--ndb-bins)", ref, (long long)r.n,
                     (long long)bins);
        goto done;
    }
    if (g.n < 2) {
        mb_cli_error(AUDIO_PROG, "%s: %lld clip%s: the metrics need two or more", gen, (long long)g.n,
                     g.n == 1 ? "" : "s");
        goto done;
    }
    const audio_metrics_set rs = {r.probs, r.feats, r.n}, gs = {g.probs, g.feats, g.n};
    audio_metrics_opts o;
    audio_metrics_opts_default(&o);
    o.seed = (uint64_t)seed;
    o.ndb_bins = bins;
    audio_metrics_result res;
    if (audio_metrics_all(&rs, &gs, C, d, &o, &res, err, sizeof err)) {
        mb_cli_error(AUDIO_PROG, "%s", err);
        goto done;
    }
    /* FID of a set against itself is 0 up to rounding, which may be -1e-14:
     * printed as 0, not -0.0000 (the JSON keeps the value) */
    printf("metrics: FID %.4f  IS %.4f  mIS %.4f  AM %.4f  NDB %.4f  (%lld generated clips of %s against %lld of "
           "%s, classifier %s; %.1fs)\n",
           fabs(res.fid) < 5e-5 ? 0.0 : res.fid, res.is, res.mis, res.am, res.ndb, (long long)g.n, gen, (long long)r.n,
           ref, cls,
           mb_cli_now() - t0);
    printf("metrics: the generated clips' predicted classes:");
    for (int c = 0; c < C; c++) printf(" %s %lld", names->v[c], (long long)g.hist[c]);
    printf("\n");
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mb_cli_write_error(AUDIO_PROG, NULL);
        goto done;
    }
    if (json) {
        if (!(jf = mb_cli_outfile_open(AUDIO_PROG, json))) goto done;
        FILE *f = mb_outfile_fp(jf);
        fprintf(f, "{\"fid\": %.9g, \"is\": %.9g, \"mis\": %.9g, \"am\": %.9g, \"ndb\": %.9g, \"ndb_bins\": %lld, "
                   "\"seed\": %lld, \"generated\": ",
                res.fid, res.is, res.mis, res.am, res.ndb, (long long)bins, (long long)seed);
        mb_cli_json_str(f, gen);
        fprintf(f, ", \"n_generated\": %lld, \"reference\": ", (long long)g.n);
        mb_cli_json_str(f, ref);
        fprintf(f, ", \"n_reference\": %lld, \"classifier\": ", (long long)r.n);
        mb_cli_json_str(f, cls);
        fputs(", \"predicted\": {", f);
        for (int c = 0; c < C; c++) {
            fputs(c ? ", " : "", f);
            mb_cli_json_str(f, names->v[c]);
            fprintf(f, ": %lld", (long long)g.hist[c]);
        }
        if (fputs("}}\n", f) == EOF || ferror(f)) {
            mb_cli_write_error(AUDIO_PROG, json);
            goto done;
        }
        const int crc = mb_cli_outfile_commit(AUDIO_PROG, jf);
        jf = NULL;
        if (crc) goto done;
    }
    rc = 0;
done:
    if (rc == 1 && mb_cli_interrupted()) rc = MB_CLI_EXIT_INTERRUPTED;
    mb_outfile_discard(jf);
    em_view_free(&g);
    em_view_free(&r);
    acl_model_free(&cm);
    mb_ctx_free(ctx);
    return rc;
}
