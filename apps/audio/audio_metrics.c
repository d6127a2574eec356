/* SaShiMi's generated-audio metrics: see audio_metrics.h. */
#include "audio_metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_eig.h"
#include "audio_kmeans.h"
#include "mb_cli_error.h"
#include "mb_cli_rng.h"

/* ---- input checks and probability rows ---------------------------------- */

static int am_check_finite(const char *what, const char *set, const double *x, int64_t n, int64_t cols,
                           char *err, size_t errlen)
{
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < cols; j++)
            if (!isfinite(x[i * cols + j]))
                return mb_cli_errf(err, errlen, what, "%s: row %lld, column %lld is %s", set, (long long)i,
                                   (long long)j, mb_cli_nonfinite(x[i * cols + j]));
    return 0;
}

/* A malloc'd copy of the n x k probabilities, each row divided by its sum
 * and floored at AUDIO_METRIC_PROB_FLOOR (the header's rule); NULL with
 * the reason in err. */
static double *am_probs_prepare(const char *what, const char *set, const double *p, int64_t n, int64_t k,
                                char *err, size_t errlen)
{
    if (k < 1) {
        mb_cli_errf(err, errlen, what, "need at least 1 class (k %lld)", (long long)k);
        return NULL;
    }
    if (am_check_finite(what, set, p, n, k, err, errlen) != 0) return NULL;
    double *q = malloc((size_t)n * (size_t)k * sizeof(double));
    if (!q) {
        mb_cli_errf(err, errlen, what, "out of memory (%lld x %lld probabilities)", (long long)n,
                    (long long)k);
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        const double *pi = p + i * k;
        double s = 0.0;
        for (int64_t c = 0; c < k; c++) {
            if (pi[c] < 0.0) {
                mb_cli_errf(err, errlen, what, "%s: row %lld, class %lld is negative (%g)", set, (long long)i,
                            (long long)c, pi[c]);
                free(q);
                return NULL;
            }
            s += pi[c];
        }
        /* finite entries can still sum to inf (all near DBL_MAX) */
        if (!(s > 0.0) || !isfinite(s)) {
            mb_cli_errf(err, errlen, what, "%s: row %lld sums to %g, not a distribution", set, (long long)i, s);
            free(q);
            return NULL;
        }
        for (int64_t c = 0; c < k; c++) {
            const double v = pi[c] / s;
            q[i * k + c] = v > AUDIO_METRIC_PROB_FLOOR ? v : AUDIO_METRIC_PROB_FLOOR;
        }
    }
    return q;
}

/* The mean of rows idx[0..m) of p (idx NULL: rows 0..m), divided by its
 * sum as scipy.stats.entropy would. */
static void am_mean_row(const double *p, const int64_t *idx, int64_t m, int64_t k, double *mean)
{
    memset(mean, 0, (size_t)k * sizeof(double));
    for (int64_t r = 0; r < m; r++) {
        const double *pr = p + (idx ? idx[r] : r) * k;
        for (int64_t c = 0; c < k; c++) mean[c] += pr[c];
    }
    double s = 0.0;
    for (int64_t c = 0; c < k; c++) s += mean[c];
    for (int64_t c = 0; c < k; c++) mean[c] /= s;
}

/* KL(p || q) and H(p) of prepared rows (every entry > 0). */
static double am_kl(const double *p, const double *q, int64_t k)
{
    double s = 0.0;
    for (int64_t c = 0; c < k; c++) s += p[c] * log(p[c] / q[c]);
    return s;
}

static double am_entropy(const double *p, int64_t k)
{
    double s = 0.0;
    for (int64_t c = 0; c < k; c++) s -= p[c] * log(p[c]);
    return s;
}

/* ---- FID ----------------------------------------------------------------- */

/* Mean row and unbiased covariance (n - 1) of x (n x d), n >= 2; row is d
 * doubles of scratch. */
