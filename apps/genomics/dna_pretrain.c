/* mamba-dna pretrain: next-base pretraining (the causal LM) or masked
 * pretraining (the bidirectional model, optionally RC-equivariant: --objective
 * mlm) from FASTA / BAM / CRAM files, on random windows (reverse-complement
 * augmented), validated in bits per base on a held-out part against
 * order-0 and order-k baselines fitted on the same training part. Under
 * mpirun, data-parallel (mb_cli.h): each rank trains its rows of the global
 * batch and scores its share of the validation windows; rank 0 prints and
 * writes. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dna_cmd.h"
#include "dna_kmer.h"
#include "dna_mlm.h"

typedef struct {
    mb_cli_train t;
    const char **val_files;
    int n_val;
    const char *val_bed, *reference;
    double val_frac, seq_warmup;
    int rc_aug, kmer, force;
    int memory;     /* DNA_MEMORY_*: --low-memory, --high-memory */
    int mlm;       /* --objective mlm: masked targets (the bidirectional model) */
    int arch_set;  /* --arch or --rc-equivariant given */
    int64_t val_every, val_tokens, stop_after;
    const char *const *files; /* the training inputs (FILE...) */
    int n_files;
} pt_opts;

static void usage(FILE *f, const mb_cli_train *d)
{
    fprintf(f,
            "usage: " DNA_PROG " pretrain [options] FILE...\n"
            "\n"
            "Pretraining of a Mamba model on the sequences of FILE...: next-base (a causal\n"
            "language model, the default) or masked (a bidirectional model, --objective mlm)\n"
            "(FASTA plain / gzip / bgzip + .fai, BAM, CRAM): random windows of --seq-len\n"
            "bases, reverse-complemented half of the time, windows mostly N skipped. A\n"
            "held-out part is scored in bits per base every --val-every steps, next to an\n"
            "order-0 and an order-k Markov baseline fitted on the training part.\n"
            "Progress on stderr; Ctrl-C or SIGTERM saves a checkpoint and stops, exit 130\n"
            "(--resume goes on); a --log that cannot be written stops the run the same way,\n"
            "exit 1.\n"
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
            "                     train in slices, e.g. under a batch system's time limit)\n"
            "\n"
            "objective:\n"
            "  --objective clm|mlm  clm: predict each next base (arch lm) [clm]; mlm: BERT's\n"
            "                     masking as Caduceus trains, 15%% of the bases chosen (80%%\n"
            "                     [MASK], 10%% a random base, 10%% kept), the loss and the\n"
            "                     validation's bits/base on the chosen bases only (arch bidir)\n"
            "  --arch lm|bidir    lm: the causal LM; bidir: Caduceus' BiMamba blocks (a\n"
            "                     second mixer over the reversed sequence, projections\n"
            "                     shared), for masked pretraining [lm for clm, bidir for mlm]\n"
            "  --rc-equivariant   bidir: reverse-complement parameter sharing (Caduceus-PS):\n"
            "                     a sequence and its reverse complement get mirrored\n"
            "                     predictions and equal pooled embeddings; twice the compute\n"
            "memory:\n" DNA_MEMORY_HELP,
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

/* The flags; -1 to go on, else the exit code (0 after --help, 2 after a
 * usage error line, 1 out of memory). o->val_files is the caller's to free. */
static int pt_parse(pt_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    mb_cli_train_default(&o->t);
    dna_cmd_config(&o->t.cfg);
    o->t.out = DNA_DEFAULT_MODEL;
    o->val_frac = DNA_VAL_FRAC_DEFAULT;
    o->rc_aug = 1;
    o->kmer = 5;
    o->val_every = -1;
    o->val_tokens = -1;
    const mb_cli_train defaults = o->t;
    enum { O_VAL = 256, O_VBED, O_VFRAC, O_VEVERY, O_VTOK, O_KMER, O_NORC, O_SWARM, O_REF, O_FORCE, O_STOP,
           O_OBJ, O_ARCH, O_RCEQ, O_LOWMEM, O_HIGHMEM };
    int arch = -1, rceq = 0;
    static const struct option own[] = {
        {"val", 1, 0, O_VAL}, {"val-bed", 1, 0, O_VBED}, {"val-frac", 1, 0, O_VFRAC},
        {"val-every", 1, 0, O_VEVERY}, {"val-tokens", 1, 0, O_VTOK}, {"kmer", 1, 0, O_KMER},
        {"no-rc", 0, 0, O_NORC}, {"seq-warmup", 1, 0, O_SWARM}, {"reference", 1, 0, O_REF},
        {"force", 0, 0, O_FORCE}, {"stop-after", 1, 0, O_STOP}, {"objective", 1, 0, O_OBJ},
        {"arch", 1, 0, O_ARCH}, {"rc-equivariant", 0, 0, O_RCEQ}, {"low-memory", 0, 0, O_LOWMEM},
        {"high-memory", 0, 0, O_HIGHMEM}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    struct option *opts = mb_cli_options_join(own);
    o->val_files = calloc((size_t)argc + 1, sizeof(char *));
    if (!opts || !o->val_files) {
        mb_cli_error(DNA_PROG, "out of memory");
        free(opts);
        return 1;
    }
    int c, bad = 0;
    int64_t v;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(DNA_PROG, "pretrain", argc, argv, opts)) != -1) {
        const int r = mb_cli_train_option(&o->t, DNA_PROG, c, optarg);
        if (r) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case O_VAL: o->val_files[o->n_val++] = optarg; break;
        case O_VBED: o->val_bed = optarg; break;
        case O_VFRAC: bad = mb_cli_parse_real(DNA_PROG, "--val-frac", optarg, 0.0, 0.9, &o->val_frac); break;
        case O_VEVERY: bad = mb_cli_parse_int(DNA_PROG, "--val-every", optarg, 1, INT64_C(1) << 40, &o->val_every); break;
        case O_VTOK: bad = mb_cli_parse_int(DNA_PROG, "--val-tokens", optarg, 2, INT64_C(1) << 34, &o->val_tokens); break;
        case O_KMER:
            bad = mb_cli_parse_int(DNA_PROG, "--kmer", optarg, 0, DNA_KMER_MAX, &v);
            o->kmer = (int)v;
            break;
        case O_NORC: o->rc_aug = 0; break;
        case O_SWARM: bad = mb_cli_parse_real(DNA_PROG, "--seq-warmup", optarg, 0.0, 1.0, &o->seq_warmup); break;
        case O_REF: o->reference = optarg; break;
        case O_FORCE: o->force = 1; break;
        case O_LOWMEM: bad = dna_cmd_memory_option(&o->memory, DNA_MEMORY_LOW); break;
        case O_HIGHMEM: bad = dna_cmd_memory_option(&o->memory, DNA_MEMORY_HIGH); break;
        case O_STOP: bad = mb_cli_parse_int(DNA_PROG, "--stop-after", optarg, 1, INT64_C(1) << 40, &o->stop_after); break;
        case O_OBJ:
            if (!strcmp(optarg, "clm") || !strcmp(optarg, "mlm")) {
                o->mlm = optarg[0] == 'm';
            } else {
                mb_cli_error(DNA_PROG, "--objective must be clm or mlm (got '%s')", optarg);
                bad = 1;
            }
            break;
        case O_ARCH:
            if (!strcmp(optarg, "lm") || !strcmp(optarg, "bidir")) {
                arch = optarg[0] == 'b';
            } else {
                mb_cli_error(DNA_PROG, "--arch must be lm or bidir (got '%s')", optarg);
                bad = 1;
            }
            break;
        case O_RCEQ: rceq = 1; break;
        case 'h':
            usage(stdout, &defaults);
            free(opts);
            return 0;
        case MB_CLI_OPT_VERSION: free(opts); return 0;
        default: bad = 1;
        }
    }
    free(opts);
    if (!bad && optind >= argc) {
        mb_cli_error(DNA_PROG, "pretrain needs at least one FASTA, BAM or CRAM file");
        bad = 1;
    }
    if (!bad && o->val_bed && o->n_val) {
        mb_cli_error(DNA_PROG, "--val and --val-bed are exclusive");
        bad = 1;
    }
    if (!bad && mb_cli_dist_check_batch(DNA_PROG, o->t.batch)) bad = 1;
    if (arch < 0) arch = o->mlm || rceq; /* the objective's architecture */
    if (!bad && arch && !o->mlm) {
        mb_cli_error(DNA_PROG, "--arch bidir sees the next base: it needs --objective mlm");
        bad = 1;
    }
    if (!bad && !arch && o->mlm) {
        mb_cli_error(DNA_PROG, "--objective mlm needs --arch bidir (a causal model reads one side only)");
        bad = 1;
    }
    if (!bad && rceq && !arch) {
        mb_cli_error(DNA_PROG, "--rc-equivariant needs --arch bidir");
        bad = 1;
    }
    o->arch_set = arch || rceq;
    if (arch) {
        o->t.cfg.arch = MB_ARCH_BIDIR;
        o->t.cfg.rc_equivariant = rceq;
        dna_cmd_complement(o->t.cfg.rc_complement);
    }
    if (bad) {
        fprintf(stderr, "Try '" DNA_PROG " pretrain --help'.\n");
        return 2;
    }
    if (o->val_every < 0) o->val_every = o->t.steps >= 10 ? o->t.steps / 10 : 1;
    if (o->val_tokens < 0) o->val_tokens = o->t.seq_len > 65536 ? o->t.seq_len : 65536;
    o->files = (const char *const *)argv + optind;
    o->n_files = argc - optind;
    return -1;
}

