/* mamba-dna embed: the mean over positions of a model's final normed hidden
 * state (the input of its LM head, and what a classification head reads),
 * per record or per window, in constant memory: chunks with the recurrent
 * state carried, each chunk's hidden states summed by
 * mb_model_forward_chunk_pooled. Written as a TSV, or a float32 .npy with
 * a TSV of the rows beside it. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dna_cmd.h"
#include "dna_pool.h"

#define EM_CHUNK_DEFAULT 65536
#define EM_NPY_HEADER 128 /* bytes before the data: magic, version, length, dict, padding */

typedef struct {
    dna_infer_opts in;
    const char *out;
    dna_pool_opts pool; /* --window, --stride */
    int npy;
} em_opts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " embed --model M --fasta F [options]\n"
            "\n"
            "Embeddings of sequences under the mamba-dna model M: the mean over positions\n"
            "of the final normed hidden state (d_model values, the input of the LM head and\n"
            "of a classification head), per record of F or, with --window, per window.\n"
            "Computed in constant memory: chunks of --chunk bases, state carried across.\n"
            "\n"
            "Output, one row per record or window, in file order:\n"
            "  tsv: name  start  end  dim0 .. dim<d-1>   (a header line; start and end\n"
            "       0-based, half open; values %%.6g)\n"
            "  npy: a float32 NumPy array (rows, d_model) in --out, and its rows' name,\n"
            "       start, end in --out.rows.tsv\n"
            "An empty record gives a row of nan; a model whose numbers overflow (a\n"
            "hidden state not finite) is an error, with nothing written.\n"
            "\n"
            "options:\n"
            "  --model M          mamba-dna checkpoint (required)\n"
            "  --fasta F          FASTA (plain, gzip, bgzip + .fai), BAM or CRAM (required;\n"
            "                     repeatable: the records of every file, in order)\n"
            "  --reference FA     reference for CRAM inputs\n"
            "  --window W         windows of W bases instead of whole records; a record\n"
            "                     shorter than W gives one row for all of it [off]\n"
            "  --stride S         a window starts every S bases; a last window that would\n"
            "                     run past the record's end is dropped [W]\n"
            "  --out FILE         write FILE (through a temporary file in its directory,\n"
            "                     renamed when complete) [stdout, tsv only]\n"
            "  --format tsv|npy   output format [tsv]\n"
            "  --chunk N          tokens per forward pass; 64k, 1M accepted [%d]\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            "  --tf32             GPU: TF32 tensor cores for the GEMMs (faster, ~1e-3 error)\n"
            MB_CLI_PRECISION_HELP
            "\n"
            "Progress goes to stderr when the work takes long (a line every 5 s: bases\n"
            "done of the total, ETA). Ctrl-C or SIGTERM stops it: exit 130, --out as it\n"
            "was before.\n"
            "Example: " DNA_PROG " embed --model m.safetensors --fasta genome.fa.gz --window 4096 \\\n"
            "           --format npy --out emb.npy\n",
            EM_CHUNK_DEFAULT);
}

/* ---- output --------------------------------------------------------------- */

typedef struct {
    const char *path;     /* NULL: stdout */
    mb_outfile *main;     /* path (tsv or npy), when given */
    mb_outfile *names;    /* npy: path.rows.tsv */
    FILE *f, *rows;       /* where rows go: stdout or main's; names' */
    int npy, d;
    int64_t nrows;
    float *buf; /* npy: one row */
} em_out;

/* The npy header, EM_NPY_HEADER bytes: written with 0 rows first, again
 * with the count at the end. */
static int em_npy_header(FILE *f, int64_t rows, int d)
{
    char h[EM_NPY_HEADER];
    memset(h, ' ', sizeof h);
    memcpy(h, "\x93NUMPY\x01\x00", 8);
    const int hl = EM_NPY_HEADER - 10;
    h[8] = (char)(hl & 0xff);
    h[9] = (char)(hl >> 8);
    char dict[EM_NPY_HEADER];
    const int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %d), }",
                           (long long)rows, d);
    if (n < 0 || n >= hl) return -1;
    memcpy(h + 10, dict, (size_t)n);
    h[EM_NPY_HEADER - 1] = '\n';
    return fwrite(h, 1, sizeof h, f) == sizeof h ? 0 : -1;
}

