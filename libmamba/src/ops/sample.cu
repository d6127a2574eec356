/* The head of a generation step and its draw on the GPU, by the rule of
 * ops.h: top-k, the nucleus and the draw without a sort.
 *
 * Why on the GPU: with the draw on the host every sample is a round trip
 * (logits down, wait, draw, token up, launch); with it here a run of steps
 * replays as one graph and the host only collects the classes.
 *
 * Two forms. A vocabulary whose logits fit in shared memory (the audio
 * U-Net's 256 classes, the DNA model's 16) runs ONE kernel, a thread block
 * a row: the final norm, the head's GEMV, the draw. A large one (50k
 * classes) runs the head as the split step's norm + GEMV over every SM
 * (mb_norm_gemv_cuda) into the logits, then a kernel of 1024 threads a row
 * for the draw, reading the logits from global memory.
 *
 * The draw (sample_row): each thread owns a run of classes in index order.
 * q = exp((z - max) / T) is recomputed where needed rather than stored.
 * Masses are fixed point (q * 2^40 as a 64-bit integer), so that every sum
 * is exact and in any order the same: the same logits give the same class
 * on every run, whatever the scheduling. A cut (top-k: the first k of the
 * rank order; the nucleus: the candidates whose mass ranked above them is
 * under top_p of theirs) is a threshold on q found by a radix select over
 * q's bits (positive floats order as their bits): four passes of a
 * 256-bin histogram of weights (1 for top-k, the mass for the nucleus)
 * over the classes above the bits fixed so far; then the classes equal to
 * the threshold are kept in index order as far as the rule allows.
 * Ranking by q descending, then index ascending, the kept set is exactly
 * the rule's (in these fixed-point masses). */
#include "core/cuda_util.h"
#include "ops/fused.cuh"
#include "ops/ops.h"

#define HS_THREADS 256   /* the fused kernel */
#define SR_THREADS 1024  /* the draw over a large vocabulary */
#define SR_FX 0x1.0p40f  /* the fixed point of the masses */

typedef unsigned long long u64;

/* exclusive prefix over the block of one value a thread; *total gets the
 * block's sum. sh holds 32 T. */
template <typename T, int NT>
static __device__ T sr_exclusive(T v, T *sh, T *total)
{
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = NT / 32;
    T incl = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const T t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    __syncthreads();
    if (lane == 31) sh[wid] = incl;
    __syncthreads();
    T before = 0, all = 0;
    for (int w = 0; w < nw; w++) {
        before += w < wid ? sh[w] : T(0);
        all += sh[w];
    }
    *total = all;
    return before + incl - v;
}

/* A cut: classes with key > key are in; of those with key == key, the first
 * m in index order; tie0 counts the ties in the runs of the threads before
 * this one. on == 0: no cut. */
typedef struct {
    unsigned key;
    u64 m;
    unsigned tie0;
    int on;
} sr_cut;

/* What a block's threads share while drawing a row. */
typedef struct {
    u64 hist[256];
    u64 red[32];
    unsigned digit;
    u64 above;
    int pick;
} sr_shared;

static __device__ __forceinline__ u64 sr_fx(float q) { return __float2ull_rz(q * SR_FX); }

/* The row: its logits z (shared or global memory), or with stored their
 * q already (the same expression, so the same bits); this thread's run. */
template <int NT>
struct sr_row {
    const float *z;
    int k0, k1, per;
    float mx, T;
    bool stored;
    __device__ float q(int k) const { return stored ? z[k] : expf((z[k] - mx) / T); }

    /* visits this thread's classes in index order with whether the cuts a
     * and b keep them (ties counted among the classes each cut sees) */
    template <typename F>
    __device__ void walk(const sr_cut &a, const sr_cut &b, F f) const
    {
        unsigned ta = a.tie0, tb = b.tie0;
        for (int k = k0; k < k1; k++) {
            const float qk = q(k);
            const unsigned key = __float_as_uint(qk);
            bool in = true;
            if (a.on) in = key > a.key || (key == a.key && ta++ < a.m);
            if (in && b.on) in = key > b.key || (key == b.key && tb++ < b.m);
            f(k, qk, key, in);
        }
    }
};

/* hist[bin] += w from every lane of the warp (bin 256: nothing). The lanes
 * of a bin add their weights first and one of them adds the sum: in the
 * first passes most classes share a few bins (q's exponent bits), and one
 * shared atomic a class on one address serialized the whole block. The
 * weights (< 2^41) go through the 32-bit warp sums in two 20-bit halves. */