/* The held-out windows, fixed for the run, and the baselines on them. */
typedef struct {
    int32_t *w;   /* n windows of len + 1 tokens */
    int64_t n, len;
    double base_bits[2]; /* order 0, order k */
    int64_t bases;
} pt_val;

/* What a run holds; the shared training loop calls back into it. */
typedef struct {
    const pt_opts *o;
    mb_cli_ckpt ck; /* the checkpoint sets beside --out */
    FILE *logf;
    mb_ctx *ctx;
    mb_model *m;
    mb_optim *opt;
    dna_set *set, *vset;      /* the training files; --val's */
    dna_split sp, vsp;        /* their splits */
    const dna_ivals *train_iv, *val_iv;
    dna_set *valset;          /* the set val_iv is in */
    dna_sampler *smp;         /* training windows */
    pt_val val;
    int32_t *win, *tok, *tgt; /* one window (seq_len + 1); a step's rows */
    int rc_said;              /* the recompute mode said on stderr (dna_cmd_recompute_took) */
} pt_run;

static void pt_free(pt_run *t)
{
    if (t->logf) fclose(t->logf); /* after an error: mb_cli_log_close checks it on the way out */
    free(t->win);
    free(t->tok);
    free(t->tgt);
    free(t->val.w);
    mb_cli_ckpt_free(&t->ck);
    dna_sampler_free(t->smp);
    dna_split_free(&t->sp);
    dna_split_free(&t->vsp);
    dna_set_close(t->vset);
    dna_set_close(t->set);
    mb_optim_free(t->opt);
    mb_model_free(t->m);
    mb_ctx_free(t->ctx);
}

