/* Timing helpers shared by the benchmarks. */
#ifndef MB_BENCH_UTIL_H
#define MB_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "core/core.h"

static inline double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median of v[0..n), which it sorts */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

/* bytes a second read by a sum over a buffer larger than any cache, on the
 * CPU: the floor's yardstick for weights streamed once a token. Sixteen
 * partial sums a thread: one running sum would measure the adder's
 * latency, not the memory. */
static inline double cpu_read_bandwidth(void)
{
    const size_t n = (size_t)128 << 20;
    float *a = malloc(n * sizeof(float));
    if (!a) return 0;
    for (size_t i = 0; i < n; i++) a[i] = 1.f;
    double best = 0;
    for (int r = 0; r < 4; r++) {
        const double t0 = bench_now_s();
        float tot = 0;
        MB_OMP(omp parallel reduction(+ : tot))
        {
            float s[16] = {0};
            MB_OMP(omp for schedule(static))
            for (size_t i = 0; i < n; i += 16)
                for (int j = 0; j < 16; j++) s[j] += a[i + j];
            for (int j = 0; j < 16; j++) tot += s[j];
        }
        const double bw = (double)n * sizeof(float) / (bench_now_s() - t0);
        if (tot > 0 && bw > best) best = bw;
    }
    free(a);
    return best;
}

/* The training tables' model: mamba_ssm's defaults with this width, depth,
 * vocabulary and A. The DNA model of DESIGN.md is bench_model_config(cfg,
 * 256, 8, 16, 0), trained with per-layer recompute. */
static inline void bench_model_config(mb_config *cfg, int d_model, int n_layer, int vocab, int cplx)
{
    mb_config_default(cfg);
    cfg->d_model = d_model;
    cfg->n_layer = n_layer;
    cfg->vocab_size = vocab;
    cfg->init = cplx ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL;
}

/* arch of the training rows: 0 the causal LM, 1 the bidirectional model
 * (mamba-bidir), 2 the same with reverse-complement sharing (DNA's
 * complement on tokens 7-10) */
static inline void bench_model_arch(mb_config *cfg, int arch)
{
    if (!arch) return;
    cfg->arch = MB_ARCH_BIDIR;
    cfg->rc_equivariant = arch == 2;
    for (int v = 7; v <= 10 && v < cfg->vocab_size; v++) cfg->rc_complement[v] = 17 - v;
}

/* n random tokens and targets in [0, vocab) from `seed` (malloc'd; 0, or
 * -1 when out of memory with both NULL). */
static inline int bench_tokens(size_t n, int vocab, uint64_t seed, int32_t **tok, int32_t **tgt)
{
    *tok = malloc(sizeof(int32_t) * n);
    *tgt = malloc(sizeof(int32_t) * n);
    if (!*tok || !*tgt) {
        free(*tok), free(*tgt);
        *tok = *tgt = NULL;
        return -1;
    }
    mb_rng r;
    mb_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) {
        (*tok)[i] = (int32_t)mb_rng_below(&r, (uint32_t)vocab);
        (*tgt)[i] = (int32_t)mb_rng_below(&r, (uint32_t)vocab);
    }
    return 0;
}

#endif
