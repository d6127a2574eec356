/* One recurrent step of a residual Mamba block on the GPU: the maths of
 * ops/block_step.c in ONE kernel, a cluster of BS_CLUSTER thread blocks per
 * row, each block owning a slice of the d_inner channels.
 *
 * Why: at batch 1 a step is a chain of small matrix-vector products and
 * per-channel updates; as separate launches (norm, in_proj, conv, x_proj,
 * dt_proj, scan, out_proj, residual) launch gaps cost more than the work.
 * Here the phases are separated by barriers, with everything between them
 * in shared memory. Profiled on an H100, one block per row was bound by the
 * latency of its instruction chain on one SM (~15 us for a 64-wide block at
 * 1.6 instructions a cycle); a cluster splits that chain over 8 SMs. The two
 * reductions over channels (x_proj's and out_proj's inputs) go through
 * distributed shared memory: each block writes its partial sums, the
 * cluster synchronizes, each block adds what it needs from all the others.
 *
 * Each block stages its slices of the operands (weights, the row's states)
 * into shared memory with cp.async at the start, all in flight at once while
 * the norm runs; what does not fit is read from global memory where used. */
#include <cooperative_groups.h>
#include <cuda_pipeline.h>

#include "core/cuda_util.h"
#include "ops/ops.h"

#define BS_THREADS 256
#define BS_CLUSTER 8 /* blocks per row from Hopper on (the portable cluster size) */

/* Clusters exist from sm_90; compiled for an older GPU the kernel runs with
 * one block per row (the host launches gridDim.x = 1 there) and the cluster
 * operations become the block's own. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define BS_CLUSTER_ATTR
#define BS_HAVE_CLUSTER 0
#else
#define BS_CLUSTER_ATTR __cluster_dims__(BS_CLUSTER, 1, 1)
#define BS_HAVE_CLUSTER 1
#endif
#define BS_ROWS 4 /* rows in flight per lane group in the GEMVs */

static __device__ __forceinline__ float bs_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
static __device__ __forceinline__ float bs_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

static __device__ __forceinline__ float bs_dot(float4 a, float4 b)
{
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}
static __device__ __forceinline__ float bs_dot(float a, float b) { return a * b; }

/* y[i] = W[i, 0:k] . x (+ add[i]) for i < n; W row-major with rows ldw
 * floats apart, in global or shared memory; x in shared memory. Read as T
 * (float4 when k, ldw and W allow it). A group of G lanes (a power of two,
 * at most 32 and at most the row's length in T) shares a row; each group
 * keeps BS_ROWS rows in flight. G is a template argument so that the
 * reduction unrolls; only three widths, and not inlined, because code size
 * is what this kernel is short of: profiled, a version with every variant
 * inlined (15k instructions, more than the SM's instruction cache) spent
 * most of its time waiting for instructions. For the same reason no loop
 * of the kernel is unrolled beyond what the arithmetic needs: each launch
 * runs on SMs whose instruction caches are cold, and every distinct line
 * of code executed is a trip to L2. */
template <typename T, int G>
static __device__ __noinline__ void bs_gemv(int n, int q, int ldq, const float *W, const float *x,
                                            float *y, const float *__restrict__ add)
{
    const int lane = threadIdx.x & 31, sub = lane & (G - 1);
    const int groups = (blockDim.x >> 5) * (32 / G);
    const int grp = (threadIdx.x >> 5) * (32 / G) + lane / G;
    const T *x4 = reinterpret_cast<const T *>(x);
    const int stride = groups * ldq; /* from one of a group's rows to its next */
    /* every lane runs the same number of rounds: the shuffles need the
     * whole warp */
#pragma unroll 1
    for (int base = 0; base < n; base += groups * BS_ROWS) {
        const int r0 = base + grp;
        const T *w0 = reinterpret_cast<const T *>(W) + (size_t)r0 * ldq;
        float acc[BS_ROWS];
#pragma unroll
        for (int u = 0; u < BS_ROWS; u++) acc[u] = 0.f;
#pragma unroll 1
        for (int j = sub; j < q; j += G) {
            const T xv = x4[j];
#pragma unroll
            for (int u = 0; u < BS_ROWS; u++)
                if (r0 + u * groups < n) acc[u] += bs_dot(w0[u * stride + j], xv);
        }
#pragma unroll
        for (int u = 0; u < BS_ROWS; u++) {
#pragma unroll
            for (int o = G >> 1; o > 0; o >>= 1) acc[u] += __shfl_xor_sync(0xffffffffu, acc[u], o);
            const int r = r0 + u * groups;
            if (sub == 0 && r < n) y[r] = acc[u] + (add ? add[r] : 0.f);
        }
    }
}