/* Outputs first: an --out that cannot be written (a folder, a missing
 * directory), an existing --out (or checkpoint set of one) without
 * --resume or --force, an --log that cannot be opened fail before any work
 * (rank 0 checks and writes; the other ranks write nothing). A run that
 * owns --out removes the temporary files a killed one left. */
static int pt_open_outputs(pt_run *t)
{
    const pt_opts *o = t->o;
    int log_failed = 0;
    char what[4096];
    if (mb_cli_rank() == 0 && mb_cli_check_writable(DNA_PROG, o->t.out)) return -1;
    if (!o->t.resume && !o->force && mb_cli_ckpt_exists(o->t.out, what, sizeof what)) {
        mb_cli_error(DNA_PROG, "%s exists: --resume continues it, --force starts over", what);
        return -1;
    }
    mb_cli_ckpt_init(&t->ck, DNA_PROG, &o->t);
    if (mb_cli_rank() != 0) return 0;
    if (o->t.resume || o->force) mb_cli_ckpt_sweep(&t->ck, NULL);
    if (!(t->logf = mb_cli_log_open(DNA_PROG, o->t.log, &log_failed)) && log_failed) return -1;
    return 0;
}

static mb_model *pt_load(void *ud, mb_ctx *ctx, const char *path)
{
    (void)ud;
    return dna_cmd_load_model(ctx, path, 0, 0);
}

