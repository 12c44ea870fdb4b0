#include "policies/model_source.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/json.h"
#include "common/safetensors.h"
#include "common/why.h"
#include "crypto/digest.h"
#include "model/hf_config.h"

/* --- resolver ---------------------------------------------------------------- */

/* f->file is what the policy parser accepts (policies/README.md, model): relative, no
 * "..", checked again here since a struct policy may come from anywhere. */
static bool safe_relative(const char *file)
{
    if (!file[0] || file[0] == '/')
        return false;
    for (const char *c = file; *c;) {
        size_t n = strcspn(c, "/");
        if (n == 0 || (n == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        c += n + (c[n] == '/');
    }
    return true;
}

int policy_file_next_to(void *dir, const char *key, const struct policy_file *f, char *path,
                        size_t cap, char *why, size_t why_cap)
{
    const char *d = dir;
    if (!key || !f || !f->present || !path || cap == 0)
        return why_fail(why, why_cap, POLICY_ERR_ARG, "%s: not given", key ? key : "?");
    if (!safe_relative(f->file))
        return why_fail(why, why_cap, POLICY_ERR_INVALID, "%s: %s is no relative path below "
                        "the policy's directory", key, f->file);
    int n = d && d[0] ? snprintf(path, cap, "%s/%s", d, f->file)
                      : snprintf(path, cap, "%s", f->file);
    if (n < 0 || (size_t)n >= cap)
        return why_fail(why, why_cap, POLICY_ERR_IO, "%s: the path of %s is too long", key,
                        f->file);
    struct stat st;
    if (stat(path, &st) != 0)
        return why_fail(why, why_cap, POLICY_ERR_IO, "%s: %s: %s (the file lies next to the "
                        "policy file, at its path relative to the policy's directory)", key,
                        path, strerror(errno));
    return 0;
}

/* --- a pinned file, hashed ---------------------------------------------------- */

/* A pinned file mapped read-only; its bytes hashed and equal to the pin. The bytes
 * parsed are the bytes hashed (one mapping of one open file; a file replaced by rename
 * meanwhile is not seen, and files are never modified in place here). */
struct pinned {
    const char *key;
    char path[4096];
    const uint8_t *bytes;
    size_t len;
};

static void pinned_close(struct pinned *f)
{
    if (f->bytes && f->len)
        munmap((void *)f->bytes, f->len);
    f->bytes = NULL;
    f->len = 0;
}

/* Finds, maps and hashes the file pinned at key (max bytes, 0: any size). 0, or
 * POLICY_ERR_IO / POLICY_ERR_INVALID / POLICY_ERR_ARG with why naming key and file. */
static int pinned_open(const char *key, const struct policy_file *pin, size_t max,
                       policy_file_resolver find, void *ctx, struct pinned *out, char *why,
                       size_t cap)
{
    memset(out, 0, sizeof *out);
    out->key = key;
    if (!find)
        return why_fail(why, cap, POLICY_ERR_ARG, "%s: no way to find %s (no resolver)", key,
                        pin->file);
    char detail[512] = "";
    if (find(ctx, key, pin, out->path, sizeof out->path, detail, sizeof detail) != 0)
        return why_fail(why, cap, POLICY_ERR_IO, "%s", detail[0] ? detail : key);
    int fd = open(out->path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return why_fail(why, cap, POLICY_ERR_IO, "%s: %s: %s", key, out->path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = why_fail(why, cap, POLICY_ERR_IO, "%s: %s: %s", key, out->path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = why_fail(why, cap, POLICY_ERR_IO, "%s: %s is not a regular file", key, out->path);
    else if (max && (uint64_t)st.st_size > max)
        rc = why_fail(why, cap, POLICY_ERR_INVALID, "%s: %s has %lld bytes, more than the %zu "
                      "such a file may have", key, out->path, (long long)st.st_size, max);
    else if ((uint64_t)st.st_size > SIZE_MAX)
        rc = why_fail(why, cap, POLICY_ERR_INVALID, "%s: %s is too large", key, out->path);
    if (rc == 0 && st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            rc = why_fail(why, cap, POLICY_ERR_IO, "%s: %s: %s", key, out->path,
                          strerror(errno));
        else {
            out->bytes = m;
            out->len = (size_t)st.st_size;
        }
    }
    close(fd);
    if (rc)
        return rc;
    if (crypto_init() != 0) {
        pinned_close(out);
        return why_fail(why, cap, POLICY_ERR_NOMEM, "%s: libsodium did not start", key);
    }
    /* hashed through the mapping, never a copy of the file */
    uint8_t got[32];
    crypto_blake2b256(out->bytes, out->len, got);
    if (!crypto_equal(got, pin->blake2b, 32)) {
        char have[65], want[65];
        hex_encode(got, 32, have);
        hex_encode(pin->blake2b, 32, want);
        pinned_close(out);
        return why_fail(why, cap, POLICY_ERR_INVALID, "%s: %s has BLAKE2b-256 %s, the policy "
                        "pins %s", key, pin->file, have, want);
    }
    return 0;
}

/* The pinned file parsed as safetensors into *st (which borrows f's bytes). */
static int pinned_safetensors(const struct pinned *f, const char *file,
                              struct safetensors **st, char *why, size_t cap)
{
    static const uint8_t empty[1];
    int rc = safetensors_parse(f->len ? f->bytes : empty, f->len, st);
    if (rc != 0)
        return why_fail(why, cap, POLICY_ERR_INVALID, "%s: %s is no valid safetensors file: "
                        "%s", f->key, file, safetensors_strerror(rc));
    return 0;
}

/* --- layouts ------------------------------------------------------------------ */

static void gpt2_config_of(const struct policy_model *m, struct gpt2_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->vocab_size = (int)m->vocab_size;
    cfg->max_seq_len = (int)m->n_positions;
    cfg->n_layer = (int)m->n_layer;
    cfg->n_head = (int)m->n_head;
    cfg->n_embd = (int)m->n_embd;
}

static const char *shape_text(const uint64_t *shape, int ndim, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int d = 0; d < ndim && o < cap; d++)
        o += (size_t)snprintf(out + o, cap - o, "%s%llu", d ? ", " : "",
                              (unsigned long long)shape[d]);
    if (o < cap)
        snprintf(out + o, cap - o, "]");
    return out;
}

/* gpt2 + init: the file holds exactly L's tensors (names with or without the
 * "transformer." prefix, model_layout_find's rule, each once), L's shapes, dtypes F32,
 * BF16 or F16; L's stored dtypes become the file's. The values are read (and checked)
 * by model_read_tensors. */
static int gpt2_init_matches(struct model_layout *L, const struct safetensors *st,
                             const char *file, char *why, size_t cap)
{
    size_t n = safetensors_count(st);
    unsigned char *seen = calloc(L->n_tensors ? L->n_tensors : 1, 1);
    if (!seen)
        return why_fail(why, cap, POLICY_ERR_NOMEM, "model.init: out of memory");
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct st_tensor *t = safetensors_tensor(st, i);
        long k = model_layout_find(L, t->name);
        char a[160], b[160];
        if (k < 0)
            rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s holds tensor %s, "
                          "which is not in the GPT-2 of the policy's sizes", file, t->name);
        else if (seen[k])
            rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s holds tensor %s "
                          "twice (with and without the transformer. prefix)", file,
                          L->tensors[k].name);
        else if (t->ndim != L->tensors[k].ndim ||
                 memcmp(t->shape, L->tensors[k].shape, sizeof(uint64_t) * (size_t)t->ndim))
            rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s: tensor %s has shape "
                          "%s; the GPT-2 of the policy's sizes has %s", file, t->name,
                          shape_text(t->shape, t->ndim, a, sizeof a),
                          shape_text(L->tensors[k].shape, L->tensors[k].ndim, b, sizeof b));
        else if (t->dtype != ST_F32 && t->dtype != ST_BF16 && t->dtype != ST_F16)
            rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s: tensor %s has dtype "
                          "%s; F32, BF16 or F16 are read", file, t->name,
                          st_dtype_name(t->dtype) ? st_dtype_name(t->dtype) : "?");
        else {
            seen[k] = 1;
            L->tensors[k].stored = t->dtype;
        }
    }
    for (size_t k = 0; k < L->n_tensors && rc == 0; k++)
        if (!seen[k])
            rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s lacks tensor %s of "
                          "the GPT-2 of the policy's sizes", file, L->tensors[k].name);
    free(seen);
    return rc;
}

