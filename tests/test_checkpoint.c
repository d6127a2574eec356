/* Checkpoint I/O: safetensors reading and writing, the config JSON, model
 * and optimizer round trips, and refusal of damaged or foreign files.
 * Malformed files are built byte by byte here, so every refusal is tested
 * against exactly the damage it names. */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "testutil.h"
#include "train/optim.h"
#include "train/safetensors.h"

/* ---- helpers -------------------------------------------------------------- */

static void write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A safetensors file from a header string (used verbatim, no padding) and
 * raw data bytes; hdr_len overrides the length field when not ~0. */
static void write_st_raw(const char *path, const char *header, uint64_t hdr_len,
                         const void *data, size_t data_len)
{
    size_t hl = strlen(header);
    uint64_t len = hdr_len != ~(uint64_t)0 ? hdr_len : hl;
    unsigned char *buf = malloc(8 + hl + data_len);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (data_len) memcpy(buf + 8 + hl, data, data_len);
    write_bytes(path, buf, 8 + hl + data_len);
    free(buf);
}

static void write_st(const char *path, const char *header, const void *data, size_t data_len)
{
    write_st_raw(path, header, ~(uint64_t)0, data, data_len);
}

/* The last error starts with "PATH: " and mentions `what`. */
static void assert_error(const char *path, const char *what)
{
    const char *msg = mb_error_last();
    size_t pl = strlen(path);
    if (strncmp(msg, path, pl) != 0 || strncmp(msg + pl, ": ", 2) != 0 || !strstr(msg, what) ||
        strchr(msg, '\n')) {
        fprintf(stderr, "error message '%s'\n  should start with '%s: ' and contain '%s'\n", msg,
                path, what);
        fail();
    }
    printf("# refused: %s\n", msg);
}

static void assert_file_equals(const char *path, const void *want, size_t want_len)
{
    size_t len = 0;
    void *got = mb_test_read_file(path, &len);
    assert_non_null(got);
    assert_int_equal(len, want_len);
    assert_memory_equal(got, want, want_len);
    free(got);
}

/* no PATH.tmpXXXXXX (mb_outfile's temporary files) beside PATH */
static void assert_no_temp_left(const char *path)
{
    char dir[512], prefix[512];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    snprintf(prefix, sizeof prefix, "%s.tmp", slash ? slash + 1 : path);
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) fail_msg("left behind: %s/%s", dir, e->d_name);
    closedir(d);
}

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static mb_ctx *cpu(void)
{
    static mb_ctx *ctx;
    if (!ctx) ctx = mb_ctx_create("cpu");
    assert_non_null(ctx);
    return ctx;
}

/* ---- safetensors round trip ------------------------------------------------ */

static void test_st_roundtrip(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "rt.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed());
    float a[12], b[10], s[1] = {-3.5f};
    int32_t ints[4] = {-7, 0, 2147483647, -2147483647 - 1};
    mb_test_fill_normal(&rng, a, 12, 10.f);
    mb_test_fill_normal(&rng, b, 10, 1e-30f);
    const mb_st_entry entries[] = {
        {"layer.a", 2, {3, 4}, a, 0},
        {"b \"quoted\" \\ name\n", 3, {2, 1, 5}, b, 0},
        {"scalar", 0, {0}, s, 0},
        {"empty", 2, {0, 3}, NULL, 0},
        {"ints", 1, {4}, ints, 1},
        {"caf\xc3\xa9", 1, {1}, s, 0},
    };
    const char *meta[] = {"config", "{\"a\": [1, \"x\"]}\n\ttabbed", "step", "42", NULL};
    assert_int_equal(mb_st_write(path, entries, 6, meta), 0);
    assert_no_temp_left(path);

    /* data starts 8-byte aligned */
    size_t len;
    unsigned char *raw = mb_test_read_file(path, &len);
    assert_non_null(raw);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)raw[i] << (8 * i);
    assert_int_equal(hl % 8, 0);
    assert_true(strncmp((char *)raw + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0);
    free(raw);

    mb_st_file *f = mb_st_open(path);
    assert_non_null(f);
    assert_string_equal(mb_st_path(f), path);
    assert_int_equal(mb_st_count(f), 6);
    assert_string_equal(mb_st_metadata(f, "format"), "pt");
    assert_string_equal(mb_st_metadata(f, "config"), meta[1]);
    assert_string_equal(mb_st_metadata(f, "step"), "42");
    assert_null(mb_st_metadata(f, "nope"));
    assert_null(mb_st_find(f, "nope"));
    assert_null(mb_st_get(f, 6));
    for (int i = 0; i < 6; i++) {
        const mb_st_tensor *t = mb_st_find(f, entries[i].name);
        assert_non_null(t);
        assert_ptr_equal(t, mb_st_get(f, i)); /* written in the order given */
        assert_int_equal(t->dtype, entries[i].is_i32 ? MB_ST_I32 : MB_ST_F32);
        assert_int_equal(t->ndim, entries[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], entries[i].shape[d]);
            numel *= (size_t)entries[i].shape[d];
        }
        assert_int_equal(t->numel, numel);
        if (entries[i].is_i32) {
            int64_t got[4];
            assert_int_equal(mb_st_read_i64(f, t, got, 4), 0);
            for (int k = 0; k < 4; k++) assert_int_equal(got[k], ints[k]);
            float x[4];
            assert_int_equal(mb_st_read_f32(f, t, x, 4), -1);
            assert_error(path, "expected a floating-point tensor");
        } else {
            float got[16];
            memset(got, 0xab, sizeof got);
            assert_int_equal(mb_st_read_f32(f, t, got, numel), 0);
            if (numel) assert_memory_equal(got, entries[i].data, numel * sizeof(float));
        }
    }
    float x[16];
    assert_int_equal(mb_st_read_f32(f, mb_st_find(f, "layer.a"), x, 11), -1);
    assert_error(path, "has 12 elements, expected 11");
    int64_t xi[12];
    assert_int_equal(mb_st_read_i64(f, mb_st_find(f, "layer.a"), xi, 12), -1);
    assert_error(path, "expected an integer tensor");
    mb_st_close(f);

    /* a caller's "format" replaces the default one */
    const char *meta2[] = {"format", "np", NULL};
    assert_int_equal(mb_st_write(path, entries, 1, meta2), 0);
    f = mb_st_open(path);
    assert_non_null(f);
    assert_string_equal(mb_st_metadata(f, "format"), "np");
    mb_st_close(f);

    /* no tensors at all is a valid file */
    assert_int_equal(mb_st_write(path, NULL, 0, NULL), 0);
    f = mb_st_open(path);
    assert_non_null(f);
    assert_int_equal(mb_st_count(f), 0);
    mb_st_close(f);
    unlink(path);
}

static void test_st_write_refusals(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "wref.safetensors");
    float a[4] = {1, 2, 3, 4};
    const mb_st_entry dup[] = {{"w", 1, {4}, a, 0}, {"w", 1, {4}, a, 0}};
    assert_int_equal(mb_st_write(path, dup, 2, NULL), -1);
    assert_error(path, "given twice");
    const mb_st_entry neg[] = {{"w", 1, {-4}, a, 0}};
    assert_int_equal(mb_st_write(path, neg, 1, NULL), -1);
    assert_error(path, "bad shape");
    const mb_st_entry huge[] = {{"w", 3, {1ll << 30, 1ll << 30, 1ll << 30}, a, 0}};
    assert_int_equal(mb_st_write(path, huge, 1, NULL), -1);
    assert_error(path, "bad shape");
    const mb_st_entry meta_name[] = {{"__metadata__", 1, {4}, a, 0}};
    assert_int_equal(mb_st_write(path, meta_name, 1, NULL), -1);
    assert_error(path, "bad tensor name");
    const char *odd[] = {"k", NULL};
    const char *dupk[] = {"k", "1", "k", "2", NULL};
    assert_int_equal(mb_st_write(path, NULL, 0, dupk), -1);
    assert_error(path, "given twice");
    assert_int_equal(mb_st_write(path, NULL, 0, odd), -1);
    assert_error(path, "metadata key k has no value");
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0); /* nothing was created */
    assert_no_temp_left(path);
}

