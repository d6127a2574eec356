/* CPU benchmarks: the selective scan against its memory floor, whole
 * training steps in tokens/s, and generation's few-rows products against
 * the weights' read floor. Prints tables; no pass/fail.
 *   bench_cpu [--quick] [--only rows|scan|train]                           */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/model.h"
#include "ops/ops.h"
#include "train/optim.h"
#include "bench_util.h"

static void fill(float *x, size_t n, float lo, float hi, mb_rng *r)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)mb_rng_uniform(r);
}

/* copy bandwidth: bytes read + written per second, the floor's yardstick */
static double copy_bandwidth(void)
{
    size_t n = (size_t)256 << 20;
    char *a = malloc(n), *b = malloc(n);
    memset(a, 1, n);
    memset(b, 2, n);
    double t[5];
    for (int i = 0; i < 5; i++) {
        double t0 = bench_now_s();
        memcpy(b, a, n);
        t[i] = bench_now_s() - t0;
    }
    volatile char sink = b[n / 2];
    (void)sink;
    free(a);
    free(b);
    return 2.0 * (double)n / bench_median(t, 5);
}

static void bench_scan(mb_ctx *ctx, int B, int D, int L, int N, int cplx, double bw, int reps)
{
    mb_rng r;
    mb_rng_seed(&r, 1);
    const size_t M = (size_t)B * L, nbc = cplx ? 2 * (size_t)N : (size_t)N;
    float *u = malloc(M * D * 4), *dl = malloc(M * D * 4), *z = malloc(M * D * 4);
    float *Bm = malloc(M * nbc * 4), *Cm = malloc(M * nbc * 4), *y = malloc(M * D * 4);
    float *A = malloc((size_t)D * N * 4), *Ai = malloc((size_t)D * N * 4);
    float *Dk = malloc(D * 4), *bias = malloc(D * 4);
    float *du = malloc(M * D * 4), *dd = malloc(M * D * 4), *dz = malloc(M * D * 4);
    float *dB = malloc(M * nbc * 4), *dC = malloc(M * nbc * 4);
    float *dA = calloc((size_t)D * N, 4), *dAi = calloc((size_t)D * N, 4), *dD = calloc(D, 4),
          *db = calloc(D, 4);
    fill(u, M * D, -1, 1, &r), fill(dl, M * D, -4, 0, &r), fill(z, M * D, -1, 1, &r);
    fill(Bm, M * nbc, -1, 1, &r), fill(Cm, M * nbc, -1, 1, &r);
    fill(A, (size_t)D * N, -3, -0.5f, &r), fill(Ai, (size_t)D * N, 0, 10, &r);
    fill(Dk, D, -1, 1, &r), fill(bias, D, -4, -2, &r);
    mb_scan_params p = {.batch = B, .seqlen = L, .dim = D, .dstate = N, .is_complex = cplx,
                        .u = u, .ld_u = D, .delta = dl, .ld_delta = D, .A = A,
                        .A_imag = cplx ? Ai : NULL, .Bm = Bm, .ld_B = (int64_t)nbc, .Cm = Cm,
                        .ld_C = (int64_t)nbc, .Dskip = Dk, .z = z, .ld_z = D, .delta_bias = bias,
                        .delta_softplus = 1, .h0 = NULL};
    mb_scan_grads g = {.du = du, .ld_du = D, .ddelta = dd, .ld_ddelta = D, .dA = dA,
                       .dA_imag = cplx ? dAi : NULL, .dB = dB, .ld_dB = (int64_t)nbc, .dC = dC,
                       .ld_dC = (int64_t)nbc, .dD = dD, .dz = dz, .ld_dz = D, .ddelta_bias = db};
    mb_arena ws;
    mb_arena_init(&ws, ctx, mb_scan_workspace(ctx, &p));
    double tf[16], tb[16];
    mb_scan_fwd(ctx, &p, y, NULL, &ws); /* warm up */
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now_s();
        mb_scan_fwd(ctx, &p, y, NULL, &ws);
        double t1 = bench_now_s();
        mb_scan_bwd(ctx, &p, y, NULL, &g, &ws);
        double t2 = bench_now_s();
        tf[i] = t1 - t0;
        tb[i] = t2 - t0;
    }
    /* fewest bytes: forward reads u, delta, z, B, C and writes y; backward,
     * a separate call, reads u, delta, z, B, C, dy again and writes du,
     * ddelta, dz, dB, dC */
    double fwd_bytes = 4.0 * (4.0 * M * D + 2.0 * M * nbc);
    double bwd_bytes = fwd_bytes + 4.0 * (8.0 * M * D + 4.0 * M * nbc);
    double f = bench_median(tf, reps), fb = bench_median(tb, reps);
    printf("| %2d | %5d | %7d | %2d | %-7s | %9.2f | %6.1fx | %9.2f | %6.1fx | %10.3g |\n", B, D, L, N,
           cplx ? "complex" : "real", 1e3 * f, f / (fwd_bytes / bw), 1e3 * fb, fb / (bwd_bytes / bw),
           (double)M / f);
    mb_arena_free(&ws);
    free(u), free(dl), free(z), free(Bm), free(Cm), free(y), free(A), free(Ai), free(Dk), free(bias);
    free(du), free(dd), free(dz), free(dB), free(dC), free(dA), free(dAi), free(dD), free(db);
}