static void am_moments(const double *x, int64_t n, int64_t d, double *mu, double *cov, double *row)
{
    memset(mu, 0, (size_t)d * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) mu[j] += x[i * d + j];
    for (int64_t j = 0; j < d; j++) mu[j] /= (double)n;
    /* centered first: sum x x^T - n mu mu^T would cancel badly when the
     * features sit far from 0 */
    memset(cov, 0, (size_t)d * (size_t)d * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < d; j++) row[j] = x[i * d + j] - mu[j];
        for (int64_t a = 0; a < d; a++) {
            const double ra = row[a];
            double *ca = cov + a * d;
            for (int64_t b = a; b < d; b++) ca[b] += ra * row[b];
        }
    }
    const double inv = 1.0 / (double)(n - 1);
    for (int64_t a = 0; a < d; a++)
        for (int64_t b = a; b < d; b++) {
            cov[a * d + b] *= inv;
            cov[b * d + a] = cov[a * d + b];
        }
}

/* c = a b, all d x d row-major. */
static void am_matmul(const double *a, const double *b, double *c, int64_t d)
{
    memset(c, 0, (size_t)d * (size_t)d * sizeof(double));
    for (int64_t i = 0; i < d; i++)
        for (int64_t t = 0; t < d; t++) {
            const double ait = a[i * d + t];
            const double *bt = b + t * d;
            double *ci = c + i * d;
            for (int64_t j = 0; j < d; j++) ci[j] += ait * bt[j];
        }
}

/* tr sqrtm(s_ref s_gen) for covariances (d x d, symmetric PSD); s_ref is
 * overwritten. w: d doubles; m1, m2, m3: d x d scratch. -1 when an
 * eigendecomposition did not converge. */
static int am_trace_sqrt(double *s_ref, const double *s_gen, int64_t d, double *w, double *m1, double *m2,
                         double *m3, double *out)
{
    /* S_ref = Q diag(l) Q^T, eigenvectors as the rows of m1 */
    if (audio_eig_sym(s_ref, d, w, m1) < 0) return -1;
    /* R = sum_k sqrt(l_k) q_k q_k^T into m2: the symmetric root of S_ref
     * (rounding can leave a zero eigenvalue slightly negative) */
    memset(m2, 0, (size_t)d * (size_t)d * sizeof(double));
    for (int64_t kk = 0; kk < d; kk++) {
        const double sl = sqrt(w[kk] > 0.0 ? w[kk] : 0.0);
        if (sl == 0.0) continue;
        const double *q = m1 + kk * d;
        for (int64_t i = 0; i < d; i++) {
            const double f = sl * q[i];
            double *ri = m2 + i * d;
            for (int64_t j = 0; j < d; j++) ri[j] += f * q[j];
        }
    }
    /* M = R S_gen R: similar to R^2 S_gen = S_ref S_gen where R is
     * invertible, and with the same non-zero eigenvalues in any case */
    am_matmul(m2, s_gen, m3, d);
    am_matmul(m3, m2, m1, d);
    for (int64_t i = 0; i < d; i++) /* symmetric up to rounding: average */
        for (int64_t j = i + 1; j < d; j++) m1[i * d + j] = 0.5 * (m1[i * d + j] + m1[j * d + i]);
    if (audio_eig_sym(m1, d, w, NULL) < 0) return -1;
    double tr = 0.0;
    for (int64_t i = 0; i < d; i++) tr += sqrt(w[i] > 0.0 ? w[i] : 0.0);
    *out = tr;
    return 0;
}

