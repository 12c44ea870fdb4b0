/* Named-tensor layouts (model/layout.h): safetensors files <-> the flat fp32 vector,
 * and the hash that names a model. */
#include "model/layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/why.h"
#include "crypto/digest.h"
#include "model/model_hash.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data and the hashed flat vector are little-endian; this code "
               "copies host floats");

#define GPT2_PREFIX "transformer."
#define GPT2_PREFIX_LEN 12

static int dtype_ok(enum st_dtype d)
{
    return d == ST_F32 || d == ST_BF16 || d == ST_F16;
}

/* "[352, 128]" ("[]" for a scalar) into buf. */
static const char *shape_str(char *buf, size_t cap, int ndim, const uint64_t *shape)
{
    size_t n = 0;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int d = 0; d < ndim && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, d ? ", %llu" : "%llu",
                              (unsigned long long)shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

static int same_shape(int na, const uint64_t *a, int nb, const uint64_t *b)
{
    if (na != nb)
        return 0;
    for (int d = 0; d < na; d++)
        if (a[d] != b[d])
            return 0;
    return 1;
}

void model_layout_free(struct model_layout *L)
{
    if (!L)
        return;
    for (size_t i = 0; i < L->n_tensors; i++)
        free(L->tensors[i].name);
    free(L->tensors);
    memset(L, 0, sizeof *L);
}

int model_layout_gpt2(const struct gpt2_config *cfg, struct model_layout *out)
{
    memset(out, 0, sizeof *out);
    int nt = gpt2_num_tensors(cfg);
    if (nt == 0)
        return MODEL_ERR_CONFIG;
    out->tensors = calloc((size_t)nt, sizeof *out->tensors);
    if (!out->tensors)
        return MODEL_ERR_NOMEM;
    out->kind = MODEL_LAYOUT_GPT2;
    out->gpt2 = *cfg;
    for (int i = 0; i < nt; i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(cfg, i, &ti);
        struct model_tensor *t = &out->tensors[i];
        t->name = strdup(ti.name);
        if (!t->name) {
            model_layout_free(out);
            return MODEL_ERR_NOMEM;
        }
        out->n_tensors++;
        t->ndim = ti.ndim;
        for (int d = 0; d < ti.ndim; d++)
            t->shape[d] = (uint64_t)ti.shape[d];
        t->numel = ti.numel;
        t->offset = ti.offset;
        t->stored = ST_F32;
    }
    out->n_params = gpt2_num_params(cfg);
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: byte-wise order */
    return strcmp(((const struct model_tensor *)a)->name, ((const struct model_tensor *)b)->name);
}

int model_layout_named(const struct model_tensor *tensors, size_t n, struct model_layout *out,
                       char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return why_fail(why, cap, MODEL_ERR_FORMAT, "the model has no tensors");
    if (n > MODEL_LAYOUT_MAX_TENSORS)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "the model has %zu tensors; at most %d are allowed", n,
                        MODEL_LAYOUT_MAX_TENSORS);
    struct model_tensor *t = calloc(n, sizeof *t);
    if (!t)
        return MODEL_ERR_NOMEM;
    out->kind = MODEL_LAYOUT_NAMED;
    out->tensors = t;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const struct model_tensor *s = &tensors[i];
        size_t len = s->name ? strlen(s->name) : 0;
        char sh[160];
        if (len == 0) {
            rc = why_fail(why, cap, MODEL_ERR_FORMAT, "a tensor has an empty name");
        } else if (len > MODEL_NAME_MAX) {
            rc = why_fail(why, cap, MODEL_ERR_FORMAT,
                          "tensor %.64s... has a name of %zu bytes; at most %d are allowed",
                          s->name, len, MODEL_NAME_MAX);
        } else if (!dtype_ok(s->stored)) {
            const char *dn = st_dtype_name(s->stored);
            rc = why_fail(why, cap, MODEL_ERR_FORMAT,
                          "tensor %s is stored as %s; only F32, BF16 and F16 are accepted",
                          s->name, dn ? dn : "an unknown dtype");
        } else if (s->ndim < 0 || s->ndim > ST_MAX_DIMS) {
            rc = why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s has %d dimensions", s->name,
                          s->ndim);
        }
        if (rc)
            break;
        uint64_t numel = 1;
        for (int d = 0; d < s->ndim; d++) {
            if (s->shape[d] == 0) {
                numel = 0;
                break;
            }
            if (numel > MODEL_MAX_PARAMS / s->shape[d]) {
                numel = MODEL_MAX_PARAMS; /* too many: refused below */
                break;
            }
            numel *= s->shape[d];
        }
        if (numel == 0) {
            rc = why_fail(why, cap, MODEL_ERR_FORMAT,
                          "tensor %s is empty (shape %s); every tensor needs a value", s->name,
                          shape_str(sh, sizeof sh, s->ndim, s->shape));
            break;
        }
        if (numel >= MODEL_MAX_PARAMS - out->n_params) {
            rc = why_fail(why, cap, MODEL_ERR_FORMAT,
                          "the model has 2^36 parameters or more (at tensor %s); the flat "
                          "vector holds fewer", s->name);
            break;
        }
        t[i].name = strdup(s->name);
        if (!t[i].name) {
            rc = MODEL_ERR_NOMEM;
            break;
        }
        out->n_tensors++;
        t[i].ndim = s->ndim;
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
        for (int d = s->ndim; d < ST_MAX_DIMS; d++)
            t[i].shape[d] = 0;
        t[i].numel = numel;
        t[i].stored = s->stored;
        out->n_params += numel;
    }
    if (rc) {
        model_layout_free(out);
        return rc;
    }
    qsort(t, n, sizeof *t, cmp_tensor_name);
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(t[i - 1].name, t[i].name) == 0) {
            rc = why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s appears twice", t[i].name);
            model_layout_free(out);
            return rc;
        }
        t[i].offset = off;
        off += t[i].numel;
    }
    return 0;
}

