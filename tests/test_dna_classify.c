/* mamba-dna classify, through the tool itself: fine-tuning a tiny language
 * model (made here, not pretrained) on three synthetic species
 * (data/genomics/classify/, order-2 Markov chains of GC 0.25 / 0.50 / 0.75)
 * reaches >= 0.9 validation accuracy on held-out files and prints the
 * confusion matrix with the class names; predict writes the TSV (exact
 * header, probabilities summing to 1, predicted = argmax, mostly right,
 * one row per window with --window) and its probabilities equal
 * mb_model_classify on the same tokens; regions from a TSV train; --resume
 * continues from the saved step; every bad input is one error line, exit 1,
 * nothing written or damaged; usage errors exit 2. */
/* strdup, access: POSIX (the project compiles as strict C11) */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dna_cmd.h"
#include "testutil.h"
#include "train/safetensors.h"

#ifdef MB_DNA_BIN
#define CDIR MB_DATA_DIR "/genomics/classify/"
#define GDIR MB_DATA_DIR "/genomics/"
#define CAP (1 << 20)
#define TRAIN_CLASSES                                                                         \
    " --class alpha=" CDIR "alpha_train.fa --class beta=" CDIR "beta_train.fa --class gamma=" CDIR \
    "gamma_train.fa"
#define VAL_CLASSES                                                                                   \
    " --val-class alpha=" CDIR "alpha_heldout.fa --val-class beta=" CDIR                              \
    "beta_heldout.fa --val-class gamma=" CDIR "gamma_heldout.fa"
#define HELDOUT " --fasta " CDIR "alpha_heldout.fa --fasta " CDIR "beta_heldout.fa --fasta " CDIR "gamma_heldout.fa"
#define SMALL " --seq-len 128 --batch 8 --lr 5e-3 --threads 2"

static char *g_out, *g_err;
static char g_pre[256], g_other[256], g_cls[256];
static int g_trained; /* g_cls holds the classifier of test_train */

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(MB_DNA_BIN " classify", g_out, CAP, g_err, CAP, fmt, ap);
    va_end(ap);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* stderr is exactly one line "mamba-dna: error: ..." holding `what`. */
static void assert_one_error(const char *what) { mb_test_error_line(g_err, "mamba-dna", what); }

static void remove_outputs(const char *model)
{
    char p[600];
    remove(model);
    snprintf(p, sizeof p, "%s.optim", model);
    remove(p);
    snprintf(p, sizeof p, "%s.classes", model);
    remove(p);
    snprintf(p, sizeof p, "%s.novelty", model);
    remove(p);
    snprintf(p, sizeof p, "rm -f -- '%s'.step-*", model); /* the checkpoint sets */
    assert_int_equal(mb_test_sh(p, NULL, 0, NULL, 0), 0);
}

/* Splits a line at its tabs (in place); returns the field count. */
static int split_tabs(char *s, char **f, int max)
{
    int n = 0;
    f[n++] = s;
    for (; *s && n < max; s++)
        if (*s == '\t') {
            *s = '\0';
            f[n++] = s + 1;
        }
    return n;
}

/* ---- setup: a tiny mamba-dna LM and a 10-token LM --------------------------------- */

static int setup(void **st)
{
    (void)st;
    g_out = malloc(CAP);
    g_err = malloc(CAP);
    mb_test_tmp_path(g_pre, sizeof g_pre, "cls_pre.safetensors");
    mb_test_tmp_path(g_other, sizeof g_other, "cls_other.safetensors");
    mb_test_tmp_path(g_cls, sizeof g_cls, "cls_trained.safetensors");
    remove_outputs(g_cls);
    mb_ctx *ctx = mb_ctx_create("cpu");
    if (!g_out || !g_err || !ctx) return -1;
    mb_config cfg;
    mb_config_default(&cfg);
    dna_cmd_config(&cfg);
    cfg.d_model = 32, cfg.n_layer = 2;
    mb_model *m = mb_model_create(ctx, &cfg, 7);
    int bad = !m || mb_model_save(m, g_pre);
    mb_model_free(m);
    mb_config_default(&cfg);
    cfg.d_model = 16, cfg.n_layer = 1, cfg.vocab_size = 10;
    m = mb_model_create(ctx, &cfg, 1);
    bad = bad || !m || mb_model_save(m, g_other);
    mb_model_free(m);
    mb_ctx_free(ctx);
    return bad ? -1 : 0;
}

static int teardown(void **st)
{
    (void)st;
    remove(g_pre);
    remove(g_other);
    remove_outputs(g_cls);
    free(g_out);
    free(g_err);
    return 0;
}

