/* Sequence classification: the mean over positions of norm_f's output (the
 * LM head's input), then classifier.weight (n_classes, d_model) and
 * classifier.bias. Everything runs through the dispatched ops (column sums,
 * linear, bias broadcast, cross-entropy), so both backends have it. The
 * backward hands the backbone dpooled / L at every position of norm_f's
 * output: the same place where the LM head's backward puts its gradient,
 * so recompute and its chunks need nothing new. */
#include <math.h>
#include <string.h>

#include "models/lm.h"

#define AL(n) (((n) + 15) & ~(size_t)15)

int mb_cls_register(mb_model *m)
{
    const mb_config *c = &m->cfg;
    m->p_cls_w = m->p_cls_b = -1;
    if (c->n_classes <= 0) return 0;
    const int64_t shape[2] = {c->n_classes, c->d_model};
    /* decay on the matrix, none on the bias: the optimizer's rule for every
     * other tensor */
    m->p_cls_w = mb_params_add(&m->params, "classifier.weight", 1, 2, shape);
    m->p_cls_b = mb_params_add(&m->params, "classifier.bias", 0, 1, shape);
    return m->p_cls_w < 0 || m->p_cls_b < 0 ? -1 : 0;
}

void mb_cls_init_weights(const mb_model *m, float *host, uint64_t seed)
{
    if (m->p_cls_w < 0) return;
    /* A stream of its own: a classifier created with a seed has the LM's
     * backbone of that seed, and a head added to a loaded LM with a seed is
     * the head a fresh classifier of that seed gets. The constant ("classif"
     * in ASCII) keeps the head's draws apart from the embedding's, which
     * start from the plain seed. */
    mb_rng rng;
    mb_rng_seed(&rng, seed ^ 0x636c617373696600ull);
    const mb_param *w = &m->params.items[m->p_cls_w], *b = &m->params.items[m->p_cls_b];
    for (size_t i = 0; i < w->numel; i++) host[w->offset + i] = (float)(0.02 * mb_rng_normal(&rng));
    memset(host + b->offset, 0, b->numel * sizeof(float));
}

void mb_cls_free(mb_model *m)
{
    mb_dev_free(m->ctx, m->cls_buf);
    mb_dev_free(m->ctx, m->cls_lab);
    m->cls_buf = m->pooled = m->dpooled = m->cls_logits = NULL;
    m->cls_lab = NULL;
    m->cls_B = 0;
}

void mb_cls_pool_sum(mb_model *m, int B, int L, const float *x, float *out)
{
    const size_t d = (size_t)m->cfg.d_model;
    /* one column-sum per sequence: its L rows are contiguous */
    for (int b = 0; b < B; b++) mb_colsum_acc(m->ctx, L, (int)d, x + (size_t)b * L * d, (int)d, out + b * d);
}

/* Buffers for up to cls_B sequences; grown only when a larger batch comes. */
static int cls_ensure(mb_model *m, int B)
{
    if (B <= m->cls_B) return 0;
    mb_cls_free(m);
    const size_t d = (size_t)m->cfg.d_model, C = (size_t)m->cfg.n_classes;
    m->cls_buf = mb_dev_alloc_floats(m->ctx, 2 * AL(B * d) + AL(B * C), "classifier activations");
    m->cls_lab = (int32_t *)mb_dev_alloc_floats(m->ctx, AL((size_t)B), "labels");
    if (!m->cls_buf || !m->cls_lab) {
        mb_cls_free(m);
        return mb_error_set("out of memory for the classifier of batch %d", B);
    }
    m->pooled = m->cls_buf;
    m->dpooled = m->pooled + AL(B * d);
    m->cls_logits = m->dpooled + AL(B * d);
    m->cls_B = B;
    return 0;
}

static int cls_check(const mb_model *m, int B)
{
    if (m->sa) return mb_error_set("classification needs a mamba-lm model, not a sashimi-mamba one");
    if (m->p_cls_w < 0) return mb_error_set("model has no classification head");
    if (B < 1) return mb_error_set("empty batch (B=%d)", B);
    return 0;
}

static int cls_check_labels(const mb_model *m, const int32_t *labels, int B)
{
    for (int b = 0; b < B; b++) {
        if (labels[b] == MB_IGNORE_INDEX) continue;
        if (labels[b] < 0 || labels[b] >= m->cfg.n_classes)
            return mb_error_set("label %d at position %d is outside the classes [0, %d)",
                                (int)labels[b], b, m->cfg.n_classes);
    }
    return 0;
}

