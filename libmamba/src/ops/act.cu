/* Elementwise activations and vector reductions on the GPU; the same maths
 * as ops/act.c.
 *
 * Reductions whose result goes to the host (sumsq, count_nonfinite): a
 * fixed-size grid (a function of n only) writes one partial per block into
 * the device scratch, computed in double (or integers) with a fixed tree;
 * the partials are copied to pinned host memory and added there in block
 * order. The result is reproducible run to run. On a device failure (the
 * context is marked) sumsq returns NaN and count_nonfinite returns n, so a
 * caller that looks only at the value still sees something wrong. */
#include <math.h>

#include "core/cuda_util.h"
#include "ops/ops.h"

/* GELU, exact (erf) form as torch.nn.GELU() */
#define MB_INV_SQRT2 0.70710678118654752f
#define MB_INV_SQRT_2PI 0.39894228040143268f

template <int ACT> static __device__ __forceinline__ float act_fwd(float x)
{
    if (ACT == MB_ACT_SILU) return mb_silu_dev(x);
    if (ACT == MB_ACT_SOFTPLUS) return mb_softplus_dev(x);
    if (ACT == MB_ACT_GELU) return 0.5f * x * (1.0f + erff(x * MB_INV_SQRT2));
    return -expf(x); /* MB_ACT_NEGEXP */
}

template <int ACT> static __device__ __forceinline__ float act_bwd(float x, float dy)
{
    if (ACT == MB_ACT_SILU) return mb_silu_bwd_dev(x, dy);
    if (ACT == MB_ACT_SOFTPLUS) return x > MB_SOFTPLUS_THRESHOLD ? dy : dy * mb_sigmoid_dev(x);
    if (ACT == MB_ACT_GELU) {
        const float cdf = 0.5f * (1.0f + erff(x * MB_INV_SQRT2));
        const float pdf = expf(-0.5f * x * x) * MB_INV_SQRT_2PI;
        return dy * (cdf + x * pdf);
    }
    return dy * -expf(x); /* MB_ACT_NEGEXP */
}

/* Each element is read and written by one thread, so y may alias x (and dx
 * may alias dy) with the same stride. */
template <int ACT>
static __global__ void act_fwd_kernel(int M, int N, const float *x, int ldx, float *y, int ldy)
{
    MB_FOR_ROWS(i, M) {
        const float *xr = x + (int64_t)i * ldx;
        float *yr = y + (int64_t)i * ldy;
        MB_FOR_COLS(j, N)
            yr[j] = act_fwd<ACT>(xr[j]);
    }
}

template <int ACT>
static __global__ void act_bwd_kernel(int M, int N, const float *x, int ldx, const float *dy,
                                      int lddy, float *dx, int lddx)
{
    MB_FOR_ROWS(i, M) {
        const float *xr = x + (int64_t)i * ldx, *dyr = dy + (int64_t)i * lddy;
        float *dxr = dx + (int64_t)i * lddx;
        MB_FOR_COLS(j, N)
            dxr[j] = act_bwd<ACT>(xr[j], dyr[j]);
    }
}

extern "C" void mb_act_fwd_cuda(MB_OPS_ACT_FWD_ARGS)
{
    if (M <= 0 || N <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const dim3 grid = mb_cuda_grid2d(M, N), blk(MB_TILE_X, MB_TILE_Y);
    switch (act) {
    case MB_ACT_SILU:
        act_fwd_kernel<MB_ACT_SILU><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, y, ldy);
        break;
    case MB_ACT_SOFTPLUS:
        act_fwd_kernel<MB_ACT_SOFTPLUS><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, y, ldy);
        break;
    case MB_ACT_NEGEXP:
        act_fwd_kernel<MB_ACT_NEGEXP><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, y, ldy);
        break;
    case MB_ACT_GELU:
        act_fwd_kernel<MB_ACT_GELU><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, y, ldy);
        break;
    default:
        mb_cuda_fail(ctx, "mb_act_fwd", "unknown activation", __FILE__, __LINE__);
        return;
    }
    MB_LAUNCH_CHECK(ctx, "act_fwd_kernel");
}

extern "C" void mb_act_bwd_cuda(MB_OPS_ACT_BWD_ARGS)
{
    if (M <= 0 || N <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const dim3 grid = mb_cuda_grid2d(M, N), blk(MB_TILE_X, MB_TILE_Y);
    switch (act) {
    case MB_ACT_SILU:
        act_bwd_kernel<MB_ACT_SILU><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, dy, lddy, dx,
                                                                   lddx);
        break;
    case MB_ACT_SOFTPLUS:
        act_bwd_kernel<MB_ACT_SOFTPLUS><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, dy, lddy,
                                                                       dx, lddx);
        break;
    case MB_ACT_NEGEXP:
        act_bwd_kernel<MB_ACT_NEGEXP><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, dy, lddy, dx,
                                                                     lddx);
        break;
    case MB_ACT_GELU:
        act_bwd_kernel<MB_ACT_GELU><<<grid, blk, 0, st->stream>>>(M, N, x, ldx, dy, lddy, dx,
                                                                   lddx);
        break;
    default:
        mb_cuda_fail(ctx, "mb_act_bwd", "unknown activation", __FILE__, __LINE__);
        return;
    }
    MB_LAUNCH_CHECK(ctx, "act_bwd_kernel");
}

