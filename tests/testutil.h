/* Helpers shared by the cmocka suites. */
#ifndef MB_TESTUTIL_H
#define MB_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core.h"
#include "models/model.h"
#include "mamba.h"

/* MB_TEST_FILTER=PATTERN (cmocka's * and ? wildcards) runs only the tests
 * whose names match: a long suite under compute-sanitizer's racecheck, run
 * in parts that each fit a lent machine's call. Call before running (and
 * before any output: it makes stdout line-buffered). */
void mb_test_filter_env(void);

/* Fresh random inputs: seeded from MB_TEST_SEED when set, else from the
 * clock, and printed, so a failure can be replayed. */
uint64_t mb_test_seed(void);
void mb_test_fill(mb_rng *r, float *x, size_t n, float lo, float hi);
void mb_test_fill_normal(mb_rng *r, float *x, size_t n, float std);
/* ||a - b|| / ||b|| in double. */
double mb_test_rel_err(const float *a, const float *b, size_t n);
double mb_test_max_abs(const float *a, size_t n);
/* sum_i w[i] * x[i] in double: a scalar loss with random weights. */
double mb_test_dot(const float *x, const float *w, size_t n);

/* Finite-difference gradient check of a scalar loss f(ud) in double with
 * respect to x[0..n): central differences with step eps * max(1, |x_i|)
 * at up to max_checks indices (spread evenly; all when n is smaller).
 * Returns ||g_fd - g||/||g_fd|| over the checked entries and prints it
 * with `what`. */
typedef double (*mb_test_loss_fn)(void *ud);
double mb_test_grad_check(const char *what, mb_test_loss_fn f, void *ud, float *x,
                          const float *g, size_t n, size_t max_checks, double eps);

/* One tensor's gradient g against central differences of f, for a loss
 * computed in fp32 (its rounding makes each difference noisy; `floor` is
 * the gradient rms that is ~60 of that noise at step eps, e.g. 3e-4 for a
 * mean cross-entropy at 3e-3).
 * 1. Entry by entry at up to `checks` entries of x, each at steps eps and
 *    eps/2: how much the two disagree estimates the difference's own error
 *    (rounding of the loss, curvature), and only what the analytic gradient
 *    misses beyond three times that and floor / 16 counts (a wiring error is
 *    O(1), far above). Used when the gradient's rms, or the differences',
 *    reaches floor.
 * 2. Else as a whole: directional derivatives along the gradient and along
 *    a randomly reweighted copy, at a step that moves every entry at once
 *    (signal rms sqrt(n), noise down by the larger step), the same slack.
 *    Resolved when the signal is 60 noises up and the two steps agree;
 *    a zero gradient whose loss does not move at all is "exactly zero".
 * Returns the relative error, or -1 when not resolvable in fp32 (printed).
 * With tally, the outcome is counted there (mb_test_fd_tally_check judges
 * the unresolved ones); without, an unresolvable tensor fails the test. */
typedef enum {
    MB_TEST_FD_UNRESOLVED = 0,
    MB_TEST_FD_ENTRIES = 1,
    MB_TEST_FD_WHOLE = 2,
    MB_TEST_FD_ZERO = 3
} mb_test_fd_how;
typedef struct {
    int n, entries, whole, zero, unresolved;
    double worst;
    char worst_name[160];
    char names[4096]; /* the unresolved tensors, ", " between */
} mb_test_fd_tally;
double mb_test_fd_tensor(const char *what, mb_test_loss_fn f, void *ud, float *x, const float *g,
                         size_t n, size_t checks, double floor, double eps, mb_test_fd_tally *tally);
/* Prints the tally and asserts: every one of the n_params tensors was
 * offered, at most max_unresolved were unresolved, and each of those ends
 * with one of `covered` (NULL-terminated name suffixes: kinds whose
 * gradients test_golden checks against float64 for this architecture,
 * named by `golden` in the line). Returns the worst resolved error. The
 * `what` strings given to mb_test_fd_tensor must end with the tensor name. */
double mb_test_fd_tally_check(const mb_test_fd_tally *t, const char *what, int n_params,
                              const char *const *covered, const char *golden, int max_unresolved);

/* Every mixer's dt_proj.bias (table order) drawn in [-1, 0), so delta =
 * softplus(bias) is 0.3..0.7: there A_log's and dt's gradients are large
 * enough for an fp32 finite difference (the init's 1e-3..1e-1 leaves them
 * under float rounding). */
void mb_test_set_dt_bias(mb_model *m, mb_rng *r);
/* The parameter NAME of m (the test fails when there is none). */
const mb_param *mb_test_param(const mb_model *m, const char *name);
float *mb_test_param_data(const mb_model *m, const char *name);

/* A model and a batch of random tokens and targets (every 5th target
 * ignored) for the whole-model checks; mb_test_model_loss is the mean
 * cross-entropy of mb_model_forward on it (an mb_test_loss_fn). */
