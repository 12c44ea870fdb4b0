/* Unit tests for codec/: round trips for every quantization, the exact top-k kept set,
 * error-feedback conservation, weighted accumulation, and hostile payloads (every check
 * the decoder makes, plus random bit flips and truncations) that must fail cleanly with
 * the accumulator untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/codec.h"
#include "codec/codec_internal.h"
#include "codec/codec_quant.h"

static uint64_t rng_state;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static double urand(void) { return (double)(rng() >> 11) * (1.0 / 9007199254740992.0); }
static float gauss(void)
{
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* Gaussian values with a different scale per 100-value stretch, some exact zeros. */
static void fill(float *x, size_t n)
{
    float s = 1e-3f;
    for (size_t i = 0; i < n; i++) {
        if (i % 100 == 0)
            s = (float)(1e-4 * pow(10, 3 * urand()));
        x[i] = (rng() % 50 == 0) ? 0.0f : gauss() * s;
    }
}

static struct codec_params params(uint32_t B, uint32_t K, enum codec_quant q, int zstd, int ef)
{
    struct codec_params p;
    codec_params_default(&p);
    p.block_size = B;
    p.k_per_block = K;
    p.quant = q;
    p.zstd_level = zstd;
    p.error_feedback = ef;
    return p;
}

/* The kept positions of a payload, from its validated view: kept[i] = 1. */
static void kept_set(const uint8_t *pl, size_t len, size_t n, uint8_t *kept, float *scale_of)
{
    struct codec_view v;
    char why[200];
    int rc = codec_view_open(pl, len, n, &v, why, sizeof why);
    assert_int_equal(rc, 0);
    memset(kept, 0, n);
    uint32_t B = v.h.block_size;
    uint64_t j = 0;
    for (uint64_t b = 0; b < v.nb; b++) {
        if (scale_of) {
            float s = 1.0f;
            if (v.scales)
                memcpy(&s, v.scales + 4 * b, 4);
            for (uint64_t i = b * B; i < n && i < (b + 1) * B; i++)
                scale_of[i] = s;
        }
        if (v.dense) {
            for (uint64_t i = b * B; i < n && i < (b + 1) * B; i++)
                kept[i] = 1;
            continue;
        }
        uint16_t c;
        memcpy(&c, v.counts + 2 * b, 2);
        uint32_t at = 0;
        for (uint32_t e = 0; e < c; e++, j++) {
            uint16_t g;
            memcpy(&g, v.gaps + 2 * j, 2);
            at = e ? at + 1 + g : g;
            kept[b * B + at] = 1;
        }
    }
    codec_view_close(&v);
}

/* Independent reference: the k largest |v| per block, ties to the lower index, no zeros. */
static const float *ref_vals;
static int ref_cmp(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    float x = fabsf(ref_vals[i]), y = fabsf(ref_vals[j]);
    if (x != y)
        return x > y ? -1 : 1;
    return i < j ? -1 : 1;
}
static void ref_topk(const float *v, size_t n, uint32_t B, uint32_t K, uint8_t *kept)
{
    memset(kept, 0, n);
    uint32_t *idx = malloc(B * sizeof *idx);
    for (size_t base = 0; base < n; base += B) {
        uint32_t len = (uint32_t)(n - base < B ? n - base : B);
        for (uint32_t i = 0; i < len; i++)
            idx[i] = (uint32_t)(base + i);
        ref_vals = v;
        qsort(idx, len, sizeof *idx, ref_cmp);
        for (uint32_t i = 0; i < len && i < K; i++)
            if (v[idx[i]] != 0.0f)
                kept[idx[i]] = 1;
    }
    free(idx);
}

static float quant_step(enum codec_quant q, float v, float scale)
{
    switch (q) {
    case CODEC_QUANT_FP32: return 0;
    case CODEC_QUANT_INT8:
    case CODEC_QUANT_INT4: return 0.5f * scale * 1.0001f + 1e-30f;
    case CODEC_QUANT_FP16: return fabsf(v) * 4.9e-4f + scale * 65504.0f * 1e-9f + 1e-30f;
    case CODEC_QUANT_FP8_E4M3: return fabsf(v) * 0.0625f + scale * 448.0f * 1e-3f + 1e-30f;
    default: return 0;
    }
}

static void test_params(void **state)
{
    (void)state;
    struct codec_params p;
    codec_params_default(&p);
    char why[128];
    assert_int_equal(codec_params_validate(&p, why, sizeof why), 0);
    struct codec_params bad = p;
    bad.format_version = 2;
    assert_int_equal(codec_params_validate(&bad, why, sizeof why), CODEC_ERR_PARAMS);
    bad = p;
    bad.block_size = 0;
    assert_int_equal(codec_params_validate(&bad, NULL, 0), CODEC_ERR_PARAMS);
    bad.block_size = CODEC_MAX_BLOCK + 1;
    assert_int_equal(codec_params_validate(&bad, NULL, 0), CODEC_ERR_PARAMS);
    bad = p;
    bad.k_per_block = 0;
    assert_int_equal(codec_params_validate(&bad, NULL, 0), CODEC_ERR_PARAMS);
    bad = p;
    bad.quant = (enum codec_quant)7;
    assert_int_equal(codec_params_validate(&bad, NULL, 0), CODEC_ERR_PARAMS);
    bad = p;
    bad.zstd_level = 23;
    assert_int_equal(codec_params_validate(&bad, why, sizeof why), CODEC_ERR_PARAMS);
    assert_non_null(strstr(why, "zstd_level"));
    bad = p;
    bad.error_feedback = 2;
    assert_int_equal(codec_params_validate(&bad, NULL, 0), CODEC_ERR_PARAMS);
    assert_int_equal(codec_params_validate(NULL, NULL, 0), CODEC_ERR_ARG);
}

/* Every quantization, sparse and dense, with and without zstd: kept set is the true
 * top-k, kept values within one quantization step, dropped values exactly zero. */
