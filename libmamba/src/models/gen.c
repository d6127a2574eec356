/* Generation on a device: see model.h (mb_gen). One loop for every
 * architecture: the LM steps a period of any length, the SaShiMi U-Net a
 * pooling period from its edge. */
#include <stdlib.h>
#include <string.h>

#include "core/device.h"
#include "models/model.h"

#define GEN_SLOTS 64 /* launches whose drawn classes wait in pinned memory for one sync */

int mb_gen_init(mb_gen *g, mb_ctx *ctx, int B, int period)
{
    memset(g, 0, sizeof *g);
    g->B = B;
    g->period = mb_dev_graphs(ctx) ? period : 0;
    const size_t ring = g->period ? mb_carve_round((size_t)B * g->period) : 0;
    g->buf = mb_dev_alloc_floats(ctx, 16 + mb_carve_round(2 * (size_t)B) + ring, "sampling state");
    g->hcount = mb_calloc((size_t)B, sizeof(int64_t), "sampling state");
    g->col = mb_calloc((size_t)B, sizeof(int32_t), "sampling state");
    if (g->period) g->pin_ring = mb_host_alloc(ctx, (size_t)GEN_SLOTS * B * g->period * sizeof(int32_t), "drawn classes");
    if (!g->buf || !g->hcount || !g->col || (g->period && !g->pin_ring)) {
        mb_gen_free(g, ctx);
        return -1;
    }
    g->cfg = (mb_sample_cfg *)g->buf;
    g->count = (int64_t *)(g->buf + 16);
    g->ring = g->period ? (int32_t *)(g->buf + 16 + mb_carve_round(2 * (size_t)B)) : NULL;
    return 0;
}

void mb_gen_free(mb_gen *g, mb_ctx *ctx)
{
    mb_dev_graph_free(ctx, g->graph);
    mb_host_free(ctx, g->pin_ring);
    mb_dev_free(ctx, g->buf);
    free(g->hcount);
    free(g->col);
    memset(g, 0, sizeof *g);
}

int mb_gen_begin(mb_gen *g, mb_ctx *ctx, const mb_sampler *sp, int64_t drawn)
{
    /* the context's precision or TF32 changed since the capture: a period
     * runs eagerly before the next one (lazy initializations of the new ops) */
    if (mb_dev_graphs_rekey(ctx, &g->graph_key, &g->graph, 1)) g->eager = 0;
    const mb_sample_cfg cfg = {.seed = sp->seed, .temperature = sp->temperature, .top_p = sp->top_p,
                               .top_k = sp->top_k};
    for (int b = 0; b < g->B; b++) g->hcount[b] = drawn;
    return mb_dev_upload(ctx, g->cfg, &cfg, sizeof cfg) ||
                   mb_dev_upload(ctx, g->count, g->hcount, (size_t)g->B * sizeof(int64_t))
               ? -1
               : 0;
}

/* the work of a period graph: period steps */
typedef struct {
    const mb_gen_fns *f;
    int period;
} gen_period_arg;

static int gen_period(void *arg)
{
    const gen_period_arg *a = arg;
    for (int j = 0; j < a->period; j++)
        if (a->f->step(a->f->arg)) return -1;
    return 0;
}

static int gen_step(void *arg)
{
    const mb_gen_fns *f = arg;
    return f->step(f->arg);
}

/* without graphs: a step, its classes downloaded */
static int gen_run_steps(mb_gen *g, mb_ctx *ctx, const mb_gen_fns *f, int n, int64_t *drawn, const int32_t *next,
                         int32_t *out)
{
    for (int i = 0; i < n; i++) {
        if (f->step(f->arg) || mb_ctx_check(ctx) || mb_dev_download(ctx, g->col, next, (size_t)g->B * sizeof(int32_t)))
            return -1;
        for (int b = 0; b < g->B; b++) out[(size_t)b * n + i] = g->col[b];
        (*drawn)++;
    }
    return 0;
}

int mb_gen_run(mb_gen *g, mb_ctx *ctx, const mb_gen_fns *f, int n, int64_t *drawn, const int32_t *next,
               int32_t *out)
{
    if (!g->period) return gen_run_steps(g, ctx, f, n, drawn, next, out);
    const int B = g->B, P = g->period;
    const size_t ring = (size_t)B * P;
    gen_period_arg pa = {f, P};
    struct {
        int64_t t0;
        int i0, k;
    } rec[GEN_SLOTS];
    int nrec = 0;
    for (int i = 0; i < n;) {
        int k = 1;
        if (n - i >= P && (!f->at_period || f->at_period(f->arg)) && (g->graph || g->eager >= P)) {
            k = P;
            if (g->graph) {
                if (mb_dev_graph_launch(ctx, g->graph)) return -1;
                for (int j = 0; j < P && f->advance; j++) f->advance(f->arg);
            } else if (mb_dev_run(ctx, &g->graph, gen_period, &pa)) {
                return -1;
            }
        } else if (mb_dev_run(ctx, NULL, gen_step, (void *)f)) {
            return -1;
        } else {
            g->eager++;
        }
        if (mb_dev_copy_async(ctx, g->pin_ring + (size_t)nrec * ring, g->ring, ring * sizeof(int32_t))) return -1;
        rec[nrec].t0 = *drawn, rec[nrec].i0 = i, rec[nrec].k = k;
        nrec++;
        *drawn += k;
        i += k;
        if (nrec < GEN_SLOTS && i < n) continue;
        if (mb_dev_sync(ctx) || mb_ctx_check(ctx)) return -1;
        for (int r = 0; r < nrec; r++)
            for (int b = 0; b < B; b++)
                for (int j = 0; j < rec[r].k; j++)
                    out[(size_t)b * n + rec[r].i0 + j] = g->pin_ring[(size_t)r * ring + (size_t)b * P + (rec[r].t0 + j) % P];
        nrec = 0;
    }
    return 0;
}
