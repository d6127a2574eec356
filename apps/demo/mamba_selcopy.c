/* mamba-selcopy: train a small Mamba on the selective-copying task on the
 * CPU (or a GPU) through the tools' training loop (mb_cli_loop.h) and report
 * its accuracy on fresh sequences. The quick start's smallest job. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mamba.h"
#include "mb_cli.h"
#include "selcopy_task.h"

#define PROG "mamba-selcopy"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " [options]\n"
            "\n"
            "Train a Mamba language model on the selective-copying task (Gu & Dao 2023):\n"
            "data tokens scattered among noise must be copied out, in order, after the\n"
            "noise ends. Prints progress on stderr and the accuracy on fresh sequences;\n"
            "Ctrl-C or SIGTERM stops the training (exit 130, nothing evaluated or saved).\n"
            "\n"
            "task:\n"
            "  --span N          positions the data tokens are scattered over [32]\n"
            "  --memorize N      data tokens to copy [4]\n"
            "  --symbols N       distinct data tokens [8]\n"
            "model:\n"
            "  --d-model N       width of the residual stream [64]\n"
            "  --n-layer N       Mamba blocks [2]\n"
            "  --d-state N       SSM state size per channel [16]\n"
            "  --expand N        inner width = expand * d-model [2]\n"
            "  --init real|complex  S4D-Real or S4D-Lin (complex) A [real]\n"
            "training:\n"
            "  --steps N         optimizer steps [1200]\n"
            "  --batch N         sequences per step [32]\n"
            "  --lr X            peak learning rate (warmup, then cosine) [3e-3]\n"
            "  --seed N          seed for weights and data [1]\n"
            "  --device D        cpu, cuda or cuda:N [cpu]\n"
            "  --threads N       CPU threads, 0 = all [0]\n"
            "  --log FILE        append JSON-lines metrics to FILE\n"
            "  --out FILE        save the trained model (safetensors)\n"
            "  --eval N          fresh batches for the final accuracy [64]\n"
            "  -h, --help        show this help\n"
            "  --version         show the version\n");
}

typedef struct {
    mb_selcopy task;
    mb_config cfg;
    int steps, batch, seed, threads, eval_batches;
    float lr;
    const char *device, *log_path, *out_path;
} sel_opts;

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    int64_t v;
    if (mb_cli_parse_int(PROG, opt, s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

/* The flags; -1 to go on, else the exit code (0 after --help, 2 after a
 * usage error line). */
