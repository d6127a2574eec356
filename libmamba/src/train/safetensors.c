/* safetensors reading and writing.
 *
 * Reading trusts nothing: every number in the header is checked against the
 * file before it is used, so a hostile file can only produce an error line.
 * Tensor bytes stay on disk until asked for (a checkpoint can be larger than
 * we want to hold twice). Writing never touches PATH until the new file is
 * complete and on disk. */
#define _POSIX_C_SOURCE 200809L
#define _FILE_OFFSET_BITS 64

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "train/safetensors.h"

/* The writer stores host floats as they are in memory; safetensors is
 * little-endian. The reader decodes bytes explicitly and works anywhere. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#error "libmamba's safetensors writer assumes a little-endian host"
#endif

#define MB_ST_MAX_HEADER 100000000ull  /* the reference implementation's limit */
#define MB_ST_MAX_INT 9007199254740992.0 /* 2^53: beyond it JSON numbers lose digits */
#define MB_ST_CHUNK (1u << 20)         /* bytes read per fread */

struct mb_st_file {
    char *path;
    FILE *fp;
    uint64_t data_start; /* 8 + header length */
    uint64_t data_size;  /* bytes after the header */
    mb_st_tensor *tensors;
    int n;
    int *by_name; /* tensor indices sorted by name, for mb_st_find */
    char **meta_keys, **meta_vals;
    int n_meta;
};

static const struct {
    const char *name;
    size_t size;
} mb_st_dtypes[] = {
    [MB_ST_F32] = {"F32", 4}, [MB_ST_F16] = {"F16", 2}, [MB_ST_BF16] = {"BF16", 2},
    [MB_ST_F64] = {"F64", 8}, [MB_ST_I32] = {"I32", 4}, [MB_ST_I64] = {"I64", 8},
};
#define MB_ST_N_DTYPES ((int)(sizeof mb_st_dtypes / sizeof mb_st_dtypes[0]))

static int mb_st_dtype_parse(const char *s, mb_st_dtype *out)
{
    for (int i = 0; i < MB_ST_N_DTYPES; i++)
        if (strcmp(s, mb_st_dtypes[i].name) == 0) {
            *out = (mb_st_dtype)i;
            return 0;
        }
    return -1;
}

static char *mb_strdup(const char *s, const char *what)
{
    size_t n = strlen(s) + 1;
    char *d = mb_malloc(n, what);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- conversions ---------------------------------------------------------- */

static uint16_t mb_le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t mb_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t mb_le64(const unsigned char *p)
{
    return (uint64_t)mb_le32(p) | (uint64_t)mb_le32(p + 4) << 32;
}

static float mb_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* IEEE binary16 -> binary32, exact for every input (incl. inf and nan). */
static float mb_half_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return mb_bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp != 0) return mb_bits_f32(sign | ((exp + 127 - 15) << 23) | (man << 13));
    /* zero and subnormals: man * 2^-24, exact in float */
    float v = ldexpf((float)man, -24);
    return sign ? -v : v;
}

/* bfloat16 is the top half of a float32. */
static float mb_bf16_to_f32(uint16_t h) { return mb_bits_f32((uint32_t)h << 16); }

static double mb_f64_from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- reading: header validation ------------------------------------------- */

/* A JSON number that is an exact non-negative integer below 2^53. */
static int mb_json_uint(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= 0 && d < MB_ST_MAX_INT) || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int mb_st_parse_shape(mb_st_file *f, mb_st_tensor *t, const cJSON *shape)
{
    if (!cJSON_IsArray(shape))
        return mb_error_set("%s: tensor %s: shape is missing or not an array", f->path, t->name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > MB_ST_MAX_DIMS)
        return mb_error_set("%s: tensor %s: %d dimensions (at most %d supported)", f->path, t->name,
                            nd, MB_ST_MAX_DIMS);
    int i = 0, zero = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape)
    {
        uint64_t v;
        if (mb_json_uint(d, &v))
            return mb_error_set("%s: tensor %s: shape entry %d is not a non-negative integer",
                                f->path, t->name, i);
        t->shape[i++] = (int64_t)v;
        zero |= v == 0;
    }
    t->ndim = nd;
    /* an empty dimension makes numel 0 whatever the others are */
    size_t numel = 1;
    for (i = 0; i < nd && !zero; i++) {
        uint64_t v = (uint64_t)t->shape[i];
        if (v > SIZE_MAX / numel)
            return mb_error_set("%s: tensor %s: shape overflows (too many elements)", f->path,
                                t->name);
        numel *= (size_t)v;
    }
    t->numel = zero ? 0 : numel;
    if (t->numel > SIZE_MAX / mb_st_dtypes[t->dtype].size)
        return mb_error_set("%s: tensor %s: shape overflows (too many bytes)", f->path, t->name);
    return 0;
}

