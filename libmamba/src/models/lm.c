/* The residual LM: embedding -> blocks -> norm_f -> head. Training keeps
 * each layer's activations (or, with recompute, only each layer's input and
 * recomputes the layer inside backward); inference runs through a state
 * with its own small buffers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/lm.h"
#include "models/sashimi.h"

#define AL(n) (((n) + 15) & ~(size_t)15)

static int lm_register(mb_model *m)
{
    const mb_config *c = &m->cfg;
    mb_params *ps = &m->params;
    int64_t shape[2];
    char name[MB_PARAM_NAME_MAX];
    shape[0] = m->vocab_padded;
    shape[1] = c->d_model;
    m->p_embed = mb_params_add(ps, "backbone.embedding.weight", 1, 2, shape);
    shape[0] = c->d_model;
    for (int l = 0; l < c->n_layer; l++) {
        snprintf(name, sizeof name, "backbone.layers.%d.norm.weight", l);
        m->p_norm_w[l] = mb_params_add(ps, name, 0, 1, shape);
        m->p_norm_b[l] = -1;
        if (!c->rms_norm) {
            snprintf(name, sizeof name, "backbone.layers.%d.norm.bias", l);
            m->p_norm_b[l] = mb_params_add(ps, name, 0, 1, shape);
        }
        snprintf(name, sizeof name, "backbone.layers.%d.mixer", l);
        if (m->p_norm_w[l] < 0 || (!c->rms_norm && m->p_norm_b[l] < 0) ||
            mb_mixer_register(&m->mixers[l], ps, name, c))
            return -1;
    }
    m->p_norm_f_w = mb_params_add(ps, "backbone.norm_f.weight", 0, 1, shape);
    m->p_norm_f_b = c->rms_norm ? -1 : mb_params_add(ps, "backbone.norm_f.bias", 0, 1, shape);
    m->p_lm_head = -1;
    if (!c->tie_embeddings) {
        shape[0] = m->vocab_padded;
        shape[1] = c->d_model;
        m->p_lm_head = mb_params_add(ps, "lm_head.weight", 1, 2, shape);
        if (m->p_lm_head < 0) return -1;
    }
    if (m->p_embed < 0 || m->p_norm_f_w < 0 || (!c->rms_norm && m->p_norm_f_b < 0)) return -1;
    /* last in the table: an LM checkpoint's tensors keep their order */
    return mb_cls_register(m);
}

mb_model *mb_model_alloc(mb_ctx *ctx, const mb_config *cfg_in)
{
    if (cfg_in->arch == MB_ARCH_SASHIMI) return mb_sashimi_alloc(ctx, cfg_in);
    mb_config cfg = *cfg_in;
    if (mb_config_check(&cfg)) return NULL;
    mb_model *m = mb_calloc(1, sizeof *m, "model");
    if (!m) return NULL;
    m->ctx = ctx;
    m->cfg = cfg;
    m->vocab_padded = mb_config_vocab_padded(&cfg);
    /* recompute: layer passes over 128 Ki tokens at a time (L = 2^20 on the
     * DNA model: 12.8 GiB peak at 64 Ki, fewer launches at 128 Ki) */
    m->rc_chunk = 131072;
    m->p_cls_w = m->p_cls_b = -1;
    m->p_norm_w = mb_calloc((size_t)cfg.n_layer, sizeof(int), "model");
    m->p_norm_b = mb_calloc((size_t)cfg.n_layer, sizeof(int), "model");
    m->mixers = mb_calloc((size_t)cfg.n_layer, sizeof(mb_mixer), "model");
    if (!m->p_norm_w || !m->p_norm_b || !m->mixers || lm_register(m) ||
        mb_params_alloc(&m->params, ctx)) {
        mb_model_free(m);
        return NULL;
    }
    return m;
}

static void lm_acts_free(mb_model *m)
{
    mb_dev_free(m->ctx, m->act_buf);
    mb_dev_free(m->ctx, m->tok_dev);
    free(m->h);
    free(m->xn);
    free(m->rstd);
    free(m->mean);
    free(m->acts);
    mb_arena_free(&m->ws);
    m->act_buf = NULL;
    m->tok_dev = m->tgt_dev = NULL;
    m->h = m->xn = m->rstd = m->mean = NULL;
    m->acts = NULL;
    m->act_B = m->act_L = 0;
}

void mb_model_free(mb_model *m)
{
    if (!m) return;
    mb_sashimi_free(m);
    lm_acts_free(m);
    mb_cls_free(m);
    mb_params_free(&m->params, m->ctx);
    free(m->p_norm_w);
    free(m->p_norm_b);
    free(m->mixers);
    free(m);
}

