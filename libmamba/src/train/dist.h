/* Internal side of data-parallel training (train/dist.c, and the NCCL part
 * in train/dist_nccl.cu): the group, the gradient all-reduce that
 * mb_optim_step runs, and what the tests and bench_dist reach past the
 * public API for.
 *
 * The struct holds no MPI or NCCL types, so that files built without
 * mpi.h or nccl.h (the .cu side, the tests) see the same layout: the MPI
 * communicator and the NCCL communicator sit behind void pointers. */
#ifndef MB_DIST_H
#define MB_DIST_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

struct mb_dist {
    int rank, size, local_rank;
    int owns_mpi;     /* MPI_Init was ours, so MPI_Finalize is too */
    void *mpi_comm;   /* MPI_Comm * (a dup of MPI_COMM_WORLD), NULL with one rank */
    void *nccl;       /* ncclComm_t, made by mb_model_set_dist on a CUDA context */
    int nccl_device;  /* the CUDA device of that communicator */
    float *stage;     /* host staging of a CUDA gradient when NCCL is not built in */
    size_t stage_n;
    /* timing of the gradient all-reduce (bench_dist): off unless set */
    int timing;
    double last_ms;   /* the last reduce as the host saw it (CPU, staged path) */
    void *ev[2];      /* cudaEvent_t around the NCCL call (read by mb_dist_last_reduce_ms) */
};

/* For builds without MPI: -1 and the error "launched by mpirun with N
 * processes, but this build has no MPI support: ..." when the environment
 * says this process is one of several; 0 otherwise. */
int mb_dist_check_no_mpi(void);

/* mb_optim_step's reduce over grad[0..n) on ctx's device: the weighted sum
 * with weight `share` when share >= 0, else the average. */
int mb_dist_grad_reduce(mb_dist *d, mb_ctx *ctx, float *grad, size_t n, double share);
/* Milliseconds of the last gradient reduce, with d->timing set (device
 * events around the NCCL call; host clock otherwise). Waits for it. */
double mb_dist_last_reduce_ms(mb_dist *d);

/* ---- NCCL (train/dist_nccl.cu; CUDA builds with MB_HAVE_NCCL) ------------ */
int mb_nccl_built(void); /* 1 when this library was built with NCCL */
/* The communicator for ctx's device (collective over d; rank 0's unique id
 * goes to the others through mb_dist_bcast). Once per group: a second call
 * on the same device does nothing, on another device fails. */
int mb_nccl_init(mb_dist *d, mb_ctx *ctx);
/* In place on ctx's stream: the average (avg) or the sum over the ranks. */
int mb_nccl_allreduce(mb_dist *d, mb_ctx *ctx, float *buf, size_t n, int avg);
/* Rank 0's buf to every rank; waits for it. */
int mb_nccl_bcast(mb_dist *d, mb_ctx *ctx, float *buf, size_t n);
double mb_nccl_last_ms(mb_dist *d);
void mb_nccl_free(mb_dist *d);

#ifdef __cplusplus
}
#endif
#endif
