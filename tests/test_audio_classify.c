/* mamba-audio classify through the tool: three classes of made-up clips
 * (low tones, high tones, noise bursts; 8 kHz, a quarter second) in class
 * folders. A tiny classifier trained from scratch tells held-out clips of
 * other pitches apart (chance 1/3); predict reads clips as validation does
 * (the same held-out loss); eval --metrics under it gives FID 0 for a set
 * against itself and a far larger FID for sounds of no class than for
 * held-out clips; --augment (speed, gain and shift of the training crops)
 * still learns; a classifier starts from a 'mamba-audio train' model with
 * that model's rate; resuming goes on and refuses another window; every bad
 * input is one error line with nothing written over. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio_io.h"
#include "testutil.h"

#ifdef MB_AUDIO_BIN
#define RATE 8000
#define TINY " --rate 8000 --seq-len 1024 --d-model 16 --n-layer 1 --batch 12 --lr 4e-3 --threads 2"

static char g_out[1 << 16], g_err[1 << 16];
static char g_root[256], g_cls[300];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(MB_AUDIO_BIN, g_out, sizeof g_out, g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return rc;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(mb_test_sh(cmd, NULL, 0, NULL, 0), 0);
}

/* A clip of class k: 0 a tone of 150-450 Hz, 1 a tone of 1.5-3 kHz, 2
 * white noise; amplitude and length vary with i. */
static void write_clip(const char *dir, int k, int i, uint64_t seed)
{
    char path[512], err[256];
    const int64_t n = RATE / 4 + (i % 5) * 200;
    float *x = malloc(sizeof(float) * (size_t)n);
    assert_non_null(x);
    uint64_t s = seed * 1000 + (uint64_t)(k * 100 + i);
    const double f = k == 0 ? 150 + 300 * ((i * 37) % 100) / 100.0 : 1500 + 1500 * ((i * 53) % 100) / 100.0;
    const double amp = 0.2 + 0.05 * (i % 7);
    for (int64_t t = 0; t < n; t++) {
        double v;
        if (k == 2) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            v = ((double)(s >> 11) / 9007199254740992.0) * 2 - 1;
        } else {
            v = sin(2 * MB_PI * f * (double)t / RATE);
        }
        x[t] = (float)(amp * v);
    }
    snprintf(path, sizeof path, "%s/%d.wav", dir, i);
    assert_int_equal(audio_write_wav(path, x, n, RATE, err, sizeof err), 0);
    free(x);
}

static void make_set(const char *root, int per_class, uint64_t seed)
{
    static const char *names[3] = {"low", "high", "noise"};
    for (int k = 0; k < 3; k++) {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/%s", root, names[k]);
        sh("mkdir -p '%s'", dir);
        for (int i = 0; i < per_class; i++) write_clip(dir, k, i, seed);
    }
}

static int setup(void **st)
{
    (void)st;
    mb_test_tmp_path(g_root, sizeof g_root, "aclassify");
    sh("rm -rf '%s' && mkdir -p '%s'", g_root, g_root);
    char d[300];
    snprintf(d, sizeof d, "%s/train", g_root);
    make_set(d, 16, 1);
    snprintf(d, sizeof d, "%s/valid", g_root);
    make_set(d, 6, 2);
    snprintf(g_cls, sizeof g_cls, "%s/cls.safetensors", g_root);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    sh("rm -rf '%s'", g_root);
    return 0;
}

static void expect_fail(const char *needle);

static double field(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    assert_non_null(p);
    return atof(p + strlen(key));
}

/* From scratch: held-out clips (other pitches, amplitudes and lengths)
 * classified far above chance; predict --labelled reads them to the same
 * loss; its TSV has a row per clip whose probabilities sum to 1. */
