/* RMSNorm and LayerNorm over the last axis of contiguous (M, C) rows on the
 * GPU; the same maths as ops/norm.c.
 *
 * Rows: one warp per row (8 rows per 256-thread block, grid stride), lanes
 * striding the columns, so a row needs no shared memory and no block
 * barrier. Row sums are accumulated in double per lane and combined by a
 * shuffle tree (cheap: the kernels are bound by memory), the elementwise
 * parts run in float. The mean is applied as a float pair (hi + lo) so
 * x - mean keeps the double mean's precision when |mean| >> std.
 *
 * dw and db are sums over rows: the two-pass column reduction of
 * core/cuda_util.h (double partials in the context's scratch, fixed order).
 * It runs before the dx kernel, so dx may overwrite dy (or x) in place; in
 * the dx kernel each element is read and then written by the same lane. */
#include <math.h>

#include "core/cuda_util.h"
#include "ops/ops.h"

enum { NORM_THREADS = 256, NORM_WARPS = NORM_THREADS / 32 };

static unsigned norm_blocks(int M) { return mb_cuda_blocks(M, NORM_WARPS, 1u << 16); }

/* x - mean with the mean as hi + lo (two floats). */
static __device__ __forceinline__ float centered(float x, float mu_hi, float mu_lo)
{
    return (x - mu_hi) - mu_lo;
}

/* Each lane's loads in batches of NORM_U (one row segment of 32 x NORM_U
 * floats), issued before any is used: a row of a few hundred columns is then
 * a few round trips to memory instead of C / 32 (at 64 rows of 768 the
 * one-at-a-time loads made this kernel 11.5 us). A lane still adds its
 * values in column order, so the sums are the same bits. */
enum { NORM_U = 4 };

/* yr[j] = f(j) over a lane's columns of a row (lane, lane + 32, ...), in
 * batches of NORM_U: every value of a batch is computed, its loads issued,
 * before any is stored, so yr may alias what f reads (each element is read
 * before it is written, by its own lane) */
template <typename F> static __device__ __forceinline__ void norm_row_put(int C, int lane, float *yr, F f)
{
    for (int j0 = lane; j0 < C; j0 += 32 * NORM_U) {
        float v[NORM_U];
#pragma unroll
        for (int u = 0; u < NORM_U; u++)
            if (j0 + 32 * u < C) v[u] = f(j0 + 32 * u);
#pragma unroll
        for (int u = 0; u < NORM_U; u++)
            if (j0 + 32 * u < C) yr[j0 + 32 * u] = v[u];
    }
}

/* A row's statistics, by a group of threads (a warp, or a block) that
 * each take the columns first, first + step, ...: the mean (LayerNorm: mu,
 * and as hi + lo) and r = 1 / sqrt(mean square + eps). Each thread adds its
 * values in column order, then sum() adds over the group. */
template <bool LN, typename SUM>
static __device__ __forceinline__ float norm_row_stats(int C, const float *xr, float eps, int first, int step,
                                                       SUM sum, double *mu, float *mu_hi, float *mu_lo)
{
    *mu = 0.0;
    *mu_hi = *mu_lo = 0.0f;
    if (LN) {
        double s = 0.0;
#pragma unroll NORM_U
        for (int j = first; j < C; j += step) s += xr[j];
        *mu = sum(s) / C;
        *mu_hi = (float)*mu;
        *mu_lo = (float)(*mu - (double)*mu_hi);
    }
    /* two passes for LayerNorm: E[x^2] - mu^2 would cancel */
    double ss = 0.0;
#pragma unroll NORM_U
    for (int j = first; j < C; j += step) {
        const double d = LN ? (double)centered(xr[j], *mu_hi, *mu_lo) : (double)xr[j];
        ss += d * d;
    }
    ss = sum(ss);
    return (float)(1.0 / sqrt(ss / C + (double)eps));
}

