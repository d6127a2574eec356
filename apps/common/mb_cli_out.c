/* Output files, logs and paths beside a checkpoint: see mb_cli_out.h. */
#include "mb_cli_out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mb_cli_error.h"

/* An existing PATH that a finished file cannot be renamed over: a folder
 * (rename fails, but only after the whole run), or a device, fifo or
 * socket (rename would replace the node). -1 after the error line. */
static int out_path_usable(const char *prog, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return 0;
    if (S_ISDIR(st.st_mode)) mb_cli_error(prog, "%s: is a folder, not a file", path);
    else mb_cli_error(prog, "%s: is not a regular file (a device, fifo or socket): it cannot be replaced", path);
    return -1;
}

mb_outfile *mb_cli_outfile_open(const char *prog, const char *path)
{
    if (out_path_usable(prog, path)) return NULL;
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
    /* mb_cli_outfile_open checks the path itself first */
    mb_outfile *o = mb_cli_outfile_open(prog, path);
    if (!o) return -1;
    mb_outfile_discard(o);
    return 0;
}

/* The logs open, by stream: their paths for the error line, and whether
 * it was printed (a tool opens one; the table is for tests and mistakes). */
#define LOGS_MAX 8
static struct {
    FILE *f;
    char *path;
    int reported;
} g_logs[LOGS_MAX];

static int log_slot(FILE *f)
{
    for (int i = 0; i < LOGS_MAX; i++)
        if (g_logs[i].f == f) return i;
    return -1;
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
    const int i = log_slot(NULL);
    if (i >= 0) {
        g_logs[i].f = f;
        g_logs[i].path = strdup(path); /* NULL: the message says "--log" */
        g_logs[i].reported = 0;
    }
    return f;
}

int mb_cli_log_check(const char *prog, FILE *log)
{
    if (!log) return 0;
    /* line buffered: a failed line has failed in its own flush, which set
     * errno and dropped the bytes (glibc), so the reason is the errno the
     * caller's write left; a flush that fails now says its own */
    const int e_write = errno;
    errno = 0;
    if (fflush(log) == 0 && !ferror(log)) return 0;
    const int e = errno ? errno : e_write ? e_write : EIO;
    const int i = log_slot(log);
    if (i < 0 || !g_logs[i].reported)
        mb_cli_error(prog, "%s: write error (%s)", i >= 0 && g_logs[i].path ? g_logs[i].path : "--log", strerror(e));
    if (i >= 0) g_logs[i].reported = 1;
    return -1;
}

int mb_cli_log_close(const char *prog, FILE *log)
{
    if (!log) return 0;
    int rc = mb_cli_log_check(prog, log);
    const int i = log_slot(log);
    errno = 0;
    if (fclose(log) != 0 && rc == 0) {
        mb_cli_error(prog, "%s: write error (%s)", i >= 0 && g_logs[i].path ? g_logs[i].path : "--log",
                     strerror(errno ? errno : EIO));
        rc = -1;
    }
    if (i >= 0) {
        free(g_logs[i].path);
        memset(&g_logs[i], 0, sizeof g_logs[i]);
    }
    return rc;
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
