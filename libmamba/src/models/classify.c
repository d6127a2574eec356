/* Sequence classification on any architecture: the mean over positions of
 * the final norm's output (hf, the LM head's input), then the
 * classification head (nn/head.c). The backward hands the backbone
 * dpooled / L at every position of hf: the same place the LM head's
 * backward puts its gradient, so the architecture's own backward (recompute
 * and its chunks included) needs nothing new. */
#include <math.h>
#include <string.h>

#include "models/model.h"

/* Buffers for up to cls_B sequences; grown only when a larger batch comes,
 * apart from the activations so that classify_pooled needs no (B, L). */
static int cls_ensure(mb_model *m, int B)
{
    if (B <= m->cls_B) return 0;
    mb_dev_free(m->ctx, m->cls_buf);
    mb_dev_free(m->ctx, m->cls_lab);
    m->cls_buf = m->pooled = m->dpooled = m->cls_logits = NULL;
    m->cls_lab = NULL;
    m->cls_B = 0;
    const size_t d = (size_t)m->cfg.d_model, C = (size_t)m->cfg.n_classes;
    m->cls_buf = mb_dev_alloc_floats(m->ctx, 2 * mb_carve_round(B * d) + mb_carve_round(B * C),
                                     "classifier activations");
    m->cls_lab = mb_dev_alloc(m->ctx, mb_carve_round((size_t)B) * sizeof(int32_t), "labels");
    if (!m->cls_buf || !m->cls_lab) return mb_error_set("out of memory for the classifier of batch %d", B);
    mb_carve c = {m->cls_buf, 0};
    m->pooled = mb_carve_take(&c, B * d);
    m->dpooled = mb_carve_take(&c, B * d);
    m->cls_logits = mb_carve_take(&c, B * C);
    m->cls_B = B;
    return 0;
}

static int cls_check(const mb_model *m, int B)
{
    if (!m->has_cls) return mb_error_set("model has no classification head");
    if (B < 1) return mb_error_set("empty batch (B=%d)", B);
    return 0;
}

static int cls_check_labels(const mb_model *m, const int32_t *labels, int B)
{
    for (int b = 0; b < B; b++) {
        if (labels[b] == MB_IGNORE_INDEX) continue;
        if (labels[b] < 0 || labels[b] >= m->cfg.n_classes)
            return mb_error_set("label %d at position %d is outside the classes [0, %d)", (int)labels[b], b,
                                m->cfg.n_classes);
    }
    return 0;
}

/* Backbone forward without the LM head, mean over positions, head: hf is
 * left in *o for the backward (train). */
static int cls_forward(mb_model *m, const int32_t *tokens, int B, int L, int train, mb_fwd_out *o)
{
    if (L < 1) return mb_error_set("empty batch (B=%d, L=%d)", B, L);
    if (mb_model_precision_begin(m)) return -1;
    const size_t M = (size_t)B * L, n = (size_t)B * m->cfg.d_model;
    if (mb_scan_supported(m->ctx, m->cfg.d_state, B) || mb_model_check_tokens(m, tokens, M, "token", 0) ||
        mb_model_io_ensure(m, M) || mb_dev_upload(m->ctx, m->tok_dev, tokens, M * sizeof(int32_t)) ||
        m->arch->forward(m, m->tok_dev, B, L, 0, train, o) || mb_dev_zero(m->ctx, m->pooled, n * sizeof(float)))
        return -1;
    mb_cls_pool_sum(m->ctx, m->cfg.d_model, B, L, o->hf, m->pooled);
    mb_axpby(m->ctx, n, 0.f, m->pooled, 1.f / (float)L, m->pooled);
    mb_precision_store(m->ctx, B, m->cfg.d_model, m->pooled, m->cfg.d_model);
    mb_cls_head_fwd(m->ctx, &m->cls, &m->params, B, m->pooled, m->cls_logits);
    return 0;
}

/* probs (B, C, host) = softmax of the head's logits: a few floats per
 * sequence that come to the host anyway, so taken there, in double */
