/* GPT-2 checkpoints in the Hugging Face layout: model.safetensors + config.json. */
#include "model/gpt2.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/json.h"
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

/* ---- config.json (common/json.h: the one reader of untrusted JSON) ---------------- */

/* The GPT-2 sizes of config.json, checked: the keys this model needs, and the keys
 * that would make a checkpoint compute something else, refused with the reason. */
static int config_to_gpt2(const char *path, const char *text, size_t len,
                          struct gpt2_config *cfg)
{
    struct json_doc *doc;
    char jwhy[200];
    int rc = json_parse(text, len, &doc, jwhy, sizeof jwhy);
    if (rc == JSON_ERR_NOMEM)
        return MODEL_ERR_NOMEM;
    if (rc) {
        log_error("gpt2_load: %s is not valid JSON: %s", path, jwhy);
        return MODEL_ERR_FORMAT;
    }
    const struct json_value *root = json_root(doc);
    const char *why = NULL;
    const char *sizes[] = {"vocab_size", "n_positions", "n_ctx", "n_embd", "n_layer", "n_head"};
    int64_t v[6];
    if (json_type(root) != JSON_OBJECT) {
        log_error("gpt2_load: %s is not a JSON object", path);
        json_free(doc);
        return MODEL_ERR_FORMAT;
    }
    for (int i = 0; i < 6; i++) {
        const struct json_value *x = json_get(root, sizes[i]);
        v[i] = -1;
        if (x && (json_i64(x, &v[i]) != 0 || v[i] < 0 || v[i] > INT_MAX)) {
            log_error("gpt2_load: %s: \"%s\" is not a non-negative integer", path, sizes[i]);
            json_free(doc);
            return MODEL_ERR_FORMAT;
        }
    }
    int64_t positions = v[1] >= 0 ? v[1] : v[2];
    const struct json_value *type = json_get(root, "model_type");
    const struct json_value *act = json_get(root, "activation_function");
    const struct json_value *eps = json_get(root, "layer_norm_epsilon");
    const struct json_value *inner = json_get(root, "n_inner");
    const struct json_value *scale = json_get(root, "scale_attn_weights");
    const struct json_value *inv = json_get(root, "scale_attn_by_inverse_layer_idx");
    double e;
    int64_t n_inner;
    if (type && (!json_str(type) || strcmp(json_str(type), "gpt2") != 0))
        why = "model_type is not gpt2";
    else if (v[0] < 0 || positions < 0 || v[3] < 0 || v[4] < 0 || v[5] < 0)
        why = "vocab_size, n_positions, n_embd, n_layer and n_head are required";
    else if (act && (!json_str(act) || (strcmp(json_str(act), "gelu_new") != 0 &&
                                        strcmp(json_str(act), "gelu_pytorch_tanh") != 0)))
        why = "activation_function must be gelu_new (GELU, tanh approximation)";
    else if (eps && (json_double(eps, &e) != 0 || fabs(e - 1e-5) > 1e-12))
        why = "layer_norm_epsilon must be 1e-5";
    else if (inner && json_type(inner) != JSON_NULL &&
             (json_i64(inner, &n_inner) != 0 || n_inner != 4 * v[3]))
        why = "n_inner must be null or 4 * n_embd";
    else if (scale && json_type(scale) != JSON_TRUE)
        why = "scale_attn_weights must be true";
    else if (inv && json_type(inv) != JSON_FALSE)
        why = "scale_attn_by_inverse_layer_idx must be false";
    json_free(doc);
    if (!why) {
        cfg->vocab_size = (int)v[0];
        cfg->max_seq_len = (int)positions;
        cfg->n_embd = (int)v[3];
        cfg->n_layer = (int)v[4];
        cfg->n_head = (int)v[5];
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
    struct gpt2_config c;
    rc = config_to_gpt2(path, (const char *)text, len, &c);
    free(text);
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
