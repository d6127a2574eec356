/* mamba-audio generate: autoregressive audio from a trained model in
 * recurrent step mode (constant time and memory per sample; the pooled
 * stages step at their own rate), several clips at once, optionally
 * continuing a recording. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "audio_cmd.h"

#define GEN_CHUNK 4096 /* the most samples a clip between progress checks */
#define GEN_CHUNK_S 0.25 /* and the time a call aims at: Ctrl-C is noticed between calls */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " AUDIO_PROG " generate --model MODEL --out OUT.wav [options]\n"
            "\n"
            "Generates audio one sample at a time with a model from '" AUDIO_PROG " train', in\n"
            "recurrent step mode: constant time and memory per sample. --n clips are made at\n"
            "once (a batch); each is written as a 16-bit PCM WAV at the model's rate: OUT.wav\n"
            "for one clip, OUT_1.wav .. OUT_N.wav for several. With --prompt, each clip\n"
            "starts with that recording (at the model's rate, quantized as in training) and\n"
            "continues it; the written file holds the prompt and the continuation. With\n"
            "--device cuda the draws are made on the GPU too: no round trip per sample.\n"
            "Every clip's log-likelihood under the model (temperature 1, no top-p: the\n"
            "model's own probability of the drawn samples, from a forward pass over the\n"
            "clip, the prompt not counted) goes to a TSV, OUT.tsv by default:\n"
            "  file  clip  loglik_nats  bits_per_sample  rank  kept\n"
            "(rank 1 = the least likely clip). SaShiMi's SC09 samples are judged after a\n"
            "likelihood rejection: --keep-band LO,HI draws the --n clips and writes only those\n"
            "whose likelihood rank lies in the band (0.1,0.9: the 10%% least likely and the\n"
            "10%% most likely are dropped), numbered 1..K in draw order; the TSV lists all.\n"
            "A model whose numbers overflow (logits not finite) is an error, with nothing\n"
            "written. Progress on stderr when it takes long; Ctrl-C or SIGTERM stops it\n"
            "(exit 130, nothing written: the files that were there stay as they were).\n"
            "\n"
            "options:\n"
            "  --model MODEL      checkpoint from '" AUDIO_PROG " train' (required)\n"
            "  --out OUT.wav      output path (required)\n"
            "  --n N              clips generated at once [1]\n"
            "  --seconds S        length of each continuation [2]\n"
            "  --temperature T    divides the logits; lower is more conservative [1]\n"
            "  --top-p P          nucleus sampling: only the most likely classes holding P\n"
            "                     of the probability [1 = off]\n"
            "  --prompt WAV       continue this recording (any format libsndfile reads)\n"
            "  --keep-band LO,HI  likelihood rejection: keep the clips ranked in [LO, HI) of\n"
            "                     all by log-likelihood, 0 <= LO < HI <= 1 [0,1: all]\n"
            "  --scores TSV       where the log-likelihoods go [OUT.tsv]\n"
            "  --seed N           seed of the sampling [1]: the same seed, model and options give\n"
            "                     the same clips on the same device\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            MB_CLI_PRECISION_HELP
            "                     (bf16 steps through each block's own ops: on a GPU\n"
            "                     about half fp32's samples/s)\n"
            "\n"
            "Example (writes digit_1.wav .. digit_4.wav and digit.tsv):\n"
            "  " AUDIO_PROG " generate --model digits.safetensors --n 4 --seconds 1 --out digit.wav\n"
            "SC09-style (512 clips of the middle likelihood band out of 640):\n"
            "  " AUDIO_PROG " generate --model sc09.safetensors --device cuda --n 640 --seconds 1 \\\n"
            "      --keep-band 0.1,0.9 --out gen/digit.wav --scores digit-scores.tsv\n");
}

/* the length of OUT's stem (OUT without its extension) */
static size_t path_stem(const char *out)
{
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    return (dot && (!slash || dot > slash)) ? (size_t)(dot - out) : strlen(out);
}

/* OUT.wav -> OUT_3.wav (before the extension, or at the end) */
static char *clip_path(const char *out, int i)
{
    const size_t n = strlen(out), stem = path_stem(out);
    char *p = malloc(n + 24);
    if (p) snprintf(p, n + 24, "%.*s_%d%s", (int)stem, out, i, out + stem);
    return p;
}

