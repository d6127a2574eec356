/* mamba-audio: SaShiMi U-Nets of Mamba blocks on raw waveforms, from the
 * terminal. One binary, one command per file (audio_<cmd>.c). */
#include <stdio.h>

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
            "  eval       bits per sample of a model on a folder; --metrics: generated clips\n"
            "             scored by a classifier (FID, IS, mIS, AM, NDB, as SaShiMi)\n"
            "  classify   train a classifier of clips on folders of labelled audio, or predict\n"
            "\n"
            "'" AUDIO_PROG " COMMAND --help' explains each one; --version on any of them.\n"
            "\n"
            "Exit status: 0 done, 1 an error (one line 'mamba-audio: error: FILE: what'),\n"
            "2 a usage error, 130 stopped by Ctrl-C or SIGTERM (a training run saved,\n"
            "other outputs left as they were).\n");
}

int main(int argc, char **argv)
{
    static const mb_cli_command cmds[] = {
        {"train", audio_cmd_train, 1},
        {"generate", audio_cmd_generate, 0},
        {"eval", audio_cmd_eval, 0},
        {"classify", audio_cmd_classify, 0},
    };
    return mb_cli_main(AUDIO_PROG, argc, argv, usage, cmds, (int)(sizeof cmds / sizeof cmds[0]));
}
