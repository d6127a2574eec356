/* The residual LM (mamba_ssm's MambaLMHeadModel): embedding -> n_layer
 * residual Mamba blocks -> norm_f -> head (tied to the embedding or not).
 * Training keeps each layer's activations or, with recompute, only each
 * layer's input, recomputing the layer inside backward (over chunks of the
 * sequence with the states carried, for long contexts). MB_RECOMPUTE_STACK
 * keeps not even the inputs of a long sequence: only the states entering
 * each chunk, the whole stack recomputed a chunk at a time; MB_RECOMPUTE_INNER
 * keeps in_proj's output too, so the recompute skips in_proj. Inference runs
 * through a state with its own small buffers. */
#include <stdio.h>
#include <stdlib.h>

#include "models/model.h"
#include "nn/backbone.h"

typedef struct {
    mb_backbone bb;
    int recompute;  /* MB_RECOMPUTE_* in use (AUTO: INNER, LAYERS or STACK, lm_acts_ensure's choice) */
    int rc_auto;    /* MB_RECOMPUTE_AUTO was asked for */
    int rc_chunk; /* recompute: tokens per chunk of a layer pass (0 = whole sequences) */
    int rc_chunk_set; /* the caller chose rc_chunk, else it follows the mode (lm_set_recompute) */
    int step_fused; /* the device's fused block step runs these widths */

    /* Activations, laid out for (act_B, act_L) the first time a shape is
     * seen and reused after: a step allocates nothing. */
    int act_B, act_L;
    int nx;           /* sets of layer activations: n_layer, or one with recompute by layers */
    int nch;          /* chunked recompute: chunks per sequence (else 1) */
    float *act_buf;   /* device */
    float **h;        /* n_layer + 1 residual streams (M, d), kept with recompute too;
                         stacked: each one chunk's */
    mb_layer_acts *acts;
    mb_lm_head_acts hacts; /* (M rows; stacked without a classifier: a chunk's) */
    int hf_chunk;     /* hacts holds a chunk's rows (lm_stacked_hf) */
    float *logits;    /* (M, Vp) */
    float *dh;        /* backward: the residual stream's gradient (M, d; stacked: a chunk's) */
    float *dxn;       /* a layer's norm-output gradient (rows of one pass) */
    float *saved;     /* chunked: the state entering each (layer, sequence, chunk) */
    float *xzk;       /* MB_RECOMPUTE_INNER: every layer's in_proj output (n_layer, M, 2 d_inner) */
    mb_mixer_state work; /* chunked: the state being advanced */
    mb_mixer_carries *carries; /* chunked: boundary gradients, in and out (stacked: a set a layer) */
    const int32_t *tok; /* the last forward's tokens (device, the facade's) */
    mb_arena ws;
} lm_net;

static lm_net *net(const mb_model *m) { return (lm_net *)m->net; }

/* The chunks of a recompute unless the caller sets them. Layer passes
 * over 128 Ki tokens (the DNA model at L = 2^20, H100: 12.8 GiB at 64 Ki,
 * fewer launches at 128 Ki). Stacked, every layer's activations are kept
 * for a chunk: 64 Ki tokens, the DNA model's 2^20 step in 7.3 GiB, where
 * 32 Ki took 3.7 GiB and 16 Ki 2.0 GiB for 6% and 14% more time than 64 Ki
 * (bf16, H100, session 41; LAYERS 13.5 GiB, 13% faster than 64 Ki). */
#define LM_CHUNK_LAYERS 131072
#define LM_CHUNK_STACK 65536

/* ---- parameters ---------------------------------------------------------------- */

static int lm_build(mb_model *m)
{
    lm_net *n = mb_calloc(1, sizeof *n, "model");
    if (!n) return -1;
    m->net = n;
    n->rc_chunk = LM_CHUNK_LAYERS;
    if (mb_backbone_register(&n->bb, &m->params, &m->cfg, m->vocab_padded)) return -1;
    n->step_fused = mb_layer_step_fits(m->ctx, &n->bb.layers[0]);
    return 0;
}

static void lm_init_weights(mb_model *m, float *host, uint64_t seed)
{
    mb_backbone_init_weights(&net(m)->bb, &m->params, host, &m->cfg, seed);
}

static void lm_acts_free(mb_model *m)
{
    lm_net *n = net(m);
    mb_dev_free(m->ctx, n->act_buf);
    free(n->h);
    free(n->acts);
    free(n->carries);
    mb_arena_free(&n->ws);
    n->act_buf = NULL;
    n->h = NULL;
    n->acts = NULL;
    n->carries = NULL;
    n->act_B = n->act_L = 0;
}

static void lm_destroy(mb_model *m)
{
    lm_net *n = net(m);
    lm_acts_free(m);
    mb_backbone_free(&n->bb);
    free(n);
    m->net = NULL;
}

/* the chunk a mode's layer passes take, unless the caller set one */
static void lm_chunk_default(lm_net *n)
{
    if (!n->rc_chunk_set) n->rc_chunk = n->recompute == MB_RECOMPUTE_STACK ? LM_CHUNK_STACK : LM_CHUNK_LAYERS;
}

static void lm_set_recompute(mb_model *m, int on, int chunk)
{
    lm_net *n = net(m);
    const int was = n->rc_chunk, was_auto = n->rc_auto;
    /* AUTO: LAYERS until lm_acts_ensure sees a shape and the device's room */
    if (on >= 0) n->rc_auto = on == MB_RECOMPUTE_AUTO;
    if (on == MB_RECOMPUTE_AUTO) on = MB_RECOMPUTE_LAYERS;
    int changed = mb_recompute_update(&m->cfg, &n->recompute, &n->rc_chunk, on, chunk) || n->rc_auto != was_auto;
    n->rc_chunk_set |= chunk >= 0;
    lm_chunk_default(n);
    if (changed || n->rc_chunk != was) lm_acts_free(m);
}

