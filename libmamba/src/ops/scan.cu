/* Selective scan on the GPU: the fused forward and backward of ops.h.
 *
 * One thread owns one (batch, channel) and keeps its N states in registers;
 * neighbouring threads are neighbouring channels, so every load of u, delta,
 * z and dy is a coalesced row segment of the (B, L, D) activations and a
 * row of B or C is one broadcast per warp. The states never go to device
 * memory. To fill the GPU when B*D is small, the sequence is cut into nc
 * chunks of T steps, processed in parallel by a two-level scan:
 *
 *   forward:  local  per chunk from a zero state: the end state and sum(dt)
 *             carry  per (b, d, state), sequentially over chunks: the true
 *                    state entering each chunk (decay over a chunk is
 *                    exp(A sum(dt)), exactly the product of its steps)
 *             output per chunk from its true entering state: y (and hT)
 *   backward: the same carry for the states; an adjoint "local" and "carry"
 *             in reverse time for dL/dh entering each chunk from its right;
 *             then per chunk: the states are recomputed (start states of
 *             SUB-step sub-chunks kept in local memory, each sub-chunk's
 *             states recomputed once more) and walked backward.
 *
 * dB and dC sum over channels: a warp reduce-scatters its 32 channels'
 * contributions with shuffles and each lane adds one value with an atomic;
 * dA, dD and the delta bias sum over time in registers and are added once
 * per chunk. Complex states are (re, im) pairs, with the conventions of the
 * CPU reference (ops/scan.c). */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "core/cuda_util.h"
#include "ops/ops.h"

#define SCAN_THREADS 128
#define SCAN_SUB 32        /* backward sub-chunk: states kept per thread */
#define SCAN_TMIN 64       /* shortest chunk worth a carry */
#define SCAN_TMAX 1024
#define SCAN_NC_MAX 256   /* longest carry, where SCAN_TMAX allows */

struct scan_args {
    int B, L, D, N, cplx, softplus;
    int T, nc; /* chunk length and count */
    int64_t ld_u, ld_delta, ld_B, ld_C, ld_z;
    const float *u, *delta, *A, *Ai, *Bm, *Cm, *Dsk, *z, *bias, *h0;
    /* backward */
    const float *dy, *dhT;
    int64_t ld_du, ld_ddelta, ld_dB, ld_dC, ld_dz;
    float *du, *ddelta, *dA, *dAi, *dB, *dC, *dD, *dz, *dbias, *dh0;
};

/* __expf (ex2.approx) is a few ulp, far inside the 1e-5 the tests hold the
 * scan to, and a third of expf's instructions in the innermost loop (the
 * kernels are instruction-bound: Nsight Compute, H100) */
__device__ __forceinline__ float scan_softplus(float x) { return x > 20.f ? x : log1pf(__expf(x)); }
__device__ __forceinline__ float scan_sigmoid(float x) { return 1.f / (1.f + __expf(-x)); }

__device__ __forceinline__ float scan_dt(const scan_args &a, size_t row, int d, float bias, float *pre)
{
    float v = a.delta[row * a.ld_delta + d] + bias;
    if (pre) *pre = v;
    return a.softplus ? scan_softplus(v) : v;
}

/* decay factor of one state: a = exp(dt A) (complex: times e^{i dt Ai}) */
template <bool CPLX>
__device__ __forceinline__ void scan_decay(float dt, float Ar, float Aim, float *ar, float *ai)
{
    float mag = __expf(dt * Ar);
    if (CPLX) {
        float s, c;
        sincosf(dt * Aim, &s, &c);
        *ar = mag * c;
        *ai = mag * s;
    } else {
        *ar = mag;
        *ai = 0.f;
    }
}

/* h <- a h + dt x B_t for all states; returns C_t . h (complex: 2 Re). */
template <int NS, bool CPLX>
__device__ __forceinline__ float scan_step(int N, float dt, float x, const float *Bt, const float *Ct,
                                           const float *Ar, const float *Aim, float *h, int want_y)
{
    float acc = 0.f, dtx = dt * x;
#pragma unroll
    for (int n = 0; n < NS; n++) {
        if (n < N) {
            float ar, ai;
            scan_decay<CPLX>(dt, Ar[n], CPLX ? Aim[n] : 0.f, &ar, &ai);
            if (CPLX) {
                float hr = h[2 * n], hi = h[2 * n + 1];
                float nr = ar * hr - ai * hi + dtx * Bt[2 * n];
                float ni = ar * hi + ai * hr + dtx * Bt[2 * n + 1];
                h[2 * n] = nr;
                h[2 * n + 1] = ni;
                if (want_y) acc += Ct[2 * n] * nr - Ct[2 * n + 1] * ni;
            } else {
                h[n] = ar * h[n] + dtx * Bt[n];
                if (want_y) acc += Ct[n] * h[n];
            }
        }
    }
    return CPLX ? 2.f * acc : acc;
}

