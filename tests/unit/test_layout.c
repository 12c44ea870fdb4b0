/* model/layout: the built-in GPT-2's layout, layouts of safetensors files (sorted by
 * name), exact BF16/F16 conversion, every refusal of model_read_tensors, the round trip
 * through model_write_safetensors, and the hashes (v1 unchanged, v2 vector of
 * model/README.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/safetensors.h"
#include "model/layout.h"
#include "model/model_hash.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/aulac-test-layout-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes t[n] as tmpdir/name and opens it. */
static struct safetensors *file_of(const char *name, const struct st_tensor *t, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    assert_int_equal(safetensors_write(path, t, n, NULL, 0, 0644), 0);
    struct safetensors *f = NULL;
    assert_int_equal(safetensors_open(path, &f), 0);
    return f;
}

static void hex32(const uint8_t d[32], char out[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = 0;
}

static void test_gpt2_layout(void **state)
{
    (void)state;
    struct gpt2_config c = {256, 16, 3, 2, 8};
    struct model_layout L;
    assert_int_equal(model_layout_gpt2(&c, &L), 0);
    assert_int_equal(L.kind, MODEL_LAYOUT_GPT2);
    assert_memory_equal(&L.gpt2, &c, sizeof c);
    assert_int_equal(L.n_tensors, (size_t)gpt2_num_tensors(&c));
    assert_int_equal(L.n_params, gpt2_num_params(&c));
    for (int i = 0; i < gpt2_num_tensors(&c); i++) {
        struct gpt2_tensor_info ti;
        assert_int_equal(gpt2_tensor(&c, i, &ti), 0);
        const struct model_tensor *t = &L.tensors[i];
        assert_string_equal(t->name, ti.name);
        assert_int_equal(t->ndim, ti.ndim);
        for (int d = 0; d < ti.ndim; d++)
            assert_int_equal(t->shape[d], (uint64_t)ti.shape[d]);
        assert_int_equal(t->numel, ti.numel);
        assert_int_equal(t->offset, ti.offset);
        assert_int_equal(t->stored, ST_F32);
        /* find: by the gpt2.h name and by the Hugging Face "transformer." name */
        assert_int_equal(model_layout_find(&L, ti.name), i);
        char pref[80];
        snprintf(pref, sizeof pref, "transformer.%s", ti.name);
        assert_int_equal(model_layout_find(&L, pref), i);
    }
    assert_int_equal(model_layout_find(&L, "h.3.ln_1.weight"), -1);
    assert_int_equal(model_layout_find(&L, "transformer."), -1);
    model_layout_free(&L);
    model_layout_free(&L); /* zeroed: a second free is harmless */
    struct gpt2_config bad = {256, 16, 3, 3, 8};
    assert_int_equal(model_layout_gpt2(&bad, &L), MODEL_ERR_CONFIG);
}

static void test_from_safetensors_sorted(void **state)
{
    (void)state;
    float w[6] = {0, 1, 2, 3, 4, 5}, one = 7;
    uint16_t h[4] = {0x3C00, 0x4000, 0xC000, 0x0001};
    /* byte-wise: "B" < "a" < "a.10" < "a.9" < "z" < "\xc3\xa9" (é) */
    struct st_tensor t[] = {
        {.name = "z", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = w, .nbytes = 24},
        {.name = "a.9", .dtype = ST_BF16, .ndim = 1, .shape = {4}, .data = h, .nbytes = 8},
        {.name = "\xc3\xa9", .dtype = ST_F32, .ndim = 0, .data = &one, .nbytes = 4},
        {.name = "a.10", .dtype = ST_F16, .ndim = 2, .shape = {2, 2}, .data = h, .nbytes = 8},
        {.name = "B", .dtype = ST_F32, .ndim = 1, .shape = {1}, .data = &one, .nbytes = 4},
        {.name = "a", .dtype = ST_F32, .ndim = 3, .shape = {1, 2, 3}, .data = w, .nbytes = 24},
    };
    struct safetensors *f = file_of("sorted.safetensors", t, 6);
    struct model_layout L;
    char why[256] = "";
    assert_int_equal(model_layout_from_safetensors(f, &L, why, sizeof why), 0);
    assert_int_equal(L.kind, MODEL_LAYOUT_NAMED);
    assert_int_equal(L.n_tensors, 6);
    const char *order[] = {"B", "a", "a.10", "a.9", "z", "\xc3\xa9"};
    const uint64_t numel[] = {1, 6, 4, 4, 6, 1};
    const enum st_dtype stored[] = {ST_F32, ST_F32, ST_F16, ST_BF16, ST_F32, ST_F32};
    uint64_t off = 0;
    for (int i = 0; i < 6; i++) {
        assert_string_equal(L.tensors[i].name, order[i]);
        assert_int_equal(L.tensors[i].numel, numel[i]);
        assert_int_equal(L.tensors[i].offset, off);
        assert_int_equal(L.tensors[i].stored, stored[i]);
        assert_int_equal(model_layout_find(&L, order[i]), i);
        off += numel[i];
    }
    assert_int_equal(L.n_params, 22);
    assert_int_equal(L.tensors[5].ndim, 0);
    assert_int_equal(L.tensors[1].ndim, 3);
    assert_int_equal(L.tensors[1].shape[2], 3);
    assert_int_equal(model_layout_find(&L, "a.1"), -1);
    assert_int_equal(model_layout_find(&L, "transformer.a"), -1);
    assert_int_equal(model_layout_find(&L, ""), -1);

    /* read: converted values in flat order */
    float flat[22];
    assert_int_equal(model_read_tensors(&L, f, flat, why, sizeof why), 0);
    assert_true(flat[0] == 7);
    assert_memory_equal(flat + 1, w, 24);
    assert_true(flat[7] == 1.0f && flat[8] == 2.0f && flat[9] == -2.0f);
    assert_true(flat[10] == ldexpf(1, -24)); /* F16 0x0001: the smallest subnormal */
    /* BF16 0x3C00 = 2^-7, 0x4000 = 2, 0xC000 = -2, 0x0001 = 2^-133 */
    assert_true(flat[11] == ldexpf(1, -7) && flat[12] == 2.0f && flat[13] == -2.0f);
    assert_true(flat[14] == ldexpf(1, -133));
    assert_memory_equal(flat + 15, w, 24);
    assert_true(flat[21] == 7);
    model_layout_free(&L);
    safetensors_close(f);
}

/* F16 by its definition: (-1)^s 2^(e-15) (1 + m/1024), subnormal 2^-14 m/1024. */
static float f16_reference(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(1024 + m), e - 25);
    return s ? -v : v;
}

