/* SaShiMi's generated-audio metrics (apps/audio/audio_metrics.h) and the
 * two pieces under them: the symmetric eigen solver (audio_eig.h) and
 * k-means (audio_kmeans.h).
 *
 * Fixtures: the three safetensors files in tests/fixtures/audio_metrics/, by
 * scripts/audio_metrics_ref.py from its own seeded inputs: FID through
 * scipy.linalg.sqrtm as SaShiMi computes it, IS with the splitmix64
 * Fisher-Yates shuffle written again in Python, mIS by the direct double
 * loop, AM with scipy.stats.entropy, NDB's counts and z-test on centroids
 * the script chose. Everything else here is a property of the metrics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio_eig.h"
#include "audio_kmeans.h"
#include "audio_metrics.h"
#include "testutil.h"
#include "train/safetensors.h"

/* Against the fixture, relative. Both sides are float64 from the same
 * float32 inputs; what differs is the order of sums and, for FID, scipy's
 * Schur-based sqrtm against our two Jacobi eigendecompositions: measured
 * up to ~1e-13 (printed per case). Each hand-made error this suite is
 * meant to catch (a dropped factor 2 or term, N instead of N - 1 in a
 * covariance, swapped KL arguments) moves a score by 1e-3 or more.
 * FID is compared relative to its scale, ||mu_g - mu_r||^2 + tr S_r +
 * tr S_g, as it is a difference of those terms and can be ~0. */
#define FIX_TOL 1e-9

static char g_err[512];

/* ---- fixture access ------------------------------------------------------ */

typedef struct {
    mb_st_file *f;
    int64_t n_ref, n_gen, k, d;
    double *ref_probs, *ref_feats, *gen_probs, *gen_feats; /* gen == ref for "same" */
    int same;
} fix_case;

static const mb_st_tensor *fix_tensor(mb_st_file *f, const char *name)
{
    const mb_st_tensor *t = mb_st_find(f, name);
    if (!t) fail_msg("%s: no tensor %s", mb_st_path(f), name);
    return t;
}

/* An F32 tensor (the classifier's precision) as doubles: exact. */
static double *fix_f32(mb_st_file *f, const char *name, int64_t *rows, int64_t *cols)
{
    const mb_st_tensor *t = fix_tensor(f, name);
    if (t->ndim != 2 || t->dtype != MB_ST_F32) fail_msg("%s: %s is not a 2-d F32 tensor", mb_st_path(f), name);
    float *v = malloc(t->numel * sizeof(float));
    double *x = malloc(t->numel * sizeof(double));
    assert_non_null(v);
    assert_non_null(x);
    if (mb_st_read_f32(f, t, v, t->numel) != 0) fail_msg("%s", mb_error_last());
    for (size_t i = 0; i < t->numel; i++) x[i] = (double)v[i];
    free(v);
    *rows = t->shape[0];
    *cols = t->shape[1];
    return x;
}

/* An F64 tensor unrounded (mb_st_read_f32 would round it to float): the
 * file's bytes at the tensor's offsets, after the 8-byte header length
 * and the header. */
