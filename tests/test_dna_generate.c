/* mamba-dna generate, through the tool itself: record count, names and
 * lengths; the same bytes for the same seed (and any --threads), other
 * sequences for another seed; continuations of a prompt against the
 * library driven directly (mb_model_forward_chunk over the prompt but its
 * last token, then mb_model_sample from that token, with the round's seed);
 * a tiny temperature and a tiny top-p against the argmax of mb_model_step's
 * logits; and one error line with the right exit code for each bad input,
 * an existing --out left as it was.
 *
 * The model is a tiny random one (d_model 16, 2 layers) made here, with its
 * embedding (the tied head) of N(0, 1) entries so that the logits are far
 * from uniform. */
/* strdup, setenv: POSIX (the project compiles as strict C11) */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <htslib/hts.h>

#include "dna_cmd.h"
#include "models/model.h"
#include "testutil.h"

#define CAP (1 << 20)
#define D_MODEL 16
#define MAXREC 16

#ifdef MB_DNA_BIN
static const char *const k_tool = MB_DNA_BIN;
#else
static const char *const k_tool = NULL;
#endif

static mb_ctx *g_ctx;
static mb_model *g_m;
static char g_model[256], g_cls_model[256], g_prompt[256], g_empty[256];
static char *g_out, *g_err;

/* the prompt records: lower case, an IUPAC code (R, read as [UNK]) and Ns,
 * a record of one base (nothing to feed before the draws) */
static const char *const k_prompt_name[] = {"p1", "p2", "p3"};
static const char *const k_prompt_seq[] = {
    "ACGTTGCAAGGCTTACGATCGATCGGGATTACAGGCATTCAGACTTAGCCAGTACGATCGATTGCAacgtgatcRYNNNNACGT",
    "TTGACA", "G"};

/* ---- helpers --------------------------------------------------------------- */

/* "mamba-dna <args>" (stdout in g_out, stderr in g_err): the exit code */
#define tool(...) mb_test_tool(k_tool, g_out, CAP, g_err, CAP, __VA_ARGS__)
#define NEED_TOOL() MB_TEST_NEED_TOOL(k_tool, "mamba-dna")

static void assert_one_error(const char *what) { mb_test_error_line(g_err, "mamba-dna", what); }

/* A usage error: exit 2, the first line "mamba-dna: error: ..." holding
 * what, then the hint. */
static void assert_usage(int rc, const char *what)
{
    assert_int_equal(rc, 2);
    assert_true(strncmp(g_err, "mamba-dna: error: ", 18) == 0);
    const char *nl = strchr(g_err, '\n');
    assert_non_null(nl);
    assert_non_null(strstr(g_err, what));
    assert_true(strstr(g_err, what) < nl);
    assert_string_equal(nl + 1, "Try 'mamba-dna generate --help'.\n");
}

typedef struct {
    char name[128];
    char *seq; /* the lines joined */
    int lines, longest, last_line;
} fa_rec;

/* Parses FASTA text into recs (at most MAXREC); the count. */
static int parse_fasta(const char *text, fa_rec *recs)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        assert_non_null(e); /* every line ends with a newline */
        const int len = (int)(e - p);
        if (*p == '>') {
            assert_true(n < MAXREC);
            fa_rec *r = &recs[n++];
            memset(r, 0, sizeof *r);
            snprintf(r->name, sizeof r->name, "%.*s", len - 1, p + 1);
            r->seq = calloc(1, 1);
        } else {
            assert_true(n > 0);
            fa_rec *r = &recs[n - 1];
            const size_t old = strlen(r->seq);
            r->seq = realloc(r->seq, old + (size_t)len + 1);
            memcpy(r->seq + old, p, (size_t)len);
            r->seq[old + (size_t)len] = '\0';
            r->lines++;
            r->longest = len > r->longest ? len : r->longest;
            r->last_line = len;
        }
        p = e + 1;
    }
    return n;
}

static void free_fasta(fa_rec *recs, int n)
{
    for (int i = 0; i < n; i++) free(recs[i].seq);
}

