/* mamba-dna classify train: fine-tunes a pretrained language model with a
 * fresh classification head on the classes' random windows (classes
 * balanced), through the shared training loop (mb_cli_loop.h), validating
 * on fixed held-out windows (dna_classify.h). One process: the windows of a
 * step are drawn in order from one stream, so the command does not run
 * data-parallel. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dna_classify.h"

void cl_train_usage(FILE *f, const mb_cli_train *d)
{
    fprintf(f,
            "usage: " DNA_PROG " classify train --model PRETRAINED --out CLS\n"
            "           (--class NAME=FILE[,FILE...]... | --tsv REGIONS.tsv --fasta F...) [options]\n"
            "\n"
            "Fine-tunes the mamba-dna language model PRETRAINED (from '" DNA_PROG " pretrain')\n"
            "with a fresh classification head: the mean over positions of the final hidden\n"
            "state, then a linear layer, trained with the whole backbone on random windows of\n"
            "--seq-len bases, the class drawn uniformly for each window (classes balanced),\n"
            "reverse-complemented half of the time, windows mostly N skipped. The accuracy on\n"
            "a fixed set of held-out windows is reported every --val-every steps; at the end\n"
            "the accuracy and the confusion matrix (rows: true class, columns: predicted) go\n"
            "to stdout. The classifier of the lowest validation loss is saved to CLS, the\n"
            "checkpoints to resume beside it (CLS.step-N, .optim, .json: see --out) and the\n"
            "class names, one a line, to CLS.classes. At the end a distance rule for input of\n"
            "none of the classes is fitted on the saved classifier (each class's centroid of\n"
            "the pooled hidden states of 128 of its training windows, a radius at the 95th\n"
            "percentile of their distances) into CLS.novelty, for 'classify predict --novel',\n"
            "with the share of held-out windows it would call unknown. Progress on stderr;\n"
            "Ctrl-C or SIGTERM saves and stops, exit 130 (--resume goes on); a --log that\n"
            "cannot be written stops the run the same way, exit 1.\n"
            "\n"
            "classes (one of):\n"
            "  --class NAME=FILE[,FILE...]  the sequences of class NAME (FASTA, BAM, CRAM);\n"
            "                     repeatable, the classes in the order given\n"
            "  --tsv REGIONS.tsv  lines REGION<TAB>LABEL over the records of the --fasta files:\n"
            "                     REGION is CHROM (the whole record) or CHROM:START-END\n"
            "                     (1-based, inclusive); the classes are the labels, in order\n"
            "                     of first appearance. Regions must be at least --seq-len long.\n"
            "                     '#' lines and a header line 'region<TAB>label' are skipped\n"
            "  --fasta F          the files REGIONS.tsv (and --val-tsv) refer to (repeatable)\n"
            "validation (one of):\n"
            "  --val-class NAME=FILE[,FILE...]  held-out files of class NAME (e.g. whole\n"
            "                     held-out strains), repeatable; the training files then train\n"
            "                     whole\n"
            "  --val-tsv V.tsv    held-out regions of the --fasta files, labelled as in --tsv\n"
            "  --val-frac F       else: the last F of every training record (of every region\n"
            "                     with --tsv) validates, the rest trains [%g]\n"
            "  --val-windows N    validation windows per class, drawn once (a fixed seed), not\n"
            "                     reverse-complemented; as long as --seq-len, or as the longest\n"
            "                     held-out interval of the class when that is shorter [%d]\n"
            "  --val-every N      validate every N steps [steps / 10]\n"
            "other:\n"
            "  --model PRETRAINED mamba-dna checkpoint to start from (a language model, or a\n"
            "                     classifier with a head of as many classes); not needed with\n"
            "                     --resume\n"
            "  --no-rc            no reverse-complement augmentation\n"
            "  --reference FA     reference for CRAM inputs\n"
            "  --force            overwrite an existing --out without --resume\n"
            DNA_MEMORY_HELP,
            CL_VAL_FRAC_DEFAULT, CL_VAL_WINDOWS_DEFAULT);
    mb_cli_train_help(f, d);
    fprintf(f, "The model flags (--d-model ... --init) do not apply: the model is PRETRAINED's.\n"
               "With batch * seq-len above %d tokens, layers are recomputed in backward.\n"
               "\n"
               "Example: " DNA_PROG " classify train --model pre.safetensors --out cls.safetensors \\\n"
               "           --class ecoli=ecoli.fa.gz --class saureus=sa1.fa.gz,sa2.fa.gz \\\n"
               "           --val-class ecoli=ecoli_val.fa.gz --val-class saureus=sa_val.fa.gz \\\n"
               "           --seq-len 4096 --steps 2000\n",
               DNA_RECOMPUTE_TOKENS);
}

/* The flags into o, the classes given by --class / --val-class into d; -1
 * to go on, else the exit code (0 after --help, 2 after a usage error line,
 * 1 out of memory). o->fasta is the caller's to free. */
