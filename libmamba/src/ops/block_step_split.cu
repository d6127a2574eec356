/* One recurrent step of a residual Mamba block on the GPU for WIDE models:
 * the maths of ops/block_step.c (the reference) in four kernels that
 * spread each matrix over every SM, where ops/block_step.cu gives a row
 * one thread block.
 *
 * Why: a step reads the layer's weights once. At d_model 768 that is 15 MB
 * a layer; one thread block (one SM) streams it at a small fraction of the
 * device's bandwidth, so at batch 1 a 24-layer model ran at a few hundred
 * tokens a second. Here every GEMV gives a warp to an output column
 * (mb_gemv_warp), so the weights stream from all SMs at once, and the
 * per-channel work (conv, dt, the scan, the gate) runs as a thread per
 * (channel, state). Four launches a layer, each overlapped with the one
 * before (programmatic dependent launch) and replayed from a graph:
 *
 *   in    xn = norm(h) (each block norms the few rows itself), xz = in_proj xn,
 *         and for the x columns xc = silu(conv([state; x])) by the warp that
 *         made x
 *   x     dbc = x_proj xc
 *   scan  delta = softplus(dt_proj dt + dt_b); the state steps; y = gated
 *         output; the conv state shifts by one (after `x` has read it)
 *   out   out = h + out_proj y (and out2 = out + add2)
 *
 * The batch's rows go through shared memory SP_MR at a time, a group of
 * SP_MR rows to each row of the grid (blockIdx.y): the weights are read
 * from DRAM once and from L2 by every group, so that the groups run at
 * once rather than one after another (the DNA model at batch 64 on an
 * H200: 1.9 ms a token in sequence, 0.63 in groups; AUTO still prefers the
 * fused kernel or, for wide fp32 layers above 8 rows, GEMMs: ops/block_step.cu).
 * The intermediates live
 * in the caller's workspace (mb_block_step_workspace bytes, which the CPU
 * version needs anyway). */
#include "core/cuda_util.h"
#include "ops/fused.cuh"
#include "ops/ops.h"

#define SP_THREADS 256
#define SP_WARPS (SP_THREADS / 32)
#define SP_MR 4 /* batch rows a pass holds in shared memory */
/* Blocks an SM must hold of a GEMV kernel with bf16 weights: ptxas gave
 * those 151-199 registers a thread (the 16-byte loads' eight weights
 * against eight activations a row, hoisted), one block of 8 warps an SM.
 * Two cap them at 128 (a few dozen bytes spilled) and double the loads in
 * flight. The fp32 kernels fit two or three blocks as they are. */
#define SP_BF_BLOCKS 2
#define SP_PRE 12 /* float4s of a weight row a lane holds (rows up to 1536 floats) */
#define SP_DT_HELD 12 /* dt_proj values a scan lane holds in registers (dt_rank up to 12 x its channel's lanes) */
#define SP_SCAN_HELD 2 /* states a scan thread loads before the wait (the rest after) */

/* The kernels' weights: bf16 copies (mb_model_set_bf16) with BF, else fp32 */
template <bool BF>
struct sp_elem {
    typedef float type;
};
template <>
struct sp_elem<true> {
    typedef uint16_t type;
};

template <bool BF>
static __device__ __forceinline__ const typename sp_elem<BF>::type *sp_w(const float *W, const uint16_t *Wb)
{
    if constexpr (BF) return Wb;
    else return W;
}

/* The warp's first column's weights (k of them from w), loaded before
 * mb_pdl_wait where a lane can hold them (V: 16-byte rows; see
 * mb_gemv_warp_preload); live: the warp has a first column. */
template <bool V, typename E>
static __device__ __forceinline__ bool sp_preload(bool live, int k, const E *w, typename mb_wtraits<E>::vec *wr)
{
    if (!V || !live || k / mb_wtraits<E>::per > 32 * SP_PRE) return false;
    mb_gemv_warp_preload<SP_PRE>(k, w, wr);
    return true;
}

/* a column's products (its k weights from w) with the pass's M rows of x
 * (ld apart). With 16-byte rows a lane
 * loads its part of the column SP_PRE vectors at a time into wr, all in
 * flight at once, then takes the products (the first chunk already there
 * when wr holds this column: held). mb_gemv_warp's loop, unrolled by 4,
 * had 4 loads a lane in flight: the 2.8b shape's bf16 in_proj (10 a lane)
 * then streamed at a third of the device's bandwidth (H100, profiled). */
