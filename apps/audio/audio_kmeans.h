/* k-means for the NDB metric (audio_metrics.h): k-means++ seeding driven by
 * splitmix64 (mb_cli_rng), then Lloyd iterations until the assignment stops
 * changing or a cap. Deterministic for a seed: ties go to the lowest index,
 * and the order of every sum is fixed.
 *
 * Not sklearn's KMeans (SaShiMi's): that runs "greedy" k-means++ (2 + ln k
 * trial centers per step) from numpy's generator, n_init restarts, and
 * stops on a centroid-shift tolerance. The clusters here are a k-means
 * solution of the same kind, not the same one. */
#ifndef AUDIO_KMEANS_H
#define AUDIO_KMEANS_H

#include <stddef.h>
#include <stdint.h>

/* sklearn's max_iter */
#define AUDIO_KMEANS_MAX_ITER 300

/* Each row of x (n x d) to its nearest centroid (k x d) in squared
 * Euclidean distance, ties to the lowest index: labels[0..n) (may be NULL),
 * dist2[0..n) its squared distance (may be NULL). Returns the inertia, the
 * sum of those squared distances. */
double audio_kmeans_assign(const double *x, int64_t n, int64_t d, const double *centroids, int64_t k,
                           int64_t *labels, double *dist2);

/* Clusters x (n x d, finite, n >= k >= 1) into k. Seeding: k-means++ (the
 * first center a uniform row, each next one a row drawn with probability
 * proportional to its squared distance to the nearest center so far; when
 * every row sits on a center, a uniform row). Lloyd: assign, then give each
 * empty cluster (in index order) the row farthest from its centroid among
 * those whose cluster keeps another row (ties: lowest row; none when every
 * row sits on its centroid, and the cluster stays empty and where it was),
 * then move every non-empty centroid to its rows' mean. This never raises
 * the inertia: the moved row's distance drops to 0, and a mean is the best
 * center for its rows. Stops when an assignment equals the previous one,
 * or after max_iter assignments.
 * Out: centroids (k x d); labels (n, may be NULL): every row's nearest
 * centroid among the returned ones; *inertia (may be NULL) of that final
 * assignment; trace (may be NULL, max_iter entries): the inertia after each
 * Lloyd assignment, non-increasing; *iters (may be NULL): how many there
 * were. Returns 0, or -1 with one line in err (bad sizes, out of memory). */
int audio_kmeans_fit(const double *x, int64_t n, int64_t d, int64_t k, uint64_t seed, int max_iter,
                     double *centroids, int64_t *labels, double *inertia, double *trace, int *iters,
                     char *err, size_t errlen);

#endif