static char letter(int32_t t) { return dna_is_base(t) ? dna_tok_char(t) : 'N'; }

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* an --out that a failed run must leave as it was */
static const char k_old[] = ">old\nACGT\n";

/* the file holds exactly text */
static void assert_file_is(const char *path, const char *text)
{
    size_t len;
    char *got = mb_test_read_file(path, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(text));
    assert_memory_equal(got, text, len);
    free(got);
}

/* ---- shape ---------------------------------------------------------------- */

static void test_lengths(void **state)
{
    (void)state;
    NEED_TOOL();
    assert_int_equal(tool("generate --model %s --length 37 --n 5 --batch 2 --seed 3 --width 10 --threads 1", g_model), 0);
    fa_rec r[MAXREC];
    const int n = parse_fasta(g_out, r);
    assert_int_equal(n, 5);
    for (int i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "gen_%d", i + 1);
        assert_string_equal(r[i].name, want);
        assert_int_equal(strlen(r[i].seq), 37);
        assert_int_equal(strspn(r[i].seq, "ACGTN"), 37);
        /* 10 a line, the last line the rest */
        assert_int_equal(r[i].lines, 4);
        assert_int_equal(r[i].longest, 10);
        assert_int_equal(r[i].last_line, 7);
    }
    free_fasta(r, n);
    /* the default width, 60; --width 0 = one line */
    assert_int_equal(tool("generate --model %s --length 130 --threads 1", g_model), 0);
    assert_int_equal(parse_fasta(g_out, r), 1);
    assert_string_equal(r[0].name, "gen_1");
    assert_int_equal(r[0].lines, 3);
    assert_int_equal(r[0].longest, 60);
    assert_int_equal(strlen(r[0].seq), 130);
    free_fasta(r, 1);
    assert_int_equal(tool("generate --model %s --length 130 --width 0 --threads 1", g_model), 0);
    assert_int_equal(parse_fasta(g_out, r), 1);
    assert_int_equal(r[0].lines, 1);
    assert_int_equal(strlen(r[0].seq), 130);
    free_fasta(r, 1);
    /* with prompts: --n continuations of every record, named after it */
    assert_int_equal(tool("generate --model %s --prompt %s --length 9 --n 2 --threads 1", g_model, g_prompt), 0);
    assert_int_equal(parse_fasta(g_out, r), 6);
    for (int i = 0; i < 6; i++) {
        char want[64];
        snprintf(want, sizeof want, "%s_gen%d", k_prompt_name[i / 2], i % 2 + 1);
        assert_string_equal(r[i].name, want);
        assert_int_equal(strlen(r[i].seq), 9);
    }
    free_fasta(r, 6);
}

/* ---- reproducibility ------------------------------------------------------- */

static void test_seeds(void **state)
{
    (void)state;
    NEED_TOOL();
    char path[256];
    mb_test_tmp_path(path, sizeof path, "gen_seed.fa");
    const char *args = "--length 200 --n 6 --batch 4 --temperature 1.5";
    assert_int_equal(tool("generate --model %s %s --seed 11 --threads 1 --out %s", g_model, args, path), 0);
    assert_string_equal(g_out, "");
    size_t la, lb;
    char *a = mb_test_read_file(path, &la);
    assert_non_null(a);
    /* the same seed: the same bytes, on stdout too, and on 2 threads */
    assert_int_equal(tool("generate --model %s %s --seed 11 --threads 1 --out -", g_model, args), 0);
    assert_int_equal(strlen(g_out), la);
    assert_memory_equal(g_out, a, la);
    assert_int_equal(tool("generate --model %s %s --seed 11 --threads 2", g_model, args), 0);
    assert_int_equal(strlen(g_out), la);
    assert_memory_equal(g_out, a, la);
    assert_int_equal(tool("generate --model %s %s --seed 11 --threads 1 --out %s", g_model, args, path), 0);
    char *b = mb_test_read_file(path, &lb);
    assert_non_null(b);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(b);
    /* the sequences differ from one another (each row and round a stream of
     * its own), and from another seed's */
    fa_rec r[MAXREC], s[MAXREC];
    assert_int_equal(parse_fasta(a, r), 6);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < i; j++) assert_string_not_equal(r[i].seq, r[j].seq);
    assert_int_equal(tool("generate --model %s %s --seed 12 --threads 1", g_model, args), 0);
    assert_int_equal(parse_fasta(g_out, s), 6);
    for (int i = 0; i < 6; i++) assert_string_not_equal(r[i].seq, s[i].seq);
    free_fasta(r, 6);
    free_fasta(s, 6);
    free(a);
    remove(path);
}