static int cl_parse(cl_opts *o, cl_data *d, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    mb_cli_train_default(&o->t);
    o->t.out = NULL;
    o->t.lr = CL_LR_DEFAULT;
    o->val_frac = CL_VAL_FRAC_DEFAULT;
    o->val_windows = CL_VAL_WINDOWS_DEFAULT;
    o->val_every = -1;
    o->rc_aug = 1;
    const mb_cli_train defaults = o->t;
    enum {
        O_MODEL = 256, O_CLASS, O_TSV, O_FASTA, O_VCLASS, O_VTSV, O_VFRAC, O_VWIN, O_VEVERY, O_NORC, O_REF, O_FORCE,
        O_LOWMEM, O_HIGHMEM
    };
    static const struct option own[] = {
        {"model", 1, 0, O_MODEL}, {"class", 1, 0, O_CLASS}, {"tsv", 1, 0, O_TSV}, {"fasta", 1, 0, O_FASTA},
        {"val-class", 1, 0, O_VCLASS}, {"val-tsv", 1, 0, O_VTSV}, {"val-frac", 1, 0, O_VFRAC},
        {"val-windows", 1, 0, O_VWIN}, {"val-every", 1, 0, O_VEVERY}, {"no-rc", 0, 0, O_NORC},
        {"reference", 1, 0, O_REF}, {"force", 0, 0, O_FORCE}, {"low-memory", 0, 0, O_LOWMEM},
        {"high-memory", 0, 0, O_HIGHMEM}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option *opts = mb_cli_options_join(own);
    o->fasta = calloc((size_t)argc + 1, sizeof(char *));
    if (!opts || !o->fasta) {
        mb_cli_error(DNA_PROG, "out of memory");
        free(opts);
        return 1;
    }
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(DNA_PROG, "classify train", argc, argv, opts)) != -1) {
        const int r = mb_cli_train_option(&o->t, DNA_PROG, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case O_MODEL: o->model = optarg; break;
        case O_CLASS: bad = cl_parse_class("--class", optarg, &d->names, &d->files) != 0; break;
        case O_TSV: o->tsv = optarg; break;
        case O_FASTA: o->fasta[o->n_fasta++] = optarg; break;
        case O_VCLASS: bad = cl_parse_class("--val-class", optarg, &d->vnames, &d->vfiles) != 0; break;
        case O_VTSV: o->val_tsv = optarg; break;
        case O_VFRAC:
            bad = mb_cli_parse_real(DNA_PROG, "--val-frac", optarg, 0.001, 0.9, &o->val_frac) != 0;
            o->set_val_frac = 1;
            break;
        case O_VWIN: bad = mb_cli_parse_int(DNA_PROG, "--val-windows", optarg, 1, 1 << 20, &o->val_windows) != 0; break;
        case O_VEVERY:
            bad = mb_cli_parse_int(DNA_PROG, "--val-every", optarg, 1, INT64_C(1) << 40, &o->val_every) != 0;
            break;
        case O_NORC: o->rc_aug = 0; break;
        case O_REF: o->reference = optarg; break;
        case O_FORCE: o->force = 1; break;
        case O_LOWMEM: bad = dna_cmd_memory_option(&o->memory, DNA_MEMORY_LOW); break;
        case O_HIGHMEM: bad = dna_cmd_memory_option(&o->memory, DNA_MEMORY_HIGH); break;
        case 'h':
            cl_train_usage(stdout, &defaults);
            free(opts);
            return 0;
        case MB_CLI_OPT_VERSION: free(opts); return 0;
        default: bad = 1;
        }
    }
    free(opts);
    const char *why = NULL;
    if (!bad && optind < argc) {
        mb_cli_error(DNA_PROG, "classify train: unexpected argument '%s' (inputs go after --class, --tsv or "
                               "--fasta)", argv[optind]);
        bad = 1;
    }
    if (bad) why = "";
    else if (!d->files.n && !o->tsv) why = "classify train needs --class NAME=FILE... or --tsv REGIONS.tsv";
    else if (d->files.n && o->tsv) why = "--class and --tsv are exclusive";
    else if (d->files.n && d->names.n < 2) why = "classify train needs at least two classes";
    else if (o->tsv && !o->n_fasta) why = "--tsv needs --fasta (the files its regions are in)";
    else if (o->val_tsv && !o->n_fasta) why = "--val-tsv needs --fasta (the files its regions are in)";
    else if (o->n_fasta && !o->tsv && !o->val_tsv) why = "--fasta goes with --tsv or --val-tsv";
    else if ((d->vfiles.n > 0) + (o->val_tsv != NULL) + o->set_val_frac > 1)
        why = "--val-class, --val-tsv and --val-frac are exclusive";
    else if (!o->t.out) why = "classify train needs --out CLS";
    else if (!o->model && !o->t.resume) why = "classify train needs --model PRETRAINED (or --resume)";
    if (why) {
        if (*why) mb_cli_error(DNA_PROG, "%s", why);
        fprintf(stderr, CL_TRY);
        return 2;
    }
    if (o->val_every < 0) o->val_every = o->t.steps >= 10 ? o->t.steps / 10 : 1;
    return -1;
}

