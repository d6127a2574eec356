/* Causal depthwise conv1d over (B, L, D) rows on the GPU, with the mixer's
 * SiLU fused in (silu); the same maths as ops/conv1d.c. The input is the
 * virtual sequence [prev; x]: position s < 0 of batch b is row s + K-1 of
 * prev (B, K-1, D), or zero without prev.
 *
 * The common K = 4 takes the "run" kernels: a thread owns one channel and a
 * run of CONV_RUN rows of one sequence, loads the run's inputs (and the
 * K-1 before it) into registers at once, many independent loads in flight,
 * and slides the K taps over them. A warp is 32 neighbouring channels, so
 * every load is a coalesced row segment. The first kernels, a thread per
 * element with the 64-bit row division in each, ran at 4-7x the bytes they
 * move (profiled in the DNA step: conv, SiLU and their gradients were 31%
 * of it at L = 2^17). The backward recomputes the conv's output (SiLU's
 * input) from x, so that output is never stored, and reduces dw and dbias
 * per block in double before a fixed-order pass over the blocks: the same
 * sums run to run. Any other K takes the per-element kernels, which do the
 * same maths with K-fold recomputation. Sums over taps run in the CPU's
 * order. */
#include "core/cuda_util.h"
#include "ops/ops.h"

#define CONV_RUN 16    /* rows a thread owns in the forward's run kernel */
#define CONV_RUN_BWD 8 /* and in the backward's: at 16 its register windows
                        * took 115 registers, 25% occupancy, 20% of DRAM
                        * bandwidth (Nsight Compute, DNA step at 2^17) */

