/* A training run's checkpoints (--out OUT, --keep K, --select, --resume).
 *
 * Beside OUT:
 *   OUT                the model to use: once the run has validated, the
 *                      weights of the lowest held-out loss so far (--select
 *                      best, the default); else (--select last, before the
 *                      first validation, a run without one) the newest
 *                      checkpoint's model
 *   OUT.step-N         a checkpoint set at step N, what --resume reads: the
 *   OUT.step-N.optim   model, its optimizer state (moments and step N, tied
 *                      by the library to the model's run id and weights),
 *   OUT.step-N.json    and the run's state at N (the model's run id, N, the
 *                      held-out loss's best, its step and the validations
 *                      since), so a resumed run decides what an
 *                      uninterrupted one would
 *   OUT.audio, OUT.classes: the tools' side files, one for the run
 *
 * A set is written model, optimizer, state, each to a temporary file then
 * renamed; it is complete when the three are there and agree (the library
 * checks the optimizer state against the model; the state must name the
 * model's run id and the optimizer's step N). Only after a set is complete
 * are the run's sets beyond the newest K removed, so a kill, a full disk or
 * a failed write at any moment leaves the sets before it as they were:
 * --resume takes the newest complete set, and says which newer ones it
 * skipped and why. A model with non-finite weights is never written (the
 * library refuses it): the run stops with one line, its sets stay.
 *
 * Runs of earlier versions kept OUT and OUT.optim: --resume takes those when
 * there is no set. */
#ifndef MB_CLI_CKPT_H
#define MB_CLI_CKPT_H

#include <stdint.h>

#include "mamba.h"
#include "mb_cli_opts.h"

/* The held-out loss over a run's validations: what the best model, the
 * warning of a loss that no longer improves, and --patience decide on. */
typedef struct {
    int64_t best_step;  /* the step of the lowest held-out loss so far; 0: no validation yet */
    double best;        /* that loss */
    int64_t since_best; /* validations since that one */
    int warned;         /* the warning was given (once a run) */
} mb_cli_val_hist;

typedef struct {
    const char *prog, *out;
    int64_t keep;         /* sets kept, >= 1 */
    int select_last;      /* OUT is the newest set's model, not the best */
    mb_cli_val_hist hist; /* the loop's, saved with each set, read back on --resume */
    /* this run's sets on disk, ascending: the one resumed from and those
     * before it, then the ones written */
    int64_t *sets;
    int n_sets, cap_sets;
    int wrote; /* a set was written by this process: other runs' sets are gone */
} mb_cli_ckpt;

void mb_cli_ckpt_init(mb_cli_ckpt *c, const char *prog, const mb_cli_train *t);
void mb_cli_ckpt_free(mb_cli_ckpt *c);

/* "OUT.step-N" followed by suffix ("", ".optim", ".json"); malloc'd. */
char *mb_cli_ckpt_path(const char *out, int64_t step, const char *suffix);
/* Where a model's sidecar (suffix ".audio", ".classes") is read from:
 * MODEL+suffix, or for a checkpoint's model OUT.step-N that has none, the
 * run's OUT+suffix when that exists (malloc'd; NULL when out of memory). */
char *mb_cli_sidecar_path(const char *model, const char *suffix);
/* The step of the newest set of this run (resumed from or written), 0: none. */
int64_t mb_cli_ckpt_newest(const mb_cli_ckpt *c);

/* A file of a run at OUT, for a new run that must not write over one
 * without --force: OUT itself or a set's file (its name into what). */
int mb_cli_ckpt_exists(const char *out, char *what, size_t cap);

/* Removes the temporary files a killed writer left beside OUT (OUT's, the
 * sets', and those of OUT followed by each of the side suffixes, e.g.
 * ".audio"; NULL-terminated list, may be NULL), for a run that owns OUT
 * (--resume, --force); says how many on stderr. The number removed. */
int mb_cli_ckpt_sweep(const mb_cli_ckpt *c, const char *const *side);

/* --resume: the newest complete set, loaded through load (the tool's model
 * loader, which prints its error line and returns NULL) and mb_cli_optim;
 * newer sets that are not complete are skipped, each with a warning saying
 * why, then "resuming from the older checkpoint ...". Without any set, OUT
 * and OUT.optim (an earlier version's layout). 0 with *m, *o and c->hist
 * set; -1 after one error line (the newest set's failure) when nothing
 * could be resumed. */
typedef mb_model *(*mb_cli_ckpt_loader)(void *ud, mb_ctx *ctx, const char *path);
int mb_cli_ckpt_resume(mb_cli_ckpt *c, mb_ctx *ctx, const mb_cli_train *t, mb_cli_ckpt_loader load, void *ud,
                       mb_model **m, mb_optim **o);

/* Rank 0: the set at the optimizer's step (model, optimizer, state), then
 * OUT where it holds the newest model, then the sets beyond the newest K
 * removed (and, the first time, any set of another run or of an abandoned
 * future, and an earlier version's OUT.optim). 0, or 1 after one error line:
 * a model with non-finite weights is reported as the run's divergence; a
 * failed write leaves every earlier set as it was. */
int mb_cli_ckpt_save(mb_cli_ckpt *c, const mb_model *m, const mb_optim *o);
/* Rank 0, after a validation with the lowest held-out loss so far: OUT
 * (--select best). 0, or 1 after the error line. */
int mb_cli_ckpt_save_best(mb_cli_ckpt *c, const mb_model *m);

/* "PROG: error: step S: the training diverged (what); stopped: ..." naming
 * the newest set kept (c may be NULL: a tool without sets). */
void mb_cli_ckpt_diverged(const mb_cli_ckpt *c, const char *prog, int64_t step, const char *what);

#endif
