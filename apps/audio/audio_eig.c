/* Cyclic Jacobi for symmetric matrices: see audio_eig.h. */
#include "audio_eig.h"

#include <math.h>
#include <string.h>

/* One rotation in the plane (p, q), p < q, that zeroes a_pq. The matrix is
 * kept whole and symmetric: rows p and q are updated (contiguous), then
 * mirrored into columns p and q. W (rows = eigenvector estimates) gets the
 * same rotation from the left, so W A_0 W^T tracks the diagonal form. */
static void eig_rotate(double *a, int64_t d, int64_t p, int64_t q, double *vecs)
{
    const double apq = a[p * d + q];
    const double app = a[p * d + p], aqq = a[q * d + q];
    /* t = tan(phi), the smaller root of t^2 + 2 theta t - 1 = 0, so the
     * rotation angle is at most pi/4 (what makes cyclic Jacobi converge);
     * for huge theta, theta^2 would overflow: t ~ 1 / (2 theta) */
    const double theta = (aqq - app) / (2.0 * apq);
    double t;
    if (fabs(theta) > 1e150)
        t = 0.5 / theta;
    else
        t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
    const double c = 1.0 / sqrt(t * t + 1.0), s = t * c;

    double *rp = a + p * d, *rq = a + q * d;
    for (int64_t r = 0; r < d; r++) {
        if (r == p || r == q) continue;
        const double x = rp[r], y = rq[r];
        rp[r] = c * x - s * y;
        rq[r] = s * x + c * y;
        a[r * d + p] = rp[r];
        a[r * d + q] = rq[r];
    }
    rp[p] = app - t * apq;
    rq[q] = aqq + t * apq;
    rp[q] = 0.0;
    rq[p] = 0.0;

    if (vecs) {
        double *vp = vecs + p * d, *vq = vecs + q * d;
        for (int64_t r = 0; r < d; r++) {
            const double x = vp[r], y = vq[r];
            vp[r] = c * x - s * y;
            vq[r] = s * x + c * y;
        }
    }
}

/* Ascending eigenvalues, the eigenvector rows moved along (selection sort:
 * d swaps of a row at most, nothing next to the sweeps). */
static void eig_sort(double *w, double *vecs, int64_t d)
{
    for (int64_t i = 0; i < d; i++) {
        int64_t m = i;
        for (int64_t j = i + 1; j < d; j++)
            if (w[j] < w[m]) m = j;
        if (m == i) continue;
        const double tw = w[i];
        w[i] = w[m];
        w[m] = tw;
        if (vecs)
            for (int64_t r = 0; r < d; r++) {
                const double tv = vecs[i * d + r];
                vecs[i * d + r] = vecs[m * d + r];
                vecs[m * d + r] = tv;
            }
    }
}

int audio_eig_sym(double *a, int64_t d, double *w, double *vecs)
{
    if (d <= 0) return 0;
    /* mirror the upper triangle (the caller's lower one may differ by
     * rounding) and take ||A||_F, which rotations leave unchanged */
    double norm2 = 0.0;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i; j < d; j++) {
            const double x = a[i * d + j];
            if (!isfinite(x)) return -1;
            a[j * d + i] = x;
            norm2 += (i == j ? 1.0 : 2.0) * x * x;
        }
    if (vecs) {
        memset(vecs, 0, (size_t)d * (size_t)d * sizeof(double));
        for (int64_t i = 0; i < d; i++) vecs[i * d + i] = 1.0;
    }
    const double floor_abs = AUDIO_EIG_TOL * 1e-3 * sqrt(norm2);

    int sweeps = 0;
    for (;;) {
        int64_t rotated = 0;
        for (int64_t p = 0; p < d - 1; p++)
            for (int64_t q = p + 1; q < d; q++) {
                const double apq = fabs(a[p * d + q]);
                if (apq <= floor_abs) continue;
                if (apq <= AUDIO_EIG_TOL * sqrt(fabs(a[p * d + p]) * fabs(a[q * d + q]))) continue;
                eig_rotate(a, d, p, q, vecs);
                rotated++;
            }
        if (rotated == 0) break;
        if (++sweeps >= AUDIO_EIG_MAX_SWEEPS) return -1;
    }
    for (int64_t i = 0; i < d; i++) w[i] = a[i * d + i];
    eig_sort(w, vecs, d);
    return sweeps;
}
