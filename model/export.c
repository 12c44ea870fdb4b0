/* GPT-2 checkpoints in the Hugging Face layout: model.safetensors + config.json. */
#include "model/gpt2.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/log.h"
#include "common/safetensors.h"
#include "model/layout.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; this code copies host floats");

#define CONFIG_MAX_BYTES (1u << 20)

static int join_path(char *out, size_t cap, const char *dir, const char *name)
{
    return snprintf(out, cap, "%s/%s", dir, name) < (int)cap ? 0 : MODEL_ERR_ARG;
}

int gpt2_save(const char *dir, const struct gpt2_config *cfg, const float *flat)
{
    if (!dir || !flat)
        return MODEL_ERR_ARG;
    int nt = gpt2_num_tensors(cfg);
    if (nt == 0)
        return MODEL_ERR_CONFIG;
    char path[PATH_MAX];
    int rc = file_mkdirs(dir, 0755);
    if (rc) {
        log_error("gpt2_save: cannot create %s: %s", dir, strerror(-rc));
        return MODEL_ERR_IO;
    }

    struct st_tensor *t = calloc((size_t)nt, sizeof *t);
    struct gpt2_tensor_info *ti = calloc((size_t)nt, sizeof *ti);
    if (!t || !ti) {
        free(t);
        free(ti);
        return MODEL_ERR_NOMEM;
    }
    for (int i = 0; i < nt; i++) {
        gpt2_tensor(cfg, i, &ti[i]);
        t[i].name = ti[i].name;
        t[i].dtype = ST_F32;
        t[i].ndim = ti[i].ndim;
        for (int d = 0; d < ti[i].ndim; d++)
            t[i].shape[d] = (uint64_t)ti[i].shape[d];
        t[i].data = flat + ti[i].offset;
        t[i].nbytes = (uint64_t)ti[i].numel * 4;
    }
    /* transformers refuses safetensors files without format=pt */
    struct st_meta meta[] = {{"format", "pt"}, {"producer", "aulac"}};
    rc = join_path(path, sizeof path, dir, "model.safetensors");
    if (!rc)
        rc = safetensors_write(path, t, (size_t)nt, meta, 2, 0644);
    free(t);
    free(ti);
    if (rc)
        return rc;

    if ((rc = join_path(path, sizeof path, dir, "config.json")))
        return rc;
    return gpt2_save_config(path, cfg);
}

int gpt2_save_config(const char *path, const struct gpt2_config *cfg)
{
    if (!path || gpt2_config_check(cfg) != 0)
        return path ? MODEL_ERR_CONFIG : MODEL_ERR_ARG;
    char json[2048];
    int n = snprintf(json, sizeof json,
                     "{\n"
                     "  \"architectures\": [\"GPT2LMHeadModel\"],\n"
                     "  \"model_type\": \"gpt2\",\n"
                     "  \"vocab_size\": %d,\n"
                     "  \"n_positions\": %d,\n"
                     "  \"n_ctx\": %d,\n"
                     "  \"n_embd\": %d,\n"
                     "  \"n_layer\": %d,\n"
                     "  \"n_head\": %d,\n"
                     "  \"n_inner\": null,\n"
                     "  \"activation_function\": \"gelu_new\",\n"
                     "  \"layer_norm_epsilon\": 1e-05,\n"
                     "  \"resid_pdrop\": 0.0,\n"
                     "  \"embd_pdrop\": 0.0,\n"
                     "  \"attn_pdrop\": 0.0,\n"
                     "  \"initializer_range\": 0.02,\n"
                     "  \"scale_attn_weights\": true,\n"
                     "  \"scale_attn_by_inverse_layer_idx\": false,\n"
                     "  \"reorder_and_upcast_attn\": false,\n"
                     "  \"tie_word_embeddings\": true,\n"
                     "  \"bos_token_id\": null,\n"
                     "  \"eos_token_id\": null,\n"
                     "  \"use_cache\": true,\n"
                     "  \"torch_dtype\": \"float32\"\n"
                     "}\n",
                     cfg->vocab_size, cfg->max_seq_len, cfg->max_seq_len, cfg->n_embd,
                     cfg->n_layer, cfg->n_head);
    if (n < 0 || n >= (int)sizeof json)
        return MODEL_ERR_ARG;
    int rc = file_write_atomic(path, json, (size_t)n, 0644);
    if (rc) {
        log_error("gpt2_save_config: cannot write %s: %s", path, strerror(-rc));
        return MODEL_ERR_IO;
    }
    return 0;
}

/* ---- config.json: a flat JSON object; the values we need are scalars ---------- */

struct json_scan {
    const char *s;
    size_t pos, len;
};

static void js_ws(struct json_scan *j)
{
    while (j->pos < j->len && strchr(" \t\r\n", j->s[j->pos]) && j->s[j->pos])
        j->pos++;
}

/* A string into out (escapes other than \" and \\ kept verbatim: keys and the values
 * we compare are plain ASCII). */
