/* SaShiMi's metrics of generated audio (state-spaces/s4,
 * models/sashimi/sc09_classifier/test_speech_commands.py), computed from a
 * digit classifier's outputs on a reference set (real audio) and on a
 * generated set: its softmax probabilities (n x k) and its pooled features,
 * the input of its final linear layer (n x d). All inputs are row-major
 * double arrays; every metric is computed in double. Each call returns 0,
 * or -1 with one line "METRIC: what" in err (err may be NULL).
 *
 * Probabilities (IS, mIS, AM). Every row is first divided by its sum (as
 * scipy.stats.entropy does with its arguments), then every entry is raised
 * to at least AUDIO_METRIC_PROB_FLOOR. The classifier's float softmax can
 * underflow to exactly 0; scipy then counts 0 for a p = 0 term (so do we,
 * within 1e-30 * 69) but inf for KL(p || q) where q = 0 < p, which would
 * make a whole score inf or 0 for one underflowed entry. With the floor,
 * such a term is finite: p (ln p + 69). The floor leaves a row's sum at 1
 * in double (k * 1e-30 is far below its rounding). A row with a negative,
 * NaN or infinite entry, or that sums to 0, is refused. Means of rows are
 * of these prepared rows, divided by their sum again (scipy's
 * normalization; it moves them by rounding only). Natural logarithms.
 *
 * Where we depart from SaShiMi's code, and why:
 *  - FID: tr sqrtm(S_ref S_gen) through two symmetric eigendecompositions
 *    (below) instead of scipy.linalg.sqrtm of the non-symmetric product:
 *    no complex round-off to drop, no 1e-4 diagonal offset fallback for a
 *    singular product (ours needs none), everything in double (SaShiMi's
 *    means are taken in float32 from float32 features).
 *  - IS: the shuffle is our own (Fisher-Yates on splitmix64, below), not
 *    numpy's permutation with seed 0, so the halves differ. And SaShiMi's
 *    call entropy(probs_1, repeat(mean_2)) uses scipy's default axis=0:
 *    it sums over the rows (samples) of each class column, not over the
 *    classes of each row, then averages over the k classes. We compute the
 *    IS that its comments describe: KL of each row against the mean row.
 *  - mIS: the exact mean over all n^2 ordered pairs, the limit of
 *    SaShiMi's 10,000 random pairs drawn with replacement: deterministic.
 *  - NDB: our k-means (audio_kmeans.h), not sklearn's KMeans with
 *    random_state 0, so the bins differ. All K bins are kept even when one
 *    is empty in the reference (SaShiMi's np.unique counts would drop it
 *    and misalign the bins); a bin with se == 0 (empty in both sets) is not
 *    different (SaShiMi gets a NaN p-value there, which is not < 0.05:
 *    the same answer).
 * None of the scores can match SaShiMi's published numbers without their
 * classifier; these are the same quantities on ours. */
#ifndef AUDIO_METRICS_H
#define AUDIO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define AUDIO_METRIC_PROB_FLOOR 1e-30
/* SaShiMi's K for NDB, and its significance level */
#define AUDIO_METRIC_NDB_BINS 50
#define AUDIO_METRIC_NDB_ALPHA 0.05

/* Frechet distance between Gaussians fitted to the features:
 *   FID = ||mu_gen - mu_ref||^2 + tr(S_gen + S_ref - 2 sqrtm(S_ref S_gen)),
 * mu the mean row, S the unbiased covariance (divided by n - 1, as np.cov),
 * sqrtm the principal square root. Its trace is taken without complex
 * arithmetic: S_ref = Q diag(l) Q^T (audio_eig.h, l clamped at 0),
 * R = Q diag(sqrt l) Q^T, and R S_gen R (symmetric, PSD) has the non-zero
 * eigenvalues of S_ref S_gen, so tr sqrtm(S_ref S_gen) = sum of
 * sqrt(max(eig(R S_gen R), 0)). Not clamped: rounding can leave FID(X, X)
 * slightly below 0 (~1e-15 of tr S). Needs >= 2 rows in each set, d >= 1.
 * O((n_ref + n_gen) d^2 + d^3): d = 512 takes ~6 s on one core, and agrees
 * with scipy's sqrtm there to 10 digits. */
