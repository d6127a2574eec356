/* The tools' shared plumbing (apps/common, mb_cli.h): the training loop with
 * a tool's own progress fields, its print cadence, validations and
 * checkpoints, an early stop, a failed step's error line and Ctrl-C; the
 * output files over mb_outfile and their error lines; and mamba-selcopy,
 * the smallest tool on the loop, end to end.
 *
 * The loop runs a tiny LM (d_model 8, one layer) on a fixed batch; stderr is
 * captured into a file around each call. */
/* dup, dup2, open: POSIX (the project compiles as strict C11) */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mb_cli.h"
#include "mb_cli_classify.h"
#include "testutil.h"

#define PROG "test-cli"
#define ROWS 2
#define COLS 8

static mb_ctx *g_ctx;
static char g_err[1 << 16];
#ifdef MB_SELCOPY_BIN
static char g_out[1 << 16]; /* the selective-copy tool's stdout */
#endif

/* ---- stderr into g_err --------------------------------------------------- */

static int g_saved = -1;
static char g_cap_path[256];

static void capture_begin(void)
{
    mb_test_tmp_path(g_cap_path, sizeof g_cap_path, "cli_stderr.txt");
    fflush(stderr);
    g_saved = dup(STDERR_FILENO);
    const int fd = open(g_cap_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(g_saved >= 0 && fd >= 0);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static void capture_end(void)
{
    fflush(stderr);
    dup2(g_saved, STDERR_FILENO);
    close(g_saved);
    size_t n = 0;
    char *s = mb_test_read_file(g_cap_path, &n);
    assert_non_null(s);
    n = n < sizeof g_err - 1 ? n : sizeof g_err - 1;
    memcpy(g_err, s, n);
    g_err[n] = '\0';
    free(s);
    remove(g_cap_path);
}

/* ---- a run for the loop to call back into -------------------------------- */

typedef struct {
    mb_model *m;
    int32_t tok[ROWS * COLS], tgt[ROWS * COLS];
    int64_t fail_at;   /* a step whose forward gets a bad token (0: none) */
    int64_t interrupt_at; /* a step that raises SIGINT (0: none) */
    int64_t poison_at; /* a step whose gradient gets a NaN (0: none) */
    const double *val_seq; /* the validations' figures (NULL: 0.25, 0.5, ...) */
    int steps, vals, saves, bests;
    int64_t best_steps[16]; /* the steps save_best was called at */
    mb_cli_ckpt *ck;   /* checkpoint sets to write at save (NULL: counted only) */
    mb_optim *opt;
} loop_case;

static int case_step(void *ud, int64_t step, mb_cli_step *out)
{
    loop_case *c = ud;
    c->steps++;
    if (step == c->interrupt_at) raise(SIGINT);
    int32_t tok[ROWS * COLS];
    memcpy(tok, c->tok, sizeof tok);
    if (step == c->fail_at) tok[3] = 1000; /* outside the vocabulary: the library refuses it */
    out->L = COLS, out->B = ROWS, out->items = ROWS * COLS;
    const int rc = mb_model_forward_backward(c->m, tok, c->tgt, ROWS, COLS, &out->loss) ? -1 : 0;
    if (step == c->poison_at) mb_param_grad(&c->m->params, 0)[1] = NAN; /* a diverging step */
    return rc;
}

static int case_validate(void *ud, double *val)
{
    loop_case *c = ud;
    *val = c->val_seq ? c->val_seq[c->vals] : 0.25 * (c->vals + 1);
    c->vals++;
    return mb_cli_dist_agree(0);
}

static int case_save(void *ud)
{
    loop_case *c = ud;
    c->saves++;
    return c->ck ? mb_cli_ckpt_save(c->ck, c->m, c->opt) : 0;
}

static int case_save_best(void *ud)
{
    loop_case *c = ud;
    c->best_steps[c->bests++ % 16] = mb_optim_step_count(c->opt);
    return 0;
}

static void case_fields_train(void *ud, const mb_loss_stats *acc, FILE *f, int json)
{
    (void)ud;
    if (json) fprintf(f, ", \"my_count\": %lld, \"my_hits\": %lld", (long long)acc->count, (long long)acc->correct);
    else fprintf(f, "  count %lld", (long long)acc->count);
}

static void case_fields_val(void *ud, double val, FILE *f, int json)
{
    (void)ud;
    if (json) fprintf(f, ", \"my_val\": %.2f", val);
    else fprintf(f, "  my val %.2f", val);
}

static void case_init(loop_case *c)
{
    memset(c, 0, sizeof *c);
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 8, cfg.n_layer = 1, cfg.vocab_size = 8, cfg.d_state = 4;
    c->m = mb_model_create(g_ctx, &cfg, 7);
    assert_non_null(c->m);
    for (int i = 0; i < ROWS * COLS; i++) {
        c->tok[i] = (i * 5 + 1) % 8;
        c->tgt[i] = i % 4 == 3 ? MB_IGNORE_INDEX : (i * 3 + 2) % 8; /* some targets ignored */
    }
}

static mb_optim *case_optim(loop_case *c, int64_t steps)
{
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.total_steps = steps;
    mb_optim *o = mb_optim_create(c->m, &oc);
    assert_non_null(o);
    return o;
}

static char *read_text(const char *path)
{
    size_t n;
    char *s = mb_test_read_file(path, &n);
    assert_non_null(s);
    char *t = realloc(s, n + 1);
    assert_non_null(t);
    t[n] = '\0';
    return t;
}

/* ---- the loop ------------------------------------------------------------- */

/* print_every: lines at its multiples and the last step only; a validation
 * at every val_every-th step and the last, in the line and the log through
 * the tool's fields; checkpoints every save_every steps before the last,
 * and mb_cli_train_finish's. */
static void test_loop_fields(void **state)
{
    (void)state;
    loop_case c;
    case_init(&c);
    mb_optim *opt = case_optim(&c, 7);
    char logp[256];
    mb_test_tmp_path(logp, sizeof logp, "cli_loop.jsonl");
    FILE *log = fopen(logp, "w");
    assert_non_null(log);
    mb_cli_train_run r = {.prog = PROG, .opt = opt, .log = log, .steps = 7, .last = 7, .val_every = 3,
                          .save_every = 2, .print_every = 3, .rate_unit = "things/s", .key_rate = "things_per_s",
                          .rate_digits = 2, .ud = &c, .train_step = case_step, .validate = case_validate,
                          .save = case_save, .fields_train = case_fields_train, .fields_val = case_fields_val};
    capture_begin();
    int rc = mb_cli_train_loop(&r);
    assert_int_equal(c.saves, 3); /* steps 2, 4, 6 */
    rc = mb_cli_train_finish(&r, rc, "x.st");
    capture_end();
    fclose(log);
    assert_int_equal(rc, 0);
    assert_int_equal(r.step, 7);
    assert_int_equal(c.steps, 7);
    assert_int_equal(c.vals, 3); /* steps 3, 6, 7 */
    assert_int_equal(c.saves, 4);
    assert_int_equal(mb_optim_step_count(opt), 7);
    /* three lines, the tool's fields in them, no closing line of an early stop */
    assert_int_equal(mb_test_count(g_err, "\n"), 3);
    assert_non_null(strstr(g_err, "step 3/7  count 36  my val 0.25  lr "));
    assert_non_null(strstr(g_err, "step 6/7  count 36  my val 0.50  lr "));
    assert_non_null(strstr(g_err, "step 7/7  count 12  my val 0.75  lr "));
    assert_non_null(strstr(g_err, " things/s  ETA "));
    assert_null(strstr(g_err, "stopped"));
    char *text = read_text(logp);
    double v[8];
    assert_int_equal(mb_test_json_values(text, "step", v, 8), 3);
    assert_true(v[0] == 3 && v[1] == 6 && v[2] == 7);
    assert_int_equal(mb_test_json_values(text, "my_count", v, 8), 3);
    assert_true(v[0] == 36 && v[1] == 36 && v[2] == 12); /* 12 counted targets a step, summed between lines */
    assert_int_equal(mb_test_json_values(text, "my_hits", v, 8), 3);
    assert_int_equal(mb_test_json_values(text, "my_val", v, 8), 3);
    assert_true(v[0] == 0.25 && v[2] == 0.75);
    assert_int_equal(mb_test_json_values(text, "grad_norm", v, 8), 3);
    assert_int_equal(mb_test_json_values(text, "things_per_s", v, 8), 3);
    assert_true(v[0] > 0);
    assert_null(strstr(text, "seq_len"));
    /* the log's order: step, the tool's training fields, lr, grad norm, rate, validation */
    assert_true(strstr(text, "\"my_hits\"") < strstr(text, "\"lr\"") &&
                strstr(text, "\"things_per_s\"") < strstr(text, "\"my_val\""));
    free(text);
    remove(logp);
    mb_optim_free(opt);
    mb_model_free(c.m);
}

/* The default fields (bits per counted target) with the step's shape; every
 * 5 s means the first step and the validations here; a run stopped at
 * `last` is saved and says so. */
static void test_loop_default_and_stop(void **state)
{
    (void)state;
    loop_case c;
    case_init(&c);
    mb_optim *opt = case_optim(&c, 10);
    char logp[256];
    mb_test_tmp_path(logp, sizeof logp, "cli_stop.jsonl");
    FILE *log = fopen(logp, "w");
    assert_non_null(log);
    mb_cli_train_run r = {.prog = PROG, .opt = opt, .log = log, .steps = 10, .last = 4, .val_every = 2,
                          .show_shape = 1, .unit = "bits/tok", .key_train = "train_b", .key_val = "val_b",
                          .rate_unit = "tok/s", .key_rate = "tokens_per_s", .ud = &c, .train_step = case_step,
                          .validate = case_validate, .save = case_save};
    capture_begin();
    int rc = mb_cli_train_loop(&r);
    rc = mb_cli_train_finish(&r, rc, "x.st");
    capture_end();
    fclose(log);
    assert_int_equal(rc, 0);
    assert_int_equal(r.step, 4);
    assert_int_equal(c.vals, 2);
    assert_int_equal(c.saves, 1); /* no --save-every: finish's only */
    assert_non_null(strstr(g_err, "step 1/10  L 8  train "));
    assert_non_null(strstr(g_err, " bits/tok  lr "));
    assert_non_null(strstr(g_err, "step 2/10  L 8  train "));
    assert_non_null(strstr(g_err, " bits/tok  val 0.5000  lr "));
    assert_null(strstr(g_err, "step 3/10"));
    assert_non_null(strstr(g_err, "step 4/10"));
    assert_non_null(strstr(g_err, PROG ": stopped at step 4; saved x.st (--resume continues)\n"));
    char *text = read_text(logp);
    double v[8];
    assert_int_equal(mb_test_json_values(text, "seq_len", v, 8), 3);
    assert_int_equal(mb_test_json_values(text, "batch", v, 8), 3);
    assert_true(v[0] == ROWS);
    assert_int_equal(mb_test_json_values(text, "val_b", v, 8), 2);
    assert_int_equal(mb_test_json_values(text, "train_b", v, 8), 3);
    /* the first step's bits: its mean cross-entropy over ln 2, about the
     * uniform 3 bits of an untrained model of 8 (padded) classes */
    assert_true(v[0] > 2.5 && v[0] < 3.5);
    free(text);
    remove(logp);
    mb_optim_free(opt);
    mb_model_free(c.m);
}

/* A step whose forward fails: one error line naming the step, exit 1,
 * nothing saved. */
static void test_loop_step_error(void **state)
{
    (void)state;
    loop_case c;
    case_init(&c);
    c.fail_at = 2;
    mb_optim *opt = case_optim(&c, 5);
    mb_cli_train_run r = {.prog = PROG, .opt = opt, .steps = 5, .last = 5, .unit = "b", .key_train = "t",
                          .key_val = "v", .rate_unit = "x/s", .key_rate = "x", .ud = &c, .train_step = case_step,
                          .save = case_save};
    capture_begin();
    int rc = mb_cli_train_loop(&r);
    rc = mb_cli_train_finish(&r, rc, "x.st");
    capture_end();
    assert_int_equal(rc, 1);
    assert_int_equal(r.step, 2);
    assert_int_equal(c.saves, 0);
    assert_int_equal(mb_optim_step_count(opt), 1);
    /* step 1's progress line, then the error */
    const char *e = strstr(g_err, PROG ": error: ");
    assert_non_null(e);
    mb_test_error_line(e, PROG, "step 2: ");
    mb_optim_free(opt);
    mb_model_free(c.m);
}

/* A log that cannot be written (a full disk): the failed line is one
 * error line naming the log, the run stops at the next step (every rank
 * there), saves what it has and exits 1 (issue 13, finding 6). */
static void test_loop_log_full(void **state)
{
    (void)state;
    loop_case c;
    case_init(&c);
    mb_optim *opt = case_optim(&c, 10);
    int failed = 0;
    FILE *log = mb_cli_log_open(PROG, "/dev/full", &failed);
    assert_non_null(log);
    mb_cli_train_run r = {.prog = PROG, .opt = opt, .log = log, .steps = 10, .last = 10, .print_every = 1,
                          .unit = "b", .key_train = "t", .key_val = "v", .rate_unit = "x/s", .key_rate = "x",
                          .ud = &c, .train_step = case_step, .save = case_save};
    capture_begin();
    int rc = mb_cli_train_loop(&r);
    rc = mb_cli_train_finish(&r, rc, "x.st");
    capture_end();
    printf("# %s", g_err);
    assert_int_equal(rc, 1);
    assert_true(r.step >= 1 && r.step <= 2);
    assert_int_equal(c.saves, 1);
    assert_int_equal(mb_test_count(g_err, PROG ": error: "), 1);
    assert_non_null(strstr(g_err, PROG ": error: /dev/full: write error (No space left on device)\n"));
    assert_non_null(strstr(g_err, "; saved x.st"));
    /* the log's own check, as the tools make it after their last line */
    assert_int_equal(mb_cli_log_close(PROG, log), -1);
    mb_optim_free(opt);
    mb_model_free(c.m);
}

/* Ctrl-C during a step: the loop ends after it, saves, says so, 130. (Last:
 * the flag stays set for the rest of the process.) */
static void test_loop_interrupt(void **state)
{
    (void)state;
    loop_case c;
    case_init(&c);
    c.interrupt_at = 3;
    mb_optim *opt = case_optim(&c, 9);
    mb_cli_train_run r = {.prog = PROG, .opt = opt, .steps = 9, .last = 9, .unit = "b", .key_train = "t",
                          .key_val = "v", .rate_unit = "x/s", .key_rate = "x", .ud = &c, .train_step = case_step,
                          .save = case_save};
    capture_begin();
    int rc = mb_cli_train_loop(&r);
    rc = mb_cli_train_finish(&r, rc, "x.st");
    capture_end();
    assert_int_equal(rc, 130);
    assert_int_equal(r.step, 3);
    assert_true(r.stop);
    assert_int_equal(c.saves, 1);
    assert_non_null(strstr(g_err, PROG ": interrupted at step 3; saved x.st (--resume continues)\n"));
    mb_optim_free(opt);
    mb_model_free(c.m);
}

/* The held-out loss: a lower one is kept (save_best) each time; three
 * validations without one give one warning; --patience 4 stops the run
 * after the fourth, saved, with the line; the history is the run's. */
static void test_loop_best_patience(void **state)
{
    (void)state;
    loop_case c;
    case_init(&c);
    /* a validation every 2 steps: steps 2..20 */
    static const double vals[] = {3.0, 2.0, 2.5, 1.5, 1.6, 1.7, 1.8, 1.9, 1.0, 0.5};
    c.val_seq = vals;
    mb_optim *opt = case_optim(&c, 20);
    c.opt = opt;
    mb_cli_train_run r = {.prog = PROG, .opt = opt, .steps = 20, .last = 20, .val_every = 2, .print_every = 100,
                          .unit = "b", .key_train = "t", .key_val = "v", .rate_unit = "x/s", .key_rate = "x", .ud = &c,
                          .train_step = case_step, .validate = case_validate, .save = case_save,
                          .save_best = case_save_best, .best_out = "x.st", .patience = 4};
    capture_begin();
    int rc = mb_cli_train_loop(&r);
    rc = mb_cli_train_finish(&r, rc, "x.st");
    capture_end();
    printf("%s", g_err);
    assert_int_equal(rc, 0);
    assert_true(r.early);
    assert_int_equal(r.step, 16); /* the best at 8, then 10, 12, 14, 16 */
    assert_int_equal(c.vals, 8);
    assert_int_equal(c.bests, 3);
    assert_true(c.best_steps[0] == 2 && c.best_steps[1] == 4 && c.best_steps[2] == 8);
    assert_int_equal(c.saves, 1); /* finish's, at the stop */
    assert_true(r.hist.best_step == 8 && r.hist.best == 1.5 && r.hist.since_best == 4 && r.hist.warned);
    assert_int_equal(mb_test_count(g_err, "has not improved"), 2); /* the warning, the stop */
    assert_non_null(strstr(g_err, PROG ": warning: step 14: the held-out loss, 1.8000, has not improved for 3 "
                                  "validations (best 1.5000 at step 8): the model may be overfitting; x.st holds the "
                                  "best\n"));
    assert_non_null(strstr(g_err, PROG ": stopped early at step 16: the held-out loss has not improved for 4 "
                                  "validations (--patience 4); its best, 1.5000, was at step 8, kept in x.st\n"));
    /* resumed with that history and patience: nothing to do */
    loop_case d;
    case_init(&d);
    mb_optim *opt2 = case_optim(&d, 20);
    d.opt = opt2;
    mb_cli_train_run q = r;
    q.opt = opt2, q.ud = &d, q.step = 16;
    capture_begin();
    rc = mb_cli_train_finish(&q, mb_cli_train_loop(&q), "x.st");
    capture_end();
    assert_int_equal(rc, 0);
    assert_true(q.early);
    assert_int_equal(d.steps + d.saves + d.vals, 0);
    assert_non_null(strstr(g_err, PROG ": stopped early at step 16: "));
    /* with a larger patience it goes on, the best kept until a lower one */
    case_init(&d);
    d.opt = opt2;
    d.val_seq = vals + 8;
    q = r;
    q.opt = opt2, q.ud = &d, q.step = 16, q.patience = 0;
    capture_begin();
    rc = mb_cli_train_finish(&q, mb_cli_train_loop(&q), "x.st");
    capture_end();
    assert_int_equal(rc, 0);
    assert_false(q.early);
    assert_int_equal(q.step, 20);
    assert_int_equal(d.bests, 2); /* 1.0 at 18, 0.5 at 20 */
    assert_true(q.hist.best_step == 20 && q.hist.best == 0.5);
    assert_null(strstr(g_err, "has not improved")); /* warned once a run */
    mb_optim_free(opt2);
    mb_model_free(d.m);
    mb_optim_free(opt);
    mb_model_free(c.m);
}

/* A step whose gradient is not finite: the library skips its update; the
 * loop stops with one line naming the last checkpoint set kept, exit 1,
 * nothing saved after it. A model with non-finite weights is never saved
 * either: the same line, the sets before it as they were. */
static void test_loop_diverged(void **state)
{
    (void)state;
    char dir[64], out[128], files[1024];
    mb_test_mkdtemp(dir, sizeof dir, "cli_div");
    snprintf(out, sizeof out, "%s/x.st", dir);
    mb_cli_train t;
    mb_cli_train_default(&t);
    t.out = out;
    mb_cli_ckpt ck;
    mb_cli_ckpt_init(&ck, PROG, &t);
    loop_case c;
    case_init(&c);
    c.poison_at = 5;
    c.ck = &ck;
    mb_optim *opt = case_optim(&c, 9);
    c.opt = opt;
    mb_cli_train_run r = {.prog = PROG, .opt = opt, .steps = 9, .last = 9, .save_every = 2, .unit = "b",
                          .key_train = "t", .key_val = "v", .rate_unit = "x/s", .key_rate = "x", .ud = &c,
                          .train_step = case_step, .save = case_save, .ck = &ck};
    capture_begin();
    int rc = mb_cli_train_loop(&r);
    rc = mb_cli_train_finish(&r, rc, out);
    capture_end();
    assert_int_equal(rc, 1);
    assert_int_equal(mb_optim_step_count(opt), 4);
    assert_int_equal(c.saves, 2); /* steps 2 and 4 */
    const char *e = strstr(g_err, PROG ": error: ");
    assert_non_null(e);
    mb_test_error_line(e, PROG, "step 5: the training diverged (its gradient norm is not finite): stopped, nothing "
                                "saved; the last checkpoint, ");
    assert_non_null(strstr(e, "x.st.step-4, is kept and --resume continues from it"));
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "x.st x.st.step-2 x.st.step-2.json x.st.step-2.optim x.st.step-4 x.st.step-4.json "
                               "x.st.step-4.optim");
    /* weights gone non-finite: refused, one line, the files as they were */
    mb_param_data(&c.m->params, 1)[0] = INFINITY;
    mb_param_data(&c.m->params, 2)[3] = NAN;
    capture_begin();
    rc = mb_cli_ckpt_save(&ck, c.m, opt);
    capture_end();
    assert_int_equal(rc, 1);
    mb_test_error_line(g_err, PROG, "step 4: the training diverged (2 non-finite weights): stopped, nothing saved; "
                                    "the last checkpoint, ");
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "x.st x.st.step-2 x.st.step-2.json x.st.step-2.optim x.st.step-4 x.st.step-4.json "
                               "x.st.step-4.optim");
    mb_cli_ckpt_free(&ck);
    mb_optim_free(opt);
    mb_model_free(c.m);
    mb_test_rmtree(dir);
}