/* What a run holds; the shared training loop calls back into it. */
typedef struct {
    const cl_opts *o;
    cl_data *d;
    mb_cli_ckpt ck; /* the checkpoint sets beside --out */
    /* CLS.classes: written to a temporary file before training (which also
     * finds an --out directory we cannot write to before any work), renamed
     * into place at the first save; NULL once in place */
    mb_outfile *classes;
    mb_ctx *ctx;
    mb_model *m;
    mb_optim *opt;
    FILE *logf;
    int64_t nval;     /* validation windows over the classes */
    int32_t *tok, *lab; /* a step's windows and labels */
    mb_cli_cls_val val;   /* the last validation, and the best's */
    int load_classes; /* the head the checkpoint to resume must have */
    int rc_said;      /* the recompute mode said on stderr (dna_cmd_recompute_took) */
} cl_run;

static void cl_run_free(cl_run *t)
{
    if (t->logf) fclose(t->logf); /* after an error: mb_cli_log_close checks it on the way out */
    free(t->tok);
    free(t->lab);
    mb_cli_cls_val_free(&t->val);
    mb_outfile_discard(t->classes);
    mb_cli_ckpt_free(&t->ck);
    mb_optim_free(t->opt);
    mb_model_free(t->m);
    mb_ctx_free(t->ctx);
}

static mb_model *cl_load_set(void *ud, mb_ctx *ctx, const char *path)
{
    const cl_run *t = ud;
    return dna_cmd_load_model(ctx, path, t->load_classes, 0);
}

/* The checkpoint to train: PRETRAINED with a fresh head of C classes, or
 * the newest checkpoint beside --out with its optimizer, to resume (its
 * head must have C classes). */
static int cl_load(cl_run *t, int C)
{
    const cl_opts *o = t->o;
    if (o->t.resume) {
        t->load_classes = C;
        return mb_cli_ckpt_resume(&t->ck, t->ctx, &o->t, cl_load_set, t, &t->m, &t->opt);
    }
    return (t->m = dna_cmd_load_model(t->ctx, o->model, C, (uint64_t)o->t.seed)) ? 0 : -1;
}

/* Outputs first: CLS and CLS.classes that cannot be written (a folder, a
 * missing directory), an existing CLS (or checkpoint set of one) without
 * --resume or --force, a --log that cannot be opened fail before any work. */
static int cl_open_outputs(cl_run *t)
{
    const cl_opts *o = t->o;
    int log_failed = 0;
    char *classes = mb_cli_path_suffix(o->t.out, ".classes"), what[4096];
    if (!classes) {
        mb_cli_error(DNA_PROG, "out of memory");
        return -1;
    }
    const int bad = mb_cli_check_writable(DNA_PROG, o->t.out) || mb_cli_check_writable(DNA_PROG, classes);
    free(classes);
    if (bad) return -1;
    if (!o->t.resume && !o->force && mb_cli_ckpt_exists(o->t.out, what, sizeof what)) {
        mb_cli_error(DNA_PROG, "%s exists: --resume continues it, --force starts over", what);
        return -1;
    }
    if (!(t->logf = mb_cli_log_open(DNA_PROG, o->t.log, &log_failed)) && log_failed) return -1;
    return 0;
}

