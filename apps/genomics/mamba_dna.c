/* mamba-dna: Mamba language models of DNA, from the terminal. One binary,
 * one subcommand per job (dna_<cmd>.c). */
#include <stdio.h>

#include "dna_cmd.h"
#include "htslib/hts.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " COMMAND [options] ...\n"
            "\n"
            "Mamba (selective state-space) language models of DNA, up to 1M-token contexts,\n"
            "on the CPU or a GPU. Inputs: FASTA (plain, gzip, bgzip + .fai), BAM, CRAM.\n"
            "Tokens: HyenaDNA's characters (A C G T N; other letters [UNK]).\n"
            "\n"
            "commands:\n"
            "  pretrain   train a model to predict the next base, or masked bases with a\n"
            "             bidirectional, optionally RC-equivariant model (bits per base)\n"
            "  score      log-likelihood of every record of a FASTA, or of VCF variants\n"
            "  classify   fine-tune a classifier on labelled sequences, or predict labels\n"
            "  embed      mean-pooled hidden states per record or window\n"
            "  generate   draw new sequences, or continuations of a FASTA's records\n"
            "  export     write a model as a transformers folder (or back as one file)\n"
            "\n"
            "'" DNA_PROG " COMMAND --help' explains each one; --version on any of them.\n"
            "\n"
            "Exit status: 0 done, 1 an error (one line 'mamba-dna: error: FILE: what'),\n"
            "2 a usage error, 130 stopped by Ctrl-C or SIGTERM (a training run saved,\n"
            "other outputs left as they were).\n");
}

int main(int argc, char **argv)
{
    static const mb_cli_command cmds[] = {
        {"pretrain", dna_cmd_pretrain, 1},
        {"score", dna_cmd_score, 0},
        {"classify", dna_cmd_classify, 0},
        {"embed", dna_cmd_embed, 0},
        {"export", dna_cmd_export, 0},
        {"generate", dna_cmd_generate, 0},
    };
    /* htslib's own "[E::...]" lines would come on top of ours */
    hts_set_log_level(HTS_LOG_OFF);
    return mb_cli_main(DNA_PROG, argc, argv, usage, cmds, (int)(sizeof cmds / sizeof cmds[0]));
}
