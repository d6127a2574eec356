#include <stdlib.h>

#include "core/core.h"

#ifdef MB_HAVE_CUDA
extern void *mb_cuda_alloc(mb_ctx *ctx, size_t bytes);
extern void mb_cuda_release(void *p);
#endif

int mb_arena_init(mb_arena *a, mb_ctx *ctx, size_t cap)
{
    a->used = a->peak = 0;
    a->cap = mb_align64(cap);
    a->kind = ctx->kind;
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA) {
        a->base = mb_cuda_alloc(ctx, a->cap);
        return a->base ? 0 : -1;
    }
#endif
    a->base = aligned_alloc(64, a->cap ? a->cap : 64);
    if (!a->base) return mb_error_set("out of memory: arena of %zu bytes", a->cap);
    return 0;
}

void mb_arena_free(mb_arena *a)
{
    if (!a->base) return;
#ifdef MB_HAVE_CUDA
    if (a->kind == MB_DEV_CUDA) mb_cuda_release(a->base);
    else
#endif
        free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
}

void *mb_arena_alloc(mb_arena *a, size_t bytes)
{
    size_t need = mb_align64(bytes);
    if (!a->base || a->used + need > a->cap) {
        mb_error_set("internal: arena of %zu bytes too small (%zu used, %zu asked)", a->cap,
                     a->used, need);
        return NULL;
    }
    void *p = a->base + a->used;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *mb_arena_floats(mb_arena *a, size_t n) { return mb_arena_alloc(a, n * sizeof(float)); }
