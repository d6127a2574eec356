/* GEMM and column sums on the CPU. With OpenBLAS (MB_HAVE_CBLAS) mb_gemm_cpu
 * is cblas_sgemm; mb_gemm_blocked_cpu, our own cache-blocked loops, is
 * always compiled so the suite can check it on a build that has OpenBLAS. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef MB_HAVE_CBLAS
#include <cblas.h>
#endif

#include "ops/ops.h"
#include "ops/vmath.h"

/* An MR x NR block of C lives in registers across a KC-long slice of K.
 * Both operands are packed on the stack so the inner loop reads contiguous
 * memory whatever the transposes: a KC x NC block of op(B) (16 KiB, in
 * NR-column panels) shared by all rows of an MC x NC tile of C, and one
 * MR-row strip of op(A) (2 KiB) shared by all its panels. Tiles of C are the
 * unit of parallel work. */
enum {
    MB_GEMM_MR = 4,
    MB_GEMM_NR = 8,
    MB_GEMM_MC = 64,
    MB_GEMM_NC = 32,
    MB_GEMM_KC = 128,
};
/* Below this many multiply-adds a parallel region costs more than it saves. */
#define MB_GEMM_PAR_MIN (1 << 18)
/* A BLAS product this large (multiply-adds) is cut across our threads when
 * OpenBLAS has one (mb_gemm_cpu) */
#define MB_GEMM_SPLIT_MIN (1 << 20)
#define MB_COLSUM_PAR_MIN (1 << 15)
enum { MB_COLSUM_CB = 32 };

/* op(A)(i, k) = A[i*sai + k*sak] and op(B)(k, j) = B[k*sbk + j*sbj]: the
 * transposes become strides, so one set of loops serves all four cases. */
typedef struct {
    const float *A;
    size_t sai, sak;
    const float *B;
    size_t sbk, sbj;
} gemm_operands;

static int min_int(int a, int b) { return a < b ? a : b; }

static void scale_rows(float *C, int ldc, int m, int n, float beta)
{
    if (beta == 1.0f) return;
    for (int i = 0; i < m; i++) {
        float *c = C + (size_t)i * ldc;
        /* beta 0 overwrites: C may hold garbage (NaN) that 0 * C would keep */
        if (beta == 0.0f)
            memset(c, 0, (size_t)n * sizeof *c);
        else
            for (int j = 0; j < n; j++) c[j] *= beta;
    }
}

/* Bp[k][j] = op(B)(k0 + k, j0 + j), zero-padded to NR columns so the
 * micro-kernel never needs a column edge case. */
static void pack_b(const gemm_operands *op, int k0, int j0, int kc, int nr, float *Bp)
{
    for (int k = 0; k < kc; k++) {
        const float *b = op->B + (size_t)(k0 + k) * op->sbk + (size_t)j0 * op->sbj;
        float *dst = Bp + (size_t)k * MB_GEMM_NR;
        int j = 0;
        for (; j < nr; j++) dst[j] = b[(size_t)j * op->sbj];
        for (; j < MB_GEMM_NR; j++) dst[j] = 0.0f;
    }
}

/* Ap[k][r] = op(A)(i0 + r, k0 + k), zero-padded to MR rows. */
static void pack_a(const gemm_operands *op, int i0, int k0, int mr, int kc, float *Ap)
{
    for (int k = 0; k < kc; k++) {
        const float *a = op->A + (size_t)i0 * op->sai + (size_t)(k0 + k) * op->sak;
        float *dst = Ap + (size_t)k * MB_GEMM_MR;
        int r = 0;
        for (; r < mr; r++) dst[r] = a[(size_t)r * op->sai];
        for (; r < MB_GEMM_MR; r++) dst[r] = 0.0f;
    }
}

/* C[0:mr, 0:nr] += alpha * Ap @ Bp over kc. The fixed trip counts let the
 * compiler keep acc in vector registers; padding makes them always full. */
