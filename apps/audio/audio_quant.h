/* 8-bit sample classes for mamba-audio: mu-law companding (the default,
 * as in WaveNet and SaShiMi) or uniform levels, and the unigram entropy of
 * a class histogram (the baseline a model's bits per sample must beat).
 *
 * Both share one grid in the coded domain: class c stands for the code
 * value 2c/255 - 1, so classes 0 and 255 are -1 and +1 and silence lands
 * on class 128 (the grid has no exact zero: 128 decodes to just above it). */
#ifndef AUDIO_QUANT_H
#define AUDIO_QUANT_H

#include <stdint.h>

#define AUDIO_NCLASS 256
#define AUDIO_MU 255
/* The class of a zero sample under either quantizer. */
#define AUDIO_SILENCE 128

typedef enum {
    AUDIO_Q_MULAW = 0, /* y = sign(x) ln(1 + mu|x|) / ln(1 + mu), then uniform */
    AUDIO_Q_LINEAR = 1 /* uniform on x itself */
} audio_quant;

/* x in [-1, 1] (clamped; NaN counts as 0) to a class 0..255, and back. */
uint8_t audio_mulaw_encode(float x);
float audio_mulaw_decode(uint8_t c);
uint8_t audio_linear_encode(float x);
float audio_linear_decode(uint8_t c);

uint8_t audio_encode(audio_quant q, float x);
float audio_decode(audio_quant q, uint8_t c);
void audio_encode_buf(audio_quant q, const float *x, int64_t n, uint8_t *out);
void audio_decode_buf(audio_quant q, const uint8_t *c, int64_t n, float *out);

/* "mulaw" / "linear" (the --quant values); -1 for anything else. */
int audio_quant_parse(const char *s, audio_quant *q);
const char *audio_quant_name(audio_quant q);

/* Adds the classes of c[0..n) to hist (not cleared first, so several
 * files can be counted into one histogram). */
void audio_hist_add(int64_t hist[AUDIO_NCLASS], const uint8_t *c, int64_t n);
/* -sum p log2 p over the non-empty classes: bits per sample of the best
 * model that ignores context. 0 for an empty histogram. */
double audio_entropy_bits(const int64_t hist[AUDIO_NCLASS]);

#endif