int audio_metric_fid(const double *ref, int64_t n_ref, const double *gen, int64_t n_gen, int64_t d,
                     double *fid, char *err, size_t errlen)
{
    if (d < 1) return mb_cli_errf(err, errlen, "FID", "need at least 1 feature (d %lld)", (long long)d);
    if (n_ref < 2 || n_gen < 2)
        return mb_cli_errf(err, errlen, "FID",
                           "needs at least 2 rows in each set for a covariance (reference %lld, generated %lld)",
                           (long long)n_ref, (long long)n_gen);
    if (am_check_finite("FID", "reference features", ref, n_ref, d, err, errlen) != 0) return -1;
    if (am_check_finite("FID", "generated features", gen, n_gen, d, err, errlen) != 0) return -1;
    const size_t dd = (size_t)d * (size_t)d;
    double *vec = malloc(4 * (size_t)d * sizeof(double));
    double *mat = malloc(5 * dd * sizeof(double));
    if (!vec || !mat) {
        free(vec);
        free(mat);
        return mb_cli_errf(err, errlen, "FID", "out of memory (d %lld)", (long long)d);
    }
    double *mu_r = vec, *mu_g = vec + d, *row = vec + 2 * d, *w = vec + 3 * d;
    double *s_r = mat, *s_g = mat + dd;
    am_moments(ref, n_ref, d, mu_r, s_r, row);
    am_moments(gen, n_gen, d, mu_g, s_g, row);
    double diff2 = 0.0, tr = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const double t = mu_g[j] - mu_r[j];
        diff2 += t * t;
        tr += s_r[j * d + j] + s_g[j * d + j];
    }
    double trsq = 0.0;
    const int rc = am_trace_sqrt(s_r, s_g, d, w, mat + 2 * dd, mat + 3 * dd, mat + 4 * dd, &trsq);
    free(vec);
    free(mat);
    if (rc != 0)
        return mb_cli_errf(err, errlen, "FID", "the eigendecomposition did not converge in %d sweeps (d %lld)",
                           AUDIO_EIG_MAX_SWEEPS, (long long)d);
    *fid = diff2 + tr - 2.0 * trsq;
    return 0;
}

/* ---- IS, mIS, AM ---------------------------------------------------------- */

int audio_metric_is(const double *probs, int64_t n, int64_t k, uint64_t seed, double *is, char *err,
                    size_t errlen)
{
    if (n < 2)
        return mb_cli_errf(err, errlen, "IS", "needs at least 2 rows, one for each half (%lld)", (long long)n);
    double *p = am_probs_prepare("IS", "generated probabilities", probs, n, k, err, errlen);
    if (!p) return -1;
    int64_t *perm = malloc((size_t)n * sizeof(int64_t));
    double *mean = malloc((size_t)k * sizeof(double));
    if (!perm || !mean) {
        free(p);
        free(perm);
        free(mean);
        return mb_cli_errf(err, errlen, "IS", "out of memory (%lld rows)", (long long)n);
    }
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    uint64_t st = seed;
    for (int64_t i = n - 1; i > 0; i--) {
        const int64_t j = (int64_t)mb_cli_rng_below(&st, (uint64_t)(i + 1));
        const int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    const int64_t half = n / 2;
    am_mean_row(p, perm + half, n - half, k, mean);
    double kl = 0.0;
    for (int64_t r = 0; r < half; r++) kl += am_kl(p + perm[r] * k, mean, k);
    *is = exp(kl / (double)half);
    free(p);
    free(perm);
    free(mean);
    return 0;
}

int audio_metric_mis(const double *probs, int64_t n, int64_t k, double *mis, char *err, size_t errlen)
{
    if (n < 1) return mb_cli_errf(err, errlen, "mIS", "needs at least 1 row");
    double *p = am_probs_prepare("mIS", "generated probabilities", probs, n, k, err, errlen);
    if (!p) return -1;
    double *mp = calloc((size_t)k, sizeof(double)), *mlog = calloc((size_t)k, sizeof(double));
    if (!mp || !mlog) {
        free(p);
        free(mp);
        free(mlog);
        return mb_cli_errf(err, errlen, "mIS", "out of memory (k %lld)", (long long)k);
    }
    /* the identity of the header: the double loop's n^2 k terms regrouped
     * into three sums over rows (exact, rows summing to 1 or not) */
    double plogp = 0.0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < k; c++) {
            const double v = p[i * k + c], lv = log(v);
            plogp += v * lv;
            mp[c] += v;
            mlog[c] += lv;
        }
    double cross = 0.0;
    for (int64_t c = 0; c < k; c++) cross += (mp[c] / (double)n) * (mlog[c] / (double)n);
    *mis = exp(plogp / (double)n - cross);
    free(p);
    free(mp);
    free(mlog);
    return 0;
}

