/* The residual language model of DESIGN.md: embedding -> n_layer x
 * (h = h + mixer(norm(h))) -> norm_f -> lm_head (tied to the embedding or
 * not), named as mamba_ssm's MambaLMHeadModel. */
#ifndef MB_LM_H
#define MB_LM_H

#include "nn/mixer.h"

struct mb_model {
    mb_ctx *ctx;
    mb_config cfg;
    int vocab_padded;
    mb_params params;
    int p_embed, p_norm_f_w, p_norm_f_b, p_lm_head; /* norm_f_b: LayerNorm only; lm_head: untied only */
    int *p_norm_w, *p_norm_b;                       /* per layer */
    mb_mixer *mixers;                               /* per layer */
    int recompute;

    /* Activation buffers, sized for (act_B, act_L) the first time a shape is
     * seen and reused after: a step allocates nothing. */
    int act_B, act_L;
    float *act_buf;      /* device */
    float **h;           /* n_layer + 1 residual streams (M, d) (recompute: still all kept) */
    float **xn;          /* per layer normed input (M, d), or one shared when recompute */
    float **rstd, **mean;
    mb_mixer_acts *acts; /* per layer, or one shared when recompute */
    float *hf, *rstd_f, *mean_f; /* final norm */
    float *logits;       /* (M, Vp) */
    float *dh;           /* backward: residual gradient (M, d) */
    float *dxn, *rec_out; /* norm-output gradient, recomputed mixer output (rows of one pass) */
    int rc_chunk, nch;   /* recompute: tokens per chunk (0 = whole), chunks per sequence */
    float *saved;        /* chunked recompute: state entering each (layer, sequence, chunk) */
    mb_mixer_state work; /* chunked recompute: the state being advanced */
    float *dssm[2], *dconv[2]; /* chunked recompute: boundary gradients, in and out */
    int32_t *tok_dev, *tgt_dev;
    mb_arena ws;         /* op scratch */
};

/* Register tensors and allocate the parameter buffers (weights zeroed). */
mb_model *mb_model_alloc(mb_ctx *ctx, const mb_config *cfg);

struct mb_state {
    mb_model *model;
    int B;
    float *buf;             /* device */
    mb_mixer_state *layers; /* n_layer */
};

#endif
