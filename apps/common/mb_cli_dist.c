/* The group of a data-parallel run and its syncs: see mb_cli_dist.h. */
#include "mb_cli_dist.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mb_cli_error.h"
#include "mb_cli_main.h"

static mb_dist *g_dist;
static int g_rank, g_ranks = 1;
static FILE *g_stderr; /* ranks > 0: the real stderr (fd 2 goes to /dev/null) */
static double *g_sync; /* mb_cli_dist_sync's vector, ranks + MB_CLI_SYNC_N + 2 */

int mb_cli_dist_start(const char *prog)
{
    if (g_dist) return 0;
    if (!(g_dist = mb_dist_init(NULL, NULL))) {
        /* the same failure on every rank: the launcher's rank 0 says it */
        int r = 0;
        mb_dist_launched(&r);
        if (r == 0) mb_cli_error(prog, "%s", mb_error_last());
        return 1;
    }
    g_rank = mb_dist_rank(g_dist);
    g_ranks = mb_dist_size(g_dist);
    mb_cli_error_hold(g_rank != 0);
    if (!(g_sync = malloc(sizeof(double) * (size_t)(g_ranks + MB_CLI_SYNC_N + 2)))) {
        mb_cli_error(prog, "out of memory");
        mb_cli_dist_stop();
        return 1;
    }
    if (g_rank != 0) {
        /* progress, summaries and warnings are rank 0's: the others write to
         * /dev/null, keeping the real stderr for a failure only they see */
        fflush(stdout);
        fflush(stderr);
        const int fd = dup(STDERR_FILENO), nul = open("/dev/null", O_WRONLY);
        if (fd >= 0) g_stderr = fdopen(fd, "w");
        if (nul >= 0) {
            dup2(nul, STDOUT_FILENO);
            dup2(nul, STDERR_FILENO);
            close(nul);
        }
    }
    return 0;
}

void mb_cli_dist_stop(void)
{
    mb_dist_finalize(g_dist);
    g_dist = NULL;
    free(g_sync);
    g_sync = NULL;
    g_rank = 0;
    g_ranks = 1;
    mb_cli_error_hold(0);
    if (g_stderr) fclose(g_stderr);
    g_stderr = NULL;
}

mb_dist *mb_cli_dist(void) { return g_dist; }
int mb_cli_rank(void) { return g_rank; }
int mb_cli_ranks(void) { return g_ranks; }

int mb_cli_dist_check_batch(const char *prog, int64_t batch)
{
    if (batch % g_ranks == 0) return 0;
    mb_cli_error(prog, "--batch %lld does not split over %d ranks: the batch is the global one, give a "
                       "multiple of %d",
                 (long long)batch, g_ranks, g_ranks);
    return -1;
}

void mb_cli_dist_rows(int64_t batch, int64_t *row0, int64_t *rows)
{
    *rows = batch / g_ranks;
    *row0 = (int64_t)g_rank * *rows;
}

void mb_cli_dist_share(int64_t n, int64_t *first, int64_t *count)
{
    const int64_t a = n * g_rank / g_ranks, b = n * (g_rank + 1) / g_ranks;
    *first = a;
    *count = b - a;
}

/* ranks > 0 report on the stderr mb_cli_dist_start kept aside */
static FILE *err_stream(void) { return g_stderr ? g_stderr : stderr; }

int mb_cli_dist_sync(int rc, mb_cli_sync *s)
{
    if (g_ranks == 1) return rc;
    /* [rc of each rank][sums][rank 0's print][stop] */
    const int P = g_ranks, n = P + MB_CLI_SYNC_N + 2;
    double *v = g_sync;
    memset(v, 0, sizeof(double) * (size_t)n);
    v[g_rank] = rc;
    for (int i = 0; s && i < MB_CLI_SYNC_N; i++) v[P + i] = s->sum[i];
    if (s && g_rank == 0) v[P + MB_CLI_SYNC_N] = s->print;
    if (s) v[P + MB_CLI_SYNC_N + 1] = s->stop;
    if (mb_dist_sum(g_dist, v, n)) {
        fprintf(err_stream(), "error: rank %d: %s\n", g_rank, mb_error_last());
        mb_dist_abort(g_dist, 1);
    }
    if (s) {
        for (int i = 0; i < MB_CLI_SYNC_N; i++) s->sum[i] = v[P + i];
        s->print = v[P + MB_CLI_SYNC_N] != 0;
        s->stop = v[P + MB_CLI_SYNC_N + 1] != 0;
    }
    int first = -1;
    for (int r = 0; r < P && first < 0; r++)
        if (v[r] != 0) first = r;
    if (first < 0) return 0;
    /* rank 0 printed its line when it failed; else the first failing rank
     * prints the line it held (130: interrupted, saved: no error) */
    if (first == g_rank && g_rank != 0 && rc != 130) {
        const char *held = mb_cli_error_held();
        if (held[0]) fprintf(err_stream(), "%s\n", held);
        else fprintf(err_stream(), "error: rank %d failed (exit %d)\n", g_rank, rc);
        fflush(err_stream());
    }
    return (int)v[first];
}

int mb_cli_dist_agree(int rc) { return mb_cli_dist_sync(rc, NULL); }

int mb_cli_dist_step(int rc, const mb_loss_stats *st, int print, mb_optim *opt, mb_loss_stats *acc,
                     int *print_out, int *stop)
{
    mb_cli_sync s = {{st->loss_sum, (double)st->count, (double)st->correct}, print,
                     mb_cli_interrupted() || mb_cli_stop_requested()};
    if ((rc = mb_cli_dist_sync(rc, &s))) return rc;
    acc->loss_sum += s.sum[0];
    acc->count += (int64_t)s.sum[1];
    acc->correct += (int64_t)s.sum[2];
    if (s.sum[1] > 0) mb_optim_set_share(opt, (double)st->count / s.sum[1]);
    *print_out = s.print;
    *stop = s.stop;
    return 0;
}

int mb_cli_dist_fatal(const char *prog, const char *what)
{
    if (g_ranks == 1) {
        mb_cli_error(prog, "%s: %s", what, mb_error_last());
        return 1;
    }
    fprintf(err_stream(), "%s: error: rank %d: %s: %s\n", prog, g_rank, what, mb_error_last());
    fflush(err_stream());
    mb_dist_abort(g_dist, 1);
    return 1;
}
