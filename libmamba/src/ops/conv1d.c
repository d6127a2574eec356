/* Causal depthwise conv1d over (B, L, D) rows, channels contiguous.
 *
 * The input is read as the virtual sequence [prev; x]: position s < 0 is row
 * s + K-1 of prev (or zeros), so a sequence fed in chunks with the state
 * carried gives the same outputs as fed whole. Work is split into blocks of
 * channels so the inner loops run over contiguous floats. */
#include <string.h>

#include "ops/ops.h"

enum { MB_CONV_DB = 32 }; /* channels per task */
#define MB_CONV_PAR_MIN (1 << 15)

static int min_int(int a, int b) { return a < b ? a : b; }

/* Row of [prev; x] at position s for batch b, or NULL where it is zeros. */
static const float *conv_in_row(const float *x, int ldx, const float *prev, int b, int L, int D,
                                int K, int s)
{
    if (s >= 0) return x + ((size_t)b * L + s) * ldx;
    if (!prev) return NULL;
    return prev + ((size_t)b * (K - 1) + (size_t)(K - 1 + s)) * D;
}

/* The conv's n outputs at (b, t) for channels d0.., into out. */
static void conv_fwd_row(int b, int t, int d0, int n, int L, int D, int K, const float *x, int ldx,
                         const float *w, const float *bias, const float *prev, float *out)
{
    for (int j = 0; j < n; j++) out[j] = bias ? bias[d0 + j] : 0.0f;
    for (int k = 0; k < K; k++) {
        const float *src = conv_in_row(x, ldx, prev, b, L, D, K, t - (K - 1) + k);
        if (!src) continue;
        src += d0;
        const float *wk = w + (size_t)d0 * K + k;
        for (int j = 0; j < n; j++) out[j] += wk[(size_t)j * K] * src[j];
    }
}

void mb_conv1d_fwd_cpu(MB_OPS_CONV_FWD_ARGS)
{
    if (B <= 0 || L <= 0 || D <= 0) return;
    int nb = (D + MB_CONV_DB - 1) / MB_CONV_DB;
    int tasks = B * nb;
    double work = (double)B * L * D * K;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_CONV_PAR_MIN) schedule(static))
    for (int task = 0; task < tasks; task++) {
        int b = task / nb, d0 = (task % nb) * MB_CONV_DB;
        for (int t = 0; t < L; t++)
            conv_fwd_row(b, t, d0, min_int(MB_CONV_DB, D - d0), L, D, K, x, ldx, w, bias, prev,
                         y + ((size_t)b * L + t) * ldy + d0);
    }
    if (silu) mb_act_fwd_cpu(ctx, MB_ACT_SILU, B * L, D, y, ldy, y, ldy);
    if (MB_OPS_ROUNDS_BF16(ctx)) mb_bf16_round_copy_cpu(ctx, B * L, D, y, ldy, y, ldy);
}

/* dx[s] = sum_k w[k] dy[s + K-1 - k] over the outputs t < L that read s,
 * then (the last K-1 rows) + dnext, the next chunk's share. */
static void conv_dx_block(int b, int d0, int n, int L, int D, int K, const float *w, const float *dy,
                          int lddy, float *dx, int lddx, const float *dnext)
{
    for (int s = 0; s < L; s++) {
        float *dxr = dx + ((size_t)b * L + s) * lddx + d0;
        for (int j = 0; j < n; j++) dxr[j] = 0.0f;
        for (int k = 0; k < K; k++) {
            int t = s + (K - 1) - k;
            if (t >= L) continue;
            const float *dyr = dy + ((size_t)b * L + t) * lddy + d0;
            const float *wk = w + (size_t)d0 * K + k;
            for (int j = 0; j < n; j++) dxr[j] += wk[(size_t)j * K] * dyr[j];
        }
        const int r = s - (L - (K - 1)); /* row of dnext */
        if (dnext && r >= 0) {
            const float *nr = dnext + ((size_t)b * (K - 1) + r) * D + d0;
            for (int j = 0; j < n; j++) dxr[j] += nr[j];
        }
    }
}

/* The same for the K-1 state rows: row r is position r - (K-1). */
static void conv_dprev_block(int b, int d0, int n, int L, int D, int K, const float *w,
                             const float *dy, int lddy, float *dprev)
{
    for (int r = 0; r < K - 1; r++) {
        float *dpr = dprev + ((size_t)b * (K - 1) + r) * D + d0;
        for (int j = 0; j < n; j++) dpr[j] = 0.0f;
        for (int k = 0; k <= r; k++) {
            int t = r - k;
            if (t >= L) continue;
            const float *dyr = dy + ((size_t)b * L + t) * lddy + d0;
            const float *wk = w + (size_t)d0 * K + k;
            for (int j = 0; j < n; j++) dpr[j] += wk[(size_t)j * K] * dyr[j];
        }
    }
}