/* "LO,HI" with 0 <= LO < HI <= 1 */
static int parse_band(const char *s, double band[2])
{
    char *end;
    band[0] = strtod(s, &end);
    if (end == s || *end != ',') return -1;
    const char *t = end + 1;
    band[1] = strtod(t, &end);
    if (end == t || *end) return -1;
    return band[0] >= 0 && band[0] < band[1] && band[1] <= 1 ? 0 : -1;
}

/* Each clip's log-likelihood under the model, in nats, of its samples from
 * `from` on (the prompt's are inputs only): the clips fed again through
 * the parallel forward from a fresh state, in chunks of whole pooling
 * periods, the log-probabilities of the drawn samples summed per row. */
static int score_clips(mb_model *m, mb_state *st, const uint8_t *cls, int64_t n, int64_t total, int64_t from,
                       int64_t period, double *ll)
{
    int64_t k = 65536 / n / period * period;
    k = k < period ? period : k;
    k = k < total ? k : total;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)(n * k)), *tgt = malloc(sizeof(int32_t) * (size_t)(n * k));
    double *lp = malloc(sizeof(double) * (size_t)(n * k));
    int rc = -1;
    if (!tok || !tgt || !lp) {
        mb_cli_error(AUDIO_PROG, "out of memory scoring %lld clips", (long long)n);
        goto done;
    }
    mb_state_reset(st);
    for (int64_t b = 0; b < n; b++) ll[b] = 0;
    for (int64_t s = 0; s < total; s += k) {
        const int64_t c = total - s < k ? total - s : k;
        for (int64_t b = 0; b < n; b++)
            for (int64_t i = 0; i < c; i++) {
                const int64_t t = s + i;
                tok[b * c + i] = t ? cls[b * total + t - 1] : AUDIO_SILENCE;
                tgt[b * c + i] = t >= from ? cls[b * total + t] : MB_IGNORE_INDEX;
            }
        mb_chunk_out co = {.targets = tgt, .logprob = lp};
        if (mb_model_forward_chunk_ex(m, st, tok, (int)c, &co)) {
            mb_cli_error(AUDIO_PROG, "scoring the clips: %s", mb_error_last());
            goto done;
        }
        for (int64_t b = 0; b < n; b++)
            for (int64_t i = 0; i < c; i++) ll[b] += lp[b * c + i];
    }
    rc = 0;
done:
    free(tok), free(tgt), free(lp);
    return rc;
}

/* a clip's log-likelihood, for ranking: ties go to the earlier draw */
typedef struct {
    double ll;
    int64_t clip;
} gen_score;

static int gen_score_cmp(const void *pa, const void *pb)
{
    const gen_score *a = pa, *b = pb;
    if (a->ll != b->ll) return a->ll < b->ll ? -1 : 1;
    return (a->clip > b->clip) - (a->clip < b->clip);
}

