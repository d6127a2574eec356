#include <stdlib.h>

#include "selcopy_task.h"

/* splitmix64: the task keeps its own tiny generator so it needs nothing
 * from the library's internals */
static uint64_t task_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int task_below(uint64_t *s, int n) { return (int)((task_next(s) >> 11) % (uint64_t)n); }

void mb_selcopy_batch(const mb_selcopy *t, uint64_t *seed, int B, int32_t *tokens,
                      int32_t *targets)
{
    const int T = mb_selcopy_len(t), K = t->n_memorize;
    for (int b = 0; b < B; b++) {
        int32_t *x = tokens + (size_t)b * T, *y = targets + (size_t)b * T;
        for (int i = 0; i < T; i++) {
            x[i] = 0;
            y[i] = MB_IGNORE_INDEX;
        }
        /* K distinct positions in [0, span), chosen by selection sampling so
         * they come out in increasing order */
        int need = K, k = 0;
        for (int pos = 0; pos < t->span && need > 0; pos++) {
            if (task_below(seed, t->span - pos) < need) {
                int sym = 1 + task_below(seed, t->n_symbols);
                x[pos] = sym;
                y[t->span + k] = sym;
                k++;
                need--;
            }
        }
        for (int i = t->span; i < T; i++) x[i] = t->n_symbols + 1;
    }
}

int mb_selcopy_eval(const mb_selcopy *t, mb_model *m, uint64_t seed, int n_batches, int batch,
                    double *accuracy)
{
    const int T = mb_selcopy_len(t);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)batch * T);
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)batch * T);
    mb_loss_stats st = {0};
    int rc = tok && tgt ? 0 : -1;
    for (int i = 0; rc == 0 && i < n_batches; i++) {
        mb_selcopy_batch(t, &seed, batch, tok, tgt);
        rc = mb_model_forward(m, tok, batch, T, tgt, NULL, &st);
    }
    free(tok);
    free(tgt);
    if (rc == 0) *accuracy = st.count ? (double)st.correct / (double)st.count : 0.0;
    return rc;
}
