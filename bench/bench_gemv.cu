/* How a batch-1 GEMV y = W x streams a weight matrix from DRAM, by the way
 * its warps load: measured before the split step's GEMVs
 * (ops/block_step_split.cu) are tuned further (issue 15: the 2.8b shape's
 * bf16 in_proj ran at 1.8 TB/s on an H100, its token at 2.4x the weights'
 * floor against a 1.5x target).
 *
 * Each variant gives a warp COLS columns at a time and has each lane load
 * PRE 16-byte vectors of every one of them before any product (COLS x PRE
 * loads a lane in flight), x staged in shared memory, as many blocks as
 * the SMs hold at once. The split step's sp_gemv is (PRE 12, COLS 1).
 * Several copies of W are taken in turn so that a matrix that fits in L2
 * is still read from DRAM, as a model's layers are. Each row checks y
 * against the CPU (the same bf16 values, in double).
 *
 * A microbenchmark of the device, not of libmamba: it links only the CUDA
 * runtime. Prints a table; no pass/fail.
 *
 *   bench_gemv [--quick] */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_cuda.h"

#define BG_CHECK(call) BENCH_CUDA_CHECK("bench_gemv", call)
#define BG_THREADS 256
#define BG_WARPS (BG_THREADS / 32)

/* weights as fp32 (4 a vector) or bf16 bits (8 a vector) */
template <bool BF>
struct bg_w {
    static constexpr int per = 4;
    static __device__ __forceinline__ float dot(uint4 v, const float *x)
    {
        return __uint_as_float(v.x) * x[0] + __uint_as_float(v.y) * x[1] + __uint_as_float(v.z) * x[2] +
               __uint_as_float(v.w) * x[3];
    }
};
template <>
struct bg_w<true> {
    static constexpr int per = 8;
    static __device__ __forceinline__ float lo(uint32_t u) { return __uint_as_float(u << 16); }
    static __device__ __forceinline__ float hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }
    static __device__ __forceinline__ float dot(uint4 v, const float *x)
    {
        return lo(v.x) * x[0] + hi(v.x) * x[1] + lo(v.y) * x[2] + hi(v.y) * x[3] + lo(v.z) * x[4] + hi(v.z) * x[5] +
               lo(v.w) * x[6] + hi(v.w) * x[7];
    }
};

/* W: n rows of k weights (16-byte vectors, k / per of them a row) */
template <bool BF, int PRE, int COLS>
static __global__ void __launch_bounds__(BG_THREADS) bg_kernel(const uint4 *W, const float *x, float *y, int n, int k)
{
    typedef bg_w<BF> T;
    extern __shared__ float4 bg_sh4[];
    float *xs = reinterpret_cast<float *>(bg_sh4);
    for (int i = threadIdx.x; i < k; i += BG_THREADS) xs[i] = x[i];
    __syncthreads();
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, nv = k / T::per;
    for (int n0 = (blockIdx.x * BG_WARPS + warp) * COLS; n0 < n; n0 += gridDim.x * BG_WARPS * COLS) {
        float acc[COLS];
#pragma unroll
        for (int c = 0; c < COLS; c++) acc[c] = 0.f;
        for (int base = 0; base < nv; base += 32 * PRE) {
            uint4 v[COLS][PRE];
#pragma unroll
            for (int c = 0; c < COLS; c++)
#pragma unroll
                for (int i = 0; i < PRE; i++) {
                    const int j = base + lane + 32 * i;
                    v[c][i] = n0 + c < n && j < nv ? W[(size_t)(n0 + c) * nv + j] : make_uint4(0, 0, 0, 0);
                }
#pragma unroll
            for (int c = 0; c < COLS; c++)
#pragma unroll
                for (int i = 0; i < PRE; i++) {
                    const int j = base + lane + 32 * i;
                    if (j < nv) acc[c] += T::dot(v[c][i], xs + (size_t)j * T::per);
                }
        }
#pragma unroll
        for (int c = 0; c < COLS; c++) {
            float s = acc[c];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (lane == 0 && n0 + c < n) y[n0 + c] = s;
        }
    }
}

typedef void (*bg_fn)(const uint4 *, const float *, float *, int, int);

typedef struct {
    const char *name;
    int n, k, bf;
} bg_shape;

typedef struct {
    int pre, cols;
    bg_fn f32, f16;
} bg_variant;

static float bg_bf16_value(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* one table row: the shape under one variant */
static void bg_row(const bg_shape *sh, const bg_variant *va, int copies, int reps, const double *yref, void *dW,
                   const float *dx, float *dy, float *hy, int sms)
{
    const bg_fn fn = sh->bf ? va->f16 : va->f32;
    const size_t esz = sh->bf ? 2 : 4, bytes = (size_t)sh->n * sh->k * esz;
    const size_t smem = (size_t)sh->k * sizeof(float);
    if (smem > 48 * 1024) BG_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    int fit = 0;
    BG_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, fn, BG_THREADS, smem));
    const int want = (sh->n + BG_WARPS * va->cols - 1) / (BG_WARPS * va->cols);
    const int blocks = want < fit * sms ? want : fit * sms;
    /* warm-up on every copy, then the timed passes in turn */
    for (int c = 0; c < copies; c++)
        fn<<<blocks, BG_THREADS, smem>>>((const uint4 *)((const char *)dW + (size_t)c * bytes), dx, dy, sh->n, sh->k);
    BG_CHECK(cudaGetLastError());
    const bench_timer t = bench_tic(0);
    for (int r = 0; r < reps; r++)
        fn<<<blocks, BG_THREADS, smem>>>((const uint4 *)((const char *)dW + (size_t)(r % copies) * bytes), dx, dy,
                                         sh->n, sh->k);
    const float ms = bench_toc(t, 0);
    BG_CHECK(cudaGetLastError());
    /* the last pass read copy (reps - 1) % copies; every copy holds the same W */
    BG_CHECK(cudaMemcpy(hy, dy, (size_t)sh->n * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int i = 0; i < sh->n; i++) {
        const double e = fabs(hy[i] - yref[i]) / (fabs(yref[i]) + 1e-3);
        if (e > worst) worst = e;
    }
    const double us = 1e3 * ms / reps, gbs = (double)bytes / (us * 1e3);
    printf("| %-22s | %5s | %3d | %4d | %5d (%d/SM) | %9.2f | %7.0f | %9.2e |\n", sh->name, sh->bf ? "bf16" : "fp32",
           va->pre, va->cols, blocks, fit, us, gbs, worst);
}

