/* mamba-dna's input layer (apps/genomics): the tokenizer, every input
 * format against the others and against literals, splits, the window
 * sampler, VCF records, and one clear error line for each bad input.
 *
 * Fixtures: data/genomics/, written by data/genomics/make_fixtures.sh. The
 * literal sequences below are the generator's own inputs (its reads are
 * also listed in reads.expected); they were not obtained by reading the
 * fixtures with the code under test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <htslib/hts.h>

#include "dna_seq.h"
#include "dna_tok.h"
#include "dna_vcf.h"
#include "mb_cli.h"
#include "testutil.h"

#define DIR MB_DATA_DIR "/genomics/"

/* tiny.fa: chr1 1200 bp (lower case at 300-399, N at 400-499), chr2 700 bp
 * (n at 100-119, R at 350), chr3 500 bp (N at 0-319). */
static const char *const k_names[3] = {"chr1", "chr2", "chr3"};
static const int64_t k_lens[3] = {1200, 700, 500};

/* The reads the generator wrote (secondary r3sec and supplementary r5sup
 * are not records). r2 is on the reverse strand: BAM keeps chr1[300:340]. */
static const char *const k_read_names[5] = {"r1", "r2", "r4", "u1", "u2"};
static const char *const k_read_seqs[5] = {
    "GTTCATGCCGACGTTTGAACTTAGGTTTGGCCTGCTCATT", /* chr1[10:50] */
    "TGCACGGGTGATCTACCTGGGCGAGGGCACCCCTAAATCT", /* chr1[300:340], upper case */
    "AACTGTTGTGRTTGATGGAC",                     /* chr2[340:360], R at 10 */
    "GGTCATTAAACTAGTTANTTCCGTCTCGTGAAGCT",      /* unmapped */
    "TTCTACCGCGAT",                             /* unmapped */
};

static char g_err[512];

/* ---- helpers ------------------------------------------------------------- */

static int32_t *new_tokens(int64_t n)
{
    int32_t *t = malloc((size_t)(n > 0 ? n : 1) * sizeof *t);
    assert_non_null(t);
    return t;
}

static int32_t *fetch_src(dna_src *s, int64_t rec)
{
    int64_t n = dna_src_len(s, rec);
    assert_true(n >= 0);
    int32_t *t = new_tokens(n);
    assert_int_equal(dna_src_fetch(s, rec, 0, n, t, g_err, sizeof g_err), 0);
    return t;
}

static dna_src *open_src(const char *path, dna_index_mode mode)
{
    dna_src_opts o;
    dna_src_opts_default(&o);
    o.index_mode = mode;
    dna_src *s = dna_src_open(path, &o, g_err, sizeof g_err);
    if (!s) fprintf(stderr, "%s\n", g_err);
    assert_non_null(s);
    return s;
}

/* The expected id of one letter of a literal, by hand (not the table). */
static int32_t literal_id(char c)
{
    switch (c) {
    case 'A': return DNA_TOK_A;
    case 'C': return DNA_TOK_C;
    case 'G': return DNA_TOK_G;
    case 'T': return DNA_TOK_T;
    case 'N': return DNA_TOK_N;
    default: return DNA_TOK_UNK;
    }
}

static void assert_tokens_are(const int32_t *t, const char *bases)
{
    for (size_t i = 0; bases[i]; i++) {
        if (t[i] != literal_id(bases[i]))
            fprintf(stderr, "base %zu: got id %d, want %c\n", i, (int)t[i], bases[i]);
        assert_int_equal(t[i], literal_id(bases[i]));
    }
}

static void assert_all(const int32_t *t, int64_t n, int32_t id)
{
    for (int64_t i = 0; i < n; i++) assert_int_equal(t[i], id);
}

/* A failure is one line that names the file and says what went wrong. */
static void assert_err(const char *err, const char *file, const char *keyword)
{
    if (!strstr(err, file) || !strstr(err, keyword))
        fprintf(stderr, "error line '%s' lacks '%s' or '%s'\n", err, file, keyword);
    assert_non_null(strstr(err, file));
    assert_non_null(strstr(err, keyword));
    assert_null(strchr(err, '\n'));
}

/* ---- tokenizer ----------------------------------------------------------- */

