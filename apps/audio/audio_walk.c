#include "audio_walk.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "mb_cli.h"

/* Real nesting deeper than this is skipped with a warning: the walk
 * recurses, and no audio collection is this deep. (Link loops are found by
 * the folders' identities below, not by this.) */
#define MAX_DEPTH 64

/* ---- what the walk has seen: folders and files by (device, inode) ------- */

/* A folder or a file the walk has reached, known by its identity, not its
 * path: symbolic links and hard links give one thing several paths. */
typedef struct {
    dev_t dev;
    ino_t ino;
    char *path; /* the first path it was reached by (for the warnings) */
    int open;   /* a folder being walked: a link to it from below is a loop */
} seen_node;

/* Open addressing, linear probing; cap a power of two, at most half full. */
typedef struct {
    seen_node *v;
    size_t n, cap;
} seen_set;

static size_t seen_hash(dev_t dev, ino_t ino)
{
    /* splitmix64's finalizer: inode numbers are often consecutive */
    uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    return (size_t)(h ^ (h >> 31));
}

static void seen_free(seen_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->v[i].path);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static seen_node *seen_slot(seen_set *s, dev_t dev, ino_t ino)
{
    size_t i = seen_hash(dev, ino) & (s->cap - 1);
    while (s->v[i].path && !(s->v[i].dev == dev && s->v[i].ino == ino))
        i = (i + 1) & (s->cap - 1);
    return &s->v[i];
}

/* The node of st's file: *added 1 when it is new (reached first by path),
 * 0 when it was reached before. NULL when memory runs out. */
static seen_node *seen_add(seen_set *s, const struct stat *st, const char *path, int *added)
{
    if (2 * (s->n + 1) > s->cap) {
        seen_set g = {calloc(s->cap ? 2 * s->cap : 256, sizeof(seen_node)), s->n, s->cap ? 2 * s->cap : 256};
        if (!g.v) return NULL;
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i].path) *seen_slot(&g, s->v[i].dev, s->v[i].ino) = s->v[i];
        free(s->v);
        *s = g;
    }
    seen_node *e = seen_slot(s, st->st_dev, st->st_ino);
    *added = e->path == NULL;
    if (*added) {
        if (!(e->path = strdup(path))) return NULL;
        e->dev = st->st_dev;
        e->ino = st->st_ino;
        e->open = 0;
        s->n++;
    }
    return e;
}

/* ---- the walk ----------------------------------------------------------- */

typedef struct {
    audio_walk_list *out;
    audio_warn_fn warn;
    void *ud;
    int64_t *skipped;
    seen_set seen;
    char *err;
    size_t errlen;
} walk_ctx;

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

static int push(audio_walk_list *l, char *path, char *rel, int64_t size)
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
    l->v[l->n].size = size;
    l->n++;
    return 0;
}

