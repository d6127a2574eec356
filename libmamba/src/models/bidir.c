/* The bidirectional model of Caduceus (Schiff et al. 2024): the LM's
 * embedding -> n_layer BiMamba blocks (nn/layer.c) -> norm_f -> head, read
 * at every position with the whole sequence on both sides; and with
 * rc_equivariant its reverse-complement parameter sharing (mamba.h).
 *
 * RC sharing, as computed here: Caduceus' RCPS modules keep 2 d channels,
 * the second half a reverse-complemented copy that every module handles
 * with the same weights after flipping it back (sequence and channels);
 * the halves meet only in the head, which adds the first half's logits to
 * the second's with the classes complemented. Flipped back, the second
 * half is the plain network run on rc(x) = complement(reversed x). So the
 * network runs here on 2B sequences, x then rc(x), and the head's two
 * halves become logits(x)[t, v] = f(x)[t, v] + f(rc x)[L-1-t, comp v]
 * (mb_flip_rows with the complement as column permutation), equal to
 * Caduceus' up to the order of float additions in the head. The hidden
 * state the classification head pools is f(x)[t] + f(rc x)[L-1-t]
 * (Caduceus' two halves with the second's channels reversed, added): x
 * and rc(x) pool to the same vector.
 *
 * Training keeps every layer's activations or, with recompute, each
 * layer's input and, for long sequences, a layer pass over chunks of
 * rc_chunk tokens with the states carried as the LM's: M_f's chunks from
 * the sequence's start, M_r's from its end (it reads the sequence
 * reversed), each direction's entering states saved in the forward and
 * their gradients carried back in the backward; the norm output's
 * gradient is gathered over the whole sequence before the norm's
 * backward. No recurrent state: a chunk of inference is a window read
 * whole; steps and sampling are refused with the reason. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "models/model.h"
#include "nn/backbone.h"

typedef struct {
    mb_backbone bb;
    int recompute;
    int rc_chunk;  /* recompute: tokens per chunk of a layer pass (0 = whole sequences) */
    int S;         /* strands: 2 with rc_equivariant, else 1 */
    int32_t *comp; /* rc: device, the complement of each of the vocab_padded classes */

    /* Activations for (act_B, act_L), laid out when a shape is first seen
     * and reused after: a step allocates nothing. Rows: S * B * L. */
    int act_B, act_L;
    int nx;          /* sets of layer activations: n_layer, or one with recompute */
    float *act_buf;  /* device */
    float **h;       /* n_layer + 1 residual streams */
    mb_layer_acts *acts;
    mb_lm_head_acts hacts;
    float *logits;   /* (S*M, Vp): each strand's */
    float *dh, *dxn; /* backward: the residual stream's and a layer's norm output's gradients */
    float *lg_rc;    /* rc: (M, Vp) the strands' logits combined */
    float *hf_rc;    /* rc: (M, d) the pooled hidden state, both strands */
    int32_t *tok_rc; /* rc: (2M) the tokens, then their reverse complement */
    const int32_t *tok; /* the last forward's S*M tokens (device) */
    /* chunked recompute: */
    int nch;             /* chunks per sequence */
    float *saved;        /* the states entering each (layer, sequence, direction, chunk) */
    mb_mixer_state work[2]; /* each direction's state being advanced */
    mb_mixer_carries carries; /* boundary gradients, in and out */
    mb_arena ws;
} bidir_net;

static bidir_net *net(const mb_model *m) { return (bidir_net *)m->net; }

/* ---- parameters ------------------------------------------------------------------ */

static int bidir_build(mb_model *m)
{
    const mb_config *c = &m->cfg;
    bidir_net *n = mb_calloc(1, sizeof *n, "model");
    if (!n) return -1;
    m->net = n;
    n->S = c->rc_equivariant ? 2 : 1;
    n->rc_chunk = 131072; /* the LM's default */
    if (mb_backbone_register(&n->bb, &m->params, c, m->vocab_padded)) return -1;
    if (n->S == 2) {
        /* the padding classes are their own complement */
        int32_t comp[MB_RC_MAX_VOCAB];
        for (int v = 0; v < m->vocab_padded; v++) comp[v] = v < c->vocab_size ? c->rc_complement[v] : v;
        n->comp = mb_dev_alloc(m->ctx, (size_t)m->vocab_padded * sizeof(int32_t), "complement map");
        if (!n->comp || mb_dev_upload(m->ctx, n->comp, comp, (size_t)m->vocab_padded * sizeof(int32_t))) return -1;
    }
    return 0;
}

