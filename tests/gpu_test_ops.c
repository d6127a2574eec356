/* CUDA ops against the CPU reference on fresh random inputs (MB_TEST_SEED
 * replays a run). Each case builds its inputs on the host, runs the op on a
 * CPU context and on a CUDA context (inputs uploaded with mb_dev_upload),
 * and compares ||gpu - cpu|| / ||cpu||.
 *
 * Outputs that an op overwrites are poisoned with NaN (all bits set) on both
 * sides before the call, on the GPU with cudaMemset(0xFF): an element the
 * kernel forgets stays NaN and fails the check. Strided views carry padding
 * columns that must come back bit for bit as they went in. Accumulated
 * outputs (dw += ...) start from the same random values on both sides.
 *
 * Exit code 77 (ctest: skipped) where there is no GPU. */
#include <cuda_runtime.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/params.h"
#include "ops/ops.h"
#include "testutil.h"

/* fp32 against fp32: the two sides round differently (FMA contraction on
 * the GPU, other summation orders), each by a few units of 2^-24 per
 * element, which leaves relative errors of about 1e-7. */
#define TOL 1e-5

static mb_ctx *g_cpu, *g_gpu;

/* ---- helpers ------------------------------------------------------------- */

static void seed_rng(mb_rng *r, uint64_t tag)
{
    mb_rng_seed(r, mb_test_seed() ^ (tag * 0x9E3779B97F4A7C15ull));
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    assert_non_null(p);
    return p;
}

static float *h_uniform(mb_rng *r, size_t n, float lo, float hi)
{
    float *x = xmalloc(n * sizeof *x);
    mb_test_fill(r, x, n, lo, hi);
    return x;
}

static float *h_normal(mb_rng *r, size_t n, float std)
{
    float *x = xmalloc(n * sizeof *x);
    mb_test_fill_normal(r, x, n, std);
    return x;
}

/* NaN with all bits set: what cudaMemset(0xFF) leaves on the GPU. */
static float *h_nan(size_t n)
{
    float *x = xmalloc(n * sizeof *x);
    memset(x, 0xFF, n * sizeof *x);
    return x;
}

static float *h_copy(const float *src, size_t n)
{
    float *x = xmalloc(n * sizeof *x);
    memcpy(x, src, n * sizeof *x);
    return x;
}

static void gpu_ok(void)
{
    if (mb_ctx_check(g_gpu)) printf("# GPU context failed: %s\n", mb_error_last());
    assert_int_equal(mb_ctx_check(g_gpu), 0);
}

static void *d_alloc(size_t bytes)
{
    void *d = mb_dev_alloc_floats(g_gpu, (bytes + 3) / 4, "test buffer");
    if (!d) printf("# %s\n", mb_error_last());
    assert_non_null(d);
    return d;
}

/* A device copy of n floats (or n * 4 bytes of anything). */
static void *d_from(const void *h, size_t n)
{
    void *d = d_alloc(n * 4);
    assert_int_equal(mb_dev_upload(g_gpu, d, h, n * 4), 0);
    return d;
}

/* n floats of NaN (all bits set). The memset runs on the legacy stream, not
 * on the context's: wait for it before the op. */
static void d_poison(void *d, size_t n)
{
    assert_int_equal(cudaMemset(d, 0xFF, n * 4), cudaSuccess);
    assert_int_equal(cudaDeviceSynchronize(), cudaSuccess);
}

static float *d_new_nan(size_t n)
{
    float *d = d_alloc(n * 4);
    d_poison(d, n);
    return d;
}

/* The device buffer's n floats, on the host. */
static float *h_from(const void *d, size_t n)
{
    float *h = xmalloc(n * sizeof *h);
    gpu_ok();
    assert_int_equal(mb_dev_download(g_gpu, h, d, n * 4), 0);
    return h;
}

static void d_free(void *d) { mb_dev_free(g_gpu, d); }

/* ||a - ref|| / ||ref|| over the (M, N) views of two buffers with row
 * stride ld; infinite when a holds a non-finite value the reference does
 * not. */
static double view_err(const float *a, const float *ref, int64_t M, int64_t N, int64_t ld)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double x = a[i * ld + j], y = ref[i * ld + j];
            if (!isfinite(x) && isfinite(y)) return INFINITY;
            num += (x - y) * (x - y);
            den += y * y;
        }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check(const char *what, double err, double tol)
{
    printf("# %-58s rel err %.3e (tol %.0e)\n", what, err, tol);
    assert_true(err < tol);
}

/* Padding columns [N, ld) of M rows: bit for bit as in ref. */
static void check_pad(const float *a, const float *ref, int64_t M, int64_t N, int64_t ld)
{
    if (ld == N) return;
    for (int64_t i = 0; i < M; i++)
        assert_memory_equal(a + i * ld + N, ref + i * ld + N, (size_t)(ld - N) * sizeof *a);
}

/* A view compared, and its padding checked against what went in. */
static void check_view(const char *what, const float *gpu, const float *cpu, const float *before,
                       int64_t M, int64_t N, int64_t ld, double tol)
{
    check(what, view_err(gpu, cpu, M, N, ld), tol);
    check_pad(gpu, before, M, N, ld);
}

/* Bound for sums of K products of values in [-1, 1] done in fp32 in two
 * different orders. A sequential fp32 sum of K random-sign terms has a
 * relative error of about 2^-24 sqrt(K/3) against the result's size (the
 * partial sums grow like sqrt(i) and each add rounds by ~2^-24/sqrt(3) of
 * them), blocked sums less; two independent sides differ by sqrt(2) times
 * that. With a 3x margin, never below TOL: K = 1031 -> TOL, K = 4099 ->
 * TOL, K = 70001 -> 3.9e-5. */
static double tol_sum(int64_t K)
{
    double t = 3.0 * ldexp(1.0, -24) * sqrt(2.0 * (double)K / 3.0);
    return t > TOL ? t : TOL;
}

/* ---- context -------------------------------------------------------------- */

static void test_context(void **state)
{
    (void)state;
    /* a device that is not there: a clear message */
    mb_ctx *bad = mb_ctx_create("cuda:99");
    assert_null(bad);
    printf("# cuda:99 -> %s\n", mb_error_last());
    assert_non_null(strstr(mb_error_last(), "cuda:99: no such device (found"));
    /* an impossible allocation fails cleanly and leaves the context usable;
     * compute-sanitizer counts the deliberate cudaMalloc failure as an API
     * error, so its runs (MB_GPU_TEST_SMALL) leave this to the plain run */
    if (!getenv("MB_GPU_TEST_SMALL")) {
        void *huge = mb_dev_alloc_floats(g_gpu, (size_t)1 << 48, "huge");
        assert_null(huge);
        printf("# 1 PiB allocation -> %s\n", mb_error_last());
        assert_non_null(strstr(mb_error_last(), "out of device memory allocating"));
        assert_int_equal(mb_ctx_check(g_gpu), 0);
    }
    float one = 1.0f, back = 0.0f;
    float *d = d_from(&one, 1);
    mb_axpby(g_gpu, 1, 2.0f, d, 0.0f, d);
    assert_int_equal(mb_dev_download(g_gpu, &back, d, sizeof back), 0);
    gpu_ok();
    assert_true(back == 2.0f);
    /* zeroing */
    assert_int_equal(mb_dev_zero(g_gpu, d, sizeof back), 0);
    assert_int_equal(mb_dev_download(g_gpu, &back, d, sizeof back), 0);
    assert_true(back == 0.0f);
    d_free(d);
}

/* ---- GEMM ------------------------------------------------------------------ */

static void gemm_case(mb_rng *r, int tA, int tB, int M, int N, int K, float alpha, float beta,
                      int tf32, double tol)
{
    int arows = tA ? K : M, acols = tA ? M : K, lda = acols + 3;
    int brows = tB ? N : K, bcols = tB ? K : N, ldb = bcols + 5;
    int ldc = N + 2;
    size_t na = (size_t)arows * lda, nb = (size_t)brows * ldb, nc = (size_t)M * ldc;
    float *A = h_uniform(r, na, -1, 1), *B = h_uniform(r, nb, -1, 1);
    /* beta 0 must overwrite NaN garbage */
    float *C0 = beta == 0.0f ? h_nan(nc) : h_uniform(r, nc, -1, 1);
    float *Cc = h_copy(C0, nc);
    mb_gemm(g_cpu, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, Cc, ldc);
    float *dA = d_from(A, na), *dB = d_from(B, nb), *dC = d_from(C0, nc);
    g_gpu->allow_tf32 = tf32;
    mb_gemm(g_gpu, tA, tB, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
    g_gpu->allow_tf32 = 0;
    float *Cg = h_from(dC, nc);
    char what[128];
    snprintf(what, sizeof what, "gemm%s %c%c %dx%dx%d alpha=%g beta=%g", tf32 ? " TF32" : "",
             tA ? 'T' : 'N', tB ? 'T' : 'N', M, N, K, alpha, beta);
    check_view(what, Cg, Cc, C0, M, N, ldc, tol);
    free(A), free(B), free(C0), free(Cc), free(Cg);
    d_free(dA), d_free(dB), d_free(dC);
}

static void test_gemm(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 101);
    static const int sizes[][3] = {
        {37, 29, 45}, {1, 67, 13}, {5, 1, 70}, {150, 141, 300}, {300, 257, 1031}};
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                const int *z = sizes[s];
                gemm_case(&r, tA, tB, z[0], z[1], z[2], 0.7f, 0.0f, 0, tol_sum(z[2]));
                gemm_case(&r, tA, tB, z[0], z[1], z[2], 1.0f, 1.0f, 0, tol_sum(z[2]));
            }
    /* dW-like: a long sum over tokens, accumulated */
    gemm_case(&r, 1, 0, 64, 48, 70001, 1.0f, 1.0f, 0, tol_sum(70001));
    /* degenerate: K = 0 and alpha = 0 leave beta * C (zeros for beta 0) */
    gemm_case(&r, 0, 1, 7, 9, 0, 1.0f, 0.0f, 0, TOL);
    gemm_case(&r, 1, 0, 7, 9, 0, 1.0f, 0.5f, 0, TOL);
    gemm_case(&r, 0, 0, 7, 9, 11, 0.0f, 0.0f, 0, TOL);
    gemm_case(&r, 0, 0, 7, 9, 11, 0.0f, 1.0f, 0, TOL);
    /* TF32 keeps 10 mantissa bits: rounded to nearest, each input moves by
     * up to 2^-11 of itself, so each product carries ~2^-11 sqrt(2/3) = 4e-4
     * of random relative error and so does the sum of K random-sign
     * products; truncated inputs would add a bias of at most ~1e-3 (every
     * product shrinks). 3e-3 bounds both. Then the flag goes back to 0 and
     * the same product must be full fp32 again (the handle's math mode
     * follows the flag per call). */
    gemm_case(&r, 0, 1, 256, 192, 1024, 1.0f, 0.0f, 1, 3e-3);
    gemm_case(&r, 0, 1, 256, 192, 1024, 1.0f, 0.0f, 0, tol_sum(1024));
}

/* ---- linear: bias broadcast, column sums, the composite layer ---------------- */

static void colsum_case(mb_rng *r, int M, int N, int ld)
{
    size_t nx = (size_t)M * ld;
    float *x = h_uniform(r, nx, -1, 1), *out0 = h_uniform(r, (size_t)N, -1, 1);
    float *oc = h_copy(out0, (size_t)N);
    mb_colsum_acc(g_cpu, M, N, x, ld, oc);
    float *dx = d_from(x, nx), *dout = d_from(out0, (size_t)N);
    mb_colsum_acc(g_gpu, M, N, dx, ld, dout);
    float *og = h_from(dout, (size_t)N);
    char what[96];
    /* both sides add in double and round once */
    snprintf(what, sizeof what, "colsum_acc %dx%d ld %d (accumulated)", M, N, ld);
    check(what, view_err(og, oc, 1, N, N), TOL);
    free(x), free(out0), free(oc), free(og);
    d_free(dx), d_free(dout);
}

