/* Command-line plumbing shared by the tools (mamba-dna, mamba-audio,
 * mamba-selcopy), one header per concern:
 *
 *   mb_cli_error.h  one-line errors ("PROG: error: FILE: what")
 *   mb_cli_opts.h   option values, the shared model and training flags
 *   mb_cli_model.h  the context, model and optimizer those flags make
 *   mb_cli_out.h    output files (over mb_outfile), --log, paths beside a model
 *   mb_cli_ckpt.h   a run's checkpoint sets: --keep, --select, --resume
 *   mb_cli_dist.h   the data-parallel group and its syncs
 *   mb_cli_loop.h   the training loop
 *   mb_cli_main.h   command dispatch, Ctrl-C and SIGTERM, --version
 *   mb_cli_progress.h  progress lines of long work (not training)
 *   mb_cli_rng.h    random numbers for data order
 *   mb_cli_time.h   clocks and ETAs
 *
 * Conventions (README): errors are one line "PROG: error: what" on stderr;
 * exit 1 for bad input or a failed run, 2 for bad usage. */
#ifndef MB_CLI_H
#define MB_CLI_H

#include "mb_cli_ckpt.h"
#include "mb_cli_dist.h"
#include "mb_cli_error.h"
#include "mb_cli_loop.h"
#include "mb_cli_main.h"
#include "mb_cli_model.h"
#include "mb_cli_opts.h"
#include "mb_cli_out.h"
#include "mb_cli_progress.h"
#include "mb_cli_rng.h"
#include "mb_cli_time.h"

#endif
