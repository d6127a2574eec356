/* mamba-audio eval --metrics: generated clips judged by a classifier as
 * SaShiMi judges its SC09 samples (audio_metrics.h): FID and AM against a
 * reference folder of real clips, IS and mIS of the generated ones, NDB of
 * the two; clips read the way classify predict reads them
 * (audio_classify.h). */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* ---- a reference set's view, kept in a file ----------------------------------
 * Reading 12,280 reference clips through the classifier takes an hour on
 * two CPU cores (20 s on a GPU), and every curve point and every draw set
 * is judged against the same reference. --save-reference writes the view
 * (each clip's p and f) as a TSV that --reference reads instead of the
 * folder:
 *   # mamba-audio reference features 1
 *   # classifier HASH rate R quant Q window L classes C features d clips n
 *   file  p_<class> ..  f_0 .. f_<d-1>
 * HASH is FNV-1a of the classifier file's bytes: the view is refused under
 * any other weights, audio settings or class names. Values are %.9g of the
 * float outputs, which read back to the same floats: the metrics from the
 * file are those from the folder, bit for bit. */
#define EM_REF_MAGIC "# mamba-audio reference features 1"

typedef struct {
    uint64_t hash;
    int rate;
    audio_quant quant;
    int64_t window;
} em_ident;

static int em_ident_get(const char *cls, const acl_model *cm, em_ident *id)
{
    FILE *f = fopen(cls, "rb");
    if (!f) {
        mb_cli_error(AUDIO_PROG, "%s: cannot open: %s", cls, strerror(errno));
        return -1;
    }
    uint64_t h = MB_CLI_FNV_START;
    unsigned char buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) h = mb_cli_fnv(h, buf, k);
    const int bad = ferror(f);
    fclose(f);
    if (bad) {
        mb_cli_error(AUDIO_PROG, "%s: read error", cls);
        return -1;
    }
    id->hash = h;
    id->rate = cm->meta.rate;
    id->quant = cm->meta.quant;
    id->window = cm->L;
    return 0;
}

/* whether path names a saved view rather than audio: by its name (a
 * folder so named is a folder) */
