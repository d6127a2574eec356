/* The SaShiMi U-Net of mamba-audio: training samples/s and generation speed
 * (recurrent steps: samples/s and real-time factor at 16 kHz) at batch 1
 * and 64, on the CPU or a GPU, through the public API only (what the tool
 * does). Prints markdown tables; no pass/fail.
 *   bench_audio [--device cpu|cuda] [--quick] [--step-only [--batch N]]
 * (--step-only: the sampled generation row alone at batch N, default 1, for
 * profilers)
 * Timing: host monotonic clock; a "step" row returns the logits to the host
 * every step and a "sample" call returns its draws, so the work is complete
 * when timed; the training step is timed over forward_backward + AdamW, and
 * the next call's upload waits for it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "mamba.h"

/* prec: the row's name for the context's precision (the caller sets it) */
static int train_row(mb_ctx *ctx, const mb_config *cfg, int B, int L, int reps, const char *prec)
{
    mb_model *m = mb_model_create(ctx, cfg, 1);
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    mb_optim *o = m ? mb_optim_create(m, &oc) : NULL;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * L), *tgt = malloc(sizeof(int32_t) * (size_t)B * L);
    int rc = -1;
    if (!m || !o || !tok || !tgt) goto done;
    uint64_t s = 7;
    for (size_t i = 0; i < (size_t)B * L; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        tok[i] = (int32_t)(s >> 56);
        tgt[i] = (int32_t)((s >> 48) & 255);
    }
    double t[16];
    for (int i = -1; i < reps; i++) {
        const double t0 = bench_now_s();
        mb_loss_stats st = {0};
        if (mb_model_forward_backward(m, tok, tgt, B, L, &st) || mb_optim_step(o, NULL, NULL)) goto done;
        /* the loss reached the host: the step is complete */
        if (i >= 0) t[i] = bench_now_s() - t0;
    }
    const double step = bench_median(t, reps);
    printf("| train %-5s | %6d | %7d | %9.2f ms | %12.0f samples/s |                |\n", prec, B, L, step * 1e3,
           (double)B * L / step);
    rc = 0;
done:
    if (rc) printf("| train %-5s | %6d | %7d | failed: %s |\n", prec, B, L, mb_error_last());
    free(tok), free(tgt);
    mb_optim_free(o);
    mb_model_free(m);
    return rc;
}

/* Generation at batch B (bf16: the context is in bf16 precision, for the
 * row's name): "step" is mb_model_step with the logits to the
 * host every sample and the argmax as the next input (what a program that
 * draws on its own does); "sample" is mb_model_sample, the draws on the
 * device (what mamba-audio generate does), in calls of 4096 draws. */
static int gen_row(mb_ctx *ctx, const mb_config *cfg, int B, int steps, int sample, int bf16)
{
    mb_model *m = mb_model_create(ctx, cfg, 1);
    mb_state *st = m ? mb_state_create(m, B) : NULL;
    const int Vp = mb_config_vocab_padded(cfg), chunk = 4096;
    float *lg = malloc(sizeof(float) * (size_t)B * Vp);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B), *out = malloc(sizeof(int32_t) * (size_t)B * chunk);
    const mb_sampler sp = {.temperature = 1.f, .top_p = 1.f, .seed = 1};
    const char *what = sample ? (bf16 ? "sample bf16" : "sample") : "step  ";
    int rc = -1;
    if (!m || !st || !lg || !tok || !out) goto done;
    for (int b = 0; b < B; b++) tok[b] = 128;
    /* warm-up: a few coarse periods (every stage has stepped, graphs are
     * captured), then the timing */
    for (int i = 0; i < 64; i++)
        if (sample ? mb_model_sample(m, st, tok, 1, &sp, out) : mb_model_step(m, st, tok, lg)) goto done;
    if (sample && mb_model_sample(m, st, tok, 64, &sp, out)) goto done;
    const double t0 = bench_now_s();
    for (int i = 0; i < steps;) {
        if (sample) {
            const int k = steps - i < chunk ? steps - i : chunk;
            if (mb_model_sample(m, st, tok, k, &sp, out)) goto done;
            for (int b = 0; b < B; b++) tok[b] = out[(size_t)b * k + k - 1];
            i += k;
            continue;
        }
        if (mb_model_step(m, st, tok, lg)) goto done;
        /* the argmax as the next input: a data dependency like sampling's */
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int k = 1; k < 256; k++) best = lg[b * Vp + k] > lg[b * Vp + best] ? k : best;
            tok[b] = best;
        }
        i++;
    }
    const double sec = bench_now_s() - t0, sps = steps / sec;
    printf("| %-11s | %6d |       1 | %9.3f ms | %12.0f samples/s | %8.3fx (%s) |\n", what, B, sec / steps * 1e3,
           sps * B, sps / 16000.0, sps >= 16000.0 ? "real time" : "slower");
    rc = 0;
done:
    if (rc) printf("| %-11s | %6d |       1 | failed: %s |\n", what, B, mb_error_last());
    free(lg), free(tok), free(out);
    mb_state_free(st);
    mb_model_free(m);
    return rc;
}

/* A recording fed to a state (mamba-audio generate --prompt): one
 * mb_model_forward_chunk of L samples a stream, without logits, from a
 * state on a period's edge (whole periods go through the parallel forward
 * from the state). */