/* BF16 by its definition: (-1)^s 2^(e-127) (1 + m/128), subnormal 2^-126 m/128. */
static float bf16_reference(uint16_t b)
{
    int s = b >> 15, e = (b >> 7) & 255, m = b & 127;
    float v;
    if (e == 0)
        v = ldexpf((float)m, -133);
    else if (e == 255)
        v = m ? NAN : INFINITY;
    else
        v = ldexpf((float)(128 + m), e - 134);
    return s ? -v : v;
}

static void test_half_conversion_exact(void **state)
{
    (void)state;
    uint8_t *raw = malloc(2 * 65536);
    float *out = malloc(65536 * sizeof(float));
    assert_non_null(raw);
    assert_non_null(out);
    for (unsigned i = 0; i < 65536; i++)
        raw[2 * i] = (uint8_t)i, raw[2 * i + 1] = (uint8_t)(i >> 8); /* little-endian */
    for (int k = 0; k < 2; k++) {
        struct st_tensor t = {.name = "x", .dtype = k ? ST_BF16 : ST_F16, .ndim = 1,
                              .shape = {65536}, .data = raw, .nbytes = 2 * 65536};
        assert_int_equal(model_tensor_to_f32(&t, 0, 65536, out), 0);
        for (unsigned i = 0; i < 65536; i++) {
            float want = k ? bf16_reference((uint16_t)i) : f16_reference((uint16_t)i);
            if (isnan(want)) {
                if (!isnan(out[i]))
                    fail_msg("%s 0x%04x: want NaN, got %a", k ? "BF16" : "F16", i, out[i]);
                continue;
            }
            if (memcmp(&want, &out[i], 4) != 0) /* bit-exact, signed zeros too */
                fail_msg("%s 0x%04x: want %a, got %a", k ? "BF16" : "F16", i, want, out[i]);
        }
        /* a window of the tensor; and ranges past its end are refused */
        float two[2];
        assert_int_equal(model_tensor_to_f32(&t, 0x3C00, 2, two), 0);
        assert_true(two[0] == (k ? ldexpf(1, -7) : 1.0f));
        assert_int_equal(model_tensor_to_f32(&t, 65535, 2, two), MODEL_ERR_FORMAT);
        assert_int_equal(model_tensor_to_f32(&t, 65537, 0, two), MODEL_ERR_FORMAT);
    }
    struct st_tensor i64 = {.name = "x", .dtype = ST_I64, .ndim = 1, .shape = {1}, .data = raw,
                            .nbytes = 8};
    assert_int_equal(model_tensor_to_f32(&i64, 0, 1, out), MODEL_ERR_FORMAT);
    free(raw);
    free(out);
}