static void micro_kernel(int kc, const float *Ap, const float *Bp, int mr, int nr, float alpha,
                         float *C, int ldc)
{
    float acc[MB_GEMM_MR][MB_GEMM_NR] = {{0}};
    for (int k = 0; k < kc; k++) {
        const float *a = Ap + (size_t)k * MB_GEMM_MR, *b = Bp + (size_t)k * MB_GEMM_NR;
        for (int r = 0; r < MB_GEMM_MR; r++)
            for (int j = 0; j < MB_GEMM_NR; j++) acc[r][j] += a[r] * b[j];
    }
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) C[(size_t)r * ldc + j] += alpha * acc[r][j];
}

/* One MC x NC tile of C at (i0, j0): scale by beta, then add alpha op(A) op(B)
 * one KC slice at a time. */
static void gemm_tile(const gemm_operands *op, int i0, int j0, int m, int n, int K, float alpha,
                      float beta, float *C, int ldc)
{
    float Bp[MB_GEMM_KC * MB_GEMM_NC];
    float Ap[MB_GEMM_MR * MB_GEMM_KC];
    float *Ct = C + (size_t)i0 * ldc + j0;
    scale_rows(Ct, ldc, m, n, beta);
    for (int k0 = 0; k0 < K; k0 += MB_GEMM_KC) {
        int kc = min_int(MB_GEMM_KC, K - k0);
        for (int jr = 0; jr < n; jr += MB_GEMM_NR)
            pack_b(op, k0, j0 + jr, kc, min_int(MB_GEMM_NR, n - jr), Bp + (size_t)jr * kc);
        for (int ir = 0; ir < m; ir += MB_GEMM_MR) {
            int mr = min_int(MB_GEMM_MR, m - ir);
            pack_a(op, i0 + ir, k0, mr, kc, Ap);
            for (int jr = 0; jr < n; jr += MB_GEMM_NR)
                micro_kernel(kc, Ap, Bp + (size_t)jr * kc, mr, min_int(MB_GEMM_NR, n - jr), alpha,
                             Ct + (size_t)ir * ldc + jr, ldc);
        }
    }
}

void mb_gemm_blocked_cpu(MB_OPS_GEMM_ARGS)
{
    if (M <= 0 || N <= 0) return;
    /* alpha 0 or an empty K leaves only C = beta C; A and B are not read */
    if (alpha == 0.0f || K < 0) K = 0;
    gemm_operands op = {
        .A = A, .sai = transA ? 1 : (size_t)lda, .sak = transA ? (size_t)lda : 1,
        .B = B, .sbk = transB ? 1 : (size_t)ldb, .sbj = transB ? (size_t)ldb : 1,
    };
    int mt = (M + MB_GEMM_MC - 1) / MB_GEMM_MC;
    int nt = (N + MB_GEMM_NC - 1) / MB_GEMM_NC;
    int tiles = mt * nt;
    double work = (double)M * N * (K + 1);
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_GEMM_PAR_MIN) schedule(static))
    for (int t = 0; t < tiles; t++) {
        int i0 = (t / nt) * MB_GEMM_MC, j0 = (t % nt) * MB_GEMM_NC;
        gemm_tile(&op, i0, j0, min_int(MB_GEMM_MC, M - i0), min_int(MB_GEMM_NC, N - j0), K,
                  alpha, beta, C, ldc);
    }
}

/* ---- few rows: C (M, N) = alpha A (M, K) W^T + beta C, W (N, K) ------------
 * The linear layer's product at generation's batch sizes. Each thread
 * takes a contiguous slab of W's rows and streams it once, computing all M
 * dot products of a row while it is in cache: the weights, the whole cost
 * of a token, are read once by every core. (A one-row sgemm through
 * OpenBLAS packs W first, reading it twice and writing it once, and a
 * pthreads OpenBLAS, the one Debian installs, runs on one core of ours.)
 * A dot product is eight lanes summed then folded in a fixed order: the
 * same bits whatever the thread count. */
