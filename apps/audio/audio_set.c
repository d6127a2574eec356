#include "audio_set.h"

#include <stdlib.h>
#include <string.h>

#include "mb_cli.h"
#include "audio_io.h"
#include "audio_walk.h"

typedef struct {
    char *path, *rel;
    uint8_t *data;
    int64_t len;
    double u; /* the split hash of rel, uniform in [0, 1) */
    audio_split split;
} afile;

/* The files of one split, with running totals for the length-weighted draw. */
typedef struct {
    int64_t *idx; /* indices into files, in file order */
    int64_t *cum; /* cum[k] = samples in idx[0..k] */
    int64_t n, samples;
} asplit;

struct audio_set {
    int rate;
    audio_quant quant;
    afile *files;
    int64_t n, skipped;
    asplit sp[2];
};

void audio_set_opts_default(audio_set_opts *o)
{
    o->rate = AUDIO_RATE_DEFAULT;
    o->quant = AUDIO_Q_MULAW;
    o->val_frac = AUDIO_VAL_FRAC_DEFAULT;
    o->progress = NULL;
    o->progress_ud = NULL;
}

/* The progress of the load, passed to audio_read_cb for each file. */
typedef struct {
    const audio_set_opts *o;
    int64_t file, nfiles;
    const char *path;
    double before, size, total; /* bytes of the files before this one; its bytes; all */
} load_progress;

static int load_progress_frames(void *ud, int64_t frames, int64_t total)
{
    const load_progress *p = ud;
    const double frac = total > 0 && frames < total ? (double)frames / (double)total : 1.0;
    return p->o->progress(p->o->progress_ud, p->file, p->nfiles, p->path, p->before + frac * p->size, p->total);
}

/* ---- the split ----------------------------------------------------------- */

/* FNV-1a over the relative path, then splitmix64's finalizer (FNV alone is
 * poorly spread in its top bits for short, similar names). */
static double name_hash(const char *s)
{
    uint64_t st = mb_cli_fnv(MB_CLI_FNV_START, s, strlen(s));
    return (double)(mb_cli_rng_next(&st) >> 11) * 0x1.0p-53;
}

static void assign_split(audio_set *s, double val_frac)
{
    int64_t nval = 0;
    for (int64_t i = 0; i < s->n; i++) {
        s->files[i].split = s->files[i].u < val_frac ? AUDIO_SPLIT_VAL : AUDIO_SPLIT_TRAIN;
        nval += s->files[i].split == AUDIO_SPLIT_VAL;
    }
    if (s->n < 2 || val_frac <= 0) {
        /* one file cannot be both: it trains */
        for (int64_t i = 0; i < s->n; i++)
            s->files[i].split = AUDIO_SPLIT_TRAIN;
        return;
    }
    if (nval == 0) { /* hold out the file closest to the threshold from above */
        int64_t best = 0;
        for (int64_t i = 1; i < s->n; i++)
            if (s->files[i].u < s->files[best].u) best = i;
        s->files[best].split = AUDIO_SPLIT_VAL;
    } else if (nval == s->n) { /* and train on the one furthest below it */
        int64_t best = 0;
        for (int64_t i = 1; i < s->n; i++)
            if (s->files[i].u > s->files[best].u) best = i;
        s->files[best].split = AUDIO_SPLIT_TRAIN;
    }
}

static int build_splits(audio_set *s)
{
    for (int k = 0; k < 2; k++) {
        asplit *sp = &s->sp[k];
        for (int64_t i = 0; i < s->n; i++)
            sp->n += s->files[i].split == (audio_split)k;
        if (sp->n == 0) continue;
        sp->idx = malloc((size_t)sp->n * sizeof *sp->idx);
        sp->cum = malloc((size_t)sp->n * sizeof *sp->cum);
        if (!sp->idx || !sp->cum) return -1;
        int64_t j = 0;
        for (int64_t i = 0; i < s->n; i++) {
            if (s->files[i].split != (audio_split)k) continue;
            sp->samples += s->files[i].len;
            sp->idx[j] = i;
            sp->cum[j] = sp->samples;
            j++;
        }
    }
    return 0;
}

/* ---- loading ------------------------------------------------------------- */

