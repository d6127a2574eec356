/* Row shift within sequences on the CPU: the UpPool's causal shift by one
 * coarse step, its backward, and strided row copies (column slices). */
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
