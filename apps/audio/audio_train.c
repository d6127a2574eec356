/* mamba-audio train: a SaShiMi U-Net of Mamba blocks on random crops of a
 * folder of audio, 8-bit classes, validated in bits per sample on held-out
 * files against the unigram baseline. Under mpirun, data-parallel
 * (mb_cli.h): each rank trains its rows of the global batch and scores its
 * share of the held-out windows; rank 0 prints and writes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio_cmd.h"

typedef struct {
    mb_cli_train t;
    const char *data;
    audio_set_opts so;
    int64_t val_every, val_windows;
    int force;
} tr_opts;

static void usage(FILE *f, const mb_cli_train *d)
{
    fprintf(f,
            "usage: " AUDIO_PROG " train --data DIR [options]\n"
            "\n"
            "Trains a SaShiMi U-Net of Mamba blocks (Goel et al. 2022, with Mamba in place\n"
            "of S4) to predict the next sample of the audio in DIR: every file libsndfile\n"
            "reads (WAV, FLAC, OGG, ...), found recursively, mixed to mono, resampled to\n"
            "--rate and quantized to 256 classes (8-bit mu-law by default). Files that\n"
            "cannot be read are named in a warning each and skipped. A share of the files\n"
            "(--val-frac, chosen by a hash of their path) is held out and scored in bits\n"
            "per sample every --val-every steps, next to the unigram baseline (the entropy\n"
            "of the training classes). Progress on stderr (and while reading the audio,\n"
            "when that takes long); Ctrl-C or SIGTERM saves and stops, exit 130 (while\n"
            "reading: nothing written); a --log that cannot be written stops the run the\n"
            "same way, exit 1.\n"
            "Data parallel: 'mpirun -np N " AUDIO_PROG " train ...' trains one model on N\n"
            "processes (--device cuda: one GPU each); --batch is the global batch, a\n"
            "multiple of N, so the run matches one process with that --batch.\n"
            "\n"
            "data:\n"
            "  --data DIR         folder (or one file) of audio (required)\n"
            "  --rate HZ          sample rate of the model [%d]\n"
            "  --quant Q          mulaw or linear (8-bit) [mulaw]\n"
            "  --val-frac F       share of files held out [%g]\n"
            "  --val-every N      validate every N steps [steps / 10]\n"
            "  --val-windows N    at most N windows of --seq-len scored per validation [64]\n"
            "U-Net:\n"
            "  --pool P,P         pooling factors of the stages [4,4]\n"
            "  --pool-expand E    width factor per stage [2]\n"
            "  --mlp              an MLP block after each Mamba block\n"
            "  --force            overwrite an existing --out without --resume\n",
            AUDIO_RATE_DEFAULT, AUDIO_VAL_FRAC_DEFAULT);
    mb_cli_train_help(f, d);
    fprintf(f, "\n--seq-len must be a multiple of the product of the pooling factors.\n"
               "Defaults: --out " AUDIO_DEFAULT_MODEL " (its sample rate and quantizer in MODEL.audio).\n"
               "Example, sized for a CPU (under 3 minutes on two cores; the default U-Net is\n"
               "GPU-sized, about 40 minutes for these 300 steps on two cores):\n"
               "  " AUDIO_PROG " train --data data/audio/digits --d-model 32 --n-layer 1 --seq-len 2048 \\\n"
               "      --lr 4e-3 --steps 300 --out digits.safetensors\n");
}

/* The flags; -1 to go on, else the exit code (0 after --help, 2 after a
 * usage error line, 1 out of memory). */
