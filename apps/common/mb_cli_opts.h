/* Option values with one-line errors, and the model and training flags
 * every training command shares (with their block of --help). */
#ifndef MB_CLI_OPTS_H
#define MB_CLI_OPTS_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "mamba.h"

/* Integer / real in [lo, hi]; on a bad value prints
 * "PROG: error: --opt expects ..." and returns -1. Integers take the
 * suffixes k, K (2^10) and M (2^20). */
int mb_cli_parse_int(const char *prog, const char *opt, const char *s, int64_t lo, int64_t hi,
                     int64_t *out);
int mb_cli_parse_real(const char *prog, const char *opt, const char *s, double lo, double hi,
                      double *out);


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
    int tf32;            /* --tf32 (GPU GEMMs in TF32), or --precision tf32 */
    int bf16;            /* --precision bf16 */
    int64_t seed;        /* --seed */
    const char *log;     /* --log FILE (JSON lines, appended) */
    int resume;          /* --resume: continue from the newest complete checkpoint beside --out */
    const char *out;     /* --out MODEL */
    int64_t save_every;  /* --save-every N steps (0 = only at the end) */
    int64_t keep;        /* --keep K: checkpoint sets kept (the newest K) */
    int select_last;     /* --select last: --out is the last step's model, not the best */
    int64_t patience;    /* --patience N: stop after N validations without a better held-out loss (0 = never) */
    int set_model;       /* a model flag was given (warned about on --resume) */
} mb_cli_train;

/* --precision fp32 | tf32 | bf16 into t's tf32 and bf16 flags; -1 after
 * the error line ("PROG: error: --precision expects ...") on another value */
int mb_cli_parse_precision(const char *prog, const char *arg, mb_cli_train *t);
/* its --help lines */
#define MB_CLI_PRECISION_HELP                                                               \
    "  --precision P      fp32, tf32 (as --tf32) or bf16: weights a GEMM reads and\n"     \
    "                     stored activations rounded to bf16, all else fp32, as\n"         \
    "                     mamba_ssm under autocast (GPU: tensor-core GEMMs) [fp32]\n"

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

/* getopt_long over a command's long options (and -h), with the tools' own
 * messages: getopt's lines are off (opterr = 0), and a bad option is one
 * line "PROG: error: CMD: unrecognized option '--x'" (or "option '--x'
 * needs a value", "option '--x' takes no value", "option '--x' is
 * ambiguous"; CMD NULL for a tool without commands), after which '?' is
 * returned for the caller's usage exit (2). --version, which no table
 * lists, prints the version line and returns MB_CLI_OPT_VERSION: the
 * caller returns 0. Otherwise as getopt_long (the caller sets optind). */
#define MB_CLI_OPT_VERSION 0xFFF0
int mb_cli_getopt(const char *prog, const char *cmd, int argc, char **argv, const struct option *opts);

#endif
