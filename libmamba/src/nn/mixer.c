/* The Mamba mixer: forward, backward and (through a state) the recurrent
 * step, as compositions of the ops. Nothing here touches memory directly:
 * all of it runs unchanged on any backend. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/mixer.h"

static int mixer_add(mb_params *ps, const char *prefix, const char *name, int decay, int ndim,
                     int64_t a, int64_t b, int64_t c)
{
    char full[MB_PARAM_NAME_MAX];
    int64_t shape[3] = {a, b, c};
    if (snprintf(full, sizeof full, "%s.%s", prefix, name) >= (int)sizeof full)
        return mb_error_set("internal: parameter name too long");
    return mb_params_add(ps, full, decay, ndim, shape);
}

int mb_mixer_register(mb_mixer *mx, mb_params *ps, const char *prefix, const mb_config *cfg, const mb_mixer *tie)
{
    memset(mx, 0, sizeof *mx);
    mx->d_model = cfg->d_model;
    mx->d_inner = cfg->expand * cfg->d_model;
    mx->d_state = cfg->d_state;
    mx->d_conv = cfg->d_conv;
    mx->dt_rank = cfg->dt_rank;
    mx->is_complex = cfg->init == MB_INIT_S4D_LIN;
    mx->n_bc = mx->is_complex ? 2 * cfg->d_state : cfg->d_state;
    mx->xdbl_dim = mx->dt_rank + 2 * mx->n_bc;
    const int64_t d = mx->d_model, Di = mx->d_inner, N = mx->d_state;
    /* Weight decay on matrices only: never on biases, A_log, A_imag or D. */
    mx->tied = tie != NULL;
    if (tie) {
        mx->p_in_proj = tie->p_in_proj, mx->p_in_bias = tie->p_in_bias;
    } else {
        mx->p_in_proj = mixer_add(ps, prefix, "in_proj.weight", 1, 2, 2 * Di, d, 0);
        mx->p_in_bias = cfg->bias ? mixer_add(ps, prefix, "in_proj.bias", 0, 1, 2 * Di, 0, 0) : -1;
    }
    mx->p_conv_w = mixer_add(ps, prefix, "conv1d.weight", 1, 3, Di, 1, mx->d_conv);
    mx->p_conv_b = cfg->conv_bias ? mixer_add(ps, prefix, "conv1d.bias", 0, 1, Di, 0, 0) : -1;
    mx->p_x_proj = mixer_add(ps, prefix, "x_proj.weight", 1, 2, mx->xdbl_dim, Di, 0);
    mx->p_dt_w = mixer_add(ps, prefix, "dt_proj.weight", 1, 2, Di, mx->dt_rank, 0);
    mx->p_dt_b = mixer_add(ps, prefix, "dt_proj.bias", 0, 1, Di, 0, 0);
    mx->p_A_log = mixer_add(ps, prefix, "A_log", 0, 2, Di, N, 0);
    mx->p_A_imag = mx->is_complex ? mixer_add(ps, prefix, "A_imag", 0, 2, Di, N, 0) : -1;
    mx->p_D = mixer_add(ps, prefix, "D", 0, 1, Di, 0, 0);
    if (tie) {
        mx->p_out_proj = tie->p_out_proj, mx->p_out_bias = tie->p_out_bias;
    } else {
        mx->p_out_proj = mixer_add(ps, prefix, "out_proj.weight", 1, 2, d, Di, 0);
        mx->p_out_bias = cfg->bias ? mixer_add(ps, prefix, "out_proj.bias", 0, 1, d, 0, 0) : -1;
    }
    if (mx->p_in_proj < 0 || mx->p_conv_w < 0 || (cfg->conv_bias && mx->p_conv_b < 0) || mx->p_x_proj < 0 ||
        mx->p_dt_w < 0 || mx->p_dt_b < 0 || mx->p_A_log < 0 || mx->p_D < 0 || mx->p_out_proj < 0 ||
        (mx->is_complex && mx->p_A_imag < 0) || (cfg->bias && (mx->p_in_bias < 0 || mx->p_out_bias < 0)))
        return -1;
    return 0;
}

