#ifndef AULAC_COMMON_SAFETENSORS_H
#define AULAC_COMMON_SAFETENSORS_H
/* safetensors files (https://github.com/huggingface/safetensors):
 *
 *   u64 little-endian N | N bytes of JSON header | data
 *
 * The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the start of data) and may hold "__metadata__", a map of
 * string to string.
 *
 * Writing: keys are emitted in byte-wise sorted order, the data in the order the
 * caller lists the tensors, the header padded with spaces to a multiple of 8 so the
 * data is 8-byte aligned. The file appears atomically (tmp file, fsync, rename).
 *
 * Reading treats the file as hostile: the header is at most ST_HEADER_MAX bytes,
 * valid UTF-8 JSON of exactly this schema (unknown fields, duplicate names, numbers
 * that are not plain non-negative integers, more than ST_MAX_DIMS dimensions are
 * rejected); every tensor's byte size must equal its shape times its dtype size
 * without overflow, and the offsets must tile the data region exactly: no tensor
 * outside it, no overlap, no gap, no trailing bytes (the rule of the reference
 * implementation).
 *
 * Errors: ST_ERR_* in -1480..-1499 (the model range, model/errors.h), described by
 * safetensors_strerror(). */
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_HEADER_MAX (16u << 20) /* 16 MiB */

enum st_error {
    ST_ERR_FIRST = -1480,
    ST_ERR_IO = -1480,          /* open/read/write/rename failed (logged with errno) */
    ST_ERR_NOMEM = -1481,
    ST_ERR_TRUNCATED = -1482,   /* shorter than 8 bytes, or the header runs past the end */
    ST_ERR_HEADER_SIZE = -1483, /* header length over ST_HEADER_MAX, or under 2 */
    ST_ERR_JSON = -1484,        /* header not valid UTF-8 JSON of the safetensors schema */
    ST_ERR_DTYPE = -1485,       /* unknown dtype */
    ST_ERR_SHAPE = -1486,       /* too many dims, or byte size != numel * dtype size */
    ST_ERR_OFFSETS = -1487,     /* data offsets out of bounds, overlapping or leaving gaps */
    ST_ERR_DUPLICATE = -1488,   /* a tensor name or metadata key appears twice */
    ST_ERR_ARG = -1489,         /* writer: invalid tensor description */
    ST_ERR_LAST = -1499,
};

enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E5M2, ST_F8_E4M3, ST_I16, ST_U16, ST_F16, ST_BF16,
    ST_I32, ST_U32, ST_F32, ST_F64, ST_I64, ST_U64,
    ST_DTYPE_COUNT
};

struct st_tensor {
    const char *name;     /* UTF-8, no NUL */
    enum st_dtype dtype;
    int ndim;             /* 0 (scalar) .. ST_MAX_DIMS */
    uint64_t shape[ST_MAX_DIMS];
    const void *data;     /* reader: into the file's bytes; not aligned in general */
    uint64_t nbytes;      /* product of shape times dtype size */
};

struct st_meta {
    const char *key, *value;
};

const char *st_dtype_name(enum st_dtype d); /* "F32"...; NULL when out of range */
size_t st_dtype_size(enum st_dtype d);      /* bytes per element; 0 when out of range */

/* Writes path atomically with file mode `mode` (e.g. 0644). Every tensor needs a
 * non-empty unique name, a known dtype, 0..ST_MAX_DIMS dims and nbytes equal to the
 * shape's byte size; metadata keys must be unique and not "__metadata__".
 * ST_ERR_ARG, ST_ERR_DUPLICATE, ST_ERR_NOMEM, ST_ERR_IO (logged). */
int safetensors_write(const char *path, const struct st_tensor *tensors, size_t n_tensors,
                      const struct st_meta *meta, size_t n_meta, unsigned mode);

/* A parsed, validated file. */
struct safetensors;

/* Maps path read-only (reads it into memory where mmap is not possible) and
 * validates it. The file must not be modified in place while open (writers here
 * replace files by rename, which is safe). ST_ERR_* ; *out NULL on error. */
int safetensors_open(const char *path, struct safetensors **out);

/* Validates buf[len], which the caller keeps alive and unchanged until close. */
int safetensors_parse(const void *buf, size_t len, struct safetensors **out);

void safetensors_close(struct safetensors *f);

/* Tensors in data order (ascending offsets). Pointers valid until close. */
size_t safetensors_count(const struct safetensors *f);
const struct st_tensor *safetensors_tensor(const struct safetensors *f, size_t i);
/* By exact name; NULL when absent. */
const struct st_tensor *safetensors_find(const struct safetensors *f, const char *name);

/* "__metadata__" entries, in header order. Valid until close. */
size_t safetensors_meta_count(const struct safetensors *f);
const struct st_meta *safetensors_meta_at(const struct safetensors *f, size_t i);
/* Value of a metadata key; NULL when absent. */
const char *safetensors_meta(const struct safetensors *f, const char *key);

const char *safetensors_strerror(int rc);

#endif
