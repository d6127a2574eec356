#include <stdio.h>

#include "models/model.h"

void mb_config_default(mb_config *c)
{
    /* mamba_ssm's MambaConfig defaults and its Mamba module's dt init. */
    c->d_model = 2560;
    c->n_layer = 64;
    c->vocab_size = 50277;
    c->d_state = 16;
    c->d_conv = 4;
    c->expand = 2;
    c->dt_rank = 0;
    c->init = MB_INIT_S4D_REAL;
    c->rms_norm = 1;
    c->tie_embeddings = 1;
    c->pad_vocab_size_multiple = 8;
    c->bias = 0;
    c->conv_bias = 1;
    c->norm_eps = 1e-5f;
    c->dt_min = 1e-3f;
    c->dt_max = 1e-1f;
    c->dt_init_floor = 1e-4f;
    c->n_classes = 0; /* ours: no classification head */
    c->arch = MB_ARCH_LM;
    c->n_pool = 0;
    for (int i = 0; i < MB_MAX_POOL; i++) c->pool[i] = 0;
    c->pool_expand = 2;
    c->mlp = 0;
    c->rc_equivariant = 0;
    for (int v = 0; v < MB_RC_MAX_VOCAB; v++) c->rc_complement[v] = v;
}

void mb_config_sashimi_default(mb_config *c)
{
    mb_config_default(c);
    c->arch = MB_ARCH_SASHIMI;
    c->d_model = 64;
    c->n_layer = 2;
    c->vocab_size = 256;
    c->d_state = 16;
    c->tie_embeddings = 0;
    c->n_pool = 2;
    c->pool[0] = 4;
    c->pool[1] = 4;
    c->pool_expand = 2;
    c->mlp = 0;
}

int mb_config_check(mb_config *c)
{
    if (c->dt_rank <= 0) c->dt_rank = (c->d_model + 15) / 16;
    if (c->d_model < 1 || c->d_model > (1 << 16))
        return mb_error_set("config: d_model %d out of range [1, 65536]", c->d_model);
    if (c->n_layer < 1 || c->n_layer > 1024)
        return mb_error_set("config: n_layer %d out of range [1, 1024]", c->n_layer);
    if (c->vocab_size < 1 || c->vocab_size > (1 << 24))
        return mb_error_set("config: vocab_size %d out of range", c->vocab_size);
    if (c->d_state < 1 || c->d_state > 256)
        return mb_error_set("config: d_state %d out of range [1, 256]", c->d_state);
    if (c->d_conv < 1 || c->d_conv > 64)
        return mb_error_set("config: d_conv %d out of range [1, 64]", c->d_conv);
    if (c->expand < 1 || c->expand > 16)
        return mb_error_set("config: expand %d out of range [1, 16]", c->expand);
    if (c->dt_rank > (1 << 16)) return mb_error_set("config: dt_rank %d too large", c->dt_rank);
    if (c->init != MB_INIT_S4D_REAL && c->init != MB_INIT_S4D_LIN)
        return mb_error_set("config: unknown ssm init");
    if (c->pad_vocab_size_multiple < 1 || c->pad_vocab_size_multiple > 4096)
        return mb_error_set("config: pad_vocab_size_multiple %d out of range",
                            c->pad_vocab_size_multiple);
    if (!(c->norm_eps > 0 && c->norm_eps < 1))
        return mb_error_set("config: norm epsilon out of range");
    if (!(c->dt_min > 0 && c->dt_max >= c->dt_min && c->dt_init_floor >= 0))
        return mb_error_set("config: bad dt range");
    if (c->n_classes < 0 || c->n_classes > (1 << 20))
        return mb_error_set("config: n_classes %d out of range [0, 1048576]", c->n_classes);
    if ((c->bias != 0 && c->bias != 1) || (c->conv_bias != 0 && c->conv_bias != 1))
        return mb_error_set("config: bias and conv_bias must be 0 or 1");
    const mb_arch_ops *arch = mb_arch_get(c->arch);
    if (!arch) return mb_error_set("config: unknown arch %d", (int)c->arch);
    if (c->rc_equivariant != 0 && c->rc_equivariant != 1)
        return mb_error_set("config: rc_equivariant must be 0 or 1");
    if (c->rc_equivariant && c->arch != MB_ARCH_BIDIR)
        return mb_error_set("config: rc_equivariant needs arch mamba-bidir (a causal model over the reverse "
                            "complement would read the future)");
    if (c->rc_equivariant && mb_rc_complement_check(c)) return -1;
    return arch->check ? arch->check(c) : 0;
}

int mb_rc_complement_check(const mb_config *c)
{
    const int Vp = mb_config_vocab_padded(c);
    if (Vp > MB_RC_MAX_VOCAB)
        return mb_error_set("config: rc_equivariant needs a padded vocabulary of at most %d (got %d)",
                            MB_RC_MAX_VOCAB, Vp);
    for (int v = 0; v < c->vocab_size; v++) {
        const int w = c->rc_complement[v];
        if (w < 0 || w >= c->vocab_size)
            return mb_error_set("config: rc_complement[%d] = %d is outside the vocabulary [0, %d)", v, w,
                                c->vocab_size);
        if (c->rc_complement[w] != v)
            return mb_error_set("config: rc_complement is not an involution (%d -> %d -> %d)", v, w,
                                c->rc_complement[w]);
    }
    return 0;
}

int mb_ctx_check_config(mb_ctx *ctx, const mb_config *cfg)
{
    /* the batch is checked per call: 1 stands for "any" here */
    if (mb_scan_supported(ctx, cfg->d_state, 1)) return mb_error_set("%s: %s", mb_ctx_name(ctx), mb_error_last());
    return 0;
}

int mb_config_vocab_padded(const mb_config *c)
{
    int m = c->pad_vocab_size_multiple > 0 ? c->pad_vocab_size_multiple : 1;
    return (c->vocab_size + m - 1) / m * m;
}

int mb_config_d_inner(const mb_config *c) { return c->expand * c->d_model; }
