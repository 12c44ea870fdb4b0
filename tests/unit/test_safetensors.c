/* common/safetensors: round trip, header format, and hostile files rejected. */
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

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/aulac-test-st-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_roundtrip(void **state)
{
    (void)state;
    float w[6] = {1, 2, 3, 4, 5, 6};
    uint16_t h[3] = {0x3C00, 0x4000, 0xC000};
    int64_t big[1] = {-5};
    uint8_t flags[5] = {1, 0, 1, 1, 0};
    double scalar = 3.25;
    struct st_tensor t[] = {
        {.name = "zeta.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = w,
         .nbytes = 24},
        {.name = "alpha", .dtype = ST_F16, .ndim = 1, .shape = {3}, .data = h, .nbytes = 6},
        {.name = "empty", .dtype = ST_F32, .ndim = 2, .shape = {0, 4}, .data = NULL,
         .nbytes = 0},
        {.name = "n\"q\\u\xc3\xa9", .dtype = ST_I64, .ndim = 1, .shape = {1}, .data = big,
         .nbytes = 8},
        {.name = "mask", .dtype = ST_BOOL, .ndim = 1, .shape = {5}, .data = flags, .nbytes = 5},
        {.name = "scalar", .dtype = ST_F64, .ndim = 0, .data = &scalar, .nbytes = 8},
    };
    struct st_meta meta[] = {{"format", "pt"}, {"note", "line\nbreak \"quoted\""}};
    char path[128];
    snprintf(path, sizeof path, "%s/a.safetensors", tmpdir);
    assert_int_equal(safetensors_write(path, t, 6, meta, 2, 0644), 0);

    /* on disk: 8-aligned data, keys sorted, "__metadata__" among them */
    uint8_t *raw;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 20, &raw, &len), 0);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)raw[i] << (8 * i);
    assert_int_equal((8 + hlen) % 8, 0);
    assert_int_equal(len, 8 + hlen + 24 + 6 + 8 + 5 + 8);
    char *hdr = strndup((char *)raw + 8, hlen);
    const char *order[] = {"\"__metadata__\"", "\"alpha\"", "\"empty\"", "\"mask\"",
                           "\"n\\\"q\\\\u", "\"scalar\"", "\"zeta.weight\""};
    const char *prev = hdr;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const char *at = strstr(hdr, order[i]);
        assert_non_null(at);
        assert_true(at >= prev);
        prev = at;
    }
    /* data in the caller's order: zeta first */
    assert_memory_equal(raw + 8 + hlen, w, 24);
    free(hdr);
    free(raw);

    struct safetensors *f;
    assert_int_equal(safetensors_open(path, &f), 0);
    assert_int_equal(safetensors_count(f), 6);
    assert_string_equal(safetensors_tensor(f, 0)->name, "zeta.weight");
    for (size_t i = 0; i < 6; i++) {
        const struct st_tensor *g = safetensors_find(f, t[i].name);
        assert_non_null(g);
        assert_int_equal(g->dtype, t[i].dtype);
        assert_int_equal(g->ndim, t[i].ndim);
        assert_memory_equal(g->shape, t[i].shape, sizeof g->shape[0] * (size_t)g->ndim);
        assert_int_equal(g->nbytes, t[i].nbytes);
        if (t[i].nbytes)
            assert_memory_equal(g->data, t[i].data, t[i].nbytes);
    }
    assert_null(safetensors_find(f, "missing"));
    assert_string_equal(safetensors_meta(f, "format"), "pt");
    assert_string_equal(safetensors_meta(f, "note"), "line\nbreak \"quoted\"");
    assert_int_equal(safetensors_meta_count(f), 2);
    assert_null(safetensors_meta(f, "nope"));
    safetensors_close(f);

    /* no tensors, no metadata: "{}" padded */
    assert_int_equal(safetensors_write(path, NULL, 0, NULL, 0, 0644), 0);
    assert_int_equal(safetensors_open(path, &f), 0);
    assert_int_equal(safetensors_count(f), 0);
    safetensors_close(f);
}

