/* One recurrent step of a residual Mamba block on the GPU: the maths of
 * ops/block_step.c in ONE kernel, one thread block per row.
 *
 * Why one block per row: at batch 1 a step is a chain of matrix-vector
 * products over a few hundred KB of weights, each too small to fill the
 * GPU; as separate launches (norm, in_proj, conv, x_proj, dt_proj, scan,
 * out_proj, residual) the launch and drain gaps cost more than the work.
 * Here everything between the weights lives in shared memory and the
 * phases are separated by block barriers. The weights are read with float4
 * loads, several rows in flight per lane group, so one SM keeps enough
 * bytes in flight to run near its share of L2 bandwidth; at larger batch
 * the blocks of different rows read the same weights from L2. */
#include "core/cuda_util.h"
#include "ops/ops.h"

#define BS_THREADS 512
#define BS_ROWS 8 /* rows in flight per lane group in the GEMVs */

static __device__ __forceinline__ float bs_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
static __device__ __forceinline__ float bs_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

static __device__ __forceinline__ float bs_dot(float4 a, float4 b)
{
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}
static __device__ __forceinline__ float bs_dot(float a, float b) { return a * b; }

/* y[i] = W[i, :] . x (+ add[i]) for i < n; W (n, k) row-major in global
 * memory, x in shared memory, both read as T (float4 when k % 4 == 0).
 * A group of g lanes (a power of two, at most 32, at most the row's
 * length in T) shares a row; each group keeps BS_ROWS rows in flight. */
template <typename T>
static __device__ void bs_gemv(int n, int k, const float *__restrict__ W, const float *x, float *y,
                               const float *__restrict__ add)
{
    const int q = k / (int)(sizeof(T) / sizeof(float));
    int g = 32;
    while (g > q) g >>= 1;
    const int lane = threadIdx.x & 31, sub = lane & (g - 1);
    const int groups = (blockDim.x >> 5) * (32 / g);
    const int grp = (threadIdx.x >> 5) * (32 / g) + lane / g;
    const T *W4 = reinterpret_cast<const T *>(W);
    const T *x4 = reinterpret_cast<const T *>(x);
    /* every lane runs the same number of rounds: the shuffles below need
     * the whole warp */
    for (int base = 0; base < n; base += groups * BS_ROWS) {
        float acc[BS_ROWS];
        const T *row[BS_ROWS];
#pragma unroll
        for (int u = 0; u < BS_ROWS; u++) {
            int r = base + u * groups + grp;
            row[u] = W4 + (size_t)(r < n ? r : n - 1) * q; /* clamped: read, discarded */
            acc[u] = 0.f;
        }
        for (int j = sub; j < q; j += g) {
            const T xv = x4[j];
#pragma unroll
            for (int u = 0; u < BS_ROWS; u++) acc[u] += bs_dot(__ldg(row[u] + j), xv);
        }
#pragma unroll
        for (int u = 0; u < BS_ROWS; u++) {
            for (int o = g >> 1; o > 0; o >>= 1) acc[u] += __shfl_xor_sync(0xffffffffu, acc[u], o, g);
            const int r = base + u * groups + grp;
            if (sub == 0 && r < n) y[r] = acc[u] + (add ? add[r] : 0.f);
        }
    }
}

static __device__ void bs_gemv_auto(int n, int k, const float *W, const float *x, float *y,
                                    const float *add)
{
    if (k % 4 == 0) bs_gemv<float4>(n, k, W, x, y, add);
    else bs_gemv<float>(n, k, W, x, y, add);
}

/* Ask L1 for `bytes` from p, all lanes of the block together, without
 * waiting: the phases below then find their operands one L1 hit away
 * instead of a dependent L2 round trip each (a step is a chain of a dozen
 * such phases, and at batch 1 that latency is what a step costs). */
static __device__ __forceinline__ void bs_prefetch(const void *p, size_t bytes)
{
    if (!p) return;
    const char *c = static_cast<const char *>(p);
    for (size_t off = (size_t)threadIdx.x * 128; off < bytes; off += (size_t)blockDim.x * 128)
        asm volatile("prefetch.global.L1 [%0];" ::"l"(c + off));
}

