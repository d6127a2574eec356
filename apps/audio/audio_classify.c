/* mamba-audio classify: the subcommand, labelled folders, and how a clip is
 * read by a classifier (audio_classify.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_classify.h"

static void acl_usage(FILE *f)
{
    fprintf(f,
            "usage: " AUDIO_PROG " classify train --data DIR --out CLS [--val-data DIR] [--model PRETRAINED] [options]\n"
            "       " AUDIO_PROG " classify predict --model CLS [options] PATH...\n"
            "\n"
            "Audio classification with a SaShiMi U-Net of Mamba blocks and a classification\n"
            "head (the mean over positions of the final norm, then a linear layer): 'train'\n"
            "trains one on folders of labelled clips (DIR/CLASS/FILE, the layout of SC09 and\n"
            "of data/audio/make_sc09.sh) and reports the held-out accuracy and confusion\n"
            "matrix; 'predict' writes each class's probability per file. '" AUDIO_PROG " eval\n"
            "--metrics' scores generated clips with such a classifier. '" AUDIO_PROG " classify\n"
            "train --help' and '... predict --help' explain each mode.\n");
}

int audio_cmd_classify(int argc, char **argv)
{
    if (argc < 2) {
        mb_cli_error(AUDIO_PROG, "classify needs a mode: train or predict");
        fprintf(stderr, ACL_TRY);
        return 2;
    }
    const char *mode = argv[1];
    /* the mode parses argv[1..]: its name stands in for argv[0] */
    if (strcmp(mode, "train") == 0) return acl_train(argc - 1, argv + 1);
    if (strcmp(mode, "predict") == 0) return acl_predict(argc - 1, argv + 1);
    if (strcmp(mode, "--version") == 0) {
        mb_cli_version(AUDIO_PROG);
        return 0;
    }
    if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0 || strcmp(mode, "help") == 0) {
        acl_usage(stdout);
        return 0;
    }
    mb_cli_error(AUDIO_PROG, "classify: unknown mode '%s' (train or predict)", mode);
    fprintf(stderr, ACL_TRY);
    return 2;
}

/* ---- labelled folders ---------------------------------------------------------- */

void acl_lab_free(acl_lab *l)
{
    audio_set_free(l->set);
    free(l->cls);
    memset(l, 0, sizeof *l);
}

int acl_lab_load(const char *path, const audio_set_opts *so, mb_cli_names *names, int add_new, acl_lab *out)
{
    memset(out, 0, sizeof *out);
    if (!(out->set = audio_cmd_load_set(path, so))) return -1;
    const int64_t n = audio_set_nfiles(out->set);
    if (!(out->cls = malloc(sizeof(int32_t) * (size_t)n))) {
        mb_cli_error(AUDIO_PROG, "out of memory");
        acl_lab_free(out);
        return -1;
    }
    out->nfiles = n;
    for (int64_t i = 0; i < n; i++) {
        const char *rel = audio_set_relpath(out->set, i), *slash = strchr(rel, '/');
        out->cls[i] = -1;
        if (!slash) {
            out->unlabelled++;
            continue;
        }
        char name[256];
        const size_t len = (size_t)(slash - rel);
        if (len >= sizeof name) {
            mb_cli_error(AUDIO_PROG, "%s/%.*s: a class folder's name is longer than %zu bytes", path, (int)len, rel,
                         sizeof name - 1);
            acl_lab_free(out);
            return -1;
        }
        memcpy(name, rel, len);
        name[len] = '\0';
        int c = mb_cli_names_find(names, name);
        if (c < 0 && !add_new) {
            char list[512];
            mb_cli_error(AUDIO_PROG, "%s/%s: class '%s' is not one of the classifier's: %s", path, name, name,
                         mb_cli_names_list(names, list, sizeof list));
            acl_lab_free(out);
            return -1;
        }
        if (c < 0 && (!mb_cli_name_ok(name) || (c = mb_cli_names_add(names, name)) < 0)) {
            mb_cli_error(AUDIO_PROG, mb_cli_name_ok(name) ? "out of memory" : "%s/%s: not a usable class name", path,
                         name);
            acl_lab_free(out);
            return -1;
        }
        out->cls[i] = c;
    }
    if (out->unlabelled == n) {
        mb_cli_error(AUDIO_PROG, "%s: no class folders (the clips of class NAME go in %s/NAME/)", path, path);
        acl_lab_free(out);
        return -1;
    }
    if (out->unlabelled)
        mb_cli_warn(AUDIO_PROG, "%s: %lld files directly in the folder, not in a class folder, are not used", path,
                    (long long)out->unlabelled);
    return 0;
}

/* ---- a classifier and how it reads clips ---------------------------------------- */

void acl_model_free(acl_model *c)
{
    mb_model_free(c->m);
    mb_cli_names_free(&c->names);
    memset(c, 0, sizeof *c);
}