template <typename T>
static __device__ void bs_gemv_q(int n, int q, int ldq, const float *W, const float *x, float *y,
                                 const float *add)
{
    if (q >= 32) bs_gemv<T, 32>(n, q, ldq, W, x, y, add);
    else if (q >= 8) bs_gemv<T, 8>(n, q, ldq, W, x, y, add);
    else bs_gemv<T, 1>(n, q, ldq, W, x, y, add);
}

static __device__ void bs_gemv_auto(int n, int k, int ldw, const float *W, const float *x, float *y,
                                    const float *add)
{
    if (n <= 0 || k <= 0) return;
    if ((k | ldw) % 4 == 0 && (reinterpret_cast<uintptr_t>(W) & 15) == 0)
        bs_gemv_q<float4>(n, k / 4, ldw / 4, W, x, y, add);
    else
        bs_gemv_q<float>(n, k, ldw, W, x, y, add);
}

static __host__ __device__ int bs_round4(int n) { return (n + 3) & ~3; }

/* The channel slice of each block: a multiple of 4 channels, so float4
 * reads of column slices stay aligned when d_inner is. */
static __host__ __device__ int bs_slice(int Di, int ncl) { return bs_round4((Di + ncl - 1) / ncl); }

/* A block's work area in shared memory, in floats, each part rounded to 4. */
static __host__ __device__ int bs_work_floats(int d, int Dc, int xd)
{
    return bs_round4(d) + 2 * Dc + 2 * bs_round4(xd) + 2 * Dc + bs_round4(d) + 64;
}

/* Operands a block may stage (its slices), in the order considered. */
enum { BS_CONV_ST, BS_SSM_ST, BS_CONV_W, BS_CONV_B, BS_DT_W, BS_DT_B, BS_A_LOG, BS_A_IMAG, BS_D,
       BS_IN_X, BS_IN_Z, BS_OUT_PROJ, BS_X_PROJ, BS_NOPS };

/* Operand i as the host describes it to the kernel: for row b and the
 * channels [c0, c0 + nc), its slice starts at g + b * bstride + c0 * cmul
 * and is `rows` rows of nc * cpc floats, rows ld apart (staged copies are
 * compact). Worked out once on the host: as device code, per operand and
 * per block, it cost more instructions than the block's share of the maths. */
typedef struct {
    const float *g;
    long long bstride;
    int cmul, cpc, rows, ld;
    int off; /* floats after the work area where it is staged, -1: not staged */
} bs_opnd;

typedef struct {
    bs_opnd op[BS_NOPS];
    int work, total; /* floats */
} bs_plan;