/* The layout of p given its opened init (NULL for gpt2 without init). */
static int layout_of(const struct policy *p, const struct safetensors *init,
                     struct model_layout *out, char *why, size_t cap)
{
    const struct policy_model *m = &p->model;
    if (m->family == POLICY_FAMILY_GPT2) {
        struct gpt2_config cfg;
        gpt2_config_of(m, &cfg);
        int rc = model_layout_gpt2(&cfg, out);
        if (rc == MODEL_ERR_NOMEM)
            return why_fail(why, cap, POLICY_ERR_NOMEM, "model: out of memory");
        if (rc != 0)
            return why_fail(why, cap, POLICY_ERR_INVALID, "model: vocab_size %u, n_positions "
                            "%u, n_layer %u, n_head %u, n_embd %u are no GPT-2 the trainer "
                            "builds", m->vocab_size, m->n_positions, m->n_layer, m->n_head,
                            m->n_embd);
        if (init && (rc = gpt2_init_matches(out, init, m->init.file, why, cap)) != 0)
            model_layout_free(out);
        return rc;
    }
    char detail[512] = "";
    int rc = model_layout_from_safetensors(init, out, detail, sizeof detail);
    if (rc == MODEL_ERR_NOMEM)
        return why_fail(why, cap, POLICY_ERR_NOMEM, "model.init: out of memory");
    if (rc != 0)
        return why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s: %s", m->init.file,
                        detail[0] ? detail : model_strerror(rc));
    return 0;
}

