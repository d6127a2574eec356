/* Random numbers for data order: see mb_cli_rng.h. */
#include "mb_cli_rng.h"

uint64_t mb_cli_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t mb_cli_rng_below(uint64_t *state, uint64_t n)
{
    if (n <= 1) return 0;
    /* values below 2^64 mod n would make the low residues more likely:
     * draw again (probability < n / 2^64) */
    const uint64_t reject_below = (0 - n) % n;
    uint64_t x;
    do x = mb_cli_rng_next(state);
    while (x < reject_below);
    return x % n;
}

uint64_t mb_cli_rng_step(int64_t seed, int64_t step)
{
    uint64_t st = (uint64_t)seed * 0x9e3779b97f4a7c15ULL + (uint64_t)step;
    mb_cli_rng_next(&st);
    return st;
}

uint64_t mb_cli_rng_row(int64_t seed, int64_t step, int64_t row)
{
    uint64_t st = mb_cli_rng_step(seed, step);
    /* a second splitmix round over (step stream, row): rows get unrelated
     * streams, and neighbouring steps' rows do not overlap */
    st ^= (uint64_t)row * 0xd1b54a32d192ed03ULL;
    mb_cli_rng_next(&st);
    return st;
}

uint64_t mb_cli_fnv(uint64_t h, const void *p, size_t n)
{
    for (const unsigned char *c = p, *e = c + n; c < e; c++) {
        h ^= *c;
        h *= 0x100000001B3ull;
    }
    return h;
}
