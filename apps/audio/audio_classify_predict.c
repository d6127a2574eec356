/* mamba-audio classify predict: each class's probability per audio file
 * under a classifier from classify train, read as its validation reads
 * clips (audio_classify.h); with --labelled, the accuracy and confusion
 * matrix of folders of class folders. */
#include <stdlib.h>
#include <string.h>

#include "audio_classify.h"

static void acl_predict_usage(FILE *f)
{
    fprintf(f,
            "usage: " AUDIO_PROG " classify predict --model CLS [options] PATH...\n"
            "\n"
            "Class probabilities under the classifier CLS (from '" AUDIO_PROG " classify train')\n"
            "for every audio file of each PATH (a file, or a folder walked recursively in\n"
            "byte order; files libsndfile cannot read are named in a warning and skipped),\n"
            "resampled to the classifier's rate, as a TSV on stdout:\n"
            "  file  [class]  predicted  p_<class1> .. p_<classN>\n"
            "(probabilities %%.6g; class names from CLS.classes). Each file is read whole, in\n"
            "windows of --seq-len samples (the last padded before its start with silence),\n"
            "the classifier's pooled states averaged over them. With --labelled each PATH is a\n"
            "folder of class folders (PATH/NAME/...), the class column is the true class,\n"
            "and the accuracy and confusion matrix (rows: true class) go to stderr at the\n"
            "end. Progress on stderr when it takes long; Ctrl-C or SIGTERM stops it (exit 130).\n"
            "\n"
            "options:\n"
            "  --model CLS        classifier (required)\n"
            "  --labelled         PATHs are folders of class folders: score the predictions\n"
            "  --seq-len L        window length in samples [the classifier's, from training\n"
            "                     (CLS.audio); else its rate, 1 s, up to a pooling period]\n"
            "  --device D         cpu, cuda or cuda:N [cpu]\n"
            "  --threads N        CPU threads, 0 = all cores [0]\n"
            MB_CLI_PRECISION_HELP
            "\n"
            "Example: " AUDIO_PROG " classify predict --model digits-cls.safetensors --labelled sc09/test > pred.tsv\n");
}

/* One PATH's files: their classes with --labelled. */
typedef struct {
    acl_lab lab; /* lab.cls NULL: not labelled */
    int64_t *files, n;
} acl_input;

static int acl_write_rows(const acl_input *in, const float *probs, const mb_cli_names *names, int labelled)
{
    const int C = names->n;
    for (int64_t i = 0; i < in->n; i++) {
        const int64_t f = in->files[i];
        const float *p = probs + i * C;
        int best = 0, bad = 0;
        for (int j = 1; j < C; j++) best = p[j] > p[best] ? j : best;
        bad = printf("%s", audio_set_path(in->lab.set, f)) < 0;
        if (labelled && !bad) bad = printf("\t%s", names->v[in->lab.cls[f]]) < 0;
        if (!bad) bad = printf("\t%s", names->v[best]) < 0;
        for (int j = 0; j < C && !bad; j++) bad = printf("\t%.6g", p[j]) < 0;
        if (bad || putchar('\n') == EOF || ferror(stdout)) return mb_cli_write_error(AUDIO_PROG, NULL);
    }
    return 0;
}

