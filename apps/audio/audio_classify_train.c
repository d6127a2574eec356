/* mamba-audio classify train: a SaShiMi U-Net with a classification head
 * trained on folders of labelled clips, from scratch or from a mamba-audio
 * train checkpoint, through the shared training loop (mb_cli_loop.h),
 * validated on held-out clips (best = lowest held-out cross-entropy). One
 * process: a step's crops are drawn in order from one stream. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio_classify.h"

#define ACL_STEPS 2000
/* 32 crops at a peak rate of 1e-3: on the SC09 corpus (16 kHz, unseen
 * voices) two such runs of 2000 steps reached 0.957 and 0.980 test accuracy,
 * where 2e-3 at batch 16 sat at chance until the cosine brought the rate
 * near 1.2e-3, and a longer run at 2e-3 collapsed to one class
 * (bench/RESULTS.md, sessions 22 and 23) */
#define ACL_BATCH 32
#define ACL_SEQ 16000 /* a second at 16 kHz, SC09's clips */
#define ACL_LR 1e-3
#define ACL_VAL_CLIPS 512
#define ACL_AUGMENT_MAX 0.3 /* speeds of 0.7 to 1.3 already go past most voices (Kaldi uses 0.9 to 1.1) */

typedef struct {
    mb_cli_train t;
    const char *data, *val_data, *model;
    audio_set_opts so;
    int64_t val_every, val_clips;
    double augment; /* S of --augment; 0 off */
    int force, set_rate;
} acl_opts;

static void acl_train_usage(FILE *f, const mb_cli_train *d)
{
    fprintf(f,
            "usage: " AUDIO_PROG " classify train --data DIR --out CLS [--val-data DIR] [--model PRETRAINED] [options]\n"
            "\n"
            "Trains a classifier of audio clips: a SaShiMi U-Net of Mamba blocks (new, from the\n"
            "model flags, or the backbone of PRETRAINED, a '" AUDIO_PROG " train' model) with a\n"
            "classification head, the mean over positions of the final norm then a linear\n"
            "layer. The classes are the folders of DIR: the clips of class NAME are the audio\n"
            "files under DIR/NAME/ (any depth, any format libsndfile reads; files directly in\n"
            "DIR are not used). Each step takes --batch crops of --seq-len samples, the class\n"
            "of each drawn uniformly (classes balanced), then a clip of it; a clip shorter than\n"
            "--seq-len is padded before its start with silence. --augment perturbs each crop in\n"
            "speed, gain and time, anew each step (a short clip is then centred, not padded\n"
            "before), to stand in for voices the training clips lack. Held-out clips\n"
            "(--val-data, or else --val-frac of DIR's files) are classified every --val-every\n"
            "steps the way 'predict' does: each clip whole, in windows of --seq-len whose pooled\n"
            "states are averaged. The classifier of the lowest held-out loss is saved to CLS,\n"
            "with its class names in CLS.classes and its rate and quantizer in CLS.audio;\n"
            "checkpoints to resume beside it. At the end the held-out accuracy and the confusion\n"
            "matrix (rows: true class, columns: predicted) go to stdout. Progress on stderr;\n"
            "Ctrl-C or SIGTERM saves and stops, exit 130 (--resume goes on).\n"
            "\n"
            "data:\n"
            "  --data DIR         folder of class folders (required)\n"
            "  --val-data DIR     held-out folder of class folders (for speech: other\n"
            "                     speakers than DIR's, e.g. make_sc09.sh's valid/)\n"
            "  --val-frac F       without --val-data: the share of DIR's files held out, by a\n"
            "                     hash of their path (by file, not by speaker) [%g]\n"
            "  --val-clips N      at most N held-out clips a validation, evenly spread [%d]\n"
            "  --val-every N      validate every N steps [steps / 10]\n"
            "  --augment S        perturb each training crop: a speed in [1-S, 1+S] (linear\n"
            "                     resampling, pitch and tempo together), a gain in\n"
            "                     [1-2S, 1+2S], a shift by up to S * --seq-len samples\n"
            "                     (silence filling in); S <= %g, 0 off; like --lr, not kept\n"
            "                     by --resume: give it again [0]\n"
            "  --rate HZ          sample rate of a new model [%d] (PRETRAINED's otherwise)\n"
            "  --quant Q          mulaw or linear (8-bit), of a new model [mulaw]\n"
            "model:\n"
            "  --model PRETRAINED start from this " AUDIO_PROG " model (a fresh head; or a\n"
            "                     classifier with as many classes); else a new U-Net\n"
            "  --pool P,P         a new U-Net's pooling factors [4,4]\n"
            "  --pool-expand E    a new U-Net's width factor per stage [2]\n"
            "  --mlp              an MLP block after each Mamba block (new U-Net)\n"
            "  --force            overwrite an existing CLS without --resume\n",
            AUDIO_VAL_FRAC_DEFAULT, ACL_VAL_CLIPS, ACL_AUGMENT_MAX, AUDIO_RATE_DEFAULT);
    mb_cli_train_help(f, d);
    fprintf(f, "\n--seq-len must be a multiple of the pooling factors' product.\n"
               "Example (the spoken digits of data/audio/make_sc09.sh):\n"
               "  " AUDIO_PROG " classify train --data sc09/train --val-data sc09/valid --out digits-cls.safetensors \\\n"
               "      --device cuda --steps 4000\n");
}