static void fill_uniform(float *x, size_t n, double bound, mb_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * mb_rng_uniform(rng) - 1.0) * bound);
}

void mb_mixer_init_weights(const mb_mixer *mx, const mb_params *ps, float *data,
                           const mb_config *cfg, mb_rng *rng)
{
#define P(idx) (data + ps->items[idx].offset)
#define NUMEL(idx) (ps->items[idx].numel)
    const int Di = mx->d_inner, N = mx->d_state;
    /* nn.Linear / nn.Conv1d defaults: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)) */
    if (!mx->tied) fill_uniform(P(mx->p_in_proj), NUMEL(mx->p_in_proj), 1.0 / sqrt((double)mx->d_model), rng);
    fill_uniform(P(mx->p_conv_w), NUMEL(mx->p_conv_w), 1.0 / sqrt((double)mx->d_conv), rng);
    if (mx->p_conv_b >= 0) fill_uniform(P(mx->p_conv_b), NUMEL(mx->p_conv_b), 1.0 / sqrt((double)mx->d_conv), rng);
    /* the projections' biases start at zero (mamba_ssm's _init_weights),
     * without a draw: a model without them draws the same weights */
    if (mx->p_in_bias >= 0 && !mx->tied) memset(P(mx->p_in_bias), 0, NUMEL(mx->p_in_bias) * sizeof(float));
    if (mx->p_out_bias >= 0 && !mx->tied) memset(P(mx->p_out_bias), 0, NUMEL(mx->p_out_bias) * sizeof(float));
    fill_uniform(P(mx->p_x_proj), NUMEL(mx->p_x_proj), 1.0 / sqrt((double)Di), rng);
    /* dt_proj: weight U(+-dt_rank^-0.5); bias = softplus^-1(dt), dt log-uniform
     * in [dt_min, dt_max], floored */
    fill_uniform(P(mx->p_dt_w), NUMEL(mx->p_dt_w), 1.0 / sqrt((double)mx->dt_rank), rng);
    float *dtb = P(mx->p_dt_b);
    for (int i = 0; i < Di; i++) {
        double lo = log(cfg->dt_min), hi = log(cfg->dt_max);
        double dt = exp(mb_rng_uniform(rng) * (hi - lo) + lo);
        if (dt < cfg->dt_init_floor) dt = cfg->dt_init_floor;
        dtb[i] = (float)(dt + log(-expm1(-dt)));
    }
    /* S4D-Real: A = -(n+1). S4D-Lin: A = -1/2 + i pi n. */
    float *alog = P(mx->p_A_log);
    for (int i = 0; i < Di; i++)
        for (int n = 0; n < N; n++) {
            alog[(size_t)i * N + n] = mx->is_complex ? (float)log(0.5) : (float)log(n + 1.0);
            if (mx->is_complex) P(mx->p_A_imag)[(size_t)i * N + n] = (float)(MB_PI * n);
        }
    for (int i = 0; i < Di; i++) P(mx->p_D)[i] = 1.f;
    /* out_proj feeds the residual stream: rescaled by 1/sqrt(n_layer) */
    if (!mx->tied)
        fill_uniform(P(mx->p_out_proj), NUMEL(mx->p_out_proj), 1.0 / sqrt((double)Di) / sqrt((double)cfg->n_layer),
                     rng);
#undef P
#undef NUMEL
}

void mb_mixer_acts_carve(mb_mixer_acts *a, const mb_mixer *mx, int M, int with_xz, mb_carve *c)
{
    const size_t Di = mx->d_inner, m = (size_t)M;
    a->xz = with_xz ? mb_carve_take(c, m * 2 * Di) : NULL;
    a->xc = mb_carve_take(c, m * Di);
    a->xdbl = mb_carve_take(c, m * mx->xdbl_dim);
    a->delta = mb_carve_take(c, m * Di);
    a->ys = mb_carve_take(c, m * Di);
    a->A = mb_carve_take(c, Di * mx->d_state);
}

void mb_mixer_state_carve(mb_mixer_state *s, const mb_mixer *mx, int B, mb_carve *c)
{
    const size_t sf = mx->is_complex ? 2 * mx->d_state : mx->d_state;
    s->conv = mb_carve_take(c, (size_t)B * (mx->d_conv - 1) * mx->d_inner);
    s->ssm = mb_carve_take(c, (size_t)B * mx->d_inner * sf);
    s->A = NULL;
}

