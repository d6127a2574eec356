/* A prototype, measured before it is built into the library (issue 15): the
 * DNA model's whole recurrent step at batch 1 (d_model 256, d_inner 512,
 * d_state 16, dt_rank 16, conv 4, 8 layers, vocab 16) as ONE kernel on one
 * cluster of C thread blocks, against the ~35 dependent kernels a token of
 * the split step (70 us on an H100; issue 15's target is 40 us).
 *
 * Block c owns d_inner channels [c CH, (c+1) CH), CH = 512 / C: their rows
 * of in_proj (x and z), their conv and scan states, their columns of
 * x_proj and out_proj. Every block keeps its own copy of the residual. A
 * layer:
 *   1  RMSNorm of the residual (each block, redundantly), in_proj rows,
 *      conv + SiLU: all local
 *   2  x_proj partial sums over the block's channels -> cluster barrier ->
 *      each block sums the C partials through distributed shared memory
 *   3  dt_proj, softplus, the scan, the gate: local
 *   4  out_proj partial sums -> cluster barrier -> each block adds the C
 *      partials to its residual
 * so two barriers a layer and one a token (the draw's broadcast, modelled
 * by a barrier). Shared partial buffers are safe to rewrite: a block
 * writes one only after the next barrier, which every reader of the old
 * contents has passed.
 *
 * Random weights (the library's init scales), tokens fed in (no draw). The
 * logits are checked against a double-precision CPU step of the same
 * weights, then tokens/s timed: one launch a token from a graph, and all
 * tokens in one launch. Prints a table; no pass/fail.
 *
 *   bench_cluster_step [--tokens N] */
#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace cg = cooperative_groups;

