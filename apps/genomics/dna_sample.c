/* Random training windows over an interval list, and the small generator
 * behind them (libmamba's own is internal to the library). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mb_cli.h"
#include "dna_seq.h"
#include "dna_tok.h"

/* The inputs of a set, to start a message with: the first file's path,
 * and how many more there are ("a.fa (and 3 more files)"). */
static const char *set_label(const dna_set *set, char *buf, size_t n)
{
    const dna_src *src = dna_set_nsrc(set) > 0 ? dna_set_src(set, 0) : NULL;
    const char *first = src ? dna_src_path(src) : "the inputs";
    if (dna_set_nsrc(set) > 1) snprintf(buf, n, "%s (and %d more files)", first, dna_set_nsrc(set) - 1);
    else snprintf(buf, n, "%s", first);
    return buf;
}

/* The file a record comes from, to start a message with. */
static const char *path_of(const dna_set *set, int64_t rec, char *buf, size_t n)
{
    const dna_src *src = dna_set_src(set, dna_set_file_of(set, rec));
    return src ? dna_src_path(src) : set_label(set, buf, n);
}

struct dna_sampler {
    dna_set *set;
    int64_t len;
    int64_t n;        /* intervals that hold a window */
    dna_ival *iv;     /* those intervals */
    uint64_t *cum;    /* cum[i] = window starts in iv[0..i] */
    uint64_t total;   /* = cum[n - 1] */
};

void dna_sampler_free(dna_sampler *sm)
{
    if (!sm) return;
    free(sm->iv);
    free(sm->cum);
    free(sm);
}

dna_sampler *dna_sampler_create(dna_set *set, const dna_ivals *iv, int64_t len, char *err,
                                size_t errlen)
{
    char label[512];
    if (len <= 0) {
        mb_cli_errf(err, errlen, set_label(set, label, sizeof label), "window length %lld must be positive",
                    (long long)len);
        return NULL;
    }
    if (iv->n == 0) {
        mb_cli_errf(err, errlen, set_label(set, label, sizeof label),
                    "no bases to draw windows from: this part of the split is empty");
        return NULL;
    }
    dna_sampler *sm = calloc(1, sizeof *sm);
    if (!sm) goto oom;
    sm->set = set;
    sm->len = len;
    sm->iv = malloc((size_t)iv->n * sizeof *sm->iv);
    sm->cum = malloc((size_t)iv->n * sizeof *sm->cum);
    if (!sm->iv || !sm->cum) goto oom;
    uint64_t total = 0;
    for (int64_t i = 0; i < iv->n; i++) {
        const int64_t ilen = iv->v[i].end - iv->v[i].start;
        if (ilen < len) continue;
        total += (uint64_t)(ilen - len + 1);
        sm->iv[sm->n] = iv->v[i];
        sm->cum[sm->n] = total;
        sm->n++;
    }
    if (sm->n == 0) {
        int64_t at;
        const int64_t longest = dna_ivals_longest(iv, &at);
        const dna_ival *l = &iv->v[at];
        /* (not "hold out more": that shrinks the training part's intervals,
         * and this sampler may be drawing from it) */
        mb_cli_errf(err, errlen, path_of(set, l->rec, label, sizeof label),
                 "no window of %lld bases fits: the longest interval is %lld bases "
                 "(%s:%lld-%lld); use a shorter --seq-len",
                 (long long)len, (long long)longest, dna_set_name(set, l->rec),
                 (long long)l->start, (long long)l->end);
        dna_sampler_free(sm);
        return NULL;
    }
    sm->total = total;
    return sm;
oom:
    dna_sampler_free(sm);
    mb_cli_errf(err, errlen, set_label(set, label, sizeof label), "out of memory for %lld intervals",
                (long long)iv->n);
    return NULL;
}

int dna_sampler_draw(dna_sampler *sm, uint64_t *rng, int rc_aug, int32_t *tokens, dna_window *w,
                     char *err, size_t errlen)
{
    int64_t rec = -1, start = -1;
    for (int t = 0; t < DNA_SAMPLE_MAX_TRIES; t++) {
        const uint64_t u = mb_cli_rng_below(rng, sm->total);
        /* first interval whose cumulative count exceeds u */
        int64_t lo = 0, hi = sm->n - 1;
        while (lo < hi) {
            int64_t mid = lo + (hi - lo) / 2;
            if (sm->cum[mid] > u)
                hi = mid;
            else
                lo = mid + 1;
        }
        const uint64_t before = lo ? sm->cum[lo - 1] : 0;
        rec = sm->iv[lo].rec;
        start = sm->iv[lo].start + (int64_t)(u - before);
        if (dna_set_fetch(sm->set, rec, start, sm->len, tokens, err, errlen)) return -1;
        /* more than half unknown: nothing to learn there */
        if (2 * dna_tok_count_n(tokens, (size_t)sm->len) > (size_t)sm->len) continue;
        int rc = 0;
        if (rc_aug && (mb_cli_rng_next(rng) >> 63)) {
            dna_tok_revcomp(tokens, (size_t)sm->len);
            rc = 1;
        }
        if (w) *w = (dna_window){rec, start, sm->len, rc};
        return 0;
    }
    char label[512];
    return mb_cli_errf(err, errlen, path_of(sm->set, rec, label, sizeof label),
                    "%d windows of %lld bases in a row were more than half N (the last at "
                    "%s:%lld): the split is mostly unknown bases",
                    DNA_SAMPLE_MAX_TRIES, (long long)sm->len, dna_set_name(sm->set, rec),
                    (long long)start);
}

int dna_sample_window(dna_set *set, const dna_ivals *iv, int64_t len, uint64_t *rng, int rc_aug,
                      int32_t *tokens, dna_window *w, char *err, size_t errlen)
{
    dna_sampler *sm = dna_sampler_create(set, iv, len, err, errlen);
    if (!sm) return -1;
    int r = dna_sampler_draw(sm, rng, rc_aug, tokens, w, err, errlen);
    dna_sampler_free(sm);
    return r;
}