static void em_out_discard(em_out *o)
{
    mb_outfile_discard(o->main);
    mb_outfile_discard(o->names);
    free(o->buf);
    memset(o, 0, sizeof *o);
}

static int em_out_open(em_out *o, const char *path, int npy, int d)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    o->npy = npy;
    o->d = d;
    o->f = stdout;
    if (path) {
        if (!(o->main = mb_cli_outfile_open(DNA_PROG, path))) return -1;
        o->f = mb_outfile_fp(o->main);
        if (npy) {
            char *rp = mb_cli_path_suffix(path, ".rows.tsv");
            if (!rp || !(o->buf = malloc(sizeof(float) * (size_t)d))) {
                free(rp);
                mb_cli_error(DNA_PROG, "out of memory");
                em_out_discard(o);
                return -1;
            }
            o->names = mb_cli_outfile_open(DNA_PROG, rp);
            free(rp);
            if (!o->names) {
                em_out_discard(o);
                return -1;
            }
            o->rows = mb_outfile_fp(o->names);
        }
    }
    FILE *names = npy ? o->rows : o->f;
    int bad = fputs("name\tstart\tend", names) < 0;
    if (!npy)
        for (int k = 0; k < d && !bad; k++) bad = fprintf(names, "\tdim%d", k) < 0;
    bad = bad || fputc('\n', names) == EOF;
    if (npy) bad = bad || em_npy_header(o->f, 0, d);
    if (bad || ferror(o->f) || ferror(names)) {
        mb_cli_write_error(DNA_PROG, o->path);
        em_out_discard(o);
        return -1;
    }
    return 0;
}

/* One row: its mean hidden state is sum / n (nan when n is 0). */
static int em_out_row(em_out *o, const char *name, int64_t start, int64_t end, const double *sum)
{
    const double n = (double)(end - start);
    FILE *names = o->npy ? o->rows : o->f;
    int bad = fprintf(names, "%s\t%lld\t%lld", name, (long long)start, (long long)end) < 0;
    if (o->npy) {
        for (int k = 0; k < o->d; k++) {
            const float x = n > 0 ? (float)(sum[k] / n) : NAN;
            uint32_t u;
            memcpy(&u, &x, sizeof u);
            unsigned char le[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                                   (unsigned char)(u >> 24)};
            memcpy(&o->buf[k], le, sizeof le);
        }
        bad = bad || fwrite(o->buf, sizeof(float), (size_t)o->d, o->f) != (size_t)o->d;
    } else {
        for (int k = 0; k < o->d && !bad; k++)
            bad = n > 0 ? fprintf(o->f, "\t%.6g", sum[k] / n) < 0 : fputs("\tnan", o->f) < 0;
    }
    bad = bad || fputc('\n', names) == EOF || ferror(o->f) || ferror(names);
    if (bad) return mb_cli_write_error(DNA_PROG, o->npy && ferror(names) ? mb_outfile_path(o->names) : o->path);
    o->nrows++;
    return 0;
}

static int em_out_close(em_out *o)
{
    if (!o->path) {
        errno = 0;
        int bad = fflush(stdout) != 0 || ferror(stdout);
        em_out_discard(o);
        return bad ? mb_cli_write_error(DNA_PROG, NULL) : 0;
    }
    if (o->npy && (fseek(o->f, 0, SEEK_SET) != 0 || em_npy_header(o->f, o->nrows, o->d))) {
        mb_cli_write_error(DNA_PROG, o->path);
        em_out_discard(o);
        return -1;
    }
    /* the rows file first: the .npy appears only once both are complete
     * (a commit frees its outfile, failed or not) */
    mb_outfile *names = o->names, *body = o->main;
    o->names = o->main = NULL;
    int bad = names && mb_cli_outfile_commit(DNA_PROG, names);
    if (bad) mb_outfile_discard(body);
    else bad = mb_cli_outfile_commit(DNA_PROG, body);
    em_out_discard(o);
    return bad ? -1 : 0;
}

/* Whether --out (and, for npy, its rows file) can be written: before the
 * work. -1 after the error line. */
