/* The training tools under mpiexec, 2 ranks on the CPU, through the tools
 * themselves (mamba-dna pretrain, mamba-audio train):
 * - the same flags (the same global --batch) give the losses, gradient
 *   norms and validation of one process, step by step (--log), with targets
 *   ignored unevenly over the rows (N bases; crops padded at the start of
 *   short clips), so the ranks' shares of the batch matter;
 * - rank 0 alone writes: one checkpoint and its side files, one log with
 *   one start and one end, one summary line, nothing else in the folder;
 * - a run stopped (--stop-after) and resumed on 2 ranks ends where the
 *   uninterrupted one-process run does (mamba-dna);
 * - the ranks agree on the best model and on an early stop (--patience):
 *   the step and the best are the one-process run's, rank 0 writes;
 * - a bad input is one error line and exit 1, also when only rank 0 sees
 *   it (an --out it cannot write); a --batch that does not split over the
 *   ranks is a usage error naming both numbers.
 * Skips (77) where the tools or MPI's mpiexec are not built or found. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#if defined(MB_DNA_BIN) && defined(MB_AUDIO_BIN) && defined(MB_MPIEXEC_2)
typedef struct {
    const char *one, *two; /* the tool, and the tool under mpiexec -n 2 */
    const char *prog;
    const char *flags, *data; /* options (global batch 4), then the inputs */
    int steps;
    const char *summary;      /* the closing line on stdout */
    const char *files;        /* what a run leaves beside --out two.st --log two.jsonl */
    const char *loss, *val;   /* the log's keys */
    const char *bad_data;     /* inputs that do not exist */
} tool;

static const tool k_dna = {
    MB_DNA_BIN, MB_MPIEXEC_2 " " MB_DNA_BIN, "mamba-dna",
    /* tiny.fa: 440 of its 2400 bases are N, which count as no target */
    "pretrain --d-model 32 --n-layer 2 --seq-len 128 --batch 4 --lr 5e-3 --threads 1 --steps 6 "
    "--val-every 1 --val-tokens 1536 --val-frac 0.1 --seed 3",
    MB_DATA_DIR "/genomics/tiny.fa", 6, "pretrain: 6 steps",
    "two.jsonl two.st two.st.step-6 two.st.step-6.json two.st.step-6.optim",
    "train_bpb", "val_bpb", MB_DATA_DIR "/genomics/no-such-file.fa"};

static const tool k_audio = {
    MB_AUDIO_BIN, MB_MPIEXEC_2 " " MB_AUDIO_BIN, "mamba-audio",
    /* at 1 kHz the clips are shorter than the 1024-sample crops: crops are
     * padded at their start (ignored targets) by different amounts */
    "train --rate 1000 --d-model 32 --n-layer 1 --seq-len 1024 --batch 4 --lr 4e-3 --threads 1 --steps 5 "
    "--val-every 1 --val-windows 6 --seed 5",
    "--data " MB_DATA_DIR "/audio/digits", 5, "train: 5 steps",
    "two.jsonl two.st two.st.audio two.st.step-5 two.st.step-5.json two.st.step-5.optim",
    "train_bits", "val_bits", "--data /nonexistent/no-such-dir"};

static char g_out[1 << 16], g_err[1 << 16];