template <int NS, bool CPLX>
__device__ __forceinline__ void scan_load_A(const scan_args &a, int d, float *Ar, float *Aim)
{
#pragma unroll
    for (int n = 0; n < NS; n++) {
        Ar[n] = n < a.N ? a.A[(size_t)d * a.N + n] : 0.f;
        Aim[n] = (CPLX && n < a.N) ? a.Ai[(size_t)d * a.N + n] : 0.f;
    }
}

/* B and C rows of SCAN_TILE steps, staged in shared memory by the whole
 * block: one coalesced load instead of 2N uniform loads per thread and step
 * (those loads kept the load/store pipe the busiest unit). Row s holds B at
 * [0, sf) and C at [HS, HS + sf). All threads of the block must call it. */
#define SCAN_TILE 32
template <int HS>
__device__ __forceinline__ void scan_load_tile(const scan_args &a, int b, int tt, int nt, float *sbc)
{
    const int sf = a.cplx ? 2 * a.N : a.N;
    __syncthreads(); /* the previous tile is consumed */
    for (int i = threadIdx.x; i < nt * 2 * sf; i += blockDim.x) {
        const int s = i / (2 * sf), k = i % (2 * sf);
        const size_t row = (size_t)b * a.L + tt + s;
        sbc[s * 2 * HS + (k < sf ? k : HS + k - sf)] =
            k < sf ? __ldg(a.Bm + row * a.ld_B + k) : __ldg(a.Cm + row * a.ld_C + k - sf);
    }
    __syncthreads();
}

/* ---- forward ------------------------------------------------------------ */

/* chunk end state from zero, and sum(dt), for chunk blockIdx.y */
template <int NS, bool CPLX>
__global__ void scan_fwd_local(scan_args a, float *hloc, float *ssum)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HS];
    const int d0 = blockIdx.x * SCAN_THREADS + threadIdx.x, c = blockIdx.y, b = blockIdx.z;
    const bool live = d0 < a.D; /* the others still help stage the tiles */
    const int d = live ? d0 : a.D - 1;
    const int sf = CPLX ? 2 * a.N : a.N;
    float Ar[NS], Aim[NS], h[HS];
    scan_load_A<NS, CPLX>(a, d, Ar, Aim);
#pragma unroll
    for (int k = 0; k < HS; k++) h[k] = 0.f;
    const float bias = a.bias ? a.bias[d] : 0.f;
    const int t0 = c * a.T, t1 = min(a.L, t0 + a.T);
    float S = 0.f;
    for (int tt = t0; tt < t1; tt += SCAN_TILE) {
        const int nt = min(SCAN_TILE, t1 - tt);
        scan_load_tile<HS>(a, b, tt, nt, sbc);
        for (int s = 0; s < nt; s++) {
            const size_t row = (size_t)b * a.L + tt + s;
            float dt = scan_dt(a, row, d, bias, NULL);
            S += dt;
            scan_step<NS, CPLX>(a.N, dt, a.u[row * a.ld_u + d], sbc + s * 2 * HS, sbc + s * 2 * HS + HS,
                                Ar, Aim, h, 0);
        }
    }
    if (!live) return;
    const size_t o = ((size_t)b * a.nc + c) * a.D + d;
    ssum[o] = S;
#pragma unroll
    for (int k = 0; k < HS; k++)
        if (k < sf) hloc[o * sf + k] = h[k];
}

/* Sequential over chunks, one thread per (b, d, state). Forward: replaces
 * each chunk's local end state with the true state entering the chunk,
 * H <- Q H + local (Q = exp(A sum dt), the chunk's decay), from h0.
 * Reverse: replaces each chunk's local adjoint with the true adjoint
 * reaching its last state from the right, E <- local + conj(Q) E, from dhT. */
