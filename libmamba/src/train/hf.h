/* transformers' Mamba (MambaForCausalLM): its config.json, its tensor
 * names, and writing a folder it loads with from_pretrained. The maths is
 * mamba_ssm's; the differences are names (backbone.embeddings.weight), the
 * config's keys, a vocabulary without padding (the embedding has
 * vocab_size rows), RMSNorm always, and no complex A. */
#ifndef MB_HF_H
#define MB_HF_H

#include "models/model.h"

/* config.json -> cfg: every key that changes the maths is taken
 * (hidden_size, num_hidden_layers, vocab_size, state_size, conv_kernel,
 * expand, intermediate_size, time_step_rank, layer_norm_epsilon, use_bias,
 * use_conv_bias, tie_word_embeddings, hidden_act) or refused by name; the
 * initialization's keys are read where ours has them. */
int mb_hf_config_read(const char *json, mb_config *cfg);
/* the config.json of a folder transformers loads (its vocab_size: our
 * padded rows; ours kept beside it), malloc'd */
char *mb_hf_config_write(const mb_config *cfg, int vocab_padded);
/* ours -> transformers' name of a parameter (into buf, or name itself) */
const char *mb_hf_name(const char *name, char *buf, size_t cap);

#endif