/* arch: bench_model_arch's */
static void bench_train(mb_ctx *ctx, const char *name, int d_model, int n_layer, int vocab, int B,
                        int L, int cplx, int reps, int arch)
{
    mb_config cfg;
    bench_model_config(&cfg, d_model, n_layer, vocab, cplx);
    bench_model_arch(&cfg, arch);
    mb_model *m = mb_model_create(ctx, &cfg, 1);
    if (!m) {
        fprintf(stderr, "bench: %s: %s\n", name, mb_error_last());
        exit(1);
    }
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    mb_optim *o = mb_optim_create(m, &oc);
    int32_t *tok, *tgt;
    if (bench_tokens((size_t)B * L, vocab, 2, &tok, &tgt)) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    double t[16];
    for (int i = -1; i < reps; i++) {
        double t0 = bench_now_s();
        mb_loss_stats st = {0};
        if (mb_model_forward_backward(m, tok, tgt, B, L, &st) || mb_optim_step(o, NULL, NULL)) {
            fprintf(stderr, "bench: %s\n", mb_error_last());
            exit(1);
        }
        if (i >= 0) t[i] = bench_now_s() - t0;
    }
    double s = bench_median(t, reps);
    printf("| %-22s | %8zu | %3d | %6d | %-7s | %9.1f | %9.0f |\n", name, mb_model_num_params(m), B, L,
           cplx ? "complex" : "real", 1e3 * s, (double)B * L / s);
    free(tok);
    free(tgt);
    mb_optim_free(o);
    mb_model_free(m);
}

/* Generation's linear layers on the CPU (mb_gemm_few_rows_cpu): M rows
 * against an (N, K) weight matrix, nl copies of it one after another so
 * that, as in a model's step, each is read from memory and not from cache.
 * The floor is the weights read once at the machine's read bandwidth. */
static void bench_rows(mb_ctx *ctx, const char *name, int M, int N, int K, int nl, double rbw, int reps)
{
    mb_rng r;
    mb_rng_seed(&r, 2);
    const size_t wn = (size_t)N * K;
    float *W = malloc(wn * nl * sizeof(float)), *A = malloc((size_t)M * K * sizeof(float));
    float *C = malloc((size_t)M * N * sizeof(float));
    if (!W || !A || !C) {
        fprintf(stderr, "bench_cpu: out of memory for the %s product\n", name);
        exit(1);
    }
    fill(W, wn * nl, -1, 1, &r), fill(A, (size_t)M * K, -1, 1, &r);
    double t[16];
    for (int i = 0; i < reps; i++) {
        const double t0 = bench_now_s();
        for (int l = 0; l < nl; l++)
            mb_gemm_few_rows_cpu(ctx, M, N, K, 1.f, A, K, W + wn * l, K, 0.f, C, N);
        t[i] = (bench_now_s() - t0) / nl;
    }
    const double s = bench_median(t, reps), bytes = (double)wn * sizeof(float);
    printf("| %-12s | %d | %5d x %4d | %8.3f | %6.1f | %6.1f | %5.2fx |\n", name, M, N, K, s * 1e3, bytes / s / 1e9,
           2.0 * M * wn / s / 1e9, s / (bytes / rbw));
    free(W), free(A), free(C);
}

