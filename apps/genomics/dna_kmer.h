/* Order-k Markov baselines of the next base, for judging a model's bits per
 * base on the same split: counts of every (k-base context, base) on the
 * training intervals, add-one smoothing, and backoff to the longest context
 * of real bases available (near a window's start, or after an N). Order 0
 * is the base composition. */
#ifndef DNA_KMER_H
#define DNA_KMER_H

#include <stdint.h>

#include "dna_seq.h"

#define DNA_KMER_MAX 10

typedef struct {
    int k;
    double *cnt[DNA_KMER_MAX + 1]; /* order o: 4^o contexts x 4 bases */
} dna_kmer;

/* Counts orders 0..k over the intervals iv of set (read in chunks). */
dna_kmer *dna_kmer_fit(dna_set *set, const dna_ivals *iv, int k, char *err, size_t errlen);
void dna_kmer_free(dna_kmer *km);

/* Adds to *bits (log2) and *n the cost of predicting w[t + 1] from what
 * precedes it inside w, for t in [0, L), with contexts of at most `order`
 * bases; only A/C/G/T targets count (as the model's bits per base). */
void dna_kmer_eval(const dna_kmer *km, int order, const int32_t *w, int64_t L, double *bits, int64_t *n);

#endif
