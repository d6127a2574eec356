/* mamba-dna classify: fine-tunes a pretrained mamba-dna language model with a
 * sequence classification head (the mean over positions of the final normed
 * hidden state, then a linear layer) on labelled sequences -- files per
 * class, or a TSV of regions and labels -- and reports the validation
 * accuracy and confusion matrix on held-out windows; and predicts each
 * class's probability per record or window of a FASTA, in constant memory.
 *
 * The class names live beside the checkpoint in MODEL.classes (one a line,
 * in the head's order), so that predict can print them. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dna_cmd.h"
#include "dna_pool.h"

#define CL_VAL_FRAC_DEFAULT 0.1
#define CL_VAL_WINDOWS_DEFAULT 32
#define CL_LR_DEFAULT 1e-3
#define CL_CHUNK_DEFAULT 65536
#define CL_RECOMPUTE_TOKENS 65536 /* recompute above this many tokens a step */
#define CL_VAL_TOKENS 65536       /* tokens per validation forward pass */
#define CL_MAX_BATCH 32           /* windows per forward pass in predict / validation */
#define CL_PROGRESS_S 5.0
#define CL_TRY "Try '" DNA_PROG " classify --help'.\n"

/* ---- class names ------------------------------------------------------------ */

typedef struct {
    char **v;
    int n, cap;
} cl_names;

static void cl_names_free(cl_names *c)
{
    for (int i = 0; i < c->n; i++) free(c->v[i]);
    free(c->v);
    memset(c, 0, sizeof *c);
}

static int cl_names_find(const cl_names *c, const char *s)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i], s) == 0) return i;
    return -1;
}

/* The index of s, added at the end when new; -1 when out of memory. */
static int cl_names_add(cl_names *c, const char *s)
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

/* "a, b, c" for messages (cut to fit). */
static const char *cl_names_list(const cl_names *c, char *buf, size_t n)
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

/* A class name goes into a TSV header and a file of one name a line. */
static int cl_name_ok(const char *s) { return *s && !strpbrk(s, "\t\n\r"); }

/* ---- MODEL.classes ------------------------------------------------------------ */

static char *cl_classes_path(const char *model)
{
    const size_t n = strlen(model);
    char *p = malloc(n + 9);
    if (p) {
        memcpy(p, model, n);
        memcpy(p + n, ".classes", 9);
    }
    return p;
}

/* Reads MODEL.classes into out: 1 when read, 0 when there is none, -1 after
 * an error line (unreadable, or not C names). */
static int cl_classes_read(const char *model, int C, cl_names *out)
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

/* Writes the names to a temporary file beside MODEL.classes, committed
 * (renamed into place) by the caller once the model is saved. */