size_t mb_mixer_state_floats(const mb_mixer *mx, int B)
{
    mb_carve c = {NULL, 0};
    mb_mixer_state s;
    mb_mixer_state_carve(&s, mx, B, &c);
    return c.n;
}

mb_mixer_state mb_mixer_state_at(const mb_mixer *mx, float *base, size_t i)
{
    mb_carve c = {base + i * mb_mixer_state_floats(mx, 1), 0};
    mb_mixer_state s;
    mb_mixer_state_carve(&s, mx, 1, &c);
    return s;
}

void mb_mixer_state_copy(mb_ctx *ctx, const mb_mixer *mx, const mb_mixer_state *src, mb_mixer_state *dst)
{
    /* a state is one run of floats, conv then ssm (mb_mixer_state_carve) */
    mb_axpby(ctx, mb_mixer_state_floats(mx, 1), 1.f, src->conv, 0.f, dst->conv);
}

static size_t mixer_dssm_floats(const mb_mixer *mx) { return (size_t)mx->d_inner * (mx->is_complex ? 2 : 1) * mx->d_state; }
static size_t mixer_dconv_floats(const mb_mixer *mx) { return (size_t)(mx->d_conv - 1) * mx->d_inner; }

void mb_mixer_carries_carve(mb_mixer_carries *cs, const mb_mixer *mx, mb_carve *c)
{
    for (int i = 0; i < 2; i++) cs->dssm[i] = mb_carve_take(c, mixer_dssm_floats(mx));
    for (int i = 0; i < 2; i++) cs->dconv[i] = mb_carve_take(c, mixer_dconv_floats(mx));
    cs->cur = 0;
}

void mb_mixer_carries_start(mb_ctx *ctx, mb_mixer_carries *cs, const mb_mixer *mx)
{
    cs->cur = 0;
    mb_dev_zero(ctx, cs->dssm[0], mixer_dssm_floats(mx) * sizeof(float));
    mb_dev_zero(ctx, cs->dconv[0], mixer_dconv_floats(mx) * sizeof(float));
}

mb_mixer_carry mb_mixer_carries_next(mb_mixer_carries *cs)
{
    const int i = cs->cur, o = 1 - i;
    mb_mixer_carry c = {.dssm_in = cs->dssm[i], .dssm_out = cs->dssm[o], .dconv_in = cs->dconv[i],
                        .dconv_out = cs->dconv[o]};
    cs->cur = o;
    return c;
}

/* an optional tensor (a bias the config may leave out): NULL when absent */
static float *mixer_opt(const mb_params *ps, int i) { return i >= 0 ? mb_param_data(ps, i) : NULL; }
static float *mixer_opt_grad(const mb_params *ps, int i) { return i >= 0 ? mb_param_grad(ps, i) : NULL; }

static mb_scan_params mixer_scan_params(const mb_mixer *mx, const mb_params *ps, int B, int L,
                                        const mb_mixer_acts *a, const float *h0)
{
    const int Di = mx->d_inner, R = mx->dt_rank;
    mb_scan_params sp = {
        .batch = B, .seqlen = L, .dim = Di, .dstate = mx->d_state, .is_complex = mx->is_complex,
        .u = a->xc, .ld_u = Di,
        .delta = a->delta, .ld_delta = Di,
        .A = a->A,
        .A_imag = mx->is_complex ? mb_param_data(ps, mx->p_A_imag) : NULL,
        .Bm = a->xdbl + R, .ld_B = mx->xdbl_dim,
        .Cm = a->xdbl + R + mx->n_bc, .ld_C = mx->xdbl_dim,
        .Dskip = mb_param_data(ps, mx->p_D),
        .z = a->xz + Di, .ld_z = 2 * Di,
        .delta_bias = mb_param_data(ps, mx->p_dt_b),
        .delta_softplus = 1,
        .h0 = h0,
    };
    return sp;
}