/* A two-tensor named layout: "a.weight" [2, 3], "b.bias" [3]. */
static void small_layout(struct model_layout *L)
{
    struct model_tensor d[] = {
        {.name = "b.bias", .ndim = 1, .shape = {3}, .stored = ST_F32},
        {.name = "a.weight", .ndim = 2, .shape = {2, 3}, .stored = ST_BF16},
    };
    char why[200];
    assert_int_equal(model_layout_named(d, 2, L, why, sizeof why), 0);
    assert_string_equal(L->tensors[0].name, "a.weight");
    assert_int_equal(L->tensors[1].offset, 6);
    assert_int_equal(L->n_params, 9);
}

static void expect_read(const struct model_layout *L, const char *file, const struct st_tensor *t,
                        size_t n, int rc, const char *want)
{
    struct safetensors *f = file_of(file, t, n);
    float *flat = malloc((size_t)L->n_params * sizeof *flat);   /* the model's size: a read
                                                                   may fill it before refusing */
    assert_non_null(flat);
    char why[256] = "";
    int got = model_read_tensors(L, f, flat, why, sizeof why);
    free(flat);
    safetensors_close(f);
    if (got != rc || strcmp(why, want) != 0)
        fail_msg("%s: rc %d (want %d), why \"%s\" (want \"%s\")", file, got, rc, why, want);
}

