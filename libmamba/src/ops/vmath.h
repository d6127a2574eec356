/* Eight float lanes for the CPU ops' inner loops (GCC and clang's vector
 * extension; SSE2 splits a vector in two, AVX2 takes it whole), the clone
 * attribute that compiles a hot function for AVX2 too, and over the lanes:
 * exp, softplus, sigmoid, sin and cos, and (re, im) pairs split and joined.
 *
 * Why an exp of our own: the CPU scan called libm's expf once per state and
 * step, a call the loop around it could not vectorize (profiled: the scan
 * and its expf were half of a prompt's time on the CPU). mb_exp8 is exact to
 * about 2 ulp over the range the scan uses and the same bits on every
 * machine (no FMA contraction: the build does not allow it across
 * statements, and the clones compute the same operations). */
#ifndef MB_VMATH_H
#define MB_VMATH_H

#include <math.h>
#include <string.h>

/* The build targets the baseline x86-64 (SSE2): on a machine with AVX2 the
 * loader picks a clone of a function so marked, compiled for it (GCC's
 * target_clones). The arithmetic of every clone is the same operations in
 * the same order, so the bits are too. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MB_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MB_CPU_CLONES
#endif

/* Eight lane sums folded in the one order every lane-wise sum of the CPU
 * ops uses (and their scalar fallbacks), plus a last term t: the same bits
 * whichever path summed the lanes. */
static inline float mb_fold8(const float *l, float t)
{
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])) + t;
}

#if defined(__GNUC__)
#define MB_HAVE_LANES 1
/* static inline helpers, always inlined: no vector crosses a call, so GCC's
 * note that such a return's ABI depends on AVX does not apply */
#pragma GCC diagnostic ignored "-Wpsabi"
#define MB_VINLINE static inline __attribute__((always_inline))
typedef float mb_f8 __attribute__((vector_size(8 * sizeof(float))));
typedef int mb_i8 __attribute__((vector_size(8 * sizeof(int))));