static int acl_parse(acl_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    mb_cli_train_default(&o->t);
    mb_config_sashimi_default(&o->t.cfg);
    o->t.steps = ACL_STEPS;
    o->t.batch = ACL_BATCH;
    o->t.seq_len = ACL_SEQ;
    o->t.lr = ACL_LR;
    o->t.out = NULL;
    audio_set_opts_default(&o->so);
    o->val_every = -1;
    o->val_clips = ACL_VAL_CLIPS;
    const mb_cli_train defaults = o->t;
    enum { O_DATA = 256, O_VDATA, O_VFRAC, O_VCLIPS, O_VEVERY, O_MODEL, O_FORCE, O_AUGMENT };
    static const struct option own[] = {
        {"data", 1, 0, O_DATA}, {"val-data", 1, 0, O_VDATA}, {"val-frac", 1, 0, O_VFRAC},
        {"val-clips", 1, 0, O_VCLIPS}, {"val-every", 1, 0, O_VEVERY}, {"model", 1, 0, O_MODEL},
        {"augment", 1, 0, O_AUGMENT}, AUDIO_UNET_OPTIONS, {"force", 0, 0, O_FORCE}, {"help", 0, 0, 'h'},
        {0, 0, 0, 0}};
    struct option *opts = mb_cli_options_join(own);
    if (!opts) {
        mb_cli_error(AUDIO_PROG, "out of memory");
        return 1;
    }
    int c, bad = 0, set_vfrac = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(AUDIO_PROG, "classify train", argc, argv, opts)) != -1) {
        int r = mb_cli_train_option(&o->t, AUDIO_PROG, c, optarg);
        if (!r && (r = audio_cmd_unet_option(c, optarg, &o->t, &o->so)) == 2) o->set_rate = 1;
        if (r) {
            bad = r < 0;
            continue;
        }
        switch (c) {
        case O_DATA: o->data = optarg; break;
        case O_VDATA: o->val_data = optarg; break;
        case O_VFRAC:
            bad = mb_cli_parse_real(AUDIO_PROG, "--val-frac", optarg, 0.0, 0.9, &o->so.val_frac);
            set_vfrac = 1;
            break;
        case O_VCLIPS: bad = mb_cli_parse_int(AUDIO_PROG, "--val-clips", optarg, 1, 1 << 24, &o->val_clips); break;
        case O_VEVERY: bad = mb_cli_parse_int(AUDIO_PROG, "--val-every", optarg, 1, INT64_C(1) << 40, &o->val_every); break;
        case O_MODEL: o->model = optarg; break;
        case O_AUGMENT:
            bad = mb_cli_parse_real(AUDIO_PROG, "--augment", optarg, 0.0, ACL_AUGMENT_MAX, &o->augment);
            break;
        case O_FORCE: o->force = 1; break;
        case 'h':
            acl_train_usage(stdout, &defaults);
            free(opts);
            return 0;
        case MB_CLI_OPT_VERSION: free(opts); return 0;
        default: bad = 1;
        }
    }
    free(opts);
    if (!bad && optind < argc) {
        mb_cli_error(AUDIO_PROG, "classify train: unexpected argument '%s' (the data go after --data)", argv[optind]);
        bad = 1;
    }
    if (!bad && (!o->data || !o->t.out)) {
        mb_cli_error(AUDIO_PROG, "classify train needs --data DIR and --out CLS");
        bad = 1;
    }
    if (!bad && o->val_data && set_vfrac) {
        mb_cli_error(AUDIO_PROG, "--val-frac and --val-data are two ways of holding clips out: give one");
        bad = 1;
    }
    if (!bad && o->model && !o->t.resume && (o->t.set_model || o->set_rate)) {
        mb_cli_error(AUDIO_PROG, "the model flags and --rate/--quant make a new model: not with --model");
        bad = 1;
    }
    const int64_t P = audio_cmd_period(&o->t.cfg);
    if (!bad && !o->model && !o->t.resume && o->t.seq_len % P) {
        mb_cli_error(AUDIO_PROG, "--seq-len %lld is not a multiple of the pooling factors' product %lld",
                     (long long)o->t.seq_len, (long long)P);
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, ACL_TRY);
        return 2;
    }
    if (o->val_data) o->so.val_frac = 0;
    if (o->val_every < 0) o->val_every = o->t.steps >= 10 ? o->t.steps / 10 : 1;
    return -1;
}