static int tr_parse(tr_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    mb_cli_train_default(&o->t);
    mb_config_sashimi_default(&o->t.cfg);
    o->t.steps = 1000;
    o->t.batch = 4;
    o->t.seq_len = 8192;
    o->t.lr = 2e-3;
    o->t.out = AUDIO_DEFAULT_MODEL;
    audio_set_opts_default(&o->so);
    o->val_every = -1;
    o->val_windows = 64;
    const mb_cli_train defaults = o->t;
    enum { O_DATA = 256, O_VFRAC, O_VEVERY, O_VWIN, O_FORCE };
    static const struct option own[] = {
        {"data", 1, 0, O_DATA}, {"val-frac", 1, 0, O_VFRAC}, {"val-every", 1, 0, O_VEVERY},
        {"val-windows", 1, 0, O_VWIN}, AUDIO_UNET_OPTIONS, {"force", 0, 0, O_FORCE}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    struct option *opts = mb_cli_options_join(own);
    if (!opts) {
        mb_cli_error(AUDIO_PROG, "out of memory");
        return 1;
    }
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(AUDIO_PROG, "train", argc, argv, opts)) != -1) {
        int r = mb_cli_train_option(&o->t, AUDIO_PROG, c, optarg);
        if (!r) r = audio_cmd_unet_option(c, optarg, &o->t, &o->so);
        if (r) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case O_DATA: o->data = optarg; break;
        case O_VFRAC: bad = mb_cli_parse_real(AUDIO_PROG, "--val-frac", optarg, 0.0, 0.9, &o->so.val_frac); break;
        case O_VEVERY: bad = mb_cli_parse_int(AUDIO_PROG, "--val-every", optarg, 1, INT64_C(1) << 40, &o->val_every); break;
        case O_VWIN: bad = mb_cli_parse_int(AUDIO_PROG, "--val-windows", optarg, 1, 1 << 20, &o->val_windows); break;
        case O_FORCE: o->force = 1; break;
        case 'h':
            usage(stdout, &defaults);
            free(opts);
            return 0;
        case MB_CLI_OPT_VERSION: free(opts); return 0;
        default: bad = 1;
        }
    }
    free(opts);
    if (!bad && optind < argc) {
        mb_cli_error(AUDIO_PROG, "train: unexpected argument '%s' (the data go after --data)", argv[optind]);
        bad = 1;
    }
    if (!bad && !o->data) {
        mb_cli_error(AUDIO_PROG, "train needs --data DIR");
        bad = 1;
    }
    const int64_t P = audio_cmd_period(&o->t.cfg);
    if (!bad && !o->t.resume && o->t.seq_len % P) {
        mb_cli_error(AUDIO_PROG, "--seq-len %lld is not a multiple of the pooling factors' product %lld",
                     (long long)o->t.seq_len, (long long)P);
        bad = 1;
    }
    if (!bad && mb_cli_dist_check_batch(AUDIO_PROG, o->t.batch)) bad = 1;
    if (bad) {
        fprintf(stderr, "Try '" AUDIO_PROG " train --help'.\n");
        return 2;
    }
    if (o->val_every < 0) o->val_every = o->t.steps >= 10 ? o->t.steps / 10 : 1;
    return -1;
}

/* What a run holds; the shared training loop calls back into it. */
typedef struct {
    const tr_opts *o;
    audio_set_opts so; /* the data's: the checkpoint's rate and quantizer on --resume */
    mb_cli_ckpt ck;    /* the checkpoint sets beside --out */
    mb_outfile *metaf; /* MODEL.audio of a new run, committed at the first save */
    audio_set *set;
    audio_window *vw;  /* held-out windows */
    int64_t nvw;
    double h_train, uni_val; /* unigram baselines, bits per sample */
    mb_ctx *ctx;
    mb_model *m;
    mb_optim *opt;
    FILE *logf;
    int64_t rows; /* this rank's rows of the global batch */
    uint8_t *crop; /* L + 1 */
    int32_t *tok, *tgt;
} tr_run;

static void tr_free(tr_run *t)
{
    mb_outfile_discard(t->metaf);
    if (t->logf) fclose(t->logf); /* after an error: mb_cli_log_close checks it on the way out */
    free(t->crop);
    free(t->tok);
    free(t->tgt);
    free(t->vw);
    mb_cli_ckpt_free(&t->ck);
    audio_set_free(t->set);
    mb_optim_free(t->opt);
    mb_model_free(t->m);
    mb_ctx_free(t->ctx);
}