static void test_learns(void **st)
{
    (void)st;
    assert_int_equal(run("classify train" TINY " --steps 80 --val-every 40 --data %s/train --val-data %s/valid "
                         "--out %s",
                         g_root, g_root, g_cls),
                     0);
    const double acc = field(g_out, "validation accuracy "), loss = field(g_out, "), loss ");
    printf("held-out accuracy %.4f, loss %.4f (chance 1/3)\n%s", acc, loss, g_out);
    assert_true(acc >= 0.9);
    assert_non_null(strstr(g_out, "true\\pred"));
    size_t n;
    char path[400];
    snprintf(path, sizeof path, "%s.classes", g_cls);
    char *classes = mb_test_read_file(path, &n);
    assert_non_null(classes);
    assert_string_equal(classes, "high\nlow\nnoise\n"); /* the folders, in byte order */
    free(classes);
    snprintf(path, sizeof path, "%s.audio", g_cls);
    char *meta = mb_test_read_file(path, &n);
    assert_non_null(meta);
    assert_non_null(strstr(meta, "rate 8000"));
    assert_non_null(strstr(meta, "window 1024"));
    free(meta);

    assert_int_equal(run("classify predict --threads 2 --model %s --labelled %s/valid", g_cls, g_root), 0);
    const double pacc = field(g_err, "accuracy "), ploss = field(g_err, "), loss ");
    assert_true(fabs(pacc - acc) < 1e-9);
    assert_true(fabs(ploss - loss) < 1e-4); /* both printed to 4 decimals */
    assert_int_equal(mb_test_count(g_out, "\n"), 1 + 18);
    assert_non_null(strstr(g_out, "file\tclass\tpredicted\tp_high\tp_low\tp_noise\n"));
    const char *row = strchr(g_out, '\n') + 1;
    char file[300], cls[16], pred[16];
    double p[3];
    assert_int_equal(sscanf(row, "%299s %15s %15s %lf %lf %lf", file, cls, pred, &p[0], &p[1], &p[2]), 6);
    assert_true(fabs(p[0] + p[1] + p[2] - 1) < 1e-5);
    /* a classifier without its CLS.classes: the classes are numbered */
    sh("cp '%s' '%s/bare.safetensors' && cp '%s.audio' '%s/bare.safetensors.audio'", g_cls, g_root, g_cls, g_root);
    assert_int_equal(run("classify predict --threads 2 --model %s/bare.safetensors %s/valid/noise/3.wav", g_root,
                         g_root),
                     0);
    assert_non_null(strstr(g_out, "file\tpredicted\tp_class0\tp_class1\tp_class2\n"));
    /* without --labelled: a single file, no class column */
    assert_int_equal(run("classify predict --threads 2 --model %s %s/valid/noise/3.wav", g_cls, g_root), 0);
    assert_int_equal(mb_test_count(g_out, "\n"), 2);
    assert_non_null(strstr(g_out, "file\tpredicted\tp_high"));
    /* in bf16 precision: the same columns, probabilities that still sum to
     * 1, but bf16's rather than fp32's */
    char *p32 = strdup(g_out);
    assert_non_null(p32);
    assert_int_equal(run("classify predict --threads 2 --precision bf16 --model %s %s/valid/noise/3.wav", g_cls, g_root),
                     0);
    assert_non_null(strstr(g_out, "file\tpredicted\tp_high"));
    row = strchr(g_out, '\n') + 1;
    assert_int_equal(sscanf(row, "%299s %15s %lf %lf %lf", file, pred, &p[0], &p[1], &p[2]), 5);
    assert_true(fabs(p[0] + p[1] + p[2] - 1) < 1e-5);
    assert_true(strcmp(g_out, p32) != 0);
    free(p32);
    assert_int_equal(run("classify predict --precision fp16 --model %s %s/valid/noise/3.wav", g_cls, g_root), 2);
}

/* --augment: test_learns's run on perturbed crops (the clips are longer
 * than --seq-len, so a crop read faster than 1 takes samples beyond its
 * start and end) tells the held-out clips apart as well, given twice the
 * steps (80 are on the edge even unperturbed: seeds 2 and 3 stop at 2/3);
 * the log's start event has S; one step's weights show that S > 0 changes
 * the batch and S = 0 does not. */