static int mb_st_parse_offsets(mb_st_file *f, mb_st_tensor *t, const cJSON *off)
{
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        mb_json_uint(cJSON_GetArrayItem(off, 0), &t->begin) ||
        mb_json_uint(cJSON_GetArrayItem(off, 1), &t->end))
        return mb_error_set("%s: tensor %s: data_offsets must be [begin, end] of non-negative "
                            "integers", f->path, t->name);
    if (t->begin > t->end)
        return mb_error_set("%s: tensor %s: data_offsets [%llu, %llu] end before they begin",
                            f->path, t->name, (unsigned long long)t->begin,
                            (unsigned long long)t->end);
    uint64_t want = (uint64_t)t->numel * mb_st_dtypes[t->dtype].size;
    if (t->end - t->begin != want)
        return mb_error_set("%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes, but its "
                            "shape of %s needs %llu", f->path, t->name,
                            (unsigned long long)t->begin, (unsigned long long)t->end,
                            (unsigned long long)(t->end - t->begin),
                            mb_st_dtypes[t->dtype].name, (unsigned long long)want);
    if (t->end > f->data_size)
        return mb_error_set("%s: tensor %s: data ends at byte %llu of the data section, which "
                            "has only %llu bytes (truncated file?)", f->path, t->name,
                            (unsigned long long)t->end, (unsigned long long)f->data_size);
    return 0;
}

static int mb_st_parse_tensor(mb_st_file *f, mb_st_tensor *t, const cJSON *j)
{
    t->name = mb_strdup(j->string, "tensor name");
    if (!t->name) return -1;
    if (!cJSON_IsObject(j))
        return mb_error_set("%s: tensor %s: entry is not an object", f->path, t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
    if (!cJSON_IsString(dt))
        return mb_error_set("%s: tensor %s: dtype is missing or not a string", f->path, t->name);
    if (mb_st_dtype_parse(dt->valuestring, &t->dtype))
        return mb_error_set("%s: unsupported dtype %s for tensor %s", f->path, dt->valuestring,
                            t->name);
    if (mb_st_parse_shape(f, t, cJSON_GetObjectItemCaseSensitive(j, "shape"))) return -1;
    return mb_st_parse_offsets(f, t, cJSON_GetObjectItemCaseSensitive(j, "data_offsets"));
}

uint32_t mb_crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    /* zlib takes uInt lengths */
    while (n > 0) {
        const uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = (uint32_t)crc32(crc, b, k);
        b += k;
        n -= k;
    }
    return crc;
}

static int mb_st_parse_metadata(mb_st_file *f, const cJSON *j)
{
    if (f->meta_keys)
        return mb_error_set("%s: header has __metadata__ twice", f->path);
    if (!cJSON_IsObject(j)) return mb_error_set("%s: __metadata__ is not an object", f->path);
    int n = cJSON_GetArraySize(j);
    f->meta_keys = mb_calloc((size_t)n, sizeof(char *), "metadata");
    f->meta_vals = mb_calloc((size_t)n, sizeof(char *), "metadata");
    if (!f->meta_keys || !f->meta_vals) return -1;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, j)
    {
        if (!cJSON_IsString(kv))
            return mb_error_set("%s: __metadata__ value for %s is not a string", f->path,
                                kv->string);
        for (int i = 0; i < f->n_meta; i++)
            if (strcmp(f->meta_keys[i], kv->string) == 0)
                return mb_error_set("%s: __metadata__ has key %s twice", f->path, kv->string);
        f->meta_keys[f->n_meta] = mb_strdup(kv->string, "metadata");
        f->meta_vals[f->n_meta] = mb_strdup(kv->valuestring, "metadata");
        if (!f->meta_keys[f->n_meta] || !f->meta_vals[f->n_meta]) return -1;
        f->n_meta++;
    }
    return 0;
}

