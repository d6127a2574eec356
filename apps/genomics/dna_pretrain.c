/* mamba-dna pretrain: next-base pretraining from FASTA / BAM / CRAM files,
 * on random windows (reverse-complement augmented), validated in bits per
 * base on a held-out part against order-0 and order-k baselines fitted on
 * the same training part. Under mpirun, data-parallel (mb_cli.h): each rank
 * trains its rows of the global batch and scores its share of the
 * validation windows; rank 0 prints and writes. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dna_cmd.h"
#include "dna_kmer.h"

typedef struct {
    mb_cli_train t;
    const char **val_files;
    int n_val;
    const char *val_bed, *reference;
    double val_frac, seq_warmup;
    int rc_aug, kmer, force;
    int64_t val_every, val_tokens, stop_after;
} pt_opts;

static void usage(FILE *f, const mb_cli_train *d)
{
    fprintf(f,
            "usage: " DNA_PROG " pretrain [options] FILE...\n"
            "\n"
            "Next-base pretraining of a Mamba language model on the sequences of FILE...\n"
            "(FASTA plain / gzip / bgzip + .fai, BAM, CRAM): random windows of --seq-len\n"
            "bases, reverse-complemented half of the time, windows mostly N skipped. A\n"
            "held-out part is scored in bits per base every --val-every steps, next to an\n"
            "order-0 and an order-k Markov baseline fitted on the training part.\n"
            "Progress on stderr; Ctrl-C saves a checkpoint and stops (--resume goes on).\n"
            "Data parallel: 'mpirun -np N " DNA_PROG " pretrain ...' trains one model on N\n"
            "processes (--device cuda: one GPU each); --batch is the global batch, a\n"
            "multiple of N, so the run matches one process with that --batch.\n"
            "\n"
            "data:\n"
            "  --val FILE         held-out file (repeatable): its whole records validate\n"
            "                     (e.g. held-out strains); FILE... all train\n"
            "  --val-bed BED      else: validate on these intervals of FILE..., train on the rest\n"
            "  --val-frac F       else: the last F of every record validates [0.05]\n"
            "  --val-every N      validate every N steps [steps / 10]\n"
            "  --val-tokens N     bases scored per validation [max(64k, seq-len)]\n"
            "  --kmer K           order of the Markov baseline, 0..%d [5]\n"
            "  --no-rc            no reverse-complement augmentation\n"
            "  --seq-warmup F     sequence-length warmup (HyenaDNA): over the first F of the\n"
            "                     steps, start at seq-len/2^k (>= 64), doubling, with the batch\n"
            "                     scaled to keep the tokens per step [0 = off]\n"
            "  --reference FA     reference for CRAM inputs\n"
            "  --force            overwrite an existing --out without --resume\n"
            "  --stop-after N     stop after step N with a checkpoint, as Ctrl-C would (to\n"
            "                     train in slices, e.g. under a batch system's time limit)\n",
            DNA_KMER_MAX);
    mb_cli_train_help(f, d);
    fprintf(f, "\nDefaults: --out " DNA_DEFAULT_MODEL ".\n"
               "Example: " DNA_PROG " pretrain --steps 300 --out m.safetensors genome.fa.gz\n");
}

/* window length and batch at a step under the sequence-length warmup: the
 * first `frac` of the steps is cut in equal stages, L doubling at each */
static void pt_shape(const pt_opts *o, int64_t step, int64_t *L, int64_t *B)
{
    *L = o->t.seq_len;
    *B = o->t.batch;
    if (o->seq_warmup <= 0) return;
    int stages = 0;
    while ((o->t.seq_len >> (stages + 1)) >= 64 && stages < 10) stages++;
    const int64_t wsteps = (int64_t)(o->seq_warmup * (double)o->t.steps);
    if (stages == 0 || wsteps <= 0 || step > wsteps) return;
    const int64_t per = (wsteps + stages - 1) / stages;
    const int s = (int)((step - 1) / per); /* 0 .. stages-1 */
    *L = o->t.seq_len >> (stages - s);
    *B = o->t.batch << (stages - s);
}

typedef struct {
    int32_t *w;   /* n windows of len + 1 tokens */
    int64_t n, len;
    double base_bits[2]; /* order 0, order k */
    int64_t bases;
} pt_val;