static int lm_get_recompute(const mb_model *m) { return net(m)->recompute; }

/* ---- training activations --------------------------------------------------------
 * Recompute over chunks of the sequence: each layer pass sees one chunk of
 * one sequence (B = 1) at a time, with the conv and SSM states carried
 * forward and their gradients carried backward, so a layer's activations
 * and scratch are sized for rc_chunk tokens, not B * L. */
static int lm_chunked(const lm_net *n, int L) { return n->recompute && n->rc_chunk > 0 && L > n->rc_chunk; }

/* Chunked by the stack (MB_RECOMPUTE_STACK): each chunk goes through every
 * layer before the next chunk. Only the states entering each (layer,
 * chunk) are kept past a pass; the backward recomputes a chunk through
 * the whole stack, keeping every layer's activations for that chunk, then
 * runs its backward top to bottom with each layer's carries. The
 * residual streams are a chunk's, not (n_layer + 1) x B x L rows (9 GiB
 * at the DNA model's 2^20); the cost is the forward's scan and out_proj
 * in the recompute, which the layer recompute skips (the scan's backward
 * forms y there). */
static int lm_stacked(const lm_net *n, int L) { return n->recompute == MB_RECOMPUTE_STACK && lm_chunked(n, L); }

/* Stacked, the head's rows too are a chunk's unless a classifier pools hf
 * over the sequence and hands its gradient back there (m->has_cls): the
 * backward then recomputes norm_f with the stack and takes the logits'
 * backward a chunk at a time. What is left of the length is the logits,
 * the tokens and the saved states (the DNA model: 1 GiB less at 2^20 and
 * 4 GiB at 2^22 by the buffer's size; not yet measured on a GPU). */
static int lm_stacked_hf(const mb_model *m, const lm_net *n, int L) { return lm_stacked(n, L) && !m->has_cls; }

/* the head's activations for the rows from r0 on (stacked chunks) */
static mb_lm_head_acts lm_head_rows(const lm_net *n, size_t r0)
{
    return mb_lm_head_acts_rows(&n->hacts, &n->bb.head, n->hf_chunk ? 0 : r0);
}

typedef struct {
    const mb_model *m;
    lm_net *n;
    int B, L;
} lm_layout_arg;

static void lm_layout(mb_carve *c, void *arg)
{
    const lm_layout_arg *a = arg;
    const mb_model *m = a->m;
    lm_net *n = a->n;
    const int nl = m->cfg.n_layer, chunked = lm_chunked(n, a->L), stacked = lm_stacked(n, a->L);
    const size_t M = (size_t)a->B * a->L, d = m->cfg.d_model;
    /* rows one layer pass works on: everything, or one chunk */
    const int Mx = chunked ? n->rc_chunk : (int)M;
    const mb_mixer *mx = &n->bb.layers[0].mixer;
    /* chunked, layer 0's input is the chunk's embedding, recomputed when
     * needed (lm_chunk_in): h[0] holds one chunk; stacked, every stream */
    for (int l = 0; l <= nl; l++) n->h[l] = mb_carve_take(c, ((l == 0 && chunked) || stacked ? (size_t)Mx : M) * d);
    /* MB_RECOMPUTE_INNER: the acts' xz points into xzk (lm_kept_xz) */
    const int inner = n->recompute == MB_RECOMPUTE_INNER;
    for (int x = 0; x < n->nx; x++)
        mb_layer_acts_carve(&n->acts[x], &n->bb.layers[0], Mx, inner ? MB_LAYER_ACTS_NO_XZ : 0, c);
    n->hf_chunk = lm_stacked_hf(m, n, a->L);
    mb_lm_head_acts_carve(&n->hacts, &n->bb.head, n->hf_chunk ? Mx : (int)M, c);
    n->logits = mb_carve_take(c, M * m->vocab_padded);
    n->dh = mb_carve_take(c, (stacked ? (size_t)Mx : M) * d);
    n->dxn = mb_carve_take(c, (size_t)Mx * d);
    n->xzk = inner ? mb_carve_take(c, (size_t)nl * M * 2 * mx->d_inner) : NULL;
    if (!chunked) return;
    n->saved = mb_carve_take(c, (size_t)nl * a->B * n->nch * mb_mixer_state_floats(mx, 1));
    mb_mixer_state_carve(&n->work, mx, 1, c);
    for (int l = 0; l < (stacked ? nl : 1); l++) mb_mixer_carries_carve(&n->carries[l], mx, c);
}

/* The counts of arg's shape under n's mode: sets of layer activations,
 * chunks a sequence; the workspace's bytes. */
static size_t lm_shape(lm_net *n, const lm_layout_arg *arg)
{
    const mb_model *m = arg->m;
    const int chunked = lm_chunked(n, arg->L);
    n->nx = n->recompute && !lm_stacked(n, arg->L) ? 1 : m->cfg.n_layer;
    n->nch = chunked ? (arg->L + n->rc_chunk - 1) / n->rc_chunk : 1;
    return chunked ? mb_layer_workspace(m->ctx, &n->bb.layers[0], 1, n->rc_chunk)
                   : mb_layer_workspace(m->ctx, &n->bb.layers[0], arg->B, arg->L);
}

/* n under mode for arg's shape (its chunk as lm_set_recompute gives it):
 * the bytes its activations (the layout counted, not allocated) and
 * workspace take */
