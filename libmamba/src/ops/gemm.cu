/* GEMM on the GPU through cuBLAS.
 *
 * cuBLAS is column-major; our matrices are row-major. A row-major X (r x c,
 * row stride ld) is, read column-major, X^T (c x r, leading dimension ld).
 * So the row-major C = op(A) op(B) is computed as the column-major
 * C^T = op(B)^T op(A)^T: swap the operands and M with N, keep each
 * operand's transpose flag. */
#include "core/cuda_util.h"
#include "ops/ops.h"

/* C = beta C over an (M, N) view; beta 0 stores zeros (C may be garbage). */
static __global__ void gemm_scale_kernel(int M, int N, float beta, float *C, int ldc)
{
    MB_FOR_ROWS(i, M) {
        float *c = C + (int64_t)i * ldc;
        MB_FOR_COLS(j, N)
            c[j] = beta == 0.0f ? 0.0f : beta * c[j];
    }
}

extern "C" void mb_gemm_cuda(MB_OPS_GEMM_ARGS)
{
    if (M <= 0 || N <= 0) return;
    mb_cuda_state *st = mb_cuda_enter(ctx);
    if (!st) return;
    if (K <= 0 || alpha == 0.0f) {
        /* only C = beta C is left; A and B are not read (and cuBLAS would
         * insist on ld >= max(1, K)) */
        if (beta == 1.0f) return;
        gemm_scale_kernel<<<mb_cuda_grid2d(M, N), dim3(MB_TILE_X, MB_TILE_Y), 0, st->stream>>>(
            M, N, beta, C, ldc);
        MB_LAUNCH_CHECK(ctx, "gemm_scale_kernel");
        return;
    }
    /* bf16 precision: the operands are bf16 values held in fp32 (the
     * weights' rounded copies, the activations and gradients as stored), so
     * cuBLAS's down-conversion to bf16 is exact and the tensor cores'
     * products with fp32 accumulation are the CPU reference's arithmetic in
     * another order. The math mode follows the flags per call: they may
     * change after the context is made. */
    if (ctx->precision == MB_PREC_BF16) {
        MB_CUBLAS_CHECK(ctx, cublasGemmEx(st->cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_32F,
                                          ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F, ldc,
                                          CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
        return;
    }
    const int tf32 = ctx->allow_tf32 ? 1 : 0;
    if (tf32 != st->tf32) {
        MB_CUBLAS_CHECK(ctx, cublasSetMathMode(st->cublas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                : CUBLAS_DEFAULT_MATH));
        st->tf32 = tf32;
    }
    /* with beta 0 cuBLAS does not read C, so NaN garbage there is gone */
    MB_CUBLAS_CHECK(ctx, cublasSgemm(st->cublas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                     transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb,
                                     A, lda, &beta, C, ldc));
}