enum { MB_GEMM_LANES = 8 };

/* The few-rows kernel is cloned for AVX2 (ops/vmath.h's MB_CPU_CLONES; the
 * arithmetic, eight lanes folded in a fixed order, is the same in every
 * clone, so the bits are too). */

/* The lanes are ops/vmath.h's mb_f8 (GCC and clang's vector extension):
 * written so, the compiler keeps the sums in registers, one per row, instead
 * of spilling an array of them; SSE2 splits each into two, AVX2 takes it
 * whole. */

/* the products past the last whole lane, k..K, summed in order: a row's
 * last term for mb_f8_fold */
static inline float dot_rest(const float *a, const float *w, int k, int K)
{
    float t = 0.f;
    for (; k < K; k++) t += a[k] * w[k];
    return t;
}

static inline float dot_lanes(const float *a, const float *w, int K)
{
#ifdef MB_HAVE_LANES
    mb_f8 s = {0};
    int k = 0;
    for (; k + MB_GEMM_LANES <= K; k += MB_GEMM_LANES) s += mb_f8_load(a + k) * mb_f8_load(w + k);
    return mb_f8_fold(s, dot_rest(a, w, k, K));
#else
    float s[MB_GEMM_LANES] = {0};
    int k = 0;
    for (; k + MB_GEMM_LANES <= K; k += MB_GEMM_LANES)
        for (int j = 0; j < MB_GEMM_LANES; j++) s[j] += a[k + j] * w[k + j];
    return mb_fold8(s, dot_rest(a, w, k, K));
#endif
}

/* Four rows of A against one row of W at once: each load of W serves four
 * rows' lanes (the loads, not the arithmetic, bound a dot product in
 * cache). Each row's lanes sum in dot_lanes' order: the same bits. */
static inline void dot4_lanes(const float *a, size_t lda, const float *w, int K, float *out)
{
#ifdef MB_HAVE_LANES
    mb_f8 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    int k = 0;
    for (; k + MB_GEMM_LANES <= K; k += MB_GEMM_LANES) {
        const mb_f8 x = mb_f8_load(w + k);
        s0 += mb_f8_load(a + k) * x;
        s1 += mb_f8_load(a + lda + k) * x;
        s2 += mb_f8_load(a + 2 * lda + k) * x;
        s3 += mb_f8_load(a + 3 * lda + k) * x;
    }
    out[0] = mb_f8_fold(s0, dot_rest(a, w, k, K));
    out[1] = mb_f8_fold(s1, dot_rest(a + lda, w, k, K));
    out[2] = mb_f8_fold(s2, dot_rest(a + 2 * lda, w, k, K));
    out[3] = mb_f8_fold(s3, dot_rest(a + 3 * lda, w, k, K));
#else
    for (int r = 0; r < 4; r++) out[r] = dot_lanes(a + r * lda, w, K);
#endif
}

/* How far ahead of the rows being read W is prefetched, in floats (8 KB):
 * with the arithmetic at eight rows of A, a core read W at 7 GB/s where a
 * plain sum reads 29, the loads of the next rows not issued until these were
 * summed; asked for 8 KB ahead, the product at batch 8 of the 130m shape took
 * 24 ms a step on two cores instead of 36 (1 KB to 32 KB ahead all within 10%
 * of it). A prefetch never faults, so the one past W's end is harmless.
 * The hint is "into L2" (prefetcht2), not non-temporal (prefetchnta): so
 * asked, the 130m shape's products at 4 and 8 rows ran 1.25-1.49x faster on
 * two Zen 4 cores (bench_cpu --only rows, bench/RESULTS.md, session 54), at
 * 4 rows (one pass over W) as at 8 (two, the second reading W's rows again).
 * Why non-temporal lines cost this much here was not found out. */
