/* Random numbers for data order.
 *
 * splitmix64: one uint64_t of state, every seed (0 included) is fine, and
 * the stream is the same on every platform, so a seed replays the windows
 * and crops of a run. */
#ifndef MB_CLI_RNG_H
#define MB_CLI_RNG_H

#include <stddef.h>
#include <stdint.h>

uint64_t mb_cli_rng_next(uint64_t *state);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t mb_cli_rng_below(uint64_t *state, uint64_t n);
/* The generator state of row `row` of step `step`'s batch: each row has a
 * stream of its own, so the global batch is a function of (seed, step),
 * the same for a resumed run and for any number of ranks, and a rank draws
 * (and reads) only its own rows. */
uint64_t mb_cli_rng_row(int64_t seed, int64_t step, int64_t row);
/* One stream for the whole of step `step`'s batch, for trainers that draw
 * their rows in order on one process (dna classify train). */
uint64_t mb_cli_rng_step(int64_t seed, int64_t step);

/* FNV-1a 64 over n bytes, continuing from h (MB_CLI_FNV_START for a new
 * hash): the same on every platform. Not spread in its top bits for short,
 * similar inputs: pass it through mb_cli_rng_next where that matters. */
#define MB_CLI_FNV_START 0xCBF29CE484222325ull
uint64_t mb_cli_fnv(uint64_t h, const void *p, size_t n);

#endif