/* ---- train on the separable task, then predict ------------------------------------ */

static void test_train(void **st)
{
    (void)st;
    char logp[256];
    mb_test_tmp_path(logp, sizeof logp, "cls_train.jsonl");
    remove(logp);
    const double t0 = now_s();
    assert_int_equal(run("train --model %s --out %s" TRAIN_CLASSES VAL_CLASSES SMALL
                         " --steps 100 --val-every 50 --log %s", g_pre, g_cls, logp), 0);
    const double dt = now_s() - t0;
    double acc, chance;
    int nwin;
    const char *p = strstr(g_out, "validation accuracy ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "validation accuracy %lf on %d windows (chance %lf)", &acc, &nwin, &chance), 3);
    printf("# 3 synthetic species, 100 steps at L 128 in %.1fs: held-out accuracy %.4f on %d windows "
           "(chance %.4f)\n", dt, acc, nwin, chance);
    printf("%s", strstr(g_out, "true\\pred"));
    assert_true(acc >= 0.9);
    assert_int_equal(nwin, 96);
    assert_true(fabs(chance - 1.0 / 3) < 1e-3);
    /* the confusion matrix, with the names; its rows sum to the windows */
    const char *hdr = strstr(g_out, "true\\pred");
    assert_non_null(hdr);
    char a[16], b[16], c[16], corner[16];
    assert_int_equal(sscanf(hdr, "%15s %15s %15s %15s", corner, a, b, c), 4);
    assert_string_equal(a, "alpha");
    assert_string_equal(b, "beta");
    assert_string_equal(c, "gamma");
    const char *row = strchr(hdr, '\n') + 1;
    int total = 0, diag = 0;
    for (int r = 0; r < 3; r++) {
        char name[16];
        int v[3];
        assert_int_equal(sscanf(row, "%15s %d %d %d", name, &v[0], &v[1], &v[2]), 4);
        assert_string_equal(name, r == 0 ? "alpha" : r == 1 ? "beta" : "gamma");
        total += v[0] + v[1] + v[2];
        diag += v[r];
        row = strchr(row, '\n') + 1;
    }
    assert_int_equal(total, 96);
    assert_true(fabs((double)diag / total - acc) < 1e-3);
    /* the log has the validation accuracy; the class names are saved */
    size_t n;
    char *log = mb_test_read_file(logp, &n);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"val_acc\""));
    assert_non_null(strstr(log, "\"confusion\""));
    assert_non_null(strstr(log, "\"classes\": [\"alpha\", \"beta\", \"gamma\"]"));
    assert_non_null(strstr(log, "\"event\": \"end\""));
    free(log);
    char cp[300];
    snprintf(cp, sizeof cp, "%s.classes", g_cls);
    char *names = mb_test_read_file(cp, &n);
    assert_non_null(names);
    assert_string_equal(names, "alpha\nbeta\ngamma\n");
    free(names);
    remove(logp);
    g_trained = 1;
}

/* --precision bf16: fine-tuning learns the same task (held-out accuracy as
 * test_train's bound) and the optimizer checkpoint records the precision */
/* Windows over 64k bases with neither memory flag: the library picks the
 * recompute by the device's room (MB_RECOMPUTE_AUTO), and classify train
 * says which after its first step where that is not the layer recompute:
 * told (MB_DEV_MEM) that the device has room for in_proj's outputs, the
 * line comes. (The lines themselves, and nothing said on the CPU's own
 * choice, are test_dna_pretrain's; here the call site. One run: the
 * distance rule fitted at the end reads 128 windows a class, some 40 s on
 * two cores.) Two random genomes of 150 kb, windows of 66,000 bases, one
 * step. */
static void test_train_long_windows(void **st)
{
    (void)st;
    char fa[2][256], out[256];
    mb_rng r;
    mb_rng_seed(&r, 23);
    for (int k = 0; k < 2; k++) {
        mb_test_tmp_path(fa[k], sizeof fa[k], k ? "long_b.fa" : "long_a.fa");
        FILE *f = fopen(fa[k], "w");
        assert_non_null(f);
        fputs(k ? ">b\n" : ">a\n", f);
        for (int i = 0; i < 150000; i++) {
            fputc("ACGT"[mb_rng_below(&r, 4)], f);
            if (i % 80 == 79) fputc('\n', f);
        }
        fputs("\n", f);
        assert_int_equal(fclose(f), 0);
    }
    mb_test_tmp_path(out, sizeof out, "cls_long.safetensors");
    const char *cmd = "train --model %s --out %s --class a=%s --class b=%s --seq-len 66000 --batch 1 --steps 1 "
                      "--val-every 1 --val-windows 1 --threads 2";
    remove_outputs(out);
    assert_int_equal(setenv("MB_DEV_MEM", "65536,81920", 1), 0);
    const int rc = run(cmd, g_pre, out, fa[0], fa[1]);
    unsetenv("MB_DEV_MEM");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(g_err, "66000-base windows: the device has room for each layer's in_proj output"));
    remove_outputs(out);
    remove(fa[0]), remove(fa[1]);
}

