#include "common/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/log.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 1},  [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},
    [ST_F8_E5M2] = {"F8_E5M2", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1},
    [ST_I16] = {"I16", 2},    [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2},  [ST_I32] = {"I32", 4}, [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},    [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},
};

const char *st_dtype_name(enum st_dtype d)
{
    return (unsigned)d < ST_DTYPE_COUNT ? dtypes[d].name : NULL;
}

size_t st_dtype_size(enum st_dtype d)
{
    return (unsigned)d < ST_DTYPE_COUNT ? dtypes[d].size : 0;
}

const char *safetensors_strerror(int rc)
{
    switch (rc) {
    case 0: return "success";
    case ST_ERR_IO: return "safetensors: file I/O failed (see the log for path and reason)";
    case ST_ERR_NOMEM: return "safetensors: out of memory";
    case ST_ERR_TRUNCATED: return "safetensors: file truncated (shorter than its header says)";
    case ST_ERR_HEADER_SIZE: return "safetensors: header length out of range";
    case ST_ERR_JSON: return "safetensors: header is not valid JSON of the safetensors schema";
    case ST_ERR_DTYPE: return "safetensors: unknown dtype";
    case ST_ERR_SHAPE: return "safetensors: shape does not match the tensor's byte size";
    case ST_ERR_OFFSETS: return "safetensors: data offsets out of bounds, overlapping or "
                                "leaving gaps";
    case ST_ERR_DUPLICATE: return "safetensors: duplicate tensor name or metadata key";
    case ST_ERR_ARG: return "safetensors: invalid tensor description";
    default: return "safetensors: unknown error";
    }
}

/* Byte size of a shape, or 0 with *ok = 0 on overflow. */
static uint64_t shape_bytes(const uint64_t *shape, int ndim, size_t esize, int *ok)
{
    uint64_t n = esize;
    *ok = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && n > UINT64_MAX / shape[i]) {
            *ok = 0;
            return 0;
        }
        n *= shape[i];
    }
    return n;
}

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF)
            n = 1, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            n = 2, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            n = 3, cp = c & 0x07;
        else
            return 0;
        if (len - i - 1 < n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* ---- writer ------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_puts(struct buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_put_json_string(struct buf *b, const char *s)
{
    buf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') {
            esc[0] = '\\', esc[1] = (char)*c;
            buf_put(b, esc, 2);
        } else if (*c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *c);
            buf_put(b, esc, 6);
        } else {
            buf_put(b, (const char *)c, 1);
        }
    }
    buf_put(b, "\"", 1);
}

struct key_ref {
    const char *key;
    long idx; /* tensor index, or -1 for "__metadata__" */
};

static int cmp_key_ref(const void *a, const void *b)
{
    return strcmp(((const struct key_ref *)a)->key, ((const struct key_ref *)b)->key);
}

static int cmp_meta_key(const void *a, const void *b)
{
    return strcmp(((const struct st_meta *)a)->key, ((const struct st_meta *)b)->key);
}

static int write_all(int fd, const void *data, uint64_t len)
{
    const uint8_t *p = data;
    while (len > 0) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
        ssize_t w = write(fd, p, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (uint64_t)w;
    }
    return 0;
}