const mb_config *mb_model_config(const mb_model *m) { return &m->cfg; }

size_t mb_model_num_params(const mb_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->params.n; i++) n += m->params.items[i].numel;
    return n;
}

void mb_model_set_recompute(mb_model *m, int on)
{
    /* sashimi keeps every activation: audio crops are short */
    if (m->sa) return;
    if (!!on != m->recompute) lm_acts_free(m); /* buffer layout changes */
    m->recompute = !!on;
}

void mb_model_set_recompute_chunk(mb_model *m, int tokens)
{
    if (m->sa) return;
    tokens = tokens < 0 ? 0 : tokens;
    /* a chunk must hold the conv's K-1 inputs that the next one reads */
    if (tokens > 0 && tokens < m->cfg.d_conv) tokens = m->cfg.d_conv;
    if (tokens != m->rc_chunk) lm_acts_free(m);
    m->rc_chunk = tokens;
}

static void lm_init_weights(mb_model *m, float *host, uint64_t seed)
{
    const mb_config *c = &m->cfg;
    mb_params *ps = &m->params;
    mb_rng rng;
    mb_rng_seed(&rng, seed);
    float *emb = host + ps->items[m->p_embed].offset;
    for (size_t i = 0; i < ps->items[m->p_embed].numel; i++)
        emb[i] = (float)(0.02 * mb_rng_normal(&rng));
    for (int l = 0; l < c->n_layer; l++) {
        float *w = host + ps->items[m->p_norm_w[l]].offset;
        for (int i = 0; i < c->d_model; i++) w[i] = 1.f;
        mb_mixer_init_weights(&m->mixers[l], ps, host, c, &rng);
    }
    float *wf = host + ps->items[m->p_norm_f_w].offset;
    for (int i = 0; i < c->d_model; i++) wf[i] = 1.f;
    if (m->p_lm_head >= 0) {
        float *hw = host + ps->items[m->p_lm_head].offset;
        double bound = 1.0 / sqrt((double)c->d_model);
        for (size_t i = 0; i < ps->items[m->p_lm_head].numel; i++)
            hw[i] = (float)((2.0 * mb_rng_uniform(&rng) - 1.0) * bound);
    }
    mb_cls_init_weights(m, host, seed);
}

mb_model *mb_model_create(mb_ctx *ctx, const mb_config *cfg, uint64_t seed)
{
    mb_model *m = mb_model_alloc(ctx, cfg);
    if (!m) return NULL;
    float *host = mb_calloc(m->params.total, sizeof(float), "initial weights");
    if (!host) {
        mb_model_free(m);
        return NULL;
    }
    if (m->sa)
        mb_sashimi_init_weights(m, host, seed);
    else
        lm_init_weights(m, host, seed);
    int rc = mb_dev_upload(ctx, m->params.data, host, m->params.total * sizeof(float));
    free(host);
    if (rc) {
        mb_model_free(m);
        return NULL;
    }
    return m;
}

void mb_model_zero_grad(mb_model *m)
{
    mb_dev_zero(m->ctx, m->params.grad, m->params.total * sizeof(float));
}

/* ---- shared pieces of forward and backward ------------------------------ */

static void lm_norm_fwd(mb_model *m, int M, int pw, int pb, const float *x, float *y,
                        float *mean, float *rstd)
{
    const mb_params *ps = &m->params;
    if (m->cfg.rms_norm)
        mb_rmsnorm_fwd(m->ctx, M, m->cfg.d_model, x, mb_param_data(ps, pw), m->cfg.norm_eps, y, rstd);
    else
        mb_layernorm_fwd(m->ctx, M, m->cfg.d_model, x, mb_param_data(ps, pw),
                         mb_param_data(ps, pb), m->cfg.norm_eps, y, mean, rstd);
}

static void lm_norm_bwd(mb_model *m, int M, int pw, int pb, const float *x, const float *mean,
                        const float *rstd, const float *dy, float *dx, float dx_beta)
{
    const mb_params *ps = &m->params;
    if (m->cfg.rms_norm)
        mb_rmsnorm_bwd(m->ctx, M, m->cfg.d_model, x, mb_param_data(ps, pw), rstd, dy, dx, dx_beta,
                       mb_param_grad(ps, pw));
    else
        mb_layernorm_bwd(m->ctx, M, m->cfg.d_model, x, mb_param_data(ps, pw), mean, rstd, dy, dx,
                         dx_beta, mb_param_grad(ps, pw), mb_param_grad(ps, pb));
}

