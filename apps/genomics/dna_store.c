#include "dna_store.h"

#include <stdlib.h>
#include <string.h>

/* p (elements of size sz, capacity *cap) grown to hold at least need
 * elements, doubling so that n appends cost O(n): the new pointer, or NULL
 * when out of memory (p is then still valid and *cap unchanged). need must
 * be at least 1. */
static void *grow(void *p, int64_t *cap, int64_t need, size_t sz)
{
    if (need <= *cap) return p;
    int64_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > INT64_MAX / 2) return NULL;
        c *= 2;
    }
    if ((uint64_t)c > SIZE_MAX / sz) return NULL;
    void *q = realloc(p, (size_t)c * sz);
    if (q) *cap = c;
    return q;
}

static int grow_records(dna_store *st)
{
    if (st->nrec < st->reccap) return 0;
    if (st->reccap > INT64_MAX / 2 / (int64_t)sizeof(int64_t)) return -1;
    int64_t cap = st->reccap ? st->reccap * 2 : 64;
    size_t bytes = (size_t)cap * sizeof(int64_t);
    /* reccap moves only once all three have grown: after a failure the ones
     * that did grow are merely larger than needed */
    int64_t *off = realloc(st->off, bytes);
    if (!off) return -1;
    st->off = off;
    int64_t *len = realloc(st->len, bytes);
    if (!len) return -1;
    st->len = len;
    int64_t *no = realloc(st->nameoff, bytes);
    if (!no) return -1;
    st->nameoff = no;
    st->reccap = cap;
    return 0;
}

int dna_store_begin(dna_store *st, const char *name, size_t namelen)
{
    if (grow_records(st)) return -1;
    char *names = grow(st->names, &st->namecap, st->nnames + (int64_t)namelen + 1, 1);
    if (!names) return -1;
    st->names = names;
    memcpy(st->names + st->nnames, name, namelen);
    st->names[st->nnames + (int64_t)namelen] = '\0';
    st->nameoff[st->nrec] = st->nnames;
    st->nnames += (int64_t)namelen + 1;
    st->off[st->nrec] = st->ntok;
    st->len[st->nrec] = 0;
    st->nrec++;
    return 0;
}

uint8_t *dna_store_reserve(dna_store *st, int64_t n)
{
    if (n < 0 || st->ntok > INT64_MAX - n) return NULL;
    /* at least one byte, so that the pointer is never NULL + 0 */
    uint8_t *tok = grow(st->tok, &st->tokcap, st->ntok + (n ? n : 1), 1);
    if (!tok) return NULL;
    st->tok = tok;
    return tok + st->ntok;
}

void dna_store_commit(dna_store *st, int64_t n)
{
    st->ntok += n;
    st->len[st->nrec - 1] += n;
}

void dna_store_shrink(dna_store *st)
{
    /* realloc to a smaller size may fail: then keeping the larger block is
     * fine */
    if (st->ntok > 0 && st->ntok < st->tokcap) {
        uint8_t *t = realloc(st->tok, (size_t)st->ntok);
        if (t) st->tok = t, st->tokcap = st->ntok;
    }
    if (st->nnames > 0 && st->nnames < st->namecap) {
        char *c = realloc(st->names, (size_t)st->nnames);
        if (c) st->names = c, st->namecap = st->nnames;
    }
}

void dna_store_free(dna_store *st)
{
    free(st->tok);
    free(st->names);
    free(st->off);
    free(st->len);
    free(st->nameoff);
    memset(st, 0, sizeof *st);
}
