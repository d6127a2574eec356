/* CPU ops against naive float64 references (forward) and finite differences
 * (backward), on fresh random inputs each run (MB_TEST_SEED replays one).
 *
 * Backward checks use the scalar loss sum(wt * out) with random wt: the
 * analytic gradient is the op's backward with dy = wt. Accumulated
 * parameter gradients start from random values and the check uses the
 * difference, so accumulation (not overwrite) is tested at the same time.
 * Strided views get padding that must come out untouched. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/vmath.h"
#include "testutil.h"

#define FWD_TOL 1e-5
#define FD_TOL 1e-3
#ifndef FD_EPS
#define FD_EPS 1e-3
#endif
#define FD_CHECKS 300

static mb_ctx *g_ctx;

/* ---- helpers ------------------------------------------------------------- */

static void seed_rng(mb_rng *r, uint64_t tag)
{
    mb_rng_seed(r, mb_test_seed() ^ (tag * 0x9E3779B97F4A7C15ull));
}

static float *new_uniform(mb_rng *r, size_t n, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    mb_test_fill(r, x, n, lo, hi);
    return x;
}

static float *new_const(size_t n, float v)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = v;
    return x;
}

static float *new_copy(const float *src, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    memcpy(x, src, n * sizeof *x);
    return x;
}

static double *new_doubles(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);
    assert_non_null(x);
    return x;
}

/* ||a - ref|| / ||ref|| over the (M, N) view of a (row stride lda); ref is
 * contiguous. */
static double view_err(const float *a, int lda, const double *ref, int M, int N)
{
    double num = 0, den = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double v = a[(size_t)i * lda + j];
            if (!isfinite(v)) return INFINITY;
            double d = v - ref[(size_t)i * N + j];
            num += d * d;
            den += ref[(size_t)i * N + j] * ref[(size_t)i * N + j];
        }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static void check_fwd(const char *what, double err)
{
    printf("# fwd        %-40s rel err %.3e\n", what, err);
    assert_true(err < FWD_TOL);
}

static void check_fd(double err) { assert_true(err < FD_TOL); }

/* The padding columns [N, ld) of M rows equal those of ref (a copy made
 * before the call); with NaN fill, NaN counts as equal. */
static void check_pad(const float *a, const float *ref, int M, int N, int ld)
{
    for (int i = 0; i < M; i++)
        for (int j = N; j < ld; j++) {
            float x = a[(size_t)i * ld + j], y = ref[(size_t)i * ld + j];
            assert_true(x == y || (isnan(x) && isnan(y)));
        }
}

/* Padding columns [N, ld) of M rows set to v. */
static void set_pad(float *a, int M, int N, int ld, float v)
{
    for (int i = 0; i < M; i++)
        for (int j = N; j < ld; j++) a[(size_t)i * ld + j] = v;
}

/* sum wt * y over the (M, N) view of y; wt contiguous. */
static double dot_view(const float *y, int ldy, const float *wt, int M, int N)
{
    double s = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) s += (double)y[(size_t)i * ldy + j] * wt[(size_t)i * N + j];
    return s;
}

/* (M, N) view with stride lds copied into a zeroed buffer with stride ldd: an
 * analytic gradient laid out like the input it belongs to. */
static float *restride(const float *src, int lds, int M, int N, int ldd)
{
    float *dst = new_const((size_t)M * ldd, 0.0f);
    for (int i = 0; i < M; i++)
        memcpy(dst + (size_t)i * ldd, src + (size_t)i * lds, (size_t)N * sizeof *dst);
    return dst;
}

/* a - b elementwise into a new buffer: what an accumulating op added. */
static float *new_diff(const float *a, const float *b, size_t n)
{
    float *d = new_const(n, 0.0f);
    for (size_t i = 0; i < n; i++) d[i] = a[i] - b[i];
    return d;
}

/* ---- GEMM ---------------------------------------------------------------- */

typedef void (*gemm_fn)(MB_OPS_GEMM_ARGS);

static double op_at(const float *X, int ld, int trans, int r, int c)
{
    return trans ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
}

static void gemm_case(mb_rng *r, gemm_fn fn, const char *name, int tA, int tB, int M, int N,
                      int K, float alpha, float beta)
{
    int arows = tA ? K : M, acols = tA ? M : K, lda = acols + 3;
    int brows = tB ? N : K, bcols = tB ? K : N, ldb = bcols + 5;
    int ldc = N + 2;
    float *A = new_uniform(r, (size_t)arows * lda, -1, 1);
    float *B = new_uniform(r, (size_t)brows * ldb, -1, 1);
    /* beta 0 must overwrite NaN garbage: fill C (pads too) with NaN */
    float *C = beta == 0.0f ? new_const((size_t)M * ldc, NAN)
                            : new_uniform(r, (size_t)M * ldc, -1, 1);
    float *C0 = new_copy(C, (size_t)M * ldc);
    double *ref = new_doubles((size_t)M * N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += op_at(A, lda, tA, i, k) * op_at(B, ldb, tB, k, j);
            ref[(size_t)i * N + j] =
                alpha * s + (beta == 0.0f ? 0.0 : (double)beta * C0[(size_t)i * ldc + j]);
        }
    fn(g_ctx, tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    char what[128];
    snprintf(what, sizeof what, "%s %c%c %dx%dx%d beta=%g", name, tA ? 'T' : 'N',
             tB ? 'T' : 'N', M, N, K, beta);
    check_fwd(what, view_err(C, ldc, ref, M, N));
    check_pad(C, C0, M, N, ldc);
    free(A), free(B), free(C), free(C0), free(ref);
}

static void gemm_suite(gemm_fn fn, const char *name, uint64_t tag)
{
    mb_rng r;
    seed_rng(&r, tag);
    /* odd sizes; the last two span several MC/NC tiles and KC slices and
     * are big enough to run in parallel (with a one-thread OpenBLAS, cut
     * into slabs of C: rows, then columns, mb_gemm_cpu) */
    static const int sizes[][3] = {{37, 29, 45}, {1, 67, 13}, {5, 1, 70}, {150, 141, 300}, {70, 173, 200}};
    for (int tA = 0; tA < 2; tA++)
        for (int tB = 0; tB < 2; tB++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                gemm_case(&r, fn, name, tA, tB, sizes[s][0], sizes[s][1], sizes[s][2], 0.7f, 0.0f);
                gemm_case(&r, fn, name, tA, tB, sizes[s][0], sizes[s][1], sizes[s][2], 1.0f, 1.0f);
            }
    /* degenerate: K = 0 and alpha = 0 leave beta * C */
    gemm_case(&r, fn, name, 0, 1, 7, 9, 0, 1.0f, 0.0f);
    gemm_case(&r, fn, name, 1, 0, 7, 9, 0, 1.0f, 0.5f);
    gemm_case(&r, fn, name, 0, 0, 7, 9, 11, 0.0f, 0.0f);
}

static void test_gemm(void **state)
{
    (void)state;
    gemm_suite(mb_gemm, "gemm", 1);
}

static void test_gemm_blocked(void **state)
{
    (void)state;
    gemm_suite(mb_gemm_blocked_cpu, "gemm_blocked", 2);
}

/* The few-rows product (generation's linear layers): large enough to run
 * in parallel, against float64, and the same bits on 1 and 2 threads. */
static void test_gemm_few_rows(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 4);
    gemm_case(&r, mb_gemm, "gemm few rows", 0, 1, 1, 5003, 771, 1.0f, 0.0f);
    gemm_case(&r, mb_gemm, "gemm few rows", 0, 1, 8, 777, 1000, 0.7f, 1.0f);
    gemm_case(&r, mb_gemm, "gemm few rows", 0, 1, 3, 1000, 7, 1.0f, 0.0f); /* K under the lanes */
    gemm_case(&r, mb_gemm, "gemm few rows", 0, 1, 7, 1001, 259, 1.0f, 0.0f); /* W's last rows alone */
    /* 5 and 7 rows: four through the two-row loop, the rest one at a time;
     * 8: two fours */
    const int N = 3001, K = 515, rows[] = {5, 7, 8};
    mb_ctx *one = mb_ctx_create("cpu");
    mb_ctx_set_threads(one, 1);
    for (int c = 0; c < 3; c++) {
        const int M = rows[c];
        float *A = new_uniform(&r, (size_t)M * K, -1, 1), *W = new_uniform(&r, (size_t)N * K, -1, 1);
        float *C1 = new_const((size_t)M * N, NAN), *C2 = new_const((size_t)M * N, NAN);
        mb_ctx_set_threads(g_ctx, 2);
        mb_gemm_few_rows_cpu(one, M, N, K, 1.f, A, K, W, K, 0.f, C1, N);
        mb_gemm_few_rows_cpu(g_ctx, M, N, K, 1.f, A, K, W, K, 0.f, C2, N);
        mb_ctx_set_threads(g_ctx, 0);
        assert_memory_equal(C1, C2, (size_t)M * N * sizeof(float));
        /* a row's products are the same bits in any batch: each path sums a
         * row as one row alone does */
        for (int m = 0; m < M; m++) {
            mb_gemm_few_rows_cpu(one, 1, N, K, 1.f, A + (size_t)m * K, K, W, K, 0.f, C1, N);
            assert_memory_equal(C1, C2 + (size_t)m * N, (size_t)N * sizeof(float));
        }
        free(A), free(W), free(C1), free(C2);
    }
    mb_ctx_free(one);
}

/* int8 weights: the quantization (every value within half a step of its
 * block's scale, the block's largest exactly +-127), the product against
 * float64 over the dequantized weights (only float rounding between them),
 * the same bits on 1 and 2 threads, and against the fp32 product (the
 * quantization's own error, printed) */
