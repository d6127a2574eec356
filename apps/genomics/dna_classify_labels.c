/* mamba-dna classify: the classes as the user gives them -- files per
 * class (--class NAME=FILE,...) or a TSV of regions and labels over the
 * --fasta files (dna_classify.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"

/* ---- --class NAME=FILE[,FILE...] ----------------------------------------------- */

void cl_files_free(cl_files *f)
{
    for (int i = 0; i < f->n; i++) free(f->path[i]);
    free(f->path);
    free(f->cls);
    memset(f, 0, sizeof *f);
}

static int cl_files_push(cl_files *f, int cls, const char *s, size_t len)
{
    if (f->n == f->cap) {
        const int cap = f->cap ? 2 * f->cap : 8;
        int *c = realloc(f->cls, sizeof *c * (size_t)cap);
        if (!c) return -1;
        f->cls = c;
        char **p = realloc(f->path, sizeof *p * (size_t)cap);
        if (!p) return -1;
        f->path = p;
        f->cap = cap;
    }
    if (!(f->path[f->n] = strndup(s, len))) return -1;
    f->cls[f->n++] = cls;
    return 0;
}

const char **cl_files_of(const cl_files *f, int c, int *n)
{
    const char **v = malloc(sizeof *v * (size_t)(f->n + 1));
    *n = 0;
    if (v)
        for (int i = 0; i < f->n; i++)
            if (f->cls[i] == c) v[(*n)++] = f->path[i];
    return v;
}

int cl_parse_class(const char *opt, const char *arg, mb_cli_names *names, cl_files *files)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        mb_cli_error(DNA_PROG, "%s expects NAME=FILE[,FILE...], got '%s'", opt, arg);
        return -1;
    }
    char *name = strndup(arg, (size_t)(eq - arg));
    if (!name) {
        mb_cli_error(DNA_PROG, "out of memory");
        return -1;
    }
    if (!mb_cli_name_ok(name)) {
        mb_cli_error(DNA_PROG, "%s: the class name '%s' holds a tab or a line break", opt, name);
        free(name);
        return -1;
    }
    const int c = mb_cli_names_add(names, name);
    free(name);
    for (const char *p = eq + 1; c >= 0;) {
        const char *comma = strchr(p, ',');
        const size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) {
            mb_cli_error(DNA_PROG, "%s expects NAME=FILE[,FILE...], got '%s' (an empty file name)", opt, arg);
            return -1;
        }
        if (cl_files_push(files, c, p, len)) break;
        if (!comma) return 0;
        p = comma + 1;
    }
    mb_cli_error(DNA_PROG, "out of memory");
    return -1;
}

/* ---- regions of a TSV ------------------------------------------------------------ */