static size_t lm_mode_bytes(lm_net *n, lm_layout_arg *arg, int mode)
{
    n->recompute = mode;
    lm_chunk_default(n);
    const size_t ws = lm_shape(n, arg);
    mb_carve c = {NULL, 0};
    lm_layout(&c, arg);
    return c.n * sizeof(float) + ws;
}

/* The mode MB_RECOMPUTE_AUTO steps down to from n's: INNER to LAYERS,
 * LAYERS to STACK where STACK's chunks cut a sequence of L; 0: none */
static int lm_mode_below(const lm_net *n, int L)
{
    if (n->recompute == MB_RECOMPUTE_INNER) return MB_RECOMPUTE_LAYERS;
    const int chunk = n->rc_chunk_set ? n->rc_chunk : LM_CHUNK_STACK;
    return n->recompute == MB_RECOMPUTE_LAYERS && chunk > 0 && L > chunk ? MB_RECOMPUTE_STACK : 0;
}

/* MB_RECOMPUTE_AUTO's mode for arg's shape (mb_recompute_auto_pick on the
 * device's free memory); on the CPU, LAYERS: host memory is the
 * machine's, and running out of it is not an error a process gets back */
static int lm_auto_mode(mb_model *m, lm_layout_arg *arg)
{
    size_t free_b = 0, total_b = 0;
    if (mb_dev_mem_info(m->ctx, &free_b, &total_b)) return MB_RECOMPUTE_LAYERS;
    lm_net *n = net(m);
    const size_t inner = lm_mode_bytes(n, arg, MB_RECOMPUTE_INNER), layers = lm_mode_bytes(n, arg, MB_RECOMPUTE_LAYERS);
    return mb_recompute_auto_pick(free_b, total_b, inner, layers, lm_mode_below(n, arg->L) == MB_RECOMPUTE_STACK);
}

static int lm_acts_ensure(mb_model *m, int B, int L)
{
    lm_net *n = net(m);
    if (n->act_B == B && n->act_L == L) return 0;
    lm_acts_free(m);
    const int nl = m->cfg.n_layer;
    n->h = calloc((size_t)nl + 1, sizeof(float *));
    n->acts = calloc((size_t)nl, sizeof(mb_layer_acts)); /* nx of them, at most n_layer */
    n->carries = calloc((size_t)nl, sizeof(mb_mixer_carries));
    lm_layout_arg arg = {m, n, B, L};
    size_t wsz = 0;
    if (n->h && n->acts && n->carries) {
        if (n->rc_auto && n->recompute) {
            n->recompute = lm_auto_mode(m, &arg);
            lm_chunk_default(n);
        }
        wsz = lm_shape(n, &arg);
        /* AUTO, where the room went between the question and the
         * allocation: the next mode down */
        while (!(n->act_buf = mb_dev_carve(m->ctx, lm_layout, &arg, "activations")) && n->rc_auto &&
               lm_mode_below(n, L)) {
            n->recompute = lm_mode_below(n, L);
            lm_chunk_default(n);
            wsz = lm_shape(n, &arg);
        }
    }
    if (!n->act_buf || mb_arena_init(&n->ws, m->ctx, wsz)) {
        lm_acts_free(m);
        return mb_error_set("out of memory for activations of batch %d x length %d", B, L);
    }
    n->act_B = B;
    n->act_L = L;
    return 0;
}

/* the state of layer l, sequence b, entering chunk k */
static mb_mixer_state lm_saved_state(const mb_model *m, int l, int b, int k)
{
    const lm_net *n = net(m);
    return mb_mixer_state_at(&n->bb.layers[l].mixer, n->saved, ((size_t)l * n->act_B + b) * n->nch + k);
}

/* the length of chunk k of a sequence of L */
static int lm_chunk_len(const lm_net *n, int L, int k)
{
    return L - k * n->rc_chunk < n->rc_chunk ? L - k * n->rc_chunk : n->rc_chunk;
}

/* Layer l's input rows for sequence b, chunk k of a chunked recompute: the
 * residual stream, or for layer 0 the chunk's embedding, looked up again
 * into the chunk-sized h[0]: a lookup costs less than keeping (M, d)
 * floats (1 GiB at the DNA model's 2^20). */
static const float *lm_chunk_in(mb_model *m, int l, int b, int L, int k)
{
    lm_net *n = net(m);
    const size_t r0 = (size_t)b * L + (size_t)k * n->rc_chunk;
    if (l > 0) return n->h[l] + r0 * m->cfg.d_model;
    mb_embedding_fwd(m->ctx, &n->bb.embed, &m->params, lm_chunk_len(n, L, k), n->tok + r0, n->h[0]);
    return n->h[0];
}

/* MB_RECOMPUTE_INNER: point the recompute's one set of activations at
 * layer l's kept in_proj output from row r0 on, where the forward writes
 * it and the backward's recompute reads it (mb_layer_refwd_from_xz) */
static void lm_kept_xz(const mb_model *m, mb_layer_acts *a, int l, size_t r0)
{
    const lm_net *n = net(m);
    const size_t w = 2 * (size_t)n->bb.layers[0].mixer.d_inner;
    a->mix.xz = n->xzk + ((size_t)l * n->act_B * n->act_L + r0) * w;
}

/* the backward's recompute of layer l's activations over rows from r0 on */
static int lm_layer_refwd(mb_model *m, int l, int B, int L, size_t r0, const float *in, mb_mixer_state *st)
{
    lm_net *n = net(m);
    if (!n->xzk) return mb_layer_fwd(m->ctx, &n->bb.layers[l], &m->params, B, L, in, NULL, &n->acts[0], st, &n->ws);
    lm_kept_xz(m, &n->acts[0], l, r0);
    return mb_layer_refwd_from_xz(m->ctx, &n->bb.layers[l], &m->params, B, L, in, &n->acts[0], st, &n->ws);
}

