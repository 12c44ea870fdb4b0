/* The tensors a Hugging Face config.json describes (model/hf_config.h), checked against
 * what transformers 5.24 builds and saves (tests/unit/test_hf_config.c holds its
 * state-dict names and shapes for tiny configs as fixed expectations). */
#include "model/hf_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/why.h"

#define HF_SIZE_MAX 0x7fffffffull   /* every size fits an int, as in transformers */
#define HF_LAYERS_MAX 10000

/* A growing list of tensor descriptions with owned names. */
struct tlist {
    struct model_tensor *t;
    size_t n, cap;
};

static void tlist_free(struct tlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->t[i].name);
    free(l->t);
}

static int add(struct tlist *l, int ndim, uint64_t d0, uint64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int add(struct tlist *l, int ndim, uint64_t d0, uint64_t d1, const char *fmt, ...)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct model_tensor *t = realloc(l->t, cap * sizeof *t);
        if (!t)
            return MODEL_ERR_NOMEM;
        l->t = t;
        l->cap = cap;
    }
    char name[MODEL_NAME_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    struct model_tensor *t = &l->t[l->n];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name)))
        return MODEL_ERR_NOMEM;
    l->n++;
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->stored = ST_F32;
    return 0;
}

/* A required size: a JSON integer in 1..HF_SIZE_MAX. */
static int need_size(const struct json_value *root, const char *key, uint64_t *out, char *why,
                     size_t cap)
{
    const struct json_value *v = json_get(root, key);
    if (!v)
        return why_fail(why, cap, MODEL_ERR_FORMAT, "config.json has no \"%s\"", key);
    if (json_u64(v, out) != 0 || *out == 0 || *out > HF_SIZE_MAX)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "config.json: \"%s\" must be an integer from 1 to %llu", key,
                        HF_SIZE_MAX);
    return 0;
}

/* An optional size: absent or null leaves *out as it is. */
static int opt_size(const struct json_value *root, const char *key, uint64_t *out, char *why,
                    size_t cap)
{
    const struct json_value *v = json_get(root, key);
    if (!v || json_type(v) == JSON_NULL)
        return 0;
    return need_size(root, key, out, why, cap);
}

/* An optional boolean: absent or null leaves *out as it is. */
static int opt_bool(const struct json_value *root, const char *key, int *out, char *why,
                    size_t cap)
{
    const struct json_value *v = json_get(root, key);
    if (!v || json_type(v) == JSON_NULL)
        return 0;
    if (json_bool(v, out) != 0)
        return why_fail(why, cap, MODEL_ERR_FORMAT, "config.json: \"%s\" must be true or false",
                        key);
    return 0;
}

enum arch { ARCH_LLAMA, ARCH_MISTRAL, ARCH_QWEN2 };