static void table_rows(mb_ctx *ctx, int quick, int reps)
{
    const double rbw = cpu_read_bandwidth();
    printf("Few-rows products (generation's linear layers, the 130m shape's), fp32; floor: the weights read\n"
           "once at %.1f GB/s (read bandwidth); each layer's copy read from memory; median of %d\n\n",
           rbw / 1e9, reps);
    printf("| product      | M |      N x    K |       ms |   GB/s | GFLOP/s |  floor |\n");
    printf("|--------------|---|---------------|----------|--------|---------|--------|\n");
    const int rows[] = {1, 4, 8};
    for (int i = 0; i < 3; i++) {
        bench_rows(ctx, "in_proj", rows[i], 3072, 768, quick ? 8 : 24, rbw, reps);
        bench_rows(ctx, "out_proj", rows[i], 768, 1536, quick ? 8 : 24, rbw, reps);
        bench_rows(ctx, "head", rows[i], 50280, 768, 1, rbw, reps);
    }
    printf("\n");
}

static void table_scan(mb_ctx *ctx, int quick, int reps, double bw)
{
    printf("Selective scan, fp32, all options (D, z, delta bias + softplus); median of %d\n\n", reps);
    printf("| B  |     D |       L |  N | A       |  fwd (ms) | /floor |  f+b (ms) | /floor |   fwd tok/s |\n");
    printf("|----|-------|---------|----|---------|-----------|--------|-----------|--------|-------------|\n");
    const int shapes[][4] = {{8, 1536, 256, 16}, {1, 512, 16384, 16}, {16, 128, 2048, 16}};
    for (int s = 0; s < 3; s++)
        for (int c = 0; c < 2; c++)
            bench_scan(ctx, shapes[s][0], shapes[s][1], quick ? shapes[s][2] / 4 : shapes[s][2],
                       shapes[s][3], c, bw, reps);
    printf("\n");
}

static void table_train(mb_ctx *ctx, int quick, int reps)
{
    printf("Training step (forward, backward, AdamW), fp32; median of %d\n\n", reps);
    printf("| model                  |   params |   B |      L | A       | step (ms) |  tokens/s |\n");
    printf("|------------------------|----------|-----|--------|---------|-----------|-----------|\n");
    bench_train(ctx, "selcopy d64 x2", 64, 2, 10, 32, 36, 0, reps, 0);
    bench_train(ctx, "selcopy d64 x2", 64, 2, 10, 32, 36, 1, reps, 0);
    const int L = quick ? 512 : 2048;
    bench_train(ctx, "dna d256 x8 vocab 16", 256, 8, 16, 1, L, 0, reps, 0);
    bench_train(ctx, "bidir d256 x8", 256, 8, 16, 1, L, 0, reps, 1);
    bench_train(ctx, "bidir+rc d256 x8", 256, 8, 16, 1, L, 0, reps, 2);
}

static const char usage[] =
    "usage: bench_cpu [--quick] [--only rows|scan|train]\n"
    "  rows: generation's few-rows products against the weights' read floor;\n"
    "  scan: the selective scan against its memory floor; train: whole training steps\n";

int main(int argc, char **argv)
{
    int quick = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = 1;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (only && strcmp(only, "scan") && strcmp(only, "train") && strcmp(only, "rows")) {
        fprintf(stderr, "bench_cpu: --only takes rows, scan or train, not '%s'\n", only);
        return 2;
    }
    const int reps = quick ? 3 : 5;
    mb_ctx *ctx = mb_ctx_create("cpu");
    const double bw = copy_bandwidth();
    printf("CPU: %d threads, copy bandwidth %.1f GB/s (read + write)\n\n", ctx->n_threads, bw / 1e9);
    if (!only || !strcmp(only, "rows")) table_rows(ctx, quick, reps);
    if (!only || !strcmp(only, "scan")) table_scan(ctx, quick, reps, bw);
    if (!only || !strcmp(only, "train")) table_train(ctx, quick, reps);
    mb_ctx_free(ctx);
    return 0;
}