enum { MB_GEMM_PREFETCH = 2048, MB_GEMM_PREFETCH_LOCALITY = 1 };

/* Two rows of W against four rows of A: eight running sums. Each add waits
 * on the one before it in its sum (a few cycles), so four sums left the two
 * adders idle part of the time; eight keep them busy and load each A lane
 * once for two products (one core, W in L3: 58 GFLOP/s before, 67 after).
 * Each sum is still its row's lanes in dot_lanes' order: the same bits. */
static inline void dot4x2_lanes(const float *a, size_t lda, const float *w0, const float *w1, int K, float *o0,
                                float *o1)
{
#ifdef MB_HAVE_LANES
    mb_f8 s00 = {0}, s01 = {0}, s02 = {0}, s03 = {0}, s10 = {0}, s11 = {0}, s12 = {0}, s13 = {0};
    int k = 0;
    for (; k + MB_GEMM_LANES <= K; k += MB_GEMM_LANES) {
        const mb_f8 x0 = mb_f8_load(w0 + k), x1 = mb_f8_load(w1 + k);
        __builtin_prefetch((const void *)((uintptr_t)(w0 + k) + MB_GEMM_PREFETCH * sizeof(float)), 0,
                           MB_GEMM_PREFETCH_LOCALITY);
        __builtin_prefetch((const void *)((uintptr_t)(w1 + k) + MB_GEMM_PREFETCH * sizeof(float)), 0,
                           MB_GEMM_PREFETCH_LOCALITY);
        mb_f8 y = mb_f8_load(a + k);
        s00 += y * x0;
        s10 += y * x1;
        y = mb_f8_load(a + lda + k);
        s01 += y * x0;
        s11 += y * x1;
        y = mb_f8_load(a + 2 * lda + k);
        s02 += y * x0;
        s12 += y * x1;
        y = mb_f8_load(a + 3 * lda + k);
        s03 += y * x0;
        s13 += y * x1;
    }
    o0[0] = mb_f8_fold(s00, dot_rest(a, w0, k, K));
    o0[1] = mb_f8_fold(s01, dot_rest(a + lda, w0, k, K));
    o0[2] = mb_f8_fold(s02, dot_rest(a + 2 * lda, w0, k, K));
    o0[3] = mb_f8_fold(s03, dot_rest(a + 3 * lda, w0, k, K));
    o1[0] = mb_f8_fold(s10, dot_rest(a, w1, k, K));
    o1[1] = mb_f8_fold(s11, dot_rest(a + lda, w1, k, K));
    o1[2] = mb_f8_fold(s12, dot_rest(a + 2 * lda, w1, k, K));
    o1[3] = mb_f8_fold(s13, dot_rest(a + 3 * lda, w1, k, K));
#else
    dot4_lanes(a, lda, w0, K, o0);
    dot4_lanes(a, lda, w1, K, o1);
#endif
}

/* M rows of A against one row of W (v[m]), the rows past the last four one
 * at a time */
static inline void dot_rows(int M, int m, const float *A, int lda, const float *w, int K, float *v)
{
    for (; m < M; m++) v[m] = dot_lanes(A + (size_t)m * lda, w, K);
}

/* column n of C from the products v[0..M) */
static inline void few_rows_put(int M, const float *v, int n, int K, float alpha, float beta, float *C, int ldc)
{
    for (int m = 0; m < M; m++) {
        float *c = C + (size_t)m * ldc + n;
        const float x = K > 0 && alpha != 0.f ? alpha * v[m] : 0.f;
        /* beta 0 overwrites: C may hold garbage (NaN) that 0 * C would keep */
        *c = beta == 0.f ? x : beta * *c + x;
    }
}

