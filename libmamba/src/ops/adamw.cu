/* torch.optim.AdamW's update on the GPU (the single-tensor, non-amsgrad
 * path), with the scalars formed on the host exactly as ops/adamw.c forms
 * them. */
#include <math.h>

#include "core/cuda_util.h"
#include "ops/ops.h"

static __global__ void adamw_kernel(size_t n, float *p, const float *g, float *m, float *v,
                                    float beta1, float beta2, float c1, float c2, float eps,
                                    float decay, float step, float sqrt_bc2)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float gi = g[i];
        const float mi = beta1 * m[i] + c1 * gi;
        const float vi = beta2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step * (mi / (sqrtf(vi) / sqrt_bc2 + eps));
    }
}

extern "C" void mb_adamw_cuda(MB_OPS_ADAMW_ARGS)
{
    if (!n) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    /* torch: step_size = lr / bc1, denom = sqrt(v) / sqrt(bc2) + eps */
    const float decay = (float)(1.0 - (double)lr * wd);
    const float step = (float)((double)lr / bc1);
    const float sqrt_bc2 = (float)sqrt((double)bc2);
    const float c1 = 1.0f - beta1, c2 = 1.0f - beta2;
    adamw_kernel<<<mb_cuda_blocks((int64_t)n, 256, MB_CUDA_MAX_BLOCKS), 256, 0, st->stream>>>(
        n, p, g, m, v, beta1, beta2, c1, c2, eps, decay, step, sqrt_bc2);
    MB_LAUNCH_CHECK(ctx, "adamw_kernel");
}
