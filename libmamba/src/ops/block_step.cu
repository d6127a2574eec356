/* One recurrent step of a residual Mamba block on the GPU: the maths of
 * ops/block_step.c in ONE kernel, one thread block per row.
 *
 * Why: at batch 1 a step is a chain of small matrix-vector products and
 * per-channel updates; as separate launches (norm, in_proj, conv, x_proj,
 * dt_proj, scan, out_proj, residual) launch gaps cost more than the work.
 * Here the phases are separated by block barriers, with everything between
 * them in shared memory. Every operand that fits is staged into shared
 * memory at the start with cp.async, all in flight at once while the norm
 * runs; what does not fit is read from global memory where it is used.
 *
 * What a block step costs (Nsight Compute on an H100, the audio U-Net's
 * 64-wide blocks): the memory traffic is small; the time is a serial chain
 * of instructions per warp at ~10 cycles each. In the general kernel 70% of
 * them were index, address and loop arithmetic over run-time sizes, so the
 * common widths have instances with the sizes fixed at compile time (9 us
 * a 64-wide block, from 15). Tried and dropped, measured: prefetching into
 * L1 instead of staging; 1024 threads; splitting a row over a cluster of 8
 * blocks with partial sums through distributed shared memory (no faster at
 * batch 1, half the speed at batch 64). */

#include "core/cuda_util.h"
#include "ops/fused.cuh"
#include "ops/ops.h"

#define BS_THREADS 512
#define BS_ROWS 4 /* rows in flight per lane group in the GEMVs (swept: 4 of 4, 8, 16) */

static __device__ __forceinline__ void bs_gemv_auto(int n, int k, const float *W, const float *x, float *y,
                                                    const float *add)
{
    mb_gemv_block_auto<BS_THREADS, BS_ROWS>(n, k, W, x, y, add);
}

/* Shared memory, in floats, each part rounded to 4 so float4 reads stay
 * aligned: the work area, then the staged operands. */
static __host__ __device__ int bs_work_floats(int d, int Di, int xd)
{
    return mb_round4(d) + mb_round4(2 * Di) + mb_round4(xd) + 2 * mb_round4(Di) + 64;
}

/* Operands that may be staged, in the order they are considered. */
enum { BS_CONV_ST, BS_SSM_ST, BS_CONV_W, BS_CONV_B, BS_DT_W, BS_DT_B, BS_A_LOG, BS_A_IMAG, BS_D,
       BS_IN_PROJ, BS_OUT_PROJ, BS_X_PROJ, BS_NOPS };
typedef struct {
    int off[BS_NOPS]; /* floats after the work area, -1: read from global memory */
    int work, total;  /* floats */
} bs_plan;

/* Where operand i of row b comes from, and how many floats it has. */
static __host__ __device__ const float *bs_src(const mb_block_step_params &p, int i, int b, int *n)
{
    const int Di = p.d_inner, N = p.d_state, K = p.d_conv, R = p.dt_rank;
    const int sf = p.is_complex ? 2 * N : N, xd = R + 2 * sf;
    switch (i) {
    case BS_CONV_ST: *n = (K - 1) * Di; return p.conv_state + (size_t)b * (K - 1) * Di;
    case BS_SSM_ST: *n = Di * sf; return p.ssm_state + (size_t)b * Di * sf;
    case BS_CONV_W: *n = Di * K; return p.conv_w;
    case BS_CONV_B: *n = Di; return p.conv_b;
    case BS_DT_W: *n = Di * R; return p.dt_w;
    case BS_DT_B: *n = Di; return p.dt_b;
    case BS_A_LOG: *n = Di * N; return p.A_log;
    case BS_A_IMAG: *n = Di * N; return p.A_imag;
    case BS_D: *n = Di; return p.D;
    case BS_IN_PROJ: *n = 2 * Di * p.d_model; return p.in_proj;
    case BS_OUT_PROJ: *n = p.d_model * Di; return p.out_proj;
    default: *n = xd * Di; return p.x_proj;
    }
}