static bs_opnd bs_describe(const mb_block_step_params *p, int i)
{
    const int d = p->d_model, Di = p->d_inner, N = p->d_state, K = p->d_conv, R = p->dt_rank;
    const int sf = p->is_complex ? 2 * N : N, xd = R + 2 * sf;
    bs_opnd o = {NULL, 0, 0, 0, 1, 0, -1};
    switch (i) {
    case BS_CONV_ST: o = {p->conv_state, (long long)(K - 1) * Di, 1, 1, K - 1, Di, -1}; break;
    case BS_SSM_ST: o = {p->ssm_state, (long long)Di * sf, sf, sf, 1, 0, -1}; break;
    case BS_CONV_W: o = {p->conv_w, 0, K, K, 1, 0, -1}; break;
    case BS_CONV_B: o = {p->conv_b, 0, 1, 1, 1, 0, -1}; break;
    case BS_DT_W: o = {p->dt_w, 0, R, R, 1, 0, -1}; break;
    case BS_DT_B: o = {p->dt_b, 0, 1, 1, 1, 0, -1}; break;
    case BS_A_LOG: o = {p->A_log, 0, N, N, 1, 0, -1}; break;
    case BS_A_IMAG: o = {p->A_imag, 0, N, N, 1, 0, -1}; break;
    case BS_D: o = {p->D, 0, 1, 1, 1, 0, -1}; break;
    case BS_IN_X: o = {p->in_proj, 0, d, d, 1, 0, -1}; break;
    case BS_IN_Z: o = {p->in_proj + (size_t)Di * d, 0, d, d, 1, 0, -1}; break;
    case BS_OUT_PROJ: o = {p->out_proj, 0, 1, 1, d, Di, -1}; break;
    default: o = {p->x_proj, 0, 1, 1, xd, Di, -1}; break;
    }
    if (o.rows == 0) o.g = NULL; /* d_conv 1: no conv state */
    return o;
}

/* rows x cols floats (rows ld apart) global -> shared (compact), without
 * waiting (cp.async), 16 bytes at a time where both ends allow it */
static __device__ __forceinline__ void bs_stage(float *dst, const float *g, int rows, int cols, int ld)
{
    const bool v4 = (reinterpret_cast<uintptr_t>(g) & 15) == 0 && (cols & 3) == 0 && (ld & 3) == 0;
    const int w = v4 ? 4 : 1, q = cols / w, n = rows * q;
#pragma unroll 1
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const int r = i / q, c = (i - r * q) * w;
        if (v4) __pipeline_memcpy_async(dst + r * cols + c, g + (size_t)r * ld + c, 16);
        else __pipeline_memcpy_async(dst + r * cols + c, g + (size_t)r * ld + c, 4);
    }
}

namespace cg = cooperative_groups;

static __device__ __forceinline__ void bs_cluster_sync()
{
#if BS_HAVE_CLUSTER
    cg::this_cluster().sync();
#else
    __syncthreads();
#endif
}

/* p (this block's shared memory) as seen in block r of the cluster */
static __device__ __forceinline__ const float *bs_remote(float *p, int r)
{
#if BS_HAVE_CLUSTER
    return cg::this_cluster().map_shared_rank(p, r);
#else
    (void)r;
    return p;
#endif
}

static __device__ __forceinline__ int bs_rank()
{
#if BS_HAVE_CLUSTER
    return (int)cg::this_cluster().block_rank();
#else
    return 0;
#endif
}

