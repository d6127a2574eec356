/* mamba-audio's answers to faults (issue 13, "Nothing lost, nothing hung"),
 * through the tool itself:
 *   - a model whose numbers overflow (one weight at 3e38): eval and
 *     generate refuse to write a non-finite number (or clips drawn from
 *     one): one error line, exit 1, an existing output kept;
 *   - a --log that cannot be written (/dev/full): one error line, exit 1;
 *   - an output path that names a folder (--out, MODEL.optim, MODEL.audio,
 *     --log, a clip of generate): refused before any work;
 *   - SIGTERM or SIGINT while reading the audio, during eval and during
 *     generate: the work stops, exit 130, nothing left behind, an earlier
 *     output untouched;
 *   - messages: getopt's errors as our one line with the command's name,
 *     --version on every command, progress with a total and an ETA while
 *     reading the audio and during eval.
 * Models are tiny random U-Nets made here; inputs are data/audio/digits and
 * a long tone written in a temporary folder. */
/* mkdtemp, setenv: POSIX (the project compiles as strict C11) */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audio_io.h"
#include "models/model.h"
#include "testutil.h"

#ifdef MB_AUDIO_BIN
#define DIGITS MB_DATA_DIR "/audio/digits"
#define CAP (1 << 20)
#define LONG_SECONDS 60
#define TRAIN " --d-model 16 --n-layer 1 --seq-len 256 --batch 2 --steps 3 --threads 2"

static char *g_out, *g_err;
static char g_dir[256];               /* the suite's temporary folder */
static char g_model[300], g_inf[300]; /* a U-Net; the same with a weight at 3e38 */
static char g_long[300];              /* a folder holding one long tone */

static int tool(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int tool(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(MB_AUDIO_BIN, g_out, CAP, g_err, CAP, fmt, ap);
    va_end(ap);
    return rc;
}

static int tool_signalled(const char *env, const char *ready, int sig, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tool_signalled(const char *env, const char *ready, int sig, const char *fmt, ...)
{
    char args[2048], cmd[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "env %s %s %s", env, MB_AUDIO_BIN, args);
    return mb_test_signal_run(cmd, ready, sig, g_out, CAP, g_err, CAP);
}

static void assert_one_error(const char *what) { mb_test_error_line(g_err, "mamba-audio", what); }

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_dir, name); }

