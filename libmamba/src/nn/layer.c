#include <stdio.h>

#include "nn/layer.h"

int mb_layer_register(mb_layer *ly, mb_params *ps, const char *prefix, const mb_config *cfg)
{
    char name[MB_PARAM_NAME_MAX];
    ly->width = cfg->d_model;
    if (snprintf(name, sizeof name, "%s.norm", prefix) >= (int)sizeof name)
        return mb_error_set("internal: parameter name too long");
    if (mb_norm_register(&ly->norm, ps, name, cfg->d_model, cfg->rms_norm, cfg->norm_eps)) return -1;
    ly->bidir = cfg->arch == MB_ARCH_BIDIR;
    if (!ly->bidir) {
        snprintf(name, sizeof name, "%s.mixer", prefix);
        return mb_mixer_register(&ly->mixer, ps, name, cfg, NULL);
    }
    snprintf(name, sizeof name, "%s.mixer.mamba_fwd", prefix);
    if (mb_mixer_register(&ly->mixer, ps, name, cfg, NULL)) return -1;
    snprintf(name, sizeof name, "%s.mixer.mamba_rev", prefix);
    return mb_mixer_register(&ly->mixer_rev, ps, name, cfg, &ly->mixer);
}

void mb_layer_init_weights(const mb_layer *ly, const mb_params *ps, float *host, const mb_config *cfg,
                           mb_rng *rng)
{
    mb_norm_init_weights(&ly->norm, ps, host);
    mb_mixer_init_weights(&ly->mixer, ps, host, cfg, rng);
    if (ly->bidir) mb_mixer_init_weights(&ly->mixer_rev, ps, host, cfg, rng);
}

void mb_layer_acts_carve(mb_layer_acts *a, const mb_layer *ly, int M, mb_carve *c)
{
    a->xn = mb_carve_take(c, (size_t)M * ly->width);
    mb_norm_acts_carve(&a->norm, &ly->norm, M, c);
    mb_mixer_acts_carve(&a->mix, &ly->mixer, M, c);
    a->xn_r = NULL;
    if (!ly->bidir) return;
    a->xn_r = mb_carve_take(c, (size_t)M * ly->width);
    mb_mixer_acts_carve(&a->mix_r, &ly->mixer_rev, M, c);
}

size_t mb_layer_workspace(mb_ctx *ctx, const mb_layer *ly, int B, int L)
{
    /* bidir: M_r's output (forward), or the reversed gradients in and out
     * (backward), beside what a mixer needs */
    const size_t rev = ly->bidir ? 2 * mb_align64((size_t)B * L * ly->width * sizeof(float)) : 0;
    return rev + mb_mixer_workspace(ctx, &ly->mixer, B, L);
}

/* The BiMamba block's mixers: out = M_f(xn) + flip(M_r(flip(xn))), xn_r =
 * flip(xn) kept; out NULL as mb_mixer_fwd's (a recompute's activations).
 * In bf16 precision the sum of the two (stored) outputs is stored too, as
 * autocast adds two bf16 tensors. */
static int layer_bidir_fwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, float *out,
                           mb_layer_acts *a, mb_arena *ws)
{
    const int M = B * L, d = ly->width;
    if (mb_mixer_fwd(ctx, &ly->mixer, ps, B, L, a->xn, out, &a->mix, NULL, ws)) return -1;
    mb_flip_rows(ctx, B, L, d, NULL, a->xn, d, 0.f, a->xn_r, d);
    const size_t mark = ws->used;
    float *o_r = out ? mb_arena_floats(ws, (size_t)M * d) : NULL;
    if (out && !o_r) return -1;
    if (mb_mixer_fwd(ctx, &ly->mixer_rev, ps, B, L, a->xn_r, o_r, &a->mix_r, NULL, ws)) return -1;
    if (out) {
        mb_flip_rows(ctx, B, L, d, NULL, o_r, d, 1.f, out, d);
        mb_precision_store(ctx, M, d, out, d);
    }
    ws->used = mark;
    return 0;
}

/* Its backward: dxn = dM_f(dout) + flip(dM_r(flip(dout))), the sum stored
 * as the precision does (two gradients meeting on one activation). */
static int layer_bidir_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L,
                           const mb_layer_acts *a, const float *dout, float *dxn, mb_arena *ws)
{
    const int M = B * L, d = ly->width;
    if (mb_mixer_bwd(ctx, &ly->mixer, ps, B, L, a->xn, &a->mix, dout, dxn, 0.f, ws, NULL, NULL)) return -1;
    const size_t mark = ws->used;
    float *dr = mb_arena_floats(ws, (size_t)M * d), *dxr = mb_arena_floats(ws, (size_t)M * d);
    if (!dr || !dxr) return -1;
    mb_flip_rows(ctx, B, L, d, NULL, dout, d, 0.f, dr, d);
    if (mb_mixer_bwd(ctx, &ly->mixer_rev, ps, B, L, a->xn_r, &a->mix_r, dr, dxr, 0.f, ws, NULL, NULL)) return -1;
    mb_flip_rows(ctx, B, L, d, NULL, dxr, d, 1.f, dxn, d);
    mb_precision_store(ctx, M, d, dxn, d);
    ws->used = mark;
    return 0;
}