template <bool CPLX, bool REV>
__global__ void scan_carry(scan_args a, float *loc, const float *ssum)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)a.B * a.D * a.N) return;
    const int n = (int)(i % a.N), d = (int)((i / a.N) % a.D), b = (int)(i / ((int64_t)a.N * a.D));
    const int sf = CPLX ? 2 * a.N : a.N, k = CPLX ? 2 * n : n;
    const float Ar = a.A[(size_t)d * a.N + n], Aim = CPLX ? a.Ai[(size_t)d * a.N + n] : 0.f;
    const float *init = REV ? a.dhT : a.h0;
    float Hr = 0.f, Hi = 0.f;
    if (init) {
        Hr = init[((size_t)b * a.D + d) * sf + k];
        if (CPLX) Hi = init[((size_t)b * a.D + d) * sf + k + 1];
    }
#pragma unroll 8
    for (int j = 0; j < a.nc; j++) {
        const int c = REV ? a.nc - 1 - j : j;
        const size_t o = ((size_t)b * a.nc + c) * a.D + d;
        float lr = loc[o * sf + k], li = CPLX ? loc[o * sf + k + 1] : 0.f;
        loc[o * sf + k] = Hr;
        if (CPLX) loc[o * sf + k + 1] = Hi;
        float qr, qi;
        scan_decay<CPLX>(ssum[o], Ar, Aim, &qr, &qi);
        if (REV) qi = -qi;
        float nr = qr * Hr - qi * Hi + lr, ni = qr * Hi + qi * Hr + li;
        Hr = nr;
        Hi = ni;
    }
}

/* y over chunk blockIdx.y from its entering state (hstart, or h0 / zeros
 * when there is a single chunk); the last chunk writes hT. */
template <int NS, bool CPLX>
__global__ void scan_fwd_out(scan_args a, const float *hstart, float *y, float *hT)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HS];
    const int d0 = blockIdx.x * SCAN_THREADS + threadIdx.x, c = blockIdx.y, b = blockIdx.z;
    const bool live = d0 < a.D;
    const int d = live ? d0 : a.D - 1;
    const int sf = CPLX ? 2 * a.N : a.N;
    float Ar[NS], Aim[NS], h[HS];
    scan_load_A<NS, CPLX>(a, d, Ar, Aim);
    const float *src = hstart ? hstart + (((size_t)b * a.nc + c) * a.D + d) * sf
                              : (a.h0 ? a.h0 + ((size_t)b * a.D + d) * sf : NULL);
#pragma unroll
    for (int k = 0; k < HS; k++) h[k] = (src && k < sf) ? src[k] : 0.f;
    const float bias = a.bias ? a.bias[d] : 0.f, Dd = a.Dsk ? a.Dsk[d] : 0.f;
    const int t0 = c * a.T, t1 = min(a.L, t0 + a.T);
    for (int tt = t0; tt < t1; tt += SCAN_TILE) {
        const int nt = min(SCAN_TILE, t1 - tt);
        scan_load_tile<HS>(a, b, tt, nt, sbc);
        for (int s = 0; s < nt; s++) {
            const size_t row = (size_t)b * a.L + tt + s;
            const float x = a.u[row * a.ld_u + d];
            float dt = scan_dt(a, row, d, bias, NULL);
            float out = scan_step<NS, CPLX>(a.N, dt, x, sbc + s * 2 * HS, sbc + s * 2 * HS + HS, Ar, Aim, h, 1);
            out += Dd * x;
            if (a.z) {
                float zv = a.z[row * a.ld_z + d];
                out *= zv * scan_sigmoid(zv);
            }
            if (live) y[row * a.D + d] = out;
        }
    }
    if (live && hT && c == a.nc - 1)
#pragma unroll
        for (int k = 0; k < HS; k++)
            if (k < sf) hT[((size_t)b * a.D + d) * sf + k] = h[k];
}

/* ---- backward ----------------------------------------------------------- */

/* gradient of y w.r.t. the scan output before the gate, and dz */
__device__ __forceinline__ float scan_gate_bwd(const scan_args &a, size_t row, int d, float dyv,
                                               float yfull, int write_dz)
{
    if (!a.z) return dyv;
    const float zv = a.z[row * a.ld_z + d], sg = scan_sigmoid(zv);
    if (write_dz) a.dz[row * a.ld_dz + d] = dyv * yfull * sg * (1.f + zv * (1.f - sg));
    return dyv * zv * sg;
}