/* DM, DI, NS, KC, RK: d_model, d_inner, d_state, d_conv, dt_rank fixed at
 * compile time, or 0 for "from p". Profiled, the general kernel spent 70% of
 * its instructions on index, address and loop arithmetic over run-time
 * sizes (a block's step is a serial chain of ~2.7k instructions per warp at
 * ~10 cycles each); with the sizes known, loops unroll and that folds away.
 * The widths of the audio U-Net's levels and of the DNA model have their
 * own instances (mb_block_step_cuda picks); any other shape runs the
 * general one. */
template <int DM, int DI, int NS, int KC, int RK>
static __global__ void __launch_bounds__(BS_THREADS, 1)
block_step_kernel(const mb_block_step_params p, const bs_plan plan, const float *__restrict__ h,
                  float *__restrict__ out)
{
    extern __shared__ float4 bs_sh4[];
    const int d = DM ? DM : p.d_model, Di = DI ? DI : p.d_inner, N = NS ? NS : p.d_state;
    const int K = KC ? KC : p.d_conv, R = RK ? RK : p.dt_rank;
    const int nbc = p.is_complex ? 2 * N : N, sf = nbc, xd = R + 2 * nbc;
    const int b = blockIdx.x, tid = threadIdx.x, nt = BS_THREADS;
    float *sh = reinterpret_cast<float *>(bs_sh4);
    float *xn = sh;                       /* (d) */
    float *xz = xn + mb_round4(d);        /* (2 Di): x, then xc in its place | z */
    float *xdbl = xz + mb_round4(2 * Di); /* (xd): dt | B | C */
    float *dl = xdbl + mb_round4(xd);     /* (Di): delta */
    float *y = dl + mb_round4(Di);        /* (Di): gated scan output */
    float *red = y + mb_round4(Di);       /* (64): reductions */
    float *stage = sh + plan.work;

    /* the weights first: nothing in a step writes them, so their staging
     * may overlap the previous kernel (mb_pdl_wait); then, once that
     * kernel is done, the row's states */
    auto stage_op = [&](int i) {
        int n;
        const float *g = bs_src(p, i, b, &n);
        if (g && plan.off[i] >= 0) mb_stage_async<BS_THREADS>(stage + plan.off[i], g, n);
    };
#pragma unroll
    for (int i = BS_CONV_W; i < BS_NOPS; i++) stage_op(i);
    mb_pdl_wait();
    stage_op(BS_CONV_ST);
    stage_op(BS_SSM_ST);
    __pipeline_commit();
    /* the row: h's, or the embedding of the row's token */
    const float *hr = p.tokens ? p.embed + (size_t)p.tokens[b] * d : h + (size_t)b * d;
    /* operand i: its staged copy, or global memory (recomputed where used
     * rather than held: registers are what this kernel is short of) */
    auto src = [&](int i) -> const float * {
        int n;
        const float *g = bs_src(p, i, b, &n);
        return g && plan.off[i] >= 0 ? stage + plan.off[i] : g;
    };

    /* norm, while the staging is in flight */
    mb_norm_row_block<BS_THREADS>(d, hr, p.norm_w, p.norm_b, p.eps, red, xn);
    __pipeline_wait_prior(0);
    __syncthreads();

    bs_gemv_auto(2 * Di, d, src(BS_IN_PROJ), xn, xz, NULL);
    __syncthreads();

    /* conv over [state; x], SiLU in place of x; the state (read from its
     * staged copy when there is one) shifts by one in global memory */
    const float *csr = src(BS_CONV_ST);
    float *cs = p.conv_state + (size_t)b * (K - 1) * Di;
    for (int c = tid; c < Di; c += nt) {
        const float *w = src(BS_CONV_W) + (size_t)c * K;
        const float xv = xz[c];
        float acc = src(BS_CONV_B) ? src(BS_CONV_B)[c] : 0.f;
        for (int k = 0; k < K - 1; k++) acc += w[k] * csr[(size_t)k * Di + c];
        acc += w[K - 1] * xv;
        /* in order: when csr is cs itself, row k+1 is read before it is written */
        for (int k = 0; k < K - 1; k++) cs[(size_t)k * Di + c] = k + 1 < K - 1 ? csr[(size_t)(k + 1) * Di + c] : xv;
        xz[c] = acc * mb_sigmoid_dev(acc);
    }
    __syncthreads();

    bs_gemv_auto(xd, Di, src(BS_X_PROJ), xz, xdbl, NULL);
    __syncthreads();

    for (int c = tid; c < Di; c += nt) {
        const float *w = src(BS_DT_W) + (size_t)c * R;
        float v = src(BS_DT_B)[c];
        for (int r = 0; r < R; r++) v += w[r] * xdbl[r];
        dl[c] = mb_softplus_dev(v);
    }
    /* the scan: thread per (channel, state); the N partial products of a
     * channel sit in N neighbouring lanes when N is a power of two <= 32,
     * and go through shared atomics otherwise */
    const bool seg = N <= 32 && (N & (N - 1)) == 0;
    const int lgN = 31 - __clz(N);
    if (!seg)
        for (int c = tid; c < Di; c += nt) y[c] = 0.f;
    __syncthreads();
    const float *Bt = xdbl + R, *Ct = Bt + nbc;
    const float *hsr = src(BS_SSM_ST), *Alog = src(BS_A_LOG), *Aim = src(BS_A_IMAG), *Dv = src(BS_D);
    float *hs = p.ssm_state + (size_t)b * Di * sf;
#pragma unroll 1
    for (int base = 0; base < Di * N; base += nt) {
        const int idx = base + tid;
        const bool ok = idx < Di * N;
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
                const float zc = xz[Di + c];
                y[c] = (part + Dv[c] * xz[c]) * zc * mb_sigmoid_dev(zc);
            }
        } else if (ok) {
            atomicAdd(&y[c], part);
        }
    }
    __syncthreads();
    if (!seg) {
        for (int c = tid; c < Di; c += nt) {
            const float zc = xz[Di + c];
            y[c] = (y[c] + Dv[c] * xz[c]) * zc * mb_sigmoid_dev(zc);
        }
        __syncthreads();
    }

    float *orow = out + (size_t)b * (p.ld_out ? p.ld_out : d);
    bs_gemv_auto(d, Di, src(BS_OUT_PROJ), y, orow, hr);
    if (p.out2) {
        /* the block's own writes to orow are visible to it after the barrier */
        __syncthreads();
        float *o2 = p.out2 + (size_t)b * (p.ld_out2 ? p.ld_out2 : d);
        const float *a2 = p.add2 + (size_t)b * (p.ld_add2 ? p.ld_add2 : d);
        for (int i = tid; i < d; i += nt) o2[i] = orow[i] + a2[i];
    }
}

