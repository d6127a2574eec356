/* Helpers the mamba-dna subcommands share (dna_cmd.h). */
#include "dna_cmd.h"

#include <stdlib.h>
#include <string.h>

dna_set *dna_cmd_open_set(const char *const *paths, int n, const char *reference)
{
    char err[512];
    dna_src_opts o;
    dna_src_opts_default(&o);
    o.reference = reference;
    dna_set *s = dna_set_open(paths, n, &o, err, sizeof err);
    if (!s) mb_cli_error(DNA_PROG, "%s", err);
    return s;
}

void dna_cmd_config(mb_config *cfg)
{
    cfg->vocab_size = DNA_TOK_VOCAB;
    cfg->pad_vocab_size_multiple = DNA_TOK_VOCAB_PADDED;
}

void dna_cmd_recompute(mb_model *m, int64_t rows, int64_t L, int memory)
{
    if (rows * L <= DNA_RECOMPUTE_TOKENS) return;
    const int bidir = mb_model_config(m)->arch == MB_ARCH_BIDIR;
    const int stack = memory == DNA_MEMORY_LOW && !bidir && L > DNA_RECOMPUTE_TOKENS;
    const int inner = memory == DNA_MEMORY_HIGH && !bidir;
    /* by default the library keeps in_proj's output where the device has
     * room for it, and where it has none for the layer recompute either
     * recomputes the stack a chunk at a time (dna_cmd_recompute_took says
     * which after the step) */
    const int autom = memory == DNA_MEMORY_DEFAULT && !bidir;
    mb_model_set_recompute(m, stack   ? MB_RECOMPUTE_STACK
                              : inner ? MB_RECOMPUTE_INNER
                              : autom ? MB_RECOMPUTE_AUTO
                                      : MB_RECOMPUTE_LAYERS);
    if (stack) mb_model_set_recompute_chunk(m, DNA_RECOMPUTE_TOKENS);
    const char *why = "";
    if (memory == DNA_MEMORY_LOW && !stack)
        why = bidir ? " (--low-memory: a bidirectional model's reverse mixer reads the chunks after each, so not a "
                      "chunk at a time)"
                    : " (--low-memory: windows of 64k bases or less are not cut)";
    if (memory == DNA_MEMORY_HIGH && !inner)
        why = " (--high-memory: a bidirectional model's two mixers share one in_proj output, which is not kept)";
    fprintf(stderr, DNA_PROG ": %lld bases a step: %s%s\n", (long long)(rows * L),
            stack   ? "only the states between 64k-base chunks kept, the model recomputed a chunk at a time in "
                      "backward (--low-memory)"
            : inner ? "each layer recomputed in backward but for in_proj, whose output is kept (--high-memory)"
            : autom ? "each layer recomputed in backward, unless the device has room to keep in_proj's output "
                      "too (a GPU may: said after the first step)"
                    : "each layer recomputed in backward",
            why);
}

void dna_cmd_recompute_took(const mb_model *m, int64_t L, int *said)
{
    const int mode = mb_model_get_recompute(m);
    /* windows short enough to keep every activation recompute nothing
     * (OFF), and AUTO before a step has decided nothing yet: nothing to say
     * (the quick start's 512-base windows said "each layer recomputed",
     * untrue on two counts) */
    if (mode == *said || mode == MB_RECOMPUTE_OFF || mode == MB_RECOMPUTE_AUTO) return;
    fprintf(stderr, DNA_PROG ": %lld-base windows: %s\n", (long long)L,
            mode == MB_RECOMPUTE_INNER ? "the device has room for each layer's in_proj output, kept for the backward "
                                         "rather than recomputed (--low-memory keeps the least)"
            : mode == MB_RECOMPUTE_STACK
                ? "no room on the device for each layer's input: only the states between 64k-base chunks kept, "
                  "the model recomputed a chunk at a time in backward (as --low-memory)"
                : "each layer recomputed in backward (the device has no room to keep its in_proj output)");
    *said = mode;
}

int dna_cmd_memory_option(int *memory, int want)
{
    if (*memory && *memory != want) {
        mb_cli_error(DNA_PROG, "--low-memory and --high-memory: give one or the other");
        return 1;
    }
    *memory = want;
    return 0;
}

