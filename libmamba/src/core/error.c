#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static _Thread_local char mb_errbuf[1024];

/* Formatted through a local buffer: the arguments may include the last
 * message itself (mb_error_last()), to be wrapped in a new one. */
static void error_vset(const char *fmt, va_list ap)
{
    char buf[sizeof mb_errbuf];
    vsnprintf(buf, sizeof buf, fmt, ap);
    memcpy(mb_errbuf, buf, sizeof buf);
}

int mb_error_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(fmt, ap);
    va_end(ap);
    return -1;
}

int mb_ctx_fail(mb_ctx *ctx, const char *fmt, ...)
{
    if (!ctx->failed) {
        va_list ap;
        va_start(ap, fmt);
        error_vset(fmt, ap);
        va_end(ap);
    }
    ctx->failed = 1;
    return -1;
}

void mb_error_clear(void) { mb_errbuf[0] = '\0'; }

const char *mb_error_last(void) { return mb_errbuf[0] ? mb_errbuf : "no error"; }

void *mb_malloc(size_t bytes, const char *what)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) mb_error_set("out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *mb_calloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) mb_error_set("out of memory allocating %zu x %zu bytes for %s", n, size, what);
    return p;
}
