/* codec/codec.h codec_reader: reading a payload block by block gives exactly what
 * codec_decode_accumulate_support decodes (values and carried positions), for random
 * payloads of every quantization, dense and sparse, zstd on and off, short last blocks
 * and int4 blocks that share a byte; hostile payloads fail with the whole decoder's
 * code; random damage is refused by both or accepted by both with equal values. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static double uniform(void) { return (double)(next_u64() >> 11) * 0x1p-53; }
static float gauss(void)
{
    double u1 = uniform() + 1e-300, u2 = uniform();
    return (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Reads the payload whole with the reader: values into out (n floats) and carried
 * positions into present. Returns 0 or the first error (open or a block's). */
static int read_all(const uint8_t *p, size_t len, size_t n, float *out, uint8_t *present,
                    size_t *blocks)
{
    struct codec_reader *r;
    char why[256];
    int rc = codec_reader_open(p, len, n, &r, why, sizeof why);
    if (rc)
        return rc;
    uint32_t B = codec_reader_block_size(r);
    float *v = malloc(B * sizeof *v);
    uint8_t *pr = malloc(B);
    size_t at = 0, nb = 0;
    for (;;) {
        size_t got;
        rc = codec_reader_next(r, v, pr, &got, why, sizeof why);
        if (rc || got == 0)
            break;
        assert_true(got <= B);
        assert_true(at + got <= n);
        /* Every block is B long but the last. */
        assert_true(got == B || at + got == n);
        memcpy(out + at, v, got * sizeof *v);
        memcpy(present + at, pr, got);
        at += got;
        nb++;
    }
    if (!rc)
        assert_int_equal(at, n);
    /* A failed reader keeps failing. */
    if (rc) {
        size_t got;
        assert_int_equal(codec_reader_next(r, v, pr, &got, why, sizeof why), rc);
        assert_int_equal(got, 0);
    }
    free(v);
    free(pr);
    codec_reader_free(r);
    if (blocks)
        *blocks = nb;
    return rc;
}

/* Whole decoder: values and support (1 where carried). */
static int decode_whole(const uint8_t *p, size_t len, size_t n, float *acc, float *sup)
{
    memset(acc, 0, n * sizeof *acc);
    memset(sup, 0, n * sizeof *sup);
    return codec_decode_accumulate_support(p, len, n, 1.0f, acc, sup, NULL, 0);
}

static void random_params(struct codec_params *cp, size_t *n)
{
    static const uint32_t blocks[] = { 1, 2, 7, 33, 64, 255, 256, 1000, 4096 };
    codec_params_default(cp);
    cp->block_size = blocks[next_u64() % (sizeof blocks / sizeof blocks[0])];
    uint32_t r = (uint32_t)(next_u64() % 4);
    cp->k_per_block = r == 0 ? cp->block_size
                             : 1 + (uint32_t)(next_u64() % (cp->block_size > 64 ? 64 : cp->block_size));
    cp->quant = (enum codec_quant)(next_u64() % CODEC_QUANT_COUNT);
    cp->zstd_level = next_u64() % 2 ? 0 : 1 + (int)(next_u64() % 5);
    cp->error_feedback = 0;
    *n = 1 + (size_t)(next_u64() % 5000);
}

static void make_delta(float *d, size_t n)
{
    int mode = (int)(next_u64() % 3);
    for (size_t i = 0; i < n; i++) {
        d[i] = gauss();
        if (mode == 1 && next_u64() % 3 == 0)
            d[i] = 0;                    /* blocks with fewer than k non-zero values */
        if (mode == 2)
            d[i] = (float)(next_u64() % 5) - 2.0f;   /* ties and zeros */
    }
}

static void assert_same(const float *acc, const float *sup, const float *got,
                        const uint8_t *present, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (acc[i] != got[i])
            fail_msg("value %zu: whole %a, reader %a", i, (double)acc[i], (double)got[i]);
        assert_int_equal(present[i], sup[i] != 0.0f);
    }
}

static void reads_like_the_whole_decoder(void **state)
{
    int seen_zstd = 0, seen_dense = 0, seen_int4_odd = 0;
    for (int t = 0; t < 600; t++) {
        struct codec_params cp;
        size_t n;
        random_params(&cp, &n);
        float *d = malloc(n * sizeof *d), *acc = malloc(n * sizeof *acc);
        float *sup = malloc(n * sizeof *sup), *got = malloc(n * sizeof *got);
        uint8_t *present = malloc(n);
        make_delta(d, n);
        uint8_t *p;
        size_t len;
        assert_int_equal(codec_encode(d, n, &cp, NULL, &p, &len), 0);
        assert_int_equal(decode_whole(p, len, n, acc, sup), 0);
        size_t nb;
        assert_int_equal(read_all(p, len, n, got, present, &nb), 0);
        assert_int_equal(nb, (n + cp.block_size - 1) / cp.block_size);
        assert_same(acc, sup, got, present, n);
        seen_zstd += p[7] & 1;
        seen_dense += cp.k_per_block >= cp.block_size;
        seen_int4_odd += cp.quant == CODEC_QUANT_INT4 && (cp.block_size & 1);
        free(p);
        free(d);
        free(acc);
        free(sup);
        free(got);
        free(present);
    }
    assert_true(seen_zstd > 50);
    assert_true(seen_dense > 50);
    assert_true(seen_int4_odd > 5);
}

