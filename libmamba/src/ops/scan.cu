/* Selective scan on the GPU: the fused forward and backward of ops.h.
 *
 * One thread owns one (batch, channel) and keeps its N states in registers;
 * neighbouring threads are neighbouring channels, so every load of u, delta,
 * z and dy is a coalesced row segment of the (B, L, D) activations, fetched
 * one step ahead, and rows of B and C are staged per 32-step tile in shared
 * memory. The states never go to device memory. To fill the GPU when B*D is small, the sequence is
 * cut into nc chunks of T steps, processed in parallel by a two-level scan:
 *
 *   forward:  local  per chunk from a zero state: the end state and sum(dt)
 *             carry  per (b, d, state), sequentially over chunks: the true
 *                    state entering each chunk (decay over a chunk is
 *                    exp(A sum(dt)), exactly the product of its steps)
 *             output per chunk from its true entering state: y (and hT)
 *   backward: chunks of one tile (32 steps), so a chunk's states fit in one
 *             per-thread array. One "locals" pass gives each chunk's end
 *             state from zero AND its adjoint from a zero adjoint: the
 *             adjoint leaving a chunk is sum_t conj(P_t) c_t with P_t the
 *             running product of the decays, so both walk forward in time
 *             and share each exp. The carries (states forward, adjoints in
 *             reverse, one launch), then per chunk: recompute and keep its 32 states,
 *             walk them backward. With complex A at d_state 16 both
 *             passes give a channel two threads, 8 states each
 *             (SCAN_BWD_SP).
 *
 * Decays are exp2(dt * A log2(e)) on the MUFU unit (ex2.approx.ftz, a few
 * ulp, far inside the 1e-5 the tests hold the scan to); A is scaled once per
 * thread. The common d_state 16 is compiled with N fixed, so the per-state
 * loops carry no predicates; other N up to 64 take the generic path.
 *
 * dB and dC sum over channels: a warp reduce-scatters its 32 channels'
 * contributions with shuffles and each lane adds one value with an atomic;
 * dA, dD and the delta bias sum over time in registers and are added once
 * per chunk. Complex states are (re, im) pairs, with the conventions of the
 * CPU reference (ops/scan.c). */
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "core/cuda_util.h"
#include "ops/ops.h"

/* A block. scan_fwd_out, scan_bwd_locals and scan_bwd_chunk pin their
 * blocks an SM where their registers had put them (d_state 16: 8, 5 and 3
 * real; complex 5 for scan_fwd_out, 2 of twice the threads for the split
 * backward kernels (SCAN_BWD_SP); other N: 1, all registers): ptxas lowered them
 * by a block when the step's softplus changed, and gave scan_bwd_chunk at
 * N 64 32 registers and 8 KB of spills (session 33). */
#define SCAN_THREADS 128
/* threads a channel in the backward's locals and chunk kernels (scan_bwd_chunk
 * says why): complex A only, real A's backward was 7-11% slower split (session 38) */
#define SCAN_BWD_SP(NS, C) ((NS) == 16 && (C) ? 2 : 1)
#define SCAN_TILE 32       /* steps of B/C staged at once; the backward chunk */
#define SCAN_TMIN 64       /* shortest forward chunk worth a carry */
#define SCAN_TMAX 1024
#define SCAN_NC_MAX 256    /* longest forward carry, where SCAN_TMAX allows */
#define SCAN_LOG2E 1.4426950408889634f
#define SCAN_LN2 0.6931471805599453f
#define SCAN_2PI 6.28318530717958647693f
#define SCAN_INV_2PI 0.15915494309189533577f

struct scan_args {
    int B, L, D, N, cplx, softplus;
    int io16; /* the activations are bf16 arrays (mb_scan_params.io_bf16) */
    int r16; /* bf16 precision: float arrays read and stored as bf16 values (scan_f32r) */
    int T, nc, dblk; /* chunk length and count, blocks across D */
    int64_t ld_u, ld_delta, ld_B, ld_C, ld_z;
    /* activations: float or bf16 arrays, the kernels' T (io_bf16) */
    const void *u, *delta, *Bm, *Cm, *z;
    const float *A, *Ai, *Dsk, *bias, *h0;
    /* backward */
    const void *dy;
    const float *dhT;
    int64_t ld_du, ld_ddelta, ld_dB, ld_dC, ld_dz;
    void *du, *ddelta, *dz;
    float *dA, *dAi, *dB, *dC, *dD, *dbias, *dh0;
    void *y; /* the forward's output too, when not NULL */
};

/* bf16 is read as bits and widened by mb_bf16_float (a shift), not by
 * __bfloat162float: that is inline asm (cvt.f32.bf16), which the compiler
 * keeps right after the load, so a step fetched a step ahead (scan_fetch)
 * waited for its loads in the same iteration; the shift it moves to the use,
 * as it moves the fp32 path's "+ bias" (Nsight Compute, (8, 1536, 2048): the
 * bf16 kernels had run the fp32 ones' instructions 5-20% slower, stalled on
 * long scoreboards) */
/* bf16 precision's activations on the GPU: float arrays holding bf16
 * values, stored rounded (scan_args.r16). delta, z and dy are read as the
 * nearest bf16, so the mixer leaves them as their products wrote them
 * (mb_bf16_round_rows_conv_scan), a pass over memory fewer each, and the
 * maths sees the values a rounding pass would have left; u (the conv's
 * output) and B, C (x_proj's, stored rounded) are read as they are, a
 * rounding fewer a step (the DNA step 0.5% faster, session 42). A type of
 * its own, not a flag, so that fp32's kernels carry none of it. */
struct scan_f32r {
    float v;
};
/* element i of an activation array of T (float, scan_f32r or bf16), as a float */
template <typename T> __device__ __forceinline__ float scan_ld(const void *p, size_t i);
template <> __device__ __forceinline__ float scan_ld<float>(const void *p, size_t i)
{
    return static_cast<const float *>(p)[i];
}
template <> __device__ __forceinline__ float scan_ld<__nv_bfloat16>(const void *p, size_t i)
{
    return mb_bf16_float(static_cast<const unsigned short *>(p)[i]);
}
template <> __device__ __forceinline__ float scan_ld<scan_f32r>(const void *p, size_t i)
{
    return mb_bf16_keep(static_cast<const float *>(p)[i]);
}
/* the read-only path for rows every thread of a block shares (B, C) */
template <typename T> __device__ __forceinline__ float scan_ldg(const void *p, size_t i);
template <> __device__ __forceinline__ float scan_ldg<float>(const void *p, size_t i)
{
    return __ldg(static_cast<const float *>(p) + i);
}
template <> __device__ __forceinline__ float scan_ldg<__nv_bfloat16>(const void *p, size_t i)
{
    return mb_bf16_float(__ldg(static_cast<const unsigned short *>(p) + i));
}
/* B and C (xdbl) and u (the conv's output) arrive rounded: read as they are */
template <> __device__ __forceinline__ float scan_ldg<scan_f32r>(const void *p, size_t i)
{
    return scan_ldg<float>(p, i);
}
template <typename T> struct scan_stored {
    using type = T;
};
template <> struct scan_stored<scan_f32r> {
    using type = float;
};
/* v into element i of an activation array of T (scan_f32r: rounded as
 * mb_precision_store would). Float arrays in bf16 precision are dispatched
 * as scan_f32r, so r16 is 0 on the float path; its select stays there
 * because without it ptxas gave scan_bwd_chunk 162 registers instead of
 * 158 and the real forward + backward ran 1% slower (H100, session 42);
 * with it the fp32 kernels' PTX is what it was before scan_f32r. */
template <typename T> __device__ __forceinline__ void scan_st(void *p, size_t i, float v, int r16);
template <> __device__ __forceinline__ void scan_st<float>(void *p, size_t i, float v, int r16)
{
    static_cast<float *>(p)[i] = mb_bf16_keep_if(r16, v);
}
template <> __device__ __forceinline__ void scan_st<scan_f32r>(void *p, size_t i, float v, int r16)
{
    (void)r16;
    static_cast<float *>(p)[i] = mb_bf16_keep(v);
}
template <> __device__ __forceinline__ void scan_st<__nv_bfloat16>(void *p, size_t i, float v, int r16)
{
    (void)r16;
    static_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(v);
}

/* N as the kernels see it: a constant for the common d_state 16 */
template <int NS>
__device__ __forceinline__ int scan_n(const scan_args &a) { return NS == 16 ? 16 : a.N; }

__device__ __forceinline__ float scan_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}
/* softplus(x) = log(1 + e^x) without a branch, on one ex2 and one rcp:
 * max(x, 0) + log1p(y) with y = e^-|x| in (0, 1], and log1p(y) = 2 atanh(s),
 * s = y / (2 + y) in (0, 1/3]: 2 s (1 + s^2/3 + s^4/5 + ... + s^14/15), the
 * series' tail below 2^-26 there. log1pf(__expf(x)) was 34 instructions of
 * the real forward's ~150 a step, with a branch; this is about 16. Worst
 * relative error against log1p(exp(x)) in double, swept in fp32 on the CPU
 * (bench/softplus_check.c, a model of this code: keep the two alike):
 * 4.2e-7 on [-5, 40], 1.0e-6 on [-20, 40] (log1pf(__expf(x)): 3.3e-7 and
 * 9.8e-7); both are dominated by x * log2(e) rounded to float. */
