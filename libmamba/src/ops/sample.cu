/* The head of a generation step and its draw on the GPU: ONE kernel, one
 * thread block per row: the final norm, the head's GEMV, the tempered
 * softmax, the nucleus and the draw (the rule of ops.h, in float), the
 * drawn class written where the next step reads its input.
 *
 * Why on the GPU: with the draw on the host every sample is a round trip
 * (logits down, wait, draw, token up, launch); with it here a whole period
 * of the U-Net's steps replays as one graph and the host only collects the
 * classes. Why fused: at batch 1 the norm, head and draw are each far
 * shorter than a launch.
 *
 * The nucleus without a sort: each class's "mass ranked above it" is a
 * sum over all classes (O(vocab) per thread, all in parallel), and the class
 * is kept when that mass is below top_p of the total; the same set as
 * sorting and cutting (mb_sample_pick), without a sort's barriers. */
#include "core/cuda_util.h"
#include "ops/fused.cuh"
#include "ops/ops.h"

#define HS_THREADS 256

/* exclusive prefix sum over the block (every thread passes one value and
 * gets the sum of the values of the threads before it); sh holds 32 */
static __device__ float hs_block_exclusive(float v, float *sh, float *total)
{
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = HS_THREADS / 32;
    float incl = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const float t = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += t;
    }
    __syncthreads();
    if (lane == 31) sh[wid] = incl;
    __syncthreads();
    float before = 0.f, all = 0.f;
    for (int w = 0; w < nw; w++) {
        before += w < wid ? sh[w] : 0.f;
        all += sh[w];
    }
    *total = all;
    return before + incl - v;
}

static __global__ void __launch_bounds__(HS_THREADS)
head_sample_kernel(const mb_head_sample_params p, const float *__restrict__ y)
{
    extern __shared__ float4 hs_sh4[];
    __shared__ float red[32];
    __shared__ int pick;
    float *xn = reinterpret_cast<float *>(hs_sh4); /* (d) */
    const int d = p.d_model, V = p.vocab, b = blockIdx.x, tid = threadIdx.x;
    float *q = xn + mb_round4(d);                  /* (V): logits, then exp */
    float *w = q + mb_round4(V);                   /* (V): kept exp (nucleus) */
    const float *yr = y + (size_t)b * d;

    mb_pdl_wait(); /* y, count and the previous draw come from kernels before */
    mb_norm_row_block<HS_THREADS>(d, yr, p.norm_w, p.norm_b, p.eps, red, xn);
    __syncthreads();
    mb_gemv_block_auto<HS_THREADS, 4>(V, d, p.head, xn, q, NULL);
    __syncthreads();

    if (p.logits)
        for (int k = tid; k < V; k += HS_THREADS) p.logits[(size_t)b * p.ld_logits + k] = q[k];
    const float T = p.cfg->temperature, top_p = p.cfg->top_p;
    float mx = -INFINITY;
    for (int k = tid; k < V; k += HS_THREADS) mx = fmaxf(mx, q[k]);
    mx = mb_block_max(mx, red, -INFINITY);
    float tot = 0.f;
    for (int k = tid; k < V; k += HS_THREADS) tot += (q[k] = expf((q[k] - mx) / T));
    tot = mb_block_sum(tot, red); /* its barriers publish q */
    const float *kept = q;
    if (top_p < 1.f) {
        const float cut = top_p * tot;
        for (int k = tid; k < V; k += HS_THREADS) {
            const float qk = q[k];
            float above = 0.f;
            for (int j = 0; j < V; j++) {
                const float qj = q[j];
                above += (qj > qk || (qj == qk && j < k)) ? qj : 0.f;
            }
            w[k] = above < cut ? qk : 0.f;
        }
        __syncthreads();
        kept = w;
    }
    /* the draw: each thread owns a run of classes in index order */
    const int per = (V + HS_THREADS - 1) / HS_THREADS, k0 = tid * per, k1 = min(V, k0 + per);
    float mine = 0.f;
    int last = -1;
    for (int k = k0; k < k1; k++)
        if (kept[k] > 0.f) mine += kept[k], last = k;
    float all;
    float c = hs_block_exclusive(mine, red, &all);
    const int64_t n = p.count[b];
    const float target = ((float)mb_sample_bits(p.cfg->seed, n, b) + 0.5f) * 0x1.0p-23f * all;
    if (tid == 0) pick = INT_MAX;
    last = mb_block_max(last, reinterpret_cast<int *>(red), -1);
    int mypick = INT_MAX;
    for (int k = k0; k < k1 && mypick == INT_MAX; k++)
        if (kept[k] > 0.f && (c += kept[k]) > target) mypick = k;
    if (mypick != INT_MAX) atomicMin(&pick, mypick);
    __syncthreads();
    if (tid == 0) {
        const int k = pick != INT_MAX ? pick : last; /* rounding put target at the very end */
        p.next[b] = k;
        if (p.hist) p.hist[(size_t)b * p.hist_len + n % p.hist_len] = k;
        p.count[b] = n + 1;
    }
}

extern "C" void mb_head_sample_cuda(MB_OPS_HEAD_SAMPLE_ARGS)
{
    (void)ws;
    if (p->batch <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const size_t sh = (size_t)(mb_round4(p->d_model) + 2 * mb_round4(p->vocab)) * sizeof(float);
    if (sh > 48 * 1024) {
        mb_cuda_fail(ctx, "head_sample_kernel", "vocabulary too large for the fused draw", __FILE__, __LINE__);
        return;
    }
    MB_CUDA_CHECK(ctx, mb_cuda_launch(st, head_sample_kernel, dim3(p->batch), dim3(HS_THREADS), sh, *p, y));
    MB_LAUNCH_CHECK(ctx, "head_sample_kernel");
}