/* cls_logits (B, C) = classifier(pooled) */
static void cls_head_fwd(mb_model *m, int B)
{
    const mb_params *ps = &m->params;
    mb_linear_fwd(m->ctx, B, m->cfg.d_model, m->cfg.n_classes, m->pooled, m->cfg.d_model,
                  mb_param_data(ps, m->p_cls_w), mb_param_data(ps, m->p_cls_b), m->cls_logits,
                  m->cfg.n_classes);
}

/* Backbone forward without the LM head, mean over positions, head. */
static int cls_forward(mb_model *m, const int32_t *tokens, int B, int L)
{
    if (mb_lm_forward_train(m, tokens, B, L, 0)) return -1;
    const size_t n = (size_t)B * m->cfg.d_model;
    if (mb_dev_zero(m->ctx, m->pooled, n * sizeof(float))) return -1;
    mb_cls_pool_sum(m, B, L, m->hf, m->pooled);
    mb_axpby(m->ctx, n, 0.f, m->pooled, 1.f / (float)L, m->pooled);
    cls_head_fwd(m, B);
    return 0;
}

/* probs (B, C, host) = softmax of the head's logits. The logits are a few
 * floats per sequence and come to the host anyway, so the softmax is taken
 * there, in double. */
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

/* Cross-entropy over the counted labels into stats; with want_grad the
 * logits become the gradient of the mean loss. */
static int cls_loss(mb_model *m, const int32_t *labels, int B, int want_grad, mb_loss_stats *stats)
{
    return mb_lm_xent_mean(m->ctx, labels, m->cls_lab, B, m->cfg.n_classes, m->cls_logits, want_grad, stats);
}

int mb_model_classify(mb_model *m, const int32_t *tokens, int B, int L, const int32_t *labels,
                      float *probs, mb_loss_stats *stats)
{
    /* labels first: a bad one fails before any work */
    if (cls_check(m, B) || (labels && cls_check_labels(m, labels, B)) || cls_ensure(m, B) ||
        cls_forward(m, tokens, B, L))
        return -1;
    if (probs && cls_probs(m, B, probs)) return -1;
    if (labels && cls_loss(m, labels, B, 0, stats)) return -1;
    return mb_ctx_check(m->ctx);
}

int mb_model_classify_backward(mb_model *m, const int32_t *tokens, const int32_t *labels, int B,
                               int L, mb_loss_stats *stats)
{
    if (!labels) return mb_error_set("classify_backward needs labels");
    if (cls_check(m, B) || cls_check_labels(m, labels, B) || cls_ensure(m, B) ||
        cls_forward(m, tokens, B, L) || cls_loss(m, labels, B, 1, stats))
        return -1;
    const int d = m->cfg.d_model, C = m->cfg.n_classes;
    mb_params *ps = &m->params;
    /* head: cls_logits hold dlogits; dW += dlogits^T pooled, db += their
     * column sums, dpooled = dlogits W */
    mb_linear_bwd(m->ctx, B, d, C, m->pooled, d, mb_param_data(ps, m->p_cls_w), m->cls_logits, C,
                  m->dpooled, d, 0.f, mb_param_grad(ps, m->p_cls_w), mb_param_grad(ps, m->p_cls_b));
    /* the mean: every position of sequence b gets dpooled[b] / L, written
     * over hf (no longer needed: the head read pooled) as the gradient of
     * norm_f's output */
    mb_axpby(m->ctx, (size_t)B * d, 0.f, m->dpooled, 1.f / (float)L, m->dpooled);
    if (mb_dev_zero(m->ctx, m->hf, (size_t)B * L * d * sizeof(float))) return -1;
    for (int b = 0; b < B; b++)
        mb_bias_add(m->ctx, L, d, m->dpooled + (size_t)b * d, m->hf + (size_t)b * L * d, d);
    return mb_lm_backward_from_hf(m, B, L);
}

int mb_model_classify_pooled(mb_model *m, const float *pooled, int B, float *probs)
{
    if (cls_check(m, B)) return -1;
    if (!pooled || !probs) return mb_error_set("classify_pooled needs pooled and probs");
    if (cls_ensure(m, B) ||
        mb_dev_upload(m->ctx, m->pooled, pooled, (size_t)B * m->cfg.d_model * sizeof(float)))
        return -1;
    cls_head_fwd(m, B);
    if (cls_probs(m, B, probs)) return -1;
    return mb_ctx_check(m->ctx);
}