audio_set *audio_set_load(const char *path, const audio_set_opts *o, audio_warn_fn warn, void *ud,
                          char *err, size_t errlen)
{
    audio_set_opts def;
    if (!o) {
        audio_set_opts_default(&def);
        o = &def;
    }
    if (o->rate <= 0) {
        mb_cli_errf(err, errlen, path, "bad sample rate %d Hz", o->rate);
        return NULL;
    }
    if (!(o->val_frac >= 0 && o->val_frac <= 1)) {
        mb_cli_errf(err, errlen, path, "validation fraction %g is not in [0, 1]", o->val_frac);
        return NULL;
    }
    audio_walk_list wl;
    int64_t skipped = 0;
    if (audio_walk(path, &wl, warn, ud, &skipped, err, errlen) != 0) return NULL;

    audio_set *s = calloc(1, sizeof *s);
    if (!s || (wl.n > 0 && !(s->files = calloc((size_t)wl.n, sizeof *s->files)))) {
        mb_cli_errf(err, errlen, path, "out of memory");
        goto fail;
    }
    s->rate = o->rate;
    s->quant = o->quant;
    load_progress lp = {o, 0, wl.n, NULL, 0, 0, 0};
    for (int64_t i = 0; i < wl.n; i++) lp.total += (double)wl.v[i].size;
    for (int64_t i = 0; i < wl.n; i++) {
        float *x = NULL;
        int64_t n = 0;
        char line[1024];
        lp.file = i, lp.path = wl.v[i].path, lp.size = (double)wl.v[i].size;
        /* asked before each file too: a folder of many short files */
        if (o->progress && o->progress(o->progress_ud, i, wl.n, wl.v[i].path, lp.before, lp.total)) {
            mb_cli_errf(err, errlen, path, "interrupted while reading %s (file %lld of %lld)", wl.v[i].path,
                        (long long)i + 1, (long long)wl.n);
            goto fail;
        }
        const int rc = audio_read_cb(wl.v[i].path, o->rate, &x, &n, NULL, o->progress ? load_progress_frames : NULL,
                                     &lp, line, sizeof line);
        lp.before += lp.size;
        if (rc != 0 && o->progress && o->progress(o->progress_ud, i, wl.n, wl.v[i].path, lp.before, lp.total)) {
            /* the read was stopped, not refused: not a skipped file */
            mb_cli_errf(err, errlen, path, "interrupted while reading %s (file %lld of %lld)", wl.v[i].path,
                        (long long)i + 1, (long long)wl.n);
            goto fail;
        }
        if (rc != 0) {
            /* one file named or found: its reason is the error line itself,
             * not a warning before "no readable audio files" */
            if (wl.n == 1) snprintf(err, errlen, "%s", line);
            else if (warn) warn(line, ud);
            skipped++;
            continue;
        }
        afile *f = &s->files[s->n];
        f->data = malloc((size_t)n);
        if (!f->data) {
            free(x);
            mb_cli_errf(err, errlen, wl.v[i].path, "out of memory");
            goto fail;
        }
        audio_encode_buf(o->quant, x, n, f->data);
        free(x);
        f->len = n;
        /* the walk's strings now belong to the set */
        f->path = wl.v[i].path;
        f->rel = wl.v[i].rel;
        wl.v[i].path = wl.v[i].rel = NULL;
        f->u = name_hash(f->rel);
        s->n++;
    }
    s->skipped = skipped;
    if (s->n == 0) {
        if (!(wl.n == 1 && skipped == 1))
            mb_cli_errf(err, errlen, path, "no readable audio files (%lld skipped)", (long long)skipped);
        goto fail;
    }
    assign_split(s, o->val_frac);
    if (build_splits(s) != 0) {
        mb_cli_errf(err, errlen, path, "out of memory");
        goto fail;
    }
    audio_walk_free(&wl);
    return s;
fail:
    audio_walk_free(&wl);
    audio_set_free(s);
    return NULL;
}

void audio_set_free(audio_set *s)
{
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) {
        free(s->files[i].path);
        free(s->files[i].rel);
        free(s->files[i].data);
    }
    free(s->files);
    for (int k = 0; k < 2; k++) {
        free(s->sp[k].idx);
        free(s->sp[k].cum);
    }
    free(s);
}

/* ---- accessors ----------------------------------------------------------- */

