#define _POSIX_C_SOURCE 200809L /* mkdtemp, opendir */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "ops/ops.h"

uint64_t mb_test_seed(void)
{
    static uint64_t seed;
    static int done;
    if (!done) {
        const char *env = getenv("MB_TEST_SEED");
        seed = env ? strtoull(env, NULL, 10)
                   : (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
        printf("# MB_TEST_SEED=%llu\n", (unsigned long long)seed);
        done = 1;
    }
    return seed;
}

void mb_test_fill(mb_rng *r, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)mb_rng_uniform(r);
}

void mb_test_fill_normal(mb_rng *r, float *x, size_t n, float std)
{
    for (size_t i = 0; i < n; i++) x[i] = std * (float)mb_rng_normal(r);
}

double mb_test_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
        if (!isfinite(a[i])) return INFINITY;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

double mb_test_max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

double mb_test_dot(const float *x, const float *w, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)w[i];
    return s;
}

double mb_test_grad_check(const char *what, mb_test_loss_fn f, void *ud, float *x,
                          const float *g, size_t n, size_t max_checks, double eps)
{
    size_t checks = n < max_checks ? n : max_checks;
    double num = 0, den = 0;
    for (size_t c = 0; c < checks; c++) {
        size_t i = checks == n ? c : (size_t)((double)c * (double)n / (double)checks);
        float orig = x[i];
        /* the step must be exactly representable so the difference is true */
        volatile float xp = orig + (float)(eps * fmax(1.0, fabs(orig)));
        volatile float xm = orig - (float)(eps * fmax(1.0, fabs(orig)));
        x[i] = xp;
        double fp = f(ud);
        x[i] = xm;
        double fm = f(ud);
        x[i] = orig;
        double fd = (fp - fm) / ((double)xp - (double)xm);
        double d = fd - (double)g[i];
        num += d * d;
        den += fd * fd;
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    printf("# grad check %-32s n=%-7zu checked=%-5zu rel err %.3e\n", what, n, checks, err);
    return err;
}

void *mb_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz + 1);
    if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[sz] = 0;
        if (len) *len = (size_t)sz;
    }
    return buf;
}

void mb_test_tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "/tmp/mbtest_%d_%s", (int)getpid(), name);
}

