/* Row moves within sequences on the CPU: the UpPool's causal shift by one
 * coarse step, its backward, strided row copies (column slices), and the
 * bidirectional model's reversal of each sequence. */
#include <string.h>

#include "ops/ops.h"

void mb_shift_rows_cpu(MB_OPS_SHIFT_ARGS)
{
    const int64_t rows = (int64_t)B * L;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (rows * C > (1 << 15)) schedule(static))
    for (int64_t r = 0; r < rows; r++) {
        const int64_t t = r % L, ts = t - shift;
        float *d = dst + r * ldd;
        if (ts < 0 || ts >= L)
            memset(d, 0, (size_t)C * sizeof(float));
        else
            memcpy(d, src + (r - t + ts) * lds, (size_t)C * sizeof(float));
    }
}

void mb_flip_rows_cpu(MB_OPS_FLIP_ARGS)
{
    const int64_t rows = (int64_t)B * L;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (rows * C > (1 << 15)) schedule(static))
    for (int64_t r = 0; r < rows; r++) {
        const int64_t t = r % L;
        const float *s = src + (r - t + (L - 1 - t)) * lds;
        float *d = dst + r * ldd;
        for (int j = 0; j < C; j++) {
            const float v = s[perm ? perm[j] : j];
            d[j] = beta == 0.f ? v : beta * d[j] + v;
        }
    }
}