/* h_out = h_in + mixer(norm(h_in)) for layer l. */
static int lm_layer_fwd(mb_model *m, int l, int B, int L, const float *h_in, float *h_out,
                        float *xn, float *mean, float *rstd, mb_mixer_acts *a, mb_mixer_state *st,
                        mb_arena *ws)
{
    const int M = B * L;
    lm_norm_fwd(m, M, m->p_norm_w[l], m->p_norm_b[l], h_in, xn, mean, rstd);
    if (mb_mixer_fwd(m->ctx, &m->mixers[l], &m->params, B, L, xn, h_out, a, st, ws)) return -1;
    mb_axpby(m->ctx, (size_t)M * m->cfg.d_model, 1.f, h_in, 1.f, h_out);
    return 0;
}

static const float *lm_head_weight(const mb_model *m)
{
    return mb_param_data(&m->params, m->p_lm_head >= 0 ? m->p_lm_head : m->p_embed);
}

/* final norm into hf, then the head into logits (M, Vp) unless logits is
 * NULL (classification and pooling read hf only) */
static void lm_head_fwd(mb_model *m, int M, const float *h, float *hf, float *mean, float *rstd,
                        float *logits)
{
    lm_norm_fwd(m, M, m->p_norm_f_w, m->p_norm_f_b, h, hf, mean, rstd);
    if (logits)
        mb_linear_fwd(m->ctx, M, m->cfg.d_model, m->vocab_padded, hf, m->cfg.d_model,
                      lm_head_weight(m), NULL, logits, m->vocab_padded);
}

int mb_lm_check_tokens(const mb_model *m, const int32_t *t, size_t n, const char *what, int allow_ignore)
{
    for (size_t i = 0; i < n; i++) {
        if (allow_ignore && t[i] == MB_IGNORE_INDEX) continue;
        if (t[i] < 0 || t[i] >= m->cfg.vocab_size)
            return mb_error_set("%s %d at position %zu is outside the vocabulary [0, %d)", what,
                                (int)t[i], i, m->cfg.vocab_size);
    }
    return 0;
}

/* ---- training forward / backward ----------------------------------------- */

/* Recompute over chunks of the sequence: each layer pass sees one chunk of
 * one sequence (B = 1) at a time, with the conv and SSM states carried
 * forward and their gradients carried backward, so a layer's activations
 * and scratch are sized for rc_chunk tokens, not B * L. */
static int lm_chunked(const mb_model *m, int L) { return m->recompute && m->rc_chunk > 0 && L > m->rc_chunk; }

static int lm_acts_ensure(mb_model *m, int B, int L)
{
    if (m->act_B == B && m->act_L == L) return 0;
    lm_acts_free(m);
    const mb_config *c = &m->cfg;
    const int nl = c->n_layer, nx = m->recompute ? 1 : nl, chunked = lm_chunked(m, L);
    const size_t M = (size_t)B * L, d = c->d_model, Vp = m->vocab_padded;
    /* rows one layer pass works on: everything, or one chunk */
    const size_t Mx = chunked ? (size_t)m->rc_chunk : M;
    const int nch = chunked ? (L + m->rc_chunk - 1) / m->rc_chunk : 1;
    const mb_mixer *mx = &m->mixers[0];
    const size_t per_acts = mb_mixer_acts_floats(mx, (int)Mx);
    const size_t st1 = mb_mixer_state_floats(mx, 1);
    const size_t sf = (size_t)(mx->is_complex ? 2 : 1) * mx->d_state;
    const size_t carry = chunked ? 2 * AL((size_t)mx->d_inner * sf) + 2 * AL((size_t)(mx->d_conv - 1) * mx->d_inner) : 0;
    size_t total = (size_t)(nl + 1) * AL(M * d)             /* h */
                   + (size_t)nx * (AL(Mx * d) + 2 * AL(Mx)) /* xn, mean, rstd */
                   + (size_t)nx * per_acts                  /* mixer acts */
                   + AL(M * d) + 2 * AL(M)                  /* hf (then its gradient), mean_f, rstd_f */
                   + AL(M * Vp)                             /* logits */
                   + AL(M * d) + 2 * AL(Mx * d)             /* dh; dxn, recompute output */
                   + (chunked ? ((size_t)nl * B * nch + 1) * st1 + carry : 0);
    m->act_buf = mb_dev_alloc_floats(m->ctx, total, "activations");
    m->tok_dev = (int32_t *)mb_dev_alloc_floats(m->ctx, 2 * AL(M), "tokens");
    m->h = calloc((size_t)nl + 1, sizeof(float *));
    m->xn = calloc((size_t)nx, sizeof(float *));
    m->mean = calloc((size_t)nx, sizeof(float *));
    m->rstd = calloc((size_t)nx, sizeof(float *));
    m->acts = calloc((size_t)nx, sizeof(mb_mixer_acts));
    size_t wsz = chunked ? mb_mixer_workspace(m->ctx, mx, 1, m->rc_chunk) : mb_mixer_workspace(m->ctx, mx, B, L);
    if (!m->act_buf || !m->tok_dev || !m->h || !m->xn || !m->mean || !m->rstd || !m->acts ||
        mb_arena_init(&m->ws, m->ctx, wsz)) {
        lm_acts_free(m);
        return mb_error_set("out of memory for activations of batch %d x length %d", B, L);
    }
    m->tgt_dev = m->tok_dev + AL(M);
    float *p = m->act_buf;
    for (int l = 0; l <= nl; l++, p += AL(M * d)) m->h[l] = p;
    for (int l = 0; l < nx; l++) {
        m->xn[l] = p;
        p += AL(Mx * d);
        m->mean[l] = p;
        p += AL(Mx);
        m->rstd[l] = p;
        p += AL(Mx);
        mb_mixer_acts_bind(&m->acts[l], mx, p, (int)Mx);
        p += per_acts;
    }
    m->hf = p;
    p += AL(M * d);
    m->mean_f = p;
    p += AL(M);
    m->rstd_f = p;
    p += AL(M);
    m->logits = p;
    p += AL(M * Vp);
    m->dh = p;
    p += AL(M * d);
    m->dxn = p;
    p += AL(Mx * d);
    m->rec_out = p;
    p += AL(Mx * d);
    m->nch = nch;
    if (chunked) {
        m->saved = p;
        p += (size_t)nl * B * nch * st1;
        mb_mixer_state_bind(&m->work, mx, p, 1);
        p += st1;
        m->dssm[0] = p, p += AL((size_t)mx->d_inner * sf);
        m->dssm[1] = p, p += AL((size_t)mx->d_inner * sf);
        m->dconv[0] = p, p += AL((size_t)(mx->d_conv - 1) * mx->d_inner);
        m->dconv[1] = p;
    }
    m->act_B = B;
    m->act_L = L;
    return 0;
}