int audio_metric_fid(const double *ref, int64_t n_ref, const double *gen, int64_t n_gen, int64_t d,
                     double *fid, char *err, size_t errlen);

/* Inception score on two halves: the rows' order is shuffled, Fisher-Yates
 * from the last position down (position i swaps with
 * mb_cli_rng_below(state, i + 1), state starting at seed, SaShiMi's seed is
 * 0), the first floor(n / 2) rows of the shuffled order are the first half,
 * the rest the second, and
 *   IS = exp(mean over first-half rows p of KL(p || mean of the second
 *        half's rows)).
 * Needs n >= 2. */
int audio_metric_is(const double *probs, int64_t n, int64_t k, uint64_t seed, double *is, char *err,
                    size_t errlen);

/* Modified inception score: exp of the mean of KL(p_i || p_j) over all n^2
 * ordered pairs (i == j included, contributing 0). O(n k) through
 *   mean_ij KL(p_i || p_j) = mean_i sum_c p_ic ln p_ic
 *                            - sum_c (mean_i p_ic) (mean_j ln p_jc).
 * Needs n >= 1. */
int audio_metric_mis(const double *probs, int64_t n, int64_t k, double *mis, char *err, size_t errlen);

/* AM score: KL(mean_ref || mean_gen) + mean over gen rows of H(p_row)
 * (lower is better). Needs n_ref, n_gen >= 1. */
int audio_metric_am(const double *ref, int64_t n_ref, const double *gen, int64_t n_gen, int64_t k,
                    double *am, char *err, size_t errlen);

/* NDB's test on given bins: every row of ref and of gen (d features) goes
 * to its nearest centroid (n_bins x d; squared Euclidean, ties to the lower
 * index); per bin the proportions p1 = count_ref / n_ref and
 * p2 = count_gen / n_gen go through the two-proportion z-test
 *   p = (p1 n1 + p2 n2) / (n1 + n2), se = sqrt(p (1 - p) (1/n1 + 1/n2)),
 *   z = (p1 - p2) / se, different when 2 Phi(-|z|) = erfc(|z| / sqrt 2)
 *   < AUDIO_METRIC_NDB_ALPHA; se == 0 is not different.
 * Out: *different (may be NULL), *ndb = different / n_bins, and the counts
 * per bin (count_ref, count_gen: n_bins entries each, may be NULL).
 * Needs n_ref, n_gen, n_bins >= 1. */
int audio_metric_ndb_bins(const double *centroids, int64_t n_bins, const double *ref, int64_t n_ref,
                          const double *gen, int64_t n_gen, int64_t d, int64_t *count_ref,
                          int64_t *count_gen, int64_t *different, double *ndb, char *err, size_t errlen);

/* Number of statistically different bins: k-means with n_bins clusters on
 * the reference features (audio_kmeans_fit: seed, at most
 * AUDIO_KMEANS_MAX_ITER iterations), then audio_metric_ndb_bins. Fails when
 * the reference has fewer rows than n_bins. O(iterations n_ref n_bins d). */
int audio_metric_ndb(const double *ref, int64_t n_ref, const double *gen, int64_t n_gen, int64_t d,
                     int64_t n_bins, uint64_t seed, double *ndb, char *err, size_t errlen);

/* ---- all five, for the eval command ---- */

typedef struct {
    const double *probs; /* n x k */
    const double *feats; /* n x d */
    int64_t n;
} audio_metrics_set;

typedef struct {
    uint64_t seed;    /* the IS shuffle and the k-means++ seeding [0] */
    int64_t ndb_bins; /* [AUDIO_METRIC_NDB_BINS] */
} audio_metrics_opts;

typedef struct {
    double fid, is, mis, am, ndb;
} audio_metrics_result;

void audio_metrics_opts_default(audio_metrics_opts *o);
/* FID(ref, gen), IS(gen), mIS(gen), AM(ref, gen), NDB(ref, gen); o NULL
 * for the defaults. The first failure's line goes to err; *out is written
 * only when all five succeed. */
int audio_metrics_all(const audio_metrics_set *ref, const audio_metrics_set *gen, int64_t k, int64_t d,
                      const audio_metrics_opts *o, audio_metrics_result *out, char *err, size_t errlen);

#endif
