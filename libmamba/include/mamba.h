/* libmamba: train and run Mamba (selective state-space) models in C.
 *
 * The public API. Handles are opaque; every call that can fail returns 0 on
 * success and -1 on failure, with a one-line reason in mb_error_last().
 * Tensors cross this boundary as host arrays in row-major (B, L, ...) order. */
#ifndef MAMBA_H
#define MAMBA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MB_VERSION_MAJOR 0
#define MB_VERSION_MINOR 2
#define MB_VERSION_PATCH 0
#define MB_VERSION "0.2.0" /* the three above; written into every checkpoint */
#define MB_IGNORE_INDEX (-100) /* targets equal to this add nothing to the loss */

typedef struct mb_ctx mb_ctx;     /* a device: "cpu", "cuda", "cuda:N" */
typedef struct mb_model mb_model; /* parameters, gradients and activation buffers */
typedef struct mb_state mb_state; /* recurrent state: conv and SSM state per layer */
typedef struct mb_optim mb_optim; /* AdamW moments, schedule and step count */
typedef struct mb_dist mb_dist;   /* the group of processes of a data-parallel run */

/* Threads: a model's own calls (mb_model_forward, _forward_backward,
 * _classify, mb_optim_step, mb_model_set_int8/_bf16, mb_model_free) use its
 * scratch buffers or change it, so they must not overlap one another or any
 * call on its states; calls on different states of one model
 * (mb_model_step, _sample, _forward_chunk*) may run at once, each state
 * used by one thread at a time. Different models are independent. The
 * Python bindings hold these rules for their callers. */

/* Reason for the last failure on this thread. */
const char *mb_error_last(void);

/* For bindings loaded at run time (Python's ctypes): the version of the
 * library itself (MB_VERSION when it was built), and sizeof the public
 * structure `name` ("mb_config", "mb_optim_config", "mb_loss_stats",
 * "mb_sampler", "mb_chunk_out"; 0 for any other name), to check a mirrored
 * layout against the library's. */
const char *mb_version(void);
size_t mb_struct_size(const char *name);

/* ---- context ------------------------------------------------------------ */
mb_ctx *mb_ctx_create(const char *device);
void mb_ctx_free(mb_ctx *ctx);
const char *mb_ctx_name(const mb_ctx *ctx);
/* CPU threads; 0 = every core OpenMP sees (OMP_NUM_THREADS, else the
 * affinity mask), at most a container's CPU quota (cgroup cpu.max) */
void mb_ctx_set_threads(mb_ctx *ctx, int n_threads);
/* CUDA: let cuBLAS run fp32 GEMMs on TF32 tensor cores (about 1e-3 relative
 * error instead of 1e-6). Off by default; no effect on the CPU. */
void mb_ctx_set_tf32(mb_ctx *ctx, int on);
/* The precision training and mb_model_forward run in. MB_PREC_BF16 is
 * mamba_ssm's under bf16 autocast with fp32 parameters: the weights a GEMM
 * reads and the activations and their gradients that ops store are rounded
 * to bf16; arithmetic, accumulation, the residual stream, the scan's state,
 * A, D and dt bias, the weights, their gradients, the optimizer and the
 * loss stay fp32. On a GPU the GEMMs run on tensor cores with fp32
 * accumulation (cuBLAS picks its TF32 kernels for these fp32 arrays of
 * bf16 values, exact for them: session 41's profile); the CPU is the
 * reference the GPU is tested against. Built
 * for training, forward, chunks, classification, steps and sampling of the
 * LM and the audio U-Net (steps through each block's own ops rather than
 * the fused step kernels, the draw from the head's own logits). A state's
 * graphs follow a change of precision or TF32 (captured again). Default
 * MB_PREC_FP32. */
typedef enum { MB_PREC_FP32 = 0, MB_PREC_BF16 = 1 } mb_precision;
int mb_ctx_set_precision(mb_ctx *ctx, mb_precision p);

/* ---- files written whole or not at all -----------------------------------
 * An output is written to a temporary file beside its final path, then
 * flushed, synced and renamed over the path: readers never see half a file,
 * and a failed write leaves the previous file as it was. Checkpoints are
 * written this way; the tools write every output through it. */