static __global__ void BS_CLUSTER_ATTR __launch_bounds__(BS_THREADS, 1)
block_step_kernel(const mb_block_step_params p, const bs_plan plan, const float *__restrict__ h,
                  float *__restrict__ out)
{
    extern __shared__ float4 bs_sh4[];
    const int d = p.d_model, Di = p.d_inner, N = p.d_state, K = p.d_conv, R = p.dt_rank;
    const int nbc = p.is_complex ? 2 * N : N, sf = nbc, xd = R + 2 * nbc;
    const int rank = bs_rank(), ncl = gridDim.x, b = blockIdx.y, tid = threadIdx.x, nt = blockDim.x;
    const int Dc = bs_slice(Di, ncl), c0 = rank * Dc;
    const int nc = Di - c0 < Dc ? (Di - c0 > 0 ? Di - c0 : 0) : Dc; /* this block's channels */
    float *sh = reinterpret_cast<float *>(bs_sh4);
    float *xn = sh;                       /* (d) */
    float *xz = xn + bs_round4(d);        /* (2 Dc): x, then xc in its place | z */
    float *xdp = xz + 2 * Dc;             /* (xd): this block's part of dt | B | C */
    float *xdbl = xdp + bs_round4(xd);    /* (xd): the cluster's sum */
    float *dl = xdbl + bs_round4(xd);     /* (Dc): delta */
    float *y = dl + Dc;                   /* (Dc): gated scan output */
    float *op = y + Dc;                   /* (d): this block's part of out_proj */
    float *red = op + bs_round4(d);       /* (64): reductions */
    float *stage = sh + plan.work;
    const float *hr = h + (size_t)b * d;

    /* each operand's source: its staged copy (compact) or global memory,
     * with its row stride; one table for the block, so the phases below
     * need no per-operand code */
    __shared__ const float *src_p[BS_NOPS];
    __shared__ int src_ld[BS_NOPS];
#pragma unroll 1
    for (int i = 0; i < BS_NOPS; i++) {
        const bs_opnd &o = plan.op[i];
        const float *g = o.g ? o.g + b * o.bstride + (long long)c0 * o.cmul : NULL;
        const bool st = g && o.off >= 0 && nc > 0;
        if (st) bs_stage(stage + o.off, g, o.rows, nc * o.cpc, o.ld);
        if (tid == 0) {
            src_p[i] = st ? stage + o.off : g;
            src_ld[i] = st ? nc * o.cpc : o.ld;
        }
    }
    __pipeline_commit();
    auto src = [&](int i, int *ld) -> const float * {
        if (ld) *ld = src_ld[i];
        return src_p[i];
    };

    /* norm (every block needs all of xn), while the staging is in flight */
    float mean = 0.f;
    if (p.norm_b) {
        float sum = 0.f;
        #pragma unroll 1
        for (int i = tid; i < d; i += nt) sum += hr[i];
        mean = mb_block_sum(sum, red) / (float)d;
    }
    float ss = 0.f;
    #pragma unroll 1
    for (int i = tid; i < d; i += nt) ss += (hr[i] - mean) * (hr[i] - mean);
    const float rstd = rsqrtf(mb_block_sum(ss, red) / (float)d + p.eps);
    #pragma unroll 1
    for (int i = tid; i < d; i += nt)
        xn[i] = (hr[i] - mean) * rstd * p.norm_w[i] + (p.norm_b ? p.norm_b[i] : 0.f);
    __pipeline_wait_prior(0);
    __syncthreads();

    /* in_proj rows of this block's channels: x and z */
    bs_gemv_auto(nc, d, d, src(BS_IN_X, NULL), xn, xz, NULL);
    bs_gemv_auto(nc, d, d, src(BS_IN_Z, NULL), xn, xz + Dc, NULL);
    __syncthreads();

    /* conv over [state; x], SiLU in place of x; the state (read from its
     * staged copy when there is one) shifts by one in global memory */
    int ldcs;
    const float *csr = src(BS_CONV_ST, &ldcs), *cw = src(BS_CONV_W, NULL), *cb = src(BS_CONV_B, NULL);
    float *cs = p.conv_state + (size_t)b * (K - 1) * Di + c0;
    #pragma unroll 1
    for (int c = tid; c < nc; c += nt) {
        const float *w = cw + (size_t)c * K;
        const float xv = xz[c];
        float acc = cb ? cb[c] : 0.f;
        #pragma unroll 1
        for (int k = 0; k < K - 1; k++) acc += w[k] * csr[(size_t)k * ldcs + c];
        acc += w[K - 1] * xv;
        /* in order: when csr is cs itself, row k+1 is read before it is written */
        #pragma unroll 1
        for (int k = 0; k < K - 1; k++)
            cs[(size_t)k * Di + c] = k + 1 < K - 1 ? csr[(size_t)(k + 1) * ldcs + c] : xv;
        xz[c] = acc * bs_sigmoid(acc);
    }
    __syncthreads();

    /* x_proj over this block's channels, then the sum over the cluster */
    int ldx;
    const float *xw = src(BS_X_PROJ, &ldx);
    if (nc > 0) bs_gemv_auto(xd, nc, ldx, xw, xz, xdp, NULL);
    else
        #pragma unroll 1
        for (int j = tid; j < xd; j += nt) xdp[j] = 0.f;
    bs_cluster_sync();
    #pragma unroll 1
    for (int j = tid; j < xd; j += nt) {
        float v = 0.f;
        #pragma unroll 1
        for (int r = 0; r < ncl; r++) v += bs_remote(xdp, r)[j];
        xdbl[j] = v;
    }
    __syncthreads();

    const float *dtw = src(BS_DT_W, NULL), *dtb = src(BS_DT_B, NULL);
    #pragma unroll 1
    for (int c = tid; c < nc; c += nt) {
        const float *w = dtw + (size_t)c * R;
        float v = dtb[c];
        #pragma unroll 1
        for (int r = 0; r < R; r++) v += w[r] * xdbl[r];
        dl[c] = bs_softplus(v);
    }
    /* the scan: thread per (channel, state); the N partial products of a
     * channel sit in N neighbouring lanes when N is a power of two <= 32,
     * and go through shared atomics otherwise */
    const bool seg = N <= 32 && (N & (N - 1)) == 0;
    const int lgN = 31 - __clz(N);
    if (!seg)
        #pragma unroll 1
        for (int c = tid; c < nc; c += nt) y[c] = 0.f;
    __syncthreads();
    const float *Bt = xdbl + R, *Ct = Bt + nbc;
    const float *hsr = src(BS_SSM_ST, NULL), *Alog = src(BS_A_LOG, NULL), *Aim = src(BS_A_IMAG, NULL);
    const float *Dv = src(BS_D, NULL);
    float *hs = p.ssm_state + ((size_t)b * Di + c0) * sf;
    #pragma unroll 1
    for (int base = 0; base < nc * N; base += nt) {
        const int idx = base + tid;
        const bool ok = idx < nc * N;
        const int c = !ok ? 0 : seg ? idx >> lgN : idx / N, n = idx - c * N;
        float part = 0.f;
        if (ok) {
            const float dt = dl[c], dtx = dt * xz[c];
            const float A = -expf(Alog[idx]);
            if (!p.is_complex) {
                const float hv = expf(dt * A) * hsr[idx] + dtx * Bt[n];
                hs[idx] = hv;
                part = Ct[n] * hv;
            } else {
                const float hre = hsr[2 * idx], him = hsr[2 * idx + 1];
                float sn, cn;
                sincosf(dt * Aim[idx], &sn, &cn);
                const float mag = expf(dt * A), ar = mag * cn, ai = mag * sn;
                const float nr = ar * hre - ai * him + dtx * Bt[2 * n];
                const float ni = ar * him + ai * hre + dtx * Bt[2 * n + 1];
                hs[2 * idx] = nr;
                hs[2 * idx + 1] = ni;
                part = 2.f * (Ct[2 * n] * nr - Ct[2 * n + 1] * ni);
            }
        }
        if (seg) {
            for (int o = N >> 1; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o, N);
            if (ok && n == 0) {
                const float zc = xz[Dc + c];
                y[c] = (part + Dv[c] * xz[c]) * zc * bs_sigmoid(zc);
            }
        } else if (ok) {
            atomicAdd(&y[c], part);
        }
    }
    __syncthreads();
    if (!seg) {
        #pragma unroll 1
        for (int c = tid; c < nc; c += nt) {
            const float zc = xz[Dc + c];
            y[c] = (y[c] + Dv[c] * xz[c]) * zc * bs_sigmoid(zc);
        }
        __syncthreads();
    }

    /* out_proj over this block's channels; block r then adds up its share
     * of the outputs from every block, with the residual */
    int ldo;
    const float *ow = src(BS_OUT_PROJ, &ldo);
    if (nc > 0) bs_gemv_auto(d, nc, ldo, ow, y, op, NULL);
    else
        #pragma unroll 1
        for (int i = tid; i < d; i += nt) op[i] = 0.f;
    bs_cluster_sync();
    const int per = (d + ncl - 1) / ncl;
    #pragma unroll 1
    for (int i = rank * per + tid; i < d && i < (rank + 1) * per; i += nt) {
        float v = hr[i];
        #pragma unroll 1
        for (int r = 0; r < ncl; r++) v += bs_remote(op, r)[i];
        out[(size_t)b * d + i] = v;
    }
    /* no block may leave while others read its shared memory */
    bs_cluster_sync();
}

