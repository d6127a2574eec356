/* What the benchmarks that call the CUDA runtime themselves share (plain C
 * and CUDA C++ alike: bench_gpu.c, bench_latency.cu, bench_gemv.cu). */
#ifndef MB_BENCH_CUDA_H
#define MB_BENCH_CUDA_H

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The one option of a benchmark that takes only --quick: 1 with it, 0
 * without; anything else ends the program with its usage (exit 2). */
static inline int bench_args_quick(int argc, char **argv, const char *prog)
{
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: %s [--quick]\n", prog);
            exit(2);
        }
    }
    return quick;
}

/* A failing CUDA call outside a table row ends the program (prog: its
 * name in the message): the numbers after it would mean nothing. */
#define BENCH_CUDA_CHECK(prog, call)                                                               \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "%s: %s:%d: %s: %s\n", prog, __FILE__, __LINE__, #call,               \
                    cudaGetErrorString(e_));                                                      \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

/* Milliseconds between two events on stream s: bench_tic records the
 * first, bench_toc the second, waits for it and frees both. */
typedef struct {
    cudaEvent_t a, b;
} bench_timer;

static inline bench_timer bench_tic(cudaStream_t s)
{
    bench_timer t;
    BENCH_CUDA_CHECK("bench", cudaEventCreate(&t.a));
    BENCH_CUDA_CHECK("bench", cudaEventCreate(&t.b));
    BENCH_CUDA_CHECK("bench", cudaEventRecord(t.a, s));
    return t;
}

static inline float bench_toc(bench_timer t, cudaStream_t s)
{
    float ms;
    BENCH_CUDA_CHECK("bench", cudaEventRecord(t.b, s));
    BENCH_CUDA_CHECK("bench", cudaEventSynchronize(t.b));
    BENCH_CUDA_CHECK("bench", cudaEventElapsedTime(&ms, t.a, t.b));
    BENCH_CUDA_CHECK("bench", cudaEventDestroy(t.a));
    BENCH_CUDA_CHECK("bench", cudaEventDestroy(t.b));
    return ms;
}

/* median of v[0..n) (n <= 64), which it sorts */
static inline float bench_median_f(float *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            const float t = v[j];
            v[j] = v[j - 1], v[j - 1] = t;
        }
    return v[n / 2];
}

/* The GPU's copy bandwidth, bytes read + written a second: `bytes` device
 * to device on stream s, the median of reps (<= 64) after a warm-up. The
 * yardstick of the benchmarks' memory floors. */
static inline double bench_copy_bandwidth(cudaStream_t s, size_t bytes, int reps)
{
    void *a, *b;
    float ms[64];
    if (reps > 64) reps = 64;
    BENCH_CUDA_CHECK("bench", cudaMalloc(&a, bytes));
    BENCH_CUDA_CHECK("bench", cudaMalloc(&b, bytes));
    BENCH_CUDA_CHECK("bench", cudaMemsetAsync(a, 0x5a, bytes, s));
    BENCH_CUDA_CHECK("bench", cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s)); /* warm-up */
    for (int i = 0; i < reps; i++) {
        bench_timer t = bench_tic(s);
        BENCH_CUDA_CHECK("bench", cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, s));
        ms[i] = bench_toc(t, s);
    }
    BENCH_CUDA_CHECK("bench", cudaFree(a));
    BENCH_CUDA_CHECK("bench", cudaFree(b));
    return 2.0 * (double)bytes / (1e-3 * bench_median_f(ms, reps));
}

#endif