/* ---- dtype conversions ---------------------------------------------------- */

static void test_st_conversions(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "conv.safetensors");
    /* F16: 1, -2, smallest subnormal, largest subnormal, -smallest, max, 0, -0, 1/3 */
    const uint16_t h[9] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x8001, 0x7bff, 0x0000, 0x8000, 0x3555};
    const float h_want[9] = {1.f, -2.f, 0x1p-24f, 1023 * 0x1p-24f, -0x1p-24f, 65504.f, 0.f, -0.f,
                             0x1.554p-2f};
    /* BF16: top halves of float32 */
    const uint16_t bf[4] = {0x3f80, 0xc049, 0x0001, 0x7f7f};
    const float bf_want[4] = {1.f, -3.140625f, 0x1p-133f, 0x1.fep127f};
    const double dv[4] = {0.1, -1e30, 1e-50, 3.0};
    const int64_t iv[3] = {-5, 1ll << 40, 0};
    const int32_t i32[2] = {-9, 9};
    unsigned char data[18 + 8 + 32 + 24 + 8];
    size_t off = 0;
    for (int i = 0; i < 9; i++, off += 2) data[off] = h[i] & 0xff, data[off + 1] = h[i] >> 8;
    for (int i = 0; i < 4; i++, off += 2) data[off] = bf[i] & 0xff, data[off + 1] = bf[i] >> 8;
    memcpy(data + off, dv, 32), off += 32; /* the test host is little-endian, like the format */
    memcpy(data + off, iv, 24), off += 24;
    memcpy(data + off, i32, 8), off += 8;
    write_st(path,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,18]},"
             "\"bf\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[18,26]},"
             "\"d\":{\"dtype\":\"F64\",\"shape\":[2,2],\"data_offsets\":[26,58]},"
             "\"i\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[58,82]},"
             "\"j\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[82,90]}}",
             data, off);
    mb_st_file *f = mb_st_open(path);
    assert_non_null(f);
    assert_null(mb_st_metadata(f, "format"));
    float got[9];
    assert_int_equal(mb_st_read_f32(f, mb_st_find(f, "h"), got, 9), 0);
    for (int i = 0; i < 9; i++) assert_int_equal(f32_bits(got[i]), f32_bits(h_want[i]));
    assert_int_equal(mb_st_read_f32(f, mb_st_find(f, "bf"), got, 4), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(f32_bits(got[i]), f32_bits(bf_want[i]));
    assert_int_equal(mb_st_read_f32(f, mb_st_find(f, "d"), got, 4), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(f32_bits(got[i]), f32_bits((float)dv[i]));
    int64_t ig[3];
    assert_int_equal(mb_st_read_i64(f, mb_st_find(f, "i"), ig, 3), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(ig[i], iv[i]);
    assert_int_equal(mb_st_read_i64(f, mb_st_find(f, "j"), ig, 2), 0);
    assert_int_equal(ig[0], -9);
    assert_int_equal(ig[1], 9);
    mb_st_close(f);

    /* every half-precision value: exact against the C compiler's own conversion
     * where it has one, else against the defining formula */
    static uint16_t all[65536];
    for (int i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    write_st(path, "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}",
             all, sizeof all);
    f = mb_st_open(path);
    assert_non_null(f);
    static float allf[65536];
    assert_int_equal(mb_st_read_f32(f, mb_st_find(f, "h"), allf, 65536), -1); /* has inf/nan */
    assert_error(path, "tensor h: non-finite value at index 31744"); /* 0x7c00 = +inf */
    mb_st_close(f);
    for (int i = 0; i < 65536; i++) {
        int e = (i >> 10) & 0x1f, m = i & 0x3ff;
        if (e == 0x1f) all[i] = 0; /* keep the finite ones */
        (void)m;
    }
    write_st(path, "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}",
             all, sizeof all);
    f = mb_st_open(path);
    assert_non_null(f);
    assert_int_equal(mb_st_read_f32(f, mb_st_find(f, "h"), allf, 65536), 0);
    for (int i = 0; i < 65536; i++) {
        int e = (i >> 10) & 0x1f, m = i & 0x3ff;
        double v = e == 0x1f ? 0.0 : e ? ldexp(1.0 + m / 1024.0, e - 15) : ldexp(m, -24);
        if (e != 0x1f && (i & 0x8000)) v = -v;
        assert_true((double)allf[i] == v);
        if (e != 0x1f) assert_int_equal(signbit(allf[i]) != 0, (i & 0x8000) != 0);
    }
    mb_st_close(f);
    unlink(path);
}

static void check_nonfinite(const char *path, const char *dtype, const void *data, size_t bytes,
                            size_t n, size_t bad_index)
{
    char header[256], want[96];
    snprintf(header, sizeof header,
             "{\"w\":{\"dtype\":\"%s\",\"shape\":[%zu],\"data_offsets\":[0,%zu]}}", dtype, n,
             bytes);
    write_st(path, header, data, bytes);
    mb_st_file *f = mb_st_open(path);
    assert_non_null(f);
    float got[8];
    assert_int_equal(mb_st_read_f32(f, mb_st_find(f, "w"), got, n), -1);
    snprintf(want, sizeof want, "tensor w: non-finite value at index %zu", bad_index);
    assert_error(path, want);
    mb_st_close(f);
}

static void test_st_nonfinite(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "nan.safetensors");
    const float f32[3] = {1.f, 2.f, NAN};
    check_nonfinite(path, "F32", f32, 12, 3, 2);
    const float f32i[2] = {-INFINITY, 0.f};
    check_nonfinite(path, "F32", f32i, 8, 2, 0);
    const uint16_t h[3] = {0x3c00, 0x7e00, 0x7c00}; /* nan first */
    check_nonfinite(path, "F16", h, 6, 3, 1);
    const uint16_t hi[2] = {0x3c00, 0xfc00}; /* -inf */
    check_nonfinite(path, "F16", hi, 4, 2, 1);
    const uint16_t bf[2] = {0x7fc0, 0};
    check_nonfinite(path, "BF16", bf, 4, 2, 0);
    const double d[2] = {1.0, 1e300}; /* beyond float range */
    check_nonfinite(path, "F64", d, 16, 2, 1);
    unlink(path);
}

/* ---- malformed files --------------------------------------------------------- */

typedef struct {
    const char *header; /* NULL: use raw */
    uint64_t hdr_len;   /* ~0: the header's length */
    size_t data_len;    /* zero bytes of data after the header */
    const char *want;   /* part of the error */
} bad_case;

#define T16 "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]"
static const bad_case bad_cases[] = {
    {"", 0, 0, "bad header length 0"},
    {"{}", 1, 0, "bad header length 1"},
    {"{}", 1ull << 62, 0, "bad header length"},
    {"{}", ~(uint64_t)0 - 1, 0, "bad header length"},
    {"{}", 100000001ull, 0, "bad header length"},
    {"{}     ", 64, 0, "truncated file: header of 64 bytes but only 7 follow"},
    {"{not json", ~0ull, 0, "not valid JSON"},
    {"{\"w\":{" T16 "}", ~0ull, 16, "not valid JSON"},
    {"[1,2,3]", ~0ull, 0, "not a JSON object"},
    {"\"str\"", ~0ull, 0, "not a JSON object"},
    {"{} x", ~0ull, 0, "bytes after its JSON"},
    {"{}{}", ~0ull, 0, "bytes after its JSON"},
    {"{\"w\":5}", ~0ull, 0, "tensor w: entry is not an object"},
    /* the writer's crc32 list names a tensor the table lacks: removed */
    {"{\"__metadata__\":{\"crc32\":\"{\\\"gone\\\":\\\"00000000\\\"}\"},\"w\":{" T16 "}}", ~0ull, 16,
     "tensor gone is missing"},
    {"{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", ~0ull, 4, "tensor w: dtype is missing"},
    {"{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", ~0ull, 4,
     "unsupported dtype F8_E4M3 for tensor w"},
    {"{\"w\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}", ~0ull, 4,
     "unsupported dtype BOOL for tensor w"},
    {"{\"w\":{\"dtype\":\"f32\",\"shape\":[4],\"data_offsets\":[0,16]}}", ~0ull, 16,
     "unsupported dtype f32"},
    {"{\"w\":{\"dtype\":7,\"shape\":[4],\"data_offsets\":[0,16]}}", ~0ull, 16, "dtype"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", ~0ull, 16,
     "shape is missing or not an array"},
    {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,16]}}", ~0ull, 16, "shape is missing"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", ~0ull, 16,
     "shape entry 0 is not a non-negative integer"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,12]}}", ~0ull, 16,
     "shape entry 1 is not a non-negative integer"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", ~0ull, 16,
     "shape entry 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,16]}}", ~0ull, 16,
     "shape entry 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[18446744073709551615],\"data_offsets\":[0,16]}}",
     ~0ull, 16, "shape entry 0"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", ~0ull,
     4, "9 dimensions"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
     "\"data_offsets\":[0,16]}}", ~0ull, 16, "shape overflows"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2147483648,2147483648,4],\"data_offsets\":[0,0]}}",
     ~0ull, 16, "shape overflows"},
    {"{\"w\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,16]}}",
     ~0ull, 16, "shape overflows"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4]}}", ~0ull, 16, "data_offsets must be"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16,32]}}", ~0ull, 32,
     "data_offsets must be"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-16,0]}}", ~0ull, 16,
     "data_offsets must be"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0.5,16.5]}}", ~0ull, 32,
     "data_offsets must be"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", ~0ull, 16,
     "end before they begin"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,8]}}", ~0ull, 16,
     "data_offsets [0, 8] hold 8 bytes, but its shape of F32 needs 16"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,32]}}", ~0ull, 32,
     "needs 16"},
    {"{\"w\":{" T16 "}}", ~0ull, 8, "tensor w: data ends at byte 16 of the data section, which "
                                   "has only 8 bytes"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[9007199254740976,"
     "9007199254740992]}}", ~0ull, 16, "data_offsets must be"},
    {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[4503599627370480,"
     "4503599627370496]}}", ~0ull, 16, "data ends at byte 4503599627370496"},
    {"{\"w\":{" T16 "},\"w\":{" T16 "}}", ~0ull, 16, "tensor w appears twice"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", ~0ull, 24, "overlap"},
    {"{\"__metadata__\":[],\"w\":{" T16 "}}", ~0ull, 16, "__metadata__ is not an object"},
    {"{\"__metadata__\":{\"config\":{}}}", ~0ull, 0,
     "__metadata__ value for config is not a string"},
    {"{\"__metadata__\":{\"step\":5}}", ~0ull, 0, "__metadata__ value for step"},
    {"{\"__metadata__\":{},\"__metadata__\":{}}", ~0ull, 0, "__metadata__ twice"},
};

static void test_st_malformed(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "bad.safetensors");
    static const unsigned char zeros[64];
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        write_st_raw(path, c->header, c->hdr_len, zeros, c->data_len);
        assert_null(mb_st_open(path));
        assert_error(path, c->want);
        /* the model loader reports the same damage, prefixed the same way */
        assert_null(mb_model_load(cpu(), path));
        assert_error(path, c->want);
    }
    /* files shorter than the length field */
    for (size_t n = 0; n < 8; n++) {
        write_bytes(path, "\x02\0\0\0\0\0\0\0", n);
        assert_null(mb_st_open(path));
        assert_error(path, "truncated file");
    }
    /* a header cut short of its JSON by NUL padding (C strings end early) */
    write_st_raw(path, "{\"a\":1", 8, "\0\0", 2);
    assert_null(mb_st_open(path));
    assert_error(path, "JSON");
    unlink(path);
    assert_null(mb_st_open(path));
    assert_error(path, "cannot open");
    char dir[256];
    mb_test_tmp_path(dir, sizeof dir, "a_dir");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_null(mb_st_open(dir));
    assert_error(dir, "not a regular file");
    rmdir(dir);
    /* a FIFO: refused, not waited on forever (fopen blocks until a writer
     * opens it) */
    char fifo[256];
    mb_test_tmp_path(fifo, sizeof fifo, "a_fifo");
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_null(mb_st_open(fifo));
    assert_error(fifo, "not a regular file");
    assert_null(mb_model_load(cpu(), fifo));
    unlink(fifo);
}

