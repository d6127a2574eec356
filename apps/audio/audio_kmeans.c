/* k-means++ and Lloyd for NDB: see audio_kmeans.h. */
#include "audio_kmeans.h"

#include <stdlib.h>
#include <string.h>

#include "mb_cli_error.h"
#include "mb_cli_rng.h"

#define KM_WHAT "k-means"

static double km_dist2(const double *a, const double *b, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) {
        const double t = a[j] - b[j];
        s += t * t;
    }
    return s;
}

double audio_kmeans_assign(const double *x, int64_t n, int64_t d, const double *centroids, int64_t k,
                           int64_t *labels, double *dist2)
{
    double inertia = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double *xi = x + i * d;
        int64_t best = 0;
        double bd = km_dist2(xi, centroids, d);
        for (int64_t c = 1; c < k; c++) {
            const double dc = km_dist2(xi, centroids + c * d, d);
            if (dc < bd) { /* strict: a tie stays with the lower index */
                bd = dc;
                best = c;
            }
        }
        if (labels) labels[i] = best;
        if (dist2) dist2[i] = bd;
        inertia += bd;
    }
    return inertia;
}

/* Uniform in [0, 1) with 53 random bits. */
static double km_uniform(uint64_t *st)
{
    return (double)(mb_cli_rng_next(st) >> 11) * 0x1p-53;
}

/* k-means++: centers into c (k x d); mind is n doubles of scratch. */
static void km_seed(const double *x, int64_t n, int64_t d, int64_t k, uint64_t seed, double *c, double *mind)
{
    uint64_t st = seed;
    int64_t pick = (int64_t)mb_cli_rng_below(&st, (uint64_t)n);
    memcpy(c, x + pick * d, (size_t)d * sizeof(double));
    for (int64_t i = 0; i < n; i++) mind[i] = km_dist2(x + i * d, c, d);
    for (int64_t j = 1; j < k; j++) {
        double total = 0.0;
        for (int64_t i = 0; i < n; i++) total += mind[i];
        if (total > 0.0) {
            /* the first row whose running sum passes u; rounding can leave
             * u at or above the final sum: then the last row with weight */
            const double u = km_uniform(&st) * total;
            double cum = 0.0;
            pick = -1;
            int64_t last = -1;
            for (int64_t i = 0; i < n; i++) {
                if (mind[i] <= 0.0) continue;
                last = i;
                cum += mind[i];
                if (cum > u) {
                    pick = i;
                    break;
                }
            }
            if (pick < 0) pick = last;
        } else {
            pick = (int64_t)mb_cli_rng_below(&st, (uint64_t)n);
        }
        double *cj = c + j * d;
        memcpy(cj, x + pick * d, (size_t)d * sizeof(double));
        for (int64_t i = 0; i < n; i++) {
            const double dn = km_dist2(x + i * d, cj, d);
            if (dn < mind[i]) mind[i] = dn;
        }
    }
}

/* Each empty cluster, in index order, takes the row farthest from its
 * centroid among rows whose cluster has another row; that row's distance
 * becomes 0 (it will be its cluster's mean). */
static void km_fill_empty(int64_t n, int64_t k, int64_t *labels, double *dist2, int64_t *count)
{
    for (int64_t j = 0; j < k; j++) {
        if (count[j] > 0) continue;
        int64_t far = -1;
        for (int64_t i = 0; i < n; i++)
            if (count[labels[i]] > 1 && dist2[i] > 0.0 && (far < 0 || dist2[i] > dist2[far])) far = i;
        if (far < 0) return; /* every row sits on its centroid: nothing to gain */
        count[labels[far]]--;
        labels[far] = j;
        count[j] = 1;
        dist2[far] = 0.0;
    }
}

/* Every non-empty centroid to its rows' mean (rows summed in row order). */
static void km_update(const double *x, int64_t n, int64_t d, int64_t k, const int64_t *labels,
                      const int64_t *count, double *c)
{
    for (int64_t j = 0; j < k; j++)
        if (count[j] > 0) memset(c + j * d, 0, (size_t)d * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        double *cj = c + labels[i] * d;
        const double *xi = x + i * d;
        for (int64_t t = 0; t < d; t++) cj[t] += xi[t];
    }
    for (int64_t j = 0; j < k; j++) {
        if (count[j] == 0) continue;
        const double inv = 1.0 / (double)count[j];
        for (int64_t t = 0; t < d; t++) c[j * d + t] *= inv;
    }
}

int audio_kmeans_fit(const double *x, int64_t n, int64_t d, int64_t k, uint64_t seed, int max_iter,
                     double *centroids, int64_t *labels, double *inertia, double *trace, int *iters,
                     char *err, size_t errlen)
{
    if (k < 1 || d < 1) return mb_cli_errf(err, errlen, KM_WHAT, "need k >= 1 and d >= 1 (k %lld, d %lld)",
                                           (long long)k, (long long)d);
    if (n < k)
        return mb_cli_errf(err, errlen, KM_WHAT, "%lld rows cannot make %lld clusters", (long long)n,
                           (long long)k);
    if (max_iter < 1) return mb_cli_errf(err, errlen, KM_WHAT, "max_iter must be at least 1");
    int64_t *lab = malloc((size_t)n * sizeof(int64_t));
    int64_t *prev = malloc((size_t)n * sizeof(int64_t));
    double *dist2 = malloc((size_t)n * sizeof(double));
    int64_t *count = malloc((size_t)k * sizeof(int64_t));
    if (!lab || !prev || !dist2 || !count) {
        free(lab);
        free(prev);
        free(dist2);
        free(count);
        return mb_cli_errf(err, errlen, KM_WHAT, "out of memory (%lld rows)", (long long)n);
    }
    km_seed(x, n, d, k, seed, centroids, dist2);

    int it = 0;
    for (int64_t i = 0; i < n; i++) prev[i] = -1;
    while (it < max_iter) {
        const double in = audio_kmeans_assign(x, n, d, centroids, k, lab, dist2);
        if (trace) trace[it] = in;
        it++;
        /* the centroids are already the means of this assignment */
        if (memcmp(lab, prev, (size_t)n * sizeof(int64_t)) == 0) break;
        memset(count, 0, (size_t)k * sizeof(int64_t));
        for (int64_t i = 0; i < n; i++) count[lab[i]]++;
        km_fill_empty(n, k, lab, dist2, count);
        km_update(x, n, d, k, lab, count, centroids);
        memcpy(prev, lab, (size_t)n * sizeof(int64_t));
    }
    /* labels against the centroids returned (after the cap, the last
     * update moved them) */
    const double fin = audio_kmeans_assign(x, n, d, centroids, k, lab, NULL);
    if (labels) memcpy(labels, lab, (size_t)n * sizeof(int64_t));
    if (inertia) *inertia = fin;
    if (iters) *iters = it;
    free(lab);
    free(prev);
    free(dist2);
    free(count);
    return 0;
}