/* ---- output files ---------------------------------------------------------- */

/* The binomial tail against exact sums (Python's fractions over
 * math.comb), and the "no better than chance" note on both sides of its
 * 0.05 line: 16 and 22 of 80 at chance 0.2 are chance (tails 0.54 and
 * 0.066), 24 of 80 is not (0.022). */
static void test_binom_tail(void **state)
{
    (void)state;
    assert_true(fabs(mb_cli_binom_tail(10, 8, 0.5) - 0.0546875) < 1e-15);
    assert_true(fabs(mb_cli_binom_tail(5, 5, 0.2) - 0.00032) < 1e-15);
    assert_true(fabs(mb_cli_binom_tail(80, 16, 0.2) - 0.5445251412162067) < 1e-12);
    assert_true(fabs(mb_cli_binom_tail(80, 24, 0.2) - 0.02166758220501762) < 1e-13);
    assert_true(fabs(mb_cli_binom_tail(2000, 450, 0.2) - 0.0031465098592391343) < 1e-13);
    assert_true(mb_cli_binom_tail(10, 0, 0.3) == 1.0);
    assert_true(mb_cli_binom_tail(10, 11, 0.3) == 0.0);
    assert_true(mb_cli_binom_tail(10, 3, 0.0) == 0.0);
    assert_true(mb_cli_binom_tail(10, 3, 1.0) == 1.0);

    /* 5 classes of 16 windows each, all called class 4 but for `extra`
     * more right answers spread over the other rows */
    int64_t conf[25];
    mb_cli_eval ev = {.C = 5, .conf = conf};
    for (int extra = 0; extra <= 8; extra += extra ? 2 : 6) {
        memset(conf, 0, sizeof conf);
        for (int c = 0; c < 5; c++) conf[c * 5 + 4] = 16;
        for (int i = 0; i < extra; i++) conf[(i % 4) * 5 + 4]--, conf[(i % 4) * 5 + i % 4]++;
        ev.n = 80;
        ev.correct = 16 + extra;
        char buf[512] = {0};
        FILE *f = fmemopen(buf, sizeof buf - 1, "w");
        assert_non_null(f);
        const int wrote = mb_cli_eval_chance_note(f, "classify", &ev);
        fclose(f);
        if (extra == 0) {
            assert_int_equal(wrote, 1);
            assert_non_null(strstr(buf, "classify: no better than chance: a labeller right 20.0% of the time gets 16 of 80"));
            assert_non_null(strstr(buf, "probability 0.54"));
        } else if (extra == 6) {
            assert_int_equal(wrote, 1);
            assert_non_null(strstr(buf, "gets 22 of 80 or more with probability 0.07"));
        } else {
            assert_int_equal(wrote, 0);
            assert_int_equal(buf[0], 0);
        }
    }
    mb_cli_eval none = {.C = 5, .conf = conf};
    assert_int_equal(mb_cli_eval_chance_note(stdout, "classify", &none), 0);
}

