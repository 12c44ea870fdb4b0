/* model/gpt2: tensor table, deterministic init, loss at init, finite-difference
 * gradient check of every tensor, causality, checkpoints (save/load). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "common/safetensors.h"
#include "model/gpt2.h"
#include "model/parallel.h"
#include "model/rng.h"

#ifndef INIT_FNV_1234
#define INIT_FNV_1234 0x5ad038b5f28f7147ull
#endif

static const struct gpt2_config tiny = {
    .vocab_size = 256, .max_seq_len = 8, .n_layer = 2, .n_head = 2, .n_embd = 16};

static void test_tensor_table(void **state)
{
    (void)state;
    /* GPT-2 small with the 50257 BPE vocabulary: the well-known 124,439,808. */
    struct gpt2_config small = {50257, 1024, 12, 12, 768};
    assert_int_equal(gpt2_num_params(&small), 124439808u);
    assert_int_equal(gpt2_num_tensors(&small), 4 + 12 * 12);

    size_t n = gpt2_num_params(&tiny), next = 0;
    int nt = gpt2_num_tensors(&tiny);
    assert_int_equal(nt, 28);
    const char *expect[] = {"wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.ln_1.bias",
                            "h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias",
                            "h.0.attn.c_proj.weight", "h.0.attn.c_proj.bias",
                            "h.0.ln_2.weight", "h.0.ln_2.bias", "h.0.mlp.c_fc.weight",
                            "h.0.mlp.c_fc.bias", "h.0.mlp.c_proj.weight",
                            "h.0.mlp.c_proj.bias", "h.1.ln_1.weight"};
    for (int i = 0; i < nt; i++) {
        struct gpt2_tensor_info ti;
        assert_int_equal(gpt2_tensor(&tiny, i, &ti), 0);
        assert_int_equal(ti.offset, next); /* contiguous, in order */
        next += ti.numel;
        if (i < (int)(sizeof expect / sizeof expect[0]))
            assert_string_equal(ti.name, expect[i]);
        if (ti.ndim == 2)
            assert_int_equal((size_t)ti.shape[0] * ti.shape[1], ti.numel);
    }
    assert_int_equal(next, n);
    struct gpt2_tensor_info ti;
    gpt2_tensor(&tiny, 4, &ti); /* c_attn [in, out] = [C, 3C] */
    assert_int_equal(ti.shape[0], 16);
    assert_int_equal(ti.shape[1], 48);
    gpt2_tensor(&tiny, 12, &ti); /* mlp.c_proj [4C, C] */
    assert_int_equal(ti.shape[0], 64);
    assert_int_equal(ti.shape[1], 16);
    gpt2_tensor(&tiny, nt - 1, &ti);
    assert_string_equal(ti.name, "ln_f.bias");
    assert_int_equal(gpt2_tensor(&tiny, nt, &ti), MODEL_ERR_ARG);
}

static void test_config_check(void **state)
{
    (void)state;
    struct gpt2_config c = tiny;
    assert_int_equal(gpt2_config_check(&c), 0);
    c.n_head = 3; /* 16 % 3 != 0 */
    assert_int_equal(gpt2_config_check(&c), MODEL_ERR_CONFIG);
    assert_int_equal(gpt2_num_params(&c), 0);
    c = tiny, c.n_layer = 0;
    assert_int_equal(gpt2_config_check(&c), MODEL_ERR_CONFIG);
    c = tiny, c.vocab_size = -1;
    assert_int_equal(gpt2_config_check(&c), MODEL_ERR_CONFIG);
    c = (struct gpt2_config){1 << 24, 1 << 20, 4096, 1, 1 << 16}; /* absurdly large */
    assert_int_equal(gpt2_config_check(&c), MODEL_ERR_CONFIG);
    struct gpt2 *m;
    assert_int_equal(gpt2_create(&tiny, 1, 9, &m), MODEL_ERR_ARG); /* T > max_seq_len */
    assert_null(m);
}

