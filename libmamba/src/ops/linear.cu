/* The bias broadcast and column sums (dbias) of the linear layer on the GPU,
 * and the layer itself for a few rows; otherwise the layer (ops/linear.c)
 * is GEMMs through the dispatcher. */
#include "core/cuda_util.h"
#include "ops/fused.cuh"
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

/* y = x W^T + bias for M <= MR rows: a warp per output column, its lanes
 * along in (W's row read once, coalesced; x's few rows are the same for
 * every warp, so they come from L1), MR accumulators a lane. V: float4
 * loads (in, ldx and the pointers allow them). The step's projections are
 * a few microseconds of work; what matters is one launch with no split-K
 * pass, and the programmatic launch that overlaps it with the kernel
 * before. */
template <int MR, bool V>
static __global__ void __launch_bounds__(256)
linear_few_kernel(int M, int in, int out, const float *__restrict__ x, int ldx, const float *__restrict__ W,
                  const float *__restrict__ bias, float *__restrict__ y, int ldy)
{
    mb_pdl_wait();
    const int n = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (n >= out) return; /* whole warps */
    float acc[MR];
    mb_gemv_warp<MR, V>(M, in, x, ldx, W + (size_t)n * in, acc);
    const float bn = bias ? bias[n] : 0.f;
#pragma unroll
    for (int m = 0; m < MR; m++) {
        if (lane == m % 32 && m < M) y[(size_t)m * ldy + n] = acc[m] + bn;
    }
}

template <int MR>
static cudaError_t linear_few_launch(const mb_cuda_state *st, bool vec, int M, int in, int out, const float *x,
                                     int ldx, const float *W, const float *bias, float *y, int ldy)
{
    const int threads = 256, blocks = (int)(((int64_t)out * 32 + threads - 1) / threads);
    if (vec)
        return mb_cuda_launch(st, linear_few_kernel<MR, true>, dim3(blocks), dim3(threads), 0, M, in, out, x, ldx,
                              W, bias, y, ldy);
    return mb_cuda_launch(st, linear_few_kernel<MR, false>, dim3(blocks), dim3(threads), 0, M, in, out, x, ldx, W,
                          bias, y, ldy);
}

/* the same with W as bf16 (no bias: the LM head) */
template <int MR, bool V>
static __global__ void __launch_bounds__(256)
linear_bf16_kernel(int M, int in, int out, const float *__restrict__ x, int ldx, const uint16_t *__restrict__ W,
                   float *__restrict__ y, int ldy)
{
    mb_pdl_wait();
    const int n = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (n >= out) return; /* whole warps */
    float acc[MR];
    mb_gemv_warp<MR, V>(M, in, x, ldx, W + (size_t)n * in, acc);
#pragma unroll
    for (int m = 0; m < MR; m++)
        if (lane == m % 32 && m < M) y[(size_t)m * ldy + n] = acc[m];
}

template <int MR>
static cudaError_t linear_bf16_launch(const mb_cuda_state *st, bool vec, int M, int in, int out, const float *x,
                                      int ldx, const uint16_t *W, float *y, int ldy)
{
    const int threads = 256, blocks = (int)(((int64_t)out * 32 + threads - 1) / threads);
    if (vec)
        return mb_cuda_launch(st, linear_bf16_kernel<MR, true>, dim3(blocks), dim3(threads), 0, M, in, out, x, ldx,
                              W, y, ldy);
    return mb_cuda_launch(st, linear_bf16_kernel<MR, false>, dim3(blocks), dim3(threads), 0, M, in, out, x, ldx, W,
                          y, ldy);
}

extern "C" void mb_linear_bf16_fwd_cuda(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx,
                                        const uint16_t *Wb, float *y, int ldy)
{
    if (M <= 0 || out <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (M > MB_LINEAR_FEW_ROWS) {
        mb_cuda_fail(ctx, "linear_bf16", "more rows than the bf16 head takes", __FILE__, __LINE__);
        return;
    }
    /* 8 bf16 a load: in, ldx and the pointers allow them */
    const bool vec = in % 8 == 0 && ldx % 4 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0 &&
                     (reinterpret_cast<uintptr_t>(Wb) & 15) == 0;
    cudaError_t err;
    if (M == 1) err = linear_bf16_launch<1>(st, vec, M, in, out, x, ldx, Wb, y, ldy);
    else if (M <= 4) err = linear_bf16_launch<4>(st, vec, M, in, out, x, ldx, Wb, y, ldy);
    else err = linear_bf16_launch<16>(st, vec, M, in, out, x, ldx, Wb, y, ldy);
    MB_CUDA_CHECK(ctx, err);
    MB_LAUNCH_CHECK(ctx, "linear_bf16_kernel");
}

extern "C" void mb_linear_few_fwd_cuda(MB_OPS_LINEAR_FWD_ARGS)
{
    if (M <= 0 || out <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const bool vec = in % 4 == 0 && ldx % 4 == 0 && (reinterpret_cast<uintptr_t>(x) & 15) == 0 &&
                     (reinterpret_cast<uintptr_t>(W) & 15) == 0;
    cudaError_t err;
    if (M == 1) err = linear_few_launch<1>(st, vec, M, in, out, x, ldx, W, bias, y, ldy);
    else if (M <= 2) err = linear_few_launch<2>(st, vec, M, in, out, x, ldx, W, bias, y, ldy);
    else if (M <= 4) err = linear_few_launch<4>(st, vec, M, in, out, x, ldx, W, bias, y, ldy);
    else if (M <= 8) err = linear_few_launch<8>(st, vec, M, in, out, x, ldx, W, bias, y, ldy);
    else err = linear_few_launch<16>(st, vec, M, in, out, x, ldx, W, bias, y, ldy);
    MB_CUDA_CHECK(ctx, err);
    MB_LAUNCH_CHECK(ctx, "linear_few_kernel");
}