static void test_outfile(void **state)
{
    (void)state;
    char dir[256], path[320], bad[320];
    mb_test_mkdtemp(dir, sizeof dir, "cli_out");
    snprintf(path, sizeof path, "%s/out.txt", dir);
    snprintf(bad, sizeof bad, "%s/no/such/dir/out.txt", dir);
    /* a path beside a checkpoint */
    char *p = mb_cli_optim_path(path), *q = mb_cli_path_suffix(path, ".classes");
    assert_true(strlen(p) == strlen(path) + 6 && strcmp(p + strlen(path), ".optim") == 0);
    assert_string_equal(q + strlen(path), ".classes");
    free(p), free(q);
    /* an unwritable directory: one line, nothing left behind */
    capture_begin();
    mb_outfile *o = mb_cli_outfile_open(PROG, bad);
    const int w = mb_cli_check_writable(PROG, bad);
    capture_end();
    assert_null(o);
    assert_int_equal(w, -1);
    assert_int_equal(mb_test_count(g_err, "\n"), 2);
    char *second = strchr(g_err, '\n') + 1;
    second[-1] = '\0';
    mb_test_error_line(second, PROG, "no/such/dir/out.txt: cannot create a file in its directory (");
    /* written whole, or the old file stays */
    FILE *f = fopen(path, "w");
    fputs("old\n", f);
    fclose(f);
    assert_int_equal(mb_cli_check_writable(PROG, path), 0);
    assert_non_null(o = mb_cli_outfile_open(PROG, path));
    fputs("new\n", mb_outfile_fp(o));
    char listing[512];
    mb_test_listing(dir, listing, sizeof listing);
    assert_non_null(strstr(listing, "out.txt.tmp")); /* the temporary beside it */
    char *text = read_text(path);
    assert_string_equal(text, "old\n");
    free(text);
    assert_int_equal(mb_cli_outfile_commit(PROG, o), 0);
    text = read_text(path);
    assert_string_equal(text, "new\n");
    free(text);
    mb_test_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "out.txt");
    /* discarded: the old one stays, the temporary goes */
    assert_non_null(o = mb_cli_outfile_open(PROG, path));
    fputs("half", mb_outfile_fp(o));
    mb_outfile_discard(o);
    text = read_text(path);
    assert_string_equal(text, "new\n");
    free(text);
    mb_test_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "out.txt");
    /* a folder named as the output: refused before anything is written
     * (the rename would fail only at the end of the work) */
    char sub[320];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    capture_begin();
    o = mb_cli_outfile_open(PROG, sub);
    const int ws = mb_cli_check_writable(PROG, sub);
    capture_end();
    assert_null(o);
    assert_int_equal(ws, -1);
    assert_int_equal(mb_test_count(g_err, PROG ": error: "), 2);
    assert_int_equal(mb_test_count(g_err, "sub: is a folder"), 2);
    mb_test_listing(dir, listing, sizeof listing);
    assert_string_equal(listing, "out.txt sub");
    mb_test_rmtree(dir);
}

