/* The token embedding: a (rows, dim) table, rows = the padded vocabulary.
 * Tensor NAME (mamba_ssm: backbone.embedding.weight). */
#ifndef MB_EMBEDDING_H
#define MB_EMBEDDING_H

#include "nn/params.h"
#include "ops/ops.h"

typedef struct {
    int rows, dim;
    int p_w;
} mb_embedding;

int mb_embedding_register(mb_embedding *e, mb_params *ps, const char *name, int rows, int dim);
/* normal(0, 0.02), mamba_ssm's init, from rng */
void mb_embedding_init_weights(const mb_embedding *e, const mb_params *ps, float *host, mb_rng *rng);
/* y (M, dim) = W[tokens] (device tokens, checked by the caller) */
void mb_embedding_fwd(mb_ctx *ctx, const mb_embedding *e, const mb_params *ps, int M, const int32_t *tokens,
                        float *y);
/* dW[tokens[i]] += dy[i] */
void mb_embedding_bwd(mb_ctx *ctx, const mb_embedding *e, const mb_params *ps, int M, const int32_t *tokens,
                        const float *dy);

#endif