static void q8_case(mb_rng *r, int M, int N, int K)
{
    float *A = new_uniform(r, (size_t)M * K, -1, 1), *W = new_uniform(r, (size_t)N * K, -1, 1);
    for (int k = 0; k < K; k += 7) W[k] *= 20.f; /* an outlier in some blocks of row 0 */
    mb_q8 q;
    assert_int_equal(mb_q8_make(&q, W, N, K, K), 0);
    assert_int_equal(q.nb, (K + 31) / 32);
    for (int n = 0; n < N; n++)
        for (int b = 0; b < q.nb; b++) {
            const float sc = q.scale[(size_t)n * q.nb + b];
            int top = 0;
            for (int k = b * 32; k < K && k < (b + 1) * 32; k++) {
                const int8_t v = q.q[(size_t)n * K + k];
                assert_true(fabs(W[(size_t)n * K + k] - sc * v) <= (0.5 + 1e-4) * sc + 1e-30); /* w * (127 / amax) rounded in float */
                top = abs(v) > top ? abs(v) : top;
            }
            assert_int_equal(top, 127);
        }
    /* A's rows quantized by the same rule: the reference is exact arithmetic on both */
    int8_t *qa = malloc((size_t)M * K);
    float *sa = malloc(sizeof(float) * (size_t)M * q.nb);
    assert_true(qa && sa);
    for (int m = 0; m < M; m++) mb_q8_quant_row(A + (size_t)m * K, K, qa + (size_t)m * K, sa + (size_t)m * q.nb);
    double *ref = new_doubles((size_t)M * N), *ref32 = new_doubles((size_t)M * N);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double t = 0, t32 = 0;
            for (int k = 0; k < K; k++) {
                const int b = k / 32;
                t += (double)sa[(size_t)m * q.nb + b] * qa[(size_t)m * K + k] * q.scale[(size_t)n * q.nb + b] *
                     q.q[(size_t)n * K + k];
                t32 += (double)A[(size_t)m * K + k] * W[(size_t)n * K + k];
            }
            ref[(size_t)m * N + n] = t, ref32[(size_t)m * N + n] = t32;
        }
    float *C1 = new_const((size_t)M * N, NAN), *C2 = new_const((size_t)M * N, NAN);
    float *C3 = new_const((size_t)M * N, NAN);
    mb_ctx *one = mb_ctx_create("cpu");
    mb_ctx_set_threads(one, 1);
    mb_gemm_q8_few_rows_cpu(one, M, A, K, &q, C1, N);
    mb_gemm_q8_few_rows_cpu(g_ctx, M, A, K, &q, C2, N);
    mb_q8_set_portable(1); /* the C lanes: the same bits as the AVX2 ones */
    mb_gemm_q8_few_rows_cpu(g_ctx, M, A, K, &q, C3, N);
    mb_q8_set_portable(0);
    assert_memory_equal(C1, C2, (size_t)M * N * sizeof(float));
    assert_memory_equal(C1, C3, (size_t)M * N * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "gemm q8 %dx%dx%d vs float64 (both quantized)", M, N, K);
    check_fwd(what, view_err(C1, N, ref, M, N));
    const double qe = view_err(C1, N, ref32, M, N);
    printf("# gemm q8 %dx%dx%d vs the fp32 product: rel err %.2e (the quantization)\n", M, N, K, qe);
    assert_true(qe < 4e-2 && qe > 1e-5); /* quantized, and not far (1.2e-2 the worst of 12 seeds) */
    free(qa), free(sa), free(C3);
    mb_ctx_free(one);
    mb_q8_free(&q);
    free(A), free(W), free(C1), free(C2), free(ref), free(ref32);
}

static void test_gemm_q8(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 5);
    q8_case(&r, 1, 3001, 768);
    q8_case(&r, 8, 777, 1000); /* a partial last block */
    q8_case(&r, 3, 100, 7);    /* one partial block */
    q8_case(&r, 5, 64, 96);
    /* a block of zeros: scale 0, the product 0 (no 0/0) */
    float W[64] = {0}, A[64];
    for (int k = 0; k < 64; k++) A[k] = 1.f, W[k] = k < 32 ? 0.f : 1.f;
    mb_q8 q;
    assert_int_equal(mb_q8_make(&q, W, 1, 64, 64), 0);
    float c = NAN;
    mb_gemm_q8_few_rows_cpu(g_ctx, 1, A, 64, &q, &c, 1);
    assert_true(fabsf(c - 32.f) < 1e-5f);
    mb_q8_free(&q);
}

/* bf16: rounding to nearest even, NaN kept, the values exact back; the
 * bf16 linear's CPU reference against float64 on the rounded weights */
static void test_bf16(void **state)
{
    (void)state;
    assert_int_equal(mb_bf16_round(1.f), 0x3f80);
    assert_int_equal(mb_bf16_round(-2.f), 0xc000);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to even (1); just above rounds up */
    assert_int_equal(mb_bf16_round(1.f + 0x1.0p-8f), 0x3f80);
    assert_int_equal(mb_bf16_round(1.f + 0x1.0p-8f + 0x1.0p-20f), 0x3f81);
    assert_int_equal(mb_bf16_round(1.f + 3 * 0x1.0p-8f), 0x3f82); /* halfway, odd below: up */
    assert_true(isnan(mb_bf16_float(mb_bf16_round(NAN))));
    assert_true(isinf(mb_bf16_float(mb_bf16_round(INFINITY))));
    mb_rng r;
    seed_rng(&r, 6);
    const int M = 3, in = 40, out = 17;
    float *x = new_uniform(&r, (size_t)M * in, -1, 1), *W = new_uniform(&r, (size_t)out * in, -1, 1);
    uint16_t *Wb = malloc(sizeof(uint16_t) * out * in);
    assert_non_null(Wb);
    mb_to_bf16(g_ctx, (size_t)out * in, W, Wb);
    double *ref = new_doubles((size_t)M * out), worst = 0;
    for (int i = 0; i < out * in; i++) {
        const double rel = fabs(mb_bf16_float(Wb[i]) - W[i]) / fabs(W[i]);
        worst = fmax(worst, rel);
        assert_int_equal(mb_bf16_round(mb_bf16_float(Wb[i])), Wb[i]);
    }
    assert_true(worst <= 0x1.0p-8 && worst > 0);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < out; n++) {
            double s = 0;
            for (int k = 0; k < in; k++) s += (double)x[m * in + k] * mb_bf16_float(Wb[n * in + k]);
            ref[m * out + n] = s;
        }
    float *y = new_const((size_t)M * out, NAN);
    mb_linear_bf16_fwd(g_ctx, M, in, out, x, in, Wb, y, out);
    check_fwd("linear bf16 3x40x17 vs float64 on the rounded weights", view_err(y, out, ref, M, out));
    free(x), free(W), free(Wb), free(ref), free(y);
}

/* The scan's exp over lanes (ops/vmath.h) against exp in double: within
 * 3 ulp relative over the range it computes, 0 below it, NaN through */
static void test_exp8(void **state)
{
    (void)state;
#ifdef MB_HAVE_LANES
    double worst = 0;
    for (int i = 0; i < 400000; i++) {
        float x[8], e[8];
        for (int j = 0; j < 8; j++) x[j] = -87.f + 175.f * (float)(i * 8 + j) / 3200000.f;
        mb_f8_store(e, mb_exp8(mb_f8_load(x)));
        for (int j = 0; j < 8; j++) worst = fmax(worst, fabs(e[j] - exp((double)x[j])) / exp((double)x[j]));
    }
    printf("# exp8 on [-87, 88]: worst rel err %.3e (%.2f ulp)\n", worst, worst / 0x1.0p-24);
    assert_true(worst < 3 * 0x1.0p-24);
    float x[8] = {-88.f, -200.f, -1e30f, 0.f, NAN, 1.f, -0.5f, 88.f}, e[8];
    mb_f8_store(e, mb_exp8(mb_f8_load(x)));
    assert_true(e[0] == 0.f && e[1] == 0.f && e[2] == 0.f && e[3] == 1.f && isnan(e[4]) && isfinite(e[7]));
#else
    printf("# exp8: no vector lanes in this compiler: nothing to test (the scan uses expf)\n");
#endif
}

/* Eight folds at once (mb_f8_fold8x) against mb_f8_fold one vector at a
 * time: the same bits, on sums whose order shows (lanes of mixed
 * magnitude and sign, where a plain left-to-right sum gives other bits
 * for most vectors, counted so the check is seen to have teeth) and on
 * signed zeros */
static void test_fold8x(void **state)
{
    (void)state;
#ifdef MB_HAVE_LANES
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed());
    int orders_differ = 0;
    for (int it = 0; it < 20000; it++) {
        mb_f8 s[8];
        float l[8][8];
        for (int j = 0; j < 8; j++)
            for (int k = 0; k < 8; k++) {
                const float m = ldexpf(1.f, (int)(mb_rng_uniform(&r) * 40.f) - 20);
                l[j][k] = (mb_rng_uniform(&r) - 0.5f) * m;
            }
        if (it == 0)
            for (int k = 0; k < 8; k++) l[3][k] = -0.f; /* all -0: the fold's + 0 makes +0 */
        for (int j = 0; j < 8; j++) s[j] = mb_f8_load(l[j]);
        float got[8];
        mb_f8_store(got, mb_f8_fold8x(s));
        for (int j = 0; j < 8; j++) {
            const float want = mb_f8_fold(s[j], 0.f);
            assert_memory_equal(&got[j], &want, sizeof want);
            float seq = 0.f;
            for (int k = 0; k < 8; k++) seq += l[j][k];
            orders_differ += memcmp(&seq, &want, sizeof seq) != 0;
        }
    }
    printf("# fold8x equals fold on 160000 sums; a left-to-right sum differs on %d of them\n", orders_differ);
    assert_true(orders_differ > 1000);
#else
    printf("# fold8x: no vector lanes in this compiler: nothing to test\n");
#endif
}

/* The scan's softplus and sigmoid over lanes (ops/vmath.h) against double:
 * softplus within 5 x 2^-24 relative over [-87, 80] (exp8's error passes
 * through; its worst, 4.3, is near -6.6) and for its tiny values too:
 * log1p(e^x) ~ e^x, no cancellation; exactly x above 20 as torch's
 * threshold; sigmoid within 4 x 2^-24; NaN through both */
static void test_softplus8(void **state)
{
    (void)state;
#ifdef MB_HAVE_LANES
    double wsp = 0, wsg = 0;
    for (int i = 0; i < 200000; i++) {
        float x[8], sp[8], sg[8];
        for (int j = 0; j < 8; j++) x[j] = -87.f + 167.f * (float)(i * 8 + j) / 1600000.f;
        mb_f8_store(sp, mb_softplus8(mb_f8_load(x)));
        mb_f8_store(sg, mb_sigmoid8(mb_f8_load(x)));
        for (int j = 0; j < 8; j++) {
            const double xd = x[j], spd = xd > 0 ? xd + log1p(exp(-xd)) : log1p(exp(xd)), sgd = 1 / (1 + exp(-xd));
            wsp = fmax(wsp, fabs(sp[j] - spd) / spd);
            wsg = fmax(wsg, fabs(sg[j] - sgd) / sgd);
            if (x[j] > 20.f) assert_true(sp[j] == x[j]);
        }
    }
    printf("# softplus8 on [-87, 80]: worst rel err %.3e (%.2f ulp); sigmoid8 %.3e (%.2f ulp)\n", wsp,
           wsp / 0x1.0p-24, wsg, wsg / 0x1.0p-24);
    assert_true(wsp < 5 * 0x1.0p-24);
    assert_true(wsg < 4 * 0x1.0p-24);
    float x[8] = {NAN, -1e30f, 1e30f, 0.f, -200.f, 200.f, -20.f, 1.f}, sp[8], sg[8];
    mb_f8_store(sp, mb_softplus8(mb_f8_load(x)));
    mb_f8_store(sg, mb_sigmoid8(mb_f8_load(x)));
    assert_true(isnan(sp[0]) && isnan(sg[0]));
    assert_true(sp[1] == 0.f && sp[2] == 1e30f && sp[5] == 200.f && sg[1] >= 0.f && sg[1] < 1e-37f && sg[2] == 1.f && sg[5] == 1.f);
    assert_true(fabsf(sp[3] - 0.69314718f) < 1e-7f && sg[3] == 0.5f && sp[4] >= 0.f && sp[4] < 1e-37f);
#else
    printf("# softplus8: no vector lanes in this compiler: nothing to test (the scan uses libm)\n");
#endif
}