size_t mb_mixer_workspace(mb_ctx *ctx, const mb_mixer *mx, int B, int L)
{
    size_t M = (size_t)B * L, Di = mx->d_inner;
    /* the scan only reads the dims and flags when sizing */
    mb_scan_params dims = {.batch = B, .seqlen = L, .dim = mx->d_inner, .dstate = mx->d_state,
                           .is_complex = mx->is_complex};
    /* mb_mixer_bwd's buffers (six, and bf16 precision's copy of dout), each
     * rounded to 64 bytes */
    size_t bwd = (mb_align64(M * Di * 4) * 3 + mb_align64(M * 2 * Di * 4) + mb_align64(M * mx->xdbl_dim * 4) +
                  mb_align64(Di * mx->d_state * 4) + mb_align64(M * mx->d_model * 4)) + 64 * 8;
    size_t need = bwd + mb_scan_workspace(ctx, &dims);
    if (L == 1) {
        mb_block_step_params bp = {.batch = B, .d_model = mx->d_model, .d_inner = mx->d_inner,
                                   .d_state = mx->d_state, .dt_rank = mx->dt_rank,
                                   .is_complex = mx->is_complex};
        size_t step = mb_block_step_workspace(ctx, &bp);
        if (step > need) need = step;
    }
    return need;
}

void mb_mixer_in_fwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *u, mb_mixer_acts *a)
{
    const int Di = mx->d_inner;
    mb_linear_fwd(ctx, M, mx->d_model, 2 * Di, u, mx->d_model, mb_param_gemm(ctx, ps, mx->p_in_proj),
                  mixer_opt(ps, mx->p_in_bias), a->xz, 2 * Di);
    /* read by the conv (x, and the conv state it leaves) and the scan (z) only */
    mb_precision_store_conv_scan(ctx, M, 2 * Di, a->xz, 2 * Di);
}

int mb_mixer_fwd_xz(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L, mb_mixer_acts *a,
                    mb_mixer_state *st, mb_arena *ws, int scan)
{
    const int M = B * L, Di = mx->d_inner, R = mx->dt_rank;
    /* A pinned for a run of steps (mb_mixer_state_pin_A), or computed here
     * into the activations, where the backward finds it */
    const float *A = st && st->A ? st->A : a->A;
    if (A == a->A)
        mb_act_fwd(ctx, MB_ACT_NEGEXP, Di, mx->d_state, mb_param_data(ps, mx->p_A_log), mx->d_state, a->A,
                   mx->d_state);
    /* each product and the conv + SiLU, the scan's gated output as the
     * precision stores them (mb_precision_store: bf16's points are
     * mamba_ssm's under autocast; the conv's weights and the scan's A, D
     * and dt bias stay fp32). The conv and the scan round their own
     * outputs (MB_OPS_ROUNDS_BF16). */
    if (st && L == 1) {
        mb_conv1d_step(ctx, B, Di, mx->d_conv, a->xz, 2 * Di, mb_param_data(ps, mx->p_conv_w),
                       mixer_opt(ps, mx->p_conv_b), st->conv, 1, a->xc, Di);
    } else {
        mb_conv1d_fwd(ctx, B, L, Di, mx->d_conv, a->xz, 2 * Di, mb_param_data(ps, mx->p_conv_w),
                      mixer_opt(ps, mx->p_conv_b), st ? st->conv : NULL, 1, a->xc, Di);
        if (st) mb_conv1d_state_update(ctx, B, L, Di, mx->d_conv, a->xz, 2 * Di, st->conv);
    }
    mb_linear_fwd(ctx, M, Di, mx->xdbl_dim, a->xc, Di, mb_param_gemm(ctx, ps, mx->p_x_proj), NULL, a->xdbl,
                  mx->xdbl_dim);
    mb_precision_store(ctx, M, mx->xdbl_dim, a->xdbl, mx->xdbl_dim);
    /* dt_proj without its bias: the scan adds it before the softplus */
    mb_linear_fwd(ctx, M, R, Di, a->xdbl, mx->xdbl_dim, mb_param_gemm(ctx, ps, mx->p_dt_w), NULL, a->delta, Di);
    mb_precision_store_conv_scan(ctx, M, Di, a->delta, Di);
    a->ys_pending = !scan;
    if (!scan) return 0;
    mb_scan_params sp = mixer_scan_params(mx, ps, B, L, a, st ? st->ssm : NULL);
    sp.A = A;
    size_t mark = ws->used;
    mb_scan_fwd(ctx, &sp, a->ys, st ? st->ssm : NULL, ws);
    ws->used = mark;
    return 0;
}