int safetensors_write(const char *path, const struct st_tensor *tensors, size_t n_tensors,
                      const struct st_meta *meta, size_t n_meta, unsigned mode)
{
    if (!path || (n_tensors && !tensors) || (n_meta && !meta))
        return ST_ERR_ARG;
    for (size_t i = 0; i < n_tensors; i++) {
        const struct st_tensor *t = &tensors[i];
        int ok;
        if (!t->name || !t->name[0] || strcmp(t->name, "__metadata__") == 0 ||
            !utf8_valid((const uint8_t *)t->name, strlen(t->name)) ||
            (unsigned)t->dtype >= ST_DTYPE_COUNT || t->ndim < 0 || t->ndim > ST_MAX_DIMS)
            return ST_ERR_ARG;
        if (shape_bytes(t->shape, t->ndim, dtypes[t->dtype].size, &ok) != t->nbytes || !ok ||
            (t->nbytes && !t->data))
            return ST_ERR_ARG;
    }
    for (size_t i = 0; i < n_meta; i++)
        if (!meta[i].key || !meta[i].value ||
            !utf8_valid((const uint8_t *)meta[i].key, strlen(meta[i].key)) ||
            !utf8_valid((const uint8_t *)meta[i].value, strlen(meta[i].value)))
            return ST_ERR_ARG;

    int rc = 0;
    struct buf hdr = {0};
    size_t n_keys = n_tensors + (n_meta ? 1 : 0);
    struct key_ref *keys = calloc(n_keys ? n_keys : 1, sizeof *keys);
    struct st_meta *msorted = calloc(n_meta ? n_meta : 1, sizeof *msorted);
    uint64_t *begin = calloc(n_tensors ? n_tensors : 1, sizeof *begin);
    if (!keys || !msorted || !begin) {
        rc = ST_ERR_NOMEM;
        goto out;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n_tensors; i++) {
        keys[i].key = tensors[i].name, keys[i].idx = (long)i;
        begin[i] = off;
        off += tensors[i].nbytes;
    }
    if (n_meta)
        keys[n_tensors].key = "__metadata__", keys[n_tensors].idx = -1;
    qsort(keys, n_keys, sizeof *keys, cmp_key_ref);
    for (size_t i = 1; i < n_keys; i++)
        if (strcmp(keys[i - 1].key, keys[i].key) == 0) {
            rc = ST_ERR_DUPLICATE;
            goto out;
        }
    if (n_meta) {
        memcpy(msorted, meta, n_meta * sizeof *meta);
        qsort(msorted, n_meta, sizeof *msorted, cmp_meta_key);
    }
    for (size_t i = 1; i < n_meta; i++)
        if (strcmp(msorted[i - 1].key, msorted[i].key) == 0) {
            rc = ST_ERR_DUPLICATE;
            goto out;
        }

    buf_puts(&hdr, "{");
    for (size_t i = 0; i < n_keys; i++) {
        if (i)
            buf_puts(&hdr, ",");
        buf_put_json_string(&hdr, keys[i].key);
        buf_puts(&hdr, ":{");
        if (keys[i].idx < 0) {
            for (size_t j = 0; j < n_meta; j++) {
                if (j)
                    buf_puts(&hdr, ",");
                buf_put_json_string(&hdr, msorted[j].key);
                buf_puts(&hdr, ":");
                buf_put_json_string(&hdr, msorted[j].value);
            }
        } else {
            const struct st_tensor *t = &tensors[keys[i].idx];
            char num[64];
            buf_puts(&hdr, "\"dtype\":\"");
            buf_puts(&hdr, dtypes[t->dtype].name);
            buf_puts(&hdr, "\",\"shape\":[");
            for (int d = 0; d < t->ndim; d++) {
                snprintf(num, sizeof num, "%s%llu", d ? "," : "",
                         (unsigned long long)t->shape[d]);
                buf_puts(&hdr, num);
            }
            snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]",
                     (unsigned long long)begin[keys[i].idx],
                     (unsigned long long)(begin[keys[i].idx] + t->nbytes));
            buf_puts(&hdr, num);
        }
        buf_puts(&hdr, "}");
    }
    buf_puts(&hdr, "}");
    while (!hdr.oom && (8 + hdr.len) % 8 != 0)   /* out of memory, len stops growing */
        buf_puts(&hdr, " ");
    if (hdr.oom) {
        rc = ST_ERR_NOMEM;
        goto out;
    }
    if (hdr.len > ST_HEADER_MAX) {
        rc = ST_ERR_ARG;
        goto out;
    }

    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp) {
        rc = ST_ERR_ARG;
        goto out;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        log_error("safetensors: cannot create %s: %s", tmp, strerror(errno));
        rc = ST_ERR_IO;
        goto out;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hdr.len >> (8 * i));
    int e = write_all(fd, len8, 8);
    if (!e)
        e = write_all(fd, hdr.p, hdr.len);
    for (size_t i = 0; i < n_tensors && !e; i++)
        e = write_all(fd, tensors[i].data, tensors[i].nbytes);
    if (!e && fsync(fd) != 0)
        e = -errno;
    if (close(fd) != 0 && !e)
        e = -errno;
    if (!e && rename(tmp, path) != 0)
        e = -errno;
    if (e) {
        log_error("safetensors: writing %s failed: %s", path, strerror(-e));
        unlink(tmp);
        rc = ST_ERR_IO;
        goto out;
    }
    e = file_fsync_dir_of(path);
    if (e)
        log_warn("safetensors: fsync of the directory of %s failed: %s", path, strerror(-e));