__device__ __forceinline__ float scan_softplus(float x)
{
    const float y = scan_exp2(-fabsf(x) * SCAN_LOG2E);
    const float s = __fdividef(y, 2.f + y), s2 = s * s;
    float p = 1.f / 15;
    p = fmaf(p, s2, 1.f / 13);
    p = fmaf(p, s2, 1.f / 11);
    p = fmaf(p, s2, 1.f / 9);
    p = fmaf(p, s2, 1.f / 7);
    p = fmaf(p, s2, 1.f / 5);
    p = fmaf(p, s2, 1.f / 3);
    const float t = s + s;
    return fmaxf(x, 0.f) + fmaf(t * s2, p, t);
}
/* 1 / (1 + e^-x) by the SFU's reciprocal (2 ulp), not an IEEE division:
 * relative error 3.1e-7 on [-5, 40] (the same sweep) */
__device__ __forceinline__ float scan_sigmoid(float x) { return __fdividef(1.f, 1.f + scan_exp2(-x * SCAN_LOG2E)); }

/* One channel's inputs at one step, fetched a step ahead so that their
 * latency overlaps the previous step's work. v is delta + bias (before the
 * softplus); dy only where asked. */
struct scan_in {
    float x, v, z, dy;
};
template <typename T>
__device__ __forceinline__ scan_in scan_fetch(const scan_args &a, size_t row, int d, float bias, bool want_dy)
{
    scan_in r;
    r.x = scan_ld<typename scan_stored<T>::type>(a.u, row * a.ld_u + d);
    r.v = scan_ld<T>(a.delta, row * a.ld_delta + d) + bias;
    r.z = a.z ? scan_ld<T>(a.z, row * a.ld_z + d) : 0.f;
    r.dy = want_dy ? scan_ld<T>(a.dy, row * a.D + d) : 0.f;
    return r;
}
/* A forward walk's inputs, real A: where the row starts, as pointers moved
 * a row at a time; a thread reads its channel d of them. The row is the
 * same for every thread of a block, so these live in uniform registers.
 * Recomputing (row * ld + d) in 64 bits for each array at each step, the
 * fetch ahead clamped to the chunk by a min that no strength reduction sees
 * through, was 22 of the real forward's ~150 instructions a step (SASS,
 * session 33). The backward and complex A keep scan_fetch by row: through
 * the cursor their forward + backward measured 2-4% slower (H100, session
 * 36). z is NULL where absent. */
template <typename T> struct scan_cur {
    const T *u, *v, *z;
};
template <typename T> __device__ __forceinline__ scan_cur<T> scan_cur_at(const scan_args &a, size_t row)
{
    scan_cur<T> c;
    c.u = static_cast<const T *>(a.u) + row * a.ld_u;
    c.v = static_cast<const T *>(a.delta) + row * a.ld_delta;
    c.z = a.z ? static_cast<const T *>(a.z) + row * a.ld_z : NULL;
    return c;
}
/* the inputs at the cursor */
template <typename T> __device__ __forceinline__ scan_in scan_fetch_cur(const scan_args &a, const scan_cur<T> &c, int d, float bias)
{
    scan_in r;
    r.x = scan_ld<typename scan_stored<T>::type>(c.u, d);
    r.v = scan_ld<T>(c.v, d) + bias;
    r.z = a.z ? scan_ld<T>(c.z, d) : 0.f;
    r.dy = 0.f;
    return r;
}
/* the next row's inputs in a walk from row0 + t0 to row0 + t1 - 1, the
 * fetch ahead clamped to the last: real A moves the cursor pc on (the test
 * is on a kernel argument, uniform), complex A fetches the row */
template <bool CPLX, typename T>
__device__ __forceinline__ scan_in scan_fetch_next(const scan_args &a, scan_cur<T> &pc, size_t row0, int t, int t1,
                                                   int d, float bias)
{
    if constexpr (CPLX) return scan_fetch<T>(a, row0 + min(t + 1, t1 - 1), d, bias, false);
    if (t + 1 < t1) {
        pc.u += a.ld_u;
        pc.v += a.ld_delta;
        if (a.z) pc.z += a.ld_z;
    }
    return scan_fetch_cur<T>(a, pc, d, bias);
}
__device__ __forceinline__ float scan_dt(const scan_args &a, float v) { return a.softplus ? scan_softplus(v) : v; }

/* decay factor of one state: a = exp(dt A) (complex: times e^{i dt Ai});
 * A2 is A log2(e), Aim is Ai / (2 pi): the angle in whole turns. The
 * nearest whole turn k comes off exactly (t - k is exact in fp32), and the
 * rest, within half a turn, goes to the SFU's sine and cosine (MUFU:
 * absolute error about 2^-21.4 on [-pi, pi], CUDA's __sinf/__cosf bounds).
 * k is rounded by adding and taking off 1.5 * 2^23 (exact for |t| < 2^22,
 * and past that t - k is still a whole number of turns or a half): two
 * adds on the FMA pipe, where rintf and the parity of half turns, before,
 * cost an FRND and an F2I a state and step on the XU, the pipe the complex
 * kernels are bound by (76-80% busy, session 33's profile). sincospif,
 * before that, spent some 25 FMA-pipe instructions on its polynomials. */
#define SCAN_ROUND_MAGIC 12582912.f /* 1.5 * 2^23 */
template <bool CPLX>
__device__ __forceinline__ void scan_decay(float dt, float A2, float Aim, float *ar, float *ai)
{
    const float mag = scan_exp2(dt * A2);
    if (CPLX) {
        const float t = dt * Aim, k = __fsub_rn(__fadd_rn(t, SCAN_ROUND_MAGIC), SCAN_ROUND_MAGIC);
        float s, c;
        __sincosf((t - k) * SCAN_2PI, &s, &c);
        *ar = mag * c;
        *ai = mag * s;
    } else {
        *ar = mag;
        *ai = 0.f;
    }
}

/* a row of HS floats (shared memory, or a 16-byte aligned row of device
 * memory) into registers: 16-byte loads when the row is a whole number of
 * float4 */
template <int HS>
__device__ __forceinline__ void scan_row(const float *src, float *dst)
{
    if (HS % 4 == 0 && HS <= 16) {
#pragma unroll
        for (int j = 0; j < HS / 4; j++) {
            const float4 v = reinterpret_cast<const float4 *>(src)[j];
            dst[4 * j] = v.x, dst[4 * j + 1] = v.y, dst[4 * j + 2] = v.z, dst[4 * j + 3] = v.w;
        }
    } else {
#pragma unroll
        for (int k = 0; k < HS; k++) dst[k] = src[k];
    }
}

/* the same the other way, registers to a 16-byte aligned row. A thread's
 * state in device memory (the backward's per-chunk states and adjoints)
 * is a row of its own, rows 64 bytes apart along a warp: element by
 * element every store touched 32 sectors, four times the requests of
 * 16-byte stores. The locals kernel's outputs were more L2 requests than
 * its inputs: 16-byte rows made it 31% faster (H100, session 41) */
template <int HS>
__device__ __forceinline__ void scan_row_put(float *dst, const float *src)
{
    if (HS % 4 == 0 && HS <= 16) {
#pragma unroll
        for (int j = 0; j < HS / 4; j++)
            reinterpret_cast<float4 *>(dst)[j] =
                make_float4(src[4 * j], src[4 * j + 1], src[4 * j + 2], src[4 * j + 3]);
    } else {
#pragma unroll
        for (int k = 0; k < HS; k++) dst[k] = src[k];
    }
}

/* h <- a h + dt x B_t for all states; returns C_t . h (complex: 2 Re). */
template <int NS, bool CPLX>
__device__ __forceinline__ float scan_step(int N, float dt, float x, const float *Bs, const float *Cs,
                                           const float *A2, const float *Aim, float *h, int want_y)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    float Bt[HS], Ct[HS];
    scan_row<HS>(Bs, Bt);
    if (want_y) scan_row<HS>(Cs, Ct);
    float acc = 0.f, dtx = dt * x;
