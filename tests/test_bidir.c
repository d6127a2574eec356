/* The bidirectional model (mamba-bidir) beyond its golden values
 * (test_golden.c): reverse-complement equivariance exactly as mamba.h
 * states it, with a control showing that the plain bidirectional model is
 * not equivariant (so the check can fail); the pooled classifier's
 * invariance; that it reads both sides of a position; what it refuses;
 * checkpoints; and that it learns a masked task that needs the right-hand
 * context. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "models/model.h"

/* a DNA-like vocabulary: 0..6 specials, 7 A 8 C 9 G 10 T 11 N */
enum { V = 12, TOK_MASK = 3 };
static const int COMP[V] = {0, 1, 2, 3, 4, 5, 6, 10, 9, 8, 7, 11};

static mb_ctx *g_ctx;

static int group_setup(void **state)
{
    (void)state;
    g_ctx = mb_ctx_create("cpu");
    return g_ctx ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    mb_ctx_free(g_ctx);
    return 0;
}

static mb_config bidir_cfg(int rc, int n_classes)
{
    mb_config c;
    mb_config_default(&c);
    c.arch = MB_ARCH_BIDIR;
    c.d_model = 16;
    c.n_layer = 2;
    c.vocab_size = V;
    c.d_state = 4;
    c.n_classes = n_classes;
    c.rc_equivariant = rc;
    for (int v = 0; v < V; v++) c.rc_complement[v] = COMP[v];
    return c;
}

static void rc_tokens(const int32_t *x, int B, int L, int32_t *y)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) y[(size_t)b * L + t] = COMP[x[(size_t)b * L + L - 1 - t]];
}

/* max over (b, t, v < vocab) of |logits(rc x)[b, t, v] - logits(x)[b, L-1-t, comp v]|,
 * and the largest |logit| */
static double rc_gap(mb_model *m, const int32_t *x, int B, int L, double *scale)
{
    const int Vp = mb_config_vocab_padded(mb_model_config(m));
    int32_t *y = malloc((size_t)B * L * sizeof *y);
    float *lx = malloc((size_t)B * L * Vp * sizeof(float)), *ly = malloc((size_t)B * L * Vp * sizeof(float));
    assert_non_null(y);
    assert_non_null(lx);
    assert_non_null(ly);
    rc_tokens(x, B, L, y);
    assert_int_equal(mb_model_forward(m, x, B, L, NULL, lx, NULL), 0);
    assert_int_equal(mb_model_forward(m, y, B, L, NULL, ly, NULL), 0);
    double gap = 0, big = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++)
            for (int v = 0; v < V; v++) {
                const double a = ly[((size_t)b * L + t) * Vp + v];
                const double e = lx[((size_t)b * L + (L - 1 - t)) * Vp + COMP[v]];
                gap = fmax(gap, fabs(a - e));
                big = fmax(big, fabs(e));
            }
    free(y);
    free(lx);
    free(ly);
    *scale = big;
    return gap;
}

static void random_tokens(int32_t *x, size_t n, uint64_t seed)
{
    mb_rng r;
    mb_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (int32_t)(mb_rng_u64(&r) % V);
}

/* logits(rc x)[t, v] = logits(x)[L-1-t, comp v]: the two sides are the
 * same products, but of rows at other places in each GEMM. Bit for bit
 * equal where the BLAS sums a row the same wherever it lies (OpenBLAS's
 * SkylakeX kernels); its Haswell kernels, which it takes on an AMD Zen 4,
 * sum the rows of a block's tail in another order: 7.5e-08 with logits up
 * to 0.55, about one float ulp. So: within 1e-6 of the logits' size (some
 * 16 ulps), where the plain bidirectional model (no sharing) is 1e-2 and
 * more from it, and a sharing bug (a channel unmirrored, a complement
 * wrong) is of the logits' own size. */
static void test_rc_equivariance(void **state)
{
    (void)state;
    enum { B = 3, L = 41 };
    int32_t x[B * L];
    random_tokens(x, B * L, 7);
    mb_config c = bidir_cfg(1, 0);
    mb_model *m = mb_model_create(g_ctx, &c, 11);
    assert_non_null(m);
    double scale;
    const double gap = rc_gap(m, x, B, L, &scale);
    printf("# rc-equivariant: max |logits(rc x) - rc(logits(x))| = %.3g (logits up to %.3g)\n", gap, scale);
    assert_true(scale > 0.1);
    assert_true(gap <= 1e-6 * scale);
    mb_model_free(m);

    c = bidir_cfg(0, 0);
    m = mb_model_create(g_ctx, &c, 11);
    assert_non_null(m);
    const double gap0 = rc_gap(m, x, B, L, &scale);
    printf("# plain bidirectional (control): the same gap %.3g (logits up to %.3g)\n", gap0, scale);
    assert_true(gap0 > 1e-2 * scale);
    mb_model_free(m);
}

