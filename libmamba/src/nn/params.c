#include <stdlib.h>
#include <string.h>

#include "nn/params.h"

#ifdef MB_HAVE_CUDA
extern void *mb_cuda_alloc(mb_ctx *ctx, size_t bytes);
extern void mb_cuda_release(void *p);
extern int mb_cuda_copy(mb_ctx *ctx, void *dst, const void *src, size_t bytes, int to_device);
extern int mb_cuda_zero(mb_ctx *ctx, void *dst, size_t bytes);
#endif

int mb_params_add(mb_params *ps, const char *name, int decay, int ndim, const int64_t *shape)
{
    if (ndim < 1 || ndim > MB_PARAM_MAX_DIMS || strlen(name) >= MB_PARAM_NAME_MAX)
        return mb_error_set("internal: bad parameter '%s'", name);
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 32;
        mb_param *items = realloc(ps->items, (size_t)cap * sizeof *items);
        if (!items) return mb_error_set("out of memory registering parameters");
        ps->items = items;
        ps->cap = cap;
    }
    mb_param *p = &ps->items[ps->n];
    memset(p, 0, sizeof *p);
    strcpy(p->name, name);
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    p->decay = decay;
    /* 16-float alignment keeps every tensor 64-byte aligned for vector loads. */
    p->offset = ps->total;
    ps->total += (p->numel + 15) & ~(size_t)15;
    return ps->n++;
}

int mb_params_alloc(mb_params *ps, mb_ctx *ctx)
{
    ps->data = mb_dev_alloc_floats(ctx, ps->total, "parameters");
    ps->grad = mb_dev_alloc_floats(ctx, ps->total, "gradients");
    if (!ps->data || !ps->grad) return -1;
    if (mb_dev_zero(ctx, ps->data, ps->total * sizeof(float))) return -1;
    return mb_dev_zero(ctx, ps->grad, ps->total * sizeof(float));
}

void mb_params_free(mb_params *ps, mb_ctx *ctx)
{
    mb_dev_free(ctx, ps->data);
    mb_dev_free(ctx, ps->grad);
    free(ps->items);
    memset(ps, 0, sizeof *ps);
}

int mb_params_find(const mb_params *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i].name, name) == 0) return i;
    return -1;
}

float *mb_dev_alloc_floats(mb_ctx *ctx, size_t n, const char *what)
{
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA) return mb_cuda_alloc(ctx, n * sizeof(float));
#else
    (void)ctx;
#endif
    float *p = aligned_alloc(64, mb_align64(n * sizeof(float)) + 64);
    if (!p) mb_error_set("out of memory allocating %zu floats for %s", n, what);
    return p;
}

void mb_dev_free(mb_ctx *ctx, void *p)
{
    if (!p) return;
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA) {
        mb_cuda_release(p);
        return;
    }
#else
    (void)ctx;
#endif
    free(p);
}

int mb_dev_upload(mb_ctx *ctx, void *dst, const void *src, size_t bytes)
{
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA) return mb_cuda_copy(ctx, dst, src, bytes, 1);
#else
    (void)ctx;
#endif
    memmove(dst, src, bytes);
    return 0;
}

int mb_dev_download(mb_ctx *ctx, void *dst, const void *src, size_t bytes)
{
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA) return mb_cuda_copy(ctx, dst, src, bytes, 0);
#else
    (void)ctx;
#endif
    memmove(dst, src, bytes);
    return 0;
}

int mb_dev_zero(mb_ctx *ctx, void *dst, size_t bytes)
{
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA) return mb_cuda_zero(ctx, dst, bytes);
#else
    (void)ctx;
#endif
    memset(dst, 0, bytes);
    return 0;
}
