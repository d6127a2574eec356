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
 * step `last`, an interrupt, an early stop or a failure (its line printed);
 * mb_cli_train_finish then writes the final checkpoint and the line of a
 * stop before the last step, and the tool its summary.
 *
 * After each validation, the held-out loss (the validation's figure, or
 * val_loss of it) against the lowest so far (mb_cli_val_hist, kept in the
 * run's checkpoint sets so a resumed run decides as an uninterrupted one):
 * a new lowest is kept (save_best, rank 0: the tools write --out); after
 * MB_CLI_RISING_VALS validations without one, a warning, once a run; after
 * `patience` of them the run stops early, the last step saved as any stop
 * is. The ranks agree on both through mb_cli_dist_sync. A step whose
 * gradient norm is not finite (the library skips its update) ends the run:
 * "step N: the training diverged ...", exit 1, nothing saved.
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
#include "mb_cli_ckpt.h"

#define MB_CLI_LN2 0.69314718055994530942 /* nats to bits */
/* validations without a lower held-out loss before the warning */
#define MB_CLI_RISING_VALS 3

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
    /* ---- held-out loss and checkpoints (optional) ---- */
    /* the run's checkpoint sets: their history is the loop's, the newest
     * is named in the lines (NULL: none; the loop keeps `hist` itself) */
    mb_cli_ckpt *ck;
    mb_cli_val_hist hist;
    /* the held-out loss to minimize, from the validation's figure (NULL:
     * the figure is one, e.g. bits) */
    double (*val_loss)(void *ud, double val);
    /* rank 0, at a validation with the lowest held-out loss so far: keep
     * the weights (0, or 1 after the error line); NULL: none kept */
    int (*save_best)(void *ud);
    const char *best_out; /* where save_best keeps them, for the lines */
    int64_t patience;     /* validations without a lower loss before an early stop; 0: none */
    /* in: the optimizer's step count; out: the last step taken */
    int64_t step;
    /* ---- out ---- */
    int64_t step0;  /* the step the run started from */
    double last_val; /* the last validation (NaN: none) */
    double t0;       /* when the loop started */
    int stop;        /* a rank was interrupted */
    int synced;      /* the ranks have agreed on the result: they must not sync again */
    int early;       /* the run stopped early (patience) */
    int64_t saved;   /* the step of the last checkpoint written (0: none) */
} mb_cli_train_run;

/* The history the loop works on: the checkpoint sets' or its own. */
mb_cli_val_hist *mb_cli_train_hist(mb_cli_train_run *r);

/* The loop: 0, or the exit code after the error line (r->synced says
 * whether the ranks have agreed on it). */
int mb_cli_train_loop(mb_cli_train_run *r);

/* After the loop: with rc 0, the final checkpoint (rank 0, r->save, when a
 * step was taken since the last one) and, when the run stopped before its
 * last step, the line "PROG: interrupted|stopped at step N" with "; saved
 * OUT (--resume continues)" when out is given (the newest set's name with
 * r->ck), or "PROG: stopped early at step N: ..." (patience). Returns the
 * exit code: 0 (the run is complete when r->step == r->steps or r->early,
 * else it stopped at r->last), 130 (interrupted, saved), or rc / 1 after an
 * error line. */
int mb_cli_train_finish(mb_cli_train_run *r, int rc, const char *out);

#endif