static void sh_slurp(const char *path, char *buf, size_t cap)
{
    if (!buf || !cap) return;
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

int mb_test_sh(const char *cmd, char *out, size_t outcap, char *err, size_t errcap)
{
    char po[256], pe[256];
    mb_test_tmp_path(po, sizeof po, "sh_out");
    mb_test_tmp_path(pe, sizeof pe, "sh_err");
    size_t n = strlen(cmd) + 2 * sizeof po + 16;
    char *line = malloc(n);
    if (!line) return -1;
    snprintf(line, n, "%s >%s 2>%s", cmd, po, pe);
    int st = system(line);
    free(line);
    sh_slurp(po, out, outcap);
    sh_slurp(pe, err, errcap);
    remove(po);
    remove(pe);
    if (st == -1) return -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

int mb_test_toolv(const char *bin, char *out, size_t outcap, char *err, size_t errcap, const char *fmt,
                  va_list ap)
{
    char args[4096], cmd[4608];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "( %s %s )", bin, args);
    const int rc = mb_test_sh(cmd, out, outcap, err, errcap);
    if (rc >= 128) fprintf(stderr, "# %s %s: killed by signal %d\n", bin, args, rc - 128);
    assert_true(rc >= 0 && rc < 128);
    return rc;
}

int mb_test_tool(const char *bin, char *out, size_t outcap, char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int rc = mb_test_toolv(bin ? bin : "false", out, outcap, err, errcap, fmt, ap);
    va_end(ap);
    if (rc != 0 && err) fprintf(stderr, "# exit %d: %s", rc, err);
    return rc;
}

/* sleep for ms milliseconds (nanosleep: usleep is not POSIX 2008) */
static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int mb_test_signal_run(const char *cmd, const char *ready, int sig, char *out, size_t outcap, char *err,
                       size_t errcap)
{
    char po[256], pe[256], line[4608];
    mb_test_tmp_path(po, sizeof po, "sig_out");
    mb_test_tmp_path(pe, sizeof pe, "sig_err");
    remove(pe);
    snprintf(line, sizeof line, "exec %s >%s 2>%s", cmd, po, pe);
    const pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", line, (char *)NULL);
        _exit(127);
    }
    /* wait for the ready line (or for the tool to end without it) */
    int st = 0, ended = 0, seen = 0;
    for (int t = 0; t < 120 * 20 && !seen && !ended; t++) {
        char *text = mb_test_read_file(pe, NULL); /* all of it: progress lines can be many */
        seen = text && strstr(text, ready) != NULL;
        free(text);
        if (!seen) {
            ended = waitpid(pid, &st, WNOHANG) == pid;
            if (!ended) sleep_ms(50);
        }
    }
    if (seen) {
        kill(pid, sig & ~MB_TEST_SIG_TWICE);
        if (sig & MB_TEST_SIG_TWICE) kill(pid, sig & ~MB_TEST_SIG_TWICE);
    }
    for (int t = 0; t < 120 * 20 && !ended; t++) {
        ended = waitpid(pid, &st, WNOHANG) == pid;
        if (!ended) sleep_ms(50);
    }
    if (!ended) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    sh_slurp(po, out, outcap);
    sh_slurp(pe, err, errcap);
    remove(po);
    remove(pe);
    if (!seen || !ended) fprintf(stderr, "# %s: %s\n", cmd, !seen ? "never printed the ready line" : "did not end");
    assert_true(seen && ended);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

/* ---- the tools' data-parallel runs -------------------------------------- */

int mb_test_count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

void mb_test_error_line(const char *err, const char *prog, const char *needle)
{
    const size_t np = strlen(prog), ne = strlen(err);
    if (mb_test_count(err, "\n") != 1 || ne == 0 || err[ne - 1] != '\n' || strncmp(err, prog, np) != 0 ||
        strncmp(err + np, ": error: ", 9) != 0 || !strstr(err, needle)) {
        fprintf(stderr, "# expected one line '%s: error: ...%s...', got: [%s]\n", prog, needle, err);
        fail();
    }
}

int mb_test_json_values(const char *log, const char *key, double *v, int cap)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    int n = 0;
    for (const char *p = log; n < cap && (p = strstr(p, k)); p += strlen(k)) v[n++] = atof(p + strlen(k));
    return n;
}

double mb_test_json_max_diff(const char *a, const char *b, const char *key, int expect)
{
    double va[64], vb[64];
    const int na = mb_test_json_values(a, key, va, 64), nb = mb_test_json_values(b, key, vb, 64);
    assert_int_equal(na, expect);
    assert_int_equal(nb, expect);
    double d = 0;
    for (int i = 0; i < na; i++) d = fmax(d, fabs(va[i] - vb[i]));
    return d;
}

void mb_test_mkdtemp(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "/tmp/mbtest_%s_XXXXXX", name);
    assert_non_null(mkdtemp(buf));
}

static int cmp_names(const void *a, const void *b) { return strcmp(a, b); }

void mb_test_listing(const char *dir, char *buf, size_t cap)
{
    char names[16][256];
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) && n < 16)
        if (e->d_name[0] != '.') snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        strncat(buf, names[i], cap - strlen(buf) - 1);
        if (i + 1 < n) strncat(buf, " ", cap - strlen(buf) - 1);
    }
}

