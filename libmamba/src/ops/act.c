/* Elementwise activations and vector reductions on the CPU. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

#define MB_ACT_PAR_MIN (1 << 15)
/* Reductions split n into this many fixed chunks and add the partial sums in
 * chunk order: the result does not depend on the thread count. */
enum { MB_RED_CHUNKS = 64 };

/* torch.nn.functional.softplus's default threshold */
#define MB_SOFTPLUS_THRESHOLD 20.0f
/* GELU, exact (erf) form as torch.nn.GELU() */
#define MB_INV_SQRT2 0.70710678118654752f
#define MB_INV_SQRT_2PI 0.39894228040143268f

static inline float sigmoid_f(float x) { return 1.0f / (1.0f + expf(-x)); }

/* The switch sits outside the loops so each inner loop is branch-free. */
static void act_fwd_row(mb_act act, int N, const float *x, float *y)
{
    switch (act) {
    case MB_ACT_SILU:
        for (int j = 0; j < N; j++) y[j] = x[j] * sigmoid_f(x[j]);
        break;
    case MB_ACT_SOFTPLUS:
        for (int j = 0; j < N; j++)
            y[j] = x[j] > MB_SOFTPLUS_THRESHOLD ? x[j] : log1pf(expf(x[j]));
        break;
    case MB_ACT_NEGEXP:
        for (int j = 0; j < N; j++) y[j] = -expf(x[j]);
        break;
    case MB_ACT_GELU:
        for (int j = 0; j < N; j++) y[j] = 0.5f * x[j] * (1.0f + erff(x[j] * MB_INV_SQRT2));
        break;
    }
}

void mb_act_bwd_row(mb_act act, int N, const float *x, const float *dy, float *dx)
{
    switch (act) {
    case MB_ACT_SILU:
        for (int j = 0; j < N; j++) {
            float s = sigmoid_f(x[j]);
            dx[j] = dy[j] * (s * (1.0f + x[j] * (1.0f - s)));
        }
        break;
    case MB_ACT_SOFTPLUS:
        for (int j = 0; j < N; j++)
            dx[j] = x[j] > MB_SOFTPLUS_THRESHOLD ? dy[j] : dy[j] * sigmoid_f(x[j]);
        break;
    case MB_ACT_NEGEXP:
        for (int j = 0; j < N; j++) dx[j] = dy[j] * -expf(x[j]);
        break;
    case MB_ACT_GELU:
        for (int j = 0; j < N; j++) {
            float cdf = 0.5f * (1.0f + erff(x[j] * MB_INV_SQRT2));
            float pdf = expf(-0.5f * x[j] * x[j]) * MB_INV_SQRT_2PI;
            dx[j] = dy[j] * (cdf + x[j] * pdf);
        }
        break;
    }
}

void mb_act_fwd_cpu(MB_OPS_ACT_FWD_ARGS)
{
    double work = (double)M * N;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_ACT_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++) act_fwd_row(act, N, x + (size_t)i * ldx, y + (size_t)i * ldy);
}

void mb_act_bwd_cpu(MB_OPS_ACT_BWD_ARGS)
{
    double work = (double)M * N;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_ACT_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++)
        mb_act_bwd_row(act, N, x + (size_t)i * ldx, dy + (size_t)i * lddy, dx + (size_t)i * lddx);
}

void mb_to_bf16_cpu(mb_ctx *ctx, size_t n, const float *x, uint16_t *y)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) y[i] = mb_bf16_round(x[i]);
}

void mb_bf16_round_copy_cpu(mb_ctx *ctx, int rows, int cols, const float *x, int ldx, float *y, int ldy)
{
    (void)ctx;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) y[(size_t)r * ldy + c] = mb_bf16_keep(x[(size_t)r * ldx + c]);
}

void mb_axpby_cpu(mb_ctx *ctx, size_t n, float a, const float *x, float b, float *y)
{
    ptrdiff_t nn = (ptrdiff_t)n;
    (void)nn;
    /* b 0 overwrites, as BLAS does: y may be uninitialized */
    if (b == 0.0f) {
        (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (n > MB_ACT_PAR_MIN) schedule(static))
        for (ptrdiff_t i = 0; i < nn; i++) y[i] = a * x[i];
        return;
    }
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (n > MB_ACT_PAR_MIN) schedule(static))
    for (ptrdiff_t i = 0; i < nn; i++) y[i] = a * x[i] + b * y[i];
}

static size_t red_chunks(size_t n) { return n > MB_ACT_PAR_MIN ? MB_RED_CHUNKS : 1; }

double mb_sumsq_cpu(mb_ctx *ctx, size_t n, const float *x)
{
    double part[MB_RED_CHUNKS];
    int nc = (int)red_chunks(n);
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (nc > 1) schedule(static))
    for (int c = 0; c < nc; c++) {
        size_t lo = n * (size_t)c / (size_t)nc, hi = n * (size_t)(c + 1) / (size_t)nc;
        double s = 0.0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0.0;
    for (int c = 0; c < nc; c++) s += part[c];
    return s;
}

/* Exponent bits all set means Inf or NaN; a bit test keeps working under
 * -ffinite-math-only, where isfinite() may be folded to true. */
static inline int is_nonfinite(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return (u & 0x7f800000u) == 0x7f800000u;
}

size_t mb_count_nonfinite_cpu(mb_ctx *ctx, size_t n, const float *x)
{
    size_t part[MB_RED_CHUNKS];
    int nc = (int)red_chunks(n);
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (nc > 1) schedule(static))
    for (int c = 0; c < nc; c++) {
        size_t lo = n * (size_t)c / (size_t)nc, hi = n * (size_t)(c + 1) / (size_t)nc;
        size_t k = 0;
        for (size_t i = lo; i < hi; i++) k += (size_t)is_nonfinite(x[i]);
        part[c] = k;
    }
    size_t k = 0;
    for (int c = 0; c < nc; c++) k += part[c];
    return k;
}