static double *fix_f64(mb_st_file *f, const char *name, size_t want)
{
    const mb_st_tensor *t = fix_tensor(f, name);
    if (t->dtype != MB_ST_F64 || t->numel != want)
        fail_msg("%s: %s is not F64 of %zu values", mb_st_path(f), name, want);
    FILE *fp = fopen(mb_st_path(f), "rb");
    assert_non_null(fp);
    unsigned char b[8];
    assert_int_equal(fread(b, 1, 8, fp), 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    assert_int_equal(fseek(fp, (long)(8 + hlen + t->begin), SEEK_SET), 0);
    double *x = malloc(want * sizeof(double));
    assert_non_null(x);
    for (size_t i = 0; i < want; i++) {
        assert_int_equal(fread(b, 1, 8, fp), 8);
        uint64_t u = 0;
        for (int j = 7; j >= 0; j--) u = (u << 8) | b[j];
        memcpy(&x[i], &u, sizeof u);
    }
    fclose(fp);
    return x;
}

static double fix_scalar(mb_st_file *f, const char *name)
{
    double *p = fix_f64(f, name, 1);
    const double v = p[0];
    free(p);
    return v;
}

static int64_t *fix_i64(mb_st_file *f, const char *name, size_t *n)
{
    const mb_st_tensor *t = fix_tensor(f, name);
    int64_t *v = malloc((t->numel ? t->numel : 1) * sizeof(int64_t));
    assert_non_null(v);
    if (mb_st_read_i64(f, t, v, t->numel) != 0) fail_msg("%s", mb_error_last());
    *n = t->numel;
    return v;
}

static void fix_open(fix_case *c, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/audio_metrics/%s.safetensors", MB_FIXTURE_DIR, name);
    memset(c, 0, sizeof *c);
    c->f = mb_st_open(path);
    if (!c->f) fail_msg("cannot open %s: %s (regenerate: python3 scripts/audio_metrics_ref.py)", path,
                        mb_error_last());
    int64_t k2, d2;
    c->ref_probs = fix_f32(c->f, "ref_probs", &c->n_ref, &c->k);
    c->ref_feats = fix_f32(c->f, "ref_feats", &k2, &c->d);
    assert_int_equal(k2, c->n_ref);
    c->same = mb_st_find(c->f, "gen_probs") == NULL;
    if (c->same) {
        c->n_gen = c->n_ref;
        c->gen_probs = c->ref_probs;
        c->gen_feats = c->ref_feats;
    } else {
        c->gen_probs = fix_f32(c->f, "gen_probs", &c->n_gen, &k2);
        assert_int_equal(k2, c->k);
        c->gen_feats = fix_f32(c->f, "gen_feats", &k2, &d2);
        assert_int_equal(k2, c->n_gen);
        assert_int_equal(d2, c->d);
    }
}

static void fix_close(fix_case *c)
{
    if (!c->same) {
        free(c->gen_probs);
        free(c->gen_feats);
    }
    free(c->ref_probs);
    free(c->ref_feats);
    mb_st_close(c->f);
}

static double rel(double a, double b)
{
    return fabs(a - b) / fabs(b);
}

/* mean over all n^2 ordered pairs of KL(p_i || p_j), term by term, with
 * the header's rule (rows to sum 1, floored at 1e-30): the definition the
 * O(n k) identity in audio_metric_mis must agree with */
static double direct_mis(const double *probs, int64_t n, int64_t k)
{
    double *p = malloc((size_t)(n * k) * sizeof(double));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t c = 0; c < k; c++) s += probs[i * k + c];
        for (int64_t c = 0; c < k; c++) p[i * k + c] = fmax(probs[i * k + c] / s, AUDIO_METRIC_PROB_FLOOR);
    }
    double tot = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            for (int64_t c = 0; c < k; c++) tot += p[i * k + c] * log(p[i * k + c] / p[j * k + c]);
    free(p);
    return exp(tot / (double)(n * n));
}

/* ---- every metric against the fixture ------------------------------------ */