static void test_rng_portable(void **state)
{
    (void)state;
    /* xoshiro256** seeded by splitmix64(0): fixed reference values. */
    struct rng r;
    rng_seed(&r, 0);
    uint64_t a = rng_next(&r), b = rng_next(&r);
    rng_seed(&r, 0);
    assert_true(rng_next(&r) == a && rng_next(&r) == b);
    /* The normal stream: mean ~0, variance ~1 over many draws. */
    struct rng_normal g;
    rng_normal_init(&g, 7);
    double s = 0, s2 = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double z = rng_normal_next(&g);
        s += z;
        s2 += z * z;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1.0) < 0.02);
}

static void test_init_deterministic(void **state)
{
    (void)state;
    struct gpt2_config c = {256, 64, 4, 4, 64};
    size_t n = gpt2_num_params(&c);
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    assert_int_equal(gpt2_init_params(&c, 1234, a), 0);
    assert_int_equal(gpt2_init_params(&c, 1234, b), 0);
    assert_memory_equal(a, b, n * sizeof(float));
    gpt2_init_params(&c, 1235, b);
    assert_true(memcmp(a, b, n * sizeof(float)) != 0);

    /* Pin the stream: these bits must be the same on every machine and compiler.
     * (Changing them changes every round-0 model hash.) */
    uint32_t bits[4];
    memcpy(bits, a, sizeof bits);
    printf("init seed 1234: %08x %08x %08x %08x\n", bits[0], bits[1], bits[2], bits[3]);
    uint64_t h = 1469598103934665603ull; /* FNV-1a over all parameter bytes */
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ ((const uint8_t *)a)[i]) * 1099511628211ull;
    printf("init seed 1234: fnv1a64 %016llx\n", (unsigned long long)h);
    assert_true(h == INIT_FNV_1234);

    for (int i = 0; i < gpt2_num_tensors(&c); i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(&c, i, &ti);
        const float *t = a + ti.offset;
        double s = 0, s2 = 0;
        for (size_t j = 0; j < ti.numel; j++) {
            s += t[j];
            s2 += (double)t[j] * t[j];
        }
        double mean = s / ti.numel, std = sqrt(s2 / ti.numel - mean * mean);
        size_t len = strlen(ti.name);
        if (ti.is_matrix) {
            double want = strstr(ti.name, "c_proj.weight") ? 0.02 / sqrt(8.0) : 0.02;
            assert_true(fabs(mean) < 0.1 * want);
            assert_true(fabs(std - want) < 0.05 * want);
        } else if (strcmp(ti.name + len - 7, ".weight") == 0) {
            assert_true(mean == 1.0 && std == 0.0); /* LayerNorm gain */
        } else {
            assert_true(mean == 0.0 && std == 0.0); /* biases */
        }
    }
    free(a);
    free(b);
}

static void random_tokens(int32_t *t, size_t n, uint64_t seed)
{
    struct rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        t[i] = (int32_t)rng_below(&r, 256);
}

static void test_loss_at_init(void **state)
{
    (void)state;
    struct gpt2_config c = {256, 32, 2, 4, 32};
    struct gpt2 *m;
    assert_int_equal(gpt2_create(&c, 4, 32, &m), 0);
    gpt2_init_params(&c, 1, gpt2_params(m));
    int32_t in[128], tg[128];
    random_tokens(in, 128, 5);
    random_tokens(tg, 128, 6);
    float loss = 0;
    assert_int_equal(gpt2_forward(m, in, tg, 4, 32, &loss), 0);
    printf("loss at init %.5f, ln(256) = %.5f\n", loss, log(256.0));
    assert_true(fabs(loss - log(256.0)) < 0.05);
    tg[3] = 256;
    assert_int_equal(gpt2_forward(m, in, tg, 4, 32, &loss), MODEL_ERR_TOKEN);
    assert_int_equal(gpt2_forward(m, in, NULL, 5, 32, NULL), MODEL_ERR_ARG);
    gpt2_destroy(m);
}

/* Parameters far from the init (std ~0.1-0.3, LayerNorm gains and biases random) so
 * that every path of the backward pass carries a visible gradient. */
