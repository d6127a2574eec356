/* The CUDA side of a context: device, stream, cuBLAS handle, scratch; and
 * the backend of core/device.c (device and pinned memory, copies, graphs). */
#include <stdlib.h>
#include <string.h>

#include <cuda_profiler_api.h>

#include "core/cuda_util.h"

/* ---- errors ---------------------------------------------------------------- */

extern "C" int mb_cuda_fail(mb_ctx *ctx, const char *call, const char *reason, const char *file,
                            int line)
{
    if (ctx && !ctx->failed) {
        /* file names relative to the source tree read better */
        const char *f = strstr(file, "libmamba/");
        mb_error_set("cuda: %s: %s (%s:%d)", call, reason, f ? f : file, line);
    } else if (!ctx) {
        mb_error_set("cuda: %s: %s (%s:%d)", call, reason, file, line);
    }
    if (ctx) ctx->failed = 1;
    return -1;
}

extern "C" int mb_cuda_check_(mb_ctx *ctx, cudaError_t err, const char *call, const char *file,
                              int line)
{
    if (err == cudaSuccess) return 0;
    return mb_cuda_fail(ctx, call, cudaGetErrorString(err), file, line);
}

extern "C" int mb_cublas_check_(mb_ctx *ctx, cublasStatus_t st, const char *call,
                                const char *file, int line)
{
    if (st == CUBLAS_STATUS_SUCCESS) return 0;
    return mb_cuda_fail(ctx, call, cublasGetStatusString(st), file, line);
}

extern "C" int mb_cuda_launched_(mb_ctx *ctx, const char *kernel, const char *file, int line)
{
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return mb_cuda_fail(ctx, kernel, cudaGetErrorString(err), file, line);
    mb_cuda_state *st = (mb_cuda_state *)ctx->cuda;
    if (st && st->sync_debug) {
        err = cudaStreamSynchronize(st->stream);
        if (err != cudaSuccess)
            return mb_cuda_fail(ctx, kernel, cudaGetErrorString(err), file, line);
    }
    return 0;
}

extern "C" mb_cuda_state *mb_cuda_enter(mb_ctx *ctx)
{
    mb_cuda_state *st = (mb_cuda_state *)ctx->cuda;
    if (!st) {
        mb_cuda_fail(ctx, "op", "context has no CUDA state", __FILE__, __LINE__);
        return NULL;
    }
    /* the current device is per host thread: a context used from another
     * thread (or next to a context on another GPU) must switch */
    int cur = -1;
    if (MB_CUDA_OK(ctx, cudaGetDevice(&cur))) return NULL;
    if (cur != st->device && MB_CUDA_OK(ctx, cudaSetDevice(st->device))) return NULL;
    return st;
}

/* ---- context --------------------------------------------------------------- */

static void state_free(mb_cuda_state *st)
{
    if (!st) return;
    if (st->stream) cudaStreamSynchronize(st->stream);
    if (st->cublas) cublasDestroy(st->cublas);
    if (st->cublas_ws) cudaFree(st->cublas_ws);
    if (st->scratch) cudaFree(st->scratch);
    if (st->host) cudaFreeHost(st->host);
    if (st->stream) cudaStreamDestroy(st->stream);
    free(st);
    /* errors during teardown have nowhere to go; do not leave them behind
     * for the next launch check */
    (void)cudaGetLastError();
}