/* Every truncation and many random byte flips of a valid file: an error or
 * a valid result, never a crash or a read past what the file holds. */
static void test_st_mutations(void **state)
{
    (void)state;
    char path[256], mut[256];
    mb_test_tmp_path(path, sizeof path, "fuzz_src.safetensors");
    mb_test_tmp_path(mut, sizeof mut, "fuzz.safetensors");
    float a[6] = {1, 2, 3, 4, 5, 6};
    int32_t b[2] = {7, 8};
    const mb_st_entry e[] = {{"alpha", 2, {2, 3}, a, 0}, {"beta", 1, {2}, b, 1}};
    const char *meta[] = {"config", "{\"d_model\": 16}", NULL};
    assert_int_equal(mb_st_write(path, e, 2, meta), 0);
    size_t len;
    unsigned char *src = mb_test_read_file(path, &len);
    assert_non_null(src);
    unsigned char *buf = malloc(len);
    assert_non_null(buf);
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 1);
    int opened = 0;
    for (size_t iter = 0; iter < len + 3000; iter++) {
        size_t n = len;
        memcpy(buf, src, len);
        if (iter < len) {
            n = iter; /* every truncation */
        } else {
            int flips = 1 + (int)mb_rng_below(&rng, 4);
            for (int k = 0; k < flips; k++) {
                size_t at = mb_rng_below(&rng, (uint32_t)len);
                /* mostly printable damage in the JSON, sometimes any byte */
                buf[at] = mb_rng_below(&rng, 4) ? (unsigned char)" 0123456789{}[],:\"-.eE"
                                                      [mb_rng_below(&rng, 22)]
                                                : (unsigned char)mb_rng_below(&rng, 256);
            }
        }
        write_bytes(mut, buf, n);
        mb_st_file *f = mb_st_open(mut);
        if (!f) {
            assert_true(strncmp(mb_error_last(), mut, strlen(mut)) == 0);
            continue;
        }
        opened++;
        for (int i = 0; i < mb_st_count(f); i++) {
            const mb_st_tensor *t = mb_st_get(f, i);
            if (t->numel > 64) continue;
            float x[64];
            int64_t y[64];
            if (mb_st_read_f32(f, t, x, t->numel) && mb_st_read_i64(f, t, y, t->numel))
                assert_true(strncmp(mb_error_last(), mut, strlen(mut)) == 0);
        }
        mb_st_close(f);
    }
    printf("# %zu mutated files, %d still valid\n", len + 3000, opened);
    free(buf);
    free(src);
    unlink(path);
    unlink(mut);
}

/* ---- config JSON ----------------------------------------------------------- */

static void assert_config_equal(const mb_config *a, const mb_config *b)
{
    assert_int_equal(a->d_model, b->d_model);
    assert_int_equal(a->n_layer, b->n_layer);
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_int_equal(a->d_state, b->d_state);
    assert_int_equal(a->d_conv, b->d_conv);
    assert_int_equal(a->expand, b->expand);
    assert_int_equal(a->dt_rank, b->dt_rank);
    assert_int_equal(a->init, b->init);
    assert_int_equal(a->rms_norm, b->rms_norm);
    assert_int_equal(a->tie_embeddings, b->tie_embeddings);
    assert_int_equal(a->pad_vocab_size_multiple, b->pad_vocab_size_multiple);
    assert_int_equal(f32_bits(a->norm_eps), f32_bits(b->norm_eps));
    assert_int_equal(f32_bits(a->dt_min), f32_bits(b->dt_min));
    assert_int_equal(f32_bits(a->dt_max), f32_bits(b->dt_max));
    assert_int_equal(f32_bits(a->dt_init_floor), f32_bits(b->dt_init_floor));
}

