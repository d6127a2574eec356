/* A model checkpoint's source: one file, or a folder (model_src.h). */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "train/hf.h"
#include "train/model_src.h"

static char *src_join(const char *dir, const char *name)
{
    const size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mb_malloc(n, "path");
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int src_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* A whole small text file (config.json, the shard index). */
static char *src_read_text(const char *path, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mb_error_set("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = mb_malloc(cap + 1, "text file");
    size_t n = buf ? fread(buf, 1, cap + 1, f) : 0;
    const int bad = buf && ferror(f);
    fclose(f);
    if (!buf) return NULL;
    if (bad || n > cap) {
        free(buf);
        mb_error_set("%s: %s", path, bad ? "cannot read" : "too large for a config");
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static int src_add_file(mb_model_src *s, const char *path)
{
    mb_st_file **f = realloc(s->files, (size_t)(s->n_files + 1) * sizeof *f);
    unsigned char **u = f ? realloc(s->used, (size_t)(s->n_files + 1) * sizeof *u) : NULL;
    if (f) s->files = f;
    if (u) s->used = u;
    if (!f || !u) return mb_error_set("out of memory opening %s", path);
    mb_st_file *st = mb_st_open(path);
    if (!st) return -1;
    unsigned char *used = mb_calloc((size_t)mb_st_count(st) + 1, 1, "tensor flags");
    if (!used) {
        mb_st_close(st);
        return -1;
    }
    s->files[s->n_files] = st;
    s->used[s->n_files] = used;
    s->n_files++;
    return 0;
}

/* model.safetensors.index.json: {"weight_map": {"NAME": "SHARD", ...}}:
 * every shard it names, once each, from the folder */
static int src_add_shards(mb_model_src *s, const char *dir, const char *index)
{
    char *text = src_read_text(index, (size_t)64 << 20);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    int rc = cJSON_IsObject(map) ? 0 : mb_error_set("%s: no weight_map object", index);
    const cJSON *kv;
    for (kv = rc ? NULL : map->child; kv && !rc; kv = kv->next) {
        const char *shard = cJSON_IsString(kv) ? kv->valuestring : NULL;
        if (!shard || strchr(shard, '/')) {
            rc = mb_error_set("%s: bad shard name for %s", index, kv->string);
            break;
        }
        int seen = 0;
        for (const cJSON *p = map->child; p != kv && !seen; p = p->next)
            seen = cJSON_IsString(p) && strcmp(p->valuestring, shard) == 0;
        if (seen) continue;
        char *path = src_join(dir, shard);
        rc = path ? src_add_file(s, path) : -1;
        free(path);
    }
    cJSON_Delete(root);
    if (!rc && s->n_files == 0) rc = mb_error_set("%s: names no shard", index);
    return rc;
}

/* The config of our own file: JSON in __metadata__["config"], and the run */
static int src_own_config(mb_model_src *s)
{
    mb_st_file *f = s->files[0];
    const char *json = mb_st_metadata(f, "config");
    if (!json)
        return mb_error_set("%s: no \"config\" in __metadata__ (not a libmamba checkpoint? a transformers or "
                            "mamba_ssm model is loaded from its folder)", mb_st_path(f));
    if (mb_config_from_json(json, &s->cfg)) return mb_error_set("%s: %s", mb_st_path(f), mb_error_last());
    const char *r = mb_st_metadata(f, "run_id");
    if (!r) return 0;
    char *end = NULL;
    errno = 0;
    s->run_id = strtoull(r, &end, 16);
    if (strlen(r) != 16 || *end || errno) return mb_error_set("%s: bad run_id '%s' in __metadata__", mb_st_path(f), r);
    return 0;
}

static int src_open_folder(mb_model_src *s, const char *dir)
{
    char *cfg_path = src_join(dir, "config.json");
    char *text = cfg_path ? src_read_text(cfg_path, (size_t)1 << 20) : NULL;
    int rc = text ? 0 : -1;
    /* transformers' config says its model_type; mamba_ssm's is its MambaConfig */
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    if (!rc && !cJSON_IsObject(root)) rc = mb_error_set("%s: not a JSON object", cfg_path);
    const cJSON *type = root ? cJSON_GetObjectItemCaseSensitive(root, "model_type") : NULL;
    if (!rc && type) {
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "mamba") != 0)
            rc = mb_error_set("%s: model_type is %s, not mamba (only Mamba1 language models load)", cfg_path,
                              cJSON_IsString(type) ? type->valuestring : "not a string");
        else if (mb_hf_config_read(text, &s->cfg))
            rc = mb_error_set("%s: %s", cfg_path, mb_error_last());
        s->hf_names = 1;
    } else if (!rc && mb_config_from_json(text, &s->cfg)) {
        rc = mb_error_set("%s: %s", cfg_path, mb_error_last());
    }
    cJSON_Delete(root);
    free(text);
    free(cfg_path);
    if (rc) return -1;
    char *single = src_join(dir, "model.safetensors"), *index = src_join(dir, "model.safetensors.index.json");
    char *bin = src_join(dir, "pytorch_model.bin");
    if (!single || !index || !bin) rc = -1;
    else if (src_is_file(single)) rc = src_add_file(s, single);
    else if (src_is_file(index)) rc = src_add_shards(s, dir, index);
    else if (src_is_file(bin))
        rc = mb_error_set("%s: the weights are pytorch_model.bin (a pickle), which is not read: save them as "
                          "model.safetensors (transformers: save_pretrained(safe_serialization=True))", dir);
    else
        rc = mb_error_set("%s: no model.safetensors or model.safetensors.index.json beside config.json", dir);
    free(single), free(index), free(bin);
    return rc;
}

int mb_model_src_open(mb_model_src *s, const char *path)
{
    memset(s, 0, sizeof *s);
    s->path = mb_malloc(strlen(path) + 1, "path");
    if (!s->path) return -1;
    strcpy(s->path, path);
    struct stat st;
    int rc;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rc = src_open_folder(s, path);
    else
        rc = src_add_file(s, path) || src_own_config(s) ? -1 : 0;
    if (rc) mb_model_src_close(s);
    return rc;
}

void mb_model_src_close(mb_model_src *s)
{
    for (int i = 0; i < s->n_files; i++) {
        mb_st_close(s->files[i]);
        free(s->used[i]);
    }
    free(s->files);
    free(s->used);
    free(s->path);
    memset(s, 0, sizeof *s);
}

const mb_st_tensor *mb_model_src_find(mb_model_src *s, const char *name, mb_st_file **file)
{
    char buf[MB_PARAM_NAME_MAX + 16];
    const char *want = s->hf_names ? mb_hf_name(name, buf, sizeof buf) : name;
    for (int i = 0; i < s->n_files; i++) {
        const mb_st_tensor *t = mb_st_find(s->files[i], want);
        if (!t) continue;
        s->used[i][t - mb_st_get(s->files[i], 0)] = 1;
        *file = s->files[i];
        return t;
    }
    mb_error_set("%s: missing tensor %s", s->path, want);
    return NULL;
}

int mb_model_src_check_all_used(mb_model_src *s, const mb_params *ps, const float *host)
{
    const int emb = mb_params_find(ps, "backbone.embedding.weight");
    for (int i = 0; i < s->n_files; i++)
        for (int k = 0; k < mb_st_count(s->files[i]); k++) {
            if (s->used[i][k]) continue;
            const mb_st_tensor *t = mb_st_get(s->files[i], k);
            /* a tied head saved beside the embedding it equals: not extra */
            if (strcmp(t->name, "lm_head.weight") == 0 && s->cfg.tie_embeddings && emb >= 0 &&
                t->numel == ps->items[emb].numel) {
                float *h = mb_malloc(t->numel * sizeof(float), "tied head");
                int same = h && mb_st_read_f32(s->files[i], t, h, t->numel) == 0 &&
                           memcmp(h, host + ps->items[emb].offset, t->numel * sizeof(float)) == 0;
                free(h);
                if (same) continue;
                return mb_error_set("%s: lm_head.weight differs from the embedding it is tied to "
                                    "(tie_embeddings is true)", s->path);
            }
            return mb_error_set("%s: unexpected tensor %s (not part of this model: its config does not declare it)",
                                s->path, t->name);
        }
    return 0;
}