static void check_case(const char *name)
{
    fix_case c;
    fix_open(&c, name);
    printf("# %s: n_ref %lld n_gen %lld k %lld d %lld\n", name, (long long)c.n_ref, (long long)c.n_gen,
           (long long)c.k, (long long)c.d);

    double v = 0;
    const double fid_ref = fix_scalar(c.f, "fid"), scale = fix_scalar(c.f, "fid_scale");
    assert_int_equal(audio_metric_fid(c.ref_feats, c.n_ref, c.gen_feats, c.n_gen, c.d, &v, g_err, sizeof g_err), 0);
    printf("#   FID %.12g ref %.12g: |diff| / scale %.2e\n", v, fid_ref, fabs(v - fid_ref) / scale);
    assert_true(fabs(v - fid_ref) <= FIX_TOL * scale);

    size_t ns = 0;
    int64_t *seeds = fix_i64(c.f, "is_seed", &ns);
    double *is_ref = fix_f64(c.f, "is", ns);
    for (size_t s = 0; s < ns; s++) {
        assert_int_equal(audio_metric_is(c.gen_probs, c.n_gen, c.k, (uint64_t)seeds[s], &v, g_err, sizeof g_err), 0);
        printf("#   IS seed %lld %.12g ref %.12g: rel %.2e\n", (long long)seeds[s], v, is_ref[s], rel(v, is_ref[s]));
        assert_true(rel(v, is_ref[s]) <= FIX_TOL);
    }

    const double mis_ref = fix_scalar(c.f, "mis");
    assert_int_equal(audio_metric_mis(c.gen_probs, c.n_gen, c.k, &v, g_err, sizeof g_err), 0);
    printf("#   mIS %.12g ref %.12g: rel %.2e\n", v, mis_ref, rel(v, mis_ref));
    assert_true(rel(v, mis_ref) <= FIX_TOL);
    /* and the identity against the double loop here, on the same rows */
    const double direct = direct_mis(c.gen_probs, c.n_gen, c.k);
    printf("#   mIS by the double loop %.12g: rel %.2e\n", direct, rel(v, direct));
    assert_true(rel(v, direct) <= FIX_TOL);

    const double am_ref = fix_scalar(c.f, "am");
    assert_int_equal(audio_metric_am(c.ref_probs, c.n_ref, c.gen_probs, c.n_gen, c.k, &v, g_err, sizeof g_err), 0);
    printf("#   AM %.12g ref %.12g: rel %.2e\n", v, am_ref, rel(v, am_ref));
    assert_true(rel(v, am_ref) <= FIX_TOL);

    /* NDB's bins and test: integers, exact */
    const mb_st_tensor *tc = fix_tensor(c.f, "ndb_centroids");
    const int64_t nb = tc->shape[0];
    double *cent = fix_f64(c.f, "ndb_centroids", (size_t)(nb * c.d));
    size_t n1 = 0, n2 = 0, nd = 0;
    int64_t *cr_ref = fix_i64(c.f, "ndb_count_ref", &n1), *cg_ref = fix_i64(c.f, "ndb_count_gen", &n2);
    int64_t *diff_ref = fix_i64(c.f, "ndb_different", &nd);
    assert_int_equal(n1, nb);
    assert_int_equal(n2, nb);
    int64_t *cr = malloc((size_t)nb * sizeof(int64_t)), *cg = malloc((size_t)nb * sizeof(int64_t));
    assert_non_null(cr);
    assert_non_null(cg);
    int64_t diff = -1;
    assert_int_equal(audio_metric_ndb_bins(cent, nb, c.ref_feats, c.n_ref, c.gen_feats, c.n_gen, c.d, cr, cg, &diff,
                                           &v, g_err, sizeof g_err),
                     0);
    printf("#   NDB on the fixture's %lld bins: %lld different (ref %lld)\n", (long long)nb, (long long)diff,
           (long long)diff_ref[0]);
    for (int64_t b = 0; b < nb; b++) {
        assert_int_equal(cr[b], cr_ref[b]);
        assert_int_equal(cg[b], cg_ref[b]);
    }
    assert_int_equal(diff, diff_ref[0]);
    assert_true(v == (double)diff / (double)nb);

    /* the one call for the eval command gives the same five */
    audio_metrics_set rs = {c.ref_probs, c.ref_feats, c.n_ref}, gs = {c.gen_probs, c.gen_feats, c.n_gen};
    audio_metrics_opts o;
    audio_metrics_opts_default(&o);
    assert_int_equal(o.seed, 0);
    assert_int_equal(o.ndb_bins, 50);
    o.ndb_bins = 10;
    audio_metrics_result r;
    assert_int_equal(audio_metrics_all(&rs, &gs, c.k, c.d, &o, &r, g_err, sizeof g_err), 0);
    assert_true(fabs(r.fid - fid_ref) <= FIX_TOL * scale);
    assert_true(seeds[0] == 0 && rel(r.is, is_ref[0]) <= FIX_TOL);
    assert_true(rel(r.mis, mis_ref) <= FIX_TOL);
    assert_true(rel(r.am, am_ref) <= FIX_TOL);
    assert_true(r.ndb >= 0.0 && r.ndb <= 1.0);
    if (c.same) assert_true(r.ndb == 0.0); /* the same rows fall in the same bins */
    printf("#   all: FID %.6g IS %.6g mIS %.6g AM %.6g NDB(10 bins) %.3g\n", r.fid, r.is, r.mis, r.am, r.ndb);

    free(seeds);
    free(is_ref);
    free(cent);
    free(cr_ref);
    free(cg_ref);
    free(diff_ref);
    free(cr);
    free(cg);
    fix_close(&c);
}

static void test_fixture_softmax(void **state)
{
    (void)state;
    check_case("softmax");
}

/* near-one-hot rows, exact zeros, a row that sums to 3 */
static void test_fixture_peaked(void **state)
{
    (void)state;
    check_case("peaked");
}

/* reference == generated */
static void test_fixture_same(void **state)
{
    (void)state;
    check_case("same");
}

/* ---- properties ------------------------------------------------------------ */

static double *rand_feats(mb_rng *r, int64_t n, int64_t d, double shift)
{
    double *x = malloc((size_t)(n * d) * sizeof(double));
    assert_non_null(x);
    /* correlated columns: column j mixes in column j - 1 */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = mb_rng_normal(r) * (1.0 + 0.1 * (double)j) + (j ? 0.7 * x[i * d + j - 1] : 0.0) + shift;
    return x;
}

static double *rand_probs(mb_rng *r, int64_t n, int64_t k, double scale)
{
    double *p = malloc((size_t)(n * k) * sizeof(double));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t c = 0; c < k; c++) s += p[i * k + c] = exp(scale * mb_rng_normal(r));
        for (int64_t c = 0; c < k; c++) p[i * k + c] /= s;
    }
    return p;
}

/* FID(X, X) is 0 up to rounding; moving every gen row by v moves only the
 * mean: FID = ||v||^2, growing with the shift */
