/* Selective scan on the CPU: gradients by finite differences, every option
 * on; pieces with the state carried equal the whole; the recurrent step
 * equals the parallel forward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "testutil.h"

typedef struct {
    mb_ctx *ctx;
    mb_arena ws;
    int B, L, D, N, cplx, R, sf, nbc, ldbc;
    float *u, *delta, *A, *Ai, *xdbl, *Dsk, *z, *bias, *h0; /* inputs */
    float *y, *hT, *wy, *wh;                                /* outputs, loss weights */
    int use_opts;                                           /* D, z, bias, softplus, h0 */
} scan_case;

static mb_scan_params sc_params(const scan_case *s)
{
    mb_scan_params p = {
        .batch = s->B, .seqlen = s->L, .dim = s->D, .dstate = s->N, .is_complex = s->cplx,
        .u = s->u, .ld_u = s->D, .delta = s->delta, .ld_delta = s->D, .A = s->A,
        .A_imag = s->cplx ? s->Ai : NULL,
        /* B and C live inside a wider (dt | B | C) row, as in the mixer */
        .Bm = s->xdbl + s->R, .ld_B = s->ldbc, .Cm = s->xdbl + s->R + s->nbc, .ld_C = s->ldbc,
        .Dskip = s->use_opts ? s->Dsk : NULL,
        .z = s->use_opts ? s->z : NULL, .ld_z = s->D,
        .delta_bias = s->use_opts ? s->bias : NULL,
        .delta_softplus = s->use_opts,
        .h0 = s->use_opts ? s->h0 : NULL,
    };
    return p;
}

static double sc_loss(void *ud)
{
    scan_case *s = ud;
    mb_scan_params p = sc_params(s);
    mb_scan_fwd(s->ctx, &p, s->y, s->hT, &s->ws);
    size_t ny = (size_t)s->B * s->L * s->D, nh = (size_t)s->B * s->D * s->sf;
    return mb_test_dot(s->y, s->wy, ny) + mb_test_dot(s->hT, s->wh, nh);
}

static void sc_setup(scan_case *s, int cplx, int use_opts, int B, int L, int D, int N)
{
    memset(s, 0, sizeof *s);
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 17 * cplx + use_opts);
    s->ctx = mb_ctx_create("cpu");
    s->B = B, s->L = L, s->D = D, s->N = N, s->cplx = cplx, s->use_opts = use_opts;
    s->R = 3;
    s->sf = cplx ? 2 * N : N;
    s->nbc = s->sf;
    s->ldbc = s->R + 2 * s->nbc + 1; /* a spare column: strides are not widths */
    size_t M = (size_t)B * L;
    s->u = malloc(M * D * 4), s->delta = malloc(M * D * 4), s->z = malloc(M * D * 4);
    s->A = malloc((size_t)D * N * 4), s->Ai = malloc((size_t)D * N * 4);
    s->xdbl = malloc(M * s->ldbc * 4);
    s->Dsk = malloc(D * 4), s->bias = malloc(D * 4);
    s->h0 = malloc((size_t)B * D * s->sf * 4), s->hT = malloc((size_t)B * D * s->sf * 4);
    s->wh = malloc((size_t)B * D * s->sf * 4);
    s->y = malloc(M * D * 4), s->wy = malloc(M * D * 4);
    mb_test_fill(&r, s->u, M * D, -1, 1);
    /* with softplus the raw delta is a pre-activation; without, a step size */
    if (use_opts) mb_test_fill(&r, s->delta, M * D, -3.f, 0.5f);
    else mb_test_fill(&r, s->delta, M * D, 0.01f, 0.5f);
    mb_test_fill(&r, s->z, M * D, -2, 2);
    mb_test_fill(&r, s->A, (size_t)D * N, -2.f, -0.3f);
    mb_test_fill(&r, s->Ai, (size_t)D * N, -3.f, 3.f);
    mb_test_fill(&r, s->xdbl, M * s->ldbc, -1, 1);
    mb_test_fill(&r, s->Dsk, D, -1, 1);
    mb_test_fill(&r, s->bias, D, -1, 0.5f);
    mb_test_fill(&r, s->h0, (size_t)B * D * s->sf, -1, 1);
    mb_test_fill(&r, s->wy, M * D, -1, 1);
    mb_test_fill(&r, s->wh, (size_t)B * D * s->sf, -1, 1);
    mb_scan_params p = sc_params(s);
    assert_int_equal(mb_arena_init(&s->ws, s->ctx, mb_scan_workspace(s->ctx, &p)), 0);
}