/* the state of layer l, sequence b, entering chunk k */
static mb_mixer_state lm_saved_state(mb_model *m, int l, int b, int k)
{
    const mb_mixer *mx = &m->mixers[l];
    size_t st1 = mb_mixer_state_floats(mx, 1);
    mb_mixer_state s;
    mb_mixer_state_bind(&s, mx, m->saved + (((size_t)l * m->act_B + b) * m->nch + k) * st1, 1);
    return s;
}

static void lm_state_copy(mb_model *m, const mb_mixer_state *src, mb_mixer_state *dst)
{
    const mb_mixer *mx = &m->mixers[0];
    /* a state is one block: conv then ssm (mb_mixer_state_bind) */
    mb_axpby(m->ctx, mb_mixer_state_floats(mx, 1), 1.f, src->conv, 0.f, dst->conv);
}

int mb_lm_forward_train(mb_model *m, const int32_t *tokens, int B, int L, int lm_head)
{
    if (m->sa) return mb_error_set("this call needs a mamba-lm model, not a sashimi-mamba one");
    if (B < 1 || L < 1) return mb_error_set("empty batch (B=%d, L=%d)", B, L);
    if (mb_lm_check_tokens(m, tokens, (size_t)B * L, "token", 0) || lm_acts_ensure(m, B, L)) return -1;
    const int M = B * L, d = m->cfg.d_model;
    mb_dev_upload(m->ctx, m->tok_dev, tokens, (size_t)M * sizeof(int32_t));
    mb_embed_fwd(m->ctx, M, d, m->tok_dev, mb_param_data(&m->params, m->p_embed), m->h[0]);
    const int chunked = lm_chunked(m, L);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        int x = m->recompute ? 0 : l;
        if (!chunked) {
            if (lm_layer_fwd(m, l, B, L, m->h[l], m->h[l + 1], m->xn[x], m->mean[x], m->rstd[x],
                             &m->acts[x], NULL, &m->ws))
                return -1;
            continue;
        }
        for (int b = 0; b < B; b++) {
            mb_dev_zero(m->ctx, m->work.conv, mb_mixer_state_floats(&m->mixers[l], 1) * sizeof(float));
            for (int k = 0; k < m->nch; k++) {
                const size_t r0 = (size_t)b * L + (size_t)k * m->rc_chunk;
                const int len = L - k * m->rc_chunk < m->rc_chunk ? L - k * m->rc_chunk : m->rc_chunk;
                mb_mixer_state saved = lm_saved_state(m, l, b, k);
                lm_state_copy(m, &m->work, &saved);
                if (lm_layer_fwd(m, l, 1, len, m->h[l] + r0 * d, m->h[l + 1] + r0 * d, m->xn[0],
                                 m->mean[0], m->rstd[0], &m->acts[0], &m->work, &m->ws))
                    return -1;
            }
        }
    }
    lm_head_fwd(m, M, m->h[m->cfg.n_layer], m->hf, m->mean_f, m->rstd_f,
                lm_head ? m->logits : NULL);
    return 0;
}