/* What a run holds; the shared training loop calls back into it. */
typedef struct {
    const acl_opts *o;
    audio_set_opts so;  /* the model's rate and quantizer */
    mb_cli_names names;
    acl_lab tr, va;     /* va.set NULL: the validation clips are tr's held-out files */
    int64_t **tfiles;   /* per class: its training files */
    int64_t *ntf;
    int64_t *vfiles, nv; /* validation clips (files of the validation set) */
    int32_t *vcls;
    float *vprobs;      /* (nv, C) */
    mb_cli_cls_val val;
    mb_cli_ckpt ck;
    mb_outfile *classes, *metaf; /* written at the first save */
    mb_ctx *ctx;
    mb_model *m;
    mb_optim *opt;
    FILE *logf;
    int32_t *tok, *lab;
    /* --augment: the model's quantizer's class values, so that a crop is
     * decoded by lookup rather than per sample through expm1 */
    float dec[AUDIO_NCLASS];
} acl_run;

static void acl_run_free(acl_run *t)
{
    mb_outfile_discard(t->classes);
    mb_outfile_discard(t->metaf);
    if (t->logf) fclose(t->logf);
    for (int c = 0; t->tfiles && c < t->names.n; c++) free(t->tfiles[c]);
    free(t->tfiles), free(t->ntf), free(t->vfiles), free(t->vcls), free(t->vprobs);
    mb_cli_cls_val_free(&t->val);
    free(t->tok), free(t->lab);
    acl_lab_free(&t->tr);
    acl_lab_free(&t->va);
    mb_cli_names_free(&t->names);
    mb_cli_ckpt_free(&t->ck);
    mb_optim_free(t->opt);
    mb_model_free(t->m);
    mb_ctx_free(t->ctx);
}

/* Outputs first: CLS, CLS.classes or CLS.audio that cannot be written, an
 * existing CLS without --resume or --force, a --log that cannot be opened
 * fail before any work. */