/* rows n0..n1 of the product (one task): W's rows two at a time */
MB_CPU_CLONES
static void few_rows_block(int M, int n0, int n1, int K, float alpha, const float *A, int lda, const float *W, int ldw,
                           float beta, float *C, int ldc)
{
    int n = n0;
    for (; n + 2 <= n1; n += 2) {
        const float *w0 = W + (size_t)n * ldw, *w1 = w0 + ldw;
        float v0[MB_GEMM_FEW_ROWS], v1[MB_GEMM_FEW_ROWS];
        int m = 0;
        for (; m + 4 <= M; m += 4) dot4x2_lanes(A + (size_t)m * lda, (size_t)lda, w0, w1, K, v0 + m, v1 + m);
        dot_rows(M, m, A, lda, w0, K, v0);
        dot_rows(M, m, A, lda, w1, K, v1);
        few_rows_put(M, v0, n, K, alpha, beta, C, ldc);
        few_rows_put(M, v1, n + 1, K, alpha, beta, C, ldc);
    }
    for (; n < n1; n++) {
        const float *w = W + (size_t)n * ldw;
        float v[MB_GEMM_FEW_ROWS];
        int m = 0;
        for (; m + 4 <= M; m += 4) dot4_lanes(A + (size_t)m * lda, (size_t)lda, w, K, v + m);
        dot_rows(M, m, A, lda, w, K, v);
        few_rows_put(M, v, n, K, alpha, beta, C, ldc);
    }
}

void mb_gemm_few_rows_cpu(mb_ctx *ctx, int M, int N, int K, float alpha, const float *A, int lda, const float *W,
                          int ldw, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return;
    const double work = (double)M * N * K;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
    /* blocks of rows: a task's slab of W is long enough to stream */
    const int nb = (N + 63) / 64;
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_GEMM_PAR_MIN) schedule(static))
    for (int blk = 0; blk < nb; blk++) {
        const int n0 = blk * 64, n1 = n0 + 64 < N ? n0 + 64 : N;
        few_rows_block(M, n0, n1, K, alpha, A, lda, W, ldw, beta, C, ldc);
    }
}

/* ---- int8 weights: C (M, N) = A (M, K) dequant(W)^T for M <= 8 -------------
 * The few-rows product with W as int8 and a scale per 32 values: a quarter
 * of the bytes, which at batch 1 are the whole cost of a token. A's rows
 * are quantized the same way (as llama.cpp's Q8_0 x Q8_0), so a block's 32
 * products are an exact integer sum: AVX2 forms them 32 at a time
 * (maddubs, then madd into eight int32 lanes, lane j the four products
 * 4j..4j+3), and each lane adds its sum times the two blocks' scales by a
 * fused multiply-add; without AVX2 the same lanes in C, so the bits are the
 * same on every machine and thread count. (Converting the int8 weights to
 * float lanes instead ran at half fp32's speed: the conversions, not the
 * bytes, were the time.) */
void mb_q8_quant_row(const float *x, int K, int8_t *q, float *scale)
{
    for (int b = 0; b * MB_Q8_BLOCK < K; b++) {
        const int k0 = b * MB_Q8_BLOCK, k1 = k0 + MB_Q8_BLOCK < K ? k0 + MB_Q8_BLOCK : K;
        float amax = 0.f;
        for (int k = k0; k < k1; k++) amax = fabsf(x[k]) > amax ? fabsf(x[k]) : amax;
        const float inv = amax > 0.f ? 127.f / amax : 0.f;
        scale[b] = amax / 127.f;
        for (int k = k0; k < k1; k++) q[k] = (int8_t)lrintf(x[k] * inv);
    }
}

int mb_q8_make(mb_q8 *w, const float *W, int N, int K, int ldw)
{
    memset(w, 0, sizeof *w);
    w->N = N, w->K = K, w->nb = (K + MB_Q8_BLOCK - 1) / MB_Q8_BLOCK;
    w->q = mb_calloc((size_t)N * K + 1, 1, "int8 weights");
    w->scale = mb_calloc((size_t)N * w->nb + 1, sizeof(float), "int8 weights");
    if (!w->q || !w->scale) {
        mb_q8_free(w);
        return -1;
    }
    for (int n = 0; n < N; n++) mb_q8_quant_row(W + (size_t)n * ldw, K, w->q + (size_t)n * K, w->scale + (size_t)n * w->nb);
    return 0;
}