static int js_string(struct json_scan *j, char *out, size_t cap)
{
    js_ws(j);
    if (j->pos >= j->len || j->s[j->pos] != '"')
        return -1;
    j->pos++;
    size_t n = 0;
    while (j->pos < j->len && j->s[j->pos] != '"') {
        char c = j->s[j->pos++];
        if (c == '\\') {
            if (j->pos >= j->len)
                return -1;
            c = j->s[j->pos++];
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
    if (j->pos >= j->len)
        return -1;
    j->pos++;
    out[n] = 0;
    return 0;
}

/* Skips any value; a scalar's raw text goes to raw (strings without quotes). */
static int js_value(struct json_scan *j, char *raw, size_t cap, int depth)
{
    js_ws(j);
    if (j->pos >= j->len || depth > 32)
        return -1;
    raw[0] = 0;
    char c = j->s[j->pos];
    if (c == '"')
        return js_string(j, raw, cap);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        char tmp[8];
        j->pos++;
        js_ws(j);
        if (j->pos < j->len && j->s[j->pos] == close) {
            j->pos++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                char key[8];
                if (js_string(j, key, sizeof key))
                    return -1;
                js_ws(j);
                if (j->pos >= j->len || j->s[j->pos++] != ':')
                    return -1;
            }
            if (js_value(j, tmp, sizeof tmp, depth + 1))
                return -1;
            js_ws(j);
            if (j->pos >= j->len)
                return -1;
            char d = j->s[j->pos++];
            if (d == close)
                return 0;
            if (d != ',')
                return -1;
        }
    }
    size_t n = 0;
    while (j->pos < j->len && !strchr(",}] \t\r\n", j->s[j->pos])) {
        if (n + 1 < cap)
            raw[n++] = j->s[j->pos];
        j->pos++;
    }
    raw[n] = 0;
    return n ? 0 : -1;
}

struct hf_config {
    long vocab_size, n_positions, n_ctx, n_embd, n_layer, n_head;
    char model_type[64], activation[64], n_inner[64], eps[64];
    char scale_attn[64], scale_inv_layer[64];
};

static int parse_long(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!s[0] || *end || errno || v < 0 || v > INT_MAX)
        return -1;
    *out = v;
    return 0;
}

static int parse_config(const char *path, const char *text, size_t len, struct hf_config *c)
{
    struct json_scan j = {text, 0, len};
    memset(c, 0, sizeof *c);
    c->vocab_size = c->n_positions = c->n_ctx = c->n_embd = c->n_layer = c->n_head = -1;
    js_ws(&j);
    if (j.pos >= j.len || text[j.pos++] != '{')
        goto bad;
    for (;;) {
        char key[64], val[64];
        if (js_string(&j, key, sizeof key))
            goto bad;
        js_ws(&j);
        if (j.pos >= j.len || text[j.pos++] != ':')
            goto bad;
        if (js_value(&j, val, sizeof val, 0))
            goto bad;
        struct {
            const char *name;
            long *num;
            char *str;
        } fields[] = {
            {"vocab_size", &c->vocab_size, NULL}, {"n_positions", &c->n_positions, NULL},
            {"n_ctx", &c->n_ctx, NULL},           {"n_embd", &c->n_embd, NULL},
            {"n_layer", &c->n_layer, NULL},       {"n_head", &c->n_head, NULL},
            {"model_type", NULL, c->model_type},  {"activation_function", NULL, c->activation},
            {"n_inner", NULL, c->n_inner},        {"layer_norm_epsilon", NULL, c->eps},
            {"scale_attn_weights", NULL, c->scale_attn},
            {"scale_attn_by_inverse_layer_idx", NULL, c->scale_inv_layer},
        };
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
            if (strcmp(key, fields[f].name) != 0)
                continue;
            if (fields[f].num && parse_long(val, fields[f].num)) {
                log_error("gpt2_load: %s: \"%s\" is not a non-negative integer", path, key);
                return MODEL_ERR_FORMAT;
            }
            if (fields[f].str)
                memcpy(fields[f].str, val, sizeof val);
        }
        js_ws(&j);
        if (j.pos >= j.len)
            goto bad;
        char d = text[j.pos++];
        if (d == '}')
            break;
        if (d != ',')
            goto bad;
    }
    return 0;
bad:
    log_error("gpt2_load: %s is not a JSON object (near byte %zu)", path, j.pos);
    return MODEL_ERR_FORMAT;
}