/* model.init opened, hashed and parsed (when the policy has one). */
struct init_file {
    struct pinned pin;
    struct safetensors *st;     /* NULL when the policy has no init */
};

static void init_close(struct init_file *f)
{
    safetensors_close(f->st);
    f->st = NULL;
    pinned_close(&f->pin);
}

static int init_open(const struct policy *p, policy_file_resolver find, void *ctx,
                     struct init_file *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    const struct policy_file *pin = &p->model.init;
    if (!pin->present) {
        if (p->model.family != POLICY_FAMILY_GPT2)
            return why_fail(why, cap, POLICY_ERR_INVALID, "model.init: family external needs "
                            "an init file");
        return 0;
    }
    int rc = pinned_open("model.init", pin, 0, find, ctx, &out->pin, why, cap);
    if (rc == 0 && (rc = pinned_safetensors(&out->pin, pin->file, &out->st, why, cap)) != 0)
        pinned_close(&out->pin);
    return rc;
}

int policy_model_layout(const struct policy *p, policy_file_resolver find, void *ctx,
                        struct model_layout *out, char *why, size_t cap)
{
    if (!out)
        return why_fail(why, cap, POLICY_ERR_ARG, "no layout to fill");
    memset(out, 0, sizeof *out);
    if (!p)
        return why_fail(why, cap, POLICY_ERR_ARG, "no policy");
    struct init_file f;
    int rc = init_open(p, find, ctx, &f, why, cap);
    if (rc == 0)
        rc = layout_of(p, f.st, out, why, cap);
    init_close(&f);
    return rc;
}