static int acl_open_outputs(acl_run *t)
{
    const acl_opts *o = t->o;
    int log_failed = 0, bad = mb_cli_check_writable(AUDIO_PROG, o->t.out);
    static const char *const side[] = {".classes", ".audio", NULL};
    char what[4096];
    for (int i = 0; !bad && side[i]; i++) {
        char *p = mb_cli_path_suffix(o->t.out, side[i]);
        if (!p) {
            mb_cli_error(AUDIO_PROG, "out of memory");
            return -1;
        }
        bad = mb_cli_check_writable(AUDIO_PROG, p);
        free(p);
    }
    if (bad) return -1;
    if (!o->t.resume && !o->force && mb_cli_ckpt_exists(o->t.out, what, sizeof what)) {
        mb_cli_error(AUDIO_PROG, "%s exists: --resume continues it, --force starts over", what);
        return -1;
    }
    mb_cli_ckpt_init(&t->ck, AUDIO_PROG, &o->t);
    if (o->t.resume || o->force) mb_cli_ckpt_sweep(&t->ck, side);
    if (!(t->logf = mb_cli_log_open(AUDIO_PROG, o->t.log, &log_failed)) && log_failed) return -1;
    return 0;
}

static mb_model *acl_load_ckpt(void *ud, mb_ctx *ctx, const char *path)
{
    const acl_run *t = ud;
    return audio_cmd_load_model(ctx, path, t->names.n, 0);
}

/* The model's audio settings: a new model's flags, else PRETRAINED's (or
 * the resumed run's) MODEL.audio. */
static int acl_settings(acl_run *t)
{
    const acl_opts *o = t->o;
    t->so = o->so;
    if (!o->model && !o->t.resume) return 0;
    if (o->model && !o->t.resume) {
        /* a --model that is no mamba-audio model fails here, in one line,
         * not after its sidecar's warning and the clips' progress lines */
        mb_ctx *c = mb_ctx_create("cpu");
        mb_model *m = c ? audio_cmd_load_model(c, o->model, 0, 0) : NULL;
        if (!c) mb_cli_error(AUDIO_PROG, "%s", mb_error_last());
        mb_model_free(m);
        mb_ctx_free(c);
        if (!m) return -1;
    }
    audio_meta meta;
    if (audio_meta_read(o->t.resume ? o->t.out : o->model, &meta)) return -1;
    t->so.rate = meta.rate, t->so.quant = meta.quant;
    if (o->t.resume && meta.window > 0 && meta.window != o->t.seq_len) {
        mb_cli_error(AUDIO_PROG, "%s.audio: the run being resumed reads clips in windows of %lld samples: give "
                                 "--seq-len %lld", o->t.out, (long long)meta.window, (long long)meta.window);
        return -1;
    }
    return 0;
}

