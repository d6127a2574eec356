/* Eigenvalues (and eigenvectors) of a real symmetric matrix, in double, by
 * cyclic Jacobi rotations: for the matrix square roots of the FID
 * (audio_metrics.h), where d is the classifier's feature width (hundreds).
 * Jacobi is slower than tridiagonal QL (about 10 d^3 flops a sweep, 6 to
 * 10 sweeps) but short, and accurate to a few units of rounding of ||A||.
 *
 * Tolerance: a sweep visits every pair p < q and rotates it away unless
 *   |a_pq| <= AUDIO_EIG_TOL * sqrt(|a_pp| |a_qq|)   (negligible next to
 *            its own diagonal: what keeps small eigenvalues accurate), or
 *   |a_pq| <= AUDIO_EIG_TOL * 1e-3 * ||A||_F       (below the rounding of
 *            the largest entries: ends the sweeps on a singular matrix,
 *            whose null space holds only rounding noise).
 * Converged when a whole sweep rotates nothing; each eigenvalue is then
 * within about d * AUDIO_EIG_TOL * ||A||_F of the exact one. */
#ifndef AUDIO_EIG_H
#define AUDIO_EIG_H

#include <stdint.h>

#define AUDIO_EIG_TOL 1e-15
/* More sweeps than this means something is wrong (NaN in, or a bug):
 * Jacobi converges quadratically, 6-12 sweeps for any d we meet. */
#define AUDIO_EIG_MAX_SWEEPS 64

/* a: d x d row-major, symmetric (only its upper triangle is read); it is
 * overwritten (its diagonal ends holding the eigenvalues, unsorted).
 * w[0..d): the eigenvalues in ascending order. vecs (d x d, NULL for values
 * only): row i is the unit eigenvector of w[i], so A = sum_i w[i] v_i v_i^T.
 * Returns the number of sweeps, or -1 when it did not converge within
 * AUDIO_EIG_MAX_SWEEPS, or an entry is not finite. */
int audio_eig_sym(double *a, int64_t d, double *w, double *vecs);

#endif
