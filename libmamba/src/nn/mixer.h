/* The Mamba mixer (mamba_ssm's Mamba module): in_proj -> causal conv1d ->
 * SiLU -> x_proj -> dt_proj -> selective scan (D skip, z gate) -> out_proj. */
#ifndef MB_MIXER_H
#define MB_MIXER_H

#include "nn/params.h"
#include "ops/ops.h"

typedef struct {
    int d_model, d_inner, d_state, d_conv, dt_rank, is_complex;
    int n_bc;     /* floats per B (and per C) row: N, or 2N when complex */
    int xdbl_dim; /* dt_rank + 2 * n_bc: x_proj's output width */
    /* indices into the owning model's parameter table (-1 when absent) */
    int p_in_proj, p_conv_w, p_conv_b, p_x_proj, p_dt_w, p_dt_b, p_A_log, p_A_imag, p_D, p_out_proj;
    int p_in_bias, p_out_bias; /* cfg->bias only; p_conv_b -1 without cfg->conv_bias */
    int tied; /* in_proj and out_proj (and their biases) are another mixer's */
} mb_mixer;

/* What forward keeps for backward, over M = B*L rows. */
typedef struct {
    float *xz;    /* (M, 2*Di): x | z from in_proj */
    float *xc;    /* (M, Di): after SiLU, the scan's u */
    float *xdbl;  /* (M, xdbl_dim): dt | B | C */
    float *delta; /* (M, Di): dt_proj(dt) without its bias (the scan adds it) */
    float *ys;    /* (M, Di): scan output, gated by silu(z) */
    float *A;     /* (Di, N): -exp(A_log) */
    /* ys not computed yet: a recompute (mb_mixer_fwd with out NULL) leaves
     * the scan to the backward's, which writes ys as it goes */
    int ys_pending;
} mb_mixer_acts;

/* Recurrent state of one mixer for B sequences. */
typedef struct {
    float *conv; /* (B, K-1, Di): the last conv inputs */
    float *ssm;  /* (B, Di, N) or (B, Di, N, 2) */
    /* NULL, or during one call's run of steps (the LM's sampling),
     * -exp(A_log) computed once for the run (mb_mixer_state_pin_A): the
     * CPU's block step and the GPU's layer-by-layer step read it */
    const float *A;
} mb_mixer_state;

/* Register the mixer's tensors under `prefix` (e.g. "backbone.layers.3.mixer").
 * tie (or NULL): a mixer whose in_proj and out_proj this one shares (the
 * bidirectional block's reverse mixer): those are not registered again,
 * and their gradients from both mixers add up in one place. */
int mb_mixer_register(mb_mixer *mx, mb_params *ps, const char *prefix, const mb_config *cfg, const mb_mixer *tie);
/* mamba_ssm's initialization, written into host memory `data` laid out as
 * ps (a tied mixer's shared tensors are left to their owner's). */
void mb_mixer_init_weights(const mb_mixer *mx, const mb_params *ps, float *data,
                           const mb_config *cfg, mb_rng *rng);

/* Lay out the acts for M rows (with_xz 0: xz is left NULL, for the caller
 * to point at rows of its own), the state for B sequences (core.h's carve;
 * a state is its conv part then its SSM part, in one run of floats). */
void mb_mixer_acts_carve(mb_mixer_acts *a, const mb_mixer *mx, int M, int with_xz, mb_carve *c);
void mb_mixer_state_carve(mb_mixer_state *s, const mb_mixer *mx, int B, mb_carve *c);
size_t mb_mixer_state_floats(const mb_mixer *mx, int B);
/* Scratch (bytes) forward and backward need beyond the acts. */
size_t mb_mixer_workspace(mb_ctx *ctx, const mb_mixer *mx, int B, int L);

/* out (M, d_model) = mixer(u). With st, the conv and the scan start from the
 * state and leave it at the end of the L steps (L = 1 is the recurrent step).
 * out NULL: the activations for mb_mixer_bwd only (a recompute): neither
 * the scan (the backward's writes ys) nor out_proj runs, st is left as it
 * was after the conv. */
int mb_mixer_fwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L,
                 const float *u, float *out, mb_mixer_acts *a, mb_mixer_state *st, mb_arena *ws);
/* mb_mixer_fwd in its three parts, for a caller that shares in_proj and
 * out_proj between two mixers (the BiMamba block: one product of each for
 * both directions, flip commuting with a product applied row by row).
 * in: a->xz = in_proj(u) over M rows. xz: from a->xz (filled), conv ..
 * dt_proj, and with scan the scan into a->ys (else a->ys_pending, as
 * mb_mixer_fwd's out NULL). out: out (M, d_model) = out_proj(ys). Each
 * stores its outputs as the precision does. */
void mb_mixer_in_fwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *u, mb_mixer_acts *a);
int mb_mixer_fwd_xz(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L, mb_mixer_acts *a,
                    mb_mixer_state *st, mb_arena *ws, int scan);
void mb_mixer_out_fwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *ys, float *out);
/* out += the out projection of ys: a residual added by the GEMM itself
 * (beta 1), in fp32 precision only (bf16 precision rounds the projection
 * before the add) */
