/* One-line error messages "FILE: what", shared by the genomics readers.
 * Every failing call fills the caller's buffer this way and returns -1 (or
 * NULL), so the tool can print the line as is and exit 1. */
#ifndef DNA_ERR_H
#define DNA_ERR_H

#include <stddef.h>

#if defined(__GNUC__)
#define DNA_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define DNA_PRINTF(f, a)
#endif

/* Writes "path: <fmt ...>" into err (when err is not NULL and errlen > 0;
 * truncated to fit) and returns -1. Newlines in the result become spaces:
 * the message is one line whatever the path or the data hold. */
int dna_errf(char *err, size_t errlen, const char *path, const char *fmt, ...) DNA_PRINTF(4, 5);

#endif