static void rough_params(const struct gpt2_config *c, float *p, uint64_t seed)
{
    struct rng_normal g;
    rng_normal_init(&g, seed);
    for (int i = 0; i < gpt2_num_tensors(c); i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(c, i, &ti);
        size_t len = strlen(ti.name);
        int ln_gain = !ti.is_matrix && strcmp(ti.name + len - 7, ".weight") == 0;
        double std = ti.is_matrix ? 0.25 : 0.1;
        for (size_t j = 0; j < ti.numel; j++)
            p[ti.offset + j] = (float)((ln_gain ? 1.0 : 0.0) + std * rng_normal_next(&g));
    }
}

static double loss_at(struct gpt2 *m, const int32_t *in, const int32_t *tg, int B, int T)
{
    float l;
    assert_int_equal(gpt2_forward(m, in, tg, B, T, &l), 0);
    return l;
}

/* Finite differences against the backward pass, two ways per tensor:
 *  1. the directional derivative along a random +-1 direction over the whole
 *     tensor (large signal, so fp32 noise is small against it): rel err < 1e-2;
 *  2. the 3 largest-gradient entries one by one: rel err < 5e-2 where the
 *     gradient is not tiny against the FD noise floor.
 * Central differences; every perturbation restores the exact original bits. */
static void test_gradcheck(void **state)
{
    (void)state;
    const int B = 2, T = 8;
    struct gpt2 *m;
    assert_int_equal(gpt2_create(&tiny, B, T, &m), 0);
    float *p = gpt2_params(m);
    size_t n = gpt2_num_params(&tiny);
    rough_params(&tiny, p, 99);
    int32_t in[16], tg[16];
    random_tokens(in, 16, 11);
    random_tokens(tg, 16, 12);
    in[3] = in[9]; /* a repeated token: wte rows accumulate from two positions */
    float loss;
    assert_int_equal(gpt2_forward(m, in, tg, B, T, &loss), 0);
    assert_int_equal(gpt2_backward(m), 0);
    float *grad = malloc(n * sizeof(float));
    memcpy(grad, gpt2_grads(m), n * sizeof(float));
    /* The tied LM head and the embedding both feed wte: its gradient has two parts. */

    struct rng r;
    rng_seed(&r, 3);
    int failures = 0;
    for (int i = 0; i < gpt2_num_tensors(&tiny); i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(&tiny, i, &ti);
        float *t = p + ti.offset;
        const float *g = grad + ti.offset;
        float *saved = malloc(ti.numel * sizeof(float));
        memcpy(saved, t, ti.numel * sizeof(float));

        /* 1. directional: loss(p + e d) - loss(p - e d) against sum_j g_j (up_j - dn_j),
         * with the steps up_j - dn_j as actually rounded to float */
        signed char *dir = malloc(ti.numel);
        double gmax = 0.0;
        for (size_t j = 0; j < ti.numel; j++) {
            dir[j] = (rng_next(&r) >> 63) ? 1 : -1;
            gmax = fmax(gmax, fabs(g[j]));
        }
        const float eps = 1e-3f;
        double analytic = 0.0;
        for (size_t j = 0; j < ti.numel; j++) {
            float up = saved[j] + eps * dir[j], dn = saved[j] - eps * dir[j];
            analytic += (double)g[j] * ((double)up - (double)dn);
        }
        for (size_t j = 0; j < ti.numel; j++)
            t[j] = saved[j] + eps * dir[j];
        double lp = loss_at(m, in, tg, B, T);
        for (size_t j = 0; j < ti.numel; j++)
            t[j] = saved[j] - eps * dir[j];
        double lm = loss_at(m, in, tg, B, T);
        memcpy(t, saved, ti.numel * sizeof(float));
        double num = lp - lm;
        double rel = fabs(num - analytic) / fmax(fabs(num) + fabs(analytic), 1e-6);
        printf("  %-24s dir: analytic % .6e numeric % .6e rel %.1e\n", ti.name, analytic, num,
               rel);
        if (rel > 1e-2)
            failures++;

        /* 2. the largest entries */
        for (int k = 0; k < 3; k++) {
            size_t best = 0;
            double bv = -1;
            for (size_t j = 0; j < ti.numel; j++)
                if (fabs(g[j]) > bv && dir[j] != 0) {
                    bv = fabs(g[j]);
                    best = j;
                }
            dir[best] = 0; /* not again */
            const double e = 1e-2;
            float up = saved[best] + (float)e, dn = saved[best] - (float)e;
            t[best] = up;
            double l1 = loss_at(m, in, tg, B, T);
            t[best] = dn;
            double l2 = loss_at(m, in, tg, B, T);
            t[best] = saved[best];
            double fd = (l1 - l2) / ((double)up - (double)dn);
            double er = fabs(fd - g[best]) / fmax(fabs(fd) + fabs(g[best]), 2e-4);
            if (er > 5e-2) {
                printf("  %-24s [%zu]: analytic % .6e numeric % .6e rel %.1e  FAIL\n", ti.name,
                       best, g[best], fd, er);
                failures++;
            }
        }
        assert_true(gmax > 0.0); /* every tensor receives gradient */
        free(dir);
        free(saved);
    }
    assert_int_equal(failures, 0);
    /* the parameters were restored exactly: same loss as before */
    assert_true(loss_at(m, in, tg, B, T) == (double)loss);
    free(grad);
    gpt2_destroy(m);
}

