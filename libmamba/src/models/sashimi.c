/* The SaShiMi U-Net of Mamba blocks (cfg.arch MB_ARCH_SASHIMI; mamba.h
 * describes the network): parallel forward and backward over (B, L) with
 * every activation kept (audio crops are short: no recompute), and the
 * recurrent step where each stage steps at its own rate. Built from the nn
 * modules (embedding, residual Mamba and MLP blocks, pools, head), so it
 * runs unchanged on every backend.
 *
 * Tensor names (S = n_pool stages, n = n_layer, s = 0 is the finest):
 *   backbone.embedding.weight               (vocab padded, d_model)
 *   down.{s}.layers.{i}.norm.weight          block i of stage s going down
 *   down.{s}.layers.{i}.mixer.*              mamba_ssm's mixer names
 *   down.{s}.layers.{i}.mlp_norm.weight      with mlp only, and
 *   down.{s}.layers.{i}.mlp.fc1.{weight,bias}   (2 D_s, D_s), (2 D_s)
 *   down.{s}.layers.{i}.mlp.fc2.{weight,bias}   (D_s, 2 D_s), (D_s)
 *   down.{s}.pool.linear.{weight,bias}       (D_{s+1}, p_s D_s), (D_{s+1})
 *   center.layers.{i}.*                      at width D_S
 *   up.{s}.pool.linear.{weight,bias}         (p_s D_s, D_{s+1}), (p_s D_s)
 *   up.{s}.layers.{i}.*
 *   norm_f.weight, lm_head.weight            (d_model), (vocab padded, d_model)
 * in that order (down 0..S-1, center, up S-1..0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "nn/embedding.h"
#include "nn/mlp.h"
#include "nn/pool.h"

#define SA_GRAPH_MAX 256 /* step graphs per state: periods above this run eagerly */

/* A block of the U-Net: the residual Mamba block, then with cfg.mlp the
 * residual MLP block. */
typedef struct {
    mb_layer blk;
    int has_mlp;
    mb_mlp mlp;
} sa_layer;

/* What a block's forward keeps (rows of one level). */
typedef struct {
    mb_layer_acts la;
    float *mid;      /* the Mamba block's output */
    mb_mlp_acts ma;
    float *out;      /* the block's output: the MLP block's, or mid */
} sa_layer_bufs;

/* Activations of the whole U-Net for rows[lvl] rows per level: a training
 * shape (B*L_lvl rows), a chunk's piece, or one step (B rows at every
 * level). */
typedef struct {
    int B, L, train;
    int rows[MB_MAX_POOL + 1];
    float *buf;                   /* device */
    int32_t *tok;                 /* the tokens (device): the facade's in training, else own_tok */
    int32_t *own_tok;
    float *x[MB_MAX_POOL + 1];    /* level input: embedding, or the DownPool's output */
    float *u[MB_MAX_POOL];        /* up stack input: UpPool + skip */
    float *y[MB_MAX_POOL + 1];    /* level output */
    float *dY[MB_MAX_POOL + 1], *dU[MB_MAX_POOL + 1]; /* backward */
    float *tmp;                   /* UpPool's unshifted projection */
    float *s16, *g16;             /* bf16: a pool's rounded input, its gradient (nn/pool.h) */
    mb_lm_head_acts hacts;        /* norm_f's output hf */
    float *logits;
    float *dxn, *dg;              /* backward scratch of one block */
    sa_layer_bufs *lb;            /* (2S+1) * n blocks, stack order */
    mb_arena ws;
} sa_acts;

typedef struct {
    int S, n;
    int width[MB_MAX_POOL + 1];   /* D_lvl */
    mb_embedding embed;
    sa_layer *layers;             /* stack k (down 0..S-1, center S, up S-1..0 as k = S+1..2S) */
    mb_pool down[MB_MAX_POOL], up[MB_MAX_POOL];
    mb_lm_head head;
    sa_acts act;                  /* training activations, sized per (B, L) */
} sa_net;

static sa_net *net(const mb_model *m) { return (sa_net *)m->net; }

/* stacks in forward order: down 0..S-1, center, up S-1..0 */
static int sa_level(const sa_net *sa, int k) { return k <= sa->S ? k : 2 * sa->S - k; }
static sa_layer *sa_stack(const sa_net *sa, int k) { return sa->layers + (size_t)k * sa->n; }

static int sa_pool_prod(const mb_config *c)
{
    int p = 1;
    for (int s = 0; s < c->n_pool; s++) p *= c->pool[s];
    return p;
}

/* the config a stage's blocks see: its width, dt_rank auto for that width */
static mb_config sa_stage_cfg(const mb_config *c, int width)
{
    mb_config s = *c;
    s.d_model = width;
    s.dt_rank = (width + 15) / 16;
    return s;
}

static int sa_check(mb_config *c)
{
    if (c->n_pool < 1 || c->n_pool > MB_MAX_POOL)
        return mb_error_set("config: sashimi n_pool %d out of range [1, %d]", c->n_pool, MB_MAX_POOL);
    if (c->pool_expand < 1 || c->pool_expand > 16)
        return mb_error_set("config: sashimi pool_expand %d out of range [1, 16]", c->pool_expand);
    int64_t width = c->d_model, prod = 1;
    for (int s = 0; s < c->n_pool; s++) {
        if (c->pool[s] < 2 || c->pool[s] > 256)
            return mb_error_set("config: sashimi pool[%d] is %d: pooling factors must be in [2, 256]", s,
                                c->pool[s]);
        width *= c->pool_expand;
        prod *= c->pool[s];
    }
    if (width > (1 << 16) || prod > (1 << 20))
        return mb_error_set("config: sashimi too deep (width %lld, pooling %lld)", (long long)width, (long long)prod);
    if (c->mlp != 0 && c->mlp != 1) return mb_error_set("config: sashimi mlp must be 0 or 1");
    if (!c->rms_norm) return mb_error_set("config: sashimi models need rms_norm");
    /* the U-Net steps through the fused block step, which has no projection biases */
    if (c->bias || !c->conv_bias)
        return mb_error_set("config: sashimi models take the default biases (no projection bias, a conv bias)");
    if (c->dt_rank != (c->d_model + 15) / 16)
        return mb_error_set("config: sashimi models take dt_rank \"auto\" (per stage)");
    c->tie_embeddings = 0;
    return 0;
}

