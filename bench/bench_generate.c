/* Generation of the LM: sampled tokens a second (mb_model_sample, random
 * weights, temperature 1, top-p 1) at batch 1 and more, and prefill (a
 * prompt through mb_model_forward_chunk from the state). The floor of a
 * batch-1 token is the weights read once (bytes / the device's read
 * bandwidth on the CPU, copy bandwidth on a GPU, measured here). Prints a
 * table; no pass/fail.
 *
 *   bench_generate [--device cpu|cuda] [--quick] [--tokens N] [--shape dna|small|130m|2.8b] [--batch B]
 *                  [--weights fp32|bf16|int8|tf32|bf16p]
 *
 * Shapes: the DNA model (d256 x 8, vocab 16), mamba-dna's default (small:
 * d128 x 4), the 130m shape (d768 x 24, vocab 50280), and on a GPU the
 * 2.8b shape (d2560 x 64). MB_CUDA_STEP forces one kind of step to time
 * it against AUTO's (scripts/gpu_gen.sh runs them all): fused, split,
 * layer, and cluster (the narrow shapes, every layer one kernel, a
 * cluster of blocks a row: ops/stack_step.cu). On a GPU the narrow shapes
 * also run at 4, 8 and 16 rows: where the cluster kernel's rows pass one
 * wave of clusters. On a GPU the 130m and 2.8b shapes at 64 rows and the
 * 130m prefill run again with TF32 (mb_ctx_set_tf32; rows "tf32"), and in
 * bf16 precision (mb_ctx_set_precision; rows "bf16p"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "core/device.h"
#include "models/model.h"

typedef struct {
    const char *name;
    int d_model, n_layer, vocab;
} shape;

/* the draws' settings of a row: the model's distribution, or cut */
static const mb_sampler plain = {.temperature = 1.f, .top_p = 1.f, .seed = 3};
static const mb_sampler cut = {.temperature = 1.f, .top_p = 0.9f, .seed = 3, .top_k = 50};

static const char *g_only; /* --shape: only the rows of shapes whose name starts so */
static int g_batch;        /* --batch: only the rows of this batch (0: all); one no row has: the dna and small models at it */
static const char *g_weights; /* --weights: only the rows of these weights (a profile of one row) */
static int g_matched;         /* rows the filters let through: none is a usage error, not an empty table */

static int g_int8; /* the next rows with int8 weights (CPU) */
static int g_bf16; /* the next rows with bf16 weights (GPU) */
static int g_tf32; /* the next rows with fp32 weights, cuBLAS on TF32 tensor cores (GPU, mb_ctx_set_tf32) */
static int g_bf16p; /* the next rows in bf16 precision (GPU, mb_ctx_set_precision): label "bf16p" */

/* the rows' label: which weights, or TF32 */
static const char *weights_label(void)
{
    return g_int8 ? "int8" : g_bf16 ? "bf16" : g_tf32 ? "tf32" : g_bf16p ? "bf16p" : "fp32";
}

static void row(mb_ctx *ctx, const shape *sh, int B, int n_tokens, int prefill, double bw, const mb_sampler *sp)
{
    if (g_only && strncmp(sh->name, g_only, strlen(g_only)) != 0) return;
    if (g_batch && B != g_batch) return;
    if (g_weights && strcmp(g_weights, weights_label()) != 0) return;
    g_matched++;
    char wl[16] = "        "; /* fp32 rows unlabelled, as before */
    if (strcmp(weights_label(), "fp32") != 0) snprintf(wl, sizeof wl, " %-7s", weights_label());
    mb_config cfg;
    bench_model_config(&cfg, sh->d_model, sh->n_layer, sh->vocab, 0);
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    if (!m) {
        printf("| %-22s | %5d | %s |\n", sh->name, B, mb_error_last());
        return;
    }
    if ((g_int8 && mb_model_set_int8(m, 1)) || (g_bf16 && mb_model_set_bf16(m, 1))) {
        printf("| %-22s | %5d | %s |\n", sh->name, B, mb_error_last());
        mb_model_free(m);
        return;
    }
    mb_state *s = mb_state_create(m, B);
    int32_t *first = calloc((size_t)B, sizeof(int32_t)), *out = malloc(sizeof(int32_t) * (size_t)B * n_tokens);
    const double wbytes = (double)mb_model_num_params(m) * sizeof(float);
    if (prefill) {
        int32_t *tok = NULL, *tgt = NULL;
        bench_tokens((size_t)B * prefill, cfg.vocab_size, 5, &tok, &tgt);
        mb_model_forward_chunk(m, s, tok, prefill < 64 ? prefill : 64, NULL); /* warm-up */
        mb_state_reset(s);
        /* a chunk without logits returns with the device's work queued:
         * the time is to the device's end of it */
        mb_dev_sync(ctx);
        const double t0 = bench_now_s();
        int rc = mb_model_forward_chunk(m, s, tok, prefill, NULL);
        rc = rc || mb_dev_sync(ctx) || mb_ctx_check(ctx);
        const double t = bench_now_s() - t0;
        printf("| %-22s | %5d | prefill %6d%s | %9.1f ms | %12.0f tokens/s |              |%s\n", sh->name, B, prefill,
               wl, 1e3 * t, (double)B * prefill / t, rc ? mb_error_last() : "");
        free(tok), free(tgt);
    } else {
        /* warm-up: buffers, threads and, on a GPU, the graph (captured
         * after 16 eager steps) */
        int32_t *warm = malloc(sizeof(int32_t) * (size_t)B * 40);
        mb_model_sample(m, s, first, mb_dev_host_memory(ctx) ? 4 : 40, sp, warm);
        free(warm);
        mb_dev_profile(ctx, 1); /* what ncu --profile-from-start off sees */
        const double t0 = bench_now_s();
        const int rc = mb_model_sample(m, s, first, n_tokens, sp, out);
        const double t = bench_now_s() - t0, per = t / n_tokens;
        mb_dev_profile(ctx, 0);
        const double floor = bw > 0 ? wbytes / bw : 0;
        /* int8: the floor of the bytes streamed, a quarter (and the scales) */
        const double fl = g_int8 ? floor * (1 + 4.0 / 32) / 4 : g_bf16 ? floor / 2 : floor;
        printf("| %-22s | %5d | sample %7d%s | %9.3f ms | %12.1f tokens/s | %5.1fx floor |%s\n", sh->name, B,
               n_tokens, sp->top_k ? " k50 p.9" : wl, 1e3 * per, (double)B / per,
               fl > 0 ? per / fl : 0.0, rc ? mb_error_last() : "");
    }
    free(first), free(out);
    mb_state_free(s);
    mb_model_free(m);
}