static void test_bf16(void **st)
{
    (void)st;
    char model[256], optim[300];
    mb_test_tmp_path(model, sizeof model, "cls_bf16.safetensors");
    remove_outputs(model);
    assert_int_equal(run("train --precision bf16 --model %s --out %s" TRAIN_CLASSES VAL_CLASSES SMALL
                         " --steps 100 --val-every 100", g_pre, model), 0);
    double acc, chance;
    int nwin;
    const char *p = strstr(g_out, "validation accuracy ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "validation accuracy %lf on %d windows (chance %lf)", &acc, &nwin, &chance), 3);
    printf("# bf16, 100 steps at L 128: held-out accuracy %.4f on %d windows\n", acc, nwin);
    assert_true(acc >= 0.9);
    snprintf(optim, sizeof optim, "%s.step-100.optim", model);
    mb_st_file *f = mb_st_open(optim);
    if (!f) fail_msg("%s: %s", optim, mb_error_last());
    const char *prec = mb_st_metadata(f, "precision");
    assert_non_null(prec);
    assert_string_equal(prec, "bf16");
    mb_st_close(f);
    /* a checkpoint predicts with the run's class names (MODEL.classes: there
     * is no MODEL.step-100.classes), not "class0".. */
    char ckpt[300];
    snprintf(ckpt, sizeof ckpt, "%s.step-100", model);
    assert_int_equal(run("predict --model %s --window 128 --fasta %sgamma_heldout.fa", ckpt, CDIR), 0);
    assert_non_null(strstr(g_out, "\tp_alpha\tp_beta\tp_gamma\n"));
    remove_outputs(model);
}

/* Checks every row of a predict TSV; returns the rows, and how many were
 * predicted as the species their record name starts with. */
static int check_rows(char *tsv, int *right)
{
    char *save = NULL, *line = strtok_r(tsv, "\n", &save);
    assert_non_null(line);
    assert_string_equal(line, "name\tstart\tend\tpredicted\tp_alpha\tp_beta\tp_gamma");
    int rows = 0;
    *right = 0;
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *f[16];
        assert_int_equal(split_tabs(line, f, 16), 7);
        double p[3], sum = 0;
        int best = 0;
        for (int k = 0; k < 3; k++) {
            p[k] = atof(f[4 + k]);
            assert_true(p[k] >= 0 && p[k] <= 1);
            sum += p[k];
            best = p[k] > p[best] ? k : best;
        }
        assert_true(fabs(sum - 1) < 1e-4);
        const char *names[3] = {"alpha", "beta", "gamma"};
        assert_string_equal(f[3], names[best]);
        *right += strncmp(f[0], f[3], strlen(f[3])) == 0;
        assert_true(atol(f[2]) > atol(f[1]));
        rows++;
    }
    return rows;
}

static void test_predict(void **st)
{
    (void)st;
    if (!g_trained) skip();
    /* per record: 12 held-out records of 700 bases */
    assert_int_equal(run("predict --model %s --threads 2" HELDOUT, g_cls), 0);
    int right;
    int rows = check_rows(g_out, &right);
    printf("# per record: %d of %d held-out records right\n", right, rows);
    assert_int_equal(rows, 12);
    assert_true(right >= 10);
    /* per window: 700 bases, W 128, stride 100: starts 0..500, 6 a record */
    assert_int_equal(run("predict --model %s --window 128 --stride 100 --fasta %sbeta_heldout.fa", g_cls, CDIR), 0);
    rows = check_rows(g_out, &right);
    assert_int_equal(rows, 4 * 6);
    /* the default stride is the window: starts 0..512, 5 a record */
    assert_int_equal(run("predict --model %s --window 128 --fasta %sgamma_heldout.fa", g_cls, CDIR), 0);
    rows = check_rows(g_out, &right);
    assert_int_equal(rows, 4 * 5);
    printf("# per window (128): %d of %d right\n", right, rows);
    assert_true(right >= 16);
    /* a record shorter than the window: one row for all of it */
    assert_int_equal(run("predict --model %s --window 5000 --fasta %salpha_heldout.fa", g_cls, CDIR), 0);
    assert_int_equal(check_rows(g_out, &right), 4);
}

