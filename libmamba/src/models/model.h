/* The mb_model / mb_state facade (models/model.c) and the table of
 * architectures behind it.
 *
 * A model is a parameter table, a config and an architecture: a table of
 * functions (mb_arch_ops) over the architecture's own struct (m->net).
 * What every architecture shares lives here: token and target checks, the
 * buffers tokens and targets are uploaded to, the cross-entropy, the
 * classification head on the mean-pooled final hidden state (models/
 * classify.c), checkpoints (train/checkpoint.c), the optimizer and data
 * parallelism (train/). Each architecture is one file (models/lm.c,
 * models/sashimi.c) that includes this header and never another
 * architecture's. Adding one: a file with its mb_arch_ops, an mb_arch
 * value, and a line in model.c's table. */
#ifndef MB_MODEL_H
#define MB_MODEL_H

#include "nn/head.h"
#include "nn/layer.h"
#include "ops/ops.h"

/* What a training forward leaves in the architecture's buffers (device). */
typedef struct {
    float *hf;     /* (B*L, d_model): the final norm's output, the heads' input; the
                    * classification backward writes its gradient here */
    float *logits; /* (B*L, vocab padded) when asked for; the LM backward reads
                    * their gradient here */
} mb_fwd_out;

/* A chunk's outputs (mb_model_forward_chunk_ex's request) and L. */
typedef struct {
    mb_chunk_out out;
    int L;
} mb_chunk_req;

/* A chunk computes logits for these requests, hf for pooled sums */
static inline int mb_chunk_req_logits(const mb_chunk_req *r)
{
    return r->out.logits || r->out.targets;
}
static inline int mb_chunk_req_hf(const mb_chunk_req *r) { return r->out.hsum != NULL; }

typedef struct {
    const char *name; /* the checkpoint's "arch" */
    /* arch-specific config checks (mb_config_check has done the common ones) */
    int (*check)(mb_config *c);
    /* Register every tensor in checkpoint order (the classification head
     * follows, registered by the facade) and set m->net; the facade then
     * allocates the parameters. */
    int (*build)(mb_model *m);
    void (*destroy)(mb_model *m);
    /* the initialization from seed into host memory laid out as m->params
     * (the classification head's is the facade's) */
    void (*init_weights)(mb_model *m, float *host, uint64_t seed);
    /* mb_model_set_recompute(_chunk); NULL: the architecture keeps every
     * activation and ignores them */
    void (*set_recompute)(mb_model *m, int on, int chunk_tokens);
    /* mb_model_get_recompute; NULL: MB_RECOMPUTE_OFF */
    int (*get_recompute)(const mb_model *m);
    /* Forward over device tokens (B, L), checked; logits only when asked
     * (classification reads hf alone). train: a backward follows, so every
     * activation it needs is kept; 0 lets an architecture keep less. The
     * buffers stay valid until the next forward. */
    int (*forward)(mb_model *m, const int32_t *tokens, int B, int L, int logits, int train, mb_fwd_out *out);
    /* Backward of the last forward: from the gradient of the logits left
     * in out.logits (from_logits), or of hf left in out.hf. Parameter
     * gradients are accumulated. */
    int (*backward)(mb_model *m, int B, int L, int from_logits);
    /* Recurrent inference: the state is the architecture's struct with a
     * struct mb_state first; tokens are checked by the facade. */
    mb_state *(*state_create)(mb_model *m, int B);
    void (*state_reset)(mb_state *s);
    void (*state_free)(mb_state *s);
    int (*step)(mb_model *m, mb_state *s, const int32_t *tokens, float *logits);
    /* L tokens (B, L) from the state; each piece of positions computed
     * goes to mb_chunk_emit. */
    int (*chunk)(mb_model *m, mb_state *s, const int32_t *tokens, int L, const mb_chunk_req *r);
    /* n >= 1 draws (mamba.h's rule), arguments and tokens checked by the
     * facade; the architecture advances s->drawn by the draws it made */
    int (*sample)(mb_model *m, mb_state *s, const int32_t *tokens, int n, const mb_sampler *sp,
                  int32_t *out);
} mb_arch_ops;

