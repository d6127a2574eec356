/* Masked-language-model inputs for pretraining a bidirectional DNA model
 * (Caduceus; BERT's rules): each eligible position of a window is chosen
 * with probability `rate`; a chosen position's input becomes [MASK] with
 * probability p_mask, a random base (A, C, G or T, uniform) with p_random,
 * and keeps its base otherwise; its target is the original token. Every
 * other target is MB_IGNORE_INDEX, so the loss covers the chosen positions
 * only. Eligible: the bases A, C, G, T and N (N is a token of the
 * vocabulary like the others, as in Caduceus' tokenizer); never a special
 * token or [UNK].
 *
 * The draws come from the caller's splitmix64 stream (mb_cli_rng.h), three
 * a position whatever it holds: a window's mask is a function of its
 * stream and positions alone, so a seed replays a run, validation windows
 * keep one mask for the whole run, and a variant's window is masked alike
 * with either allele. */
#ifndef DNA_MLM_H
#define DNA_MLM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double rate;     /* fraction of eligible positions chosen */
    double p_mask;   /* of those, the input becomes [MASK] */
    double p_random; /* of those, the input becomes a random base; the rest keep theirs */
} dna_mlm_rules;

/* 15%: 80% [MASK], 10% random base, 10% kept */
#define DNA_MLM_RULES_DEFAULT ((dna_mlm_rules){0.15, 0.8, 0.1})

/* in[0..n) -> tok (the model's input) and tgt (the targets); tok may be
 * in. Returns how many positions were chosen. */
int64_t dna_mlm_mask(const dna_mlm_rules *r, uint64_t *rng, const int32_t *in, int64_t n, int32_t *tok,
                     int32_t *tgt);

/* 0, or -1 with a one-line reason in err: rates in [0, 1], p_mask +
 * p_random <= 1 */
int dna_mlm_rules_check(const dna_mlm_rules *r, char *err, size_t errsz);

#endif