/* ---- against the library ----------------------------------------------------- */

/* The prompt's tokens (as the tool reads them: the tokenizer's table). */
static int32_t *prompt_tokens(int rec, int64_t *L)
{
    const char *s = k_prompt_seq[rec];
    *L = (int64_t)strlen(s);
    int32_t *t = malloc(sizeof(int32_t) * (size_t)*L);
    assert_non_null(t);
    dna_tok_encode(s, (size_t)*L, t);
    return t;
}

/* What the tool must give for continuations first .. first + rows - 1 of
 * prompt record rec: the prompt but its last token through the state, then
 * n draws from the last token with the round's seed, as letters. */
static void library_round(int rec, int64_t first, int rows, int n, int64_t seed, double temp, double top_p,
                          char *letters /* (rows, n) */)
{
    int64_t L;
    int32_t *p = prompt_tokens(rec, &L);
    mb_state *st = mb_state_create(g_m, rows);
    assert_non_null(st);
    if (L > 1) {
        int32_t *tok = malloc(sizeof(int32_t) * (size_t)(rows * (L - 1)));
        assert_non_null(tok);
        for (int j = 0; j < rows; j++) memcpy(tok + j * (L - 1), p, sizeof(int32_t) * (size_t)(L - 1));
        assert_int_equal(mb_model_forward_chunk(g_m, st, tok, (int)(L - 1), NULL), 0);
        free(tok);
    }
    int32_t *in = malloc(sizeof(int32_t) * (size_t)rows), *out = malloc(sizeof(int32_t) * (size_t)(rows * n));
    assert_non_null(in);
    assert_non_null(out);
    for (int j = 0; j < rows; j++) in[j] = p[L - 1];
    const mb_sampler sp = {.temperature = (float)temp, .top_p = (float)top_p, .seed = mb_cli_rng_row(seed, rec, first)};
    assert_int_equal(mb_model_sample(g_m, st, in, n, &sp, out), 0);
    for (int i = 0; i < rows * n; i++) letters[i] = letter(out[i]);
    free(in), free(out), free(p);
    mb_state_free(st);
}

static void test_prompt_library(void **state)
{
    (void)state;
    NEED_TOOL();
    enum { N = 25, K = 3, BATCH = 2 };
    /* --chunk 16 over 2 rows: the 88-base prompt in chunks of 8 */
    for (int chunk = 16; chunk <= 65536; chunk *= 4096) {
        assert_int_equal(tool("generate --model %s --prompt %s --length %d --n %d --batch %d --seed 9 --chunk %d "
                              "--threads 1 --width 0",
                              g_model, g_prompt, N, K, BATCH, chunk),
                         0);
        fa_rec r[MAXREC];
        assert_int_equal(parse_fasta(g_out, r), 3 * K);
        int nonbase = 0;
        for (int rec = 0; rec < 3; rec++)
            for (int first = 0; first < K; first += BATCH) {
                const int rows = K - first < BATCH ? K - first : BATCH;
                char want[BATCH * N];
                library_round(rec, first, rows, N, 9, 1.0, 1.0, want);
                for (int j = 0; j < rows; j++) {
                    const fa_rec *x = &r[rec * K + first + j];
                    assert_int_equal(strlen(x->seq), N);
                    if (memcmp(x->seq, want + j * N, N) != 0) {
                        fprintf(stderr, "# %s: tool %s, library %.*s\n", x->name, x->seq, N, want + j * N);
                        fail();
                    }
                    for (int i = 0; i < N; i++) nonbase += want[j * N + i] == 'N';
                }
            }
        free_fasta(r, 3 * K);
        fprintf(stderr, "# chunk %d: %d non-base draws written as N\n", chunk, nonbase);
    }
    /* --include-prompt: the prompt as read (upper case, [UNK] as N), then
     * the same continuation */
    assert_int_equal(tool("generate --model %s --prompt %s --length %d --n 1 --seed 9 --threads 1 --include-prompt",
                          g_model, g_prompt, N),
                     0);
    fa_rec r[MAXREC];
    assert_int_equal(parse_fasta(g_out, r), 3);
    for (int rec = 0; rec < 3; rec++) {
        int64_t L;
        int32_t *p = prompt_tokens(rec, &L);
        char want[256];
        for (int64_t i = 0; i < L; i++) want[i] = letter(p[i]);
        library_round(rec, 0, 1, N, 9, 1.0, 1.0, want + L);
        want[L + N] = '\0';
        assert_string_equal(r[rec].seq, want);
        free(p);
    }
    free_fasta(r, 3);
}

