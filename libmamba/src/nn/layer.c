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

void mb_layer_acts_carve(mb_layer_acts *a, const mb_layer *ly, int M, int flags, mb_carve *c)
{
    const int with_xz = !(flags & MB_LAYER_ACTS_NO_XZ);
    a->xn = mb_carve_take(c, (size_t)M * ly->width);
    mb_norm_acts_carve(&a->norm, &ly->norm, M, c);
    mb_mixer_acts_carve(&a->mix, &ly->mixer, M, with_xz, c);
    a->xn_r = NULL;
    if (!ly->bidir) return;
    if (flags & MB_LAYER_ACTS_PIECES) a->xn_r = mb_carve_take(c, (size_t)M * ly->width);
    mb_mixer_acts_carve(&a->mix_r, &ly->mixer_rev, M, with_xz, c);
}

size_t mb_layer_workspace(mb_ctx *ctx, const mb_layer *ly, int B, int L)
{
    /* bidir: beside what a mixer needs, the whole-sequence block's ys sum,
     * M_r's dys and dxz (layer_bidir_*), or a direction's reversed
     * gradients in and out (mb_layer_dir_*), whichever is more */
    size_t rev = 0;
    if (ly->bidir) {
        const size_t M = (size_t)B * L, Di = (size_t)ly->mixer.d_inner;
        const size_t whole = 2 * mb_align64(M * Di * sizeof(float)) + mb_align64(M * 2 * Di * sizeof(float));
        const size_t dir = 2 * mb_align64(M * ly->width * sizeof(float));
        rev = whole > dir ? whole : dir;
    }
    return rev + mb_mixer_workspace(ctx, &ly->mixer, B, L);
}

/* ys = ys_f + flip(ys_r), stored as the precision stores a sum of two
 * stored tensors */
static void layer_ys_sum(mb_ctx *ctx, const mb_layer *ly, int B, int L, const mb_layer_acts *a, float *ys)
{
    const int Di = ly->mixer.d_inner;
    mb_dev_copy_async(ctx, ys, a->mix.ys, (size_t)B * L * Di * sizeof(float));
    mb_flip_rows(ctx, B, L, Di, NULL, a->mix_r.ys, Di, 1.f, ys, Di);
    mb_precision_store(ctx, B * L, Di, ys, Di);
}

/* The BiMamba block's mixers: out = M_f(xn) + flip(M_r(flip(xn))); out
 * NULL as mb_mixer_fwd's (a recompute's activations). M_r shares M_f's
 * in_proj and out_proj, and both act on each row alone, so flip commutes
 * with them: in_proj runs once (M_r's xz is M_f's flipped) and out_proj
 * once, on ys_f + flip(ys_r) (out_proj's bias then counts twice, as in the
 * sum of the two mixers). Two of the four products a block runs, and the
 * same in the backward. */
static int layer_bidir_fwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, float *out,
                           mb_layer_acts *a, mb_arena *ws)
{
    const mb_mixer *mf = &ly->mixer, *mr = &ly->mixer_rev;
    const int M = B * L, Di = mf->d_inner;
    mb_mixer_in_fwd(ctx, mf, ps, M, a->xn, &a->mix);
    mb_flip_rows(ctx, B, L, 2 * Di, NULL, a->mix.xz, 2 * Di, 0.f, a->mix_r.xz, 2 * Di);
    if (mb_mixer_fwd_xz(ctx, mf, ps, B, L, &a->mix, NULL, ws, out != NULL) ||
        mb_mixer_fwd_xz(ctx, mr, ps, B, L, &a->mix_r, NULL, ws, out != NULL))
        return -1;
    if (!out) return 0;
    const size_t mark = ws->used;
    float *ys = mb_arena_floats(ws, (size_t)M * Di);
    if (!ys) return -1;
    layer_ys_sum(ctx, ly, B, L, a, ys);
    mb_mixer_out_fwd(ctx, mf, ps, M, ys, out);
    if (mf->p_out_bias >= 0) {
        mb_bias_add(ctx, M, ly->width, mb_param_data(ps, mf->p_out_bias), out, ly->width);
        mb_precision_store(ctx, M, ly->width, out, ly->width);
    }
    ws->used = mark;
    return 0;
}

/* Its backward, the products shared as in the forward: dys = dout
 * out_proj for both directions (M_r's flipped), dxz = dxz_f + flip(dxz_r)
 * into in_proj's one backward. */
