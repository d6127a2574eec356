/* Stateless kernels. Each op family has a CPU reference (ops/NAME.c, the
 * *_cpu functions) and, with MAMBA_CUDA, a CUDA version (ops/NAME.cu, the
 * *_cuda functions) with the same signature; mb_NAME in ops/dispatch.c picks
 * one by the context's device. Pointers are device pointers of that context.
 *
 * Conventions:
 * - activations are row-major (rows, channels); `ld*` is a row stride in
 *   floats, so a view into a wider tensor (the x or z half of in_proj's
 *   output) needs no copy;
 * - parameter gradients (dw, dbias, dA, ...) are ACCUMULATED (+=);
 * - input gradients are OVERWRITTEN, except where a `beta` argument says
 *   dx = beta * dx + grad (beta 0 or 1). */
#ifndef MB_OPS_H
#define MB_OPS_H

#include <string.h>

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- GEMM (row-major) ----------------------------------------------------
 * C (M, N) = alpha * op(A) @ op(B) + beta * C, op(X) = X or X^T. */
#define MB_OPS_GEMM_ARGS mb_ctx *ctx, int transA, int transB, int M, int N, int K, float alpha, \
    const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc
void mb_gemm(MB_OPS_GEMM_ARGS);
void mb_gemm_cpu(MB_OPS_GEMM_ARGS);
/* The built-in cache-blocked GEMM (OpenMP): what mb_gemm_cpu runs without
 * OpenBLAS. Always compiled, so the suite checks it on every build. */
void mb_gemm_blocked_cpu(MB_OPS_GEMM_ARGS);
/* C (M, N) = alpha A (M, K) @ W^T + beta C with W (N, K) row-major: the
 * linear layer's product for a few rows (generation), each thread streaming
 * its rows of W once. mb_gemm_cpu takes it for M <= MB_GEMM_FEW_ROWS. */
#define MB_GEMM_FEW_ROWS 8
void mb_gemm_few_rows_cpu(mb_ctx *ctx, int M, int N, int K, float alpha, const float *A, int lda, const float *W,
                          int ldw, float beta, float *C, int ldc);

/* y (M, out) = x (M, in) @ W^T with W (out, in) as bf16 (mb_model_set_bf16:
 * the LM head of a step). The CPU version is the reference (the GPU's runs
 * at most MB_LINEAR_FEW_ROWS rows). */
void mb_linear_bf16_fwd(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const uint16_t *Wb, float *y,
                        int ldy);
void mb_linear_bf16_fwd_cpu(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const uint16_t *Wb,
                            float *y, int ldy);

/* int8 weights for CPU inference: W (N, K) as int8 with a scale per
 * MB_Q8_BLOCK values of a row (llama.cpp's Q8_0 layout in spirit):
 * w ~ scale * q, scale = the block's max |w| / 127, q rounded to nearest.
 * Host memory. mb_gemm_q8_few_rows_cpu: C (M, N) = dequant(quant(A)) (M, K)
 * @ dequant(W)^T for M <= MB_GEMM_FEW_ROWS and K <= MB_Q8_MAX_K, A's rows
 * quantized by the same rule (llama.cpp's Q8_0 x Q8_0), overwriting C
 * (rows ldc apart). */
#define MB_Q8_BLOCK 32
typedef struct mb_q8_s {
    int N, K, nb; /* nb: blocks a row */
    int8_t *q;    /* (N, K) */
    float *scale; /* (N, nb) */
} mb_q8;
/* the rows' length the product takes (A's rows are quantized on the stack) */
#define MB_Q8_MAX_K 16384
int mb_q8_make(mb_q8 *w, const float *W, int N, int K, int ldw);
/* x (K values) as int8 q with a scale a block (ceil(K / 32) of them): the
 * rule of the weights, also applied to the product's other operand */
void mb_q8_quant_row(const float *x, int K, int8_t *q, float *scale);
void mb_q8_free(mb_q8 *w);
void mb_gemm_q8_few_rows_cpu(mb_ctx *ctx, int M, const float *A, int lda, const mb_q8 *W, float *C, int ldc);
/* C (M, N) = A (M, K) @ W^T, W (N, K) row-major, overwriting C: through
 * Wq, W's int8 copy (its first N rows), where there is one and M <=
 * MB_GEMM_FEW_ROWS, else the fp32 product. The products of a CPU
 * generation step (the block's projections, the LM head, the head of a
 * draw) all go through it, so a step's logits and its draw's agree to the
 * bit with int8 weights as with fp32 ones. */
void mb_gemm_infer_cpu(mb_ctx *ctx, int M, int N, int K, const float *A, int lda, const float *W, const mb_q8 *Wq,
                       float *C, int ldc);
/* the C lanes even where the AVX2 ones run (the suite checks they agree) */
void mb_q8_set_portable(int on);

/* Linear layer: y (M, out) = x (M, in) @ W^T (W: out x in) + bias.
 * mb_linear_fwd_ops is the composition of mb_gemm and mb_bias_add (any
 * device); mb_linear_fwd runs it, except on a GPU for at most
 * MB_LINEAR_FEW_ROWS rows (the recurrent step's pool projections and heads),
 * where one kernel does the product and the bias: there cuBLAS picks
 * split-K kernels that took 25-50 us for a few microseconds of work. */
#define MB_LINEAR_FEW_ROWS 16
#define MB_OPS_LINEAR_FWD_ARGS mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, \
    const float *W, const float *bias, float *y, int ldy