static void bidir_init_weights(mb_model *m, float *host, uint64_t seed)
{
    mb_backbone_init_weights(&net(m)->bb, &m->params, host, &m->cfg, seed);
}

static void bidir_acts_free(mb_model *m)
{
    bidir_net *n = net(m);
    mb_dev_free(m->ctx, n->act_buf);
    free(n->h);
    free(n->acts);
    mb_arena_free(&n->ws);
    n->act_buf = NULL;
    n->h = NULL;
    n->acts = NULL;
    n->act_B = n->act_L = 0;
}

static void bidir_destroy(mb_model *m)
{
    bidir_net *n = net(m);
    bidir_acts_free(m);
    mb_dev_free(m->ctx, n->comp);
    mb_backbone_free(&n->bb);
    free(n);
    m->net = NULL;
}

static void bidir_set_recompute(mb_model *m, int on, int chunk)
{
    bidir_net *n = net(m);
    /* its reverse mixer reads each chunk's successors: no stacked chunks;
     * its two mixers share one in_proj output: none kept (INNER, AUTO) */
    if (on == MB_RECOMPUTE_STACK || on == MB_RECOMPUTE_INNER || on == MB_RECOMPUTE_AUTO) on = MB_RECOMPUTE_LAYERS;
    if (mb_recompute_update(&m->cfg, &n->recompute, &n->rc_chunk, on, chunk)) bidir_acts_free(m);
}

static int bidir_get_recompute(const mb_model *m) { return net(m)->recompute; }

static int bidir_chunked(const bidir_net *n, int L) { return n->recompute && n->rc_chunk > 0 && L > n->rc_chunk; }

/* ---- training activations ---------------------------------------------------------- */

typedef struct {
    const mb_model *m;
    bidir_net *n;
    int B, L;
} bidir_layout_arg;

static void bidir_layout(mb_carve *c, void *arg)
{
    const bidir_layout_arg *a = arg;
    const mb_model *m = a->m;
    bidir_net *n = a->n;
    const size_t M = (size_t)a->B * a->L, SM = n->S * M, d = m->cfg.d_model, Vp = m->vocab_padded;
    const int chunked = bidir_chunked(n, a->L);
    /* rows one layer pass works on: everything, or one chunk of one sequence */
    const int Mx = chunked ? n->rc_chunk : (int)SM;
    for (int l = 0; l <= m->cfg.n_layer; l++) n->h[l] = mb_carve_take(c, SM * d);
    for (int x = 0; x < n->nx; x++)
        mb_layer_acts_carve(&n->acts[x], &n->bb.layers[0], Mx, chunked ? MB_LAYER_ACTS_PIECES : 0, c);
    mb_lm_head_acts_carve(&n->hacts, &n->bb.head, (int)SM, c);
    n->logits = mb_carve_take(c, SM * Vp);
    n->dh = mb_carve_take(c, SM * d);
    n->dxn = mb_carve_take(c, SM * d);
    n->lg_rc = n->hf_rc = NULL;
    n->tok_rc = NULL;
    n->saved = NULL;
    if (chunked) {
        const mb_mixer *mx = &n->bb.layers[0].mixer;
        n->saved = mb_carve_take(c, (size_t)m->cfg.n_layer * n->S * a->B * 2 * n->nch * mb_mixer_state_floats(mx, 1));
        for (int i = 0; i < 2; i++) mb_mixer_state_carve(&n->work[i], mx, 1, c);
        mb_mixer_carries_carve(&n->carries, mx, c);
    }
    if (n->S == 1) return;
    n->lg_rc = mb_carve_take(c, M * Vp);
    n->hf_rc = mb_carve_take(c, M * d);
    /* tokens as floats' room: int32 and float are both 4 bytes */
    n->tok_rc = (int32_t *)mb_carve_take(c, 2 * M);
}