/* The complex scan's sin and cos over lanes against double: within 2^-23
 * absolute on [-8192, 8192] (the reduction's range, crossing every
 * quadrant), past it libm's (so the same as sinf / cosf), NaN through */
static void test_sincos8(void **state)
{
    (void)state;
#ifdef MB_HAVE_LANES
    double ws = 0, wc = 0;
    for (int i = 0; i < 250000; i++) {
        float x[8];
        mb_f8 sn, cs;
        for (int j = 0; j < 8; j++) x[j] = -8192.f + 16384.f * (float)(i * 8 + j) / 2000000.f;
        mb_sincos8(mb_f8_load(x), &sn, &cs);
        for (int j = 0; j < 8; j++) {
            ws = fmax(ws, fabs(sn[j] - sin((double)x[j])));
            wc = fmax(wc, fabs(cs[j] - cos((double)x[j])));
        }
    }
    printf("# sincos8 on [-8192, 8192]: worst abs err sin %.3e, cos %.3e (2^-23 = %.3e)\n", ws, wc, 0x1.0p-23);
    assert_true(ws < 0x1.0p-23 && wc < 0x1.0p-23);
    float x[8] = {1e5f, -3e7f, NAN, 0.f, 1.5707964f, -3.1415927f, 1e-20f, 8192.f};
    mb_f8 sn, cs;
    mb_sincos8(mb_f8_load(x), &sn, &cs);
    assert_true(sn[0] == sinf(1e5f) && cs[0] == cosf(1e5f) && sn[1] == sinf(-3e7f) && cs[1] == cosf(-3e7f));
    assert_true(isnan(sn[2]) && isnan(cs[2]));
    assert_true(sn[3] == 0.f && cs[3] == 1.f && sn[6] == 1e-20f && cs[6] == 1.f);
#else
    printf("# sincos8: no vector lanes in this compiler: nothing to test (the scan uses libm)\n");
#endif
}

static void test_colsum_bias(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 3);
    const int M = 301, N = 133, ld = N + 4; /* 301 x 133 runs in parallel */
    float *x = new_uniform(&r, (size_t)M * ld, -1, 1);
    float *out = new_uniform(&r, N, -1, 1);
    double *ref = new_doubles(N);
    for (int j = 0; j < N; j++) {
        ref[j] = out[j];
        for (int i = 0; i < M; i++) ref[j] += x[(size_t)i * ld + j];
    }
    mb_colsum_acc(g_ctx, M, N, x, ld, out);
    check_fwd("colsum_acc 301x133", view_err(out, N, ref, 1, N));

    float *bias = new_uniform(&r, N, -1, 1);
    float *y0 = new_copy(x, (size_t)M * ld);
    double *yref = new_doubles((size_t)M * N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            yref[(size_t)i * N + j] = (double)x[(size_t)i * ld + j] + bias[j];
    mb_bias_add(g_ctx, M, N, bias, x, ld);
    check_fwd("bias_add 301x133", view_err(x, ld, yref, M, N));
    check_pad(x, y0, M, N, ld);
    free(x), free(out), free(ref), free(bias), free(y0), free(yref);
}

/* ---- linear -------------------------------------------------------------- */

typedef struct {
    int M, in, out, ldx, ldy;
    float *x, *W, *bias, *y, *wt;
} lin_case;

static double lin_loss(void *ud)
{
    lin_case *c = ud;
    mb_linear_fwd(g_ctx, c->M, c->in, c->out, c->x, c->ldx, c->W, c->bias, c->y, c->ldy);
    return dot_view(c->y, c->ldy, c->wt, c->M, c->out);
}

static void linear_fwd_case(mb_rng *r, lin_case *c, int with_bias)
{
    float *bias = c->bias;
    if (!with_bias) c->bias = NULL;
    double *ref = new_doubles((size_t)c->M * c->out);
    for (int i = 0; i < c->M; i++)
        for (int o = 0; o < c->out; o++) {
            double s = c->bias ? c->bias[o] : 0.0;
            for (int k = 0; k < c->in; k++)
                s += (double)c->x[(size_t)i * c->ldx + k] * c->W[(size_t)o * c->in + k];
            ref[(size_t)i * c->out + o] = s;
        }
    mb_test_fill(r, c->y, (size_t)c->M * c->ldy, -1, 1);
    for (int i = 0; i < c->M; i++) /* garbage in the view must not leak in */
        for (int o = 0; o < c->out; o++) c->y[(size_t)i * c->ldy + o] = NAN;
    float *y0 = new_copy(c->y, (size_t)c->M * c->ldy);
    mb_linear_fwd(g_ctx, c->M, c->in, c->out, c->x, c->ldx, c->W, c->bias, c->y, c->ldy);
    check_fwd(with_bias ? "linear_fwd bias" : "linear_fwd no bias",
              view_err(c->y, c->ldy, ref, c->M, c->out));
    check_pad(c->y, y0, c->M, c->out, c->ldy);
    c->bias = bias;
    free(ref), free(y0);
}

static void test_linear(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 4);
    lin_case c = {.M = 23, .in = 31, .out = 19};
    c.ldx = c.in + 5;
    c.ldy = c.out + 7;
    int lddx = c.in + 2, lddy = c.out + 3;
    c.x = new_uniform(&r, (size_t)c.M * c.ldx, -1, 1);
    c.W = new_uniform(&r, (size_t)c.out * c.in, -1, 1);
    c.bias = new_uniform(&r, c.out, -1, 1);
    c.y = new_const((size_t)c.M * c.ldy, 0.0f);
    c.wt = new_uniform(&r, (size_t)c.M * c.out, -1, 1);
    linear_fwd_case(&r, &c, 1);
    linear_fwd_case(&r, &c, 0);

    float *dy = restride(c.wt, c.out, c.M, c.out, lddy);
    set_pad(dy, c.M, c.out, lddy, NAN); /* must not be read */
    float *dx = new_const((size_t)c.M * lddx, NAN);
    set_pad(dx, c.M, c.in, lddx, 0.0f);
    float *dW0 = new_uniform(&r, (size_t)c.out * c.in, -1, 1);
    float *db0 = new_uniform(&r, c.out, -1, 1);
    float *dW = new_copy(dW0, (size_t)c.out * c.in), *db = new_copy(db0, c.out);
    mb_linear_bwd(g_ctx, c.M, c.in, c.out, c.x, c.ldx, c.W, dy, lddy, dx, lddx, 0.0f, dW, db);
    float *gx = restride(dx, lddx, c.M, c.in, c.ldx);
    float *gW = new_diff(dW, dW0, (size_t)c.out * c.in), *gb = new_diff(db, db0, c.out);
    check_fd(mb_test_grad_check("linear dx", lin_loss, &c, c.x, gx, (size_t)c.M * c.ldx,
                                FD_CHECKS, FD_EPS));
    check_fd(mb_test_grad_check("linear dW (accumulated)", lin_loss, &c, c.W, gW,
                                (size_t)c.out * c.in, FD_CHECKS, FD_EPS));
    check_fd(mb_test_grad_check("linear dbias (accumulated)", lin_loss, &c, c.bias, gb, c.out,
                                FD_CHECKS, FD_EPS));

    /* dx_beta 1 adds onto what is there; dx NULL is allowed */
    float *dx1 = new_uniform(&r, (size_t)c.M * lddx, -1, 1);
    float *dx1_0 = new_copy(dx1, (size_t)c.M * lddx);
    mb_linear_bwd(g_ctx, c.M, c.in, c.out, c.x, c.ldx, c.W, dy, lddy, dx1, lddx, 1.0f, NULL,
                  NULL);
    double *ref = new_doubles((size_t)c.M * c.in);
    for (int i = 0; i < c.M; i++)
        for (int k = 0; k < c.in; k++)
            ref[(size_t)i * c.in + k] =
                (double)dx1_0[(size_t)i * lddx + k] + dx[(size_t)i * lddx + k];
    check_fwd("linear_bwd dx_beta=1", view_err(dx1, lddx, ref, c.M, c.in));
    check_pad(dx1, dx1_0, c.M, c.in, lddx);
    /* with dx NULL, dW still accumulates: a second pass adds gW again */
    float *dW1 = new_copy(dW, (size_t)c.out * c.in);
    mb_linear_bwd(g_ctx, c.M, c.in, c.out, c.x, c.ldx, c.W, dy, lddy, NULL, lddx, 0.0f, dW, NULL);
    float *gW2 = new_diff(dW, dW1, (size_t)c.out * c.in);
    check_fwd("linear_bwd dx=NULL, dW accumulates again",
              mb_test_rel_err(gW2, gW, (size_t)c.out * c.in));
    free(dW1), free(gW2);

    /* mb_linear_fwd_acc adds x W^T + bias onto y as it is (the in-place
     * residual of the layers' GPU path), the pads untouched */
    float *ya = new_uniform(&r, (size_t)c.M * c.ldy, -1, 1), *ya0 = new_copy(ya, (size_t)c.M * c.ldy);
    for (int i = 0; i < c.M; i++)
        for (int o = 0; o < c.out; o++) {
            double v = (double)ya0[(size_t)i * c.ldy + o] + c.bias[o];
            for (int k = 0; k < c.in; k++) v += (double)c.x[(size_t)i * c.ldx + k] * c.W[(size_t)o * c.in + k];
            ref[(size_t)i * c.out + o] = v; /* ref holds M x in >= M x out doubles */
        }
    mb_linear_fwd_acc(g_ctx, c.M, c.in, c.out, c.x, c.ldx, c.W, c.bias, ya, c.ldy);
    check_fwd("linear_fwd_acc", view_err(ya, c.ldy, ref, c.M, c.out));
    check_pad(ya, ya0, c.M, c.out, c.ldy);
    free(ya), free(ya0);

    free(c.x), free(c.W), free(c.bias), free(c.y), free(c.wt), free(dy), free(dx), free(dW0);
    free(db0), free(dW), free(db), free(gx), free(gW), free(gb), free(dx1), free(dx1_0);
    free(ref);
}

/* ---- conv1d -------------------------------------------------------------- */

typedef struct {
    int B, L, D, K, ldx, ldy;
    int silu; /* the conv with its SiLU fused */
    float *x, *w, *bias, *prev, *y, *wt;
} conv_case;

/* Input of [prev; x] at position s in double (zeros before prev or without). */
static double conv_in(const conv_case *c, int b, int s, int d)
{
    if (s >= 0) return c->x[((size_t)b * c->L + s) * c->ldx + d];
    if (!c->prev || s < -(c->K - 1)) return 0.0;
    return c->prev[((size_t)b * (c->K - 1) + (size_t)(c->K - 1 + s)) * c->D + d];
}

static double conv_loss(void *ud)
{
    conv_case *c = ud;
    mb_conv1d_fwd(g_ctx, c->B, c->L, c->D, c->K, c->x, c->ldx, c->w, c->bias, c->prev, c->silu, c->y,
                  c->ldy);
    return dot_view(c->y, c->ldy, c->wt, c->B * c->L, c->D);
}

