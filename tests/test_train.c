/* Optimizer and training loop: schedule, decay mask, clipping, poisoned
 * gradients, and resume == uninterrupted. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "selcopy_task.h"
#include "train/optim.h"
#include "testutil.h"

static mb_config small_config(void)
{
    mb_config c;
    mb_config_default(&c);
    c.d_model = 16;
    c.n_layer = 2;
    c.vocab_size = 10;
    c.d_state = 4;
    return c;
}

static void test_schedule(void **s)
{
    (void)s;
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = 1e-3f;
    oc.min_lr = 1e-4f;
    oc.warmup_steps = 10;
    oc.total_steps = 110;
    assert_float_equal(mb_optim_lr_at(&oc, 0), 1e-4f, 1e-9);   /* 1/10 of peak */
    assert_float_equal(mb_optim_lr_at(&oc, 9), 1e-3f, 1e-9);   /* peak at end of warmup */
    assert_float_equal(mb_optim_lr_at(&oc, 10), 1e-3f, 1e-9);  /* cosine starts at peak */
    assert_float_equal(mb_optim_lr_at(&oc, 60), 5.5e-4f, 1e-8); /* half way: the mean */
    assert_float_equal(mb_optim_lr_at(&oc, 110), 1e-4f, 1e-9);  /* floor */
    assert_float_equal(mb_optim_lr_at(&oc, 500), 1e-4f, 1e-9);
    oc.total_steps = 0;
    assert_float_equal(mb_optim_lr_at(&oc, 500), 1e-3f, 1e-9);  /* constant */
}

/* With zero gradients AdamW only decays: exactly the decayed tensors move,
 * each by the factor 1 - lr * wd. */