static int bidir_acts_ensure(mb_model *m, int B, int L)
{
    bidir_net *n = net(m);
    if (n->act_B == B && n->act_L == L) return 0;
    bidir_acts_free(m);
    const int nl = m->cfg.n_layer;
    if ((int64_t)n->S * B * L > INT32_MAX / 2) return mb_error_set("batch of %d x %d tokens is too large", B, L);
    n->nx = n->recompute ? 1 : nl;
    const int chunked = bidir_chunked(n, L);
    n->nch = chunked ? (L + n->rc_chunk - 1) / n->rc_chunk : 1;
    n->h = calloc((size_t)nl + 1, sizeof(float *));
    n->acts = calloc((size_t)n->nx, sizeof(mb_layer_acts));
    bidir_layout_arg arg = {m, n, B, L};
    if (!n->h || !n->acts || !(n->act_buf = mb_dev_carve(m->ctx, bidir_layout, &arg, "activations")) ||
        mb_arena_init(&n->ws, m->ctx,
                      chunked ? mb_layer_workspace(m->ctx, &n->bb.layers[0], 1, n->rc_chunk)
                              : mb_layer_workspace(m->ctx, &n->bb.layers[0], n->S * B, L))) {
        bidir_acts_free(m);
        return mb_error_set("out of memory for activations of batch %d x length %d", B, L);
    }
    n->act_B = B;
    n->act_L = L;
    return 0;
}

/* ---- chunked layer passes ---------------------------------------------------------------- */

/* the state of layer l, sequence b (of S * B), direction dir, entering chunk k of that direction */
static mb_mixer_state bidir_saved_state(const mb_model *m, int l, int b, int dir, int k)
{
    const bidir_net *n = net(m);
    return mb_mixer_state_at(&n->bb.layers[l].mixer, n->saved,
                             (((size_t)l * n->S * n->act_B + b) * 2 + dir) * n->nch + k);
}

/* chunk k of direction dir of a sequence of L: its first row and length.
 * M_f's chunks start at the sequence's start; M_r's at its end. */
static void bidir_piece(const bidir_net *n, int L, int dir, int k, int *r0, int *len)
{
    const int T = n->rc_chunk;
    if (dir == 0) {
        *r0 = k * T;
        *len = L - *r0 < T ? L - *r0 : T;
    } else {
        const int end = L - k * T;
        *r0 = end - T > 0 ? end - T : 0;
        *len = end - *r0;
    }
}

/* Layer l's forward over the chunks of each sequence, each direction from
 * its own end with its state carried and saved per chunk; the sum stored
 * as the precision does, then the residual. */
static int bidir_layer_fwd_chunked(mb_model *m, int l, int SB, int L)
{
    bidir_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int d = m->cfg.d_model;
    const mb_layer *ly = &n->bb.layers[l];
    for (int b = 0; b < SB; b++) {
        const float *in = n->h[l] + (size_t)b * L * d;
        float *out = n->h[l + 1] + (size_t)b * L * d;
        for (int dir = 0; dir < 2; dir++) {
            mb_dev_zero(ctx, n->work[dir].conv, mb_mixer_state_floats(&ly->mixer, 1) * sizeof(float));
            for (int k = 0; k < n->nch; k++) {
                int r0, len;
                bidir_piece(n, L, dir, k, &r0, &len);
                mb_mixer_state saved = bidir_saved_state(m, l, b, dir, k);
                mb_mixer_state_copy(ctx, &ly->mixer, &n->work[dir], &saved);
                if (mb_layer_dir_fwd(ctx, ly, ps, len, in + (size_t)r0 * d, out + (size_t)r0 * d, &n->acts[0],
                                     &n->work[dir], &n->ws, dir))
                    return -1;
            }
        }
        mb_precision_store(ctx, L, d, out, d);
        mb_axpby(ctx, (size_t)L * d, 1.f, in, 1.f, out);
    }
    return 0;
}

/* Its backward: each direction's chunks last to first, recomputed from
 * their saved states, their state and conv gradients carried to the
 * chunk before; the norm output's gradient of the whole sequence gathered
 * in n->dxn (stored as the precision does), then the norm's backward
 * chunk by chunk into dh. */
