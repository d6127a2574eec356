/* The fused CUDA scan against the CPU reference on fresh random inputs:
 * forward (y, final state) and every gradient, real and complex, one chunk
 * and many (the two-level scan), channel counts that leave warps partly
 * empty, N below, at and above 16. Outputs are poisoned (NaN) before every
 * GPU run so an unwritten element cannot pass. Exit 77 without a GPU. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/params.h"
#include "ops/ops.h"
#include "testutil.h"

static mb_ctx *cpu, *gpu;

typedef struct {
    const char *name;
    int B, L, D, N, cplx, opts, ldpad;
} shape;

/* per-element outputs: fp32 in a different order (chunk carries use
 * exp(A sum dt) for the product of the steps' decays); the sums over
 * channels (dB, dC) and over time (dA, dD, bias) add in another order with
 * atomics: their error grows with the number of terms, ~sqrt(B L) * 1e-7 */
#define TOL_ELEM 1e-5
#define TOL_SUM 1e-4

static float *up(const float *h, size_t n)
{
    float *d = mb_dev_alloc_floats(gpu, n, "test");
    assert_non_null(d);
    assert_int_equal(mb_dev_upload(gpu, d, h, n * 4), 0);
    return d;
}

static float *poisoned(size_t n)
{
    float *d = mb_dev_alloc_floats(gpu, n, "test");
    assert_non_null(d);
    assert_int_equal(cudaMemset(d, 0xFF, n * 4), cudaSuccess); /* NaN */
    return d;
}

static float *down(const float *d, size_t n)
{
    float *h = malloc(n * 4);
    assert_int_equal(mb_dev_download(gpu, h, d, n * 4), 0);
    return h;
}

/* bf16 precision (both contexts): y, du, ddelta, dz and the backward's y
 * are stored rounded. The two sides round fp32 values that differ in their
 * last bits (TOL_ELEM), so an element lands on the neighbouring bf16 value
 * only near a rounding boundary: rare, and off by 2^-8 of itself. A
 * missing rounding is caught by the bf16-value check (compare16); TOL_BF16
 * bounds the flips. */
static int g_bf16;
/* io_bf16: the GPU's activations are bf16 arrays; the CPU (fp32) gets the
 * same values as floats, and its outputs are rounded for the comparison */
static int g_io16;
#define TOL_BF16 1e-3

static void compare(const char *what, const shape *s, const float *got, const float *ref, size_t n,
                    double tol)
{
    double e = mb_test_rel_err(got, ref, n);
    printf("# %-26s %-9s %-4s %-20s rel err %.2e\n", s->name, s->cplx ? "complex" : "real",
           g_io16 ? "io16" : g_bf16 ? "bf16" : "fp32", what, e);
    assert_true(e < tol);
}

/* a stored output in bf16 precision: every value a bf16 value, and close
 * to the CPU's; in fp32, as compare */
static void compare16(const char *what, const shape *s, const float *got, const float *ref, size_t n)
{
    if (!g_bf16 && !g_io16) {
        compare(what, s, got, ref, n, TOL_ELEM);
        return;
    }
    float *r = malloc(n * 4);
    for (size_t i = 0; i < n; i++) r[i] = g_io16 ? mb_bf16_keep(ref[i]) : ref[i];
    size_t off = 0;
    for (size_t i = 0; i < n; i++) off += mb_bf16_keep(got[i]) != got[i] || mb_bf16_keep(r[i]) != r[i];
    if (off) printf("# %s: %zu values are not bf16 values\n", what, off);
    assert_true(off == 0);
    compare(what, s, got, r, n, TOL_BF16);
    free(r);
}

/* an activation's device array, float or (io_bf16) bf16: from floats,
 * poisoned (NaN), back as floats */
static void *up32(const float *h, size_t n) { return up(h, n); }
static void *poisoned32(size_t n) { return poisoned(n); }
static float *down32(const void *d, size_t n) { return down(d, n); }
static void *up16(const float *h, size_t n)
{
    uint16_t *t = malloc(n * 2);
    for (size_t i = 0; i < n; i++) t[i] = mb_bf16_round(h[i]);
    void *d = mb_dev_alloc_floats(gpu, (n + 1) / 2, "test");
    assert_non_null(d);
    assert_int_equal(mb_dev_upload(gpu, d, t, n * 2), 0);
    free(t);
    return d;
}
static void *poisoned16(size_t n)
{
    void *d = mb_dev_alloc_floats(gpu, (n + 1) / 2, "test");
    assert_non_null(d);
    assert_int_equal(cudaMemset(d, 0xFF, n * 2), cudaSuccess);
    return d;
}
static float *down16(const void *d, size_t n)
{
    uint16_t *t = malloc(n * 2);
    float *h = malloc(n * 4);
    assert_int_equal(mb_dev_download(gpu, t, d, n * 2), 0);
    for (size_t i = 0; i < n; i++) h[i] = mb_bf16_float(t[i]);
    free(t);
    return h;
}