static void test_fid_properties(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed());
    const int64_t n = 300, d = 10;
    double *x = rand_feats(&r, n, d, 2.0);
    double *y = malloc((size_t)(n * d) * sizeof(double));
    assert_non_null(y);
    double tr = 0, mu[10] = {0};
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) mu[j] += x[i * d + j] / (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) tr += (x[i * d + j] - mu[j]) * (x[i * d + j] - mu[j]) / (double)(n - 1);

    double f = 1;
    assert_int_equal(audio_metric_fid(x, n, x, n, d, &f, g_err, sizeof g_err), 0);
    printf("# FID(X, X) = %.3e, tr S = %.4g\n", f, tr);
    assert_true(fabs(f) <= 1e-9 * tr);

    double last = 0;
    for (int s = 1; s <= 3; s++) {
        const double shift = 0.25 * s;
        for (int64_t i = 0; i < n * d; i++) y[i] = x[i] + shift;
        assert_int_equal(audio_metric_fid(x, n, y, n, d, &f, g_err, sizeof g_err), 0);
        const double want = (double)d * shift * shift;
        printf("# FID(X, X + %.2f) = %.12g, want %.12g\n", shift, f, want);
        assert_true(fabs(f - want) <= 1e-9 * (tr + want));
        assert_true(f > last);
        last = f;
    }
    /* a wider generated set: its covariance is 4 S, so FID = tr S + 4 tr S
     * - 2 tr sqrt(4 S^2) = tr S (its means, 2 mu and mu, differ too) */
    for (int64_t i = 0; i < n * d; i++) y[i] = 2.0 * x[i];
    assert_int_equal(audio_metric_fid(x, n, y, n, d, &f, g_err, sizeof g_err), 0);
    double mu2 = 0;
    for (int64_t j = 0; j < d; j++) mu2 += mu[j] * mu[j];
    printf("# FID(X, 2X) = %.12g, want %.12g\n", f, tr + mu2);
    assert_true(fabs(f - (tr + mu2)) <= 1e-9 * (tr + mu2));
    free(x);
    free(y);
}

/* one-hot rows spread evenly over k classes score close to k; identical
 * rows, and uniform rows, score 1 */
static void test_is_properties(void **state)
{
    (void)state;
    const int64_t n = 2000, k = 10;
    double *p = calloc((size_t)(n * k), sizeof(double));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++) p[i * k + i % k] = 1.0;
    double v = 0;
    assert_int_equal(audio_metric_is(p, n, k, 0, &v, g_err, sizeof g_err), 0);
    printf("# IS of one-hot rows over %lld classes: %.6g\n", (long long)k, v);
    /* exp(-mean ln m_c), m the second half's class shares (each 0.1 +-
     * ~0.01 after the shuffle): within a few percent of k */
    assert_true(fabs(v - (double)k) < 0.05 * (double)k);
    /* mIS of the same rows: KL between two different one-hot rows is
     * ln(1 / 1e-30) (the floor), between equal ones 0 */
    assert_int_equal(audio_metric_mis(p, n, k, &v, g_err, sizeof g_err), 0);
    assert_true(rel(log(v), 0.9 * log(1e30)) < 1e-9);

    mb_rng r;
    mb_rng_seed(&r, 7);
    double *one = rand_probs(&r, 1, k, 1.0);
    for (int64_t i = 0; i < n; i++) memcpy(p + i * k, one, (size_t)k * sizeof(double));
    assert_int_equal(audio_metric_is(p, n, k, 3, &v, g_err, sizeof g_err), 0);
    assert_true(fabs(v - 1.0) < 1e-12);
    assert_int_equal(audio_metric_mis(p, n, k, &v, g_err, sizeof g_err), 0);
    assert_true(fabs(v - 1.0) < 1e-12);

    for (int64_t i = 0; i < n * k; i++) p[i] = 0.1; /* noise: the classifier cannot tell */
    assert_int_equal(audio_metric_is(p, n, k, 0, &v, g_err, sizeof g_err), 0);
    assert_true(fabs(v - 1.0) < 1e-12);
    assert_int_equal(audio_metric_mis(p, n, k, &v, g_err, sizeof g_err), 0);
    assert_true(fabs(v - 1.0) < 1e-12);
    free(one);
    free(p);
}

/* the seed picks the halves: another seed, another score; the same seed,
 * the same score */
static void test_is_seed(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, 11);
    double *p = rand_probs(&r, 101, 10, 2.0);
    double a = 0, b = 0, c = 0;
    assert_int_equal(audio_metric_is(p, 101, 10, 0, &a, g_err, sizeof g_err), 0);
    assert_int_equal(audio_metric_is(p, 101, 10, 0, &b, g_err, sizeof g_err), 0);
    assert_int_equal(audio_metric_is(p, 101, 10, 1, &c, g_err, sizeof g_err), 0);
    assert_true(a == b);
    assert_true(a != c);
    free(p);
}