static void test_linear(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 102);
    colsum_case(&r, 301, 133, 137);
    colsum_case(&r, 1, 5, 5);
    colsum_case(&r, 100003, 77, 80); /* many row chunks */
    colsum_case(&r, 3, 600001, 600001); /* more columns than the scratch: segments */

    {   /* bias_add over a strided view: pads untouched */
        const int M = 301, N = 133, ld = 137;
        size_t ny = (size_t)M * ld;
        float *y0 = h_uniform(&r, ny, -1, 1), *bias = h_uniform(&r, (size_t)N, -1, 1);
        float *yc = h_copy(y0, ny);
        mb_bias_add(g_cpu, M, N, bias, yc, ld);
        float *dy = d_from(y0, ny), *db = d_from(bias, (size_t)N);
        mb_bias_add(g_gpu, M, N, db, dy, ld);
        float *yg = h_from(dy, ny);
        check_view("bias_add 301x133 ld 137", yg, yc, y0, M, N, ld, TOL);
        free(y0), free(bias), free(yc), free(yg);
        d_free(dy), d_free(db);
    }

    /* the layer, composed of the dispatched ops */
    /* and for at most MB_LINEAR_FEW_ROWS rows the forward's own kernel:
     * float4 and scalar loads, with and without bias */
    static const int shapes[][3] = {{23, 31, 19}, {4099, 256, 96}, {1, 64, 256}, {8, 256, 128},
                                    {16, 37, 19}, {5, 128, 512}, {2, 36, 9}};
    for (int s = 0; s < 7; s++) {
        const int M = shapes[s][0], in = shapes[s][1], out = shapes[s][2], with_bias = s < 2 || s % 2 == 0;
        /* odd shapes: rows 16-byte aligned (float4 loads) or not */
        const int ldx = in + (s % 2 ? 4 : 5), ldy = out + 7, lddx = in + 2, lddy = out + 3;
        size_t nx = (size_t)M * ldx, ny = (size_t)M * ldy, ndx = (size_t)M * lddx,
               ndy = (size_t)M * lddy, nw = (size_t)out * in;
        float *x = h_uniform(&r, nx, -1, 1), *W = h_uniform(&r, nw, -1, 1);
        float *bias = h_uniform(&r, (size_t)out, -1, 1), *dy = h_uniform(&r, ndy, -1, 1);
        float *dW0 = h_uniform(&r, nw, -1, 1), *db0 = h_uniform(&r, (size_t)out, -1, 1);
        float *dx1 = h_uniform(&r, ndx, -1, 1);
        float *d_x = d_from(x, nx), *d_W = d_from(W, nw), *d_b = d_from(bias, (size_t)out);
        float *d_dy = d_from(dy, ndy);
        char what[96];

        float *y0 = h_nan(ny), *yc = h_copy(y0, ny);
        mb_linear_fwd(g_cpu, M, in, out, x, ldx, W, with_bias ? bias : NULL, yc, ldy);
        float *d_y = d_new_nan(ny);
        mb_linear_fwd(g_gpu, M, in, out, d_x, ldx, d_W, with_bias ? d_b : NULL, d_y, ldy);
        float *yg = h_from(d_y, ny);
        snprintf(what, sizeof what, "linear_fwd %dx%d->%d%s", M, in, out, with_bias ? " bias" : "");
        check_view(what, yg, yc, y0, M, out, ldy, tol_sum(in));

        /* dx overwritten (beta 0), dW and dbias accumulated */
        float *dx0 = h_nan(ndx), *dxc = h_copy(dx0, ndx);
        float *dWc = h_copy(dW0, nw), *dbc = h_copy(db0, (size_t)out);
        mb_linear_bwd(g_cpu, M, in, out, x, ldx, W, dy, lddy, dxc, lddx, 0.0f, dWc, dbc);
        float *d_dx = d_new_nan(ndx), *d_dW = d_from(dW0, nw), *d_db = d_from(db0, (size_t)out);
        mb_linear_bwd(g_gpu, M, in, out, d_x, ldx, d_W, d_dy, lddy, d_dx, lddx, 0.0f, d_dW, d_db);
        float *dxg = h_from(d_dx, ndx), *dWg = h_from(d_dW, nw), *dbg = h_from(d_db, (size_t)out);
        snprintf(what, sizeof what, "linear_bwd %dx%d->%d dx", M, in, out);
        check_view(what, dxg, dxc, dx0, M, in, lddx, tol_sum(out));
        snprintf(what, sizeof what, "linear_bwd %dx%d->%d dW (accumulated)", M, in, out);
        check(what, view_err(dWg, dWc, 1, (int64_t)nw, (int64_t)nw), tol_sum(M));
        snprintf(what, sizeof what, "linear_bwd %dx%d->%d dbias (accumulated)", M, in, out);
        check(what, view_err(dbg, dbc, 1, out, out), TOL);

        /* dx_beta 1 adds onto dx; dW, dbias NULL */
        float *dx1c = h_copy(dx1, ndx);
        mb_linear_bwd(g_cpu, M, in, out, x, ldx, W, dy, lddy, dx1c, lddx, 1.0f, NULL, NULL);
        float *d_dx1 = d_from(dx1, ndx);
        mb_linear_bwd(g_gpu, M, in, out, d_x, ldx, d_W, d_dy, lddy, d_dx1, lddx, 1.0f, NULL,
                      NULL);
        float *dx1g = h_from(d_dx1, ndx);
        snprintf(what, sizeof what, "linear_bwd %dx%d->%d dx_beta=1", M, in, out);
        check_view(what, dx1g, dx1c, dx1, M, in, lddx, tol_sum(out));

        free(x), free(W), free(bias), free(dy), free(dW0), free(db0), free(dx1), free(y0);
        free(yc), free(yg), free(dx0), free(dxc), free(dWc), free(dbc), free(dxg), free(dWg);
        free(dbg), free(dx1c), free(dx1g);
        d_free(d_x), d_free(d_W), d_free(d_b), d_free(d_dy), d_free(d_y), d_free(d_dx);
        d_free(d_dW), d_free(d_db), d_free(d_dx1);
    }
}

/* ---- conv1d ------------------------------------------------------------------ */

/* bf16 precision (both contexts, test_conv1d_bf16): y and dx stored
 * rounded. Both sides round fp32 values that agree to their last bits, so
 * only elements at a rounding boundary can differ (by 2^-8 of themselves):
 * the bound is loose for those and every value must be a bf16 value. */
static int g_conv_bf16;

static void check16(const char *what, const float *gpu, const float *cpu, const float *before, int64_t M,
                    int64_t N, int64_t ld)
{
    if (!g_conv_bf16) {
        check_view(what, gpu, cpu, before, M, N, ld, TOL);
        return;
    }
    int64_t off = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++)
            off += mb_bf16_keep(gpu[i * ld + j]) != gpu[i * ld + j] || mb_bf16_keep(cpu[i * ld + j]) != cpu[i * ld + j];
    printf("# %-58s %lld values not bf16\n", what, (long long)off);
    assert_true(off == 0);
    check_view(what, gpu, cpu, before, M, N, ld, 1e-3);
}

/* silu: the conv with its SiLU fused (the mixer's op); its backward
 * recomputes the conv's output, and the CPU uses dy as scratch, so each side
 * gets its own copy of dy */
static void conv_case(mb_rng *r, int B, int L, int D, int K, int with_prev, int with_bias, int silu)
{
    const int ldx = D + 3, ldy = D + 5, lddx = D + 1, lddy = D + 6;
    const int64_t rows = (int64_t)B * L;
    size_t nx = (size_t)rows * ldx, ny = (size_t)rows * ldy, ndx = (size_t)rows * lddx;
    size_t ndy = (size_t)rows * lddy, nw = (size_t)D * K, np = (size_t)B * (K - 1) * D;
    int use_prev = with_prev && K > 1;
    float *x = h_uniform(r, nx, -1, 1), *w = h_uniform(r, nw, -1, 1);
    float *bias = h_uniform(r, (size_t)D, -1, 1), *prev = h_uniform(r, np, -1, 1);
    float *dy = h_uniform(r, ndy, -1, 1);
    float *dw0 = h_uniform(r, nw, -1, 1), *db0 = h_uniform(r, (size_t)D, -1, 1);
    if (g_conv_bf16) { /* the values the mixer gives the CPU's conv (the GPU's rounds them itself: test_conv1d_bf16_reads) */
        for (size_t i = 0; i < nx; i++) x[i] = mb_bf16_keep(x[i]);
        for (size_t i = 0; i < np; i++) prev[i] = mb_bf16_keep(prev[i]);
        for (size_t i = 0; i < ndy; i++) dy[i] = mb_bf16_keep(dy[i]);
    }
    float *d_x = d_from(x, nx), *d_w = d_from(w, nw), *d_bias = d_from(bias, (size_t)D);
    float *d_prev = d_from(prev, np), *d_dy = d_from(dy, ndy);
    const float *cp = use_prev ? prev : NULL, *gp = use_prev ? d_prev : NULL;
    char tag[64], what[128];
    snprintf(tag, sizeof tag, "B%d L%d D%d K%d%s%s%s", B, L, D, K, use_prev ? " prev" : "",
             with_bias ? " bias" : "", silu ? " silu" : "");

    /* forward */
    float *y0 = h_nan(ny), *yc = h_copy(y0, ny);
    mb_conv1d_fwd(g_cpu, B, L, D, K, x, ldx, w, with_bias ? bias : NULL, cp, silu, yc, ldy);
    float *d_y = d_new_nan(ny);
    mb_conv1d_fwd(g_gpu, B, L, D, K, d_x, ldx, d_w, with_bias ? d_bias : NULL, gp, silu, d_y, ldy);
    float *yg = h_from(d_y, ny);
    snprintf(what, sizeof what, "conv1d_fwd %s%s", tag, g_conv_bf16 ? " bf16" : "");
    check16(what, yg, yc, y0, rows, D, ldy);

    /* backward: dx, dprev overwritten; dw, dbias accumulated (sums over B L
     * in double on both sides) */
    float *dx0 = h_nan(ndx), *dxc = h_copy(dx0, ndx), *dpc = h_nan(np);
    float *dwc = h_copy(dw0, nw), *dbc = h_copy(db0, (size_t)D);
    float *dyc = h_copy(dy, ndy);
    /* with prev, a chunk of a longer sequence: the next chunk's share of
     * the last K-1 rows' dx comes in too */
    float *dnext = h_uniform(r, np, -1, 1), *d_dnext = d_from(dnext, np);
    mb_conv1d_bwd(g_cpu, B, L, D, K, x, ldx, w, with_bias ? bias : NULL, cp, silu, dyc, lddy, dxc, lddx,
                  dwc, with_bias ? dbc : NULL, use_prev ? dpc : NULL, use_prev ? dnext : NULL);
    free(dyc);
    float *d_dx = d_new_nan(ndx), *d_dp = d_new_nan(np);
    float *d_dw = d_from(dw0, nw), *d_db = d_from(db0, (size_t)D);
    mb_conv1d_bwd(g_gpu, B, L, D, K, d_x, ldx, d_w, with_bias ? d_bias : NULL, gp, silu, d_dy, lddy,
                  d_dx, lddx, d_dw, with_bias ? d_db : NULL, use_prev ? d_dp : NULL, use_prev ? d_dnext : NULL);
    free(dnext);
    d_free(d_dnext);
    float *dxg = h_from(d_dx, ndx), *dwg = h_from(d_dw, nw), *dbg = h_from(d_db, (size_t)D);
    float *dpg = h_from(d_dp, np);
    snprintf(what, sizeof what, "conv1d_bwd dx %s%s", tag, g_conv_bf16 ? " bf16" : "");
    check16(what, dxg, dxc, dx0, rows, D, lddx);
    snprintf(what, sizeof what, "conv1d_bwd dw (accumulated) %s", tag);
    check(what, view_err(dwg, dwc, 1, (int64_t)nw, (int64_t)nw), TOL);
    snprintf(what, sizeof what, "conv1d_bwd dbias (accumulated) %s", tag);
    check(what, view_err(dbg, dbc, 1, D, D), TOL); /* untouched when not asked */
    if (use_prev) {
        snprintf(what, sizeof what, "conv1d_bwd dprev %s", tag);
        check(what, view_err(dpg, dpc, 1, (int64_t)np, (int64_t)np), TOL);
    }

    /* state update: plain copies, so exactly equal */
    if (K > 1 && !silu) {
        float *sc = h_copy(prev, np);
        mb_conv1d_state_update(g_cpu, B, L, D, K, x, ldx, sc);
        float *d_s = d_from(prev, np);
        mb_conv1d_state_update(g_gpu, B, L, D, K, d_x, ldx, d_s);
        float *sg = h_from(d_s, np);
        snprintf(what, sizeof what, "conv1d_state_update %s (exact)", tag);
        printf("# %-58s %s\n", what, memcmp(sg, sc, np * 4) ? "DIFFERS" : "equal");
        assert_memory_equal(sg, sc, np * 4);
        free(sc), free(sg);
        d_free(d_s);
    }

    /* one step with the state (mb_conv1d_step: generation at many rows):
     * the forward's y and the updated state (plain copies: exact) */
    if (L == 1 && use_prev) {
        float *sc = h_copy(prev, np), *ys = h_copy(y0, ny);
        mb_conv1d_step(g_cpu, B, D, K, x, ldx, w, with_bias ? bias : NULL, sc, silu, ys, ldy);
        float *d_s = d_from(prev, np), *d_ys = d_new_nan(ny);
        mb_conv1d_step(g_gpu, B, D, K, d_x, ldx, d_w, with_bias ? d_bias : NULL, d_s, silu, d_ys, ldy);
        float *sg = h_from(d_s, np), *ysg = h_from(d_ys, ny);
        snprintf(what, sizeof what, "conv1d_step y %s%s", tag, g_conv_bf16 ? " bf16" : "");
        check16(what, ysg, ys, y0, rows, D, ldy);
        snprintf(what, sizeof what, "conv1d_step state %s (exact)", tag);
        printf("# %-58s %s\n", what, memcmp(sg, sc, np * 4) ? "DIFFERS" : "equal");
        assert_memory_equal(sg, sc, np * 4);
        free(sc), free(ys), free(sg), free(ysg);
        d_free(d_s), d_free(d_ys);
    }

    free(x), free(w), free(bias), free(prev), free(dy), free(dw0), free(db0), free(y0), free(yc);
    free(yg), free(dx0), free(dxc), free(dpc), free(dwc), free(dbc), free(dxg), free(dwg);
    free(dbg), free(dpg);
    d_free(d_x), d_free(d_w), d_free(d_bias), d_free(d_prev), d_free(d_dy), d_free(d_y);
    d_free(d_dx), d_free(d_dp), d_free(d_dw), d_free(d_db);
}