/* Round 0 from the opened init (or the seed), into flat[L->n_params]. */
static int init_values(const struct policy *p, const struct model_layout *L,
                       const struct safetensors *init, float *flat, char *why, size_t cap)
{
    if (!init) {
        if (L->kind != MODEL_LAYOUT_GPT2)
            return why_fail(why, cap, POLICY_ERR_INVALID, "model: the layout is no GPT-2 and "
                            "the policy has no init");
        int rc = gpt2_init_params(&L->gpt2, p->model.seed, flat);
        return rc ? why_fail(why, cap, POLICY_ERR_INVALID, "model: %s", model_strerror(rc)) : 0;
    }
    char detail[512] = "";
    int rc = model_read_tensors(L, init, flat, detail, sizeof detail);
    if (rc != 0)
        return why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s: %s", p->model.init.file,
                        detail[0] ? detail : model_strerror(rc));
    return 0;
}

int policy_model_init(const struct policy *p, const struct model_layout *L,
                      policy_file_resolver find, void *ctx, float *flat, char *why, size_t cap)
{
    if (!p || !L || !flat)
        return why_fail(why, cap, POLICY_ERR_ARG, "no policy, layout or buffer");
    struct init_file f;
    int rc = init_open(p, find, ctx, &f, why, cap);
    if (rc == 0)
        rc = init_values(p, L, f.st, flat, why, cap);
    init_close(&f);
    return rc;
}

/* --- the whole check ------------------------------------------------------------ */

/* Every value of every tensor of init finite, a chunk at a time. */
static int init_finite(const struct safetensors *init, const char *file, char *why, size_t cap)
{
    enum { CHUNK = 1 << 16 };
    float *buf = malloc(CHUNK * sizeof *buf);
    if (!buf)
        return why_fail(why, cap, POLICY_ERR_NOMEM, "model.init: out of memory");
    int rc = 0;
    for (size_t i = 0; i < safetensors_count(init) && rc == 0; i++) {
        const struct st_tensor *t = safetensors_tensor(init, i);
        size_t es = st_dtype_size(t->dtype);
        uint64_t numel = es ? t->nbytes / es : 0;
        for (uint64_t at = 0; at < numel && rc == 0; at += CHUNK) {
            uint64_t n = numel - at < CHUNK ? numel - at : CHUNK;
            if (model_tensor_to_f32(t, at, n, buf) != 0) {
                rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s: tensor %s cannot "
                              "be read as fp32", file, t->name);
                break;
            }
            for (uint64_t j = 0; j < n; j++)
                if (!isfinite(buf[j])) {
                    rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.init: %s: tensor %s "
                                  "holds %s at index %llu", file, t->name,
                                  isnan(buf[j]) ? "NaN" : "an infinity",
                                  (unsigned long long)(at + j));
                    break;
                }
        }
    }
    free(buf);
    return rc;
}

/* A pinned JSON file: parsed (valid, an object); *doc for the caller when doc is not
 * NULL. */
static int pinned_json(const struct pinned *f, const char *file, struct json_doc **doc,
                       char *why, size_t cap)
{
    char detail[256] = "";
    struct json_doc *d = NULL;
    int rc = json_parse(f->len ? (const char *)f->bytes : "", f->len, &d, detail, sizeof detail);
    if (rc == JSON_ERR_NOMEM)
        return why_fail(why, cap, POLICY_ERR_NOMEM, "%s: out of memory", f->key);
    if (rc != 0)
        return why_fail(why, cap, POLICY_ERR_INVALID, "%s: %s is not valid JSON: %s", f->key,
                        file, detail);
    if (json_type(json_root(d)) != JSON_OBJECT) {
        json_free(d);
        return why_fail(why, cap, POLICY_ERR_INVALID, "%s: %s is JSON but not an object", f->key,
                        file);
    }
    if (doc)
        *doc = d;
    else
        json_free(d);
    return 0;
}

/* model.config: valid JSON; its model_type into s; with a known model_type the layout it
 * describes must be L (the init's). */