static int cls_probs(mb_model *m, int B, float *probs)
{
    const int C = m->cfg.n_classes;
    if (mb_dev_download(m->ctx, probs, m->cls_logits, (size_t)B * C * sizeof(float))) return -1;
    for (int b = 0; b < B; b++) {
        float *x = probs + (size_t)b * C;
        double mx = x[0], s = 0;
        for (int j = 1; j < C; j++) mx = x[j] > mx ? x[j] : mx;
        for (int j = 0; j < C; j++) s += exp((double)x[j] - mx);
        for (int j = 0; j < C; j++) x[j] = (float)(exp((double)x[j] - mx) / s);
    }
    return 0;
}

int mb_model_classify(mb_model *m, const int32_t *tokens, int B, int L, const int32_t *labels, float *probs,
                      mb_loss_stats *stats)
{
    mb_fwd_out o;
    /* labels first: a bad one fails before any work */
    if (cls_check(m, B) || (labels && cls_check_labels(m, labels, B)) || cls_ensure(m, B) ||
        cls_forward(m, tokens, B, L, 0, &o))
        return -1;
    if (probs && cls_probs(m, B, probs)) return -1;
    if (labels && mb_model_xent_mean(m->ctx, labels, m->cls_lab, B, m->cfg.n_classes, m->cls_logits, 0, stats))
        return -1;
    return mb_ctx_check(m->ctx);
}

int mb_model_classify_backward(mb_model *m, const int32_t *tokens, const int32_t *labels, int B, int L,
                               mb_loss_stats *stats)
{
    if (!labels) return mb_error_set("classify_backward needs labels");
    mb_fwd_out o;
    if (cls_check(m, B) || cls_check_labels(m, labels, B) || mb_params_grad_ensure(&m->params, m->ctx) ||
        cls_ensure(m, B) || cls_forward(m, tokens, B, L, 1, &o) ||
        mb_model_xent_mean(m->ctx, labels, m->cls_lab, B, m->cfg.n_classes, m->cls_logits, 1, stats))
        return -1;
    const int d = m->cfg.d_model;
    /* head: cls_logits hold dlogits; in bf16 precision each gradient is
     * stored as its activation was (the logits, pooled, hf) */
    mb_precision_store(m->ctx, B, m->cfg.n_classes, m->cls_logits, m->cfg.n_classes);
    mb_cls_head_bwd(m->ctx, &m->cls, &m->params, B, m->pooled, m->cls_logits, m->dpooled);
    mb_precision_store(m->ctx, B, d, m->dpooled, d);
    /* the mean: every position of sequence b gets dpooled[b] / L, written
     * over hf (the head has read pooled) as the gradient of hf */
    mb_axpby(m->ctx, (size_t)B * d, 0.f, m->dpooled, 1.f / (float)L, m->dpooled);
    mb_precision_store(m->ctx, B, d, m->dpooled, d);
    if (mb_dev_zero(m->ctx, o.hf, (size_t)B * L * d * sizeof(float))) return -1;
    for (int b = 0; b < B; b++)
        mb_bias_add(m->ctx, L, d, m->dpooled + (size_t)b * d, o.hf + (size_t)b * L * d, d);
    if (m->arch->backward(m, B, L, 0)) return -1;
    return mb_ctx_check(m->ctx);
}

int mb_model_classify_pooled(mb_model *m, const float *pooled, int B, float *probs)
{
    if (cls_check(m, B)) return -1;
    if (!pooled || !probs) return mb_error_set("classify_pooled needs pooled and probs");
    if (mb_model_precision_begin(m) || cls_ensure(m, B) ||
        mb_dev_upload(m->ctx, m->pooled, pooled, (size_t)B * m->cfg.d_model * sizeof(float)))
        return -1;
    mb_precision_store(m->ctx, B, m->cfg.d_model, m->pooled, m->cfg.d_model);
    mb_cls_head_fwd(m->ctx, &m->cls, &m->params, B, m->pooled, m->cls_logits);
    if (cls_probs(m, B, probs)) return -1;
    return mb_ctx_check(m->ctx);
}