static void test_tok_table(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        int32_t want = DNA_TOK_UNK;
        if (c == 'A' || c == 'a') want = 7;
        if (c == 'C' || c == 'c') want = 8;
        if (c == 'G' || c == 'g') want = 9;
        if (c == 'T' || c == 't') want = 10;
        if (c == 'N' || c == 'n') want = 11;
        assert_int_equal(dna_tok_byte((unsigned char)c), want);
    }
    assert_int_equal(DNA_TOK_CLS, 0);
    assert_int_equal(DNA_TOK_PAD, 4);
    assert_int_equal(DNA_TOK_UNK, 6);
    assert_int_equal(DNA_TOK_VOCAB, 12);
    assert_int_equal(DNA_TOK_VOCAB_PADDED, 16);

    int32_t t[15];
    dna_tok_encode("ACGTNacgtnRYU-*", 15, t);
    const int32_t want[15] = {7, 8, 9, 10, 11, 7, 8, 9, 10, 11, 6, 6, 6, 6, 6};
    assert_memory_equal(t, want, sizeof want);
    uint8_t u[15];
    dna_tok_encode_u8("ACGTNacgtnRYU-*", 15, u);
    for (int i = 0; i < 15; i++) assert_int_equal(u[i], want[i]);

    assert_int_equal(dna_tok_char(DNA_TOK_A), 'A');
    assert_int_equal(dna_tok_char(DNA_TOK_T), 'T');
    assert_int_equal(dna_tok_char(DNA_TOK_N), 'N');
    assert_int_equal(dna_tok_char(DNA_TOK_UNK), '?');
    assert_string_equal(dna_tok_name(0), "[CLS]");
    assert_string_equal(dna_tok_name(6), "[UNK]");
    assert_string_equal(dna_tok_name(10), "T");
    assert_string_equal(dna_tok_name(12), "[?]");
    assert_string_equal(dna_tok_name(-1), "[?]");
    assert_int_equal(dna_tok_count_n(t, 15), 2 + 5); /* N, n, and five [UNK] */
}

static void test_tok_revcomp(void **state)
{
    (void)state;
    /* ACGTNRacgt: reversed tgcaRNTGCA, complemented ACGT [UNK] N ACGT */
    int32_t t[10];
    dna_tok_encode("ACGTNRacgt", 10, t);
    dna_tok_revcomp(t, 10);
    const int32_t want[10] = {7, 8, 9, 10, 6, 11, 7, 8, 9, 10};
    assert_memory_equal(t, want, sizeof want);

    int32_t s[3] = {DNA_TOK_CLS, DNA_TOK_SEP, DNA_TOK_A};
    dna_tok_revcomp(s, 3);
    assert_int_equal(s[0], DNA_TOK_T);
    assert_int_equal(s[1], DNA_TOK_SEP);
    assert_int_equal(s[2], DNA_TOK_CLS);

    /* every id, lengths 0 to 39 (odd and even): against a by-hand reverse
     * complement, and twice is the identity; the u8 form agrees */
    for (size_t n = 0; n < 40; n++) {
        int32_t a[40], b[40];
        uint8_t c[40];
        for (size_t i = 0; i < n; i++) a[i] = (int32_t)((i * 7 + n) % DNA_TOK_VOCAB);
        memcpy(b, a, n * sizeof *a);
        for (size_t i = 0; i < n; i++) c[i] = (uint8_t)a[i];
        dna_tok_revcomp(b, n);
        dna_tok_revcomp_u8(c, n);
        for (size_t i = 0; i < n; i++) {
            int32_t x = a[n - 1 - i];
            int32_t want_i = (x >= 7 && x <= 10) ? 17 - x : x;
            assert_int_equal(b[i], want_i);
            assert_int_equal(c[i], want_i);
        }
        dna_tok_revcomp(b, n);
        if (n) assert_memory_equal(a, b, n * sizeof *a);
    }
}

/* ---- FASTA: every form gives the same tokens ----------------------------- */

static void check_tiny_content(dna_src *s)
{
    assert_int_equal(dna_src_nrec(s), 3);
    for (int r = 0; r < 3; r++) {
        assert_string_equal(dna_src_name(s, r), k_names[r]);
        assert_int_equal(dna_src_len(s, r), k_lens[r]);
    }
    int32_t *c1 = fetch_src(s, 0), *c2 = fetch_src(s, 1), *c3 = fetch_src(s, 2);
    assert_tokens_are(c1, "ACCGTCAGGAGTTCATGCCGACGTTTGAACTTAGGTTTGG");
    assert_tokens_are(c1 + 10, k_read_seqs[0]);
    assert_tokens_are(c1 + 300, "TGCACGGGTGATCTACCTGG"); /* lower case in the file */
    assert_all(c1 + 400, 100, DNA_TOK_N);
    assert_int_equal(dna_tok_count_n(c1, 1200), 100);
    assert_tokens_are(c2 + 340, k_read_seqs[2]); /* with R -> [UNK] */
    assert_all(c2 + 100, 20, DNA_TOK_N);
    assert_int_equal(dna_tok_count_n(c2, 700), 21);
    assert_all(c3, 320, DNA_TOK_N);
    assert_tokens_are(c3 + 320, "AGGTCCGACACACGCTCGAT");
    assert_int_equal(dna_tok_count_n(c3, 500), 320);
    free(c1), free(c2), free(c3);
}

