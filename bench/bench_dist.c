/* Data-parallel training speed, one process per device, on synthetic tokens
 * (each rank its own). Two models: the DNA model of DESIGN.md (d_model 256,
 * 8 layers, vocab 16, real A, per-layer recompute; bench_gpu's training
 * table), and mamba-audio's U-Net at `mamba-audio train`'s defaults
 * (mb_config_sashimi_default, windows of 8192 samples, 4 a rank).
 *
 *   mpirun -np N bench_dist [--model dna|unet] [--device cpu|cuda] [--seq-len L]
 *                           [--batch B] [--steps S] [--tf32]
 *     --model    [dna]; --device cuda: cuda:LOCAL_RANK [cuda]
 *     --seq-len  [dna 131072 = 2^17, unet 8192]
 *     --batch    sequences a rank [dna 1, unet 4]
 *     --steps    timed steps after 1 warm-up [5]
 *
 * Rank 0 prints one markdown row (ranks, device, B a rank, L, step ms,
 * forward + backward ms, gradient all-reduce ms and its share of the step,
 * tokens/s in all and a device) and a line "bench_dist: ranks=N tok_s=X
 * ..." for scripts (scripts/gpu_dist.sh divides two of them for the scaling
 * efficiency). Times are medians over the steps of rank 0; every step
 * starts at a barrier, so a step is as long as the slowest rank's. The
 * all-reduce is timed inside mb_optim_step with device events around the
 * NCCL call (host clock on the CPU), so it includes the wait for the other
 * ranks to arrive: what the reduce costs the step. Runs as one process too
 * (no reduce), which is the baseline. Exit 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "train/dist.h"
#include "train/optim.h"
#include "bench_util.h"

static mb_dist *g_dist;

static void fail(const char *what)
{
    fprintf(stderr, "bench_dist: rank %d: %s: %s\n", mb_dist_rank(g_dist), what, mb_error_last());
    mb_dist_abort(g_dist, 1); /* the other ranks may be waiting in a collective */
}

/* the device's queue drained, so the host clock reads finished work */
static void dev_sync(mb_ctx *ctx)
{
#ifdef MB_HAVE_CUDA
    if (ctx->kind == MB_DEV_CUDA && mb_cuda_sync(ctx)) fail("cuda sync");
#else
    (void)ctx;
#endif
}

static int arg_int(const char *s, int lo, int hi)
{
    char *end;
    const long v = strtol(s, &end, 10);
    if (*end || v < lo || v > hi) {
        fprintf(stderr, "bench_dist: '%s' is not in [%d, %d]\n", s, lo, hi);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    const char *device = "cuda", *model = "dna";
    int L = 0, B = 0, steps = 5, tf32 = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) device = argv[++i];
        else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) model = argv[++i];
        else if (strcmp(argv[i], "--seq-len") == 0 && i + 1 < argc) L = arg_int(argv[++i], 2, 1 << 24);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc) B = arg_int(argv[++i], 1, 1024);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = arg_int(argv[++i], 1, 64);
        else if (strcmp(argv[i], "--tf32") == 0) tf32 = 1;
        else {
            fprintf(stderr, "usage: [mpirun -np N] bench_dist [--model dna|unet] [--device cpu|cuda] [--seq-len L] "
                            "[--batch B] [--steps S] [--tf32]\n");
            return 2;
        }
    }
    const int unet = strcmp(model, "unet") == 0;
    if (!unet && strcmp(model, "dna") != 0) {
        fprintf(stderr, "bench_dist: --model '%s' is neither dna nor unet\n", model);
        return 2;
    }
    if (!L) L = unet ? 8192 : 1 << 17;
    if (!B) B = unet ? 4 : 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!(g_dist = mb_dist_init(&argc, &argv))) {
        fprintf(stderr, "bench_dist: %s\n", mb_error_last());
        return 1;
    }
    const int P = mb_dist_size(g_dist), rank = mb_dist_rank(g_dist);
    g_dist->timing = 1;
    char dev[32];
    snprintf(dev, sizeof dev, "%s", device);
    if (strcmp(device, "cuda") == 0) snprintf(dev, sizeof dev, "cuda:%d", mb_dist_local_rank(g_dist));
    mb_ctx *ctx = mb_ctx_create(dev);
    if (!ctx) fail(dev);
    mb_ctx_set_tf32(ctx, tf32);

    mb_config cfg;
    if (unet)
        mb_config_sashimi_default(&cfg);
    else
        bench_model_config(&cfg, 256, 8, 16, 0);
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    if (!m) fail("model");
    /* mamba-dna pretrain's rule: recompute above 64 Ki tokens a rank */
    if ((int64_t)B * L > 65536) mb_model_set_recompute(m, 1);
    if (mb_model_set_dist(m, g_dist)) fail("mb_model_set_dist");
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    mb_optim *o = mb_optim_create(m, &oc);
    if (!o) fail("optimizer");
    int32_t *tok, *tgt;
    if (bench_tokens((size_t)B * L, cfg.vocab_size, 2 + (uint64_t)rank, &tok, &tgt)) fail("tokens");

    double t_step[64], t_fb[64], t_red[64];
    for (int i = -1; i < steps; i++) {
        if (mb_dist_barrier(g_dist)) fail("barrier");
        const double t0 = bench_now_s();
        mb_loss_stats st = {0};
        if (mb_model_forward_backward(m, tok, tgt, B, L, &st)) fail("forward_backward");
        dev_sync(ctx);
        const double t1 = bench_now_s();
        if (mb_optim_step(o, NULL, NULL)) fail("optim_step");
        dev_sync(ctx);
        const double t2 = bench_now_s();
        if (i < 0) continue; /* warm-up: first launches, NCCL's first call */
        t_step[i] = t2 - t0;
        t_fb[i] = t1 - t0;
        t_red[i] = 1e-3 * mb_dist_last_reduce_ms(g_dist);
    }
    const double step = bench_median(t_step, steps), fb = bench_median(t_fb, steps),
                 red = bench_median(t_red, steps);
    const double tps = (double)P * B * L / step;
    if (rank == 0) {
        printf("| model | ranks | device | B a rank |       L | step (ms) | fwd+bwd (ms) | all-reduce (ms) | reduce %% "
               "| tokens/s (all) | tokens/s a rank |\n");
        printf("|-------|-------|--------|----------|---------|-----------|--------------|-----------------|----------"
               "|----------------|-----------------|\n");
        printf("| %-5s | %5d | %-6s | %8d | %7d | %9.1f | %12.1f | %15.3f | %7.2f%% | %14.0f | %15.0f |\n", model, P,
               ctx->kind == MB_DEV_CUDA ? "cuda" : "cpu", B, L, 1e3 * step, 1e3 * fb, 1e3 * red,
               100 * red / step, tps, tps / P);
        printf("bench_dist: model=%s ranks=%d device=%s batch=%d seq_len=%d params=%zu grad_mb=%.1f steps=%d "
               "step_ms=%.2f fb_ms=%.2f reduce_ms=%.3f tok_s=%.1f tok_s_per_rank=%.1f nccl=%d\n",
               model, P, dev, B, L, mb_model_num_params(m), (double)m->params.total * 4 / 1e6, steps, 1e3 * step,
               1e3 * fb, 1e3 * red, tps, tps / P, g_dist->nccl != NULL);
    }
    free(tok);
    free(tgt);
    mb_optim_free(o);
    mb_model_free(m);
    mb_ctx_free(ctx);
    mb_dist_finalize(g_dist);
    return 0;
}