/* Nats and counted bases of the model over validation windows [first,
 * first + n), through recurrent chunks (its own state buffers: the
 * training shapes stay); a rank scores its share, the sums are added. */
static int pt_validate(mb_model *m, const pt_val *v, int64_t first, int64_t n, int64_t bmax,
                       double *nats_out, double *cnt_out)
{
    *nats_out = *cnt_out = 0;
    if (n <= 0) return 0;
    const int Vp = mb_config_vocab_padded(mb_model_config(m));
    const int64_t chunk = v->len < 8192 ? v->len : 8192;
    const int64_t B = n < bmax ? n : bmax;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * chunk));
    float *lg = malloc(sizeof(float) * (size_t)(B * chunk * Vp));
    mb_state *st = mb_state_create(m, (int)B);
    double nats = 0;
    int64_t cnt = 0;
    int rc = (tok && lg && st) ? 0 : -1;
    for (int64_t w0 = first; rc == 0 && w0 < first + n; w0 += B) {
        const int64_t nb = first + n - w0 < B ? first + n - w0 : B;
        mb_state_reset(st);
        for (int64_t t0 = 0; rc == 0 && t0 < v->len; t0 += chunk) {
            const int64_t c = v->len - t0 < chunk ? v->len - t0 : chunk;
            /* the state holds B rows: unused rows run on copies of row 0 */
            for (int64_t b = 0; b < B; b++)
                memcpy(tok + b * c, v->w + (w0 + (b < nb ? b : 0)) * (v->len + 1) + t0, sizeof(int32_t) * c);
            rc = mb_model_forward_chunk(m, st, tok, (int)c, lg);
            for (int64_t b = 0; rc == 0 && b < nb; b++) {
                const int32_t *w = v->w + (w0 + b) * (v->len + 1);
                for (int64_t t = 0; t < c; t++) {
                    const int32_t y = w[t0 + t + 1];
                    if (!dna_is_base(y)) continue;
                    const float *z = lg + (b * c + t) * Vp;
                    float mx = z[0];
                    for (int k = 1; k < Vp; k++) mx = z[k] > mx ? z[k] : mx;
                    double s = 0;
                    for (int k = 0; k < Vp; k++) s += exp((double)z[k] - mx);
                    nats += log(s) + mx - z[y];
                    cnt++;
                }
            }
        }
    }
    mb_state_free(st);
    free(tok);
    free(lg);
    *nats_out = nats;
    *cnt_out = (double)cnt;
    return rc;
}

/* Bits per base over every rank's share of the windows (a collective: every
 * rank calls it at the same steps); the run's exit code, 0 when it went. */
static int pt_validate_all(mb_model *m, const pt_val *v, int64_t bmax, double *bpb)
{
    int64_t first, n;
    mb_cli_dist_share(v->n, &first, &n);
    mb_cli_sync s = {{0}, 0, 0};
    int rc = 0;
    if (pt_validate(m, v, first, n, bmax, &s.sum[0], &s.sum[1])) {
        mb_cli_error(DNA_PROG, "validation: %s", mb_error_last());
        rc = 1;
    }
    if ((rc = mb_cli_dist_sync(rc, &s)) == 0) *bpb = s.sum[1] > 0 ? s.sum[0] / s.sum[1] / MB_CLI_LN2 : NAN;
    return rc;
}

static int pt_save(const pt_opts *o, mb_model *m, mb_optim *opt, const char *optim_path)
{
    if (mb_model_save(m, o->t.out)) return mb_cli_lib_error(DNA_PROG, o->t.out);
    if (mb_optim_save(opt, optim_path)) return mb_cli_lib_error(DNA_PROG, optim_path);
    return 0;
}

/* what the shared training loop (mb_cli_train_loop) calls back into */
typedef struct {
    const pt_opts *o;
    const pt_val *val;
    dna_sampler *smp;
    int32_t *win; /* seq_len + 1 */
    mb_model *m;
    mb_optim *opt;
    const char *optim_path;
} pt_run;

/* this rank's rows of a step's batch; the data order is a function of
 * (seed, step, row): a resumed run sees what an uninterrupted one would
 * have, and P ranks what one process would */