static void test_fasta_forms(void **state)
{
    (void)state;
    struct {
        const char *path;
        dna_index_mode mode;
        dna_src_kind kind;
    } forms[] = {
        {DIR "tiny.fa", DNA_INDEX_NEVER, DNA_SRC_FASTA_MEMORY},
        {DIR "tiny.fa", DNA_INDEX_AUTO, DNA_SRC_FASTA_INDEXED}, /* tiny.fa.fai */
        {DIR "plain.fa.gz", DNA_INDEX_AUTO, DNA_SRC_FASTA_MEMORY},
        {DIR "tiny.fa.gz", DNA_INDEX_AUTO, DNA_SRC_FASTA_INDEXED}, /* .fai + .gzi */
        {DIR "tiny.fa.gz", DNA_INDEX_NEVER, DNA_SRC_FASTA_MEMORY}, /* bgzip streamed */
    };
    const int nf = (int)(sizeof forms / sizeof forms[0]);
    dna_src *src[5];
    for (int i = 0; i < nf; i++) {
        src[i] = open_src(forms[i].path, forms[i].mode);
        assert_int_equal(dna_src_get_kind(src[i]), forms[i].kind);
        assert_non_null(strstr(dna_src_format(src[i]), "FASTA"));
        check_tiny_content(src[i]);
    }
    /* ranges, across line ends and at record ends: every form agrees with
     * the streamed plain file */
    const int64_t ranges[][3] = {{0, 0, 1},    {0, 59, 3},    {0, 100, 250}, {0, 1199, 1},
                                 {0, 0, 1200}, {1, 69, 2},    {1, 345, 10},  {1, 0, 700},
                                 {2, 300, 40}, {2, 499, 1},   {2, 250, 0}};
    int32_t want[1200], got[1200];
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        const int64_t rec = ranges[k][0], start = ranges[k][1], len = ranges[k][2];
        assert_int_equal(dna_src_fetch(src[0], rec, start, len, want, g_err, sizeof g_err), 0);
        for (int i = 1; i < nf; i++) {
            memset(got, 0xff, sizeof got);
            assert_int_equal(dna_src_fetch(src[i], rec, start, len, got, g_err, sizeof g_err), 0);
            if (len) assert_memory_equal(got, want, (size_t)len * sizeof *got);
        }
    }
    /* a range outside the record is refused, with the record named */
    assert_int_equal(dna_src_fetch(src[3], 1, 690, 20, got, g_err, sizeof g_err), -1);
    assert_err(g_err, "tiny.fa.gz", "chr2");
    assert_int_equal(dna_src_fetch(src[3], 3, 0, 1, got, g_err, sizeof g_err), -1);
    for (int i = 0; i < nf; i++) dna_src_close(src[i]);
}

/* DNA_INDEX_BUILD writes the .fai (only when asked): on a copy in /tmp. */
static void test_fasta_build_index(void **state)
{
    (void)state;
    char path[256], fai[300];
    mb_test_tmp_path(path, sizeof path, "tiny.fa");
    snprintf(fai, sizeof fai, "%s.fai", path);
    size_t n = 0;
    void *bytes = mb_test_read_file(DIR "tiny.fa", &n);
    assert_non_null(bytes);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(bytes);
    remove(fai);

    dna_src *s = open_src(path, DNA_INDEX_AUTO); /* no index: streamed, none written */
    assert_int_equal(dna_src_get_kind(s), DNA_SRC_FASTA_MEMORY);
    dna_src_close(s);
    FILE *probe = fopen(fai, "r");
    assert_null(probe);

    s = open_src(path, DNA_INDEX_BUILD);
    assert_int_equal(dna_src_get_kind(s), DNA_SRC_FASTA_INDEXED);
    check_tiny_content(s);
    dna_src_close(s);
    s = open_src(path, DNA_INDEX_AUTO); /* now found */
    assert_int_equal(dna_src_get_kind(s), DNA_SRC_FASTA_INDEXED);
    dna_src_close(s);
    assert_int_equal(remove(fai), 0);
    assert_int_equal(remove(path), 0);
}