int main(int argc, char **argv)
{
    const int quick = bench_args_quick(argc, argv, "bench_gemv");
    int dev = 0, sms = 0;
    cudaDeviceProp pr;
    BG_CHECK(cudaGetDevice(&dev));
    BG_CHECK(cudaGetDeviceProperties(&pr, dev));
    sms = pr.multiProcessorCount;
    printf("bench_gemv on %s: %d SMs, L2 %d MB; GB/s of W read a pass (x and y aside)\n\n", pr.name, sms,
           pr.l2CacheSize >> 20);
    const bg_shape shapes[] = {
        {"2.8b in_proj", 10240, 2560, 1}, {"2.8b out_proj", 2560, 5120, 1}, {"2.8b x_proj", 192, 5120, 1},
        {"130m in_proj", 3072, 768, 0},   {"130m out_proj", 768, 1536, 0},  {"130m head", 50280, 768, 0},
    };
    const bg_variant variants[] = {
        {4, 1, bg_kernel<false, 4, 1>, bg_kernel<true, 4, 1>},    {8, 1, bg_kernel<false, 8, 1>, bg_kernel<true, 8, 1>},
        {12, 1, bg_kernel<false, 12, 1>, bg_kernel<true, 12, 1>}, {16, 1, bg_kernel<false, 16, 1>, bg_kernel<true, 16, 1>},
        {4, 2, bg_kernel<false, 4, 2>, bg_kernel<true, 4, 2>},    {8, 2, bg_kernel<false, 8, 2>, bg_kernel<true, 8, 2>},
        {4, 4, bg_kernel<false, 4, 4>, bg_kernel<true, 4, 4>},
    };
    const int n_sh = (int)(sizeof shapes / sizeof shapes[0]), n_va = (int)(sizeof variants / sizeof variants[0]);
    const int reps = quick ? 8 : 40;
    printf("| shape                  | W     | PRE | COLS | blocks       | us a pass | GB/s    | rel err   |\n");
    printf("|------------------------|-------|-----|------|--------------|-----------|---------|-----------|\n");
    for (int s = 0; s < n_sh; s++) {
        const bg_shape *sh = &shapes[s];
        const size_t nw = (size_t)sh->n * sh->k, esz = sh->bf ? 2 : 4, bytes = nw * esz;
        /* copies enough to pass 4x the L2 */
        int copies = (int)((4.0 * pr.l2CacheSize) / (double)bytes) + 1;
        if (copies > 64) copies = 64;
        void *hW = malloc(bytes);
        float *hx = (float *)malloc((size_t)sh->k * 4), *hy = (float *)malloc((size_t)sh->n * 4);
        double *yref = (double *)malloc((size_t)sh->n * sizeof(double));
        if (!hW || !hx || !hy || !yref) {
            fprintf(stderr, "bench_gemv: out of memory\n");
            return 1;
        }
        srand(7 + s);
        for (int i = 0; i < sh->k; i++) hx[i] = (float)rand() / RAND_MAX - 0.5f;
        for (size_t i = 0; i < nw; i++) {
            const float w = ((float)rand() / RAND_MAX - 0.5f) / sqrtf((float)sh->k);
            if (sh->bf) {
                uint32_t u;
                memcpy(&u, &w, 4);
                ((uint16_t *)hW)[i] = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16); /* round to nearest even */
            } else ((float *)hW)[i] = w;
        }
        for (int r = 0; r < sh->n; r++) {
            double a = 0;
            for (int i = 0; i < sh->k; i++) {
                const size_t at = (size_t)r * sh->k + i;
                a += (double)(sh->bf ? bg_bf16_value(((uint16_t *)hW)[at]) : ((float *)hW)[at]) * hx[i];
            }
            yref[r] = a;
        }
        void *dW;
        float *dx, *dy;
        BG_CHECK(cudaMalloc(&dW, bytes * copies));
        BG_CHECK(cudaMalloc((void **)&dx, (size_t)sh->k * 4));
        BG_CHECK(cudaMalloc((void **)&dy, (size_t)sh->n * 4));
        for (int c = 0; c < copies; c++)
            BG_CHECK(cudaMemcpy((char *)dW + (size_t)c * bytes, hW, bytes, cudaMemcpyHostToDevice));
        BG_CHECK(cudaMemcpy(dx, hx, (size_t)sh->k * 4, cudaMemcpyHostToDevice));
        for (int v = 0; v < n_va; v++) bg_row(sh, &variants[v], copies, reps, yref, dW, dx, dy, hy, sms);
        BG_CHECK(cudaFree(dW));
        BG_CHECK(cudaFree(dx));
        BG_CHECK(cudaFree(dy));
        free(hW), free(hx), free(hy), free(yref);
    }
    return 0;
}
