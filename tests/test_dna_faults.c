/* mamba-dna's answers to faults (issue 13, "Nothing lost, nothing hung"),
 * through the tool itself:
 *   - a model whose numbers overflow (one weight at 3e38): score (records
 *     and variant LLRs), embed and classify predict refuse to write a
 *     non-finite number: one error line, exit 1, an existing output kept;
 *   - a --log that cannot be written (/dev/full): one error line, exit 1;
 *   - an output path that names a folder (--out, --log, MODEL.optim,
 *     OUT.rows.tsv): refused before any work;
 *   - SIGTERM or SIGINT during embed, score or classify predict: the work
 *     stops at the next chunk, exit 130, no temporary file left, an earlier
 *     output untouched;
 *   - messages: getopt's errors as our one line with the command's name,
 *     --version on every command, a gzip cut inside its first block, no
 *     placeholder names, no advice that shrinks training, no "update
 *     skipped" when the run stops, progress with a total and an ETA on one
 *     long record.
 * Models are tiny random ones made here; inputs are data/genomics/ and a
 * long record written in a temporary folder. */
/* mkdtemp, symlink, strdup, setenv: POSIX (the project compiles as strict C11) */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dna_cmd.h"
#include "models/model.h"
#include "testutil.h"

#ifdef MB_DNA_BIN
#define GDIR MB_DATA_DIR "/genomics/"
#define CDIR GDIR "classify/"
#define CAP (1 << 20)
#define LONG_BASES 4000000
#define CLASSES " --class alpha=" CDIR "alpha_train.fa --class beta=" CDIR "beta_train.fa"

static char *g_out, *g_err;
static char g_dir[256];                    /* the suite's temporary folder */
static char g_lm[300], g_lm_inf[300];      /* a language model; the same with a weight at 3e38 */
static char g_cls[300], g_cls_inf[300];    /* a 2-class classifier; the same at 3e38 */
static char g_long[300];                   /* one record of LONG_BASES */