template <int MR, bool V, typename E>
static __device__ __forceinline__ void sp_gemv(int M, int k, const float *xs, int ld, const E *w, bool held,
                                               typename mb_wtraits<E>::vec *wr, float *acc)
{
    if (!V) {
        mb_gemv_warp<MR, V>(M, k, xs, ld, w, acc);
        return;
    }
    typedef mb_wtraits<E> T;
    const int lane = threadIdx.x & 31, nv = k / T::per;
    const typename T::vec *wv = reinterpret_cast<const typename T::vec *>(w);
#pragma unroll
    for (int m = 0; m < MR; m++) acc[m] = 0.f;
    for (int base = 0; base < nv; base += 32 * SP_PRE) {
        if (!held || base > 0) {
#pragma unroll
            for (int i = 0; i < SP_PRE; i++) {
                const int j = base + lane + 32 * i;
                wr[i] = j < nv ? wv[j] : T::zero();
            }
        }
#pragma unroll
        for (int i = 0; i < SP_PRE; i++) {
            const int j = base + lane + 32 * i;
            if (j < nv) {
#pragma unroll
                for (int m = 0; m < MR; m++)
                    if (m < M) acc[m] += T::dot(wr[i], xs + (size_t)m * ld, j);
            }
        }
    }
#pragma unroll
    for (int m = 0; m < MR; m++) acc[m] = mb_warp_sum(acc[m]);
}

/* rows m0 .. m0 + M - 1 of src (cols floats a row) into shared memory, rows ld apart */
static __device__ __forceinline__ void sp_stage(float *xs, int ld, const float *src, int cols, int m0, int M)
{
    for (int i = threadIdx.x; i < M * cols; i += SP_THREADS) {
        const int m = i / cols, c = i - m * cols;
        xs[m * ld + c] = src[(size_t)(m0 + m) * cols + c];
    }
}

/* row b of the block's input: h's, or the embedding of the row's token */
static __device__ __forceinline__ const float *sp_row(const float *h, const int32_t *tokens, const float *embed,
                                                     int d, int b)
{
    return tokens ? embed + (size_t)tokens[b] * d : h + (size_t)b * d;
}

/* The conv of column n, row b, but for its newest input: the bias and the
 * taps on the conv state; *w_last gets the newest input's tap */
static __device__ __forceinline__ float sp_conv_part(const mb_norm_gemv_params &p, int b, int n, float *w_last)
{
    const int K = p.conv_k, Di = p.conv_dim;
    const float *cs = p.conv_state + (size_t)b * (K - 1) * Di, *w = p.conv_w + (size_t)n * K;
    float a = p.conv_b ? p.conv_b[n] : 0.f;
    for (int k = 0; k < K - 1; k++) a += w[k] * cs[(size_t)k * Di + n];
    *w_last = w[K - 1];
    return a;
}

/* Row r of the pass for the GEMVs: RMSNorm's scale by its weights, xs[r]
 * = h * norm_w, with the lane's part of sum h^2 left in red[r][warp] for
 * sp_rstd after the next barrier: the row's 1 / rms multiplies the column
 * sums instead (W (h w) r == W (h w r)), so the sum of squares needs no
 * barrier of its own before the products, where mb_norm_row_block takes
 * two (a block sum) and reads the row twice. LayerNorm's mean must come
 * before the products: it keeps mb_norm_row_block. */
static __device__ __forceinline__ void sp_rms_stage(int d, const float *x, const float *w, float *red, float *xs)
{
    float ss = 0.f;
    for (int i = threadIdx.x; i < d; i += SP_THREADS) {
        const float v = x[i];
        ss += v * v;
        xs[i] = v * w[i];
    }
    ss = mb_warp_sum(ss);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
}

/* 1 / rms of a row staged by sp_rms_stage (its SP_WARPS partial sums) */
static __device__ __forceinline__ float sp_rstd(int d, float eps, const float *red)
{
    float ss = 0.f;
#pragma unroll
    for (int w = 0; w < SP_WARPS; w++) ss += red[w];
    return rsqrtf(ss / (float)d + eps);
}

/* y[b, n] = W[n, :] . norm(h[b, :]) for n < n_out: the block step's first
 * kernel, and the head of a generation step (ops/sample.cu) */
