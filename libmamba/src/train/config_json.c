/* The model config as mamba_ssm's MambaConfig JSON (what config.json holds),
 * plus "arch": "mamba-lm" so other model kinds can share the file format, and
 * "n_classes" when the model has a classification head.
 *
 * Reading is lenient about what does not change the network (unknown
 * fields, fused_add_norm, residual_in_fp32, dt_init) and strict about what
 * does: a config we would run differently from mamba_ssm is refused, never
 * approximated. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "models/model.h"
#include "train/safetensors.h"

/* ---- writing ------------------------------------------------------------- */

static int mb_json_add_float(cJSON *obj, const char *key, float x)
{
    char buf[48];
    mb_fmt_float(buf, sizeof buf, x);
    return cJSON_AddRawToObject(obj, key, buf) != NULL;
}

static int mb_json_add_int(cJSON *obj, const char *key, int v)
{
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

static int mb_json_add_bool(cJSON *obj, const char *key, int v)
{
    return cJSON_AddBoolToObject(obj, key, v != 0) != NULL;
}

static int mb_config_add_ssm(cJSON *root, const mb_config *c)
{
    cJSON *ssm = cJSON_AddObjectToObject(root, "ssm_cfg");
    if (!ssm) return 0;
    int ok = cJSON_AddStringToObject(ssm, "layer", "Mamba1") != NULL;
    ok &= mb_json_add_int(ssm, "d_state", c->d_state);
    ok &= mb_json_add_int(ssm, "d_conv", c->d_conv);
    ok &= mb_json_add_int(ssm, "expand", c->expand);
    if (c->dt_rank > 0)
        ok &= mb_json_add_int(ssm, "dt_rank", c->dt_rank);
    else
        ok &= cJSON_AddStringToObject(ssm, "dt_rank", "auto") != NULL;
    ok &= mb_json_add_float(ssm, "dt_min", c->dt_min);
    ok &= mb_json_add_float(ssm, "dt_max", c->dt_max);
    ok &= mb_json_add_float(ssm, "dt_init_floor", c->dt_init_floor);
    ok &= cJSON_AddStringToObject(ssm, "init", c->init == MB_INIT_S4D_LIN ? "s4d-lin"
                                                                           : "s4d-real") != NULL;
    /* mamba_ssm's Mamba arguments, written when not its defaults */
    if (c->bias) ok &= mb_json_add_bool(ssm, "bias", 1);
    if (!c->conv_bias) ok &= mb_json_add_bool(ssm, "conv_bias", 0);
    return ok;
}

char *mb_config_to_json(const mb_config *c)
{
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok) {
        ok &= mb_json_add_int(root, "d_model", c->d_model);
        ok &= mb_json_add_int(root, "d_intermediate", 0);
        ok &= mb_json_add_int(root, "n_layer", c->n_layer);
        ok &= mb_json_add_int(root, "vocab_size", c->vocab_size);
        ok &= mb_config_add_ssm(root, c);
        ok &= cJSON_AddArrayToObject(root, "attn_layer_idx") != NULL;
        ok &= cJSON_AddObjectToObject(root, "attn_cfg") != NULL;
        ok &= mb_json_add_bool(root, "rms_norm", c->rms_norm);
        ok &= mb_json_add_bool(root, "residual_in_fp32", 1);
        ok &= mb_json_add_bool(root, "fused_add_norm", 0);
        ok &= mb_json_add_int(root, "pad_vocab_size_multiple", c->pad_vocab_size_multiple);
        ok &= mb_json_add_bool(root, "tie_embeddings", c->tie_embeddings);
        ok &= mb_json_add_float(root, "norm_epsilon", c->norm_eps);
        /* ours, and only when there is a head: an LM's config stays
         * exactly mamba_ssm's fields plus "arch" */
        if (c->n_classes > 0) ok &= mb_json_add_int(root, "n_classes", c->n_classes);
        if (c->arch == MB_ARCH_SASHIMI) {
            /* ours: the U-Net's shape (mamba.h) */
            cJSON *pool = cJSON_AddArrayToObject(root, "pool");
            ok &= pool != NULL;
            for (int s = 0; ok && s < c->n_pool; s++) {
                cJSON *v = cJSON_CreateNumber(c->pool[s]);
                ok &= v != NULL && cJSON_AddItemToArray(pool, v);
            }
            ok &= mb_json_add_int(root, "pool_expand", c->pool_expand);
            ok &= mb_json_add_bool(root, "mlp", c->mlp);
        }
        if (c->rc_equivariant) {
            /* ours: the bidirectional model's reverse-complement sharing
             * and the complement of each token (mamba.h) */
            ok &= mb_json_add_bool(root, "rc_equivariant", 1);
            cJSON *comp = cJSON_AddArrayToObject(root, "rc_complement");
            ok &= comp != NULL;
            for (int v = 0; ok && v < c->vocab_size; v++) {
                cJSON *x = cJSON_CreateNumber(c->rc_complement[v]);
                ok &= x != NULL && cJSON_AddItemToArray(comp, x);
            }
        }
        ok &= cJSON_AddStringToObject(root, "arch", mb_arch_get(c->arch)->name) != NULL;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!s) mb_error_set("out of memory writing the model config as JSON");
    return s;
}

