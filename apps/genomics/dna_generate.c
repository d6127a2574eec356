/* mamba-dna generate: sequences drawn from a mamba-dna language model in
 * recurrent step mode (constant time and memory a base), from nothing or
 * continuing each record of a FASTA, several at once as the rows of one
 * recurrent state, written as a FASTA.
 *
 * Reproducibility: the library's draw depends on (seed, row, draws made by
 * the state), one seed a call for all rows. So the jobs are cut into
 * rounds in a fixed order (record by record, --batch continuations at a
 * time), a round runs on a fresh state whose row j is the round's j-th
 * continuation, and its seed is derived from (--seed, record, first
 * continuation): the same command gives the same bytes whatever --threads
 * or the timing of the calls. */
#include <stdlib.h>
#include <string.h>

#include "dna_cmd.h"

#define GEN_CHUNK_DEFAULT 65536 /* prompt tokens a forward pass (over all the rows) */
#define GEN_BATCH_DEFAULT 64
#define GEN_WIDTH_DEFAULT 60 /* as the fixtures and samtools faidx write FASTA */
#define GEN_STEPS_MAX 4096   /* the most draws a call */
#define GEN_CALL_S 0.25      /* the time a call aims at: progress and Ctrl-C between calls */
#define GEN_LENGTH_MAX (INT64_C(1) << 30)
#define GEN_N_MAX (INT64_C(1) << 20)

typedef struct {
    dna_infer_opts in; /* --model, --prompt (as --fasta), --reference, --chunk, --device, --threads, --tf32,
                        * --precision */
    const char *out;   /* NULL: stdout */
    int64_t length, n, batch, width;
    double temperature, top_p;
    int64_t top_k;
    int int8, bf16; /* --int8, --bf16 */
    int include_prompt;
} gen_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " generate --model M --length N [options]\n"
            "\n"
            "Draws DNA sequences from the mamba-dna language model M, one base at a time in\n"
            "recurrent step mode (constant time and memory a base), and writes them as a\n"
            "FASTA (%d bases a line unless --width says otherwise):\n"
            "  without --prompt: --n sequences named gen_1 .. gen_K, each started from an N\n"
            "    (pretraining puts no token before a record: windows start anywhere, so\n"
            "    the first input is a base the model has seen, N, read as 'after a gap';\n"
            "    the never-trained specials [BOS] and [SEP] are not used; the N itself is\n"
            "    not written);\n"
            "  with --prompt F: --n continuations of every record of F, named\n"
            "    <record>_gen1 .. <record>_genK: the record is read into the recurrent\n"
            "    state (in chunks: a 1M-base prompt takes constant memory), so the first\n"
            "    base drawn is conditioned on all of it. Only the drawn bases are written\n"
            "    unless --include-prompt. Letters other than A C G T N (IUPAC codes such\n"
            "    as R or Y, any other byte) are the tokenizer's [UNK], fed to the model as\n"
            "    '" DNA_PROG " score' and training read them (written back as N). An\n"
            "    empty record is an error.\n"
            "Every sequence has exactly --length drawn bases: the draw is over all of the\n"
            "model's classes, and a class that is not A, C, G or T (N, a special token;\n"
            "pretraining gives none an end-of-record meaning) is written as N, counted in\n"
            "a warning, and is the next step's input as drawn.\n"
            "\n"
            "Reproducibility: the same model, options and --seed give the same bytes, on\n"
            "any --threads. Sequences are made --batch at a time as the rows of one state,\n"
            "record by record; each batch has a seed derived from (--seed, record,\n"
            "its first continuation), and row j of it draws continuation first + j. So a\n"
            "sequence depends on --batch only when --n is larger than --batch (a bigger\n"
            "--n keeps the first sequences, up to the last bits of the arithmetic, while\n"
            "--n stays within --batch).\n"
            "\n"
            "options:\n"
            "  --model M          mamba-dna language model (required; a classifier is refused)\n"
            "  --length N         bases drawn a sequence, >= 1 (required; 1k, 1M accepted)\n"
            "  --n K              sequences, or continuations of each prompt record [1]\n"
            "  --temperature T    divides the logits, > 0: lower is more conservative,\n"
            "                     1e-3 is practically the most likely base each step [1]\n"
            "  --top-p P          nucleus sampling, in (0, 1]: only the most likely classes\n"
            "                     holding P of the probability [1 = off]\n"
            "  --top-k K          only the K most likely classes, then --top-p among them\n"
            "                     [0 = off]\n"
            "  --seed S           seed of the draws [1]\n"
            "  --prompt F         continue every record of F: FASTA (plain, gzip, bgzip +\n"
            "                     .fai), BAM or CRAM; repeatable (the records of every file)\n"
            "  --reference FA     reference for CRAM prompts\n"
            "  --include-prompt   write each prompt before its continuation\n"
            "  --out FILE         write FILE (through a temporary file in its directory,\n"
            "                     renamed when complete; an existing FILE is left as it was\n"
            "                     on any error) [- = stdout]\n"
            "  --width W          bases a FASTA line, 0 = the whole sequence on one [%d]\n"
            "  --batch B          sequences generated at once (rows of the state) [%d]\n"
            "  --chunk N          prompt tokens a forward pass, over the batch's rows [%d]\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            "  --tf32             GPU: TF32 tensor cores for the GEMMs (faster, ~1e-3 error)\n"
            "  --precision P      fp32, tf32 (as --tf32) or bf16: mamba_ssm's autocast, the\n"
            "                     GEMMs' inputs and the stored activations rounded to bf16,\n"
            "                     the state and the arithmetic fp32; steps run layer by\n"
            "                     layer (on a GPU, tensor cores) [fp32]\n"
            "  --int8             CPU: int8 copies of the weights for the steps (a quarter of\n"
            "                     the bytes a base reads, about 2x faster; logits within ~2e-2)\n"
            "  --bf16             GPU: bf16 copies of the weights for the steps (half the bytes)\n"
            "\n"
            "Progress goes to stderr when the work takes long (a line every 5 s: bases drawn\n"
            "of the total, bases/s, ETA). A model whose numbers overflow (logits not\n"
            "finite) is an error. Ctrl-C or SIGTERM stops it: exit 130, --out as it was\n"
            "(on stdout the sequences already written are complete).\n"
            "Examples:\n"
            "  " DNA_PROG " generate --model m.safetensors --length 1000 --n 8 --seed 7 --out gen.fa\n"
            "  " DNA_PROG " generate --model m.safetensors --prompt promoters.fa --length 200 \\\n"
            "           --n 4 --temperature 0.8 --top-p 0.95 --include-prompt --out cont.fa\n",
            GEN_WIDTH_DEFAULT, GEN_WIDTH_DEFAULT, GEN_BATCH_DEFAULT, GEN_CHUNK_DEFAULT);
}

