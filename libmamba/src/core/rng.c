#include <math.h>

#include "core/core.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void mb_rng_seed(mb_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mb_rng_u64(mb_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mb_rng_uniform(mb_rng *r) { return (double)(mb_rng_u64(r) >> 11) * 0x1.0p-53; }

double mb_rng_normal(mb_rng *r)
{
    /* Box-Muller without caching the second value: the stream then depends
     * only on how many normals were drawn, never on call parity. */
    double u1 = 1.0 - mb_rng_uniform(r); /* (0, 1] so log() is finite */
    double u2 = mb_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint32_t mb_rng_below(mb_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection: exact for any n. */
    uint64_t m = (uint64_t)(uint32_t)(mb_rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (lo < t) {
            m = (uint64_t)(uint32_t)(mb_rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}