void mb_test_rmtree(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

void mb_test_one_error(int rc, int want_rc, const char *err, const char *prog, const char *needle)
{
    char tag[64];
    snprintf(tag, sizeof tag, "%s: error:", prog);
    printf("# rc %d: %s", rc, err);
    assert_int_equal(rc, want_rc);
    assert_int_equal(mb_test_count(err, tag), 1);
    assert_non_null(strstr(err, needle));
}

/* a fixed stream for the helper's directions (no dependence on the library's rng) */
static double fd_unit(uint64_t *z)
{
    uint64_t v = (*z += 0x9E3779B97F4A7C15ull);
    v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ull;
    v = (v ^ (v >> 27)) * 0x94D049BB133111EBull;
    v ^= v >> 31;
    return (double)(v >> 11) * 0x1.0p-53;
}

/* f with x moved to x0 + s * t * v (s = +1 or -1); *moved gets
 * sum_i g_i (x_i - x0_i), the analytic gradient's prediction of the change */
static double fd_along(mb_test_loss_fn f, void *ud, float *x, const float *x0, const float *g, const double *v,
                       size_t n, double t, double *moved)
{
    double dot = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)((double)x0[i] + t * v[i]);
        dot += (double)g[i] * ((double)x[i] - (double)x0[i]);
    }
    const double r = f(ud);
    memcpy(x, x0, n * sizeof(float));
    *moved = dot;
    return r;
}