void mb_linear_fwd(MB_OPS_LINEAR_FWD_ARGS);
void mb_linear_fwd_ops(MB_OPS_LINEAR_FWD_ARGS);
/* y += x @ W^T + bias: the product added by the GEMM itself (beta 1), as
 * mb_linear_fwd_ops composes it */
void mb_linear_fwd_acc(MB_OPS_LINEAR_FWD_ARGS);
/* dx = dx_beta * dx + dy @ W (dx may be NULL, and may be x itself when in == ldx ==
 * lddx and dx_beta is 0); dW += dy^T @ x; dbias += colsum(dy). */
void mb_linear_bwd(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const float *W,
                   const float *dy, int lddy, float *dx, int lddx, float dx_beta, float *dW,
                   float *dbias);
/* Column sums: out[j] += sum_i x[i, j]. */
void mb_colsum_acc(mb_ctx *ctx, int M, int N, const float *x, int ldx, float *out);
void mb_colsum_acc_cpu(mb_ctx *ctx, int M, int N, const float *x, int ldx, float *out);
/* y (M, N) += bias (N) broadcast over the rows. */
void mb_bias_add(mb_ctx *ctx, int M, int N, const float *bias, float *y, int ldy);
void mb_bias_add_cpu(mb_ctx *ctx, int M, int N, const float *bias, float *y, int ldy);

/* ---- causal depthwise conv1d over (B, L, D) -------------------------------
 * y[b,t,d] = bias[d] + sum_k w[d,k] * x[b, t-(K-1)+k, d], where positions
 * before t = 0 read `prev` (B, K-1, D: the K-1 inputs that preceded this
 * chunk) or zeros when prev is NULL. w is mamba_ssm's (D, 1, K) weight.
 * With silu, y = silu(that): the mixer's conv and SiLU as one op, so the
 * conv's output before the SiLU is never stored (the backward recomputes
 * it from x, w, bias and prev, K products a value). In bf16 precision y
 * and the backward's dx are stored rounded (MB_OPS_ROUNDS_BF16), and the
 * GPU reads x, prev (the state) and dy as the nearest bf16 values. */
#define MB_OPS_CONV_FWD_ARGS mb_ctx *ctx, int B, int L, int D, int K, const float *x, int ldx, \
    const float *w, const float *bias, const float *prev, int silu, float *y, int ldy
void mb_conv1d_fwd(MB_OPS_CONV_FWD_ARGS);
void mb_conv1d_fwd_cpu(MB_OPS_CONV_FWD_ARGS);
/* dx overwritten; dw (D, K) and dbias (D, may be NULL) accumulated; dprev
 * (B, K-1, D) overwritten when not NULL. dy is the gradient of the forward's
 * y (after the SiLU when silu); with silu, dy is also scratch: its contents
 * afterwards are unspecified (the CPU turns it into the gradient before the
 * SiLU in place). dnext (B, K-1, D) or NULL: what the next chunk's conv
 * sent back to this chunk's last K-1 inputs (its dprev), added to their dx
 * before dx is stored (rounded once in bf16 precision). */
#define MB_OPS_CONV_BWD_ARGS mb_ctx *ctx, int B, int L, int D, int K, const float *x, int ldx, \
    const float *w, const float *bias, const float *prev, int silu, float *dy, int lddy, float *dx, \
    int lddx, float *dw, float *dbias, float *dprev, const float *dnext
void mb_conv1d_bwd(MB_OPS_CONV_BWD_ARGS);
void mb_conv1d_bwd_cpu(MB_OPS_CONV_BWD_ARGS);
/* prev (B, K-1, D) <- the last K-1 inputs of [prev; x]: the state after the chunk. */
#define MB_OPS_CONV_STATE_ARGS mb_ctx *ctx, int B, int L, int D, int K, const float *x, int ldx, \
    float *prev
void mb_conv1d_state_update(MB_OPS_CONV_STATE_ARGS);
void mb_conv1d_state_update_cpu(MB_OPS_CONV_STATE_ARGS);
/* One step (L = 1) with the state (B, K-1, D): mb_conv1d_fwd with prev =
 * state, then mb_conv1d_state_update, the same values; on the GPU one
 * kernel (generation at many rows: a launch and a pass over the state
 * fewer). */
#define MB_OPS_CONV_STEP_ARGS mb_ctx *ctx, int B, int D, int K, const float *x, int ldx, const float *w, \
    const float *bias, float *state, int silu, float *y, int ldy
void mb_conv1d_step(MB_OPS_CONV_STEP_ARGS);
void mb_conv1d_step_cpu(MB_OPS_CONV_STEP_ARGS);

/* ---- elementwise ---------------------------------------------------------
 * All act on (M, N) views with row strides; y may alias x. */
/* SILU: x sigmoid(x). SOFTPLUS: log(1 + e^x), = x above 20 as torch does.
 * NEGEXP: -exp(x), which maps A_log to A. GELU: x Phi(x), the exact (erf)
 * form of torch.nn.GELU(). */
typedef enum { MB_ACT_SILU = 0, MB_ACT_SOFTPLUS = 1, MB_ACT_NEGEXP = 2, MB_ACT_GELU = 3 } mb_act;
#define MB_OPS_ACT_FWD_ARGS mb_ctx *ctx, mb_act act, int M, int N, const float *x, int ldx, \
    float *y, int ldy
void mb_act_fwd(MB_OPS_ACT_FWD_ARGS);
void mb_act_fwd_cpu(MB_OPS_ACT_FWD_ARGS);
/* dx = dy * act'(x); dx may alias dy. */
#define MB_OPS_ACT_BWD_ARGS mb_ctx *ctx, mb_act act, int M, int N, const float *x, int ldx, \
    const float *dy, int lddy, float *dx, int lddx