/* Adjoint entering each chunk from its right, from a zero adjoint: walk the
 * chunk backward adding C dyf (the y path) and multiplying by conj(a). The
 * gate needs only dy and z here (not y), so no states are needed. */
template <int NS, bool CPLX>
__global__ void scan_bwd_local(scan_args a, float *gloc)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HS];
    const int d0 = blockIdx.x * SCAN_THREADS + threadIdx.x, c = blockIdx.y, b = blockIdx.z;
    const bool live = d0 < a.D;
    const int d = live ? d0 : a.D - 1;
    const int sf = CPLX ? 2 * a.N : a.N;
    float Ar[NS], Aim[NS], G[HS];
    scan_load_A<NS, CPLX>(a, d, Ar, Aim);
#pragma unroll
    for (int k = 0; k < HS; k++) G[k] = 0.f;
    const float bias = a.bias ? a.bias[d] : 0.f;
    const int t0 = c * a.T, t1 = min(a.L, t0 + a.T);
    /* tiles from the chunk's end backward */
    for (int te = t1; te > t0; te -= SCAN_TILE) {
        const int tt = max(t0, te - SCAN_TILE), nt = te - tt;
        scan_load_tile<HS>(a, b, tt, nt, sbc);
        for (int s = nt - 1; s >= 0; s--) {
            const size_t row = (size_t)b * a.L + tt + s;
            float dt = scan_dt(a, row, d, bias, NULL);
            float dyf = scan_gate_bwd(a, row, d, a.dy[row * a.D + d], 0.f, 0);
            const float *Ct = sbc + s * 2 * HS + HS;
#pragma unroll
            for (int n = 0; n < NS; n++) {
                if (n < a.N) {
                    float ar, ai;
                    scan_decay<CPLX>(dt, Ar[n], Aim[n], &ar, &ai);
                    if (CPLX) {
                        float gr = G[2 * n] + 2.f * dyf * Ct[2 * n];
                        float gi = G[2 * n + 1] - 2.f * dyf * Ct[2 * n + 1];
                        G[2 * n] = ar * gr + ai * gi;
                        G[2 * n + 1] = ar * gi - ai * gr;
                    } else {
                        G[n] = ar * (G[n] + dyf * Ct[n]);
                    }
                }
            }
        }
    }
    if (!live) return;
    const size_t o = ((size_t)b * a.nc + c) * a.D + d;
#pragma unroll
    for (int k = 0; k < HS; k++)
        if (k < sf) gloc[o * sf + k] = G[k];
}

/* Sum v[0..V) over the 32 lanes of the warp, leaving the total of value j
 * on lane j % 32 in out[j / 32]: a butterfly reduce-scatter, 31 shuffles per
 * 32 values. All indices are compile-time, so v stays in registers. */
template <int V>
__device__ __forceinline__ void warp_reduce_scatter(float *v, float *out, int lane)
{
#pragma unroll
    for (int g = 0; g < V / 32; g++) {
        float *w = v + 32 * g;
#pragma unroll
        for (int half = 16; half >= 1; half >>= 1) {
            const bool upper = (lane & half) != 0;
#pragma unroll
            for (int k = 0; k < half; k++) {
                float send = upper ? w[k] : w[k + half];
                float keep = upper ? w[k + half] : w[k];
                w[k] = keep + __shfl_xor_sync(0xffffffffu, send, half);
            }
        }
        out[g] = w[0];
    }
}

template <int NS, bool CPLX>
__global__ void __launch_bounds__(SCAN_THREADS)
scan_bwd_chunk(scan_args a, const float *hstart, const float *ein)
{
    const int d0 = blockIdx.x * SCAN_THREADS + threadIdx.x, c = blockIdx.y, b = blockIdx.z;
    const int lane = threadIdx.x & 31;
    /* threads past D still walk the chunk with zeros: the warp's
     * reduce-scatter needs all 32 lanes */
    const bool live = d0 < a.D;
    const int d = live ? d0 : a.D - 1;
    const int sf = CPLX ? 2 * a.N : a.N;
    constexpr int HS = CPLX ? 2 * NS : NS;
    constexpr int V = (2 * HS + 31) / 32 * 32; /* dB then dC values, padded */
    static_assert(SCAN_SUB == SCAN_TILE, "a sub-chunk is one staged tile");
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HS];
    float Ar[NS], Aim[NS];
    scan_load_A<NS, CPLX>(a, d, Ar, Aim);
    const float bias = a.bias ? a.bias[d] : 0.f, Dd = a.Dsk ? a.Dsk[d] : 0.f;
    const int t0 = c * a.T, t1 = min(a.L, t0 + a.T);
    const size_t o = ((size_t)b * a.nc + c) * a.D + d;

    /* start states of the sub-chunks, then per sub-chunk its step states */
    float ck[(SCAN_TMAX / SCAN_SUB)][HS];
    float hs[SCAN_SUB][HS];
    float h[HS], G[HS];
    const float *src = hstart ? hstart + o * sf : (a.h0 ? a.h0 + ((size_t)b * a.D + d) * sf : NULL);