static int cl_classes_write_tmp(const char *model, const cl_names *names, mb_cli_outfile *of)
{
    char *path = cl_classes_path(model);
    if (!path) {
        mb_cli_error(DNA_PROG, "out of memory");
        return -1;
    }
    const int r = mb_cli_outfile_open(DNA_PROG, of, path);
    free(path);
    if (r) return -1;
    int bad = 0;
    for (int i = 0; !bad && i < names->n; i++) bad = fprintf(of->f, "%s\n", names->v[i]) < 0;
    if (bad) {
        mb_cli_write_error(DNA_PROG, of->path);
        mb_cli_outfile_discard(of);
        return -1;
    }
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------- */

static void cl_json_str(FILE *f, const char *s)
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

/* =================================================================================
 * train
 * ================================================================================= */

/* The files of --class / --val-class: file i belongs to class cls[i]. */
typedef struct {
    int *cls;
    char **path;
    int n, cap;
} cl_files;

static void cl_files_free(cl_files *f)
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

/* The files of class c, in the order given (a malloc'd array of borrowed
 * strings; *n set). */
static const char **cl_files_of(const cl_files *f, int c, int *n)
{
    const char **v = malloc(sizeof *v * (size_t)(f->n + 1));
    *n = 0;
    if (v)
        for (int i = 0; i < f->n; i++)
            if (f->cls[i] == c) v[(*n)++] = f->path[i];
    return v;
}

/* NAME=FILE[,FILE...]: the name into names (added when new: a class given
 * twice gets the files of both), each file into files. A usage error
 * prints its line and returns -1. */
static int cl_parse_class(const char *opt, const char *arg, cl_names *names, cl_files *files)
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
    if (!cl_name_ok(name)) {
        mb_cli_error(DNA_PROG, "%s: the class name '%s' holds a tab or a line break", opt, name);
        free(name);
        return -1;
    }
    const int c = cl_names_add(names, name);
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

typedef struct {
    int64_t rec, start, end; /* 0-based, half open */
    int cls;
} cl_region;

typedef struct {
    cl_region *v;
    int64_t n, cap;
} cl_regions;

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

/* Reads the region<TAB>label lines of path over set. Labels are class
 * names: with add_new a new one becomes a class (in the order of first
 * appearance), else it must be one of names. Regions shorter than min_len
 * are refused. '#' lines, blank lines and a first line "region<TAB>label"
 * are skipped; columns after the label are ignored. Prints the error line. */
static int cl_read_tsv(const char *path, dna_set *set, cl_names *names, int add_new, int64_t min_len,
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
        r.cls = add_new ? cl_names_add(names, label) : cl_names_find(names, label);
        if (r.cls < 0 && add_new) {
            mb_cli_error(DNA_PROG, "out of memory");
            rc = -1;
            break;
        }
        if (r.cls < 0) {
            mb_cli_error(DNA_PROG, "%s:%lld: label '%s' is not one of the training classes (%s)", path,
                         (long long)ln, label, cl_names_list(names, list, sizeof list));
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

/* The regions of class c as intervals, sorted and merged where they
 * overlap or touch. part 0: whole regions; 1: all but the last frac of
 * each; 2: the last floor(frac * length) bases of each (dna_split_fraction's
 * rule, per region). */
static int cl_regions_ivals(const cl_regions *rg, int c, int part, double frac, dna_ivals *out)
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

/* ---- the classes' data ----------------------------------------------------------- */

typedef struct {
    dna_set *tset, *vset;     /* borrowed from cl_data.sets */
    dna_split a, b;           /* hold the intervals below */
    const dna_ivals *tiv;     /* training intervals (in tset) */
    const dna_ivals *viv;     /* validation intervals (in vset); NULL: none */
    const char *src;          /* a file to name in messages */
    dna_sampler *smp;         /* training windows */
    dna_window *vw;           /* validation windows */
    int64_t nv, vlen;
} cl_class;

typedef struct {
    cl_names names, vnames; /* training classes; the --val-class names */
    cl_files files, vfiles; /* --class / --val-class files */
    int C;
    cl_class *cls;
    dna_set **sets; /* owned */
    int nsets;
} cl_data;

static void cl_data_free(cl_data *d)
{
    for (int c = 0; c < d->C && d->cls; c++) {
        cl_class *k = &d->cls[c];
        dna_sampler_free(k->smp);
        dna_split_free(&k->a);
        dna_split_free(&k->b);
        free(k->vw);
    }
    free(d->cls);
    for (int i = 0; i < d->nsets; i++) dna_set_close(d->sets[i]);
    free(d->sets);
    cl_names_free(&d->names);
    cl_names_free(&d->vnames);
    cl_files_free(&d->files);
    cl_files_free(&d->vfiles);
    memset(d, 0, sizeof *d);
}

/* Opens paths as one set owned by d (NULL after an error line). */
static dna_set *cl_open(cl_data *d, const char *const *paths, int n, const char *reference)
{
    dna_set **v = realloc(d->sets, sizeof *v * (size_t)(d->nsets + 1));
    if (!v) {
        mb_cli_error(DNA_PROG, "out of memory");
        return NULL;
    }
    d->sets = v;
    dna_set *s = dna_cmd_open_set(paths, n, reference);
    if (s) d->sets[d->nsets++] = s;
    return s;
}

typedef struct {
    mb_cli_train t;
    const char *model, *tsv, *val_tsv, *reference;
    const char **fasta;
    int n_fasta;
    double val_frac;
    int set_val_frac, rc_aug, force;
    int64_t val_every, val_windows;
} cl_opts;

static void cl_train_usage(FILE *f, const mb_cli_train *d)
{
    fprintf(f,
            "usage: " DNA_PROG " classify train --model PRETRAINED --out CLS\n"
            "           (--class NAME=FILE[,FILE...]... | --tsv REGIONS.tsv --fasta F...) [options]\n"
            "\n"
            "Fine-tunes the mamba-dna language model PRETRAINED (from '" DNA_PROG " pretrain')\n"
            "with a fresh classification head: the mean over positions of the final hidden\n"
            "state, then a linear layer, trained with the whole backbone on random windows of\n"
            "--seq-len bases, the class drawn uniformly for each window (classes balanced),\n"
            "reverse-complemented half of the time, windows mostly N skipped. The accuracy on\n"
            "a fixed set of held-out windows is reported every --val-every steps; at the end\n"
            "the accuracy and the confusion matrix (rows: true class, columns: predicted) go\n"
            "to stdout. The classifier is saved to CLS, its optimizer to CLS.optim and the\n"
            "class names, one a line, to CLS.classes. Progress on stderr; Ctrl-C saves and\n"
            "stops (--resume goes on).\n"
            "\n"
            "classes (one of):\n"
            "  --class NAME=FILE[,FILE...]  the sequences of class NAME (FASTA, BAM, CRAM);\n"
            "                     repeatable, the classes in the order given\n"
            "  --tsv REGIONS.tsv  lines REGION<TAB>LABEL over the records of the --fasta files:\n"
            "                     REGION is CHROM (the whole record) or CHROM:START-END\n"
            "                     (1-based, inclusive); the classes are the labels, in order\n"
            "                     of first appearance. Regions must be at least --seq-len long.\n"
            "                     '#' lines and a header line 'region<TAB>label' are skipped\n"
            "  --fasta F          the files REGIONS.tsv (and --val-tsv) refer to (repeatable)\n"
            "validation (one of):\n"
            "  --val-class NAME=FILE[,FILE...]  held-out files of class NAME (e.g. whole\n"
            "                     held-out strains), repeatable; the training files then train\n"
            "                     whole\n"
            "  --val-tsv V.tsv    held-out regions of the --fasta files, labelled as in --tsv\n"
            "  --val-frac F       else: the last F of every training record (of every region\n"
            "                     with --tsv) validates, the rest trains [%g]\n"
            "  --val-windows N    validation windows per class, drawn once (a fixed seed), not\n"
            "                     reverse-complemented; as long as --seq-len, or as the longest\n"
            "                     held-out interval of the class when that is shorter [%d]\n"
            "  --val-every N      validate every N steps [steps / 10]\n"
            "other:\n"
            "  --model PRETRAINED mamba-dna checkpoint to start from (a language model, or a\n"
            "                     classifier with a head of as many classes); not needed with\n"
            "                     --resume\n"
            "  --no-rc            no reverse-complement augmentation\n"
            "  --reference FA     reference for CRAM inputs\n"
            "  --force            overwrite an existing --out without --resume\n",
            CL_VAL_FRAC_DEFAULT, CL_VAL_WINDOWS_DEFAULT);
    mb_cli_train_help(f, d);
    fprintf(f, "The model flags (--d-model ... --init) do not apply: the model is PRETRAINED's.\n"
               "With batch * seq-len above %d tokens, layers are recomputed in backward.\n"
               "\n"
               "Example: " DNA_PROG " classify train --model pre.safetensors --out cls.safetensors \\\n"
               "           --class ecoli=ecoli.fa.gz --class saureus=sa1.fa.gz,sa2.fa.gz \\\n"
               "           --val-class ecoli=ecoli_val.fa.gz --val-class saureus=sa_val.fa.gz \\\n"
               "           --seq-len 4096 --steps 2000\n",
               CL_RECOMPUTE_TOKENS);
}

/* ---- validation -------------------------------------------------------------- */

typedef struct {
    int C;
    int64_t *conf; /* (C, C): rows true class, columns predicted */
    int64_t n, correct;
    double loss; /* summed cross-entropy, nats */
} cl_eval;

/* Classifies every validation window through mb_model_forward_chunk_pooled
 * (the path predict takes): B windows of one class at a time, chunks of
 * CL_VAL_TOKENS / B tokens. Prints its error line. */
static int cl_validate(mb_model *m, cl_data *d, int64_t bmax, cl_eval *ev)
{
    const int C = d->C, dm = mb_model_config(m)->d_model;
    int64_t maxn = 0, maxlen = 1;
    for (int c = 0; c < C; c++) {
        maxn = d->cls[c].nv > maxn ? d->cls[c].nv : maxn;
        maxlen = d->cls[c].vlen > maxlen ? d->cls[c].vlen : maxlen;
    }
    int64_t B = bmax < maxn ? bmax : maxn;
    B = B < CL_MAX_BATCH ? B : CL_MAX_BATCH;
    B = B > 0 ? B : 1;
    int64_t chunk = CL_VAL_TOKENS / B > 0 ? CL_VAL_TOKENS / B : 1;
    chunk = chunk < maxlen ? chunk : maxlen;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * chunk));
    float *hs = malloc(sizeof(float) * (size_t)(B * dm));
    float *pooled = malloc(sizeof(float) * (size_t)(B * dm));
    float *probs = malloc(sizeof(float) * (size_t)(B * C));
    double *acc = malloc(sizeof(double) * (size_t)(B * dm));
    mb_state *st = (tok && hs && pooled && probs && acc) ? mb_state_create(m, (int)B) : NULL;
    memset(ev->conf, 0, sizeof(int64_t) * (size_t)C * C);
    ev->n = ev->correct = 0;
    ev->loss = 0;
    int rc = 0;
    char err[512];
    if (!st) {
        const int had_memory = tok && hs && pooled && probs && acc;
        mb_cli_error(DNA_PROG, "validation: %s", had_memory ? mb_error_last() : "out of memory");
        rc = -1;
    }
    for (int c = 0; rc == 0 && c < C; c++) {
        const cl_class *k = &d->cls[c];
        const int64_t L = k->vlen;
        for (int64_t w0 = 0; rc == 0 && w0 < k->nv; w0 += B) {
            const int64_t nb = k->nv - w0 < B ? k->nv - w0 : B;
            mb_state_reset(st);
            memset(acc, 0, sizeof(double) * (size_t)(B * dm));
            for (int64_t t0 = 0; rc == 0 && t0 < L; t0 += chunk) {
                const int64_t n = L - t0 < chunk ? L - t0 : chunk;
                for (int64_t b = 0; rc == 0 && b < nb; b++) {
                    const dna_window *w = &k->vw[w0 + b];
                    if (dna_set_fetch(k->vset, w->rec, w->start + t0, n, tok + b * n, err, sizeof err)) {
                        mb_cli_error(DNA_PROG, "%s", err);
                        rc = -1;
                    }
                }
                /* the state holds B rows: rows past the last window run on copies of the first */
                for (int64_t b = nb; rc == 0 && b < B; b++) memcpy(tok + b * n, tok, sizeof(int32_t) * (size_t)n);
                if (rc) break;
                memset(hs, 0, sizeof(float) * (size_t)(B * dm));
                if (mb_model_forward_chunk_pooled(m, st, tok, (int)n, NULL, hs)) {
                    mb_cli_error(DNA_PROG, "validation: %s", mb_error_last());
                    rc = -1;
                    break;
                }
                for (int64_t i = 0; i < B * dm; i++) acc[i] += hs[i];
            }
            if (rc) break;
            for (int64_t i = 0; i < B * dm; i++) pooled[i] = (float)(acc[i] / (double)L);
            if (mb_model_classify_pooled(m, pooled, (int)B, probs)) {
                mb_cli_error(DNA_PROG, "validation: %s", mb_error_last());
                rc = -1;
                break;
            }
            for (int64_t b = 0; b < nb; b++) {
                const float *p = probs + b * C;
                int best = 0;
                for (int j = 1; j < C; j++) best = p[j] > p[best] ? j : best;
                ev->conf[(size_t)c * C + best]++;
                ev->correct += best == c;
                ev->n++;
                ev->loss -= log(p[c] > 1e-30f ? (double)p[c] : 1e-30);
            }
        }
    }
    mb_state_free(st);
    free(tok);
    free(hs);
    free(pooled);
    free(probs);
    free(acc);
    return rc;
}

static double cl_eval_acc(const cl_eval *ev) { return ev->n ? (double)ev->correct / (double)ev->n : NAN; }

/* The share of the most frequent true class: what always guessing it gets. */
static double cl_eval_chance(const cl_eval *ev)
{
    int64_t best = 0;
    for (int c = 0; c < ev->C; c++) {
        int64_t row = 0;
        for (int j = 0; j < ev->C; j++) row += ev->conf[(size_t)c * ev->C + j];
        best = row > best ? row : best;
    }
    return ev->n ? (double)best / (double)ev->n : NAN;
}

static void cl_print_confusion(FILE *f, const cl_names *names, const cl_eval *ev)
{
    const int C = ev->C;
    const char *corner = "true\\pred";
    int w0 = (int)strlen(corner);
    for (int c = 0; c < C; c++) w0 = (int)strlen(names->v[c]) > w0 ? (int)strlen(names->v[c]) : w0;
    fprintf(f, "%-*s", w0, corner);
    for (int j = 0; j < C; j++) {
        int w = (int)strlen(names->v[j]);
        w = w < 6 ? 6 : w;
        fprintf(f, "  %*s", w, names->v[j]);
    }
    fputc('\n', f);
    for (int c = 0; c < C; c++) {
        fprintf(f, "%-*s", w0, names->v[c]);
        for (int j = 0; j < C; j++) {
            int w = (int)strlen(names->v[j]);
            w = w < 6 ? 6 : w;
            fprintf(f, "  %*lld", w, (long long)ev->conf[(size_t)c * C + j]);
        }
        fputc('\n', f);
    }
}

static void cl_log_confusion(FILE *f, const cl_eval *ev)
{
    fputs(", \"confusion\": [", f);
    for (int c = 0; c < ev->C; c++) {
        fputs(c ? ", [" : "[", f);
        for (int j = 0; j < ev->C; j++) fprintf(f, "%s%lld", j ? ", " : "", (long long)ev->conf[(size_t)c * ev->C + j]);
        fputc(']', f);
    }
    fputc(']', f);
}

/* ---- checkpoints --------------------------------------------------------------- */

typedef struct {
    const char *out;
    char *optim_path;
    /* CLS.classes: written to a temporary file before training (which also
     * finds an --out directory we cannot write to before any work), renamed
     * into place at the first save; zeroed once in place */
    mb_cli_outfile classes;
} cl_saver;

/* The model (atomically), its optimizer, and the first time CLS.classes. */
static int cl_save(cl_saver *s, mb_model *m, mb_optim *opt)
{
    if (mb_model_save(m, s->out)) return mb_cli_lib_error(DNA_PROG, s->out);
    if (mb_optim_save(opt, s->optim_path)) return mb_cli_lib_error(DNA_PROG, s->optim_path);
    if (s->classes.f && mb_cli_outfile_commit(DNA_PROG, &s->classes)) return -1;
    return 0;
}

/* The checkpoint to train: PRETRAINED with a fresh head of C classes, or
 * --out to resume (whose head must have C classes). */
static mb_model *cl_load(mb_ctx *ctx, const cl_opts *o, int C)
{
    if (o->t.resume) return dna_cmd_load_model(ctx, o->t.out, C, 0);
    return dna_cmd_load_model(ctx, o->model, C, (uint64_t)o->t.seed);
}

/* Resuming: the classes saved beside --out must be the ones given. 1: they
 * are, 0: there is no CLS.classes, -1: an error line. */
static int cl_check_resumed_classes(const cl_opts *o, const cl_data *d)
{
    cl_names saved = {0};
    const int r = cl_classes_read(o->t.out, d->C, &saved);
    if (r < 0) {
        cl_names_free(&saved);
        return -1;
    }
    if (r == 0) {
        mb_cli_warn(DNA_PROG, "%s.classes not found: the class names are not checked (it is written at the "
                              "next save)", o->t.out);
        return 0;
    }
    for (int c = 0; c < d->C; c++)
        if (strcmp(saved.v[c], d->names.v[c]) != 0) {
            char a[256], b[256];
            mb_cli_error(DNA_PROG, "%s.classes: the run being resumed has the classes %s, not %s (in this order)",
                         o->t.out, cl_names_list(&saved, a, sizeof a), cl_names_list(&d->names, b, sizeof b));
            cl_names_free(&saved);
            return -1;
        }
    cl_names_free(&saved);
    return 1;
}

/* ---- data setup -------------------------------------------------------------------- */

/* The training classes and their training / validation intervals, from
 * the options. Prints its error line. */
static int cl_setup_data(const cl_opts *o, cl_data *d)
{
    char err[512], list[256];
    const int valsep = d->vfiles.n > 0 || o->val_tsv; /* validation from elsewhere */
    dna_set *fset = NULL;
    cl_regions rg = {0}, vrg = {0};
    int rc = -1;
    if (o->n_fasta && !(fset = cl_open(d, o->fasta, o->n_fasta, o->reference))) goto done;
    if (o->tsv) {
        if (cl_read_tsv(o->tsv, fset, &d->names, 1, o->t.seq_len, &rg)) goto done;
        if (d->names.n < 2) {
            mb_cli_error(DNA_PROG, "%s: one label ('%s'): a classifier needs at least two classes", o->tsv,
                         d->names.v[0]);
            goto done;
        }
    }
    d->C = d->names.n;
    if (!(d->cls = calloc((size_t)d->C, sizeof *d->cls))) {
        mb_cli_error(DNA_PROG, "out of memory");
        goto done;
    }
    /* training (and with --val-frac, validation) intervals */
    for (int c = 0; c < d->C; c++) {
        cl_class *k = &d->cls[c];
        if (o->tsv) {
            k->tset = k->vset = fset;
            k->src = o->tsv;
            if (cl_regions_ivals(&rg, c, valsep ? 0 : 1, o->val_frac, &k->a.train) ||
                (!valsep && cl_regions_ivals(&rg, c, 2, o->val_frac, &k->a.val))) {
                mb_cli_error(DNA_PROG, "out of memory");
                goto done;
            }
        } else {
            int n;
            const char **paths = cl_files_of(&d->files, c, &n);
            if (!paths) {
                mb_cli_error(DNA_PROG, "out of memory");
                goto done;
            }
            k->src = paths[0];
            k->tset = k->vset = cl_open(d, paths, n, o->reference);
            free(paths);
            if (!k->tset) goto done;
            if (dna_split_fraction(k->tset, valsep ? 0.0 : o->val_frac, &k->a, err, sizeof err)) {
                mb_cli_error(DNA_PROG, "%s", err);
                goto done;
            }
        }
        k->tiv = &k->a.train;
        k->viv = valsep ? NULL : &k->a.val;
    }
    /* held-out files per class */
    for (int v = 0; v < d->vnames.n; v++) {
        const int c = cl_names_find(&d->names, d->vnames.v[v]);
        int n;
        const char **paths = cl_files_of(&d->vfiles, v, &n);
        if (!paths) {
            mb_cli_error(DNA_PROG, "out of memory");
            goto done;
        }
        if (c < 0) {
            mb_cli_error(DNA_PROG, "%s: --val-class '%s' is not one of the training classes (%s)", paths[0],
                         d->vnames.v[v], cl_names_list(&d->names, list, sizeof list));
            free(paths);
            goto done;
        }
        cl_class *k = &d->cls[c];
        k->vset = cl_open(d, paths, n, o->reference);
        free(paths);
        if (!k->vset) goto done;
        if (dna_split_fraction(k->vset, 1.0, &k->b, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            goto done;
        }
        k->viv = &k->b.val;
    }
    /* held-out regions */
    if (o->val_tsv) {
        if (cl_read_tsv(o->val_tsv, fset, &d->names, 0, 0, &vrg)) goto done;
        for (int c = 0; c < d->C; c++) {
            cl_class *k = &d->cls[c];
            if (cl_regions_ivals(&vrg, c, 0, 0.0, &k->b.val)) {
                mb_cli_error(DNA_PROG, "out of memory");
                goto done;
            }
            k->vset = fset;
            k->viv = &k->b.val;
        }
    }
    rc = 0;
done:
    free(rg.v);
    free(vrg.v);
    return rc;
}

/* Samplers of the training windows; the fixed validation windows. */
static int cl_setup_windows(const cl_opts *o, cl_data *d, int64_t *nval)
{
    char err[512];
    *nval = 0;
    uint64_t vrng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)o->t.seed;
    for (int c = 0; c < d->C; c++) {
        cl_class *k = &d->cls[c];
        if (k->tiv->n == 0) {
            mb_cli_error(DNA_PROG, "%s: class '%s' has no training sequence", k->src, d->names.v[c]);
            return -1;
        }
        const int64_t tlong = dna_ivals_longest(k->tiv, NULL);
        if (tlong < o->t.seq_len) {
            const int held = k->viv == &k->a.val; /* --val-frac cut the training sequences */
            char how[96] = "";
            if (held) snprintf(how, sizeof how, " once the last %g of each is held out", o->val_frac);
            mb_cli_error(DNA_PROG, "%s: class '%s': no training sequence is --seq-len %lld bases long%s (the "
                                   "longest is %lld): use a shorter --seq-len%s",
                         k->src, d->names.v[c], (long long)o->t.seq_len, how, (long long)tlong,
                         held ? ", a smaller --val-frac, or --val-class / --val-tsv" : "");
            return -1;
        }
        if (!(k->smp = dna_sampler_create(k->tset, k->tiv, o->t.seq_len, err, sizeof err))) {
            mb_cli_error(DNA_PROG, "%s (training windows of class '%s')", err, d->names.v[c]);
            return -1;
        }
    }
    for (int c = 0; c < d->C; c++) {
        cl_class *k = &d->cls[c];
        const int64_t longest = k->viv ? dna_ivals_longest(k->viv, NULL) : 0;
        if (longest == 0) continue;
        k->vlen = longest < o->t.seq_len ? longest : o->t.seq_len;
        k->nv = o->val_windows;
        int32_t *scratch = malloc(sizeof(int32_t) * (size_t)k->vlen);
        k->vw = malloc(sizeof *k->vw * (size_t)k->nv);
        dna_sampler *vs = scratch && k->vw ? dna_sampler_create(k->vset, k->viv, k->vlen, err, sizeof err) : NULL;
        int bad = vs == NULL;
        if (bad)
            mb_cli_error(DNA_PROG, "%s (validation windows of class '%s')", scratch && k->vw ? err : "out of memory",
                         d->names.v[c]);
        for (int64_t i = 0; !bad && i < k->nv; i++)
            if (dna_sampler_draw(vs, &vrng, 0, scratch, &k->vw[i], err, sizeof err)) {
                mb_cli_error(DNA_PROG, "%s (validation windows of class '%s')", err, d->names.v[c]);
                bad = 1;
            }
        dna_sampler_free(vs);
        free(scratch);
        if (bad) return -1;
        *nval += k->nv;
    }
    if (*nval == 0) {
        mb_cli_error(DNA_PROG, "%s: no held-out sequence to validate on (see --val-class, --val-tsv, --val-frac)",
                     d->cls[0].src);
        return -1;
    }
    /* the notes, once nothing can fail: an error stays the only line */
    for (int c = 0; c < d->C; c++) {
        const cl_class *k = &d->cls[c];
        if (k->nv == 0) mb_cli_warn(DNA_PROG, "class '%s' has no validation sequence", d->names.v[c]);
        else if (k->vlen < o->t.seq_len)
            fprintf(stderr, DNA_PROG ": validation windows of class '%s' are %lld bases: its longest held-out "
                            "interval is that long\n", d->names.v[c], (long long)k->vlen);
    }
    return 0;
}

/* ---- train ---------------------------------------------------------------------- */

static int cl_train(int argc, char **argv)
{
    cl_opts o = {0};
    cl_data d = {0};
    mb_cli_train_default(&o.t);
    o.t.out = NULL;
    o.t.lr = CL_LR_DEFAULT;
    o.val_frac = CL_VAL_FRAC_DEFAULT;
    o.val_windows = CL_VAL_WINDOWS_DEFAULT;
    o.val_every = -1;
    o.rc_aug = 1;
    const mb_cli_train defaults = o.t;
    enum {
        O_MODEL = 256, O_CLASS, O_TSV, O_FASTA, O_VCLASS, O_VTSV, O_VFRAC, O_VWIN, O_VEVERY, O_NORC, O_REF, O_FORCE
    };
    static const struct option own[] = {
        {"model", 1, 0, O_MODEL}, {"class", 1, 0, O_CLASS}, {"tsv", 1, 0, O_TSV}, {"fasta", 1, 0, O_FASTA},
        {"val-class", 1, 0, O_VCLASS}, {"val-tsv", 1, 0, O_VTSV}, {"val-frac", 1, 0, O_VFRAC},
        {"val-windows", 1, 0, O_VWIN}, {"val-every", 1, 0, O_VEVERY}, {"no-rc", 0, 0, O_NORC},
        {"reference", 1, 0, O_REF}, {"force", 0, 0, O_FORCE}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option *opts = mb_cli_options_join(own);
    o.fasta = calloc((size_t)argc + 1, sizeof(char *));
    if (!opts || !o.fasta) {
        mb_cli_error(DNA_PROG, "out of memory");
        free(opts);
        free(o.fasta);
        return 1;
    }
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const int r = mb_cli_train_option(&o.t, DNA_PROG, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case O_MODEL: o.model = optarg; break;
        case O_CLASS: bad = cl_parse_class("--class", optarg, &d.names, &d.files) != 0; break;
        case O_TSV: o.tsv = optarg; break;
        case O_FASTA: o.fasta[o.n_fasta++] = optarg; break;
        case O_VCLASS: bad = cl_parse_class("--val-class", optarg, &d.vnames, &d.vfiles) != 0; break;
        case O_VTSV: o.val_tsv = optarg; break;
        case O_VFRAC:
            bad = mb_cli_parse_real(DNA_PROG, "--val-frac", optarg, 0.001, 0.9, &o.val_frac) != 0;
            o.set_val_frac = 1;
            break;
        case O_VWIN: bad = mb_cli_parse_int(DNA_PROG, "--val-windows", optarg, 1, 1 << 20, &o.val_windows) != 0; break;
        case O_VEVERY:
            bad = mb_cli_parse_int(DNA_PROG, "--val-every", optarg, 1, INT64_C(1) << 40, &o.val_every) != 0;
            break;
        case O_NORC: o.rc_aug = 0; break;
        case O_REF: o.reference = optarg; break;
        case O_FORCE: o.force = 1; break;
        case 'h':
            cl_train_usage(stdout, &defaults);
            free(opts);
            free(o.fasta);
            cl_data_free(&d);
            return 0;
        default: bad = 1;
        }
    }
    free(opts);
    const char *why = NULL;
    if (!bad && optind < argc) {
        mb_cli_error(DNA_PROG, "classify train: unexpected argument '%s' (inputs go after --class, --tsv or "
                               "--fasta)", argv[optind]);
        bad = 1;
    }
    if (bad) why = "";
    else if (!d.files.n && !o.tsv) why = "classify train needs --class NAME=FILE... or --tsv REGIONS.tsv";
    else if (d.files.n && o.tsv) why = "--class and --tsv are exclusive";
    else if (d.files.n && d.names.n < 2) why = "classify train needs at least two classes";
    else if (o.tsv && !o.n_fasta) why = "--tsv needs --fasta (the files its regions are in)";
    else if (o.val_tsv && !o.n_fasta) why = "--val-tsv needs --fasta (the files its regions are in)";
    else if (o.n_fasta && !o.tsv && !o.val_tsv) why = "--fasta goes with --tsv or --val-tsv";
    else if ((d.vfiles.n > 0) + (o.val_tsv != NULL) + o.set_val_frac > 1)
        why = "--val-class, --val-tsv and --val-frac are exclusive";
    else if (!o.t.out) why = "classify train needs --out CLS";
    else if (!o.model && !o.t.resume) why = "classify train needs --model PRETRAINED (or --resume)";
    if (why) {
        if (*why) mb_cli_error(DNA_PROG, "%s", why);
        fprintf(stderr, CL_TRY);
        free(o.fasta);
        cl_data_free(&d);
        return 2;
    }
    if (o.val_every < 0) o.val_every = o.t.steps >= 10 ? o.t.steps / 10 : 1;
    if (!o.t.resume && !o.force && access(o.t.out, F_OK) == 0) {
        mb_cli_error(DNA_PROG, "%s exists: --resume continues it, --force starts over", o.t.out);
        free(o.fasta);
        cl_data_free(&d);
        return 1;
    }

    int rc = 1, log_failed = 0;
    mb_ctx *ctx = NULL;
    mb_model *m = NULL;
    mb_optim *opt = NULL;
    FILE *logf = NULL;
    int32_t *tok = NULL, *lab = NULL;
    cl_eval ev = {0};
    cl_saver sv = {.out = o.t.out, .optim_path = mb_cli_optim_path(o.t.out)};
    if (!sv.optim_path) {
        mb_cli_error(DNA_PROG, "out of memory");
        goto done;
    }
    if (!(ctx = mb_cli_ctx(DNA_PROG, &o.t))) goto done;
    /* with --class the classes are known: a wrong checkpoint fails before
     * any data is read; with --tsv they come from the file */
    if (!o.tsv && !(m = cl_load(ctx, &o, d.names.n))) goto done;
    if (cl_setup_data(&o, &d)) goto done;
    if (!m && !(m = cl_load(ctx, &o, d.C))) goto done;
    const int in_place = o.t.resume ? cl_check_resumed_classes(&o, &d) : 0;
    if (in_place < 0 || (!in_place && cl_classes_write_tmp(o.t.out, &d.names, &sv.classes))) goto done;
    if (o.t.set_model) mb_cli_warn(DNA_PROG, "the model flags are ignored: the model is the checkpoint's");
    if (!(opt = mb_cli_optim(DNA_PROG, m, &o.t, sv.optim_path))) goto done;
    int64_t nval;
    if (cl_setup_windows(&o, &d, &nval)) goto done;
    const int C = d.C;
    ev.C = C;
    if (!(ev.conf = calloc((size_t)C * C, sizeof *ev.conf))) {
        mb_cli_error(DNA_PROG, "out of memory");
        goto done;
    }
    const int64_t B = o.t.batch, L = o.t.seq_len;
    tok = malloc(sizeof(int32_t) * (size_t)(B * L));
    lab = malloc(sizeof(int32_t) * (size_t)B);
    if (!tok || !lab) {
        mb_cli_error(DNA_PROG, "out of memory for %lld tokens a step", (long long)(B * L));
        goto done;
    }
    for (int k = 0; k < C; k++)
        fprintf(stderr, DNA_PROG ": class %d '%s': %lld training bases, %lld validation windows of %lld\n", k,
                d.names.v[k], (long long)d.cls[k].tiv->bases, (long long)d.cls[k].nv, (long long)d.cls[k].vlen);
    if (B * L > CL_RECOMPUTE_TOKENS) mb_model_set_recompute(m, 1);
    int64_t step = mb_optim_step_count(opt);
    const mb_config *mc = mb_model_config(m);
    fprintf(stderr, DNA_PROG ": %zu parameters (d_model %d, %d layers, head of %d classes) on %s%s\n",
            mb_model_num_params(m), mc->d_model, mc->n_layer, mc->n_classes, mb_ctx_name(ctx),
            step ? ", resuming" : "");
    if (!(logf = mb_cli_log_open(DNA_PROG, o.t.log, &log_failed)) && log_failed) goto done;
    if (logf) {
        fprintf(logf, "{\"event\": \"start\", \"step\": %lld, \"steps\": %lld, \"seq_len\": %lld, \"batch\": %lld, "
                      "\"params\": %zu, \"device\": ",
                (long long)step, (long long)o.t.steps, (long long)L, (long long)B, mb_model_num_params(m));
        cl_json_str(logf, mb_ctx_name(ctx));
        fputs(", \"classes\": [", logf);
        for (int k = 0; k < C; k++) {
            if (k) fputs(", ", logf);
            cl_json_str(logf, d.names.v[k]);
        }
        fprintf(logf, "], \"val_windows\": %lld}\n", (long long)nval);
    }

    const double t0 = mb_cli_now();
    double t_last = t0, t_print = t0, val_acc = NAN;
    int have_val = 0;
    if (step >= o.t.steps) {
        fprintf(stderr, DNA_PROG ": %s is already at step %lld of %lld: validating only\n", o.t.out,
                (long long)step, (long long)o.t.steps);
        if (cl_validate(m, &d, B, &ev)) goto done;
        have_val = 1;
    }
    mb_cli_catch_interrupt();
    const int64_t step0 = step;
    mb_loss_stats acc = {0};
    int64_t acc_win = 0;
    rc = 0;
    char err[512];
    while (step < o.t.steps && !mb_cli_interrupted()) {
        step++;
        /* the data order is a function of (seed, step): a resumed run sees
         * what an uninterrupted one would have */
        uint64_t rng = (uint64_t)o.t.seed * 0x9e3779b97f4a7c15ULL + (uint64_t)step;
        mb_cli_rng_next(&rng);
        for (int64_t b = 0; b < B && rc == 0; b++) {
            const int k = (int)mb_cli_rng_below(&rng, (uint64_t)C);
            lab[b] = k;
            if (dna_sampler_draw(d.cls[k].smp, &rng, o.rc_aug, tok + b * L, NULL, err, sizeof err)) {
                mb_cli_error(DNA_PROG, "%s", err);
                rc = 1;
            }
        }
        if (rc) break;
        float gn = 0, lr = 0;
        if (mb_model_classify_backward(m, tok, lab, (int)B, (int)L, &acc) || mb_optim_step(opt, &gn, &lr)) {
            mb_cli_error(DNA_PROG, "step %lld: %s", (long long)step, mb_error_last());
            rc = 1;
            break;
        }
        acc_win += B;
        const int do_val = step % o.val_every == 0 || step == o.t.steps;
        const double now = mb_cli_now();
        if (do_val || now - t_print >= CL_PROGRESS_S || step == step0 + 1) {
            if (do_val) {
                if (cl_validate(m, &d, B, &ev)) {
                    rc = 1;
                    break;
                }
                val_acc = cl_eval_acc(&ev);
                have_val = 1;
            }
            const double now2 = mb_cli_now();
            const double wps = acc_win / (now - t_last);
            const double loss = acc.count ? acc.loss_sum / (double)acc.count : NAN;
            const double tacc = acc.count ? (double)acc.correct / (double)acc.count : NAN;
            char eta[32];
            mb_cli_duration((now2 - t0) / (double)(step - step0) * (double)(o.t.steps - step), eta, sizeof eta);
            fprintf(stderr, "step %lld/%lld  loss %.4f  acc %.3f", (long long)step, (long long)o.t.steps, loss, tacc);
            if (do_val) fprintf(stderr, "  val acc %.4f", val_acc);
            fprintf(stderr, "  lr %.2e  %.1f windows/s  ETA %s\n", lr, wps, eta);
            if (logf) {
                fprintf(logf, "{\"step\": %lld, \"train_loss\": %.6f, \"train_acc\": %.6f, \"lr\": %.6g, "
                              "\"grad_norm\": %.6g, \"windows_per_s\": %.2f",
                        (long long)step, loss, tacc, lr, gn, wps);
                if (do_val) {
                    fprintf(logf, ", \"val_acc\": %.6f, \"val_loss\": %.6f, \"val_windows\": %lld", val_acc,
                            ev.n ? ev.loss / (double)ev.n : NAN, (long long)ev.n);
                    cl_log_confusion(logf, &ev);
                }
                fputs("}\n", logf);
            }
            memset(&acc, 0, sizeof acc);
            acc_win = 0;
            t_last = t_print = mb_cli_now();
        }
        if (o.t.save_every && step % o.t.save_every == 0 && step < o.t.steps && cl_save(&sv, m, opt)) {
            rc = 1;
            break;
        }
    }
    if (rc == 0 && step > step0 && cl_save(&sv, m, opt)) rc = 1;
    if (rc == 0 && mb_cli_interrupted()) {
        fprintf(stderr, DNA_PROG ": interrupted at step %lld; saved %s (--resume continues)\n", (long long)step,
                o.t.out);
        rc = 130; /* the shell's code for Ctrl-C; saved */
    } else if (rc == 0) {
        printf("classify: %lld steps, model %s (class names in %s.classes), %.1fs\n", (long long)step, o.t.out,
               o.t.out, mb_cli_now() - t0);
        if (have_val) {
            printf("classify: validation accuracy %.4f on %lld windows (chance %.4f)\n", cl_eval_acc(&ev),
                   (long long)ev.n, cl_eval_chance(&ev));
            cl_print_confusion(stdout, &d.names, &ev);
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            mb_cli_error(DNA_PROG, "stdout: write error");
            rc = 1;
        }
    }
    if (logf && (rc == 0 || rc == 130))
        fprintf(logf, "{\"event\": \"end\", \"step\": %lld, \"val_acc\": %.6f, \"interrupted\": %s}\n",
                (long long)step, have_val ? cl_eval_acc(&ev) : NAN, rc == 130 ? "true" : "false");
done:
    if (logf) fclose(logf);
    free(tok);
    free(lab);
    free(ev.conf);
    mb_cli_outfile_discard(&sv.classes);
    free(sv.optim_path);
    mb_optim_free(opt);
    mb_model_free(m);
    mb_ctx_free(ctx);
    cl_data_free(&d);
    free(o.fasta);
    return rc;
}

/* =================================================================================
 * predict
 * ================================================================================= */

typedef struct {
    dna_infer_opts in;
    dna_pool_opts pool; /* --window, --stride */
} pr_opts;

static void cl_predict_usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " classify predict --model CLS --fasta F [options]\n"
            "\n"
            "Class probabilities under the classifier CLS (from '" DNA_PROG " classify train')\n"
            "per record of F or, with --window, per window, as a TSV on stdout (a header line,\n"
            "then a row per record or window in file order):\n"
            "  name  start  end  predicted  p_<class1> .. p_<classN>\n"
            "start and end are 0-based, half open; predicted is the class of the highest\n"
            "probability (%%.6g values). The class names are read from CLS.classes (class0 ..\n"
            "when it is missing). A row is the head applied to the mean final hidden state\n"
            "over its bases, computed in constant memory: chunks of --chunk bases with the\n"
            "recurrent state carried, so records of any length are classified whole. An\n"
            "empty record gives NA and nan.\n"
            "\n"
            "options:\n"
            "  --model CLS        classifier checkpoint (required)\n"
            "  --fasta F          FASTA (plain, gzip, bgzip + .fai), BAM or CRAM (required;\n"
            "                     repeatable: the records of every file, in order)\n"
            "  --reference FA     reference for CRAM inputs\n"
            "  --window W         windows of W bases instead of whole records (train's\n"
            "                     --seq-len is the natural choice); a record shorter than W\n"
            "                     gives one row for all of it [off]\n"
            "  --stride S         a window starts every S bases; a last window that would run\n"
            "                     past the record's end is dropped [W]\n"
            "  --chunk N          tokens per forward pass; 64k, 1M accepted [%d]\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            "  --tf32             GPU: TF32 tensor cores for the GEMMs (faster, ~1e-3 error)\n"
            "\n"
            "Example: " DNA_PROG " classify predict --model cls.safetensors --fasta reads.fa.gz\n",
            CL_CHUNK_DEFAULT);
}