double mb_test_fd_tensor(const char *what, mb_test_loss_fn f, void *ud, float *x, const float *g,
                         size_t n, size_t checks, double floor, double eps, mb_test_fd_tally *tally)
{
    double ss = 0, xs2 = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i], xs2 += (double)x[i] * x[i];
    const double rms = sqrt(ss / (double)n), xs = fmax(1.0, sqrt(xs2 / (double)n));
    if (checks > n) checks = n;

    /* 1. entry by entry: central differences at eps and eps / 2 */
    double num = 0, den = 0, raw = 0;
    int moved = 0;
    for (size_t c = 0; c < checks; c++) {
        const size_t i = checks == n ? c : (size_t)((double)c * (double)n / (double)checks);
        double fd[2];
        for (int k = 0; k < 2; k++) {
            const float orig = x[i];
            const double h = (k ? eps / 2 : eps) * fmax(1.0, fabs(orig));
            volatile float xp = orig + (float)h, xm = orig - (float)h;
            x[i] = xp;
            const double fp = f(ud);
            x[i] = xm;
            const double fm = f(ud);
            x[i] = orig;
            moved |= fp != fm;
            fd[k] = (fp - fm) / ((double)xp - (double)xm);
        }
        /* the loss's rounding makes each difference noisy (~5e-6 in these
         * suites, floor / 60), which two step sizes do not always reveal:
         * their noises can agree by chance; floor / 16 (~4 of it) is allowed */
        const double err = fabs(fd[0] - g[i]), excess = fmax(0.0, err - 3 * fabs(fd[0] - fd[1]) - floor / 16);
        raw += err * err;
        num += excess * excess;
        den += fd[0] * fd[0];
    }
    const double rms_fd = sqrt(den / (double)checks);
    double e = -1;
    mb_test_fd_how how = MB_TEST_FD_UNRESOLVED;
    if (fmax(rms, rms_fd) >= floor) {
        e = den > 0 ? sqrt(num / den) : sqrt(num);
        const double er = den > 0 ? sqrt(raw / den) : sqrt(raw);
        how = MB_TEST_FD_ENTRIES;
        printf("# grad check %-40s n=%-6zu checked=%-4zu rel err %.3e (%.3e before the fd's own error)\n", what, n,
               checks, e, er);
    } else {
        /* 2. as a whole: entries under the noise, but the directional
         * derivative along the gradient is |g| = rms sqrt(n), and a step
         * that moves each entry by ~eps cuts the noise by sqrt(n) more.
         * Two directions: the gradient's, and the gradient reweighted by
         * random factors in [0.5, 1.5] (an analytic gradient wrong in
         * direction but not in projection fails the second). With g == 0,
         * random signs: a loss that moves there has a gradient g lacks. */
        double *v = malloc(2 * n * sizeof(double));
        float *x0 = malloc(n * sizeof(float));
        assert_true(v && x0);
        memcpy(x0, x, n * sizeof(float));
        uint64_t z = 0x5EEDull ^ (uint64_t)n;
        double nv[2] = {0, 0}, vmax = 0;
        for (size_t i = 0; i < n; i++) {
            const double s = fd_unit(&z) < 0.5 ? -1.0 : 1.0;
            v[i] = rms > 0 ? g[i] : s;
            v[n + i] = rms > 0 ? g[i] * (0.5 + fd_unit(&z)) : (fd_unit(&z) < 0.5 ? -1.0 : 1.0);
            nv[0] += v[i] * v[i], nv[1] += v[n + i] * v[n + i];
        }
        for (int k = 0; k < 2; k++)
            for (size_t i = 0; i < n; i++) v[k * n + i] /= sqrt(nv[k]);
        for (size_t i = 0; i < n; i++) vmax = fmax(vmax, fabs(v[i]));
        /* noise of a difference at step t: (floor / 60) (eps xs / t); the
         * step that puts |g| 120 of it above (60 resolve), at least
         * eps xs sqrt(n), at most moving the largest entry by 64 eps xs
         * (the two steps' agreement, required below, says whether that is
         * still a derivative) */
        const double gn = rms * sqrt((double)n), t_min = eps * xs * sqrt((double)n);
        const double t_need = gn > 0 ? 2 * floor * eps * xs / gn : INFINITY, t_max = 64 * eps * xs / vmax;
        const double t = fmin(fmax(t_min, t_need), fmax(t_min, t_max));
        const double allow = floor / 16 * (eps * xs / t);
        double fdk[2][2], ank[2], wnum = 0, wden = 0, wraw = 0, slack0 = 0;
        int wmoved = 0;
        for (int k = 0; k < 2; k++) {
            for (int s = 0; s < 2; s++) {
                const double ts = s ? t / 2 : t;
                double dp, dm;
                const double fp = fd_along(f, ud, x, x0, g, v + (size_t)k * n, n, ts, &dp);
                const double fm = fd_along(f, ud, x, x0, g, v + (size_t)k * n, n, -ts, &dm);
                wmoved |= fp != fm;
                fdk[k][s] = (fp - fm) / (2 * ts);
                if (!s) ank[k] = (dp - dm) / (2 * ts);
            }
            const double err = fabs(fdk[k][0] - ank[k]), slack = 3 * fabs(fdk[k][0] - fdk[k][1]);
            if (!k) slack0 = slack;
            wraw += err * err;
            wnum += pow(fmax(0.0, err - slack - allow), 2);
            wden += fdk[k][0] * fdk[k][0];
        }
        free(v);
        free(x0);
        /* resolved: 60 noises above, and the two steps agree (a difference
         * that is not yet a derivative at these steps resolves nothing) */
        const double sig = fmax(fabs(ank[0]), fabs(fdk[0][0])), noise = floor / 60 * (eps * xs / t);
        if (rms == 0 && !moved && !wmoved) {
            e = 0;
            how = MB_TEST_FD_ZERO;
            printf("# grad check %-40s n=%-6zu gradient 0 and the loss does not move (entries, and as a whole at "
                   "step %.2e)\n", what, n, t);
        } else if (sig >= 60 * noise && slack0 <= 0.5 * sig) {
            e = wden > 0 ? sqrt(wnum / wden) : sqrt(wnum);
            how = MB_TEST_FD_WHOLE;
            printf("# grad check %-40s n=%-6zu as a whole (rms %.1e under %.0e): |g| %.2e, step %.2e, noise ~%.1e; "
                   "rel err %.3e (%.3e before the fd's own error)\n",
                   what, n, fmax(rms, rms_fd), floor, fdk[0][0], t, noise, e, wden > 0 ? sqrt(wraw / wden) : sqrt(wraw));
        } else {
            printf("# grad check %-40s n=%-6zu UNRESOLVED in fp32: rms %.1e, and as a whole |g| %.1e against noise "
                   "~%.1e at step %.2e (the steps disagree by %.1e)\n",
                   what, n, fmax(rms, rms_fd), gn, noise, t, slack0 / 3);
        }
    }
    if (tally) {
        tally->n++;
        tally->entries += how == MB_TEST_FD_ENTRIES;
        tally->whole += how == MB_TEST_FD_WHOLE;
        tally->zero += how == MB_TEST_FD_ZERO;
        if (how == MB_TEST_FD_UNRESOLVED) {
            tally->unresolved++;
            const size_t len = strlen(tally->names);
            snprintf(tally->names + len, sizeof tally->names - len, "%s%s", len ? ", " : "", what);
        } else if (e > tally->worst || e != e) {
            tally->worst = e;
            snprintf(tally->worst_name, sizeof tally->worst_name, "%s", what);
        }
    } else if (how == MB_TEST_FD_UNRESOLVED) {
        fail_msg("%s: gradient not resolvable by fp32 finite differences", what);
    }
    return e;
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

