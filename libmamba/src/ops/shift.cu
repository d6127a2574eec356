/* Row moves within sequences on the GPU; the same maths as ops/shift.c. */
#include "core/cuda_util.h"
#include "ops/ops.h"

static __global__ void shift_rows_kernel(int B, int L, int C, int shift, const float *src,
                                         int lds, float *dst, int ldd)
{
    MB_FOR_ROWS(r, (int64_t)B * L) {
        const int64_t t = r % L, ts = t - shift;
        const bool in = ts >= 0 && ts < L;
        const float *s = src + (r - t + ts) * lds;
        float *d = dst + r * ldd;
        MB_FOR_COLS(j, C)
            d[j] = in ? s[j] : 0.0f;
    }
}

extern "C" void mb_shift_rows_cuda(MB_OPS_SHIFT_ARGS)
{
    if (B <= 0 || L <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const dim3 grid = mb_cuda_grid2d((int64_t)B * L, C), blk(MB_TILE_X, MB_TILE_Y);
    shift_rows_kernel<<<grid, blk, 0, st->stream>>>(B, L, C, shift, src, lds, dst, ldd);
    MB_LAUNCH_CHECK(ctx, "shift_rows_kernel");
}

static __global__ void flip_rows_kernel(int B, int L, int C, const int32_t *perm, const float *src, int lds,
                                        float beta, float *dst, int ldd)
{
    MB_FOR_ROWS(r, (int64_t)B * L) {
        const int64_t t = r % L;
        const float *s = src + (r - t + (L - 1 - t)) * lds;
        float *d = dst + r * ldd;
        MB_FOR_COLS(j, C) {
            const float v = s[perm ? perm[j] : j];
            d[j] = beta == 0.0f ? v : beta * d[j] + v;
        }
    }
}

extern "C" void mb_flip_rows_cuda(MB_OPS_FLIP_ARGS)
{
    if (B <= 0 || L <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const dim3 grid = mb_cuda_grid2d((int64_t)B * L, C), blk(MB_TILE_X, MB_TILE_Y);
    flip_rows_kernel<<<grid, blk, 0, st->stream>>>(B, L, C, perm, src, lds, beta, dst, ldd);
    MB_LAUNCH_CHECK(ctx, "flip_rows_kernel");
}