static void test_augment(void **st)
{
    (void)st;
    char out[400], log[400];
    snprintf(out, sizeof out, "%s/aug.safetensors", g_root);
    snprintf(log, sizeof log, "%s/aug.jsonl", g_root);
    assert_int_equal(run("classify train" TINY " --steps 160 --val-every 80 --augment 0.1 --data %s/train "
                         "--val-data %s/valid --out %s --log %s",
                         g_root, g_root, out, log),
                     0);
    const double acc = field(g_out, "validation accuracy ");
    printf("--augment 0.1: held-out accuracy %.4f (chance 1/3)\n%s", acc, g_out);
    assert_true(acc >= 0.9);
    size_t n;
    char *j = mb_test_read_file(log, &n);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"event\": \"start\""));
    assert_non_null(strstr(j, "\"augment\": 0.1}"));
    free(j);

    /* the perturbation reaches the batch: one step with S = 0.1 ends on
     * other weights than one step without it; S = 0 on the same ones */
    static const char *const aug[3] = {"", " --augment 0", " --augment 0.1"};
    unsigned char *w[3];
    size_t wn[3];
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run("classify train" TINY " --steps 1 --val-every 1 --data %s/train --val-data %s/valid "
                             "--out %s --force%s",
                             g_root, g_root, out, aug[i]),
                         0);
        w[i] = mb_test_read_file(out, &wn[i]);
        assert_non_null(w[i]);
    }
    /* the tensors only: the header differs by its run_id */
    uint64_t hdr = 0;
    assert_true(wn[0] > 8);
    memcpy(&hdr, w[0], 8); /* little-endian, as this machine */
    const size_t at = 8 + (size_t)hdr;
    assert_true(at < wn[0] && wn[1] == wn[0] && wn[2] == wn[0]);
    assert_true(memcmp(w[0] + at, w[1] + at, wn[0] - at) == 0);
    assert_true(memcmp(w[0] + at, w[2] + at, wn[0] - at) != 0);
    for (int i = 0; i < 3; i++) free(w[i]);
}

/* From a 'mamba-audio train' model: its rate (8 kHz, not the default 16)
 * goes into the classifier's CLS.audio, its backbone trains on. */
static void test_from_pretrained(void **st)
{
    (void)st;
    char pre[400], cls[400], path[450];
    snprintf(pre, sizeof pre, "%s/pre.safetensors", g_root);
    snprintf(cls, sizeof cls, "%s/from-pre.safetensors", g_root);
    assert_int_equal(run("train --rate 8000 --seq-len 512 --d-model 16 --n-layer 1 --batch 4 --steps 5 --seed 7 "
                         "--threads 2 --data %s/train --out %s",
                         g_root, pre),
                     0);
    /* one step at a learning rate of 1e-9: the classifier's backbone is
     * PRETRAINED's (a new model would be drawn from the classifier's seed, 1) */
    char cls0[450];
    snprintf(cls0, sizeof cls0, "%s/from-pre0.safetensors", g_root);
    assert_int_equal(run("classify train --model %s --seq-len 1024 --batch 2 --lr 1e-9 --threads 2 --steps 1 "
                         "--data %s/train --val-data %s/valid --out %s",
                         pre, g_root, g_root, cls0),
                     0);
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_model *mp = mb_model_load(ctx, pre), *mc0 = mb_model_load(ctx, cls0);
    assert_non_null(mp);
    assert_non_null(mc0);
    assert_int_equal(mb_model_config(mc0)->n_classes, 3);
    const float *ep = mb_test_param_data(mp, "backbone.embedding.weight"),
                *ec = mb_test_param_data(mc0, "backbone.embedding.weight");
    double worst = 0;
    for (int i = 0; i < 256 * 16; i++) worst = fmax(worst, fabs((double)ep[i] - ec[i]));
    printf("classifier from PRETRAINED after one step at lr 1e-9: embedding within %.2e of PRETRAINED's\n", worst);
    assert_true(worst < 1e-6);
    mb_model_free(mp), mb_model_free(mc0);
    mb_ctx_free(ctx);
    /* the new-model flags are refused beside --model */
    assert_int_equal(run("classify train --model %s --d-model 8 --data %s/train --out %s", pre, g_root, cls), 2);
    assert_int_equal(run("classify train --model %s --seq-len 1024 --batch 12 --lr 4e-3 --threads 2 --steps 40 "
                         "--data %s/train --val-data %s/valid --out %s",
                         pre, g_root, g_root, cls),
                     0);
    printf("%s", g_out);
    assert_true(field(g_out, "validation accuracy ") > 0.5);
    snprintf(path, sizeof path, "%s.audio", cls);
    size_t n;
    char *meta = mb_test_read_file(path, &n);
    assert_non_null(meta);
    assert_non_null(strstr(meta, "rate 8000"));
    free(meta);
    /* a model without a head cannot predict */
    assert_int_equal(run("classify predict --model %s %s/valid", pre, g_root), 1);
    assert_non_null(strstr(g_err, "no classification head"));
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
}

