/* The whole LM on the GPU against the CPU: loss and every gradient of a
 * training step (plain, recompute, and recompute over chunks of the
 * sequence), an AdamW update, and the recurrent step against the parallel
 * forward; the classification head's training step and the pooled chunk
 * forward likewise; the U-Net's; scoring chunks; what the GPU refuses.
 * Exit 77 without a GPU. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/optim.h"
#include "testutil.h"

static mb_ctx *cpu, *gpu;

static mb_config small(int cplx)
{
    mb_config c;
    mb_config_default(&c);
    c.d_model = 48;
    c.n_layer = 3;
    c.vocab_size = 11;
    c.d_state = 16;
    c.init = cplx ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL;
    c.tie_embeddings = !cplx;
    return c;
}

/* A model on each device with the same weights: cfg's initialization from
 * seed, every weight then moved by 0.05 N(0, 1) (away from the
 * initialization's special values) on the CPU and copied to the GPU. */
static void model_pair_on(mb_ctx *g, const mb_config *cfg, uint64_t seed, mb_rng *r, mb_model **mc, mb_model **mg)
{
    *mc = mb_model_create(cpu, cfg, seed);
    *mg = mb_model_create(g, cfg, seed);
    assert_non_null(*mc);
    assert_non_null(*mg);
    mb_params *ps = &(*mc)->params;
    for (size_t i = 0; i < ps->total; i++) ps->data[i] += 0.05f * (float)mb_rng_normal(r);
    assert_int_equal(mb_dev_upload(g, (*mg)->params.data, ps->data, ps->total * 4), 0);
}

/* the same on the suite's GPU context */
static void model_pair(const mb_config *cfg, uint64_t seed, mb_rng *r, mb_model **mc, mb_model **mg)
{
    model_pair_on(gpu, cfg, seed, r, mc, mg);
}

/* The GPU model's gradients against the CPU model's: the worst relative
 * error of a tensor, and its name. */
static double grad_worst(const mb_model *mc, const mb_model *mg, const char **name)
{
    const size_t n = mc->params.total;
    float *g = malloc(n * 4);
    assert_non_null(g);
    assert_int_equal(mb_dev_download(gpu, g, mg->params.grad, n * 4), 0);
    double worst = 0;
    *name = "";
    for (int i = 0; i < mc->params.n; i++) {
        const mb_param *p = &mc->params.items[i];
        const double e = mb_test_rel_err(g + p->offset, mc->params.grad + p->offset, p->numel);
        if (e > worst) worst = e, *name = p->name;
    }
    free(g);
    return worst;
}

/* One training step's gradients on both devices from zero (the
 * classifier's where lab is given, else the LM loss's on tgt): the CPU's
 * must run, the GPU's failure says why. Returns the loss's relative
 * difference; the worst gradient tensor's (grad_worst) in *worst. */
static double pair_grads(mb_model *mc, mb_model *mg, const int32_t *tok, const int32_t *tgt, const int32_t *lab,
                         int B, int L, mb_loss_stats *sc, mb_loss_stats *sg, double *worst, const char **worst_name)
{
    mb_model_zero_grad(mc);
    mb_model_zero_grad(mg);
    if (lab) {
        assert_int_equal(mb_model_classify_backward(mc, tok, lab, B, L, sc), 0);
        if (mb_model_classify_backward(mg, tok, lab, B, L, sg)) fail_msg("%s", mb_error_last());
    } else {
        assert_int_equal(mb_model_forward_backward(mc, tok, tgt, B, L, sc), 0);
        if (mb_model_forward_backward(mg, tok, tgt, B, L, sg)) fail_msg("%s", mb_error_last());
    }
    *worst = grad_worst(mc, mg, worst_name);
    return fabs(sg->loss_sum - sc->loss_sum) / fabs(sc->loss_sum);
}

static void step_matches(int cplx, int recompute, int chunk)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + (uint64_t)(cplx * 10 + recompute * 3 + chunk));
    mb_config cfg = small(cplx);
    mb_model *mc, *mg;
    model_pair(&cfg, 5, &r, &mc, &mg);
    mb_model_set_recompute(mg, recompute);
    if (recompute) mb_model_set_recompute_chunk(mg, chunk);
    /* under the sanitizers (MB_GPU_TEST_SMALL) a shorter sequence */
    const int B = 2, L = getenv("MB_GPU_TEST_SMALL") ? 60 : 300;
    int32_t *tok = malloc(sizeof(int32_t) * B * L), *tgt = malloc(sizeof(int32_t) * B * L);
    for (int i = 0; i < B * L; i++) {
        tok[i] = (int32_t)mb_rng_below(&r, 11);
        tgt[i] = i % 7 == 3 ? MB_IGNORE_INDEX : (int32_t)mb_rng_below(&r, 11);
    }
    mb_loss_stats sc = {0}, sg = {0};
    const char *worst_name;
    double worst;
    const double el = pair_grads(mc, mg, tok, tgt, NULL, B, L, &sc, &sg, &worst, &worst_name);
    printf("# %s %s: loss rel err %.2e, count %lld/%lld, worst gradient %s %.2e\n",
           cplx ? "complex" : "real",
           recompute == MB_RECOMPUTE_STACK   ? "stacked chunks"
           : recompute == MB_RECOMPUTE_INNER ? (chunk ? "in_proj kept, chunks" : "in_proj kept")
           : recompute == MB_RECOMPUTE_AUTO  ? "auto, chunks"
           : recompute                       ? (chunk ? "recompute in chunks" : "recompute")
                                             : "plain",
           el, (long long)sg.count, (long long)sc.count, worst_name, worst);
    assert_true(sg.count == sc.count && sg.correct == sc.correct);
    assert_true(el < 1e-5);
    /* AUTO: the GPU has room for this model's kept in_proj outputs */
    if (recompute == MB_RECOMPUTE_AUTO) {
        printf("#   auto took mode %d (3: in_proj's output kept)\n", mb_model_get_recompute(mg));
        assert_int_equal(mb_model_get_recompute(mg), MB_RECOMPUTE_INNER);
    }
    /* each tensor's gradient sums over B*L rows in another order (cuBLAS,
     * atomics in the scan): fp32 rounding of long sums, ~1e-6 measured */
    assert_true(worst < 1e-4);

    /* one AdamW step from those gradients */
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    mb_optim *oc_c = mb_optim_create(mc, &oc), *oc_g = mb_optim_create(mg, &oc);
    assert_int_equal(mb_optim_step(oc_c, NULL, NULL), 0);
    assert_int_equal(mb_optim_step(oc_g, NULL, NULL), 0);
    const size_t n = mc->params.total;
    float *w = malloc(n * 4);
    assert_int_equal(mb_dev_download(gpu, w, mg->params.data, n * 4), 0);
    double ew = mb_test_rel_err(w, mc->params.data, n);
    printf("#   weights after one AdamW step: rel err %.2e\n", ew);
    assert_true(ew < 1e-5);
    mb_optim_free(oc_c), mb_optim_free(oc_g);
    free(w), free(tok), free(tgt);
    mb_model_free(mc), mb_model_free(mg);
}

static void test_step_real(void **s) { (void)s; step_matches(0, 0, 0); }
static void test_step_complex(void **s) { (void)s; step_matches(1, 0, 0); }
static void test_step_recompute(void **s) { (void)s; step_matches(0, 1, 0); }
static void test_step_recompute_chunks(void **s) { (void)s; step_matches(0, 1, 24); }
static void test_step_recompute_chunks_complex(void **s) { (void)s; step_matches(1, 1, 29); }
static void test_step_stack_chunks(void **s) { (void)s; step_matches(0, MB_RECOMPUTE_STACK, 24); }
static void test_step_stack_chunks_complex(void **s) { (void)s; step_matches(1, MB_RECOMPUTE_STACK, 29); }
static void test_step_inner(void **s) { (void)s; step_matches(0, MB_RECOMPUTE_INNER, 0); }
static void test_step_inner_chunks(void **s) { (void)s; step_matches(0, MB_RECOMPUTE_INNER, 24); }
static void test_step_inner_chunks_complex(void **s) { (void)s; step_matches(1, MB_RECOMPUTE_INNER, 29); }
static void test_step_auto_inner_chunks(void **s) { (void)s; step_matches(0, MB_RECOMPUTE_AUTO, 24); }

