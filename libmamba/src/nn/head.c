#include <math.h>
#include <string.h>

#include "nn/head.h"

int mb_lm_head_register(mb_lm_head *h, mb_params *ps, const char *norm_prefix, const char *weight_name,
                        int p_tied, int dim, int vocab_padded, int rms, float eps)
{
    h->dim = dim, h->vocab_padded = vocab_padded;
    if (mb_norm_register(&h->norm, ps, norm_prefix, dim, rms, eps)) return -1;
    h->tied = weight_name == NULL;
    if (h->tied) {
        h->p_w = p_tied;
        return 0;
    }
    const int64_t shape[2] = {vocab_padded, dim};
    h->p_w = mb_params_add(ps, weight_name, 1, 2, shape);
    return h->p_w < 0 ? -1 : 0;
}

void mb_lm_head_init_weights(const mb_lm_head *h, const mb_params *ps, float *host, mb_rng *rng)
{
    mb_norm_init_weights(&h->norm, ps, host);
    if (h->tied) return;
    const mb_param *w = &ps->items[h->p_w];
    const double bound = 1.0 / sqrt((double)h->dim);
    for (size_t i = 0; i < w->numel; i++) host[w->offset + i] = (float)((2.0 * mb_rng_uniform(rng) - 1.0) * bound);
}

void mb_lm_head_acts_carve(mb_lm_head_acts *a, const mb_lm_head *h, int M, mb_carve *c)
{
    a->hf = mb_carve_take(c, (size_t)M * h->dim);
    mb_norm_acts_carve(&a->norm, &h->norm, M, c);
}

mb_lm_head_acts mb_lm_head_acts_rows(const mb_lm_head_acts *a, const mb_lm_head *h, size_t r0)
{
    mb_lm_head_acts v = {.hf = a->hf + r0 * h->dim,
                         .norm = {.mean = a->norm.mean ? a->norm.mean + r0 : NULL, .rstd = a->norm.rstd + r0}};
    return v;
}

void mb_lm_head_fwd(mb_ctx *ctx, const mb_lm_head *h, const mb_params *ps, int M, const float *y,
                    const mb_lm_head_acts *a, float *logits)
{
    mb_norm_fwd(ctx, &h->norm, ps, M, y, a->hf, &a->norm);
    if (!logits) return;
    const mb_q8 *wq = mb_param_q8(ps, h->p_w);       /* CPU inference with int8 weights */
    const uint16_t *wb = mb_param_bf16(ps, h->p_w); /* GPU inference with bf16 weights */
    if (wq) /* the product the head of a draw runs too (mb_head_sample_cpu): the same logits */
        mb_gemm_infer_cpu(ctx, M, h->vocab_padded, h->dim, a->hf, h->dim, mb_param_data(ps, h->p_w), wq, logits,
                          h->vocab_padded);
    else if (wb && M <= MB_LINEAR_FEW_ROWS)
        mb_linear_bf16_fwd(ctx, M, h->dim, h->vocab_padded, a->hf, h->dim, wb, logits, h->vocab_padded);
    else
        mb_linear_fwd(ctx, M, h->dim, h->vocab_padded, a->hf, h->dim, mb_param_gemm(ctx, ps, h->p_w), NULL, logits,
                      h->vocab_padded);
    mb_precision_store(ctx, M, h->vocab_padded, logits, h->vocab_padded);
}

void mb_lm_head_bwd_logits(mb_ctx *ctx, const mb_lm_head *h, const mb_params *ps, int M,
                           const mb_lm_head_acts *a, float *dlogits)
{
    /* the logits' gradient, as the logits were stored (bf16 precision) */
    mb_precision_store(ctx, M, h->vocab_padded, dlogits, h->vocab_padded);
    mb_linear_bwd(ctx, M, h->dim, h->vocab_padded, a->hf, h->dim, mb_param_gemm(ctx, ps, h->p_w), dlogits,
                  h->vocab_padded, a->hf, h->dim, 0.f, mb_param_grad(ps, h->p_w), NULL);
    mb_precision_store(ctx, M, h->dim, a->hf, h->dim); /* hf's gradient, as hf was stored */
}

void mb_lm_head_bwd_norm(mb_ctx *ctx, const mb_lm_head *h, const mb_params *ps, int M, const float *y,
                         const mb_lm_head_acts *a, float *dy)
{
    mb_norm_bwd(ctx, &h->norm, ps, M, y, &a->norm, a->hf, dy, 0.f);
}

int mb_cls_head_register(mb_cls_head *h, mb_params *ps, int dim, int n_classes)
{
    const int64_t shape[2] = {n_classes, dim};
    h->dim = dim, h->n_classes = n_classes;
    /* decay on the matrix, none on the bias: the optimizer's rule for
     * every other tensor */
    h->p_w = mb_params_add(ps, "classifier.weight", 1, 2, shape);
    h->p_b = mb_params_add(ps, "classifier.bias", 0, 1, shape);
    return h->p_w < 0 || h->p_b < 0 ? -1 : 0;
}

void mb_cls_head_init_weights(const mb_cls_head *h, const mb_params *ps, float *host, uint64_t seed)
{
    /* the constant ("classif" in ASCII) keeps the head's draws apart from
     * the embedding's, which start from the plain seed */
    mb_rng rng;
    mb_rng_seed(&rng, seed ^ 0x636c617373696600ull);
    const mb_param *w = &ps->items[h->p_w], *b = &ps->items[h->p_b];
    for (size_t i = 0; i < w->numel; i++) host[w->offset + i] = (float)(0.02 * mb_rng_normal(&rng));
    memset(host + b->offset, 0, b->numel * sizeof(float));
}

void mb_cls_pool_sum(mb_ctx *ctx, int dim, int B, int L, const float *x, float *out)
{
    /* one column sum per sequence: its L rows are contiguous */
    for (int b = 0; b < B; b++)
        mb_colsum_acc(ctx, L, dim, x + (size_t)b * L * dim, dim, out + (size_t)b * dim);
}

void mb_cls_head_fwd(mb_ctx *ctx, const mb_cls_head *h, const mb_params *ps, int B, const float *pooled,
                     float *logits)
{
    mb_linear_fwd(ctx, B, h->dim, h->n_classes, pooled, h->dim, mb_param_gemm(ctx, ps, h->p_w),
                  mb_param_data(ps, h->p_b), logits, h->n_classes);
    mb_precision_store(ctx, B, h->n_classes, logits, h->n_classes);
}

void mb_cls_head_bwd(mb_ctx *ctx, const mb_cls_head *h, const mb_params *ps, int B, const float *pooled,
                     const float *dlogits, float *dpooled)
{
    mb_linear_bwd(ctx, B, h->dim, h->n_classes, pooled, h->dim, mb_param_gemm(ctx, ps, h->p_w), dlogits,
                  h->n_classes, dpooled, h->dim, 0.f, mb_param_grad(ps, h->p_w), mb_param_grad(ps, h->p_b));
}