int audio_eval_ref_saved(const char *path)
{
    const size_t n = strlen(path);
    struct stat st;
    return n >= 4 && strcmp(path + n - 4, ".tsv") == 0 && !(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
}

static int em_view_save(const em_view *v, const em_ident *id, const mb_cli_names *names, int d, const char *path)
{
    mb_outfile *o = mb_cli_outfile_open(AUDIO_PROG, path);
    if (!o) return -1;
    FILE *f = mb_outfile_fp(o);
    const int C = names->n;
    fprintf(f, EM_REF_MAGIC "\n# classifier %016" PRIx64 " rate %d quant %s window %lld classes %d features %d clips %lld\n",
            id->hash, id->rate, audio_quant_name(id->quant), (long long)id->window, C, d, (long long)v->n);
    fputs("file", f);
    for (int c = 0; c < C; c++) fprintf(f, "\tp_%s", names->v[c]);
    for (int j = 0; j < d; j++) fprintf(f, "\tf_%d", j);
    fputc('\n', f);
    for (int64_t i = 0; i < v->n; i++) {
        /* a name's tabs and line breaks would shift its columns: blanks */
        for (const char *q = audio_set_relpath(v->set, i); *q; q++) fputc(*q == '\t' || *q == '\n' ? ' ' : *q, f);
        for (int c = 0; c < C; c++) fprintf(f, "\t%.9g", (float)v->probs[i * C + c]);
        for (int j = 0; j < d; j++) fprintf(f, "\t%.9g", (float)v->feats[i * d + j]);
        fputc('\n', f);
    }
    if (ferror(f)) {
        mb_cli_write_error(AUDIO_PROG, path);
        mb_outfile_discard(o);
        return -1;
    }
    return mb_cli_outfile_commit(AUDIO_PROG, o) ? -1 : 0;
}

/* one line into *line (grown), without its '\n'; 0 at the end of the file */
static int em_getline(FILE *f, char **line, size_t *cap)
{
    ssize_t k = getline(line, cap, f);
    if (k <= 0) return 0;
    if ((*line)[k - 1] == '\n') (*line)[k - 1] = 0;
    return 1;
}

static int em_view_load(const char *path, const em_ident *id, const mb_cli_names *names, int d, em_view *v)
{
    const int C = names->n;
    memset(v, 0, sizeof *v);
    FILE *f = fopen(path, "r");
    if (!f) {
        mb_cli_error(AUDIO_PROG, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int rc = -1;
    int64_t lineno = 1, n = 0;
    if (!em_getline(f, &line, &cap) || strcmp(line, EM_REF_MAGIC) != 0) {
        mb_cli_error(AUDIO_PROG, "%s: not a reference set saved by 'eval --metrics --save-reference' (a .tsv "
                     "--reference is read as one)", path);
        goto done;
    }
    lineno++;
    char q[32];
    uint64_t hash;
    int rate, fc, fd;
    long long win, clips;
    if (!em_getline(f, &line, &cap) ||
        sscanf(line, "# classifier %" SCNx64 " rate %d quant %31s window %lld classes %d features %d clips %lld", &hash,
               &rate, q, &win, &fc, &fd, &clips) != 7 || clips < 1) {
        mb_cli_error(AUDIO_PROG, "%s:%lld: a bad classifier line", path, (long long)lineno);
        goto done;
    }
    audio_quant qt;
    if (hash != id->hash || rate != id->rate || audio_quant_parse(q, &qt) || qt != id->quant || win != id->window ||
        fc != C || fd != d) {
        mb_cli_error(AUDIO_PROG, "%s: saved under another classifier (or its .audio settings) than this one: save it "
                     "again from the folder", path);
        goto done;
    }
    lineno++;
    /* the class names, in the classifier's order */
    if (!em_getline(f, &line, &cap) || strncmp(line, "file", 4) != 0) {
        mb_cli_error(AUDIO_PROG, "%s:%lld: no column header", path, (long long)lineno);
        goto done;
    }
    {
        const char *s = line + 4;
        for (int c = 0; c < C; c++) {
            const size_t k = strlen(names->v[c]);
            if (strncmp(s, "\tp_", 3) != 0 || strncmp(s + 3, names->v[c], k) != 0 || (s[3 + k] != '\t' && s[3 + k])) {
                mb_cli_error(AUDIO_PROG, "%s: its classes are not the classifier's (%s first differs)", path,
                             names->v[c]);
                goto done;
            }
            s += 3 + k;
        }
    }
    v->n = clips;
    v->probs = malloc(sizeof *v->probs * (size_t)(clips * C));
    v->feats = malloc(sizeof *v->feats * (size_t)(clips * d));
    if (!v->probs || !v->feats) {
        mb_cli_error(AUDIO_PROG, "%s: out of memory for %lld clips", path, clips);
        goto done;
    }
    while (em_getline(f, &line, &cap)) {
        lineno++;
        if (n == clips) {
            mb_cli_error(AUDIO_PROG, "%s:%lld: more clips than the %lld its header says", path, (long long)lineno,
                         clips);
            goto done;
        }
        /* the last C + d fields are the numbers; the name before them */
        char *e = line + strlen(line);
        for (int k = C + d - 1; k >= 0; k--) {
            char *tab = e;
            while (tab > line && *--tab != '\t') continue;
            if (*tab != '\t') {
                mb_cli_error(AUDIO_PROG, "%s:%lld: %d fields, not %d", path, (long long)lineno, C + d - k,
                             1 + C + d);
                goto done;
            }
            *e = 0;
            char *end;
            const float x = strtof(tab + 1, &end);
            if (end == tab + 1 || *end || !isfinite(x)) {
                mb_cli_error(AUDIO_PROG, "%s:%lld: field %d is not a finite number", path, (long long)lineno,
                             k + 2);
                goto done;
            }
            if (k < C) v->probs[n * C + k] = x;
            else v->feats[n * d + (k - C)] = x;
            e = tab;
        }
        n++;
    }
    if (ferror(f)) {
        mb_cli_error(AUDIO_PROG, "%s: read error", path);
        goto done;
    }
    if (n != clips) {
        mb_cli_error(AUDIO_PROG, "%s: %lld clips, not the %lld its header says (cut short?)", path, (long long)n,
                     clips);
        goto done;
    }
    rc = 0;
done:
    free(line);
    fclose(f);
    if (rc) em_view_free(v);
    return rc;
}

int audio_eval_metrics(const mb_cli_train *t, const char *cls, const char *gen, const char *ref, const char *save_ref,
                       const char *json, int64_t seed, int64_t bins)
{
    int rc = 1;
    char err[512];
    mb_ctx *ctx = NULL;
    acl_model cm = {0};
    em_view g = {0}, r = {0};
    mb_outfile *jf = NULL;
    if (json && mb_cli_check_writable(AUDIO_PROG, json)) return 1;
    if (save_ref && mb_cli_check_writable(AUDIO_PROG, save_ref)) return 1;
    if (!(ctx = mb_cli_ctx(AUDIO_PROG, t)) || acl_model_load(ctx, cls, 0, &cm)) goto done;
    mb_model *m = cm.m;
    const mb_cli_names *names = &cm.names;
    const int C = names->n, d = mb_model_config(m)->d_model;
    const double t0 = mb_cli_now();
    em_ident id;
    if ((save_ref || audio_eval_ref_saved(ref)) && em_ident_get(cls, &cm, &id)) goto done;
    if (em_view_read(m, gen, &cm.so, cm.L, &g)) goto done;
    if (audio_eval_ref_saved(ref) ? em_view_load(ref, &id, names, d, &r) : em_view_read(m, ref, &cm.so, cm.L, &r)) goto done;
    if (save_ref && em_view_save(&r, &id, names, d, save_ref)) goto done;
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