static void test_config_json_roundtrip(void **state)
{
    (void)state;
    mb_config c;
    mb_config_default(&c);
    c.d_model = 24;
    c.n_layer = 3;
    c.vocab_size = 11;
    c.d_state = 8;
    c.d_conv = 3;
    c.expand = 3;
    c.init = MB_INIT_S4D_LIN;
    c.rms_norm = 0;
    c.tie_embeddings = 0;
    c.pad_vocab_size_multiple = 4;
    c.norm_eps = 1e-6f;
    c.dt_min = 0.0123f;
    c.dt_max = 0.321f;
    c.dt_init_floor = 3e-5f;
    assert_int_equal(mb_config_check(&c), 0);
    char *json = mb_config_to_json(&c);
    assert_non_null(json);
    printf("# %s\n", json);
    /* mamba_ssm's field order and values, our extensions last */
    const char *keys[] = {"\"d_model\":24", "\"d_intermediate\":0", "\"n_layer\":3",
                          "\"vocab_size\":11", "\"ssm_cfg\":{\"layer\":\"Mamba1\"",
                          "\"d_state\":8", "\"d_conv\":3", "\"expand\":3", "\"dt_rank\":2",
                          "\"dt_min\":0.0123", "\"dt_max\":0.321", "\"dt_init_floor\":3e-05",
                          "\"init\":\"s4d-lin\"}", "\"attn_layer_idx\":[]", "\"attn_cfg\":{}",
                          "\"rms_norm\":false", "\"residual_in_fp32\":true",
                          "\"fused_add_norm\":false", "\"pad_vocab_size_multiple\":4",
                          "\"tie_embeddings\":false", "\"norm_epsilon\":1e-06",
                          "\"arch\":\"mamba-lm\"}"};
    const char *at = json;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *p = strstr(at, keys[i]);
        if (!p) fprintf(stderr, "missing or out of order: %s\n", keys[i]);
        assert_non_null(p);
        at = p;
    }
    mb_config back;
    assert_int_equal(mb_config_from_json(json, &back), 0);
    assert_config_equal(&back, &c);
    free(json);

    /* defaults survive too (dt_rank resolved: 2560/16) */
    mb_config_default(&c);
    assert_int_equal(mb_config_check(&c), 0);
    json = mb_config_to_json(&c);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"dt_min\":0.001,"));
    assert_int_equal(mb_config_from_json(json, &back), 0);
    assert_config_equal(&back, &c);
    assert_int_equal(back.dt_rank, 160);
    free(json);
}

static void test_config_json_mamba_ssm(void **state)
{
    (void)state;
    /* state-spaces/mamba-130m's config.json, and the newer MambaConfig layout */
    mb_config c;
    assert_int_equal(mb_config_from_json(
                         "{\"d_model\": 768, \"n_layer\": 24, \"vocab_size\": 50277, "
                         "\"ssm_cfg\": {}, \"rms_norm\": true, \"residual_in_fp32\": true, "
                         "\"fused_add_norm\": true, \"pad_vocab_size_multiple\": 8}",
                         &c),
                     0);
    assert_int_equal(c.d_model, 768);
    assert_int_equal(c.n_layer, 24);
    assert_int_equal(c.vocab_size, 50277);
    assert_int_equal(c.d_state, 16);
    assert_int_equal(c.dt_rank, 48);
    assert_int_equal(c.tie_embeddings, 1);
    assert_int_equal(c.rms_norm, 1);
    assert_int_equal(c.init, MB_INIT_S4D_REAL);
    assert_int_equal(mb_config_from_json(
                         "{\"d_model\": 64, \"d_intermediate\": 0, \"n_layer\": 2, "
                         "\"vocab_size\": 100, \"ssm_cfg\": {\"layer\": \"Mamba1\", "
                         "\"dt_rank\": \"auto\", \"d_state\": 4, \"dt_scale\": 1.0, "
                         "\"dt_init\": \"random\", \"conv_bias\": true, \"bias\": false}, "
                         "\"attn_layer_idx\": [], \"attn_cfg\": {}, \"rms_norm\": false, "
                         "\"residual_in_fp32\": false, \"fused_add_norm\": true, "
                         "\"pad_vocab_size_multiple\": 16, \"tie_embeddings\": false, "
                         "\"unknown_future_field\": [1, {\"x\": null}]}",
                         &c),
                     0);
    assert_int_equal(c.dt_rank, 4);
    assert_int_equal(c.d_state, 4);
    assert_int_equal(c.rms_norm, 0);
    assert_int_equal(c.tie_embeddings, 0);
    assert_int_equal(c.pad_vocab_size_multiple, 16);
}

/* mamba_ssm's Mamba(bias=True, conv_bias=False): read, written, and the
 * tensors a model of it has */
static void test_config_json_biases(void **state)
{
    (void)state;
    mb_config c;
    mb_config_default(&c);
    assert_int_equal(mb_config_from_json("{\"d_model\": 16, \"n_layer\": 1, \"vocab_size\": 9, "
                                         "\"ssm_cfg\": {\"bias\": true, \"conv_bias\": false}}", &c), 0);
    assert_int_equal(c.bias, 1);
    assert_int_equal(c.conv_bias, 0);
    char *json = mb_config_to_json(&c);
    mb_config c2;
    assert_int_equal(mb_config_from_json(json, &c2), 0);
    assert_int_equal(c2.bias, 1);
    assert_int_equal(c2.conv_bias, 0);
    free(json);
    mb_model *m = mb_model_alloc(cpu(), &c);
    assert_non_null(m);
    assert_true(mb_params_find(&m->params, "backbone.layers.0.mixer.in_proj.bias") >= 0);
    assert_true(mb_params_find(&m->params, "backbone.layers.0.mixer.out_proj.bias") >= 0);
    assert_true(mb_params_find(&m->params, "backbone.layers.0.mixer.conv1d.bias") < 0);
    mb_model_free(m);
    /* the default config's JSON says nothing of them: mamba_ssm's own */
    mb_config_default(&c);
    json = mb_config_to_json(&c);
    assert_null(strstr(json, "bias"));
    free(json);
}