static void test_round_trip(void **state)
{
    (void)state;
    rng_state = 0x1234567u;
    const size_t n = 10007;     /* short last block */
    float *v = malloc(n * sizeof *v), *acc = malloc(n * sizeof *acc), *sc = malloc(n * 4);
    uint8_t *kept = malloc(n), *ref = malloc(n);
    fill(v, n);
    struct { uint32_t B, K; } shapes[] = {{256, 16}, {256, 256}, {1000, 7}, {4096, 41},
                                          {64, 1}, {128, 200}};
    for (int q = 0; q < CODEC_QUANT_COUNT; q++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (int z = 0; z <= 3; z += 3) {
                struct codec_params p = params(shapes[s].B, shapes[s].K, (enum codec_quant)q, z, 0);
                uint8_t *pl;
                size_t len;
                assert_int_equal(codec_encode(v, n, &p, NULL, &pl, &len), 0);
                assert_true(len <= codec_max_payload_len(n, &p));
                struct codec_params info;
                uint64_t pn;
                assert_int_equal(codec_payload_info(pl, len, &info, &pn), 0);
                assert_int_equal(pn, n);
                assert_int_equal(info.block_size, shapes[s].B);
                assert_int_equal(info.quant, q);
                memset(acc, 0, n * sizeof *acc);
                char why[200];
                int rc = codec_decode_accumulate(pl, len, n, 1.0f, acc, why, sizeof why);
                if (rc)
                    fail_msg("q %d B %u K %u z %d: %s", q, shapes[s].B, shapes[s].K, z, why);
                kept_set(pl, len, n, kept, sc);
                uint32_t K = shapes[s].K < shapes[s].B ? shapes[s].K : shapes[s].B;
                if (K < shapes[s].B) {
                    ref_topk(v, n, shapes[s].B, K, ref);
                    assert_memory_equal(kept, ref, n);
                }
                for (size_t i = 0; i < n; i++) {
                    if (!kept[i]) {
                        assert_true(acc[i] == 0.0f);
                        continue;
                    }
                    float err = fabsf(acc[i] - v[i]);
                    if (err > quant_step((enum codec_quant)q, v[i], sc[i]))
                        fail_msg("q %d B %u K %u: value %zu: %g decoded as %g (scale %g)", q,
                                 shapes[s].B, shapes[s].K, i, (double)v[i], (double)acc[i],
                                 (double)sc[i]);
                }
                free(pl);
            }
    free(v);
    free(acc);
    free(sc);
    free(kept);
    free(ref);
}

/* delta + old residual == decoded + new residual, element by element, over several
 * rounds; the residual is what the payload did not carry. */
/* The kept set against the reference on inputs that trouble selection algorithms:
 * sorted, reverse sorted, all equal, few distinct values, one outlier per block. */
static void test_selection_patterns(void **state)
{
    (void)state;
    const size_t n = 9000;
    float *v = malloc(n * 4);
    uint8_t *kept = malloc(n), *ref = malloc(n);
    uint32_t Bs[] = {64, 1000, 4096};
    for (int pattern = 0; pattern < 6; pattern++) {
        for (size_t i = 0; i < n; i++) {
            switch (pattern) {
            case 0: v[i] = (float)i; break;
            case 1: v[i] = -(float)(n - i); break;
            case 2: v[i] = 0.25f; break;
            case 3: v[i] = (float)(i % 3) - 1.0f; break;
            case 4: v[i] = (i % 500 == 7) ? 1e6f : gauss() * 1e-6f; break;
            default: v[i] = (float)((i * 2654435761u) % 97) * ((i & 1) ? 1.0f : -1.0f); break;
            }
        }
        for (size_t b = 0; b < 3; b++) {
            uint32_t Ks[] = {1, 2, 7, 41, Bs[b] / 4, Bs[b] - 1};
            for (size_t k = 0; k < 6; k++) {
                struct codec_params p = params(Bs[b], Ks[k], CODEC_QUANT_FP32, 0, 0);
                uint8_t *pl;
                size_t len;
                assert_int_equal(codec_encode(v, n, &p, NULL, &pl, &len), 0);
                kept_set(pl, len, n, kept, NULL);
                ref_topk(v, n, Bs[b], Ks[k], ref);
                if (memcmp(kept, ref, n) != 0)
                    fail_msg("pattern %d B %u K %u: kept set differs from the reference",
                             pattern, Bs[b], Ks[k]);
                free(pl);
            }
        }
    }
    free(v);
    free(kept);
    free(ref);
}

static void test_error_feedback_conserves(void **state)
{
    (void)state;
    rng_state = 0xfeedbeefu;
    const size_t n = 5000;
    float *d = malloc(n * 4), *r = calloc(n, 4), *r0 = malloc(n * 4), *acc = malloc(n * 4);
    for (int q = 0; q < CODEC_QUANT_COUNT; q++)
        for (uint32_t K = 8; K <= 512; K *= 8) {
            memset(r, 0, n * 4);
            for (int round = 0; round < 4; round++) {
                fill(d, n);
                memcpy(r0, r, n * 4);
                struct codec_params p = params(512, K, (enum codec_quant)q, 1, 1);
                uint8_t *pl;
                size_t len;
                assert_int_equal(codec_encode(d, n, &p, r, &pl, &len), 0);
                memset(acc, 0, n * 4);
                assert_int_equal(codec_decode_accumulate(pl, len, n, 1.0f, acc, NULL, 0), 0);
                for (size_t i = 0; i < n; i++) {
                    float want = d[i] + r0[i], got = acc[i] + r[i];
                    float tol = 2 * FLT_EPSILON * fmaxf(fabsf(want), fabsf(acc[i])) + 1e-37f;
                    if (fabsf(want - got) > tol)
                        fail_msg("q %d K %u round %d i %zu: %g + %g != %g + %g", q, K, round,
                                 i, (double)d[i], (double)r0[i], (double)acc[i], (double)r[i]);
                }
                free(pl);
            }
        }
    /* Without error feedback the residual is neither needed nor touched. */
    struct codec_params p = params(512, 8, CODEC_QUANT_INT8, 1, 0);
    uint8_t *pl;
    size_t len;
    memcpy(r0, r, n * 4);
    assert_int_equal(codec_encode(d, n, &p, r, &pl, &len), 0);
    assert_memory_equal(r, r0, n * 4);
    free(pl);
    assert_int_equal(codec_encode(d, n, &p, NULL, &pl, &len), 0);
    free(pl);
    p.error_feedback = 1;
    assert_int_equal(codec_encode(d, n, &p, NULL, &pl, &len), CODEC_ERR_ARG);
    assert_null(pl);
    free(d);
    free(r);
    free(r0);
    free(acc);
}

/* codec_residual_decay (the worker calls it before each encode): with error feedback the
 * residual is multiplied by the decay, so delta + decay * old residual == decoded + new
 * residual; without error feedback, or with decay 1, the residual is left alone. */
static void test_residual_decay(void **state)
{
    (void)state;
    rng_state = 0xdecau;
    const size_t n = 3000;
    float *d = malloc(n * 4), *r = malloc(n * 4), *r0 = malloc(n * 4), *acc = malloc(n * 4);
    fill(d, n);
    fill(r0, n);
    struct codec_params p = params(300, 9, CODEC_QUANT_INT8, 1, 1);
    memcpy(r, r0, n * 4);
    codec_residual_decay(&p, r, n, 0.8f);
    for (size_t i = 0; i < n; i++)
        assert_true(r[i] == r0[i] * 0.8f);
    uint8_t *pl;
    size_t len;
    assert_int_equal(codec_encode(d, n, &p, r, &pl, &len), 0);
    memset(acc, 0, n * 4);
    assert_int_equal(codec_decode_accumulate(pl, len, n, 1.0f, acc, NULL, 0), 0);
    for (size_t i = 0; i < n; i++) {
        float want = d[i] + 0.8f * r0[i], got = acc[i] + r[i];
        float tol = 2 * FLT_EPSILON * fmaxf(fabsf(want), fabsf(acc[i])) + 1e-37f;
        if (fabsf(want - got) > tol)
            fail_msg("i %zu: %g + 0.8 * %g != %g + %g", i, (double)d[i], (double)r0[i],
                     (double)acc[i], (double)r[i]);
    }
    free(pl);

    memcpy(r, r0, n * 4);
    codec_residual_decay(&p, r, n, 1.0f);
    assert_memory_equal(r, r0, n * 4);
    p.error_feedback = 0;
    codec_residual_decay(&p, r, n, 0.5f);
    assert_memory_equal(r, r0, n * 4);
    codec_residual_decay(&p, NULL, n, 0.5f);
    codec_residual_decay(NULL, r, n, 0.5f);
    assert_memory_equal(r, r0, n * 4);
    free(d);
    free(r);
    free(r0);
    free(acc);
}

static void test_weighted_accumulate(void **state)
{
    (void)state;
    rng_state = 42;
    const size_t n = 3000;
    float *v = malloc(n * 4), *base = malloc(n * 4), *one = calloc(n, 4), *acc = malloc(n * 4);
    fill(v, n);
    for (size_t i = 0; i < n; i++)
        base[i] = gauss();
    for (int q = 0; q < CODEC_QUANT_COUNT; q++) {
        for (uint32_t K = 30; K <= 300; K *= 10) {
            struct codec_params p = params(300, K, (enum codec_quant)q, 3, 0);
            uint8_t *pl;
            size_t len;
            assert_int_equal(codec_encode(v, n, &p, NULL, &pl, &len), 0);
            memset(one, 0, n * 4);
            assert_int_equal(codec_decode_accumulate(pl, len, n, 1.0f, one, NULL, 0), 0);
            memcpy(acc, base, n * 4);
            assert_int_equal(codec_decode_accumulate(pl, len, n, 0.375f, acc, NULL, 0), 0);
            assert_int_equal(codec_decode_accumulate(pl, len, n, -0.125f, acc, NULL, 0), 0);
            for (size_t i = 0; i < n; i++) {
                float want = base[i] + 0.25f * one[i];
                assert_true(fabsf(acc[i] - want) <= 4 * FLT_EPSILON * (fabsf(base[i]) +
                                                                      fabsf(one[i])) + 1e-30f);
            }
            free(pl);
        }
    }
    free(v);
    free(base);
    free(one);
    free(acc);
}

/* codec_decode_accumulate_support: support gains the weight exactly at the positions the
 * payload carries (the reference top-k set; every position when dense), acc gains
 * exactly what codec_decode_accumulate adds, and a refused payload touches neither. */
static void test_accumulate_support(void **state)
{
    (void)state;
    rng_state = 4242;
    const size_t n = 1000;              /* B 300: the last block holds 100 values */
    const float w = 0.75f;
    float *v = malloc(n * 4), *one = malloc(n * 4), *acc = malloc(n * 4), *acc_ref = malloc(n * 4);
    float *sup = malloc(n * 4), *sup0 = malloc(n * 4);
    uint8_t *kept = malloc(n);
    fill(v, n);
    for (size_t i = 0; i < n; i++)
        sup0[i] = (float)(i % 5);
    for (int q = 0; q < CODEC_QUANT_COUNT; q++)
        for (int z = 0; z <= 3; z += 3)
            for (uint32_t K = 7; K <= 300; K += 293) {      /* sparse, then dense */
                struct codec_params p = params(300, K, (enum codec_quant)q, z, 0);
                uint8_t *pl;
                size_t len;
                assert_int_equal(codec_encode(v, n, &p, NULL, &pl, &len), 0);
                memset(one, 0, n * 4);
                assert_int_equal(codec_decode_accumulate(pl, len, n, 1.0f, one, NULL, 0), 0);
                for (size_t i = 0; i < n; i++)
                    acc[i] = acc_ref[i] = (float)i * 0.01f - 2.0f;
                memcpy(sup, sup0, n * 4);
                assert_int_equal(codec_decode_accumulate(pl, len, n, w, acc_ref, NULL, 0), 0);
                char why[200];
                assert_int_equal(codec_decode_accumulate_support(pl, len, n, w, acc, sup, why,
                                                                 sizeof why), 0);
                assert_memory_equal(acc, acc_ref, n * 4);
                if (K >= 300)
                    memset(kept, 1, n);
                else
                    ref_topk(v, n, 300, K, kept);
                size_t carried = 0;
                for (size_t i = 0; i < n; i++) {
                    if (one[i] != 0.0f && !kept[i])
                        fail_msg("quant %d K %u: value %zu decodes nonzero but is not kept", q,
                                 K, i);
                    float want = kept[i] ? sup0[i] + w : sup0[i];
                    if (sup[i] != want)
                        fail_msg("quant %d K %u: support[%zu] = %g, want %g", q, K, i,
                                 (double)sup[i], (double)want);
                    carried += kept[i];
                }
                assert_true(K >= 300 ? carried == n : carried < n / 10);
                /* support NULL is plain accumulation */
                memcpy(acc, acc_ref, n * 4);
                assert_int_equal(codec_decode_accumulate_support(pl, len, n, -w, acc, NULL, NULL,
                                                                 0), 0);
                assert_int_equal(codec_decode_accumulate(pl, len, n, w, acc, NULL, 0), 0);
                for (size_t i = 0; i < n; i++)
                    assert_float_equal(acc[i], acc_ref[i], 1e-5);
                /* refused: truncated, trailing byte, wrong length, a position out of range */
                memcpy(acc, acc_ref, n * 4);
                memcpy(sup, sup0, n * 4);
                uint8_t *bad = malloc(len + 1);
                memcpy(bad, pl, len);
                bad[len] = 0;
                assert_true(codec_decode_accumulate_support(bad, len - 1, n, w, acc, sup, why,
                                                            sizeof why) < 0);
                assert_true(codec_decode_accumulate_support(bad, len + 1, n, w, acc, sup, why,
                                                            sizeof why) < 0);
                assert_int_equal(codec_decode_accumulate_support(pl, len, n + 1, w, acc, sup, why,
                                                                 sizeof why), CODEC_ERR_LENGTH);
                assert_true(why[0] != '\0');
                if (q == CODEC_QUANT_INT8 && z == 0 && K < 300) {
                    /* the last gap walks out of its block: found after three good blocks */
                    const size_t nb = 4;
                    uint64_t total;
                    memcpy(&total, pl + 24, 8);
                    const size_t gaps = CODEC_HEADER_LEN + 2 * nb + 4 * nb;
                    memcpy(bad + gaps + 2 * (total - 1), &(uint16_t){0xffff}, 2);
                    assert_int_equal(codec_decode_accumulate_support(bad, len, n, w, acc, sup,
                                                                     why, sizeof why),
                                     CODEC_ERR_INDEX);
                }
                assert_memory_equal(acc, acc_ref, n * 4);
                assert_memory_equal(sup, sup0, n * 4);
                free(bad);
                free(pl);
            }

    /* A position the payload carries counts even when its value quantizes to zero: int8
     * with scale 1/127 sends 1e-6 as 0. Exact zeros are never kept. */
    const float tiny[8] = { 1.0f, 1e-6f, 0.0f, 0.0f, 0.0f, -2.0f, 0.0f, 0.0f };
    struct codec_params p = params(4, 2, CODEC_QUANT_INT8, 0, 0);
    uint8_t *pl;
    size_t len;
    assert_int_equal(codec_encode(tiny, 8, &p, NULL, &pl, &len), 0);
    float a[8] = { 0 }, s[8] = { 0 };
    assert_int_equal(codec_decode_accumulate_support(pl, len, 8, 2.0f, a, s, NULL, 0), 0);
    const float want_a[8] = { 2.0f, 0.0f, 0, 0, 0, -4.0f, 0, 0 };
    const float want_s[8] = { 2.0f, 2.0f, 0, 0, 0, 2.0f, 0, 0 };
    assert_memory_equal(a, want_a, sizeof a);
    assert_memory_equal(s, want_s, sizeof s);
    free(pl);

    free(v);
    free(one);
    free(acc);
    free(acc_ref);
    free(sup);
    free(sup0);
    free(kept);
}

static void test_edge_shapes(void **state)
{
    (void)state;
    uint8_t *pl;
    size_t len;
    char why[200];
    /* n = 0 */
    struct codec_params p = params(4096, 41, CODEC_QUANT_INT8, 3, 1);
    assert_int_equal(codec_encode(NULL, 0, &p, NULL, &pl, &len), 0);
    assert_int_equal(len, CODEC_HEADER_LEN);
    assert_int_equal(codec_decode_accumulate(pl, len, 0, 1.0f, NULL, why, sizeof why), 0);
    free(pl);
    /* all zeros: nothing kept, residual stays zero */
    float z[1000] = {0}, r[1000] = {0}, acc[1000];
    assert_int_equal(codec_encode(z, 1000, &p, r, &pl, &len), 0);
    for (size_t i = 0; i < 1000; i++)
        acc[i] = 1.0f;
    assert_int_equal(codec_decode_accumulate(pl, len, 1000, 1.0f, acc, why, sizeof why), 0);
    for (size_t i = 0; i < 1000; i++)
        assert_true(acc[i] == 1.0f && r[i] == 0.0f);
    free(pl);
    /* fewer non-zeros than k: only those are kept */
    float few[100] = {0};
    few[3] = 1.0f;
    few[70] = -2.0f;
    uint8_t kept[100];
    p = params(64, 10, CODEC_QUANT_INT8, 0, 0);
    assert_int_equal(codec_encode(few, 100, &p, NULL, &pl, &len), 0);
    kept_set(pl, len, 100, kept, NULL);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(kept[i], i == 3 || i == 70);
    free(pl);
    /* ties: equal magnitudes go to the lower index */
    float tie[256];
    for (size_t i = 0; i < 256; i++)
        tie[i] = (i & 1) ? 0.5f : -0.5f;
    p = params(256, 5, CODEC_QUANT_FP32, 0, 0);
    assert_int_equal(codec_encode(tie, 256, &p, NULL, &pl, &len), 0);
    uint8_t kt[256];
    kept_set(pl, len, 256, kt, NULL);
    for (size_t i = 0; i < 256; i++)
        assert_int_equal(kt[i], i < 5);
    free(pl);
    /* the largest block: u16 positions reach 65535 */
    size_t n = 3 * 65536 + 17;
    float *big = malloc(n * 4), *bacc = calloc(n, 4);
    uint8_t *bk = malloc(n), *bref = malloc(n);
    rng_state = 99;
    fill(big, n);
    big[65535] = 1e3f;
    p = params(65536, 655, CODEC_QUANT_INT8, 3, 0);
    assert_int_equal(codec_encode(big, n, &p, NULL, &pl, &len), 0);
    assert_int_equal(codec_decode_accumulate(pl, len, n, 1.0f, bacc, why, sizeof why), 0);
    kept_set(pl, len, n, bk, NULL);
    ref_topk(big, n, 65536, 655, bref);
    assert_memory_equal(bk, bref, n);
    assert_true(bk[65535]);
    assert_true(fabsf(bacc[65535] - 1e3f) < 1e3f / 254);
    free(pl);
    /* deterministic bytes */
    uint8_t *pl2;
    size_t len2;
    assert_int_equal(codec_encode(big, n, &p, NULL, &pl, &len), 0);
    assert_int_equal(codec_encode(big, n, &p, NULL, &pl2, &len2), 0);
    assert_int_equal(len, len2);
    assert_memory_equal(pl, pl2, len);
    free(pl);
    free(pl2);
    free(big);
    free(bacc);
    free(bk);
    free(bref);
}

static void test_encode_refuses_nonfinite(void **state)
{
    (void)state;
    float d[600], r[600], r0[600];
    for (int i = 0; i < 600; i++) {
        d[i] = (float)i * 1e-3f;
        r[i] = 1e-4f;
    }
    memcpy(r0, r, sizeof r);
    d[450] = NAN;
    struct codec_params p = params(128, 4, CODEC_QUANT_INT8, 1, 1);
    uint8_t *pl = (uint8_t *)1;
    size_t len;
    assert_int_equal(codec_encode(d, 600, &p, r, &pl, &len), CODEC_ERR_NONFINITE);
    assert_null(pl);
    assert_memory_equal(r, r0, sizeof r);       /* untouched, even blocks before 450 */
    d[450] = 0;
    r[10] = INFINITY;
    memcpy(r0, r, sizeof r);
    assert_int_equal(codec_encode(d, 600, &p, r, &pl, &len), CODEC_ERR_NONFINITE);
    assert_memory_equal(r, r0, sizeof r);
    r[10] = 0;
    p.error_feedback = 0;
    d[599] = -INFINITY;
    assert_int_equal(codec_encode(d, 600, &p, NULL, &pl, &len), CODEC_ERR_NONFINITE);
    d[599] = FLT_MAX;   /* finite extremes are fine */
    d[0] = -FLT_MAX;
    for (int q = 0; q < CODEC_QUANT_COUNT; q++) {
        p.quant = (enum codec_quant)q;
        float acc[600] = {0};
        assert_int_equal(codec_encode(d, 600, &p, NULL, &pl, &len), 0);
        assert_int_equal(codec_decode_accumulate(pl, len, 600, 1.0f, acc, NULL, 0), 0);
        for (int i = 0; i < 600; i++)
            assert_true(isfinite(acc[i]));
        free(pl);
    }
    assert_int_equal(codec_encode(d, 600, NULL, NULL, &pl, &len), CODEC_ERR_ARG);
}

/* --- hostile payloads ------------------------------------------------------------ */

static uint8_t *make(uint32_t B, uint32_t K, enum codec_quant q, int zstd, size_t n, size_t *len)
{
    float *v = malloc(n * 4);
    rng_state = 777 + B + K + (unsigned)q;
    fill(v, n);
    struct codec_params p = params(B, K, q, zstd, 0);
    uint8_t *pl;
    assert_int_equal(codec_encode(v, n, &p, NULL, &pl, len), 0);
    free(v);
    return pl;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Decodes a hostile payload into an accumulator filled with a pattern and checks the
 * error code and that not one float changed. */
static void expect_reject(const uint8_t *pl, size_t len, size_t n, int code, const char *what)
{
    float *acc = malloc((n ? n : 1) * 4), *copy = malloc((n ? n : 1) * 4);
    for (size_t i = 0; i < n; i++)
        acc[i] = copy[i] = (float)i * 0.5f - 3.0f;
    char why[256] = "";
    int rc = codec_decode_accumulate(pl, len, n, 1.0f, acc, why, sizeof why);
    if (rc != code)
        fail_msg("%s: expected %d (%s), got %d (%s: %s)", what, code, codec_strerror(code), rc,
                 codec_strerror(rc), why);
    assert_true(why[0] != '\0');
    assert_memory_equal(acc, copy, n * 4);
    free(acc);
    free(copy);
}

static void test_hostile_header(void **state)
{
    (void)state;
    const size_t n = 2000;
    size_t len;
    uint8_t *good = make(256, 16, CODEC_QUANT_INT8, 0, n, &len);
    uint8_t *b = malloc(len + 64);
#define MUT(stmt, code, what)                   \
    do {                                        \
        memcpy(b, good, len);                   \
        size_t blen = len;                      \
        stmt;                                   \
        expect_reject(b, blen, n, code, what);  \
    } while (0)
    MUT(blen = 0, CODEC_ERR_TRUNCATED, "empty");
    MUT(blen = 39, CODEC_ERR_TRUNCATED, "short header");
    MUT(b[0] = 'X', CODEC_ERR_MAGIC, "magic");
    MUT(b[4] = 2, CODEC_ERR_VERSION, "version");
    MUT(b[6] = 5, CODEC_ERR_HEADER, "quant");
    MUT(b[7] = 0x80, CODEC_ERR_HEADER, "flags");
    MUT(put32(b + 8, 0), CODEC_ERR_HEADER, "block 0");
    MUT(put32(b + 8, 65537), CODEC_ERR_HEADER, "block too big");
    MUT(put32(b + 12, 0), CODEC_ERR_HEADER, "k 0");
    MUT(put32(b + 12, 257), CODEC_ERR_HEADER, "k > block");
    MUT(put64(b + 16, n + 1), CODEC_ERR_LENGTH, "n");
    MUT(put64(b + 16, UINT64_MAX), CODEC_ERR_HEADER, "n huge");
    MUT(put64(b + 24, 8 * 16 * 1000), CODEC_ERR_COUNT, "total > possible");
    MUT(put64(b + 32, 12), CODEC_ERR_HEADER, "body_len");
    MUT(blen = len - 1, CODEC_ERR_TRUNCATED, "body truncated");
    MUT((b[len] = 0, blen = len + 1), CODEC_ERR_TRAILING, "trailing byte");
    /* dense header claiming fewer values than n */
    size_t dlen;
    uint8_t *dense = make(256, 256, CODEC_QUANT_INT8, 0, n, &dlen);
    put64(dense + 24, n - 1);
    expect_reject(dense, dlen, n, CODEC_ERR_COUNT, "dense total");
    free(dense);
    free(good);
    free(b);
#undef MUT
}

static void test_hostile_sections(void **state)
{
    (void)state;
    const size_t n = 2000;   /* B 256: 8 blocks, last of 208 */
    const uint32_t B = 256, K = 16;
    const uint64_t nb = 8;
    size_t len;
    uint8_t *good = make(B, K, CODEC_QUANT_INT8, 0, n, &len);
    uint64_t total;
    memcpy(&total, good + 24, 8);
    uint8_t *b = malloc(len);
    const size_t counts = CODEC_HEADER_LEN, scales = counts + 2 * nb, gaps = scales + 4 * nb,
                 vals = gaps + 2 * total;
    uint16_t c0, c1;
    memcpy(&c0, good + counts, 2);
    memcpy(&c1, good + counts + 2, 2);
    assert_int_equal(c0, K);

    memcpy(b, good, len);       /* block 0 claims 17 values, block 1 one fewer */
    uint16_t x = (uint16_t)(c0 + 1), y = (uint16_t)(c1 - 1);
    memcpy(b + counts, &x, 2);
    memcpy(b + counts + 2, &y, 2);
    expect_reject(b, len, n, CODEC_ERR_COUNT, "count > k");

    memcpy(b, good, len);       /* counts not adding up to total */
    y = (uint16_t)(c1 - 1);
    memcpy(b + counts + 2, &y, 2);
    expect_reject(b, len, n, CODEC_ERR_COUNT, "sum of counts");

    memcpy(b, good, len);       /* a gap that walks out of the block */
    uint16_t g = 0xffff;
    memcpy(b + gaps + 2 * 3, &g, 2);
    expect_reject(b, len, n, CODEC_ERR_INDEX, "gap out of block");

    memcpy(b, good, len);       /* the short last block: 208 values */
    uint64_t last_first = total - 1;
    memcpy(b + gaps + 2 * last_first, &(uint16_t){207}, 2);
    memcpy(b + gaps + 2 * (last_first - 1), &(uint16_t){0}, 2);
    int ok_or_index = codec_decode_accumulate(b, len, n, 1.0f, (float[2000]){0}, NULL, 0);
    assert_true(ok_or_index == 0 || ok_or_index == CODEC_ERR_INDEX);

    float bad_scales[] = {NAN, INFINITY, -1.0f, -0.0f, FLT_MAX / 100.0f};
    for (size_t i = 0; i < sizeof bad_scales / sizeof *bad_scales; i++) {
        memcpy(b, good, len);
        memcpy(b + scales + 4 * 5, &bad_scales[i], 4);
        expect_reject(b, len, n, CODEC_ERR_SCALE, "scale");
    }
    memcpy(b, good, len);
    b[vals + 7] = 0x80;
    expect_reject(b, len, n, CODEC_ERR_VALUE, "int8 -128");
    free(good);
    free(b);

    /* value codes of the other formats */
    struct { enum codec_quant q; uint8_t byte; } bad[] = {
        {CODEC_QUANT_FP8_E4M3, 0x7f}, {CODEC_QUANT_FP8_E4M3, 0xff}, {CODEC_QUANT_INT4, 0x08},
        {CODEC_QUANT_INT4, 0x80}, {CODEC_QUANT_FP16, 0x7c}, {CODEC_QUANT_FP32, 0x7f}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t *pl = make(B, K, bad[i].q, 0, n, &len);
        uint64_t t;
        memcpy(&t, pl + 24, 8);
        size_t voff = CODEC_HEADER_LEN + 2 * nb + (bad[i].q == CODEC_QUANT_FP32 ? 0 : 4 * nb) +
                      2 * t;
        if (bad[i].q == CODEC_QUANT_FP16) {
            pl[voff + 2 * 4 + 1] = 0x7c;        /* exponent all ones: Inf */
            pl[voff + 2 * 4] = 0;
        } else if (bad[i].q == CODEC_QUANT_FP32) {
            pl[voff + 4 * 4 + 3] = 0x7f;        /* NaN */
            pl[voff + 4 * 4 + 2] = 0xc0;
        } else {
            pl[voff + 4] = bad[i].byte;
        }
        expect_reject(pl, len, n, CODEC_ERR_VALUE, codec_quant_name(bad[i].q));
        free(pl);
    }
    /* int4 with an odd total: the spare nibble must be zero */
    float v[300];
    for (int i = 0; i < 300; i++)
        v[i] = (float)(i % 17) - 8.0f;
    struct codec_params p = params(300, 9, CODEC_QUANT_INT4, 0, 0);
    uint8_t *pl;
    assert_int_equal(codec_encode(v, 300, &p, NULL, &pl, &len), 0);
    uint64_t t;
    memcpy(&t, pl + 24, 8);
    assert_int_equal(t, 9);
    pl[len - 1] |= 0x10;
    expect_reject(pl, len, 300, CODEC_ERR_VALUE, "int4 spare nibble");
    free(pl);
}

static size_t compress_frame(const uint8_t *src, size_t len, uint8_t *dst, size_t cap,
                             int with_size)
{
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, with_size);
    size_t r;
    if (with_size) {
        r = ZSTD_compress2(cc, dst, cap, src, len);
    } else {
        ZSTD_outBuffer out = {dst, cap, 0};
        ZSTD_inBuffer in = {src, len, 0};
        ZSTD_compressStream2(cc, &out, &in, ZSTD_e_continue);
        do
            r = ZSTD_compressStream2(cc, &out, &in, ZSTD_e_end);
        while (r != 0 && !ZSTD_isError(r));
        r = out.pos;
    }
    ZSTD_freeCCtx(cc);
    assert_false(ZSTD_isError(r));
    return r;
}

static void test_hostile_zstd(void **state)
{
    (void)state;
    const size_t n = 5000;
    size_t rlen;
    uint8_t *raw = make(512, 20, CODEC_QUANT_INT8, 0, n, &rlen);   /* raw body */
    size_t body = rlen - CODEC_HEADER_LEN;
    size_t cap = CODEC_HEADER_LEN + ZSTD_compressBound(body * 4 + 1000) + 64;
    uint8_t *b = malloc(cap), *big = calloc(1, body * 4 + 1000);

    /* a frame that does not declare its content size */
    memcpy(b, raw, CODEC_HEADER_LEN);
    b[7] = 1;
    size_t z = compress_frame(raw + CODEC_HEADER_LEN, body, b + CODEC_HEADER_LEN,
                              cap - CODEC_HEADER_LEN, 0);
    expect_reject(b, CODEC_HEADER_LEN + z, n, CODEC_ERR_FRAME, "no content size");

    /* the well-formed frame decodes */
    z = compress_frame(raw + CODEC_HEADER_LEN, body, b + CODEC_HEADER_LEN, cap - CODEC_HEADER_LEN, 1);
    float *acc = calloc(n, 4);
    assert_int_equal(codec_decode_accumulate(b, CODEC_HEADER_LEN + z, n, 1.0f, acc, NULL, 0), 0);
    size_t zlen = CODEC_HEADER_LEN + z;
    /* trailing bytes after the frame */
    b[zlen] = 0;
    expect_reject(b, zlen + 1, n, CODEC_ERR_TRAILING, "byte after frame");
    /* a second frame after the first */
    memcpy(b + zlen, b + CODEC_HEADER_LEN, z);
    expect_reject(b, zlen + z, n, CODEC_ERR_TRAILING, "two frames");
    /* truncated frame */
    expect_reject(b, zlen - 1, n, CODEC_ERR_TRUNCATED, "frame cut short");
    expect_reject(b, CODEC_HEADER_LEN + 3, n, CODEC_ERR_TRUNCATED, "frame header cut");
    /* garbage instead of a frame */
    memset(b + CODEC_HEADER_LEN, 0xab, 64);
    expect_reject(b, CODEC_HEADER_LEN + 64, n, CODEC_ERR_FRAME, "not a frame");
    /* a frame declaring more than the header's body (a decompression bomb) */
    memcpy(big, raw + CODEC_HEADER_LEN, body);
    z = compress_frame(big, body * 4 + 1000, b + CODEC_HEADER_LEN, cap - CODEC_HEADER_LEN, 1);
    expect_reject(b, CODEC_HEADER_LEN + z, n, CODEC_ERR_FRAME, "frame larger than body");
    /* and one declaring less */
    z = compress_frame(raw + CODEC_HEADER_LEN, body - 2, b + CODEC_HEADER_LEN,
                       cap - CODEC_HEADER_LEN, 1);
    expect_reject(b, CODEC_HEADER_LEN + z, n, CODEC_ERR_FRAME, "frame smaller than body");
    /* a valid frame around a hostile body is still checked section by section */
    uint8_t *evil = malloc(body);
    memcpy(evil, raw + CODEC_HEADER_LEN, body);
    memcpy(evil + 2 * 10 + 4 * 10 + 2 * 5, &(uint16_t){0xfff0}, 2);
    z = compress_frame(evil, body, b + CODEC_HEADER_LEN, cap - CODEC_HEADER_LEN, 1);
    expect_reject(b, CODEC_HEADER_LEN + z, n, CODEC_ERR_INDEX, "index inside zstd");
    free(evil);
    free(acc);
    free(raw);
    free(b);
    free(big);
}

/* Random damage to valid payloads: either a clean error with the accumulator untouched
 * or a valid decode; never a crash (run under ASan/UBSan). */
static void test_random_damage(void **state)
{
    (void)state;
    const size_t n = 3000;
    float *acc = malloc(n * 4), *copy = malloc(n * 4);
    int rejected = 0, accepted = 0;
    for (int q = 0; q < CODEC_QUANT_COUNT; q++)
        for (int z = 0; z <= 1; z++)
            for (uint32_t K = 8; K <= 512; K *= 64) {
                size_t len;
                uint8_t *good = make(512, K, (enum codec_quant)q, z ? 3 : 0, n, &len);
                uint8_t *b = malloc(len + 16);
                for (int it = 0; it < 300; it++) {
                    memcpy(b, good, len);
                    size_t blen = len;
                    int kind = (int)(rng() % 4);
                    if (kind <= 1) {
                        int flips = 1 + (int)(rng() % 4);
                        for (int f = 0; f < flips; f++) {
                            size_t at = rng() % len;
                            if (kind == 1)      /* bias towards the header and sections */
                                at = rng() % (len < 200 ? len : 200);
                            b[at] ^= (uint8_t)(1u << (rng() % 8));
                        }
                    } else if (kind == 2) {
                        blen = rng() % len;
                    } else {
                        blen = len + 1 + rng() % 16;
                        for (size_t i = len; i < blen; i++)
                            b[i] = (uint8_t)rng();
                    }
                    for (size_t i = 0; i < n; i++)
                        acc[i] = copy[i] = (float)(i % 7);
                    char why[256];
                    int rc = codec_decode_accumulate(b, blen, n, 0.5f, acc, why, sizeof why);
                    if (rc) {
                        rejected++;
                        assert_true(rc <= -1300 && rc >= -1399);
                        assert_memory_equal(acc, copy, n * 4);
                    } else {
                        accepted++;
                        for (size_t i = 0; i < n; i++)
                            assert_true(isfinite(acc[i]));
                    }
                }
                free(b);
                free(good);
            }
    assert_true(rejected > 0);
    print_message("random damage: %d rejected cleanly, %d still valid\n", rejected, accepted);
    free(acc);
    free(copy);
}

static void test_args_and_strings(void **state)
{
    (void)state;
    size_t len;
    uint8_t *pl = make(64, 4, CODEC_QUANT_INT8, 1, 100, &len);
    float acc[100] = {0};
    char why[100];
    assert_int_equal(codec_decode_accumulate(NULL, len, 100, 1.0f, acc, why, sizeof why),
                     CODEC_ERR_ARG);
    assert_int_equal(codec_decode_accumulate(pl, len, 100, 1.0f, NULL, why, sizeof why),
                     CODEC_ERR_ARG);
    assert_int_equal(codec_decode_accumulate(pl, len, 100, NAN, acc, why, sizeof why),
                     CODEC_ERR_ARG);
    assert_int_equal(codec_decode_accumulate(pl, len, 100, INFINITY, acc, NULL, 0),
                     CODEC_ERR_ARG);
    assert_int_equal(codec_decode_accumulate(pl, len, 100, 1.0f, acc, NULL, 0), 0);
    free(pl);
    for (int code = -1300; code >= -1331; code--) {
        const char *s = codec_strerror(code);
        assert_non_null(s);
    }
    assert_string_equal(codec_strerror(CODEC_ERR_INDEX), "payload position out of range");
    assert_string_equal(codec_strerror(-1), "unknown codec error");
    assert_string_equal(codec_quant_name(CODEC_QUANT_FP8_E4M3), "fp8");
}

/* The number formats against their definitions. */
static void test_number_formats(void **state)
{
    (void)state;
    assert_true(codec_f16_to_f32(codec_f32_to_f16(1.0f)) == 1.0f);
    assert_int_equal(codec_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(codec_f32_to_f16(1e9f), 0x7bff);           /* saturates */
    assert_int_equal(codec_f32_to_f16(5.9604645e-8f), 0x0001);  /* smallest subnormal */
    assert_int_equal(codec_f32_to_f16(-2.0f), 0xc000);
    assert_int_equal(codec_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);   /* tie to even */
    assert_int_equal(codec_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
    assert_int_equal(codec_f32_to_e4m3(448.0f), 0x7e);
    assert_int_equal(codec_f32_to_e4m3(1e6f), 0x7e);
    assert_int_equal(codec_f32_to_e4m3(-448.0f), 0xfe);
    assert_int_equal(codec_f32_to_e4m3(1.0f), 0x38);
    assert_int_equal(codec_f32_to_e4m3(0.001953125f), 0x01);   /* 2^-9 */
    assert_int_equal(codec_f32_to_e4m3(1.0625f), 0x38);        /* tie to even */
    assert_int_equal(codec_f32_to_e4m3(1.1875f), 0x3a);
    for (int b = 0; b < 256; b++) {
        if ((b & 0x7f) == 0x7f)
            continue;
        float f = codec_e4m3_to_f32((uint8_t)b);
        assert_int_equal(codec_f32_to_e4m3(f), (b == 0x80) ? 0x80 : b);
    }
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) == 0x7c00)
            continue;
        float f = codec_f16_to_f32((uint16_t)h);
        assert_int_equal(codec_f32_to_f16(f), h);
    }
    assert_true(codec_rint(2.5f) == 2.0f && codec_rint(3.5f) == 4.0f &&
                codec_rint(-2.5f) == -2.0f && codec_rint(1e9f) == 1e9f);
}