/* qsort has no context argument: the comparators see the table through this
 * thread-local pointer, set just around each sort. */
static _Thread_local const mb_st_tensor *mb_st_sort_table;

static int mb_st_cmp_name(const void *a, const void *b)
{
    return strcmp(mb_st_sort_table[*(const int *)a].name, mb_st_sort_table[*(const int *)b].name);
}

static int mb_st_cmp_begin(const void *a, const void *b)
{
    const mb_st_tensor *x = &mb_st_sort_table[*(const int *)a];
    const mb_st_tensor *y = &mb_st_sort_table[*(const int *)b];
    return (x->begin > y->begin) - (x->begin < y->begin);
}

/* Duplicate names would make lookups ambiguous; overlapping data would let
 * one tensor's bytes alias another's. Both are refused. */
static int mb_st_check_table(mb_st_file *f)
{
    f->by_name = mb_malloc((size_t)f->n * sizeof(int), "tensor index");
    int *by_begin = mb_malloc((size_t)f->n * sizeof(int), "tensor index");
    if (!f->by_name || !by_begin) {
        free(by_begin);
        return -1;
    }
    for (int i = 0; i < f->n; i++) f->by_name[i] = by_begin[i] = i;
    mb_st_sort_table = f->tensors;
    qsort(f->by_name, (size_t)f->n, sizeof(int), mb_st_cmp_name);
    qsort(by_begin, (size_t)f->n, sizeof(int), mb_st_cmp_begin);
    mb_st_sort_table = NULL;
    int rc = 0;
    for (int i = 1; i < f->n && !rc; i++) {
        const char *a = f->tensors[f->by_name[i - 1]].name, *b = f->tensors[f->by_name[i]].name;
        if (strcmp(a, b) == 0) rc = mb_error_set("%s: tensor %s appears twice", f->path, a);
    }
    const mb_st_tensor *prev = NULL;
    for (int i = 0; i < f->n && !rc; i++) {
        const mb_st_tensor *t = &f->tensors[by_begin[i]];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end)
            rc = mb_error_set("%s: tensors %s and %s overlap in the data section", f->path,
                              prev->name, t->name);
        prev = t;
    }
    free(by_begin);
    return rc;
}

/* "crc32" in __metadata__: a JSON object of tensor name -> 8 hex digits
 * (mb_st_write's); each named tensor keeps its value for the reads */
static int mb_st_parse_crc(mb_st_file *f)
{
    const char *json = mb_st_metadata(f, "crc32");
    if (!json) return 0;
    cJSON *root = cJSON_Parse(json);
    int rc = root && cJSON_IsObject(root) ? 0 : mb_error_set("%s: bad crc32 in __metadata__", f->path);
    const cJSON *kv;
    for (kv = rc ? NULL : root->child; kv && !rc; kv = kv->next) {
        mb_st_tensor *t = (mb_st_tensor *)mb_st_find(f, kv->string);
        const char *v = cJSON_IsString(kv) ? kv->valuestring : NULL;
        char *end = NULL;
        const unsigned long x = v ? strtoul(v, &end, 16) : 0;
        if (!t)
            /* the writer lists every tensor it wrote: one is gone */
            rc = mb_error_set("%s: tensor %s is missing (the file's crc32 list names it)", f->path, kv->string);
        else if (!v || strlen(v) != 8 || *end)
            rc = mb_error_set("%s: bad crc32 in __metadata__ (entry %s)", f->path, kv->string);
        else
            t->crc = (uint32_t)x, t->has_crc = 1;
    }
    cJSON_Delete(root);
    return rc;
}

static int mb_st_parse_header(mb_st_file *f, const char *text, size_t len)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root)
        return mb_error_set("%s: header is not valid JSON (error near byte %zu of %zu)", f->path,
                            end ? (size_t)(end - text) : (size_t)0, len);
    int rc = 0;
    /* the format pads the header with spaces; anything else after the JSON is damage */
    for (const char *p = end; p < text + len && !rc; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            rc = mb_error_set("%s: header has bytes after its JSON object", f->path);
    if (!rc && !cJSON_IsObject(root)) rc = mb_error_set("%s: header is not a JSON object", f->path);
    int cap = rc ? 0 : cJSON_GetArraySize(root);
    if (!rc) f->tensors = mb_calloc((size_t)cap, sizeof(mb_st_tensor), "tensor table");
    if (!rc && !f->tensors) rc = -1;
    for (const cJSON *j = rc ? NULL : root->child; j && !rc; j = j->next) {
        if (strcmp(j->string, "__metadata__") == 0)
            rc = mb_st_parse_metadata(f, j);
        else
            rc = mb_st_parse_tensor(f, &f->tensors[f->n++], j);
    }
    cJSON_Delete(root);
    return rc || mb_st_check_table(f) ? -1 : mb_st_parse_crc(f);
}

