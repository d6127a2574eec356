/* Old-format checkpoints: tiny models written by the library as it was
 * before the model refactor (its sources as at 9242ace), each with a fixed token batch
 * and the outputs that code produced, in tests/fixtures/compat_*. Each
 * checkpoint must still load with mb_model_load and give the same logits
 * (and class probabilities) to 1e-6 relative; they were bit-identical when
 * written (printed: how many values differ at all).
 *
 *   compat_lm_real        LM, real A (S4D-Real), RMSNorm, tied head
 *   compat_lm_cls         LM with a classification head of 3 classes
 *   compat_lm_complex_ln  LM, complex A (S4D-Lin), LayerNorm, untied head
 *   compat_sashimi_mlp    SaShiMi U-Net with MLP blocks, pools {2, 2}
 * (d_model 8, the U-Net's 4; 2 layers, the U-Net's 1 block per stack;
 * d_state 3, vocab 11; weights moved off the initialization)
 *
 * Regenerate (only on the code whose behaviour is to be pinned, never to
 * make a failing check pass): MB_COMPAT_WRITE=1 build/tests/test_compat
 * writes the four pairs into tests/fixtures, then checks them. Uses only
 * the public API, the parameter table and the safetensors reader/writer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h" /* the parameter table, m->params */
#include "testutil.h"
#include "train/safetensors.h"

#define COMPAT_TOL 1e-6
#define COMPAT_B 2
#define COMPAT_L 16

typedef struct {
    const char *tag;
    int arch, cplx, rms, tied, n_classes, mlp;
} compat_case;

static const compat_case CASES[] = {
    {"lm_real", MB_ARCH_LM, 0, 1, 1, 0, 0},
    {"lm_cls", MB_ARCH_LM, 0, 1, 1, 3, 0},
    {"lm_complex_ln", MB_ARCH_LM, 1, 0, 0, 0, 0},
    {"sashimi_mlp", MB_ARCH_SASHIMI, 0, 1, 0, 0, 1},
};

static void fixture_path(char *buf, size_t cap, const char *tag, const char *suffix)
{
    snprintf(buf, cap, "%s/compat_%s%s.safetensors", MB_FIXTURE_DIR, tag, suffix);
}

static mb_config case_config(const compat_case *c)
{
    mb_config cfg;
    if (c->arch == MB_ARCH_SASHIMI) {
        mb_config_sashimi_default(&cfg);
        cfg.n_layer = 1;
        cfg.pool[0] = 2;
        cfg.pool[1] = 2;
        cfg.mlp = c->mlp;
    } else {
        mb_config_default(&cfg);
        cfg.n_layer = 2;
        cfg.rms_norm = c->rms;
        cfg.tie_embeddings = c->tied;
        cfg.n_classes = c->n_classes;
    }
    cfg.d_model = c->arch == MB_ARCH_SASHIMI ? 4 : 8; /* the U-Net's widths 4, 8, 16 */
    cfg.vocab_size = 11;
    cfg.d_state = 3;
    cfg.init = c->cplx ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL;
    return cfg;
}

static uint64_t mix(uint64_t *z)
{
    uint64_t v = (*z += 0x9E3779B97F4A7C15ull);
    v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ull;
    v = (v ^ (v >> 27)) * 0x94D049BB133111EBull;
    return v ^ (v >> 31);
}

static double unit(uint64_t *z) { return (double)(mix(z) >> 11) * 0x1.0p-53; }

