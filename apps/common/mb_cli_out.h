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
 * its directory (reason)", or "PATH: is a folder, not a file" (and the
 * same for a device, fifo or socket): the rename over it at the end would
 * fail after all the work, or replace a device node. Write through
 * mb_outfile_fp or mb_outfile_fd. */
mb_outfile *mb_cli_outfile_open(const char *prog, const char *path);
/* mb_outfile_commit (o is freed either way); -1 after "PROG: error: PATH:
 * write error (reason)" or "...: cannot rename the finished file into
 * place (reason)", PATH then untouched. mb_outfile_discard drops one. */
int mb_cli_outfile_commit(const char *prog, mb_outfile *o);

/* Whether PATH can be written as mb_cli_outfile_open writes it: not a
 * folder (nor a device, fifo or socket), and a file can be created beside
 * it (tried, then removed). So a long run finds an unwritable output before
 * its work, not after; prints the error line. 0 or -1. */
int mb_cli_check_writable(const char *prog, const char *path);

/* --log: opened for appending, a line per record (NULL when path is NULL;
 * NULL with *failed set after an error line when it cannot be opened). The
 * tools' log lines are written whole with one fputs or fprintf each and
 * then checked (mb_cli_log_check): a log is a record of the run, and a run
 * whose record cannot be kept (a full disk) stops, saves what it has and
 * exits 1, rather than finish with an empty log and exit 0. */
FILE *mb_cli_log_open(const char *prog, const char *path, int *failed);
/* Whether every write to a log from mb_cli_log_open went through: flushes
 * it; 0, or -1 after "PROG: error: PATH: write error (reason)" (printed
 * once for a log). 0 for NULL. */
int mb_cli_log_check(const char *prog, FILE *log);
/* mb_cli_log_check, then fclose (checked too); 0 or -1 after the line.
 * NULL: 0. */
int mb_cli_log_close(const char *prog, FILE *log);

/* PATH followed by suffix, e.g. the optimizer state "MODEL.optim" beside a
 * checkpoint (malloc'd; NULL when out of memory). */
char *mb_cli_path_suffix(const char *path, const char *suffix);
/* "<model>.optim" (malloc'd). */
char *mb_cli_optim_path(const char *model_path);

#endif
