/* Selective scan, CPU reference. See ops.h for the maths.
 *
 * Work is split into tasks of (batch, block of SCAN_DBLK channels); a task
 * walks the sequence once with its states in a small local array, so the
 * (B, L, D, N) states never exist in memory. Backward stores the states
 * only every SCAN_CHUNK steps and recomputes the chunk it is working on.
 *
 * Complex states use (re, im) pairs. With G = dL/dRe + i dL/dIm as the
 * gradient of a complex quantity, h_t = a_t h_{t-1} + w_t gives
 * G_{t-1} += conj(a_t) G_t, G_a = G_t conj(h_{t-1}), G_w = G_t, and a real
 * parameter p feeding a complex q gets Re(G_q conj(dq/dp)). */
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/ops.h"
#include "ops/vmath.h"

#define SCAN_DBLK 8
#define SCAN_CHUNK 64
#define SCAN_PAR_MIN (1 << 14) /* state updates below which the forward stays on one thread */
#define SCAN_MAX_STATE 512 /* floats per channel: N (real) or 2N (complex), N <= 256 */

/* The per-channel helpers are always inlined where there are lanes: one GCC
 * leaves out of line is compiled for the baseline (SSE2) only, not in its
 * caller's AVX2 clone (seen: scan_bwd_channel, then scan_step_channel). */
#ifdef MB_HAVE_LANES
#define SCAN_INLINE MB_VINLINE
#else
#define SCAN_INLINE static inline
#endif

#ifdef MB_HAVE_LANES
/* One lane of ops/vmath.h's functions: the channels computed one at a time
 * (the backward, a block's last few) get the bits the forward's eight at a
 * time get, so a step and the parallel forward still agree exactly. */
static inline float scan_lane0(mb_f8 v)
{
    float l[8];
    mb_f8_store(l, v);
    return l[0];
}
static inline float scan_softplus(float x) { return scan_lane0(mb_softplus8(mb_f8_splat(x))); }
static inline float scan_sigmoid(float x) { return scan_lane0(mb_sigmoid8(mb_f8_splat(x))); }
#else
static inline float scan_softplus(float x) { return x > 20.f ? x : log1pf(expf(x)); }
static inline float scan_sigmoid(float x) { return 1.f / (1.f + expf(-x)); }
#endif

static inline int scan_threads(mb_ctx *ctx)
{
#ifdef _OPENMP
    return ctx->n_threads > 0 ? ctx->n_threads : 1;
#else
    (void)ctx;
    return 1;
#endif
}