template <int MR, bool V, bool BF>
static __global__ void __launch_bounds__(SP_THREADS, BF ? SP_BF_BLOCKS : 0)
norm_gemv_kernel(const mb_norm_gemv_params p)
{
    extern __shared__ float4 sp_sh4[];
    __shared__ float red[MR * SP_WARPS > 32 ? MR * SP_WARPS : 32];
    float *xs = reinterpret_cast<float *>(sp_sh4);
    const int d = p.d, ld = mb_round4(d), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int n_first = blockIdx.x * SP_WARPS + warp;
    const bool rms = p.norm_b == NULL;
    typedef typename sp_elem<BF>::type E;
    typename mb_wtraits<E>::vec wr[SP_PRE];
    const E *W = sp_w<BF>(p.W, p.Wb);
    const bool pre = sp_preload<V>(n_first < p.n_out, d, W + (size_t)n_first * d, wr);
    /* the conv of the warp's first column for the lane's row of the first
     * group, all but its newest input, before the wait (the conv state is
     * the previous step's) */
    const int m_first = blockIdx.y * MR;
    float conv_wl = 0.f;
    const float conv_a = lane < MR && n_first < p.conv_dim && m_first + lane < p.batch
                             ? sp_conv_part(p, m_first + lane, n_first, &conv_wl)
                             : 0.f;
    mb_pdl_wait();
    for (int m0 = m_first; m0 < p.batch; m0 += gridDim.y * MR) {
        const int M = min(MR, p.batch - m0);
        /* the whole block norms each row: a warp a row left the other
         * warps waiting on its chain of loads (profiled: the kernel's time
         * at batch 1) */
        for (int r = 0; r < M; r++) {
            const float *x = sp_row(p.h, p.tokens, p.embed, d, m0 + r);
            if (rms) sp_rms_stage(d, x, p.norm_w, red + r * SP_WARPS, xs + r * ld);
            else mb_norm_row_block<SP_THREADS>(d, x, p.norm_w, p.norm_b, p.eps, red, xs + r * ld);
        }
        __syncthreads();
        float rstd[MR];
#pragma unroll
        for (int m = 0; m < MR; m++) rstd[m] = rms && m < M ? sp_rstd(d, p.eps, red + m * SP_WARPS) : 1.f;
        for (int n = blockIdx.x * SP_WARPS + warp; n < p.n_out; n += gridDim.x * SP_WARPS) {
            /* the conv's taps on the state, loaded before the column's
             * weights so that both are in flight at once (after the
             * products they were a second wait a column) */
            const bool first = n == n_first && m0 == m_first;
            float wl = conv_wl, ca = conv_a;
            if (!first && lane < M && n < p.conv_dim) ca = sp_conv_part(p, m0 + lane, n, &wl);
            float acc[MR];
            sp_gemv<MR, V>(M, d, xs, ld, W + (size_t)n * d, pre && n == n_first, wr, acc);
#pragma unroll
            for (int m = 0; m < MR; m++)
                if (lane == m && m < M) {
                    const int b = m0 + m;
                    const float yv = acc[m] * rstd[m];
                    p.y[(size_t)b * p.ldy + n] = yv;
                    if (n >= p.conv_dim) continue;
                    const float a = ca + wl * yv;
                    p.xc[(size_t)b * p.conv_dim + n] = a * mb_sigmoid_dev(a);
                }
        }
        __syncthreads();
    }
}

/* dbc = x_proj xc, the rows of xc staged in shared memory. x_proj has
 * few columns (dt_rank + 2 d_state: 48 for the DNA model, 192 for the 2.8b
 * shape) over a long d_inner, so a column's sum is split over ks warps of
 * a block (ks of SP_WARPS, a power of two: sp_x_split), each taking a
 * slice of d_inner, their parts added in shared memory in a fixed order.
 * With a warp a column the 2.8b shape ran 24 blocks on 132 SMs, 8 us a
 * layer (H100). */