static int em_check_outputs(const char *path, int npy)
{
    if (mb_cli_check_writable(DNA_PROG, path)) return -1;
    if (!npy) return 0;
    char *rp = mb_cli_path_suffix(path, ".rows.tsv");
    if (!rp) {
        mb_cli_error(DNA_PROG, "out of memory");
        return -1;
    }
    const int rc = mb_cli_check_writable(DNA_PROG, rp);
    free(rp);
    return rc;
}

/* ---- the embeddings -------------------------------------------------------- */

typedef struct {
    em_out *out;
    dna_set *set;
} em_sink;

static int em_row(void *ud, int64_t rec, int64_t start, int64_t end, const double *sum)
{
    em_sink *k = ud;
    return em_out_row(k->out, dna_set_name(k->set, rec), start, end, sum);
}

/* ---- the command ------------------------------------------------------------ */

int dna_cmd_embed(int argc, char **argv)
{
    em_opts o = {0};
    if (dna_infer_init(&o.in, argc, EM_CHUNK_DEFAULT)) return 1;
    dna_pool_opts_init(&o.pool);
    enum { O_OUT = 256, O_FORMAT };
    static const struct option opts[] = {
        DNA_INFER_OPTIONS, DNA_POOL_OPTIONS, {"out", 1, 0, O_OUT},
        {"format", 1, 0, O_FORMAT}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(DNA_PROG, "embed", argc, argv, opts)) != -1) {
        const int r = dna_infer_option(&o.in, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        if (dna_pool_option(&o.pool, c, optarg, &bad)) continue;
        switch (c) {
        case O_OUT: o.out = optarg; break;
        case O_FORMAT:
            if (strcmp(optarg, "tsv") == 0) o.npy = 0;
            else if (strcmp(optarg, "npy") == 0) o.npy = 1;
            else {
                mb_cli_error(DNA_PROG, "--format expects tsv or npy, got '%s'", optarg);
                bad = 1;
            }
            break;
        case 'h':
            usage(stdout);
            dna_infer_free(&o.in);
            return 0;
        case MB_CLI_OPT_VERSION: dna_infer_free(&o.in); return 0;
        default: bad = 1;
        }
    }
    if (!bad && dna_infer_check(&o.in, "embed", argc, argv)) bad = 1;
    if (!bad && dna_pool_check(&o.pool)) bad = 1;
    if (!bad && o.npy && !o.out) {
        mb_cli_error(DNA_PROG, "--format npy needs --out FILE");
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "Try '" DNA_PROG " embed --help'.\n");
        dna_infer_free(&o.in);
        return 2;
    }

    int rc = 1;
    dna_set *set = NULL;
    mb_model *m = NULL;
    em_out out = {0};
    int out_open = 0;
    mb_ctx *ctx = NULL;
    /* the outputs before any work (a folder named --out, an unwritable
     * directory), not at the rename after it */
    if (o.out && em_check_outputs(o.out, o.npy)) goto done;
    if (!(ctx = mb_cli_ctx(DNA_PROG, &o.in.t)) || !(m = dna_cmd_load_model(ctx, o.in.model, 0, 0))) goto done;
    if (!(set = dna_cmd_open_set(o.in.fasta, o.in.n_fasta, o.in.reference))) goto done;
    if (em_out_open(&out, o.out, o.npy, mb_model_config(m)->d_model)) goto done;
    out_open = 1;
    o.pool.chunk = o.in.chunk;
    em_sink sink = {.out = &out, .set = set};
    if (dna_pool_run(m, o.in.model, set, &o.pool, "embed", em_row, &sink)) goto done;
    if (mb_cli_interrupted()) {
        mb_cli_error(DNA_PROG, "interrupted after %lld rows%s", (long long)out.nrows,
                     o.out ? "; nothing written (--out as it was)" : "");
        rc = MB_CLI_EXIT_INTERRUPTED;
        goto done;
    }
    out_open = 0;
    if (em_out_close(&out)) goto done;
    rc = 0;
done:
    if (out_open) em_out_discard(&out);
    dna_set_close(set);
    mb_model_free(m);
    mb_ctx_free(ctx);
    dna_infer_free(&o.in);
    return rc;
}