static void test_read_refusals(void **state)
{
    (void)state;
    struct model_layout L;
    small_layout(&L);
    float a[6] = {1, 2, 3, 4, 5, 6}, b[3] = {7, 8, 9}, c[4] = {0};
    int64_t ib[3] = {1, 2, 3};
    struct st_tensor ok[] = {
        {.name = "a.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = a, .nbytes = 24},
        {.name = "b.bias", .dtype = ST_F32, .ndim = 1, .shape = {3}, .data = b, .nbytes = 12},
    };
    expect_read(&L, "ok.safetensors", ok, 2, 0, "");

    expect_read(&L, "missing.safetensors", ok, 1, MODEL_ERR_FORMAT, "tensor b.bias is missing");
    struct st_tensor extra[] = {ok[0], ok[1],
        {.name = "c.extra", .dtype = ST_F32, .ndim = 1, .shape = {4}, .data = c, .nbytes = 16}};
    expect_read(&L, "extra.safetensors", extra, 3, MODEL_ERR_FORMAT,
                "tensor c.extra is not in the model");
    struct st_tensor renamed[] = {ok[0],
        {.name = "b.Bias", .dtype = ST_F32, .ndim = 1, .shape = {3}, .data = b, .nbytes = 12}};
    expect_read(&L, "renamed.safetensors", renamed, 2, MODEL_ERR_FORMAT,
                "tensor b.bias is missing");
    struct st_tensor shape[] = {
        {.name = "a.weight", .dtype = ST_F32, .ndim = 2, .shape = {3, 2}, .data = a, .nbytes = 24},
        ok[1]};
    expect_read(&L, "shape.safetensors", shape, 2, MODEL_ERR_FORMAT,
                "tensor a.weight has shape [3, 2]; the model's is [2, 3]");
    struct st_tensor flat6[] = {
        {.name = "a.weight", .dtype = ST_F32, .ndim = 1, .shape = {6}, .data = a, .nbytes = 24},
        ok[1]};
    expect_read(&L, "rank.safetensors", flat6, 2, MODEL_ERR_FORMAT,
                "tensor a.weight has shape [6]; the model's is [2, 3]");
    struct st_tensor dtype[] = {ok[0],
        {.name = "b.bias", .dtype = ST_I64, .ndim = 1, .shape = {3}, .data = ib, .nbytes = 24}};
    expect_read(&L, "i64.safetensors", dtype, 2, MODEL_ERR_FORMAT,
                "tensor b.bias is stored as I64; only F32, BF16 and F16 are accepted");

    float nan_a[6] = {1, 2, 3, 4, NAN, 6}, inf_b[3] = {7, -INFINITY, 9};
    struct st_tensor nan[] = {
        {.name = "a.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = nan_a,
         .nbytes = 24}, ok[1]};
    expect_read(&L, "nan.safetensors", nan, 2, MODEL_ERR_NONFINITE,
                "tensor a.weight holds NaN at index 4 (row-major); every value must be finite");
    struct st_tensor inf[] = {ok[0],
        {.name = "b.bias", .dtype = ST_F32, .ndim = 1, .shape = {3}, .data = inf_b, .nbytes = 12}};
    expect_read(&L, "inf.safetensors", inf, 2, MODEL_ERR_NONFINITE,
                "tensor b.bias holds infinity at index 1 (row-major); every value must be finite");
    /* infinity from a half-precision file (F16 0x7C00) */
    uint16_t h[3] = {0x3C00, 0x3C00, 0x7C00};
    struct st_tensor hinf[] = {ok[0],
        {.name = "b.bias", .dtype = ST_F16, .ndim = 1, .shape = {3}, .data = h, .nbytes = 6}};
    expect_read(&L, "hinf.safetensors", hinf, 2, MODEL_ERR_NONFINITE,
                "tensor b.bias holds infinity at index 2 (row-major); every value must be finite");
    uint16_t hnan[3] = {0x3F80, 0x7FC0, 0};
    struct st_tensor bnan[] = {ok[0],
        {.name = "b.bias", .dtype = ST_BF16, .ndim = 1, .shape = {3}, .data = hnan, .nbytes = 6}};
    expect_read(&L, "bnan.safetensors", bnan, 2, MODEL_ERR_NONFINITE,
                "tensor b.bias holds NaN at index 1 (row-major); every value must be finite");
    model_layout_free(&L);

    /* GPT-2: names with "transformer." are accepted, but not both forms at once */
    struct gpt2_config cfg = {5, 3, 1, 1, 2};
    struct model_layout G;
    assert_int_equal(model_layout_gpt2(&cfg, &G), 0);
    size_t n = G.n_tensors;
    float *p = calloc(G.n_params, sizeof(float));
    float *q = calloc(G.n_params, sizeof(float));
    struct st_tensor *t = calloc(n + 1, sizeof *t);
    char (*names)[64] = calloc(n + 1, 64);
    for (uint64_t i = 0; i < G.n_params; i++)
        p[i] = (float)i / 8;
    for (size_t i = 0; i < n; i++) {
        const struct model_tensor *m = &G.tensors[i];
        snprintf(names[i], 64, "%s%s", i % 2 ? "transformer." : "", m->name);
        t[i] = (struct st_tensor){.name = names[i], .dtype = ST_F32, .ndim = m->ndim,
                                  .data = p + m->offset, .nbytes = m->numel * 4};
        memcpy(t[i].shape, m->shape, sizeof t[i].shape);
    }
    struct safetensors *f = file_of("gpt2.safetensors", t, n);
    char why[256] = "";
    assert_int_equal(model_read_tensors(&G, f, q, why, sizeof why), 0);
    assert_memory_equal(p, q, G.n_params * sizeof(float));
    safetensors_close(f);
    snprintf(names[n], 64, "transformer.%s", G.tensors[0].name); /* wte twice */
    t[n] = t[0];
    t[n].name = names[n];
    expect_read(&G, "gpt2twice.safetensors", t, n + 1, MODEL_ERR_FORMAT,
                "tensor wte.weight is in the file twice (also as transformer.wte.weight)");
    snprintf(names[n], 64, "lm_head.weight");
    expect_read(&G, "gpt2head.safetensors", t, n + 1, MODEL_ERR_FORMAT,
                "tensor lm_head.weight is not in the model");
    free(p);
    free(q);
    free(t);
    free(names);
    model_layout_free(&G);
}

static void expect_layout_refused(const char *file, const struct st_tensor *t, size_t n,
                                  const char *want)
{
    struct safetensors *f = file_of(file, t, n);
    struct model_layout L;
    memset(&L, 0xAB, sizeof L);
    char why[256] = "";
    int rc = model_layout_from_safetensors(f, &L, why, sizeof why);
    safetensors_close(f);
    if (rc != MODEL_ERR_FORMAT || !strstr(why, want))
        fail_msg("%s: rc %d, why \"%s\" (want \"%s\")", file, rc, why, want);
    assert_null(L.tensors);
    assert_int_equal(L.n_tensors, 0);
}

static void test_layout_refusals(void **state)
{
    (void)state;
    float a[4] = {0};
    int64_t i[2] = {0};
    struct st_tensor empty[] = {
        {.name = "a", .dtype = ST_F32, .ndim = 1, .shape = {4}, .data = a, .nbytes = 16},
        {.name = "e", .dtype = ST_F32, .ndim = 2, .shape = {3, 0}, .data = NULL, .nbytes = 0}};
    expect_layout_refused("empty.safetensors", empty, 2,
                          "tensor e is empty (shape [3, 0]); every tensor needs a value");
    struct st_tensor i64[] = {
        {.name = "a", .dtype = ST_F32, .ndim = 1, .shape = {4}, .data = a, .nbytes = 16},
        {.name = "steps", .dtype = ST_I64, .ndim = 1, .shape = {2}, .data = i, .nbytes = 16}};
    expect_layout_refused("i64.safetensors", i64, 2,
                          "tensor steps is stored as I64; only F32, BF16 and F16 are accepted");
    char longname[MODEL_NAME_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[MODEL_NAME_MAX + 1] = 0;
    struct st_tensor lng[] = {
        {.name = longname, .dtype = ST_F32, .ndim = 1, .shape = {4}, .data = a, .nbytes = 16}};
    expect_layout_refused("long.safetensors", lng, 1, "a name of 257 bytes; at most 256");
    longname[MODEL_NAME_MAX] = 0; /* exactly the limit is fine */
    struct safetensors *f = file_of("long256.safetensors", lng, 1);
    struct model_layout L;
    assert_int_equal(model_layout_from_safetensors(f, &L, NULL, 0), 0);
    model_layout_free(&L);
    safetensors_close(f);
    expect_layout_refused("none.safetensors", NULL, 0, "the file holds no tensors");

    /* limits of model_layout_named: too many tensors, too many parameters, duplicates */
    char why[256];
    size_t n = MODEL_LAYOUT_MAX_TENSORS + 1;
    struct model_tensor *many = calloc(n, sizeof *many);
    char (*names)[8] = calloc(n, 8);
    for (size_t k = 0; k < n; k++) {
        snprintf(names[k], 8, "%zu", k);
        many[k] = (struct model_tensor){.name = names[k], .ndim = 0, .stored = ST_F32};
    }
    assert_int_equal(model_layout_named(many, n, &L, why, sizeof why), MODEL_ERR_FORMAT);
    assert_string_equal(why, "the model has 100001 tensors; at most 100000 are allowed");
    assert_int_equal(model_layout_named(many, n - 1, &L, why, sizeof why), 0);
    assert_int_equal(L.n_params, n - 1);
    assert_string_equal(L.tensors[0].name, "0");
    assert_string_equal(L.tensors[1].name, "1");
    assert_string_equal(L.tensors[2].name, "10"); /* byte-wise, not numeric */
    model_layout_free(&L);
    free(many);
    free(names);
    struct model_tensor big[] = {
        {.name = "x", .ndim = 2, .shape = {1u << 18, 1u << 17}, .stored = ST_BF16},
        {.name = "y", .ndim = 2, .shape = {1u << 18, 1u << 17}, .stored = ST_BF16}};
    assert_int_equal(model_layout_named(big, 2, &L, why, sizeof why), MODEL_ERR_FORMAT);
    assert_non_null(strstr(why, "2^36 parameters or more (at tensor y)"));
    big[1].shape[1] = (1u << 17) - 1; /* 2^36 - 2^18: just fits */
    assert_int_equal(model_layout_named(big, 2, &L, why, sizeof why), 0);
    assert_int_equal(L.n_params, (1ull << 36) - (1ull << 18));
    model_layout_free(&L);
    struct model_tensor huge[] = {
        {.name = "x", .ndim = 3, .shape = {1ull << 40, 1ull << 40, 1ull << 40}, .stored = ST_F32}};
    assert_int_equal(model_layout_named(huge, 1, &L, why, sizeof why), MODEL_ERR_FORMAT);
    assert_non_null(strstr(why, "2^36 parameters or more (at tensor x)"));
    struct model_tensor dup[] = {{.name = "w", .ndim = 0, .stored = ST_F32},
                                 {.name = "w", .ndim = 0, .stored = ST_F16}};
    assert_int_equal(model_layout_named(dup, 2, &L, why, sizeof why), MODEL_ERR_FORMAT);
    assert_string_equal(why, "tensor w appears twice");
    struct model_tensor noname[] = {{.name = "", .ndim = 0, .stored = ST_F32}};
    assert_int_equal(model_layout_named(noname, 1, &L, why, sizeof why), MODEL_ERR_FORMAT);
    assert_string_equal(why, "a tensor has an empty name");
    assert_null(L.tensors);
}

static void test_compare(void **state)
{
    (void)state;
    struct model_layout A, B;
    small_layout(&A);
    small_layout(&B);
    char why[256] = "";
    assert_int_equal(model_layout_compare(&A, &B, why, sizeof why), 0);
    B.tensors[1].stored = ST_F16; /* dtypes may differ */
    assert_int_equal(model_layout_compare(&A, &B, why, sizeof why), 0);
    B.tensors[0].shape[1] = 4;
    assert_int_equal(model_layout_compare(&A, &B, why, sizeof why), MODEL_ERR_FORMAT);
    assert_string_equal(why, "tensor a.weight has shape [2, 4]; the model's is [2, 3]");
    model_layout_free(&B);

    struct model_tensor other[] = {
        {.name = "a.weight", .ndim = 2, .shape = {2, 3}, .stored = ST_F32},
        {.name = "lm_head.weight", .ndim = 1, .shape = {3}, .stored = ST_F32},
    };
    assert_int_equal(model_layout_named(other, 2, &B, why, sizeof why), 0);
    assert_int_equal(model_layout_compare(&A, &B, why, sizeof why), MODEL_ERR_FORMAT);
    assert_string_equal(why, "tensor b.bias is missing");
    assert_int_equal(model_layout_compare(&B, &A, why, sizeof why), MODEL_ERR_FORMAT);
    assert_string_equal(why, "tensor lm_head.weight is missing");
    model_layout_free(&B);
    assert_int_equal(model_layout_named(other, 1, &B, why, sizeof why), 0);
    assert_int_equal(model_layout_compare(&B, &A, why, sizeof why), MODEL_ERR_FORMAT);
    assert_string_equal(why, "tensor b.bias is not in the model");
    model_layout_free(&B);
    model_layout_free(&A);

    /* the same tensors as a built-in GPT-2 and as a named model: another order */
    struct gpt2_config cfg = {5, 3, 1, 1, 2};
    assert_int_equal(model_layout_gpt2(&cfg, &A), 0);
    struct model_tensor *d = calloc(A.n_tensors, sizeof *d);
    for (size_t i = 0; i < A.n_tensors; i++)
        d[i] = A.tensors[i];
    assert_int_equal(model_layout_named(d, A.n_tensors, &B, why, sizeof why), 0);
    free(d);
    assert_int_equal(model_layout_compare(&A, &B, why, sizeof why), MODEL_ERR_FORMAT);
    assert_non_null(strstr(why, "built-in GPT-2"));
    assert_int_equal(model_layout_compare(&A, &A, why, sizeof why), 0);
    model_layout_free(&A);
    model_layout_free(&B);
}

static void test_write_read_roundtrip(void **state)
{
    (void)state;
    struct model_layout L, R;
    small_layout(&L);
    float flat[9] = {0.1f, -2.5f, 3e-8f, 1e30f, -0.0f, 6, 7.25f, -8, 1.0f / 3};
    char path[256];
    snprintf(path, sizeof path, "%s/out.safetensors", tmpdir);
    struct st_meta meta[] = {{"round", "3"}};
    assert_int_equal(model_write_safetensors(path, &L, flat, meta, 1, 0600), 0);
    assert_int_equal(access(path, R_OK), 0);
    struct safetensors *f;
    assert_int_equal(safetensors_open(path, &f), 0);
    assert_string_equal(safetensors_meta(f, "format"), "pt");
    assert_string_equal(safetensors_meta(f, "round"), "3");
    /* written F32, data in flat order: the data region is the flat vector */
    assert_int_equal(safetensors_tensor(f, 0)->dtype, ST_F32);
    assert_string_equal(safetensors_tensor(f, 0)->name, "a.weight");
    assert_memory_equal(safetensors_tensor(f, 0)->data, flat, sizeof flat);
    char why[256] = "";
    assert_int_equal(model_layout_from_safetensors(f, &R, why, sizeof why), 0);
    assert_int_equal(model_layout_compare(&L, &R, why, sizeof why), 0);
    float back[9];
    assert_int_equal(model_read_tensors(&R, f, back, why, sizeof why), 0);
    assert_memory_equal(back, flat, sizeof flat);
    uint8_t h1[32], h2[32];
    model_layout_hash(&L, flat, h1);
    model_layout_hash(&R, back, h2);
    assert_memory_equal(h1, h2, 32);
    safetensors_close(f);
    model_layout_free(&R);
    /* "format" is the writer's own key */
    struct st_meta fmt[] = {{"format", "np"}};
    assert_int_equal(model_write_safetensors(path, &L, flat, fmt, 1, 0600), MODEL_ERR_ARG);
    assert_int_equal(model_write_safetensors(path, &L, NULL, NULL, 0, 0600), MODEL_ERR_ARG);
    model_layout_free(&L);
}

static void test_hash(void **state)
{
    (void)state;
    /* GPT-2: v1, exactly model_hash() of the flat vector */
    struct gpt2_config cfg = {256, 16, 2, 2, 8};
    struct model_layout G;
    assert_int_equal(model_layout_gpt2(&cfg, &G), 0);
    float *p = malloc(G.n_params * sizeof(float));
    assert_int_equal(gpt2_init_params(&cfg, 1234, p), 0);
    uint8_t a[32], b[32];
    model_layout_hash(&G, p, a);
    model_hash(p, G.n_params, b);
    assert_memory_equal(a, b, 32);
    free(p);
    model_layout_free(&G);

    /* v2: the vector of model/README.md ("Named models"), computed there by Python's
     * hashlib.blake2b(digest_size=32) */
    struct model_tensor d[] = {
        {.name = "weight", .ndim = 2, .shape = {2, 3}, .stored = ST_BF16},
        {.name = "scale", .ndim = 0, .stored = ST_F32},
        {.name = "bias", .ndim = 1, .shape = {2}, .stored = ST_F16},
    };
    struct model_layout L;
    char why[200];
    assert_int_equal(model_layout_named(d, 3, &L, why, sizeof why), 0);
    float flat[9] = {0.5f, -1.5f, 2.0f, 0, 1, 2, 3, 4, 5}; /* bias, scale, weight */
    char hex[65];
    model_layout_hash(&L, flat, a);
    hex32(a, hex);
    assert_string_equal(hex, "e5227304ab5a0470aa14e8b1ee9d49c3962fc2380a7d781f214b0564ae49ed2f");
    /* names and shapes are covered: the same values under another shape or name differ */
    L.tensors[2].shape[0] = 3, L.tensors[2].shape[1] = 2;
    model_layout_hash(&L, flat, b);
    assert_memory_not_equal(a, b, 32);
    L.tensors[2].shape[0] = 2, L.tensors[2].shape[1] = 3;
    L.tensors[0].name[0] = 'B';
    model_layout_hash(&L, flat, b);
    assert_memory_not_equal(a, b, 32);
    L.tensors[0].name[0] = 'b';
    model_layout_hash(&L, flat, b);
    assert_memory_equal(a, b, 32);
    /* the stored dtype is not */
    L.tensors[0].stored = ST_F32;
    model_layout_hash(&L, flat, b);
    assert_memory_equal(a, b, 32);
    model_layout_free(&L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_layout),
        cmocka_unit_test(test_from_safetensors_sorted),
        cmocka_unit_test(test_half_conversion_exact),
        cmocka_unit_test(test_read_refusals),
        cmocka_unit_test(test_layout_refusals),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_write_read_roundtrip),
        cmocka_unit_test(test_hash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