/* Position t's logits depend on tokens 0..t only, and rows of a batch are independent. */
static void test_causal_and_batch_independent(void **state)
{
    (void)state;
    const int B = 3, T = 8, V = 256;
    struct gpt2 *m;
    assert_int_equal(gpt2_create(&tiny, B, T, &m), 0);
    rough_params(&tiny, gpt2_params(m), 5);
    int32_t in[24];
    random_tokens(in, 24, 8);
    assert_int_equal(gpt2_forward(m, in, NULL, B, T, NULL), 0);
    float *all = malloc((size_t)B * T * V * sizeof(float));
    memcpy(all, gpt2_logits(m), (size_t)B * T * V * sizeof(float));
    /* row 1 alone */
    assert_int_equal(gpt2_forward(m, in + T, NULL, 1, T, NULL), 0);
    const float *one = gpt2_logits(m);
    for (int i = 0; i < T * V; i++)
        assert_true(fabsf(one[i] - all[(size_t)T * V + i]) <= 1e-5f * (1 + fabsf(one[i])));
    /* change the last token of row 0: earlier positions keep their logits */
    in[T - 1] = (in[T - 1] + 1) % V;
    assert_int_equal(gpt2_forward(m, in, NULL, B, T, NULL), 0);
    const float *l2 = gpt2_logits(m);
    for (int i = 0; i < (T - 1) * V; i++)
        assert_true(l2[i] == all[i]);
    int changed = 0;
    for (int i = (T - 1) * V; i < T * V; i++)
        changed |= l2[i] != all[i];
    assert_true(changed);
    /* a shorter T gives the same prefix logits */
    assert_int_equal(gpt2_forward(m, in + 2 * T, NULL, 1, 5, NULL), 0);
    for (int t = 0; t < 5; t++)
        for (int v = 0; v < V; v++) {
            float a = gpt2_logits(m)[t * V + v], b = all[(size_t)(2 * T + t) * V + v];
            assert_true(fabsf(a - b) <= 1e-5f * (1 + fabsf(a)));
        }
    free(all);
    gpt2_destroy(m);
}

/* The threaded paths (row, column and (batch, head) splits, uneven ranges with 3
 * threads) against the single-threaded run that the gradient check validated. */