void mb_q8_free(mb_q8 *w)
{
    free(w->q);
    free(w->scale);
    memset(w, 0, sizeof *w);
}

static int q8_portable; /* mb_q8_set_portable */
void mb_q8_set_portable(int on) { q8_portable = on; }

/* the partial last block, in plain order (both paths) */
static inline float q8_tail(const int8_t *qa, float sa, const int8_t *qw, float sw, int n)
{
    int32_t t = 0;
    for (int k = 0; k < n; k++) t += (int32_t)qa[k] * qw[k];
    return (float)t * (sa * sw);
}

/* row a (quantized) against row w, full blocks: the lanes */
static void q8_lanes_c(const int8_t *qa, const float *sa, const int8_t *qw, const float *sw, int full, float *l)
{
    for (int j = 0; j < 8; j++) l[j] = 0.f;
    for (int b = 0; b < full; b++) {
        const int8_t *x = qa + b * MB_Q8_BLOCK, *y = qw + b * MB_Q8_BLOCK;
        const float s = sa[b] * sw[b];
        for (int j = 0; j < 8; j++) {
            const int32_t v = (int32_t)x[4 * j] * y[4 * j] + (int32_t)x[4 * j + 1] * y[4 * j + 1] +
                              (int32_t)x[4 * j + 2] * y[4 * j + 2] + (int32_t)x[4 * j + 3] * y[4 * j + 3];
            l[j] = fmaf((float)v, s, l[j]);
        }
    }
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MB_Q8_AVX2 1
__attribute__((target("avx2,fma"))) static void q8_lanes_avx2(const int8_t *qa, const float *sa, const int8_t *qw,
                                                              const float *sw, int full, float *l)
{
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < full; b++) {
        const __m256i x = _mm256_loadu_si256((const __m256i *)(qa + b * MB_Q8_BLOCK));
        const __m256i y = _mm256_loadu_si256((const __m256i *)(qw + b * MB_Q8_BLOCK));
        /* |y| times x with y's sign: maddubs takes unsigned times signed
         * (no -128 in either: the quantization stays in +-127) */
        const __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(y, y), _mm256_sign_epi8(x, y));
        const __m256i p32 = _mm256_madd_epi16(p16, ones);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_set1_ps(sa[b] * sw[b]), acc);
    }
    _mm256_storeu_ps(l, acc);
}

/* four rows of A (K apart) against one row of W: each load of W and its
 * sign serve four rows; each row's lanes as q8_lanes_avx2's (the same bits) */
__attribute__((target("avx2,fma"))) static void q8_lanes4_avx2(const int8_t *qa, int K, const float *sa, int nb,
                                                               const int8_t *qw, const float *sw, int full,
                                                               float *l)
{
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < full; b++) {
        const __m256i y = _mm256_loadu_si256((const __m256i *)(qw + b * MB_Q8_BLOCK));
        const __m256i ay = _mm256_sign_epi8(y, y);
        for (int r = 0; r < 4; r++) {
            const __m256i x = _mm256_loadu_si256((const __m256i *)(qa + (size_t)r * K + b * MB_Q8_BLOCK));
            const __m256i p32 = _mm256_madd_epi16(_mm256_maddubs_epi16(ay, _mm256_sign_epi8(x, y)), ones);
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p32), _mm256_set1_ps(sa[(size_t)r * nb + b] * sw[b]), acc[r]);
        }
    }
    for (int r = 0; r < 4; r++) _mm256_storeu_ps(l + 8 * r, acc[r]);
}
#endif