double mb_test_fd_tally_check(const mb_test_fd_tally *t, const char *what, int n_params,
                              const char *const *covered, const char *golden, int max_unresolved)
{
    printf("# %s: %d of %d tensors checked by finite differences (%d entry by entry, %d as a whole, %d exactly "
           "zero), worst rel err %.3e (%s); %d unresolved%s%s%s%s\n",
           what, t->n - t->unresolved, n_params, t->entries, t->whole, t->zero, t->worst,
           t->worst_name[0] ? t->worst_name : "-",
           t->unresolved, t->unresolved ? " (" : "", t->names, t->unresolved ? "), their gradients checked by " : "",
           t->unresolved ? golden : "");
    assert_int_equal(t->n, n_params);
    assert_int_equal(t->entries + t->whole + t->zero + t->unresolved, t->n);
    /* every unresolved tensor is of a kind test_golden checks in float64 */
    const char *p = t->names;
    while (*p) {
        const char *q = strstr(p, ", ");
        const size_t len = q ? (size_t)(q - p) : strlen(p);
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        int ok = 0;
        for (int k = 0; covered && covered[k]; k++) ok |= ends_with(name, covered[k]);
        if (!ok) fail_msg("%s: %s is unresolved and not of a kind %s covers", what, name, golden);
        p += len + (q ? 2 : 0);
    }
    if (t->unresolved > max_unresolved)
        fail_msg("%s: %d tensors unresolved, at most %d expected", what, t->unresolved, max_unresolved);
    return t->worst;
}

void mb_test_make_tokens(mb_rng *r, mb_test_model_case *c, int vocab)
{
    const size_t M = (size_t)c->B * c->L;
    c->tok = malloc(M * sizeof(int32_t));
    c->tgt = malloc(M * sizeof(int32_t));
    assert_non_null(c->tok);
    assert_non_null(c->tgt);
    for (size_t i = 0; i < M; i++) {
        c->tok[i] = (int32_t)mb_rng_below(r, (uint32_t)vocab);
        c->tgt[i] = i % 5 == 2 ? MB_IGNORE_INDEX : (int32_t)mb_rng_below(r, (uint32_t)vocab);
    }
}

double mb_test_model_loss(void *ud)
{
    mb_test_model_case *c = ud;
    mb_loss_stats st = {0};
    assert_int_equal(mb_model_forward(c->m, c->tok, c->B, c->L, c->tgt, NULL, &st), 0);
    return st.loss_sum / (double)st.count;
}

/* Whether class `have` is what the rule draws from logits z with u, or
 * with the draw on an edge that rounding moves: u within rel_tol of a
 * class boundary; or a cut on a near tie, where rounding decides which of
 * two classes is kept, and the kept mass, so every later class moves:
 * the top_p cut nudged by rel_tol, the top_k cut one either side (found:
 * the 200th and 201st of 20,000 logits within rounding, the draw then
 * one class over at u 0.46). */