void dna_cmd_complement(int *comp)
{
    for (int v = 0; v < MB_RC_MAX_VOCAB; v++) comp[v] = dna_tok_complement(v);
}

mb_model *dna_cmd_load_model(mb_ctx *ctx, const char *path, int n_classes, uint64_t seed)
{
    mb_model *m = n_classes ? mb_model_load_classifier(ctx, path, n_classes, seed) : mb_model_load(ctx, path);
    if (!m) {
        mb_cli_lib_error(DNA_PROG, path);
        return NULL;
    }
    const mb_config *c = mb_model_config(m);
    if (c->arch == MB_ARCH_SASHIMI) {
        mb_cli_error(DNA_PROG, "%s: not a mamba-dna model (a SaShiMi audio U-Net: mamba-audio reads it)", path);
        mb_model_free(m);
        return NULL;
    }
    /* any LM whose vocabulary covers the tokenizer's ids (a transformers
     * model of vocab_size 16 is ours padded): the extra classes are never
     * inputs or targets, only part of the softmax as in training */
    if (c->vocab_size < DNA_TOK_VOCAB) {
        mb_cli_error(DNA_PROG, "%s: not a mamba-dna model (a vocabulary of %d tokens does not cover the DNA "
                               "tokenizer's %d)", path, c->vocab_size, DNA_TOK_VOCAB);
        mb_model_free(m);
        return NULL;
    }
    return m;
}

int dna_cmd_require_lm(const mb_model *m, const char *path, const char *cmd)
{
    const int n = mb_model_config(m)->n_classes;
    if (n <= 0) return 0;
    mb_cli_error(DNA_PROG, "%s: a classifier (%d classes), not a language model: %s needs the pretrained model", path,
                 n, cmd);
    return -1;
}

int64_t dna_cmd_targets(const int32_t *w, int64_t L, int32_t *tgt)
{
    int64_t n = 0;
    for (int64_t t = 0; t < L; t++) {
        const int32_t y = w[t + 1];
        tgt[t] = dna_is_base(y) ? y : MB_IGNORE_INDEX;
        n += dna_is_base(y);
    }
    return n;
}

int dna_infer_init(dna_infer_opts *o, int argc, int64_t chunk)
{
    memset(o, 0, sizeof *o);
    mb_cli_train_default(&o->t);
    o->chunk = chunk;
    o->fasta = calloc((size_t)argc + 1, sizeof(char *));
    if (!o->fasta) {
        mb_cli_error(DNA_PROG, "out of memory");
        return -1;
    }
    return 0;
}

void dna_infer_free(dna_infer_opts *o)
{
    free(o->fasta);
    o->fasta = NULL;
}

int dna_infer_option(dna_infer_opts *o, int c, const char *arg)
{
    switch (c) {
    case DNA_O_MODEL: o->model = arg; return 1;
    case DNA_O_FASTA: o->fasta[o->n_fasta++] = arg; return 1;
    case DNA_O_REF: o->reference = arg; return 1;
    case DNA_O_CHUNK: return mb_cli_parse_int(DNA_PROG, "--chunk", arg, 1, INT64_C(1) << 24, &o->chunk) ? -1 : 1;
    case DNA_O_DEV: o->t.device = arg; return 1;
    case DNA_O_THR: return mb_cli_parse_int(DNA_PROG, "--threads", arg, 0, 4096, &o->t.threads) ? -1 : 1;
    case DNA_O_TF32: o->t.tf32 = 1; return 1;
    case DNA_O_PREC: return mb_cli_parse_precision(DNA_PROG, arg, &o->t) ? -1 : 1;
    default: return 0;
    }
}

int dna_infer_check(const dna_infer_opts *o, const char *cmd, int argc, char **argv)
{
    if (optind < argc) {
        mb_cli_error(DNA_PROG, "%s: unexpected argument '%s' (inputs go after --fasta)", cmd, argv[optind]);
        return -1;
    }
    if (!o->model || !o->n_fasta) {
        mb_cli_error(DNA_PROG, "%s needs --model and --fasta", cmd);
        return -1;
    }
    return 0;
}