#define CS_CHECK(call)                                                                                  \
    do {                                                                                                \
        cudaError_t e_ = (call);                                                                        \
        if (e_ != cudaSuccess) {                                                                        \
            fprintf(stderr, "bench_cluster_step: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,          \
                    cudaGetErrorString(e_));                                                            \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)

enum { CD = 256, CDI = 512, CN = 16, CR = 16, CK = 4, CL = 8, CV = 16, CXD = CR + 2 * CN, CT = 256 };

/* one layer's weights, offsets in floats into the layer's slab */
enum {
    OFF_NORM = 0,
    OFF_IN = OFF_NORM + CD,            /* (2 DI, D) */
    OFF_CW = OFF_IN + 2 * CDI * CD,    /* (DI, K) */
    OFF_CB = OFF_CW + CDI * CK,        /* (DI) */
    OFF_XP = OFF_CB + CDI,             /* (R + 2N, DI) */
    OFF_DT = OFF_XP + CXD * CDI,       /* (DI, R) */
    OFF_DTB = OFF_DT + CDI * CR,       /* (DI) */
    OFF_A = OFF_DTB + CDI,             /* (DI, N): A = -exp(A_log), precomputed */
    OFF_DS = OFF_A + CDI * CN,         /* (DI) */
    OFF_OUT = OFF_DS + CDI,            /* (D, DI) */
    LAYER_FLOATS = OFF_OUT + CD * CDI
};
/* the model after the layers: embedding (V, D), final norm (D), head tied */
enum { OFF_EMB = CL * LAYER_FLOATS, OFF_NF = OFF_EMB + CV * CD, MODEL_FLOATS = OFF_NF + CD };
/* the recurrent state of a layer: conv (K-1, DI), then ssm (DI, N) */
enum { ST_CONV = 0, ST_SSM = (CK - 1) * CDI, STATE_FLOATS = ST_SSM + CDI * CN };

static __device__ __forceinline__ float cs_silu(float x) { return x / (1.f + __expf(-x)); }
static __device__ __forceinline__ float cs_softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }

static __device__ __forceinline__ float cs_block_sum(float v, float *red)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    __syncthreads();
    if (l == 0) red[w] = v;
    __syncthreads();
    float s = 0.f;
    for (int i = 0; i < CT / 32; i++) s += red[i];
    return s;
}

/* RMSNorm of h (D floats, shared) into xn (shared) */
static __device__ __forceinline__ void cs_norm(const float *h, const float *w, float *xn, float *red)
{
    float ss = 0.f;
    for (int i = threadIdx.x; i < CD; i += CT) ss += h[i] * h[i];
    const float r = rsqrtf(cs_block_sum(ss, red) / CD + 1e-5f);
    for (int i = threadIdx.x; i < CD; i += CT) xn[i] = h[i] * r * w[i];
    __syncthreads();
}

template <int C>
__global__ void __launch_bounds__(CT) cs_step(const float *__restrict__ M, float *S, const int32_t *tok, int ntok,
                                              float *logits)
{
    constexpr int CH = CDI / C;
    __shared__ __align__(16) float h[CD], xn[CD], part_out[CD];
    __shared__ __align__(16) float y[CH]; /* read as float4 by out_proj */
    __shared__ float xz[2 * CH], xc[CH], part_x[CXD], dbc[CXD], red[32];
    __shared__ int tok_sh;
    cg::cluster_group cl = cg::this_cluster();
    const int me = (int)cl.block_rank(), c0 = me * CH;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

    for (int t = 0; t < ntok; t++) {
        if (threadIdx.x == 0) tok_sh = tok[t];
        __syncthreads();
        for (int i = threadIdx.x; i < CD; i += CT) h[i] = M[OFF_EMB + (size_t)tok_sh * CD + i];
        __syncthreads();
        for (int l = 0; l < CL; l++) {
            const float *W = M + (size_t)l * LAYER_FLOATS;
            float *st = S + (size_t)l * STATE_FLOATS;
            /* 1: norm, the block's in_proj rows (x rows c0.., z rows DI + c0..), conv + SiLU */
            cs_norm(h, W + OFF_NORM, xn, red);
            /* a warp's rows RG at a time, every load issued before any
             * sum: one L2 latency a group, not one a row */
            constexpr int RG = 8, NW = CT / 32;
            for (int r0 = warp; r0 < 2 * CH; r0 += NW * RG) {
                float4 wv[RG][CD / 128];
#pragma unroll
                for (int g = 0; g < RG; g++) {
                    const int r = r0 + g * NW, row = r < CH ? c0 + r : CDI + c0 + (r - CH);
                    const float4 *wr = reinterpret_cast<const float4 *>(W + OFF_IN + (size_t)row * CD);
#pragma unroll
                    for (int q = 0; q < CD / 128; q++) wv[g][q] = wr[lane + 32 * q];
                }
                const float4 *xv = reinterpret_cast<const float4 *>(xn);
#pragma unroll
                for (int g = 0; g < RG; g++) {
                    float a = 0.f;
#pragma unroll
                    for (int q = 0; q < CD / 128; q++) {
                        const float4 w4 = wv[g][q], x4 = xv[lane + 32 * q];
                        a += w4.x * x4.x + w4.y * x4.y + w4.z * x4.z + w4.w * x4.w;
                    }
                    for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
                    if (lane == 0) xz[r0 + g * NW] = a;
                }
            }
            __syncthreads();
            for (int j = threadIdx.x; j < CH; j += CT) {
                const int ch = c0 + j;
                const float *cw = W + OFF_CW + (size_t)ch * CK;
                float a = W[OFF_CB + ch] + cw[CK - 1] * xz[j];
                for (int k = 0; k < CK - 1; k++) a += cw[k] * st[ST_CONV + k * CDI + ch];
                for (int k = 0; k < CK - 2; k++) st[ST_CONV + k * CDI + ch] = st[ST_CONV + (k + 1) * CDI + ch];
                st[ST_CONV + (CK - 2) * CDI + ch] = xz[j];
                xc[j] = cs_silu(a);
            }
            __syncthreads();
            /* 2: x_proj over the block's channels, summed over the cluster */
            {
                constexpr int OW = CXD / NW, JL = CH / 32; /* outputs a warp, loads a lane an output */
                static_assert(CXD % NW == 0 && CH % 32 == 0, "x_proj split");
                float wx[OW][JL];
#pragma unroll
                for (int u = 0; u < OW; u++)
#pragma unroll
                    for (int q = 0; q < JL; q++) wx[u][q] = W[OFF_XP + (size_t)(warp + u * NW) * CDI + c0 + lane + 32 * q];
#pragma unroll
                for (int u = 0; u < OW; u++) {
                    float a = 0.f;
#pragma unroll
                    for (int q = 0; q < JL; q++) a += wx[u][q] * xc[lane + 32 * q];
                    for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
                    if (lane == 0) part_x[warp + u * NW] = a;
                }
            }
            cl.sync();
            if (threadIdx.x < CXD) {
                float a = 0.f;
                for (int r = 0; r < C; r++) a += cl.map_shared_rank(part_x, r)[threadIdx.x];
                dbc[threadIdx.x] = a;
            }
            __syncthreads();
            /* 3: dt, the scan and the gate; a channel's N states on N neighbouring lanes */
            for (int p = threadIdx.x; p < CH * CN; p += CT) {
                const int j = p / CN, n = p % CN, ch = c0 + j;
                float d = W[OFF_DTB + ch];
#pragma unroll
                for (int k = 0; k < CR; k++) d += W[OFF_DT + (size_t)ch * CR + k] * dbc[k];
                const float dt = cs_softplus(d);
                float *hs = st + ST_SSM + (size_t)ch * CN + n;
                const float hn = __expf(dt * W[OFF_A + (size_t)ch * CN + n]) * *hs + dt * dbc[CR + n] * xc[j];
                *hs = hn;
                float v = dbc[CR + CN + n] * hn;
                for (int s = CN / 2; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);
                if (n == 0) y[j] = (v + W[OFF_DS + ch] * xc[j]) * cs_silu(xz[CH + j]);
            }
            __syncthreads();
            /* 4: out_proj over the block's channels, summed over the cluster into h */
            for (int i = threadIdx.x; i < CD; i += CT) {
                const float4 *wr = reinterpret_cast<const float4 *>(W + OFF_OUT + (size_t)i * CDI + c0);
                const float4 *yv = reinterpret_cast<const float4 *>(y);
                float a = 0.f;
#pragma unroll 8
                for (int j = 0; j < CH / 4; j++) {
                    const float4 w4 = wr[j], y4 = yv[j];
                    a += w4.x * y4.x + w4.y * y4.y + w4.z * y4.z + w4.w * y4.w;
                }
                part_out[i] = a;
            }
            cl.sync();
            for (int i = threadIdx.x; i < CD; i += CT) {
                float a = 0.f;
                for (int r = 0; r < C; r++) a += cl.map_shared_rank(part_out, r)[i];
                h[i] += a;
            }
            __syncthreads();
        }
        /* the head (tied to the embedding) on block 0; the draw's broadcast
         * would cost one more barrier */
        if (me == 0) {
            cs_norm(h, M + OFF_NF, xn, red);
            for (int v = warp; v < CV; v += CT / 32) {
                float a = 0.f;
                for (int j = lane; j < CD; j += 32) a += M[OFF_EMB + (size_t)v * CD + j] * xn[j];
                for (int s = 16; s > 0; s >>= 1) a += __shfl_xor_sync(0xffffffffu, a, s);
                if (lane == 0) logits[(size_t)t * CV + v] = a;
            }
        }
        cl.sync();
    }
}

/* ---- the CPU reference, in double ----------------------------------------- */

static void cpu_steps(const float *M, double *S, const int32_t *tok, int ntok, double *logits)
{
    double h[CD], xn[CD], xz[2 * CDI], xc[CDI], y[CDI], dbc[CXD];
    for (int t = 0; t < ntok; t++) {
        for (int i = 0; i < CD; i++) h[i] = M[OFF_EMB + (size_t)tok[t] * CD + i];
        for (int l = 0; l < CL + 1; l++) {
            const float *W = M + (size_t)l * LAYER_FLOATS;
            const float *nw = l < CL ? W + OFF_NORM : M + OFF_NF;
            double ss = 0;
            for (int i = 0; i < CD; i++) ss += h[i] * h[i];
            const double r = 1.0 / sqrt(ss / CD + 1e-5);
            for (int i = 0; i < CD; i++) xn[i] = h[i] * r * nw[i];
            if (l == CL) break;
            double *st = S + (size_t)l * STATE_FLOATS;
            for (int o = 0; o < 2 * CDI; o++) {
                double a = 0;
                for (int i = 0; i < CD; i++) a += (double)W[OFF_IN + (size_t)o * CD + i] * xn[i];
                xz[o] = a;
            }
            for (int ch = 0; ch < CDI; ch++) {
                const float *cw = W + OFF_CW + (size_t)ch * CK;
                double a = W[OFF_CB + ch] + cw[CK - 1] * xz[ch];
                for (int k = 0; k < CK - 1; k++) a += cw[k] * st[ST_CONV + k * CDI + ch];
                for (int k = 0; k < CK - 2; k++) st[ST_CONV + k * CDI + ch] = st[ST_CONV + (k + 1) * CDI + ch];
                st[ST_CONV + (CK - 2) * CDI + ch] = xz[ch];
                xc[ch] = a / (1 + exp(-a));
            }
            for (int o = 0; o < CXD; o++) {
                double a = 0;
                for (int ch = 0; ch < CDI; ch++) a += (double)W[OFF_XP + (size_t)o * CDI + ch] * xc[ch];
                dbc[o] = a;
            }
            for (int ch = 0; ch < CDI; ch++) {
                double d = W[OFF_DTB + ch];
                for (int k = 0; k < CR; k++) d += (double)W[OFF_DT + (size_t)ch * CR + k] * dbc[k];
                const double dt = d > 20 ? d : log1p(exp(d));
                double v = 0;
                for (int n = 0; n < CN; n++) {
                    double *hs = st + ST_SSM + (size_t)ch * CN + n;
                    *hs = exp(dt * W[OFF_A + (size_t)ch * CN + n]) * *hs + dt * dbc[CR + n] * xc[ch];
                    v += dbc[CR + CN + n] * *hs;
                }
                const double z = xz[CDI + ch];
                y[ch] = (v + W[OFF_DS + ch] * xc[ch]) * z / (1 + exp(-z));
            }
            for (int i = 0; i < CD; i++) {
                double a = 0;
                for (int ch = 0; ch < CDI; ch++) a += (double)W[OFF_OUT + (size_t)i * CDI + ch] * y[ch];
                h[i] += a;
            }
        }
        for (int v = 0; v < CV; v++) {
            double a = 0;
            for (int j = 0; j < CD; j++) a += (double)M[OFF_EMB + (size_t)v * CD + j] * xn[j];
            logits[(size_t)t * CV + v] = a;
        }
    }
}

/* ---- driver ------------------------------------------------------------------ */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static float cs_uniform(float lo, float hi) /* splitmix64 */
{
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((z >> 40) * (1.0 / 16777216.0));
}

static void fill(float *p, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) p[i] = cs_uniform(lo, hi);
}

