/* Golden values: libmamba's CPU ops and model against the independent
 * float64 NumPy reference of scripts/golden.py (fixtures in tests/fixtures,
 * regenerated with `python3 scripts/golden.py`). Every check is a relative
 * error ||out - ref|| / ||ref|| (fp32 against float64), printed: forward
 * values < GOLDEN_TOL, gradients (per tensor) < GOLDEN_GRAD_TOL. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "models/model.h"
#include "ops/ops.h"
#include "train/safetensors.h"

#define GOLDEN_TOL 1e-5

/* Gradients (and the mean loss), per tensor, fp32 libmamba against the
 * float64 reference of scripts/golden.py (a float64 reverse mode, exact to
 * ~1e-14, which the script checks against float64 finite differences to
 * ~3e-8). What fp32 honestly gives: each gradient entry is a chain of fp32
 * sums and products (head GEMM, norms, two layers of GEMMs, a 23-37 step
 * scan whose forward backward recomputes, exp/softplus), i.e. a few units
 * of 6e-8 rounding per operation, amplified where the entry is a sum of
 * cancelling terms (dt_proj, A_log, A_imag, D: entries ~1e-4..1e-3 out of
 * O(0.1..1) terms). Measured worst, OpenBLAS or the built-in GEMM, 1..8
 * threads: scans 3.9e-7 (real grad.delta_bias), LM real 5.8e-7
 * (layers.1 dt_proj.bias), LM complex 7.1e-7 (layers.0 D; layers.1
 * dt_proj.weight without OpenBLAS); the loss ~1e-8. The U-Nets (up to
 * 111 tensors, 5 or 10 blocks, widths 8..32): 1.6e-6 (complex + mlp,
 * down.1 dt_proj.weight) with OpenBLAS, 1.35e-6 without; the loss 4e-8.
 * 5e-6 is ~7x the LM's worst and 3x the U-Net's:
 * room for other summation orders, while a real error is far above it (a
 * missing term, a wrong sign, factor or conjugation: 1e-1..1; even A off
 * by 1e-4 relative moves the scan gradients by ~1e-4). */
#define GOLDEN_GRAD_TOL 5e-6
/* bf16 precision: its rounding points match the script's, the rest is
 * fp32. But an fp32 value within its own rounding (~1e-7) of a point
 * halfway between two bf16 values may round the other way from the
 * script's float64 one: a whole bf16 step (2^-8 relative) in that entry,
 * carried on through what reads it. Which entries do depends on the
 * BLAS's summation order: measured 3.3e-7 with OpenBLAS's SkylakeX
 * kernels, 7.5e-6 with its Haswell kernels (an AMD Zen 4; layers.1
 * x_proj.weight). 1e-4 leaves room for a few such steps; a rounding point
 * left out moves the gradients by ~1e-3 and more (x_proj's output
 * gradient unrounded: FAILS), a real error by 1e-2..1. */
#define GOLDEN_BF16_GRAD_TOL 1e-4

static mb_ctx *g_ctx;

static int group_setup(void **state)
{
    (void)state;
    g_ctx = mb_ctx_create("cpu");
    if (!g_ctx) {
        fprintf(stderr, "mb_ctx_create(cpu): %s\n", mb_error_last());
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    mb_ctx_free(g_ctx);
    g_ctx = NULL;
    return 0;
}

/* ---- fixture access ------------------------------------------------------ */

static mb_st_file *open_fixture(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", MB_FIXTURE_DIR, name);
    mb_st_file *f = mb_st_open(path);
    if (!f) fail_msg("cannot open fixture %s: %s (regenerate: python3 scripts/golden.py)", path,
                     mb_error_last());
    return f;
}

/* A tensor read as float32 (expected F64 outputs are rounded once, which is
 * far below the tolerance); *numel and the shape out when asked for. */
static float *read_tensor(mb_st_file *f, const char *name, size_t *numel, int64_t *shape, int ndim)
{
    const mb_st_tensor *t = mb_st_find(f, name);
    if (!t) fail_msg("%s: no tensor %s", mb_st_path(f), name);
    if (ndim > 0) {
        if (t->ndim != ndim) fail_msg("%s: %s has %d dims, want %d", mb_st_path(f), name, t->ndim, ndim);
        for (int i = 0; i < ndim; i++) shape[i] = t->shape[i];
    }
    float *p = malloc((t->numel ? t->numel : 1) * sizeof(float));
    assert_non_null(p);
    if (mb_st_read_f32(f, t, p, t->numel) != 0) fail_msg("read %s: %s", name, mb_error_last());
    if (numel) *numel = t->numel;
    return p;
}

static float *read_expect(mb_st_file *f, const char *name, size_t want)
{
    size_t n = 0;
    float *p = read_tensor(f, name, &n, NULL, 0);
    if (n != want) fail_msg("%s: %s has %zu values, want %zu", mb_st_path(f), name, n, want);
    return p;
}

static double check(const char *what, const float *out, const float *ref, size_t n)
{
    double e = mb_test_rel_err(out, ref, n);
    printf("# golden %-34s rel err %.3e (max |ref| %.3g)\n", what, e, mb_test_max_abs(ref, n));
    fflush(stdout);
    return e;
}

/* An F64 tensor into doubles, unrounded (mb_st_read_f32 would round the
 * reference to float32 first). Reads the file directly: 8-byte LE header
 * length, header, data section at the tensor's offsets. */
static double *read_f64(mb_st_file *f, const char *name, size_t want, const int64_t *shape, int ndim)
{
    const mb_st_tensor *t = mb_st_find(f, name);
    if (!t) fail_msg("%s: no tensor %s", mb_st_path(f), name);
    if (t->dtype != MB_ST_F64) fail_msg("%s: %s is not F64", mb_st_path(f), name);
    if (t->numel != want) fail_msg("%s: %s has %zu values, want %zu", mb_st_path(f), name, t->numel, want);
    if (shape) {
        if (t->ndim != ndim) fail_msg("%s: %s has %d dims, want %d", mb_st_path(f), name, t->ndim, ndim);
        for (int i = 0; i < ndim; i++)
            if (t->shape[i] != shape[i])
                fail_msg("%s: %s dim %d is %lld, want %lld", mb_st_path(f), name, i,
                         (long long)t->shape[i], (long long)shape[i]);
    }
    FILE *fp = fopen(mb_st_path(f), "rb");
    if (!fp) fail_msg("cannot open %s", mb_st_path(f));
    unsigned char b[8];
    if (fread(b, 1, 8, fp) != 8) fail_msg("%s: short read", mb_st_path(f));
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];
    if (fseek(fp, (long)(8 + hlen + t->begin), SEEK_SET) != 0) fail_msg("%s: seek", mb_st_path(f));
    double *p = malloc((want ? want : 1) * sizeof(double));
    assert_non_null(p);
    for (size_t k = 0; k < want; k++) {
        if (fread(b, 1, 8, fp) != 8) fail_msg("%s: %s: short read", mb_st_path(f), name);
        uint64_t u = 0;
        for (int i = 7; i >= 0; i--) u = u << 8 | b[i];
        memcpy(&p[k], &u, sizeof u);
    }
    fclose(fp);
    return p;
}

/* ||out - ref|| / ||ref|| against a float64 reference, printed. */
static double check_grad(const char *what, const float *out, const double *ref, size_t n)
{
    double num = 0, den = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    }
    double e = den > 0 ? sqrt(num / den) : sqrt(num);
    printf("# golden %-52s rel err %.3e (max |ref| %.3g)\n", what, e, mx);
    fflush(stdout);
    return e;
}