static int bidir_layer_bwd_chunked(mb_model *m, int l, int SB, int L)
{
    bidir_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int d = m->cfg.d_model;
    const mb_layer *ly = &n->bb.layers[l];
    const mb_mixer *mx = &ly->mixer;
    for (int b = 0; b < SB; b++) {
        const float *in = n->h[l] + (size_t)b * L * d;
        float *dh = n->dh + (size_t)b * L * d, *dxn = n->dxn + (size_t)b * L * d;
        for (int dir = 0; dir < 2; dir++) {
            mb_mixer_carries_start(ctx, &n->carries, mx);
            for (int k = n->nch - 1; k >= 0; k--) {
                int r0, len;
                bidir_piece(n, L, dir, k, &r0, &len);
                mb_mixer_state saved = bidir_saved_state(m, l, b, dir, k);
                mb_mixer_state_copy(ctx, mx, &saved, &n->work[dir]);
                if (mb_layer_dir_fwd(ctx, ly, ps, len, in + (size_t)r0 * d, NULL, &n->acts[0], &n->work[dir], &n->ws,
                                     dir))
                    return -1;
                const mb_mixer_carry carry = mb_mixer_carries_next(&n->carries);
                if (mb_layer_dir_bwd(ctx, ly, ps, len, &n->acts[0], dh + (size_t)r0 * d, dxn + (size_t)r0 * d, &n->ws,
                                     &saved, &carry, dir))
                    return -1;
            }
        }
        mb_precision_store(ctx, L, d, dxn, d);
        for (int k = 0; k < n->nch; k++) {
            int r0, len;
            bidir_piece(n, L, 0, k, &r0, &len);
            mb_layer_norm_bwd(ctx, ly, ps, len, in + (size_t)r0 * d, &n->acts[0], dxn + (size_t)r0 * d,
                              dh + (size_t)r0 * d);
        }
    }
    return 0;
}

/* ---- training forward and backward ---------------------------------------------------- */

/* The tokens the network runs on: tok (device, B x L), and with RC
 * sharing their reverse complements after them in both (2 B x L); NULL
 * when a copy fails */
static const int32_t *bidir_strand_tokens(mb_model *m, const int32_t *tok, int B, int L, int32_t *both)
{
    bidir_net *n = net(m);
    if (n->S == 1) return tok;
    const size_t M = (size_t)B * L;
    if (mb_dev_copy_async(m->ctx, both, tok, M * sizeof(int32_t))) return NULL;
    mb_tokens_rc(m->ctx, B, L, tok, n->comp, both + M);
    return both;
}

/* With RC sharing, the strands' final states hf (2M, d) and logits (2M,
 * Vp; NULL: not wanted) as one: the second's rows reversed (its classes
 * complemented), plus the first's, stored as the precision stores a sum
 * of two activations, into hf_rc and lg_rc */
static void bidir_strands_join(mb_model *m, int B, int L, const float *hf, const float *logits, float *hf_rc,
                               float *lg_rc)
{
    bidir_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const int M = B * L, d = m->cfg.d_model, Vp = m->vocab_padded;
    mb_flip_rows(ctx, B, L, d, NULL, hf + (size_t)M * d, d, 0.f, hf_rc, d);
    mb_axpby(ctx, (size_t)M * d, 1.f, hf, 1.f, hf_rc);
    mb_precision_store(ctx, M, d, hf_rc, d);
    if (!logits) return;
    mb_flip_rows(ctx, B, L, Vp, n->comp, logits + (size_t)M * Vp, Vp, 0.f, lg_rc, Vp);
    mb_axpby(ctx, (size_t)M * Vp, 1.f, logits, 1.f, lg_rc);
    mb_precision_store(ctx, M, Vp, lg_rc, Vp);
}

static int bidir_forward(mb_model *m, const int32_t *tok, int B, int L, int want_logits, int train, mb_fwd_out *out)
{
    (void)train; /* the same buffers either way, as the LM's */
    if (bidir_acts_ensure(m, B, L)) return -1;
    bidir_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int SB = n->S * B, SM = n->S * B * L;
    if (!(n->tok = bidir_strand_tokens(m, tok, B, L, n->tok_rc))) return -1;
    mb_embedding_fwd(ctx, &n->bb.embed, ps, SM, n->tok, n->h[0]);
    const int chunked = bidir_chunked(n, L);
    for (int l = 0; l < m->cfg.n_layer; l++)
        if (chunked ? bidir_layer_fwd_chunked(m, l, SB, L)
                    : mb_layer_fwd(ctx, &n->bb.layers[l], ps, SB, L, n->h[l], n->h[l + 1],
                                   &n->acts[n->recompute ? 0 : l], NULL, &n->ws))
            return -1;
    mb_lm_head_fwd(ctx, &n->bb.head, ps, SM, n->h[m->cfg.n_layer], &n->hacts, want_logits ? n->logits : NULL);
    if (n->S == 1) {
        out->hf = n->hacts.hf;
        out->logits = want_logits ? n->logits : NULL;
        return 0;
    }
    bidir_strands_join(m, B, L, n->hacts.hf, want_logits ? n->logits : NULL, n->hf_rc, n->lg_rc);
    out->hf = n->hf_rc;
    out->logits = want_logits ? n->lg_rc : NULL;
    return 0;
}