static void test_threads_match_serial(void **state)
{
    (void)state;
    const struct gpt2_config c = {256, 32, 2, 4, 64};
    const int B = 4, T = 32;
    struct gpt2 *a, *b;
    assert_int_equal(gpt2_create(&c, B, T, &a), 0);
    assert_int_equal(gpt2_create(&c, B, T, &b), 0);
    assert_int_equal(gpt2_set_threads(b, 3), 0);
    size_t n = gpt2_num_params(&c);
    rough_params(&c, gpt2_params(a), 17);
    memcpy(gpt2_params(b), gpt2_params(a), n * sizeof(float));
    int32_t in[128], tg[128];
    random_tokens(in, 128, 1);
    random_tokens(tg, 128, 2);
    float la, lb;
    assert_int_equal(gpt2_forward(a, in, tg, B, T, &la), 0);
    assert_int_equal(gpt2_forward(b, in, tg, B, T, &lb), 0);
    for (size_t i = 0; i < (size_t)B * T * 256; i++)
        assert_true(fabsf(gpt2_logits(a)[i] - gpt2_logits(b)[i]) <=
                    1e-4f * (1.0f + fabsf(gpt2_logits(a)[i])));
    assert_true(fabsf(la - lb) <= 1e-5f * la);
    assert_int_equal(gpt2_backward(a), 0);
    assert_int_equal(gpt2_backward(b), 0);
    const float *ga = gpt2_grads(a), *gb = gpt2_grads(b);
    for (int t = 0; t < gpt2_num_tensors(&c); t++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(&c, t, &ti);
        double diff = 0, norm = 0;
        for (size_t i = ti.offset; i < ti.offset + ti.numel; i++) {
            diff += ((double)ga[i] - gb[i]) * ((double)ga[i] - gb[i]);
            norm += (double)ga[i] * ga[i];
        }
        assert_true(norm > 0);
        if (sqrt(diff) > 1e-4 * sqrt(norm))
            printf("%s: |ga - gb| / |ga| = %.2e\n", ti.name, sqrt(diff / norm));
        assert_true(sqrt(diff) <= 1e-4 * sqrt(norm));
    }
    /* same thread count, same bits */
    float lc;
    assert_int_equal(gpt2_forward(b, in, tg, B, T, &lc), 0);
    assert_true(lc == lb);
    gpt2_destroy(a);
    gpt2_destroy(b);
}

struct count_job {
    int *hits;
    int chunk_busy[8];
    int overlaps;
};

static void count_range(void *ctx, size_t b, size_t e, int chunk)
{
    struct count_job *j = ctx;
    if (__atomic_exchange_n(&j->chunk_busy[chunk], 1, __ATOMIC_ACQ_REL))
        __atomic_add_fetch(&j->overlaps, 1, __ATOMIC_RELAXED);
    for (size_t i = b; i < e; i++)
        __atomic_add_fetch(&j->hits[i], 1, __ATOMIC_RELAXED);
    __atomic_store_n(&j->chunk_busy[chunk], 0, __ATOMIC_RELEASE);
}

/* Thousands of jobs of every size on more threads than cores: each index is run
 * exactly once per job, and no chunk number is in use twice at a time. */
static void test_parallel_pool(void **state)
{
    (void)state;
    struct parallel *p;
    assert_int_equal(parallel_create(5, &p), 0);
    assert_int_equal(parallel_threads(p), 5);
    int *hits = calloc(5000, sizeof(int));
    struct count_job j = {.hits = hits};
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(round * 7919) % 5000, grain = 1 + (size_t)round % 50;
        memset(hits, 0, n * sizeof(int));
        parallel_for(p, n, grain, count_range, &j);
        for (size_t i = 0; i < n; i++)
            if (hits[i] != 1)
                fail_msg("round %d: index %zu of %zu ran %d times", round, i, n, hits[i]);
    }
    assert_int_equal(j.overlaps, 0);
    parallel_destroy(p);
    free(hits);
}