static int config_to_gpt2(const char *path, const struct hf_config *h, struct gpt2_config *cfg)
{
    const char *why = NULL;
    long positions = h->n_positions >= 0 ? h->n_positions : h->n_ctx;
    if (h->model_type[0] && strcmp(h->model_type, "gpt2") != 0)
        why = "model_type is not gpt2";
    else if (h->vocab_size < 0 || positions < 0 || h->n_embd < 0 || h->n_layer < 0 ||
             h->n_head < 0)
        why = "vocab_size, n_positions, n_embd, n_layer and n_head are required";
    else if (h->activation[0] && strcmp(h->activation, "gelu_new") != 0 &&
             strcmp(h->activation, "gelu_pytorch_tanh") != 0)
        why = "activation_function must be gelu_new (GELU, tanh approximation)";
    else if (h->eps[0] && fabs(strtod(h->eps, NULL) - 1e-5) > 1e-12)
        why = "layer_norm_epsilon must be 1e-5";
    else if (h->n_inner[0] && strcmp(h->n_inner, "null") != 0 &&
             strtol(h->n_inner, NULL, 10) != 4 * h->n_embd)
        why = "n_inner must be null or 4 * n_embd";
    else if (h->scale_attn[0] && strcmp(h->scale_attn, "true") != 0)
        why = "scale_attn_weights must be true";
    else if (h->scale_inv_layer[0] && strcmp(h->scale_inv_layer, "false") != 0)
        why = "scale_attn_by_inverse_layer_idx must be false";
    if (!why) {
        cfg->vocab_size = (int)h->vocab_size;
        cfg->max_seq_len = (int)positions;
        cfg->n_embd = (int)h->n_embd;
        cfg->n_layer = (int)h->n_layer;
        cfg->n_head = (int)h->n_head;
        if (gpt2_config_check(cfg) != 0)
            why = "the sizes are not a valid GPT-2 (n_embd % n_head, limits)";
    }
    if (why) {
        log_error("gpt2_load: %s: %s", path, why);
        return MODEL_ERR_FORMAT;
    }
    return 0;
}

/* ---- tensors ------------------------------------------------------------------ */

static int ignorable(const char *name)
{
    size_t n = strlen(name);
    if (strcmp(name, "lm_head.weight") == 0)
        return 1;
    return (n > 10 && strcmp(name + n - 10, ".attn.bias") == 0) ||
           (n > 17 && strcmp(name + n - 17, ".attn.masked_bias") == 0);
}

int gpt2_load(const char *dir, struct gpt2_config *cfg, float **flat)
{
    *flat = NULL;
    if (!dir || !cfg)
        return MODEL_ERR_ARG;
    char path[PATH_MAX];
    int rc = join_path(path, sizeof path, dir, "config.json");
    if (rc)
        return rc;
    uint8_t *text;
    size_t len;
    rc = file_read_all(path, CONFIG_MAX_BYTES, &text, &len);
    if (rc) {
        log_error("gpt2_load: cannot read %s: %s", path, strerror(-rc));
        return MODEL_ERR_IO;
    }
    struct hf_config hc;
    struct gpt2_config c;
    rc = parse_config(path, (const char *)text, len, &hc);
    free(text);
    if (!rc)
        rc = config_to_gpt2(path, &hc, &c);
    if (rc)
        return rc;

    if ((rc = join_path(path, sizeof path, dir, "model.safetensors")))
        return rc;
    struct safetensors *f;
    rc = safetensors_open(path, &f);
    if (rc) {
        log_error("gpt2_load: %s: %s", path, safetensors_strerror(rc));
        return rc;
    }
    size_t n_params = gpt2_num_params(&c);
    float *out = malloc(n_params * sizeof(float));
    if (!out) {
        safetensors_close(f);
        return MODEL_ERR_NOMEM;
    }
    int nt = gpt2_num_tensors(&c);
    size_t used = 0;
    for (int i = 0; i < nt && !rc; i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(&c, i, &ti);
        char prefixed[GPT2_NAME_MAX + 16];
        snprintf(prefixed, sizeof prefixed, "transformer.%s", ti.name);
        const struct st_tensor *t = safetensors_find(f, ti.name);
        if (!t)
            t = safetensors_find(f, prefixed);
        if (!t) {
            log_error("gpt2_load: %s has no tensor %s", path, ti.name);
            rc = MODEL_ERR_FORMAT;
            break;
        }
        int shape_ok = t->ndim == ti.ndim;
        for (int d = 0; shape_ok && d < ti.ndim; d++)
            shape_ok = t->shape[d] == (uint64_t)ti.shape[d];
        if (!shape_ok || (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)) {
            char want[48];
            if (ti.ndim == 2)
                snprintf(want, sizeof want, "[%d, %d]", ti.shape[0], ti.shape[1]);
            else
                snprintf(want, sizeof want, "[%d]", ti.shape[0]);
            log_error("gpt2_load: %s: tensor %s is %s with %d dims; want F32/F16/BF16 %s",
                      path, ti.name, st_dtype_name(t->dtype), t->ndim, want);
            rc = MODEL_ERR_FORMAT;
            break;
        }
        model_tensor_to_f32(t, 0, ti.numel, out + ti.offset);
        used++;
    }
    for (size_t i = 0; !rc && i < safetensors_count(f); i++) {
        const char *name = safetensors_tensor(f, i)->name;
        const char *bare = strncmp(name, "transformer.", 12) == 0 ? name + 12 : name;
        int known = ignorable(bare);
        for (int k = 0; !known && k < nt; k++) {
            struct gpt2_tensor_info ti;
            gpt2_tensor(&c, k, &ti);
            known = strcmp(bare, ti.name) == 0;
        }
        if (!known) {
            log_error("gpt2_load: %s holds tensor %s, which this GPT-2 does not have", path,
                      name);
            rc = MODEL_ERR_FORMAT;
        }
    }
    safetensors_close(f);
    if (rc) {
        free(out);
        return rc;
    }
    *cfg = c;
    *flat = out;
    return 0;
}
