/* Several sources behind one global record index, a name lookup, and the
 * chunked iterator. */
#include <stdlib.h>
#include <string.h>

#include "mb_cli.h"
#include "dna_seq.h"

typedef struct {
    const char *name;
    int64_t rec;
} name_ref;

struct dna_set {
    dna_src **src;
    int nsrc;
    int64_t *base; /* base[i] = global index of source i's first record; base[nsrc] = total */
    int64_t bases;
    name_ref *byname; /* every record, sorted by name then index */
};

static int cmp_name_ref(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return (x->rec > y->rec) - (x->rec < y->rec);
}

/* The source holding global record rec (binary search over base[]). */
static int src_of(const dna_set *set, int64_t rec)
{
    int lo = 0, hi = set->nsrc - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (set->base[mid] <= rec)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

dna_set *dna_set_open(const char *const *paths, int npaths, const dna_src_opts *o, char *err,
                      size_t errlen)
{
    if (npaths <= 0) {
        mb_cli_errf(err, errlen, "(inputs)", "no input files given");
        return NULL;
    }
    dna_set *set = calloc(1, sizeof *set);
    if (!set) goto oom;
    set->src = calloc((size_t)npaths, sizeof *set->src);
    set->base = calloc((size_t)npaths + 1, sizeof *set->base);
    if (!set->src || !set->base) goto oom;
    for (int i = 0; i < npaths; i++) {
        set->src[i] = dna_src_open(paths[i], o, err, errlen);
        if (!set->src[i]) goto fail;
        set->nsrc = i + 1;
        set->base[i + 1] = set->base[i] + dna_src_nrec(set->src[i]);
    }
    const int64_t n = set->base[npaths];
    set->byname = malloc((size_t)n * sizeof *set->byname);
    if (!set->byname) goto oom;
    for (int i = 0; i < npaths; i++)
        for (int64_t r = 0; r < dna_src_nrec(set->src[i]); r++) {
            name_ref *e = &set->byname[set->base[i] + r];
            e->name = dna_src_name(set->src[i], r);
            e->rec = set->base[i] + r;
            set->bases += dna_src_len(set->src[i], r);
        }
    qsort(set->byname, (size_t)n, sizeof *set->byname, cmp_name_ref);
    return set;

oom:
    mb_cli_errf(err, errlen, npaths > 0 ? paths[0] : "(inputs)", "out of memory");
fail:
    dna_set_close(set);
    return NULL;
}

void dna_set_close(dna_set *set)
{
    if (!set) return;
    for (int i = 0; i < set->nsrc; i++) dna_src_close(set->src[i]);
    free(set->src);
    free(set->base);
    free(set->byname);
    free(set);
}

int dna_set_nsrc(const dna_set *set) { return set->nsrc; }

dna_src *dna_set_src(const dna_set *set, int i)
{
    return (i >= 0 && i < set->nsrc) ? set->src[i] : NULL;
}

int64_t dna_set_nrec(const dna_set *set) { return set->base[set->nsrc]; }
int64_t dna_set_bases(const dna_set *set) { return set->bases; }

int dna_set_file_of(const dna_set *set, int64_t rec)
{
    if (rec < 0 || rec >= dna_set_nrec(set)) return -1;
    return src_of(set, rec);
}

const char *dna_set_name(const dna_set *set, int64_t rec)
{
    if (rec < 0 || rec >= dna_set_nrec(set)) return NULL;
    int i = src_of(set, rec);
    return dna_src_name(set->src[i], rec - set->base[i]);
}

int64_t dna_set_len(const dna_set *set, int64_t rec)
{
    if (rec < 0 || rec >= dna_set_nrec(set)) return -1;
    int i = src_of(set, rec);
    return dna_src_len(set->src[i], rec - set->base[i]);
}

int64_t dna_set_find(const dna_set *set, const char *name)
{
    /* first entry not below name; duplicates sit next to it */
    int64_t lo = 0, hi = dna_set_nrec(set);
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (strcmp(set->byname[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo >= dna_set_nrec(set) || strcmp(set->byname[lo].name, name) != 0) return -1;
    if (lo + 1 < dna_set_nrec(set) && strcmp(set->byname[lo + 1].name, name) == 0) return -2;
    return set->byname[lo].rec;
}

int dna_set_fetch(dna_set *set, int64_t rec, int64_t start, int64_t len, int32_t *out, char *err,
                  size_t errlen)
{
    if (rec < 0 || rec >= dna_set_nrec(set))
        return mb_cli_errf(err, errlen, "(inputs)", "no record %lld (there are %lld)",
                        (long long)rec, (long long)dna_set_nrec(set));
    int i = src_of(set, rec);
    return dna_src_fetch(set->src[i], rec - set->base[i], start, len, out, err, errlen);
}

/* ---- iterator ------------------------------------------------------------ */

void dna_iter_init(dna_iter *it, dna_set *set, const dna_ivals *iv, int64_t chunk)
{
    it->set = set;
    it->iv = iv;
    it->chunk = chunk > 0 ? chunk : 1;
    it->i = 0;
    it->pos = -1; /* not started: the first chunk of item i is still due */
}

int dna_iter_next(dna_iter *it, int32_t *tokens, dna_chunk *c, char *err, size_t errlen)
{
    const int64_t nitems = it->iv ? it->iv->n : dna_set_nrec(it->set);
    for (; it->i < nitems; it->i++, it->pos = -1) {
        int64_t rec, beg, end;
        if (it->iv) {
            rec = it->iv->v[it->i].rec;
            beg = it->iv->v[it->i].start;
            end = it->iv->v[it->i].end;
        } else {
            rec = it->i;
            beg = 0;
            end = dna_set_len(it->set, rec);
        }
        const int first = it->pos < 0;
        const int64_t at = first ? beg : it->pos;
        if (!first && at >= end) continue; /* this item is done */
        const int64_t n = end - at < it->chunk ? end - at : it->chunk;
        if (dna_set_fetch(it->set, rec, at, n, tokens, err, errlen)) return -1;
        c->rec = rec;
        c->start = at;
        c->len = n;
        c->first = first;
        c->last = at + n >= end;
        it->pos = at + n;
        return 1;
    }
    return 0;
}