/* Chunked iteration equals whole-record fetches, records in order. */
static void test_iter_chunks(void **state)
{
    (void)state;
    const char *paths[] = {DIR "tiny.fa.gz"};
    dna_set *set = dna_set_open(paths, 1, NULL, g_err, sizeof g_err);
    assert_non_null(set);
    int32_t whole[1200];
    for (int64_t size = 77; size <= 1300; size += 1223) {
        dna_iter it;
        dna_iter_init(&it, set, NULL, size);
        dna_chunk c;
        int64_t rec = -1, at = 0, nchunks = 0;
        int r;
        int32_t *buf = new_tokens(size);
        while ((r = dna_iter_next(&it, buf, &c, g_err, sizeof g_err)) == 1) {
            nchunks++;
            if (c.first) {
                assert_int_equal(c.rec, rec + 1);
                rec = c.rec;
                at = 0;
                assert_int_equal(dna_set_fetch(set, rec, 0, k_lens[rec], whole, g_err,
                                               sizeof g_err), 0);
            }
            assert_int_equal(c.rec, rec);
            assert_int_equal(c.start, at);
            assert_true(c.len <= size);
            assert_memory_equal(buf, whole + at, (size_t)c.len * sizeof *buf);
            at += c.len;
            assert_int_equal(c.last, at == k_lens[rec]);
        }
        assert_int_equal(r, 0);
        assert_int_equal(rec, 2);
        assert_int_equal(at, k_lens[2]);
        if (size == 77) assert_int_equal(nchunks, 16 + 10 + 7);
        else assert_int_equal(nchunks, 3);
        free(buf);
    }

    /* over a validation split: only its intervals */
    dna_split sp;
    assert_int_equal(dna_split_fraction(set, 0.1, &sp, g_err, sizeof g_err), 0);
    dna_iter it;
    dna_iter_init(&it, set, &sp.val, 1000);
    dna_chunk c;
    int64_t total = 0;
    int32_t buf[1000];
    while (dna_iter_next(&it, buf, &c, g_err, sizeof g_err) == 1) total += c.len;
    assert_int_equal(total, 120 + 70 + 50);
    dna_split_free(&sp);
    dna_set_close(set);
}

/* ---- reads ----------------------------------------------------------------- */

static void check_reads(dna_src *s, int as_sequenced)
{
    assert_int_equal(dna_src_get_kind(s), DNA_SRC_READS);
    assert_int_equal(dna_src_nrec(s), 5);
    assert_int_equal(dna_src_skipped(s), 2); /* r3sec, r5sup */
    for (int r = 0; r < 5; r++) {
        assert_string_equal(dna_src_name(s, r), k_read_names[r]);
        assert_int_equal(dna_src_len(s, r), (int64_t)strlen(k_read_seqs[r]));
        int32_t *t = fetch_src(s, r);
        if (as_sequenced && r == 1) dna_tok_revcomp(t, strlen(k_read_seqs[r]));
        assert_tokens_are(t, k_read_seqs[r]);
        free(t);
    }
}

static void test_reads(void **state)
{
    (void)state;
    dna_src_opts o;
    dna_src_opts_default(&o);
    dna_src *s = dna_src_open(DIR "reads.bam", &o, g_err, sizeof g_err);
    assert_non_null(s);
    assert_non_null(strstr(dna_src_format(s), "BAM"));
    check_reads(s, 0);
    dna_src_close(s);

    o.reads_as_sequenced = 1;
    s = dna_src_open(DIR "reads.bam", &o, g_err, sizeof g_err);
    assert_non_null(s);
    check_reads(s, 1);
    dna_src_close(s);

    dna_src_opts_default(&o);
    o.reference = DIR "tiny.fa";
    s = dna_src_open(DIR "reads.cram", &o, g_err, sizeof g_err);
    if (!s) fprintf(stderr, "%s\n", g_err);
    assert_non_null(s);
    assert_non_null(strstr(dna_src_format(s), "CRAM"));
    check_reads(s, 0);
    dna_src_close(s);
}

/* ---- sets ------------------------------------------------------------------ */