template <int MR, bool V, bool BF>
static __global__ void __launch_bounds__(SP_THREADS, BF ? SP_BF_BLOCKS : 0)
split_x_kernel(const mb_block_step_params p, const float *__restrict__ xc, float *__restrict__ dbc, int ks)
{
    extern __shared__ float4 sp_sh4[];
    __shared__ float part[SP_WARPS][MR];
    float *xs = reinterpret_cast<float *>(sp_sh4);
    const int Di = p.d_inner, ld = mb_round4(Di);
    const int nbc = p.is_complex ? 2 * p.d_state : p.d_state, xd = p.dt_rank + 2 * nbc;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    /* column slot and slice of this warp: slices of whole 16-byte vectors
     * (8 floats, a bf16 vector's 8 weights) */
    const int cols = SP_WARPS / ks, slot = warp / ks, kp = warp % ks;
    const int kc = ((Di + ks - 1) / ks + 7) & ~7, k0 = min(kp * kc, Di), kn = min(kc, Di - k0);
    const int n_first = blockIdx.x * cols + slot;
    typedef typename sp_elem<BF>::type E;
    typename mb_wtraits<E>::vec wr[SP_PRE];
    const E *W = sp_w<BF>(p.x_proj, p.x_proj_bf16);
    const bool pre = sp_preload<V>(n_first < xd && kn > 0, kn, W + (size_t)n_first * Di + k0, wr);
    mb_pdl_wait();
    for (int m0 = blockIdx.y * MR; m0 < p.batch; m0 += gridDim.y * MR) {
        const int M = min(MR, p.batch - m0);
        sp_stage(xs, ld, xc, Di, m0, M);
        __syncthreads();
        /* every warp of the block takes every pass (the barriers) */
        for (int nb = blockIdx.x * cols; nb < xd; nb += gridDim.x * cols) {
            const int n = nb + slot;
            float acc[MR];
#pragma unroll
            for (int m = 0; m < MR; m++) acc[m] = 0.f;
            if (n < xd && kn > 0)
                sp_gemv<MR, V>(M, kn, xs + k0, ld, W + (size_t)n * Di + k0, pre && n == n_first, wr, acc);
            if (lane == 0) {
#pragma unroll
                for (int m = 0; m < MR; m++) part[warp][m] = acc[m];
            }
            __syncthreads();
            if (kp == 0 && n < xd && lane < M) {
                float s = 0.f;
                for (int i = 0; i < ks; i++) s += part[warp + i][lane];
                dbc[(size_t)(m0 + lane) * xd + n] = s;
            }
            __syncthreads();
        }
    }
}

/* state n of a channel one step on (its value hr, hi and rate Ar, Ai as
 * held), stored back; returns its term of C . h */
static __device__ __forceinline__ float sp_state_step(bool cplx, float dt, float dtx, float Ar, float Ai, float hr,
                                                      float hi, const float *Bt, const float *Ct, int n, float *hs,
                                                      int idx)
{
    if (!cplx) {
        const float hv = expf(dt * Ar) * hr + dtx * Bt[n];
        hs[idx] = hv;
        return Ct[n] * hv;
    }
    float sn, cn;
    sincosf(dt * Ai, &sn, &cn);
    const float mag = expf(dt * Ar), ar = mag * cn, ai = mag * sn;
    const float nr = ar * hr - ai * hi + dtx * Bt[2 * n];
    const float ni = ar * hi + ai * hr + dtx * Bt[2 * n + 1];
    hs[2 * idx] = nr;
    hs[2 * idx + 1] = ni;
    return 2.f * (Ct[2 * n] * nr - Ct[2 * n + 1] * ni);
}

/* A thread per (row, channel, state group): SEG neighbouring lanes share a
 * channel (SEG divides 32 and d_state), each stepping d_state / SEG states;
 * their partial C . h meet by shuffles. The lane of state group 0 gates the
 * output and shifts the channel's conv state (split_x_kernel, before, has
 * read it).
 *
 * Before mb_pdl_wait it loads all but dbc: the weights, and what the
 * kernels two or more launches back wrote (xc and z from the `in` kernel,
 * the states from the previous step), since the kernel that may still run
 * then is split_x_kernel alone (mb_pdl_wait lets one kernel run ahead), and
 * it writes dbc only. So after the wait the chain is one read of dbc. */
