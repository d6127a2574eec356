/* What the benchmarks that call the CUDA runtime themselves share (plain C
 * and CUDA C++ alike: bench_gpu.c, bench_latency.cu). */
#ifndef MB_BENCH_CUDA_H
#define MB_BENCH_CUDA_H

#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>

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

#endif
