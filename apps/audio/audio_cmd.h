/* mamba-audio's commands and what they share: the model's audio settings
 * (sample rate, quantizer) kept beside its checkpoint, loading a
 * mamba-audio checkpoint, a dataset with its warnings printed, and the NLL
 * of a model over fixed windows. Each command lives in audio_<cmd>.c and
 * returns the process exit code (0 ok, 1 failure, 2 usage). */
#ifndef AUDIO_CMD_H
#define AUDIO_CMD_H

#include <stdint.h>
#include <stdio.h>

#include "audio_io.h"
#include "audio_quant.h"
#include "audio_set.h"
#include "mamba.h"
#include "mb_cli.h"

#define AUDIO_PROG "mamba-audio"
#define AUDIO_DEFAULT_MODEL "mamba-audio.safetensors"

int audio_cmd_train(int argc, char **argv);
int audio_cmd_generate(int argc, char **argv);
int audio_cmd_eval(int argc, char **argv);
int audio_cmd_classify(int argc, char **argv);

/* What a waveform model needs besides its weights: written as MODEL.audio
 * ("rate 16000", "quant mulaw" lines, and for a classifier "window 16000")
 * when the model is saved. */
typedef struct {
    int rate;
    audio_quant quant;
    int64_t window; /* a classifier's window (its training --seq-len): how it reads clips; 0: none */
} audio_meta;

/* MODEL.audio into m (defaults 16 kHz mu-law when the file is missing);
 * -1 after an error line when it exists but does not parse. */
int audio_meta_read(const char *model, audio_meta *m);
/* MODEL.audio written to its temporary file, to be committed
 * (mb_cli_outfile_commit) once the model is saved; NULL after an error
 * line. */
mb_outfile *audio_meta_write(const char *model, const audio_meta *m);

/* The product of a U-Net's pooling factors, its pooling period: the
 * lengths it reads whole are multiples of it. */
int64_t audio_cmd_period(const mb_config *cfg);

/* The flags of a new U-Net and of its audio, shared by train and classify
 * train: --rate --quant (the audio) and --pool --pool-expand --mlp (the
 * U-Net; they set t->set_model). AUDIO_UNET_OPTIONS goes into a command's
 * option table; audio_cmd_unet_option handles option c: 0 not one of them,
 * 1 a U-Net flag taken, 2 an audio flag taken, -1 a bad value (its error
 * line printed). */
enum { AUDIO_O_RATE = 0x800, AUDIO_O_QUANT, AUDIO_O_POOL, AUDIO_O_PEXP, AUDIO_O_MLP };
#define AUDIO_UNET_OPTIONS                                                                                      \
    {"rate", 1, 0, AUDIO_O_RATE}, {"quant", 1, 0, AUDIO_O_QUANT}, {"pool", 1, 0, AUDIO_O_POOL},                \
        {"pool-expand", 1, 0, AUDIO_O_PEXP}, {"mlp", 0, 0, AUDIO_O_MLP}
int audio_cmd_unet_option(int c, const char *arg, mb_cli_train *t, audio_set_opts *so);

/* A mamba-audio checkpoint on ctx: refuses (one error line) what is not a
 * checkpoint or is another tool's model (not a SaShiMi U-Net of 256 classes).
 * n_classes > 0: as a classifier of that many classes (a head drawn from
 * seed added to a model without one; mb_model_load_classifier). */
mb_model *audio_cmd_load_model(mb_ctx *ctx, const char *path, int n_classes, uint64_t seed);

/* A folder (or one file) as a dataset; each skipped file is printed as
 * "mamba-audio: warning: FILE: what"; progress lines when the reading
 * takes long ("mamba-audio: reading DIR: file i/n NAME, % of the bytes,
 * ETA"); Ctrl-C or SIGTERM stops it. NULL after an error line (the caller
 * exits 130 when mb_cli_interrupted()). */
audio_set *audio_cmd_load_set(const char *path, const audio_set_opts *o);

/* Mean NLL in bits per sample of m over windows of L + 1 classes (input L,
 * next-sample targets; padding is not scored), B windows a forward pass
 * (the last pass padded with repeats). -1 after an error line. With pg
 * (eval), a progress line when due ("mamba-audio eval: windows i/n, ETA")
 * and a stop on Ctrl-C or SIGTERM (-1 after its line; mb_cli_interrupted()
 * tells it apart). */
int audio_cmd_nll(mb_model *m, const audio_set *set, const audio_window *w, int64_t nw, int64_t B, int64_t L,
                  double *bits, int64_t *count, mb_cli_progress *pg);

/* Bits per sample of the samples counted in `eval` under the unigram
 * distribution of `fit` (add-one smoothing): the baseline to beat. */
double audio_cmd_unigram_bits(const int64_t fit[AUDIO_NCLASS], const int64_t eval[AUDIO_NCLASS]);

#endif