static void test_writer_rejects(void **state)
{
    (void)state;
    float w[2] = {0};
    char path[128];
    snprintf(path, sizeof path, "%s/b.safetensors", tmpdir);
    struct st_tensor t[2] = {
        {.name = "a", .dtype = ST_F32, .ndim = 1, .shape = {2}, .data = w, .nbytes = 8},
        {.name = "a", .dtype = ST_F32, .ndim = 1, .shape = {2}, .data = w, .nbytes = 8},
    };
    assert_int_equal(safetensors_write(path, t, 2, NULL, 0, 0644), ST_ERR_DUPLICATE);
    t[1].name = "b";
    t[1].nbytes = 4; /* does not match the shape */
    assert_int_equal(safetensors_write(path, t, 2, NULL, 0, 0644), ST_ERR_ARG);
    t[1].nbytes = 8;
    t[1].name = "";
    assert_int_equal(safetensors_write(path, t, 2, NULL, 0, 0644), ST_ERR_ARG);
    t[1].name = "__metadata__";
    assert_int_equal(safetensors_write(path, t, 2, NULL, 0, 0644), ST_ERR_ARG);
    t[1].name = "\xff";
    assert_int_equal(safetensors_write(path, t, 2, NULL, 0, 0644), ST_ERR_ARG);
    t[1].name = "b";
    t[1].dtype = ST_DTYPE_COUNT;
    assert_int_equal(safetensors_write(path, t, 2, NULL, 0, 0644), ST_ERR_ARG);
    t[1].dtype = ST_F32;
    struct st_meta m[2] = {{"k", "1"}, {"k", "2"}};
    assert_int_equal(safetensors_write(path, t, 2, m, 2, 0644), ST_ERR_DUPLICATE);
    assert_false(file_exists(path)); /* nothing written by refused calls */
    assert_int_equal(safetensors_write("/nonexistent-dir/x.safetensors", t, 2, NULL, 0, 0644),
                     ST_ERR_IO);
}

