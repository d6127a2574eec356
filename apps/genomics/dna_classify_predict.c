/* mamba-dna classify predict: each class's probability per record or
 * window of a FASTA, the head on the mean final hidden state (dna_pool.c),
 * in constant memory (dna_classify.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dna_classify.h"
#include "dna_pool.h"

typedef struct {
    dna_infer_opts in;
    dna_pool_opts pool; /* --window, --stride */
    double min_prob;    /* --min-prob: below it a row is "unknown" (0: off) */
    int novel;          /* --novel: CLS.novelty's distance rule too */
} pr_opts;

void cl_predict_usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " classify predict --model CLS --fasta F [options]\n"
            "\n"
            "Class probabilities under the classifier CLS (from '" DNA_PROG " classify train')\n"
            "per record of F or, with --window, per window, as a TSV on stdout (a header line,\n"
            "then a row per record or window in file order):\n"
            "  name  start  end  predicted  p_<class1> .. p_<classN>\n"
            "start and end are 0-based, half open; predicted is the class of the highest\n"
            "probability (%%.6g values), or unknown when that probability is below\n"
            "--min-prob: the classifier knows only its classes, so input from none of\n"
            "them still gets one of them, often with a high probability; a threshold\n"
            "that the held-out data of every class clears is the guard against that.\n"
            "The class names are read from CLS.classes (class0 .. when it is missing).\n"
            "A row is the head applied to the mean final hidden state\n"
            "over its bases, computed in constant memory: chunks of --chunk bases with the\n"
            "recurrent state carried, so records of any length are classified whole. An\n"
            "empty record gives NA and nan; a model whose numbers overflow (a probability\n"
            "not finite) is an error. Progress on stderr when the work takes long (bases\n"
            "done of the total, ETA); Ctrl-C or SIGTERM stops it (exit 130).\n"
            "\n"
            "options:\n"
            "  --model CLS        classifier checkpoint (required)\n"
            "  --fasta F          FASTA (plain, gzip, bgzip + .fai), BAM or CRAM (required;\n"
            "                     repeatable: the records of every file, in order)\n"
            "  --reference FA     reference for CRAM inputs\n"
            "  --window W         windows of W bases instead of whole records (train's\n"
            "                     --seq-len is the natural choice); a record shorter than W\n"
            "                     gives one row for all of it [off]\n"
            "  --stride S         a window starts every S bases; a last window that would run\n"
            "                     past the record's end is dropped [W]\n"
            "  --min-prob P       predicted is unknown where the highest probability is\n"
            "                     below P, in [0, 1] (refused when a class is named\n"
            "                     unknown) [0: off]\n"
            "  --novel            the distance rule too (CLS.novelty, written by classify\n"
            "                     train): predicted is unknown where the row's mean hidden\n"
            "                     state lies farther from its nearest class's centroid than\n"
            "                     that class's radius (the 95th percentile of its training\n"
            "                     windows'); a column novelty = distance / radius is added\n"
            "                     (> 1: unknown). It flags input of no class that the\n"
            "                     softmax calls one with confidence (measured: a species of\n"
            "                     no class at p >= 0.9 in 90%% of its windows). With\n"
            "                     --window, each file's share of unknown windows goes to\n"
            "                     stderr: a relative of a class passes window by window more\n"
            "                     often than not, but its share stands out (measured: 39%%\n"
            "                     against at most 3%% for held-out strains of known classes)\n"
            "  --chunk N          tokens per forward pass; 64k, 1M accepted [%d]\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            "  --tf32             GPU: TF32 tensor cores for the GEMMs (faster, ~1e-3 error)\n"
            MB_CLI_PRECISION_HELP
            "\n"
            "Example: " DNA_PROG " classify predict --model cls.safetensors --fasta reads.fa.gz\n",
            CL_CHUNK_DEFAULT);
}

typedef struct {
    mb_model *m;
    const char *model; /* its path, for messages */
    dna_set *set;
    const mb_cli_names *names;
    int d, C;
    double min_prob;
    const cl_novel *nv; /* --novel, else NULL */
    float *pooled, *probs;
    int windows;                 /* --window given */
    int file;                    /* --novel with windows: the current file's */
    int64_t rows, unknown;       /* windows and unknown ones */
} pr_run;