template <int C>
static void cs_launch(cudaStream_t s, const float *M, float *S, const int32_t *tok, int ntok, float *lg)
{
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = C;
    at[0].val.clusterDim.y = 1;
    at[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(C);
    cfg.blockDim = dim3(CT);
    cfg.stream = s;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    CS_CHECK(cudaLaunchKernelEx(&cfg, cs_step<C>, M, S, tok, ntok, lg));
}

template <int C>
static void cs_run(const float *hM, const float *dM, int ntok)
{
    if (C > 8) CS_CHECK(cudaFuncSetAttribute(cs_step<C>, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    const int nchk = 6;
    int32_t *htok = (int32_t *)malloc(sizeof(int32_t) * ntok);
    for (int t = 0; t < ntok; t++) htok[t] = (int32_t)(cs_uniform(0.f, 1.f) * 4.999f);
    float *dS, *dlg;
    int32_t *dtok;
    const size_t sbytes = sizeof(float) * CL * STATE_FLOATS;
    CS_CHECK(cudaMalloc(&dS, sbytes));
    CS_CHECK(cudaMalloc(&dlg, sizeof(float) * ntok * CV));
    CS_CHECK(cudaMalloc(&dtok, sizeof(int32_t) * ntok));
    CS_CHECK(cudaMemcpy(dtok, htok, sizeof(int32_t) * ntok, cudaMemcpyHostToDevice));
    cudaStream_t s;
    CS_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));

    /* the logits of nchk tokens against the CPU from a zero state */
    CS_CHECK(cudaMemsetAsync(dS, 0, sbytes, s));
    cs_launch<C>(s, dM, dS, dtok, nchk, dlg);
    float glg[nchk * CV];
    CS_CHECK(cudaMemcpyAsync(glg, dlg, sizeof glg, cudaMemcpyDeviceToHost, s));
    CS_CHECK(cudaStreamSynchronize(s));
    double *cS = (double *)calloc((size_t)CL * STATE_FLOATS, sizeof(double)), clg[nchk * CV];
    cpu_steps(hM, cS, htok, nchk, clg);
    double num = 0, den = 0;
    for (int i = 0; i < nchk * CV; i++) num += (glg[i] - clg[i]) * (glg[i] - clg[i]), den += clg[i] * clg[i];
    const double rel = sqrt(num / (den > 0 ? den : 1));
    /* and the layers' states, which the embedding's share of the logits
     * cannot hide */
    float *gS = (float *)malloc(sbytes);
    if (!gS) exit(1);
    CS_CHECK(cudaMemcpy(gS, dS, sbytes, cudaMemcpyDeviceToHost));
    num = den = 0;
    for (size_t i = 0; i < (size_t)CL * STATE_FLOATS; i++)
        num += (gS[i] - cS[i]) * (gS[i] - cS[i]), den += cS[i] * cS[i];
    const double rel_st = sqrt(num / (den > 0 ? den : 1));
    free(gS);

    /* one launch a token, from a graph; then all tokens in one launch */
    cudaGraph_t g;
    cudaGraphExec_t ge;
    const int per_graph = 64;
    CS_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int t = 0; t < per_graph; t++) cs_launch<C>(s, dM, dS, dtok + t % ntok, 1, dlg);
    CS_CHECK(cudaStreamEndCapture(s, &g));
    CS_CHECK(cudaGraphInstantiate(&ge, g, 0));
    CS_CHECK(cudaGraphLaunch(ge, s));
    cudaEvent_t e0, e1;
    CS_CHECK(cudaEventCreate(&e0));
    CS_CHECK(cudaEventCreate(&e1));
    const int reps = ntok / per_graph > 0 ? ntok / per_graph : 1;
    CS_CHECK(cudaEventRecord(e0, s));
    for (int r = 0; r < reps; r++) CS_CHECK(cudaGraphLaunch(ge, s));
    CS_CHECK(cudaEventRecord(e1, s));
    CS_CHECK(cudaEventSynchronize(e1));
    float ms_graph;
    CS_CHECK(cudaEventElapsedTime(&ms_graph, e0, e1));
    const double us_graph = 1e3 * ms_graph / (reps * per_graph);
    CS_CHECK(cudaEventRecord(e0, s));
    cs_launch<C>(s, dM, dS, dtok, ntok, dlg);
    CS_CHECK(cudaEventRecord(e1, s));
    CS_CHECK(cudaEventSynchronize(e1));
    float ms_one;
    CS_CHECK(cudaEventElapsedTime(&ms_one, e0, e1));
    const double us_one = 1e3 * ms_one / ntok;
    printf("| %d | %d | %.2e / %.2e | %.2f | %.0f | %.2f | %.0f |\n", C, CDI / C, rel, rel_st, us_graph, 1e6 / us_graph, us_one,
           1e6 / us_one);

    CS_CHECK(cudaEventDestroy(e0));
    CS_CHECK(cudaEventDestroy(e1));
    CS_CHECK(cudaGraphExecDestroy(ge));
    CS_CHECK(cudaGraphDestroy(g));
    CS_CHECK(cudaStreamDestroy(s));
    CS_CHECK(cudaFree(dS));
    CS_CHECK(cudaFree(dlg));
    CS_CHECK(cudaFree(dtok));
    free(cS);
    free(htok);
}