/* the pooled classifier sees x and rc(x) as one */
static void test_rc_pooled_invariance(void **state)
{
    (void)state;
    enum { B = 2, L = 29, C = 3 };
    int32_t x[B * L], y[B * L];
    random_tokens(x, B * L, 8);
    rc_tokens(x, B, L, y);
    for (int rc = 1; rc >= 0; rc--) {
        mb_config c = bidir_cfg(rc, C);
        mb_model *m = mb_model_create(g_ctx, &c, 12);
        assert_non_null(m);
        float px[B * C], py[B * C];
        assert_int_equal(mb_model_classify(m, x, B, L, NULL, px, NULL), 0);
        assert_int_equal(mb_model_classify(m, y, B, L, NULL, py, NULL), 0);
        double gap = 0;
        for (int i = 0; i < B * C; i++) gap = fmax(gap, fabs(px[i] - py[i]));
        printf("# %s: max |p(x) - p(rc x)| = %.3g\n", rc ? "rc-equivariant" : "plain (control)", gap);
        if (rc)
            assert_true(gap < 1e-6);
        else
            assert_true(gap > 1e-4);
        mb_model_free(m);
    }
}

/* A position's logits change when a token after it changes (the reverse
 * mixer) and when one before it changes (the forward one) */
static void test_reads_both_sides(void **state)
{
    (void)state;
    enum { L = 24, P = 12 };
    mb_config c = bidir_cfg(0, 0);
    mb_model *m = mb_model_create(g_ctx, &c, 13);
    assert_non_null(m);
    const int Vp = mb_config_vocab_padded(&c);
    int32_t x[L];
    random_tokens(x, L, 9);
    float *base = malloc((size_t)L * Vp * sizeof(float)), *alt = malloc((size_t)L * Vp * sizeof(float));
    assert_non_null(base);
    assert_non_null(alt);
    assert_int_equal(mb_model_forward(m, x, 1, L, NULL, base, NULL), 0);
    for (int side = -1; side <= 1; side += 2) {
        int32_t y[L];
        memcpy(y, x, sizeof y);
        const int at = P + side * 5;
        y[at] = (y[at] + 1) % V;
        assert_int_equal(mb_model_forward(m, y, 1, L, NULL, alt, NULL), 0);
        double d = 0;
        for (int v = 0; v < Vp; v++) d = fmax(d, fabs(base[(size_t)P * Vp + v] - alt[(size_t)P * Vp + v]));
        printf("# a change %d positions %s moves position %d's logits by %.3g\n", 5, side < 0 ? "before" : "after",
               P, d);
        assert_true(d > 1e-4);
    }
    free(base);
    free(alt);
    mb_model_free(m);
}

static void test_refusals(void **state)
{
    (void)state;
    mb_config c = bidir_cfg(1, 0);
    mb_model *m = mb_model_create(g_ctx, &c, 1);
    assert_non_null(m);
    mb_state *s = mb_state_create(m, 1);
    assert_non_null(s);
    const int32_t tok[1] = {7};
    int32_t drawn[4];
    const mb_sampler sp = {1.f, 1.f, 1, 0};
    assert_int_equal(mb_model_step(m, s, tok, NULL), -1);
    assert_non_null(strstr(mb_error_last(), "no recurrent steps"));
    assert_int_equal(mb_model_sample(m, s, tok, 4, &sp, drawn), -1);
    assert_non_null(strstr(mb_error_last(), "no recurrent steps"));
    mb_state_free(s);
    mb_model_free(m);

    /* the causal LM cannot take the sharing */
    c = bidir_cfg(1, 0);
    c.arch = MB_ARCH_LM;
    assert_null(mb_model_create(g_ctx, &c, 1));
    assert_non_null(strstr(mb_error_last(), "rc_equivariant needs arch mamba-bidir"));
    /* a complement that is not an involution, or leaves the vocabulary */
    c = bidir_cfg(1, 0);
    c.rc_complement[7] = 8;
    assert_null(mb_model_create(g_ctx, &c, 1));
    assert_non_null(strstr(mb_error_last(), "not an involution"));
    c = bidir_cfg(1, 0);
    c.rc_complement[2] = V;
    assert_null(mb_model_create(g_ctx, &c, 1));
    assert_non_null(strstr(mb_error_last(), "outside the vocabulary"));
    /* vocabularies beyond the complement table */
    c = bidir_cfg(1, 0);
    c.vocab_size = 200;
    assert_null(mb_model_create(g_ctx, &c, 1));
    assert_non_null(strstr(mb_error_last(), "at most 64"));
}

/* A chunk is a window read whole: its logits and pooled sums are those of
 * mb_model_forward on the window, whatever came before it */
