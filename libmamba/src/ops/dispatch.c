/* The one place where an op picks its backend. A context can only be CUDA
 * when the library was built with MAMBA_CUDA (mb_ctx_create refuses it
 * otherwise), so the CPU branch is the fallthrough. */
#include "ops/ops.h"

#ifdef MB_HAVE_CUDA
#define MB_ON_CUDA(ctx) ((ctx)->kind == MB_DEV_CUDA)
#else
#define MB_ON_CUDA(ctx) ((void)(ctx), 0)
#define MB_NO_CUDA_IMPL
#endif

#ifdef MB_NO_CUDA_IMPL
/* Never called: MB_ON_CUDA is constant 0. Declared so each dispatcher below
 * reads the same with and without the CUDA backend. */
#define DISPATCH_VOID(name, ...) name##_cpu(__VA_ARGS__)
#define DISPATCH_RET(name, ...) return name##_cpu(__VA_ARGS__)
#else
#define DISPATCH_VOID(name, ...) \
    do { if (MB_ON_CUDA(ctx)) name##_cuda(__VA_ARGS__); else name##_cpu(__VA_ARGS__); } while (0)
#define DISPATCH_RET(name, ...) \
    do { if (MB_ON_CUDA(ctx)) return name##_cuda(__VA_ARGS__); return name##_cpu(__VA_ARGS__); } while (0)
#endif

void mb_gemm(MB_OPS_GEMM_ARGS)
{
    DISPATCH_VOID(mb_gemm, ctx, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void mb_to_bf16(mb_ctx *ctx, size_t n, const float *x, uint16_t *y) { DISPATCH_VOID(mb_to_bf16, ctx, n, x, y); }
void mb_bf16_round_copy(mb_ctx *ctx, int rows, int cols, const float *x, int ldx, float *y, int ldy)
{
    DISPATCH_VOID(mb_bf16_round_copy, ctx, rows, cols, x, ldx, y, ldy);
}
void mb_bf16_round_rows(mb_ctx *ctx, int rows, int cols, float *x, int ld)
{
    mb_bf16_round_copy(ctx, rows, cols, x, ld, x, ld);
}
void mb_bf16_round_rows_conv_scan(mb_ctx *ctx, int rows, int cols, float *x, int ld)
{
    if (!MB_ON_CUDA(ctx)) mb_bf16_round_copy_cpu(ctx, rows, cols, x, ld, x, ld);
}

void mb_linear_bf16_fwd(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const uint16_t *Wb, float *y,
                        int ldy)
{
    DISPATCH_VOID(mb_linear_bf16_fwd, ctx, M, in, out, x, ldx, Wb, y, ldy);
}

void mb_colsum_acc(mb_ctx *ctx, int M, int N, const float *x, int ldx, float *out)
{
    DISPATCH_VOID(mb_colsum_acc, ctx, M, N, x, ldx, out);
}

void mb_bias_add(mb_ctx *ctx, int M, int N, const float *bias, float *y, int ldy)
{
    DISPATCH_VOID(mb_bias_add, ctx, M, N, bias, y, ldy);
}

void mb_conv1d_fwd(MB_OPS_CONV_FWD_ARGS)
{
    DISPATCH_VOID(mb_conv1d_fwd, ctx, B, L, D, K, x, ldx, w, bias, prev, silu, y, ldy);
}

void mb_conv1d_bwd(MB_OPS_CONV_BWD_ARGS)
{
    DISPATCH_VOID(mb_conv1d_bwd, ctx, B, L, D, K, x, ldx, w, bias, prev, silu, dy, lddy, dx, lddx, dw,
                  dbias, dprev, dnext);
}

void mb_conv1d_state_update(MB_OPS_CONV_STATE_ARGS)
{
    DISPATCH_VOID(mb_conv1d_state_update, ctx, B, L, D, K, x, ldx, prev);
}
void mb_conv1d_step(MB_OPS_CONV_STEP_ARGS)
{
    DISPATCH_VOID(mb_conv1d_step, ctx, B, D, K, x, ldx, w, bias, state, silu, y, ldy);
}

void mb_act_fwd(MB_OPS_ACT_FWD_ARGS) { DISPATCH_VOID(mb_act_fwd, ctx, act, M, N, x, ldx, y, ldy); }

void mb_act_bwd(MB_OPS_ACT_BWD_ARGS)
{
    DISPATCH_VOID(mb_act_bwd, ctx, act, M, N, x, ldx, dy, lddy, dx, lddx);
}

void mb_axpby(mb_ctx *ctx, size_t n, float a, const float *x, float b, float *y)
{
    DISPATCH_VOID(mb_axpby, ctx, n, a, x, b, y);
}

void mb_shift_rows(MB_OPS_SHIFT_ARGS)
{
    DISPATCH_VOID(mb_shift_rows, ctx, B, L, C, shift, src, lds, dst, ldd);
}

void mb_flip_rows(MB_OPS_FLIP_ARGS)
{
    DISPATCH_VOID(mb_flip_rows, ctx, B, L, C, perm, src, lds, beta, dst, ldd);
}

double mb_sumsq(mb_ctx *ctx, size_t n, const float *x) { DISPATCH_RET(mb_sumsq, ctx, n, x); }

size_t mb_count_nonfinite(mb_ctx *ctx, size_t n, const float *x)
{
    DISPATCH_RET(mb_count_nonfinite, ctx, n, x);
}

void mb_rmsnorm_fwd(MB_OPS_RMS_FWD_ARGS) { DISPATCH_VOID(mb_rmsnorm_fwd, ctx, M, C, x, w, eps, y, rstd, r16); }

void mb_rmsnorm_bwd(MB_OPS_RMS_BWD_ARGS)
{
    DISPATCH_VOID(mb_rmsnorm_bwd, ctx, M, C, x, w, rstd, dy, dx, dx_beta, dw);
}

void mb_layernorm_fwd(MB_OPS_LN_FWD_ARGS)
{
    DISPATCH_VOID(mb_layernorm_fwd, ctx, M, C, x, w, b, eps, y, mean, rstd, r16);
}

void mb_layernorm_bwd(MB_OPS_LN_BWD_ARGS)
{
    DISPATCH_VOID(mb_layernorm_bwd, ctx, M, C, x, w, mean, rstd, dy, dx, dx_beta, dw, db);
}

void mb_embed_fwd(MB_OPS_EMB_FWD_ARGS) { DISPATCH_VOID(mb_embed_fwd, ctx, M, C, tokens, W, y); }

void mb_embed_bwd(MB_OPS_EMB_BWD_ARGS) { DISPATCH_VOID(mb_embed_bwd, ctx, M, C, tokens, dy, dW); }
void mb_tokens_rc(MB_OPS_TOK_RC_ARGS) { DISPATCH_VOID(mb_tokens_rc, ctx, B, L, tokens, comp, out); }

void mb_xent(MB_OPS_XENT_ARGS)
{
    DISPATCH_VOID(mb_xent, ctx, M, V, logits, targets, ignore_index, grad_scale, dlogits, row_loss, stats);
}

void mb_adamw(MB_OPS_ADAMW_ARGS)
{
    DISPATCH_VOID(mb_adamw, ctx, n, p, g, m, v, lr, beta1, beta2, eps, wd, bc1, bc2);
}

size_t mb_scan_workspace(mb_ctx *ctx, const mb_scan_params *p) { DISPATCH_RET(mb_scan_workspace, ctx, p); }
size_t mb_head_sample_workspace(mb_ctx *ctx, const mb_head_sample_params *p)
{
    DISPATCH_RET(mb_head_sample_workspace, ctx, p);
}

void mb_scan_fwd(MB_OPS_SCAN_FWD_ARGS) { DISPATCH_VOID(mb_scan_fwd, ctx, p, y, hT, ws); }

void mb_scan_bwd(MB_OPS_SCAN_BWD_ARGS) { DISPATCH_VOID(mb_scan_bwd, ctx, p, dy, dhT, g, ws); }

void mb_block_step(MB_OPS_BLOCK_STEP_ARGS) { DISPATCH_VOID(mb_block_step, ctx, p, h, out, ws); }
void mb_stack_step(MB_OPS_STACK_STEP_ARGS)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx) && mb_stack_step_cuda(ctx, n_layer, layer, h, out, ws) == 0) return;
#endif
    mb_stack_step_layers(ctx, n_layer, layer, h, out, ws);
}

int mb_stack_step_fits(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx)) return mb_stack_step_fits_cuda(ctx, n_layer, layer);
#endif
    (void)ctx, (void)n_layer, (void)layer;
    return 0;
}

