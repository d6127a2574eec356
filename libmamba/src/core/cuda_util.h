/* Internal to the CUDA backend: the per-context state, error checking, and
 * device helpers shared by the kernels in the ops .cu files. Included only by .cu
 * files (the parts below __CUDACC__ need nvcc).
 *
 * Error convention: ops return void. A failed CUDA or cuBLAS call (or a
 * failed launch) marks the context (ctx->failed, sticky) and sets
 * "cuda: <call>: <reason> (file:line)" through mb_error_set; only the first
 * failure on a context writes the message, so the original reason survives
 * the cascade of failures a broken context produces. The op then returns.
 *
 * Set MB_CUDA_SYNC=1 in the environment to synchronize after every launch:
 * slow, but an asynchronous fault is then reported at the kernel that made
 * it instead of at some later call. */
#ifndef MB_CUDA_UTIL_H
#define MB_CUDA_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "core/core.h"

/* Device scratch for reductions (partial sums): one op at a time uses it,
 * in stream order, so it needs no allocator. */
#define MB_CUDA_SCRATCH_BYTES ((size_t)4 << 20)
/* Pinned host scratch: reduction results that go to the host. */
#define MB_CUDA_HOST_SCRATCH_BYTES ((size_t)64 << 10)
/* cuBLAS workspace, given to the handle so that cuBLAS never allocates
 * behind our back (and GEMMs can be captured in a CUDA graph); 32 MiB is
 * what NVIDIA recommends for Hopper. */
#define MB_CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct {
    int device;            /* cuda:N */
    int sm_count;
    cudaStream_t stream;   /* non-blocking; every op of the context runs on it */
    cublasHandle_t cublas; /* bound to stream */
    int tf32;              /* the math mode the handle is in now (1: TF32) */
    void *cublas_ws;
    void *scratch;         /* device, MB_CUDA_SCRATCH_BYTES */
    void *host;            /* pinned host, MB_CUDA_HOST_SCRATCH_BYTES */
    int sync_debug;        /* MB_CUDA_SYNC=1 */
    int pdl;               /* programmatic dependent launch: cc 9.0+, unless MB_CUDA_PDL=0 */
    int cc_major;          /* compute capability (9: thread-block clusters, PDL) */
    int step_path;         /* MB_CUDA_STEP=fused|split|layer|cluster: the block step's kernels for every width
                            * (MB_STEP_*; to measure one against the other), else MB_STEP_AUTO */
    int stk_say;           /* MB_CUDA_STK_SAY=1: the cluster step says on stderr its clusters and rows a
                            * cluster (and the clusters the device holds at once) whenever they change */
    int stk_said;          /* the last said: (C, rows a cluster, rows), packed; 0 none */
    int stk_rows;          /* MB_CUDA_STK_ROWS=1|2|4|6|8|10|12: the cluster step's rows a cluster where such
                            * clusters fit, else the most that fit (to test an instance at small shapes,
                            * or time one); 0: AUTO's choice (ops/stack_step.cu) */
    /* blocks an SM holds of a kernel at a shared-memory size, asked of the
     * runtime once (the split step sizes its grids by it at every launch
     * that is not a graph's replay) */
    struct {
        const void *fn;
        size_t smem;
        int fit;
    } occ[32];
    int n_occ;
} mb_cuda_state;

#ifdef __cplusplus
extern "C" {
#endif

/* Record a failure on ctx (ctx->failed = 1; message only if it is the
 * first). Returns -1. */
int mb_cuda_fail(mb_ctx *ctx, const char *call, const char *reason, const char *file, int line);
/* 0 when err is cudaSuccess, else mb_cuda_fail. */
int mb_cuda_check_(mb_ctx *ctx, cudaError_t err, const char *call, const char *file, int line);
int mb_cublas_check_(mb_ctx *ctx, cublasStatus_t st, const char *call, const char *file, int line);
/* After a launch: cudaGetLastError (and a stream sync under MB_CUDA_SYNC). */
int mb_cuda_launched_(mb_ctx *ctx, const char *kernel, const char *file, int line);
/* The context's state with its device made current on this thread, or NULL
 * (context marked failed) when that cannot be done. Every op starts here. */
mb_cuda_state *mb_cuda_enter(mb_ctx *ctx);

#ifdef __cplusplus
}
#endif

/* Expression forms: 0 on success, -1 (context marked) on failure. */
#define MB_CUDA_OK(ctx, call) mb_cuda_check_((ctx), (call), #call, __FILE__, __LINE__)
#define MB_CUBLAS_OK(ctx, call) mb_cublas_check_((ctx), (call), #call, __FILE__, __LINE__)
#define MB_CUDA_LAUNCHED(ctx, kernel) mb_cuda_launched_((ctx), (kernel), __FILE__, __LINE__)