/* ---- training forward and backward -------------------------------------------------- */

/* Stacked (lm_stacked): sequence b's chunk k through every layer from the
 * saved states entering it, into h[1..n_layer] and every layer's acts;
 * save: the states leaving it become the next chunk's (the forward),
 * else they are dropped (the backward's recompute) */
static int lm_stack_chunk_fwd(mb_model *m, int b, int L, int k, int save)
{
    lm_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const int len = lm_chunk_len(n, L, k);
    mb_embedding_fwd(ctx, &n->bb.embed, &m->params, len, n->tok + (size_t)b * L + (size_t)k * n->rc_chunk, n->h[0]);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const mb_mixer *mx = &n->bb.layers[l].mixer;
        mb_mixer_state in = lm_saved_state(m, l, b, k);
        if (save && k == 0) mb_dev_zero(ctx, in.conv, mb_mixer_state_floats(mx, 1) * sizeof(float));
        mb_mixer_state_copy(ctx, mx, &in, &n->work);
        if (mb_layer_fwd(ctx, &n->bb.layers[l], &m->params, 1, len, n->h[l], n->h[l + 1], &n->acts[l], &n->work,
                         &n->ws))
            return -1;
        if (save && k + 1 < n->nch) {
            mb_mixer_state out = lm_saved_state(m, l, b, k + 1);
            mb_mixer_state_copy(ctx, mx, &n->work, &out);
        }
    }
    return 0;
}

static int lm_forward_stacked(mb_model *m, int B, int L, int want_logits)
{
    lm_net *n = net(m);
    const int nl = m->cfg.n_layer;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < n->nch; k++) {
            const size_t r0 = (size_t)b * L + (size_t)k * n->rc_chunk;
            if (lm_stack_chunk_fwd(m, b, L, k, 1)) return -1;
            const mb_lm_head_acts ha = lm_head_rows(n, r0);
            mb_lm_head_fwd(m->ctx, &n->bb.head, &m->params, lm_chunk_len(n, L, k), n->h[nl], &ha,
                           want_logits ? n->logits + r0 * m->vocab_padded : NULL);
        }
    return 0;
}

/* Its backward, from the logits' gradient or (a classifier) from that of
 * norm_f's output in hacts.hf: chunks last to first, each recomputed
 * through the stack (but the last one, whose activations the forward
 * left), with norm_f where hf is a chunk's; the chunk's logits' backward
 * (whole hf or not), then its head's norm, layers top to bottom with their own
 * carries, and the embedding's rows. Each layer meets its chunks in the
 * order the layer recompute gives them. */
static int lm_backward_stacked(mb_model *m, int B, int L, int from_logits)
{
    lm_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int nl = m->cfg.n_layer;
    if (n->hf_chunk && !from_logits) return mb_error_set("internal: the stacked head keeps a chunk of hf");
    for (int b = B - 1; b >= 0; b--) {
        for (int l = 0; l < nl; l++) mb_mixer_carries_start(ctx, &n->carries[l], &n->bb.layers[l].mixer);
        for (int k = n->nch - 1; k >= 0; k--) {
            const size_t r0 = (size_t)b * L + (size_t)k * n->rc_chunk;
            const int len = lm_chunk_len(n, L, k);
            const mb_lm_head_acts ha = lm_head_rows(n, r0);
            if (!(b == B - 1 && k == n->nch - 1)) {
                if (lm_stack_chunk_fwd(m, b, L, k, 0)) return -1;
                if (n->hf_chunk) mb_lm_head_fwd(ctx, &n->bb.head, ps, len, n->h[nl], &ha, NULL);
            }
            /* the gradient of hf replaces hf (read for the weight gradient first) */
            if (from_logits)
                mb_lm_head_bwd_logits(ctx, &n->bb.head, ps, len, &ha, n->logits + r0 * m->vocab_padded);
            mb_lm_head_bwd_norm(ctx, &n->bb.head, ps, len, n->h[nl], &ha, n->dh);
            for (int l = nl - 1; l >= 0; l--) {
                const mb_mixer_state st0 = lm_saved_state(m, l, b, k);
                const mb_mixer_carry carry = mb_mixer_carries_next(&n->carries[l]);
                if (mb_layer_bwd(ctx, &n->bb.layers[l], ps, 1, len, n->h[l], &n->acts[l], n->dh, n->dxn, &n->ws,
                                 &st0, &carry))
                    return -1;
            }
            mb_embedding_bwd(ctx, &n->bb.embed, ps, len, n->tok + r0, n->dh);
        }
    }
    return mb_ctx_check(ctx);
}