typedef struct mb_outfile mb_outfile;
/* Creates the temporary file (PATH.tmpXXXXXX, with the permissions a new
 * file gets); NULL with "PATH: cannot create a file in its directory
 * (reason)", or "PATH: exists and is not a regular file" (a folder, a
 * device, a FIFO: the rename would replace it). A link to a file is written
 * through: the temporary file sits beside its target, which the rename
 * replaces, and the link stays. */
mb_outfile *mb_outfile_open(const char *path);
FILE *mb_outfile_fp(mb_outfile *o); /* write through stdio ... */
int mb_outfile_fd(mb_outfile *o);   /* ... or the descriptor (not both) */
const char *mb_outfile_path(const mb_outfile *o);
/* Flush, sync, close, rename into place, sync the directory; frees o.
 * -1 with "PATH: write error (reason)" or "PATH: cannot rename ...": the
 * temporary file is then removed and PATH is untouched. */
int mb_outfile_commit(mb_outfile *o);
/* Removes the temporary file and frees o (NULL is fine): PATH is untouched. */
void mb_outfile_discard(mb_outfile *o);
/* Removes temporary files of PATH left behind by a process that was killed
 * mid-write (PATH.tmpXXXXXX, nothing else); the number removed, or -1. For
 * a program that owns PATH (a training run over its checkpoint): another
 * program writing PATH at the same moment would lose its write. */
int mb_outfile_sweep(const char *path);

/* ---- model configuration: mamba_ssm's MambaConfig ----------------------- */
typedef enum { MB_INIT_S4D_REAL = 0, MB_INIT_S4D_LIN = 1 } mb_ssm_init;
/* Which network: the residual LM (mamba_ssm's MambaLMHeadModel), the
 * SaShiMi U-Net of Mamba blocks (Goel et al. 2022, "It's Raw!"), or the
 * bidirectional model of Caduceus (Schiff et al. 2024; below). */
typedef enum { MB_ARCH_LM = 0, MB_ARCH_SASHIMI = 1, MB_ARCH_BIDIR = 2 } mb_arch;
#define MB_MAX_POOL 4
#define MB_RC_MAX_VOCAB 64

typedef struct {
    int d_model;
    int n_layer;
    int vocab_size;
    int d_state;     /* N */
    int d_conv;      /* K */
    int expand;      /* d_inner = expand * d_model */
    int dt_rank;     /* 0 = ceil(d_model / 16) */
    mb_ssm_init init; /* S4D-Real (real A) or S4D-Lin (complex A) */
    int rms_norm;    /* 1: RMSNorm, 0: LayerNorm */
    int tie_embeddings;
    int pad_vocab_size_multiple;
    int bias;        /* in_proj and out_proj biases (mamba_ssm's ssm_cfg bias; default 0) */
    int conv_bias;   /* conv1d bias (default 1) */
    float norm_eps;
    float dt_min, dt_max, dt_init_floor; /* dt initialization range */
    /* Sequence classification head over the mean-pooled final hidden state:
     * classifier.weight (n_classes, d_model) and classifier.bias (n_classes).
     * 0 = no head (a plain LM). mb_model_create draws the head from a stream
     * of its own: the backbone is the LM's of the same seed. */
    int n_classes;

    /* ---- the SaShiMi U-Net (arch MB_ARCH_SASHIMI); ignored by the LM ----
     * embedding (vocab, d_model) -> for each stage s < n_pool: n_layer
     * blocks at width D_s, then DownPool (reshape (L, D_s) to (L/p_s,
     * p_s*D_s), linear to D_{s+1} = pool_expand * D_s) -> n_layer center
     * blocks at the coarsest rate (plus a residual around them) -> for each
     * stage back up: UpPool (linear D_{s+1} -> p_s*D_s, shifted right by one
     * coarse step so the network stays causal, reshaped back to (L, D_s)),
     * plus the skip (the DownPool's input), then n_layer blocks (plus a
     * residual around them) -> RMSNorm -> untied head (vocab padded), and
     * with n_classes the classification head on the mean of that norm.
     * A block is h = h + mixer(RMSNorm(h)), followed with mlp by
     * h = h + W2 gelu(W1 RMSNorm(h) + b1) + b2 (hidden 2 * width). L must
     * be a multiple of prod(pool). The mixers' dt_rank is ceil(D_s / 16)
     * per stage (dt_rank must be left "auto"). Needs rms_norm;
     * tie_embeddings is ignored (always untied). */
    mb_arch arch;
    int n_pool;              /* stages joined by pooling, 1..MB_MAX_POOL */
    int pool[MB_MAX_POOL];   /* pooling factor of each stage, >= 2 */
    int pool_expand;         /* width factor per stage (default 2) */
    int mlp;                 /* 1: an MLP block after each Mamba block */

    /* ---- the bidirectional model (arch MB_ARCH_BIDIR, "mamba-bidir") ----
     * The LM's embedding -> n_layer blocks -> norm_f -> head, each block
     * h + BiMamba(norm(h)) with BiMamba(x) = M_f(x) + flip(M_r(flip(x))):
     * two mixers, the second over the reversed sequence, sharing in_proj
     * and out_proj (Caduceus' weight tie; tensors PREFIX.mixer.mamba_fwd.*
     * and the reverse's own PREFIX.mixer.mamba_rev.*). Not causal: trained
     * with masked targets at the masked positions themselves (the caller's
     * choice of targets).
     * A state of this model carries nothing: each mb_model_forward_chunk
     * (and _pooled, _ex) reads its L tokens as a window of their own, so a
     * record fed in pieces is read as separate windows, and pooled sums
     * add up the windows'. mb_model_step and mb_model_sample fail.
     * Training's recompute and its chunks apply (the reverse mixer's
     * chunks taken from the sequence's end).
     * rc_equivariant (Caduceus-PS, reverse-complement parameter sharing):
     * the network runs on x and on rc(x) = complement(reversed x) with the
     * same weights, and logits(x)[t, v] = f(x)[t, v] + f(rc x)[L-1-t,
     * complement v], which is what Caduceus' RCPS modules compute on their
     * doubled channels; so logits(rc x)[t, v] = logits(x)[L-1-t, complement
     * v] exactly, and the hidden state the classification head pools,
     * f(x)[t] + f(rc x)[L-1-t], gives equal pooled vectors for x and rc x.
     * rc_complement[v] for v < vocab_size: the complement of token v, an
     * involution (vocab_padded <= MB_RC_MAX_VOCAB; padding classes are
     * their own). Twice the compute of the plain bidirectional model. */
    int rc_equivariant;
    int rc_complement[MB_RC_MAX_VOCAB];
} mb_config;