/* ---- reading ------------------------------------------------------------- */

/* Each getter leaves *dst alone when the field is absent and fails with
 * "config: PREFIXKEY must be ..." when it has the wrong JSON type. */

static int mb_cfg_int(const cJSON *obj, const char *prefix, const char *key, int *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    double d = cJSON_IsNumber(j) ? j->valuedouble : NAN;
    if (!(d >= INT_MIN && d <= INT_MAX) || d != floor(d))
        return mb_error_set("config: %s%s must be an integer", prefix, key);
    *dst = (int)d;
    return 0;
}

static int mb_cfg_float(const cJSON *obj, const char *prefix, const char *key, float *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    /* strtod turns 1e999 into inf; a float field must stay finite */
    if (!cJSON_IsNumber(j) || !isfinite((float)j->valuedouble))
        return mb_error_set("config: %s%s must be a finite number", prefix, key);
    *dst = (float)j->valuedouble;
    return 0;
}

static int mb_cfg_bool(const cJSON *obj, const char *prefix, const char *key, int *dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    if (!cJSON_IsBool(j)) return mb_error_set("config: %s%s must be true or false", prefix, key);
    *dst = cJSON_IsTrue(j);
    return 0;
}

/* *dst stays NULL when absent; points into the cJSON tree otherwise. */
static int mb_cfg_string(const cJSON *obj, const char *prefix, const char *key, const char **dst)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return 0;
    if (!cJSON_IsString(j)) return mb_error_set("config: %s%s must be a string", prefix, key);
    *dst = j->valuestring;
    return 0;
}

/* dt_rank: an integer, or "auto" (0 here; mb_config_check resolves it). */
static int mb_cfg_dt_rank(const cJSON *ssm, mb_config *c)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(ssm, "dt_rank");
    if (cJSON_IsString(j)) {
        if (strcmp(j->valuestring, "auto") != 0)
            return mb_error_set("config: ssm_cfg.dt_rank must be an integer or \"auto\"");
        c->dt_rank = 0;
        return 0;
    }
    if (mb_cfg_int(ssm, "ssm_cfg.", "dt_rank", &c->dt_rank)) return -1;
    if (j && c->dt_rank < 1) return mb_error_set("config: ssm_cfg.dt_rank must be positive");
    return 0;
}

static int mb_cfg_init(const cJSON *ssm, mb_config *c)
{
    const char *init = NULL;
    if (mb_cfg_string(ssm, "ssm_cfg.", "init", &init)) return -1;
    if (!init) return 0;
    if (strcmp(init, "s4d-real") == 0)
        c->init = MB_INIT_S4D_REAL;
    else if (strcmp(init, "s4d-lin") == 0)
        c->init = MB_INIT_S4D_LIN;
    else
        return mb_error_set("config: unknown ssm_cfg.init '%s' (expected s4d-real or s4d-lin)",
                            init);
    return 0;
}

