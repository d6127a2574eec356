/* transformers' own Mamba checkpoints (tests/fixtures/hf, written by
 * scripts/hf_fixture.py with transformers' save_pretrained): loaded from
 * their folders (one file, or shards with their index; projection biases
 * on, conv bias off, untied, an odd vocabulary), scored against the
 * log-likelihoods transformers computed, exported back with
 * mb_model_save_hf and reloaded the same; and the options we cannot run
 * refused by name. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "models/model.h"
#include "testutil.h"

typedef struct {
    int rows, len;
    int32_t *tokens;
    double ll[8], logits0[4];
} expected;

static expected read_expected(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/expected.json", dir);
    size_t n;
    char *text = mb_test_read_file(path, &n);
    assert_non_null(text);
    cJSON *root = cJSON_ParseWithLength(text, n);
    assert_non_null(root);
    expected e = {0};
    const cJSON *tok = cJSON_GetObjectItem(root, "tokens"), *ll = cJSON_GetObjectItem(root, "log_likelihood");
    const cJSON *lg = cJSON_GetObjectItem(root, "logits_row0");
    e.rows = cJSON_GetArraySize(tok);
    e.len = cJSON_GetArraySize(cJSON_GetArrayItem(tok, 0));
    assert_true(e.rows > 0 && e.rows <= 8 && e.len > 1);
    e.tokens = malloc((size_t)e.rows * e.len * sizeof(int32_t));
    for (int r = 0; r < e.rows; r++) {
        for (int t = 0; t < e.len; t++)
            e.tokens[r * e.len + t] = (int32_t)cJSON_GetArrayItem(cJSON_GetArrayItem(tok, r), t)->valuedouble;
        e.ll[r] = cJSON_GetArrayItem(ll, r)->valuedouble;
    }
    for (int k = 0; k < 4; k++) e.logits0[k] = cJSON_GetArrayItem(lg, k)->valuedouble;
    cJSON_Delete(root);
    free(text);
    return e;
}

/* each row's sum over t >= 1 of log p(x_t | x_<t), through a scoring chunk */
static double score(mb_model *m, const expected *e, double *ll)
{
    mb_state *s = mb_state_create(m, e->rows);
    assert_non_null(s);
    const size_t n = (size_t)e->rows * e->len;
    int32_t *tgt = malloc(n * sizeof(int32_t));
    double *lp = malloc(n * sizeof(double));
    for (int r = 0; r < e->rows; r++)
        for (int t = 0; t < e->len; t++)
            tgt[r * e->len + t] = t + 1 < e->len ? e->tokens[r * e->len + t + 1] : MB_IGNORE_INDEX;
    mb_chunk_out o = {.targets = tgt, .logprob = lp};
    assert_int_equal(mb_model_forward_chunk_ex(m, s, e->tokens, e->len, &o), 0);
    double worst = 0;
    for (int r = 0; r < e->rows; r++) {
        ll[r] = 0;
        for (int t = 0; t < e->len; t++) ll[r] += lp[r * e->len + t];
        worst = fmax(worst, fabs(ll[r] - e->ll[r]) / fabs(e->ll[r]));
    }
    free(tgt), free(lp);
    mb_state_free(s);
    return worst;
}

static void check_folder(const char *name, int bias, int conv_bias, int tied, int vocab)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/hf/%s", MB_FIXTURE_DIR, name);
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_model *m = mb_model_load(ctx, dir);
    if (!m) fail_msg("%s", mb_error_last());
    const mb_config *c = mb_model_config(m);
    assert_int_equal(c->bias, bias);
    assert_int_equal(c->conv_bias, conv_bias);
    assert_int_equal(c->tie_embeddings, tied);
    assert_int_equal(mb_config_vocab_padded(c), vocab); /* transformers' rows, no padding of ours */
    expected e = read_expected(dir);
    double ll[8];
    const double err = score(m, &e, ll);
    /* the logits of the training forward, row 0's first position */
    float *lg = malloc((size_t)e.len * m->vocab_padded * sizeof(float));
    assert_int_equal(mb_model_forward(m, e.tokens, 1, e.len, NULL, lg, NULL), 0);
    double el = 0;
    for (int k = 0; k < 4; k++) el = fmax(el, fabs(lg[k] - e.logits0[k]));
    printf("# %s: log-likelihoods against transformers' (float64) rel err %.2e, logits %.2e\n", name, err, el);
    assert_true(err < 2e-6);
    assert_true(el < 1e-5);
    /* exported and reloaded: the same weights, the same scores */
    char out[256];
    mb_test_tmp_path(out, sizeof out, name);
    assert_int_equal(mb_model_save_hf(m, out), 0);
    mb_model *back = mb_model_load(ctx, out);
    if (!back) fail_msg("%s", mb_error_last());
    assert_int_equal(back->params.total, m->params.total);
    assert_memory_equal(back->params.data, m->params.data, m->params.total * sizeof(float));
    assert_int_equal(mb_config_vocab_padded(mb_model_config(back)), vocab);
    double ll2[8];
    score(back, &e, ll2);
    assert_memory_equal(ll2, ll, (size_t)e.rows * sizeof(double));
    char p[300];
    snprintf(p, sizeof p, "%s/config.json", out), remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", out), remove(p);
    rmdir(out);
    free(lg), free(e.tokens);
    mb_model_free(back);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