#pragma unroll
    for (int n = 0; n < NS; n++) {
        if (n < N) {
            float ar, ai;
            scan_decay<CPLX>(dt, A2[n], CPLX ? Aim[n] : 0.f, &ar, &ai);
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

/* A2 = A log2(e) (the exp2 argument), Aim = the imaginary part / (2 pi)
 * (the rotation's argument in turns; scan_decay), of states n0 .. n0 + N - 1
 * of channel d's NF */
template <int NS, bool CPLX>
__device__ __forceinline__ void scan_load_A_part(const scan_args &a, int d, int n0, int N, int NF, float *A2,
                                                 float *Aim)
{
    const float *Ar = a.A + (size_t)d * NF + n0, *Ai = CPLX ? a.Ai + (size_t)d * NF + n0 : NULL;
#pragma unroll
    for (int n = 0; n < NS; n++) {
        A2[n] = n < N ? Ar[n] * SCAN_LOG2E : 0.f;
        Aim[n] = (CPLX && n < N) ? Ai[n] * SCAN_INV_2PI : 0.f;
    }
}
/* all of channel d's states */
template <int NS, bool CPLX>
__device__ __forceinline__ void scan_load_A(const scan_args &a, int d, float *A2, float *Aim)
{
    scan_load_A_part<NS, CPLX>(a, d, 0, scan_n<NS>(a), scan_n<NS>(a), A2, Aim);
}

/* The backward's states n0 .. n0 + NT - 1 of channel d as scan_load_A_part
 * loads them, where its walks read them: in registers (A2r, Aimr), or with
 * SA in the thread's row of NT + 1 floats of sA2 / sAi (shared memory: a
 * warp's reads of one state fall in 32 banks), which frees the registers
 * for more blocks an SM or no spill (scan_bwd_chunk). *A2 / *Aim point at
 * the one in use. */
template <int NT, bool CPLX, bool SA>
__device__ __forceinline__ void scan_load_A_held(const scan_args &a, int d, int n0, int N, int NF, float *sA2,
                                                 float *sAi, float *A2r, float *Aimr, const float **A2,
                                                 const float **Aim)
{
    scan_load_A_part<NT, CPLX>(a, d, n0, N, NF, A2r, Aimr);
    if constexpr (SA)
#pragma unroll
        for (int n = 0; n < NT; n++) {
            sA2[threadIdx.x * (NT + 1) + n] = A2r[n];
            if (CPLX) sAi[threadIdx.x * (NT + 1) + n] = Aimr[n];
        }
    *A2 = SA ? sA2 + threadIdx.x * (NT + 1) : A2r;
    *Aim = SA && CPLX ? sAi + threadIdx.x * (NT + 1) : Aimr;
}

/* B and C rows of SCAN_TILE steps, staged in shared memory by the whole
 * block: one coalesced load instead of 2N uniform loads per thread and step
 * (those loads kept the load/store pipe the busiest unit). Row s holds B at
 * [0, sf) and C at [HS, HS + sf). All threads of the block must call it. */
template <int NS, bool CPLX, typename T>
__device__ __forceinline__ void scan_load_tile(const scan_args &a, int b, int tt, int nt, float *sbc)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    const int sf = CPLX ? 2 * scan_n<NS>(a) : scan_n<NS>(a);
    __syncthreads(); /* the previous tile is consumed */
    for (int i = threadIdx.x; i < nt * sf; i += blockDim.x) {
        const int s = i / sf, k = i - s * sf;
        const size_t row = (size_t)b * a.L + tt + s;
        sbc[s * 2 * HS + k] = scan_ldg<T>(a.Bm, row * a.ld_B + k);
        sbc[s * 2 * HS + HS + k] = scan_ldg<T>(a.Cm, row * a.ld_C + k);
    }
    __syncthreads();
}

/* which (b, chunk, channel) a thread owns: blocks run across D fastest, so
 * the blocks sharing a tile of B and C are neighbours in time */
struct scan_pos {
    int b, c, d;
    bool live; /* d < D; the others still help stage tiles and shuffle */
};
/* SP threads a channel (scan_bwd_chunk's split): a block of SP *
 * SCAN_THREADS threads still covers SCAN_THREADS channels; with SP 2 a warp
 * takes 16 channels, lane and lane ^ 16 sharing one */
template <int SP = 1>
__device__ __forceinline__ scan_pos scan_where(const scan_args &a)
{
    scan_pos q;
    const int db = blockIdx.x % a.dblk;
    q.c = blockIdx.x / a.dblk;
    q.b = blockIdx.y;
    const int t = threadIdx.x;
    const int d0 = db * SCAN_THREADS + (SP == 2 ? (t >> 5) * 16 + (t & 15) : t);
    q.live = d0 < a.D;
    q.d = q.live ? d0 : a.D - 1;
    return q;
}

/* ---- forward ------------------------------------------------------------ */

/* chunk end state from zero, and sum(dt). Real A, d_state 16: 8 blocks an
 * SM pinned (the cursor's walk let ptxas take more registers); otherwise no
 * bound (0), where complex A takes 94 registers: a bound of 1 let it take
 * 152, one of 5 spilled */
template <int NS, bool CPLX, typename T>
__global__ void __launch_bounds__(SCAN_THREADS, NS == 16 && !CPLX ? 8 : 0)
scan_fwd_local(scan_args a, float *hloc, float *ssum)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HS];
    const scan_pos q = scan_where(a);
    const int N = scan_n<NS>(a), sf = CPLX ? 2 * N : N, d = q.d;
    float A2[NS], Aim[NS], h[HS];
    scan_load_A<NS, CPLX>(a, d, A2, Aim);
#pragma unroll
    for (int k = 0; k < HS; k++) h[k] = 0.f;
    const float bias = a.bias ? a.bias[d] : 0.f;
    const int t0 = q.c * a.T, t1 = min(a.L, t0 + a.T);
    float S = 0.f;
    const size_t row0 = (size_t)q.b * a.L;
    scan_cur<T> pc = scan_cur_at<T>(a, row0 + t0);
    scan_in cur = scan_fetch_cur<T>(a, pc, d, bias);
    for (int t = t0; t < t1; t++) {
        const int s = (t - t0) & (SCAN_TILE - 1); /* chunks start on tile boundaries */
        if (s == 0) scan_load_tile<NS, CPLX, T>(a, q.b, t, min(SCAN_TILE, t1 - t), sbc);
        const scan_in nx = scan_fetch_next<CPLX, T>(a, pc, row0, t, t1, d, bias);
        const float dt = scan_dt(a, cur.v);
        S += dt;
        scan_step<NS, CPLX>(N, dt, cur.x, sbc + s * 2 * HS, sbc + s * 2 * HS + HS, A2, Aim, h, 0);
        cur = nx;
    }
    if (!q.live) return;
    const size_t o = ((size_t)q.b * a.nc + q.c) * a.D + d;
    ssum[o] = S;
#pragma unroll
    for (int k = 0; k < HS; k++)
        if (k < sf) hloc[o * sf + k] = h[k];
}

/* Sequential over chunks. Forward: replaces each chunk's local end state
 * with the true state entering the chunk, H <- Q H + local (Q = exp(A sum
 * dt), the chunk's decay, exactly the product of its steps), from h0.
 * Reverse: replaces each chunk's local adjoint with the true adjoint
 * reaching its last state from the right, E <- local + conj(Q) E, from dhT.
 * The backward needs both; one launch walks both (lf forward, lr reverse:
 * two independent chains a thread, the sums of dt read once).
 *
 * A thread owns V consecutive floats of a channel's state (V 4: four real
 * states or two complex; a warp then reads 512 contiguous bytes a chunk)
 * and walks its chunks through pointers moved a chunk's stride at a time,
 * SCAN_CARRY_BATCH chunks' loads issued before the dependent chain uses
 * them. (The first version, a state a thread and 64-bit offsets computed
 * per load, a launch a direction, read and wrote at a third of the
 * device's bandwidth: 7 ms of the DNA model's 142 ms step at 2^17, H100,
 * session 41.)
 *
 * Long carries (2^15 chunks at L = 2^20) are split in groups of gs chunks:
 * SUMMARY walks a group from zero and leaves its composite (and its sum of
 * dt, so Q of a group is exp(A S) too) in gf/gr and gsum; a plain carry
 * over the groups turns those into the true values entering each group;
 * APPLY walks each group again from there, writing back. MODE 0 is the
 * one-level carry. */
#define SCAN_CARRY_BATCH 8
enum { SCAN_CARRY_FULL = 0, SCAN_CARRY_SUMMARY = 1, SCAN_CARRY_APPLY = 2 };

/* H <- Q H + l over the V floats (REV: conj(Q)); A2 / Aim per state */
template <bool CPLX, bool REV, int V>
__device__ __forceinline__ void scan_carry_step(float *H, float s, const float *l, const float *A2, const float *Aim)
{
    constexpr int NS = CPLX ? V / 2 : V;
#pragma unroll
    for (int k = 0; k < NS; k++) {
        float qr, qi;
        scan_decay<CPLX>(s, A2[k], Aim[k], &qr, &qi);
        if (CPLX) {
            if (REV) qi = -qi;
            const float hr = H[2 * k], hi = H[2 * k + 1];
            H[2 * k] = qr * hr - qi * hi + l[2 * k];
            H[2 * k + 1] = qr * hi + qi * hr + l[2 * k + 1];
        } else {
            H[k] = qr * H[k] + l[k];
        }
    }
}

/* One thread per (b, d, V floats of the state, group). lf: the forward
 * carry's values (states), lr the reverse's (adjoints) or NULL (BOTH
 * false); gf, gr: the groups' composites (SUMMARY out, APPLY in); ssum
 * per chunk, gsum per group (SUMMARY out). */