static void test_chunk_is_a_window(void **state)
{
    (void)state;
    enum { B = 2, L = 23, VP = 16 };
    mb_config c = bidir_cfg(1, 0);
    mb_model *m = mb_model_create(g_ctx, &c, 6);
    assert_non_null(m);
    assert_int_equal(mb_config_vocab_padded(&c), VP);
    int32_t x[B * L], y[B * 5];
    random_tokens(x, B * L, 4);
    random_tokens(y, B * 5, 5);
    float want[B * L * VP], got[B * L * VP], hsum[B * 16] = {0}, hsum2[B * 16] = {0};
    assert_int_equal(mb_model_forward(m, x, B, L, NULL, want, NULL), 0);
    mb_state *s = mb_state_create(m, B);
    assert_non_null(s);
    assert_int_equal(mb_model_forward_chunk_pooled(m, s, y, 5, NULL, hsum2), 0); /* before: no effect */
    assert_int_equal(mb_model_forward_chunk_pooled(m, s, x, L, got, hsum), 0);
    assert_memory_equal(got, want, sizeof want);
    /* the pooled sums of x and of rc(x) are equal (the invariance, through chunks) */
    int32_t rx[B * L];
    rc_tokens(x, B, L, rx);
    float hrc[B * 16] = {0};
    assert_int_equal(mb_model_forward_chunk_pooled(m, s, rx, L, NULL, hrc), 0);
    double gap = 0, big = 0;
    for (int i = 0; i < B * 16; i++) gap = fmax(gap, fabs(hsum[i] - hrc[i])), big = fmax(big, fabs(hsum[i]));
    printf("# chunk pooled sums: x against rc(x) %.3g (sums up to %.3g)\n", gap, big);
    assert_true(big > 0.1);
    assert_true(gap <= 1e-6 * big);
    mb_state_free(s);
    mb_model_free(m);
}

/* saved and loaded: the config (the complement map included) and the
 * logits come back */
static void test_checkpoint(void **state)
{
    (void)state;
    char path[] = "/tmp/mb_test_bidir_XXXXXX";
    const int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    mb_config c = bidir_cfg(1, 0);
    mb_model *m = mb_model_create(g_ctx, &c, 5);
    assert_non_null(m);
    assert_int_equal(mb_model_save(m, path), 0);
    mb_model *k = mb_model_load(g_ctx, path);
    if (!k) fail_msg("mb_model_load: %s", mb_error_last());
    const mb_config *kc = mb_model_config(k);
    assert_int_equal(kc->arch, MB_ARCH_BIDIR);
    assert_int_equal(kc->rc_equivariant, 1);
    for (int v = 0; v < V; v++) assert_int_equal(kc->rc_complement[v], COMP[v]);
    assert_int_equal(mb_model_num_params(k), mb_model_num_params(m));
    enum { L = 17 };
    const int Vp = mb_config_vocab_padded(&c);
    int32_t x[L];
    random_tokens(x, L, 3);
    float a[L * 16], b[L * 16];
    assert_true(Vp <= 16);
    assert_int_equal(mb_model_forward(m, x, 1, L, NULL, a, NULL), 0);
    assert_int_equal(mb_model_forward(k, x, 1, L, NULL, b, NULL), 0);
    assert_memory_equal(a, b, sizeof(float) * L * Vp);
    mb_model_free(k);
    mb_model_free(m);
    unlink(path);
}

/* A masked task only the right-hand side answers: each sequence is a run
 * of random bases followed by its copy, and the masked position is in the
 * first half, so its base is only visible L/2 positions later. A causal
 * model can do no better than chance (2 bits); this one must learn it. */
static void test_learns_from_the_right(void **state)
{
    (void)state;
    enum { B = 16, H = 6, L = 2 * H, STEPS = 300 };
    mb_config c = bidir_cfg(1, 0);
    c.d_model = 32;
    mb_model *m = mb_model_create(g_ctx, &c, 21);
    assert_non_null(m);
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = 3e-3f;
    oc.warmup_steps = 10;
    oc.total_steps = STEPS;
    oc.weight_decay = 0.f;
    mb_optim *o = mb_optim_create(m, &oc);
    assert_non_null(o);
    mb_rng r;
    mb_rng_seed(&r, 99);
    int32_t x[B * L], tgt[B * L];
    double first = 0, last = 0;
    for (int s = 0; s < STEPS; s++) {
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < H; t++) x[b * L + t] = x[b * L + H + t] = 7 + (int32_t)(mb_rng_u64(&r) % 4);
            for (int t = 0; t < L; t++) tgt[b * L + t] = MB_IGNORE_INDEX;
            const int p = (int)(mb_rng_u64(&r) % H);
            tgt[b * L + p] = x[b * L + p];
            x[b * L + p] = TOK_MASK;
        }
        mb_loss_stats st = {0};
        assert_int_equal(mb_model_forward_backward(m, x, tgt, B, L, &st), 0);
        assert_int_equal(mb_optim_step(o, NULL, NULL), 0);
        const double bits = st.loss_sum / st.count / log(2.0);
        if (s < 10) first += bits / 10;
        if (s >= STEPS - 20) last += bits / 20;
    }
    printf("# masked base only the right side shows: %.3f bits at the start, %.3f at the end (chance 2)\n", first,
           last);
    assert_true(first > 1.5);
    assert_true(last < 0.5);
    mb_optim_free(o);
    mb_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rc_equivariance),
        cmocka_unit_test(test_rc_pooled_invariance),
        cmocka_unit_test(test_reads_both_sides),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_chunk_is_a_window),
        cmocka_unit_test(test_checkpoint),
        cmocka_unit_test(test_learns_from_the_right),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