static void assert_file_is(const char *path, const char *want)
{
    size_t n = 0;
    char *got = mb_test_read_file(path, &n);
    assert_non_null(got);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(got, want, n);
    free(got);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* No leftover temporary file (NAME.tmpXXXXXX) in the suite's folder. */
static void assert_no_temp(void)
{
    char ls[4096];
    mb_test_listing(g_dir, ls, sizeof ls);
    if (strstr(ls, ".tmp")) fprintf(stderr, "# left behind: %s\n", ls);
    assert_null(strstr(ls, ".tmp"));
}

/* ---- setup ------------------------------------------------------------------- */

static int setup(void **st)
{
    (void)st;
    setenv("OMP_WAIT_POLICY", "passive", 0);
    /* no progress lines in the checks of one error line, however loaded the
     * machine (test_messages checks the default interval itself) */
    setenv("MAMBA_PROGRESS_S", "100000", 1);
    g_out = malloc(CAP);
    g_err = malloc(CAP);
    if (!g_out || !g_err) return -1;
    snprintf(g_dir, sizeof g_dir, "/tmp/mbtest_audiofaults_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    path_in(g_model, sizeof g_model, "unet.safetensors");
    path_in(g_inf, sizeof g_inf, "unet_inf.safetensors");
    path_in(g_long, sizeof g_long, "long");
    mb_ctx *ctx = mb_ctx_create("cpu");
    if (!ctx) return -1;
    mb_config cfg;
    mb_config_sashimi_default(&cfg);
    cfg.d_model = 16;
    cfg.n_layer = 1;
    mb_model *m = mb_model_create(ctx, &cfg, 5);
    int bad = !m || mb_model_save(m, g_model);
    /* finite, so the checkpoint loads; its products overflow */
    if (m) m->params.data[mb_test_param(m, "down.0.layers.0.mixer.in_proj.weight")->offset] = 3e38f;
    bad = bad || mb_model_save(m, g_inf);
    mb_model_free(m);
    mb_ctx_free(ctx);
    /* the sidecar mamba-audio train writes beside a model */
    char side[400];
    for (int i = 0; i < 2 && !bad; i++) {
        snprintf(side, sizeof side, "%s.audio", i ? g_inf : g_model);
        FILE *f = fopen(side, "w");
        bad = !f || fputs("rate 16000\nquant mulaw\n", f) < 0;
        if (f) bad = fclose(f) || bad;
    }
    /* LONG_SECONDS of a 440 Hz tone at 44.1 kHz: resampled when read */
    char path[400], err[512];
    if (bad || mkdir(g_long, 0700)) return -1;
    snprintf(path, sizeof path, "%s/tone.wav", g_long);
    const int64_t n = (int64_t)LONG_SECONDS * 44100;
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!x) return -1;
    for (int64_t i = 0; i < n; i++) x[i] = (float)(0.5 * sin(2 * 3.14159265358979 * 440.0 * (double)i / 44100));
    bad = audio_write_wav(path, x, n, 44100, err, sizeof err);
    free(x);
    return bad ? -1 : 0;
}

static int teardown(void **st)
{
    (void)st;
    mb_test_rmtree(g_dir);
    free(g_out);
    free(g_err);
    return 0;
}

/* ---- finding 5: non-finite numbers are an error, not an output ---------------- */

static void test_nonfinite(void **st)
{
    (void)st;
    assert_int_equal(tool("eval --seq-len 256 --threads 2 --model %s --data " DIGITS, g_model), 0);
    assert_null(strstr(g_out, "nan"));
    assert_int_equal(tool("eval --seq-len 256 --threads 2 --model %s --data " DIGITS, g_inf), 1);
    assert_one_error("not finite");
    assert_null(strstr(g_out, "nan"));
    /* generate: no clip drawn from nan, an earlier one kept */
    char out[400];
    path_in(out, sizeof out, "clip.wav");
    assert_int_equal(tool("generate --threads 2 --model %s --seconds 0.02 --out %s", g_model, out), 0);
    write_text(out, "earlier\n");
    assert_int_equal(tool("generate --threads 2 --model %s --seconds 0.02 --out %s", g_inf, out), 1);
    assert_one_error("not finite");
    assert_file_is(out, "earlier\n");
    assert_int_equal(tool("generate --threads 2 --model %s --seconds 0.01 --prompt " DIGITS "/eight_v000_en-us_s120_p30.flac --out %s",
                          g_inf, out),
                     1);
    assert_one_error("not finite");
    assert_file_is(out, "earlier\n");
    assert_no_temp();
}

/* ---- finding 6: a log that cannot be written ---------------------------------- */

static void test_log_full(void **st)
{
    (void)st;
    char out[400];
    path_in(out, sizeof out, "full.safetensors");
    assert_int_equal(tool("train" TRAIN " --force --log /dev/full --data " DIGITS " --out %s", out), 1);
    printf("# %s", g_err);
    assert_int_equal(mb_test_count(g_err, "mamba-audio: error:"), 1);
    assert_non_null(strstr(g_err, "/dev/full: write error"));
}

/* ---- finding 7: an output path that is a folder, before any work -------------- */

static void test_out_folder(void **st)
{
    (void)st;
    char d[400], out[400], sub[500];
    path_in(d, sizeof d, "afolder");
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(tool("train" TRAIN " --data " DIGITS " --out %s", d), 1);
    assert_one_error("is a folder");
    assert_int_equal(tool("train" TRAIN " --force --data " DIGITS " --out %s", d), 1);
    assert_one_error("is a folder");
    path_in(out, sizeof out, "m.safetensors");
    const char *const beside[1] = {".audio"}; /* the side file; checkpoint sets are named by step */
    for (int k = 0; k < 1; k++) {
        snprintf(sub, sizeof sub, "%s%s", out, beside[k]);
        assert_int_equal(mkdir(sub, 0700), 0);
        assert_int_equal(tool("train" TRAIN " --data " DIGITS " --out %s", out), 1);
        assert_one_error(beside[k]);
        assert_non_null(strstr(g_err, "is a folder"));
        assert_int_equal(rmdir(sub), 0);
    }
    assert_int_equal(tool("train" TRAIN " --data " DIGITS " --out %s --log %s", out, d), 1);
    assert_one_error(d);
    assert_int_equal(access(out, F_OK), -1);
    /* generate: the output, and one clip of several */
    assert_int_equal(tool("generate --model %s --seconds 0.01 --out %s", g_model, d), 1);
    assert_one_error("is a folder");
    path_in(out, sizeof out, "clip.wav");
    path_in(sub, sizeof sub, "clip_2.wav");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(tool("generate --model %s --n 3 --seconds 0.01 --out %s", g_model, out), 1);
    assert_one_error("clip_2.wav");
    assert_int_equal(rmdir(sub), 0);
    assert_no_temp();
    assert_int_equal(rmdir(d), 0);
}

/* ---- finding 9: SIGTERM / SIGINT ------------------------------------------------ */

static void test_signals(void **st)
{
    (void)st;
    char out[400], model[400];
    /* generate over an earlier clip */
    path_in(out, sizeof out, "sig.wav");
    write_text(out, "earlier\n");
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "sample ", SIGTERM,
                                    "generate --threads 1 --model %s --seconds 600 --out %s", g_model, out),
                     130);
    assert_int_equal(mb_test_count(g_err, "mamba-audio: error:"), 1);
    assert_non_null(strstr(g_err, "interrupted"));
    assert_file_is(out, "earlier\n");
    /* eval, while it scores */
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-audio eval:", SIGINT,
                                    "eval --threads 1 --seq-len 256 --batch 1 --model %s --data %s", g_model, g_long),
                     130);
    assert_int_equal(mb_test_count(g_err, "mamba-audio: error:"), 1);
    assert_non_null(strstr(g_err, "interrupted"));
    /* train, while it reads the audio: nothing written */
    path_in(model, sizeof model, "sig.safetensors");
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-audio: reading", SIGTERM,
                                    "train --d-model 16 --n-layer 1 --seq-len 256 --threads 1 --data %s --out %s",
                                    g_long, model),
                     130);
    assert_int_equal(mb_test_count(g_err, "mamba-audio: error:"), 1);
    assert_non_null(strstr(g_err, "interrupted"));
    assert_int_equal(access(model, F_OK), -1);
    assert_no_temp();
    char ls[4096];
    mb_test_listing(g_dir, ls, sizeof ls);
    assert_null(strstr(ls, "sig.safetensors"));
}