/* Integer tensor (I32/I64) of `want` values as int32. */
static int32_t *read_i32(mb_st_file *f, const char *name, size_t want)
{
    const mb_st_tensor *t = mb_st_find(f, name);
    if (!t) fail_msg("%s: no tensor %s", mb_st_path(f), name);
    if (t->numel != want) fail_msg("%s: %s has %zu values, want %zu", mb_st_path(f), name, t->numel, want);
    int64_t *v = malloc((want ? want : 1) * sizeof(int64_t));
    int32_t *r = malloc((want ? want : 1) * sizeof(int32_t));
    assert_non_null(v);
    assert_non_null(r);
    assert_int_equal(mb_st_read_i64(f, t, v, want), 0);
    for (size_t i = 0; i < want; i++) r[i] = (int32_t)v[i];
    free(v);
    return r;
}

/* ---- selective scan ------------------------------------------------------ */

static void run_scan(const char *file, int is_complex)
{
    mb_st_file *f = open_fixture(file);
    int64_t su[3], sa[2], sb[3];
    size_t n_u;
    float *u = read_tensor(f, "u", &n_u, su, 3);
    float *A = read_tensor(f, "A", NULL, sa, 2);
    float *Bm = read_tensor(f, "B", NULL, sb, 3);
    const int Bt = (int)su[0], L = (int)su[1], D = (int)su[2], N = (int)sa[1];
    const int nB = is_complex ? 2 * N : N;
    assert_int_equal(sa[0], D);
    assert_int_equal(sb[0], Bt);
    assert_int_equal(sb[1], L);
    assert_int_equal(sb[2], nB);
    const size_t n_y = (size_t)Bt * L * D;
    const size_t n_h = (size_t)Bt * D * N * (is_complex ? 2 : 1);

    float *delta = read_expect(f, "delta", n_y);
    float *A_imag = is_complex ? read_expect(f, "A_imag", (size_t)D * N) : NULL;
    float *Cm = read_expect(f, "C", (size_t)Bt * L * nB);
    float *Dskip = read_expect(f, "Dskip", D);
    float *z = read_expect(f, "z", n_y);
    float *dbias = read_expect(f, "delta_bias", D);
    float *h0 = read_expect(f, "h0", n_h);
    float *y_ref = read_expect(f, "y", n_y);
    float *hT_ref = read_expect(f, "hT", n_h);
    float *yp_ref = read_expect(f, "y_plain", n_y);
    float *hTp_ref = read_expect(f, "hT_plain", n_h);

    mb_scan_params full;
    memset(&full, 0, sizeof full);
    full.batch = Bt;
    full.seqlen = L;
    full.dim = D;
    full.dstate = N;
    full.is_complex = is_complex;
    full.u = u;
    full.ld_u = D;
    full.delta = delta;
    full.ld_delta = D;
    full.A = A;
    full.A_imag = A_imag;
    full.Bm = Bm;
    full.ld_B = nB;
    full.Cm = Cm;
    full.ld_C = nB;
    full.Dskip = Dskip;
    full.z = z;
    full.ld_z = D;
    full.delta_bias = dbias;
    full.delta_softplus = 1;
    full.h0 = h0;

    mb_scan_params plain = full;
    plain.Dskip = NULL;
    plain.z = NULL;
    plain.ld_z = 0;
    plain.delta_bias = NULL;
    plain.delta_softplus = 0;
    plain.h0 = NULL;

    size_t ws = mb_scan_workspace(g_ctx, &full);
    size_t ws2 = mb_scan_workspace(g_ctx, &plain);
    if (ws2 > ws) ws = ws2;
    mb_arena arena;
    assert_int_equal(mb_arena_init(&arena, g_ctx, ws + 64), 0);

    float *y = calloc(n_y, sizeof(float));
    float *hT = calloc(n_h, sizeof(float));
    assert_non_null(y);
    assert_non_null(hT);
    char what[96];
    const char *tag = is_complex ? "complex" : "real";

    mb_arena_reset(&arena);
    mb_scan_fwd(g_ctx, &full, y, hT, &arena);
    snprintf(what, sizeof what, "scan_%s y (all options)", tag);
    double e_y = check(what, y, y_ref, n_y);
    snprintf(what, sizeof what, "scan_%s hT (all options)", tag);
    double e_h = check(what, hT, hT_ref, n_h);

    memset(y, 0, n_y * sizeof(float));
    memset(hT, 0, n_h * sizeof(float));
    mb_arena_reset(&arena);
    mb_scan_fwd(g_ctx, &plain, y, hT, &arena);
    snprintf(what, sizeof what, "scan_%s y_plain", tag);
    double e_yp = check(what, y, yp_ref, n_y);
    snprintf(what, sizeof what, "scan_%s hT_plain", tag);
    double e_hp = check(what, hT, hTp_ref, n_h);

    assert_true(e_y < GOLDEN_TOL);
    assert_true(e_h < GOLDEN_TOL);
    assert_true(e_yp < GOLDEN_TOL);
    assert_true(e_hp < GOLDEN_TOL);

    mb_arena_free(&arena);
    free(y); free(hT);
    free(u); free(delta); free(A); free(A_imag); free(Bm); free(Cm); free(Dskip); free(z);
    free(dbias); free(h0); free(y_ref); free(hT_ref); free(yp_ref); free(hTp_ref);
    mb_st_close(f);
}

static void test_scan_real(void **state)
{
    (void)state;
    run_scan("scan_real.safetensors", 0);
}

static void test_scan_complex(void **state)
{
    (void)state;
    run_scan("scan_complex.safetensors", 1);
}

/* D 16 and N 10: the CPU's eight-wide gates and decays and their rest */
static void test_scan_lanes(void **state)
{
    (void)state;
    run_scan("scan_real_lanes.safetensors", 0);
    run_scan("scan_complex_lanes.safetensors", 1);
}

/* Scan backward: loss = sum(wy * y) + sum(wh * hT) (all options), so
 * dy = wy and dhT = wh; every input's gradient against grad.<input>. The
 * overwritten outputs start as garbage, the accumulated ones at zero. */