extern const mb_arch_ops mb_arch_lm;      /* models/lm.c */
extern const mb_arch_ops mb_arch_sashimi; /* models/sashimi.c */
extern const mb_arch_ops mb_arch_bidir;   /* models/bidir.c */

/* The table: NULL for an unknown value. */
const mb_arch_ops *mb_arch_get(mb_arch arch);
/* "mamba-lm" -> MB_ARCH_LM ...; -1 for an unknown name */
int mb_arch_from_name(const char *name, mb_arch *arch);
/* MB_RECOMPUTE_AUTO's mode for a training shape, given the device's free
 * and total bytes and what INNER's and LAYERS' activations and workspace
 * take there: INNER where free memory holds it and a sixteenth of the
 * device (at least 1 GiB) besides, else LAYERS where it holds that, else
 * STACK where the length is cut into chunks (stacks), else LAYERS (whose
 * allocation then reports the shortfall). */
int mb_recompute_auto_pick(size_t free_bytes, size_t total_bytes, size_t inner_bytes, size_t layers_bytes, int stacks);
/* mb_model_set_recompute(_chunk) on an architecture's (recompute,
 * rc_chunk) settings (on, chunk: -1 leaves one as it is; a chunk is at
 * least d_conv, the conv inputs the next chunk reads): 1 when the
 * activation layout must be laid out again */
int mb_recompute_update(const mb_config *cfg, int *recompute, int *rc_chunk, int on, int chunk);
/* cfg's rc_complement is an involution of its vocabulary that fits
 * MB_RC_MAX_VOCAB (mb_config_check, with rc_equivariant): 0, or -1 with a
 * reason */
int mb_rc_complement_check(const mb_config *cfg);

struct mb_model {
    mb_ctx *ctx;
    mb_config cfg;
    int vocab_padded;
    mb_params params;
    mb_dist *dist;          /* data-parallel group (mb_model_set_dist), NULL = one process */
    const mb_arch_ops *arch;
    void *net;              /* the architecture's struct */
    int has_cls;            /* cfg.n_classes > 0: */
    mb_cls_head cls;        /* the classification head, last in the table */

    /* Tokens and targets of a training forward, for up to io_rows rows,
     * grown when a larger batch comes (a step of a seen shape allocates
     * nothing). */
    int io_rows;
    int32_t *tok_dev, *tgt_dev;
    /* The classification head's buffers, for up to cls_B sequences */
    int cls_B;
    float *cls_buf, *pooled, *dpooled, *cls_logits;
    int32_t *cls_lab;
    uint64_t run_id;        /* the training run these weights belong to (mb_model_run_id) */
    /* live states: mb_model_free waits for the last one (mamba.h) */
    int n_states, freed;
};

/* The part of a state every architecture has; theirs extend it. */
struct mb_state {
    mb_model *model;
    int B;
    int64_t drawn; /* draws of mb_model_sample since create / reset */
    /* mb_chunk_emit's buffers, for pieces of up to emit_rows rows */
    int emit_rows;
    int32_t *emit_tgt, *emit_tgt_dev;
    double *emit_loss, *emit_loss_dev;
    float *hsum_dev; /* (B, d_model): the running pooled sums of a chunk call */
};

/* ---- generation on a device (models/gen.c) -------------------------------
 * The steps and draws of mb_model_sample run on the device: the draw's
 * settings and per-row counts live there (mb_head_sample reads them, so a
 * captured graph replays with the values of the moment), each draw lands
 * where the next step reads its input, and the drawn classes come back
 * through a ring. With graphs (period > 0), a period of steps is captured
 * once (after a period's worth has run eagerly, so that lazy
 * initializations stay outside any capture) and replayed with one launch;
 * after each launch the ring is copied to a pinned slot without waiting,
 * and the host waits only when the slots are full or the run is done.
 * Without graphs, a step at a time and its classes downloaded. */