static void conv_fwd_check(conv_case *c, const char *what)
{
    int rows = c->B * c->L;
    double *ref = new_doubles((size_t)rows * c->D);
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->L; t++)
            for (int d = 0; d < c->D; d++) {
                double s = c->bias ? c->bias[d] : 0.0;
                for (int k = 0; k < c->K; k++)
                    s += (double)c->w[(size_t)d * c->K + k] * conv_in(c, b, t - (c->K - 1) + k, d);
                ref[((size_t)b * c->L + t) * c->D + d] = c->silu ? s / (1.0 + exp(-s)) : s;
            }
    for (size_t i = 0; i < (size_t)rows * c->ldy; i++) c->y[i] = NAN;
    set_pad(c->y, rows, c->D, c->ldy, -7.0f);
    float *y0 = new_copy(c->y, (size_t)rows * c->ldy);
    mb_conv1d_fwd(g_ctx, c->B, c->L, c->D, c->K, c->x, c->ldx, c->w, c->bias, c->prev, c->silu, c->y,
                  c->ldy);
    check_fwd(what, view_err(c->y, c->ldy, ref, rows, c->D));
    check_pad(c->y, y0, rows, c->D, c->ldy);
    free(ref), free(y0);
}

static void conv_new(mb_rng *r, conv_case *c, int B, int L, int D, int K)
{
    *c = (conv_case){.B = B, .L = L, .D = D, .K = K, .ldx = D + 3, .ldy = D + 5};
    c->x = new_uniform(r, (size_t)B * L * c->ldx, -1, 1);
    c->w = new_uniform(r, (size_t)D * K, -1, 1);
    c->bias = new_uniform(r, D, -1, 1);
    c->prev = K > 1 ? new_uniform(r, (size_t)B * (K - 1) * D, -1, 1) : NULL;
    c->y = new_const((size_t)B * L * c->ldy, 0.0f);
    c->wt = new_uniform(r, (size_t)B * L * D, -1, 1);
}

static void conv_free(conv_case *c)
{
    free(c->x), free(c->w), free(c->bias), free(c->prev), free(c->y), free(c->wt);
}

static void conv_bwd_check(mb_rng *r, conv_case *c, int K)
{
    int rows = c->B * c->L, D = c->D, lddx = D + 1, lddy = D + 6;
    size_t np = (size_t)c->B * (K - 1) * D;
    float *dy = restride(c->wt, D, rows, D, lddy);
    set_pad(dy, rows, D, lddy, NAN);
    float *dx = new_const((size_t)rows * lddx, NAN);
    set_pad(dx, rows, D, lddx, 0.0f);
    float *dw0 = new_uniform(r, (size_t)D * K, -1, 1), *db0 = new_uniform(r, D, -1, 1);
    float *dw = new_copy(dw0, (size_t)D * K), *db = new_copy(db0, D);
    float *dprev = np ? new_const(np, NAN) : NULL;
    /* with silu, dy is the op's scratch: each call gets a copy */
    float *dys = new_copy(dy, (size_t)rows * lddy);
    mb_conv1d_bwd(g_ctx, c->B, c->L, D, K, c->x, c->ldx, c->w, c->bias, c->prev, c->silu, dys, lddy, dx,
                  lddx, dw, db, dprev, NULL);
    float *gx = restride(dx, lddx, rows, D, c->ldx);
    float *gw = new_diff(dw, dw0, (size_t)D * K), *gb = new_diff(db, db0, D);
    char what[64];
    const char *sl = c->silu ? " silu" : "";
    snprintf(what, sizeof what, "conv1d%s dx K=%d", sl, K);
    check_fd(mb_test_grad_check(what, conv_loss, c, c->x, gx, (size_t)rows * c->ldx, FD_CHECKS,
                                FD_EPS));
    snprintf(what, sizeof what, "conv1d%s dw K=%d (accumulated)", sl, K);
    check_fd(mb_test_grad_check(what, conv_loss, c, c->w, gw, (size_t)D * K, FD_CHECKS, FD_EPS));
    snprintf(what, sizeof what, "conv1d%s dbias K=%d (accumulated)", sl, K);
    check_fd(mb_test_grad_check(what, conv_loss, c, c->bias, gb, D, FD_CHECKS, FD_EPS));
    if (np) {
        snprintf(what, sizeof what, "conv1d%s dprev K=%d", sl, K);
        check_fd(mb_test_grad_check(what, conv_loss, c, c->prev, dprev, np, FD_CHECKS, FD_EPS));
    }
    /* without prev or dbias: the zeros before t = 0 contribute nothing */
    float *saved = c->prev;
    c->prev = NULL;
    memcpy(dw, dw0, (size_t)D * K * sizeof *dw);
    memcpy(dys, dy, (size_t)rows * lddy * sizeof *dys);
    mb_conv1d_bwd(g_ctx, c->B, c->L, D, K, c->x, c->ldx, c->w, c->bias, NULL, c->silu, dys, lddy, dx, lddx,
                  dw, NULL, NULL, NULL);
    free(gx), free(gw);
    gx = restride(dx, lddx, rows, D, c->ldx);
    gw = new_diff(dw, dw0, (size_t)D * K);
    snprintf(what, sizeof what, "conv1d%s dx K=%d no prev", sl, K);
    check_fd(mb_test_grad_check(what, conv_loss, c, c->x, gx, (size_t)rows * c->ldx, FD_CHECKS,
                                FD_EPS));
    snprintf(what, sizeof what, "conv1d%s dw K=%d no prev", sl, K);
    check_fd(mb_test_grad_check(what, conv_loss, c, c->w, gw, (size_t)D * K, FD_CHECKS, FD_EPS));
    c->prev = saved;
    free(dy), free(dys), free(dx), free(dw0), free(db0), free(dw), free(db), free(dprev), free(gx);
    free(gw), free(gb);
}

/* A chunk split at `split` with the state carried equals the whole, and the
 * carried state is the last K-1 inputs of [prev; x]. */
static void conv_chunk_check(conv_case *c, int split)
{
    int B = c->B, L = c->L, D = c->D, K = c->K;
    size_t np = (size_t)B * (K - 1) * D;
    float *whole = new_const((size_t)B * L * c->ldy, 0.0f);
    mb_conv1d_fwd(g_ctx, B, L, D, K, c->x, c->ldx, c->w, c->bias, c->prev, c->silu, whole, c->ldy);
    /* chunks are (B, len, D) tensors of their own: copy the rows out */
    int lens[2] = {split, L - split}, offs[2] = {0, split};
    float *state = np ? new_copy(c->prev, np) : NULL;
    double max_err = 0, state_err = 0;
    for (int part = 0; part < 2; part++) {
        int len = lens[part];
        float *xc = new_const((size_t)B * len * c->ldx + 1, 0.0f);
        float *yc = new_const((size_t)B * len * c->ldy + 1, 0.0f);
        for (int b = 0; b < B; b++)
            memcpy(xc + (size_t)b * len * c->ldx,
                   c->x + ((size_t)b * L + offs[part]) * c->ldx,
                   (size_t)len * c->ldx * sizeof *xc);
        mb_conv1d_fwd(g_ctx, B, len, D, K, xc, c->ldx, c->w, c->bias, state, c->silu, yc, c->ldy);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < len; t++)
                for (int d = 0; d < D; d++) {
                    double a = yc[((size_t)b * len + t) * c->ldy + d];
                    double e = whole[((size_t)b * L + offs[part] + t) * c->ldy + d];
                    max_err = fmax(max_err, fabs(a - e));
                }
        if (np) mb_conv1d_state_update(g_ctx, B, len, D, K, xc, c->ldx, state);
        free(xc), free(yc);
    }
    for (int b = 0; b < B && np; b++)
        for (int r = 0; r < K - 1; r++)
            for (int d = 0; d < D; d++) {
                double e = conv_in(c, b, L - (K - 1) + r, d);
                double a = state[((size_t)b * (K - 1) + r) * D + d];
                state_err = fmax(state_err, fabs(a - e));
            }
    printf("# chunk      conv1d K=%d split %2d+%-2d           max |chunked - whole| %.3e, "
           "state %.3e\n", K, split, L - split, max_err, state_err);
    assert_true(max_err < 1e-6);
    assert_true(state_err == 0.0);
    free(whole), free(state);
}

static void test_conv1d(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 5);
    static const int Ks[] = {1, 2, 4, 5};
    for (size_t i = 0; i < sizeof Ks / sizeof Ks[0]; i++) {
        int K = Ks[i];
        conv_case c;
        char what[64];
        conv_new(&r, &c, 3, 13, 37, K);
        snprintf(what, sizeof what, "conv1d K=%d prev+bias", K);
        conv_fwd_check(&c, what);
        float *prev = c.prev, *bias = c.bias;
        c.prev = NULL;
        c.bias = NULL;
        snprintf(what, sizeof what, "conv1d K=%d no prev, no bias", K);
        conv_fwd_check(&c, what);
        c.prev = prev;
        c.bias = bias;
        conv_bwd_check(&r, &c, K);
        static const int splits[] = {1, 2, 6, 12};
        for (size_t s = 0; s < sizeof splits / sizeof splits[0]; s++) conv_chunk_check(&c, splits[s]);
        /* the mixer's op: the SiLU fused, its backward recomputing the
         * conv's output */
        c.silu = 1;
        snprintf(what, sizeof what, "conv1d silu K=%d prev+bias", K);
        conv_fwd_check(&c, what);
        conv_bwd_check(&r, &c, K);
        conv_chunk_check(&c, 6);
        conv_free(&c);
    }
    /* big enough to run in parallel, more channels than one block */
    conv_case c;
    conv_new(&r, &c, 2, 64, 301, 4);
    conv_fwd_check(&c, "conv1d K=4 2x64x301 (parallel)");
    conv_bwd_check(&r, &c, 4);
    conv_chunk_check(&c, 17);
    c.silu = 1;
    conv_fwd_check(&c, "conv1d silu K=4 2x64x301 (parallel)");
    conv_bwd_check(&r, &c, 4);
    conv_free(&c);
}

/* ---- activations and vector ops ----------------------------------------- */

static const char *act_name[] = {"silu", "softplus", "negexp", "gelu"};

static double act_ref(mb_act a, double x)
{
    switch (a) {
    case MB_ACT_SILU: return x / (1.0 + exp(-x));
    case MB_ACT_SOFTPLUS: return x > 20.0 ? x : log1p(exp(x));
    case MB_ACT_NEGEXP: return -exp(x);
    case MB_ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    }
    return NAN;
}

typedef struct {
    mb_act act;
    int M, N, ldx, ldy;
    float *x, *y, *wt;
} act_case;

static double act_loss(void *ud)
{
    act_case *c = ud;
    mb_act_fwd(g_ctx, c->act, c->M, c->N, c->x, c->ldx, c->y, c->ldy);
    return dot_view(c->y, c->ldy, c->wt, c->M, c->N);
}

