/* mamba-dna classify, the files of one subcommand and what they share:
 *   dna_classify.c          the subcommand: train or predict
 *   dna_classify_labels.c   the classes as given: --class NAME=FILE..., region TSVs
 *   dna_classify_data.c     the classes' training intervals, samplers and
 *                           fixed validation windows
 *   dna_classify_pool.c     validation windows as records of the shared pooler
 *   dna_classify_eval.c     validation accuracy
 *   dna_classify_novel.c    the distance rule: "none of these" (CLS.novelty)
 *   dna_classify_train.c    classify train (through the shared training loop)
 *   dna_classify_predict.c  classify predict
 * Errors are printed as one line (mb_cli_error) by the function that finds
 * them; functions return -1 after it. */
#ifndef DNA_CLASSIFY_H
#define DNA_CLASSIFY_H

#include <stdint.h>
#include <stdio.h>

#include "dna_cmd.h"
#include "mb_cli_classify.h"

#define CL_VAL_FRAC_DEFAULT 0.1
#define CL_VAL_WINDOWS_DEFAULT 32
#define CL_LR_DEFAULT 1e-3
#define CL_CHUNK_DEFAULT 65536
#define CL_TRY "Try '" DNA_PROG " classify --help'.\n"

int cl_train(int argc, char **argv);
int cl_predict(int argc, char **argv);
void cl_train_usage(FILE *f, const mb_cli_train *defaults);
void cl_predict_usage(FILE *f);

/* ---- the classes as given (dna_classify_labels.c) ------------------------- */

/* The files of --class / --val-class: file i belongs to class cls[i]. */
typedef struct {
    int *cls;
    char **path;
    int n, cap;
} cl_files;

void cl_files_free(cl_files *f);
/* The files of class c, in the order given (a malloc'd array of borrowed
 * strings; *n set; NULL when out of memory). */
const char **cl_files_of(const cl_files *f, int c, int *n);
/* NAME=FILE[,FILE...] of option opt: the name into names (added when new: a
 * class given twice gets the files of both), each file into files. -1
 * after a usage error line. */
int cl_parse_class(const char *opt, const char *arg, mb_cli_names *names, cl_files *files);

typedef struct {
    int64_t rec, start, end; /* 0-based, half open */
    int cls;
} cl_region;

typedef struct {
    cl_region *v;
    int64_t n, cap;
} cl_regions;

/* The REGION<TAB>LABEL lines of path over the records of set. Labels are
 * class names: with add_new a new one becomes a class (in the order of
 * first appearance), else it must be one of names. Regions shorter than
 * min_len are refused. '#' lines, blank lines and a first line
 * "region<TAB>label" are skipped; columns after the label are ignored. */
int cl_read_tsv(const char *path, dna_set *set, mb_cli_names *names, int add_new, int64_t min_len, cl_regions *out);
/* The regions of class c as intervals, sorted and merged where they
 * overlap or touch. part 0: whole regions; 1: all but the last frac of
 * each; 2: the last floor(frac * length) bases of each (dna_split_fraction's
 * rule, per region). -1: out of memory (no line). */
int cl_regions_ivals(const cl_regions *rg, int c, int part, double frac, dna_ivals *out);

/* ---- the options of classify train ---------------------------------------- */

typedef struct {
    mb_cli_train t;
    const char *model, *tsv, *val_tsv, *reference;
    const char **fasta;
    int n_fasta;
    double val_frac;
    int set_val_frac, rc_aug, force;
    int memory;     /* DNA_MEMORY_*: --low-memory, --high-memory */
    int64_t val_every, val_windows;
} cl_opts;

/* ---- the classes' data (dna_classify_data.c) ------------------------------ */

typedef struct cl_class_s {
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
    mb_cli_names names, vnames; /* training classes; the --val-class names */
    cl_files files, vfiles; /* --class / --val-class files */
    int C;
    cl_class *cls;
    dna_set **sets; /* owned */
    int nsets;
} cl_data;

void cl_data_free(cl_data *d);
/* The training classes and their training / validation intervals, from
 * the options. */
int cl_setup_data(const cl_opts *o, cl_data *d);
/* Samplers of the training windows; the fixed validation windows (*nval in
 * all). */
int cl_setup_windows(const cl_opts *o, cl_data *d, int64_t *nval);

/* ---- validation windows as pooled records (dna_classify_pool.c) ------------ */

/* the most validation windows of a class, and the longest */
void cl_val_extent(const cl_data *d, int64_t *maxn, int64_t *maxlen);
/* mb_cli_pooler_run's fetch of validation windows w0 + b of one class */
typedef struct {
    const struct cl_class_s *k;
    int64_t w0;
} cl_val_windows;
int cl_val_fetch(void *ud, int64_t b, int64_t t0, int64_t n, int32_t *out);

/* ---- the distance rule (dna_classify_novel.c) ----------------------------- */

#define CL_NOVEL_PERCENTILE 95.0 /* a class's radius: this percentile of its windows' distances */
#define CL_NOVEL_WINDOWS 128     /* training windows a class the rule is fitted on */

typedef struct {
    int C, d;
    double *sd;     /* (d): each dimension's spread over every fitted window */
    double *cent;   /* (C, d): each class's centroid */
    double *radius; /* (C) */
} cl_novel;

void cl_novel_free(cl_novel *nv);
/* Fits the rule on per_class training windows of L tokens a class (from
 * the classes' samplers, a stream of seed's own) under the model m (the
 * classifier saved in CLS); -1 after an error line. */
int cl_novel_fit(mb_model *m, cl_data *d, int64_t per_class, int64_t L, int64_t seed, cl_novel *nv);
/* The distance of the pooled vector x to class c's centroid (in units of
 * the spreads), and to the nearest centroid (*nearest: its class).
 * Unknown: > radius[nearest]. */
double cl_novel_dist_to(const cl_novel *nv, const float *x, int c);
double cl_novel_dist(const cl_novel *nv, const float *x, int *nearest);
/* How many of the validation windows of d the rule calls unknown. */
int cl_novel_held_out(mb_model *m, cl_data *d, const cl_novel *nv, int64_t *flagged, int64_t *n);
/* MODEL.novelty written to its temporary file (committed by the caller);
 * read back for a model of width d and these classes (-1 after an error
 * line: missing, malformed, or another model's). */
mb_outfile *cl_novel_write(const char *model, const mb_cli_names *names, const cl_novel *nv);
int cl_novel_read(const char *model, const mb_cli_names *names, int d, cl_novel *nv);

/* ---- validation (dna_classify_eval.c) ------------------------------------- */

/* Classifies every validation window of d, at most bmax windows a pass. */
int cl_validate(mb_model *m, cl_data *d, int64_t bmax, mb_cli_eval *ev);

#endif