static void test_set(void **state)
{
    (void)state;
    const char *paths[] = {DIR "tiny.fa.gz", DIR "reads.bam"};
    dna_set *set = dna_set_open(paths, 2, NULL, g_err, sizeof g_err);
    assert_non_null(set);
    assert_int_equal(dna_set_nsrc(set), 2);
    assert_int_equal(dna_set_nrec(set), 8);
    assert_int_equal(dna_set_bases(set), 1200 + 700 + 500 + 40 + 40 + 20 + 35 + 12);
    assert_int_equal(dna_set_find(set, "chr2"), 1);
    assert_int_equal(dna_set_find(set, "r1"), 3);
    assert_int_equal(dna_set_find(set, "u2"), 7);
    assert_int_equal(dna_set_find(set, "chrX"), -1);
    assert_int_equal(dna_set_file_of(set, 2), 0);
    assert_int_equal(dna_set_file_of(set, 3), 1);
    assert_string_equal(dna_set_name(set, 6), "u1");
    assert_int_equal(dna_set_len(set, 5), 20);
    int32_t t[40];
    assert_int_equal(dna_set_fetch(set, 4, 0, 40, t, g_err, sizeof g_err), 0);
    assert_tokens_are(t, k_read_seqs[1]);
    assert_int_equal(dna_set_fetch(set, 8, 0, 1, t, g_err, sizeof g_err), -1);
    dna_set_close(set);

    /* the same contig in two inputs cannot be looked up by name */
    const char *twice[] = {DIR "tiny.fa", DIR "plain.fa.gz"};
    set = dna_set_open(twice, 2, NULL, g_err, sizeof g_err);
    assert_non_null(set);
    assert_int_equal(dna_set_find(set, "chr1"), -2);
    dna_set_close(set);
}

/* ---- splits ---------------------------------------------------------------- */

static void assert_partition(const dna_set *set, const dna_split *sp)
{
    /* every base of every record is in exactly one of train and val */
    for (int64_t r = 0; r < dna_set_nrec(set); r++) {
        int64_t len = dna_set_len(set, r);
        char *seen = calloc((size_t)len + 1, 1);
        assert_non_null(seen);
        const dna_ivals *parts[2] = {&sp->train, &sp->val};
        for (int p = 0; p < 2; p++)
            for (int64_t i = 0; i < parts[p]->n; i++) {
                const dna_ival *v = &parts[p]->v[i];
                assert_true(v->start < v->end);
                if (i) assert_true(parts[p]->v[i - 1].rec < v->rec ||
                                   parts[p]->v[i - 1].end < v->start);
                if (v->rec != r) continue;
                for (int64_t x = v->start; x < v->end; x++) seen[x]++;
            }
        for (int64_t x = 0; x < len; x++) assert_int_equal(seen[x], 1);
        free(seen);
    }
    assert_int_equal(sp->train.bases + sp->val.bases, dna_set_bases(set));
}

static void assert_same_ivals(const dna_ivals *a, const dna_ivals *b)
{
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->bases, b->bases);
    if (a->n) assert_memory_equal(a->v, b->v, (size_t)a->n * sizeof *a->v);
}

static void test_split(void **state)
{
    (void)state;
    const char *paths[] = {DIR "tiny.fa"};
    dna_set *set = dna_set_open(paths, 1, NULL, g_err, sizeof g_err);
    assert_non_null(set);

    dna_split a, b;
    assert_int_equal(dna_split_fraction(set, DNA_VAL_FRAC_DEFAULT, &a, g_err, sizeof g_err), 0);
    assert_int_equal(dna_split_fraction(set, DNA_VAL_FRAC_DEFAULT, &b, g_err, sizeof g_err), 0);
    assert_same_ivals(&a.train, &b.train);
    assert_same_ivals(&a.val, &b.val);
    assert_partition(set, &a);
    /* the last 5%: 60, 35 and 25 bases */
    assert_int_equal(a.val.n, 3);
    const dna_ival want_val[3] = {{0, 1140, 1200}, {1, 665, 700}, {2, 475, 500}};
    assert_memory_equal(a.val.v, want_val, sizeof want_val);
    assert_int_equal(a.train.n, 3);
    dna_split_free(&a), dna_split_free(&b);

    assert_int_equal(dna_split_fraction(set, 1.5, &a, g_err, sizeof g_err), -1);
    assert_err(g_err, "split", "fraction");

    assert_int_equal(dna_split_bed(set, DIR "val.bed", &a, g_err, sizeof g_err), 0);
    assert_int_equal(dna_split_bed(set, DIR "val.bed", &b, g_err, sizeof g_err), 0);
    assert_same_ivals(&a.train, &b.train);
    assert_same_ivals(&a.val, &b.val);
    assert_partition(set, &a);
    /* chr1 800-1000 and 950-1100 merged; chr2 0-100 */
    const dna_ival want_bval[2] = {{0, 800, 1100}, {1, 0, 100}};
    assert_int_equal(a.val.n, 2);
    assert_memory_equal(a.val.v, want_bval, sizeof want_bval);
    const dna_ival want_btrain[4] = {{0, 0, 800}, {0, 1100, 1200}, {1, 100, 700}, {2, 0, 500}};
    assert_int_equal(a.train.n, 4);
    assert_memory_equal(a.train.v, want_btrain, sizeof want_btrain);
    int64_t at;
    assert_int_equal(dna_ivals_longest(&a.train, &at), 800);
    assert_int_equal(at, 0);
    dna_split_free(&a), dna_split_free(&b);

    assert_int_equal(dna_split_bed(set, DIR "badchrom.bed", &a, g_err, sizeof g_err), -1);
    assert_err(g_err, "badchrom.bed", "line 2");
    assert_non_null(strstr(g_err, "chrZ"));
    assert_int_equal(dna_split_bed(set, DIR "missing.bed", &a, g_err, sizeof g_err), -1);
    assert_err(g_err, "missing.bed", "No such file");
    assert_int_equal(dna_split_bed(set, DIR "tiny.fa", &a, g_err, sizeof g_err), -1);
    assert_err(g_err, "tiny.fa", "not a BED");
    dna_set_close(set);
}

