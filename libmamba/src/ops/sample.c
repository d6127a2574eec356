/* The draw of a generation step, CPU version: the rule of ops.h in double
 * (mb_sample_pick, also what the tests' replays use), and the head + draw op
 * as the composition of the CPU ops the step's logits come from (the norm,
 * then mb_gemm_infer_cpu, through the int8 head where the model has one), so
 * that on the CPU a sampled run sees exactly the logits mb_model_step
 * returns. */
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"

typedef struct {
    double q;
    int k;
} sample_item;

/* scratch: the kept weights in index order, then the classes to rank */
size_t mb_sample_scratch_bytes(int vocab)
{
    const size_t v = (size_t)(vocab > 0 ? vocab : 1);
    return v * sizeof(double) + v * sizeof(sample_item);
}

/* by q descending, then index ascending: the rank order of the rule */
static int item_cmp(const void *a, const void *b)
{
    const sample_item *x = a, *y = b;
    if (x->q != y->q) return x->q > y->q ? -1 : 1;
    return (x->k > y->k) - (x->k < y->k);
}

static void item_swap(sample_item *a, sample_item *b)
{
    const sample_item t = *a;
    *a = *b;
    *b = t;
}

/* Moves the first n of it[0..c) in rank order to the front, in no order: a
 * quickselect (the median of three as pivot; past 2 log2 c + 8 rounds the
 * rest is sorted, so no input makes it quadratic). Top-k of a flat
 * distribution (every class within 64-fold of the largest) had sorted the
 * whole vocabulary: 5 ms a token at 50,280 classes. */
static void sample_select(sample_item *it, int c, int n)
{
    int lo = 0, hi = c, rounds = 8;
    for (int m = c; m > 1; m >>= 1) rounds += 2;
    while (hi - lo > 1) {
        if (--rounds < 0) {
            qsort(it + lo, (size_t)(hi - lo), sizeof *it, item_cmp);
            return;
        }
        sample_item *a = it + lo, *b = it + lo + (hi - lo) / 2, *z = it + hi - 1;
        if (item_cmp(b, a) < 0) item_swap(a, b);
        if (item_cmp(z, b) < 0) item_swap(b, z);
        if (item_cmp(b, a) < 0) item_swap(a, b);
        const sample_item piv = *b;
        int i = lo, j = hi - 1;
        while (i <= j) {
            while (item_cmp(it + i, &piv) < 0) i++;
            while (item_cmp(it + j, &piv) > 0) j--;
            if (i <= j) item_swap(it + i++, it + j--);
        }
        /* [lo, j] rank before [i, hi); between them, the pivot */
        if (n <= j + 1) hi = j + 1;
        else if (n >= i) lo = i;
        else return;
    }
}

/* Ranks the classes of w that can be among the first `count` of the rank
 * order or inside a prefix holding `mass`: those with w at least a
 * threshold t, lowered 64-fold until they number count and hold mass (or
 * every class of w > 0 is ranked), since every class below t ranks after
 * them all. A peaked distribution ranks a handful of classes instead of
 * sorting the vocabulary; with a count, only those first `count` are
 * sorted. Returns how many are ranked, in `it`. */
static int sample_rank(const double *w, int vocab, int count, double mass, sample_item *it)
{
    int npos = 0;
    for (int k = 0; k < vocab; k++) npos += w[k] > 0;
    for (double t = 1.0 / 64;; t /= 64) {
        int c = 0;
        double sum = 0;
        for (int k = 0; k < vocab; k++)
            if (w[k] > 0 && (w[k] >= t || t < 1e-300)) it[c].q = w[k], it[c].k = k, sum += w[k], c++;
        if ((c >= count && !(sum < mass)) || c == npos) {
            if (count > 0 && c > count) {
                sample_select(it, c, count);
                c = count;
            }
            qsort(it, (size_t)c, sizeof *it, item_cmp);
            return c;
        }
    }
}

