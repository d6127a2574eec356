/* What the mamba-audio commands share (audio_cmd.h). */
#include "audio_cmd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *meta_path(const char *model) { return mb_cli_path_suffix(model, ".audio"); }

int audio_meta_read(const char *model, audio_meta *m)
{
    m->rate = AUDIO_RATE_DEFAULT;
    m->quant = AUDIO_Q_MULAW;
    m->window = 0;
    char *path = mb_cli_sidecar_path(model, ".audio");
    if (!path) {
        mb_cli_error(AUDIO_PROG, "out of memory");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        /* a bare checkpoint (the library's or Python's mb_model_save): the
         * defaults, said, since a model trained at another rate or
         * quantization would be read wrong without a word */
        mb_cli_warn(AUDIO_PROG, "%s: not found: the model is read as %d Hz, %s samples (mamba-audio train writes "
                                "this file beside each model)",
                    path, m->rate, audio_quant_name(m->quant));
        free(path);
        return 0;
    }
    /* what audio_meta_write writes: rate and quant once each, window at
     * most once; an empty or cut file is an error, not the defaults */
    char key[32], val[32];
    int rc = 0, line = 0, seen_rate = 0, seen_quant = 0, seen_window = 0, got = 0;
    const char *why = "expected 'rate N', 'quant mulaw|linear' or 'window N'";
    while (rc == 0 && (got = fscanf(f, "%31s %31s", key, val)) == 2) {
        line++;
        char *end;
        if (strcmp(key, "rate") == 0 && !seen_rate++) {
            long r = strtol(val, &end, 10);
            if (*end || r < 1000 || r > 384000) rc = -1;
            else m->rate = (int)r;
        } else if (strcmp(key, "quant") == 0 && !seen_quant++) {
            if (audio_quant_parse(val, &m->quant)) rc = -1;
        } else if (strcmp(key, "window") == 0 && !seen_window++) {
            long long w = strtoll(val, &end, 10);
            if (*end || w < 1 || w > (1LL << 30)) rc = -1;
            else m->window = w;
        } else {
            rc = -1;
            if (seen_rate > 1 || seen_quant > 1 || seen_window > 1) why = "a key given twice";
        }
    }
    /* a key without its value at the end, or a read that stopped early:
     * the line after the last one read */
    if (rc == 0 && (got == 1 || !feof(f))) rc = -1, line++;
    if (rc) mb_cli_error(AUDIO_PROG, "%s: bad line %d (%s)", path, line, why);
    else if (!seen_rate || !seen_quant) {
        mb_cli_error(AUDIO_PROG, "%s: no '%s' line (the file is cut or was not written by mamba-audio)", path,
                     seen_rate ? "quant" : "rate");
        rc = -1;
    }
    fclose(f);
    free(path);
    return rc;
}

mb_outfile *audio_meta_write(const char *model, const audio_meta *m)
{
    char *path = meta_path(model);
    if (!path) {
        mb_cli_error(AUDIO_PROG, "out of memory");
        return NULL;
    }
    mb_outfile *of = mb_cli_outfile_open(AUDIO_PROG, path);
    free(path);
    int bad = of && fprintf(mb_outfile_fp(of), "rate %d\nquant %s\n", m->rate, audio_quant_name(m->quant)) < 0;
    if (of && !bad && m->window > 0) bad = fprintf(mb_outfile_fp(of), "window %lld\n", (long long)m->window) < 0;
    if (bad) {
        mb_cli_write_error(AUDIO_PROG, mb_outfile_path(of));
        mb_outfile_discard(of);
        return NULL;
    }
    return of;
}

mb_model *audio_cmd_load_model(mb_ctx *ctx, const char *path, int n_classes, uint64_t seed)
{
    mb_model *m = n_classes ? mb_model_load_classifier(ctx, path, n_classes, seed) : mb_model_load(ctx, path);
    if (!m) {
        mb_cli_lib_error(AUDIO_PROG, path);
        return NULL;
    }
    const mb_config *c = mb_model_config(m);
    if (c->arch != MB_ARCH_SASHIMI || c->vocab_size != AUDIO_NCLASS) {
        mb_cli_error(AUDIO_PROG, "%s: not a mamba-audio model (a %s of %d tokens, not a SaShiMi U-Net of %d "
                                 "sample classes)",
                     path, c->arch == MB_ARCH_SASHIMI ? "SaShiMi U-Net" : "language model", c->vocab_size,
                     AUDIO_NCLASS);
        mb_model_free(m);
        return NULL;
    }
    return m;
}

int64_t audio_cmd_period(const mb_config *cfg)
{
    int64_t P = 1;
    for (int i = 0; i < cfg->n_pool; i++) P *= cfg->pool[i];
    return P;
}

/* --pool's "P,P,..." (factors 2..64, at most MB_MAX_POOL) into cfg; -1 when
 * it does not parse */
static int parse_pools(const char *s, mb_config *cfg)
{
    int n = 0;
    const char *p = s;
    while (*p && n < MB_MAX_POOL) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 2 || v > 64) return -1;
        cfg->pool[n++] = (int)v;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    if (*p || n == 0) return -1;
    cfg->n_pool = n;
    return 0;
}