/* codec_encode_fd writes, after the caller's prefix, exactly codec_encode's payload and
 * leaves exactly its residual, for dense (pieces, streamed zstd, raw when zstd does not
 * help) and sparse settings, across piece boundaries and int4 nibble packing. */
static void fd_release(void *arg, size_t lo, size_t hi)
{
    size_t *done = arg;
    assert_true(lo <= hi);
    if (hi > *done)
        *done = hi;
}

static void test_encode_fd_equals_encode(void **state)
{
    (void)state;
    static const struct {
        size_t n;
        uint32_t B, k;
        enum codec_quant q;
        int zstd, ef;
    } cases[] = {
        {(size_t)CODEC_RELEASE_CHUNK + 70001, 4096, 4096, CODEC_QUANT_FP16, 3, 1},
        {(size_t)CODEC_RELEASE_CHUNK + 70001, 4096, 4096, CODEC_QUANT_INT8, 1, 0},
        {300001, 1001, 5000, CODEC_QUANT_INT4, 3, 1},
        {300001, 777, 777, CODEC_QUANT_FP8_E4M3, 9, 1},
        {300001, 4096, 4096, CODEC_QUANT_FP32, 1, 1},   /* zstd does not help: raw body */
        {300001, 4096, 4096, CODEC_QUANT_FP32, 0, 0},
        {300001, 4096, 41, CODEC_QUANT_INT8, 3, 1},     /* sparse */
        {5, 4096, 4096, CODEC_QUANT_FP16, 3, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = cases[c].n;
        struct codec_params p;
        codec_params_default(&p);
        p.block_size = cases[c].B;
        p.k_per_block = cases[c].k;
        p.quant = cases[c].q;
        p.zstd_level = cases[c].zstd;
        p.error_feedback = cases[c].ef;
        float *d = malloc(n * sizeof *d), *r1 = malloc(n * sizeof *r1),
              *r2 = malloc(n * sizeof *r2);
        assert_non_null(d);
        assert_non_null(r1);
        assert_non_null(r2);
        rng_state = 0x1234567 + c;
        fill(d, n);
        for (size_t i = 0; i < n; i++)
            r1[i] = r2[i] = 0.01f * gauss();
        uint8_t *want;
        size_t want_len;
        assert_int_equal(codec_encode(d, n, &p, r1, &want, &want_len), 0);
        FILE *f = tmpfile();
        assert_non_null(f);
        int fd = fileno(f);
        /* Stale bytes past the payload's end must go. */
        uint8_t junk[4096];
        memset(junk, 0xa5, sizeof junk);
        for (int i = 0; i < 64; i++)
            assert_int_equal(pwrite(fd, junk, sizeof junk, (off_t)i * 4096), 4096);
        size_t released = 0;
        uint64_t got_len = 0;
        assert_int_equal(codec_encode_fd(d, n, &p, r2, fd_release, &released, fd, 32, &got_len),
                         0);
        assert_int_equal(got_len, want_len);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        assert_int_equal((uint64_t)st.st_size, 32 + want_len);
        uint8_t *got = malloc(want_len + 32);
        assert_non_null(got);
        assert_int_equal(pread(fd, got, want_len + 32, 0), (ssize_t)(want_len + 32));
        assert_memory_equal(got, junk, 32);             /* the prefix is the caller's */
        assert_memory_equal(got + 32, want, want_len);  /* every byte */
        assert_memory_equal(r1, r2, n * sizeof *r1);    /* the residual, bit for bit */
        if (p.error_feedback)
            assert_int_equal(released, n);
        fclose(f);
        free(got);
        free(want);
        free(d);
        free(r1);
        free(r2);
    }
    float x = 1.0f;
    uint64_t len;
    struct codec_params p;
    codec_params_default(&p);
    p.error_feedback = 0;
    assert_int_equal(codec_encode_fd(&x, 1, &p, NULL, NULL, NULL, -1, 0, &len), CODEC_ERR_ARG);
    p.k_per_block = p.block_size;
    assert_int_equal(codec_encode_fd(&x, 1, &p, NULL, NULL, NULL, open("/", O_RDONLY), 0, &len),
                     CODEC_ERR_IO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_number_formats),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_selection_patterns),
        cmocka_unit_test(test_error_feedback_conserves),
        cmocka_unit_test(test_residual_decay),
        cmocka_unit_test(test_weighted_accumulate),
        cmocka_unit_test(test_accumulate_support),
        cmocka_unit_test(test_edge_shapes),
        cmocka_unit_test(test_encode_refuses_nonfinite),
        cmocka_unit_test(test_hostile_header),
        cmocka_unit_test(test_hostile_sections),
        cmocka_unit_test(test_hostile_zstd),
        cmocka_unit_test(test_random_damage),
        cmocka_unit_test(test_args_and_strings),
        cmocka_unit_test(test_encode_fd_equals_encode),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