int acl_model_load(mb_ctx *ctx, const char *path, int64_t L, acl_model *out)
{
    memset(out, 0, sizeof *out);
    if (!(out->m = audio_cmd_load_model(ctx, path, 0, 0)) || audio_meta_read(path, &out->meta)) goto fail;
    const mb_config *mc = mb_model_config(out->m);
    if (mc->n_classes < 2) {
        mb_cli_error(AUDIO_PROG, "%s: not a classifier (%s): train one with '" AUDIO_PROG " classify train'%s", path,
                     mc->n_classes ? "a head of one class" : "no classification head",
                     mc->n_classes ? "" : " (--model starts from a '" AUDIO_PROG " train' model)");
        goto fail;
    }
    if (mb_cli_classes_names(AUDIO_PROG, path, mc->n_classes, &out->names)) goto fail;
    const int64_t P = audio_cmd_period(mc);
    const int given = L != 0;
    if (L == 0) L = out->meta.window > 0 ? out->meta.window : (out->meta.rate + P - 1) / P * P;
    if (L % P) {
        /* name where the length came from: the flag, or the sidecar */
        if (given)
            mb_cli_error(AUDIO_PROG, "--seq-len %lld is not a multiple of %s's pooling period %lld", (long long)L,
                         path, (long long)P);
        else
            mb_cli_error(AUDIO_PROG, "%s.audio: window %lld is not a multiple of the model's pooling period %lld",
                         path, (long long)L, (long long)P);
        goto fail;
    }
    out->L = L;
    audio_set_opts_default(&out->so);
    out->so.rate = out->meta.rate, out->so.quant = out->meta.quant, out->so.val_frac = 0;
    return 0;
fail:
    acl_model_free(out);
    return -1;
}

/* ---- a clip's pooled vector and class -------------------------------------------- */

/* the pooler's fetch: window w0 + b of the list */
typedef struct {
    const audio_set *set;
    const audio_window *w;
    int64_t L;
    uint8_t *buf; /* L */
} acl_fetch;

static int acl_fetch_window(void *ud, int64_t b, int64_t t0, int64_t n, int32_t *out)
{
    const acl_fetch *f = ud;
    audio_set_window_fetch(f->set, &f->w[b], f->buf);
    for (int64_t i = 0; i < n; i++) out[i] = f->buf[t0 + i];
    return 0;
}

int acl_read_clips(mb_model *m, const audio_set *set, const int64_t *files, int64_t n, int64_t L, const char *what,
                   float *feat, float *probs)
{
    const mb_config *mc = mb_model_config(m);
    const int d = mc->d_model, C = mc->n_classes;
    /* the windows of every clip, in order; owner[k] is window k's clip */
    int64_t nw = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t len = audio_set_len(set, files[i]);
        nw += len > 0 ? (len + L - 1) / L : 1;
    }
    audio_window *w = malloc(sizeof *w * (size_t)nw);
    int64_t *owner = malloc(sizeof *owner * (size_t)nw), *count = calloc((size_t)n, sizeof *count);
    double *acc = calloc((size_t)(n * d), sizeof *acc);
    float *clip = malloc(sizeof(float) * (size_t)(MB_CLI_POOL_ROWS * d));
    uint8_t *buf = malloc((size_t)L);
    mb_cli_pooler pl = {0};
    int rc = -1;
    if (!w || !owner || !count || !acc || !clip || !buf) {
        mb_cli_error(AUDIO_PROG, "out of memory for %lld clips", (long long)n);
        goto done;
    }
    nw = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t len = audio_set_len(set, files[i]);
        for (int64_t s = 0; s == 0 || s < len; s += L) {
            const int64_t k = len - s < L ? len - s : L;
            w[nw] = (audio_window){.file = files[i], .start = s, .n = k, .pad = L - k};
            owner[nw++] = i;
        }
    }
    if (mb_cli_pooler_init(&pl, AUDIO_PROG, m, nw, L, audio_cmd_period(mc))) goto done;
    acl_fetch f = {set, NULL, L, buf};
    mb_cli_progress pg;
    mb_cli_progress_start(&pg);
    for (int64_t k0 = 0; k0 < nw; k0 += pl.B) {
        const int64_t nb = nw - k0 < pl.B ? nw - k0 : pl.B;
        f.w = w + k0;
        if (mb_cli_pooler_run(&pl, nb, L, acl_fetch_window, &f)) goto done;
        for (int64_t b = 0; b < nb; b++) {
            const int64_t i = owner[k0 + b];
            count[i]++;
            for (int j = 0; j < d; j++) acc[i * d + j] += pl.pooled[b * d + j];
        }
        if (mb_cli_interrupted()) {
            mb_cli_error(AUDIO_PROG, "%s: interrupted at clip %lld of %lld", what, (long long)owner[k0] + 1,
                         (long long)n);
            goto done;
        }
        if (mb_cli_progress_due(&pg)) {
            char eta[48];
            mb_cli_progress_eta(&pg, (double)(k0 + nb), (double)nw, eta, sizeof eta);
            fprintf(stderr, AUDIO_PROG ": %s: clip %lld/%lld, %s\n", what, (long long)owner[k0 + nb - 1] + 1,
                    (long long)n, eta);
        }
    }
    /* each clip's vector, then the head on them B at a time */
    for (int64_t i0 = 0; i0 < n; i0 += MB_CLI_POOL_ROWS) {
        const int64_t nb = n - i0 < MB_CLI_POOL_ROWS ? n - i0 : MB_CLI_POOL_ROWS;
        for (int64_t b = 0; b < nb; b++)
            for (int j = 0; j < d; j++) clip[b * d + j] = (float)(acc[(i0 + b) * d + j] / (double)count[i0 + b]);
        if (feat) memcpy(feat + i0 * d, clip, sizeof(float) * (size_t)(nb * d));
        if (probs && mb_model_classify_pooled(m, clip, (int)nb, probs + i0 * C)) {
            mb_cli_error(AUDIO_PROG, "%s: %s", what, mb_error_last());
            goto done;
        }
        for (int64_t i = 0; probs && i < nb * C; i++)
            if (!isfinite(probs[i0 * C + i])) {
                mb_cli_error(AUDIO_PROG, "%s: the classifier's probabilities are not finite (its numbers overflow)",
                             what);
                goto done;
            }
    }
    rc = 0;
done:
    mb_cli_pooler_free(&pl);
    free(w), free(owner), free(count), free(acc), free(clip), free(buf);
    return rc;
}