/* ---- parameters ----------------------------------------------------------- */

static int sa_layer_register(mb_model *m, sa_layer *ly, const char *prefix, int width)
{
    mb_params *ps = &m->params;
    const mb_config sc = sa_stage_cfg(&m->cfg, width);
    char np[MB_PARAM_NAME_MAX + 16], mp[MB_PARAM_NAME_MAX + 16];
    if (mb_layer_register(&ly->blk, ps, prefix, &sc)) return -1;
    ly->has_mlp = m->cfg.mlp;
    if (!ly->has_mlp) return 0;
    snprintf(np, sizeof np, "%s.mlp_norm", prefix);
    snprintf(mp, sizeof mp, "%s.mlp", prefix);
    return mb_mlp_register(&ly->mlp, ps, np, mp, width, m->cfg.norm_eps);
}

static int sa_stack_register(mb_model *m, int k)
{
    sa_net *sa = net(m);
    char prefix[MB_PARAM_NAME_MAX];
    sa_layer *ly = sa_stack(sa, k);
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

static int sa_build(mb_model *m)
{
    const mb_config *c = &m->cfg;
    mb_params *ps = &m->params;
    sa_net *sa = mb_calloc(1, sizeof *sa, "sashimi");
    if (!sa) return -1;
    m->net = sa;
    sa->S = c->n_pool;
    sa->n = c->n_layer;
    sa->width[0] = c->d_model;
    for (int s = 0; s < sa->S; s++) sa->width[s + 1] = sa->width[s] * c->pool_expand;
    if (!(sa->layers = mb_calloc((size_t)(2 * sa->S + 1) * sa->n, sizeof(sa_layer), "sashimi"))) return -1;
    char prefix[32];
    if (mb_embedding_register(&sa->embed, ps, "backbone.embedding.weight", m->vocab_padded, c->d_model)) return -1;
    for (int s = 0; s < sa->S; s++) {
        snprintf(prefix, sizeof prefix, "down.%d.pool", s);
        if (sa_stack_register(m, s) ||
            mb_downpool_register(&sa->down[s], ps, prefix, sa->width[s], c->pool[s], sa->width[s + 1]))
            return -1;
    }
    if (sa_stack_register(m, sa->S)) return -1;
    for (int s = sa->S - 1; s >= 0; s--) {
        snprintf(prefix, sizeof prefix, "up.%d.pool", s);
        if (mb_uppool_register(&sa->up[s], ps, prefix, sa->width[s], c->pool[s], sa->width[s + 1]) ||
            sa_stack_register(m, 2 * sa->S - s))
            return -1;
    }
    return mb_lm_head_register(&sa->head, ps, "norm_f", "lm_head.weight", -1, c->d_model, m->vocab_padded, 1,
                               c->norm_eps);
}

static void sa_init_weights(mb_model *m, float *host, uint64_t seed)
{
    sa_net *sa = net(m);
    const mb_params *ps = &m->params;
    mb_rng rng;
    mb_rng_seed(&rng, seed);
    mb_embedding_init_weights(&sa->embed, ps, host, &rng);
    for (int k = 0; k <= 2 * sa->S; k++) {
        const sa_layer *ly = sa_stack(sa, k);
        for (int i = 0; i < sa->n; i++) {
            const mb_config sc = sa_stage_cfg(&m->cfg, ly[i].blk.width);
            mb_layer_init_weights(&ly[i].blk, ps, host, &sc, &rng);
            if (ly[i].has_mlp) mb_mlp_init_weights(&ly[i].mlp, ps, host, &rng);
        }
    }
    for (int s = 0; s < sa->S; s++) {
        mb_pool_init_weights(&sa->down[s], ps, host, &rng);
        mb_pool_init_weights(&sa->up[s], ps, host, &rng);
    }
    mb_lm_head_init_weights(&sa->head, ps, host, &rng);
}

/* ---- activation buffers --------------------------------------------------- */

typedef struct {
    const mb_model *m;
    sa_acts *a;
} sa_layout_arg;

static void sa_layout(mb_carve *c, void *arg)
{
    const sa_layout_arg *la = arg;
    const mb_model *m = la->m;
    sa_acts *a = la->a;
    const sa_net *sa = net(m);
    const int S = sa->S, train = a->train;
    size_t maxrd = 0, tmp = 0;
    for (int l = 0; l <= S; l++) {
        const size_t RD = (size_t)a->rows[l] * sa->width[l];
        maxrd = RD > maxrd ? RD : maxrd;
        a->x[l] = mb_carve_take(c, RD);
        a->y[l] = mb_carve_take(c, RD);
        if (l < S) a->u[l] = mb_carve_take(c, RD);
        a->dY[l] = train ? mb_carve_take(c, RD) : NULL;
        a->dU[l] = train ? mb_carve_take(c, RD) : NULL;
        if (l < S) {
            const size_t t = (size_t)a->rows[l + 1] * m->cfg.pool[l] * sa->width[l];
            tmp = t > tmp ? t : tmp;
        }
    }
    a->tmp = mb_carve_take(c, tmp);
    a->s16 = mb_carve_take(c, maxrd);
    a->g16 = train ? mb_carve_take(c, maxrd) : NULL;
    mb_lm_head_acts_carve(&a->hacts, &sa->head, a->rows[0], c);
    a->logits = mb_carve_take(c, (size_t)a->rows[0] * m->vocab_padded);
    a->dxn = train ? mb_carve_take(c, maxrd) : NULL;
    a->dg = train && m->cfg.mlp ? mb_carve_take(c, 2 * maxrd) : NULL;
    /* Inference over positions (no backward, not a step) keeps no block's
     * buffers past the next block's forward: the blocks of a level (its
     * down, center or up stack) take turns on two sets. The down stack's
     * last output, the skip, is read before the up stack of its level runs,
     * and the coarser levels have sets of their own. A step keeps one set a
     * block: its B rows are small, and its fused kernels stay as tested. */
    const int share = !train && a->L > 1;
    sa_layer_bufs turn[MB_MAX_POOL + 1][2];
    int have[MB_MAX_POOL + 1][2] = {{0}};
    for (int k = 0; k <= 2 * S; k++) {
        const int lvl = sa_level(sa, k), R = a->rows[lvl];
        const sa_layer *ly = sa_stack(sa, k);
        for (int i = 0; i < sa->n; i++) {
            sa_layer_bufs *b = &a->lb[k * sa->n + i];
            if (share && have[lvl][i & 1]) {
                *b = turn[lvl][i & 1];
                continue;
            }
            mb_layer_acts_carve(&b->la, &ly[i].blk, R, 0, c);
            b->mid = mb_carve_take(c, (size_t)R * ly[i].blk.width);
            b->out = b->mid;
            if (ly[i].has_mlp) {
                mb_mlp_acts_carve(&b->ma, &ly[i].mlp, R, c);
                b->out = mb_carve_take(c, (size_t)R * ly[i].blk.width);
            }
            if (share) turn[lvl][i & 1] = *b, have[lvl][i & 1] = 1;
        }
    }
}

static void sa_acts_free(mb_ctx *ctx, sa_acts *a)
{
    mb_dev_free(ctx, a->buf);
    mb_dev_free(ctx, a->own_tok);
    free(a->lb);
    mb_arena_free(&a->ws);
    memset(a, 0, sizeof *a);
}

/* L > 1 (a multiple of the pooling factors' product): rows B * L_l per
 * level (L_l = L / prod(pool[0..l))); train: also the backward's buffers.
 * own_tokens: a device buffer for the tokens (a state's steps and chunks),
 * else they are the facade's. L = 1: one step, B rows at every level. */
static int sa_acts_init(const mb_model *m, sa_acts *a, int B, int L, int train, int own_tokens)
{
    const sa_net *sa = net(m);
    memset(a, 0, sizeof *a);
    a->B = B;
    a->L = L;
    a->train = train;
    int Ll = L;
    size_t wsz = 0;
    for (int l = 0; l <= sa->S; l++) {
        const int Lr = L > 1 ? Ll : 1;
        a->rows[l] = B * Lr;
        const size_t w = mb_layer_workspace(m->ctx, &sa_stack(sa, l)[0].blk, B, Lr);
        wsz = w > wsz ? w : wsz;
        if (l < sa->S) Ll /= m->cfg.pool[l];
    }
    if (L == 1) {
        /* a step's head with its draw (sa_sample) */
        const mb_head_sample_params hp = {.batch = B, .d_model = m->cfg.d_model, .vocab = m->cfg.vocab_size};
        const size_t w = mb_head_sample_workspace(m->ctx, &hp);
        wsz = w > wsz ? w : wsz;
    }
    sa_layout_arg arg = {m, a};
    a->lb = mb_calloc((size_t)(2 * sa->S + 1) * sa->n, sizeof *a->lb, "sashimi activations");
    a->buf = a->lb ? mb_dev_carve(m->ctx, sa_layout, &arg, "activations") : NULL;
    if (a->buf && own_tokens)
        a->tok = a->own_tok = mb_dev_alloc(m->ctx, mb_carve_round((size_t)a->rows[0]) * sizeof(int32_t), "tokens");
    if (!a->buf || (own_tokens && !a->own_tok) || mb_arena_init(&a->ws, m->ctx, wsz)) {
        sa_acts_free(m->ctx, a);
        return mb_error_set("out of memory for activations of batch %d x length %d", B, L);
    }
    return 0;
}

static void sa_destroy(mb_model *m)
{
    sa_net *sa = net(m);
    sa_acts_free(m->ctx, &sa->act);
    free(sa->layers);
    free(sa);
    m->net = NULL;
}

/* ---- blocks ----------------------------------------------------------------- */

/* A block over (B, L) rows; with st and L = 1, its recurrent step, where io
 * (or NULL) says where the step reads and writes beyond its own buffers and
 * out (or NULL) replaces b->out (blocks without an MLP only). */
static int sa_layer_fwd(mb_model *m, const sa_layer *ly, int B, int L, const float *in, sa_layer_bufs *b,
                        mb_mixer_state *st, mb_arena *ws, const mb_block_io *io, float *out)
{
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    if (out && ly->has_mlp) return mb_error_set("internal: a block with an MLP writes its own output");
    /* a step the fused op takes only where it computes the precision's
     * values; else the block's own ops, which take no io */
    if (L == 1 && st && mb_layer_step_fused_ok(ctx)) {
        if (mb_layer_step(ctx, &ly->blk, ps, B, in, out ? out : b->mid, st, ws, io)) return -1;
    } else if (mb_layer_fwd(ctx, &ly->blk, ps, B, L, in, b->mid, &b->la, st, ws)) {
        return -1;
    }
    if (ly->has_mlp) mb_mlp_fwd(ctx, &ly->mlp, ps, B * L, b->mid, b->out, &b->ma);
    return 0;
}

/* dh holds d(out) and is left holding d(in) */
static int sa_layer_bwd(mb_model *m, const sa_layer *ly, int B, int L, const float *in, const sa_layer_bufs *b,
                        float *dh, sa_acts *a)
{
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    if (ly->has_mlp) mb_mlp_bwd(ctx, &ly->mlp, ps, B * L, b->mid, &b->ma, dh, a->dg, a->dxn);
    return mb_layer_bwd(ctx, &ly->blk, ps, B, L, in, &b->la, dh, a->dxn, &a->ws, NULL, NULL);
}

/* stack k over (B, L) rows from `in`; returns its output (the last block's).
 * In a step, first (or NULL) is the first block's io (its rows from the
 * embedding), and last / last_out (or NULL) the last block's io and output. */
static const float *sa_stack_fwd(mb_model *m, sa_acts *a, int k, int B, int L, const float *in,
                                 mb_mixer_state *st, const mb_block_io *first, const mb_block_io *last,
                                 float *last_out)
{
    const sa_net *sa = net(m);
    const sa_layer *ly = sa_stack(sa, k);
    sa_layer_bufs *b = a->lb + (size_t)k * sa->n;
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
        if (sa_layer_fwd(m, &ly[i], B, L, h, &b[i], st ? &st[i] : NULL, &a->ws, is_first || is_last ? &io : NULL,
                         out))
            return NULL;
        h = out ? out : b[i].out;
    }
    return h;
}