/* ---- window sampler -------------------------------------------------------- */

static int inside(const dna_ivals *iv, const dna_window *w)
{
    for (int64_t i = 0; i < iv->n; i++)
        if (iv->v[i].rec == w->rec && iv->v[i].start <= w->start &&
            w->start + w->len <= iv->v[i].end)
            return 1;
    return 0;
}

static void test_sampler(void **state)
{
    (void)state;
    const char *paths[] = {DIR "tiny.fa.gz"};
    dna_set *set = dna_set_open(paths, 1, NULL, g_err, sizeof g_err);
    assert_non_null(set);
    dna_split sp;
    assert_int_equal(dna_split_fraction(set, DNA_VAL_FRAC_DEFAULT, &sp, g_err, sizeof g_err), 0);

    enum { LEN = 100, DRAWS = 2000 };
    dna_sampler *sm = dna_sampler_create(set, &sp.train, LEN, g_err, sizeof g_err);
    assert_non_null(sm);
    int32_t tok[LEN], ref[LEN];
    dna_window w[DRAWS];
    uint64_t rng = 12345;
    int nrc = 0, per_rec[3] = {0, 0, 0};
    for (int d = 0; d < DRAWS; d++) {
        assert_int_equal(dna_sampler_draw(sm, &rng, 1, tok, &w[d], g_err, sizeof g_err), 0);
        assert_int_equal(w[d].len, LEN);
        assert_true(inside(&sp.train, &w[d]));
        assert_true(2 * dna_tok_count_n(tok, LEN) <= LEN);
        /* the tokens are the window's, reverse-complemented when said so */
        assert_int_equal(dna_set_fetch(set, w[d].rec, w[d].start, LEN, ref, g_err, sizeof g_err), 0);
        if (w[d].rc) dna_tok_revcomp(ref, LEN);
        assert_memory_equal(tok, ref, sizeof ref);
        nrc += w[d].rc;
        per_rec[w[d].rec]++;
        /* chr3 is N up to 320: a window with at most half N starts at 270 */
        if (w[d].rec == 2) assert_true(w[d].start >= 270);
    }
    /* about half reverse-complemented (binomial sd ~22 for 2000 draws) */
    assert_in_range(nrc, DRAWS / 2 - 150, DRAWS / 2 + 150);
    for (int r = 0; r < 3; r++) assert_true(per_rec[r] > 0);

    /* the same seed replays the same windows; no augmentation, no flips */
    rng = 12345;
    for (int d = 0; d < 50; d++) {
        dna_window x;
        assert_int_equal(dna_sampler_draw(sm, &rng, 1, tok, &x, g_err, sizeof g_err), 0);
        assert_int_equal(x.rec, w[d].rec);
        assert_int_equal(x.start, w[d].start);
        assert_int_equal(x.rc, w[d].rc);
    }
    for (int d = 0; d < 200; d++) {
        dna_window x;
        assert_int_equal(dna_sampler_draw(sm, &rng, 0, tok, &x, g_err, sizeof g_err), 0);
        assert_int_equal(x.rc, 0);
    }
    dna_sampler_free(sm);

    /* the one-shot form agrees with a sampler's first draw */
    rng = 99;
    dna_window x;
    assert_int_equal(dna_sample_window(set, &sp.train, LEN, &rng, 1, tok, &x, g_err, sizeof g_err), 0);
    assert_true(inside(&sp.train, &x));

    /* longer than every interval: the message gives the longest */
    assert_null(dna_sampler_create(set, &sp.val, 100, g_err, sizeof g_err));
    assert_err(g_err, "tiny.fa.gz", "longest interval is 60 bases");
    assert_null(dna_sampler_create(set, &sp.train, 5000, g_err, sizeof g_err));
    assert_err(g_err, "tiny.fa.gz", "1140");

    /* an all-N interval: gives up with an error, not a hang */
    dna_ival nv = {2, 0, 320};
    dna_ivals alln = {&nv, 1, 320};
    sm = dna_sampler_create(set, &alln, 100, g_err, sizeof g_err);
    assert_non_null(sm);
    assert_int_equal(dna_sampler_draw(sm, &rng, 1, tok, NULL, g_err, sizeof g_err), -1);
    assert_err(g_err, "tiny.fa.gz", "more than half N");
    dna_sampler_free(sm);

    dna_split_free(&sp);
    dna_set_close(set);
}

