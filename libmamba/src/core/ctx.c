#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/core.h"

#ifdef MB_HAVE_CBLAS
#include <cblas.h>
#endif

mb_ctx *mb_ctx_create(const char *device)
{
    if (!device || !*device) device = "cpu";
    mb_ctx *ctx = mb_calloc(1, sizeof *ctx, "context");
    if (!ctx) return NULL;
    if (strcmp(device, "cpu") == 0) {
        ctx->kind = MB_DEV_CPU;
        mb_ctx_set_threads(ctx, 0);
        return ctx;
    }
    if (strncmp(device, "cuda", 4) == 0 && (device[4] == '\0' || device[4] == ':')) {
        int index = 0;
        if (device[4] == ':') {
            char *end;
            long v = strtol(device + 5, &end, 10);
            if (end == device + 5 || *end || v < 0 || v > 1024) {
                free(ctx);
                mb_error_set("bad device '%s' (expected cpu, cuda or cuda:N)", device);
                return NULL;
            }
            index = (int)v;
        }
#ifdef MB_HAVE_CUDA
        ctx->kind = MB_DEV_CUDA;
        ctx->device_index = index;
        mb_ctx_set_threads(ctx, 0);
        if (mb_cuda_ctx_init(ctx, index) != 0) {
            free(ctx);
            return NULL;
        }
        return ctx;
#else
        (void)index;
        free(ctx);
        mb_error_set("device '%s': this libmamba was built without CUDA (MAMBA_CUDA=OFF)", device);
        return NULL;
#endif
    }
    free(ctx);
    mb_error_set("bad device '%s' (expected cpu, cuda or cuda:N)", device);
    return NULL;
}

void mb_ctx_free(mb_ctx *ctx)
{
    if (!ctx) return;
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA) mb_cuda_ctx_free(ctx);
#endif
    free(ctx);
}

void mb_ctx_set_tf32(mb_ctx *ctx, int on) { ctx->allow_tf32 = !!on; }

int mb_ctx_set_precision(mb_ctx *ctx, mb_precision p)
{
    if (p != MB_PREC_FP32 && p != MB_PREC_BF16) return mb_error_set("unknown precision %d", (int)p);
    ctx->precision = p;
    return 0;
}

const char *mb_ctx_precision_name(const mb_ctx *ctx)
{
    return ctx->precision == MB_PREC_BF16 ? "bf16" : ctx->allow_tf32 && ctx->kind == MB_DEV_CUDA ? "tf32" : "fp32";
}

const char *mb_ctx_name(const mb_ctx *ctx) { return ctx->kind == MB_DEV_CPU ? "cpu" : "cuda"; }

void mb_ctx_set_threads(mb_ctx *ctx, int n_threads)
{
#ifdef _OPENMP
    if (n_threads <= 0) {
        n_threads = omp_get_max_threads();
        /* OMP_NUM_THREADS is the user's word; else a container's CPU quota
         * caps what the affinity mask allows */
        const int quota = getenv("OMP_NUM_THREADS") ? 0 : mb_cpu_quota(NULL, NULL);
        if (quota > 0 && quota < n_threads) n_threads = quota;
    }
#else
    n_threads = 1;
#endif
    ctx->n_threads = n_threads;
#ifdef MB_HAVE_CBLAS
    /* An OpenMP build of OpenBLAS shares our thread pool. A pthreads build
     * brings a second pool that fights ours for the same cores (measured:
     * training ran at half speed on 2 cores), so it gets one thread; Debian's
     * libopenblas0-openmp avoids the trade. */
    openblas_set_num_threads(openblas_get_parallel() == 2 ? n_threads : 1);
#endif
}
