#include <stdio.h>
#include <stdlib.h>

#include "nn/backbone.h"

int mb_backbone_register(mb_backbone *bb, mb_params *ps, const mb_config *c, int vocab_padded)
{
    if (!(bb->layers = mb_calloc((size_t)c->n_layer, sizeof(mb_layer), "model"))) return -1;
    char name[MB_PARAM_NAME_MAX];
    if (mb_embedding_register(&bb->embed, ps, "backbone.embedding.weight", vocab_padded, c->d_model)) return -1;
    for (int l = 0; l < c->n_layer; l++) {
        snprintf(name, sizeof name, "backbone.layers.%d", l);
        if (mb_layer_register(&bb->layers[l], ps, name, c)) return -1;
    }
    return mb_lm_head_register(&bb->head, ps, "backbone.norm_f", c->tie_embeddings ? NULL : "lm_head.weight",
                               bb->embed.p_w, c->d_model, vocab_padded, c->rms_norm, c->norm_eps);
}

void mb_backbone_init_weights(const mb_backbone *bb, const mb_params *ps, float *host, const mb_config *cfg,
                              uint64_t seed)
{
    mb_rng rng;
    mb_rng_seed(&rng, seed);
    mb_embedding_init_weights(&bb->embed, ps, host, &rng);
    for (int l = 0; l < cfg->n_layer; l++) mb_layer_init_weights(&bb->layers[l], ps, host, cfg, &rng);
    mb_lm_head_init_weights(&bb->head, ps, host, &rng);
}

void mb_backbone_free(mb_backbone *bb)
{
    free(bb->layers);
    bb->layers = NULL;
}