int mb_lm_xent_mean(mb_ctx *ctx, const int32_t *targets, int32_t *tgt_dev, int M, int V, float *logits,
                    int want_grad, mb_loss_stats *stats)
{
    int64_t count = 0;
    for (int i = 0; i < M; i++) count += targets[i] != MB_IGNORE_INDEX;
    if (mb_dev_upload(ctx, tgt_dev, targets, (size_t)M * sizeof(int32_t))) return -1;
    mb_loss_stats s = {0};
    mb_xent(ctx, M, V, logits, tgt_dev, MB_IGNORE_INDEX, count ? 1.f / (float)count : 0.f,
            want_grad ? logits : NULL, &s);
    if (stats) {
        stats->loss_sum += s.loss_sum;
        stats->count += s.count;
        stats->correct += s.correct;
    }
    return 0;
}

static int lm_loss(mb_model *m, const int32_t *targets, int M, int want_grad, mb_loss_stats *stats)
{
    if (mb_lm_check_tokens(m, targets, (size_t)M, "target", 1)) return -1;
    return mb_lm_xent_mean(m->ctx, targets, m->tgt_dev, M, m->vocab_padded, m->logits, want_grad, stats);
}

int mb_model_forward(mb_model *m, const int32_t *tokens, int B, int L, const int32_t *targets,
                     float *logits, mb_loss_stats *stats)
{
    if (m->sa) return mb_sashimi_forward(m, tokens, B, L, targets, logits, stats);
    if (mb_lm_forward_train(m, tokens, B, L, 1)) return -1;
    const size_t M = (size_t)B * L;
    if (logits && mb_dev_download(m->ctx, logits, m->logits, M * m->vocab_padded * sizeof(float)))
        return -1;
    if (targets && lm_loss(m, targets, (int)M, 0, stats)) return -1;
    return mb_ctx_check(m->ctx);
}

/* Backward of layer l over chunks of each sequence, last to first: the
 * chunk's forward is recomputed from its saved entering state, then its
 * backward runs with the SSM-state and conv-input gradients of the chunk
 * after it, and hands its own to the chunk before. */
static int lm_layer_bwd_chunked(mb_model *m, int l, int B, int L)
{
    const int d = m->cfg.d_model;
    const mb_mixer *mx = &m->mixers[l];
    const size_t sf = (size_t)(mx->is_complex ? 2 : 1) * mx->d_state;
    for (int b = 0; b < B; b++) {
        int cur = 0;
        mb_dev_zero(m->ctx, m->dssm[0], (size_t)mx->d_inner * sf * sizeof(float));
        mb_dev_zero(m->ctx, m->dconv[0], (size_t)(mx->d_conv - 1) * mx->d_inner * sizeof(float));
        for (int k = m->nch - 1; k >= 0; k--) {
            const size_t r0 = (size_t)b * L + (size_t)k * m->rc_chunk;
            const int len = L - k * m->rc_chunk < m->rc_chunk ? L - k * m->rc_chunk : m->rc_chunk;
            mb_mixer_state saved = lm_saved_state(m, l, b, k);
            lm_state_copy(m, &saved, &m->work);
            if (lm_layer_fwd(m, l, 1, len, m->h[l] + r0 * d, m->rec_out, m->xn[0], m->mean[0],
                             m->rstd[0], &m->acts[0], &m->work, &m->ws))
                return -1;
            mb_mixer_carry carry = {.dssm_in = m->dssm[cur], .dssm_out = m->dssm[1 - cur],
                                    .dconv_in = m->dconv[cur], .dconv_out = m->dconv[1 - cur]};
            if (mb_mixer_bwd(m->ctx, mx, &m->params, 1, len, m->xn[0], &m->acts[0],
                             m->dh + r0 * d, m->dxn, 0.f, &m->ws, &saved, &carry))
                return -1;
            lm_norm_bwd(m, len, m->p_norm_w[l], m->p_norm_b[l], m->h[l] + r0 * d, m->mean[0],
                        m->rstd[0], m->dxn, m->dh + r0 * d, 1.f);
            cur = 1 - cur;
        }
    }
    return 0;
}