/* --min-prob P: the rows whose highest probability is under P say
 * unknown, the others keep their class. P lies near the median of those
 * highest probabilities in a run without it, so both kinds of row occur; a
 * value outside [0, 1] is a usage error. */
static int minp_rows(char *tsv, char pred[][16], double *top, int max)
{
    char *save = NULL, *line = strtok_r(tsv, "\n", &save);
    assert_non_null(line);
    int n = 0;
    while ((line = strtok_r(NULL, "\n", &save)) && n < max) {
        char *f[16];
        assert_int_equal(split_tabs(line, f, 16), 7);
        snprintf(pred[n], 16, "%s", f[3]);
        top[n] = 0;
        for (int k = 0; k < 3; k++) top[n] = atof(f[4 + k]) > top[n] ? atof(f[4 + k]) : top[n];
        n++;
    }
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_predict_min_prob(void **st)
{
    (void)st;
    if (!g_trained) skip();
    char pred[64][16], pred2[64][16];
    double top[64], top2[64], sorted[64];
    assert_int_equal(run("predict --model %s --window 128 --stride 100 --fasta %sbeta_heldout.fa --fasta "
                         "%sgamma_heldout.fa", g_cls, CDIR, CDIR), 0);
    const int n = minp_rows(g_out, pred, top, 64);
    assert_int_equal(n, 48);
    memcpy(sorted, top, sizeof top);
    qsort(sorted, (size_t)n, sizeof(double), cmp_double);
    /* between two neighbours near the median, away from both: the printed
     * values are rounded to 6 digits, the threshold meets the exact ones */
    int k = n / 2;
    while (k < n - 1 && sorted[k + 1] - sorted[k] < 1e-5 * sorted[k + 1]) k++;
    assert_true(k < n - 1);
    const double P = 0.5 * (sorted[k] + sorted[k + 1]);
    assert_int_equal(run("predict --model %s --window 128 --stride 100 --min-prob %.9g --fasta %sbeta_heldout.fa "
                         "--fasta %sgamma_heldout.fa", g_cls, P, CDIR, CDIR), 0);
    assert_int_equal(minp_rows(g_out, pred2, top2, 64), n);
    int unknown = 0;
    for (int i = 0; i < n; i++) {
        assert_true(top2[i] == top[i]);
        if (top[i] < P) {
            assert_string_equal(pred2[i], "unknown");
            unknown++;
        } else {
            assert_string_equal(pred2[i], pred[i]);
        }
    }
    printf("# --min-prob %.6g: %d of %d windows unknown\n", P, unknown, n);
    assert_true(unknown > 0 && unknown < n);
    assert_int_equal(run("predict --model %s --min-prob 1.5" HELDOUT, g_cls), 2);
    assert_non_null(strstr(g_err, "--min-prob expects a number in [0, 1]"));
}

/* CLS.novelty with every radius scaled by f (its other numbers as written) */
static void scale_radii(const char *path, double f)
{
    size_t n;
    char *text = mb_test_read_file(path, &n);
    assert_non_null(text);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *tab = strchr(l, '\t');
        if (!tab) {
            fprintf(fp, "%s\n", l);
            continue;
        }
        char *rest;
        const double r = strtod(tab + 1, &rest);
        *tab = '\0';
        fprintf(fp, "%s\t%.9g%s\n", l, r * f, rest);
    }
    assert_int_equal(fclose(fp), 0);
    free(text);
}

/* predict --novel on a held-out file: its windows, and how many are unknown
 * (checking that novelty > 1 exactly where predicted says unknown) */
static int novel_unknown(const char *cls, const char *file, int *rows)
{
    assert_int_equal(run("predict --model %s --window 128 --novel --fasta %s", cls, file), 0);
    char *t = strdup(g_out), *save = NULL;
    assert_non_null(t);
    int nl = 0, unknown = 0;
    for (char *l = strtok_r(t, "\n", &save); l; l = strtok_r(NULL, "\n", &save), nl++) {
        if (nl == 0) {
            assert_string_equal(l, "name\tstart\tend\tpredicted\tp_alpha\tp_beta\tnovelty");
            continue;
        }
        char name[64], pred[32];
        long long s0, e0;
        double pa, pb, nov;
        assert_int_equal(sscanf(l, "%63s %lld %lld %31s %lf %lf %lf", name, &s0, &e0, pred, &pa, &pb, &nov), 7);
        assert_int_equal(strcmp(pred, "unknown") == 0, nov > 1);
        unknown += nov > 1;
    }
    free(t);
    *rows = nl - 1;
    /* the file's share on stderr */
    char line[4200];
    snprintf(line, sizeof line, "%s: %d of %d windows unknown", file, unknown, nl - 1);
    assert_non_null(strstr(g_err, line));
    return unknown;
}