/* Which operands go to shared memory: the small ones and the states in
 * order while they fit, then each matrix that still fits. */
static bs_plan bs_make_plan(const mb_block_step_params *p, int max_floats)
{
    const int nbc = p->is_complex ? 2 * p->d_state : p->d_state;
    bs_plan pl;
    pl.work = mb_round4(bs_work_floats(p->d_model, p->d_inner, p->dt_rank + 2 * nbc));
    int used = 0;
    for (int i = 0; i < BS_NOPS; i++) {
        int n;
        const float *g = bs_src(*p, i, 0, &n);
        pl.off[i] = -1;
        if (!g || n == 0 || pl.work + used + mb_round4(n) > max_floats) continue;
        pl.off[i] = used;
        used += mb_round4(n);
    }
    pl.total = pl.work + used;
    return pl;
}

typedef void (*bs_kernel_fn)(const mb_block_step_params, const bs_plan, const float *, float *);

/* The instance for p's sizes: a fixed-size one where there is one. */
static bs_kernel_fn bs_pick(const mb_block_step_params *p, int *slot)
{
    static const struct {
        int d, Di, N, K, R;
        bs_kernel_fn fn;
    } fixed[] = {
        {64, 128, 16, 4, 4, block_step_kernel<64, 128, 16, 4, 4>},     /* U-Net level 0 */
        {128, 256, 16, 4, 8, block_step_kernel<128, 256, 16, 4, 8>},   /* level 1 */
        {256, 512, 16, 4, 16, block_step_kernel<256, 512, 16, 4, 16>}, /* level 2, the DNA model */
    };
    for (int i = 0; i < (int)(sizeof fixed / sizeof fixed[0]); i++)
        if (p->d_model == fixed[i].d && p->d_inner == fixed[i].Di && p->d_state == fixed[i].N &&
            p->d_conv == fixed[i].K && p->dt_rank == fixed[i].R) {
            *slot = i + 1;
            return fixed[i].fn;
        }
    *slot = 0;
    return block_step_kernel<0, 0, 0, 0, 0>;
}