template <int SEG>
static __global__ void __launch_bounds__(SP_THREADS)
split_scan_kernel(const mb_block_step_params p, const float *__restrict__ xz, const float *__restrict__ xc,
                  const float *__restrict__ dbc, float *__restrict__ y)
{
    const int Di = p.d_inner, N = p.d_state, K = p.d_conv, R = p.dt_rank;
    const int nbc = p.is_complex ? 2 * N : N, xd = R + 2 * nbc, b = blockIdx.y;
    const int t = blockIdx.x * SP_THREADS + threadIdx.x, c = t / SEG, j = t % SEG;
    const bool ok = c < Di;
    /* the lane's share of the channel's dt_proj row: r = j, j + SEG, ...
     * (held when that is at most SP_DT_HELD values) */
    float wdt[SP_DT_HELD];
    const bool held = ok && R <= SP_DT_HELD * SEG;
#pragma unroll
    for (int i = 0; i < SP_DT_HELD; i++) {
        const int r = j + i * SEG;
        wdt[i] = held && r < R ? p.dt_w[(size_t)c * R + r] : 0.f;
    }
    const float bias = ok ? p.dt_b[c] : 0.f, Dc = ok ? p.D[c] : 0.f;
    const float x = ok ? xc[(size_t)b * Di + c] : 0.f, zc = ok && j == 0 ? xz[(size_t)b * 2 * Di + Di + c] : 0.f;
    /* the thread's first SP_SCAN_HELD states (re, im) and decay rates */
    float *hs = p.ssm_state + (size_t)b * Di * nbc;
    float hre[SP_SCAN_HELD], him[SP_SCAN_HELD], Ar[SP_SCAN_HELD], Ai[SP_SCAN_HELD];
#pragma unroll
    for (int i = 0; i < SP_SCAN_HELD; i++) {
        const int n = j + i * SEG, idx = c * N + n;
        const bool in = ok && n < N;
        Ar[i] = in ? -expf(p.A_log[idx]) : 0.f;
        Ai[i] = in && p.is_complex ? p.A_imag[idx] : 0.f;
        hre[i] = in ? hs[p.is_complex ? 2 * idx : idx] : 0.f;
        him[i] = in && p.is_complex ? hs[2 * idx + 1] : 0.f;
    }
    mb_pdl_wait();
    float part = 0.f;
    const float *dr = dbc + (size_t)b * xd;
    /* dt_proj . dt: each lane of the channel's SEG its share, summed by
     * shuffles (the whole dot in every lane was the kernel's time at 64
     * rows: 48 loads a thread) */
    float v = 0.f;
    if (ok && held) {
#pragma unroll
        for (int i = 0; i < SP_DT_HELD; i++)
            if (j + i * SEG < R) v += wdt[i] * dr[j + i * SEG];
    } else if (ok) {
        for (int r = j; r < R; r += SEG) v += p.dt_w[(size_t)c * R + r] * dr[r];
    }
#pragma unroll
    for (int o = SEG >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o, SEG);
    if (ok) {
        const float dt = mb_softplus_dev(bias + v);
        const float dtx = dt * x;
        const float *Bt = dr + R, *Ct = Bt + nbc;
#pragma unroll
        for (int i = 0; i < SP_SCAN_HELD; i++) {
            const int n = j + i * SEG, idx = c * N + n;
            if (n < N) part += sp_state_step(p.is_complex, dt, dtx, Ar[i], Ai[i], hre[i], him[i], Bt, Ct, n, hs, idx);
        }
        for (int n = j + SP_SCAN_HELD * SEG; n < N; n += SEG) {
            const int idx = c * N + n;
            const float hr = hs[p.is_complex ? 2 * idx : idx], hi = p.is_complex ? hs[2 * idx + 1] : 0.f;
            part += sp_state_step(p.is_complex, dt, dtx, -expf(p.A_log[idx]), p.is_complex ? p.A_imag[idx] : 0.f,
                                  hr, hi, Bt, Ct, n, hs, idx);
        }
    }
#pragma unroll
    for (int o = SEG >> 1; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o, SEG);
    if (!ok || j != 0) return;
    y[(size_t)b * Di + c] = (part + Dc * x) * zc * mb_sigmoid_dev(zc);
    float *cs = p.conv_state + (size_t)b * (K - 1) * Di;
    const float *xzr = xz + (size_t)b * 2 * Di;
    for (int k = 0; k < K - 1; k++) cs[(size_t)k * Di + c] = k + 1 < K - 1 ? cs[(size_t)(k + 1) * Di + c] : xzr[c];
}