/* Outputs first: an --out or MODEL.audio that cannot be written (a
 * folder, a missing directory), an existing --out (or checkpoint set of
 * one) without --resume or --force, an --log that cannot be opened fail
 * before any work (rank 0 checks and writes; the other ranks write
 * nothing). A run that owns --out removes the temporary files a killed one
 * left. */
static int tr_open_outputs(tr_run *t)
{
    const tr_opts *o = t->o;
    int log_failed = 0;
    char what[4096];
    static const char *const side[] = {".audio", NULL};
    char *meta = mb_cli_path_suffix(o->t.out, ".audio");
    if (!meta) {
        mb_cli_error(AUDIO_PROG, "out of memory");
        return -1;
    }
    const int bad = mb_cli_rank() == 0 &&
                    (mb_cli_check_writable(AUDIO_PROG, o->t.out) || mb_cli_check_writable(AUDIO_PROG, meta));
    free(meta);
    if (bad) return -1;
    if (!o->t.resume && !o->force && mb_cli_ckpt_exists(o->t.out, what, sizeof what)) {
        mb_cli_error(AUDIO_PROG, "%s exists: --resume continues it, --force starts over", what);
        return -1;
    }
    mb_cli_ckpt_init(&t->ck, AUDIO_PROG, &o->t);
    if (mb_cli_rank() != 0) return 0;
    if (o->t.resume || o->force) mb_cli_ckpt_sweep(&t->ck, side);
    if (!(t->logf = mb_cli_log_open(AUDIO_PROG, o->t.log, &log_failed)) && log_failed) return -1;
    return 0;
}

static mb_model *tr_load(void *ud, mb_ctx *ctx, const char *path)
{
    (void)ud;
    return audio_cmd_load_model(ctx, path, 0, 0);
}

/* The model: a new one of the flags, or the checkpoint to resume with its
 * audio settings; its optimizer; a new run's MODEL.audio. */
static int tr_open_model(tr_run *t)
{
    const tr_opts *o = t->o;
    t->so = o->so;
    if (!(t->ctx = mb_cli_ctx(AUDIO_PROG, &o->t))) return -1;
    audio_meta meta = {o->so.rate, o->so.quant, 0};
    if (o->t.resume) {
        if (mb_cli_ckpt_resume(&t->ck, t->ctx, &o->t, tr_load, t, &t->m, &t->opt) || audio_meta_read(o->t.out, &meta))
            return -1;
        if (o->t.set_model)
            mb_cli_warn(AUDIO_PROG, "--resume: the model flags are ignored (the checkpoint's are kept)");
        t->so.rate = meta.rate, t->so.quant = meta.quant;
        const int64_t P = audio_cmd_period(mb_model_config(t->m));
        if (o->t.seq_len % P) {
            mb_cli_error(AUDIO_PROG, "--seq-len %lld is not a multiple of %s's pooling product %lld",
                         (long long)o->t.seq_len, o->t.out, (long long)P);
            return -1;
        }
    } else if (!(t->m = mb_cli_model_new(AUDIO_PROG, t->ctx, &o->t))) {
        return -1;
    }
    if (!t->opt && !(t->opt = mb_cli_optim(AUDIO_PROG, t->m, &o->t, NULL))) return -1;
    if (mb_cli_rank() == 0 && !o->t.resume && !(t->metaf = audio_meta_write(o->t.out, &meta))) return -1;
    return 0;
}