static int pt_batch(void *ud, int64_t step, int32_t *tok, int32_t *tgt, int64_t *rows, int64_t *L, int64_t *B)
{
    pt_run *t = ud;
    char err[512];
    int64_t row0;
    pt_shape(t->o, step, L, B);
    mb_cli_dist_rows(*B, &row0, rows);
    for (int64_t i = 0; i < *rows; i++) {
        uint64_t rng = mb_cli_rng_row(t->o->t.seed, step, row0 + i);
        if (dna_sampler_draw(t->smp, &rng, t->o->rc_aug, t->win, NULL, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return 1;
        }
        /* windows of the full length, cut to this stage's L */
        memcpy(tok + i * *L, t->win, sizeof(int32_t) * (size_t)*L);
        dna_cmd_targets(t->win, *L, tgt + i * *L);
    }
    return 0;
}

static int pt_val_cb(void *ud, int64_t rows, int64_t L, double *bits)
{
    (void)rows, (void)L; /* the held-out windows have their own length */
    pt_run *t = ud;
    return pt_validate_all(t->m, t->val, t->o->t.batch / mb_cli_ranks(), bits);
}

static int pt_save_cb(void *ud)
{
    pt_run *t = ud;
    return pt_save(t->o, t->m, t->opt, t->optim_path) ? 1 : 0;
}

static int pretrain(int argc, char **argv)
{
    pt_opts o = {0};
    mb_cli_train_default(&o.t);
    dna_cmd_config(&o.t.cfg);
    o.t.out = DNA_DEFAULT_MODEL;
    o.val_frac = DNA_VAL_FRAC_DEFAULT;
    o.rc_aug = 1;
    o.kmer = 5;
    o.val_every = -1;
    o.val_tokens = -1;
    const mb_cli_train defaults = o.t;
    enum { O_VAL = 256, O_VBED, O_VFRAC, O_VEVERY, O_VTOK, O_KMER, O_NORC, O_SWARM, O_REF, O_FORCE, O_STOP };
    static const struct option own[] = {
        {"val", 1, 0, O_VAL}, {"val-bed", 1, 0, O_VBED}, {"val-frac", 1, 0, O_VFRAC},
        {"val-every", 1, 0, O_VEVERY}, {"val-tokens", 1, 0, O_VTOK}, {"kmer", 1, 0, O_KMER},
        {"no-rc", 0, 0, O_NORC}, {"seq-warmup", 1, 0, O_SWARM}, {"reference", 1, 0, O_REF},
        {"force", 0, 0, O_FORCE}, {"stop-after", 1, 0, O_STOP}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option *opts = mb_cli_options_join(own);
    o.val_files = calloc((size_t)argc + 1, sizeof(char *));
    if (!opts || !o.val_files) {
        mb_cli_error(DNA_PROG, "out of memory");
        return 1;
    }
    int c, bad = 0;
    int64_t v;
    optind = 1;
    while (!bad && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        const int r = mb_cli_train_option(&o.t, DNA_PROG, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case O_VAL: o.val_files[o.n_val++] = optarg; break;
        case O_VBED: o.val_bed = optarg; break;
        case O_VFRAC: bad = mb_cli_parse_real(DNA_PROG, "--val-frac", optarg, 0.0, 0.9, &o.val_frac); break;
        case O_VEVERY: bad = mb_cli_parse_int(DNA_PROG, "--val-every", optarg, 1, INT64_C(1) << 40, &o.val_every); break;
        case O_VTOK: bad = mb_cli_parse_int(DNA_PROG, "--val-tokens", optarg, 2, INT64_C(1) << 34, &o.val_tokens); break;
        case O_KMER:
            bad = mb_cli_parse_int(DNA_PROG, "--kmer", optarg, 0, DNA_KMER_MAX, &v);
            o.kmer = (int)v;
            break;
        case O_NORC: o.rc_aug = 0; break;
        case O_SWARM: bad = mb_cli_parse_real(DNA_PROG, "--seq-warmup", optarg, 0.0, 1.0, &o.seq_warmup); break;
        case O_REF: o.reference = optarg; break;
        case O_FORCE: o.force = 1; break;
        case O_STOP: bad = mb_cli_parse_int(DNA_PROG, "--stop-after", optarg, 1, INT64_C(1) << 40, &o.stop_after); break;
        case 'h':
            usage(stdout, &defaults);
            free(opts);
            free(o.val_files);
            return 0;
        default: bad = 1;
        }
    }
    free(opts);
    if (!bad && optind >= argc) {
        mb_cli_error(DNA_PROG, "pretrain needs at least one FASTA, BAM or CRAM file");
        bad = 1;
    }
    if (!bad && o.val_bed && o.n_val) {
        mb_cli_error(DNA_PROG, "--val and --val-bed are exclusive");
        bad = 1;
    }
    if (!bad && mb_cli_dist_check_batch(DNA_PROG, o.t.batch)) bad = 1;
    if (bad) {
        fprintf(stderr, "Try '" DNA_PROG " pretrain --help'.\n");
        free(o.val_files);
        return 2;
    }
    if (o.val_every < 0) o.val_every = o.t.steps >= 10 ? o.t.steps / 10 : 1;
    if (o.val_tokens < 0) o.val_tokens = o.t.seq_len > 65536 ? o.t.seq_len : 65536;

    int rc = 1, synced = 0;
    char err[512];
    dna_set *set = NULL, *vset = NULL;
    dna_split sp = {0}, vsp = {0};
    dna_sampler *smp = NULL, *vsmp = NULL;
    dna_kmer *km = NULL;
    pt_val val = {0};
    mb_ctx *ctx = NULL;
    mb_model *m = NULL;
    mb_optim *opt = NULL;
    FILE *logf = NULL;
    int32_t *win = NULL, *tok = NULL, *tgt = NULL;
    char *optim_path = mb_cli_optim_path(o.t.out);
    int log_failed = 0;
    const int rank0 = mb_cli_rank() == 0, P = mb_cli_ranks();

    if (!o.t.resume && !o.force && access(o.t.out, F_OK) == 0) {
        mb_cli_error(DNA_PROG, "%s exists: --resume continues it, --force starts over", o.t.out);
        goto done;
    }
    /* outputs first: an unwritable --out or --log fails before any work
     * (rank 0's: the other ranks write nothing) */
    if (!optim_path) goto done;
    if (rank0 && (mb_cli_check_writable(DNA_PROG, o.t.out) || mb_cli_check_writable(DNA_PROG, optim_path)))
        goto done;
    if (rank0 && !(logf = mb_cli_log_open(DNA_PROG, o.t.log, &log_failed)) && log_failed) goto done;
    /* the model (new, or the checkpoint to resume): a wrong checkpoint
     * fails before any data is read */
    if (!(ctx = mb_cli_ctx(DNA_PROG, &o.t))) goto done;
    if (o.t.resume) {
        if (!(m = dna_cmd_load_model(ctx, o.t.out, 0, 0))) goto done;
        if (o.t.set_model) mb_cli_warn(DNA_PROG, "--resume: the model flags are ignored (the checkpoint's are kept)");
    } else if (!(m = mb_cli_model_new(DNA_PROG, ctx, &o.t))) {
        goto done;
    }
    if (!(opt = mb_cli_optim(DNA_PROG, m, &o.t, optim_path))) goto done;
    /* data: the training part, and the held-out part */
    if (!(set = dna_cmd_open_set((const char *const *)argv + optind, argc - optind, o.reference))) goto done;
    const dna_ivals *train_iv, *val_iv;
    dna_set *valset;
    if (o.n_val) {
        if (!(vset = dna_cmd_open_set(o.val_files, o.n_val, o.reference))) goto done;
        if (dna_split_fraction(set, 0.0, &sp, err, sizeof err) ||
            dna_split_fraction(vset, 1.0, &vsp, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            goto done;
        }
        train_iv = &sp.train, val_iv = &vsp.val, valset = vset;
    } else {
        if (o.val_bed ? dna_split_bed(set, o.val_bed, &sp, err, sizeof err)
                      : dna_split_fraction(set, o.val_frac, &sp, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            goto done;
        }
        train_iv = &sp.train, val_iv = &sp.val, valset = set;
    }
    if (!(smp = dna_sampler_create(set, train_iv, o.t.seq_len + 1, err, sizeof err))) {
        mb_cli_error(DNA_PROG, "training windows: %s", err);
        goto done;
    }
    /* validation windows: fixed for the run (a seed of their own), as long
     * as the held-out intervals allow */
    const int64_t vlong = dna_ivals_longest(val_iv, NULL);
    if (vlong < 2) {
        mb_cli_error(DNA_PROG, "no held-out sequence to validate on (see --val, --val-bed, --val-frac)");
        goto done;
    }
    val.len = vlong - 1 < o.t.seq_len ? vlong - 1 : o.t.seq_len;
    if (val.len < o.t.seq_len)
        fprintf(stderr, DNA_PROG ": validation windows of %lld bases: the longest held-out interval is %lld\n",
                (long long)val.len, (long long)vlong);
    val.n = o.val_tokens / val.len > 0 ? o.val_tokens / val.len : 1;
    if (!(vsmp = dna_sampler_create(valset, val_iv, val.len + 1, err, sizeof err)) ||
        !(val.w = malloc(sizeof(int32_t) * (size_t)(val.n * (val.len + 1))))) {
        mb_cli_error(DNA_PROG, "validation windows: %s", vsmp ? "out of memory" : err);
        goto done;
    }
    uint64_t vrng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)o.t.seed;
    for (int64_t i = 0; i < val.n; i++)
        if (dna_sampler_draw(vsmp, &vrng, 0, val.w + i * (val.len + 1), NULL, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "validation windows: %s", err);
            goto done;
        }
    /* the baselines, on the same targets the model is scored on */
    if (!(km = dna_kmer_fit(set, train_iv, o.kmer, err, sizeof err))) {
        mb_cli_error(DNA_PROG, "baseline: %s", err);
        goto done;
    }
    for (int oi = 0; oi < 2; oi++) {
        double bits = 0;
        int64_t n = 0;
        for (int64_t i = 0; i < val.n; i++)
            dna_kmer_eval(km, oi ? o.kmer : 0, val.w + i * (val.len + 1), val.len, &bits, &n);
        val.base_bits[oi] = n ? bits / n : NAN;
        val.bases = n;
    }
    fprintf(stderr, DNA_PROG ": training on %lld bases of %lld records, validating on %lld bases "
                    "(%lld windows of %lld)\n",
            (long long)train_iv->bases, (long long)dna_set_nrec(set), (long long)val.bases,
            (long long)val.n, (long long)val.len);
    fprintf(stderr, DNA_PROG ": baselines on the validation bases: order-0 %.4f bits/base, order-%d %.4f\n",
            val.base_bits[0], o.kmer, val.base_bits[1]);

    /* every rank has its model and data: from here on the ranks move
     * together, and a failure on one of them is agreed on at a sync */
    synced = 1;
    if ((rc = mb_cli_dist_agree(0))) goto done;
    synced = 0;
    rc = 1;
    int64_t step = mb_optim_step_count(opt);
    if (step >= o.t.steps) {
        fprintf(stderr, DNA_PROG ": %s is already at step %lld of %lld: nothing to do\n", o.t.out,
                (long long)step, (long long)o.t.steps);
        rc = 0;
        goto done;
    }
    /* the same weights on every rank; a failure here leaves the others in
     * a collective: it ends the job */
    if (mb_model_set_dist(m, mb_cli_dist())) {
        rc = mb_cli_dist_fatal(DNA_PROG, "data parallel");
        goto done;
    }
    /* long windows: keep one layer's activations (over 128k-token chunks);
     * a rank holds its rows of the batch */
    int64_t L, B;
    pt_shape(&o, o.t.steps, &L, &B);
    if (B / P * L > 65536) mb_model_set_recompute(m, 1);
    const mb_config *mc = mb_model_config(m);
    fprintf(stderr, DNA_PROG ": %zu parameters (d_model %d, %d layers, d_state %d, %s A) on %s%s%s\n",
            mb_model_num_params(m), mc->d_model, mc->n_layer, mc->d_state,
            mc->init == MB_INIT_S4D_LIN ? "complex" : "real", mb_ctx_name(ctx),
            P > 1 ? " and the other ranks (data parallel)" : "", step ? ", resuming" : "");
    if (logf)
        fprintf(logf, "{\"event\": \"start\", \"step\": %lld, \"steps\": %lld, \"seq_len\": %lld, "
                      "\"batch\": %lld, \"params\": %zu, \"device\": \"%s\", \"val_bases\": %lld, "
                      "\"baseline_order0_bpb\": %.6f, \"baseline_order%d_bpb\": %.6f}\n",
                (long long)step, (long long)o.t.steps, (long long)o.t.seq_len, (long long)o.t.batch,
                mb_model_num_params(m), mb_ctx_name(ctx), (long long)val.bases, val.base_bits[0],
                o.kmer, val.base_bits[1]);

    /* the most tokens a step holds on a rank, over the warmup stages (the
     * tokens of a step stay the same while B doubles as L halves) */
    int64_t maxtok = 0;
    for (int64_t s = 1; s <= o.t.steps; s += (o.t.steps + 63) / 64) {
        pt_shape(&o, s, &L, &B);
        maxtok = B / P * L > maxtok ? B / P * L : maxtok;
    }
    pt_shape(&o, o.t.steps, &L, &B);
    maxtok = B / P * L > maxtok ? B / P * L : maxtok;
    win = malloc(sizeof(int32_t) * (size_t)(o.t.seq_len + 1));
    tok = malloc(sizeof(int32_t) * (size_t)maxtok);
    tgt = malloc(sizeof(int32_t) * (size_t)maxtok);
    if (!win || !tok || !tgt) {
        mb_cli_error(DNA_PROG, "out of memory for %lld tokens a step", (long long)maxtok);
        goto done;
    }
    pt_run pr = {.o = &o, .val = &val, .smp = smp, .win = win, .m = m, .opt = opt, .optim_path = optim_path};
    mb_cli_train_run run = {
        .prog = DNA_PROG, .m = m, .opt = opt, .log = logf, .steps = o.t.steps,
        .last = o.stop_after && o.stop_after < o.t.steps ? o.stop_after : o.t.steps, .val_every = o.val_every,
        .save_every = o.t.save_every, .unit = "bits/base", .rate_unit = "tok/s", .key_train = "train_bpb",
        .key_val = "val_bpb", .key_rate = "tokens_per_s", .show_shape = 1, .ud = &pr, .batch = pt_batch,
        .validate = pt_val_cb, .save = pt_save_cb, .step = step};
    rc = mb_cli_train_loop(&run, tok, tgt);
    synced = run.synced;
    step = run.step;
    if (rc == 0) {
        if (rank0 && pt_save(&o, m, opt, optim_path)) rc = 1;
        else if (run.stop || step < o.t.steps)
            fprintf(stderr, DNA_PROG ": %s at step %lld; saved %s (--resume continues)\n",
                    run.stop ? "interrupted" : "stopped", (long long)step, o.t.out);
        else
            printf("pretrain: %lld steps, validation %.4f bits/base (order-0 %.4f, order-%d %.4f), "
                   "model %s, %.1fs\n",
                   (long long)step, run.last_val, val.base_bits[0], o.kmer, val.base_bits[1], o.t.out,
                   mb_cli_now() - run.t0);
        if (logf && rc == 0)
            fprintf(logf, "{\"event\": \"end\", \"step\": %lld, \"val_bpb\": %.6f, \"interrupted\": %s}\n",
                    (long long)step, run.last_val, run.stop ? "true" : "false");
    }
    if (run.stop && rc == 0) rc = 130; /* the shell's code for Ctrl-C; saved */
done:
    /* a rank that has not met the others since it failed (or finished)
     * meets them now: one error line in all, one exit code */
    if (!synced) rc = mb_cli_dist_agree(rc);
    if (logf) fclose(logf);
    free(win);
    free(tok);
    free(tgt);
    free(val.w);
    free(optim_path);
    dna_kmer_free(km);
    dna_sampler_free(smp);
    dna_sampler_free(vsmp);
    dna_split_free(&sp);
    dna_split_free(&vsp);
    dna_set_close(vset);
    dna_set_close(set);
    mb_optim_free(opt);
    mb_model_free(m);
    mb_ctx_free(ctx);
    free(o.val_files);
    return rc;
}

int dna_cmd_pretrain(int argc, char **argv)
{
    if (mb_cli_dist_start(DNA_PROG)) return 1;
    const int rc = pretrain(argc, argv);
    mb_cli_dist_stop();
    return rc;
}