static void test_config_json_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *json, *want;
    } cases[] = {
        {"{\"ssm_cfg\": {\"layer\": \"Mamba2\"}}", "ssm_cfg.layer is 'Mamba2'"},
        {"{\"d_intermediate\": 1024}", "d_intermediate is 1024: MLP blocks"},
        {"{\"d_intermediate\": -1}", "d_intermediate"},
        {"{\"attn_layer_idx\": [3]}", "attn_layer_idx is not empty"},
        {"{\"attn_layer_idx\": 3}", "attn_layer_idx must be an array"},
        {"{\"attn_cfg\": []}", "attn_cfg must be an object"},
        {"{\"arch\": \"sashimi\"}", "checkpoint is a 'sashimi' model, not a mamba-lm"},
        {"{\"arch\": 1}", "arch must be a string"},
        {"{\"d_model\": \"16\"}", "d_model must be an integer"},
        {"{\"d_model\": 16.5}", "d_model must be an integer"},
        {"{\"d_model\": null}", "d_model must be an integer"},
        {"{\"vocab_size\": 1e20}", "vocab_size must be an integer"},
        {"{\"n_layer\": 0}", "n_layer 0 out of range"},
        {"{\"rms_norm\": 1}", "rms_norm must be true or false"},
        {"{\"tie_embeddings\": \"yes\"}", "tie_embeddings must be true or false"},
        {"{\"fused_add_norm\": 0}", "fused_add_norm must be true or false"},
        {"{\"norm_epsilon\": \"small\"}", "norm_epsilon must be a finite number"},
        {"{\"norm_epsilon\": 1e999}", "norm_epsilon must be a finite number"},
        {"{\"ssm_cfg\": []}", "ssm_cfg must be an object"},
        {"{\"ssm_cfg\": {\"init\": \"s4d-inv\"}}", "unknown ssm_cfg.init 's4d-inv'"},
        {"{\"ssm_cfg\": {\"init\": 1}}", "ssm_cfg.init must be a string"},
        {"{\"ssm_cfg\": {\"dt_rank\": \"big\"}}", "ssm_cfg.dt_rank must be an integer or"},
        {"{\"ssm_cfg\": {\"dt_rank\": -2}}", "ssm_cfg.dt_rank must be positive"},
        {"{\"ssm_cfg\": {\"d_state\": 2.5}}", "ssm_cfg.d_state must be an integer"},
        {"{\"ssm_cfg\": {\"bias\": 1}}", "ssm_cfg.bias must be true or false"},
        {"{\"ssm_cfg\": {\"dt_min\": 0.5, \"dt_max\": 0.1}}", "bad dt range"},
        {"{\"d_model\": 16", "not valid JSON"},
        {"", "not valid JSON"},
        {"[1]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mb_config c;
        mb_config_default(&c);
        c.d_model = 7777; /* untouched on failure */
        assert_int_equal(mb_config_from_json(cases[i].json, &c), -1);
        if (!strstr(mb_error_last(), cases[i].want)) {
            fprintf(stderr, "'%s': got '%s', want '%s'\n", cases[i].json, mb_error_last(),
                    cases[i].want);
            fail();
        }
        assert_int_equal(c.d_model, 7777);
    }
    mb_config c;
    assert_int_equal(mb_config_from_json(NULL, &c), -1);
}

/* ---- model round trip ------------------------------------------------------- */

static mb_config small_config(int complex_init, int tied, int rms)
{
    mb_config c;
    mb_config_default(&c);
    c.d_model = 16;
    c.n_layer = 2;
    c.vocab_size = 10;
    c.init = complex_init ? MB_INIT_S4D_LIN : MB_INIT_S4D_REAL;
    c.tie_embeddings = tied;
    c.rms_norm = rms;
    assert_int_equal(mb_config_check(&c), 0);
    return c;
}

/* A model with random (not initial) weights, so every bit is checked. */
static mb_model *random_model(const mb_config *c, mb_rng *rng)
{
    mb_model *m = mb_model_alloc(cpu(), c);
    assert_non_null(m);
    for (int i = 0; i < m->params.n; i++)
        mb_test_fill_normal(rng, mb_param_data(&m->params, i), m->params.items[i].numel, 1.f);
    return m;
}

static void assert_params_equal(const mb_model *a, const mb_model *b)
{
    assert_int_equal(a->params.n, b->params.n);
    assert_int_equal(a->params.total, b->params.total);
    for (int i = 0; i < a->params.n; i++) {
        const mb_param *p = &a->params.items[i], *q = &b->params.items[i];
        assert_string_equal(p->name, q->name);
        assert_int_equal(p->ndim, q->ndim);
        for (int d = 0; d < p->ndim; d++) assert_int_equal(p->shape[d], q->shape[d]);
        assert_int_equal(p->numel, q->numel);
        assert_memory_equal(mb_param_data(&a->params, i), mb_param_data(&b->params, i),
                            p->numel * sizeof(float));
    }
}

static void check_model_roundtrip(int complex_init, int tied, int rms)
{
    char path[256];
    mb_test_tmp_path(path, sizeof path, "model.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + (uint64_t)(complex_init * 4 + tied * 2 + rms));
    mb_config c = small_config(complex_init, tied, rms);
    mb_model *m = random_model(&c, &rng);
    assert_int_equal(mb_model_save(m, path), 0);
    assert_no_temp_left(path);

    /* the file speaks mamba_ssm: names, shapes, F32 */
    mb_st_file *f = mb_st_open(path);
    assert_non_null(f);
    assert_int_equal(mb_st_count(f), m->params.n);
    assert_non_null(mb_st_metadata(f, "config"));
    assert_string_equal(mb_st_metadata(f, "format"), "pt");
    const mb_st_tensor *t = mb_st_find(f, "backbone.layers.1.mixer.x_proj.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, MB_ST_F32);
    assert_int_equal(t->shape[0], 1 + (complex_init ? 4 : 2) * 16); /* R + 2N or R + 4N */
    assert_int_equal(t->shape[1], 32);
    t = mb_st_find(f, "backbone.layers.0.mixer.conv1d.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[1], 1);
    assert_int_equal(t->shape[2], 4);
    assert_int_equal(mb_st_find(f, "backbone.layers.0.mixer.A_imag") != NULL, complex_init);
    assert_int_equal(mb_st_find(f, "lm_head.weight") != NULL, !tied);
    assert_int_equal(mb_st_find(f, "backbone.norm_f.bias") != NULL, !rms);
    assert_int_equal(mb_st_find(f, "backbone.layers.1.norm.bias") != NULL, !rms);
    assert_non_null(mb_st_find(f, "backbone.embedding.weight"));
    assert_non_null(mb_st_find(f, "backbone.layers.1.mixer.dt_proj.bias"));
    for (int i = 0; i < m->params.n; i++) /* table order */
        assert_string_equal(mb_st_get(f, i)->name, m->params.items[i].name);
    mb_st_close(f);

    mb_model *back = mb_model_load(cpu(), path);
    if (!back) fprintf(stderr, "load: %s\n", mb_error_last());
    assert_non_null(back);
    assert_config_equal(&back->cfg, &m->cfg);
    assert_params_equal(back, m);
    mb_model_free(back);
    mb_model_free(m);
    unlink(path);
}

static void test_model_roundtrip(void **state)
{
    (void)state;
    for (int cx = 0; cx < 2; cx++)
        for (int tied = 0; tied < 2; tied++)
            for (int rms = 0; rms < 2; rms++) check_model_roundtrip(cx, tied, rms);
}

/* The model's tensors as writer entries, with optional damage. */
typedef struct {
    mb_st_entry *e;
    int n;
} entry_list;

static entry_list model_entries(const mb_model *m, int extra)
{
    entry_list l = {calloc((size_t)(m->params.n + extra), sizeof(mb_st_entry)), m->params.n};
    assert_non_null(l.e);
    for (int i = 0; i < m->params.n; i++) {
        const mb_param *p = &m->params.items[i];
        l.e[i].name = p->name;
        l.e[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) l.e[i].shape[d] = p->shape[d];
        l.e[i].data = mb_param_data(&m->params, i);
    }
    return l;
}

/* Loading is strict (issue 18): torch.save of a tied MambaLMHeadModel also
 * holds lm_head.weight, equal to the embedding: taken; a tied head that
 * differs, or any tensor the model does not have (projection biases its
 * config does not declare, say), is refused by name. */
static void write_with_extra(const char *path, const mb_model *m, const char *name, int ndim, const int64_t *shape,
                             const float *data)
{
    entry_list l = model_entries(m, 1);
    l.e[l.n] = (mb_st_entry){name, ndim, {0}, data, 0};
    for (int d = 0; d < ndim; d++) l.e[l.n].shape[d] = shape[d];
    l.n++;
    char *config = mb_config_to_json(&m->cfg);
    const char *meta[] = {"config", config, NULL};
    assert_int_equal(mb_st_write(path, l.e, l.n, meta), 0);
    free(config);
    free(l.e);
}

static void test_model_extra_tensors(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "extra.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 11);
    mb_config c = small_config(0, 1, 1);
    mb_model *m = random_model(&c, &rng);
    const mb_param *emb = mb_test_param(m, "backbone.embedding.weight");
    write_with_extra(path, m, "lm_head.weight", 2, emb->shape, m->params.data + emb->offset);
    mb_model *back = mb_model_load(cpu(), path);
    assert_non_null(back);
    assert_params_equal(back, m);
    mb_model_free(back);
    /* a "tied" head that is not the embedding */
    float *other = malloc(emb->numel * sizeof(float));
    mb_test_fill_normal(&rng, other, emb->numel, 1.f);
    write_with_extra(path, m, "lm_head.weight", 2, emb->shape, other);
    assert_null(mb_model_load(cpu(), path));
    assert_error(path, "lm_head.weight differs from the embedding it is tied to");
    free(other);
    /* biases the config does not declare: the model would score without them */
    const int64_t shp[1] = {64};
    static float bias[64];
    write_with_extra(path, m, "backbone.layers.0.mixer.in_proj.bias", 1, shp, bias);
    assert_null(mb_model_load(cpu(), path));
    assert_error(path, "unexpected tensor backbone.layers.0.mixer.in_proj.bias (not part of this model");
    mb_model_free(m);
    unlink(path);
}

/* Write the model's tensors with `damage` applied, then expect a refusal. */
typedef void (*damage_fn)(entry_list *l, const mb_model *m, char **config, float *scratch);

static void expect_refusal(const char *tag, damage_fn damage, const char *want)
{
    char path[256];
    mb_test_tmp_path(path, sizeof path, tag);
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 5);
    mb_config c = small_config(1, 0, 0);
    mb_model *m = random_model(&c, &rng);
    entry_list l = model_entries(m, 1);
    char *config = mb_config_to_json(&m->cfg);
    float *scratch = calloc(m->params.total, sizeof(float));
    assert_non_null(scratch);
    damage(&l, m, &config, scratch);
    const char *meta[] = {"config", config, NULL};
    assert_int_equal(mb_st_write(path, l.e, l.n, config ? meta : NULL), 0);
    assert_null(mb_model_load(cpu(), path));
    assert_error(path, want);
    free(scratch);
    free(config);
    free(l.e);
    mb_model_free(m);
    unlink(path);
}

static int find_entry(entry_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->e[i].name, name) == 0) return i;
    fail_msg("no entry %s", name);
    return -1;
}

