/* mamba-dna: Mamba language models of DNA, from the terminal. One binary,
 * one subcommand per job (dna_<cmd>.c). */
#include <stdio.h>
#include <string.h>

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
            "  pretrain   train a model to predict the next base (bits per base, checkpoints)\n"
            "  score      log-likelihood of every record of a FASTA, or of VCF variants\n"
            "  classify   fine-tune a classifier on labelled sequences, or predict labels\n"
            "  embed      mean-pooled hidden states per record or window\n"
            "\n"
            "'" DNA_PROG " COMMAND --help' explains each one.\n");
}

int main(int argc, char **argv)
{
    /* htslib's own "[E::...]" lines would come on top of ours */
    hts_set_log_level(HTS_LOG_OFF);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf(DNA_PROG " (libmamba %s)\n", MB_VERSION);
        return 0;
    }
    /* the subcommand parses argv[1..]: its name stands in for argv[0] */
    if (strcmp(cmd, "pretrain") == 0) return dna_cmd_pretrain(argc - 1, argv + 1);
    /* the rest would run whole in every process mpirun started, each
     * writing the same outputs */
    if (mb_cli_single_process(DNA_PROG, cmd)) return 1;
    if (strcmp(cmd, "score") == 0) return dna_cmd_score(argc - 1, argv + 1);
    if (strcmp(cmd, "classify") == 0) return dna_cmd_classify(argc - 1, argv + 1);
    if (strcmp(cmd, "embed") == 0) return dna_cmd_embed(argc - 1, argv + 1);
    mb_cli_error(DNA_PROG, "unknown command '%s'", cmd);
    fprintf(stderr, "Try '" DNA_PROG " --help'.\n");
    return 2;
}