extern "C" int mb_cuda_ctx_init(mb_ctx *ctx, int index)
{
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        return mb_error_set("cuda:%d: no usable CUDA device: %s", index, cudaGetErrorString(err));
    }
    if (index < 0 || index >= count)
        return mb_error_set("cuda:%d: no such device (found %d)", index, count);

    mb_cuda_state *st = (mb_cuda_state *)calloc(1, sizeof *st);
    if (!st) return mb_error_set("out of memory allocating the CUDA context");
    st->device = index;
    const char *dbg = getenv("MB_CUDA_SYNC");
    st->sync_debug = dbg && *dbg && strcmp(dbg, "0") != 0;

    /* the checks below record their message on ctx; ctx->failed is reset
     * before returning, since the context is not handed out on failure */
    ctx->cuda = NULL;
    int ok = 0;
    do {
        if (MB_CUDA_OK(ctx, cudaSetDevice(index))) break;
        if (MB_CUDA_OK(ctx, cudaDeviceGetAttribute(&st->sm_count, cudaDevAttrMultiProcessorCount,
                                                   index)))
            break;
        int major = 0;
        if (MB_CUDA_OK(ctx, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, index))) break;
        const char *pdl = getenv("MB_CUDA_PDL");
        st->cc_major = major;
        st->pdl = major >= 9 && !(pdl && strcmp(pdl, "0") == 0);
        const char *stk_rows = getenv("MB_CUDA_STK_ROWS");
        st->stk_rows = stk_rows ? atoi(stk_rows) : 0;
        const char *stk_say = getenv("MB_CUDA_STK_SAY");
        st->stk_say = stk_say && strcmp(stk_say, "0") != 0;
        const char *step = getenv("MB_CUDA_STEP");
        /* ops/ops.h's MB_STEP_AUTO, _FUSED, _SPLIT, _LAYER, _CLUSTER */
        st->step_path = !step                      ? 0
                        : !strcmp(step, "fused")   ? 1
                        : !strcmp(step, "split")   ? 2
                        : !strcmp(step, "layer")   ? 3
                        : !strcmp(step, "cluster") ? 5
                                                   : 0;
        if (MB_CUDA_OK(ctx, cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking))) break;
        if (MB_CUDA_OK(ctx, cudaMalloc(&st->scratch, MB_CUDA_SCRATCH_BYTES))) break;
        if (MB_CUDA_OK(ctx, cudaMalloc(&st->cublas_ws, MB_CUBLAS_WORKSPACE_BYTES))) break;
        if (MB_CUDA_OK(ctx, cudaMallocHost(&st->host, MB_CUDA_HOST_SCRATCH_BYTES))) break;
        if (MB_CUBLAS_OK(ctx, cublasCreate(&st->cublas))) break;
        if (MB_CUBLAS_OK(ctx, cublasSetStream(st->cublas, st->stream))) break;
        /* after cublasSetStream, which resets the workspace to cuBLAS's own */
        if (MB_CUBLAS_OK(ctx, cublasSetWorkspace(st->cublas, st->cublas_ws,
                                                 MB_CUBLAS_WORKSPACE_BYTES)))
            break;
        st->tf32 = ctx->allow_tf32 ? 1 : 0;
        if (MB_CUBLAS_OK(ctx, cublasSetMathMode(st->cublas, st->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                     : CUBLAS_DEFAULT_MATH)))
            break;
        ok = 1;
    } while (0);
    if (!ok) {
        (void)cudaGetLastError();
        state_free(st);
        ctx->failed = 0;
        return -1;
    }
    ctx->cuda = st;
    return 0;
}

extern "C" void mb_cuda_ctx_free(mb_ctx *ctx)
{
    if (!ctx || !ctx->cuda) return;
    mb_cuda_state *st = (mb_cuda_state *)ctx->cuda;
    int cur = -1;
    if (cudaGetDevice(&cur) == cudaSuccess && cur != st->device) cudaSetDevice(st->device);
    state_free(st);
    ctx->cuda = NULL;
}

/* ---- device memory ---------------------------------------------------------- */

extern "C" void *mb_cuda_alloc(mb_ctx *ctx, size_t bytes)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return NULL;
    /* never a zero-byte request: cudaMalloc would hand back NULL, which the
     * callers read as failure (the CPU side allocates at least 64 bytes) */
    size_t n = bytes ? bytes : 256;
    void *p = NULL;
    cudaError_t err = cudaMalloc(&p, n);
    if (err != cudaSuccess) {
        /* not sticky: clear it, or the next launch check would report it */
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
        if (err == cudaErrorMemoryAllocation)
            mb_error_set("out of device memory allocating %zu bytes on cuda:%d (%zu MiB of %zu "
                         "MiB free)",
                         bytes, st->device, free_b >> 20, total_b >> 20);
        else
            mb_cuda_fail(ctx, "cudaMalloc", cudaGetErrorString(err), __FILE__, __LINE__);
        return NULL;
    }
    return p;
}

