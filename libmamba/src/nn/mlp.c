#include <math.h>
#include <stdio.h>

#include "nn/mlp.h"

static int mlp_add(mb_params *ps, const char *prefix, const char *name, int decay, int ndim, int64_t a, int64_t b)
{
    char full[MB_PARAM_NAME_MAX];
    const int64_t shape[2] = {a, b};
    if (snprintf(full, sizeof full, "%s.%s", prefix, name) >= (int)sizeof full)
        return mb_error_set("internal: parameter name too long");
    return mb_params_add(ps, full, decay, ndim, shape);
}

int mb_mlp_register(mb_mlp *p, mb_params *ps, const char *norm_prefix, const char *mlp_prefix, int width,
                    float eps)
{
    p->width = width;
    if (mb_norm_register(&p->norm, ps, norm_prefix, width, 1, eps)) return -1;
    p->p_fc1_w = mlp_add(ps, mlp_prefix, "fc1.weight", 1, 2, 2 * width, width);
    p->p_fc1_b = mlp_add(ps, mlp_prefix, "fc1.bias", 0, 1, 2 * width, 0);
    p->p_fc2_w = mlp_add(ps, mlp_prefix, "fc2.weight", 1, 2, width, 2 * width);
    p->p_fc2_b = mlp_add(ps, mlp_prefix, "fc2.bias", 0, 1, width, 0);
    return p->p_fc1_w < 0 || p->p_fc1_b < 0 || p->p_fc2_w < 0 || p->p_fc2_b < 0 ? -1 : 0;
}

static void fill_uniform(float *x, size_t n, double bound, mb_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * mb_rng_uniform(rng) - 1.0) * bound);
}

void mb_mlp_init_weights(const mb_mlp *p, const mb_params *ps, float *host, mb_rng *rng)
{
#define P(idx) (host + ps->items[idx].offset), ps->items[idx].numel
    const double b1 = 1.0 / sqrt((double)p->width), b2 = 1.0 / sqrt(2.0 * p->width);
    mb_norm_init_weights(&p->norm, ps, host);
    fill_uniform(P(p->p_fc1_w), b1, rng);
    fill_uniform(P(p->p_fc1_b), b1, rng);
    fill_uniform(P(p->p_fc2_w), b2, rng);
    fill_uniform(P(p->p_fc2_b), b2, rng);
#undef P
}

void mb_mlp_acts_carve(mb_mlp_acts *a, const mb_mlp *p, int M, mb_carve *c)
{
    const size_t MD = (size_t)M * p->width;
    a->xn = mb_carve_take(c, MD);
    mb_norm_acts_carve(&a->norm, &p->norm, M, c);
    a->a1 = mb_carve_take(c, 2 * MD);
    a->g1 = mb_carve_take(c, 2 * MD);
}

/* bf16 precision stores the norm's output, both products' outputs and the
 * GELU's, and their gradients, as bf16 (mb_precision_store); the products
 * read their weights rounded (mb_param_gemm); the residual stays fp32 */
void mb_mlp_fwd(mb_ctx *ctx, const mb_mlp *p, const mb_params *ps, int M, const float *in, float *out,
                const mb_mlp_acts *a)
{
    const int D = p->width;
    mb_norm_fwd(ctx, &p->norm, ps, M, in, a->xn, &a->norm);
    mb_linear_fwd(ctx, M, D, 2 * D, a->xn, D, mb_param_gemm(ctx, ps, p->p_fc1_w), mb_param_data(ps, p->p_fc1_b),
                  a->a1, 2 * D);
    mb_precision_store(ctx, M, 2 * D, a->a1, 2 * D);
    mb_act_fwd(ctx, MB_ACT_GELU, M, 2 * D, a->a1, 2 * D, a->g1, 2 * D);
    mb_precision_store(ctx, M, 2 * D, a->g1, 2 * D);
    mb_linear_fwd(ctx, M, 2 * D, D, a->g1, 2 * D, mb_param_gemm(ctx, ps, p->p_fc2_w), mb_param_data(ps, p->p_fc2_b),
                  out, D);
    mb_precision_store(ctx, M, D, out, D);
    mb_axpby(ctx, (size_t)M * D, 1.f, in, 1.f, out);
}

void mb_mlp_bwd(mb_ctx *ctx, const mb_mlp *p, const mb_params *ps, int M, const float *in,
                const mb_mlp_acts *a, float *dh, float *dg, float *dxn)
{
    const int D = p->width;
    /* fc2's output was stored as bf16, so its gradient is: a rounded copy
     * of dh (the residual's, which stays fp32), in dxn until fc1 writes it */
    const float *dout = dh;
    if (ctx->precision == MB_PREC_BF16) {
        mb_dev_copy_async(ctx, dxn, dh, (size_t)M * D * sizeof(float));
        mb_precision_store(ctx, M, D, dxn, D);
        dout = dxn;
    }
    mb_linear_bwd(ctx, M, 2 * D, D, a->g1, 2 * D, mb_param_gemm(ctx, ps, p->p_fc2_w), dout, D, dg, 2 * D, 0.f,
                  mb_param_grad(ps, p->p_fc2_w), mb_param_grad(ps, p->p_fc2_b));
    mb_precision_store(ctx, M, 2 * D, dg, 2 * D);
    mb_act_bwd(ctx, MB_ACT_GELU, M, 2 * D, a->a1, 2 * D, dg, 2 * D, dg, 2 * D);
    mb_precision_store(ctx, M, 2 * D, dg, 2 * D);
    mb_linear_bwd(ctx, M, D, 2 * D, a->xn, D, mb_param_gemm(ctx, ps, p->p_fc1_w), dg, 2 * D, dxn, D, 0.f,
                  mb_param_grad(ps, p->p_fc1_w), mb_param_grad(ps, p->p_fc1_b));
    mb_precision_store(ctx, M, D, dxn, D);
    /* the residual passes dh through; the norm path adds to it */
    mb_norm_bwd(ctx, &p->norm, ps, M, in, &a->norm, dxn, dh, 1.f);
}