/* A and A_imag (D, N), D and the delta bias (D), h0 and dhT (nh): the
 * parameters and states every shape draws after its activations */
static void fill_params(mb_rng *r, size_t D, size_t N, size_t nh, float *A, float *Ai, float *Dk, float *bias,
                        float *h0, float *dhT)
{
    mb_test_fill(r, A, D * N, -3.f, -0.2f);
    mb_test_fill(r, Ai, D * N, -6.f, 6.f);
    mb_test_fill(r, Dk, D, -1, 1);
    mb_test_fill(r, bias, D, -3, 0.5f);
    mb_test_fill(r, h0, nh, -1, 1);
    mb_test_fill(r, dhT, nh, -1, 1);
}

static void run_shape(const shape *s)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() ^ (uint64_t)(s->B * 7919 + s->L * 31 + s->D + s->N * 3 + s->cplx));
    const size_t M = (size_t)s->B * s->L, D = s->D, N = s->N;
    const int sf = s->cplx ? 2 * s->N : s->N;
    const int ldbc = 2 * sf + s->ldpad; /* B and C inside one wider row */
    const size_t nh = (size_t)s->B * D * sf;
    float *u = malloc(M * D * 4), *dl = malloc(M * D * 4), *z = malloc(M * D * 4), *dy = malloc(M * D * 4);
    float *bc = malloc(M * ldbc * 4), *A = malloc(D * N * 4), *Ai = malloc(D * N * 4);
    float *Dk = malloc(D * 4), *bias = malloc(D * 4), *h0 = malloc(nh * 4), *dhT = malloc(nh * 4);
    mb_test_fill(&r, u, M * D, -1, 1);
    if (s->opts) mb_test_fill(&r, dl, M * D, -4.f, 0.5f);
    else mb_test_fill(&r, dl, M * D, 0.001f, 0.3f);
    mb_test_fill(&r, z, M * D, -2, 2);
    mb_test_fill(&r, dy, M * D, -1, 1);
    mb_test_fill(&r, bc, M * ldbc, -1, 1);
    fill_params(&r, D, N, nh, A, Ai, Dk, bias, h0, dhT);
    /* io_bf16: what bf16 arrays can hold; bf16 precision: what the mixer
     * gives the CPU's scan (test_bf16_reads: the GPU's rounds them itself).
     * Both sides compute with these values. */
    if (g_io16 || g_bf16) {
        float *act[] = {u, dl, z, dy};
        for (int k = 0; k < 4; k++)
            for (size_t i = 0; i < M * D; i++) act[k][i] = mb_bf16_keep(act[k][i]);
        for (size_t i = 0; i < M * ldbc; i++) bc[i] = mb_bf16_keep(bc[i]);
    }
    mb_scan_params p = {.batch = s->B, .seqlen = s->L, .dim = s->D, .dstate = s->N, .is_complex = s->cplx,
                        .u = u, .ld_u = D, .delta = dl, .ld_delta = D, .A = A, .A_imag = s->cplx ? Ai : NULL,
                        .Bm = bc, .ld_B = ldbc, .Cm = bc + sf, .ld_C = ldbc,
                        .Dskip = s->opts ? Dk : NULL, .z = s->opts ? z : NULL, .ld_z = D,
                        .delta_bias = s->opts ? bias : NULL, .delta_softplus = s->opts,
                        .h0 = s->opts ? h0 : NULL};
    /* CPU reference */
    float *y = malloc(M * D * 4), *hT = malloc(nh * 4);
    float *du = malloc(M * D * 4), *ddl = malloc(M * D * 4), *dz = malloc(M * D * 4);
    float *dbc = calloc(M * ldbc, 4), *dA = calloc(D * N, 4), *dAi = calloc(D * N, 4);
    float *dD = calloc(D, 4), *db = calloc(D, 4), *dh0 = malloc(nh * 4);
    mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = ddl, .ld_ddelta = D, .dA = dA,
                       .dA_imag = s->cplx ? dAi : NULL, .dB = dbc, .ld_dB = ldbc, .dC = dbc + sf,
                       .ld_dC = ldbc, .dD = dD, .dz = dz, .ld_dz = D, .ddelta_bias = db,
                       .dh0 = s->opts ? dh0 : NULL};
    mb_arena ws;
    assert_int_equal(mb_arena_init(&ws, cpu, mb_scan_workspace(cpu, &p)), 0);
    mb_scan_fwd(cpu, &p, y, hT, &ws);
    mb_scan_bwd(cpu, &p, dy, s->opts ? dhT : NULL, &g, &ws);
    mb_arena_free(&ws);

    /* GPU */
    mb_scan_params q = p;
    /* the activations: float arrays, or bf16 ones (io_bf16) */
    void *(*act_up)(const float *, size_t) = g_io16 ? up16 : up32;
    void *(*act_new)(size_t) = g_io16 ? poisoned16 : poisoned32;
    q.io_bf16 = g_io16;
    q.u = act_up(u, M * D), q.delta = act_up(dl, M * D), q.A = up(A, D * N), q.A_imag = s->cplx ? up(Ai, D * N) : NULL;
    void *bc_d = act_up(bc, M * ldbc);
    q.Bm = bc_d, q.Cm = (const char *)bc_d + (size_t)sf * (g_io16 ? 2 : 4);
    q.Dskip = s->opts ? up(Dk, D) : NULL, q.z = s->opts ? act_up(z, M * D) : NULL;
    q.delta_bias = s->opts ? up(bias, D) : NULL, q.h0 = s->opts ? up(h0, nh) : NULL;
    void *y_d = act_new(M * D), *dy_d = act_up(dy, M * D);
    float *hT_d = poisoned(nh), *dhT_d = up(dhT, nh);
    mb_scan_grads gg = {.du = act_new(M * D), .ld_du = D, .ddelta = act_new(M * D), .ld_ddelta = D,
                        .dA = up(calloc(D * N, 4), D * N), .dA_imag = s->cplx ? up(calloc(D * N, 4), D * N) : NULL,
                        .dB = poisoned(M * ldbc), .ld_dB = ldbc, .dD = up(calloc(D, 4), D),
                        .dz = act_new(M * D), .ld_dz = D, .ddelta_bias = up(calloc(D, 4), D),
                        .dh0 = s->opts ? poisoned(nh) : NULL, .y = act_new(M * D)};
    gg.dC = gg.dB + sf, gg.ld_dC = ldbc;
    mb_arena wsg;
    assert_int_equal(mb_arena_init(&wsg, gpu, mb_scan_workspace(gpu, &q)), 0);
    mb_scan_fwd(gpu, &q, y_d, hT_d, &wsg);
    mb_scan_bwd(gpu, &q, dy_d, s->opts ? dhT_d : NULL, &gg, &wsg);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    if (mb_ctx_check(gpu)) fail_msg("%s", mb_error_last());

    float *t;
    float *(*act_down)(const void *, size_t) = g_io16 ? down16 : down32;
    compare16("y", s, t = act_down(y_d, M * D), y, M * D), free(t);
    /* the backward's y (a recompute's ys): its states come from the
     * backward's own chunks and carries */
    compare16("y from the backward", s, t = act_down(gg.y, M * D), y, M * D), free(t);
    compare("final state", s, t = down(hT_d, nh), hT, nh, TOL_ELEM), free(t);
    compare16("du", s, t = act_down(gg.du, M * D), du, M * D), free(t);
    compare16("ddelta", s, t = act_down(gg.ddelta, M * D), ddl, M * D), free(t);
    /* dB, dC live in the first 2 sf columns of each row; the pad columns
     * were poisoned and must stay untouched (NaN) */
    float *gbc = down(gg.dB, M * ldbc);
    for (size_t i = 0; i < M; i++)
        for (int k = 2 * sf; k < ldbc; k++) {
            assert_true(isnan(gbc[i * ldbc + k]));
            gbc[i * ldbc + k] = dbc[i * ldbc + k] = 0.f;
        }
    compare("dB, dC", s, gbc, dbc, M * ldbc, TOL_SUM), free(gbc);
    compare("dA", s, t = down(gg.dA, D * N), dA, D * N, TOL_SUM), free(t);
    if (s->cplx) compare("dA_imag", s, t = down(gg.dA_imag, D * N), dAi, D * N, TOL_SUM), free(t);
    if (s->opts) {
        compare16("dz", s, t = act_down(gg.dz, M * D), dz, M * D), free(t);
        compare("dD", s, t = down(gg.dD, D), dD, D, TOL_SUM), free(t);
        compare("ddelta_bias", s, t = down(gg.ddelta_bias, D), db, D, TOL_SUM), free(t);
        compare("dh0", s, t = down(gg.dh0, nh), dh0, nh, TOL_ELEM), free(t);
    }
    mb_arena_free(&wsg);
    /* device buffers of the test are left to process exit */
    free(u), free(dl), free(z), free(dy), free(bc), free(A), free(Ai), free(Dk), free(bias), free(h0), free(dhT);
    free(y), free(hT), free(du), free(ddl), free(dz), free(dbc), free(dA), free(dAi), free(dD), free(db), free(dh0);
}