static void run_scan_grad(const char *file, int is_complex)
{
    mb_st_file *f = open_fixture(file);
    int64_t su[3], sa[2];
    size_t n_u;
    float *u = read_tensor(f, "u", &n_u, su, 3);
    float *A = read_tensor(f, "A", NULL, sa, 2);
    const int Bt = (int)su[0], L = (int)su[1], D = (int)su[2], N = (int)sa[1];
    const int nB = is_complex ? 2 * N : N;
    const size_t n_y = (size_t)Bt * L * D, n_a = (size_t)D * N, n_b = (size_t)Bt * L * nB;
    const size_t n_h = (size_t)Bt * D * N * (is_complex ? 2 : 1);

    float *delta = read_expect(f, "delta", n_y);
    float *A_imag = is_complex ? read_expect(f, "A_imag", n_a) : NULL;
    float *Bm = read_expect(f, "B", n_b);
    float *Cm = read_expect(f, "C", n_b);
    float *Dskip = read_expect(f, "Dskip", D);
    float *z = read_expect(f, "z", n_y);
    float *dbias = read_expect(f, "delta_bias", D);
    float *h0 = read_expect(f, "h0", n_h);
    float *wy = read_expect(f, "wy", n_y);
    float *wh = read_expect(f, "wh", n_h);

    mb_scan_params p;
    memset(&p, 0, sizeof p);
    p.batch = Bt;
    p.seqlen = L;
    p.dim = D;
    p.dstate = N;
    p.is_complex = is_complex;
    p.u = u;
    p.ld_u = D;
    p.delta = delta;
    p.ld_delta = D;
    p.A = A;
    p.A_imag = A_imag;
    p.Bm = Bm;
    p.ld_B = nB;
    p.Cm = Cm;
    p.ld_C = nB;
    p.Dskip = Dskip;
    p.z = z;
    p.ld_z = D;
    p.delta_bias = dbias;
    p.delta_softplus = 1;
    p.h0 = h0;

    struct {
        const char *name;
        size_t n;
        int accumulated;
        float *buf;
    } gt[] = {
        {"u", n_y, 0, NULL},     {"delta", n_y, 0, NULL}, {"A", n_a, 1, NULL},
        {"A_imag", n_a, 1, NULL}, {"B", n_b, 0, NULL},     {"C", n_b, 0, NULL},
        {"Dskip", (size_t)D, 1, NULL}, {"z", n_y, 0, NULL}, {"delta_bias", (size_t)D, 1, NULL},
        {"h0", n_h, 0, NULL},
    };
    const int ng = (int)(sizeof gt / sizeof gt[0]);
    for (int i = 0; i < ng; i++) {
        if (!is_complex && !strcmp(gt[i].name, "A_imag")) continue;
        gt[i].buf = malloc(gt[i].n * sizeof(float));
        assert_non_null(gt[i].buf);
        for (size_t k = 0; k < gt[i].n; k++) gt[i].buf[k] = gt[i].accumulated ? 0.f : 1e3f;
    }
    mb_scan_grads g;
    memset(&g, 0, sizeof g);
    g.du = gt[0].buf;
    g.ld_du = D;
    g.ddelta = gt[1].buf;
    g.ld_ddelta = D;
    g.dA = gt[2].buf;
    g.dA_imag = gt[3].buf;
    g.dB = gt[4].buf;
    g.ld_dB = nB;
    g.dC = gt[5].buf;
    g.ld_dC = nB;
    g.dD = gt[6].buf;
    g.dz = gt[7].buf;
    g.ld_dz = D;
    g.ddelta_bias = gt[8].buf;
    g.dh0 = gt[9].buf;

    mb_arena arena;
    assert_int_equal(mb_arena_init(&arena, g_ctx, mb_scan_workspace(g_ctx, &p) + 64), 0);
    mb_scan_bwd(g_ctx, &p, wy, wh, &g, &arena);

    const char *tag = is_complex ? "complex" : "real";
    double worst = 0;
    char what[128], name[64];
    for (int i = 0; i < ng; i++) {
        if (!gt[i].buf) continue;
        snprintf(name, sizeof name, "grad.%s", gt[i].name);
        double *ref = read_f64(f, name, gt[i].n, NULL, 0);
        snprintf(what, sizeof what, "scan_%s %s", tag, name);
        double e = check_grad(what, gt[i].buf, ref, gt[i].n);
        if (e > worst || e != e) worst = e;
        free(ref);
    }
    printf("# golden scan_%s gradients: worst rel err %.3e (bound %.0e)\n", tag, worst,
           GOLDEN_GRAD_TOL);
    assert_true(worst < GOLDEN_GRAD_TOL);

    mb_arena_free(&arena);
    for (int i = 0; i < ng; i++) free(gt[i].buf);
    free(u); free(delta); free(A); free(A_imag); free(Bm); free(Cm); free(Dskip); free(z);
    free(dbias); free(h0); free(wy); free(wh);
    mb_st_close(f);
}

static void test_scan_real_grad(void **state)
{
    (void)state;
    run_scan_grad("scan_real.safetensors", 0);
}

static void test_scan_complex_grad(void **state)
{
    (void)state;
    run_scan_grad("scan_complex.safetensors", 1);
}

static void test_scan_lanes_grad(void **state)
{
    (void)state;
    run_scan_grad("scan_real_lanes.safetensors", 0);
    run_scan_grad("scan_complex_lanes.safetensors", 1);
}

/* ---- causal depthwise conv1d --------------------------------------------- */

static void test_conv1d(void **state)
{
    (void)state;
    mb_st_file *f = open_fixture("conv.safetensors");
    int64_t sx[3], sw[3];
    size_t n;
    float *x = read_tensor(f, "x", &n, sx, 3);
    float *w = read_tensor(f, "weight", NULL, sw, 3);
    const int Bt = (int)sx[0], L = (int)sx[1], D = (int)sx[2], K = (int)sw[2];
    assert_int_equal(sw[0], D);
    assert_int_equal(sw[1], 1);
    float *bias = read_expect(f, "bias", D);
    float *prev = read_expect(f, "prev", (size_t)Bt * (K - 1) * D);
    float *y_ref = read_expect(f, "y", n);
    float *yp_ref = read_expect(f, "y_prev", n);
    float *y = calloc(n, sizeof(float));
    assert_non_null(y);

    mb_conv1d_fwd(g_ctx, Bt, L, D, K, x, D, w, bias, NULL, 0, y, D);
    double e = check("conv1d y (zero history)", y, y_ref, n);
    memset(y, 0, n * sizeof(float));
    mb_conv1d_fwd(g_ctx, Bt, L, D, K, x, D, w, bias, prev, 0, y, D);
    double ep = check("conv1d y (history prev)", y, yp_ref, n);
    assert_true(e < GOLDEN_TOL);
    assert_true(ep < GOLDEN_TOL);

    free(y); free(x); free(w); free(bias); free(prev); free(y_ref); free(yp_ref);
    mb_st_close(f);
}

/* ---- language model ------------------------------------------------------ */

typedef enum { LM_FORWARD, LM_STEP, LM_CHUNK } lm_mode;

static void run_lm(const char *tag, int is_complex, int tied, lm_mode mode)
{
    char path[4096], name[128];
    snprintf(path, sizeof path, "%s/lm_%s.safetensors", MB_FIXTURE_DIR, tag);
    mb_model *m = mb_model_load(g_ctx, path);
    if (!m) fail_msg("mb_model_load(%s): %s", path, mb_error_last());
    const mb_config *cfg = mb_model_config(m);
    assert_int_equal(cfg->d_model, 16);
    assert_int_equal(cfg->n_layer, 2);
    assert_int_equal(cfg->vocab_size, 11);
    assert_int_equal(cfg->d_state, 4);
    assert_int_equal(cfg->d_conv, 4);
    assert_int_equal(cfg->expand, 2);
    assert_int_equal(cfg->dt_rank, 1);
    assert_int_equal(cfg->init, is_complex ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL);
    assert_int_equal(cfg->tie_embeddings, tied);
    assert_int_equal(cfg->rms_norm, 1);

    snprintf(name, sizeof name, "lm_%s_expected.safetensors", tag);
    mb_st_file *f = open_fixture(name);
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    assert_int_equal(tt->ndim, 2);
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    int64_t *tok64 = malloc(tt->numel * sizeof(int64_t));
    int32_t *tok = malloc(tt->numel * sizeof(int32_t));
    assert_non_null(tok64);
    assert_non_null(tok);
    assert_int_equal(mb_st_read_i64(f, tt, tok64, tt->numel), 0);
    for (size_t i = 0; i < tt->numel; i++) tok[i] = (int32_t)tok64[i];
    int64_t sl[3];
    size_t n;
    float *ref = read_tensor(f, "logits", &n, sl, 3);
    const int Vp = (int)sl[2];
    assert_int_equal(sl[0], Bt);
    assert_int_equal(sl[1], L);
    assert_int_equal(mb_config_vocab_padded(cfg), Vp);

    float *out = calloc(n, sizeof(float));
    assert_non_null(out);
    const char *mname = "";

    if (mode == LM_FORWARD) {
        mname = "mb_model_forward";
        if (mb_model_forward(m, tok, Bt, L, NULL, out, NULL) != 0)
            fail_msg("mb_model_forward: %s", mb_error_last());
    } else if (mode == LM_STEP) {
        mname = "mb_model_step";
        mb_state *s = mb_state_create(m, Bt);
        if (!s) fail_msg("mb_state_create: %s", mb_error_last());
        int32_t *tk = malloc((size_t)Bt * sizeof(int32_t));
        float *lg = malloc((size_t)Bt * Vp * sizeof(float));
        assert_non_null(tk);
        assert_non_null(lg);
        for (int t = 0; t < L; t++) {
            for (int b = 0; b < Bt; b++) tk[b] = tok[(size_t)b * L + t];
            if (mb_model_step(m, s, tk, lg) != 0) fail_msg("mb_model_step t=%d: %s", t, mb_error_last());
            for (int b = 0; b < Bt; b++)
                memcpy(out + ((size_t)b * L + t) * Vp, lg + (size_t)b * Vp, (size_t)Vp * sizeof(float));
        }
        free(tk);
        free(lg);
        mb_state_free(s);
    } else {
        mname = "mb_model_forward_chunk 11+12";
        mb_state *s = mb_state_create(m, Bt);
        if (!s) fail_msg("mb_state_create: %s", mb_error_last());
        const int c0 = 11;
        assert_true(L > c0);
        int32_t *tk = malloc((size_t)Bt * L * sizeof(int32_t));
        float *lg = malloc((size_t)Bt * L * Vp * sizeof(float));
        assert_non_null(tk);
        assert_non_null(lg);
        for (int start = 0; start < L; start = (start == 0 ? c0 : L)) {
            const int cl = start == 0 ? c0 : L - c0;
            for (int b = 0; b < Bt; b++)
                memcpy(tk + (size_t)b * cl, tok + (size_t)b * L + start, (size_t)cl * sizeof(int32_t));
            if (mb_model_forward_chunk(m, s, tk, cl, lg) != 0)
                fail_msg("mb_model_forward_chunk start=%d len=%d: %s", start, cl, mb_error_last());
            for (int b = 0; b < Bt; b++)
                memcpy(out + ((size_t)b * L + start) * Vp, lg + (size_t)b * cl * Vp,
                       (size_t)cl * Vp * sizeof(float));
        }
        free(tk);
        free(lg);
        mb_state_free(s);
    }

    char what[96];
    snprintf(what, sizeof what, "lm_%s logits, %s", tag, mname);
    double e = check(what, out, ref, n);
    assert_true(e < GOLDEN_TOL);

    free(out); free(ref); free(tok); free(tok64);
    mb_st_close(f);
    mb_model_free(m);
}