/* The data, the held-out windows and the unigram baselines. */
static int tr_open_data(tr_run *t)
{
    const tr_opts *o = t->o;
    char err[512];
    if (!(t->set = audio_cmd_load_set(o->data, &t->so))) return -1;
    if (audio_set_split_files(t->set, AUDIO_SPLIT_VAL) > 0 &&
        audio_set_windows(t->set, AUDIO_SPLIT_VAL, o->t.seq_len + 1, o->val_windows, &t->vw, &t->nvw, err,
                          sizeof err)) {
        mb_cli_error(AUDIO_PROG, "%s", err);
        return -1;
    }
    int64_t htr[AUDIO_NCLASS] = {0}, hva[AUDIO_NCLASS] = {0};
    audio_set_hist(t->set, AUDIO_SPLIT_TRAIN, htr);
    audio_set_hist(t->set, AUDIO_SPLIT_VAL, hva);
    t->h_train = audio_entropy_bits(htr);
    t->uni_val = t->nvw ? audio_cmd_unigram_bits(htr, hva) : NAN;
    const int rate = t->so.rate;
    char held[64] = "no held-out files: no validation";
    if (t->nvw) snprintf(held, sizeof held, "on the held-out files %.3f", t->uni_val);
    fprintf(stderr, AUDIO_PROG ": %lld training files (%.1f s), %lld held out (%.1f s) at %d Hz, %s; unigram "
                    "entropy %.3f bits/sample (%s)\n",
            (long long)audio_set_split_files(t->set, AUDIO_SPLIT_TRAIN),
            (double)audio_set_samples(t->set, AUDIO_SPLIT_TRAIN) / rate,
            (long long)audio_set_split_files(t->set, AUDIO_SPLIT_VAL),
            (double)audio_set_samples(t->set, AUDIO_SPLIT_VAL) / rate, rate, audio_quant_name(t->so.quant),
            t->h_train, held);
    return 0;
}

/* The model on every rank (the same weights: a failure ends the job), the
 * run's first lines, and this rank's buffers. 0, or the exit code. */
static int tr_start(tr_run *t, int64_t step)
{
    const tr_opts *o = t->o;
    const int64_t L = o->t.seq_len, B = o->t.batch;
    if (mb_model_set_dist(t->m, mb_cli_dist())) return mb_cli_dist_fatal(AUDIO_PROG, "data parallel");
    int64_t row0;
    mb_cli_dist_rows(B, &row0, &t->rows);
    const mb_config *mc = mb_model_config(t->m);
    fprintf(stderr, AUDIO_PROG ": %zu parameters (d_model %d, %d block%s a stage, pools", mb_model_num_params(t->m),
            mc->d_model, mc->n_layer, mc->n_layer == 1 ? "" : "s");
    for (int i = 0; i < mc->n_pool; i++) fprintf(stderr, "%s%d", i ? "," : " ", mc->pool[i]);
    fprintf(stderr, ", %s A) on %s%s%s\n", mc->init == MB_INIT_S4D_LIN ? "complex" : "real", mb_ctx_name(t->ctx),
            mb_cli_ranks() > 1 ? " and the other ranks (data parallel)" : "", step ? ", resuming" : "");
    if (t->logf)
        fprintf(t->logf, "{\"event\": \"start\", \"step\": %lld, \"steps\": %lld, \"seq_len\": %lld, \"batch\": %lld, "
                         "\"params\": %zu, \"device\": \"%s\", \"rate\": %d, \"quant\": \"%s\", "
                         "\"unigram_train_bits\": %.6f, \"unigram_val_bits\": %.6f}\n",
                (long long)step, (long long)o->t.steps, (long long)L, (long long)B, mb_model_num_params(t->m),
                mb_ctx_name(t->ctx), t->so.rate, audio_quant_name(t->so.quant), t->h_train, t->uni_val);
    if (mb_cli_log_check(AUDIO_PROG, t->logf)) return 1;
    t->crop = malloc((size_t)L + 1);
    t->tok = malloc(sizeof(int32_t) * (size_t)(t->rows * L));
    t->tgt = malloc(sizeof(int32_t) * (size_t)(t->rows * L));
    if (!t->crop || !t->tok || !t->tgt) {
        mb_cli_error(AUDIO_PROG, "out of memory for %lld samples a step", (long long)(t->rows * L));
        return 1;
    }
    return 0;
}

/* A step on this rank: its crops are a function of (seed, step, row), so a
 * resumed run sees what an uninterrupted one would have, and P ranks what
 * one process would. */