template <bool CPLX, bool BOTH, int MODE, int V>
__global__ void __launch_bounds__(256) scan_carry(scan_args a, float *lf, float *lr, const float *ssum, float *gf,
                                                  float *gr, float *gsum, int gs)
{
    constexpr int NS = CPLX ? V / 2 : V; /* states a thread */
    const int ng = MODE == SCAN_CARRY_FULL ? 1 : (a.nc + gs - 1) / gs;
    const int sf = CPLX ? 2 * a.N : a.N, sv = sf / V;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, lanes = (int64_t)a.D * sv;
    if (i >= (int64_t)a.B * lanes * ng) return;
    const int q = (int)(i % sv), d = (int)((i / sv) % a.D);
    const int64_t bg = i / lanes;
    const int g = (int)(bg % ng), b = (int)(bg / ng);
    float A2[NS], Aim[NS];
#pragma unroll
    for (int k = 0; k < NS; k++) {
        const size_t an = (size_t)d * a.N + q * NS + k;
        A2[k] = a.A[an] * SCAN_LOG2E;
        Aim[k] = CPLX ? a.Ai[an] * SCAN_INV_2PI : 0.f;
    }
    const int c0 = MODE == SCAN_CARRY_FULL ? 0 : g * gs;
    const int cnt = MODE == SCAN_CARRY_FULL ? a.nc : min(gs, a.nc - c0);
    /* chunk c of this group at pf + c * stride (floats), its sum of dt at ps + c * a.D */
    const size_t row = ((size_t)b * a.nc + c0) * a.D + d;
    const int64_t stride = (int64_t)a.D * sf;
    float *pf = lf + row * sf + q * V, *pr = BOTH ? lr + row * sf + q * V : NULL;
    const float *ps = ssum + row;
    float Hf[V], Hr[V];
#pragma unroll
    for (int k = 0; k < V; k++) Hf[k] = Hr[k] = 0.f;
    const size_t go = ((size_t)b * ng + g) * a.D + d; /* this group's composite */
    if (MODE == SCAN_CARRY_FULL) {
        /* the caller's h0 and dhT: element loads (no alignment assumed) */
        const size_t o = ((size_t)b * a.D + d) * sf + q * V;
#pragma unroll
        for (int k = 0; k < V; k++) {
            if (a.h0) Hf[k] = a.h0[o + k];
            if (BOTH && a.dhT) Hr[k] = a.dhT[o + k];
        }
    } else if (MODE == SCAN_CARRY_APPLY) {
        scan_row<V>(gf + go * sf + q * V, Hf);
        if (BOTH) scan_row<V>(gr + go * sf + q * V, Hr);
    }
    float S = 0.f;
    for (int j0 = 0; j0 < cnt; j0 += SCAN_CARRY_BATCH) {
        float vf[SCAN_CARRY_BATCH][V], vr[SCAN_CARRY_BATCH][V];
        float sf_[SCAN_CARRY_BATCH], sr_[SCAN_CARRY_BATCH];
#pragma unroll
        for (int u = 0; u < SCAN_CARRY_BATCH; u++) {
            const int j = min(j0 + u, cnt - 1); /* past the end: re-read, unused */
            scan_row<V>(pf + j * stride, vf[u]);
            sf_[u] = ps[(int64_t)j * a.D];
            if (BOTH) {
                scan_row<V>(pr + (cnt - 1 - j) * stride, vr[u]);
                sr_[u] = ps[(int64_t)(cnt - 1 - j) * a.D];
            }
        }
#pragma unroll
        for (int u = 0; u < SCAN_CARRY_BATCH; u++) {
            if (j0 + u >= cnt) break;
            const int j = j0 + u;
            if (MODE != SCAN_CARRY_SUMMARY) {
                scan_row_put<V>(pf + j * stride, Hf);
                if (BOTH) scan_row_put<V>(pr + (cnt - 1 - j) * stride, Hr);
            }
            S += sf_[u];
            scan_carry_step<CPLX, false, V>(Hf, sf_[u], vf[u], A2, Aim);
            if (BOTH) scan_carry_step<CPLX, true, V>(Hr, sr_[u], vr[u], A2, Aim);
        }
    }
    if (MODE == SCAN_CARRY_SUMMARY) {
        scan_row_put<V>(gf + go * sf + q * V, Hf);
        if (BOTH) scan_row_put<V>(gr + go * sf + q * V, Hr);
        if (q == 0) gsum[go] = S;
    }
}

/* y over one chunk from its entering state (hstart, or h0 / zeros when
 * there is a single chunk); the last chunk writes hT. */
template <int NS, bool CPLX, typename T>
__global__ void __launch_bounds__(SCAN_THREADS, NS == 16 ? (CPLX ? 5 : 8) : 1)
scan_fwd_out(scan_args a, const float *hstart, void *y, float *hT)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HS];
    const scan_pos q = scan_where(a);
    const int N = scan_n<NS>(a), sf = CPLX ? 2 * N : N, d = q.d;
    float A2[NS], Aim[NS], h[HS];
    scan_load_A<NS, CPLX>(a, d, A2, Aim);
    const float *src = hstart ? hstart + (((size_t)q.b * a.nc + q.c) * a.D + d) * sf
                              : (a.h0 ? a.h0 + ((size_t)q.b * a.D + d) * sf : NULL);
#pragma unroll
    for (int k = 0; k < HS; k++) h[k] = (src && k < sf) ? src[k] : 0.f;
    const float bias = a.bias ? a.bias[d] : 0.f, Dd = a.Dsk ? a.Dsk[d] : 0.f;
    const int t0 = q.c * a.T, t1 = min(a.L, t0 + a.T);
    const size_t row0 = (size_t)q.b * a.L;
    scan_cur<T> pc = scan_cur_at<T>(a, row0 + t0);
    scan_in cur = scan_fetch_cur<T>(a, pc, d, bias);
    T *py = static_cast<T *>(y) + (row0 + t0) * a.D; /* the row, moved a step at a time as pc */
    for (int t = t0; t < t1; t++) {
        const int s = (t - t0) & (SCAN_TILE - 1);
        if (s == 0) scan_load_tile<NS, CPLX, T>(a, q.b, t, min(SCAN_TILE, t1 - t), sbc);
        const scan_in nx = scan_fetch_next<CPLX, T>(a, pc, row0, t, t1, d, bias);
        const float dt = scan_dt(a, cur.v);
        float out = scan_step<NS, CPLX>(N, dt, cur.x, sbc + s * 2 * HS, sbc + s * 2 * HS + HS, A2, Aim, h, 1);
        out += Dd * cur.x;
        if (a.z) out *= cur.z * scan_sigmoid(cur.z);
        if (q.live) scan_st<T>(py, d, out, a.r16);
        py += a.D;
        cur = nx;
    }
    if (q.live && hT && q.c == a.nc - 1)
#pragma unroll
        for (int k = 0; k < HS; k++)
            if (k < sf) hT[((size_t)q.b * a.D + d) * sf + k] = h[k];
}

/* One step (L = 1) from h0: generation's recurrent step at many rows. A
 * half warp a channel and a lane a state (n, n + 16, ...), so that the
 * states are read and written as whole rows: scan_fwd_out gives a thread a
 * channel and all its states, whose loads at L = 1 touch a cache line per
 * lane and state (28 us for 64 rows of 1536 channels, session 32). The
 * lanes' products with C are summed by shuffles. hT may alias h0: each
 * lane reads its states before it writes them. */
#define SCAN_ONE_THREADS 256
template <bool CPLX, typename T>
__global__ void __launch_bounds__(SCAN_ONE_THREADS) scan_fwd_one(scan_args a, void *y, float *hT)
{
    const int64_t ch = ((int64_t)blockIdx.x * SCAN_ONE_THREADS + threadIdx.x) >> 4;
    const int s = threadIdx.x & 15;
    /* lanes past the last channel compute channel 0 and store nothing: the
     * shuffles need every lane */
    const bool live = ch < (int64_t)a.B * a.D;
    const int64_t c = live ? ch : 0;
    const int b = (int)(c / a.D), d = (int)(c % a.D), N = a.N, sf = CPLX ? 2 * N : N;
    const float bias = a.bias ? a.bias[d] : 0.f;
    const scan_in in = scan_fetch<T>(a, (size_t)b, d, bias, false);
    const float dt = scan_dt(a, in.v), dtx = dt * in.x;
    const float *h0 = a.h0 ? a.h0 + c * sf : NULL;
    float *h1 = hT && live ? hT + c * sf : NULL;
    float acc = 0.f;
    for (int n = s; n < N; n += 16) {
        const float A2 = a.A[(size_t)d * N + n] * SCAN_LOG2E;
        const float Aim = CPLX ? a.Ai[(size_t)d * N + n] * SCAN_INV_2PI : 0.f;
        float ar, ai;
        scan_decay<CPLX>(dt, A2, Aim, &ar, &ai);
        if (CPLX) {
            const float hr = h0 ? h0[2 * n] : 0.f, hi = h0 ? h0[2 * n + 1] : 0.f;
            const float Br = scan_ldg<T>(a.Bm, (size_t)b * a.ld_B + 2 * n);
            const float Bi = scan_ldg<T>(a.Bm, (size_t)b * a.ld_B + 2 * n + 1);
            const float Cr = scan_ldg<T>(a.Cm, (size_t)b * a.ld_C + 2 * n);
            const float Ci = scan_ldg<T>(a.Cm, (size_t)b * a.ld_C + 2 * n + 1);
            const float nr = ar * hr - ai * hi + dtx * Br;
            const float ni = ar * hi + ai * hr + dtx * Bi;
            acc += Cr * nr - Ci * ni;
            if (h1) h1[2 * n] = nr, h1[2 * n + 1] = ni;
        } else {
            const float h = h0 ? h0[n] : 0.f;
            const float nh = ar * h + dtx * scan_ldg<T>(a.Bm, (size_t)b * a.ld_B + n);
            acc += scan_ldg<T>(a.Cm, (size_t)b * a.ld_C + n) * nh;
            if (h1) h1[n] = nh;
        }
    }
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if (s || !live) return;
    float out = CPLX ? 2.f * acc : acc;
    if (a.Dsk) out += a.Dsk[d] * in.x;
    if (a.z) out *= in.z * scan_sigmoid(in.z);
    scan_st<T>(y, (size_t)b * a.D + d, out, a.r16);
}

/* The same for d_state 16, a quarter warp a channel and four states a lane
 * (n = q, q + 4, q + 8, q + 12): a quarter of the threads, and every load a
 * lane makes (its channel's inputs, A, the states, B and C) issued before
 * any is used, so that a wave of blocks waits for memory once. The kernel
 * above, with a lane a state and its loads behind the softplus, took 20 us
 * for 64 rows of 1536 channels, in six waves of latency. */