/* ---- y = a x + b y ----------------------------------------------------------- */

static __global__ void axpby_kernel(size_t n, float a, const float *x, float b, float *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        y[i] = b == 0.0f ? a * x[i] : a * x[i] + b * y[i]; /* b 0 overwrites, as BLAS */
}

extern "C" void mb_axpby_cuda(mb_ctx *ctx, size_t n, float a, const float *x, float b, float *y)
{
    if (!n) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    axpby_kernel<<<mb_cuda_blocks((int64_t)n, 256, MB_CUDA_MAX_BLOCKS), 256, 0, st->stream>>>(
        n, a, x, b, y);
    MB_LAUNCH_CHECK(ctx, "axpby_kernel");
}

/* ---- y = bf16(x) --------------------------------------------------------------- */

static __global__ void to_bf16_kernel(size_t n, const float *x, uint16_t *y)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = mb_bf16_round(x[i]);
}

extern "C" void mb_to_bf16_cuda(mb_ctx *ctx, size_t n, const float *x, uint16_t *y)
{
    if (!n) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    to_bf16_kernel<<<mb_cuda_blocks((int64_t)n, 256, MB_CUDA_MAX_BLOCKS), 256, 0, st->stream>>>(n, x, y);
    MB_LAUNCH_CHECK(ctx, "to_bf16_kernel");
}

static __global__ void bf16_round_copy_kernel(int64_t n, int cols, const float *x, int ldx, float *y, int ldy)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / cols, c = i % cols;
        y[r * ldy + c] = mb_bf16_keep(x[r * ldx + c]);
    }
}

extern "C" void mb_bf16_round_copy_cuda(mb_ctx *ctx, int rows, int cols, const float *x, int ldx, float *y, int ldy)
{
    const int64_t n = (int64_t)rows * cols;
    if (n <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    bf16_round_copy_kernel<<<mb_cuda_blocks(n, 256, MB_CUDA_MAX_BLOCKS), 256, 0, st->stream>>>(n, cols, x, ldx, y,
                                                                                               ldy);
    MB_LAUNCH_CHECK(ctx, "bf16_round_copy_kernel");
}

/* ---- reductions to the host ---------------------------------------------------- */

enum { MB_RED_THREADS = 256, MB_RED_BLOCKS = 1024 };

/* Blocks for n elements: at most MB_RED_BLOCKS, at least 4096 elements per
 * block so short inputs do not pay for idle blocks. Depends on n only. */
static unsigned red_blocks(size_t n)
{
    size_t b = (n + 4095) / 4096;
    if (b < 1) b = 1;
    return b > MB_RED_BLOCKS ? (unsigned)MB_RED_BLOCKS : (unsigned)b;
}

static __global__ void sumsq_kernel(size_t n, const float *x, double *part)
{
    __shared__ double sh[32];
    double s = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const double v = x[i];
        s += v * v;
    }
    s = mb_block_sum(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

static __device__ __forceinline__ unsigned long long is_nonfinite(float v)
{
    /* exponent bits all set: Inf or NaN (a bit test, immune to fast math) */
    return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u ? 1ull : 0ull;
}

static __global__ void nonfinite_kernel(size_t n, const float *x, unsigned long long *part)
{
    __shared__ unsigned long long sh[32];
    unsigned long long k = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        k += is_nonfinite(x[i]);
    k = mb_block_sum(k, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = k;
}

/* Partials (nb x 8 bytes) from the scratch to the pinned host scratch, then
 * wait for them. */
static int fetch_partials(mb_ctx *ctx, mb_cuda_state *st, unsigned nb)
{
    if (MB_CUDA_OK(ctx, cudaMemcpyAsync(st->host, st->scratch, (size_t)nb * 8,
                                        cudaMemcpyDeviceToHost, st->stream)))
        return -1;
    return MB_CUDA_OK(ctx, cudaStreamSynchronize(st->stream));
}

extern "C" double mb_sumsq_cuda(mb_ctx *ctx, size_t n, const float *x)
{
    if (!n) return 0.0;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return NAN;
    const unsigned nb = red_blocks(n);
    sumsq_kernel<<<nb, MB_RED_THREADS, 0, st->stream>>>(n, x, (double *)st->scratch);
    MB_LAUNCH_CHECK_RET(ctx, "sumsq_kernel", NAN);
    if (fetch_partials(ctx, st, nb)) return NAN;
    const double *part = (const double *)st->host;
    double s = 0.0;
    for (unsigned b = 0; b < nb; b++) s += part[b];
    return s;
}

extern "C" size_t mb_count_nonfinite_cuda(mb_ctx *ctx, size_t n, const float *x)
{
    if (!n) return 0;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return n;
    const unsigned nb = red_blocks(n);
    nonfinite_kernel<<<nb, MB_RED_THREADS, 0, st->stream>>>(n, x,
                                                            (unsigned long long *)st->scratch);
    MB_LAUNCH_CHECK_RET(ctx, "nonfinite_kernel", n);
    if (fetch_partials(ctx, st, nb)) return n;
    const unsigned long long *part = (const unsigned long long *)st->host;
    unsigned long long k = 0;
    for (unsigned b = 0; b < nb; b++) k += part[b];
    return (size_t)k;
}