/* ---- options --------------------------------------------------------------------- */

enum { O_LENGTH = 256, O_N, O_TEMP, O_TOPP, O_TOPK, O_INT8, O_BF16, O_SEED, O_OUT, O_WIDTH, O_BATCH, O_INCL };

/* One option of ours; 0 or -1 after the error line. */
static int gen_option(gen_opts *o, int c, const char *arg)
{
    switch (c) {
    case O_LENGTH: return mb_cli_parse_int(DNA_PROG, "--length", arg, 1, GEN_LENGTH_MAX, &o->length);
    case O_N: return mb_cli_parse_int(DNA_PROG, "--n", arg, 1, GEN_N_MAX, &o->n);
    /* the sampler takes floats: a temperature under 1e-6 would round
     * towards 0, and 1e-3 is already the argmax in practice */
    case O_TEMP: return mb_cli_parse_real(DNA_PROG, "--temperature", arg, 1e-6, 1e6, &o->temperature);
    case O_TOPP: return mb_cli_parse_real(DNA_PROG, "--top-p", arg, 1e-6, 1.0, &o->top_p);
    case O_INT8: o->int8 = 1; return 0;
    case O_BF16: o->bf16 = 1; return 0;
    case O_TOPK: return mb_cli_parse_int(DNA_PROG, "--top-k", arg, 0, INT32_MAX, &o->top_k);
    case O_SEED: return mb_cli_parse_int(DNA_PROG, "--seed", arg, 0, INT64_MAX, &o->in.t.seed);
    case O_OUT: o->out = strcmp(arg, "-") == 0 ? NULL : arg; return 0;
    case O_WIDTH: return mb_cli_parse_int(DNA_PROG, "--width", arg, 0, INT64_C(1) << 30, &o->width);
    case O_BATCH: return mb_cli_parse_int(DNA_PROG, "--batch", arg, 1, 4096, &o->batch);
    case O_INCL: o->include_prompt = 1; return 0;
    default: return -1;
    }
}

