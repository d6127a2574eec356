/* Heads on a backbone's last hidden state y (M, dim):
 *
 * mb_lm_head: the final norm (norm_f) and the LM head, logits (M, padded
 *   vocab) = norm_f(y) @ W^T, W its own lm_head.weight or the embedding's
 *   table when tied. hf, norm_f's output, is also what pooled embeddings
 *   and the classification head read.
 * mb_cls_head: sequence classification, logits (B, n_classes) =
 *   classifier.weight @ mean over positions of hf + classifier.bias. */
#ifndef MB_HEAD_H
#define MB_HEAD_H

#include "nn/norm.h"

typedef struct {
    int dim, vocab_padded;
    mb_norm norm;
    int p_w;  /* lm_head.weight, or the tied embedding table */
    int tied;
} mb_lm_head;

typedef struct {
    float *hf; /* (M, dim): norm_f's output; backward leaves its gradient here */
    mb_norm_acts norm;
} mb_lm_head_acts;

/* norm_f as NORM_PREFIX.*, then WEIGHT_NAME (vocab_padded, dim), or, with
 * weight_name NULL, the tied parameter p_tied (the embedding). */
int mb_lm_head_register(mb_lm_head *h, mb_params *ps, const char *norm_prefix, const char *weight_name,
                        int p_tied, int dim, int vocab_padded, int rms, float eps);
/* norm ones; an own weight U(+-1/sqrt(dim)) from rng */
void mb_lm_head_init_weights(const mb_lm_head *h, const mb_params *ps, float *host, mb_rng *rng);
void mb_lm_head_acts_carve(mb_lm_head_acts *a, const mb_lm_head *h, int M, mb_carve *c);
/* the same buffers from row r0 on (a chunk of the rows) */
mb_lm_head_acts mb_lm_head_acts_rows(const mb_lm_head_acts *a, const mb_lm_head *h, size_t r0);
/* a->hf = norm_f(y); logits (M, vocab_padded) when not NULL */
void mb_lm_head_fwd(mb_ctx *ctx, const mb_lm_head *h, const mb_params *ps, int M, const float *y,
                    const mb_lm_head_acts *a, float *logits);
/* From dlogits (which may be the logits buffer) into a->hf, overwriting
 * norm_f's output with its gradient (read first for the weight's). */
void mb_lm_head_bwd_logits(mb_ctx *ctx, const mb_lm_head *h, const mb_params *ps, int M,
                           const mb_lm_head_acts *a, float *dlogits);
/* dy = d(y) from the gradient of norm_f's output in a->hf. */
void mb_lm_head_bwd_norm(mb_ctx *ctx, const mb_lm_head *h, const mb_params *ps, int M, const float *y,
                         const mb_lm_head_acts *a, float *dy);

typedef struct {
    int dim, n_classes;
    int p_w, p_b;
} mb_cls_head;

/* classifier.weight (n_classes, dim), classifier.bias (n_classes) */
int mb_cls_head_register(mb_cls_head *h, mb_params *ps, int dim, int n_classes);
/* weight normal(0, 0.02) from a stream of its own derived from seed, bias
 * 0: a head added to a loaded backbone with a seed is the head a fresh
 * classifier of that seed gets, and the backbone's draws do not move */
void mb_cls_head_init_weights(const mb_cls_head *h, const mb_params *ps, float *host, uint64_t seed);
/* out (B, dim) += the sum over each sequence's L rows of x (B*L, dim) */
void mb_cls_pool_sum(mb_ctx *ctx, int dim, int B, int L, const float *x, float *out);
/* logits (B, n_classes) = head(pooled (B, dim)) */
void mb_cls_head_fwd(mb_ctx *ctx, const mb_cls_head *h, const mb_params *ps, int B, const float *pooled,
                     float *logits);
/* weight and bias gradients accumulated; dpooled (B, dim) overwritten */
void mb_cls_head_bwd(mb_ctx *ctx, const mb_cls_head *h, const mb_params *ps, int B, const float *pooled,
                     const float *dlogits, float *dpooled);

#endif