/* out = h + out_proj y (rows ld_out apart), out2 = out + add2 */
template <int MR, bool V, bool BF>
static __global__ void __launch_bounds__(SP_THREADS, BF ? SP_BF_BLOCKS : 0)
split_out_kernel(const mb_block_step_params p, const float *__restrict__ h, const float *__restrict__ y,
                 float *__restrict__ out)
{
    extern __shared__ float4 sp_sh4[];
    float *xs = reinterpret_cast<float *>(sp_sh4);
    const int d = p.d_model, Di = p.d_inner, ld = mb_round4(Di), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int ldo = p.ld_out ? p.ld_out : d, ldo2 = p.ld_out2 ? p.ld_out2 : d, lda2 = p.ld_add2 ? p.ld_add2 : d;
    const int n_first = blockIdx.x * SP_WARPS + warp;
    typedef typename sp_elem<BF>::type E;
    typename mb_wtraits<E>::vec wr[SP_PRE];
    const E *W = sp_w<BF>(p.out_proj, p.out_proj_bf16);
    const bool pre = sp_preload<V>(n_first < d, Di, W + (size_t)n_first * Di, wr);
    /* the residual of the warp's first column and the lane's row of the
     * first group, before the wait: h is the `in` kernel's input, three
     * launches back (see split_scan_kernel) */
    const int m_first = blockIdx.y * MR;
    const float h_first = lane < MR && n_first < d && m_first + lane < p.batch
                              ? sp_row(h, p.tokens, p.embed, d, m_first + lane)[n_first]
                              : 0.f;
    mb_pdl_wait();
    for (int m0 = m_first; m0 < p.batch; m0 += gridDim.y * MR) {
        const int M = min(MR, p.batch - m0);
        sp_stage(xs, ld, y, Di, m0, M);
        __syncthreads();
        for (int n = blockIdx.x * SP_WARPS + warp; n < d; n += gridDim.x * SP_WARPS) {
            /* the residual, loaded before the column's weights (as the
             * conv's taps in norm_gemv_kernel) */
            const float hv = n == n_first && m0 == m_first ? h_first
                             : lane < M                     ? sp_row(h, p.tokens, p.embed, d, m0 + lane)[n]
                                                            : 0.f;
            float acc[MR];
            sp_gemv<MR, V>(M, Di, xs, ld, W + (size_t)n * Di, pre && n == n_first, wr, acc);
#pragma unroll
            for (int m = 0; m < MR; m++)
                if (lane == m && m < M) {
                    const int b = m0 + m;
                    const float o = acc[m] + hv;
                    out[(size_t)b * ldo + n] = o;
                    if (p.out2) p.out2[(size_t)b * ldo2 + n] = o + p.add2[(size_t)b * lda2 + n];
                }
        }
        __syncthreads();
    }
}

/* blocks for n_out columns at a warp each (x), by groups of mr rows (y):
 * at most as many as the SMs hold at once, and the warps loop over the
 * rest. A grid past that ran its last blocks as a second wave after the
 * first had finished: the head's 50,280 columns at 4 blocks an SM where 3
 * fit took two rounds of 12 columns a warp instead of one of 16. */
template <typename K>
static dim3 sp_grid(mb_cuda_state *st, K kernel, size_t smem, int n_out, int batch, int mr)
{
    const int sms = st->sm_count > 0 ? st->sm_count : 132;
    int fit = 0, i = 0;
    const void *fn = reinterpret_cast<const void *>(kernel);
    while (i < st->n_occ && !(st->occ[i].fn == fn && st->occ[i].smem == smem)) i++;
    if (i < st->n_occ) fit = st->occ[i].fit;
    else {
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, SP_THREADS, smem) != cudaSuccess || fit < 1) {
            (void)cudaGetLastError(); /* not sticky; the launch reports a real fault */
            fit = 2;
        }
        if (st->n_occ < (int)(sizeof st->occ / sizeof st->occ[0])) {
            st->occ[st->n_occ].fn = fn, st->occ[st->n_occ].smem = smem, st->occ[st->n_occ].fit = fit;
            st->n_occ++;
        }
    }
    const int want = (n_out + SP_WARPS - 1) / SP_WARPS, cap = fit * sms;
    const int groups = (batch + mr - 1) / mr;
    return dim3((unsigned)(want < cap ? (want > 0 ? want : 1) : cap), (unsigned)(groups < 65535 ? groups : 65535));
}