/* The labelled clips: training files per class, the validation clips. */
static int acl_open_data(acl_run *t)
{
    const acl_opts *o = t->o;
    if (acl_lab_load(o->data, &t->so, &t->names, 1, &t->tr)) return -1;
    const int C = t->names.n;
    if (C < 2) {
        mb_cli_error(AUDIO_PROG, "%s: one class folder (%s): a classifier needs two classes or more", o->data,
                     t->names.v[0]);
        return -1;
    }
    if (o->val_data) {
        audio_set_opts vs = t->so;
        vs.val_frac = 0;
        if (acl_lab_load(o->val_data, &vs, &t->names, 0, &t->va)) return -1;
    }
    t->tfiles = calloc((size_t)C, sizeof *t->tfiles);
    t->ntf = calloc((size_t)C, sizeof *t->ntf);
    const acl_lab *vl = t->va.set ? &t->va : &t->tr;
    const audio_split vsplit = t->va.set ? AUDIO_SPLIT_TRAIN : AUDIO_SPLIT_VAL;
    t->vfiles = malloc(sizeof *t->vfiles * (size_t)(vl->nfiles > 0 ? vl->nfiles : 1));
    t->vcls = malloc(sizeof *t->vcls * (size_t)(vl->nfiles > 0 ? vl->nfiles : 1));
    if (!t->tfiles || !t->ntf || !t->vfiles || !t->vcls) goto oom;
    for (int c = 0; c < C; c++)
        if (!(t->tfiles[c] = malloc(sizeof(int64_t) * (size_t)t->tr.nfiles))) goto oom;
    for (int64_t i = 0; i < t->tr.nfiles; i++) {
        const int c = t->tr.cls[i];
        if (c >= 0 && audio_set_split_of(t->tr.set, i) == AUDIO_SPLIT_TRAIN) t->tfiles[c][t->ntf[c]++] = i;
    }
    for (int c = 0; c < C; c++)
        if (t->ntf[c] == 0) {
            mb_cli_error(AUDIO_PROG, "%s/%s: no training clips (all held out)", o->data, t->names.v[c]);
            return -1;
        }
    /* every held-out clip, or val_clips of them evenly spread */
    int64_t all = 0;
    for (int64_t i = 0; i < vl->nfiles; i++) all += vl->cls[i] >= 0 && audio_set_split_of(vl->set, i) == vsplit;
    const int64_t keep = all < o->val_clips ? all : o->val_clips;
    int64_t k = 0;
    for (int64_t i = 0; i < vl->nfiles; i++) {
        if (vl->cls[i] < 0 || audio_set_split_of(vl->set, i) != vsplit) continue;
        /* the k-th of `all` is kept when it starts a new share of all / keep */
        if (k * keep / all != (k + 1) * keep / all || keep == all) {
            t->vfiles[t->nv] = i;
            t->vcls[t->nv++] = vl->cls[i];
        }
        k++;
    }
    if (t->nv == 0) mb_cli_warn(AUDIO_PROG, "no held-out clips: no validation (the last step's model is kept)");
    else if (!(t->vprobs = malloc(sizeof(float) * (size_t)(t->nv * C)))) goto oom;
    for (int c = 0; c < C; c++)
        fprintf(stderr, AUDIO_PROG ": class %d '%s': %lld training clips\n", c, t->names.v[c], (long long)t->ntf[c]);
    fprintf(stderr, AUDIO_PROG ": %lld held-out clips (%s) at %d Hz, %s\n", (long long)t->nv,
            t->va.set ? o->val_data : "--val-frac of the training folder", t->so.rate, audio_quant_name(t->so.quant));
    return 0;
oom:
    mb_cli_error(AUDIO_PROG, "out of memory");
    return -1;
}

/* The model (new, PRETRAINED with a head of C classes, or the run to
 * resume with its optimizer), CLS.classes (checked on --resume, else to be
 * written) and CLS.audio of a new run. */
static int acl_open_model(acl_run *t)
{
    const acl_opts *o = t->o;
    const int C = t->names.n;
    if (!(t->ctx = mb_cli_ctx(AUDIO_PROG, &o->t))) return -1;
    if (o->t.resume) {
        if (mb_cli_ckpt_resume(&t->ck, t->ctx, &o->t, acl_load_ckpt, t, &t->m, &t->opt)) return -1;
        if (o->t.set_model || o->set_rate)
            mb_cli_warn(AUDIO_PROG, "--resume: the model flags and --rate/--quant are ignored (the run's are kept)");
    } else if (o->model) {
        if (!(t->m = audio_cmd_load_model(t->ctx, o->model, C, (uint64_t)o->t.seed))) return -1;
    } else {
        mb_cli_train nt = o->t;
        nt.cfg.n_classes = C;
        if (!(t->m = mb_cli_model_new(AUDIO_PROG, t->ctx, &nt))) return -1;
    }
    const int64_t P = audio_cmd_period(mb_model_config(t->m));
    if (o->t.seq_len % P) {
        mb_cli_error(AUDIO_PROG, "--seq-len %lld is not a multiple of the model's pooling product %lld",
                     (long long)o->t.seq_len, (long long)P);
        return -1;
    }
    const int in_place = o->t.resume ? mb_cli_classes_check(AUDIO_PROG, o->t.out, &t->names) : 0;
    if (in_place < 0 || (!in_place && !(t->classes = mb_cli_classes_write(AUDIO_PROG, o->t.out, &t->names))))
        return -1;
    const audio_meta meta = {t->so.rate, t->so.quant, o->t.seq_len};
    if (!o->t.resume && !(t->metaf = audio_meta_write(o->t.out, &meta))) return -1;
    if (!t->opt && !(t->opt = mb_cli_optim(AUDIO_PROG, t->m, &o->t, NULL))) return -1;
    return 0;
}

