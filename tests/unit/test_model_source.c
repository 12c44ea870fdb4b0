/* Unit tests for policies/model_source.c: the layout and round-0 parameters of a policy
 * from the files it pins, found next to the policy (policy_file_next_to), each hashed
 * before use: a good external model with a llama config (F32 and BF16), a hash that is
 * not the pin, an init whose tensors are not the config's, a config of an unknown
 * model_type (accepted, not compared), config and tokenizer that are no JSON, a file
 * that is missing, NaN in the init, and the built-in GPT-2 from its seed and from an init
 * of the right and of the wrong sizes. Files are written with safetensors_write into a
 * temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/hex.h"
#include "common/safetensors.h"
#include "crypto/digest.h"
#include "model/gpt2.h"
#include "model/layout.h"
#include "policies/model_source.h"
#include "policies/policy.h"

static char dir[64];

/* A tiny llama: V 16, H 8, 2 heads of 4, 1 kv head, I 12, 1 layer, lm_head untied. */
#define V 16
#define H 8
#define KV 4    /* kv heads x head_dim */
#define I 12
static const char llama_config[] =
    "{\"model_type\": \"llama\", \"vocab_size\": 16, \"hidden_size\": 8, "
    "\"intermediate_size\": 12, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, "
    "\"num_key_value_heads\": 1, \"tie_word_embeddings\": false, "
    "\"architectures\": [\"LlamaForCausalLM\"]}";

struct tdesc {
    const char *name;
    int ndim;
    uint64_t shape[2];
};
static const struct tdesc llama[] = {
    {"model.embed_tokens.weight", 2, {V, H}},
    {"model.layers.0.input_layernorm.weight", 1, {H}},
    {"model.layers.0.post_attention_layernorm.weight", 1, {H}},
    {"model.layers.0.self_attn.q_proj.weight", 2, {H, H}},
    {"model.layers.0.self_attn.k_proj.weight", 2, {KV, H}},
    {"model.layers.0.self_attn.v_proj.weight", 2, {KV, H}},
    {"model.layers.0.self_attn.o_proj.weight", 2, {H, H}},
    {"model.layers.0.mlp.gate_proj.weight", 2, {I, H}},
    {"model.layers.0.mlp.up_proj.weight", 2, {I, H}},
    {"model.layers.0.mlp.down_proj.weight", 2, {H, I}},
    {"model.norm.weight", 1, {H}},
    {"lm_head.weight", 2, {V, H}},
};
#define N_LLAMA (sizeof llama / sizeof *llama)
static uint64_t llama_params(void)
{
    uint64_t n = 0;
    for (size_t i = 0; i < N_LLAMA; i++)
        n += llama[i].ndim == 1 ? llama[i].shape[0] : llama[i].shape[0] * llama[i].shape[1];
    return n;
}

/* The value written at index j of tensor i (exact in BF16: a multiple of 1/8 below 16). */
static float value_of(size_t i, uint64_t j)
{
    return (float)((int)((i * 7 + j) % 64) - 32) / 8.0f;
}