static int lm_forward(mb_model *m, const int32_t *tok, int B, int L, int want_logits, int train, mb_fwd_out *out)
{
    (void)train; /* the same buffers either way: mb_model_set_recompute is the LM's memory knob */
    if (lm_acts_ensure(m, B, L)) return -1;
    lm_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int M = B * L, d = m->cfg.d_model, chunked = lm_chunked(n, L);
    n->tok = tok;
    if (lm_stacked(n, L)) {
        if (lm_forward_stacked(m, B, L, want_logits)) return -1;
        out->hf = n->hf_chunk ? NULL : n->hacts.hf; /* a chunk's rows are no one's to read */
        out->logits = want_logits ? n->logits : NULL;
        return 0;
    }
    if (!chunked) mb_embedding_fwd(ctx, &n->bb.embed, ps, M, tok, n->h[0]);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        mb_layer_acts *a = &n->acts[n->recompute ? 0 : l];
        if (!chunked) {
            if (n->xzk) lm_kept_xz(m, a, l, 0);
            if (mb_layer_fwd(ctx, &n->bb.layers[l], ps, B, L, n->h[l], n->h[l + 1], a, NULL, &n->ws)) return -1;
            continue;
        }
        for (int b = 0; b < B; b++) {
            mb_dev_zero(ctx, n->work.conv, mb_mixer_state_floats(&n->bb.layers[l].mixer, 1) * sizeof(float));
            for (int k = 0; k < n->nch; k++) {
                const size_t r0 = (size_t)b * L + (size_t)k * n->rc_chunk;
                mb_mixer_state saved = lm_saved_state(m, l, b, k);
                mb_mixer_state_copy(ctx, &n->bb.layers[l].mixer, &n->work, &saved);
                if (n->xzk) lm_kept_xz(m, a, l, r0);
                if (mb_layer_fwd(ctx, &n->bb.layers[l], ps, 1, lm_chunk_len(n, L, k), lm_chunk_in(m, l, b, L, k),
                                 n->h[l + 1] + r0 * d, a, &n->work, &n->ws))
                    return -1;
            }
        }
    }
    mb_lm_head_fwd(ctx, &n->bb.head, ps, M, n->h[m->cfg.n_layer], &n->hacts, want_logits ? n->logits : NULL);
    out->hf = n->hacts.hf;
    out->logits = want_logits ? n->logits : NULL;
    return 0;
}

/* Backward of layer l over chunks of each sequence, last to first: the
 * chunk's forward is recomputed from its saved entering state, then its
 * backward runs with the SSM-state and conv-input gradients of the chunk
 * after it, and hands its own to the chunk before. */
static int lm_layer_bwd_chunked(mb_model *m, int l, int B, int L)
{
    lm_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int d = m->cfg.d_model;
    const mb_layer *ly = &n->bb.layers[l];
    const mb_mixer *mx = &ly->mixer;
    for (int b = 0; b < B; b++) {
        mb_mixer_carries_start(ctx, &n->carries[0], mx);
        for (int k = n->nch - 1; k >= 0; k--) {
            const size_t r0 = (size_t)b * L + (size_t)k * n->rc_chunk;
            const int len = lm_chunk_len(n, L, k);
            mb_mixer_state saved = lm_saved_state(m, l, b, k);
            mb_mixer_state_copy(ctx, mx, &saved, &n->work);
            const float *in = lm_chunk_in(m, l, b, L, k);
            if (lm_layer_refwd(m, l, 1, len, r0, in, &n->work)) return -1;
            const mb_mixer_carry carry = mb_mixer_carries_next(&n->carries[0]);
            if (mb_layer_bwd(ctx, ly, ps, 1, len, in, &n->acts[0], n->dh + r0 * d, n->dxn, &n->ws,
                             &saved, &carry))
                return -1;
        }
    }
    return 0;
}

static int lm_backward(mb_model *m, int B, int L, int from_logits)
{
    lm_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int M = B * L, nl = m->cfg.n_layer;
    if (n->act_B != B || n->act_L != L)
        return mb_error_set("internal: backward of %d x %d after a forward of %d x %d", B, L, n->act_B, n->act_L);
    if (lm_stacked(n, L)) return lm_backward_stacked(m, B, L, from_logits);
    /* the gradient of hf replaces hf (read for the weight gradient first) */
    if (from_logits) mb_lm_head_bwd_logits(ctx, &n->bb.head, ps, M, &n->hacts, n->logits);
    mb_lm_head_bwd_norm(ctx, &n->bb.head, ps, M, n->h[nl], &n->hacts, n->dh);
    const int chunked = lm_chunked(n, L);
    for (int l = nl - 1; l >= 0; l--) {
        if (chunked) {
            if (lm_layer_bwd_chunked(m, l, B, L)) return -1;
            continue;
        }
        mb_layer_acts *a = &n->acts[n->recompute ? 0 : l];
        if (n->recompute && lm_layer_refwd(m, l, B, L, 0, n->h[l], NULL)) return -1;
        if (mb_layer_bwd(ctx, &n->bb.layers[l], ps, B, L, n->h[l], a, n->dh, n->dxn, &n->ws, NULL, NULL)) return -1;
    }
    mb_embedding_bwd(ctx, &n->bb.embed, ps, M, n->tok, n->dh);
    return mb_ctx_check(ctx);
}

/* ---- recurrent inference ---------------------------------------------------------------
 * The state: every layer's mixer state, and buffers for chunks of up to
 * cap_L tokens (grown on demand by chunks, never by a step). */
typedef struct {
    struct mb_state pub;
    float *buf;             /* the mixer states (device) */
    mb_mixer_state *layers; /* n_layer */
    int cap_L;
    float *act;             /* activations for (B, cap_L) */
    int32_t *tok;
    float *h0, *h1, *logits;
    mb_layer_acts acts;
    mb_lm_head_acts hacts;
    mb_arena ws;
    mb_gen gen; /* generation (lm_sample): graphs of steps on a GPU, a step at a time on the CPU */
    float *A;   /* every layer's A = -exp(A_log), pinned for a sample call (lm_pin_A) */
    /* the cluster step's packed weights (device), made for a sample call
     * (lm_pack): pack_n floats, layer l's at l * pack_n / n_layer; packed:
     * the steps read them now */
    float *pack;
    size_t pack_n;
    int packed;
} lm_state;

/* steps a replayed graph of generation runs */
#define LM_GEN_PERIOD 16