static int mb_st_read_header(mb_st_file *f)
{
    struct stat st;
    if (fstat(fileno(f->fp), &st) != 0)
        return mb_error_set("%s: cannot read: %s", f->path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return mb_error_set("%s: not a regular file", f->path);
    uint64_t size = (uint64_t)st.st_size;
    unsigned char lenbuf[8];
    if (size < 8 || fread(lenbuf, 1, 8, f->fp) != 8)
        return mb_error_set("%s: truncated file (%llu bytes; a safetensors file starts with an "
                            "8-byte header length)", f->path, (unsigned long long)size);
    uint64_t len = mb_le64(lenbuf);
    if (len < 2 || len > MB_ST_MAX_HEADER)
        return mb_error_set("%s: bad header length %llu (not a safetensors file?)", f->path,
                            (unsigned long long)len);
    if (len > size - 8)
        return mb_error_set("%s: truncated file: header of %llu bytes but only %llu follow",
                            f->path, (unsigned long long)len, (unsigned long long)(size - 8));
    f->data_start = 8 + len;
    f->data_size = size - f->data_start;
    char *text = mb_malloc((size_t)len + 1, "safetensors header");
    if (!text) return -1;
    int rc = 0;
    if (fread(text, 1, (size_t)len, f->fp) != (size_t)len)
        rc = mb_error_set("%s: cannot read the header: %s", f->path,
                          ferror(f->fp) ? strerror(errno) : "file shrank while reading");
    text[len] = '\0';
    if (!rc) rc = mb_st_parse_header(f, text, (size_t)len);
    free(text);
    return rc;
}

mb_st_file *mb_st_open(const char *path)
{
    mb_st_file *f = mb_calloc(1, sizeof *f, "safetensors file");
    if (!f) return NULL;
    f->path = mb_strdup(path, "path");
    if (!f->path) {
        free(f);
        return NULL;
    }
    /* before fopen, which waits forever on a FIFO nobody writes */
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        mb_error_set("%s: not a regular file", path);
        mb_st_close(f);
        return NULL;
    }
    f->fp = fopen(path, "rb");
    if (!f->fp) {
        mb_error_set("%s: cannot open: %s", path, strerror(errno));
        mb_st_close(f);
        return NULL;
    }
    if (mb_st_read_header(f)) {
        mb_st_close(f);
        return NULL;
    }
    return f;
}

void mb_st_close(mb_st_file *f)
{
    if (!f) return;
    if (f->fp) fclose(f->fp);
    for (int i = 0; i < f->n; i++) free(f->tensors[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->tensors);
    free(f->by_name);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->path);
    free(f);
}

const char *mb_st_path(const mb_st_file *f) { return f->path; }
int mb_st_count(const mb_st_file *f) { return f->n; }

const mb_st_tensor *mb_st_get(const mb_st_file *f, int i)
{
    return i >= 0 && i < f->n ? &f->tensors[i] : NULL;
}

