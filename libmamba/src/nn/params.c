#include <stdlib.h>
#include <string.h>

#include "nn/params.h"
#include "ops/ops.h"


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

int mb_params_alloc(mb_params *ps, mb_ctx *ctx, int with_grad)
{
    ps->data = mb_dev_alloc_floats(ctx, ps->total, "parameters");
    if (!ps->data || mb_dev_zero(ctx, ps->data, ps->total * sizeof(float))) return -1;
    return with_grad ? mb_params_grad_ensure(ps, ctx) : 0;
}

int mb_params_grad_ensure(mb_params *ps, mb_ctx *ctx)
{
    if (ps->grad) return 0;
    ps->grad = mb_dev_alloc_floats(ctx, ps->total, "gradients");
    if (!ps->grad) return -1;
    return mb_dev_zero(ctx, ps->grad, ps->total * sizeof(float));
}

int mb_params_q8_make(mb_params *ps, int i)
{
    const mb_param *p = &ps->items[i];
    if (p->ndim != 2) return mb_error_set("internal: int8 copy of %s, not a matrix", p->name);
    if (p->shape[1] > MB_Q8_MAX_K) return 0; /* rows too long for the int8 product: fp32 it stays */
    if (!ps->q8 && !(ps->q8 = mb_calloc((size_t)ps->n, sizeof *ps->q8, "int8 weights"))) return -1;
    if (ps->q8[i]) return 0;
    mb_q8 *w = mb_calloc(1, sizeof *w, "int8 weights");
    if (!w || mb_q8_make(w, mb_param_data(ps, i), (int)p->shape[0], (int)p->shape[1], (int)p->shape[1])) {
        free(w);
        return -1;
    }
    ps->q8[i] = w;
    return 0;
}

void mb_params_q8_drop(mb_params *ps)
{
    for (int i = 0; ps->q8 && i < ps->n; i++)
        if (ps->q8[i]) {
            mb_q8_free(ps->q8[i]);
            free(ps->q8[i]);
        }
    free(ps->q8);
    ps->q8 = NULL;
}

int mb_params_bf16_make(mb_params *ps, mb_ctx *ctx, int i)
{
    if (!ps->bf16 && !(ps->bf16 = mb_calloc((size_t)ps->n, sizeof *ps->bf16, "bf16 weights"))) return -1;
    if (ps->bf16[i]) return 0;
    const size_t n = ps->items[i].numel;
    uint16_t *w = mb_dev_alloc(ctx, (n + 8) * sizeof(uint16_t), "bf16 weights");
    if (!w) return -1;
    mb_to_bf16(ctx, n, mb_param_data(ps, i), w);
    ps->bf16[i] = w;
    return mb_ctx_check(ctx);
}

void mb_params_changed(mb_params *ps, mb_ctx *ctx)
{
    mb_params_q8_drop(ps);
    mb_params_bf16_drop(ps, ctx);
    ps->w16_valid = 0;
}

int mb_params_w16_refresh(mb_params *ps, mb_ctx *ctx, int (*want)(const mb_params *ps, int i, void *arg), void *arg)
{
    if (ps->w16_valid) return 0;
    if (!ps->w16 && !(ps->w16 = mb_calloc((size_t)ps->n, sizeof *ps->w16, "bf16 weights"))) return -1;
    for (int i = 0; i < ps->n; i++) {
        if (!want(ps, i, arg)) continue;
        const size_t n = ps->items[i].numel;
        if (!ps->w16[i] && !(ps->w16[i] = mb_dev_alloc_floats(ctx, n, "bf16 weights"))) return -1;
        /* a copy within the device (the pointers say where: UVA on a GPU) */
        if (mb_dev_upload(ctx, ps->w16[i], mb_param_data(ps, i), n * sizeof(float))) return -1;
        mb_bf16_round_rows(ctx, 1, (int)n, ps->w16[i], (int)n);
    }
    if (mb_ctx_check(ctx)) return -1;
    ps->w16_valid = 1;
    return 0;
}

void mb_precision_store(mb_ctx *ctx, int rows, int cols, float *x, int ld)
{
    if (ctx->precision == MB_PREC_BF16) mb_bf16_round_rows(ctx, rows, cols, x, ld);
}

void mb_precision_store_conv_scan(mb_ctx *ctx, int rows, int cols, float *x, int ld)
{
    if (ctx->precision == MB_PREC_BF16) mb_bf16_round_rows_conv_scan(ctx, rows, cols, x, ld);
}

void mb_params_bf16_drop(mb_params *ps, mb_ctx *ctx)
{
    for (int i = 0; ps->bf16 && i < ps->n; i++) mb_dev_free(ctx, ps->bf16[i]);
    free(ps->bf16);
    ps->bf16 = NULL;
}

void mb_params_free(mb_params *ps, mb_ctx *ctx)
{
    mb_params_q8_drop(ps);
    mb_params_bf16_drop(ps, ctx);
    for (int i = 0; ps->w16 && i < ps->n; i++) mb_dev_free(ctx, ps->w16[i]);
    free(ps->w16);
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