/* the O(n k) identity against the double loop, on rows with exact zeros */
static void test_mis_identity(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed());
    const int64_t n = 150, k = 7;
    double *p = rand_probs(&r, n, k, 3.0);
    for (int64_t i = 0; i < n; i += 13) p[i * k + i % k] = 0.0; /* then not normalized: the rule's job */
    double v = 0;
    assert_int_equal(audio_metric_mis(p, n, k, &v, g_err, sizeof g_err), 0);
    const double d = direct_mis(p, n, k);
    printf("# mIS %.15g, double loop %.15g: rel %.2e\n", v, d, rel(v, d));
    assert_true(rel(v, d) < 1e-12);
    free(p);
}

/* AM(X, X) is the mean row entropy (the KL of equal means is 0) */
static void test_am_properties(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, 5);
    const int64_t n = 80, k = 10;
    double *p = rand_probs(&r, n, k, 1.5);
    double h = 0;
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < k; c++) h -= p[i * k + c] * log(p[i * k + c]) / (double)n;
    double v = 0;
    assert_int_equal(audio_metric_am(p, n, p, n, k, &v, g_err, sizeof g_err), 0);
    printf("# AM(X, X) %.15g, mean entropy %.15g\n", v, h);
    assert_true(rel(v, h) < 1e-12);
    /* a generated set whose mean misses the reference's: AM grows */
    double *q = rand_probs(&r, n, k, 1.5);
    for (int64_t i = 0; i < n; i++) q[i * k] *= 20.0;
    double w = 0;
    assert_int_equal(audio_metric_am(p, n, q, n, k, &w, g_err, sizeof g_err), 0);
    double hq = 0;
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t c = 0; c < k; c++) s += q[i * k + c];
        for (int64_t c = 0; c < k; c++) hq -= q[i * k + c] / s * log(q[i * k + c] / s) / (double)n;
    }
    assert_true(w > hq + 0.1);
    free(p);
    free(q);
}

/* err holds one line naming the metric and `needle`; the output is not
 * written */
static void expect_fail(int rc, double v, const char *metric, const char *needle)
{
    printf("# refused: %s\n", g_err);
    assert_int_equal(rc, -1);
    assert_true(v == -7.0);
    assert_null(strchr(g_err, '\n'));
    assert_true(strncmp(g_err, metric, strlen(metric)) == 0);
    if (!strstr(g_err, needle)) fail_msg("error \"%s\" lacks \"%s\"", g_err, needle);
}

static void test_bad_inputs(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, 3);
    const int64_t n = 60, k = 5, d = 4;
    double *x = rand_feats(&r, n, d, 0.0), *p = rand_probs(&r, n, k, 1.0);
    double v = -7.0;
    expect_fail(audio_metric_fid(x, 1, x, n, d, &v, g_err, sizeof g_err), v, "FID:", "at least 2 rows");
    expect_fail(audio_metric_fid(x, n, x, 1, d, &v, g_err, sizeof g_err), v, "FID:", "at least 2 rows");
    expect_fail(audio_metric_is(p, 1, k, 0, &v, g_err, sizeof g_err), v, "IS:", "at least 2 rows");
    expect_fail(audio_metric_mis(p, 0, k, &v, g_err, sizeof g_err), v, "mIS:", "at least 1 row");
    expect_fail(audio_metric_am(p, 0, p, n, k, &v, g_err, sizeof g_err), v, "AM:", "at least 1 row");
    expect_fail(audio_metric_ndb(x, 20, x, n, d, 50, 0, &v, g_err, sizeof g_err), v, "NDB:",
                "20 rows, fewer than the 50 bins");

    x[2 * d + 3] = NAN;
    expect_fail(audio_metric_fid(x, n, x, n, d, &v, g_err, sizeof g_err), v, "FID:", "row 2, column 3 is nan");
    expect_fail(audio_metric_ndb(x, n, x, n, d, 5, 0, &v, g_err, sizeof g_err), v, "NDB:", "is nan");
    x[2 * d + 3] = INFINITY;
    expect_fail(audio_metric_fid(x, n, x, n, d, &v, g_err, sizeof g_err), v, "FID:", "is inf");
    x[2 * d + 3] = 0.0;

    p[4 * k + 1] = NAN;
    expect_fail(audio_metric_is(p, n, k, 0, &v, g_err, sizeof g_err), v, "IS:", "row 4, column 1 is nan");
    expect_fail(audio_metric_mis(p, n, k, &v, g_err, sizeof g_err), v, "mIS:", "is nan");
    expect_fail(audio_metric_am(p, n, p, n, k, &v, g_err, sizeof g_err), v, "AM:", "reference probabilities");
    p[4 * k + 1] = -0.25;
    expect_fail(audio_metric_mis(p, n, k, &v, g_err, sizeof g_err), v, "mIS:", "negative");
    for (int64_t c = 0; c < k; c++) p[4 * k + c] = 0.0;
    expect_fail(audio_metric_is(p, n, k, 0, &v, g_err, sizeof g_err), v, "IS:", "row 4 sums to 0");

    /* the all-in-one call passes the first failure on */
    audio_metrics_set rs = {p, x, n}, gs = {p, x, 1};
    audio_metrics_result res;
    assert_int_equal(audio_metrics_all(&rs, &gs, k, d, NULL, &res, g_err, sizeof g_err), -1);
    assert_non_null(strstr(g_err, "FID:"));
    free(x);
    free(p);
}