static const char *at(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Writes the tensors desc[0..n) (skipping the one named skip) as dtype, the value of
 * index j of tensor i value_of(i, j), NaN at index 0 of tensor nan_at (-1: none). */
static void write_model(const char *name, const struct tdesc *desc, size_t n, enum st_dtype dtype,
                        const char *skip, long nan_at)
{
    struct st_tensor t[32];
    void *bufs[32];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip && strcmp(desc[i].name, skip) == 0)
            continue;
        uint64_t numel = desc[i].ndim == 1 ? desc[i].shape[0]
                                           : desc[i].shape[0] * desc[i].shape[1];
        size_t es = dtype == ST_F32 ? 4 : 2;
        uint8_t *b = malloc(numel * es);
        assert_non_null(b);
        for (uint64_t j = 0; j < numel; j++) {
            float v = ((long)i == nan_at && j == 0) ? NAN : value_of(i, j);
            uint32_t u;
            memcpy(&u, &v, 4);
            if (dtype == ST_F32) {
                memcpy(b + 4 * j, &v, 4);
            } else {   /* BF16: the top half (exact for these values; NaN stays NaN) */
                uint16_t h = (uint16_t)(u >> 16);
                memcpy(b + 2 * j, &h, 2);
            }
        }
        t[m] = (struct st_tensor){.name = desc[i].name, .dtype = dtype, .ndim = desc[i].ndim,
                                  .data = b, .nbytes = numel * es};
        memcpy(t[m].shape, desc[i].shape, sizeof desc[i].shape);
        bufs[m++] = b;
    }
    assert_int_equal(safetensors_write(at(name), t, m, NULL, 0, 0644), 0);
    for (size_t i = 0; i < m; i++)
        free(bufs[i]);
}

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(at(name), "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* The BLAKE2b-256 of a file, in hex. */
static const char *b2(const char *name)
{
    static char hex[4][65];
    static int k;
    k = (k + 1) % 4;
    FILE *f = fopen(at(name), "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint8_t h[32];
    crypto_blake2b256(buf, n, h);
    hex_encode(h, 32, hex[k]);
    return hex[k];
}

/* Loads policy text (the files' pins already substituted). */
static void load(const char *text, struct policy *p)
{
    struct policy_error e;
    if (policy_load_buffer("t.yaml", text, strlen(text), p, &e) != 0)
        fail_msg("%s", e.message);
}

/* An external policy pinning init (and config / tokenizer when not NULL) by their current
 * hashes, init's hash replaced by bad_init when that is not NULL. */
static void external(struct policy *p, const char *init, const char *config,
                     const char *tokenizer, const char *bad_init)
{
    char text[2048];
    size_t o = (size_t)snprintf(text, sizeof text,
                                "schema: 1\nmetadata: {name: t}\nmodel:\n  family: external\n"
                                "  init: {file: %s, blake2b: \"%s\"}\n", init,
                                bad_init ? bad_init : b2(init));
    if (config)
        o += (size_t)snprintf(text + o, sizeof text - o, "  config: {file: %s, blake2b: \"%s\"}\n",
                              config, b2(config));
    if (tokenizer)
        o += (size_t)snprintf(text + o, sizeof text - o,
                              "  tokenizer: {file: %s, blake2b: \"%s\"}\n", tokenizer,
                              b2(tokenizer));
    snprintf(text + o, sizeof text - o, "training: {rounds: 2, seq_len: 32}\n");
    load(text, p);
}

static void expect_refused(const struct policy *p, int code, const char *const *parts)
{
    char why[1024] = "";
    int rc = policy_check_model_files(p, policy_file_next_to, dir, why, sizeof why);
    if (rc != code)
        fail_msg("got %d (%s), expected %d", rc, why, code);
    for (; *parts; parts++)
        if (!strstr(why, *parts))
            fail_msg("\"%s\" does not say \"%s\"", why, *parts);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/aulac-model-source-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A good external model: F32 llama with its config and a tokenizer; the summary, the
 * layout (sorted names) and round 0 (the file's values) follow from the files. */
static void external_llama_is_checked_and_loaded(void **state)
{
    (void)state;
    write_model("m.safetensors", llama, N_LLAMA, ST_F32, NULL, -1);
    write_text("config.json", llama_config);
    write_text("tokenizer.json", "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\"}}");
    struct policy p;
    external(&p, "m.safetensors", "config.json", "tokenizer.json", NULL);
    struct policy_model_summary s;
    char why[1024] = "";
    if (policy_model_check(&p, policy_file_next_to, dir, &s, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(s.family, POLICY_FAMILY_EXTERNAL);
    assert_int_equal(s.n_tensors, N_LLAMA);
    assert_int_equal(s.n_params, llama_params());
    assert_int_equal(s.dtypes, 1u << ST_F32);
    assert_string_equal(s.config_type, "llama");
    assert_int_equal(s.config_checked, 1);

    struct model_layout L;
    assert_int_equal(policy_model_layout(&p, policy_file_next_to, dir, &L, why, sizeof why), 0);
    assert_int_equal(L.kind, MODEL_LAYOUT_NAMED);
    assert_int_equal(L.n_params, llama_params());
    assert_string_equal(L.tensors[0].name, "lm_head.weight");   /* sorted by name */
    float *flat = malloc(L.n_params * sizeof *flat);
    assert_non_null(flat);
    assert_int_equal(policy_model_init(&p, &L, policy_file_next_to, dir, flat, why, sizeof why),
                     0);
    for (size_t i = 0; i < N_LLAMA; i++) {
        long k = model_layout_find(&L, llama[i].name);
        assert_true(k >= 0);
        assert_true(flat[L.tensors[k].offset] == value_of(i, 0));
        assert_true(flat[L.tensors[k].offset + L.tensors[k].numel - 1] ==
                    value_of(i, L.tensors[k].numel - 1));
    }
    free(flat);
    model_layout_free(&L);
    policy_free(&p);

    /* the init alone is enough; the config and tokenizer are not read for the layout */
    external(&p, "m.safetensors", NULL, NULL, NULL);
    assert_int_equal(policy_model_check(&p, policy_file_next_to, dir, &s, why, sizeof why), 0);
    assert_int_equal(s.config_checked, 0);
    assert_string_equal(s.config_type, "");
    policy_free(&p);
}

/* BF16 stored: the layout says so, round 0 is the exact fp32 of every value. */
static void bf16_init_is_read_exactly(void **state)
{
    (void)state;
    write_model("bf16.safetensors", llama, N_LLAMA, ST_BF16, NULL, -1);
    write_text("config.json", llama_config);
    struct policy p;
    external(&p, "bf16.safetensors", "config.json", NULL, NULL);
    struct policy_model_summary s;
    char why[1024] = "";
    if (policy_model_check(&p, policy_file_next_to, dir, &s, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(s.dtypes, 1u << ST_BF16);
    assert_int_equal(s.config_checked, 1);
    struct model_layout L;
    assert_int_equal(policy_model_layout(&p, policy_file_next_to, dir, &L, why, sizeof why), 0);
    for (size_t i = 0; i < L.n_tensors; i++)
        assert_int_equal(L.tensors[i].stored, ST_BF16);
    float *flat = malloc(L.n_params * sizeof *flat);
    assert_non_null(flat);
    assert_int_equal(policy_model_init(&p, &L, policy_file_next_to, dir, flat, why, sizeof why),
                     0);
    long k = model_layout_find(&L, "model.layers.0.mlp.down_proj.weight");
    assert_true(k >= 0);
    for (uint64_t j = 0; j < L.tensors[k].numel; j++)
        assert_true(flat[L.tensors[k].offset + j] == value_of(9, j));
    free(flat);
    model_layout_free(&L);
    policy_free(&p);
}

/* A file whose bytes are not the pin is refused before anything reads it, by every
 * entry point, naming the key, the file and both hashes. */
static void hash_mismatch_is_refused(void **state)
{
    (void)state;
    write_model("m.safetensors", llama, N_LLAMA, ST_F32, NULL, -1);
    char wrong[65];
    snprintf(wrong, sizeof wrong, "%s", b2("m.safetensors"));
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    struct policy p;
    external(&p, "m.safetensors", NULL, NULL, wrong);
    const char *parts[] = {"model.init: m.safetensors has BLAKE2b-256 ", b2("m.safetensors"),
                           ", the policy pins ", wrong, NULL};
    expect_refused(&p, POLICY_ERR_INVALID, parts);
    struct model_layout L;
    char why[1024];
    assert_int_equal(policy_model_layout(&p, policy_file_next_to, dir, &L, why, sizeof why),
                     POLICY_ERR_INVALID);
    assert_non_null(strstr(why, "the policy pins"));
    policy_free(&p);

    /* the config's and the tokenizer's pins too */
    write_text("config.json", llama_config);
    write_text("tokenizer.json", "{}");
    external(&p, "m.safetensors", "config.json", "tokenizer.json", NULL);
    write_text("config.json", "{\"model_type\": \"llama\"}");
    const char *c[] = {"model.config: config.json has BLAKE2b-256 ", "the policy pins", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, c);
    write_text("config.json", llama_config);
    write_text("tokenizer.json", "{ }");
    const char *t[] = {"model.tokenizer: tokenizer.json has BLAKE2b-256 ", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, t);
    policy_free(&p);
}

/* An init without a tensor the config has, or with one of another shape, is refused at
 * check time with the tensor named. */
static void tensor_set_differing_from_config_is_refused(void **state)
{
    (void)state;
    write_model("tied.safetensors", llama, N_LLAMA, ST_F32, "lm_head.weight", -1);
    write_text("config.json", llama_config);
    struct policy p;
    external(&p, "tied.safetensors", "config.json", NULL, NULL);
    const char *parts[] = {"model.init: the tensors of tied.safetensors are not those "
                           "model.config config.json describes (model_type llama): ",
                           "lm_head.weight", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, parts);
    policy_free(&p);

    struct tdesc wide[N_LLAMA];
    memcpy(wide, llama, sizeof wide);
    wide[7].shape[0] = I + 1;   /* gate_proj [13, 8] */
    write_model("wide.safetensors", wide, N_LLAMA, ST_F32, NULL, -1);
    external(&p, "wide.safetensors", "config.json", NULL, NULL);
    const char *w[] = {"model.layers.0.mlp.gate_proj.weight", "[13, 8]", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, w);
    policy_free(&p);

    /* the same file with a config that unties nothing it lacks: tie_word_embeddings */
    write_text("tied.json", "{\"model_type\": \"llama\", \"vocab_size\": 16, \"hidden_size\": "
               "8, \"intermediate_size\": 12, \"num_hidden_layers\": 1, "
               "\"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
               "\"tie_word_embeddings\": true}");
    external(&p, "tied.safetensors", "tied.json", NULL, NULL);
    char why[1024] = "";
    if (policy_check_model_files(&p, policy_file_next_to, dir, why, sizeof why) != 0)
        fail_msg("%s", why);
    policy_free(&p);
}

/* A config of a model_type aulac does not know is accepted, but says it was not
 * compared; configs and tokenizers that are no JSON (or no object) are refused. */
static void unknown_model_type_and_bad_json(void **state)
{
    (void)state;
    write_model("m.safetensors", llama, N_LLAMA, ST_F32, NULL, -1);
    write_text("mamba.json", "{\"model_type\": \"mamba\", \"d_model\": 8}");
    struct policy p;
    external(&p, "m.safetensors", "mamba.json", NULL, NULL);
    struct policy_model_summary s;
    char why[1024] = "";
    if (policy_model_check(&p, policy_file_next_to, dir, &s, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_string_equal(s.config_type, "mamba");
    assert_int_equal(s.config_checked, 0);
    policy_free(&p);

    write_text("broken.json", "{\"model_type\": \"llama\",}");
    external(&p, "m.safetensors", "broken.json", NULL, NULL);
    const char *c[] = {"model.config: broken.json is not valid JSON: ", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, c);
    policy_free(&p);

    write_text("list.json", "[1, 2]");
    external(&p, "m.safetensors", NULL, "list.json", NULL);
    const char *t[] = {"model.tokenizer: list.json is JSON but not an object", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, t);
    policy_free(&p);

    write_text("empty.json", "");
    external(&p, "m.safetensors", NULL, "empty.json", NULL);
    const char *e[] = {"model.tokenizer: empty.json is not valid JSON", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, e);
    policy_free(&p);

    /* a known model_type with a size missing: the config is refused, not skipped */
    write_text("short.json", "{\"model_type\": \"llama\", \"vocab_size\": 16}");
    external(&p, "m.safetensors", "short.json", NULL, NULL);
    const char *sh[] = {"model.config: short.json: ", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, sh);
    policy_free(&p);
}

/* A pinned file that is not there, an init that is no safetensors file, or one with NaN:
 * refused, naming the key and the file. */
static void missing_garbage_and_nan_init_are_refused(void **state)
{
    (void)state;
    write_model("m.safetensors", llama, N_LLAMA, ST_F32, NULL, -1);
    struct policy p;
    external(&p, "m.safetensors", NULL, NULL, NULL);
    assert_int_equal(unlink(at("m.safetensors")), 0);
    const char *parts[] = {"model.init: ", "m.safetensors", "No such file", NULL};
    expect_refused(&p, POLICY_ERR_IO, parts);
    policy_free(&p);

    write_text("junk.safetensors", "not a model");
    external(&p, "junk.safetensors", NULL, NULL, NULL);
    const char *j[] = {"model.init: junk.safetensors is no valid safetensors file", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, j);
    policy_free(&p);

    write_model("nan.safetensors", llama, N_LLAMA, ST_BF16, NULL, 3);
    external(&p, "nan.safetensors", NULL, NULL, NULL);
    const char *n[] = {"model.init: nan.safetensors: ", "q_proj.weight", "NaN", NULL};
    expect_refused(&p, POLICY_ERR_INVALID, n);
    policy_free(&p);

    /* no resolver: refused, not crashed */
    external(&p, "junk.safetensors", NULL, NULL, NULL);
    char why[256];
    assert_int_equal(policy_check_model_files(&p, NULL, NULL, why, sizeof why), POLICY_ERR_ARG);
    policy_free(&p);
}

#define GPT2_POLICY                                                                         \
    "schema: 1\nmetadata: {name: t}\nmodel:\n  vocab_size: 256\n  n_positions: 16\n"        \
    "  n_layer: 2\n  n_head: 2\n  n_embd: 8\n  seed: 7\n"

/* The built-in GPT-2: from its seed without init (no file read), from an init of its
 * sizes (values read back), and an init of other sizes refused with the tensor named. */
static void gpt2_from_seed_and_from_init(void **state)
{
    (void)state;
    struct policy p;
    load(GPT2_POLICY "training: {rounds: 2}\n", &p);
    struct model_layout L;
    char why[1024] = "";
    assert_int_equal(policy_model_layout(&p, NULL, NULL, &L, why, sizeof why), 0);
    assert_int_equal(L.kind, MODEL_LAYOUT_GPT2);
    assert_int_equal(L.n_params, policy_model_parameters(&p.model));
    float *flat = malloc(L.n_params * sizeof *flat), *want = malloc(L.n_params * sizeof *want);
    assert_non_null(flat);
    assert_non_null(want);
    assert_int_equal(policy_model_init(&p, &L, NULL, NULL, flat, why, sizeof why), 0);
    assert_int_equal(gpt2_init_params(&L.gpt2, 7, want), 0);
    assert_memory_equal(flat, want, L.n_params * sizeof *flat);
    assert_int_equal(policy_check_model_files(&p, NULL, NULL, why, sizeof why), 0);

    /* an init of these sizes (seed 99's values): round 0 is the file's */
    assert_int_equal(gpt2_init_params(&L.gpt2, 99, want), 0);
    assert_int_equal(model_write_safetensors(at("gpt2.safetensors"), &L, want, NULL, 0, 0644), 0);
    char text[1024];
    snprintf(text, sizeof text, GPT2_POLICY "  init: {file: gpt2.safetensors, blake2b: \"%s\"}\n"
             "training: {rounds: 2}\n", b2("gpt2.safetensors"));
    struct policy q;
    load(text, &q);
    struct model_layout L2;
    struct policy_model_summary s;
    if (policy_model_check(&q, policy_file_next_to, dir, &s, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(s.n_params, L.n_params);
    assert_int_equal(s.dtypes, 1u << ST_F32);
    assert_int_equal(policy_model_layout(&q, policy_file_next_to, dir, &L2, why, sizeof why), 0);
    assert_int_equal(L2.kind, MODEL_LAYOUT_GPT2);
    assert_int_equal(policy_model_init(&q, &L2, policy_file_next_to, dir, flat, why, sizeof why),
                     0);
    assert_memory_equal(flat, want, L.n_params * sizeof *flat);
    model_layout_free(&L2);
    /* the init is read from the file: the layout needs it */
    assert_int_equal(policy_model_layout(&q, NULL, NULL, &L2, why, sizeof why), POLICY_ERR_ARG);
    policy_free(&q);

    /* an init of other sizes (n_embd 16) */
    struct gpt2_config wide = L.gpt2;
    wide.n_embd = 16;
    struct model_layout W;
    assert_int_equal(model_layout_gpt2(&wide, &W), 0);
    float *wv = calloc(W.n_params, sizeof *wv);
    assert_non_null(wv);
    assert_int_equal(model_write_safetensors(at("wide.safetensors"), &W, wv, NULL, 0, 0644), 0);
    snprintf(text, sizeof text, GPT2_POLICY "  init: {file: wide.safetensors, blake2b: \"%s\"}\n"
             "training: {rounds: 2}\n", b2("wide.safetensors"));
    load(text, &q);
    const char *parts[] = {"model.init: wide.safetensors: tensor ", " has shape ",
                           "; the GPT-2 of the policy's sizes has ", NULL};
    expect_refused(&q, POLICY_ERR_INVALID, parts);
    assert_int_equal(policy_model_layout(&q, policy_file_next_to, dir, &L2, why, sizeof why),
                     POLICY_ERR_INVALID);
    policy_free(&q);

    /* an init that is a llama, not a GPT-2 */
    write_model("m.safetensors", llama, N_LLAMA, ST_F32, NULL, -1);
    snprintf(text, sizeof text, GPT2_POLICY "  init: {file: m.safetensors, blake2b: \"%s\"}\n"
             "training: {rounds: 2}\n", b2("m.safetensors"));
    load(text, &q);
    const char *l[] = {"model.init: m.safetensors holds tensor ", "which is not in the GPT-2 "
                       "of the policy's sizes", NULL};
    expect_refused(&q, POLICY_ERR_INVALID, l);
    policy_free(&q);

    free(wv);
    model_layout_free(&W);
    free(flat);
    free(want);
    model_layout_free(&L);
    policy_free(&p);
}

/* The resolver: relative to the directory, refusing what is no relative path below it. */
static void next_to_resolves_below_the_directory(void **state)
{
    (void)state;
    struct policy_file f = {.present = 1};
    snprintf(f.file, sizeof f.file, "sub/m.safetensors");
    char path[512], why[512];
    assert_int_equal(policy_file_next_to("/srv/p", "model.init", &f, path, sizeof path, why,
                                         sizeof why), POLICY_ERR_IO);
    assert_non_null(strstr(why, "model.init: /srv/p/sub/m.safetensors: "));
    write_text("x.json", "{}");
    snprintf(f.file, sizeof f.file, "x.json");
    assert_int_equal(policy_file_next_to(dir, "model.config", &f, path, sizeof path, why,
                                         sizeof why), 0);
    assert_string_equal(path, at("x.json"));
    snprintf(f.file, sizeof f.file, "../x.json");
    assert_int_equal(policy_file_next_to(dir, "model.config", &f, path, sizeof path, why,
                                         sizeof why), POLICY_ERR_INVALID);
    snprintf(f.file, sizeof f.file, "/etc/passwd");
    assert_int_equal(policy_file_next_to(dir, "model.config", &f, path, sizeof path, why,
                                         sizeof why), POLICY_ERR_INVALID);
    assert_int_equal(policy_file_next_to(dir, "model.config", &f, path, 4, why, sizeof why),
                     POLICY_ERR_INVALID);
    snprintf(f.file, sizeof f.file, "x.json");
    assert_int_equal(policy_file_next_to(dir, "model.config", &f, path, 8, why, sizeof why),
                     POLICY_ERR_IO);
    f.present = 0;
    assert_int_equal(policy_file_next_to(dir, "model.config", &f, path, sizeof path, why,
                                         sizeof why), POLICY_ERR_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(external_llama_is_checked_and_loaded),
        cmocka_unit_test(bf16_init_is_read_exactly),
        cmocka_unit_test(hash_mismatch_is_refused),
        cmocka_unit_test(tensor_set_differing_from_config_is_refused),
        cmocka_unit_test(unknown_model_type_and_bad_json),
        cmocka_unit_test(missing_garbage_and_nan_init_are_refused),
        cmocka_unit_test(gpt2_from_seed_and_from_init),
        cmocka_unit_test(next_to_resolves_below_the_directory),
    };
    return cmocka_run_group_tests_name("model_source", tests, setup, teardown);
}
