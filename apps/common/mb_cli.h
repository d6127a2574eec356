/* Command-line plumbing shared by the tools (mamba-dna, mamba-audio,
 * mamba-selcopy): option values with one-line errors, the model and
 * training flags every tool takes, timing and ETAs, JSON-lines logs,
 * checkpoint paths and Ctrl-C.
 *
 * Conventions (README): errors are one line "PROG: error: what" on stderr;
 * exit 1 for bad input or a failed run, 2 for bad usage. */
#ifndef MB_CLI_H
#define MB_CLI_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "mamba.h"

#define MB_CLI_LN2 0.69314718055994530942 /* nats to bits */

/* For input layers that report rather than print: writes "PATH: <fmt>"
 * into err (when err is not NULL and errlen > 0; cut to fit), newlines
 * turned into spaces so the message stays one line whatever the path or a
 * library's text holds, and returns -1. */
int mb_cli_errf(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints "PROG: error: <fmt>" and a newline on stderr. */
void mb_cli_error(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mb_cli_warn(const char *prog, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Integer / real in [lo, hi]; on a bad value prints
 * "PROG: error: --opt expects ..." and returns -1. */
int mb_cli_parse_int(const char *prog, const char *opt, const char *s, int64_t lo, int64_t hi,
                     int64_t *out);
int mb_cli_parse_real(const char *prog, const char *opt, const char *s, double lo, double hi,
                      double *out);

double mb_cli_now(void); /* monotonic seconds */
/* "42s", "3m05s", "2h07m", "3d04h" */
void mb_cli_duration(double seconds, char *buf, size_t n);

/* ---- random numbers for data order ----------------------------------------
 * splitmix64: one uint64_t of state, every seed (0 included) is fine, and
 * the stream is the same on every platform, so a seed replays the windows
 * and crops of a run. */
uint64_t mb_cli_rng_next(uint64_t *state);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t mb_cli_rng_below(uint64_t *state, uint64_t n);
/* The generator state of row `row` of step `step`'s batch: each row has a
 * stream of its own, so the global batch is a function of (seed, step),
 * the same for a resumed run and for any number of ranks, and a rank draws
 * (and reads) only its own rows. */
uint64_t mb_cli_rng_row(int64_t seed, int64_t step, int64_t row);

/* ---- the flags every training tool shares -------------------------------- */

typedef struct {
    mb_config cfg;       /* --d-model --n-layer --d-state --expand --init */
    int64_t steps;       /* --steps */
    int64_t batch;       /* --batch */
    int64_t seq_len;     /* --seq-len */
    double lr;           /* --lr (peak; warmup, then cosine to lr/10) */
    double warmup_frac;  /* --warmup: fraction of the steps */
    double weight_decay; /* --weight-decay */
    double grad_clip;    /* --grad-clip (0 = off) */
    const char *device;  /* --device cpu | cuda | cuda:N */
    int64_t threads;     /* --threads (CPU; 0 = all) */
    int tf32;            /* --tf32 (GPU GEMMs in TF32) */
    int64_t seed;        /* --seed */
    const char *log;     /* --log FILE (JSON lines, appended) */
    int resume;          /* --resume: continue from --out and its .optim */
    const char *out;     /* --out MODEL */
    int64_t save_every;  /* --save-every N steps (0 = only at the end) */
    int set_model;       /* a model flag was given (warned about on --resume) */
} mb_cli_train;

void mb_cli_train_default(mb_cli_train *t);

/* getopt_long values of the shared flags start here; a tool's own flags
 * use values below it (and above 255). */
#define MB_CLI_OPT_BASE 0x1000
extern const struct option mb_cli_train_options[]; /* ends with a zero entry */
/* One block of --help text for the shared flags (with their defaults). */
void mb_cli_train_help(FILE *f, const mb_cli_train *defaults);
/* Handles option c: 1 = it was a shared flag (taken), 0 = not one of
 * them, -1 = a bad value (the error is printed). */
int mb_cli_train_option(mb_cli_train *t, const char *prog, int c, const char *arg);

/* A tool's option table followed by the shared one (malloc'd; free it). */
struct option *mb_cli_options_join(const struct option *own);

/* Optimizer state next to a model checkpoint: "<model>.optim". Returns a
 * malloc'd string. */
char *mb_cli_optim_path(const char *model_path);

/* Context for --device / --threads / --tf32 (NULL after an error line). */
mb_ctx *mb_cli_ctx(const char *prog, const mb_cli_train *t);
/* A new model of the shared flags' config (t->cfg, seeded by t->seed); NULL
 * after an error line. */
mb_model *mb_cli_model_new(const char *prog, mb_ctx *ctx, const mb_cli_train *t);
/* AdamW with the shared flags' settings for a run of t->steps steps, its
 * state read from optim_path when t->resume; NULL after an error line. */
mb_optim *mb_cli_optim(const char *prog, mb_model *m, const mb_cli_train *t, const char *optim_path);

/* --log: opened for appending (NULL when t->log is NULL; exits through an
 * error line when it cannot be opened: *failed set). */
FILE *mb_cli_log_open(const char *prog, const char *path, int *failed);

/* An output file written beside its final path and renamed over it when
 * complete: readers never see half a file and a failed run leaves the
 * previous one as it was. */
typedef struct {
    char *path, *tmp;
    FILE *f;
} mb_cli_outfile;

/* Creates the temporary file (with the permissions a new file gets); on
 * failure prints "PROG: error: PATH: cannot create a file in its
 * directory (...)" and returns -1. */
int mb_cli_outfile_open(const char *prog, mb_cli_outfile *o, const char *path);
/* Flushes, syncs, closes and renames into place; -1 (error printed, the
 * temporary file removed) on any write error. */
int mb_cli_outfile_commit(const char *prog, mb_cli_outfile *o);
/* Removes the temporary file (nothing at `path` changes). Safe to call on
 * a closed or zeroed outfile. */
void mb_cli_outfile_discard(mb_cli_outfile *o);
/* "PROG: error: PATH: <mb_error_last()>", without repeating PATH when the
 * library's message already names it; returns -1. */
int mb_cli_lib_error(const char *prog, const char *path);
/* Whether a file can be created beside PATH (tried, then removed), so a
 * long run finds an unwritable output before its work, not after; prints
 * the error line. 0 or -1. */
int mb_cli_check_writable(const char *prog, const char *path);
/* "PROG: error: PATH: write error (<errno text>)"; returns -1. */
int mb_cli_write_error(const char *prog, const char *path);

/* ---- data-parallel training: mpirun -np N TOOL train ... -------------------
 * Every rank parses the same flags, reads the same inputs and draws the
 * same global batch (--batch is the global batch, so a run equals a
 * one-process run with that --batch), and trains on its own rows; the
 * gradients are averaged in mb_optim_step. Rank 0 alone prints, logs and
 * writes files: mb_cli_dist_start sends the other ranks' stdout and stderr
 * to /dev/null and holds their error lines, and a failure is reported in
 * one line in all (rank 0's, else the first failing rank's) when the ranks
 * meet in mb_cli_dist_sync. A process not started by mpirun is a group of
 * one, where all of this costs nothing. */

/* Joins the group (mb_dist_init). 0, or 1 after the error line (printed
 * once: a build without MPI launched with several processes). */
int mb_cli_dist_start(const char *prog);
/* Leaves it (MPI_Finalize); every rank must get here. */
void mb_cli_dist_stop(void);
mb_dist *mb_cli_dist(void); /* NULL before mb_cli_dist_start */
int mb_cli_rank(void);
int mb_cli_ranks(void);
/* --batch must split evenly over the ranks: else the usage error line
 * "--batch B does not split over P ranks ..." and -1. */
int mb_cli_dist_check_batch(const char *prog, int64_t batch);
/* This rank's rows of a global batch of `batch` rows: [*row0, *row0 + *rows). */
void mb_cli_dist_rows(int64_t batch, int64_t *row0, int64_t *rows);
/* The same for n items that need not split evenly (validation windows). */
void mb_cli_dist_share(int64_t n, int64_t *first, int64_t *count);

/* The one collective of a training loop, made by every rank at the same
 * points: after each step's forward and backward, around a validation, and
 * once at the end (with a rank's failure, at the point it failed). It sums
 * sum[] over the ranks, takes rank 0's print (a decision that reads the
 * clock, which the ranks would not agree on) and any rank's stop (Ctrl-C
 * reaches the ranks at different steps), and agrees on the exit code: 0
 * when every rank passed rc 0, else the code of rank 0 if it failed, else
 * of the first rank that did, which prints its held error line. After a
 * nonzero result the ranks must not sync again: they are done. A failure
 * of the collective itself ends the job (mb_dist_abort). */
#define MB_CLI_SYNC_N 4
typedef struct {
    double sum[MB_CLI_SYNC_N];
    int print, stop;
} mb_cli_sync;
int mb_cli_dist_sync(int rc, mb_cli_sync *s);
/* mb_cli_dist_sync with nothing but the exit code. */
int mb_cli_dist_agree(int rc);
/* A training step's sync, after its forward and backward (rc: how they
 * went on this rank; st: this rank's loss over its rows): adds the step's
 * loss over every rank to *acc, tells the optimizer this rank's share of
 * the counted targets (ignored ones, N bases or padding, differ between
 * ranks: mb_optim_set_share), sets *print to rank 0's `print` and *stop
 * when any rank was interrupted. Returns mb_cli_dist_sync's code. */
int mb_cli_dist_step(int rc, const mb_loss_stats *st, int print, mb_optim *opt, mb_loss_stats *acc,
                     int *print_out, int *stop);
/* A failure after which the other ranks would wait forever (inside a
 * collective of the library): prints the error line with this rank's
 * number and ends the whole job with exit code 1. Returns (1) only with
 * one rank. */
int mb_cli_dist_fatal(const char *prog, const char *what);
/* ---- the training loop -------------------------------------------------------
 * What every training command does each step once its model, optimizer,
 * data and log are ready (mamba-dna pretrain, mamba-audio train): this
 * rank's rows of the step's batch (the caller's), forward and backward, the
 * step's sync over the ranks, AdamW; on rank 0's decision to print (every
 * 5 s, the first step, a validation, the last) the progress line on stderr
 * and a JSON line in the log, after the validation where one is due (every
 * val_every steps and at the last); a checkpoint every save_every steps.
 * mb_cli_train_loop returns after step `last`, an interrupt or a failure
 * (its line printed); the caller writes the final checkpoint and the
 * closing lines, which differ between the tools. */
typedef struct {
    const char *prog;
    mb_model *m;
    mb_optim *opt;
    FILE *log;            /* NULL: no JSON lines */
    int64_t steps, last;  /* the run's length; the step to stop after (<= steps) */
    int64_t val_every;    /* 0: no validation */
    int64_t save_every;   /* 0: only the caller's final checkpoint */
    /* the progress line's units and the log's keys: "bits/sample",
     * "samples/s", "train_bits", "val_bits", "samples_per_s" */
    const char *unit, *rate_unit, *key_train, *key_val, *key_rate;
    int show_shape;       /* the step's L in the line, seq_len and batch in the log */
    void *ud;
    /* this rank's rows of step's batch into tok and tgt ((*rows, *L) each;
     * *B rows in all): 0, or 1 after the error line */
    int (*batch)(void *ud, int64_t step, int32_t *tok, int32_t *tgt, int64_t *rows, int64_t *L, int64_t *B);
    /* the validation, a collective (mb_cli_dist_sync's code), in bits a
     * token; rows and L: the step's */
    int (*validate)(void *ud, int64_t rows, int64_t L, double *bits);
    /* the checkpoint (rank 0): 0, or 1 after the error line */
    int (*save)(void *ud);
    /* in: the optimizer's step count; out: the last step taken */
    int64_t step;
    /* out: the last validation (NaN: none), the start time, whether a
     * rank was interrupted, whether the ranks have agreed on the result
     * (then they must not sync again) */
    double last_val, t0;
    int stop, synced;
} mb_cli_train_run;
int mb_cli_train_loop(mb_cli_train_run *r, int32_t *tok, int32_t *tgt);

/* A tool's commands: the name, the entry point (it parses argv[1..], the
 * command's name standing in for argv[0]), and whether it runs
 * data-parallel under mpirun (the others would run whole in every process,
 * each writing the same outputs, so they refuse several processes). */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    int parallel;
} mb_cli_command;
/* The tools' main: no command prints usage to stderr (exit 2); -h, --help
 * or help to stdout (0); --version; else the command named by argv[1], or
 * "unknown command" (2). */
int mb_cli_main(const char *prog, int argc, char **argv, void (*usage)(FILE *f), const mb_cli_command *cmds,
                int ncmds);

/* Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process, so
 * a training loop can save a checkpoint and stop cleanly; a second signal
 * kills it as usual. */
void mb_cli_catch_interrupt(void);
int mb_cli_interrupted(void);

#endif
