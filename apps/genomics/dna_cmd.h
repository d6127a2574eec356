/* mamba-dna's subcommands and what they share: opening inputs, loading a
 * DNA checkpoint, the language-model targets of a window, and bits-per-base
 * accounting. Each subcommand lives in its own dna_<cmd>.c and returns the
 * process exit code (0 ok, 1 failure, 2 usage). */
#ifndef DNA_CMD_H
#define DNA_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "dna_seq.h"
#include "dna_tok.h"
#include "mamba.h"
#include "mb_cli.h"

#define DNA_PROG "mamba-dna"
#define DNA_DEFAULT_MODEL "mamba-dna.safetensors"

int dna_cmd_pretrain(int argc, char **argv);
int dna_cmd_score(int argc, char **argv);
int dna_cmd_classify(int argc, char **argv);
int dna_cmd_embed(int argc, char **argv);
int dna_cmd_export(int argc, char **argv);
int dna_cmd_generate(int argc, char **argv);

/* ---- the flags of the commands that run a model over inputs -------------
 * score, embed and classify predict: --model, --fasta (repeatable),
 * --reference, --chunk, --device, --threads, --tf32, --precision. */
typedef struct {
    mb_cli_train t; /* only device, threads, tf32 and bf16 are used */
    const char *model, *reference;
    const char **fasta;
    int n_fasta;
    int64_t chunk; /* tokens a forward pass */
} dna_infer_opts;

enum { DNA_O_MODEL = 0x2000, DNA_O_FASTA, DNA_O_REF, DNA_O_CHUNK, DNA_O_DEV, DNA_O_THR, DNA_O_TF32, DNA_O_PREC };
#define DNA_INFER_OPTIONS                                                                          \
    {"model", 1, 0, DNA_O_MODEL}, {"fasta", 1, 0, DNA_O_FASTA}, {"reference", 1, 0, DNA_O_REF},    \
        {"chunk", 1, 0, DNA_O_CHUNK}, {"device", 1, 0, DNA_O_DEV}, {"threads", 1, 0, DNA_O_THR},   \
        {"tf32", 0, 0, DNA_O_TF32}, {"precision", 1, 0, DNA_O_PREC}

/* Defaults (chunk given), room for every --fasta of argv; -1 after an
 * error line. */
int dna_infer_init(dna_infer_opts *o, int argc, int64_t chunk);
void dna_infer_free(dna_infer_opts *o);
/* 1: one of the flags above (taken), 0: not one of them, -1: a bad value
 * (the error is printed). */
int dna_infer_option(dna_infer_opts *o, int c, const char *arg);
/* After getopt: no stray arguments, --model and --fasta given; -1 after
 * the error line (a usage error). */
int dna_infer_check(const dna_infer_opts *o, const char *cmd, int argc, char **argv);

/* The inputs as one set; prints "mamba-dna: error: FILE: what" on failure.
 * reference: CRAM reference or NULL. */
dna_set *dna_cmd_open_set(const char *const *paths, int n, const char *reference);

/* The model config of a DNA language model: vocab 12 padded to 16. */
void dna_cmd_config(mb_config *cfg);
/* Training steps of more than DNA_RECOMPUTE_TOKENS tokens a process keep
 * only each layer's input and recompute the layer in backward; with
 * --low-memory (DNA_MEMORY_LOW), windows longer than that keep only the
 * states between chunks of it and recompute the whole stack a chunk at a
 * time (MB_RECOMPUTE_STACK; a bidirectional model recomputes by layers);
 * with --high-memory (DNA_MEMORY_HIGH) each layer's in_proj output is kept
 * too and not recomputed (MB_RECOMPUTE_INNER; the causal LM); with
 * neither, the library picks by the device's room (MB_RECOMPUTE_AUTO:
 * INNER, LAYERS or STACK; LAYERS on the CPU). Says which on stderr. */
#define DNA_RECOMPUTE_TOKENS 65536
enum { DNA_MEMORY_DEFAULT = 0, DNA_MEMORY_LOW = 1, DNA_MEMORY_HIGH = 2 };
void dna_cmd_recompute(mb_model *m, int64_t rows, int64_t L, int memory);
/* After a training step with neither flag: where the library's choice
 * (MB_RECOMPUTE_AUTO, by the device's room at this window length) differs
 * from the mode said before (*said; MB_RECOMPUTE_LAYERS at the start,
 * dna_cmd_recompute's line), one line on stderr: in_proj's output kept as
 * well, the layer recompute, or the stack a chunk at a time. */
void dna_cmd_recompute_took(const mb_model *m, int64_t L, int *said);
/* --low-memory or --high-memory (want) into *memory: 0, or one error line
 * and nonzero where the other was given */
int dna_cmd_memory_option(int *memory, int want);
#define DNA_MEMORY_HELP                                                                  \
    "  --low-memory       windows over 64k bases: keep only the states between 64k\n"     \
    "                     chunks and recompute the whole model a chunk at a time\n"        \
    "                     (the causal LM; a bidir model recomputes layer by layer):\n"    \
    "                     d_model 256 x 8 layers at 1M bases, bf16, H100: 7.3 GiB\n"    \
    "                     a step, against 13.5 GiB by layers, for about 15%% more time\n" \
    "  --high-memory      steps over 64k bases, whose layers are recomputed in\n"      \
    "                     backward: keep each layer's in_proj output instead of\n"     \
    "                     recomputing it (the causal LM): the same model at 1M\n"      \
    "                     bases, H100: 45 GiB a step, for 9%% less time in fp32 and\n" \
    "                     2%% in TF32 and bf16\n"                                       \
    "  (neither)          on a GPU, --high-memory's where it has room for it and a\n" \
    "                     sixteenth of its memory besides, else by layers where\n"  \
    "                     that has room, else --low-memory's; stderr says which.\n" \
    "                     On the CPU, by layers\n"

/* The complement of each token (A-T, C-G; the others their own), as the
 * RC-equivariant model's rc_complement (MB_RC_MAX_VOCAB entries). */
void dna_cmd_complement(int *comp);

/* Loads a mamba-dna checkpoint on ctx (n_classes as mb_model_load_classifier:
 * 0 keeps what the file has). Refuses, with one error line, a file that is
 * not a checkpoint, another tool's model, or a vocabulary that is not the
 * DNA tokenizer's. */
mb_model *dna_cmd_load_model(mb_ctx *ctx, const char *path, int n_classes, uint64_t seed);
/* A classifier where a language model is needed (generate, score): the
 * error line naming cmd and -1; else 0. */
int dna_cmd_require_lm(const mb_model *m, const char *path, const char *cmd);

/* Next-base targets of a window w[0..L]: tgt[t] = w[t + 1], or
 * MB_IGNORE_INDEX where that base is not A, C, G or T (N, [UNK]): bits per
 * base count real bases only. Returns how many targets count. */
int64_t dna_cmd_targets(const int32_t *w, int64_t L, int32_t *tgt);

static inline int dna_is_base(int32_t t) { return t >= DNA_TOK_A && t <= DNA_TOK_T; }


#endif
