#include "audio_walk.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mb_cli.h"

/* Deeper than this is taken for a symbolic-link loop. */
#define MAX_DEPTH 32

static char *join(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 2);
    if (!s) return NULL;
    memcpy(s, a, na);
    size_t k = na;
    if (na > 0 && a[na - 1] != '/') s[k++] = '/';
    memcpy(s + k, b, nb + 1);
    return s;
}

static int push(audio_walk_list *l, char *path, char *rel)
{
    if (l->n == l->cap) {
        int64_t cap = l->cap ? 2 * l->cap : 64;
        audio_walk_entry *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].path = path;
    l->v[l->n].rel = rel;
    l->n++;
    return 0;
}

static void warnf(audio_warn_fn warn, void *ud, const char *path, const char *what, int e)
{
    if (!warn) return;
    char line[1024];
    mb_cli_errf(line, sizeof line, path, "%s (%s)", what, strerror(e));
    warn(line, ud);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* dir: openable path; rel: its path relative to the root ("" at the top). */
static int walk_dir(const char *dir, const char *rel, int depth, audio_walk_list *out,
                    audio_warn_fn warn, void *ud, int64_t *skipped, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d) {
        if (depth == 0) return mb_cli_errf(err, errlen, dir, "cannot open (%s)", strerror(errno));
        warnf(warn, ud, dir, "cannot open the folder", errno);
        (*skipped)++;
        return 0;
    }
    /* readdir's order is the file system's: collect, then sort */
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) break;
        if (e->d_name[0] == '.') continue; /* ".", "..", hidden files */
        if (n == cap) {
            size_t c = cap ? 2 * cap : 32;
            char **v = realloc(names, c * sizeof *v);
            if (!v) goto oom;
            names = v;
            cap = c;
        }
        if (!(names[n] = strdup(e->d_name))) goto oom;
        n++;
    }
    if (errno != 0) {
        int e = errno;
        closedir(d);
        free_names(names, n);
        if (depth == 0) return mb_cli_errf(err, errlen, dir, "cannot list (%s)", strerror(e));
        warnf(warn, ud, dir, "cannot list the folder", e);
        (*skipped)++;
        return 0;
    }
    closedir(d);
    d = NULL;
    if (n > 1) qsort(names, n, sizeof *names, cmp_name);

    for (size_t i = 0; i < n; i++) {
        char *path = join(dir, names[i]);
        char *r = rel[0] ? join(rel, names[i]) : strdup(names[i]);
        if (!path || !r) {
            free(path);
            free(r);
            goto oom;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            /* a dangling link, or a file gone since the listing */
            warnf(warn, ud, path, "cannot read", errno);
            (*skipped)++;
            free(path);
            free(r);
        } else if (S_ISDIR(st.st_mode)) {
            int rc = 0;
            if (depth + 1 >= MAX_DEPTH) {
                if (warn) {
                    char line[1024];
                    mb_cli_errf(line, sizeof line, path,
                               "folders nested more than %d deep (a link loop?), skipped",
                               MAX_DEPTH);
                    warn(line, ud);
                }
                (*skipped)++;
            } else {
                rc = walk_dir(path, r, depth + 1, out, warn, ud, skipped, err, errlen);
            }
            free(path);
            free(r);
            if (rc != 0) {
                free_names(names, n);
                return -1;
            }
        } else if (S_ISREG(st.st_mode)) {
            if (push(out, path, r) != 0) {
                free(path);
                free(r);
                goto oom;
            }
        } else {
            /* fifos, sockets, devices: reading them could block forever */
            free(path);
            free(r);
        }
    }
    free_names(names, n);
    return 0;
oom:
    if (d) closedir(d);
    free_names(names, n);
    return mb_cli_errf(err, errlen, dir, "out of memory");
}

int audio_walk(const char *root, audio_walk_list *out, audio_warn_fn warn, void *ud,
               int64_t *skipped, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    *skipped = 0;
    struct stat st;
    if (stat(root, &st) != 0)
        return mb_cli_errf(err, errlen, root, "cannot open (%s)", strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        if (walk_dir(root, "", 0, out, warn, ud, skipped, err, errlen) != 0) {
            audio_walk_free(out);
            return -1;
        }
        return 0;
    }
    if (!S_ISREG(st.st_mode))
        return mb_cli_errf(err, errlen, root, "not a folder or a regular file");
    const char *base = strrchr(root, '/');
    char *path = strdup(root), *rel = strdup(base ? base + 1 : root);
    if (!path || !rel || push(out, path, rel) != 0) {
        free(path);
        free(rel);
        audio_walk_free(out);
        return mb_cli_errf(err, errlen, root, "out of memory");
    }
    return 0;
}

void audio_walk_free(audio_walk_list *l)
{
    for (int64_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].rel);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}
