/* torch.optim.AdamW's update (the single-tensor, non-amsgrad path). */
#include <math.h>

#include "ops/ops.h"

#define MB_ADAMW_PAR_MIN (1 << 15)

void mb_adamw_cpu(MB_OPS_ADAMW_ARGS)
{
    /* the scalars are formed as torch forms them: step_size = lr / bc1 and
     * denom = sqrt(v) / sqrt(bc2) + eps */
    const float decay = (float)(1.0 - (double)lr * wd);
    const float step = (float)((double)lr / bc1);
    const float sqrt_bc2 = (float)sqrt((double)bc2);
    const float c1 = 1.0f - beta1, c2 = 1.0f - beta2;
    ptrdiff_t nn = (ptrdiff_t)n;
    (void)nn;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (n > MB_ADAMW_PAR_MIN) schedule(static))
    for (ptrdiff_t i = 0; i < nn; i++) {
        float gi = g[i];
        float mi = beta1 * m[i] + c1 * gi;
        float vi = beta2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * (mi / (sqrtf(vi) / sqrt_bc2 + eps));
    }
}