/* The model (new, or the checkpoint to resume) and its optimizer: a wrong
 * checkpoint fails before any data is read. */
static int pt_open_model(pt_run *t)
{
    const pt_opts *o = t->o;
    if (!(t->ctx = mb_cli_ctx(DNA_PROG, &o->t))) return -1;
    if (o->t.resume) {
        if (mb_cli_ckpt_resume(&t->ck, t->ctx, &o->t, pt_load, t, &t->m, &t->opt)) return -1;
        if (o->t.set_model || o->arch_set)
            mb_cli_warn(DNA_PROG, "--resume: the model flags are ignored (the checkpoint's are kept)");
        if ((mb_model_config(t->m)->arch == MB_ARCH_BIDIR) != o->mlm) {
            mb_cli_error(DNA_PROG, "%s: a %s model: resume it with --objective %s", o->t.out,
                         o->mlm ? "causal" : "bidirectional", o->mlm ? "clm" : "mlm");
            return -1;
        }
        return 0;
    }
    if (!(t->m = mb_cli_model_new(DNA_PROG, t->ctx, &o->t))) return -1;
    return (t->opt = mb_cli_optim(DNA_PROG, t->m, &o->t, NULL)) ? 0 : -1;
}

/* The training files for a message: the first, and how many more. */
static const char *pt_inputs_label(const dna_set *set, char *buf, size_t n)
{
    const char *first = dna_src_path(dna_set_src(set, 0));
    if (dna_set_nsrc(set) > 1) snprintf(buf, n, "%s (and %d more files)", first, dna_set_nsrc(set) - 1);
    else snprintf(buf, n, "%s", first);
    return buf;
}

/* The training part and the held-out part (--val files, --val-bed
 * intervals, or the last --val-frac of every record), and the sampler of
 * the training windows. */
