/* mamba-audio: SaShiMi U-Nets of Mamba blocks on raw waveforms, from the
 * terminal. One binary, one command per file (audio_<cmd>.c). */
#include <stdio.h>
#include <string.h>

#include "audio_cmd.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " AUDIO_PROG " COMMAND [options]\n"
            "\n"
            "Autoregressive waveform models (SaShiMi's U-Net with Mamba blocks) trained on a\n"
            "folder of audio (WAV, FLAC, OGG...; 8-bit mu-law samples), on the CPU or a GPU.\n"
            "\n"
            "commands:\n"
            "  train      train on a folder of audio (bits per sample against the unigram)\n"
            "  generate   sample new audio, or continue a recording, to WAV files\n"
            "  eval       bits per sample of a model on a folder\n"
            "\n"
            "'" AUDIO_PROG " COMMAND --help' explains each one.\n");
}

int main(int argc, char **argv)
{
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
        printf(AUDIO_PROG " (libmamba %s)\n", MB_VERSION);
        return 0;
    }
    if (strcmp(cmd, "train") == 0) return audio_cmd_train(argc - 1, argv + 1);
    /* the rest would run whole in every process mpirun started, each
     * writing the same outputs */
    if (mb_cli_single_process(AUDIO_PROG, cmd)) return 1;
    if (strcmp(cmd, "generate") == 0) return audio_cmd_generate(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0) return audio_cmd_eval(argc - 1, argv + 1);
    mb_cli_error(AUDIO_PROG, "unknown command '%s'", cmd);
    fprintf(stderr, "Try '" AUDIO_PROG " --help'.\n");
    return 2;
}