int mb_sample_pick(const float *z, int vocab, double temperature, int top_k, double top_p, double u, void *scratch)
{
    double *w = scratch; /* q, then 0 where the class is cut */
    sample_item *it = (sample_item *)(w + vocab);
    double mx = -INFINITY;
    for (int k = 0; k < vocab; k++) mx = z[k] > mx ? z[k] : mx;
    double total = 0;
    for (int k = 0; k < vocab; k++) total += (w[k] = exp(((double)z[k] - mx) / temperature));
    if (top_k > 0 && top_k < vocab) {
        const int c = sample_rank(w, vocab, top_k, 0, it), nk = c < top_k ? c : top_k;
        for (int k = 0; k < vocab; k++) w[k] = 0;
        total = 0;
        for (int i = 0; i < nk; i++) w[it[i].k] = it[i].q;
        for (int k = 0; k < vocab; k++) total += w[k];
    }
    if (top_p < 1.0) {
        /* kept: the mass ranked above the class is under the cut; the sums
         * in rank order, as the rule says */
        const double cut = top_p * total;
        const int c = sample_rank(w, vocab, 0, cut, it);
        int nkeep = 0;
        double above = 0;
        for (int i = 0; i < c; i++) {
            if (above < cut) nkeep = i + 1;
            above += it[i].q;
        }
        for (int k = 0; k < vocab; k++) w[k] = 0;
        for (int i = 0; i < nkeep; i++) w[it[i].k] = it[i].q;
    }
    double kept = 0;
    int last = 0;
    for (int k = 0; k < vocab; k++)
        if (w[k] > 0) kept += w[k], last = k;
    const double target = u * kept;
    double c = 0;
    for (int k = 0; k < vocab; k++)
        if (w[k] > 0 && (c += w[k]) > target) return k;
    return last; /* only when rounding puts target at the very end */
}

#define HS_NBUF 5 /* arena buffers mb_head_sample_cpu takes, each rounded up to 64 bytes */

size_t mb_head_sample_workspace_cpu(mb_ctx *ctx, const mb_head_sample_params *p)
{
    (void)ctx;
    const size_t B = (size_t)p->batch;
    return (B * p->d_model + 2 * B + B * p->vocab) * sizeof(float) + mb_sample_scratch_bytes(p->vocab) + HS_NBUF * 64;
}

void mb_head_sample_cpu(MB_OPS_HEAD_SAMPLE_ARGS)
{
    const int B = p->batch, d = p->d_model, V = p->vocab;
    if (p->have_logits && !p->logits) {
        mb_ctx_fail(ctx, "head_sample: have_logits without the logits");
        return;
    }
    const size_t mark = ws->used;
    float *xn = mb_arena_floats(ws, (size_t)B * d), *mean = mb_arena_floats(ws, B);
    float *rstd = mb_arena_floats(ws, B);
    float *lg = p->logits ? p->logits : mb_arena_floats(ws, (size_t)B * V);
    void *scratch = mb_arena_alloc(ws, mb_sample_scratch_bytes(V));
    if (!xn || !mean || !rstd || !lg || !scratch) {
        mb_ctx_fail(ctx, "%s", mb_error_last()); /* a sizing bug: the arena said why */
        return;
    }
    const int ld = p->logits ? p->ld_logits : V;
    if (!p->have_logits) {
        if (p->norm_b) mb_layernorm_fwd_cpu(ctx, B, d, y, p->norm_w, p->norm_b, p->eps, xn, mean, rstd, 0);
        else mb_rmsnorm_fwd_cpu(ctx, B, d, y, p->norm_w, p->eps, xn, rstd, 0);
        mb_gemm_infer_cpu(ctx, B, V, d, xn, d, p->head, p->head_q8, lg, ld);
    }
    for (int b = 0; b < B; b++) {
        const double u = (mb_sample_bits(p->cfg->seed, p->count[b], b) + 0.5) * 0x1.0p-23;
        const int k = mb_sample_pick(lg + (size_t)b * ld, V, p->cfg->temperature, p->cfg->top_k, p->cfg->top_p, u, scratch);
        p->next[b] = k;
        if (p->hist) p->hist[(size_t)b * p->hist_len + p->count[b] % p->hist_len] = k;
        p->count[b]++;
    }
    ws->used = mark;
}
