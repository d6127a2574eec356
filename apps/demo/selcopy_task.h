/* The selective-copying task of the Mamba paper (Gu & Dao 2023, sec. 4.1.1),
 * scaled down: `n_memorize` data tokens are scattered at random positions
 * among `span` noise tokens; then `n_memorize` marker tokens follow, and at
 * each marker the model must output the next data token in order. Solving
 * it needs content-dependent selection: which inputs to keep is decided by
 * what they are, not where they are. */
#ifndef MB_SELCOPY_TASK_H
#define MB_SELCOPY_TASK_H

#include <stdint.h>

#include "mamba.h"

typedef struct {
    int span;       /* positions the data tokens are scattered over */
    int n_memorize; /* data tokens to copy */
    int n_symbols;  /* distinct data tokens (ids 1..n_symbols) */
} mb_selcopy;

/* token ids: 0 = noise, 1..n_symbols = data, n_symbols + 1 = marker */
static inline int mb_selcopy_vocab(const mb_selcopy *t) { return t->n_symbols + 2; }
static inline int mb_selcopy_len(const mb_selcopy *t) { return t->span + t->n_memorize; }

/* A batch of B sequences of mb_selcopy_len tokens; targets are
 * MB_IGNORE_INDEX except at the markers. Deterministic in *seed, which it
 * advances. */
void mb_selcopy_batch(const mb_selcopy *t, uint64_t *seed, int B, int32_t *tokens,
                      int32_t *targets);

/* Accuracy (fraction of markers answered right) on n_batches x batch fresh
 * sequences drawn from `seed`. */
int mb_selcopy_eval(const mb_selcopy *t, mb_model *m, uint64_t seed, int n_batches, int batch,
                    double *accuracy);

#endif