int mb_model_forward_backward(mb_model *m, const int32_t *tokens, const int32_t *targets, int B,
                              int L, mb_loss_stats *stats)
{
    if (m->sa) return mb_sashimi_forward_backward(m, tokens, targets, B, L, stats);
    if (!targets) return mb_error_set("forward_backward needs targets");
    if (mb_lm_forward_train(m, tokens, B, L, 1) || lm_loss(m, targets, B * L, 1, stats)) return -1;
    const int M = B * L, d = m->cfg.d_model;
    /* head: logits now hold dlogits; the gradient of hf replaces hf (read
     * for the weight gradient first) */
    mb_linear_bwd(m->ctx, M, d, m->vocab_padded, m->hf, d, lm_head_weight(m), m->logits,
                  m->vocab_padded, m->hf, d, 0.f,
                  mb_param_grad(&m->params, m->p_lm_head >= 0 ? m->p_lm_head : m->p_embed), NULL);
    return mb_lm_backward_from_hf(m, B, L);
}

int mb_lm_backward_from_hf(mb_model *m, int B, int L)
{
    const mb_config *c = &m->cfg;
    const int M = B * L, d = c->d_model;
    mb_params *ps = &m->params;
    if (m->sa) return mb_error_set("this call needs a mamba-lm model, not a sashimi-mamba one");
    if (m->act_B != B || m->act_L != L)
        return mb_error_set("internal: backward of %d x %d after a forward of %d x %d", B, L,
                            m->act_B, m->act_L);
    lm_norm_bwd(m, M, m->p_norm_f_w, m->p_norm_f_b, m->h[c->n_layer], m->mean_f, m->rstd_f, m->hf,
                m->dh, 0.f);
    const int chunked = lm_chunked(m, L);
    for (int l = c->n_layer - 1; l >= 0; l--) {
        if (chunked) {
            if (lm_layer_bwd_chunked(m, l, B, L)) return -1;
            continue;
        }
        int x = m->recompute ? 0 : l;
        if (m->recompute &&
            lm_layer_fwd(m, l, B, L, m->h[l], m->rec_out, m->xn[0], m->mean[0], m->rstd[0],
                         &m->acts[0], NULL, &m->ws))
            return -1;
        if (mb_mixer_bwd(m->ctx, &m->mixers[l], ps, B, L, m->xn[x], &m->acts[x], m->dh, m->dxn,
                         0.f, &m->ws, NULL, NULL))
            return -1;
        /* the residual passes dh through; the norm path adds to it */
        lm_norm_bwd(m, M, m->p_norm_w[l], m->p_norm_b[l], m->h[l], m->mean[x], m->rstd[x], m->dxn,
                    m->dh, 1.f);
    }
    mb_embed_bwd(m->ctx, M, d, m->tok_dev, m->dh, mb_param_grad(ps, m->p_embed));
    return mb_ctx_check(m->ctx);
}

/* ---- recurrent inference --------------------------------------------------
 * The state owns buffers for chunks of up to cap_L tokens (grown on demand
 * by forward_chunk, never by step). */
typedef struct {
    struct mb_state pub;
    int cap_L;
    float *buf;              /* activations for (B, cap_L) */
    int32_t *tok;
    float *h0, *h1, *xn, *mean, *rstd, *hf, *logits;
    float *hsum;             /* (B, d): pooled sums on their way to the caller */
    mb_mixer_acts acts;
    mb_arena ws;
} lm_state;

static void lm_state_bufs_free(lm_state *s)
{
    mb_ctx *ctx = s->pub.model->ctx;
    mb_dev_free(ctx, s->buf);
    mb_dev_free(ctx, s->tok);
    mb_arena_free(&s->ws);
    s->buf = NULL;
    s->tok = NULL;
    s->cap_L = 0;
}

