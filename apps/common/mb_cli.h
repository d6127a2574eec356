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
/* Optimizer settings of the shared flags for a run of t->steps steps. */
void mb_cli_optim_config(const mb_cli_train *t, mb_optim_config *oc);

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

/* Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process, so
 * a training loop can save a checkpoint and stop cleanly; a second signal
 * kills it as usual. */
void mb_cli_catch_interrupt(void);
int mb_cli_interrupted(void);

#endif
