/* Linear layer as composites of the dispatched ops, so it runs on any
 * device; only the bias broadcast is a kernel of its own (mb_bias_add). */
#include "ops/ops.h"

void mb_linear_bf16_fwd_cpu(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const uint16_t *Wb,
                            float *y, int ldy)
{
    (void)ctx;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < out; n++) {
            float s = 0.f;
            for (int k = 0; k < in; k++) s += x[(size_t)m * ldx + k] * mb_bf16_float(Wb[(size_t)n * in + k]);
            y[(size_t)m * ldy + n] = s;
        }
}

#define MB_BIAS_PAR_MIN (1 << 15)

/* y = beta y + x @ W^T + bias; beta 0: y may start as garbage */
static void linear_fwd_beta(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const float *W,
                            const float *bias, float *y, int ldy, float beta)
{
    mb_gemm(ctx, 0, 1, M, out, in, 1.0f, x, ldx, W, in, beta, y, ldy);
    if (bias) mb_bias_add(ctx, M, out, bias, y, ldy);
}

void mb_linear_fwd_ops(MB_OPS_LINEAR_FWD_ARGS) { linear_fwd_beta(ctx, M, in, out, x, ldx, W, bias, y, ldy, 0.f); }

void mb_linear_fwd_acc(MB_OPS_LINEAR_FWD_ARGS) { linear_fwd_beta(ctx, M, in, out, x, ldx, W, bias, y, ldy, 1.f); }

void mb_linear_bwd(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const float *W,
                   const float *dy, int lddy, float *dx, int lddx, float dx_beta, float *dW,
                   float *dbias)
{
    /* dW (out, in) += dy^T (out, M) @ x (M, in), before dx: dx may then
     * overwrite x (the LM puts the gradient of its final norm's output in
     * place of that output) */
    if (dW) mb_gemm(ctx, 1, 0, out, in, M, 1.0f, dy, lddy, x, ldx, 1.0f, dW, in);
    if (dbias) mb_colsum_acc(ctx, M, out, dy, lddy, dbias);
    if (dx) mb_gemm(ctx, 0, 0, M, in, out, 1.0f, dy, lddy, W, in, dx_beta, dx, lddx);
}

void mb_bias_add_cpu(mb_ctx *ctx, int M, int N, const float *bias, float *y, int ldy)
{
    double work = (double)M * N;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_BIAS_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++) {
        float *r = y + (size_t)i * ldy;
        for (int j = 0; j < N; j++) r[j] += bias[j];
    }
}