static int replay_near(const float *z, int V, const mb_sampler *sp, double u, double rel_tol, int have, void *scratch)
{
    const double us[3] = {u, u * (1 - rel_tol), fmin(u * (1 + rel_tol), 1 - 0x1.0p-30)};
    const double ps[3] = {sp->top_p, sp->top_p * (1 - rel_tol), fmin(sp->top_p * (1 + rel_tol), 1.0)};
    const int ks[3] = {sp->top_k, sp->top_k > 1 ? sp->top_k - 1 : sp->top_k, sp->top_k > 0 ? sp->top_k + 1 : 0};
    for (int a = 0; a < 3; a++)
        for (int c = 0; c < 3; c++)
            for (int e = 0; e < 3; e++)
                if ((a + c + e == 0 || (a > 0) + (c > 0) + (e > 0) == 1) &&
                    mb_sample_pick(z, V, sp->temperature, ks[e], ps[c], us[a], scratch) == have)
                    return 1;
    /* a swap at the cut: the kept class of least logit and the cut class of
     * most within rounding of each other, which the other engine ranked the
     * other way round, so it kept the other one and every class after it in
     * index order moved (found: row 15 of 20, top-k 200, top-p 0.9, 20,000
     * logits). The draw with the two logits exchanged. The pick leaves the
     * kept weights in scratch, 0 where cut. */
    mb_sample_pick(z, V, sp->temperature, sp->top_k, sp->top_p, u, scratch);
    const double *w = scratch;
    int lo = -1, hi = -1;
    for (int k = 0; k < V; k++) {
        if (w[k] > 0) {
            if (lo < 0 || z[k] < z[lo]) lo = k;
        } else if (hi < 0 || z[k] > z[hi]) {
            hi = k;
        }
    }
    if (lo < 0 || hi < 0 || (double)z[lo] - z[hi] > rel_tol * fmax(1.0, fabs((double)z[lo]))) return 0;
    float *zs = malloc(sizeof(float) * (size_t)V);
    assert_non_null(zs);
    memcpy(zs, z, sizeof(float) * (size_t)V);
    zs[lo] = z[hi], zs[hi] = z[lo];
    const int swapped = mb_sample_pick(zs, V, sp->temperature, sp->top_k, sp->top_p, u, scratch) == have;
    free(zs);
    return swapped;
}