static int check_config(const struct policy *p, const struct model_layout *L,
                        policy_file_resolver find, void *ctx, struct policy_model_summary *s,
                        char *why, size_t cap)
{
    const struct policy_model *m = &p->model;
    struct pinned f;
    int rc = pinned_open("model.config", &m->config, HF_CONFIG_MAX, find, ctx, &f, why, cap);
    if (rc)
        return rc;
    struct json_doc *d = NULL;
    if ((rc = pinned_json(&f, m->config.file, &d, why, cap)) != 0) {
        pinned_close(&f);
        return rc;
    }
    const char *type = json_str(json_get(json_root(d), "model_type"));
    snprintf(s->config_type, sizeof s->config_type, "%s", type ? type : "");
    json_free(d);
    struct model_layout want;
    char detail[512] = "";
    rc = hf_config_layout(f.len ? (const char *)f.bytes : "", f.len, &want, detail, sizeof detail);
    pinned_close(&f);
    if (rc == MODEL_ERR_UNSUPPORTED_ARCH)
        return 0;   /* accepted unchecked: s->config_checked stays 0 */
    if (rc == MODEL_ERR_NOMEM)
        return why_fail(why, cap, POLICY_ERR_NOMEM, "model.config: out of memory");
    if (rc != 0)
        return why_fail(why, cap, POLICY_ERR_INVALID, "model.config: %s: %s", m->config.file,
                        detail[0] ? detail : model_strerror(rc));
    rc = model_layout_compare(&want, L, detail, sizeof detail);
    model_layout_free(&want);
    if (rc != 0)
        return why_fail(why, cap, POLICY_ERR_INVALID, "model.init: the tensors of %s are not "
                        "those model.config %s describes (model_type %s): %s", m->init.file,
                        m->config.file, s->config_type, detail);
    s->config_checked = 1;
    return 0;
}

int policy_model_check(const struct policy *p, policy_file_resolver find, void *ctx,
                       struct policy_model_summary *out, char *why, size_t cap)
{
    struct policy_model_summary scratch, *s = out ? out : &scratch;
    memset(s, 0, sizeof *s);
    if (!p)
        return why_fail(why, cap, POLICY_ERR_ARG, "no policy");
    const struct policy_model *m = &p->model;
    s->family = m->family;
    struct init_file f;
    struct model_layout L;
    memset(&L, 0, sizeof L);
    int rc = init_open(p, find, ctx, &f, why, cap);
    if (rc)
        return rc;
    if ((rc = layout_of(p, f.st, &L, why, cap)) == 0 && f.st)
        rc = init_finite(f.st, m->init.file, why, cap);
    init_close(&f);
    if (rc == 0) {
        s->n_tensors = L.n_tensors;
        s->n_params = L.n_params;
        for (size_t i = 0; i < L.n_tensors; i++)
            s->dtypes |= 1u << L.tensors[i].stored;
    }
    if (rc == 0 && m->config.present) {
        if (m->family == POLICY_FAMILY_GPT2)
            rc = why_fail(why, cap, POLICY_ERR_INVALID, "model.config: family gpt2 takes no "
                          "config (the sizes are the config)");
        else
            rc = check_config(p, &L, find, ctx, s, why, cap);
    }
    model_layout_free(&L);
    if (rc == 0 && m->tokenizer.present) {
        struct pinned t;
        rc = pinned_open("model.tokenizer", &m->tokenizer, POLICY_TOKENIZER_MAX, find, ctx, &t,
                         why, cap);
        if (rc == 0) {
            rc = pinned_json(&t, m->tokenizer.file, NULL, why, cap);
            pinned_close(&t);
        }
    }
    return rc;
}

int policy_check_model_files(const struct policy *p, policy_file_resolver find, void *ctx,
                             char *why, size_t cap)
{
    return policy_model_check(p, find, ctx, NULL, why, cap);
}