static void sc_free(scan_case *s)
{
    free(s->u), free(s->delta), free(s->z), free(s->A), free(s->Ai), free(s->xdbl);
    free(s->Dsk), free(s->bias), free(s->h0), free(s->hT), free(s->wh), free(s->y), free(s->wy);
    mb_arena_free(&s->ws);
    mb_ctx_free(s->ctx);
}

/* N 3 takes every state one at a time; N 10 the lanes (eight states at a
 * time) and then two alone */
static void grad_check(int cplx, int use_opts, int N_state)
{
    scan_case s;
    sc_setup(&s, cplx, use_opts, 2, 70, 11, N_state); /* L crosses a backward chunk, D a block */
    size_t M = (size_t)s.B * s.L, D = s.D, N = s.N, nh = (size_t)s.B * D * s.sf;
    float *du = calloc(M * D, 4), *ddelta = calloc(M * D, 4), *dz = calloc(M * D, 4);
    float *dA = calloc(D * N, 4), *dAi = calloc(D * N, 4), *dD = calloc(D, 4), *dbias = calloc(D, 4);
    float *dxdbl = calloc(M * s.ldbc, 4), *dh0 = calloc(nh, 4);
    mb_scan_params p = sc_params(&s);
    mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = ddelta, .ld_ddelta = D, .dA = dA,
                       .dA_imag = cplx ? dAi : NULL, .dB = dxdbl + s.R, .ld_dB = s.ldbc,
                       .dC = dxdbl + s.R + s.nbc, .ld_dC = s.ldbc, .dD = dD, .dz = dz,
                       .ld_dz = D, .ddelta_bias = dbias, .dh0 = use_opts ? dh0 : NULL};
    mb_scan_bwd(s.ctx, &p, s.wy, s.wh, &g, &s.ws);
    assert_true(s.ws.used == 0);
    const double tol = 2e-3, eps = 1e-3;
    char what[64];
#define CHECK(name, x, gx, n)                                                           \
    do {                                                                                \
        snprintf(what, sizeof what, "%s %s%s%s", cplx ? "complex" : "real", name,       \
                 use_opts ? "" : " (plain)", N_state > 8 ? " (lanes)" : "");            \
        assert_true(mb_test_grad_check(what, sc_loss, &s, x, gx, n, 80, eps) < tol);   \
    } while (0)
    CHECK("du", s.u, du, M * D);
    CHECK("ddelta", s.delta, ddelta, M * D);
    CHECK("dA", s.A, dA, D * N);
    if (cplx) CHECK("dA_imag", s.Ai, dAi, D * N);
    /* B, C and the unused dt columns: dt and spare columns must get zero */
    for (size_t i = 0; i < M; i++) dxdbl[i * s.ldbc + s.ldbc - 1] = 0.f;
    CHECK("dB,dC", s.xdbl, dxdbl, M * s.ldbc);
    if (use_opts) {
        CHECK("dD", s.Dsk, dD, D);
        CHECK("dz", s.z, dz, M * D);
        CHECK("ddelta_bias", s.bias, dbias, D);
        CHECK("dh0", s.h0, dh0, nh);
    }
#undef CHECK
    /* the backward's y (what a recompute leaves to it) is the forward's,
     * bit for bit: the same states, the same expression */
    float *yb = calloc(M * D, 4);
    g.y = yb;
    mb_scan_bwd(s.ctx, &p, s.wy, s.wh, &g, &s.ws);
    mb_scan_fwd(s.ctx, &p, s.y, s.hT, &s.ws);
    printf("# %s%s backward's y %s the forward's\n", cplx ? "complex" : "real", use_opts ? "" : " (plain)",
           memcmp(yb, s.y, M * D * 4) ? "DIFFERS from" : "equals");
    assert_memory_equal(yb, s.y, M * D * 4);
    free(yb);
    free(du), free(ddelta), free(dz), free(dA), free(dAi), free(dD), free(dbias), free(dxdbl), free(dh0);
    sc_free(&s);
}