/* ---- the eigen solver ------------------------------------------------------ */

static void check_eig(const double *a0, int64_t d, double tol)
{
    double *a = malloc((size_t)(d * d) * sizeof(double)), *v = malloc((size_t)(d * d) * sizeof(double));
    double *w = malloc((size_t)d * sizeof(double)), *w2 = malloc((size_t)d * sizeof(double));
    assert_non_null(a);
    assert_non_null(v);
    assert_non_null(w);
    assert_non_null(w2);
    memcpy(a, a0, (size_t)(d * d) * sizeof(double));
    const int sweeps = audio_eig_sym(a, d, w, v);
    assert_true(sweeps >= 0);
    double norm = 0, worst_res = 0, worst_orth = 0;
    for (int64_t i = 0; i < d * d; i++) norm += a0[i] * a0[i];
    norm = sqrt(norm);
    for (int64_t e = 0; e < d; e++) {
        if (e) assert_true(w[e - 1] <= w[e]);
        for (int64_t i = 0; i < d; i++) { /* (A v_e - w_e v_e)_i */
            double s = -w[e] * v[e * d + i];
            for (int64_t j = 0; j < d; j++) s += a0[i * d + j] * v[e * d + j];
            worst_res = fmax(worst_res, fabs(s));
        }
        for (int64_t f = 0; f < d; f++) {
            double s = 0;
            for (int64_t j = 0; j < d; j++) s += v[e * d + j] * v[f * d + j];
            worst_orth = fmax(worst_orth, fabs(s - (e == f)));
        }
    }
    printf("# eig d %lld: %d sweeps, max |A v - w v| / ||A|| %.2e, max |V V^T - I| %.2e\n", (long long)d, sweeps,
           norm > 0 ? worst_res / norm : worst_res, worst_orth);
    assert_true(worst_res <= tol * (norm > 0 ? norm : 1.0));
    assert_true(worst_orth <= tol);
    /* values only: the same eigenvalues */
    memcpy(a, a0, (size_t)(d * d) * sizeof(double));
    assert_true(audio_eig_sym(a, d, w2, NULL) >= 0);
    for (int64_t e = 0; e < d; e++) assert_true(fabs(w2[e] - w[e]) <= tol * (norm > 0 ? norm : 1.0));
    free(a);
    free(v);
    free(w);
    free(w2);
}

static void test_eig(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, mb_test_seed());
    const int64_t d = 40;
    double *a = malloc((size_t)(d * d) * sizeof(double));
    assert_non_null(a);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i; j < d; j++) a[i * d + j] = a[j * d + i] = mb_rng_normal(&r);
    check_eig(a, d, 1e-12);

    /* a known spectrum with repeats and zeros: B = Q diag(spec) Q^T, Q the
     * (orthonormal, as just checked) eigenvectors of a random m x m matrix */
    const int64_t m = 8;
    const double spec[8] = {1, 1, 1, 2, 2, 5, 0, 0};
    double *q = malloc((size_t)(m * m) * sizeof(double)), *qw = malloc((size_t)m * sizeof(double));
    double *g = malloc((size_t)(m * m) * sizeof(double));
    assert_non_null(q);
    assert_non_null(qw);
    assert_non_null(g);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = i; j < m; j++) g[i * m + j] = g[j * m + i] = mb_rng_normal(&r);
    assert_true(audio_eig_sym(g, m, qw, q) >= 0);
    double *b = calloc((size_t)(m * m), sizeof(double));
    assert_non_null(b);
    for (int64_t e = 0; e < m; e++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < m; j++) b[i * m + j] += spec[e] * q[e * m + i] * q[e * m + j];
    check_eig(b, m, 1e-13);
    assert_true(audio_eig_sym(b, m, qw, NULL) >= 0);
    const double sorted[8] = {0, 0, 1, 1, 1, 2, 2, 5};
    for (int64_t e = 0; e < m; e++) assert_true(fabs(qw[e] - sorted[e]) < 1e-13);

    /* zero and diagonal matrices need no rotation */
    memset(b, 0, (size_t)(m * m) * sizeof(double));
    assert_int_equal(audio_eig_sym(b, m, qw, q), 0);
    for (int64_t e = 0; e < m; e++) assert_true(qw[e] == 0.0);
    for (int64_t e = 0; e < m; e++) b[e * m + e] = (double)(m - e);
    assert_int_equal(audio_eig_sym(b, m, qw, NULL), 0);
    for (int64_t e = 0; e < m; e++) assert_true(qw[e] == (double)(e + 1));
    /* a non-finite entry is refused */
    b[1] = NAN;
    assert_int_equal(audio_eig_sym(b, m, qw, NULL), -1);
    free(a);
    free(b);
    free(q);
    free(qw);
    free(g);
}

