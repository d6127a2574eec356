/* A training run's checkpoint sets: see mb_cli_ckpt.h. */
#include "mb_cli_ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mb_cli_error.h"
#include "mb_cli_model.h"
#include "mb_cli_out.h"

#define CKPT_TAG ".step-"
#define CKPT_WHY 1024

static const char *const k_set_suffix[] = {"", ".optim", ".json"};
#define CKPT_NSUFFIX 3

static int64_t ckpt_step(const char *p, int *suffix);

void mb_cli_ckpt_init(mb_cli_ckpt *c, const char *prog, const mb_cli_train *t)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
    c->out = t->out;
    c->keep = t->keep > 0 ? t->keep : 1;
    c->select_last = t->select_last;
}

void mb_cli_ckpt_free(mb_cli_ckpt *c)
{
    free(c->sets);
    c->sets = NULL;
    c->n_sets = c->cap_sets = 0;
}

char *mb_cli_ckpt_path(const char *out, int64_t step, const char *suffix)
{
    const size_t n = strlen(out) + strlen(CKPT_TAG) + 24 + strlen(suffix);
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s" CKPT_TAG "%lld%s", out, (long long)step, suffix);
    return p;
}

char *mb_cli_sidecar_path(const char *model, const char *suffix)
{
    char *p = mb_cli_path_suffix(model, suffix);
    if (!p || access(p, F_OK) == 0) return p;
    /* a checkpoint's model OUT.step-N: the run writes its sidecars once, as
     * OUT's, never per set */
    const char *tag = NULL;
    for (const char *t = strstr(model, CKPT_TAG); t; t = strstr(t + 1, CKPT_TAG)) tag = t;
    int sfx = -1;
    if (!tag || ckpt_step(tag + strlen(CKPT_TAG), &sfx) == 0 || sfx != 0) return p;
    const size_t n = (size_t)(tag - model) + strlen(suffix) + 1;
    char *q = malloc(n);
    if (!q) return p;
    snprintf(q, n, "%.*s%s", (int)(tag - model), model, suffix);
    if (access(q, F_OK) != 0) {
        free(q);
        return p;
    }
    free(p);
    return q;
}

int64_t mb_cli_ckpt_newest(const mb_cli_ckpt *c) { return c->n_sets ? c->sets[c->n_sets - 1] : 0; }

/* ---- the folder ------------------------------------------------------------ */

/* OUT's folder ("." when OUT has none) and its name in it */
static void ckpt_split(const char *out, char *dir, size_t cap, const char **base)
{
    const char *slash = strrchr(out, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        *base = out;
    } else if (slash == out) {
        snprintf(dir, cap, "/");
        *base = slash + 1;
    } else {
        snprintf(dir, cap, "%.*s", (int)(slash - out), out);
        *base = slash + 1;
    }
}

/* name is BASE.step-N followed by nothing, ".optim" or ".json" (*suffix: the
 * index in k_set_suffix); its step, or 0 when it is not a set's file. Only
 * the file names a set is written under count: its temporary files and
 * anything else of the user's are not a set. */
static int64_t ckpt_parse(const char *name, const char *base, int *suffix)
{
    const size_t nb = strlen(base), nt = strlen(CKPT_TAG);
    if (strncmp(name, base, nb) != 0 || strncmp(name + nb, CKPT_TAG, nt) != 0) return 0;
    return ckpt_step(name + nb + nt, suffix);
}

/* what follows CKPT_TAG in a set's file name: N and the suffix */
static int64_t ckpt_step(const char *p, int *suffix)
{
    int64_t step = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 18; p++, digits++) step = step * 10 + (*p - '0');
    if (!digits || step <= 0 || (digits > 1 && p[-digits] == '0')) return 0;
    for (int s = 0; s < CKPT_NSUFFIX; s++)
        if (strcmp(p, k_set_suffix[s]) == 0) {
            if (suffix) *suffix = s;
            return step;
        }
    return 0;
}