static int tr_step(void *ud, int64_t step, mb_cli_step *out)
{
    tr_run *t = ud;
    const int64_t L = t->o->t.seq_len;
    int64_t row0, rows;
    mb_cli_dist_rows(t->o->t.batch, &row0, &rows);
    for (int64_t i = 0; i < rows; i++) {
        uint64_t rng = mb_cli_rng_row(t->o->t.seed, step, row0 + i);
        int64_t start = 0;
        if (audio_set_crop(t->set, AUDIO_SPLIT_TRAIN, L + 1, &rng, t->crop, NULL, &start)) {
            mb_cli_error(AUDIO_PROG, "%s: no training audio", t->o->data);
            return 1;
        }
        const int64_t pad = start < 0 ? -start : 0;
        for (int64_t k = 0; k < L; k++) {
            t->tok[i * L + k] = t->crop[k];
            t->tgt[i * L + k] = k + 1 >= pad ? t->crop[k + 1] : MB_IGNORE_INDEX;
        }
    }
    out->L = L, out->B = t->o->t.batch, out->items = out->B * L;
    return mb_model_forward_backward(t->m, t->tok, t->tgt, (int)rows, (int)L, &out->loss) ? -1 : 0;
}

/* Bits per sample over every rank's share of the held-out windows, this
 * rank's rows a pass (a collective: every rank calls it at the same steps);
 * the run's exit code, 0 when it went. */
static int tr_validate(void *ud, double *bits)
{
    tr_run *t = ud;
    int64_t first, n, cnt = 0;
    mb_cli_dist_share(t->nvw, &first, &n);
    double b = 0;
    mb_cli_sync s = {{0}, 0, 0};
    const int rc =
        n > 0 && audio_cmd_nll(t->m, t->set, t->vw + first, n, t->rows, t->o->t.seq_len, &b, &cnt, NULL) ? 1 : 0;
    if (cnt > 0) {
        s.sum[0] = b * (double)cnt;
        s.sum[1] = (double)cnt;
    }
    const int arc = mb_cli_dist_sync(rc, &s);
    if (arc == 0) *bits = s.sum[1] > 0 ? s.sum[0] / s.sum[1] : NAN;
    return arc;
}

/* A new run's MODEL.audio into place the first time a model is written
 * (before it: a model never goes without its rate and quantizer) */
static int tr_commit_meta(tr_run *t)
{
    mb_outfile *meta = t->metaf;
    t->metaf = NULL;
    return meta && mb_cli_outfile_commit(AUDIO_PROG, meta) ? 1 : 0;
}

/* A checkpoint set (rank 0). */
static int tr_save(void *ud)
{
    tr_run *t = ud;
    return tr_commit_meta(t) || mb_cli_ckpt_save(&t->ck, t->m, t->opt) ? 1 : 0;
}

/* The lowest held-out loss so far: --out (rank 0). */
static int tr_save_best(void *ud)
{
    tr_run *t = ud;
    return tr_commit_meta(t) || mb_cli_ckpt_save_best(&t->ck, t->m) ? 1 : 0;
}

/* The training steps through the shared loop, then the final checkpoint
 * and the closing lines. The exit code. */
