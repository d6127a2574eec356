/* Data-parallel training: the group of processes (MPI when built with it),
 * host collectives for the tools' metrics, and the gradient all-reduce of
 * mb_optim_step (MPI_Allreduce on the CPU; NCCL, in train/dist_nccl.cu, on
 * a GPU; through a host copy and MPI on a GPU when NCCL is not built in).
 *
 * One all-reduce over the whole contiguous gradient buffer after the
 * backward, not buckets overlapped with it: the DNA model's buffer is 14 MB
 * (3.5M floats) against a step of about 200 ms at L = 2^17 on an H100, and
 * a 2-GPU all-reduce of 14 MB over NVLink takes well under a millisecond,
 * under 1% of the step; the layer-by-layer hooks that overlapping would
 * need (inside the model's backward, with recompute and chunks) would buy
 * nothing measurable. bench_dist times the reduce on its own (device
 * events) to keep that true. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#ifdef MB_HAVE_MPI
#include <mpi.h>
#endif

#include "models/model.h"
#include "nn/params.h"
#include "ops/ops.h"
#include "train/dist.h"
#include "train/optim.h"

/* ---- launch environment ---------------------------------------------------- */

static int env_int(const char *name, int *v)
{
    const char *s = getenv(name);
    if (!s || !*s) return 0;
    char *end;
    const long x = strtol(s, &end, 10);
    if (*end || x < 0 || x > INT_MAX) return 0;
    *v = (int)x;
    return 1;
}

int mb_dist_launched(int *rank)
{
    /* Open MPI; MPICH / Intel MPI (Hydra) and Slurm's PMI; PMIx launchers */
    static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK"};
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "OMPI_UNIVERSE_SIZE"};
    int r = 0, launched = 0, v;
    for (size_t i = 0; i < sizeof rank_vars / sizeof *rank_vars; i++)
        if (env_int(rank_vars[i], &v)) {
            if (!launched) r = v;
            launched = 1;
        }
    if (rank) *rank = r;
    for (size_t i = 0; i < sizeof size_vars / sizeof *size_vars; i++)
        if (env_int(size_vars[i], &v) && v >= 1) return v;
    return launched ? -1 : 0;
}

int mb_dist_check_no_mpi(void)
{
    int rank = 0;
    const int n = mb_dist_launched(&rank);
    if (n > 1)
        return mb_error_set("launched by mpirun with %d processes, but this build has no MPI support: "
                            "rebuild with libopenmpi-dev installed",
                            n);
    if (n < 0 && rank > 0)
        return mb_error_set("launched by mpirun (this is rank %d), but this build has no MPI support: "
                            "rebuild with libopenmpi-dev installed",
                            rank);
    return 0;
}

/* ---- MPI ------------------------------------------------------------------ */

#ifdef MB_HAVE_MPI
/* Our communicator returns errors (MPI_ERRORS_RETURN) instead of aborting,
 * so every call is checked here and reported in one line. */
static int mpi_ok(int rc, const char *call)
{
    if (rc == MPI_SUCCESS) return 0;
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    if (MPI_Error_string(rc, s, &n) != MPI_SUCCESS) snprintf(s, sizeof s, "error %d", rc);
    return mb_error_set("mpi: %s: %s", call, s);
}
#define MPI_OK(call) mpi_ok((call), #call)

static MPI_Comm comm_of(const mb_dist *d) { return *(MPI_Comm *)d->mpi_comm; }

/* MPI counts are int: larger buffers go in pieces */
#define MB_MPI_CHUNK ((size_t)1 << 30)

static int mpi_sum_floats(mb_dist *d, float *v, size_t n)
{
    for (size_t i = 0; i < n; i += MB_MPI_CHUNK) {
        const int k = (int)(n - i < MB_MPI_CHUNK ? n - i : MB_MPI_CHUNK);
        if (MPI_OK(MPI_Allreduce(MPI_IN_PLACE, v + i, k, MPI_FLOAT, MPI_SUM, comm_of(d)))) return -1;
    }
    return 0;
}

static int mpi_bcast_bytes(mb_dist *d, void *buf, size_t bytes)
{
    for (size_t i = 0; i < bytes; i += MB_MPI_CHUNK) {
        const int k = (int)(bytes - i < MB_MPI_CHUNK ? bytes - i : MB_MPI_CHUNK);
        if (MPI_OK(MPI_Bcast((char *)buf + i, k, MPI_BYTE, 0, comm_of(d)))) return -1;
    }
    return 0;
}

