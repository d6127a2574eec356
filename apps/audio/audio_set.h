/* A folder of audio as mamba-audio's training data: every file found
 * (recursively, in sorted order) read through audio_io.h, resampled to one
 * rate, quantized to 8-bit classes and kept in memory (one byte a sample:
 * an hour at 16 kHz is 58 MB); a train / validation split by file; random
 * training crops; fixed validation windows.
 *
 * Errors: calls that can fail return NULL or -1 and write one line
 * "FILE: what" into (err, errlen) (err may be NULL). */
#ifndef AUDIO_SET_H
#define AUDIO_SET_H

#include <stddef.h>
#include <stdint.h>

#include "audio_quant.h"

#define AUDIO_VAL_FRAC_DEFAULT 0.1

typedef enum { AUDIO_SPLIT_TRAIN = 0, AUDIO_SPLIT_VAL = 1 } audio_split;

/* Called as the files are read: file index (0-based) of nfiles, its path,
 * and the bytes read of all the files' bytes (the current file's share by
 * its frames read). Nonzero stops the load ("FILE: interrupted ..."). */
typedef int (*audio_set_progress_fn)(void *ud, int64_t file, int64_t nfiles, const char *path, double done_bytes,
                                     double total_bytes);

typedef struct {
    int rate;          /* Hz every file is resampled to (AUDIO_RATE_DEFAULT) */
    audio_quant quant; /* AUDIO_Q_MULAW */
    double val_frac;   /* share of files held out, in [0, 1] (0.1) */
    audio_set_progress_fn progress; /* NULL: none */
    void *progress_ud;
} audio_set_opts;

void audio_set_opts_default(audio_set_opts *o);

/* Called once per file (or sub-folder) that is skipped, with one line
 * "FILE: what" (the tool prints "mamba-audio: warning: " before it). */
typedef void (*audio_warn_fn)(const char *line, void *ud);

typedef struct audio_set audio_set;

/* Loads `path`: a folder, walked recursively with the entries of each
 * folder in byte order (so the file order, the split and the crops of a
 * seed do not depend on the file system or the locale), or a single file.
 * Names starting with '.' are left out (editor and OS droppings such as
 * .DS_Store); symbolic links are followed, but no folder or file is read
 * twice: folders and files are known by (device, inode), a link back to a
 * folder that holds it (a loop) is skipped with a warning, and a second
 * path to a folder or file already read (a link, a hard link) is skipped
 * with a warning, so the same audio is never in both splits. Every other
 * entry is tried as
 * audio: the ones that fail are reported through warn (may be NULL) and
 * skipped. Fails when `path` cannot be opened, or when no file could be
 * read: "DIR: no readable audio files (N skipped)", or when o->progress
 * asks to stop ("DIR: interrupted while reading FILE ..."). o may be NULL
 * (defaults).
 *
 * The split: a file is held out when a hash of its path relative to
 * `path` falls below val_frac, so the split depends only on the names
 * (adding a file never moves another one). With two files or more and
 * val_frac > 0, at least one file is held out and at least one trains
 * (the nearest to the threshold is moved when needed). A single file
 * trains, and the validation split is empty. */
audio_set *audio_set_load(const char *path, const audio_set_opts *o, audio_warn_fn warn, void *ud,
                          char *err, size_t errlen);
void audio_set_free(audio_set *s);

int audio_set_rate(const audio_set *s);
audio_quant audio_set_quant(const audio_set *s);
/* Files loaded (both splits), and files skipped with a warning. */
int64_t audio_set_nfiles(const audio_set *s);
int64_t audio_set_nskipped(const audio_set *s);
/* File i (0 <= i < nfiles, in walk order): its path as opened, its path
 * relative to the loaded folder, its samples (classes) and their count,
 * and its split. */
const char *audio_set_path(const audio_set *s, int64_t i);
const char *audio_set_relpath(const audio_set *s, int64_t i);
const uint8_t *audio_set_data(const audio_set *s, int64_t i);
int64_t audio_set_len(const audio_set *s, int64_t i);
audio_split audio_set_split_of(const audio_set *s, int64_t i);
/* Files and samples in one split. */
int64_t audio_set_split_files(const audio_set *s, audio_split split);
int64_t audio_set_samples(const audio_set *s, audio_split split);
/* Adds the class counts of one split to hist (for the unigram baseline:
 * audio_entropy_bits of the training histogram). */
void audio_set_hist(const audio_set *s, audio_split split, int64_t hist[AUDIO_NCLASS]);

/* ---- training crops ------------------------------------------------------ */

/* One random crop of len classes into out[0..len): a file of the split
 * drawn with probability proportional to its length (every sample of the
 * split equally likely to be picked), then a start uniform over the
 * positions where the crop fits. A file shorter than len is taken whole
 * and padded on the LEFT with AUDIO_SILENCE, so the crop still ends on
 * real audio and the model sees silence before the file begins, as in a
 * recording (nothing after the end is invented). file and start (either
 * may be NULL) receive the file drawn and the start (negative: the number
 * of padding samples, negated). -1 when the split is empty or len < 1. */
int audio_set_crop(const audio_set *s, audio_split split, int64_t len, uint64_t *rng, uint8_t *out,
                   int64_t *file, int64_t *start);

/* ---- fixed windows (validation, eval) ------------------------------------ */

typedef struct {
    int64_t file;  /* index in the set */
    int64_t start; /* first sample of the file in the window */
    int64_t n;     /* real samples in it; the window holds pad + n = len */
    int64_t pad;   /* silence classes before them (the last, short window) */
} audio_window;

/* The windows of length len that tile every file of the split in order
 * (file order, then start): [0, len), [len, 2 len), ..., the last one
 * shorter and padded on the left with silence; every sample is in exactly
 * one window, so the mean NLL over the real samples of all windows is the
 * split's NLL (each window without the context of the previous one). When
 * max > 0 and there are more windows than max, max of them evenly spread
 * over the list are kept. *out is malloc'd (NULL when *nw is 0). */
int audio_set_windows(const audio_set *s, audio_split split, int64_t len, int64_t max,
                      audio_window **out, int64_t *nw, char *err, size_t errlen);
/* The classes of one window into out[0..pad + n). */
void audio_set_window_fetch(const audio_set *s, const audio_window *w, uint8_t *out);

#endif