/* --resume continues the run's checkpoint; another window is refused. */
static void test_resume(void **st)
{
    (void)st;
    char out[400];
    snprintf(out, sizeof out, "%s/res.safetensors", g_root);
    assert_int_equal(run("classify train" TINY " --steps 10 --save-every 5 --data %s/train --val-data %s/valid "
                         "--out %s",
                         g_root, g_root, out),
                     0);
    assert_int_equal(run("classify train" TINY " --steps 14 --resume --data %s/train --val-data %s/valid --out %s",
                         g_root, g_root, out),
                     0);
    assert_non_null(strstr(g_out, "classify: 14 steps"));
    assert_non_null(strstr(g_err, "resuming"));
    assert_non_null(strstr(g_err, "ignored")); /* TINY's model flags */
    assert_int_equal(run("classify train --seq-len 512 --threads 2 --steps 20 --resume --data %s/train --out %s",
                         g_root, out),
                     1);
    assert_non_null(strstr(g_err, "windows of 1024"));
}

/* eval --metrics under the classifier of test_learns: a set against itself
 * has FID 0 and no different bin; held-out clips of the classes are near
 * the training clips, hum and clicks (no class's sound) far; the JSON has
 * the printed figures. */
static void test_metrics(void **st)
{
    (void)st;
    char json[400], bad[400];
    snprintf(json, sizeof json, "%s/m.json", g_root);
    assert_int_equal(run("eval --metrics --threads 2 --classifier %s --generated %s/valid --reference %s/valid "
                         "--ndb-bins 5 --json %s",
                         g_cls, g_root, g_root, json),
                     0);
    printf("%s", g_out);
    assert_true(fabs(field(g_out, "FID ")) < 1e-6);
    assert_true(field(g_out, "NDB ") == 0);
    assert_true(field(g_out, "IS ") > 1.2); /* three balanced classes told apart (one class, or none, is 1) */
    size_t n;
    char *j = mb_test_read_file(json, &n);
    assert_non_null(j);
    assert_true(fabs(field(j, "\"is\": ") - field(g_out, "IS ")) < 1e-4);
    assert_non_null(strstr(j, "\"predicted\": {\"high\": 6, \"low\": 6, \"noise\": 6}"));
    free(j);
    assert_int_equal(run("eval --metrics --threads 2 --classifier %s --generated %s/valid --reference %s/train "
                         "--ndb-bins 5",
                         g_cls, g_root, g_root),
                     0);
    const double fid_real = field(g_out, "FID ");
    /* the reference's view saved, then read instead of the clips: the same
     * figures, bit for bit (the JSONs' %.9g) */
    char saved[400], j1[400], j2[400];
    snprintf(saved, sizeof saved, "%s/ref.tsv", g_root);
    snprintf(j1, sizeof j1, "%s/j1.json", g_root);
    snprintf(j2, sizeof j2, "%s/j2.json", g_root);
    assert_int_equal(run("eval --metrics --threads 2 --classifier %s --generated %s/valid --reference %s/train "
                         "--ndb-bins 5 --save-reference %s --json %s",
                         g_cls, g_root, g_root, saved, j1),
                     0);
    assert_int_equal(run("eval --metrics --threads 2 --classifier %s --generated %s/valid --reference %s "
                         "--ndb-bins 5 --json %s",
                         g_cls, g_root, saved, j2),
                     0);
    {
        size_t n1, n2;
        char *a = mb_test_read_file(j1, &n1), *b = mb_test_read_file(j2, &n2);
        assert_non_null(a);
        assert_non_null(b);
        /* everything up to the "reference" path */
        const char *ea = strstr(a, "\"reference\""), *eb = strstr(b, "\"reference\"");
        assert_non_null(ea);
        assert_non_null(eb);
        printf("saved reference: %.*s\n", (int)(ea - a), a);
        assert_int_equal(ea - a, eb - b);
        assert_memory_equal(a, b, (size_t)(ea - a));
        assert_true(field(a, "\"n_reference\": ") == field(b, "\"n_reference\": "));
        free(a), free(b);
    }
    /* another classifier's view (its hash changed), a view cut short, a TSV
     * that is not one, a name --reference would not read back */
    sh("(sed '2s/classifier [0-9a-f]*/classifier 0123456789abcdef/' '%s' > '%s/other.tsv')", saved, g_root);
    assert_int_equal(run("eval --metrics --classifier %s --generated %s/valid --reference %s/other.tsv --ndb-bins 5",
                         g_cls, g_root, g_root),
                     1);
    expect_fail("another classifier");
    /* a classifier file one byte apart (its run id): the hash tells it */
    char cls2[400];
    snprintf(cls2, sizeof cls2, "%s/cls2.safetensors", g_root);
    sh("(LC_ALL=C sed -E 's/(\"run_id\":\")[1-9a-f]/\\10/;t;s/(\"run_id\":\")0/\\11/' '%s' > '%s' && "
       "cp '%s.classes' '%s.classes' && cp '%s.audio' '%s.audio' && ! cmp -s '%s' '%s')",
       g_cls, cls2, g_cls, cls2, g_cls, cls2, g_cls, cls2);
    assert_int_equal(run("eval --metrics --classifier %s --generated %s/valid --reference %s --ndb-bins 5", cls2,
                         g_root, saved),
                     1);
    expect_fail("another classifier");
    sh("(head -n 5 '%s' > '%s/cut.tsv')", saved, g_root);
    assert_int_equal(run("eval --metrics --classifier %s --generated %s/valid --reference %s/cut.tsv --ndb-bins 5",
                         g_cls, g_root, g_root),
                     1);
    expect_fail("cut short");
    sh("(sed '5s/\t[^\t]*$/\tx/' '%s' > '%s/nan.tsv')", saved, g_root);
    assert_int_equal(run("eval --metrics --classifier %s --generated %s/valid --reference %s/nan.tsv --ndb-bins 5",
                         g_cls, g_root, g_root),
                     1);
    expect_fail("not a finite number");
    sh("(printf 'file\tp\n' > '%s/pred.tsv')", g_root);
    assert_int_equal(run("eval --metrics --classifier %s --generated %s/valid --reference %s/pred.tsv --ndb-bins 5",
                         g_cls, g_root, g_root),
                     1);
    expect_fail("not a reference set");
    assert_int_equal(run("eval --metrics --classifier %s --generated %s/valid --reference %s/train --save-reference "
                         "%s/ref.txt",
                         g_cls, g_root, g_root, g_root),
                     2);
    assert_int_equal(run("eval --metrics --classifier %s --generated %s/valid --reference %s --save-reference "
                         "%s/again.tsv",
                         g_cls, g_root, saved, g_root),
                     2);
    /* 50 Hz hum and clicks: sounds of no class */
    snprintf(bad, sizeof bad, "%s/hum", g_root);
    sh("mkdir -p '%s'", bad);
    for (int i = 0; i < 8; i++) {
        char path[500], err[256];
        float x[3000];
        for (int t = 0; t < 3000; t++)
            x[t] = i % 2 ? (float)(0.4 * sin(2 * MB_PI * 50 * t / RATE)) : (t % (200 + 50 * i) == 0 ? 0.9f : 0.0f);
        snprintf(path, sizeof path, "%s/%d.wav", bad, i);
        assert_int_equal(audio_write_wav(path, x, 3000, RATE, err, sizeof err), 0);
    }
    assert_int_equal(run("eval --metrics --threads 2 --classifier %s --generated %s --reference %s/train "
                         "--ndb-bins 5",
                         g_cls, bad, g_root),
                     0);
    printf("held-out clips FID %.4f; hum and clicks: %s", fid_real, g_out);
    assert_true(field(g_out, "FID ") > 3 * fid_real);
    /* usage and input errors */
    assert_int_equal(run("eval --metrics --classifier %s --generated %s", g_cls, bad), 2);
    assert_int_equal(run("eval --metrics --model %s --classifier %s --generated %s --reference %s", g_cls, g_cls, bad,
                         bad),
                     2);
    assert_int_equal(run("eval --classifier %s --model m --data d", g_cls), 2);
    assert_int_equal(run("eval --metrics --classifier %s --generated %s --reference %s/valid/low", g_cls, bad, g_root),
                     1);
    expect_fail("fewer than NDB's 50 bins");
}

