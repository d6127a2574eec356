/* DownPool and UpPool: linear layers on free reshapes, and the causal
 * shift (mb_shift_rows). Everything goes through the dispatched ops. */
#include <math.h>
#include <stdio.h>

#include "nn/pool.h"

static int pool_register(mb_pool *p, mb_params *ps, const char *prefix, int out, int in)
{
    char name[MB_PARAM_NAME_MAX];
    int64_t shape[2] = {out, in};
    if (snprintf(name, sizeof name, "%s.linear.weight", prefix) >= (int)sizeof name)
        return mb_error_set("internal: parameter name too long");
    p->p_w = mb_params_add(ps, name, 1, 2, shape);
    snprintf(name, sizeof name, "%s.linear.bias", prefix);
    p->p_b = mb_params_add(ps, name, 0, 1, shape);
    return p->p_w < 0 || p->p_b < 0 ? -1 : 0;
}

int mb_downpool_register(mb_pool *p, mb_params *ps, const char *prefix, int d_fine, int pool,
                         int d_coarse)
{
    p->d_fine = d_fine, p->pool = pool, p->d_coarse = d_coarse;
    return pool_register(p, ps, prefix, d_coarse, pool * d_fine);
}

int mb_uppool_register(mb_pool *p, mb_params *ps, const char *prefix, int d_fine, int pool,
                       int d_coarse)
{
    p->d_fine = d_fine, p->pool = pool, p->d_coarse = d_coarse;
    return pool_register(p, ps, prefix, pool * d_fine, d_coarse);
}

void mb_pool_init_weights(const mb_pool *p, const mb_params *ps, float *host, mb_rng *rng)
{
    const mb_param *w = &ps->items[p->p_w], *b = &ps->items[p->p_b];
    double bound = 1.0 / sqrt((double)w->shape[1]);
    for (size_t i = 0; i < w->numel; i++)
        host[w->offset + i] = (float)((2.0 * mb_rng_uniform(rng) - 1.0) * bound);
    for (size_t i = 0; i < b->numel; i++)
        host[b->offset + i] = (float)((2.0 * mb_rng_uniform(rng) - 1.0) * bound);
}

/* the input a pool's product reads: x, or in bf16 its rounded copy in s16 */
static const float *pool_input(mb_ctx *ctx, const float *x, int rows, int cols, float *s16)
{
    if (ctx->precision != MB_PREC_BF16 || !s16) return x;
    mb_dev_copy_async(ctx, s16, x, (size_t)rows * cols * sizeof(float));
    mb_precision_store(ctx, rows, cols, s16, cols);
    return s16;
}

void mb_downpool_fwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int L,
                     const float *x, float *y, float *s16)
{
    const int Mc = B * (L / p->pool), in = p->pool * p->d_fine;
    mb_linear_fwd(ctx, Mc, in, p->d_coarse, pool_input(ctx, x, Mc, in, s16), in, mb_param_gemm(ctx, ps, p->p_w),
                  mb_param_data(ps, p->p_b), y, p->d_coarse);
    if (s16) mb_precision_store(ctx, Mc, p->d_coarse, y, p->d_coarse);
}

void mb_downpool_bwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int L,
                     const float *x, float *dy, float *dx, float dx_beta, float *s16, float *g16)
{
    const int Mc = B * (L / p->pool), in = p->pool * p->d_fine;
    const int bf = ctx->precision == MB_PREC_BF16 && s16 && g16;
    if (bf) mb_precision_store(ctx, Mc, p->d_coarse, dy, p->d_coarse);
    mb_linear_bwd(ctx, Mc, in, p->d_coarse, pool_input(ctx, x, Mc, in, bf ? s16 : NULL), in,
                  mb_param_gemm(ctx, ps, p->p_w), dy, p->d_coarse, bf ? g16 : dx, in, bf ? 0.f : dx_beta,
                  mb_param_grad(ps, p->p_w), mb_param_grad(ps, p->p_b));
    if (!bf) return;
    /* the input gradient as the rounded copy was stored, then added */
    mb_precision_store(ctx, Mc, in, g16, in);
    mb_axpby(ctx, (size_t)Mc * in, 1.f, g16, dx_beta, dx);
}