MB_VINLINE mb_f8 mb_f8_load(const float *p)
{
    mb_f8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

MB_VINLINE void mb_f8_store(float *p, mb_f8 v) { memcpy(p, &v, sizeof v); }

MB_VINLINE float mb_f8_fold(mb_f8 s, float t)
{
    float l[8];
    memcpy(l, &s, sizeof l);
    return mb_fold8(l, t);
}

MB_VINLINE mb_f8 mb_f8_splat(float x) { return (mb_f8){x, x, x, x, x, x, x, x}; }

/* mb_f8_fold(s[j], 0.f) of eight vectors at once, lane j the j-th: the
 * same additions in the same order (lanes i and i+4, then the pairs, then
 * the halves, then + 0), done across the vectors by shuffles instead of
 * one vector at a time through memory */
MB_VINLINE mb_f8 mb_f8_fold8x(const mb_f8 *s)
{
    const mb_i8 lo = {0, 1, 2, 3, 8, 9, 10, 11}, hi = {4, 5, 6, 7, 12, 13, 14, 15};
    const mb_i8 ev = {0, 2, 8, 10, 4, 6, 12, 14}, od = {1, 3, 9, 11, 5, 7, 13, 15};
    /* (l0+l4, l1+l5, l2+l6, l3+l7) of vectors 2k and 2k+1 */
    mb_f8 v[4];
    for (int k = 0; k < 4; k++)
        v[k] = __builtin_shuffle(s[2 * k], s[2 * k + 1], lo) + __builtin_shuffle(s[2 * k], s[2 * k + 1], hi);
    /* the adjacent pairs: lanes (s0, s0, s2, s2, s1, s1, s3, s3) then s4.. */
    const mb_f8 w0 = __builtin_shuffle(v[0], v[1], ev) + __builtin_shuffle(v[0], v[1], od);
    const mb_f8 w1 = __builtin_shuffle(v[2], v[3], ev) + __builtin_shuffle(v[2], v[3], od);
    /* the halves: lanes s0, s2, s4, s6, s1, s3, s5, s7 */
    const mb_f8 x = __builtin_shuffle(w0, w1, ev) + __builtin_shuffle(w0, w1, od);
    const mb_i8 order = {0, 4, 1, 5, 2, 6, 3, 7};
    return __builtin_shuffle(x, order) + mb_f8_splat(0.f);
}

/* lane by lane: mask (all ones or zero, from a comparison) ? a : b */
MB_VINLINE mb_f8 mb_f8_select(mb_i8 mask, mb_f8 a, mb_f8 b)
{
    mb_i8 ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    const mb_i8 r = (mask & ia) | (~mask & ib);
    mb_f8 out;
    memcpy(&out, &r, sizeof out);
    return out;
}

/* exp(x) lane by lane: x = k ln 2 + r, |r| <= ln 2 / 2 (k rounded to
 * nearest, ln 2 in two parts so that r is exact), exp(r) by its Taylor
 * series to r^7 (the remainder under 1e-8 of it), times 2^k built in the
 * exponent bits. Below -87.3 (where expf is subnormal) the result is 0;
 * above 88 it is clamped there (2^k stays finite; the scan never goes near). */
MB_VINLINE mb_f8 mb_exp8(mb_f8 x)
{
    const mb_f8 lo = mb_f8_splat(-87.3f), hi = mb_f8_splat(88.f);
    const mb_i8 under = x < lo;
    x = mb_f8_select(under, lo, x);
    x = mb_f8_select(x > hi, hi, x);
    const mb_f8 magic = mb_f8_splat(12582912.f); /* 1.5 * 2^23: adding it rounds to an integer */
    const mb_f8 kf = (x * mb_f8_splat(1.44269504088896341f) + magic) - magic;
    const mb_f8 r = (x - kf * mb_f8_splat(0.693359375f)) - kf * mb_f8_splat(-2.12194440e-4f);
    mb_f8 p = mb_f8_splat(1.f / 5040.f);
    p = p * r + mb_f8_splat(1.f / 720.f);
    p = p * r + mb_f8_splat(1.f / 120.f);
    p = p * r + mb_f8_splat(1.f / 24.f);
    p = p * r + mb_f8_splat(1.f / 6.f);
    p = p * r + mb_f8_splat(0.5f);
    p = p * r + mb_f8_splat(1.f);
    p = p * r + mb_f8_splat(1.f);
    const mb_i8 k = __builtin_convertvector(kf, mb_i8);
    const mb_i8 bits = (k + 127) << 23;
    mb_f8 two_k;
    memcpy(&two_k, &bits, sizeof two_k);
    return mb_f8_select(under, mb_f8_splat(0.f), p * two_k);
}

/* Eight complex values stored as (re, im) pairs, p[0..16), split into their
 * real and imaginary lanes, and back */
MB_VINLINE void mb_f8_deint(const float *p, mb_f8 *re, mb_f8 *im)
{
    const mb_f8 a = mb_f8_load(p), b = mb_f8_load(p + 8);
    *re = __builtin_shuffle(a, b, (mb_i8){0, 2, 4, 6, 8, 10, 12, 14});
    *im = __builtin_shuffle(a, b, (mb_i8){1, 3, 5, 7, 9, 11, 13, 15});
}

MB_VINLINE void mb_f8_int(float *p, mb_f8 re, mb_f8 im)
{
    mb_f8_store(p, __builtin_shuffle(re, im, (mb_i8){0, 8, 1, 9, 2, 10, 3, 11}));
    mb_f8_store(p + 8, __builtin_shuffle(re, im, (mb_i8){4, 12, 5, 13, 6, 14, 7, 15}));
}

/* softplus(x) = log(1 + e^x) lane by lane, as max(x, 0) + log1p(e^-|x|):
 * with t = e^-|x| in (0, 1], log1p(t) = 2 atanh(s), s = t / (2 + t) <= 1/3,
 * whose odd series to s^15 leaves under 2e-8 of it. No cancellation for
 * small t (log1p(t) ~ t), and above 20 the sum rounds to x as torch's
 * threshold does. The scan's dt, eight channels at once: libm's
 * log1pf(expf(x)) a channel at a time was a fifth of a generation step. */
MB_VINLINE mb_f8 mb_softplus8(mb_f8 x)
{
    const mb_f8 zero = mb_f8_splat(0.f);
    const mb_f8 ax = mb_f8_select(x < zero, -x, x);
    const mb_f8 t = mb_exp8(-ax);
    const mb_f8 s = t / (mb_f8_splat(2.f) + t), q = s * s;
    mb_f8 p = mb_f8_splat(1.f / 15.f);
    p = p * q + mb_f8_splat(1.f / 13.f);
    p = p * q + mb_f8_splat(1.f / 11.f);
    p = p * q + mb_f8_splat(1.f / 9.f);
    p = p * q + mb_f8_splat(1.f / 7.f);
    p = p * q + mb_f8_splat(1.f / 5.f);
    p = p * q + mb_f8_splat(1.f / 3.f);
    p = p * q + mb_f8_splat(1.f);
    return mb_f8_select(x > zero, x, zero) + (s + s) * p;
}

/* sin(x) and cos(x) lane by lane: x = k pi/2 + r, |r| <= pi/4 (k rounded
 * to nearest; pi/2 in three parts, the first two short enough that k times
 * them is exact for |k| < 2^13, so r keeps its bits), sin r and cos r by
 * short polynomials (Cephes' sinf / cosf coefficients), swapped and negated
 * by k mod 4. Within 2^-23 of sin and cos for |x| <= 8192; a lane past that
 * (the reduction would lose r) takes libm's sinf / cosf. The complex scan's
 * decay angle dt A_imag, eight states at once (libm's sinf and cosf a state
 * at a time were most of the complex scan's time). */
MB_VINLINE void mb_sincos8(mb_f8 x, mb_f8 *s_out, mb_f8 *c_out)
{
    const mb_f8 magic = mb_f8_splat(12582912.f); /* 1.5 * 2^23 */
    const mb_i8 big = (x > 8192.f) | (x < -8192.f);
    const mb_f8 xs = mb_f8_select(big, mb_f8_splat(0.f), x);
    const mb_f8 kf = (xs * mb_f8_splat(0.636619772f) + magic) - magic;
    const mb_f8 r = ((xs - kf * mb_f8_splat(1.5703125f)) - kf * mb_f8_splat(4.837512969970703125e-4f)) -
                    kf * mb_f8_splat(7.54978995489188216e-8f);
    const mb_f8 z = r * r;
    mb_f8 sp = mb_f8_splat(-1.9515295891e-4f);
    sp = sp * z + mb_f8_splat(8.3321608736e-3f);
    sp = sp * z + mb_f8_splat(-1.6666654611e-1f);
    const mb_f8 sr = r + (r * z) * sp;
    mb_f8 cp = mb_f8_splat(2.443315711809948e-5f);
    cp = cp * z + mb_f8_splat(-1.388731625493765e-3f);
    cp = cp * z + mb_f8_splat(4.166664568298827e-2f);
    const mb_f8 cr = (mb_f8_splat(1.f) - mb_f8_splat(0.5f) * z) + (z * z) * cp;
    const mb_i8 k = __builtin_convertvector(kf, mb_i8);
    const mb_i8 swap = (k & 1) != 0, neg_s = (k & 2) != 0, neg_c = ((k + 1) & 2) != 0;
    mb_f8 s = mb_f8_select(swap, cr, sr), c = mb_f8_select(swap, sr, cr);
    s = mb_f8_select(neg_s, -s, s);
    c = mb_f8_select(neg_c, -c, c);
    int any = 0;
    for (int j = 0; j < 8; j++) any |= big[j];
    if (any)
        for (int j = 0; j < 8; j++)
            if (big[j]) s[j] = sinf(x[j]), c[j] = cosf(x[j]);
    *s_out = s;
    *c_out = c;
}

/* 1 / (1 + e^-x) lane by lane (exp8 clamps, so no lane overflows) */
MB_VINLINE mb_f8 mb_sigmoid8(mb_f8 x) { return mb_f8_splat(1.f) / (mb_f8_splat(1.f) + mb_exp8(-x)); }
#endif

#endif