/* Statement forms that return from the calling function on failure; the
 * _RET forms return `ret` (functions with a value). */
#define MB_CUDA_CHECK(ctx, call) \
    do { if (MB_CUDA_OK(ctx, call)) return; } while (0)
#define MB_CUDA_CHECK_RET(ctx, call, ret) \
    do { if (MB_CUDA_OK(ctx, call)) return (ret); } while (0)
#define MB_CUBLAS_CHECK(ctx, call) \
    do { if (MB_CUBLAS_OK(ctx, call)) return; } while (0)
#define MB_CUBLAS_CHECK_RET(ctx, call, ret) \
    do { if (MB_CUBLAS_OK(ctx, call)) return (ret); } while (0)
/* After every <<<...>>>: MB_LAUNCH_CHECK(ctx, "kernel name"). */
#define MB_LAUNCH_CHECK(ctx, kernel) \
    do { if (MB_CUDA_LAUNCHED(ctx, kernel)) return; } while (0)
#define MB_LAUNCH_CHECK_RET(ctx, kernel, ret) \
    do { if (MB_CUDA_LAUNCHED(ctx, kernel)) return (ret); } while (0)

#ifdef __CUDACC__

/* ---- programmatic dependent launch ------------------------------------------
 * (compute capability 9.0+.) A kernel launched by mb_cuda_launch on a
 * context with pdl may start while the kernel before it on the stream is
 * still running, so that its prologue (staging weights into shared memory,
 * the launch itself) overlaps that kernel's tail: at batch 1 a generation
 * step is a chain of one-block kernels, each mostly latency. It must call
 * mb_pdl_wait() before it touches anything an earlier kernel may write;
 * what it reads before must be written by nothing in the step (the
 * weights: a step always starts with the tokens' upload, after any
 * optimizer step). mb_pdl_wait also lets the next kernel start, so at most
 * one kernel runs ahead. Graph capture keeps these edges. MB_CUDA_PDL=0
 * turns it off (for comparisons). */
static __device__ __forceinline__ void mb_pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cudaGridDependencySynchronize();
    cudaTriggerProgrammaticLaunchCompletion();
#endif
}

template <typename... K, typename... A>
static inline cudaError_t mb_cuda_launch(const mb_cuda_state *st, void (*fn)(K...), dim3 grid, dim3 block,
                                         size_t smem, A... args)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st->stream;
    cfg.attrs = at;
    cfg.numAttrs = st->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, fn, args...);
}

/* ---- launch geometry ------------------------------------------------------
 * Kernels loop with grid strides, so grids are capped: a cap never changes a
 * result, only how the work is spread. */
#define MB_CUDA_MAX_BLOCKS 8192u  /* 1D grids: ~8 waves of 256 threads on an H100 */
#define MB_CUDA_MAX_GRID_Y 65535u

static inline unsigned mb_cuda_blocks(int64_t n, int threads, unsigned cap)
{
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    return b > (int64_t)cap ? cap : (unsigned)b;
}

/* 2D elementwise kernels over (rows, cols) views: 32 x 8 threads, a warp
 * along a row (128 contiguous bytes), grid-stride loops both ways. */
#define MB_TILE_X 32
#define MB_TILE_Y 8
static inline dim3 mb_cuda_grid2d(int64_t rows, int64_t cols)
{
    return dim3(mb_cuda_blocks(cols, MB_TILE_X, 65535u),
                mb_cuda_blocks(rows, MB_TILE_Y, MB_CUDA_MAX_GRID_Y));
}
/* Their loops, in 64 bits (an int plus a grid stride could wrap near
 * INT_MAX). */
#define MB_FOR_ROWS(i, M) \
    for (int64_t i = (int64_t)blockIdx.y * MB_TILE_Y + threadIdx.y; i < (M); \
         i += (int64_t)gridDim.y * MB_TILE_Y)
#define MB_FOR_COLS(j, N) \
    for (int64_t j = (int64_t)blockIdx.x * MB_TILE_X + threadIdx.x; j < (N); \
         j += (int64_t)gridDim.x * MB_TILE_X)

/* ---- SiLU and softplus ---------------------------------------------------
 * The elementwise ops (ops/act.cu), the conv's fused SiLU (ops/conv1d.cu)
 * and the generation steps' kernels (ops/block_step*.cu, ops/stack_step.cu)
 * share these: the CPU's expressions (ops/act.c), expf and not __expf. */