out:
    free(hdr.p);
    free(keys);
    free(msorted);
    free(begin);
    return rc;
}

/* ---- reader ------------------------------------------------------------------- */

struct safetensors {
    const uint8_t *base; /* whole file */
    size_t len;
    void *map;           /* mmap'd region, or malloc'd copy, or NULL (caller's buffer) */
    int mapped;
    char *arena;         /* decoded strings */
    size_t arena_used, arena_cap;
    struct st_tensor *t;
    size_t n, cap;
    size_t *by_name;     /* tensor indices sorted by name */
    struct st_meta *meta;
    size_t n_meta, meta_cap;
};

struct parser {
    const uint8_t *s;
    size_t pos, len;
    struct safetensors *f;
};

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static int expect(struct parser *p, char c)
{
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != (uint8_t)c)
        return ST_ERR_JSON;
    p->pos++;
    return 0;
}

static int peek(struct parser *p)
{
    skip_ws(p);
    return p->pos < p->len ? p->s[p->pos] : -1;
}

static int hex4(const uint8_t *s, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Decodes a JSON string into the arena (NUL-terminated); rejects NUL characters. */
static int parse_string(struct parser *p, const char **out)
{
    if (expect(p, '"'))
        return ST_ERR_JSON;
    struct safetensors *f = p->f;
    char *dst = f->arena + f->arena_used;
    size_t start = f->arena_used, n = 0;
    for (;;) {
        if (p->pos >= p->len)
            return ST_ERR_JSON;
        uint8_t c = p->s[p->pos++];
        if (c == '"')
            break;
        if (c < 0x20)
            return ST_ERR_JSON;
        if (c != '\\') {
            dst[n++] = (char)c;
            continue;
        }
        if (p->pos >= p->len)
            return ST_ERR_JSON;
        c = p->s[p->pos++];
        switch (c) {
        case '"': case '\\': case '/': dst[n++] = (char)c; break;
        case 'b': dst[n++] = '\b'; break;
        case 'f': dst[n++] = '\f'; break;
        case 'n': dst[n++] = '\n'; break;
        case 'r': dst[n++] = '\r'; break;
        case 't': dst[n++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (p->len - p->pos < 4 || hex4(p->s + p->pos, &cp))
                return ST_ERR_JSON;
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return ST_ERR_JSON;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (p->len - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return ST_ERR_JSON;
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0)
                return ST_ERR_JSON;
            /* the encoded escape (6 or 12 bytes) is longer than its UTF-8 (<= 4) */
            if (cp < 0x80) {
                dst[n++] = (char)cp;
            } else if (cp < 0x800) {
                dst[n++] = (char)(0xC0 | (cp >> 6));
                dst[n++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                dst[n++] = (char)(0xE0 | (cp >> 12));
                dst[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                dst[n++] = (char)(0x80 | (cp & 0x3F));
            } else {
                dst[n++] = (char)(0xF0 | (cp >> 18));
                dst[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
                dst[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                dst[n++] = (char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            return ST_ERR_JSON;
        }
    }
    dst[n] = 0;
    f->arena_used = start + n + 1;
    *out = dst;
    return 0;
}

static int parse_u64(struct parser *p, uint64_t *out)
{
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] < '0' || p->s[p->pos] > '9')
        return ST_ERR_JSON;
    if (p->s[p->pos] == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' &&
        p->s[p->pos + 1] <= '9')
        return ST_ERR_JSON; /* leading zero */
    uint64_t v = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
        unsigned d = p->s[p->pos++] - '0';
        if (v > (UINT64_MAX - d) / 10)
            return ST_ERR_JSON;
        v = v * 10 + d;
    }
    if (p->pos < p->len && (p->s[p->pos] == '.' || p->s[p->pos] == 'e' || p->s[p->pos] == 'E'))
        return ST_ERR_JSON;
    *out = v;
    return 0;
}

/* [u64, ...] with at most max entries. */
static int parse_u64_array(struct parser *p, uint64_t *vals, int max, int *count)
{
    int rc;
    *count = 0;
    if ((rc = expect(p, '[')))
        return rc;
    if (peek(p) == ']') {
        p->pos++;
        return 0;
    }
    for (;;) {
        if (*count >= max)
            return ST_ERR_SHAPE;
        if ((rc = parse_u64(p, &vals[*count])))
            return rc;
        (*count)++;
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == ']') {
            p->pos++;
            return 0;
        }
        return ST_ERR_JSON;
    }
}

static int parse_metadata(struct parser *p)
{
    struct safetensors *f = p->f;
    int rc;
    if (f->meta)
        return ST_ERR_DUPLICATE; /* a second "__metadata__" */
    f->meta_cap = 8;
    f->meta = malloc(f->meta_cap * sizeof *f->meta);
    if (!f->meta)
        return ST_ERR_NOMEM;
    if ((rc = expect(p, '{')))
        return rc;
    if (peek(p) == '}') {
        p->pos++;
        return 0;
    }
    for (;;) {
        const char *k, *v;
        if ((rc = parse_string(p, &k)) || (rc = expect(p, ':')) || (rc = parse_string(p, &v)))
            return rc;
        if (f->n_meta == f->meta_cap) {
            struct st_meta *nm = realloc(f->meta, 2 * f->meta_cap * sizeof *nm);
            if (!nm)
                return ST_ERR_NOMEM;
            f->meta = nm, f->meta_cap *= 2;
        }
        f->meta[f->n_meta].key = k, f->meta[f->n_meta].value = v;
        f->n_meta++;
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == '}') {
            p->pos++;
            return 0;
        }
        return ST_ERR_JSON;
    }
}

static int parse_tensor(struct parser *p, const char *name, size_t data_len)
{
    struct safetensors *f = p->f;
    int rc;
    const char *dtype = NULL;
    uint64_t shape[ST_MAX_DIMS], offs[2];
    int ndim = -1, noffs = -1;
    if ((rc = expect(p, '{')))
        return rc;
    for (;;) {
        const char *k;
        if ((rc = parse_string(p, &k)) || (rc = expect(p, ':')))
            return rc;
        if (strcmp(k, "dtype") == 0 && !dtype) {
            if ((rc = parse_string(p, &dtype)))
                return rc;
        } else if (strcmp(k, "shape") == 0 && ndim < 0) {
            if ((rc = parse_u64_array(p, shape, ST_MAX_DIMS, &ndim)))
                return rc;
        } else if (strcmp(k, "data_offsets") == 0 && noffs < 0) {
            if ((rc = parse_u64_array(p, offs, 2, &noffs)))
                return rc == ST_ERR_SHAPE ? ST_ERR_OFFSETS : rc;
            if (noffs != 2)
                return ST_ERR_OFFSETS;
        } else {
            return ST_ERR_JSON; /* unknown or repeated field */
        }
        int c = peek(p);
        if (c == ',') {
            p->pos++;
            continue;
        }
        if (c == '}') {
            p->pos++;
            break;
        }
        return ST_ERR_JSON;
    }
    if (!dtype || ndim < 0 || noffs != 2)
        return ST_ERR_JSON;
    int d;
    for (d = 0; d < ST_DTYPE_COUNT; d++)
        if (strcmp(dtype, dtypes[d].name) == 0)
            break;
    if (d == ST_DTYPE_COUNT)
        return ST_ERR_DTYPE;
    int ok;
    uint64_t nbytes = shape_bytes(shape, ndim, dtypes[d].size, &ok);
    if (!ok)
        return ST_ERR_SHAPE;
    if (offs[0] > offs[1] || offs[1] > data_len)
        return ST_ERR_OFFSETS;
    if (offs[1] - offs[0] != nbytes)
        return ST_ERR_SHAPE;
    if (f->n == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        struct st_tensor *nt = realloc(f->t, cap * sizeof *nt);
        if (!nt)
            return ST_ERR_NOMEM;
        f->t = nt, f->cap = cap;
    }
    struct st_tensor *t = &f->t[f->n++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = (enum st_dtype)d;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->data = (const void *)(uintptr_t)offs[0]; /* offset for now; rebased at the end */
    t->nbytes = nbytes;
    return 0;
}

static int cmp_tensor_offset(const void *a, const void *b)
{
    const struct st_tensor *x = a, *y = b;
    uintptr_t xa = (uintptr_t)x->data, ya = (uintptr_t)y->data;
    if (xa != ya)
        return xa < ya ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : x->nbytes > y->nbytes;
}

struct name_ref {
    const char *name;
    size_t idx;
};

static int cmp_name_ref(const void *a, const void *b)
{
    return strcmp(((const struct name_ref *)a)->name, ((const struct name_ref *)b)->name);
}

static int parse_file(struct safetensors *f)
{
    if (f->len < 8)
        return ST_ERR_TRUNCATED;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)f->base[i] << (8 * i);
    if (hlen > ST_HEADER_MAX || hlen < 2)
        return ST_ERR_HEADER_SIZE;
    if (hlen > f->len - 8)
        return ST_ERR_TRUNCATED;
    const uint8_t *h = f->base + 8;
    if (!utf8_valid(h, (size_t)hlen))
        return ST_ERR_JSON;
    size_t data_len = f->len - 8 - (size_t)hlen;
    f->arena_cap = (size_t)hlen + 1;
    f->arena = malloc(f->arena_cap);
    if (!f->arena)
        return ST_ERR_NOMEM;

    struct parser p = {.s = h, .pos = 0, .len = (size_t)hlen, .f = f};
    int rc;
    if (h[0] != '{')
        return ST_ERR_JSON;
    if ((rc = expect(&p, '{')))
        return rc;
    if (peek(&p) == '}') {
        p.pos++;
    } else {
        for (;;) {
            const char *key;
            if ((rc = parse_string(&p, &key)) || (rc = expect(&p, ':')))
                return rc;
            if (strcmp(key, "__metadata__") == 0)
                rc = parse_metadata(&p);
            else
                rc = parse_tensor(&p, key, data_len);
            if (rc)
                return rc;
            int c = peek(&p);
            if (c == ',') {
                p.pos++;
                continue;
            }
            if (c == '}') {
                p.pos++;
                break;
            }
            return ST_ERR_JSON;
        }
    }
    skip_ws(&p);
    if (p.pos != p.len)
        return ST_ERR_JSON;

    /* The offsets must tile [0, data_len) exactly. */
    if (f->n)
        qsort(f->t, f->n, sizeof *f->t, cmp_tensor_offset);
    uint64_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        uint64_t b = (uint64_t)(uintptr_t)f->t[i].data;
        if (b != at)
            return ST_ERR_OFFSETS;
        at = b + f->t[i].nbytes;
    }
    if (at != data_len)
        return ST_ERR_OFFSETS;
    for (size_t i = 0; i < f->n; i++)
        f->t[i].data = h + hlen + (uintptr_t)f->t[i].data;

    /* Name index (also finds duplicates), and duplicate metadata keys, in
     * O(n log n): a hostile header may hold a million entries. */
    size_t nref = f->n > f->n_meta ? f->n : f->n_meta;
    struct name_ref *refs = malloc((nref ? nref : 1) * sizeof *refs);
    f->by_name = malloc((f->n ? f->n : 1) * sizeof *f->by_name);
    if (!refs || !f->by_name) {
        free(refs);
        return ST_ERR_NOMEM;
    }
    rc = 0;
    for (size_t i = 0; i < f->n_meta; i++)
        refs[i].name = f->meta[i].key, refs[i].idx = i;
    qsort(refs, f->n_meta, sizeof *refs, cmp_name_ref);
    for (size_t i = 1; i < f->n_meta; i++)
        if (strcmp(refs[i - 1].name, refs[i].name) == 0)
            rc = ST_ERR_DUPLICATE;
    for (size_t i = 0; i < f->n; i++)
        refs[i].name = f->t[i].name, refs[i].idx = i;
    qsort(refs, f->n, sizeof *refs, cmp_name_ref);
    for (size_t i = 0; i < f->n; i++) {
        f->by_name[i] = refs[i].idx;
        if (i && strcmp(refs[i - 1].name, refs[i].name) == 0)
            rc = ST_ERR_DUPLICATE;
    }
    free(refs);
    return rc;
}

int safetensors_parse(const void *buf, size_t len, struct safetensors **out)
{
    *out = NULL;
    if (!buf && len)
        return ST_ERR_ARG;
    struct safetensors *f = calloc(1, sizeof *f);
    if (!f)
        return ST_ERR_NOMEM;
    f->base = buf, f->len = len;
    int rc = parse_file(f);
    if (rc) {
        safetensors_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int safetensors_open(const char *path, struct safetensors **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        log_error("safetensors: cannot open %s: %s", path, strerror(errno));
        return ST_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_error("safetensors: %s is not a regular file", path);
        close(fd);
        return ST_ERR_IO;
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    int mapped = 0;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map != MAP_FAILED) {
            mapped = 1;
        } else {
            map = NULL;
            uint8_t *data;
            size_t got;
            close(fd);
            fd = -1;
            int e = file_read_all(path, SIZE_MAX - 1, &data, &got);
            if (e) {
                log_error("safetensors: cannot read %s: %s", path, strerror(-e));
                return ST_ERR_IO;
            }
            map = data, len = got;
        }
    }
    if (fd >= 0)
        close(fd);
    struct safetensors *f = calloc(1, sizeof *f);
    if (!f) {
        if (mapped)
            munmap(map, len);
        else
            free(map);
        return ST_ERR_NOMEM;
    }
    f->base = map, f->len = len, f->map = map, f->mapped = mapped;
    int rc = parse_file(f);
    if (rc) {
        log_debug("safetensors: %s rejected: %s", path, safetensors_strerror(rc));
        safetensors_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

void safetensors_close(struct safetensors *f)
{
    if (!f)
        return;
    if (f->map) {
        if (f->mapped)
            munmap(f->map, f->len);
        else
            free(f->map);
    }
    free(f->arena);
    free(f->t);
    free(f->by_name);
    free(f->meta);
    free(f);
}

size_t safetensors_count(const struct safetensors *f) { return f->n; }

const struct st_tensor *safetensors_tensor(const struct safetensors *f, size_t i)
{
    return i < f->n ? &f->t[i] : NULL;
}

const struct st_tensor *safetensors_find(const struct safetensors *f, const char *name)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->t[f->by_name[mid]].name, name);
        if (c == 0)
            return &f->t[f->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t safetensors_meta_count(const struct safetensors *f) { return f->n_meta; }

const struct st_meta *safetensors_meta_at(const struct safetensors *f, size_t i)
{
    return i < f->n_meta ? &f->meta[i] : NULL;
}

const char *safetensors_meta(const struct safetensors *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[i].key, key) == 0)
            return f->meta[i].value;
    return NULL;
}