static int pt_open_data(pt_run *t)
{
    const pt_opts *o = t->o;
    char err[512];
    if (!(t->set = dna_cmd_open_set(o->files, o->n_files, o->reference))) return -1;
    if (o->n_val) {
        if (!(t->vset = dna_cmd_open_set(o->val_files, o->n_val, o->reference))) return -1;
        if (dna_split_fraction(t->set, 0.0, &t->sp, err, sizeof err) ||
            dna_split_fraction(t->vset, 1.0, &t->vsp, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return -1;
        }
        t->train_iv = &t->sp.train, t->val_iv = &t->vsp.val, t->valset = t->vset;
    } else {
        if (o->val_bed ? dna_split_bed(t->set, o->val_bed, &t->sp, err, sizeof err)
                       : dna_split_fraction(t->set, o->val_frac, &t->sp, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return -1;
        }
        t->train_iv = &t->sp.train, t->val_iv = &t->sp.val, t->valset = t->set;
    }
    if (t->train_iv->bases == 0) {
        char files[512];
        mb_cli_error(DNA_PROG, "%s: nothing left to train on: every base is held out (%s)",
                     pt_inputs_label(t->set, files, sizeof files),
                     o->val_bed ? "--val-bed covers every record" : "see --val-frac");
        return -1;
    }
    if (!(t->smp = dna_sampler_create(t->set, t->train_iv, o->t.seq_len + 1, err, sizeof err))) {
        mb_cli_error(DNA_PROG, "%s (training windows)", err);
        return -1;
    }
    return 0;
}

/* The validation windows: fixed for the run (a seed of their own), as long
 * as the held-out intervals allow. */
static int pt_draw_val(pt_run *t)
{
    const pt_opts *o = t->o;
    pt_val *val = &t->val;
    char err[512];
    const int64_t vlong = dna_ivals_longest(t->val_iv, NULL);
    if (vlong < 2) {
        mb_cli_error(DNA_PROG, "no held-out sequence to validate on (see --val, --val-bed, --val-frac)");
        return -1;
    }
    val->len = vlong - 1 < o->t.seq_len ? vlong - 1 : o->t.seq_len;
    if (val->len < o->t.seq_len)
        fprintf(stderr, DNA_PROG ": validation windows of %lld bases: the longest held-out interval is %lld\n",
                (long long)val->len, (long long)vlong);
    val->n = o->val_tokens / val->len > 0 ? o->val_tokens / val->len : 1;
    dna_sampler *vsmp = dna_sampler_create(t->valset, t->val_iv, val->len + 1, err, sizeof err);
    int rc = 0;
    if (!vsmp || !(val->w = malloc(sizeof(int32_t) * (size_t)(val->n * (val->len + 1))))) {
        if (vsmp) mb_cli_error(DNA_PROG, "out of memory for %lld validation windows", (long long)val->n);
        else mb_cli_error(DNA_PROG, "%s (validation windows)", err);
        rc = -1;
    }
    uint64_t vrng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)o->t.seed;
    for (int64_t i = 0; rc == 0 && i < val->n; i++)
        if (dna_sampler_draw(vsmp, &vrng, 0, val->w + i * (val->len + 1), NULL, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s (validation windows)", err);
            rc = -1;
        }
    dna_sampler_free(vsmp);
    return rc;
}

/* The order-0 and order-k baselines, fitted on the training part and
 * scored on the targets the model is scored on; the data's lines. */
static int pt_baselines(pt_run *t)
{
    const pt_opts *o = t->o;
    pt_val *val = &t->val;
    char err[512];
    dna_kmer *km = dna_kmer_fit(t->set, t->train_iv, o->kmer, err, sizeof err);
    if (!km) {
        mb_cli_error(DNA_PROG, "baseline: %s", err);
        return -1;
    }
    for (int oi = 0; oi < 2; oi++) {
        double bits = 0;
        int64_t n = 0;
        for (int64_t i = 0; i < val->n; i++)
            dna_kmer_eval(km, oi ? o->kmer : 0, val->w + i * (val->len + 1), val->len, &bits, &n);
        val->base_bits[oi] = n ? bits / n : NAN;
        val->bases = n;
    }
    dna_kmer_free(km);
    fprintf(stderr, DNA_PROG ": training on %lld bases of %lld records, validating on %lld bases "
                    "(%lld windows of %lld)\n",
            (long long)t->train_iv->bases, (long long)dna_set_nrec(t->set), (long long)val->bases,
            (long long)val->n, (long long)val->len);
    fprintf(stderr, DNA_PROG ": baselines on the validation bases: order-0 %.4f bits/base, order-%d %.4f\n",
            val->base_bits[0], o->kmer, val->base_bits[1]);
    return 0;
}

/* The model on every rank (the same weights: a failure ends the job),
 * recompute for long windows, the run's first lines, and this rank's
 * buffers. 0, or the exit code. */
static int pt_start(pt_run *t, int64_t step)
{
    const pt_opts *o = t->o;
    const int P = mb_cli_ranks();
    if (mb_model_set_dist(t->m, mb_cli_dist())) return mb_cli_dist_fatal(DNA_PROG, "data parallel");
    /* long windows: keep one layer's activations (over 128k-token chunks,
     * or less with --low-memory); a rank holds its rows of the batch */
    int64_t L, B;
    pt_shape(o, o->t.steps, &L, &B);
    dna_cmd_recompute(t->m, B / P, L, o->memory);
    t->rc_said = MB_RECOMPUTE_LAYERS;
    const mb_config *mc = mb_model_config(t->m);
    fprintf(stderr, DNA_PROG ": %zu parameters (%s, d_model %d, %d layers, d_state %d, %s A) on %s%s%s\n",
            mb_model_num_params(t->m),
            mc->arch != MB_ARCH_BIDIR ? "causal LM, next-base targets"
            : mc->rc_equivariant     ? "bidirectional, RC-equivariant, masked targets"
                                     : "bidirectional, masked targets",
            mc->d_model, mc->n_layer, mc->d_state, mc->init == MB_INIT_S4D_LIN ? "complex" : "real", mb_ctx_name(t->ctx),
            P > 1 ? " and the other ranks (data parallel)" : "", step ? ", resuming" : "");
    if (t->logf)
        fprintf(t->logf, "{\"event\": \"start\", \"step\": %lld, \"steps\": %lld, \"seq_len\": %lld, "
                         "\"batch\": %lld, \"params\": %zu, \"device\": \"%s\", \"val_bases\": %lld, "
                         "\"baseline_order0_bpb\": %.6f, \"baseline_order%d_bpb\": %.6f}\n",
                (long long)step, (long long)o->t.steps, (long long)o->t.seq_len, (long long)o->t.batch,
                mb_model_num_params(t->m), mb_ctx_name(t->ctx), (long long)t->val.bases, t->val.base_bits[0],
                o->kmer, t->val.base_bits[1]);
    if (mb_cli_log_check(DNA_PROG, t->logf)) return 1;
    /* the most tokens a step holds on a rank, over the warmup stages (the
     * tokens of a step stay the same while B doubles as L halves) */
    int64_t maxtok = 0;
    for (int64_t s = 1; s <= o->t.steps; s += (o->t.steps + 63) / 64) {
        pt_shape(o, s, &L, &B);
        maxtok = B / P * L > maxtok ? B / P * L : maxtok;
    }
    pt_shape(o, o->t.steps, &L, &B);
    maxtok = B / P * L > maxtok ? B / P * L : maxtok;
    t->win = malloc(sizeof(int32_t) * (size_t)(o->t.seq_len + 1));
    t->tok = malloc(sizeof(int32_t) * (size_t)maxtok);
    t->tgt = malloc(sizeof(int32_t) * (size_t)maxtok);
    if (!t->win || !t->tok || !t->tgt) {
        mb_cli_error(DNA_PROG, "out of memory for %lld tokens a step", (long long)maxtok);
        return 1;
    }
    return 0;
}

/* A step on this rank: its rows of the step's batch, forward and backward.
 * The data order is a function of (seed, step, row): a resumed run sees
 * what an uninterrupted one would have, and P ranks what one process
 * would. */
static int pt_step(void *ud, int64_t step, mb_cli_step *out)
{
    pt_run *t = ud;
    char err[512];
    int64_t L, B, row0, rows;
    pt_shape(t->o, step, &L, &B);
    mb_cli_dist_rows(B, &row0, &rows);
    for (int64_t i = 0; i < rows; i++) {
        uint64_t rng = mb_cli_rng_row(t->o->t.seed, step, row0 + i);
        if (dna_sampler_draw(t->smp, &rng, t->o->rc_aug, t->win, NULL, err, sizeof err)) {
            mb_cli_error(DNA_PROG, "%s", err);
            return 1;
        }
        /* windows of the full length, cut to this stage's L; masked
         * pretraining draws the mask from the row's stream after the window */
        if (t->o->mlm) {
            const dna_mlm_rules r = DNA_MLM_RULES_DEFAULT;
            dna_mlm_mask(&r, &rng, t->win, L, t->tok + i * L, t->tgt + i * L);
            continue;
        }
        memcpy(t->tok + i * L, t->win, sizeof(int32_t) * (size_t)L);
        dna_cmd_targets(t->win, L, t->tgt + i * L);
    }
    out->L = L, out->B = B, out->items = B * L;
    if (mb_model_forward_backward(t->m, t->tok, t->tgt, (int)rows, (int)L, &out->loss)) return -1;
    if (t->o->memory == DNA_MEMORY_DEFAULT) dna_cmd_recompute_took(t->m, L, &t->rc_said);
    return 0;
}

/* The model's loss over validation windows [first, first + n) into *st,
 * through recurrent chunks (a state of its own: the training shapes stay),
 * the log-likelihoods computed on the device. */
static int pt_score_windows(mb_model *m, const pt_val *v, int64_t first, int64_t n, int64_t bmax,
                            mb_loss_stats *st)
{
    if (n <= 0) return 0;
    const int64_t chunk = v->len < 8192 ? v->len : 8192;
    const int64_t B = n < bmax ? n : bmax;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * chunk));
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)(B * chunk));
    mb_state *s = tok && tgt ? mb_state_create(m, (int)B) : NULL;
    int rc = s ? 0 : -1;
    for (int64_t w0 = first; rc == 0 && w0 < first + n; w0 += B) {
        const int64_t nb = first + n - w0 < B ? first + n - w0 : B;
        mb_state_reset(s);
        for (int64_t t0 = 0; rc == 0 && t0 < v->len; t0 += chunk) {
            const int64_t c = v->len - t0 < chunk ? v->len - t0 : chunk;
            /* the state holds B rows: unused rows run on copies of row 0,
             * their targets ignored */
            for (int64_t b = 0; b < B; b++) {
                const int32_t *w = v->w + (w0 + (b < nb ? b : 0)) * (v->len + 1) + t0;
                memcpy(tok + b * c, w, sizeof(int32_t) * (size_t)c);
                if (b < nb) dna_cmd_targets(w, c, tgt + b * c);
                else
                    for (int64_t k = 0; k < c; k++) tgt[b * c + k] = MB_IGNORE_INDEX;
            }
            mb_chunk_out out = {.targets = tgt, .stats = st};
            rc = mb_model_forward_chunk_ex(m, s, tok, (int)c, &out);
        }
    }
    mb_state_free(s);
    free(tok);
    free(tgt);
    return rc;
}

