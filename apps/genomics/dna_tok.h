/* The HyenaDNA / Caduceus character tokenizer, so that checkpoints trained
 * here and there agree on what each id means:
 *
 *   0 [CLS]  1 [SEP]  2 [BOS]  3 [MASK]  4 [PAD]  5 [RESERVED]  6 [UNK]
 *   7 A  8 C  9 G  10 T  11 N
 *
 * Lower case is folded to upper case (soft-masked repeats are still bases);
 * every other byte, IUPAC ambiguity letters (R, Y, ...) included, is [UNK].
 * The vocabulary has 12 ids; the model pads its embedding to 16 rows
 * (DNA_TOK_VOCAB_PADDED) for aligned GEMMs. */
#ifndef DNA_TOK_H
#define DNA_TOK_H

#include <stddef.h>
#include <stdint.h>

enum {
    DNA_TOK_CLS = 0,
    DNA_TOK_SEP = 1,
    DNA_TOK_BOS = 2,
    DNA_TOK_MASK = 3,
    DNA_TOK_PAD = 4,
    DNA_TOK_RESERVED = 5,
    DNA_TOK_UNK = 6,
    DNA_TOK_A = 7,
    DNA_TOK_C = 8,
    DNA_TOK_G = 9,
    DNA_TOK_T = 10,
    DNA_TOK_N = 11,
    DNA_TOK_VOCAB = 12,
    DNA_TOK_VOCAB_PADDED = 16
};

/* Byte -> token id, for all 256 byte values. */
extern const uint8_t dna_tok_table[256];

static inline int32_t dna_tok_byte(unsigned char c) { return dna_tok_table[c]; }

/* Encodes n bytes of s into out[0..n) (int32, what the model takes; the
 * u8 form is for storing whole genomes at one byte per base). */
void dna_tok_encode(const char *s, size_t n, int32_t *out);
void dna_tok_encode_u8(const char *s, size_t n, uint8_t *out);

/* The complement of a token: A <-> T, C <-> G; every other id its own. */
int32_t dna_tok_complement(int32_t t);
/* Reverse complement in place: the order is reversed and A<->T, C<->G;
 * N, [UNK] and the specials keep their id. Applying it twice is the
 * identity. */
void dna_tok_revcomp(int32_t *t, size_t n);
void dna_tok_revcomp_u8(uint8_t *t, size_t n);

/* 'A' 'C' 'G' 'T' 'N' for base ids, '?' for anything else (for messages
 * and for writing sequences back out). */
char dna_tok_char(int32_t t);
/* "A" ... "N", "[CLS]" ... "[UNK]", or "[?]" for an id outside the vocab. */
const char *dna_tok_name(int32_t t);

/* How many of t[0..n) are N or [UNK]: windows that are mostly unknown bases
 * carry no signal and are skipped by the samplers. */
size_t dna_tok_count_n(const int32_t *t, size_t n);

#endif