/* The model and the classes' data. With --class the classes are known: a
 * wrong checkpoint fails before any data is read; with --tsv they come
 * from the file. Then CLS.classes (checked on --resume, else written to
 * its temporary file) and the optimizer. */
static int cl_open_model_and_data(cl_run *t)
{
    const cl_opts *o = t->o;
    cl_data *d = t->d;
    static const char *const side[] = {".classes", NULL};
    mb_cli_ckpt_init(&t->ck, DNA_PROG, &o->t);
    /* a run that owns --out: the temporary files a killed one left go */
    if (o->t.resume || o->force) mb_cli_ckpt_sweep(&t->ck, side);
    if (!(t->ctx = mb_cli_ctx(DNA_PROG, &o->t))) return -1;
    if (!o->tsv && cl_load(t, d->names.n)) return -1;
    if (cl_setup_data(o, d)) return -1;
    if (!t->m && cl_load(t, d->C)) return -1;
    const int in_place = o->t.resume ? mb_cli_classes_check(DNA_PROG, o->t.out, &d->names) : 0;
    if (in_place < 0 || (!in_place && !(t->classes = mb_cli_classes_write(DNA_PROG, o->t.out, &d->names)))) return -1;
    if (o->t.set_model) mb_cli_warn(DNA_PROG, "the model flags are ignored: the model is the checkpoint's");
    return t->opt || (t->opt = mb_cli_optim(DNA_PROG, t->m, &o->t, NULL)) ? 0 : -1;
}

/* The buffers, the run's first lines, recompute for long steps, the log's
 * first line. */
static int cl_start(cl_run *t, int64_t step)
{
    const cl_opts *o = t->o;
    const cl_data *d = t->d;
    const int C = d->C;
    const int64_t B = o->t.batch, L = o->t.seq_len;
    if (mb_cli_cls_val_init(&t->val, DNA_PROG, C, "windows")) return -1;
    t->tok = malloc(sizeof(int32_t) * (size_t)(B * L));
    t->lab = malloc(sizeof(int32_t) * (size_t)B);
    if (!t->tok || !t->lab) {
        mb_cli_error(DNA_PROG, "out of memory for %lld tokens a step", (long long)(B * L));
        return -1;
    }
    for (int k = 0; k < C; k++)
        fprintf(stderr, DNA_PROG ": class %d '%s': %lld training bases, %lld validation windows of %lld\n", k,
                d->names.v[k], (long long)d->cls[k].tiv->bases, (long long)d->cls[k].nv, (long long)d->cls[k].vlen);
    dna_cmd_recompute(t->m, B, L, o->memory);
    t->rc_said = MB_RECOMPUTE_LAYERS;
    const mb_config *mc = mb_model_config(t->m);
    fprintf(stderr, DNA_PROG ": %zu parameters (d_model %d, %d layers, head of %d classes) on %s%s\n",
            mb_model_num_params(t->m), mc->d_model, mc->n_layer, mc->n_classes, mb_ctx_name(t->ctx),
            step ? ", resuming" : "");
    if (t->logf) {
        fprintf(t->logf, "{\"event\": \"start\", \"step\": %lld, \"steps\": %lld, \"seq_len\": %lld, \"batch\": %lld, "
                         "\"params\": %zu, \"device\": ",
                (long long)step, (long long)o->t.steps, (long long)L, (long long)B, mb_model_num_params(t->m));
        mb_cli_json_str(t->logf, mb_ctx_name(t->ctx));
        fputs(", \"classes\": [", t->logf);
        for (int k = 0; k < C; k++) {
            if (k) fputs(", ", t->logf);
            mb_cli_json_str(t->logf, d->names.v[k]);
        }
        fprintf(t->logf, "], \"val_windows\": %lld}\n", (long long)t->nval);
    }
    return mb_cli_log_check(DNA_PROG, t->logf);
}

/* A step: B windows, the class of each drawn uniformly, then forward and
 * backward of the head's cross-entropy. The data order is a function of
 * (seed, step): a resumed run sees what an uninterrupted one would have. */
