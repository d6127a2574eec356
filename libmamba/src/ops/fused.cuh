/* Building blocks of the fused kernels that give one thread block to a row
 * (ops/block_step.cu, ops/sample.cu): at batch 1 a step is a chain of small
 * GEMVs and norms between block barriers, and these are their one
 * implementation.
 *
 * GEMV: y[i] = W[i, :] . x (+ add[i]) for i < n; W (n, k) row-major in
 * global or shared memory, x in shared memory, both read as T (float4 when
 * k % 4 == 0). A group of G lanes (a power of two, at most 32 and at most
 * the row's length in T) shares a row; each group keeps ROWS rows in
 * flight; NT is the block's thread count. G and NT are template arguments
 * so that the reduction unrolls: with them at run time, index and address
 * arithmetic were most of the step kernel's instructions. */
#ifndef MB_FUSED_CUH
#define MB_FUSED_CUH

#include <cuda_pipeline.h>

#include "core/cuda_util.h"

/* n rounded up to whole float4s: the parts of a kernel's shared memory stay
 * 16-byte aligned */
static __host__ __device__ __forceinline__ int mb_round4(int n) { return (n + 3) & ~3; }

static __device__ __forceinline__ float mb_gemv_dot(float4 a, float4 b)
{
    return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w;
}
static __device__ __forceinline__ float mb_gemv_dot(float a, float b) { return a * b; }

/* n floats global -> shared by a block of NT threads without waiting
 * (cp.async, no registers held), 16 bytes at a time where both ends allow
 * it; __pipeline_commit and __pipeline_wait_prior are the caller's */
template <int NT>
static __device__ __forceinline__ void mb_stage_async(float *dst, const float *src, int n)
{
    if ((reinterpret_cast<uintptr_t>(src) & 15) == 0 && (reinterpret_cast<uintptr_t>(dst) & 15) == 0 && (n & 3) == 0) {
#pragma unroll 1
        for (int i = threadIdx.x * 4; i < n; i += NT * 4) __pipeline_memcpy_async(dst + i, src + i, 16);
    } else {
#pragma unroll 1
        for (int i = threadIdx.x; i < n; i += NT) __pipeline_memcpy_async(dst + i, src + i, 4);
    }
}

template <typename T, int G, int NT, int ROWS>
static __device__ __forceinline__ void mb_gemv_block(int n, int q, const float *W, const float *x, float *y,
                                                     const float *__restrict__ add)
{
    const int lane = threadIdx.x & 31, sub = lane & (G - 1);
    const int groups = (NT >> 5) * (32 / G);
    const int grp = (threadIdx.x >> 5) * (32 / G) + lane / G;
    const T *x4 = reinterpret_cast<const T *>(x);
    const int stride = groups * q; /* from one of a group's rows to its next */
    /* every lane runs the same number of rounds: the shuffles need the
     * whole warp */
#pragma unroll 1
    for (int base = 0; base < n; base += groups * ROWS) {
        const int r0 = base + grp;
        const T *w0 = reinterpret_cast<const T *>(W) + (size_t)r0 * q;
        float acc[ROWS];
#pragma unroll
        for (int u = 0; u < ROWS; u++) acc[u] = 0.f;
        for (int j = sub; j < q; j += G) {
            const T xv = x4[j];
#pragma unroll
            for (int u = 0; u < ROWS; u++)
                if (r0 + u * groups < n) acc[u] += mb_gemv_dot(w0[u * stride + j], xv);
        }
#pragma unroll
        for (int u = 0; u < ROWS; u++) {
#pragma unroll
            for (int o = G >> 1; o > 0; o >>= 1) acc[u] += __shfl_xor_sync(0xffffffffu, acc[u], o);
            const int r = r0 + u * groups;
            if (sub == 0 && r < n) y[r] = acc[u] + (add ? add[r] : 0.f);
        }
    }
}

/* the lane group as wide as the row allows */
template <typename T, int NT, int ROWS>
static __device__ void mb_gemv_block_q(int n, int q, const float *W, const float *x, float *y, const float *add)
{
    if (q >= 32) mb_gemv_block<T, 32, NT, ROWS>(n, q, W, x, y, add);
    else if (q >= 16) mb_gemv_block<T, 16, NT, ROWS>(n, q, W, x, y, add);
    else if (q >= 8) mb_gemv_block<T, 8, NT, ROWS>(n, q, W, x, y, add);
    else if (q >= 4) mb_gemv_block<T, 4, NT, ROWS>(n, q, W, x, y, add);
    else if (q >= 2) mb_gemv_block<T, 2, NT, ROWS>(n, q, W, x, y, add);
    else mb_gemv_block<T, 1, NT, ROWS>(n, q, W, x, y, add);
}

/* float4 reads when k allows (W's rows and x 16-byte aligned then) */
template <int NT, int ROWS>
static __device__ void mb_gemv_block_auto(int n, int k, const float *W, const float *x, float *y, const float *add)
{
    if (k % 4 == 0) mb_gemv_block_q<float4, NT, ROWS>(n, k / 4, W, x, y, add);
    else mb_gemv_block_q<float, NT, ROWS>(n, k, W, x, y, add);
}

/* The weights of a warp's GEMV, fp32 or bf16 (mb_model_set_bf16's uint16
 * halves of floats): a 16-byte load holds `per` of them (vec); dot: one
 * load against the activations of row x at the load's place j; one: weight
 * j alone. The halves of a 32-bit bf16 word are weights 2i (low) and 2i + 1
 * (high). */
