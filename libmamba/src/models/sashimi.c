/* The SaShiMi U-Net of Mamba blocks: parallel forward and backward over
 * (B, L) with every activation kept (audio sequences are short: no
 * recompute), and the recurrent step where each stage steps at its own
 * rate. Everything is a composition of the dispatched ops, so it runs
 * unchanged on every backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/sashimi.h"

#define AL(n) (((n) + 15) & ~(size_t)15)
#define SA_GRAPH_MAX 256 /* step graphs per state: periods above this run eagerly */
#define SA_SLOTS 64      /* launches whose drawn classes wait in pinned memory for one sync */

/* stacks in forward order: down 0..S-1, center, up S-1..0 */
static int sa_level(const struct mb_sashimi *sa, int k) { return k <= sa->S ? k : 2 * sa->S - k; }
static mb_sa_layer *sa_stack(const struct mb_sashimi *sa, int k) { return sa->layers + (size_t)k * sa->n; }

/* the config a stage's mixer sees: its width, dt_rank auto for that width */
static mb_config sa_stage_cfg(const mb_config *c, int width)
{
    mb_config s = *c;
    s.d_model = width;
    s.dt_rank = (width + 15) / 16;
    return s;
}

/* ---- parameters ----------------------------------------------------------- */

static int sa_add(mb_params *ps, const char *prefix, const char *name, int decay, int ndim,
                  int64_t a, int64_t b)
{
    char full[MB_PARAM_NAME_MAX];
    int64_t shape[2] = {a, b};
    if (snprintf(full, sizeof full, "%s.%s", prefix, name) >= (int)sizeof full)
        return mb_error_set("internal: parameter name too long");
    return mb_params_add(ps, full, decay, ndim, shape);
}

static int sa_layer_register(mb_model *m, mb_sa_layer *ly, const char *prefix, int width)
{
    mb_params *ps = &m->params;
    mb_config sc = sa_stage_cfg(&m->cfg, width);
    char mp[MB_PARAM_NAME_MAX + 8];
    ly->width = width;
    ly->p_mlp_norm = ly->p_fc1_w = ly->p_fc1_b = ly->p_fc2_w = ly->p_fc2_b = -1;
    ly->p_norm = sa_add(ps, prefix, "norm.weight", 0, 1, width, 0);
    snprintf(mp, sizeof mp, "%s.mixer", prefix);
    if (ly->p_norm < 0 || mb_mixer_register(&ly->mixer, ps, mp, &sc)) return -1;
    if (!m->cfg.mlp) return 0;
    ly->p_mlp_norm = sa_add(ps, prefix, "mlp_norm.weight", 0, 1, width, 0);
    ly->p_fc1_w = sa_add(ps, prefix, "mlp.fc1.weight", 1, 2, 2 * width, width);
    ly->p_fc1_b = sa_add(ps, prefix, "mlp.fc1.bias", 0, 1, 2 * width, 0);
    ly->p_fc2_w = sa_add(ps, prefix, "mlp.fc2.weight", 1, 2, width, 2 * width);
    ly->p_fc2_b = sa_add(ps, prefix, "mlp.fc2.bias", 0, 1, width, 0);
    return ly->p_mlp_norm < 0 || ly->p_fc1_w < 0 || ly->p_fc1_b < 0 || ly->p_fc2_w < 0 ||
                   ly->p_fc2_b < 0
               ? -1
               : 0;
}

static int sa_stack_register(mb_model *m, int k)
{
    struct mb_sashimi *sa = m->sa;
    char prefix[MB_PARAM_NAME_MAX];
    mb_sa_layer *ly = sa_stack(sa, k);
    for (int i = 0; i < sa->n; i++) {
        if (k < sa->S)
            snprintf(prefix, sizeof prefix, "down.%d.layers.%d", k, i);
        else if (k == sa->S)
            snprintf(prefix, sizeof prefix, "center.layers.%d", i);
        else
            snprintf(prefix, sizeof prefix, "up.%d.layers.%d", 2 * sa->S - k, i);
        if (sa_layer_register(m, &ly[i], prefix, sa->width[sa_level(sa, k)])) return -1;
    }
    return 0;
}

static int sa_register(mb_model *m)
{
    struct mb_sashimi *sa = m->sa;
    const mb_config *c = &m->cfg;
    mb_params *ps = &m->params;
    char prefix[32];
    int64_t shape[2] = {m->vocab_padded, c->d_model};
    m->p_embed = mb_params_add(ps, "backbone.embedding.weight", 1, 2, shape);
    if (m->p_embed < 0) return -1;
    for (int s = 0; s < sa->S; s++) {
        snprintf(prefix, sizeof prefix, "down.%d.pool", s);
        if (sa_stack_register(m, s) ||
            mb_downpool_register(&sa->down[s], ps, prefix, sa->width[s], c->pool[s],
                                 sa->width[s + 1]))
            return -1;
    }
    if (sa_stack_register(m, sa->S)) return -1;
    for (int s = sa->S - 1; s >= 0; s--) {
        snprintf(prefix, sizeof prefix, "up.%d.pool", s);
        if (mb_uppool_register(&sa->up[s], ps, prefix, sa->width[s], c->pool[s], sa->width[s + 1]) ||
            sa_stack_register(m, 2 * sa->S - s))
            return -1;
    }
    shape[0] = c->d_model;
    m->p_norm_f_w = mb_params_add(ps, "norm_f.weight", 0, 1, shape);
    shape[0] = m->vocab_padded;
    m->p_lm_head = mb_params_add(ps, "lm_head.weight", 1, 2, shape);
    return m->p_norm_f_w < 0 || m->p_lm_head < 0 ? -1 : 0;
}

mb_model *mb_sashimi_alloc(mb_ctx *ctx, const mb_config *cfg_in)
{
    mb_config cfg = *cfg_in;
    if (mb_config_check(&cfg)) return NULL;
    mb_model *m = mb_calloc(1, sizeof *m, "model");
    if (!m) return NULL;
    m->ctx = ctx;
    m->cfg = cfg;
    m->vocab_padded = mb_config_vocab_padded(&cfg);
    m->p_cls_w = m->p_cls_b = m->p_norm_f_b = -1;
    struct mb_sashimi *sa = m->sa = mb_calloc(1, sizeof *sa, "sashimi");
    if (!sa) {
        mb_model_free(m);
        return NULL;
    }
    sa->S = cfg.n_pool;
    sa->n = cfg.n_layer;
    sa->width[0] = cfg.d_model;
    for (int s = 0; s < sa->S; s++) sa->width[s + 1] = sa->width[s] * cfg.pool_expand;
    sa->layers = mb_calloc((size_t)(2 * sa->S + 1) * sa->n, sizeof(mb_sa_layer), "sashimi");
    if (!sa->layers || sa_register(m) || mb_params_alloc(&m->params, ctx)) {
        mb_model_free(m);
        return NULL;
    }
    return m;
}

static void fill_uniform(float *x, size_t n, double bound, mb_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((2.0 * mb_rng_uniform(rng) - 1.0) * bound);
}