extern "C" int mb_cuda_mem_info(mb_ctx *ctx, size_t *free_bytes, size_t *total_bytes)
{
    if (!mb_cuda_enter(ctx)) return -1;
    return MB_CUDA_OK(ctx, cudaMemGetInfo(free_bytes, total_bytes)) ? -1 : 0;
}

extern "C" void mb_cuda_release(void *p)
{
    if (!p) return;
    /* cudaFree waits for the device; pointers carry their device (UVA) */
    if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

/* ---- graphs ---------------------------------------------------------------- */

extern "C" int mb_cuda_graph_begin(mb_ctx *ctx)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    /* thread-local: another thread's unrelated CUDA calls do not break it */
    return MB_CUDA_OK(ctx, cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal));
}

extern "C" int mb_cuda_graph_end(mb_ctx *ctx, void **exec)
{
    *exec = NULL;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    cudaGraph_t g = NULL;
    /* an op that failed inside the capture has marked the context already */
    const int bad = MB_CUDA_OK(ctx, cudaStreamEndCapture(st->stream, &g)) || ctx->failed;
    cudaGraphExec_t x = NULL;
    const int bad_i = bad || MB_CUDA_OK(ctx, cudaGraphInstantiate(&x, g, 0));
    if (g) cudaGraphDestroy(g);
    if (bad_i) return -1;
    *exec = (void *)x;
    return 0;
}

extern "C" int mb_cuda_graph_launch(mb_ctx *ctx, void *exec)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    return MB_CUDA_OK(ctx, cudaGraphLaunch((cudaGraphExec_t)exec, st->stream));
}

extern "C" void mb_cuda_graph_free(void *exec)
{
    if (exec) cudaGraphExecDestroy((cudaGraphExec_t)exec);
}

extern "C" void *mb_cuda_host_alloc(mb_ctx *ctx, size_t bytes)
{
    void *p = NULL;
    if (!mb_cuda_enter(ctx) || MB_CUDA_OK(ctx, cudaMallocHost(&p, bytes ? bytes : 1))) return NULL;
    return p;
}

extern "C" void mb_cuda_host_free(void *p)
{
    if (p && cudaFreeHost(p) != cudaSuccess) (void)cudaGetLastError();
}

extern "C" int mb_cuda_copy_async(mb_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    if (!bytes) return 0;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    return MB_CUDA_OK(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st->stream));
}

extern "C" int mb_cuda_sync(mb_ctx *ctx)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    return MB_CUDA_OK(ctx, cudaStreamSynchronize(st->stream));
}

extern "C" int mb_cuda_profile(mb_ctx *ctx, int on)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    return MB_CUDA_OK(ctx, on ? cudaProfilerStart() : cudaProfilerStop());
}

extern "C" int mb_cuda_copy(mb_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    /* cudaMemcpyDefault: the pointers say where they live (UVA) */
    if (!bytes) return 0;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    /* on the context's stream, so the copy is ordered after the kernels that
     * made the data; synchronized, since callers free or read the host
     * buffer right after */
    if (MB_CUDA_OK(ctx, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st->stream)))
        return -1;
    if (MB_CUDA_OK(ctx, cudaStreamSynchronize(st->stream))) return -1;
    return 0;
}

extern "C" int mb_cuda_zero(mb_ctx *ctx, void *dst, size_t bytes)
{
    if (!bytes) return 0;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    if (MB_CUDA_OK(ctx, cudaMemsetAsync(dst, 0, bytes, st->stream))) return -1;
    return 0;
}
