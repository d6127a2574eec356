/* What every classifier command shares (mamba-dna classify, mamba-audio
 * classify): class names and MODEL.classes beside the checkpoint, the mean
 * final hidden state of a batch of records read through chunks (what the
 * classification head reads, in constant memory whatever the records'
 * length), and the counts of an evaluation with its confusion matrix.
 * Errors are printed as one line "PROG: error: what" by the function that
 * finds them; functions return -1 after it. */
#ifndef MB_CLI_CLASSIFY_H
#define MB_CLI_CLASSIFY_H

#include <stdint.h>
#include <stdio.h>

#include "mamba.h"
#include "mb_cli_ckpt.h"
#include "mb_cli_out.h"

/* ---- class names ------------------------------------------------------------ */

typedef struct {
    char **v;
    int n, cap;
} mb_cli_names;

void mb_cli_names_free(mb_cli_names *c);
int mb_cli_names_find(const mb_cli_names *c, const char *s); /* -1: not there */
/* The index of s, added at the end when new; -1 when out of memory. */
int mb_cli_names_add(mb_cli_names *c, const char *s);
/* "a, b, c" for messages (cut to fit). */
const char *mb_cli_names_list(const mb_cli_names *c, char *buf, size_t n);
/* A class name goes into a TSV header and a file of one name a line: not
 * empty, no tab or line break. */
int mb_cli_name_ok(const char *s);
/* MODEL.classes into out: 1 when read, 0 when there is none, -1 (error
 * line) when unreadable or not C names. */
int mb_cli_classes_read(const char *prog, const char *model, int C, mb_cli_names *out);
/* The names of a head of C classes: MODEL.classes, or class0 ..
 * class<C-1> when there is none; 0, or -1 after an error line. */
int mb_cli_classes_names(const char *prog, const char *model, int C, mb_cli_names *out);
/* The names written to MODEL.classes's temporary file, to be committed
 * (mb_cli_outfile_commit) once the model is saved; NULL after an error
 * line. */
mb_outfile *mb_cli_classes_write(const char *prog, const char *model, const mb_cli_names *names);
/* Resuming a run: the classes saved beside its checkpoint OUT must be
 * names, in this order. 1: they are, 0: there is no OUT.classes (a
 * warning), -1: an error line. */
int mb_cli_classes_check(const char *prog, const char *out, const mb_cli_names *names);
/* s as a JSON string. */
void mb_cli_json_str(FILE *f, const char *s);

/* ---- pooled records ---------------------------------------------------------- */

#define MB_CLI_POOL_ROWS 32       /* records a pass, at most */
#define MB_CLI_POOL_TOKENS 65536  /* tokens a forward call over all the rows */

/* Record b's tokens [t0, t0 + n) into out; -1 after an error line. */
typedef int (*mb_cli_fetch_fn)(void *ud, int64_t b, int64_t t0, int64_t n, int32_t *out);

typedef struct {
    const char *prog;
    mb_model *m;
    mb_state *st;   /* B rows */
    int64_t B, chunk;
    int d;
    int32_t *tok;   /* (B, chunk) */
    float *hs;      /* (B, d) a chunk's sums */
    double *acc;    /* (B, d) */
    float *pooled;  /* (B, d): mb_cli_pooler_run's result */
} mb_cli_pooler;

/* Rows for up to `records` records a pass (at most MB_CLI_POOL_ROWS),
 * chunks of MB_CLI_POOL_TOKENS tokens over them (at most L, the longest
 * record), a multiple of `period` when it is above 1 (a U-Net's pooling
 * period: its chunks run whole periods by the parallel forward). */
int mb_cli_pooler_init(mb_cli_pooler *p, const char *prog, mb_model *m, int64_t records, int64_t L, int64_t period);
void mb_cli_pooler_free(mb_cli_pooler *p);
/* p->pooled[b] = the mean over L positions of the final normed hidden
 * state of record b < nb, through chunks of p->chunk tokens; -1 after an
 * error line. */
int mb_cli_pooler_run(mb_cli_pooler *p, int64_t nb, int64_t L, mb_cli_fetch_fn fetch, void *ud);

/* ---- an evaluation's counts --------------------------------------------------- */

typedef struct {
    int C;
    int64_t *conf; /* (C, C): rows true class, columns predicted */
    int64_t n, correct;
    double loss; /* summed cross-entropy, nats */
} mb_cli_eval;

/* Counts one prediction (probs over C classes) of true class c. */
void mb_cli_eval_add(mb_cli_eval *ev, int c, const float *probs);
double mb_cli_eval_acc(const mb_cli_eval *ev);
/* The share of the most frequent true class: what always guessing it gets. */
double mb_cli_eval_chance(const mb_cli_eval *ev);
void mb_cli_print_confusion(FILE *f, const mb_cli_names *names, const mb_cli_eval *ev);
/* ', "confusion": [[...], ...]' for a JSON line. */
void mb_cli_log_confusion(FILE *f, const mb_cli_eval *ev);
/* The mean cross-entropy in nats (NaN when nothing was counted). */
double mb_cli_eval_loss(const mb_cli_eval *ev);
/* P(X >= k) for X ~ Binomial(n, p): how often a labeller right with
 * probability p gets k or more of n. */
double mb_cli_binom_tail(int64_t n, int64_t k, double p);
/* When the accuracy is no better than chance (the binomial tail at
 * mb_cli_eval_chance is above 0.05), a line to f saying so, prefixed
 * "LEAD: "; nothing otherwise. Returns 1 when it wrote the line. */
int mb_cli_eval_chance_note(FILE *f, const char *lead, const mb_cli_eval *ev);

/* ---- a classifier's training run: its validations ------------------------------ */

/* The last validation, and the one of the model kept as the best (the
 * lowest held-out loss) when it was made in this process. */
typedef struct {
    mb_cli_eval ev, best;
    int have_val, have_best;
    const char *unit; /* what is classified: "windows", "clips" */
} mb_cli_cls_val;

/* For C classes; -1 after an error line. */
int mb_cli_cls_val_init(mb_cli_cls_val *v, const char *prog, int C, const char *unit);
void mb_cli_cls_val_free(mb_cli_cls_val *v);
/* ev becomes the best's validation. */
void mb_cli_cls_val_keep_best(mb_cli_cls_val *v);
/* The training loop's fields (mb_cli_loop.h) of a classifier: the training
 * loss in nats and batch accuracy; the validation's accuracy and loss,
 * with the count and the confusion matrix in the JSON line. */
void mb_cli_cls_fields_train(const mb_loss_stats *acc, FILE *f, int json);
void mb_cli_cls_fields_val(const mb_cli_cls_val *v, FILE *f, int json);
/* The run's summary on stdout: "classify: STEPS steps, model OUT (class
 * names in OUT.classes[; the best step]), SECSs", then the validation of
 * the model in OUT (the best's when it was made in this process, else the
 * last's, said) with the confusion matrix. 0, or 1 after the error line. */
int mb_cli_cls_report(const char *prog, const mb_cli_cls_val *v, const mb_cli_names *names, const char *out,
                      const mb_cli_val_hist *h, int select_last, int64_t step, double secs);

#endif