static int tool(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int tool(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(MB_DNA_BIN, g_out, CAP, g_err, CAP, fmt, ap);
    va_end(ap);
    return rc;
}

/* The tool started with `args` (under env), signalled once it has printed
 * `ready`; its exit status. */
static int tool_signalled(const char *env, const char *ready, int sig, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int tool_signalled(const char *env, const char *ready, int sig, const char *fmt, ...)
{
    char args[2048], cmd[2600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "env %s %s %s", env, MB_DNA_BIN, args);
    return mb_test_signal_run(cmd, ready, sig, g_out, CAP, g_err, CAP);
}

static void assert_one_error(const char *what) { mb_test_error_line(g_err, "mamba-dna", what); }

/* The lines of err that hold needle. */
static int lines_with(const char *needle) { return mb_test_count(g_err, needle); }

/* path holds exactly `want` */
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

static void path_in(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", g_dir, name); }

/* ---- setup ------------------------------------------------------------------- */

/* A model of cfg, saved to path, and the same with one in_proj weight at
 * 3e38 (finite, so the checkpoint loads; its products overflow) to inf_path. */
static int make_models(mb_ctx *ctx, const mb_config *cfg, const char *path, const char *inf_path)
{
    mb_model *m = mb_model_create(ctx, cfg, 3);
    if (!m) return -1;
    /* an embedding (and tied head) of N(0, 1): logits that matter */
    mb_rng r;
    mb_rng_seed(&r, 11);
    const mb_param *e = mb_test_param(m, "backbone.embedding.weight");
    for (size_t i = 0; i < e->numel; i++) m->params.data[e->offset + i] = (float)mb_rng_normal(&r);
    int bad = mb_model_save(m, path);
    m->params.data[mb_test_param(m, "backbone.layers.0.mixer.in_proj.weight")->offset] = 3e38f;
    bad = bad || mb_model_save(m, inf_path);
    mb_model_free(m);
    return bad ? -1 : 0;
}

static int setup(void **st)
{
    (void)st;
    setenv("OMP_WAIT_POLICY", "passive", 0);
    g_out = malloc(CAP);
    g_err = malloc(CAP);
    if (!g_out || !g_err) return -1;
    snprintf(g_dir, sizeof g_dir, "/tmp/mbtest_dnafaults_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    path_in(g_lm, sizeof g_lm, "lm.safetensors");
    path_in(g_lm_inf, sizeof g_lm_inf, "lm_inf.safetensors");
    path_in(g_cls, sizeof g_cls, "cls.safetensors");
    path_in(g_cls_inf, sizeof g_cls_inf, "cls_inf.safetensors");
    path_in(g_long, sizeof g_long, "long.fa");
    mb_ctx *ctx = mb_ctx_create("cpu");
    if (!ctx) return -1;
    mb_config cfg;
    mb_config_default(&cfg);
    dna_cmd_config(&cfg);
    cfg.d_model = 16;
    cfg.n_layer = 2;
    int bad = make_models(ctx, &cfg, g_lm, g_lm_inf);
    cfg.n_classes = 2;
    bad = bad || make_models(ctx, &cfg, g_cls, g_cls_inf);
    mb_ctx_free(ctx);
    /* one record of LONG_BASES pseudo-random bases, 100 a line */
    FILE *f = fopen(g_long, "w");
    if (bad || !f) return -1;
    fputs(">long\n", f);
    uint64_t x = 88172645463325252ull;
    char line[101];
    line[100] = '\n';
    for (int64_t i = 0; i < LONG_BASES / 100; i++) {
        for (int k = 0; k < 100; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            line[k] = "ACGT"[x >> 62];
        }
        fwrite(line, 1, sizeof line, f);
    }
    return fclose(f) ? -1 : 0;
}

static int teardown(void **st)
{
    (void)st;
    mb_test_rmtree(g_dir);
    free(g_out);
    free(g_err);
    return 0;
}

/* ---- finding 5: non-finite numbers are an error, not a row ------------------ */

static void test_nonfinite(void **st)
{
    (void)st;
    /* the good model gives numbers */
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa", g_lm), 0);
    assert_null(strstr(g_out, "nan"));
    /* score: records, variants as VCF and as TSV */
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa", g_lm_inf), 1);
    assert_one_error("not finite");
    assert_null(strstr(g_out, "nan"));
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa --vcf " GDIR "variants.vcf", g_lm_inf), 1);
    assert_one_error("not finite");
    assert_null(strstr(g_out, "MAMBA_LLR=nan"));
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa --vcf " GDIR "variants.vcf --tsv", g_lm_inf), 1);
    assert_one_error("not finite");
    assert_null(strstr(g_out, "nan"));
    /* embed, to stdout and over an earlier output (kept as it was) */
    assert_int_equal(tool("embed --model %s --fasta " GDIR "tiny.fa", g_lm_inf), 1);
    assert_one_error("not finite");
    assert_null(strstr(g_out, "nan"));
    char path[400];
    path_in(path, sizeof path, "emb.tsv");
    write_text(path, "earlier\n");
    assert_int_equal(tool("embed --model %s --fasta " GDIR "tiny.fa --out %s", g_lm_inf, path), 1);
    assert_one_error("not finite");
    assert_file_is(path, "earlier\n");
    path_in(path, sizeof path, "emb.npy");
    write_text(path, "earlier\n");
    assert_int_equal(tool("embed --model %s --fasta " GDIR "tiny.fa --window 100 --format npy --out %s", g_lm_inf,
                          path), 1);
    assert_one_error("not finite");
    assert_file_is(path, "earlier\n");
    assert_no_temp();
    /* classify predict, whole records and windows */
    assert_int_equal(tool("classify predict --model %s --fasta " GDIR "tiny.fa", g_cls), 0);
    assert_int_equal(tool("classify predict --model %s --fasta " GDIR "tiny.fa", g_cls_inf), 1);
    assert_one_error("not finite");
    assert_null(strstr(g_out, "nan"));
    assert_int_equal(tool("classify predict --model %s --fasta " GDIR "tiny.fa --window 100", g_cls_inf), 1);
    assert_one_error("not finite");
}

/* ---- finding 6: a log that cannot be written ---------------------------------- */

static void test_log_full(void **st)
{
    (void)st;
    char out[400];
    path_in(out, sizeof out, "full.safetensors");
    assert_int_equal(tool("pretrain --d-model 16 --n-layer 1 --seq-len 64 --batch 2 --steps 3 --threads 2 --force "
                          "--log /dev/full --out %s " GDIR "tiny.fa",
                          out),
                     1);
    printf("# %s", g_err);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_non_null(strstr(g_err, "/dev/full: write error"));
    assert_int_equal(tool("classify train --model %s --out %s --force --seq-len 64 --batch 2 --steps 3 --threads 2 "
                          "--log /dev/full" CLASSES,
                          g_lm, out),
                     1);
    printf("# %s", g_err);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_non_null(strstr(g_err, "/dev/full: write error"));
}

/* ---- finding 7: an output path that is a folder, before any work -------------- */

static void test_out_folder(void **st)
{
    (void)st;
    char d[400], out[400], sub[500];
    path_in(d, sizeof d, "afolder");
    assert_int_equal(mkdir(d, 0700), 0);
    const char *train = "--d-model 16 --n-layer 1 --seq-len 64 --batch 2 --steps 3 --threads 2";
    /* pretrain: --out (with and without --force), --log */
    assert_int_equal(tool("pretrain %s --out %s " GDIR "tiny.fa", train, d), 1);
    assert_one_error("is a folder");
    assert_int_equal(tool("pretrain %s --force --out %s " GDIR "tiny.fa", train, d), 1);
    assert_one_error("is a folder");
    path_in(out, sizeof out, "m.safetensors");
    assert_int_equal(tool("pretrain %s --out %s --log %s " GDIR "tiny.fa", train, out, d), 1);
    assert_one_error(d);
    assert_int_equal(access(out, F_OK), -1);
    /* embed: --out, and the rows file beside an npy */
    assert_int_equal(tool("embed --model %s --fasta " GDIR "tiny.fa --out %s", g_lm, d), 1);
    assert_one_error("is a folder");
    path_in(out, sizeof out, "e.npy");
    snprintf(sub, sizeof sub, "%s.rows.tsv", out);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(tool("embed --model %s --fasta " GDIR "tiny.fa --format npy --out %s", g_lm, out), 1);
    assert_one_error("e.npy.rows.tsv");
    assert_non_null(strstr(g_err, "is a folder"));
    assert_int_equal(rmdir(sub), 0);
    /* classify train: --out, MODEL.classes, --log */
    assert_int_equal(tool("classify train --model %s --out %s --force %s" CLASSES, g_lm, d, train), 1);
    assert_one_error("is a folder");
    path_in(out, sizeof out, "c.safetensors");
    snprintf(sub, sizeof sub, "%s.classes", out);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(tool("classify train --model %s --out %s %s" CLASSES, g_lm, out, train), 1);
    assert_one_error("c.safetensors.classes");
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(tool("classify train --model %s --out %s --log %s %s" CLASSES, g_lm, out, d, train), 1);
    assert_one_error(d);
    assert_int_equal(access(out, F_OK), -1);
    assert_no_temp();
    assert_int_equal(rmdir(d), 0);
}

/* ---- finding 9: SIGTERM / SIGINT during the work ------------------------------ */

static void test_signals(void **st)
{
    (void)st;
    char path[400], npy[400], rows[500];
    /* embed over an earlier output: stopped, the output as it was, no temporary file */
    path_in(path, sizeof path, "sig.tsv");
    write_text(path, "earlier\n");
    const int sigs[2] = {SIGTERM, SIGINT};
    for (int k = 0; k < 2; k++) {
        assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-dna embed:", sigs[k],
                                        "embed --model %s --fasta %s --chunk 256 --threads 1 --out %s", g_lm, g_long,
                                        path),
                         130);
        assert_int_equal(lines_with("mamba-dna: error:"), 1);
        assert_non_null(strstr(g_err, "interrupted"));
        assert_file_is(path, "earlier\n");
        assert_no_temp();
    }
    path_in(npy, sizeof npy, "sig.npy");
    snprintf(rows, sizeof rows, "%s.rows.tsv", npy);
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-dna embed:", SIGTERM,
                                    "embed --model %s --fasta %s --window 64 --format npy --threads 1 --out %s", g_lm,
                                    g_long, npy),
                     130);
    assert_int_equal(access(npy, F_OK), -1);
    assert_int_equal(access(rows, F_OK), -1);
    assert_no_temp();
    /* the signal twice at once, as `timeout` sends it: still one stop
     * (the second once killed generate with its temporary file left) */
    path_in(path, sizeof path, "sig.fa");
    write_text(path, "earlier\n");
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-dna generate:", SIGTERM | MB_TEST_SIG_TWICE,
                                    "generate --model %s --length 50000000 --threads 1 --out %s", g_lm, path),
                     130);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_file_is(path, "earlier\n");
    assert_no_temp();
    /* score and classify predict (stdout): stopped, exit 130, one line */
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-dna score:", SIGTERM,
                                    "score --model %s --fasta %s --chunk 256 --threads 1", g_lm, g_long),
                     130);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_non_null(strstr(g_err, "interrupted"));
    assert_int_equal(tool_signalled("MAMBA_PROGRESS_S=0", "mamba-dna classify:", SIGINT,
                                    "classify predict --model %s --fasta %s --chunk 256 --threads 1", g_cls, g_long),
                     130);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_non_null(strstr(g_err, "interrupted"));
}