/* splitmix64's published first outputs for seed 0 (checks the generator,
 * whose stream the seeds of saved runs depend on). */
static void test_rng(void **state)
{
    (void)state;
    uint64_t s = 0;
    assert_true(mb_cli_rng_next(&s) == 0xE220A8397B1DCDAFull);
    assert_true(mb_cli_rng_next(&s) == 0x6E789E6AA1B965F4ull);
    s = 7;
    int hist[3] = {0, 0, 0};
    for (int i = 0; i < 3000; i++) hist[mb_cli_rng_below(&s, 3)]++;
    for (int i = 0; i < 3; i++) assert_in_range(hist[i], 850, 1150);
    assert_int_equal(mb_cli_rng_below(&s, 1), 0);
}

/* ---- VCF ------------------------------------------------------------------- */

static void check_variants(const char *path)
{
    char err[512];
    dna_vcf *v = dna_vcf_open(path, err, sizeof err);
    if (!v) fprintf(stderr, "%s\n", err);
    assert_non_null(v);
    const char *paths[] = {DIR "tiny.fa"};
    dna_set *set = dna_set_open(paths, 1, NULL, err, sizeof err);
    assert_non_null(set);
    const struct {
        const char *contig;
        int64_t pos;
        const char *id, *ref, *alt;
        int n_alt;
    } want[6] = {
        {"chr1", 20, "snv1", "A", "C", 1},  {"chr1", 100, "ins1", "T", "TGT", 1},
        {"chr1", 550, "del1", "CGA", "C", 1}, {"chr1", 600, "multi", "G", "T", 2},
        {"chr2", 400, ".", "A", "C", 1},    {"chr3", 400, "snv3", "G", "T", 1},
    };
    dna_variant var;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(dna_vcf_next(v, &var, err, sizeof err), 1);
        assert_string_equal(var.contig, want[i].contig);
        assert_int_equal(var.pos, want[i].pos);
        assert_string_equal(var.id, want[i].id);
        assert_string_equal(var.ref, want[i].ref);
        assert_string_equal(var.alt, want[i].alt);
        assert_int_equal(var.n_alt, want[i].n_alt);
        int64_t rec = dna_vcf_locate(v, set, &var, 1, err, sizeof err);
        if (rec < 0) fprintf(stderr, "%s\n", err);
        assert_int_equal(rec, dna_set_find(set, want[i].contig));
    }
    assert_int_equal(dna_vcf_next(v, &var, err, sizeof err), 0);
    const dna_vcf_counts *c = dna_vcf_get_counts(v);
    assert_int_equal(c->records, 7);
    assert_int_equal(c->returned, 6);
    assert_int_equal(c->symbolic, 1); /* <DEL> */
    assert_int_equal(c->no_alt, 0);

    /* a REF that does not match the FASTA is caught */
    dna_variant bad = {"chr1", 20, "x", "G", "C", 1, 1};
    assert_int_equal(dna_vcf_locate(v, set, &bad, 1, err, sizeof err), -1);
    assert_err(err, path, "does not match");
    assert_int_equal(dna_vcf_locate(v, set, &bad, 0, err, sizeof err), 0);
    dna_variant past = {"chr3", 499, "x", "GA", "G", 1, 1};
    assert_int_equal(dna_vcf_locate(v, set, &past, 0, err, sizeof err), -1);
    assert_err(err, path, "past");
    dna_set_close(set);
    dna_vcf_close(v);
}