static int acl_start(acl_run *t, int64_t step)
{
    const acl_opts *o = t->o;
    const int C = t->names.n;
    const int64_t B = o->t.batch, L = o->t.seq_len;
    if (mb_cli_cls_val_init(&t->val, AUDIO_PROG, C, "clips")) return -1;
    t->tok = malloc(sizeof(int32_t) * (size_t)(B * L));
    t->lab = malloc(sizeof(int32_t) * (size_t)B);
    if (!t->tok || !t->lab) {
        mb_cli_error(AUDIO_PROG, "out of memory for %lld samples a step", (long long)(B * L));
        return -1;
    }
    for (int k = 0; k < AUDIO_NCLASS; k++) t->dec[k] = audio_decode(t->so.quant, (uint8_t)k);
    const mb_config *mc = mb_model_config(t->m);
    fprintf(stderr, AUDIO_PROG ": %zu parameters (d_model %d, %d block%s a stage, pools", mb_model_num_params(t->m),
            mc->d_model, mc->n_layer, mc->n_layer == 1 ? "" : "s");
    for (int i = 0; i < mc->n_pool; i++) fprintf(stderr, "%s%d", i ? "," : " ", mc->pool[i]);
    fprintf(stderr, ", %s A, head of %d classes) on %s%s\n", mc->init == MB_INIT_S4D_LIN ? "complex" : "real",
            mc->n_classes, mb_ctx_name(t->ctx), step ? ", resuming" : "");
    if (t->logf) {
        fprintf(t->logf, "{\"event\": \"start\", \"step\": %lld, \"steps\": %lld, \"seq_len\": %lld, \"batch\": %lld, "
                         "\"params\": %zu, \"device\": ",
                (long long)step, (long long)o->t.steps, (long long)L, (long long)B, mb_model_num_params(t->m));
        mb_cli_json_str(t->logf, mb_ctx_name(t->ctx));
        fputs(", \"classes\": [", t->logf);
        for (int k = 0; k < C; k++) {
            if (k) fputs(", ", t->logf);
            mb_cli_json_str(t->logf, t->names.v[k]);
        }
        fprintf(t->logf, "], \"val_clips\": %lld, \"rate\": %d, \"augment\": %.6g}\n", (long long)t->nv,
                t->so.rate, o->augment);
    }
    return mb_cli_log_check(AUDIO_PROG, t->logf);
}

/* [0, 1) with 53 random bits, from the step's stream */
static double acl_uniform(uint64_t *rng) { return (double)(mb_cli_rng_next(rng) >> 11) * 0x1.0p-53; }

/* --augment S: one crop of clip x (len samples) as another voice might
 * have said it: read at a speed in [1-S, 1+S] by linear interpolation
 * (pitch and tempo change together, Kaldi's speed perturbation), scaled by
 * a gain in [1-2S, 1+2S] and shifted by up to S L samples either way, about
 * `centre` in x (the crop's middle, or a short clip's, which is then
 * centred, not left-padded); what falls outside x is silence. Its draws
 * follow the row's class, clip and start, so S = 0 (no call) leaves the
 * stream, and so the batch, as it was. */
static void acl_augment_row(const acl_run *t, uint64_t *rng, const uint8_t *x, int64_t len, int64_t centre,
                            int32_t *row)
{
    const double S = t->o->augment;
    const int64_t L = t->o->t.seq_len, K = (int64_t)(S * (double)L);
    const double speed = 1 - S + 2 * S * acl_uniform(rng);
    const double gain = 1 - 2 * S + 4 * S * acl_uniform(rng);
    const int64_t shift = (int64_t)mb_cli_rng_below(rng, (uint64_t)(2 * K + 1)) - K;
    for (int64_t i = 0; i < L; i++) {
        const double p = (double)(i - L / 2 - shift) * speed + (double)centre;
        double v = 0;
        if (p >= 0 && p <= (double)(len - 1)) {
            const int64_t k = (int64_t)p; /* floor: p >= 0 */
            const double a = t->dec[x[k]];
            v = k + 1 < len ? a + (p - (double)k) * ((double)t->dec[x[k + 1]] - a) : a;
        }
        v *= gain;
        row[i] = audio_encode(t->so.quant, (float)(v > 1 ? 1 : v < -1 ? -1 : v));
    }
}

