/* What the GPU's ways of ordering work cost, measured before a batch-1
 * generation step is redesigned around one of them (issue 15: the DNA model
 * at batch 1 runs ~35 dependent kernels a token, 70 us on an H100, against
 * a 40 us target):
 *
 *   chain     K dependent kernels replayed from a graph, each reading what
 *             the one before wrote: us a kernel, with and without
 *             programmatic dependent launch (what the split step uses), at
 *             1, 32 and 132 blocks
 *   cluster   one kernel of C thread blocks in a cluster doing K cluster
 *             barriers (ns a barrier), and K exchanges through distributed
 *             shared memory (a barrier, a read of every block's slot, a
 *             barrier: what a reduction over a cluster costs)
 *   grid      one cooperative kernel, a block an SM, K grid-wide barriers
 *   stream    C blocks (one an SM) reading a buffer that stays in L2 (the
 *             DNA model's 13 MB of fp32 weights, 6.5 MB as bf16): us a
 *             pass and GB/s an SM, i.e. what a cluster of C SMs pays to
 *             read a model's weights once a token
 *
 * A microbenchmark of the device, not of libmamba: it links only the CUDA
 * runtime. Prints tables; no pass/fail.
 *
 *   bench_latency [--quick] */
#include <cooperative_groups.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

namespace cg = cooperative_groups;

#include "bench_cuda.h"

#define BL_CHECK(call) BENCH_CUDA_CHECK("bench_latency", call)


/* ---- chain -------------------------------------------------------------- */

/* Block 0's thread 0 reads the counter the kernel before wrote and writes
 * it plus one: each kernel depends on the one before, as a step's do. The
 * other blocks only exist (a launch of that many blocks, as a GEMV's). */
template <bool PDL>
__global__ void bl_link(int *c)
{
#if __CUDA_ARCH__ >= 900
    if (PDL) {
        cudaGridDependencySynchronize();
        cudaTriggerProgrammaticLaunchCompletion();
    }
#endif
    if (blockIdx.x == 0 && threadIdx.x == 0) c[0] = c[0] + 1;
}

static double bl_chain(int K, int blocks, bool pdl, int reps)
{
    int *c;
    BL_CHECK(cudaMalloc(&c, sizeof(int)));
    BL_CHECK(cudaMemset(c, 0, sizeof(int)));
    cudaStream_t s;
    BL_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(256);
    cfg.stream = s;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    cudaGraph_t g;
    cudaGraphExec_t ge;
    BL_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    for (int k = 0; k < K; k++)
        BL_CHECK(pdl ? cudaLaunchKernelEx(&cfg, bl_link<true>, c) : cudaLaunchKernelEx(&cfg, bl_link<false>, c));
    BL_CHECK(cudaStreamEndCapture(s, &g));
    BL_CHECK(cudaGraphInstantiate(&ge, g, 0));
    for (int i = 0; i < 3; i++) BL_CHECK(cudaGraphLaunch(ge, s)); /* warm-up */
    const bench_timer t = bench_tic(s);
    for (int i = 0; i < reps; i++) BL_CHECK(cudaGraphLaunch(ge, s));
    const float ms = bench_toc(t, s);
    int got;
    BL_CHECK(cudaMemcpy(&got, c, sizeof(int), cudaMemcpyDeviceToHost));
    if (got != K * (reps + 3)) fprintf(stderr, "bench_latency: chain counted %d, expected %d\n", got, K * (reps + 3));
    BL_CHECK(cudaGraphExecDestroy(ge));
    BL_CHECK(cudaGraphDestroy(g));
    BL_CHECK(cudaStreamDestroy(s));
    BL_CHECK(cudaFree(c));
    return 1e3 * ms / ((double)K * reps);
}

/* ---- cluster barriers and exchanges --------------------------------------- */

/* K barriers (XCH false), or K exchanges: each block writes its slot, all
 * wait, each reads every block's slot through distributed shared memory,
 * all wait again (the buffer is reused). out keeps the sums live. */
