/* safetensors files: 8-byte little-endian header length, a JSON header
 * {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}},
 * then the raw tensor bytes (little-endian). Reading validates the whole
 * header against the file size before any tensor is used, and reads tensor
 * bytes on demand; writing goes through mb_outfile (a temporary file beside
 * PATH, synced, then renamed over it), so PATH is either the old file or the
 * complete new one. */
#ifndef MB_SAFETENSORS_H
#define MB_SAFETENSORS_H

#include "core/core.h"

typedef enum { MB_ST_F32 = 0, MB_ST_F16, MB_ST_BF16, MB_ST_F64, MB_ST_I32, MB_ST_I64 } mb_st_dtype;

#define MB_ST_MAX_DIMS 8

typedef struct {
    char *name;
    mb_st_dtype dtype;
    int ndim;
    int64_t shape[MB_ST_MAX_DIMS];
    size_t numel;
    uint64_t begin, end; /* byte offsets into the data section */
    int has_crc;         /* the file's "crc32" metadata names this tensor: */
    uint32_t crc;        /* CRC-32 (zlib's) of its bytes as stored */
} mb_st_tensor;

typedef struct mb_st_file mb_st_file;

/* Open and validate: errors read "PATH: what went wrong" (truncated file,
 * bad header length or JSON, unknown dtype, shape/offset mismatch, offsets
 * outside the file, overlapping tensors, duplicate names). The file stays
 * open until mb_st_close. */
mb_st_file *mb_st_open(const char *path);
void mb_st_close(mb_st_file *f);
const char *mb_st_path(const mb_st_file *f);
int mb_st_count(const mb_st_file *f);
const mb_st_tensor *mb_st_get(const mb_st_file *f, int i);
const mb_st_tensor *mb_st_find(const mb_st_file *f, const char *name);
/* __metadata__ value, or NULL when absent. */
const char *mb_st_metadata(const mb_st_file *f, const char *key);
/* Read a tensor converted to float32 (from F32, F16, BF16 or F64) into
 * host memory dst of n floats (n must equal numel); refuses NaN or Inf
 * (F64 beyond float range included): "PATH: tensor NAME: non-finite value
 * at index I". A tensor with a checksum in the file (our writer puts one on
 * every tensor) is checked against it: "PATH: tensor NAME: checksum
 * mismatch (the file is damaged)". On failure dst may be partly written. */
int mb_st_read_f32(mb_st_file *f, const mb_st_tensor *t, float *dst, size_t n);
/* Integer tensors (I32 or I64) into int64. */
int mb_st_read_i64(mb_st_file *f, const mb_st_tensor *t, int64_t *dst, size_t n);

/* Writer: tensors are float32 host arrays, or int32 when is_i32. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[MB_ST_MAX_DIMS];
    const void *data;
    int is_i32;
} mb_st_entry;

/* meta: NULL-terminated list of key, value, key, value, ..., NULL (or NULL).
 * __metadata__ comes first, with "format": "pt" unless meta gives "format",
 * and "crc32": {"NAME": "8 hex digits", ...}, each tensor's CRC-32 as
 * written (corruption shows on load); tensors follow in the order given. Errors: "PATH: cannot create a file in
 * its directory (reason)", "PATH: write error (reason)". */
int mb_st_write(const char *path, const mb_st_entry *entries, int n, const char *const *meta);
/* zlib's CRC-32 of n bytes continued from crc (0 to start), any length. */
uint32_t mb_crc32(uint32_t crc, const void *p, size_t n);

/* The shortest decimal that reads back as x ("null" if not finite), for
 * float fields in JSON: 1e-3f prints 0.001, not 0.0010000000474974513. */
void mb_fmt_float(char *buf, size_t cap, float x);

/* Model config <-> mamba_ssm's config.json fields (+ "arch": "mamba-lm" and
 * ssm_cfg "init"). Unknown fields are ignored; missing ones take mamba_ssm
 * defaults; dt_rank may be "auto". What we would not run as mamba_ssm does
 * is refused: Mamba2 layers, MLP blocks (d_intermediate > 0), attention
 * layers, projection biases, a conv1d without bias, another "arch", wrong
 * JSON types. Ends with mb_config_check; cfg is written only on success.
 * Errors read "config: ..." (the caller prefixes the file). */
char *mb_config_to_json(const mb_config *cfg); /* malloc'd */
int mb_config_from_json(const char *json, mb_config *cfg);

#endif