static void test_conv1d(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 103);
    /* K 9 and 12 take two tap groups in the dw reduction */
    static const int Ks[] = {1, 2, 4, 5, 9, 12};
    /* K 4 takes the run kernels (16 rows a thread), any other K the
     * per-element ones; each with and without the fused SiLU */
    for (int silu = 0; silu < 2; silu++) {
        for (size_t i = 0; i < sizeof Ks / sizeof Ks[0]; i++) {
            conv_case(&r, 3, 13, 37, Ks[i], 1, 1, silu);
            conv_case(&r, 3, 13, 37, Ks[i], 0, 0, silu);
        }
        conv_case(&r, 2, 2, 37, 5, 1, 1, silu);     /* L < K-1: the state keeps old rows */
        conv_case(&r, 2, 2, 37, 4, 1, 1, silu);     /* the same in a run */
        conv_case(&r, 4, 1, 64, 4, 1, 1, silu);     /* one generation step (and mb_conv1d_step) */
        conv_case(&r, 5, 1, 300, 2, 1, 0, silu);    /* the same, K 2, no bias */
        conv_case(&r, 3, 1, 37, 5, 1, 1, silu);
        conv_case(&r, 2, 4099, 301, 4, 1, 1, silu); /* many runs and row chunks in dw */
        /* more runs than the reduction's row blocks: each thread takes
         * several (too slow under the sanitizers) */
        if (!getenv("MB_GPU_TEST_SMALL")) conv_case(&r, 3, 6001, 1000, 4, 1, 1, silu);
    }
}

/* bf16 precision: y and dx rounded in the kernels' stores (the run
 * kernels at K = 4, the per-element ones otherwise), dw, dbias and dprev
 * fp32 */
static void test_conv1d_bf16(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 107);
    assert_int_equal(mb_ctx_set_precision(g_cpu, MB_PREC_BF16), 0);
    assert_int_equal(mb_ctx_set_precision(g_gpu, MB_PREC_BF16), 0);
    g_conv_bf16 = 1;
    for (int silu = 0; silu < 2; silu++) {
        conv_case(&r, 3, 13, 37, 4, 1, 1, silu);
        conv_case(&r, 3, 13, 37, 5, 1, 1, silu);
        conv_case(&r, 2, 4099, 301, 4, 1, 1, silu);
        conv_case(&r, 4, 1, 64, 4, 1, 1, silu);
    }
    g_conv_bf16 = 0;
    assert_int_equal(mb_ctx_set_precision(g_cpu, MB_PREC_FP32), 0);
    assert_int_equal(mb_ctx_set_precision(g_gpu, MB_PREC_FP32), 0);
}

/* bf16 precision on the GPU reads the conv's inputs (x, the state, dy) as
 * the nearest bf16 values, so the mixer leaves them unrounded there: given
 * unrounded ones, the forward, the backward (dx, dprev, and dw, dbias in
 * their fixed-order sums) and the step must give, bit for bit, what they
 * give when the inputs arrive rounded (the step's state too: it keeps what
 * it read). The run kernels (K 4) and the per-element ones (K 3). */
static void conv_reads_case(mb_rng *r, int B, int L, int D, int K)
{
    const int64_t rows = (int64_t)B * L;
    const size_t nx = (size_t)rows * D, np = (size_t)B * (K - 1) * D, nw = (size_t)D * K;
    float *xin[2], *pin[2], *dyin[2];
    xin[0] = h_uniform(r, nx, -1, 1), pin[0] = h_uniform(r, np, -1, 1), dyin[0] = h_uniform(r, nx, -1, 1);
    xin[1] = h_copy(xin[0], nx), pin[1] = h_copy(pin[0], np), dyin[1] = h_copy(dyin[0], nx);
    size_t changed = 0;
    for (size_t i = 0; i < nx; i++) changed += (xin[1][i] = mb_bf16_keep(xin[0][i])) != xin[0][i];
    for (size_t i = 0; i < np; i++) changed += (pin[1][i] = mb_bf16_keep(pin[0][i])) != pin[0][i];
    for (size_t i = 0; i < nx; i++) changed += (dyin[1][i] = mb_bf16_keep(dyin[0][i])) != dyin[0][i];
    assert_true(changed > 0); /* else this proves nothing */
    float *w = h_uniform(r, nw, -1, 1), *bias = h_uniform(r, (size_t)D, -1, 1);
    float *d_w = d_from(w, nw), *d_b = d_from(bias, (size_t)D);
    enum { Y, DX, DP, DW, DB, SY, SS, NO };
    static const char *name[NO] = {"y", "dx", "dprev", "dw", "dbias", "step y", "step state"};
    const size_t len[NO] = {nx, nx, np, nw, (size_t)D, (size_t)B * D, np};
    float *out[2][NO];
    for (int v = 0; v < 2; v++) {
        float *d_x = d_from(xin[v], nx), *d_p = d_from(pin[v], np), *d_dy = d_from(dyin[v], nx);
        float *d_y = d_new_nan(nx), *d_dx = d_new_nan(nx), *d_dp = d_new_nan(np);
        float *d_dw = d_from(w, nw), *d_db = d_from(bias, (size_t)D), *d_sy = d_new_nan((size_t)B * D);
        mb_conv1d_fwd(g_gpu, B, L, D, K, d_x, D, d_w, d_b, d_p, 1, d_y, D);
        mb_conv1d_bwd(g_gpu, B, L, D, K, d_x, D, d_w, d_b, d_p, 1, d_dy, D, d_dx, D, d_dw, d_db, d_dp, NULL);
        /* the step on the first row of each sequence, from the same state */
        mb_conv1d_step(g_gpu, B, D, K, d_x, L * D, d_w, d_b, d_p, 1, d_sy, D);
        float *res[NO] = {d_y, d_dx, d_dp, d_dw, d_db, d_sy, d_p};
        for (int k = 0; k < NO; k++) out[v][k] = h_from(res[k], len[k]);
        d_free(d_x), d_free(d_p), d_free(d_dy), d_free(d_y), d_free(d_dx), d_free(d_dp), d_free(d_dw);
        d_free(d_db), d_free(d_sy);
    }
    for (int k = 0; k < NO; k++) {
        size_t diff = 0;
        for (size_t i = 0; i < len[k]; i++) diff += memcmp(&out[0][k][i], &out[1][k][i], 4) != 0;
        printf("# conv1d bf16 reads B%d L%d D%d K%d %-12s %zu of %zu differ\n", B, L, D, K, name[k], diff, len[k]);
        assert_true(diff == 0);
        free(out[0][k]), free(out[1][k]);
    }
    for (int v = 0; v < 2; v++) free(xin[v]), free(pin[v]), free(dyin[v]);
    free(w), free(bias);
    d_free(d_w), d_free(d_b);
}

static void test_conv1d_bf16_reads(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 109);
    assert_int_equal(mb_ctx_set_precision(g_gpu, MB_PREC_BF16), 0);
    conv_reads_case(&r, 3, 13, 37, 4);
    conv_reads_case(&r, 2, 700, 301, 4);
    conv_reads_case(&r, 3, 13, 37, 3);
    assert_int_equal(mb_ctx_set_precision(g_gpu, MB_PREC_FP32), 0);
}

/* ---- activations and vector ops ------------------------------------------------ */

static const char *act_name[] = {"silu", "softplus", "negexp", "gelu"};

static void act_case(mb_rng *r, mb_act act, int M, int N, int ldx, int ldy)
{
    /* NEGEXP maps A_log, which stays modest; the others cover softplus's
     * x > 20 branch too */
    float lo = act == MB_ACT_NEGEXP ? -6.0f : -30.0f, hi = act == MB_ACT_NEGEXP ? 3.0f : 30.0f;
    const int lddy = N + 1, lddx = ldx;
    size_t nx = (size_t)M * ldx, ny = (size_t)M * ldy, ndy = (size_t)M * lddy;
    float *x = h_uniform(r, nx, lo, hi), *dy = h_uniform(r, ndy, -1, 1);
    float *d_x = d_from(x, nx), *d_dy = d_from(dy, ndy);
    char what[96];

    float *y0 = h_nan(ny), *yc = h_copy(y0, ny);
    mb_act_fwd(g_cpu, act, M, N, x, ldx, yc, ldy);
    float *d_y = d_new_nan(ny);
    mb_act_fwd(g_gpu, act, M, N, d_x, ldx, d_y, ldy);
    float *yg = h_from(d_y, ny);
    snprintf(what, sizeof what, "act_fwd %s %dx%d", act_name[act], M, N);
    check_view(what, yg, yc, y0, M, N, ldy, TOL);

    /* in place: y aliases x */
    float *xi = h_copy(x, nx);
    mb_act_fwd(g_cpu, act, M, N, xi, ldx, xi, ldx);
    float *d_xi = d_from(x, nx);
    mb_act_fwd(g_gpu, act, M, N, d_xi, ldx, d_xi, ldx);
    float *xig = h_from(d_xi, nx);
    snprintf(what, sizeof what, "act_fwd %s %dx%d in place", act_name[act], M, N);
    check_view(what, xig, xi, x, M, N, ldx, TOL);

    /* backward, dx overwritten */
    size_t ndx = (size_t)M * lddx;
    float *dx0 = h_nan(ndx), *dxc = h_copy(dx0, ndx);
    mb_act_bwd(g_cpu, act, M, N, x, ldx, dy, lddy, dxc, lddx);
    float *d_dx = d_new_nan(ndx);
    mb_act_bwd(g_gpu, act, M, N, d_x, ldx, d_dy, lddy, d_dx, lddx);
    float *dxg = h_from(d_dx, ndx);
    snprintf(what, sizeof what, "act_bwd %s %dx%d", act_name[act], M, N);
    check_view(what, dxg, dxc, dx0, M, N, lddx, TOL);

    /* dx aliases dy */
    float *dyc = h_copy(dy, ndy);
    mb_act_bwd(g_cpu, act, M, N, x, ldx, dyc, lddy, dyc, lddy);
    mb_act_bwd(g_gpu, act, M, N, d_x, ldx, d_dy, lddy, d_dy, lddy);
    float *dyg = h_from(d_dy, ndy);
    snprintf(what, sizeof what, "act_bwd %s %dx%d dx = dy", act_name[act], M, N);
    check_view(what, dyg, dyc, dy, M, N, lddy, TOL);

    free(x), free(dy), free(y0), free(yc), free(yg), free(xi), free(xig), free(dx0), free(dxc);
    free(dxg), free(dyc), free(dyg);
    d_free(d_x), d_free(d_dy), d_free(d_y), d_free(d_xi), d_free(d_dx);
}

static void test_act(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 104);
    for (int a = 0; a < 4; a++) {
        act_case(&r, (mb_act)a, 19, 43, 47, 50);
        act_case(&r, (mb_act)a, 1000, 1024, 1024, 1024);
    }
}

/* the row shift (UpPool's causal shift, its adjoint, strided copies) */
static void test_shift_rows(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 105);
    const int B = 3, L = 37, C = 45, lds = 50, ldd = 47;
    const size_t ns = (size_t)B * L * lds, nd = (size_t)B * L * ldd;
    float *src = h_uniform(&r, ns, -1, 1), *d_src = d_from(src, ns);
    for (int shift = -1; shift <= 1; shift++) {
        float *before = h_nan(nd), *cpu = h_copy(before, nd);
        mb_shift_rows(g_cpu, B, L, C, shift, src, lds, cpu, ldd);
        float *d_dst = d_new_nan(nd);
        mb_shift_rows(g_gpu, B, L, C, shift, d_src, lds, d_dst, ldd);
        float *gpu = h_from(d_dst, nd);
        char what[64];
        snprintf(what, sizeof what, "shift_rows %+d", shift);
        check_view(what, gpu, cpu, before, (int64_t)B * L, C, ldd, 1e-12);
        free(before), free(cpu), free(gpu);
        d_free(d_dst);
    }
    free(src);
    d_free(d_src);
}

/* the bidirectional model's sequence reversal (with and without a column
 * permutation, storing or adding) and the tokens' reverse complement: bit
 * for bit the CPU's */