/* rows n0..n1 of the product (one task); qa, sa: A's rows quantized */
static void q8_rows_block(int M, int n0, int n1, const int8_t *qa, const float *sa, const mb_q8 *W, float *C,
                          int ldc, int avx2)
{
    const int K = W->K, nb = W->nb, full = K / MB_Q8_BLOCK, rest = K - full * MB_Q8_BLOCK;
    (void)avx2;
    for (int n = n0; n < n1; n++) {
        const int8_t *qw = W->q + (size_t)n * K;
        const float *sw = W->scale + (size_t)n * nb;
        for (int m = 0; m < M; m++) {
            const int8_t *x = qa + (size_t)m * K;
            const float *s = sa + (size_t)m * nb;
            float l[8];
#ifdef MB_Q8_AVX2
            if (avx2 && m % 4 == 0 && m + 4 <= M) {
                /* four rows at once, then their folds */
                float l4[32];
                q8_lanes4_avx2(x, K, s, nb, qw, sw, full, l4);
                for (int r = 0; r < 4; r++) {
                    const float t = rest ? q8_tail(x + (size_t)r * K + full * MB_Q8_BLOCK, s[(size_t)r * nb + full],
                                                   qw + full * MB_Q8_BLOCK, sw[full], rest)
                                         : 0.f;
                    C[(size_t)(m + r) * ldc + n] = mb_fold8(l4 + 8 * r, t);
                }
                m += 3;
                continue;
            }
            if (avx2) q8_lanes_avx2(x, s, qw, sw, full, l);
            else
#endif
                q8_lanes_c(x, s, qw, sw, full, l);
            const float t = rest ? q8_tail(x + full * MB_Q8_BLOCK, s[full], qw + full * MB_Q8_BLOCK, sw[full], rest) : 0.f;
            C[(size_t)m * ldc + n] = mb_fold8(l, t);
        }
    }
}

void mb_gemm_q8_few_rows_cpu(mb_ctx *ctx, int M, const float *A, int lda, const mb_q8 *W, float *C, int ldc)
{
    if (M <= 0 || W->N <= 0) return;
    /* A's rows quantized on the stack: M <= 8 rows of K <= MB_Q8_MAX_K */
    int8_t qa[MB_GEMM_FEW_ROWS * MB_Q8_MAX_K];
    float sa[MB_GEMM_FEW_ROWS * (MB_Q8_MAX_K / MB_Q8_BLOCK)];
    if (M > MB_GEMM_FEW_ROWS || W->K > MB_Q8_MAX_K) {
        mb_ctx_fail(ctx, "internal: int8 product of %d rows of %d", M, W->K);
        return;
    }
    for (int m = 0; m < M; m++)
        mb_q8_quant_row(A + (size_t)m * lda, W->K, qa + (size_t)m * W->K, sa + (size_t)m * W->nb);
#ifdef MB_Q8_AVX2
    static int has = -1;
    if (has < 0) has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const int avx2 = has && !q8_portable;
#else
    const int avx2 = 0;
#endif
    const double work = (double)M * W->N * W->K;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
    const int nb = (W->N + 63) / 64;
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_GEMM_PAR_MIN) schedule(static))
    for (int blk = 0; blk < nb; blk++) {
        const int n0 = blk * 64, n1 = n0 + 64 < W->N ? n0 + 64 : W->N;
        q8_rows_block(M, n0, n1, qa, sa, W, C, ldc, avx2);
    }
}

