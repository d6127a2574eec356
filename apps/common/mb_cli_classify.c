/* What the classifier commands share: see mb_cli_classify.h. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "mb_cli_ckpt.h"
#include "mb_cli_classify.h"
#include "mb_cli_error.h"

/* ---- class names ------------------------------------------------------------ */

void mb_cli_names_free(mb_cli_names *c)
{
    for (int i = 0; i < c->n; i++) free(c->v[i]);
    free(c->v);
    memset(c, 0, sizeof *c);
}

int mb_cli_names_find(const mb_cli_names *c, const char *s)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->v[i], s) == 0) return i;
    return -1;
}

int mb_cli_names_add(mb_cli_names *c, const char *s)
{
    const int i = mb_cli_names_find(c, s);
    if (i >= 0) return i;
    if (c->n == c->cap) {
        const int cap = c->cap ? 2 * c->cap : 8;
        char **v = realloc(c->v, sizeof *v * (size_t)cap);
        if (!v) return -1;
        c->v = v;
        c->cap = cap;
    }
    if (!(c->v[c->n] = strdup(s))) return -1;
    return c->n++;
}

const char *mb_cli_names_list(const mb_cli_names *c, char *buf, size_t n)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n && at < n; i++) {
        const int k = snprintf(buf + at, n - at, "%s%s", i ? ", " : "", c->v[i]);
        if (k < 0) break;
        at += (size_t)k;
    }
    if (at >= n && n > 4) memcpy(buf + n - 4, "...", 4);
    return buf;
}

int mb_cli_name_ok(const char *s) { return *s && !strpbrk(s, "\t\n\r"); }

/* ---- MODEL.classes -------------------------------------------------------------- */