template <bool CPLX, typename T>
__global__ void __launch_bounds__(SCAN_ONE_THREADS) scan_fwd_one16(scan_args a, void *y, float *hT)
{
    constexpr int NS = 16, PL = 4, HS = CPLX ? 2 * NS : NS;
    const int64_t ch = ((int64_t)blockIdx.x * SCAN_ONE_THREADS + threadIdx.x) >> 2;
    const int q = threadIdx.x & 3;
    const bool live = ch < (int64_t)a.B * a.D;
    const int64_t c = live ? ch : 0;
    const int b = (int)(c / a.D), d = (int)(c % a.D);
    const float bias = a.bias ? a.bias[d] : 0.f, Dd = a.Dsk ? a.Dsk[d] : 0.f;
    const scan_in in = scan_fetch<T>(a, (size_t)b, d, bias, false);
    const float *h0 = a.h0 ? a.h0 + c * HS : NULL;
    float A2[PL], Aim[PL], hr[PL], hi[PL], Br[PL], Bi[PL], Cr[PL], Ci[PL];
#pragma unroll
    for (int i = 0; i < PL; i++) {
        const int n = q + PL * i;
        A2[i] = a.A[(size_t)d * NS + n] * SCAN_LOG2E;
        Aim[i] = CPLX ? a.Ai[(size_t)d * NS + n] * SCAN_INV_2PI : 0.f;
        const int k = CPLX ? 2 * n : n;
        hr[i] = h0 ? h0[k] : 0.f;
        hi[i] = CPLX && h0 ? h0[k + 1] : 0.f;
        Br[i] = scan_ldg<T>(a.Bm, (size_t)b * a.ld_B + k);
        Cr[i] = scan_ldg<T>(a.Cm, (size_t)b * a.ld_C + k);
        Bi[i] = CPLX ? scan_ldg<T>(a.Bm, (size_t)b * a.ld_B + k + 1) : 0.f;
        Ci[i] = CPLX ? scan_ldg<T>(a.Cm, (size_t)b * a.ld_C + k + 1) : 0.f;
    }
    const float dt = scan_dt(a, in.v), dtx = dt * in.x;
    float *h1 = hT && live ? hT + c * HS : NULL;
    float acc = 0.f;
#pragma unroll
    for (int i = 0; i < PL; i++) {
        const int n = q + PL * i;
        float ar, ai;
        scan_decay<CPLX>(dt, A2[i], Aim[i], &ar, &ai);
        if (CPLX) {
            const float nr = ar * hr[i] - ai * hi[i] + dtx * Br[i];
            const float ni = ar * hi[i] + ai * hr[i] + dtx * Bi[i];
            acc += Cr[i] * nr - Ci[i] * ni;
            if (h1) h1[2 * n] = nr, h1[2 * n + 1] = ni;
        } else {
            const float nh = ar * hr[i] + dtx * Br[i];
            acc += Cr[i] * nh;
            if (h1) h1[n] = nh;
        }
    }
    acc += __shfl_xor_sync(0xffffffffu, acc, 2);
    acc += __shfl_xor_sync(0xffffffffu, acc, 1);
    if (q || !live) return;
    float out = CPLX ? 2.f * acc : acc;
    out += Dd * in.x;
    if (a.z) out *= in.z * scan_sigmoid(in.z);
    scan_st<T>(y, (size_t)b * a.D + d, out, a.r16);
}

/* ---- backward ----------------------------------------------------------- */

/* gradient of y w.r.t. the scan output before the gate, and dz */
template <typename T>
__device__ __forceinline__ float scan_gate_bwd(const scan_args &a, size_t row, int d, float dyv, float zv,
                                               float yfull, int write_dz)
{
    if (!a.z) return dyv;
    const float sg = scan_sigmoid(zv);
    if (write_dz) {
        const float g = dyv * yfull * sg * (1.f + zv * (1.f - sg));
        scan_st<T>(a.dz, row * a.ld_dz + d, g, a.r16);
    }
    return dyv * zv * sg;
}

/* Per chunk, in one forward walk: the end state from a zero state, sum(dt),
 * and the adjoint leaving the chunk at its start from a zero adjoint at its
 * end. That adjoint obeys G_{t-1} = conj(a_t) (G_t + c_t), c_t the y path
 * (C_t dyf_t; complex 2 conj(C_t) dyf_t), so from zero it is
 * sum_t conj(P_t) c_t with P_t = a_t0 ... a_t: computable forward, with the
 * same decays as the states. The gate needs only dy and z, not y.
 *
 * SP threads a channel (SCAN_BWD_SP, as scan_bwd_chunk), each NS / SP of its
 * states: nothing here sums over states, so the parts never meet; each
 * computes the channel's dt and gate itself. */
template <int NS, bool CPLX, typename T, int SP>
__global__ void __launch_bounds__(SCAN_THREADS * SP, SP == 2 ? 2 : (NS == 16 ? 5 : 1))
scan_bwd_locals(scan_args a, float *hloc, float *ssum, float *gloc)
{
    constexpr int NT = NS / SP, HS = CPLX ? 2 * NT : NT, HSF = SP * HS;
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HSF];
    const scan_pos q = scan_where<SP>(a);
    const int part = SP == 2 ? (threadIdx.x & 31) >> 4 : 0;
    const int NF = scan_n<NS>(a), N = SP == 2 ? NT : NF, sf = CPLX ? 2 * N : N, d = q.d;
    const int sff = CPLX ? 2 * NF : NF, k0 = part * HS;
    /* SA (complex A split over two threads): A and its rates from shared
     * memory, as in scan_bwd_chunk (complex f+b level to 3% faster; real A
     * that way, at 6 blocks an SM, was 1.5-2% slower: session 44) */
    constexpr bool SA = CPLX && NT == 8 && SP == 2;
    constexpr int SAN = SA ? SCAN_THREADS * SP * (NT + 1) : 1;
    __shared__ float sA2[SAN], sAi[CPLX ? SAN : 1];
    float A2r[NT], Aimr[NT], h[HS], P[HS], G[HS];
    const float *A2, *Aim;
    scan_load_A_held<NT, CPLX, SA>(a, d, part * NT, N, NF, sA2, sAi, A2r, Aimr, &A2, &Aim);
#pragma unroll
    for (int k = 0; k < HS; k++) {
        h[k] = G[k] = 0.f;
        P[k] = (!CPLX || k % 2 == 0) ? 1.f : 0.f;
    }
    const float bias = a.bias ? a.bias[d] : 0.f;
    const int t0 = q.c * a.T, t1 = min(a.L, t0 + a.T);
    float S = 0.f;
    const size_t row0 = (size_t)q.b * a.L;
    scan_in cur = scan_fetch<T>(a, row0 + t0, d, bias, true);
    for (int t = t0; t < t1; t++) {
        const int s = (t - t0) & (SCAN_TILE - 1);
        if (s == 0) scan_load_tile<NS, CPLX, T>(a, q.b, t, min(SCAN_TILE, t1 - t), sbc);
        const scan_in nx = scan_fetch<T>(a, row0 + min(t + 1, t1 - 1), d, bias, true);
        {
            const float dt = scan_dt(a, cur.v), dtx = dt * cur.x;
            const float dyf = scan_gate_bwd<T>(a, row0 + t, d, cur.dy, cur.z, 0.f, 0);
            S += dt;
            float Bt[HS], Ct[HS];
            scan_row<HS>(sbc + s * 2 * HSF + k0, Bt);
            scan_row<HS>(sbc + s * 2 * HSF + HSF + k0, Ct);
#pragma unroll
            for (int n = 0; n < NT; n++) {
                if (n < N) {
                    float ar, ai;
                    scan_decay<CPLX>(dt, A2[n], Aim[n], &ar, &ai);
                    if (CPLX) {
                        const float hr = h[2 * n], hi = h[2 * n + 1];
                        h[2 * n] = ar * hr - ai * hi + dtx * Bt[2 * n];
                        h[2 * n + 1] = ar * hi + ai * hr + dtx * Bt[2 * n + 1];
                        /* P <- P conj(a): conj(P_t), kept directly */
                        const float pr = P[2 * n], pi = P[2 * n + 1];
                        const float npr = pr * ar + pi * ai, npi = pi * ar - pr * ai;
                        P[2 * n] = npr;
                        P[2 * n + 1] = npi;
                        const float cr = 2.f * dyf * Ct[2 * n], ci = -2.f * dyf * Ct[2 * n + 1];
                        G[2 * n] += npr * cr - npi * ci;
                        G[2 * n + 1] += npr * ci + npi * cr;
                    } else {
                        h[n] = ar * h[n] + dtx * Bt[n];
                        P[n] *= ar;
                        G[n] += P[n] * (dyf * Ct[n]);
                    }
                }
            }
        }
        cur = nx;
    }
    if (!q.live) return;
    const size_t o = ((size_t)q.b * a.nc + q.c) * a.D + d;
    if (part == 0) ssum[o] = S;
    if constexpr (NS == 16) { /* HS == sf, rows 16-byte aligned (workspace) */
        scan_row_put<HS>(hloc + o * sff + k0, h);
        scan_row_put<HS>(gloc + o * sff + k0, G);
    } else {
#pragma unroll
        for (int k = 0; k < HS; k++)
            if (k < sf) {
                hloc[o * sff + k0 + k] = h[k];
                gloc[o * sff + k0 + k] = G[k];
            }
    }
}

/* One step of the walk back, t: h is the state after it, hp before it, G
 * the adjoint after it (updated to the one before it). srow: the step's B
 * row in shared memory, its C row a channel's state (HS * SP floats) after.
 * SP threads share the channel (scan_where<SP>), each NS of its states
 * (its part of the state, the first half's or the second's): their sums
 * over states meet by a shuffle, and the first writes the channel's
 * outputs. */
