/* A stack of block steps on the GPU, every layer in ONE kernel, a cluster of
 * C thread blocks per few rows (compute 9.0+): the maths of
 * ops/stack_step.c (mb_block_step layer after layer).
 *
 * Why: a narrow model's step at batch 1 is latency. The DNA model (d_model
 * 256, 8 layers) ran ~35 dependent kernels a token (four split kernels a
 * layer, the head and the draw), 70 us on an H100, while its 13 MB of
 * weights stay in L2. Here block c of the cluster owns d_inner channels
 * [c CH, (c+1) CH), CH = 32: their rows of in_proj (x and z), their conv
 * and scan states, their columns of x_proj and out_proj; every block keeps
 * its own copy of the residual rows. A layer:
 *   1  RMSNorm of the residual (each block, redundantly), the block's
 *      in_proj rows, conv + SiLU: local
 *   2  x_proj's partial sums over the block's channels -> cluster barrier
 *      -> each block adds the C partials through distributed shared memory
 *   3  dt_proj and softplus once a (row, channel), by a team of threads;
 *      the scan and the gate: local (a channel's 16 states on 16
 *      neighbouring lanes)
 *   4  out_proj's partial sums -> cluster barrier -> each block adds the C
 *      partials to its residual
 * A cluster takes MR rows of the batch (1 at batch 1, else 4 or 8: each
 * block reads its weights once for all of them), so B rows are
 * ceil(B / MR) independent clusters. Two cluster barriers a layer. A
 * partial buffer is rewritten only after the next barrier, which every
 * reader of its old contents has passed. A thread holds in registers the
 * weights and states it reads in a layer (up to 255 registers, one block
 * an SM), each part loaded for the next layer after its last use in this
 * one (stk_regs); the norm's and dt_proj's weights, read by many threads,
 * go to shared memory by cp.async the same way. Profiled (session 30), a
 * layer is then a chain of ~1,400 instructions a warp, not a wait on L2.
 * Block 0 writes the last residual.
 *
 * Shapes: d_model 128 or 256, d_inner = 32 C for C in 4, 8, 16, d_state
 * 16, real A, RMSNorm, d_conv 2..4, dt_rank <= 64, no bf16 copies, up to
 * MB_STACK_STEP_MAX_LAYERS layers (mb_stack_step_fits); mb_stack_step runs
 * others layer by layer (ops/stack_step.c). AUTO takes it where it was
 * measured faster (mb_stack_step_prefers_cuda). To time it against the
 * layer-by-layer steps: MB_CUDA_STEP=cluster bench/bench_generate --device
 * cuda --shape dna, and MB_CUDA_STEP=fused or split. */
#include <cooperative_groups.h>

#include "core/cuda_util.h"
#include "ops/fused.cuh"
#include "ops/ops.h"

namespace cg = cooperative_groups;

#define STK_THREADS 256
#define STK_WARPS (STK_THREADS / 32)
#define STK_N 16       /* d_state */
#define STK_CH 32      /* channels a block */
#define STK_XD_MAX 96  /* dt_rank + 2 d_state, dt_rank <= 64 */
#define STK_OW ((STK_XD_MAX + STK_WARPS - 1) / STK_WARPS)
#define STK_RG 8       /* in_proj rows a warp loads at once */

/* one layer: its weights and its state (conv (K-1, Di), ssm (Di, N)) */
struct stk_layer {
    const float *norm_w, *in_proj, *conv_w, *conv_b, *x_proj, *dt_w, *dt_b, *A_log, *D, *out_proj;
    float *conv_state, *ssm_state;
};
struct stk_args {
    int n_layer, B, K, R;
    float eps;
    const int32_t *tokens; /* layer 0's rows: embed[tokens[b]], or h's */
    const float *embed, *h;
    float *out;
    stk_layer L[MB_STACK_STEP_MAX_LAYERS];
};

static __device__ __forceinline__ float stk_silu(float x) { return x / (1.f + expf(-x)); }
static __device__ __forceinline__ float stk_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

/* What a thread holds of one layer in registers, loaded by the stk_load_*
 * below. Each part is loaded for layer l + 1 after its last use in layer l
 * (the registers are free then, and the weights and states never depend
 * on the layer before), so its latency overlaps the rest of layer l rather
 * than heading layer l + 1. (Measured on an H100 against every load at the
 * layer's start: the same 9 us a layer at the DNA width, where the time is
 * the chain of instructions; kept, as it costs nothing.) */
template <int DQ, int MR>
struct stk_regs {
    static constexpr int SP = STK_CH * STK_N / STK_THREADS; /* scan pairs a thread */
    float4 wv[STK_RG][DQ];        /* in_proj: rows warp + g STK_WARPS of the block's 2 CH */
    float wx[STK_OW];             /* x_proj: outputs warp + u STK_WARPS, channel c0 + lane */
    float cw[4], cst[3], cb;      /* conv taps, state and bias of (row cm, channel cj) */
    float sA[SP], sD[SP], sh[SP][MR]; /* the scan's pairs */
    float4 wo[STK_CH / 4];        /* out_proj: output threadIdx.x, the block's channels */
};

