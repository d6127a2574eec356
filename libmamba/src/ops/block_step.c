/* One recurrent step of a residual Mamba block, CPU version: the
 * composition of the CPU ops that mb_mixer_fwd runs at L = 1 (norm,
 * in_proj, conv and its state, SiLU, x_proj, dt_proj, the scan from the
 * state, out_proj) and the residual add. On the CPU the ops are already
 * cheap calls with BLAS GEMMs over the B rows; fusing is the GPU's business
 * (ops/block_step.cu), and this is its reference: the same maths, written
 * once, in the ops it is made of. */
#include "ops/ops.h"

#define BS_NBUF 11 /* arena buffers taken below */

size_t mb_block_step_workspace(mb_ctx *ctx, const mb_block_step_params *p)
{
    const size_t B = (size_t)p->batch, d = (size_t)p->d_model, Di = (size_t)p->d_inner;
    const size_t nbc = (size_t)(p->is_complex ? 2 : 1) * p->d_state, xd = (size_t)p->dt_rank + 2 * nbc;
    mb_scan_params dims = {.batch = p->batch, .seqlen = 1, .dim = p->d_inner, .dstate = p->d_state,
                           .is_complex = p->is_complex};
    const size_t floats = B * (2 * d + 2 + 2 * Di + 3 * Di + xd) + Di * (size_t)p->d_state;
    return floats * sizeof(float) + BS_NBUF * 64 + mb_scan_workspace_cpu(ctx, &dims);
}

void mb_block_step_cpu(MB_OPS_BLOCK_STEP_ARGS)
{
    const int B = p->batch, d = p->d_model, Di = p->d_inner, N = p->d_state, K = p->d_conv;
    const int R = p->dt_rank, nbc = p->is_complex ? 2 * N : N, xd = R + 2 * nbc;
    const size_t mark = ws->used;
    float *xn = mb_arena_floats(ws, (size_t)B * d), *mean = mb_arena_floats(ws, B);
    float *rstd = mb_arena_floats(ws, B), *xz = mb_arena_floats(ws, (size_t)B * 2 * Di);
    float *xc = mb_arena_floats(ws, (size_t)B * Di);
    float *xdbl = mb_arena_floats(ws, (size_t)B * xd), *delta = mb_arena_floats(ws, (size_t)B * Di);
    float *y = mb_arena_floats(ws, (size_t)B * Di), *Aw = p->A ? NULL : mb_arena_floats(ws, (size_t)Di * N);
    float *he = p->tokens ? mb_arena_floats(ws, (size_t)B * d) : NULL;
    if (!xn || !mean || !rstd || !xz || !xc || !xdbl || !delta || !y || (!p->A && !Aw) ||
        (p->tokens && !he)) {
        mb_ctx_fail(ctx, "%s", mb_error_last()); /* a sizing bug: the arena said why */
        return;
    }
    if (p->tokens) {
        mb_embed_fwd_cpu(ctx, B, d, p->tokens, p->embed, he);
        h = he;
    }
    if (p->norm_b) mb_layernorm_fwd_cpu(ctx, B, d, h, p->norm_w, p->norm_b, p->eps, xn, mean, rstd, 0);
    else mb_rmsnorm_fwd_cpu(ctx, B, d, h, p->norm_w, p->eps, xn, rstd, 0);
    mb_gemm_infer_cpu(ctx, B, 2 * Di, d, xn, d, p->in_proj, p->in_proj_q8, xz, 2 * Di);
    mb_conv1d_fwd_cpu(ctx, B, 1, Di, K, xz, 2 * Di, p->conv_w, p->conv_b, p->conv_state, 1, xc, Di);
    mb_conv1d_state_update_cpu(ctx, B, 1, Di, K, xz, 2 * Di, p->conv_state);
    mb_gemm_infer_cpu(ctx, B, xd, Di, xc, Di, p->x_proj, p->x_proj_q8, xdbl, xd);
    /* dt_proj without its bias: the scan adds it before the softplus */
    mb_gemm_cpu(ctx, 0, 1, B, Di, R, 1.f, xdbl, xd, p->dt_w, R, 0.f, delta, Di);
    if (Aw) mb_act_fwd_cpu(ctx, MB_ACT_NEGEXP, Di, N, p->A_log, N, Aw, N);
    const float *A = p->A ? p->A : Aw;
    mb_scan_params sp = {
        .batch = B, .seqlen = 1, .dim = Di, .dstate = N, .is_complex = p->is_complex,
        .u = xc, .ld_u = Di, .delta = delta, .ld_delta = Di, .A = A, .A_imag = p->A_imag,
        .Bm = xdbl + R, .ld_B = xd, .Cm = xdbl + R + nbc, .ld_C = xd, .Dskip = p->D,
        .z = xz + Di, .ld_z = 2 * Di, .delta_bias = p->dt_b, .delta_softplus = 1,
        .h0 = p->ssm_state,
    };
    mb_scan_fwd_cpu(ctx, &sp, y, p->ssm_state, ws);
    const int ldo = p->ld_out ? p->ld_out : d;
    mb_gemm_infer_cpu(ctx, B, d, Di, y, Di, p->out_proj, p->out_proj_q8, out, ldo);
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * ldo;
        mb_axpby_cpu(ctx, (size_t)d, 1.f, h + (size_t)b * d, 1.f, o);
        if (!p->out2) continue;
        float *o2 = p->out2 + (size_t)b * (p->ld_out2 ? p->ld_out2 : d);
        mb_axpby_cpu(ctx, (size_t)d, 1.f, o, 0.f, o2);
        mb_axpby_cpu(ctx, (size_t)d, 1.f, p->add2 + (size_t)b * (p->ld_add2 ? p->ld_add2 : d), 1.f, o2);
    }
    ws->used = mark;
}
