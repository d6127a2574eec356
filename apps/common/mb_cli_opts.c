/* Option values and the shared training flags: see mb_cli_opts.h. */
#include "mb_cli_opts.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mb_cli_error.h"
#include "mb_cli_main.h"

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
    /* decimal only: strtod would take 0x10 as 16 */
    if (errno || end == s || *end || strpbrk(s, "xX") || !isfinite(v) || v < lo || v > hi) {
        mb_cli_error(prog, "%s expects a number in [%g, %g], got '%s'", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- shared training flags ------------------------------------------------ */

enum {
    O_DM = MB_CLI_OPT_BASE, O_NL, O_DS, O_EX, O_INIT, O_STEPS, O_BATCH, O_SEQ, O_LR, O_WARM, O_WD,
    O_CLIP, O_DEV, O_THR, O_TF32, O_SEED, O_LOG, O_RESUME, O_OUT, O_SAVE, O_KEEP, O_SELECT, O_PATIENCE, O_PREC
};

const struct option mb_cli_train_options[] = {
    {"d-model", 1, 0, O_DM}, {"n-layer", 1, 0, O_NL}, {"d-state", 1, 0, O_DS},
    {"expand", 1, 0, O_EX}, {"init", 1, 0, O_INIT}, {"steps", 1, 0, O_STEPS},
    {"batch", 1, 0, O_BATCH}, {"seq-len", 1, 0, O_SEQ}, {"lr", 1, 0, O_LR},
    {"warmup", 1, 0, O_WARM}, {"weight-decay", 1, 0, O_WD}, {"grad-clip", 1, 0, O_CLIP},
    {"device", 1, 0, O_DEV}, {"threads", 1, 0, O_THR}, {"tf32", 0, 0, O_TF32},
    {"seed", 1, 0, O_SEED}, {"log", 1, 0, O_LOG}, {"resume", 0, 0, O_RESUME},
    {"out", 1, 0, O_OUT}, {"save-every", 1, 0, O_SAVE}, {"keep", 1, 0, O_KEEP},
    {"select", 1, 0, O_SELECT}, {"patience", 1, 0, O_PATIENCE}, {"precision", 1, 0, O_PREC}, {0, 0, 0, 0}};

int mb_cli_parse_precision(const char *prog, const char *arg, mb_cli_train *t)
{
    if (strcmp(arg, "fp32") == 0) t->tf32 = 0, t->bf16 = 0;
    else if (strcmp(arg, "tf32") == 0) t->tf32 = 1, t->bf16 = 0;
    else if (strcmp(arg, "bf16") == 0) t->tf32 = 0, t->bf16 = 1;
    else {
        mb_cli_error(prog, "--precision expects fp32, tf32 or bf16, got '%s'", arg);
        return -1;
    }
    return 0;
}

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
    t->keep = 2;
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
            "  --out MODEL        the model (safetensors): the best by held-out loss so far\n"
            "                     (before the first validation, and without one: the last\n"
            "                     checkpoint's); checkpoints to resume beside it, each a set\n"
            "                     MODEL.step-N, MODEL.step-N.optim, MODEL.step-N.json\n"
            "  --save-every N     also checkpoint every N steps, 0 = only at the end [%lld]\n"
            "  --keep K           checkpoint sets kept, the newest K [%lld]\n"
            "  --select best|last\n"
            "                     what MODEL holds once validated: the weights of the\n"
            "                     lowest held-out loss, or the last checkpoint's [best]\n"
            "  --patience N       stop early after N validations without a better held-out\n"
            "                     loss, 0 = never [%lld]\n"
            "  --resume           continue the run saved beside --out from its newest\n"
            "                     complete checkpoint (an incomplete or mismatched set, e.g.\n"
            "                     one cut by a kill, is named and the one before it taken)\n"
            "  --log FILE         append JSON-lines metrics to FILE\n"
            "device:\n"
            "  --device D         cpu, cuda or cuda:N [%s]\n"
            "  --threads N        CPU threads, 0 = all cores [%lld]\n"
            "  --tf32             GPU: TF32 tensor cores for the GEMMs (faster, ~1e-3 error)\n"
            MB_CLI_PRECISION_HELP,
            d->cfg.d_model, d->cfg.n_layer, d->cfg.d_state, d->cfg.expand,
            d->cfg.init == MB_INIT_S4D_LIN ? "complex" : "real", (long long)d->steps,
            (long long)d->batch, (long long)d->seq_len, d->lr, d->warmup_frac, d->weight_decay,
            d->grad_clip, (long long)d->seed, (long long)d->save_every, (long long)d->keep,
            (long long)d->patience, d->device,
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
    case O_PREC: return mb_cli_parse_precision(prog, arg, t) ? -1 : 1;
    case O_SEED: return mb_cli_parse_int(prog, "--seed", arg, 0, INT64_MAX, &t->seed) ? -1 : 1;
    case O_LOG: t->log = arg; return 1;
    case O_RESUME: t->resume = 1; return 1;
    case O_OUT: t->out = arg; return 1;
    case O_SAVE: return mb_cli_parse_int(prog, "--save-every", arg, 0, INT64_C(1) << 40, &t->save_every) ? -1 : 1;
    case O_KEEP: return mb_cli_parse_int(prog, "--keep", arg, 1, 1 << 20, &t->keep) ? -1 : 1;
    case O_PATIENCE: return mb_cli_parse_int(prog, "--patience", arg, 0, INT64_C(1) << 40, &t->patience) ? -1 : 1;
    case O_SELECT:
        if (strcmp(arg, "best") == 0) t->select_last = 0;
        else if (strcmp(arg, "last") == 0) t->select_last = 1;
        else {
            mb_cli_error(prog, "--select expects best or last, got '%s'", arg);
            return -1;
        }
        return 1;
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

/* ---- getopt with the tools' messages ---------------------------------------- */

/* The long option of value val ("--NAME"), or NULL. */
static const char *opt_name_of(const struct option *opts, int val)
{
    for (const struct option *o = opts; o->name; o++)
        if (o->val == val && !o->flag) return o->name;
    return NULL;
}

/* How many long options start with the n bytes of s. */
static int opt_prefix_matches(const struct option *opts, const char *s, size_t n)
{
    int k = 0;
    for (const struct option *o = opts; o->name; o++) k += strncmp(o->name, s, n) == 0;
    return k;
}

int mb_cli_getopt(const char *prog, const char *cmd, int argc, char **argv, const struct option *opts)
{
    opterr = 0;
    /* ':' first: a missing value is told apart from an unknown option */
    const int c = getopt_long(argc, argv, ":h", opts, NULL);
    if (c != '?' && c != ':') return c;
    char where[64] = "";
    if (cmd) snprintf(where, sizeof where, "%s: ", cmd);
    /* getopt has stepped past the argument at fault */
    const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
    const char *name = optopt ? opt_name_of(opts, optopt) : NULL;
    if (c == ':') {
        if (name) mb_cli_error(prog, "%soption '--%s' needs a value", where, name);
        else mb_cli_error(prog, "%soption '-%c' needs a value", where, optopt);
        return '?';
    }
    if (optopt && name && strncmp(arg, "--", 2) == 0) {
        mb_cli_error(prog, "%soption '--%s' takes no value", where, name);
        return '?';
    }
    if (optopt) {
        mb_cli_error(prog, "%sunrecognized option '-%c'", where, optopt);
        return '?';
    }
    /* an unknown or ambiguous long option: "--name" or "--name=value" */
    const char *eq = strchr(arg, '=');
    const size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
    if (n == 9 && strncmp(arg, "--version", 9) == 0) {
        mb_cli_version(prog);
        return MB_CLI_OPT_VERSION;
    }
    if (n > 2 && strncmp(arg, "--", 2) == 0 && opt_prefix_matches(opts, arg + 2, n - 2) > 1)
        mb_cli_error(prog, "%soption '%.*s' is ambiguous", where, (int)n, arg);
    else mb_cli_error(prog, "%sunrecognized option '%.*s'", where, (int)n, arg);
    return '?';
}