static int cl_step(void *ud, int64_t step, mb_cli_step *out)
{
    cl_run *t = ud;
    const cl_data *d = t->d;
    const int64_t B = t->o->t.batch, L = t->o->t.seq_len;
    char err[512];
    uint64_t rng = mb_cli_rng_step(t->o->t.seed, step);
    for (int64_t b = 0; b < B; b++) {
        const int k = (int)mb_cli_rng_below(&rng, (uint64_t)d->C);
        t->lab[b] = k;
        if (dna_sampler_draw(d->cls[k].smp, &rng, t->o->rc_aug, t->tok + b * L, NULL, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return 1;
        }
    }
    out->L = L, out->B = B, out->items = B;
    if (mb_model_classify_backward(t->m, t->tok, t->lab, (int)B, (int)L, &out->loss)) return -1;
    if (t->o->memory == DNA_MEMORY_DEFAULT) dna_cmd_recompute_took(t->m, L, &t->rc_said);
    return 0;
}

/* The held-out windows' accuracy (one process: the collective is trivial). */
static int cl_step_validate(void *ud, double *acc)
{
    cl_run *t = ud;
    const int rc = cl_validate(t->m, t->d, t->o->t.batch, &t->val.ev) ? 1 : 0;
    if (rc == 0) {
        *acc = mb_cli_eval_acc(&t->val.ev);
        t->val.have_val = 1;
    }
    return mb_cli_dist_agree(rc);
}

/* CLS.classes into place the first time a model is written (before it:
 * a CLS never goes without its class names) */
static int cl_commit_classes(cl_run *t)
{
    mb_outfile *classes = t->classes;
    t->classes = NULL;
    return classes && mb_cli_outfile_commit(DNA_PROG, classes) ? 1 : 0;
}

/* A checkpoint set. */
static int cl_save(void *ud)
{
    cl_run *t = ud;
    return cl_commit_classes(t) || mb_cli_ckpt_save(&t->ck, t->m, t->opt) ? 1 : 0;
}

/* The lowest validation loss so far: CLS, and its validation for the
 * summary. */
static int cl_save_best(void *ud)
{
    cl_run *t = ud;
    mb_cli_cls_val_keep_best(&t->val);
    return cl_commit_classes(t) || mb_cli_ckpt_save_best(&t->ck, t->m) ? 1 : 0;
}

/* the held-out loss the best model is chosen by: the mean cross-entropy
 * (the accuracy moves in steps of a window) */
static double cl_val_loss(void *ud, double acc)
{
    (void)acc;
    return mb_cli_eval_loss(&((const cl_run *)ud)->val.ev);
}

static void cl_fields_train(void *ud, const mb_loss_stats *acc, FILE *f, int json)
{
    (void)ud;
    mb_cli_cls_fields_train(acc, f, json);
}

static void cl_fields_val(void *ud, double val, FILE *f, int json)
{
    (void)val;
    mb_cli_cls_fields_val(&((const cl_run *)ud)->val, f, json);
}

/* The distance rule on the model in CLS (the best's, read back, or this
 * process's last), fitted on the classes' training windows and checked on
 * the held-out ones, into CLS.novelty; its lines on stdout. Rank 0. */
static int cl_fit_novelty(cl_run *t, int64_t step)
{
    const cl_opts *o = t->o;
    const mb_cli_val_hist *h = &t->ck.hist;
    mb_model *m = t->m, *best = NULL;
    if (!o->t.select_last && h->best_step > 0 && h->best_step != step) {
        if (!(best = dna_cmd_load_model(t->ctx, o->t.out, 0, 0))) return 1;
        m = best;
    }
    cl_novel nv;
    int64_t flagged = 0, n = 0;
    int rc = cl_novel_fit(m, t->d, CL_NOVEL_WINDOWS, o->t.seq_len, o->t.seed, &nv) ? 1 : 0;
    if (rc == 0) {
        rc = cl_novel_held_out(m, t->d, &nv, &flagged, &n) ? 1 : 0;
        mb_outfile *f = rc ? NULL : cl_novel_write(o->t.out, &t->d->names, &nv);
        if (!rc && (!f || mb_cli_outfile_commit(DNA_PROG, f))) rc = 1;
        if (rc == 0) {
            printf("classify: distance rule in %s.novelty (classify predict --novel): a window is unknown beyond "
                   "its nearest class's radius, the %g%% of %d of that class's training windows; held-out windows "
                   "it calls unknown: %lld of %lld (%.1f%%)\n",
                   o->t.out, CL_NOVEL_PERCENTILE, CL_NOVEL_WINDOWS, (long long)flagged, (long long)n,
                   n ? 100.0 * (double)flagged / (double)n : 0.0);
            if (fflush(stdout) != 0 || ferror(stdout)) {
                mb_cli_write_error(DNA_PROG, NULL);
                rc = 1;
            }
        }
        cl_novel_free(&nv);
    }
    mb_model_free(best);
    return rc;
}

/* The training steps through the shared loop (none when the checkpoint
 * is already at --steps: then a validation only), the final checkpoint and
 * the closing lines. The exit code. */
static int cl_run_steps(cl_run *t, int64_t step)
{
    const cl_opts *o = t->o;
    const double t0 = mb_cli_now();
    if (step >= o->t.steps) {
        fprintf(stderr, DNA_PROG ": %s is already at step %lld of %lld: validating only\n", o->t.out,
                (long long)step, (long long)o->t.steps);
        if (cl_validate(t->m, t->d, o->t.batch, &t->val.ev)) return 1;
        t->val.have_val = 1;
    }
    mb_cli_train_run run = {
        .prog = DNA_PROG, .opt = t->opt, .log = t->logf, .steps = o->t.steps, .last = o->t.steps,
        .val_every = o->val_every, .save_every = o->t.save_every, .rate_unit = "windows/s",
        .key_rate = "windows_per_s", .rate_digits = 1, .ud = t, .train_step = cl_step,
        .validate = cl_step_validate, .save = cl_save, .fields_train = cl_fields_train,
        .fields_val = cl_fields_val, .step = step, .ck = &t->ck, .val_loss = cl_val_loss, .save_best = cl_save_best,
        .best_out = o->t.select_last ? NULL : o->t.out, .patience = o->t.patience};
    int rc = mb_cli_train_loop(&run);
    rc = mb_cli_train_finish(&run, rc, o->t.out);
    if (rc == 0)
        rc = mb_cli_cls_report(DNA_PROG, &t->val, &t->d->names, o->t.out, &t->ck.hist, o->t.select_last, run.step,
                               mb_cli_now() - t0);
    if (rc == 0 && mb_cli_rank() == 0) rc = cl_fit_novelty(t, run.step);
    if (t->logf && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED))
        fprintf(t->logf, "{\"event\": \"end\", \"step\": %lld, \"val_acc\": %.6f, \"interrupted\": %s}\n",
                (long long)run.step, t->val.have_val ? mb_cli_eval_acc(&t->val.ev) : NAN,
                rc == MB_CLI_EXIT_INTERRUPTED ? "true" : "false");
    /* the log's last line and its close: a lost line fails the run (the
     * classifier is saved) */
    FILE *log = t->logf;
    t->logf = NULL;
    if (mb_cli_log_close(DNA_PROG, log) && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED)) rc = 1;
    return rc;
}

int cl_train(int argc, char **argv)
{
    cl_opts o;
    cl_data d = {0};
    int rc = cl_parse(&o, &d, argc, argv);
    if (rc >= 0) {
        free(o.fasta);
        cl_data_free(&d);
        return rc;
    }
    cl_run t = {.o = &o, .d = &d};
    rc = 1;
    if (cl_open_outputs(&t) == 0 && cl_open_model_and_data(&t) == 0 && cl_setup_windows(&o, &d, &t.nval) == 0) {
        if (mb_cli_interrupted()) {
            /* a signal while the data were read: nothing trained, nothing written */
            mb_cli_error(DNA_PROG, "interrupted before the first step; nothing written");
            rc = MB_CLI_EXIT_INTERRUPTED;
        } else if (cl_start(&t, mb_optim_step_count(t.opt)) == 0) {
            rc = cl_run_steps(&t, mb_optim_step_count(t.opt));
        }
    }
    /* a load stopped by a signal said so in its own error line */
    if (rc == 1 && mb_cli_interrupted()) rc = MB_CLI_EXIT_INTERRUPTED;
    cl_run_free(&t);
    cl_data_free(&d);
    free(o.fasta);
    return rc;
}
