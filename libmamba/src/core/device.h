/* Device memory, copies, pinned host memory and graph capture: with
 * ops/dispatch.c, the one place that tells a CPU context from a CUDA one.
 * Everything above (nn, models, train) calls these and never the backend.
 *
 * On the CPU, "device" memory is 64-byte aligned host memory, copies are
 * memmove, pinned memory is plain memory, and work that would be captured
 * as a graph runs eagerly (mb_dev_graphs says whether graphs exist). */
#ifndef MB_DEVICE_H
#define MB_DEVICE_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Device buffers: NULL (and the reason) on failure. */
void *mb_dev_alloc(mb_ctx *ctx, size_t bytes, const char *what);
float *mb_dev_alloc_floats(mb_ctx *ctx, size_t n, const char *what);
void mb_dev_free(mb_ctx *ctx, void *p);
/* Copies between host and the context's device, ordered after the work
 * queued before them and finished on return; 0 or -1. */
int mb_dev_upload(mb_ctx *ctx, void *dst, const void *src, size_t bytes);
int mb_dev_download(mb_ctx *ctx, void *dst, const void *src, size_t bytes);
int mb_dev_zero(mb_ctx *ctx, void *dst, size_t bytes);

/* Whether device memory is host memory (the CPU): host-side shortcuts
 * (a pointer read directly, a table computed once on the host) apply. */
int mb_dev_host_memory(const mb_ctx *ctx);

/* The device's free and total memory in bytes, now; -1 where the context
 * has no device memory of its own to ask about (the CPU: host memory,
 * shared with everything else on the machine). MB_DEV_MEM="FREE,TOTAL"
 * (MiB) in the environment answers for any device, the CPU included, so
 * that MB_RECOMPUTE_AUTO's choices and what the tools say of them can be
 * tested without a GPU of that size. */
int mb_dev_mem_info(mb_ctx *ctx, size_t *free_bytes, size_t *total_bytes);

/* A block of device memory laid out by a two-pass carve (core.h): layout
 * is called once to count and once to hand out. NULL on failure. */
typedef void (*mb_carve_fn)(mb_carve *c, void *arg);
float *mb_dev_carve(mb_ctx *ctx, mb_carve_fn layout, void *arg, const char *what);

/* Host memory the device copies from and to without staging (pinned on a
 * GPU), for copies that are part of a graph or overlap with work. */
void *mb_host_alloc(mb_ctx *ctx, size_t bytes, const char *what);
void mb_host_free(mb_ctx *ctx, void *p);
/* A copy in either direction queued on the context's stream and not
 * waited for (on the CPU, done at once); mb_dev_sync waits for the
 * stream. */
int mb_dev_copy_async(mb_ctx *ctx, void *dst, const void *src, size_t bytes);
int mb_dev_sync(mb_ctx *ctx);
/* The profilers' capture range (cudaProfilerStart/Stop; nothing on the
 * CPU): benchmarks mark the loop they time, so that Nsight Compute run
 * with --profile-from-start off sees only it. */
int mb_dev_profile(mb_ctx *ctx, int on);

/* ---- graphs ----------------------------------------------------------------
 * Work replayed many times with the same pointers (a generation step) is
 * captured once and replayed with one launch. mb_dev_run runs work(arg):
 * with graph NULL (or no graphs on this context) eagerly; else it captures
 * the work into *graph, then launches that graph once, so the work is done
 * once either way. Values the work reads at replay time must live in device
 * (or pinned) memory. */
typedef int (*mb_dev_work_fn)(void *arg);
int mb_dev_graphs(const mb_ctx *ctx);
int mb_dev_run(mb_ctx *ctx, void **graph, mb_dev_work_fn work, void *arg);
int mb_dev_graph_launch(mb_ctx *ctx, void *graph);
void mb_dev_graph_free(mb_ctx *ctx, void *graph);
/* Graphs captured under *key (mb_ctx_graph_key, core.h; 0: none yet): when
 * the context's key is another, the n graphs are freed and set NULL and
 * *key becomes it; returns 1 then (the caller runs eagerly again before a
 * capture), else 0. A graph replays the ops of its capture. */
int mb_dev_graphs_rekey(mb_ctx *ctx, int *key, void **graphs, int n);

/* ---- the CUDA backend (core/cuda.cu): called from core/ only ---------------- */
#ifdef MB_HAVE_CUDA
int mb_cuda_ctx_init(mb_ctx *ctx, int index);
void mb_cuda_ctx_free(mb_ctx *ctx);
void *mb_cuda_alloc(mb_ctx *ctx, size_t bytes);
int mb_cuda_mem_info(mb_ctx *ctx, size_t *free_bytes, size_t *total_bytes);
void mb_cuda_release(void *p);
int mb_cuda_copy(mb_ctx *ctx, void *dst, const void *src, size_t bytes);
int mb_cuda_zero(mb_ctx *ctx, void *dst, size_t bytes);
int mb_cuda_graph_begin(mb_ctx *ctx);
/* Ends the capture; *exec receives the instantiated graph (NULL and -1, the
 * context marked failed, when something in the capture failed: a bug). */
int mb_cuda_graph_end(mb_ctx *ctx, void **exec);
int mb_cuda_graph_launch(mb_ctx *ctx, void *exec);
void mb_cuda_graph_free(void *exec);
void *mb_cuda_host_alloc(mb_ctx *ctx, size_t bytes);
void mb_cuda_host_free(void *p);
int mb_cuda_copy_async(mb_ctx *ctx, void *dst, const void *src, size_t bytes);
int mb_cuda_sync(mb_ctx *ctx);
int mb_cuda_profile(mb_ctx *ctx, int on);
#endif

#ifdef __cplusplus
}
#endif
#endif