/* llama, mistral, qwen2: the decoder of transformers' LlamaForCausalLM and its kin. */
static int llama_like(const struct json_value *root, enum arch arch, struct tlist *l, char *why,
                      size_t cap)
{
    uint64_t V, H, I, L, nh, kv, hd;
    int rc;
    if ((rc = need_size(root, "vocab_size", &V, why, cap)) ||
        (rc = need_size(root, "hidden_size", &H, why, cap)) ||
        (rc = need_size(root, "intermediate_size", &I, why, cap)) ||
        (rc = need_size(root, "num_hidden_layers", &L, why, cap)) ||
        (rc = need_size(root, "num_attention_heads", &nh, why, cap)))
        return rc;
    kv = nh;
    hd = H / nh;
    int tied = 0, attn_bias = arch == ARCH_QWEN2, o_bias = 0, mlp_bias = 0;
    if ((rc = opt_size(root, "num_key_value_heads", &kv, why, cap)) ||
        (rc = opt_size(root, "head_dim", &hd, why, cap)) ||
        (rc = opt_bool(root, "tie_word_embeddings", &tied, why, cap)))
        return rc;
    if (arch == ARCH_LLAMA) {
        /* LlamaAttention: attention_bias puts a bias on q, k, v and o; LlamaMLP:
           mlp_bias on gate, up and down. Mistral has neither; Qwen2 always has q/k/v
           biases and no others. */
        if ((rc = opt_bool(root, "attention_bias", &attn_bias, why, cap)) ||
            (rc = opt_bool(root, "mlp_bias", &mlp_bias, why, cap)))
            return rc;
        o_bias = attn_bias;
    }
    if (L > HF_LAYERS_MAX)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "config.json: num_hidden_layers is %llu; at most %d are supported",
                        (unsigned long long)L, HF_LAYERS_MAX);
    if (hd == 0)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "config.json: hidden_size %llu over num_attention_heads %llu leaves no "
                        "head dimension; give head_dim", (unsigned long long)H,
                        (unsigned long long)nh);
    if (kv > nh || nh % kv != 0)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "config.json: num_attention_heads (%llu) must be a multiple of "
                        "num_key_value_heads (%llu)", (unsigned long long)nh,
                        (unsigned long long)kv);
    uint64_t q = nh * hd, k = kv * hd; /* each < 2^62: both factors < 2^31 */
    if ((rc = add(l, 2, V, H, "model.embed_tokens.weight")) ||
        (rc = add(l, 1, H, 0, "model.norm.weight")) ||
        (!tied && (rc = add(l, 2, V, H, "lm_head.weight"))))
        return rc;
    for (uint64_t i = 0; i < L; i++) {
        unsigned long long li = (unsigned long long)i;
        const char *p = "model.layers";
        if ((rc = add(l, 1, H, 0, "%s.%llu.input_layernorm.weight", p, li)) ||
            (rc = add(l, 1, H, 0, "%s.%llu.post_attention_layernorm.weight", p, li)) ||
            (rc = add(l, 2, q, H, "%s.%llu.self_attn.q_proj.weight", p, li)) ||
            (rc = add(l, 2, k, H, "%s.%llu.self_attn.k_proj.weight", p, li)) ||
            (rc = add(l, 2, k, H, "%s.%llu.self_attn.v_proj.weight", p, li)) ||
            (rc = add(l, 2, H, q, "%s.%llu.self_attn.o_proj.weight", p, li)) ||
            (rc = add(l, 2, I, H, "%s.%llu.mlp.gate_proj.weight", p, li)) ||
            (rc = add(l, 2, I, H, "%s.%llu.mlp.up_proj.weight", p, li)) ||
            (rc = add(l, 2, H, I, "%s.%llu.mlp.down_proj.weight", p, li)))
            return rc;
        if (attn_bias && ((rc = add(l, 1, q, 0, "%s.%llu.self_attn.q_proj.bias", p, li)) ||
                          (rc = add(l, 1, k, 0, "%s.%llu.self_attn.k_proj.bias", p, li)) ||
                          (rc = add(l, 1, k, 0, "%s.%llu.self_attn.v_proj.bias", p, li))))
            return rc;
        if (o_bias && (rc = add(l, 1, H, 0, "%s.%llu.self_attn.o_proj.bias", p, li)))
            return rc;
        if (mlp_bias && ((rc = add(l, 1, I, 0, "%s.%llu.mlp.gate_proj.bias", p, li)) ||
                         (rc = add(l, 1, I, 0, "%s.%llu.mlp.up_proj.bias", p, li)) ||
                         (rc = add(l, 1, H, 0, "%s.%llu.mlp.down_proj.bias", p, li))))
            return rc;
    }
    return 0;
}

/* gpt2: the tensors transformers' GPT2LMHeadModel.save_pretrained writes: gpt2.h's
 * names under "transformer.", Conv1D weights [in, out], lm_head.weight only when
 * tie_word_embeddings is false. */