int model_layout_from_safetensors(const struct safetensors *f, struct model_layout *out,
                                  char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!f)
        return MODEL_ERR_ARG;
    size_t n = safetensors_count(f);
    if (n == 0)
        return why_fail(why, cap, MODEL_ERR_FORMAT, "the file holds no tensors");
    if (n > MODEL_LAYOUT_MAX_TENSORS)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "the file holds %zu tensors; at most %d are allowed", n,
                        MODEL_LAYOUT_MAX_TENSORS);
    struct model_tensor *d = calloc(n, sizeof *d);
    if (!d)
        return MODEL_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct st_tensor *s = safetensors_tensor(f, i);
        d[i].name = (char *)s->name; /* copied by model_layout_named */
        d[i].ndim = s->ndim;
        memcpy(d[i].shape, s->shape, sizeof d[i].shape);
        d[i].stored = s->dtype;
    }
    int rc = model_layout_named(d, n, out, why, cap);
    free(d);
    return rc;
}

int model_layout_compare(const struct model_layout *a, const struct model_layout *b,
                         char *why, size_t cap)
{
    if (!a || !b)
        return MODEL_ERR_ARG;
    char sa[160], sb[160];
    for (size_t i = 0; i < a->n_tensors; i++) {
        const struct model_tensor *ta = &a->tensors[i];
        long j = model_layout_find(b, ta->name);
        if (j < 0)
            return why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s is missing", ta->name);
        const struct model_tensor *tb = &b->tensors[j];
        if (!same_shape(ta->ndim, ta->shape, tb->ndim, tb->shape))
            return why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s has shape %s; the model's is %s",
                            ta->name, shape_str(sb, sizeof sb, tb->ndim, tb->shape),
                            shape_str(sa, sizeof sa, ta->ndim, ta->shape));
    }
    for (size_t j = 0; j < b->n_tensors; j++)
        if (model_layout_find(a, b->tensors[j].name) < 0)
            return why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s is not in the model",
                            b->tensors[j].name);
    if (a->n_tensors != b->n_tensors) /* only names differing by "transformer." are left */
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "the layouts have %zu and %zu tensors", a->n_tensors, b->n_tensors);
    if (a->kind != b->kind)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "one layout is the built-in GPT-2 (gpt2.h order), the other a named "
                        "model (sorted by name)");
    for (size_t i = 0; i < a->n_tensors; i++)
        if (strcmp(a->tensors[i].name, b->tensors[i].name) != 0)
            return why_fail(why, cap, MODEL_ERR_FORMAT,
                            "the tensors are in another order (position %zu: %s, %s)", i,
                            a->tensors[i].name, b->tensors[i].name);
    return 0;
}

