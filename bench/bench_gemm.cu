/* The generation step's GEMMs at a few rows, through the call libmamba
 * makes and through cublasLt's algorithms, each timed: whether choosing the
 * algorithm per shape (as an autotuner would at a shape's first use) is
 * worth building into mb_gemm (issue 15). At 64 rows the 130m layer's four
 * GEMMs, with cuBLAS's split-K reductions after two of them, are 55% of its
 * time with TF32 (session 35's profile): x_proj (1536 -> 80, 0.5 MB of
 * weights) took 7.4 + 3.5 us there, in_proj ran 48 blocks on 132 SMs.
 *
 * For each shape (y = x W^T, row-major as mb_gemm: M rows, N outputs, K
 * inputs) and mode (fp32; TF32 as mb_ctx_set_tf32; bf16, the products of
 * bf16 precision: fp32 arrays, bf16 tensor-core inputs, fp32 sums):
 *   sgemm    the call mb_gemm_cuda makes: cublasSgemm (the math mode per
 *            mode), in bf16 cublasGemmEx with CUBLAS_COMPUTE_32F_FAST_16BF
 *   lt h0    cublasLtMatmul with the heuristic's first algorithm
 *   lt best  the fastest of the heuristic's algorithms (up to 32), and its
 *            configuration (algorithm id, tile id, split-K, stages)
 *   floor    W, x and y moved once at the measured copy bandwidth
 * Each time is the median of 5 replays of a CUDA graph of 50 launches (the
 * step is replayed from a graph), the weights taken from several copies in
 * turn so that they come from DRAM, as a model's layers' do. Each lt result
 * is checked against sgemm's of the same mode (the largest difference over
 * the largest |y|; TF32 against TF32).
 *
 * --train [M]: the DNA model's training products instead (d_model 256:
 * each linear's forward, input gradient and weight gradient as mb_linear
 * calls mb_gemm, M rows, default 131,072: the layer recompute's chunk),
 * in fp32 (cublasSgemm), TF32, bf16 and 3xTF32 (each operand split into
 * a TF32 part and the rest, hi hi + hi lo + lo hi by three TF32 GEMMs, the
 * splits' passes timed with them): whether fp32's accuracy can be had at
 * tensor-core speed. err: the largest |y - y64| / sum |a_k b_k| over 512
 * entries against a float64 sum on the host.
 *
 * A microbenchmark of the device and cuBLAS, not of libmamba. Prints a
 * table; no pass/fail.
 *
 *   bench_gemm [--quick | --train [M]] */
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_cuda.h"

#define BM_CHECK(call) BENCH_CUDA_CHECK("bench_gemm", call)
#define BM_BLAS(call)                                                                               \
    do {                                                                                            \
        cublasStatus_t s_ = (call);                                                                 \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                          \
            fprintf(stderr, "bench_gemm: %s:%d: %s: cuBLAS status %d\n", __FILE__, __LINE__, #call, \
                    (int)s_);                                                                       \
            exit(1);                                                                                \
        }                                                                                           \
    } while (0)

#define BM_WS_BYTES ((size_t)64 << 20) /* cublasLt's workspace (split-K partials) */
#define BM_MAX_ALGOS 32
#define BM_LAUNCHES 50
#define BM_RUNS 5
#define BM_ROTATE_BYTES ((size_t)160 << 20) /* weight copies past any L2 */

typedef struct {
    const char *name;
    int N, K;
} bm_shape;

/* the mixers' products and the LM head of the three shapes bench_generate
 * times (dt_rank = ceil(d_model / 16), vocab padded to 8) */
static const bm_shape g_shapes[] = {
    {"dna in_proj", 1024, 256},      {"dna x_proj", 48, 512},         {"dna dt_proj", 512, 16},
    {"dna out_proj", 256, 512},      {"130m in_proj", 3072, 768},     {"130m x_proj", 80, 1536},
    {"130m dt_proj", 1536, 48},      {"130m out_proj", 768, 1536},    {"130m head", 50280, 768},
    {"2.8b in_proj", 10240, 2560},   {"2.8b x_proj", 192, 5120},      {"2.8b dt_proj", 5120, 160},
    {"2.8b out_proj", 2560, 5120},
};