/* A scratch arena too small for the backward is a sizing bug, and it must
 * not pass for success: the context is marked failed with the arena's
 * reason, instead of returning with the gradients unwritten. */
static void test_backward_small_arena(void **st)
{
    (void)st;
    scan_case s;
    sc_setup(&s, 0, 1, 2, 70, 11, 3);
    mb_arena_free(&s.ws);
    assert_int_equal(mb_arena_init(&s.ws, s.ctx, 64), 0);
    size_t M = (size_t)s.B * s.L, D = s.D;
    float *du = calloc(M * D, 4), *ddelta = calloc(M * D, 4), *dz = calloc(M * D, 4), *dA = calloc(D * s.N, 4);
    float *dD = calloc(D, 4), *dbias = calloc(D, 4), *dxdbl = calloc(M * s.ldbc, 4);
    mb_scan_params p = sc_params(&s);
    mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = ddelta, .ld_ddelta = D, .dA = dA, .dB = dxdbl + s.R,
                       .ld_dB = s.ldbc, .dC = dxdbl + s.R + s.nbc, .ld_dC = s.ldbc, .dD = dD, .dz = dz,
                       .ld_dz = D, .ddelta_bias = dbias};
    assert_int_equal(mb_ctx_check(s.ctx), 0);
    mb_scan_bwd(s.ctx, &p, s.wy, NULL, &g, &s.ws);
    assert_int_equal(mb_ctx_check(s.ctx), -1);
    printf("# %s\n", mb_error_last());
    assert_non_null(strstr(mb_error_last(), "arena"));
    assert_non_null(strstr(mb_error_last(), "scan backward"));
    assert_true(s.ws.used == 0); /* nothing left taken */
    free(du), free(ddelta), free(dz), free(dA), free(dD), free(dbias), free(dxdbl);
    sc_free(&s);
}

/* The backward is reproducible: the same inputs, the same threads, the
 * same bits (per-thread partial sums in a fixed order). Many blocks of
 * channels and several threads, so a schedule that hands blocks out by
 * timing would show. */
static void test_backward_reproducible(void **st)
{
    (void)st;
    scan_case s;
    sc_setup(&s, 1, 1, 2, 300, 64, 4);
    mb_ctx_set_threads(s.ctx, 4);
    mb_arena_free(&s.ws);
    mb_scan_params p = sc_params(&s);
    assert_int_equal(mb_arena_init(&s.ws, s.ctx, mb_scan_workspace(s.ctx, &p)), 0);
    const size_t M = (size_t)s.B * s.L, D = s.D;
    float *out[2];
    for (int r = 0; r < 2; r++) {
        float *du = calloc(M * D, 4), *ddelta = calloc(M * D, 4), *dz = calloc(M * D, 4);
        float *dA = calloc(D * s.N, 4), *dAi = calloc(D * s.N, 4), *dD = calloc(D, 4), *dbias = calloc(D, 4);
        out[r] = calloc(M * s.ldbc, 4);
        mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = ddelta, .ld_ddelta = D, .dA = dA, .dA_imag = dAi,
                           .dB = out[r] + s.R, .ld_dB = s.ldbc, .dC = out[r] + s.R + s.nbc, .ld_dC = s.ldbc,
                           .dD = dD, .dz = dz, .ld_dz = D, .ddelta_bias = dbias};
        for (int k = 0; k < 20; k++) { /* repeated: a timing-dependent order needs a few tries */
            memset(out[r], 0, M * s.ldbc * 4);
            mb_scan_bwd(s.ctx, &p, s.wy, NULL, &g, &s.ws);
            if (r == 1) assert_memory_equal(out[0], out[1], M * s.ldbc * 4);
        }
        free(du), free(ddelta), free(dz), free(dA), free(dAi), free(dD), free(dbias);
    }
    free(out[0]), free(out[1]);
    sc_free(&s);
}

/* The backward keeps every step's decays from its first pass when they fit
 * (mb_scan_cpu_keep_bytes) and otherwise computes them per chunk in the
 * recompute: every output the same bits either way, real and complex, the
 * lanes and the rest (N 10), several chunks. */