static __device__ __forceinline__ void sr_hist_add(u64 *hist, unsigned bin, u64 w)
{
#if __CUDA_ARCH__ >= 800
    const unsigned grp = __match_any_sync(0xffffffffu, bin);
    const unsigned lo = __reduce_add_sync(grp, (unsigned)(w & 0xfffffu));
    const unsigned hi = __reduce_add_sync(grp, (unsigned)(w >> 20));
    if (bin < 256 && (int)(threadIdx.x & 31) == __ffs(grp) - 1) atomicAdd(&hist[bin], ((u64)hi << 20) + lo);
#else
    if (bin < 256) atomicAdd(&hist[bin], w);
#endif
}

/* The cut on the classes `prev` keeps with weight 1 (count) or their mass:
 * the largest key v whose classes at or above it weigh at least cut (the
 * class ranked last among those kept), the weight above it, and how many
 * of its ties are kept. Every thread gets it. */
template <int NT>
static __device__ sr_cut sr_select(const sr_row<NT> &r, const sr_cut &prev, bool by_mass, u64 cut, sr_shared *sh)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const sr_cut none = {0, 0, 0, 0};
    unsigned prefix = 0;
    u64 above = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += NT) sh->hist[i] = 0;
        __syncthreads();
        const unsigned hi_mask = shift == 24 ? 0u : ~0u << (shift + 8);
        /* the walk with every lane in step (the warp sums need them all) */
        unsigned ties = prev.tie0;
        for (int j = 0; j < r.per; j++) {
            const int k = r.k0 + j;
            unsigned bin = 256;
            u64 w = 0;
            if (k < r.k1) {
                const float qk = r.q(k);
                const unsigned key = __float_as_uint(qk);
                const bool in = !prev.on || key > prev.key || (key == prev.key && ties++ < prev.m);
                if (in && (key & hi_mask) == prefix) bin = (key >> shift) & 255, w = by_mass ? sr_fx(qk) : 1ull;
            }
            sr_hist_add(sh->hist, bin, w);
        }
        __syncthreads();
        if (warp == 0) {
            /* lane l holds digits 8l .. 8l+7; the digit is where the weight
             * from the top first reaches cut */
            u64 mine = 0;
            for (int j = 0; j < 8; j++) mine += sh->hist[8 * lane + j];
            u64 incl = mine; /* lanes >= this one */
#pragma unroll
            for (int o = 1; o < 32; o <<= 1) {
                const u64 t = __shfl_down_sync(0xffffffffu, incl, o);
                if (lane + o < 32) incl += t;
            }
            const u64 upper = above + incl - mine; /* the digits above this lane's */
            const unsigned hit = __ballot_sync(0xffffffffu, upper < cut && upper + mine >= cut);
            if (hit == 0 && lane == 0) { /* cannot happen while cut <= the total weight: the lowest digit */
                sh->digit = 0;
                sh->above = above + incl - sh->hist[0];
            }
            if (hit != 0 && lane == 31 - __clz(hit)) {
                u64 acc = upper;
                int dg = 8 * lane;
                for (int j = 7; j >= 0; j--) {
                    if (acc + sh->hist[8 * lane + j] >= cut) {
                        dg = 8 * lane + j;
                        break;
                    }
                    acc += sh->hist[8 * lane + j];
                }
                sh->digit = (unsigned)dg;
                sh->above = acc;
            }
        }
        __syncthreads();
        prefix |= sh->digit << shift;
        above = sh->above;
        __syncthreads();
    }
    sr_cut c;
    c.key = prefix;
    c.on = 1;
    const u64 wv = by_mass ? sr_fx(__uint_as_float(prefix)) : 1ull;
    c.m = wv ? (cut - above + wv - 1) / wv : 0;
    /* ties in this thread's run among the classes prev keeps */
    unsigned mine = 0;
    r.walk(prev, none, [&](int, float, unsigned key, bool in) { mine += in && key == prefix; });
    unsigned tot;
    c.tie0 = sr_exclusive<unsigned, NT>(mine, reinterpret_cast<unsigned *>(sh->red), &tot);
    return c;
}

/* The nucleus and the draw on the classes of r that the cut top keeps:
 * the class in r's index space, to every thread. */