/* Shared memory, in floats, each part rounded to 4 so float4 reads stay aligned. */
static __host__ __device__ int bs_round4(int n) { return (n + 3) & ~3; }
static __host__ __device__ int bs_smem_floats(int d, int Di, int xd)
{
    return bs_round4(d) + bs_round4(2 * Di) + bs_round4(xd) + 2 * bs_round4(Di) + 64;
}

static __global__ void __launch_bounds__(BS_THREADS, 1)
block_step_kernel(const mb_block_step_params p, const float *__restrict__ h, float *__restrict__ out)
{
    extern __shared__ float4 bs_sh4[];
    const int d = p.d_model, Di = p.d_inner, N = p.d_state, K = p.d_conv, R = p.dt_rank;
    const int nbc = p.is_complex ? 2 * N : N, sf = nbc, xd = R + 2 * nbc;
    const int b = blockIdx.x, tid = threadIdx.x, nt = blockDim.x;
    float *sh = reinterpret_cast<float *>(bs_sh4);
    float *xn = sh;                       /* (d) */
    float *xz = xn + bs_round4(d);        /* (2 Di): x, then xc in its place | z */
    float *xdbl = xz + bs_round4(2 * Di); /* (xd): dt | B | C */
    float *dl = xdbl + bs_round4(xd);     /* (Di): delta */
    float *y = dl + bs_round4(Di);        /* (Di): gated scan output */
    float *red = y + bs_round4(Di);       /* (64): reductions */
    const float *hr = h + (size_t)b * d;

    /* everything this row reads, when it fits in L1 beside the shared
     * memory (the small U-Net's blocks: ~150 KB); for wider blocks the
     * matrices stream from L2 and only the small operands are fetched early */
    const size_t wbytes = ((size_t)2 * Di * d + (size_t)xd * Di + (size_t)d * Di) * sizeof(float);
    if (wbytes <= (128u << 10)) {
        bs_prefetch(p.in_proj, (size_t)2 * Di * d * sizeof(float));
        bs_prefetch(p.x_proj, (size_t)xd * Di * sizeof(float));
        bs_prefetch(p.out_proj, (size_t)d * Di * sizeof(float));
    }
    bs_prefetch(p.conv_state + (size_t)b * (K - 1) * Di, (size_t)(K - 1) * Di * sizeof(float));
    bs_prefetch(p.ssm_state + (size_t)b * Di * sf, (size_t)Di * sf * sizeof(float));
    bs_prefetch(p.conv_w, (size_t)Di * K * sizeof(float));
    bs_prefetch(p.conv_b, (size_t)Di * sizeof(float));
    bs_prefetch(p.dt_w, (size_t)Di * R * sizeof(float));
    bs_prefetch(p.dt_b, (size_t)Di * sizeof(float));
    bs_prefetch(p.A_log, (size_t)Di * N * sizeof(float));
    bs_prefetch(p.A_imag, (size_t)Di * N * sizeof(float));
    bs_prefetch(p.D, (size_t)Di * sizeof(float));

    /* norm */
    float mean = 0.f;
    if (p.norm_b) {
        float s = 0.f;
        for (int i = tid; i < d; i += nt) s += hr[i];
        mean = mb_block_sum(s, red) / (float)d;
    }
    float ss = 0.f;
    for (int i = tid; i < d; i += nt) ss += (hr[i] - mean) * (hr[i] - mean);
    const float rstd = rsqrtf(mb_block_sum(ss, red) / (float)d + p.eps);
    for (int i = tid; i < d; i += nt)
        xn[i] = (hr[i] - mean) * rstd * p.norm_w[i] + (p.norm_b ? p.norm_b[i] : 0.f);
    __syncthreads();

    bs_gemv_auto(2 * Di, d, p.in_proj, xn, xz, NULL);
    __syncthreads();

    /* conv over [state; x], state shifted by one, SiLU in place of x */
    float *cs = p.conv_state + (size_t)b * (K - 1) * Di;
    for (int c = tid; c < Di; c += nt) {
        const float *w = p.conv_w + (size_t)c * K;
        const float xv = xz[c];
        float acc = p.conv_b ? p.conv_b[c] : 0.f;
        float prev = K > 1 ? cs[c] : 0.f;
        for (int k = 0; k < K - 1; k++) {
            acc += w[k] * prev;
            const float next = k + 1 < K - 1 ? cs[(size_t)(k + 1) * Di + c] : xv;
            cs[(size_t)k * Di + c] = next;
            prev = next;
        }
        acc += w[K - 1] * xv;
        xz[c] = acc * bs_sigmoid(acc);
    }
    __syncthreads();

    bs_gemv_auto(xd, Di, p.x_proj, xz, xdbl, NULL);
    __syncthreads();

    for (int c = tid; c < Di; c += nt) {
        const float *w = p.dt_w + (size_t)c * R;
        float v = p.dt_b[c];
        for (int r = 0; r < R; r++) v += w[r] * xdbl[r];
        dl[c] = bs_softplus(v);
    }
    /* the scan: thread per (channel, state); the N partial products of a
     * channel sit in N neighbouring lanes when N is a power of two <= 32,
     * and go through shared atomics otherwise */
    const bool seg = N <= 32 && (N & (N - 1)) == 0;
    if (!seg)
        for (int c = tid; c < Di; c += nt) y[c] = 0.f;
    __syncthreads();
    const float *Bt = xdbl + R, *Ct = Bt + nbc;
    float *hs = p.ssm_state + (size_t)b * Di * sf;
    for (int base = 0; base < Di * N; base += nt) {
        const int idx = base + tid;
        const bool ok = idx < Di * N;
        const int c = ok ? idx / N : 0, n = idx - c * N;
        float part = 0.f;
        if (ok) {
            const float dt = dl[c], dtx = dt * xz[c];
            const float A = -expf(p.A_log[(size_t)c * N + n]);
            if (!p.is_complex) {
                float *hp = hs + (size_t)c * N + n;
                const float hv = expf(dt * A) * *hp + dtx * Bt[n];
                *hp = hv;
                part = Ct[n] * hv;
            } else {
                float2 *hp = reinterpret_cast<float2 *>(hs + ((size_t)c * N + n) * 2);
                const float2 hv = *hp;
                float sn, cn;
                sincosf(dt * p.A_imag[(size_t)c * N + n], &sn, &cn);
                const float mag = expf(dt * A), ar = mag * cn, ai = mag * sn;
                const float nr = ar * hv.x - ai * hv.y + dtx * Bt[2 * n];
                const float ni = ar * hv.y + ai * hv.x + dtx * Bt[2 * n + 1];
                *hp = make_float2(nr, ni);
                part = 2.f * (Ct[2 * n] * nr - Ct[2 * n + 1] * ni);
            }
        }
        if (seg) {
            for (int o = N >> 1; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o, N);
            if (ok && n == 0) {
                const float zc = xz[Di + c];
                y[c] = (part + p.D[c] * xz[c]) * zc * bs_sigmoid(zc);
            }
        } else if (ok) {
            atomicAdd(&y[c], part);
        }
    }
    __syncthreads();
    if (!seg) {
        for (int c = tid; c < Di; c += nt) {
            const float zc = xz[Di + c];
            y[c] = (y[c] + p.D[c] * xz[c]) * zc * bs_sigmoid(zc);
        }
        __syncthreads();
    }

    bs_gemv_auto(d, Di, p.out_proj, y, out + (size_t)b * d, hr);
}

extern "C" void mb_block_step_cuda(MB_OPS_BLOCK_STEP_ARGS)
{
    (void)ws;
    if (p->batch <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int nbc = p->is_complex ? 2 * p->d_state : p->d_state;
    const size_t smem =
        (size_t)bs_smem_floats(p->d_model, p->d_inner, p->dt_rank + 2 * nbc) * sizeof(float);
    if (smem > (48u << 10)) {
        /* big models: opt in to more than the default 48 KB per block */
        int optin = 0;
        MB_CUDA_CHECK(ctx, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin,
                                                  st->device));
        if (smem > (size_t)optin) {
            mb_cuda_fail(ctx, "block_step_kernel", "model too wide for the fused step's shared memory",
                         __FILE__, __LINE__);
            return;
        }
        MB_CUDA_CHECK(ctx, cudaFuncSetAttribute(block_step_kernel,
                                                cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    }
    block_step_kernel<<<p->batch, BS_THREADS, smem, st->stream>>>(*p, h, out);
    MB_LAUNCH_CHECK(ctx, "block_step_kernel");
}
