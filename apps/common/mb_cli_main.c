/* Command dispatch and Ctrl-C: see mb_cli_main.h. */
#include "mb_cli_main.h"

#include <signal.h>
#include <string.h>

#include "mamba.h"
#include "mb_cli_error.h"

/* launched by mpirun with several processes: one line from rank 0, -1 */
static int cli_single_process(const char *prog, const char *cmd)
{
    int r = 0;
    const int n = mb_dist_launched(&r);
    if (n <= 1) return 0;
    if (r == 0)
        mb_cli_error(prog, "%s runs as one process, but mpirun started %d: only the training commands run "
                           "data-parallel",
                     cmd, n);
    return -1;
}

int mb_cli_main(const char *prog, int argc, char **argv, void (*usage)(FILE *f), const mb_cli_command *cmds,
                int ncmds)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        mb_cli_version(prog);
        return 0;
    }
    for (int i = 0; i < ncmds; i++) {
        if (strcmp(cmd, cmds[i].name) != 0) continue;
        if (!cmds[i].parallel && cli_single_process(prog, cmd)) return 1;
        mb_cli_catch_interrupt();
        return cmds[i].run(argc - 1, argv + 1);
    }
    mb_cli_error(prog, "unknown command '%s'", cmd);
    fprintf(stderr, "Try '%s --help'.\n", prog);
    return 2;
}

void mb_cli_version(const char *prog) { printf("%s (libmamba %s)\n", prog, MB_VERSION); }

static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig)
{
    if (g_interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_interrupted = 1;
}

void mb_cli_catch_interrupt(void)
{
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
}

int mb_cli_interrupted(void) { return g_interrupted != 0; }

static int g_stop_requested;

void mb_cli_stop_request(int on) { g_stop_requested = on != 0; }
int mb_cli_stop_requested(void) { return g_stop_requested; }