static int lm_state_bufs(lm_state *s, int L)
{
    if (L <= s->cap_L) return 0;
    lm_state_bufs_free(s);
    mb_model *m = s->pub.model;
    const size_t M = (size_t)s->pub.B * L, d = m->cfg.d_model;
    const size_t per_acts = mb_mixer_acts_floats(&m->mixers[0], (int)M);
    size_t total = 4 * AL(M * d) + 2 * AL(M) + per_acts + AL(M * m->vocab_padded) +
                   AL((size_t)s->pub.B * d);
    s->buf = mb_dev_alloc_floats(m->ctx, total, "inference activations");
    s->tok = (int32_t *)mb_dev_alloc_floats(m->ctx, AL(M), "tokens");
    if (!s->buf || !s->tok || mb_arena_init(&s->ws, m->ctx, mb_mixer_workspace(m->ctx, &m->mixers[0], s->pub.B, L))) {
        lm_state_bufs_free(s);
        return -1;
    }
    float *p = s->buf;
    s->h0 = p, p += AL(M * d);
    s->h1 = p, p += AL(M * d);
    s->xn = p, p += AL(M * d);
    s->hf = p, p += AL(M * d);
    s->mean = p, p += AL(M);
    s->rstd = p, p += AL(M);
    mb_mixer_acts_bind(&s->acts, &m->mixers[0], p, (int)M);
    p += per_acts;
    s->hsum = p;
    p += AL((size_t)s->pub.B * d);
    s->logits = p;
    s->cap_L = L;
    return 0;
}

mb_state *mb_state_create(mb_model *m, int B)
{
    if (m->sa) return mb_sashimi_state_create(m, B);
    if (B < 1) {
        mb_error_set("state batch must be >= 1 (got %d)", B);
        return NULL;
    }
    lm_state *s = mb_calloc(1, sizeof *s, "state");
    if (!s) return NULL;
    s->pub.model = m;
    s->pub.B = B;
    size_t total = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) total += mb_mixer_state_floats(&m->mixers[l], B);
    s->pub.buf = mb_dev_alloc_floats(m->ctx, total, "recurrent state");
    s->pub.layers = mb_calloc((size_t)m->cfg.n_layer, sizeof(mb_mixer_state), "state");
    if (!s->pub.buf || !s->pub.layers || lm_state_bufs(s, 1)) {
        mb_state_free(&s->pub);
        return NULL;
    }
    float *p = s->pub.buf;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        mb_mixer_state_bind(&s->pub.layers[l], &m->mixers[l], p, B);
        p += mb_mixer_state_floats(&m->mixers[l], B);
    }
    mb_state_reset(&s->pub);
    return &s->pub;
}

void mb_state_reset(mb_state *st)
{
    mb_model *m = st->model;
    st->drawn = 0;
    if (m->sa) {
        mb_sashimi_state_reset(st);
        return;
    }
    size_t total = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) total += mb_mixer_state_floats(&m->mixers[l], st->B);
    mb_dev_zero(m->ctx, st->buf, total * sizeof(float));
}

void mb_state_free(mb_state *st)
{
    if (!st) return;
    if (st->model->sa) {
        mb_sashimi_state_free(st);
        return;
    }
    lm_state *s = (lm_state *)st;
    lm_state_bufs_free(s);
    mb_dev_free(st->model->ctx, st->buf);
    free(st->layers);
    free(s);
}

/* The chunk forward behind mb_model_forward_chunk(_pooled): the LM head
 * runs only for logits; hsum (host) gets the chunk's sums of hf added. */
static int lm_chunk_fwd(mb_model *m, mb_state *st, const int32_t *tokens, int L, float *logits,
                        float *hsum)
{
    lm_state *s = (lm_state *)st;
    if (st->model != m) return mb_error_set("state belongs to another model");
    if (m->sa) {
        if (hsum)
            return mb_error_set("pooled chunks need a mamba-lm model, not a sashimi-mamba one");
        return mb_sashimi_forward_chunk(m, st, tokens, L, logits);
    }
    if (L < 1) return mb_error_set("empty chunk");
    const int B = st->B, M = B * L;
    if (mb_lm_check_tokens(m, tokens, (size_t)M, "token", 0) || lm_state_bufs(s, L)) return -1;
    mb_dev_upload(m->ctx, s->tok, tokens, (size_t)M * sizeof(int32_t));
    float *h = s->h0, *hn = s->h1;
    mb_embed_fwd(m->ctx, M, m->cfg.d_model, s->tok, mb_param_data(&m->params, m->p_embed), h);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        /* one token: the fused step (training never comes here: it keeps
         * the activations that only the unfused path writes) */
        if (L == 1 ? mb_mixer_block_step(m->ctx, &m->mixers[l], &m->params, B,
                                         mb_param_data(&m->params, m->p_norm_w[l]),
                                         m->cfg.rms_norm ? NULL
                                                         : mb_param_data(&m->params, m->p_norm_b[l]),
                                         m->cfg.norm_eps, h, hn, &st->layers[l], &s->ws, NULL)
                   : lm_layer_fwd(m, l, B, L, h, hn, s->xn, s->mean, s->rstd, &s->acts,
                                  &st->layers[l], &s->ws))
            return -1;
        float *t = h;
        h = hn;
        hn = t;
    }
    /* the state is advanced already: norm_f and the head only for outputs */
    if (logits || hsum) lm_head_fwd(m, M, h, s->hf, s->mean, s->rstd, logits ? s->logits : NULL);
    if (logits &&
        mb_dev_download(m->ctx, logits, s->logits, (size_t)M * m->vocab_padded * sizeof(float)))
        return -1;
    if (hsum) {
        /* the caller's running sums go through the device and come back
         * with this chunk added: no host scratch */
        const size_t bytes = (size_t)B * m->cfg.d_model * sizeof(float);
        if (mb_dev_upload(m->ctx, s->hsum, hsum, bytes)) return -1;
        mb_cls_pool_sum(m, B, L, s->hf, s->hsum);
        if (mb_dev_download(m->ctx, hsum, s->hsum, bytes)) return -1;
    }
    return mb_ctx_check(m->ctx);
}