/* in_proj rows r < CH: x rows c0 + r; r >= CH: z rows DI + c0 + r - CH */
template <int DQ, int MR>
static __device__ __forceinline__ void stk_load_in(stk_regs<DQ, MR> &q, const stk_layer &P, int DI, int c0, int warp,
                                                   int lane)
{
    static_assert(2 * STK_CH == STK_WARPS * STK_RG, "a warp's in_proj rows are one group");
#pragma unroll
    for (int g = 0; g < STK_RG; g++) {
        const int r = warp + g * STK_WARPS, row = r < STK_CH ? c0 + r : DI + c0 + (r - STK_CH);
        const float4 *wr = reinterpret_cast<const float4 *>(P.in_proj + (size_t)row * 128 * DQ);
#pragma unroll
        for (int k = 0; k < DQ; k++) q.wv[g][k] = wr[lane + 32 * k];
    }
}

template <int DQ, int MR>
static __device__ __forceinline__ void stk_load_x(stk_regs<DQ, MR> &q, const stk_layer &P, int DI, int XD, int c0,
                                                  int warp, int lane)
{
#pragma unroll
    for (int u = 0; u < STK_OW; u++) {
        const int o = warp + u * STK_WARPS;
        q.wx[u] = o < XD ? P.x_proj[(size_t)o * DI + c0 + lane] : 0.f;
    }
}

/* conv: taps, bias and the state of rows b0 + cm, channel ch (live) */
template <int DQ, int MR>
static __device__ __forceinline__ void stk_load_conv(stk_regs<DQ, MR> &q, const stk_layer &P, int DI, int K, int b0,
                                                     int cm, int ch, bool live)
{
    if (!live) return;
    const float *cs = P.conv_state + ((size_t)b0 + cm) * (K - 1) * DI; /* (B, K-1, Di) */
#pragma unroll
    for (int k = 0; k < 4; k++)
        if (k < K) q.cw[k] = P.conv_w[(size_t)ch * K + k];
#pragma unroll
    for (int k = 0; k < 3; k++)
        if (k < K - 1) q.cst[k] = cs[(size_t)k * DI + ch];
    q.cb = P.conv_b ? P.conv_b[ch] : 0.f;
}

/* the scan's (channel, state) pairs p = threadIdx.x + i STK_THREADS: A,
 * D and the states of the cluster's nm rows */
template <int DQ, int MR>
static __device__ __forceinline__ void stk_load_scan(stk_regs<DQ, MR> &q, const stk_layer &P, int DI, int b0, int nm,
                                                     int c0)
{
    const float *ss = P.ssm_state + (size_t)b0 * DI * STK_N; /* (B, Di, N) */
#pragma unroll
    for (int i = 0; i < stk_regs<DQ, MR>::SP; i++) {
        const int p = threadIdx.x + i * STK_THREADS, ch = c0 + p / STK_N, n = p % STK_N;
        q.sA[i] = -expf(P.A_log[(size_t)ch * STK_N + n]);
        q.sD[i] = P.D[ch];
#pragma unroll
        for (int m = 0; m < MR; m++) q.sh[i][m] = m < nm ? ss[((size_t)m * DI + ch) * STK_N + n] : 0.f;
    }
}

template <int DQ, int MR>
static __device__ __forceinline__ void stk_load_out(stk_regs<DQ, MR> &q, const stk_layer &P, int DI, int c0)
{
    static_assert(128 * DQ <= STK_THREADS, "an out_proj output a thread");
    if (threadIdx.x >= 128 * DQ) return;
    const float4 *wr = reinterpret_cast<const float4 *>(P.out_proj + (size_t)threadIdx.x * DI + c0);
#pragma unroll
    for (int j = 0; j < STK_CH / 4; j++) q.wo[j] = wr[j];
}

