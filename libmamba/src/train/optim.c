/* AdamW over the model's one parameter buffer, one call per tensor so that
 * weight decay can skip norms, biases, A_log, A_imag and D. */
#include <math.h>
#include <stdlib.h>

#include "train/dist.h"
#include "train/optim.h"

void mb_optim_config_default(mb_optim_config *oc)
{
    /* the Mamba paper's recipe: AdamW (0.9, 0.95), wd 0.1, clip 1.0 */
    oc->lr = 1e-3f;
    oc->min_lr = 1e-4f;
    oc->beta1 = 0.9f;
    oc->beta2 = 0.95f;
    oc->eps = 1e-8f;
    oc->weight_decay = 0.1f;
    oc->grad_clip = 1.0f;
    oc->warmup_steps = 0;
    oc->total_steps = 0;
}

float mb_optim_lr_at(const mb_optim_config *oc, int64_t step)
{
    if (step < oc->warmup_steps) return oc->lr * (float)(step + 1) / (float)oc->warmup_steps;
    if (oc->total_steps <= 0) return oc->lr;
    int64_t span = oc->total_steps - oc->warmup_steps;
    double progress = span > 0 ? (double)(step - oc->warmup_steps) / (double)span : 1.0;
    if (progress > 1.0) progress = 1.0;
    return (float)(oc->min_lr + 0.5 * (oc->lr - oc->min_lr) * (1.0 + cos(MB_PI * progress)));
}

mb_optim *mb_optim_create(mb_model *m, const mb_optim_config *oc)
{
    /* every setting finite and in range, NaN refused (each test is true
     * only for a number in range): an infinite rate or decay was taken and
     * turned the weights into NaN at the first step, a negative min_lr
     * climbed the loss */
    if (!(oc->lr > 0 && isfinite(oc->lr)) || !(oc->beta1 >= 0 && oc->beta1 < 1) ||
        !(oc->beta2 >= 0 && oc->beta2 < 1) || !(oc->eps > 0 && isfinite(oc->eps)) ||
        !(oc->weight_decay >= 0 && isfinite(oc->weight_decay)) || !(oc->grad_clip >= 0 && isfinite(oc->grad_clip)) ||
        !(oc->min_lr >= 0 && oc->min_lr <= oc->lr) || oc->warmup_steps < 0 || oc->total_steps < 0) {
        mb_error_set("bad optimizer settings (lr %g, min_lr %g, betas %g %g, eps %g, weight decay %g, clip %g, "
                     "warmup %lld, total %lld): lr finite and > 0, min_lr in [0, lr], betas in [0, 1), eps > 0, "
                     "decay and clip finite and >= 0",
                     oc->lr, oc->min_lr, oc->beta1, oc->beta2, oc->eps, oc->weight_decay, oc->grad_clip,
                     (long long)oc->warmup_steps, (long long)oc->total_steps);
        return NULL;
    }
    if (mb_params_grad_ensure(&m->params, m->ctx)) return NULL;
    mb_optim *o = mb_calloc(1, sizeof *o, "optimizer");
    if (!o) return NULL;
    o->model = m;
    o->cfg = *oc;
    o->share = -1;
    o->m = mb_dev_alloc_floats(m->ctx, m->params.total, "AdamW moments");
    o->v = mb_dev_alloc_floats(m->ctx, m->params.total, "AdamW moments");
    if (!o->m || !o->v || mb_dev_zero(m->ctx, o->m, m->params.total * sizeof(float)) ||
        mb_dev_zero(m->ctx, o->v, m->params.total * sizeof(float))) {
        mb_optim_free(o);
        return NULL;
    }
    return o;
}

void mb_optim_free(mb_optim *o)
{
    if (!o) return;
    mb_dev_free(o->model->ctx, o->m);
    mb_dev_free(o->model->ctx, o->v);
    free(o);
}

int64_t mb_optim_step_count(const mb_optim *o) { return o->step; }

int mb_optim_step(mb_optim *o, float *grad_norm, float *lr_out)
{
    mb_model *m = o->model;
    mb_ctx *ctx = m->ctx;
    mb_params *ps = &m->params;
    /* the weights change: their copies would be stale */
    mb_params_changed(ps, ctx);
    /* data parallel: every rank's gradient becomes the global batch's, so
     * the clipping below sees the global norm and every rank takes the
     * same step (nothing happens with one rank) */
    const double share = o->share;
    o->share = -1;
    if (m->dist && mb_dist_grad_reduce(m->dist, ctx, ps->grad, ps->total, share)) {
        mb_model_zero_grad(m);
        return -1;
    }
    double norm = sqrt(mb_sumsq(ctx, ps->total, ps->grad));
    if (grad_norm) *grad_norm = (float)norm;
    if (!isfinite(norm)) {
        /* a poisoned gradient must not reach the weights or the moments;
         * the message says what state the caller has, not what it should do
         * next (a tool stops on it: "update skipped" read as if it went on) */
        mb_model_zero_grad(m);
        return mb_error_set("non-finite gradient norm (%s): the weights and the optimizer state are left as they "
                            "were before this step",
                            isnan(norm) ? "nan" : "inf");
    }
    if (o->cfg.grad_clip > 0 && norm > o->cfg.grad_clip)
        mb_axpby(ctx, ps->total, 0.f, ps->grad, (float)(o->cfg.grad_clip / (norm + 1e-6)), ps->grad);
    const float lr = mb_optim_lr_at(&o->cfg, o->step);
    if (lr_out) *lr_out = lr;
    const double t = (double)(o->step + 1);
    const float bc1 = (float)(1.0 - pow(o->cfg.beta1, t)), bc2 = (float)(1.0 - pow(o->cfg.beta2, t));
    for (int i = 0; i < ps->n; i++) {
        const mb_param *p = &ps->items[i];
        mb_adamw(ctx, p->numel, ps->data + p->offset, ps->grad + p->offset, o->m + p->offset,
                 o->v + p->offset, lr, o->cfg.beta1, o->cfg.beta2, o->cfg.eps,
                 p->decay ? o->cfg.weight_decay : 0.f, bc1, bc2);
    }
    mb_model_zero_grad(m);
    o->step++;
    return mb_ctx_check(ctx);
}