/* mamba_ssm's defaults (d_model 2560, n_layer 64, vocab 50277, N 16, K 4,
 * expand 2, RMSNorm, tied, pad to 8, no classification head); override what
 * you need. */
void mb_config_default(mb_config *cfg);
/* The small SaShiMi of issue 5 on top of mb_config_default: arch
 * MB_ARCH_SASHIMI, d_model 64, n_layer 2 (blocks per stage and direction),
 * vocab 256 (8-bit audio), pools {4, 4}, expand 2, d_state 16, untied head,
 * no MLP blocks. */
void mb_config_sashimi_default(mb_config *cfg);
/* Resolve derived fields (dt_rank) and check ranges; -1 with a reason. */
int mb_config_check(mb_config *cfg);
/* Whether ctx's kernels can run a model of cfg (the GPU scan takes d_state
 * up to 64, the CPU up to 256): 0, or -1 with a reason. mb_model_create and
 * mb_model_load check this before allocating anything. */
int mb_ctx_check_config(mb_ctx *ctx, const mb_config *cfg);
int mb_config_vocab_padded(const mb_config *cfg);
int mb_config_d_inner(const mb_config *cfg);

/* ---- model -------------------------------------------------------------- */
mb_model *mb_model_create(mb_ctx *ctx, const mb_config *cfg, uint64_t seed);
/* Frees the model. States made from it (mb_state_create) still alive are
 * not freed here: the model's memory is kept until the last of them is
 * freed (mb_state_free), so the two may be freed in either order; nothing
 * may be called on the model after this. */
void mb_model_free(mb_model *m);
const mb_config *mb_model_config(const mb_model *m);
/* The training run these weights belong to: random for a new model, the
 * file's for a loaded checkpoint (a new one for a file without it). Saved
 * with the model and its optimizer state, which mb_optim_load matches. */