template <bool LN>
static __global__ void norm_fwd_kernel(int M, int C, const float *x, const float *w,
                                       const float *b, float eps, float *y, float *mean,
                                       float *rstd, int r16)
{
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (int64_t row = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); row < M;
         row += (int64_t)gridDim.x * wpb) {
        const float *xr = x + row * C;
        float *yr = y + row * C;
        double mu;
        float mu_hi, mu_lo;
        const float r = norm_row_stats<LN>(C, xr, eps, lane, 32, [](double v) { return mb_warp_sum(v); }, &mu,
                                           &mu_hi, &mu_lo);
        /* y may be x */
        norm_row_put(C, lane, yr, [&](int j) {
            float v = (LN ? centered(xr[j], mu_hi, mu_lo) : xr[j]) * r;
            if (w) v *= w[j];
            if (LN && b) v += b[j];
            return mb_bf16_keep_if(r16, v);
        });
        if (lane == 0) {
            rstd[row] = r;
            if (LN) mean[row] = (float)mu;
        }
    }
}

/* Few rows (generation's steps): a block a row, so that a row's loads are
 * spread over 256 threads and the rows over as many SMs; at 64 rows of 768
 * the warp-per-row kernel ran on 8 SMs, 7 us. The sums are in another order
 * than the warp kernel's (thread, then warp, then block), still double. */
template <bool LN>
static __global__ void __launch_bounds__(NORM_THREADS)
norm_fwd_row_kernel(int M, int C, const float *x, const float *w, const float *b, float eps, float *y,
                    float *mean, float *rstd, int r16)
{
    __shared__ double sh[32];
    for (int64_t row = blockIdx.x; row < M; row += gridDim.x) {
        const float *xr = x + row * C;
        float *yr = y + row * C;
        double mu;
        float mu_hi, mu_lo;
        const float r = norm_row_stats<LN>(C, xr, eps, threadIdx.x, NORM_THREADS,
                                           [&](double v) { return mb_block_sum(v, sh); }, &mu, &mu_hi, &mu_lo);
        /* y may be x: each element is read before it is written, by its thread */
        for (int j = threadIdx.x; j < C; j += NORM_THREADS) {
            float v = (LN ? centered(xr[j], mu_hi, mu_lo) : xr[j]) * r;
            if (w) v *= w[j];
            if (LN && b) v += b[j];
            yr[j] = mb_bf16_keep_if(r16, v);
        }
        if (threadIdx.x == 0) {
            rstd[row] = r;
            if (LN) mean[row] = (float)mu;
        }
    }
}

/* the block-per-row kernel while the warp-per-row one would leave SMs idle */
static bool norm_few_rows(const mb_cuda_state *st, int M) { return M <= 2 * (st->sm_count > 0 ? st->sm_count : 132); }

/* RMS (LN false): with xh = x r and g = dy w, dx = r (g - xh mean(g xh)).
 * LN: xh = (x - mean) r, dx = r (g - mean(g) - xh mean(g xh)). */
template <bool LN>
static __global__ void norm_dx_kernel(int M, int C, const float *x, const float *w,
                                      const float *mean, const float *rstd, const float *dy,
                                      float *dx, float beta)
{
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (int64_t row = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); row < M;
         row += (int64_t)gridDim.x * wpb) {
        const float *xr = x + row * C, *dyr = dy + row * C;
        float *dxr = dx + row * C;
        const float r = rstd[row];
        const float mu_hi = LN ? mean[row] : 0.0f;
        double sg = 0.0, sgx = 0.0;
#pragma unroll NORM_U
        for (int j = lane; j < C; j += 32) {
            const float g = w ? dyr[j] * w[j] : dyr[j];
            const float xh = (LN ? xr[j] - mu_hi : xr[j]) * r;
            if (LN) sg += g;
            sgx += (double)g * xh;
        }
        if (LN) sg = mb_warp_sum(sg);
        sgx = mb_warp_sum(sgx);
        const float mg = (float)(sg / C), mgx = (float)(sgx / C);
        /* dx may be dy or x */
        norm_row_put(C, lane, dxr, [&](int j) {
            const float g = w ? dyr[j] * w[j] : dyr[j];
            const float xh = (LN ? xr[j] - mu_hi : xr[j]) * r;
            float v = r * (g - mg - xh * mgx);
            if (beta != 0.0f) v += beta * dxr[j]; /* beta 0: dx may be garbage */
            return v;
        });
    }
}

