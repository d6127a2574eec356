#include "nn/embedding.h"

int mb_embedding_register(mb_embedding *e, mb_params *ps, const char *name, int rows, int dim)
{
    const int64_t shape[2] = {rows, dim};
    e->rows = rows, e->dim = dim;
    e->p_w = mb_params_add(ps, name, 1, 2, shape);
    return e->p_w < 0 ? -1 : 0;
}

void mb_embedding_init_weights(const mb_embedding *e, const mb_params *ps, float *host, mb_rng *rng)
{
    const mb_param *w = &ps->items[e->p_w];
    for (size_t i = 0; i < w->numel; i++) host[w->offset + i] = (float)(0.02 * mb_rng_normal(rng));
}

void mb_embedding_fwd(mb_ctx *ctx, const mb_embedding *e, const mb_params *ps, int M, const int32_t *tokens,
                        float *y)
{
    mb_embed_fwd(ctx, M, e->dim, tokens, mb_param_data(ps, e->p_w), y);
}

void mb_embedding_bwd(mb_ctx *ctx, const mb_embedding *e, const mb_params *ps, int M, const int32_t *tokens,
                        const float *dy)
{
    mb_embed_bwd(ctx, M, e->dim, tokens, dy, mb_param_grad(ps, e->p_w));
}