uint64_t mb_model_run_id(const mb_model *m);
size_t mb_model_num_params(const mb_model *m);
/* What training keeps for backward (mb_model_set_recompute):
 *   MB_RECOMPUTE_OFF     every layer's activations (the fastest);
 *   MB_RECOMPUTE_LAYERS  only each layer's input (the residual stream,
 *                        n_layer + 1 rows of d_model floats a token), the
 *                        layer recomputed inside backward: one layer's
 *                        activations instead of all;
 *   MB_RECOMPUTE_STACK   as LAYERS, but a sequence longer than the chunk
 *                        (mb_model_set_recompute_chunk) keeps only the
 *                        states entering each chunk: the backward
 *                        recomputes the whole stack a chunk at a time, so
 *                        memory follows the chunk (every layer's
 *                        activations for it), not the length; the
 *                        recompute then runs the forward's scan too. The
 *                        DNA model (d_model 256, 8 layers) at L = 2^20 in
 *                        bf16: 7.3 GiB a step with the default 64 Ki-token
 *                        chunks, against LAYERS' 13.5 GiB, for 15% more
 *                        time (H100, session 41: 0.95 s against 0.83 s);
 *                        2^22 in 4.0 GiB at 32 Ki. A classification head keeps
 *                        norm_f's output whole (d_model floats a token).
 *                        The LM and the classifier on it; others take it
 *                        as LAYERS.
 *   MB_RECOMPUTE_INNER   as LAYERS, keeping each layer's in_proj output
 *                        as well (2 d_inner floats a token a layer): the
 *                        recompute runs the norm, the conv, x_proj and
 *                        dt_proj but not in_proj, its largest product.
 *                        The DNA model at L = 2^20 (H100, session 43):
 *                        45.5 GiB a step against LAYERS' 13.5, fp32 0.99 s
 *                        against 1.09, TF32 0.64 against 0.66, bf16 0.70
 *                        against 0.71 (session 44: 0.97 against 1.07 in
 *                        fp32). The LM and the classifier on it; others
 *                        take it as LAYERS.
 *   MB_RECOMPUTE_AUTO    INNER where the device has room for it, else
 *                        LAYERS where it has room for that, else STACK
 *                        (where the length is longer than STACK's chunk):
 *                        chosen at each new training shape (B, L) from the
 *                        device's free memory, which must hold the mode's
 *                        activations and a sixteenth of the device (at
 *                        least 1 GiB) besides. On the CPU, LAYERS (host
 *                        memory is the machine's).
 * Gradients are the same in all five (sums grouped by chunk). Any true
 * value that is not STACK, INNER or AUTO means LAYERS. */
enum {
    MB_RECOMPUTE_OFF = 0,
    MB_RECOMPUTE_LAYERS = 1,
    MB_RECOMPUTE_STACK = 2,
    MB_RECOMPUTE_INNER = 3,
    MB_RECOMPUTE_AUTO = 4
};
void mb_model_set_recompute(mb_model *m, int mode); /* ignored by sashimi models */
/* The mode training uses: as set, but for MB_RECOMPUTE_AUTO the one it
 * chose for the last training shape (LAYERS before the first); OFF for
 * models without recompute. */
int mb_model_get_recompute(const mb_model *m);
/* With recompute, layer passes run over chunks of this many tokens of one
 * sequence, states carried, so activation memory follows the chunk, not
 * B * L (default 131072, with MB_RECOMPUTE_STACK 65536; 0 = whole
 * sequences). Gradients are the same. */
void mb_model_set_recompute_chunk(mb_model *m, int tokens);

/* CPU inference with int8 weights (on: 1): int8 copies of the blocks'
 * in_proj, x_proj and out_proj and of the LM head (a scale per 32 values,
 * as llama.cpp's Q8_0, and the other operand's rows quantized so too, the
 * products exact integer sums; measured: products 5e-3 to 6e-3 relative to
 * fp32's, a small random model's logits 2e-2) that steps, sampling and chunks of at most 8 rows read
 * instead of the fp32 weights: a quarter of the bytes a token streams. The
 * fp32 weights stay: training, saving and larger chunks use them; an
 * optimizer step or a data-parallel broadcast drops the copies (they would
 * be stale), as does on = 0. CPU contexts only (-1 elsewhere). */
int mb_model_set_int8(mb_model *m, int on);
/* GPU inference with bf16 weights (on: 1): bf16 copies of the same
 * matrices (fp32 arithmetic, state and everything else) that the steps'
 * split kernels (any layer at up to 8 rows) and the LM head at up to 16 rows
 * read: half the bytes a token streams. Other paths (steps of more rows, as
 * fp32 layers run them, which is faster there; larger chunks, training)
 * read the fp32 weights. Dropped as the int8 copies are. GPU
 * contexts only (-1 elsewhere). Measured on an H100 at one row (session
 * 32): the 2.8b shape 205 -> 320 tokens/s, the 130m shape 2,246 -> 2,459.
 * Off by default: the weights are rounded. */