/* ---- k-means ------------------------------------------------------------------ */

/* every row's label is its nearest centroid (ties: lowest index), by brute
 * force here; the trace never rises */
static void check_kmeans_run(const double *x, int64_t n, int64_t d, int64_t k, uint64_t seed, double *cent,
                             int64_t *lab, int *iters_out)
{
    double *trace = malloc(AUDIO_KMEANS_MAX_ITER * sizeof(double));
    assert_non_null(trace);
    double inertia = -1;
    int iters = 0;
    assert_int_equal(audio_kmeans_fit(x, n, d, k, seed, AUDIO_KMEANS_MAX_ITER, cent, lab, &inertia, trace, &iters,
                                      g_err, sizeof g_err),
                     0);
    assert_true(iters >= 1 && iters <= AUDIO_KMEANS_MAX_ITER);
    for (int i = 1; i < iters; i++) assert_true(trace[i] <= trace[i - 1] * (1 + 1e-12));
    double sum = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t best = 0;
        double bd = INFINITY;
        for (int64_t c = 0; c < k; c++) {
            double s = 0;
            for (int64_t j = 0; j < d; j++) s += (x[i * d + j] - cent[c * d + j]) * (x[i * d + j] - cent[c * d + j]);
            if (s < bd) {
                bd = s;
                best = c;
            }
        }
        assert_int_equal(lab[i], best);
        sum += bd;
    }
    assert_true(rel(inertia, sum) < 1e-12 || inertia == sum);
    assert_true(inertia <= trace[iters - 1] * (1 + 1e-12));
    printf("# k-means n %lld k %lld: %d iterations, inertia %.6g -> %.6g\n", (long long)n, (long long)k, iters,
           trace[0], inertia);
    if (iters_out) *iters_out = iters;
    free(trace);
}