int audio_metric_am(const double *ref, int64_t n_ref, const double *gen, int64_t n_gen, int64_t k,
                    double *am, char *err, size_t errlen)
{
    if (n_ref < 1 || n_gen < 1)
        return mb_cli_errf(err, errlen, "AM", "needs at least 1 row in each set (reference %lld, generated %lld)",
                           (long long)n_ref, (long long)n_gen);
    double *pr = am_probs_prepare("AM", "reference probabilities", ref, n_ref, k, err, errlen);
    if (!pr) return -1;
    double *pg = am_probs_prepare("AM", "generated probabilities", gen, n_gen, k, err, errlen);
    double *means = malloc(2 * (size_t)(k > 0 ? k : 1) * sizeof(double));
    if (!pg || !means) {
        free(pr);
        free(means);
        if (!pg) return -1;
        free(pg);
        return mb_cli_errf(err, errlen, "AM", "out of memory (k %lld)", (long long)k);
    }
    am_mean_row(pr, NULL, n_ref, k, means);
    am_mean_row(pg, NULL, n_gen, k, means + k);
    double h = 0.0;
    for (int64_t i = 0; i < n_gen; i++) h += am_entropy(pg + i * k, k);
    *am = am_kl(means, means + k, k) + h / (double)n_gen;
    free(pr);
    free(pg);
    free(means);
    return 0;
}

/* ---- NDB ----------------------------------------------------------------- */

int audio_metric_ndb_bins(const double *centroids, int64_t n_bins, const double *ref, int64_t n_ref,
                          const double *gen, int64_t n_gen, int64_t d, int64_t *count_ref,
                          int64_t *count_gen, int64_t *different, double *ndb, char *err, size_t errlen)
{
    if (n_bins < 1 || d < 1)
        return mb_cli_errf(err, errlen, "NDB", "need at least 1 bin and 1 feature (bins %lld, d %lld)",
                           (long long)n_bins, (long long)d);
    if (n_ref < 1 || n_gen < 1)
        return mb_cli_errf(err, errlen, "NDB", "needs at least 1 row in each set (reference %lld, generated %lld)",
                           (long long)n_ref, (long long)n_gen);
    if (am_check_finite("NDB", "centroids", centroids, n_bins, d, err, errlen) != 0) return -1;
    if (am_check_finite("NDB", "reference features", ref, n_ref, d, err, errlen) != 0) return -1;
    if (am_check_finite("NDB", "generated features", gen, n_gen, d, err, errlen) != 0) return -1;
    const int64_t nmax = n_ref > n_gen ? n_ref : n_gen;
    int64_t *lab = malloc((size_t)nmax * sizeof(int64_t));
    int64_t *cnt = calloc(2 * (size_t)n_bins, sizeof(int64_t));
    if (!lab || !cnt) {
        free(lab);
        free(cnt);
        return mb_cli_errf(err, errlen, "NDB", "out of memory (%lld rows)", (long long)nmax);
    }
    int64_t *c1 = cnt, *c2 = cnt + n_bins;
    audio_kmeans_assign(ref, n_ref, d, centroids, n_bins, lab, NULL);
    for (int64_t i = 0; i < n_ref; i++) c1[lab[i]]++;
    audio_kmeans_assign(gen, n_gen, d, centroids, n_bins, lab, NULL);
    for (int64_t i = 0; i < n_gen; i++) c2[lab[i]]++;

    const double n1 = (double)n_ref, n2 = (double)n_gen;
    int64_t diff = 0;
    for (int64_t b = 0; b < n_bins; b++) {
        const double p1 = (double)c1[b] / n1, p2 = (double)c2[b] / n2;
        const double pp = (p1 * n1 + p2 * n2) / (n1 + n2);
        const double se = sqrt(pp * (1.0 - pp) * (1.0 / n1 + 1.0 / n2));
        if (!(se > 0.0)) continue; /* empty in both sets (or all rows in it) */
        const double z = (p1 - p2) / se;
        /* two-sided p-value 2 Phi(-|z|) = erfc(|z| / sqrt 2): erfc keeps
         * its relative accuracy far into the tail, where 1 - erf would
         * round to 0 */
        if (erfc(fabs(z) / sqrt(2.0)) < AUDIO_METRIC_NDB_ALPHA) diff++;
    }
    if (count_ref) memcpy(count_ref, c1, (size_t)n_bins * sizeof(int64_t));
    if (count_gen) memcpy(count_gen, c2, (size_t)n_bins * sizeof(int64_t));
    if (different) *different = diff;
    *ndb = (double)diff / (double)n_bins;
    free(lab);
    free(cnt);
    return 0;
}