/* the largest dynamic shared memory a block of fn may have on the
 * context's device (raised once per device and instance from the default
 * 48 KB); 0 after a failure */
static int bs_optin(mb_ctx *ctx, const mb_cuda_state *st, bs_kernel_fn fn, int slot)
{
    static int optin[64][4];
    const int dev = st->device < 64 ? st->device : 63;
    if (!optin[dev][slot]) {
        int v = 0;
        if (MB_CUDA_OK(ctx, cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, st->device)))
            return 0;
        v -= 1024; /* what the runtime reserves per block */
        if (MB_CUDA_OK(ctx, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, v))) return 0;
        optin[dev][slot] = v;
    }
    return optin[dev][slot];
}

static int bs_fused_fits(mb_ctx *ctx, const mb_cuda_state *st, const mb_block_step_params *p)
{
    int slot;
    const bs_kernel_fn fn = bs_pick(p, &slot);
    const int nbc = p->is_complex ? 2 * p->d_state : p->d_state;
    const size_t work = (size_t)mb_round4(bs_work_floats(p->d_model, p->d_inner, p->dt_rank + 2 * nbc));
    return work * sizeof(float) <= (size_t)bs_optin(ctx, st, fn, slot);
}

static int bs_split_fits(mb_ctx *ctx, const mb_block_step_params *p)
{
    return mb_block_step_split_fits_cuda(ctx, p->d_model > p->d_inner ? p->d_model : p->d_inner);
}

extern "C" int mb_block_step_fits_cuda(mb_ctx *ctx, const mb_block_step_params *p)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return 0;
    return bs_fused_fits(ctx, st, p) || bs_split_fits(ctx, p);
}

/* A layer's weights above which AUTO takes the split kernels: one SM
 * streams the fused kernel's weights, so its time grows with them, while
 * the split kernels pay four launches and read them with every SM. At a
 * few rows they win from a smaller size (measured on an H200, the DNA
 * model, 1.7 MB a layer: batch 1 0.234 -> 0.094 ms a token split; batch 64
 * 0.26 fused against 1.9 split, where the fused kernel's 64 blocks fill
 * the device). */
#define BS_SPLIT_BYTES ((size_t)4 << 20)
#define BS_SPLIT_BYTES_FEW ((size_t)1 << 20)
#define BS_FEW_ROWS 4

/* Rows above which a wide layer's step is better run as the layer's own
 * kernels and GEMMs: the split kernels read the weights from L2 for every
 * SP_MR rows and run a wave of latency-bound blocks per group (measured on
 * an H200 at 64 rows: the 130m shape 6.9 ms a token split, 2.34 ms as the
 * layer's GEMMs; GEMMs around the split form's scan kernel, tried too, 2.49
 * ms, and at the 2.8b shape 21.9 against 18.8). bf16 copies are read by the
 * split kernels up to these rows only: above, the layer runs as an fp32
 * one does (130m at 64 rows, H100, session 32: 6.63 ms a token in the split
 * kernels with bf16 copies, 1.66 ms as an fp32 layer's kernels and GEMMs). */