static void damage_nan(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)config;
    int i = find_entry(l, "backbone.layers.1.mixer.dt_proj.weight");
    size_t n = m->params.items[i].numel;
    memcpy(scratch, l->e[i].data, n * sizeof(float));
    scratch[n - 1] = NAN;
    l->e[i].data = scratch;
}

static void damage_shape(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)m, (void)config, (void)scratch;
    int i = find_entry(l, "backbone.layers.0.mixer.x_proj.weight");
    l->e[i].shape[0] -= 32; /* a real-init x_proj in a complex model */
}

static void damage_ndim(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)m, (void)config, (void)scratch;
    int i = find_entry(l, "backbone.layers.0.mixer.conv1d.weight");
    l->e[i].ndim = 2; /* (d_inner, K) instead of (d_inner, 1, K) */
    l->e[i].shape[1] = 4;
}

static void damage_missing(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)m, (void)config, (void)scratch;
    int i = find_entry(l, "backbone.layers.1.mixer.A_imag");
    memmove(&l->e[i], &l->e[i + 1], (size_t)(l->n - i - 1) * sizeof(mb_st_entry));
    l->n--;
}

static void damage_no_config(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)l, (void)m, (void)scratch;
    free(*config);
    *config = NULL;
}

static void replace_in_config(char **config, const char *from, const char *to)
{
    char *p = strstr(*config, from);
    assert_non_null(p);
    char *s = malloc(strlen(*config) + strlen(to) + 1);
    assert_non_null(s);
    sprintf(s, "%.*s%s%s", (int)(p - *config), *config, to, p + strlen(from));
    free(*config);
    *config = s;
}

static void damage_arch(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)l, (void)m, (void)scratch;
    replace_in_config(config, "\"arch\":\"mamba-lm\"", "\"arch\":\"sashimi\"");
}

static void damage_mamba2(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)l, (void)m, (void)scratch;
    replace_in_config(config, "\"layer\":\"Mamba1\"", "\"layer\":\"Mamba2\"");
}

static void damage_config_json(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)l, (void)m, (void)scratch;
    replace_in_config(config, "\"d_model\":16", "\"d_model\":\"sixteen\"");
}

static void damage_config_size(entry_list *l, const mb_model *m, char **config, float *scratch)
{
    (void)l, (void)m, (void)scratch;
    replace_in_config(config, "\"d_model\":16", "\"d_model\":24");
}

static void test_model_refusals(void **state)
{
    (void)state;
    expect_refusal("nan.st", damage_nan, "tensor backbone.layers.1.mixer.dt_proj.weight: "
                                         "non-finite value at index 31");
    expect_refusal("shape.st", damage_shape, "tensor backbone.layers.0.mixer.x_proj.weight has "
                                             "shape [33, 32], expected [65, 32]");
    expect_refusal("ndim.st", damage_ndim, "tensor backbone.layers.0.mixer.conv1d.weight has "
                                           "shape [32, 4], expected [32, 1, 4]");
    expect_refusal("missing.st", damage_missing, "missing tensor backbone.layers.1.mixer.A_imag");
    expect_refusal("noconfig.st", damage_no_config, "no \"config\" in __metadata__");
    expect_refusal("arch.st", damage_arch, "checkpoint is a 'sashimi' model, not a mamba-lm");
    expect_refusal("mamba2.st", damage_mamba2, "ssm_cfg.layer is 'Mamba2'");
    expect_refusal("cfgtype.st", damage_config_json, "config: d_model must be an integer");
    expect_refusal("cfgsize.st", damage_config_size,
                   "tensor backbone.embedding.weight has shape [16, 16], expected [16, 24]");
}

static void test_model_truncated(void **state)
{
    (void)state;
    char path[256], cut[256];
    mb_test_tmp_path(path, sizeof path, "good.safetensors");
    mb_test_tmp_path(cut, sizeof cut, "cut.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 7);
    mb_config c = small_config(0, 0, 1);
    mb_model *m = random_model(&c, &rng);
    assert_int_equal(mb_model_save(m, path), 0);
    size_t len;
    unsigned char *raw = mb_test_read_file(path, &len);
    assert_non_null(raw);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)raw[i] << (8 * i);
    const size_t cuts[] = {0, 4, 8 + hl / 2, 8 + hl + (len - 8 - hl) / 2, len - 1};
    const char *wants[] = {"truncated file", "truncated file", "truncated file: header",
                           "(truncated file?)", "(truncated file?)"};
    for (int k = 0; k < 5; k++) {
        write_bytes(cut, raw, cuts[k]);
        assert_null(mb_model_load(cpu(), cut));
        assert_error(cut, wants[k]);
    }
    /* a header length pointing past the end of the file */
    unsigned char *big = malloc(len);
    assert_non_null(big);
    memcpy(big, raw, len);
    uint64_t wrong = len; /* > len - 8 */
    for (int i = 0; i < 8; i++) big[i] = (unsigned char)(wrong >> (8 * i));
    write_bytes(cut, big, len);
    assert_null(mb_model_load(cpu(), cut));
    assert_error(cut, "truncated file: header");
    /* garbage where the JSON was */
    memcpy(big, raw, len);
    memset(big + 8, '#', 16);
    write_bytes(cut, big, len);
    assert_null(mb_model_load(cpu(), cut));
    assert_error(cut, "header is not valid JSON");
    /* the whole file is valid again: loads */
    write_bytes(cut, raw, len);
    mb_model *back = mb_model_load(cpu(), cut);
    assert_non_null(back);
    mb_model_free(back);
    free(big);
    free(raw);
    mb_model_free(m);
    unlink(path);
    unlink(cut);
}