/* The argmax path from an N: at every step the tool's base must be the
 * argmax of mb_model_step's logits over the model's classes (where the
 * runner-up is not within `gap`: there the draw may go either way). */
static void check_argmax_path(const char *seq, int n, double gap)
{
    const mb_config *c = mb_model_config(g_m);
    const int V = c->vocab_size, Vp = mb_config_vocab_padded(c);
    mb_state *st = mb_state_create(g_m, 1);
    float *lg = malloc(sizeof(float) * (size_t)Vp);
    assert_non_null(st);
    assert_non_null(lg);
    int32_t in = DNA_TOK_N;
    int checked = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(mb_model_step(g_m, st, &in, lg), 0);
        int best = 0;
        for (int k = 1; k < V; k++) best = lg[k] > lg[best] ? k : best;
        float second = -INFINITY;
        for (int k = 0; k < V; k++)
            if (k != best && lg[k] > second) second = lg[k];
        if (lg[best] - second > gap) {
            assert_int_equal(seq[i], letter(best));
            checked++;
        }
        /* the next input as the tool drew it: the argmax where the letter
         * is its (a non-base argmax shows as N) */
        in = letter(best) == seq[i] ? best : dna_tok_byte((unsigned char)seq[i]);
    }
    fprintf(stderr, "# argmax path: %d of %d steps clear of a tie\n", checked, n);
    assert_true(checked > n / 2);
    free(lg);
    mb_state_free(st);
}

