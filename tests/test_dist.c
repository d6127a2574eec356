/* Data-parallel training through the library (train/dist.c). Run as one
 * process (a group of one: nothing changes, nothing costs) and, where MPI
 * was found, under mpiexec with 2 ranks (test_dist_2ranks; argument
 * --ranks 2 says how many it must see):
 * - mb_dist_sum and mb_dist_bcast give the right values;
 * - a small LM trained a few steps on a global batch of 4, each rank on its
 *   rows, gives the per-step losses, gradient norms and final parameters of
 *   one process trained on all 4 rows, with targets ignored unevenly over
 *   the rows (the ranks' shares, mb_optim_set_share), and from a rank that
 *   started from other weights (mb_model_set_dist broadcasts rank 0's);
 * - every rank ends with the same parameters, bit for bit;
 * - the launcher's environment is read as Open MPI / Hydra / PMIx write it,
 *   and a build without MPI refuses a launch of several processes.
 * --device cuda runs the training case on cuda:LOCAL_RANK (the GPU check
 * runs it so under mpirun: NCCL). */
#define _POSIX_C_SOURCE 200809L /* setenv, unsetenv */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "nn/params.h"
#include "testutil.h"
#include "train/dist.h"

static mb_dist *g_dist;
static int g_expect = 1;           /* --ranks */
static const char *g_device = "cpu";

static void test_group(void **st)
{
    (void)st;
    const int P = mb_dist_size(g_dist), r = mb_dist_rank(g_dist);
    printf("# rank %d of %d (local rank %d)\n", r, P, mb_dist_local_rank(g_dist));
    assert_int_equal(P, g_expect);
    assert_true(r >= 0 && r < P);
    assert_true(mb_dist_local_rank(g_dist) >= 0 && mb_dist_local_rank(g_dist) < P);
    assert_int_equal(mb_dist_barrier(g_dist), 0);
}

static void test_sum_bcast(void **st)
{
    (void)st;
    const int P = mb_dist_size(g_dist), r = mb_dist_rank(g_dist);
    double v[3] = {r + 1.0, 1.5, -(double)r * r};
    assert_int_equal(mb_dist_sum(g_dist, v, 3), 0);
    double want2 = 0;
    for (int i = 0; i < P; i++) want2 -= (double)i * i;
    assert_true(v[0] == P * (P + 1) / 2.0);
    assert_true(v[1] == 1.5 * P);
    assert_true(v[2] == want2);
    /* larger than one MPI message of the shared-memory transport */
    const size_t n = (size_t)3 << 20;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++) b[i] = r == 0 ? (unsigned char)(i * 131 + 7) : 0xee;
    assert_int_equal(mb_dist_bcast(g_dist, b, n), 0);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += b[i] != (unsigned char)(i * 131 + 7);
    assert_int_equal(bad, 0);
    free(b);
}

/* ---- training: P ranks with their rows against one process with all ---- */

/* 8 rows: 1, 2, 4 or 8 ranks (scripts/gpu_dist.sh runs it on every GPU) */
#define T_B 8
#define T_L 48
#define T_STEPS 5
#define T_VOCAB 10

static void make_batch(int step, int32_t *tok, int32_t *tgt)
{
    mb_rng r;
    mb_rng_seed(&r, 1000 + (uint64_t)step);
    for (int i = 0; i < T_B * T_L; i++) {
        tok[i] = (int32_t)mb_rng_below(&r, T_VOCAB);
        tgt[i] = (int32_t)mb_rng_below(&r, T_VOCAB);
    }
    /* uneven ignored targets, so the ranks count different targets at
     * any rank count: rows 0, 1 and 2 lose 60%, 80% and 20% of their
     * positions, row 5 40%, the others none */
    static const int lost[T_B] = {6, 8, 2, 0, 0, 4, 0, 0}; /* tenths */
    for (int r = 0; r < T_B; r++)
        for (int t = 0; t < T_L * lost[r] / 10; t++) tgt[r * T_L + t] = MB_IGNORE_INDEX;
}

static mb_ctx *make_ctx(void)
{
    char dev[32];
    snprintf(dev, sizeof dev, "%s", g_device);
    if (strcmp(g_device, "cuda") == 0) snprintf(dev, sizeof dev, "cuda:%d", mb_dist_local_rank(g_dist));
    mb_ctx *ctx = mb_ctx_create(dev);
    if (!ctx) fprintf(stderr, "# %s: %s\n", dev, mb_error_last());
    assert_non_null(ctx);
    mb_ctx_set_threads(ctx, 1);
    return ctx;
}

static mb_model *make_model(mb_ctx *ctx, uint64_t seed)
{
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 24, cfg.n_layer = 2, cfg.vocab_size = T_VOCAB;
    mb_model *m = mb_model_create(ctx, &cfg, seed);
    assert_non_null(m);
    return m;
}