/* every shape with real A, then complex */
static void run_shapes(const shape *shapes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 2; c++) {
            shape s = shapes[i];
            s.cplx = c;
            run_shape(&s);
        }
}

static void test_shapes(void **st)
{
    (void)st;
    const int small = getenv("MB_GPU_TEST_SMALL") != NULL;
    const shape shapes[] = {
        /* one chunk: B * D fills the GPU on its own */
        {"one chunk", 4, 300, 1100, 16, 0, 1, 3},
        /* many chunks: small B * D, long L, L not a multiple of the chunk */
        {"chunked", 1, small ? 3000 : 20000, 70, 16, 0, 1, 0},
        {"chunked plain", 2, small ? 2000 : 9000, 33, 16, 0, 0, 1},
        {"N 5, partial warp", 3, 700, 45, 5, 0, 1, 2},
        {"N 40", 1, small ? 600 : 2500, 40, 40, 0, 1, 0},
        /* one step (L = 1: scan_fwd_one, generation's step at many rows):
         * from h0, without it, N past one lane's state, a partial block */
        {"one step", 64, 1, 300, 16, 0, 1, 3},
        {"one step plain", 7, 1, 33, 16, 0, 0, 1},
        {"one step N 5", 3, 1, 45, 5, 0, 1, 2},
        {"one step N 40", 5, 1, 70, 40, 0, 1, 0},
    };
    run_shapes(shapes, sizeof shapes / sizeof shapes[0]);
}

