/* Shared command-line plumbing of the tools: see mb_cli.h. */
#include "mb_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int mb_cli_errf(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    if (!err || errlen == 0) return -1;
    int n = snprintf(err, errlen, "%s: ", path ? path : "(no file)");
    if (n < 0) {
        err[0] = '\0';
        return -1;
    }
    if ((size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *c = err; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
    return -1;
}

/* ---- the group of a data-parallel run (see mb_cli.h) ----------------------- */

static mb_dist *g_dist;
static int g_rank, g_ranks = 1;
static FILE *g_stderr;        /* ranks > 0: the real stderr (fd 2 goes to /dev/null) */
static char g_held[1024];     /* ranks > 0: the first error line, held for mb_cli_dist_sync */
static double *g_sync;        /* mb_cli_dist_sync's vector, ranks + MB_CLI_SYNC_N + 2 */

void mb_cli_error(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (g_rank != 0) {
        /* rank 0 reports; this one speaks only if it alone failed */
        if (!g_held[0]) {
            const int n = snprintf(g_held, sizeof g_held, "%s: error: ", prog);
            if (n > 0 && (size_t)n < sizeof g_held) vsnprintf(g_held + n, sizeof g_held - (size_t)n, fmt, ap);
        }
    } else {
        fprintf(stderr, "%s: error: ", prog);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

void mb_cli_warn(const char *prog, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: warning: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int mb_cli_parse_int(const char *prog, const char *opt, const char *s, int64_t lo, int64_t hi,
                     int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    /* 1k, 64k, 1M (powers of two: the sizes people type for sequence lengths) */
    if (!errno && end != s && (*end == 'k' || *end == 'K' || *end == 'M') && end[1] == '\0') {
        const long long mul = *end == 'M' ? 1LL << 20 : 1LL << 10;
        if (v > LLONG_MAX / mul || v < LLONG_MIN / mul) errno = ERANGE;
        else v *= mul;
        end++;
    }
    if (errno || end == s || *end || v < lo || v > hi) {
        mb_cli_error(prog, "%s expects an integer in [%lld, %lld], got '%s'", opt, (long long)lo,
                     (long long)hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int mb_cli_parse_real(const char *prog, const char *opt, const char *s, double lo, double hi,
                      double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        mb_cli_error(prog, "%s expects a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

double mb_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void mb_cli_duration(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e9) {
        snprintf(buf, n, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t < 60) snprintf(buf, n, "%lds", t);
    else if (t < 3600) snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
    else if (t < 86400) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldd%02ldh", t / 86400, (t / 3600) % 24);
}

uint64_t mb_cli_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t mb_cli_rng_below(uint64_t *state, uint64_t n)
{
    if (n <= 1) return 0;
    /* values below 2^64 mod n would make the low residues more likely:
     * draw again (probability < n / 2^64) */
    const uint64_t reject_below = (0 - n) % n;
    uint64_t x;
    do x = mb_cli_rng_next(state);
    while (x < reject_below);
    return x % n;
}

uint64_t mb_cli_rng_row(int64_t seed, int64_t step, int64_t row)
{
    uint64_t st = (uint64_t)seed * 0x9e3779b97f4a7c15ULL + (uint64_t)step;
    mb_cli_rng_next(&st);
    /* a second splitmix round over (step stream, row): rows get unrelated
     * streams, and neighbouring steps' rows do not overlap */
    st ^= (uint64_t)row * 0xd1b54a32d192ed03ULL;
    mb_cli_rng_next(&st);
    return st;
}

/* ---- shared training flags ------------------------------------------------ */

enum {
    O_DM = MB_CLI_OPT_BASE, O_NL, O_DS, O_EX, O_INIT, O_STEPS, O_BATCH, O_SEQ, O_LR, O_WARM, O_WD,
    O_CLIP, O_DEV, O_THR, O_TF32, O_SEED, O_LOG, O_RESUME, O_OUT, O_SAVE
};

const struct option mb_cli_train_options[] = {
    {"d-model", 1, 0, O_DM}, {"n-layer", 1, 0, O_NL}, {"d-state", 1, 0, O_DS},
    {"expand", 1, 0, O_EX}, {"init", 1, 0, O_INIT}, {"steps", 1, 0, O_STEPS},
    {"batch", 1, 0, O_BATCH}, {"seq-len", 1, 0, O_SEQ}, {"lr", 1, 0, O_LR},
    {"warmup", 1, 0, O_WARM}, {"weight-decay", 1, 0, O_WD}, {"grad-clip", 1, 0, O_CLIP},
    {"device", 1, 0, O_DEV}, {"threads", 1, 0, O_THR}, {"tf32", 0, 0, O_TF32},
    {"seed", 1, 0, O_SEED}, {"log", 1, 0, O_LOG}, {"resume", 0, 0, O_RESUME},
    {"out", 1, 0, O_OUT}, {"save-every", 1, 0, O_SAVE}, {0, 0, 0, 0}};

void mb_cli_train_default(mb_cli_train *t)
{
    memset(t, 0, sizeof *t);
    mb_config_default(&t->cfg);
    t->cfg.d_model = 128;
    t->cfg.n_layer = 4;
    t->steps = 1000;
    t->batch = 8;
    t->seq_len = 1024;
    t->lr = 2e-3;
    t->warmup_frac = 0.05;
    t->weight_decay = 0.1;
    t->grad_clip = 1.0;
    t->device = "cpu";
    t->seed = 1;
}

void mb_cli_train_help(FILE *f, const mb_cli_train *d)
{
    fprintf(f,
            "model (ignored with --resume: the checkpoint's own):\n"
            "  --d-model N        width of the residual stream [%d]\n"
            "  --n-layer N        Mamba blocks [%d]\n"
            "  --d-state N        SSM state size per channel [%d]\n"
            "  --expand N         inner width = expand * d-model [%d]\n"
            "  --init real|complex  S4D-Real or S4D-Lin (complex) A [%s]\n"
            "training:\n"
            "  --steps N          optimizer steps [%lld]\n"
            "  --batch N          sequences per step [%lld]\n"
            "  --seq-len N        tokens per sequence; 64k, 1M accepted [%lld]\n"
            "  --lr X             peak learning rate: linear warmup, cosine to lr/10 [%g]\n"
            "  --warmup F         warmup, as a fraction of the steps [%g]\n"
            "  --weight-decay X   AdamW decoupled decay (not on norms, biases, A, D) [%g]\n"
            "  --grad-clip X      clip the gradient's global L2 norm, 0 = off [%g]\n"
            "  --seed N           seed of the weights and of the data order [%lld]\n"
            "  --out MODEL        checkpoint (safetensors); optimizer state in MODEL.optim\n"
            "  --save-every N     also checkpoint every N steps, 0 = only at the end [%lld]\n"
            "  --resume           continue the run saved in --out (weights, optimizer, step)\n"
            "  --log FILE         append JSON-lines metrics to FILE\n"
            "device:\n"
            "  --device D         cpu, cuda or cuda:N [%s]\n"
            "  --threads N        CPU threads, 0 = all cores [%lld]\n"
            "  --tf32             GPU: TF32 tensor cores for the GEMMs (faster, ~1e-3 error)\n",
            d->cfg.d_model, d->cfg.n_layer, d->cfg.d_state, d->cfg.expand,
            d->cfg.init == MB_INIT_S4D_LIN ? "complex" : "real", (long long)d->steps,
            (long long)d->batch, (long long)d->seq_len, d->lr, d->warmup_frac, d->weight_decay,
            d->grad_clip, (long long)d->seed, (long long)d->save_every, d->device,
            (long long)d->threads);
}

static int set_cfg_int(const char *prog, const char *opt, const char *arg, int64_t lo, int64_t hi,
                       int *dst, mb_cli_train *t)
{
    int64_t v;
    if (mb_cli_parse_int(prog, opt, arg, lo, hi, &v)) return -1;
    *dst = (int)v;
    t->set_model = 1;
    return 1;
}

int mb_cli_train_option(mb_cli_train *t, const char *prog, int c, const char *arg)
{
    switch (c) {
    case O_DM: return set_cfg_int(prog, "--d-model", arg, 1, 1 << 16, &t->cfg.d_model, t);
    case O_NL: return set_cfg_int(prog, "--n-layer", arg, 1, 1024, &t->cfg.n_layer, t);
    case O_DS: return set_cfg_int(prog, "--d-state", arg, 1, 256, &t->cfg.d_state, t);
    case O_EX: return set_cfg_int(prog, "--expand", arg, 1, 16, &t->cfg.expand, t);
    case O_INIT:
        if (strcmp(arg, "real") == 0) t->cfg.init = MB_INIT_S4D_REAL;
        else if (strcmp(arg, "complex") == 0) t->cfg.init = MB_INIT_S4D_LIN;
        else {
            mb_cli_error(prog, "--init expects real or complex, got '%s'", arg);
            return -1;
        }
        t->set_model = 1;
        return 1;
    case O_STEPS: return mb_cli_parse_int(prog, "--steps", arg, 1, INT64_C(1) << 40, &t->steps) ? -1 : 1;
    case O_BATCH: return mb_cli_parse_int(prog, "--batch", arg, 1, 1 << 20, &t->batch) ? -1 : 1;
    case O_SEQ: return mb_cli_parse_int(prog, "--seq-len", arg, 2, INT64_C(1) << 30, &t->seq_len) ? -1 : 1;
    case O_LR: return mb_cli_parse_real(prog, "--lr", arg, 1e-9, 1.0, &t->lr) ? -1 : 1;
    case O_WARM: return mb_cli_parse_real(prog, "--warmup", arg, 0.0, 1.0, &t->warmup_frac) ? -1 : 1;
    case O_WD: return mb_cli_parse_real(prog, "--weight-decay", arg, 0.0, 10.0, &t->weight_decay) ? -1 : 1;
    case O_CLIP: return mb_cli_parse_real(prog, "--grad-clip", arg, 0.0, 1e6, &t->grad_clip) ? -1 : 1;
    case O_DEV: t->device = arg; return 1;
    case O_THR: return mb_cli_parse_int(prog, "--threads", arg, 0, 4096, &t->threads) ? -1 : 1;
    case O_TF32: t->tf32 = 1; return 1;
    case O_SEED: return mb_cli_parse_int(prog, "--seed", arg, 0, INT64_MAX, &t->seed) ? -1 : 1;
    case O_LOG: t->log = arg; return 1;
    case O_RESUME: t->resume = 1; return 1;
    case O_OUT: t->out = arg; return 1;
    case O_SAVE: return mb_cli_parse_int(prog, "--save-every", arg, 0, INT64_C(1) << 40, &t->save_every) ? -1 : 1;
    default: return 0;
    }
}

struct option *mb_cli_options_join(const struct option *own)
{
    size_t a = 0, b = 0;
    while (own[a].name) a++;
    while (mb_cli_train_options[b].name) b++;
    struct option *o = calloc(a + b + 1, sizeof *o);
    if (!o) return NULL;
    memcpy(o, own, a * sizeof *o);
    memcpy(o + a, mb_cli_train_options, (b + 1) * sizeof *o);
    return o;
}

char *mb_cli_optim_path(const char *model_path)
{
    size_t n = strlen(model_path);
    char *p = malloc(n + 7);
    if (p) {
        memcpy(p, model_path, n);
        memcpy(p + n, ".optim", 7);
    }
    return p;
}

mb_ctx *mb_cli_ctx(const char *prog, const mb_cli_train *t)
{
    /* under mpirun, plain "cuda" is one GPU a process: the rank within the
     * node picks it (cuda:N given explicitly is taken as it is) */
    char dev[32];
    const char *name = t->device;
    if (g_ranks > 1 && strcmp(name, "cuda") == 0) {
        snprintf(dev, sizeof dev, "cuda:%d", mb_dist_local_rank(g_dist));
        name = dev;
    }
    mb_ctx *ctx = mb_ctx_create(name);
    if (!ctx) {
        mb_cli_error(prog, "--device %s: %s", name, mb_error_last());
        return NULL;
    }
    mb_ctx_set_threads(ctx, (int)t->threads);
    if (t->tf32) mb_ctx_set_tf32(ctx, 1);
    return ctx;
}

mb_model *mb_cli_model_new(const char *prog, mb_ctx *ctx, const mb_cli_train *t)
{
    mb_config cfg = t->cfg;
    mb_model *m = mb_config_check(&cfg) ? NULL : mb_model_create(ctx, &cfg, (uint64_t)t->seed);
    if (!m) mb_cli_error(prog, "model: %s", mb_error_last());
    return m;
}

mb_optim *mb_cli_optim(const char *prog, mb_model *m, const mb_cli_train *t, const char *optim_path)
{
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = (float)t->lr;
    oc.min_lr = (float)(t->lr / 10);
    oc.weight_decay = (float)t->weight_decay;
    oc.grad_clip = (float)t->grad_clip;
    oc.warmup_steps = (int64_t)(t->warmup_frac * (double)t->steps);
    oc.total_steps = t->steps;
    mb_optim *o = mb_optim_create(m, &oc);
    if (!o) {
        mb_cli_error(prog, "optimizer: %s", mb_error_last());
        return NULL;
    }
    if (t->resume && mb_optim_load(o, optim_path)) {
        mb_cli_lib_error(prog, optim_path);
        mb_optim_free(o);
        return NULL;
    }
    return o;
}

FILE *mb_cli_log_open(const char *prog, const char *path, int *failed)
{
    if (!path) return NULL;
    FILE *f = fopen(path, "a");
    if (!f) {
        mb_cli_error(prog, "%s: %s", path, strerror(errno));
        *failed = 1;
        return NULL;
    }
    setvbuf(f, NULL, _IOLBF, 0); /* a line per record, readable while the run goes on */
    return f;
}

int mb_cli_lib_error(const char *prog, const char *path)
{
    const char *e = mb_error_last();
    if (path && !strstr(e, path)) mb_cli_error(prog, "%s: %s", path, e);
    else mb_cli_error(prog, "%s", e);
    return -1;
}

int mb_cli_check_writable(const char *prog, const char *path)
{
    mb_cli_outfile o;
    if (mb_cli_outfile_open(prog, &o, path)) return -1;
    mb_cli_outfile_discard(&o);
    return 0;
}

int mb_cli_write_error(const char *prog, const char *path)
{
    const int e = errno ? errno : EIO;
    mb_cli_error(prog, "%s: write error (%s)", path ? path : "stdout", strerror(e));
    return -1;
}

int mb_cli_outfile_open(const char *prog, mb_cli_outfile *o, const char *path)
{
    memset(o, 0, sizeof *o);
    const size_t n = strlen(path);
    o->path = malloc(n + 1);
    o->tmp = malloc(n + 12);
    if (!o->path || !o->tmp) {
        mb_cli_error(prog, "out of memory");
        mb_cli_outfile_discard(o);
        return -1;
    }
    memcpy(o->path, path, n + 1);
    memcpy(o->tmp, path, n);
    memcpy(o->tmp + n, ".tmpXXXXXX", 11);
    const int fd = mkstemp(o->tmp);
    if (fd < 0) {
        mb_cli_error(prog, "%s: cannot create a file in its directory (%s)", path, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        mb_cli_outfile_discard(o);
        return -1;
    }
    /* mkstemp makes it 0600; a finished output gets what a new file gets */
    const mode_t um = umask(0);
    umask(um);
    (void)fchmod(fd, 0666 & ~um);
    if (!(o->f = fdopen(fd, "wb"))) {
        mb_cli_error(prog, "%s: %s", path, strerror(errno));
        close(fd);
        mb_cli_outfile_discard(o);
        return -1;
    }
    return 0;
}

int mb_cli_outfile_commit(const char *prog, mb_cli_outfile *o)
{
    errno = 0;
    int bad = fflush(o->f) != 0 || ferror(o->f) || fsync(fileno(o->f)) != 0;
    const int e = errno;
    bad = fclose(o->f) != 0 || bad;
    o->f = NULL;
    if (bad) {
        errno = e ? e : errno;
        mb_cli_write_error(prog, o->path);
        mb_cli_outfile_discard(o);
        return -1;
    }
    if (rename(o->tmp, o->path) != 0) {
        mb_cli_error(prog, "%s: cannot rename the finished file into place (%s)", o->path, strerror(errno));
        mb_cli_outfile_discard(o);
        return -1;
    }
    free(o->tmp);
    o->tmp = NULL;
    mb_cli_outfile_discard(o);
    return 0;
}

void mb_cli_outfile_discard(mb_cli_outfile *o)
{
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
}

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    if (g_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_interrupted = 1;
}

void mb_cli_catch_interrupt(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

int mb_cli_interrupted(void) { return g_interrupted != 0; }

/* ---- data-parallel training ------------------------------------------------ */

int mb_cli_dist_start(const char *prog)
{
    if (g_dist) return 0;
    if (!(g_dist = mb_dist_init(NULL, NULL))) {
        /* the same failure on every rank: the launcher's rank 0 says it */
        int r = 0;
        mb_dist_launched(&r);
        if (r == 0) mb_cli_error(prog, "%s", mb_error_last());
        return 1;
    }
    g_rank = mb_dist_rank(g_dist);
    g_ranks = mb_dist_size(g_dist);
    g_held[0] = '\0';
    if (!(g_sync = malloc(sizeof(double) * (size_t)(g_ranks + MB_CLI_SYNC_N + 2)))) {
        mb_cli_error(prog, "out of memory");
        mb_cli_dist_stop();
        return 1;
    }
    if (g_rank != 0) {
        /* progress, summaries and warnings are rank 0's: the others write to
         * /dev/null, keeping the real stderr for a failure only they see */
        fflush(stdout);
        fflush(stderr);
        const int fd = dup(STDERR_FILENO), nul = open("/dev/null", O_WRONLY);
        if (fd >= 0) g_stderr = fdopen(fd, "w");
        if (nul >= 0) {
            dup2(nul, STDOUT_FILENO);
            dup2(nul, STDERR_FILENO);
            close(nul);
        }
    }
    return 0;
}

void mb_cli_dist_stop(void)
{
    mb_dist_finalize(g_dist);
    g_dist = NULL;
    free(g_sync);
    g_sync = NULL;
    g_rank = 0;
    g_ranks = 1;
    if (g_stderr) fclose(g_stderr);
    g_stderr = NULL;
}

mb_dist *mb_cli_dist(void) { return g_dist; }
int mb_cli_rank(void) { return g_rank; }
int mb_cli_ranks(void) { return g_ranks; }

int mb_cli_dist_check_batch(const char *prog, int64_t batch)
{
    if (batch % g_ranks == 0) return 0;
    mb_cli_error(prog, "--batch %lld does not split over %d ranks: the batch is the global one, give a "
                       "multiple of %d",
                 (long long)batch, g_ranks, g_ranks);
    return -1;
}

void mb_cli_dist_rows(int64_t batch, int64_t *row0, int64_t *rows)
{
    *rows = batch / g_ranks;
    *row0 = (int64_t)g_rank * *rows;
}

void mb_cli_dist_share(int64_t n, int64_t *first, int64_t *count)
{
    const int64_t a = n * g_rank / g_ranks, b = n * (g_rank + 1) / g_ranks;
    *first = a;
    *count = b - a;
}

/* ranks > 0 report on the stderr mb_cli_dist_start kept aside */
static FILE *err_stream(void) { return g_stderr ? g_stderr : stderr; }

int mb_cli_dist_sync(int rc, mb_cli_sync *s)
{
    if (g_ranks == 1) return rc;
    /* [rc of each rank][sums][rank 0's print][stop] */
    const int P = g_ranks, n = P + MB_CLI_SYNC_N + 2;
    double *v = g_sync;
    memset(v, 0, sizeof(double) * (size_t)n);
    v[g_rank] = rc;
    for (int i = 0; s && i < MB_CLI_SYNC_N; i++) v[P + i] = s->sum[i];
    if (s && g_rank == 0) v[P + MB_CLI_SYNC_N] = s->print;
    if (s) v[P + MB_CLI_SYNC_N + 1] = s->stop;
    if (mb_dist_sum(g_dist, v, n)) {
        fprintf(err_stream(), "error: rank %d: %s\n", g_rank, mb_error_last());
        mb_dist_abort(g_dist, 1);
    }
    if (s) {
        for (int i = 0; i < MB_CLI_SYNC_N; i++) s->sum[i] = v[P + i];
        s->print = v[P + MB_CLI_SYNC_N] != 0;
        s->stop = v[P + MB_CLI_SYNC_N + 1] != 0;
    }
    int first = -1;
    for (int r = 0; r < P && first < 0; r++)
        if (v[r] != 0) first = r;
    if (first < 0) return 0;
    /* rank 0 printed its line when it failed; else the first failing rank
     * prints the line it held (130: interrupted, saved: no error) */
    if (first == g_rank && g_rank != 0 && rc != 130) {
        if (g_held[0]) fprintf(err_stream(), "%s\n", g_held);
        else fprintf(err_stream(), "error: rank %d failed (exit %d)\n", g_rank, rc);
        fflush(err_stream());
    }
    return (int)v[first];
}

int mb_cli_dist_agree(int rc) { return mb_cli_dist_sync(rc, NULL); }

int mb_cli_dist_step(int rc, const mb_loss_stats *st, int print, mb_optim *opt, mb_loss_stats *acc,
                     int *print_out, int *stop)
{
    mb_cli_sync s = {{st->loss_sum, (double)st->count}, print, mb_cli_interrupted()};
    if ((rc = mb_cli_dist_sync(rc, &s))) return rc;
    acc->loss_sum += s.sum[0];
    acc->count += (int64_t)s.sum[1];
    if (s.sum[1] > 0) mb_optim_set_share(opt, (double)st->count / s.sum[1]);
    *print_out = s.print;
    *stop = s.stop;
    return 0;
}

int mb_cli_dist_fatal(const char *prog, const char *what)
{
    if (g_ranks == 1) {
        mb_cli_error(prog, "%s: %s", what, mb_error_last());
        return 1;
    }
    fprintf(err_stream(), "%s: error: rank %d: %s: %s\n", prog, g_rank, what, mb_error_last());
    fflush(err_stream());
    mb_dist_abort(g_dist, 1);
    return 1;
}

int mb_cli_train_loop(mb_cli_train_run *r, int32_t *tok, int32_t *tgt)
{
    mb_cli_catch_interrupt();
    r->t0 = mb_cli_now();
    r->last_val = NAN;
    r->stop = r->synced = 0;
    double t_last = r->t0, t_print = r->t0;
    const int64_t step0 = r->step;
    mb_loss_stats acc = {0};
    int64_t acc_tok = 0;
    int rc = 0;
    while (r->step < r->last && !r->stop) {
        const int64_t step = ++r->step;
        int64_t rows = 0, L = 0, B = 0;
        rc = r->batch(r->ud, step, tok, tgt, &rows, &L, &B);
        mb_loss_stats st = {0};
        if (rc == 0 && mb_model_forward_backward(r->m, tok, tgt, (int)rows, (int)L, &st)) {
            mb_cli_error(r->prog, "step %lld: %s", (long long)step, mb_error_last());
            rc = 1;
        }
        /* the step's loss over every rank, rank 0's choice to print, a
         * Ctrl-C on any rank; a failure on any rank stops them all here */
        const int do_val = r->val_every && (step % r->val_every == 0 || step == r->steps || step == r->last);
        const double now = mb_cli_now();
        int print = 0;
        if ((rc = mb_cli_dist_step(rc, &st, do_val || now - t_print >= 5.0 || step == step0 + 1 || step == r->steps,
                                   r->opt, &acc, &print, &r->stop))) {
            r->synced = 1;
            break;
        }
        float gn = 0, lr = 0;
        if (mb_optim_step(r->opt, &gn, &lr)) {
            mb_cli_error(r->prog, "step %lld: %s", (long long)step, mb_error_last());
            rc = 1;
            break;
        }
        acc_tok += B * L;
        if (print) {
            if (do_val && (rc = r->validate(r->ud, rows, L, &r->last_val))) {
                r->synced = 1;
                break;
            }
            const double rate = acc_tok / (now - t_last);
            const double train = acc.count ? acc.loss_sum / acc.count / MB_CLI_LN2 : NAN;
            char eta[32], shape[48] = "";
            mb_cli_duration((now - r->t0) / (double)(step - step0) * (double)(r->steps - step), eta, sizeof eta);
            if (r->show_shape) snprintf(shape, sizeof shape, "  L %lld", (long long)L);
            fprintf(stderr, "step %lld/%lld%s  train %.4f %s", (long long)step, (long long)r->steps, shape, train,
                    r->unit);
            if (do_val) fprintf(stderr, "  val %.4f", r->last_val);
            fprintf(stderr, "  lr %.2e  %.0f %s  ETA %s\n", lr, rate, r->rate_unit, eta);
            if (r->log) {
                fprintf(r->log, "{\"step\": %lld", (long long)step);
                if (r->show_shape) fprintf(r->log, ", \"seq_len\": %lld, \"batch\": %lld", (long long)L, (long long)B);
                fprintf(r->log, ", \"%s\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"%s\": %.1f", r->key_train,
                        train, lr, gn, r->key_rate, rate);
                if (do_val) fprintf(r->log, ", \"%s\": %.6f", r->key_val, r->last_val);
                fprintf(r->log, "}\n");
            }
            memset(&acc, 0, sizeof acc);
            acc_tok = 0;
            t_last = t_print = now;
        }
        if (mb_cli_rank() == 0 && r->save_every && step % r->save_every == 0 && step < r->steps && r->save(r->ud)) {
            rc = 1;
            break;
        }
    }
    return rc;
}

/* launched by mpirun with several processes: one line from rank 0, -1 */
static int cli_single_process(const char *prog, const char *cmd)
{
    int r = 0;
    const int n = mb_dist_launched(&r);
    if (n <= 1) return 0;
    if (r == 0)
        mb_cli_error(prog, "%s runs as one process, but mpirun started %d: only the training commands run "
                           "data-parallel",
                     cmd, n);
    return -1;
}

int mb_cli_main(const char *prog, int argc, char **argv, void (*usage)(FILE *f), const mb_cli_command *cmds,
                int ncmds)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("%s (libmamba %s)\n", prog, MB_VERSION);
        return 0;
    }
    for (int i = 0; i < ncmds; i++) {
        if (strcmp(cmd, cmds[i].name) != 0) continue;
        if (!cmds[i].parallel && cli_single_process(prog, cmd)) return 1;
        return cmds[i].run(argc - 1, argv + 1);
    }
    mb_cli_error(prog, "unknown command '%s'", cmd);
    fprintf(stderr, "Try '%s --help'.\n", prog);
    return 2;
}