typedef struct {
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    cudaStream_t s;
    void *ws;
} bm_ctx;

/* operands: nw copies of W (N x K), x (M x K), y (M x N); the timed
 * launches take the copies in turn from `next` on, across runs and
 * algorithms, so that a copy comes back only after the others (over L2's
 * size) have passed */
enum { BM_FP32, BM_TF32, BM_BF16 };
static const char *const g_mode_name[] = {"fp32", "tf32", "bf16"};

typedef struct {
    int M, N, K, nw, next, mode;
    float **W, *x, *y;
} bm_ops;

static void bm_fill(float *d, size_t n, uint64_t seed, float scale)
{
    float *h = (float *)malloc(n * sizeof(float));
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        h[i] = scale * ((float)(r >> 40) / (float)(1 << 24) * 2.f - 1.f);
    }
    BM_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    free(h);
}

/* y = x W^T as mb_gemm_cuda computes it: column-major y^T = W x^T */
static void bm_sgemm(bm_ctx *c, const bm_ops *o, int i)
{
    const float one = 1.f, zero = 0.f;
    if (o->mode == BM_BF16) {
        BM_BLAS(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, o->N, o->M, o->K, &one, o->W[i], CUDA_R_32F, o->K,
                             o->x, CUDA_R_32F, o->K, &zero, o->y, CUDA_R_32F, o->N, CUBLAS_COMPUTE_32F_FAST_16BF,
                             CUBLAS_GEMM_DEFAULT));
        return;
    }
    BM_BLAS(cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, o->N, o->M, o->K, &one, o->W[i], o->K, o->x, o->K,
                        &zero, o->y, o->N));
}

typedef struct {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulHeuristicResult_t res[BM_MAX_ALGOS];
    int n;
} bm_lt;