static void test_greedy(void **state)
{
    (void)state;
    NEED_TOOL();
    enum { N = 40 };
    fa_rec r[MAXREC];
    /* a tiny temperature: the argmax, whatever the seed */
    assert_int_equal(tool("generate --model %s --length %d --n 3 --temperature 1e-3 --seed 1 --threads 1", g_model, N), 0);
    assert_int_equal(parse_fasta(g_out, r), 3);
    for (int i = 0; i < 3; i++) check_argmax_path(r[i].seq, N, 0.03);
    free_fasta(r, 3);
    /* a tiny nucleus: only the most likely class, at temperature 1 */
    assert_int_equal(tool("generate --model %s --length %d --n 2 --top-p 1e-6 --seed 5 --threads 1", g_model, N), 0);
    assert_int_equal(parse_fasta(g_out, r), 2);
    for (int i = 0; i < 2; i++) check_argmax_path(r[i].seq, N, 1e-6);
    assert_string_equal(r[0].seq, r[1].seq);
    free_fasta(r, 2);
    /* top-k of one class, at a high temperature: the same path */
    assert_int_equal(tool("generate --model %s --length %d --n 2 --top-k 1 --temperature 5 --seed 7 --threads 1", g_model, N), 0);
    assert_int_equal(parse_fasta(g_out, r), 2);
    for (int i = 0; i < 2; i++) check_argmax_path(r[i].seq, N, 1e-6);
    free_fasta(r, 2);
    /* --int8: the library's draws with its int8 weights (mb_model_set_int8),
     * which are not the fp32 ones over this many draws: the flag reached
     * the model */
    enum { NQ = 400 };
    assert_int_equal(tool("generate --model %s --prompt %s --length %d --n 2 --int8 --seed 11 --threads 1 --width 0",
                          g_model, g_prompt, NQ),
                     0);
    assert_int_equal(parse_fasta(g_out, r), 6);
    char *q8 = malloc(2 * NQ), *f32 = malloc(2 * NQ);
    assert_true(q8 && f32);
    int differ = 0;
    for (int rec = 0; rec < 3; rec++) {
        assert_int_equal(mb_model_set_int8(g_m, 1), 0);
        library_round(rec, 0, 2, NQ, 11, 1.0, 1.0, q8);
        assert_int_equal(mb_model_set_int8(g_m, 0), 0);
        library_round(rec, 0, 2, NQ, 11, 1.0, 1.0, f32);
        for (int j = 0; j < 2; j++) assert_memory_equal(r[rec * 2 + j].seq, q8 + j * NQ, NQ);
        for (int i = 0; i < 2 * NQ; i++) differ += q8[i] != f32[i];
    }
    fprintf(stderr, "# --int8: %d of %d draws differ from the fp32 model's\n", differ, 6 * NQ);
    assert_true(differ > 0);
    free_fasta(r, 6);
    /* --precision bf16: the library's draws in bf16 precision (the prompt's
     * chunks and the steps rounded as mamba_ssm's autocast), not the fp32
     * ones: the flag reached the context */
    assert_int_equal(tool("generate --model %s --prompt %s --length %d --n 2 --precision bf16 --seed 11 --threads 1 "
                          "--width 0",
                          g_model, g_prompt, NQ),
                     0);
    assert_int_equal(parse_fasta(g_out, r), 6);
    differ = 0;
    for (int rec = 0; rec < 3; rec++) {
        assert_int_equal(mb_ctx_set_precision(g_ctx, MB_PREC_BF16), 0);
        library_round(rec, 0, 2, NQ, 11, 1.0, 1.0, q8);
        assert_int_equal(mb_ctx_set_precision(g_ctx, MB_PREC_FP32), 0);
        library_round(rec, 0, 2, NQ, 11, 1.0, 1.0, f32);
        for (int j = 0; j < 2; j++) assert_memory_equal(r[rec * 2 + j].seq, q8 + j * NQ, NQ);
        for (int i = 0; i < 2 * NQ; i++) differ += q8[i] != f32[i];
    }
    fprintf(stderr, "# --precision bf16: %d of %d draws differ from fp32's\n", differ, 6 * NQ);
    assert_true(differ > 0);
    free(q8), free(f32);
    free_fasta(r, 6);
    /* top-k 2 lets a second class in somewhere over 40 draws of 2 rows */
    assert_int_equal(tool("generate --model %s --length %d --n 2 --top-k 2 --temperature 5 --seed 7 --threads 1", g_model, N), 0);
    assert_int_equal(parse_fasta(g_out, r), 2);
    assert_true(strcmp(r[0].seq, r[1].seq) != 0);
    free_fasta(r, 2);
}

/* ---- errors ------------------------------------------------------------------------ */