static void expect_fail(const char *needle)
{
    printf("rc 1: %s", g_err);
    assert_int_equal(mb_test_count(g_err, "mamba-audio: error: "), 1);
    assert_non_null(strstr(g_err, needle));
}

static void test_bad_inputs(void **st)
{
    (void)st;
    char d[400], out[400];
    snprintf(out, sizeof out, "%s/bad.safetensors", g_root);
    /* files but no class folders */
    snprintf(d, sizeof d, "%s/flat", g_root);
    sh("mkdir -p '%s' && cp '%s/train/low/1.wav' '%s/train/low/2.wav' '%s/'", d, g_root, g_root, d);
    assert_int_equal(run("classify train" TINY " --steps 1 --data %s --out %s", d, out), 1);
    expect_fail("no class folders");
    /* one class */
    snprintf(d, sizeof d, "%s/one", g_root);
    sh("mkdir -p '%s/a' && cp '%s/train/low/1.wav' '%s/a/'", d, g_root, d);
    assert_int_equal(run("classify train" TINY " --steps 1 --data %s --out %s", d, out), 1);
    expect_fail("two classes or more");
    /* a held-out class the training folder does not have */
    snprintf(d, sizeof d, "%s/other", g_root);
    sh("mkdir -p '%s/whistle' && cp '%s/train/low/1.wav' '%s/whistle/'", d, g_root, d);
    assert_int_equal(run("classify train" TINY " --steps 1 --data %s/train --val-data %s --out %s", g_root, d, out), 1);
    expect_fail("class 'whistle' is not one of the classifier's: high, low, noise");
    assert_true(access(out, F_OK) != 0);
    assert_int_equal(run("classify predict --model %s --labelled %s", g_cls, d), 1);
    expect_fail("'whistle'");
    /* an existing classifier is not overwritten without --resume or --force */
    size_t n0, n1;
    void *before = mb_test_read_file(g_cls, &n0);
    assert_non_null(before);
    assert_int_equal(run("classify train" TINY " --steps 1 --data %s/train --out %s", g_root, g_cls), 1);
    expect_fail("exists");
    void *after = mb_test_read_file(g_cls, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before), free(after);
    /* an unwritable output fails before any work */
    assert_int_equal(run("classify train" TINY " --steps 1 --data %s/train --out /nonexistent-dir/c.safetensors", g_root), 1);
    expect_fail("/nonexistent-dir/c.safetensors");
    /* a --model that is no model: its one line, before any clip is read */
    assert_int_equal(run("classify train --model /dev/null --steps 1 --data %s/train --out %s", g_root, out), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    expect_fail("/dev/null");
    /* a window in the classifier's sidecar that its pooling cannot take:
     * named as the sidecar's, not as a --seq-len nobody gave */
    char cp[400];
    snprintf(cp, sizeof cp, "%s/win7.safetensors", g_root);
    sh("(cp '%s' '%s' && cp '%s.classes' '%s.classes' && printf 'rate 16000\\nquant mulaw\\nwindow 7\\n' > '%s.audio')",
       g_cls, cp, g_cls, cp, cp);
    assert_int_equal(run("classify predict --model %s %s/valid", cp, g_root), 1);
    expect_fail("win7.safetensors.audio: window 7 is not a multiple");
    /* a missing model; a path that is not there */
    assert_int_equal(run("classify predict --model %s/none.safetensors %s/valid", g_root, g_root), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    assert_int_equal(run("classify predict --model %s %s/nothing-here", g_cls, g_root), 1);
    expect_fail("nothing-here");
}

static void test_usage(void **st)
{
    (void)st;
    assert_int_equal(run("classify"), 2);
    assert_int_equal(run("classify frobnicate"), 2);
    assert_int_equal(run("classify train --out x"), 2);
    assert_int_equal(run("classify train --data d"), 2);
    assert_int_equal(run("classify train --data d --out x --seq-len 1000"), 2); /* not a multiple of 16 */
    assert_non_null(strstr(g_err, "multiple"));
    assert_int_equal(run("classify train --data d --out x --val-data v --val-frac 0.2"), 2);
    /* --augment beyond 0.3, below 0 or not a number: one error line */
    static const char *const bad_aug[] = {"0.5", "-0.1", "x"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(run("classify train --data d --out x --augment %s", bad_aug[i]), 2);
        assert_int_equal(mb_test_count(g_err, "mamba-audio: error: --augment"), 1);
    }
    assert_int_equal(run("classify predict --model m"), 2);
    assert_int_equal(run("classify predict x"), 2);
    assert_int_equal(run("classify train --help"), 0);
    assert_non_null(strstr(g_out, "--val-data"));
    assert_non_null(strstr(g_out, "--augment S"));
    assert_int_equal(run("classify predict --help"), 0);
    assert_non_null(strstr(g_out, "--labelled"));
    assert_int_equal(run("classify --help"), 0);
}
#endif

int main(void)
{
#ifndef MB_AUDIO_BIN
    printf("mamba-audio is not built (MAMBA_APPS off, or no libsndfile/libsamplerate): nothing to test\n");
    return 77;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_augment),
        cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_from_pretrained),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
#endif
}