static void test_flip_rows(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 106);
    const int B = 3, L = 37, C = 45, lds = 50, ldd = 47;
    const size_t ns = (size_t)B * L * lds, nd = (size_t)B * L * ldd;
    float *src = h_uniform(&r, ns, -1, 1), *d_src = d_from(src, ns);
    int32_t perm[45];
    for (int j = 0; j < C; j++) perm[j] = (j * 7 + 3) % C;
    int32_t *d_perm = d_from(perm, (size_t)C);
    for (int k = 0; k < 4; k++) {
        const int permuted = k & 1;
        const float beta = k & 2 ? 1.f : 0.f;
        float *before = beta != 0.f ? h_uniform(&r, nd, -1, 1) : h_nan(nd), *cpu = h_copy(before, nd);
        mb_flip_rows(g_cpu, B, L, C, permuted ? perm : NULL, src, lds, beta, cpu, ldd);
        float *d_dst = d_from(before, nd);
        mb_flip_rows(g_gpu, B, L, C, permuted ? d_perm : NULL, d_src, lds, beta, d_dst, ldd);
        float *gpu = h_from(d_dst, nd);
        char what[64];
        snprintf(what, sizeof what, "flip_rows%s, beta %g", permuted ? " permuted" : "", beta);
        check_view(what, gpu, cpu, before, (int64_t)B * L, C, ldd, 1e-12);
        free(before), free(cpu), free(gpu);
        d_free(d_dst);
    }
    int32_t tok[3 * 37], comp[6] = {3, 2, 1, 0, 5, 4}, out[3 * 37], back[3 * 37];
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)mb_rng_below(&r, 6);
    mb_tokens_rc(g_cpu, B, L, tok, comp, out);
    int32_t *d_tok = d_from(tok, (size_t)B * L), *d_comp = d_from(comp, 6), *d_out = d_from(tok, (size_t)B * L);
    mb_tokens_rc(g_gpu, B, L, d_tok, d_comp, d_out);
    gpu_ok();
    assert_int_equal(mb_dev_download(g_gpu, back, d_out, sizeof back), 0);
    assert_memory_equal(back, out, sizeof out);
    assert_int_equal(out[L - 1], comp[tok[0]]);
    printf("# tokens_rc: %d tokens equal\n", B * L);
    free(src);
    d_free(d_src), d_free(d_perm), d_free(d_tok), d_free(d_comp), d_free(d_out);
}

static void test_vector_ops(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 105);
    char what[96];
    {
        /* bf16 precision's rounding in place (mb_bf16_round_rows): bit for
         * bit the CPU's, ties to even, infinities and NaN kept, the padding
         * between rows untouched */
        const int R = 37, C = 1000, ld = 1003;
        const size_t n = (size_t)R * ld;
        float *x = h_uniform(&r, n, -3, 3);
        const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0x00000001u,
                                    0x7f7fffffu, 0x80000000u};
        for (size_t k = 0; k < sizeof special / sizeof *special; k++) memcpy(&x[k * 7], &special[k], 4);
        for (int i = 0; i < R; i++)
            for (int j = C; j < ld; j++) x[(size_t)i * ld + j] = NAN;
        float *d_x = d_from(x, n), *xc = h_copy(x, n);
        mb_bf16_round_rows(g_cpu, R, C, xc, ld);
        mb_bf16_round_rows(g_gpu, R, C, d_x, ld);
        assert_int_equal(mb_ctx_check(g_gpu), 0);
        float *xg = h_from(d_x, n);
        assert_memory_equal(xg, xc, n * sizeof(float));
        size_t changed = 0;
        for (size_t k = 0; k < n; k++) changed += memcmp(&xc[k], &x[k], 4) != 0;
        assert_true(changed > (size_t)R * C / 2); /* the rounding did round */
        printf("# bf16_round_rows %dx%d ld %d: GPU bit for bit the CPU's (%zu values changed)\n", R, C, ld, changed);
        /* the copying form (mb_bf16_round_copy: bf16 precision's copy of
         * dout): into rows of another stride, the source untouched, the
         * destination's padding untouched */
        const int ldy = 1001;
        const size_t ny = (size_t)R * ldy;
        float *d_src = d_from(x, n), *d_y = d_new_nan(ny);
        mb_bf16_round_copy(g_gpu, R, C, d_src, ld, d_y, ldy);
        assert_int_equal(mb_ctx_check(g_gpu), 0);
        float *yg = h_from(d_y, ny), *srcg = h_from(d_src, n);
        assert_memory_equal(srcg, x, n * sizeof(float));
        for (int i = 0; i < R; i++) {
            assert_memory_equal(yg + (size_t)i * ldy, xc + (size_t)i * ld, (size_t)C * sizeof(float));
            for (int j = C; j < ldy; j++) assert_true(isnan(yg[(size_t)i * ldy + j]));
        }
        printf("# bf16_round_copy %dx%d ld %d -> %d: the in-place rounding's values, bit for bit\n", R, C, ld, ldy);
        free(x), free(xc), free(xg), free(yg), free(srcg);
        d_free(d_x), d_free(d_src), d_free(d_y);
    }
    {
        const size_t n = 100003;
        float *x = h_uniform(&r, n, -2, 2), *y = h_uniform(&r, n, -2, 2);
        float *d_x = d_from(x, n), *d_y = d_from(y, n);
        float *yc = h_copy(y, n);
        mb_axpby(g_cpu, n, 0.75f, x, -1.5f, yc);
        mb_axpby(g_gpu, n, 0.75f, d_x, -1.5f, d_y);
        float *yg = h_from(d_y, n);
        check("axpby a=0.75 b=-1.5", view_err(yg, yc, 1, (int64_t)n, (int64_t)n), TOL);
        /* b = 0 overwrites NaN */
        float *zc = h_nan(n), *d_z = d_new_nan(n);
        mb_axpby(g_cpu, n, 0.75f, x, 0.0f, zc);
        mb_axpby(g_gpu, n, 0.75f, d_x, 0.0f, d_z);
        float *zg = h_from(d_z, n);
        check("axpby b=0 over NaN", view_err(zg, zc, 1, (int64_t)n, (int64_t)n), TOL);
        /* y = b y through a = 0 and x = y, as gradient clipping calls it */
        mb_axpby(g_cpu, n, 0.0f, yc, 0.3f, yc);
        mb_axpby(g_gpu, n, 0.0f, d_y, 0.3f, d_y);
        free(yg);
        yg = h_from(d_y, n);
        check("axpby a=0 x=y (scale in place)", view_err(yg, yc, 1, (int64_t)n, (int64_t)n), TOL);
        free(x), free(y), free(yc), free(yg), free(zc), free(zg);
        d_free(d_x), d_free(d_y), d_free(d_z);
    }
    {
        /* 10M: both sides sum exact double squares in double, the CPU in 64
         * sequential chunks, the GPU in trees: each within n * 2^-53 = 1e-9
         * of the truth at the very worst */
        const size_t n = 10000019;
        float *x = h_normal(&r, n, 1.0f);
        float *d_x = d_from(x, n);
        double sc = mb_sumsq(g_cpu, n, x), sg = mb_sumsq(g_gpu, n, d_x);
        gpu_ok();
        snprintf(what, sizeof what, "sumsq n=%zu (%.6f)", n, sc);
        check(what, fabs(sg - sc) / sc, 1e-9);
        assert_true(mb_sumsq(g_gpu, 0, d_x) == 0.0);
        double s5 = 0;
        for (int i = 0; i < 5; i++) s5 += (double)x[i] * x[i];
        assert_true(fabs(mb_sumsq(g_gpu, 5, d_x) - s5) <= 1e-15 * s5);

        assert_int_equal(mb_count_nonfinite(g_gpu, n, d_x), 0);
        size_t bad[] = {17, 5000000, n - 1, 123457, 9999999};
        float vals[] = {NAN, INFINITY, -INFINITY, -NAN, INFINITY};
        for (int i = 0; i < 5; i++) x[bad[i]] = vals[i];
        x[3] = FLT_MAX;
        x[4] = -0.0f;
        x[5] = FLT_MIN / 2; /* subnormal: finite */
        d_free(d_x);
        d_x = d_from(x, n);
        size_t kc = mb_count_nonfinite(g_cpu, n, x), kg = mb_count_nonfinite(g_gpu, n, d_x);
        gpu_ok();
        printf("# count_nonfinite n=%zu: cpu %zu gpu %zu\n", n, kc, kg);
        assert_int_equal(kc, 5);
        assert_int_equal(kg, kc);
        assert_int_equal(mb_count_nonfinite(g_gpu, 18, d_x), 1);
        assert_int_equal(mb_count_nonfinite(g_gpu, 0, d_x), 0);
        free(x);
        d_free(d_x);
    }
}

/* ---- norms ---------------------------------------------------------------------- */

/* Inputs around `offset` (LayerNorm with |mean| >> std); w, b may be left
 * out. Backward runs on the CPU's saved statistics on both sides. */
static void norm_case(mb_rng *r, int layer, int M, int C, float offset, int with_w)
{
    const char *name = layer ? "layernorm" : "rmsnorm";
    const float eps = 1e-5f;
    size_t n = (size_t)M * C;
    float *x = h_uniform(r, n, offset - 1, offset + 1), *dy = h_uniform(r, n, -1, 1);
    float *w = h_uniform(r, (size_t)C, 0.5f, 1.5f), *b = h_uniform(r, (size_t)C, -0.5f, 0.5f);
    float *dw0 = h_uniform(r, (size_t)C, -1, 1), *db0 = h_uniform(r, (size_t)C, -1, 1);
    float *dx1 = h_uniform(r, n, -1, 1);
    const float *cw = with_w ? w : NULL, *cb = with_w ? b : NULL;
    float *d_x = d_from(x, n), *d_dy = d_from(dy, n), *d_w = d_from(w, (size_t)C);
    float *d_b = d_from(b, (size_t)C);
    const float *gw = with_w ? d_w : NULL, *gb = with_w ? d_b : NULL;
    char tag[64], what[128];
    snprintf(tag, sizeof tag, "%s %dx%d%s%s", name, M, C, with_w ? "" : " no w/b",
             offset != 0.0f ? " offset" : "");

    /* forward */
    float *yc = h_nan(n), *rc = h_nan((size_t)M), *mc = h_nan((size_t)M);
    float *d_y = d_new_nan(n), *d_r = d_new_nan((size_t)M), *d_m = d_new_nan((size_t)M);
    if (layer) {
        mb_layernorm_fwd(g_cpu, M, C, x, cw, cb, eps, yc, mc, rc, 0);
        mb_layernorm_fwd(g_gpu, M, C, d_x, gw, gb, eps, d_y, d_m, d_r, 0);
    } else {
        mb_rmsnorm_fwd(g_cpu, M, C, x, cw, eps, yc, rc, 0);
        mb_rmsnorm_fwd(g_gpu, M, C, d_x, gw, eps, d_y, d_r, 0);
    }
    float *yg = h_from(d_y, n), *rg = h_from(d_r, (size_t)M), *mg = h_from(d_m, (size_t)M);
    {
        /* r16 (bf16 precision's stored xn): the same kernel's y, each value
         * rounded to bf16 in its store, bit for bit */
        float *d_y16 = d_new_nan(n);
        if (layer) mb_layernorm_fwd(g_gpu, M, C, d_x, gw, gb, eps, d_y16, d_m, d_r, 1);
        else mb_rmsnorm_fwd(g_gpu, M, C, d_x, gw, eps, d_y16, d_r, 1);
        float *y16 = h_from(d_y16, n);
        size_t off = 0;
        for (size_t i = 0; i < n; i++) {
            const float k = mb_bf16_keep(yg[i]);
            off += memcmp(&k, &y16[i], 4) != 0;
        }
        printf("# %-58s %zu of %zu not bf16(y)\n", tag, off, n);
        assert_true(off == 0);
        free(y16);
        d_free(d_y16);
    }
    snprintf(what, sizeof what, "%s fwd y", tag);
    check(what, view_err(yg, yc, 1, (int64_t)n, (int64_t)n), TOL);
    snprintf(what, sizeof what, "%s fwd saved rstd", tag);
    check(what, view_err(rg, rc, 1, M, M), TOL);
    if (layer) {
        /* the mean may be near 0: measured against its scale plus the std */
        double e = 0;
        for (int i = 0; i < M; i++)
            e = fmax(e, fabs((double)mg[i] - mc[i]) / (fabs((double)mc[i]) + 1.0 / rc[i]));
        snprintf(what, sizeof what, "%s fwd saved mean (max, vs |mean| + std)", tag);
        check(what, e, TOL);
    }
    /* the CPU's statistics for the backward, on both sides */
    float *d_rc = d_from(rc, (size_t)M), *d_mc = d_from(mc, (size_t)M);

    /* backward: dx overwritten, dw (db) accumulated */
    float *dxc = h_nan(n), *dwc = h_copy(dw0, (size_t)C), *dbc = h_copy(db0, (size_t)C);
    float *d_dx = d_new_nan(n), *d_dw = d_from(dw0, (size_t)C), *d_db = d_from(db0, (size_t)C);
    if (layer) {
        mb_layernorm_bwd(g_cpu, M, C, x, cw, mc, rc, dy, dxc, 0.0f, dwc, dbc);
        mb_layernorm_bwd(g_gpu, M, C, d_x, gw, d_mc, d_rc, d_dy, d_dx, 0.0f, d_dw, d_db);
    } else {
        mb_rmsnorm_bwd(g_cpu, M, C, x, cw, rc, dy, dxc, 0.0f, dwc);
        mb_rmsnorm_bwd(g_gpu, M, C, d_x, gw, d_rc, d_dy, d_dx, 0.0f, d_dw);
    }
    float *dxg = h_from(d_dx, n), *dwg = h_from(d_dw, (size_t)C), *dbg = h_from(d_db, (size_t)C);
    snprintf(what, sizeof what, "%s bwd dx", tag);
    check(what, view_err(dxg, dxc, 1, (int64_t)n, (int64_t)n), TOL);
    snprintf(what, sizeof what, "%s bwd dw (accumulated)", tag);
    check(what, view_err(dwg, dwc, 1, C, C), TOL);
    if (layer) {
        snprintf(what, sizeof what, "%s bwd db (accumulated)", tag);
        check(what, view_err(dbg, dbc, 1, C, C), TOL);
    }

    /* dx_beta 1 adds onto dx; dw, db NULL */
    float *dx1c = h_copy(dx1, n), *d_dx1 = d_from(dx1, n);
    if (layer) {
        mb_layernorm_bwd(g_cpu, M, C, x, cw, mc, rc, dy, dx1c, 1.0f, NULL, NULL);
        mb_layernorm_bwd(g_gpu, M, C, d_x, gw, d_mc, d_rc, d_dy, d_dx1, 1.0f, NULL, NULL);
    } else {
        mb_rmsnorm_bwd(g_cpu, M, C, x, cw, rc, dy, dx1c, 1.0f, NULL);
        mb_rmsnorm_bwd(g_gpu, M, C, d_x, gw, d_rc, d_dy, d_dx1, 1.0f, NULL);
    }
    float *dx1g = h_from(d_dx1, n);
    snprintf(what, sizeof what, "%s bwd dx_beta=1", tag);
    check(what, view_err(dx1g, dx1c, 1, (int64_t)n, (int64_t)n), TOL);

    /* dx aliases dy; dw still sees the original dy */
    float *d_dw2 = d_from(dw0, (size_t)C), *d_db2 = d_from(db0, (size_t)C);
    float *d_dya = d_from(dy, n);
    if (layer)
        mb_layernorm_bwd(g_gpu, M, C, d_x, gw, d_mc, d_rc, d_dya, d_dya, 0.0f, d_dw2, d_db2);
    else
        mb_rmsnorm_bwd(g_gpu, M, C, d_x, gw, d_rc, d_dya, d_dya, 0.0f, d_dw2);
    float *dag = h_from(d_dya, n), *dw2g = h_from(d_dw2, (size_t)C);
    float *db2g = h_from(d_db2, (size_t)C);
    snprintf(what, sizeof what, "%s bwd dx = dy", tag);
    check(what, view_err(dag, dxc, 1, (int64_t)n, (int64_t)n), TOL);
    snprintf(what, sizeof what, "%s bwd dx = dy: dw", tag);
    check(what, view_err(dw2g, dwc, 1, C, C), TOL);
    if (layer) {
        snprintf(what, sizeof what, "%s bwd dx = dy: db", tag);
        check(what, view_err(db2g, dbc, 1, C, C), TOL);
    }

    free(x), free(dy), free(w), free(b), free(dw0), free(db0), free(dx1), free(yc), free(rc);
    free(mc), free(yg), free(rg), free(mg), free(dxc), free(dwc), free(dbc), free(dxg);
    free(dwg), free(dbg), free(dx1c), free(dx1g), free(dag), free(dw2g);
    free(db2g);
    d_free(d_x), d_free(d_dy), d_free(d_w), d_free(d_b), d_free(d_y), d_free(d_r), d_free(d_m);
    d_free(d_rc), d_free(d_mc), d_free(d_dx), d_free(d_dw), d_free(d_db), d_free(d_dx1);
    d_free(d_dw2), d_free(d_db2), d_free(d_dya);
}