/* Parses argv: 0 to run, 1 done (--help, --version), 2 a usage error
 * (the error line and the hint printed). */
static int gen_parse(gen_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", 1, 0, DNA_O_MODEL}, {"prompt", 1, 0, DNA_O_FASTA}, {"reference", 1, 0, DNA_O_REF},
        {"chunk", 1, 0, DNA_O_CHUNK}, {"device", 1, 0, DNA_O_DEV}, {"threads", 1, 0, DNA_O_THR},
        {"tf32", 0, 0, DNA_O_TF32}, {"precision", 1, 0, DNA_O_PREC}, {"length", 1, 0, O_LENGTH}, {"n", 1, 0, O_N},
        {"temperature", 1, 0, O_TEMP}, {"top-p", 1, 0, O_TOPP}, {"top-k", 1, 0, O_TOPK}, {"int8", 0, 0, O_INT8}, {"bf16", 0, 0, O_BF16}, {"seed", 1, 0, O_SEED},
        {"out", 1, 0, O_OUT}, {"width", 1, 0, O_WIDTH}, {"batch", 1, 0, O_BATCH},
        {"include-prompt", 0, 0, O_INCL}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(DNA_PROG, "generate", argc, argv, opts)) != -1) {
        const int r = dna_infer_option(&o->in, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == MB_CLI_OPT_VERSION) return 1;
        bad = c == '?' || gen_option(o, c, optarg) != 0;
    }
    if (!bad && optind < argc) {
        mb_cli_error(DNA_PROG, "generate: unexpected argument '%s' (prompts go after --prompt)", argv[optind]);
        bad = 1;
    }
    if (!bad && (!o->in.model || !o->length)) {
        mb_cli_error(DNA_PROG, "generate needs --model and --length");
        bad = 1;
    }
    if (!bad && o->include_prompt && !o->in.n_fasta) {
        mb_cli_error(DNA_PROG, "--include-prompt needs --prompt");
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "Try '" DNA_PROG " generate --help'.\n");
        return 2;
    }
    return 0;
}

/* ---- the run ------------------------------------------------------------------------- */

typedef struct {
    const gen_opts *o;
    mb_model *m;
    dna_set *set;    /* the prompts, or NULL */
    mb_state *st;    /* rows: st_rows */
    int st_rows;
    int64_t cols;    /* prompt tokens a row a forward pass */
    int32_t *tok;    /* (batch, cols): a prompt chunk in every row */
    int32_t *next;   /* (batch): the next step's inputs */
    int32_t *drawn;  /* (batch, GEN_STEPS_MAX) */
    char *bases;     /* (batch, length): the letters drawn */
    int64_t steps;   /* draws a call, fitted to GEN_CALL_S */
    int64_t done, total; /* bases drawn, of all */
    int64_t nonbase;     /* draws that were not A, C, G or T */
    mb_cli_progress pg;
    FILE *f;         /* where the FASTA goes */
    int64_t col;     /* letters on the current line */
} gen_run;

/* The letter written for a token: the base, or N for anything else (N,
 * [UNK], the specials, padding classes of a transformers vocabulary). */
static char gen_letter(int32_t t) { return dna_is_base(t) ? dna_tok_char(t) : 'N'; }

static const char *gen_rec_path(const dna_set *set, int64_t rec)
{
    return dna_src_path(dna_set_src(set, dna_set_file_of(set, rec)));
}

/* Every prompt record holds a base (an empty one is named), before any work. */
static int gen_check_prompts(const dna_set *set)
{
    for (int64_t r = 0; r < dna_set_nrec(set); r++)
        if (dna_set_len(set, r) == 0) {
            mb_cli_error(DNA_PROG, "%s: record '%s' is empty: there is nothing to continue", gen_rec_path(set, r),
                         dna_set_name(set, r));
            return -1;
        }
    return 0;
}

/* The sampler's seed of the round whose first continuation of record rec
 * is `first`: a stream of its own for every round (rounds that shared a
 * seed would draw the same numbers on the same rows, and without a prompt
 * repeat each other's sequences), the same for any --threads. */