int audio_set_rate(const audio_set *s) { return s->rate; }
audio_quant audio_set_quant(const audio_set *s) { return s->quant; }
int64_t audio_set_nfiles(const audio_set *s) { return s->n; }
int64_t audio_set_nskipped(const audio_set *s) { return s->skipped; }
const char *audio_set_path(const audio_set *s, int64_t i) { return s->files[i].path; }
const char *audio_set_relpath(const audio_set *s, int64_t i) { return s->files[i].rel; }
const uint8_t *audio_set_data(const audio_set *s, int64_t i) { return s->files[i].data; }
int64_t audio_set_len(const audio_set *s, int64_t i) { return s->files[i].len; }
audio_split audio_set_split_of(const audio_set *s, int64_t i) { return s->files[i].split; }
int64_t audio_set_split_files(const audio_set *s, audio_split split) { return s->sp[split].n; }
int64_t audio_set_samples(const audio_set *s, audio_split split) { return s->sp[split].samples; }

void audio_set_hist(const audio_set *s, audio_split split, int64_t hist[AUDIO_NCLASS])
{
    const asplit *sp = &s->sp[split];
    for (int64_t k = 0; k < sp->n; k++)
        audio_hist_add(hist, s->files[sp->idx[k]].data, s->files[sp->idx[k]].len);
}

/* ---- crops --------------------------------------------------------------- */

int audio_set_crop(const audio_set *s, audio_split split, int64_t len, uint64_t *rng, uint8_t *out,
                   int64_t *file, int64_t *start)
{
    const asplit *sp = &s->sp[split];
    if (sp->n == 0 || sp->samples <= 0 || len < 1) return -1;
    /* a sample of the split, uniformly; its file is the first whose running
     * total passes it (binary search) */
    const int64_t r = (int64_t)mb_cli_rng_below(rng, (uint64_t)sp->samples);
    int64_t lo = 0, hi = sp->n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (sp->cum[mid] > r)
            hi = mid;
        else
            lo = mid + 1;
    }
    const afile *f = &s->files[sp->idx[lo]];
    int64_t st;
    if (f->len >= len) {
        st = (int64_t)mb_cli_rng_below(rng, (uint64_t)(f->len - len + 1));
        memcpy(out, f->data + st, (size_t)len);
    } else {
        const int64_t pad = len - f->len;
        memset(out, AUDIO_SILENCE, (size_t)pad);
        memcpy(out + pad, f->data, (size_t)f->len);
        st = -pad;
    }
    if (file) *file = sp->idx[lo];
    if (start) *start = st;
    return 0;
}

/* ---- windows ------------------------------------------------------------- */

int audio_set_windows(const audio_set *s, audio_split split, int64_t len, int64_t max,
                      audio_window **out, int64_t *nw, char *err, size_t errlen)
{
    *out = NULL;
    *nw = 0;
    if (len < 1)
        return mb_cli_errf(err, errlen, "windows", "bad window length %lld", (long long)len);
    const asplit *sp = &s->sp[split];
    int64_t total = 0;
    for (int64_t k = 0; k < sp->n; k++)
        total += (s->files[sp->idx[k]].len + len - 1) / len;
    if (total == 0) return 0;
    const int64_t keep = max > 0 && max < total ? max : total;
    audio_window *w = malloc((size_t)keep * sizeof *w);
    if (!w) return mb_cli_errf(err, errlen, "windows", "out of memory");
    /* walk the full list in order, keeping window j when it is the next of
     * floor(m * total / keep), m = 0..keep-1 (all of them when keep = total) */
    int64_t j = 0, m = 0;
    for (int64_t k = 0; k < sp->n && m < keep; k++) {
        const int64_t fi = sp->idx[k], flen = s->files[fi].len;
        for (int64_t st = 0; st < flen && m < keep; st += len, j++) {
            if (j != (int64_t)((double)m * (double)total / (double)keep)) continue;
            audio_window *x = &w[m++];
            x->file = fi;
            x->start = st;
            x->n = flen - st < len ? flen - st : len;
            x->pad = len - x->n;
        }
    }
    *out = w;
    *nw = m;
    return 0;
}

void audio_set_window_fetch(const audio_set *s, const audio_window *w, uint8_t *out)
{
    memset(out, AUDIO_SILENCE, (size_t)w->pad);
    memcpy(out + w->pad, s->files[w->file].data + w->start, (size_t)w->n);
}
