/* Causal depthwise conv1d over (B, L, D) rows on the GPU; the same maths as
 * ops/conv1d.c. The input is the virtual sequence [prev; x]: position s < 0
 * of batch b is row s + K-1 of prev (B, K-1, D), or zero without prev.
 *
 * Elementwise kernels run 32 x 8 threads: a warp along the channels of one
 * row (coalesced), rows by grid stride; neighbouring rows re-read the same
 * inputs, which the caches serve. Sums over taps run in the CPU's order. */
#include "core/cuda_util.h"
#include "ops/ops.h"

/* y[b,t,d] = bias[d] + sum_k w[d,k] in[b, t-(K-1)+k, d] */
static __global__ void conv_fwd_kernel(int64_t rows, int L, int D, int K, const float *x,
                                       int ldx, const float *w, const float *bias,
                                       const float *prev, float *y, int ldy)
{
    MB_FOR_ROWS(row, rows) {
        const int64_t b = row / L;
        const int t = (int)(row - b * L);
        MB_FOR_COLS(d, D) {
            const float *wd = w + (int64_t)d * K;
            float acc = bias ? bias[d] : 0.0f;
            for (int k = 0; k < K; k++) {
                const int s = t - (K - 1) + k;
                float v;
                if (s >= 0)
                    v = x[(row - (K - 1) + k) * ldx + d];
                else if (prev)
                    v = prev[(b * (K - 1) + (K - 1) + s) * D + d];
                else
                    continue;
                acc += wd[k] * v;
            }
            y[row * ldy + d] = acc;
        }
    }
}