static void test_norms(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 106);
    for (int layer = 0; layer < 2; layer++) {
        norm_case(&r, layer, 17, 67, 0.0f, 1);
        norm_case(&r, layer, 17, 67, 0.0f, 0);
        norm_case(&r, layer, 257, 131, 0.0f, 1);
        norm_case(&r, layer, 2048, 2560, 0.0f, 1); /* long rows */
        norm_case(&r, layer, 70001, 64, 0.0f, 1);  /* many row chunks in dw */
    }
    norm_case(&r, 1, 64, 1024, 50.0f, 1); /* |mean| = 50 x std */
}

/* ---- fused block step ----------------------------------------------------------
 * mb_block_step on the GPU against its CPU reference over `steps` steps with
 * the states carried: the output of each step and both states at the end.
 * Shapes cover the float4 and scalar GEMV paths (d % 4), d_state as a power
 * of two <= 32 (lane-group reduction), above 32 and odd (shared atomics),
 * real and complex, RMSNorm and LayerNorm, one row and many. */
/* which GPU kernels block_step_case runs (MB_STEP_*), and whether with bf16
 * copies of the projections */
static int g_step_path = MB_STEP_AUTO, g_step_bf16;

/* a bf16 copy (device) of the n floats of d, and the host's w rounded to
 * the same values: the GPU reads the copy, its fp32 weights stay unrounded
 * (so a kernel that read them would be caught), the CPU gets the rounded */
static uint16_t *bf16_copy(const float *d, float *w, size_t n)
{
    uint16_t *b = d_alloc((n + 8) * sizeof(uint16_t));
    mb_to_bf16(g_gpu, n, d, b);
    assert_int_equal(mb_ctx_check(g_gpu), 0);
    for (size_t i = 0; i < n; i++) w[i] = mb_bf16_float(mb_bf16_round(w[i]));
    return b;
}

static void block_step_case(mb_rng *r, int B, int d, int Di, int N, int K, int R, int cplx, int ln,
                            int steps, int io)
{
    const int nbc = cplx ? 2 * N : N, xd = R + 2 * nbc;
    mb_block_step_params p = {.batch = B, .d_model = d, .d_inner = Di, .d_state = N, .d_conv = K,
                              .dt_rank = R, .is_complex = cplx, .eps = 1e-5f, .gpu_path = g_step_path};
    /* weights at the scale of mamba_ssm's init so activations stay O(1) */
    float *nw = h_uniform(r, d, 0.5f, 1.5f), *nb = h_uniform(r, d, -0.2f, 0.2f);
    float *in_proj = h_uniform(r, (size_t)2 * Di * d, -1.f / sqrtf(d), 1.f / sqrtf(d));
    float *conv_w = h_uniform(r, (size_t)Di * K, -0.5f, 0.5f), *conv_b = h_uniform(r, Di, -0.2f, 0.2f);
    float *x_proj = h_uniform(r, (size_t)xd * Di, -1.f / sqrtf(Di), 1.f / sqrtf(Di));
    float *dt_w = h_uniform(r, (size_t)Di * R, -1.f / sqrtf(R), 1.f / sqrtf(R));
    float *dt_b = h_uniform(r, Di, -3.f, 0.f);
    float *A_log = h_uniform(r, (size_t)Di * N, -1.f, 2.5f), *A_imag = h_uniform(r, (size_t)Di * N, 0.f, 10.f);
    float *D = h_uniform(r, Di, 0.5f, 1.5f);
    float *out_proj = h_uniform(r, (size_t)d * Di, -1.f / sqrtf(Di), 1.f / sqrtf(Di));
    const size_t ncs = (size_t)B * (K - 1) * Di, nss = (size_t)B * Di * nbc, nh = (size_t)B * d;
    float *cs = h_uniform(r, ncs + 1, -1, 1), *ss = h_uniform(r, nss, -1, 1);
    float *d_nw = d_from(nw, d), *d_nb = d_from(nb, d), *d_in = d_from(in_proj, (size_t)2 * Di * d);
    float *d_cw = d_from(conv_w, (size_t)Di * K), *d_cb = d_from(conv_b, Di);
    float *d_xp = d_from(x_proj, (size_t)xd * Di), *d_dtw = d_from(dt_w, (size_t)Di * R);
    float *d_dtb = d_from(dt_b, Di), *d_Al = d_from(A_log, (size_t)Di * N);
    float *d_Ai = d_from(A_imag, (size_t)Di * N), *d_D = d_from(D, Di);
    float *d_op = d_from(out_proj, (size_t)d * Di);
    float *d_cs = d_from(cs, ncs + 1), *d_ss = d_from(ss, nss);
    mb_block_step_params pc = p, pg = p;
    uint16_t *b_in = NULL, *b_xp = NULL, *b_op = NULL;
    if (g_step_bf16) {
        b_in = bf16_copy(d_in, in_proj, (size_t)2 * Di * d);
        b_xp = bf16_copy(d_xp, x_proj, (size_t)xd * Di);
        b_op = bf16_copy(d_op, out_proj, (size_t)d * Di);
        pg.in_proj_bf16 = b_in, pg.x_proj_bf16 = b_xp, pg.out_proj_bf16 = b_op;
    }
    pc.norm_w = nw, pc.norm_b = ln ? nb : NULL, pc.in_proj = in_proj, pc.conv_w = conv_w;
    pc.conv_b = conv_b, pc.x_proj = x_proj, pc.dt_w = dt_w, pc.dt_b = dt_b, pc.A_log = A_log;
    pc.A_imag = cplx ? A_imag : NULL, pc.D = D, pc.out_proj = out_proj, pc.conv_state = cs;
    pc.ssm_state = ss;
    pg.norm_w = d_nw, pg.norm_b = ln ? d_nb : NULL, pg.in_proj = d_in, pg.conv_w = d_cw;
    pg.conv_b = d_cb, pg.x_proj = d_xp, pg.dt_w = d_dtw, pg.dt_b = d_dtb, pg.A_log = d_Al;
    pg.A_imag = cplx ? d_Ai : NULL, pg.D = d_D, pg.out_proj = d_op, pg.conv_state = d_cs;
    pg.ssm_state = d_ss;
    mb_arena ws, gws;
    assert_int_equal(mb_arena_init(&ws, g_cpu, mb_block_step_workspace(g_cpu, &p)), 0);
    assert_int_equal(mb_arena_init(&gws, g_gpu, mb_block_step_workspace(g_gpu, &p)), 0);
    char what[160];
    snprintf(what, sizeof what, "block_step%s%s B=%d d=%d Di=%d N=%d K=%d R=%d %s %s",
             g_step_path == MB_STEP_SPLIT   ? " split"
             : g_step_path == MB_STEP_FUSED ? " fused"
                                            : "",
             g_step_bf16 ? " bf16" : "", B, d, Di, N, K, R, cplx ? "complex" : "real", ln ? "layernorm" : "rmsnorm");
    /* io: rows from an embedding table, out with a row stride, and (io 1)
     * out2 = out + add2 with strides of their own (the U-Net's fused step);
     * the padding between rows must come back untouched (NaN as poisoned) */
    const int V = 11, ldo = io ? 3 * d : d, ld2 = io ? d + 5 : d, lda = io ? 2 * d : d;
    float *emb = io ? h_uniform(r, (size_t)V * d, -2, 2) : NULL;
    float *d_emb = io ? d_from(emb, (size_t)V * d) : NULL;
    if (io) {
        snprintf(what + strlen(what), sizeof what - strlen(what), io == 1 ? " io" : " tokens, ld_out");
        pc.ld_out = pg.ld_out = ldo, pc.ld_out2 = pg.ld_out2 = ld2, pc.ld_add2 = pg.ld_add2 = lda;
    }
    double worst = 0, worst2 = 0;
    for (int t = 0; t < steps; t++) {
        const size_t no = (size_t)B * ldo, n2 = (size_t)B * ld2, na = (size_t)B * lda;
        float *h = io ? NULL : h_uniform(r, nh, -2, 2), *d_h = io ? NULL : d_from(h, nh);
        int32_t *tok = xmalloc((size_t)B * sizeof *tok);
        for (int b = 0; b < B; b++) tok[b] = (int32_t)mb_rng_below(r, (uint32_t)V);
        int32_t *d_tok = d_from(tok, (size_t)B);
        float *add2 = h_uniform(r, na, -1, 1), *d_add2 = d_from(add2, na);
        float *oc = h_nan(no), *d_o = d_new_nan(no), *o2c = h_nan(n2), *d_o2 = d_new_nan(n2);
        if (io) {
            pc.tokens = tok, pc.embed = emb;
            pg.tokens = d_tok, pg.embed = d_emb;
        }
        if (io == 1) {
            pc.out2 = o2c, pc.add2 = add2;
            pg.out2 = d_o2, pg.add2 = d_add2;
        }
        mb_block_step(g_cpu, &pc, h, oc, &ws);
        assert_int_equal(mb_ctx_check(g_cpu), 0);
        mb_block_step(g_gpu, &pg, d_h, d_o, &gws);
        assert_int_equal(mb_ctx_check(g_gpu), 0);
        float *og = h_from(d_o, no), *o2g = h_from(d_o2, n2);
        double e = view_err(og, oc, B, d, ldo);
        check_pad(og, oc, B, d, ldo);
        if (e > worst) worst = e;
        if (io == 1) {
            e = view_err(o2g, o2c, B, d, ld2);
            check_pad(o2g, o2c, B, d, ld2);
            if (e > worst2) worst2 = e;
        }
        free(h), free(tok), free(add2), free(oc), free(og), free(o2c), free(o2g);
        d_free(d_h), d_free(d_tok), d_free(d_add2), d_free(d_o), d_free(d_o2);
    }
    check(what, worst, tol_sum(d > Di ? d : Di));
    if (io == 1) check("  out2 = out + add2", worst2, tol_sum(d > Di ? d : Di));
    free(emb);
    d_free(d_emb);
    /* the states after the steps; the float past the conv state is a
     * guard the kernel must not touch */
    float *csg = h_from(d_cs, ncs + 1), *ssg = h_from(d_ss, nss);
    check("  conv state after the steps", view_err(csg, cs, 1, (int64_t)ncs, (int64_t)ncs), TOL);
    assert_memory_equal(csg + ncs, cs + ncs, sizeof(float));
    check("  ssm state after the steps", view_err(ssg, ss, 1, (int64_t)nss, (int64_t)nss), tol_sum(Di));
    free(csg), free(ssg);
    mb_arena_free(&ws);
    mb_arena_free(&gws);
    free(nw), free(nb), free(in_proj), free(conv_w), free(conv_b), free(x_proj), free(dt_w);
    free(dt_b), free(A_log), free(A_imag), free(D), free(out_proj), free(cs), free(ss);
    d_free(d_nw), d_free(d_nb), d_free(d_in), d_free(d_cw), d_free(d_cb), d_free(d_xp);
    d_free(d_dtw), d_free(d_dtb), d_free(d_Al), d_free(d_Ai), d_free(d_D), d_free(d_op);
    d_free(d_cs), d_free(d_ss);
    d_free(b_in), d_free(b_xp), d_free(b_op);
}

