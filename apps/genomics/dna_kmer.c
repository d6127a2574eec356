/* Order-k Markov baselines (dna_kmer.h). */
#include "dna_kmer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dna_tok.h"

static int base_code(int32_t t) { return t >= DNA_TOK_A && t <= DNA_TOK_T ? t - DNA_TOK_A : -1; }

void dna_kmer_free(dna_kmer *km)
{
    if (!km) return;
    for (int o = 0; o <= DNA_KMER_MAX; o++) free(km->cnt[o]);
    free(km);
}

dna_kmer *dna_kmer_fit(dna_set *set, const dna_ivals *iv, int k, char *err, size_t errlen)
{
    if (k < 0 || k > DNA_KMER_MAX) {
        snprintf(err, errlen, "k-mer order %d outside [0, %d]", k, DNA_KMER_MAX);
        return NULL;
    }
    dna_kmer *km = calloc(1, sizeof *km);
    const int64_t chunk = 1 << 20;
    int32_t *buf = malloc(sizeof(int32_t) * chunk);
    if (!km || !buf) goto oom;
    km->k = k;
    for (int o = 0; o <= k; o++)
        if (!(km->cnt[o] = calloc((size_t)4 << (2 * o), sizeof(double)))) goto oom;
    dna_iter it;
    dna_iter_init(&it, set, iv, chunk);
    dna_chunk c;
    uint32_t ctx = 0; /* last bases, 2 bits each, newest lowest */
    int run = 0;      /* how many of them are real bases in a row */
    int r;
    while ((r = dna_iter_next(&it, buf, &c, err, errlen)) == 1) {
        if (c.first) run = 0, ctx = 0;
        for (int64_t i = 0; i < c.len; i++) {
            const int b = base_code(buf[i]);
            if (b < 0) {
                run = 0;
                continue;
            }
            const int have = run < k ? run : k;
            for (int o = 0; o <= have; o++) {
                const uint32_t cx = o ? ctx & ((1u << (2 * o)) - 1) : 0;
                km->cnt[o][cx * 4 + (uint32_t)b] += 1;
            }
            ctx = (ctx << 2) | (uint32_t)b;
            run++;
        }
    }
    free(buf);
    if (r < 0) {
        dna_kmer_free(km);
        return NULL;
    }
    return km;
oom:
    snprintf(err, errlen, "out of memory for the order-%d k-mer table", k);
    free(buf);
    dna_kmer_free(km);
    return NULL;
}

void dna_kmer_eval(const dna_kmer *km, int order, const int32_t *w, int64_t L, double *bits, int64_t *n)
{
    if (order > km->k) order = km->k;
    uint32_t ctx = 0;
    int run = 0;
    double acc = 0;
    int64_t cnt = 0;
    for (int64_t t = 0; t < L; t++) {
        /* w[t] joins the context, then w[t + 1] is predicted */
        const int b = base_code(w[t]);
        if (b < 0) run = 0, ctx = 0;
        else ctx = (ctx << 2) | (uint32_t)b, run++;
        const int y = base_code(w[t + 1]);
        if (y < 0) continue;
        const int o = run < order ? run : order;
        const uint32_t cx = o ? ctx & ((1u << (2 * o)) - 1) : 0;
        const double *row = km->cnt[o] + (size_t)cx * 4;
        const double tot = row[0] + row[1] + row[2] + row[3];
        acc -= log2((row[y] + 1.0) / (tot + 4.0));
        cnt++;
    }
    *bits += acc;
    *n += cnt;
}
