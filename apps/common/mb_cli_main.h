/* The tools' main: command dispatch, and Ctrl-C. */
#ifndef MB_CLI_MAIN_H
#define MB_CLI_MAIN_H

#include <stdio.h>

/* A tool's commands: the name, the entry point (it parses argv[1..], the
 * command's name standing in for argv[0]), and whether it runs
 * data-parallel under mpirun (the others would run whole in every process,
 * each writing the same outputs, so they refuse several processes). */
typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    int parallel;
} mb_cli_command;
/* No command prints usage to stderr (exit 2); -h, --help or help to stdout
 * (0); --version; else the command named by argv[1], or "unknown command"
 * (2). The command runs with mb_cli_catch_interrupt's handlers in place. */
int mb_cli_main(const char *prog, int argc, char **argv, void (*usage)(FILE *f), const mb_cli_command *cmds,
                int ncmds);

/* "PROG (libmamba X.Y.Z)" and a newline on stdout: --version, of the tool
 * and of every command. */
void mb_cli_version(const char *prog);

/* Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process:
 * installed before a command starts (mb_cli_main), so that no signal ends
 * a command between creating a temporary output and removing it. Every
 * command polls the flag in its work (steps, chunks, records, files) and
 * stops there: a training loop saves a checkpoint; the others discard their
 * temporary outputs, leave earlier ones as they were, print one line and
 * exit 130 (for SIGTERM too: one code for "stopped by the user"). A second
 * signal kills the process as usual (for work stuck between polls). */
void mb_cli_catch_interrupt(void);
int mb_cli_interrupted(void);
/* The tool itself asks its training loop to stop (on 1: a log that cannot
 * be written): taken at the next step's sync like an interrupt, by every
 * rank (mb_cli_dist_step), without setting mb_cli_interrupted. A loop
 * starts with none (on 0). */
void mb_cli_stop_request(int on);
int mb_cli_stop_requested(void);
/* The exit code of a stop by mb_cli_interrupted. */
#define MB_CLI_EXIT_INTERRUPTED 130

#endif