typedef struct {
    const mb_model *m;
    lm_state *s;
    int L;
} lm_state_arg;

static void lm_state_layout(mb_carve *c, void *arg)
{
    const lm_state_arg *a = arg;
    const lm_net *n = net(a->m);
    lm_state *s = a->s;
    const int M = s->pub.B * a->L;
    const size_t d = a->m->cfg.d_model;
    s->h0 = mb_carve_take(c, M * d);
    s->h1 = mb_carve_take(c, M * d);
    mb_layer_acts_carve(&s->acts, &n->bb.layers[0], M, 0, c);
    mb_lm_head_acts_carve(&s->hacts, &n->bb.head, M, c);
    s->logits = mb_carve_take(c, (size_t)M * a->m->vocab_padded);
}

static void lm_state_bufs_free(lm_state *s)
{
    mb_ctx *ctx = s->pub.model->ctx;
    mb_dev_free(ctx, s->act);
    mb_dev_free(ctx, s->tok);
    mb_arena_free(&s->ws);
    s->act = NULL;
    s->tok = NULL;
    s->cap_L = 0;
}

/* The state's scratch: a layer's pass over (B, L) and, for a step, its
 * head and draw (on the CPU their logits and ranking; on a GPU the normed
 * rows where the head is a GEMM; without head_bf16 the larger need) */
static size_t lm_state_ws_bytes(const mb_model *m, int B, int L)
{
    const size_t lw = mb_layer_workspace(m->ctx, &net(m)->bb.layers[0], B, L);
    if (L != 1) return lw;
    const mb_head_sample_params hp = {.batch = B, .d_model = m->cfg.d_model, .vocab = m->cfg.vocab_size};
    const size_t hw = mb_head_sample_workspace(m->ctx, &hp);
    return hw > lw ? hw : lw;
}

static int lm_state_bufs(lm_state *s, int L)
{
    if (L <= s->cap_L) return 0;
    lm_state_bufs_free(s);
    mb_model *m = s->pub.model;
    const size_t M = (size_t)s->pub.B * L;
    lm_state_arg arg = {m, s, L};
    s->act = mb_dev_carve(m->ctx, lm_state_layout, &arg, "inference activations");
    s->tok = s->act ? mb_dev_alloc(m->ctx, M * sizeof(int32_t), "tokens") : NULL;
    if (!s->tok || mb_arena_init(&s->ws, m->ctx, lm_state_ws_bytes(m, s->pub.B, L))) {
        lm_state_bufs_free(s);
        return -1;
    }
    s->cap_L = L;
    return 0;
}

static void lm_state_free(mb_state *st)
{
    lm_state *s = (lm_state *)st;
    lm_state_bufs_free(s);
    mb_gen_free(&s->gen, st->model->ctx);
    mb_dev_free(st->model->ctx, s->buf);
    mb_dev_free(st->model->ctx, s->A);
    mb_dev_free(st->model->ctx, s->pack);
    free(s->layers);
    free(s);
}

static mb_state *lm_state_create(mb_model *m, int B)
{
    const lm_net *n = net(m);
    lm_state *s = mb_calloc(1, sizeof *s, "state");
    if (!s) return NULL;
    mb_state_base_init(&s->pub, m, B);
    size_t total = 0, nA = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        total += mb_mixer_state_floats(&n->bb.layers[l].mixer, B);
        nA += (size_t)n->bb.layers[l].mixer.d_inner * n->bb.layers[l].mixer.d_state;
    }
    s->buf = mb_dev_alloc_floats(m->ctx, total, "recurrent state");
    s->A = mb_dev_alloc_floats(m->ctx, nA, "recurrent state");
    s->layers = mb_calloc((size_t)m->cfg.n_layer, sizeof(mb_mixer_state), "state");
    if (!s->buf || !s->A || !s->layers || lm_state_bufs(s, 1) || mb_gen_init(&s->gen, m->ctx, B, LM_GEN_PERIOD)) {
        mb_state_free(&s->pub);
        return NULL;
    }
    mb_carve c = {s->buf, 0};
    for (int l = 0; l < m->cfg.n_layer; l++) mb_mixer_state_carve(&s->layers[l], &n->bb.layers[l].mixer, B, &c);
    return &s->pub;
}

static void lm_state_reset(mb_state *st)
{
    lm_state *s = (lm_state *)st;
    const mb_model *m = st->model;
    size_t total = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) total += mb_mixer_state_floats(&net(m)->bb.layers[l].mixer, st->B);
    mb_dev_zero(m->ctx, s->buf, total * sizeof(float));
}

/* Whether a step of B rows runs every layer as one mb_stack_step (where the
 * device prefers it: a GPU's cluster kernel, ops/stack_step.cu), filling bp
 * for it: layer 0 reads the embedding of s->tok itself. Without s, the
 * answer alone (the states' pointers are not needed for it). */
static int lm_stack_params(const mb_model *m, lm_state *s, int B, mb_block_step_params *bp)
{
    const lm_net *n = net(m);
    const int nl = m->cfg.n_layer;
    if (!n->step_fused || !mb_layer_step_fused_ok(m->ctx) || nl > MB_STACK_STEP_MAX_LAYERS) return 0;
    mb_mixer_state none = {0};
    const mb_block_io io0 = {.tokens = s ? s->tok : NULL, .embed = mb_param_data(&m->params, n->bb.embed.p_w)};
    for (int l = 0; l < nl; l++)
        bp[l] = mb_layer_step_params(&n->bb.layers[l], &m->params, B, s ? &s->layers[l] : &none, l ? NULL : &io0);
    return mb_stack_step_prefers(m->ctx, nl, bp);
}