typedef struct {
    mb_model *m;
    dna_set *set;
    const cl_names *names;
    int d, C;
    float *pooled, *probs;
} pr_run;

/* One output row; p NULL: an empty record (NA, nan). */
static int pr_print(pr_run *r, int64_t rec, int64_t start, int64_t end, const float *p)
{
    int best = 0;
    for (int j = 1; p && j < r->C; j++) best = p[j] > p[best] ? j : best;
    int bad = printf("%s\t%lld\t%lld\t%s", dna_set_name(r->set, rec), (long long)start, (long long)end,
                     p ? r->names->v[best] : "NA") < 0;
    for (int j = 0; j < r->C && !bad; j++) bad = p ? printf("\t%.6g", p[j]) < 0 : fputs("\tnan", stdout) < 0;
    if (bad || putchar('\n') == EOF || ferror(stdout)) return mb_cli_write_error(DNA_PROG, NULL);
    return 0;
}

/* the head on the mean hidden state of a row (dna_pool_row_fn) */
static int pr_row(void *ud, int64_t rec, int64_t start, int64_t end, const double *sum)
{
    pr_run *r = ud;
    if (end == start) return pr_print(r, rec, start, end, NULL);
    for (int k = 0; k < r->d; k++) r->pooled[k] = (float)(sum[k] / (double)(end - start));
    if (mb_model_classify_pooled(r->m, r->pooled, 1, r->probs)) {
        mb_cli_error(DNA_PROG, "record '%s': %s", dna_set_name(r->set, rec), mb_error_last());
        return -1;
    }
    return pr_print(r, rec, start, end, r->probs);
}