/* One large payload shaped like the 124M policy's uplink (4096, 1 %, int8, zstd 3). */
static void large_sparse_zstd(void **state)
{
    const size_t n = 1000003;
    struct codec_params cp;
    codec_params_default(&cp);
    cp.error_feedback = 0;
    float *d = malloc(n * sizeof *d), *acc = malloc(n * sizeof *acc);
    float *sup = malloc(n * sizeof *sup), *got = malloc(n * sizeof *got);
    uint8_t *present = malloc(n);
    for (size_t i = 0; i < n; i++)
        d[i] = gauss();
    uint8_t *p;
    size_t len;
    assert_int_equal(codec_encode(d, n, &cp, NULL, &p, &len), 0);
    assert_true(p[7] & 1);
    assert_int_equal(decode_whole(p, len, n, acc, sup), 0);
    assert_int_equal(read_all(p, len, n, got, present, NULL), 0);
    assert_same(acc, sup, got, present, n);
    free(p);
    free(d);
    free(acc);
    free(sup);
    free(got);
    free(present);
}

/* A raw (no zstd) payload, to damage at known offsets. */
static uint8_t *raw_payload(size_t n, uint32_t B, uint32_t K, enum codec_quant q, size_t *len)
{
    struct codec_params cp;
    codec_params_default(&cp);
    cp.block_size = B;
    cp.k_per_block = K;
    cp.quant = q;
    cp.zstd_level = 0;
    cp.error_feedback = 0;
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = gauss();
    uint8_t *p;
    assert_int_equal(codec_encode(d, n, &cp, NULL, &p, len), 0);
    free(d);
    return p;
}

static void same_code(const uint8_t *p, size_t len, size_t n, int want)
{
    float *acc = malloc(n * sizeof *acc), *sup = malloc(n * sizeof *sup);
    float *got = malloc(n * sizeof *got);
    uint8_t *present = malloc(n);
    int whole = decode_whole(p, len, n, acc, sup);
    int rd = read_all(p, len, n, got, present, NULL);
    assert_int_equal(whole, want);
    assert_int_equal(rd, want);
    free(acc);
    free(sup);
    free(got);
    free(present);
}

static void hostile_payloads_fail_with_the_same_code(void **state)
{
    const size_t n = 1000;
    const uint32_t B = 64, K = 8;
    const uint64_t nb = (n + B - 1) / B;
    size_t len;
    uint8_t *p = raw_payload(n, B, K, CODEC_QUANT_INT8, &len);
    uint64_t total;
    memcpy(&total, p + 24, 8);
    uint8_t *q = malloc(len + 8);
    const size_t body = 40, counts = body, scales = counts + 2 * nb, gaps = scales + 4 * nb,
                 vals = gaps + 2 * total;

    same_code(p, len, n, 0);
    same_code(p, len, n + 1, CODEC_ERR_LENGTH);
    same_code(p, 39, n, CODEC_ERR_TRUNCATED);
    same_code(p, len - 1, n, CODEC_ERR_TRUNCATED);
    memcpy(q, p, len);
    q[len] = 0;
    same_code(q, len + 1, n, CODEC_ERR_TRAILING);
    memcpy(q, p, len);
    q[0] = 'X';
    same_code(q, len, n, CODEC_ERR_MAGIC);
    /* A scale of block 5 negative. */
    memcpy(q, p, len);
    q[scales + 4 * 5 + 3] |= 0x80;
    same_code(q, len, n, CODEC_ERR_SCALE);
    /* A count of block 3 over k (the total then over the header's too). */
    memcpy(q, p, len);
    q[counts + 2 * 3] = (uint8_t)(K + 1);
    same_code(q, len, n, CODEC_ERR_COUNT);
    /* Two counts moved between blocks: each within k, the sum equal: positions of the
     * block that lost one now walk past it only if the gap says so; a count lowered to
     * 0 in the last block: sum short of total. */
    memcpy(q, p, len);
    q[counts + 2 * (nb - 1)] = 0;
    same_code(q, len, n, CODEC_ERR_COUNT);
    /* A gap that carries block 2's last position out of the block. */
    memcpy(q, p, len);
    {
        uint64_t before = 0;
        for (int b = 0; b < 2; b++)
            before += (uint64_t)q[counts + 2 * b] | (uint64_t)q[counts + 2 * b + 1] << 8;
        q[gaps + 2 * before] = (uint8_t)B;
        q[gaps + 2 * before + 1] = 0;
    }
    same_code(q, len, n, CODEC_ERR_INDEX);
    /* An int8 code -128 in the middle of the values. */
    memcpy(q, p, len);
    q[vals + total / 2] = 0x80;
    same_code(q, len, n, CODEC_ERR_VALUE);
    free(p);
    free(q);

    /* int4: -8 in a block that shares its first byte; the spare nibble. */
    p = raw_payload(101, 7, 3, CODEC_QUANT_INT4, &len);
    memcpy(&total, p + 24, 8);
    q = malloc(len);
    uint64_t nb4 = (101 + 6) / 7;
    size_t v4 = 40 + 2 * nb4 + 4 * nb4 + 2 * total;
    memcpy(q, p, len);
    q[v4 + 1] = (uint8_t)((q[v4 + 1] & 0x0f) | 0x80);    /* value 3: block 1's first */
    same_code(q, len, 101, CODEC_ERR_VALUE);
    if (total & 1) {
        memcpy(q, p, len);
        q[len - 1] |= 0x10;
        same_code(q, len, 101, CODEC_ERR_VALUE);
    }
    free(p);
    free(q);
}

