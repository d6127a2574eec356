/* Command dispatch and Ctrl-C: see mb_cli_main.h. */
#include "mb_cli_main.h"

#include <signal.h>
#include <string.h>
#include <time.h>

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
static struct timespec g_first; /* when the first signal came */

/* The first SIGINT or SIGTERM asks the command to stop at its next check
 * (a training run saves). A repeat within a second is the same request:
 * `timeout` signals the command and then its process group, and a shell's
 * job control can do the same, so one stop arrives twice (it once killed
 * generate before it could remove its temporary file). A repeat after
 * that, a second Ctrl-C a person pressed, ends the process at once.
 * clock_gettime and raise are async-signal-safe. */
static void on_signal(int sig)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (g_interrupted) {
        const double since = (double)(now.tv_sec - g_first.tv_sec) + 1e-9 * (double)(now.tv_nsec - g_first.tv_nsec);
        if (since < 1.0) return;
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        raise(sig);
        return;
    }
    g_first = now;
    g_interrupted = 1;
}

void mb_cli_catch_interrupt(void)
{
    /* sigaction, not signal(): under strict POSIX feature macros glibc's
     * signal() is System V's, which resets the handler as it runs, so the
     * second signal killed the process whatever on_signal decided */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int mb_cli_interrupted(void) { return g_interrupted != 0; }

static int g_stop_requested;

void mb_cli_stop_request(int on) { g_stop_requested = on != 0; }
int mb_cli_stop_requested(void) { return g_stop_requested; }