/* A step: B crops, the class of each drawn uniformly, then a clip of that
 * class and a start in it (then, with --augment, its perturbation); a
 * function of (seed, step), so a resumed run sees what an uninterrupted one
 * would have. */
static int acl_step(void *ud, int64_t step, mb_cli_step *out)
{
    acl_run *t = ud;
    const int64_t B = t->o->t.batch, L = t->o->t.seq_len;
    const int augment = t->o->augment > 0;
    uint64_t rng = mb_cli_rng_step(t->o->t.seed, step);
    for (int64_t b = 0; b < B; b++) {
        const int c = (int)mb_cli_rng_below(&rng, (uint64_t)t->names.n);
        const int64_t f = t->tfiles[c][mb_cli_rng_below(&rng, (uint64_t)t->ntf[c])];
        const uint8_t *x = audio_set_data(t->tr.set, f);
        const int64_t len = audio_set_len(t->tr.set, f);
        int32_t *row = t->tok + b * L;
        if (len >= L) {
            const int64_t s = (int64_t)mb_cli_rng_below(&rng, (uint64_t)(len - L + 1));
            if (augment) acl_augment_row(t, &rng, x, len, s + L / 2, row);
            else
                for (int64_t i = 0; i < L; i++) row[i] = x[s + i];
        } else if (augment) {
            acl_augment_row(t, &rng, x, len, len / 2, row);
        } else {
            for (int64_t i = 0; i < L - len; i++) row[i] = AUDIO_SILENCE;
            for (int64_t i = 0; i < len; i++) row[L - len + i] = x[i];
        }
        t->lab[b] = c;
    }
    out->L = L, out->B = B, out->items = B;
    return mb_model_classify_backward(t->m, t->tok, t->lab, (int)B, (int)L, &out->loss) ? -1 : 0;
}

/* Every validation clip, read as predict reads it. */
static int acl_validate_clips(acl_run *t)
{
    const audio_set *vs = t->va.set ? t->va.set : t->tr.set;
    const int C = t->names.n;
    mb_cli_eval *ev = &t->val.ev;
    memset(ev->conf, 0, sizeof *ev->conf * (size_t)C * C);
    ev->n = ev->correct = 0;
    ev->loss = 0;
    if (acl_read_clips(t->m, vs, t->vfiles, t->nv, t->o->t.seq_len, "validation", NULL, t->vprobs)) return -1;
    for (int64_t i = 0; i < t->nv; i++) mb_cli_eval_add(ev, t->vcls[i], t->vprobs + i * C);
    t->val.have_val = 1;
    return 0;
}

static int acl_validate(void *ud, double *acc)
{
    acl_run *t = ud;
    const int rc = acl_validate_clips(t) ? 1 : 0;
    if (rc == 0) *acc = mb_cli_eval_acc(&t->val.ev);
    return mb_cli_dist_agree(rc);
}

/* CLS.classes and CLS.audio into place the first time a model is written
 * (a CLS never goes without them) */
static int acl_commit_side(acl_run *t)
{
    mb_outfile *a = t->classes, *b = t->metaf;
    t->classes = t->metaf = NULL;
    int bad = a && mb_cli_outfile_commit(AUDIO_PROG, a);
    if (bad) mb_outfile_discard(b);
    else bad = b && mb_cli_outfile_commit(AUDIO_PROG, b);
    return bad ? 1 : 0;
}

