/* mamba-audio through the tool itself: a tiny CPU model trained on the
 * bundled spoken digits goes below the unigram entropy of the held-out
 * clips (and far below the 8 bits of a uniform guess); generate writes WAVs
 * of the asked length at the model's rate; eval agrees with train's
 * numbers; a run's checkpoint sets sit beside the model and its .audio, and
 * --resume skips a set whose optimizer state is of another save; every bad
 * input is one error line and exit 1 with nothing written or overwritten;
 * usage errors exit 2. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audio_io.h"
#include "audio_quant.h"
#include "testutil.h"

#ifdef MB_AUDIO_BIN
#define DATA MB_DATA_DIR "/audio/"
#define SMALL " --d-model 32 --n-layer 1 --seq-len 512 --batch 4 --lr 4e-3 --threads 2"

static char g_out[1 << 16], g_err[1 << 16];
static char g_model[256];

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(MB_AUDIO_BIN, g_out, sizeof g_out, g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return rc;
}

static void rm_model(const char *path)
{
    char p[600];
    remove(path);
    snprintf(p, sizeof p, "%s.optim", path), remove(p);
    snprintf(p, sizeof p, "%s.audio", path), remove(p);
    snprintf(p, sizeof p, "rm -f -- '%s'.step-*", path); /* the checkpoint sets */
    assert_int_equal(mb_test_sh(p, NULL, 0, NULL, 0), 0);
}

/* the model the other cases use: trained once */
static int setup(void **st)
{
    (void)st;
    mb_test_tmp_path(g_model, sizeof g_model, "digits.safetensors");
    rm_model(g_model);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    rm_model(g_model);
    return 0;
}