const mb_st_tensor *mb_st_find(const mb_st_file *f, const char *name)
{
    int lo = 0, hi = f->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        const mb_st_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(t->name, name);
        if (c == 0) return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *mb_st_metadata(const mb_st_file *f, const char *key)
{
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

/* ---- reading: tensor data ---------------------------------------------- */

typedef int (*mb_st_convert_fn)(mb_st_file *f, const mb_st_tensor *t, const unsigned char *src,
                                size_t count, size_t first, void *dst);

static int mb_st_nonfinite(mb_st_file *f, const mb_st_tensor *t, size_t index)
{
    return mb_error_set("%s: tensor %s: non-finite value at index %zu", f->path, t->name, index);
}

static int mb_st_to_f32(mb_st_file *f, const mb_st_tensor *t, const unsigned char *src,
                        size_t count, size_t first, void *dstv)
{
    float *dst = (float *)dstv + first;
    for (size_t i = 0; i < count; i++) {
        float v;
        switch (t->dtype) {
        case MB_ST_F32: v = mb_bits_f32(mb_le32(src + 4 * i)); break;
        case MB_ST_F16: v = mb_half_to_f32(mb_le16(src + 2 * i)); break;
        case MB_ST_BF16: v = mb_bf16_to_f32(mb_le16(src + 2 * i)); break;
        default: v = (float)mb_f64_from_bits(mb_le64(src + 8 * i)); break;
        }
        /* F64 values beyond float range become inf here and are refused too */
        if (!isfinite(v)) return mb_st_nonfinite(f, t, first + i);
        dst[i] = v;
    }
    return 0;
}

static int mb_st_to_i64(mb_st_file *f, const mb_st_tensor *t, const unsigned char *src,
                        size_t count, size_t first, void *dstv)
{
    (void)f;
    int64_t *dst = (int64_t *)dstv + first;
    for (size_t i = 0; i < count; i++)
        dst[i] = t->dtype == MB_ST_I32 ? (int64_t)(int32_t)mb_le32(src + 4 * i)
                                       : (int64_t)mb_le64(src + 8 * i);
    return 0;
}

/* Stream the tensor's bytes through a bounded buffer and convert as we go. */
static int mb_st_stream(mb_st_file *f, const mb_st_tensor *t, void *dst, mb_st_convert_fn conv)
{
    size_t esize = mb_st_dtypes[t->dtype].size;
    if (fseeko(f->fp, (off_t)(f->data_start + t->begin), SEEK_SET) != 0)
        return mb_error_set("%s: tensor %s: cannot seek: %s", f->path, t->name, strerror(errno));
    size_t per_chunk = MB_ST_CHUNK / esize;
    unsigned char *buf = mb_malloc(MB_ST_CHUNK, "read buffer");
    if (!buf) return -1;
    int rc = 0;
    uint32_t crc = 0;
    for (size_t done = 0; done < t->numel && !rc;) {
        size_t count = t->numel - done < per_chunk ? t->numel - done : per_chunk;
        if (fread(buf, esize, count, f->fp) != count) {
            rc = mb_error_set("%s: tensor %s: cannot read: %s", f->path, t->name,
                              ferror(f->fp) ? strerror(errno) : "file shrank while reading");
        } else {
            /* the bytes as stored, before any conversion */
            if (t->has_crc) crc = mb_crc32(crc, buf, count * esize);
            rc = conv(f, t, buf, count, done, dst);
        }
        done += count;
    }
    free(buf);
    /* a damaged value can still be finite (one flipped exponent bit):
     * the checksum is what catches it */
    if (!rc && t->has_crc && crc != t->crc)
        rc = mb_error_set("%s: tensor %s: checksum mismatch (the file is damaged)", f->path, t->name);
    return rc;
}

static int mb_st_check_count(mb_st_file *f, const mb_st_tensor *t, size_t n)
{
    if (n != t->numel)
        return mb_error_set("%s: tensor %s has %zu elements, expected %zu", f->path, t->name,
                            t->numel, n);
    return 0;
}

int mb_st_read_f32(mb_st_file *f, const mb_st_tensor *t, float *dst, size_t n)
{
    if (t->dtype == MB_ST_I32 || t->dtype == MB_ST_I64)
        return mb_error_set("%s: tensor %s is %s, expected a floating-point tensor", f->path,
                            t->name, mb_st_dtypes[t->dtype].name);
    if (mb_st_check_count(f, t, n)) return -1;
    return mb_st_stream(f, t, dst, mb_st_to_f32);
}

int mb_st_read_i64(mb_st_file *f, const mb_st_tensor *t, int64_t *dst, size_t n)
{
    if (t->dtype != MB_ST_I32 && t->dtype != MB_ST_I64)
        return mb_error_set("%s: tensor %s is %s, expected an integer tensor", f->path, t->name,
                            mb_st_dtypes[t->dtype].name);
    if (mb_st_check_count(f, t, n)) return -1;
    return mb_st_stream(f, t, dst, mb_st_to_i64);
}

/* ---- writing ------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} mb_sbuf;

static void mb_sbuf_put(mb_sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void mb_sbuf_str(mb_sbuf *b, const char *s) { mb_sbuf_put(b, s, strlen(s)); }

static void mb_sbuf_u64(mb_sbuf *b, uint64_t v)
{
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    mb_sbuf_put(b, tmp, (size_t)n);
}

/* A JSON string literal: quotes, backslashes and control bytes escaped,
 * everything else (UTF-8 included) passed through. */
static void mb_sbuf_json_str(mb_sbuf *b, const char *s)
{
    mb_sbuf_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            mb_sbuf_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            mb_sbuf_put(b, esc, 6);
        } else {
            mb_sbuf_put(b, (const char *)&c, 1);
        }
    }
    mb_sbuf_put(b, "\"", 1);
}