int mb_model_set_bf16(mb_model *m, int on);

/* Checkpoints: safetensors with mamba_ssm's tensor names and the config as
 * JSON under __metadata__["config"], the run id, and each tensor's CRC-32
 * (verified on load: a damaged file is refused). Written to a temporary
 * file, flushed, then renamed over `path`. A model with non-finite weights
 * is not saved (-1: a diverged run never replaces a good checkpoint). A
 * file's tensors are checked against its config before the model's memory
 * is allocated. */
int mb_model_save(const mb_model *m, const char *path);
/* path: one of our files; or a folder: transformers' save_pretrained of a
 * Mamba LM (config.json with model_type "mamba", model.safetensors or its
 * shards), or mamba_ssm's with model.safetensors. Loading is strict: a
 * tensor missing, of another shape, or one the model does not have is
 * refused by name. */
mb_model *mb_model_load(mb_ctx *ctx, const char *path);
/* A folder transformers loads with MambaForCausalLM.from_pretrained (and
 * mb_model_load reads back): config.json and model.safetensors, created or
 * replaced in dir. The residual LM with real A and RMSNorm, no
 * classification head; transformers' vocab_size is our padded vocabulary. */
int mb_model_save_hf(const mb_model *m, const char *dir);

typedef struct {
    double loss_sum; /* natural-log cross-entropy summed over counted targets */
    int64_t count;   /* targets not equal to MB_IGNORE_INDEX */
    int64_t correct; /* counted targets where the argmax was right */
} mb_loss_stats;

/* Forward over tokens (B, L). logits (B, L, vocab_padded) is optional. With
 * targets (B, L) it also fills stats (targets may be NULL). */
int mb_model_forward(mb_model *m, const int32_t *tokens, int B, int L,
                     const int32_t *targets, float *logits, mb_loss_stats *stats);
/* Forward, mean cross-entropy over counted targets, backward: gradients are
 * added to the model's gradient buffer (zeroed by mb_optim_step). */
int mb_model_forward_backward(mb_model *m, const int32_t *tokens, const int32_t *targets,
                              int B, int L, mb_loss_stats *stats);
void mb_model_zero_grad(mb_model *m);

/* ---- recurrent inference -------------------------------------------------
 * A state holds, per layer, the last d_conv-1 conv inputs and the SSM state.
 * mb_model_step consumes one token per sequence; mb_model_forward_chunk
 * consumes L tokens per sequence starting from the state and leaves the
 * state at the chunk's end, so a long sequence can be fed in pieces and
 * gives the same logits as fed whole. logits (B, L, vocab padded) may be
 * NULL: the state still advances, and the LM head is skipped. */
mb_state *mb_state_create(mb_model *m, int B);
void mb_state_reset(mb_state *s);
void mb_state_free(mb_state *s);
int mb_model_step(mb_model *m, mb_state *s, const int32_t *tokens, float *logits);
int mb_model_forward_chunk(mb_model *m, mb_state *s, const int32_t *tokens, int L,
                           float *logits);
/* Generation: n recurrent steps where each step's input is the class drawn
 * from the previous step's logits. tokens (B) are the first inputs; out
 * (B, n) row-major receives the drawn classes. The draw: softmax(logits /
 * temperature) over the model's vocab_size classes, restricted with
 * 0 < top_k < vocab_size to the top_k most likely classes, then with
 * top_p < 1 to the nucleus (the fewest most likely classes holding top_p of
 * what is left; ties rank by class index), with a random number that depends only on (seed, row, the
 * number of draws the state has made since it was created or reset): a run
 * cut into several calls draws what one call would, and the CPU can replay
 * a GPU run (their logits differ in the last bits, so a draw within ~1e-6
 * of a class boundary can fall on its neighbour). On a GPU a SaShiMi model
 * runs the steps and the draws on the device, a pooling period per graph,
 * with no host round trip per sample. */
typedef struct {
    float temperature; /* > 0; 1 = the model's distribution */
    float top_p;       /* (0, 1]; 1 = no nucleus cut */
    uint64_t seed;
    int top_k;         /* >= 0; 0 = no cut */
} mb_sampler;
int mb_model_sample(mb_model *m, mb_state *s, const int32_t *tokens, int n, const mb_sampler *sp,
                    int32_t *out);