static int bidir_backward(mb_model *m, int B, int L, int from_logits)
{
    bidir_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int M = B * L, SB = n->S * B, SM = n->S * M, nl = m->cfg.n_layer, d = m->cfg.d_model;
    const int Vp = m->vocab_padded;
    if (n->act_B != B || n->act_L != L)
        return mb_error_set("internal: backward of %d x %d after a forward of %d x %d", B, L, n->act_B, n->act_L);
    if (n->S == 2) {
        /* the combined gradient to each strand: the first's rows as they
         * are, the second's reversed (the complement is its own inverse) */
        if (from_logits) {
            if (mb_dev_copy_async(ctx, n->logits, n->lg_rc, (size_t)M * Vp * sizeof(float))) return -1;
            mb_flip_rows(ctx, B, L, Vp, n->comp, n->lg_rc, Vp, 0.f, n->logits + (size_t)M * Vp, Vp);
        } else {
            if (mb_dev_copy_async(ctx, n->hacts.hf, n->hf_rc, (size_t)M * d * sizeof(float))) return -1;
            mb_flip_rows(ctx, B, L, d, NULL, n->hf_rc, d, 0.f, n->hacts.hf + (size_t)M * d, d);
        }
    }
    /* the gradient of hf replaces hf (read for the head's weight gradient first) */
    if (from_logits) mb_lm_head_bwd_logits(ctx, &n->bb.head, ps, SM, &n->hacts, n->logits);
    mb_lm_head_bwd_norm(ctx, &n->bb.head, ps, SM, n->h[nl], &n->hacts, n->dh);
    const int chunked = bidir_chunked(n, L);
    for (int l = nl - 1; l >= 0; l--) {
        if (chunked) {
            if (bidir_layer_bwd_chunked(m, l, SB, L)) return -1;
            continue;
        }
        mb_layer_acts *a = &n->acts[n->recompute ? 0 : l];
        if (n->recompute && mb_layer_fwd(ctx, &n->bb.layers[l], ps, SB, L, n->h[l], NULL, a, NULL, &n->ws)) return -1;
        if (mb_layer_bwd(ctx, &n->bb.layers[l], ps, SB, L, n->h[l], a, n->dh, n->dxn, &n->ws, NULL, NULL)) return -1;
    }
    mb_embedding_bwd(ctx, &n->bb.embed, ps, SM, n->tok, n->dh);
    return mb_ctx_check(ctx);
}

/* ---- inference: windows, no recurrent state ---------------------------------------------
 * A state carries nothing between calls: each chunk is a window read
 * whole, through buffers of the state's own (one layer's activations, the
 * residual stream in two halves taken in turn: a window of inference
 * keeps no more), laid out for the longest chunk so far; its outputs go to
 * mb_chunk_emit. Steps and sampling would need a state that runs forward
 * in time: refused. */

typedef struct {
    struct mb_state pub;
    int cap_L;
    float *act;               /* device: the buffers below */
    int32_t *tok, *tok_both;  /* (B, cap_L); with RC (2 B, cap_L) */
    float *h0, *h1;           /* (S B cap_L, d) */
    mb_layer_acts acts;
    mb_lm_head_acts hacts;
    float *logits, *hf_rc, *lg_rc;
    mb_arena ws;
} bidir_state;

typedef struct {
    const mb_model *m;
    bidir_state *s;
    int L;
} bidir_state_arg;

static void bidir_state_layout(mb_carve *c, void *arg)
{
    const bidir_state_arg *a = arg;
    const bidir_net *n = net(a->m);
    bidir_state *s = a->s;
    const size_t M = (size_t)s->pub.B * a->L, SM = n->S * M, d = a->m->cfg.d_model, Vp = a->m->vocab_padded;
    /* tokens as floats' room: int32 and float are both 4 bytes */
    s->tok = (int32_t *)mb_carve_take(c, M);
    s->tok_both = (int32_t *)mb_carve_take(c, n->S == 2 ? SM : 1);
    s->h0 = mb_carve_take(c, SM * d);
    s->h1 = mb_carve_take(c, SM * d);
    mb_layer_acts_carve(&s->acts, &n->bb.layers[0], (int)SM, 0, c);
    mb_lm_head_acts_carve(&s->hacts, &n->bb.head, (int)SM, c);
    s->logits = mb_carve_take(c, SM * Vp);
    s->hf_rc = mb_carve_take(c, n->S == 2 ? M * d : 1);
    s->lg_rc = mb_carve_take(c, n->S == 2 ? M * Vp : 1);
}