static void fill_const(float *x, size_t n, float v)
{
    for (size_t i = 0; i < n; i++) x[i] = v;
}

void mb_sashimi_init_weights(mb_model *m, float *host, uint64_t seed)
{
    struct mb_sashimi *sa = m->sa;
    const mb_params *ps = &m->params;
#define P(idx) (host + ps->items[idx].offset)
#define NUMEL(idx) (ps->items[idx].numel)
    mb_rng rng;
    mb_rng_seed(&rng, seed);
    for (size_t i = 0; i < NUMEL(m->p_embed); i++) P(m->p_embed)[i] = (float)(0.02 * mb_rng_normal(&rng));
    for (int k = 0; k <= 2 * sa->S; k++) {
        mb_sa_layer *ly = sa_stack(sa, k);
        for (int i = 0; i < sa->n; i++) {
            mb_config sc = sa_stage_cfg(&m->cfg, ly[i].width);
            fill_const(P(ly[i].p_norm), NUMEL(ly[i].p_norm), 1.f);
            mb_mixer_init_weights(&ly[i].mixer, ps, host, &sc, &rng);
            if (ly[i].p_mlp_norm < 0) continue;
            const double b1 = 1.0 / sqrt((double)ly[i].width), b2 = 1.0 / sqrt(2.0 * ly[i].width);
            fill_const(P(ly[i].p_mlp_norm), NUMEL(ly[i].p_mlp_norm), 1.f);
            fill_uniform(P(ly[i].p_fc1_w), NUMEL(ly[i].p_fc1_w), b1, &rng);
            fill_uniform(P(ly[i].p_fc1_b), NUMEL(ly[i].p_fc1_b), b1, &rng);
            fill_uniform(P(ly[i].p_fc2_w), NUMEL(ly[i].p_fc2_w), b2, &rng);
            fill_uniform(P(ly[i].p_fc2_b), NUMEL(ly[i].p_fc2_b), b2, &rng);
        }
    }
    for (int s = 0; s < sa->S; s++) {
        mb_pool_init_weights(&sa->down[s], ps, host, &rng);
        mb_pool_init_weights(&sa->up[s], ps, host, &rng);
    }
    fill_const(P(m->p_norm_f_w), NUMEL(m->p_norm_f_w), 1.f);
    fill_uniform(P(m->p_lm_head), NUMEL(m->p_lm_head), 1.0 / sqrt((double)m->cfg.d_model), &rng);
#undef P
#undef NUMEL
}

/* ---- activation buffers --------------------------------------------------- */

typedef struct {
    float *base;
    size_t n;
} sa_cursor;

/* a counting pass (base NULL) sizes the block, a second one hands it out */
static float *take(sa_cursor *c, size_t n)
{
    float *p = c->base ? c->base + c->n : NULL;
    c->n += AL(n);
    return p;
}

static void sa_layout(const mb_model *m, mb_sa_acts *a, sa_cursor *c, int train)
{
    const struct mb_sashimi *sa = m->sa;
    const int S = sa->S;
    size_t maxrd = 0, tmp = 0;
    for (int l = 0; l <= S; l++) {
        const size_t RD = (size_t)a->rows[l] * sa->width[l];
        maxrd = RD > maxrd ? RD : maxrd;
        a->x[l] = take(c, RD);
        a->y[l] = take(c, RD);
        if (l < S) a->u[l] = take(c, RD);
        a->dY[l] = train ? take(c, RD) : NULL;
        a->dU[l] = train ? take(c, RD) : NULL;
        if (l < S) {
            size_t t = (size_t)a->rows[l + 1] * m->cfg.pool[l] * sa->width[l];
            tmp = t > tmp ? t : tmp;
        }
    }
    a->tmp = take(c, tmp);
    const size_t R0 = (size_t)a->rows[0];
    a->hf = take(c, R0 * sa->width[0]);
    a->rstd_f = take(c, R0);
    a->logits = take(c, R0 * m->vocab_padded);
    a->dxn = train ? take(c, maxrd) : NULL;
    a->dg = train && m->cfg.mlp ? take(c, 2 * maxrd) : NULL;
    for (int k = 0; k <= 2 * S; k++) {
        const int l = sa_level(sa, k), R = a->rows[l];
        const size_t RD = (size_t)R * sa->width[l];
        const mb_sa_layer *ly = sa_stack(sa, k);
        for (int i = 0; i < sa->n; i++) {
            mb_sa_layer_bufs *b = &a->lb[k * sa->n + i];
            b->xn = take(c, RD);
            b->rstd = take(c, (size_t)R);
            float *ab = take(c, mb_mixer_acts_floats(&ly[i].mixer, R));
            if (ab) mb_mixer_acts_bind(&b->acts, &ly[i].mixer, ab, R);
            b->mid = take(c, RD);
            b->xn2 = b->rstd2 = b->a1 = b->g1 = NULL;
            b->out = b->mid;
            if (m->cfg.mlp) {
                b->xn2 = take(c, RD);
                b->rstd2 = take(c, (size_t)R);
                b->a1 = take(c, 2 * RD);
                b->g1 = take(c, 2 * RD);
                b->out = take(c, RD);
            }
        }
    }
}