/* bf16 precision's forward (the CPU reference of core.h's MB_PREC_BF16)
 * against the script's lm_logits with r = bf16, which rounds at the same
 * points in float64. Where a value's float32 and float64 sums fall on
 * either side of a bf16 rounding boundary the two differ by a bf16 step
 * (2^-8) there, so the bound is above fp32's. The fixtures' logits agree
 * exactly (no value fell on such a boundary); 5e-5 is under what dropping
 * any one rounding point costs (measured by hand: the least, delta's,
 * 1.4e-4 complex and 4.0e-4 real), and every logit must be a bf16 value.
 * Steps from a state give the same logits; sampling is refused in words
 * (its bf16 path is not built). */
static void run_lm_bf16(const char *tag)
{
    char path[4096], name[128];
    snprintf(path, sizeof path, "%s/lm_%s.safetensors", MB_FIXTURE_DIR, tag);
    /* a context of its own: a failed check leaves g_ctx in fp32 */
    mb_ctx *ctx = mb_ctx_create("cpu");
    assert_non_null(ctx);
    mb_model *m = mb_model_load(ctx, path);
    if (!m) fail_msg("mb_model_load(%s): %s", path, mb_error_last());
    snprintf(name, sizeof name, "lm_%s_expected.safetensors", tag);
    mb_st_file *f = open_fixture(name);
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    int64_t *tok64 = malloc(tt->numel * sizeof(int64_t));
    int32_t *tok = malloc(tt->numel * sizeof(int32_t)), *tgt = malloc(tt->numel * sizeof(int32_t));
    assert_true(tok64 && tok && tgt);
    assert_int_equal(mb_st_read_i64(f, tt, tok64, tt->numel), 0);
    for (size_t i = 0; i < tt->numel; i++) tok[i] = (int32_t)tok64[i];
    const mb_st_tensor *tg = mb_st_find(f, "targets");
    assert_non_null(tg);
    assert_int_equal(mb_st_read_i64(f, tg, tok64, tg->numel), 0);
    for (size_t i = 0; i < tg->numel; i++) tgt[i] = (int32_t)tok64[i];
    size_t n = 0;
    int64_t sl[3];
    float *ref = read_tensor(f, "bf16.logits", &n, sl, 3), *ref32 = read_expect(f, "logits", n);
    float *loss = read_expect(f, "bf16.loss", 1);
    float *out = calloc(n, sizeof(float));
    assert_non_null(out);

    assert_int_equal(mb_ctx_set_precision(ctx, MB_PREC_BF16), 0);
    mb_loss_stats st = {0};
    if (mb_model_forward(m, tok, Bt, L, tgt, out, &st) != 0) fail_msg("bf16 forward: %s", mb_error_last());
    for (size_t i = 0; i < n; i++)
        if (mb_bf16_float(mb_bf16_round(out[i])) != out[i]) fail_msg("logit %zu = %.9g is not a bf16 value", i, out[i]);
    char what[96];
    snprintf(what, sizeof what, "lm_%s bf16 logits", tag);
    const double e = check(what, out, ref, n), e32 = mb_test_rel_err(ref32, ref, n);
    const double mean = st.loss_sum / (double)st.count;
    printf("#   fp32 logits against bf16's: rel err %.3e; bf16 loss %.6f, the script's %.6f\n", e32, mean, loss[0]);
    assert_true(e < 5e-5);
    assert_true(e32 > 10 * 5e-5);
    assert_true(fabs(mean - loss[0]) < 1e-3 * fabs(loss[0]));
    /* step by step from a state, as validation runs: the same rounding
     * points, so the same logits; sampling draws from those logits (a
     * replay by steps agrees draw for draw) */
    mb_state *s = mb_state_create(m, Bt);
    if (!s) fail_msg("mb_state_create: %s", mb_error_last());
    const int Vp = (int)sl[2];
    int32_t *tk = malloc((size_t)Bt * sizeof(int32_t));
    float *lg = malloc((size_t)Bt * Vp * sizeof(float));
    assert_true(tk && lg);
    for (int t = 0; t < L; t++) {
        for (int b = 0; b < Bt; b++) tk[b] = tok[(size_t)b * L + t];
        if (mb_model_step(m, s, tk, lg) != 0) fail_msg("bf16 step t=%d: %s", t, mb_error_last());
        for (int b = 0; b < Bt; b++) memcpy(out + ((size_t)b * L + t) * Vp, lg + (size_t)b * Vp, (size_t)Vp * sizeof(float));
    }
    snprintf(what, sizeof what, "lm_%s bf16 logits, mb_model_step", tag);
    assert_true(check(what, out, ref, n) < 5e-5);
    /* the golden model's logits are peaked (max 18.8): hot draws, so that
     * classes change and nuclei hold several */
    const mb_sampler sp[2] = {{.temperature = 4.f, .top_p = 1.f, .seed = 1},
                              {.temperature = 8.f, .top_p = 0.9f, .top_k = 5, .seed = 2}};
    for (int i = 0; i < 2; i++) assert_int_equal(mb_test_sample_replay(m, m, Bt, 40, &sp[i], 0), 0);
    mb_state_free(s);
    free(tk), free(lg);
    assert_int_equal(mb_ctx_set_precision(ctx, MB_PREC_FP32), 0);
    /* and back in fp32, the forward is fp32's again (the bf16 copies unused) */
    assert_int_equal(mb_model_forward(m, tok, Bt, L, NULL, out, NULL), 0);
    assert_true(mb_test_rel_err(out, ref32, n) < GOLDEN_TOL);

    free(out), free(ref), free(ref32), free(loss), free(tok), free(tgt), free(tok64);
    mb_st_close(f);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

static void test_lm_bf16_forward(void **state)
{
    (void)state;
    run_lm_bf16("real");
    run_lm_bf16("complex");
}

static void test_lm_real_forward(void **state) { (void)state; run_lm("real", 0, 1, LM_FORWARD); }
static void test_lm_real_step(void **state) { (void)state; run_lm("real", 0, 1, LM_STEP); }
static void test_lm_real_chunk(void **state) { (void)state; run_lm("real", 0, 1, LM_CHUNK); }
static void test_lm_complex_forward(void **state) { (void)state; run_lm("complex", 1, 0, LM_FORWARD); }
static void test_lm_complex_step(void **state) { (void)state; run_lm("complex", 1, 0, LM_STEP); }
static void test_lm_complex_chunk(void **state) { (void)state; run_lm("complex", 1, 0, LM_CHUNK); }

/* The model's gradient buffer against the fixture's PRE "grad.<name>"
 * tensors, which must be exactly its parameters; each tensor's error
 * printed (labelled tag), the worst returned with its name. */
static double grads_vs_fixture(mb_ctx *ctx, const mb_model *m, mb_st_file *f, const char *pre, const char *tag,
                               const char **worst_name)
{
    char name[192], what[256];
    const mb_params *ps = &m->params;
    float *grad = malloc(ps->total * sizeof(float));
    assert_non_null(grad);
    assert_int_equal(mb_dev_download(ctx, grad, ps->grad, ps->total * sizeof(float)), 0);
    int n_ref = 0;
    snprintf(name, sizeof name, "%sgrad.", pre);
    for (int i = 0; i < mb_st_count(f); i++) n_ref += strncmp(mb_st_get(f, i)->name, name, strlen(name)) == 0;
    assert_int_equal(n_ref, ps->n);
    double worst = 0;
    *worst_name = "";
    for (int i = 0; i < ps->n; i++) {
        const mb_param *it = &ps->items[i];
        snprintf(name, sizeof name, "%sgrad.%s", pre, it->name);
        double *ref = read_f64(f, name, it->numel, it->shape, it->ndim);
        snprintf(what, sizeof what, "%s %s", tag, it->name);
        const double e = check_grad(what, grad + it->offset, ref, it->numel);
        if (e > worst || e != e) worst = e, *worst_name = it->name;
        free(ref);
    }
    free(grad);
    return worst;
}

/* LM backward: mb_model_forward_backward on the fixture's tokens and
 * targets; the mean loss against `loss` and every parameter's gradient
 * (the model's gradient buffer) against grad.<name>. */
/* bf16: in bf16 precision (a context of its own), against the fixture's
 * bf16.* tensors (golden.py's lm_loss_grads with r = bf16) */
static void run_lm_grad(const char *tag, int tied, int recompute, int bf16)
{
    char path[4096], name[160], what[192];
    snprintf(path, sizeof path, "%s/lm_%s.safetensors", MB_FIXTURE_DIR, tag);
    mb_ctx *ctx = bf16 ? mb_ctx_create("cpu") : g_ctx;
    assert_non_null(ctx);
    if (bf16) assert_int_equal(mb_ctx_set_precision(ctx, MB_PREC_BF16), 0);
    const char *pre = bf16 ? "bf16." : "";
    mb_model *m = mb_model_load(ctx, path);
    if (!m) fail_msg("mb_model_load(%s): %s", path, mb_error_last());
    assert_int_equal(mb_model_config(m)->tie_embeddings, tied);
    mb_model_set_recompute(m, recompute);

    snprintf(name, sizeof name, "lm_%s_expected.safetensors", tag);
    mb_st_file *f = open_fixture(name);
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    assert_int_equal(tt->ndim, 2);
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    const size_t M = (size_t)Bt * L;
    int32_t *tok = read_i32(f, "tokens", M);
    int32_t *tgt = read_i32(f, "targets", M);
    int64_t counted = 0;
    for (size_t i = 0; i < M; i++) counted += tgt[i] != MB_IGNORE_INDEX;
    assert_true(counted > 0 && counted < (int64_t)M); /* some ignored, some counted */

    mb_model_zero_grad(m);
    mb_loss_stats st = {0};
    if (mb_model_forward_backward(m, tok, tgt, Bt, L, &st) != 0)
        fail_msg("mb_model_forward_backward: %s", mb_error_last());
    assert_int_equal(st.count, counted);

    const char *rc = bf16 ? (recompute ? ", bf16, recompute" : ", bf16") : recompute ? ", recompute" : "";
    snprintf(name, sizeof name, "%sloss", pre);
    double *loss_ref = read_f64(f, name, 1, NULL, 0);
    const double loss = st.loss_sum / (double)st.count;
    const double e_loss = fabs(loss - loss_ref[0]) / fabs(loss_ref[0]);
    printf("# golden lm_%s loss%s: %.9f, ref %.9f, rel err %.3e\n", tag, rc, loss, loss_ref[0],
           e_loss);

    const char *worst_name;
    snprintf(what, sizeof what, "lm_%s%s", tag, rc);
    const double worst = grads_vs_fixture(ctx, m, f, pre, what, &worst_name);
    const double bound = bf16 ? GOLDEN_BF16_GRAD_TOL : GOLDEN_GRAD_TOL;
    printf("# golden lm_%s%s gradients: worst rel err %.3e (%s), bound %.0e\n", tag, rc, worst, worst_name, bound);
    assert_true(e_loss < bound);
    assert_true(worst < bound);

    free(loss_ref); free(tok); free(tgt);
    mb_st_close(f);
    mb_model_free(m);
    if (bf16) mb_ctx_free(ctx);
}

static void test_lm_real_grad(void **state) { (void)state; run_lm_grad("real", 1, 0, 0); }
static void test_lm_real_grad_recompute(void **state) { (void)state; run_lm_grad("real", 1, 1, 0); }
static void test_lm_complex_grad(void **state) { (void)state; run_lm_grad("complex", 0, 0, 0); }
static void test_lm_complex_grad_recompute(void **state) { (void)state; run_lm_grad("complex", 0, 1, 0); }
static void test_lm_bf16_grad(void **state)
{
    (void)state;
    run_lm_grad("real", 1, 0, 1);
    run_lm_grad("real", 1, 1, 1);
    run_lm_grad("complex", 0, 0, 1);
}

/* ---- the classifier --------------------------------------------------------
 * cls_real: an LM backbone with a 3-class head (models/classify.c: the
 * mean over positions of the final norm's output, then the head), against
 * golden.py's cls_loss_grads: class probabilities (mb_model_classify) and
 * loss, then every gradient of mb_model_classify_backward; bf16 precision
 * against its bf16.* tensors (the pooled mean, the class logits and their
 * gradients rounded as the script does). */
static void run_cls(int bf16)
{
    char path[4096], name[160], what[192];
    snprintf(path, sizeof path, "%s/cls_real.safetensors", MB_FIXTURE_DIR);
    mb_ctx *ctx = bf16 ? mb_ctx_create("cpu") : g_ctx;
    assert_non_null(ctx);
    if (bf16) assert_int_equal(mb_ctx_set_precision(ctx, MB_PREC_BF16), 0);
    const char *pre = bf16 ? "bf16." : "", *tag = bf16 ? "cls_real bf16" : "cls_real";
    mb_model *m = mb_model_load(ctx, path);
    if (!m) fail_msg("mb_model_load(%s): %s", path, mb_error_last());
    const int C = mb_model_config(m)->n_classes;
    mb_st_file *f = open_fixture("cls_real_expected.safetensors");
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    int32_t *tok = read_i32(f, "tokens", (size_t)Bt * L), *lab = read_i32(f, "labels", (size_t)Bt);
    snprintf(name, sizeof name, "%slogits", pre);
    const int64_t lshape[2] = {Bt, C};
    double *lref = read_f64(f, name, (size_t)Bt * C, lshape, 2);
    snprintf(name, sizeof name, "%sloss", pre);
    double *loss_ref = read_f64(f, name, 1, NULL, 0);

    /* the probabilities: softmax of the script's logits, in double */
    float *probs = malloc((size_t)Bt * C * sizeof(float)), *pref = malloc((size_t)Bt * C * sizeof(float));
    assert_true(probs && pref);
    for (int b = 0; b < Bt; b++) {
        double mx = lref[b * C], se = 0;
        for (int j = 1; j < C; j++) mx = lref[b * C + j] > mx ? lref[b * C + j] : mx;
        for (int j = 0; j < C; j++) se += exp(lref[b * C + j] - mx);
        for (int j = 0; j < C; j++) pref[b * C + j] = (float)(exp(lref[b * C + j] - mx) / se);
    }
    mb_loss_stats st = {0};
    if (mb_model_classify(m, tok, Bt, L, lab, probs, &st)) fail_msg("mb_model_classify: %s", mb_error_last());
    snprintf(what, sizeof what, "%s probabilities", tag);
    const double ep = check(what, probs, pref, (size_t)Bt * C);
    const double e_fwd = fabs(st.loss_sum / (double)st.count - loss_ref[0]) / fabs(loss_ref[0]);

    mb_model_zero_grad(m);
    mb_loss_stats sb = {0};
    if (mb_model_classify_backward(m, tok, lab, Bt, L, &sb)) fail_msg("mb_model_classify_backward: %s", mb_error_last());
    assert_int_equal(sb.count, Bt - 1); /* one label ignored */
    const double e_loss = fabs(sb.loss_sum / (double)sb.count - loss_ref[0]) / fabs(loss_ref[0]);
    const char *worst_name;
    const double worst = grads_vs_fixture(ctx, m, f, pre, tag, &worst_name);
    const double bound = bf16 ? GOLDEN_BF16_GRAD_TOL : GOLDEN_GRAD_TOL;
    printf("# golden %s: loss rel err %.3e (forward %.3e), gradients worst %.3e (%s), bound %.0e\n", tag, e_loss,
           e_fwd, worst, worst_name, bound);
    assert_true(ep < GOLDEN_TOL);
    assert_true(e_fwd < bound && e_loss < bound);
    assert_true(worst < bound);
    free(probs), free(pref), free(lref), free(loss_ref), free(tok), free(lab);
    mb_st_close(f);
    mb_model_free(m);
    if (bf16) mb_ctx_free(ctx);
}

static void test_cls(void **state)
{
    (void)state;
    run_cls(0);
}

static void test_cls_bf16(void **state)
{
    (void)state;
    run_cls(1);
}

/* ---- the SaShiMi U-Net ----------------------------------------------------
 * Four tiny U-Nets (d_model 8, pools {2, 2}, pool_expand 2: widths 8, 16,
 * 32, the center's mixers with dt_rank 2; real and complex A, with and
 * without MLP blocks; sashimi_real has 2 blocks per stack) written by
 * scripts/golden.py with the config as mb_model_save writes it. */

typedef struct {
    const char *tag;
    int is_complex, mlp, n_layer, d_state;
} sa_fixture;

/* ---- the bidirectional model -------------------------------------------------
 * mamba-bidir (Caduceus' BiMamba blocks), and with rc_equivariant its
 * reverse-complement sharing: mb_model_forward's logits against the
 * script's (which it checks equal to Caduceus' own 2 d-channel RCPS
 * formulation), and mb_model_forward_backward's loss and every gradient
 * (the tied projections gather both mixers'), with and without recompute;
 * recompute 2: in chunks of 5 tokens (13 = 5 + 5 + 3: each direction's
 * chunks from its own end, the last one short). */
static void run_bidir(const char *tag, int rc, int recompute)
{
    char path[4096], name[160], what[192];
    snprintf(path, sizeof path, "%s/%s.safetensors", MB_FIXTURE_DIR, tag);
    mb_model *m = mb_model_load(g_ctx, path);
    if (!m) fail_msg("mb_model_load(%s): %s", path, mb_error_last());
    const mb_config *cfg = mb_model_config(m);
    assert_int_equal(cfg->arch, MB_ARCH_BIDIR);
    assert_int_equal(cfg->rc_equivariant, rc);
    mb_model_set_recompute(m, recompute != 0);
    if (recompute == 2) mb_model_set_recompute_chunk(m, 5);
    snprintf(name, sizeof name, "%s_expected.safetensors", tag);
    mb_st_file *f = open_fixture(name);
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    const size_t M = (size_t)Bt * L;
    int32_t *tok = read_i32(f, "tokens", M);
    int32_t *tgt = read_i32(f, "targets", M);
    int64_t sl[3];
    size_t n;
    float *ref = read_tensor(f, "logits", &n, sl, 3);
    assert_int_equal(sl[2], mb_config_vocab_padded(cfg));
    float *out = calloc(n, sizeof(float));
    assert_non_null(out);
    if (mb_model_forward(m, tok, Bt, L, NULL, out, NULL) != 0) fail_msg("mb_model_forward: %s", mb_error_last());
    snprintf(what, sizeof what, "%s logits", tag);
    assert_true(check(what, out, ref, n) < GOLDEN_TOL);

    mb_model_zero_grad(m);
    mb_loss_stats st = {0};
    if (mb_model_forward_backward(m, tok, tgt, Bt, L, &st) != 0)
        fail_msg("mb_model_forward_backward: %s", mb_error_last());
    double *loss_ref = read_f64(f, "loss", 1, NULL, 0);
    const double loss = st.loss_sum / (double)st.count;
    const double e_loss = fabs(loss - loss_ref[0]) / fabs(loss_ref[0]);
    const char *how = recompute == 2 ? ", recompute in chunks" : recompute ? ", recompute" : "";
    printf("# golden %s loss%s: %.9f, ref %.9f, rel err %.3e\n", tag, how, loss, loss_ref[0], e_loss);
    const char *worst_name;
    snprintf(what, sizeof what, "%s%s", tag, how);
    const double worst = grads_vs_fixture(g_ctx, m, f, "", what, &worst_name);
    printf("# golden %s gradients: worst rel err %.3e (%s), bound %.0e\n", what, worst, worst_name, GOLDEN_GRAD_TOL);
    assert_true(e_loss < GOLDEN_GRAD_TOL);
    assert_true(worst < GOLDEN_GRAD_TOL);
    free(loss_ref); free(tok); free(tgt); free(ref); free(out);
    mb_st_close(f);
    mb_model_free(m);
}

static void test_bidir(void **state) { (void)state; run_bidir("bidir", 0, 0); }
static void test_bidir_recompute(void **state) { (void)state; run_bidir("bidir", 0, 1); }
static void test_bidir_rc(void **state) { (void)state; run_bidir("bidir_rc", 1, 0); }
static void test_bidir_rc_recompute(void **state) { (void)state; run_bidir("bidir_rc", 1, 1); }
static void test_bidir_chunks(void **state) { (void)state; run_bidir("bidir", 0, 2); }
static void test_bidir_rc_chunks(void **state) { (void)state; run_bidir("bidir_rc", 1, 2); }

static const sa_fixture SA_REAL = {"real", 0, 0, 2, 3};
static const sa_fixture SA_COMPLEX = {"complex", 1, 0, 1, 4};
static const sa_fixture SA_REAL_MLP = {"real_mlp", 0, 1, 1, 4};
static const sa_fixture SA_COMPLEX_MLP = {"complex_mlp", 1, 1, 1, 3};
/* expectations in bf16 precision only (bf16.*) */
static const sa_fixture SA_BF16 = {"bf16", 0, 1, 1, 3};

static mb_model *load_sashimi(mb_ctx *ctx, const sa_fixture *fx)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sashimi_%s.safetensors", MB_FIXTURE_DIR, fx->tag);
    mb_model *m = mb_model_load(ctx, path);
    if (!m) fail_msg("mb_model_load(%s): %s", path, mb_error_last());
    const mb_config *cfg = mb_model_config(m);
    assert_int_equal(cfg->arch, MB_ARCH_SASHIMI);
    assert_int_equal(cfg->d_model, 8);
    assert_int_equal(cfg->n_layer, fx->n_layer);
    assert_int_equal(cfg->vocab_size, 11);
    assert_int_equal(mb_config_vocab_padded(cfg), 16);
    assert_int_equal(cfg->d_state, fx->d_state);
    assert_int_equal(cfg->d_conv, 4);
    assert_int_equal(cfg->expand, 2);
    assert_int_equal(cfg->init, fx->is_complex ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL);
    assert_int_equal(cfg->n_pool, 2);
    assert_int_equal(cfg->pool[0], 2);
    assert_int_equal(cfg->pool[1], 2);
    assert_int_equal(cfg->pool_expand, 2);
    assert_int_equal(cfg->mlp, fx->mlp);
    assert_int_equal(cfg->rms_norm, 1);
    /* the center's mixers (width 32) have dt_rank ceil(32 / 16) = 2 */
    int k = 0;
    while (k < m->params.n && strcmp(m->params.items[k].name, "center.layers.0.mixer.dt_proj.weight")) k++;
    assert_true(k < m->params.n);
    assert_int_equal(m->params.items[k].shape[1], 2);
    return m;
}

