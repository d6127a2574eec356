/* The bias broadcast and column sums (dbias) of the linear layer on the GPU;
 * the layer itself (ops/linear.c) is GEMMs through the dispatcher. */
#include "core/cuda_util.h"
#include "ops/ops.h"

static __global__ void bias_add_kernel(int M, int N, const float *bias, float *y, int ldy)
{
    MB_FOR_ROWS(i, M) {
        float *r = y + (int64_t)i * ldy;
        MB_FOR_COLS(j, N)
            r[j] += bias[j];
    }
}

extern "C" void mb_bias_add_cuda(mb_ctx *ctx, int M, int N, const float *bias, float *y, int ldy)
{
    if (M <= 0 || N <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    bias_add_kernel<<<mb_cuda_grid2d(M, N), dim3(MB_TILE_X, MB_TILE_Y), 0, st->stream>>>(
        M, N, bias, y, ldy);
    MB_LAUNCH_CHECK(ctx, "bias_add_kernel");
}

/* out[j] += sum_i x[i, j]: the two-pass column reduction (double partials,
 * fixed order), like the CPU's double accumulators. */
namespace { /* internal linkage: kernels instantiated on it stay in this file */
struct colsum_f {
    int nq;
    const float *x;
    int ldx;
    float *out;
    __device__ void load(int64_t r, int c, double *acc) const { acc[0] += x[r * ldx + c]; }
    __device__ void store(int, int c, double s) const { out[c] = (float)(out[c] + s); }
};
} // namespace

extern "C" void mb_colsum_acc_cuda(mb_ctx *ctx, int M, int N, const float *x, int ldx, float *out)
{
    if (M <= 0 || N <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    colsum_f f = {1, x, ldx, out};
    mb_colred_run<1>(ctx, st, f, M, N);
}