template <int C, int DQ, int MR>
static __global__ void __launch_bounds__(STK_THREADS) stack_step_kernel(const stk_args a)
{
    constexpr int D = 128 * DQ, CH = STK_CH, DI = C * CH;
    constexpr int SP = stk_regs<DQ, MR>::SP;
    static_assert(MR <= STK_WARPS && MR * CH <= STK_THREADS, "a warp a row's norm, a thread a row's channel");
    static_assert(CH * STK_N % STK_THREADS == 0, "whole scan pairs a thread");
    __shared__ __align__(16) float h[MR][D], xn[MR][D], y[MR][CH], nw[D], dtw[CH * (STK_XD_MAX - 2 * STK_N)], dtb[CH];
    __shared__ float dts[MR][CH];
    __shared__ float part_out[MR][D], xz[MR][2 * CH], xc[MR][CH], part_x[MR][STK_XD_MAX], dbc[MR][STK_XD_MAX];
    cg::cluster_group cl = cg::this_cluster();
    const int me = (int)cl.block_rank(), c0 = me * CH;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int K = a.K, R = a.R, XD = R + 2 * STK_N;
    /* the cluster's rows: b0 .. b0 + nm - 1 (rows past the batch compute
     * on zeros and store nothing) */
    const int b0 = (int)(blockIdx.x / C) * MR, nm = min(MR, a.B - b0);
    /* conv (threads < MR CH): row cm, channel c0 + cj */
    const int cm = threadIdx.x / CH, cj = threadIdx.x % CH;
    const bool conv_live = threadIdx.x < MR * CH && cm < nm;
    stk_regs<DQ, MR> q;
#pragma unroll
    for (int k = 0; k < 4; k++) q.cw[k] = 0.f;
#pragma unroll
    for (int k = 0; k < 3; k++) q.cst[k] = 0.f;
    q.cb = 0.f;

    /* Layer 0's weights before the wait (nothing writes them); the norm's
     * and dt_proj's weights into shared memory as two cp.async groups. The
     * groups stay in this order, one of each a layer (empty past the last):
     * a wait for all but the newest finds the older one complete. */
    mb_stage_async<STK_THREADS>(nw, a.L[0].norm_w, D);
    __pipeline_commit();
    mb_stage_async<STK_THREADS>(dtw, a.L[0].dt_w + (size_t)c0 * R, CH * R);
    mb_stage_async<STK_THREADS>(dtb, a.L[0].dt_b + c0, CH);
    __pipeline_commit();
    stk_load_in(q, a.L[0], DI, c0, warp, lane);
    stk_load_x(q, a.L[0], DI, XD, c0, warp, lane);
    stk_load_out(q, a.L[0], DI, c0);
    /* the rows and the states are the kernels' before this one */
    mb_pdl_wait();
    stk_load_conv(q, a.L[0], DI, K, b0, cm, c0 + cj, conv_live);
    stk_load_scan(q, a.L[0], DI, b0, nm, c0);
    for (int i = threadIdx.x; i < MR * D; i += STK_THREADS) {
        const int m = i / D, k = i - m * D;
        float v = 0.f;
        if (m < nm) v = a.tokens ? a.embed[(size_t)a.tokens[b0 + m] * D + k] : a.h[(size_t)(b0 + m) * D + k];
        h[m][k] = v;
    }
    __pipeline_wait_prior(1); /* the norm's weights */
    __syncthreads();
    for (int l = 0; l < a.n_layer; l++) {
        const stk_layer &P = a.L[l];
        const bool more = l + 1 < a.n_layer;
        const stk_layer &Pn = a.L[more ? l + 1 : l];

        /* 1: RMSNorm (warp m: row m), the block's in_proj rows, conv + SiLU */
        if (warp < MR) {
            const int m = warp;
            float ss = 0.f;
            for (int k = lane; k < D; k += 32) ss += h[m][k] * h[m][k];
            const float r = rsqrtf(mb_warp_sum(ss) / D + a.eps);
            for (int k = lane; k < D; k += 32) xn[m][k] = h[m][k] * r * nw[k];
        }
        __syncthreads();
        if (more) mb_stage_async<STK_THREADS>(nw, Pn.norm_w, D);
        __pipeline_commit();
#pragma unroll
        for (int g = 0; g < STK_RG; g++) {
#pragma unroll
            for (int m = 0; m < MR; m++) {
                const float4 *xv = reinterpret_cast<const float4 *>(xn[m]);
                float s = 0.f;
#pragma unroll
                for (int k = 0; k < DQ; k++) {
                    const float4 w4 = q.wv[g][k], x4 = xv[lane + 32 * k];
                    s += w4.x * x4.x + w4.y * x4.y + w4.z * x4.z + w4.w * x4.w;
                }
                s = mb_warp_sum(s);
                if (lane == 0) xz[m][warp + g * STK_WARPS] = s;
            }
        }
        if (more) stk_load_in(q, Pn, DI, c0, warp, lane);
        __syncthreads();
        if (threadIdx.x < MR * CH) {
            float v = 0.f;
            if (conv_live) {
                /* taps 0 .. K-2 on the state, K-1 on the newest input */
                float s = q.cb;
#pragma unroll
                for (int k = 0; k < 4; k++)
                    if (k < K - 1) s += q.cw[k] * q.cst[k];
                    else if (k == K - 1) s += q.cw[k] * xz[cm][cj];
                v = stk_silu(s);
            }
            xc[cm][cj] = v;
        }
        __syncthreads();
        /* 2: x_proj over the block's channels (lane: channel c0 + lane),
         * summed over the cluster */
#pragma unroll
        for (int u = 0; u < STK_OW; u++) {
            const int o = warp + u * STK_WARPS;
#pragma unroll
            for (int m = 0; m < MR; m++) {
                const float s = mb_warp_sum(q.wx[u] * xc[m][lane]);
                if (lane == 0 && o < XD) part_x[m][o] = s;
            }
        }
        cl.sync();
        /* The stores of the layer's states and the next layer's loads come
         * right after a cluster barrier, not before: the barrier's release
         * fence (MEMBAR.ALL.GPU in the SASS, 10% of the stall samples at
         * the DNA width) waits for the memory operations in flight, and
         * here they have half a layer to finish before the next one. The
         * conv state shifted by one, the newest input last: */
        if (conv_live) {
            const int ch = c0 + cj;
            float *cs = P.conv_state + ((size_t)b0 + cm) * (K - 1) * DI;
#pragma unroll
            for (int k = 0; k < 3; k++)
                if (k < K - 2) cs[(size_t)k * DI + ch] = q.cst[k + 1];
                else if (k == K - 2) cs[(size_t)k * DI + ch] = xz[cm][cj];
        }
        if (more) {
            stk_load_conv(q, Pn, DI, K, b0, cm, c0 + cj, conv_live);
            stk_load_x(q, Pn, DI, XD, c0, warp, lane);
        }
        for (int i = threadIdx.x; i < MR * XD; i += STK_THREADS) {
            const int m = i / XD, o = i - m * XD;
            float s = 0.f;
#pragma unroll 4
            for (int r = 0; r < C; r++) s += cl.map_shared_rank(&part_x[0][0], r)[m * STK_XD_MAX + o];
            dbc[m][o] = s;
        }
        __pipeline_wait_prior(1); /* dt_proj's weights */
        __syncthreads();
        /* 3a: delta of each (row, channel) once, TP threads a pair, each a
         * share of dt_rank, summed by shuffles. (Each of a channel's 16
         * state lanes had made the whole dot and the softplus: the scan
         * was the largest part of the kernel's ~1,400 instructions a warp
         * a layer, profiled at the DNA width.) */
        {
            constexpr int TP = STK_THREADS / (MR * CH);
            static_assert(TP * MR * CH == STK_THREADS && (TP & (TP - 1)) == 0, "a power-of-two team a pair");
            const int pr = threadIdx.x / TP, sub = threadIdx.x % TP, m = pr / CH, j = pr % CH;
            float v = 0.f;
            for (int k = sub; k < R; k += TP) v += dtw[j * R + k] * dbc[m][k];
#pragma unroll
            for (int o = TP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            if (sub == 0) dts[m][j] = stk_softplus(v + dtb[j]);
        }
        __syncthreads();
        /* 3b: the scan and the gate; (channel j, state n) on thread 16 j + n;
         * the new states stay in q.sh until after stage 4's barrier */
#pragma unroll
        for (int i = 0; i < SP; i++) {
            const int p = threadIdx.x + i * STK_THREADS, j = p / STK_N, n = p % STK_N;
#pragma unroll
            for (int m = 0; m < MR; m++) {
                const float dt = dts[m][j];
                const float hn = expf(dt * q.sA[i]) * q.sh[i][m] + dt * dbc[m][R + n] * xc[m][j];
                q.sh[i][m] = hn;
                float v = dbc[m][R + STK_N + n] * hn;
#pragma unroll
                for (int s = STK_N / 2; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
                if (n == 0) y[m][j] = (v + q.sD[i] * xc[m][j]) * stk_silu(xz[m][CH + j]);
            }
        }
        __syncthreads();
        if (more) {
            mb_stage_async<STK_THREADS>(dtw, Pn.dt_w + (size_t)c0 * R, CH * R);
            mb_stage_async<STK_THREADS>(dtb, Pn.dt_b + c0, CH);
        }
        __pipeline_commit();
        /* 4: out_proj over the block's channels, summed over the cluster
         * into the residual */
        if (threadIdx.x < D) {
#pragma unroll
            for (int m = 0; m < MR; m++) {
                const float4 *yv = reinterpret_cast<const float4 *>(y[m]);
                float s = 0.f;
#pragma unroll
                for (int j = 0; j < CH / 4; j++) {
                    const float4 w4 = q.wo[j], y4 = yv[j];
                    s += w4.x * y4.x + w4.y * y4.y + w4.z * y4.z + w4.w * y4.w;
                }
                part_out[m][threadIdx.x] = s;
            }
        }
        cl.sync();
        /* as after stage 2's barrier: the scan states, then the next layer's loads */
        float *ssm_state = P.ssm_state + (size_t)b0 * DI * STK_N;
#pragma unroll
        for (int i = 0; i < SP; i++) {
            const int p = threadIdx.x + i * STK_THREADS, ch = c0 + p / STK_N, n = p % STK_N;
#pragma unroll
            for (int m = 0; m < MR; m++)
                if (m < nm) ssm_state[((size_t)m * DI + ch) * STK_N + n] = q.sh[i][m];
        }
        if (more) {
            stk_load_scan(q, Pn, DI, b0, nm, c0);
            stk_load_out(q, Pn, DI, c0);
        }
        for (int i = threadIdx.x; i < MR * D; i += STK_THREADS) {
            float s = 0.f;
#pragma unroll 4
            for (int r = 0; r < C; r++) s += cl.map_shared_rank(&part_out[0][0], r)[i];
            h[i / D][i % D] += s;
        }
        __pipeline_wait_prior(1); /* the next layer's norm weights */
        __syncthreads();
    }
    if (me == 0)
        for (int i = threadIdx.x; i < nm * D; i += STK_THREADS) a.out[(size_t)b0 * D + i] = h[i / D][i % D];
    /* no block leaves while another may still read its shared memory */
    cl.sync();
}

/* rows a cluster takes: one at batch 1, else 4 or 8 (a warp a row's norm) */
static int stk_rows(int B) { return B == 1 ? 1 : B <= 4 ? 4 : 8; }

/* the launch attribute of clusters of C blocks along x */
static cudaLaunchAttribute stk_cluster_attr(int C)
{
    cudaLaunchAttribute at;
    at.id = cudaLaunchAttributeClusterDimension;
    at.val.clusterDim.x = C;
    at.val.clusterDim.y = 1;
    at.val.clusterDim.z = 1;
    return at;
}

/* Whether the device holds one cluster of C blocks of a kernel (16 is past
 * the portable size of 8: Hopper allows it where a GPC has 16 free SMs),
 * asked once per device and cached in known[] (0 not asked, 1 yes, -1 no);
 * the kernel's dynamic shared memory is opted into first. */
static bool stk_fits_dev(const mb_cuda_state *st, const void *kernel, int C, int threads, size_t smem, int *known)
{
    const int dev = st->device < 64 ? st->device : 63;
    if (!known[dev]) {
        cudaLaunchAttribute at[1] = {stk_cluster_attr(C)};
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(C);
        cfg.blockDim = dim3(threads);
        cfg.dynamicSmemBytes = smem;
        cfg.attrs = at;
        cfg.numAttrs = 1;
        int n = 0;
        cudaError_t e = cudaSuccess;
        if (C > 8) e = cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1);
        if (e == cudaSuccess && smem > 48 * 1024)
            e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e == cudaSuccess) e = cudaOccupancyMaxActiveClusters(&n, kernel, &cfg);
        if (e != cudaSuccess) (void)cudaGetLastError(); /* an answer, not a failure of the context */
        known[dev] = e == cudaSuccess && n >= 1 ? 1 : -1;
    }
    return known[dev] > 0;
}