static void test_tied(void **s) { (void)s; check_folder("tied", 0, 1, 1, 16); }
static void test_options(void **s) { (void)s; check_folder("options", 1, 0, 0, 13); }
static void test_sharded(void **s) { (void)s; check_folder("sharded", 0, 1, 1, 16); }

/* a model of ours padded (vocab 12 to 16), exported and reloaded: the
 * vocabulary before padding comes back too */
static void test_our_padding(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 16, cfg.n_layer = 1, cfg.vocab_size = 12;
    mb_model *m = mb_model_create(ctx, &cfg, 4);
    char out[256];
    mb_test_tmp_path(out, sizeof out, "padded");
    assert_int_equal(mb_model_save_hf(m, out), 0);
    mb_model *b = mb_model_load(ctx, out);
    assert_non_null(b);
    assert_int_equal(mb_model_config(b)->vocab_size, 12);
    assert_int_equal(mb_config_vocab_padded(mb_model_config(b)), 16);
    /* what transformers cannot hold is refused, in one line */
    mb_config cc = cfg;
    cc.init = MB_INIT_S4D_LIN;
    mb_model *cm = mb_model_create(ctx, &cc, 4);
    assert_int_equal(mb_model_save_hf(cm, out), -1);
    assert_non_null(strstr(mb_error_last(), "no complex A"));
    mb_model_free(cm);
    char p[300];
    snprintf(p, sizeof p, "%s/config.json", out), remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", out), remove(p);
    rmdir(out);
    mb_model_free(b), mb_model_free(m);
    mb_ctx_free(ctx);
}

/* options that change the maths and that we do not run: refused by name */
static void test_refusals(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    char src[400], dir[256], path[600];
    snprintf(src, sizeof src, "%s/hf/tied", MB_FIXTURE_DIR);
    mb_test_tmp_path(dir, sizeof dir, "hf_bad");
    mkdir(dir, 0777);
    size_t n;
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    void *w = mb_test_read_file(path, &n);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    fwrite(w, 1, n, f);
    fclose(f);
    free(w);
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"model_type\": \"mamba\", \"vocab_size\": 16, \"hidden_size\": 16, \"num_hidden_layers\": 2, "
         "\"state_size\": 4, \"hidden_act\": \"gelu\"}", "hidden_act is gelu"},
        {"{\"model_type\": \"mamba\", \"vocab_size\": 16, \"hidden_size\": 16, \"num_hidden_layers\": 2, "
         "\"state_size\": 4, \"intermediate_size\": 48}", "intermediate_size 48 is not expand x hidden_size"},
        {"{\"model_type\": \"mamba2\"}", "model_type is mamba2, not mamba"},
        /* the weights have no biases: a config that declares them misses them */
        {"{\"model_type\": \"mamba\", \"vocab_size\": 16, \"hidden_size\": 16, \"num_hidden_layers\": 2, "
         "\"state_size\": 4, \"use_bias\": true}", "missing tensor backbone.layers.0.mixer.in_proj.bias"},
        /* nor conv biases the weights have, unused: strict */
        {"{\"model_type\": \"mamba\", \"vocab_size\": 16, \"hidden_size\": 16, \"num_hidden_layers\": 2, "
         "\"state_size\": 4, \"use_conv_bias\": false}", "unexpected tensor backbone.layers.0.mixer.conv1d.bias"},
    };
    snprintf(path, sizeof path, "%s/config.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fopen(path, "w");
        fputs(bad[i].json, f);
        fclose(f);
        assert_null(mb_model_load(ctx, dir));
        printf("# %s\n", mb_error_last());
        assert_non_null(strstr(mb_error_last(), bad[i].want));
    }
    /* weights as a pickle only */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    char bin[300];
    snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
    rename(path, bin);
    assert_null(mb_model_load(ctx, dir));
    assert_non_null(strstr(mb_error_last(), "pytorch_model.bin (a pickle), which is not read"));
    remove(bin);
    snprintf(path, sizeof path, "%s/config.json", dir), remove(path);
    rmdir(dir);
    mb_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tied), cmocka_unit_test(test_options), cmocka_unit_test(test_sharded),
        cmocka_unit_test(test_our_padding), cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
