/* mamba-dna score and embed, through the tool itself: per-record
 * log-likelihoods against a direct computation (one mb_model_forward over
 * the whole record), chunked against whole, every input form alike, variant
 * LLRs against windows scored directly, the VCF and TSV outputs, embeddings
 * against mb_model_forward_chunk_pooled over the whole record, windows, the
 * npy format, and one error line (exit 1) for each bad input.
 *
 * The model is a tiny random one (d_model 16, 2 layers) made here, with its
 * embedding (the tied head) scaled up so that the logits, and the LLRs, are
 * far from uniform. Fixtures: data/genomics/ (see data/README.md). */
/* strdup, access, setenv: POSIX (the project compiles as strict C11) */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <htslib/hts.h>
#include <htslib/vcf.h>

#include "dna_cmd.h"
#include "dna_seq.h"
#include "dna_tok.h"
#include "models/model.h"
#include "testutil.h"

#define DIR MB_DATA_DIR "/genomics/"
#define CAP (1 << 20)
#define D_MODEL 16

#ifdef MB_DNA_BIN
static const char *const k_tool = MB_DNA_BIN;
#else
static const char *const k_tool = NULL; /* the tool is not built: CLI cases skip */
#endif

static mb_ctx *g_ctx;
static mb_model *g_m;
static dna_set *g_set; /* tiny.fa, for the direct computations */
static char g_model[256], g_bad_model[256];
static char *g_out, *g_err;

/* ---- helpers --------------------------------------------------------------- */

/* "mamba-dna <args>" (stdout in g_out, stderr in g_err): the exit code */
#define tool(...) mb_test_tool(k_tool, g_out, CAP, g_err, CAP, __VA_ARGS__)
#define NEED_TOOL() MB_TEST_NEED_TOOL(k_tool, "mamba-dna")

/* stderr is exactly one line "mamba-dna: error: ..." that contains `what`. */
static void assert_one_error(const char *what) { mb_test_error_line(g_err, "mamba-dna", what); }

/* Splits s in place at `sep`; returns the number of fields (at most max). */
static int split(char *s, char sep, char **f, int max)
{
    int n = 0;
    while (n < max) {
        f[n++] = s;
        char *p = strchr(s, sep);
        if (!p) break;
        *p = '\0';
        s = p + 1;
    }
    return n;
}

/* The lines of text (a copy, to free), the last newline dropped. */
static char *lines_of(const char *text, char **lines, int max, int *n)
{
    char *t = strdup(text);
    assert_non_null(t);
    size_t len = strlen(t);
    assert_true(len > 0 && t[len - 1] == '\n');
    t[len - 1] = '\0';
    *n = split(t, '\n', lines, max);
    return t;
}

static int32_t *record_tokens(int64_t rec, int64_t start, int64_t len)
{
    int32_t *t = malloc(sizeof(int32_t) * (size_t)(len > 0 ? len : 1));
    char err[512];
    assert_non_null(t);
    assert_int_equal(dna_set_fetch(g_set, rec, start, len, t, err, sizeof err), 0);
    return t;
}

/* sum over t >= 1 of log softmax(logits[t - 1])[tok[t]], the model run once
 * over the whole sequence */
static double direct_ll(const int32_t *tok, int64_t L)
{
    if (L < 2) return 0;
    const int Vp = mb_config_vocab_padded(mb_model_config(g_m));
    float *lg = malloc(sizeof(float) * (size_t)(L * Vp));
    assert_non_null(lg);
    assert_int_equal(mb_model_forward(g_m, tok, 1, (int)L, NULL, lg, NULL), 0);
    double ll = 0;
    for (int64_t t = 1; t < L; t++) {
        const float *z = lg + (t - 1) * Vp;
        double mx = z[0], s = 0;
        for (int k = 1; k < Vp; k++) mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < Vp; k++) s += exp((double)z[k] - mx);
        ll += (double)z[tok[t]] - mx - log(s);
    }
    free(lg);
    return ll;
}

/* mean of the final normed hidden states over tok[0..L), in one chunk */
static void direct_embed(const int32_t *tok, int64_t L, float *mean)
{
    mb_state *st = mb_state_create(g_m, 1);
    assert_non_null(st);
    memset(mean, 0, sizeof(float) * D_MODEL);
    assert_int_equal(mb_model_forward_chunk_pooled(g_m, st, tok, (int)L, NULL, mean), 0);
    for (int k = 0; k < D_MODEL; k++) mean[k] /= (float)L;
    mb_state_free(st);
}

