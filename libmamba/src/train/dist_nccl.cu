/* The GPU side of data-parallel training: one NCCL communicator per group
 * (one GPU per process), the gradient all-reduce and the parameter
 * broadcast on the context's stream. Compiled with the CUDA backend when
 * NCCL was found (MB_HAVE_NCCL); otherwise train/dist.c has the stubs and
 * a GPU group goes through host copies and MPI. */
#include <string.h>

#include "core/cuda_util.h"
#include "train/dist.h"

#ifdef MB_HAVE_NCCL
#include <nccl.h>

#if NCCL_VERSION_CODE < 21000
#error "NCCL 2.10 or newer is needed (ncclAvg)"
#endif

/* "nccl: CALL: what (file:line)", with NCCL's own last message when it has
 * one (2.13 and newer); the context is not marked failed: a collective that
 * failed leaves the device usable, the caller decides */
static int nccl_fail(ncclComm_t comm, ncclResult_t r, const char *call, const char *file, int line)
{
    const char *f = strstr(file, "libmamba/");
    const char *last = "";
#if NCCL_VERSION_CODE >= 21300
    last = ncclGetLastError(comm);
    if (!last) last = "";
#else
    (void)comm;
#endif
    return mb_error_set("nccl: %s: %s%s%s%s (%s:%d)", call, ncclGetErrorString(r), *last ? " (" : "",
                        last, *last ? ")" : "", f ? f : file, line);
}
static int nccl_check(ncclComm_t comm, ncclResult_t r, const char *call, const char *file, int line)
{
    return r == ncclSuccess ? 0 : nccl_fail(comm, r, call, file, line);
}
#define NCCL_OK(comm, call) nccl_check((comm), (call), #call, __FILE__, __LINE__)

extern "C" int mb_nccl_built(void) { return 1; }

extern "C" int mb_nccl_init(mb_dist *d, mb_ctx *ctx)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    if (d->nccl) {
        if (d->nccl_device == st->device) return 0;
        return mb_error_set("nccl: this process's communicator is on cuda:%d, not cuda:%d (one GPU a process)",
                            d->nccl_device, st->device);
    }
    /* rank 0 makes the id and sends it with its status, so a failure there
     * fails every rank here instead of leaving them in ncclCommInitRank */
    struct {
        int ok;
        ncclUniqueId id;
    } msg;
    memset(&msg, 0, sizeof msg);
    if (d->rank == 0) msg.ok = NCCL_OK(NULL, ncclGetUniqueId(&msg.id)) == 0;
    if (mb_dist_bcast(d, &msg, sizeof msg)) return -1;
    if (!msg.ok) return d->rank == 0 ? -1 : mb_error_set("nccl: rank 0 could not make the unique id");
    ncclComm_t comm = NULL;
    if (NCCL_OK(NULL, ncclCommInitRank(&comm, d->size, msg.id, d->rank))) return -1;
    d->nccl = (void *)comm;
    d->nccl_device = st->device;
    return 0;
}

static int nccl_timing_events(mb_dist *d, mb_ctx *ctx)
{
    for (int i = 0; i < 2; i++)
        if (!d->ev[i]) {
            cudaEvent_t e;
            if (MB_CUDA_OK(ctx, cudaEventCreate(&e))) return -1;
            d->ev[i] = (void *)e;
        }
    return 0;
}

extern "C" int mb_nccl_allreduce(mb_dist *d, mb_ctx *ctx, float *buf, size_t n, int avg)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    ncclComm_t comm = (ncclComm_t)d->nccl;
    const int timed = d->timing && nccl_timing_events(d, ctx) == 0;
    if (timed && MB_CUDA_OK(ctx, cudaEventRecord((cudaEvent_t)d->ev[0], st->stream))) return -1;
    /* in place, ordered after the backward's kernels on the same stream */
    if (NCCL_OK(comm, ncclAllReduce(buf, buf, n, ncclFloat, avg ? ncclAvg : ncclSum, comm, st->stream)))
        return -1;
    if (timed && MB_CUDA_OK(ctx, cudaEventRecord((cudaEvent_t)d->ev[1], st->stream))) return -1;
    return 0;
}

extern "C" int mb_nccl_bcast(mb_dist *d, mb_ctx *ctx, float *buf, size_t n)
{
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return -1;
    ncclComm_t comm = (ncclComm_t)d->nccl;
    if (NCCL_OK(comm, ncclBroadcast(buf, buf, n, ncclFloat, 0, comm, st->stream))) return -1;
    return mb_cuda_sync(ctx);
}

extern "C" double mb_nccl_last_ms(mb_dist *d)
{
    if (!d->ev[0] || !d->ev[1]) return 0;
    float ms = 0;
    if (cudaEventSynchronize((cudaEvent_t)d->ev[1]) != cudaSuccess ||
        cudaEventElapsedTime(&ms, (cudaEvent_t)d->ev[0], (cudaEvent_t)d->ev[1]) != cudaSuccess) {
        (void)cudaGetLastError();
        return -1;
    }
    return ms;
}

extern "C" void mb_nccl_free(mb_dist *d)
{
    if (!d) return;
    /* the communicator's device must be current for its teardown */
    if (d->nccl_device >= 0 && cudaSetDevice(d->nccl_device) != cudaSuccess) (void)cudaGetLastError();
    for (int i = 0; i < 2; i++)
        if (d->ev[i]) cudaEventDestroy((cudaEvent_t)d->ev[i]);
    if (d->nccl) ncclCommDestroy((ncclComm_t)d->nccl);
    d->nccl = NULL;
    d->ev[0] = d->ev[1] = NULL;
}

#endif /* MB_HAVE_NCCL */
