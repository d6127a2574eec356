/* mamba-dna classify: fine-tunes a pretrained mamba-dna language model with a
 * sequence classification head (the mean over positions of the final normed
 * hidden state, then a linear layer) on labelled sequences -- files per
 * class, or a TSV of regions and labels -- and reports the validation
 * accuracy and confusion matrix on held-out windows; and predicts each
 * class's probability per record or window of a FASTA, in constant memory.
 * The modes live in dna_classify_*.c (dna_classify.h lists them).
 *
 * The class names live beside the checkpoint in MODEL.classes (one a line,
 * in the head's order), so that predict can print them. */
#include <string.h>

#include "dna_classify.h"

static void cl_usage(FILE *f)
{
    fprintf(f,
            "usage: " DNA_PROG " classify train --model PRETRAINED --out CLS (--class NAME=FILE... | --tsv R.tsv\n"
            "                          --fasta F...) [options]\n"
            "       " DNA_PROG " classify predict --model CLS --fasta F [options]\n"
            "\n"
            "Sequence classification with a mamba-dna model: 'train' fine-tunes a pretrained\n"
            "model with a classification head on labelled sequences and reports the held-out\n"
            "accuracy and confusion matrix; 'predict' writes each class's probability per\n"
            "record or window. Both modes are described below ('" DNA_PROG " classify train\n"
            "--help' and '... predict --help' show one each).\n"
            "\n");
}

int dna_cmd_classify(int argc, char **argv)
{
    if (argc < 2) {
        mb_cli_error(DNA_PROG, "classify needs a mode: train or predict");
        fprintf(stderr, CL_TRY);
        return 2;
    }
    const char *mode = argv[1];
    /* the mode parses argv[1..]: its name stands in for argv[0] */
    if (strcmp(mode, "train") == 0) return cl_train(argc - 1, argv + 1);
    if (strcmp(mode, "predict") == 0) return cl_predict(argc - 1, argv + 1);
    if (strcmp(mode, "--version") == 0) {
        mb_cli_version(DNA_PROG);
        return 0;
    }
    if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0 || strcmp(mode, "help") == 0) {
        mb_cli_train d;
        mb_cli_train_default(&d);
        d.lr = CL_LR_DEFAULT;
        cl_usage(stdout);
        cl_train_usage(stdout, &d);
        fputc('\n', stdout);
        cl_predict_usage(stdout);
        return 0;
    }
    mb_cli_error(DNA_PROG, "classify: unknown mode '%s' (train or predict)", mode);
    fprintf(stderr, CL_TRY);
    return 2;
}
