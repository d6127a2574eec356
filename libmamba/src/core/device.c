/* core/device.h: the CPU side here, the CUDA side in core/cuda.cu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#ifdef MB_HAVE_CUDA
#define ON_CUDA(ctx) ((ctx)->kind == MB_DEV_CUDA)
#else
#define ON_CUDA(ctx) ((void)(ctx), 0)
#endif

void *mb_dev_alloc(mb_ctx *ctx, size_t bytes, const char *what)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) {
        void *p = mb_cuda_alloc(ctx, bytes);
        /* keep the backend's reason, and say what it was for */
        if (!p) mb_error_set("%s (for %s)", mb_error_last(), what);
        return p;
    }
#endif
    (void)ctx;
    /* at least 64 bytes, and a whole number of 64-byte lines past the end:
     * vector loops may read a line that starts inside the buffer */
    void *p = aligned_alloc(64, mb_align64(bytes) + 64);
    if (!p) mb_error_set("out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

float *mb_dev_alloc_floats(mb_ctx *ctx, size_t n, const char *what)
{
    return mb_dev_alloc(ctx, n * sizeof(float), what);
}

void mb_dev_free(mb_ctx *ctx, void *p)
{
    if (!p) return;
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) {
        mb_cuda_release(p);
        return;
    }
#endif
    (void)ctx;
    free(p);
}

int mb_dev_upload(mb_ctx *ctx, void *dst, const void *src, size_t bytes)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_copy(ctx, dst, src, bytes);
#endif
    (void)ctx;
    if (bytes) memmove(dst, src, bytes);
    return 0;
}

int mb_dev_download(mb_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    return mb_dev_upload(ctx, dst, src, bytes); /* one copy: the pointers say where */
}

int mb_dev_zero(mb_ctx *ctx, void *dst, size_t bytes)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_zero(ctx, dst, bytes);
#endif
    (void)ctx;
    if (bytes) memset(dst, 0, bytes);
    return 0;
}

int mb_dev_host_memory(const mb_ctx *ctx) { return !ON_CUDA(ctx); }

int mb_dev_mem_info(mb_ctx *ctx, size_t *free_bytes, size_t *total_bytes)
{
    const char *said = getenv("MB_DEV_MEM");
    unsigned long long f_mib, t_mib;
    char end;
    if (said && sscanf(said, "%llu,%llu%c", &f_mib, &t_mib, &end) == 2 && f_mib <= t_mib) {
        *free_bytes = (size_t)f_mib << 20, *total_bytes = (size_t)t_mib << 20;
        return 0;
    }
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_mem_info(ctx, free_bytes, total_bytes);
#endif
    (void)ctx, (void)free_bytes, (void)total_bytes;
    return -1;
}

float *mb_dev_carve(mb_ctx *ctx, mb_carve_fn layout, void *arg, const char *what)
{
    mb_carve c = {NULL, 0};
    layout(&c, arg);
    float *buf = mb_dev_alloc_floats(ctx, c.n, what);
    if (!buf) return NULL;
    c.base = buf;
    c.n = 0;
    layout(&c, arg);
    return buf;
}

void *mb_host_alloc(mb_ctx *ctx, size_t bytes, const char *what)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_host_alloc(ctx, bytes);
#endif
    (void)ctx;
    return mb_malloc(bytes, what);
}

void mb_host_free(mb_ctx *ctx, void *p)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) {
        mb_cuda_host_free(p);
        return;
    }
#endif
    (void)ctx;
    free(p);
}

int mb_dev_copy_async(mb_ctx *ctx, void *dst, const void *src, size_t bytes)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_copy_async(ctx, dst, src, bytes);
#endif
    (void)ctx;
    if (bytes) memmove(dst, src, bytes);
    return 0;
}

int mb_dev_sync(mb_ctx *ctx)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_sync(ctx);
#endif
    return mb_ctx_check(ctx);
}

int mb_dev_profile(mb_ctx *ctx, int on)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_profile(ctx, on);
#endif
    (void)ctx, (void)on;
    return 0;
}

int mb_dev_graphs(const mb_ctx *ctx) { return ON_CUDA(ctx); }

int mb_dev_run(mb_ctx *ctx, void **graph, mb_dev_work_fn work, void *arg)
{
    if (!graph || !mb_dev_graphs(ctx)) return work(arg);
#ifdef MB_HAVE_CUDA
    if (mb_cuda_graph_begin(ctx)) return -1;
    if (work(arg)) {
        /* end the capture so the stream is usable again; the graph is
         * discarded */
        void *g = NULL;
        (void)mb_cuda_graph_end(ctx, &g);
        mb_cuda_graph_free(g);
        return -1;
    }
    if (mb_cuda_graph_end(ctx, graph) || mb_cuda_graph_launch(ctx, *graph)) return -1;
#endif
    return 0;
}

int mb_dev_graph_launch(mb_ctx *ctx, void *graph)
{
#ifdef MB_HAVE_CUDA
    if (ON_CUDA(ctx)) return mb_cuda_graph_launch(ctx, graph);
#endif
    (void)graph;
    return mb_ctx_fail(ctx, "internal: a graph launched on a context without graphs");
}

int mb_dev_graphs_rekey(mb_ctx *ctx, int *key, void **graphs, int n)
{
    const int now = mb_ctx_graph_key(ctx);
    if (*key == now) return 0;
    for (int i = 0; i < n; i++) {
        mb_dev_graph_free(ctx, graphs[i]);
        graphs[i] = NULL;
    }
    *key = now;
    return 1;
}

void mb_dev_graph_free(mb_ctx *ctx, void *graph)
{
#ifdef MB_HAVE_CUDA
    if (graph && ON_CUDA(ctx)) mb_cuda_graph_free(graph);
#endif
    (void)ctx;
    (void)graph;
}