static void run_sashimi(const sa_fixture *fx, lm_mode mode)
{
    char name[128];
    mb_model *m = load_sashimi(g_ctx, fx);
    snprintf(name, sizeof name, "sashimi_%s_expected.safetensors", fx->tag);
    mb_st_file *f = open_fixture(name);
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    assert_int_equal(tt->ndim, 2);
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    int32_t *tok = read_i32(f, "tokens", tt->numel);
    int64_t sl[3];
    size_t n;
    float *ref = read_tensor(f, "logits", &n, sl, 3);
    const int Vp = (int)sl[2];
    assert_int_equal(sl[0], Bt);
    assert_int_equal(sl[1], L);
    assert_int_equal(mb_config_vocab_padded(mb_model_config(m)), Vp);
    float *out = calloc(n, sizeof(float));
    int32_t *tk = malloc((size_t)Bt * L * sizeof(int32_t));
    float *lg = malloc((size_t)Bt * L * Vp * sizeof(float));
    assert_true(out && tk && lg);
    const char *mname = "";
    if (mode == LM_FORWARD) {
        mname = "mb_model_forward";
        if (mb_model_forward(m, tok, Bt, L, NULL, out, NULL) != 0)
            fail_msg("mb_model_forward: %s", mb_error_last());
    } else {
        mb_state *s = mb_state_create(m, Bt);
        if (!s) fail_msg("mb_state_create: %s", mb_error_last());
        /* steps: one position at a time. chunks: 7 = a period (4) by the
         * parallel forward + 3 steps, then 9 = 1 step to the period's edge
         * + 2 periods in parallel from the carried state */
        const int c0 = mode == LM_STEP ? 1 : 7;
        mname = mode == LM_STEP ? "mb_model_step" : "mb_model_forward_chunk 7+9";
        assert_true(L == 16);
        for (int start = 0; start < L;) {
            const int cl = mode == LM_STEP ? 1 : (start == 0 ? c0 : L - c0);
            for (int b = 0; b < Bt; b++)
                memcpy(tk + (size_t)b * cl, tok + (size_t)b * L + start, (size_t)cl * sizeof(int32_t));
            const int rc = mode == LM_STEP ? mb_model_step(m, s, tk, lg) : mb_model_forward_chunk(m, s, tk, cl, lg);
            if (rc != 0) fail_msg("%s start=%d len=%d: %s", mname, start, cl, mb_error_last());
            for (int b = 0; b < Bt; b++)
                memcpy(out + ((size_t)b * L + start) * Vp, lg + (size_t)b * cl * Vp, (size_t)cl * Vp * sizeof(float));
            start += cl;
        }
        mb_state_free(s);
    }
    char what[96];
    snprintf(what, sizeof what, "sashimi_%s logits, %s", fx->tag, mname);
    const double e = check(what, out, ref, n);
    assert_true(e < GOLDEN_TOL);
    free(out), free(tk), free(lg), free(ref), free(tok);
    mb_st_close(f);
    mb_model_free(m);
}