static void test_learns(void **st)
{
    (void)st;
    assert_int_equal(run("train" SMALL " --steps 120 --val-every 120 --data %sdigits --out %s", DATA, g_model), 0);
    double val, uni;
    const char *p = strstr(g_out, "validation ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "validation %lf bits/sample (unigram baseline %lf", &val, &uni), 2);
    printf("digits: validation %.4f bits/sample, unigram %.4f\n", val, uni);
    assert_true(val < 8.0 - 1.0); /* well below a uniform guess */
    assert_true(val < uni);       /* and below the held-out clips' unigram entropy */
    /* eval on the same folder runs and reports a sane number */
    assert_int_equal(run("eval --seq-len 512 --model %s --data %sdigits", g_model, DATA), 0);
    double nll, nll16;
    p = strstr(g_out, "bits/sample");
    assert_non_null(p);
    assert_int_equal(sscanf(g_out, "%*[^0-9]%lf", &nll), 1);
    /* and in bf16: within bf16's rounding of fp32's figure (printed to 4
     * decimals, so it may print the same) */
    assert_int_equal(run("eval --precision bf16 --seq-len 512 --model %s --data %sdigits", g_model, DATA), 0);
    assert_int_equal(sscanf(g_out, "%*[^0-9]%lf", &nll16), 1);
    printf("eval: %.6f bits/sample fp32, %.6f bf16\n", nll, nll16);
    assert_true(fabs(nll - nll16) < 0.01);
}

/* --val-frac 0 (every file trains, as scripts/gpu_piano.sh runs): the run
 * says there is no validation rather than printing nan, and saves */
static void test_no_validation(void **st)
{
    (void)st;
    char m[256];
    mb_test_tmp_path(m, sizeof m, "noval.safetensors");
    rm_model(m);
    assert_int_equal(run("train" SMALL " --steps 2 --val-frac 0 --data %sdigits --out %s", DATA, m), 0);
    assert_null(strstr(g_out, "nan"));
    assert_null(strstr(g_err, "nan"));
    assert_non_null(strstr(g_out, "no validation"));
    assert_non_null(strstr(g_err, "no held-out files"));
    FILE *f = fopen(m, "rb");
    assert_non_null(f);
    fclose(f);
    rm_model(m);
}

/* The files of a run: the model (the best validation), its .audio, the
 * newest two sets; a set whose optimizer state is an older save's is
 * skipped, with a warning, for the one before it. */
static void test_checkpoints(void **st)
{
    (void)st;
    char dir[64], m[128], p[160], q[160], files[1024];
    mb_test_mkdtemp(dir, sizeof dir, "audio_ckpt");
    snprintf(m, sizeof m, "%s/m.st", dir);
    const char *tiny = "train --rate 1000 --d-model 16 --n-layer 1 --seq-len 256 --batch 2 --threads 1 "
                       "--val-every 2 --val-windows 2 --save-every 2";
    assert_int_equal(run("%s --steps 4 --data %sdigits --out %s", tiny, DATA, m), 0);
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "m.st m.st.audio m.st.step-2 m.st.step-2.json m.st.step-2.optim m.st.step-4 "
                               "m.st.step-4.json m.st.step-4.optim");
    snprintf(p, sizeof p, "%s.step-2.optim", m);
    snprintf(q, sizeof q, "%s.step-4.optim", m);
    size_t n;
    void *old = mb_test_read_file(p, &n);
    assert_non_null(old);
    FILE *f = fopen(q, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(old, 1, n, f), n);
    fclose(f);
    free(old);
    assert_int_equal(run("%s --steps 6 --resume --data %sdigits --out %s", tiny, DATA, m), 0);
    assert_non_null(strstr(g_err, "mamba-audio: warning: checkpoint of step 4 skipped: "));
    assert_non_null(strstr(g_err, "optimizer state saved with other weights than the model's"));
    assert_non_null(strstr(g_err, "m.st.step-2 (step 2)"));
    assert_non_null(strstr(g_out, "train: 6 steps"));
    mb_test_listing(dir, files, sizeof files);
    assert_string_equal(files, "m.st m.st.audio m.st.step-4 m.st.step-4.json m.st.step-4.optim m.st.step-6 "
                               "m.st.step-6.json m.st.step-6.optim");
    snprintf(p, sizeof p, "%s/x.wav", dir);
    assert_int_equal(run("generate --model %s --seconds 0.01 --out %s", m, p), 0);
    /* a checkpoint has no m.st.step-6.audio: it is read at the run's rate
     * (m.st.audio), not at the 16 kHz of a bare model */
    snprintf(q, sizeof q, "%s.step-6", m);
    assert_int_equal(run("generate --model %s --seconds 0.1 --out %s", q, p), 0);
    float *x = NULL;
    int64_t nx = 0;
    audio_src_info info;
    char err[256];
    assert_int_equal(audio_read(p, 1000, &x, &nx, &info, err, sizeof err), 0);
    assert_int_equal(info.rate, 1000);
    assert_int_equal(nx, 100);
    free(x);
    mb_test_rmtree(dir);
}

static void test_generate(void **st)
{
    (void)st;
    char out[256], c1[300], c2[300];
    mb_test_tmp_path(out, sizeof out, "gen.wav");
    snprintf(c1, sizeof c1, "%.*s_1.wav", (int)strlen(out) - 4, out);
    snprintf(c2, sizeof c2, "%.*s_2.wav", (int)strlen(out) - 4, out);
    assert_int_equal(run("generate --model %s --n 2 --seconds 0.05 --top-p 0.9 --seed 3 --out %s", g_model, out), 0);
    for (int i = 0; i < 2; i++) {
        float *x = NULL;
        int64_t n = 0;
        audio_src_info info;
        char err[256];
        assert_int_equal(audio_read(i ? c2 : c1, 16000, &x, &n, &info, err, sizeof err), 0);
        assert_int_equal(n, 800); /* 0.05 s at 16 kHz */
        assert_int_equal(info.rate, 16000);
        assert_int_equal(info.channels, 1);
        free(x);
    }
    /* the same seed makes the same clips (the run is the same draws),
     * another seed others; the clips of a batch differ (a high temperature,
     * so that the draws are not all the most likely class) */
    const char *hot = "generate --model %s --n 2 --seconds 0.05 --temperature 2 --seed %d --out %s";
    size_t l1 = 0, l2 = 0, l3 = 0;
    assert_int_equal(run(hot, g_model, 3, out), 0);
    char *a1 = mb_test_read_file(c1, &l1), *a2 = mb_test_read_file(c2, &l2);
    assert_true(a1 && a2 && l1 == l2);
    assert_true(memcmp(a1, a2, l1) != 0);
    assert_int_equal(run(hot, g_model, 3, out), 0);
    char *b1 = mb_test_read_file(c1, &l3);
    assert_true(b1 && l3 == l1 && memcmp(a1, b1, l1) == 0);
    free(b1);
    assert_int_equal(run(hot, g_model, 4, out), 0);
    b1 = mb_test_read_file(c1, &l3);
    assert_true(b1 && l3 == l1 && memcmp(a1, b1, l1) != 0);
    free(b1);
    /* in bf16 precision (the steps round as the forward does): the same
     * seed, the same clips and scores again; the scores are bf16's, not
     * fp32's (the log-likelihoods' digits move) */
    char tsv[300];
    snprintf(tsv, sizeof tsv, "%.*s.tsv", (int)strlen(out) - 4, out);
    assert_int_equal(run(hot, g_model, 3, out), 0);
    char *s32 = mb_test_read_file(tsv, &l3);
    assert_non_null(s32);
    const char *hot16 = "generate --model %s --n 2 --seconds 0.05 --temperature 2 --seed %d --precision bf16 --out %s";
    assert_int_equal(run(hot16, g_model, 3, out), 0);
    char *h1 = mb_test_read_file(c1, &l3), *s16 = mb_test_read_file(tsv, &l2);
    assert_true(h1 && l3 == l1 && s16);
    assert_true(strcmp(s16, s32) != 0);
    assert_int_equal(run(hot16, g_model, 3, out), 0);
    char *h2 = mb_test_read_file(c1, &l3), *s16b = mb_test_read_file(tsv, &l2);
    assert_true(h2 && l3 == l1 && memcmp(h1, h2, l1) == 0 && s16b && strcmp(s16, s16b) == 0);
    assert_int_equal(run("generate --model %s --precision fp16 --out %s", g_model, out), 2);
    free(a1), free(a2), free(h1), free(h2), free(s32), free(s16), free(s16b);
    /* a prompt: the file holds the prompt and the continuation */
    assert_int_equal(run("generate --model %s --seconds 0.01 --prompt %sfixtures/good/sine440_44k_stereo.wav --out %s",
                         g_model, DATA, out), 0);
    float *x = NULL;
    int64_t n = 0;
    char err[256];
    assert_int_equal(audio_read(out, 16000, &x, &n, NULL, err, sizeof err), 0);
    assert_true(n >= 4000 + 160 - 40 && n <= 4000 + 160 + 40); /* 0.25 s of prompt + 0.01 s */
    free(x);
    remove(out), remove(c1), remove(c2);
    snprintf(c1, sizeof c1, "%.*s.tsv", (int)strlen(out) - 4, out);
    remove(c1);
}

/* The log-likelihoods in the scores TSV are the model's: each kept clip
 * read back from its WAV (decoded and quantized again: the same classes)
 * and scored by the parallel forward over the whole clip, its first input
 * silence. --keep-band writes the clips of the middle ranks, numbered in
 * draw order; the TSV lists every draw with its rank. */
static void test_generate_scores(void **st)
{
    (void)st;
    char out[256], tsv[256], path[300];
    mb_test_tmp_path(out, sizeof out, "scored.wav");
    mb_test_tmp_path(tsv, sizeof tsv, "scores.tsv");
    assert_int_equal(run("generate --model %s --n 5 --seconds 0.05 --temperature 1.5 --keep-band 0.2,0.8 --seed 7 "
                         "--scores %s --out %s",
                         g_model, tsv, out),
                     0);
    assert_non_null(strstr(g_out, "kept the 3 clips of likelihood ranks 2..4 of 5"));
    size_t len;
    char *text = mb_test_read_file(tsv, &len);
    assert_non_null(text);
    assert_int_equal(mb_test_count(text, "\n"), 6);
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_model *m = mb_model_load(ctx, g_model);
    assert_non_null(m);
    const char *line = strchr(text, '\n') + 1;
    int kept = 0, ranks = 0, rk[5];
    double lls[5];
    for (int r = 0; r < 5; r++, line = strchr(line, '\n') + 1) {
        char file[300];
        int clip, rank, keep;
        double ll, bits;
        assert_int_equal(sscanf(line, "%299s %d %lf %lf %d %d", file, &clip, &ll, &bits, &rank, &keep), 6);
        assert_int_equal(clip, r + 1);
        ranks |= 1 << rank;
        rk[r] = rank, lls[r] = ll;
        assert_int_equal(keep, rank >= 2 && rank <= 4);
        assert_true(fabs(bits - (-ll / (800 * log(2.0)))) < 1e-5);
        if (!keep) {
            assert_string_equal(file, "-");
            continue;
        }
        snprintf(path, sizeof path, "%.*s_%d.wav", (int)strlen(out) - 4, out, ++kept);
        assert_string_equal(file, path);
        float *x = NULL;
        int64_t n = 0;
        char err[256];
        assert_int_equal(audio_read(path, 16000, &x, &n, NULL, err, sizeof err), 0);
        assert_int_equal(n, 800);
        uint8_t c[800];
        audio_encode_buf(AUDIO_Q_MULAW, x, n, c);
        int32_t tok[800], tgt[800];
        for (int t = 0; t < 800; t++) {
            tok[t] = t ? c[t - 1] : AUDIO_SILENCE;
            tgt[t] = c[t];
        }
        mb_loss_stats ls = {0};
        assert_int_equal(mb_model_forward(m, tok, 1, 800, tgt, NULL, &ls), 0);
        printf("clip %d: loglik %.6f in the TSV, %.6f by the parallel forward\n", clip, ll, -ls.loss_sum);
        assert_int_equal(ls.count, 800);
        assert_true(fabs(ll + ls.loss_sum) < 1e-6 * fabs(ll) + 1e-3);
        free(x);
        remove(path);
    }
    assert_int_equal(kept, 3);
    assert_int_equal(ranks, 0x3e); /* ranks 1..5, each once */
    for (int i = 0; i < 5; i++) /* rank 1 the least likely */
        for (int j = 0; j < 5; j++)
            if (lls[i] < lls[j]) assert_true(rk[i] < rk[j]);
    free(text);
    mb_model_free(m);
    mb_ctx_free(ctx);
    remove(tsv);
    /* the scores would overwrite the clip */
    assert_int_equal(run("generate --model %s --seconds 0.01 --out %s --scores %s", g_model, tsv, tsv), 1);
    assert_non_null(strstr(g_err, "the same file"));
    assert_true(access(tsv, F_OK) != 0);
    /* a bad band */
    assert_int_equal(run("generate --model %s --keep-band 0.5,0.5 --out %s", g_model, out), 2);
    assert_int_equal(run("generate --model %s --keep-band 0.1 --out %s", g_model, out), 2);
}

static void expect_fail(const char *needle)
{
    printf("rc 1: %s", g_err);
    assert_true(strstr(g_err, "mamba-audio: error: ") != NULL);
    assert_non_null(strstr(g_err, needle));
}

static void test_bad_inputs(void **st)
{
    (void)st;
    char out[256], d[256];
    mb_test_tmp_path(out, sizeof out, "bad.safetensors");
    rm_model(out);
    /* a folder of files that are not audio or are cut short: a warning each, then the error */
    assert_int_equal(run("train" SMALL " --steps 1 --data %sfixtures/bad --out %s", DATA, out), 1);
    expect_fail("no readable audio");
    assert_non_null(strstr(g_err, "notaudio.wav"));
    assert_non_null(strstr(g_err, "truncated.wav"));
    assert_true(access(out, F_OK) != 0);
    /* an empty folder */
    mb_test_tmp_path(d, sizeof d, "emptydir");
    assert_int_equal(mkdir(d, 0700) == 0 || access(d, F_OK) == 0, 1);
    assert_int_equal(run("train" SMALL " --steps 1 --data %s --out %s", d, out), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    expect_fail("no readable audio");
    rmdir(d);
    /* an unwritable output: fails before any work */
    assert_int_equal(run("train" SMALL " --steps 1 --data %sdigits --out /nonexistent-dir/m.safetensors", DATA), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    expect_fail("/nonexistent-dir/m.safetensors");
    assert_int_equal(run("generate --model %s --out /nonexistent-dir/x.wav", g_model), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    /* a DNA (language model) checkpoint given to mamba-audio, untouched */
    char lm[256];
    mb_test_tmp_path(lm, sizeof lm, "dna.safetensors");
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 16, cfg.n_layer = 1, cfg.vocab_size = 12, cfg.pad_vocab_size_multiple = 16;
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    assert_non_null(m);
    assert_int_equal(mb_model_save(m, lm), 0);
    mb_model_free(m);
    mb_ctx_free(ctx);
    size_t n0, n1;
    void *before = mb_test_read_file(lm, &n0);
    assert_int_equal(run("generate --model %s --out %s.wav", lm, out), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    expect_fail("not a mamba-audio model");
    assert_int_equal(run("train" SMALL " --steps 1 --resume --data %sdigits --out %s", DATA, lm), 1);
    expect_fail("not a mamba-audio model");
    void *after = mb_test_read_file(lm, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0);
    free(before), free(after);
    remove(lm);
    /* an existing model is not overwritten without --resume or --force */
    assert_int_equal(run("train" SMALL " --steps 1 --data %sdigits --out %s", DATA, g_model), 1);
    expect_fail("exists");
    /* a prompt that is not audio */
    assert_int_equal(run("generate --model %s --prompt %sfixtures/bad/notaudio.wav --out %s.wav", g_model, DATA, out), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    expect_fail("notaudio.wav");
}

static void test_usage(void **st)
{
    (void)st;
    assert_int_equal(run("train --steps 2"), 2);
    assert_int_equal(run("train --data x --seq-len 1000 --pool 4,4"), 2); /* not a multiple of 16 */
    assert_non_null(strstr(g_err, "multiple"));
    assert_int_equal(run("generate --model m"), 2);
    assert_int_equal(run("generate --model m --out x.wav --top-p 2"), 2);
    assert_int_equal(run("frobnicate"), 2);
    assert_int_equal(run("train --help"), 0);
    assert_non_null(strstr(g_out, "--pool"));
    assert_int_equal(run("--help"), 0);
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
        cmocka_unit_test(test_no_validation),
        cmocka_unit_test(test_generate),
        cmocka_unit_test(test_generate_scores),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
#endif
}