int mb_lm_stack_step_used(const mb_model *m, int B)
{
    mb_block_step_params bp[MB_STACK_STEP_MAX_LAYERS];
    return m->arch == &mb_arch_lm && lm_stack_params(m, NULL, B, bp);
}

/* Whether layer l's one-token step of B rows is mb_layer_step (the fused
 * block step) rather than the layer's own ops; bf16 precision always takes
 * the layer's forward, which stores as the precision does */
static int lm_layer_steps_fused(const mb_model *m, int l, int B)
{
    const lm_net *n = net(m);
    return n->step_fused && mb_layer_step_fused_ok(m->ctx) &&
           mb_layer_step_prefers(m->ctx, &n->bb.layers[l], &m->params, B);
}

/* The L tokens (B, L) in s->tok through the layers from the state: returns
 * the last hidden state (device, (B*L, d)). One token goes through the
 * block step where the device runs it (training never comes here: it keeps
 * the activations only the unfused path writes). */
static const float *lm_state_layers(mb_model *m, lm_state *s, int L)
{
    const lm_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int B = s->pub.B, M = B * L;
    float *h = s->h0, *hn = s->h1;
    mb_block_step_params bp[MB_STACK_STEP_MAX_LAYERS];
    if (L == 1 && lm_stack_params(m, s, B, bp)) {
        for (int l = 0; s->packed && l < m->cfg.n_layer; l++) bp[l].stk_pack = s->pack + l * (s->pack_n / m->cfg.n_layer);
        mb_stack_step(ctx, m->cfg.n_layer, bp, NULL, hn, &s->ws);
        return mb_ctx_check(ctx) ? NULL : hn;
    }
    mb_embedding_fwd(ctx, &n->bb.embed, ps, M, s->tok, h);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const mb_layer *ly = &n->bb.layers[l];
        if (L == 1 && lm_layer_steps_fused(m, l, B)) {
            if (mb_layer_step(ctx, ly, ps, B, h, hn, &s->layers[l], &s->ws, NULL)) return NULL;
        } else {
            /* in place where the out projection can add the residual itself */
            const int acc = mb_layer_fwd_accumulates(ctx, ly, M);
            if (mb_layer_fwd(ctx, ly, ps, B, L, h, acc ? h : hn, &s->acts, &s->layers[l], &s->ws)) return NULL;
            if (acc) continue;
        }
        float *t = h;
        h = hn;
        hn = t;
    }
    return h;
}

static const float *lm_state_fwd(mb_model *m, lm_state *s, const int32_t *tokens, int L)
{
    const size_t M = (size_t)s->pub.B * L;
    if (lm_state_bufs(s, L) || mb_dev_upload(m->ctx, s->tok, tokens, M * sizeof(int32_t))) return NULL;
    return lm_state_layers(m, s, L);
}

static int lm_step(mb_model *m, mb_state *st, const int32_t *tokens, float *logits)
{
    lm_state *s = (lm_state *)st;
    const float *h = lm_state_fwd(m, s, tokens, 1);
    if (!h) return -1;
    /* the state is advanced already: the head only for the logits */
    if (logits) {
        mb_lm_head_fwd(m->ctx, &net(m)->bb.head, &m->params, st->B, h, &s->hacts, s->logits);
        if (mb_dev_download(m->ctx, logits, s->logits, (size_t)st->B * m->vocab_padded * sizeof(float)))
            return -1;
    }
    return mb_ctx_check(m->ctx);
}

static int lm_chunk(mb_model *m, mb_state *st, const int32_t *tokens, int L, const mb_chunk_req *r)
{
    lm_state *s = (lm_state *)st;
    const float *h = lm_state_fwd(m, s, tokens, L);
    if (!h) return -1;
    const int want_lg = mb_chunk_req_logits(r);
    if (!want_lg && !mb_chunk_req_hf(r)) return mb_ctx_check(m->ctx);
    mb_lm_head_fwd(m->ctx, &net(m)->bb.head, &m->params, st->B * L, h, &s->hacts, want_lg ? s->logits : NULL);
    return mb_chunk_emit(m, st, r, 0, L, s->hacts.hf, want_lg ? s->logits : NULL);
}

/* A step and its draw on the device: the class lands in s->tok, where the
 * next step's embedding reads it. */
typedef struct {
    mb_model *m;
    lm_state *s;
    mb_head_sample_params hp;
} lm_gen_work;

static int lm_gen_step(void *arg)
{
    lm_gen_work *w = arg;
    const float *h = lm_state_layers(w->m, w->s, 1);
    if (!h) return -1;
    /* bf16 precision: the logits of lm_step's head (rounded as the
     * precision stores them), then only the draw */
    if (w->hp.have_logits)
        mb_lm_head_fwd(w->m->ctx, &net(w->m)->bb.head, &w->m->params, w->hp.batch, h, &w->s->hacts, w->s->logits);
    mb_head_sample(w->m->ctx, &w->hp, h, &w->s->ws);
    return 0;
}

/* The steps and draws on the model's device (models/gen.c): on a GPU,
 * graphs of LM_GEN_PERIOD steps replayed, the head and draw of
 * mb_head_sample through the logits buffer where the vocabulary is large;
 * on the CPU, a step at a time, the draw's head the LM head's product
 * (int8 where the model has it), so the draws are those of mb_model_step's
 * logits. In bf16 precision the head is the LM head's op itself (as
 * mb_model_step's), the draw after it. */