/* mb_model_forward_backward: the loss and every parameter's gradient */
/* bf16: in bf16 precision (a context of its own) against the bf16.*
 * tensors (golden.py's sa_loss_grads with r = bf16) */
static void run_sashimi_grad(const sa_fixture *fx, int bf16)
{
    char name[160], what[192];
    mb_ctx *ctx = bf16 ? mb_ctx_create("cpu") : g_ctx;
    assert_non_null(ctx);
    if (bf16) assert_int_equal(mb_ctx_set_precision(ctx, MB_PREC_BF16), 0);
    const char *pre = bf16 ? "bf16." : "";
    mb_model *m = load_sashimi(ctx, fx);
    snprintf(name, sizeof name, "sashimi_%s_expected.safetensors", fx->tag);
    mb_st_file *f = open_fixture(name);
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    const size_t M = (size_t)Bt * L;
    int32_t *tok = read_i32(f, "tokens", M), *tgt = read_i32(f, "targets", M);
    int64_t counted = 0;
    for (size_t i = 0; i < M; i++) counted += tgt[i] != MB_IGNORE_INDEX;
    assert_true(counted > 0 && counted < (int64_t)M);

    mb_model_zero_grad(m);
    mb_loss_stats st = {0};
    if (mb_model_forward_backward(m, tok, tgt, Bt, L, &st) != 0)
        fail_msg("mb_model_forward_backward: %s", mb_error_last());
    assert_int_equal(st.count, counted);
    snprintf(name, sizeof name, "%sloss", pre);
    double *loss_ref = read_f64(f, name, 1, NULL, 0);
    const double loss = st.loss_sum / (double)st.count;
    const double e_loss = fabs(loss - loss_ref[0]) / fabs(loss_ref[0]);
    printf("# golden sashimi_%s loss: %.9f, ref %.9f, rel err %.3e\n", fx->tag, loss, loss_ref[0], e_loss);

    const char *worst_name;
    snprintf(what, sizeof what, "sashimi_%s", fx->tag);
    const double worst = grads_vs_fixture(ctx, m, f, pre, what, &worst_name);
    const double bound = bf16 ? GOLDEN_BF16_GRAD_TOL : GOLDEN_GRAD_TOL;
    printf("# golden sashimi_%s gradients (%d tensors): worst rel err %.3e (%s), bound %.0e\n", fx->tag,
           m->params.n, worst, worst_name, bound);
    assert_true(e_loss < bound);
    assert_true(worst < bound);
    free(loss_ref), free(tok), free(tgt);
    mb_st_close(f);
    mb_model_free(m);
    if (bf16) mb_ctx_free(ctx);
}

