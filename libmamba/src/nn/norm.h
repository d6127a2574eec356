/* A norm over the last axis with its weight (and, for LayerNorm, bias):
 * RMSNorm y = x / sqrt(mean(x^2) + eps) * w, or LayerNorm y = (x - mean) *
 * rstd * w + b. Tensors PREFIX.weight (dim) and, for LayerNorm, PREFIX.bias. */
#ifndef MB_NORM_H
#define MB_NORM_H

#include "nn/params.h"
#include "ops/ops.h"

typedef struct {
    int dim, rms;
    float eps;
    int p_w, p_b; /* p_b -1 for RMSNorm */
} mb_norm;

/* What forward keeps for backward over M rows: rstd (M) and, LayerNorm
 * only, mean (M; NULL for RMSNorm). */
typedef struct {
    float *mean, *rstd;
} mb_norm_acts;

int mb_norm_register(mb_norm *n, mb_params *ps, const char *prefix, int dim, int rms, float eps);
/* weight 1, bias 0 (torch's init), into host memory laid out as ps */
void mb_norm_init_weights(const mb_norm *n, const mb_params *ps, float *host);
void mb_norm_acts_carve(mb_norm_acts *a, const mb_norm *n, int M, mb_carve *c);
/* y (M, dim) = norm(x), stored as the context's precision stores an
 * activation (bf16: rounded by the op as it writes y) */
void mb_norm_fwd(mb_ctx *ctx, const mb_norm *n, const mb_params *ps, int M, const float *x, float *y,
                 const mb_norm_acts *a);
/* dx = dx_beta * dx + d/dx from dy; weight (and bias) gradients accumulated */
void mb_norm_bwd(mb_ctx *ctx, const mb_norm *n, const mb_params *ps, int M, const float *x,
                 const mb_norm_acts *a, const float *dy, float *dx, float dx_beta);

#endif