static void keep_decays(int cplx)
{
    scan_case s;
    sc_setup(&s, cplx, 1, 2, 150, 11, 10);
    const size_t M = (size_t)s.B * s.L, D = s.D, N = s.N, nh = (size_t)s.B * D * s.sf;
    mb_scan_params p = sc_params(&s);
    const size_t ws_keep = mb_scan_workspace(s.ctx, &p);
    const size_t nout = 3 * M * D + 2 * D * N + 2 * D + M * s.ldbc + nh + M * D;
    size_t keep_bytes = 0;
    float *out[2];
    for (int r = 0; r < 2; r++) {
        if (r == 1) {
            keep_bytes = mb_scan_cpu_keep_bytes(1); /* nothing fits: per chunk */
            mb_arena_free(&s.ws);
            assert_true(mb_scan_workspace(s.ctx, &p) < ws_keep);
            assert_int_equal(mb_arena_init(&s.ws, s.ctx, mb_scan_workspace(s.ctx, &p)), 0);
        }
        float *o = out[r] = calloc(nout, 4);
        float *du = o, *ddelta = du + M * D, *dz = ddelta + M * D, *dA = dz + M * D, *dAi = dA + D * N;
        float *dD = dAi + D * N, *dbias = dD + D, *dxdbl = dbias + D, *dh0 = dxdbl + M * s.ldbc, *y = dh0 + nh;
        mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = ddelta, .ld_ddelta = D, .dA = dA,
                           .dA_imag = cplx ? dAi : NULL, .dB = dxdbl + s.R, .ld_dB = s.ldbc,
                           .dC = dxdbl + s.R + s.nbc, .ld_dC = s.ldbc, .dD = dD, .dz = dz, .ld_dz = D,
                           .ddelta_bias = dbias, .dh0 = dh0, .y = y};
        mb_scan_bwd(s.ctx, &p, s.wy, s.wh, &g, &s.ws);
        assert_int_equal(mb_ctx_check(s.ctx), 0);
    }
    mb_scan_cpu_keep_bytes(keep_bytes);
    printf("# %s: decays kept %s decays per chunk\n", cplx ? "complex" : "real",
           memcmp(out[0], out[1], nout * 4) ? "DIFFER from" : "equal");
    assert_memory_equal(out[0], out[1], nout * 4);
    free(out[0]), free(out[1]);
    sc_free(&s);
}
static void test_keep_decays_real(void **st) { (void)st; keep_decays(0); }
static void test_keep_decays_complex(void **st) { (void)st; keep_decays(1); }

/* The forward takes whole blocks of eight channels in lanes when d_state
 * is a multiple of 8 (test_ops checks its mb_f8_fold8x against
 * mb_f8_fold), the backward's recompute one channel at a time: y is the
 * same bits from both, for 16 states (two groups) and 8, real and complex,
 * with every option and without, over two whole blocks and one channel
 * alone. */
static void forward_blocks(int cplx, int use_opts, int N)
{
    scan_case s;
    sc_setup(&s, cplx, use_opts, 2, 70, 17, N);
    const size_t M = (size_t)s.B * s.L, D = s.D;
    float *du = calloc(M * D, 4), *ddelta = calloc(M * D, 4), *dz = calloc(M * D, 4), *dA = calloc(D * N, 4);
    float *dAi = calloc(D * N, 4), *dD = calloc(D, 4), *dbias = calloc(D, 4), *dxdbl = calloc(M * s.ldbc, 4);
    float *yb = calloc(M * D, 4);
    mb_scan_params p = sc_params(&s);
    mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = ddelta, .ld_ddelta = D, .dA = dA,
                       .dA_imag = cplx ? dAi : NULL, .dB = dxdbl + s.R, .ld_dB = s.ldbc,
                       .dC = dxdbl + s.R + s.nbc, .ld_dC = s.ldbc, .dD = dD, .dz = dz, .ld_dz = D,
                       .ddelta_bias = dbias, .y = yb};
    mb_scan_fwd(s.ctx, &p, s.y, s.hT, &s.ws);
    mb_scan_bwd(s.ctx, &p, s.wy, NULL, &g, &s.ws);
    assert_int_equal(mb_ctx_check(s.ctx), 0);
    printf("# %s N %d%s: the forward's y (blocks folded at once) %s the backward's\n", cplx ? "complex" : "real",
           N, use_opts ? "" : " (plain)", memcmp(yb, s.y, M * D * 4) ? "DIFFERS from" : "equals");
    assert_memory_equal(yb, s.y, M * D * 4);
    free(du), free(ddelta), free(dz), free(dA), free(dAi), free(dD), free(dbias), free(dxdbl), free(yb);
    sc_free(&s);
}
static void test_forward_blocks(void **st)
{
    (void)st;
    for (int cplx = 0; cplx < 2; cplx++)
        for (int opts = 0; opts < 2; opts++) {
            forward_blocks(cplx, opts, 16);
            forward_blocks(cplx, opts, 8);
        }
}