template <int NT>
static __device__ int sr_finish(const sr_row<NT> &r, const sr_cut &top, const mb_sample_cfg &cfg, int64_t count,
                                int row, sr_shared *sh)
{
    sr_cut nuc = {0, 0, 0, 0};
    if (cfg.top_p < 1.f) {
        u64 mine = 0, tot;
        r.walk(top, nuc, [&](int, float qk, unsigned, bool in) { mine += in ? sr_fx(qk) : 0ull; });
        sr_exclusive<u64, NT>(mine, sh->red, &tot);
        /* kept iff the mass above < top_p * tot; with integer masses, < ceil */
        const u64 cut = (u64)ceil((double)cfg.top_p * (double)tot);
        nuc = sr_select<NT>(r, top, true, cut > 0 ? cut : 1, sh);
    }

    /* the draw: the first class whose running mass passes u * kept mass */
    u64 mine = 0, tot;
    int last = -1;
    r.walk(top, nuc, [&](int k, float qk, unsigned, bool in) {
        if (in && sr_fx(qk)) mine += sr_fx(qk), last = k;
    });
    const u64 before = sr_exclusive<u64, NT>(mine, sh->red, &tot);
    /* target = floor(u * tot), u = (2 bits + 1) / 2^24, in 128 bits */
    const u64 a = 2ull * mb_sample_bits(cfg.seed, count, row) + 1ull;
    const u64 lo = a * tot, hi = __umul64hi(a, tot), target = (hi << 40) | (lo >> 24);
    if (threadIdx.x == 0) sh->pick = INT_MAX;
    __syncthreads();
    if (mine && before <= target && target < before + mine) {
        u64 c = before;
        int got = INT_MAX;
        r.walk(top, nuc, [&](int k, float qk, unsigned, bool in) {
            if (in && got == INT_MAX && (c += sr_fx(qk)) > target) got = k;
        });
        atomicMin(&sh->pick, got);
    }
    last = mb_block_max(last, reinterpret_cast<int *>(sh->red), -1);
    __syncthreads();
    return sh->pick != INT_MAX ? sh->pick : last; /* last: only if target fell past every class */
}

/* The rule of ops.h for row `row` (z: vocab logits, shared or global
 * memory); returns the class to every thread.
 *
 * zw: z itself when it is writable shared memory: q replaces each logit
 * once, so the passes after the max read it rather than take an exp each.
 * cq, ck (NT each, shared): where a top-k cut of at most NT classes
 * compacts what it keeps, (q, class) in class order, so that the nucleus
 * and the draw walk top_k entries, not the vocabulary (at 50k classes,
 * top-k 50 and top-p 0.9 they were six walks of twelve). Both keep every
 * q, every mass and the classes' order, so the class drawn is the same. */
template <int NT>
static __device__ int sr_draw(const float *z, int V, const mb_sample_cfg &cfg, int64_t count, int row, sr_shared *sh,
                              float *zw, float *cq, int *ck)
{
    const int per = (V + NT - 1) / NT;
    sr_row<NT> r;
    r.z = z;
    r.per = per;
    r.k0 = min(V, (int)threadIdx.x * per);
    r.k1 = min(V, r.k0 + per);
    r.T = cfg.temperature;
    r.stored = false;
    float mx = -INFINITY;
    for (int k = threadIdx.x; k < V; k += NT) mx = fmaxf(mx, z[k]);
    r.mx = mb_block_max(mx, reinterpret_cast<float *>(sh->red), -INFINITY);
    __syncthreads();
    if (zw) {
        for (int k = r.k0; k < r.k1; k++) zw[k] = r.q(k);
        r.stored = true;
        __syncthreads();
    }

    const sr_cut none = {0, 0, 0, 0};
    sr_cut top = none;
    if (cfg.top_k > 0 && cfg.top_k < V) top = sr_select<NT>(r, top, false, (u64)cfg.top_k, sh);
    if (!cq || !top.on || cfg.top_k > NT) return sr_finish<NT>(r, top, cfg, count, row, sh);

    /* compact the kept classes (exactly top_k of them), in class order */
    unsigned mine = 0, kept;
    r.walk(top, none, [&](int, float, unsigned, bool in) { mine += in; });
    unsigned at = sr_exclusive<unsigned, NT>(mine, reinterpret_cast<unsigned *>(sh->red), &kept);
    r.walk(top, none, [&](int k, float qk, unsigned, bool in) {
        if (in) cq[at] = qk, ck[at] = k, at++;
    });
    __syncthreads();
    sr_row<NT> c;
    c.z = cq;
    c.per = 1;
    c.k0 = min((int)kept, (int)threadIdx.x);
    c.k1 = min((int)kept, (int)threadIdx.x + 1);
    c.mx = 0.f, c.T = 1.f;
    c.stored = true;
    const int j = sr_finish<NT>(c, none, cfg, count, row, sh);
    return j >= 0 ? ck[j] : -1;
}