void mb_mixer_out_fwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *ys, float *out)
{
    mb_linear_fwd(ctx, M, mx->d_inner, mx->d_model, ys, mx->d_inner, mb_param_gemm(ctx, ps, mx->p_out_proj),
                  mixer_opt(ps, mx->p_out_bias), out, mx->d_model);
    mb_precision_store(ctx, M, mx->d_model, out, mx->d_model);
}

void mb_mixer_out_acc(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *ys, float *out)
{
    mb_linear_fwd_acc(ctx, M, mx->d_inner, mx->d_model, ys, mx->d_inner, mb_param_gemm(ctx, ps, mx->p_out_proj),
                      mixer_opt(ps, mx->p_out_bias), out, mx->d_model);
}

int mb_mixer_fwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L,
                 const float *u, float *out, mb_mixer_acts *a, mb_mixer_state *st, mb_arena *ws)
{
    mb_mixer_in_fwd(ctx, mx, ps, B * L, u, a);
    if (mb_mixer_fwd_xz(ctx, mx, ps, B, L, a, st, ws, out != NULL)) return -1;
    if (out) mb_mixer_out_fwd(ctx, mx, ps, B * L, a->ys, out);
    return 0;
}

void mb_mixer_state_pin_A(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, mb_mixer_state *st,
                          float *buf)
{
    mb_act_fwd(ctx, MB_ACT_NEGEXP, mx->d_inner, mx->d_state, mb_param_data(ps, mx->p_A_log), mx->d_state, buf,
               mx->d_state);
    st->A = buf;
}

mb_block_step_params mb_mixer_step_params(const mb_mixer *mx, const mb_params *ps, int B, const float *norm_w,
                                          const float *norm_b, float eps, mb_mixer_state *st, const mb_block_io *io)
{
    mb_block_step_params bp = {
        .batch = B, .d_model = mx->d_model, .d_inner = mx->d_inner, .d_state = mx->d_state,
        .d_conv = mx->d_conv, .dt_rank = mx->dt_rank, .is_complex = mx->is_complex, .eps = eps,
        .norm_w = norm_w, .norm_b = norm_b,
        .in_proj = mb_param_data(ps, mx->p_in_proj),
        .conv_w = mb_param_data(ps, mx->p_conv_w),
        .conv_b = mixer_opt(ps, mx->p_conv_b),
        .x_proj = mb_param_data(ps, mx->p_x_proj),
        .dt_w = mb_param_data(ps, mx->p_dt_w), .dt_b = mb_param_data(ps, mx->p_dt_b),
        .A_log = mb_param_data(ps, mx->p_A_log),
        .A_imag = mx->is_complex ? mb_param_data(ps, mx->p_A_imag) : NULL,
        .D = mb_param_data(ps, mx->p_D), .out_proj = mb_param_data(ps, mx->p_out_proj),
        .conv_state = st->conv, .ssm_state = st->ssm, .A = st->A,
        .in_proj_q8 = mb_param_q8(ps, mx->p_in_proj), .x_proj_q8 = mb_param_q8(ps, mx->p_x_proj),
        .out_proj_q8 = mb_param_q8(ps, mx->p_out_proj),
        .in_proj_bf16 = mb_param_bf16(ps, mx->p_in_proj), .x_proj_bf16 = mb_param_bf16(ps, mx->p_x_proj),
        .out_proj_bf16 = mb_param_bf16(ps, mx->p_out_proj),
    };
    if (io) {
        bp.tokens = io->tokens, bp.embed = io->embed, bp.ld_out = io->ld_out;
        bp.out2 = io->out2, bp.add2 = io->add2, bp.ld_out2 = io->ld_out2, bp.ld_add2 = io->ld_add2;
    }
    return bp;
}

