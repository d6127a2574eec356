/* Token embedding: a row gather forward, a scatter-add backward; and the
 * reverse complement of token sequences the RC-equivariant model embeds. */
#include <string.h>

#include "ops/ops.h"

enum { MB_EMB_CB = 32 }; /* columns per backward task */
#define MB_EMB_PAR_MIN (1 << 15)

void mb_embed_fwd_cpu(MB_OPS_EMB_FWD_ARGS)
{
    double work = (double)M * C;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_EMB_PAR_MIN) schedule(static))
    for (int i = 0; i < M; i++)
        memcpy(y + (size_t)i * C, W + (size_t)tokens[i] * C, (size_t)C * sizeof *W);
}

/* A repeated token sends several rows to one dW row, so rows cannot be split
 * over threads; columns can: each task owns a block of columns for every
 * token and adds the rows in order, which is also deterministic. */
void mb_embed_bwd_cpu(MB_OPS_EMB_BWD_ARGS)
{
    int nb = (C + MB_EMB_CB - 1) / MB_EMB_CB;
    double work = (double)M * C;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_EMB_PAR_MIN) schedule(static))
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * MB_EMB_CB, n = C - c0 < MB_EMB_CB ? C - c0 : MB_EMB_CB;
        for (int i = 0; i < M; i++) {
            const float *src = dy + (size_t)i * C + c0;
            float *dst = dW + (size_t)tokens[i] * C + c0;
            for (int j = 0; j < n; j++) dst[j] += src[j];
        }
    }
}

void mb_tokens_rc_cpu(MB_OPS_TOK_RC_ARGS)
{
    (void)ctx;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < L; t++) out[(size_t)b * L + t] = comp[tokens[(size_t)b * L + (L - 1 - t)]];
}