/* ---- finding 10: messages --------------------------------------------------------- */

static void test_messages(void **st)
{
    (void)st;
    static const char *const cmds[] = {"train", "generate", "eval"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[256];
        assert_int_equal(tool("%s --frobnicate", cmds[i]), 2);
        snprintf(want, sizeof want, "mamba-audio: error: %s: unrecognized option '--frobnicate'\n", cmds[i]);
        assert_int_equal(strncmp(g_err, want, strlen(want)), 0);
        assert_int_equal(mb_test_count(g_err, "\n"), 2);
        assert_int_equal(tool("%s --model", cmds[i]), 2);
        snprintf(want, sizeof want, "mamba-audio: error: %s: ", cmds[i]);
        assert_int_equal(strncmp(g_err, want, strlen(want)), 0);
        assert_int_equal(tool("%s --version", cmds[i]), 0);
        assert_int_equal(strncmp(g_out, "mamba-audio (libmamba ", 22), 0);
    }
    /* one file named, unreadable: its reason is the error line, no warning first */
    char junk[400];
    path_in(junk, sizeof junk, "junk.wav");
    write_text(junk, "not audio at all, only text in a file named .wav\n");
    assert_int_equal(tool("eval --model %s --data %s", g_model, junk), 1);
    assert_one_error("junk.wav: not an audio file");
    /* a length that draws nothing: a usage error, not an empty WAV */
    char wav[400];
    path_in(wav, sizeof wav, "none.wav");
    assert_int_equal(tool("generate --model %s --seconds 0 --out %s", g_model, wav), 2);
    assert_one_error("draws no sample");
    assert_int_equal(access(wav, F_OK), -1);
    assert_int_equal(tool("generate --seconds"), 2);
    assert_int_equal(strncmp(g_err, "mamba-audio: error: generate: option '--seconds' needs a value\n", 63), 0);
    /* progress while reading the audio and while scoring it: a total and an ETA */
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-audio eval: ", SIGINT,
                                    "eval --threads 1 --seq-len 256 --batch 1 --model %s --data %s", g_model, g_long),
                     130);
    assert_non_null(strstr(g_err, "mamba-audio: reading "));
    assert_non_null(strstr(g_err, "mamba-audio eval: "));
    assert_non_null(strstr(g_err, "ETA"));
    /* short work prints nothing at the default interval (5 s). Work that ran past it on a
       loaded machine may print progress lines, and nothing else. */
    struct timespec t0, t1;
    unsetenv("MAMBA_PROGRESS_S");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(tool("eval --threads 2 --seq-len 256 --model %s --data " DIGITS, g_model), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    setenv("MAMBA_PROGRESS_S", "100000", 1);
    if ((double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec) < 5.0) {
        assert_string_equal(g_err, "");
    } else {
        for (const char *l = g_err; *l; l = strchr(l, '\n') + 1) {
            assert_true(strncmp(l, "mamba-audio eval: ", 18) == 0 || strncmp(l, "mamba-audio: reading ", 21) == 0);
            assert_non_null(strchr(l, '\n'));
        }
    }
}

