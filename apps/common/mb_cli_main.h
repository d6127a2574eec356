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
 * (2). */
int mb_cli_main(const char *prog, int argc, char **argv, void (*usage)(FILE *f), const mb_cli_command *cmds,
                int ncmds);

/* Ctrl-C (SIGINT) and SIGTERM set a flag instead of killing the process, so
 * a training loop can save a checkpoint and stop cleanly; a second signal
 * kills it as usual. */
void mb_cli_catch_interrupt(void);
int mb_cli_interrupted(void);

#endif