static int lm_sample_run(mb_model *m, lm_state *s, const int32_t *tokens, int n, const mb_sampler *sp, int32_t *out)
{
    mb_ctx *ctx = m->ctx;
    const lm_net *nt = net(m);
    const int B = s->pub.B;
    if (mb_gen_begin(&s->gen, ctx, sp, s->pub.drawn) || lm_state_bufs(s, 1) ||
        mb_dev_upload(ctx, s->tok, tokens, (size_t)B * sizeof(int32_t)))
        return -1;
    const mb_norm *nf = &nt->bb.head.norm;
    const int bf16 = ctx->precision == MB_PREC_BF16; /* the LM head's own logits, then the draw */
    lm_gen_work w = {m, s, {
        .batch = B, .d_model = m->cfg.d_model, .vocab = m->cfg.vocab_size, .eps = nf->eps,
        .norm_w = mb_param_data(&m->params, nf->p_w), .norm_b = nf->p_b >= 0 ? mb_param_data(&m->params, nf->p_b) : NULL,
        .head = mb_param_data(&m->params, nt->bb.head.p_w), .head_bf16 = mb_param_bf16(&m->params, nt->bb.head.p_w),
        .head_q8 = mb_param_q8(&m->params, nt->bb.head.p_w),
        .have_logits = bf16,
        .logits = bf16 || !mb_head_sample_fits(ctx, m->cfg.d_model, m->cfg.vocab_size) ? s->logits : NULL,
        .ld_logits = m->vocab_padded, .cfg = s->gen.cfg, .count = s->gen.count, .next = s->tok,
        .hist = s->gen.ring, .hist_len = s->gen.period}};
    const mb_gen_fns f = {lm_gen_step, NULL, NULL, &w};
    if (mb_gen_run(&s->gen, ctx, &f, n, &s->pub.drawn, s->tok, out)) return -1;
    return mb_ctx_check(ctx);
}

/* Each layer's A = -exp(A_log) once for a call's run of steps rather than
 * once a step (the same op on the same weights: the same values), into the
 * state's buffer; bound until lm_unpin_A, since the weights may change
 * between calls */
static void lm_pin_A(mb_model *m, lm_state *s)
{
    const lm_net *nt = net(m);
    float *p = s->A;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        const mb_mixer *mx = &nt->bb.layers[l].mixer;
        mb_mixer_state_pin_A(m->ctx, mx, &m->params, &s->layers[l], p);
        p += (size_t)mx->d_inner * mx->d_state;
    }
}

static void lm_unpin_A(mb_model *m, lm_state *s)
{
    for (int l = 0; l < m->cfg.n_layer; l++) s->layers[l].A = NULL;
}

/* Whether a step's layers read a pinned A: on the CPU (its block step),
 * and on a GPU where the step runs the layers' own ops (lm_state_layers;
 * the GPU's step kernels take exp(A_log) themselves, and a call of a token
 * or two would pay for the pinning's kernels) */
static int lm_reads_pinned_A(mb_model *m, lm_state *s)
{
    if (mb_dev_host_memory(m->ctx)) return 1;
    mb_block_step_params bp[MB_STACK_STEP_MAX_LAYERS];
    const int B = s->pub.B;
    if (lm_stack_params(m, s, B, bp)) return 0;
    for (int l = 0; l < m->cfg.n_layer; l++)
        if (!lm_layer_steps_fused(m, l, B)) return 1;
    return 0;
}

/* The cluster step's weights packed for a call's run of steps (one bulk
 * copy a block a buffer: ops/stack_step.cu), from the weights as they are
 * now, since they may change between calls (as lm_pin_A); the buffer is
 * made at the first call that needs it, before any step. Returns 1 where
 * the steps will read the pack, 0 where they do not take the cluster step,
 * -1 on failure. */
static int lm_pack(mb_model *m, lm_state *s)
{
    mb_block_step_params bp[MB_STACK_STEP_MAX_LAYERS];
    if (!lm_stack_params(m, s, s->pub.B, bp)) return 0;
    const size_t n = mb_stack_step_pack_floats(m->ctx, m->cfg.n_layer, bp);
    if (!n) return 0;
    if (n != s->pack_n) {
        mb_dev_free(m->ctx, s->pack);
        s->pack_n = 0;
        if (!(s->pack = mb_dev_alloc_floats(m->ctx, n, "packed weights"))) return -1;
        s->pack_n = n;
    }
    if (mb_stack_step_pack(m->ctx, m->cfg.n_layer, bp, s->pack)) return -1;
    s->packed = 1;
    return 1;
}

/* The LM's generation: one loop on every device (lm_sample_run), with A
 * pinned for the run where the steps read it, or the cluster step's
 * weights packed where they take it */
static int lm_sample(mb_model *m, mb_state *st, const int32_t *tokens, int n, const mb_sampler *sp, int32_t *out)
{
    lm_state *s = (lm_state *)st;
    const int pin = lm_reads_pinned_A(m, s);
    if (pin) lm_pin_A(m, s);
    const int rc = lm_pack(m, s) < 0 ? -1 : lm_sample_run(m, s, tokens, n, sp, out);
    s->packed = 0;
    if (pin) lm_unpin_A(m, s);
    return rc;
}

const mb_arch_ops mb_arch_lm = {
    .name = "mamba-lm",
    .check = NULL,
    .build = lm_build,
    .destroy = lm_destroy,
    .init_weights = lm_init_weights,
    .set_recompute = lm_set_recompute,
    .get_recompute = lm_get_recompute,
    .forward = lm_forward,
    .backward = lm_backward,
    .state_create = lm_state_create,
    .state_reset = lm_state_reset,
    .state_free = lm_state_free,
    .step = lm_step,
    .chunk = lm_chunk,
    .sample = lm_sample,
};