static float *params_host(mb_model *m)
{
    float *h = malloc(m->params.total * sizeof(float));
    assert_non_null(h);
    assert_int_equal(mb_dev_download(m->ctx, h, m->params.data, m->params.total * sizeof(float)), 0);
    return h;
}

typedef struct {
    double loss[T_STEPS], gnorm[T_STEPS];
    float *params;
} run_out;

static void optim_cfg(mb_optim_config *oc)
{
    mb_optim_config_default(oc);
    oc->lr = 5e-3f;
    oc->warmup_steps = 1;
    oc->total_steps = T_STEPS;
    oc->grad_clip = 0.5f; /* clipping on: the norm it reads must be the global one */
}

/* With d NULL, one process on all T_B rows. Else this rank's rows, with
 * the ranks' shares given (weighted) or not (a plain average); rank 0
 * starts from seed 1, the others from seed 2: mb_model_set_dist must make
 * them start from rank 0's weights. */
static void run_train(run_out *out, mb_dist *d, int weighted)
{
    const int P = d ? mb_dist_size(d) : 1, r = d ? mb_dist_rank(d) : 0;
    const int rows = T_B / P, row0 = r * rows;
    mb_ctx *ctx = make_ctx();
    mb_model *m = make_model(ctx, r == 0 ? 1 : 2);
    if (d) assert_int_equal(mb_model_set_dist(m, d), 0);
    mb_optim_config oc;
    optim_cfg(&oc);
    mb_optim *o = mb_optim_create(m, &oc);
    assert_non_null(o);
    int32_t tok[T_B * T_L], tgt[T_B * T_L];
    for (int s = 0; s < T_STEPS; s++) {
        make_batch(s, tok, tgt);
        mb_loss_stats st = {0};
        float gn = 0;
        assert_int_equal(mb_model_forward_backward(m, tok + row0 * T_L, tgt + row0 * T_L, rows, T_L, &st), 0);
        double v[2] = {st.loss_sum, (double)st.count};
        assert_int_equal(mb_dist_sum(d, v, 2), 0);
        if (weighted) mb_optim_set_share(o, (double)st.count / v[1]);
        assert_int_equal(mb_optim_step(o, &gn, NULL), 0);
        out->loss[s] = v[0] / v[1];
        out->gnorm[s] = gn;
    }
    out->params = params_host(m);
    /* every rank took the same steps: rank 0's weights, bit for bit */
    const size_t n = m->params.total;
    float *p0 = malloc(n * sizeof(float));
    assert_non_null(p0);
    memcpy(p0, out->params, n * sizeof(float));
    assert_int_equal(mb_dist_bcast(d, p0, n * sizeof(float)), 0);
    assert_memory_equal(p0, out->params, n * sizeof(float));
    free(p0);
    mb_optim_free(o);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

/* max relative difference of the losses and norms; of the parameters,
 * max |a - b| / max |b| */
static void compare(const run_out *a, const run_out *b, size_t n, double *dloss, double *dnorm,
                    double *dparam)
{
    *dloss = *dnorm = 0;
    for (int s = 0; s < T_STEPS; s++) {
        *dloss = fmax(*dloss, fabs(a->loss[s] - b->loss[s]) / fabs(b->loss[s]));
        *dnorm = fmax(*dnorm, fabs(a->gnorm[s] - b->gnorm[s]) / fabs(b->gnorm[s]));
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a->params[i] - b->params[i]));
        den = fmax(den, fabs((double)b->params[i]));
    }
    *dparam = num / den;
}

static void test_train_equals_one_process(void **st)
{
    (void)st;
    const int P = mb_dist_size(g_dist);
    assert_int_equal(T_B % P, 0);
    run_out whole = {0}, split = {0};
    run_train(&whole, NULL, 0);
    run_train(&split, g_dist, 1);
    mb_ctx *ctx = make_ctx();
    mb_model *m = make_model(ctx, 1);
    const size_t n = m->params.total;
    mb_model_free(m);
    mb_ctx_free(ctx);
    double dl, dn, dp;
    compare(&split, &whole, n, &dl, &dn, &dp);
    for (int s = 0; s < T_STEPS; s++)
        printf("# step %d: loss %.9f (%d ranks) %.9f (one process), grad norm %.7f %.7f\n", s + 1,
               split.loss[s], P, whole.loss[s], split.gnorm[s], whole.gnorm[s]);
    printf("# %d ranks against one process (%s): max relative difference loss %.3g, grad norm %.3g, "
           "parameters %.3g\n",
           P, g_device, dl, dn, dp);
    const double tol = strcmp(g_device, "cpu") == 0 ? 1e-5 : 1e-4;
    assert_true(dl < tol);
    assert_true(dn < tol);
    assert_true(dp < tol);
    /* the losses moved: the steps were taken */
    assert_true(fabs(whole.loss[T_STEPS - 1] - whole.loss[0]) > 1e-3);
    if (P > 1) {
        /* the shares matter: equal weights give another run, so the case
         * above did check the weighting (and that the ranks exchanged) */
        run_out plain = {0};
        run_train(&plain, g_dist, 0);
        const double dp_weighted = dp;
        compare(&plain, &whole, n, &dl, &dn, &dp);
        printf("# equal shares instead: loss %.3g, parameters %.3g off\n", dl, dp);
        assert_true(dp > 1e-3 && dp > 10 * dp_weighted);
        free(plain.params);
    }
    free(whole.params);
    free(split.params);
}