/* the shapes a forced kernel form (g_step_path) runs: batch over a pass's
 * rows, complex, LayerNorm, odd sizes, d_state 24 and 64, no conv state,
 * io, 64 rows, and batch 1 (the one-row kernels) */
static void block_step_forced(mb_rng *r)
{
    block_step_case(r, 6, 256, 512, 16, 4, 16, 1, 1, 3, 0);
    block_step_case(r, 2, 64, 128, 16, 4, 4, 0, 0, 3, 1);
    block_step_case(r, 2, 18, 37, 5, 3, 2, 1, 1, 4, 1);
    block_step_case(r, 3, 40, 80, 24, 4, 3, 0, 0, 3, 0);
    block_step_case(r, 2, 32, 64, 64, 2, 3, 0, 0, 3, 0);
    block_step_case(r, 1, 16, 32, 8, 1, 1, 0, 0, 3, 0);
    block_step_case(r, 64, 128, 256, 16, 4, 8, 0, 0, 2, 0);
    block_step_case(r, 1, 18, 37, 5, 3, 2, 1, 1, 3, 1);
    /* ten groups of SP_MR rows, the last of one row */
    block_step_case(r, 37, 40, 80, 16, 4, 3, 1, 1, 2, 2);
}

static void test_block_step(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 120);
    block_step_case(&r, 1, 64, 128, 16, 4, 4, 0, 0, 5, 0);    /* the audio U-Net's outer blocks */
    block_step_case(&r, 2, 64, 128, 16, 4, 4, 0, 0, 3, 1);    /* the same, fused pool exchange */
    block_step_case(&r, 1, 64, 128, 16, 4, 4, 1, 0, 5, 0);    /* S4D-Lin */
    block_step_case(&r, 3, 256, 512, 16, 4, 16, 0, 1, 3, 0);  /* the DNA model's width, LayerNorm */
    block_step_case(&r, 64, 128, 256, 16, 4, 8, 0, 0, 2, 0); /* generation at batch 64 */
    block_step_case(&r, 2, 18, 37, 5, 3, 2, 1, 1, 4, 1);      /* odd sizes: scalar loads, atomics */
    block_step_case(&r, 2, 32, 64, 64, 2, 3, 0, 0, 3, 0);     /* N > 32 */
    block_step_case(&r, 1, 16, 32, 8, 1, 1, 0, 0, 3, 0);      /* K = 1: no conv state */
    /* the split kernels of wide models: the 130m shape (AUTO picks them),
     * then forced on the shapes above (batch over a pass's rows, complex,
     * LayerNorm, odd sizes, d_state 24 and 64, no conv state, io) */
    block_step_case(&r, 1, 768, 1536, 16, 4, 48, 0, 0, 3, 0);
    g_step_path = MB_STEP_SPLIT;
    block_step_forced(&r);
    /* x_proj's columns split over 4 warps (sp_x_split) with a weight at a
     * time (d_inner 1030: rows of no whole 16-byte vectors, a short last
     * slice) */
    block_step_case(&r, 1, 40, 1030, 16, 4, 3, 0, 0, 2, 0);
    /* bf16 copies of the projections (mb_model_set_bf16): the 130m shape,
     * odd sizes (a weight at a time), batch over a pass */
    g_step_bf16 = 1;
    block_step_case(&r, 1, 768, 1536, 16, 4, 48, 0, 0, 3, 0);
    block_step_case(&r, 2, 18, 37, 5, 3, 2, 1, 1, 3, 1);
    block_step_case(&r, 1, 18, 37, 5, 3, 2, 1, 1, 3, 1);
    block_step_case(&r, 6, 256, 512, 16, 4, 16, 0, 1, 2, 0);
    g_step_bf16 = 0;
    /* the split kernels over several groups of rows (the 130m shape at 16
     * rows, as the op's AUTO takes it), with tokens and a row stride but no
     * out2, complex and LayerNorm, d_state 64 */
    block_step_case(&r, 16, 768, 1536, 16, 4, 48, 0, 0, 2, 0);
    g_step_path = MB_STEP_SPLIT;
    block_step_case(&r, 9, 18, 37, 5, 3, 2, 1, 1, 3, 2);
    block_step_case(&r, 10, 32, 64, 64, 2, 3, 1, 0, 3, 2);
    g_step_path = MB_STEP_FUSED; /* the one-block kernel still runs a wide model */
    block_step_case(&r, 1, 768, 1536, 16, 4, 48, 0, 0, 2, 0);
    g_step_path = MB_STEP_AUTO;
}

/* ---- a stack of block steps -------------------------------------------------------
 * mb_stack_step on the GPU against the CPU's (mb_block_step layer after
 * layer) over `steps` steps with the states carried: the last layer's
 * output at each step, every layer's states at the end. Layer 0 reads its
 * row from an embedding table (tok) or from h. Where the GPU runs the
 * shapes in its one cluster kernel (mb_stack_step_fits, returned), the odd
 * steps read its packed weights (mb_stack_step_pack), the even ones the
 * weights themselves. */
static int stack_step_case(mb_rng *r, int B, int nl, int d, int Di, int K, int R, int cplx, int tok, int steps)
{
    const int N = 16, nbc = cplx ? 2 * N : N, xd = R + 2 * nbc, V = 7;
    mb_block_step_params pc[4], pg[4];
    float *hw[4][12];
    void *dw[4][12];
    assert_true(nl <= 4);
    const size_t ncs = (size_t)B * (K - 1) * Di, nss = (size_t)B * Di * nbc;
    for (int l = 0; l < nl; l++) {
        const size_t n[12] = {(size_t)d, (size_t)2 * Di * d, (size_t)Di * K, (size_t)Di, (size_t)xd * Di,
                              (size_t)Di * R, (size_t)Di, (size_t)Di * N, (size_t)Di * N, (size_t)Di,
                              (size_t)d * Di, 0};
        const float lo[11] = {0.5f, -1.f / sqrtf(d), -0.5f, -0.2f, -1.f / sqrtf(Di), -1.f / sqrtf(R), -3.f, -1.f, 0.f, 0.5f, -1.f / sqrtf(Di)};
        const float hi[11] = {1.5f, 1.f / sqrtf(d), 0.5f, 0.2f, 1.f / sqrtf(Di), 1.f / sqrtf(R), 0.f, 2.5f, 10.f, 1.5f, 1.f / sqrtf(Di)};
        for (int k = 0; k < 11; k++) {
            hw[l][k] = h_uniform(r, n[k], lo[k], hi[k]);
            dw[l][k] = d_from(hw[l][k], n[k]);
        }
        /* the states: conv (K-1, Di) with a guard float after it, then ssm */
        hw[l][11] = h_uniform(r, ncs + 1 + nss, -1, 1);
        dw[l][11] = d_from(hw[l][11], ncs + 1 + nss);
        mb_block_step_params p = {.batch = B, .d_model = d, .d_inner = Di, .d_state = N, .d_conv = K,
                                  .dt_rank = R, .is_complex = cplx, .eps = 1e-5f};
        pc[l] = pg[l] = p;
        float *const *w = hw[l];
        pc[l].norm_w = w[0], pc[l].in_proj = w[1], pc[l].conv_w = w[2], pc[l].conv_b = w[3], pc[l].x_proj = w[4];
        pc[l].dt_w = w[5], pc[l].dt_b = w[6], pc[l].A_log = w[7], pc[l].A_imag = cplx ? w[8] : NULL;
        pc[l].D = w[9], pc[l].out_proj = w[10], pc[l].conv_state = w[11], pc[l].ssm_state = w[11] + ncs + 1;
        void *const *g = dw[l];
        pg[l].norm_w = g[0], pg[l].in_proj = g[1], pg[l].conv_w = g[2], pg[l].conv_b = g[3], pg[l].x_proj = g[4];
        pg[l].dt_w = g[5], pg[l].dt_b = g[6], pg[l].A_log = g[7], pg[l].A_imag = cplx ? g[8] : NULL;
        pg[l].D = g[9], pg[l].out_proj = g[10], pg[l].conv_state = g[11];
        pg[l].ssm_state = (float *)g[11] + ncs + 1;
    }
    float *emb = h_uniform(r, (size_t)V * d, -2, 2), *d_emb = d_from(emb, (size_t)V * d);
    const int fits = mb_stack_step_fits(g_gpu, nl, pg);
    const size_t npk = mb_stack_step_pack_floats(g_gpu, nl, pg);
    assert_int_equal(npk > 0, fits); /* a pack where the cluster kernel runs, none elsewhere */
    float *d_pk = npk ? d_new_nan(npk) : NULL;
    const float *pk[4] = {NULL};
    if (npk) {
        assert_int_equal(mb_stack_step_pack(g_gpu, nl, pg, d_pk), 0);
        for (int l = 0; l < nl; l++) pk[l] = pg[l].stk_pack, pg[l].stk_pack = NULL;
        assert_ptr_equal(pk[nl - 1], d_pk + (nl - 1) * (npk / nl));
    }
    mb_arena ws, gws;
    assert_int_equal(mb_arena_init(&ws, g_cpu, mb_stack_step_workspace(g_cpu, nl, pc)), 0);
    assert_int_equal(mb_arena_init(&gws, g_gpu, mb_stack_step_workspace(g_gpu, nl, pg)), 0);
    double worst = 0;
    for (int t = 0; t < steps; t++) {
        int32_t tk[64];
        assert_true(B <= 64);
        for (int b = 0; b < B; b++) tk[b] = (int32_t)mb_rng_below(r, (uint32_t)V);
        int32_t *d_tk = d_from(tk, (size_t)B);
        const size_t nh = (size_t)B * d;
        float *h = tok ? NULL : h_uniform(r, nh, -2, 2), *d_h = tok ? NULL : d_from(h, nh);
        pc[0].tokens = tok ? tk : NULL, pc[0].embed = tok ? emb : NULL;
        pg[0].tokens = tok ? d_tk : NULL, pg[0].embed = tok ? d_emb : NULL;
        float *oc = h_nan(nh), *d_o = d_new_nan(nh);
        mb_stack_step(g_cpu, nl, pc, h, oc, &ws);
        assert_int_equal(mb_ctx_check(g_cpu), 0);
        for (int l = 0; l < nl; l++) pg[l].stk_pack = t % 2 ? pk[l] : NULL;
        mb_stack_step(g_gpu, nl, pg, d_h, d_o, &gws);
        assert_int_equal(mb_ctx_check(g_gpu), 0);
        float *og = h_from(d_o, nh);
        const double e = view_err(og, oc, B, d, d);
        if (e > worst) worst = e;
        free(h), free(oc), free(og);
        d_free(d_h), d_free(d_o), d_free(d_tk);
    }
    char what[160];
    snprintf(what, sizeof what, "stack_step%s B=%d, %d layers d=%d Di=%d K=%d R=%d %s %s",
             fits ? (steps > 1 ? " (cluster, packed)" : " (cluster)") : "", B, nl, d, Di, K, R, cplx ? "complex" : "real",
             tok ? "tokens" : "h");
    check(what, worst, tol_sum(Di) * nl);
    for (int l = 0; l < nl; l++) {
        float *sg = h_from(dw[l][11], ncs + 1 + nss);
        check("  conv state after the steps", view_err(sg, hw[l][11], 1, (int64_t)ncs, (int64_t)ncs), TOL);
        assert_memory_equal(sg + ncs, hw[l][11] + ncs, sizeof(float)); /* the guard */
        check("  ssm state after the steps",
              view_err(sg + ncs + 1, hw[l][11] + ncs + 1, 1, (int64_t)nss, (int64_t)nss), tol_sum(Di) * nl);
        free(sg);
        for (int k = 0; k < 12; k++) free(hw[l][k]), d_free(dw[l][k]);
    }
    mb_arena_free(&ws);
    mb_arena_free(&gws);
    free(emb);
    d_free(d_emb);
    d_free(d_pk);
    return fits;
}