/* ---- mamba-selcopy ----------------------------------------------------------- */

#ifdef MB_SELCOPY_BIN
static int selcopy(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int selcopy(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(MB_SELCOPY_BIN, g_out, sizeof g_out, g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return rc;
}
#endif

/* Through the loop: a line every 50 steps and at the last, the log's keys,
 * the accuracy line; bad flags and an unwritable log are one error line. */
static void test_selcopy_tool(void **state)
{
    (void)state;
#ifndef MB_SELCOPY_BIN
    fprintf(stderr, "# mamba-selcopy is not built (MAMBA_APPS=OFF): skipped\n");
    skip();
#else
    char logp[256], model[256];
    mb_test_tmp_path(logp, sizeof logp, "selcopy.jsonl");
    mb_test_tmp_path(model, sizeof model, "selcopy.safetensors");
    remove(logp), remove(model);
    const char *small = "--span 8 --memorize 2 --symbols 4 --d-model 16 --n-layer 1 --batch 8 --eval 2 --threads 1";
    assert_int_equal(selcopy("%s --steps 60 --log %s --out %s", small, logp, model), 0);
    assert_non_null(strstr(g_out, "selective copying: accuracy "));
    assert_non_null(strstr(g_out, " on 16 fresh sequences (chance 25.0%)"));
    assert_int_equal(mb_test_count(g_err, "step "), 2);
    assert_non_null(strstr(g_err, "step 50/60  loss "));
    assert_non_null(strstr(g_err, "step 60/60  loss "));
    assert_non_null(strstr(g_err, " tok/s  ETA "));
    assert_true(access(model, F_OK) == 0);
    char *text = read_text(logp);
    double v[4];
    assert_int_equal(mb_test_json_values(text, "step", v, 4), 2);
    assert_true(v[0] == 50 && v[1] == 60);
    assert_int_equal(mb_test_json_values(text, "loss", v, 4), 2);
    assert_int_equal(mb_test_json_values(text, "accuracy", v, 4), 2);
    assert_true(v[0] >= 0 && v[0] <= 1);
    assert_int_equal(mb_test_json_values(text, "tokens_per_s", v, 4), 2);
    assert_true(v[0] > 0 && v[1] > 0);
    free(text);
    remove(logp), remove(model);

    assert_int_equal(selcopy("--steps 0"), 2); /* usage: the error line, then where to look */
    assert_true(strncmp(g_err, "mamba-selcopy: error: --steps expects an integer", 48) == 0);
    assert_non_null(strstr(g_err, "\nTry 'mamba-selcopy --help'.\n"));
    assert_int_equal(mb_test_count(g_err, "\n"), 2);
    assert_int_equal(selcopy("%s --steps 5 --log /nonexistent/dir/x.jsonl", small), 1);
    mb_test_error_line(g_err, "mamba-selcopy", "/nonexistent/dir/x.jsonl: ");
    assert_int_equal(selcopy("%s --steps 5 --device nosuch", small), 1);
    mb_test_error_line(g_err, "mamba-selcopy", "--device nosuch");
    /* issue 13: getopt's own lines off; --version; an --out that is a
     * folder refused before the work; a log on a full disk */
    assert_int_equal(selcopy("--frobnicate"), 2);
    assert_true(strncmp(g_err, "mamba-selcopy: error: unrecognized option '--frobnicate'\n", 56) == 0);
    assert_int_equal(mb_test_count(g_err, "\n"), 2);
    assert_int_equal(selcopy("--version"), 0);
    assert_true(strncmp(g_out, "mamba-selcopy (libmamba ", 24) == 0);
    char dir[256];
    mb_test_mkdtemp(dir, sizeof dir, "selcopy");
    assert_int_equal(selcopy("%s --steps 5 --out %s", small, dir), 1);
    mb_test_error_line(g_err, "mamba-selcopy", "is a folder");
    mb_test_rmtree(dir);
    assert_int_equal(selcopy("%s --steps 60 --log /dev/full", small), 1);
    assert_int_equal(mb_test_count(g_err, "mamba-selcopy: error: "), 1);
    assert_non_null(strstr(g_err, "/dev/full: write error"));
#endif
}

static int setup(void **state)
{
    (void)state;
    g_ctx = mb_ctx_create("cpu");
    if (!g_ctx) return -1;
    mb_ctx_set_threads(g_ctx, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mb_ctx_free(g_ctx);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_fields),    cmocka_unit_test(test_loop_default_and_stop),
        cmocka_unit_test(test_loop_step_error), cmocka_unit_test(test_loop_best_patience),
        cmocka_unit_test(test_loop_diverged),   cmocka_unit_test(test_outfile),
        cmocka_unit_test(test_binom_tail),
        cmocka_unit_test(test_selcopy_tool),    cmocka_unit_test(test_loop_log_full),
        cmocka_unit_test(test_loop_interrupt), /* last: see there */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
