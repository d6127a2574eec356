#include "audio_io.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <samplerate.h>
#include <sndfile.h>

#include "mb_cli.h"

/* Frames per read: small enough for the stack-free buffers to stay in
 * cache, large enough that the per-call costs vanish. */
#define BLOCK 4096

/* ---- reading ------------------------------------------------------------- */

/* libsndfile quietly shortens a WAV or AIFF whose data chunk announces more
 * bytes than the file holds (it reads what is there and notes
 * "data : 16000 (should be 2000)" in its log), so sf_info.frames cannot
 * tell a cut file from a whole one. The log is the only place that says
 * so; only the audio chunk's line counts (a wrong RIFF size alone, common
 * in files of some writers, loses no audio). */
static int header_says_truncated(SNDFILE *f)
{
    char log[4096];
    if (sf_command(f, SFC_GET_LOG_INFO, log, (int)sizeof log) <= 0) return 0;
    log[sizeof log - 1] = '\0';
    for (const char *line = log; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        int audio_chunk =
            (len >= 4 && (strncmp(line, "data", 4) == 0 || strncmp(line, "SSND", 4) == 0));
        if (audio_chunk) {
            for (size_t i = 0; i + 9 <= len; i++)
                if (memcmp(line + i, "should be", 9) == 0) return 1;
        }
        line = end ? end + 1 : NULL;
    }
    return 0;
}

/* Whether sf_info.frames is an estimate rather than a count the file
 * states: an MPEG stream (MP3) has no frame count in its header, and
 * libsndfile derives one from the file's size and the bit rate (15042 for
 * a complete sox MP3 that decodes to 14976). For those, decoding to the
 * end of the stream without an error is the test of a whole file; a
 * shortfall against the estimate is not a cut. WAV, FLAC, Ogg and AIFF
 * state their length, and a shortfall there is real truncation. */
static int frames_estimated(const SF_INFO *si)
{
    const int mpeg = 0x230000; /* SF_FORMAT_MPEG (libsndfile 1.1+), an enum older headers lack */
    return (si->format & SF_FORMAT_TYPEMASK) == mpeg;
}

/* Growable output of the reader. */
typedef struct {
    float *x;
    int64_t n, cap;
} fbuf;

static int fbuf_reserve(fbuf *b, int64_t extra)
{
    if (b->n + extra <= b->cap) return 0;
    int64_t cap = b->cap ? b->cap : BLOCK;
    while (cap < b->n + extra)
        cap *= 2;
    float *x = realloc(b->x, (size_t)cap * sizeof *x);
    if (!x) return -1;
    b->x = x;
    b->cap = cap;
    return 0;
}

/* Runs `in` (nin mono frames; end set on the last call) through the
 * resampler into b, making room until the resampler has taken all input
 * and, at the end, until it has nothing left to give. */
static int resample_into(SRC_STATE *st, double ratio, const float *in, long nin, int end, fbuf *b,
                         const char *path, char *err, size_t errlen)
{
    for (;;) {
        /* room for this input at the ratio, plus the filter's tail */
        if (fbuf_reserve(b, (int64_t)ceil((double)nin * ratio) + 256) != 0)
            return mb_cli_errf(err, errlen, path, "out of memory");
        SRC_DATA d;
        memset(&d, 0, sizeof d);
        d.data_in = in;
        d.input_frames = nin;
        d.data_out = b->x + b->n;
        d.output_frames = (long)(b->cap - b->n);
        d.end_of_input = end;
        d.src_ratio = ratio;
        int rc = src_process(st, &d);
        if (rc != 0)
            return mb_cli_errf(err, errlen, path, "resampling failed (%s)", src_strerror(rc));
        if (nin > 0 && d.input_frames_used == 0 && d.output_frames_gen == 0)
            return mb_cli_errf(err, errlen, path, "resampling made no progress");
        b->n += d.output_frames_gen;
        in += d.input_frames_used;
        nin -= d.input_frames_used;
        if (nin > 0) continue; /* output was full: more room, same input */
        if (!end || d.output_frames_gen == 0) return 0;
        /* at the end, keep draining until the filter is empty */
    }
}

int audio_read(const char *path, int rate, float **out, int64_t *n, audio_src_info *info, char *err,
               size_t errlen)
{
    return audio_read_cb(path, rate, out, n, info, NULL, NULL, err, errlen);
}