static int cl_predict(int argc, char **argv)
{
    pr_opts o = {0};
    if (dna_infer_init(&o.in, argc, CL_CHUNK_DEFAULT)) return 1;
    dna_pool_opts_init(&o.pool);
    static const struct option opts[] = {
        DNA_INFER_OPTIONS, DNA_POOL_OPTIONS, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const int r = dna_infer_option(&o.in, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        if (dna_pool_option(&o.pool, c, optarg, &bad)) continue;
        switch (c) {
        case 'h':
            cl_predict_usage(stdout);
            dna_infer_free(&o.in);
            return 0;
        default: bad = 1;
        }
    }
    if (!bad && dna_infer_check(&o.in, "classify predict", argc, argv)) bad = 1;
    if (!bad && dna_pool_check(&o.pool)) bad = 1;
    if (bad) {
        fprintf(stderr, CL_TRY);
        dna_infer_free(&o.in);
        return 2;
    }

    int rc = 1;
    dna_set *set = NULL;
    mb_model *m = NULL;
    cl_names names = {0};
    pr_run r = {0};
    mb_ctx *ctx = mb_cli_ctx(DNA_PROG, &o.in.t);
    if (!ctx || !(m = dna_cmd_load_model(ctx, o.in.model, 0, 0))) goto done;
    const int C = mb_model_config(m)->n_classes;
    if (C <= 0) {
        mb_cli_error(DNA_PROG, "%s: no classification head: train one with '" DNA_PROG " classify train'", o.in.model);
        goto done;
    }
    const int got = cl_classes_read(o.in.model, C, &names);
    if (got < 0) goto done;
    for (int k = 0; got == 0 && k < C; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "class%d", k);
        if (cl_names_add(&names, nm) < 0) {
            mb_cli_error(DNA_PROG, "out of memory");
            goto done;
        }
    }
    if (!(set = dna_cmd_open_set(o.in.fasta, o.in.n_fasta, o.in.reference))) goto done;
    r.m = m;
    r.set = set;
    r.names = &names;
    r.d = mb_model_config(m)->d_model;
    r.C = C;
    r.pooled = malloc(sizeof(float) * (size_t)r.d);
    r.probs = malloc(sizeof(float) * (size_t)C);
    if (!r.pooled || !r.probs) {
        mb_cli_error(DNA_PROG, "out of memory");
        goto done;
    }
    int bad_out = printf("name\tstart\tend\tpredicted") < 0;
    for (int k = 0; k < C && !bad_out; k++) bad_out = printf("\tp_%s", names.v[k]) < 0;
    if (bad_out || putchar('\n') == EOF) {
        mb_cli_write_error(DNA_PROG, NULL);
        goto done;
    }
    o.pool.chunk = o.in.chunk;
    if (dna_pool_run(m, o.in.model, set, &o.pool, "classify", pr_row, &r)) goto done;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mb_cli_write_error(DNA_PROG, NULL);
        goto done;
    }
    rc = 0;