void mb_uppool_fwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int Lc,
                   const float *z, float *tmp, float *y, float *carry, float *s16)
{
    const int out = p->pool * p->d_fine;
    const size_t seq = (size_t)Lc * out; /* one sequence's projection */
    mb_linear_fwd(ctx, B * Lc, p->d_coarse, out, pool_input(ctx, z, B * Lc, p->d_coarse, s16), p->d_coarse,
                  mb_param_gemm(ctx, ps, p->p_w), mb_param_data(ps, p->p_b), tmp, out);
    if (s16) mb_precision_store(ctx, B * Lc, out, tmp, out);
    mb_shift_rows(ctx, B, Lc, out, 1, tmp, out, y, out);
    if (!carry) return;
    /* each sequence's first coarse step gets the carried row, and the
     * carry becomes the sequence's last projection (as L = 1 reads: rows
     * B apart, and whole sequences seq floats apart) */
    mb_shift_rows(ctx, B, 1, out, 0, carry, out, y, (int)seq);
    mb_shift_rows(ctx, B, 1, out, 0, tmp + seq - out, (int)seq, carry, out);
}

void mb_uppool_bwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int Lc,
                   const float *z, const float *dy, float *tmp, float *dz, float *s16)
{
    const int out = p->pool * p->d_fine;
    /* the shift's adjoint: coarse step k's projection went to step k+1;
     * the last one went nowhere */
    mb_shift_rows(ctx, B, Lc, out, -1, dy, out, tmp, out);
    if (s16) mb_precision_store(ctx, B * Lc, out, tmp, out);
    mb_linear_bwd(ctx, B * Lc, p->d_coarse, out, pool_input(ctx, z, B * Lc, p->d_coarse, s16), p->d_coarse,
                  mb_param_gemm(ctx, ps, p->p_w), tmp, out, dz, p->d_coarse, 0.f, mb_param_grad(ps, p->p_w),
                  mb_param_grad(ps, p->p_b));
    if (s16) mb_precision_store(ctx, B * Lc, p->d_coarse, dz, p->d_coarse);
}

void mb_downpool_step_push(mb_ctx *ctx, const mb_pool *p, int B, int j, const float *x,
                           float *buf)
{
    mb_shift_rows(ctx, B, 1, p->d_fine, 0, x, p->d_fine, buf + (size_t)j * p->d_fine,
                  p->pool * p->d_fine);
}

void mb_downpool_step_emit(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B,
                           float *buf, float *y)
{
    /* bf16 precision rounds where the forward does: the buffer's rows (read
     * by this product only, so in place, where the forward rounds a copy),
     * then the output */
    const int in = p->pool * p->d_fine;
    mb_precision_store(ctx, B, in, buf, in);
    mb_downpool_fwd(ctx, p, ps, B, p->pool, buf, y, NULL);
    mb_precision_store(ctx, B, p->d_coarse, y, p->d_coarse);
}

void mb_uppool_step_read(mb_ctx *ctx, const mb_pool *p, int B, int j, const float *buf, float *y)
{
    mb_shift_rows(ctx, B, 1, p->d_fine, 0, buf + (size_t)j * p->d_fine, p->pool * p->d_fine, y,
                  p->d_fine);
}

void mb_uppool_step_load(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B,
                         const float *z, float *buf, float *s16)
{
    const int out = p->pool * p->d_fine;
    mb_linear_fwd(ctx, B, p->d_coarse, out, pool_input(ctx, z, B, p->d_coarse, s16), p->d_coarse,
                  mb_param_gemm(ctx, ps, p->p_w), mb_param_data(ps, p->p_b), buf, out);
    mb_precision_store(ctx, B, out, buf, out);
}