/* bf16 precision: the scan stores its activation outputs rounded, the
 * states and the sums (dA, dD, dB, dC, the bias) stay fp32 */
static void test_shapes_bf16(void **st)
{
    (void)st;
    const int small = getenv("MB_GPU_TEST_SMALL") != NULL;
    const shape shapes[] = {
        {"one chunk", 2, 300, 260, 16, 0, 1, 0},
        {"chunked", 1, small ? 3000 : 20000, 70, 16, 0, 1, 0},
        {"chunked plain", 2, small ? 2000 : 9000, 33, 16, 0, 0, 1},
        {"one step", 9, 1, 260, 16, 0, 1, 0},
    };
    assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_BF16), 0);
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_BF16), 0);
    g_bf16 = 1;
    run_shapes(shapes, sizeof shapes / sizeof shapes[0]);
    g_bf16 = 0;
    assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_FP32), 0);
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_FP32), 0);
}

/* bf16 precision on the GPU reads delta, z and dy as the nearest bf16
 * values (scan_f32r), so the mixer leaves them unrounded there: given them
 * unrounded (u, B and C rounded, as the conv and x_proj's store leave
 * them), the scan must give bit for bit what it gives when they arrive
 * rounded. Every per-element output is
 * compared exactly; the sums over channels and time (atomics, in no fixed
 * order) to TOL_SUM. */
enum { RD_Y, RD_YB, RD_HT, RD_DU, RD_DDL, RD_DZ, RD_DH0, RD_EXACT, RD_DBC = RD_EXACT, RD_DA, RD_DAI, RD_DD, RD_DB, RD_N };
static const char *rd_name[RD_N] = {"y", "y from the backward", "final state", "du", "ddelta", "dz", "dh0",
                                    "dB, dC", "dA", "dA_imag", "dD", "ddelta_bias"};

/* one forward and backward on the GPU (bf16 precision) from host arrays:
 * act = u, delta, z, dy (M x D each) and bc (M x ldbc); outputs downloaded */
