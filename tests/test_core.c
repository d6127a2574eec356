/* The core layer's promises that the rest of the suite would not notice
 * breaking: the portable macros exist without GNU C, device memory and
 * files through core/, and a model and its states freed in either order. */

/* core.h's MB_PI and MB_OMP must not depend on GNU C: core.h is included
 * here as a compiler without __GNUC__ would see it (the system headers
 * first, with it, since glibc's need it). If either macro were defined only
 * under __GNUC__, this file would not compile and the suite would not
 * build. */
/* symlink, lstat, mkfifo: POSIX (the project compiles as strict C11) */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#ifdef __GNUC__
#define MB_TEST_GNUC __GNUC__
#undef __GNUC__
#endif
#include "core/core.h"
#ifdef MB_TEST_GNUC
#define __GNUC__ MB_TEST_GNUC
#endif

#include "testutil.h"

static void test_macros_without_gnu_c(void **s)
{
    (void)s;
    double sum = 0;
    MB_OMP(omp parallel for reduction(+ : sum))
    for (int i = 0; i < 1000; i++) sum += MB_PI / 1000.0;
    assert_true(sum > 3.14159 && sum < 3.1416);
}

/* A state may outlive mb_model_free: the model's memory stays until the
 * last state goes, and the state still works until then (mamba.h). Run
 * under valgrind or ASan, a use after free here is reported; without,
 * the state's step after the model's free still has to give the logits
 * it gave before. */
static void test_free_order(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    mb_config cfg;
    mb_config_default(&cfg);
    cfg.d_model = 16, cfg.n_layer = 2, cfg.vocab_size = 7;
    mb_model *m = mb_model_create(ctx, &cfg, 3);
    assert_non_null(m);
    mb_state *a = mb_state_create(m, 2), *b = mb_state_create(m, 2);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(m->n_states, 2);
    const int32_t tok[2] = {1, 5};
    const int Vp = mb_config_vocab_padded(&cfg);
    float *la = malloc((size_t)2 * Vp * 4), *lb = malloc((size_t)2 * Vp * 4);
    assert_int_equal(mb_model_step(m, a, tok, la), 0);
    mb_model_free(m); /* two states alive: kept */
    assert_int_equal(b->model->freed, 1);
    assert_int_equal(mb_model_step(b->model, b, tok, lb), 0);
    assert_memory_equal(la, lb, (size_t)2 * Vp * 4);
    mb_state_free(a);
    mb_state_free(b); /* the last one: the model goes with it */
    /* and the usual order still works */
    m = mb_model_create(ctx, &cfg, 3);
    a = mb_state_create(m, 1);
    assert_non_null(a);
    mb_state_free(a);
    assert_int_equal(m->n_states, 0);
    mb_model_free(m);
    free(la), free(lb);
    mb_ctx_free(ctx);
}

/* mb_outfile: the old file stays until commit; discard leaves it; commit
 * replaces it; nothing is left beside it. */
static void test_outfile(void **s)
{
    (void)s;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "outfile.txt");
    FILE *f = fopen(path, "w");
    fputs("old", f);
    fclose(f);
    mb_outfile *o = mb_outfile_open(path);
    assert_non_null(o);
    fputs("new", mb_outfile_fp(o));
    size_t n;
    char *got = mb_test_read_file(path, &n);
    assert_int_equal(n, 3);
    assert_memory_equal(got, "old", 3);
    free(got);
    mb_outfile_discard(o);
    got = mb_test_read_file(path, &n);
    assert_memory_equal(got, "old", 3);
    free(got);
    o = mb_outfile_open(path);
    fputs("newer", mb_outfile_fp(o));
    assert_int_equal(mb_outfile_commit(o), 0);
    got = mb_test_read_file(path, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(got, "newer", 5);
    free(got);
    /* a new file gets what the umask gives, not mkstemp's 0600 */
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    const mode_t um = umask(0);
    umask(um);
    assert_int_equal(st.st_mode & 0777, 0666 & ~um);
    /* a kill mid-write leaves PATH.tmpXXXXXX: the sweep removes exactly
     * those (not PATH, not other names that start alike) */
    char left[300], other[300], other2[300];
    snprintf(left, sizeof left, "%s.tmpAb3xYz", path);
    snprintf(other, sizeof other, "%s.tmpAb3xY", path);   /* five characters */
    snprintf(other2, sizeof other2, "%s.tmp_b3xYz", path); /* not mkstemp's alphabet */
    const char *made[3] = {left, other, other2};
    for (int i = 0; i < 3; i++) {
        FILE *t = fopen(made[i], "w");
        assert_non_null(t);
        fclose(t);
    }
    assert_int_equal(mb_outfile_sweep(path), 1);
    assert_int_equal(access(left, F_OK), -1);
    assert_int_equal(access(other, F_OK), 0);
    assert_int_equal(access(other2, F_OK), 0);
    assert_int_equal(access(path, F_OK), 0);
    remove(other), remove(other2);
    /* a directory that does not exist: one line naming the path */
    char bad[300];
    snprintf(bad, sizeof bad, "%s.nodir/x", path);
    assert_null(mb_outfile_open(bad));
    assert_non_null(strstr(mb_error_last(), bad));
    assert_non_null(strstr(mb_error_last(), "cannot create a file in its directory"));
    /* not a regular file there (a device, a FIFO): refused, left as it is;
     * the rename would have put a regular file in its place */
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s.fifo", path);
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_null(mb_outfile_open(fifo));
    assert_non_null(strstr(mb_error_last(), "not a regular file"));
    struct stat fst;
    assert_int_equal(stat(fifo, &fst), 0);
    assert_true(S_ISFIFO(fst.st_mode));
    unlink(fifo);
    /* a link to a file: written through to its target, the link kept */
    char link[300];
    snprintf(link, sizeof link, "%s.link", path);
    unlink(link);
    assert_int_equal(symlink(path, link), 0);
    o = mb_outfile_open(link);
    assert_non_null(o);
    fputs("through", mb_outfile_fp(o));
    assert_int_equal(mb_outfile_commit(o), 0);
    struct stat lst;
    assert_int_equal(lstat(link, &lst), 0);
    assert_true(S_ISLNK(lst.st_mode));
    got = mb_test_read_file(path, &n);
    assert_int_equal(n, 7);
    assert_memory_equal(got, "through", 7);
    free(got);
    unlink(link);
    remove(path);
}