static void assert_rel(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol * fabs(want) + 1e-12)) {
        fprintf(stderr, "# %s: got %.9g, want %.9g\n", what, got, want);
        fail();
    }
}

/* ||a - b|| / ||b|| */
static double rel_err(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

/* ---- score: per record ------------------------------------------------------- */

typedef struct {
    char name[64];
    long long len;
    double ll, bpb, ppl;
} score_row;

/* Parses the score TSV of g_out (header checked) into rows; the count. */
static int parse_scores(score_row *rows, int max)
{
    char *lines[64];
    int n;
    char *t = lines_of(g_out, lines, 64, &n);
    assert_string_equal(lines[0], "name\tlength\tlog_likelihood\tbits_per_base\tperplexity");
    assert_true(n - 1 <= max);
    for (int i = 1; i < n; i++) {
        char *f[8] = {0};
        assert_int_equal(split(lines[i], '\t', f, 8), 5);
        score_row *r = &rows[i - 1];
        snprintf(r->name, sizeof r->name, "%s", f[0]);
        r->len = strtoll(f[1], NULL, 10);
        r->ll = strtod(f[2], NULL);
        r->bpb = strtod(f[3], NULL);
        r->ppl = strtod(f[4], NULL);
    }
    free(t);
    return n - 1;
}

static void test_score_direct(void **state)
{
    (void)state;
    NEED_TOOL();
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --threads 1", g_model), 0);
    assert_string_equal(g_err, "");
    score_row rows[8];
    assert_int_equal(parse_scores(rows, 8), 3);
    for (int64_t i = 0; i < 3; i++) {
        const int64_t L = dna_set_len(g_set, i);
        assert_string_equal(rows[i].name, dna_set_name(g_set, i));
        assert_int_equal(rows[i].len, L);
        int32_t *tok = record_tokens(i, 0, L);
        const double ll = direct_ll(tok, L);
        free(tok);
        fprintf(stderr, "# %s: ll %.6f (direct %.6f), %.4f bits/base\n", rows[i].name, rows[i].ll, ll, rows[i].bpb);
        assert_rel(rows[i].ll, ll, 1e-5, "log_likelihood");
        assert_rel(rows[i].bpb, -ll / log(2.0) / (double)(L - 1), 1e-5, "bits_per_base");
        assert_rel(rows[i].ppl, exp(-ll / (double)(L - 1)), 1e-5, "perplexity");
    }
}

static void test_score_chunked(void **state)
{
    (void)state;
    NEED_TOOL();
    score_row a[8], b[8];
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --chunk 100000", g_model), 0);
    assert_int_equal(parse_scores(b, 8), 3);
    /* a chunk's last position is scored with the next chunk's first token
     * as its target: with chunks of 1 every position is */
    for (int chunk = 1; chunk <= 7; chunk += 6) {
        assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --chunk %d", g_model, chunk), 0);
        assert_int_equal(parse_scores(a, 8), 3);
        for (int i = 0; i < 3; i++) {
            assert_string_equal(a[i].name, b[i].name);
            assert_int_equal(a[i].len, b[i].len);
            assert_rel(a[i].ll, b[i].ll, 1e-5, "chunked log_likelihood");
            assert_rel(a[i].bpb, b[i].bpb, 1e-5, "chunked bits_per_base");
            assert_rel(a[i].ppl, b[i].ppl, 1e-5, "chunked perplexity");
        }
    }
}

/* --precision bf16: the same scores within bf16's rounding (logits and
 * activations rounded to 2^-9 relative move this random model's 16
 * bits/base by 0.14%: held to 0.5%), not the same numbers (the rounding is
 * applied: they differ) */
static void test_score_bf16(void **state)
{
    (void)state;
    NEED_TOOL();
    score_row a[8], b[8];
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa", g_model), 0);
    assert_int_equal(parse_scores(a, 8), 3);
    assert_int_equal(tool("score --precision bf16 --model %s --fasta " DIR "tiny.fa", g_model), 0);
    assert_int_equal(parse_scores(b, 8), 3);
    int differ = 0;
    for (int i = 0; i < 3; i++) {
        fprintf(stderr, "# %s: %.6f bits/base fp32, %.6f bf16\n", a[i].name, a[i].bpb, b[i].bpb);
        assert_string_equal(a[i].name, b[i].name);
        assert_true(fabs(a[i].bpb - b[i].bpb) < 0.005 * a[i].bpb);
        differ += a[i].ll != b[i].ll;
    }
    assert_true(differ > 0);
}

static void test_score_inputs(void **state)
{
    (void)state;
    NEED_TOOL();
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa", g_model), 0);
    char *plain = strdup(g_out);
    assert_non_null(plain);
    assert_int_equal(tool("score --model %s --fasta " DIR "plain.fa.gz", g_model), 0);
    assert_string_equal(g_out, plain);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa.gz", g_model), 0);
    assert_string_equal(g_out, plain);
    free(plain);
    /* reads: one row per primary read; a read of 12 bases has 11 predictions */
    score_row rows[8];
    assert_int_equal(tool("score --model %s --fasta " DIR "reads.bam", g_model), 0);
    assert_int_equal(parse_scores(rows, 8), 5);
    assert_string_equal(rows[4].name, "u2");
    assert_int_equal(rows[4].len, 12);
    assert_int_equal(tool("score --model %s --fasta " DIR "reads.cram --reference " DIR "tiny.fa", g_model), 0);
    assert_int_equal(parse_scores(rows, 8), 5);
}

/* a record of 1 base: 0 and nan, nan (nothing is predicted) */
static void test_score_short(void **state)
{
    (void)state;
    NEED_TOOL();
    char path[256];
    mb_test_tmp_path(path, sizeof path, "one.fa");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(">one\nA\n>two\nAC\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(tool("score --model %s --fasta %s", g_model, path), 0);
    remove(path);
    char *lines[8];
    int n;
    char *t = lines_of(g_out, lines, 8, &n);
    assert_int_equal(n, 3);
    assert_string_equal(lines[1], "one\t1\t0\tnan\tnan");
    assert_true(strncmp(lines[2], "two\t2\t-", 7) == 0);
    free(t);
}

/* ---- score: variants ---------------------------------------------------------- */

/* The tool's windows: W bases from pos - W/2, widened to hold REF, clipped. */
static void variant_ll(const char *contig, int64_t pos, const char *ref, const char *alt, int64_t W,
                       double *ll_ref, double *ll_alt)
{
    const int64_t rec = dna_set_find(g_set, contig);
    assert_true(rec >= 0);
    const int64_t len = dna_set_len(g_set, rec), nref = (int64_t)strlen(ref), nalt = (int64_t)strlen(alt);
    int64_t s = pos - W / 2, e = s + W;
    if (e < pos + nref) e = pos + nref;
    if (s < 0) s = 0;
    if (e > len) e = len;
    int32_t *rw = record_tokens(rec, s, e - s);
    /* REF is what the FASTA has */
    for (int64_t i = 0; i < nref; i++) assert_int_equal(dna_tok_char(rw[pos - s + i]), ref[i]);
    const int64_t na = e - s - nref + nalt;
    int32_t *aw = malloc(sizeof(int32_t) * (size_t)na);
    assert_non_null(aw);
    int64_t k = 0;
    for (int64_t i = s; i < pos; i++) aw[k++] = rw[i - s];
    for (int64_t i = 0; i < nalt; i++) aw[k++] = dna_tok_byte((unsigned char)alt[i]);
    for (int64_t i = pos + nref; i < e; i++) aw[k++] = rw[i - s];
    assert_int_equal(k, na);
    *ll_ref = direct_ll(rw, e - s);
    *ll_alt = direct_ll(aw, na);
    free(rw);
    free(aw);
}

/* --tsv: every scored variant against windows scored directly; the rows'
 * llr by line into llr[] */
static void check_variant_tsv(int64_t W, double *llr, int *n_rows)
{
    static const char *const ids[6] = {"snv1", "ins1", "del1", "multi", ".", "snv3"};
    char *lines[16];
    int n;
    char *t = lines_of(g_out, lines, 16, &n);
    assert_string_equal(lines[0], "contig\tpos\tid\tref\talt\tll_ref\tll_alt\tllr");
    assert_int_equal(n, 7);
    for (int i = 1; i < n; i++) {
        char *f[10] = {0};
        assert_int_equal(split(lines[i], '\t', f, 10), 8);
        assert_string_equal(f[2], ids[i - 1]);
        double lr, la;
        variant_ll(f[0], strtoll(f[1], NULL, 10) - 1, f[3], f[4], W, &lr, &la);
        const double tr = strtod(f[5], NULL), ta = strtod(f[6], NULL), tl = strtod(f[7], NULL);
        fprintf(stderr, "# W %lld %s %s>%s: llr %.6f (direct %.6f)\n", (long long)W, f[2], f[3], f[4], tl, la - lr);
        assert_rel(tr, lr, 1e-5, "ll_ref");
        assert_rel(ta, la, 1e-5, "ll_alt");
        assert_true(fabs(tl - (la - lr)) <= 1e-5 * (fabs(lr) + fabs(la)));
        llr[i - 1] = tl;
    }
    /* the multi-allelic record is scored with its first ALT */
    free(t);
    *n_rows = n - 1;
}

static void test_score_vcf(void **state)
{
    (void)state;
    NEED_TOOL();
    double llr[6], llr_w[6];
    int n;
    /* a window of 64 (clipped at chr1's start for snv1) and the default 1024
     * (every window clipped: the contigs are shorter) */
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "variants.vcf --tsv --window 64", g_model), 0);
    assert_non_null(strstr(g_err, "1 skipped (symbolic ALT)"));
    check_variant_tsv(64, llr_w, &n);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "variants.vcf --tsv", g_model), 0);
    check_variant_tsv(1024, llr, &n);
    char *tsv = strdup(g_out);
    assert_non_null(tsv);
    /* bgzip VCF and BCF: the same rows; a small batch: the same numbers */
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa.gz --vcf " DIR "variants.vcf.gz --tsv", g_model), 0);
    assert_string_equal(g_out, tsv);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "variants.bcf --tsv", g_model), 0);
    assert_string_equal(g_out, tsv);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "variants.vcf --tsv --batch 1 --chunk 5", g_model), 0);
    double llr_b[6];
    check_variant_tsv(1024, llr_b, &n);
    for (int i = 0; i < 6; i++) assert_true(fabs(llr_b[i] - llr[i]) <= 1e-4);
    free(tsv);

    /* the VCF: every input record, MAMBA_LLR on the scored ones */
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "variants.vcf", g_model), 0);
    char path[256];
    mb_test_tmp_path(path, sizeof path, "llr.vcf");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(g_out, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_non_null(strstr(g_out, "##INFO=<ID=MAMBA_LLR,Number=1,Type=Float,Description=\""));
    htsFile *in = bcf_open(path, "r");
    assert_non_null(in);
    bcf_hdr_t *hdr = bcf_hdr_read(in);
    assert_non_null(hdr);
    const int id = bcf_hdr_id2int(hdr, BCF_DT_ID, "MAMBA_LLR");
    assert_true(id >= 0 && bcf_hdr_idinfo_exists(hdr, BCF_HL_INFO, id));
    assert_int_equal(bcf_hdr_id2type(hdr, BCF_HL_INFO, id), BCF_HT_REAL);
    bcf1_t *rec = bcf_init();
    int nrec = 0, scored = 0;
    float *val = NULL;
    int nval = 0;
    while (bcf_read(in, hdr, rec) == 0) {
        assert_int_equal(bcf_unpack(rec, BCF_UN_ALL), 0);
        const int r = bcf_get_info_float(hdr, rec, "MAMBA_LLR", &val, &nval);
        if (strcmp(rec->d.id, "sv1") == 0) {
            assert_true(r < 0); /* symbolic: passed through */
            char *svt = NULL;
            int ns = 0;
            assert_true(bcf_get_info_string(hdr, rec, "SVTYPE", &svt, &ns) > 0);
            assert_string_equal(svt, "DEL");
            free(svt);
        } else {
            assert_int_equal(r, 1);
            assert_true(fabs(val[0] - llr[scored]) <= 1e-5 * fabs(llr[scored]) + 2e-6);
            scored++;
        }
        nrec++;
    }
    assert_int_equal(nrec, 7);
    assert_int_equal(scored, 6);
    free(val);
    bcf_destroy(rec);
    bcf_hdr_destroy(hdr);
    hts_close(in);
    remove(path);

    /* a contig the FASTA lacks: one line, nothing on stdout */
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "badcontig.vcf", g_model), 1);
    assert_one_error("chrX");
    assert_non_null(strstr(g_err, "badcontig.vcf"));
    assert_string_equal(g_out, "");
    /* a REF that is not the FASTA's */
    mb_test_tmp_path(path, sizeof path, "badref.vcf");
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("##fileformat=VCFv4.2\n##contig=<ID=chr1,length=1200>\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
          "chr1\t21\tx\tG\tC\t.\tPASS\t.\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf %s --tsv", g_model, path), 1);
    assert_one_error("does not match");
    assert_string_equal(g_out, "");
    remove(path);
    /* a VCF that is not one */
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "tiny.fa", g_model), 1);
    assert_one_error("tiny.fa");
}