static void test_backward_requires_targets(void **state)
{
    (void)state;
    struct gpt2 *m;
    assert_int_equal(gpt2_create(&tiny, 1, 8, &m), 0);
    assert_int_equal(gpt2_backward(m), MODEL_ERR_ARG);
    int32_t in[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(gpt2_forward(m, in, NULL, 1, 8, NULL), 0);
    assert_int_equal(gpt2_backward(m), MODEL_ERR_ARG);
    assert_int_equal(gpt2_forward(m, in, in, 1, 8, NULL), 0);
    assert_int_equal(gpt2_backward(m), 0);
    assert_int_equal(gpt2_backward(m), MODEL_ERR_ARG); /* logits consumed */
    gpt2_destroy(m);
}

/* ---- checkpoints ---------------------------------------------------------------- */

static char tmpdir[256];

static int setup_tmp(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/aulac-test-model-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_save_load_roundtrip(void **state)
{
    (void)state;
    struct gpt2_config c = {256, 16, 3, 2, 8};
    size_t n = gpt2_num_params(&c);
    float *p = malloc(n * sizeof(float));
    rough_params(&c, p, 42);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/ckpt/sub", tmpdir);
    assert_int_equal(gpt2_save(dir, &c, p), 0);

    struct gpt2_config c2;
    float *q = NULL;
    assert_int_equal(gpt2_load(dir, &c2, &q), 0);
    assert_memory_equal(&c, &c2, sizeof c);
    assert_memory_equal(p, q, n * sizeof(float));
    free(q);

    /* The data region of model.safetensors is the flat vector itself, and the
     * names/shapes are GPT-2's. */
    char path[400];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct safetensors *f;
    assert_int_equal(safetensors_open(path, &f), 0);
    assert_int_equal(safetensors_count(f), (size_t)gpt2_num_tensors(&c));
    assert_ptr_equal(safetensors_tensor(f, 0)->name, safetensors_find(f, "wte.weight")->name);
    assert_memory_equal(safetensors_tensor(f, 0)->data, p, n * sizeof(float));
    const struct st_tensor *w = safetensors_find(f, "h.2.mlp.c_fc.weight");
    assert_non_null(w);
    assert_int_equal(w->ndim, 2);
    assert_int_equal(w->shape[0], 8);
    assert_int_equal(w->shape[1], 32);
    assert_null(safetensors_find(f, "lm_head.weight"));
    assert_string_equal(safetensors_meta(f, "format"), "pt");
    safetensors_close(f);

    snprintf(path, sizeof path, "%s/config.json", dir);
    uint8_t *json;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 20, &json, &len), 0);
    assert_non_null(strstr((char *)json, "\"model_type\": \"gpt2\""));
    assert_non_null(strstr((char *)json, "\"activation_function\": \"gelu_new\""));
    assert_non_null(strstr((char *)json, "\"n_positions\": 16"));
    assert_non_null(strstr((char *)json, "\"layer_norm_epsilon\": 1e-05"));
    free(json);
    free(p);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(file_write_atomic(path, text, strlen(text), 0644), 0);
}

static void test_load_rejects(void **state)
{
    (void)state;
    struct gpt2_config c = {256, 8, 1, 2, 8}, c2;
    size_t n = gpt2_num_params(&c);
    float *p = calloc(n, sizeof(float)), *q = NULL;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/bad", tmpdir);
    assert_int_equal(gpt2_save(dir, &c, p), 0);

    const char *base = "{\"model_type\": \"gpt2\", \"vocab_size\": 256, \"n_positions\": 8, "
                       "\"n_embd\": 8, \"n_layer\": 1, \"n_head\": 2";
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s, \"nested\": {\"a\": [1, {\"b\": null}]}, "
             "\"transformers_version\": \"4.40.0\"}", base);
    write_text(dir, "config.json", cfg); /* extra keys of any shape are fine */
    assert_int_equal(gpt2_load(dir, &c2, &q), 0);
    free(q);

    snprintf(cfg, sizeof cfg, "%s, \"activation_function\": \"relu\"}", base);
    write_text(dir, "config.json", cfg);
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    assert_null(q);
    snprintf(cfg, sizeof cfg, "%s, \"layer_norm_epsilon\": 1e-6}", base);
    write_text(dir, "config.json", cfg);
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    snprintf(cfg, sizeof cfg, "%s, \"n_inner\": 16}", base);
    write_text(dir, "config.json", cfg);
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    snprintf(cfg, sizeof cfg, "%s, \"n_inner\": 32}", base); /* = 4 * n_embd */
    write_text(dir, "config.json", cfg);
    assert_int_equal(gpt2_load(dir, &c2, &q), 0);
    free(q);
    /* the config disagrees with the tensors */
    write_text(dir, "config.json", "{\"vocab_size\": 256, \"n_positions\": 8, \"n_embd\": 8, "
               "\"n_layer\": 2, \"n_head\": 2}");
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    write_text(dir, "config.json", "{\"vocab_size\": 256, \"n_positions\": 16, \"n_embd\": 8, "
               "\"n_layer\": 1, \"n_head\": 2}");
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    write_text(dir, "config.json", "[1, 2]");
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    write_text(dir, "config.json", "{\"vocab_size\": -256}");
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    write_text(dir, "config.json", "{\"vocab_size\": 256");
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    char missing[400];
    snprintf(missing, sizeof missing, "%s/nope", tmpdir);
    assert_int_equal(gpt2_load(missing, &c2, &q), MODEL_ERR_IO);
    assert_null(q);
    free(p);
}