/* ---- finding 10: messages ----------------------------------------------------- */

static void test_usage_messages(void **st)
{
    (void)st;
    static const char *const cmds[] = {"pretrain", "score", "embed", "classify train", "classify predict"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char want[256];
        /* getopt's own lines are off: ours, with the command's name, and the hint */
        assert_int_equal(tool("%s --frobnicate", cmds[i]), 2);
        snprintf(want, sizeof want, "mamba-dna: error: %s: unrecognized option '--frobnicate'\n", cmds[i]);
        assert_int_equal(strncmp(g_err, want, strlen(want)), 0);
        assert_int_equal(lines_with("\n"), 2);
        assert_non_null(strstr(g_err, "Try 'mamba-dna "));
        assert_int_equal(tool("%s --chunk", cmds[i]), 2);
        snprintf(want, sizeof want, "mamba-dna: error: %s: ", cmds[i]);
        assert_int_equal(strncmp(g_err, want, strlen(want)), 0);
        assert_int_equal(lines_with("\n"), 2);
        /* --version on every command */
        assert_int_equal(tool("%s --version", cmds[i]), 0);
        assert_int_equal(strncmp(g_out, "mamba-dna (libmamba ", 20), 0);
    }
    assert_int_equal(tool("pretrain --steps"), 2);
    assert_int_equal(strncmp(g_err, "mamba-dna: error: pretrain: option '--steps' needs a value\n", 58), 0);
    assert_int_equal(tool("score --tf32=1"), 2);
    assert_int_equal(strncmp(g_err, "mamba-dna: error: score: option '--tf32' takes no value\n", 55), 0);
    assert_int_equal(tool("classify --version"), 0);
    assert_int_equal(strncmp(g_out, "mamba-dna (libmamba ", 20), 0);
    /* numbers in decimal only (strtod took 0x10 as 16) */
    assert_int_equal(tool("generate --model %s --length 5 --temperature 0x1", g_lm), 2);
    assert_non_null(strstr(g_err, "got '0x1'"));
    /* an error line that quotes a huge input is cut, still one line */
    assert_int_equal(tool("generate --model %s --length \"$(head -c 10000 /dev/zero | tr '\\0' 9)\"", g_lm), 2);
    const char *nl = strchr(g_err, '\n');
    assert_non_null(nl);
    assert_true(nl - g_err < 8300);
    assert_int_equal(strncmp(nl - 3, "...", 3), 0);
}