static inline int scan_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* row `row` of a float activation (the CPU's scan takes no bf16 arrays) */
static inline const float *scan_rowf(const void *base, size_t row, int64_t ld)
{
    return (const float *)base + row * ld;
}

/* floats of state per channel */
static inline int scan_sf(const mb_scan_params *p) { return p->is_complex ? 2 * p->dstate : p->dstate; }

/* delta after bias and softplus, and the pre-softplus value for backward */
static inline float scan_delta(const mb_scan_params *p, const float *drow, int d, float *pre)
{
    float v = drow[d] + (p->delta_bias ? p->delta_bias[d] : 0.f);
    if (pre) *pre = v;
    return p->delta_softplus ? scan_softplus(v) : v;
}

/* The complex decay a = e^(dt A), ar + i ai: of one state by libm, and of
 * eight states over the lanes (ops/vmath.h's exp and sincos). Step, forward
 * and backward take a from these, the lanes for whole groups of eight
 * states and libm for the rest, as the real states' lanes and tail. */
static inline void scan_decay1(float dt, float Ar, float Ai, float *ar, float *ai)
{
    const float mag = expf(dt * Ar);
    *ar = mag * cosf(dt * Ai);
    *ai = mag * sinf(dt * Ai);
}

#ifdef MB_HAVE_LANES
MB_VINLINE void scan_decay8(mb_f8 vdt, const float *Ar, const float *Ai, mb_f8 *ar, mb_f8 *ai)
{
    const mb_f8 mag = mb_exp8(vdt * mb_f8_load(Ar));
    mb_f8 sn, cs;
    mb_sincos8(vdt * mb_f8_load(Ai), &sn, &cs);
    *ar = mag * cs;
    *ai = mag * sn;
}
#endif

#ifdef MB_HAVE_LANES
/* The whole groups of eight states of one channel one step on (see
 * scan_step_channel): returns the lanes of C . h before the fold (complex:
 * the real parts, before the factor 2). Real: exp over the lanes
 * (ops/vmath.h); complex: the (re, im) pairs of h, B and C split into
 * lanes, each lane the expression of the one-state loop. */
MB_VINLINE mb_f8 scan_step_groups(const mb_scan_params *p, int d, float dt, float x, const float *Bt,
                                  const float *Ct, float *h, float *a_out, const float *a_in)
{
    const int N = p->dstate;
    const float *Ad = p->A + (size_t)d * N;
    const mb_f8 vdt = mb_f8_splat(dt), vdtx = mb_f8_splat(dt * x);
    mb_f8 s = mb_f8_splat(0.f);
    if (!p->is_complex) {
        for (int n = 0; n + 8 <= N; n += 8) {
            const mb_f8 a = a_in ? mb_f8_load(a_in + n) : mb_exp8(vdt * mb_f8_load(Ad + n));
            if (a_out) mb_f8_store(a_out + n, a);
            const mb_f8 hn = a * mb_f8_load(h + n) + vdtx * mb_f8_load(Bt + n);
            mb_f8_store(h + n, hn);
            s += mb_f8_load(Ct + n) * hn;
        }
        return s;
    }
    const float *Ai = p->A_imag + (size_t)d * N;
    for (int n = 0; n + 8 <= N; n += 8) {
        mb_f8 ar, ai, hr, hi, br, bi, cr, ci;
        if (a_in) {
            ar = mb_f8_load(a_in + 2 * n);
            ai = mb_f8_load(a_in + 2 * n + 8);
        } else {
            scan_decay8(vdt, Ad + n, Ai + n, &ar, &ai);
        }
        if (a_out) {
            mb_f8_store(a_out + 2 * n, ar);
            mb_f8_store(a_out + 2 * n + 8, ai);
        }
        mb_f8_deint(h + 2 * n, &hr, &hi);
        mb_f8_deint(Bt + 2 * n, &br, &bi);
        mb_f8_deint(Ct + 2 * n, &cr, &ci);
        const mb_f8 nr = ar * hr - ai * hi + vdtx * br, ni = ar * hi + ai * hr + vdtx * bi;
        mb_f8_int(h + 2 * n, nr, ni);
        s += cr * nr - ci * ni;
    }
    return s;
}
#endif

/* One step for one channel: h <- a h + dt B x, returns C . h (2 Re for complex).
 * With a_out (sf floats), the decays a too, for the backward's step to
 * read instead of computing them again (the same bits): real, a_n; complex,
 * for eight states at a time their eight ar then eight ai, for the rest
 * (ar, ai) pairs, as scan_bwd_channel reads them. With a_in, the decays
 * are read from there (a_out's layout) instead of computed. The groups of
 * eight states go over the lanes and their sum is folded, then the rest. */
SCAN_INLINE float scan_step_channel(const mb_scan_params *p, int d, float dt, float x,
                                      const float *Bt, const float *Ct, float *h, float *a_out, const float *a_in)
{
    const int N = p->dstate;
    const float *Ad = p->A + (size_t)d * N;
    const float dtx = dt * x;
    float acc = 0.f;
    int n = 0;
#ifdef MB_HAVE_LANES
    acc = mb_f8_fold(scan_step_groups(p, d, dt, x, Bt, Ct, h, a_out, a_in), 0.f);
    n = N / 8 * 8;
#endif
    if (!p->is_complex) {
        for (; n < N; n++) {
            const float a = a_in ? a_in[n] : expf(dt * Ad[n]);
            if (a_out) a_out[n] = a;
            h[n] = a * h[n] + dtx * Bt[n];
            acc += Ct[n] * h[n];
        }
        return acc;
    }
    const float *Ai = p->A_imag + (size_t)d * N;
    for (; n < N; n++) {
        float ar, ai;
        if (a_in) ar = a_in[2 * n], ai = a_in[2 * n + 1];
        else scan_decay1(dt, Ad[n], Ai[n], &ar, &ai);
        if (a_out) a_out[2 * n] = ar, a_out[2 * n + 1] = ai;
        float hr = h[2 * n], hi = h[2 * n + 1];
        float nr = ar * hr - ai * hi + dtx * Bt[2 * n];
        float ni = ar * hi + ai * hr + dtx * Bt[2 * n + 1];
        h[2 * n] = nr;
        h[2 * n + 1] = ni;
        acc += Ct[2 * n] * nr - Ct[2 * n + 1] * ni;
    }
    return 2.f * acc;
}

/* The per-channel gates of channels d0 .. d0+nd-1 at one step: dt (after
 * bias and softplus), silu(z); for the backward also sigmoid(z) and
 * softplus' derivative sigmoid(pre) (1 above torch's threshold, 20). Eight
 * at a time over the lanes, each lane the arithmetic scan_delta and
 * scan_sigmoid do for one channel, so every pass gets the same bits. */
typedef struct {
    float dt[SCAN_DBLK], gz[SCAN_DBLK]; /* dt, silu(z) */
    float sz[SCAN_DBLK], sp[SCAN_DBLK]; /* grads only: sigmoid(z), d softplus / d pre */
} scan_gates;

SCAN_INLINE void scan_block_gates(const mb_scan_params *p, const float *dlt, const float *zt, int d0, int nd, int grads,
                      scan_gates *g)
{
#ifdef MB_HAVE_LANES
    if (nd == 8) {
        const mb_f8 v = mb_f8_load(dlt + d0) + (p->delta_bias ? mb_f8_load(p->delta_bias + d0) : mb_f8_splat(0.f));
        mb_f8_store(g->dt, p->delta_softplus ? mb_softplus8(v) : v);
        if (grads && p->delta_softplus) mb_f8_store(g->sp, mb_f8_select(v > 20.f, mb_f8_splat(1.f), mb_sigmoid8(v)));
        if (zt) {
            const mb_f8 z = mb_f8_load(zt + d0), sz = mb_sigmoid8(z);
            mb_f8_store(g->gz, z * sz);
            if (grads) mb_f8_store(g->sz, sz);
        }
        return;
    }
#endif
    for (int j = 0; j < nd; j++) {
        float pre;
        g->dt[j] = scan_delta(p, dlt, d0 + j, &pre);
        if (grads && p->delta_softplus) g->sp[j] = pre > 20.f ? 1.f : scan_sigmoid(pre);
        if (zt) {
            const float sz = scan_sigmoid(zt[d0 + j]);
            g->gz[j] = zt[d0 + j] * sz;
            if (grads) g->sz[j] = sz;
        }
    }
}

/* The backward's decays: the first pass over the sequence keeps every
 * step's (for a block of channels, L * SCAN_DBLK * sf floats a thread)
 * when that is at most scan_keep_bytes (8 MiB) a thread and 64 MiB over
 * all threads, and the recompute of each chunk then reads them instead of
 * computing them again (an exp a state and step, or exp and sincos
 * complex); longer sequences keep a chunk's at a time, computed in the
 * recompute. Returns the steps of decays a thread keeps. */
static size_t scan_keep_bytes = (size_t)8 << 20;
size_t mb_scan_cpu_keep_bytes(size_t bytes)
{
    const size_t prev = scan_keep_bytes;
    if (bytes) scan_keep_bytes = bytes;
    return prev;
}
static size_t scan_decay_steps(const mb_scan_params *p, int nthr)
{
    const size_t L = (size_t)p->seqlen, bytes = L * SCAN_DBLK * scan_sf(p) * sizeof(float);
    return bytes <= scan_keep_bytes && bytes * (size_t)nthr <= 8 * scan_keep_bytes ? L : SCAN_CHUNK;
}

size_t mb_scan_workspace_cpu(mb_ctx *ctx, const mb_scan_params *p)
{
    size_t sf = (size_t)scan_sf(p), L = (size_t)p->seqlen;
    size_t nck = (L + SCAN_CHUNK - 1) / SCAN_CHUNK;
    size_t per_thread = mb_align64(L * 2 * sf * sizeof(float)) +           /* dB, dC partials */
                        mb_align64(nck * SCAN_DBLK * sf * sizeof(float)) + /* chunk states */
                        mb_align64((SCAN_CHUNK + scan_decay_steps(p, scan_threads(ctx))) * SCAN_DBLK * sf *
                                   sizeof(float)); /* a chunk's states; decays */
    return (size_t)scan_threads(ctx) * per_thread + mb_align64((size_t)scan_threads(ctx) * 3 * sizeof(float *));
}

/* one task of the forward: sequence b, channels d0 .. d0+SCAN_DBLK-1 */
MB_CPU_CLONES
static void scan_fwd_task(const mb_scan_params *p, float *y, float *hT, int b, int d0)
{
    const int L = p->seqlen, D = p->dim, sf = scan_sf(p);
    const int nd = D - d0 < SCAN_DBLK ? D - d0 : SCAN_DBLK;
    float h[SCAN_DBLK * SCAN_MAX_STATE];
    for (int j = 0; j < nd; j++) {
        float *hj = h + (size_t)j * sf;
        if (p->h0) memcpy(hj, p->h0 + ((size_t)b * D + d0 + j) * sf, sf * sizeof(float));
        else memset(hj, 0, sf * sizeof(float));
    }
    for (int t = 0; t < L; t++) {
        const size_t row = (size_t)b * L + t;
        const float *ut = scan_rowf(p->u, row, p->ld_u), *dlt = scan_rowf(p->delta, row, p->ld_delta);
        const float *Bt = scan_rowf(p->Bm, row, p->ld_B), *Ct = scan_rowf(p->Cm, row, p->ld_C);
        const float *zt = p->z ? scan_rowf(p->z, row, p->ld_z) : NULL;
        float *yt = y + row * D;
        scan_gates g;
        scan_block_gates(p, dlt, zt, d0, nd, 0, &g);
#ifdef MB_HAVE_LANES
        if (nd == SCAN_DBLK && p->dstate % 8 == 0) {
            /* a whole block of whole groups: the eight channels' sums folded
             * together, and the output's arithmetic over the channels in
             * lanes, each lane the expressions below (the same bits) */
            mb_f8 sj[SCAN_DBLK];
            for (int j = 0; j < SCAN_DBLK; j++)
                sj[j] = scan_step_groups(p, d0 + j, g.dt[j], ut[d0 + j], Bt, Ct, h + (size_t)j * sf, NULL, NULL);
            mb_f8 out = mb_f8_fold8x(sj);
            if (p->is_complex) out = mb_f8_splat(2.f) * out;
            if (p->Dskip) out += mb_f8_load(p->Dskip + d0) * mb_f8_load(ut + d0);
            if (zt) out *= mb_f8_load(g.gz);
            mb_f8_store(yt + d0, out);
            continue;
        }
#endif
        for (int j = 0; j < nd; j++) {
            const int d = d0 + j;
            float out = scan_step_channel(p, d, g.dt[j], ut[d], Bt, Ct, h + (size_t)j * sf, NULL, NULL);
            if (p->Dskip) out += p->Dskip[d] * ut[d];
            if (zt) out *= g.gz[j];
            yt[d] = out;
        }
    }
    if (hT)
        for (int j = 0; j < nd; j++)
            memcpy(hT + ((size_t)b * D + d0 + j) * sf, h + (size_t)j * sf, sf * sizeof(float));
}

void mb_scan_fwd_cpu(mb_ctx *ctx, const mb_scan_params *p, void *yv, float *hT, mb_arena *ws)
{
    if (p->io_bf16) {
        mb_ctx_fail(ctx, "cpu scan: bf16 activations (io_bf16) are the GPU's");
        return;
    }
    float *y = yv;
    (void)ws;
    (void)ctx; /* only read by the OpenMP clauses */
    const int Bn = p->batch, D = p->dim;
    const int nblk = (D + SCAN_DBLK - 1) / SCAN_DBLK;
    const long ntask = (long)Bn * nblk;
    /* A generation step (L = 1) makes its tasks tiny: one at a time, the
     * threads spent longer taking tasks from OpenMP's shared counter than
     * scanning (a fifth of a 130m step at batch 8 on two cores). Short scans
     * take them in runs, about four a thread; long ones one by one, which
     * balances best. Tasks are independent: the bits do not change. */
    long run = 1;
    if (p->seqlen < SCAN_CHUNK) run = ntask / (4L * scan_threads(ctx)) > 1 ? ntask / (4L * scan_threads(ctx)) : 1;
    (void)run; /* only read by the OpenMP clause */
    /* A region's fork and join cost microseconds, and on a machine whose
     * other cores are busy, one wait for the scheduler each: the scan of a
     * small model's generation step (512 channels of 16 states, ~10 us)
     * runs on the calling thread */
    const double work = (double)Bn * D * p->seqlen * p->dstate;
    (void)work;
MB_OMP(omp parallel for schedule(dynamic, run) num_threads(scan_threads(ctx)) if (ntask > 1 && work >= SCAN_PAR_MIN))
    for (long task = 0; task < ntask; task++) scan_fwd_task(p, y, hT, (int)(task / nblk), (int)(task % nblk) * SCAN_DBLK);
    if (MB_OPS_ROUNDS_BF16(ctx)) mb_bf16_round_copy_cpu(ctx, Bn * p->seqlen, D, y, D, y, D);
}

/* Backward of one step for one channel. h is h_t, hp is h_{t-1}, as the
 * step's decays (scan_step_channel's a_out), G the adjoint of h_t on entry
 * and of h_{t-1} on exit. Adds to dBt, dCt (this thread's partials) and dA
 * rows; returns d(dt) and writes dx. */
SCAN_INLINE float scan_bwd_channel(const mb_scan_params *p, const mb_scan_grads *g, int d, float dt, float x, float dyf,
                       const float *Bt, const float *Ct, const float *h, const float *hp, const float *as, float *G,
                       float *dBt, float *dCt, float *dx_out)
{
    const int N = p->dstate;
    const float *Ad = p->A + (size_t)d * N;
    float *dAd = g->dA + (size_t)d * N;
    float ddt = 0.f, dx = 0.f;
    if (!p->is_complex) {
        int n = 0;
#ifdef MB_HAVE_LANES
        /* eight states at a time, exp over the lanes as the forward's; ddt
         * and dx sum their lanes in mb_f8_fold's order, then the rest */
        const mb_f8 vdyf = mb_f8_splat(dyf), vdt = mb_f8_splat(dt), vx = mb_f8_splat(x);
        mb_f8 sddt = mb_f8_splat(0.f), sdx = mb_f8_splat(0.f);
        for (; n + 8 <= N; n += 8) {
            const mb_f8 hn = mb_f8_load(h + n), Cn = mb_f8_load(Ct + n), Bn = mb_f8_load(Bt + n);
            const mb_f8 An = mb_f8_load(Ad + n);
            mb_f8_store(dCt + n, mb_f8_load(dCt + n) + vdyf * hn);
            const mb_f8 Gn = mb_f8_load(G + n) + vdyf * Cn;
            const mb_f8 a = mb_f8_load(as + n);
            const mb_f8 da = Gn * mb_f8_load(hp + n);
            sddt += da * An * a + Gn * Bn * vx;
            mb_f8_store(dAd + n, mb_f8_load(dAd + n) + da * vdt * a);
            mb_f8_store(dBt + n, mb_f8_load(dBt + n) + Gn * vdt * vx);
            sdx += Gn * Bn;
            mb_f8_store(G + n, a * Gn);
        }
        ddt = mb_f8_fold(sddt, 0.f);
        dx = mb_f8_fold(sdx, 0.f);
#endif
        for (; n < N; n++) {
            dCt[n] += dyf * h[n];
            float Gn = G[n] + dyf * Ct[n];
            float a = as[n];
            float da = Gn * hp[n];
            ddt += da * Ad[n] * a + Gn * Bt[n] * x;
            dAd[n] += da * dt * a;
            dBt[n] += Gn * dt * x;
            dx += Gn * Bt[n];
            G[n] = a * Gn;
        }
        *dx_out = dx * dt;
        return ddt;
    }
    const float *Ai = p->A_imag + (size_t)d * N;
    float *dAi = g->dA_imag + (size_t)d * N;
    int n = 0;
#ifdef MB_HAVE_LANES
    /* eight states at a time, the pairs split into lanes, each lane the
     * expressions below; ddt and dx fold their lanes, then the rest */
    {
        const mb_f8 v2dyf = mb_f8_splat(2.f * dyf), vdt = mb_f8_splat(dt), vx = mb_f8_splat(x);
        mb_f8 sddt = mb_f8_splat(0.f), sdx = mb_f8_splat(0.f);
        for (; n + 8 <= N; n += 8) {
            mb_f8 hr, hi, pr, pi, Cr, Ci, Br, Bi, Gr, Gi, dCr, dCi, dBr, dBi, ar, ai;
            mb_f8_deint(h + 2 * n, &hr, &hi);
            mb_f8_deint(hp + 2 * n, &pr, &pi);
            mb_f8_deint(Ct + 2 * n, &Cr, &Ci);
            mb_f8_deint(Bt + 2 * n, &Br, &Bi);
            mb_f8_deint(dCt + 2 * n, &dCr, &dCi);
            mb_f8_int(dCt + 2 * n, dCr + v2dyf * hr, dCi - v2dyf * hi);
            mb_f8_deint(G + 2 * n, &Gr, &Gi);
            Gr = Gr + v2dyf * Cr;
            Gi = Gi - v2dyf * Ci;
            ar = mb_f8_load(as + 2 * n);
            ai = mb_f8_load(as + 2 * n + 8);
            const mb_f8 Arn = mb_f8_load(Ad + n), Ain = mb_f8_load(Ai + n);
            const mb_f8 gar = Gr * pr + Gi * pi, gai = Gi * pr - Gr * pi;
            const mb_f8 Aar = Arn * ar - Ain * ai, Aai = Arn * ai + Ain * ar;
            sddt += gar * Aar + gai * Aai;
            mb_f8_store(dAd + n, mb_f8_load(dAd + n) + vdt * (gar * ar + gai * ai));
            mb_f8_store(dAi + n, mb_f8_load(dAi + n) + vdt * (gai * ar - gar * ai));
            const mb_f8 gb = Gr * Br + Gi * Bi;
            sddt += gb * vx;
            sdx += gb;
            mb_f8_deint(dBt + 2 * n, &dBr, &dBi);
            mb_f8_int(dBt + 2 * n, dBr + Gr * vdt * vx, dBi + Gi * vdt * vx);
            mb_f8_int(G + 2 * n, ar * Gr + ai * Gi, ar * Gi - ai * Gr);
        }
        ddt = mb_f8_fold(sddt, 0.f);
        dx = mb_f8_fold(sdx, 0.f);
    }
#endif
    for (; n < N; n++) {
        const float hr = h[2 * n], hi = h[2 * n + 1], pr = hp[2 * n], pi = hp[2 * n + 1];
        const float Cr = Ct[2 * n], Ci = Ct[2 * n + 1], Br = Bt[2 * n], Bi = Bt[2 * n + 1];
        /* y = 2 (Cr hr - Ci hi): */
        dCt[2 * n] += 2.f * dyf * hr;
        dCt[2 * n + 1] -= 2.f * dyf * hi;
        const float Gr = G[2 * n] + 2.f * dyf * Cr, Gi = G[2 * n + 1] - 2.f * dyf * Ci;
        const float ar = as[2 * n], ai = as[2 * n + 1];
        /* G_a = G conj(h_{t-1}) */
        const float gar = Gr * pr + Gi * pi, gai = Gi * pr - Gr * pi;
        /* da/d(dt) = A a; Re(G_a conj(A a)) with A a = (Ar ar - Ai ai) + i (Ar ai + Ai ar) */
        const float Aar = Ad[n] * ar - Ai[n] * ai, Aai = Ad[n] * ai + Ai[n] * ar;
        ddt += gar * Aar + gai * Aai;
        /* da/dAr = dt a, da/dAi = i dt a */
        dAd[n] += dt * (gar * ar + gai * ai);
        dAi[n] += dt * (gai * ar - gar * ai);
        /* w = dt x B: dt and x see Re(G conj(B)) */
        const float gb = Gr * Br + Gi * Bi;
        ddt += gb * x;
        dx += gb;
        dBt[2 * n] += Gr * dt * x;
        dBt[2 * n + 1] += Gi * dt * x;
        /* G_{t-1} = conj(a) G */
        G[2 * n] = ar * Gr + ai * Gi;
        G[2 * n + 1] = ar * Gi - ai * Gr;
    }
    *dx_out = dx * dt;
    return ddt;
}

/* What one block of channels of the backward reads: the arguments of
 * mb_scan_bwd_cpu, the batch row b and the threads' scratch. */
typedef struct {
    const mb_scan_params *p;
    const mb_scan_grads *g;
    const float *dy, *dhT;
    float **part; /* per thread: dB, dC partials; chunk states; a chunk's states, then decays */
    int b, nck;
    int keep; /* the decays of every step, not a chunk's (scan_decay_steps) */
} scan_bwd_job;

/* The backward of channels blk*SCAN_DBLK.. of row b on thread tid: a
 * function of its own so that it too has an AVX2 clone (an OpenMP loop's
 * body is compiled for the baseline only: the lanes ran at half width). */
MB_CPU_CLONES
static void scan_bwd_block(const scan_bwd_job *job, int blk, int tid)
{
    const mb_scan_params *p = job->p;
    const mb_scan_grads *g = job->g;
    const float *dy = job->dy, *dhT = job->dhT;
    float *du = g->du, *ddelta = g->ddelta, *dz = g->dz, *gy = g->y;
    const int b = job->b, nck = job->nck, L = p->seqlen, D = p->dim, sf = scan_sf(p);
    float **part = job->part;
    float *dBC = part[3 * tid], *ck = part[3 * tid + 1], *hs = part[3 * tid + 2];
    /* the decays, kept for the walk back (one exp, complex exp and sincos,
     * a state and step fewer): of every step by pass 1 when they fit
     * (scan_decay_steps), else of the chunk by its recompute */
    float *as = hs + (size_t)SCAN_CHUNK * SCAN_DBLK * sf;
    const int keep = job->keep;
    const int d0 = blk * SCAN_DBLK, nd = D - d0 < SCAN_DBLK ? D - d0 : SCAN_DBLK;
    float h[SCAN_DBLK * SCAN_MAX_STATE], G[SCAN_DBLK * SCAN_MAX_STATE];
    /* C . h of each step of the chunk (2 Re complex), from its recompute:
     * the walk back's ungated output for dz, the forward's very sum */
    float ch[SCAN_CHUNK * SCAN_DBLK];
    /* pass 1: states at chunk starts. It stops where the last chunk starts:
     * that chunk's recompute, which comes first, needs nothing after, and
     * computes its own decays (so a sequence of one chunk has no pass 1). */
    const int tlast = (nck - 1) * SCAN_CHUNK;
    for (int j = 0; j < nd; j++) {
        float *hj = h + (size_t)j * sf;
        if (p->h0) memcpy(hj, p->h0 + ((size_t)b * D + d0 + j) * sf, sf * sizeof(float));
        else memset(hj, 0, sf * sizeof(float));
        if (dhT) memcpy(G + (size_t)j * sf, dhT + ((size_t)b * D + d0 + j) * sf, sf * sizeof(float));
        else memset(G + (size_t)j * sf, 0, sf * sizeof(float));
    }
    for (int t = 0; t <= tlast; t++) {
        if (t % SCAN_CHUNK == 0)
            memcpy(ck + (size_t)(t / SCAN_CHUNK) * SCAN_DBLK * sf, h, (size_t)nd * sf * sizeof(float));
        if (t == tlast) break;
        const size_t row = (size_t)b * L + t;
        const float *ut = scan_rowf(p->u, row, p->ld_u), *dlt = scan_rowf(p->delta, row, p->ld_delta);
        const float *Bt = scan_rowf(p->Bm, row, p->ld_B), *Ct = scan_rowf(p->Cm, row, p->ld_C);
        scan_gates gt;
        scan_block_gates(p, dlt, NULL, d0, nd, 0, &gt);
        for (int j = 0; j < nd; j++)
            scan_step_channel(p, d0 + j, gt.dt[j], ut[d0 + j], Bt, Ct, h + (size_t)j * sf,
                              keep ? as + ((size_t)t * SCAN_DBLK + j) * sf : NULL, NULL);
    }
    /* pass 2: chunks from last to first, states recomputed per chunk */
    for (int c = nck - 1; c >= 0; c--) {
        const int t0 = c * SCAN_CHUNK, t1 = t0 + SCAN_CHUNK < L ? t0 + SCAN_CHUNK : L;
        /* the chunk's decays: step t's at ac + (t - t0) * SCAN_DBLK * sf,
         * from pass 1 (kept: read) or made by the recompute (written) */
        float *ac = keep ? as + (size_t)t0 * SCAN_DBLK * sf : as;
        const int kept = keep && t0 < tlast;
        memcpy(h, ck + (size_t)c * SCAN_DBLK * sf, (size_t)nd * sf * sizeof(float));
        for (int t = t0; t < t1; t++) {
            const size_t row = (size_t)b * L + t;
            const float *ut = scan_rowf(p->u, row, p->ld_u), *dlt = scan_rowf(p->delta, row, p->ld_delta);
            const float *Bt = scan_rowf(p->Bm, row, p->ld_B), *Ct = scan_rowf(p->Cm, row, p->ld_C);
            const float *zt = p->z ? scan_rowf(p->z, row, p->ld_z) : NULL;
            scan_gates gt;
            scan_block_gates(p, dlt, gy ? zt : NULL, d0, nd, 0, &gt);
            for (int j = 0; j < nd; j++) {
                const int d = d0 + j;
                float *aj = ac + ((size_t)(t - t0) * SCAN_DBLK + j) * sf;
                float out = scan_step_channel(p, d, gt.dt[j], ut[d], Bt, Ct, h + (size_t)j * sf, kept ? NULL : aj,
                                              kept ? aj : NULL);
                ch[(t - t0) * SCAN_DBLK + j] = out;
                if (!gy) continue;
                /* the forward's expression, on the same states */
                if (p->Dskip) out += p->Dskip[d] * ut[d];
                if (zt) out *= gt.gz[j];
                gy[row * D + d] = out;
            }
            memcpy(hs + (size_t)(t - t0) * SCAN_DBLK * sf, h, (size_t)nd * sf * sizeof(float));
        }
        for (int t = t1 - 1; t >= t0; t--) {
            const size_t row = (size_t)b * L + t;
            const float *ut = scan_rowf(p->u, row, p->ld_u), *dlt = scan_rowf(p->delta, row, p->ld_delta);
            const float *Bt = scan_rowf(p->Bm, row, p->ld_B), *Ct = scan_rowf(p->Cm, row, p->ld_C);
            const float *zt = p->z ? scan_rowf(p->z, row, p->ld_z) : NULL;
            const float *hcur = hs + (size_t)(t - t0) * SCAN_DBLK * sf;
            const float *hprev = t > t0 ? hcur - (size_t)SCAN_DBLK * sf
                                        : ck + (size_t)c * SCAN_DBLK * sf;
            float *dBt = dBC + (size_t)t * 2 * sf, *dCt = dBt + sf;
            scan_gates gt;
            scan_block_gates(p, dlt, zt, d0, nd, 1, &gt);
            for (int j = 0; j < nd; j++) {
                const int d = d0 + j;
                const float x = ut[d], dt = gt.dt[j];
                float dyf = dy[row * D + d];
                if (zt) {
                    /* the ungated output, for the z gradient */
                    float yfull = ch[(t - t0) * SCAN_DBLK + j] + (p->Dskip ? p->Dskip[d] * x : 0.f);
                    const float sg = gt.sz[j];
                    dz[row * g->ld_dz + d] = dyf * yfull * sg * (1.f + zt[d] * (1.f - sg));
                    dyf *= zt[d] * sg;
                }
                float dx = 0.f;
                if (p->Dskip) {
                    g->dD[d] += dyf * x;
                    dx += dyf * p->Dskip[d];
                }
                float dxs;
                float ddt = scan_bwd_channel(p, g, d, dt, x, dyf, Bt, Ct,
                                             hcur + (size_t)j * sf, hprev + (size_t)j * sf,
                                             ac + ((size_t)(t - t0) * SCAN_DBLK + j) * sf,
                                             G + (size_t)j * sf, dBt, dCt, &dxs);
                du[row * g->ld_du + d] = dx + dxs;
                if (p->delta_softplus) ddt *= gt.sp[j];
                ddelta[row * g->ld_ddelta + d] = ddt;
                if (p->delta_bias) g->ddelta_bias[d] += ddt;
            }
        }
    }
    if (g->dh0)
        for (int j = 0; j < nd; j++)
            memcpy(g->dh0 + ((size_t)b * D + d0 + j) * sf, G + (size_t)j * sf, sf * sizeof(float));
}

void mb_scan_bwd_cpu(mb_ctx *ctx, const mb_scan_params *p, const void *dyv, const float *dhT,
                     const mb_scan_grads *g, mb_arena *ws)
{
    if (p->io_bf16) {
        mb_ctx_fail(ctx, "cpu scan: bf16 activations (io_bf16) are the GPU's");
        return;
    }
    const float *dy = dyv;
    float *du = g->du, *ddelta = g->ddelta, *dz = g->dz, *gy = g->y;
    const int Bn = p->batch, L = p->seqlen, D = p->dim, sf = scan_sf(p);
    const int nblk = (D + SCAN_DBLK - 1) / SCAN_DBLK;
    const int nck = (L + SCAN_CHUNK - 1) / SCAN_CHUNK;
    const int nthr = scan_threads(ctx);
    const size_t dsteps = scan_decay_steps(p, nthr);
    size_t mark = ws->used;
    /* a scratch arena too small is a sizing bug: fail the context loudly
     * rather than return with the gradients unwritten */
    float **part = (float **)mb_arena_alloc(ws, (size_t)nthr * 3 * sizeof(float *));
    if (!part) {
        mb_ctx_fail(ctx, "%s (scan backward)", mb_error_last());
        return;
    }
    for (int i = 0; i < nthr; i++) {
        part[3 * i] = mb_arena_floats(ws, (size_t)L * 2 * sf);
        part[3 * i + 1] = mb_arena_floats(ws, (size_t)nck * SCAN_DBLK * sf);
        part[3 * i + 2] = mb_arena_floats(ws, (SCAN_CHUNK + dsteps) * SCAN_DBLK * sf);
        if (!part[3 * i] || !part[3 * i + 1] || !part[3 * i + 2]) {
            ws->used = mark;
            mb_ctx_fail(ctx, "%s (scan backward)", mb_error_last());
            return;
        }
    }

    scan_bwd_job job = {.p = p, .g = g, .dy = dy, .dhT = dhT, .part = part, .nck = nck, .keep = dsteps == (size_t)L};
    for (int b = 0; b < Bn; b++) {
        job.b = b;
        for (int i = 0; i < nthr; i++) memset(part[3 * i], 0, (size_t)L * 2 * sf * sizeof(float));
        /* static: a thread's dB, dC partial sums its blocks in the same
         * order every run (a dynamic schedule hands blocks out by timing,
         * and the sums, so the gradients' last bits, changed run to run:
         * a resumed run was not the uninterrupted one). Blocks are equal
         * work, so nothing is lost. */
MB_OMP(omp parallel for schedule(static) num_threads(nthr) if (nblk > 1))
        for (int blk = 0; blk < nblk; blk++) scan_bwd_block(&job, blk, scan_thread_id());
        /* reduce the per-thread dB, dC partials of this batch row */
MB_OMP(omp parallel for num_threads(nthr) if ((long)L * sf > 4096))
        for (int t = 0; t < L; t++) {
            const size_t row = (size_t)b * L + t;
            float *dBr = g->dB + row * g->ld_dB, *dCr = g->dC + row * g->ld_dC;
            for (int k = 0; k < sf; k++) {
                float sb = 0.f, sc = 0.f;
                for (int i = 0; i < nthr; i++) {
                    sb += part[3 * i][(size_t)t * 2 * sf + k];
                    sc += part[3 * i][(size_t)t * 2 * sf + sf + k];
                }
                dBr[k] = sb;
                dCr[k] = sc;
            }
        }
    }
    if (MB_OPS_ROUNDS_BF16(ctx)) {
        const int M = Bn * L;
        mb_bf16_round_copy_cpu(ctx, M, D, du, (int)g->ld_du, du, (int)g->ld_du);
        mb_bf16_round_copy_cpu(ctx, M, D, ddelta, (int)g->ld_ddelta, ddelta, (int)g->ld_ddelta);
        if (p->z) mb_bf16_round_copy_cpu(ctx, M, D, dz, (int)g->ld_dz, dz, (int)g->ld_dz);
        if (gy) mb_bf16_round_copy_cpu(ctx, M, D, gy, D, gy, D);
    }
    ws->used = mark;
}
