/* The training loop: see mb_cli_loop.h. */
#include "mb_cli_loop.h"

#include <math.h>
#include <string.h>

#include "mb_cli_dist.h"
#include "mb_cli_error.h"
#include "mb_cli_main.h"
#include "mb_cli_out.h"
#include "mb_cli_time.h"

#define LOOP_PRINT_S 5.0

/* the default fields: the loss in bits per counted target */
static void fields_train_bits(const mb_cli_train_run *r, const mb_loss_stats *acc, FILE *f, int json)
{
    const double bits = acc->count ? acc->loss_sum / (double)acc->count / MB_CLI_LN2 : NAN;
    if (json) fprintf(f, ", \"%s\": %.6f", r->key_train, bits);
    else fprintf(f, "  train %.4f %s", bits, r->unit);
}

static void fields_val_bits(const mb_cli_train_run *r, double val, FILE *f, int json)
{
    if (json) fprintf(f, ", \"%s\": %.6f", r->key_val, val);
    else fprintf(f, "  val %.4f", val);
}

static void loop_fields_train(const mb_cli_train_run *r, const mb_loss_stats *acc, FILE *f, int json)
{
    if (r->fields_train) r->fields_train(r->ud, acc, f, json);
    else fields_train_bits(r, acc, f, json);
}

static void loop_fields_val(const mb_cli_train_run *r, FILE *f, int json)
{
    if (r->fields_val) r->fields_val(r->ud, r->last_val, f, json);
    else fields_val_bits(r, r->last_val, f, json);
}

/* the progress line and the JSON line of step `step` */
static void loop_print(const mb_cli_train_run *r, int64_t step, const mb_cli_step *st, const mb_loss_stats *acc,
                       int did_val, float lr, float gn, double rate, double now)
{
    char eta[32], shape[48] = "";
    mb_cli_duration((now - r->t0) / (double)(step - r->step0) * (double)(r->steps - step), eta, sizeof eta);
    if (r->show_shape) snprintf(shape, sizeof shape, "  L %lld", (long long)st->L);
    fprintf(stderr, "step %lld/%lld%s", (long long)step, (long long)r->steps, shape);
    loop_fields_train(r, acc, stderr, 0);
    if (did_val) loop_fields_val(r, stderr, 0);
    fprintf(stderr, "  lr %.2e  %.*f %s  ETA %s\n", lr, r->rate_digits, rate, r->rate_unit, eta);
    if (!r->log) return;
    fprintf(r->log, "{\"step\": %lld", (long long)step);
    if (r->show_shape) fprintf(r->log, ", \"seq_len\": %lld, \"batch\": %lld", (long long)st->L, (long long)st->B);
    loop_fields_train(r, acc, r->log, 1);
    fprintf(r->log, ", \"lr\": %.6g, \"grad_norm\": %.6g, \"%s\": %.*f", lr, gn, r->key_rate, r->rate_digits + 1,
            rate);
    if (did_val) loop_fields_val(r, r->log, 1);
    fputs("}\n", r->log);
}

/* whether step `step` gets a progress line (rank 0's decision counts) */
static int loop_print_due(const mb_cli_train_run *r, int64_t step, int do_val, double since_print)
{
    if (do_val || step == r->steps || step == r->last) return 1;
    if (r->print_every) return step % r->print_every == 0;
    return since_print >= LOOP_PRINT_S || step == r->step0 + 1;
}

int mb_cli_train_loop(mb_cli_train_run *r)
{
    mb_cli_catch_interrupt();
    mb_cli_stop_request(0);
    r->t0 = mb_cli_now();
    r->last_val = NAN;
    r->stop = r->synced = 0;
    r->step0 = r->step;
    /* the end of the last progress line: the rate counts the steps since,
     * not the validation and the printing */
    double t_last = r->t0;
    mb_loss_stats acc = {0};
    int64_t items = 0;
    int rc = 0;
    while (r->step < r->last && !r->stop) {
        const int64_t step = ++r->step;
        mb_cli_step st = {{0}, 0, 0, 0};
        rc = r->train_step(r->ud, step, &st);
        if (rc < 0) {
            mb_cli_error(r->prog, "step %lld: %s", (long long)step, mb_error_last());
            rc = 1;
        }
        /* the step's loss over every rank, rank 0's choice to print, a
         * Ctrl-C on any rank; a failure on any rank stops them all here */
        const int do_val = r->val_every && (step % r->val_every == 0 || step == r->steps || step == r->last);
        const double now = mb_cli_now();
        int print = 0;
        rc = mb_cli_dist_step(rc, &st.loss, loop_print_due(r, step, do_val, now - t_last), r->opt, &acc, &print,
                              &r->stop);
        if (rc) {
            r->synced = 1;
            break;
        }
        float gn = 0, lr = 0;
        if (mb_optim_step(r->opt, &gn, &lr)) {
            mb_cli_error(r->prog, "step %lld: %s", (long long)step, mb_error_last());
            rc = 1;
            break;
        }
        items += st.items;
        if (print) {
            if (do_val && (rc = r->validate(r->ud, &r->last_val))) {
                r->synced = 1;
                break;
            }
            const double t_end = mb_cli_now();
            loop_print(r, step, &st, &acc, do_val, lr, gn, (double)items / (now - t_last), t_end);
            /* a log line lost (a full disk): its error line now; every rank
             * stops at the next step's sync, and finish saves and exits 1 */
            if (mb_cli_log_check(r->prog, r->log)) mb_cli_stop_request(1);
            memset(&acc, 0, sizeof acc);
            items = 0;
            t_last = t_end;
        }
        if (r->save && mb_cli_rank() == 0 && r->save_every && step % r->save_every == 0 && step < r->steps &&
            r->save(r->ud)) {
            rc = 1;
            break;
        }
    }
    return rc;
}

int mb_cli_train_finish(mb_cli_train_run *r, int rc, const char *out)
{
    if (rc) return rc;
    if (r->save && mb_cli_rank() == 0 && r->step > r->step0 && r->save(r->ud)) return 1;
    /* a lost log line was said when it failed: the run stopped for it */
    const int log_lost = mb_cli_log_check(r->prog, r->log) != 0;
    if (r->stop || r->step < r->steps) {
        const int user = r->stop && !mb_cli_stop_requested(); /* a signal, on any rank */
        fprintf(stderr, "%s: %s at step %lld", r->prog, user ? "interrupted" : "stopped", (long long)r->step);
        if (out) fprintf(stderr, "; saved %s (--resume continues)", out);
        fputc('\n', stderr);
    }
    if (log_lost) return 1;
    return r->stop ? MB_CLI_EXIT_INTERRUPTED : 0; /* 130: the shell's code for Ctrl-C; saved */
}