static void test_input_messages(void **st)
{
    (void)st;
    char path[400], bed[400], cmd[1200];
    /* a gzip file cut inside its first block: nothing was read, not "after 0 lines" */
    path_in(path, sizeof path, "cut.fa.gz");
    snprintf(cmd, sizeof cmd, "( gzip -c " GDIR "tiny.fa | head -c 200 > %s )", path);
    assert_int_equal(mb_test_sh(cmd, NULL, 0, NULL, 0), 0);
    assert_int_equal(tool("score --model %s --fasta %s", g_lm, path), 1);
    assert_one_error("cut.fa.gz");
    assert_non_null(strstr(g_err, "truncated"));
    assert_null(strstr(g_err, "after 0 lines"));
    /* every base held out: no placeholder in the message */
    path_in(bed, sizeof bed, "all.bed");
    write_text(bed, "chr1\t0\t1200\nchr2\t0\t700\nchr3\t0\t500\n");
    assert_int_equal(tool("pretrain --d-model 16 --n-layer 1 --seq-len 64 --batch 2 --steps 2 --force --val-bed %s "
                          "--out %s/x.safetensors " GDIR "tiny.fa",
                          bed, g_dir),
                     1);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_null(strstr(g_err, "(sampler)"));
    assert_non_null(strstr(g_err, "tiny.fa"));
    /* training windows longer than the training part: holding more out would not help */
    assert_int_equal(tool("pretrain --d-model 16 --n-layer 1 --seq-len 1100 --batch 2 --steps 2 --force --val-frac "
                          "0.2 --out %s/x.safetensors " GDIR "tiny.fa",
                          g_dir),
                     1);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_non_null(strstr(g_err, "--seq-len"));
    assert_null(strstr(g_err, "held-out"));
    /* a VCF POS of 0: a bad position, not "REF runs past the contig's end" */
    path_in(path, sizeof path, "pos0.vcf");
    write_text(path, "##fileformat=VCFv4.2\n##contig=<ID=chr1>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
                     "chr1\t0\t.\tA\tC\t.\t.\t.\n");
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa --vcf %s", g_lm, path), 1);
    assert_one_error("pos0.vcf");
    assert_non_null(strstr(g_err, "POS is not a position"));
    /* --resume where no run saved a checkpoint: said so, no file named
     * that no run writes */
    assert_int_equal(tool("pretrain --resume --steps 2 --out %s " GDIR "tiny.fa", g_lm), 1);
    assert_one_error("nothing to resume");
    assert_null(strstr(g_err, ".optim"));
    /* a run that stops on a non-finite gradient does not say "update skipped" */
    assert_int_equal(tool("classify train --model %s --out %s/y.safetensors --force --seq-len 64 --batch 2 --steps 3 "
                          "--threads 2" CLASSES,
                          g_lm_inf, g_dir),
                     1);
    printf("# %s", g_err);
    assert_int_equal(lines_with("mamba-dna: error:"), 1);
    assert_null(strstr(g_err, "skipped"));
    assert_no_temp();
}