namespace { /* internal linkage: kernels instantiated on these stay in this file */
/* q 0: dw[c] += sum_r dy xh; q 1 (LayerNorm): db[c] += sum_r dy. */
template <bool LN> struct norm_dwdb_f {
    int nq;
    int C;
    const float *x, *mean, *rstd, *dy;
    float *dw, *db;
    __device__ void load(int64_t r, int c, double *acc) const
    {
        const int64_t i = r * C + c;
        const double xc = LN ? (double)x[i] - (double)mean[r] : (double)x[i];
        acc[0] += (double)dy[i] * (xc * (double)rstd[r]);
        if (LN) acc[LN ? 1 : 0] += dy[i];
    }
    __device__ void store(int q, int c, double s) const
    {
        float *p = q == 0 ? dw : db;
        if (p) p[c] = (float)(p[c] + s);
    }
};
} // namespace

extern "C" void mb_rmsnorm_fwd_cuda(MB_OPS_RMS_FWD_ARGS)
{
    if (M <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (norm_few_rows(st, M))
        norm_fwd_row_kernel<false><<<M, NORM_THREADS, 0, st->stream>>>(M, C, x, w, NULL, eps, y, NULL, rstd, r16);
    else
        norm_fwd_kernel<false><<<norm_blocks(M), NORM_THREADS, 0, st->stream>>>(M, C, x, w, NULL, eps, y, NULL,
                                                                               rstd, r16);
    MB_LAUNCH_CHECK(ctx, "rmsnorm_fwd_kernel");
}

extern "C" void mb_layernorm_fwd_cuda(MB_OPS_LN_FWD_ARGS)
{
    if (M <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (norm_few_rows(st, M))
        norm_fwd_row_kernel<true><<<M, NORM_THREADS, 0, st->stream>>>(M, C, x, w, b, eps, y, mean, rstd, r16);
    else
        norm_fwd_kernel<true><<<norm_blocks(M), NORM_THREADS, 0, st->stream>>>(M, C, x, w, b, eps, y, mean,
                                                                               rstd, r16);
    MB_LAUNCH_CHECK(ctx, "layernorm_fwd_kernel");
}

extern "C" void mb_rmsnorm_bwd_cuda(MB_OPS_RMS_BWD_ARGS)
{
    if (M <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (dw) { /* first: dx may overwrite dy */
        norm_dwdb_f<false> f = {1, C, x, NULL, rstd, dy, dw, NULL};
        if (mb_colred_run<1>(ctx, st, f, M, C)) return;
    }
    if (!dx) return;
    norm_dx_kernel<false><<<norm_blocks(M), NORM_THREADS, 0, st->stream>>>(
        M, C, x, w, NULL, rstd, dy, dx, dx_beta);
    MB_LAUNCH_CHECK(ctx, "rmsnorm_dx_kernel");
}

extern "C" void mb_layernorm_bwd_cuda(MB_OPS_LN_BWD_ARGS)
{
    if (M <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (dw || db) { /* first: dx may overwrite dy */
        norm_dwdb_f<true> f = {2, C, x, mean, rstd, dy, dw, db};
        if (mb_colred_run<2>(ctx, st, f, M, C)) return;
    }
    if (!dx) return;
    norm_dx_kernel<true><<<norm_blocks(M), NORM_THREADS, 0, st->stream>>>(
        M, C, x, w, mean, rstd, dy, dx, dx_beta);
    MB_LAUNCH_CHECK(ctx, "layernorm_dx_kernel");
}