/* Which slices go to shared memory: the small ones and the states in order
 * while they fit, then each matrix slice that still fits. */
/* Which slices go to shared memory: the small ones and the states in order
 * while they fit, then each matrix slice that still fits. */
static bs_plan bs_make_plan(const mb_block_step_params *p, int ncl, int max_floats)
{
    const int nbc = p->is_complex ? 2 * p->d_state : p->d_state, Dc = bs_slice(p->d_inner, ncl);
    bs_plan pl;
    pl.work = bs_round4(bs_work_floats(p->d_model, Dc, p->dt_rank + 2 * nbc));
    int used = 0;
    for (int i = 0; i < BS_NOPS; i++) {
        pl.op[i] = bs_describe(p, i);
        const int n = bs_round4(pl.op[i].rows * Dc * pl.op[i].cpc);
        if (!pl.op[i].g || n == 0 || pl.work + used + n > max_floats) continue;
        pl.op[i].off = used;
        used += n;
    }
    pl.total = pl.work + used;
    return pl;
}

extern "C" void mb_block_step_cuda(MB_OPS_BLOCK_STEP_ARGS)
{
    (void)ws;
    if (p->batch <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    /* the blocks' shared memory may go past the default 48 KB, up to what
     * the device allows; raised once per device */
    static int optin[64], arch[64];
    const int dev = st->device < 64 ? st->device : 63;
    if (!optin[dev]) {
        int v = 0;
        /* the machine code the device runs (an sm_75 build also runs on an
         * H100, without clusters) */
        cudaFuncAttributes fa;
        MB_CUDA_CHECK(ctx, cudaFuncGetAttributes(&fa, block_step_kernel));
        arch[dev] = fa.binaryVersion;
        MB_CUDA_CHECK(ctx, cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, st->device));
        v -= 1024; /* what the runtime reserves per block */
        MB_CUDA_CHECK(ctx, cudaFuncSetAttribute(block_step_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, v));
        optin[dev] = v;
    }
    /* staging beyond 64 KB a block buys little and keeps a second cluster
     * off the SM at larger batch */
    const int cap = optin[dev] < (64 << 10) ? optin[dev] : (64 << 10);
    const int ncl = arch[dev] >= 90 ? BS_CLUSTER : 1;
    const bs_plan pl = bs_make_plan(p, ncl, cap / (int)sizeof(float));
    if ((size_t)pl.work * sizeof(float) > (size_t)optin[dev]) {
        mb_cuda_fail(ctx, "block_step_kernel", "model too wide for the fused step's shared memory",
                     __FILE__, __LINE__);
        return;
    }
    const dim3 grid((unsigned)ncl, (unsigned)p->batch);
    block_step_kernel<<<grid, BS_THREADS, (size_t)pl.total * sizeof(float), st->stream>>>(*p, pl, h, out);
    MB_LAUNCH_CHECK(ctx, "block_step_kernel");
}
