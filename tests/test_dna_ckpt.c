/* A training run's checkpoints, through mamba-dna pretrain (the loop and
 * the checkpoint sets are the tools' shared code, apps/common):
 * - the layout: OUT and the newest --keep sets OUT.step-N{,.optim,.json};
 * - --resume takes the newest complete set: a set cut between its files
 *   (a kill), a set whose optimizer state is of an older save or of
 *   another run is named in a warning and the set before it resumed, and
 *   the run ends where an uninterrupted one does, to the bit; with no
 *   older set, one error line and exit 1;
 * - a failed write of a set (a file-size limit: the optimizer's state
 *   does not fit) over an old run with --force: one error line, exit 1,
 *   the old run's files as they were, and --resume continues that run;
 * - a run that diverges stops with one line naming the last set, which
 *   --resume takes;
 * - with validation, OUT is the model of the lowest held-out loss, a
 *   warning says once that the loss stopped improving, --patience stops
 *   the run early, and a resumed run decides as an uninterrupted one;
 * - temporary files a killed run left are removed by --resume / --force.
 * Weights are compared as the files' tensor bytes (the headers differ in
 * the run id). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#ifdef MB_DNA_BIN
#define DATA MB_DATA_DIR "/genomics/"
#define TINY " --d-model 16 --n-layer 1 --seq-len 64 --batch 4 --threads 1 --val-tokens 512"

static char g_out[1 << 16], g_err[1 << 16];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(MB_DNA_BIN, g_out, sizeof g_out, g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return rc;
}

/* DIR/NAME into a static buffer of four (for several in one call) */
static const char *at(const char *dir, const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

/* the tensor bytes of a safetensors file (after its header), malloc'd */
static unsigned char *tensor_bytes(const char *path, size_t *n)
{
    size_t len = 0;
    unsigned char *f = mb_test_read_file(path, &len);
    assert_non_null(f);
    assert_true(len >= 8);
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = h << 8 | f[i];
    assert_true(8 + h <= len);
    *n = len - 8 - (size_t)h;
    unsigned char *d = malloc(*n + 1);
    memcpy(d, f + 8 + h, *n);
    free(f);
    return d;
}

static int same_tensors(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = tensor_bytes(a, &na), *y = tensor_bytes(b, &nb);
    const int same = na == nb && memcmp(x, y, na) == 0;
    free(x), free(y);
    return same;
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    void *d = mb_test_read_file(from, &n);
    assert_non_null(d);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
    free(d);
}

/* every file of a folder, read, to see it left as it was */
typedef struct {
    char names[4096];
    size_t total;
    unsigned long sum;
} snapshot;

static void snap(const char *dir, snapshot *s)
{
    memset(s, 0, sizeof *s);
    mb_test_listing(dir, s->names, sizeof s->names);
    char list[4096];
    snprintf(list, sizeof list, "%s", s->names);
    for (char *name = strtok(list, " "); name; name = strtok(NULL, " ")) {
        size_t n;
        unsigned char *d = mb_test_read_file(at(dir, name), &n);
        assert_non_null(d);
        s->total += n;
        for (size_t i = 0; i < n; i++) s->sum = s->sum * 31 + d[i];
        free(d);
    }
}

static void assert_same_snapshot(const snapshot *a, const snapshot *b)
{
    if (strcmp(a->names, b->names) != 0) fprintf(stderr, "# before: %s\n# after:  %s\n", a->names, b->names);
    assert_string_equal(a->names, b->names);
    assert_true(a->total == b->total && a->sum == b->sum);
}

/* ---- the layout ------------------------------------------------------------------ */

#define RUN16 "pretrain" TINY " --steps 16 --save-every 4 --val-every 4"

static void test_layout(void **st)
{
    (void)st;
    char dir[64], files[4096];
    mb_test_mkdtemp(dir, sizeof dir, "ckpt_layout");
    assert_int_equal(run(RUN16 " --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    mb_test_listing(dir, files, sizeof files);
    printf("# --keep 2 (the default): %s\n", files);
    assert_string_equal(files, "m.st m.st.step-12 m.st.step-12.json m.st.step-12.optim m.st.step-16 "
                               "m.st.step-16.json m.st.step-16.optim");
    char *state = mb_test_read_file(at(dir, "m.st.step-16.json"), NULL);
    assert_non_null(state);
    assert_non_null(strstr(state, "\"step\": 16,"));
    assert_non_null(strstr(state, "\"run_id\": \""));
    free(state);
    mb_test_rmtree(dir);
    mb_test_mkdtemp(dir, sizeof dir, "ckpt_keep");
    assert_int_equal(run(RUN16 " --keep 3 --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "m.st m.st.step-12 m.st.step-12.json m.st.step-12.optim m.st.step-16 "
                               "m.st.step-16.json m.st.step-16.optim m.st.step-8 m.st.step-8.json m.st.step-8.optim");
    /* a new run does not write over them */
    assert_int_equal(remove(at(dir, "m.st")), 0);
    assert_int_equal(run(RUN16 " --out %s %smarkov.fa", at(dir, "m.st"), DATA), 1);
    mb_test_error_line(g_err, "mamba-dna", "m.st.step-");
    assert_non_null(strstr(g_err, "--force"));
    mb_test_rmtree(dir);
}

/* ---- --resume over a set that is not complete ------------------------------------- */

static char g_whole[64]; /* 16 steps, uninterrupted, every set kept */

static void whole_run(void)
{
    if (g_whole[0]) return;
    mb_test_mkdtemp(g_whole, sizeof g_whole, "ckpt_whole");
    assert_int_equal(run(RUN16 " --keep 10 --out %s %smarkov.fa", at(g_whole, "m.st"), DATA), 0);
}

/* a run stopped at step 12: sets 8 (unless --keep 1) and 12 */
static void sliced_run(char *dir, size_t cap, const char *name, const char *extra)
{
    mb_test_mkdtemp(dir, cap, name);
    assert_int_equal(run(RUN16 " --stop-after 12%s --out %s %smarkov.fa", extra, at(dir, "m.st"), DATA), 0);
    assert_true(exists(at(dir, "m.st.step-12.optim")));
    assert_true(exists(at(dir, "m.st.step-8.optim")) == !strstr(extra, "--keep 1"));
}

/* --resume skips set 12 with `needle` in its warning, resumes set 8, and
 * ends on the uninterrupted run's weights */
static void expect_fallback(const char *dir, const char *needle)
{
    assert_int_equal(run(RUN16 " --resume --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    const char *said = strstr(g_err, "mamba-dna: warning");
    printf("# %s", said ? said : g_err);
    assert_non_null(strstr(g_err, "mamba-dna: warning: checkpoint of step 12 skipped: "));
    assert_non_null(strstr(g_err, needle));
    assert_non_null(strstr(g_err, "mamba-dna: warning: resuming from the older checkpoint "));
    assert_non_null(strstr(g_err, "m.st.step-8 (step 8)"));
    assert_null(strstr(g_err, "error"));
    assert_true(same_tensors(at(dir, "m.st.step-16"), at(g_whole, "m.st.step-16")));
    assert_true(same_tensors(at(dir, "m.st.step-16.optim"), at(g_whole, "m.st.step-16.optim")));
    assert_true(same_tensors(at(dir, "m.st"), at(g_whole, "m.st")));
    char files[4096];
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "m.st m.st.step-12 m.st.step-12.json m.st.step-12.optim m.st.step-16 "
                               "m.st.step-16.json m.st.step-16.optim");
}

/* A kill between the renames of a set: its model without its optimizer
 * state. */
static void test_resume_cut_set(void **st)
{
    (void)st;
    whole_run();
    char dir[64];
    sliced_run(dir, sizeof dir, "ckpt_cut", "");
    assert_int_equal(remove(at(dir, "m.st.step-12.optim")), 0);
    assert_int_equal(remove(at(dir, "m.st.step-12.json")), 0);
    expect_fallback(dir, "m.st.step-12.optim: missing");
    mb_test_rmtree(dir);
}

/* The optimizer state of an older save beside the model (what a cut
 * between the model file and its state left in the earlier layout). */
static void test_resume_older_state(void **st)
{
    (void)st;
    whole_run();
    char dir[64];
    sliced_run(dir, sizeof dir, "ckpt_older", "");
    copy_file(at(dir, "m.st.step-8.optim"), at(dir, "m.st.step-12.optim"));
    expect_fallback(dir, "optimizer state saved with other weights than the model's");
    mb_test_rmtree(dir);
}

/* The same-shaped optimizer state of another run (the same flags and
 * seed: the same weights, another run id). */
static void test_resume_other_run(void **st)
{
    (void)st;
    whole_run();
    char dir[64], other[64];
    sliced_run(dir, sizeof dir, "ckpt_mine", "");
    sliced_run(other, sizeof other, "ckpt_theirs", "");
    copy_file(at(other, "m.st.step-12.optim"), at(dir, "m.st.step-12.optim"));
    expect_fallback(dir, "optimizer state of another run");
    mb_test_rmtree(other);
    mb_test_rmtree(dir);
}

/* With --keep 1 there is no set to fall back on: one line, exit 1, the
 * files as they were. */
static void test_resume_refused(void **st)
{
    (void)st;
    char dir[64], other[64];
    sliced_run(dir, sizeof dir, "ckpt_keep1", " --keep 1");
    sliced_run(other, sizeof other, "ckpt_keep1o", " --keep 1");
    copy_file(at(other, "m.st.step-12.optim"), at(dir, "m.st.step-12.optim"));
    snapshot before, after;
    snap(dir, &before);
    assert_int_equal(run(RUN16 " --resume --out %s %smarkov.fa", at(dir, "m.st"), DATA), 1);
    printf("# %s", g_err);
    mb_test_error_line(g_err, "mamba-dna", "m.st.step-12.optim: optimizer state of another run");
    assert_non_null(strstr(g_err, "no older checkpoint"));
    snap(dir, &after);
    assert_same_snapshot(&before, &after);
    mb_test_rmtree(other);
    mb_test_rmtree(dir);
}

/* ---- a failed write ------------------------------------------------------------------ */

/* --force over an old run, where the new run's first set does not fit
 * (a file-size limit between the model's size and its optimizer state's:
 * the model is written, the state is not). */
static void test_force_write_fails(void **st)
{
    (void)st;
    whole_run();
    char dir[64];
    sliced_run(dir, sizeof dir, "ckpt_full", "");
    struct stat sm, so;
    assert_int_equal(stat(at(dir, "m.st.step-8"), &sm), 0);
    assert_int_equal(stat(at(dir, "m.st.step-8.optim"), &so), 0);
    const long kb = (long)(sm.st_size + so.st_size) / 2 / 1024; /* bash's unit: 1024 bytes */
    snapshot before, after;
    snap(dir, &before);
    char cmd[2048];
    /* SIGXFSZ ignored (inherited through exec): the write fails with EFBIG;
     * no validation before the save at 6 (it would write OUT: --force) */
    snprintf(cmd, sizeof cmd,
             "bash -c \"ulimit -f %ld; trap '' XFSZ; %s " RUN16 " --force --save-every 6 --val-every 8 --seed 2 "
             "--out %s %smarkov.fa\"",
             kb, MB_DNA_BIN, at(dir, "m.st"), DATA);
    const int rc = mb_test_sh(cmd, g_out, sizeof g_out, g_err, sizeof g_err);
    const char *said = strstr(g_err, "mamba-dna: error");
    printf("# ulimit -f %ld: rc %d: %s", kb, rc, said ? said : g_err);
    assert_int_equal(rc, 1);
    assert_int_equal(mb_test_count(g_err, "mamba-dna: error: "), 1);
    assert_int_equal(mb_test_count(strstr(g_err, "mamba-dna: error: "), "\n"), 1);
    assert_non_null(strstr(g_err, "mamba-dna: error: "));
    assert_non_null(strstr(g_err, "m.st.step-6.optim"));
    snap(dir, &after);
    assert_same_snapshot(&before, &after); /* nothing of the new run, no temporary file */
    /* the old run's newest set is complete: --resume continues it */
    assert_int_equal(run(RUN16 " --resume --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    assert_null(strstr(g_err, "skipped"));
    assert_true(same_tensors(at(dir, "m.st.step-16"), at(g_whole, "m.st.step-16")));
    mb_test_rmtree(dir);
}

/* ---- divergence ------------------------------------------------------------------------- */

/* lr 1 and weight decay 10: every decayed weight is multiplied by -9 a
 * step, so the gradient overflows within a few steps. */
#define DIVERGE " --lr 1 --weight-decay 10 --grad-clip 0 --warmup 0 --steps 40 --save-every 1"

static void test_diverged(void **st)
{
    (void)st;
    char dir[64];
    mb_test_mkdtemp(dir, sizeof dir, "ckpt_div");
    assert_int_equal(run("pretrain" TINY DIVERGE " --out %s %smarkov.fa", at(dir, "m.st"), DATA), 1);
    const char *e = strstr(g_err, "mamba-dna: error: ");
    assert_non_null(e);
    printf("# %s", e);
    mb_test_error_line(e, "mamba-dna", "the training diverged");
    long s = 0;
    assert_int_equal(sscanf(e, "mamba-dna: error: step %ld:", &s), 1);
    assert_true(s >= 3);
    char last[64], before[64], gone[64];
    snprintf(last, sizeof last, "m.st.step-%ld", s - 1);
    snprintf(before, sizeof before, "m.st.step-%ld.optim", s - 2);
    snprintf(gone, sizeof gone, "m.st.step-%ld", s);
    assert_non_null(strstr(e, last)); /* the line names the set kept */
    assert_true(exists(at(dir, last)) && exists(at(dir, before)) && !exists(at(dir, gone)));
    /* --resume takes it (the weights load: they are finite), and, with
     * the same flags, diverges at the same step */
    snapshot a, b;
    snap(dir, &a);
    assert_int_equal(run("pretrain" TINY DIVERGE " --resume --out %s %smarkov.fa", at(dir, "m.st"), DATA), 1);
    assert_non_null(strstr(g_err, "resuming"));
    assert_null(strstr(g_err, "skipped"));
    char again[64];
    snprintf(again, sizeof again, "mamba-dna: error: step %ld: the training diverged", s);
    assert_non_null(strstr(g_err, again));
    snap(dir, &b);
    assert_same_snapshot(&a, &b);
    mb_test_rmtree(dir);
}

/* ---- the best model, the warning, --patience ---------------------------------------- */

/* Trained on markov.fa and validated on tiny.fa (other statistics), the
 * held-out loss falls, then rises as the model fits markov.fa. */
#define OVERFIT                                                                                                   \
    "pretrain" TINY " --lr 1e-2 --steps 60 --val-every 4 --save-every 4 --keep 100 --val " DATA "tiny.fa"

/* the step of the lowest val_bpb in a log */
static long best_step(const char *logp, double *best, long *last)
{
    char *log = mb_test_read_file(logp, NULL);
    assert_non_null(log);
    double v[64], s[64];
    const int n = mb_test_json_values(log, "val_bpb", v, 64);
    assert_true(n > 2);
    /* each validation's step: the "step" of the same line */
    int k = 0;
    for (const char *p = log; k < n && (p = strstr(p, "\"val_bpb\": ")); p++) {
        const char *line = p;
        while (line > log && line[-1] != '\n') line--;
        s[k++] = atof(strstr(line, "\"step\": ") + 8);
    }
    free(log);
    int b = 0;
    for (int i = 1; i < n - 1; i++) /* the last value is the end event's (the last one's copy) */
        if (v[i] < v[b]) b = i;
    *best = v[b];
    *last = (long)s[n - 2];
    return (long)s[b];
}

static void test_best_model(void **st)
{
    (void)st;
    char dir[64], name[64];
    mb_test_mkdtemp(dir, sizeof dir, "ckpt_best");
    assert_int_equal(run(OVERFIT " --out %s --log %s %smarkov.fa", at(dir, "m.st"), at(dir, "m.jsonl"), DATA), 0);
    double best;
    long last;
    const long b = best_step(at(dir, "m.jsonl"), &best, &last);
    printf("# best held-out %.4f bits/base at step %ld of %ld\n", best, b, last);
    assert_true(b < last - 12); /* the loss rose after its best */
    snprintf(name, sizeof name, "m.st.step-%ld", b);
    assert_true(same_tensors(at(dir, "m.st"), at(dir, name)));
    assert_false(same_tensors(at(dir, "m.st"), at(dir, "m.st.step-60")));
    /* one warning, after the third validation without a better loss */
    assert_int_equal(mb_test_count(g_err, "has not improved"), 1);
    char when[64];
    snprintf(when, sizeof when, "warning: step %ld: the held-out loss", b + 12);
    assert_non_null(strstr(g_err, when));
    /* the summary gives the best's figure and where the last is */
    char fig[64];
    snprintf(fig, sizeof fig, "validation %.4f bits/base", best);
    assert_non_null(strstr(g_out, fig));
    assert_non_null(strstr(g_out, "m.st.step-60"));
    /* --select last: OUT is the last step's */
    assert_int_equal(run(OVERFIT " --select last --force --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    assert_true(same_tensors(at(dir, "m.st"), at(dir, "m.st.step-60")));
    mb_test_rmtree(dir);
}

static void test_patience(void **st)
{
    (void)st;
    char whole[64], dir[64], name[64];
    mb_test_mkdtemp(whole, sizeof whole, "ckpt_pwhole");
    assert_int_equal(run(OVERFIT " --out %s --log %s %smarkov.fa", at(whole, "m.st"), at(whole, "m.jsonl"), DATA), 0);
    double best;
    long last;
    const long b = best_step(at(whole, "m.jsonl"), &best, &last);
    /* three validations without a better loss: stopped there, saved */
    mb_test_mkdtemp(dir, sizeof dir, "ckpt_pat");
    assert_int_equal(run(OVERFIT " --patience 3 --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    char line[128];
    snprintf(line, sizeof line, "mamba-dna: stopped early at step %ld: ", b + 12);
    const char *said = strstr(g_err, "mamba-dna: stopped");
    printf("# %s", said ? said : g_err);
    assert_non_null(strstr(g_err, line));
    snprintf(name, sizeof name, "m.st.step-%ld", b + 12);
    assert_true(exists(at(dir, name)));
    snprintf(name, sizeof name, "m.st.step-%ld", b + 16);
    assert_false(exists(at(dir, name)));
    snprintf(name, sizeof name, "m.st.step-%ld", b);
    assert_true(same_tensors(at(dir, "m.st"), at(whole, name)));
    assert_non_null(strstr(g_out, "pretrain: "));
    /* resumed with the same patience: nothing left to do */
    snapshot s0, s1;
    snap(dir, &s0);
    assert_int_equal(run(OVERFIT " --patience 3 --resume --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    assert_non_null(strstr(g_err, line));
    snap(dir, &s1);
    assert_same_snapshot(&s0, &s1);
    /* without: on to step 60, deciding as the whole run did (the best is
     * not replaced by the first validation after the resume) */
    assert_int_equal(run(OVERFIT " --resume --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    assert_true(same_tensors(at(dir, "m.st"), at(whole, "m.st")));
    assert_true(same_tensors(at(dir, "m.st.step-60"), at(whole, "m.st.step-60")));
    assert_true(same_tensors(at(dir, "m.st.step-60.optim"), at(whole, "m.st.step-60.optim")));
    assert_null(strstr(g_err, "has not improved")); /* warned once a run, before the resume */
    mb_test_rmtree(dir);
    mb_test_rmtree(whole);
}

/* ---- temporary files of a killed run ----------------------------------------------------- */

static void touch(const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("half a file", f);
    fclose(f);
}

static void test_sweep(void **st)
{
    (void)st;
    char dir[64], files[4096];
    mb_test_mkdtemp(dir, sizeof dir, "ckpt_sweep");
    assert_int_equal(run(RUN16 " --stop-after 8 --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    touch(at(dir, "m.st.step-12.optim.tmpAb3xYz"));
    touch(at(dir, "m.st.tmpQw9Er7"));
    touch(at(dir, "m.st.optim.tmpZZ12ab")); /* an earlier version's name */
    touch(at(dir, "m.st.tmp-mine"));        /* not a temporary file's name */
    touch(at(dir, "other.st.tmpAb3xYz"));   /* another output's */
    assert_int_equal(run(RUN16 " --resume --stop-after 12 --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    assert_non_null(strstr(g_err, "mamba-dna: removed 3 temporary files that a killed run left beside "));
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "m.st m.st.step-12 m.st.step-12.json m.st.step-12.optim m.st.step-8 m.st.step-8.json "
                               "m.st.step-8.optim m.st.tmp-mine other.st.tmpAb3xYz");
    /* --force owns --out too */
    touch(at(dir, "m.st.step-4.json.tmp123456"));
    assert_int_equal(run(RUN16 " --force --stop-after 4 --out %s %smarkov.fa", at(dir, "m.st"), DATA), 0);
    assert_non_null(strstr(g_err, "removed 1 temporary file that"));
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "m.st m.st.step-4 m.st.step-4.json m.st.step-4.optim m.st.tmp-mine other.st.tmpAb3xYz");
    mb_test_rmtree(dir);
}

static int teardown(void **st)
{
    (void)st;
    if (g_whole[0]) mb_test_rmtree(g_whole);
    return 0;
}
#endif

int main(void)
{
#ifndef MB_DNA_BIN
    printf("mamba-dna is not built (MAMBA_APPS off or no htslib): nothing to test\n");
    return 77;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),          cmocka_unit_test(test_resume_cut_set),
        cmocka_unit_test(test_resume_older_state), cmocka_unit_test(test_resume_other_run),
        cmocka_unit_test(test_resume_refused),  cmocka_unit_test(test_force_write_fails),
        cmocka_unit_test(test_diverged),        cmocka_unit_test(test_best_model),
        cmocka_unit_test(test_patience),        cmocka_unit_test(test_sweep),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
#endif
}
