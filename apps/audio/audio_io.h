/* Audio files for mamba-audio: anything libsndfile reads (WAV, FLAC, Ogg
 * Vorbis, AIFF, ...) in as mono float at the model's rate; 16-bit PCM WAV
 * out.
 *
 * Errors: every call that can fail returns -1 and writes one line
 * "FILE: what" into (err, errlen) (err may be NULL). Nothing aborts and
 * nothing prints. */
#ifndef AUDIO_IO_H
#define AUDIO_IO_H

#include <stddef.h>
#include <stdint.h>

/* The model rate when none is given (SaShiMi's SC09 and the digits set). */
#define AUDIO_RATE_DEFAULT 16000

/* What the file held before mixing and resampling. */
typedef struct {
    int64_t frames; /* frames read (one sample per channel each) */
    int rate;       /* the file's sample rate, Hz */
    int channels;
} audio_src_info;

/* Reads the whole of `path` into a malloc'd array *out of *n samples:
 * mono (the mean of the channels), resampled to `rate` Hz with
 * libsamplerate's SRC_SINC_MEDIUM_QUALITY when the file's rate differs,
 * clamped to [-1, 1] (the sinc filter can overshoot a full-scale input).
 * The file is streamed in blocks through one resampler state, so only the
 * result is held in memory, never a second full-length copy. info may be
 * NULL. Fails (nothing allocated) when the file is missing or unreadable,
 * is not audio libsndfile knows, is truncated (fewer frames than its
 * header announces; for MP3, whose header announces none and whose count
 * libsndfile estimates, when decoding stops with an error before the end
 * of the stream), has no frames, holds a non-finite sample, or its rate
 * cannot be converted (libsamplerate takes ratios 1/256 to 256). */
int audio_read(const char *path, int rate, float **out, int64_t *n, audio_src_info *info, char *err,
               size_t errlen);

/* Called while a file is read, after each block: frames read so far and
 * the frames the header announces (an estimate for MP3; 0 when unknown).
 * Nonzero stops the read: audio_read_cb then fails with "FILE:
 * interrupted". For progress lines and Ctrl-C on long files. */
typedef int (*audio_read_fn)(void *ud, int64_t frames, int64_t total);
/* audio_read with fn (may be NULL) called as it goes. */
int audio_read_cb(const char *path, int rate, float **out, int64_t *n, audio_src_info *info, audio_read_fn fn,
                  void *ud, char *err, size_t errlen);

/* Writes x[0..n) as a mono 16-bit PCM WAV at `rate` Hz: samples clamped to
 * [-1, 1] (NaN written as 0) and rounded to x * 32767. The file is written
 * through mb_outfile: beside `path` under a temporary name, synced, and
 * renamed over `path` only when complete, so a failed write leaves any
 * earlier file as it was and nothing else behind. */
int audio_write_wav(const char *path, const float *x, int64_t n, int rate, char *err,
                    size_t errlen);

#endif