static int ends_with(const char *s, const char *suffix)
{
    const size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void fixed_tokens(const compat_case *c, int vocab, int32_t *tok)
{
    uint64_t z = 0xC0FFEEull + (uint64_t)strlen(c->tag);
    for (int i = 0; i < COMPAT_B * COMPAT_L; i++) tok[i] = (int32_t)(mix(&z) % (uint64_t)vocab);
}

/* The outputs of m on tok: logits (B, L, vocab padded) and, with a head,
 * probs (B, n_classes). */
static void outputs(mb_model *m, const int32_t *tok, float *logits, float *probs)
{
    if (mb_model_forward(m, tok, COMPAT_B, COMPAT_L, NULL, logits, NULL))
        fail_msg("mb_model_forward: %s", mb_error_last());
    if (probs && mb_model_classify(m, tok, COMPAT_B, COMPAT_L, NULL, probs, NULL))
        fail_msg("mb_model_classify: %s", mb_error_last());
}

/* MB_COMPAT_WRITE=1: a model drawn away from its initialization (every
 * weight moved by up to 0.2, dt biases giving delta of 0.3..0.7, a head of
 * unit weights), saved by mb_model_save, and its outputs beside it */
static void write_case(mb_ctx *ctx, const compat_case *c)
{
    mb_config cfg = case_config(c);
    mb_model *m = mb_model_create(ctx, &cfg, 17);
    if (!m) fail_msg("mb_model_create: %s", mb_error_last());
    mb_params *ps = &m->params;
    float *host = malloc(ps->total * sizeof(float));
    assert_non_null(host);
    assert_int_equal(mb_dev_download(ctx, host, ps->data, ps->total * sizeof(float)), 0);
    uint64_t z = 0xA11CEull;
    for (int i = 0; i < ps->n; i++) {
        const mb_param *p = &ps->items[i];
        for (size_t k = 0; k < p->numel; k++) {
            float *x = host + p->offset + k;
            if (ends_with(p->name, "dt_proj.bias"))
                *x = (float)(-1.0 + unit(&z));
            else if (!strncmp(p->name, "classifier.", 11))
                *x = (float)(2 * unit(&z) - 1);
            else
                *x += (float)(0.2 * (2 * unit(&z) - 1));
        }
    }
    assert_int_equal(mb_dev_upload(ctx, ps->data, host, ps->total * sizeof(float)), 0);
    free(host);
    char path[4096];
    fixture_path(path, sizeof path, c->tag, "");
    if (mb_model_save(m, path)) fail_msg("mb_model_save: %s", mb_error_last());

    const int Vp = mb_config_vocab_padded(&cfg), C = cfg.n_classes;
    int32_t tok[COMPAT_B * COMPAT_L];
    fixed_tokens(c, cfg.vocab_size, tok);
    float *logits = malloc(sizeof(float) * COMPAT_B * COMPAT_L * Vp), probs[COMPAT_B * 8];
    assert_non_null(logits);
    outputs(m, tok, logits, C ? probs : NULL);
    mb_st_entry e[3] = {{.name = "tokens", .ndim = 2, .shape = {COMPAT_B, COMPAT_L}, .data = tok, .is_i32 = 1},
                        {.name = "logits", .ndim = 3, .shape = {COMPAT_B, COMPAT_L, Vp}, .data = logits},
                        {.name = "probs", .ndim = 2, .shape = {COMPAT_B, C}, .data = probs}};
    const char *meta[] = {"what", "outputs of the checkpoint next to this file as libmamba computed them when "
                                  "it was written (fp32, CPU): logits of mb_model_forward on tokens; probs of "
                                  "mb_model_classify (with a classification head)",
                          NULL};
    fixture_path(path, sizeof path, c->tag, "_expected");
    if (mb_st_write(path, e, C ? 3 : 2, meta)) fail_msg("mb_st_write: %s", mb_error_last());
    printf("# wrote compat_%s (+ _expected): %zu parameters\n", c->tag, mb_model_num_params(m));
    free(logits);
    mb_model_free(m);
}

static float *read_all(mb_st_file *f, const char *name, size_t want)
{
    const mb_st_tensor *t = mb_st_find(f, name);
    if (!t) fail_msg("%s: no tensor %s", mb_st_path(f), name);
    if (t->numel != want) fail_msg("%s: %s has %zu values, want %zu", mb_st_path(f), name, t->numel, want);
    float *p = malloc(want * sizeof(float));
    assert_non_null(p);
    assert_int_equal(mb_st_read_f32(f, t, p, want), 0);
    return p;
}

static void compare(const char *what, const float *got, const float *ref, size_t n)
{
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(&got[i], &ref[i], sizeof(float)) != 0;
    const double e = mb_test_rel_err(got, ref, n);
    printf("# compat %-28s rel err %.3e, %zu of %zu values not bit-identical\n", what, e, differ, n);
    assert_true(e < COMPAT_TOL);
}

static void check_case(const compat_case *c)
{
    mb_ctx *ctx = mb_ctx_create("cpu");
    assert_non_null(ctx);
    if (getenv("MB_COMPAT_WRITE") && !strcmp(getenv("MB_COMPAT_WRITE"), "1")) write_case(ctx, c);
    char path[4096];
    fixture_path(path, sizeof path, c->tag, "");
    mb_model *m = mb_model_load(ctx, path);
    if (!m) fail_msg("mb_model_load(%s): %s", path, mb_error_last());
    const mb_config *cfg = mb_model_config(m), want = case_config(c);
    assert_int_equal(cfg->arch, c->arch);
    assert_int_equal(cfg->d_model, want.d_model);
    assert_int_equal(cfg->n_layer, want.n_layer);
    assert_int_equal(cfg->vocab_size, want.vocab_size);
    assert_int_equal(cfg->d_state, want.d_state);
    assert_int_equal(cfg->init, want.init);
    assert_int_equal(cfg->rms_norm, c->rms);
    assert_int_equal(cfg->n_classes, c->n_classes);
    if (c->arch == MB_ARCH_LM) assert_int_equal(cfg->tie_embeddings, c->tied);
    if (c->arch == MB_ARCH_SASHIMI) {
        assert_int_equal(cfg->n_pool, 2);
        assert_int_equal(cfg->mlp, c->mlp);
    }

    fixture_path(path, sizeof path, c->tag, "_expected");
    mb_st_file *f = mb_st_open(path);
    if (!f) fail_msg("%s", mb_error_last());
    const int Vp = mb_config_vocab_padded(cfg), C = cfg->n_classes;
    const mb_st_tensor *tt = mb_st_find(f, "tokens");
    assert_non_null(tt);
    assert_int_equal(tt->numel, COMPAT_B * COMPAT_L);
    int64_t t64[COMPAT_B * COMPAT_L];
    int32_t tok[COMPAT_B * COMPAT_L];
    assert_int_equal(mb_st_read_i64(f, tt, t64, COMPAT_B * COMPAT_L), 0);
    for (int i = 0; i < COMPAT_B * COMPAT_L; i++) tok[i] = (int32_t)t64[i];
    const size_t nl = (size_t)COMPAT_B * COMPAT_L * Vp;
    float *ref = read_all(f, "logits", nl), *got = malloc(nl * sizeof(float)), probs[COMPAT_B * 8];
    assert_non_null(got);
    outputs(m, tok, got, C ? probs : NULL);
    char what[96];
    snprintf(what, sizeof what, "%s logits", c->tag);
    compare(what, got, ref, nl);
    if (C) {
        float *pref = read_all(f, "probs", (size_t)COMPAT_B * C);
        snprintf(what, sizeof what, "%s class probabilities", c->tag);
        compare(what, probs, pref, (size_t)COMPAT_B * C);
        free(pref);
    } else {
        assert_null(mb_st_find(f, "probs"));
    }
    free(ref), free(got);
    mb_st_close(f);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

static void test_lm_real(void **s) { (void)s; check_case(&CASES[0]); }
static void test_lm_cls(void **s) { (void)s; check_case(&CASES[1]); }
static void test_lm_complex_ln(void **s) { (void)s; check_case(&CASES[2]); }
static void test_sashimi_mlp(void **s) { (void)s; check_case(&CASES[3]); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lm_real),
        cmocka_unit_test(test_lm_cls),
        cmocka_unit_test(test_lm_complex_ln),
        cmocka_unit_test(test_sashimi_mlp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