/* a's rows on clusters of C blocks, `clusters` of them */
static cudaError_t stk_launch(const mb_cuda_state *st, const void *kernel, int C, int clusters, int threads,
                              size_t smem, const stk_args *a)
{
    cudaLaunchAttribute at[2] = {stk_cluster_attr(C), {}};
    at[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[1].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(C * clusters);
    cfg.blockDim = dim3(threads);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st->stream;
    cfg.attrs = at;
    cfg.numAttrs = st->pdl ? 2 : 1;
    void *args[1] = {const_cast<stk_args *>(a)};
    return cudaLaunchKernelExC(&cfg, kernel, args);
}

/* One instance of the kernel. With a: launch it over a.B rows (a cluster
 * of C blocks per MR rows), returning the launch's error. Without: whether
 * the device can hold one cluster of it; 1 yes, 0 no. */
template <int C, int DQ, int MR>
static int stk_go(const mb_cuda_state *st, const stk_args *a)
{
    const void *k = reinterpret_cast<const void *>(stack_step_kernel<C, DQ, MR>);
    static int known[64];
    if (!a) return stk_fits_dev(st, k, C, STK_THREADS, 0, known);
    return (int)stk_launch(st, k, C, (a->B + MR - 1) / MR, STK_THREADS, 0, a);
}

typedef int (*stk_fn)(const mb_cuda_state *, const stk_args *);
template <int C, int DQ>
static stk_fn stk_pick_rows(int MR)
{
    return MR == 1 ? stk_go<C, DQ, 1> : MR == 4 ? stk_go<C, DQ, 4> : stk_go<C, DQ, 8>;
}

/* ---- one row a cluster, 1,024 threads a block (MB_CUDA_STEP=cluster1) ---------
 * The same maths and the same split of the channels over the cluster's
 * blocks as stack_step_kernel, for one row, with four times the warps:
 * profiled at the DNA width, that kernel was a chain of ~1,400 dependent
 * instructions a warp a layer at 8 warps an SM. Here a warp takes 2 of the
 * 64 in_proj rows (8 there), 1-3 of x_proj's outputs (12), one channel's
 * delta, and the sums over the cluster are split over all threads. The
 * weights cannot sit in 64 registers a thread: they are staged in shared
 * memory by cp.async, the next layer's while this one runs (x_proj,
 * out_proj, dt_proj, the norm, conv, A and D double-buffered from the
 * layer's start; in_proj single, refilled once this layer's rows are
 * read). The conv and scan states stay in registers. Experimental: only
 * MB_CUDA_STEP=cluster1 takes it, until measured. */
#define STK1_THREADS 1024

/* floats of the dynamic shared memory: in_proj's rows, two of the rest,
 * then the activations */
template <int DQ>
struct stk1_layout {
    static constexpr int D = 128 * DQ, CH = STK_CH;
    static constexpr int IN = 2 * CH * D;
    static constexpr int RX = 0, ROUT = RX + STK_XD_MAX * CH, RDT = ROUT + D * CH,
                         RNW = RDT + CH * (STK_XD_MAX - 2 * STK_N), RCW = RNW + D, RCB = RCW + CH * 4,
                         RDTB = RCB + CH, RAL = RDTB + CH, RDD = RAL + CH * STK_N, RS = RDD + CH;
    static constexpr int ACT = 3 * D + 2 * CH + 2 * CH + 2 * STK_XD_MAX + CH;
    static constexpr size_t BYTES = (size_t)(IN + 2 * RS + ACT) * sizeof(float);
    static_assert(RS % 4 == 0 && IN % 4 == 0, "16-byte parts");
};

/* rows x CH floats at src (rows ld apart) -> dst (CH a row), 16 bytes a copy */
static __device__ __forceinline__ void stk1_stage_rows(float *dst, const float *src, int ld, int rows)
{
    constexpr int Q = STK_CH / 4;
#pragma unroll 1
    for (int i = threadIdx.x; i < rows * Q; i += STK1_THREADS) {
        const int r = i / Q, c = (i - r * Q) * 4;
        __pipeline_memcpy_async(dst + r * STK_CH + c, src + (size_t)r * ld + c, 16);
    }
}

template <int C, int DQ>
static __global__ void __launch_bounds__(STK1_THREADS, 1) stack_step1_kernel(const stk_args a)
{
    typedef stk1_layout<DQ> Y;
    constexpr int D = Y::D, CH = STK_CH, N = STK_N, DI = C * CH, NT = STK1_THREADS;
    static_assert(NT / 32 == CH && NT % D == 0 && CH * N <= NT, "a warp a channel's delta; whole teams an output");
    extern __shared__ float4 stk1_sh4[];
    float *const win = reinterpret_cast<float *>(stk1_sh4), *const rest0 = win + Y::IN;
    float *const h = rest0 + 2 * Y::RS, *const xn = h + D, *const part_out = xn + D, *const xz = part_out + D;
    float *const xc = xz + 2 * CH, *const y = xc + CH, *const part_x = y + CH, *const dbc = part_x + STK_XD_MAX;
    float *const dts = dbc + STK_XD_MAX;
    cg::cluster_group cl = cg::this_cluster();
    const int me = (int)cl.block_rank(), c0 = me * CH;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int K = a.K, R = a.R, XD = R + 2 * N;
    const int b = (int)(blockIdx.x / C); /* the cluster's row */

    auto stage_rest = [&](const stk_layer &P, float *r) {
        stk1_stage_rows(r + Y::RX, P.x_proj + c0, DI, XD);
        stk1_stage_rows(r + Y::ROUT, P.out_proj + c0, DI, D);
        mb_stage_async<NT>(r + Y::RDT, P.dt_w + (size_t)c0 * R, CH * R);
        mb_stage_async<NT>(r + Y::RNW, P.norm_w, D);
        mb_stage_async<NT>(r + Y::RCW, P.conv_w + (size_t)c0 * K, CH * K);
        if (P.conv_b) mb_stage_async<NT>(r + Y::RCB, P.conv_b + c0, CH);
        mb_stage_async<NT>(r + Y::RDTB, P.dt_b + c0, CH);
        mb_stage_async<NT>(r + Y::RAL, P.A_log + (size_t)c0 * N, CH * N);
        mb_stage_async<NT>(r + Y::RDD, P.D + c0, CH);
    };
    auto stage_in = [&](const stk_layer &P) {
        mb_stage_async<NT>(win, P.in_proj + (size_t)c0 * D, CH * D);
        mb_stage_async<NT>(win + CH * D, P.in_proj + (size_t)(DI + c0) * D, CH * D);
    };
    /* the layer's states: (channel tid / N, state tid % N) for tid < CH N;
     * the conv's K-1 taps of channel tid for tid < CH */
    float hst = 0.f, cst[3] = {0.f, 0.f, 0.f};
    auto load_states = [&](const stk_layer &P) {
        if (tid < CH * N) hst = P.ssm_state[((size_t)b * DI + c0 + tid / N) * N + tid % N];
        if (tid < CH) {
#pragma unroll
            for (int k = 0; k < 3; k++)
                if (k < K - 1) cst[k] = P.conv_state[((size_t)b * (K - 1) + k) * DI + c0 + tid];
        }
    };

    /* layer 0's weights before the wait (nothing writes them) */
    stage_rest(a.L[0], rest0);
    stage_in(a.L[0]);
    __pipeline_commit();
    mb_pdl_wait(); /* the row and the states are the kernels' before this one */
    load_states(a.L[0]);
    for (int i = tid; i < D; i += NT) h[i] = a.tokens ? a.embed[(size_t)a.tokens[b] * D + i] : a.h[(size_t)b * D + i];
    for (int l = 0; l < a.n_layer; l++) {
        const stk_layer &P = a.L[l];
        const bool more = l + 1 < a.n_layer;
        const stk_layer &Pn = a.L[more ? l + 1 : l];
        const float *rs = rest0 + (l & 1) * Y::RS;
        __pipeline_wait_prior(0); /* this layer's weights */
        __syncthreads();
        if (more) stage_rest(Pn, rest0 + ((l + 1) & 1) * Y::RS);
        __pipeline_commit();

        /* 1: RMSNorm: warps 0 .. D/32-1 each sum the squares, thread t < D
         * norms element t */
        if (tid < D) {
            float ss = 0.f;
            for (int k = lane; k < D; k += 32) ss += h[k] * h[k];
            const float r = rsqrtf(mb_warp_sum(ss) / D + a.eps);
            xn[tid] = h[tid] * r * rs[Y::RNW + tid];
        }
        __syncthreads();
        /* 2: in_proj, rows warp and warp + 32 (x rows, then z rows) */
        for (int rr = warp; rr < 2 * CH; rr += NT / 32) {
            const float4 *wr = reinterpret_cast<const float4 *>(win + rr * D), *xv = reinterpret_cast<const float4 *>(xn);
            float s = 0.f;
#pragma unroll
            for (int q = 0; q < DQ; q++) {
                const float4 w4 = wr[lane + 32 * q], x4 = xv[lane + 32 * q];
                s += w4.x * x4.x + w4.y * x4.y + w4.z * x4.z + w4.w * x4.w;
            }
            s = mb_warp_sum(s);
            if (lane == 0) xz[rr] = s;
        }
        __syncthreads();
        if (more) stage_in(Pn);
        __pipeline_commit();
        /* 3: conv + SiLU of channel tid */
        if (tid < CH) {
            const float *cw = rs + Y::RCW + tid * K;
            float s = P.conv_b ? rs[Y::RCB + tid] : 0.f;
#pragma unroll
            for (int k = 0; k < 3; k++)
                if (k < K - 1) s += cw[k] * cst[k];
            s += cw[K - 1] * xz[tid];
            xc[tid] = stk_silu(s);
        }
        __syncthreads();
        /* 4: x_proj's partial sums over the block's channels: outputs warp,
         * warp + 32, ... (lane: channel) */
        for (int o = warp; o < XD; o += NT / 32) {
            const float v = mb_warp_sum(rs[Y::RX + o * CH + lane] * xc[lane]);
            if (lane == 0) part_x[o] = v;
        }
        cl.sync();
        /* after the barrier (its release fence waits on memory in flight):
         * the conv state shifted by one, then the next layer's taps */
        if (tid < CH) {
            float *cs = P.conv_state + (size_t)b * (K - 1) * DI + c0 + tid;
#pragma unroll
            for (int k = 0; k < 3; k++)
                if (k < K - 2) cs[(size_t)k * DI] = cst[k + 1];
                else if (k == K - 2) cs[(size_t)k * DI] = xz[tid];
            if (more) {
#pragma unroll
                for (int k = 0; k < 3; k++)
                    if (k < K - 1) cst[k] = Pn.conv_state[((size_t)b * (K - 1) + k) * DI + c0 + tid];
            }
        }
        /* dbc: output i / C from rank i % C, the C parts summed over C
         * neighbouring lanes (whole warps each pass) */
        for (int i0 = 0; i0 < XD * C; i0 += NT) {
            const int i = i0 + tid, o = i / C, r = i % C;
            float v = o < XD ? cl.map_shared_rank(part_x, r)[o] : 0.f;
#pragma unroll
            for (int sh = C / 2; sh > 0; sh >>= 1) v += __shfl_xor_sync(0xffffffffu, v, sh);
            if (r == 0 && o < XD) dbc[o] = v;
        }
        __syncthreads();
        /* 5: delta of channel `warp`, its dt_rank over the lanes */
        {
            float v = 0.f;
            for (int k = lane; k < R; k += 32) v += rs[Y::RDT + warp * R + k] * dbc[k];
            v = mb_warp_sum(v);
            if (lane == 0) dts[warp] = stk_softplus(v + rs[Y::RDTB + warp]);
        }
        __syncthreads();
        /* 6: the scan and the gate, (channel j, state n) on thread N j + n */
        if (tid < CH * N) {
            const int j = tid / N, n = tid % N;
            const float dt = dts[j], A = -expf(rs[Y::RAL + j * N + n]);
            hst = expf(dt * A) * hst + dt * dbc[R + n] * xc[j];
            float v = dbc[R + N + n] * hst;
#pragma unroll
            for (int sh = N / 2; sh > 0; sh >>= 1) v += __shfl_xor_sync(0xffffffffu, v, sh);
            if (n == 0) y[j] = (v + rs[Y::RDD + j] * xc[j]) * stk_silu(xz[CH + j]);
        }
        __syncthreads();
        /* 7: out_proj's partial sums: TPO threads an output, CH / TPO
         * channels each */
        {
            constexpr int TPO = NT / D, CPT = CH / TPO;
            const int o = tid / TPO, q = tid % TPO;
            const float *w = rs + Y::ROUT + o * CH + q * CPT;
            float v = 0.f;
#pragma unroll
            for (int c = 0; c < CPT; c++) v += w[c] * y[q * CPT + c];
#pragma unroll
            for (int sh = TPO / 2; sh > 0; sh >>= 1) v += __shfl_xor_sync(0xffffffffu, v, sh);
            if (q == 0) part_out[o] = v;
        }
        cl.sync();
        /* the scan state, then the next layer's */
        if (tid < CH * N) {
            const size_t at = ((size_t)b * DI + c0 + tid / N) * N + tid % N;
            P.ssm_state[at] = hst;
            if (more) hst = Pn.ssm_state[at];
        }
        /* the residual += the cluster's parts: TPO threads an output, each
         * a share of the ranks */
        {
            constexpr int TPO = NT / D;
            const int o = tid / TPO, q = tid % TPO;
            float v = 0.f;
            for (int r = q; r < C; r += TPO) v += cl.map_shared_rank(part_out, r)[o];
#pragma unroll
            for (int sh = TPO / 2; sh > 0; sh >>= 1) v += __shfl_xor_sync(0xffffffffu, v, sh);
            if (q == 0) h[o] += v;
        }
    }
    __syncthreads();
    if (me == 0)
        for (int i = tid; i < D; i += NT) a.out[(size_t)b * D + i] = h[i];
    /* no block leaves while another may still read its shared memory */
    cl.sync();
}

template <int C, int DQ>
static int stk1_go(const mb_cuda_state *st, const stk_args *a)
{
    const void *k = reinterpret_cast<const void *>(stack_step1_kernel<C, DQ>);
    static int known[64];
    if (!a) return stk_fits_dev(st, k, C, STK1_THREADS, stk1_layout<DQ>::BYTES, known);
    return (int)stk_launch(st, k, C, a->B, STK1_THREADS, stk1_layout<DQ>::BYTES, a);
}

/* the kernel instance for these shapes, NULL: it does not run them */
static stk_fn stk_pick(const mb_cuda_state *st, int n_layer, const mb_block_step_params *layer)
{
    if (st->cc_major < 9 || n_layer < 1 || n_layer > MB_STACK_STEP_MAX_LAYERS) return NULL;
    const mb_block_step_params *p0 = &layer[0];
    const int d = p0->d_model, di = p0->d_inner, B = p0->batch;
    if ((d != 128 && d != 256) || di % STK_CH || B < 1) return NULL;
    const int C = di / STK_CH;
    if (C != 4 && C != 8 && C != 16) return NULL;
    for (int l = 0; l < n_layer; l++) {
        const mb_block_step_params *p = &layer[l];
        if (p->batch != B || p->d_model != d || p->d_inner != di || p->d_state != STK_N || p->is_complex ||
            p->norm_b || p->d_conv < 2 || p->d_conv > 4 || p->dt_rank < 1 || p->dt_rank + 2 * STK_N > STK_XD_MAX ||
            p->d_conv != p0->d_conv || p->dt_rank != p0->dt_rank || p->eps != p0->eps)
            return NULL;
        if (p->in_proj_bf16 || p->x_proj_bf16 || p->out_proj_bf16 || p->ld_out || p->out2 || (l > 0 && p->tokens))
            return NULL;
    }
    const int DQ = d / 128, MR = stk_rows(B);
    stk_fn fn;
    if (st->step_path == MB_STEP_CLUSTER1) {
        /* 16-byte copies of the weights into shared memory */
        for (int l = 0; l < n_layer; l++) {
            const mb_block_step_params *p = &layer[l];
            const void *w[] = {p->in_proj, p->x_proj, p->out_proj, p->dt_w, p->norm_w, p->conv_w, p->dt_b, p->A_log,
                               p->D, p->conv_b};
            for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
                if (reinterpret_cast<uintptr_t>(w[i]) & 15) return NULL;
        }
        fn = C == 16 ? (DQ == 2 ? stk1_go<16, 2> : stk1_go<16, 1>)
             : C == 8 ? (DQ == 2 ? stk1_go<8, 2> : stk1_go<8, 1>)
                      : (DQ == 2 ? stk1_go<4, 2> : stk1_go<4, 1>);
    } else {
        fn = C == 16 ? (DQ == 2 ? stk_pick_rows<16, 2>(MR) : stk_pick_rows<16, 1>(MR))
             : C == 8 ? (DQ == 2 ? stk_pick_rows<8, 2>(MR) : stk_pick_rows<8, 1>(MR))
                      : (DQ == 2 ? stk_pick_rows<4, 2>(MR) : stk_pick_rows<4, 1>(MR));
    }
    return fn(st, NULL) ? fn : NULL;
}

/* MB_CUDA_STEP=grid asks for the other one-kernel stack: the split
 * kernels' bodies under grid barriers (ops/block_step_split.cu) */
extern "C" int mb_stack_step_fits_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (st && st->step_path == MB_STEP_GRID) return mb_stack_step_grid_fits_cuda(ctx, n_layer, layer);
    return st && stk_pick(st, n_layer, layer) != NULL;
}

