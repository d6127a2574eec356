/* mamba-dna pretrain, through the tool itself: a tiny CPU pretrain learns a
 * synthetic genome (data/genomics/markov.fa, an order-3 Markov chain of 0.53
 * bits/base) well below 2 bits/base and below its order-0 baseline; a run
 * stopped and resumed equals an uninterrupted one; every bad input is one
 * error line and exit 1 with nothing written; usage errors exit 2. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dna_cmd.h"
#include "testutil.h"
#include "train/safetensors.h"

#ifdef MB_DNA_BIN
#define DATA MB_DATA_DIR "/genomics/"
#define SMALL " --d-model 32 --n-layer 2 --seq-len 128 --batch 8 --lr 5e-3 --threads 2"

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

/* a model and what a run keeps beside it: its checkpoint sets, an earlier
 * version's optimizer state */
static void remove_run(const char *model)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -f -- '%s' '%s'.optim '%s'.step-*", model, model, model);
    assert_int_equal(mb_test_sh(cmd, NULL, 0, NULL, 0), 0);
}

/* "validation X bits/base (order-0 Y, ..." from the closing line */
static void final_bpb(const char *out, double *val, double *order0)
{
    const char *p = strstr(out, "validation ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "validation %lf bits/base (order-0 %lf", val, order0), 2);
}

static void test_learns(void **st)
{
    (void)st;
    char model[256], logp[256];
    mb_test_tmp_path(model, sizeof model, "learn.safetensors");
    mb_test_tmp_path(logp, sizeof logp, "learn.jsonl");
    remove(model), remove(logp);
    assert_int_equal(run("pretrain" SMALL " --steps 100 --val-frac 0.1 --out %s --log %s %smarkov.fa",
                         model, logp, DATA), 0);
    double v, o0;
    final_bpb(g_out, &v, &o0);
    printf("markov.fa: validation %.4f bits/base, order-0 baseline %.4f\n", v, o0);
    assert_true(v < 1.2);      /* well below the 2 bits of a uniform guess */
    /* short windows keep every activation: no recompute line (it said
     * "each layer recomputed" here once) */
    assert_null(strstr(g_err, "recompute"));
    assert_true(v < o0 - 0.5); /* and far below the base composition */
    assert_true(access(model, F_OK) == 0);
    size_t n;
    char *log = mb_test_read_file(logp, &n);
    assert_non_null(log);
    assert_non_null(strstr(log, "\"val_bpb\""));
    assert_non_null(strstr(log, "\"baseline_order0_bpb\""));
    assert_non_null(strstr(log, "\"event\": \"end\""));
    free(log);
    /* a second run into the same --out must not clobber it */
    assert_int_equal(run("pretrain" SMALL " --steps 5 --out %s %smarkov.fa", model, DATA), 1);
    assert_non_null(strstr(g_err, "exists"));
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    remove_run(model), remove(logp);
}

static double field_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    assert_non_null(p);
    return atof(p + strlen(key));
}

static void test_resume_equals_whole(void **st)
{
    (void)st;
    char a[256], b[256];
    mb_test_tmp_path(a, sizeof a, "whole.safetensors");
    mb_test_tmp_path(b, sizeof b, "sliced.safetensors");
    remove_run(a), remove_run(b);
    const char *common = "pretrain" SMALL " --threads 1 --steps 16 --val-every 16 --val-tokens 2048";
    assert_int_equal(run("%s --out %s %smarkov.fa", common, a, DATA), 0);
    double whole, o0;
    final_bpb(g_out, &whole, &o0);
    assert_int_equal(run("%s --stop-after 7 --out %s %smarkov.fa", common, b, DATA), 0);
    assert_non_null(strstr(g_err, "stopped at step 7"));
    assert_int_equal(run("%s --resume --out %s %smarkov.fa", common, b, DATA), 0);
    double sliced;
    final_bpb(g_out, &sliced, &o0);
    printf("16 steps whole: %.6f bits/base; 7 + 9 resumed: %.6f\n", whole, sliced);
    assert_true(fabs(whole - sliced) < 1e-4);
    /* the step counter came back: a finished run has nothing left to do */
    assert_int_equal(run("%s --resume --out %s %smarkov.fa", common, b, DATA), 0);
    assert_non_null(strstr(g_err, "nothing to do"));
    (void)field_after;
    remove_run(a), remove_run(b);
}

/* one error line naming the file, exit 1, no checkpoint written */
static void expect_fail(const char *args, const char *needle)
{
    char model[256];
    mb_test_tmp_path(model, sizeof model, "bad.safetensors");
    remove(model);
    int rc = run("pretrain" SMALL " --steps 2 --out %s %s", model, args);
    printf("%s -> rc %d: %s", args, rc, g_err);
    assert_int_equal(rc, 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    assert_true(strncmp(g_err, "mamba-dna: error: ", 18) == 0);
    assert_non_null(strstr(g_err, needle));
    assert_true(access(model, F_OK) != 0);
}

static void test_bad_inputs(void **st)
{
    (void)st;
    expect_fail(DATA "no-such-file.fa", "no-such-file.fa");
    expect_fail(DATA "empty.fa", "empty.fa");
    expect_fail(DATA "noheader.fa", "noheader.fa");
    expect_fail(DATA "truncated.fa.gz", "truncated.fa.gz");
    expect_fail(DATA "corrupt.bam", "corrupt.bam");
    expect_fail("--val-bed " DATA "badchrom.bed " DATA "tiny.fa", "badchrom.bed");
    /* a checkpoint of another model kind: a language model of 10 tokens */
    char other[256], oo[300];
    mb_test_tmp_path(other, sizeof other, "other.safetensors");
    snprintf(oo, sizeof oo, "%s.optim", other);
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 16, cfg.n_layer = 1, cfg.vocab_size = 10;
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    assert_non_null(m);
    assert_int_equal(mb_model_save(m, other), 0);
    mb_model_free(m);
    mb_ctx_free(ctx);
    size_t n0, n1;
    void *before = mb_test_read_file(other, &n0);
    int rc = run("pretrain" SMALL " --steps 2 --resume --out %s %smarkov.fa", other, DATA);
    assert_int_equal(rc, 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    assert_non_null(strstr(g_err, "not a mamba-dna model"));
    void *after = mb_test_read_file(other, &n1);
    assert_true(n0 == n1 && memcmp(before, after, n0) == 0); /* left intact */
    free(before), free(after);
    /* a file that is not a checkpoint at all */
    char fake[256];
    mb_test_tmp_path(fake, sizeof fake, "fake.safetensors");
    FILE *f = fopen(fake, "w");
    fputs(">not a model\nACGT\n", f);
    fclose(f);
    assert_int_equal(run("pretrain" SMALL " --steps 2 --resume --out %s %smarkov.fa", fake, DATA), 1);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    assert_non_null(strstr(g_err, fake));
    remove(other), remove(oo), remove(fake);
}

static void test_usage(void **st)
{
    (void)st;
    assert_int_equal(run("pretrain"), 2);
    assert_int_equal(run("pretrain --steps zero " DATA "tiny.fa"), 2);
    assert_non_null(strstr(g_err, "--steps"));
    assert_int_equal(run("pretrain --low-memory --high-memory " DATA "tiny.fa"), 2);
    assert_non_null(strstr(g_err, "--low-memory and --high-memory"));
    assert_int_equal(run("pretrain --init banana " DATA "tiny.fa"), 2);
    assert_int_equal(run("pretrain --precision fp16 " DATA "tiny.fa"), 2);
    assert_non_null(strstr(g_err, "--precision expects fp32, tf32 or bf16"));
    assert_int_equal(run("frobnicate"), 2);
    assert_int_equal(run("pretrain --help"), 0);
    assert_non_null(strstr(g_out, "--seq-len"));
    assert_int_equal(run("--help"), 0);
    assert_non_null(strstr(g_out, "pretrain"));
}

/* --objective mlm: the bidirectional, RC-equivariant model learns the
 * Markov genome from masked bases (both sides of a base: below what the
 * next-base order-5 baseline gets from one side, measured 0.52 against
 * 0.55), the checkpoint is that model, resuming it as a causal run is
 * refused, and the objective's combinations are usage errors */
static void test_mlm(void **st)
{
    (void)st;
    char model[256];
    mb_test_tmp_path(model, sizeof model, "mlm.safetensors");
    remove_run(model);
    assert_int_equal(run("pretrain" SMALL " --steps 100 --val-frac 0.1 --objective mlm --rc-equivariant --out %s "
                         "%smarkov.fa", model, DATA), 0);
    assert_non_null(strstr(g_err, "bidirectional, RC-equivariant, masked targets"));
    double v, o0;
    final_bpb(g_out, &v, &o0);
    printf("markov.fa, masked: validation %.4f bits/base, order-0 baseline %.4f\n", v, o0);
    assert_true(v < 0.8);
    assert_true(v < o0 - 0.5);
    /* and not what an input showing the masked base gets */
    assert_true(v > 0.35); /* measured 0.22 with the masked base shown */
    mb_ctx *ctx = mb_ctx_create("cpu");
    assert_non_null(ctx);
    mb_model *m = mb_model_load(ctx, model);
    assert_non_null(m);
    assert_int_equal(mb_model_config(m)->arch, MB_ARCH_BIDIR);
    assert_int_equal(mb_model_config(m)->rc_equivariant, 1);
    assert_int_equal(mb_model_config(m)->rc_complement[DNA_TOK_A], DNA_TOK_T);
    mb_model_free(m);
    mb_ctx_free(ctx);
    assert_int_equal(run("pretrain" SMALL " --steps 101 --resume --out %s %smarkov.fa", model, DATA), 1);
    assert_non_null(strstr(g_err, "resume it with --objective mlm"));
    remove_run(model);
    assert_int_equal(run("pretrain --arch bidir " DATA "tiny.fa"), 2);
    assert_non_null(strstr(g_err, "needs --objective mlm"));
    assert_int_equal(run("pretrain --objective mlm --arch lm " DATA "tiny.fa"), 2);
    assert_int_equal(run("pretrain --rc-equivariant --objective clm " DATA "tiny.fa"), 2);
    assert_int_equal(run("pretrain --objective bert " DATA "tiny.fa"), 2);
    assert_non_null(strstr(g_err, "--objective must be clm or mlm"));
}

/* --precision bf16 (the CPU reference of mamba_ssm's autocast): the run
 * trains and validates within 0.01 bits/base of the same run in fp32 (the
 * precision issue's bar; measured 1.4532 against 1.4536), records the
 * precision in its optimizer state, and is not fp32 under another name
 * (the two differ) */
static void test_bf16(void **st)
{
    (void)st;
    char model[256], optim[300];
    mb_test_tmp_path(model, sizeof model, "bf16.safetensors");
    double v[2], o0;
    const char *prec[2] = {"bf16", "fp32"};
    for (int i = 0; i < 2; i++) {
        remove_run(model);
        assert_int_equal(run("pretrain" SMALL " --steps 30 --val-every 30 --val-tokens 4096 --precision %s --out %s "
                             "%smarkov.fa",
                             prec[i], model, DATA), 0);
        final_bpb(g_out, &v[i], &o0);
        snprintf(optim, sizeof optim, "%s.step-30.optim", model);
        mb_st_file *f = mb_st_open(optim);
        if (!f) fail_msg("%s: %s", optim, mb_error_last());
        const char *p = mb_st_metadata(f, "precision");
        assert_non_null(p);
        assert_string_equal(p, prec[i]);
        mb_st_close(f);
    }
    printf("30 steps: bf16 %.4f bits/base, fp32 %.4f\n", v[0], v[1]);
    assert_true(fabs(v[0] - v[1]) < 0.01);
    assert_true(v[0] != v[1]);
    remove_run(model);
}

/* --low-memory's and --high-memory's wiring: windows over 64k bases keep
 * only the states between 64k chunks (MB_RECOMPUTE_STACK), or each layer's
 * in_proj output as well as its input (MB_RECOMPUTE_INNER), said on
 * stderr, and train as without either, to the printed digits; with
 * neither, on a device said to have room for INNER or too little for
 * LAYERS (MB_DEV_MEM), the library's choice said after the first step and
 * the same digits again. Whether the stack's gradients are
 * right is test_model's and test_classify's to say (against the plain
 * backward, to 1e-5; they fail when a layer's carries are mixed up, which
 * two steps of AdamW here, updates of about lr times the gradient's sign,
 * would not show). A random genome of 140 kb (written here), windows of
 * 66,000 bases: a chunk of 65,536 and one of 464. */
static void test_low_memory(void **st)
{
    (void)st;
    char fa[256], model[256];
    mb_test_tmp_path(fa, sizeof fa, "long.fa");
    mb_test_tmp_path(model, sizeof model, "lowmem.safetensors");
    FILE *f = fopen(fa, "w");
    assert_non_null(f);
    fputs(">long\n", f);
    mb_rng r;
    mb_rng_seed(&r, 17);
    for (int i = 0; i < 140000; i++) {
        fputc("ACGT"[mb_rng_below(&r, 4)], f);
        if (i % 80 == 79) fputc('\n', f);
    }
    fputs("\n", f);
    assert_int_equal(fclose(f), 0);
    /* and with neither flag on a device said (MB_DEV_MEM, MiB free and in
     * all) to hold in_proj's outputs, then one with no room for the layer
     * recompute either: the library's choice, after the first step */
    enum { RUNS = 5 };
    char lines[RUNS][2][128];
    const char *flag[RUNS] = {"", " --low-memory", " --high-memory", "", ""};
    const char *mem[RUNS] = {NULL, NULL, NULL, "65536,81920", "1,16384"};
    const char *said[RUNS] = {"66000 bases a step: each layer recomputed in backward, unless the device has room",
                              "66000 bases a step: only the states between 64k-base chunks kept",
                              "66000 bases a step: each layer recomputed in backward but for in_proj",
                              "66000-base windows: the device has room for each layer's in_proj output",
                              "66000-base windows: no room on the device for each layer's input"};
    for (int i = 0; i < RUNS; i++) {
        remove_run(model);
        if (mem[i]) assert_int_equal(setenv("MB_DEV_MEM", mem[i], 1), 0);
        const int rc = run("pretrain --d-model 16 --n-layer 2 --seq-len 66000 --batch 1 --steps 2 --threads 2 "
                           "--val-every 2 --val-tokens 4096 --out %s%s %s", model, flag[i], fa);
        unsetenv("MB_DEV_MEM");
        assert_int_equal(rc, 0);
        assert_non_null(strstr(g_err, said[i]));
        /* the CPU's own choice (LAYERS) is the start's line: nothing after */
        if (!mem[i]) assert_null(strstr(g_err, "-base windows: "));
        /* "step k/2  L 66000  train X bits/base ..." up to the speed */
        for (int k = 0; k < 2; k++) {
            char key[32];
            snprintf(key, sizeof key, "step %d/2 ", k + 1);
            const char *p = strstr(g_err, key);
            assert_non_null(p);
            const char *e = strstr(p, "  lr ");
            assert_non_null(e);
            snprintf(lines[i][k], sizeof lines[i][k], "%.*s", (int)(e - p), p);
        }
    }
    double t[RUNS][2], v[RUNS];
    for (int i = 0; i < RUNS; i++) {
        printf("%s%s%s: %s | %s\n", flag[i][0] ? flag[i] + 1 : "default", mem[i] ? ", MB_DEV_MEM=" : "",
               mem[i] ? mem[i] : "", lines[i][0], lines[i][1]);
        t[i][0] = field_after(lines[i][0], "train ");
        t[i][1] = field_after(lines[i][1], "train ");
        v[i] = field_after(lines[i][1], "val ");
    }
    for (int i = 1; i < RUNS; i++) {
        for (int k = 0; k < 2; k++) assert_true(fabs(t[0][k] - t[i][k]) < 1e-4);
        assert_true(fabs(v[0] - v[i]) < 1e-4);
    }
    remove_run(model), remove(fa);
}

static void test_seq_warmup(void **st)
{
    (void)st;
    char model[256];
    mb_test_tmp_path(model, sizeof model, "warm.safetensors");
    remove_run(model);
    /* L 128: stages of 64 then 128 over the first half of 8 steps */
    assert_int_equal(run("pretrain" SMALL " --steps 8 --seq-warmup 0.5 --val-every 1 --val-tokens 512 "
                         "--out %s %smarkov.fa", model, DATA), 0);
    assert_non_null(strstr(g_err, "L 64 "));
    assert_non_null(strstr(g_err, "L 128 "));
    remove_run(model);
}
#endif

int main(void)
{
#ifndef MB_DNA_BIN
    printf("mamba-dna is not built (MAMBA_APPS off or no htslib): nothing to test\n");
    return 77;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage),         cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_seq_warmup),    cmocka_unit_test(test_resume_equals_whole),
        cmocka_unit_test(test_learns),        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_mlm),           cmocka_unit_test(test_low_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
#endif
}