static __device__ __forceinline__ float mb_sigmoid_dev(float x) { return 1.0f / (1.0f + expf(-x)); }
static __device__ __forceinline__ float mb_silu_dev(float x) { return x * mb_sigmoid_dev(x); }
/* torch.nn.functional.softplus's default threshold */
#define MB_SOFTPLUS_THRESHOLD 20.0f
static __device__ __forceinline__ float mb_softplus_dev(float x)
{
    return x > MB_SOFTPLUS_THRESHOLD ? x : log1pf(expf(x));
}
/* the gradient through the SiLU at x of dy */
static __device__ __forceinline__ float mb_silu_bwd_dev(float x, float dy)
{
    const float s = mb_sigmoid_dev(x);
    return dy * (s * (1.0f + x * (1.0f - s)));
}

/* ---- warp and block reductions -------------------------------------------
 * XOR butterflies: every lane ends with the same value (a + b == b + a
 * exactly, so the lanes' trees agree bit for bit). Blocks must be whole
 * warps. */
template <typename T> __device__ __forceinline__ T mb_warp_sum(T v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum v[0..V) over the lanes of the warp, leaving the total of value j on
 * lane j % 32 in out[j / 32]: a butterfly reduce-scatter, 31 shuffles per
 * 32 values. Each level is its own template instance so that every index is
 * a compile-time constant and v stays in registers (with a loop over the
 * levels nvcc kept v in local memory). */
template <int HALF>
__device__ __forceinline__ void mb_warp_rs_level(float *w, int lane)
{
    const bool upper = (lane & HALF) != 0;
#pragma unroll
    for (int k = 0; k < HALF; k++) {
        const float send = upper ? w[k] : w[k + HALF];
        const float keep = upper ? w[k + HALF] : w[k];
        w[k] = keep + __shfl_xor_sync(0xffffffffu, send, HALF);
    }
}

/* over the W lanes (32 or 16) that differ in their low bits: in groups of W
 * values, value j of group g summed on lane j + W g's (lane % W == j) */
template <int V, int W = 32>
__device__ __forceinline__ void mb_warp_reduce_scatter(float *v, float *out, int lane)
{
#pragma unroll
    for (int g = 0; g < V / W; g++) {
        float *w = v + W * g;
        if (W == 32) mb_warp_rs_level<16>(w, lane);
        mb_warp_rs_level<8>(w, lane);
        mb_warp_rs_level<4>(w, lane);
        mb_warp_rs_level<2>(w, lane);
        mb_warp_rs_level<1>(w, lane);
        out[g] = w[0];
    }
}

/* v[0..V) (V a power of 2, at most W) each summed over the W lanes that
 * differ in their low bits (W a power of 2: 32, the whole warp; 16, each
 * half), the total of value j left on the lanes j + V k: the reduce-scatter
 * over the V lanes that differ in their lowest bits (V - 1 shuffles), then
 * butterflies over the rest of the W (one shuffle each), where V
 * butterflies of their own would take log2(W) V shuffles. v is overwritten. */
template <int V, int W = 32> __device__ __forceinline__ float mb_warp_rs_pow2(float *v, int lane)
{
    static_assert(V >= 1 && V <= W && W <= 32 && (V & (V - 1)) == 0 && (W & (W - 1)) == 0, "powers of 2");
    if constexpr (V >= 32) mb_warp_rs_level<16>(v, lane);
    if constexpr (V >= 16) mb_warp_rs_level<8>(v, lane);
    if constexpr (V >= 8) mb_warp_rs_level<4>(v, lane);
    if constexpr (V >= 4) mb_warp_rs_level<2>(v, lane);
    if constexpr (V >= 2) mb_warp_rs_level<1>(v, lane);
    float t = v[0];
#pragma unroll
    for (int o = V; o < W; o <<= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
    return t;
}

/* Sum over a 1D block; every thread gets the result. sh holds 32 T. Safe to
 * call repeatedly (the leading barrier protects sh from the previous use). */
template <typename T> __device__ __forceinline__ T mb_block_sum(T v, T *sh)
{
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int nw = (blockDim.x + 31) >> 5;
    v = mb_warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : T(0);
    return mb_warp_sum(v);
}

/* Max over a warp and over a 1D block, as the sums above (max is exact, so
 * every order agrees). */
template <typename T> __device__ __forceinline__ T mb_warp_max(T v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
template <typename T> __device__ __forceinline__ T mb_block_max(T v, T *sh, T lowest)
{
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    const int nw = (blockDim.x + 31) >> 5;
    v = mb_warp_max(v);
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : lowest;
    return mb_warp_max(v);
}

/* ---- two-pass column reduction ---------------------------------------------
 * out_q[c] += sum over rows r of f(r, c)_q, for q < f.nq (at most MAXQ), as
 * dw, dbias and column sums need: no float atomics, and the summation order
 * depends only on the shape, so results are reproducible run to run.
 *
 * Pass 1: a block of 32 x 8 threads owns 32 columns of one chunk of rows;
 * each thread accumulates (in double) every 8th row of the chunk, the 8 are
 * added in a fixed order and the block writes its partials to the scratch,
 * laid out [chunk][q][column]. Pass 2: one thread per (q, column) adds the
 * chunks' partials in chunk order and calls f.store(q, c, sum) (which does
 * out = float(out + sum), as the CPU reference). Columns beyond what the
 * scratch holds are done in segments.
 *
 * F provides: int nq; __device__ void load(int64_t r, int c, double *acc)
 * const (adds row r's terms for column c into acc[0..nq)) ; __device__ void
 * store(int q, int c, double s) const. */
template <int MAXQ, class F>
__global__ void mb_colred_pass1(F f, int64_t rows, int col0, int ncols, int64_t rows_per_chunk,
                                double *part)
{
    __shared__ double sh[MAXQ][MB_TILE_Y][MB_TILE_X + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * MB_TILE_X + tx;
    const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
    const int64_t r1 = r0 + rows_per_chunk < rows ? r0 + rows_per_chunk : rows;
    double acc[MAXQ];
#pragma unroll
    for (int q = 0; q < MAXQ; q++) acc[q] = 0.0;
    if (c < ncols)
        for (int64_t r = r0 + ty; r < r1; r += MB_TILE_Y) f.load(r, col0 + c, acc);
#pragma unroll
    for (int q = 0; q < MAXQ; q++) sh[q][ty][tx] = acc[q];
    __syncthreads();
    if (ty == 0 && c < ncols) {
#pragma unroll
        for (int q = 0; q < MAXQ; q++) {
            if (q >= f.nq) break;
            double s = 0.0;
#pragma unroll
            for (int k = 0; k < MB_TILE_Y; k++) s += sh[q][k][tx];
            part[((size_t)blockIdx.y * f.nq + q) * ncols + c] = s;
        }
    }
}

template <class F>
__global__ void mb_colred_pass2(F f, int col0, int ncols, int nchunks, const double *part)
{
    const int64_t total = (int64_t)f.nq * ncols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int q = (int)(i / ncols), c = (int)(i - (int64_t)q * ncols);
        double s = 0.0;
        for (int k = 0; k < nchunks; k++) s += part[((size_t)k * f.nq + q) * ncols + c];
        f.store(q, col0 + c, s);
    }
}

/* Runs both passes over rows x cols; 0 or -1 (context marked). */
template <int MAXQ, class F>
static int mb_colred_run(mb_ctx *ctx, mb_cuda_state *st, const F &f, int64_t rows, int cols)
{
    if (rows <= 0 || cols <= 0) return 0; /* adds nothing */
    const int64_t cap = (int64_t)(MB_CUDA_SCRATCH_BYTES / sizeof(double));
    const int nq = f.nq;
    double *part = (double *)st->scratch;
    int64_t seg = cap / nq;
    if (seg > cols) seg = cols;
    for (int col0 = 0; col0 < cols; col0 += (int)seg) {
        const int nc = (int)(cols - col0 < seg ? cols - col0 : seg);
        const int64_t colblocks = (nc + MB_TILE_X - 1) / MB_TILE_X;
        /* about 1024 blocks in all, chunks of at least 64 rows (8 per
         * thread), as many chunks as the scratch holds */
        int64_t nchunks = 1024 / colblocks;
        const int64_t by_rows = (rows + 63) / 64, by_scratch = cap / ((int64_t)nq * nc);
        if (nchunks > by_rows) nchunks = by_rows;
        if (nchunks > by_scratch) nchunks = by_scratch;
        if (nchunks > (int64_t)MB_CUDA_MAX_GRID_Y) nchunks = MB_CUDA_MAX_GRID_Y;
        if (nchunks < 1) nchunks = 1;
        const int64_t rpc = (rows + nchunks - 1) / nchunks;
        nchunks = (rows + rpc - 1) / rpc;
        mb_colred_pass1<MAXQ, F><<<dim3((unsigned)colblocks, (unsigned)nchunks),
                                   dim3(MB_TILE_X, MB_TILE_Y), 0, st->stream>>>(
            f, rows, col0, nc, rpc, part);
        if (MB_CUDA_LAUNCHED(ctx, "colred_pass1")) return -1;
        mb_colred_pass2<F><<<mb_cuda_blocks((int64_t)nq * nc, 256, MB_CUDA_MAX_BLOCKS), 256, 0,
                             st->stream>>>(f, col0, nc, (int)nchunks, part);
        if (MB_CUDA_LAUNCHED(ctx, "colred_pass2")) return -1;
    }
    return 0;
}

#endif /* __CUDACC__ */
#endif