void mb_gemm_cpu(MB_OPS_GEMM_ARGS)
{
    /* generation's products (a few rows against a weight matrix): streamed
     * on every core rather than through a GEMM built for large M */
    if (!transA && transB && M <= MB_GEMM_FEW_ROWS) {
        mb_gemm_few_rows_cpu(ctx, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#ifdef MB_HAVE_CBLAS
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {
        /* BLAS would also do this, but insists on lda >= max(1, K) */
        mb_gemm_blocked_cpu(ctx, transA, transB, M, N, 0, 0.0f, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* With beta 0 OpenBLAS stores zeros first, so NaN garbage in C does not
     * survive (the suite checks it). An OpenMP OpenBLAS shares our threads.
     * A pthreads one has one thread (ctx.c: two pools fought for the
     * cores), so a large product ran on one core while our other threads
     * spun (perf, mamba-dna pretrain on 2 cores: 20% of the time in sgemm,
     * 18% in libgomp's wait): it is cut into one slab of C a thread, along
     * its longer side, at multiples of 16 (whole tiles of OpenBLAS's
     * kernels), each slab a single-threaded call. */
    const CBLAS_TRANSPOSE ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans;
    const int nt = ctx->n_threads;
    if (nt > 1 && openblas_get_parallel() != 2 && (double)M * N * K >= MB_GEMM_SPLIT_MIN) {
        const int rows = M >= N, len = rows ? M : N;
        (void)rows; /* read inside the OpenMP region only */
MB_OMP(omp parallel for num_threads(nt) schedule(static))
        for (int i = 0; i < nt; i++) {
            const int lo = i ? (int)(((long)len * i / nt + 15) / 16 * 16) : 0;
            const int hi = i + 1 < nt ? (int)(((long)len * (i + 1) / nt + 15) / 16 * 16) : len;
            const int e = hi < len ? hi : len;
            if (e <= lo) continue;
            if (rows)
                cblas_sgemm(CblasRowMajor, ta, tb, e - lo, N, K, alpha, transA ? A + lo : A + (size_t)lo * lda, lda,
                            B, ldb, beta, C + (size_t)lo * ldc, ldc);
            else
                cblas_sgemm(CblasRowMajor, ta, tb, M, e - lo, K, alpha, A, lda,
                            transB ? B + (size_t)lo * ldb : B + lo, ldb, beta, C + lo, ldc);
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    mb_gemm_blocked_cpu(ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

void mb_gemm_infer_cpu(mb_ctx *ctx, int M, int N, int K, const float *A, int lda, const float *W, const mb_q8 *Wq,
                       float *C, int ldc)
{
    if (!Wq || M > MB_GEMM_FEW_ROWS) {
        mb_gemm_cpu(ctx, 0, 1, M, N, K, 1.f, A, lda, W, K, 0.f, C, ldc);
        return;
    }
    if (N > Wq->N || K != Wq->K) {
        mb_ctx_fail(ctx, "internal: %d x %d product through int8 weights of %d x %d", N, K, Wq->N, Wq->K);
        return;
    }
    /* the first N rows of Wq (the head of a draw reads the vocabulary, not
     * its padding): a row's values and scales are contiguous, so a copy of
     * the header with fewer rows is a view of them */
    mb_q8 v = *Wq;
    v.N = N;
    mb_gemm_q8_few_rows_cpu(ctx, M, A, lda, &v, C, ldc);
}

void mb_colsum_acc_cpu(mb_ctx *ctx, int M, int N, const float *x, int ldx, float *out)
{
    if (M <= 0 || N <= 0) return;
    int nb = (N + MB_COLSUM_CB - 1) / MB_COLSUM_CB;
    double work = (double)M * N;
    (void)work;
    /* Each task owns a block of columns and walks all rows: no two threads
     * touch one output, and the sum order does not depend on the threads. */
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_COLSUM_PAR_MIN) schedule(static))
    for (int blk = 0; blk < nb; blk++) {
        int j0 = blk * MB_COLSUM_CB, n = min_int(MB_COLSUM_CB, N - j0);
        double acc[MB_COLSUM_CB] = {0};
        for (int i = 0; i < M; i++) {
            const float *r = x + (size_t)i * ldx + j0;
            for (int j = 0; j < n; j++) acc[j] += r[j];
        }
        for (int j = 0; j < n; j++) out[j0 + j] = (float)(out[j0 + j] + acc[j]);
    }
}