int audio_read_cb(const char *path, int rate, float **out, int64_t *n, audio_src_info *info, audio_read_fn fn,
                  void *ud, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (rate <= 0) return mb_cli_errf(err, errlen, path, "bad target rate %d Hz", rate);

    SF_INFO si;
    memset(&si, 0, sizeof si);
    SNDFILE *f = sf_open(path, SFM_READ, &si);
    if (!f) {
        int e = sf_error(NULL);
        if (e == SF_ERR_UNRECOGNISED_FORMAT || e == SF_ERR_MALFORMED_FILE ||
            e == SF_ERR_UNSUPPORTED_ENCODING)
            return mb_cli_errf(err, errlen, path, "not an audio file libsndfile can read (%s)",
                              sf_strerror(NULL));
        return mb_cli_errf(err, errlen, path, "cannot read (%s)", sf_strerror(NULL));
    }

    int rc = -1;
    float *inter = NULL, *mono = NULL;
    SRC_STATE *st = NULL;
    fbuf b = {0};

    if (si.channels <= 0 || si.samplerate <= 0) {
        mb_cli_errf(err, errlen, path, "bad header (%d channels at %d Hz)", si.channels,
                   si.samplerate);
        goto done;
    }
    if (header_says_truncated(f)) {
        mb_cli_errf(err, errlen, path,
                   "truncated: the header announces more audio than the file holds");
        goto done;
    }
    if (si.frames == 0) {
        mb_cli_errf(err, errlen, path, "no audio (zero frames)");
        goto done;
    }
    const double ratio = (double)rate / (double)si.samplerate;
    const int same = si.samplerate == rate;
    if (!same && !src_is_valid_ratio(ratio)) {
        mb_cli_errf(err, errlen, path, "cannot resample %d Hz to %d Hz (ratio out of range)",
                   si.samplerate, rate);
        goto done;
    }
    inter = malloc((size_t)BLOCK * (size_t)si.channels * sizeof *inter);
    mono = malloc((size_t)BLOCK * sizeof *mono);
    if (!inter || !mono) {
        mb_cli_errf(err, errlen, path, "out of memory");
        goto done;
    }
    if (!same) {
        int e = 0;
        st = src_new(SRC_SINC_MEDIUM_QUALITY, 1, &e);
        if (!st) {
            mb_cli_errf(err, errlen, path, "cannot start the resampler (%s)", src_strerror(e));
            goto done;
        }
    }
    /* One allocation of about the final size when the header knows it
     * (SF_COUNT_MAX or 0 mean it does not, for some streamed formats). */
    if (si.frames > 0 && si.frames < SF_COUNT_MAX / 2 &&
        fbuf_reserve(&b, (int64_t)ceil((double)si.frames * ratio) + 256) != 0) {
        mb_cli_errf(err, errlen, path, "out of memory");
        goto done;
    }

    int64_t frames = 0;
    for (;;) {
        sf_count_t got = sf_readf_float(f, inter, BLOCK);
        if (got <= 0) break;
        for (sf_count_t i = 0; i < got; i++) {
            double s = 0;
            for (int c = 0; c < si.channels; c++)
                s += inter[i * si.channels + c];
            s /= si.channels;
            if (!isfinite(s)) {
                mb_cli_errf(err, errlen, path, "non-finite sample at frame %lld",
                           (long long)(frames + i));
                goto done;
            }
            mono[i] = (float)s;
        }
        frames += got;
        if (fn && fn(ud, frames, si.frames > 0 && si.frames < SF_COUNT_MAX ? (int64_t)si.frames : 0)) {
            mb_cli_errf(err, errlen, path, "interrupted after %lld frames", (long long)frames);
            goto done;
        }
        if (same) {
            if (fbuf_reserve(&b, got) != 0) {
                mb_cli_errf(err, errlen, path, "out of memory");
                goto done;
            }
            memcpy(b.x + b.n, mono, (size_t)got * sizeof *mono);
            b.n += got;
        } else if (resample_into(st, ratio, mono, (long)got, 0, &b, path, err, errlen) != 0) {
            goto done;
        }
    }
    if (sf_error(f) != SF_ERR_NO_ERROR) {
        mb_cli_errf(err, errlen, path,
                   "corrupt or truncated: decoding stopped after %lld frames (%s)",
                   (long long)frames, sf_strerror(f));
        goto done;
    }
    if (si.frames > 0 && si.frames < SF_COUNT_MAX && frames < si.frames && !frames_estimated(&si)) {
        mb_cli_errf(err, errlen, path, "truncated: %lld of the %lld frames the header announces",
                   (long long)frames, (long long)si.frames);
        goto done;
    }
    if (frames == 0) {
        mb_cli_errf(err, errlen, path, "no audio (zero frames)");
        goto done;
    }
    if (!same && resample_into(st, ratio, mono, 0, 1, &b, path, err, errlen) != 0) goto done;
    if (b.n == 0) {
        mb_cli_errf(err, errlen, path, "no audio left after resampling %lld frames to %d Hz",
                   (long long)frames, rate);
        goto done;
    }
    for (int64_t i = 0; i < b.n; i++)
        b.x[i] = b.x[i] > 1.0f ? 1.0f : b.x[i] < -1.0f ? -1.0f : b.x[i];
    if (info) {
        info->frames = frames;
        info->rate = si.samplerate;
        info->channels = si.channels;
    }
    *out = b.x;
    *n = b.n;
    b.x = NULL;
    rc = 0;
done:
    free(b.x);
    free(inter);
    free(mono);
    if (st) src_delete(st);
    sf_close(f); /* read-only: nothing to lose if it fails */
    return rc;
}