static int sa_stack_bwd(mb_model *m, sa_acts *a, int k, int B, int L, const float *in, float *dh)
{
    const sa_net *sa = net(m);
    const sa_layer *ly = sa_stack(sa, k);
    const sa_layer_bufs *b = a->lb + (size_t)k * sa->n;
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

/* What the end of a forward computes. */
enum { SA_HEAD_NONE = 0, SA_HEAD_HF = 1, SA_HEAD_LOGITS = 2 };

/* The U-Net over (B, L) from the tokens in a->tok (L a multiple of the
 * pooling factors' product), into a's buffers (sized for at least B * L
 * rows). With st (every block's mixer state) and upbuf (each UpPool's
 * projection of the coarse step completed before, see the step below), the
 * rows continue a recurrent state and leave it at their end, which is what
 * L steps would do: each mixer starts from its state, and each UpPool's
 * first coarse step reads upbuf instead of zeros, which then keeps the
 * chunk's last projection (the DownPools' buffers need nothing: the chunk
 * starts and ends on a period's edge). Training passes NULLs. head: what
 * of the final norm and the logits to compute. */
static int sa_forward_levels(mb_model *m, sa_acts *a, int B, int L, mb_mixer_state *st, float *const *upbuf,
                             int head)
{
    const sa_net *sa = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int S = sa->S, M0 = B * L;
    mb_embedding_fwd(ctx, &sa->embed, ps, M0, a->tok, a->x[0]);
    int Ls[MB_MAX_POOL + 1];
    Ls[0] = L;
    for (int s = 0; s < S; s++) Ls[s + 1] = Ls[s] / m->cfg.pool[s];
#define SA_ST(k) (st ? st + (size_t)(k) * sa->n : NULL)
    for (int s = 0; s < S; s++) {
        const float *dn = sa_stack_fwd(m, a, s, B, Ls[s], a->x[s], SA_ST(s), NULL, NULL, NULL);
        if (!dn) return -1;
        mb_downpool_fwd(ctx, &sa->down[s], ps, B, Ls[s], dn, a->x[s + 1], a->s16);
    }
    const float *c = sa_stack_fwd(m, a, S, B, Ls[S], a->x[S], SA_ST(S), NULL, NULL, NULL);
    if (!c) return -1;
    sa_residual(ctx, (size_t)B * Ls[S] * sa->width[S], c, a->x[S], a->y[S]);
    for (int s = S - 1; s >= 0; s--) {
        const size_t n = (size_t)B * Ls[s] * sa->width[s];
        mb_uppool_fwd(ctx, &sa->up[s], ps, B, Ls[s + 1], a->y[s + 1], a->tmp, a->u[s], upbuf ? upbuf[s] : NULL,
                      a->s16);
        /* the skip: the DownPool's input, the down stack's output */
        mb_axpby(ctx, n, 1.f, a->lb[((size_t)s + 1) * sa->n - 1].out, 1.f, a->u[s]);
        const float *o = sa_stack_fwd(m, a, 2 * S - s, B, Ls[s], a->u[s], SA_ST(2 * S - s), NULL, NULL, NULL);
        if (!o) return -1;
        sa_residual(ctx, n, o, a->u[s], a->y[s]);
    }
#undef SA_ST
    if (head != SA_HEAD_NONE)
        mb_lm_head_fwd(ctx, &sa->head, ps, M0, a->y[0], &a->hacts, head == SA_HEAD_LOGITS ? a->logits : NULL);
    return 0;
}

static int sa_forward(mb_model *m, const int32_t *tok, int B, int L, int want_logits, int train, mb_fwd_out *out)
{
    sa_acts *a = &net(m)->act;
    const int prod = sa_pool_prod(&m->cfg);
    if (L % prod)
        return mb_error_set("sequence length %d is not a multiple of %d, the product of the sashimi pooling factors",
                            L, prod);
    /* a forward alone runs in training's buffers when they are there (a
     * validation between steps allocates nothing), else in its own, a
     * quarter or less of them with 8 blocks a stage */
    if (a->B != B || a->L != L || !a->buf || (train && !a->train)) {
        sa_acts_free(m->ctx, a);
        if (sa_acts_init(m, a, B, L, train, 0)) return -1;
    }
    a->tok = (int32_t *)tok;
    if (sa_forward_levels(m, a, B, L, NULL, NULL, want_logits ? SA_HEAD_LOGITS : SA_HEAD_HF)) return -1;
    out->hf = a->hacts.hf;
    out->logits = want_logits ? a->logits : NULL;
    return 0;
}

static int sa_backward(mb_model *m, int B, int L, int from_logits)
{
    const sa_net *sa = net(m);
    sa_acts *a = &net(m)->act;
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int S = sa->S, M0 = B * L;
    if (a->B != B || a->L != L)
        return mb_error_set("internal: backward of %d x %d after a forward of %d x %d", B, L, a->B, a->L);
    int Ls[MB_MAX_POOL + 1];
    Ls[0] = L;
    for (int s = 0; s < S; s++) Ls[s + 1] = Ls[s] / m->cfg.pool[s];
    /* head (logits hold dlogits), then norm_f into dY[0] */
    if (from_logits) mb_lm_head_bwd_logits(ctx, &sa->head, ps, M0, &a->hacts, a->logits);
    mb_lm_head_bwd_norm(ctx, &sa->head, ps, M0, a->y[0], &a->hacts, a->dY[0]);
    /* up the levels: y_s = up(u_s) + u_s, u_s = UpPool(y_{s+1}) + skip_s */
    for (int s = 0; s < S; s++) {
        const size_t n = (size_t)a->rows[s] * sa->width[s];
        mb_axpby(ctx, n, 1.f, a->dY[s], 0.f, a->dU[s]);
        if (sa_stack_bwd(m, a, 2 * S - s, B, Ls[s], a->u[s], a->dU[s])) return -1;
        mb_axpby(ctx, n, 1.f, a->dY[s], 1.f, a->dU[s]);
        /* dU[s] is now d(u_s): the skip's gradient, and the UpPool's */
        mb_uppool_bwd(ctx, &sa->up[s], ps, B, Ls[s + 1], a->y[s + 1], a->dU[s], a->tmp, a->dY[s + 1], a->s16);
    }
    const size_t nS = (size_t)a->rows[S] * sa->width[S];
    mb_axpby(ctx, nS, 1.f, a->dY[S], 0.f, a->dU[S]);
    if (sa_stack_bwd(m, a, S, B, Ls[S], a->x[S], a->dU[S])) return -1;
    mb_axpby(ctx, nS, 1.f, a->dY[S], 1.f, a->dU[S]);
    /* and down again: x_{s+1} = DownPool(dn_s), dn_s = down(x_s) */
    for (int s = S - 1; s >= 0; s--) {
        mb_downpool_bwd(ctx, &sa->down[s], ps, B, Ls[s], a->lb[((size_t)s + 1) * sa->n - 1].out, a->dU[s + 1],
                        a->dU[s], 1.f, a->s16, a->g16);
        if (sa_stack_bwd(m, a, s, B, Ls[s], a->x[s], a->dU[s])) return -1;
    }
    mb_embedding_bwd(ctx, &sa->embed, ps, M0, a->tok, a->dU[0]);
    return mb_ctx_check(ctx);
}

/* ---- recurrent step ----------------------------------------------------------
 * buf holds every block's mixer state, then per stage the DownPool's buffer
 * of fine inputs and the UpPool's projection of the last completed coarse
 * step (both (B, p*D_s)); reset zeroes all of it. pos[s] counts the steps
 * level s has taken. */
typedef struct {
    struct mb_state pub;
    float *buf;             /* device */
    size_t state_floats;
    mb_mixer_state *layers; /* every block's, stack order */
    sa_acts act;
    float *poolbuf[MB_MAX_POOL], *upbuf[MB_MAX_POOL];
    int64_t pos[MB_MAX_POOL];
    int32_t *col; /* host: one column of a chunk */
    /* mb_model_forward_chunk's parallel pieces: activations for (B,
     * pre_len) positions (0: none yet) */
    sa_acts pre;
    int pre_len;
    /* Where the device has graphs (a GPU): a step is many small launches,
     * so each is captured once as a graph and replayed. Which levels step,
     * and where in the pool buffers, depends only on pos[0] modulo the
     * product of the pooling factors (period): one graph per phase, with
     * the tokens and logits going through pinned buffers inside it. */
    int period;
    void *graph[SA_GRAPH_MAX];
    /* a phase's graph is captured at its second visit by steps, a period's
     * at the period after one run eagerly by draws: the first runs do the
     * lazy initializations (never inside a capture), and a chunk's parallel
     * pieces advance pos[] without visiting any phase */
    unsigned char seen[SA_GRAPH_MAX];
    int graph_key; /* mb_ctx_graph_key the graphs were captured under */
    int32_t *pin_tok;
    float *pin_lg;
    /* Sampling (sa_sample): on the device, a pooling period per graph
     * (models/gen.c) */
    mb_gen gen;
} sa_state;

static void sa_state_free(mb_state *st)
{
    sa_state *s = (sa_state *)st;
    mb_ctx *ctx = st->model->ctx;
    for (int i = 0; i < SA_GRAPH_MAX; i++) mb_dev_graph_free(ctx, s->graph[i]);
    mb_gen_free(&s->gen, ctx);
    mb_host_free(ctx, s->pin_tok);
    mb_host_free(ctx, s->pin_lg);
    sa_acts_free(ctx, &s->act);
    sa_acts_free(ctx, &s->pre);
    mb_dev_free(ctx, s->buf);
    free(s->layers);
    free(s->col);
    free(s);
}

static mb_state *sa_state_create(mb_model *m, int B)
{
    const sa_net *sa = net(m);
    mb_ctx *ctx = m->ctx;
    sa_state *s = mb_calloc(1, sizeof *s, "state");
    if (!s) return NULL;
    mb_state_base_init(&s->pub, m, B);
    /* the fused step is how the U-Net steps: its widths must fit it */
    for (int l = 0; l <= sa->S; l++)
        if (!mb_layer_step_fits(ctx, &sa_stack(sa, l)[0].blk)) {
            mb_error_set("the U-Net steps through the fused block step, and this device's shared memory "
                         "cannot hold it at width %d", sa->width[l]);
            mb_state_free(&s->pub);
            return NULL;
        }
    const int nl = (2 * sa->S + 1) * sa->n;
    size_t total = 0;
    for (int k = 0; k <= 2 * sa->S; k++)
        for (int i = 0; i < sa->n; i++) total += mb_mixer_state_floats(&sa_stack(sa, k)[i].blk.mixer, B);
    for (int l = 0; l < sa->S; l++) total += 2 * mb_carve_round((size_t)B * m->cfg.pool[l] * sa->width[l]);
    s->state_floats = total;
    s->buf = mb_dev_alloc_floats(ctx, total, "recurrent state");
    s->layers = mb_calloc((size_t)nl, sizeof(mb_mixer_state), "state");
    s->col = mb_calloc((size_t)B, sizeof(int32_t), "state");
    if (!s->buf || !s->layers || !s->col || sa_acts_init(m, &s->act, B, 1, 0, 1)) {
        mb_state_free(&s->pub);
        return NULL;
    }
    mb_carve c = {s->buf, 0};
    for (int k = 0; k <= 2 * sa->S; k++)
        for (int i = 0; i < sa->n; i++)
            mb_mixer_state_carve(&s->layers[k * sa->n + i], &sa_stack(sa, k)[i].blk.mixer, B, &c);
    for (int l = 0; l < sa->S; l++) {
        const size_t n = (size_t)B * m->cfg.pool[l] * sa->width[l];
        s->poolbuf[l] = mb_carve_take(&c, n);
        s->upbuf[l] = mb_carve_take(&c, n);
    }
    const int P = sa_pool_prod(&m->cfg);
    if (mb_dev_graphs(ctx) && P <= SA_GRAPH_MAX) {
        s->period = P;
        s->pin_tok = mb_host_alloc(ctx, (size_t)B * sizeof(int32_t), "step tokens");
        s->pin_lg = mb_host_alloc(ctx, (size_t)B * m->vocab_padded * sizeof(float), "step logits");
        if (!s->pin_tok || !s->pin_lg) {
            mb_state_free(&s->pub);
            return NULL;
        }
    }
    if (mb_gen_init(&s->gen, ctx, B, s->period)) {
        mb_state_free(&s->pub);
        return NULL;
    }
    return &s->pub;
}

static void sa_state_reset(mb_state *st)
{
    sa_state *s = (sa_state *)st;
    mb_dev_zero(st->model->ctx, s->buf, s->state_floats * sizeof(float));
    memset(s->pos, 0, sizeof s->pos);
}

/* One step of level l from act.x[l]; returns where its output is (act.y[l],
 * or with MLP blocks the last up block's buffer with the residual added in
 * place: a step keeps no activations). A pooled level runs its down stack,
 * files the result in the DownPool's buffer, reads this fine step's slice
 * of the UpPool's projection (of the coarse step completed before the
 * current one), and when the buffer is full runs the coarser level once and
 * projects its output for the next coarse step. */
static const float *sa_level_step(mb_model *m, sa_state *s, int l)
{
    const sa_net *sa = net(m);
    sa_acts *a = &s->act;
    mb_ctx *ctx = m->ctx;
    const int B = s->pub.B, S = sa->S;
    const size_t n = (size_t)B * sa->width[l];
    mb_mixer_state *st = s->layers;
    /* without MLP blocks, a stack's last block also writes the level's
     * residual sum, y = its output + the stack's input (one launch fewer);
     * not where the steps are the blocks' own ops (sa_layer_fwd) */
    const int own = !mb_layer_step_fused_ok(ctx), fuse = !m->cfg.mlp && !own;
    if (l == S) {
        const mb_block_io res = {.out2 = a->y[S], .add2 = a->x[S]};
        float *c = (float *)sa_stack_fwd(m, a, S, B, 1, a->x[S], st + (size_t)S * sa->n, NULL, fuse ? &res : NULL,
                                         NULL);
        if (!c || fuse) return c ? a->y[S] : NULL;
        mb_axpby(ctx, n, 1.f, a->x[S], 1.f, c);
        return c;
    }
    const int p = m->cfg.pool[l], j = (int)(s->pos[l] % p), D = sa->width[l];
    /* level 0's first block reads the embedding table; without MLP blocks,
     * the down stack's last block writes its output into the DownPool
     * buffer's slot j and the skip sum (with the UpPool's slice j) into
     * u[l] itself: three launches fewer than push, read and add */
    const mb_block_io tok = {.tokens = a->tok, .embed = mb_param_data(&m->params, sa->embed.p_w)};
    if (l == 0 && own) mb_embedding_fwd(ctx, &sa->embed, &m->params, B, a->tok, a->x[0]);
    const mb_block_io pool = {.ld_out = p * D, .out2 = a->u[l], .ld_out2 = D, .add2 = s->upbuf[l] + (size_t)j * D,
                              .ld_add2 = p * D};
    const float *dn = sa_stack_fwd(m, a, l, B, 1, a->x[l], st + (size_t)l * sa->n, l || own ? NULL : &tok,
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
        mb_uppool_step_load(ctx, &sa->up[l], &m->params, B, yc, s->upbuf[l], a->s16);
    }
    if (!fuse) mb_axpby(ctx, n, 1.f, dn, 1.f, a->u[l]);
    const mb_block_io res = {.out2 = a->y[l], .add2 = a->u[l]};
    float *o = (float *)sa_stack_fwd(m, a, 2 * S - l, B, 1, a->u[l], st + (size_t)(2 * S - l) * sa->n, NULL,
                                     fuse ? &res : NULL, NULL);
    if (!o) return NULL;
    if (!fuse) mb_axpby(ctx, n, 1.f, a->u[l], 1.f, o);
    s->pos[l]++;
    return fuse ? a->y[l] : o;
}

/* The device work of one step: act.tok in; with head, norm_f's output
 * (act.hacts.hf) and, with SA_HEAD_LOGITS, the logits (act.logits) out. */
static int sa_step_body(mb_model *m, sa_state *s, int head)
{
    sa_acts *a = &s->act;
    /* no embedding launch: level 0's first block reads the table */
    const float *y = sa_level_step(m, s, 0);
    if (!y) return -1;
    if (head != SA_HEAD_NONE)
        mb_lm_head_fwd(m->ctx, &net(m)->head, &m->params, s->pub.B, y, &a->hacts,
                       head == SA_HEAD_LOGITS ? a->logits : NULL);
    return 0;
}

/* What sa_level_step does to pos[], without the work (a replayed graph) */
static void sa_advance(mb_model *m, sa_state *s)
{
    for (int l = 0; l < net(m)->S; l++) {
        const int p = m->cfg.pool[l], j = (int)(s->pos[l]++ % p);
        if (j != p - 1) break;
    }
}

/* the work of mb_dev_run: a model, its state and what the work reads */
typedef struct {
    mb_model *m;
    sa_state *s;
    const mb_head_sample_params *hp;
} sa_work;

/* a step whose tokens and logits go through the pinned buffers */
static int sa_step_pinned(void *arg)
{
    const sa_work *w = arg;
    mb_model *m = w->m;
    sa_state *s = w->s;
    const size_t B = (size_t)s->pub.B;
    return mb_dev_copy_async(m->ctx, s->act.tok, s->pin_tok, B * sizeof(int32_t)) ||
                   sa_step_body(m, s, SA_HEAD_LOGITS) ||
                   mb_dev_copy_async(m->ctx, s->pin_lg, s->act.logits, B * m->vocab_padded * sizeof(float))
               ? -1
               : 0;
}

/* A step through the graph of its phase: the first visit of a phase runs
 * eagerly (lazy initializations happen outside any capture), the second is
 * captured, later ones replay it. Leaves act.hacts.hf and act.logits on the
 * device too. */
static int sa_step_graph(mb_model *m, sa_state *s, const int32_t *tokens, float *logits)
{
    mb_ctx *ctx = m->ctx;
    const int B = s->pub.B;
    const int phase = (int)(s->pos[0] % s->period);
    sa_work w = {m, s, NULL};
    /* graphs of another precision or TF32 setting: each phase is seen
     * (eagerly) again before its next capture */
    if (mb_dev_graphs_rekey(ctx, &s->graph_key, s->graph, SA_GRAPH_MAX)) memset(s->seen, 0, sizeof s->seen);
    memcpy(s->pin_tok, tokens, (size_t)B * sizeof(int32_t));
    if (s->graph[phase]) {
        if (mb_dev_graph_launch(ctx, s->graph[phase])) return -1;
        sa_advance(m, s);
    } else if (mb_dev_run(ctx, s->seen[phase] ? &s->graph[phase] : NULL, sa_step_pinned, &w)) {
        return -1;
    }
    s->seen[phase] = 1;
    if (mb_dev_sync(ctx)) return -1;
    if (logits) memcpy(logits, s->pin_lg, (size_t)B * m->vocab_padded * sizeof(float));
    return mb_ctx_check(ctx);
}

/* A step: tokens (host) in, logits (host, or NULL) out; act.hacts.hf and
 * act.logits are left on the device when head asks for them. */
static int sa_step_head(mb_model *m, sa_state *s, const int32_t *tokens, float *logits, int head)
{
    if (s->period) return sa_step_graph(m, s, tokens, logits);
    mb_ctx *ctx = m->ctx;
    const int B = s->pub.B;
    if (mb_dev_upload(ctx, s->act.tok, tokens, (size_t)B * sizeof(int32_t)) || sa_step_body(m, s, head)) return -1;
    if (logits && mb_dev_download(ctx, logits, s->act.logits, (size_t)B * m->vocab_padded * sizeof(float)))
        return -1;
    return mb_ctx_check(ctx);
}

static int sa_step(mb_model *m, mb_state *st, const int32_t *tokens, float *logits)
{
    return sa_step_head(m, (sa_state *)st, tokens, logits, logits ? SA_HEAD_LOGITS : SA_HEAD_NONE);
}

/* ---- sampled generation ---------------------------------------------------- */

/* A step and its draw: the next input lands in act.tok (device) */
static int sa_sample_step(void *arg)
{
    const sa_work *w = arg;
    const float *y = sa_level_step(w->m, w->s, 0);
    if (!y) return -1;
    /* bf16 precision: the logits of sa_step's head (rounded as the
     * precision stores them), then only the draw */
    if (w->hp->have_logits)
        mb_lm_head_fwd(w->m->ctx, &net(w->m)->head, &w->m->params, w->hp->batch, y, &w->s->act.hacts,
                       w->s->act.logits);
    mb_head_sample(w->m->ctx, w->hp, y, &w->s->act.ws);
    return 0;
}

/* a period starts on the finest level's pooling edge */
static int sa_at_period(void *arg)
{
    const sa_work *w = arg;
    return w->s->pos[0] % w->s->period == 0;
}

/* what a replayed step does to pos[] */
static void sa_gen_advance(void *arg)
{
    const sa_work *w = arg;
    sa_advance(w->m, w->s);
}

/* Where device memory is host memory, each block's A = -exp(A_log) once
 * for a call's run of steps (NULL on failure, the reason set) */
static float *sa_pin_A(mb_model *m, sa_state *s)
{
    const sa_net *sa = net(m);
    const int nl = (2 * sa->S + 1) * sa->n;
    size_t total = 0;
    for (int i = 0; i < nl; i++) total += (size_t)sa->layers[i].blk.mixer.d_inner * sa->layers[i].blk.mixer.d_state;
    float *buf = mb_calloc(total, sizeof(float), "sampling"), *p = buf;
    for (int i = 0; buf && i < nl; i++) {
        const mb_mixer *mx = &sa->layers[i].blk.mixer;
        mb_mixer_state_pin_A(m->ctx, mx, &m->params, &s->layers[i], p);
        p += (size_t)mx->d_inner * mx->d_state;
    }
    return buf;
}

static void sa_unpin_A(mb_model *m, sa_state *s, float *buf)
{
    for (int i = 0; i < (2 * net(m)->S + 1) * net(m)->n; i++) s->layers[i].A = NULL;
    free(buf);
}

static int sa_sample(mb_model *m, mb_state *st, const int32_t *tokens, int n, const mb_sampler *sp, int32_t *out)
{
    sa_state *s = (sa_state *)st;
    sa_acts *a = &s->act;
    const sa_net *sa = net(m);
    mb_ctx *ctx = m->ctx;
    const int B = st->B;
    if (mb_gen_begin(&s->gen, ctx, sp, st->drawn) || mb_dev_upload(ctx, a->tok, tokens, (size_t)B * sizeof(int32_t)))
        return -1;
    const mb_head_sample_params hp = {
        .batch = B, .d_model = m->cfg.d_model, .vocab = m->cfg.vocab_size, .eps = m->cfg.norm_eps,
        .norm_w = mb_param_data(&m->params, sa->head.norm.p_w), .head = mb_param_data(&m->params, sa->head.p_w),
        /* the head's int8 (CPU) or bf16 (GPU) copy, as the steps' logits read it */
        .head_q8 = mb_param_q8(&m->params, sa->head.p_w), .head_bf16 = mb_param_bf16(&m->params, sa->head.p_w),
        /* through the logits where the vocabulary is over what the fused draw
         * holds; in bf16 precision the head's own logits (sa_sample_step) */
        .have_logits = ctx->precision == MB_PREC_BF16,
        .logits = ctx->precision != MB_PREC_BF16 && mb_head_sample_fits(ctx, m->cfg.d_model, m->cfg.vocab_size)
                      ? NULL
                      : a->logits,
        .ld_logits = m->vocab_padded, .cfg = s->gen.cfg, .count = s->gen.count, .next = a->tok,
        .hist = s->gen.ring, .hist_len = s->gen.period};
    float *A = NULL;
    if (mb_dev_host_memory(ctx) && !(A = sa_pin_A(m, s))) return -1;
    sa_work w = {m, s, &hp};
    const mb_gen_fns f = {sa_sample_step, sa_at_period, sa_gen_advance, &w};
    const int rc = mb_gen_run(&s->gen, ctx, &f, n, &st->drawn, a->tok, out);
    sa_unpin_A(m, s, A);
    return rc ? -1 : mb_ctx_check(ctx);
}

/* ---- chunks: steps up to a period's edge, whole periods in parallel ----------- */

/* Rows (B times positions) one parallel piece of a chunk holds: its
 * activations take ~25 KB a row with the default model, so ~100 MB where
 * device memory is host memory, and a piece already keeps the cores busy,
 * and ~1.6 GB on a GPU, where the rows are its parallelism. */
#define SA_PIECE_ROWS_HOST (1 << 12)
#define SA_PIECE_ROWS_DEVICE (1 << 16)

/* position t of tokens (B, L) by one step, its outputs emitted */
static int sa_chunk_step(mb_model *m, sa_state *s, const int32_t *tokens, const mb_chunk_req *r, int t)
{
    const int B = s->pub.B, L = r->L;
    const int head = mb_chunk_req_logits(r) ? SA_HEAD_LOGITS : mb_chunk_req_hf(r) ? SA_HEAD_HF : SA_HEAD_NONE;
    for (int b = 0; b < B; b++) s->col[b] = tokens[(size_t)b * L + t];
    if (sa_step_head(m, s, s->col, NULL, head)) return -1;
    if (head == SA_HEAD_NONE) return 0;
    return mb_chunk_emit(m, &s->pub, r, t, 1, s->act.hacts.hf, head == SA_HEAD_LOGITS ? s->act.logits : NULL);
}

/* positions t .. t+len-1 of tokens (B, L) by the parallel forward from the
 * state (len: whole periods, at most pre_len; the state on a period's edge) */
static int sa_chunk_piece(mb_model *m, sa_state *s, const int32_t *tokens, const mb_chunk_req *r, int t, int len)
{
    mb_ctx *ctx = m->ctx;
    sa_acts *a = &s->pre;
    const int B = s->pub.B, L = r->L;
    const int head = mb_chunk_req_logits(r) ? SA_HEAD_LOGITS : mb_chunk_req_hf(r) ? SA_HEAD_HF : SA_HEAD_NONE;
    for (int b = 0; b < B; b++)
        if (mb_dev_upload(ctx, a->tok + (size_t)b * len, tokens + (size_t)b * L + t, (size_t)len * sizeof(int32_t)))
            return -1;
    if (sa_forward_levels(m, a, B, len, s->layers, s->upbuf, head)) return -1;
    int64_t n = len;
    for (int l = 0; l < net(m)->S; l++) {
        s->pos[l] += n;
        n /= m->cfg.pool[l];
    }
    if (head != SA_HEAD_NONE &&
        mb_chunk_emit(m, &s->pub, r, t, len, a->hacts.hf, head == SA_HEAD_LOGITS ? a->logits : NULL))
        return -1;
    return mb_ctx_check(ctx);
}

static int sa_chunk(mb_model *m, mb_state *st, const int32_t *tokens, int L, const mb_chunk_req *r)
{
    sa_state *s = (sa_state *)st;
    const int B = st->B, P = sa_pool_prod(&m->cfg);
    int t = 0;
    /* single steps up to the next period's edge (or to the end) */
    for (; t < L && (s->pos[0] % P || L - t < P); t++)
        if (sa_chunk_step(m, s, tokens, r, t)) return -1;
    /* the pieces' activations: as long as this chunk's whole periods, at
     * most the budget; grown (at least doubled) when a longer chunk comes */
    const int budget = mb_dev_host_memory(m->ctx) ? SA_PIECE_ROWS_HOST : SA_PIECE_ROWS_DEVICE;
    const int most = budget / B / P * P > P ? budget / B / P * P : P, whole = (L - t) / P * P;
    const int want = whole < most ? whole : most;
    if (want > s->pre_len) {
        const int len = want > 2 * s->pre_len ? want : (2 * s->pre_len < most ? 2 * s->pre_len : most);
        sa_acts_free(m->ctx, &s->pre);
        s->pre_len = 0;
        if (sa_acts_init(m, &s->pre, B, len, 0, 1)) return -1;
        s->pre_len = len;
    }
    while (L - t >= P) {
        const int whole_left = (L - t) / P * P, len = whole_left < s->pre_len ? whole_left : s->pre_len;
        if (sa_chunk_piece(m, s, tokens, r, t, len)) return -1;
        t += len;
    }
    for (; t < L; t++)
        if (sa_chunk_step(m, s, tokens, r, t)) return -1;
    return 0;
}

const mb_arch_ops mb_arch_sashimi = {
    .name = "sashimi-mamba",
    .check = sa_check,
    .build = sa_build,
    .destroy = sa_destroy,
    .init_weights = sa_init_weights,
    .set_recompute = NULL, /* every activation kept: audio crops are short */
    .get_recompute = NULL,
    .forward = sa_forward,
    .backward = sa_backward,
    .state_create = sa_state_create,
    .state_reset = sa_state_reset,
    .state_free = sa_state_free,
    .step = sa_step,
    .chunk = sa_chunk,
    .sample = sa_sample,
};