/* SaShiMi models (cfg.arch MB_ARCH_SASHIMI) have a state too: per block its
 * mixer state, per pooling the DownPool's buffer of p fine inputs and the
 * UpPool's p up-projected rows of the last completed coarse step, so every
 * stage steps at its own rate (step t gives the parallel forward's logits
 * at position t). mb_model_forward_chunk on them takes single steps up to
 * the next edge of a pooling period (the product of the pooling factors),
 * whole periods by the parallel forward from the state (in pieces of at
 * most 4096 rows, batch times positions, on a CPU and 65536 on a GPU; the
 * state keeps their activations, sized to the longest chunk so far), then
 * single steps to the chunk's end; the logits are those of the steps, up
 * to rounding. Pooled chunks and the classification head work on them as
 * on the LM (the head reads the final norm's output at the finest rate). */
/* As mb_model_forward_chunk (logits may be NULL: the LM head is then not
 * computed), and ADDS to hsum (B, d_model) the sum over the chunk's L
 * positions of the final normed hidden state (the LM head's input). Summed
 * over a record's chunks and divided by its length, that is the mean-pooled
 * embedding the classification head reads, in constant memory. */
int mb_model_forward_chunk_pooled(mb_model *m, mb_state *s, const int32_t *tokens, int L,
                                  float *logits, float *hsum);
/* What mb_model_forward_chunk_ex returns beside the state it advances, all
 * host memory and optional (NULL: not wanted): */
typedef struct {
    /* (B, L): the next-token targets; MB_IGNORE_INDEX for positions not to
     * score. With them, logprob (B, L) gets log softmax(logits)[target]
     * over the padded vocabulary, as the training loss takes it (0 where
     * ignored), and stats their sum, count and argmax hits (added). */
    const int32_t *targets;
    double *logprob;
    mb_loss_stats *stats;
    float *logits; /* (B, L, vocab padded) */
    float *hsum;   /* (B, d_model): pooled sums ADDED, as _pooled */
} mb_chunk_out;
/* A chunk of L tokens per sequence from the state, with what scoring needs
 * computed on the device (no softmax on the host, no logits downloaded
 * unless asked for). */
int mb_model_forward_chunk_ex(mb_model *m, mb_state *s, const int32_t *tokens, int L, mb_chunk_out *out);

/* ---- sequence classification ---------------------------------------------
 * With cfg.n_classes > 0: probs = softmax(classifier(mean over positions of
 * the final normed hidden state)). Labels are in [0, n_classes), or
 * MB_IGNORE_INDEX for a sequence that adds nothing to the loss. Calls on a
 * model without a head fail with "model has no classification head". */

/* Load a checkpoint as a classifier. n_classes 0: whatever head the file
 * has (none included). n_classes > 0 on a file without a head (a pretrained
 * LM): the head is added, weight normal(0, 0.02) drawn from `seed`, bias 0.
 * A file whose head has another nonzero count is refused. */
mb_model *mb_model_load_classifier(mb_ctx *ctx, const char *path, int n_classes, uint64_t seed);
/* Forward over tokens (B, L). probs (B, n_classes) is optional; with labels
 * (B) it also fills stats (labels may be NULL). The LM head is not run.
 * Runs on the training activation buffers of (B, L); records too long for
 * them go through mb_model_forward_chunk_pooled and mb_model_classify_pooled. */
int mb_model_classify(mb_model *m, const int32_t *tokens, int B, int L, const int32_t *labels,
                      float *probs, mb_loss_stats *stats);
/* Forward, mean cross-entropy over the counted labels, backward into every
 * parameter: gradients are added to the gradient buffer as in
 * mb_model_forward_backward (recompute and its chunks apply). */
int mb_model_classify_backward(mb_model *m, const int32_t *tokens, const int32_t *labels, int B,
                               int L, mb_loss_stats *stats);
/* The head and softmax on pooled vectors (B, d_model) given by the caller
 * (e.g. hsum / length from mb_model_forward_chunk_pooled): probs (B, n_classes). */
int mb_model_classify_pooled(mb_model *m, const float *pooled, int B, float *probs);