/* mamba_ssm's Mamba1 module options that change which tensors exist. */
static int mb_cfg_ssm_structure(const cJSON *ssm, mb_config *c)
{
    const char *layer = NULL;
    if (mb_cfg_string(ssm, "ssm_cfg.", "layer", &layer) || mb_cfg_bool(ssm, "ssm_cfg.", "bias", &c->bias) ||
        mb_cfg_bool(ssm, "ssm_cfg.", "conv_bias", &c->conv_bias))
        return -1;
    if (layer && strcmp(layer, "Mamba1") != 0)
        return mb_error_set("config: ssm_cfg.layer is '%s': only Mamba1 layers are supported",
                            layer);
    return 0;
}

static int mb_cfg_read_ssm(const cJSON *root, mb_config *c)
{
    const cJSON *ssm = cJSON_GetObjectItemCaseSensitive(root, "ssm_cfg");
    if (!ssm) return 0;
    if (!cJSON_IsObject(ssm)) return mb_error_set("config: ssm_cfg must be an object");
    const char *p = "ssm_cfg.";
    if (mb_cfg_ssm_structure(ssm, c) || mb_cfg_int(ssm, p, "d_state", &c->d_state) ||
        mb_cfg_int(ssm, p, "d_conv", &c->d_conv) || mb_cfg_int(ssm, p, "expand", &c->expand) ||
        mb_cfg_dt_rank(ssm, c) || mb_cfg_float(ssm, p, "dt_min", &c->dt_min) ||
        mb_cfg_float(ssm, p, "dt_max", &c->dt_max) ||
        mb_cfg_float(ssm, p, "dt_init_floor", &c->dt_init_floor) || mb_cfg_init(ssm, c))
        return -1;
    return 0;
}

/* Hybrid models (MLP blocks, attention layers) are refused, not half-run. */
static int mb_cfg_read_blocks(const cJSON *root)
{
    int d_intermediate = 0;
    if (mb_cfg_int(root, "", "d_intermediate", &d_intermediate)) return -1;
    if (d_intermediate > 0)
        return mb_error_set("config: d_intermediate is %d: MLP blocks are not supported",
                            d_intermediate);
    if (d_intermediate < 0) return mb_error_set("config: d_intermediate must not be negative");
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(root, "attn_layer_idx");
    if (idx && !cJSON_IsArray(idx)) return mb_error_set("config: attn_layer_idx must be an array");
    if (cJSON_GetArraySize(idx) > 0)
        return mb_error_set("config: attn_layer_idx is not empty: attention layers are not "
                            "supported");
    const cJSON *attn = cJSON_GetObjectItemCaseSensitive(root, "attn_cfg");
    if (attn && !cJSON_IsObject(attn)) return mb_error_set("config: attn_cfg must be an object");
    return 0;
}

/* "pool": [p0, p1, ...], "pool_expand", "mlp" of a sashimi-mamba config */
static int mb_cfg_read_sashimi(const cJSON *root, mb_config *c)
{
    const cJSON *pool = cJSON_GetObjectItemCaseSensitive(root, "pool");
    if (!cJSON_IsArray(pool)) return mb_error_set("config: a sashimi-mamba config needs \"pool\": an array of pooling factors");
    int n = cJSON_GetArraySize(pool);
    if (n < 1 || n > MB_MAX_POOL)
        return mb_error_set("config: pool has %d factors, expected 1 to %d", n, MB_MAX_POOL);
    c->arch = MB_ARCH_SASHIMI;
    c->n_pool = n;
    for (int s = 0; s < n; s++) {
        const cJSON *v = cJSON_GetArrayItem(pool, s);
        double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!(d >= 0 && d <= 1e6) || d != floor(d))
            return mb_error_set("config: pool[%d] must be an integer", s);
        c->pool[s] = (int)d;
    }
    return mb_cfg_int(root, "", "pool_expand", &c->pool_expand) ||
                   mb_cfg_bool(root, "", "mlp", &c->mlp)
               ? -1
               : 0;
}