/* The model's .audio sidecar: missing, the defaults with a warning; empty,
 * cut or with a key twice, one error line (they once read as the defaults
 * without a word, so an 8 kHz model was scored and drawn at 16 kHz) */
static void test_sidecar(void **st)
{
    (void)st;
    char bare[400], side[420], cmd[1000];
    path_in(bare, sizeof bare, "bare.safetensors");
    snprintf(side, sizeof side, "%s.audio", bare);
    snprintf(cmd, sizeof cmd, "cp %s %s", g_model, bare);
    assert_int_equal(mb_test_sh(cmd, NULL, 0, NULL, 0), 0);
    const char *eval = "eval --threads 2 --seq-len 256 --model %s --data " DIGITS "/one_v000_en-us_s120_p30.flac";
    assert_int_equal(tool(eval, bare), 0);
    assert_int_equal(mb_test_count(g_err, "\n"), 1);
    assert_non_null(strstr(g_err, "mamba-audio: warning: "));
    assert_non_null(strstr(g_err, "bare.safetensors.audio: not found"));
    static const struct {
        const char *text, *says;
    } bad[] = {
        {"", "no 'rate' line"},
        {"rate 8000\n", "no 'quant' line"},
        {"rate 16000\nquant mulaw\nrate 8000\n", "a key given twice"},
        {"rate 16000\nquant mulaw\nwindow\n", "bad line"},
        {"quant linear\nrate 8000\ncolour blue\n", "bad line 3"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(side, bad[i].text);
        assert_int_equal(tool(eval, bare), 1);
        assert_one_error("bare.safetensors.audio");
        assert_non_null(strstr(g_err, bad[i].says));
    }
    write_text(side, "quant linear\nrate 8000\n");
    assert_int_equal(tool(eval, bare), 0);
    assert_non_null(strstr(g_out, "at 8000 Hz, linear"));
    assert_string_equal(g_err, "");
}
#endif

int main(void)
{
#ifndef MB_AUDIO_BIN
    printf("mamba-audio is not built (MAMBA_APPS off, or no libsndfile/libsamplerate): nothing to test\n");
    return 77;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages), cmocka_unit_test(test_nonfinite), cmocka_unit_test(test_log_full),
        cmocka_unit_test(test_out_folder), cmocka_unit_test(test_signals), cmocka_unit_test(test_sidecar),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
#endif
}
