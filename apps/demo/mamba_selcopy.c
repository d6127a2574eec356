/* mamba-selcopy: train a small Mamba on the selective-copying task on the
 * CPU (or a GPU) and report its accuracy on fresh sequences. The quick
 * start's main job until the audio and DNA tools exist. */
#include <errno.h>
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
            "noise ends. Prints progress on stderr and the accuracy on fresh sequences.\n"
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
            "  -h, --help        show this help\n");
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out)
{
    int64_t v;
    if (mb_cli_parse_int(PROG, opt, s, lo, hi, &v)) return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    mb_selcopy task = {.span = 32, .n_memorize = 4, .n_symbols = 8};
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 64;
    cfg.n_layer = 2;
    int steps = 1200, batch = 32, seed = 1, threads = 0, eval_batches = 64;
    float lr = 3e-3f;
    const char *device = "cpu", *log_path = NULL, *out_path = NULL;
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
    while (!bad && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_SPAN: bad = parse_int("--span", optarg, 1, 1 << 20, &task.span); break;
        case O_MEM: bad = parse_int("--memorize", optarg, 1, 1 << 16, &task.n_memorize); break;
        case O_SYM: bad = parse_int("--symbols", optarg, 1, 1 << 16, &task.n_symbols); break;
        case O_DM: bad = parse_int("--d-model", optarg, 1, 1 << 16, &cfg.d_model); break;
        case O_NL: bad = parse_int("--n-layer", optarg, 1, 1024, &cfg.n_layer); break;
        case O_DS: bad = parse_int("--d-state", optarg, 1, 256, &cfg.d_state); break;
        case O_EX: bad = parse_int("--expand", optarg, 1, 16, &cfg.expand); break;
        case O_INIT:
            if (strcmp(optarg, "real") == 0) cfg.init = MB_INIT_S4D_REAL;
            else if (strcmp(optarg, "complex") == 0) cfg.init = MB_INIT_S4D_LIN;
            else {
                fprintf(stderr, PROG ": error: --init expects real or complex, got '%s'\n", optarg);
                bad = 1;
            }
            break;
        case O_STEPS: bad = parse_int("--steps", optarg, 1, 1 << 30, &steps); break;
        case O_BATCH: bad = parse_int("--batch", optarg, 1, 1 << 16, &batch); break;
        case O_LR: {
            double v;
            bad = mb_cli_parse_real(PROG, "--lr", optarg, 1e-9, 1.0, &v);
            lr = (float)v;
            break;
        }
        case O_SEED: bad = parse_int("--seed", optarg, 0, 2147483647, &seed); break;
        case O_DEV: device = optarg; break;
        case O_THR: bad = parse_int("--threads", optarg, 0, 4096, &threads); break;
        case O_LOG: log_path = optarg; break;
        case O_OUT: out_path = optarg; break;
        case O_EVAL: bad = parse_int("--eval", optarg, 1, 1 << 20, &eval_batches); break;
        case 'h': usage(stdout); return 0;
        default: bad = 1;
        }
    }
    if (bad || optind < argc) {
        if (optind < argc && !bad) fprintf(stderr, PROG ": error: unexpected argument '%s'\n", argv[optind]);
        fprintf(stderr, "Try '" PROG " --help'.\n");
        return 2;
    }
    cfg.vocab_size = mb_selcopy_vocab(&task);

    mb_ctx *ctx = mb_ctx_create(device);
    if (!ctx) {
        fprintf(stderr, PROG ": error: %s\n", mb_error_last());
        return 1;
    }
    mb_ctx_set_threads(ctx, threads);
    mb_model *m = mb_model_create(ctx, &cfg, (uint64_t)seed);
    mb_optim_config oc;
    mb_optim_config_default(&oc);
    oc.lr = lr;
    oc.min_lr = lr / 10;
    oc.warmup_steps = steps / 10;
    oc.total_steps = steps;
    mb_optim *opt = m ? mb_optim_create(m, &oc) : NULL;
    FILE *logf = log_path ? fopen(log_path, "a") : NULL;
    const int T = mb_selcopy_len(&task);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)batch * T);
    int32_t *tgt = malloc(sizeof(int32_t) * (size_t)batch * T);
    if (!m || !opt || !tok || !tgt || (log_path && !logf)) {
        if (log_path && !logf)
            fprintf(stderr, PROG ": error: %s: %s\n", log_path, strerror(errno));
        else fprintf(stderr, PROG ": error: %s\n", mb_error_last());
        return 1;
    }
    fprintf(stderr, PROG ": %zu parameters (d_model %d, %d layers, %s A), task: %d tokens among %d, "
                    "%d symbols\n", mb_model_num_params(m), cfg.d_model, cfg.n_layer,
            cfg.init == MB_INIT_S4D_LIN ? "complex" : "real", task.n_memorize, task.span, task.n_symbols);

    uint64_t data_seed = (uint64_t)seed * 7919u + 1;
    double t0 = mb_cli_now(), t_last = t0;
    mb_loss_stats win = {0};
    int rc = 0;
    for (int step = 1; step <= steps && rc == 0; step++) {
        mb_selcopy_batch(&task, &data_seed, batch, tok, tgt);
        float gn, lr_now;
        rc = mb_model_forward_backward(m, tok, tgt, batch, T, &win);
        if (rc == 0) rc = mb_optim_step(opt, &gn, &lr_now);
        if (rc == 0 && (step % 50 == 0 || step == steps)) {
            double t = mb_cli_now(), el = t - t0;
            double loss = win.loss_sum / (double)win.count, acc = (double)win.correct / (double)win.count;
            double tps = 50.0 * batch * T / (t - t_last);
            fprintf(stderr, "step %5d/%d  loss %.4f  acc %5.1f%%  lr %.2e  %7.0f tok/s  ETA %.0fs\n",
                    step, steps, loss, 100 * acc, lr_now, tps, el / step * (steps - step));
            if (logf)
                fprintf(logf, "{\"step\": %d, \"loss\": %.6f, \"accuracy\": %.6f, \"lr\": %.6g, "
                              "\"grad_norm\": %.6g, \"tokens_per_s\": %.1f}\n", step, loss, acc,
                        lr_now, gn, tps);
            memset(&win, 0, sizeof win);
            t_last = t;
        }
    }
    double acc = 0;
    if (rc == 0) rc = mb_selcopy_eval(&task, m, (uint64_t)seed * 104729u + 99, eval_batches, batch, &acc);
    if (rc == 0 && out_path) rc = mb_model_save(m, out_path);
    if (rc != 0) fprintf(stderr, PROG ": error: %s\n", mb_error_last());
    else
        printf("selective copying: accuracy %.2f%% on %d fresh sequences (chance %.1f%%), %.1fs\n",
               100 * acc, eval_batches * batch, 100.0 / task.n_symbols, mb_cli_now() - t0);
    if (logf) fclose(logf);
    free(tok);
    free(tgt);
    mb_optim_free(opt);
    mb_model_free(m);
    mb_ctx_free(ctx);
    return rc == 0 ? 0 : 1;
}