/* "rc_equivariant" and "rc_complement": [c0, c1, ...] (one per token, read
 * after vocab_size) of a mamba-bidir config; mb_config_check checks the map */
static int mb_cfg_read_rc(const cJSON *root, mb_config *c)
{
    if (mb_cfg_bool(root, "", "rc_equivariant", &c->rc_equivariant)) return -1;
    const cJSON *comp = cJSON_GetObjectItemCaseSensitive(root, "rc_complement");
    if (!comp) {
        if (c->rc_equivariant) return mb_error_set("config: rc_equivariant needs \"rc_complement\"");
        return 0;
    }
    const int n = cJSON_GetArraySize(comp);
    if (!cJSON_IsArray(comp) || n != c->vocab_size || n > MB_RC_MAX_VOCAB)
        return mb_error_set("config: rc_complement must be an array of vocab_size (%d, at most %d) token ids",
                            c->vocab_size, MB_RC_MAX_VOCAB);
    for (int v = 0; v < n; v++) {
        const cJSON *x = cJSON_GetArrayItem(comp, v);
        double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
        if (!(d >= 0 && d < MB_RC_MAX_VOCAB) || d != floor(d))
            return mb_error_set("config: rc_complement[%d] must be a token id", v);
        c->rc_complement[v] = (int)d;
    }
    return 0;
}

static int mb_cfg_read(const cJSON *root, mb_config *c)
{
    const char *name = NULL;
    if (mb_cfg_string(root, "", "arch", &name)) return -1;
    mb_arch arch = MB_ARCH_LM; /* mamba_ssm's own config.json has no "arch" */
    if (name && mb_arch_from_name(name, &arch))
        return mb_error_set("checkpoint is a '%s' model, not a mamba-lm (nor a sashimi-mamba or mamba-bidir)",
                            name);
    c->arch = arch;
    if (arch == MB_ARCH_SASHIMI && mb_cfg_read_sashimi(root, c)) return -1;
    /* kernel choices in mamba_ssm: type-checked, but they do not change the maths in fp32 */
    int residual_in_fp32 = 1, fused_add_norm = 0;
    if (mb_cfg_read_blocks(root) || mb_cfg_read_ssm(root, c) ||
        mb_cfg_int(root, "", "d_model", &c->d_model) ||
        mb_cfg_int(root, "", "n_layer", &c->n_layer) ||
        mb_cfg_int(root, "", "vocab_size", &c->vocab_size) ||
        mb_cfg_bool(root, "", "rms_norm", &c->rms_norm) ||
        mb_cfg_bool(root, "", "residual_in_fp32", &residual_in_fp32) ||
        mb_cfg_bool(root, "", "fused_add_norm", &fused_add_norm) ||
        mb_cfg_int(root, "", "pad_vocab_size_multiple", &c->pad_vocab_size_multiple) ||
        mb_cfg_bool(root, "", "tie_embeddings", &c->tie_embeddings) ||
        mb_cfg_float(root, "", "norm_epsilon", &c->norm_eps) ||
        mb_cfg_int(root, "", "n_classes", &c->n_classes) || mb_cfg_read_rc(root, c))
        return -1;
    return 0;
}

int mb_config_from_json(const char *json, mb_config *cfg)
{
    mb_config c;
    mb_config_default(&c);
    cJSON *root = json ? cJSON_Parse(json) : NULL;
    if (!root) return mb_error_set("config: not valid JSON");
    int rc = cJSON_IsObject(root) ? mb_cfg_read(root, &c)
                                  : mb_error_set("config: not a JSON object");
    cJSON_Delete(root);
    if (rc || mb_config_check(&c)) return -1;
    *cfg = c;
    return 0;
}
