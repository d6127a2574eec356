#include <stdio.h>
#include <string.h>

#include "nn/norm.h"

int mb_norm_register(mb_norm *n, mb_params *ps, const char *prefix, int dim, int rms, float eps)
{
    char name[MB_PARAM_NAME_MAX];
    const int64_t shape[1] = {dim};
    n->dim = dim, n->rms = rms, n->eps = eps, n->p_b = -1;
    if (snprintf(name, sizeof name, "%s.weight", prefix) >= (int)sizeof name)
        return mb_error_set("internal: parameter name too long");
    /* no weight decay on norms (the optimizer's rule) */
    n->p_w = mb_params_add(ps, name, 0, 1, shape);
    if (n->p_w < 0) return -1;
    if (rms) return 0;
    snprintf(name, sizeof name, "%s.bias", prefix);
    n->p_b = mb_params_add(ps, name, 0, 1, shape);
    return n->p_b < 0 ? -1 : 0;
}

void mb_norm_init_weights(const mb_norm *n, const mb_params *ps, float *host)
{
    float *w = host + ps->items[n->p_w].offset;
    for (int i = 0; i < n->dim; i++) w[i] = 1.f;
    if (n->p_b >= 0) memset(host + ps->items[n->p_b].offset, 0, (size_t)n->dim * sizeof(float));
}

void mb_norm_acts_carve(mb_norm_acts *a, const mb_norm *n, int M, mb_carve *c)
{
    a->mean = n->rms ? NULL : mb_carve_take(c, (size_t)M);
    a->rstd = mb_carve_take(c, (size_t)M);
}

void mb_norm_fwd(mb_ctx *ctx, const mb_norm *n, const mb_params *ps, int M, const float *x, float *y,
                 const mb_norm_acts *a)
{
    /* y as the precision stores it: the op rounds it as it writes it */
    const int r16 = ctx->precision == MB_PREC_BF16;
    if (n->rms)
        mb_rmsnorm_fwd(ctx, M, n->dim, x, mb_param_data(ps, n->p_w), n->eps, y, a->rstd, r16);
    else
        mb_layernorm_fwd(ctx, M, n->dim, x, mb_param_data(ps, n->p_w), mb_param_data(ps, n->p_b), n->eps, y,
                         a->mean, a->rstd, r16);
}

void mb_norm_bwd(mb_ctx *ctx, const mb_norm *n, const mb_params *ps, int M, const float *x,
                 const mb_norm_acts *a, const float *dy, float *dx, float dx_beta)
{
    if (n->rms)
        mb_rmsnorm_bwd(ctx, M, n->dim, x, mb_param_data(ps, n->p_w), a->rstd, dy, dx, dx_beta,
                       mb_param_grad(ps, n->p_w));
    else
        mb_layernorm_bwd(ctx, M, n->dim, x, mb_param_data(ps, n->p_w), a->mean, a->rstd, dy, dx, dx_beta,
                         mb_param_grad(ps, n->p_w), mb_param_grad(ps, n->p_b));
}