int mb_mixer_block_step(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B,
                        const float *norm_w, const float *norm_b, float eps, const float *h,
                        float *out, mb_mixer_state *st, mb_arena *ws, const mb_block_io *io)
{
    if (mx->p_in_bias >= 0)
        return mb_error_set("internal: the fused block step has no projection biases (mb_layer_step_fits)");
    const mb_block_step_params bp = mb_mixer_step_params(mx, ps, B, norm_w, norm_b, eps, st, io);
    mb_block_step(ctx, &bp, h, out, ws);
    return mb_ctx_check(ctx);
}

const float *mb_mixer_dout_store(mb_ctx *ctx, const mb_mixer *mx, int M, const float *dout, mb_arena *ws)
{
    /* bf16 precision: every activation gradient stored as bf16 where the
     * forward stored its activation (mb_precision_store), the products'
     * input gradients from the rounded weights (mb_param_gemm); the
     * weights' gradients and the residual stream's stay fp32. The mixer's
     * output was stored as bf16, so its gradient is too: a rounded copy of
     * dout (the residual stream's gradient, which stays fp32). */
    if (ctx->precision != MB_PREC_BF16) return dout;
    const int d = mx->d_model;
    float *d16 = mb_arena_floats(ws, (size_t)M * d);
    if (!d16) return NULL;
    mb_bf16_round_copy(ctx, M, d, dout, d, d16, d);
    return d16;
}

int mb_mixer_bwd_ys(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L, const mb_mixer_acts *a,
                    const float *dys, float *dxz, mb_arena *ws, const mb_mixer_state *st0,
                    const mb_mixer_carry *carry)
{
    if (carry && B != 1) return mb_error_set("internal: chunked mixer backward needs B = 1");
    const int M = B * L, Di = mx->d_inner, R = mx->dt_rank, N = mx->d_state;
    size_t mark = ws->used;
    float *dxc = mb_arena_floats(ws, (size_t)M * Di);
    float *dxdbl = mb_arena_floats(ws, (size_t)M * mx->xdbl_dim);
    float *ddelta = mb_arena_floats(ws, (size_t)M * Di);
    float *dA = mb_arena_floats(ws, (size_t)Di * N);
    if (!dxc || !dxdbl || !ddelta || !dA) return -1;

    mb_dev_zero(ctx, dA, (size_t)Di * N * sizeof(float));
    mb_scan_params sp = mixer_scan_params(mx, ps, B, L, a, st0 ? st0->ssm : NULL);
    mb_scan_grads sg = {
        .du = dxc, .ld_du = Di,
        .ddelta = ddelta, .ld_ddelta = Di,
        .dA = dA,
        .dA_imag = mx->is_complex ? mb_param_grad(ps, mx->p_A_imag) : NULL,
        .dB = dxdbl + R, .ld_dB = mx->xdbl_dim,
        .dC = dxdbl + R + mx->n_bc, .ld_dC = mx->xdbl_dim,
        .dD = mb_param_grad(ps, mx->p_D),
        .dz = dxz + Di, .ld_dz = 2 * Di,
        .ddelta_bias = mb_param_grad(ps, mx->p_dt_b),
        .dh0 = carry ? carry->dssm_out : NULL,
        .y = a->ys_pending ? a->ys : NULL,
    };
    mb_scan_bwd(ctx, &sp, dys, carry ? carry->dssm_in : NULL, &sg, ws);
    /* A = -exp(A_log): dA_log = dA * A */
    mb_act_bwd(ctx, MB_ACT_NEGEXP, Di, N, mb_param_data(ps, mx->p_A_log), N, dA, N, dA, N);
    mb_axpby(ctx, (size_t)Di * N, 1.f, dA, 1.f, mb_param_grad(ps, mx->p_A_log));

    /* dt_proj: its input gradient fills the first R columns of dxdbl */
    mb_linear_bwd(ctx, M, R, Di, a->xdbl, mx->xdbl_dim, mb_param_gemm(ctx, ps, mx->p_dt_w), ddelta, Di,
                  dxdbl, mx->xdbl_dim, 0.f, mb_param_grad(ps, mx->p_dt_w), NULL);
    /* x_proj's output gradient whole, stored as the precision stores it:
     * the scan rounded du, ddelta, dz and y but gathers dB and dC with
     * atomics, and dt_proj's backward neither reads them nor writes past
     * column R, so one pass over the rows rounds both parts */
    mb_precision_store(ctx, M, mx->xdbl_dim, dxdbl, mx->xdbl_dim);
    mb_linear_bwd(ctx, M, Di, mx->xdbl_dim, a->xc, Di, mb_param_gemm(ctx, ps, mx->p_x_proj), dxdbl,
                  mx->xdbl_dim, dxc, Di, 1.f, mb_param_grad(ps, mx->p_x_proj), NULL);
    mb_precision_store_conv_scan(ctx, M, Di, dxc, Di); /* the conv's dy */
    /* the conv and its SiLU are one op (the conv's output recomputed, never
     * stored): no rounding between their gradients; dxc is scratch after.
     * The next chunk's conv read this chunk's last K-1 inputs: its share of
     * their gradient (carry->dconv_in) is added before dx is stored. dxz is
     * then whole: the conv rounded dx (with the carry's share) and the scan
     * dz (MB_OPS_ROUNDS_BF16). */
    mb_conv1d_bwd(ctx, B, L, Di, mx->d_conv, a->xz, 2 * Di, mb_param_data(ps, mx->p_conv_w),
                  mixer_opt(ps, mx->p_conv_b), st0 ? st0->conv : NULL, 1, dxc, Di, dxz, 2 * Di,
                  mb_param_grad(ps, mx->p_conv_w), mixer_opt_grad(ps, mx->p_conv_b), carry ? carry->dconv_out : NULL,
                  carry ? carry->dconv_in : NULL);
    ws->used = mark;
    return 0;
}