int audio_cmd_unet_option(int c, const char *arg, mb_cli_train *t, audio_set_opts *so)
{
    int64_t v;
    switch (c) {
    case AUDIO_O_RATE:
        if (mb_cli_parse_int(AUDIO_PROG, "--rate", arg, 1000, 384000, &v)) return -1;
        so->rate = (int)v;
        return 2;
    case AUDIO_O_QUANT:
        if (audio_quant_parse(arg, &so->quant)) {
            mb_cli_error(AUDIO_PROG, "--quant expects mulaw or linear, got '%s'", arg);
            return -1;
        }
        return 2;
    case AUDIO_O_POOL:
        if (parse_pools(arg, &t->cfg)) {
            mb_cli_error(AUDIO_PROG, "--pool expects factors >= 2 separated by commas (at most %d), got '%s'",
                         MB_MAX_POOL, arg);
            return -1;
        }
        break;
    case AUDIO_O_PEXP:
        if (mb_cli_parse_int(AUDIO_PROG, "--pool-expand", arg, 1, 8, &v)) return -1;
        t->cfg.pool_expand = (int)v;
        break;
    case AUDIO_O_MLP: t->cfg.mlp = 1; break;
    default: return 0;
    }
    t->set_model = 1;
    return 1;
}

static void print_warning(const char *line, void *ud)
{
    (void)ud;
    mb_cli_warn(AUDIO_PROG, "%s", line);
}

/* Reading the audio: a line when due, with the bytes read of all of them
 * (a 30-minute file takes tens of seconds); a signal stops the reading. */
typedef struct {
    mb_cli_progress pg;
    const char *root;
} load_pg;

static int load_progress(void *ud, int64_t file, int64_t nfiles, const char *path, double done, double total)
{
    load_pg *p = ud;
    if (mb_cli_progress_due(&p->pg)) {
        char eta[48];
        mb_cli_progress_eta(&p->pg, done, total, eta, sizeof eta);
        fprintf(stderr, AUDIO_PROG ": reading %s: file %lld/%lld %s, %.0f%% of %.1f MB, %s\n", p->root,
                (long long)file + 1, (long long)nfiles, path, total > 0 ? 100.0 * done / total : 100.0, total / 1e6,
                eta);
    }
    return mb_cli_interrupted();
}

audio_set *audio_cmd_load_set(const char *path, const audio_set_opts *o)
{
    char err[512];
    load_pg pg = {.root = path};
    mb_cli_progress_start(&pg.pg);
    audio_set_opts so = *o;
    so.progress = load_progress;
    so.progress_ud = &pg;
    audio_set *s = audio_set_load(path, &so, print_warning, NULL, err, sizeof err);
    if (!s) mb_cli_error(AUDIO_PROG, "%s", err);
    return s;
}

int audio_cmd_nll(mb_model *m, const audio_set *set, const audio_window *w, int64_t nw, int64_t B, int64_t L,
                  double *bits, int64_t *count, mb_cli_progress *pg)
{
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * L));
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)(B * L));
    uint8_t *buf = malloc((size_t)L + 1);
    double nats = 0;
    int64_t cnt = 0;
    int rc = 0;
    if (!tok || !tgt || !buf) {
        mb_cli_error(AUDIO_PROG, "out of memory");
        rc = -1;
    }
    for (int64_t w0 = 0; rc == 0 && w0 < nw; w0 += B) {
        if (pg && mb_cli_interrupted()) {
            mb_cli_error(AUDIO_PROG, "interrupted after %lld of %lld windows; nothing reported", (long long)w0,
                         (long long)nw);
            rc = -1;
            break;
        }
        if (pg && mb_cli_progress_due(pg)) {
            char eta[48];
            mb_cli_progress_eta(pg, (double)w0, (double)nw, eta, sizeof eta);
            const double t = mb_cli_progress_elapsed(pg);
            fprintf(stderr, AUDIO_PROG " eval: %lld/%lld windows of %lld samples (%.0f%%), %.0f samples/s, %s\n",
                    (long long)w0, (long long)nw, (long long)L, 100.0 * (double)w0 / (double)nw,
                    t > 0 ? (double)(w0 * L) / t : 0.0, eta);
        }
        for (int64_t b = 0; b < B; b++) {
            const int64_t k = w0 + b < nw ? w0 + b : w0; /* repeats fill the last pass */
            audio_set_window_fetch(set, &w[k], buf);
            for (int64_t t = 0; t < L; t++) {
                tok[b * L + t] = buf[t];
                /* padding predicts nothing; repeats are not counted */
                tgt[b * L + t] = (t + 1 >= w[k].pad && w0 + b < nw) ? buf[t + 1] : MB_IGNORE_INDEX;
            }
        }
        mb_loss_stats st = {0};
        if (mb_model_forward(m, tok, (int)B, (int)L, tgt, NULL, &st)) {
            mb_cli_lib_error(AUDIO_PROG, NULL);
            rc = -1;
            break;
        }
        nats += st.loss_sum;
        cnt += st.count;
    }
    free(tok);
    free(tgt);
    free(buf);
    if (rc == 0) {
        *bits = cnt ? nats / (double)cnt / MB_CLI_LN2 : NAN;
        *count = cnt;
    }
    return rc;
}

double audio_cmd_unigram_bits(const int64_t fit[AUDIO_NCLASS], const int64_t eval[AUDIO_NCLASS])
{
    double tot = 0, bits = 0;
    int64_t n = 0;
    for (int c = 0; c < AUDIO_NCLASS; c++) tot += (double)fit[c];
    for (int c = 0; c < AUDIO_NCLASS; c++) {
        if (!eval[c]) continue;
        bits -= (double)eval[c] * log2(((double)fit[c] + 1.0) / (tot + AUDIO_NCLASS));
        n += eval[c];
    }
    return n ? bits / (double)n : NAN;
}
