/* The residual Mamba block (mamba_ssm's Block around its Mamba mixer):
 * out = h + mixer(norm(h)). Tensors PREFIX.norm.* and PREFIX.mixer.*; the
 * width is cfg->d_model, the mixer's sizes the rest of cfg. Every
 * architecture builds its stacks from these.
 *
 * For arch MB_ARCH_BIDIR the block is Caduceus' BiMamba one: out = h +
 * M_f(x) + flip(M_r(flip(x))), x = norm(h), flip reversing each sequence;
 * M_f's tensors are PREFIX.mixer.mamba_fwd.*, M_r's PREFIX.mixer.mamba_rev.*
 * without the in_proj and out_proj it shares with M_f. No recurrent state. */
#ifndef MB_LAYER_H
#define MB_LAYER_H

#include "nn/mixer.h"
#include "nn/norm.h"

typedef struct {
    int width;
    mb_norm norm;
    mb_mixer mixer;
    int bidir;          /* the BiMamba block: */
    mb_mixer mixer_rev; /* M_r, tied to mixer's projections */
} mb_layer;

/* What forward keeps for backward over M rows. */
typedef struct {
    float *xn; /* (M, width): the norm's output, the mixer's input */
    mb_norm_acts norm;
    mb_mixer_acts mix;
    float *xn_r;         /* bidir: flip(xn), M_r's input */
    mb_mixer_acts mix_r; /* bidir: M_r's */
} mb_layer_acts;

int mb_layer_register(mb_layer *ly, mb_params *ps, const char *prefix, const mb_config *cfg);
/* the norm's ones, then the mixer's draws from rng (mamba_ssm's init) */
void mb_layer_init_weights(const mb_layer *ly, const mb_params *ps, float *host, const mb_config *cfg,
                           mb_rng *rng);
/* flags: MB_LAYER_ACTS_PIECES, the bidirectional block will run a
 * direction at a time (mb_layer_dir_*), which keeps flip(xn) in xn_r (the
 * whole-sequence block does not need it); MB_LAYER_ACTS_NO_XZ, in_proj's
 * output is not carved: the caller points mix.xz at rows of its own (the
 * LM's kept outputs, MB_RECOMPUTE_INNER) */
enum { MB_LAYER_ACTS_PIECES = 1, MB_LAYER_ACTS_NO_XZ = 2 };
void mb_layer_acts_carve(mb_layer_acts *a, const mb_layer *ly, int M, int flags, mb_carve *c);
/* op scratch (bytes) forward, backward and the step need for (B, L) */
size_t mb_layer_workspace(mb_ctx *ctx, const mb_layer *ly, int B, int L);

/* out (B*L, width) = in + mixer(norm(in)). With st, the mixer starts from
 * the state and leaves it at the end of the rows. out NULL: only the
 * activations (a recompute before the backward). out may be in where
 * mb_layer_fwd_accumulates says so: the out projection then adds itself to
 * the residual in place (no separate add, no second buffer). */
int mb_layer_fwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, const float *in,
                 float *out, mb_layer_acts *a, mb_mixer_state *st, mb_arena *ws);
/* The backward's recompute of a causal layer whose in_proj output
 * a->mix.xz the forward kept (MB_RECOMPUTE_INNER): the norm (its output
 * is in_proj's weight gradient's input) and the mixer from xz on, as
 * mb_layer_fwd with out NULL leaves them, without in_proj itself, the
 * recompute's largest product. st as mb_layer_fwd's. */
int mb_layer_refwd_from_xz(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, const float *in,
                           mb_layer_acts *a, mb_mixer_state *st, mb_arena *ws);
/* dh holds d(out) and is left holding d(in): the residual passes it
 * through and the norm path adds to it. dxn: scratch (B*L, width). st0 and
 * carry as mb_mixer_bwd (chunks of one sequence), else NULL. */
int mb_layer_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, int L, const float *in,
                 const mb_layer_acts *a, float *dh, float *dxn, mb_arena *ws, const mb_mixer_state *st0,
                 const mb_mixer_carry *carry);
/* The BiMamba block a direction at a time, over one piece of one sequence
 * (chunked recompute of the bidirectional model), the pieces of M_r taken
 * from the sequence's end: in (L rows); dir 0: out = M_f(norm(in)) from
 * and advancing st (M_f's state); dir 1: out += flip(M_r(flip(norm(in))))
 * with st M_r's (the piece reversed: M_r reads the sequence from its end).
 * out NULL: the activations only, in a. Neither adds the residual nor
 * stores the sum as bf16 precision does: the caller, once both
 * directions have written out. */
int mb_layer_dir_fwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int L, const float *in, float *out,
                     mb_layer_acts *a, mb_mixer_state *st, mb_arena *ws, int dir);
/* Its backward from dout (the piece's output gradient): dir 0: dxn = the
 * norm output's gradient through M_f; dir 1: dxn += the same through M_r.
 * st0 and carry as mb_mixer_bwd's, for the direction's mixer. */
int mb_layer_dir_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int L, const mb_layer_acts *a,
                     const float *dout, float *dxn, mb_arena *ws, const mb_mixer_state *st0,
                     const mb_mixer_carry *carry, int dir);
/* dh += the norm's backward of dxn over M rows of in (its forward redone
 * into a) */
void mb_layer_norm_bwd(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int M, const float *in, mb_layer_acts *a,
                       const float *dxn, float *dh);
/* Whether the fused steps (mb_layer_step, mb_stack_step) compute what the
 * context's precision asks: fp32 only, since they do not round where bf16
 * precision's ops do. Otherwise a step is the layer's own ops
 * (mb_layer_fwd at L = 1 with the state), which round as its forward. */
static inline int mb_layer_step_fused_ok(const mb_ctx *ctx) { return ctx->precision == MB_PREC_FP32; }
/* One recurrent step for B rows, the state advanced: the fused op. io (or
 * NULL): mb_block_io's extra inputs and outputs. */
int mb_layer_step(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B, const float *h, float *out,
                  mb_mixer_state *st, mb_arena *ws, const mb_block_io *io);
/* mb_layer_step's parameters, for ops that run several layers' steps at
 * once (mb_stack_step) */
mb_block_step_params mb_layer_step_params(const mb_layer *ly, const mb_params *ps, int B, mb_mixer_state *st,
                                          const mb_block_io *io);
/* Whether this context's fused step runs the layer (mb_block_step_fits). */
int mb_layer_step_fits(mb_ctx *ctx, const mb_layer *ly);
/* Whether mb_layer_step is the faster way for a step of B rows (else the
 * layer's forward at L = 1, its GEMMs over the rows: wide fp32 layers on a
 * GPU above a few rows; ps says whether there are bf16 copies, which only
 * the step reads) */
int mb_layer_step_prefers(mb_ctx *ctx, const mb_layer *ly, const mb_params *ps, int B);
/* Whether mb_layer_fwd of M rows may take out == in: a GPU's cuBLAS GEMM in
 * fp32 precision (above MB_LINEAR_FEW_ROWS rows, where the GEMM is
 * cuBLAS's), a one-way block */
int mb_layer_fwd_accumulates(mb_ctx *ctx, const mb_layer *ly, int M);

#endif