static void test_kmeans(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, 21);
    /* 5 blobs, spread 0.3, centers 10 apart: k-means recovers them */
    const int64_t nb = 5, per = 40, n = nb * per, d = 3;
    double centers[5][3] = {{0, 0, 0}, {10, 0, 0}, {0, 10, 0}, {0, 0, 10}, {10, 10, 10}};
    double *x = malloc((size_t)(n * d) * sizeof(double));
    assert_non_null(x);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) x[i * d + j] = centers[i % nb][j] + 0.3 * mb_rng_normal(&r);
    double cent[5 * 3], cent2[5 * 3];
    int64_t lab[200], lab2[200];
    for (uint64_t seed = 0; seed < 4; seed++) {
        check_kmeans_run(x, n, d, nb, seed, cent, lab, NULL);
        int64_t of_blob[5] = {-1, -1, -1, -1, -1};
        for (int64_t i = 0; i < n; i++) {
            const int64_t b = i % nb;
            if (of_blob[b] < 0) of_blob[b] = lab[i];
            assert_int_equal(lab[i], of_blob[b]); /* a blob stays whole */
        }
        for (int64_t b = 0; b < nb; b++) {
            for (int64_t b2 = 0; b2 < b; b2++) assert_true(of_blob[b] != of_blob[b2]); /* one cluster each */
            for (int64_t j = 0; j < d; j++) assert_true(fabs(cent[of_blob[b] * d + j] - centers[b][j]) < 0.2);
        }
    }
    /* deterministic for a seed */
    check_kmeans_run(x, n, d, nb, 9, cent, lab, NULL);
    check_kmeans_run(x, n, d, nb, 9, cent2, lab2, NULL);
    assert_memory_equal(cent, cent2, sizeof cent);
    assert_memory_equal(lab, lab2, sizeof lab);
    free(x);

    /* no structure (uniform cube), many clusters: Lloyd takes its time, and
     * the inertia still only falls */
    const int64_t n2 = 400, k2 = 30;
    double *u = malloc((size_t)(n2 * 4) * sizeof(double)), *c2 = malloc((size_t)(k2 * 4) * sizeof(double));
    int64_t *l2 = malloc((size_t)n2 * sizeof(int64_t));
    assert_non_null(u);
    assert_non_null(c2);
    assert_non_null(l2);
    for (int64_t i = 0; i < n2 * 4; i++) u[i] = mb_rng_uniform(&r);
    int iters = 0;
    check_kmeans_run(u, n2, 4, k2, 1, c2, l2, &iters);
    assert_true(iters > 3);

    /* a cluster that empties: with seed 35151 on these 11 rows, cluster 0
     * loses its last row after the first update (found by a search over
     * random sets, with a print in km_fill_empty at the time), takes the
     * farthest row, and every cluster ends with rows */
    static const double few[11][2] = {{0.437, 0.014},   {0.204, -0.216}, {-0.491, 0.019}, {-2.558, -0.031},
                                      {-0.086, -0.014}, {-0.131, -0.060}, {1.727, -0.453}, {-0.149, 0.006},
                                      {-0.340, 0.059},  {-0.159, 0.000}, {0.173, -0.000}};
    check_kmeans_run(&few[0][0], 11, 2, 6, 35151, c2, l2, NULL);
    int64_t used[6] = {0};
    for (int64_t i = 0; i < 11; i++) used[l2[i]]++;
    for (int64_t c = 0; c < 6; c++) assert_true(used[c] > 0);

    /* 12 rows on 3 points, 5 clusters: two stay empty, nothing breaks */
    for (int64_t i = 0; i < 12; i++)
        for (int64_t j = 0; j < 4; j++) u[i * 4 + j] = (double)(i % 3) * (j + 1);
    check_kmeans_run(u, 12, 4, 5, 0, c2, l2, NULL);

    /* fewer rows than clusters */
    assert_int_equal(audio_kmeans_fit(u, 4, 4, 5, 0, 10, c2, l2, NULL, NULL, NULL, g_err, sizeof g_err), -1);
    printf("# refused: %s\n", g_err);
    assert_non_null(strstr(g_err, "4 rows cannot make 5 clusters"));
    free(u);
    free(c2);
    free(l2);
}

/* NDB on well-separated blobs: a generated set from the same blobs has few
 * different bins; one that leaves out half the blobs has many */
static void test_ndb(void **state)
{
    (void)state;
    mb_rng r;
    mb_rng_seed(&r, 33);
    const int64_t nb = 10, n = 1000, d = 4;
    double *ref = malloc((size_t)(n * d) * sizeof(double)), *gen = malloc((size_t)(n * d) * sizeof(double));
    assert_non_null(ref);
    assert_non_null(gen);
    /* blob b (row i is in blob i % 10) centred at (6b, 6 (b % 3), 0, 0),
     * spread 0.3: centres at least 6 apart */
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) {
            const int64_t b = i % nb;
            const double c = j == 0 ? 6.0 * (double)b : j == 1 ? 6.0 * (double)(b % 3) : 0.0;
            ref[i * d + j] = c + 0.3 * mb_rng_normal(&r);
            gen[i * d + j] = c + 0.3 * mb_rng_normal(&r);
        }
    double v = -1;
    assert_int_equal(audio_metric_ndb(ref, n, gen, n, d, nb, 0, &v, g_err, sizeof g_err), 0);
    printf("# NDB same blobs: %.3g\n", v);
    assert_true(v <= 0.2);
    /* generated rows only from the even blobs */
    for (int64_t i = 0; i < n; i++)
        if ((i % nb) & 1) memcpy(gen + i * d, gen + (i - 1) * d, (size_t)d * sizeof(double));
    assert_int_equal(audio_metric_ndb(ref, n, gen, n, d, nb, 0, &v, g_err, sizeof g_err), 0);
    printf("# NDB half the blobs: %.3g\n", v);
    assert_true(v >= 0.8);
    free(ref);
    free(gen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_softmax), cmocka_unit_test(test_fixture_peaked),
        cmocka_unit_test(test_fixture_same),    cmocka_unit_test(test_fid_properties),
        cmocka_unit_test(test_is_properties),   cmocka_unit_test(test_is_seed),
        cmocka_unit_test(test_mis_identity),    cmocka_unit_test(test_am_properties),
        cmocka_unit_test(test_bad_inputs),      cmocka_unit_test(test_eig),
        cmocka_unit_test(test_kmeans),          cmocka_unit_test(test_ndb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