static int mpi_join(mb_dist *d, int *argc, char ***argv)
{
    int inited = 0;
    if (MPI_OK(MPI_Initialized(&inited))) return -1;
    if (!inited) {
        /* FUNNELED: OpenMP threads run inside a rank, only the main thread
         * calls MPI */
        int provided = 0;
        if (MPI_OK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided))) return -1;
        d->owns_mpi = 1;
    }
    MPI_Comm *c = mb_malloc(sizeof *c, "MPI communicator");
    if (!c) return -1;
    /* a communicator of our own: a host program's traffic on MPI_COMM_WORLD
     * never matches ours, and its error handler is ours to set */
    if (MPI_OK(MPI_Comm_dup(MPI_COMM_WORLD, c))) {
        free(c);
        return -1;
    }
    d->mpi_comm = c;
    if (MPI_OK(MPI_Comm_set_errhandler(*c, MPI_ERRORS_RETURN)) || MPI_OK(MPI_Comm_rank(*c, &d->rank)) ||
        MPI_OK(MPI_Comm_size(*c, &d->size)))
        return -1;
    /* the rank among this node's processes picks the GPU: ask MPI rather
     * than a launcher's variable, so any MPI gives it */
    MPI_Comm node;
    if (MPI_OK(MPI_Comm_split_type(*c, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node))) return -1;
    const int bad = MPI_OK(MPI_Comm_rank(node, &d->local_rank));
    MPI_Comm_free(&node);
    return bad ? -1 : 0;
}
#endif

/* ---- the group ------------------------------------------------------------- */

mb_dist *mb_dist_init(int *argc, char ***argv)
{
    mb_dist *d = mb_calloc(1, sizeof *d, "process group");
    if (!d) return NULL;
    d->size = 1;
    d->nccl_device = -1;
#ifdef MB_HAVE_MPI
    int inited = 0;
    if (MPI_OK(MPI_Initialized(&inited))) {
        free(d);
        return NULL;
    }
    /* not started by mpirun (and no host program started MPI): one rank,
     * without MPI_Init's cost or a singleton's helper processes */
    if (!inited && mb_dist_launched(NULL) == 0) return d;
    if (mpi_join(d, argc, argv)) {
        mb_dist_finalize(d);
        return NULL;
    }
#else
    (void)argc, (void)argv;
    if (mb_dist_check_no_mpi()) {
        free(d);
        return NULL;
    }
#endif
    return d;
}

void mb_dist_finalize(mb_dist *d)
{
    if (!d) return;
    mb_nccl_free(d);
    free(d->stage);
#ifdef MB_HAVE_MPI
    if (d->mpi_comm) {
        MPI_Comm_free((MPI_Comm *)d->mpi_comm);
        free(d->mpi_comm);
    }
    if (d->owns_mpi) MPI_Finalize();
#endif
    free(d);
}

int mb_dist_rank(const mb_dist *d) { return d ? d->rank : 0; }
int mb_dist_size(const mb_dist *d) { return d ? d->size : 1; }
int mb_dist_local_rank(const mb_dist *d) { return d ? d->local_rank : 0; }

int mb_dist_sum(mb_dist *d, double *v, int n)
{
    if (!d || d->size == 1 || n <= 0) return 0;
#ifdef MB_HAVE_MPI
    return MPI_OK(MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, MPI_SUM, comm_of(d)));
#else
    (void)v;
    return 0;
#endif
}

int mb_dist_bcast(mb_dist *d, void *buf, size_t bytes)
{
    if (!d || d->size == 1 || bytes == 0) return 0;
#ifdef MB_HAVE_MPI
    return mpi_bcast_bytes(d, buf, bytes);
#else
    (void)buf;
    return 0;
#endif
}

int mb_dist_barrier(mb_dist *d)
{
    if (!d || d->size == 1) return 0;
#ifdef MB_HAVE_MPI
    return MPI_OK(MPI_Barrier(comm_of(d)));
#else
    return 0;
#endif
}

void mb_dist_abort(mb_dist *d, int code)
{
#ifdef MB_HAVE_MPI
    if (d && d->mpi_comm && d->size > 1) MPI_Abort(comm_of(d), code);
#else
    (void)d;
#endif
    exit(code);
}

/* ---- the model's parameters and gradients ----------------------------------- */

#ifdef MB_HAVE_MPI
/* CUDA without NCCL: through one host buffer, kept for the next step */
static float *stage(mb_dist *d, size_t n)
{
    if (d->stage_n < n) {
        free(d->stage);
        d->stage_n = 0;
        if (!(d->stage = mb_malloc(n * sizeof(float), "all-reduce staging"))) return NULL;
        d->stage_n = n;
    }
    return d->stage;
}