/* The masked model's loss over validation windows [first, first + n)
 * (-1: the library's error; -2: said here):
 * each window masked by a stream of its own (the same mask at every
 * validation), scored on the chosen positions that hold a base, in
 * forwards of bmax rows (a short last group padded with copies of its
 * first window, their targets ignored: the training shapes stay). */
static int pt_score_windows_mlm(mb_model *m, const pt_val *v, int64_t seed, int64_t first, int64_t n, int64_t bmax,
                                mb_loss_stats *st)
{
    if (n <= 0) return 0;
    const int64_t B = n < bmax ? n : bmax, L = v->len;
    const dna_mlm_rules r = DNA_MLM_RULES_DEFAULT;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(B * L));
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)(B * L));
    int rc = 0;
    if (!tok || !tgt) {
        mb_cli_error(DNA_PROG, "out of memory for %lld validation windows of %lld", (long long)B, (long long)L);
        rc = -2; /* said */
    }
    for (int64_t w0 = first; rc == 0 && w0 < first + n; w0 += B) {
        const int64_t nb = first + n - w0 < B ? first + n - w0 : B;
        for (int64_t b = 0; b < B; b++) {
            const int64_t w = w0 + (b < nb ? b : 0);
            uint64_t rng = mb_cli_rng_row(seed, -1, w);
            dna_mlm_mask(&r, &rng, v->w + w * (v->len + 1), L, tok + b * L, tgt + b * L);
            for (int64_t k = 0; k < L; k++)
                if (b >= nb || !dna_is_base(tgt[b * L + k])) tgt[b * L + k] = MB_IGNORE_INDEX;
        }
        rc = mb_model_forward(m, tok, (int)B, (int)L, tgt, NULL, st);
    }
    free(tok);
    free(tgt);
    return rc;
}