static int run(const char *bin, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(const char *bin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(bin, g_out, sizeof g_out, g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return rc;
}

/* DIR/NAME.jsonl, read whole */
static char *read_log(const char *dir, const char *name)
{
    char p[128];
    snprintf(p, sizeof p, "%s/%s.jsonl", dir, name);
    char *log = mb_test_read_file(p, NULL);
    assert_non_null(log);
    return log;
}

static char *g_dna_log1; /* mamba-dna's one-process log, for the resume case */

static void test_two_ranks_equal_one(void **state)
{
    const tool *t = *state;
    char dir[64], files[1024];
    mb_test_mkdtemp(dir, sizeof dir, "dist1");
    assert_int_equal(run(t->one, "%s --out %s/one.st --log %s/one.jsonl %s", t->flags, dir, dir, t->data), 0);
    char *log1 = read_log(dir, "one");
    mb_test_rmtree(dir);

    mb_test_mkdtemp(dir, sizeof dir, "dist2");
    assert_int_equal(run(t->two, "%s --out %s/two.st --log %s/two.jsonl %s", t->flags, dir, dir, t->data), 0);
    /* rank 0 alone speaks and writes */
    char first[32];
    snprintf(first, sizeof first, "step 1/%d ", t->steps);
    assert_int_equal(mb_test_count(g_out, t->summary), 1);
    assert_int_equal(mb_test_count(g_err, first), 1);
    assert_int_equal(mb_test_count(g_err, "data parallel"), 1);
    mb_test_listing(dir, files, sizeof files);
    printf("# %s: files of the 2-rank run: %s\n", t->prog, files);
    assert_string_equal(files, t->files);
    char *log2 = read_log(dir, "two");
    assert_int_equal(mb_test_count(log2, "\"event\": \"start\""), 1);
    assert_int_equal(mb_test_count(log2, "\"event\": \"end\""), 1);
    /* step by step (the log has 6 decimals); validation at every step and
     * the end */
    const double dt = mb_test_json_max_diff(log2, log1, t->loss, t->steps);
    const double dn = mb_test_json_max_diff(log2, log1, "grad_norm", t->steps);
    const double dv = mb_test_json_max_diff(log2, log1, t->val, t->steps + 1);
    printf("# %s: 2 ranks against 1 process, %d steps: max |difference| train %.2g, grad norm %.2g, "
           "validation %.2g bits\n",
           t->prog, t->steps, dt, dn, dv);
    assert_true(dt < 2e-5);
    assert_true(dn < 2e-5);
    assert_true(dv < 2e-5);
    if (t == &k_dna) g_dna_log1 = log1;
    else free(log1);
    free(log2);
    mb_test_rmtree(dir);
}

static void test_resume_two_ranks(void **state)
{
    const tool *t = *state;
    assert_non_null(g_dna_log1);
    char dir[64];
    mb_test_mkdtemp(dir, sizeof dir, "dist3");
    assert_int_equal(run(t->two, "%s --stop-after 3 --out %s/r.st %s", t->flags, dir, t->data), 0);
    assert_int_equal(mb_test_count(g_err, "stopped at step 3"), 1);
    assert_int_equal(run(t->two, "%s --resume --out %s/r.st --log %s/r.jsonl %s", t->flags, dir, dir, t->data), 0);
    char *log = read_log(dir, "r");
    /* steps 4..6 and the end: the last 4 values of the whole run's 7 */
    double a[8], b[8];
    assert_int_equal(mb_test_json_values(log, t->val, a, 8), 4);
    assert_int_equal(mb_test_json_values(g_dna_log1, t->val, b, 8), 7);
    double d = 0;
    for (int i = 0; i < 4; i++) d = fmax(d, fabs(a[i] - b[3 + i]));
    printf("# 3 + 3 steps on 2 ranks, resumed, against 6 on one process: validation off by %.2g\n", d);
    assert_true(d < 2e-5);
    free(log);
    mb_test_rmtree(dir);
}

/* "TEXT N" in s: N (-1 when absent) */
static long number_after(const char *s, const char *text)
{
    const char *p = strstr(s, text);
    return p ? atol(p + strlen(text)) : -1;
}

/* Validated on other statistics than it trains on (tiny.fa against
 * markov.fa), the held-out loss turns up; --patience 3 stops the run 3
 * validations after its best, on both ranks at once. */
static void test_early_stop_two_ranks(void **state)
{
    const tool *t = *state;
    static const char *flags = "pretrain --d-model 16 --n-layer 1 --seq-len 64 --batch 4 --threads 1 --val-tokens 512 "
                               "--lr 1e-2 --steps 60 --val-every 4 --patience 3 --val " MB_DATA_DIR "/genomics/tiny.fa "
                               MB_DATA_DIR "/genomics/markov.fa";
    char dir[64], files[1024], want[1024];
    mb_test_mkdtemp(dir, sizeof dir, "dist5");
    assert_int_equal(run(t->one, "%s --out %s/one.st", flags, dir), 0);
    const long stop1 = number_after(g_err, "stopped early at step ");
    const long best1 = number_after(g_out, "best validation, step ");
    mb_test_rmtree(dir);
    mb_test_mkdtemp(dir, sizeof dir, "dist5");
    assert_int_equal(run(t->two, "%s --out %s/two.st", flags, dir), 0);
    const long stop2 = number_after(g_err, "stopped early at step ");
    const long best2 = number_after(g_out, "best validation, step ");
    printf("# early stop: one process at step %ld (best %ld), 2 ranks at %ld (best %ld)\n", stop1, best1, stop2, best2);
    assert_true(stop1 > 0 && best1 > 0 && best1 < stop1);
    assert_true(stop2 == stop1 && best2 == best1);
    assert_int_equal(mb_test_count(g_err, "stopped early"), 1);
    assert_int_equal(mb_test_count(g_err, "has not improved for 3 validations (best"), 1);
    mb_test_listing(dir, files, sizeof files);
    snprintf(want, sizeof want, "two.st two.st.step-%ld two.st.step-%ld.json two.st.step-%ld.optim", stop2, stop2,
             stop2);
    assert_string_equal(files, want);
    mb_test_rmtree(dir);
}

static void test_errors(void **state)
{
    const tool *t = *state;
    char dir[64], files[1024];
    mb_test_mkdtemp(dir, sizeof dir, "dist4");
    mb_test_one_error(run(t->two, "%s --out %s/m.st %s", t->flags, dir, t->bad_data), 1, g_err, t->prog,
                      "no-such-");
    /* only rank 0 writes, so only rank 0 finds this out: still one line */
    mb_test_one_error(run(t->two, "%s --out %s/no/such/dir/m.st %s", t->flags, dir, t->data), 1, g_err, t->prog,
                      "no/such/dir");
    mb_test_one_error(run(t->two, "%s --batch 3 --out %s/m.st %s", t->flags, dir, t->data), 2, g_err, t->prog,
                      "--batch 3");
    assert_non_null(strstr(g_err, "2 ranks"));
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, ""); /* nothing written */
    mb_test_rmtree(dir);
}
#endif

int main(void)
{
#if !defined(MB_DNA_BIN) || !defined(MB_AUDIO_BIN) || !defined(MB_MPIEXEC_2)
    printf("mamba-dna, mamba-audio or MPI's mpiexec is not built or found: nothing to test\n");
    return 77;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_two_ranks_equal_one, (void *)&k_dna),
        cmocka_unit_test_prestate(test_resume_two_ranks, (void *)&k_dna),
        cmocka_unit_test_prestate(test_early_stop_two_ranks, (void *)&k_dna),
        cmocka_unit_test_prestate(test_errors, (void *)&k_dna),
        cmocka_unit_test_prestate(test_two_ranks_equal_one, (void *)&k_audio),
        cmocka_unit_test_prestate(test_errors, (void *)&k_audio),
    };
    const int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_dna_log1);
    return rc;
#endif
}