static void sa_acts_free(mb_ctx *ctx, mb_sa_acts *a)
{
    mb_dev_free(ctx, a->buf);
    mb_dev_free(ctx, a->tok);
    free(a->lb);
    mb_arena_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* L > 1 (a multiple of the pooling factors' product): rows B * L_l per
 * level (L_l = L / prod(pool[0..l))); train: also the backward's buffers.
 * L = 1: one step, B rows at every level. */
static int sa_acts_init(const mb_model *m, mb_sa_acts *a, int B, int L, int train)
{
    const struct mb_sashimi *sa = m->sa;
    memset(a, 0, sizeof *a);
    a->B = B;
    a->L = L;
    int Ll = L;
    size_t wsz = 0;
    for (int l = 0; l <= sa->S; l++) {
        const int Lr = L > 1 ? Ll : 1;
        a->rows[l] = B * Lr;
        const mb_sa_layer *ly = sa_stack(sa, l);
        size_t w = mb_mixer_workspace(m->ctx, &ly[0].mixer, B, Lr);
        wsz = w > wsz ? w : wsz;
        if (l < sa->S) Ll /= m->cfg.pool[l];
    }
    if (L == 1) {
        /* a step's head with its draw (mb_sashimi_sample) */
        const mb_head_sample_params hp = {.batch = B, .d_model = m->cfg.d_model, .vocab = m->cfg.vocab_size};
        const size_t w = mb_head_sample_workspace(m->ctx, &hp);
        wsz = w > wsz ? w : wsz;
    }
    a->lb = mb_calloc((size_t)(2 * sa->S + 1) * sa->n, sizeof *a->lb, "sashimi activations");
    sa_cursor c = {NULL, 0};
    if (a->lb) sa_layout(m, a, &c, train);
    const size_t R0 = (size_t)a->rows[0];
    a->buf = a->lb ? mb_dev_alloc_floats(m->ctx, c.n, "activations") : NULL;
    a->tok = a->buf ? (int32_t *)mb_dev_alloc_floats(m->ctx, 2 * AL(R0), "tokens") : NULL;
    if (!a->buf || !a->tok || mb_arena_init(&a->ws, m->ctx, wsz)) {
        sa_acts_free(m->ctx, a);
        return mb_error_set("out of memory for activations of batch %d x length %d", B, L);
    }
    a->tgt = a->tok + AL(R0);
    c.base = a->buf;
    c.n = 0;
    sa_layout(m, a, &c, train);
    return 0;
}

void mb_sashimi_free(mb_model *m)
{
    if (!m->sa) return;
    sa_acts_free(m->ctx, &m->sa->act);
    free(m->sa->layers);
    free(m->sa);
    m->sa = NULL;
}

/* ---- blocks ----------------------------------------------------------------- */

/* A block over (B, L) rows; with st and L = 1, its recurrent step, where io
 * (or NULL) says where the step reads and writes beyond its own buffers and
 * out (or NULL) replaces b->out (blocks without an MLP only). */
static int sa_layer_fwd(mb_model *m, const mb_sa_layer *ly, int B, int L, const float *in,
                        mb_sa_layer_bufs *b, mb_mixer_state *st, mb_arena *ws,
                        const mb_block_io *io, float *out)
{
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int M = B * L, D = ly->width;
    const float eps = m->cfg.norm_eps;
    if (out && ly->p_mlp_norm >= 0) return mb_error_set("internal: a block with an MLP writes its own output");
    if (L == 1 && st) {
        if (mb_mixer_block_step(ctx, &ly->mixer, ps, B, mb_param_data(ps, ly->p_norm), NULL, eps,
                                in, out ? out : b->mid, st, ws, io))
            return -1;
    } else {
        mb_rmsnorm_fwd(ctx, M, D, in, mb_param_data(ps, ly->p_norm), eps, b->xn, b->rstd);
        if (mb_mixer_fwd(ctx, &ly->mixer, ps, B, L, b->xn, b->mid, &b->acts, st, ws)) return -1;
        mb_axpby(ctx, (size_t)M * D, 1.f, in, 1.f, b->mid);
    }
    if (ly->p_mlp_norm < 0) return 0;
    mb_rmsnorm_fwd(ctx, M, D, b->mid, mb_param_data(ps, ly->p_mlp_norm), eps, b->xn2, b->rstd2);
    mb_linear_fwd(ctx, M, D, 2 * D, b->xn2, D, mb_param_data(ps, ly->p_fc1_w),
                  mb_param_data(ps, ly->p_fc1_b), b->a1, 2 * D);
    mb_act_fwd(ctx, MB_ACT_GELU, M, 2 * D, b->a1, 2 * D, b->g1, 2 * D);
    mb_linear_fwd(ctx, M, 2 * D, D, b->g1, 2 * D, mb_param_data(ps, ly->p_fc2_w),
                  mb_param_data(ps, ly->p_fc2_b), b->out, D);
    mb_axpby(ctx, (size_t)M * D, 1.f, b->mid, 1.f, b->out);
    return 0;
}

/* dh holds d(out) and is left holding d(in) */
static int sa_layer_bwd(mb_model *m, const mb_sa_layer *ly, int B, int L, const float *in,
                        const mb_sa_layer_bufs *b, float *dh, mb_sa_acts *a)
{
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int M = B * L, D = ly->width;
    if (ly->p_mlp_norm >= 0) {
        mb_linear_bwd(ctx, M, 2 * D, D, b->g1, 2 * D, mb_param_data(ps, ly->p_fc2_w), dh, D, a->dg,
                      2 * D, 0.f, mb_param_grad(ps, ly->p_fc2_w), mb_param_grad(ps, ly->p_fc2_b));
        mb_act_bwd(ctx, MB_ACT_GELU, M, 2 * D, b->a1, 2 * D, a->dg, 2 * D, a->dg, 2 * D);
        mb_linear_bwd(ctx, M, D, 2 * D, b->xn2, D, mb_param_data(ps, ly->p_fc1_w), a->dg, 2 * D,
                      a->dxn, D, 0.f, mb_param_grad(ps, ly->p_fc1_w), mb_param_grad(ps, ly->p_fc1_b));
        mb_rmsnorm_bwd(ctx, M, D, b->mid, mb_param_data(ps, ly->p_mlp_norm), b->rstd2, a->dxn, dh,
                       1.f, mb_param_grad(ps, ly->p_mlp_norm));
    }
    if (mb_mixer_bwd(ctx, &ly->mixer, ps, B, L, b->xn, &b->acts, dh, a->dxn, 0.f, &a->ws, NULL,
                     NULL))
        return -1;
    mb_rmsnorm_bwd(ctx, M, D, in, mb_param_data(ps, ly->p_norm), b->rstd, a->dxn, dh, 1.f,
                   mb_param_grad(ps, ly->p_norm));
    return 0;
}

/* stack k over (B, L) rows from `in`; returns its output (the last block's).
 * In a step, first (or NULL) is the first block's io (its rows from the
 * embedding), and last / last_out (or NULL) the last block's io and output. */
static const float *sa_stack_fwd(mb_model *m, mb_sa_acts *a, int k, int B, int L, const float *in,
                                 mb_mixer_state *st, const mb_block_io *first,
                                 const mb_block_io *last, float *last_out)
{
    struct mb_sashimi *sa = m->sa;
    const mb_sa_layer *ly = sa_stack(sa, k);
    mb_sa_layer_bufs *b = a->lb + (size_t)k * sa->n;
    const float *h = in;
    for (int i = 0; i < sa->n; i++) {
        mb_block_io io = {0};
        const int is_first = i == 0 && first, is_last = i == sa->n - 1 && last;
        if (is_first) io.tokens = first->tokens, io.embed = first->embed;
        if (is_last) {
            io.ld_out = last->ld_out, io.out2 = last->out2, io.add2 = last->add2;
            io.ld_out2 = last->ld_out2, io.ld_add2 = last->ld_add2;
        }
        float *out = is_last ? last_out : NULL;
        if (sa_layer_fwd(m, &ly[i], B, L, h, &b[i], st ? &st[i] : NULL, &a->ws,
                         is_first || is_last ? &io : NULL, out))
            return NULL;
        h = out ? out : b[i].out;
    }
    return h;
}

static int sa_stack_bwd(mb_model *m, mb_sa_acts *a, int k, int B, int L, const float *in, float *dh)
{
    struct mb_sashimi *sa = m->sa;
    const mb_sa_layer *ly = sa_stack(sa, k);
    const mb_sa_layer_bufs *b = a->lb + (size_t)k * sa->n;
    for (int i = sa->n - 1; i >= 0; i--)
        if (sa_layer_bwd(m, &ly[i], B, L, i ? b[i - 1].out : in, &b[i], dh, a)) return -1;
    return 0;
}

/* y = stack output + its input (the residual SaShiMi puts around the
 * center and every up stack) */
static void sa_residual(mb_ctx *ctx, size_t n, const float *out, const float *in, float *y)
{
    mb_axpby(ctx, n, 1.f, out, 0.f, y);
    mb_axpby(ctx, n, 1.f, in, 1.f, y);
}

/* ---- training forward / backward ------------------------------------------ */

static int sa_pool_prod(const mb_config *c)
{
    int p = 1;
    for (int s = 0; s < c->n_pool; s++) p *= c->pool[s];
    return p;
}

/* The U-Net over (B, L) from the tokens in a->tok (L a multiple of the
 * pooling factors' product), into a's buffers (sized for at least B * L
 * rows). With st (every block's mixer state) and upbuf (each UpPool's
 * projection of the coarse step completed before, see the step below), the
 * rows continue a recurrent state and leave it at their end, which is what
 * L steps would do: each mixer starts from its state, and each UpPool's
 * first coarse step reads upbuf instead of zeros, which then keeps the
 * chunk's last projection (the DownPools' buffers need nothing: the chunk
 * starts and ends on a period's edge). Training passes NULLs. head: also
 * the final norm and the logits. */
static int sa_forward_levels(mb_model *m, mb_sa_acts *a, int B, int L, mb_mixer_state *st,
                             float *const *upbuf, int head)
{
    struct mb_sashimi *sa = m->sa;
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int S = sa->S, d = m->cfg.d_model, M0 = B * L;
    mb_embed_fwd(ctx, M0, d, a->tok, mb_param_data(ps, m->p_embed), a->x[0]);
    int Ls[MB_MAX_POOL + 1];
    Ls[0] = L;
    for (int s = 0; s < S; s++) Ls[s + 1] = Ls[s] / m->cfg.pool[s];
#define SA_ST(k) (st ? st + (size_t)(k) * sa->n : NULL)
    for (int s = 0; s < S; s++) {
        const float *dn = sa_stack_fwd(m, a, s, B, Ls[s], a->x[s], SA_ST(s), NULL, NULL, NULL);
        if (!dn) return -1;
        mb_downpool_fwd(ctx, &sa->down[s], ps, B, Ls[s], dn, a->x[s + 1]);
    }
    const float *c = sa_stack_fwd(m, a, S, B, Ls[S], a->x[S], SA_ST(S), NULL, NULL, NULL);
    if (!c) return -1;
    sa_residual(ctx, (size_t)B * Ls[S] * sa->width[S], c, a->x[S], a->y[S]);
    for (int s = S - 1; s >= 0; s--) {
        const size_t n = (size_t)B * Ls[s] * sa->width[s];
        mb_uppool_fwd(ctx, &sa->up[s], ps, B, Ls[s + 1], a->y[s + 1], a->tmp, a->u[s],
                      upbuf ? upbuf[s] : NULL);
        /* the skip: the DownPool's input, the down stack's output */
        mb_axpby(ctx, n, 1.f, a->lb[((size_t)s + 1) * sa->n - 1].out, 1.f, a->u[s]);
        const float *o = sa_stack_fwd(m, a, 2 * S - s, B, Ls[s], a->u[s], SA_ST(2 * S - s), NULL, NULL, NULL);
        if (!o) return -1;
        sa_residual(ctx, n, o, a->u[s], a->y[s]);
    }
#undef SA_ST
    if (!head) return 0;
    mb_rmsnorm_fwd(ctx, M0, d, a->y[0], mb_param_data(ps, m->p_norm_f_w), m->cfg.norm_eps, a->hf,
                   a->rstd_f);
    mb_linear_fwd(ctx, M0, d, m->vocab_padded, a->hf, d, mb_param_data(ps, m->p_lm_head), NULL,
                  a->logits, m->vocab_padded);
    return 0;
}

static int sa_forward_train(mb_model *m, const int32_t *tokens, int B, int L)
{
    struct mb_sashimi *sa = m->sa;
    mb_sa_acts *a = &sa->act;
    const int prod = sa_pool_prod(&m->cfg);
    if (B < 1 || L < 1) return mb_error_set("empty batch (B=%d, L=%d)", B, L);
    if (L % prod)
        return mb_error_set("sequence length %d is not a multiple of %d, the product of the "
                            "sashimi pooling factors", L, prod);
    if (mb_lm_check_tokens(m, tokens, (size_t)B * L, "token", 0)) return -1;
    if (a->B != B || a->L != L || !a->buf) {
        sa_acts_free(m->ctx, a);
        if (sa_acts_init(m, a, B, L, 1)) return -1;
    }
    if (mb_dev_upload(m->ctx, a->tok, tokens, (size_t)B * L * sizeof(int32_t))) return -1;
    return sa_forward_levels(m, a, B, L, NULL, NULL, 1);
}

static int sa_loss(mb_model *m, const int32_t *targets, int M, int want_grad, mb_loss_stats *stats)
{
    mb_sa_acts *a = &m->sa->act;
    if (mb_lm_check_tokens(m, targets, (size_t)M, "target", 1)) return -1;
    return mb_lm_xent_mean(m->ctx, targets, a->tgt, M, m->vocab_padded, a->logits, want_grad, stats);
}

int mb_sashimi_forward(mb_model *m, const int32_t *tokens, int B, int L, const int32_t *targets,
                       float *logits, mb_loss_stats *stats)
{
    if (sa_forward_train(m, tokens, B, L)) return -1;
    const size_t M = (size_t)B * L;
    if (logits &&
        mb_dev_download(m->ctx, logits, m->sa->act.logits, M * m->vocab_padded * sizeof(float)))
        return -1;
    if (targets && sa_loss(m, targets, (int)M, 0, stats)) return -1;
    return mb_ctx_check(m->ctx);
}

int mb_sashimi_forward_backward(mb_model *m, const int32_t *tokens, const int32_t *targets, int B,
                                int L, mb_loss_stats *stats)
{
    if (!targets) return mb_error_set("forward_backward needs targets");
    if (sa_forward_train(m, tokens, B, L) || sa_loss(m, targets, B * L, 1, stats)) return -1;
    struct mb_sashimi *sa = m->sa;
    mb_sa_acts *a = &sa->act;
    mb_ctx *ctx = m->ctx;
    mb_params *ps = &m->params;
    const int S = sa->S, d = m->cfg.d_model, M0 = B * L;
    int Ls[MB_MAX_POOL + 1];
    Ls[0] = L;
    for (int s = 0; s < S; s++) Ls[s + 1] = Ls[s] / m->cfg.pool[s];
    /* head (logits hold dlogits), then norm_f into dY[0] */
    mb_linear_bwd(ctx, M0, d, m->vocab_padded, a->hf, d, mb_param_data(ps, m->p_lm_head),
                  a->logits, m->vocab_padded, a->hf, d, 0.f, mb_param_grad(ps, m->p_lm_head), NULL);
    mb_rmsnorm_bwd(ctx, M0, d, a->y[0], mb_param_data(ps, m->p_norm_f_w), a->rstd_f, a->hf,
                   a->dY[0], 0.f, mb_param_grad(ps, m->p_norm_f_w));
    /* up the levels: y_s = up(u_s) + u_s, u_s = UpPool(y_{s+1}) + skip_s */
    for (int s = 0; s < S; s++) {
        const size_t n = (size_t)a->rows[s] * sa->width[s];
        mb_axpby(ctx, n, 1.f, a->dY[s], 0.f, a->dU[s]);
        if (sa_stack_bwd(m, a, 2 * S - s, B, Ls[s], a->u[s], a->dU[s])) return -1;
        mb_axpby(ctx, n, 1.f, a->dY[s], 1.f, a->dU[s]);
        /* dU[s] is now d(u_s): the skip's gradient, and the UpPool's */
        mb_uppool_bwd(ctx, &sa->up[s], ps, B, Ls[s + 1], a->y[s + 1], a->dU[s], a->tmp, a->dY[s + 1],
                      0.f);
    }
    const size_t nS = (size_t)a->rows[S] * sa->width[S];
    mb_axpby(ctx, nS, 1.f, a->dY[S], 0.f, a->dU[S]);
    if (sa_stack_bwd(m, a, S, B, Ls[S], a->x[S], a->dU[S])) return -1;
    mb_axpby(ctx, nS, 1.f, a->dY[S], 1.f, a->dU[S]);
    /* and down again: x_{s+1} = DownPool(dn_s), dn_s = down(x_s) */
    for (int s = S - 1; s >= 0; s--) {
        mb_downpool_bwd(ctx, &sa->down[s], ps, B, Ls[s], a->lb[((size_t)s + 1) * sa->n - 1].out,
                        a->dU[s + 1], a->dU[s], 1.f);
        if (sa_stack_bwd(m, a, s, B, Ls[s], a->x[s], a->dU[s])) return -1;
    }
    mb_embed_bwd(ctx, M0, d, a->tok, a->dU[0], mb_param_grad(ps, m->p_embed));
    return mb_ctx_check(ctx);
}

/* ---- recurrent step ----------------------------------------------------------
 * pub.buf holds every block's mixer state, then per stage the DownPool's
 * buffer of fine inputs and the UpPool's projection of the last completed
 * coarse step (both (B, p*D_s)); reset zeroes all of it. pos[s] counts the
 * steps level s has taken. */
typedef struct {
    struct mb_state pub;
    mb_sa_acts act;
    size_t state_floats;
    float *poolbuf[MB_MAX_POOL], *upbuf[MB_MAX_POOL];
    int64_t pos[MB_MAX_POOL];
    int32_t *col; /* host: one column of a chunk */
    float *lg;    /* host: one step's logits */
    /* mb_model_forward_chunk's parallel pieces: activations for (B,
     * pre_len) positions (0: none yet) */
    mb_sa_acts pre;
    int pre_len;
    /* CUDA: a step is many small launches, so each is captured once as a
     * graph and replayed. Which levels step, and where in the pool
     * buffers, depends only on pos[0] modulo the product of the pooling
     * factors (period): one graph per phase, with the tokens and logits
     * going through pinned buffers inside it. */
    int period;
    void *graph[SA_GRAPH_MAX];
    /* a phase's graph is captured at its second visit by steps, a period's
     * at the period after one run eagerly by draws: the first runs do the
     * lazy initializations (never inside a capture), and a chunk's parallel
     * pieces advance pos[] without visiting any phase */
    unsigned char seen[SA_GRAPH_MAX];
    int64_t eager_draws;
    int32_t *pin_tok;
    float *pin_lg;
    /* Sampling (mb_sashimi_sample): the draw's settings and per-row counts
     * in device memory, where captured graphs read them; the ring of drawn
     * classes (hist_len: the period on a GPU); a graph of a whole period of
     * steps and draws; on the host, the counts' upload buffer and, on a GPU,
     * SA_SLOTS pinned copies of the ring, one per launch until collected. */
    float *sbuf;
    mb_sample_cfg *scfg;
    int64_t *scount, *hcount;
    int32_t *shist, *pin_hist;
    int hist_len;
    void *pgraph;
} sa_state;

mb_state *mb_sashimi_state_create(mb_model *m, int B)
{
    struct mb_sashimi *sa = m->sa;
    if (B < 1) {
        mb_error_set("state batch must be >= 1 (got %d)", B);
        return NULL;
    }
    sa_state *s = mb_calloc(1, sizeof *s, "state");
    if (!s) return NULL;
    s->pub.model = m;
    s->pub.B = B;
    const int nl = (2 * sa->S + 1) * sa->n;
    size_t total = 0;
    for (int k = 0; k <= 2 * sa->S; k++)
        for (int i = 0; i < sa->n; i++) total += mb_mixer_state_floats(&sa_stack(sa, k)[i].mixer, B);
    for (int l = 0; l < sa->S; l++) total += 2 * AL((size_t)B * m->cfg.pool[l] * sa->width[l]);
    s->state_floats = total;
    s->pub.buf = mb_dev_alloc_floats(m->ctx, total, "recurrent state");
    s->pub.layers = mb_calloc((size_t)nl, sizeof(mb_mixer_state), "state");
    s->col = mb_calloc((size_t)B, sizeof(int32_t), "state");
    s->lg = mb_calloc((size_t)B * m->vocab_padded, sizeof(float), "state");
    s->hcount = mb_calloc((size_t)B, sizeof(int64_t), "state");
    if (!s->pub.buf || !s->pub.layers || !s->col || !s->lg || !s->hcount || sa_acts_init(m, &s->act, B, 1, 0)) {
        mb_sashimi_state_free(&s->pub);
        return NULL;
    }
    float *p = s->pub.buf;
    for (int k = 0; k <= 2 * sa->S; k++)
        for (int i = 0; i < sa->n; i++) {
            const mb_mixer *mx = &sa_stack(sa, k)[i].mixer;
            mb_mixer_state_bind(&s->pub.layers[k * sa->n + i], mx, p, B);
            p += mb_mixer_state_floats(mx, B);
        }
    for (int l = 0; l < sa->S; l++) {
        const size_t n = AL((size_t)B * m->cfg.pool[l] * sa->width[l]);
        s->poolbuf[l] = p, p += n;
        s->upbuf[l] = p, p += n;
    }
#ifdef MB_HAVE_CUDA
    if (m->ctx->kind == MB_DEV_CUDA) {
        int64_t P = 1;
        for (int l = 0; l < sa->S; l++) P *= m->cfg.pool[l];
        if (P <= SA_GRAPH_MAX) {
            s->period = (int)P;
            s->pin_tok = mb_cuda_host_alloc(m->ctx, (size_t)B * sizeof(int32_t));
            s->pin_lg = mb_cuda_host_alloc(m->ctx, (size_t)B * m->vocab_padded * sizeof(float));
            s->hist_len = (int)P;
            s->pin_hist = mb_cuda_host_alloc(m->ctx, (size_t)SA_SLOTS * B * P * sizeof(int32_t));
            if (!s->pin_tok || !s->pin_lg || !s->pin_hist) {
                mb_sashimi_state_free(&s->pub);
                return NULL;
            }
        }
    }
#endif
    /* the ring only on a GPU: on the CPU the drawn classes are read from
     * the next step's input, which is host memory there */
    const size_t nhist = s->hist_len ? AL((size_t)B * s->hist_len) : 0;
    s->sbuf = mb_dev_alloc_floats(m->ctx, 16 + AL(2 * (size_t)B) + nhist, "sampling state");
    if (!s->sbuf) {
        mb_sashimi_state_free(&s->pub);
        return NULL;
    }
    s->scfg = (mb_sample_cfg *)s->sbuf;
    s->scount = (int64_t *)(s->sbuf + 16);
    s->shist = nhist ? (int32_t *)(s->sbuf + 16 + AL(2 * (size_t)B)) : NULL;
    mb_sashimi_state_reset(&s->pub);
    return &s->pub;
}

void mb_sashimi_state_reset(mb_state *st)
{
    sa_state *s = (sa_state *)st;
    mb_dev_zero(st->model->ctx, st->buf, s->state_floats * sizeof(float));
    memset(s->pos, 0, sizeof s->pos);
}

void mb_sashimi_state_free(mb_state *st)
{
    if (!st) return;
    sa_state *s = (sa_state *)st;
#ifdef MB_HAVE_CUDA
    for (int i = 0; i < SA_GRAPH_MAX; i++) mb_cuda_graph_free(s->graph[i]);
    mb_cuda_graph_free(s->pgraph);
    mb_cuda_host_free(s->pin_tok);
    mb_cuda_host_free(s->pin_lg);
    mb_cuda_host_free(s->pin_hist);
#endif
    mb_dev_free(st->model->ctx, s->sbuf);
    free(s->hcount);
    sa_acts_free(st->model->ctx, &s->act);
    sa_acts_free(st->model->ctx, &s->pre);
    mb_dev_free(st->model->ctx, st->buf);
    free(st->layers);
    free(s->col);
    free(s->lg);
    free(s);
}

/* One step of level l from act.x[l]; returns where its output is (act.y[l],
 * or with MLP blocks the last up block's buffer with the residual added in
 * place: a step keeps no activations). A
 * pooled level runs its down stack, files the result in the DownPool's buffer, reads this fine
 * step's slice of the UpPool's projection (of the coarse step completed
 * before the current one), and when the buffer is full runs the coarser
 * level once and projects its output for the next coarse step. */
static const float *sa_level_step(mb_model *m, sa_state *s, int l)
{
    struct mb_sashimi *sa = m->sa;
    mb_sa_acts *a = &s->act;
    mb_ctx *ctx = m->ctx;
    const int B = s->pub.B, S = sa->S;
    const size_t n = (size_t)B * sa->width[l];
    mb_mixer_state *st = s->pub.layers;
    /* without MLP blocks, a stack's last block also writes the level's
     * residual sum, y = its output + the stack's input (one launch fewer) */
    const int fuse = !m->cfg.mlp;
    if (l == S) {
        const mb_block_io res = {.out2 = a->y[S], .add2 = a->x[S]};
        float *c = (float *)sa_stack_fwd(m, a, S, B, 1, a->x[S], st + (size_t)S * sa->n, NULL,
                                         fuse ? &res : NULL, NULL);
        if (!c || fuse) return c ? a->y[S] : NULL;
        mb_axpby(ctx, n, 1.f, a->x[S], 1.f, c);
        return c;
    }
    const int p = m->cfg.pool[l], j = (int)(s->pos[l] % p), D = sa->width[l];
    /* level 0's first block reads the embedding table; without MLP blocks,
     * the down stack's last block writes its output into the DownPool
     * buffer's slot j and the skip sum (with the UpPool's slice j) into
     * u[l] itself: three launches fewer than push, read and add */
    const mb_block_io tok = {.tokens = a->tok, .embed = mb_param_data(&m->params, m->p_embed)};
    const mb_block_io pool = {.ld_out = p * D, .out2 = a->u[l], .ld_out2 = D,
                              .add2 = s->upbuf[l] + (size_t)j * D, .ld_add2 = p * D};
    const float *dn = sa_stack_fwd(m, a, l, B, 1, a->x[l], st + (size_t)l * sa->n, l ? NULL : &tok,
                                   fuse ? &pool : NULL, fuse ? s->poolbuf[l] + (size_t)j * D : NULL);
    if (!dn) return NULL;
    if (!fuse) {
        mb_downpool_step_push(ctx, &sa->down[l], B, j, dn, s->poolbuf[l]);
        mb_uppool_step_read(ctx, &sa->up[l], B, j, s->upbuf[l], a->u[l]);
    }
    if (j == p - 1) {
        mb_downpool_step_emit(ctx, &sa->down[l], &m->params, B, s->poolbuf[l], a->x[l + 1]);
        const float *yc = sa_level_step(m, s, l + 1);
        if (!yc) return NULL;
        mb_uppool_step_load(ctx, &sa->up[l], &m->params, B, yc, s->upbuf[l]);
    }
    if (!fuse) mb_axpby(ctx, n, 1.f, dn, 1.f, a->u[l]);
    const mb_block_io res = {.out2 = a->y[l], .add2 = a->u[l]};
    float *o = (float *)sa_stack_fwd(m, a, 2 * S - l, B, 1, a->u[l], st + (size_t)(2 * S - l) * sa->n,
                                     NULL, fuse ? &res : NULL, NULL);
    if (!o) return NULL;
    if (!fuse) mb_axpby(ctx, n, 1.f, a->u[l], 1.f, o);
    s->pos[l]++;
    return fuse ? a->y[l] : o;
}

/* The device work of one step: a->tok in, a->logits out (when want) */
static int sa_step_body(mb_model *m, sa_state *s, int want)
{
    mb_sa_acts *a = &s->act;
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int B = s->pub.B, d = m->cfg.d_model;
    /* no embedding launch: level 0's first block reads the table */
    const float *y = sa_level_step(m, s, 0);
    if (!y) return -1;
    if (want) {
        mb_rmsnorm_fwd(ctx, B, d, y, mb_param_data(ps, m->p_norm_f_w), m->cfg.norm_eps, a->hf,
                       a->rstd_f);
        mb_linear_fwd(ctx, B, d, m->vocab_padded, a->hf, d, mb_param_data(ps, m->p_lm_head), NULL,
                      a->logits, m->vocab_padded);
    }
    return 0;
}

#ifdef MB_HAVE_CUDA
/* What sa_level_step does to pos[], without the work (a replayed graph) */
static void sa_advance(mb_model *m, sa_state *s)
{
    for (int l = 0; l < m->sa->S; l++) {
        const int p = m->cfg.pool[l], j = (int)(s->pos[l]++ % p);
        if (j != p - 1) break;
    }
}

/* Device work of a step (or of several): run once on the stream or, with
 * graph, captured into *graph and then launched. The capture advances pos[]
 * as the eager run would; the launch that follows does the work once. */
typedef int (*sa_work_fn)(mb_model *m, sa_state *s, const void *arg);
static int sa_run(mb_model *m, sa_state *s, void **graph, sa_work_fn work, const void *arg)
{
    mb_ctx *ctx = m->ctx;
    if (graph && mb_cuda_graph_begin(ctx)) return -1;
    if (work(m, s, arg)) {
        if (graph) {
            void *g;
            (void)mb_cuda_graph_end(ctx, &g);
        }
        return -1;
    }
    if (graph && (mb_cuda_graph_end(ctx, graph) || mb_cuda_graph_launch(ctx, *graph))) return -1;
    return 0;
}

/* a step whose tokens and logits go through the pinned buffers */
static int sa_step_pinned(mb_model *m, sa_state *s, const void *arg)
{
    (void)arg;
    mb_sa_acts *a = &s->act;
    const size_t B = (size_t)s->pub.B;
    return mb_cuda_copy_async(m->ctx, a->tok, s->pin_tok, B * sizeof(int32_t)) || sa_step_body(m, s, 1) ||
                   mb_cuda_copy_async(m->ctx, s->pin_lg, a->logits, B * m->vocab_padded * sizeof(float))
               ? -1
               : 0;
}

/* A step on the GPU through the graph of its phase: the first visit of a
 * phase runs eagerly (lazy initializations happen outside any capture),
 * the second is captured, later ones replay it. */
static int sa_step_graph(mb_model *m, sa_state *s, const int32_t *tokens, float *logits)
{
    mb_ctx *ctx = m->ctx;
    const int B = s->pub.B;
    const size_t nlg = (size_t)B * m->vocab_padded * sizeof(float);
    const int phase = (int)(s->pos[0] % s->period);
    memcpy(s->pin_tok, tokens, (size_t)B * sizeof(int32_t));
    if (s->graph[phase]) {
        if (mb_cuda_graph_launch(ctx, s->graph[phase])) return -1;
        sa_advance(m, s);
    } else if (sa_run(m, s, s->seen[phase] ? &s->graph[phase] : NULL, sa_step_pinned, NULL)) {
        return -1;
    }
    s->seen[phase] = 1;
    if (mb_cuda_sync(ctx)) return -1;
    if (logits) memcpy(logits, s->pin_lg, nlg);
    return mb_ctx_check(ctx);
}
#endif

int mb_sashimi_step(mb_model *m, mb_state *st, const int32_t *tokens, float *logits)
{
    sa_state *s = (sa_state *)st;
    if (st->model != m) return mb_error_set("state belongs to another model");
    const int B = st->B;
    if (mb_lm_check_tokens(m, tokens, (size_t)B, "token", 0)) return -1;
#ifdef MB_HAVE_CUDA
    if (s->period) return sa_step_graph(m, s, tokens, logits);
#endif
    mb_sa_acts *a = &s->act;
    mb_ctx *ctx = m->ctx;
    if (mb_dev_upload(ctx, a->tok, tokens, (size_t)B * sizeof(int32_t))) return -1;
    if (sa_step_body(m, s, logits != NULL)) return -1;
    if (logits && mb_dev_download(ctx, logits, a->logits, (size_t)B * m->vocab_padded * sizeof(float)))
        return -1;
    return mb_ctx_check(ctx);
}

/* ---- sampled generation ---------------------------------------------------- */

/* A step and its draw (arg: the head's mb_head_sample_params): the next
 * input lands in act.tok (device) */
static int sa_sample_step(mb_model *m, sa_state *s, const void *arg)
{
    const float *y = sa_level_step(m, s, 0);
    if (!y) return -1;
    mb_head_sample(m->ctx, (const mb_head_sample_params *)arg, y, &s->act.ws);
    return 0;
}

#ifdef MB_HAVE_CUDA
/* a whole pooling period of steps and draws */
static int sa_sample_period(mb_model *m, sa_state *s, const void *arg)
{
    for (int j = 0; j < s->period; j++)
        if (sa_sample_step(m, s, arg)) return -1;
    return 0;
}

/* On the GPU: where the phase is 0 and a whole period is left, one launch
 * of the period's graph (captured on the first such launch after a period's
 * worth of draws has run eagerly, so lazy initializations happen outside
 * any capture);
 * otherwise one step run eagerly. After each launch the ring of drawn
 * classes is copied to a pinned slot without waiting; the host waits only
 * when the slots are full or the run is done. */
static int sa_sample_graph(mb_model *m, sa_state *s, const mb_head_sample_params *hp, int n, int32_t *out)
{
    mb_ctx *ctx = m->ctx;
    const int B = s->pub.B, H = s->hist_len, P = s->period;
    const size_t ring = (size_t)B * H;
    struct {
        int64_t t0;
        int i0, k;
    } rec[SA_SLOTS];
    int nrec = 0;
    for (int i = 0; i < n;) {
        int k = 1;
        if (s->pos[0] % P == 0 && n - i >= P && (s->pgraph || s->eager_draws >= P)) {
            k = P;
            if (s->pgraph) {
                if (mb_cuda_graph_launch(ctx, s->pgraph)) return -1;
                for (int j = 0; j < P; j++) sa_advance(m, s);
            } else if (sa_run(m, s, &s->pgraph, sa_sample_period, hp)) {
                return -1;
            }
        } else if (sa_run(m, s, NULL, sa_sample_step, hp)) {
            return -1;
        } else {
            s->eager_draws++;
        }
        if (mb_cuda_copy_async(ctx, s->pin_hist + (size_t)nrec * ring, s->shist, ring * sizeof(int32_t)))
            return -1;
        rec[nrec].t0 = s->pub.drawn, rec[nrec].i0 = i, rec[nrec].k = k;
        nrec++;
        s->pub.drawn += k;
        i += k;
        if (nrec < SA_SLOTS && i < n) continue;
        if (mb_cuda_sync(ctx) || mb_ctx_check(ctx)) return -1;
        for (int r = 0; r < nrec; r++)
            for (int b = 0; b < B; b++)
                for (int j = 0; j < rec[r].k; j++)
                    out[(size_t)b * n + rec[r].i0 + j] =
                        s->pin_hist[(size_t)r * ring + (size_t)b * H + (rec[r].t0 + j) % H];
        nrec = 0;
    }
    return 0;
}
#endif

/* On the CPU, each block's A = -exp(A_log) once for a call's run of steps
 * (host memory; NULL on failure, the reason set) */
static float *sa_pin_A(mb_model *m, sa_state *s)
{
    const struct mb_sashimi *sa = m->sa;
    const int nl = (2 * sa->S + 1) * sa->n;
    size_t total = 0;
    for (int i = 0; i < nl; i++) total += (size_t)sa->layers[i].mixer.d_inner * sa->layers[i].mixer.d_state;
    float *buf = mb_calloc(total, sizeof(float), "sampling"), *p = buf;
    for (int i = 0; buf && i < nl; i++) {
        mb_mixer_state_pin_A(m->ctx, &sa->layers[i].mixer, &m->params, &s->pub.layers[i], p);
        p += (size_t)sa->layers[i].mixer.d_inner * sa->layers[i].mixer.d_state;
    }
    return buf;
}

static void sa_unpin_A(mb_model *m, sa_state *s, float *buf)
{
    for (int i = 0; i < (2 * m->sa->S + 1) * m->sa->n; i++) s->pub.layers[i].A = NULL;
    free(buf);
}

int mb_sashimi_sample(mb_model *m, mb_state *st, const int32_t *tokens, int n, const mb_sampler *sp,
                      int32_t *out)
{
    sa_state *s = (sa_state *)st;
    mb_sa_acts *a = &s->act;
    mb_ctx *ctx = m->ctx;
    const int B = st->B;
    const mb_sample_cfg cfg = {.seed = sp->seed, .temperature = sp->temperature, .top_p = sp->top_p};
    for (int b = 0; b < B; b++) s->hcount[b] = st->drawn;
    if (mb_dev_upload(ctx, s->scfg, &cfg, sizeof cfg) ||
        mb_dev_upload(ctx, s->scount, s->hcount, (size_t)B * sizeof(int64_t)) ||
        mb_dev_upload(ctx, a->tok, tokens, (size_t)B * sizeof(int32_t)))
        return -1;
    const mb_head_sample_params hp = {
        .batch = B, .d_model = m->cfg.d_model, .vocab = m->cfg.vocab_size, .eps = m->cfg.norm_eps,
        .norm_w = mb_param_data(&m->params, m->p_norm_f_w), .head = mb_param_data(&m->params, m->p_lm_head),
        .cfg = s->scfg, .count = s->scount, .next = a->tok, .hist = s->shist, .hist_len = s->hist_len};
#ifdef MB_HAVE_CUDA
    if (s->period) return sa_sample_graph(m, s, &hp, n, out);
#endif
    float *A = NULL;
    if (ctx->kind == MB_DEV_CPU && !(A = sa_pin_A(m, s))) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        /* a CUDA context without a period graph (a period above
         * SA_GRAPH_MAX) reads the classes back one step at a time */
        rc = sa_sample_step(m, s, &hp) || mb_ctx_check(ctx) ||
             mb_dev_download(ctx, s->col, a->tok, (size_t)B * sizeof(int32_t));
        for (int b = 0; b < B && !rc; b++) out[(size_t)b * n + i] = s->col[b];
        st->drawn += !rc;
    }
    sa_unpin_A(m, s, A);
    return rc ? -1 : mb_ctx_check(ctx);
}

/* ---- chunks: steps up to a period's edge, whole periods in parallel ----------- */

/* Rows (B times positions) one parallel piece of a chunk holds: its
 * activations take ~25 KB a row with the default model, so ~100 MB on a
 * CPU, where a piece already keeps the cores busy, and ~1.6 GB on a GPU,
 * where the rows are its parallelism. */
#define SA_PIECE_ROWS_CPU (1 << 12)
#define SA_PIECE_ROWS_GPU (1 << 16)

static int sa_chunk_step(mb_model *m, sa_state *s, const int32_t *tokens, int L, int t, float *logits)
{
    const int B = s->pub.B, Vp = m->vocab_padded;
    for (int b = 0; b < B; b++) s->col[b] = tokens[(size_t)b * L + t];
    if (mb_sashimi_step(m, &s->pub, s->col, logits ? s->lg : NULL)) return -1;
    if (logits)
        for (int b = 0; b < B; b++)
            memcpy(logits + ((size_t)b * L + t) * Vp, s->lg + (size_t)b * Vp, (size_t)Vp * sizeof(float));
    return 0;
}

/* positions t .. t+len-1 of tokens (B, L) by the parallel forward from the
 * state (len: whole periods, at most pre_len; the state on a period's edge) */
static int sa_chunk_piece(mb_model *m, sa_state *s, const int32_t *tokens, int L, int t, int len, float *logits)
{
    mb_ctx *ctx = m->ctx;
    mb_sa_acts *a = &s->pre;
    const int B = s->pub.B, Vp = m->vocab_padded;
    for (int b = 0; b < B; b++)
        if (mb_dev_upload(ctx, a->tok + (size_t)b * len, tokens + (size_t)b * L + t, (size_t)len * sizeof(int32_t)))
            return -1;
    if (sa_forward_levels(m, a, B, len, s->pub.layers, s->upbuf, logits != NULL)) return -1;
    int64_t n = len;
    for (int l = 0; l < m->sa->S; l++) {
        s->pos[l] += n;
        n /= m->cfg.pool[l];
    }
    if (logits)
        for (int b = 0; b < B; b++)
            if (mb_dev_download(ctx, logits + ((size_t)b * L + t) * Vp, a->logits + (size_t)b * len * Vp,
                                (size_t)len * Vp * sizeof(float)))
                return -1;
    return mb_ctx_check(ctx);
}

int mb_sashimi_forward_chunk(mb_model *m, mb_state *st, const int32_t *tokens, int L,
                             float *logits)
{
    sa_state *s = (sa_state *)st;
    if (st->model != m) return mb_error_set("state belongs to another model");
    if (L < 1) return mb_error_set("empty chunk");
    const int B = st->B, P = sa_pool_prod(&m->cfg);
    if (mb_lm_check_tokens(m, tokens, (size_t)B * L, "token", 0)) return -1;
    int t = 0;
    /* single steps up to the next period's edge (or to the end) */
    for (; t < L && (s->pos[0] % P || L - t < P); t++)
        if (sa_chunk_step(m, s, tokens, L, t, logits)) return -1;
    /* the pieces' activations: as long as this chunk's whole periods, at
     * most the budget; grown (at least doubled) when a longer chunk comes */
    const int budget = m->ctx->kind == MB_DEV_CUDA ? SA_PIECE_ROWS_GPU : SA_PIECE_ROWS_CPU;
    const int most = budget / B / P * P > P ? budget / B / P * P : P, whole = (L - t) / P * P;
    const int want = whole < most ? whole : most;
    if (want > s->pre_len) {
        const int len = want > 2 * s->pre_len ? want : (2 * s->pre_len < most ? 2 * s->pre_len : most);
        sa_acts_free(m->ctx, &s->pre);
        s->pre_len = 0;
        if (sa_acts_init(m, &s->pre, B, len, 0)) return -1;
        s->pre_len = len;
    }
    while (L - t >= P) {
        const int whole = (L - t) / P * P, len = whole < s->pre_len ? whole : s->pre_len;
        if (sa_chunk_piece(m, s, tokens, L, t, len, logits)) return -1;
        t += len;
    }
    for (; t < L; t++)
        if (sa_chunk_step(m, s, tokens, L, t, logits)) return -1;
    return 0;
}
