/* transformers' Mamba checkpoints: config.json both ways, names, and the
 * folder mb_model_save_hf writes. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "train/hf.h"
#include "train/safetensors.h"

const char *mb_hf_name(const char *name, char *buf, size_t cap)
{
    /* the one name that differs */
    if (strcmp(name, "backbone.embedding.weight") == 0) {
        snprintf(buf, cap, "backbone.embeddings.weight");
        return buf;
    }
    return name;
}

/* ---- config.json -> mb_config ------------------------------------------------ */

static int hf_int(const cJSON *root, const char *key, int *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 0;
    const double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != floor(d))
        return mb_error_set("config: %s must be an integer", key);
    *dst = (int)d;
    return 0;
}

static int hf_bool(const cJSON *root, const char *key, int *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsBool(j)) return mb_error_set("config: %s must be true or false", key);
    *dst = cJSON_IsTrue(j);
    return 0;
}

static int hf_float(const cJSON *root, const char *key, float *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return mb_error_set("config: %s must be a number", key);
    *dst = (float)j->valuedouble;
    return 0;
}

int mb_hf_config_read(const char *json, mb_config *out)
{
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return mb_error_set("config: not a JSON object");
    }
    mb_config c;
    mb_config_default(&c);
    /* transformers' MambaConfig defaults where they differ from mamba_ssm's */
    c.d_model = 768, c.n_layer = 32, c.vocab_size = 50280;
    c.pad_vocab_size_multiple = 1; /* the embedding has vocab_size rows */
    int intermediate = 0, vocab_ours = 0, pad_ours = 0, rc = 0;
    const cJSON *rank = cJSON_GetObjectItemCaseSensitive(root, "time_step_rank");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (hf_int(root, "hidden_size", &c.d_model) || hf_int(root, "num_hidden_layers", &c.n_layer) ||
        hf_int(root, "vocab_size", &c.vocab_size) || hf_int(root, "state_size", &c.d_state) ||
        hf_int(root, "conv_kernel", &c.d_conv) || hf_int(root, "expand", &c.expand) ||
        hf_int(root, "intermediate_size", &intermediate) || hf_float(root, "layer_norm_epsilon", &c.norm_eps) ||
        hf_bool(root, "use_bias", &c.bias) || hf_bool(root, "use_conv_bias", &c.conv_bias) ||
        hf_bool(root, "tie_word_embeddings", &c.tie_embeddings) || hf_float(root, "time_step_min", &c.dt_min) ||
        hf_float(root, "time_step_max", &c.dt_max) || hf_float(root, "time_step_floor", &c.dt_init_floor) ||
        /* ours, when we wrote the folder: the vocabulary before padding */
        hf_int(root, "libmamba_vocab_size", &vocab_ours) ||
        hf_int(root, "libmamba_pad_vocab_size_multiple", &pad_ours))
        rc = -1;
    if (!rc && rank && !cJSON_IsNull(rank)) {
        if (cJSON_IsString(rank) && strcmp(rank->valuestring, "auto") == 0) c.dt_rank = 0;
        else if (cJSON_IsNumber(rank) && rank->valuedouble >= 1 && rank->valuedouble == floor(rank->valuedouble))
            c.dt_rank = (int)rank->valuedouble;
        else rc = mb_error_set("config: time_step_rank must be \"auto\" or a positive integer");
    }
    if (!rc && act && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        rc = mb_error_set("config: hidden_act is %s: only silu is the Mamba mixer's",
                          cJSON_IsString(act) ? act->valuestring : "not a string");
    if (!rc && intermediate && intermediate != c.expand * c.d_model)
        rc = mb_error_set("config: intermediate_size %d is not expand x hidden_size (%d)", intermediate,
                          c.expand * c.d_model);
    if (!rc && vocab_ours > 0 && pad_ours > 0) {
        /* a folder we wrote: the padded rows are the real vocabulary padded */
        mb_config t = c;
        t.vocab_size = vocab_ours, t.pad_vocab_size_multiple = pad_ours;
        if (mb_config_vocab_padded(&t) == c.vocab_size) c = t;
    }
    cJSON_Delete(root);
    if (rc || mb_config_check(&c)) return -1;
    *out = c;
    return 0;
}

/* ---- mb_config -> config.json ------------------------------------------------- */

char *mb_hf_config_write(const mb_config *c, int vocab_padded)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_CreateArray();
    int ok = root && arch && cJSON_AddItemToObject(root, "architectures", arch);
    ok &= cJSON_AddItemToArray(arch, cJSON_CreateString("MambaForCausalLM"));
    ok &= cJSON_AddStringToObject(root, "model_type", "mamba") != NULL;
    /* transformers' embedding has vocab_size rows: ours padded */
    ok &= cJSON_AddNumberToObject(root, "vocab_size", vocab_padded) != NULL;
    ok &= cJSON_AddNumberToObject(root, "hidden_size", c->d_model) != NULL;
    ok &= cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layer) != NULL;
    ok &= cJSON_AddNumberToObject(root, "state_size", c->d_state) != NULL;
    ok &= cJSON_AddNumberToObject(root, "conv_kernel", c->d_conv) != NULL;
    ok &= cJSON_AddNumberToObject(root, "expand", c->expand) != NULL;
    ok &= cJSON_AddNumberToObject(root, "intermediate_size", c->expand * c->d_model) != NULL;
    ok &= cJSON_AddNumberToObject(root, "time_step_rank", c->dt_rank > 0 ? c->dt_rank : (c->d_model + 15) / 16) != NULL;
    char eps[48];
    mb_fmt_float(eps, sizeof eps, c->norm_eps);
    ok &= cJSON_AddRawToObject(root, "layer_norm_epsilon", eps) != NULL;
    ok &= cJSON_AddBoolToObject(root, "use_bias", c->bias) != NULL;
    ok &= cJSON_AddBoolToObject(root, "use_conv_bias", c->conv_bias) != NULL;
    ok &= cJSON_AddStringToObject(root, "hidden_act", "silu") != NULL;
    ok &= cJSON_AddBoolToObject(root, "residual_in_fp32", 1) != NULL;
    ok &= cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_embeddings) != NULL;
    char v[48];
    mb_fmt_float(v, sizeof v, c->dt_min);
    ok &= cJSON_AddRawToObject(root, "time_step_min", v) != NULL;
    mb_fmt_float(v, sizeof v, c->dt_max);
    ok &= cJSON_AddRawToObject(root, "time_step_max", v) != NULL;
    mb_fmt_float(v, sizeof v, c->dt_init_floor);
    ok &= cJSON_AddRawToObject(root, "time_step_floor", v) != NULL;
    ok &= cJSON_AddStringToObject(root, "torch_dtype", "float32") != NULL;
    /* ours: the vocabulary before padding, so that a reload is the model
     * that was written (transformers keeps unknown keys and ignores them) */
    ok &= cJSON_AddNumberToObject(root, "libmamba_vocab_size", c->vocab_size) != NULL;
    ok &= cJSON_AddNumberToObject(root, "libmamba_pad_vocab_size_multiple", c->pad_vocab_size_multiple) != NULL;
    ok &= cJSON_AddStringToObject(root, "libmamba_version", MB_VERSION) != NULL;
    char *s = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!s) mb_error_set("out of memory writing config.json");
    return s;
}
