/* Data-parallel training: mpirun -np N TOOL train ...
 *
 * Every rank parses the same flags, reads the same inputs and draws the
 * same global batch (--batch is the global batch, so a run equals a
 * one-process run with that --batch), and trains on its own rows; the
 * gradients are averaged in mb_optim_step. Rank 0 alone prints, logs and
 * writes files: mb_cli_dist_start sends the other ranks' stdout and stderr
 * to /dev/null and holds their error lines (mb_cli_error_hold), and a
 * failure is reported in one line in all (rank 0's, else the first failing
 * rank's) when the ranks meet in mb_cli_dist_sync. A process not started by
 * mpirun is a group of one, where all of this costs nothing. */
#ifndef MB_CLI_DIST_H
#define MB_CLI_DIST_H

#include <stdint.h>

#include "mamba.h"

/* Joins the group (mb_dist_init). 0, or 1 after the error line (printed
 * once: a build without MPI launched with several processes). */
int mb_cli_dist_start(const char *prog);
/* Leaves it (MPI_Finalize); every rank must get here. */
void mb_cli_dist_stop(void);
mb_dist *mb_cli_dist(void); /* NULL before mb_cli_dist_start */
int mb_cli_rank(void);
int mb_cli_ranks(void);
/* --batch must split evenly over the ranks: else the usage error line
 * "--batch B does not split over P ranks ..." and -1. */
int mb_cli_dist_check_batch(const char *prog, int64_t batch);
/* This rank's rows of a global batch of `batch` rows: [*row0, *row0 + *rows). */
void mb_cli_dist_rows(int64_t batch, int64_t *row0, int64_t *rows);
/* The same for n items that need not split evenly (validation windows). */
void mb_cli_dist_share(int64_t n, int64_t *first, int64_t *count);

/* The one collective of a training loop, made by every rank at the same
 * points: after each step's forward and backward, around a validation, and
 * once at the end (with a rank's failure, at the point it failed). It sums
 * sum[] over the ranks, takes rank 0's print (a decision that reads the
 * clock, which the ranks would not agree on) and any rank's stop (Ctrl-C
 * reaches the ranks at different steps), and agrees on the exit code: 0
 * when every rank passed rc 0, else the code of rank 0 if it failed, else
 * of the first rank that did, which prints its held error line. After a
 * nonzero result the ranks must not sync again: they are done. A failure
 * of the collective itself ends the job (mb_dist_abort). */
#define MB_CLI_SYNC_N 4
typedef struct {
    double sum[MB_CLI_SYNC_N];
    int print, stop;
} mb_cli_sync;
int mb_cli_dist_sync(int rc, mb_cli_sync *s);
/* mb_cli_dist_sync with nothing but the exit code. */
int mb_cli_dist_agree(int rc);
/* A training step's sync, after its forward and backward (rc: how they
 * went on this rank; st: this rank's loss over its rows): adds the step's
 * loss, count and argmax hits over every rank to *acc, tells the optimizer
 * this rank's share of the counted targets (ignored ones, N bases or
 * padding, differ between ranks: mb_optim_set_share), sets *print_out to
 * rank 0's `print` and *stop when any rank was interrupted or asked to
 * stop (mb_cli_stop_request). Returns
 * mb_cli_dist_sync's code. */
int mb_cli_dist_step(int rc, const mb_loss_stats *st, int print, mb_optim *opt, mb_loss_stats *acc,
                     int *print_out, int *stop);
/* A failure after which the other ranks would wait forever (inside a
 * collective of the library): prints the error line with this rank's
 * number and ends the whole job with exit code 1. Returns (1) only with
 * one rank. */
int mb_cli_dist_fatal(const char *prog, const char *what);

#endif
