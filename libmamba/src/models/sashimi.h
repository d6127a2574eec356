/* The SaShiMi U-Net of Mamba blocks (cfg.arch MB_ARCH_SASHIMI; mamba.h
 * describes the network). It lives behind the same mb_model handle as the
 * LM (models/lm.c dispatches here), so the optimizer, clipping and
 * checkpoints see one parameter table either way.
 *
 * Tensor names (S = n_pool stages, n = n_layer, s = 0 is the finest):
 *   backbone.embedding.weight               (vocab padded, d_model)
 *   down.{s}.layers.{i}.norm.weight          block i of stage s going down
 *   down.{s}.layers.{i}.mixer.*              mamba_ssm's mixer names
 *   down.{s}.layers.{i}.mlp_norm.weight      with mlp only, and
 *   down.{s}.layers.{i}.mlp.fc1.{weight,bias}   (2 D_s, D_s), (2 D_s)
 *   down.{s}.layers.{i}.mlp.fc2.{weight,bias}   (D_s, 2 D_s), (D_s)
 *   down.{s}.pool.linear.{weight,bias}       (D_{s+1}, p_s D_s), (D_{s+1})
 *   center.layers.{i}.*                      at width D_S
 *   up.{s}.pool.linear.{weight,bias}         (p_s D_s, D_{s+1}), (p_s D_s)
 *   up.{s}.layers.{i}.*
 *   norm_f.weight, lm_head.weight            (d_model), (vocab padded, d_model)
 * in that order (down 0..S-1, center, up S-1..0). */
#ifndef MB_SASHIMI_H
#define MB_SASHIMI_H

#include "models/lm.h"
#include "nn/pool.h"

/* One residual block: h += mixer(norm(h)); with mlp, h += fc2(gelu(fc1(norm2(h)))). */
typedef struct {
    int width;
    int p_norm, p_mlp_norm, p_fc1_w, p_fc1_b, p_fc2_w, p_fc2_b; /* mlp ones -1 without */
    mb_mixer mixer;
} mb_sa_layer;

/* What a block's forward keeps (rows of one level). */
typedef struct {
    float *xn, *rstd, *mid, *xn2, *rstd2, *a1, *g1, *out; /* out == mid without mlp */
    mb_mixer_acts acts;
} mb_sa_layer_bufs;

/* Activations of the whole U-Net for rows[lvl] rows per level: a training
 * shape (B*L_lvl rows) or one step (B rows at every level). */
typedef struct {
    int B, L;
    int rows[MB_MAX_POOL + 1];
    float *buf;                   /* device */
    int32_t *tok, *tgt;
    float *x[MB_MAX_POOL + 1];    /* level input: embedding, or the DownPool's output */
    float *u[MB_MAX_POOL];        /* up stack input: UpPool + skip */
    float *y[MB_MAX_POOL + 1];    /* level output */
    float *dY[MB_MAX_POOL + 1], *dU[MB_MAX_POOL + 1]; /* backward */
    float *tmp;                   /* UpPool's unshifted projection */
    float *hf, *rstd_f, *logits;
    float *dxn, *dg;              /* backward scratch of one block */
    mb_sa_layer_bufs *lb;         /* (2S+1) * n blocks, stack order */
    mb_arena ws;
} mb_sa_acts;

struct mb_sashimi {
    int S, n;
    int width[MB_MAX_POOL + 1];   /* D_lvl */
    mb_sa_layer *layers;          /* stack k (down 0..S-1, center S, up S-1..0 as k = S+1..2S) */
    mb_pool down[MB_MAX_POOL], up[MB_MAX_POOL];
    mb_sa_acts act;               /* training activations, sized per (B, L) */
};

mb_model *mb_sashimi_alloc(mb_ctx *ctx, const mb_config *cfg);
void mb_sashimi_init_weights(mb_model *m, float *host, uint64_t seed);
void mb_sashimi_free(mb_model *m);
int mb_sashimi_forward(mb_model *m, const int32_t *tokens, int B, int L, const int32_t *targets,
                       float *logits, mb_loss_stats *stats);
int mb_sashimi_forward_backward(mb_model *m, const int32_t *tokens, const int32_t *targets, int B,
                                int L, mb_loss_stats *stats);
mb_state *mb_sashimi_state_create(mb_model *m, int B);
void mb_sashimi_state_reset(mb_state *s);
void mb_sashimi_state_free(mb_state *s);
int mb_sashimi_step(mb_model *m, mb_state *s, const int32_t *tokens, float *logits);
/* mb_model_sample for SaShiMi models (arguments and tokens checked by the
 * caller; n >= 1) */
int mb_sashimi_sample(mb_model *m, mb_state *s, const int32_t *tokens, int n, const mb_sampler *sp,
                      int32_t *out);
int mb_sashimi_forward_chunk(mb_model *m, mb_state *s, const int32_t *tokens, int L,
                             float *logits);

#endif
