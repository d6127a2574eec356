/* Clocks: see mb_cli_time.h. */
#include "mb_cli_time.h"

#include <stdio.h>
#include <time.h>

double mb_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void mb_cli_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t < 60) snprintf(buf, n, "%lds", t);
    else if (t < 3600) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else if (t < 86400) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldd%02ldh", t / 86400, (t / 3600) % 24);
}
