/* The sequence classification head on the CPU: gradients of
 * mb_model_classify_backward by finite differences (plain, recompute, and
 * recompute over chunks of the sequence), the pooled paths against each
 * other and against a direct mean of the final hidden state, checkpoints
 * with and without a head, a separable task learned, and the errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/model.h"
#include "train/optim.h"
#include "train/safetensors.h"
#include "testutil.h"

static mb_config tiny(int cplx, int rms, int tied, int n_classes)
{
    mb_config c;
    mb_config_default(&c);
    c.d_model = 8;
    c.n_layer = 2;
    c.vocab_size = 7;
    c.d_state = 3;
    c.init = cplx ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL;
    c.rms_norm = rms;
    c.tie_embeddings = tied;
    c.n_classes = n_classes;
    return c;
}

/* Move every weight off the initialization's special values (norms 1, D 1,
 * zero biases, a 0.02 head whose small logits would leave the backbone's
 * gradients under fp32's resolution), and dt into 0.3..1 where A_log's and
 * dt's gradients are large enough for a finite difference. */
static void jitter(mb_model *m, mb_rng *r, float amount)
{
    for (size_t i = 0; i < m->params.total; i++)
        m->params.data[i] += amount * (float)(2 * mb_rng_uniform(r) - 1);
    mb_test_set_dt_bias(m, r);
    if (m->cls.p_w >= 0) {
        const mb_param *w = &m->params.items[m->cls.p_w];
        for (size_t i = 0; i < w->numel; i++) m->params.data[w->offset + i] = (float)mb_rng_normal(r);
    }
}

static int32_t *random_tokens(mb_rng *r, size_t n, int vocab)
{
    int32_t *t = malloc(n * sizeof(int32_t));
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)mb_rng_below(r, (uint32_t)vocab);
    return t;
}

/* ---- gradients by finite differences -------------------------------------- */
typedef struct {
    mb_model *m;
    int B, L;
    const int32_t *tok, *lab;
} cls_case;

static double cls_loss(void *ud)
{
    cls_case *c = ud;
    mb_loss_stats st = {0};
    assert_int_equal(mb_model_classify(c->m, c->tok, c->B, c->L, c->lab, NULL, &st), 0);
    return st.loss_sum / (double)st.count;
}


