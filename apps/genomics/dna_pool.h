/* Mean-pooled final hidden states of a model over the records, or over
 * windows of the records, of a set, in constant memory: chunks with the
 * recurrent state carried (mb_model_forward_chunk_pooled), whole windows
 * that fit one pass batched. embed writes them; classify predict puts the
 * classification head on them. */
#ifndef DNA_POOL_H
#define DNA_POOL_H

#include <stdint.h>

#include "dna_seq.h"
#include "mamba.h"

typedef struct {
    int64_t window; /* 0: whole records */
    int64_t stride; /* a window starts every stride bases */
    int64_t chunk;  /* most tokens one forward pass holds */
} dna_pool_opts;

/* --window and --stride, the options of the commands over dna_pool_run
 * (embed, classify predict): getopt entries, their parsing (1 when c was
 * one of them, *bad set by a bad value; 0 otherwise) and the check after
 * parsing (--stride needs --window; the stride defaults to the window;
 * -1 after an error line). Start from dna_pool_opts_init. */
enum { DNA_POOL_O_WINDOW = 0x2100, DNA_POOL_O_STRIDE };
#define DNA_POOL_OPTIONS {"window", 1, 0, DNA_POOL_O_WINDOW}, {"stride", 1, 0, DNA_POOL_O_STRIDE}
void dna_pool_opts_init(dna_pool_opts *o);
int dna_pool_option(dna_pool_opts *o, int c, const char *arg, int *bad);
int dna_pool_check(dna_pool_opts *o);

/* One row: sum (d_model values) of the hidden states over rec[start, end);
 * its mean is sum / (end - start) (an empty record has end == start).
 * Returns 0, or -1 after printing an error (the run stops). */
typedef int (*dna_pool_row_fn)(void *ud, int64_t rec, int64_t start, int64_t end, const double *sum);

/* Rows in file order: one per record, or per window of every record (a
 * record shorter than the window gives one row for all of it; a last
 * window that would pass the record's end is dropped). A row whose hidden
 * states are not finite (a model whose numbers overflow) is an error, not
 * a row. Progress on stderr when the work takes long (mb_cli_progress.h:
 * "mamba-dna WHAT: bases done/total (%), record i/n NAME, rows, bases/s,
 * ETA"); returns 0 early on Ctrl-C or SIGTERM (mb_cli_interrupted: the
 * caller checks it). Errors: one line printed, -1. */
int dna_pool_run(mb_model *m, const char *model_path, dna_set *set, const dna_pool_opts *o, const char *what,
                 dna_pool_row_fn row, void *ud);

#endif
