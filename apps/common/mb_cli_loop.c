/* The training loop: see mb_cli_loop.h. */
#include "mb_cli_loop.h"

#include <math.h>
#include <stdlib.h>
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

mb_cli_val_hist *mb_cli_train_hist(mb_cli_train_run *r) { return r->ck ? &r->ck->hist : &r->hist; }

/* After the validation of step `step`: the lowest held-out loss kept, the
 * warning, the early stop; the ranks agree on a failed save_best and on
 * the stop. mb_cli_dist_sync's code. */
static int loop_after_val(mb_cli_train_run *r, int64_t step)
{
    mb_cli_val_hist *h = mb_cli_train_hist(r);
    const double loss = r->val_loss ? r->val_loss(r->ud, r->last_val) : r->last_val;
    int rc = 0;
    if (isfinite(loss) && (h->best_step == 0 || loss < h->best)) {
        h->best = loss;
        h->best_step = step;
        h->since_best = 0;
        if (r->save_best && mb_cli_rank() == 0) rc = r->save_best(r->ud);
    } else if (++h->since_best >= MB_CLI_RISING_VALS && !h->warned) {
        h->warned = 1;
        char kept[1100] = "";
        if (r->save_best && r->best_out) snprintf(kept, sizeof kept, "; %s holds the best", r->best_out);
        mb_cli_warn(r->prog, "step %lld: the held-out loss, %.4f, has not improved for %lld validations (best %.4f "
                             "at step %lld): the model may be overfitting%s%s",
                    (long long)step, loss, (long long)h->since_best, h->best, (long long)h->best_step, kept,
                    r->patience ? "" : "; --patience N stops such a run early");
    }
    mb_cli_sync s = {{0}, 0, r->patience > 0 && h->since_best >= r->patience};
    if ((rc = mb_cli_dist_sync(rc, &s)) == 0 && s.stop) r->early = 1;
    return rc;
}

int mb_cli_train_loop(mb_cli_train_run *r)
{
    mb_cli_catch_interrupt();
    mb_cli_stop_request(0);
    r->t0 = mb_cli_now();
    r->last_val = NAN;
    r->stop = r->synced = r->early = 0;
    r->saved = 0;
    r->step0 = r->step;
    /* a run that stopped early, resumed with the same patience: done */
    const mb_cli_val_hist *h = mb_cli_train_hist(r);
    if (r->patience > 0 && h->since_best >= r->patience) {
        r->early = 1;
        return 0;
    }
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
            /* the same norm on every rank: they all stop here */
            if (!isfinite(gn)) mb_cli_ckpt_diverged(r->ck, r->prog, step, "its gradient norm is not finite");
            else mb_cli_error(r->prog, "step %lld: %s", (long long)step, mb_error_last());
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
            /* after the line, so a warning follows the figure it is about */
            if (do_val && (rc = loop_after_val(r, step))) {
                r->synced = 1;
                break;
            }
        }
        if (r->save && mb_cli_rank() == 0 && r->save_every && step % r->save_every == 0 && step < r->steps) {
            if (r->save(r->ud)) {
                rc = 1;
                break;
            }
            r->saved = step;
        }
        if (r->early) break;
    }
    return rc;
}

int mb_cli_train_finish(mb_cli_train_run *r, int rc, const char *out)
{
    if (rc) return rc;
    if (r->save && mb_cli_rank() == 0 && r->step > r->step0 && r->step != r->saved) {
        if (r->save(r->ud)) return 1;
        r->saved = r->step;
    }
    /* a lost log line was said when it failed: the run stopped for it */
    const int log_lost = mb_cli_log_check(r->prog, r->log) != 0;
    char *set = r->ck && mb_cli_ckpt_newest(r->ck) ? mb_cli_ckpt_path(r->ck->out, mb_cli_ckpt_newest(r->ck), "") : NULL;
    if (set) out = set;
    const mb_cli_val_hist *h = mb_cli_train_hist(r);
    if (r->early) {
        fprintf(stderr, "%s: stopped early at step %lld: the held-out loss has not improved for %lld validations "
                        "(--patience %lld)",
                r->prog, (long long)r->step, (long long)h->since_best, (long long)r->patience);
        if (h->best_step > 0) fprintf(stderr, "; its best, %.4f, was at step %lld", h->best, (long long)h->best_step);
        else fputs("; no validation gave a finite loss", stderr);
        if (h->best_step > 0 && r->save_best && r->best_out) fprintf(stderr, ", kept in %s", r->best_out);
        fputc('\n', stderr);
    } else if (r->stop || r->step < r->steps) {
        const int user = r->stop && !mb_cli_stop_requested(); /* a signal, on any rank */
        fprintf(stderr, "%s: %s at step %lld", r->prog, user ? "interrupted" : "stopped", (long long)r->step);
        if (out) fprintf(stderr, "; saved %s (--resume continues)", out);
        fputc('\n', stderr);
    }
    free(set);
    if (log_lost) return 1;
    return r->stop ? MB_CLI_EXIT_INTERRUPTED : 0; /* 130: the shell's code for Ctrl-C; saved */
}