/* bf16 precision (mb_ctx_set_precision): the GPU's training step against
 * the CPU's, its reference. Both round the same activations, gradients and
 * GEMM weights to bf16; the fp32 sums under them differ in order (cuBLAS's
 * tensor cores, the scan's atomics) by ~1e-6, so now and then a value lands
 * on the other side of a bf16 rounding boundary and moves by one bf16 ulp
 * (2^-8 relative), and the flips travel. Measured over 8 runs: the loss
 * 2e-8 to 8.7e-5 apart (relative), the worst gradient tensor 1.3e-3 to
 * 4.1e-3 (LM) and 1.2e-2 to 3.0e-2 (U-Net, through pools and MLPs): bounds
 * 5e-4, 2e-2 and 1e-1 catch a wrong or missing term (order 1), not a
 * rounding point. The GPU's own rounding is what a comparison with flips
 * cannot see (the GPU in fp32 is as close to the CPU's bf16 loss, at times,
 * as flips leave the GPU's bf16), so the test asks for it directly: every
 * logit of the GPU's bf16 forward is a bf16 value. The CPU's rounding
 * points are held to golden.py's by test_golden, the rounding kernel to the
 * CPU's bit for bit by gpu_test_ops. */
static void bf16_matches(const char *what, mb_config cfg, int recompute, int chunk, int L, double grad_bound)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 700 + (uint64_t)chunk);
    mb_model *mc, *mg;
    model_pair(&cfg, 9, &r, &mc, &mg);
    if (recompute) {
        mb_model_set_recompute(mg, recompute);
        mb_model_set_recompute_chunk(mg, chunk);
    }
    const int B = 2, V = mb_config_vocab_padded(&cfg);
    int32_t *tok = malloc(sizeof(int32_t) * B * L), *tgt = malloc(sizeof(int32_t) * B * L);
    float *lg = malloc(sizeof(float) * B * L * V);
    assert_true(tok && tgt && lg);
    for (int i = 0; i < B * L; i++) {
        tok[i] = (int32_t)mb_rng_below(&r, 11);
        tgt[i] = i % 5 == 2 ? MB_IGNORE_INDEX : (int32_t)mb_rng_below(&r, 11);
    }
    assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_BF16), 0);
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_BF16), 0);
    mb_loss_stats sc = {0}, sg = {0};
    const char *worst_name;
    double worst;
    const double el = pair_grads(mc, mg, tok, tgt, NULL, B, L, &sc, &sg, &worst, &worst_name);
    if (mb_model_forward(mg, tok, B, L, NULL, lg, NULL)) fail_msg("%s", mb_error_last());
    size_t off = 0;
    for (size_t i = 0; i < (size_t)B * L * V; i++) off += mb_bf16_float(mb_bf16_round(lg[i])) != lg[i];
    assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_FP32), 0);
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_FP32), 0);
    printf("# bf16 %s: GPU vs CPU loss rel err %.2e, worst gradient %s %.2e (bound %.0e); GPU logits not bf16 "
           "values: %zu\n", what, el, worst_name, worst, grad_bound, off);
    assert_true(sg.count == sc.count);
    assert_true(off == 0);
    assert_true(el < 5e-4);
    assert_true(worst < grad_bound);
    free(tok), free(tgt), free(lg);
    mb_model_free(mc), mb_model_free(mg);
}

static int gpu_test_small(void) { return getenv("MB_GPU_TEST_SMALL") != NULL; }
static void test_step_bf16(void **s) { (void)s; bf16_matches("LM", small(0), 0, 0, gpu_test_small() ? 60 : 600, 2e-2); }
static void test_step_bf16_recompute_chunks(void **s)
{
    (void)s;
    bf16_matches("LM, recompute in chunks", small(0), 1, 37, gpu_test_small() ? 60 : 600, 2e-2);
}
static void test_step_bf16_stack_chunks(void **s)
{
    (void)s;
    bf16_matches("LM, stacked chunks", small(0), MB_RECOMPUTE_STACK, 37, gpu_test_small() ? 60 : 600, 2e-2);
}
static void test_step_bf16_inner_chunks(void **s)
{
    (void)s;
    bf16_matches("LM, in_proj kept, chunks", small(0), MB_RECOMPUTE_INNER, 37, gpu_test_small() ? 60 : 600, 2e-2);
}

/* ---- the bidirectional model: GPU against CPU ---------------------------- */

static int g_bidir_bias; /* projection biases (out_proj's counted twice by the shared product) */
static mb_config small_bidir(int rc)
{
    mb_config c = small(0);
    c.arch = MB_ARCH_BIDIR;
    c.bias = g_bidir_bias;
    c.rc_equivariant = rc;
    /* 11 tokens: 0 <-> 3, 1 <-> 2, the rest their own */
    for (int v = 0; v < MB_RC_MAX_VOCAB; v++) c.rc_complement[v] = v < 4 ? 3 - v : v;
    return c;
}

/* a training step's loss, gradients and logits (and with classes the
 * classifier's) on both devices */
static void bidir_matches(int rc, int recompute, int classes, int chunk)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 900 + (uint64_t)(rc * 4 + recompute * 2 + classes));
    mb_config cfg = small_bidir(rc);
    cfg.n_classes = classes ? 3 : 0;
    mb_model *mc, *mg;
    model_pair(&cfg, 13, &r, &mc, &mg);
    mb_model_set_recompute(mg, recompute);
    mb_model_set_recompute_chunk(mg, chunk);
    const int B = 2, L = gpu_test_small() ? 60 : 300, Vp = mb_config_vocab_padded(&cfg);
    int32_t *tok = malloc(sizeof(int32_t) * B * L), *tgt = malloc(sizeof(int32_t) * B * L);
    float *lc = malloc(sizeof(float) * B * L * Vp), *lg = malloc(sizeof(float) * B * L * Vp);
    assert_true(tok && tgt && lc && lg);
    for (int i = 0; i < B * L; i++) {
        tok[i] = (int32_t)mb_rng_below(&r, 11);
        tgt[i] = i % 3 ? MB_IGNORE_INDEX : (int32_t)mb_rng_below(&r, 11);
    }
    const int32_t lab[2] = {2, 0};
    mb_loss_stats sc = {0}, sg = {0};
    const char *worst_name;
    double worst;
    const double el = pair_grads(mc, mg, tok, tgt, classes ? lab : NULL, B, L, &sc, &sg, &worst, &worst_name);
    double elg = 0;
    if (!classes) {
        assert_int_equal(mb_model_forward(mc, tok, B, L, NULL, lc, NULL), 0);
        if (mb_model_forward(mg, tok, B, L, NULL, lg, NULL)) fail_msg("%s", mb_error_last());
        elg = mb_test_rel_err(lg, lc, (size_t)B * L * Vp);
    }
    printf("# bidir%s%s%s: loss rel err %.2e, logits %.2e, worst gradient %s %.2e\n", rc ? " + rc" : "",
           recompute ? (chunk ? ", recompute in chunks" : ", recompute") : "", classes ? ", classifier" : "", el, elg,
           worst_name, worst);
    assert_true(sg.count == sc.count && sg.correct == sc.correct);
    assert_true(el < 1e-5);
    assert_true(elg < 1e-5);
    /* as the LM's: long sums in another order */
    assert_true(worst < 1e-4);
    free(tok), free(tgt), free(lc), free(lg);
    mb_model_free(mc), mb_model_free(mg);
}