void mb_mixer_out_bwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *ys,
                      const float *dout, float *dys)
{
    const int d = mx->d_model, Di = mx->d_inner;
    mb_linear_bwd(ctx, M, Di, d, ys, Di, dys ? mb_param_gemm(ctx, ps, mx->p_out_proj) : NULL, dout, d, dys, Di, 0.f,
                  ys ? mb_param_grad(ps, mx->p_out_proj) : NULL, dys ? mixer_opt_grad(ps, mx->p_out_bias) : NULL);
    if (dys) mb_precision_store_conv_scan(ctx, M, Di, dys, Di); /* the scan's dy */
}

void mb_mixer_in_bwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *u, const float *dxz,
                     float *du, float du_beta)
{
    const int d = mx->d_model, Di = mx->d_inner;
    mb_linear_bwd(ctx, M, d, 2 * Di, u, d, mb_param_gemm(ctx, ps, mx->p_in_proj), dxz, 2 * Di, du, d, du_beta,
                  mb_param_grad(ps, mx->p_in_proj), mixer_opt_grad(ps, mx->p_in_bias));
    mb_precision_store(ctx, M, d, du, d);
}

int mb_mixer_bwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L,
                 const float *u, const mb_mixer_acts *a, const float *dout, float *du,
                 float du_beta, mb_arena *ws, const mb_mixer_state *st0,
                 const mb_mixer_carry *carry)
{
    const int M = B * L, Di = mx->d_inner;
    size_t mark = ws->used;
    float *dys = mb_arena_floats(ws, (size_t)M * Di);
    float *dxz = mb_arena_floats(ws, (size_t)M * 2 * Di);
    if (!dys || !dxz || !(dout = mb_mixer_dout_store(ctx, mx, M, dout, ws))) return -1;
    /* out_proj's input gradient needs only dout; its weight gradient needs
     * ys, which the scan's backward writes when a recompute left it */
    const int late = a->ys_pending;
    mb_mixer_out_bwd(ctx, mx, ps, M, late ? NULL : a->ys, dout, dys);
    if (mb_mixer_bwd_ys(ctx, mx, ps, B, L, a, dys, dxz, ws, st0, carry)) return -1;
    if (late) mb_mixer_out_bwd(ctx, mx, ps, M, a->ys, dout, NULL);
    mb_mixer_in_bwd(ctx, mx, ps, M, u, dxz, du, du_beta);
    ws->used = mark;
    return 0;
}