static int tr_train(tr_run *t, int64_t step, int *synced)
{
    const tr_opts *o = t->o;
    mb_cli_train_run run = {
        .prog = AUDIO_PROG, .opt = t->opt, .log = t->logf, .steps = o->t.steps, .last = o->t.steps,
        .val_every = t->nvw ? o->val_every : 0, .save_every = o->t.save_every, .unit = "bits/sample",
        .key_train = "train_bits", .key_val = "val_bits", .rate_unit = "samples/s", .key_rate = "samples_per_s",
        .ud = t, .train_step = tr_step, .validate = tr_validate, .save = tr_save, .step = step, .ck = &t->ck,
        .save_best = tr_save_best, .best_out = o->t.select_last ? NULL : o->t.out, .patience = o->t.patience};
    int rc = mb_cli_train_loop(&run);
    *synced = run.synced;
    rc = mb_cli_train_finish(&run, rc, o->t.out);
    /* the figure of the model in --out: the best validation's, or the last's */
    const mb_cli_val_hist *h = &t->ck.hist;
    const int best = !o->t.select_last && h->best_step > 0;
    if (rc == 0) {
        if (t->nvw)
            printf("train: %lld steps, validation %.4f bits/sample (unigram baseline %.4f, uniform 8), model %s",
                   (long long)run.step, best ? h->best : run.last_val, t->uni_val, o->t.out);
        else /* --val-frac 0 and no held-out files: nothing to report but the model */
            printf("train: %lld steps, no validation (no held-out files), model %s", (long long)run.step, o->t.out);
        if (best && h->best_step != run.step) {
            printf(" (the best validation, step %lld; the last step's model", (long long)h->best_step);
            if (!isnan(run.last_val)) printf(", %.4f,", run.last_val);
            printf(" is %s.step-%lld)", o->t.out, (long long)run.step);
        }
        printf(", %.1fs\n", mb_cli_now() - run.t0);
    }
    if (t->logf && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED)) {
        char best_val[64] = "null"; /* none yet */
        if (h->best_step) snprintf(best_val, sizeof best_val, "%.6f", h->best);
        fprintf(t->logf, "{\"event\": \"end\", \"step\": %lld, \"val_bits\": %.6f, \"best_step\": %lld, "
                         "\"best_val_bits\": %s, \"early_stop\": %s, \"interrupted\": %s}\n",
                (long long)run.step, run.last_val, (long long)h->best_step, best_val, run.early ? "true" : "false",
                rc == MB_CLI_EXIT_INTERRUPTED ? "true" : "false");
    }
    /* the log's last line and its close: a lost line fails the run (the
     * model is saved) */
    FILE *log = t->logf;
    t->logf = NULL;
    if (mb_cli_log_close(AUDIO_PROG, log) && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED)) rc = 1;
    return rc;
}

/* 0, or after a signal during the loading (the reader polls for it
 * between blocks, but a short load may have finished) its line and 130. */
static int tr_interrupted_before(void)
{
    if (!mb_cli_interrupted()) return 0;
    mb_cli_error(AUDIO_PROG, "interrupted before the first step; nothing written");
    return MB_CLI_EXIT_INTERRUPTED;
}

static int train(int argc, char **argv)
{
    tr_opts o;
    int rc = tr_parse(&o, argc, argv);
    if (rc >= 0) return rc;
    tr_run t = {.o = &o};
    int synced = 0;
    rc = 1;
    if (tr_open_outputs(&t) || tr_open_model(&t) || tr_open_data(&t)) goto done;
    /* every rank has its model and data: from here on the ranks move
     * together, and a failure on one of them is agreed on at a sync; a
     * signal while loading stops every rank here, nothing written */
    synced = 1;
    if ((rc = mb_cli_dist_agree(tr_interrupted_before()))) goto done;
    synced = 0;
    const int64_t step = mb_optim_step_count(t.opt);
    if (step >= o.t.steps) {
        fprintf(stderr, AUDIO_PROG ": %s is already at step %lld of %lld: nothing to do\n", o.t.out,
                (long long)step, (long long)o.t.steps);
        goto done;
    }
    if ((rc = tr_start(&t, step)) == 0) rc = tr_train(&t, step, &synced);
done:
    /* a load stopped by a signal said so in its own error line */
    if (rc == 1 && mb_cli_interrupted()) rc = MB_CLI_EXIT_INTERRUPTED;
    /* a rank that has not met the others since it failed (or finished)
     * meets them now: one error line in all, one exit code */
    if (!synced) rc = mb_cli_dist_agree(rc);
    tr_free(&t);
    return rc;
}

int audio_cmd_train(int argc, char **argv)
{
    if (mb_cli_dist_start(AUDIO_PROG)) return 1;
    const int rc = train(argc, argv);
    mb_cli_dist_stop();
    return rc;
}
