/* Progress lines of long work: see mb_cli_progress.h. */
#include "mb_cli_progress.h"

#include <stdio.h>
#include <stdlib.h>

#include "mb_cli_time.h"

/* MAMBA_PROGRESS_S, or the default when unset or not a number >= 0 */
static double progress_every(void)
{
    const char *s = getenv("MAMBA_PROGRESS_S");
    if (!s || !*s) return MB_CLI_PROGRESS_S;
    char *end;
    const double v = strtod(s, &end);
    return *end == '\0' && v >= 0 && v < 1e9 ? v : MB_CLI_PROGRESS_S;
}

void mb_cli_progress_start(mb_cli_progress *p)
{
    p->t0 = p->last = mb_cli_now();
    p->every = progress_every();
}

int mb_cli_progress_due(mb_cli_progress *p)
{
    const double now = mb_cli_now();
    if (now - p->last < p->every) return 0;
    p->last = now;
    return 1;
}

void mb_cli_progress_eta(const mb_cli_progress *p, double done, double total, char *buf, size_t n)
{
    const double t = mb_cli_now() - p->t0;
    char d[32];
    if (done > 0 && t > 0 && total >= done) mb_cli_duration(t / done * (total - done), d, sizeof d);
    else snprintf(d, sizeof d, "?");
    snprintf(buf, n, "ETA %s", d);
}

double mb_cli_progress_elapsed(const mb_cli_progress *p) { return mb_cli_now() - p->t0; }