#define SA_TESTS(NAME, FX)                                                                       \
    static void test_sashimi_##NAME##_forward(void **s) { (void)s; run_sashimi(&FX, LM_FORWARD); } \
    static void test_sashimi_##NAME##_step(void **s) { (void)s; run_sashimi(&FX, LM_STEP); }       \
    static void test_sashimi_##NAME##_chunk(void **s) { (void)s; run_sashimi(&FX, LM_CHUNK); }     \
    static void test_sashimi_##NAME##_grad(void **s) { (void)s; run_sashimi_grad(&FX, 0); }
SA_TESTS(real, SA_REAL)
SA_TESTS(complex, SA_COMPLEX)
SA_TESTS(real_mlp, SA_REAL_MLP)
SA_TESTS(complex_mlp, SA_COMPLEX_MLP)
/* The U-Net in bf16 precision: the forward, chunks (8 + 8 positions from
 * a state, whole periods; 7 + 9, which step to a period's edge) and steps
 * against the script's bf16 logits, every logit a bf16 value, with the
 * LM's bound and reason (run_lm_bf16: 5e-5, under what dropping one
 * rounding point costs; the steps round where the forward does, the
 * pools' step ops included); sampling replayed by steps draw for draw;
 * then the gradients. */
static void test_sashimi_bf16(void **state)
{
    (void)state;
    mb_ctx *ctx = mb_ctx_create("cpu");
    assert_non_null(ctx);
    assert_int_equal(mb_ctx_set_precision(ctx, MB_PREC_BF16), 0);
    mb_model *m = load_sashimi(ctx, &SA_BF16);
    mb_st_file *f = open_fixture("sashimi_bf16_expected.safetensors");
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    if (!tt) fail_msg("%s: no tensor tokens", mb_st_path(f));
    const int Bt = (int)tt->shape[0], L = (int)tt->shape[1];
    int32_t *tok = read_i32(f, "tokens", tt->numel);
    int64_t sl[3];
    size_t n;
    float *ref = read_tensor(f, "bf16.logits", &n, sl, 3);
    const int Vp = (int)sl[2];
    float *out = calloc(n, sizeof(float)), *lg = malloc(n * sizeof(float));
    int32_t *tk = malloc((size_t)Bt * L * sizeof(int32_t));
    assert_true(out && lg && tk);
    if (mb_model_forward(m, tok, Bt, L, NULL, out, NULL)) fail_msg("bf16 forward: %s", mb_error_last());
    for (size_t i = 0; i < n; i++)
        if (mb_bf16_float(mb_bf16_round(out[i])) != out[i]) fail_msg("logit %zu = %.9g is not a bf16 value", i, out[i]);
    assert_true(check("sashimi_bf16 logits, mb_model_forward", out, ref, n) < 5e-5);
    mb_state *st = mb_state_create(m, Bt);
    if (!st) fail_msg("mb_state_create: %s", mb_error_last());
    assert_true(L == 16);
    /* chunks of 8 + 8 (whole periods), then 7 + 9 (steps to a period's
     * edge, a period, a step), then steps alone */
    for (int first = 8; first >= 1; first = first == 8 ? 7 : first == 7 ? 1 : 0) {
        mb_state_reset(st);
        for (int start = 0, cl = first; start < L; start += cl, cl = first == 1 ? 1 : L - start) {
            for (int b = 0; b < Bt; b++)
                memcpy(tk + (size_t)b * cl, tok + (size_t)b * L + start, (size_t)cl * sizeof(int32_t));
            if (mb_model_forward_chunk(m, st, tk, cl, lg)) fail_msg("bf16 chunk at %d: %s", start, mb_error_last());
            for (int b = 0; b < Bt; b++)
                memcpy(out + ((size_t)b * L + start) * Vp, lg + (size_t)b * cl * Vp, (size_t)cl * Vp * sizeof(float));
        }
        char what[64];
        snprintf(what, sizeof what, "sashimi_bf16 logits, %s", first == 8 ? "chunks 8+8" : first == 7 ? "chunks 7+9" : "steps");
        assert_true(check(what, out, ref, n) < 5e-5);
    }
    /* and by mb_model_step itself */
    mb_state_reset(st);
    for (int t = 0; t < L; t++) {
        for (int b = 0; b < Bt; b++) tk[b] = tok[(size_t)b * L + t];
        if (mb_model_step(m, st, tk, lg)) fail_msg("bf16 step t=%d: %s", t, mb_error_last());
        for (int b = 0; b < Bt; b++) memcpy(out + ((size_t)b * L + t) * Vp, lg + (size_t)b * Vp, (size_t)Vp * sizeof(float));
    }
    assert_true(check("sashimi_bf16 logits, mb_model_step", out, ref, n) < 5e-5);
    mb_state_free(st);
    /* sampling draws from those logits: a replay by steps agrees draw for draw */
    const mb_sampler sp[2] = {{.temperature = 1.f, .top_p = 1.f, .seed = 3},
                              {.temperature = 2.f, .top_p = 0.9f, .top_k = 5, .seed = 4}};
    for (int i = 0; i < 2; i++) assert_int_equal(mb_test_sample_replay(m, m, Bt, 40, &sp[i], 0), 0);
    free(out), free(lg), free(tk), free(ref), free(tok);
    mb_st_close(f);
    mb_model_free(m);
    mb_ctx_free(ctx);
    run_sashimi_grad(&SA_BF16, 1);
}