void mb_mixer_out_acc(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *ys, float *out);
/* The recurrent step of the residual block around the mixer, out = h +
 * mixer(norm(h)) for B rows (RMSNorm, or LayerNorm when norm_b is given),
 * the state advanced: one fused op (mb_block_step) instead of the dozen a
 * mb_mixer_fwd at L = 1 would launch. out must not alias h. */
typedef struct {
    const int32_t *tokens; /* rows from the embedding table instead of h */
    const float *embed;
    int ld_out;            /* out's row stride (0: d_model) */
    float *out2;           /* also out2 = out + add2 */
    const float *add2;
    int ld_out2, ld_add2;
} mb_block_io;
/* For a run of steps within one call: A = -exp(A_log) into buf (d_inner *
 * d_state floats, the context's memory) and bound to st, so each step skips
 * that exp (on a GPU a kernel a layer a step: 3.7 us of a 130m layer's ~67
 * at 64 rows, H100, session 32's profile).
 * The caller sets st->A back to NULL at the call's end: weights may change
 * between calls. */
void mb_mixer_state_pin_A(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, mb_mixer_state *st,
                          float *buf);
/* The block step's parameters for this mixer and state (the caller checks
 * that it has no projection biases: mb_layer_step_fits); io as below. */
mb_block_step_params mb_mixer_step_params(const mb_mixer *mx, const mb_params *ps, int B, const float *norm_w,
                                          const float *norm_b, float eps, mb_mixer_state *st, const mb_block_io *io);
/* io: the optional inputs and outputs of mb_block_step_params, or NULL. */
int mb_mixer_block_step(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B,
                        const float *norm_w, const float *norm_b, float eps, const float *h,
                        float *out, mb_mixer_state *st, mb_arena *ws, const mb_block_io *io);
/* Gradients that cross a boundary when a sequence is processed in chunks
 * (B = 1): into the SSM state and into the K-1 conv inputs before the
 * chunk. `in` comes from the chunk after this one (zeros for the last);
 * `out` goes to the chunk before. */
typedef struct {
    const float *dssm_in;  /* (Di, N[, 2]): dL/d(final state) */
    float *dssm_out;       /* dL/d(initial state) */
    const float *dconv_in; /* (K-1, Di): dL/d(this chunk's last K-1 conv inputs) from the next */
    float *dconv_out;      /* (K-1, Di): dL/d(the K-1 conv inputs before this chunk) */
} mb_mixer_carry;

/* The buffers of those carries over a backward of one sequence's chunks,
 * last chunk first: each chunk reads what its successor wrote and writes
 * for its predecessor, so the two halves swap at every chunk. */
typedef struct {
    float *dssm[2], *dconv[2];
    int cur;
} mb_mixer_carries;
void mb_mixer_carries_carve(mb_mixer_carries *cs, const mb_mixer *mx, mb_carve *c);
/* zeros entering the last chunk */
void mb_mixer_carries_start(mb_ctx *ctx, mb_mixer_carries *cs, const mb_mixer *mx);
/* the next chunk's carry; the halves swapped for the chunk before it */
mb_mixer_carry mb_mixer_carries_next(mb_mixer_carries *cs);

/* State i of a run of one-sequence states starting at base (the chunk
 * boundaries a chunked recompute saves). */
mb_mixer_state mb_mixer_state_at(const mb_mixer *mx, float *base, size_t i);
/* dst = src, states of one sequence */
void mb_mixer_state_copy(mb_ctx *ctx, const mb_mixer *mx, const mb_mixer_state *src, mb_mixer_state *dst);

/* du = du_beta * du + d mixer / du; parameter gradients accumulated. When
 * the forward started from a state, st0 is that state (unchanged) and
 * carry (B = 1) passes the boundary gradients; both NULL otherwise. */
int mb_mixer_bwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L,
                 const float *u, const mb_mixer_acts *a, const float *dout, float *du,
                 float du_beta, mb_arena *ws, const mb_mixer_state *st0,
                 const mb_mixer_carry *carry);
/* mb_mixer_bwd in its parts (the shared-projection caller of
 * mb_mixer_fwd_xz). dout_store: dout as the precision stores the mixer's
 * output gradient (bf16: a rounded copy in ws; else dout itself; NULL when
 * ws is full). out_bwd: dys = dout out_proj (dys NULL: not wanted) and
 * out_proj's bias gradient with it; with ys, out_proj's weight gradient.
 * bwd_ys: from dys to dxz (M, 2 d_inner, overwritten), every gradient of
 * the conv, x_proj, dt_proj and the scan's parameters; a->ys written when
 * a->ys_pending. in_bwd: du = du_beta du + dxz in_proj, and in_proj's
 * gradients. */
const float *mb_mixer_dout_store(mb_ctx *ctx, const mb_mixer *mx, int M, const float *dout, mb_arena *ws);
void mb_mixer_out_bwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *ys,
                      const float *dout, float *dys);
int mb_mixer_bwd_ys(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int B, int L, const mb_mixer_acts *a,
                    const float *dys, float *dxz, mb_arena *ws, const mb_mixer_state *st0,
                    const mb_mixer_carry *carry);
void mb_mixer_in_bwd(mb_ctx *ctx, const mb_mixer *mx, const mb_params *ps, int M, const float *u, const float *dxz,
                     float *du, float du_beta);

#endif