static void classify_grad(int cplx, int rms, int tied)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 10 + 4 * cplx + 2 * rms + tied);
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg = tiny(cplx, rms, tied, 3);
    mb_model *m = mb_model_create(ctx, &cfg, 5);
    assert_non_null(m);
    jitter(m, &r, 0.2f);
    const int B = 4, L = 13;
    int32_t *tok = random_tokens(&r, (size_t)B * L, cfg.vocab_size);
    const int32_t lab[4] = {2, 0, MB_IGNORE_INDEX, 1};
    cls_case c = {m, B, L, tok, lab};

    const size_t n = m->params.total;
    mb_loss_stats s0 = {0};
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, &s0), 0);
    assert_int_equal(s0.count, 3);
    float *g = malloc(n * 4);
    memcpy(g, m->params.grad, n * 4);
    /* the mean loss is what classify reports too */
    assert_true(fabs(cls_loss(&c) - s0.loss_sum / 3) < 1e-12);

    mb_test_fd_tally t = {0};
    for (int i = 0; i < m->params.n; i++) {
        const mb_param *p = &m->params.items[i];
        char what[160];
        snprintf(what, sizeof what, "%s%s%s %s", cplx ? "C" : "R", rms ? "rms" : "ln",
                 tied ? "/tied" : "/untied", p->name + (strncmp(p->name, "backbone.", 9) ? 0 : 9));
        const int before = t.unresolved;
        mb_test_fd_tensor(what, cls_loss, &c, m->params.data + p->offset, g + p->offset, p->numel, 24, 3e-4, 1e-2,
                          &t);
        /* an untied LM head is not on the classifier's path: exactly zero,
         * and the loss does not move with it */
        if (!strcmp(p->name, "lm_head.weight")) assert_true(mb_test_max_abs(g + p->offset, p->numel) == 0);
        /* both ends of the path (head, norm_f, embedding) are always resolved */
        if (!strncmp(p->name, "classifier.", 11) || strstr(p->name, "norm_f.") || strstr(p->name, "embedding."))
            assert_int_equal(t.unresolved, before);
    }
    /* one left unresolved must be a small-gradient mixer tensor: they get
     * theirs from mb_lm_backward_from_hf, the LM's own backward, which
     * test_golden checks against float64 (lm_real, lm_complex) */
    static const char *const small[] = {"mixer.dt_proj.weight", "mixer.dt_proj.bias", "mixer.A_log",
                                        "mixer.A_imag", "mixer.x_proj.weight", NULL};
    char tw[64];
    snprintf(tw, sizeof tw, "%s %s %s classifier", cplx ? "complex" : "real", rms ? "rmsnorm" : "layernorm",
             tied ? "tied" : "untied");
    const double worst = mb_test_fd_tally_check(&t, tw, m->params.n, small,
                                                "test_golden's float64 lm_* gradients (the same backward)", 1);
    /* As test_model's whole-model check: the wiring, not the last digits
     * (those are test_golden's). With steps of 1e-2 the worst measured over
     * 77 seeds x 3 models was 1.2e-2, on a small A_log gradient (at 3e-3,
     * fp32 noise reached 3.2e-2 on dt_proj); a wiring error gives O(1), and
     * dpooled scaled by 1.1 instead of 1 gave 1e-1. */
    assert_true(worst < 3e-2);

    /* recompute: the same arithmetic again */
    mb_model_set_recompute(m, 1);
    mb_model_set_recompute_chunk(m, 0);
    mb_loss_stats s1 = {0}, s2 = {0}, s3 = {0};
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, &s1), 0);
    double e1 = mb_test_rel_err(m->params.grad, g, n);
    /* over chunks of 5 (5 + 5 + 3) and of 4 (the conv's width; 4 + 4 + 4 + 1),
     * the states and their gradients carried */
    mb_model_set_recompute_chunk(m, 5);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, &s2), 0);
    double e2 = mb_test_rel_err(m->params.grad, g, n);
    mb_model_set_recompute_chunk(m, 4);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, &s3), 0);
    double e3 = mb_test_rel_err(m->params.grad, g, n);
    printf("# recompute vs plain: loss %.9f %.9f %.9f %.9f, gradients rel err %.2e (whole), "
           "%.2e (chunks of 5), %.2e (chunks of 4)\n",
           s0.loss_sum, s1.loss_sum, s2.loss_sum, s3.loss_sum, e1, e2, e3);
    assert_true(s1.loss_sum == s0.loss_sum);
    assert_true(fabs(s2.loss_sum - s0.loss_sum) < 1e-5 * fabs(s0.loss_sum));
    assert_true(fabs(s3.loss_sum - s0.loss_sum) < 1e-5 * fabs(s0.loss_sum));
    assert_true(e1 < 1e-6);
    assert_true(e2 < 1e-5 && e3 < 1e-5);
    /* the stack a chunk at a time (chunks of 4), the pooled gradient read
     * back a chunk of hf at a time */
    mb_loss_stats s4 = {0};
    mb_model_set_recompute(m, MB_RECOMPUTE_STACK);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, &s4), 0);
    const double e4 = mb_test_rel_err(m->params.grad, g, n);
    printf("# stacked chunks of 4 vs plain: loss %.9f, gradients rel err %.2e\n", s4.loss_sum, e4);
    assert_true(fabs(s4.loss_sum - s0.loss_sum) < 1e-5 * fabs(s0.loss_sum));
    assert_true(e4 < 1e-5);
    /* the same model's next-token training, stacked: the logits' backward a
     * chunk at a time over the whole hf a classifier keeps */
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)(B * L));
    assert_non_null(tgt);
    for (int i = 0; i < B * L; i++) tgt[i] = i % L == L - 1 ? MB_IGNORE_INDEX : tok[i + 1];
    float *glm = malloc(n * 4);
    assert_non_null(glm);
    mb_loss_stats s5 = {0}, s6 = {0};
    mb_model_set_recompute(m, 0);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_forward_backward(m, tok, tgt, B, L, &s5), 0);
    memcpy(glm, m->params.grad, n * 4);
    mb_model_set_recompute(m, MB_RECOMPUTE_STACK);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_forward_backward(m, tok, tgt, B, L, &s6), 0);
    const double e5 = mb_test_rel_err(m->params.grad, glm, n);
    printf("# next-token training, stacked chunks of 4 vs plain: gradients rel err %.2e\n", e5);
    assert_true(fabs(s6.loss_sum - s5.loss_sum) < 1e-5 * fabs(s5.loss_sum));
    assert_true(e5 < 1e-5);
    free(glm), free(tgt);

    /* gradients add up, as forward_backward's: a second call doubles them */
    mb_model_set_recompute(m, 0);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, NULL), 0);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, NULL), 0);
    for (size_t i = 0; i < n; i++) g[i] *= 2;
    assert_true(mb_test_rel_err(m->params.grad, g, n) < 1e-6);
    free(g);
    free(tok);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

