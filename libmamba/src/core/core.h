/* Internal core of libmamba: context, errors, arenas, random numbers.
 * Everything above (ops, nn, models, train) includes this; nothing here
 * knows about models. */
#ifndef MB_CORE_H
#define MB_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mamba.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MB_PI 3.14159265358979323846

/* OpenMP pragmas that vanish (without warnings) in builds without OpenMP.
 * _Pragma is C99: any compiler that opens parallel regions takes it. */
#ifdef _OPENMP
#define MB_OMP(x) _Pragma(#x)
#else
#define MB_OMP(x)
#endif

#if defined(__GNUC__)
#define MB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MB_PRINTF(a, b)
#endif

/* ---- errors --------------------------------------------------------------
 * Library calls return 0 on success and -1 on failure; the message of the
 * last failure on this thread is kept for mb_error_last(). */
int mb_error_set(const char *fmt, ...) MB_PRINTF(1, 2); /* always returns -1 */
void mb_error_clear(void);

/* Allocation that reports failure through mb_error_set. */
void *mb_malloc(size_t bytes, const char *what);
void *mb_calloc(size_t n, size_t size, const char *what);

/* ---- context ------------------------------------------------------------- */
typedef enum { MB_DEV_CPU = 0, MB_DEV_CUDA = 1 } mb_device_kind;

struct mb_ctx {
    mb_device_kind kind;
    int device_index;   /* cuda:N */
    int n_threads;      /* CPU threads for OpenMP regions */
    int allow_tf32;     /* CUDA only: GEMMs in TF32 when set */
    mb_precision precision; /* mb_ctx_set_precision (mamba.h): where it rounds, the ops' mb_precision_store */
    int failed;         /* sticky: a device call failed (the reason is in mb_error_last) */
    void *cuda;         /* backend state (stream, cuBLAS handle), NULL on CPU */
};

/* The CPUs a control group's quota allows this process, rounded up (2.5
 * CPUs: 3), the lowest over the cgroup and its parents, v2 or v1; 0 when
 * there is none or it cannot be read. root and self NULL: /sys/fs/cgroup
 * and /proc/self/cgroup (others for the tests). mb_ctx_set_threads caps
 * its default thread count by it (core/cpus.c says why). */
int mb_cpu_quota(const char *root, const char *self);

/* "fp32", "tf32" or "bf16": what a run's checkpoints record */
const char *mb_ctx_precision_name(const mb_ctx *ctx);
/* What a captured graph's work depends on besides its buffers: the
 * precision (which ops run, where they round) and TF32 (cuBLAS's kernels).
 * A graph captured under another key is stale: recapture it. Never 0. */
static inline int mb_ctx_graph_key(const mb_ctx *ctx) { return 1 + 2 * (int)ctx->precision + !!ctx->allow_tf32; }

/* 0 while no device call has failed on this context; ops return void and a
 * CUDA failure inside one marks the context, so callers check once per
 * forward, backward or step. */
static inline int mb_ctx_check(const mb_ctx *ctx) { return ctx->failed ? -1 : 0; }
/* For ops, which return void: record the reason (unless an earlier failure
 * already holds the message) and mark the context failed. Returns -1. */
int mb_ctx_fail(mb_ctx *ctx, const char *fmt, ...) MB_PRINTF(2, 3);

/* ---- arenas --------------------------------------------------------------
 * A bump allocator over one block, sized once per shape: a step takes its
 * scratch from here and never calls malloc. */
typedef struct {
    char *base;
    size_t cap;
    size_t used;
    size_t peak;
    mb_ctx *ctx; /* whose memory base is */
} mb_arena;

int mb_arena_init(mb_arena *a, mb_ctx *ctx, size_t cap);
void mb_arena_free(mb_arena *a);
/* 64-byte aligned; NULL (and an error) when the arena is too small, which
 * is a sizing bug, not a condition to recover from: an op that gets NULL
 * marks its context failed (mb_ctx_fail), so the caller's check reports it. */
void *mb_arena_alloc(mb_arena *a, size_t bytes);
float *mb_arena_floats(mb_arena *a, size_t n);
static inline void mb_arena_reset(mb_arena *a) { a->used = 0; }
static inline size_t mb_align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* ---- random numbers ------------------------------------------------------
 * xoshiro256** seeded through splitmix64: fast, portable and identical on
 * every platform, so a seed names one run everywhere. */
typedef struct { uint64_t s[4]; } mb_rng;

void mb_rng_seed(mb_rng *r, uint64_t seed);
uint64_t mb_rng_u64(mb_rng *r);
double mb_rng_uniform(mb_rng *r);             /* [0, 1) */
double mb_rng_normal(mb_rng *r);              /* N(0, 1) */
uint32_t mb_rng_below(mb_rng *r, uint32_t n); /* [0, n), unbiased */

/* ---- activation layouts ----------------------------------------------------
 * One way to lay out a block of buffers: a function hands out its buffers
 * from a cursor twice, first with base NULL to count (every pointer it gets
 * is NULL), then over the block allocated for that count. Each buffer
 * starts 16 floats (64 bytes) after a multiple: vector loads stay aligned. */
typedef struct {
    float *base; /* NULL: counting */
    size_t n;    /* floats handed out so far */
} mb_carve;

static inline size_t mb_carve_round(size_t n) { return (n + 15) & ~(size_t)15; }
static inline float *mb_carve_take(mb_carve *c, size_t n)
{
    float *p = c->base ? c->base + c->n : NULL;
    c->n += mb_carve_round(n);
    return p;
}

#ifdef __cplusplus
}
#endif
/* device memory, copies, pinned memory, graphs: core/device.h */
#include "core/device.h"

#endif