static void test_bidir(void **s) { (void)s; bidir_matches(0, 0, 0, 0); }
static void test_bidir_rc(void **s) { (void)s; bidir_matches(1, 0, 0, 0); }
static void test_bidir_rc_recompute(void **s) { (void)s; bidir_matches(1, 1, 0, 0); }
static void test_bidir_rc_recompute_chunks(void **s) { (void)s; bidir_matches(1, 1, 0, 37); }
static void test_bidir_rc_classify(void **s) { (void)s; bidir_matches(1, 1, 1, 41); }
static void test_bidir_biases(void **s)
{
    (void)s;
    g_bidir_bias = 1;
    bidir_matches(0, 1, 0, 0);
    bidir_matches(1, 0, 0, 0);
    g_bidir_bias = 0;
}
/* a bidirectional model's chunk (a window read whole, through the state's
 * own buffers) on the GPU against the CPU: logits and pooled sums */
static void test_bidir_chunk(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 950);
    mb_config cfg = small_bidir(1);
    mb_model *mc, *mg;
    model_pair(&cfg, 17, &r, &mc, &mg);
    const int B = 3, L = gpu_test_small() ? 40 : 257, Vp = mb_config_vocab_padded(&cfg), d = cfg.d_model;
    int32_t *tok = malloc(sizeof(int32_t) * B * L);
    float *lc = malloc(sizeof(float) * B * L * Vp), *lg = malloc(sizeof(float) * B * L * Vp);
    float *hc = calloc((size_t)B * d, sizeof(float)), *hg = calloc((size_t)B * d, sizeof(float));
    assert_true(tok && lc && lg && hc && hg);
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)mb_rng_below(&r, 11);
    mb_state *sc = mb_state_create(mc, B), *sg = mb_state_create(mg, B);
    assert_non_null(sc);
    if (!sg) fail_msg("%s", mb_error_last());
    assert_int_equal(mb_model_forward_chunk_pooled(mc, sc, tok, L, lc, hc), 0);
    if (mb_model_forward_chunk_pooled(mg, sg, tok, L, lg, hg)) fail_msg("%s", mb_error_last());
    const double el = mb_test_rel_err(lg, lc, (size_t)B * L * Vp), eh = mb_test_rel_err(hg, hc, (size_t)B * d);
    printf("# bidir + rc chunk: logits rel err %.2e, pooled sums %.2e\n", el, eh);
    assert_true(el < 1e-5 && eh < 1e-5);
    mb_state_free(sc), mb_state_free(sg);
    free(tok), free(lc), free(lg), free(hc), free(hg);
    mb_model_free(mc), mb_model_free(mg);
}

static void test_bidir_bf16(void **s)
{
    (void)s;
    bf16_matches("bidir + rc", small_bidir(1), 1, 0, gpu_test_small() ? 60 : 600, 2e-2);
}

/* recurrent step on the GPU == parallel forward on the GPU */
static void test_recurrent(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 99);
    mb_config cfg = small(1);
    mb_model *m = mb_model_create(gpu, &cfg, 3);
    assert_non_null(m);
    const int B = 3, L = 40, V = mb_config_vocab_padded(&cfg);
    int32_t *tok = malloc(sizeof(int32_t) * B * L), col[3];
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)mb_rng_below(&r, 11);
    float *ref = malloc((size_t)B * L * V * 4), *got = malloc((size_t)B * L * V * 4), tmp[3 * 16];
    assert_int_equal(mb_model_forward(m, tok, B, L, NULL, ref, NULL), 0);
    mb_state *st = mb_state_create(m, B);
    assert_non_null(st);
    for (int t = 0; t < L; t++) {
        for (int b = 0; b < B; b++) col[b] = tok[b * L + t];
        assert_int_equal(mb_model_step(m, st, col, tmp), 0);
        for (int b = 0; b < B; b++) memcpy(got + ((size_t)b * L + t) * V, tmp + b * V, V * 4);
    }
    double e = mb_test_rel_err(got, ref, (size_t)B * L * V);
    printf("# GPU step by step vs parallel forward: rel err %.2e\n", e);
    assert_true(e < 1e-5);
    mb_state_free(st);
    free(tok), free(ref), free(got);
    mb_model_free(m);
}

/* mc's weights rounded to bf16 where mg has bf16 copies of them
 * (mb_model_set_bf16): the CPU reference of mg's inference; returns how
 * many matrices */
static int round_like_bf16(mb_model *mc, const mb_model *mg)
{
    mb_params *ps = &mc->params;
    int rounded = 0;
    for (int i = 0; i < ps->n; i++)
        if (mb_param_bf16(&mg->params, i)) {
            float *w = mb_param_data(ps, i);
            for (size_t k = 0; k < ps->items[i].numel; k++) w[k] = mb_bf16_float(mb_bf16_round(w[k]));
            rounded++;
        }
    return rounded;
}

/* the LM's generation with the steps and draws on the device (graphs of
 * 16 steps after 16 eager ones: 60 draws run both, and a run cut in two
 * calls replays the graph) against the CPU replaying it with the same
 * weights */
static void test_lm_sample(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 98);
    mb_config cfg = small(0);
    mb_model *mc, *mg;
    model_pair(&cfg, 4, &r, &mc, &mg);
    const mb_sampler sp = {.temperature = 0.9f, .top_p = 0.95f, .seed = 21};
    assert_true(mb_test_sample_replay(mg, mc, 3, 60, &sp, 1e-5) <= 1);
    const mb_sampler sk = {.temperature = 1.2f, .top_p = 1.f, .seed = 22, .top_k = 4};
    assert_true(mb_test_sample_replay(mg, mc, 2, 40, &sk, 1e-5) <= 1);
    /* bf16 weights: the projections only, since the one-kernel draw of a
     * small vocabulary reads the head (here the tied embedding) as fp32 */
    assert_int_equal(mb_model_set_bf16(mg, 1), 0);
    assert_int_equal(round_like_bf16(mc, mg), 3 * 3);
    assert_true(mb_test_sample_replay(mg, mc, 3, 40, &sp, 1e-5) <= 1);
    mb_model_free(mc), mb_model_free(mg);
}

/* Sampling in bf16 precision: the steps run layer by layer and the draw
 * reads the LM head's own logits (rounded as the precision stores them),
 * replayed on the CPU in bf16 precision. The two differ by bf16 flips
 * (bf16_matches: a value on the other side of a rounding boundary moves
 * 2^-8), so a draw may land on the other side of a class boundary within
 * 1e-2 of u; a few such draws are allowed, any other is a failure. */
static void test_lm_sample_bf16(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 97);
    mb_config cfg = small(0);
    mb_model *mc, *mg;
    model_pair(&cfg, 5, &r, &mc, &mg);
    assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_BF16), 0);
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_BF16), 0);
    const mb_sampler sp = {.temperature = 0.9f, .top_p = 0.95f, .seed = 23};
    const int off1 = mb_test_sample_replay(mg, mc, 3, 40, &sp, 1e-2);
    const mb_sampler sk = {.temperature = 1.2f, .top_p = 1.f, .seed = 24, .top_k = 4};
    const int off2 = mb_test_sample_replay(mg, mc, 20, 12, &sk, 1e-2);
    assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_FP32), 0);
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_FP32), 0);
    assert_true(off1 <= 3 && off2 <= 3);
    mb_model_free(mc), mb_model_free(mg);
}

/* L steps of B rows (random tokens) on mg against mc on the CPU: the
 * logits' worst relative error, which must be below 1e-5 */