static int layer_bidir_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L,
                           const mb_layer_acts *a, const float *dout, float *dxn, mb_arena *ws)
{
    const mb_mixer *mf = &ly->mixer, *mr = &ly->mixer_rev;
    const int M = B * L, Di = mf->d_inner;
    const size_t mark = ws->used;
    float *ys = mb_arena_floats(ws, (size_t)M * Di), *dys = mb_arena_floats(ws, (size_t)M * Di);
    float *dxz = mb_arena_floats(ws, (size_t)M * 2 * Di);
    if (!ys || !dys || !dxz || !(dout = mb_mixer_dout_store(ctx, mf, M, dout, ws))) return -1;
    /* out_proj's weight gradient needs both directions' ys, which the
     * scans' backwards write when a recompute left them */
    const int late = a->mix.ys_pending;
    if (!late) layer_ys_sum(ctx, ly, B, L, a, ys);
    mb_mixer_out_bwd(ctx, mf, ps, M, late ? NULL : ys, dout, dys);
    if (mf->p_out_bias >= 0) mb_colsum_acc(ctx, M, ly->width, dout, ly->width, mb_param_grad(ps, mf->p_out_bias));
    if (mb_mixer_bwd_ys(ctx, mf, ps, B, L, &a->mix, dys, dxz, ws, NULL, NULL)) return -1;
    /* M_r's dys, flipped, in ys's buffer: its sum is used already, or not
     * formed yet */
    float *dxz_r = mb_arena_floats(ws, (size_t)M * 2 * Di);
    if (!dxz_r) return -1;
    mb_flip_rows(ctx, B, L, Di, NULL, dys, Di, 0.f, ys, Di);
    if (mb_mixer_bwd_ys(ctx, mr, ps, B, L, &a->mix_r, ys, dxz_r, ws, NULL, NULL)) return -1;
    if (late) {
        layer_ys_sum(ctx, ly, B, L, a, ys);
        mb_mixer_out_bwd(ctx, mf, ps, M, ys, dout, NULL);
    }
    mb_flip_rows(ctx, B, L, 2 * Di, NULL, dxz_r, 2 * Di, 1.f, dxz, 2 * Di);
    mb_precision_store(ctx, M, 2 * Di, dxz, 2 * Di);
    mb_mixer_in_bwd(ctx, mf, ps, M, a->xn, dxz, dxn, 0.f);
    ws->used = mark;
    return 0;
}

int mb_layer_dir_fwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int L, const float *in, float *out,
                     mb_layer_acts *a, mb_mixer_state *st, mb_arena *ws, int dir)
{
    const int d = ly->width;
    if (!ly->bidir || !a->xn_r) return mb_error_set("internal: mb_layer_dir_fwd on a causal block or whole acts");
    mb_norm_fwd(ctx, &ly->norm, ps, L, in, a->xn, &a->norm);
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
    const int M = B * L, acc = out && out == in;
    if (acc && !mb_layer_fwd_accumulates(ctx, ly, M))
        return mb_error_set("internal: a layer's forward in place where its GEMM does not add the residual");
    mb_norm_fwd(ctx, &ly->norm, ps, M, in, a->xn, &a->norm);
    /* the residual stream stays fp32 in every precision */
    if (ly->bidir) {
        if (st) return mb_error_set("internal: a bidirectional block has no recurrent state");
        if (layer_bidir_fwd(ctx, ly, ps, B, L, out, a, ws)) return -1;
    } else if (acc) {
        /* in place: the norm has read in; the out projection adds to it.
         * One kernel (and one pass over the rows) fewer a layer: the add
         * was 2.6 of the 130m layer's ~45 us at 64 rows (session 35) */
        mb_mixer_in_fwd(ctx, &ly->mixer, ps, M, a->xn, &a->mix);
        if (mb_mixer_fwd_xz(ctx, &ly->mixer, ps, B, L, &a->mix, st, ws, 1)) return -1;
        mb_mixer_out_acc(ctx, &ly->mixer, ps, M, a->mix.ys, out);
        return 0;
    } else if (mb_mixer_fwd(ctx, &ly->mixer, ps, B, L, a->xn, out, &a->mix, st, ws)) {
        return -1;
    }
    if (out) mb_axpby(ctx, (size_t)M * ly->width, 1.f, in, 1.f, out);
    return 0;
}

int mb_layer_refwd_from_xz(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, const float *in,
                           mb_layer_acts *a, mb_mixer_state *st, mb_arena *ws)
{
    if (ly->bidir) return mb_error_set("internal: a kept in_proj output on a bidirectional block");
    mb_norm_fwd(ctx, &ly->norm, ps, B * L, in, a->xn, &a->norm);
    return mb_mixer_fwd_xz(ctx, &ly->mixer, ps, B, L, &a->mix, st, ws, 0);
}

int mb_layer_fwd_accumulates(mb_ctx *ctx, const mb_layer *ly, int M)
{
    return !mb_dev_host_memory(ctx) && ctx->precision == MB_PREC_FP32 && !ly->bidir && M > MB_LINEAR_FEW_ROWS;
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

mb_block_step_params mb_layer_step_params(const mb_layer *ly, const mb_params *ps, int B, mb_mixer_state *st,
                                          const mb_block_io *io)
{
    return mb_mixer_step_params(&ly->mixer, ps, B, mb_param_data(ps, ly->norm.p_w),
                                ly->norm.p_b >= 0 ? mb_param_data(ps, ly->norm.p_b) : NULL, ly->norm.eps, st, io);
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