/* The distance rule: a classifier of alpha and beta writes CLS.novelty and
 * reports how many held-out windows it flags, few (a radius at the 95th
 * percentile of each class's training windows); predict --novel keeps
 * most held-out windows of the known classes, flags every window when the
 * radii shrink 1000 times and none when they grow 1000 times (the rule as
 * predict applies it, on a file of known numbers); a missing or damaged
 * CLS.novelty is one error line. Whether it flags a species of no class
 * depends on the backbone's embeddings (half of the Klebsiella windows,
 * measured with a pretrained GPU model; on the tests' synthetic species, 0
 * to all of gamma's windows with random backbones), so no such case here. */
static void test_predict_novel(void **st)
{
    (void)st;
    char cls[256], path[4096], files[2][4096];
    mb_test_tmp_path(cls, sizeof cls, "cls_novel.safetensors");
    snprintf(path, sizeof path, "%s.novelty", cls);
    assert_int_equal(run("train --force --model %s --out %s --class alpha=%salpha_train.fa --class beta=%sbeta_train.fa "
                         "--val-class alpha=%salpha_heldout.fa --val-class beta=%sbeta_heldout.fa" SMALL
                         " --steps 60 --val-every 30", g_pre, cls, CDIR, CDIR, CDIR, CDIR), 0);
    const char *p = strstr(g_out, "held-out windows it calls unknown: ");
    assert_non_null(p);
    long long flagged, n;
    assert_int_equal(sscanf(p, "held-out windows it calls unknown: %lld of %lld", &flagged, &n), 2);
    printf("# distance rule: %lld of %lld held-out windows of the known classes flagged\n", flagged, n);
    assert_int_equal(n, 64);
    assert_true(flagged <= n / 4);
    assert_true(access(path, F_OK) == 0);
    snprintf(files[0], sizeof files[0], "%salpha_heldout.fa", CDIR);
    snprintf(files[1], sizeof files[1], "%sbeta_heldout.fa", CDIR);
    for (int f = 0; f < 2; f++) {
        int rows;
        const int u = novel_unknown(cls, files[f], &rows);
        printf("# predict --novel on %s: %d of %d windows unknown\n", files[f], u, rows);
        assert_int_equal(rows, 20);
        assert_true(u <= 6);
    }
    int rows, u;
    scale_radii(path, 1e-3);
    u = novel_unknown(cls, files[0], &rows);
    assert_int_equal(u, rows);
    scale_radii(path, 1e6);
    u = novel_unknown(cls, files[0], &rows);
    assert_int_equal(u, 0);
    /* the model's class names missing: the rule's names cannot match, and
     * the message says which file to bring back */
    char classes[400], kept[420];
    snprintf(classes, sizeof classes, "%s.classes", cls);
    snprintf(kept, sizeof kept, "%s.kept", classes);
    assert_int_equal(rename(classes, kept), 0);
    assert_int_equal(run("predict --model %s --novel --fasta %s", cls, files[0]), 1);
    assert_non_null(strstr(g_err, ".classes is missing"));
    assert_int_equal(rename(kept, classes), 0);
    /* damaged, missing */
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("mamba-dna-novelty 2 32 2 95\nsd 1 2\n", fp);
    fclose(fp);
    assert_int_equal(run("predict --model %s --novel --fasta %s", cls, files[0]), 1);
    assert_non_null(strstr(g_err, "novelty: malformed"));
    remove(path);
    assert_int_equal(run("predict --model %s --novel --fasta %s", cls, files[0]), 1);
    assert_non_null(strstr(g_err, "--novel needs the distance rule"));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -f -- '%s' '%s'.*", cls, cls);
    assert_int_equal(mb_test_sh(cmd, NULL, 0, NULL, 0), 0);
}

/* predict's probabilities for a record (whole, and in chunks of 100 with
 * the state carried) against mb_model_classify on its tokens */
