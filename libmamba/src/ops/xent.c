/* Softmax cross-entropy over rows of logits (M, V).
 *
 * The log-sum-exp is shifted by the row max and summed in double, and the
 * exponentials are taken in double too: the loss is a difference of numbers
 * near log V, and float exps would leave noise well above the gradient's
 * small entries. */
#include <math.h>

#include "ops/ops.h"

/* Rows are split into fixed chunks whose stats are added in chunk order, so
 * the loss sum does not depend on the thread count. */
enum { MB_XENT_CHUNKS = 64 };
#define MB_XENT_PAR_MIN (1 << 15)

typedef struct {
    double loss;
    int64_t count, correct;
} xent_part;

/* One counted row: its loss and argmax hit into *part, and dx when asked.
 * Everything read from x is read before dx (which may be x) is written. */
static void xent_row(int V, const float *x, int target, float grad_scale, float *dx,
                     double *row_loss, xent_part *part)
{
    float mx = x[0];
    int am = 0;
    for (int j = 1; j < V; j++)
        if (x[j] > mx) {
            mx = x[j];
            am = j;
        }
    double s = 0.0;
    for (int j = 0; j < V; j++) s += exp((double)x[j] - mx);
    double lse = mx + log(s);
    part->loss += lse - x[target];
    if (row_loss) *row_loss = lse - x[target];
    part->count += 1;
    part->correct += am == target;
    if (!dx) return;
    for (int j = 0; j < V; j++) {
        double p = exp((double)x[j] - lse);
        dx[j] = (float)(grad_scale * (p - (j == target ? 1.0 : 0.0)));
    }
}

static void xent_rows(int lo, int hi, int V, const float *logits, const int32_t *targets,
                      int ignore_index, float grad_scale, float *dlogits, double *row_loss,
                      xent_part *part)
{
    for (int i = lo; i < hi; i++) {
        const float *x = logits + (size_t)i * V;
        float *dx = dlogits ? dlogits + (size_t)i * V : NULL;
        if (targets[i] == ignore_index) {
            if (row_loss) row_loss[i] = 0.0;
            if (dx)
                for (int j = 0; j < V; j++) dx[j] = 0.0f;
            continue;
        }
        xent_row(V, x, targets[i], grad_scale, dx, row_loss ? row_loss + i : NULL, part);
    }
}

void mb_xent_cpu(MB_OPS_XENT_ARGS)
{
    if (M <= 0) return;
    xent_part part[MB_XENT_CHUNKS] = {{0}};
    int nc = M < MB_XENT_CHUNKS ? M : MB_XENT_CHUNKS;
    double work = (double)M * V;
    (void)work;
    (void)ctx; /* read by the OpenMP clause only */
MB_OMP(omp parallel for num_threads(ctx->n_threads) if (work > MB_XENT_PAR_MIN) schedule(static))
    for (int c = 0; c < nc; c++) {
        int lo = (int)((int64_t)M * c / nc), hi = (int)((int64_t)M * (c + 1) / nc);
        xent_rows(lo, hi, V, logits, targets, ignore_index, grad_scale, dlogits, row_loss, part + c);
    }
    for (int c = 0; stats && c < nc; c++) {
        stats->loss_sum += part[c].loss;
        stats->count += part[c].count;
        stats->correct += part[c].correct;
    }
}
