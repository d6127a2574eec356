/* RMSNorm and LayerNorm over the last axis of contiguous (M, C) rows.
 *
 * Row statistics are accumulated in double: rows are a few thousand wide and
 * the backward's two dot products cancel. dx rows are independent, so rows
 * are split over threads; dw/db are sums over rows, so they take a second
 * pass split over blocks of columns, each owned by one thread (no races, no
 * scratch, and the same result for any thread count). */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

enum { MB_NORM_CB = 32 }; /* columns per dw/db task */
#define MB_NORM_PAR_MIN (1 << 15)

static int min_int(int a, int b) { return a < b ? a : b; }

/* dx = beta * dx + g; beta 0 never reads dx, which may be garbage. */
static inline void put_grad(float *dx, float beta, double g)
{
    *dx = beta == 0.0f ? (float)g : (float)(beta * *dx + g);
}

/* ---- RMSNorm ------------------------------------------------------------- */

static void rms_fwd_row(int C, const float *x, const float *w, float eps, float *y, float *rstd, int r16)
{
    double ss = 0.0;
    for (int j = 0; j < C; j++) ss += (double)x[j] * x[j];
    double r = 1.0 / sqrt(ss / C + eps);
    *rstd = (float)r;
    for (int j = 0; j < C; j++) y[j] = (float)(x[j] * r * (w ? w[j] : 1.0f));
    if (r16)
        for (int j = 0; j < C; j++) y[j] = mb_bf16_keep(y[j]);
}

void mb_rmsnorm_fwd_cpu(MB_OPS_RMS_FWD_ARGS)
{
    double work = (double)M * C;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_NORM_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++)
        rms_fwd_row(C, x + (size_t)i * C, w, eps, y + (size_t)i * C, rstd + i, r16);
}

/* With xh = x r and g = dy w: dx = r (g - xh mean(g xh)). */
static void rms_bwd_row(int C, const float *x, const float *w, float rstd, const float *dy,
                        float *dx, float beta)
{
    double r = rstd, dot = 0.0;
    for (int j = 0; j < C; j++) dot += (double)dy[j] * (w ? w[j] : 1.0f) * (x[j] * r);
    double m = dot / C;
    for (int j = 0; j < C; j++) {
        double g = (double)dy[j] * (w ? w[j] : 1.0f);
        put_grad(dx + j, beta, r * (g - x[j] * r * m));
    }
}

static void rms_dw_block(int c0, int n, int M, int C, const float *x, const float *rstd,
                         const float *dy, float *dw)
{
    double acc[MB_NORM_CB] = {0};
    for (int i = 0; i < M; i++) {
        const float *xr = x + (size_t)i * C + c0, *dyr = dy + (size_t)i * C + c0;
        double r = rstd[i];
        for (int j = 0; j < n; j++) acc[j] += (double)dyr[j] * (xr[j] * r);
    }
    for (int j = 0; j < n; j++) dw[c0 + j] = (float)(dw[c0 + j] + acc[j]);
}

void mb_rmsnorm_bwd_cpu(MB_OPS_RMS_BWD_ARGS)
{
    double work = (double)M * C;
    int nb = (C + MB_NORM_CB - 1) / MB_NORM_CB;
    (void)work;
    /* dw first: after it, dx may overwrite dy (or x) in place */
    if (dw) {
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_NORM_PAR_MIN) schedule(static))
        for (int blk = 0; blk < nb; blk++) {
            int c0 = blk * MB_NORM_CB;
            rms_dw_block(c0, min_int(MB_NORM_CB, C - c0), M, C, x, rstd, dy, dw);
        }
    }
    if (!dx) return;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_NORM_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++)
        rms_bwd_row(C, x + (size_t)i * C, w, rstd[i], dy + (size_t)i * C, dx + (size_t)i * C,
                    dx_beta);
}

/* ---- LayerNorm ----------------------------------------------------------- */

static void ln_fwd_row(int C, const float *x, const float *w, const float *b, float eps, float *y,
                       float *mean, float *rstd, int r16)
{
    double s = 0.0;
    for (int j = 0; j < C; j++) s += x[j];
    double mu = s / C, var = 0.0;
    /* two passes: var = E[x^2] - mu^2 would cancel when |mu| >> std */
    for (int j = 0; j < C; j++) var += ((double)x[j] - mu) * ((double)x[j] - mu);
    double r = 1.0 / sqrt(var / C + eps);
    *mean = (float)mu;
    *rstd = (float)r;
    for (int j = 0; j < C; j++)
        y[j] = (float)(((double)x[j] - mu) * r * (w ? w[j] : 1.0f) + (b ? b[j] : 0.0f));
    if (r16)
        for (int j = 0; j < C; j++) y[j] = mb_bf16_keep(y[j]);
}

void mb_layernorm_fwd_cpu(MB_OPS_LN_FWD_ARGS)
{
    double work = (double)M * C;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_NORM_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++)
        ln_fwd_row(C, x + (size_t)i * C, w, b, eps, y + (size_t)i * C, mean + i, rstd + i, r16);
}

/* With xh = (x - mean) r and g = dy w: dx = r (g - mean(g) - xh mean(g xh)). */
static void ln_bwd_row(int C, const float *x, const float *w, float mean, float rstd,
                       const float *dy, float *dx, float beta)
{
    double mu = mean, r = rstd, sg = 0.0, sgx = 0.0;
    for (int j = 0; j < C; j++) {
        double g = (double)dy[j] * (w ? w[j] : 1.0f);
        sg += g;
        sgx += g * ((x[j] - mu) * r);
    }
    double mg = sg / C, mgx = sgx / C;
    for (int j = 0; j < C; j++) {
        double g = (double)dy[j] * (w ? w[j] : 1.0f);
        put_grad(dx + j, beta, r * (g - mg - (x[j] - mu) * r * mgx));
    }
}

static void ln_dwdb_block(int c0, int n, int M, int C, const float *x, const float *mean,
                          const float *rstd, const float *dy, float *dw, float *db)
{
    double aw[MB_NORM_CB] = {0}, ab[MB_NORM_CB] = {0};
    for (int i = 0; i < M; i++) {
        const float *xr = x + (size_t)i * C + c0, *dyr = dy + (size_t)i * C + c0;
        double mu = mean[i], r = rstd[i];
        for (int j = 0; j < n; j++) {
            aw[j] += (double)dyr[j] * ((xr[j] - mu) * r);
            ab[j] += dyr[j];
        }
    }
    for (int j = 0; j < n; j++) {
        if (dw) dw[c0 + j] = (float)(dw[c0 + j] + aw[j]);
        if (db) db[c0 + j] = (float)(db[c0 + j] + ab[j]);
    }
}

void mb_layernorm_bwd_cpu(MB_OPS_LN_BWD_ARGS)
{
    double work = (double)M * C;
    int nb = (C + MB_NORM_CB - 1) / MB_NORM_CB;
    (void)work;
    /* dw, db first: after them, dx may overwrite dy (or x) in place */
    if (dw || db) {
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_NORM_PAR_MIN) schedule(static))
        for (int blk = 0; blk < nb; blk++) {
            int c0 = blk * MB_NORM_CB;
            ln_dwdb_block(c0, min_int(MB_NORM_CB, C - c0), M, C, x, mean, rstd, dy, dw, db);
        }
    }
    if (!dx) return;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_NORM_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++)
        ln_bwd_row(C, x + (size_t)i * C, w, mean[i], rstd[i], dy + (size_t)i * C,
                   dx + (size_t)i * C, dx_beta);
}
