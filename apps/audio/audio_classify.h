/* mamba-audio classify, the files of one subcommand and what they share:
 *   audio_classify.c          the subcommand (train or predict), labelled
 *                             folders, a clip's pooled vector and class
 *   audio_classify_train.c    classify train (through the shared training loop)
 *   audio_classify_predict.c  classify predict
 *   audio_eval_metrics.c      eval --metrics: generated clips under a classifier
 * A classifier is a SaShiMi U-Net with the classification head (the mean
 * over positions of the final norm, then a linear layer), written as CLS
 * with CLS.classes (the class names, mb_cli_classify.h) and CLS.audio (its
 * rate and quantizer). `eval --metrics` reads clips the way predict does.
 * Errors are printed as one line by the function that finds them;
 * functions return -1 after it. */
#ifndef AUDIO_CLASSIFY_H
#define AUDIO_CLASSIFY_H

#include <stdint.h>

#include "audio_cmd.h"
#include "mb_cli_classify.h"

#define ACL_TRY "Try '" AUDIO_PROG " classify --help'.\n"

int acl_train(int argc, char **argv);
int acl_predict(int argc, char **argv);

/* ---- labelled folders ---------------------------------------------------------- */

/* A folder of class folders (DIR/zero/a.wav, DIR/one/b.flac, ...: the
 * layout of SC09 and of data/audio/make_sc09.sh's splits): every file's
 * class is the first folder of its path under DIR. */
typedef struct {
    audio_set *set;
    int32_t *cls; /* per file: class index in the names; -1: a file directly in DIR (not used) */
    int64_t nfiles, unlabelled;
} acl_lab;

/* Loads path as a labelled folder (through audio_cmd_load_set, so with its
 * warnings and progress; so->val_frac splits it by file). The class names:
 * with add_new, a new folder name becomes a class (in byte order, the walk's
 * order); else it must be one of names ("DIR/x: class 'x' is not one of
 * the classifier's: a, b"). A folder with no class folder fails. */
int acl_lab_load(const char *path, const audio_set_opts *so, mb_cli_names *names, int add_new, acl_lab *out);
void acl_lab_free(acl_lab *l);

/* ---- a classifier and how it reads clips ---------------------------------------- */

typedef struct {
    mb_model *m;
    mb_cli_names names; /* CLS.classes, or class0 .. */
    audio_meta meta;    /* CLS.audio */
    audio_set_opts so;  /* audio read at its rate and quantizer, every file used */
    int64_t L;          /* its window */
} acl_model;

/* The classifier CLS on ctx (a mamba-audio model with a head of two
 * classes or more), its names and audio settings; L > 0 another window (a
 * multiple of its pooling period), 0 its own (CLS.audio's window, else a
 * second rounded up to the period). -1 after an error line. */
int acl_model_load(mb_ctx *ctx, const char *path, int64_t L, acl_model *out);
void acl_model_free(acl_model *c);

/* ---- a clip's pooled vector and class -------------------------------------------- */

/* Clips files[0..n) of set read by the classifier m: each clip tiled by
 * windows of L samples (the last padded on the left with silence, as
 * training pads short clips), each window's mean final hidden state
 * through chunks, and the clip's vector the mean of its windows'. feat
 * (n, d_model) and probs (n, n_classes; the head on feat) may be NULL.
 * Probabilities that are not finite (a model whose numbers overflow) are
 * an error. A progress line on stderr when due ("PROG: what i/n clips,
 * ETA") and a stop on Ctrl-C or SIGTERM (-1 after its line). */
int acl_read_clips(mb_model *m, const audio_set *set, const int64_t *files, int64_t n, int64_t L, const char *what,
                   float *feat, float *probs);

/* ---- eval --metrics (audio_eval_metrics.c) ---------------------------------------- */

/* The metrics of the clips in folder gen against those in folder ref under
 * the classifier cls (stdout, and JSON to json when not NULL); seed: the
 * IS shuffle's and NDB's k-means; bins: NDB's. ref may instead be a .tsv
 * written by save_ref (when not NULL, ref a folder: the reference
 * folder's view, saved for later runs). The exit code. */
int audio_eval_metrics(const mb_cli_train *t, const char *cls, const char *gen, const char *ref, const char *save_ref,
                       const char *json, int64_t seed, int64_t bins);
/* Whether eval reads path as a saved reference (a name ending in .tsv that
 * is not a folder) rather than as audio. */
int audio_eval_ref_saved(const char *path);

#endif