#define SA_UNIT(NAME)                                                                            \
    cmocka_unit_test(test_sashimi_##NAME##_forward), cmocka_unit_test(test_sashimi_##NAME##_step), \
        cmocka_unit_test(test_sashimi_##NAME##_chunk), cmocka_unit_test(test_sashimi_##NAME##_grad)

/* ---- the draw of a generation step ----------------------------------------
 * mb_sample_bits against the generator in Python integers, mb_sample_pick
 * against the rule in float64 by sorting (cases chosen with every margin
 * above 1e-6: the class is exact). */
static int64_t *read_i64(mb_st_file *f, const char *name, size_t want)
{
    const mb_st_tensor *t = mb_st_find(f, name);
    if (!t) fail_msg("%s: no tensor %s", mb_st_path(f), name);
    if (t->numel != want) fail_msg("%s: %s has %zu values, want %zu", mb_st_path(f), name, t->numel, want);
    int64_t *v = malloc((want ? want : 1) * sizeof(int64_t));
    assert_non_null(v);
    assert_int_equal(mb_st_read_i64(f, t, v, want), 0);
    return v;
}

static void test_sample(void **state)
{
    (void)state;
    mb_st_file *f = open_fixture("sample.safetensors");
    int64_t shape[2];
    float *z = read_tensor(f, "logits", NULL, shape, 2);
    const size_t R = (size_t)shape[0], V = (size_t)shape[1];
    float *T = read_expect(f, "temperature", R), *P = read_expect(f, "top_p", R);
    int64_t *seed = read_i64(f, "seed", R), *count = read_i64(f, "count", R), *bits = read_i64(f, "bits", R);
    int32_t *vocab = read_i32(f, "vocab", R), *row = read_i32(f, "row", R), *cls = read_i32(f, "class", R);
    void *scratch = malloc(mb_sample_scratch_bytes((int)V));
    assert_non_null(scratch);
    int nucleus = 0;
    for (size_t r = 0; r < R; r++) {
        const uint32_t b = mb_sample_bits((uint64_t)seed[r], count[r], row[r]);
        assert_int_equal(b, bits[r]);
        const int k = mb_sample_pick(z + r * V, vocab[r], T[r], 0, P[r], (b + 0.5) * 0x1.0p-23, scratch);
        if (k != cls[r]) fail_msg("case %zu (V %d, T %g, top_p %g): class %d, the reference %d", r, vocab[r], T[r], 0, P[r], k, cls[r]);
        nucleus += P[r] < 1.f;
    }
    printf("# golden sample: %zu draws (%d with a nucleus) and their random bits exact\n", R, nucleus);
    free(z), free(T), free(P), free(seed), free(count), free(bits), free(vocab), free(row), free(cls), free(scratch);
    mb_st_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_real),
        cmocka_unit_test(test_scan_complex),
        cmocka_unit_test(test_scan_lanes),
        cmocka_unit_test(test_scan_real_grad),
        cmocka_unit_test(test_scan_complex_grad),
        cmocka_unit_test(test_scan_lanes_grad),
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_lm_real_forward),
        cmocka_unit_test(test_lm_bf16_forward),
        cmocka_unit_test(test_lm_real_step),
        cmocka_unit_test(test_lm_real_chunk),
        cmocka_unit_test(test_lm_complex_forward),
        cmocka_unit_test(test_lm_complex_step),
        cmocka_unit_test(test_lm_complex_chunk),
        cmocka_unit_test(test_lm_real_grad),
        cmocka_unit_test(test_lm_bf16_grad),
        cmocka_unit_test(test_cls),
        cmocka_unit_test(test_cls_bf16),
        cmocka_unit_test(test_sashimi_bf16),
        cmocka_unit_test(test_lm_real_grad_recompute),
        cmocka_unit_test(test_lm_complex_grad),
        cmocka_unit_test(test_lm_complex_grad_recompute),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_bidir),
        cmocka_unit_test(test_bidir_recompute),
        cmocka_unit_test(test_bidir_rc),
        cmocka_unit_test(test_bidir_rc_recompute),
        cmocka_unit_test(test_bidir_chunks),
        cmocka_unit_test(test_bidir_rc_chunks),
        SA_UNIT(real),
        SA_UNIT(complex),
        SA_UNIT(real_mlp),
        SA_UNIT(complex_mlp),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