namespace { /* internal linkage: kernels instantiated on it stay in this file */

/* one conv's operands, passed by value to every kernel */
struct conv_io {
    int L, D, K;
    const float *x;
    int ldx;
    const float *w, *bias, *prev;
    const float *dy;
    int lddy;
    const float *dnext; /* (B, K-1, D): the next chunk's share of the last K-1 rows' dx */
    int r16;            /* bf16 precision: x, prev and dy read, y and dx stored, as bf16 values */
};

/* an input as bf16 precision reads it: the nearest bf16 value. The mixer
 * leaves x (in_proj's output) and dy (x_proj's input gradient) as their
 * products wrote them (mb_bf16_round_rows_conv_scan): rounded here, where
 * they are loaded anyway, a pass over memory fewer each */
/* (written out, not mb_bf16_keep_if: through it nvcc 13 emits other PTX
 * for the dw kernel, conv_dw_f, which no GPU has timed) */
__device__ __forceinline__ float conv_rd(const conv_io &io, float v) { return io.r16 ? mb_bf16_keep(v) : v; }

/* dx at (b, s) as stored: plus the next chunk's share in the last K-1
 * rows, then rounded in bf16 precision */
__device__ __forceinline__ float conv_dx_final(const conv_io &io, int64_t b, int s, int d, float a)
{
    const int r = s - (io.L - (io.K - 1));
    if (io.dnext && r >= 0) a += io.dnext[(b * (io.K - 1) + r) * io.D + d];
    return mb_bf16_keep_if(io.r16, a);
}

/* [prev; x] at position s of batch b (zero past either end), as stored */
__device__ __forceinline__ float conv_in_raw(const conv_io &io, int64_t b, int s, int d)
{
    if (s >= io.L) return 0.0f;
    if (s >= 0) return io.x[(b * io.L + s) * io.ldx + d];
    if (!io.prev || s < -(io.K - 1)) return 0.0f;
    return io.prev[(b * (io.K - 1) + (io.K - 1) + s) * io.D + d];
}
/* and as the conv reads it (conv_rd) */
__device__ __forceinline__ float conv_in_at(const conv_io &io, int64_t b, int s, int d)
{
    return conv_rd(io, conv_in_raw(io, b, s, d));
}

/* the conv's output at (b, t), channel d */
__device__ __forceinline__ float conv_out_at(const conv_io &io, int64_t b, int t, int d)
{
    const float *wd = io.w + (int64_t)d * io.K;
    float acc = io.bias ? io.bias[d] : 0.0f;
    for (int k = 0; k < io.K; k++) acc += wd[k] * conv_in_at(io, b, t - (io.K - 1) + k, d);
    return acc;
}

/* the gradient reaching the conv's output at (b, t < L): dy, through the
 * SiLU when fused */
template <bool SILU> __device__ __forceinline__ float conv_g_at(const conv_io &io, int64_t b, int t, int d)
{
    const float g = conv_rd(io, io.dy[(b * io.L + t) * io.lddy + d]);
    return SILU ? mb_silu_bwd_dev(conv_out_at(io, b, t, d), g) : g;
}

/* ---- K = 4: runs of rows per thread ---------------------------------------- */

/* R16: io.r16 at compile time. A run's inputs are loaded as stored, all
 * of them, and rounded after: rounded as each was loaded (conv_in_at),
 * the bf16 forward took 1.8x the fp32 one's time and the backward 1.5x,
 * and the DNA step in bf16 was 5% slower (H100, session 42) */
template <bool SILU, bool R16>
__global__ void __launch_bounds__(MB_TILE_X *MB_TILE_Y)
conv_fwd_run4(conv_io io, float *y, int ldy, int64_t nruns, int rps)
{
    constexpr int KT = 4, R = CONV_RUN;
    const int d = blockIdx.x * MB_TILE_X + threadIdx.x;
    if (d >= io.D) return;
    float wk[KT];
#pragma unroll
    for (int k = 0; k < KT; k++) wk[k] = io.w[(int64_t)d * KT + k];
    const float bb = io.bias ? io.bias[d] : 0.0f;
    for (int64_t run = (int64_t)blockIdx.y * MB_TILE_Y + threadIdx.y; run < nruns;
         run += (int64_t)gridDim.y * MB_TILE_Y) {
        const int64_t b = run / rps;
        const int t0 = (int)(run - b * rps) * R;
        float v[R + KT - 1]; /* positions t0-(K-1) .. t0+R-1 */
#pragma unroll
        for (int i = 0; i < R + KT - 1; i++) v[i] = conv_in_raw(io, b, t0 - (KT - 1) + i, d);
        if (R16)
#pragma unroll
            for (int i = 0; i < R + KT - 1; i++) v[i] = mb_bf16_keep(v[i]);
#pragma unroll
        for (int i = 0; i < R; i++) {
            if (t0 + i >= io.L) break;
            float acc = bb;
#pragma unroll
            for (int k = 0; k < KT; k++) acc += wk[k] * v[i + k];
            const float v = SILU ? mb_silu_dev(acc) : acc;
            y[(b * io.L + t0 + i) * ldy + d] = mb_bf16_keep_if(R16, v);
        }
    }
}

/* dx and dprev per run; dw and dbias partials per block, in double, into
 * part[blockIdx.y][q][d] (q = 0 dbias, 1 + k tap k), the layout
 * mb_colred_pass2 adds up */
template <bool SILU, bool R16>
__global__ void __launch_bounds__(MB_TILE_X *MB_TILE_Y, 4)
conv_bwd_run4(conv_io io, float *dx, int lddx, float *dprev, double *part, int64_t nruns, int rps)
{
    constexpr int KT = 4, R = CONV_RUN_BWD, NQ = KT + 1;
    __shared__ double sh[NQ][MB_TILE_Y][MB_TILE_X + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int dc = blockIdx.x * MB_TILE_X + tx;
    const bool live = dc < io.D;
    const int d = live ? dc : io.D - 1;
    float wk[KT];
#pragma unroll
    for (int k = 0; k < KT; k++) wk[k] = io.w[(int64_t)d * KT + k];
    const float bb = io.bias ? io.bias[d] : 0.0f;
    double acc[NQ];
#pragma unroll
    for (int q = 0; q < NQ; q++) acc[q] = 0.0;
    for (int64_t run = (int64_t)blockIdx.y * MB_TILE_Y + ty; live && run < nruns;
         run += (int64_t)gridDim.y * MB_TILE_Y) {
        const int64_t b = run / rps;
        const int t0 = (int)(run - b * rps) * R;
        float xv[R + 2 * (KT - 1)]; /* inputs at t0-(K-1) .. t0+R+K-3 */
#pragma unroll
        for (int i = 0; i < R + 2 * (KT - 1); i++) xv[i] = conv_in_raw(io, b, t0 - (KT - 1) + i, d);
        float g[R + KT - 1]; /* gradients at the conv's outputs t0 .. t0+R+K-3, zero past L */
        if (R16) { /* dy loaded whole too, then both rounded */
#pragma unroll
            for (int j = 0; j < R + KT - 1; j++)
                g[j] = t0 + j < io.L ? io.dy[(b * io.L + t0 + j) * io.lddy + d] : 0.0f;
#pragma unroll
            for (int i = 0; i < R + 2 * (KT - 1); i++) xv[i] = mb_bf16_keep(xv[i]);
#pragma unroll
            for (int j = 0; j < R + KT - 1; j++) g[j] = mb_bf16_keep(g[j]);
        }
#pragma unroll
        for (int j = 0; j < R + KT - 1; j++) {
            float gv = 0.0f;
            if (t0 + j < io.L) {
                gv = R16 ? g[j] : io.dy[(b * io.L + t0 + j) * io.lddy + d];
                if (SILU) {
                    float pre = bb;
#pragma unroll
                    for (int k = 0; k < KT; k++) pre += wk[k] * xv[j + k];
                    gv = mb_silu_bwd_dev(pre, gv);
                }
            }
            g[j] = gv;
        }
#pragma unroll
        for (int i = 0; i < R; i++) {
            if (t0 + i >= io.L) break;
            float a = 0.0f;
#pragma unroll
            for (int k = 0; k < KT; k++) a += wk[k] * g[i + KT - 1 - k];
            dx[(b * io.L + t0 + i) * lddx + d] = conv_dx_final(io, b, t0 + i, d, a);
            acc[0] += g[i];
#pragma unroll
            for (int k = 0; k < KT; k++) acc[1 + k] += (double)g[i] * xv[i + k];
        }
        /* the state rows r = 0..K-2 (position r-(K-1)) are read by outputs
         * t = r - k, all inside the sequence's first run */
        if (dprev && t0 == 0)
#pragma unroll
            for (int r = 0; r < KT - 1; r++) {
                float a = 0.0f;
#pragma unroll
                for (int k = 0; k <= r; k++) a += wk[k] * g[r - k];
                dprev[(b * (KT - 1) + r) * io.D + d] = a;
            }
    }
#pragma unroll
    for (int q = 0; q < NQ; q++) sh[q][ty][tx] = acc[q];
    __syncthreads();
    if (ty == 0 && live)
#pragma unroll
        for (int q = 0; q < NQ; q++) {
            double s = 0.0;
#pragma unroll
            for (int k = 0; k < MB_TILE_Y; k++) s += sh[q][k][tx];
            part[((size_t)blockIdx.y * NQ + q) * io.D + dc] = s;
        }
}

/* ---- any K: a thread per element -------------------------------------------- */

template <bool SILU> __global__ void conv_fwd_kernel(conv_io io, int64_t rows, float *y, int ldy)
{
    MB_FOR_ROWS(row, rows) {
        const int64_t b = row / io.L;
        const int t = (int)(row - b * io.L);
        MB_FOR_COLS(d, io.D) {
            const float acc = conv_out_at(io, b, t, (int)d), v = SILU ? mb_silu_dev(acc) : acc;
            y[row * ldy + d] = mb_bf16_keep_if(io.r16, v);
        }
    }
}

/* dx[b,s,d] = sum_k w[d,k] g[b, s+K-1-k, d] over the outputs t < L. */
template <bool SILU> __global__ void conv_dx_kernel(conv_io io, int64_t rows, float *dx, int lddx)
{
    MB_FOR_ROWS(row, rows) {
        const int64_t b = row / io.L;
        const int s = (int)(row - b * io.L);
        MB_FOR_COLS(d, io.D) {
            const float *wd = io.w + d * io.K;
            float acc = 0.0f;
            for (int k = 0; k < io.K; k++) {
                if (s + (io.K - 1) - k >= io.L) continue;
                acc += wd[k] * conv_g_at<SILU>(io, b, s + (io.K - 1) - k, (int)d);
            }
            dx[row * lddx + d] = conv_dx_final(io, b, s, (int)d, acc);
        }
    }
}

/* dprev[b,r,d]: the same for the K-1 state rows (row r is position
 * r - (K-1), read by outputs t = r - k for taps k <= r). */
template <bool SILU> __global__ void conv_dprev_kernel(conv_io io, int64_t prows, float *dprev)
{
    MB_FOR_ROWS(pr, prows) {
        const int64_t b = pr / (io.K - 1);
        const int r = (int)(pr - b * (io.K - 1));
        MB_FOR_COLS(d, io.D) {
            const float *wd = io.w + d * io.K;
            float acc = 0.0f;
            for (int k = 0; k <= r; k++) {
                const int t = r - k;
                if (t >= io.L) continue;
                acc += wd[k] * conv_g_at<SILU>(io, b, t, (int)d);
            }
            dprev[pr * io.D + d] = acc;
        }
    }
}

/* dw[d, k0+i] += sum_{b,t} g[b,t,d] in[b, t-(K-1)+k0+i, d] for i < nt, and
 * (q = 0) dbias[d] += sum g[b,t,d]: one column reduction per group of up
 * to MB_CONV_TAPS taps, partials in double as the CPU's accumulators. The
 * run kernels' partials are added up with its store too. */
#define MB_CONV_TAPS 8
struct conv_dw_f {
    int nq;     /* 1 + nt */
    int nt, k0; /* taps k0 .. k0+nt-1 */
    int silu;
    conv_io io;
    float *dw;
    float *dbias; /* NULL: not wanted, or not this group's job */
    __device__ void load(int64_t r, int c, double *acc) const
    {
        const int64_t b = r / io.L;
        const int t = (int)(r - b * io.L);
        const float g = silu ? conv_g_at<true>(io, b, t, c) : conv_g_at<false>(io, b, t, c);
        acc[0] += g;
#pragma unroll
        for (int i = 0; i < MB_CONV_TAPS; i++)
            if (i < nt) acc[1 + i] += (double)g * conv_in_at(io, b, t - (io.K - 1) + k0 + i, c);
    }
    __device__ void store(int q, int c, double s) const
    {
        if (q == 0) {
            if (dbias) dbias[c] = (float)(dbias[c] + s);
        } else {
            float *p = dw + (int64_t)c * io.K + k0 + (q - 1);
            *p = (float)(*p + s);
        }
    }
};

conv_io conv_make_io(const mb_ctx *ctx, int L, int D, int K, const float *x, int ldx, const float *w,
                     const float *bias, const float *prev, const float *dy, int lddy, const float *dnext)
{
    conv_io io;
    io.dnext = dnext;
    io.r16 = MB_OPS_ROUNDS_BF16(ctx);
    io.L = L, io.D = D, io.K = K, io.x = x, io.ldx = ldx, io.w = w, io.bias = bias, io.prev = prev;
    io.dy = dy, io.lddy = lddy;
    return io;
}

} // namespace

extern "C" void mb_conv1d_fwd_cuda(MB_OPS_CONV_FWD_ARGS)
{
    if (B <= 0 || L <= 0 || D <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const conv_io io = conv_make_io(ctx, L, D, K, x, ldx, w, bias, prev, NULL, 0, NULL);
    const dim3 blk(MB_TILE_X, MB_TILE_Y);
    if (K == 4) {
        const int rps = (L + CONV_RUN - 1) / CONV_RUN;
        const int64_t nruns = (int64_t)B * rps;
        const dim3 grid(mb_cuda_blocks(D, MB_TILE_X, 65535u), mb_cuda_blocks(nruns, MB_TILE_Y, MB_CUDA_MAX_GRID_Y));
        if (io.r16) {
            if (silu) conv_fwd_run4<true, true><<<grid, blk, 0, st->stream>>>(io, y, ldy, nruns, rps);
            else conv_fwd_run4<false, true><<<grid, blk, 0, st->stream>>>(io, y, ldy, nruns, rps);
        } else {
            if (silu) conv_fwd_run4<true, false><<<grid, blk, 0, st->stream>>>(io, y, ldy, nruns, rps);
            else conv_fwd_run4<false, false><<<grid, blk, 0, st->stream>>>(io, y, ldy, nruns, rps);
        }
        MB_LAUNCH_CHECK(ctx, "conv_fwd_run4");
        return;
    }
    const int64_t rows = (int64_t)B * L;
    if (silu) conv_fwd_kernel<true><<<mb_cuda_grid2d(rows, D), blk, 0, st->stream>>>(io, rows, y, ldy);
    else conv_fwd_kernel<false><<<mb_cuda_grid2d(rows, D), blk, 0, st->stream>>>(io, rows, y, ldy);
    MB_LAUNCH_CHECK(ctx, "conv_fwd_kernel");
}

/* K = 4: dx, dprev and the partials in one kernel, then the fixed-order sum */
static void conv_bwd_run4_launch(mb_ctx *ctx, mb_cuda_state *st, const conv_io &io, int B, int silu,
                                 float *dx, int lddx, float *dw, float *dbias, float *dprev)
{
    const int NQ = 5;
    const int rps = (io.L + CONV_RUN_BWD - 1) / CONV_RUN_BWD;
    const int64_t nruns = (int64_t)B * rps;
    /* as many row blocks as the scratch holds partials for, each thread
     * taking every gy-th group of runs */
    int64_t gy = (nruns + MB_TILE_Y - 1) / MB_TILE_Y;
    const int64_t by_scratch = (int64_t)(MB_CUDA_SCRATCH_BYTES / sizeof(double)) / ((int64_t)NQ * io.D);
    if (gy > by_scratch) gy = by_scratch;
    if (gy > (int64_t)MB_CUDA_MAX_GRID_Y) gy = MB_CUDA_MAX_GRID_Y;
    if (gy < 1) { /* D past what the scratch can hold a row of partials for */
        mb_ctx_fail(ctx, "cuda conv1d: %d channels are more than the reduction scratch holds", io.D);
        return;
    }
    double *part = (double *)st->scratch;
    const dim3 grid(mb_cuda_blocks(io.D, MB_TILE_X, 65535u), (unsigned)gy), blk(MB_TILE_X, MB_TILE_Y);
#define RUN4(S, R) conv_bwd_run4<S, R><<<grid, blk, 0, st->stream>>>(io, dx, lddx, dprev, part, nruns, rps)
    if (io.r16) {
        if (silu) RUN4(true, true);
        else RUN4(false, true);
    } else {
        if (silu) RUN4(true, false);
        else RUN4(false, false);
    }
#undef RUN4
    if (MB_CUDA_LAUNCHED(ctx, "conv_bwd_run4")) return;
    conv_dw_f f;
    f.nt = 4, f.nq = NQ, f.k0 = 0, f.silu = silu, f.io = io, f.dw = dw, f.dbias = dbias;
    mb_colred_pass2<conv_dw_f><<<mb_cuda_blocks((int64_t)NQ * io.D, 256, MB_CUDA_MAX_BLOCKS), 256, 0, st->stream>>>(
        f, 0, io.D, (int)gy, part);
    MB_LAUNCH_CHECK(ctx, "conv_bwd_run4 sums");
}

extern "C" void mb_conv1d_bwd_cuda(MB_OPS_CONV_BWD_ARGS)
{
    if (B <= 0 || D <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const conv_io io = conv_make_io(ctx, L, D, K, x, ldx, w, bias, prev, dy, lddy, dnext);
    const int64_t rows = (int64_t)B * (L > 0 ? L : 0);
    if (K == 4 && rows > 0) {
        conv_bwd_run4_launch(ctx, st, io, B, silu, dx, lddx, dw, dbias, dprev);
        return;
    }
    const dim3 blk(MB_TILE_X, MB_TILE_Y);
    if (rows > 0) {
        if (silu) conv_dx_kernel<true><<<mb_cuda_grid2d(rows, D), blk, 0, st->stream>>>(io, rows, dx, lddx);
        else conv_dx_kernel<false><<<mb_cuda_grid2d(rows, D), blk, 0, st->stream>>>(io, rows, dx, lddx);
        MB_LAUNCH_CHECK(ctx, "conv_dx_kernel");
    }
    if (dprev && K > 1) {
        const int64_t prows = (int64_t)B * (K - 1);
        if (silu) conv_dprev_kernel<true><<<mb_cuda_grid2d(prows, D), blk, 0, st->stream>>>(io, prows, dprev);
        else conv_dprev_kernel<false><<<mb_cuda_grid2d(prows, D), blk, 0, st->stream>>>(io, prows, dprev);
        MB_LAUNCH_CHECK(ctx, "conv_dprev_kernel");
    }
    if (rows <= 0) return; /* dw and dbias gain nothing */
    for (int k0 = 0; k0 < K; k0 += MB_CONV_TAPS) {
        conv_dw_f f;
        f.nt = K - k0 < MB_CONV_TAPS ? K - k0 : MB_CONV_TAPS;
        f.nq = 1 + f.nt;
        f.k0 = k0;
        f.silu = silu;
        f.io = io;
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

/* One step with the state: a thread per (b, d) reads its K-1 state values
 * and x once, sums the taps in the CPU's order (bias, then k = 0..K-1),
 * and shifts the state as it goes. */
static __global__ void conv_step_kernel(int64_t n, int D, int K, const float *x, int ldx, const float *w,
                                        const float *bias, float *state, int silu, int r16, float *y, int ldy)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = i / D;
        const int d = (int)(i - b * D);
        float *sp = state + b * (K - 1) * D + d;
        const float *wd = w + (size_t)d * K;
        /* read as bf16 values in bf16 precision (conv_rd) */
        const float xv = mb_bf16_keep_if(r16, x[b * ldx + d]);
        float acc = bias ? bias[d] : 0.0f;
        for (int k = 0; k < K - 1; k++) {
            const float v = mb_bf16_keep_if(r16, sp[(int64_t)k * D]);
            acc += wd[k] * v;
            if (k > 0) sp[(int64_t)(k - 1) * D] = v;
        }
        acc += wd[K - 1] * xv;
        if (K > 1) sp[(int64_t)(K - 2) * D] = xv;
        if (silu) acc = mb_silu_dev(acc);
        y[b * ldy + d] = mb_bf16_keep_if(r16, acc);
    }
}

extern "C" void mb_conv1d_step_cuda(MB_OPS_CONV_STEP_ARGS)
{
    if (B <= 0 || D <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int64_t n = (int64_t)B * D;
    conv_step_kernel<<<mb_cuda_blocks(n, 256, MB_CUDA_MAX_BLOCKS), 256, 0, st->stream>>>(
        n, D, K, x, ldx, w, bias, state, silu, MB_OPS_ROUNDS_BF16(ctx), y, ldy);
    MB_LAUNCH_CHECK(ctx, "conv_step_kernel");
}
