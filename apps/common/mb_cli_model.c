/* Context, model and optimizer from the shared flags: see mb_cli_model.h. */
#include "mb_cli_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mb_cli_dist.h"
#include "mb_cli_error.h"

mb_ctx *mb_cli_ctx(const char *prog, const mb_cli_train *t)
{
    /* under mpirun, plain "cuda" is one GPU a process: the rank within the
     * node picks it (cuda:N given explicitly is taken as it is) */
    char dev[32];
    const char *name = t->device;
    if (mb_cli_ranks() > 1 && strcmp(name, "cuda") == 0) {
        snprintf(dev, sizeof dev, "cuda:%d", mb_dist_local_rank(mb_cli_dist()));
        name = dev;
    }
    mb_ctx *ctx = mb_ctx_create(name);
    if (!ctx) {
        mb_cli_error(prog, "--device %s: %s", name, mb_error_last());
        return NULL;
    }
    mb_ctx_set_threads(ctx, (int)t->threads);
    if (t->tf32) mb_ctx_set_tf32(ctx, 1);
    if (t->bf16 && mb_ctx_set_precision(ctx, MB_PREC_BF16)) {
        mb_cli_error(prog, "--precision bf16: %s", mb_error_last());
        mb_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

mb_model *mb_cli_model_create(const char *prog, mb_ctx *ctx, const mb_config *cfg, int64_t seed)
{
    mb_config c = *cfg;
    mb_model *m = NULL;
    if (mb_config_check(&c) == 0 && mb_ctx_check_config(ctx, &c) == 0) m = mb_model_create(ctx, &c, (uint64_t)seed);
    if (!m) mb_cli_error(prog, "model: %s", mb_error_last());
    return m;
}

mb_model *mb_cli_model_new(const char *prog, mb_ctx *ctx, const mb_cli_train *t)
{
    return mb_cli_model_create(prog, ctx, &t->cfg, t->seed);
}

mb_optim *mb_cli_optim(const char *prog, mb_model *m, const mb_cli_train *t, const char *optim_path)
{
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = (float)t->lr;
    oc.min_lr = (float)(t->lr / 10);
    oc.weight_decay = (float)t->weight_decay;
    oc.grad_clip = (float)t->grad_clip;
    oc.warmup_steps = (int64_t)(t->warmup_frac * (double)t->steps);
    oc.total_steps = t->steps;
    mb_optim *o = mb_optim_create(m, &oc);
    if (!o) {
        mb_cli_error(prog, "optimizer: %s", mb_error_last());
        return NULL;
    }
    if (t->resume && mb_optim_load(o, optim_path)) {
        mb_cli_lib_error(prog, optim_path);
        mb_optim_free(o);
        return NULL;
    }
    return o;
}

int mb_cli_check_finite_step(const char *prog, mb_model *m, mb_state *st, const int32_t *tok, int B,
                             const char *model)
{
    const int Vp = mb_config_vocab_padded(mb_model_config(m));
    float *lg = malloc(sizeof(float) * (size_t)B * (size_t)Vp);
    if (!lg) {
        mb_cli_error(prog, "out of memory");
        return -1;
    }
    int rc = 0;
    if (mb_model_step(m, st, tok, lg)) rc = mb_cli_lib_error(prog, model);
    for (size_t i = 0; rc == 0 && i < (size_t)B * (size_t)Vp; i++)
        if (!isfinite(lg[i])) {
            mb_cli_error(prog, "%s: the logits are not finite (%s): the model's numbers overflow; nothing written",
                         model, mb_cli_nonfinite(lg[i]));
            rc = -1;
        }
    free(lg);
    return rc;
}