/* Warps a column of x_proj is split over (split_x_kernel): doubled while
 * the blocks (SP_WARPS / ks columns each, for each group of rows) leave
 * SMs idle and each warp keeps at least 256 of the k weights (at 128 the
 * DNA model's slices were 4 loads a lane, less than the added barrier). */
static int sp_x_split(const mb_cuda_state *st, int xd, int k, int groups)
{
    const int sms = st->sm_count > 0 ? st->sm_count : 132;
    int ks = 1;
    while (ks < SP_WARPS && k / (2 * ks) >= 256 && (long)((xd * ks + SP_WARPS - 1) / SP_WARPS) * groups < sms) ks *= 2;
    return ks;
}

/* 16-byte rows: 4 floats or 8 bf16 a load (Wb, bf16, where not NULL) */
static bool sp_vec(int k, const float *W, const uint16_t *Wb)
{
    if (Wb) return k % 8 == 0 && (reinterpret_cast<uintptr_t>(Wb) & 15) == 0;
    return k % 4 == 0 && (reinterpret_cast<uintptr_t>(W) & 15) == 0;
}

/* Rows a block holds: 1 at batch 1, else SP_MR. The kernels for one row
 * keep one sum a lane where SP_MR rows keep four, and stage a quarter of
 * the shared memory: with bf16 weights the SP_MR kernels need 151-170
 * registers a thread (ptxas), one block of 8 warps an SM, too few loads in
 * flight to stream a wide model's weights at batch 1. (Groups of 16 rows
 * at 32+ rows, commit e219de9, were removed unmeasured: AUTO takes the
 * split kernels at that many rows only for bf16 layers, which they did not
 * cover.) */
static int sp_rows(int batch) { return batch == 1 ? 1 : SP_MR; }

/* the kernel instance for (rows a block holds, vector rows, bf16 weights) */
#define SP_PICK(kern, mr, vec, bf)                                                                                     \
    ((mr) == 1 ? ((bf) ? ((vec) ? kern<1, true, true> : kern<1, false, true>)                                        \
                       : ((vec) ? kern<1, true, false> : kern<1, false, false>))                                     \
               : ((bf) ? ((vec) ? kern<SP_MR, true, true> : kern<SP_MR, false, true>)                                \
                       : ((vec) ? kern<SP_MR, true, false> : kern<SP_MR, false, false>)))

/* shared memory for mr rows of k floats; kernels above 48 KB opt in */
template <typename K>
static int sp_smem(mb_ctx *ctx, K kernel, int k, int mr, size_t *bytes)
{
    *bytes = (size_t)mr * mb_round4(k) * sizeof(float);
    if (*bytes <= 48 * 1024) return 0;
    return MB_CUDA_OK(ctx, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)*bytes));
}

/* the largest width the split kernels stage (SP_MR rows in shared memory) */
extern "C" int mb_block_step_split_fits_cuda(mb_ctx *ctx, int width)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return 0;
    int v = 0;
    if (MB_CUDA_OK(ctx, cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, st->device))) return 0;
    return (size_t)SP_MR * mb_round4(width) * sizeof(float) <= (size_t)v - 1024;
}