void mb_act_bwd(MB_OPS_ACT_BWD_ARGS);
void mb_act_bwd_cpu(MB_OPS_ACT_BWD_ARGS);
/* One row of mb_act_bwd_cpu on the calling thread, for callers already in
 * a parallel region (a nested region, even one the if clause keeps to one
 * thread, cost the conv's backward 16k region entries a layer). */
void mb_act_bwd_row(mb_act act, int N, const float *x, const float *dy, float *dx);
#ifdef __CUDACC__
#define MB_HOSTDEV __host__ __device__
#else
#define MB_HOSTDEV
#endif

/* bfloat16 as the upper 16 bits of a float: x rounded to nearest even (a
 * NaN stays a NaN), and back exactly */
static inline MB_HOSTDEV uint16_t mb_bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline MB_HOSTDEV float mb_bf16_float(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
/* x as bf16 precision stores an activation: the nearest bf16 value */
static inline MB_HOSTDEV float mb_bf16_keep(float x) { return mb_bf16_float(mb_bf16_round(x)); }
/* the same where r16 (an op's bf16 flag), else x as it is */
static inline MB_HOSTDEV float mb_bf16_keep_if(int r16, float x) { return r16 ? mb_bf16_keep(x) : x; }
/* Ops whose outputs are activations the mixer stores (the conv's y and dx,
 * the scan's y, du, ddelta and dz) round them themselves in bf16
 * precision, as mb_precision_store would after them: on the GPU in the
 * kernels' stores, a pass over memory fewer each. On the GPU the conv and
 * the scan also read some of their activation inputs as the nearest bf16
 * values (x, the state and dy; delta, z and dy), so what only they read
 * needs no rounding pass there (mb_bf16_round_rows_conv_scan). */
#define MB_OPS_ROUNDS_BF16(ctx) ((ctx)->precision == MB_PREC_BF16)
/* y = bf16(x) over n values: the weights' copies for GPU inference */
void mb_to_bf16(mb_ctx *ctx, size_t n, const float *x, uint16_t *y);
/* x = bf16(x) in place, rows ld apart of `cols` values (bf16 precision's
 * stored activations; the columns past cols untouched) */
void mb_bf16_round_rows(mb_ctx *ctx, int rows, int cols, float *x, int ld);
/* y = bf16(x), rows of cols values (y may be x): a rounded copy in one pass */
void mb_bf16_round_copy(mb_ctx *ctx, int rows, int cols, const float *x, int ldx, float *y, int ldy);
void mb_bf16_round_copy_cpu(mb_ctx *ctx, int rows, int cols, const float *x, int ldx, float *y, int ldy);
/* mb_bf16_round_rows of an activation that only the conv and the scan read
 * (in_proj's xz, delta, and the gradients dys and dxc): the CPU's ops read
 * what they are given, so it is rounded here; the GPU's round what they
 * read (MB_OPS_ROUNDS_BF16), so there it is left as its product wrote it.
 * The ops see the same values either way. */
void mb_bf16_round_rows_conv_scan(mb_ctx *ctx, int rows, int cols, float *x, int ld);
void mb_to_bf16_cpu(mb_ctx *ctx, size_t n, const float *x, uint16_t *y);

/* y = a * x + b * y over n contiguous floats. */
void mb_axpby(mb_ctx *ctx, size_t n, float a, const float *x, float b, float *y);
void mb_axpby_cpu(mb_ctx *ctx, size_t n, float a, const float *x, float b, float *y);
/* Rows shifted within each of B sequences of L rows of C floats:
 * dst[b, t] = src[b, t - shift] where 0 <= t - shift < L, zeros elsewhere.
 * Row (b, t) is at (b*L + t) * lds in src and (b*L + t) * ldd in dst; src
 * and dst must not overlap. shift 0 is a strided copy (a column slice),
 * +1 the UpPool's causal shift, -1 its backward. */
#define MB_OPS_SHIFT_ARGS mb_ctx *ctx, int B, int L, int C, int shift, const float *src, \
    int lds, float *dst, int ldd
void mb_shift_rows(MB_OPS_SHIFT_ARGS);
void mb_shift_rows_cpu(MB_OPS_SHIFT_ARGS);
/* Rows reversed within each of B sequences of L rows of C floats, columns
 * optionally permuted: dst[b, t, j] = beta dst[b, t, j] + src[b, L-1-t,
 * perm[j]] (perm NULL: j; beta 0: dst is not read). perm (C ids in [0, C))
 * lives where the data does. The bidirectional model's passes over the
 * reversed sequence, and its reverse-complement strand (perm the
 * complement of each class). src and dst must not overlap. */
#define MB_OPS_FLIP_ARGS mb_ctx *ctx, int B, int L, int C, const int32_t *perm, const float *src, int lds, \
    float beta, float *dst, int ldd
void mb_flip_rows(MB_OPS_FLIP_ARGS);
void mb_flip_rows_cpu(MB_OPS_FLIP_ARGS);
/* Sum of squares (accumulated in double), returned on the host. */
double mb_sumsq(mb_ctx *ctx, size_t n, const float *x);
double mb_sumsq_cpu(mb_ctx *ctx, size_t n, const float *x);
/* Number of non-finite values (NaN or Inf) among n floats. */
size_t mb_count_nonfinite(mb_ctx *ctx, size_t n, const float *x);
size_t mb_count_nonfinite_cpu(mb_ctx *ctx, size_t n, const float *x);

/* ---- norms over the last axis of (M, C) -----------------------------------
 * RMSNorm: y = x / sqrt(mean(x^2) + eps) * w. LayerNorm: y = (x - mean) *
 * rstd * w + b. rstd (and mean) (M) are saved for backward. With r16, y is
 * stored rounded to bf16 (bf16 precision's stored activation, as
 * mb_precision_store would leave it: on the GPU in the kernel's store, a
 * pass over memory fewer). A flag of the call, not MB_OPS_ROUNDS_BF16 as
 * the conv and the scan: the generation steps' heads and fused block
 * steps run these norms too, and their xn is not a stored activation. */
#define MB_OPS_RMS_FWD_ARGS mb_ctx *ctx, int M, int C, const float *x, const float *w, float eps, \
    float *y, float *rstd, int r16
void mb_rmsnorm_fwd(MB_OPS_RMS_FWD_ARGS);
void mb_rmsnorm_fwd_cpu(MB_OPS_RMS_FWD_ARGS);
/* dx = dx_beta * dx + grad; dw accumulated. */
#define MB_OPS_RMS_BWD_ARGS mb_ctx *ctx, int M, int C, const float *x, const float *w, \
    const float *rstd, const float *dy, float *dx, float dx_beta, float *dw
void mb_rmsnorm_bwd(MB_OPS_RMS_BWD_ARGS);
void mb_rmsnorm_bwd_cpu(MB_OPS_RMS_BWD_ARGS);
#define MB_OPS_LN_FWD_ARGS mb_ctx *ctx, int M, int C, const float *x, const float *w, \
    const float *b, float eps, float *y, float *mean, float *rstd, int r16
void mb_layernorm_fwd(MB_OPS_LN_FWD_ARGS);
void mb_layernorm_fwd_cpu(MB_OPS_LN_FWD_ARGS);
#define MB_OPS_LN_BWD_ARGS mb_ctx *ctx, int M, int C, const float *x, const float *w, \
    const float *mean, const float *rstd, const float *dy, float *dx, float dx_beta, float *dw, \
    float *db
void mb_layernorm_bwd(MB_OPS_LN_BWD_ARGS);
void mb_layernorm_bwd_cpu(MB_OPS_LN_BWD_ARGS);

/* ---- embedding -----------------------------------------------------------
 * y (M, C) = W[tokens]; backward dW[tokens[i]] += dy[i]. Tokens are checked
 * by the caller. */
#define MB_OPS_EMB_FWD_ARGS mb_ctx *ctx, int M, int C, const int32_t *tokens, const float *W, \
    float *y
void mb_embed_fwd(MB_OPS_EMB_FWD_ARGS);
void mb_embed_fwd_cpu(MB_OPS_EMB_FWD_ARGS);
#define MB_OPS_EMB_BWD_ARGS mb_ctx *ctx, int M, int C, const int32_t *tokens, const float *dy, \
    float *dW
void mb_embed_bwd(MB_OPS_EMB_BWD_ARGS);
void mb_embed_bwd_cpu(MB_OPS_EMB_BWD_ARGS);
/* The reverse complement of B token sequences of L: out[b, t] =
 * comp[tokens[b, L-1-t]] (comp where the tokens live); out must not
 * overlap tokens. */
#define MB_OPS_TOK_RC_ARGS mb_ctx *ctx, int B, int L, const int32_t *tokens, const int32_t *comp, int32_t *out
void mb_tokens_rc(MB_OPS_TOK_RC_ARGS);
void mb_tokens_rc_cpu(MB_OPS_TOK_RC_ARGS);

/* ---- softmax cross-entropy -----------------------------------------------
 * Over rows of logits (M, V). Rows whose target is ignore_index count for
 * nothing. Adds the natural-log loss sum, the count and the argmax hits to
 * *stats (may be NULL). When dlogits is not NULL it gets grad_scale *
 * (softmax - onehot) for counted rows and 0 for ignored ones; dlogits may
 * alias logits. row_loss (M, device, may be NULL) gets each row's loss,
 * -log softmax(logits)[target] (0 for ignored rows). */
#define MB_OPS_XENT_ARGS mb_ctx *ctx, int M, int V, const float *logits, const int32_t *targets, \
    int ignore_index, float grad_scale, float *dlogits, double *row_loss, mb_loss_stats *stats
void mb_xent(MB_OPS_XENT_ARGS);
void mb_xent_cpu(MB_OPS_XENT_ARGS);

/* ---- AdamW (torch.optim.AdamW's update) -----------------------------------
 * p *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr/bc1 * m / (sqrt(v / bc2) + eps), with bc = 1 - beta^step. */
#define MB_OPS_ADAMW_ARGS mb_ctx *ctx, size_t n, float *p, const float *g, float *m, float *v, \
    float lr, float beta1, float beta2, float eps, float wd, float bc1, float bc2
void mb_adamw(MB_OPS_ADAMW_ARGS);
void mb_adamw_cpu(MB_OPS_ADAMW_ARGS);

/* ---- selective scan ------------------------------------------------------
 * For each batch b and channel d, with N states (complex when is_complex):
 *   delta_t = softplus(delta[t] + delta_bias) (or as given)
 *   h_t = exp(delta_t A) h_{t-1} + delta_t B_t u_t
 *   y_t = C_t . h_t (complex: 2 Re(C_t . h_t)) + D u_t,   out = y * silu(z)
 * A is real -exp(A_log) (D, N); complex A = A + i A_imag. B and C are (B, L,
 * N) rows, or (B, L, 2N) with (re, im) interleaved when complex. States are
 * (B, D, N), complex (B, D, N, 2). In bf16 precision y, du, ddelta and dz
 * are stored rounded (MB_OPS_ROUNDS_BF16), and the GPU reads delta, z and
 * dy as the nearest bf16 values (u, B and C must arrive as bf16 values);
 * states and the parameters' gradients stay fp32, and so do dB and dC
 * (gathered over channels).
 *
 * The activations and their gradients (u, delta, z, B, C; y, dy, du,
 * ddelta, dz) are float arrays, or with io_bf16 bf16 arrays (uint16_t, the
 * upper half of a float): half the bytes, arithmetic and states still
 * fp32 (mamba_ssm's bf16 scan). io_bf16 is the GPU's; the CPU refuses it. */
typedef struct {
    int batch, seqlen, dim, dstate; /* B, L, D, N */
    int is_complex;
    int io_bf16;                          /* the activations below are bf16 */
    const void *u;      int64_t ld_u;     /* (B, L, D) */
    const void *delta;  int64_t ld_delta; /* (B, L, D) */
    const float *A;                       /* (D, N) real part */
    const float *A_imag;                  /* (D, N), complex only */
    const void *Bm;     int64_t ld_B;     /* (B, L, N or 2N) */
    const void *Cm;     int64_t ld_C;
    const float *Dskip;                   /* (D) or NULL */
    const void *z;      int64_t ld_z;     /* (B, L, D) or NULL */
    const float *delta_bias;              /* (D) or NULL */
    int delta_softplus;
    const float *h0;                      /* initial state or NULL (zeros) */
} mb_scan_params;

typedef struct {
    void *du;      int64_t ld_du;     /* overwritten (bf16 with io_bf16) */
    void *ddelta;  int64_t ld_ddelta; /* overwritten; w.r.t. the delta input (bf16 with io_bf16) */
    float *dA;                        /* (D, N) accumulated */
    float *dA_imag;                   /* (D, N) accumulated, complex only */
    float *dB;     int64_t ld_dB;     /* overwritten */
    float *dC;     int64_t ld_dC;     /* overwritten */
    float *dD;                        /* (D) accumulated, when Dskip */
    void *dz;      int64_t ld_dz;     /* overwritten, when z (bf16 with io_bf16) */
    float *ddelta_bias;               /* (D) accumulated, when delta_bias */
    float *dh0;                       /* overwritten when not NULL */
    /* (B, L, D) when not NULL: the forward's output y, overwritten. The
     * backward recomputes every state anyway, so a recompute before it can
     * skip the forward scan (the CPU's y is the forward's, bit for bit).
     * bf16 with io_bf16. */
    void *y;
} mb_scan_grads;

/* Scratch the scan needs (bytes), to size arenas once per shape. */
size_t mb_scan_workspace(mb_ctx *ctx, const mb_scan_params *p);
size_t mb_scan_workspace_cpu(mb_ctx *ctx, const mb_scan_params *p);
/* y (B, L, D) contiguous (bf16 with io_bf16); hT (final state, fp32) when
 * not NULL. hT may alias h0: that is the recurrent step (seqlen 1). */
#define MB_OPS_SCAN_FWD_ARGS mb_ctx *ctx, const mb_scan_params *p, void *y, float *hT, \
    mb_arena *ws
void mb_scan_fwd(MB_OPS_SCAN_FWD_ARGS);
void mb_scan_fwd_cpu(MB_OPS_SCAN_FWD_ARGS);
/* dy (B, L, D) contiguous (bf16 with io_bf16); dhT, the gradient reaching
 * the final state, or NULL. Recomputes the states; never stores all of
 * them. */
#define MB_OPS_SCAN_BWD_ARGS mb_ctx *ctx, const mb_scan_params *p, const void *dy, \
    const float *dhT, const mb_scan_grads *g, mb_arena *ws
void mb_scan_bwd(MB_OPS_SCAN_BWD_ARGS);
void mb_scan_bwd_cpu(MB_OPS_SCAN_BWD_ARGS);
/* For tests: the most bytes a thread's decays of a whole sequence may take
 * before the CPU backward computes them per chunk instead (the same bits
 * either way); 0 leaves it. Returns the previous. Size arenas after. */
size_t mb_scan_cpu_keep_bytes(size_t bytes);

/* ---- one recurrent step of a residual Mamba block (generation) -----------
 * For each of B rows h (B, d_model), with Di = d_inner:
 *   xn = norm(h): RMSNorm, or LayerNorm when norm_b is not NULL
 *   x | z = in_proj xn;  x goes into the conv state (B, K-1, Di), which
 *   shifts by one; xc = silu(conv over [state; x] + conv_b)
 *   dt | B | C = x_proj xc;  delta = softplus(dt_proj dt + dt_b)
 *   one scan step from ssm_state (B, Di, N[, 2]) with A = -exp(A_log)
 *   (+ i A_imag), y = (C . h + D xc) silu(z)
 *   out = h + out_proj y
 * exactly the maths of norm + mb_mixer_fwd (L = 1, with the state) + the
 * residual add, in one call: one kernel on the GPU, where a step of a small
 * model is otherwise a dozen launches of tiny work. out and out2 must not
 * alias h, add2 or each other.
 * The CPU version (the composition of the CPU ops) takes
 * mb_block_step_workspace bytes from ws; the GPU one needs none. */
typedef struct {
    int batch, d_model, d_inner, d_state, d_conv, dt_rank, is_complex;
    float eps;
    const float *norm_w, *norm_b;
    const float *in_proj, *conv_w, *conv_b, *x_proj, *dt_w, *dt_b, *A_log, *A_imag, *D,
        *out_proj;
    /* Optional, CPU: int8 copies of the three projections (mb_model_set_int8)
     * that the products read instead, at most MB_GEMM_FEW_ROWS rows */
    const mb_q8 *in_proj_q8, *x_proj_q8, *out_proj_q8;
    /* Optional, GPU: bf16 copies of them (mb_model_set_bf16) that the split
     * kernels read instead (the one-block kernel reads fp32) */
    const uint16_t *in_proj_bf16, *x_proj_bf16, *out_proj_bf16;
    /* Optional, CPU: -exp(A_log) (Di, N) already computed (for a run of
     * steps in one call), so the step skips that exp; the CUDA kernel
     * always reads A_log. */
    const float *A;
    float *conv_state, *ssm_state; /* updated in place */
    /* Optional, for the U-Net's step (zeros: off). tokens: the rows are
     * embed[tokens[b]] (d_model wide) instead of h, which may be NULL, so a
     * step's first block reads the embedding table itself. ld_out: out's
     * row stride (0: d_model). out2: also out2 = out + add2 (rows ld_out2
     * and ld_add2 apart, 0: d_model): a DownPool buffer slot and the skip
     * sum written by the pass that makes the down stack's output. */
    const int32_t *tokens;
    const float *embed;
    int ld_out;
    float *out2;
    const float *add2;
    int ld_out2, ld_add2;
    /* Optional, GPU, the cluster step: this layer's weights as its blocks
     * stage them (mb_stack_step_pack), which each block then copies in two
     * bulk copies instead of gathering its columns by thousands of 16-byte
     * ones; the weights' own pointers are still read for the shapes */
    const float *stk_pack;
    /* GPU: which kernels (MB_STEP_*): one thread block a row (narrow
     * models), four kernels that spread each matrix over every SM (wide
     * ones: ops/block_step_split.cu), or for many rows of a wide model
     * GEMMs around the split form's scan (ROWS); AUTO picks by the layer's
     * size and the rows. MB_STEP_LAYER: not this op at all
     * (mb_block_step_prefers says no, and the caller runs the layer's own
     * kernels and GEMMs) */
    int gpu_path;
} mb_block_step_params;
enum { MB_STEP_AUTO = 0, MB_STEP_FUSED = 1, MB_STEP_SPLIT = 2, MB_STEP_LAYER = 3, MB_STEP_ROWS = 4, MB_STEP_CLUSTER = 5 };
#define MB_OPS_BLOCK_STEP_ARGS mb_ctx *ctx, const mb_block_step_params *p, const float *h, \
    float *out, mb_arena *ws
void mb_block_step(MB_OPS_BLOCK_STEP_ARGS);
void mb_block_step_cpu(MB_OPS_BLOCK_STEP_ARGS);
size_t mb_block_step_workspace(mb_ctx *ctx, const mb_block_step_params *p);

/* A stack of block steps in one call: out = the last of n_layer block
 * steps, each layer's output the next one's input (h and out are distinct;
 * every layer has the same batch; layer[0] may read its rows from an
 * embedding table, as mb_block_step does, and later layers must not). The
 * CPU runs them one by one (the reference). A GPU runs them all in one
 * kernel, a cluster of thread blocks a row, where
 * mb_stack_step_fits says it can (ops/stack_step.cu: a narrow model's step
 * is latency, dozens of dependent kernels a token), else one by one too. */
#define MB_STACK_STEP_MAX_LAYERS 64
#define MB_OPS_STACK_STEP_ARGS mb_ctx *ctx, int n_layer, const mb_block_step_params *layer, const float *h, \
    float *out, mb_arena *ws
void mb_stack_step(MB_OPS_STACK_STEP_ARGS);
void mb_stack_step_layers(MB_OPS_STACK_STEP_ARGS); /* mb_block_step layer by layer, on any device */
size_t mb_stack_step_workspace(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer);
/* Whether this context runs the stack in one kernel (a GPU of compute 9.0+
 * and the shapes ops/stack_step.cu handles); 0 on the CPU. */
int mb_stack_step_fits(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer);
/* Whether a caller should take mb_stack_step over its layers' own steps:
 * where it fits and MB_CUDA_STEP=cluster asks for it, or under AUTO for
 * the rows where the cluster kernel was measured faster (one wave of clusters,
 * up to 12 rows a cluster: ops/stack_step.cu). */
int mb_stack_step_prefers(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer);
/* The cluster kernel's packed weights (stk_pack): the floats they take for
 * these layers (0 where the kernel does not run them: the CPU, other
 * shapes), layer l's starting at l * (floats / n_layer); and buf (device
 * memory, that many floats) filled from the layers' weights, with each
 * layer's stk_pack set to its part. A pack stands for the weights as they
 * were when it was made: the caller makes it again after they change (the
 * LM packs at each sample call, as it pins A). Returns 0, or -1 with the
 * context failed. */
size_t mb_stack_step_pack_floats(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer);
int mb_stack_step_pack(mb_ctx *ctx, int n_layer, mb_block_step_params *layer, float *buf);

/* y[b, :n_out] (rows ldy apart) = W (n_out, d) @ norm(row b), row b being
 * h's or, with tokens, embed[tokens[b]]; RMSNorm, or LayerNorm with norm_b.
 * GPU only: the first kernel of the split block step and the head of a
 * generation step over a large vocabulary. */
typedef struct {
    int batch, d;
    const float *h;
    const int32_t *tokens;
    const float *embed;
    const float *norm_w, *norm_b;
    float eps;
    const float *W;
    const uint16_t *Wb; /* or W as bf16, read instead where not NULL */
    int n_out;
    float *y;
    int ldy;
    /* Optional (the split block step; conv_dim 0: off): the columns n <
     * conv_dim are also the conv's newest input, xc[b, n] (rows conv_dim
     * apart) = silu(conv_b[n] + conv over [conv_state[b, :, n]; y[b, n]])
     * with conv_k taps; the state is read, not shifted, and on a GPU read
     * before the kernel waits on the one launched before it (programmatic
     * dependent launch): that one must not write it. */
    int conv_dim, conv_k;
    const float *conv_w, *conv_b, *conv_state;
    float *xc;
} mb_norm_gemv_params;

/* ---- sampling -------------------------------------------------------------
 * The draw of a class from a step's logits, on the device so that a run of
 * steps needs no round trip through the host. The rule (one definition; the
 * CPU computes it in double, the GPU in float, so only a random number within
 * ~1e-6 of a class boundary can fall differently):
 *   q_k = exp((z_k - max z) / temperature) over the first `vocab` classes;
 *   the rank order: q descending, then index ascending;
 *   with 0 < top_k < vocab, only the first top_k classes of the rank order
 *   are candidates (q of the others taken as 0);
 *   with top_p < 1, candidate k is kept iff the mass of the candidates
 *   ranked above it is < top_p * their total; the nucleus: the fewest most
 *   likely candidates holding top_p of the candidates' mass;
 *   u = (mb_sample_bits(seed, count, row) + 0.5) * 2^-23, in (0, 1);
 *   the class is the first k (index order) whose running sum of kept q
 *   passes u * (sum of kept q).
 * count is per row and advances by one per draw: what the draw is depends
 * only on (seed, count, row), so a run cut into pieces draws as one run. */
typedef struct {
    uint64_t seed;
    float temperature, top_p;
    int top_k; /* 0: no cut */
} mb_sample_cfg;
/* splitmix64's finalizer: the counter-based generator of the draws (no state
 * to carry, the same integers on the host and the device) */
static inline MB_HOSTDEV uint64_t mb_sample_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* 23 random bits; u = (bits + 0.5) * 2^-23 is exact in float and double and
 * never 0 (a u of 0 would pick the first class of nonzero probability, however
 * small) */
static inline MB_HOSTDEV uint32_t mb_sample_bits(uint64_t seed, int64_t count, int row)
{
    const uint64_t h = mb_sample_mix(mb_sample_mix(mb_sample_mix(seed) ^ (uint64_t)count) ^ (uint64_t)(uint32_t)row);
    return (uint32_t)(h >> 41);
}
/* The rule above for one row of logits (z: vocab floats) and a given u, in
 * double; scratch holds mb_sample_scratch_bytes(vocab) (the nucleus needs
 * the classes ranked). */
size_t mb_sample_scratch_bytes(int vocab);
int mb_sample_pick(const float *z, int vocab, double temperature, int top_k, double top_p, double u, void *scratch);

/* The head of a generation step with its draw: y's rows normed (RMSNorm, or
 * LayerNorm with norm_b), logits = head @ that (only the first vocab rows of
 * head), the class drawn by the rule above into next[b] (the next step's
 * input) and, with hist, into hist[b * hist_len + count[b] % hist_len];
 * count[b] is then advanced. cfg and count are device memory (they live
 * there so that a captured graph replays with the values of the moment).
 * logits (rows ld_logits apart) may be NULL where mb_head_sample_fits says
 * so (on a GPU, a vocabulary over what one thread block holds goes through
 * the logits). It takes mb_head_sample_workspace bytes from ws (on a GPU,
 * only a large vocabulary at many rows needs any: the normed rows). With
 * have_logits the logits are in logits already (bf16 precision: the LM
 * head's own op made them, rounded as that precision stores them) and only
 * the draw runs. */
typedef struct {
    int batch, d_model, vocab, ld_logits;
    int have_logits;
    float eps;
    const float *norm_w, *norm_b, *head;
    const uint16_t *head_bf16; /* GPU, large vocabularies: the head as bf16, read instead */
    const mb_q8 *head_q8;      /* CPU: the head's int8 copy (mb_model_set_int8), read as the LM head reads it */
    float *logits;
    const mb_sample_cfg *cfg;
    int64_t *count;
    int32_t *next, *hist;
    int hist_len;
} mb_head_sample_params;
#define MB_OPS_HEAD_SAMPLE_ARGS mb_ctx *ctx, const mb_head_sample_params *p, const float *y, mb_arena *ws
void mb_head_sample(MB_OPS_HEAD_SAMPLE_ARGS);
void mb_head_sample_cpu(MB_OPS_HEAD_SAMPLE_ARGS);
size_t mb_head_sample_workspace(mb_ctx *ctx, const mb_head_sample_params *p);
size_t mb_head_sample_workspace_cpu(mb_ctx *ctx, const mb_head_sample_params *p);

/* ---- what the backend's kernels support ------------------------------------
 * So that a model the kernels cannot run is refused with a clear reason
 * before any work, instead of failing inside a kernel. The CPU ops take any
 * size the config allows. */
#define MB_SCAN_CUDA_MAX_DSTATE 64   /* the CUDA scan keeps N states per thread */
#define MB_SCAN_CUDA_MAX_BATCH 65535 /* its grid's y dimension */
#define MB_HEAD_SAMPLE_CUDA_SMEM (48 * 1024)
/* 0, or -1 with "...: d_state N is above the GPU scan's 64" and the like. */
int mb_scan_supported(mb_ctx *ctx, int d_state, int batch);
/* Whether the block step (mb_block_step) can run these sizes (on a GPU,
 * the one-block kernel's work area, or the split kernels' rows, must fit
 * the device's shared memory; always on the CPU). */
int mb_block_step_fits(mb_ctx *ctx, const mb_block_step_params *p);
/* Whether the block step is the faster way to run a step of p->batch rows
 * (a GPU takes a wide fp32 layer's own kernels and GEMMs instead above a
 * few rows; MB_CUDA_STEP=layer always, to compare). */
int mb_block_step_prefers(mb_ctx *ctx, const mb_block_step_params *p);
/* Whether the head + draw (mb_head_sample) can run these sizes with no
 * logits buffer (any size runs with one). */
int mb_head_sample_fits(mb_ctx *ctx, int d_model, int vocab);

/* ---- the CUDA versions (ops/NAME.cu), same signatures --------------------- */
#ifdef MB_HAVE_CUDA
void mb_gemm_cuda(MB_OPS_GEMM_ARGS);
void mb_colsum_acc_cuda(mb_ctx *ctx, int M, int N, const float *x, int ldx, float *out);
void mb_bias_add_cuda(mb_ctx *ctx, int M, int N, const float *bias, float *y, int ldy);
void mb_linear_few_fwd_cuda(MB_OPS_LINEAR_FWD_ARGS); /* M <= MB_LINEAR_FEW_ROWS */
void mb_linear_bf16_fwd_cuda(mb_ctx *ctx, int M, int in, int out, const float *x, int ldx, const uint16_t *Wb,
                             float *y, int ldy);
void mb_norm_gemv_cuda(mb_ctx *ctx, const mb_norm_gemv_params *p);
void mb_block_step_split_cuda(MB_OPS_BLOCK_STEP_ARGS);
int mb_block_step_split_fits_cuda(mb_ctx *ctx, int width);
void mb_conv1d_fwd_cuda(MB_OPS_CONV_FWD_ARGS);
void mb_conv1d_bwd_cuda(MB_OPS_CONV_BWD_ARGS);
void mb_conv1d_state_update_cuda(MB_OPS_CONV_STATE_ARGS);
void mb_conv1d_step_cuda(MB_OPS_CONV_STEP_ARGS);
void mb_act_fwd_cuda(MB_OPS_ACT_FWD_ARGS);
void mb_act_bwd_cuda(MB_OPS_ACT_BWD_ARGS);
void mb_axpby_cuda(mb_ctx *ctx, size_t n, float a, const float *x, float b, float *y);
void mb_to_bf16_cuda(mb_ctx *ctx, size_t n, const float *x, uint16_t *y);
void mb_bf16_round_copy_cuda(mb_ctx *ctx, int rows, int cols, const float *x, int ldx, float *y, int ldy);
void mb_shift_rows_cuda(MB_OPS_SHIFT_ARGS);
void mb_flip_rows_cuda(MB_OPS_FLIP_ARGS);
double mb_sumsq_cuda(mb_ctx *ctx, size_t n, const float *x);
size_t mb_count_nonfinite_cuda(mb_ctx *ctx, size_t n, const float *x);
void mb_rmsnorm_fwd_cuda(MB_OPS_RMS_FWD_ARGS);
void mb_rmsnorm_bwd_cuda(MB_OPS_RMS_BWD_ARGS);
void mb_layernorm_fwd_cuda(MB_OPS_LN_FWD_ARGS);
void mb_layernorm_bwd_cuda(MB_OPS_LN_BWD_ARGS);
void mb_embed_fwd_cuda(MB_OPS_EMB_FWD_ARGS);
void mb_embed_bwd_cuda(MB_OPS_EMB_BWD_ARGS);
void mb_tokens_rc_cuda(MB_OPS_TOK_RC_ARGS);
void mb_xent_cuda(MB_OPS_XENT_ARGS);
void mb_adamw_cuda(MB_OPS_ADAMW_ARGS);
size_t mb_scan_workspace_cuda(mb_ctx *ctx, const mb_scan_params *p);
void mb_scan_fwd_cuda(MB_OPS_SCAN_FWD_ARGS);
void mb_scan_bwd_cuda(MB_OPS_SCAN_BWD_ARGS);
void mb_block_step_cuda(MB_OPS_BLOCK_STEP_ARGS);
/* the cluster kernel; 1 (nothing done) for shapes it does not run */
int mb_stack_step_cuda(MB_OPS_STACK_STEP_ARGS);
int mb_stack_step_fits_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer);
int mb_stack_step_prefers_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer);
size_t mb_stack_step_pack_floats_cuda(mb_ctx *ctx, int n_layer, const mb_block_step_params *layer);
int mb_stack_step_pack_cuda(mb_ctx *ctx, int n_layer, mb_block_step_params *layer, float *buf);
int mb_block_step_fits_cuda(mb_ctx *ctx, const mb_block_step_params *p);
int mb_block_step_prefers_cuda(mb_ctx *ctx, const mb_block_step_params *p);
void mb_head_sample_cuda(MB_OPS_HEAD_SAMPLE_ARGS);
int mb_head_sample_fused_fits_cuda(int d_model, int vocab);
size_t mb_head_sample_workspace_cuda(mb_ctx *ctx, const mb_head_sample_params *p);
#endif

#ifdef __cplusplus
}
#endif

#endif
