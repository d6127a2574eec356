/* mamba-dna export: a checkpoint rewritten in another layout: a folder that
 * transformers' MambaForCausalLM.from_pretrained loads (--format hf), or
 * our own single file (--format safetensors, e.g. from a transformers or
 * mamba_ssm folder). The weights are copied as they are: both score the
 * same. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "dna_cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " export --model M --format hf|safetensors --out OUT\n"
            "\n"
            "Writes the model M in another layout, the weights unchanged:\n"
            "  hf           a folder OUT with config.json and model.safetensors that\n"
            "               transformers loads: MambaForCausalLM.from_pretrained(OUT)\n"
            "               (the causal LM with real A and RMSNorm; its vocab_size is the\n"
            "               padded vocabulary, ours kept in config.json for the way back)\n"
            "  safetensors  one libmamba checkpoint file OUT (the tools' format)\n"
            "M is a checkpoint file or a folder (transformers' or mamba_ssm's\n"
            "save_pretrained, with model.safetensors or its shards).\n"
            "\n"
            "options:\n"
            "  --model M     the model (required)\n"
            "  --format F    hf or safetensors (required)\n"
            "  --out OUT     the folder (hf: created, its two files replaced) or file to write\n"
            "\n"
            "Example: " DNA_PROG " export --model dna.safetensors --format hf --out dna-hf\n");
}

int dna_cmd_export(int argc, char **argv)
{
    enum { O_MODEL = 256, O_FORMAT, O_OUT };
    static const struct option opts[] = {{"model", 1, 0, O_MODEL}, {"format", 1, 0, O_FORMAT},
                                         {"out", 1, 0, O_OUT},     {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *format = NULL, *out = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_FORMAT: format = optarg; break;
        case O_OUT: out = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            mb_cli_error(DNA_PROG, "export: unknown option or missing value: %s", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        mb_cli_error(DNA_PROG, "export: unexpected argument '%s'", argv[optind]);
        return 2;
    }
    if (!model || !format || !out) {
        mb_cli_error(DNA_PROG, "export needs --model, --format and --out (see export --help)");
        return 2;
    }
    const int hf = strcmp(format, "hf") == 0;
    if (!hf && strcmp(format, "safetensors") != 0) {
        mb_cli_error(DNA_PROG, "--format expects hf or safetensors, got '%s'", format);
        return 2;
    }
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_model *m = ctx ? dna_cmd_load_model(ctx, model, 0, 0) : NULL;
    int rc = 1;
    if (!ctx) mb_cli_error(DNA_PROG, "%s", mb_error_last());
    else if (m && (hf ? mb_model_save_hf(m, out) : mb_model_save(m, out)) != 0) mb_cli_lib_error(DNA_PROG, out);
    else if (m) {
        fprintf(stderr, "export: %s -> %s (%s)\n", model, out, hf ? "a transformers folder" : "a libmamba checkpoint");
        rc = 0;
    }
    mb_model_free(m);
    mb_ctx_free(ctx);
    return rc;
}