template <bool XCH>
__global__ void bl_cluster(int K, float *out)
{
    __shared__ float slot[32];
    cg::cluster_group cl = cg::this_cluster();
    const unsigned n = cl.num_blocks(), me = cl.block_rank();
    float acc = 0.f;
    for (int k = 0; k < K; k++) {
        if (XCH) {
            if (threadIdx.x < 32) slot[threadIdx.x] = (float)(k + me + threadIdx.x);
            cl.sync();
            if (threadIdx.x < n) {
                const float *r = cl.map_shared_rank(slot, threadIdx.x);
                acc += r[me & 31];
            }
        }
        cl.sync();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

static double bl_cluster_ns(int C, bool xch, int K)
{
    float *out;
    BL_CHECK(cudaMalloc(&out, 256 * sizeof(float)));
    void (*fn)(int, float *) = xch ? bl_cluster<true> : bl_cluster<false>;
    if (C > 8) BL_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = C;
    at[0].val.clusterDim.y = 1;
    at[0].val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(C);
    cfg.blockDim = dim3(256);
    cfg.attrs = at;
    cfg.numAttrs = 1;
    BL_CHECK(cudaLaunchKernelEx(&cfg, fn, 16, out)); /* warm-up */
    const bench_timer t = bench_tic(0);
    BL_CHECK(cudaLaunchKernelEx(&cfg, fn, K, out));
    const float ms = bench_toc(t, 0);
    BL_CHECK(cudaFree(out));
    return 1e6 * ms / K;
}

/* ---- grid-wide barriers --------------------------------------------------- */

__global__ void bl_grid(int K, int *out)
{
    cg::grid_group g = cg::this_grid();
    for (int k = 0; k < K; k++) g.sync();
    if (blockIdx.x == 0 && threadIdx.x == 0) out[0] = K;
}

static double bl_grid_ns(int blocks, int K)
{
    int *out;
    BL_CHECK(cudaMalloc(&out, sizeof(int)));
    int k0 = 16;
    void *a0[] = {&k0, &out};
    BL_CHECK(cudaLaunchCooperativeKernel((void *)bl_grid, dim3(blocks), dim3(256), a0, 0, 0));
    void *a[] = {&K, &out};
    const bench_timer t = bench_tic(0);
    BL_CHECK(cudaLaunchCooperativeKernel((void *)bl_grid, dim3(blocks), dim3(256), a, 0, 0));
    const float ms = bench_toc(t, 0);
    BL_CHECK(cudaFree(out));
    return 1e6 * ms / K;
}

/* ---- a buffer streamed from L2 by a few SMs -------------------------------- */

/* Block b sums its contiguous slice of n float4s, R times over (the slice
 * stays in L2 after the first pass: the whole buffer is smaller than L2). */
__global__ void __launch_bounds__(1024) bl_stream(const float4 *__restrict__ w, size_t n, int R, float *out)
{
    const size_t per = (n + gridDim.x - 1) / gridDim.x, lo = per * blockIdx.x;
    const size_t hi = lo + per < n ? lo + per : n;
    float acc = 0.f;
    for (int r = 0; r < R; r++) {
#pragma unroll 4
        for (size_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
            const float4 v = w[i];
            acc += v.x + v.y + v.z + v.w;
        }
    }
    if (acc == 12345.f) out[0] = acc; /* never: keeps the loads */
}

static double bl_stream_us(size_t bytes, int blocks, int R)
{
    float4 *w;
    float *out;
    BL_CHECK(cudaMalloc(&w, bytes));
    BL_CHECK(cudaMemset(w, 0, bytes));
    BL_CHECK(cudaMalloc(&out, sizeof(float)));
    const size_t n = bytes / sizeof(float4);
    bl_stream<<<blocks, 1024>>>(w, n, 2, out); /* into L2 */
    BL_CHECK(cudaGetLastError());
    const bench_timer t = bench_tic(0);
    bl_stream<<<blocks, 1024>>>(w, n, R, out);
    BL_CHECK(cudaGetLastError());
    const float ms = bench_toc(t, 0);
    BL_CHECK(cudaFree(w));
    BL_CHECK(cudaFree(out));
    return 1e3 * ms / R;
}

int main(int argc, char **argv)
{
    const int quick = bench_args_quick(argc, argv, "bench_latency");
    int dev = 0, sms = 0, l2 = 0;
    cudaDeviceProp pr;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&pr, dev) != cudaSuccess) {
        fprintf(stderr, "bench_latency: no CUDA device\n");
        return 1;
    }
    sms = pr.multiProcessorCount;
    l2 = pr.l2CacheSize;
    printf("bench_latency on %s: %d SMs, L2 %.0f MB, compute %d.%d\n\n", pr.name, sms, l2 / 1e6, pr.major, pr.minor);
    const int reps = quick ? 20 : 200, K = 64;

    printf("| chain of %d dependent kernels, graph | blocks | us a kernel |\n|---|---|---|\n", K);
    const int nb[3] = {1, 32, sms};
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < 3; i++)
            printf("| %s | %d | %.2f |\n", p ? "PDL" : "plain", nb[i], bl_chain(K, nb[i], p == 1, reps));

    if (pr.major >= 9) {
        const int KB = quick ? 2000 : 20000;
        printf("\n| cluster of C blocks (256 threads) | C | ns a barrier | ns an exchange (2 barriers + DSMEM reads) |\n|---|---|---|---|\n");
        const int cs[4] = {2, 4, 8, 16};
        for (int i = 0; i < 4; i++)
            printf("| one kernel | %d | %.0f | %.0f |\n", cs[i], bl_cluster_ns(cs[i], false, KB), bl_cluster_ns(cs[i], true, KB));
    }
    int coop = 0;
    BL_CHECK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
    if (coop) {
        const int KG = quick ? 1000 : 10000;
        printf("\n| cooperative grid (256 threads a block) | blocks | ns a grid barrier |\n|---|---|---|\n");
        const int gb[3] = {16, 32, sms};
        for (int i = 0; i < 3; i++) printf("| one kernel | %d | %.0f |\n", gb[i], bl_grid_ns(gb[i], KG));
    }

    printf("\n| buffer in L2, read by C blocks of 1024 threads (one an SM) | MB | C | us a pass | GB/s an SM | GB/s in all |\n|---|---|---|---|---|---|\n");
    const double mbs[2] = {6.5, 13.0};
    const int cb[4] = {8, 16, 32, sms};
    for (int m = 0; m < 2; m++) {
        const size_t bytes = (size_t)(mbs[m] * 1e6) / 16 * 16;
        if ((int)bytes > l2 * 3 / 4) continue; /* would not stay in L2 */
        for (int i = 0; i < 4; i++) {
            const double us = bl_stream_us(bytes, cb[i], quick ? 10 : 50);
            printf("| sum of the buffer | %.1f | %d | %.1f | %.1f | %.0f |\n", mbs[m], cb[i], us, bytes / us / 1e3 / cb[i],
                   bytes / us / 1e3);
        }
    }
    return 0;
}