static int bcast_floats(mb_dist *d, mb_ctx *ctx, float *buf, size_t n)
{
    if (ctx->kind == MB_DEV_CPU) return mpi_bcast_bytes(d, buf, n * sizeof(float));
    if (d->nccl) return mb_nccl_bcast(d, ctx, buf, n);
    float *h = stage(d, n);
    if (!h || mb_dev_download(ctx, h, buf, n * sizeof(float)) || mpi_bcast_bytes(d, h, n * sizeof(float)))
        return -1;
    return mb_dev_upload(ctx, buf, h, n * sizeof(float));
}
#endif

int mb_model_set_dist(mb_model *m, mb_dist *d)
{
    m->dist = NULL;
    if (!d || d->size == 1) {
        m->dist = d;
        return 0;
    }
#ifdef MB_HAVE_MPI
    mb_ctx *ctx = m->ctx;
    if (ctx->kind == MB_DEV_CUDA && mb_nccl_built() && mb_nccl_init(d, ctx)) return -1;
    /* same-seed initialization already agrees; a checkpoint read by every
     * rank should too, but rank 0's copy is the one that gets saved */
    /* the weights may change: their copies would be stale */
    mb_params_changed(&m->params, ctx);
    if (bcast_floats(d, ctx, m->params.data, m->params.total)) return -1;
    m->dist = d;
    return mb_ctx_check(ctx);
#else
    return mb_error_set("a group of %d ranks in a build without MPI", d->size); /* cannot happen */
#endif
}

int mb_dist_grad_reduce(mb_dist *d, mb_ctx *ctx, float *grad, size_t n, double share)
{
    if (!d || d->size == 1) return 0;
#ifdef MB_HAVE_MPI
    /* weighted: scale this rank's part first, then a plain sum */
    const float w = share >= 0 ? (float)share : 1.0f / (float)d->size;
    if (d->nccl) {
        if (share >= 0) mb_axpby(ctx, n, 0.f, grad, w, grad);
        return mb_nccl_allreduce(d, ctx, grad, n, share < 0);
    }
    /* the scaling runs on the context's device (its own threads or stream);
     * the host copy, on a GPU, is ordered after it by the download */
    const double t0 = MPI_Wtime();
    if (share >= 0) mb_axpby(ctx, n, 0.f, grad, w, grad);
    if (ctx->kind == MB_DEV_CPU) {
        if (mpi_sum_floats(d, grad, n)) return -1;
    } else {
        float *h = stage(d, n);
        if (!h || mb_dev_download(ctx, h, grad, n * sizeof(float)) || mpi_sum_floats(d, h, n) ||
            mb_dev_upload(ctx, grad, h, n * sizeof(float)))
            return -1;
    }
    if (share < 0) mb_axpby(ctx, n, 0.f, grad, w, grad);
    d->last_ms = 1e3 * (MPI_Wtime() - t0);
    return 0;
#else
    (void)ctx, (void)grad, (void)n, (void)share;
    return mb_error_set("a group of %d ranks in a build without MPI", d->size); /* cannot happen */
#endif
}

double mb_dist_last_reduce_ms(mb_dist *d)
{
    if (!d || d->size == 1) return 0;
    return d->nccl ? mb_nccl_last_ms(d) : d->last_ms;
}

void mb_optim_set_share(mb_optim *o, double share) { o->share = share; }

#ifndef MB_HAVE_NCCL
/* no NCCL (CPU-only builds, or CUDA without it): train/dist_nccl.cu is
 * empty, and a GPU group never gets a communicator */
int mb_nccl_built(void) { return 0; }
int mb_nccl_init(mb_dist *d, mb_ctx *ctx)
{
    (void)d, (void)ctx;
    return mb_error_set("nccl: not built in");
}
int mb_nccl_allreduce(mb_dist *d, mb_ctx *ctx, float *buf, size_t n, int avg)
{
    (void)d, (void)ctx, (void)buf, (void)n, (void)avg;
    return mb_error_set("nccl: not built in");
}
int mb_nccl_bcast(mb_dist *d, mb_ctx *ctx, float *buf, size_t n)
{
    (void)d, (void)ctx, (void)buf, (void)n;
    return mb_error_set("nccl: not built in");
}
double mb_nccl_last_ms(mb_dist *d)
{
    (void)d;
    return 0;
}
void mb_nccl_free(mb_dist *d) { (void)d; }
#endif