static int mb_st_entry_bytes(const char *path, const mb_st_entry *e, uint64_t *bytes)
{
    if (!e->name || !*e->name || strcmp(e->name, "__metadata__") == 0)
        return mb_error_set("%s: cannot write: bad tensor name '%s'", path,
                            e->name ? e->name : "(null)");
    if (e->ndim < 0 || e->ndim > MB_ST_MAX_DIMS)
        return mb_error_set("%s: cannot write tensor %s: %d dimensions", path, e->name, e->ndim);
    uint64_t numel = 1;
    for (int d = 0; d < e->ndim; d++) {
        int64_t v = e->shape[d];
        if (v < 0 || (double)v >= MB_ST_MAX_INT || (v && numel > (uint64_t)(MB_ST_MAX_INT / 4) / (uint64_t)v))
            return mb_error_set("%s: cannot write tensor %s: bad shape", path, e->name);
        numel *= (uint64_t)v;
    }
    if (numel > SIZE_MAX / 4)
        return mb_error_set("%s: cannot write tensor %s: too large", path, e->name);
    if (numel && !e->data)
        return mb_error_set("%s: cannot write tensor %s: no data", path, e->name);
    *bytes = numel * 4;
    return 0;
}

static int mb_st_check_meta(const char *path, const char *const *meta, int *has_format)
{
    *has_format = 0;
    for (int i = 0; meta && meta[i]; i += 2) {
        if (!meta[i + 1])
            return mb_error_set("%s: cannot write: metadata key %s has no value", path, meta[i]);
        for (int k = 0; k < i; k += 2)
            if (strcmp(meta[k], meta[i]) == 0)
                return mb_error_set("%s: cannot write: metadata key %s given twice", path,
                                    meta[i]);
        *has_format |= strcmp(meta[i], "format") == 0;
        if (strcmp(meta[i], "crc32") == 0)
            return mb_error_set("%s: cannot write: metadata key crc32 is the writer's own", path);
    }
    return 0;
}

static void mb_st_header_meta(mb_sbuf *b, const char *const *meta, int has_format, const mb_st_entry *entries,
                              int n, const uint64_t *sizes)
{
    mb_sbuf_str(b, "{\"__metadata__\":{");
    int first = 1;
    if (!has_format) {
        mb_sbuf_str(b, "\"format\":\"pt\"");
        first = 0;
    }
    /* "crc32": a JSON object as a string value (metadata values are strings) */
    mb_sbuf crcs = {0};
    mb_sbuf_put(&crcs, "{", 1);
    for (int i = 0; i < n; i++) {
        char hex[16];
        snprintf(hex, sizeof hex, "%08x", (unsigned)mb_crc32(0, entries[i].data, (size_t)sizes[i]));
        if (i) mb_sbuf_put(&crcs, ",", 1);
        mb_sbuf_json_str(&crcs, entries[i].name);
        mb_sbuf_put(&crcs, ":", 1);
        mb_sbuf_json_str(&crcs, hex);
    }
    mb_sbuf_put(&crcs, "}", 1);
    if (!first) mb_sbuf_put(b, ",", 1);
    mb_sbuf_str(b, "\"crc32\":");
    if (crcs.oom) b->oom = 1;
    else mb_sbuf_json_str(b, crcs.s);
    free(crcs.s);
    first = 0;
    for (int i = 0; meta && meta[i]; i += 2) {
        if (!first) mb_sbuf_put(b, ",", 1);
        mb_sbuf_json_str(b, meta[i]);
        mb_sbuf_put(b, ":", 1);
        mb_sbuf_json_str(b, meta[i + 1]);
        first = 0;
    }
    mb_sbuf_put(b, "}", 1);
}