static void test_stack_step(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 130);
    /* layer by layer on every GPU: complex A, d_model 64 */
    assert_int_equal(stack_step_case(&r, 1, 2, 64, 128, 4, 4, 1, 1, 3), 0);
    assert_int_equal(stack_step_case(&r, 3, 3, 64, 128, 4, 4, 0, 0, 3), 0);
    /* the cluster kernel: the DNA model's width (16 blocks), mamba-dna's
     * default (d_model 128: 8 blocks), expand 1 (4 blocks), K 2 and dt_rank
     * 64, K 3 and dt_rank 1, d_model 128 with 16 blocks; one row, then 3,
     * 5, 2 and 11 rows, and 27 and 61 (past a wave of one-row clusters:
     * several rows a cluster, the last cluster's partly past B), then the
     * narrower clusters' several-row kernels, which AUTO takes too: on a
     * 132-SM H100 or H200, 20 and 40 rows of 8-block clusters (2 and 4 rows
     * a cluster), 64 rows of 4-block ones (2), 30 rows of 16 blocks at
     * d_model 128 (8, the last cluster 6), and 33 rows of the DNA width (6
     * rows a cluster, the last 3; 61 rows took 10 a cluster where the GPU
     * holds 7 clusters of 16, the last 1). Under racecheck (hours at these
     * shapes) two small ones instead: the kernel's every phase and both
     * parities of its staged weights, one and two rows, at the narrowest
     * cluster (4 blocks), a step gathering the weights and one reading their
     * pack (MB_CUDA_STK_ROWS=2 or 4 runs them at that many rows a cluster, the
     * residuals' reduce-scatter). Columns: B, layers, d, Di, K, R, complex,
     * tokens, steps. */
    static const int full[][9] = {{1, 3, 256, 512, 4, 16, 0, 1, 4}, {1, 4, 128, 256, 4, 8, 0, 1, 4},
                                  {1, 2, 128, 128, 2, 64, 0, 0, 3}, {1, 1, 256, 512, 3, 1, 0, 0, 5},
                                  {3, 2, 256, 512, 4, 16, 0, 1, 3}, {5, 3, 128, 256, 4, 8, 0, 0, 3},
                                  {2, 2, 128, 512, 4, 8, 0, 1, 3},  {11, 2, 256, 512, 4, 16, 0, 1, 3},
                                  {27, 2, 256, 512, 4, 16, 0, 1, 2}, {61, 2, 256, 512, 3, 16, 0, 0, 2},
                                  {20, 2, 128, 256, 4, 8, 0, 1, 2},  {40, 2, 128, 256, 3, 8, 0, 0, 2},
                                  {64, 2, 128, 128, 4, 8, 0, 1, 2},  {30, 2, 128, 512, 4, 8, 0, 1, 2},
                                  {33, 2, 256, 512, 4, 16, 0, 1, 2}};
    static const int small[][9] = {{1, 2, 128, 128, 4, 8, 0, 1, 2}, {2, 3, 128, 128, 3, 8, 0, 0, 2}};
    const int sm = getenv("MB_GPU_TEST_SMALL") != NULL, cases = sm ? 2 : (int)(sizeof full / sizeof full[0]);
    int ran = 0;
    for (int i = 0; i < cases; i++) {
        const int *c = sm ? small[i] : full[i];
        ran += stack_step_case(&r, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]);
    }
    if (ran < cases) {
        /* thread-block clusters need compute 9.0+: these ran layer by layer */
        printf("# stack step: %d of %d cluster shapes not run in a cluster kernel on this GPU\n", cases - ran, cases);
        skip();
    }
}

/* ---- the head of a generation step and its draw ---------------------------------
 * The kernel against the CPU op over several draws (counts advancing): the
 * logits, the drawn classes (the same, or within 1e-5 of a class boundary:
 * float against double), the ring and the counts. */
/* dup > 0: the head's row k is row k % dup, so the logits tie in runs of
 * classes and the cuts must rank ties by index */
static int g_head_bf16; /* head_sample_case: the head as a bf16 copy */

static void head_sample_case(mb_rng *r, int B, int d, int V, int ln, float T, int top_k, float top_p, int draws,
                             int dup)
{
    const int ld = V + 3, H = 5;
    float *nw = h_uniform(r, d, 0.5f, 1.5f), *nb = h_uniform(r, d, -0.3f, 0.3f);
    float *head = h_uniform(r, (size_t)V * d, -2.f / sqrtf(d), 2.f / sqrtf(d));
    for (int k = dup; dup > 0 && k < V; k++) memcpy(head + (size_t)k * d, head + (size_t)(k % dup) * d, sizeof(float) * d);
    float *d_nw = d_from(nw, d), *d_nb = d_from(nb, d), *d_head = d_from(head, (size_t)V * d);
    const mb_sample_cfg cfg = {.seed = 1234 + (uint64_t)V, .temperature = T, .top_p = top_p, .top_k = top_k};
    mb_sample_cfg *d_cfg = d_from(&cfg, sizeof cfg / 4);
    int64_t *count = xmalloc(sizeof(int64_t) * B);
    for (int b = 0; b < B; b++) count[b] = 3 * b;
    int64_t *d_count = d_from(count, 2 * (size_t)B);
    int32_t *next = xmalloc(sizeof(int32_t) * B), *hist = xmalloc(sizeof(int32_t) * B * H);
    for (int i = 0; i < B * H; i++) hist[i] = -1;
    int32_t *d_next = d_alloc(sizeof(int32_t) * B), *d_hist = d_from(hist, (size_t)B * H);
    mb_head_sample_params pc = {.batch = B, .d_model = d, .vocab = V, .ld_logits = ld, .eps = 1e-5f,
                                .norm_w = nw, .norm_b = ln ? nb : NULL, .head = head, .cfg = &cfg,
                                .count = count, .next = next, .hist = hist, .hist_len = H};
    mb_head_sample_params pg = pc;
    pg.norm_w = d_nw, pg.norm_b = ln ? d_nb : NULL, pg.head = d_head, pg.cfg = d_cfg;
    pg.count = d_count, pg.next = d_next, pg.hist = d_hist;
    uint16_t *b_head = g_head_bf16 ? bf16_copy(d_head, head, (size_t)V * d) : NULL;
    pg.head_bf16 = b_head;
    mb_arena ws, gws;
    assert_int_equal(mb_arena_init(&ws, g_cpu, mb_head_sample_workspace(g_cpu, &pc)), 0);
    assert_int_equal(mb_arena_init(&gws, g_gpu, mb_head_sample_workspace(g_gpu, &pg)), 0);
    void *scratch = xmalloc(mb_sample_scratch_bytes(V));
    double worst = 0;
    int off = 0;
    for (int t = 0; t < draws; t++) {
        const size_t nh = (size_t)B * d, nl = (size_t)B * ld;
        float *y = h_uniform(r, nh, -2, 2), *d_y = d_from(y, nh);
        float *lc = h_nan(nl), *d_l = d_new_nan(nl);
        pc.logits = lc, pg.logits = d_l;
        int64_t c0[64];
        for (int b = 0; b < B; b++) c0[b] = count[b];
        mb_head_sample(g_cpu, &pc, y, &ws);
        assert_int_equal(mb_ctx_check(g_cpu), 0);
        mb_head_sample(g_gpu, &pg, d_y, &gws);
        assert_int_equal(mb_ctx_check(g_gpu), 0);
        float *lg = h_from(d_l, nl);
        worst = fmax(worst, view_err(lg, lc, B, V, ld));
        check_pad(lg, lc, B, V, ld);
        int32_t *ng = (int32_t *)h_from(d_next, (size_t)B), *hg = (int32_t *)h_from(d_hist, (size_t)B * H);
        int64_t *cg = (int64_t *)h_from(d_count, 2 * (size_t)B);
        for (int b = 0; b < B; b++) {
            assert_true(cg[b] == c0[b] + 1 && count[b] == c0[b] + 1);
            assert_int_equal(hg[b * H + c0[b] % H], ng[b]);
            if (ng[b] == next[b]) continue;
            /* a boundary case: nudging u by 1e-5 gives the GPU's class */
            const double u = (mb_sample_bits(cfg.seed, c0[b], b) + 0.5) * 0x1.0p-23;
            const float *z = lc + (size_t)b * ld;
            if (mb_sample_pick(z, V, T, top_k, top_p, u * (1 - 1e-5), scratch) != ng[b] &&
                mb_sample_pick(z, V, T, top_k, top_p, u * (1 + 1e-5), scratch) != ng[b])
                fail_msg("draw %d row %d: GPU %d, CPU %d", t, b, ng[b], next[b]);
            off++;
            next[b] = ng[b];
        }
        free(y), free(lc), free(lg), free(ng), free(hg), free(cg);
        d_free(d_y), d_free(d_l);
    }
    char what[160];
    snprintf(what, sizeof what, "head_sample B=%d d=%d V=%d%s%s %s T %.2f top_k %d top_p %.2f (%d draws, %d on a boundary)",
             B, d, V, dup ? " ties" : "", g_head_bf16 ? " bf16" : "", ln ? "layernorm" : "rmsnorm", T, top_k, top_p,
             draws * B, off);
    check(what, worst, tol_sum(d));
    assert_true(off <= 1);
    mb_arena_free(&ws);
    mb_arena_free(&gws);
    free(nw), free(nb), free(head), free(count), free(next), free(hist), free(scratch);
    d_free(d_nw), d_free(d_nb), d_free(d_head), d_free(d_cfg), d_free(d_count), d_free(d_next), d_free(d_hist);
    d_free(b_head);
}

static void test_head_sample(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 130);
    head_sample_case(&r, 1, 64, 256, 0, 1.f, 0, 1.f, 40, 0);   /* the audio U-Net at batch 1 */
    head_sample_case(&r, 64, 64, 256, 0, 0.9f, 0, 0.95f, 4, 0); /* batch 64, nucleus */
    head_sample_case(&r, 3, 37, 300, 1, 0.5f, 0, 0.5f, 10, 0);  /* odd sizes, LayerNorm, more than a class a thread */
    head_sample_case(&r, 2, 16, 5, 0, 2.f, 0, 0.3f, 20, 0);     /* tiny vocabulary */
    head_sample_case(&r, 3, 37, 300, 0, 1.f, 7, 1.f, 10, 0);    /* top-k */
    head_sample_case(&r, 3, 37, 300, 0, 1.f, 30, 0.6f, 10, 0);  /* top-k, then the nucleus inside it */
    head_sample_case(&r, 2, 64, 256, 0, 1.f, 1, 1.f, 10, 0);    /* top-k 1: the argmax */
    head_sample_case(&r, 3, 32, 250, 0, 1.f, 10, 1.f, 10, 7);   /* ties at the top-k cut */
    head_sample_case(&r, 3, 32, 250, 0, 1.f, 0, 0.3f, 10, 7);   /* ties at the nucleus cut */
    /* a vocabulary over what one block holds: the logits through global
     * memory, the head over every SM (the 130m shape's 50,280 classes;
     * 12,000 under the sanitizers) */
    const int big = getenv("MB_GPU_TEST_SMALL") ? 12000 : 50280;
    head_sample_case(&r, 1, 768, big, 0, 1.f, 0, 1.f, 6, 0);
    head_sample_case(&r, 3, 768, big, 1, 0.8f, 50, 0.9f, 3, 0);
    head_sample_case(&r, 2, 96, big, 0, 1.f, 0, 0.5f, 3, 0);
    head_sample_case(&r, 2, 64, big, 0, 1.f, 100, 0.95f, 3, 13);
    /* top-k at the compaction's limit (a class a thread) with 11 distinct
     * logits, so the cut falls inside a tie; past it, the draw on the whole
     * row */
    head_sample_case(&r, 2, 64, big, 0, 1.f, 1024, 0.5f, 3, 11);
    head_sample_case(&r, 1, 64, big, 0, 1.f, 2000, 0.9f, 3, 0);
    /* more rows than the GEMV kernel takes at once: the norm and a GEMM */
    head_sample_case(&r, 6, 768, big, 0, 1.f, 0, 1.f, 2, 0);
    head_sample_case(&r, 9, 96, big, 1, 0.7f, 30, 0.8f, 2, 0);
    /* more logits than shared memory holds: the draw reads them in place */
    if (!getenv("MB_GPU_TEST_SMALL")) head_sample_case(&r, 2, 32, 60000, 0, 1.f, 20, 0.9f, 2, 0);
    g_head_bf16 = 1; /* the head read as bf16 (mb_model_set_bf16) */
    head_sample_case(&r, 2, 768, big, 0, 1.f, 40, 0.9f, 3, 0);
    head_sample_case(&r, 6, 96, big, 0, 1.f, 0, 1.f, 2, 0); /* rows in two groups of the grid */
    head_sample_case(&r, 1, 36, big, 1, 1.f, 0, 1.f, 3, 0); /* a row of 36: a weight at a time */
    g_head_bf16 = 0;
}

/* ---- embedding ------------------------------------------------------------------ */