static void test_grad_real(void **st) { (void)st; grad_check(0, 1, 3); }
static void test_grad_complex(void **st) { (void)st; grad_check(1, 1, 3); }
static void test_grad_real_plain(void **st) { (void)st; grad_check(0, 0, 3); }
static void test_grad_complex_plain(void **st) { (void)st; grad_check(1, 0, 3); }
static void test_grad_real_lanes(void **st) { (void)st; grad_check(0, 1, 10); }
static void test_grad_complex_lanes(void **st) { (void)st; grad_check(1, 1, 10); }

/* view of rows [t0, t0+len) of every (B, L, *) input as a (B, len) problem:
 * copies, since rows of different batches are L apart */
static void sub_rows(const float *src, float *dst, int B, int L, int t0, int len, int w)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * len * w, src + ((size_t)b * L + t0) * w, (size_t)len * w * 4);
}

static void pieces(int cplx)
{
    scan_case s;
    sc_setup(&s, cplx, 1, 3, 150, 13, 4);
    const int B = s.B, L = s.L, D = s.D, sf = s.sf, cut = 61;
    size_t nh = (size_t)B * D * sf;
    /* whole */
    mb_scan_params p = sc_params(&s);
    float *y_whole = malloc((size_t)B * L * D * 4), *h_whole = malloc(nh * 4);
    mb_scan_fwd(s.ctx, &p, y_whole, h_whole, &s.ws);
    /* two pieces, state carried */
    float *y_piece = malloc((size_t)B * L * D * 4), *h = malloc(nh * 4);
    float *tmp_y = malloc((size_t)B * L * D * 4);
    float *pu = malloc((size_t)B * L * D * 4), *pd = malloc((size_t)B * L * D * 4);
    float *pz = malloc((size_t)B * L * D * 4), *px = malloc((size_t)B * L * s.ldbc * 4);
    memcpy(h, s.h0, nh * 4);
    int t0 = 0;
    int lens[2] = {cut, L - cut};
    for (int k = 0; k < 2; k++) {
        int len = lens[k];
        sub_rows(s.u, pu, B, L, t0, len, D);
        sub_rows(s.delta, pd, B, L, t0, len, D);
        sub_rows(s.z, pz, B, L, t0, len, D);
        sub_rows(s.xdbl, px, B, L, t0, len, s.ldbc);
        mb_scan_params q = p;
        q.seqlen = len, q.u = pu, q.delta = pd, q.z = pz, q.Bm = px + s.R, q.Cm = px + s.R + s.nbc;
        q.h0 = h;
        mb_scan_fwd(s.ctx, &q, tmp_y, h, &s.ws); /* hT aliases h0 */
        for (int b = 0; b < B; b++)
            memcpy(y_piece + ((size_t)b * L + t0) * D, tmp_y + (size_t)b * len * D, (size_t)len * D * 4);
        t0 += len;
    }
    double ey = mb_test_rel_err(y_piece, y_whole, (size_t)B * L * D), eh = mb_test_rel_err(h, h_whole, nh);
    printf("# %s two pieces vs whole: y %.2e, final state %.2e\n", cplx ? "complex" : "real", ey, eh);
    assert_true(ey == 0.0 && eh == 0.0); /* same arithmetic in the same order */
    /* recurrent steps, one token at a time */
    memcpy(h, s.h0, nh * 4);
    for (int t = 0; t < L; t++) {
        sub_rows(s.u, pu, B, L, t, 1, D);
        sub_rows(s.delta, pd, B, L, t, 1, D);
        sub_rows(s.z, pz, B, L, t, 1, D);
        sub_rows(s.xdbl, px, B, L, t, 1, s.ldbc);
        mb_scan_params q = p;
        q.seqlen = 1, q.u = pu, q.delta = pd, q.z = pz, q.Bm = px + s.R, q.Cm = px + s.R + s.nbc;
        q.h0 = h;
        mb_scan_fwd(s.ctx, &q, tmp_y, h, &s.ws);
        for (int b = 0; b < B; b++) memcpy(y_piece + ((size_t)b * L + t) * D, tmp_y + (size_t)b * D, D * 4);
    }
    ey = mb_test_rel_err(y_piece, y_whole, (size_t)B * L * D), eh = mb_test_rel_err(h, h_whole, nh);
    printf("# %s step by step vs whole: y %.2e, final state %.2e\n", cplx ? "complex" : "real", ey, eh);
    assert_true(ey == 0.0 && eh == 0.0);
    free(y_whole), free(h_whole), free(y_piece), free(h), free(tmp_y), free(pu), free(pd), free(pz), free(px);
    sc_free(&s);
}