/* Builds "len | header | data" in memory and parses it. */
static int parse_raw(const char *header, const void *data, size_t data_len)
{
    size_t hl = strlen(header);
    uint8_t *buf = malloc(8 + hl + data_len + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    if (data_len)
        memcpy(buf + 8 + hl, data, data_len);
    struct safetensors *f = NULL;
    int rc = safetensors_parse(buf, 8 + hl + data_len, &f);
    if (rc == 0)
        assert_non_null(f);
    else
        assert_null(f);
    safetensors_close(f);
    free(buf);
    return rc;
}

static void test_hostile_headers(void **state)
{
    (void)state;
    uint8_t data[64] = {0};
    /* the valid baseline */
    assert_int_equal(parse_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                               data, 8), 0);
    assert_int_equal(parse_raw("{}", NULL, 0), 0);
    assert_int_equal(parse_raw(" {}", NULL, 0), ST_ERR_JSON); /* must start with '{' */
    assert_int_equal(parse_raw("{}   \n  ", NULL, 0), 0);       /* padding */

    struct {
        const char *header;
        size_t data_len;
        int rc;
    } cases[] = {
        {"{}x", 0, ST_ERR_JSON},                    /* trailing garbage */
        {"{", 0, ST_ERR_HEADER_SIZE},               /* too short */
        {"{}", 4, ST_ERR_OFFSETS},                  /* bytes nobody owns */
        {"[]", 0, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ST_ERR_DTYPE},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, ST_ERR_SHAPE},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8, ST_ERR_OFFSETS},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, ST_ERR_OFFSETS},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, ST_ERR_OFFSETS},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, ST_ERR_OFFSETS},
        /* overlap */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, ST_ERR_OFFSETS},
        /* aliasing: two names, one region */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ST_ERR_OFFSETS},
        /* gap */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, ST_ERR_OFFSETS},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, ST_ERR_DUPLICATE},
        {"{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, ST_ERR_DUPLICATE},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, ST_ERR_DUPLICATE},
        {"{\"__metadata__\":{\"k\":1}}", 0, ST_ERR_JSON},
        {"{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1e0],\"data_offsets\":[0,4]}}", 4, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]}}", 4, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,4]}}",
         4, ST_ERR_JSON},
        /* numel * size overflows u64 */
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}",
         0, ST_ERR_SHAPE},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         ST_ERR_SHAPE},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, ST_ERR_OFFSETS},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, ST_ERR_OFFSETS},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
         ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         ST_ERR_JSON},
        {"{\"a\":[1]}", 0, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4, ST_ERR_JSON},
        {"{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ST_ERR_JSON},
        {"{\"\xc0\xaf\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         ST_ERR_JSON}, /* overlong UTF-8 */
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         ST_ERR_JSON},
        {"{\"a\\ud800\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         ST_ERR_JSON}, /* lone surrogate */
        {"{\"a\\x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ST_ERR_JSON},
        {"{\"a\nb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ST_ERR_JSON},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} \x01", 4, ST_ERR_JSON},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = parse_raw(cases[i].header, data, cases[i].data_len);
        if (rc != cases[i].rc)
            printf("case %zu: %s -> %d (%s), want %d\n", i, cases[i].header, rc,
                   safetensors_strerror(rc), cases[i].rc);
        assert_int_equal(rc, cases[i].rc);
    }
    /* escapes that are fine: \u00e9 and a surrogate pair become UTF-8 names */
    assert_int_equal(parse_raw("{\"\\u00e9\\ud83d\\ude00\":{\"dtype\":\"U8\",\"shape\":[1],"
                               "\"data_offsets\":[0,1]}}", data, 1), 0);
}

static void test_length_field(void **state)
{
    (void)state;
    struct safetensors *f;
    uint8_t buf[32] = {0};
    assert_int_equal(safetensors_parse(buf, 7, &f), ST_ERR_TRUNCATED);
    /* header length past the end */
    buf[0] = 20;
    memcpy(buf + 8, "{}", 2);
    assert_int_equal(safetensors_parse(buf, 12, &f), ST_ERR_TRUNCATED);
    /* absurd header length (2^63) and just over the limit */
    memset(buf, 0, 8);
    buf[7] = 0x80;
    assert_int_equal(safetensors_parse(buf, 32, &f), ST_ERR_HEADER_SIZE);
    uint64_t over = (uint64_t)ST_HEADER_MAX + 1;
    for (int i = 0; i < 8; i++)
        buf[i] = (uint8_t)(over >> (8 * i));
    assert_int_equal(safetensors_parse(buf, 32, &f), ST_ERR_HEADER_SIZE);
    assert_null(f);

    char path[128];
    snprintf(path, sizeof path, "%s/empty", tmpdir);
    assert_int_equal(file_write_atomic(path, "", 0, 0644), 0);
    assert_int_equal(safetensors_open(path, &f), ST_ERR_TRUNCATED);
    assert_int_equal(safetensors_open(tmpdir, &f), ST_ERR_IO); /* a directory */
}

/* Random corruption of a valid file never crashes or reads out of bounds (run
 * under ASan by `make SAN=1`); whatever parses must still satisfy the invariants. */
static void test_mutations(void **state)
{
    (void)state;
    float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct st_tensor t[] = {
        {.name = "x.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 2}, .data = w,
         .nbytes = 16},
        {.name = "x.bias", .dtype = ST_F32, .ndim = 1, .shape = {4}, .data = w + 4,
         .nbytes = 16},
    };
    struct st_meta m[] = {{"format", "pt"}};
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", tmpdir);
    assert_int_equal(safetensors_write(path, t, 2, m, 1, 0644), 0);
    uint8_t *orig;
    size_t len;
    assert_int_equal(file_read_all(path, 1 << 20, &orig, &len), 0);
    uint8_t *buf = malloc(len);
    uint64_t x = 88172645463325252ull;
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, orig, len);
        int flips = 1 + iter % 4;
        for (int k = 0; k < flips; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t pos = (size_t)(x % len);
            buf[pos] = (uint8_t)(x >> 32);
        }
        size_t cut = iter % 5 == 0 ? (size_t)((x >> 40) % (len + 1)) : len;
        uint8_t *exact = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(exact, buf, cut);
        struct safetensors *f;
        if (safetensors_parse(exact, cut, &f) == 0) {
            accepted++;
            for (size_t i = 0; i < safetensors_count(f); i++) {
                const struct st_tensor *ti = safetensors_tensor(f, i);
                const uint8_t *d = ti->data;
                assert_true(d >= exact && d + ti->nbytes <= exact + cut);
            }
            safetensors_close(f);
        }
        free(exact);
    }
    printf("%d of 20000 mutated files still parsed (values or padding changed)\n", accepted);
    free(buf);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_rejects, setup, teardown),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test_setup_teardown(test_length_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutations, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
