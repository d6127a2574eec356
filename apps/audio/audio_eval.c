/* mamba-audio eval: a model's NLL in bits per sample on a folder of audio;
 * with --metrics, generated clips judged by a classifier
 * (audio_eval_metrics.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_classify.h"
#include "audio_metrics.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " AUDIO_PROG " eval --model MODEL --data DIR [options]\n"
            "       " AUDIO_PROG " eval --metrics --classifier CLS --generated DIR --reference DIR [options]\n"
            "\n"
            "Negative log-likelihood, in bits per sample, of every file in DIR under MODEL:\n"
            "the files are read as in training (mono, the model's rate and quantizer) and\n"
            "cut into windows of --seq-len samples, each scored without the context of the\n"
            "previous one (the start of a window is harder than the middle of a file).\n"
            "Prints the NLL and the unigram entropy of the same samples (the baseline); a\n"
            "model whose numbers overflow (an NLL not finite) is an error. Progress on\n"
            "stderr when reading or scoring takes long (a line every 5 s, with an ETA);\n"
            "Ctrl-C or SIGTERM stops it (exit 130, nothing reported).\n"
            "\n"
            "options:\n"
            "  --model MODEL      checkpoint from '" AUDIO_PROG " train' (required)\n"
            "  --data DIR         folder (or one file) of audio (required)\n"
            "  --seq-len N        window length (a multiple of the pooling product) [8192]\n"
            "  --batch N          windows a forward pass [4]\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            MB_CLI_PRECISION_HELP
            "\n"
            "--metrics: the audio files of the --generated folder judged by a classifier from\n"
            "'" AUDIO_PROG " classify train', as SaShiMi judges its SC09 samples, against the\n"
            "real clips of the --reference folder (SaShiMi's is the training set), each clip\n"
            "read as 'classify predict' reads it: its softmax probabilities p and pooled\n"
            "features f (the head's input). Lower is better for FID, AM and NDB:\n"
            "  FID  Frechet distance of Gaussians fitted to f of the two sets\n"
            "  IS   exp E KL(p || mean p) over the generated clips, the mean taken over\n"
            "       the other half of them (a seeded shuffle): ~ the number of classes when\n"
            "       each clip is clearly one class and the classes are balanced\n"
            "  mIS  exp E KL(p_i || p_j) over all pairs of generated clips (exact mean)\n"
            "  AM   KL(mean p of reference || mean p of generated) + E H(p) of generated\n"
            "  NDB  share of the --ndb-bins k-means bins of the reference features whose\n"
            "       shares of the two sets differ (two-proportion z-test, p < 0.05)\n"
            "The generated clips' predicted classes are listed too. Real test clips\n"
            "against the training clips give the figures to aim at. Differences from\n"
            "SaShiMi's script (its own classifier, numpy's shuffle, sklearn's k-means,\n"
            "a random sample of mIS pairs, IS's axis) are listed in apps/audio/audio_metrics.h.\n"
            "  --classifier CLS   the classifier (with CLS.classes, CLS.audio)\n"
            "  --generated DIR    generated clips (a folder or a file)\n"
            "  --reference DIR    real clips, or a .tsv from --save-reference\n"
            "  --save-reference F.tsv  also write the reference clips' p and f to F.tsv,\n"
            "                     for later runs to read as --reference F.tsv: the same\n"
            "                     figures without reading the clips again (an hour for\n"
            "                     12,280 clips on two CPU cores); refused under any\n"
            "                     other classifier\n"
            "  --json FILE        the figures as one JSON object too\n"
            "  --seed N           the IS shuffle's and NDB's k-means seed [0]\n"
            "  --ndb-bins K       NDB's bins [%d]\n",
            AUDIO_METRIC_NDB_BINS);
}

int audio_cmd_eval(int argc, char **argv)
{
    mb_cli_train t;
    mb_cli_train_default(&t);
    t.seq_len = 8192;
    t.batch = 4;
    const char *model = NULL, *data = NULL, *cls = NULL, *gen = NULL, *ref = NULL, *json = NULL, *save_ref = NULL;
    int metrics = 0;
    int64_t mseed = 0, bins = AUDIO_METRIC_NDB_BINS;
    enum { O_MODEL = 256, O_DATA, O_SEQ, O_BATCH, O_DEV, O_THR, O_PREC, O_MET, O_CLS, O_GEN, O_REF, O_JSON, O_MSEED,
           O_BINS, O_SAVEREF };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"data", 1, 0, O_DATA},     {"seq-len", 1, 0, O_SEQ},
        {"batch", 1, 0, O_BATCH}, {"device", 1, 0, O_DEV},    {"threads", 1, 0, O_THR},
        {"precision", 1, 0, O_PREC}, {"metrics", 0, 0, O_MET}, {"classifier", 1, 0, O_CLS},
        {"generated", 1, 0, O_GEN}, {"reference", 1, 0, O_REF}, {"json", 1, 0, O_JSON},
        {"seed", 1, 0, O_MSEED}, {"ndb-bins", 1, 0, O_BINS}, {"save-reference", 1, 0, O_SAVEREF}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(AUDIO_PROG, "eval", argc, argv, opts)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_DATA: data = optarg; break;
        case O_SEQ: bad = mb_cli_parse_int(AUDIO_PROG, "--seq-len", optarg, 2, INT64_C(1) << 30, &t.seq_len); break;
        case O_BATCH: bad = mb_cli_parse_int(AUDIO_PROG, "--batch", optarg, 1, 1 << 16, &t.batch); break;
        case O_DEV: t.device = optarg; break;
        case O_THR: bad = mb_cli_parse_int(AUDIO_PROG, "--threads", optarg, 0, 4096, &t.threads); break;
        case O_PREC: bad = mb_cli_parse_precision(AUDIO_PROG, optarg, &t); break;
        case O_MET: metrics = 1; break;
        case O_CLS: cls = optarg; break;
        case O_GEN: gen = optarg; break;
        case O_REF: ref = optarg; break;
        case O_JSON: json = optarg; break;
        case O_SAVEREF: save_ref = optarg; break;
        case O_MSEED: bad = mb_cli_parse_int(AUDIO_PROG, "--seed", optarg, 0, INT64_MAX, &mseed); break;
        case O_BINS: bad = mb_cli_parse_int(AUDIO_PROG, "--ndb-bins", optarg, 1, 1 << 20, &bins); break;
        case 'h': usage(stdout); return 0;
        case MB_CLI_OPT_VERSION: return 0;
        default: bad = 1;
        }
    }
    if (!bad && optind < argc) {
        mb_cli_error(AUDIO_PROG, "eval: unexpected argument '%s'", argv[optind]);
        bad = 1;
    }
    if (!bad && metrics && (model || data)) {
        mb_cli_error(AUDIO_PROG, "eval --metrics reads --classifier, --generated and --reference, not --model or --data");
        bad = 1;
    }
    if (!bad && metrics && (!cls || !gen || !ref)) {
        mb_cli_error(AUDIO_PROG, "eval --metrics needs --classifier, --generated and --reference");
        bad = 1;
    }
    if (!bad && !metrics && (cls || gen || ref || json || save_ref)) {
        mb_cli_error(AUDIO_PROG, "--classifier, --generated, --reference, --save-reference and --json go with --metrics");
        bad = 1;
    }
    if (!bad && save_ref) {
        const size_t k = strlen(save_ref);
        if (k < 4 || strcmp(save_ref + k - 4, ".tsv") != 0) {
            mb_cli_error(AUDIO_PROG, "--save-reference %s: the name must end in .tsv (how --reference knows it)", save_ref);
            bad = 1;
        } else if (ref && audio_eval_ref_saved(ref)) {
            mb_cli_error(AUDIO_PROG, "--save-reference saves a folder of clips, and --reference %s is a saved set", ref);
            bad = 1;
        }
    }
    if (!bad && !metrics && (!model || !data)) {
        mb_cli_error(AUDIO_PROG, "eval needs --model and --data (or --metrics)");
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "Try '" AUDIO_PROG " eval --help'.\n");
        return 2;
    }
    if (metrics) return audio_eval_metrics(&t, cls, gen, ref, save_ref, json, mseed, bins);
    int rc = 1;
    char err[512];
    audio_meta meta;
    audio_set *set = NULL;
    audio_window *w = NULL;
    int64_t nw = 0;
    mb_model *m = NULL;
    mb_ctx *ctx = mb_cli_ctx(AUDIO_PROG, &t);
    if (!ctx || !(m = audio_cmd_load_model(ctx, model, 0, 0)) || audio_meta_read(model, &meta)) goto done;
    const int64_t P = audio_cmd_period(mb_model_config(m));
    if (t.seq_len % P) {
        mb_cli_error(AUDIO_PROG, "--seq-len %lld is not a multiple of %s's pooling product %lld",
                     (long long)t.seq_len, model, (long long)P);
        goto done;
    }
    audio_set_opts so;
    audio_set_opts_default(&so);
    so.rate = meta.rate, so.quant = meta.quant, so.val_frac = 0; /* every file is scored */
    if (!(set = audio_cmd_load_set(data, &so))) goto done;
    if (audio_set_windows(set, AUDIO_SPLIT_TRAIN, t.seq_len + 1, 0, &w, &nw, err, sizeof err)) {
        mb_cli_error(AUDIO_PROG, "%s", err);
        goto done;
    }
    const double t0 = mb_cli_now();
    double bits;
    int64_t cnt;
    mb_cli_progress pg;
    mb_cli_progress_start(&pg);
    if (audio_cmd_nll(m, set, w, nw, t.batch, t.seq_len, &bits, &cnt, &pg)) goto done;
    if (!isfinite(bits)) {
        mb_cli_error(AUDIO_PROG, "%s: the NLL is not finite (%s): the model's numbers overflow", model,
                     mb_cli_nonfinite(bits));
        goto done;
    }
    int64_t h[AUDIO_NCLASS] = {0};
    audio_set_hist(set, AUDIO_SPLIT_TRAIN, h);
    printf("eval: %.4f bits/sample on %lld samples of %lld files (%.1f s at %d Hz, %s); unigram entropy of the "
           "same samples %.4f, uniform 8; %.1fs\n",
           bits, (long long)cnt, (long long)audio_set_nfiles(set), (double)cnt / meta.rate, meta.rate,
           audio_quant_name(meta.quant), audio_entropy_bits(h), mb_cli_now() - t0);
    rc = 0;
done:
    /* stopped by a signal (reading or scoring): its line was printed */
    if (rc == 1 && mb_cli_interrupted()) rc = MB_CLI_EXIT_INTERRUPTED;
    free(w);
    audio_set_free(set);
    mb_model_free(m);
    mb_ctx_free(ctx);
    return rc;
}
