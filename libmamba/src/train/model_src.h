/* Where a model checkpoint's config and tensors come from (checkpoint.c):
 *
 * - one safetensors file: ours, with the config as JSON in __metadata__;
 * - a folder of transformers' save_pretrained: config.json with model_type
 *   "mamba", and model.safetensors or shards listed in
 *   model.safetensors.index.json; its names (backbone.embeddings.weight)
 *   are mapped to ours (train/hf.c);
 * - a folder of mamba_ssm's save_pretrained: config.json (its MambaConfig)
 *   with the weights as model.safetensors (pytorch_model.bin, a pickle, is
 *   refused with a line that says so).
 *
 * Loading is strict: every tensor of the source must be used by the model
 * (mb_model_src_check_all_used), so a checkpoint of another shape of model
 * (projection biases it does not declare, say) is refused by name instead
 * of silently scoring something else. */
#ifndef MB_MODEL_SRC_H
#define MB_MODEL_SRC_H

#include "models/model.h"
#include "train/safetensors.h"

typedef struct {
    char *path;            /* the file or the folder, for messages */
    mb_st_file **files;
    int n_files;
    unsigned char **used;  /* per file, per tensor: taken by the model */
    int hf_names;          /* transformers' names */
    mb_config cfg;
    uint64_t run_id;       /* 0 where the source has none */
} mb_model_src;

int mb_model_src_open(mb_model_src *s, const char *path);
void mb_model_src_close(mb_model_src *s);
/* The tensor holding parameter NAME (ours), marked used; NULL (and the
 * reason: missing) when there is none. */
const mb_st_tensor *mb_model_src_find(mb_model_src *s, const char *name, mb_st_file **file);
/* Every tensor of the source was taken, but for: lm_head.weight beside a
 * tied embedding that equals it (torch.save keeps both); else "PATH:
 * unexpected tensor NAME (not part of this model)". */
int mb_model_src_check_all_used(mb_model_src *s, const mb_params *ps, const float *host);

#endif