static void lm_steps_vs_cpu(mb_model *mc, mb_model *mg, int B, int L, mb_rng *r, const char *how)
{
    const int V = mb_config_vocab_padded(&mc->cfg);
    float *lc = malloc((size_t)B * V * 4), *lg = malloc((size_t)B * V * 4);
    int32_t *tok = malloc((size_t)B * sizeof(int32_t));
    assert_true(lc && lg && tok);
    mb_state *sc = mb_state_create(mc, B), *sg = mb_state_create(mg, B);
    assert_true(sc && sg);
    double worst = 0;
    for (int t = 0; t < L; t++) {
        for (int b = 0; b < B; b++) tok[b] = (int32_t)mb_rng_below(r, (uint32_t)mc->cfg.vocab_size);
        assert_int_equal(mb_model_step(mc, sc, tok, lc), 0);
        assert_int_equal(mb_model_step(mg, sg, tok, lg), 0);
        const double e = mb_test_rel_err(lg, lc, (size_t)B * V);
        if (e > worst) worst = e;
    }
    printf("# LM step %s (d_model %d x %d, %d rows) vs the CPU over %d steps: rel err %.2e\n", how, mc->cfg.d_model,
           mc->cfg.n_layer, B, L, worst);
    assert_true(worst < 1e-5);
    mb_state_free(sc), mb_state_free(sg);
    free(lc), free(lg), free(tok);
}

/* The LM's step as one kernel on thread-block clusters (mb_stack_step;
 * MB_CUDA_STEP=cluster, a context of its own, takes it at any rows): the
 * DNA model's width at 3 layers; test_lm_cluster its steps against the
 * CPU's at 1 and 5 rows, test_lm_cluster_draws its draws replayed on the
 * CPU at 1, 3 and 9 rows, then AUTO's choice of it (two tests, so that
 * each fits a racecheck part). Thread-block clusters need compute 9.0+;
 * on an older GPU the tests say so and are skipped. */
typedef struct {
    mb_ctx *g2;
    mb_model *mc, *mg;
    mb_rng r;
} lm_cluster_pair;

/* the pair on the cluster context; 0 when this GPU has no clusters (the
 * caller skips) */
static int lm_cluster_open(lm_cluster_pair *p, uint64_t seed)
{
    mb_rng_seed(&p->r, mb_test_seed() + seed);
    mb_config cfg = small(0);
    /* under the sanitizers the narrowest cluster (4 blocks: d_model 128,
     * expand 1), as test_stack_step's small cases: racecheck did not finish
     * a step of the DNA width's 16 blocks of 1,024 threads in 280 s
     * (session 35, H100) */
    cfg.d_model = gpu_test_small() ? 128 : 256;
    cfg.expand = gpu_test_small() ? 1 : 2;
    cfg.vocab_size = 16;
    p->g2 = mb_test_cuda_step_ctx("cluster");
    assert_non_null(p->g2);
    model_pair_on(p->g2, &cfg, 6, &p->r, &p->mc, &p->mg);
    const int used = mb_lm_stack_step_used(p->mg, 1) && mb_lm_stack_step_used(p->mg, 5);
    /* the CPU never takes it */
    assert_int_equal(mb_lm_stack_step_used(p->mc, 1), 0);
    if (!used) printf("# no thread-block clusters on this GPU (compute < 9.0): the cluster step not tested\n");
    return used;
}

static void lm_cluster_close(lm_cluster_pair *p)
{
    mb_model_free(p->mc), mb_model_free(p->mg);
    mb_ctx_free(p->g2);
}

static void test_lm_cluster(void **s)
{
    (void)s;
    lm_cluster_pair p;
    const int used = lm_cluster_open(&p, 96);
    if (!used) {
        lm_cluster_close(&p);
        skip();
    }
    /* under the sanitizers (racecheck did not finish the tests as one in
     * 290 s) fewer steps: the same kernels and row counts */
    const int ns = gpu_test_small() ? 6 : 24;
    lm_steps_vs_cpu(p.mc, p.mg, 1, ns, &p.r, "cluster");
    lm_steps_vs_cpu(p.mc, p.mg, 5, ns, &p.r, "cluster");
    lm_cluster_close(&p);
}

static void test_lm_cluster_draws(void **s)
{
    (void)s;
    lm_cluster_pair p;
    const int used = lm_cluster_open(&p, 99);
    if (!used) {
        lm_cluster_close(&p);
        skip();
    }
    const mb_sampler sp = {.temperature = 1.f, .top_p = 0.95f, .seed = 31};
    const int nd = gpu_test_small() ? 8 : 60;
    /* draws: eager steps, then the graph's; 1 row, 3, 9 */
    assert_true(mb_test_sample_replay(p.mg, p.mc, 1, nd, &sp, 1e-5) <= 1);
    assert_true(mb_test_sample_replay(p.mg, p.mc, 3, nd / 2, &sp, 1e-5) <= 1);
    assert_true(mb_test_sample_replay(p.mg, p.mc, 9, nd / 2, &sp, 1e-5) <= 1);
    lm_cluster_close(&p);

    /* AUTO (the suite's context) takes it where the rows fit one wave of
     * clusters at up to 12 rows a cluster (ops/stack_step.cu): mamba-dna's
     * default width at 1 and 4 rows, the DNA width at 1, 4, 16 and 64 (12
     * rows a cluster: 6 clusters of 16 blocks, one wave on a 132-SM H100 or
     * H200); not at 256 rows (22 clusters) */
    mb_config cfg = small(0);
    cfg.vocab_size = 16;
    cfg.d_model = 128;
    mb_model *mc, *mg;
    model_pair(&cfg, 7, &p.r, &mc, &mg);
    assert_int_equal(mb_lm_stack_step_used(mg, 1), 1);
    assert_int_equal(mb_lm_stack_step_used(mg, 4), 1);
    assert_int_equal(mb_lm_stack_step_used(mg, 256), 0);
    assert_true(mb_test_sample_replay(mg, mc, 1, nd, &sp, 1e-5) <= 1);
    assert_true(mb_test_sample_replay(mg, mc, 4, nd / 2, &sp, 1e-5) <= 1);
    mb_model_free(mc), mb_model_free(mg);
    cfg.d_model = 256;
    mg = mb_model_create(gpu, &cfg, 7);
    assert_non_null(mg);
    assert_int_equal(mb_lm_stack_step_used(mg, 1), 1);
    assert_int_equal(mb_lm_stack_step_used(mg, 4), 1);
    assert_int_equal(mb_lm_stack_step_used(mg, 16), 1);
    assert_int_equal(mb_lm_stack_step_used(mg, 64), 1);
    assert_int_equal(mb_lm_stack_step_used(mg, 256), 0);
    mb_model_free(mg);
}

/* The LM's step layer by layer (MB_CUDA_STEP=layer, a context of its own:
 * AUTO's path for fp32 wide models at many rows): each layer's ops, the
 * scan's one-step kernel (scan_fwd_one) among them, with the state read and
 * written in place; real and complex A, against the CPU */
static void test_lm_layer(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 95);
    mb_ctx *g2 = mb_test_cuda_step_ctx("layer");
    assert_non_null(g2);
    for (int cplx = 0; cplx < 2; cplx++) {
        mb_config cfg = small(cplx);
        mb_model *mc, *mg;
        model_pair_on(g2, &cfg, 8 + cplx, &r, &mc, &mg);
        lm_steps_vs_cpu(mc, mg, 3, 12, &r, cplx ? "layer by layer, complex" : "layer by layer");
        lm_steps_vs_cpu(mc, mg, 40, 6, &r, cplx ? "layer by layer, complex" : "layer by layer");
        mb_model_free(mc), mb_model_free(mg);
    }
    mb_ctx_free(g2);
}

