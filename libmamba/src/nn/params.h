/* A model's parameters: one contiguous buffer with a table of (name, shape,
 * offset). Gradients and optimizer moments mirror the same layout, so one
 * pass over `count` floats serves the optimizer, clipping, all-reduce and
 * checkpoint I/O. */
#ifndef MB_PARAMS_H
#define MB_PARAMS_H

#include "core/core.h"

#define MB_PARAM_NAME_MAX 96
#define MB_PARAM_MAX_DIMS 4

typedef struct {
    char name[MB_PARAM_NAME_MAX]; /* mamba_ssm state_dict name */
    int ndim;
    int64_t shape[MB_PARAM_MAX_DIMS];
    size_t offset; /* in floats, into data / grad */
    size_t numel;
    int decay;     /* 1: AdamW weight decay applies */
} mb_param;

typedef struct {
    mb_param *items;
    int n, cap;
    size_t total;  /* floats in the buffer (each tensor 16-float aligned) */
    float *data;   /* device memory of the owning context */
    float *grad;   /* NULL until training needs it */
    /* per parameter, NULL or its int8 copy for CPU inference
     * (mb_params_q8_make); the array itself NULL until one is made */
    struct mb_q8_s **q8;
    /* per parameter, NULL or its bf16 copy (device memory) for GPU
     * inference (mb_params_bf16_make) */
    uint16_t **bf16;
    /* per parameter, NULL or its weights as bf16 precision's GEMMs read
     * them: bf16-rounded values as floats, device memory
     * (mb_params_w16_refresh) */
    float **w16;
    int w16_valid; /* the w16 copies are the data's (mb_params_changed clears it) */
} mb_params;

/* Register a tensor; returns its index or -1. Shapes are fixed before
 * mb_params_alloc. */
int mb_params_add(mb_params *ps, const char *name, int decay, int ndim, const int64_t *shape);
/* The parameters (zeros); their gradients too with with_grad, else when
 * first needed (mb_params_grad_ensure): inference never allocates them. */
int mb_params_alloc(mb_params *ps, mb_ctx *ctx, int with_grad);
int mb_params_grad_ensure(mb_params *ps, mb_ctx *ctx);
void mb_params_free(mb_params *ps, mb_ctx *ctx);
int mb_params_find(const mb_params *ps, const char *name);
static inline float *mb_param_data(const mb_params *ps, int i) { return ps->data + ps->items[i].offset; }
static inline float *mb_param_grad(const mb_params *ps, int i) { return ps->grad + ps->items[i].offset; }
/* An int8 copy (ops.h's mb_q8) of the 2-D parameter i, made from its data
 * (host memory: CPU contexts); the copies are dropped together. */
int mb_params_q8_make(mb_params *ps, int i);
void mb_params_q8_drop(mb_params *ps);
static inline const struct mb_q8_s *mb_param_q8(const mb_params *ps, int i)
{
    return ps->q8 && i >= 0 ? ps->q8[i] : NULL;
}
/* A bf16 copy of parameter i in the device memory of ctx; dropped together */
int mb_params_bf16_make(mb_params *ps, mb_ctx *ctx, int i);
void mb_params_bf16_drop(mb_params *ps, mb_ctx *ctx);
static inline const uint16_t *mb_param_bf16(const mb_params *ps, int i)
{
    return ps->bf16 && i >= 0 ? ps->bf16[i] : NULL;
}

/* Parameter i as a GEMM reads it in the context's precision: bf16, its
 * rounded copy where mb_params_w16_refresh made one; else the data */
static inline const float *mb_param_gemm(const mb_ctx *ctx, const mb_params *ps, int i)
{
    return ctx->precision == MB_PREC_BF16 && ps->w16 && ps->w16[i] ? ps->w16[i] : mb_param_data(ps, i);
}
/* What an op writes, as the context's precision stores it: rounded to bf16
 * in bf16 precision (rows ld apart of cols values), else untouched */
void mb_precision_store(mb_ctx *ctx, int rows, int cols, float *x, int ld);
/* The same for an activation only the conv and the scan read: rounded by
 * them as they read it on the GPU (mb_bf16_round_rows_conv_scan) */
void mb_precision_store_conv_scan(mb_ctx *ctx, int rows, int cols, float *x, int ld);
/* The weights were written (an optimizer step, a broadcast): the inference
 * copies (int8, bf16) dropped, bf16 precision's rounded copies marked
 * stale. Whoever writes the weights calls it. */
void mb_params_changed(mb_params *ps, mb_ctx *ctx);
/* bf16 precision: the rounded copies of the parameters `want` picks made
 * (or remade) from the data where mb_params_changed said they are stale;
 * nothing otherwise (a step calls it for every token) */
int mb_params_w16_refresh(mb_params *ps, mb_ctx *ctx, int (*want)(const mb_params *ps, int i, void *arg), void *arg);

#endif