extern "C" void mb_norm_gemv_cuda(mb_ctx *ctx, const mb_norm_gemv_params *p)
{
    if (p->batch <= 0 || p->n_out <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int mr = sp_rows(p->batch);
    auto fn = SP_PICK(norm_gemv_kernel, mr, sp_vec(p->d, p->W, p->Wb), p->Wb != NULL);
    size_t sh;
    if (sp_smem(ctx, fn, p->d, mr, &sh)) return;
    MB_CUDA_CHECK(ctx, mb_cuda_launch(st, fn, sp_grid(st, fn, sh, p->n_out, p->batch, mr), dim3(SP_THREADS), sh, *p));
    MB_LAUNCH_CHECK(ctx, "norm_gemv_kernel");
}

/* SEG: the largest power of two <= 32 that divides d_state */
template <int SEG>
static cudaError_t sp_scan_launch(const mb_cuda_state *st, const mb_block_step_params *p, const float *xz,
                                  const float *xc, const float *dbc, float *y)
{
    const dim3 grid((unsigned)(((size_t)p->d_inner * SEG + SP_THREADS - 1) / SP_THREADS), (unsigned)p->batch);
    return mb_cuda_launch(st, split_scan_kernel<SEG>, grid, dim3(SP_THREADS), 0, *p, xz, xc, dbc, y);
}

/* the scan kernel: y from xz, xc and dbc; the states stepped, the conv's
 * shifted (the launch before must be split_x_kernel: see split_scan_kernel) */
static void sp_scan(mb_ctx *ctx, const mb_cuda_state *st, const mb_block_step_params *p, const float *xz,
                    const float *xc, const float *dbc, float *y)
{
    const int N = p->d_state;
    const int seg = N % 32 == 0 ? 32 : N % 16 == 0 ? 16 : N % 8 == 0 ? 8 : N % 4 == 0 ? 4 : N % 2 == 0 ? 2 : 1;
    cudaError_t err;
    switch (seg) {
    case 32: err = sp_scan_launch<32>(st, p, xz, xc, dbc, y); break;
    case 16: err = sp_scan_launch<16>(st, p, xz, xc, dbc, y); break;
    case 8: err = sp_scan_launch<8>(st, p, xz, xc, dbc, y); break;
    case 4: err = sp_scan_launch<4>(st, p, xz, xc, dbc, y); break;
    case 2: err = sp_scan_launch<2>(st, p, xz, xc, dbc, y); break;
    default: err = sp_scan_launch<1>(st, p, xz, xc, dbc, y); break;
    }
    MB_CUDA_CHECK(ctx, err);
    MB_LAUNCH_CHECK(ctx, "split_scan_kernel");
}

extern "C" void mb_block_step_split_cuda(MB_OPS_BLOCK_STEP_ARGS)
{
    const int B = p->batch, d = p->d_model, Di = p->d_inner, N = p->d_state;
    const int xd = p->dt_rank + 2 * (p->is_complex ? 2 * N : N);
    if (B <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (!ws) {
        mb_cuda_fail(ctx, "block_step_split", "the split step needs a workspace", __FILE__, __LINE__);
        return;
    }
    const size_t mark = ws->used;
    float *xz = mb_arena_floats(ws, (size_t)B * 2 * Di), *xc = mb_arena_floats(ws, (size_t)B * Di);
    float *dbc = mb_arena_floats(ws, (size_t)B * xd), *y = mb_arena_floats(ws, (size_t)B * Di);
    if (!xz || !xc || !dbc || !y) {
        mb_ctx_fail(ctx, "%s", mb_error_last()); /* a sizing bug: the arena said why */
        return;
    }
    const mb_norm_gemv_params in = {.batch = B, .d = d, .h = h, .tokens = p->tokens, .embed = p->embed,
                                    .norm_w = p->norm_w, .norm_b = p->norm_b, .eps = p->eps,
                                    .W = p->in_proj, .Wb = p->in_proj_bf16, .n_out = 2 * Di, .y = xz, .ldy = 2 * Di,
                                    .conv_dim = Di, .conv_k = p->d_conv, .conv_w = p->conv_w,
                                    .conv_b = p->conv_b, .conv_state = p->conv_state, .xc = xc};
    mb_norm_gemv_cuda(ctx, &in);

    const int mr = sp_rows(B);
    auto fx = SP_PICK(split_x_kernel, mr, sp_vec(Di, p->x_proj, p->x_proj_bf16), p->x_proj_bf16 != NULL);
    auto fo = SP_PICK(split_out_kernel, mr, sp_vec(Di, p->out_proj, p->out_proj_bf16), p->out_proj_bf16 != NULL);
    size_t shx, sho;
    if (sp_smem(ctx, fx, Di, mr, &shx) || sp_smem(ctx, fo, Di, mr, &sho)) return;
    const int ks = sp_x_split(st, xd, Di, (B + mr - 1) / mr);
    MB_CUDA_CHECK(ctx, mb_cuda_launch(st, fx, sp_grid(st, fx, shx, xd * ks, B, mr), dim3(SP_THREADS), shx, *p, xc, dbc, ks));
    MB_LAUNCH_CHECK(ctx, "split_x_kernel");

    sp_scan(ctx, st, p, xz, xc, dbc, y);

    MB_CUDA_CHECK(ctx, mb_cuda_launch(st, fo, sp_grid(st, fo, sho, d, B, mr), dim3(SP_THREADS), sho, *p, h, y, out));
    MB_LAUNCH_CHECK(ctx, "split_out_kernel");
    ws->used = mark;
}