#define BS_SPLIT_MAX_BATCH 8

/* Weight bytes read a layer (rows x the layer's matrices) from which AUTO
 * runs a narrow layer's step as its own kernels and GEMMs rather than the
 * fused kernel, whose every block reads all of them from L2 for its row.
 * Measured on an H100 (bench_generate, session 36, per token): the DNA
 * model (1.7 MB a layer) at 32 rows 0.243-0.247 ms fused against 0.239 as
 * GEMMs, at 64 rows 0.289 against 0.278; mamba-dna's default (0.44 MB) at
 * 64 rows 0.064 fused against 0.113 as GEMMs (28 MB: below). */
#define BS_FUSED_MAX_READ ((size_t)48 << 20)

static int bs_reads_bf16(const mb_block_step_params *p)
{
    return (p->in_proj_bf16 || p->x_proj_bf16 || p->out_proj_bf16) && p->batch <= BS_SPLIT_MAX_BATCH;
}

/* the layer's matrices, fp32: in_proj, out_proj, x_proj */
static size_t bs_weight_bytes(const mb_block_step_params *p)
{
    const size_t Di = (size_t)p->d_inner, xd = (size_t)p->dt_rank + 2 * (p->is_complex ? 2 : 1) * p->d_state;
    return (3 * Di * p->d_model + Di * xd) * sizeof(float);
}

static int bs_use_split(mb_ctx *ctx, const mb_cuda_state *st, const mb_block_step_params *p)
{
    const int path = p->gpu_path != MB_STEP_AUTO ? p->gpu_path : st->step_path;
    /* bf16 copies (mb_model_set_bf16): only the split kernels read them */
    if (path == MB_STEP_SPLIT || bs_reads_bf16(p)) return 1;
    if (path == MB_STEP_FUSED && bs_fused_fits(ctx, st, p)) return 0;
    const size_t bytes = bs_weight_bytes(p);
    return bytes >= BS_SPLIT_BYTES || (p->batch <= BS_FEW_ROWS && bytes >= BS_SPLIT_BYTES_FEW) ||
           !bs_fused_fits(ctx, st, p);
}

extern "C" int mb_block_step_prefers_cuda(mb_ctx *ctx, const mb_block_step_params *p)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return 0;
    const int path = p->gpu_path != MB_STEP_AUTO ? p->gpu_path : st->step_path;
    if (path == MB_STEP_LAYER) return 0;
    if (bs_reads_bf16(p)) return 1;
    const int split = bs_use_split(ctx, st, p);
    if (!split && path == MB_STEP_AUTO && (size_t)p->batch * bs_weight_bytes(p) >= BS_FUSED_MAX_READ) return 0;
    return !(split && p->batch > BS_SPLIT_MAX_BATCH && path != MB_STEP_SPLIT);
}

extern "C" void mb_block_step_cuda(MB_OPS_BLOCK_STEP_ARGS)
{
    if (p->batch <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (bs_use_split(ctx, st, p)) {
        mb_block_step_split_cuda(ctx, p, h, out, ws);
        return;
    }
    int slot;
    const bs_kernel_fn fn = bs_pick(p, &slot);
    /* the block's shared memory may go past the default 48 KB up to what
     * the device allows */
    const int optin = bs_optin(ctx, st, fn, slot);
    if (!optin) return;
    const bs_plan pl = bs_make_plan(p, optin / (int)sizeof(float));
    if ((size_t)pl.work * sizeof(float) > (size_t)optin) {
        mb_cuda_fail(ctx, "block_step_kernel", "model too wide for the fused step's shared memory",
                     __FILE__, __LINE__);
        return;
    }
    MB_CUDA_CHECK(ctx, mb_cuda_launch(st, fn, dim3(p->batch), dim3(BS_THREADS), (size_t)pl.total * sizeof(float),
                                      *p, pl, h, out));
    MB_LAUNCH_CHECK(ctx, "block_step_kernel");
}
