/* The residual MLP block: out = h + fc2(gelu(fc1(norm(h)))), hidden width
 * 2 * width, exact (erf) GELU, RMSNorm. Tensors NORM.weight and
 * MLP.fc1.{weight,bias} (2w, w), MLP.fc2.{weight,bias} (w, 2w). */
#ifndef MB_MLP_H
#define MB_MLP_H

#include "nn/norm.h"

typedef struct {
    int width;
    mb_norm norm;
    int p_fc1_w, p_fc1_b, p_fc2_w, p_fc2_b;
} mb_mlp;

typedef struct {
    float *xn;     /* (M, w) */
    mb_norm_acts norm;
    float *a1, *g1; /* (M, 2w): fc1's output, after the GELU */
} mb_mlp_acts;

int mb_mlp_register(mb_mlp *p, mb_params *ps, const char *norm_prefix, const char *mlp_prefix, int width,
                    float eps);
/* norm ones; fc1 and fc2 nn.Linear's U(+-1/sqrt(fan_in)) from rng */
void mb_mlp_init_weights(const mb_mlp *p, const mb_params *ps, float *host, mb_rng *rng);
void mb_mlp_acts_carve(mb_mlp_acts *a, const mb_mlp *p, int M, mb_carve *c);
/* out (M, w) = in + MLP(in); out must not alias in */
void mb_mlp_fwd(mb_ctx *ctx, const mb_mlp *p, const mb_params *ps, int M, const float *in, float *out,
                const mb_mlp_acts *a);
/* dh holds d(out), left holding d(in). Scratch: dg (M, 2w), dxn (M, w). */
void mb_mlp_bwd(mb_ctx *ctx, const mb_mlp *p, const mb_params *ps, int M, const float *in,
                const mb_mlp_acts *a, float *dh, float *dg, float *dxn);

#endif