/* Another tool's model, or a classifier where a language model is needed:
 * one error line that says what the file is, exit 1, for every command
 * that reads a model (an audio U-Net once scored DNA with exit 0) */
static void test_wrong_models(void **st)
{
    (void)st;
    char au[400], cmd[1400];
    path_in(au, sizeof au, "au.safetensors");
    mb_ctx *ctx = mb_ctx_create("cpu");
    assert_non_null(ctx);
    mb_config cfg;
    mb_config_sashimi_default(&cfg);
    cfg.d_model = 8;
    cfg.n_layer = 1;
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    assert_non_null(m);
    assert_int_equal(mb_model_save(m, au), 0);
    mb_model_free(m);
    mb_ctx_free(ctx);
    static const char *const uses[] = {
        "score --model %s --fasta " GDIR "tiny.fa",
        "score --model %s --vcf " GDIR "variants.vcf --fasta " GDIR "tiny.fa",
        "embed --model %s --fasta " GDIR "tiny.fa",
        "generate --model %s --length 10",
        "classify predict --model %s --fasta " GDIR "tiny.fa",
        "classify train --model %s --out %s/w.safetensors --force --seq-len 64 --batch 2 --steps 1" CLASSES,
    };
    for (size_t i = 0; i < sizeof uses / sizeof *uses; i++) {
        snprintf(cmd, sizeof cmd, uses[i], au, g_dir);
        assert_int_equal(tool("%s", cmd), 1);
        printf("# %s", g_err);
        assert_one_error("au.safetensors");
        assert_non_null(strstr(g_err, "audio U-Net"));
    }
    /* score reads next-base likelihoods: a classifier's head is not one */
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa", g_cls), 1);
    assert_one_error("cls.safetensors");
    assert_non_null(strstr(g_err, "not a language model"));
    assert_int_equal(tool("score --model %s --vcf " GDIR "variants.vcf --fasta " GDIR "tiny.fa", g_cls), 1);
    assert_one_error("cls.safetensors");
    assert_no_temp();
}

/* Progress on one long record: bases done of the total, and an ETA */
static void test_progress(void **st)
{
    (void)st;
    setenv("MAMBA_PROGRESS_S", "0", 1);
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa --chunk 100", g_lm), 0);
    assert_non_null(strstr(g_err, "/2400 bases"));
    assert_non_null(strstr(g_err, "ETA"));
    assert_int_equal(tool("embed --model %s --fasta " GDIR "tiny.fa --chunk 100", g_lm), 0);
    assert_non_null(strstr(g_err, "/2400 bases"));
    assert_non_null(strstr(g_err, "ETA"));
    unsetenv("MAMBA_PROGRESS_S");
    /* short work prints no progress at the default interval */
    assert_int_equal(tool("score --model %s --fasta " GDIR "tiny.fa --chunk 100", g_lm), 0);
    assert_string_equal(g_err, "");
}
#endif

int main(void)
{
#ifndef MB_DNA_BIN
    printf("mamba-dna is not built (MAMBA_APPS off, or no htslib): nothing to test\n");
    return 77;
#else
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_messages), cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_log_full),       cmocka_unit_test(test_out_folder),
        cmocka_unit_test(test_input_messages), cmocka_unit_test(test_progress),
        cmocka_unit_test(test_wrong_models),
        cmocka_unit_test(test_signals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
#endif
}
