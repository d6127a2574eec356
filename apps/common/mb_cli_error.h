/* Error lines of the tools (README conventions): one line
 * "PROG: error: what" on stderr; "FILE: what" when a file is to blame.
 * Exit 1 for bad input or a failed run, 2 for bad usage (the callers'). */
#ifndef MB_CLI_ERROR_H
#define MB_CLI_ERROR_H

#include <stddef.h>

/* For input layers that report rather than print: writes "PATH: <fmt>"
 * into err (when err is not NULL and errlen > 0; cut to fit), newlines
 * turned into spaces so the message stays one line whatever the path or a
 * library's text holds, and returns -1. */
int mb_cli_errf(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints "PROG: error: <fmt>" and a newline on stderr (or holds it: see
 * mb_cli_error_hold). */
void mb_cli_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mb_cli_warn(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* "PROG: error: PATH: <mb_error_last()>", without repeating PATH when the
 * library's message already names it; returns -1. */
int mb_cli_lib_error(const char *prog, const char *path);
/* "PROG: error: PATH: write error (<errno text>)" (PATH NULL: stdout);
 * returns -1. */
int mb_cli_write_error(const char *prog, const char *path);

/* "nan", "inf" or "-inf" for a non-finite x (printf's "%g" may say
 * "-nan"), for the lines that refuse to write one. */
const char *mb_cli_nonfinite(double x);

/* A data-parallel rank other than 0 holds its first error line instead of
 * printing it: rank 0 speaks for the job, and a rank's line is printed only
 * when that rank alone failed (mb_cli_dist_sync). on 0 clears the hold and
 * the held line. */
void mb_cli_error_hold(int on);
/* The held line ("" when none). */
const char *mb_cli_error_held(void);

/* While a capture is on, the first error line's text (without "PROG:
 * error: ") goes into buf instead of stderr, and later lines are dropped:
 * for a try whose failure is not the run's (a checkpoint that is skipped
 * for an older one), so the caller decides whether it becomes a warning or
 * the error. buf NULL ends the capture. Captures do not nest. */
void mb_cli_error_capture(char *buf, size_t cap);

#endif
