/* Output files, logs and paths beside a checkpoint: see mb_cli_out.h. */
#include "mb_cli_out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mb_cli_error.h"

mb_outfile *mb_cli_outfile_open(const char *prog, const char *path)
{
    mb_outfile *o = mb_outfile_open(path);
    if (!o) mb_cli_lib_error(prog, path);
    return o;
}

int mb_cli_outfile_commit(const char *prog, mb_outfile *o)
{
    if (mb_outfile_commit(o) == 0) return 0;
    mb_cli_error(prog, "%s", mb_error_last()); /* it names the path */
    return -1;
}

int mb_cli_check_writable(const char *prog, const char *path)
{
    mb_outfile *o = mb_cli_outfile_open(prog, path);
    if (!o) return -1;
    mb_outfile_discard(o);
    return 0;
}

FILE *mb_cli_log_open(const char *prog, const char *path, int *failed)
{
    if (!path) return NULL;
    FILE *f = fopen(path, "a");
    if (!f) {
        mb_cli_error(prog, "%s: %s", path, strerror(errno));
        *failed = 1;
        return NULL;
    }
    setvbuf(f, NULL, _IOLBF, 0); /* a line per record, readable while the run goes on */
    return f;
}

char *mb_cli_path_suffix(const char *path, const char *suffix)
{
    const size_t n = strlen(path), k = strlen(suffix);
    char *p = malloc(n + k + 1);
    if (p) {
        memcpy(p, path, n);
        memcpy(p + n, suffix, k + 1);
    }
    return p;
}

char *mb_cli_optim_path(const char *model_path) { return mb_cli_path_suffix(model_path, ".optim"); }