static void reads_run(const shape *s, float *const act[5], const float *A, const float *Ai, const float *Dk,
                      const float *bias, const float *h0, const float *dhT, float *out[RD_N], size_t len[RD_N])
{
    const size_t M = (size_t)s->B * s->L, D = s->D, N = s->N;
    const int sf = s->cplx ? 2 * s->N : s->N, ldbc = 2 * sf + s->ldpad;
    const size_t nh = (size_t)s->B * D * sf;
    float *bc_d = up(act[4], M * ldbc);
    mb_scan_params q = {.batch = s->B, .seqlen = s->L, .dim = s->D, .dstate = s->N, .is_complex = s->cplx,
                        .u = up(act[0], M * D), .ld_u = D, .delta = up(act[1], M * D), .ld_delta = D,
                        .A = up(A, D * N), .A_imag = s->cplx ? up(Ai, D * N) : NULL,
                        .Bm = bc_d, .ld_B = ldbc, .Cm = bc_d + sf, .ld_C = ldbc, .Dskip = up(Dk, D),
                        .z = up(act[2], M * D), .ld_z = D, .delta_bias = up(bias, D), .delta_softplus = 1,
                        .h0 = up(h0, nh)};
    float *y_d = poisoned(M * D), *hT_d = poisoned(nh), *dy_d = up(act[3], M * D), *dhT_d = up(dhT, nh);
    float *zero = calloc(D * N > M * ldbc ? D * N : M * ldbc, 4);
    mb_scan_grads g = {.du = poisoned(M * D), .ld_du = D, .ddelta = poisoned(M * D), .ld_ddelta = D,
                       .dA = up(zero, D * N), .dA_imag = s->cplx ? up(zero, D * N) : NULL,
                       .dB = poisoned(M * ldbc), .ld_dB = ldbc, .dD = up(zero, D), .dz = poisoned(M * D), .ld_dz = D,
                       .ddelta_bias = up(zero, D), .dh0 = poisoned(nh), .y = poisoned(M * D)};
    g.dC = g.dB + sf, g.ld_dC = ldbc;
    mb_arena ws;
    assert_int_equal(mb_arena_init(&ws, gpu, mb_scan_workspace(gpu, &q)), 0);
    mb_scan_fwd(gpu, &q, y_d, hT_d, &ws);
    mb_scan_bwd(gpu, &q, dy_d, dhT_d, &g, &ws);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
    if (mb_ctx_check(gpu)) fail_msg("%s", mb_error_last());
    const float *src[RD_N] = {y_d, g.y, hT_d, g.du, g.ddelta, g.dz, g.dh0, g.dB, g.dA, g.dA_imag, g.dD,
                              g.ddelta_bias};
    const size_t n[RD_N] = {M * D, M * D, nh, M * D, M * D, M * D, nh, M * ldbc, D * N, s->cplx ? D * N : 0, D, D};
    for (int k = 0; k < RD_N; k++) {
        len[k] = n[k];
        out[k] = n[k] ? down(src[k], n[k]) : NULL;
    }
    mb_arena_free(&ws);
    free(zero);
}

