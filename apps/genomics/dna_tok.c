/* Table-driven tokenizer: one load per base, no branches, so tokenizing a
 * 1 Mbp window costs far less than reading it. */
#include "dna_tok.h"

#define U DNA_TOK_UNK
#define A DNA_TOK_A
#define C DNA_TOK_C
#define G DNA_TOK_G
#define T DNA_TOK_T
#define N DNA_TOK_N

/* Written out in full (16 bytes a row) rather than built at start-up, so
 * that it is const, shared, and readable against an ASCII chart. */
const uint8_t dna_tok_table[256] = {
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, /* 0x00 */
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, /* 0x10 */
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, /* 0x20  !"#$%&'()*+,-./ */
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, /* 0x30 0-9:;<=>? */
    U, A, U, C, U, U, U, G, U, U, U, U, U, U, N, U, /* 0x40 @ABCDEFGHIJKLMNO */
    U, U, U, U, T, U, U, U, U, U, U, U, U, U, U, U, /* 0x50 PQRSTUVWXYZ[\]^_ */
    U, A, U, C, U, U, U, G, U, U, U, U, U, U, N, U, /* 0x60 `abcdefghijklmno */
    U, U, U, U, T, U, U, U, U, U, U, U, U, U, U, U, /* 0x70 pqrstuvwxyz{|}~ */
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, /* 0x80 */
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, /* 0xF0 */
};

#undef U
#undef A
#undef C
#undef G
#undef T
#undef N

void dna_tok_encode(const char *s, size_t n, int32_t *out)
{
    const unsigned char *b = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) out[i] = dna_tok_table[b[i]];
}

void dna_tok_encode_u8(const char *s, size_t n, uint8_t *out)
{
    const unsigned char *b = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) out[i] = dna_tok_table[b[i]];
}

/* A (7) <-> T (10) and C (8) <-> G (9) is t -> 17 - t on 7..10; every other
 * id maps to itself. */
int32_t dna_tok_complement(int32_t t)
{
    return (t >= DNA_TOK_A && t <= DNA_TOK_T) ? (DNA_TOK_A + DNA_TOK_T) - t : t;
}

void dna_tok_revcomp(int32_t *t, size_t n)
{
    if (n == 0) return;
    size_t i = 0, j = n - 1;
    while (i < j) {
        int32_t a = dna_tok_complement(t[i]);
        t[i] = dna_tok_complement(t[j]);
        t[j] = a;
        i++, j--;
    }
    if (i == j) t[i] = dna_tok_complement(t[i]); /* the middle of an odd length */
}

void dna_tok_revcomp_u8(uint8_t *t, size_t n)
{
    if (n == 0) return;
    size_t i = 0, j = n - 1;
    while (i < j) {
        uint8_t a = (uint8_t)dna_tok_complement(t[i]);
        t[i] = (uint8_t)dna_tok_complement(t[j]);
        t[j] = a;
        i++, j--;
    }
    if (i == j) t[i] = (uint8_t)dna_tok_complement(t[i]);
}

char dna_tok_char(int32_t t)
{
    switch (t) {
    case DNA_TOK_A: return 'A';
    case DNA_TOK_C: return 'C';
    case DNA_TOK_G: return 'G';
    case DNA_TOK_T: return 'T';
    case DNA_TOK_N: return 'N';
    default: return '?';
    }
}

const char *dna_tok_name(int32_t t)
{
    static const char *const names[DNA_TOK_VOCAB] = {
        "[CLS]", "[SEP]", "[BOS]", "[MASK]", "[PAD]", "[RESERVED]", "[UNK]",
        "A", "C", "G", "T", "N",
    };
    return (t >= 0 && t < DNA_TOK_VOCAB) ? names[t] : "[?]";
}

size_t dna_tok_count_n(const int32_t *t, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += (t[i] == DNA_TOK_N) | (t[i] == DNA_TOK_UNK);
    return c;
}