static uint64_t gen_round_seed(int64_t seed, int64_t rec, int64_t first)
{
    return mb_cli_rng_row(seed, rec, first);
}

/* A fresh state of `rows` rows: the draw counter starts at 0 for every round. */
static int gen_state(gen_run *g, int rows)
{
    if (g->st && g->st_rows == rows) {
        mb_state_reset(g->st);
        return 0;
    }
    mb_state_free(g->st);
    g->st_rows = rows;
    if (!(g->st = mb_state_create(g->m, rows))) {
        mb_cli_error(DNA_PROG, "recurrent state: %s", mb_error_last());
        return -1;
    }
    return 0;
}

static void gen_progress(gen_run *g, const char *what)
{
    if (!mb_cli_progress_due(&g->pg)) return;
    char eta[48];
    mb_cli_progress_eta(&g->pg, (double)g->done, (double)g->total, eta, sizeof eta);
    const double t = mb_cli_progress_elapsed(&g->pg);
    fprintf(stderr, DNA_PROG " generate: %lld/%lld bases drawn (%.0f%%), %s, %.0f bases/s, %s\n",
            (long long)g->done, (long long)g->total, 100.0 * (double)g->done / (double)g->total, what,
            t > 0 ? (double)g->done / t : 0.0, eta);
}

/* Reads record rec, but its last token, into every row of the state, in
 * chunks; the last token becomes every row's first input of the draws,
 * so the first base drawn is conditioned on the whole record. */