/* ---- embed ---------------------------------------------------------------------- */

typedef struct {
    char name[64];
    long long start, end;
    float v[D_MODEL];
} embed_row;

static int parse_embeds(embed_row *rows, int max)
{
    char *lines[128];
    int n;
    char *t = lines_of(g_out, lines, 128, &n);
    char head[512] = "name\tstart\tend";
    for (int k = 0; k < D_MODEL; k++) snprintf(head + strlen(head), sizeof head - strlen(head), "\tdim%d", k);
    assert_string_equal(lines[0], head);
    assert_true(n - 1 <= max);
    for (int i = 1; i < n; i++) {
        char *f[D_MODEL + 4] = {0};
        assert_int_equal(split(lines[i], '\t', f, D_MODEL + 4), D_MODEL + 3);
        embed_row *r = &rows[i - 1];
        snprintf(r->name, sizeof r->name, "%s", f[0]);
        r->start = strtoll(f[1], NULL, 10);
        r->end = strtoll(f[2], NULL, 10);
        for (int k = 0; k < D_MODEL; k++) r->v[k] = strtof(f[3 + k], NULL);
    }
    free(t);
    return n - 1;
}

static void check_embed(const embed_row *r)
{
    const int64_t rec = dna_set_find(g_set, r->name);
    assert_true(rec >= 0);
    int32_t *tok = record_tokens(rec, r->start, r->end - r->start);
    float want[D_MODEL];
    direct_embed(tok, r->end - r->start, want);
    free(tok);
    const double e = rel_err(r->v, want, D_MODEL);
    if (!(e <= 1e-5)) {
        fprintf(stderr, "# embedding of %s[%lld, %lld): relative error %.3g\n", r->name, r->start, r->end, e);
        fail();
    }
}

