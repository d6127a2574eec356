/* The mb_model / mb_state facade: what every architecture shares (checks,
 * token buffers, the loss, chunk outputs, state bookkeeping) and the table
 * that sends the rest to the architecture's functions. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/model.h"

/* ---- the architectures ------------------------------------------------------- */

static const struct {
    mb_arch id;
    const mb_arch_ops *ops;
} archs[] = {
    {MB_ARCH_LM, &mb_arch_lm},
    {MB_ARCH_SASHIMI, &mb_arch_sashimi},
    {MB_ARCH_BIDIR, &mb_arch_bidir},
};

const mb_arch_ops *mb_arch_get(mb_arch arch)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (archs[i].id == arch) return archs[i].ops;
    return NULL;
}

int mb_arch_from_name(const char *name, mb_arch *arch)
{
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].ops->name, name) == 0) {
            *arch = archs[i].id;
            return 0;
        }
    return -1;
}

/* ---- model ------------------------------------------------------------------ */

static void model_release(mb_model *m)
{
    if (m->arch && m->net) m->arch->destroy(m);
    mb_dev_free(m->ctx, m->tok_dev);
    mb_dev_free(m->ctx, m->cls_buf);
    mb_dev_free(m->ctx, m->cls_lab);
    mb_params_free(&m->params, m->ctx);
    free(m);
}

void mb_model_free(mb_model *m)
{
    if (!m) return;
    /* a state still alive keeps the model's memory until it goes */
    if (m->n_states > 0) {
        m->freed = 1;
        return;
    }
    model_release(m);
}

/* A run id for a fresh model: what ties a checkpoint's optimizer state to
 * its weights' run (train/checkpoint.c). Not a seed: two runs of one seed
 * are still two runs. */
static uint64_t model_new_run_id(const mb_model *m)
{
    static _Thread_local uint64_t counter;
    uint64_t z = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)clock() ^ (uint64_t)(uintptr_t)m ^
                 (++counter << 32);
    for (int i = 0; i < 2; i++) {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
    }
    return z ? z : 1;
}

mb_model *mb_model_build(mb_ctx *ctx, const mb_config *cfg_in)
{
    mb_config cfg = *cfg_in;
    if (mb_config_check(&cfg) || mb_ctx_check_config(ctx, &cfg)) return NULL;
    mb_model *m = mb_calloc(1, sizeof *m, "model");
    if (!m) return NULL;
    m->ctx = ctx;
    m->cfg = cfg;
    m->vocab_padded = mb_config_vocab_padded(&cfg);
    m->arch = mb_arch_get(cfg.arch);
    m->has_cls = cfg.n_classes > 0;
    m->cls.p_w = m->cls.p_b = -1;
    m->run_id = model_new_run_id(m);
    /* the classification head last in the table: a checkpoint's backbone
     * tensors keep their order with or without it */
    if (m->arch->build(m) ||
        (m->has_cls && mb_cls_head_register(&m->cls, &m->params, cfg.d_model, cfg.n_classes))) {
        model_release(m);
        return NULL;
    }
    return m;
}

int mb_model_alloc_params(mb_model *m) { return mb_params_alloc(&m->params, m->ctx, 0); }

mb_model *mb_model_alloc(mb_ctx *ctx, const mb_config *cfg)
{
    mb_model *m = mb_model_build(ctx, cfg);
    if (m && mb_model_alloc_params(m)) {
        model_release(m);
        return NULL;
    }
    return m;
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
    m->arch->init_weights(m, host, seed);
    if (m->has_cls) mb_cls_head_init_weights(&m->cls, &m->params, host, seed);
    const int rc = mb_dev_upload(ctx, m->params.data, host, m->params.total * sizeof(float));
    free(host);
    if (rc) {
        mb_model_free(m);
        return NULL;
    }
    return m;
}

const mb_config *mb_model_config(const mb_model *m) { return &m->cfg; }

size_t mb_model_num_params(const mb_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->params.n; i++) n += m->params.items[i].numel;
    return n;
}

int mb_recompute_update(const mb_config *cfg, int *recompute, int *rc_chunk, int on, int chunk)
{
    int changed = 0;
    if (on >= 0 && on != *recompute) {
        *recompute = on;
        changed = 1;
    }
    if (chunk >= 0) {
        if (chunk > 0 && chunk < cfg->d_conv) chunk = cfg->d_conv;
        changed |= chunk != *rc_chunk;
        *rc_chunk = chunk;
    }
    return changed;
}