done:
    free(r.pooled);
    free(r.probs);
    cl_names_free(&names);
    dna_set_close(set);
    mb_model_free(m);
    mb_ctx_free(ctx);
    dna_infer_free(&o.in);
    return rc;
}

/* =================================================================================
 * the subcommand
 * ================================================================================= */

static void cl_usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " classify train --model PRETRAINED --out CLS (--class NAME=FILE... | --tsv R.tsv\n"
            "                          --fasta F...) [options]\n"
            "       " DNA_PROG " classify predict --model CLS --fasta F [options]\n"
            "\n"
            "Sequence classification with a mamba-dna model: 'train' fine-tunes a pretrained\n"
            "model with a classification head on labelled sequences and reports the held-out\n"
            "accuracy and confusion matrix; 'predict' writes each class's probability per\n"
            "record or window. Both modes are described below ('" DNA_PROG " classify train\n"
            "--help' and '... predict --help' show one each).\n"
            "\n");
}

int dna_cmd_classify(int argc, char **argv)
{
    if (argc < 2) {
        mb_cli_error(DNA_PROG, "classify needs a mode: train or predict");
        fprintf(stderr, CL_TRY);
        return 2;
    }
    const char *mode = argv[1];
    /* the mode parses argv[1..]: its name stands in for argv[0] */
    if (strcmp(mode, "train") == 0) return cl_train(argc - 1, argv + 1);
    if (strcmp(mode, "predict") == 0) return cl_predict(argc - 1, argv + 1);
    if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0 || strcmp(mode, "help") == 0) {
        mb_cli_train d;
        mb_cli_train_default(&d);
        d.lr = CL_LR_DEFAULT;
        cl_usage(stdout);
        cl_train_usage(stdout, &d);
        fputc('\n', stdout);
        cl_predict_usage(stdout);
        return 0;
    }
    mb_cli_error(DNA_PROG, "classify: unknown mode '%s' (train or predict)", mode);
    fprintf(stderr, CL_TRY);
    return 2;
}