/* A wide LM (d_model 512: the block step's split kernels) with a large
 * vocabulary (20,000: the head over every SM and the draw from global
 * memory): steps against the parallel forward, and sampling replayed on
 * the CPU. */
/* the wide model's pair (r seeded with seed), its config in *cfg */
static void lm_wide_pair(uint64_t seed, mb_rng *r, mb_config *cfg, mb_model **mc, mb_model **mg)
{
    mb_rng_seed(r, mb_test_seed() + seed);
    *cfg = small(0);
    cfg->d_model = 512;
    cfg->n_layer = 2;
    cfg->vocab_size = 20000;
    cfg->tie_embeddings = 0; /* the head's bf16 copy then rounds the head alone, as the CPU reference can */
    model_pair(cfg, 5, r, mc, mg);
}

static void test_lm_wide(void **s)
{
    (void)s;
    mb_rng r;
    mb_config cfg;
    mb_model *mc, *mg;
    lm_wide_pair(97, &r, &cfg, &mc, &mg);
    /* under the sanitizers (racecheck did not finish this test in 290 s)
     * fewer tokens: the same kernels, row groups and paths, fewer launches */
    const int sm = gpu_test_small();
    const int B = 2, L = sm ? 3 : 6, V = mb_config_vocab_padded(&cfg);
    int32_t tok[2 * 6], col[2];
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)mb_rng_below(&r, (uint32_t)cfg.vocab_size);
    float *ref = malloc((size_t)B * L * V * 4), *got = malloc((size_t)B * L * V * 4), *tmp = malloc((size_t)B * V * 4);
    assert_true(ref && got && tmp);
    assert_int_equal(mb_model_forward(mg, tok, B, L, NULL, ref, NULL), 0);
    mb_state *st = mb_state_create(mg, B);
    assert_non_null(st);
    for (int t = 0; t < L; t++) {
        for (int b = 0; b < B; b++) col[b] = tok[b * L + t];
        assert_int_equal(mb_model_step(mg, st, col, tmp), 0);
        for (int b = 0; b < B; b++) memcpy(got + ((size_t)b * L + t) * V, tmp + (size_t)b * V, (size_t)V * 4);
    }
    const double e = mb_test_rel_err(got, ref, (size_t)B * L * V);
    printf("# GPU wide LM (split block step) step by step vs parallel forward: rel err %.2e\n", e);
    assert_true(e < 1e-5);
    mb_state_free(st);
    free(ref), free(got), free(tmp);
    const mb_sampler sp = {.temperature = 1.f, .top_p = 0.9f, .seed = 23, .top_k = 200};
    assert_true(mb_test_sample_replay(mg, mc, 2, sm ? 8 : 60, &sp, 1e-5) <= 1);
    const mb_sampler s1 = {.temperature = 1.f, .top_p = 1.f, .seed = 24};
    assert_true(mb_test_sample_replay(mg, mc, 1, sm ? 4 : 20, &s1, 1e-5) <= 1);
    /* 9 rows: the split kernels by groups of rows, the head as a GEMM */
    assert_true(mb_test_sample_replay(mg, mc, 9, sm ? 4 : 24, &sp, 1e-5) <= 1);
    mb_model_free(mc), mb_model_free(mg);
}

/* test_lm_wide's model with bf16 weights (a test of its own, so that each
 * half fits a sanitizer's call: the whole did not finish racecheck in 290 s) */
static void test_lm_wide_bf16(void **s)
{
    (void)s;
    mb_rng r;
    mb_config cfg;
    mb_model *mc, *mg;
    lm_wide_pair(197, &r, &cfg, &mc, &mg);
    const int sm = gpu_test_small();
    const int B = 2, L = sm ? 3 : 6;
    const mb_sampler sp = {.temperature = 1.f, .top_p = 0.9f, .seed = 23, .top_k = 200};

    /* bf16 weights on the GPU (mb_model_set_bf16) against the CPU with the
     * same matrices rounded to bf16: steps and sampling; int8 is refused
     * here, bf16 on the CPU */
    assert_int_equal(mb_model_set_int8(mg, 1), -1);
    assert_int_equal(mb_model_set_bf16(mc, 1), -1);
    assert_int_equal(mb_model_set_bf16(mg, 1), 0);
    assert_int_equal(round_like_bf16(mc, mg), 2 * 3 + 1); /* in, x, out_proj of 2 layers; lm_head */
    lm_steps_vs_cpu(mc, mg, B, L, &r, "with bf16 weights (the CPU on the same, rounded)");
    assert_true(mb_test_sample_replay(mg, mc, 2, sm ? 6 : 40, &sp, 1e-5) <= 1);
    assert_true(mb_test_sample_replay(mg, mc, 6, sm ? 4 : 16, &sp, 1e-5) <= 1); /* the bf16 head's rows in two groups */
    /* past 8 rows (16 for the head) the copies are not read: the layers run
     * as fp32 ones (their kernels and GEMMs, faster there), so the steps are
     * the CPU's on the unrounded weights (mg's fp32 ones, downloaded) */
    mb_model *mf = mb_model_create(cpu, &cfg, 5);
    assert_non_null(mf);
    assert_int_equal(mb_dev_download(gpu, mf->params.data, mg->params.data, mf->params.total * 4), 0);
    lm_steps_vs_cpu(mf, mg, 20, L, &r, "with bf16 copies at 20 rows (not read: the CPU on fp32 weights)");
    assert_true(mb_test_sample_replay(mg, mf, 20, sm ? 3 : 8, &sp, 1e-5) <= 1);
    mb_model_free(mf);
    mb_model_free(mc), mb_model_free(mg);
}

/* ---- classification head ---------------------------------------------------
 * classify_backward on the GPU against the CPU with the same weights: loss,
 * stats, every gradient, and the probabilities of classify. */
static void classify_matches(int cplx, int recompute, int chunk)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 500 + (uint64_t)(cplx * 10 + recompute * 3 + chunk));
    mb_config cfg = small(cplx);
    cfg.n_classes = 5;
    mb_model *mc, *mg;
    model_pair(&cfg, 7, &r, &mc, &mg);
    mb_model_set_recompute(mg, recompute);
    if (recompute) mb_model_set_recompute_chunk(mg, chunk);
    const int B = 3, L = getenv("MB_GPU_TEST_SMALL") ? 60 : 300, C = cfg.n_classes;
    int32_t *tok = malloc(sizeof(int32_t) * B * L);
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)mb_rng_below(&r, 11);
    const int32_t lab[3] = {1, MB_IGNORE_INDEX, 4};
    mb_loss_stats sc = {0}, sg = {0};
    const char *worst_name;
    double worst;
    const double el = pair_grads(mc, mg, tok, NULL, lab, B, L, &sc, &sg, &worst, &worst_name);
    float pc[3 * 5], pg[3 * 5];
    assert_int_equal(mb_model_classify(mc, tok, B, L, NULL, pc, NULL), 0);
    if (mb_model_classify(mg, tok, B, L, NULL, pg, NULL)) fail_msg("%s", mb_error_last());
    double ep = mb_test_rel_err(pg, pc, (size_t)B * C);
    printf("# classify %s %s: loss rel err %.2e, count %lld/%lld, worst gradient %s %.2e, probs %.2e\n",
           cplx ? "complex" : "real",
           recompute == MB_RECOMPUTE_STACK ? "stacked chunks" : recompute ? (chunk ? "recompute in chunks" : "recompute") : "plain",
           el, (long long)sg.count, (long long)sc.count, worst_name, worst, ep);
    assert_true(sg.count == 2 && sc.count == 2 && sg.correct == sc.correct);
    assert_true(el < 1e-5);
    /* as the LM step above: long sums in another order */
    assert_true(worst < 1e-4);
    assert_true(ep < 1e-5);
    free(tok);
    mb_model_free(mc), mb_model_free(mg);
}