static void test_embed(void **state)
{
    (void)state;
    NEED_TOOL();
    static embed_row rows[64], rows2[64];
    /* whole records, and the same in chunks of 7 */
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa", g_model), 0);
    assert_int_equal(parse_embeds(rows, 64), 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(rows[i].name, dna_set_name(g_set, i));
        assert_int_equal(rows[i].start, 0);
        assert_int_equal(rows[i].end, dna_set_len(g_set, i));
        check_embed(&rows[i]);
    }
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --chunk 7", g_model), 0);
    assert_int_equal(parse_embeds(rows2, 64), 3);
    for (int i = 0; i < 3; i++) assert_true(rel_err(rows2[i].v, rows[i].v, D_MODEL) <= 1e-5);

    /* windows of 100 every 50: (1200 - 100) / 50 + 1 + 13 + 9 rows; batched
     * and one by one in chunks alike */
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --window 100 --stride 50", g_model), 0);
    assert_int_equal(parse_embeds(rows, 64), 23 + 13 + 9);
    assert_string_equal(rows[23].name, "chr2");
    assert_int_equal(rows[23].start, 0);
    assert_int_equal(rows[44].start, 400);
    assert_int_equal(rows[44].end, 500);
    for (int i = 0; i < 45; i++) {
        assert_int_equal(rows[i].end - rows[i].start, 100);
        if (i % 7 == 0) check_embed(&rows[i]);
    }
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --window 100 --stride 50 --chunk 7", g_model), 0);
    assert_int_equal(parse_embeds(rows2, 64), 45);
    for (int i = 0; i < 45; i++) assert_true(rel_err(rows2[i].v, rows[i].v, D_MODEL) <= 1e-5);
    /* a window longer than a record: the whole record; the last partial
     * window of chr1 dropped */
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --window 800", g_model), 0);
    assert_int_equal(parse_embeds(rows, 64), 3);
    assert_int_equal(rows[0].end, 800);
    assert_int_equal(rows[1].end, 700);
    assert_int_equal(rows[2].end, 500);
    check_embed(&rows[1]);

    /* npy, with its rows beside it */
    char path[256], rpath[300];
    mb_test_tmp_path(path, sizeof path, "emb.npy");
    snprintf(rpath, sizeof rpath, "%s.rows.tsv", path);
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --format npy --out %s", g_model, path), 0);
    assert_string_equal(g_out, "");
    size_t n = 0;
    unsigned char *b = mb_test_read_file(path, &n);
    assert_non_null(b);
    assert_int_equal(memcmp(b, "\x93NUMPY\x01\x00", 8), 0);
    const size_t hl = b[8] | (size_t)b[9] << 8;
    assert_int_equal((10 + hl) % 64, 0);
    assert_int_equal(b[10 + hl - 1], '\n');
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 16), }";
    assert_int_equal(memcmp(b + 10, dict, strlen(dict)), 0);
    for (size_t i = 10 + strlen(dict); i < 10 + hl - 1; i++) assert_int_equal(b[i], ' ');
    assert_int_equal(n, 10 + hl + 3 * D_MODEL * sizeof(float));
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa", g_model), 0);
    assert_int_equal(parse_embeds(rows, 64), 3);
    for (int i = 0; i < 3; i++) {
        float v[D_MODEL];
        for (int k = 0; k < D_MODEL; k++) {
            const unsigned char *p = b + 10 + hl + ((size_t)i * D_MODEL + k) * 4;
            uint32_t u = p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
            memcpy(&v[k], &u, 4);
        }
        assert_true(rel_err(v, rows[i].v, D_MODEL) <= 1e-5);
    }
    free(b);
    char *rows_tsv = mb_test_read_file(rpath, &n);
    assert_non_null(rows_tsv);
    assert_int_equal(n, strlen("name\tstart\tend\nchr1\t0\t1200\nchr2\t0\t700\nchr3\t0\t500\n"));
    assert_int_equal(memcmp(rows_tsv, "name\tstart\tend\nchr1\t0\t1200\nchr2\t0\t700\nchr3\t0\t500\n", n), 0);
    free(rows_tsv);
    remove(path);
    remove(rpath);

    /* TSV to --out: what stdout gets */
    mb_test_tmp_path(path, sizeof path, "emb.tsv");
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --out %s", g_model, path), 0);
    char *stdout_copy = strdup(g_out);
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa", g_model), 0);
    char *file = mb_test_read_file(path, &n);
    assert_non_null(file);
    assert_int_equal(n, strlen(g_out));
    assert_int_equal(memcmp(file, g_out, n), 0);
    assert_string_equal(stdout_copy, "");
    free(file);
    free(stdout_copy);
    remove(path);

    /* a directory that cannot be written: one line, no file */
    mb_test_tmp_path(path, sizeof path, "nodir/emb.tsv");
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --out %s", g_model, path), 1);
    assert_one_error("nodir/emb.tsv");
    assert_int_equal(access(path, F_OK), -1);
    mb_test_tmp_path(path, sizeof path, "nodir/emb.npy");
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --out %s --format npy", g_model, path), 1);
    assert_one_error("nodir/emb.npy");
    /* a bad input after the output was named: nothing left behind */
    mb_test_tmp_path(path, sizeof path, "emb2.tsv");
    assert_int_equal(tool("embed --model %s --fasta " DIR "empty.fa --out %s", g_model, path), 1);
    assert_one_error("empty.fa");
    assert_int_equal(access(path, F_OK), -1);
}