static void test_grad_real(void **s) { (void)s; classify_grad(0, 1, 1); }
static void test_grad_complex_untied(void **s) { (void)s; classify_grad(1, 1, 0); }
static void test_grad_layernorm(void **s) { (void)s; classify_grad(0, 0, 0); }

/* ---- the pooled paths agree ------------------------------------------------ */

/* softmax(W x + b) in double, from the model's weights */
static void head_ref(const mb_model *m, const double *x, double *p)
{
    const int d = m->cfg.d_model, C = m->cfg.n_classes;
    const float *W = mb_param_data(&m->params, m->cls.p_w), *bias = mb_param_data(&m->params, m->cls.p_b);
    double mx = -INFINITY, s = 0;
    for (int k = 0; k < C; k++) {
        p[k] = bias[k];
        for (int j = 0; j < d; j++) p[k] += (double)W[(size_t)k * d + j] * x[j];
        mx = fmax(mx, p[k]);
    }
    for (int k = 0; k < C; k++) s += p[k] = exp(p[k] - mx);
    for (int k = 0; k < C; k++) p[k] /= s;
}

static void pooled_paths(int cplx)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 50 + (uint64_t)cplx);
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg = tiny(cplx, 1, 1, 4);
    cfg.d_model = 16;
    cfg.n_layer = 3;
    mb_model *m = mb_model_create(ctx, &cfg, 9);
    assert_non_null(m);
    jitter(m, &r, 0.1f);
    const int B = 3, L = 41, d = cfg.d_model, V = m->vocab_padded, C = cfg.n_classes;
    int32_t *tok = random_tokens(&r, (size_t)B * L, cfg.vocab_size);

    /* the reference: norm_f's output of the training forward, averaged here */
    float *ref_logits = malloc((size_t)B * L * V * 4);
    assert_int_equal(mb_model_forward(m, tok, B, L, NULL, ref_logits, NULL), 0);
    mb_fwd_out o; /* the forward's hf: the architecture's own, on the CPU */
    assert_int_equal(m->arch->forward(m, m->tok_dev, B, L, 0, 0, &o), 0);
    double *mean = calloc((size_t)B * d, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int j = 0; j < d; j++) mean[b * d + j] += o.hf[((size_t)b * L + t) * d + j] / (double)L;

    /* the chunked path: three uneven chunks, sums added into hsum, which
     * starts at 1 to see that it adds */
    mb_state *st = mb_state_create(m, B);
    assert_non_null(st);
    float *hsum = malloc((size_t)B * d * 4), *hsum2 = malloc((size_t)B * d * 4);
    float *got_logits = malloc((size_t)B * L * V * 4), *tmp = malloc((size_t)B * L * V * 4);
    int32_t *col = malloc((size_t)B * L * sizeof(int32_t));
    for (int i = 0; i < B * d; i++) hsum[i] = 1.f, hsum2[i] = 0.f;
    const int cuts[4] = {0, 7, 30, L};
    for (int k = 0; k < 3; k++) {
        const int len = cuts[k + 1] - cuts[k];
        for (int b = 0; b < B; b++) memcpy(col + (size_t)b * len, tok + (size_t)b * L + cuts[k], len * 4);
        assert_int_equal(mb_model_forward_chunk_pooled(m, st, col, len, tmp, hsum), 0);
        for (int b = 0; b < B; b++)
            memcpy(got_logits + ((size_t)b * L + cuts[k]) * V, tmp + (size_t)b * len * V, (size_t)len * V * 4);
    }
    double e_logits = mb_test_rel_err(got_logits, ref_logits, (size_t)B * L * V);
    /* again without logits (the LM head skipped), in two chunks */
    mb_state_reset(st);
    const int cut2[3] = {0, 20, L};
    for (int k = 0; k < 2; k++) {
        const int len = cut2[k + 1] - cut2[k];
        for (int b = 0; b < B; b++) memcpy(col + (size_t)b * len, tok + (size_t)b * L + cut2[k], len * 4);
        assert_int_equal(mb_model_forward_chunk_pooled(m, st, col, len, NULL, hsum2), 0);
    }
    float *pooled = malloc((size_t)B * d * 4);
    double num = 0, den = 0, num2 = 0;
    for (int i = 0; i < B * d; i++) {
        pooled[i] = (hsum[i] - 1.f) / (float)L;
        num += (pooled[i] - mean[i]) * (pooled[i] - mean[i]);
        num2 += (hsum2[i] / L - mean[i]) * (hsum2[i] / L - mean[i]);
        den += mean[i] * mean[i];
    }
    double e_pool = sqrt(num / den), e_pool2 = sqrt(num2 / den);

    /* classify (training forward, no LM head) and classify_pooled on the
     * chunked mean against the head applied here in double */
    float *p_cls = malloc((size_t)B * C * 4), *p_pool = malloc((size_t)B * C * 4);
    float *p_ref = malloc((size_t)B * C * 4);
    double pr[16];
    for (int b = 0; b < B; b++) {
        head_ref(m, mean + (size_t)b * d, pr);
        for (int k = 0; k < C; k++) p_ref[b * C + k] = (float)pr[k];
    }
    assert_int_equal(mb_model_classify(m, tok, B, L, NULL, p_cls, NULL), 0);
    assert_int_equal(mb_model_classify_pooled(m, pooled, B, p_pool), 0);
    double e_cls = mb_test_rel_err(p_cls, p_ref, (size_t)B * C);
    double e_cp = mb_test_rel_err(p_pool, p_ref, (size_t)B * C);
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int k = 0; k < C; k++) s += p_cls[b * C + k];
        assert_true(fabs(s - 1) < 1e-6);
    }
    printf("# %s: chunked logits vs forward %.2e; chunked mean vs direct %.2e (logits on), %.2e "
           "(off); probs: classify %.2e, classify_pooled %.2e\n",
           cplx ? "complex" : "real", e_logits, e_pool, e_pool2, e_cls, e_cp);
    /* other row counts, other GEMM blockings: not bitwise */
    assert_true(e_logits < 1e-6);
    assert_true(e_pool < 1e-5 && e_pool2 < 1e-5);
    assert_true(e_cls < 1e-6 && e_cp < 1e-5);

    /* classify's stats: the loss of those probabilities */
    const int32_t lab[3] = {1, MB_IGNORE_INDEX, 3};
    mb_loss_stats st1 = {0};
    assert_int_equal(mb_model_classify(m, tok, B, L, lab, NULL, &st1), 0);
    double want = -log((double)p_ref[0 * C + 1]) - log((double)p_ref[2 * C + 3]);
    assert_int_equal(st1.count, 2);
    assert_true(fabs(st1.loss_sum - want) < 1e-5 * fmax(1.0, want));
    /* the recurrent step feeds the pooled sums too */
    mb_state_reset(st);
    for (int i = 0; i < B * d; i++) hsum2[i] = 0.f;
    for (int t = 0; t < L; t++) {
        for (int b = 0; b < B; b++) col[b] = tok[b * L + t];
        assert_int_equal(mb_model_forward_chunk_pooled(m, st, col, 1, NULL, hsum2), 0);
    }
    num2 = 0;
    for (int i = 0; i < B * d; i++) num2 += (hsum2[i] / L - mean[i]) * (hsum2[i] / L - mean[i]);
    printf("#   token by token: mean vs direct %.2e\n", sqrt(num2 / den));
    assert_true(sqrt(num2 / den) < 1e-5);

    mb_state_free(st);
    free(ref_logits), free(mean), free(hsum), free(hsum2), free(got_logits), free(tmp), free(col);
    free(pooled), free(p_cls), free(p_pool), free(p_ref), free(tok);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

