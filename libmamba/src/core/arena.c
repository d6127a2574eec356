#include <stdlib.h>

#include "core/core.h"

int mb_arena_init(mb_arena *a, mb_ctx *ctx, size_t cap)
{
    a->used = a->peak = 0;
    a->cap = mb_align64(cap);
    a->ctx = ctx;
    a->base = mb_dev_alloc(ctx, a->cap, "op scratch");
    return a->base ? 0 : -1;
}

void mb_arena_free(mb_arena *a)
{
    if (!a->base) return;
    mb_dev_free(a->ctx, a->base);
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