static void test_classify_plain(void **s) { (void)s; classify_matches(0, 0, 0); }
static void test_classify_complex(void **s) { (void)s; classify_matches(1, 0, 0); }
static void test_classify_recompute(void **s) { (void)s; classify_matches(0, 1, 0); }
static void test_classify_recompute_chunks(void **s) { (void)s; classify_matches(1, 1, 37); }
static void test_classify_stack_chunks(void **s) { (void)s; classify_matches(0, MB_RECOMPUTE_STACK, 37); }

/* forward_chunk_pooled on the GPU against the CPU: the pooled sums and the
 * logits of uneven chunks, then the head on the pooled means */
static void test_chunk_pooled(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 600);
    mb_config cfg = small(1);
    cfg.n_classes = 3;
    mb_model *mc, *mg;
    model_pair(&cfg, 4, &r, &mc, &mg);
    const int B = 2, L = 150, d = cfg.d_model, V = mb_config_vocab_padded(&cfg);
    int32_t *tok = malloc(sizeof(int32_t) * B * L), *col = malloc(sizeof(int32_t) * B * L);
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)mb_rng_below(&r, 11);
    mb_state *stc = mb_state_create(mc, B), *stg = mb_state_create(mg, B);
    assert_non_null(stc);
    assert_non_null(stg);
    float *hc = calloc((size_t)B * d, 4), *hg = calloc((size_t)B * d, 4);
    float *lc = malloc((size_t)B * L * V * 4), *lg = malloc((size_t)B * L * V * 4);
    const int cuts[4] = {0, 1, 64, L};
    double el = 0;
    for (int k = 0; k < 3; k++) {
        const int len = cuts[k + 1] - cuts[k];
        for (int b = 0; b < B; b++) memcpy(col + (size_t)b * len, tok + (size_t)b * L + cuts[k], len * 4);
        assert_int_equal(mb_model_forward_chunk_pooled(mc, stc, col, len, lc, hc), 0);
        if (mb_model_forward_chunk_pooled(mg, stg, col, len, lg, hg)) fail_msg("%s", mb_error_last());
        el = fmax(el, mb_test_rel_err(lg, lc, (size_t)B * len * V));
    }
    double eh = mb_test_rel_err(hg, hc, (size_t)B * d);
    for (int i = 0; i < B * d; i++) hc[i] /= (float)L, hg[i] /= (float)L;
    float pc[2 * 3], pg[2 * 3];
    assert_int_equal(mb_model_classify_pooled(mc, hc, B, pc), 0);
    if (mb_model_classify_pooled(mg, hg, B, pg)) fail_msg("%s", mb_error_last());
    double ep = mb_test_rel_err(pg, pc, (size_t)B * 3);
    printf("# forward_chunk_pooled GPU vs CPU: logits %.2e, pooled sums %.2e, head probs %.2e\n", el,
           eh, ep);
    assert_true(el < 1e-5 && eh < 1e-5 && ep < 1e-5);
    mb_state_free(stc), mb_state_free(stg);
    free(tok), free(col), free(hc), free(hg), free(lc), free(lg);
    mb_model_free(mc), mb_model_free(mg);
}

/* ---- the SaShiMi U-Net ------------------------------------------------------
 * forward_backward on the GPU against the CPU with the same weights (loss,
 * stats, every gradient), and the recurrent step on the GPU against the
 * GPU's parallel forward. */
static mb_config small_sashimi(int cplx, int mlp)
{
    mb_config c;
    mb_config_sashimi_default(&c);
    c.d_model = 32;
    c.n_layer = 2;
    c.vocab_size = 11;
    c.init = cplx ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL;
    c.mlp = mlp;
    return c;
}

static void sashimi_matches(int cplx, int mlp)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 700 + (uint64_t)(cplx * 2 + mlp));
    mb_config cfg = small_sashimi(cplx, mlp);
    mb_model *mc, *mg;
    model_pair(&cfg, 5, &r, &mc, &mg);
    const int B = 2, L = getenv("MB_GPU_TEST_SMALL") ? 64 : 320;
    int32_t *tok = malloc(sizeof(int32_t) * B * L), *tgt = malloc(sizeof(int32_t) * B * L);
    for (int i = 0; i < B * L; i++) {
        tok[i] = (int32_t)mb_rng_below(&r, 11);
        tgt[i] = i % 7 == 3 ? MB_IGNORE_INDEX : (int32_t)mb_rng_below(&r, 11);
    }
    mb_loss_stats sc = {0}, sg = {0};
    const char *worst_name;
    double worst;
    const double el = pair_grads(mc, mg, tok, tgt, NULL, B, L, &sc, &sg, &worst, &worst_name);
    printf("# sashimi %s%s: loss rel err %.2e, count %lld/%lld, worst gradient %s %.2e\n",
           cplx ? "complex" : "real", mlp ? " + mlp" : "", el, (long long)sg.count,
           (long long)sc.count, worst_name, worst);
    assert_true(sg.count == sc.count && sg.correct == sc.correct);
    assert_true(el < 1e-5);
    /* as the LM's: long sums in another order */
    assert_true(worst < 1e-4);
    free(tok), free(tgt);
    mb_model_free(mc), mb_model_free(mg);
}

/* the U-Net in bf16, as the LM's (bf16_matches: its bounds and reasons) */
static void test_sashimi_bf16(void **s)
{
    (void)s;
    bf16_matches("U-Net + MLP", small_sashimi(0, 1), 0, 0, gpu_test_small() ? 64 : 640, 1e-1);
}

static void test_sashimi_real(void **s) { (void)s; sashimi_matches(0, 0); }
static void test_sashimi_complex_mlp(void **s) { (void)s; sashimi_matches(1, 1); }

/* mlp 0 runs the fused step paths (embedding read by the first block, the
 * pool exchange in the down stack's last block); mlp 1 the unfused ones.
 * After the steps (their graphs captured), the same state goes on through
 * mb_model_forward_chunk (whole periods by the parallel forward from the
 * state, then steps) and single steps again (the graphs replayed on the
 * state the chunk left), all against the parallel forward of the whole. */
