/* In-memory records (streamed FASTA, reads): all tokens back to back at one
 * byte a base, names back to back, and per-record offsets. One allocation
 * per array rather than per record, so millions of short reads cost about
 * their bases and names plus 24 bytes each. Internal to mb_dna. */
#ifndef DNA_STORE_H
#define DNA_STORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *tok;
    int64_t ntok, tokcap;
    char *names;
    int64_t nnames, namecap;
    int64_t *off;     /* first token of each record in tok */
    int64_t *len;     /* its length */
    int64_t *nameoff; /* its name in names */
    int64_t nrec, reccap;
} dna_store;

/* Starts a new record named by name[0..namelen). -1 when out of memory. */
int dna_store_begin(dna_store *st, const char *name, size_t namelen);
/* Room for n more tokens of the current record; returns where to write
 * them (then call dna_store_commit), or NULL when out of memory. */
uint8_t *dna_store_reserve(dna_store *st, int64_t n);
void dna_store_commit(dna_store *st, int64_t n);
/* Gives back the slack of the growth doubling once loading is over. */
void dna_store_shrink(dna_store *st);
void dna_store_free(dna_store *st);

static inline const char *dna_store_name(const dna_store *st, int64_t rec)
{
    return st->names + st->nameoff[rec];
}

#endif
