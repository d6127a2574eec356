/* mamba-dna classify: the class names, and MODEL.classes beside the
 * checkpoint (one a line, in the head's order) so that predict can print
 * them (dna_classify.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"

/* ---- class names ------------------------------------------------------------ */

void cl_names_free(cl_names *c)
{
    for (int i = 0; i < c->n; i++) free(c->v[i]);
    free(c->v);
    memset(c, 0, sizeof *c);
}

int cl_names_find(const cl_names *c, const char *s)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i], s) == 0) return i;
    return -1;
}

int cl_names_add(cl_names *c, const char *s)
{
    const int i = cl_names_find(c, s);
    if (i >= 0) return i;
    if (c->n == c->cap) {
        const int cap = c->cap ? 2 * c->cap : 8;
        char **v = realloc(c->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        c->v = v;
        c->cap = cap;
    }
    if (!(c->v[c->n] = strdup(s))) return -1;
    return c->n++;
}

const char *cl_names_list(const cl_names *c, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n && at < n; i++) {
        const int k = snprintf(buf + at, n - at, "%s%s", i ? ", " : "", c->v[i]);
        if (k < 0) break;
        at += (size_t)k;
    }
    if (at >= n && n > 4) memcpy(buf + n - 4, "...", 4);
    return buf;
}

int cl_name_ok(const char *s) { return *s && !strpbrk(s, "\t\n\r"); }

/* ---- MODEL.classes ------------------------------------------------------------ */

static char *cl_classes_path(const char *model) { return mb_cli_path_suffix(model, ".classes"); }

int cl_classes_read(const char *model, int C, cl_names *out)
{
    char *path = cl_classes_path(model);
    if (!path) {
        mb_cli_error(DNA_PROG, "out of memory");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        const int e = errno;
        if (e == ENOENT) {
            free(path);
            return 0;
        }
        mb_cli_error(DNA_PROG, "%s: %s", path, strerror(e));
        free(path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 1, nlines = 0;
    while (rc == 1 && (len = getline(&line, &cap, f)) >= 0) {
        nlines++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (!cl_name_ok(line) || (size_t)len != strlen(line)) {
            mb_cli_error(DNA_PROG, "%s:%d: not a class name (empty, or with a tab or a NUL)", path, nlines);
            rc = -1;
        } else if (cl_names_find(out, line) >= 0) {
            mb_cli_error(DNA_PROG, "%s:%d: class '%s' is named twice", path, nlines, line);
            rc = -1;
        } else if (cl_names_add(out, line) < 0) {
            mb_cli_error(DNA_PROG, "out of memory");
            rc = -1;
        }
    }
    if (rc == 1 && ferror(f)) {
        mb_cli_error(DNA_PROG, "%s: read error", path);
        rc = -1;
    }
    if (rc == 1 && out->n != C) {
        mb_cli_error(DNA_PROG, "%s: %d class names for a head of %d classes", path, out->n, C);
        rc = -1;
    }
    free(line);
    fclose(f);
    free(path);
    return rc;
}

mb_outfile *cl_classes_write(const char *model, const cl_names *names)
{
    char *path = cl_classes_path(model);
    if (!path) {
        mb_cli_error(DNA_PROG, "out of memory");
        return NULL;
    }
    mb_outfile *of = mb_cli_outfile_open(DNA_PROG, path);
    free(path);
    if (!of) return NULL;
    int bad = 0;
    for (int i = 0; !bad && i < names->n; i++) bad = fprintf(mb_outfile_fp(of), "%s\n", names->v[i]) < 0;
    if (bad) {
        mb_cli_write_error(DNA_PROG, mb_outfile_path(of));
        mb_outfile_discard(of);
        return NULL;
    }
    return of;
}

/* ---- JSON ---------------------------------------------------------------------- */

void cl_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}