static void test_pooled_real(void **s) { (void)s; pooled_paths(0); }
static void test_pooled_complex(void **s) { (void)s; pooled_paths(1); }

/* ---- checkpoints ----------------------------------------------------------- */
static void assert_params_equal(const mb_model *a, int ia, const mb_model *b, int ib)
{
    const mb_param *pa = &a->params.items[ia], *pb = &b->params.items[ib];
    assert_string_equal(pa->name, pb->name);
    assert_int_equal(pa->numel, pb->numel);
    assert_memory_equal(a->params.data + pa->offset, b->params.data + pb->offset, pa->numel * 4);
}

static void test_checkpoints(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 70);
    mb_ctx *ctx = mb_ctx_create("cpu");
    char path[256], lm_path[256];
    mb_test_tmp_path(path, sizeof path, "cls.safetensors");
    mb_test_tmp_path(lm_path, sizeof lm_path, "cls_lm.safetensors");

    /* a classifier: the head in the table, decayed as a matrix, the bias not */
    mb_config cfg = tiny(1, 0, 0, 3);
    mb_model *m = mb_model_create(ctx, &cfg, 21);
    assert_non_null(m);
    assert_int_equal(m->cls.p_w, mb_params_find(&m->params, "classifier.weight"));
    assert_int_equal(m->cls.p_b, mb_params_find(&m->params, "classifier.bias"));
    assert_true(m->cls.p_w >= 0 && m->cls.p_b >= 0);
    assert_int_equal(m->params.items[m->cls.p_w].shape[0], 3);
    assert_int_equal(m->params.items[m->cls.p_w].shape[1], 8);
    assert_int_equal(m->params.items[m->cls.p_b].shape[0], 3);
    assert_int_equal(m->params.items[m->cls.p_w].decay, 1);
    assert_int_equal(m->params.items[m->cls.p_b].decay, 0);
    /* the initialization: weight normal(0, 0.02), bias 0 */
    const mb_param *pw = &m->params.items[m->cls.p_w];
    double ss = 0;
    for (size_t i = 0; i < pw->numel; i++) ss += (double)m->params.data[pw->offset + i] * m->params.data[pw->offset + i];
    printf("# classifier.weight rms %.4f (0.02 over %zu draws)\n", sqrt(ss / pw->numel), pw->numel);
    assert_true(sqrt(ss / pw->numel) > 0.01 && sqrt(ss / pw->numel) < 0.035);
    assert_true(mb_test_max_abs(mb_param_data(&m->params, m->cls.p_b), 3) == 0);
    /* the backbone is the LM's of the same seed */
    mb_config lm_cfg = cfg;
    lm_cfg.n_classes = 0;
    mb_model *lm = mb_model_create(ctx, &lm_cfg, 21);
    assert_non_null(lm);
    assert_int_equal(lm->cls.p_w, -1);
    assert_int_equal(lm->params.n, m->params.n - 2);
    for (int i = 0; i < lm->params.n; i++) assert_params_equal(lm, i, m, i);

    /* the config JSON: n_classes only with a head */
    char *json = mb_config_to_json(&m->cfg), *lm_json = mb_config_to_json(&lm->cfg);
    assert_non_null(strstr(json, "\"n_classes\":3"));
    assert_null(strstr(lm_json, "n_classes"));
    mb_config back;
    assert_int_equal(mb_config_from_json(json, &back), 0);
    assert_int_equal(back.n_classes, 3);
    assert_int_equal(mb_config_from_json(lm_json, &back), 0);
    assert_int_equal(back.n_classes, 0);
    free(json), free(lm_json);
    assert_int_equal(mb_config_from_json("{\"n_classes\": -2}", &back), -1);
    assert_non_null(strstr(mb_error_last(), "n_classes -2 out of range"));
    assert_int_equal(mb_config_from_json("{\"n_classes\": \"two\"}", &back), -1);
    assert_non_null(strstr(mb_error_last(), "n_classes must be an integer"));

    /* save / load round trip, weights and outputs exact */
    jitter(m, &r, 0.1f);
    assert_int_equal(mb_model_save(m, path), 0);
    mb_model *m2 = mb_model_load(ctx, path);
    assert_non_null(m2);
    assert_int_equal(m2->cfg.n_classes, 3);
    assert_int_equal(m2->params.n, m->params.n);
    for (int i = 0; i < m->params.n; i++) assert_params_equal(m, i, m2, i);
    const int B = 2, L = 9;
    int32_t *tok = random_tokens(&r, (size_t)B * L, cfg.vocab_size);
    float p1[6], p2[6];
    assert_int_equal(mb_model_classify(m, tok, B, L, NULL, p1, NULL), 0);
    assert_int_equal(mb_model_classify(m2, tok, B, L, NULL, p2, NULL), 0);
    assert_memory_equal(p1, p2, sizeof p1);
    mb_model_free(m2);
    /* load_classifier: 0 = what the file has; the same count loads it */
    for (int k = 0; k < 2; k++) {
        m2 = mb_model_load_classifier(ctx, path, k ? 3 : 0, 777);
        assert_non_null(m2);
        assert_int_equal(m2->cfg.n_classes, 3);
        for (int i = 0; i < m->params.n; i++) assert_params_equal(m, i, m2, i);
        mb_model_free(m2);
    }
    /* another count is refused, with both counts in the message */
    assert_null(mb_model_load_classifier(ctx, path, 5, 1));
    printf("# %s\n", mb_error_last());
    assert_non_null(strstr(mb_error_last(), "has 3 classes, not the 5"));
    assert_null(mb_model_load_classifier(ctx, path, -1, 1));
    assert_non_null(strstr(mb_error_last(), "must not be negative"));

    /* an LM checkpoint: load_classifier adds a head, initialized from the
     * seed as a fresh classifier of that seed would be; the LM tensors as
     * in the file */
    jitter(lm, &r, 0.1f);
    assert_int_equal(mb_model_save(lm, lm_path), 0);
    m2 = mb_model_load_classifier(ctx, lm_path, 4, 33);
    assert_non_null(m2);
    assert_int_equal(m2->cfg.n_classes, 4);
    for (int i = 0; i < lm->params.n; i++) assert_params_equal(lm, i, m2, i);
    mb_config c4 = lm_cfg;
    c4.n_classes = 4;
    mb_model *fresh = mb_model_create(ctx, &c4, 33);
    assert_non_null(fresh);
    assert_params_equal(fresh, fresh->cls.p_w, m2, m2->cls.p_w);
    assert_params_equal(fresh, fresh->cls.p_b, m2, m2->cls.p_b);
    assert_true(mb_test_max_abs(mb_param_data(&m2->params, m2->cls.p_w), 4 * 8) > 0);
    mb_model_free(fresh);
    /* it trains (the new head gets gradients and moves) and saves as a classifier */
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    mb_optim *o = mb_optim_create(m2, &oc);
    assert_non_null(o);
    const int32_t lab[2] = {3, 0};
    float w0[4 * 8];
    memcpy(w0, mb_param_data(&m2->params, m2->cls.p_w), sizeof w0);
    assert_int_equal(mb_model_classify_backward(m2, tok, lab, B, L, NULL), 0);
    assert_true(mb_test_max_abs(mb_param_grad(&m2->params, m2->cls.p_b), 4) > 0);
    assert_int_equal(mb_optim_step(o, NULL, NULL), 0);
    assert_true(memcmp(w0, mb_param_data(&m2->params, m2->cls.p_w), sizeof w0) != 0);
    assert_int_equal(mb_model_save(m2, path), 0);
    mb_model *m3 = mb_model_load(ctx, path);
    assert_non_null(m3);
    assert_int_equal(m3->cfg.n_classes, 4);
    for (int i = 0; i < m2->params.n; i++) assert_params_equal(m2, i, m3, i);
    mb_model_free(m3);
    mb_optim_free(o);
    mb_model_free(m2);
    /* n_classes 0 on an LM file: the plain LM */
    m2 = mb_model_load_classifier(ctx, lm_path, 0, 1);
    assert_non_null(m2);
    assert_int_equal(m2->cfg.n_classes, 0);
    assert_int_equal(m2->cls.p_w, -1);
    mb_model_free(m2);

    unlink(path);
    unlink(lm_path);
    free(tok);
    mb_model_free(m);
    mb_model_free(lm);
    mb_ctx_free(ctx);
}