static void test_predict_equals_library(void **st)
{
    (void)st;
    if (!g_trained) skip();
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_model *m = mb_model_load_classifier(ctx, g_cls, 0, 0);
    assert_non_null(m);
    assert_int_equal(mb_model_config(m)->n_classes, 3);
    const char *path = CDIR "beta_heldout.fa";
    char err[256];
    dna_set *set = dna_set_open(&path, 1, NULL, err, sizeof err);
    assert_non_null(set);
    const int64_t rec = 2, len = dna_set_len(set, rec);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)len);
    assert_int_equal(dna_set_fetch(set, rec, 0, len, tok, err, sizeof err), 0);
    float probs[3];
    assert_int_equal(mb_model_classify(m, tok, 1, (int)len, NULL, probs, NULL), 0);
    for (int chunked = 0; chunked < 2; chunked++) {
        assert_int_equal(run("predict --model %s --fasta %s%s", g_cls, path, chunked ? " --chunk 100" : ""), 0);
        char *save = NULL, *line = strtok_r(g_out, "\n", &save);
        for (int64_t r = 0; r <= rec; r++) line = strtok_r(NULL, "\n", &save);
        assert_non_null(line);
        char *f[16];
        assert_int_equal(split_tabs(line, f, 16), 7);
        assert_string_equal(f[0], dna_set_name(set, rec));
        double worst = 0;
        for (int k = 0; k < 3; k++) worst = fmax(worst, fabs(atof(f[4 + k]) - probs[k]));
        printf("# %s%s: predict against mb_model_classify: max |dp| %.2g\n", f[0], chunked ? " (chunks of 100)" : "",
               worst);
        assert_true(worst < 1e-4);
    }
    free(tok);
    dna_set_close(set);
    mb_model_free(m);
    mb_ctx_free(ctx);
}

/* ---- regions from a TSV ---------------------------------------------------------------- */