static int acl_save(void *ud)
{
    acl_run *t = ud;
    return acl_commit_side(t) || mb_cli_ckpt_save(&t->ck, t->m, t->opt) ? 1 : 0;
}

static int acl_save_best(void *ud)
{
    acl_run *t = ud;
    mb_cli_cls_val_keep_best(&t->val);
    return acl_commit_side(t) || mb_cli_ckpt_save_best(&t->ck, t->m) ? 1 : 0;
}

/* the best model is chosen by the mean held-out cross-entropy (the
 * accuracy moves in steps of a clip) */
static double acl_val_loss(void *ud, double acc)
{
    (void)acc;
    const acl_run *t = ud;
    return mb_cli_eval_loss(&t->val.ev);
}

static void acl_fields_train(void *ud, const mb_loss_stats *acc, FILE *f, int json)
{
    (void)ud;
    mb_cli_cls_fields_train(acc, f, json);
}

static void acl_fields_val(void *ud, double val, FILE *f, int json)
{
    (void)val;
    mb_cli_cls_fields_val(&((const acl_run *)ud)->val, f, json);
}

static int acl_run_steps(acl_run *t, int64_t step)
{
    const acl_opts *o = t->o;
    const double t0 = mb_cli_now();
    if (step >= o->t.steps) {
        fprintf(stderr, AUDIO_PROG ": %s is already at step %lld of %lld: validating only\n", o->t.out,
                (long long)step, (long long)o->t.steps);
        if (t->nv && acl_validate_clips(t)) return 1;
    }
    mb_cli_train_run run = {
        .prog = AUDIO_PROG, .opt = t->opt, .log = t->logf, .steps = o->t.steps, .last = o->t.steps,
        .val_every = t->nv ? o->val_every : 0, .save_every = o->t.save_every, .rate_unit = "clips/s",
        .key_rate = "clips_per_s", .rate_digits = 1, .ud = t, .train_step = acl_step, .validate = acl_validate,
        .save = acl_save, .fields_train = acl_fields_train, .fields_val = acl_fields_val, .step = step, .ck = &t->ck,
        .val_loss = acl_val_loss, .save_best = acl_save_best, .best_out = o->t.select_last ? NULL : o->t.out,
        .patience = o->t.patience};
    int rc = mb_cli_train_loop(&run);
    rc = mb_cli_train_finish(&run, rc, o->t.out);
    if (rc == 0)
        rc = mb_cli_cls_report(AUDIO_PROG, &t->val, &t->names, o->t.out, &t->ck.hist, o->t.select_last, run.step,
                               mb_cli_now() - t0);
    if (t->logf && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED))
        fprintf(t->logf, "{\"event\": \"end\", \"step\": %lld, \"val_acc\": %.6f, \"interrupted\": %s}\n",
                (long long)run.step, t->val.have_val ? mb_cli_eval_acc(&t->val.ev) : NAN,
                rc == MB_CLI_EXIT_INTERRUPTED ? "true" : "false");
    FILE *log = t->logf;
    t->logf = NULL;
    if (mb_cli_log_close(AUDIO_PROG, log) && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED)) rc = 1;
    return rc;
}

int acl_train(int argc, char **argv)
{
    acl_opts o;
    int rc = acl_parse(&o, argc, argv);
    if (rc >= 0) return rc;
    acl_run t = {.o = &o};
    rc = 1;
    if (acl_open_outputs(&t) == 0 && acl_settings(&t) == 0 && acl_open_data(&t) == 0 && acl_open_model(&t) == 0) {
        if (mb_cli_interrupted()) {
            mb_cli_error(AUDIO_PROG, "interrupted before the first step; nothing written");
            rc = MB_CLI_EXIT_INTERRUPTED;
        } else if (acl_start(&t, mb_optim_step_count(t.opt)) == 0) {
            rc = acl_run_steps(&t, mb_optim_step_count(t.opt));
        }
    }
    if (rc == 1 && mb_cli_interrupted()) rc = MB_CLI_EXIT_INTERRUPTED;
    acl_run_free(&t);
    return rc;
}