/* Parses a non-negative decimal integer of s[0..n) (digits only). */
static int cl_parse_pos(const char *s, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* CHROM (a whole record) or CHROM:START-END (1-based, inclusive), on the
 * records of set. Writes the reason into why on failure. */
static int cl_parse_region(dna_set *set, char *s, cl_region *r, char *why, size_t n)
{
    int64_t rec = dna_set_find(set, s);
    if (rec == -2) {
        snprintf(why, n, "'%s' names several records of the --fasta files", s);
        return -1;
    }
    if (rec >= 0) {
        r->rec = rec, r->start = 0, r->end = dna_set_len(set, rec);
        return 0;
    }
    char *colon = strrchr(s, ':');
    const char *dash = colon ? strchr(colon + 1, '-') : NULL;
    int64_t a, b;
    if (!colon || !dash || cl_parse_pos(colon + 1, (size_t)(dash - colon - 1), &a) ||
        cl_parse_pos(dash + 1, strlen(dash + 1), &b)) {
        if (!colon)
            snprintf(why, n, "'%s' is not a record of the --fasta files", s);
        else
            snprintf(why, n, "bad region '%s' (expected CHROM, or CHROM:START-END with 1-based inclusive "
                             "positions)", s);
        return -1;
    }
    *colon = '\0';
    rec = dna_set_find(set, s);
    if (rec < 0) {
        snprintf(why, n, rec == -2 ? "'%s' names several records of the --fasta files"
                                   : "'%s' is not a record of the --fasta files", s);
        return -1;
    }
    const int64_t len = dna_set_len(set, rec);
    if (a < 1 || a > b) {
        snprintf(why, n, "region %s:%lld-%lld: positions are 1-based and START <= END", s, (long long)a,
                 (long long)b);
        return -1;
    }
    if (b > len) {
        snprintf(why, n, "region %s:%lld-%lld ends past the end of '%s' (%lld bases)", s, (long long)a,
                 (long long)b, s, (long long)len);
        return -1;
    }
    r->rec = rec, r->start = a - 1, r->end = b;
    return 0;
}

int cl_read_tsv(const char *path, dna_set *set, mb_cli_names *names, int add_new, int64_t min_len,
                       cl_regions *out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        mb_cli_error(DNA_PROG, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL, why[512], list[256];
    size_t cap = 0;
    ssize_t len;
    int64_t ln = 0;
    int rc = 0, seen = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        ln++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (len == 0 || line[0] == '#') continue;
        if (!seen++ && strcmp(line, "region\tlabel") == 0) continue;
        if ((size_t)len != strlen(line)) {
            mb_cli_error(DNA_PROG, "%s:%lld: a NUL byte in the line", path, (long long)ln);
            rc = -1;
            break;
        }
        char *tab = strchr(line, '\t');
        if (!tab || tab == line || tab[1] == '\0' || tab[1] == '\t') {
            mb_cli_error(DNA_PROG, "%s:%lld: expected REGION<TAB>LABEL", path, (long long)ln);
            rc = -1;
            break;
        }
        *tab = '\0';
        char *label = tab + 1, *more = strchr(label, '\t');
        if (more) *more = '\0';
        cl_region r;
        if (cl_parse_region(set, line, &r, why, sizeof why)) {
            mb_cli_error(DNA_PROG, "%s:%lld: %s", path, (long long)ln, why);
            rc = -1;
            break;
        }
        if (r.end - r.start < min_len) {
            mb_cli_error(DNA_PROG, "%s:%lld: region %s:%lld-%lld is %lld bases, shorter than --seq-len %lld "
                                   "(use a shorter --seq-len)",
                         path, (long long)ln, dna_set_name(set, r.rec), (long long)r.start + 1,
                         (long long)r.end, (long long)(r.end - r.start), (long long)min_len);
            rc = -1;
            break;
        }
        r.cls = add_new ? mb_cli_names_add(names, label) : mb_cli_names_find(names, label);
        if (r.cls < 0 && add_new) {
            mb_cli_error(DNA_PROG, "out of memory");
            rc = -1;
            break;
        }
        if (r.cls < 0) {
            mb_cli_error(DNA_PROG, "%s:%lld: label '%s' is not one of the training classes (%s)", path,
                         (long long)ln, label, mb_cli_names_list(names, list, sizeof list));
            rc = -1;
            break;
        }
        if (out->n == out->cap) {
            const int64_t nc = out->cap ? 2 * out->cap : 64;
            cl_region *v = realloc(out->v, sizeof *v * (size_t)nc);
            if (!v) {
                mb_cli_error(DNA_PROG, "out of memory");
                rc = -1;
                break;
            }
            out->v = v;
            out->cap = nc;
        }
        out->v[out->n++] = r;
    }
    if (rc == 0 && ferror(f)) {
        mb_cli_error(DNA_PROG, "%s: read error", path);
        rc = -1;
    }
    if (rc == 0 && out->n == 0) {
        mb_cli_error(DNA_PROG, "%s: no regions (expected lines REGION<TAB>LABEL)", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

static int cl_cmp_ival(const void *a, const void *b)
{
    const dna_ival *x = a, *y = b;
    if (x->rec != y->rec) return (x->rec > y->rec) - (x->rec < y->rec);
    return (x->start > y->start) - (x->start < y->start);
}

int cl_regions_ivals(const cl_regions *rg, int c, int part, double frac, dna_ivals *out)
{
    memset(out, 0, sizeof *out);
    out->v = malloc(sizeof *out->v * (size_t)(rg->n + 1));
    if (!out->v) return -1;
    for (int64_t i = 0; i < rg->n; i++) {
        const cl_region *r = &rg->v[i];
        if (r->cls != c) continue;
        const int64_t nv = part ? (int64_t)((double)(r->end - r->start) * frac) : 0;
        dna_ival iv = {r->rec, r->start, r->end};
        if (part == 1) iv.end = r->end - nv;
        if (part == 2) iv.start = r->end - nv;
        if (iv.end > iv.start) out->v[out->n++] = iv;
    }
    qsort(out->v, (size_t)out->n, sizeof *out->v, cl_cmp_ival);
    int64_t k = 0;
    for (int64_t i = 0; i < out->n; i++) {
        if (k && out->v[k - 1].rec == out->v[i].rec && out->v[i].start <= out->v[k - 1].end) {
            if (out->v[i].end > out->v[k - 1].end) out->v[k - 1].end = out->v[i].end;
        } else {
            out->v[k++] = out->v[i];
        }
    }
    out->n = k;
    out->bases = 0;
    for (int64_t i = 0; i < k; i++) out->bases += out->v[i].end - out->v[i].start;
    return 0;
}