typedef struct {
    mb_model *m;
    int B, L;
    int32_t *tok, *tgt;
} mb_test_model_case;
void mb_test_make_tokens(mb_rng *r, mb_test_model_case *c, int vocab);
double mb_test_model_loss(void *ud);

/* mb_model_sample on m (B rows, n draws from random first tokens) against
 * a replay: ref (m itself, or a model with the same weights on another
 * device) steps through the drawn classes and mb_sample_pick draws from its
 * logits with the same random numbers. Also: the run cut into two calls
 * draws the same classes. Draws that differ from the replay must be within
 * rel_tol of a class boundary (moving u by that factor gives the drawn
 * class); how many there are is returned (0 means every draw agreed). */
int mb_test_sample_replay(mb_model *m, mb_model *ref, int B, int n, const mb_sampler *sp, double rel_tol);
/* A CUDA context whose block steps take one path (MB_CUDA_STEP=path, read
 * when a context is made; the variable is unset again), NULL on failure. */
mb_ctx *mb_test_cuda_step_ctx(const char *path);

/* Read a whole file into a malloc'd buffer (NULL if missing). */
void *mb_test_read_file(const char *path, size_t *len);
/* A temporary path under /tmp unique to this process. */
void mb_test_tmp_path(char *buf, size_t cap, const char *name);
/* Runs a shell command line, its stdout and stderr captured into out and
 * err (NUL-terminated, cut at cap; either may be NULL). Returns the exit
 * status, 128 + N when killed by signal N (a crash), -1 when it could not
 * run. For the tools' command-line tests. */
int mb_test_sh(const char *cmd, char *out, size_t outcap, char *err, size_t errcap);
/* Runs "BIN ARGS" (ARGS from fmt, in a subshell so that a redirection in
 * them wins over the capture) through mb_test_sh, and fails the test when
 * the tool was killed by a signal (a crash is never an acceptable answer).
 * Returns the exit status. */
int mb_test_toolv(const char *bin, char *out, size_t outcap, char *err, size_t errcap, const char *fmt,
                  va_list ap);
/* mb_test_toolv for a tool that may not be built (bin NULL: "false" runs,
 * so the case fails unless MB_TEST_NEED_TOOL skipped it first); a non-zero
 * exit shows its stderr in the test's output. */
int mb_test_tool(const char *bin, char *out, size_t outcap, char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Skips the case, saying why, when the tool bin was not built. */
#define MB_TEST_NEED_TOOL(bin, name)                                                               \
    do {                                                                                           \
        if (!(bin)) {                                                                              \
            fprintf(stderr, "# %s is not built (MAMBA_APPS=OFF): CLI cases skipped\n", name);      \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Starts the shell command line cmd (stdout and stderr into files), waits
 * until its stderr holds `ready` (a line the tool prints once its work has
 * begun), sends it signal sig, and waits for it to end (at most 120 s, then
 * SIGKILL and the test fails). cmd must end in the tool itself: it is run
 * as "exec CMD" so that the signal reaches the tool, not a shell. Returns
 * the exit status (128 + N when killed by signal N); out and err receive
 * what it wrote (either may be NULL). The test fails when `ready` never
 * came (the tool ended first). For the tools' answers to SIGINT/SIGTERM. */
int mb_test_signal_run(const char *cmd, const char *ready, int sig, char *out, size_t outcap, char *err,
                       size_t errcap);
/* sig | MB_TEST_SIG_TWICE: the signal sent twice at once, as `timeout`
 * delivers it (to the command, then to its process group) */
#define MB_TEST_SIG_TWICE 0x1000

/* ---- the tools' data-parallel runs (test_dna_dist, test_audio_dist) ---- */

/* How many times needle occurs in s (lines: "\n"). */
int mb_test_count(const char *s, const char *needle);
/* err is exactly one line, "PROG: error: ...", holding needle (a tool's
 * answer to bad input); the test fails otherwise, showing err. */
void mb_test_error_line(const char *err, const char *prog, const char *needle);
/* The values of "KEY": X over the lines of a JSON-lines log, in order;
 * returns how many (at most cap). */
int mb_test_json_values(const char *log, const char *key, double *v, int cap);
/* max |a_i - b_i| over KEY's values in two logs; each must hold `expect`
 * of them (at most 64). */
double mb_test_json_max_diff(const char *a, const char *b, const char *key, int expect);
/* A new empty folder /tmp/mbtest_NAME_XXXXXX; its path into buf. */
void mb_test_mkdtemp(char *buf, size_t cap, const char *name);
/* The names in dir (not those starting with a dot), sorted, joined by
 * single spaces ("" for an empty folder). */
void mb_test_listing(const char *dir, char *buf, size_t cap);
/* rm -rf dir. */
void mb_test_rmtree(const char *dir);
/* A failed run of a job: exit status want_rc, and in err exactly one line
 * with "PROG: error:" (mpirun adds its own notice about the exit code: that
 * is not the tool's), holding needle. */
void mb_test_one_error(int rc, int want_rc, const char *err, const char *prog, const char *needle);

#endif