static int gen_prompt_feed(gen_run *g, int64_t rec, int rows)
{
    char err[512], what[300];
    const int64_t L = dna_set_len(g->set, rec);
    const int64_t cols = g->cols / rows > 0 ? g->cols / rows : 1;
    for (int64_t pos = 0; pos < L - 1 && !mb_cli_interrupted(); pos += cols) {
        const int64_t c = L - 1 - pos < cols ? L - 1 - pos : cols;
        if (dna_set_fetch(g->set, rec, pos, c, g->tok, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return -1;
        }
        for (int j = 1; j < rows; j++) memcpy(g->tok + (size_t)j * c, g->tok, sizeof(int32_t) * (size_t)c);
        if (mb_model_forward_chunk(g->m, g->st, g->tok, (int)c, NULL)) return mb_cli_lib_error(DNA_PROG, g->o->in.model);
        snprintf(what, sizeof what, "prompt %s: %lld/%lld bases read", dna_set_name(g->set, rec),
                 (long long)(pos + c), (long long)L);
        gen_progress(g, what);
    }
    int32_t last;
    if (dna_set_fetch(g->set, rec, L - 1, 1, &last, err, sizeof err)) {
        mb_cli_error(DNA_PROG, "%s", err);
        return -1;
    }
    for (int j = 0; j < rows; j++) g->next[j] = last;
    return 0;
}

/* --length draws for each of the state's rows from g->next, in calls of
 * g->steps draws (the library draws the same whatever the cut), their
 * letters into g->bases. */
static int gen_draw(gen_run *g, const mb_sampler *sp, int rows, const char *label)
{
    const int64_t N = g->o->length;
    /* a round's first call is one draw, timed: the fitted size of another
     * round (of other rows) does not carry over */
    g->steps = 1;
    for (int64_t s = 0; s < N && !mb_cli_interrupted();) {
        const int k = (int)(N - s < g->steps ? N - s : g->steps);
        const double t0 = mb_cli_now();
        if (mb_model_sample(g->m, g->st, g->next, k, sp, g->drawn)) return mb_cli_lib_error(DNA_PROG, g->o->in.model);
        for (int j = 0; j < rows; j++) {
            const int32_t *d = g->drawn + (size_t)j * k;
            char *b = g->bases + (size_t)j * (size_t)N + s;
            for (int i = 0; i < k; i++) {
                b[i] = gen_letter(d[i]);
                g->nonbase += !dna_is_base(d[i]);
            }
            g->next[j] = d[k - 1];
        }
        s += k;
        g->done += (int64_t)rows * k;
        /* the next call's size from this one's time a draw */
        const double dt = mb_cli_now() - t0, fit = dt > 0 ? GEN_CALL_S / (dt / k) : (double)GEN_STEPS_MAX;
        g->steps = fit < 1 ? 1 : fit > GEN_STEPS_MAX ? GEN_STEPS_MAX : (int64_t)fit;
        gen_progress(g, label);
    }
    return 0;
}

/* ---- the FASTA ------------------------------------------------------------------------ */

static int gen_put(gen_run *g, char c)
{
    if (g->o->width > 0 && g->col == g->o->width) {
        if (fputc('\n', g->f) == EOF) return -1;
        g->col = 0;
    }
    g->col++;
    return fputc(c, g->f) == EOF ? -1 : 0;
}

/* The prompt record rec's letters, read again in chunks (constant memory). */
static int gen_put_prompt(gen_run *g, int64_t rec)
{
    char err[512];
    const int64_t L = dna_set_len(g->set, rec);
    for (int64_t pos = 0; pos < L; pos += g->cols) {
        const int64_t c = L - pos < g->cols ? L - pos : g->cols;
        if (dna_set_fetch(g->set, rec, pos, c, g->tok, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return -2;
        }
        for (int64_t i = 0; i < c; i++)
            if (gen_put(g, gen_letter(g->tok[i]))) return -1;
    }
    return 0;
}

/* One record: the header, [the prompt,] the drawn letters. */
static int gen_write_record(gen_run *g, const char *name, int64_t rec, const char *bases)
{
    g->col = 0;
    int bad = fprintf(g->f, ">%s\n", name) < 0;
    if (!bad && g->o->include_prompt) {
        const int r = gen_put_prompt(g, rec);
        if (r == -2) return -1; /* a read error, already said */
        bad = r != 0;
    }
    for (int64_t i = 0; !bad && i < g->o->length; i++) bad = gen_put(g, bases[i]) != 0;
    bad = bad || fputc('\n', g->f) == EOF || ferror(g->f);
    return bad ? mb_cli_write_error(DNA_PROG, g->o->out) : 0;
}

/* ---- rounds ------------------------------------------------------------------------------ */

/* Continuations first .. first + rows - 1 of record rec (rec 0 and no
 * prompt: sequences from nothing): feed, draw, write. */
static int gen_round(gen_run *g, int64_t rec, int64_t first, int rows)
{
    const gen_opts *o = g->o;
    if (gen_state(g, rows)) return -1;
    if (g->set) {
        if (gen_prompt_feed(g, rec, rows)) return -1;
    } else {
        for (int j = 0; j < rows; j++) g->next[j] = DNA_TOK_N;
    }
    const mb_sampler sp = {.temperature = (float)o->temperature,
                           .top_p = (float)o->top_p, .top_k = (int)o->top_k,
                           .seed = gen_round_seed(o->in.t.seed, rec, first)};
    char label[300];
    snprintf(label, sizeof label, "%s %lld-%lld of %lld", g->set ? dna_set_name(g->set, rec) : "sequences",
             (long long)first + 1, (long long)first + rows, (long long)o->n);
    if (gen_draw(g, &sp, rows, label)) return -1;
    if (mb_cli_interrupted()) return 0;
    if (mb_cli_check_finite_step(DNA_PROG, g->m, g->st, g->next, rows, o->in.model)) return -1;
    for (int j = 0; j < rows; j++) {
        char name[1024];
        if (g->set) snprintf(name, sizeof name, "%s_gen%lld", dna_set_name(g->set, rec), (long long)(first + j + 1));
        else snprintf(name, sizeof name, "gen_%lld", (long long)(first + j + 1));
        if (gen_write_record(g, name, rec, g->bases + (size_t)j * (size_t)o->length)) return -1;
    }
    return 0;
}

static int gen_run_alloc(gen_run *g)
{
    const gen_opts *o = g->o;
    const size_t B = (size_t)o->batch;
    g->cols = o->in.chunk;
    /* a prompt chunk in every row takes at least a token a row */
    g->tok = malloc(sizeof(int32_t) * ((size_t)g->cols > B ? (size_t)g->cols : B));
    g->next = malloc(sizeof(int32_t) * B);
    g->drawn = malloc(sizeof(int32_t) * B * GEN_STEPS_MAX);
    g->bases = malloc(B * (size_t)o->length);
    if (g->tok && g->next && g->drawn && g->bases) return 0;
    mb_cli_error(DNA_PROG, "out of memory (--batch %lld sequences of --length %lld)", (long long)o->batch,
                 (long long)o->length);
    return -1;
}

static void gen_run_free(gen_run *g)
{
    mb_state_free(g->st);
    free(g->tok), free(g->next), free(g->drawn), free(g->bases);
}

/* Every round in output order; 0, -1 after the error line (interrupted: 0
 * with the flag set). */
static int gen_all(gen_run *g)
{
    const gen_opts *o = g->o;
    const int64_t nrec = g->set ? dna_set_nrec(g->set) : 1;
    g->total = nrec * o->n * o->length;
    mb_cli_progress_start(&g->pg);
    for (int64_t rec = 0; rec < nrec; rec++)
        for (int64_t first = 0; first < o->n; first += o->batch) {
            if (mb_cli_interrupted()) return 0;
            const int64_t rows = o->n - first < o->batch ? o->n - first : o->batch;
            if (gen_round(g, rec, first, (int)rows)) return -1;
        }
    return 0;
}

/* ---- the command ------------------------------------------------------------------------ */

int dna_cmd_generate(int argc, char **argv)
{
    gen_opts o = {.n = 1, .batch = GEN_BATCH_DEFAULT, .width = GEN_WIDTH_DEFAULT, .temperature = 1, .top_p = 1};
    if (dna_infer_init(&o.in, argc, GEN_CHUNK_DEFAULT)) return 1;
    const int pr = gen_parse(&o, argc, argv);
    if (pr) {
        dna_infer_free(&o.in);
        return pr == 1 ? 0 : 2;
    }
    /* more rows than sequences a round would be computed for nothing */
    if (o.batch > o.n) o.batch = o.n;

    int rc = 1;
    mb_ctx *ctx = NULL;
    mb_model *m = NULL;
    dna_set *set = NULL;
    mb_outfile *of = NULL;
    gen_run g = {.o = &o};
    /* the output before any work (a folder named --out, an unwritable
     * directory), not at the rename after it */
    if (o.out && mb_cli_check_writable(DNA_PROG, o.out)) goto done;
    if (!(ctx = mb_cli_ctx(DNA_PROG, &o.in.t)) || !(m = dna_cmd_load_model(ctx, o.in.model, 0, 0))) goto done;
    if (dna_cmd_require_lm(m, o.in.model, "generate")) goto done;
    if (mb_model_config(m)->arch == MB_ARCH_BIDIR) {
        mb_cli_error(DNA_PROG, "%s: a bidirectional (masked) model: generate needs a causal one (pretrain "
                               "--objective clm)", o.in.model);
        goto done;
    }
    if ((o.int8 && mb_model_set_int8(m, 1)) || (o.bf16 && mb_model_set_bf16(m, 1))) {
        mb_cli_error(DNA_PROG, "%s: %s", o.int8 ? "--int8" : "--bf16", mb_error_last());
        goto done;
    }
    if (o.in.n_fasta && (!(set = dna_cmd_open_set(o.in.fasta, o.in.n_fasta, o.in.reference)) || gen_check_prompts(set)))
        goto done;
    g.m = m;
    g.set = set;
    if (gen_run_alloc(&g)) goto done;
    g.f = stdout;
    if (o.out) {
        if (!(of = mb_cli_outfile_open(DNA_PROG, o.out))) goto done;
        g.f = mb_outfile_fp(of);
    }
    if (gen_all(&g)) goto done;
    if (mb_cli_interrupted()) {
        mb_cli_error(DNA_PROG, "interrupted after %lld of %lld bases%s", (long long)g.done, (long long)g.total,
                     o.out ? "; nothing written (--out as it was)" : "");
        rc = MB_CLI_EXIT_INTERRUPTED;
        goto done;
    }
    if (o.out) {
        mb_outfile *c = of;
        of = NULL;
        if (mb_cli_outfile_commit(DNA_PROG, c)) goto done;
    } else if (fflush(stdout) != 0 || ferror(stdout)) {
        mb_cli_write_error(DNA_PROG, NULL);
        goto done;
    }
    /* after the output is complete: a failed run says one line, its error */
    if (g.nonbase)
        mb_cli_warn(DNA_PROG, "%lld of %lld drawn tokens were not A, C, G or T (N or a special token): written as N",
                    (long long)g.nonbase, (long long)g.done);
    rc = 0;
done:
    mb_outfile_discard(of);
    gen_run_free(&g);
    dna_set_close(set);
    mb_model_free(m);
    mb_ctx_free(ctx);
    dna_infer_free(&o.in);
    return rc;
}