static void act_check(mb_rng *r, mb_act act)
{
    act_case c = {.act = act, .M = 19, .N = 43, .ldx = 47, .ldy = 50};
    /* NEGEXP maps A_log, which stays modest; the others cover softplus's
     * x > 20 branch too */
    float lo = act == MB_ACT_NEGEXP ? -6.0f : -30.0f, hi = act == MB_ACT_NEGEXP ? 3.0f : 30.0f;
    size_t nx = (size_t)c.M * c.ldx;
    c.x = new_uniform(r, nx, lo, hi);
    c.y = new_const((size_t)c.M * c.ldy, NAN);
    c.wt = new_uniform(r, (size_t)c.M * c.N, -1, 1);
    double *ref = new_doubles((size_t)c.M * c.N);
    for (int i = 0; i < c.M; i++)
        for (int j = 0; j < c.N; j++)
            ref[(size_t)i * c.N + j] = act_ref(act, c.x[(size_t)i * c.ldx + j]);
    float *y0 = new_copy(c.y, (size_t)c.M * c.ldy);
    mb_act_fwd(g_ctx, act, c.M, c.N, c.x, c.ldx, c.y, c.ldy);
    char what[64];
    snprintf(what, sizeof what, "act %s", act_name[act]);
    check_fwd(what, view_err(c.y, c.ldy, ref, c.M, c.N));
    check_pad(c.y, y0, c.M, c.N, c.ldy);
    /* in place: y aliases x */
    float *xi = new_copy(c.x, nx);
    mb_act_fwd(g_ctx, act, c.M, c.N, xi, c.ldx, xi, c.ldx);
    snprintf(what, sizeof what, "act %s in place", act_name[act]);
    check_fwd(what, view_err(xi, c.ldx, ref, c.M, c.N));
    check_pad(xi, c.x, c.M, c.N, c.ldx);

    /* FD away from softplus's threshold kink (its jump there is 2e-9) */
    if (act != MB_ACT_NEGEXP) mb_test_fill(r, c.x, nx, -8.0f, 8.0f);
    int lddy = c.N + 1;
    float *dy = restride(c.wt, c.N, c.M, c.N, lddy);
    float *dx = new_const((size_t)c.M * c.ldx, 0.0f);
    mb_act_bwd(g_ctx, act, c.M, c.N, c.x, c.ldx, dy, lddy, dx, c.ldx);
    snprintf(what, sizeof what, "act %s dx", act_name[act]);
    check_fd(mb_test_grad_check(what, act_loss, &c, c.x, dx, nx, FD_CHECKS, FD_EPS));
    /* dx aliases dy */
    mb_act_bwd(g_ctx, act, c.M, c.N, c.x, c.ldx, dy, lddy, dy, lddy);
    float *g = restride(dy, lddy, c.M, c.N, c.ldx);
    double err = mb_test_rel_err(g, dx, nx);
    printf("# alias      act %-36s rel err %.3e\n", act_name[act], err);
    assert_true(err == 0.0);
    /* the > 20 branch: identity forward, gradient dy */
    if (act == MB_ACT_SOFTPLUS) {
        float x = 25.0f, y, d = 3.0f;
        mb_act_fwd(g_ctx, act, 1, 1, &x, 1, &y, 1);
        mb_act_bwd(g_ctx, act, 1, 1, &x, 1, &d, 1, &d, 1);
        assert_true(y == 25.0f && d == 3.0f);
    }
    free(c.x), free(c.y), free(c.wt), free(ref), free(y0), free(xi), free(dy), free(dx), free(g);
}

static void test_act(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 6);
    act_check(&r, MB_ACT_SILU);
    act_check(&r, MB_ACT_SOFTPLUS);
    act_check(&r, MB_ACT_NEGEXP);
    act_check(&r, MB_ACT_GELU);
}

/* ---- row shift within sequences (the UpPool's causal shift) ---------------- */
static void test_shift_rows(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 61);
    const int B = 3, L = 5, C = 7, lds = 9, ldd = 11;
    float *src = new_uniform(&r, (size_t)B * L * lds, -1, 1);
    for (int shift = -2; shift <= 2; shift++) {
        float *dst = new_const((size_t)B * L * ldd, NAN);
        mb_shift_rows(g_ctx, B, L, C, shift, src, lds, dst, ldd);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++)
                for (int j = 0; j < ldd; j++) {
                    float got = dst[((size_t)b * L + t) * ldd + j];
                    int ts = t - shift;
                    if (j >= C)
                        assert_true(isnan(got)); /* padding untouched */
                    else if (ts < 0 || ts >= L)
                        assert_true(got == 0.0f);
                    else
                        assert_true(got == src[((size_t)b * L + ts) * lds + j]);
                }
        free(dst);
    }
    /* +1 and -1 are each other's adjoint: <S x, y> == <x, S^T y> */
    float *x = new_uniform(&r, (size_t)B * L * C, -1, 1), *y = new_uniform(&r, (size_t)B * L * C, -1, 1);
    float *sx = new_const((size_t)B * L * C, 0), *sty = new_const((size_t)B * L * C, 0);
    mb_shift_rows(g_ctx, B, L, C, 1, x, C, sx, C);
    mb_shift_rows(g_ctx, B, L, C, -1, y, C, sty, C);
    double a = 0, b2 = 0;
    for (size_t i = 0; i < (size_t)B * L * C; i++) a += (double)sx[i] * y[i], b2 += (double)x[i] * sty[i];
    printf("# shift adjoint: %.9f %.9f\n", a, b2);
    assert_true(fabs(a - b2) < 1e-5);
    free(src), free(x), free(y), free(sx), free(sty);
}

static void test_vector_ops(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 7);
    const size_t n = 100003; /* above the parallel threshold, odd */
    float *x = new_uniform(&r, n, -2, 2), *y = new_uniform(&r, n, -2, 2);
    double *ref = new_doubles(n);
    for (size_t i = 0; i < n; i++) ref[i] = 0.75 * x[i] - 1.5 * (double)y[i];
    mb_axpby(g_ctx, n, 0.75f, x, -1.5f, y);
    check_fwd("axpby", view_err(y, (int)n, ref, 1, (int)n));
    float *z = new_const(n, NAN); /* b = 0 overwrites */
    for (size_t i = 0; i < n; i++) ref[i] = 0.75 * x[i];
    mb_axpby(g_ctx, n, 0.75f, x, 0.0f, z);
    check_fwd("axpby b=0 over NaN", view_err(z, (int)n, ref, 1, (int)n));

    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    double got = mb_sumsq(g_ctx, n, x);
    check_fwd("sumsq", fabs(got - ss) / ss);
    assert_true(mb_sumsq(g_ctx, 0, x) == 0.0);
    assert_true(fabs(mb_sumsq(g_ctx, 5, x) - ((double)x[0] * x[0] + (double)x[1] * x[1] +
                                              (double)x[2] * x[2] + (double)x[3] * x[3] +
                                              (double)x[4] * x[4])) < 1e-12);

    assert_int_equal(mb_count_nonfinite(g_ctx, n, x), 0);
    x[17] = NAN;
    x[n - 1] = INFINITY;
    x[50000] = -INFINITY;
    x[3] = FLT_MAX;
    x[4] = -0.0f;
    assert_int_equal(mb_count_nonfinite(g_ctx, n, x), 3);
    assert_int_equal(mb_count_nonfinite(g_ctx, 18, x), 1);
    free(x), free(y), free(z), free(ref);
}

/* ---- norms --------------------------------------------------------------- */

typedef struct {
    int layer; /* 0 RMSNorm, 1 LayerNorm */
    int M, C;
    float eps;
    float *x, *w, *b, *y, *mean, *rstd, *wt;
} norm_case;

static void norm_run(norm_case *c)
{
    if (c->layer)
        mb_layernorm_fwd(g_ctx, c->M, c->C, c->x, c->w, c->b, c->eps, c->y, c->mean, c->rstd, 0);
    else
        mb_rmsnorm_fwd(g_ctx, c->M, c->C, c->x, c->w, c->eps, c->y, c->rstd, 0);
}

static double norm_loss(void *ud)
{
    norm_case *c = ud;
    norm_run(c);
    return dot_view(c->y, c->C, c->wt, c->M, c->C);
}

static void norm_fwd_check(norm_case *c, const char *name)
{
    int M = c->M, C = c->C;
    double *ref = new_doubles((size_t)M * C), *rref = new_doubles(M), *mref = new_doubles(M);
    for (int i = 0; i < M; i++) {
        const float *x = c->x + (size_t)i * C;
        double mu = 0, v = 0;
        if (c->layer) {
            for (int j = 0; j < C; j++) mu += x[j];
            mu /= C;
        }
        for (int j = 0; j < C; j++) v += (x[j] - mu) * (x[j] - mu);
        double rs = 1.0 / sqrt(v / C + c->eps);
        rref[i] = rs;
        mref[i] = mu;
        for (int j = 0; j < C; j++)
            ref[(size_t)i * C + j] = (x[j] - mu) * rs * c->w[j] + (c->layer ? c->b[j] : 0.0);
    }
    for (size_t i = 0; i < (size_t)M * C; i++) c->y[i] = NAN;
    norm_run(c);
    char what[64];
    snprintf(what, sizeof what, "%s %dx%d", name, M, C);
    check_fwd(what, view_err(c->y, C, ref, M, C));
    snprintf(what, sizeof what, "%s %dx%d saved rstd", name, M, C);
    check_fwd(what, view_err(c->rstd, M, rref, 1, M));
    if (c->layer) {
        /* the mean is near 0 for these inputs: compare against its scale */
        double e = 0;
        for (int i = 0; i < M; i++) e = fmax(e, fabs(c->mean[i] - mref[i]) / (fabs(mref[i]) + 1));
        snprintf(what, sizeof what, "%s %dx%d saved mean", name, M, C);
        check_fwd(what, e);
    }
    free(ref), free(rref), free(mref);
}