/* --novel over windows: a file's share of unknown windows on stderr (an
 * assembly of a species of no class shows as a share far above the
 * held-out one classify train reported, even where most of its windows
 * pass; a file, since a draft assembly is many records) */
static void pr_file_summary(pr_run *r)
{
    if (!r->nv || !r->windows || r->rows == 0) return;
    fprintf(stderr, DNA_PROG " classify: %s: %lld of %lld windows unknown (%.1f%%)\n",
            dna_src_path(dna_set_src(r->set, r->file)), (long long)r->unknown, (long long)r->rows,
            100.0 * (double)r->unknown / (double)r->rows);
    r->rows = r->unknown = 0;
}

/* One output row; p NULL: an empty record (NA, nan). */
static int pr_print(pr_run *r, int64_t rec, int64_t start, int64_t end, const float *p)
{
    int best = 0;
    for (int j = 1; p && j < r->C; j++) best = p[j] > p[best] ? j : best;
    /* the distance rule on the pooled vector the probabilities came from */
    double novelty = NAN;
    if (p && r->nv) {
        int near;
        const double e = cl_novel_dist(r->nv, r->pooled, &near);
        novelty = r->nv->radius[near] > 0 ? e / r->nv->radius[near] : (e > 0 ? INFINITY : 0.0);
    }
    const char *pred = !p ? "NA" : (p[best] < r->min_prob || novelty > 1) ? "unknown" : r->names->v[best];
    if (r->nv && r->windows && p) {
        const int file = dna_set_file_of(r->set, rec);
        if (file != r->file) pr_file_summary(r);
        r->file = file;
        r->rows++;
        r->unknown += strcmp(pred, "unknown") == 0;
    }
    int bad = printf("%s\t%lld\t%lld\t%s", dna_set_name(r->set, rec), (long long)start, (long long)end, pred) < 0;
    for (int j = 0; j < r->C && !bad; j++) bad = p ? printf("\t%.6g", p[j]) < 0 : fputs("\tnan", stdout) < 0;
    if (r->nv && !bad) bad = p ? printf("\t%.4f", novelty) < 0 : fputs("\tnan", stdout) < 0;
    if (bad || putchar('\n') == EOF || ferror(stdout)) return mb_cli_write_error(DNA_PROG, NULL);
    return 0;
}

/* the head on the mean hidden state of a row (dna_pool_row_fn) */
static int pr_row(void *ud, int64_t rec, int64_t start, int64_t end, const double *sum)
{
    pr_run *r = ud;
    if (end == start) return pr_print(r, rec, start, end, NULL);
    for (int k = 0; k < r->d; k++) r->pooled[k] = (float)(sum[k] / (double)(end - start));
    if (mb_model_classify_pooled(r->m, r->pooled, 1, r->probs)) {
        mb_cli_error(DNA_PROG, "record '%s': %s", dna_set_name(r->set, rec), mb_error_last());
        return -1;
    }
    for (int j = 0; j < r->C; j++)
        if (!isfinite(r->probs[j])) {
            mb_cli_error(DNA_PROG, "%s: record '%s' [%lld, %lld): the class probabilities are not finite (%s): the "
                                   "model's numbers overflow",
                         r->model, dna_set_name(r->set, rec), (long long)start, (long long)end,
                         mb_cli_nonfinite(r->probs[j]));
            return -1;
        }
    return pr_print(r, rec, start, end, r->probs);
}