/* MB_CUDA_STEP=cluster: wherever it runs. AUTO: one row of a d_model-128
 * model of up to 256 inner channels (mamba-dna's default, d128 x 4), where
 * it was measured faster than AUTO's steps layer by layer: 35 us a token
 * against 58 on an H100 (bench_generate --shape small, session 30). The
 * DNA model (d256, 16 blocks a cluster) took 76 us against 72, and
 * clusters of 4 and 8 rows were 1.4x and 2x slower than layer by layer:
 * the kernel is a chain of ~1,400 dependent instructions a warp a layer
 * (8 warps an SM), not a wait on memory. */
extern "C" int mb_stack_step_prefers_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st || n_layer < 1) return 0;
    const int step = st->step_path;
    if (step == MB_STEP_GRID) return mb_stack_step_grid_fits_cuda(ctx, n_layer, layer);
    const bool auto_fits = step == MB_STEP_AUTO && layer[0].batch == 1 && layer[0].d_model == 128 &&
                           layer[0].d_inner <= 8 * STK_CH;
    return (step == MB_STEP_CLUSTER || step == MB_STEP_CLUSTER1 || auto_fits) && stk_pick(st, n_layer, layer) != NULL;
}

extern "C" int mb_stack_step_cuda(MB_OPS_STACK_STEP_ARGS)
{
    (void)ws;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return 0; /* the context has failed: nothing to fall back to */
    if (st->step_path == MB_STEP_GRID) return mb_stack_step_grid_cuda(ctx, n_layer, layer, h, out, ws);
    const stk_fn fn = stk_pick(st, n_layer, layer);
    if (!fn) return 1;
    const mb_block_step_params *p0 = &layer[0];
    stk_args a = {};
    a.n_layer = n_layer, a.B = p0->batch, a.K = p0->d_conv, a.R = p0->dt_rank;
    a.eps = p0->eps, a.tokens = p0->tokens, a.embed = p0->embed, a.h = h, a.out = out;
    for (int l = 0; l < n_layer; l++) {
        const mb_block_step_params *p = &layer[l];
        a.L[l] = {p->norm_w, p->in_proj, p->conv_w, p->conv_b, p->x_proj, p->dt_w, p->dt_b, p->A_log,
                  p->D,      p->out_proj, p->conv_state, p->ssm_state};
    }
    MB_CUDA_CHECK_RET(ctx, (cudaError_t)fn(st, &a), 0);
    MB_LAUNCH_CHECK_RET(ctx, "stack_step_kernel", 0);
    return 0;
}