static void bm_lt_make(bm_ctx *c, const bm_ops *o, bm_lt *l)
{
    const cublasOperation_t t = CUBLAS_OP_T, nn = CUBLAS_OP_N;
    const cublasComputeType_t ct = o->mode == BM_BF16   ? CUBLAS_COMPUTE_32F_FAST_16BF
                                   : o->mode == BM_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                        : CUBLAS_COMPUTE_32F;
    BM_BLAS(cublasLtMatmulDescCreate(&l->op, ct, CUDA_R_32F));
    BM_BLAS(cublasLtMatmulDescSetAttribute(l->op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    BM_BLAS(cublasLtMatmulDescSetAttribute(l->op, CUBLASLT_MATMUL_DESC_TRANSB, &nn, sizeof nn));
    /* column-major: W is K x N (ld K) taken transposed, x^T K x M, y^T N x M */
    BM_BLAS(cublasLtMatrixLayoutCreate(&l->a, CUDA_R_32F, o->K, o->N, o->K));
    BM_BLAS(cublasLtMatrixLayoutCreate(&l->b, CUDA_R_32F, o->K, o->M, o->K));
    BM_BLAS(cublasLtMatrixLayoutCreate(&l->d, CUDA_R_32F, o->N, o->M, o->N));
    cublasLtMatmulPreference_t pref;
    BM_BLAS(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = BM_WS_BYTES;
    BM_BLAS(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    l->n = 0;
    BM_BLAS(cublasLtMatmulAlgoGetHeuristic(c->lt, l->op, l->a, l->b, l->d, l->d, pref, BM_MAX_ALGOS, l->res,
                                           &l->n));
    BM_BLAS(cublasLtMatmulPreferenceDestroy(pref));
}

static void bm_lt_free(bm_lt *l)
{
    cublasLtMatrixLayoutDestroy(l->a);
    cublasLtMatrixLayoutDestroy(l->b);
    cublasLtMatrixLayoutDestroy(l->d);
    cublasLtMatmulDescDestroy(l->op);
}

/* 0, or the cuBLAS status of an algorithm that will not run this shape */
static cublasStatus_t bm_lt_run(bm_ctx *c, const bm_ops *o, const bm_lt *l, int k, int i)
{
    const float one = 1.f, zero = 0.f;
    return cublasLtMatmul(c->lt, l->op, &one, o->W[i], l->a, o->x, l->b, &zero, o->y, l->d, o->y, l->d,
                          &l->res[k].algo, c->ws, BM_WS_BYTES, c->s);
}

/* us a GEMM: median of BM_RUNS replays of a CUDA graph of BM_LAUNCHES
 * launches (weights in turn); -1 when the algorithm k fails (lt only).
 * Replayed from a graph as the generation step is: timed launch after
 * launch, cublasSgemm's host side (its heuristic's lookup at every call)
 * counted and made lt's prepared plans look 1.1-1.4x faster at these
 * shapes (session 36), a gain that the graph-replayed step did not show
 * (the gemm-lt trial, session 37: level to 0.3%). */
static float bm_time(bm_ctx *c, bm_ops *o, const bm_lt *l, int k)
{
    float v[BM_RUNS];
    /* a failing algorithm is found here, before a capture it would break */
    for (int w = 0; w < 3; w++) {
        const int i = o->next++ % o->nw;
        if (!l) bm_sgemm(c, o, i);
        else if (bm_lt_run(c, o, l, k, i) != CUBLAS_STATUS_SUCCESS) return -1.f;
    }
    cudaGraph_t g;
    cudaGraphExec_t ge;
    BM_CHECK(cudaStreamBeginCapture(c->s, cudaStreamCaptureModeThreadLocal));
    cublasStatus_t bad = CUBLAS_STATUS_SUCCESS;
    for (int j = 0; j < BM_LAUNCHES && bad == CUBLAS_STATUS_SUCCESS; j++) {
        const int i = o->next++ % o->nw;
        if (!l) bm_sgemm(c, o, i);
        else bad = bm_lt_run(c, o, l, k, i);
    }
    BM_CHECK(cudaStreamEndCapture(c->s, &g));
    if (bad != CUBLAS_STATUS_SUCCESS) {
        BM_CHECK(cudaGraphDestroy(g));
        return -1.f;
    }
    BM_CHECK(cudaGraphInstantiate(&ge, g, 0));
    BM_CHECK(cudaGraphLaunch(ge, c->s)); /* the first replay uploads the graph */
    for (int r = 0; r < BM_RUNS; r++) {
        bench_timer t = bench_tic(c->s);
        BM_CHECK(cudaGraphLaunch(ge, c->s));
        v[r] = bench_toc(t, c->s) * 1e3f / BM_LAUNCHES;
    }
    BM_CHECK(cudaGraphExecDestroy(ge));
    BM_CHECK(cudaGraphDestroy(g));
    BM_CHECK(cudaGetLastError());
    return bench_median_f(v, BM_RUNS);
}

/* y as it stands, to the host */
static float *bm_download(const bm_ops *o)
{
    const size_t n = (size_t)o->M * o->N;
    float *h = (float *)malloc(n * sizeof(float));
    BM_CHECK(cudaMemcpy(h, o->y, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

static double bm_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

static void bm_row(bm_ctx *c, const bm_shape *sh, int M, int mode, double bw)
{
    bm_ops o = {M, sh->N, sh->K, 0, 0, mode, NULL, NULL, NULL};
    const size_t wb = (size_t)sh->N * sh->K * sizeof(float);
    o.nw = (int)((BM_ROTATE_BYTES + wb - 1) / wb);
    if (o.nw < 2) o.nw = 2;
    o.W = (float **)malloc((size_t)o.nw * sizeof(float *));
    for (int i = 0; i < o.nw; i++) {
        BM_CHECK(cudaMalloc(&o.W[i], wb));
        if (i == 0) bm_fill(o.W[0], (size_t)sh->N * sh->K, 7, 1.f / sqrtf((float)sh->K));
        else BM_CHECK(cudaMemcpy(o.W[i], o.W[0], wb, cudaMemcpyDeviceToDevice));
    }
    BM_CHECK(cudaMalloc(&o.x, (size_t)M * sh->K * sizeof(float)));
    BM_CHECK(cudaMalloc(&o.y, (size_t)M * sh->N * sizeof(float)));
    bm_fill(o.x, (size_t)M * sh->K, 3, 1.f);

    BM_BLAS(cublasSetMathMode(c->blas, mode == BM_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const float t_sg = bm_time(c, &o, NULL, 0);
    bm_sgemm(c, &o, 0);
    float *ref = bm_download(&o);

    bm_lt l;
    bm_lt_make(c, &o, &l);
    float t_h0 = -1.f, t_best = 1e30f;
    int best = -1;
    double diff = 0;
    for (int k = 0; k < l.n; k++) {
        const float t = bm_time(c, &o, &l, k);
        if (t < 0) continue;
        if (k == 0) t_h0 = t;
        BM_CHECK(cudaMemset(o.y, 0xFF, (size_t)M * sh->N * sizeof(float)));
        if (bm_lt_run(c, &o, &l, k, 0) != CUBLAS_STATUS_SUCCESS) continue;
        float *got = bm_download(&o);
        const double d = bm_diff(got, ref, (size_t)M * sh->N);
        free(got);
        if (d > diff) diff = d;
        if (t < t_best) t_best = t, best = k;
    }
    char cfg[64] = "-";
    if (best >= 0) {
        int id = 0, tile = 0, split = 0, stages = 0;
        size_t w;
        const cublasLtMatmulAlgo_t *a = &l.res[best].algo;
        cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &w);
        cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &w);
        cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split, sizeof split, &w);
        cublasLtMatmulAlgoConfigGetAttribute(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &w);
        snprintf(cfg, sizeof cfg, "#%d: id %d tile %d split %d st %d", best, id, tile, split, stages);
    }
    const double bytes = (double)wb + 4.0 * M * ((double)sh->K + sh->N);
    const double floor_us = bytes / bw * 1e6;
    printf("| %-14s | %4d | %-4s | %8.2f | %8.2f | %8.2f | %-30s | %3d | %7.2f | %5.2fx | %8.1e |\n", sh->name, M,
           g_mode_name[mode], t_sg, t_h0, best >= 0 ? t_best : -1.f, cfg, l.n, floor_us,
           best >= 0 ? t_sg / t_best : 0.0, diff);
    fflush(stdout);
    bm_lt_free(&l);
    free(ref);
    for (int i = 0; i < o.nw; i++) BM_CHECK(cudaFree(o.W[i]));
    free(o.W);
    BM_CHECK(cudaFree(o.x));
    BM_CHECK(cudaFree(o.y));
}

/* ---- --train: the DNA model's training products ---------------------------- */

enum { BT_FP32, BT_TF32, BT_BF16, BT_3X };
static const char *const g_bt_name[] = {"fp32", "tf32", "bf16", "3xtf32"};

/* a row-major product C (M x N) = op(A) op(B) as mb_gemm takes it (tA: A
 * is stored K x M) */
typedef struct {
    const char *name;
    int tA, tB, M, N, K;
} bt_shape;

/* x rounded to TF32 (nearest, ties away: cvt.rna) and the rest, both exact */
static __global__ void bt_split_kernel(const float *x, float *hi, float *lo, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const float v = x[i];
        const float h = __uint_as_float((__float_as_uint(v) + 0x1000u) & 0xFFFFE000u);
        hi[i] = h;
        lo[i] = v - h;
    }
}

typedef struct {
    bt_shape s;
    float *A, *B, *C, *Ah, *Al, *Bh, *Bl;
    size_t na, nb;
} bt_ops;

static void bt_gemm1(bm_ctx *c, const bt_ops *o, int mode, const float *A, const float *B, float beta)
{
    const bt_shape *s = &o->s;
    const float one = 1.f;
    const int lda = s->tA ? s->M : s->K, ldb = s->tB ? s->K : s->N;
    const cublasOperation_t oa = s->tA ? CUBLAS_OP_T : CUBLAS_OP_N, ob = s->tB ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (mode == BT_BF16) {
        BM_BLAS(cublasGemmEx(c->blas, ob, oa, s->N, s->M, s->K, &one, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta,
                             o->C, CUDA_R_32F, s->N, CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
        return;
    }
    BM_BLAS(cublasSetMathMode(c->blas, mode == BT_FP32 ? CUBLAS_DEFAULT_MATH : CUBLAS_TF32_TENSOR_OP_MATH));
    BM_BLAS(cublasSgemm(c->blas, ob, oa, s->N, s->M, s->K, &one, B, ldb, A, lda, &beta, o->C, s->N));
}

static void bt_run(bm_ctx *c, const bt_ops *o, int mode)
{
    if (mode != BT_3X) {
        bt_gemm1(c, o, mode, o->A, o->B, 0.f);
        return;
    }
    bt_split_kernel<<<1024, 256, 0, c->s>>>(o->A, o->Ah, o->Al, o->na);
    bt_split_kernel<<<1024, 256, 0, c->s>>>(o->B, o->Bh, o->Bl, o->nb);
    BM_CHECK(cudaGetLastError());
    bt_gemm1(c, o, BT_TF32, o->Al, o->Bh, 0.f);
    bt_gemm1(c, o, BT_TF32, o->Ah, o->Bl, 1.f);
    bt_gemm1(c, o, BT_TF32, o->Ah, o->Bh, 1.f);
}

static float bt_time(bm_ctx *c, const bt_ops *o, int mode)
{
    float v[BM_RUNS];
    bt_run(c, o, mode);
    for (int r = 0; r < BM_RUNS; r++) {
        bench_timer t = bench_tic(c->s);
        for (int j = 0; j < 5; j++) bt_run(c, o, mode);
        v[r] = bench_toc(t, c->s) * 1e3f / 5;
    }
    return bench_median_f(v, BM_RUNS);
}

static void bt_row(bm_ctx *c, const bt_shape *s)
{
    bt_ops o;
    o.s = *s;
    o.na = (size_t)s->M * s->K, o.nb = (size_t)s->K * s->N;
    float **bufs[] = {&o.A, &o.Ah, &o.Al, &o.B, &o.Bh, &o.Bl};
    for (int i = 0; i < 6; i++) BM_CHECK(cudaMalloc(bufs[i], (i < 3 ? o.na : o.nb) * sizeof(float)));
    BM_CHECK(cudaMalloc(&o.C, (size_t)s->M * s->N * sizeof(float)));
    bm_fill(o.A, o.na, 3, 1.f);
    bm_fill(o.B, o.nb, 7, 1.f / sqrtf((float)s->K));
    float *hA = (float *)malloc(o.na * sizeof(float)), *hB = (float *)malloc(o.nb * sizeof(float));
    float *hC = (float *)malloc((size_t)s->M * s->N * sizeof(float));
    BM_CHECK(cudaMemcpy(hA, o.A, o.na * sizeof(float), cudaMemcpyDeviceToHost));
    BM_CHECK(cudaMemcpy(hB, o.B, o.nb * sizeof(float), cudaMemcpyDeviceToHost));
    const double flop = 2.0 * s->M * s->N * (double)s->K;
    printf("| %-16s | %6d | %6d | %6d |", s->name, s->M, s->N, s->K);
    for (int mode = BT_FP32; mode <= BT_3X; mode++) {
        const float us = bt_time(c, &o, mode);
        bt_run(c, &o, mode);
        BM_CHECK(cudaMemcpy(hC, o.C, (size_t)s->M * s->N * sizeof(float), cudaMemcpyDeviceToHost));
        double err = 0;
        uint64_t r = 12345;
        for (int e = 0; e < 512; e++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            const int i = (int)(r % (uint64_t)s->M), j = (int)((r >> 32) % (uint64_t)s->N);
            double y = 0, mag = 0;
            for (int k = 0; k < s->K; k++) {
                const double a = s->tA ? hA[(size_t)k * s->M + i] : hA[(size_t)i * s->K + k];
                const double b = s->tB ? hB[(size_t)j * s->K + k] : hB[(size_t)k * s->N + j];
                y += a * b, mag += fabs(a * b);
            }
            const double d = mag > 0 ? fabs(hC[(size_t)i * s->N + j] - y) / mag : 0;
            if (d > err) err = d;
        }
        printf(" %9.1f %6.1f %8.1e |", us, flop / (us * 1e-6) / 1e12, err);
    }
    printf("\n");
    fflush(stdout);
    free(hA), free(hB), free(hC);
    for (int i = 0; i < 6; i++) BM_CHECK(cudaFree(*bufs[i]));
    BM_CHECK(cudaFree(o.C));
}

/* the DNA model's linears (d_model 256, d_inner 512, dt_rank 16, d_state
 * 16): in_proj 256 -> 1024, x_proj 512 -> 48, dt_proj 16 -> 512, out_proj
 * 512 -> 256; each as mb_linear_fwd (y = x W^T), mb_linear_bwd's dW (dy^T
 * x, over M) and dx (dy W) */
static void bt_table(bm_ctx *c, int M)
{
    static const struct {
        const char *name;
        int in, out;
    } lin[] = {{"in_proj", 256, 1024}, {"x_proj", 512, 48}, {"dt_proj", 16, 512}, {"out_proj", 512, 256}};
    printf("| product          |      M |      N |      K |");
    for (int mode = BT_FP32; mode <= BT_3X; mode++) printf(" %-6s us  TFLOP/s  err      |", g_bt_name[mode]);
    printf("\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 4; i++) {
        char n[3][32];
        snprintf(n[0], 32, "%s y", lin[i].name);
        snprintf(n[1], 32, "%s dW", lin[i].name);
        snprintf(n[2], 32, "%s dx", lin[i].name);
        const bt_shape sh[3] = {{n[0], 0, 1, M, lin[i].out, lin[i].in},
                                {n[1], 1, 0, lin[i].out, lin[i].in, M},
                                {n[2], 0, 0, M, lin[i].in, lin[i].out}};
        for (int j = 0; j < 3; j++) bt_row(c, &sh[j]);
    }
}

int main(int argc, char **argv)
{
    int quick = 0, train = 0;
    if (argc >= 2 && !strcmp(argv[1], "--train")) {
        train = argc >= 3 ? atoi(argv[2]) : 131072;
        if (argc > 3 || train < 1) {
            fprintf(stderr, "usage: bench_gemm [--quick | --train [M]]\n");
            return 2;
        }
    } else quick = bench_args_quick(argc, argv, "bench_gemm");
    bm_ctx c;
    BM_CHECK(cudaStreamCreate(&c.s));
    BM_BLAS(cublasCreate(&c.blas));
    BM_BLAS(cublasSetStream(c.blas, c.s));
    BM_BLAS(cublasLtCreate(&c.lt));
    BM_CHECK(cudaMalloc(&c.ws, BM_WS_BYTES));
    cudaDeviceProp prop;
    BM_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (train) {
        printf("The DNA model's training products on %s (%d SMs), M = %d; us a product (median of %d runs of 5), "
               "TFLOP/s, err (|y - y64| / sum |a b|, 512 entries)\n\n",
               prop.name, prop.multiProcessorCount, train, BM_RUNS);
        bt_table(&c, train);
        return 0;
    }
    const double bw = bench_copy_bandwidth(c.s, (size_t)256 << 20, 5);
    printf("GEMMs of the generation step on %s (%d SMs), copy bandwidth %.0f GB/s (read + write); us a GEMM, "
           "median of %d replays of a graph of %d launches; lt best: the fastest of the heuristic's algorithms (n); "
           "gain: sgemm / lt best; diff: lt's largest |y - sgemm's y| / max |y|, same mode\n\n",
           prop.name, prop.multiProcessorCount, bw / 1e9, BM_RUNS, BM_LAUNCHES);
    printf("| shape          | rows | mode | sgemm    | lt h0    | lt best  | best algorithm                 |   n | floor   | gain   | diff     |\n");
    printf("|----------------|------|------|----------|----------|----------|--------------------------------|-----|---------|--------|----------|\n");
    static const int rows_all[] = {64, 16, 256}, rows_quick[] = {64};
    const int *rows = quick ? rows_quick : rows_all, nr = quick ? 1 : 3;
    for (int ri = 0; ri < nr; ri++)
        for (size_t i = 0; i < sizeof g_shapes / sizeof g_shapes[0]; i++)
            for (int mode = BM_FP32; mode <= BM_BF16; mode++) {
                if (quick && strncmp(g_shapes[i].name, "130m", 4)) continue;
                bm_row(&c, &g_shapes[i], rows[ri], mode, bw);
            }
    BM_CHECK(cudaFree(c.ws));
    cublasLtDestroy(c.lt);
    cublasDestroy(c.blas);
    BM_CHECK(cudaStreamDestroy(c.s));
    return 0;
}