/* dw[d, k] += sum_{b,t} dy[b,t,d] in[b, t-(K-1)+k, d], one tap at a time so
 * the double accumulators fit a fixed stack block whatever K is. */
static void conv_dw_block(int d0, int n, int B, int L, int D, int K, const float *x, int ldx,
                          const float *prev, const float *dy, int lddy, float *dw, float *dbias)
{
    double acc[MB_CONV_DB];
    for (int k = 0; k < K; k++) {
        memset(acc, 0, sizeof acc);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < L; t++) {
                const float *src = conv_in_row(x, ldx, prev, b, L, D, K, t - (K - 1) + k);
                if (!src) continue;
                src += d0;
                const float *dyr = dy + ((size_t)b * L + t) * lddy + d0;
                for (int j = 0; j < n; j++) acc[j] += (double)dyr[j] * src[j];
            }
        for (int j = 0; j < n; j++) {
            float *dst = dw + (size_t)(d0 + j) * K + k;
            *dst = (float)(*dst + acc[j]);
        }
    }
    if (!dbias) return;
    memset(acc, 0, sizeof acc);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            const float *dyr = dy + ((size_t)b * L + t) * lddy + d0;
            for (int j = 0; j < n; j++) acc[j] += dyr[j];
        }
    for (int j = 0; j < n; j++) dbias[d0 + j] = (float)(dbias[d0 + j] + acc[j]);
}

/* dy <- the gradient before the SiLU, for channels d0.. of every row: the
 * conv's output recomputed a row at a time (the same operations as the
 * forward's, so the same bits as the value the forward fed its SiLU) */
static void conv_silu_grad_block(int d0, int n, int B, int L, int D, int K, const float *x, int ldx,
                                 const float *w, const float *bias, const float *prev, float *dy,
                                 int lddy)
{
    float pre[MB_CONV_DB];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) {
            float *g = dy + ((size_t)b * L + t) * lddy + d0;
            conv_fwd_row(b, t, d0, n, L, D, K, x, ldx, w, bias, prev, pre);
            mb_act_bwd_row(MB_ACT_SILU, n, pre, g, g);
        }
}

void mb_conv1d_bwd_cpu(MB_OPS_CONV_BWD_ARGS)
{
    if (B <= 0 || D <= 0) return;
    int nb = (D + MB_CONV_DB - 1) / MB_CONV_DB;
    double work = (double)B * (L + K) * D * K;
    (void)work;
    /* A task owns a block of channels across all batches: dw and dbias need
     * a sum over (b, t), and this way no two threads share an output. */
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_CONV_PAR_MIN) schedule(static))
    for (int blk = 0; blk < nb; blk++) {
        int d0 = blk * MB_CONV_DB, n = min_int(MB_CONV_DB, D - d0);
        if (silu) conv_silu_grad_block(d0, n, B, L, D, K, x, ldx, w, bias, prev, dy, lddy);
        for (int b = 0; b < B; b++) {
            conv_dx_block(b, d0, n, L, D, K, w, dy, lddy, dx, lddx, dnext);
            if (dprev) conv_dprev_block(b, d0, n, L, D, K, w, dy, lddy, dprev);
        }
        conv_dw_block(d0, n, B, L, D, K, x, ldx, prev, dy, lddy, dw, dbias);
    }
    if (L > 0 && MB_OPS_ROUNDS_BF16(ctx)) mb_bf16_round_copy_cpu(ctx, B * L, D, dx, lddx, dx, lddx);
}

void mb_conv1d_state_update_cpu(MB_OPS_CONV_STATE_ARGS)
{
    if (K <= 1 || B <= 0 || L <= 0) return;
    double work = (double)B * (K - 1) * D;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_CONV_PAR_MIN) schedule(static))
    for (int b = 0; b < B; b++) {
        float *st = prev + (size_t)b * (K - 1) * D;
        /* Row r takes position L-(K-1)+r of [prev; x]. When that is still in
         * the old state it is row r+L > r, not yet overwritten going up. */
        for (int r = 0; r < K - 1; r++) {
            int s = L - (K - 1) + r;
            const float *src = s >= 0 ? x + ((size_t)b * L + s) * ldx : st + (size_t)(r + L) * D;
            memmove(st + (size_t)r * D, src, (size_t)D * sizeof *src);
        }
    }
}

void mb_conv1d_step_cpu(MB_OPS_CONV_STEP_ARGS)
{
    mb_conv1d_fwd_cpu(ctx, B, 1, D, K, x, ldx, w, bias, state, silu, y, ldy);
    mb_conv1d_state_update_cpu(ctx, B, 1, D, K, x, ldx, state);
}
