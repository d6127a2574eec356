/* One recurrent step of a residual Mamba block, CPU reference. See ops.h
 * for the maths; it is the same as norm + mb_mixer_fwd at L = 1 with the
 * state + the residual add, written as one loop per row so that a step is
 * one call (the CUDA version is one kernel). Scratch per row comes from the
 * arena: xn, x|z, dt|B|C and the gated scan output. */
#include <math.h>

#include "ops/ops.h"

static inline float bs_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
static inline float bs_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }

size_t mb_block_step_scratch_floats(const mb_block_step_params *p)
{
    const size_t nbc = (size_t)(p->is_complex ? 2 : 1) * p->d_state;
    return (size_t)p->batch * ((size_t)p->d_model + 3 * (size_t)p->d_inner + p->dt_rank + 2 * nbc);
}

/* y (n) = W (n, k) x (k): nn.Linear without bias */
static void bs_gemv(int n, int k, const float *W, const float *x, float *y)
{
    for (int i = 0; i < n; i++) {
        const float *w = W + (size_t)i * k;
        float acc = 0.f;
        for (int j = 0; j < k; j++) acc += w[j] * x[j];
        y[i] = acc;
    }
}

static void bs_row(const mb_block_step_params *p, int b, const float *h, float *out, float *sc)
{
    const int d = p->d_model, Di = p->d_inner, N = p->d_state, K = p->d_conv, R = p->dt_rank;
    const int nbc = p->is_complex ? 2 * N : N, sf = nbc;
    const float *hr = h + (size_t)b * d;
    float *xn = sc, *xz = xn + d, *xdbl = xz + 2 * Di, *y = xdbl + R + 2 * nbc;

    /* norm: RMSNorm, or LayerNorm when there is a bias */
    float mean = 0.f, ss = 0.f;
    if (p->norm_b) {
        for (int i = 0; i < d; i++) mean += hr[i];
        mean /= (float)d;
    }
    for (int i = 0; i < d; i++) ss += (hr[i] - mean) * (hr[i] - mean);
    const float rstd = 1.f / sqrtf(ss / (float)d + p->eps);
    for (int i = 0; i < d; i++)
        xn[i] = (hr[i] - mean) * rstd * p->norm_w[i] + (p->norm_b ? p->norm_b[i] : 0.f);

    bs_gemv(2 * Di, d, p->in_proj, xn, xz);

    /* conv over [state; x], the state shifted by one, SiLU into x's place */
    float *cs = p->conv_state + (size_t)b * (K - 1) * Di;
    for (int c = 0; c < Di; c++) {
        const float *w = p->conv_w + (size_t)c * K;
        float acc = p->conv_b ? p->conv_b[c] : 0.f;
        for (int k = 0; k < K - 1; k++) acc += w[k] * cs[(size_t)k * Di + c];
        acc += w[K - 1] * xz[c];
        for (int k = 0; k + 1 < K - 1; k++) cs[(size_t)k * Di + c] = cs[(size_t)(k + 1) * Di + c];
        if (K > 1) cs[(size_t)(K - 2) * Di + c] = xz[c];
        xz[c] = acc * bs_sigmoid(acc);
    }

    bs_gemv(R + 2 * nbc, Di, p->x_proj, xz, xdbl);
    const float *Bt = xdbl + R, *Ct = Bt + nbc;

    float *hs = p->ssm_state + (size_t)b * Di * sf;
    for (int c = 0; c < Di; c++) {
        const float *wdt = p->dt_w + (size_t)c * R;
        float dt = p->dt_b[c];
        for (int r = 0; r < R; r++) dt += wdt[r] * xdbl[r];
        dt = bs_softplus(dt);
        const float x = xz[c], dtx = dt * x;
        const float *Al = p->A_log + (size_t)c * N;
        float *hc = hs + (size_t)c * sf;
        float acc = 0.f;
        if (!p->is_complex) {
            for (int n = 0; n < N; n++) {
                hc[n] = expf(dt * -expf(Al[n])) * hc[n] + dtx * Bt[n];
                acc += Ct[n] * hc[n];
            }
        } else {
            const float *Ai = p->A_imag + (size_t)c * N;
            for (int n = 0; n < N; n++) {
                const float mag = expf(dt * -expf(Al[n]));
                const float ar = mag * cosf(dt * Ai[n]), ai = mag * sinf(dt * Ai[n]);
                const float h_r = hc[2 * n], h_i = hc[2 * n + 1];
                const float nr = ar * h_r - ai * h_i + dtx * Bt[2 * n];
                const float ni = ar * h_i + ai * h_r + dtx * Bt[2 * n + 1];
                hc[2 * n] = nr;
                hc[2 * n + 1] = ni;
                acc += Ct[2 * n] * nr - Ct[2 * n + 1] * ni;
            }
            acc *= 2.f;
        }
        const float zc = xz[Di + c];
        y[c] = (acc + p->D[c] * x) * zc * bs_sigmoid(zc);
    }

    float *o = out + (size_t)b * d;
    bs_gemv(d, Di, p->out_proj, y, o);
    for (int i = 0; i < d; i++) o[i] += hr[i];
}

void mb_block_step_cpu(MB_OPS_BLOCK_STEP_ARGS)
{
    const int B = p->batch;
    const size_t per_row = mb_block_step_scratch_floats(p) / (size_t)B, mark = ws->used;
    float *sc = mb_arena_floats(ws, per_row * B);
    if (!sc) {
        ctx->failed = 1; /* a sizing bug: the arena said why */
        return;
    }
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (B > 1) schedule(static))
    for (int b = 0; b < B; b++) bs_row(p, b, h, out, sc + (size_t)b * per_row);
    ws->used = mark;
}