typedef struct {
    int B, period;
    float *buf;          /* device: settings, counts, the ring (B, period) */
    mb_sample_cfg *cfg;
    int64_t *count, *hcount;
    int32_t *ring, *pin_ring, *col;
    void *graph;         /* a period of steps and draws */
    int graph_key;       /* mb_ctx_graph_key it was captured under */
    int64_t eager;       /* steps run eagerly so far */
} mb_gen;

/* What an architecture gives the loop: one step and its draw (into the
 * device tokens the next step reads), whether a period may start at the
 * state's position, and the bookkeeping a replayed step does on the host
 * (both may be NULL: always, nothing). */
typedef struct {
    int (*step)(void *arg);
    int (*at_period)(void *arg);
    void (*advance)(void *arg);
    void *arg;
} mb_gen_fns;

int mb_gen_init(mb_gen *g, mb_ctx *ctx, int B, int period);
void mb_gen_free(mb_gen *g, mb_ctx *ctx);
/* the settings and every row's count (drawn) to the device */
int mb_gen_begin(mb_gen *g, mb_ctx *ctx, const mb_sampler *sp, int64_t drawn);
/* n steps and draws; out (B, n) gets the classes, *drawn advances by n;
 * next: the device tokens each draw writes */
int mb_gen_run(mb_gen *g, mb_ctx *ctx, const mb_gen_fns *f, int n, int64_t *drawn, const int32_t *next,
               int32_t *out);

/* A model of cfg: the architecture's tensors and the classification head
 * registered in the table, nothing allocated (so a checkpoint's shapes can
 * be checked first); then its parameters (zeros; gradients come when
 * training asks, mb_params_grad_ensure). mb_model_alloc: both. */
mb_model *mb_model_build(mb_ctx *ctx, const mb_config *cfg);
int mb_model_alloc_params(mb_model *m);
/* Whether an LM's step of B rows runs all its layers as one mb_stack_step
 * (a GPU's cluster kernel); 0 for other architectures. For tests. */
int mb_lm_stack_step_used(const mb_model *m, int B);
mb_model *mb_model_alloc(mb_ctx *ctx, const mb_config *cfg);
/* Tokens (or, with allow_ignore, targets that may be MB_IGNORE_INDEX) in
 * [0, vocab_size); -1 with "WHAT n at position i is outside ..." if not. */
int mb_model_check_tokens(const mb_model *m, const int32_t *t, size_t n, const char *what, int allow_ignore);
/* Mean cross-entropy over the counted (not MB_IGNORE_INDEX) host targets
 * of logits (M, V) on the device, uploaded to tgt_dev; added to stats; with
 * want_grad the logits become the gradient of that mean. */
int mb_model_xent_mean(mb_ctx *ctx, const int32_t *targets, int32_t *tgt_dev, int M, int V, float *logits,
                       int want_grad, mb_loss_stats *stats);
/* The facade's token buffers for M rows. */
int mb_model_io_ensure(mb_model *m, size_t M);
/* Before a call's work in the context's precision: in bf16, the GEMMs'
 * rounded copies of this moment's weights (the optimizer may have moved
 * them since the last call) */
int mb_model_precision_begin(mb_model *m);
/* For architectures: the state's base fields (after the architecture
 * allocated its struct with mb_state first) and their release. */
void mb_state_base_init(mb_state *s, mb_model *m, int B);
void mb_state_base_free(mb_state *s);
/* A chunk's piece of positions [t0, t0+len) of each of the B sequences:
 * device hf and logits ((B*len) rows, sequence-major; either may be NULL
 * when the request does not need it) into the request's outputs. */
int mb_chunk_emit(mb_model *m, mb_state *s, const mb_chunk_req *r, int t0, int len, const float *hf,
                  const float *logits);

#endif