#pragma unroll
    for (int k = 0; k < HS; k++) h[k] = (src && k < sf) ? src[k] : 0.f;
    const int nsub = (t1 - t0 + SCAN_SUB - 1) / SCAN_SUB;
    for (int s = 0; s < nsub; s++) {
#pragma unroll
        for (int k = 0; k < HS; k++) ck[s][k] = h[k];
        const int ta = t0 + s * SCAN_SUB, tb = min(t1, ta + SCAN_SUB);
        scan_load_tile<HS>(a, b, ta, tb - ta, sbc);
        for (int t = ta; t < tb; t++) {
            const size_t row = (size_t)b * a.L + t;
            float dt = scan_dt(a, row, d, bias, NULL);
            const float *st = sbc + (t - ta) * 2 * HS;
            scan_step<NS, CPLX>(a.N, dt, a.u[row * a.ld_u + d], st, st + HS, Ar, Aim, h, 0);
        }
    }
    const float *e = ein ? ein + o * sf : a.dhT ? a.dhT + ((size_t)b * a.D + d) * sf : NULL;
#pragma unroll
    for (int k = 0; k < HS; k++) G[k] = (e && k < sf) ? e[k] : 0.f;
    float dA_acc[NS], dAi_acc[NS], dD_acc = 0.f, dbias_acc = 0.f;