int cl_predict(int argc, char **argv)
{
    pr_opts o = {0};
    if (dna_infer_init(&o.in, argc, CL_CHUNK_DEFAULT)) return 1;
    dna_pool_opts_init(&o.pool);
    enum { O_MINP = 0x2200, O_NOVEL };
    static const struct option opts[] = {DNA_INFER_OPTIONS,       DNA_POOL_OPTIONS,      {"min-prob", 1, 0, O_MINP},
                                         {"novel", 0, 0, O_NOVEL}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(DNA_PROG, "classify predict", argc, argv, opts)) != -1) {
        const int r = dna_infer_option(&o.in, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        if (dna_pool_option(&o.pool, c, optarg, &bad)) continue;
        switch (c) {
        case O_MINP: bad = mb_cli_parse_real(DNA_PROG, "--min-prob", optarg, 0.0, 1.0, &o.min_prob) != 0; break;
        case O_NOVEL: o.novel = 1; break;
        case 'h':
            cl_predict_usage(stdout);
            dna_infer_free(&o.in);
            return 0;
        case MB_CLI_OPT_VERSION: dna_infer_free(&o.in); return 0;
        default: bad = 1;
        }
    }
    if (!bad && dna_infer_check(&o.in, "classify predict", argc, argv)) bad = 1;
    if (!bad && dna_pool_check(&o.pool)) bad = 1;
    if (bad) {
        fprintf(stderr, CL_TRY);
        dna_infer_free(&o.in);
        return 2;
    }

    int rc = 1;
    dna_set *set = NULL;
    mb_model *m = NULL;
    mb_cli_names names = {0};
    cl_novel nv = {0};
    pr_run r = {0};
    mb_ctx *ctx = mb_cli_ctx(DNA_PROG, &o.in.t);
    if (!ctx || !(m = dna_cmd_load_model(ctx, o.in.model, 0, 0))) goto done;
    const int C = mb_model_config(m)->n_classes;
    if (C <= 0) {
        mb_cli_error(DNA_PROG, "%s: no classification head: train one with '" DNA_PROG " classify train'", o.in.model);
        goto done;
    }
    if (mb_cli_classes_names(DNA_PROG, o.in.model, C, &names)) goto done;
    if (o.novel && cl_novel_read(o.in.model, &names, mb_model_config(m)->d_model, &nv)) goto done;
    for (int k = 0; (o.min_prob > 0 || o.novel) && k < C; k++)
        if (strcmp(names.v[k], "unknown") == 0) {
            mb_cli_error(DNA_PROG, "%s: a class is named unknown, so the unknown label would be ambiguous", o.in.model);
            goto done;
        }
    if (!(set = dna_cmd_open_set(o.in.fasta, o.in.n_fasta, o.in.reference))) goto done;
    r.m = m;
    r.min_prob = o.min_prob;
    r.nv = o.novel ? &nv : NULL;
    r.windows = o.pool.window > 0;
    r.model = o.in.model;
    r.set = set;
    r.names = &names;
    r.d = mb_model_config(m)->d_model;
    r.C = C;
    r.pooled = malloc(sizeof(float) * (size_t)r.d);
    r.probs = malloc(sizeof(float) * (size_t)C);
    if (!r.pooled || !r.probs) {
        mb_cli_error(DNA_PROG, "out of memory");
        goto done;
    }
    int bad_out = printf("name\tstart\tend\tpredicted") < 0;
    for (int k = 0; k < C && !bad_out; k++) bad_out = printf("\tp_%s", names.v[k]) < 0;
    if (o.novel && !bad_out) bad_out = printf("\tnovelty") < 0;
    if (bad_out || putchar('\n') == EOF) {
        mb_cli_write_error(DNA_PROG, NULL);
        goto done;
    }
    o.pool.chunk = o.in.chunk;
    if (dna_pool_run(m, o.in.model, set, &o.pool, "classify", pr_row, &r)) goto done;
    pr_file_summary(&r);
    if (mb_cli_interrupted()) {
        mb_cli_error(DNA_PROG, "interrupted; the rows above are complete, the rest is missing");
        fflush(stdout);
        rc = MB_CLI_EXIT_INTERRUPTED;
        goto done;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mb_cli_write_error(DNA_PROG, NULL);
        goto done;
    }
    rc = 0;
done:
    cl_novel_free(&nv);
    free(r.pooled);
    free(r.probs);
    mb_cli_names_free(&names);
    dna_set_close(set);
    mb_model_free(m);
    mb_ctx_free(ctx);
    dna_infer_free(&o.in);
    return rc;
}