int mb_recompute_auto_pick(size_t free_bytes, size_t total_bytes, size_t inner_bytes, size_t layers_bytes, int stacks)
{
    const size_t spare = total_bytes / 16 > ((size_t)1 << 30) ? total_bytes / 16 : (size_t)1 << 30;
    if (free_bytes >= spare && inner_bytes <= free_bytes - spare) return MB_RECOMPUTE_INNER;
    if (free_bytes >= spare && layers_bytes <= free_bytes - spare) return MB_RECOMPUTE_LAYERS;
    return stacks ? MB_RECOMPUTE_STACK : MB_RECOMPUTE_LAYERS;
}

void mb_model_set_recompute(mb_model *m, int mode)
{
    mode = mode == MB_RECOMPUTE_STACK || mode == MB_RECOMPUTE_INNER || mode == MB_RECOMPUTE_AUTO ? mode : !!mode;
    if (m->arch->set_recompute) m->arch->set_recompute(m, mode, -1);
}

int mb_model_get_recompute(const mb_model *m)
{
    return m->arch->get_recompute ? m->arch->get_recompute(m) : MB_RECOMPUTE_OFF;
}

void mb_model_set_recompute_chunk(mb_model *m, int tokens)
{
    if (m->arch->set_recompute) m->arch->set_recompute(m, -1, tokens < 0 ? 0 : tokens);
}

void mb_model_zero_grad(mb_model *m)
{
    /* training is what asks: the gradients come into being zeroed */
    if (!m->params.grad) {
        (void)mb_params_grad_ensure(&m->params, m->ctx);
        return;
    }
    mb_dev_zero(m->ctx, m->params.grad, m->params.total * sizeof(float));
}

uint64_t mb_model_run_id(const mb_model *m) { return m->run_id; }

/* ---- checks and the loss ------------------------------------------------------ */

int mb_model_check_tokens(const mb_model *m, const int32_t *t, size_t n, const char *what, int allow_ignore)
{
    for (size_t i = 0; i < n; i++) {
        if (allow_ignore && t[i] == MB_IGNORE_INDEX) continue;
        if (t[i] < 0 || t[i] >= m->cfg.vocab_size)
            return mb_error_set("%s %d at position %zu is outside the vocabulary [0, %d)", what, (int)t[i], i,
                                m->cfg.vocab_size);
    }
    return 0;
}

int mb_model_xent_mean(mb_ctx *ctx, const int32_t *targets, int32_t *tgt_dev, int M, int V, float *logits,
                       int want_grad, mb_loss_stats *stats)
{
    int64_t count = 0;
    for (int i = 0; i < M; i++) count += targets[i] != MB_IGNORE_INDEX;
    if (mb_dev_upload(ctx, tgt_dev, targets, (size_t)M * sizeof(int32_t))) return -1;
    mb_loss_stats s = {0};
    mb_xent(ctx, M, V, logits, tgt_dev, MB_IGNORE_INDEX, count ? 1.f / (float)count : 0.f,
            want_grad ? logits : NULL, NULL, &s);
    if (stats) {
        stats->loss_sum += s.loss_sum;
        stats->count += s.count;
        stats->correct += s.correct;
    }
    return 0;
}

int mb_model_io_ensure(mb_model *m, size_t M)
{
    if (M <= (size_t)m->io_rows) return 0;
    if (M > INT32_MAX / 2) return mb_error_set("batch of %zu tokens is too large", M);
    mb_dev_free(m->ctx, m->tok_dev);
    m->tok_dev = m->tgt_dev = NULL;
    m->io_rows = 0;
    const size_t n = mb_carve_round(M);
    m->tok_dev = mb_dev_alloc(m->ctx, 2 * n * sizeof(int32_t), "tokens");
    if (!m->tok_dev) return -1;
    m->tgt_dev = m->tok_dev + n;
    m->io_rows = (int)M;
    return 0;
}