/* Backward in two pieces: the second piece's dh0 is the first piece's dhT,
 * and the gradients of the pieces are the whole's. */
static void backward_pieces(int cplx)
{
    scan_case s;
    sc_setup(&s, cplx, 1, 2, 130, 9, 3);
    const int B = s.B, L = s.L, D = s.D, sf = s.sf, cut = 77;
    const size_t nh = (size_t)B * D * sf, M = (size_t)B * L;
    mb_scan_params p = sc_params(&s);
    float *du = malloc(M * D * 4), *dd = malloc(M * D * 4), *dz = malloc(M * D * 4);
    float *dx = calloc(M * s.ldbc, 4), *dA = calloc((size_t)D * s.N, 4), *dAi = calloc((size_t)D * s.N, 4);
    float *dD = calloc(D, 4), *db = calloc(D, 4), *dh0 = malloc(nh * 4);
    mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = dd, .ld_ddelta = D, .dA = dA,
                       .dA_imag = cplx ? dAi : NULL, .dB = dx + s.R, .ld_dB = s.ldbc,
                       .dC = dx + s.R + s.nbc, .ld_dC = s.ldbc, .dD = dD, .dz = dz, .ld_dz = D,
                       .ddelta_bias = db, .dh0 = dh0};
    mb_scan_bwd(s.ctx, &p, s.wy, s.wh, &g, &s.ws);
    /* pieces: forward of the first piece gives the second's h0 */
    float *pu[2], *pd[2], *pz[2], *px[2], *pw[2], *h_mid = malloc(nh * 4), *ytmp = malloc(M * D * 4);
    int t0s[2] = {0, cut}, lens[2] = {cut, L - cut};
    mb_scan_params q[2];
    for (int k = 0; k < 2; k++) {
        int len = lens[k];
        pu[k] = malloc((size_t)B * len * D * 4), pd[k] = malloc((size_t)B * len * D * 4);
        pz[k] = malloc((size_t)B * len * D * 4), px[k] = malloc((size_t)B * len * s.ldbc * 4);
        pw[k] = malloc((size_t)B * len * D * 4);
        sub_rows(s.u, pu[k], B, L, t0s[k], len, D);
        sub_rows(s.delta, pd[k], B, L, t0s[k], len, D);
        sub_rows(s.z, pz[k], B, L, t0s[k], len, D);
        sub_rows(s.xdbl, px[k], B, L, t0s[k], len, s.ldbc);
        sub_rows(s.wy, pw[k], B, L, t0s[k], len, D);
        q[k] = p;
        q[k].seqlen = len, q[k].u = pu[k], q[k].delta = pd[k], q[k].z = pz[k];
        q[k].Bm = px[k] + s.R, q[k].Cm = px[k] + s.R + s.nbc;
    }
    q[1].h0 = h_mid;
    mb_scan_fwd(s.ctx, &q[0], ytmp, h_mid, &s.ws);
    float *gd[2][3], *gx[2], *gdh[2];
    float *dA2 = calloc((size_t)D * s.N, 4), *dAi2 = calloc((size_t)D * s.N, 4), *dD2 = calloc(D, 4), *db2 = calloc(D, 4);
    for (int k = 1; k >= 0; k--) {
        int len = lens[k];
        for (int j = 0; j < 3; j++) gd[k][j] = malloc((size_t)B * len * D * 4);
        gx[k] = calloc((size_t)B * len * s.ldbc, 4);
        gdh[k] = malloc(nh * 4);
        mb_scan_grads gk = {.du = gd[k][0], .ld_du = D, .ddelta = gd[k][1], .ld_ddelta = D, .dA = dA2,
                            .dA_imag = cplx ? dAi2 : NULL, .dB = gx[k] + s.R, .ld_dB = s.ldbc,
                            .dC = gx[k] + s.R + s.nbc, .ld_dC = s.ldbc, .dD = dD2, .dz = gd[k][2],
                            .ld_dz = D, .ddelta_bias = db2, .dh0 = gdh[k]};
        /* the second piece gets the whole's dhT; the first gets the second's dh0 */
        mb_scan_bwd(s.ctx, &q[k], pw[k], k == 1 ? s.wh : gdh[1], &gk, &s.ws);
    }
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        float *whole = malloc((size_t)B * lens[k] * D * 4);
        float *srcs[3] = {du, dd, dz};
        for (int j = 0; j < 3; j++) {
            sub_rows(srcs[j], whole, B, L, t0s[k], lens[k], D);
            worst = fmax(worst, mb_test_rel_err(gd[k][j], whole, (size_t)B * lens[k] * D));
        }
        free(whole);
        whole = malloc((size_t)B * lens[k] * s.ldbc * 4);
        sub_rows(dx, whole, B, L, t0s[k], lens[k], s.ldbc);
        worst = fmax(worst, mb_test_rel_err(gx[k], whole, (size_t)B * lens[k] * s.ldbc));
        free(whole);
    }
    worst = fmax(worst, mb_test_rel_err(gdh[0], dh0, nh));
    worst = fmax(worst, mb_test_rel_err(dA2, dA, (size_t)D * s.N));
    worst = fmax(worst, mb_test_rel_err(dD2, dD, D));
    worst = fmax(worst, mb_test_rel_err(db2, db, D));
    if (cplx) worst = fmax(worst, mb_test_rel_err(dAi2, dAi, (size_t)D * s.N));
    printf("# %s backward in two pieces vs whole: worst rel err %.2e\n", cplx ? "complex" : "real", worst);
    /* per-element gradients are the same arithmetic; dA, dD and the bias
     * sum the pieces in another order */
    assert_true(worst < 1e-6);
    for (int k = 0; k < 2; k++) {
        free(pu[k]), free(pd[k]), free(pz[k]), free(px[k]), free(pw[k]), free(gx[k]), free(gdh[k]);
        for (int j = 0; j < 3; j++) free(gd[k][j]);
    }
    free(du), free(dd), free(dz), free(dx), free(dA), free(dAi), free(dD), free(db), free(dh0);
    free(h_mid), free(ytmp), free(dA2), free(dAi2), free(dD2), free(db2);
    sc_free(&s);
}

static void test_backward_pieces_real(void **st) { (void)st; backward_pieces(0); }
static void test_backward_pieces_complex(void **st) { (void)st; backward_pieces(1); }

static void test_pieces_real(void **st) { (void)st; pieces(0); }
static void test_pieces_complex(void **st) { (void)st; pieces(1); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_real),        cmocka_unit_test(test_grad_complex),
        cmocka_unit_test(test_grad_real_lanes),  cmocka_unit_test(test_grad_complex_lanes),
        cmocka_unit_test(test_backward_small_arena), cmocka_unit_test(test_backward_reproducible),
        cmocka_unit_test(test_keep_decays_real), cmocka_unit_test(test_keep_decays_complex),
        cmocka_unit_test(test_forward_blocks),
        cmocka_unit_test(test_grad_real_plain),  cmocka_unit_test(test_grad_complex_plain),
        cmocka_unit_test(test_pieces_real),      cmocka_unit_test(test_pieces_complex),
        cmocka_unit_test(test_backward_pieces_real), cmocka_unit_test(test_backward_pieces_complex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