/* the device's copy bandwidth, read + write bytes a second (bench_gpu's
 * measure): 512 MiB device to device, the best of 5 after a warm-up; 0
 * when the buffers cannot be had */
static double gpu_copy_bandwidth(mb_ctx *ctx)
{
    const size_t bytes = (size_t)512 << 20;
    void *a = mb_dev_alloc(ctx, bytes, "bandwidth probe"), *b = mb_dev_alloc(ctx, bytes, "bandwidth probe");
    double best = 0;
    if (a && b && !mb_dev_zero(ctx, a, bytes) && !mb_dev_copy_async(ctx, b, a, bytes) && !mb_dev_sync(ctx)) {
        for (int i = 0; i < 5; i++) {
            const double t0 = bench_now_s();
            if (mb_dev_copy_async(ctx, b, a, bytes) || mb_dev_sync(ctx)) break;
            const double bw = 2.0 * (double)bytes / (bench_now_s() - t0);
            if (bw > best) best = bw;
        }
    }
    mb_dev_free(ctx, a);
    mb_dev_free(ctx, b);
    return best;
}

int main(int argc, char **argv)
{
    const char *device = "cpu";
    int quick = 0, n_tokens = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) n_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) g_only = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) g_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "fp32") || !strcmp(argv[i + 1], "bf16") || !strcmp(argv[i + 1], "int8") ||
                  !strcmp(argv[i + 1], "tf32") || !strcmp(argv[i + 1], "bf16p")))
            g_weights = argv[++i];
        else {
            fprintf(stderr, "usage: bench_generate [--device cpu|cuda] [--quick] [--tokens N] [--shape dna|small|130m|2.8b] "
                            "[--batch B] [--weights fp32|bf16|int8|tf32|bf16p]\n");
            return 2;
        }
    }
    mb_ctx *ctx = mb_ctx_create(device);
    if (!ctx) {
        fprintf(stderr, "bench_generate: %s\n", mb_error_last());
        return 1;
    }
    const int gpu = !mb_dev_host_memory(ctx);
    /* the floor's bandwidth, measured on the device that runs the rows: on
     * a GPU its copy bandwidth (an H200's about 4.2 TB/s, issue 15's
     * yardstick; an H100's about 3.0), so rows from different cards compare
     * against their own memory; 4.2 TB/s if the probe fails */
    double bw = gpu ? gpu_copy_bandwidth(ctx) : cpu_read_bandwidth();
    const int bw_probed = bw > 0;
    if (gpu && !bw_probed) bw = 4.2e12;
    printf("generation on %s", device);
    if (!gpu) printf(", %d threads, read bandwidth %.1f GB/s", ctx->n_threads, bw / 1e9);
    else printf(", floor: the weights read once at %.0f GB/s (%s)", bw / 1e9,
                bw_probed ? "this GPU's copy bandwidth, read + write, measured" : "not measured: an H200's");
    printf("; fp32 weights; random weights, temperature 1 (k50 p.9: top-k 50, top-p 0.9)");
    /* the step's kernels, when forced (MB_CUDA_STEP) */
    const char *step = getenv("MB_CUDA_STEP");
    if (gpu && step && *step) printf("; MB_CUDA_STEP=%s", step);
    printf("\n\n");
    printf("| model                  | batch | what                    | per token    | throughput             | floor        |\n");
    printf("|------------------------|-------|-------------------------|--------------|------------------------|--------------|\n");
    /* small: mamba-dna pretrain's default model */
    const shape dna = {"dna d256 x8 vocab 16", 256, 8, 16}, small = {"small d128 x4 vocab 16", 128, 4, 16},
                s130 = {"130m d768 x24 v50280", 768, 24, 50280},
                s28 = {"2.8b d2560 x64 v50280", 2560, 64, 50280};
    const int nt = n_tokens ? n_tokens : (quick ? 16 : gpu ? 256 : 64);
    row(ctx, &dna, 1, nt * 8, 0, bw, &plain);
    row(ctx, &small, 1, nt * 8, 0, bw, &plain);
    row(ctx, &dna, 4, nt * 4, 0, bw, &plain);
    row(ctx, &dna, quick ? 8 : 64, nt * 2, 0, bw, &plain);
    if (gpu && !quick) {
        row(ctx, &dna, 8, nt * 4, 0, bw, &plain);
        row(ctx, &dna, 16, nt * 4, 0, bw, &plain);
        row(ctx, &dna, 32, nt * 2, 0, bw, &plain); /* where the cluster step's rows a cluster reach 4 */
        row(ctx, &small, 4, nt * 4, 0, bw, &plain);
        row(ctx, &small, 16, nt * 4, 0, bw, &plain);
        row(ctx, &small, 32, nt * 2, 0, bw, &plain); /* 2 and 4 rows a cluster of 8 blocks */
        row(ctx, &small, 64, nt * 2, 0, bw, &plain);
    }
    row(ctx, &s130, 1, nt, 0, bw, &plain);
    row(ctx, &s130, 1, nt, 0, bw, &cut);
    row(ctx, &s130, 8, nt / 2 > 0 ? nt / 2 : 1, 0, bw, &plain);
    if (gpu) row(ctx, &s130, 64, nt, 0, bw, &plain);
    row(ctx, &s130, 1, 0, quick ? 512 : 2048, bw, &plain);
    if (!gpu) {
        g_int8 = 1;
        row(ctx, &dna, 1, nt * 8, 0, bw, &plain);
        row(ctx, &s130, 1, nt, 0, bw, &plain);
        row(ctx, &s130, 8, nt / 2 > 0 ? nt / 2 : 1, 0, bw, &plain);
        g_int8 = 0;
    }
    if (gpu) {
        g_bf16 = 1; /* floor: half the bytes (the matrices as bf16) */
        row(ctx, &dna, 1, nt * 8, 0, bw, &plain);
        row(ctx, &s130, 1, nt, 0, bw, &plain);
        row(ctx, &s130, 8, nt / 2 > 0 ? nt / 2 : 1, 0, bw, &plain);
        if (!quick) row(ctx, &s130, 64, nt, 0, bw, &plain);
        if (!quick) row(ctx, &s28, 1, nt / 4, 0, bw, &plain);
        g_bf16 = 0;
    }
    if (gpu && !quick) {
        row(ctx, &s28, 1, nt / 4, 0, bw, &plain);
        row(ctx, &s28, 64, nt / 4, 0, bw, &plain);
        row(ctx, &s130, 1, 0, 32768, bw, &plain);
        /* TF32 (about 1e-3 relative error in the products, off by default):
         * the rows where cuBLAS runs the layers' products, many rows and
         * prefill; a step of few rows runs its own kernels, in fp32 */
        mb_ctx_set_tf32(ctx, 1);
        g_tf32 = 1;
        row(ctx, &s130, 64, nt, 0, bw, &plain);
        row(ctx, &s28, 64, nt / 4, 0, bw, &plain);
        row(ctx, &s130, 1, 0, 2048, bw, &plain);
        row(ctx, &s130, 1, 0, 32768, bw, &plain);
        g_tf32 = 0;
        mb_ctx_set_tf32(ctx, 0);
        /* bf16 precision (mamba_ssm's autocast: the GEMMs on bf16 tensor
         * cores, the stored activations rounded): every step layer by layer */
        mb_ctx_set_precision(ctx, MB_PREC_BF16);
        g_bf16p = 1;
        row(ctx, &s130, 1, nt, 0, bw, &plain);
        row(ctx, &s130, 64, nt, 0, bw, &plain);
        row(ctx, &s28, 64, nt / 4, 0, bw, &plain);
        row(ctx, &s130, 1, 0, 2048, bw, &plain);
        g_bf16p = 0;
        mb_ctx_set_precision(ctx, MB_PREC_FP32);
    }
    /* a batch no fixed row has (48 rows: the cluster step's waves): the
     * narrow models' sampling at it, fp32 weights */
    if (!g_matched && g_batch > 0 && g_batch <= 1024 && !(g_weights && strcmp(g_weights, "fp32") != 0)) {
        row(ctx, &dna, g_batch, nt * 2, 0, bw, &plain);
        row(ctx, &small, g_batch, nt * 2, 0, bw, &plain);
    }
    mb_ctx_free(ctx);
    if (!g_matched) {
        fprintf(stderr, "bench_generate: error: no row on %s matches --shape %s --batch %d --weights %s (a batch of "
                        "1 to 1024 runs the dna and small models; the others' batches are fixed: run without --batch to see them)\n",
                device, g_only ? g_only : "(any)", g_batch, g_weights ? g_weights : "(any)");
        return 2;
    }
    return 0;
}