static void test_decay_mask(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg = small_config();
    cfg.init = MB_INIT_S4D_LIN;
    cfg.rms_norm = 0;
    cfg.tie_embeddings = 0;
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = 0.01f;
    oc.weight_decay = 0.5f;
    mb_optim *o = mb_optim_create(m, &oc);
    float *before = malloc(m->params.total * 4);
    memcpy(before, m->params.data, m->params.total * 4);
    mb_model_zero_grad(m);
    assert_int_equal(mb_optim_step(o, NULL, NULL), 0);
    int decayed = 0, kept = 0;
    for (int i = 0; i < m->params.n; i++) {
        const mb_param *p = &m->params.items[i];
        const char *n = p->name;
        int expect = !(strstr(n, "norm") || strstr(n, "bias") || strstr(n, "A_log") ||
                       strstr(n, "A_imag") || strstr(n, ".D"));
        assert_int_equal(p->decay, expect);
        for (size_t k = 0; k < p->numel; k++) {
            float want = expect ? before[p->offset + k] * (1.f - 0.01f * 0.5f) : before[p->offset + k];
            assert_float_equal(m->params.data[p->offset + k], want, 1e-7);
        }
        decayed += expect;
        kept += !expect;
    }
    printf("# %d tensors decayed, %d not\n", decayed, kept);
    assert_true(decayed > 0 && kept > 0);
    free(before);
    mb_optim_free(o);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

/* the reported norm is the pre-clip one; the update uses the clipped
 * gradient (first Adam step: each element moves by lr * sign(g) unless it
 * is tiny, independent of scale: check via the moments instead) */
static void test_clip_and_poison(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg = small_config();
    mb_model *m = mb_model_create(ctx, &cfg, 2);
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.grad_clip = 1.0f;
    oc.beta1 = 0.5f;
    mb_optim *o = mb_optim_create(m, &oc);
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed());
    for (size_t i = 0; i < m->params.total; i++) m->params.grad[i] = (float)mb_rng_normal(&r);
    double norm = sqrt(mb_sumsq(ctx, m->params.total, m->params.grad));
    float *g = malloc(m->params.total * 4);
    memcpy(g, m->params.grad, m->params.total * 4);
    float gn;
    assert_int_equal(mb_optim_step(o, &gn, NULL), 0);
    assert_float_equal(gn, norm, 1e-3 * norm);
    /* m = (1 - beta1) * clipped g */
    for (size_t i = 0; i < m->params.total; i += 97)
        assert_float_equal(o->m[i], 0.5f * g[i] / (float)norm, 1e-6);
    assert_true(mb_test_max_abs(m->params.grad, m->params.total) == 0); /* zeroed */
    /* a NaN gradient skips the update and leaves weights and moments alone */
    float *w = malloc(m->params.total * 4), *mm = malloc(m->params.total * 4);
    memcpy(w, m->params.data, m->params.total * 4);
    memcpy(mm, o->m, m->params.total * 4);
    m->params.grad[5] = NAN;
    assert_int_equal(mb_optim_step(o, NULL, NULL), -1);
    assert_non_null(strstr(mb_error_last(), "non-finite gradient"));
    assert_memory_equal(w, m->params.data, m->params.total * 4);
    assert_memory_equal(mm, o->m, m->params.total * 4);
    assert_int_equal(mb_optim_step_count(o), 1);
    free(g), free(w), free(mm);
    mb_optim_free(o);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

/* ---- resume: save after k steps, load into fresh objects, continue ------- */
static void train_steps(mb_model *m, mb_optim *o, const mb_selcopy *t, int from, int to, double *losses)
{
    const int B = 4, T = mb_selcopy_len(t);
    int32_t tok[4 * 64], tgt[4 * 64];
    for (int step = from; step < to; step++) {
        uint64_t seed = 1000 + (uint64_t)step; /* the data of a step depends on the step only */
        mb_selcopy_batch(t, &seed, B, tok, tgt);
        mb_loss_stats st = {0};
        assert_int_equal(mb_model_forward_backward(m, tok, tgt, B, T, &st), 0);
        assert_int_equal(mb_optim_step(o, NULL, NULL), 0);
        losses[step] = st.loss_sum / (double)st.count;
    }
}

/* Settings out of range are refused at creation, NaN and infinities
 * included: lr = inf once returned normally and left NaN weights */
static void test_optim_settings(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg = small_config();
    mb_model *m = mb_model_create(ctx, &cfg, 7);
    assert_non_null(m);
    mb_optim_config ok;
    mb_optim_config_default(&ok);
    mb_optim *o = mb_optim_create(m, &ok);
    assert_non_null(o);
    mb_optim_free(o);
    for (int k = 0; k < 12; k++) {
        mb_optim_config oc = ok;
        switch (k) {
        case 0: oc.lr = INFINITY; break;
        case 1: oc.lr = NAN; break;
        case 2: oc.lr = 0; break;
        case 3: oc.weight_decay = INFINITY; break;
        case 4: oc.weight_decay = NAN; break;
        case 5: oc.min_lr = -1e-3f; break;
        case 6: oc.min_lr = oc.lr * 2; break;
        case 7: oc.min_lr = NAN; break;
        case 8: oc.grad_clip = NAN; break;
        case 9: oc.eps = INFINITY; break;
        case 10: oc.beta1 = 1; break;
        default: oc.total_steps = -1; break;
        }
        assert_null(mb_optim_create(m, &oc));
        assert_non_null(strstr(mb_error_last(), "bad optimizer settings"));
    }
    mb_model_free(m);
    mb_ctx_free(ctx);
}

static void test_resume(void **s)
{
    (void)s;
    mb_selcopy task = {.span = 20, .n_memorize = 3, .n_symbols = 7};
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg = small_config();
    cfg.vocab_size = mb_selcopy_vocab(&task);
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = 3e-3f;
    oc.warmup_steps = 3;
    oc.total_steps = 12;
    double straight[12], resumed[12];
    mb_model *m = mb_model_create(ctx, &cfg, 7);
    mb_optim *o = mb_optim_create(m, &oc);
    train_steps(m, o, &task, 0, 12, straight);
    float *final = malloc(m->params.total * 4);
    memcpy(final, m->params.data, m->params.total * 4);
    mb_optim_free(o);
    mb_model_free(m);

    char mpath[256], opath[256];
    mb_test_tmp_path(mpath, sizeof mpath, "resume.safetensors");
    mb_test_tmp_path(opath, sizeof opath, "resume.optim.safetensors");
    m = mb_model_create(ctx, &cfg, 7);
    o = mb_optim_create(m, &oc);
    train_steps(m, o, &task, 0, 5, resumed);
    assert_int_equal(mb_model_save(m, mpath), 0);
    assert_int_equal(mb_optim_save(o, opath), 0);
    mb_optim_free(o);
    mb_model_free(m);
    m = mb_model_load(ctx, mpath);
    assert_non_null(m);
    o = mb_optim_create(m, &oc);
    assert_int_equal(mb_optim_load(o, opath), 0);
    assert_int_equal(mb_optim_step_count(o), 5);
    train_steps(m, o, &task, 5, 12, resumed);
    for (int i = 0; i < 12; i++) printf("# step %2d loss %.6f %.6f\n", i, straight[i], resumed[i]);
    double e = mb_test_rel_err(m->params.data, final, m->params.total);
    printf("# resumed vs uninterrupted weights: rel err %.2e\n", e);
    /* same arithmetic on the same data; only BLAS threading may reorder sums */
    assert_true(e < 1e-6);
    assert_float_equal(resumed[11], straight[11], 1e-6 * fabs(straight[11]));
    remove(mpath);
    remove(opath);
    free(final);
    mb_optim_free(o);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule),
        cmocka_unit_test(test_decay_mask),
        cmocka_unit_test(test_clip_and_poison),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_optim_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