long model_layout_find(const struct model_layout *L, const char *name)
{
    if (!L || !name)
        return -1;
    if (L->kind == MODEL_LAYOUT_NAMED) {
        size_t lo = 0, hi = L->n_tensors;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = strcmp(L->tensors[mid].name, name);
            if (c == 0)
                return (long)mid;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        return -1;
    }
    if (strncmp(name, GPT2_PREFIX, GPT2_PREFIX_LEN) == 0)
        name += GPT2_PREFIX_LEN;
    for (size_t i = 0; i < L->n_tensors; i++)
        if (strcmp(L->tensors[i].name, name) == 0)
            return (long)i;
    return -1;
}

/* ---- conversion ------------------------------------------------------------------- */

/* IEEE binary16 to binary32, exactly (subnormals renormalized; Inf and NaN kept, the
 * NaN payload shifted into the top of the fp32 mantissa). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) {
                man <<= 1;
                exp--;
            }
            bits = sign | (exp << 23) | ((man & 0x3FF) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int model_tensor_to_f32(const struct st_tensor *t, uint64_t first, uint64_t n, float *dst)
{
    size_t es = st_dtype_size(t->dtype);
    if (!dtype_ok(t->dtype) || es == 0 || first > t->nbytes / es ||
        n > t->nbytes / es - first)
        return MODEL_ERR_FORMAT;
    const uint8_t *src = (const uint8_t *)t->data + first * es;
    if (t->dtype == ST_F32) {
        memcpy(dst, src, n * 4);
        return 0;
    }
    for (uint64_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
        if (t->dtype == ST_F16) {
            dst[i] = half_to_float(v);
        } else {
            uint32_t bits = (uint32_t)v << 16;
            memcpy(&dst[i], &bits, 4);
        }
    }
    return 0;
}

/* ---- reading ---------------------------------------------------------------------- */

/* The file's tensor for L's tensor i (for GPT-2 also under "transformer."), or NULL. */
static const struct st_tensor *file_tensor(const struct model_layout *L, const struct safetensors *f,
                                           size_t i)
{
    const char *name = L->tensors[i].name;
    const struct st_tensor *t = safetensors_find(f, name);
    if (t || L->kind != MODEL_LAYOUT_GPT2)
        return t;
    char prefixed[GPT2_PREFIX_LEN + MODEL_NAME_MAX + 1];
    snprintf(prefixed, sizeof prefixed, GPT2_PREFIX "%s", name);
    return safetensors_find(f, prefixed);
}

int model_read_tensors(const struct model_layout *L, const struct safetensors *f, float *flat,
                       char *why, size_t cap)
{
    if (!L || !f || !flat)
        return MODEL_ERR_ARG;
    char sa[160], sb[160];
    for (size_t i = 0; i < L->n_tensors; i++) {
        const struct model_tensor *m = &L->tensors[i];
        const struct st_tensor *t = file_tensor(L, f, i);
        if (!t)
            return why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s is missing", m->name);
        if (!same_shape(m->ndim, m->shape, t->ndim, t->shape))
            return why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s has shape %s; the model's is %s",
                            m->name, shape_str(sb, sizeof sb, t->ndim, t->shape),
                            shape_str(sa, sizeof sa, m->ndim, m->shape));
        if (!dtype_ok(t->dtype)) {
            const char *dn = st_dtype_name(t->dtype);
            return why_fail(why, cap, MODEL_ERR_FORMAT,
                            "tensor %s is stored as %s; only F32, BF16 and F16 are accepted",
                            m->name, dn ? dn : "an unknown dtype");
        }
        float *dst = flat + m->offset;
        if (model_tensor_to_f32(t, 0, m->numel, dst) != 0)
            return why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s: its data does not match its "
                            "shape", m->name);
        for (uint64_t k = 0; k < m->numel; k++)
            if (!isfinite(dst[k]))
                return why_fail(why, cap, MODEL_ERR_NONFINITE,
                                "tensor %s holds %s at index %llu (row-major); every value must "
                                "be finite", m->name, isnan(dst[k]) ? "NaN" : "infinity",
                                (unsigned long long)k);
    }
    size_t nf = safetensors_count(f);
    if (nf == L->n_tensors)
        return 0; /* every tensor of L found, each under one name: no extra one */
    for (size_t j = 0; j < nf; j++) {
        const char *name = safetensors_tensor(f, j)->name;
        long i = model_layout_find(L, name);
        if (i < 0)
            return why_fail(why, cap, MODEL_ERR_FORMAT, "tensor %s is not in the model", name);
        if (strcmp(name, L->tensors[i].name) != 0 && safetensors_find(f, L->tensors[i].name))
            /* GPT-2: under "transformer." and also under the bare name */
            return why_fail(why, cap, MODEL_ERR_FORMAT,
                            "tensor %s is in the file twice (also as %s)", L->tensors[i].name,
                            name);
    }
    return why_fail(why, cap, MODEL_ERR_FORMAT, "the file holds %zu tensors; the model has %zu",
                    nf, L->n_tensors);
}

