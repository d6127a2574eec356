/* SaShiMi's pooling modules (Goel et al. 2022), with (B, L, D) row-major
 * activations so that both reshapes are free views:
 *
 * DownPool: (B, L, D) is read as (B, L/p, p*D) (the p fine rows of a coarse
 *   step side by side), then linear p*D -> expand*D with bias.
 * UpPool: linear D_c -> p*D with bias on the coarse rows (B, Lc, D_c), then
 *   shifted right by ONE coarse step within each sequence (coarse step k
 *   gets the projection of step k-1, step 0 gets zeros), then read as
 *   (B, Lc*p, D). The shift keeps the U-Net causal: fine position t only
 *   sees coarse outputs of coarse steps that ended before t.
 *
 * Tensors under PREFIX: PREFIX.linear.weight (out, in), PREFIX.linear.bias.
 * Step mode (recurrent generation): a DownPool collects p fine rows into a
 * buffer (B, p*D) and emits one coarse row when it is full; an UpPool keeps
 * the up-projection (B, p*D) of the last completed coarse row and hands out
 * slice j at fine step j of the next coarse step. */
#ifndef MB_POOL_H
#define MB_POOL_H

#include "nn/params.h"
#include "ops/ops.h"

typedef struct {
    int d_fine, pool, d_coarse; /* (L, d_fine) <-> (L/pool, d_coarse) */
    int p_w, p_b;
} mb_pool;

/* DownPool: linear pool*d_fine -> d_coarse. */
int mb_downpool_register(mb_pool *p, mb_params *ps, const char *prefix, int d_fine, int pool,
                         int d_coarse);
/* UpPool: linear d_coarse -> pool*d_fine. */
int mb_uppool_register(mb_pool *p, mb_params *ps, const char *prefix, int d_fine, int pool,
                       int d_coarse);
/* nn.Linear's default: weight and bias U(+-1/sqrt(fan_in)), into host
 * memory laid out as ps. */
void mb_pool_init_weights(const mb_pool *p, const mb_params *ps, float *host, mb_rng *rng);

/* bf16 precision (mb_precision_store): a pool's product reads a rounded copy
 * of its input, whose residual stream stays fp32, and its output and the
 * gradients are stored as bf16. s16 (the input's size, or NULL: no copy,
 * as in fp32) holds that copy; the
 * DownPool's backward also needs g16 (the input's size) for its input
 * gradient before adding it. */

/* x (B*L, d_fine) contiguous -> y (B*L/pool, d_coarse); L % pool == 0. */
void mb_downpool_fwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int L,
                     const float *x, float *y, float *s16);
/* dx = dx_beta * dx + d/dx; weight and bias gradients accumulated; dy is
 * rounded in place in bf16. */
void mb_downpool_bwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int L,
                     const float *x, float *dy, float *dx, float dx_beta, float *s16, float *g16);
/* z (B*Lc, d_coarse) -> y (B*Lc*pool, d_fine); tmp (B*Lc*pool*d_fine floats)
 * holds the unshifted projection. carry (B, pool*d_fine), or NULL for
 * zeros: what the first coarse step of each sequence reads (the projection
 * of the coarse step before, when the rows continue a recurrent state); it
 * is then overwritten with each sequence's last projection. */
void mb_uppool_fwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int Lc,
                   const float *z, float *tmp, float *y, float *carry, float *s16);
/* dz = d/dz from dy (B*Lc*pool, d_fine); tmp as in forward. */
void mb_uppool_bwd(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B, int Lc,
                   const float *z, const float *dy, float *tmp, float *dz, float *s16);

/* ---- step mode: j is the fine step within the coarse step, 0..pool-1 ---- */
/* buf (B, pool*d_fine) slice j <- x (B, d_fine) */
void mb_downpool_step_push(mb_ctx *ctx, const mb_pool *p, int B, int j, const float *x,
                           float *buf);
/* y (B, d_coarse) = the DownPool of the full buffer (in bf16 precision
 * rounded in place first, as the forward's copy of its input) */
void mb_downpool_step_emit(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B,
                           float *buf, float *y);
/* y (B, d_fine) <- buf slice j */
void mb_uppool_step_read(mb_ctx *ctx, const mb_pool *p, int B, int j, const float *buf, float *y);
/* buf (B, pool*d_fine) = up-projection of the completed coarse row z (B,
 * d_coarse); s16 (B * d_coarse floats) as the forward's */
void mb_uppool_step_load(mb_ctx *ctx, const mb_pool *p, const mb_params *ps, int B,
                         const float *z, float *buf, float *s16);

#endif