/* One warning line "PATH: <fmt>" through the caller's callback. */
static void warn_line(const walk_ctx *w, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void warn_line(const walk_ctx *w, const char *path, const char *fmt, ...)
{
    if (!w->warn) return;
    char what[768], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    mb_cli_errf(line, sizeof line, path, "%s", what);
    w->warn(line, w->ud);
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

/* The names in dir (hidden ones left out) in byte order: readdir's order is
 * the file system's. -1 with errno set when it cannot be listed. */
static int list_dir(const char *dir, char ***out, size_t *nout)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int e = 0;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            e = errno;
            break;
        }
        if (de->d_name[0] == '.') continue; /* ".", "..", hidden files */
        if (n == cap) {
            size_t c = cap ? 2 * cap : 32;
            char **v = realloc(names, c * sizeof *v);
            if (!v) {
                e = ENOMEM;
                break;
            }
            names = v;
            cap = c;
        }
        if (!(names[n] = strdup(de->d_name))) {
            e = ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (e) {
        free_names(names, n);
        errno = e;
        return -1;
    }
    if (n > 1) qsort(names, n, sizeof *names, cmp_name);
    *out = names;
    *nout = n;
    return 0;
}

static int walk_dir(walk_ctx *w, const char *dir, const char *rel, int depth, seen_node *self);

/* One entry of a folder: path (openable) and rel (relative to the root),
 * both malloc'd and taken over. 0, or -1 after the error (out of memory). */
static int walk_entry(walk_ctx *w, char *path, char *rel, int depth)
{
    struct stat st;
    int added = 0, oom = 0, rc = 0;
    seen_node *node;
    if (stat(path, &st) != 0) {
        /* a dangling link, or a file gone since the listing */
        warn_line(w, path, "cannot read (%s)", strerror(errno));
        (*w->skipped)++;
    } else if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
        /* fifos, sockets, devices: reading them could block forever */
    } else if (!(node = seen_add(&w->seen, &st, path, &added))) {
        oom = 1;
    } else if (!added && node->open) {
        warn_line(w, path, "a link to a folder that holds it (%s): a loop, skipped", node->path);
    } else if (!added) {
        warn_line(w, path, "the same %s as %s, read once", S_ISDIR(st.st_mode) ? "folder" : "file", node->path);
    } else if (S_ISREG(st.st_mode)) {
        if (push(w->out, path, rel, (int64_t)st.st_size) != 0) oom = 1;
        else path = rel = NULL; /* the list's now */
    } else if (depth + 1 >= MAX_DEPTH) {
        warn_line(w, path, "folders nested more than %d deep, skipped", MAX_DEPTH);
        (*w->skipped)++;
    } else {
        rc = walk_dir(w, path, rel, depth + 1, node);
    }
    if (oom) rc = mb_cli_errf(w->err, w->errlen, path, "out of memory");
    free(path);
    free(rel);
    return rc;
}

/* dir: openable path; rel: its path relative to the root ("" at the top);
 * self: its node, open while its entries are walked. */
static int walk_dir(walk_ctx *w, const char *dir, const char *rel, int depth, seen_node *self)
{
    char **names = NULL;
    size_t n = 0;
    if (list_dir(dir, &names, &n) != 0) {
        if (errno == ENOMEM) return mb_cli_errf(w->err, w->errlen, dir, "out of memory");
        if (depth == 0) return mb_cli_errf(w->err, w->errlen, dir, "cannot list (%s)", strerror(errno));
        warn_line(w, dir, "cannot list the folder (%s)", strerror(errno));
        (*w->skipped)++;
        return 0;
    }
    /* the node may move when the table grows: find it again by identity */
    const dev_t dev = self->dev;
    const ino_t ino = self->ino;
    self->open = 1;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path = join(dir, names[i]);
        char *r = rel[0] ? join(rel, names[i]) : strdup(names[i]);
        if (!path || !r) {
            free(path);
            free(r);
            rc = mb_cli_errf(w->err, w->errlen, dir, "out of memory");
        } else {
            rc = walk_entry(w, path, r, depth);
        }
    }
    seen_slot(&w->seen, dev, ino)->open = 0;
    free_names(names, n);
    return rc;
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
        walk_ctx w = {out, warn, ud, skipped, {0}, err, errlen};
        int added;
        seen_node *top = seen_add(&w.seen, &st, root, &added);
        int rc = top ? walk_dir(&w, root, "", 0, top) : mb_cli_errf(err, errlen, root, "out of memory");
        seen_free(&w.seen);
        if (rc != 0) audio_walk_free(out);
        return rc;
    }
    if (!S_ISREG(st.st_mode))
        return mb_cli_errf(err, errlen, root, "not a folder or a regular file");
    const char *base = strrchr(root, '/');
    char *path = strdup(root), *rel = strdup(base ? base + 1 : root);
    if (!path || !rel || push(out, path, rel, (int64_t)st.st_size) != 0) {
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