static void norm_check(mb_rng *r, int layer, int M, int C)
{
    const char *name = layer ? "layernorm" : "rmsnorm";
    norm_case c = {.layer = layer, .M = M, .C = C, .eps = 1e-5f};
    size_t n = (size_t)M * C;
    c.x = new_uniform(r, n, -1.5f, 2.5f); /* nonzero mean on purpose */
    c.w = new_uniform(r, C, 0.5f, 1.5f);
    c.b = new_uniform(r, C, -0.5f, 0.5f);
    c.y = new_const(n, 0.0f);
    c.mean = new_const(M, 0.0f);
    c.rstd = new_const(M, 0.0f);
    c.wt = new_uniform(r, n, -1, 1);
    norm_fwd_check(&c, name);

    float *dy = new_copy(c.wt, n), *dx = new_const(n, NAN);
    float *dw0 = new_uniform(r, C, -1, 1), *db0 = new_uniform(r, C, -1, 1);
    float *dw = new_copy(dw0, C), *db = new_copy(db0, C);
    if (layer)
        mb_layernorm_bwd(g_ctx, M, C, c.x, c.w, c.mean, c.rstd, dy, dx, 0.0f, dw, db);
    else
        mb_rmsnorm_bwd(g_ctx, M, C, c.x, c.w, c.rstd, dy, dx, 0.0f, dw);
    float *gw = new_diff(dw, dw0, C), *gb = new_diff(db, db0, C);
    char what[64];
    snprintf(what, sizeof what, "%s %dx%d dx", name, M, C);
    check_fd(mb_test_grad_check(what, norm_loss, &c, c.x, dx, n, FD_CHECKS, FD_EPS));
    snprintf(what, sizeof what, "%s %dx%d dw (accumulated)", name, M, C);
    check_fd(mb_test_grad_check(what, norm_loss, &c, c.w, gw, C, FD_CHECKS, FD_EPS));
    if (layer) {
        snprintf(what, sizeof what, "%s %dx%d db (accumulated)", name, M, C);
        check_fd(mb_test_grad_check(what, norm_loss, &c, c.b, gb, C, FD_CHECKS, FD_EPS));
    }
    norm_run(&c); /* restore the saved stats after the FD probes */

    /* dx_beta 1 adds; dx may alias dy (dw is taken before dx is written) */
    float *dx1 = new_uniform(r, n, -1, 1), *dx1_0 = new_copy(dx1, n);
    if (layer)
        mb_layernorm_bwd(g_ctx, M, C, c.x, c.w, c.mean, c.rstd, dy, dx1, 1.0f, NULL, NULL);
    else
        mb_rmsnorm_bwd(g_ctx, M, C, c.x, c.w, c.rstd, dy, dx1, 1.0f, NULL);
    double *ref = new_doubles(n);
    for (size_t i = 0; i < n; i++) ref[i] = (double)dx1_0[i] + dx[i];
    snprintf(what, sizeof what, "%s %dx%d dx_beta=1", name, M, C);
    check_fwd(what, view_err(dx1, C, ref, M, C));
    memcpy(dw, dw0, C * sizeof *dw);
    memcpy(db, db0, C * sizeof *db);
    if (layer)
        mb_layernorm_bwd(g_ctx, M, C, c.x, c.w, c.mean, c.rstd, dy, dy, 0.0f, dw, db);
    else
        mb_rmsnorm_bwd(g_ctx, M, C, c.x, c.w, c.rstd, dy, dy, 0.0f, dw);
    float *gw2 = new_diff(dw, dw0, C);
    double e = mb_test_rel_err(dy, dx, n) + mb_test_rel_err(gw2, gw, C);
    printf("# alias      %-40s rel err %.3e\n", layer ? "layernorm dx=dy" : "rmsnorm dx=dy", e);
    assert_true(e < 1e-6);
    /* r16 (bf16 precision's stored xn): y rounded to bf16 in the op, each
     * value bf16(y) bit for bit */
    {
        float *y32 = new_copy(c.y, n), *r32 = new_copy(c.rstd, M);
        if (layer) mb_layernorm_fwd(g_ctx, M, C, c.x, c.w, c.b, c.eps, c.y, c.mean, c.rstd, 1);
        else mb_rmsnorm_fwd(g_ctx, M, C, c.x, c.w, c.eps, c.y, c.rstd, 1);
        size_t off = 0, moved = 0;
        for (size_t i = 0; i < n; i++) {
            const float k = mb_bf16_keep(y32[i]);
            off += memcmp(&k, &c.y[i], 4) != 0;
            moved += k != y32[i];
        }
        printf("# r16        %-40s %zu of %zu not bf16(y), %zu rounded\n", name, off, n, moved);
        assert_true(off == 0 && moved > 0);
        assert_memory_equal(r32, c.rstd, (size_t)M * sizeof(float));
        free(y32), free(r32);
    }
    free(c.x), free(c.w), free(c.b), free(c.y), free(c.mean), free(c.rstd), free(c.wt), free(dy);
    free(dx), free(dw0), free(db0), free(dw), free(db), free(gw), free(gb), free(dx1);
    free(dx1_0), free(ref), free(gw2);
}

static void test_norms(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 8);
    norm_check(&r, 0, 17, 67);
    norm_check(&r, 1, 17, 67);
    /* parallel: rows split for dx, column blocks for dw/db */
    norm_check(&r, 0, 257, 131);
    norm_check(&r, 1, 257, 131);
}

/* ---- embedding ----------------------------------------------------------- */

typedef struct {
    int M, C;
    const int32_t *tok;
    float *W, *y, *wt;
} emb_case;

static double emb_loss(void *ud)
{
    emb_case *c = ud;
    mb_embed_fwd(g_ctx, c->M, c->C, c->tok, c->W, c->y);
    return dot_view(c->y, c->C, c->wt, c->M, c->C);
}

static void emb_check(mb_rng *r, int V, int M, int C)
{
    int32_t *tok = malloc((size_t)M * sizeof *tok);
    assert_non_null(tok);
    for (int i = 0; i < M; i++) tok[i] = (int32_t)mb_rng_below(r, (uint32_t)V); /* repeats */
    emb_case c = {.M = M, .C = C, .tok = tok};
    c.W = new_uniform(r, (size_t)V * C, -1, 1);
    c.y = new_const((size_t)M * C, NAN);
    c.wt = new_uniform(r, (size_t)M * C, -1, 1);
    double *ref = new_doubles((size_t)M * C);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < C; j++) ref[(size_t)i * C + j] = c.W[(size_t)tok[i] * C + j];
    mb_embed_fwd(g_ctx, M, C, tok, c.W, c.y);
    char what[64];
    snprintf(what, sizeof what, "embed %d tokens x %d", M, C);
    check_fwd(what, view_err(c.y, C, ref, M, C));

    float *dW0 = new_uniform(r, (size_t)V * C, -1, 1), *dW = new_copy(dW0, (size_t)V * C);
    mb_embed_bwd(g_ctx, M, C, tok, c.wt, dW);
    float *g = new_diff(dW, dW0, (size_t)V * C);
    snprintf(what, sizeof what, "embed dW %dx%d (accumulated)", V, C);
    check_fd(mb_test_grad_check(what, emb_loss, &c, c.W, g, (size_t)V * C, FD_CHECKS, FD_EPS));
    free(tok), free(c.W), free(c.y), free(c.wt), free(ref), free(dW0), free(dW), free(g);
}

static void test_embed(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 9);
    emb_check(&r, 29, 50, 37);
    emb_check(&r, 50, 700, 77); /* parallel over column blocks */
}

/* ---- cross-entropy ------------------------------------------------------- */

typedef struct {
    int M, V;
    float *logits;
    const int32_t *tgt;
} xent_case;

static double xent_loss(void *ud)
{
    xent_case *c = ud;
    mb_loss_stats st = {0};
    mb_xent(g_ctx, c->M, c->V, c->logits, c->tgt, MB_IGNORE_INDEX, 1.0f, NULL, NULL, &st);
    return st.loss_sum;
}

static void xent_check(mb_rng *r, int M, int V)
{
    int32_t *tgt = malloc((size_t)M * sizeof *tgt);
    assert_non_null(tgt);
    float *logits = new_uniform(r, (size_t)M * V, -4, 4);
    int64_t count = 0, correct = 0;
    double loss = 0;
    for (int i = 0; i < M; i++) {
        tgt[i] = i % 5 == 2 ? MB_IGNORE_INDEX : (int32_t)mb_rng_below(r, (uint32_t)V);
        if (i % 3 == 0 && tgt[i] >= 0) logits[(size_t)i * V + tgt[i]] += 6.0f; /* some hits */
    }
    double *row_ref = calloc((size_t)M, sizeof(double));
    for (int i = 0; i < M; i++) {
        if (tgt[i] == MB_IGNORE_INDEX) continue;
        const float *x = logits + (size_t)i * V;
        int am = 0;
        double mx = x[0], s = 0;
        for (int j = 1; j < V; j++)
            if (x[j] > mx) mx = x[j], am = j;
        for (int j = 0; j < V; j++) s += exp(x[j] - mx);
        row_ref[i] = mx + log(s) - x[tgt[i]];
        loss += row_ref[i];
        count++;
        correct += am == tgt[i];
    }
    /* stats are added to */
    mb_loss_stats st = {.loss_sum = 10.0, .count = 3, .correct = 1};
    float *dl = new_const((size_t)M * V, NAN);
    const float scale = 0.37f;
    mb_xent(g_ctx, M, V, logits, tgt, MB_IGNORE_INDEX, scale, dl, NULL, &st);
    char what[64];
    snprintf(what, sizeof what, "xent loss %dx%d", M, V);
    check_fwd(what, fabs((st.loss_sum - 10.0) - loss) / loss);
    assert_int_equal(st.count, count + 3);
    assert_int_equal(st.correct, correct + 1);
    assert_true(correct > 0);
    for (int i = 0; i < M; i++)
        if (tgt[i] == MB_IGNORE_INDEX)
            for (int j = 0; j < V; j++) assert_true(dl[(size_t)i * V + j] == 0.0f);

    xent_case c = {.M = M, .V = V, .logits = logits, .tgt = tgt};
    float *g = new_copy(dl, (size_t)M * V);
    for (size_t i = 0; i < (size_t)M * V; i++) g[i] /= scale;
    snprintf(what, sizeof what, "xent dlogits %dx%d", M, V);
    check_fd(mb_test_grad_check(what, xent_loss, &c, logits, g, (size_t)M * V, FD_CHECKS, FD_EPS));

    /* in place: dlogits aliases logits */
    float *inplace = new_copy(logits, (size_t)M * V);
    mb_loss_stats st2 = {0};
    mb_xent(g_ctx, M, V, inplace, tgt, MB_IGNORE_INDEX, scale, inplace, NULL, &st2);
    double e = mb_test_rel_err(inplace, dl, (size_t)M * V);
    printf("# alias      xent dlogits=logits %dx%-21d rel err %.3e\n", M, V, e);
    assert_true(e == 0.0);
    assert_true(fabs(st2.loss_sum - (st.loss_sum - 10.0)) <= 1e-12 * (loss + 10.0));
    assert_int_equal(st2.count, count);

    /* each row's loss (0 where ignored), without stats or a gradient */
    double *rows = malloc((size_t)M * sizeof(double));
    for (int i = 0; i < M; i++) rows[i] = NAN;
    mb_xent(g_ctx, M, V, logits, tgt, MB_IGNORE_INDEX, 1.f, NULL, rows, NULL);
    double worst = 0;
    for (int i = 0; i < M; i++) worst = fmax(worst, fabs(rows[i] - row_ref[i]) / fmax(1.0, fabs(row_ref[i])));
    printf("# xent row losses %dx%d: worst rel err %.3e\n", M, V, worst);
    assert_true(worst < 1e-12);
    free(rows), free(row_ref);
    free(tgt), free(logits), free(dl), free(g), free(inplace);
}

static void test_xent(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 10);
    xent_check(&r, 19, 53);
    xent_check(&r, 130, 517); /* parallel */
    /* all ignored: nothing counted, all-zero gradient */
    int32_t tgt[3] = {MB_IGNORE_INDEX, MB_IGNORE_INDEX, MB_IGNORE_INDEX};
    float lg[3 * 4] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    mb_loss_stats st = {0};
    mb_xent(g_ctx, 3, 4, lg, tgt, MB_IGNORE_INDEX, 1.0f, lg, NULL, &st);
    assert_true(st.loss_sum == 0.0 && st.count == 0 && st.correct == 0);
    for (int i = 0; i < 12; i++) assert_true(lg[i] == 0.0f);
}

/* ---- AdamW --------------------------------------------------------------- */