static int cmp_desc(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The steps of the sets with any file beside OUT, newest first, without
 * repeats (malloc'd into *steps; NULL when none). The count, or -1 after an
 * error line (the folder cannot be read). */
static int ckpt_list(const char *prog, const char *out, int64_t **steps)
{
    char dir[4096];
    const char *base;
    ckpt_split(out, dir, sizeof dir, &base);
    *steps = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        mb_cli_error(prog, "%s: cannot read the folder of --out (%s)", dir, strerror(errno));
        return -1;
    }
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const int64_t s = ckpt_parse(e->d_name, base, NULL);
        if (!s) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *v = realloc(*steps, sizeof(int64_t) * (size_t)cap);
            if (!v) {
                closedir(d);
                free(*steps);
                *steps = NULL;
                mb_cli_error(prog, "out of memory");
                return -1;
            }
            *steps = v;
        }
        (*steps)[n++] = s;
    }
    closedir(d);
    if (n) qsort(*steps, (size_t)n, sizeof(int64_t), cmp_desc);
    int u = 0;
    for (int i = 0; i < n; i++)
        if (u == 0 || (*steps)[u - 1] != (*steps)[i]) (*steps)[u++] = (*steps)[i];
    return u;
}

int mb_cli_ckpt_exists(const char *out, char *what, size_t cap)
{
    if (access(out, F_OK) == 0) {
        snprintf(what, cap, "%s", out);
        return 1;
    }
    char dir[4096];
    const char *base;
    ckpt_split(out, dir, sizeof dir, &base);
    DIR *d = opendir(dir);
    if (!d) return 0; /* the writability check says what is wrong with the folder */
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)))
        if (ckpt_parse(e->d_name, base, NULL)) {
            snprintf(what, cap, "%s%s%s", strcmp(dir, ".") ? dir : "", strcmp(dir, ".") && strcmp(dir, "/") ? "/" : "",
                     e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

/* name is PREFIX.tmpXXXXXX (mb_outfile's temporary names): PREFIX's length,
 * else 0 */
static size_t tmp_prefix(const char *name)
{
    const char *t = strstr(name, ".tmp");
    size_t at = 0;
    while (t) { /* the last ".tmp" followed by exactly six characters */
        if (strlen(t) == 10) at = (size_t)(t - name);
        t = strstr(t + 1, ".tmp");
    }
    return at;
}

int mb_cli_ckpt_sweep(const mb_cli_ckpt *c, const char *const *side)
{
    char dir[4096];
    const char *base;
    ckpt_split(c->out, dir, sizeof dir, &base);
    DIR *d = opendir(dir);
    if (!d) return 0;
    /* the prefixes first, then the sweeps: removing entries while reading
     * the folder could skip some */
    char **prefix = NULL;
    int n = 0, cap = 0, removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const size_t k = tmp_prefix(e->d_name);
        if (!k) continue;
        char name[1024];
        snprintf(name, sizeof name, "%.*s", (int)k, e->d_name);
        int ours = strcmp(name, base) == 0 || ckpt_parse(name, base, NULL) > 0;
        const size_t nb = strlen(base);
        if (!ours && strncmp(name, base, nb) == 0) {
            ours = strcmp(name + nb, ".optim") == 0; /* an earlier version's */
            for (int s = 0; side && side[s] && !ours; s++) ours = strcmp(name + nb, side[s]) == 0;
        }
        if (!ours) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            char **v = realloc(prefix, sizeof(char *) * (size_t)cap);
            if (!v) break;
            prefix = v;
        }
        const size_t len = strlen(dir) + strlen(name) + 2;
        if (!(prefix[n] = malloc(len))) break;
        snprintf(prefix[n++], len, "%s/%s", dir, name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int dup = 0;
        for (int j = 0; j < i && !dup; j++) dup = strcmp(prefix[i], prefix[j]) == 0;
        const int r = dup ? 0 : mb_outfile_sweep(prefix[i]);
        if (r > 0) removed += r;
        free(prefix[i]);
    }
    free(prefix);
    if (removed)
        fprintf(stderr, "%s: removed %d temporary file%s that a killed run left beside %s\n", c->prog, removed,
                removed == 1 ? "" : "s", c->out);
    return removed;
}

/* ---- the state file --------------------------------------------------------- */

static int state_write(mb_cli_ckpt *c, const char *path, uint64_t run_id, int64_t step)
{
    mb_outfile *f = mb_cli_outfile_open(c->prog, path);
    if (!f) return -1;
    const mb_cli_val_hist *h = &c->hist;
    char best[64] = "null";
    /* %.17g: the loss read back is the one compared against, to the bit */
    if (h->best_step > 0) snprintf(best, sizeof best, "%.17g", h->best);
    fprintf(mb_outfile_fp(f),
            "{\"run_id\": \"%016llx\", \"step\": %lld, \"best_step\": %lld, \"best_loss\": %s, "
            "\"since_best\": %lld, \"warned\": %d}\n",
            (unsigned long long)run_id, (long long)step, (long long)h->best_step, best, (long long)h->since_best,
            h->warned);
    return mb_cli_outfile_commit(c->prog, f);
}

/* the text after "KEY": in s, NULL when absent */
static const char *state_key(const char *s, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(s, k);
    return p ? p + strlen(k) : NULL;
}

static int state_int(const char *s, const char *key, int64_t *v)
{
    const char *p = state_key(s, key);
    char *end;
    if (!p) return -1;
    errno = 0;
    *v = strtoll(p, &end, 10);
    return errno || end == p || *v < 0 ? -1 : 0;
}

/* The state file of a set: 0 with its run id, step and history, or -1 with
 * the reason in why. */
static int state_read(const char *path, uint64_t *run_id, int64_t *step, mb_cli_val_hist *h, char *why, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, cap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char s[1024];
    const size_t n = fread(s, 1, sizeof s - 1, f);
    fclose(f);
    s[n] = '\0';
    int64_t warned = 0;
    const char *id = state_key(s, "run_id"), *best = state_key(s, "best_loss");
    char *end = NULL;
    memset(h, 0, sizeof *h);
    int bad = !id || *id != '"' || state_int(s, "step", step) || state_int(s, "best_step", &h->best_step) ||
              state_int(s, "since_best", &h->since_best) || state_int(s, "warned", &warned) || !best;
    if (!bad) {
        errno = 0;
        *run_id = strtoull(id + 1, &end, 16);
        bad = errno || end != id + 17 || *end != '"';
    }
    if (!bad && h->best_step > 0) {
        h->best = strtod(best, &end);
        bad = end == best || !isfinite(h->best);
    }
    if (bad) {
        snprintf(why, cap, "%s: not a checkpoint's state (run_id, step, best_step, best_loss, since_best, warned)",
                 path);
        return -1;
    }
    h->warned = warned != 0;
    return 0;
}

/* ---- --resume ---------------------------------------------------------------- */

/* A set tried for --resume: 0 with *m and *o, else -1 with why. */
static int ckpt_try(mb_cli_ckpt *c, mb_ctx *ctx, const mb_cli_train *t, mb_cli_ckpt_loader load, void *ud,
                    int64_t step, mb_model **m, mb_optim **o, char *why, size_t cap)
{
    char *path[CKPT_NSUFFIX];
    int rc = -1, missing = -1;
    for (int s = 0; s < CKPT_NSUFFIX; s++) path[s] = mb_cli_ckpt_path(c->out, step, k_set_suffix[s]);
    if (!path[0] || !path[1] || !path[2]) {
        snprintf(why, cap, "out of memory");
        goto done;
    }
    for (int s = 0; s < CKPT_NSUFFIX && missing < 0; s++)
        if (access(path[s], F_OK) != 0) missing = s;
    if (missing >= 0) {
        snprintf(why, cap, "%s: missing: the save of step %lld did not finish (the run was killed or a write "
                           "failed)", path[missing], (long long)step);
        goto done;
    }
    mb_cli_error_capture(why, cap);
    *m = load(ud, ctx, path[0]);
    *o = *m ? mb_cli_optim(c->prog, *m, t, path[1]) : NULL;
    mb_cli_error_capture(NULL, 0);
    if (!*o) goto done;
    uint64_t run_id = 0;
    int64_t st = 0;
    mb_cli_val_hist h;
    if (mb_optim_step_count(*o) != step)
        snprintf(why, cap, "%s: optimizer state of step %lld, not %lld", path[1], (long long)mb_optim_step_count(*o),
                 (long long)step);
    else if (state_read(path[2], &run_id, &st, &h, why, cap) == 0) {
        if (run_id != mb_model_run_id(*m))
            snprintf(why, cap, "%s: the state of another run (run %016llx, the model's is %016llx)", path[2],
                     (unsigned long long)run_id, (unsigned long long)mb_model_run_id(*m));
        else if (st != step)
            snprintf(why, cap, "%s: the state of step %lld, not %lld", path[2], (long long)st, (long long)step);
        else {
            c->hist = h;
            rc = 0;
        }
    }
done:
    if (rc) {
        mb_optim_free(*o);
        mb_model_free(*m);
        *o = NULL;
        *m = NULL;
    }
    for (int s = 0; s < CKPT_NSUFFIX; s++) free(path[s]);
    return rc;
}

static int sets_push(mb_cli_ckpt *c, int64_t step)
{
    if (c->n_sets == c->cap_sets) {
        const int cap = c->cap_sets ? 2 * c->cap_sets : 8;
        int64_t *v = realloc(c->sets, sizeof(int64_t) * (size_t)cap);
        if (!v) return -1;
        c->sets = v;
        c->cap_sets = cap;
    }
    c->sets[c->n_sets++] = step;
    return 0;
}

/* An earlier version's layout: OUT and OUT.optim, its errors printed as they
 * come (the only candidate) */
static int ckpt_resume_legacy(mb_cli_ckpt *c, mb_ctx *ctx, const mb_cli_train *t, mb_cli_ckpt_loader load, void *ud,
                              mb_model **m, mb_optim **o)
{
    char *optim = mb_cli_optim_path(c->out);
    if (!optim) {
        mb_cli_error(c->prog, "out of memory");
        return -1;
    }
    *m = load(ud, ctx, c->out);
    /* a model of the right kind but neither layout's optimizer state: say
     * so, rather than name a file no run of this version writes */
    if (*m && access(optim, F_OK) != 0) {
        mb_cli_error(c->prog, "%s: nothing to resume: no checkpoint set (%s.step-N) beside it; without --resume "
                              "a run starts over",
                     c->out, c->out);
        *o = NULL;
    } else
        *o = *m ? mb_cli_optim(c->prog, *m, t, optim) : NULL;
    free(optim);
    if (*o) return 0;
    mb_model_free(*m);
    *m = NULL;
    return -1;
}

int mb_cli_ckpt_resume(mb_cli_ckpt *c, mb_ctx *ctx, const mb_cli_train *t, mb_cli_ckpt_loader load, void *ud,
                       mb_model **m, mb_optim **o)
{
    *m = NULL;
    *o = NULL;
    memset(&c->hist, 0, sizeof c->hist);
    int64_t *steps;
    const int n = ckpt_list(c->prog, c->out, &steps);
    if (n < 0) return -1;
    if (n == 0) return ckpt_resume_legacy(c, ctx, t, load, ud, m, o);
    /* newest first; the reasons of the sets skipped are said once one
     * loads (a warning each), or the newest's is the error */
    char(*why)[CKPT_WHY] = calloc((size_t)n, sizeof *why);
    int got = -1;
    for (int i = 0; why && i < n && got < 0; i++)
        if (ckpt_try(c, ctx, t, load, ud, steps[i], m, o, why[i], CKPT_WHY) == 0) got = i;
    int rc = 0;
    if (!why) {
        mb_cli_error(c->prog, "out of memory");
        rc = -1;
    } else if (got < 0) {
        mb_cli_error(c->prog, "%s; %s", why[0],
                     n > 1 ? "no older checkpoint beside it is complete either: nothing to resume"
                           : "no older checkpoint to resume instead (--keep keeps more)");
        rc = -1;
    } else {
        for (int i = 0; i < got; i++)
            mb_cli_warn(c->prog, "checkpoint of step %lld skipped: %s", (long long)steps[i], why[i]);
        if (got > 0) {
            char *p = mb_cli_ckpt_path(c->out, steps[got], "");
            mb_cli_warn(c->prog, "resuming from the older checkpoint %s (step %lld)", p ? p : c->out,
                        (long long)steps[got]);
            free(p);
        }
        /* this run's sets: the one resumed and those before it; newer
         * ones are abandoned, removed at the first save */
        for (int i = n - 1; i >= got && rc == 0; i--)
            if (sets_push(c, steps[i])) {
                mb_cli_error(c->prog, "out of memory");
                rc = -1;
            }
        if (rc) {
            mb_optim_free(*o);
            mb_model_free(*m);
            *o = NULL;
            *m = NULL;
        }
    }
    free(why);
    free(steps);
    return rc;
}

/* ---- saving ------------------------------------------------------------------ */

/* The library refuses to write a model with non-finite weights; its line
 * says "non-finite weights" ("not written: the model has N non-finite
 * weights"): a diverged run, reported as such. */
static int save_model(mb_cli_ckpt *c, const mb_model *m, const char *path, int64_t step)
{
    if (mb_model_save(m, path) == 0) return 0;
    const char *e = mb_error_last(), *nf = strstr(e, "non-finite weights");
    if (nf) {
        /* the count, from "has N non-finite weights" */
        const char *end = nf, *p;
        while (end > e && end[-1] == ' ') end--;
        for (p = end; p > e && p[-1] >= '0' && p[-1] <= '9';) p--;
        char what[64];
        snprintf(what, sizeof what, "%.*s non-finite weights", (int)(end - p), p);
        mb_cli_ckpt_diverged(c, c->prog, step, what);
    } else {
        mb_cli_lib_error(c->prog, path);
    }
    return -1;
}

static void remove_set(const mb_cli_ckpt *c, int64_t step)
{
    /* the optimizer's first: a set cut here is incomplete, never mixed */
    static const int order[CKPT_NSUFFIX] = {1, 2, 0};
    for (int i = 0; i < CKPT_NSUFFIX; i++) {
        char *p = mb_cli_ckpt_path(c->out, step, k_set_suffix[order[i]]);
        if (p && remove(p) != 0 && errno != ENOENT) mb_cli_warn(c->prog, "%s: cannot remove (%s)", p, strerror(errno));
        free(p);
    }
}

/* After set `step` is complete: this run's sets beyond the newest K go;
 * the first time, also every set that is not this run's (a --force run's
 * predecessor, or the sets after the one resumed) and an earlier version's
 * OUT.optim. */
static void ckpt_rotate(mb_cli_ckpt *c, int64_t step)
{
    int k = 0;
    for (int i = 0; i < c->n_sets; i++)
        if (c->sets[i] < step) c->sets[k++] = c->sets[i];
    c->n_sets = k;
    if (sets_push(c, step)) return; /* out of memory: nothing removed */
    if (!c->wrote) {
        int64_t *disk;
        const int n = ckpt_list(c->prog, c->out, &disk);
        for (int i = 0; i < n; i++) {
            int ours = 0;
            for (int j = 0; j < c->n_sets && !ours; j++) ours = c->sets[j] == disk[i];
            if (!ours) remove_set(c, disk[i]);
        }
        free(disk);
        char *legacy = mb_cli_optim_path(c->out);
        if (legacy) remove(legacy);
        free(legacy);
        c->wrote = 1;
    }
    const int drop = c->n_sets > c->keep ? c->n_sets - (int)c->keep : 0;
    for (int i = 0; i < drop; i++) remove_set(c, c->sets[i]);
    memmove(c->sets, c->sets + drop, sizeof(int64_t) * (size_t)(c->n_sets - drop));
    c->n_sets -= drop;
}

int mb_cli_ckpt_save(mb_cli_ckpt *c, const mb_model *m, const mb_optim *o)
{
    const int64_t step = mb_optim_step_count(o);
    char *path[CKPT_NSUFFIX];
    for (int s = 0; s < CKPT_NSUFFIX; s++) path[s] = mb_cli_ckpt_path(c->out, step, k_set_suffix[s]);
    int rc = 1;
    if (!path[0] || !path[1] || !path[2]) {
        mb_cli_error(c->prog, "out of memory");
        goto done;
    }
    if (save_model(c, m, path[0], step)) goto done;
    if (mb_optim_save(o, path[1])) {
        mb_cli_lib_error(c->prog, path[1]);
        remove(path[0]);
        goto done;
    }
    if (state_write(c, path[2], mb_model_run_id(m), step)) {
        remove(path[1]);
        remove(path[0]);
        goto done;
    }
    /* the set is complete: OUT, where it is the newest model, then the
     * older sets */
    if ((c->select_last || c->hist.best_step == 0) && save_model(c, m, c->out, step)) goto done;
    ckpt_rotate(c, step);
    rc = 0;
done:
    for (int s = 0; s < CKPT_NSUFFIX; s++) free(path[s]);
    return rc;
}

int mb_cli_ckpt_save_best(mb_cli_ckpt *c, const mb_model *m)
{
    if (c->select_last) return 0;
    return save_model(c, m, c->out, c->hist.best_step) ? 1 : 0;
}

void mb_cli_ckpt_diverged(const mb_cli_ckpt *c, const char *prog, int64_t step, const char *what)
{
    const int64_t last = c ? mb_cli_ckpt_newest(c) : 0;
    char *p = last ? mb_cli_ckpt_path(c->out, last, "") : NULL;
    if (p)
        mb_cli_error(prog, "step %lld: the training diverged (%s): stopped, nothing saved; the last checkpoint, %s, "
                           "is kept and --resume continues from it (a lower --lr or a --grad-clip may help)",
                     (long long)step, what, p);
    else
        mb_cli_error(prog, "step %lld: the training diverged (%s): stopped, nothing saved (a lower --lr or a "
                           "--grad-clip may help)",
                     (long long)step, what);
    free(p);
}