/* Device memory on the CPU: aligned, and the carve lays out what it counted. */
static void layout_three(mb_carve *c, void *arg)
{
    float **p = arg;
    p[0] = mb_carve_take(c, 3);
    p[1] = mb_carve_take(c, 17);
    p[2] = mb_carve_take(c, 1);
}

static void test_carve(void **s)
{
    (void)s;
    mb_ctx *ctx = mb_ctx_create("cpu");
    float *p[3];
    float *buf = mb_dev_carve(ctx, layout_three, p, "test");
    assert_non_null(buf);
    assert_ptr_equal(p[0], buf);
    assert_ptr_equal(p[1], buf + 16);
    assert_ptr_equal(p[2], buf + 48);
    for (int i = 0; i < 3; i++) assert_int_equal((uintptr_t)p[i] % 64, 0);
    mb_dev_free(ctx, buf);
    mb_ctx_free(ctx);
}

/* a file under the test's scratch folder, its parents made */
static void put(const char *root, const char *rel, const char *text)
{
    char path[512], dir[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dir, sizeof dir, "%s", path);
    for (char *p = dir + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(dir, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* mb_cpu_quota on made-up cgroup trees: v2 with the limit on a parent, v1
 * as a container sees it (the host's path in /proc/self/cgroup, its own
 * group at the mount's root), none, and files that make no sense */
static void test_cpu_quota(void **s)
{
    (void)s;
    char root[256], self[300];
    mb_test_tmp_path(root, sizeof root, "cgroup");
    snprintf(self, sizeof self, "%s/self", root);
    mkdir(root, 0755);
    /* v2: a/b has no limit of its own; a allows 1.5 CPUs, the root none */
    put(root, "v2/a/cpu.max", "150000 100000\n");
    put(root, "v2/a/b/cpu.max", "max 100000\n");
    put(root, "self", "0::/a/b\n");
    char top[300];
    snprintf(top, sizeof top, "%s/v2", root);
    assert_int_equal(mb_cpu_quota(top, self), 2);
    /* the child's own lower limit wins */
    put(root, "v2/a/b/cpu.max", "50000 100000\n");
    assert_int_equal(mb_cpu_quota(top, self), 1);
    /* inside a container's namespace: "0::/", the limit at the root */
    put(root, "self", "0::/\n");
    put(root, "v2/cpu.max", "400000 100000\n");
    assert_int_equal(mb_cpu_quota(top, self), 4);
    /* v1 in a container: the path names the host's group, absent here */
    snprintf(top, sizeof top, "%s/v1", root);
    put(root, "v1/cpu,cpuacct/cpu.cfs_quota_us", "300000\n");
    put(root, "v1/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    put(root, "self", "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
    assert_int_equal(mb_cpu_quota(top, self), 3);
    /* v1, no limit (-1) */
    put(root, "v1/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    assert_int_equal(mb_cpu_quota(top, self), 0);
    /* nonsense and absence: no limit, no crash */
    put(root, "v2/cpu.max", "lots\n");
    put(root, "self", "0::/\n");
    snprintf(top, sizeof top, "%s/v2", root);
    assert_int_equal(mb_cpu_quota(top, self), 0);
    put(root, "self", "garbage\n::\n");
    assert_int_equal(mb_cpu_quota(top, self), 0);
    snprintf(self, sizeof self, "%s/missing", root);
    assert_int_equal(mb_cpu_quota(top, self), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_macros_without_gnu_c),
        cmocka_unit_test(test_free_order),
        cmocka_unit_test(test_outfile),
        cmocka_unit_test(test_carve),
        cmocka_unit_test(test_cpu_quota),
    };
    mb_test_filter_env();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