/* Bits per base over every rank's share of the windows (a collective: every
 * rank calls it at the same steps); the run's exit code, 0 when it went. */
static int pt_validate(void *ud, double *bpb)
{
    pt_run *t = ud;
    int64_t first, n;
    mb_cli_dist_share(t->val.n, &first, &n);
    mb_loss_stats st = {0};
    int rc = 0;
    const int64_t bmax = t->o->t.batch / mb_cli_ranks();
    const int r = t->o->mlm ? pt_score_windows_mlm(t->m, &t->val, t->o->t.seed, first, n, bmax, &st)
                            : pt_score_windows(t->m, &t->val, first, n, bmax, &st);
    if (r) {
        if (r == -1) mb_cli_error(DNA_PROG, "validation: %s", mb_error_last());
        rc = 1;
    }
    mb_cli_sync s = {{st.loss_sum, (double)st.count}, 0, 0};
    if ((rc = mb_cli_dist_sync(rc, &s)) == 0) *bpb = s.sum[1] > 0 ? s.sum[0] / s.sum[1] / MB_CLI_LN2 : NAN;
    return rc;
}

/* a checkpoint set (rank 0) */
static int pt_save(void *ud)
{
    pt_run *t = ud;
    return mb_cli_ckpt_save(&t->ck, t->m, t->opt);
}

/* the lowest held-out loss so far: --out (rank 0) */
static int pt_save_best(void *ud)
{
    pt_run *t = ud;
    return mb_cli_ckpt_save_best(&t->ck, t->m);
}