static void test_vcf(void **state)
{
    (void)state;
    check_variants(DIR "variants.vcf");
    check_variants(DIR "variants.vcf.gz");
    check_variants(DIR "variants.bcf");

    dna_vcf *v = dna_vcf_open(DIR "badcontig.vcf", g_err, sizeof g_err);
    assert_non_null(v);
    const char *paths[] = {DIR "tiny.fa"};
    dna_set *set = dna_set_open(paths, 1, NULL, g_err, sizeof g_err);
    assert_non_null(set);
    dna_variant var;
    assert_int_equal(dna_vcf_next(v, &var, g_err, sizeof g_err), 1);
    assert_int_equal(dna_vcf_locate(v, set, &var, 1, g_err, sizeof g_err), 0);
    assert_int_equal(dna_vcf_next(v, &var, g_err, sizeof g_err), 1);
    assert_int_equal(dna_vcf_locate(v, set, &var, 1, g_err, sizeof g_err), -1);
    assert_err(g_err, "badcontig.vcf", "contig 'chrX' not in the FASTA");
    dna_set_close(set);
    dna_vcf_close(v);

    assert_null(dna_vcf_open(DIR "missing.vcf", g_err, sizeof g_err));
    assert_err(g_err, "missing.vcf", "No such file");
    assert_null(dna_vcf_open(DIR "tiny.fa", g_err, sizeof g_err));
    assert_err(g_err, "tiny.fa", "not a VCF");
}

/* ---- bad inputs: one line each, no crash ----------------------------------- */

static void test_bad_inputs(void **state)
{
    (void)state;
    const struct {
        const char *path, *file, *keyword;
    } bad[] = {
        {DIR "noheader.fa", "noheader.fa", "no FASTA header ('>') before sequence"},
        {DIR "empty.fa", "empty.fa", "no sequences"},
        {DIR "truncated.fa.gz", "truncated.fa.gz", "truncated"},
        {DIR "corrupt.bam", "corrupt.bam", "not a valid BAM file"},
        {DIR "missing.fa", "missing.fa", "No such file or directory"},
        {MB_DATA_DIR "/genomics", "genomics", "Is a directory"},
        {DIR "variants.vcf", "variants.vcf", "not a FASTA, BAM or CRAM"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int mode = DNA_INDEX_AUTO; mode <= DNA_INDEX_NEVER; mode++) {
            dna_src_opts o;
            dna_src_opts_default(&o);
            o.index_mode = (dna_index_mode)mode;
            g_err[0] = '\0';
            assert_null(dna_src_open(bad[i].path, &o, g_err, sizeof g_err));
            assert_err(g_err, bad[i].file, bad[i].keyword);
        }
        /* a NULL error buffer is allowed */
        assert_null(dna_src_open(bad[i].path, NULL, NULL, 0));
    }
    /* in a set, the failing file's own message */
    const char *paths[] = {DIR "tiny.fa", DIR "empty.fa"};
    assert_null(dna_set_open(paths, 2, NULL, g_err, sizeof g_err));
    assert_err(g_err, "empty.fa", "no sequences");

    /* a BAM cut in half: refused, whatever htslib notices first */
    char path[256];
    mb_test_tmp_path(path, sizeof path, "cut.bam");
    size_t n = 0;
    void *bytes = mb_test_read_file(DIR "reads.bam", &n);
    assert_non_null(bytes);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n / 2, f), n / 2);
    assert_int_equal(fclose(f), 0);
    free(bytes);
    assert_null(dna_src_open(path, NULL, g_err, sizeof g_err));
    assert_err(g_err, "cut.bam", "");
    fprintf(stderr, "# cut BAM: %s\n", g_err);
    assert_int_equal(remove(path), 0);
}

static int setup(void **state)
{
    (void)state;
    /* htslib's own [E::...] lines would repeat what the messages say */
    hts_set_log_level(HTS_LOG_OFF);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tok_table),
        cmocka_unit_test(test_tok_revcomp),
        cmocka_unit_test(test_fasta_forms),
        cmocka_unit_test(test_fasta_build_index),
        cmocka_unit_test(test_iter_chunks),
        cmocka_unit_test(test_reads),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_vcf),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