static int sel_parse(sel_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->task = (mb_selcopy){.span = 32, .n_memorize = 4, .n_symbols = 8};
    mb_config_default(&o->cfg);
    o->cfg.d_model = 64;
    o->cfg.n_layer = 2;
    o->steps = 1200, o->batch = 32, o->seed = 1, o->threads = 0, o->eval_batches = 64;
    o->lr = 3e-3f;
    o->device = "cpu";
    enum { O_SPAN = 256, O_MEM, O_SYM, O_DM, O_NL, O_DS, O_EX, O_INIT, O_STEPS, O_BATCH, O_LR,
           O_SEED, O_DEV, O_THR, O_LOG, O_OUT, O_EVAL };
    static const struct option opts[] = {
        {"span", 1, 0, O_SPAN}, {"memorize", 1, 0, O_MEM}, {"symbols", 1, 0, O_SYM},
        {"d-model", 1, 0, O_DM}, {"n-layer", 1, 0, O_NL}, {"d-state", 1, 0, O_DS},
        {"expand", 1, 0, O_EX}, {"init", 1, 0, O_INIT}, {"steps", 1, 0, O_STEPS},
        {"batch", 1, 0, O_BATCH}, {"lr", 1, 0, O_LR}, {"seed", 1, 0, O_SEED},
        {"device", 1, 0, O_DEV}, {"threads", 1, 0, O_THR}, {"log", 1, 0, O_LOG},
        {"out", 1, 0, O_OUT}, {"eval", 1, 0, O_EVAL}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c, bad = 0;
    while (!bad && (c = mb_cli_getopt(PROG, NULL, argc, argv, opts)) != -1) {
        switch (c) {
        case O_SPAN: bad = parse_int("--span", optarg, 1, 1 << 20, &o->task.span); break;
        case O_MEM: bad = parse_int("--memorize", optarg, 1, 1 << 16, &o->task.n_memorize); break;
        case O_SYM: bad = parse_int("--symbols", optarg, 1, 1 << 16, &o->task.n_symbols); break;
        case O_DM: bad = parse_int("--d-model", optarg, 1, 1 << 16, &o->cfg.d_model); break;
        case O_NL: bad = parse_int("--n-layer", optarg, 1, 1024, &o->cfg.n_layer); break;
        case O_DS: bad = parse_int("--d-state", optarg, 1, 256, &o->cfg.d_state); break;
        case O_EX: bad = parse_int("--expand", optarg, 1, 16, &o->cfg.expand); break;
        case O_INIT:
            if (strcmp(optarg, "real") == 0) o->cfg.init = MB_INIT_S4D_REAL;
            else if (strcmp(optarg, "complex") == 0) o->cfg.init = MB_INIT_S4D_LIN;
            else {
                mb_cli_error(PROG, "--init expects real or complex, got '%s'", optarg);
                bad = 1;
            }
            break;
        case O_STEPS: bad = parse_int("--steps", optarg, 1, 1 << 30, &o->steps); break;
        case O_BATCH: bad = parse_int("--batch", optarg, 1, 1 << 16, &o->batch); break;
        case O_LR: {
            double v;
            bad = mb_cli_parse_real(PROG, "--lr", optarg, 1e-9, 1.0, &v);
            o->lr = (float)v;
            break;
        }
        case O_SEED: bad = parse_int("--seed", optarg, 0, 2147483647, &o->seed); break;
        case O_DEV: o->device = optarg; break;
        case O_THR: bad = parse_int("--threads", optarg, 0, 4096, &o->threads); break;
        case O_LOG: o->log_path = optarg; break;
        case O_OUT: o->out_path = optarg; break;
        case O_EVAL: bad = parse_int("--eval", optarg, 1, 1 << 20, &o->eval_batches); break;
        case 'h': usage(stdout); return 0;
        case MB_CLI_OPT_VERSION: return 0;
        default: bad = 1;
        }
    }
    if (bad || optind < argc) {
        if (optind < argc && !bad) mb_cli_error(PROG, "unexpected argument '%s'", argv[optind]);
        fprintf(stderr, "Try '" PROG " --help'.\n");
        return 2;
    }
    o->cfg.vocab_size = mb_selcopy_vocab(&o->task);
    return -1;
}

/* What a run holds; the training loop calls back into it. */
typedef struct {
    const sel_opts *o;
    mb_ctx *ctx;
    mb_model *m;
    mb_optim *opt;
    FILE *logf;
    int32_t *tok, *tgt; /* a batch of (batch, T) */
    uint64_t data_seed; /* the task's stream, advanced batch after batch */
} sel_run;

static void sel_free(sel_run *t)
{
    free(t->tok);
    free(t->tgt);
    mb_optim_free(t->opt);
    mb_model_free(t->m);
    mb_ctx_free(t->ctx);
}

/* The context, the model, its optimizer (warmup over the first tenth,
 * cosine to lr/10), the log and the batch buffers. */
static int sel_open(sel_run *t)
{
    const sel_opts *o = t->o;
    mb_cli_train dev;
    mb_cli_train_default(&dev);
    dev.device = o->device;
    dev.threads = o->threads;
    int log_failed = 0;
    /* the outputs before any work: --out is written only at the end */
    if (o->out_path && mb_cli_check_writable(PROG, o->out_path)) return -1;
    if (!(t->logf = mb_cli_log_open(PROG, o->log_path, &log_failed)) && log_failed) return -1;
    if (!(t->ctx = mb_cli_ctx(PROG, &dev)) || !(t->m = mb_cli_model_create(PROG, t->ctx, &o->cfg, o->seed)))
        return -1;
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = o->lr;
    oc.min_lr = o->lr / 10;
    oc.warmup_steps = o->steps / 10;
    oc.total_steps = o->steps;
    if (!(t->opt = mb_optim_create(t->m, &oc))) {
        mb_cli_error(PROG, "optimizer: %s", mb_error_last());
        return -1;
    }
    const int T = mb_selcopy_len(&o->task);
    t->tok = malloc(sizeof(int32_t) * (size_t)o->batch * T);
    t->tgt = malloc(sizeof(int32_t) * (size_t)o->batch * T);
    if (!t->tok || !t->tgt) {
        mb_cli_error(PROG, "out of memory");
        return -1;
    }
    t->data_seed = (uint64_t)o->seed * 7919u + 1;
    return 0;
}

/* A step: a fresh batch of the task, forward and backward. */
static int sel_step(void *ud, int64_t step, mb_cli_step *out)
{
    (void)step; /* the batches follow one stream */
    sel_run *t = ud;
    const int B = t->o->batch, T = mb_selcopy_len(&t->o->task);
    mb_selcopy_batch(&t->o->task, &t->data_seed, B, t->tok, t->tgt);
    out->L = T, out->B = B, out->items = (int64_t)B * T;
    return mb_model_forward_backward(t->m, t->tok, t->tgt, B, T, &out->loss) ? -1 : 0;
}

/* The progress fields: the loss in nats and the share of markers answered
 * right. */
static void sel_fields(void *ud, const mb_loss_stats *acc, FILE *f, int json)
{
    (void)ud;
    const double loss = acc->count ? acc->loss_sum / (double)acc->count : NAN;
    const double hit = acc->count ? (double)acc->correct / (double)acc->count : NAN;
    if (json) fprintf(f, ", \"loss\": %.6f, \"accuracy\": %.6f", loss, hit);
    else fprintf(f, "  loss %.4f  acc %5.1f%%", loss, 100 * hit);
}

/* The accuracy on fresh sequences, the model saved with --out, the line. */
static int sel_report(const sel_run *t, double t0)
{
    const sel_opts *o = t->o;
    double acc = 0;
    if (mb_selcopy_eval(&o->task, t->m, (uint64_t)o->seed * 104729u + 99, o->eval_batches, o->batch, &acc)) {
        mb_cli_error(PROG, "evaluation: %s", mb_error_last());
        return 1;
    }
    if (o->out_path && mb_model_save(t->m, o->out_path)) {
        mb_cli_lib_error(PROG, o->out_path);
        return 1;
    }
    printf("selective copying: accuracy %.2f%% on %d fresh sequences (chance %.1f%%), %.1fs\n", 100 * acc,
           o->eval_batches * o->batch, 100.0 / o->task.n_symbols, mb_cli_now() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    mb_cli_catch_interrupt(); /* before any output exists: see mb_cli_main.h */
    sel_opts o;
    int rc = sel_parse(&o, argc, argv);
    if (rc >= 0) return rc;
    sel_run t = {.o = &o};
    rc = 1;
    if (sel_open(&t) == 0) {
        const mb_config *c = mb_model_config(t.m);
        fprintf(stderr, PROG ": %zu parameters (d_model %d, %d layers, %s A), task: %d tokens among %d, "
                        "%d symbols\n", mb_model_num_params(t.m), c->d_model, c->n_layer,
                c->init == MB_INIT_S4D_LIN ? "complex" : "real", o.task.n_memorize, o.task.span, o.task.n_symbols);
        mb_cli_train_run run = {
            .prog = PROG, .opt = t.opt, .log = t.logf, .steps = o.steps, .last = o.steps, .print_every = 50,
            .rate_unit = "tok/s", .key_rate = "tokens_per_s", .ud = &t, .train_step = sel_step,
            .fields_train = sel_fields};
        rc = mb_cli_train_finish(&run, mb_cli_train_loop(&run), NULL);
        if (rc == 0) rc = sel_report(&t, run.t0);
    }
    /* every log line checked; a lost one (said once) fails the run */
    if (mb_cli_log_close(PROG, t.logf) && (rc == 0 || rc == MB_CLI_EXIT_INTERRUPTED)) rc = 1;
    sel_free(&t);
    return rc;
}