/* ---- errors ------------------------------------------------------------------------ */

/* Any LM whose vocabulary covers the tokenizer's 12 ids scores DNA
 * (issue 18): a folder transformers saved, vocab_size 16, loads and
 * scores every record of the fixture; a vocabulary of 10 does not. */
/* A bidirectional (masked) model: score --vcf gives each substitution's
 * masked marginal, checked against mb_model_forward's logits on the
 * reference window with the variant's base masked; indels are passed
 * through and counted; per-record scores and generate are refused */
static void test_score_vcf_masked(void **state)
{
    (void)state;
    NEED_TOOL();
    mb_config cfg;
    mb_config_default(&cfg);
    dna_cmd_config(&cfg);
    cfg.d_model = D_MODEL;
    cfg.n_layer = 2;
    cfg.arch = MB_ARCH_BIDIR;
    cfg.rc_equivariant = 1;
    dna_cmd_complement(cfg.rc_complement);
    mb_model *m = mb_model_create(g_ctx, &cfg, 5);
    assert_non_null(m);
    mb_rng r;
    mb_rng_seed(&r, 12);
    const mb_param *e = mb_test_param(m, "backbone.embedding.weight");
    for (size_t i = 0; i < e->numel; i++) m->params.data[e->offset + i] = (float)mb_rng_normal(&r);
    char path[256];
    mb_test_tmp_path(path, sizeof path, "score_bidir.safetensors");
    assert_int_equal(mb_model_save(m, path), 0);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "variants.vcf --tsv --window 64", path),
                     0);
    assert_non_null(strstr(g_err, "2 skipped (ALT and REF of different lengths"));
    char *lines[16];
    int n;
    char *t = lines_of(g_out, lines, 16, &n);
    assert_string_equal(lines[0], "contig\tpos\tid\tref\talt\tll_ref\tll_alt\tllr");
    assert_int_equal(n - 1, 4); /* the substitutions: snv1, multi, chr2:401, snv3 */
    const int Vp = mb_config_vocab_padded(&cfg);
    for (int i = 1; i < n; i++) {
        char *f[9] = {0};
        assert_int_equal(split(lines[i], '\t', f, 9), 8);
        const int64_t pos = strtoll(f[1], NULL, 10) - 1, rec = dna_set_find(g_set, f[0]);
        assert_true(rec >= 0);
        const int64_t len = dna_set_len(g_set, rec);
        int64_t s0 = pos - 32, e0 = s0 + 64;
        if (s0 < 0) s0 = 0;
        if (e0 > len) e0 = len;
        int32_t *w = record_tokens(rec, s0, e0 - s0);
        int32_t ref_tok, alt_tok;
        dna_tok_encode(f[3], 1, &ref_tok);
        dna_tok_encode(f[4], 1, &alt_tok);
        assert_int_equal(w[pos - s0], ref_tok);
        w[pos - s0] = DNA_TOK_MASK;
        float *lg = malloc(sizeof(float) * (size_t)((e0 - s0) * Vp));
        assert_non_null(lg);
        assert_int_equal(mb_model_forward(m, w, 1, (int)(e0 - s0), NULL, lg, NULL), 0);
        const float *z = lg + (pos - s0) * Vp;
        double mx = z[0], sum = 0;
        for (int k = 1; k < Vp; k++) mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < Vp; k++) sum += exp((double)z[k] - mx);
        const double lr = z[ref_tok] - mx - log(sum), la = z[alt_tok] - mx - log(sum);
        printf("# masked marginal %s:%s %s>%s: tool %s / %s, direct %.6f / %.6f\n", f[0], f[1], f[3], f[4], f[5],
               f[6], lr, la);
        assert_rel(strtod(f[5], NULL), lr, 1e-5, "ll_ref");
        assert_rel(strtod(f[6], NULL), la, 1e-5, "ll_alt");
        assert_rel(strtod(f[7], NULL), la - lr, 1e-4, "llr");
        free(lg);
        free(w);
    }
    free(t);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa", path), 1);
    assert_one_error("no likelihood of a whole record");
    assert_int_equal(tool("generate --model %s --length 5", path), 1);
    assert_one_error("generate needs a causal one");
    mb_model_free(m);
    remove(path);
}

