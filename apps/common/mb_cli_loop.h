/* The training loop every training command runs (mamba-dna pretrain and
 * classify train, mamba-audio train, mamba-selcopy) once its model,
 * optimizer, data and log are ready.
 *
 * Each step: the tool's train_step makes this rank's rows of the step's
 * batch and runs forward and backward (the gradients added to the model's
 * buffer); the step's sync over the ranks (mb_cli_dist_step); AdamW. On rank
 * 0's decision to print, the validation where one is due (every val_every
 * steps and at the last), then the progress line on stderr and a JSON line
 * in the log; a checkpoint every save_every steps. The loop returns after
 * step `last`, an interrupt or a failure (its line printed);
 * mb_cli_train_finish then writes the final checkpoint and the line of an
 * early stop, and the tool its summary.
 *
 * The progress line and the JSON line:
 *   step S/STEPS[  L n]<train fields>[<val fields>]  lr X  RATE unit  ETA t
 *   {"step": S[, "seq_len": n, "batch": b]<train fields>, "lr": X,
 *    "grad_norm": G, "<key_rate>": RATE[<val fields>]}
 * where the fields are the tool's (fields_train, fields_val), by default
 * the loss in bits per counted target: "  train X <unit>" / ", "<key_train>":
 * X" and "  val X" / ", "<key_val>": X". */
#ifndef MB_CLI_LOOP_H
#define MB_CLI_LOOP_H

#include <stdint.h>
#include <stdio.h>

#include "mamba.h"

#define MB_CLI_LN2 0.69314718055994530942 /* nats to bits */

/* What a step did, for the loop to sum over the ranks and report. */
typedef struct {
    mb_loss_stats loss; /* this rank's: loss sum, counted targets, argmax hits */
    int64_t items;      /* what the rate counts, over every rank: tokens, samples, windows */
    int64_t L, B;       /* the step's sequence length and global batch (show_shape) */
} mb_cli_step;

typedef struct {
    /* ---- set by the caller ---- */
    const char *prog;
    mb_optim *opt;
    FILE *log;            /* NULL: no JSON lines */
    int64_t steps, last;  /* the run's length; the step to stop after (<= steps) */
    int64_t val_every;    /* 0: no validation */
    int64_t save_every;   /* 0: only mb_cli_train_finish's checkpoint */
    int64_t print_every;  /* 0: every 5 s, the first step, a validation and the last */
    int show_shape;       /* the step's L in the line, seq_len and batch in the log */
    /* the default fields' unit and keys ("bits/base", "train_bpb",
     * "val_bpb"), the rate's unit and key ("tok/s", "tokens_per_s") and its
     * digits after the point in the line (the log has one more) */
    const char *unit, *key_train, *key_val, *rate_unit, *key_rate;
    int rate_digits;
    void *ud;
    /* step `step` on this rank (see mb_cli_step): 0; 1 after its error
     * line; -1 when a library call failed (the loop prints "step N:
     * <mb_error_last()>") */
    int (*train_step)(void *ud, int64_t step, mb_cli_step *out);
    /* the validation, a collective: mb_cli_dist_sync's code; *val the
     * headline figure (bits, accuracy) */
    int (*validate)(void *ud, double *val);
    /* the checkpoint (rank 0): 0, or 1 after the error line; NULL: none */
    int (*save)(void *ud);
    /* the tool's fields (NULL: the defaults above): the training loss
     * since the last line over every rank, the last validation; json 0:
     * "  name value" pieces of the progress line, 1: ", \"key\": value"
     * pieces of the JSON line */
    void (*fields_train)(void *ud, const mb_loss_stats *acc, FILE *f, int json);
    void (*fields_val)(void *ud, double val, FILE *f, int json);
    /* in: the optimizer's step count; out: the last step taken */
    int64_t step;
    /* ---- out ---- */
    int64_t step0;  /* the step the run started from */
    double last_val; /* the last validation (NaN: none) */
    double t0;       /* when the loop started */
    int stop;        /* a rank was interrupted */
    int synced;      /* the ranks have agreed on the result: they must not sync again */
} mb_cli_train_run;

/* The loop: 0, or the exit code after the error line (r->synced says
 * whether the ranks have agreed on it). */
int mb_cli_train_loop(mb_cli_train_run *r);

/* After the loop: with rc 0, the final checkpoint (rank 0, r->save, when a
 * step was taken) and, when the run stopped before its last step, the line
 * "PROG: interrupted|stopped at step N" with "; saved OUT (--resume
 * continues)" when out is given. Returns the exit code: 0 (the run is
 * complete when r->step == r->steps, else it stopped at r->last), 130
 * (interrupted, saved), or rc / 1 after an error line. */
int mb_cli_train_finish(mb_cli_train_run *r, int rc, const char *out);

#endif