#pragma unroll
    for (int n = 0; n < NS; n++) dA_acc[n] = dAi_acc[n] = 0.f;

    for (int s = nsub - 1; s >= 0; s--) {
        const int ta = t0 + s * SCAN_SUB, tb = min(t1, ta + SCAN_SUB);
#pragma unroll
        for (int k = 0; k < HS; k++) h[k] = ck[s][k];
        scan_load_tile<HS>(a, b, ta, tb - ta, sbc);
        for (int t = ta; t < tb; t++) {
#pragma unroll
            for (int k = 0; k < HS; k++) hs[t - ta][k] = h[k]; /* state before step t */
            const size_t row = (size_t)b * a.L + t;
            float dt = scan_dt(a, row, d, bias, NULL);
            const float *st = sbc + (t - ta) * 2 * HS;
            scan_step<NS, CPLX>(a.N, dt, a.u[row * a.ld_u + d], st, st + HS, Ar, Aim, h, 0);
        }
        /* h is now the state after step tb-1 */
        for (int t = tb - 1; t >= ta; t--) {
            const size_t row = (size_t)b * a.L + t;
            const float *Bt = sbc + (t - ta) * 2 * HS, *Ct = Bt + HS;
            const float x = a.u[row * a.ld_u + d];
            float pre, dt = scan_dt(a, row, d, bias, &pre);
            const float *hp = hs[t - ta];
            /* ungated output for dz: C . h_t (+ 2 Re), + D x */
            float yfull = 0.f;
#pragma unroll
            for (int n = 0; n < NS; n++)
                if (n < a.N) {
                    if (CPLX) yfull += Ct[2 * n] * h[2 * n] - Ct[2 * n + 1] * h[2 * n + 1];
                    else yfull += Ct[n] * h[n];
                }
            if (CPLX) yfull *= 2.f;
            yfull += Dd * x;
            const float dyv = live ? a.dy[row * a.D + d] : 0.f;
            const float dyf = scan_gate_bwd(a, row, d, dyv, yfull, live);
            float dx = dyf * Dd, ddt = 0.f, gb = 0.f;
            dD_acc += dyf * x;
            float vals[V];
#pragma unroll
            for (int k = 0; k < V; k++) vals[k] = 0.f;
#pragma unroll
            for (int n = 0; n < NS; n++) {
                if (n < a.N) {
                    float ar, ai;
                    scan_decay<CPLX>(dt, Ar[n], Aim[n], &ar, &ai);
                    if (CPLX) {
                        const float hr = h[2 * n], hi = h[2 * n + 1], pr = hp[2 * n], pi = hp[2 * n + 1];
                        const float Cr = Ct[2 * n], Ci = Ct[2 * n + 1];
                        const float Br = Bt[2 * n], Bi = Bt[2 * n + 1];
                        vals[HS + 2 * n] = 2.f * dyf * hr;
                        vals[HS + 2 * n + 1] = -2.f * dyf * hi;
                        const float Gr = G[2 * n] + 2.f * dyf * Cr, Gi = G[2 * n + 1] - 2.f * dyf * Ci;
                        const float gar = Gr * pr + Gi * pi, gai = Gi * pr - Gr * pi;
                        const float Aar = Ar[n] * ar - Aim[n] * ai, Aai = Ar[n] * ai + Aim[n] * ar;
                        ddt += gar * Aar + gai * Aai;
                        dA_acc[n] += dt * (gar * ar + gai * ai);
                        dAi_acc[n] += dt * (gai * ar - gar * ai);
                        const float g = Gr * Br + Gi * Bi;
                        ddt += g * x;
                        gb += g;
                        vals[2 * n] = Gr * dt * x;
                        vals[2 * n + 1] = Gi * dt * x;
                        G[2 * n] = ar * Gr + ai * Gi;
                        G[2 * n + 1] = ar * Gi - ai * Gr;
                    } else {
                        const float Cn = Ct[n], Bn = Bt[n];
                        vals[HS + n] = dyf * h[n];
                        const float Gn = G[n] + dyf * Cn;
                        const float da = Gn * hp[n];
                        ddt += da * Ar[n] * ar + Gn * Bn * x;
                        dA_acc[n] += da * dt * ar;
                        vals[n] = Gn * dt * x;
                        gb += Gn * Bn;
                        G[n] = ar * Gn;
                    }
                }
            }
            dx += gb * dt;
            if (a.softplus) ddt *= pre > 20.f ? 1.f : scan_sigmoid(pre);
            dbias_acc += ddt;
            if (live) {
                a.du[row * a.ld_du + d] = dx;
                a.ddelta[row * a.ld_ddelta + d] = ddt;
            }
            if (!live)
#pragma unroll
                for (int k = 0; k < V; k++) vals[k] = 0.f;
            float red[V / 32];
            warp_reduce_scatter<V>(vals, red, lane);
#pragma unroll
            for (int g = 0; g < V / 32; g++) {
                const int j = 32 * g + lane; /* value index: dB for j < HS, dC after */
                if (j < HS && j < sf) atomicAdd(a.dB + row * a.ld_dB + j, red[g]);
                else if (j >= HS && j - HS < sf) atomicAdd(a.dC + row * a.ld_dC + (j - HS), red[g]);
            }
            /* step back: h_{t-1} */
#pragma unroll
            for (int k = 0; k < HS; k++) h[k] = hp[k];
        }
    }
    if (!live) return;
    /* the adjoint leaving the first chunk is dL/dh0 */
    if (a.dh0 && c == 0)
#pragma unroll
        for (int k = 0; k < HS; k++)
            if (k < sf) a.dh0[((size_t)b * a.D + d) * sf + k] = G[k];
#pragma unroll
    for (int n = 0; n < NS; n++)
        if (n < a.N) {
            atomicAdd(a.dA + (size_t)d * a.N + n, dA_acc[n]);
            if (CPLX) atomicAdd(a.dAi + (size_t)d * a.N + n, dAi_acc[n]);
        }
    if (a.Dsk) atomicAdd(a.dD + d, dD_acc);
    if (a.bias) atomicAdd(a.dbias + d, dbias_acc);
}

/* dB and dC are outputs (overwritten) but gathered with atomics */
__global__ void scan_zero_rows(float *x, int64_t ld, int64_t rows, int width)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < rows * width) x[(i / width) * ld + i % width] = 0.f;
}

/* ---- host side ---------------------------------------------------------- */

/* chunk length: enough chunks to fill the GPU with one thread per
 * (b, d, chunk), each chunk as long as possible to keep the carry short */
