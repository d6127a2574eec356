/* Masked-language-model inputs (dna_mlm.h). */
#include <stdio.h>

#include "dna_mlm.h"
#include "dna_tok.h"
#include "mamba.h"
#include "mb_cli_rng.h"

/* uniform in [0, 1) from the top 53 bits: the same on every platform */
static double mlm_uniform(uint64_t *rng) { return (double)(mb_cli_rng_next(rng) >> 11) * 0x1.0p-53; }

int64_t dna_mlm_mask(const dna_mlm_rules *r, uint64_t *rng, const int32_t *in, int64_t n, int32_t *tok,
                     int32_t *tgt)
{
    static const int32_t bases[4] = {DNA_TOK_A, DNA_TOK_C, DNA_TOK_G, DNA_TOK_T};
    int64_t chosen = 0;
    for (int64_t i = 0; i < n; i++) {
        const int32_t t = in[i];
        /* three draws for every position, eligible or not: position i's
         * draws are the stream's (3i .. 3i+2) whatever the window holds, so
         * changing one base changes no other position's mask */
        const double u = mlm_uniform(rng), v = mlm_uniform(rng);
        const int32_t b = bases[mb_cli_rng_next(rng) >> 62];
        if (t < DNA_TOK_A || t > DNA_TOK_N || u >= r->rate) {
            tok[i] = t;
            tgt[i] = MB_IGNORE_INDEX;
            continue;
        }
        chosen++;
        tgt[i] = t;
        tok[i] = v < r->p_mask ? DNA_TOK_MASK : v < r->p_mask + r->p_random ? b : t;
    }
    return chosen;
}

int dna_mlm_rules_check(const dna_mlm_rules *r, char *err, size_t errsz)
{
    if (!(r->rate > 0 && r->rate <= 1)) {
        snprintf(err, errsz, "the masking rate %g is not in (0, 1]", r->rate);
        return -1;
    }
    if (!(r->p_mask >= 0 && r->p_random >= 0 && r->p_mask + r->p_random <= 1)) {
        snprintf(err, errsz, "the [MASK] and random-base shares %g and %g are not two fractions that add to at most 1",
                 r->p_mask, r->p_random);
        return -1;
    }
    return 0;
}
