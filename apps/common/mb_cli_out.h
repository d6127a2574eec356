/* The tools' output files: written through the library's mb_outfile (a
 * temporary file beside the path, renamed over it when complete, so readers
 * never see half a file and a failed run leaves the previous one as it
 * was), the tool's error line printed on failure; --log files; the paths
 * of files kept beside a checkpoint. */
#ifndef MB_CLI_OUT_H
#define MB_CLI_OUT_H

#include <stdio.h>

#include "mamba.h"

/* mb_outfile_open; NULL after "PROG: error: PATH: cannot create a file in
 * its directory (reason)". Write through mb_outfile_fp or mb_outfile_fd. */
mb_outfile *mb_cli_outfile_open(const char *prog, const char *path);
/* mb_outfile_commit (o is freed either way); -1 after "PROG: error: PATH:
 * write error (reason)" or "...: cannot rename the finished file into
 * place (reason)", PATH then untouched. mb_outfile_discard drops one. */
int mb_cli_outfile_commit(const char *prog, mb_outfile *o);

/* Whether a file can be created beside PATH (tried, then removed), so a
 * long run finds an unwritable output before its work, not after; prints
 * the error line. 0 or -1. */
int mb_cli_check_writable(const char *prog, const char *path);

/* --log: opened for appending, a line per record (NULL when path is NULL;
 * NULL with *failed set after an error line when it cannot be opened). */
FILE *mb_cli_log_open(const char *prog, const char *path, int *failed);

/* PATH followed by suffix, e.g. the optimizer state "MODEL.optim" beside a
 * checkpoint (malloc'd; NULL when out of memory). */
char *mb_cli_path_suffix(const char *path, const char *suffix);
/* "<model>.optim" (malloc'd). */
char *mb_cli_optim_path(const char *model_path);

#endif