static void embed_case(mb_rng *r, int V, int M, int C)
{
    size_t nw = (size_t)V * C, ny = (size_t)M * C;
    int32_t *tok = xmalloc((size_t)M * sizeof *tok);
    for (int i = 0; i < M; i++) tok[i] = (int32_t)mb_rng_below(r, (uint32_t)V); /* repeats */
    float *W = h_uniform(r, nw, -1, 1), *dy = h_uniform(r, ny, -1, 1);
    float *dW0 = h_uniform(r, nw, -1, 1);
    int32_t *d_tok = d_from(tok, (size_t)M);
    float *d_W = d_from(W, nw), *d_dy = d_from(dy, ny);
    char what[96];

    float *yc = h_nan(ny), *d_y = d_new_nan(ny);
    mb_embed_fwd(g_cpu, M, C, tok, W, yc);
    mb_embed_fwd(g_gpu, M, C, d_tok, d_W, d_y);
    float *yg = h_from(d_y, ny);
    snprintf(what, sizeof what, "embed_fwd %d tokens x %d (exact)", M, C);
    check(what, view_err(yg, yc, 1, (int64_t)ny, (int64_t)ny), 1e-30);

    /* atomics on the GPU, float adds in token order on the CPU: M/V terms
     * per row in different orders (here <= 1250 terms of size 1: ~1e-6) */
    float *dWc = h_copy(dW0, nw), *d_dW = d_from(dW0, nw);
    mb_embed_bwd(g_cpu, M, C, tok, dy, dWc);
    mb_embed_bwd(g_gpu, M, C, d_tok, d_dy, d_dW);
    float *dWg = h_from(d_dW, nw);
    snprintf(what, sizeof what, "embed_bwd dW %dx%d, %d tokens (accumulated)", V, C, M);
    check(what, view_err(dWg, dWc, 1, (int64_t)nw, (int64_t)nw), TOL);

    free(tok), free(W), free(dy), free(dW0), free(yc), free(yg), free(dWc), free(dWg);
    d_free(d_tok), d_free(d_W), d_free(d_dy), d_free(d_y), d_free(d_dW);
}

static void test_embed(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 107);
    embed_case(&r, 29, 50, 37);
    embed_case(&r, 50, 700, 77);
    embed_case(&r, 16, 20000, 256);
}

/* ---- cross-entropy -------------------------------------------------------------- */

/* ties: logits rounded to integers in [-2, 1] (every 7th row all equal),
 * and every 4th row's target is the first of its tied maxima: the argmax
 * must break ties as the CPU does (first index) for the hits to agree */
static void xent_case(mb_rng *r, int M, int V, int all_ignored, int ties)
{
    size_t n = (size_t)M * V;
    int32_t *tgt = xmalloc((size_t)M * sizeof *tgt);
    float *logits = h_uniform(r, n, -4, 4);
    if (ties)
        for (size_t i = 0; i < n; i++)
            logits[i] = (i / (size_t)V) % 7 == 0 ? 0.5f : floorf(logits[i] * 0.5f);
    for (int i = 0; i < M; i++) {
        tgt[i] = (all_ignored || i % 5 == 2) ? MB_IGNORE_INDEX
                                             : (int32_t)mb_rng_below(r, (uint32_t)V);
        if (!ties && i % 3 == 0 && tgt[i] >= 0)
            logits[(size_t)i * V + tgt[i]] += 6.0f; /* some hits */
        if (ties && i % 4 == 1 && tgt[i] >= 0) { /* the first of the tied maxima: a hit */
            const float *x = logits + (size_t)i * V;
            int am = 0;
            for (int j = 1; j < V; j++)
                if (x[j] > x[am]) am = j;
            tgt[i] = am;
        }
    }
    const float scale = 0.37f;
    float *d_logits = d_from(logits, n);
    int32_t *d_tgt = d_from(tgt, (size_t)M);
    char what[128];

    /* stats are added to what is there */
    mb_loss_stats sc = {.loss_sum = 10.0, .count = 3, .correct = 1}, sg = sc;
    float *dlc = h_nan(n), *d_dl = d_new_nan(n);
    mb_xent(g_cpu, M, V, logits, tgt, MB_IGNORE_INDEX, scale, dlc, NULL, &sc);
    mb_xent(g_gpu, M, V, d_logits, d_tgt, MB_IGNORE_INDEX, scale, d_dl, NULL, &sg);
    float *dlg = h_from(d_dl, n);
    gpu_ok();
    /* per row: float exps summed in double against double exps, ~1e-7 of a
     * loss of a few nats */
    double lc = sc.loss_sum - 10.0, lg = sg.loss_sum - 10.0;
    printf("# xent %dx%d%s: loss cpu %.9f gpu %.9f, count %lld/%lld, correct %lld/%lld\n", M, V,
           ties ? " ties" : "", lc, lg, (long long)sc.count, (long long)sg.count,
           (long long)sc.correct, (long long)sg.correct);
    snprintf(what, sizeof what, "xent %dx%d%s loss_sum", M, V, ties ? " ties" : "");
    check(what, lc != 0.0 ? fabs(lg - lc) / fabs(lc) : fabs(lg - lc), 1e-6);
    assert_int_equal(sg.count, sc.count);
    assert_int_equal(sg.correct, sc.correct);
    if (!all_ignored) assert_true(sc.correct > 1);
    snprintf(what, sizeof what, "xent %dx%d%s dlogits", M, V, ties ? " ties" : "");
    check(what, view_err(dlg, dlc, 1, (int64_t)n, (int64_t)n), TOL);
    for (int i = 0; i < M; i++)
        if (tgt[i] == MB_IGNORE_INDEX)
            for (int j = 0; j < V; j++) assert_true(dlg[(size_t)i * V + j] == 0.0f);

    /* in place (dlogits = logits): the same bits as out of place */
    float *d_in = d_from(logits, n);
    mb_loss_stats s2 = {0};
    mb_xent(g_gpu, M, V, d_in, d_tgt, MB_IGNORE_INDEX, scale, d_in, NULL, &s2);
    float *ing = h_from(d_in, n);
    printf("# xent %dx%d dlogits = logits: %s\n", M, V,
           memcmp(ing, dlg, n * 4) ? "DIFFERS" : "same bits");
    assert_memory_equal(ing, dlg, n * 4);
    assert_true(fabs(s2.loss_sum - lg) <= 1e-12 * (fabs(lg) + 10.0)); /* lg went through + 10 */
    assert_int_equal(s2.count, sg.count - 3);
    /* stats only */
    mb_loss_stats s3 = {0};
    mb_xent(g_gpu, M, V, d_logits, d_tgt, MB_IGNORE_INDEX, scale, NULL, NULL, &s3);
    gpu_ok();
    assert_true(s3.loss_sum == s2.loss_sum);
    assert_int_equal(s3.correct, s2.correct);
    /* each row's loss, against the CPU's */
    double *rc = malloc((size_t)M * sizeof(double)), *rg = malloc((size_t)M * sizeof(double));
    double *d_rows = NULL;
    assert_int_equal(cudaMalloc((void **)&d_rows, (size_t)M * sizeof(double)), cudaSuccess);
    mb_xent(g_cpu, M, V, logits, tgt, MB_IGNORE_INDEX, scale, NULL, rc, NULL);
    mb_xent(g_gpu, M, V, d_logits, d_tgt, MB_IGNORE_INDEX, scale, NULL, d_rows, NULL);
    gpu_ok();
    /* through the context's stream: the kernel ran on it, not on the default one */
    assert_int_equal(mb_dev_download(g_gpu, rg, d_rows, (size_t)M * sizeof(double)), 0);
    double rworst = 0;
    for (int i = 0; i < M; i++) {
        if (tgt[i] == MB_IGNORE_INDEX) assert_true(rg[i] == 0.0);
        rworst = fmax(rworst, fabs(rg[i] - rc[i]) / fmax(1.0, fabs(rc[i])));
    }
    snprintf(what, sizeof what, "xent %dx%d%s row losses", M, V, ties ? " ties" : "");
    check(what, rworst, 1e-6);
    cudaFree(d_rows);
    free(rc), free(rg);

    free(tgt), free(logits), free(dlc), free(dlg), free(ing);
    d_free(d_logits), d_free(d_tgt), d_free(d_dl), d_free(d_in);
}

static void test_xent(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 108);
    xent_case(&r, 19, 53, 0, 0);     /* a warp per row */
    xent_case(&r, 130, 517, 0, 0);
    xent_case(&r, 3000, 1024, 0, 0); /* the largest V with a warp per row */
    xent_case(&r, 20000, 16, 0, 0);  /* many short rows */
    xent_case(&r, 300, 2000, 0, 0);  /* a block per row */
    xent_case(&r, 64, 50280, 0, 0);  /* a GPT-2-sized vocabulary */
    xent_case(&r, 5, 7, 1, 0);       /* all ignored: nothing counted, zero gradient */
    xent_case(&r, 700, 300, 0, 1);   /* exact ties, a warp per row */
    xent_case(&r, 70, 3000, 0, 1);   /* exact ties, a block per row */
}

/* ---- AdamW ---------------------------------------------------------------------- */

static void test_adamw(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 109);
    const size_t n = 1000003;
    const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    float *p = h_uniform(&r, n, -1, 1), *m = xmalloc(n * 4), *v = xmalloc(n * 4);
    memset(m, 0, n * 4);
    memset(v, 0, n * 4);
    float *g = xmalloc(n * 4);
    float *d_p = d_from(p, n), *d_m = d_from(m, n), *d_v = d_from(v, n), *d_g = d_alloc(n * 4);
    for (int step = 1; step <= 5; step++) {
        mb_test_fill_normal(&r, g, n, step == 3 ? 1e-4f : 1.0f); /* tiny grads: eps matters */
        assert_int_equal(mb_dev_upload(g_gpu, d_g, g, n * 4), 0);
        float bc1 = (float)(1 - pow(b1, step)), bc2 = (float)(1 - pow(b2, step));
        mb_adamw(g_cpu, n, p, g, m, v, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                 bc1, bc2);
        mb_adamw(g_gpu, n, d_p, d_g, d_m, d_v, (float)lr, (float)b1, (float)b2, (float)eps,
                 (float)wd, bc1, bc2);
    }
    float *pg = h_from(d_p, n), *mg = h_from(d_m, n), *vg = h_from(d_v, n);
    check("adamw p after 5 steps", view_err(pg, p, 1, (int64_t)n, (int64_t)n), TOL);
    check("adamw m after 5 steps", view_err(mg, m, 1, (int64_t)n, (int64_t)n), TOL);
    check("adamw v after 5 steps", view_err(vg, v, 1, (int64_t)n, (int64_t)n), TOL);

    /* the update itself, from the same state on both sides: p barely moves
     * against its size, and p*decay - step*u may be one fused multiply-add
     * on the GPU, so the two deltas differ by up to an ulp of p (6e-8)
     * against a delta of about lr (3e-3): 1e-4 */
    assert_int_equal(mb_dev_upload(g_gpu, d_p, p, n * 4), 0);
    assert_int_equal(mb_dev_upload(g_gpu, d_m, m, n * 4), 0);
    assert_int_equal(mb_dev_upload(g_gpu, d_v, v, n * 4), 0);
    mb_test_fill_normal(&r, g, n, 1.0f);
    assert_int_equal(mb_dev_upload(g_gpu, d_g, g, n * 4), 0);
    float bc1 = (float)(1 - pow(b1, 6)), bc2 = (float)(1 - pow(b2, 6));
    float *pc6 = h_copy(p, n);
    mb_adamw(g_cpu, n, pc6, g, m, v, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, bc1,
             bc2);
    mb_adamw(g_gpu, n, d_p, d_g, d_m, d_v, (float)lr, (float)b1, (float)b2, (float)eps,
             (float)wd, bc1, bc2);
    float *pg6 = h_from(d_p, n);
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double dc = (double)pc6[i] - p[i], dg = (double)pg6[i] - p[i];
        num += (dg - dc) * (dg - dc);
        den += dc * dc;
    }
    check("adamw step delta (vs float rounding of p)", sqrt(num / den), 1e-4);
    free(p), free(m), free(v), free(g), free(pg), free(mg), free(vg), free(pc6), free(pg6);
    d_free(d_p), d_free(d_m), d_free(d_v), d_free(d_g);
}

/* ---- main ----------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    mb_test_seed();
    g_cpu = mb_ctx_create("cpu");
    return g_cpu ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mb_ctx_free(g_cpu);
    mb_ctx_free(g_gpu);
    return 0;
}

int main(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("# no GPU: skipped\n");
        return 77;
    }
    g_gpu = mb_ctx_create("cuda");
    if (!g_gpu) {
        printf("# no GPU: skipped (%s)\n", mb_error_last());
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_context), cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_linear),  cmocka_unit_test(test_conv1d), cmocka_unit_test(test_conv1d_bf16),
        cmocka_unit_test(test_conv1d_bf16_reads),
        cmocka_unit_test(test_act),     cmocka_unit_test(test_vector_ops),
        cmocka_unit_test(test_shift_rows),
        cmocka_unit_test(test_flip_rows),
        cmocka_unit_test(test_norms),   cmocka_unit_test(test_embed),
        cmocka_unit_test(test_block_step), cmocka_unit_test(test_stack_step),
        cmocka_unit_test(test_head_sample),
        cmocka_unit_test(test_xent),    cmocka_unit_test(test_adamw),
    };
    mb_test_filter_env();
    return cmocka_run_group_tests(tests, setup, teardown);
}
