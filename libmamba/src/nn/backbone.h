/* The residual stack the LM and the bidirectional model share: embedding
 * (backbone.embedding.weight) -> n_layer blocks (backbone.layers.N, nn/
 * layer.c: causal or BiMamba by cfg->arch) -> norm_f and the head
 * (backbone.norm_f, lm_head.weight or the tied embedding), registered and
 * initialized in mamba_ssm's order; each architecture runs it its own way. */
#ifndef MB_BACKBONE_H
#define MB_BACKBONE_H

#include "nn/embedding.h"
#include "nn/head.h"
#include "nn/layer.h"

typedef struct {
    mb_embedding embed;
    mb_layer *layers; /* n_layer */
    mb_lm_head head;
} mb_backbone;

/* Registers every tensor; -1 with a reason (bb->layers is then freed by
 * mb_backbone_free, as after success). */
int mb_backbone_register(mb_backbone *bb, mb_params *ps, const mb_config *cfg, int vocab_padded);
/* mamba_ssm's initialization from seed into host memory laid out as ps */
void mb_backbone_init_weights(const mb_backbone *bb, const mb_params *ps, float *host, const mb_config *cfg,
                              uint64_t seed);
void mb_backbone_free(mb_backbone *bb);

#endif