/* The training steps through the shared loop, then the final checkpoint
 * and the closing lines. The exit code. */
static int pt_train(pt_run *t, int64_t step, int *synced)
{
    const pt_opts *o = t->o;
    mb_cli_train_run run = {
        .prog = DNA_PROG, .opt = t->opt, .log = t->logf, .steps = o->t.steps,
        .last = o->stop_after && o->stop_after < o->t.steps ? o->stop_after : o->t.steps,
        .val_every = o->val_every, .save_every = o->t.save_every, .show_shape = 1, .unit = "bits/base",
        .key_train = "train_bpb", .key_val = "val_bpb", .rate_unit = "tok/s", .key_rate = "tokens_per_s",
        .ud = t, .train_step = pt_step, .validate = pt_validate, .save = pt_save, .step = step, .ck = &t->ck,
        .save_best = pt_save_best, .best_out = o->t.select_last ? NULL : o->t.out, .patience = o->t.patience};
    int rc = mb_cli_train_loop(&run);
    *synced = run.synced;
    rc = mb_cli_train_finish(&run, rc, o->t.out);
    /* the figure of the model in --out: the best validation's, or the last's */
    const mb_cli_val_hist *h = &t->ck.hist;
    const int best = !o->t.select_last && h->best_step > 0;
    if (rc == 0 && (run.step == o->t.steps || run.early)) {
        printf("pretrain: %lld steps, validation %.4f bits/base (order-0 %.4f, order-%d %.4f), model %s",
               (long long)run.step, best ? h->best : run.last_val, t->val.base_bits[0], o->kmer, t->val.base_bits[1],
               o->t.out);
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
        fprintf(t->logf, "{\"event\": \"end\", \"step\": %lld, \"val_bpb\": %.6f, \"best_step\": %lld, "
                         "\"best_val_bpb\": %s, \"early_stop\": %s, \"interrupted\": %s}\n",
                (long long)run.step, run.last_val, (long long)h->best_step, best_val, run.early ? "true" : "false",
                rc == MB_CLI_EXIT_INTERRUPTED ? "true" : "false");
    }
    /* the log's last line and its close: a lost line fails the run (the
     * model is saved) */
    FILE *log = t->logf;
    t->logf = NULL;
    if (mb_cli_log_close(DNA_PROG, log) && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED)) rc = 1;
    return rc;
}

/* 0, or after a signal during the loading (the loaders poll for it
 * between reads, but a short load may have finished) its line and 130. */
static int pt_interrupted_before(int rc)
{
    if (rc || !mb_cli_interrupted()) return rc;
    mb_cli_error(DNA_PROG, "interrupted before the first step; nothing written");
    return MB_CLI_EXIT_INTERRUPTED;
}

static int pretrain(int argc, char **argv)
{
    pt_opts o;
    int rc = pt_parse(&o, argc, argv);
    if (rc >= 0) {
        free(o.val_files);
        return rc;
    }
    pt_run t = {.o = &o};
    int synced = 0;
    rc = 1;
    if (pt_open_outputs(&t) || pt_open_model(&t) || pt_open_data(&t) || pt_draw_val(&t) || pt_baselines(&t))
        goto done;
    /* every rank has its model and data: from here on the ranks move
     * together, and a failure on one of them is agreed on at a sync; a
     * signal while loading stops every rank here, nothing written */
    synced = 1;
    if ((rc = mb_cli_dist_agree(pt_interrupted_before(0)))) goto done;
    synced = 0;
    const int64_t step = mb_optim_step_count(t.opt);
    if (step >= o.t.steps) {
        fprintf(stderr, DNA_PROG ": %s is already at step %lld of %lld: nothing to do\n", o.t.out,
                (long long)step, (long long)o.t.steps);
        goto done;
    }
    if ((rc = pt_start(&t, step)) == 0) rc = pt_train(&t, step, &synced);
done:
    /* a load stopped by a signal said so in its own error line */
    if (rc == 1 && mb_cli_interrupted()) rc = MB_CLI_EXIT_INTERRUPTED;
    /* a rank that has not met the others since it failed (or finished)
     * meets them now: one error line in all, one exit code */
    if (!synced) rc = mb_cli_dist_agree(rc);
    pt_free(&t);
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