int mb_layer_dir_fwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int L, const float *in, float *out,
                     mb_layer_acts *a, mb_mixer_state *st, mb_arena *ws, int dir)
{
    const int d = ly->width;
    if (!ly->bidir) return mb_error_set("internal: mb_layer_dir_fwd on a causal block");
    mb_norm_fwd(ctx, &ly->norm, ps, L, in, a->xn, &a->norm);
    mb_precision_store(ctx, L, d, a->xn, d);
    if (dir == 0) return mb_mixer_fwd(ctx, &ly->mixer, ps, 1, L, a->xn, out, &a->mix, st, ws);
    mb_flip_rows(ctx, 1, L, d, NULL, a->xn, d, 0.f, a->xn_r, d);
    const size_t mark = ws->used;
    float *o_r = out ? mb_arena_floats(ws, (size_t)L * d) : NULL;
    if (out && !o_r) return -1;
    if (mb_mixer_fwd(ctx, &ly->mixer_rev, ps, 1, L, a->xn_r, o_r, &a->mix_r, st, ws)) return -1;
    if (out) mb_flip_rows(ctx, 1, L, d, NULL, o_r, d, 1.f, out, d);
    ws->used = mark;
    return 0;
}

int mb_layer_dir_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int L, const mb_layer_acts *a,
                     const float *dout, float *dxn, mb_arena *ws, const mb_mixer_state *st0,
                     const mb_mixer_carry *carry, int dir)
{
    const int d = ly->width;
    if (dir == 0) return mb_mixer_bwd(ctx, &ly->mixer, ps, 1, L, a->xn, &a->mix, dout, dxn, 0.f, ws, st0, carry);
    const size_t mark = ws->used;
    float *dr = mb_arena_floats(ws, (size_t)L * d), *dxr = mb_arena_floats(ws, (size_t)L * d);
    if (!dr || !dxr) return -1;
    mb_flip_rows(ctx, 1, L, d, NULL, dout, d, 0.f, dr, d);
    if (mb_mixer_bwd(ctx, &ly->mixer_rev, ps, 1, L, a->xn_r, &a->mix_r, dr, dxr, 0.f, ws, st0, carry)) return -1;
    mb_flip_rows(ctx, 1, L, d, NULL, dxr, d, 1.f, dxn, d);
    ws->used = mark;
    return 0;
}

void mb_layer_norm_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int M, const float *in, mb_layer_acts *a,
                       const float *dxn, float *dh)
{
    mb_norm_fwd(ctx, &ly->norm, ps, M, in, a->xn, &a->norm);
    mb_norm_bwd(ctx, &ly->norm, ps, M, in, &a->norm, dxn, dh, 1.f);
}

int mb_layer_fwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, const float *in,
                 float *out, mb_layer_acts *a, mb_mixer_state *st, mb_arena *ws)
{
    const int M = B * L;
    mb_norm_fwd(ctx, &ly->norm, ps, M, in, a->xn, &a->norm);
    mb_precision_store(ctx, M, ly->width, a->xn, ly->width);
    /* the residual stream stays fp32 in every precision */
    if (ly->bidir) {
        if (st) return mb_error_set("internal: a bidirectional block has no recurrent state");
        if (layer_bidir_fwd(ctx, ly, ps, B, L, out, a, ws)) return -1;
    } else if (mb_mixer_fwd(ctx, &ly->mixer, ps, B, L, a->xn, out, &a->mix, st, ws)) {
        return -1;
    }
    if (out) mb_axpby(ctx, (size_t)M * ly->width, 1.f, in, 1.f, out);
    return 0;
}

int mb_layer_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, const float *in,
                 const mb_layer_acts *a, float *dh, float *dxn, mb_arena *ws, const mb_mixer_state *st0,
                 const mb_mixer_carry *carry)
{
    if (ly->bidir) {
        if (st0 || carry) return mb_error_set("internal: a bidirectional block has no recurrent state");
        if (layer_bidir_bwd(ctx, ly, ps, B, L, a, dh, dxn, ws)) return -1;
    } else if (mb_mixer_bwd(ctx, &ly->mixer, ps, B, L, a->xn, &a->mix, dh, dxn, 0.f, ws, st0, carry)) {
        return -1;
    }
    mb_norm_bwd(ctx, &ly->norm, ps, B * L, in, &a->norm, dxn, dh, 1.f);
    return 0;
}

int mb_layer_step(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, const float *h, float *out,
                  mb_mixer_state *st, mb_arena *ws, const mb_block_io *io)
{
    return mb_mixer_block_step(ctx, &ly->mixer, ps, B, mb_param_data(ps, ly->norm.p_w),
                               ly->norm.p_b >= 0 ? mb_param_data(ps, ly->norm.p_b) : NULL, ly->norm.eps, h,
                               out, st, ws, io);
}

static mb_block_step_params layer_step_dims(const mb_layer *ly, int B)
{
    const mb_mixer *mx = &ly->mixer;
    const mb_block_step_params bp = {.batch = B, .d_model = mx->d_model, .d_inner = mx->d_inner,
                                     .d_state = mx->d_state, .d_conv = mx->d_conv, .dt_rank = mx->dt_rank,
                                     .is_complex = mx->is_complex};
    return bp;
}

int mb_layer_step_fits(mb_ctx *ctx, const mb_layer *ly)
{
    if (ly->mixer.p_in_bias >= 0) return 0; /* the fused op has no projection biases */
    const mb_block_step_params bp = layer_step_dims(ly, 1);
    return mb_block_step_fits(ctx, &bp);
}

int mb_layer_step_prefers(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B)
{
    mb_block_step_params bp = layer_step_dims(ly, B);
    const mb_mixer *mx = &ly->mixer;
    bp.in_proj_bf16 = mb_param_bf16(ps, mx->p_in_proj), bp.x_proj_bf16 = mb_param_bf16(ps, mx->p_x_proj);
    bp.out_proj_bf16 = mb_param_bf16(ps, mx->p_out_proj);
    return mb_block_step_prefers(ctx, &bp);
}
