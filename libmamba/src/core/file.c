/* Files written whole or not at all (mamba.h's mb_outfile): the one
 * write-then-rename of the library and the tools. */
#define _XOPEN_SOURCE 700 /* POSIX 2008 with realpath */

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

struct mb_outfile {
    char *path, *tmp;
    FILE *f;
};

static void outfile_free(mb_outfile *o)
{
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o);
}

mb_outfile *mb_outfile_open(const char *path)
{
    /* The rename at commit replaces whatever entry the path names: refuse
     * what is not a regular file (a device: saving to /dev/null as root
     * once left a regular file in its place), and write through a link
     * to its target, so the link stays */
    struct stat st;
    char *real = NULL;
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            mb_error_set("%s: exists and is not a regular file", path);
            return NULL;
        }
        struct stat lst;
        if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode) && !(real = realpath(path, NULL))) {
            mb_error_set("%s: %s", path, strerror(errno));
            return NULL;
        }
        if (real) path = real;
    }
    mb_outfile *o = mb_calloc(1, sizeof *o, "output file");
    if (!o) {
        free(real);
        return NULL;
    }
    const size_t n = strlen(path);
    o->path = mb_malloc(n + 1, "path");
    char *tmp = mb_malloc(n + 12, "path");
    if (!o->path || !tmp) {
        free(tmp);
        free(real);
        outfile_free(o);
        return NULL;
    }
    memcpy(o->path, path, n + 1);
    free(real);
    path = o->path;
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmpXXXXXX", 11);
    const int fd = mkstemp(tmp);
    if (fd < 0) {
        mb_error_set("%s: cannot create a file in its directory (%s)", path, strerror(errno));
        free(tmp);
        outfile_free(o);
        return NULL;
    }
    o->tmp = tmp;
    /* mkstemp makes it 0600; a finished output gets what a new file gets */
    const mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    if (!(o->f = fdopen(fd, "wb"))) {
        mb_error_set("%s: %s", path, strerror(errno));
        close(fd);
        outfile_free(o);
        return NULL;
    }
    return o;
}

FILE *mb_outfile_fp(mb_outfile *o) { return o->f; }
int mb_outfile_fd(mb_outfile *o) { return fileno(o->f); }
const char *mb_outfile_path(const mb_outfile *o) { return o->path; }

/* After the rename, make the directory entry itself durable. Best effort:
 * the file is complete either way. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = NULL;
    if (slash) {
        const size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (!(dir = malloc(n + 1))) return;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    const int fd = open(dir ? dir : ".", O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int mb_outfile_commit(mb_outfile *o)
{
    if (!o) return mb_error_set("internal: no output file to commit");
    errno = 0;
    int bad = fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0;
    int e = bad ? (errno ? errno : EIO) : 0;
    if (fclose(o->f) != 0 && !bad) {
        bad = 1;
        e = errno ? errno : EIO;
    }
    o->f = NULL;
    if (bad) {
        mb_error_set("%s: write error (%s)", o->path, strerror(e));
        outfile_free(o);
        return -1;
    }
    if (rename(o->tmp, o->path) != 0) {
        mb_error_set("%s: cannot rename the finished file into place (%s)", o->path, strerror(errno));
        outfile_free(o);
        return -1;
    }
    free(o->tmp);
    o->tmp = NULL;
    sync_parent_dir(o->path);
    outfile_free(o);
    return 0;
}

void mb_outfile_discard(mb_outfile *o)
{
    if (o) outfile_free(o);
}

int mb_outfile_sweep(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const size_t nb = strlen(base), nd = slash ? (size_t)(slash - path) : 0;
    char *dir = mb_malloc(nd + 2, "path");
    if (!dir) return -1;
    if (slash) memcpy(dir, path, nd ? nd : 1), dir[nd ? nd : 1] = '\0';
    else strcpy(dir, ".");
    DIR *d = opendir(dir);
    if (!d) {
        mb_error_set("%s: cannot list its directory (%s)", path, strerror(errno));
        free(dir);
        return -1;
    }
    int removed = 0;
    for (struct dirent *e; (e = readdir(d));) {
        /* exactly BASE.tmp and mkstemp's six characters: nothing else */
        const char *n = e->d_name;
        if (strlen(n) != nb + 10 || strncmp(n, base, nb) != 0 || strncmp(n + nb, ".tmp", 4) != 0) continue;
        int ok = 1;
        for (int i = 0; i < 6 && ok; i++) {
            const char c = n[nb + 4 + i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        }
        if (!ok) continue;
        const size_t np = nd + 1 + strlen(n) + 1;
        char *full = malloc(np);
        if (!full) continue;
        snprintf(full, np, "%s/%s", dir, n);
        removed += unlink(full) == 0;
        free(full);
    }
    closedir(d);
    free(dir);
    return removed;
}