int main(int argc, char **argv)
{
    int ntok = 2048;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokens") && i + 1 < argc && atoi(argv[i + 1]) >= 64) ntok = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_cluster_step [--tokens N (>= 64)]\n");
            return 2;
        }
    }
    cudaDeviceProp pr;
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&pr, dev) != cudaSuccess) {
        fprintf(stderr, "bench_cluster_step: no CUDA device\n");
        return 1;
    }
    if (pr.major < 9) {
        fprintf(stderr, "bench_cluster_step: needs thread block clusters (compute 9.0+), %s is %d.%d\n", pr.name,
                pr.major, pr.minor);
        return 1;
    }
    /* weights at the library's init scales: projections U(-1/sqrt(fan_in), +),
     * A = -(1..16) (S4D-Real), dt bias for dt in [1e-3, 0.1], D = 1 */
    float *hM = (float *)malloc(sizeof(float) * MODEL_FLOATS);
    if (!hM) return 1;
    for (int l = 0; l < CL; l++) {
        float *W = hM + (size_t)l * LAYER_FLOATS;
        fill(W + OFF_NORM, CD, 1.f, 1.f);
        fill(W + OFF_IN, (size_t)2 * CDI * CD, -1.f / 16, 1.f / 16);
        fill(W + OFF_CW, (size_t)CDI * CK, -0.5f, 0.5f);
        fill(W + OFF_CB, CDI, -0.5f, 0.5f);
        fill(W + OFF_XP, (size_t)CXD * CDI, -1.f / sqrtf(CDI), 1.f / sqrtf(CDI));
        fill(W + OFF_DT, (size_t)CDI * CR, -0.25f, 0.25f);
        for (int ch = 0; ch < CDI; ch++) {
            const float dt = expf(cs_uniform(logf(1e-3f), logf(0.1f)));
            W[OFF_DTB + ch] = dt + logf(-expm1f(-dt));
            for (int n = 0; n < CN; n++) W[OFF_A + (size_t)ch * CN + n] = -(float)(n + 1);
            W[OFF_DS + ch] = 1.f;
        }
        fill(W + OFF_OUT, (size_t)CD * CDI, -1.f / sqrtf(CDI), 1.f / sqrtf(CDI));
    }
    fill(hM + OFF_EMB, (size_t)CV * CD, -1.f, 1.f);
    fill(hM + OFF_NF, CD, 1.f, 1.f);
    float *dM;
    CS_CHECK(cudaMalloc(&dM, sizeof(float) * MODEL_FLOATS));
    CS_CHECK(cudaMemcpy(dM, hM, sizeof(float) * MODEL_FLOATS, cudaMemcpyHostToDevice));
    printf("bench_cluster_step on %s: the DNA model's step (d256 x 8, %.1f MB of fp32 weights) in one kernel on one "
           "cluster; %d tokens\n\n",
           pr.name, MODEL_FLOATS * 4e-6, ntok);
    printf("| blocks (cluster) | channels a block | logits / states vs CPU (rel, 6 tokens) | us a token, launch a token | tokens/s | "
           "us a token, one launch | tokens/s |\n|---|---|---|---|---|---|---|\n");
    cs_run<4>(hM, dM, ntok);
    cs_run<8>(hM, dM, ntok);
    cs_run<16>(hM, dM, ntok);
    CS_CHECK(cudaFree(dM));
    free(hM);
    return 0;
}
