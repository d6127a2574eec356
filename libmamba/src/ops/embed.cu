/* Token embedding on the GPU: a row gather forward, a scatter-add backward
 * (atomicAdd: a repeated token sends several rows to one dW row, so the
 * order of those additions, and the last bits of dW, may vary run to run);
 * the tokens' reverse complement. */
#include "core/cuda_util.h"
#include "ops/ops.h"

static __global__ void embed_fwd_kernel(int M, int C, const int32_t *tokens, const float *W,
                                        float *y)
{
    MB_FOR_ROWS(i, M) {
        const float *src = W + (int64_t)tokens[i] * C;
        float *dst = y + (int64_t)i * C;
        MB_FOR_COLS(j, C)
            dst[j] = src[j];
    }
}

static __global__ void embed_bwd_kernel(int M, int C, const int32_t *tokens, const float *dy,
                                        float *dW)
{
    MB_FOR_ROWS(i, M) {
        float *dst = dW + (int64_t)tokens[i] * C;
        const float *src = dy + (int64_t)i * C;
        MB_FOR_COLS(j, C)
            atomicAdd(dst + j, src[j]);
    }
}

extern "C" void mb_embed_fwd_cuda(MB_OPS_EMB_FWD_ARGS)
{
    if (M <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    embed_fwd_kernel<<<mb_cuda_grid2d(M, C), dim3(MB_TILE_X, MB_TILE_Y), 0, st->stream>>>(
        M, C, tokens, W, y);
    MB_LAUNCH_CHECK(ctx, "embed_fwd_kernel");
}

extern "C" void mb_embed_bwd_cuda(MB_OPS_EMB_BWD_ARGS)
{
    if (M <= 0 || C <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    embed_bwd_kernel<<<mb_cuda_grid2d(M, C), dim3(MB_TILE_X, MB_TILE_Y), 0, st->stream>>>(
        M, C, tokens, dy, dW);
    MB_LAUNCH_CHECK(ctx, "embed_bwd_kernel");
}

static __global__ void tokens_rc_kernel(int B, int L, const int32_t *tokens, const int32_t *comp, int32_t *out)
{
    const int64_t n = (int64_t)B * L;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i % L;
        out[i] = comp[tokens[i - t + (L - 1 - t)]];
    }
}

extern "C" void mb_tokens_rc_cuda(MB_OPS_TOK_RC_ARGS)
{
    const int64_t n = (int64_t)B * L;
    if (n <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    const int64_t blocks = (n + 255) / 256 < 65536 ? (n + 255) / 256 : 65536;
    tokens_rc_kernel<<<(unsigned)blocks, 256, 0, st->stream>>>(B, L, tokens, comp, out);
    MB_LAUNCH_CHECK(ctx, "tokens_rc_kernel");
}