int mb_model_forward_chunk(mb_model *m, mb_state *st, const int32_t *tokens, int L, float *logits)
{
    return lm_chunk_fwd(m, st, tokens, L, logits, NULL);
}

int mb_model_forward_chunk_pooled(mb_model *m, mb_state *st, const int32_t *tokens, int L,
                                  float *logits, float *hsum)
{
    if (!hsum) return mb_error_set("forward_chunk_pooled needs hsum");
    return lm_chunk_fwd(m, st, tokens, L, logits, hsum);
}

int mb_model_step(mb_model *m, mb_state *st, const int32_t *tokens, float *logits)
{
    if (m->sa) {
        if (st->model != m) return mb_error_set("state belongs to another model");
        return mb_sashimi_step(m, st, tokens, logits);
    }
    return mb_model_forward_chunk(m, st, tokens, 1, logits);
}

static int sample_check(const mb_model *m, const mb_state *st, int n, const mb_sampler *sp)
{
    if (st->model != m) return mb_error_set("state belongs to another model");
    if (n < 0) return mb_error_set("sample: n must be >= 0 (got %d)", n);
    if (!sp || !(sp->temperature > 0.f) || !isfinite(sp->temperature))
        return mb_error_set("sample: temperature must be > 0");
    if (!(sp->top_p > 0.f && sp->top_p <= 1.f)) return mb_error_set("sample: top_p must be in (0, 1]");
    return 0;
}

/* The LM's generation: its steps, and the draws on the host by the same
 * rule the device kernels follow (mb_sample_pick). */
int mb_model_sample(mb_model *m, mb_state *st, const int32_t *tokens, int n, const mb_sampler *sp,
                    int32_t *out)
{
    if (sample_check(m, st, n, sp) || mb_lm_check_tokens(m, tokens, (size_t)st->B, "token", 0)) return -1;
    if (n == 0) return 0;
    if (m->sa) return mb_sashimi_sample(m, st, tokens, n, sp, out);
    const int B = st->B, Vp = m->vocab_padded, V = m->cfg.vocab_size;
    float *lg = mb_calloc((size_t)B * Vp, sizeof(float), "sampling");
    int32_t *cur = mb_calloc((size_t)B, sizeof(int32_t), "sampling");
    void *scratch = mb_calloc(1, mb_sample_scratch_bytes(V), "sampling");
    /* on the CPU each layer's A = -exp(A_log) once for the run */
    const int cpu = m->ctx->kind == MB_DEV_CPU;
    size_t nA = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) nA += (size_t)m->mixers[l].d_inner * m->mixers[l].d_state;
    float *A = cpu ? mb_calloc(nA, sizeof(float), "sampling") : NULL;
    int rc = -1;
    if (!lg || !cur || !scratch || (cpu && !A)) goto done;
    for (size_t l = 0, off = 0; cpu && l < (size_t)m->cfg.n_layer; l++) {
        mb_mixer_state_pin_A(m->ctx, &m->mixers[l], &m->params, &st->layers[l], A + off);
        off += (size_t)m->mixers[l].d_inner * m->mixers[l].d_state;
    }
    memcpy(cur, tokens, (size_t)B * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        if (mb_model_step(m, st, cur, lg)) goto done;
        for (int b = 0; b < B; b++) {
            const double u = (mb_sample_bits(sp->seed, st->drawn, b) + 0.5) * 0x1.0p-23;
            cur[b] = mb_sample_pick(lg + (size_t)b * Vp, V, sp->temperature, sp->top_p, u, scratch);
            out[(size_t)b * n + i] = cur[b];
        }
        st->drawn++;
    }
    rc = 0;
done:
    for (int l = 0; l < m->cfg.n_layer; l++) st->layers[l].A = NULL;
    free(lg), free(cur), free(scratch), free(A);
    return rc;
}