/* A failed save leaves whatever was at the path untouched and no temp file. */
static void test_model_save_failures(void **state)
{
    (void)state;
    char path[256], tmp[300], nodir[300];
    mb_test_tmp_path(path, sizeof path, "keep.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 9);
    mb_config c = small_config(0, 1, 1);
    mb_model *m = random_model(&c, &rng);
    assert_int_equal(mb_model_save(m, path), 0);
    size_t good_len;
    void *good = mb_test_read_file(path, &good_len);
    assert_non_null(good);
    /* change the weights so a successful save would change the file */
    mb_test_fill_normal(&rng, m->params.data, m->params.total, 1.f);

    /* a directory that does not exist */
    snprintf(nodir, sizeof nodir, "%s.nodir/model.safetensors", path);
    assert_int_equal(mb_model_save(m, nodir), -1);
    assert_error(nodir, "cannot create a file in its directory (No such file or directory)");

    /* the temp file cannot be created: its "directory" is a file */
    snprintf(tmp, sizeof tmp, "%s/model.safetensors", path);
    assert_int_equal(mb_model_save(m, tmp), -1);
    assert_error(tmp, "cannot create a file in its directory (Not a directory)");
    assert_file_equals(path, good, good_len);

    /* the disk "fills up" mid-write: the file size limit stands in for ENOSPC */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)(good_len / 2);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = mb_model_save(m, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(rc, -1);
    assert_error(path, "write error (File too large)");
    assert_file_equals(path, good, good_len);
    assert_no_temp_left(path);

    /* and the good file still loads */
    mb_model *back = mb_model_load(cpu(), path);
    assert_non_null(back);
    mb_model_free(back);
    free(good);
    mb_model_free(m);
    unlink(path);
}

/* ---- optimizer state ----------------------------------------------------------- */

static mb_optim *hand_optim(mb_model *m, mb_rng *rng)
{
    mb_optim *o = calloc(1, sizeof *o);
    assert_non_null(o);
    o->model = m;
    mb_optim_config_default(&o->cfg);
    o->m = mb_dev_alloc_floats(m->ctx, m->params.total, "m");
    o->v = mb_dev_alloc_floats(m->ctx, m->params.total, "v");
    assert_non_null(o->m);
    assert_non_null(o->v);
    if (rng) {
        mb_test_fill_normal(rng, o->m, m->params.total, 1e-2f);
        mb_test_fill(rng, o->v, m->params.total, 0.f, 1e-3f);
    } else {
        memset(o->m, 0, m->params.total * sizeof(float));
        memset(o->v, 0, m->params.total * sizeof(float));
    }
    return o;
}

static void hand_optim_free(mb_optim *o)
{
    mb_dev_free(o->model->ctx, o->m);
    mb_dev_free(o->model->ctx, o->v);
    free(o);
}

static void test_optim_roundtrip(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "optim.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 13);
    mb_config c = small_config(1, 0, 1);
    mb_model *model = mb_model_alloc(cpu(), &c);
    assert_non_null(model);
    mb_optim *o = hand_optim(model, &rng);
    o->step = 123456789012ll;
    o->cfg.lr = 3e-4f;
    o->cfg.warmup_steps = 100;
    assert_int_equal(mb_optim_save(o, path), 0);
    assert_no_temp_left(path);

    mb_st_file *f = mb_st_open(path);
    assert_non_null(f);
    assert_int_equal(mb_st_count(f), 2 * model->params.n);
    assert_string_equal(mb_st_metadata(f, "step"), "123456789012");
    char total[32];
    snprintf(total, sizeof total, "%zu", model->params.total);
    assert_string_equal(mb_st_metadata(f, "param_total"), total);
    cJSON *oc = cJSON_Parse(mb_st_metadata(f, "optim_config"));
    assert_non_null(oc);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(oc, "lr")) == 0.0003);
    assert_true(cJSON_GetNumberValue(cJSON_GetObjectItem(oc, "warmup_steps")) == 100);
    cJSON_Delete(oc);
    assert_non_null(mb_st_find(f, "m.backbone.layers.1.mixer.A_imag"));
    assert_non_null(mb_st_find(f, "v.lm_head.weight"));
    mb_st_close(f);

    mb_optim *o2 = hand_optim(model, NULL);
    o2->cfg.lr = 1.f; /* the caller's config stays */
    assert_int_equal(mb_optim_load(o2, path), 0);
    assert_int_equal(o2->step, o->step);
    assert_true(o2->cfg.lr == 1.f);
    for (int i = 0; i < model->params.n; i++) {
        const mb_param *p = &model->params.items[i];
        assert_memory_equal(o2->m + p->offset, o->m + p->offset, p->numel * sizeof(float));
        assert_memory_equal(o2->v + p->offset, o->v + p->offset, p->numel * sizeof(float));
    }

    /* state for another model shape is refused, and nothing changes */
    const struct {
        int d_model, n_layer, tied;
        const char *want;
    } others[] = {
        {32, 2, 0, "tensor m.backbone.embedding.weight has shape [16, 16], expected [16, 32]"},
        {16, 3, 0, "optimizer state has 25 moment tensors, the model has 36 parameters"},
        {16, 2, 1, "optimizer state has 25 moment tensors, the model has 24 parameters"},
    };
    for (int k = 0; k < 3; k++) {
        mb_config c2 = small_config(1, others[k].tied, 1);
        c2.d_model = others[k].d_model;
        c2.n_layer = others[k].n_layer;
        mb_model *model2 = mb_model_alloc(cpu(), &c2);
        assert_non_null(model2);
        /* the same run (else the run check refuses it first: below) */
        model2->run_id = model->run_id;
        mb_optim *o3 = hand_optim(model2, NULL);
        o3->step = 5;
        assert_int_equal(mb_optim_load(o3, path), -1);
        assert_error(path, others[k].want);
        assert_int_equal(o3->step, 5);
        assert_true(mb_test_max_abs(o3->m, model2->params.total) == 0);
        hand_optim_free(o3);
        mb_model_free(model2);
    }

    /* a model checkpoint is not optimizer state */
    assert_int_equal(mb_model_save(model, path), 0);
    assert_int_equal(mb_optim_load(o2, path), -1);
    assert_error(path, "no \"step\" in __metadata__");

    hand_optim_free(o);
    hand_optim_free(o2);
    mb_model_free(model);
    unlink(path);
}

/* ---- a checkpoint's two files belong together (issue 13, finding 2) ------------
 * The optimizer state carries the model's run id and a CRC of the weights
 * it was saved with; resuming with another run's state, or with the state
 * of an earlier save (the model file replaced after it: a kill between the
 * two renames, a failed write of the .optim), is refused in one line. */