static int scan_chunk_len(const mb_scan_params *p, int sm_count)
{
    const int64_t want_threads = (int64_t)(sm_count > 0 ? sm_count : 132) * 2048 * 2;
    const int64_t bd = (int64_t)p->batch * p->dim;
    int64_t nc = (want_threads + bd - 1) / bd;
    int64_t T = ((int64_t)p->seqlen + nc - 1) / nc;
    /* the carry walks the chunks one after another with only B*D*N
     * threads: keep it to SCAN_NC_MAX chunks where the length allows */
    if (T < (p->seqlen + SCAN_NC_MAX - 1) / SCAN_NC_MAX) T = (p->seqlen + SCAN_NC_MAX - 1) / SCAN_NC_MAX;
    int t = SCAN_TMIN;
    while (t < T && t < SCAN_TMAX) t *= 2;
    if (t >= p->seqlen) t = p->seqlen; /* one chunk: no carry at all */
    return t < 1 ? 1 : t;
}

static scan_args scan_make_args(const mb_scan_params *p, int sm_count)
{
    scan_args a = {};
    a.B = p->batch, a.L = p->seqlen, a.D = p->dim, a.N = p->dstate, a.cplx = p->is_complex;
    a.softplus = p->delta_softplus;
    a.T = scan_chunk_len(p, sm_count);
    a.nc = (a.L + a.T - 1) / a.T;
    a.u = p->u, a.ld_u = p->ld_u, a.delta = p->delta, a.ld_delta = p->ld_delta;
    a.A = p->A, a.Ai = p->A_imag, a.Bm = p->Bm, a.ld_B = p->ld_B, a.Cm = p->Cm, a.ld_C = p->ld_C;
    a.Dsk = p->Dskip, a.z = p->z, a.ld_z = p->ld_z, a.bias = p->delta_bias, a.h0 = p->h0;
    return a;
}

extern "C" size_t mb_scan_workspace_cuda(mb_ctx *ctx, const mb_scan_params *p)
{
    const mb_cuda_state *cs = (const mb_cuda_state *)ctx->cuda;
    scan_args a = scan_make_args(p, cs ? cs->sm_count : 0);
    if (a.nc <= 1) return 64;
    const size_t sf = (size_t)(p->is_complex ? 2 : 1) * p->dstate, n = (size_t)a.B * a.nc * a.D;
    /* states entering chunks, adjoints leaving them, sum(dt) per chunk */
    return mb_align64(n * sf * 4) * 2 + mb_align64(n * 4) + 256;
}

static int scan_check(mb_ctx *ctx, const mb_scan_params *p)
{
    if (p->dstate > 64) {
        ctx->failed = 1;
        return mb_error_set("cuda scan: d_state %d is above the GPU kernels' 64", p->dstate);
    }
    return 0;
}

#define SCAN_DISPATCH(NSV, CPLXV, ...)                                          \
    do {                                                                        \
        if ((NSV) <= 16) {                                                      \
            if (CPLXV) { __VA_ARGS__(16, true); } else { __VA_ARGS__(16, false); } \
        } else {                                                                \
            if (CPLXV) { __VA_ARGS__(64, true); } else { __VA_ARGS__(64, false); } \
        }                                                                       \
    } while (0)

extern "C" void mb_scan_fwd_cuda(mb_ctx *ctx, const mb_scan_params *p, float *y, float *hT, mb_arena *ws)
{
    mb_cuda_state *cs = mb_cuda_enter(ctx);
    if (!cs || ctx->failed || scan_check(ctx, p)) return;
    cudaStream_t st = cs->stream;
    scan_args a = scan_make_args(p, cs->sm_count);
    const dim3 blk(SCAN_THREADS), grid((a.D + SCAN_THREADS - 1) / SCAN_THREADS, a.nc, a.B);
    float *hstart = NULL;
    size_t mark = ws->used;
    if (a.nc > 1) {
        const size_t sf = (size_t)(a.cplx ? 2 : 1) * a.N, n = (size_t)a.B * a.nc * a.D;
        hstart = (float *)mb_arena_alloc(ws, n * sf * 4);
        float *ssum = (float *)mb_arena_alloc(ws, n * 4);
        if (!hstart || !ssum) {
            ctx->failed = 1;
            return;
        }
        const int64_t nthr = (int64_t)a.B * a.D * a.N;
        const unsigned cgrid = (unsigned)((nthr + 255) / 256);
#define LOCAL(NS, C) scan_fwd_local<NS, C><<<grid, blk, 0, st>>>(a, hstart, ssum)
        SCAN_DISPATCH(a.N, a.cplx, LOCAL);
#undef LOCAL
        MB_LAUNCH_CHECK(ctx, "scan_fwd_local");
        if (a.cplx) scan_carry<true, false><<<cgrid, 256, 0, st>>>(a, hstart, ssum);
        else scan_carry<false, false><<<cgrid, 256, 0, st>>>(a, hstart, ssum);
        MB_LAUNCH_CHECK(ctx, "scan_carry");
    }
#define OUT(NS, C) scan_fwd_out<NS, C><<<grid, blk, 0, st>>>(a, hstart, y, hT)
    SCAN_DISPATCH(a.N, a.cplx, OUT);
#undef OUT
    MB_LAUNCH_CHECK(ctx, "scan_fwd_out");
    ws->used = mark;
}