/* ---- writing ------------------------------------------------------------- */

/* Through the library's mb_outfile (a temporary file beside path, renamed
 * over it when complete); its errors, which name the path, are handed back
 * in err like every error of this layer (for the tool to print, and for the
 * tests to check). */
static int wav_lib_error(char *err, size_t errlen)
{
    if (err && errlen) snprintf(err, errlen, "%s", mb_error_last());
    return -1;
}

int audio_write_wav(const char *path, const float *x, int64_t n, int rate, char *err, size_t errlen)
{
    if (rate <= 0) return mb_cli_errf(err, errlen, path, "bad sample rate %d Hz", rate);
    if (n < 0 || (x == NULL && n > 0)) return mb_cli_errf(err, errlen, path, "bad sample count");
    /* RIFF sizes are 32-bit: 2 bytes a sample plus the header must fit */
    if (n > (int64_t)((UINT32_MAX - 1024) / 2))
        return mb_cli_errf(err, errlen, path, "%lld samples are too many for a WAV file",
                          (long long)n);

    mb_outfile *o = mb_outfile_open(path);
    if (!o) return wav_lib_error(err, errlen);
    SF_INFO si;
    memset(&si, 0, sizeof si);
    si.samplerate = rate;
    si.channels = 1;
    si.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
    /* close_desc false: the descriptor stays the outfile's, synced and
     * closed by mb_outfile_commit */
    SNDFILE *f = sf_open_fd(mb_outfile_fd(o), SFM_WRITE, &si, SF_FALSE);
    if (!f) {
        mb_cli_errf(err, errlen, path, "cannot write a WAV (%s)", sf_strerror(NULL));
        mb_outfile_discard(o);
        return -1;
    }
    /* Our own conversion to 16 bits (not libsndfile's float path), so the
     * scale, the rounding and the clamping are the ones documented. */
    short buf[BLOCK];
    for (int64_t i = 0; i < n;) {
        int64_t k = n - i < BLOCK ? n - i : BLOCK;
        for (int64_t j = 0; j < k; j++) {
            float v = x[i + j];
            v = isnan(v) ? 0.0f : v > 1.0f ? 1.0f : v < -1.0f ? -1.0f : v;
            buf[j] = (short)lrintf(v * 32767.0f);
        }
        if (sf_write_short(f, buf, (sf_count_t)k) != (sf_count_t)k) {
            mb_cli_errf(err, errlen, path, "write error (%s)", sf_strerror(f));
            sf_close(f);
            mb_outfile_discard(o);
            return -1;
        }
        i += k;
    }
    /* sf_close writes the final chunk sizes into the header */
    const int e = sf_close(f);
    if (e != 0) {
        mb_cli_errf(err, errlen, path, "write error (%s)", sf_error_number(e));
        mb_outfile_discard(o);
        return -1;
    }
    return mb_outfile_commit(o) ? wav_lib_error(err, errlen) : 0;
}