template <int NS, bool CPLX, typename T, int SP>
__device__ __forceinline__ void scan_bwd_step(const scan_args &a, const float *srow, size_t row, int d, int lane,
                                              bool live, const scan_in &cur, float Dd, const float *A2,
                                              const float *Aim, const float *h, const float *hp,
                                              float *G, float *dA_acc, float *dAi_acc, float &dD_acc,
                                              float &dbias_acc)
{
    constexpr int HS = CPLX ? 2 * NS : NS;
    constexpr int W = 32 / SP;                    /* lanes of the warp's distinct channels */
    constexpr int V = (2 * HS + W - 1) / W * W; /* dB then dC values, padded */
    const int part = SP == 2 ? lane >> 4 : 0;
    const bool lead = live && part == 0;
    const int N = SP == 2 ? NS : scan_n<NS>(a), sf = CPLX ? 2 * N : N;
    float Bt[HS], Ct[HS];
    scan_row<HS>(srow + part * HS, Bt);
    scan_row<HS>(srow + SP * HS + part * HS, Ct);
    const float x = cur.x, pre = cur.v, dt = scan_dt(a, pre);
    const float dtx = dt * x;
    /* ungated output for dz: C . h_t (+ 2 Re), + D x */
    float yfull = 0.f;
#pragma unroll
    for (int n = 0; n < NS; n++)
        if (n < N) {
            if (CPLX) yfull += Ct[2 * n] * h[2 * n] - Ct[2 * n + 1] * h[2 * n + 1];
            else yfull += Ct[n] * h[n];
        }
    if (SP == 2) yfull += __shfl_xor_sync(0xffffffffu, yfull, 16);
    if (CPLX) yfull *= 2.f;
    yfull += Dd * x;
    const float dyv = live ? cur.dy : 0.f;
    const float dyf = scan_gate_bwd<T>(a, row, d, dyv, cur.z, yfull, lead);
    if (a.y && lead) {
        const float yv = a.z ? yfull * (cur.z * scan_sigmoid(cur.z)) : yfull;
        scan_st<T>(a.y, row * a.D + d, yv, a.r16);
    }
    /* ddt = sum_n (dL/da_n) (da_n/ddt) + (sum_n G_n B_n) x; the A part is
     * gathered against A log2(e) and scaled by ln 2 once */
    float ddtA = 0.f, ddtI = 0.f, gb = 0.f;
    dD_acc += dyf * x;
    /* FOLD (real A, 16 states a thread): the reduce-scatter's first level
     * pairs state n's dB value with its dC value, both made in the loop's
     * n-th pass, so the pass takes that level itself and keeps one value,
     * not two (16 floats fewer live at the loop's peak; the same sums in the
     * same order) */
    constexpr bool FOLD = !CPLX && W == 32 && V == 32 && HS == 16;
    const bool upper = (lane & 16) != 0;
    float vals[V];
#pragma unroll
    for (int k = 0; k < V; k++) vals[k] = 0.f;
#pragma unroll
    for (int n = 0; n < NS; n++) {
        if (n < N) {
            float ar, ai;
            scan_decay<CPLX>(dt, A2[n], Aim[n], &ar, &ai);
            if (CPLX) {
                const float hr = h[2 * n], hi = h[2 * n + 1], pr = hp[2 * n], pi = hp[2 * n + 1];
                const float Cr = Ct[2 * n], Ci = Ct[2 * n + 1];
                const float Br = Bt[2 * n], Bi = Bt[2 * n + 1];
                vals[HS + 2 * n] = 2.f * dyf * hr;
                vals[HS + 2 * n + 1] = -2.f * dyf * hi;
                const float Gr = G[2 * n] + 2.f * dyf * Cr, Gi = G[2 * n + 1] - 2.f * dyf * Ci;
                const float gar = Gr * pr + Gi * pi, gai = Gi * pr - Gr * pi;
                const float q1 = gar * ar + gai * ai, q2 = gai * ar - gar * ai;
                ddtA += A2[n] * q1;
                ddtI += Aim[n] * q2;
                dA_acc[n] += dt * q1;
                dAi_acc[n] += dt * q2;
                gb += Gr * Br + Gi * Bi;
                vals[2 * n] = Gr * dtx;
                vals[2 * n + 1] = Gi * dtx;
                G[2 * n] = ar * Gr + ai * Gi;
                G[2 * n + 1] = ar * Gi - ai * Gr;
            } else {
                const float Gn = G[n] + dyf * Ct[n];
                const float qa = Gn * hp[n] * ar;
                ddtA += A2[n] * qa;
                dA_acc[n] += dt * qa;
                gb += Gn * Bt[n];
                G[n] = ar * Gn;
                if constexpr (FOLD) {
                    const float vb = live ? Gn * dtx : 0.f, vc = live ? dyf * h[n] : 0.f;
                    vals[n] = (upper ? vc : vb) + __shfl_xor_sync(0xffffffffu, upper ? vb : vc, 16);
                } else {
                    vals[HS + n] = dyf * h[n];
                    vals[n] = Gn * dtx;
                }
            }
        }
    }
    if (SP == 2) {
        ddtA += __shfl_xor_sync(0xffffffffu, ddtA, 16);
        if (CPLX) ddtI += __shfl_xor_sync(0xffffffffu, ddtI, 16);
        gb += __shfl_xor_sync(0xffffffffu, gb, 16);
    }
    const float dx = dyf * Dd + gb * dt;
    /* the angle's part was gathered against Ai / (2 pi) */
    float ddt = SCAN_LN2 * ddtA + SCAN_2PI * ddtI + gb * x;
    if (a.softplus) ddt *= pre > 20.f ? 1.f : scan_sigmoid(pre);
    dbias_acc += ddt;
    if (lead) {
        scan_st<T>(a.du, row * a.ld_du + d, dx, a.r16);
        scan_st<T>(a.ddelta, row * a.ld_ddelta + d, ddt, a.r16);
    }
    float red[V / W];
    if constexpr (FOLD) {
        mb_warp_rs_level<8>(vals, lane);
        mb_warp_rs_level<4>(vals, lane);
        mb_warp_rs_level<2>(vals, lane);
        mb_warp_rs_level<1>(vals, lane);
        red[0] = vals[0];
    } else {
        if (!live)
#pragma unroll
            for (int k = 0; k < V; k++) vals[k] = 0.f;
        mb_warp_reduce_scatter<V, W>(vals, red, lane);
    }
#pragma unroll
    for (int g = 0; g < V / W; g++) {
        /* value index: dB for j < HS, dC after; of this part's states */
        const int j = W * g + (lane & (W - 1));
        if (j < HS && j < sf) atomicAdd(a.dB + row * a.ld_dB + part * HS + j, red[g]);
        else if (j >= HS && j - HS < sf) atomicAdd(a.dC + row * a.ld_dC + part * HS + (j - HS), red[g]);
    }
}

/* One chunk of at most SCAN_TILE steps: recompute its states from the true
 * entering state (kept per step in hs), then walk them backward from the
 * true adjoint entering from the right.
 *
 * SP threads a channel, each with NS / SP of its states (complex A at
 * d_state 16: SP 2, 8 states a thread, 256 threads a block). One thread a channel held 16
 * states, their adjoints, the step's B and C rows and 64 dB/dC values:
 * complex A took 255 registers and spilled, 2 blocks of 4 warps an SM, and
 * the kernel waited with the issue slots half idle (session 33's profile:
 * issue 46%, XU 35%, the largest kernel of the complex backward). Split, a
 * thread holds half, at the price of four shuffles a step (the sums over
 * states) and, per channel, twice the warps' dB/dC atomics (a warp reduces
 * over its 16 channels, not 32).
 *
 * Real A at d_state 16 runs 4 blocks an SM (127 registers, no spill): A
 * log2(e) read from shared memory (SA) and the dB/dC sum's first level
 * taken in the state loop (FOLD). At 3 blocks (158 registers) the kernel
 * sat at half its issue slots, waiting (session 33's profile), and a bound
 * of 4 alone spilled and lost (session 16). With both, real forward +
 * backward 2-10% faster, the DNA step at 2^20 1.4% (fp32) and 4.5% (bf16)
 * (H100, session 44). */
