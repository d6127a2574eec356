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
            "  --seed N           seed of the sampling [1]: the same seed, model and options give\n"
            "                     the same clips on the same device\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            "\n"
            "Example (writes digit_1.wav .. digit_4.wav):\n"
            "  " AUDIO_PROG " generate --model digits.safetensors --n 4 --seconds 1 --out digit.wav\n");
}

/* OUT.wav -> OUT_3.wav (before the extension, or at the end) */
static char *clip_path(const char *out, int i)
{
    const size_t n = strlen(out);
    const char *dot = strrchr(out, '.'), *slash = strrchr(out, '/');
    const size_t stem = (dot && (!slash || dot > slash)) ? (size_t)(dot - out) : n;
    char *p = malloc(n + 24);
    if (p) snprintf(p, n + 24, "%.*s_%d%s", (int)stem, out, i, out + stem);
    return p;
}

int audio_cmd_generate(int argc, char **argv)
{
    mb_cli_train t;
    mb_cli_train_default(&t);
    const char *model = NULL, *out = NULL, *prompt = NULL;
    int64_t n = 1;
    double seconds = 2, temp = 1, top_p = 1;
    enum { O_MODEL = 256, O_OUT, O_N, O_SEC, O_TEMP, O_TOPP, O_PROMPT, O_SEED, O_DEV, O_THR };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL}, {"out", 1, 0, O_OUT}, {"n", 1, 0, O_N}, {"seconds", 1, 0, O_SEC},
        {"temperature", 1, 0, O_TEMP}, {"top-p", 1, 0, O_TOPP}, {"prompt", 1, 0, O_PROMPT},
        {"seed", 1, 0, O_SEED}, {"device", 1, 0, O_DEV}, {"threads", 1, 0, O_THR},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
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
    char **paths = calloc((size_t)n, sizeof(char *));
    int64_t np = 0;
    if (!paths) goto oom;
    /* every output path must be writable before any work */
    for (int64_t i = 0; i < n; i++) {
        paths[i] = n == 1 ? strdup(out) : clip_path(out, (int)i + 1);
        if (!paths[i]) goto oom;
        if (mb_cli_check_writable(AUDIO_PROG, paths[i])) goto done;
    }
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
    if (!(st = mb_state_create(m, (int)n))) {
        mb_cli_error(AUDIO_PROG, "recurrent state: %s", mb_error_last());
        goto done;
    }
    /* calls that end on a pooling period's edge (one that ends inside a
     * period makes the next start with single steps), sized to take about GEN_CHUNK_S:
     * thousands of samples on a GPU, far fewer for many clips on a CPU */
    const mb_config *mc = mb_model_config(m);
    int64_t period = 1;
    for (int i = 0; i < mc->n_pool; i++) period *= mc->pool[i];
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
    for (int64_t b = 0; b < n; b++) {
        audio_decode_buf(meta.quant, cls + b * total, total, wav);
        if (audio_write_wav(paths[b], wav, total, meta.rate, err, sizeof err)) {
            mb_cli_error(AUDIO_PROG, "%s", err);
            goto done;
        }
    }
    const double sps = secs > 0 ? (double)total / secs : 0;
    printf("generate: %lld clip%s of %.2f s at %d Hz (%s), %.0f samples/s a clip, %.0f in all, %.3fx real time "
           "a clip: %s%s\n",
           (long long)n, n > 1 ? "s" : "", (double)total / meta.rate, meta.rate, audio_quant_name(meta.quant), sps,
           sps * (double)n, sps / meta.rate, paths[0], n > 1 ? " ..." : "");
    rc = 0;
    goto done;
oom:
    mb_cli_error(AUDIO_PROG, "out of memory");
done:
    for (int64_t i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
    free(pf), free(pc), free(cls), free(tok), free(drawn), free(wav);
    mb_state_free(st);
    mb_model_free(m);
    mb_ctx_free(ctx);
    return rc;
}