/* ---- optimizer: AdamW, linear warmup + cosine decay, norm clipping ------- */
typedef struct {
    float lr;           /* peak learning rate */
    float min_lr;       /* floor of the cosine decay */
    float beta1, beta2, eps;
    float weight_decay; /* decoupled; never on norms, biases, A_log, A_imag, D */
    float grad_clip;    /* max global L2 norm; 0 = off */
    int64_t warmup_steps;
    int64_t total_steps; /* cosine reaches min_lr here; 0 = constant after warmup */
} mb_optim_config;

void mb_optim_config_default(mb_optim_config *oc);
mb_optim *mb_optim_create(mb_model *m, const mb_optim_config *oc);
void mb_optim_free(mb_optim *o);
/* Clip, update with the scheduled rate, zero the gradients, count the step.
 * grad_norm and lr (optional) report the pre-clip norm and the rate used. */
int mb_optim_step(mb_optim *o, float *grad_norm, float *lr);
int64_t mb_optim_step_count(const mb_optim *o);
float mb_optim_lr_at(const mb_optim_config *oc, int64_t step);
/* Optimizer state (moments, step) in a second safetensors file, tied to
 * the model: it records the model's run id and a CRC-32 of the weights it
 * was saved with, and mb_optim_load refuses state of another run or of
 * other weights (a save cut between the model file and this one). */
int mb_optim_save(const mb_optim *o, const char *path);
int mb_optim_load(mb_optim *o, const char *path);

/* ---- data-parallel training ----------------------------------------------
 * One process per device, started by mpirun: every rank holds the whole
 * model, runs forward and backward on its own rows of the global batch, and
 * mb_optim_step averages the gradients over the ranks (MPI_Allreduce on the
 * CPU, NCCL all-reduce on the context's stream on a GPU) before clipping,
 * so every rank takes the same step and the reported norm is the global
 * one. A one-rank group (no mpirun, or a build without MPI) costs nothing.
 *
 * mb_dist_init joins the job mpirun started (MPI_Init), or gives a one-rank
 * group when the process was not started by mpirun. NULL, with the reason,
 * when mpirun started several processes but this build has no MPI. argc and
 * argv may be NULL. Call mb_dist_finalize after freeing the models that use
 * the group (it ends MPI when mb_dist_init started it). */
mb_dist *mb_dist_init(int *argc, char ***argv);
/* How many processes mpirun started, read from the environment (Open MPI,
 * MPICH / Intel MPI's Hydra, PMIx launchers) without MPI: N >= 1, -1 when
 * launched but the count is not said, 0 when not launched; *rank (may be
 * NULL) gets the launcher's rank of this process (0 when not said). For
 * a tool to print a failure of mb_dist_init once, or to refuse a command
 * that does not run data-parallel. */
int mb_dist_launched(int *rank);
void mb_dist_finalize(mb_dist *d);
int mb_dist_rank(const mb_dist *d);
int mb_dist_size(const mb_dist *d);
int mb_dist_local_rank(const mb_dist *d); /* rank among the processes of this node */
/* Host collectives over every rank; each rank must make the same calls in
 * the same order. mb_dist_sum: v[0..n) summed in place (loss sums, counts,
 * validation metrics); mb_dist_bcast: rank 0's bytes to every rank. */
int mb_dist_sum(mb_dist *d, double *v, int n);
int mb_dist_bcast(mb_dist *d, void *buf, size_t bytes);
int mb_dist_barrier(mb_dist *d);
/* Ends every process of the job with `code` (MPI_Abort): for a failure on
 * one rank that the others, waiting in a collective, would never learn of.
 * With one rank, exit(code). */
void mb_dist_abort(mb_dist *d, int code);
/* Makes m data-parallel over d (after the model is on its device, before
 * training): on a CUDA context with NCCL built in it creates the NCCL
 * communicator for the context's device (collective), and it broadcasts
 * rank 0's parameters, so every rank starts from the same weights (a
 * resumed checkpoint included). d == NULL detaches. A failure on one rank
 * leaves the others waiting: end the job (mb_dist_abort). */
int mb_model_set_dist(mb_model *m, mb_dist *d);
/* Each rank's gradient is the mean over its own counted targets, so the
 * average over the ranks is the global batch's gradient only when every
 * rank counts as many. When they may differ (ignored targets), tell the
 * optimizer this rank's share, its count / the global count, before the
 * step: the gradients are then summed with these weights. For the next
 * step only; ignored with one rank. */
void mb_optim_set_share(mb_optim *o, double share);

#ifdef __cplusplus
}
#endif
#endif
