/* What the shared flags (mb_cli_opts.h) make: the context, a new model and
 * the optimizer of a training run. Each prints its error line and returns
 * NULL on failure. */
#ifndef MB_CLI_MODEL_H
#define MB_CLI_MODEL_H

#include "mamba.h"
#include "mb_cli_opts.h"

/* Context for --device / --threads / --tf32. Under mpirun plain "cuda" is
 * the GPU of the rank's number within its node. */
mb_ctx *mb_cli_ctx(const char *prog, const mb_cli_train *t);
/* A new model of cfg seeded by seed; a config the device cannot run is
 * refused ("model: ...") before anything is allocated. */
mb_model *mb_cli_model_create(const char *prog, mb_ctx *ctx, const mb_config *cfg, int64_t seed);
/* The same for the shared flags' config (t->cfg, t->seed). */
mb_model *mb_cli_model_new(const char *prog, mb_ctx *ctx, const mb_cli_train *t);
/* AdamW with the shared flags' settings for a run of t->steps steps, its
 * state read from optim_path when t->resume. */
mb_optim *mb_cli_optim(const char *prog, mb_model *m, const mb_cli_train *t, const char *optim_path);

/* Whether a generation's numbers stayed finite: the draws never see a nan
 * (the sampler takes the first class of a row of nan), so one more step
 * from tok (the B rows' next inputs) advances st and its logits are
 * checked; the recurrent state carries any nan or inf of an earlier step
 * into them. 0, or -1 after "PROG: error: MODEL: the logits are not finite
 * ...; nothing written". */
int mb_cli_check_finite_step(const char *prog, mb_model *m, mb_state *st, const int32_t *tok, int B,
                             const char *model);

#endif