static void mb_st_header_entry(mb_sbuf *b, const mb_st_entry *e, uint64_t begin, uint64_t bytes)
{
    mb_sbuf_put(b, ",", 1);
    mb_sbuf_json_str(b, e->name);
    mb_sbuf_str(b, e->is_i32 ? ":{\"dtype\":\"I32\",\"shape\":[" : ":{\"dtype\":\"F32\",\"shape\":[");
    for (int d = 0; d < e->ndim; d++) {
        if (d) mb_sbuf_put(b, ",", 1);
        mb_sbuf_u64(b, (uint64_t)e->shape[d]);
    }
    mb_sbuf_str(b, "],\"data_offsets\":[");
    mb_sbuf_u64(b, begin);
    mb_sbuf_put(b, ",", 1);
    mb_sbuf_u64(b, begin + bytes);
    mb_sbuf_str(b, "]}");
}

/* The whole header, padded with spaces so the data starts 8-byte aligned. */
static int mb_st_build_header(const char *path, const mb_st_entry *entries, int n,
                              const char *const *meta, mb_sbuf *b, uint64_t *sizes)
{
    int has_format;
    if (mb_st_check_meta(path, meta, &has_format)) return -1;
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        if (mb_st_entry_bytes(path, &entries[i], &sizes[i])) return -1;
        for (int k = 0; k < i; k++)
            if (strcmp(entries[k].name, entries[i].name) == 0)
                return mb_error_set("%s: cannot write: tensor %s given twice", path,
                                    entries[i].name);
    }
    mb_st_header_meta(b, meta, has_format, entries, n, sizes);
    for (int i = 0; i < n; i++) {
        mb_st_header_entry(b, &entries[i], off, sizes[i]);
        off += sizes[i];
    }
    mb_sbuf_put(b, "}", 1);
    while (b->len % 8) mb_sbuf_put(b, " ", 1);
    if (b->oom) return mb_error_set("%s: cannot write: out of memory building the header", path);
    return 0;
}

static int mb_st_write_body(FILE *fp, const mb_sbuf *hdr, const mb_st_entry *entries, int n,
                            const uint64_t *sizes)
{
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)hdr->len >> (8 * i));
    if (fwrite(lenbuf, 1, 8, fp) != 8) return -1;
    if (fwrite(hdr->s, 1, hdr->len, fp) != hdr->len) return -1;
    for (int i = 0; i < n; i++)
        if (sizes[i] && fwrite(entries[i].data, 1, (size_t)sizes[i], fp) != (size_t)sizes[i])
            return -1;
    return 0; /* mb_outfile_commit flushes and syncs */
}

int mb_st_write(const char *path, const mb_st_entry *entries, int n, const char *const *meta)
{
    if (n < 0) return mb_error_set("%s: cannot write: %d tensors", path, n);
    mb_sbuf hdr = {0};
    uint64_t *sizes = mb_calloc((size_t)n, sizeof *sizes, "tensor sizes");
    int rc = !sizes ? -1 : mb_st_build_header(path, entries, n, meta, &hdr, sizes);
    mb_outfile *o = rc ? NULL : mb_outfile_open(path);
    if (!rc && !o) rc = -1;
    if (o) {
        errno = 0;
        if (mb_st_write_body(mb_outfile_fp(o), &hdr, entries, n, sizes)) {
            rc = mb_error_set("%s: write error (%s)", path, strerror(errno ? errno : EIO));
            mb_outfile_discard(o);
        } else {
            rc = mb_outfile_commit(o);
        }
    }
    free(hdr.s);
    free(sizes);
    return rc;
}

void mb_fmt_float(char *buf, size_t cap, float x)
{
    if (!isfinite(x)) {
        snprintf(buf, cap, "null");
        return;
    }
    /* the shortest %g that reads back as the same float: 0.001f prints as
     * 0.001, not as the double 0.0010000000474974513 */
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, cap, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    /* a locale may have written a decimal comma; JSON wants a point */
    for (char *p = buf; *p; p++)
        if (*p != '-' && *p != '+' && *p != 'e' && (*p < '0' || *p > '9')) *p = '.';
}