size_t mb_stack_step_pack_floats(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx)) return mb_stack_step_pack_floats_cuda(ctx, n_layer, layer);
#endif
    (void)ctx, (void)n_layer, (void)layer;
    return 0;
}

int mb_stack_step_pack(mb_ctx *ctx, int n_layer, mb_block_step_params *layer, float *buf)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx)) return mb_stack_step_pack_cuda(ctx, n_layer, layer, buf);
#endif
    (void)buf;
    return mb_ctx_fail(ctx, "internal: mb_stack_step_pack on a device without the cluster kernel (%d layers, d_model %d)",
                       n_layer, n_layer > 0 ? layer[0].d_model : 0);
}

int mb_stack_step_prefers(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx)) return mb_stack_step_prefers_cuda(ctx, n_layer, layer);
#endif
    (void)ctx, (void)n_layer, (void)layer;
    return 0;
}

void mb_head_sample(MB_OPS_HEAD_SAMPLE_ARGS) { DISPATCH_VOID(mb_head_sample, ctx, p, y, ws); }

void mb_linear_fwd(MB_OPS_LINEAR_FWD_ARGS)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx) && M <= MB_LINEAR_FEW_ROWS) {
        mb_linear_few_fwd_cuda(ctx, M, in, out, x, ldx, W, bias, y, ldy);
        return;
    }
#endif
    mb_linear_fwd_ops(ctx, M, in, out, x, ldx, W, bias, y, ldy);
}

int mb_scan_supported(mb_ctx *ctx, int d_state, int batch)
{
    if (!MB_ON_CUDA(ctx)) return 0;
    if (d_state > MB_SCAN_CUDA_MAX_DSTATE)
        return mb_error_set("d_state %d is above the GPU scan's %d (the CPU runs up to 256)", d_state,
                            MB_SCAN_CUDA_MAX_DSTATE);
    if (batch > MB_SCAN_CUDA_MAX_BATCH)
        return mb_error_set("batch %d is above the GPU scan's %d sequences", batch, MB_SCAN_CUDA_MAX_BATCH);
    return 0;
}

int mb_block_step_fits(mb_ctx *ctx, const mb_block_step_params *p)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx)) return mb_block_step_fits_cuda(ctx, p);
#endif
    (void)ctx;
    (void)p;
    return 1;
}

int mb_block_step_prefers(mb_ctx *ctx, const mb_block_step_params *p)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx)) return mb_block_step_prefers_cuda(ctx, p);
#endif
    (void)ctx;
    (void)p;
    return 1;
}

int mb_head_sample_fits(mb_ctx *ctx, int d_model, int vocab)
{
#ifdef MB_HAVE_CUDA
    if (MB_ON_CUDA(ctx)) return mb_head_sample_fused_fits_cuda(d_model, vocab);
#endif
    (void)ctx;
    (void)d_model;
    (void)vocab;
    return 1;
}