static void test_optim_tie(void **state)
{
    (void)state;
    char mpath[256], opath[256];
    mb_test_tmp_path(mpath, sizeof mpath, "tie.safetensors");
    mb_test_tmp_path(opath, sizeof opath, "tie.safetensors.optim");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 14);
    mb_config c = small_config(0, 1, 1);
    mb_model *a = random_model(&c, &rng);
    mb_optim *oa = hand_optim(a, &rng);
    oa->step = 7;
    assert_int_equal(mb_model_save(a, mpath), 0);
    assert_int_equal(mb_optim_save(oa, opath), 0);
    /* the pair as saved resumes */
    mb_model *r = mb_model_load(cpu(), mpath);
    assert_non_null(r);
    assert_true(mb_model_run_id(r) == mb_model_run_id(a));
    mb_optim *or_ = hand_optim(r, NULL);
    assert_int_equal(mb_optim_load(or_, opath), 0);
    assert_int_equal(or_->step, 7);
    hand_optim_free(or_);
    /* the model file of a later save, the .optim of the earlier one */
    mb_param_data(&a->params, 3)[0] += 0.5f;
    assert_int_equal(mb_model_save(a, mpath), 0);
    mb_model *r2 = mb_model_load(cpu(), mpath);
    mb_optim *o2 = hand_optim(r2, NULL);
    o2->step = 99;
    assert_int_equal(mb_optim_load(o2, opath), -1);
    assert_error(opath, "optimizer state saved with other weights than the model's");
    assert_int_equal(o2->step, 99);
    hand_optim_free(o2);
    mb_model_free(r2);
    /* another run's state, of the same shapes */
    mb_model *b = random_model(&c, &rng);
    assert_true(mb_model_run_id(b) != mb_model_run_id(a));
    mb_optim *ob = hand_optim(b, NULL);
    assert_int_equal(mb_optim_load(ob, opath), -1);
    assert_error(opath, "optimizer state of another run");
    hand_optim_free(ob);
    mb_model_free(b);
    /* a file of before the tie (no run_id, no weights_crc32) still loads */
    mb_st_file *f = mb_st_open(opath);
    assert_non_null(f);
    const int n = mb_st_count(f);
    mb_st_entry *e = calloc((size_t)n, sizeof *e);
    float *buf = malloc(r->params.total * 2 * sizeof(float));
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const mb_st_tensor *t = mb_st_get(f, i);
        assert_int_equal(mb_st_read_f32(f, t, buf + off, t->numel), 0);
        e[i] = (mb_st_entry){t->name, t->ndim, {0}, buf + off, 0};
        for (int d = 0; d < t->ndim; d++) e[i].shape[d] = t->shape[d];
        off += t->numel;
    }
    const char *meta[] = {"step", mb_st_metadata(f, "step"), "param_total", mb_st_metadata(f, "param_total"), NULL};
    char old[300];
    snprintf(old, sizeof old, "%s.old", opath);
    assert_int_equal(mb_st_write(old, e, n, meta), 0);
    mb_st_close(f);
    mb_optim *o3 = hand_optim(r, NULL);
    assert_int_equal(mb_optim_load(o3, old), 0);
    assert_int_equal(o3->step, 7);
    hand_optim_free(o3);
    free(e), free(buf);
    remove(old), remove(mpath), remove(opath);
    mb_model_free(r);
    hand_optim_free(oa);
    mb_model_free(a);
}

/* ---- damaged files and diverged models (findings 3, 5) -------------------------- */
static void test_checksums_and_nonfinite(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "crc.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 15);
    mb_config c = small_config(1, 0, 1);
    mb_model *m = random_model(&c, &rng);
    assert_int_equal(mb_model_save(m, path), 0);
    mb_st_file *f = mb_st_open(path);
    const mb_st_tensor *t = mb_st_find(f, "backbone.layers.1.mixer.x_proj.weight");
    assert_non_null(t);
    assert_true(t->has_crc);
    /* and the library that wrote it (issue 18) */
    assert_string_equal(mb_st_metadata(f, "libmamba_version"), MB_VERSION);
    char ver[32];
    snprintf(ver, sizeof ver, "%d.%d.%d", MB_VERSION_MAJOR, MB_VERSION_MINOR, MB_VERSION_PATCH);
    assert_string_equal(ver, MB_VERSION);
    /* one exponent bit flipped in the middle of a tensor: the value stays
     * finite (a weight of ~1e38, say), only the checksum sees it */
    uint64_t pos = t->begin + (t->end - t->begin) / 2;
    pos -= pos % 4;
    size_t len;
    unsigned char *bytes = mb_test_read_file(path, &len);
    assert_non_null(bytes);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)bytes[i] << (8 * i);
    mb_st_close(f);
    bytes[8 + hl + pos + 3] ^= 0x20; /* a bit of the exponent (little-endian: byte 3) */
    float v;
    memcpy(&v, bytes + 8 + hl + pos, 4);
    assert_true(isfinite(v));
    char bad[300];
    snprintf(bad, sizeof bad, "%s.bad", path);
    FILE *w = fopen(bad, "wb");
    fwrite(bytes, 1, len, w);
    fclose(w);
    free(bytes);
    assert_null(mb_model_load(cpu(), bad));
    assert_error(bad, "tensor backbone.layers.1.mixer.x_proj.weight: checksum mismatch (the file is damaged)");
    remove(bad);
    /* a diverged model does not replace the good file */
    size_t good_len;
    void *good = mb_test_read_file(path, &good_len);
    mb_param_data(&m->params, 5)[2] = NAN;
    mb_param_data(&m->params, 7)[0] = INFINITY;
    assert_int_equal(mb_model_save(m, path), -1);
    assert_error(path, "not written: the model has 2 non-finite weights");
    assert_file_equals(path, good, good_len);
    assert_no_temp_left(path);
    free(good);
    remove(path);
    mb_model_free(m);
}

/* ---- the file's tensors checked before the model is allocated (finding 8) --------
 * A small file whose config claims d_model 1024 x 48 layers: refused for
 * its tensors without allocating that model (under an address-space limit
 * that the claimed model could not fit in); and a loaded model has no
 * gradient buffers until training asks for them. */
static void test_shapes_before_alloc(void **state)
{
    (void)state;
    char path[256];
    mb_test_tmp_path(path, sizeof path, "liar.safetensors");
    mb_rng rng;
    mb_rng_seed(&rng, mb_test_seed() + 16);
    mb_config c = small_config(0, 1, 1);
    mb_model *m = random_model(&c, &rng);
    assert_null(m->params.grad); /* never trained */
    entry_list l = model_entries(m, 0);
    mb_config big = c;
    big.d_model = 1024, big.n_layer = 48, big.vocab_size = 50277;
    char *config = mb_config_to_json(&big);
    const char *meta[] = {"config", config, NULL};
    assert_int_equal(mb_st_write(path, l.e, l.n, meta), 0);
    free(config);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_AS, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)1 << 31; /* 2 GiB: the claimed model's weights alone are ~2.5 GB */
    assert_int_equal(setrlimit(RLIMIT_AS, &lim), 0);
    mb_model *l2 = mb_model_load(cpu(), path);
    assert_int_equal(setrlimit(RLIMIT_AS, &old), 0);
    assert_null(l2);
    printf("# refused: %s\n", mb_error_last());
    assert_error(path, "tensor backbone.embedding.weight has shape");
    /* a model loaded for inference has no gradients; training makes them */
    char good[256];
    mb_test_tmp_path(good, sizeof good, "good.safetensors");
    assert_int_equal(mb_model_save(m, good), 0);
    mb_model *g = mb_model_load(cpu(), good);
    assert_non_null(g);
    assert_null(g->params.grad);
    mb_state *st = mb_state_create(g, 1);
    int32_t tok[4] = {1, 2, 3, 4};
    assert_int_equal(mb_model_forward_chunk(g, st, tok, 4, NULL), 0);
    assert_int_equal(mb_model_forward(g, tok, 1, 4, NULL, NULL, NULL), 0);
    assert_null(g->params.grad);
    int32_t tgt[4] = {2, 3, 4, 5};
    assert_int_equal(mb_model_forward_backward(g, tok, tgt, 1, 4, NULL), 0);
    assert_non_null(g->params.grad);
    mb_state_free(st);
    mb_model_free(g);
    remove(good);
    free(l.e);
    remove(path);
    mb_model_free(m);
}

int main(void)
{
    mb_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_write_refusals),
        cmocka_unit_test(test_st_conversions),
        cmocka_unit_test(test_st_nonfinite),
        cmocka_unit_test(test_st_malformed),
        cmocka_unit_test(test_st_mutations),
        cmocka_unit_test(test_config_json_roundtrip),
        cmocka_unit_test(test_config_json_mamba_ssm),
        cmocka_unit_test(test_config_json_refusals),
        cmocka_unit_test(test_config_json_biases),
        cmocka_unit_test(test_model_roundtrip),
        cmocka_unit_test(test_model_extra_tensors),
        cmocka_unit_test(test_model_refusals),
        cmocka_unit_test(test_model_truncated),
        cmocka_unit_test(test_model_save_failures),
        cmocka_unit_test(test_optim_roundtrip),
        cmocka_unit_test(test_optim_tie),
        cmocka_unit_test(test_checksums_and_nonfinite),
        cmocka_unit_test(test_shapes_before_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