static void sashimi_recurrent(int cplx, int mlp)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 799);
    mb_config cfg = small_sashimi(cplx, mlp);
    mb_model *m = mb_model_create(gpu, &cfg, 3);
    assert_non_null(m);
    /* three coarse periods of 16 by steps (two under the sanitizers: a step
     * is many small launches, each instrumented), then 59 positions in two
     * chunks (one period, whose center level is one row a sequence; then two
     * periods in parallel and 11 steps), then 5 steps */
    const int B = 2, L = getenv("MB_GPU_TEST_SMALL") ? 32 : 48, V = mb_config_vocab_padded(&cfg);
    const int Lc = 59, Lt = L + Lc + 5;
    int32_t *tok = malloc(sizeof(int32_t) * B * Lt), *ctok = malloc(sizeof(int32_t) * B * Lc), col[2];
    for (int i = 0; i < B * Lt; i++) tok[i] = (int32_t)mb_rng_below(&r, 11);
    float *ref = malloc((size_t)B * Lt * V * 4), *got = malloc((size_t)B * Lt * V * 4), tmp[2 * 16];
    float *cl = malloc((size_t)B * Lc * V * 4);
    assert_true(tok && ctok && ref && got && cl);
    assert_int_equal(mb_model_forward(m, tok, B, Lt, NULL, ref, NULL), 0);
    mb_state *st = mb_state_create(m, B);
    assert_non_null(st);
    for (int t = 0; t < Lt; t++) {
        if (t == L) {
            for (int c0 = 0, c1 = 16; c0 < Lc; c0 = c1, c1 = Lc) {
                const int len = c1 - c0;
                for (int b = 0; b < B; b++) memcpy(ctok + (size_t)b * len, tok + (size_t)b * Lt + L + c0, len * 4);
                if (mb_model_forward_chunk(m, st, ctok, len, cl)) fail_msg("%s", mb_error_last());
                for (int b = 0; b < B; b++)
                    memcpy(got + ((size_t)b * Lt + L + c0) * V, cl + (size_t)b * len * V, (size_t)len * V * 4);
            }
            t += Lc - 1;
            continue;
        }
        for (int b = 0; b < B; b++) col[b] = tok[b * Lt + t];
        if (mb_model_step(m, st, col, tmp)) fail_msg("%s", mb_error_last());
        for (int b = 0; b < B; b++) memcpy(got + ((size_t)b * Lt + t) * V, tmp + b * V, V * 4);
    }
    double worst[3] = {0, 0, 0}; /* steps, chunk, steps after it */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Lt; t++) {
            const size_t o = ((size_t)b * Lt + t) * V;
            const int k = t < L ? 0 : t < L + Lc ? 1 : 2;
            worst[k] = fmax(worst[k], mb_test_rel_err(got + o, ref + o, V));
        }
    printf("# sashimi %s%s GPU vs parallel forward, worst position: steps %.2e, chunk %.2e, steps after it %.2e\n",
           cplx ? "complex" : "real", mlp ? " + mlp" : "", worst[0], worst[1], worst[2]);
    for (int k = 0; k < 3; k++) assert_true(worst[k] < 1e-5);
    mb_state_free(st);
    free(tok), free(ctok), free(ref), free(got), free(cl);
    mb_model_free(m);
}

static void test_sashimi_recurrent(void **s) { (void)s; sashimi_recurrent(1, 1); }
static void test_sashimi_recurrent_fused(void **s) { (void)s; sashimi_recurrent(0, 0); }

/* generation with the draws on the GPU (a period's steps and draws per
 * graph) against the CPU replaying it with the same weights, and a run cut
 * mid-period into two calls (eager steps up to the next period, then
 * graphs) against the whole run */
static void test_sashimi_sample(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 811);
    mb_config cfg = small_sashimi(0, 0);
    mb_model *mc, *mg;
    model_pair(&cfg, 6, &r, &mc, &mg);
    /* under the sanitizers 36 draws: still an eager start, a capture, eager
     * steps to the next period in the cut run, and a replay */
    const int n = getenv("MB_GPU_TEST_SMALL") ? 36 : 80;
    const mb_sampler sp[2] = {{.temperature = 1.f, .top_p = 1.f, .seed = 11}, {.temperature = 0.8f, .top_p = 0.9f, .seed = 12}};
    int off = 0;
    off += mb_test_sample_replay(mg, mc, 1, n, &sp[0], 1e-5);
    off += mb_test_sample_replay(mg, mc, 3, n, &sp[1], 1e-5);
    assert_true(off <= 1);
    mb_model_free(mc), mb_model_free(mg);
}

/* the same in bf16 precision: the GPU's steps run the blocks' own ops
 * (rounding where the forward does) in graphs, the draw reads the head's
 * own logits, replayed on the CPU in bf16; the two differ by bf16 flips, so
 * a few draws within 1e-2 of a class boundary may go the other way (as
 * test_lm_sample_bf16) */
static void test_sashimi_sample_bf16(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 812);
    for (int mlp = 0; mlp <= 1; mlp++) {
        mb_config cfg = small_sashimi(mlp, mlp);
        mb_model *mc, *mg;
        model_pair(&cfg, 7, &r, &mc, &mg);
        assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_BF16), 0);
        assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_BF16), 0);
        const int n = getenv("MB_GPU_TEST_SMALL") ? 36 : 80;
        const mb_sampler sp = {.temperature = 0.9f, .top_p = 0.95f, .seed = 13 + mlp};
        const int off = mb_test_sample_replay(mg, mc, 2, n, &sp, 1e-2);
        assert_int_equal(mb_ctx_set_precision(cpu, MB_PREC_FP32), 0);
        assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_FP32), 0);
        printf("# sashimi%s bf16: %d of 2 x %d draws off\n", mlp ? " complex + mlp" : "", off, n);
        assert_true(off <= 3);
        mb_model_free(mc), mb_model_free(mg);
    }
}

/* A state's step graphs follow the context's precision: steps captured in
 * fp32, then the context in bf16, whose logits must all be bf16 values
 * (stale fp32 graphs would give fp32 logits), then fp32 again, whose
 * logits must not all be (stale bf16 graphs would) */
static void test_sashimi_graphs_follow_precision(void **s)
{
    (void)s;
    mb_config cfg = small_sashimi(0, 0);
    mb_model *m = mb_model_create(gpu, &cfg, 4);
    assert_non_null(m);
    const int B = 2, V = mb_config_vocab_padded(&cfg), per = 16; /* small_sashimi's pools' product */
    mb_state *st = mb_state_create(m, B);
    assert_non_null(st);
    float *lg = malloc((size_t)B * V * sizeof(float));
    assert_non_null(lg);
    int32_t tok[2] = {3, 7};
    for (int phase = 0; phase < 3; phase++) {
        assert_int_equal(mb_ctx_set_precision(gpu, phase == 1 ? MB_PREC_BF16 : MB_PREC_FP32), 0);
        int not_bf16 = 0;
        for (int t = 0; t < 3 * per; t++) {
            if (mb_model_step(m, st, tok, lg)) fail_msg("%s", mb_error_last());
            for (int i = 0; i < B * cfg.vocab_size; i++) not_bf16 += mb_bf16_float(mb_bf16_round(lg[i])) != lg[i];
            tok[0] = (tok[0] + 5) % 11, tok[1] = (tok[1] + 3) % 11;
        }
        printf("# sashimi steps, %s: %d of %d logits not bf16 values\n", phase == 1 ? "bf16" : "fp32", not_bf16,
               3 * per * B * cfg.vocab_size);
        if (phase == 1) assert_int_equal(not_bf16, 0);
        else assert_true(not_bf16 > 0);
    }
    assert_int_equal(mb_ctx_set_precision(gpu, MB_PREC_FP32), 0);
    free(lg);
    mb_state_free(st);
    mb_model_free(m);
}

/* ---- what the GPU's kernels take: refused before any work ------------------- */
static void test_capabilities(void **s)
{
    (void)s;
    mb_config cfg = small(0);
    cfg.d_state = 128; /* the CPU runs it; the GPU scan keeps at most 64 states a channel */
    assert_int_equal(mb_ctx_check_config(cpu, &cfg), 0);
    assert_int_equal(mb_ctx_check_config(gpu, &cfg), -1);
    printf("# %s\n", mb_error_last());
    assert_non_null(strstr(mb_error_last(), "d_state 128"));
    assert_null(mb_model_create(gpu, &cfg, 1));
    assert_non_null(strstr(mb_error_last(), "d_state 128"));
    assert_int_equal(mb_ctx_check(gpu), 0); /* nothing ran, nothing failed */
    cfg.d_state = 64;
    mb_model *m = mb_model_create(gpu, &cfg, 1);
    assert_non_null(m);
    /* a batch beyond the scan's grid: one line before any work */
    int32_t *tok = calloc(70000, sizeof(int32_t));
    assert_int_equal(mb_model_forward(m, tok, 70000, 1, NULL, NULL, NULL), -1);
    assert_non_null(strstr(mb_error_last(), "batch 70000"));
    free(tok);
    assert_int_equal(mb_ctx_check(gpu), 0);
    mb_model_free(m);
}