int audio_cmd_generate(int argc, char **argv)
{
    mb_cli_train t;
    mb_cli_train_default(&t);
    const char *model = NULL, *out = NULL, *prompt = NULL, *scores = NULL;
    int64_t n = 1;
    double seconds = 2, temp = 1, top_p = 1, band[2] = {0, 1};
    enum { O_MODEL = 256, O_OUT, O_N, O_SEC, O_TEMP, O_TOPP, O_PROMPT, O_SEED, O_DEV, O_THR, O_PREC, O_BAND, O_SCORES };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"out", 1, 0, O_OUT}, {"n", 1, 0, O_N}, {"seconds", 1, 0, O_SEC},
        {"temperature", 1, 0, O_TEMP}, {"top-p", 1, 0, O_TOPP}, {"prompt", 1, 0, O_PROMPT},
        {"seed", 1, 0, O_SEED}, {"device", 1, 0, O_DEV}, {"threads", 1, 0, O_THR}, {"precision", 1, 0, O_PREC},
        {"keep-band", 1, 0, O_BAND}, {"scores", 1, 0, O_SCORES}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(AUDIO_PROG, "generate", argc, argv, opts)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_OUT: out = optarg; break;
        case O_N: bad = mb_cli_parse_int(AUDIO_PROG, "--n", optarg, 1, 4096, &n); break;
        case O_SEC: bad = mb_cli_parse_real(AUDIO_PROG, "--seconds", optarg, 0.0, 86400.0, &seconds); break;
        case O_TEMP: bad = mb_cli_parse_real(AUDIO_PROG, "--temperature", optarg, 1e-3, 100.0, &temp); break;
        case O_TOPP: bad = mb_cli_parse_real(AUDIO_PROG, "--top-p", optarg, 1e-6, 1.0, &top_p); break;
        case O_PROMPT: prompt = optarg; break;
        case O_SEED: bad = mb_cli_parse_int(AUDIO_PROG, "--seed", optarg, 0, INT64_MAX, &t.seed); break;
        case O_DEV: t.device = optarg; break;
        case O_THR: bad = mb_cli_parse_int(AUDIO_PROG, "--threads", optarg, 0, 4096, &t.threads); break;
        case O_PREC: bad = mb_cli_parse_precision(AUDIO_PROG, optarg, &t); break;
        case O_BAND:
            if (parse_band(optarg, band)) {
                mb_cli_error(AUDIO_PROG, "--keep-band expects LO,HI with 0 <= LO < HI <= 1, got '%s'", optarg);
                bad = 1;
            }
            break;
        case O_SCORES: scores = optarg; break;
        case 'h': usage(stdout); return 0;
        case MB_CLI_OPT_VERSION: return 0;
        default: bad = 1;
        }
    }
    if (!bad && optind < argc) {
        mb_cli_error(AUDIO_PROG, "generate: unexpected argument '%s'", argv[optind]);
        bad = 1;
    }
    if (!bad && (!model || !out)) {
        mb_cli_error(AUDIO_PROG, "generate needs --model and --out");
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, "Try '" AUDIO_PROG " generate --help'.\n");
        return 2;
    }

    int rc = 1;
    char err[512];
    audio_meta meta;
    mb_ctx *ctx = NULL;
    mb_model *m = NULL;
    mb_state *st = NULL;
    float *pf = NULL, *wav = NULL;
    uint8_t *pc = NULL, *cls = NULL;
    int32_t *tok = NULL, *drawn = NULL;
    double *ll = NULL;
    gen_score *by = NULL; /* the clips, least likely first */
    int64_t *rank = NULL; /* each clip's place in `by` */
    char *scores_path = NULL;
    mb_outfile *sf = NULL;
    /* the clips kept: likelihood ranks [lo, hi) of n */
    const int64_t lo = (int64_t)floor(band[0] * (double)n + 1e-9), hi = (int64_t)ceil(band[1] * (double)n - 1e-9);
    const int64_t K = hi - lo;
    char **paths = calloc((size_t)K, sizeof(char *));
    int64_t np = 0;
    if (!paths) goto oom;
    /* every output path must be writable before any work */
    for (int64_t i = 0; i < K; i++) {
        paths[i] = n == 1 ? strdup(out) : clip_path(out, (int)i + 1);
        if (!paths[i]) goto oom;
        if (mb_cli_check_writable(AUDIO_PROG, paths[i])) goto done;
    }
    if (scores) scores_path = strdup(scores);
    else if ((scores_path = malloc(strlen(out) + 8)))
        snprintf(scores_path, strlen(out) + 8, "%.*s.tsv", (int)path_stem(out), out);
    if (!scores_path) goto oom;
    for (int64_t i = 0; i < K; i++)
        if (strcmp(paths[i], scores_path) == 0) {
            mb_cli_error(AUDIO_PROG, "%s: the scores TSV and a clip would be the same file (give --scores)",
                         scores_path);
            goto done;
        }
    if (mb_cli_check_writable(AUDIO_PROG, scores_path)) goto done;
    if (!(ctx = mb_cli_ctx(AUDIO_PROG, &t)) || !(m = audio_cmd_load_model(ctx, model, 0, 0)) || audio_meta_read(model, &meta))
        goto done;
    if (prompt) {
        if (audio_read(prompt, meta.rate, &pf, &np, NULL, err, sizeof err)) {
            mb_cli_error(AUDIO_PROG, "%s", err);
            goto done;
        }
        if (!(pc = malloc((size_t)np + 1))) goto oom;
        audio_encode_buf(meta.quant, pf, np, pc);
    }
    const int64_t gen = (int64_t)llround(seconds * meta.rate), total = np + gen;
    if (gen < 1) {
        /* checked here, where the model's rate is known */
        mb_cli_error(AUDIO_PROG, "--seconds %g draws no sample at the model's %d Hz", seconds, meta.rate);
        rc = 2;
        goto done;
    }
    if (!(st = mb_state_create(m, (int)n))) {
        mb_cli_error(AUDIO_PROG, "recurrent state: %s", mb_error_last());
        goto done;
    }
    /* calls that end on a pooling period's edge (one that ends inside a
     * period makes the next start with single steps), sized to take about GEN_CHUNK_S:
     * thousands of samples on a GPU, far fewer for many clips on a CPU */
    const int64_t period = audio_cmd_period(mb_model_config(m));
    const int64_t most = period > GEN_CHUNK ? period : GEN_CHUNK / period * period;
    int64_t chunk = period;
    if (!(tok = malloc(sizeof(int32_t) * (size_t)n)) || !(drawn = malloc(sizeof(int32_t) * (size_t)(n * most))) ||
        !(cls = malloc((size_t)(n * (total > 0 ? total : 1)))) ||
        !(wav = malloc(sizeof(float) * (size_t)(total > 0 ? total : 1))))
        goto oom;
    const mb_sampler sp = {.temperature = (float)temp, .top_p = (float)top_p, .seed = (uint64_t)t.seed};
    mb_cli_catch_interrupt();
    const double t0 = mb_cli_now();
    mb_cli_progress pg;
    mb_cli_progress_start(&pg);
    /* the first input is silence: what precedes a recording; then the
     * prompt (by mb_model_forward_chunk: whole pooling periods at once,
     * without logits), then the draws, on the device where the model is,
     * in calls between which progress is printed and Ctrl-C is noticed */
    for (int64_t b = 0; b < n; b++) tok[b] = AUDIO_SILENCE;
    int64_t s = 0;
    while (s < total && !mb_cli_interrupted()) {
        /* calls end on a period's edge (s counts the steps taken) */
        const int64_t left = s < np ? np - s : total - s, want = chunk - s % period;
        const int k = (int)(left < want ? left : want);
        const double tc = mb_cli_now();
        if (s < np) {
            /* prompt sample i is the input of position i + 1 */
            for (int64_t b = 0; b < n; b++)
                for (int i = 0; i < k; i++) {
                    drawn[b * k + i] = s + i ? pc[s + i - 1] : AUDIO_SILENCE;
                    cls[b * total + s + i] = pc[s + i];
                }
            if (mb_model_forward_chunk(m, st, drawn, k, NULL)) {
                mb_cli_lib_error(AUDIO_PROG, model);
                goto done;
            }
            if (s + k == np)
                for (int64_t b = 0; b < n; b++) tok[b] = pc[np - 1];
        } else {
            if (mb_model_sample(m, st, tok, k, &sp, drawn)) {
                mb_cli_lib_error(AUDIO_PROG, model);
                goto done;
            }
            for (int64_t b = 0; b < n; b++) {
                for (int i = 0; i < k; i++) cls[b * total + s + i] = (uint8_t)drawn[b * k + i];
                tok[b] = drawn[b * k + k - 1];
            }
        }
        s += k;
        const double now = mb_cli_now();
        if (now > tc) {
            const double fit = GEN_CHUNK_S / ((now - tc) / k);
            chunk = fit < (double)most ? (int64_t)fit / period * period : most;
            chunk = chunk < period ? period : chunk;
        }
        if (mb_cli_progress_due(&pg)) {
            const double sps = now > t0 ? (double)s / (now - t0) : 0.0;
            char eta[48];
            mb_cli_progress_eta(&pg, (double)s, (double)total, eta, sizeof eta);
            fprintf(stderr, "sample %lld/%lld  %.0f samples/s a clip (x%lld clips), %.3fx real time  %s\n",
                    (long long)s, (long long)total, sps, (long long)n, sps / meta.rate, eta);
        }
    }
    if (mb_cli_interrupted()) {
        mb_cli_error(AUDIO_PROG, "interrupted at sample %lld of %lld; nothing written", (long long)s, (long long)total);
        rc = MB_CLI_EXIT_INTERRUPTED;
        goto done;
    }
    const double secs = mb_cli_now() - t0;
    if (total > 0 && mb_cli_check_finite_step(AUDIO_PROG, m, st, tok, (int)n, model)) goto done;
    /* the log-likelihoods, their ranks, the clips of the band */
    if (!(ll = calloc((size_t)n, sizeof *ll)) || !(by = malloc(sizeof *by * (size_t)n)) ||
        !(rank = malloc(sizeof *rank * (size_t)n)))
        goto oom;
    if (total > 0 && score_clips(m, st, cls, n, total, np, period, ll)) goto done;
    for (int64_t b = 0; b < n; b++) by[b] = (gen_score){ll[b], b};
    qsort(by, (size_t)n, sizeof *by, gen_score_cmp);
    for (int64_t r = 0; r < n; r++) rank[by[r].clip] = r;
    if (!(sf = mb_cli_outfile_open(AUDIO_PROG, scores_path))) goto done;
    FILE *sfp = mb_outfile_fp(sf);
    int wbad = fprintf(sfp, "file\tclip\tloglik_nats\tbits_per_sample\trank\tkept\n") < 0;
    const int64_t counted = total - np;
    for (int64_t b = 0, k = 0; b < n; b++) {
        const int keep = rank[b] >= lo && rank[b] < hi;
        if (keep) {
            audio_decode_buf(meta.quant, cls + b * total, total, wav);
            if (audio_write_wav(paths[k], wav, total, meta.rate, err, sizeof err)) {
                mb_cli_error(AUDIO_PROG, "%s", err);
                goto done;
            }
        }
        if (!wbad)
            wbad = fprintf(sfp, "%s\t%lld\t%.6f\t%.6f\t%lld\t%d\n", keep ? paths[k] : "-", (long long)b + 1, ll[b],
                           counted > 0 ? -ll[b] / ((double)counted * MB_CLI_LN2) : 0.0, (long long)rank[b] + 1,
                           keep) < 0;
        k += keep;
    }
    if (wbad) {
        mb_cli_write_error(AUDIO_PROG, mb_outfile_path(sf));
        goto done;
    }
    const int src = mb_cli_outfile_commit(AUDIO_PROG, sf);
    sf = NULL;
    if (src) goto done;
    const double sps = secs > 0 ? (double)total / secs : 0;
    printf("generate: %lld clip%s of %.2f s at %d Hz (%s), %.0f samples/s a clip, %.0f in all, %.3fx real time "
           "a clip: %s%s\n",
           (long long)n, n > 1 ? "s" : "", (double)total / meta.rate, meta.rate, audio_quant_name(meta.quant), sps,
           sps * (double)n, sps / meta.rate, paths[0], K > 1 ? " ..." : "");
    if (counted > 0) {
        const double per = -1.0 / ((double)counted * MB_CLI_LN2); /* nats a clip -> bits a sample */
        printf("generate: log-likelihood %.4f bits/sample (median; from %.4f to %.4f) in %s", per * by[n / 2].ll,
               per * by[n - 1].ll, per * by[0].ll, scores_path);
        if (K < n) printf("; kept the %lld clips of likelihood ranks %lld..%lld of %lld", (long long)K,
                          (long long)lo + 1, (long long)hi, (long long)n);
        printf("\n");
    }
    rc = 0;
    goto done;
oom:
    mb_cli_error(AUDIO_PROG, "out of memory");
done:
    for (int64_t i = 0; paths && i < K; i++) free(paths[i]);
    free(paths);
    mb_outfile_discard(sf);
    free(scores_path), free(ll), free(by), free(rank);
    free(pf), free(pc), free(cls), free(tok), free(drawn), free(wav);
    mb_state_free(st);
    mb_model_free(m);
    mb_ctx_free(ctx);
    return rc;
}