int audio_metric_ndb(const double *ref, int64_t n_ref, const double *gen, int64_t n_gen, int64_t d,
                     int64_t n_bins, uint64_t seed, double *ndb, char *err, size_t errlen)
{
    if (n_bins < 1 || d < 1)
        return mb_cli_errf(err, errlen, "NDB", "need at least 1 bin and 1 feature (bins %lld, d %lld)",
                           (long long)n_bins, (long long)d);
    if (n_ref < n_bins)
        return mb_cli_errf(err, errlen, "NDB", "the reference has %lld rows, fewer than the %lld bins of its k-means",
                           (long long)n_ref, (long long)n_bins);
    if (am_check_finite("NDB", "reference features", ref, n_ref, d, err, errlen) != 0) return -1;
    double *cent = malloc((size_t)n_bins * (size_t)d * sizeof(double));
    if (!cent) return mb_cli_errf(err, errlen, "NDB", "out of memory (%lld bins)", (long long)n_bins);
    char kerr[256];
    if (audio_kmeans_fit(ref, n_ref, d, n_bins, seed, AUDIO_KMEANS_MAX_ITER, cent, NULL, NULL, NULL, NULL, kerr,
                         sizeof kerr) != 0) {
        free(cent);
        return mb_cli_errf(err, errlen, "NDB", "%s", kerr);
    }
    const int rc = audio_metric_ndb_bins(cent, n_bins, ref, n_ref, gen, n_gen, d, NULL, NULL, NULL, ndb, err,
                                         errlen);
    free(cent);
    return rc;
}

/* ---- all five -------------------------------------------------------------- */

void audio_metrics_opts_default(audio_metrics_opts *o)
{
    o->seed = 0;
    o->ndb_bins = AUDIO_METRIC_NDB_BINS;
}

int audio_metrics_all(const audio_metrics_set *ref, const audio_metrics_set *gen, int64_t k, int64_t d,
                      const audio_metrics_opts *o, audio_metrics_result *out, char *err, size_t errlen)
{
    audio_metrics_opts def;
    if (!o) {
        audio_metrics_opts_default(&def);
        o = &def;
    }
    audio_metrics_result r;
    if (audio_metric_fid(ref->feats, ref->n, gen->feats, gen->n, d, &r.fid, err, errlen) != 0) return -1;
    if (audio_metric_is(gen->probs, gen->n, k, o->seed, &r.is, err, errlen) != 0) return -1;
    if (audio_metric_mis(gen->probs, gen->n, k, &r.mis, err, errlen) != 0) return -1;
    if (audio_metric_am(ref->probs, ref->n, gen->probs, gen->n, k, &r.am, err, errlen) != 0) return -1;
    if (audio_metric_ndb(ref->feats, ref->n, gen->feats, gen->n, d, o->ndb_bins, o->seed, &r.ndb, err,
                         errlen) != 0)
        return -1;
    *out = r;
    return 0;
}
