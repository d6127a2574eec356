/* Progress lines of long work that is not a training loop (score, embed,
 * classify predict, mamba-audio eval and generate, reading audio): on
 * stderr, only when the work takes long (the first line after an interval
 * of work, then one an interval), each with the position out of the total
 * and an ETA.
 *
 * The interval is 5 s; the environment variable MAMBA_PROGRESS_S sets
 * another (seconds, 0 = every update: for tests and for watching a slow
 * job closely). */
#ifndef MB_CLI_PROGRESS_H
#define MB_CLI_PROGRESS_H

#include <stddef.h>

#define MB_CLI_PROGRESS_S 5.0

typedef struct {
    double t0;    /* when the work started */
    double last;  /* the last line (t0 before the first) */
    double every; /* seconds between lines */
} mb_cli_progress;

/* Starts the clock. */
void mb_cli_progress_start(mb_cli_progress *p);
/* Whether a line is due now (and, when it is, the clock of the next one
 * restarts). */
int mb_cli_progress_due(mb_cli_progress *p);
/* "ETA 3m05s" for `done` of `total` units done since the start at the rate
 * so far ("ETA ?" before there is a rate). */
void mb_cli_progress_eta(const mb_cli_progress *p, double done, double total, char *buf, size_t n);
/* Seconds since the start. */
double mb_cli_progress_elapsed(const mb_cli_progress *p);

#endif