/* the drawn class k of row b where the next step reads it */
static __device__ void sr_store(const mb_head_sample_params &p, int b, int64_t n, int k)
{
    p.next[b] = k;
    if (p.hist) p.hist[(size_t)b * p.hist_len + n % p.hist_len] = k;
    p.count[b] = n + 1;
}

static __global__ void __launch_bounds__(HS_THREADS)
head_sample_kernel(const mb_head_sample_params p, const float *__restrict__ y)
{
    extern __shared__ float4 hs_sh4[];
    __shared__ sr_shared sh;
    float *xn = reinterpret_cast<float *>(hs_sh4); /* (d) */
    const int d = p.d_model, V = p.vocab, b = blockIdx.x;
    float *z = xn + mb_round4(d); /* (V) */

    mb_pdl_wait(); /* y, count and the previous draw come from kernels before */
    mb_norm_row_block<HS_THREADS>(d, y + (size_t)b * d, p.norm_w, p.norm_b, p.eps, reinterpret_cast<float *>(sh.red),
                                  xn);
    __syncthreads();
    mb_gemv_block_auto<HS_THREADS, 4>(V, d, p.head, xn, z, NULL);
    __syncthreads();
    if (p.logits)
        for (int k = threadIdx.x; k < V; k += HS_THREADS) p.logits[(size_t)b * p.ld_logits + k] = z[k];
    const int64_t n = p.count[b];
    const int k = sr_draw<HS_THREADS>(z, V, *p.cfg, n, b, &sh, NULL, NULL, NULL);
    if (threadIdx.x == 0) sr_store(p, b, n, k);
}

/* SH: the row's logits staged in shared memory first (one coalesced read;
 * the passes then walk each thread's run there, not through L1) */
template <bool SH>
static __global__ void __launch_bounds__(SR_THREADS)
sample_rows_kernel(const mb_head_sample_params p)
{
    extern __shared__ float4 sr_sh4[];
    __shared__ sr_shared sh;
    __shared__ float cq[SR_THREADS];
    __shared__ int ck[SR_THREADS];
    const int b = blockIdx.x;
    mb_pdl_wait(); /* the logits come from the kernel before */
    const int64_t n = p.count[b];
    const float *z = p.logits + (size_t)b * p.ld_logits;
    if (SH) {
        float *zs = reinterpret_cast<float *>(sr_sh4);
        for (int k = threadIdx.x; k < p.vocab; k += SR_THREADS) zs[k] = z[k];
        __syncthreads();
        z = zs;
    }
    const int k = sr_draw<SR_THREADS>(z, p.vocab, *p.cfg, n, b, &sh, SH ? reinterpret_cast<float *>(sr_sh4) : NULL,
                                      cq, ck);
    if (threadIdx.x == 0) sr_store(p, b, n, k);
}

/* the dynamic shared memory of sample_rows_kernel<true> for vocab classes,
 * or 0 where they do not fit (opted in once per device) */
static size_t sr_smem(mb_ctx *ctx, const mb_cuda_state *st, int vocab)
{
    static int optin[64];
    const int dev = st->device < 64 ? st->device : 63;
    if (!optin[dev]) {
        int v = 0;
        if (MB_CUDA_OK(ctx, cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, st->device))) return 0;
        /* the static part (sr_shared, the compacted cut) and what the runtime reserves */
        v -= (int)(sizeof(sr_shared) + SR_THREADS * (sizeof(float) + sizeof(int))) + 1024;
        if (MB_CUDA_OK(ctx, cudaFuncSetAttribute(sample_rows_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, v)))
            return 0;
        optin[dev] = v;
    }
    const size_t bytes = (size_t)mb_round4(vocab) * sizeof(float);
    return bytes <= (size_t)optin[dev] ? bytes : 0;
}

