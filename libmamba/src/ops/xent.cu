/* Softmax cross-entropy over rows of logits (M, V) on the GPU; the same
 * maths as ops/xent.c.
 *
 * A row belongs to a group of threads: one warp when V <= 1024 (the DNA and
 * mu-law vocabularies, with up to millions of rows), else the whole block.
 * The group takes the row max and argmax (first index on ties, as the CPU),
 * then sum exp(x - max) (float exps, double sums), then, after a barrier
 * that orders every read of the row before any write (dlogits may be
 * logits), writes grad_scale * (softmax - onehot). The target's entry is
 * formed in double: p - 1 cancels when the model is sure.
 *
 * Stats: the first thread of each group keeps its rows' loss (double),
 * count and hits; a block sum gives one partial per block in the device
 * scratch; the partials go to pinned host memory and are added there in
 * block order after a stream sync. The grid depends on M only, so the loss
 * sum is reproducible run to run. */
#include <limits.h>
#include <math.h>

#include "core/cuda_util.h"
#include "ops/ops.h"

enum { XENT_THREADS = 256, XENT_MAX_BLOCKS = 1024, XENT_WARP_MAX_V = 1024 };

struct argmax_t {
    float v;
    int i;
};

static __device__ __forceinline__ argmax_t argmax_combine(argmax_t a, argmax_t b)
{
    return (b.v > a.v || (b.v == a.v && b.i < a.i)) ? b : a;
}

/* Warp argmax; the result is lane 0's, broadcast (so every lane agrees even
 * where NaN makes the combine order-dependent). */
static __device__ __forceinline__ argmax_t warp_argmax(argmax_t a)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        argmax_t b;
        b.v = __shfl_xor_sync(0xffffffffu, a.v, o);
        b.i = __shfl_xor_sync(0xffffffffu, a.i, o);
        a = argmax_combine(a, b);
    }
    a.v = __shfl_sync(0xffffffffu, a.v, 0);
    a.i = __shfl_sync(0xffffffffu, a.i, 0);
    return a;
}

template <bool WARP>
static __device__ __forceinline__ argmax_t group_argmax(argmax_t a, float *shv, int *shi)
{
    a = warp_argmax(a);
    if (WARP) return a;
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* shv, shi free again after the previous row */
    if (lane == 0) {
        shv[wid] = a.v;
        shi[wid] = a.i;
    }
    __syncthreads();
    if (lane < nw) {
        a.v = shv[lane];
        a.i = shi[lane];
    } else {
        a.v = -INFINITY;
        a.i = INT_MAX;
    }
    return warp_argmax(a);
}

template <bool WARP> static __device__ __forceinline__ double group_sum(double s, double *sh)
{
    return WARP ? mb_warp_sum(s) : mb_block_sum(s, sh);
}

template <bool WARP> static __device__ __forceinline__ void group_barrier()
{
    if (WARP)
        __syncwarp();
    else
        __syncthreads();
}