static void test_bad_inputs(void **state)
{
    (void)state;
    NEED_TOOL();
    /* usage: exit 2, the error and the hint */
    static const struct {
        const char *args, *what;
    } usage[] = {
        {"--length 0", "--length"},          {"--length -5", "--length"},
        {"--length ten", "--length"},        {"--length 10 --n 0", "--n"},
        {"--length 10 --temperature 0", "--temperature"},
        {"--length 10 --temperature -1", "--temperature"},
        {"--length 10 --top-p 0", "--top-p"}, {"--length 10 --top-p 1.5", "--top-p"},
        {"--length 10 --precision fp16", "--precision"},
        {"--length 10 --batch 0", "--batch"}, {"--length 10 --include-prompt", "--include-prompt needs --prompt"},
        {"", "needs --model and --length"},  {"--length 10 extra", "unexpected argument 'extra'"},
        {"--length 10 --bogus", "unrecognized option '--bogus'"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++)
        assert_usage(tool("generate --model %s %s", g_model, usage[i].args), usage[i].what);
    assert_usage(tool("generate --length 10"), "needs --model and --length");

    /* an existing --out is left as it was by every failing run */
    char out[256];
    mb_test_tmp_path(out, sizeof out, "gen_keep.fa");
    write_file(out, k_old);
    const struct {
        const char *model, *extra, *what;
    } bad[] = {
        {MB_DATA_DIR "/genomics/missing.safetensors", "", "missing.safetensors"},
        {g_cls_model, "", "a classifier (2 classes), not a language model"},
        {MB_DATA_DIR "/genomics/tiny.fa", "", "tiny.fa"},
        {g_model, "--prompt " MB_DATA_DIR "/genomics/missing.fa", "missing.fa"},
        {g_model, "--prompt " MB_DATA_DIR "/genomics/noheader.fa", "noheader.fa"},
        {g_model, NULL, "record 'e2' is empty"}, /* NULL: --prompt g_empty */
        {g_model, "--bf16", "--bf16: bf16 weights are for GPU inference"}, /* on the CPU */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[512];
        if (bad[i].extra) snprintf(extra, sizeof extra, "%s", bad[i].extra);
        else snprintf(extra, sizeof extra, "--prompt %s", g_empty);
        assert_int_equal(tool("generate --model %s --length 10 %s --out %s", bad[i].model, extra, out), 1);
        assert_one_error(bad[i].what);
        assert_file_is(out, k_old);
    }
    /* the empty record named with its file */
    assert_int_equal(tool("generate --model %s --length 10 --prompt %s", g_model, g_empty), 1);
    assert_non_null(strstr(g_err, g_empty));
    assert_string_equal(g_out, "");
    remove(out);
    /* an --out that cannot be written: at once, nothing made */
    char path[256];
    mb_test_tmp_path(path, sizeof path, "nodir/gen.fa");
    assert_int_equal(tool("generate --model %s --length 10 --out %s", g_model, path), 1);
    assert_one_error("nodir/gen.fa");
    assert_int_equal(access(path, F_OK), -1);
    /* checked before the model is even read */
    assert_int_equal(tool("generate --model " MB_DATA_DIR "/genomics/missing.safetensors --length 10 --out %s", path), 1);
    assert_one_error("nodir/gen.fa");
    /* a full disk on stdout */
    assert_int_equal(tool("generate --model %s --length 10 >/dev/full", g_model), 1);
    assert_one_error("write error");
    /* --help and --version */
    assert_int_equal(tool("generate --help"), 0);
    assert_non_null(strstr(g_out, "Example"));
    assert_non_null(strstr(g_out, "--include-prompt"));
    assert_int_equal(tool("generate --version"), 0);
    assert_non_null(strstr(g_out, "mamba-dna"));
}

/* progress lines on stderr, when asked for at every update */
static void test_progress(void **state)
{
    (void)state;
    NEED_TOOL();
    /* by default only after 5 s of work: none in a short run */
    char path[256];
    mb_test_tmp_path(path, sizeof path, "gen_progress.fa");
    assert_int_equal(tool("generate --model %s --length 50 --n 2 --threads 1 --out %s", g_model, path), 0);
    assert_null(strstr(g_err, "bases drawn"));
    setenv("MAMBA_PROGRESS_S", "0", 1);
    assert_int_equal(tool("generate --model %s --length 50 --n 2 --threads 1 --out %s", g_model, path), 0);
    remove(path);
    unsetenv("MAMBA_PROGRESS_S");
    assert_non_null(strstr(g_err, "mamba-dna generate: "));
    assert_non_null(strstr(g_err, "/100 bases drawn"));
    assert_non_null(strstr(g_err, "ETA"));
}

/* Ctrl-C or SIGTERM mid-run: exit 130, one line, an existing --out as it was */
static void test_interrupt(void **state)
{
    (void)state;
    NEED_TOOL();
    char out[256], cmd[1024];
    mb_test_tmp_path(out, sizeof out, "gen_interrupt.fa");
    write_file(out, k_old);
    /* k_tool is set here (NEED_TOOL), "false" only keeps the compiler from seeing NULL */
    snprintf(cmd, sizeof cmd, "%s generate --model %s --length 1M --n 4 --threads 1 --out %s", k_tool ? k_tool : "false",
             g_model, out);
    setenv("MAMBA_PROGRESS_S", "0", 1);
    const int rc = mb_test_signal_run(cmd, "bases drawn", SIGINT, g_out, CAP, g_err, CAP);
    unsetenv("MAMBA_PROGRESS_S");
    assert_int_equal(rc, 130);
    assert_non_null(strstr(g_err, "mamba-dna: error: interrupted after "));
    assert_non_null(strstr(g_err, "nothing written (--out as it was)"));
    assert_file_is(out, k_old);
    remove(out);
}

/* ---- setup ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    hts_set_log_level(HTS_LOG_OFF);
    g_out = malloc(CAP);
    g_err = malloc(CAP);
    g_ctx = mb_ctx_create("cpu");
    if (!g_out || !g_err || !g_ctx) return -1;
    mb_ctx_set_threads(g_ctx, 1);
    mb_config cfg;
    mb_config_default(&cfg);
    dna_cmd_config(&cfg);
    cfg.d_model = D_MODEL;
    cfg.n_layer = 2;
    cfg.tie_embeddings = 0;
    if (!(g_m = mb_model_create(g_ctx, &cfg, 3))) return -1;
    mb_rng r;
    mb_rng_seed(&r, 11);
    const mb_param *e = mb_test_param(g_m, "backbone.embedding.weight");
    for (size_t i = 0; i < e->numel; i++) g_m->params.data[e->offset + i] = (float)mb_rng_normal(&r);
    /* an untied head (a tied one with large embeddings mostly repeats its
     * input): N(0, 1) rows for the bases, small ones for the other classes,
     * so most draws are bases and a few are not (written as N) */
    const mb_param *h = mb_test_param(g_m, "lm_head.weight");
    for (size_t i = 0; i < h->numel; i++) {
        const int cls = (int)(i / (size_t)D_MODEL);
        g_m->params.data[h->offset + i] = (float)mb_rng_normal(&r) * (dna_is_base(cls) ? 1.0f : 0.15f);
    }
    mb_test_tmp_path(g_model, sizeof g_model, "gen_model.safetensors");
    if (mb_model_save(g_m, g_model)) return -1;
    /* a classifier checkpoint: not what generate takes */
    cfg.n_classes = 2;
    mb_model *cls = mb_model_create(g_ctx, &cfg, 4);
    mb_test_tmp_path(g_cls_model, sizeof g_cls_model, "gen_cls.safetensors");
    if (!cls || mb_model_save(cls, g_cls_model)) return -1;
    mb_model_free(cls);
    mb_test_tmp_path(g_prompt, sizeof g_prompt, "gen_prompt.fa");
    FILE *f = fopen(g_prompt, "w");
    if (!f) return -1;
    for (int i = 0; i < 3; i++) fprintf(f, ">%s desc\n%s\n", k_prompt_name[i], k_prompt_seq[i]);
    if (fclose(f)) return -1;
    mb_test_tmp_path(g_empty, sizeof g_empty, "gen_empty_rec.fa");
    if (!(f = fopen(g_empty, "w"))) return -1;
    fputs(">e1\nACGT\n>e2\n>e3\nGG\n", f);
    return fclose(f) ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(g_model);
    remove(g_cls_model);
    remove(g_prompt);
    remove(g_empty);
    mb_model_free(g_m);
    mb_ctx_free(g_ctx);
    free(g_out);
    free(g_err);
    return 0;
}

int main(void)
{
    setenv("OMP_WAIT_POLICY", "passive", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lengths),        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_prompt_library), cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_bad_inputs),     cmocka_unit_test(test_progress),
        cmocka_unit_test(test_interrupt),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