/* ---- a separable task ------------------------------------------------------
 * Sequences over 7..10 (A C G T in the DNA tokenizer): class 0 draws token
 * 7 half the time, class 1 token 10; the other three tokens share the rest.
 * At L = 48 the counts of 7 and 10 alone tell the classes apart 99.9% of
 * the time, so >= 95% on fresh samples means the head and the backbone's
 * gradients work. */
static void make_batch(mb_rng *r, int B, int L, int32_t *tok, int32_t *lab)
{
    for (int b = 0; b < B; b++) {
        lab[b] = (int32_t)mb_rng_below(r, 2);
        const int32_t rich = lab[b] ? 10 : 7;
        for (int t = 0; t < L; t++) {
            if (mb_rng_uniform(r) < 0.5) {
                tok[b * L + t] = rich;
            } else {
                int32_t x = 7 + (int32_t)mb_rng_below(r, 3); /* 7..9, then skip rich */
                tok[b * L + t] = x >= rich ? x + 1 : x;
            }
        }
    }
}

static void test_learn_separable(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 16;
    cfg.n_layer = 2;
    cfg.d_state = 8;
    cfg.vocab_size = 12;
    cfg.n_classes = 2;
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    assert_non_null(m);
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = 3e-3f;
    oc.min_lr = 3e-4f;
    oc.warmup_steps = 20;
    oc.total_steps = 300;
    mb_optim *o = mb_optim_create(m, &oc);
    assert_non_null(o);
    const int B = 16, L = 48, NE = 512;
    int32_t *tok = malloc(sizeof(int32_t) * NE * L), lab[512];
    mb_rng data;
    mb_rng_seed(&data, 4242);
    int step = 0;
    for (; step < 300; step++) {
        mb_loss_stats st = {0};
        make_batch(&data, B, L, tok, lab);
        assert_int_equal(mb_model_classify_backward(m, tok, lab, B, L, &st), 0);
        assert_int_equal(mb_optim_step(o, NULL, NULL), 0);
        if (step % 50 == 49)
            printf("# step %3d  loss %.4f  batch accuracy %lld/%d\n", step + 1,
                   st.loss_sum / (double)st.count, (long long)st.correct, B);
    }
    /* fresh sequences from a seed the training never drew from */
    mb_rng fresh;
    mb_rng_seed(&fresh, mb_test_seed());
    make_batch(&fresh, NE, L, tok, lab);
    mb_loss_stats st = {0};
    float *probs = malloc(sizeof(float) * NE * 2);
    assert_int_equal(mb_model_classify(m, tok, NE, L, lab, probs, &st), 0);
    int agree = 0;
    for (int b = 0; b < NE; b++) agree += (probs[2 * b + 1] > probs[2 * b]) == (lab[b] == 1);
    const double acc = (double)st.correct / (double)st.count;
    printf("# accuracy %.2f%% on %d fresh sequences after %d steps (chance 50%%), loss %.4f\n",
           100 * acc, NE, step, st.loss_sum / (double)st.count);
    assert_int_equal(st.count, NE);
    /* the argmax of probs is what stats counted (up to exact ties) */
    assert_true(abs(agree - (int)st.correct) <= 1);
    assert_true(acc >= 0.95);
    free(probs);
    free(tok);
    mb_optim_free(o);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

/* ---- errors ---------------------------------------------------------------- */
static void test_errors(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg = tiny(0, 1, 1, 0);
    mb_model *lm = mb_model_create(ctx, &cfg, 1);
    assert_non_null(lm);
    int32_t tok[8] = {1, 2, 3, 4, 5, 6, 0, 1}, lab[2] = {0, 1};
    float probs[8], pooled[16] = {0};
    mb_loss_stats st = {0};
    assert_int_equal(mb_model_classify(lm, tok, 2, 4, lab, probs, &st), -1);
    assert_string_equal(mb_error_last(), "model has no classification head");
    assert_int_equal(mb_model_classify_backward(lm, tok, lab, 2, 4, &st), -1);
    assert_string_equal(mb_error_last(), "model has no classification head");
    assert_int_equal(mb_model_classify_pooled(lm, pooled, 2, probs), -1);
    assert_string_equal(mb_error_last(), "model has no classification head");
    mb_model_free(lm);

    cfg.n_classes = 3;
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    assert_non_null(m);
    lab[1] = 3;
    assert_int_equal(mb_model_classify(m, tok, 2, 4, lab, probs, &st), -1);
    assert_non_null(strstr(mb_error_last(), "label 3 at position 1 is outside the classes [0, 3)"));
    lab[1] = -5;
    assert_int_equal(mb_model_classify_backward(m, tok, lab, 2, 4, &st), -1);
    assert_non_null(strstr(mb_error_last(), "label -5"));
    lab[1] = MB_IGNORE_INDEX;
    tok[5] = 7;
    assert_int_equal(mb_model_classify_backward(m, tok, lab, 2, 4, &st), -1);
    assert_non_null(strstr(mb_error_last(), "token 7 at position 5 is outside the vocabulary"));
    tok[5] = 6;
    assert_int_equal(mb_model_classify_backward(m, tok, NULL, 2, 4, &st), -1);
    assert_non_null(strstr(mb_error_last(), "needs labels"));
    assert_int_equal(mb_model_classify(m, tok, 0, 4, NULL, probs, NULL), -1);
    assert_int_equal(mb_model_classify(m, tok, 2, 0, NULL, probs, NULL), -1);
    assert_non_null(strstr(mb_error_last(), "empty batch"));
    mb_state *s1 = mb_state_create(m, 2);
    assert_non_null(s1);
    assert_int_equal(mb_model_forward_chunk_pooled(m, s1, tok, 4, NULL, NULL), -1);
    assert_int_equal(mb_model_forward_chunk_pooled(m, s1, tok, 0, NULL, pooled), -1);
    mb_state_free(s1);
    /* nothing failed for good: an ignored label counts for nothing */
    memset(&st, 0, sizeof st);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, 2, 4, &st), 0);
    assert_int_equal(st.count, 1);
    lab[0] = MB_IGNORE_INDEX;
    memset(&st, 0, sizeof st);
    mb_model_zero_grad(m);
    assert_int_equal(mb_model_classify_backward(m, tok, lab, 2, 4, &st), 0);
    assert_int_equal(st.count, 0);
    assert_true(mb_test_max_abs(m->params.grad, m->params.total) == 0);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_real),      cmocka_unit_test(test_grad_complex_untied),
        cmocka_unit_test(test_grad_layernorm), cmocka_unit_test(test_pooled_real),
        cmocka_unit_test(test_pooled_complex), cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_learn_separable), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
