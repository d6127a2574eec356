/* Error lines of the tools: see mb_cli_error.h. */
#include "mb_cli_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mamba.h"

static int g_hold;         /* this process is a rank other than 0 */
static char g_held[1024];  /* its first error line */
static char *g_cap;        /* mb_cli_error_capture's buffer (NULL: none) */
static size_t g_cap_n;

int mb_cli_errf(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (!err || errlen == 0) return -1;
    int n = snprintf(err, errlen, "%s: ", path ? path : "(no file)");
    if (n < 0) {
        err[0] = '\0';
        return -1;
    }
    if ((size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *c = err; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    return -1;
}

/* One line on stderr, at most ERR_LINE_MAX bytes: a message that quotes
 * its input (a FASTA header of 200,000 characters) is cut with "...", which no
 * path (PATH_MAX 4096) reaches */
#define ERR_LINE_MAX 8192
static void err_line(const char *prog, const char *kind, const char *fmt, va_list ap)
{
    char buf[ERR_LINE_MAX];
    const int n = vsnprintf(buf, sizeof buf, fmt, ap);
    if (n >= (int)sizeof buf) memcpy(buf + sizeof buf - 4, "...", 4);
    fprintf(stderr, "%s: %s: %s\n", prog, kind, buf);
}

void mb_cli_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (g_cap) {
        if (!g_cap[0]) vsnprintf(g_cap, g_cap_n, fmt, ap);
    } else if (g_hold) {
        if (!g_held[0]) {
            const int n = snprintf(g_held, sizeof g_held, "%s: error: ", prog);
            if (n > 0 && (size_t)n < sizeof g_held) vsnprintf(g_held + n, sizeof g_held - (size_t)n, fmt, ap);
        }
    } else {
        err_line(prog, "error", fmt, ap);
    }
    va_end(ap);
}

void mb_cli_warn(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_line(prog, "warning", fmt, ap);
    va_end(ap);
}

int mb_cli_lib_error(const char *prog, const char *path)
{
    const char *e = mb_error_last();
    if (path && !strstr(e, path)) mb_cli_error(prog, "%s: %s", path, e);
    else mb_cli_error(prog, "%s", e);
    return -1;
}

int mb_cli_write_error(const char *prog, const char *path)
{
    const int e = errno ? errno : EIO;
    mb_cli_error(prog, "%s: write error (%s)", path ? path : "stdout", strerror(e));
    return -1;
}

const char *mb_cli_nonfinite(double x)
{
    if (x != x) return "nan";
    return x > 0 ? "inf" : "-inf";
}

void mb_cli_error_hold(int on)
{
    g_hold = on;
    g_held[0] = '\0';
}

const char *mb_cli_error_held(void) { return g_held; }

void mb_cli_error_capture(char *buf, size_t cap)
{
    g_cap = buf && cap ? buf : NULL;
    g_cap_n = cap;
    if (g_cap) g_cap[0] = '\0';
}
