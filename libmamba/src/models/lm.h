/* The residual language model of DESIGN.md: embedding -> n_layer x
 * (h = h + mixer(norm(h))) -> norm_f -> lm_head (tied to the embedding or
 * not), named as mamba_ssm's MambaLMHeadModel; with cfg.n_classes > 0 also a
 * classification head on the mean over positions of norm_f's output
 * (models/cls.c). */
#ifndef MB_LM_H
#define MB_LM_H

#include "nn/mixer.h"

struct mb_sashimi; /* models/sashimi.h */

struct mb_model {
    mb_ctx *ctx;
    mb_config cfg;
    int vocab_padded;
    mb_params params;
    int p_embed, p_norm_f_w, p_norm_f_b, p_lm_head; /* norm_f_b: LayerNorm only; lm_head: untied only */
    int p_cls_w, p_cls_b;                           /* classifier.weight / .bias; -1 without a head */
    int *p_norm_w, *p_norm_b;                       /* per layer */
    mb_mixer *mixers;                               /* per layer */
    int recompute;
    mb_dist *dist;       /* data-parallel group (mb_model_set_dist), NULL = one process */

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

    /* Classification head buffers, sized for cls_B sequences the first time
     * that batch is seen (models/cls.c), apart from the activations so that
     * mb_model_classify_pooled needs no (B, L) shape. */
    int cls_B;
    float *cls_buf;       /* device */
    float *pooled;        /* (B, d): mean of the final normed hidden state */
    float *dpooled;       /* (B, d): its gradient */
    float *cls_logits;    /* (B, n_classes), then their gradient */
    int32_t *cls_lab;     /* (B) labels */

    /* cfg.arch MB_ARCH_SASHIMI: the U-Net (models/sashimi.c), which uses
     * p_embed, p_norm_f_w and p_lm_head of the fields above and none of the
     * LM's layers or buffers; NULL for the LM. */
    struct mb_sashimi *sa;
};

/* Register tensors and allocate the parameter buffers (weights zeroed). */
mb_model *mb_model_alloc(mb_ctx *ctx, const mb_config *cfg);

/* Training forward of the backbone over tokens (B, L) into the activation
 * buffers: m->hf holds norm_f's output (B*L, d), and m->logits the LM
 * logits when lm_head is set. */
int mb_lm_forward_train(mb_model *m, const int32_t *tokens, int B, int L, int lm_head);
/* Backward from m->hf, which the caller has overwritten with the gradient
 * of norm_f's output: through norm_f, the layers (recompute and chunks as
 * set) and the embedding. Parameter gradients are accumulated. */
int mb_lm_backward_from_hf(mb_model *m, int B, int L);

/* Tokens (or, with allow_ignore, targets that may be MB_IGNORE_INDEX) in
 * [0, vocab_size); -1 with "WHAT n at position i is outside ..." if not. */
int mb_lm_check_tokens(const mb_model *m, const int32_t *t, size_t n, const char *what, int allow_ignore);
/* Mean cross-entropy of logits (M, V) over the host targets that are not
 * MB_IGNORE_INDEX (uploaded to tgt_dev), added to stats; with want_grad the
 * logits become the gradient of that mean. Shared by the LM, the
 * classification head and the U-Net. */
int mb_lm_xent_mean(mb_ctx *ctx, const int32_t *targets, int32_t *tgt_dev, int M, int V, float *logits,
                    int want_grad, mb_loss_stats *stats);

/* models/cls.c: the classification head. */
int mb_cls_register(mb_model *m);
/* classifier.weight normal(0, 0.02) from a stream of its own derived from
 * seed, bias 0, into host memory laid out as m->params; nothing without a
 * head. */
void mb_cls_init_weights(const mb_model *m, float *host, uint64_t seed);
void mb_cls_free(mb_model *m);
/* out (B, d) += sum over each sequence's L rows of x (B*L, d), device. */
void mb_cls_pool_sum(mb_model *m, int B, int L, const float *x, float *out);

struct mb_state {
    mb_model *model;
    int B;
    float *buf;             /* device */
    mb_mixer_state *layers; /* n_layer */
    int64_t drawn;          /* draws of mb_model_sample since create / reset */
};

#endif
