/* Masked-language-model inputs (apps/genomics/dna_mlm.c): BERT's rules as
 * Caduceus pretrains with them, checked by counting over long windows
 * (every bound is a binomial's mean plus or minus 5 standard deviations, so
 * a correct implementation fails about once in 3 million runs, and a rule
 * off by a tenth of its value fails every time), plus the exact rules: what
 * is never chosen, the targets, determinism, independence of positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dna_mlm.h"
#include "dna_tok.h"
#include "mamba.h"
#include "mb_cli_rng.h"
#include "testutil.h"

#define NBIG 1000000

/* |count - n p| within 5 standard deviations of Binomial(n, p) */
static void check_binomial(const char *what, int64_t count, int64_t n, double p)
{
    const double mean = (double)n * p, sd = sqrt((double)n * p * (1 - p));
    printf("# %-44s %8lld of %8lld: %.4f (expected %.4f +- %.4f)\n", what, (long long)count, (long long)n,
           (double)count / (double)n, p, 5 * sd / (double)n);
    assert_true(fabs((double)count - mean) <= 5 * sd);
}

/* a window of random bases A C G T */
static int32_t *random_bases(int64_t n, uint64_t seed)
{
    int32_t *w = malloc((size_t)n * sizeof *w);
    assert_non_null(w);
    for (int64_t i = 0; i < n; i++) w[i] = DNA_TOK_A + (int32_t)mb_cli_rng_below(&seed, 4);
    return w;
}

static void test_rates(void **state)
{
    (void)state;
    const dna_mlm_rules r = DNA_MLM_RULES_DEFAULT;
    int32_t *in = random_bases(NBIG, 1), *tok = malloc(NBIG * sizeof *tok), *tgt = malloc(NBIG * sizeof *tgt);
    uint64_t rng = 42;
    const int64_t chosen = dna_mlm_mask(&r, &rng, in, NBIG, tok, tgt);
    int64_t n_tgt = 0, n_mask = 0, n_same = 0, n_other = 0;
    for (int64_t i = 0; i < NBIG; i++) {
        if (tgt[i] == MB_IGNORE_INDEX) {
            assert_int_equal(tok[i], in[i]); /* not chosen: untouched */
            continue;
        }
        n_tgt++;
        assert_int_equal(tgt[i], in[i]); /* the target is the original */
        if (tok[i] == DNA_TOK_MASK) n_mask++;
        else if (tok[i] == in[i]) n_same++;
        else {
            assert_true(tok[i] >= DNA_TOK_A && tok[i] <= DNA_TOK_T); /* a random base, never N */
            n_other++;
        }
    }
    assert_int_equal(n_tgt, chosen);
    check_binomial("chosen positions", chosen, NBIG, 0.15);
    check_binomial("chosen -> [MASK]", n_mask, chosen, 0.8);
    /* kept (10%) or a random base that drew the same one (10% x 1/4) */
    check_binomial("chosen -> the same base", n_same, chosen, 0.1 + 0.1 / 4);
    check_binomial("chosen -> another base", n_other, chosen, 0.1 * 3 / 4);
    free(in), free(tok), free(tgt);
}

/* N is eligible; its random replacements are the four bases, uniform */
static void test_random_bases_uniform(void **state)
{
    (void)state;
    const dna_mlm_rules r = DNA_MLM_RULES_DEFAULT;
    int32_t *in = malloc(NBIG * sizeof *in), *tok = malloc(NBIG * sizeof *tok), *tgt = malloc(NBIG * sizeof *tgt);
    for (int64_t i = 0; i < NBIG; i++) in[i] = DNA_TOK_N;
    uint64_t rng = 7;
    const int64_t chosen = dna_mlm_mask(&r, &rng, in, NBIG, tok, tgt);
    int64_t per[4] = {0}, kept = 0;
    for (int64_t i = 0; i < NBIG; i++) {
        if (tgt[i] == MB_IGNORE_INDEX) continue;
        assert_int_equal(tgt[i], DNA_TOK_N);
        if (tok[i] == DNA_TOK_N) kept++;
        else if (tok[i] != DNA_TOK_MASK) per[tok[i] - DNA_TOK_A]++;
    }
    check_binomial("N chosen", chosen, NBIG, 0.15);
    check_binomial("N chosen -> kept", kept, chosen, 0.1);
    const char *names[4] = {"N chosen -> A", "N chosen -> C", "N chosen -> G", "N chosen -> T"};
    for (int k = 0; k < 4; k++) check_binomial(names[k], per[k], chosen, 0.1 / 4);
    free(in), free(tok), free(tgt);
}