template <bool WARP>
static __global__ void xent_kernel(int M, int V, const float *logits, const int32_t *targets,
                                   int ignore_index, float grad_scale, float *dlogits,
                                   double *row_loss, double *part_loss, unsigned long long *part_cnt,
                                   unsigned long long *part_hit)
{
    __shared__ float shv[32];
    __shared__ int shi[32];
    __shared__ double shd[32];
    __shared__ unsigned long long shu[32];
    const int gsize = WARP ? 32 : (int)blockDim.x;
    const int tid = WARP ? (int)(threadIdx.x & 31) : (int)threadIdx.x;
    const int groups = WARP ? (int)(blockDim.x >> 5) : 1;
    const int gid = WARP ? (int)(threadIdx.x >> 5) : 0;
    double loss = 0.0;
    unsigned long long cnt = 0, hit = 0;
    /* the loop bounds are uniform over a group, so its barriers are too */
    for (int64_t row = (int64_t)blockIdx.x * groups + gid; row < M;
         row += (int64_t)gridDim.x * groups) {
        const float *x = logits + row * V;
        float *dx = dlogits ? dlogits + row * V : NULL;
        const int tgt = targets[row];
        /* out-of-range targets (the caller checks them) count as ignored
         * rather than read out of bounds */
        if (tgt == ignore_index || tgt < 0 || tgt >= V) {
            if (row_loss && tid == 0) row_loss[row] = 0.0;
            if (dx)
                for (int j = tid; j < V; j += gsize) dx[j] = 0.0f;
            continue;
        }
        argmax_t a = {-INFINITY, INT_MAX};
        for (int j = tid; j < V; j += gsize) {
            const float v = x[j];
            if (a.i == INT_MAX || v > a.v) { /* a thread's first element, then strict > */
                a.v = v;
                a.i = j;
            }
        }
        a = group_argmax<WARP>(a, shv, shi);
        const float mx = a.v;
        double s = 0.0;
        for (int j = tid; j < V; j += gsize) s += (double)expf(x[j] - mx);
        s = group_sum<WARP>(s, shd);
        const double lse = (double)mx + log(s);
        if (tid == 0) {
            loss += lse - (double)x[tgt];
            if (row_loss) row_loss[row] = lse - (double)x[tgt];
            cnt += 1;
            hit += a.i == tgt;
        }
        group_barrier<WARP>(); /* every read of this row before any write */
        if (dx)
            for (int j = tid; j < V; j += gsize) {
                const float xj = x[j];
                dx[j] = j == tgt ? (float)((double)grad_scale * (exp((double)xj - lse) - 1.0))
                                 : grad_scale * expf((float)((double)xj - lse));
            }
    }
    /* per block: only the groups' first threads hold nonzero values */
    loss = mb_block_sum(loss, shd);
    cnt = mb_block_sum(cnt, shu);
    hit = mb_block_sum(hit, shu);
    if (threadIdx.x == 0) {
        part_loss[blockIdx.x] = loss;
        part_cnt[blockIdx.x] = cnt;
        part_hit[blockIdx.x] = hit;
    }
}

extern "C" void mb_xent_cuda(MB_OPS_XENT_ARGS)
{
    if (M <= 0 || V <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int warp = V <= XENT_WARP_MAX_V;
    const unsigned nb = warp ? mb_cuda_blocks(M, XENT_THREADS / 32, XENT_MAX_BLOCKS)
                             : mb_cuda_blocks(M, 1, XENT_MAX_BLOCKS);
    double *part_loss = (double *)st->scratch;
    unsigned long long *part_cnt = (unsigned long long *)(part_loss + XENT_MAX_BLOCKS);
    unsigned long long *part_hit = part_cnt + XENT_MAX_BLOCKS;
    if (warp)
        xent_kernel<true><<<nb, XENT_THREADS, 0, st->stream>>>(
            M, V, logits, targets, ignore_index, grad_scale, dlogits, row_loss, part_loss, part_cnt,
            part_hit);
    else
        xent_kernel<false><<<nb, XENT_THREADS, 0, st->stream>>>(
            M, V, logits, targets, ignore_index, grad_scale, dlogits, row_loss, part_loss, part_cnt,
            part_hit);
    MB_LAUNCH_CHECK(ctx, "xent_kernel");
    if (!stats) return;
    /* the three arrays are contiguous: one copy */
    const size_t bytes = (size_t)3 * XENT_MAX_BLOCKS * 8;
    MB_CUDA_CHECK(ctx, cudaMemcpyAsync(st->host, st->scratch, bytes, cudaMemcpyDeviceToHost,
                                       st->stream));
    MB_CUDA_CHECK(ctx, cudaStreamSynchronize(st->stream));
    const double *hl = (const double *)st->host;
    const unsigned long long *hc = (const unsigned long long *)(hl + XENT_MAX_BLOCKS);
    const unsigned long long *hh = hc + XENT_MAX_BLOCKS;
    double loss = 0.0;
    unsigned long long cnt = 0, hit = 0;
    for (unsigned b = 0; b < nb; b++) {
        loss += hl[b];
        cnt += hc[b];
        hit += hh[b];
    }
    stats->loss_sum += loss;
    stats->count += (int64_t)cnt;
    stats->correct += (int64_t)hit;
}