/* the fused kernel's dynamic shared memory */
static size_t hs_smem(int d_model, int vocab)
{
    return (size_t)(mb_round4(d_model) + mb_round4(vocab)) * sizeof(float);
}

extern "C" int mb_head_sample_fused_fits_cuda(int d_model, int vocab)
{
    return hs_smem(d_model, vocab) + sizeof(sr_shared) <= MB_HEAD_SAMPLE_CUDA_SMEM;
}

/* Rows above which the head is a norm and a GEMM (fp32 heads). A bf16
 * copy is read by the GEMV kernel up to MB_LINEAR_FEW_ROWS rows (as the
 * step's logits read it); above, the GEMV
 * reads the head once per group of rows, and the fp32 GEMM is faster (130m
 * at 64 rows, H100: 2.48 ms a token with the bf16 head's GEMV, 1.65 with
 * every layer and the head fp32) */
#define HS_GEMM_ROWS 4

static bool hs_gemm(const mb_head_sample_params *p)
{
    return p->batch > HS_GEMM_ROWS && (!p->head_bf16 || p->batch > MB_LINEAR_FEW_ROWS);
}

extern "C" size_t mb_head_sample_workspace_cuda(mb_ctx *ctx, const mb_head_sample_params *p)
{
    (void)ctx;
    if (mb_head_sample_fused_fits_cuda(p->d_model, p->vocab) || !hs_gemm(p)) return 0;
    return (size_t)3 * 64 + ((size_t)p->batch * p->d_model + 2 * (size_t)p->batch) * sizeof(float);
}

extern "C" void mb_head_sample_cuda(MB_OPS_HEAD_SAMPLE_ARGS)
{
    if (p->batch <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (!p->have_logits && mb_head_sample_fused_fits_cuda(p->d_model, p->vocab)) {
        MB_CUDA_CHECK(ctx, mb_cuda_launch(st, head_sample_kernel, dim3(p->batch), dim3(HS_THREADS),
                                          hs_smem(p->d_model, p->vocab), *p, y));
        MB_LAUNCH_CHECK(ctx, "head_sample_kernel");
        return;
    }
    if (!p->logits) {
        mb_cuda_fail(ctx, "head_sample", "a vocabulary this large needs the logits buffer", __FILE__, __LINE__);
        return;
    }
    if (p->have_logits) {
        /* only the draw, below */
    } else if (hs_gemm(p)) {
        /* many rows: the norm, then one GEMM reads the head once for all of
         * them (the GEMV kernel reads it for every few rows) */
        if (!ws) {
            mb_cuda_fail(ctx, "head_sample", "many rows need a workspace (mb_head_sample_workspace)", __FILE__, __LINE__);
            return;
        }
        const size_t mark = ws->used;
        const int B = p->batch, d = p->d_model;
        float *xn = mb_arena_floats(ws, (size_t)B * d), *mean = mb_arena_floats(ws, B), *rstd = mb_arena_floats(ws, B);
        if (!xn || !mean || !rstd) {
            mb_ctx_fail(ctx, "%s", mb_error_last()); /* a sizing bug: the arena said why */
            return;
        }
        if (p->norm_b) mb_layernorm_fwd_cuda(ctx, B, d, y, p->norm_w, p->norm_b, p->eps, xn, mean, rstd, 0);
        else mb_rmsnorm_fwd_cuda(ctx, B, d, y, p->norm_w, p->eps, xn, rstd, 0);
        mb_gemm_cuda(ctx, 0, 1, B, p->vocab, d, 1.f, xn, d, p->head, d, 0.f, p->logits, p->ld_logits);
        ws->used = mark;
    } else {
        const mb_norm_gemv_params hp = {.batch = p->batch, .d = p->d_model, .h = y, .norm_w = p->norm_w,
                                    .norm_b = p->norm_b, .eps = p->eps, .W = p->head, .Wb = p->head_bf16,
                                    .n_out = p->vocab,
                                    .y = p->logits, .ldy = p->ld_logits};
        mb_norm_gemv_cuda(ctx, &hp);
    }
    const size_t sh = sr_smem(ctx, st, p->vocab);
    MB_CUDA_CHECK(ctx, mb_cuda_launch(st, sh ? sample_rows_kernel<true> : sample_rows_kernel<false>, dim3(p->batch),
                                      dim3(SR_THREADS), sh, *p));
    MB_LAUNCH_CHECK(ctx, "sample_rows_kernel");
}
