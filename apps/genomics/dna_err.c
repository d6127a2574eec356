#include "dna_err.h"

#include <stdarg.h>
#include <stdio.h>

int dna_errf(char *err, size_t errlen, const char *path, const char *fmt, ...)
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