/* A checkpoint as transformers writes it: "transformer." prefix, lm_head, buffers,
 * F16 data. */
static void test_load_hf_variants(void **state)
{
    (void)state;
    struct gpt2_config c = {256, 4, 1, 1, 4};
    int nt = gpt2_num_tensors(&c);
    size_t n = gpt2_num_params(&c);
    struct st_tensor *t = calloc((size_t)nt + 2, sizeof *t);
    char (*names)[64] = calloc((size_t)nt, 64);
    uint16_t *half = malloc(n * 2);
    for (size_t i = 0; i < n; i++)
        half[i] = (uint16_t)(0x3C00 + (i % 7 == 0 ? 0x8000 : 0) - (i % 3) * 0x400); /* 1, .5, .25 */
    for (int i = 0; i < nt; i++) {
        struct gpt2_tensor_info ti;
        gpt2_tensor(&c, i, &ti);
        snprintf(names[i], 64, "transformer.%s", ti.name);
        t[i].name = names[i];
        t[i].dtype = ST_F16;
        t[i].ndim = ti.ndim;
        t[i].shape[0] = (uint64_t)ti.shape[0];
        t[i].shape[1] = (uint64_t)ti.shape[1];
        t[i].data = half + ti.offset;
        t[i].nbytes = ti.numel * 2;
    }
    uint8_t mask[16] = {1};
    t[nt] = (struct st_tensor){.name = "transformer.h.0.attn.bias", .dtype = ST_BOOL,
                               .ndim = 2, .shape = {4, 4}, .data = mask, .nbytes = 16};
    t[nt + 1] = (struct st_tensor){.name = "lm_head.weight", .dtype = ST_F16, .ndim = 2,
                                   .shape = {256, 4}, .data = half, .nbytes = 256 * 4 * 2};
    char dir[300], path[400];
    snprintf(dir, sizeof dir, "%s/hf", tmpdir);
    assert_int_equal(file_mkdirs(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(safetensors_write(path, t, (size_t)nt + 2, NULL, 0, 0644), 0);
    write_text(dir, "config.json", "{\"model_type\": \"gpt2\", \"vocab_size\": 256, "
               "\"n_ctx\": 4, \"n_embd\": 4, \"n_layer\": 1, \"n_head\": 1, "
               "\"activation_function\": \"gelu_new\", \"n_inner\": null}");
    struct gpt2_config c2;
    float *q;
    assert_int_equal(gpt2_load(dir, &c2, &q), 0);
    assert_memory_equal(&c, &c2, sizeof c);
    for (size_t i = 0; i < n; i++) {
        float want = (i % 7 == 0 ? -1.0f : 1.0f) * (i % 3 == 0 ? 1.0f : i % 3 == 1 ? 0.5f : 0.25f);
        assert_true(q[i] == want);
    }
    free(q);
    /* an unknown tensor is an error */
    t[nt].name = "transformer.h.0.attn.rotary";
    assert_int_equal(safetensors_write(path, t, (size_t)nt + 2, NULL, 0, 0644), 0);
    assert_int_equal(gpt2_load(dir, &c2, &q), MODEL_ERR_FORMAT);
    free(t);
    free(names);
    free(half);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_table),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_rng_portable),
        cmocka_unit_test(test_init_deterministic),
        cmocka_unit_test(test_loss_at_init),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_causal_and_batch_independent),
        cmocka_unit_test(test_parallel_pool),
        cmocka_unit_test(test_threads_match_serial),
        cmocka_unit_test(test_backward_requires_targets),
        cmocka_unit_test_setup_teardown(test_save_load_roundtrip, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_load_rejects, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_load_hf_variants, setup_tmp, teardown_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