static void bidir_state_bufs_free(bidir_state *s)
{
    mb_ctx *ctx = s->pub.model->ctx;
    mb_dev_free(ctx, s->act);
    mb_arena_free(&s->ws);
    s->act = NULL;
    s->cap_L = 0;
}

static int bidir_state_bufs(bidir_state *s, int L)
{
    if (L <= s->cap_L) return 0;
    bidir_state_bufs_free(s);
    mb_model *m = s->pub.model;
    const bidir_net *n = net(m);
    bidir_state_arg arg = {m, s, L};
    if (!(s->act = mb_dev_carve(m->ctx, bidir_state_layout, &arg, "inference activations")) ||
        mb_arena_init(&s->ws, m->ctx, mb_layer_workspace(m->ctx, &n->bb.layers[0], n->S * s->pub.B, L))) {
        bidir_state_bufs_free(s);
        return -1;
    }
    s->cap_L = L;
    return 0;
}

static mb_state *bidir_state_create(mb_model *m, int B)
{
    bidir_state *s = mb_calloc(1, sizeof *s, "state");
    if (!s) return NULL;
    mb_state_base_init(&s->pub, m, B);
    return &s->pub;
}

static void bidir_state_reset(mb_state *s) { (void)s; }

static void bidir_state_free(mb_state *st)
{
    bidir_state *s = (bidir_state *)st;
    bidir_state_bufs_free(s);
    free(s);
}

static int bidir_chunk(mb_model *m, mb_state *st, const int32_t *tokens, int L, const mb_chunk_req *r)
{
    bidir_state *s = (bidir_state *)st;
    const bidir_net *n = net(m);
    mb_ctx *ctx = m->ctx;
    const mb_params *ps = &m->params;
    const int B = st->B, SB = n->S * B, SM = SB * L;
    const int want_lg = mb_chunk_req_logits(r);
    const int32_t *tok;
    if (bidir_state_bufs(s, L) || mb_dev_upload(ctx, s->tok, tokens, (size_t)B * L * sizeof(int32_t)) ||
        !(tok = bidir_strand_tokens(m, s->tok, B, L, s->tok_both)))
        return -1;
    float *h = s->h0, *hn = s->h1;
    mb_embedding_fwd(ctx, &n->bb.embed, ps, SM, tok, h);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        if (mb_layer_fwd(ctx, &n->bb.layers[l], ps, SB, L, h, hn, &s->acts, NULL, &s->ws)) return -1;
        float *t = h;
        h = hn;
        hn = t;
    }
    mb_lm_head_fwd(ctx, &n->bb.head, ps, SM, h, &s->hacts, want_lg ? s->logits : NULL);
    if (n->S == 1) return mb_chunk_emit(m, st, r, 0, L, s->hacts.hf, want_lg ? s->logits : NULL);
    bidir_strands_join(m, B, L, s->hacts.hf, want_lg ? s->logits : NULL, s->hf_rc, s->lg_rc);
    return mb_chunk_emit(m, st, r, 0, L, s->hf_rc, want_lg ? s->lg_rc : NULL);
}

static int bidir_no_steps(void)
{
    return mb_error_set("mamba-bidir: a bidirectional model reads each window whole: no recurrent steps or "
                        "sampling (chunks are windows)");
}
static int bidir_step(mb_model *m, mb_state *s, const int32_t *tokens, float *logits)
{
    (void)m, (void)s, (void)tokens, (void)logits;
    return bidir_no_steps();
}
static int bidir_sample(mb_model *m, mb_state *s, const int32_t *tokens, int n, const mb_sampler *sp, int32_t *out)
{
    (void)m, (void)s, (void)tokens, (void)n, (void)sp, (void)out;
    return bidir_no_steps();
}

const mb_arch_ops mb_arch_bidir = {
    .name = "mamba-bidir",
    .check = NULL, /* mb_config_check checks rc_complement */
    .build = bidir_build,
    .destroy = bidir_destroy,
    .init_weights = bidir_init_weights,
    .set_recompute = bidir_set_recompute,
    .get_recompute = bidir_get_recompute,
    .forward = bidir_forward,
    .backward = bidir_backward,
    .state_create = bidir_state_create,
    .state_reset = bidir_state_reset,
    .state_free = bidir_state_free,
    .step = bidir_step,
    .chunk = bidir_chunk,
    .sample = bidir_sample,
};