static void test_bf16_reads(void **st)
{
    (void)st;
    const shape shapes[] = {
        {"one chunk", 2, 300, 260, 16, 0, 1, 0},
        {"chunked", 1, 3000, 70, 16, 0, 1, 0},
        {"N 5", 3, 200, 45, 5, 0, 1, 2},
        {"one step", 9, 1, 260, 16, 0, 1, 0},
        {"one step N 40", 5, 1, 70, 40, 0, 1, 0},
    };
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_BF16), 0);
    g_bf16 = 1; /* compare()'s label */
    for (size_t i = 0; i < 2 * sizeof shapes / sizeof shapes[0]; i++) {
        shape s = shapes[i / 2];
        s.cplx = (int)(i % 2);
        mb_rng r;
        mb_rng_seed(&r, mb_test_seed() ^ (uint64_t)(i * 131 + 7));
        const size_t M = (size_t)s.B * s.L, D = s.D, N = s.N;
        const int sf = s.cplx ? 2 * s.N : s.N, ldbc = 2 * sf + s.ldpad;
        const size_t nh = (size_t)s.B * D * sf, na[5] = {M * D, M * D, M * D, M * D, M * ldbc};
        const float lo[5] = {-1, -4.f, -2, -1, -1}, hi[5] = {1, 0.5f, 2, 1, 1};
        float *raw[5], *rnd[5];
        size_t changed = 0;
        for (int k = 0; k < 5; k++) {
            raw[k] = malloc(na[k] * 4), rnd[k] = malloc(na[k] * 4);
            mb_test_fill(&r, raw[k], na[k], lo[k], hi[k]);
            for (size_t j = 0; j < na[k]; j++) {
                if (k == 0 || k == 4) raw[k][j] = mb_bf16_keep(raw[k][j]); /* u, B, C: stored rounded */
                changed += (rnd[k][j] = mb_bf16_keep(raw[k][j])) != raw[k][j];
            }
        }
        float *A = malloc(D * N * 4), *Ai = malloc(D * N * 4), *Dk = malloc(D * 4), *bias = malloc(D * 4);
        float *h0 = malloc(nh * 4), *dhT = malloc(nh * 4);
        fill_params(&r, D, N, nh, A, Ai, Dk, bias, h0, dhT);
        float *o_raw[RD_N], *o_rnd[RD_N];
        size_t len[RD_N];
        reads_run(&s, raw, A, Ai, Dk, bias, h0, dhT, o_raw, len);
        reads_run(&s, rnd, A, Ai, Dk, bias, h0, dhT, o_rnd, len);
        /* the inputs must differ, or this proves nothing */
        assert_true(changed > 0);
        for (int k = 0; k < RD_N; k++) {
            if (!len[k]) continue;
            if (k == RD_DBC) /* the pad columns: untouched by both */
                for (size_t j = 0; j < M; j++)
                    for (int c = 2 * sf; c < ldbc; c++) o_raw[k][j * ldbc + c] = o_rnd[k][j * ldbc + c] = 0.f;
            if (k < RD_EXACT) {
                size_t diff = 0;
                for (size_t j = 0; j < len[k]; j++) diff += memcmp(&o_raw[k][j], &o_rnd[k][j], 4) != 0;
                printf("# %-26s %-9s bf16 reads %-20s %zu of %zu differ\n", s.name, s.cplx ? "complex" : "real",
                       rd_name[k], diff, len[k]);
                assert_true(diff == 0);
            } else {
                compare(rd_name[k], &s, o_raw[k], o_rnd[k], len[k], TOL_SUM);
            }
            free(o_raw[k]), free(o_rnd[k]);
        }
        for (int k = 0; k < 5; k++) free(raw[k]), free(rnd[k]);
        free(A), free(Ai), free(Dk), free(bias), free(h0), free(dhT);
    }
    g_bf16 = 0;
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_FP32), 0);
}

/* bf16 activations (io_bf16): bf16 arrays in and out, fp32 states and
 * sums. The CPU runs in fp32 on the same values; its per-element outputs
 * are rounded to bf16 for the comparison. */
static void test_shapes_io16(void **st)
{
    (void)st;
    const int small = getenv("MB_GPU_TEST_SMALL") != NULL;
    const shape shapes[] = {
        {"one chunk", 2, 300, 260, 16, 0, 1, 0},
        {"chunked", 1, small ? 3000 : 20000, 70, 16, 0, 1, 0},
        {"chunked plain", 2, small ? 2000 : 9000, 33, 16, 0, 0, 1},
        {"N 5, partial warp", 3, 700, 45, 5, 0, 1, 2},
        {"one step", 9, 1, 260, 16, 0, 1, 0},
        {"one step N 5", 3, 1, 45, 5, 0, 1, 2},
    };
    g_io16 = 1;
    run_shapes(shapes, sizeof shapes / sizeof shapes[0]);
    g_io16 = 0;
    /* the CPU has no bf16 arrays: a clear refusal, not garbage */
    mb_scan_params p = {.batch = 1, .seqlen = 1, .dim = 1, .dstate = 1, .io_bf16 = 1};
    mb_arena ws = {0};
    float y = 0;
    mb_scan_fwd(cpu, &p, &y, NULL, &ws);
    printf("# cpu, io_bf16 -> %s\n", mb_error_last());
    assert_int_not_equal(mb_ctx_check(cpu), 0);
    assert_non_null(strstr(mb_error_last(), "bf16 activations (io_bf16) are the GPU's"));
}

int main(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("# no GPU: skipped\n");
        return 77;
    }
    cpu = mb_ctx_create("cpu");
    gpu = mb_ctx_create("cuda");
    if (!gpu) {
        printf("# cuda context: %s\n", mb_error_last());
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_shapes), cmocka_unit_test(test_shapes_bf16),
                                       cmocka_unit_test(test_bf16_reads), cmocka_unit_test(test_shapes_io16)};
    mb_test_filter_env();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mb_ctx_free(gpu);
    mb_ctx_free(cpu);
    return rc;
}