/* ---- writing ---------------------------------------------------------------------- */

int model_write_safetensors(const char *path, const struct model_layout *L, const float *flat,
                            const struct st_meta *meta, size_t n_meta, unsigned mode)
{
    if (!path || !L || !flat || L->n_tensors == 0 || (n_meta && !meta))
        return MODEL_ERR_ARG;
    for (size_t k = 0; k < n_meta; k++)
        if (!meta[k].key || strcmp(meta[k].key, "format") == 0)
            return MODEL_ERR_ARG; /* "format" is ours: "pt", which transformers requires */
    struct st_tensor *t = calloc(L->n_tensors, sizeof *t);
    struct st_meta *m = calloc(n_meta + 1, sizeof *m);
    if (!t || !m) {
        free(t);
        free(m);
        return MODEL_ERR_NOMEM;
    }
    for (size_t i = 0; i < L->n_tensors; i++) {
        const struct model_tensor *s = &L->tensors[i];
        t[i].name = s->name;
        t[i].dtype = ST_F32;
        t[i].ndim = s->ndim;
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
        t[i].data = flat + s->offset;
        t[i].nbytes = s->numel * 4;
    }
    m[0].key = "format";
    m[0].value = "pt";
    if (n_meta)
        memcpy(m + 1, meta, n_meta * sizeof *m);
    int rc = safetensors_write(path, t, L->n_tensors, m, n_meta + 1, mode);
    free(t);
    free(m);
    return rc;
}

/* ---- hash --------------------------------------------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

void model_layout_hash(const struct model_layout *L, const float *flat, uint8_t out[32])
{
    if (L->kind == MODEL_LAYOUT_GPT2) {
        model_hash(flat, (size_t)L->n_params, out);
        return;
    }
    struct crypto_digest_state s;
    (void)crypto_digest_init(&s, MODEL_HASH_DOMAIN_NAMED); /* "aulac/model/v2" 0x00 */
    uint8_t buf[8];
    put_be(buf, (uint32_t)L->n_tensors, 4);
    crypto_digest_update(&s, buf, 4);
    for (size_t i = 0; i < L->n_tensors; i++) {
        const struct model_tensor *t = &L->tensors[i];
        size_t len = strlen(t->name);
        put_be(buf, (uint16_t)len, 2);
        crypto_digest_update(&s, buf, 2);
        crypto_digest_update(&s, t->name, len);
        buf[0] = (uint8_t)t->ndim;
        crypto_digest_update(&s, buf, 1);
        for (int d = 0; d < t->ndim; d++) {
            put_be(buf, t->shape[d], 8);
            crypto_digest_update(&s, buf, 8);
        }
    }
    /* the flat vector as stored in memory: little-endian fp32 (asserted above) */
    crypto_digest_update(&s, flat, (size_t)L->n_params * sizeof(float));
    crypto_digest_final(&s, out);
}