extern "C" void mb_scan_bwd_cuda(mb_ctx *ctx, const mb_scan_params *p, const float *dy,
                                 const float *dhT, const mb_scan_grads *g, mb_arena *ws)
{
    mb_cuda_state *cs = mb_cuda_enter(ctx);
    if (!cs || ctx->failed || scan_check(ctx, p)) return;
    cudaStream_t st = cs->stream;
    scan_args a = scan_make_args(p, cs->sm_count);
    a.dy = dy, a.dhT = dhT;
    a.du = g->du, a.ld_du = g->ld_du, a.ddelta = g->ddelta, a.ld_ddelta = g->ld_ddelta;
    a.dA = g->dA, a.dAi = g->dA_imag, a.dB = g->dB, a.ld_dB = g->ld_dB, a.dC = g->dC, a.ld_dC = g->ld_dC;
    a.dD = g->dD, a.dz = g->dz, a.ld_dz = g->ld_dz, a.dbias = g->ddelta_bias, a.dh0 = g->dh0;
    const int sf = (a.cplx ? 2 : 1) * a.N;
    const int64_t rows = (int64_t)a.B * a.L;
    const unsigned zgrid = (unsigned)((rows * sf + 255) / 256);
    scan_zero_rows<<<zgrid, 256, 0, st>>>(a.dB, a.ld_dB, rows, sf);
    scan_zero_rows<<<zgrid, 256, 0, st>>>(a.dC, a.ld_dC, rows, sf);
    MB_LAUNCH_CHECK(ctx, "scan_zero_rows");
    const dim3 blk(SCAN_THREADS), grid((a.D + SCAN_THREADS - 1) / SCAN_THREADS, a.nc, a.B);
    float *hstart = NULL, *gin = NULL;
    size_t mark = ws->used;
    const int64_t nthr = (int64_t)a.B * a.D * a.N;
    const unsigned cgrid = (unsigned)((nthr + 255) / 256);
    if (a.nc > 1) {
        const size_t n = (size_t)a.B * a.nc * a.D;
        hstart = (float *)mb_arena_alloc(ws, n * sf * 4);
        gin = (float *)mb_arena_alloc(ws, n * sf * 4);
        float *ssum = (float *)mb_arena_alloc(ws, n * 4);
        if (!hstart || !gin || !ssum) {
            ctx->failed = 1;
            return;
        }
#define LOCALS(NS, C)                                                         \
    scan_fwd_local<NS, C><<<grid, blk, 0, st>>>(a, hstart, ssum);             \
    scan_bwd_local<NS, C><<<grid, blk, 0, st>>>(a, gin)
        SCAN_DISPATCH(a.N, a.cplx, LOCALS);
#undef LOCALS
        MB_LAUNCH_CHECK(ctx, "scan_bwd locals");
        if (a.cplx) {
            scan_carry<true, false><<<cgrid, 256, 0, st>>>(a, hstart, ssum);
            scan_carry<true, true><<<cgrid, 256, 0, st>>>(a, gin, ssum);
        } else {
            scan_carry<false, false><<<cgrid, 256, 0, st>>>(a, hstart, ssum);
            scan_carry<false, true><<<cgrid, 256, 0, st>>>(a, gin, ssum);
        }
        MB_LAUNCH_CHECK(ctx, "scan_bwd carries");
    }
#define CHUNK(NS, C) scan_bwd_chunk<NS, C><<<grid, blk, 0, st>>>(a, hstart, gin)
    SCAN_DISPATCH(a.N, a.cplx, CHUNK);
#undef CHUNK
    MB_LAUNCH_CHECK(ctx, "scan_bwd_chunk");
    ws->used = mark;
}