static int gpt2_like(const struct json_value *root, struct tlist *l, char *why, size_t cap)
{
    uint64_t V, P = 0, C, L, nh;
    int rc;
    if ((rc = need_size(root, "vocab_size", &V, why, cap)) ||
        (rc = need_size(root, "n_embd", &C, why, cap)) ||
        (rc = need_size(root, "n_layer", &L, why, cap)) ||
        (rc = need_size(root, "n_head", &nh, why, cap)))
        return rc;
    const char *pkey = json_get(root, "n_positions") ? "n_positions" : "n_ctx";
    if ((rc = need_size(root, pkey, &P, why, cap)))
        return rc;
    uint64_t inner = 4 * C;
    int tied = 1;
    if ((rc = opt_size(root, "n_inner", &inner, why, cap)) ||
        (rc = opt_bool(root, "tie_word_embeddings", &tied, why, cap)))
        return rc;
    if (L > HF_LAYERS_MAX)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "config.json: n_layer is %llu; at most %d are supported",
                        (unsigned long long)L, HF_LAYERS_MAX);
    if (C % nh != 0)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "config.json: n_embd (%llu) must be a multiple of n_head (%llu)",
                        (unsigned long long)C, (unsigned long long)nh);
    const char *p = "transformer";
    if ((rc = add(l, 2, V, C, "%s.wte.weight", p)) || (rc = add(l, 2, P, C, "%s.wpe.weight", p)) ||
        (rc = add(l, 1, C, 0, "%s.ln_f.weight", p)) || (rc = add(l, 1, C, 0, "%s.ln_f.bias", p)) ||
        (!tied && (rc = add(l, 2, V, C, "lm_head.weight"))))
        return rc;
    for (uint64_t i = 0; i < L; i++) {
        unsigned long long li = (unsigned long long)i;
        if ((rc = add(l, 1, C, 0, "%s.h.%llu.ln_1.weight", p, li)) ||
            (rc = add(l, 1, C, 0, "%s.h.%llu.ln_1.bias", p, li)) ||
            (rc = add(l, 2, C, 3 * C, "%s.h.%llu.attn.c_attn.weight", p, li)) ||
            (rc = add(l, 1, 3 * C, 0, "%s.h.%llu.attn.c_attn.bias", p, li)) ||
            (rc = add(l, 2, C, C, "%s.h.%llu.attn.c_proj.weight", p, li)) ||
            (rc = add(l, 1, C, 0, "%s.h.%llu.attn.c_proj.bias", p, li)) ||
            (rc = add(l, 1, C, 0, "%s.h.%llu.ln_2.weight", p, li)) ||
            (rc = add(l, 1, C, 0, "%s.h.%llu.ln_2.bias", p, li)) ||
            (rc = add(l, 2, C, inner, "%s.h.%llu.mlp.c_fc.weight", p, li)) ||
            (rc = add(l, 1, inner, 0, "%s.h.%llu.mlp.c_fc.bias", p, li)) ||
            (rc = add(l, 2, inner, C, "%s.h.%llu.mlp.c_proj.weight", p, li)) ||
            (rc = add(l, 1, C, 0, "%s.h.%llu.mlp.c_proj.bias", p, li)))
            return rc;
    }
    return 0;
}

int hf_config_layout(const char *json, size_t len, struct model_layout *out, char *why,
                     size_t cap)
{
    memset(out, 0, sizeof *out);
    if (!json)
        return MODEL_ERR_ARG;
    if (len > HF_CONFIG_MAX)
        return why_fail(why, cap, MODEL_ERR_FORMAT,
                        "config.json is %zu bytes; at most %u are read", len, HF_CONFIG_MAX);
    struct json_doc *doc;
    char jwhy[200];
    int rc = json_parse(json, len, &doc, jwhy, sizeof jwhy);
    if (rc == JSON_ERR_NOMEM)
        return MODEL_ERR_NOMEM;
    if (rc)
        return why_fail(why, cap, MODEL_ERR_FORMAT, "config.json is not valid JSON: %s", jwhy);
    const struct json_value *root = json_root(doc);
    struct tlist l = {0};
    const char *type = json_str(json_get(root, "model_type"));
    if (json_type(root) != JSON_OBJECT)
        rc = why_fail(why, cap, MODEL_ERR_FORMAT, "config.json is not a JSON object");
    else if (!type)
        rc = why_fail(why, cap, MODEL_ERR_FORMAT,
                      "config.json has no \"model_type\" string (llama, mistral, qwen2, gpt2)");
    else if (strcmp(type, "llama") == 0)
        rc = llama_like(root, ARCH_LLAMA, &l, why, cap);
    else if (strcmp(type, "mistral") == 0)
        rc = llama_like(root, ARCH_MISTRAL, &l, why, cap);
    else if (strcmp(type, "qwen2") == 0)
        rc = llama_like(root, ARCH_QWEN2, &l, why, cap);
    else if (strcmp(type, "gpt2") == 0)
        rc = gpt2_like(root, &l, why, cap);
    else
        rc = why_fail(why, cap, MODEL_ERR_UNSUPPORTED_ARCH,
                      "config.json: model_type \"%.64s\" is not one the tensor names can be "
                      "derived for (llama, mistral, qwen2, gpt2); the init file's tensors "
                      "cannot be checked against the config", type);
    if (!rc)
        rc = model_layout_named(l.t, l.n, out, why, cap);
    tlist_free(&l);
    json_free(doc);
    return rc;
}
