/* How many CPUs this process may use, beyond its affinity mask: a CPU quota
 * of its control group (docker --cpus, Kubernetes limits, systemd
 * CPUQuota=). OpenMP sizes its team by the affinity mask alone, so a
 * container limited to 2 CPUs of a 64-core host would run 64 threads that
 * the kernel throttles in turns, and every barrier waits for a throttled
 * one (training steps several times slower than with 2 threads). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* The first line of a small file, without its newline; 0, or -1. */
static int read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    const int ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* ceil(quota / period) from two numbers; 0 for no limit or nonsense */
static int quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0) return 0;
    const long long n = (quota + period - 1) / period;
    return n > INT_MAX ? 0 : (int)n;
}

/* The limit of one cgroup directory: v2's cpu.max ("max 100000" or
 * "200000 100000"), else v1's cpu.cfs_quota_us (-1: none) and
 * cpu.cfs_period_us. 0 when none. */
static int dir_limit(const char *dir)
{
    char path[PATH_MAX + 32], quota[128], period[128];
    snprintf(path, sizeof path, "%s/cpu.max", dir);
    if (read_line(path, quota, sizeof quota) == 0) {
        long long q, p;
        if (strncmp(quota, "max", 3) == 0 || sscanf(quota, "%lld %lld", &q, &p) != 2) return 0;
        return quota_cpus(q, p);
    }
    snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir);
    if (read_line(path, quota, sizeof quota)) return 0;
    snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir);
    if (read_line(path, period, sizeof period)) return 0;
    return quota_cpus(strtoll(quota, NULL, 10), strtoll(period, NULL, 10));
}

/* The lowest limit from dir up to (and including) top: a parent's quota
 * caps its children. 0 when none. */
static int walk_up(const char *top, const char *rel)
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s%s", top, strcmp(rel, "/") == 0 ? "" : rel) >= (int)sizeof dir) return 0;
    const size_t keep = strlen(top);
    int best = 0;
    for (;;) {
        const int l = dir_limit(dir);
        if (l > 0 && (best == 0 || l < best)) best = l;
        char *slash = strrchr(dir, '/');
        if (strlen(dir) <= keep || !slash || (size_t)(slash - dir) < keep) break;
        *slash = '\0';
    }
    return best;
}

int mb_cpu_quota(const char *root, const char *self)
{
    if (!root) root = "/sys/fs/cgroup";
    if (!self) self = "/proc/self/cgroup";
    FILE *f = fopen(self, "r");
    if (!f) return 0;
    char line[1024];
    int best = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        /* "ID:CONTROLLERS:PATH" */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/') continue;
        *c1 = *c2 = '\0';
        const char *ctl = c1 + 1, *rel = c2 + 1;
        char top[PATH_MAX];
        int l = 0;
        if (strcmp(line, "0") == 0 && !*ctl) {
            /* v2: one hierarchy at root; inside a container's cgroup
             * namespace its own group is the root and rel is "/" */
            snprintf(top, sizeof top, "%s", root);
            l = walk_up(top, rel);
        } else {
            /* v1: the cpu controller's hierarchy, mounted as "cpu,cpuacct"
             * or "cpu"; a container sees its group at the mount's root
             * while rel still names the host's path, so both are tried */
            char list[256];
            snprintf(list, sizeof list, ",%s,", ctl);
            if (!strstr(list, ",cpu,")) continue;
            static const char *const mounts[] = {"cpu,cpuacct", "cpu", "cpuacct,cpu"};
            for (size_t i = 0; i < sizeof mounts / sizeof *mounts && !l; i++) {
                snprintf(top, sizeof top, "%s/%s", root, mounts[i]);
                l = walk_up(top, rel);
            }
        }
        if (l > 0 && (best == 0 || l < best)) best = l;
    }
    fclose(f);
    return best;
}