/* specials and [UNK] are never chosen, even at rate 1 */
static void test_never_chosen(void **state)
{
    (void)state;
    const dna_mlm_rules all = {1.0, 0.8, 0.1};
    const int32_t in[] = {DNA_TOK_CLS, DNA_TOK_A, DNA_TOK_SEP, DNA_TOK_BOS, DNA_TOK_MASK, DNA_TOK_C,
                          DNA_TOK_PAD, DNA_TOK_RESERVED, DNA_TOK_UNK, DNA_TOK_G, DNA_TOK_T, DNA_TOK_N};
    const int64_t n = (int64_t)(sizeof in / sizeof in[0]);
    int32_t tok[sizeof in / sizeof in[0]], tgt[sizeof in / sizeof in[0]];
    uint64_t rng = 3;
    const int64_t chosen = dna_mlm_mask(&all, &rng, in, n, tok, tgt);
    assert_int_equal(chosen, 5); /* A C G T N */
    for (int64_t i = 0; i < n; i++) {
        const int base = in[i] >= DNA_TOK_A && in[i] <= DNA_TOK_N;
        assert_int_equal(tgt[i], base ? in[i] : MB_IGNORE_INDEX);
        if (!base) assert_int_equal(tok[i], in[i]);
    }
}

/* the same stream gives the same mask, another stream another; in place
 * gives what a separate output gives; changing one base changes no other
 * position's mask */
static void test_deterministic(void **state)
{
    (void)state;
    const dna_mlm_rules r = DNA_MLM_RULES_DEFAULT;
    const int64_t n = 4096;
    int32_t *in = random_bases(n, 11), *t1 = malloc(n * sizeof *t1), *g1 = malloc(n * sizeof *g1);
    int32_t *t2 = malloc(n * sizeof *t2), *g2 = malloc(n * sizeof *g2);
    uint64_t a = 99, b = 99, c = 100;
    dna_mlm_mask(&r, &a, in, n, t1, g1);
    dna_mlm_mask(&r, &b, in, n, t2, g2);
    assert_memory_equal(t1, t2, n * sizeof *t1);
    assert_memory_equal(g1, g2, n * sizeof *g1);
    assert_true(a == b);
    dna_mlm_mask(&r, &c, in, n, t2, g2);
    assert_true(memcmp(g1, g2, n * sizeof *g1) != 0);
    /* in place */
    memcpy(t2, in, n * sizeof *t2);
    b = 99;
    dna_mlm_mask(&r, &b, t2, n, t2, g2);
    assert_memory_equal(t2, t1, n * sizeof *t1);
    assert_memory_equal(g2, g1, n * sizeof *g1);
    /* one base changed (to N, and to a special): every other position as before */
    for (int variant = 0; variant < 2; variant++) {
        int32_t *in2 = malloc(n * sizeof *in2);
        memcpy(in2, in, n * sizeof *in2);
        in2[100] = variant ? DNA_TOK_PAD : DNA_TOK_N;
        b = 99;
        dna_mlm_mask(&r, &b, in2, n, t2, g2);
        for (int64_t i = 0; i < n; i++) {
            if (i == 100) continue;
            assert_int_equal(t2[i], t1[i]);
            assert_int_equal(g2[i], g1[i]);
        }
        free(in2);
    }
    free(in), free(t1), free(g1), free(t2), free(g2);
}

static void test_rules_check(void **state)
{
    (void)state;
    char err[256];
    const dna_mlm_rules good = DNA_MLM_RULES_DEFAULT;
    assert_int_equal(dna_mlm_rules_check(&good, err, sizeof err), 0);
    const dna_mlm_rules bad[] = {{0, 0.8, 0.1}, {1.5, 0.8, 0.1}, {0.15, 0.9, 0.2}, {0.15, -0.1, 0.1}, {NAN, 0.8, 0.1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(dna_mlm_rules_check(&bad[i], err, sizeof err), -1);
        printf("# rules {%g, %g, %g} -> %s\n", bad[i].rate, bad[i].p_mask, bad[i].p_random, err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates),          cmocka_unit_test(test_random_bases_uniform),
        cmocka_unit_test(test_never_chosen),   cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_rules_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