extern "C" void mb_conv1d_fwd_cuda(MB_OPS_CONV_FWD_ARGS)
{
    if (B <= 0 || L <= 0 || D <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int64_t rows = (int64_t)B * L;
    conv_fwd_kernel<<<mb_cuda_grid2d(rows, D), dim3(MB_TILE_X, MB_TILE_Y), 0, st->stream>>>(
        rows, L, D, K, x, ldx, w, bias, prev, y, ldy);
    MB_LAUNCH_CHECK(ctx, "conv_fwd_kernel");
}

/* dx[b,s,d] = sum_k w[d,k] dy[b, s+K-1-k, d] over the outputs t < L. */
static __global__ void conv_dx_kernel(int64_t rows, int L, int D, int K, const float *w,
                                      const float *dy, int lddy, float *dx, int lddx)
{
    MB_FOR_ROWS(row, rows) {
        const int64_t b = row / L;
        const int s = (int)(row - b * L);
        MB_FOR_COLS(d, D) {
            const float *wd = w + (int64_t)d * K;
            float acc = 0.0f;
            for (int k = 0; k < K; k++) {
                if (s + (K - 1) - k >= L) continue;
                acc += wd[k] * dy[(row + (K - 1) - k) * lddy + d];
            }
            dx[row * lddx + d] = acc;
        }
    }
}

/* dprev[b,r,d]: the same for the K-1 state rows (row r is position
 * r - (K-1), read by outputs t = r - k for taps k <= r). */
static __global__ void conv_dprev_kernel(int64_t prows, int L, int D, int K, const float *w,
                                         const float *dy, int lddy, float *dprev)
{
    MB_FOR_ROWS(pr, prows) {
        const int64_t b = pr / (K - 1);
        const int r = (int)(pr - b * (K - 1));
        MB_FOR_COLS(d, D) {
            const float *wd = w + (int64_t)d * K;
            float acc = 0.0f;
            for (int k = 0; k <= r; k++) {
                const int t = r - k;
                if (t >= L) continue;
                acc += wd[k] * dy[(b * L + t) * lddy + d];
            }
            dprev[pr * D + d] = acc;
        }
    }
}

/* dw[d, k0+i] += sum_{b,t} dy[b,t,d] in[b, t-(K-1)+k0+i, d] for i < nt, and
 * (q = 0) dbias[d] += sum dy[b,t,d]: one column reduction per group of up
 * to MB_CONV_TAPS taps, partials in double as the CPU's accumulators. */
#define MB_CONV_TAPS 8
namespace { /* internal linkage: kernels instantiated on it stay in this file */
struct conv_dw_f {
    int nq;     /* 1 + nt */
    int nt, k0; /* taps k0 .. k0+nt-1 */
    int L, D, K;
    const float *x;
    int ldx;
    const float *prev;
    const float *dy;
    int lddy;
    float *dw;
    float *dbias; /* NULL: not wanted, or not this group's job */
    __device__ void load(int64_t r, int c, double *acc) const
    {
        const int64_t b = r / L;
        const int t = (int)(r - b * L);
        const float g = dy[r * lddy + c];
        acc[0] += g;
#pragma unroll
        for (int i = 0; i < MB_CONV_TAPS; i++) {
            if (i < nt) {
                const int s = t - (K - 1) + k0 + i;
                float v = 0.0f;
                if (s >= 0)
                    v = x[(r - (K - 1) + k0 + i) * ldx + c];
                else if (prev)
                    v = prev[(b * (K - 1) + (K - 1) + s) * D + c];
                acc[1 + i] += (double)g * v;
            }
        }
    }
    __device__ void store(int q, int c, double s) const
    {
        if (q == 0) {
            if (dbias) dbias[c] = (float)(dbias[c] + s);
        } else {
            float *p = dw + (int64_t)c * K + k0 + (q - 1);
            *p = (float)(*p + s);
        }
    }
};
} // namespace

extern "C" void mb_conv1d_bwd_cuda(MB_OPS_CONV_BWD_ARGS)
{
    if (B <= 0 || D <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int64_t rows = (int64_t)B * (L > 0 ? L : 0);
    const dim3 blk(MB_TILE_X, MB_TILE_Y);
    if (rows > 0) {
        conv_dx_kernel<<<mb_cuda_grid2d(rows, D), blk, 0, st->stream>>>(rows, L, D, K, w, dy,
                                                                         lddy, dx, lddx);
        MB_LAUNCH_CHECK(ctx, "conv_dx_kernel");
    }
    if (dprev && K > 1) {
        const int64_t prows = (int64_t)B * (K - 1);
        conv_dprev_kernel<<<mb_cuda_grid2d(prows, D), blk, 0, st->stream>>>(prows, L, D, K, w,
                                                                            dy, lddy, dprev);
        MB_LAUNCH_CHECK(ctx, "conv_dprev_kernel");
    }
    if (rows <= 0) return; /* dw and dbias gain nothing */
    for (int k0 = 0; k0 < K; k0 += MB_CONV_TAPS) {
        conv_dw_f f;
        f.nt = K - k0 < MB_CONV_TAPS ? K - k0 : MB_CONV_TAPS;
        f.nq = 1 + f.nt;
        f.k0 = k0;
        f.L = L;
        f.D = D;
        f.K = K;
        f.x = x;
        f.ldx = ldx;
        f.prev = prev;
        f.dy = dy;
        f.lddy = lddy;
        f.dw = dw;
        f.dbias = k0 == 0 ? dbias : NULL;
        if (mb_colred_run<1 + MB_CONV_TAPS>(ctx, st, f, rows, D)) return;
    }
}

/* prev <- the last K-1 rows of [prev; x]. One thread per (b, d) walks the
 * rows upwards: when row r comes from the old state it is row r + L > r,
 * which this thread has not overwritten yet (the CPU's argument). */
static __global__ void conv_state_kernel(int64_t n, int L, int D, int K, const float *x, int ldx,
                                         float *prev)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / D;
        const int d = (int)(i - b * D);
        float *sp = prev + b * (K - 1) * D + d;
        for (int r = 0; r < K - 1; r++) {
            const int s = L - (K - 1) + r;
            const float v = s >= 0 ? x[(b * L + s) * ldx + d] : sp[(int64_t)(r + L) * D];
            sp[(int64_t)r * D] = v;
        }
    }
}

extern "C" void mb_conv1d_state_update_cuda(MB_OPS_CONV_STATE_ARGS)
{
    if (K <= 1 || B <= 0 || L <= 0 || D <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int64_t n = (int64_t)B * D;
    conv_state_kernel<<<mb_cuda_blocks(n, 256, MB_CUDA_MAX_BLOCKS), 256, 0, st->stream>>>(
        n, L, D, K, x, ldx, prev);
    MB_LAUNCH_CHECK(ctx, "conv_state_kernel");
}
