#define _GNU_SOURCE /* memmem */
/* worker/data: corpus tree walk, split, deterministic batches, and errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fileio.h"
#include "worker/data.h"

static char root[64];

static int setup(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/aulac-test-data-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", root, root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes n bytes of text derived from seed to root/rel (directories created). */
static uint8_t *put(const char *rel, size_t n, unsigned seed)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    char dir[256];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    assert_int_equal(file_mkdirs(dir, 0755), 0);
    uint8_t *b = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        b[i] = (uint8_t)(' ' + (x >> 24) % 95);
    }
    assert_int_equal(file_write_atomic(path, b, n, 0644), 0);
    return b;
}

struct corpus {
    uint8_t *stream;
    size_t len;
};

/* a.txt (10000) | b.txt (300000, mapped) | b/c.txt (30000) | b/d/e.txt (1), plus things
 * that must be skipped. */
static struct corpus make_tree(void)
{
    struct corpus c = {0};
    const char *names[] = {"b/c.txt", "a.txt", "b/d/e.txt", "b.txt"};
    size_t sizes[] = {30000, 10000, 1, 300000};
    uint8_t *bytes[4];
    for (int i = 0; i < 4; i++)
        bytes[i] = put(names[i], sizes[i], (unsigned)i + 1);
    free(put(".hidden", 500, 9));
    free(put(".git/objects/x", 500, 10));
    free(put("b/.cache/y.txt", 500, 11));
    free(put("z_empty.txt", 0, 12));
    char path[256], target[256];
    snprintf(path, sizeof path, "%s/link.txt", root);
    snprintf(target, sizeof target, "%s/a.txt", root);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/pipe", root);
    assert_int_equal(mkfifo(path, 0644), 0);
    int order[] = {1, 3, 0, 2}; /* sorted: a.txt, b.txt, b/c.txt, b/d/e.txt */
    c.len = 340001;
    c.stream = malloc(c.len);
    size_t at = 0;
    for (int k = 0; k < 4; k++) {
        memcpy(c.stream + at, bytes[order[k]], sizes[order[k]]);
        at += sizes[order[k]];
    }
    for (int i = 0; i < 4; i++)
        free(bytes[i]);
    return c;
}

/* Splits the stream by the documented rule for f = 0.1 (chunk i is validation iff
 * i % 10 == 4) or f = 0.25 (i % 4 == 1). */
static void expected_split(const struct corpus *c, int period, int which, uint8_t *train,
                           size_t *train_len, uint8_t *val, size_t *val_len)
{
    *train_len = *val_len = 0;
    for (size_t off = 0, i = 0; off < c->len; off += DATA_CHUNK, i++) {
        size_t n = c->len - off < DATA_CHUNK ? c->len - off : DATA_CHUNK;
        if ((int)(i % (size_t)period) == which) {
            memcpy(val + *val_len, c->stream + off, n);
            *val_len += n;
        } else {
            memcpy(train + *train_len, c->stream + off, n);
            *train_len += n;
        }
    }
}

static void check_split(const struct corpus *c, double f, int period, int which)
{
    struct data_opts o = {.val_fraction = f, .seq_len = 64, .seed = 1};
    struct data *d;
    char why[256];
    assert_int_equal(data_open(root, &o, &d, why, sizeof why), 0);
    assert_int_equal(data_num_files(d), 4);
    assert_string_equal(data_file_path(d, 0), "a.txt");
    assert_string_equal(data_file_path(d, 1), "b.txt");
    assert_string_equal(data_file_path(d, 2), "b/c.txt");
    assert_string_equal(data_file_path(d, 3), "b/d/e.txt");
    assert_null(data_file_path(d, 4));
    assert_int_equal(data_total_bytes(d), c->len);

    uint8_t *train = malloc(c->len), *val = malloc(c->len), *got = malloc(c->len);
    size_t tl, vl;
    expected_split(c, period, which, train, &tl, val, &vl);
    assert_int_equal(data_train_bytes(d), tl);
    assert_int_equal(data_val_bytes(d), vl);
    assert_int_equal(data_read_train(d, 0, got, tl), 0);
    assert_memory_equal(got, train, tl);
    /* reads at odd offsets that cross chunk and file boundaries */
    for (size_t off = 1; off + 9000 < tl; off += 4093) {
        assert_int_equal(data_read_train(d, off, got, 9000), 0);
        assert_memory_equal(got, train + off, 9000);
    }
    assert_int_equal(data_read_train(d, tl - 1, got, 2), DATA_ERR_ARG);
    const uint8_t *v;
    size_t n;
    assert_int_equal(data_validation(d, 1000, &v, &n), 0);
    assert_int_equal(n, vl < 1000 ? vl : 1000);
    assert_memory_equal(v, val, n);
    assert_int_equal(data_validation(d, 0, &v, &n), 0);
    assert_int_equal(n, vl);
    assert_memory_equal(v, val, vl);
    data_close(d);
    free(train);
    free(val);
    free(got);
}

static void test_tree_and_split(void **state)
{
    (void)state;
    struct corpus c = make_tree();
    check_split(&c, 0.1, 10, 4);
    check_split(&c, 0.25, 4, 1);
    check_split(&c, 0.0, 1, 1); /* period 1, never 1: no validation */
    free(c.stream);
}