int mb_cli_classes_read(const char *prog, const char *model, int C, mb_cli_names *out)
{
    char *path = mb_cli_sidecar_path(model, ".classes");
    if (!path) {
        mb_cli_error(prog, "out of memory");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        const int e = errno;
        if (e == ENOENT) {
            free(path);
            return 0;
        }
        mb_cli_error(prog, "%s: %s", path, strerror(e));
        free(path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 1, nlines = 0;
    while (rc == 1 && (len = getline(&line, &cap, f)) >= 0) {
        nlines++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (!mb_cli_name_ok(line) || (size_t)len != strlen(line)) {
            mb_cli_error(prog, "%s:%d: not a class name (empty, or with a tab or a NUL)", path, nlines);
            rc = -1;
        } else if (mb_cli_names_find(out, line) >= 0) {
            mb_cli_error(prog, "%s:%d: class '%s' is named twice", path, nlines, line);
            rc = -1;
        } else if (mb_cli_names_add(out, line) < 0) {
            mb_cli_error(prog, "out of memory");
            rc = -1;
        }
    }
    if (rc == 1 && ferror(f)) {
        mb_cli_error(prog, "%s: read error", path);
        rc = -1;
    }
    if (rc == 1 && out->n != C) {
        mb_cli_error(prog, "%s: %d class names for a head of %d classes", path, out->n, C);
        rc = -1;
    }
    free(line);
    fclose(f);
    free(path);
    return rc;
}

int mb_cli_classes_names(const char *prog, const char *model, int C, mb_cli_names *out)
{
    const int got = mb_cli_classes_read(prog, model, C, out);
    if (got < 0) return -1;
    for (int k = 0; got == 0 && k < C; k++) {
        char nm[32];
        snprintf(nm, sizeof nm, "class%d", k);
        if (mb_cli_names_add(out, nm) < 0) {
            mb_cli_error(prog, "out of memory");
            return -1;
        }
    }
    return 0;
}

mb_outfile *mb_cli_classes_write(const char *prog, const char *model, const mb_cli_names *names)
{
    char *path = mb_cli_path_suffix(model, ".classes");
    if (!path) {
        mb_cli_error(prog, "out of memory");
        return NULL;
    }
    mb_outfile *of = mb_cli_outfile_open(prog, path);
    free(path);
    if (!of) return NULL;
    int bad = 0;
    for (int i = 0; !bad && i < names->n; i++) bad = fprintf(mb_outfile_fp(of), "%s\n", names->v[i]) < 0;
    if (bad) {
        mb_cli_write_error(prog, mb_outfile_path(of));
        mb_outfile_discard(of);
        return NULL;
    }
    return of;
}

int mb_cli_classes_check(const char *prog, const char *out, const mb_cli_names *names)
{
    mb_cli_names saved = {0};
    const int r = mb_cli_classes_read(prog, out, names->n, &saved);
    if (r < 0) {
        mb_cli_names_free(&saved);
        return -1;
    }
    if (r == 0) {
        mb_cli_warn(prog, "%s.classes not found: the class names are not checked (it is written at the next save)",
                    out);
        return 0;
    }
    for (int c = 0; c < names->n; c++)
        if (strcmp(saved.v[c], names->v[c]) != 0) {
            char a[256], b[256];
            mb_cli_error(prog, "%s.classes: the run being resumed has the classes %s, not %s (in this order)", out,
                         mb_cli_names_list(&saved, a, sizeof a), mb_cli_names_list(names, b, sizeof b));
            mb_cli_names_free(&saved);
            return -1;
        }
    mb_cli_names_free(&saved);
    return 1;
}

void mb_cli_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* ---- pooled records ---------------------------------------------------------------- */

void mb_cli_pooler_free(mb_cli_pooler *p)
{
    mb_state_free(p->st);
    free(p->tok);
    free(p->hs);
    free(p->acc);
    free(p->pooled);
    memset(p, 0, sizeof *p);
}

int mb_cli_pooler_init(mb_cli_pooler *p, const char *prog, mb_model *m, int64_t records, int64_t L, int64_t period)
{
    memset(p, 0, sizeof *p);
    p->prog = prog;
    const int64_t B = records < 1 ? 1 : records < MB_CLI_POOL_ROWS ? records : MB_CLI_POOL_ROWS;
    int64_t chunk = MB_CLI_POOL_TOKENS / B > 0 ? MB_CLI_POOL_TOKENS / B : 1;
    chunk = chunk < L ? chunk : L;
    if (period > 1) chunk = chunk < period ? period : chunk / period * period;
    p->m = m;
    p->B = B;
    p->chunk = chunk;
    p->d = mb_model_config(m)->d_model;
    p->tok = malloc(sizeof(int32_t) * (size_t)(B * chunk));
    p->hs = malloc(sizeof(float) * (size_t)(B * p->d));
    p->acc = malloc(sizeof(double) * (size_t)(B * p->d));
    p->pooled = malloc(sizeof(float) * (size_t)(B * p->d));
    if (!p->tok || !p->hs || !p->acc || !p->pooled) {
        mb_cli_error(prog, "out of memory for %lld records of %lld tokens a pass", (long long)B, (long long)chunk);
        mb_cli_pooler_free(p);
        return -1;
    }
    if (!(p->st = mb_state_create(m, (int)B))) {
        mb_cli_error(prog, "state: %s", mb_error_last());
        mb_cli_pooler_free(p);
        return -1;
    }
    return 0;
}

int mb_cli_pooler_run(mb_cli_pooler *p, int64_t nb, int64_t L, mb_cli_fetch_fn fetch, void *ud)
{
    const int64_t B = p->B, dm = p->d;
    mb_state_reset(p->st);
    memset(p->acc, 0, sizeof(double) * (size_t)(B * dm));
    for (int64_t t0 = 0; t0 < L; t0 += p->chunk) {
        const int64_t n = L - t0 < p->chunk ? L - t0 : p->chunk;
        for (int64_t b = 0; b < nb; b++)
            if (fetch(ud, b, t0, n, p->tok + b * n)) return -1;
        /* the state holds B rows: rows past the last record run on copies of the first */
        for (int64_t b = nb; b < B; b++) memcpy(p->tok + b * n, p->tok, sizeof(int32_t) * (size_t)n);
        memset(p->hs, 0, sizeof(float) * (size_t)(B * dm));
        if (mb_model_forward_chunk_pooled(p->m, p->st, p->tok, (int)n, NULL, p->hs)) {
            mb_cli_error(p->prog, "%s", mb_error_last());
            return -1;
        }
        for (int64_t i = 0; i < B * dm; i++) p->acc[i] += p->hs[i];
    }
    for (int64_t i = 0; i < B * dm; i++) p->pooled[i] = (float)(p->acc[i] / (double)L);
    return 0;
}

/* ---- an evaluation's counts ------------------------------------------------------------ */

void mb_cli_eval_add(mb_cli_eval *ev, int c, const float *probs)
{
    int best = 0;
    for (int j = 1; j < ev->C; j++) best = probs[j] > probs[best] ? j : best;
    ev->conf[(size_t)c * ev->C + best]++;
    ev->correct += best == c;
    ev->n++;
    ev->loss -= log(probs[c] > 1e-30f ? (double)probs[c] : 1e-30);
}

double mb_cli_eval_acc(const mb_cli_eval *ev) { return ev->n ? (double)ev->correct / (double)ev->n : NAN; }

double mb_cli_eval_chance(const mb_cli_eval *ev)
{
    int64_t best = 0;
    for (int c = 0; c < ev->C; c++) {
        int64_t row = 0;
        for (int j = 0; j < ev->C; j++) row += ev->conf[(size_t)c * ev->C + j];
        best = row > best ? row : best;
    }
    return ev->n ? (double)best / (double)ev->n : NAN;
}

void mb_cli_print_confusion(FILE *f, const mb_cli_names *names, const mb_cli_eval *ev)
{
    const int C = ev->C;
    const char *corner = "true\\pred";
    int w0 = (int)strlen(corner);
    for (int c = 0; c < C; c++) w0 = (int)strlen(names->v[c]) > w0 ? (int)strlen(names->v[c]) : w0;
    fprintf(f, "%-*s", w0, corner);
    for (int j = 0; j < C; j++) {
        int w = (int)strlen(names->v[j]);
        w = w < 6 ? 6 : w;
        fprintf(f, "  %*s", w, names->v[j]);
    }
    fputc('\n', f);
    for (int c = 0; c < C; c++) {
        fprintf(f, "%-*s", w0, names->v[c]);
        for (int j = 0; j < C; j++) {
            int w = (int)strlen(names->v[j]);
            w = w < 6 ? 6 : w;
            fprintf(f, "  %*lld", w, (long long)ev->conf[(size_t)c * C + j]);
        }
        fputc('\n', f);
    }
}

void mb_cli_log_confusion(FILE *f, const mb_cli_eval *ev)
{
    fputs(", \"confusion\": [", f);
    for (int c = 0; c < ev->C; c++) {
        fputs(c ? ", [" : "[", f);
        for (int j = 0; j < ev->C; j++) fprintf(f, "%s%lld", j ? ", " : "", (long long)ev->conf[(size_t)c * ev->C + j]);
        fputc(']', f);
    }
    fputc(']', f);
}

double mb_cli_eval_loss(const mb_cli_eval *ev) { return ev->n ? ev->loss / (double)ev->n : NAN; }

double mb_cli_binom_tail(int64_t n, int64_t k, double p)
{
    if (k <= 0) return 1.0;
    if (k > n) return 0.0;
    if (p <= 0.0) return 0.0;
    if (p >= 1.0) return 1.0;
    /* terms in log space (n reaches the hundreds of thousands of windows),
     * summed from the largest down to where they stop counting */
    const double lp = log(p), lq = log1p(-p), lg1 = lgamma((double)n + 1.0);
    double sum = 0.0;
    for (int64_t j = k; j <= n; j++) {
        const double t = exp(lg1 - lgamma((double)j + 1.0) - lgamma((double)(n - j) + 1.0) + (double)j * lp +
                             (double)(n - j) * lq);
        sum += t;
        if (j > (double)n * p && t < sum * 1e-17) break;
    }
    return sum < 1.0 ? sum : 1.0;
}

int mb_cli_eval_chance_note(FILE *f, const char *lead, const mb_cli_eval *ev)
{
    if (ev->n <= 0) return 0;
    const double chance = mb_cli_eval_chance(ev), tail = mb_cli_binom_tail(ev->n, ev->correct, chance);
    if (!(tail > 0.05)) return 0;
    fprintf(f,
            "%s: no better than chance: a labeller right %.1f%% of the time gets %lld of %lld or more with "
            "probability %.2f (the classes are not told apart here)\n",
            lead, 100.0 * chance, (long long)ev->correct, (long long)ev->n, tail);
    return 1;
}

/* ---- a classifier's training run: its validations ------------------------------ */

int mb_cli_cls_val_init(mb_cli_cls_val *v, const char *prog, int C, const char *unit)
{
    memset(v, 0, sizeof *v);
    v->unit = unit;
    v->ev.C = v->best.C = C;
    v->ev.conf = calloc((size_t)C * C, sizeof *v->ev.conf);
    v->best.conf = calloc((size_t)C * C, sizeof *v->best.conf);
    if (!v->ev.conf || !v->best.conf) {
        mb_cli_error(prog, "out of memory");
        mb_cli_cls_val_free(v);
        return -1;
    }
    return 0;
}

void mb_cli_cls_val_free(mb_cli_cls_val *v)
{
    free(v->ev.conf);
    free(v->best.conf);
    v->ev.conf = v->best.conf = NULL;
}

void mb_cli_cls_val_keep_best(mb_cli_cls_val *v)
{
    int64_t *conf = v->best.conf;
    v->best = v->ev;
    v->best.conf = conf;
    memcpy(conf, v->ev.conf, sizeof *conf * (size_t)v->ev.C * (size_t)v->ev.C);
    v->have_best = 1;
}

void mb_cli_cls_fields_train(const mb_loss_stats *acc, FILE *f, int json)
{
    const double loss = acc->count ? acc->loss_sum / (double)acc->count : NAN;
    const double tacc = acc->count ? (double)acc->correct / (double)acc->count : NAN;
    if (json) fprintf(f, ", \"train_loss\": %.6f, \"train_acc\": %.6f", loss, tacc);
    else fprintf(f, "  loss %.4f  acc %.3f", loss, tacc);
}

void mb_cli_cls_fields_val(const mb_cli_cls_val *v, FILE *f, int json)
{
    const mb_cli_eval *ev = &v->ev;
    if (!json) {
        fprintf(f, "  val acc %.4f loss %.4f", mb_cli_eval_acc(ev), mb_cli_eval_loss(ev));
        return;
    }
    fprintf(f, ", \"val_acc\": %.6f, \"val_loss\": %.6f, \"val_%s\": %lld", mb_cli_eval_acc(ev),
            mb_cli_eval_loss(ev), v->unit, (long long)ev->n);
    mb_cli_log_confusion(f, ev);
}

int mb_cli_cls_report(const char *prog, const mb_cli_cls_val *v, const mb_cli_names *names, const char *out,
                      const mb_cli_val_hist *h, int select_last, int64_t step, double secs)
{
    const int best = !select_last && h->best_step > 0 && h->best_step != step;
    printf("classify: %lld steps, model %s (class names in %s.classes", (long long)step, out, out);
    if (best)
        printf("; the lowest validation loss, step %lld; the last step's model is %s.step-%lld",
               (long long)h->best_step, out, (long long)step);
    printf("), %.1fs\n", secs);
    const mb_cli_eval *ev = best && v->have_best ? &v->best : v->have_val ? &v->ev : NULL;
    if (ev) {
        printf("classify: validation accuracy %.4f on %lld %s (chance %.4f), loss %.4f%s\n", mb_cli_eval_acc(ev),
               (long long)ev->n, v->unit, mb_cli_eval_chance(ev), mb_cli_eval_loss(ev),
               best && !v->have_best ? ", the last step's model" : "");
        mb_cli_print_confusion(stdout, names, ev);
        mb_cli_eval_chance_note(stdout, "classify", ev);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        mb_cli_error(prog, "stdout: write error");
        return 1;
    }
    return 0;
}