static int prompt_row(mb_ctx *ctx, const mb_config *cfg, int B, int L)
{
    mb_model *m = mb_model_create(ctx, cfg, 1);
    mb_state *st = m ? mb_state_create(m, B) : NULL;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)B * L);
    int rc = -1;
    if (!m || !st || !tok) goto done;
    for (size_t i = 0; i < (size_t)B * L; i++) tok[i] = (int32_t)((i * 37 + i / 91) % 256);
    /* warm-up: the same call once (its buffers are made at the first) */
    if (mb_model_forward_chunk(m, st, tok, L, NULL)) goto done;
    const double t0 = bench_now_s();
    if (mb_model_forward_chunk(m, st, tok, L, NULL)) goto done;
    const double sec = bench_now_s() - t0, sps = L / sec;
    printf("| prompt      | %6d | %7d | %9.2f ms | %12.0f samples/s | %8.3fx (%s) |\n", B, L, sec * 1e3, sps * B,
           sps / 16000.0, sps >= 16000.0 ? "real time" : "slower");
    rc = 0;
done:
    if (rc) printf("| prompt      | %6d | %7d | failed: %s |\n", B, L, mb_error_last());
    free(tok);
    mb_state_free(st);
    mb_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    const char *dev = "cpu";
    int quick = 0, step_only = 0, batch = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) dev = argv[++i];
        else if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--step-only") == 0) step_only = 1;
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) batch = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_audio [--device cpu|cuda] [--quick] [--step-only [--batch N]]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    mb_ctx *ctx = mb_ctx_create(dev);
    if (!ctx) {
        printf("bench_audio: %s: %s\n", dev, mb_error_last());
        return strncmp(dev, "cuda", 4) == 0 ? 77 : 1;
    }
    mb_config cfg;
    mb_config_sashimi_default(&cfg);
    mb_model *probe = mb_model_create(ctx, &cfg, 1);
    printf("SaShiMi U-Net of mamba-audio (defaults: d_model %d, %d blocks a stage, pools %d,%d, expand %d, "
           "d_state %d, real A), %zu parameters, on %s, fp32\n",
           cfg.d_model, cfg.n_layer, cfg.pool[0], cfg.pool[1], cfg.pool_expand, cfg.d_state,
           probe ? mb_model_num_params(probe) : (size_t)0, mb_ctx_name(ctx));
    mb_model_free(probe);
    printf("train: forward + backward + AdamW, median of %d; step: one sample per stream (recurrent), "
           "real-time factor per stream at 16 kHz (fp32; on a GPU, training also in TF32 and bf16); prompt: L samples a stream fed to a state in one "
           "mb_model_forward_chunk\n\n", quick ? 3 : 5);
    printf("| what        |  batch |       L |      time    |             throughput |    per stream  |\n");
    printf("|-------------|--------|---------|--------------|------------------------|----------------|\n");
    const int on_gpu = strncmp(dev, "cuda", 4) == 0;
    int bad = 0;
    if (step_only) {
        if (batch < 1 || batch > 4096) {
            fprintf(stderr, "bench_audio: --batch must be in [1, 4096]\n");
            return 2;
        }
        bad |= gen_row(ctx, &cfg, batch, quick ? 100 : 16000, 1, 0) != 0;
    } else {
        const int tb = on_gpu ? 16 : 2, tl = on_gpu ? 16384 : 4096, treps = quick ? 3 : 5;
        bad |= train_row(ctx, &cfg, tb, tl, treps, "fp32") != 0;
        if (on_gpu) { /* the other precisions, then fp32 again for the rest */
            mb_ctx_set_tf32(ctx, 1);
            bad |= train_row(ctx, &cfg, tb, tl, treps, "tf32") != 0;
            mb_ctx_set_tf32(ctx, 0);
            bad |= mb_ctx_set_precision(ctx, MB_PREC_BF16) != 0 || train_row(ctx, &cfg, tb, tl, treps, "bf16") != 0;
            bad |= mb_ctx_set_precision(ctx, MB_PREC_FP32) != 0;
        }
        for (int sample = 0; sample < 2; sample++) {
            bad |= gen_row(ctx, &cfg, 1, quick ? 500 : (on_gpu ? 16000 : 4000), sample, 0) != 0;
            bad |= gen_row(ctx, &cfg, 64, quick ? 100 : (on_gpu ? 4000 : 400), sample, 0) != 0;
        }
        /* bf16 precision's sampling (mamba-audio generate --precision bf16):
         * the blocks' own ops a step, not the fused step kernels */
        bad |= mb_ctx_set_precision(ctx, MB_PREC_BF16) != 0;
        bad |= gen_row(ctx, &cfg, 1, quick ? 200 : (on_gpu ? 4000 : 1000), 1, 1) != 0;
        bad |= gen_row(ctx, &cfg, 64, quick ? 50 : (on_gpu ? 1000 : 100), 1, 1) != 0;
        bad |= mb_ctx_set_precision(ctx, MB_PREC_FP32) != 0;
        bad |= prompt_row(ctx, &cfg, 1, quick ? 4096 : (on_gpu ? 160000 : 32768)) != 0;
        bad |= prompt_row(ctx, &cfg, 64, quick ? 256 : (on_gpu ? 16384 : 1024)) != 0;
    }
    mb_ctx_free(ctx);
    printf("\nbench_audio: %s\n", bad ? "some rows failed" : "all rows ran");
    return 0;
}