static void test_adamw(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 11);
    const size_t n = 70001; /* above the parallel threshold */
    const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    float *p = new_uniform(&r, n, -1, 1), *m = new_const(n, 0), *v = new_const(n, 0);
    float *g = new_const(n, 0);
    double *pr = new_doubles(n), *mr = new_doubles(n), *vr = new_doubles(n);
    for (size_t i = 0; i < n; i++) pr[i] = p[i];
    for (int step = 1; step <= 5; step++) {
        mb_test_fill_normal(&r, g, n, step == 3 ? 1e-4f : 1.0f); /* tiny grads: eps matters */
        double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
        for (size_t i = 0; i < n; i++) {
            pr[i] *= 1 - lr * wd;
            mr[i] = b1 * mr[i] + (1 - b1) * g[i];
            vr[i] = b2 * vr[i] + (1 - b2) * (double)g[i] * g[i];
            pr[i] -= lr / bc1 * mr[i] / (sqrt(vr[i] / bc2) + eps);
        }
        mb_adamw(g_ctx, n, p, g, m, v, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                 (float)bc1, (float)bc2);
    }
    check_fwd("adamw p after 5 steps", view_err(p, (int)n, pr, 1, (int)n));
    check_fwd("adamw m after 5 steps", view_err(m, (int)n, mr, 1, (int)n));
    check_fwd("adamw v after 5 steps", view_err(v, (int)n, vr, 1, (int)n));
    /* the update itself, not just p (p barely moves relative to its size) */
    double num = 0, den = 0;
    float *p2 = new_copy(p, n);
    double *pr2 = new_doubles(n);
    mb_test_fill_normal(&r, g, n, 1.0f);
    double bc1 = 1 - pow(b1, 6), bc2 = 1 - pow(b2, 6);
    for (size_t i = 0; i < n; i++) {
        double pi = p[i], mi = b1 * m[i] + (1 - b1) * g[i];
        double vi = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
        pr2[i] = pi * (1 - lr * wd) - lr / bc1 * mi / (sqrt(vi / bc2) + eps);
    }
    mb_adamw(g_ctx, n, p2, g, m, v, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
             (float)bc1, (float)bc2);
    for (size_t i = 0; i < n; i++) {
        double du = ((double)p2[i] - p[i]) - (pr2[i] - p[i]);
        num += du * du;
        den += (pr2[i] - p[i]) * (pr2[i] - p[i]);
    }
    /* p2 - p is a float difference of numbers near 1: its own error is about
     * 6e-8 / lr, so this one is checked to 1e-4 */
    double e = sqrt(num / den);
    printf("# fwd        %-40s rel err %.3e\n", "adamw step delta (vs float rounding)", e);
    assert_true(e < 1e-4);
    free(p), free(m), free(v), free(g), free(pr), free(mr), free(vr), free(p2), free(pr2);
}

/* ---- thread-count invariance -------------------------------------------- */

/* Reductions are split into fixed chunks or column blocks, so one thread and
 * many give bit-identical results. */
static void test_threads_deterministic(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 12);
    int nt = g_ctx->n_threads;
    const int M = 300, C = 211;
    size_t n = (size_t)M * C;
    float *x = new_uniform(&r, n, -1, 1), *dy = new_uniform(&r, n, -1, 1);
    float *w = new_uniform(&r, C, 0.5f, 1.5f), *y = new_const(n, 0), *rs = new_const(M, 0);
    int32_t *tgt = malloc(M * sizeof *tgt);
    assert_non_null(tgt);
    for (int i = 0; i < M; i++) tgt[i] = (int32_t)mb_rng_below(&r, C);
    double ss[2];
    mb_loss_stats st[2];
    memset(st, 0, sizeof st);
    float *dw[2], *cs[2], *dx[2];
    for (int pass = 0; pass < 2; pass++) {
        mb_ctx_set_threads(g_ctx, pass == 0 ? 1 : (nt > 1 ? nt : 4));
        ss[pass] = mb_sumsq(g_ctx, n, x);
        mb_xent(g_ctx, M, C, x, tgt, MB_IGNORE_INDEX, 1.0f, NULL, NULL, &st[pass]);
        mb_rmsnorm_fwd(g_ctx, M, C, x, w, 1e-5f, y, rs, 0);
        dw[pass] = new_const(C, 0);
        dx[pass] = new_const(n, 0);
        mb_rmsnorm_bwd(g_ctx, M, C, x, w, rs, dy, dx[pass], 0.0f, dw[pass]);
        cs[pass] = new_const(C, 0);
        mb_colsum_acc(g_ctx, M, C, dy, C, cs[pass]);
    }
    mb_ctx_set_threads(g_ctx, nt);
    assert_true(ss[0] == ss[1]);
    assert_true(st[0].loss_sum == st[1].loss_sum);
    assert_memory_equal(dw[0], dw[1], C * sizeof(float));
    assert_memory_equal(dx[0], dx[1], n * sizeof(float));
    assert_memory_equal(cs[0], cs[1], C * sizeof(float));
    free(x), free(dy), free(w), free(y), free(rs), free(tgt);
    for (int p = 0; p < 2; p++) free(dw[p]), free(cs[p]), free(dx[p]);
}

/* ---- main ---------------------------------------------------------------- */

/* ---- sampling -------------------------------------------------------------
 * The rule of ops.h: the probabilities the test expects are computed here
 * without a sort (each class's mass ranked above it, O(V^2)), the way the
 * GPU kernel decides the nucleus; mb_sample_pick ranks the likeliest
 * classes only. */
static void sample_expect(const float *z, int V, double T, int top_k, double top_p, double *p)
{
    double mx = -INFINITY, tot = 0, kept = 0;
    for (int k = 0; k < V; k++) mx = fmax(mx, z[k]);
    double *q = malloc(sizeof(double) * V);
    assert_non_null(q);
    for (int k = 0; k < V; k++) q[k] = exp((z[k] - mx) / T);
    /* top-k: the classes with fewer than top_k ranked above them */
    for (int k = 0; k < V; k++) {
        int rank = 0;
        for (int j = 0; j < V; j++) rank += q[j] > q[k] || (q[j] == q[k] && j < k);
        p[k] = top_k <= 0 || rank < top_k ? q[k] : 0;
        tot += p[k];
    }
    for (int k = 0; k < V; k++) {
        double above = 0;
        for (int j = 0; j < V; j++)
            if (p[j] > p[k] || (p[j] == p[k] && j < k)) above += p[j];
        if (top_p < 1 && !(above < top_p * tot)) p[k] = 0;
    }
    for (int k = 0; k < V; k++) kept += p[k];
    for (int k = 0; k < V; k++) p[k] /= kept;
    free(q);
}

/* u on a grid of n points picks each class a number of times within one of
 * n * p: the pick is the inverse of the distribution's CDF */
static void sample_grid_check(const float *z, int V, double T, int top_k, double top_p)
{
    const int n = 20000;
    double *p = malloc(sizeof(double) * V);
    int *cnt = calloc((size_t)V, sizeof(int));
    void *scratch = malloc(mb_sample_scratch_bytes(V));
    assert_true(p && cnt && scratch);
    sample_expect(z, V, T, top_k, top_p, p);
    for (int i = 0; i < n; i++) {
        const int k = mb_sample_pick(z, V, T, top_k, top_p, (i + 0.5) / n, scratch);
        assert_true(k >= 0 && k < V);
        cnt[k]++;
    }
    double worst = 0;
    for (int k = 0; k < V; k++) worst = fmax(worst, fabs(cnt[k] - n * p[k]));
    printf("# sample     pick V %3d T %.2f top_k %3d top_p %.2f: worst |count - n p| %.2f of n %d\n", V, T, top_k, top_p,
           worst, n);
    assert_true(worst <= 1.0 + 1e-6 * n);
    free(p), free(cnt), free(scratch);
}

/* The head + draw op with an int8 head (mb_model_set_int8): its logits are
 * the LM head's, the int8 product on the normed rows to the bit, over the
 * vocabulary of a head with padding rows beyond it (left untouched), so the
 * CPU's draws are those of the step's logits. The fp32 head would be off by
 * the quantization's error. */
static void head_sample_q8_check(mb_rng *r)
{
    enum { B = 3, d = 40, V = 7, Vp = 8 }; /* d: a block and a partial one */
    float *y = new_uniform(r, (size_t)B * d, -2, 2), *w = new_uniform(r, d, 0.5, 1.5);
    float *head = new_uniform(r, (size_t)Vp * d, -1, 1);
    float *lg = new_const((size_t)B * Vp, NAN), *want = new_const((size_t)B * Vp, NAN);
    float xn[B * d], rstd[B];
    mb_q8 hq;
    assert_int_equal(mb_q8_make(&hq, head, Vp, d, d), 0);
    int32_t next[B];
    int64_t count[B] = {0, 1, 2};
    const mb_sample_cfg cfg = {.seed = 4, .temperature = 1.f, .top_p = 1.f};
    const mb_head_sample_params hp = {.batch = B, .d_model = d, .vocab = V, .ld_logits = Vp, .eps = 1e-5f,
                                      .norm_w = w, .head = head, .head_q8 = &hq, .logits = lg,
                                      .cfg = &cfg, .count = count, .next = next};
    mb_arena ws;
    assert_int_equal(mb_arena_init(&ws, g_ctx, mb_head_sample_workspace(g_ctx, &hp)), 0);
    mb_head_sample(g_ctx, &hp, y, &ws);
    mb_rmsnorm_fwd_cpu(g_ctx, B, d, y, w, 1e-5f, xn, rstd, 0);
    mb_gemm_q8_few_rows_cpu(g_ctx, B, xn, d, &hq, want, Vp);
    for (int b = 0; b < B; b++) {
        assert_memory_equal(lg + (size_t)b * Vp, want + (size_t)b * Vp, V * sizeof(float));
        assert_true(isnan(lg[(size_t)b * Vp + V])); /* past vocab: untouched */
    }
    mb_arena_free(&ws);
    mb_q8_free(&hq);
    free(y), free(w), free(head), free(lg), free(want);
}