/* ---- the launcher's environment ------------------------------------------ */

static const char *const k_env[] = {"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_UNIVERSE_SIZE",
                                    "PMI_SIZE", "PMI_RANK", "PMIX_RANK"};

static void env_clear(void)
{
    for (size_t i = 0; i < sizeof k_env / sizeof *k_env; i++) unsetenv(k_env[i]);
}

static void test_launch_env(void **st)
{
    (void)st;
    if (mb_dist_launched(NULL) != 0) {
        printf("# started by a launcher: its environment is not ours to change\n");
        assert_int_equal(mb_dist_launched(NULL), mb_dist_size(g_dist));
        return;
    }
    int r = -1;
    assert_int_equal(mb_dist_launched(&r), 0);
    assert_int_equal(r, 0);
    assert_int_equal(mb_dist_check_no_mpi(), 0);
    /* Open MPI */
    setenv("OMPI_COMM_WORLD_SIZE", "3", 1);
    setenv("OMPI_COMM_WORLD_RANK", "2", 1);
    assert_int_equal(mb_dist_launched(&r), 3);
    assert_int_equal(r, 2);
    assert_int_equal(mb_dist_check_no_mpi(), -1);
    printf("# %s\n", mb_error_last());
    assert_non_null(strstr(mb_error_last(), "launched by mpirun with 3 processes"));
    assert_non_null(strstr(mb_error_last(), "no MPI support"));
    assert_non_null(strstr(mb_error_last(), "libopenmpi-dev"));
    env_clear();
    /* Hydra (MPICH, Intel MPI) */
    setenv("PMI_SIZE", "4", 1);
    setenv("PMI_RANK", "1", 1);
    assert_int_equal(mb_dist_launched(&r), 4);
    assert_int_equal(r, 1);
    env_clear();
    /* PMIx without a size: launched, count unknown; rank 0 cannot tell */
    setenv("PMIX_RANK", "0", 1);
    assert_int_equal(mb_dist_launched(&r), -1);
    assert_int_equal(mb_dist_check_no_mpi(), 0);
    setenv("PMIX_RANK", "5", 1);
    assert_int_equal(mb_dist_check_no_mpi(), -1);
    assert_non_null(strstr(mb_error_last(), "rank 5"));
    /* one process under mpirun is fine anywhere */
    env_clear();
    setenv("OMPI_COMM_WORLD_SIZE", "1", 1);
    assert_int_equal(mb_dist_launched(NULL), 1);
    assert_int_equal(mb_dist_check_no_mpi(), 0);
    env_clear();
}

/* A group of one is free: mb_model_set_dist and the reduce do nothing. */
static void test_one_rank_noop(void **st)
{
    (void)st;
    if (mb_dist_size(g_dist) != 1) return;
    mb_ctx *ctx = make_ctx();
    mb_model *m = make_model(ctx, 1);
    float *before = params_host(m);
    assert_int_equal(mb_model_set_dist(m, g_dist), 0);
    float *after = params_host(m);
    assert_memory_equal(before, after, m->params.total * sizeof(float));
    assert_int_equal(mb_dist_grad_reduce(g_dist, ctx, m->params.grad, m->params.total, 0.25), 0);
    free(before);
    free(after);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ranks") == 0 && i + 1 < argc) g_expect = atoi(argv[++i]);
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) g_device = argv[++i];
        else {
            fprintf(stderr, "usage: test_dist [--ranks N] [--device cpu|cuda]\n");
            return 2;
        }
    }
    if (!(g_dist = mb_dist_init(&argc, &argv))) {
        fprintf(stderr, "test_dist: %s\n", mb_error_last());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group),
        cmocka_unit_test(test_sum_bcast),
        cmocka_unit_test(test_train_equals_one_process),
        cmocka_unit_test(test_one_rank_noop),
        cmocka_unit_test(test_launch_env),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mb_dist_finalize(g_dist);
    return rc;
}