static void test_tsv(void **st)
{
    (void)st;
    char out[256], cp[300];
    mb_test_tmp_path(out, sizeof out, "cls_tsv.safetensors");
    remove_outputs(out);
    assert_int_equal(run("train --model %s --out %s --tsv %sregions.tsv --fasta %salpha_train.fa "
                         "--fasta %sbeta_train.fa "
                         "--fasta %sgamma_train.fa" HELDOUT " --val-tsv %sval_regions.tsv" SMALL " --steps 30 "
                         "--val-windows 8",
                         g_pre, out, CDIR, CDIR, CDIR, CDIR, CDIR), 0);
    double acc;
    const char *p = strstr(g_out, "validation accuracy ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "validation accuracy %lf", &acc), 1);
    printf("# regions TSV, 30 steps: held-out accuracy %.4f\n", acc);
    assert_true(acc > 0.5);
    /* classes in the order of first appearance */
    snprintf(cp, sizeof cp, "%s.classes", out);
    size_t n;
    char *names = mb_test_read_file(cp, &n);
    assert_non_null(names);
    assert_string_equal(names, "alpha\nbeta\ngamma\n");
    free(names);
    remove_outputs(out);
    /* --val-frac on regions: the last part of each region validates */
    assert_int_equal(run("train --model %s --out %s --tsv %sregions.tsv --fasta %salpha_train.fa "
                         "--fasta %sbeta_train.fa "
                         "--fasta %sgamma_train.fa --val-frac 0.2" SMALL " --steps 4 --val-windows 4",
                         g_pre, out, CDIR, CDIR, CDIR, CDIR), 0);
    assert_non_null(strstr(g_out, "on 12 windows"));
    remove_outputs(out);
}

/* ---- resume ---------------------------------------------------------------------------- */

static void test_resume(void **st)
{
    (void)st;
    char out[256], logp[256];
    mb_test_tmp_path(out, sizeof out, "cls_resume.safetensors");
    mb_test_tmp_path(logp, sizeof logp, "cls_resume.jsonl");
    remove_outputs(out);
    remove(logp);
    const char *common = TRAIN_CLASSES SMALL " --val-windows 4 --val-every 5";
    assert_int_equal(run("train --model %s --out %s %s --steps 10 --log %s", g_pre, out, common, logp), 0);
    assert_non_null(strstr(g_out, "classify: 10 steps"));
    /* without --resume or --force the checkpoint is kept */
    size_t n0, n1;
    void *before = mb_test_read_file(out, &n0);
    assert_non_null(before);
    assert_int_equal(run("train --model %s --out %s %s --steps 20", g_pre, out, common), 1);
    assert_one_error("exists");
    void *after = mb_test_read_file(out, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    free(after);
    /* --resume goes on from step 10 (--model not needed) */
    assert_int_equal(run("train --out %s %s --steps 20 --resume --log %s", out, common, logp), 0);
    assert_non_null(strstr(g_err, "resuming"));
    assert_non_null(strstr(g_err, "step 11/20"));
    assert_null(strstr(g_err, "step 1/20"));
    assert_non_null(strstr(g_out, "classify: 20 steps"));
    size_t n;
    char *log = mb_test_read_file(logp, &n);
    assert_non_null(log);
    assert_non_null(strstr(log, "{\"step\": 20,"));
    assert_non_null(strstr(log, "\"event\": \"start\", \"step\": 10,"));
    free(log);
    /* a finished run only validates */
    assert_int_equal(run("train --out %s %s --steps 20 --resume", out, common), 0);
    assert_non_null(strstr(g_err, "validating only"));
    assert_non_null(strstr(g_out, "validation accuracy"));
    /* other classes than the run's: refused, the checkpoint untouched */
    free(before);
    before = mb_test_read_file(out, &n0);
    assert_int_equal(run("train --out %s --class alpha=%salpha_train.fa --class gamma=%sgamma_train.fa "
                         "--class beta=%sbeta_train.fa" SMALL " --steps 30 --resume", out, CDIR, CDIR, CDIR), 1);
    assert_one_error(".classes");
    after = mb_test_read_file(out, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    remove_outputs(out);
    remove(logp);
}

/* ---- bad inputs ------------------------------------------------------------------------- */

/* train fails with one error line naming `needle`, exit 1, nothing written */
static void expect_train_fail(const char *args, const char *needle)
{
    char out[256];
    mb_test_tmp_path(out, sizeof out, "cls_bad.safetensors");
    remove_outputs(out);
    const int rc = run("train --out %s %s" SMALL " --steps 2", out, args);
    printf("# %s -> %d: %s", needle, rc, g_err);
    assert_int_equal(rc, 1);
    assert_one_error(needle);
    assert_true(access(out, F_OK) != 0);
    char p[300];
    snprintf(p, sizeof p, "%s.classes", out);
    assert_true(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s.optim", out);
    assert_true(access(p, F_OK) != 0);
}

static void test_bad_inputs(void **st)
{
    (void)st;
    char a[2048];
    const char *beta = " --class beta=" CDIR "beta_train.fa";
    snprintf(a, sizeof a, "--model %s --class alpha=%snosuch.fa%s", g_pre, CDIR, beta);
    expect_train_fail(a, "nosuch.fa");
    snprintf(a, sizeof a, "--model %s --class alpha=%salpha_train.fa,%sempty.fa%s", g_pre, CDIR, GDIR, beta);
    expect_train_fail(a, "empty.fa");
    snprintf(a, sizeof a, "--model %s --class alpha=%salpha_train.fa%s --val-class beta=%sempty.fa", g_pre, CDIR,
             beta, GDIR);
    expect_train_fail(a, "empty.fa");
    snprintf(a, sizeof a, "--model %s --class alpha=%salpha_train.fa%s --val-class delta=%salpha_heldout.fa", g_pre,
             CDIR, beta, CDIR);
    expect_train_fail(a, "alpha_heldout.fa");
    /* not a checkpoint; a checkpoint of another model kind */
    snprintf(a, sizeof a, "--model %stiny.fa --class alpha=%salpha_train.fa%s", GDIR, CDIR, beta);
    expect_train_fail(a, "tiny.fa");
    snprintf(a, sizeof a, "--model %s --class alpha=%salpha_train.fa%s", g_other, CDIR, beta);
    expect_train_fail(a, "not a mamba-dna model");
    assert_non_null(strstr(g_err, g_other));
    snprintf(a, sizeof a, "--model %s/nosuch.safetensors --class alpha=%salpha_train.fa%s", GDIR, CDIR, beta);
    expect_train_fail(a, "nosuch.safetensors");
    /* regions: outside the record, an unknown record, bad syntax, too short, and a label only once */
    const char *fa = "--fasta " CDIR "alpha_train.fa --fasta " CDIR "beta_train.fa";
    const char *bad[] = {"bad_outside.tsv:3", "bad_chrom.tsv:2", "bad_syntax.tsv:2", "bad_short.tsv:2"};
    for (int i = 0; i < 4; i++) {
        char f[64];
        snprintf(f, sizeof f, "%s", bad[i]);
        *strchr(f, ':') = '\0';
        snprintf(a, sizeof a, "--model %s --tsv %s%s %s", g_pre, CDIR, f, fa);
        expect_train_fail(a, bad[i]);
    }
    snprintf(a, sizeof a, "--model %s --tsv %sval_regions.tsv --fasta %salpha_heldout.fa --fasta %sbeta_heldout.fa "
                          "--fasta %sgamma_heldout.fa --val-tsv %sregions.tsv",
             g_pre, CDIR, CDIR, CDIR, CDIR, CDIR);
    expect_train_fail(a, "classify/regions.tsv:3"); /* its records are not in the --fasta files */
    /* sequences shorter than --seq-len: one line (no notes before it), nothing written */
    char out[256];
    mb_test_tmp_path(out, sizeof out, "cls_long.safetensors");
    remove_outputs(out);
    assert_int_equal(run("train --model %s --out %s" TRAIN_CLASSES " --val-class alpha=%salpha_heldout.fa "
                         "--seq-len 5000 --steps 1 --threads 2", g_pre, out, CDIR), 1);
    assert_one_error("alpha_train.fa: class 'alpha': no training sequence is --seq-len 5000 bases long");
    assert_true(access(out, F_OK) != 0);
    /* --resume on a language model of another kind: refused, left intact */
    size_t n0, n1;
    void *before = mb_test_read_file(g_other, &n0);
    assert_int_equal(run("train --out %s --resume --class alpha=%salpha_train.fa%s" SMALL " --steps 2", g_other,
                         CDIR, beta), 1);
    assert_one_error("not a mamba-dna model");
    void *after = mb_test_read_file(g_other, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before);
    free(after);
    /* predict: a model without a head, not a checkpoint, a bad FASTA */
    assert_int_equal(run("predict --model %s --fasta %salpha_heldout.fa", g_pre, CDIR), 1);
    assert_one_error("no classification head");
    assert_non_null(strstr(g_err, g_pre));
    assert_string_equal(g_out, "");
    assert_int_equal(run("predict --model %stiny.fa --fasta %salpha_heldout.fa", GDIR, CDIR), 1);
    assert_one_error("tiny.fa");
    assert_int_equal(run("predict --model %s --fasta %s", g_other, GDIR "tiny.fa"), 1);
    assert_one_error("not a mamba-dna model");
    if (g_trained) {
        assert_int_equal(run("predict --model %s --fasta %snoheader.fa", g_cls, GDIR), 1);
        assert_one_error("noheader.fa");
        assert_int_equal(run("predict --model %s --fasta %snosuch.fa", g_cls, CDIR), 1);
        assert_one_error("nosuch.fa");
    }
}

static void test_usage(void **st)
{
    (void)st;
    const char *try_line = "Try 'mamba-dna classify --help'.";
    assert_int_equal(run("%s", ""), 2);
    assert_non_null(strstr(g_err, try_line));
    assert_int_equal(run("frobnicate"), 2);
    assert_non_null(strstr(g_err, try_line));
    assert_int_equal(run("train --model %s --out x.safetensors --class a=" CDIR "alpha_train.fa", g_pre), 2);
    assert_non_null(strstr(g_err, "two classes"));
    assert_non_null(strstr(g_err, try_line));
    assert_int_equal(run("train --model %s --class a=x --class b=y", g_pre), 2);
    assert_non_null(strstr(g_err, "--out"));
    assert_int_equal(run("train --out x --class a=x --class b=y"), 2);
    assert_non_null(strstr(g_err, "--model"));
    assert_int_equal(run("train --model m --out x --class noequals --class b=y"), 2);
    assert_int_equal(run("train --model m --out x --tsv r.tsv"), 2);
    assert_non_null(strstr(g_err, "--fasta"));
    assert_int_equal(run("train --model m --out x --class a=x --class b=y --val-frac 0.1 --val-class a=z"), 2);
    assert_int_equal(run("train --model m --out x --class a=x --class b=y --steps zero"), 2);
    assert_non_null(strstr(g_err, "--steps"));
    assert_int_equal(run("predict --model m"), 2);
    assert_int_equal(run("predict --model m --fasta f --stride 5"), 2);
    assert_int_equal(run("predict --model m --fasta f --window 0"), 2);
    assert_int_equal(run("--help"), 0);
    assert_non_null(strstr(g_out, "--val-class"));
    assert_non_null(strstr(g_out, "--window"));
    assert_int_equal(run("train --help"), 0);
    assert_non_null(strstr(g_out, "--tsv"));
    assert_non_null(strstr(g_out, "--seq-len"));
    assert_int_equal(run("predict --help"), 0);
    assert_non_null(strstr(g_out, "--stride"));
}
#endif

int main(void)
{
#ifndef MB_DNA_BIN
    printf("mamba-dna is not built (MAMBA_APPS off or no htslib): nothing to test\n");
    return 77;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),   cmocka_unit_test(test_train), cmocka_unit_test(test_train_long_windows),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_predict), cmocka_unit_test(test_predict_min_prob),
        cmocka_unit_test(test_predict_novel),
        cmocka_unit_test(test_predict_equals_library),
        cmocka_unit_test(test_tsv),     cmocka_unit_test(test_resume),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
#endif
}