template <typename E>
struct mb_wtraits;

template <>
struct mb_wtraits<float> {
    typedef float4 vec;
    static constexpr int per = 4;
    static __device__ __forceinline__ vec zero() { return make_float4(0.f, 0.f, 0.f, 0.f); }
    static __device__ __forceinline__ float one(const float *w, int j) { return w[j]; }
    static __device__ __forceinline__ float dot(vec w, const float *x, int j)
    {
        return mb_gemv_dot(w, reinterpret_cast<const float4 *>(x)[j]);
    }
};

template <>
struct mb_wtraits<uint16_t> {
    typedef uint4 vec;
    static constexpr int per = 8;
    static __device__ __forceinline__ vec zero() { return make_uint4(0u, 0u, 0u, 0u); }
    static __device__ __forceinline__ float one(const uint16_t *w, int j) { return __uint_as_float((unsigned)w[j] << 16); }
    static __device__ __forceinline__ float dot(vec w, const float *x, int j)
    {
        const float4 a = reinterpret_cast<const float4 *>(x)[2 * j], b = reinterpret_cast<const float4 *>(x)[2 * j + 1];
        return __uint_as_float(w.x << 16) * a.x + __uint_as_float(w.x & 0xffff0000u) * a.y +
               __uint_as_float(w.y << 16) * a.z + __uint_as_float(w.y & 0xffff0000u) * a.w +
               __uint_as_float(w.z << 16) * b.x + __uint_as_float(w.z & 0xffff0000u) * b.y +
               __uint_as_float(w.w << 16) * b.z + __uint_as_float(w.w & 0xffff0000u) * b.w;
    }
};

/* A warp's output column n of y = x W^T for M <= MR rows of x (rows ldx
 * apart, global or shared memory): the lanes run along W's row n (read
 * once, coalesced), MR sums a lane, reduced over the warp; every lane gets
 * acc[m], row m's dot product. V: 16-byte loads (k, ldx and the pointers
 * allow them), else a weight at a time. E: float, or uint16_t for bf16
 * weights. The GEMV of the steps of wide models, where a warp a column
 * spreads the weights over every SM (ops/linear.cu, ops/block_step_split.cu). */
template <int MR, bool V, typename E>
static __device__ __forceinline__ void mb_gemv_warp(int M, int k, const float *x, int ldx, const E *__restrict__ w,
                                                    float *acc)
{
    typedef mb_wtraits<E> T;
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int m = 0; m < MR; m++) acc[m] = 0.f;
    /* unrolled so that several loads of W are in flight at once: at batch
     * 1 a lane's few loads are the whole column, and one at a time they
     * were a chain of memory latencies */
    if (V) {
        const typename T::vec *wv = reinterpret_cast<const typename T::vec *>(w);
#pragma unroll 4
        for (int j = lane; j < k / T::per; j += 32) {
            const typename T::vec v = wv[j];
#pragma unroll
            for (int m = 0; m < MR; m++)
                if (m < M) acc[m] += T::dot(v, x + (size_t)m * ldx, j);
        }
    } else {
#pragma unroll 4
        for (int j = lane; j < k; j += 32) {
            const float v = T::one(w, j);
#pragma unroll
            for (int m = 0; m < MR; m++)
                if (m < M) acc[m] += v * x[(size_t)m * ldx + j];
        }
    }
#pragma unroll
    for (int m = 0; m < MR; m++) acc[m] = mb_warp_sum(acc[m]);
}

/* A column's weights into a lane's registers (k / per <= 32 PRE loads),
 * so that a kernel issues them before mb_pdl_wait (the weights never
 * depend on the kernel before: their latency overlaps its tail); the
 * products from them: sp_gemv (ops/block_step_split.cu). */
template <int PRE, typename E>
static __device__ __forceinline__ void mb_gemv_warp_preload(int k, const E *__restrict__ w,
                                                            typename mb_wtraits<E>::vec *wr)
{
    typedef mb_wtraits<E> T;
    const int lane = threadIdx.x & 31;
    const typename T::vec *wv = reinterpret_cast<const typename T::vec *>(w);
#pragma unroll
    for (int i = 0; i < PRE; i++) {
        const int j = lane + 32 * i;
        wr[i] = j < k / T::per ? wv[j] : T::zero();
    }
}

/* The row x (d floats) normed into xn (shared memory): RMSNorm, or
 * LayerNorm with b; red holds 32 floats for the block sums. Every thread
 * of the block calls it; xn is complete after the next barrier. */
template <int NT>
static __device__ __forceinline__ void mb_norm_row_block(int d, const float *x, const float *w, const float *b,
                                                         float eps, float *red, float *xn)
{
    const int tid = threadIdx.x;
    float mean = 0.f;
    if (b) {
        float s = 0.f;
        for (int i = tid; i < d; i += NT) s += x[i];
        mean = mb_block_sum(s, red) / (float)d;
    }
    float ss = 0.f;
    for (int i = tid; i < d; i += NT) ss += (x[i] - mean) * (x[i] - mean);
    const float rstd = rsqrtf(mb_block_sum(ss, red) / (float)d + eps);
    for (int i = tid; i < d; i += NT) xn[i] = (x[i] - mean) * rstd * w[i] + (b ? b[i] : 0.f);
}

#endif