/* zstd frames damaged inside: both refuse; the frame's framing errors share codes. */
static void zstd_damage(void **state)
{
    const size_t n = 20000;
    struct codec_params cp;
    codec_params_default(&cp);
    cp.error_feedback = 0;
    cp.block_size = 256;
    cp.k_per_block = 16;
    float *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++)
        d[i] = gauss();
    uint8_t *p;
    size_t len;
    assert_int_equal(codec_encode(d, n, &cp, NULL, &p, &len), 0);
    assert_true(p[7] & 1);
    uint8_t *q = malloc(len + 16);
    same_code(p, len, n, 0);
    same_code(p, len - 1, n, CODEC_ERR_TRUNCATED);
    memcpy(q, p, len);
    memset(q + len, 0, 16);
    same_code(q, len + 16, n, CODEC_ERR_TRAILING);
    /* The header's body length one more than the frame declares. */
    memcpy(q, p, len);
    q[32]++;
    same_code(q, len, n, CODEC_ERR_HEADER);
    free(p);
    free(q);
    free(d);
}

static void random_damage_agrees(void **state)
{
    int refused = 0, valid = 0;
    for (int t = 0; t < 3000; t++) {
        struct codec_params cp;
        size_t n;
        random_params(&cp, &n);
        if (n > 1500)
            n = 1500;
        float *d = malloc(n * sizeof *d), *acc = malloc(n * sizeof *acc);
        float *sup = malloc(n * sizeof *sup), *got = malloc(n * sizeof *got);
        uint8_t *present = malloc(n);
        make_delta(d, n);
        uint8_t *p;
        size_t len;
        assert_int_equal(codec_encode(d, n, &cp, NULL, &p, &len), 0);
        uint8_t *q = malloc(len + 4);
        memcpy(q, p, len);
        size_t qlen = len;
        int what = (int)(next_u64() % 4);
        if (what == 0 && len > 41)
            qlen = 40 + next_u64() % (len - 40);
        else if (what == 1)
            q[qlen++] = (uint8_t)next_u64();
        else
            for (int f = 0; f < 1 + (int)(next_u64() % 3); f++) {
                size_t at = 40 + (len > 40 ? next_u64() % (len - 40) : 0);
                if (at < len)
                    q[at] ^= (uint8_t)(1u << (next_u64() % 8));
            }
        int whole = decode_whole(q, qlen, n, acc, sup);
        int rd = read_all(q, qlen, n, got, present, NULL);
        if (whole == 0) {
            assert_int_equal(rd, 0);
            assert_same(acc, sup, got, present, n);
            valid++;
        } else {
            if (rd == 0)
                fail_msg("trial %d: the whole decoder refuses (%d), the reader accepts", t, whole);
            refused++;
        }
        free(q);
        free(p);
        free(d);
        free(acc);
        free(sup);
        free(got);
        free(present);
    }
    printf("reader random damage: %d refused by both, %d valid for both\n", refused, valid);
    assert_true(refused > 1000);
}

static void arguments(void **state)
{
    struct codec_reader *r = NULL;
    char why[128];
    assert_int_equal(codec_reader_open(NULL, 0, 1, &r, why, sizeof why), CODEC_ERR_ARG);
    assert_null(r);
    uint8_t x[4] = { 0 };
    assert_int_equal(codec_reader_open(x, sizeof x, 1, NULL, why, sizeof why), CODEC_ERR_ARG);
    float v[1];
    size_t got;
    assert_int_equal(codec_reader_next(NULL, v, NULL, &got, why, sizeof why), CODEC_ERR_ARG);
    assert_int_equal(codec_reader_block_size(NULL), 0);
    codec_reader_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_like_the_whole_decoder),
        cmocka_unit_test(large_sparse_zstd),
        cmocka_unit_test(hostile_payloads_fail_with_the_same_code),
        cmocka_unit_test(zstd_damage),
        cmocka_unit_test(random_damage_agrees),
        cmocka_unit_test(arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