static void test_sample(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 31);
    float *z = new_uniform(&r, 256, -3, 3);
    const double T[3] = {1.0, 0.5, 1.7}, P[3] = {1.0, 0.9, 0.3};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) sample_grid_check(z, i == 2 ? 37 : 256, T[i], 0, P[j]);
    /* ties rank by index: 8 equal logits, nucleus 0.5 = classes 0..3 */
    float eq[8] = {0};
    sample_grid_check(eq, 8, 1.0, 0, 0.5);
    void *scratch = malloc(mb_sample_scratch_bytes(256));
    for (int i = 0; i < 100; i++) assert_true(mb_sample_pick(eq, 8, 1.0, 0, 0.5, i / 100.0, scratch) < 4);
    /* a tiny nucleus or temperature: the most likely class */
    int am = 0;
    for (int k = 1; k < 256; k++) am = z[k] > z[am] ? k : am;
    z[am] += 0.1f; /* so that exp(-0.1 / 1e-3) of the runner-up is 0 */
    for (int i = 0; i < 50; i++) {
        assert_int_equal(mb_sample_pick(z, 256, 1.0, 0, 1e-6, (i + 0.5) / 50.0, scratch), am);
        assert_int_equal(mb_sample_pick(z, 256, 1e-3, 0, 1.0, (i + 0.5) / 50.0, scratch), am);
    }
    /* top-k: alone, with a nucleus inside it and outside it, with ties
     * (8 equal logits, k 3 = classes 0..2), k 1 the most likely class */
    const int K[3] = {1, 5, 40};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++) sample_grid_check(z, 256, 1.0, K[i], P[j]);
    sample_grid_check(eq, 8, 1.0, 3, 1.0);
    sample_grid_check(eq, 8, 1.0, 6, 0.5);
    for (int i = 0; i < 50; i++) assert_int_equal(mb_sample_pick(z, 256, 1.0, 1, 1.0, (i + 0.5) / 50.0, scratch), am);
    free(scratch);

    /* a large vocabulary, peaked and flat, and classes far below the rest
     * (whose q underflows): the nucleus found without sorting the
     * vocabulary is the rule's (counts on the grid against O(V^2)) */
    float *big = new_uniform(&r, 3000, -3, 3);
    sample_grid_check(big, 3000, 1.0, 0, 0.9);
    for (int k = 0; k < 3000; k++) big[k] *= 8.f; /* peaked */
    sample_grid_check(big, 3000, 1.0, 0, 0.95);
    sample_grid_check(big, 3000, 1.0, 40, 0.95); /* top-k below the nucleus */
    sample_grid_check(big, 3000, 1.0, 3, 1.0);
    for (int k = 0; k < 3000; k++) big[k] = k % 3 ? -900.f : 0.f; /* q of 0 for two thirds */
    sample_grid_check(big, 3000, 1.0, 0, 0.999);
    sample_grid_check(big, 3000, 1.0, 1500, 0.999); /* top-k above the classes of q > 0 */
    /* top-k chosen by selection among many ties: 3000 equal logits, k 40
     * = classes 0..39 (index breaks the ties), and a flat spread */
    for (int k = 0; k < 3000; k++) big[k] = 0.f;
    sample_grid_check(big, 3000, 1.0, 40, 1.0);
    void *sb = malloc(mb_sample_scratch_bytes(3000));
    for (int i = 0; i < 200; i++) assert_true(mb_sample_pick(big, 3000, 1.0, 40, 1.0, (i + 0.5) / 200.0, sb) < 40);
    free(sb);
    for (int k = 0; k < 3000; k++) big[k] = (float)((k * 7919) % 3000) * 1e-3f;
    sample_grid_check(big, 3000, 1.0, 700, 0.8);
    free(big);

    /* the generator: uniform over 16 bins (each within 6 sigma of n/16),
     * mean 1/2, and rows, counts and seeds all change the draw */
    const int n = 160000;
    int bins[16] = {0}, same_row = 0, same_seed = 0;
    double mean = 0;
    for (int i = 0; i < n; i++) {
        const uint32_t b = mb_sample_bits(7, i, 0);
        assert_true(b < (1u << 23));
        bins[b >> 19]++;
        mean += (b + 0.5) * 0x1.0p-23;
        same_row += b == mb_sample_bits(7, i, 1);
        same_seed += b == mb_sample_bits(8, i, 0);
    }
    mean /= n;
    const double sd = sqrt(n / 16.0 * (15.0 / 16.0));
    for (int i = 0; i < 16; i++) assert_true(fabs(bins[i] - n / 16.0) < 6 * sd);
    printf("# sample     bits: mean %.5f, equal across rows %d, seeds %d of %d\n", mean, same_row, same_seed, n);
    assert_true(fabs(mean - 0.5) < 0.005);
    assert_true(same_row < 10 && same_seed < 10);

    /* the head + draw op: logits against a float64 norm and head, the draw
     * against mb_sample_pick on them, ring, counts and next input */
    for (int ln = 0; ln < 2; ln++) {
        const int B = 3, d = 10, V = 7, ld = 8, H = 4;
        float *y = new_uniform(&r, (size_t)B * d, -2, 2), *w = new_uniform(&r, d, 0.5, 1.5);
        float *bias = new_uniform(&r, d, -0.5, 0.5), *head = new_uniform(&r, (size_t)V * d, -1, 1);
        float *lg = new_const((size_t)B * ld, NAN);
        int32_t next[3], hist[3 * 4];
        int64_t count[3] = {5, 6, 11};
        const mb_sample_cfg cfg = {.seed = 99, .temperature = 0.8f, .top_p = 0.7f};
        mb_head_sample_params hp = {.batch = B, .d_model = d, .vocab = V, .ld_logits = ld, .eps = 1e-5f,
                                    .norm_w = w, .norm_b = ln ? bias : NULL, .head = head, .logits = lg,
                                    .cfg = &cfg, .count = count, .next = next, .hist = hist, .hist_len = H};
        mb_arena ws;
        assert_int_equal(mb_arena_init(&ws, g_ctx, mb_head_sample_workspace(g_ctx, &hp)), 0);
        for (int i = 0; i < B * H; i++) hist[i] = -1;
        mb_head_sample(g_ctx, &hp, y, &ws);
        double num = 0, den = 0;
        for (int b = 0; b < B; b++) {
            const float *yr = y + (size_t)b * d;
            double mu = 0, var = 0, xn[10];
            if (ln)
                for (int i = 0; i < d; i++) mu += yr[i] / (double)d;
            for (int i = 0; i < d; i++) var += (yr[i] - mu) * (yr[i] - mu) / d;
            for (int i = 0; i < d; i++) xn[i] = (yr[i] - mu) / sqrt(var + 1e-5) * w[i] + (ln ? bias[i] : 0);
            for (int k = 0; k < V; k++) {
                double ref = 0;
                for (int i = 0; i < d; i++) ref += head[(size_t)k * d + i] * xn[i];
                num += (lg[(size_t)b * ld + k] - ref) * (lg[(size_t)b * ld + k] - ref);
                den += ref * ref;
            }
            assert_true(isnan(lg[(size_t)b * ld + V])); /* past vocab: untouched */
            const int64_t c0 = b == 0 ? 5 : b == 1 ? 6 : 11;
            const double u = (mb_sample_bits(99, c0, b) + 0.5) * 0x1.0p-23;
            void *sc = malloc(mb_sample_scratch_bytes(V));
            const int want = mb_sample_pick(lg + (size_t)b * ld, V, 0.8, 0, 0.7, u, sc);
            free(sc);
            assert_int_equal(next[b], want);
            assert_int_equal(hist[b * H + c0 % H], want);
            assert_int_equal(count[b], c0 + 1);
            for (int i = 0; i < H; i++)
                if (i != c0 % H) assert_int_equal(hist[b * H + i], -1);
        }
        /* ||logits - ref|| / ||ref||, as the other ops' checks */
        const double e = sqrt(num / den);
        printf("# sample     head %s logits vs float64: rel err %.2e\n", ln ? "layernorm" : "rmsnorm", e);
        assert_true(e < 1e-5);
        mb_arena_free(&ws);
        free(y), free(w), free(bias), free(head), free(lg);
    }
    head_sample_q8_check(&r);
    free(z);
}

static int setup(void **state)
{
    (void)state;
    mb_test_seed();
    g_ctx = mb_ctx_create("cpu");
    return g_ctx ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mb_ctx_free(g_ctx);
    return 0;
}

/* ---- a stack of block steps ----------------------------------------------------------
 * mb_stack_step (the reference of the GPU's cluster kernel) is the block
 * steps layer after layer: the same bits as calling mb_block_step on each,
 * for odd and even numbers of layers (its two buffers taken in turn), from
 * h and from an embedding row, states included. */
static void test_stack_step(void **state)
{
    (void)state;
    mb_rng r;
    seed_rng(&r, 71);
    const int d = 16, Di = 32, N = 4, K = 4, R = 2, xd = R + 2 * N, V = 5;
    for (int nl = 1; nl <= 4; nl++)
        for (int tok = 0; tok < 2; tok++) {
            mb_block_step_params p[4], q[4];
            float *w[4][11], *st[4], *st2[4];
            const size_t ns = (size_t)(K - 1) * Di + (size_t)Di * N;
            for (int l = 0; l < nl; l++) {
                const size_t n[11] = {d, 2 * Di * d, Di * K, Di, xd * Di, Di * R, Di, Di * N, Di, d * Di, 0};
                for (int k = 0; k < 10; k++) w[l][k] = new_uniform(&r, n[k], k == 7 ? -1.f : -0.5f, 0.5f);
                st[l] = new_uniform(&r, ns, -1, 1);
                st2[l] = new_copy(st[l], ns);
                mb_block_step_params b = {.batch = 1, .d_model = d, .d_inner = Di, .d_state = N, .d_conv = K,
                                          .dt_rank = R, .eps = 1e-5f, .norm_w = w[l][0], .in_proj = w[l][1],
                                          .conv_w = w[l][2], .conv_b = w[l][3], .x_proj = w[l][4], .dt_w = w[l][5],
                                          .dt_b = w[l][6], .A_log = w[l][7], .D = w[l][8], .out_proj = w[l][9]};
                p[l] = q[l] = b;
                p[l].conv_state = st[l], p[l].ssm_state = st[l] + (size_t)(K - 1) * Di;
                q[l].conv_state = st2[l], q[l].ssm_state = st2[l] + (size_t)(K - 1) * Di;
            }
            float *emb = new_uniform(&r, (size_t)V * d, -1, 1), *h = new_uniform(&r, d, -1, 1);
            const int32_t t = 3;
            if (tok) p[0].tokens = q[0].tokens = &t, p[0].embed = q[0].embed = emb;
            mb_arena ws;
            assert_int_equal(mb_arena_init(&ws, g_ctx, mb_stack_step_workspace(g_ctx, nl, p)), 0);
            float got[16], want[16], a[16], b[16];
            mb_stack_step(g_ctx, nl, p, tok ? NULL : h, got, &ws);
            assert_int_equal(mb_ctx_check(g_ctx), 0);
            const float *src = tok ? NULL : h;
            for (int l = 0; l < nl; l++) {
                float *dst = l == nl - 1 ? want : l % 2 ? b : a;
                mb_block_step(g_ctx, &q[l], src, dst, &ws);
                src = dst;
            }
            assert_int_equal(mb_ctx_check(g_ctx), 0);
            assert_memory_equal(got, want, sizeof got);
            for (int l = 0; l < nl; l++) {
                assert_memory_equal(st[l], st2[l], ns * sizeof(float));
                for (int k = 0; k < 10; k++) free(w[l][k]);
                free(st[l]), free(st2[l]);
            }
            mb_arena_free(&ws);
            free(emb), free(h);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_gemm_blocked), cmocka_unit_test(test_gemm_few_rows), cmocka_unit_test(test_gemm_q8), cmocka_unit_test(test_exp8), cmocka_unit_test(test_fold8x), cmocka_unit_test(test_softplus8), cmocka_unit_test(test_sincos8), cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_colsum_bias),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_conv1d),
        cmocka_unit_test(test_act),
        cmocka_unit_test(test_shift_rows),
        cmocka_unit_test(test_vector_ops),
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_xent),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_sample),
        cmocka_unit_test(test_threads_deterministic),
        cmocka_unit_test(test_stack_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