/* ---- scoring chunks: per-token log-likelihoods on the GPU against the CPU's,
 * the LM's and the U-Net's (its steps through graphs, and parallel pieces) */
static void chunk_scores_match(const mb_config *cfg, int B, int L, const int *cuts, int ncut)
{
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 900 + (uint64_t)cfg->arch);
    mb_model *mc, *mg;
    model_pair(cfg, 8, &r, &mc, &mg);
    int32_t *tok = malloc(sizeof(int32_t) * B * L), *tgt = malloc(sizeof(int32_t) * B * L);
    int32_t *ptok = malloc(sizeof(int32_t) * B * L), *ptgt = malloc(sizeof(int32_t) * B * L);
    double *lc = malloc(8 * (size_t)B * L), *lg = malloc(8 * (size_t)B * L);
    for (int i = 0; i < B * L; i++) {
        tok[i] = (int32_t)mb_rng_below(&r, (uint32_t)cfg->vocab_size);
        tgt[i] = i % 5 == 2 ? MB_IGNORE_INDEX : (int32_t)mb_rng_below(&r, (uint32_t)cfg->vocab_size);
    }
    mb_state *sc = mb_state_create(mc, B), *sg = mb_state_create(mg, B);
    assert_non_null(sc);
    assert_non_null(sg);
    mb_loss_stats stc = {0}, stg = {0};
    double worst = 0;
    for (int k = 0; k < ncut; k++) {
        const int t0 = cuts[k], len = (k + 1 < ncut ? cuts[k + 1] : L) - t0;
        for (int b = 0; b < B; b++) {
            memcpy(ptok + (size_t)b * len, tok + (size_t)b * L + t0, (size_t)len * 4);
            memcpy(ptgt + (size_t)b * len, tgt + (size_t)b * L + t0, (size_t)len * 4);
        }
        mb_chunk_out oc = {.targets = ptgt, .logprob = lc, .stats = &stc};
        mb_chunk_out og = {.targets = ptgt, .logprob = lg, .stats = &stg};
        assert_int_equal(mb_model_forward_chunk_ex(mc, sc, ptok, len, &oc), 0);
        if (mb_model_forward_chunk_ex(mg, sg, ptok, len, &og)) fail_msg("%s", mb_error_last());
        for (int i = 0; i < B * len; i++) worst = fmax(worst, fabs(lg[i] - lc[i]));
    }
    const double es = fabs(stg.loss_sum - stc.loss_sum) / fabs(stc.loss_sum);
    printf("# %s chunk scores GPU vs CPU: log-likelihoods within %.2e, sum %.2e, count %lld/%lld\n",
           mc->arch->name, worst, es, (long long)stg.count, (long long)stc.count);
    assert_true(stg.count == stc.count && stg.correct == stc.correct);
    assert_true(worst < 1e-4 && es < 1e-5);
    mb_state_free(sc), mb_state_free(sg);
    free(tok), free(tgt), free(ptok), free(ptgt), free(lc), free(lg);
    mb_model_free(mc), mb_model_free(mg);
}

static void test_chunk_scores(void **s)
{
    (void)s;
    const mb_config lm = small(1);
    const int lcuts[3] = {0, 1, 77};
    chunk_scores_match(&lm, 2, 150, lcuts, 3);
    mb_config sa = small_sashimi(1, 1);
    sa.n_classes = 0;
    /* pools {4, 4}: 3 steps, then whole periods in a piece, then steps; a
     * second chunk starts mid-period */
    const int scuts[3] = {0, 3, 70};
    chunk_scores_match(&sa, 2, 100, scuts, 3);
}

/* the classification head on the U-Net: its training step on the GPU
 * against the CPU */
static void test_sashimi_classify(void **s)
{
    (void)s;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed() + 950);
    mb_config cfg = small_sashimi(0, 1);
    cfg.n_classes = 4;
    mb_model *mc, *mg;
    model_pair(&cfg, 9, &r, &mc, &mg);
    const int B = 3, L = 64;
    int32_t *tok = malloc(sizeof(int32_t) * B * L);
    for (int i = 0; i < B * L; i++) tok[i] = (int32_t)mb_rng_below(&r, 11);
    const int32_t lab[3] = {3, 0, MB_IGNORE_INDEX};
    mb_loss_stats sc = {0}, sg = {0};
    const char *name;
    double worst;
    const double el = pair_grads(mc, mg, tok, NULL, lab, B, L, &sc, &sg, &worst, &name);
    printf("# U-Net classifier GPU vs CPU: loss %.2e, worst gradient %s %.2e\n", el, name, worst);
    assert_true(sg.count == 2 && sc.count == 2);
    assert_true(el < 1e-5 && worst < 1e-4);
    free(tok);
    mb_model_free(mc), mb_model_free(mg);
}

int main(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("# no GPU: skipped\n");
        return 77;
    }
    cpu = mb_ctx_create("cpu");
    gpu = mb_ctx_create("cuda");
    if (!gpu) {
        printf("# cuda context: %s\n", mb_error_last());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_real),
        cmocka_unit_test(test_step_complex),
        cmocka_unit_test(test_step_recompute),
        cmocka_unit_test(test_step_recompute_chunks),
        cmocka_unit_test(test_step_recompute_chunks_complex),
        cmocka_unit_test(test_step_stack_chunks),
        cmocka_unit_test(test_step_stack_chunks_complex),
        cmocka_unit_test(test_step_inner),
        cmocka_unit_test(test_step_inner_chunks),
        cmocka_unit_test(test_step_inner_chunks_complex),
        cmocka_unit_test(test_step_auto_inner_chunks),
        cmocka_unit_test(test_step_bf16_inner_chunks),
        cmocka_unit_test(test_step_bf16),
        cmocka_unit_test(test_step_bf16_recompute_chunks),
        cmocka_unit_test(test_step_bf16_stack_chunks),
        cmocka_unit_test(test_bidir),
        cmocka_unit_test(test_bidir_rc),
        cmocka_unit_test(test_bidir_rc_recompute),
        cmocka_unit_test(test_bidir_biases),
        cmocka_unit_test(test_bidir_rc_recompute_chunks),
        cmocka_unit_test(test_bidir_rc_classify),
        cmocka_unit_test(test_bidir_chunk),
        cmocka_unit_test(test_bidir_bf16),
        cmocka_unit_test(test_recurrent),
        cmocka_unit_test(test_lm_sample), cmocka_unit_test(test_lm_sample_bf16),
        cmocka_unit_test(test_lm_cluster), cmocka_unit_test(test_lm_cluster_draws),
        cmocka_unit_test(test_lm_layer),
        cmocka_unit_test(test_lm_wide), cmocka_unit_test(test_lm_wide_bf16),
        cmocka_unit_test(test_classify_plain),
        cmocka_unit_test(test_classify_complex),
        cmocka_unit_test(test_classify_recompute),
        cmocka_unit_test(test_classify_recompute_chunks),
        cmocka_unit_test(test_classify_stack_chunks),
        cmocka_unit_test(test_chunk_pooled),
        cmocka_unit_test(test_sashimi_real),
        cmocka_unit_test(test_sashimi_bf16),
        cmocka_unit_test(test_sashimi_sample_bf16),
        cmocka_unit_test(test_sashimi_graphs_follow_precision),
        cmocka_unit_test(test_sashimi_complex_mlp),
        cmocka_unit_test(test_sashimi_recurrent), cmocka_unit_test(test_sashimi_recurrent_fused),
        cmocka_unit_test(test_sashimi_sample),
        cmocka_unit_test(test_capabilities),
        cmocka_unit_test(test_chunk_scores),
        cmocka_unit_test(test_sashimi_classify),
    };
    mb_test_filter_env();
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mb_ctx_free(gpu);
    mb_ctx_free(cpu);
    return rc;
}