static void test_score_other_vocab(void **state)
{
    (void)state;
    assert_int_equal(tool("score --model %s/hf/tied --fasta " DIR "tiny.fa", MB_FIXTURE_DIR), 0);
    assert_true(mb_test_count(g_out, "\n") >= 2); /* the header and a row a record */
    assert_null(strstr(g_out, "nan"));
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa", g_bad_model), 1);
    assert_one_error("does not cover the DNA tokenizer's 12");
}

/* mamba-dna export: the model as a transformers folder and back as one
 * file, each scoring exactly as the original (the weights are copied) */
static void test_export(void **state)
{
    (void)state;
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa", g_model), 0);
    char *want = strdup(g_out), dir[256], back[256];
    mb_test_tmp_path(dir, sizeof dir, "export_hf");
    mb_test_tmp_path(back, sizeof back, "export_back.safetensors");
    assert_int_equal(tool("export --model %s --format hf --out %s", g_model, dir), 0);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa", dir), 0);
    assert_string_equal(g_out, want);
    assert_int_equal(tool("export --model %s --format safetensors --out %s", dir, back), 0);
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa", back), 0);
    assert_string_equal(g_out, want);
    /* usage and refusals: one line */
    assert_int_equal(tool("export --model %s --format onnx --out %s", g_model, back), 2);
    assert_one_error("--format expects hf or safetensors");
    assert_int_equal(tool("export --model %s --format hf --out %s", g_model, back), 1);
    assert_one_error("exists and is not a folder");
    char p[300];
    snprintf(p, sizeof p, "%s/config.json", dir), remove(p);
    snprintf(p, sizeof p, "%s/model.safetensors", dir), remove(p);
    rmdir(dir);
    remove(back);
    free(want);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    NEED_TOOL();
    static const char *const cmds[2] = {"score", "embed"};
    const struct {
        const char *path, *what;
    } bad[] = {
        {DIR "missing.fa", "missing.fa"},           {DIR "empty.fa", "empty.fa"},
        {DIR "noheader.fa", "noheader.fa"},         {DIR "truncated.fa.gz", "truncated.fa.gz"},
        {DIR "corrupt.bam", "corrupt.bam"},
    };
    for (int c = 0; c < 2; c++) {
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            assert_int_equal(tool("%s --model %s --fasta %s", cmds[c], g_model, bad[i].path), 1);
            assert_one_error(bad[i].what);
            assert_string_equal(g_out, "");
        }
        /* another tool's checkpoint; a file that is not a checkpoint */
        assert_int_equal(tool("%s --model %s --fasta " DIR "tiny.fa", cmds[c], g_bad_model), 1);
        assert_one_error("not a mamba-dna model");
        assert_string_equal(g_out, "");
        assert_int_equal(tool("%s --model " DIR "tiny.fa --fasta " DIR "tiny.fa", cmds[c]), 1);
        assert_one_error("tiny.fa");
        assert_string_equal(g_out, "");
        assert_int_equal(tool("%s --model " DIR "missing.safetensors --fasta " DIR "tiny.fa", cmds[c]), 1);
        assert_one_error("missing.safetensors");
        /* a full disk */
        assert_int_equal(tool("%s --model %s --fasta " DIR "tiny.fa >/dev/full", cmds[c], g_model), 1);
        assert_one_error("write error");
        /* usage: exit 2 and the hint */
        char hint[64];
        snprintf(hint, sizeof hint, "Try 'mamba-dna %s --help'.", cmds[c]);
        assert_int_equal(tool("%s --fasta " DIR "tiny.fa", cmds[c]), 2);
        assert_non_null(strstr(g_err, hint));
        assert_int_equal(tool("%s --model %s", cmds[c], g_model), 2);
        assert_non_null(strstr(g_err, hint));
        assert_int_equal(tool("%s --model %s --fasta " DIR "tiny.fa --chunk 0", cmds[c], g_model), 2);
        assert_int_equal(tool("%s --model %s --fasta " DIR "tiny.fa extra", cmds[c], g_model), 2);
        assert_int_equal(tool("%s --help", cmds[c]), 0);
        assert_non_null(strstr(g_out, "Example"));
    }
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --vcf " DIR "variants.vcf >/dev/full", g_model), 1);
    assert_one_error("write error");
    assert_int_equal(tool("score --model %s --fasta " DIR "tiny.fa --tsv", g_model), 2);
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --format npy", g_model), 2);
    assert_int_equal(tool("embed --model %s --fasta " DIR "tiny.fa --format csv", g_model), 2);
}