int mb_test_sample_replay(mb_model *m, mb_model *ref, int B, int n, const mb_sampler *sp, double rel_tol)
{
    const mb_config *cfg = mb_model_config(m);
    const int V = cfg->vocab_size, Vp = mb_config_vocab_padded(cfg), k = n / 3;
    int32_t *tok = malloc(sizeof(int32_t) * B), *cur = malloc(sizeof(int32_t) * B);
    int32_t *got = malloc(sizeof(int32_t) * (size_t)B * n), *cut = malloc(sizeof(int32_t) * (size_t)B * n);
    float *lg = malloc(sizeof(float) * (size_t)B * Vp);
    void *scratch = malloc(mb_sample_scratch_bytes(V));
    assert_true(tok && cur && got && cut && lg && scratch && k >= 1);
    for (int b = 0; b < B; b++) tok[b] = (int32_t)((b * 7 + 3) % V);
    mb_state *st = mb_state_create(m, B);
    assert_non_null(st);
    if (mb_model_sample(m, st, tok, n, sp, got)) fail_msg("sample: %s", mb_error_last());
    for (size_t i = 0; i < (size_t)B * n; i++) assert_true(got[i] >= 0 && got[i] < V);

    /* in two calls after a reset: the second starts from the first's last draws */
    mb_state_reset(st);
    int32_t *part = malloc(sizeof(int32_t) * (size_t)B * n);
    assert_non_null(part);
    if (mb_model_sample(m, st, tok, k, sp, part)) fail_msg("sample: %s", mb_error_last());
    for (int b = 0; b < B; b++) {
        memcpy(cut + (size_t)b * n, part + (size_t)b * k, sizeof(int32_t) * k);
        cur[b] = part[(size_t)b * k + k - 1];
    }
    if (mb_model_sample(m, st, cur, n - k, sp, part)) fail_msg("sample: %s", mb_error_last());
    for (int b = 0; b < B; b++) memcpy(cut + (size_t)b * n + k, part + (size_t)b * (n - k), sizeof(int32_t) * (n - k));
    assert_memory_equal(cut, got, sizeof(int32_t) * (size_t)B * n);
    free(part);
    mb_state_free(st);

    /* the replay: ref's steps through the drawn classes */
    mb_state *rs = mb_state_create(ref, B);
    assert_non_null(rs);
    memcpy(cur, tok, sizeof(int32_t) * B);
    int off = 0, distinct = 0, choices = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(mb_model_step(ref, rs, cur, lg), 0);
        for (int b = 0; b < B; b++) {
            const double u = (mb_sample_bits(sp->seed, i, b) + 0.5) * 0x1.0p-23;
            const int want = mb_sample_pick(lg + (size_t)b * Vp, V, sp->temperature, sp->top_k, sp->top_p, u, scratch);
            const int have = got[(size_t)b * n + i];
            distinct += i && have != got[(size_t)b * n + i - 1];
            /* a draw had a choice when the nucleus's two ends are different classes */
            choices += mb_sample_pick(lg + (size_t)b * Vp, V, sp->temperature, sp->top_k, sp->top_p, 0x1.0p-30, scratch) !=
                       mb_sample_pick(lg + (size_t)b * Vp, V, sp->temperature, sp->top_k, sp->top_p, 1 - 0x1.0p-30, scratch);
            if (want != have) {
                if (!replay_near(lg + (size_t)b * Vp, V, sp, u, rel_tol, have, scratch))
                    fail_msg("draw %d of row %d: %d, the replay draws %d (u %.9f)", i, b, have, want, u);
                off++;
            }
            cur[b] = have;
        }
    }
    printf("# sample %d rows x %d draws (T %.2f, top_k %d, top_p %.2f): %d with a choice, %d changes of class, %d draws on a "
           "boundary\n",
           B, n, sp->temperature, sp->top_k, sp->top_p, choices, distinct, off);
    /* draws whose nucleus is one class test only the argmax: most must have had a choice */
    assert_true(choices > B * n / 2);
    mb_state_free(rs);
    free(tok), free(cur), free(got), free(cut), free(lg), free(scratch);
    return off;
}

void mb_test_set_dt_bias(mb_model *m, mb_rng *r)
{
    static const char suffix[] = "dt_proj.bias";
    const size_t ns = sizeof suffix - 1;
    for (int i = 0; i < m->params.n; i++) {
        const mb_param *p = &m->params.items[i];
        const size_t n = strlen(p->name);
        if (n < ns || strcmp(p->name + n - ns, suffix) != 0) continue;
        float *b = m->params.data + p->offset;
        for (size_t j = 0; j < p->numel; j++) b[j] = -1.f + (float)mb_rng_uniform(r);
    }
}

const mb_param *mb_test_param(const mb_model *m, const char *name)
{
    const int i = mb_params_find(&m->params, name);
    if (i < 0) fail_msg("the model has no parameter %s", name);
    return &m->params.items[i];
}

float *mb_test_param_data(const mb_model *m, const char *name)
{
    return m->params.data + mb_test_param(m, name)->offset;
}

void mb_test_filter_env(void)
{
    /* line by line, so a part killed at its time cap (a sanitizer's) still
     * shows in its log how far it got */
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *f = getenv("MB_TEST_FILTER");
    if (f && *f) {
        printf("# only the tests matching MB_TEST_FILTER=%s\n", f);
        cmocka_set_test_filter(f);
    }
}

mb_ctx *mb_test_cuda_step_ctx(const char *path)
{
    setenv("MB_CUDA_STEP", path, 1);
    mb_ctx *c = mb_ctx_create("cuda");
    unsetenv("MB_CUDA_STEP");
    return c;
}
