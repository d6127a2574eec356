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

#endif