int acl_predict(int argc, char **argv)
{
    mb_cli_train t;
    mb_cli_train_default(&t);
    const char *model = NULL;
    int labelled = 0;
    int64_t L = 0;
    enum { O_MODEL = 256, O_LAB, O_SEQ, O_DEV, O_THR, O_PREC };
    static const struct option opts[] = {{"model", 1, 0, O_MODEL}, {"labelled", 0, 0, O_LAB},
                                         {"seq-len", 1, 0, O_SEQ},  {"device", 1, 0, O_DEV},
                                         {"threads", 1, 0, O_THR},  {"precision", 1, 0, O_PREC},
                                         {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while (!bad && (c = mb_cli_getopt(AUDIO_PROG, "classify predict", argc, argv, opts)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_LAB: labelled = 1; break;
        case O_SEQ: bad = mb_cli_parse_int(AUDIO_PROG, "--seq-len", optarg, 1, INT64_C(1) << 30, &L); break;
        case O_DEV: t.device = optarg; break;
        case O_THR: bad = mb_cli_parse_int(AUDIO_PROG, "--threads", optarg, 0, 4096, &t.threads); break;
        case O_PREC: bad = mb_cli_parse_precision(AUDIO_PROG, optarg, &t); break;
        case 'h': acl_predict_usage(stdout); return 0;
        case MB_CLI_OPT_VERSION: return 0;
        default: bad = 1;
        }
    }
    if (!bad && !model) {
        mb_cli_error(AUDIO_PROG, "classify predict needs --model CLS");
        bad = 1;
    }
    if (!bad && optind >= argc) {
        mb_cli_error(AUDIO_PROG, "classify predict needs a file or folder to read");
        bad = 1;
    }
    if (bad) {
        fprintf(stderr, ACL_TRY);
        return 2;
    }
    const int nin = argc - optind;
    int rc = 1;
    mb_ctx *ctx = NULL;
    acl_model cm = {0};
    mb_cli_eval ev = {0};
    acl_input *in = calloc((size_t)nin, sizeof *in);
    float *probs = NULL;
    if (!in) goto oom;
    if (!(ctx = mb_cli_ctx(AUDIO_PROG, &t)) || acl_model_load(ctx, model, L, &cm)) goto done;
    const mb_cli_names *names = &cm.names;
    const int C = names->n;
    int64_t most = 0;
    for (int k = 0; k < nin; k++) {
        const char *path = argv[optind + k];
        if (labelled) {
            if (acl_lab_load(path, &cm.so, &cm.names, 0, &in[k].lab)) goto done;
        } else if (!(in[k].lab.set = audio_cmd_load_set(path, &cm.so))) {
            goto done;
        } else {
            in[k].lab.nfiles = audio_set_nfiles(in[k].lab.set);
        }
        if (!(in[k].files = malloc(sizeof(int64_t) * (size_t)in[k].lab.nfiles))) goto oom;
        for (int64_t i = 0; i < in[k].lab.nfiles; i++)
            if (!labelled || in[k].lab.cls[i] >= 0) in[k].files[in[k].n++] = i;
        most = in[k].n > most ? in[k].n : most;
    }
    if (!(probs = malloc(sizeof(float) * (size_t)((most > 0 ? most : 1) * C)))) goto oom;
    ev.C = C;
    if (labelled && !(ev.conf = calloc((size_t)C * C, sizeof *ev.conf))) goto oom;
    if (printf("file%s\tpredicted", labelled ? "\tclass" : "") < 0) goto write_fail;
    for (int j = 0; j < C; j++)
        if (printf("\tp_%s", names->v[j]) < 0) goto write_fail;
    if (putchar('\n') == EOF) goto write_fail;
    for (int k = 0; k < nin; k++) {
        if (acl_read_clips(cm.m, in[k].lab.set, in[k].files, in[k].n, cm.L, argv[optind + k], NULL, probs))
            goto done;
        if (acl_write_rows(&in[k], probs, names, labelled)) goto done;
        for (int64_t i = 0; labelled && i < in[k].n; i++)
            mb_cli_eval_add(&ev, in[k].lab.cls[in[k].files[i]], probs + i * C);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) goto write_fail;
    if (labelled) {
        fprintf(stderr, "classify: accuracy %.4f on %lld clips (chance %.4f), loss %.4f\n", mb_cli_eval_acc(&ev),
                (long long)ev.n, mb_cli_eval_chance(&ev), mb_cli_eval_loss(&ev));
        mb_cli_print_confusion(stderr, names, &ev);
        mb_cli_eval_chance_note(stderr, "classify", &ev);
    }
    rc = 0;
    goto done;
write_fail:
    mb_cli_write_error(AUDIO_PROG, NULL);
    goto done;
oom:
    mb_cli_error(AUDIO_PROG, "out of memory");
done:
    if (rc == 1 && mb_cli_interrupted()) rc = MB_CLI_EXIT_INTERRUPTED;
    for (int k = 0; in && k < nin; k++) {
        acl_lab_free(&in[k].lab);
        free(in[k].files);
    }
    free(in), free(probs), free(ev.conf);
    acl_model_free(&cm);
    mb_ctx_free(ctx);
    return rc;
}