static void test_batches(void **state)
{
    (void)state;
    struct corpus c = make_tree();
    uint8_t *train = malloc(c.len), *val = malloc(c.len);
    size_t tl, vl;
    expected_split(&c, 10, 4, train, &tl, val, &vl);

    struct data_opts o = {.val_fraction = 0.1, .seq_len = 64, .seed = 42};
    struct data *a, *b;
    assert_int_equal(data_open(root, &o, &a, NULL, 0), 0);
    assert_int_equal(data_open(root, &o, &b, NULL, 0), 0);
    const int B = 8, T = 64;
    uint8_t x[8 * 65], y[8 * 65], first[8 * 65];
    for (int step = 0; step < 50; step++) {
        assert_int_equal(data_next_batch(a, x, B, T), 0);
        assert_int_equal(data_next_batch(b, y, B, T), 0);
        assert_memory_equal(x, y, sizeof x); /* same seed, same batches */
        if (step == 0)
            memcpy(first, x, sizeof x);
        for (int r = 0; r < B; r++) /* every window is a piece of the training stream */
            assert_non_null(memmem(train, tl, x + r * (T + 1), (size_t)T + 1));
    }
    data_reseed(a, 42);
    assert_int_equal(data_next_batch(a, x, B, T), 0);
    assert_memory_equal(x, first, sizeof x);
    data_reseed(b, 43);
    assert_int_equal(data_next_batch(b, y, B, T), 0);
    assert_true(memcmp(x, y, sizeof x) != 0);
    assert_int_equal(data_next_batch(a, x, B, 0), DATA_ERR_ARG);
    assert_int_equal(data_next_batch(a, x, 1, (int)tl), DATA_ERR_TOO_SMALL);
    data_close(a);
    data_close(b);
    free(train);
    free(val);
    free(c.stream);
}

static void test_errors(void **state)
{
    (void)state;
    char why[512], path[256];
    struct data *d = (struct data *)1;
    struct data_opts o = {.val_fraction = 0.1, .seq_len = 128, .seed = 1};

    snprintf(path, sizeof path, "%s/missing", root);
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_NO_DIR);
    assert_null(d);
    printf("missing: %s\n", why);
    assert_non_null(strstr(why, path));

    free(put("file.txt", 100, 1));
    snprintf(path, sizeof path, "%s/file.txt", root);
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_NO_DIR);
    assert_non_null(strstr(why, "not a directory"));

    /* only skipped things: empty */
    free(put("empty/.hidden.txt", 100, 2));
    free(put("empty/zero.txt", 0, 3));
    snprintf(path, sizeof path, "%s/empty", root);
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_EMPTY);
    printf("empty: %s\n", why);
    assert_non_null(strstr(why, path));

    /* smaller than a window: 100 bytes, seq_len 128 */
    free(put("small/a.txt", 60, 4));
    free(put("small/b.txt", 40, 5));
    snprintf(path, sizeof path, "%s/small", root);
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_TOO_SMALL);
    printf("small: %s\n", why);
    assert_non_null(strstr(why, path));
    assert_non_null(strstr(why, "100 training bytes"));
    assert_non_null(strstr(why, "129"));
    o.seq_len = 99;
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), 0);
    assert_int_equal(data_val_bytes(d), 0); /* one chunk: no validation chunk */
    data_close(d);

    o.val_fraction = 0.6;
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_ARG);
    o.val_fraction = 0.1;
    o.seq_len = 0;
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_ARG);

    /* an unreadable file is an error, not silently skipped (root reads anything) */
    if (geteuid() != 0) {
        o.seq_len = 8;
        free(put("locked/a.txt", 100, 6));
        snprintf(path, sizeof path, "%s/locked/a.txt", root);
        assert_int_equal(chmod(path, 0), 0);
        snprintf(path, sizeof path, "%s/locked", root);
        assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_IO);
        printf("locked: %s\n", why);
        assert_non_null(strstr(why, "a.txt"));
    }
    /* a name that is not UTF-8 (Latin-1 "caf\xe9") is refused, naming the file; valid
     * UTF-8 names ("phở") are fine */
    o.seq_len = 8;
    free(put("names/ph\xe1\xbb\x9f.txt", 100, 7));
    snprintf(path, sizeof path, "%s/names", root);
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), 0);
    data_close(d);
    free(put("names/sub/caf\xe9.txt", 100, 8));
    assert_int_equal(data_open(path, &o, &d, why, sizeof why), DATA_ERR_IO);
    assert_null(d);
    printf("latin-1: %s\n", why);
    assert_non_null(strstr(why, "the file name sub/caf\\xe9.txt is not valid UTF-8"));
    assert_string_equal(data_strerror(DATA_ERR_TOO_SMALL),
                        "the corpus is smaller than one training window");
}

static void test_small_corpus_has_validation(void **state)
{
    (void)state;
    /* 5 chunks at f = 0.1: chunk 4 (the last, partial) is validation */
    free(put("t.txt", 4 * DATA_CHUNK + 10, 7));
    struct data_opts o = {.val_fraction = 0.1, .seq_len = 32, .seed = 1};
    struct data *d;
    assert_int_equal(data_open(root, &o, &d, NULL, 0), 0);
    assert_int_equal(data_val_bytes(d), 10);
    assert_int_equal(data_train_bytes(d), 4 * DATA_CHUNK);
    data_close(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tree_and_split, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_corpus_has_validation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
