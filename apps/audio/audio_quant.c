#include "audio_quant.h"

#include <math.h>
#include <string.h>

/* Code value y in [-1, 1] to its class: round((y + 1) / 2 * 255), the
 * formula of WaveNet and SaShiMi (floor of that plus 1/2). */
static uint8_t code_to_class(double y)
{
    double c = floor((y + 1.0) * 0.5 * AUDIO_MU + 0.5);
    return (uint8_t)(c < 0 ? 0 : c > AUDIO_MU ? AUDIO_MU : c);
}

static double class_to_code(uint8_t c) { return 2.0 * c / AUDIO_MU - 1.0; }

static double clamp_sample(float x)
{
    if (isnan(x)) return 0.0;
    return x > 1.0f ? 1.0 : x < -1.0f ? -1.0 : (double)x;
}

uint8_t audio_mulaw_encode(float x)
{
    double v = clamp_sample(x);
    /* double: the round trip encode(decode(c)) == c then holds exactly */
    double y = copysign(log1p(AUDIO_MU * fabs(v)) / log1p(AUDIO_MU), v);
    return code_to_class(y);
}

float audio_mulaw_decode(uint8_t c)
{
    double y = class_to_code(c);
    /* (1 + mu)^|y| - 1, through expm1 for accuracy near silence */
    return (float)copysign(expm1(fabs(y) * log1p(AUDIO_MU)) / AUDIO_MU, y);
}

uint8_t audio_linear_encode(float x) { return code_to_class(clamp_sample(x)); }

float audio_linear_decode(uint8_t c) { return (float)class_to_code(c); }

uint8_t audio_encode(audio_quant q, float x)
{
    return q == AUDIO_Q_LINEAR ? audio_linear_encode(x) : audio_mulaw_encode(x);
}

float audio_decode(audio_quant q, uint8_t c)
{
    return q == AUDIO_Q_LINEAR ? audio_linear_decode(c) : audio_mulaw_decode(c);
}

void audio_encode_buf(audio_quant q, const float *x, int64_t n, uint8_t *out)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = audio_encode(q, x[i]);
}

void audio_decode_buf(audio_quant q, const uint8_t *c, int64_t n, float *out)
{
    /* a table: decoding is per generated sample, keep it cheap */
    float t[AUDIO_NCLASS];
    for (int k = 0; k < AUDIO_NCLASS; k++)
        t[k] = audio_decode(q, (uint8_t)k);
    for (int64_t i = 0; i < n; i++)
        out[i] = t[c[i]];
}

int audio_quant_parse(const char *s, audio_quant *q)
{
    if (!s) return -1;
    if (strcmp(s, "mulaw") == 0 || strcmp(s, "mu-law") == 0) {
        *q = AUDIO_Q_MULAW;
        return 0;
    }
    if (strcmp(s, "linear") == 0) {
        *q = AUDIO_Q_LINEAR;
        return 0;
    }
    return -1;
}

const char *audio_quant_name(audio_quant q) { return q == AUDIO_Q_LINEAR ? "linear" : "mulaw"; }

void audio_hist_add(int64_t hist[AUDIO_NCLASS], const uint8_t *c, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        hist[c[i]]++;
}

double audio_entropy_bits(const int64_t hist[AUDIO_NCLASS])
{
    double total = 0;
    for (int k = 0; k < AUDIO_NCLASS; k++)
        total += (double)hist[k];
    if (total <= 0) return 0.0;
    double h = 0;
    for (int k = 0; k < AUDIO_NCLASS; k++) {
        if (hist[k] <= 0) continue;
        double p = (double)hist[k] / total;
        h -= p * log2(p);
    }
    return h;
}