/* ---- setup ---------------------------------------------------------------------------- */

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
    if (!(g_m = mb_model_create(g_ctx, &cfg, 3))) return -1;
    /* an embedding (and tied head) of N(0, 1) entries: logits that matter */
    mb_rng r;
    mb_rng_seed(&r, 11);
    const mb_param *e = mb_test_param(g_m, "backbone.embedding.weight");
    for (size_t i = 0; i < e->numel; i++) g_m->params.data[e->offset + i] = (float)mb_rng_normal(&r);
    mb_test_tmp_path(g_model, sizeof g_model, "score_model.safetensors");
    if (mb_model_save(g_m, g_model)) return -1;
    /* a model of another vocabulary: not a mamba-dna checkpoint */
    cfg.vocab_size = 10;
    mb_model *bad = mb_model_create(g_ctx, &cfg, 4);
    mb_test_tmp_path(g_bad_model, sizeof g_bad_model, "score_vocab10.safetensors");
    if (!bad || mb_model_save(bad, g_bad_model)) return -1;
    mb_model_free(bad);
    const char *paths[] = {DIR "tiny.fa"};
    char err[512];
    if (!(g_set = dna_set_open(paths, 1, NULL, err, sizeof err))) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove(g_model);
    remove(g_bad_model);
    dna_set_close(g_set);
    mb_model_free(g_m);
    mb_ctx_free(g_ctx);
    free(g_out);
    free(g_err);
    return 0;
}

int main(void)
{
    /* as ctest sets it: spinning OpenMP threads, here and in the tool's
     * processes, would starve each other on a small machine */
    setenv("OMP_WAIT_POLICY", "passive", 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_direct), cmocka_unit_test(test_score_chunked),
        cmocka_unit_test(test_score_bf16),
        cmocka_unit_test(test_score_inputs), cmocka_unit_test(test_score_short),
        cmocka_unit_test(test_score_vcf),    cmocka_unit_test(test_embed),
        cmocka_unit_test(test_score_vcf_masked),
        cmocka_unit_test(test_bad_inputs), cmocka_unit_test(test_score_other_vocab),
        cmocka_unit_test(test_export),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