static int ends_with(const char *s, const char *tail)
{
    const size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* the LM head, or the embedding where it is the head */
static int is_head(const mb_model *m, int i)
{
    const char *nm = m->params.items[i].name;
    return ends_with(nm, "lm_head.weight") || (m->cfg.tie_embeddings && ends_with(nm, "embedding.weight"));
}

/* the GEMMs' weights of bf16 precision: the projections, the LM head, the
 * classifier's, the U-Net's MLPs and pools */
static int bf16_gemm_weight(const mb_params *ps, int i, void *arg)
{
    const mb_model *m = arg;
    const char *nm = ps->items[i].name;
    return ps->items[i].ndim >= 2 &&
           (ends_with(nm, "in_proj.weight") || ends_with(nm, "x_proj.weight") || ends_with(nm, "dt_proj.weight") ||
            ends_with(nm, "out_proj.weight") || is_head(m, i) || strcmp(nm, "classifier.weight") == 0 ||
            ends_with(nm, "fc1.weight") || ends_with(nm, "fc2.weight") || ends_with(nm, "pool.linear.weight"));
}

int mb_model_precision_begin(mb_model *m)
{
    return m->ctx->precision == MB_PREC_BF16 ? mb_params_w16_refresh(&m->params, m->ctx, bf16_gemm_weight, m) : 0;
}

/* The checks before a training forward; the tokens then on the device. */
static int model_fwd_begin(mb_model *m, const int32_t *tokens, const int32_t *targets, int B, int L)
{
    if (B < 1 || L < 1) return mb_error_set("empty batch (B=%d, L=%d)", B, L);
    const size_t M = (size_t)B * L;
    if (mb_scan_supported(m->ctx, m->cfg.d_state, B) || mb_model_check_tokens(m, tokens, M, "token", 0) ||
        (targets && mb_model_check_tokens(m, targets, M, "target", 1)) || mb_model_io_ensure(m, M))
        return -1;
    return mb_dev_upload(m->ctx, m->tok_dev, tokens, M * sizeof(int32_t));
}

int mb_model_forward(mb_model *m, const int32_t *tokens, int B, int L, const int32_t *targets, float *logits,
                     mb_loss_stats *stats)
{
    mb_fwd_out o;
    if (mb_model_precision_begin(m)) return -1;
    if (model_fwd_begin(m, tokens, targets, B, L) || m->arch->forward(m, m->tok_dev, B, L, 1, 0, &o)) return -1;
    const size_t M = (size_t)B * L;
    if (logits && mb_dev_download(m->ctx, logits, o.logits, M * m->vocab_padded * sizeof(float))) return -1;
    if (targets && mb_model_xent_mean(m->ctx, targets, m->tgt_dev, (int)M, m->vocab_padded, o.logits, 0, stats))
        return -1;
    return mb_ctx_check(m->ctx);
}

int mb_model_forward_backward(mb_model *m, const int32_t *tokens, const int32_t *targets, int B, int L,
                              mb_loss_stats *stats)
{
    if (!targets) return mb_error_set("forward_backward needs targets");
    if (mb_model_precision_begin(m)) return -1;
    mb_fwd_out o;
    if (mb_params_grad_ensure(&m->params, m->ctx) || model_fwd_begin(m, tokens, targets, B, L) ||
        m->arch->forward(m, m->tok_dev, B, L, 1, 1, &o) ||
        mb_model_xent_mean(m->ctx, targets, m->tgt_dev, B * L, m->vocab_padded, o.logits, 1, stats) ||
        m->arch->backward(m, B, L, 1))
        return -1;
    return mb_ctx_check(m->ctx);
}

/* ---- states and recurrent inference ------------------------------------------ */

void mb_state_base_init(mb_state *s, mb_model *m, int B)
{
    s->model = m;
    s->B = B;
    m->n_states++;
}

static void emit_free(mb_state *s)
{
    mb_ctx *ctx = s->model->ctx;
    mb_dev_free(ctx, s->emit_tgt_dev);
    mb_dev_free(ctx, s->emit_loss_dev);
    free(s->emit_tgt);
    free(s->emit_loss);
    s->emit_tgt = s->emit_tgt_dev = NULL;
    s->emit_loss = s->emit_loss_dev = NULL;
    s->emit_rows = 0;
}

void mb_state_base_free(mb_state *s)
{
    emit_free(s);
    mb_dev_free(s->model->ctx, s->hsum_dev);
    s->hsum_dev = NULL;
}

mb_state *mb_state_create(mb_model *m, int B)
{
    if (B < 1) {
        mb_error_set("state batch must be >= 1 (got %d)", B);
        return NULL;
    }
    if (mb_scan_supported(m->ctx, m->cfg.d_state, B)) return NULL;
    mb_state *s = m->arch->state_create(m, B);
    if (s) mb_state_reset(s);
    return s;
}

void mb_state_reset(mb_state *s)
{
    s->drawn = 0;
    s->model->arch->state_reset(s);
}

void mb_state_free(mb_state *s)
{
    if (!s) return;
    mb_model *m = s->model;
    mb_state_base_free(s);
    m->arch->state_free(s);
    if (--m->n_states == 0 && m->freed) model_release(m);
}

int mb_model_step(mb_model *m, mb_state *s, const int32_t *tokens, float *logits)
{
    if (s->model != m) return mb_error_set("state belongs to another model");
    if (mb_model_check_tokens(m, tokens, (size_t)s->B, "token", 0) || mb_model_precision_begin(m)) return -1;
    return m->arch->step(m, s, tokens, logits);
}

static int emit_ensure(mb_state *s, size_t rows)
{
    if (rows <= (size_t)s->emit_rows) return 0;
    emit_free(s);
    mb_ctx *ctx = s->model->ctx;
    s->emit_tgt = mb_malloc(rows * sizeof(int32_t), "chunk targets");
    s->emit_loss = mb_malloc(rows * sizeof(double), "chunk log-likelihoods");
    s->emit_tgt_dev = mb_dev_alloc(ctx, rows * sizeof(int32_t), "chunk targets");
    s->emit_loss_dev = mb_dev_alloc(ctx, rows * sizeof(double), "chunk log-likelihoods");
    if (!s->emit_tgt || !s->emit_loss || !s->emit_tgt_dev || !s->emit_loss_dev) {
        emit_free(s);
        return -1;
    }
    s->emit_rows = (int)rows;
    return 0;
}

int mb_chunk_emit(mb_model *m, mb_state *s, const mb_chunk_req *r, int t0, int len, const float *hf,
                  const float *logits)
{
    mb_ctx *ctx = m->ctx;
    const int B = s->B, L = r->L, Vp = m->vocab_padded, d = m->cfg.d_model;
    const mb_chunk_out *o = &r->out;
    if (o->logits)
        for (int b = 0; b < B; b++)
            if (mb_dev_download(ctx, o->logits + ((size_t)b * L + t0) * Vp, logits + (size_t)b * len * Vp,
                                (size_t)len * Vp * sizeof(float)))
                return -1;
    if (o->targets) {
        const size_t rows = (size_t)B * len;
        if (emit_ensure(s, rows)) return -1;
        for (int b = 0; b < B; b++)
            memcpy(s->emit_tgt + (size_t)b * len, o->targets + (size_t)b * L + t0, (size_t)len * sizeof(int32_t));
        if (mb_dev_upload(ctx, s->emit_tgt_dev, s->emit_tgt, rows * sizeof(int32_t))) return -1;
        mb_xent(ctx, (int)rows, Vp, logits, s->emit_tgt_dev, MB_IGNORE_INDEX, 0.f, NULL,
                o->logprob ? s->emit_loss_dev : NULL, o->stats);
        if (o->logprob) {
            if (mb_dev_download(ctx, s->emit_loss, s->emit_loss_dev, rows * sizeof(double))) return -1;
            /* the loss is -log p; an ignored row's 0 stays 0 */
            for (int b = 0; b < B; b++)
                for (int j = 0; j < len; j++)
                    o->logprob[(size_t)b * L + t0 + j] = -s->emit_loss[(size_t)b * len + j];
        }
    }
    if (o->hsum) mb_cls_pool_sum(ctx, d, B, len, hf, s->hsum_dev);
    return mb_ctx_check(ctx);
}

int mb_model_forward_chunk_ex(mb_model *m, mb_state *s, const int32_t *tokens, int L, mb_chunk_out *out)
{
    if (s->model != m) return mb_error_set("state belongs to another model");
    if (L < 1) return mb_error_set("empty chunk");
    const size_t n = (size_t)s->B * L;
    if (mb_model_check_tokens(m, tokens, n, "token", 0) ||
        (out->targets && mb_model_check_tokens(m, out->targets, n, "target", 1)) || mb_model_precision_begin(m))
        return -1;
    const mb_chunk_req r = {*out, L};
    const size_t hbytes = (size_t)s->B * m->cfg.d_model * sizeof(float);
    if (out->hsum) {
        /* the caller's running sums go through the device and come back
         * with this chunk's added */
        if (!s->hsum_dev && !(s->hsum_dev = mb_dev_alloc(m->ctx, hbytes, "pooled sums"))) return -1;
        if (mb_dev_upload(m->ctx, s->hsum_dev, out->hsum, hbytes)) return -1;
    }
    if (m->arch->chunk(m, s, tokens, L, &r)) return -1;
    if (out->hsum && mb_dev_download(m->ctx, out->hsum, s->hsum_dev, hbytes)) return -1;
    return mb_ctx_check(m->ctx);
}

int mb_model_forward_chunk(mb_model *m, mb_state *s, const int32_t *tokens, int L, float *logits)
{
    mb_chunk_out o = {.logits = logits};
    return mb_model_forward_chunk_ex(m, s, tokens, L, &o);
}

int mb_model_forward_chunk_pooled(mb_model *m, mb_state *s, const int32_t *tokens, int L, float *logits,
                                  float *hsum)
{
    if (!hsum) return mb_error_set("forward_chunk_pooled needs hsum");
    mb_chunk_out o = {.logits = logits, .hsum = hsum};
    return mb_model_forward_chunk_ex(m, s, tokens, L, &o);
}

/* the matrices inference copies take: the projections and the head */
static int infer_copy_wanted(const mb_model *m, int i)
{
    const char *nm = m->params.items[i].name;
    return m->params.items[i].ndim == 2 && (ends_with(nm, "in_proj.weight") || ends_with(nm, "x_proj.weight") ||
                                            ends_with(nm, "out_proj.weight") || is_head(m, i));
}

int mb_model_set_int8(mb_model *m, int on)
{
    mb_params *ps = &m->params;
    mb_params_q8_drop(ps);
    if (!on) return 0;
    if (!mb_dev_host_memory(m->ctx))
        return mb_error_set("int8 weights are for CPU inference (this model is on %s; bf16 is the GPU's)",
                            mb_ctx_name(m->ctx));
    for (int i = 0; i < ps->n; i++)
        if (infer_copy_wanted(m, i) && mb_params_q8_make(ps, i)) {
            mb_params_q8_drop(ps);
            return -1;
        }
    return 0;
}

int mb_model_set_bf16(mb_model *m, int on)
{
    mb_params *ps = &m->params;
    mb_params_bf16_drop(ps, m->ctx);
    if (!on) return 0;
    if (mb_dev_host_memory(m->ctx))
        return mb_error_set("bf16 weights are for GPU inference (this model is on %s; int8 is the CPU's)",
                            mb_ctx_name(m->ctx));
    /* a head small enough for the one-kernel draw stays fp32: that kernel
     * reads it so, and the steps' logits must be what the draws see */
    const int small_head = mb_head_sample_fits(m->ctx, m->cfg.d_model, m->cfg.vocab_size);
    for (int i = 0; i < ps->n; i++)
        if (infer_copy_wanted(m, i) && !(small_head && is_head(m, i)) && mb_params_bf16_make(ps, m->ctx, i)) {
            mb_params_bf16_drop(ps, m->ctx);
            return -1;
        }
    return 0;
}

int mb_model_sample(mb_model *m, mb_state *s, const int32_t *tokens, int n, const mb_sampler *sp, int32_t *out)
{
    if (s->model != m) return mb_error_set("state belongs to another model");
    if (n < 0) return mb_error_set("sample: n must be >= 0 (got %d)", n);
    if (!sp || !(sp->temperature > 0.f) || !isfinite(sp->temperature))
        return mb_error_set("sample: temperature must be > 0");
    if (!(sp->top_p > 0.f && sp->top_p <= 1.f)) return mb_error_set("sample: top_p must be in (0, 1]");
    if (sp->top_k < 0) return mb_error_set("sample: top_k must be >= 0 (got %d)", sp->top_k);
    if (mb_model_check_tokens(m, tokens, (size_t)s->B, "token", 0)) return -1;
    if (mb_model_precision_begin(m)) return -1;
    if (n == 0) return 0;
    return m->arch->sample(m, s, tokens, n, sp, out);
}