template <int NS, bool CPLX, typename T, int SP>
__global__ void __launch_bounds__(SCAN_THREADS * SP, SP == 2 ? 2 : (NS == 16 ? 4 : 1))
scan_bwd_chunk(scan_args a, const float *hstart, const float *ein)
{
    constexpr int NT = NS / SP; /* states a thread */
    const scan_pos q = scan_where<SP>(a);
    const int lane = threadIdx.x & 31, part = SP == 2 ? lane >> 4 : 0;
    /* threads past D still walk the chunk with zeros: the warp's
     * reduce-scatter needs all 32 lanes */
    const bool live = q.live;
    const int NF = scan_n<NS>(a), N = SP == 2 ? NT : NF, sf = CPLX ? 2 * N : N, d = q.d, b = q.b;
    constexpr int HS = CPLX ? 2 * NT : NT, HSF = SP * HS; /* a thread's floats of the state, a channel's */
    const int sff = CPLX ? 2 * NF : NF, k0 = part * HS; /* the channel's floats, this thread's first */
    __shared__ __align__(16) float sbc[SCAN_TILE * 2 * HSF];
    /* SA (real A, 16 states a thread; complex A, 8): the thread's A
     * log2(e) (and complex A's rates in turns) read from shared memory
     * where used, not 16 registers held through both walks. Complex A then
     * spills nothing (120 bytes before): f+b level to 3% faster (session 44) */
    constexpr bool SA = (!CPLX && NT == 16 && SP == 1) || (CPLX && NT == 8 && SP == 2);
    constexpr int SAN = SA ? SCAN_THREADS * SP * (NT + 1) : 1;
    __shared__ float sA2[SAN], sAi[CPLX ? SAN : 1];
    float A2r[NT], Aimr[NT];
    const float *A2, *Aim;
    scan_load_A_held<NT, CPLX, SA>(a, d, part * NT, N, NF, sA2, sAi, A2r, Aimr, &A2, &Aim);
    const float bias = a.bias ? a.bias[d] : 0.f, Dd = a.Dsk ? a.Dsk[d] : 0.f;
    const int ta = q.c * a.T, tb = min(a.L, ta + a.T);
    const size_t o = ((size_t)b * a.nc + q.c) * a.D + d;

    /* the state before each step, or with real A before each even step
     * only: the walk back reloads half the local memory (its stalls were
     * the kernel's largest), and an odd step's state is its predecessor's
     * advanced one step, from the inputs the walk has fetched already. (The
     * walk in pairs, an odd step's decays kept for the even step after it,
     * needed 196 registers, 2 blocks an SM: real f+b 8% slower, session 32) */
    constexpr int HSTEP = CPLX ? 1 : 2;
    float hs[SCAN_TILE / HSTEP][HS];
    float h[HS], G[HS];
    const float *src = hstart ? hstart + o * sff : (a.h0 ? a.h0 + ((size_t)b * a.D + d) * sff : NULL);
    /* 16-byte loads from the workspace's rows (scan_row_put), element
     * loads from the caller's h0 */
    if (NS == 16 && hstart) scan_row<HS>(src + k0, h);
    else
#pragma unroll
        for (int k = 0; k < HS; k++) h[k] = (src && k < sf) ? src[k0 + k] : 0.f;
    scan_load_tile<NS, CPLX, T>(a, b, ta, tb - ta, sbc);
    const size_t row0 = (size_t)b * a.L;
    scan_in cur = scan_fetch<T>(a, row0 + ta, d, bias, false);
    for (int t = ta; t < tb; t++) {
        if ((t - ta) % HSTEP == 0)
#pragma unroll
            for (int k = 0; k < HS; k++) hs[(t - ta) / HSTEP][k] = h[k];
        const scan_in nx = scan_fetch<T>(a, row0 + min(t + 1, tb - 1), d, bias, false);
        const float *st = sbc + (t - ta) * 2 * HSF;
        scan_step<NT, CPLX>(N, scan_dt(a, cur.v), cur.x, st + k0, st + HSF + k0, A2, Aim, h, 0);
        cur = nx;
    }
    const float *e = ein ? ein + o * sff : a.dhT ? a.dhT + ((size_t)b * a.D + d) * sff : NULL;
    if (NS == 16 && ein) scan_row<HS>(e + k0, G);
    else
#pragma unroll
        for (int k = 0; k < HS; k++) G[k] = (e && k < sf) ? e[k0 + k] : 0.f;
    float dA_acc[NT], dAi_acc[NT], dD_acc = 0.f, dbias_acc = 0.f;
#pragma unroll
    for (int n = 0; n < NT; n++) dA_acc[n] = dAi_acc[n] = 0.f;

    /* h is now the state after step tb-1 */
    int t = tb - 1;
    cur = scan_fetch<T>(a, row0 + t, d, bias, true);
    /* the stored state is loaded whole before the step uses it: its loads
     * (local memory, often from L2) then overlap, where the step's loop
     * would wait for each in turn (complex A 10% faster f+b) */
    for (; t >= ta; t--) {
        const scan_in nx = scan_fetch<T>(a, row0 + max(t - 1, ta), d, bias, true);
        const float *hp = hs[(t - ta) / HSTEP];
        float hbuf[HS];
#pragma unroll
        for (int k = 0; k < HS; k++) hbuf[k] = hp[k];
        if (HSTEP == 2 && (t - ta) % 2) {
            /* odd: the stored state is before step t-1, whose inputs nx holds */
            const float *sp = sbc + (t - 1 - ta) * 2 * HSF;
            scan_step<NT, CPLX>(N, scan_dt(a, nx.v), nx.x, sp + k0, sp + HSF + k0, A2, Aim, hbuf, 0);
        }
        scan_bwd_step<NT, CPLX, T, SP>(a, sbc + (t - ta) * 2 * HSF, row0 + t, d, lane, live, cur, Dd, A2, Aim, h,
                                       hbuf, G, dA_acc, dAi_acc, dD_acc, dbias_acc);
#pragma unroll
        for (int k = 0; k < HS; k++) h[k] = hbuf[k];
        cur = nx;
    }
    if (!live) return;
    /* the adjoint leaving the first chunk is dL/dh0 */
    if (a.dh0 && q.c == 0)
#pragma unroll
        for (int k = 0; k < HS; k++)
            if (k < sf) a.dh0[((size_t)b * a.D + d) * sff + k0 + k] = G[k];
#pragma unroll
    for (int n = 0; n < NT; n++)
        if (n < N) {
            atomicAdd(a.dA + (size_t)d * NF + part * NT + n, dA_acc[n]);
            if (CPLX) atomicAdd(a.dAi + (size_t)d * NF + part * NT + n, dAi_acc[n]);
        }
    if (part) return; /* the channel's sums: both parts hold them */
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

/* forward chunk length: enough chunks to fill the GPU with one thread per
 * (b, d, chunk), each chunk as long as possible to keep the carry short.
 * Threads wanted an SM: 1024 for real A, 2048 for complex (16 independent
 * states a thread keep the XU busy with fewer). Every chunk past the first
 * is walked twice (the local pass, then the output) and adds to the carry,
 * so chunks beyond those that fill the GPU only cost: session 38's sweep
 * (H100, bench_gpu --scan, 256 to 4096 threads an SM) found real A 4-8%
 * faster at 1024 than at 4096 (bf16 at (16, 128, 16384) level), complex
 * 2.5-3% faster at 2048 */
static int scan_chunk_len(const mb_scan_params *p, int sm_count)
{
    const int64_t want_threads = (int64_t)(sm_count > 0 ? sm_count : 132) * (p->is_complex ? 2048 : 1024);
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

/* T = 0: the forward's chunk length; else that length (the backward's) */
static scan_args scan_make_args(const mb_scan_params *p, int sm_count, int T)
{
    scan_args a = {};
    a.B = p->batch, a.L = p->seqlen, a.D = p->dim, a.N = p->dstate, a.cplx = p->is_complex;
    a.io16 = p->io_bf16;
    a.softplus = p->delta_softplus;
    a.T = T > 0 ? (T < a.L ? T : a.L) : scan_chunk_len(p, sm_count);
    if (a.T < 1) a.T = 1;
    a.nc = (a.L + a.T - 1) / a.T;
    a.dblk = (a.D + SCAN_THREADS - 1) / SCAN_THREADS;
    a.u = p->u, a.ld_u = p->ld_u, a.delta = p->delta, a.ld_delta = p->ld_delta;
    a.A = p->A, a.Ai = p->A_imag, a.Bm = p->Bm, a.ld_B = p->ld_B, a.Cm = p->Cm, a.ld_C = p->ld_C;
    a.Dsk = p->Dskip, a.z = p->z, a.ld_z = p->ld_z, a.bias = p->delta_bias, a.h0 = p->h0;
    return a;
}

/* carries longer than this are done in groups of SCAN_CARRY_GROUP chunks */
#define SCAN_CARRY_GROUP 64
static int scan_carry_groups(const scan_args &a)
{
    return a.nc > 4 * SCAN_CARRY_GROUP ? (a.nc + SCAN_CARRY_GROUP - 1) / SCAN_CARRY_GROUP : 0;
}

/* scratch of a grouped carry: composites (the adjoints' too with
 * with_adjoints, the backward) and sums of dt per group */
static size_t scan_carry_ws(const scan_args &a, int with_adjoints)
{
    const size_t ng = (size_t)scan_carry_groups(a), sf = (size_t)(a.cplx ? 2 : 1) * a.N;
    return ng ? (with_adjoints ? 2 : 1) * mb_align64((size_t)a.B * ng * a.D * sf * 4) +
                    mb_align64((size_t)a.B * ng * a.D * 4)
              : 0;
}

/* per-chunk scratch of a two-level scan: states (and adjoints) at chunk
 * boundaries, sum(dt) per chunk */
static size_t scan_ws_bytes(const scan_args *a, int with_adjoints)
{
    if (a->nc <= 1) return 0;
    const size_t sf = (size_t)(a->cplx ? 2 : 1) * a->N, n = (size_t)a->B * a->nc * a->D;
    return mb_align64(n * sf * 4) * (with_adjoints ? 2 : 1) + mb_align64(n * 4);
}

extern "C" size_t mb_scan_workspace_cuda(mb_ctx *ctx, const mb_scan_params *p)
{
    const mb_cuda_state *cs = (const mb_cuda_state *)ctx->cuda;
    const int sm = cs ? cs->sm_count : 0;
    const scan_args f = scan_make_args(p, sm, 0), b = scan_make_args(p, sm, SCAN_TILE);
    const size_t wf = scan_ws_bytes(&f, 0) + scan_carry_ws(f, 0), wb = scan_ws_bytes(&b, 1) + scan_carry_ws(b, 1);
    return (wf > wb ? wf : wb) + 256;
}

static int scan_check(mb_ctx *ctx, const mb_scan_params *p)
{
    /* models are refused before any work (mb_scan_supported); this is
     * the kernels' own guard */
    if (p->dstate > MB_SCAN_CUDA_MAX_DSTATE || p->batch > MB_SCAN_CUDA_MAX_BATCH)
        return mb_ctx_fail(ctx, "cuda scan: d_state %d or batch %d above the kernels' %d and %d", p->dstate,
                           p->batch, MB_SCAN_CUDA_MAX_DSTATE, MB_SCAN_CUDA_MAX_BATCH);
    return 0;
}

/* d_state 16 with N fixed at compile time; any other N up to 64 generic;
 * float or bf16 activations */
#define SCAN_DISPATCH_T(NSV, CPLXV, T, K)                                       \
    do {                                                                        \
        if ((NSV) == 16) {                                                      \
            if (CPLXV) { K(16, true, T); } else { K(16, false, T); }            \
        } else {                                                                \
            if (CPLXV) { K(64, true, T); } else { K(64, false, T); }            \
        }                                                                       \
    } while (0)
#define SCAN_DISPATCH(A, K)                                                     \
    do {                                                                        \
        if ((A).io16) SCAN_DISPATCH_T((A).N, (A).cplx, __nv_bfloat16, K);       \
        else if ((A).r16) SCAN_DISPATCH_T((A).N, (A).cplx, scan_f32r, K);       \
        else SCAN_DISPATCH_T((A).N, (A).cplx, float, K);                        \
    } while (0)

/* floats of the state a carry thread owns: 4 where a channel's state is a
 * whole number of float4 (d_state 16), else 2 (complex) or 1 */
static int scan_carry_v(const scan_args &a)
{
    const int sf = (a.cplx ? 2 : 1) * a.N;
    return sf % 4 == 0 ? 4 : a.cplx ? 2 : 1;
}

template <bool CPLX, bool BOTH, int V>
static void scan_carry_run(const scan_args &a, float *lf, float *lr, const float *ssum, float *gf, float *gr,
                           float *gsum, cudaStream_t st)
{
    const int ng = scan_carry_groups(a);
    const int64_t per = (int64_t)a.B * a.D * ((CPLX ? 2 : 1) * a.N / V);
    if (!ng) {
        scan_carry<CPLX, BOTH, SCAN_CARRY_FULL, V><<<(unsigned)((per + 255) / 256), 256, 0, st>>>(
            a, lf, lr, ssum, NULL, NULL, NULL, 0);
        return;
    }
    const unsigned gg = (unsigned)((per * ng + 255) / 256);
    scan_carry<CPLX, BOTH, SCAN_CARRY_SUMMARY, V><<<gg, 256, 0, st>>>(a, lf, lr, ssum, gf, gr, gsum,
                                                                       SCAN_CARRY_GROUP);
    scan_args top = a; /* the groups as chunks */
    top.nc = ng;
    scan_carry<CPLX, BOTH, SCAN_CARRY_FULL, V><<<(unsigned)((per + 255) / 256), 256, 0, st>>>(top, gf, gr, gsum,
                                                                                             NULL, NULL, NULL, 0);
    scan_carry<CPLX, BOTH, SCAN_CARRY_APPLY, V><<<gg, 256, 0, st>>>(a, lf, lr, ssum, gf, gr, gsum,
                                                                     SCAN_CARRY_GROUP);
}

/* lf (and lr, the backward's adjoints, or NULL): per-chunk values in, true
 * values out; needs scan_carry_ws bytes of ws */
static int scan_carry_launch(mb_ctx *ctx, const scan_args &a, float *lf, float *lr, const float *ssum, mb_arena *ws,
                             cudaStream_t st)
{
    float *gf = NULL, *gr = NULL, *gsum = NULL;
    const int ng = scan_carry_groups(a);
    const size_t mark = ws->used;
    if (ng) {
        const size_t sf = (size_t)(a.cplx ? 2 : 1) * a.N, n = (size_t)a.B * ng * a.D;
        gf = (float *)mb_arena_alloc(ws, n * sf * 4);
        gr = lr ? (float *)mb_arena_alloc(ws, n * sf * 4) : NULL;
        gsum = (float *)mb_arena_alloc(ws, n * 4);
        if (!gf || (lr && !gr) || !gsum) {
            ctx->failed = 1;
            return -1;
        }
    }
#define CARRY(C, V)                                                                   \
    do {                                                                              \
        if (lr) scan_carry_run<C, true, V>(a, lf, lr, ssum, gf, gr, gsum, st);        \
        else scan_carry_run<C, false, V>(a, lf, lr, ssum, gf, gr, gsum, st);          \
    } while (0)
    const int v = scan_carry_v(a);
    if (a.cplx) {
        if (v == 4) CARRY(true, 4);
        else CARRY(true, 2);
    } else {
        if (v == 4) CARRY(false, 4);
        else CARRY(false, 1);
    }
#undef CARRY
    ws->used = mark;
    return 0;
}

extern "C" void mb_scan_fwd_cuda(mb_ctx *ctx, const mb_scan_params *p, void *y, float *hT, mb_arena *ws)
{
    mb_cuda_state *cs = mb_cuda_enter(ctx);
    if (!cs || ctx->failed || scan_check(ctx, p)) return;
    cudaStream_t st = cs->stream;
    scan_args a = scan_make_args(p, cs->sm_count, 0);
    a.r16 = MB_OPS_ROUNDS_BF16(ctx);
    const dim3 blk(SCAN_THREADS), grid((unsigned)a.dblk * a.nc, a.B);
    if (a.L == 1) {
        const int lanes = a.N == 16 ? 4 : 16; /* a channel's threads */
        const unsigned g = (unsigned)(((int64_t)a.B * a.D * lanes + SCAN_ONE_THREADS - 1) / SCAN_ONE_THREADS);
#define ONE(C, T)                                                                       \
    do {                                                                                \
        if (a.N == 16) scan_fwd_one16<C, T><<<g, SCAN_ONE_THREADS, 0, st>>>(a, y, hT);  \
        else scan_fwd_one<C, T><<<g, SCAN_ONE_THREADS, 0, st>>>(a, y, hT);              \
    } while (0)
        if (a.io16) { if (a.cplx) ONE(true, __nv_bfloat16); else ONE(false, __nv_bfloat16); }
        else if (a.r16) { if (a.cplx) ONE(true, scan_f32r); else ONE(false, scan_f32r); }
        else { if (a.cplx) ONE(true, float); else ONE(false, float); }
#undef ONE
        MB_LAUNCH_CHECK(ctx, "scan_fwd_one");
        return;
    }
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
#define LOCAL(NS, C, T) scan_fwd_local<NS, C, T><<<grid, blk, 0, st>>>(a, hstart, ssum)
        SCAN_DISPATCH(a, LOCAL);
#undef LOCAL
        MB_LAUNCH_CHECK(ctx, "scan_fwd_local");
        if (scan_carry_launch(ctx, a, hstart, NULL, ssum, ws, st)) return;
        MB_LAUNCH_CHECK(ctx, "scan_carry");
    }
#define OUT(NS, C, T) scan_fwd_out<NS, C, T><<<grid, blk, 0, st>>>(a, hstart, y, hT)
    SCAN_DISPATCH(a, OUT);
#undef OUT
    MB_LAUNCH_CHECK(ctx, "scan_fwd_out");
    ws->used = mark;
}

extern "C" void mb_scan_bwd_cuda(mb_ctx *ctx, const mb_scan_params *p, const void *dy,
                                 const float *dhT, const mb_scan_grads *g, mb_arena *ws)
{
    mb_cuda_state *cs = mb_cuda_enter(ctx);
    if (!cs || ctx->failed || scan_check(ctx, p)) return;
    cudaStream_t st = cs->stream;
    scan_args a = scan_make_args(p, cs->sm_count, SCAN_TILE);
    a.r16 = MB_OPS_ROUNDS_BF16(ctx);
    a.dy = dy, a.dhT = dhT;
    a.du = g->du, a.ld_du = g->ld_du, a.ddelta = g->ddelta, a.ld_ddelta = g->ld_ddelta;
    a.dA = g->dA, a.dAi = g->dA_imag, a.dB = g->dB, a.ld_dB = g->ld_dB, a.dC = g->dC, a.ld_dC = g->ld_dC;
    a.dD = g->dD, a.dz = g->dz, a.ld_dz = g->ld_dz, a.dbias = g->ddelta_bias, a.dh0 = g->dh0;
    a.y = g->y;
    const int sf = (a.cplx ? 2 : 1) * a.N;
    const int64_t rows = (int64_t)a.B * a.L;
    const unsigned zgrid = (unsigned)((rows * sf + 255) / 256);
    scan_zero_rows<<<zgrid, 256, 0, st>>>(a.dB, a.ld_dB, rows, sf);
    scan_zero_rows<<<zgrid, 256, 0, st>>>(a.dC, a.ld_dC, rows, sf);
    MB_LAUNCH_CHECK(ctx, "scan_zero_rows");
    const dim3 grid((unsigned)a.dblk * a.nc, a.B);
    float *hstart = NULL, *gin = NULL;
    size_t mark = ws->used;
    if (a.nc > 1) {
        const size_t n = (size_t)a.B * a.nc * a.D;
        hstart = (float *)mb_arena_alloc(ws, n * sf * 4);
        gin = (float *)mb_arena_alloc(ws, n * sf * 4);
        float *ssum = (float *)mb_arena_alloc(ws, n * 4);
        if (!hstart || !gin || !ssum) {
            ctx->failed = 1;
            return;
        }
#define LOCALS(NS, C, T) \
    scan_bwd_locals<NS, C, T, SCAN_BWD_SP(NS, C)><<<grid, dim3(SCAN_THREADS * SCAN_BWD_SP(NS, C)), 0, st>>>(a, hstart, ssum, gin)
        SCAN_DISPATCH(a, LOCALS);
#undef LOCALS
        MB_LAUNCH_CHECK(ctx, "scan_bwd_locals");
        if (scan_carry_launch(ctx, a, hstart, gin, ssum, ws, st)) return;
        MB_LAUNCH_CHECK(ctx, "scan_bwd carries");
    }
#define CHUNK(NS, C, T) \
    scan_bwd_chunk<NS, C, T, SCAN_BWD_SP(NS, C)><<<grid, dim3(SCAN_THREADS * SCAN_BWD_SP(NS, C)), 0, st>>>(a, hstart, gin)
    SCAN_DISPATCH(a, CHUNK);
#undef CHUNK
    MB_LAUNCH_CHECK(ctx, "scan_bwd_chunk");
    ws->used = mark;
}
