/* crypto/node_task.h: the leader-to-follower node task of a multi-node member. The
 * vector comes from crypto/reference.py (crypto/README.md, "Node task"). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "crypto/node_task.h"

#define NOW 1767225600000LL

static const char vector_header[] =
    "61756c61632f6e6f64652d7461736b2f763100" "0003667074" "03" "000d677074322d76692d736d616c6c"
    "0000000000000007" "000000000000000c" "00000001" "00000010" "00000008"
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
    "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
    "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf" "000001f4"
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf" "0123456789abcdef"
    "0000019b76db9260" "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
static const char vector_digest[] =
    "03fb8972238e63bcc252c5dd35cabf43e7616ce4d3670dd525ba01b9ef84de6c";
static const char vector_sig[] =
    "0ca6bd4de990bf703dfb0b445080059657075d2094d750acf856bc7b1df7ff87"
    "f43ae713f7f729767d9df61cd9fde517d904612544ccdc5d257f1e5678193002";

static struct crypto_key *key_of(const char *member, uint8_t first)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(first + i);
    struct crypto_key *k = NULL;
    assert_int_equal(crypto_key_from_seed(member, seed, &k), 0);
    return k;
}

static void example(struct node_task *t)
{
    memset(t, 0, sizeof *t);
    strcpy(t->member, "fpt");
    t->kind = NODE_TASK_TRAIN;
    strcpy(t->experiment, "gpt2-vi-small");
    t->round = 7;
    t->seq = 12;
    t->node_rank = 1;
    t->nranks = 16;
    t->first_rank = 8;
    for (int i = 0; i < NODE_TASK_NCCL_ID_BYTES; i++)
        t->nccl_id[i] = (uint8_t)i;
    for (int i = 0; i < 32; i++) {
        t->base_model_hash[i] = (uint8_t)(0xa0 + i);
        t->policy_hash[i] = (uint8_t)(0xc0 + i);
    }
    t->inner_steps = 500;
    t->data_seed = 0x0123456789abcdefULL;
    t->expires_unix_ms = NOW + 60000;
    for (int i = 0; i < NODE_TASK_NONCE_BYTES; i++)
        t->nonce[i] = (uint8_t)(0xf0 + i);
}

/* A signed task as a follower receives it. */
struct wire {
    uint8_t header[NODE_TASK_HEADER_MAX + 64];
    size_t len;
    uint8_t sig[CRYPTO_SIGNATURE_BYTES];
};

static void sign_wire(const struct node_task *t, const struct crypto_key *k, struct wire *w)
{
    assert_int_equal(node_task_encode(t, w->header, sizeof w->header, &w->len), 0);
    assert_int_equal(node_task_sign(t, k, w->sig), 0);
}

static int accept_wire(const struct wire *w, const uint8_t *pub, int64_t now,
                       struct node_task_replay *r, struct node_task *out, char *why)
{
    return node_task_accept(w->header, w->len, w->sig, sizeof w->sig, "fpt", pub, now, r, out,
                            why, 256);
}

static void test_vector(void **state)
{
    struct crypto_key *k = key_of("fpt", 0);
    struct node_task t;
    example(&t);
    uint8_t buf[NODE_TASK_HEADER_MAX], d[32], sig[64], want[sizeof vector_header / 2];
    size_t len;
    assert_int_equal(node_task_encode(&t, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 296);
    assert_int_equal(hex_decode(vector_header, want, sizeof want), 0);
    assert_memory_equal(buf, want, len);
    assert_int_equal(node_task_digest(&t, d), 0);
    char hex[200];
    hex_encode(d, 32, hex);
    assert_string_equal(hex, vector_digest);
    assert_int_equal(node_task_sign(&t, k, sig), 0);
    hex_encode(sig, 64, hex);
    assert_string_equal(hex, vector_sig);
    /* decode is the exact inverse */
    struct node_task back;
    assert_int_equal(node_task_decode(buf, len, &back), 0);
    assert_memory_equal(&back, &t, sizeof t);
    crypto_key_free(k);
}

static void test_round_trip_and_replay(void **state)
{
    struct crypto_key *k = key_of("fpt", 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct node_task t, got;
    example(&t);
    struct wire w;
    sign_wire(&t, k, &w);
    static struct node_task_replay r;
    memset(&r, 0, sizeof r);
    char why[256] = "";
    assert_int_equal(accept_wire(&w, pk.key, NOW, &r, &got, why), 0);
    assert_int_equal(got.seq, 12);
    assert_memory_equal(got.nccl_id, t.nccl_id, sizeof t.nccl_id);
    /* the same bytes again: replayed */
    assert_int_equal(accept_wire(&w, pk.key, NOW + 1, &r, &got, why), CRYPTO_ERR_REPLAYED);
    assert_non_null(strstr(why, "replayed"));
    /* a fresh nonce passes */
    t.nonce[0] ^= 1;
    sign_wire(&t, k, &w);
    assert_int_equal(accept_wire(&w, pk.key, NOW + 2, &r, &got, why), 0);
    crypto_key_free(k);
}

static void test_wrong_key_and_member(void **state)
{
    struct crypto_key *k = key_of("fpt", 0), *other = key_of("fpt", 100),
                      *vnpt = key_of("vnpt", 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct node_task t, got;
    example(&t);
    struct wire w;
    static struct node_task_replay r;
    memset(&r, 0, sizeof r);
    char why[256] = "";
    sign_wire(&t, other, &w);   /* same member id, another key */
    assert_int_equal(accept_wire(&w, pk.key, NOW, &r, &got, why), CRYPTO_ERR_BAD_SIGNATURE);
    assert_non_null(strstr(why, "another key"));
    uint8_t sig[64];
    assert_int_equal(node_task_sign(&t, vnpt, sig), CRYPTO_ERR_KEY_MISMATCH);
    strcpy(t.member, "vnpt");   /* signed correctly, but for another member */
    sign_wire(&t, vnpt, &w);
    assert_int_equal(accept_wire(&w, pk.key, NOW, &r, &got, why), CRYPTO_ERR_KEY_MISMATCH);
    assert_non_null(strstr(why, "vnpt"));
    crypto_key_free(k);
    crypto_key_free(other);
    crypto_key_free(vnpt);
}

static void test_flipped_bytes(void **state)
{
    struct crypto_key *k = key_of("fpt", 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct node_task t, got;
    example(&t);
    struct wire w;
    sign_wire(&t, k, &w);
    static struct node_task_replay r;
    char why[256];
    /* every single-bit flip of the header or signature is refused */
    for (size_t i = 0; i < w.len + sizeof w.sig; i++) {
        struct wire bad = w;
        if (i < w.len)
            bad.header[i] ^= 0x10;
        else
            bad.sig[i - w.len] ^= 0x10;
        memset(&r, 0, sizeof r);
        int rc = accept_wire(&bad, pk.key, NOW, &r, &got, why);
        if (rc == 0)
            fail_msg("flipping byte %zu was accepted", i);
    }
    crypto_key_free(k);
}

static void test_expiry(void **state)
{
    struct crypto_key *k = key_of("fpt", 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct node_task t, got;
    example(&t);
    struct wire w;
    sign_wire(&t, k, &w);
    static struct node_task_replay r;
    memset(&r, 0, sizeof r);
    char why[256];
    assert_int_equal(accept_wire(&w, pk.key, NOW + 60001, &r, &got, why), CRYPTO_ERR_EXPIRED);
    assert_non_null(strstr(why, "stale"));
    t.expires_unix_ms = NOW + NODE_TASK_MAX_LIFETIME_MS + 1;   /* valid for too long */
    sign_wire(&t, k, &w);
    assert_int_equal(accept_wire(&w, pk.key, NOW, &r, &got, why), CRYPTO_ERR_EXPIRED);
    crypto_key_free(k);
}

static void test_malformed(void **state)
{
    struct crypto_key *k = key_of("fpt", 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct node_task t, got;
    example(&t);
    struct wire w;
    sign_wire(&t, k, &w);
    static struct node_task_replay r;
    char why[256];
    /* every truncation */
    for (size_t n = 0; n < w.len; n++) {
        memset(&r, 0, sizeof r);
        assert_int_equal(node_task_accept(w.header, n, w.sig, 64, "fpt", pk.key, NOW, &r, &got,
                                          why, sizeof why), CRYPTO_ERR_MALFORMED);
    }
    assert_non_null(strstr(why, "malformed"));
    /* a trailing byte */
    struct wire x = w;
    x.header[x.len++] = 0;
    assert_int_equal(accept_wire(&x, pk.key, NOW, &r, &got, why), CRYPTO_ERR_MALFORMED);
    /* oversized */
    uint8_t big[NODE_TASK_HEADER_MAX + 1] = { 0 };
    memcpy(big, w.header, w.len);
    assert_int_equal(node_task_accept(big, sizeof big, w.sig, 64, "fpt", pk.key, NOW, &r, &got,
                                      why, sizeof why), CRYPTO_ERR_MALFORMED);
    assert_non_null(strstr(why, "oversized"));
    /* short signature */
    assert_int_equal(node_task_accept(w.header, w.len, w.sig, 63, "fpt", pk.key, NOW, &r, &got,
                                      why, sizeof why), CRYPTO_ERR_MALFORMED);
    /* bad kind (offset: domain 19, member 2+3) and an id with a capital letter */
    x = w;
    x.header[24] = 9;
    assert_int_equal(accept_wire(&x, pk.key, NOW, &r, &got, why), CRYPTO_ERR_MALFORMED);
    x = w;
    x.header[27] = 'G';
    assert_int_equal(accept_wire(&x, pk.key, NOW, &r, &got, why), CRYPTO_ERR_MALFORMED);
    /* an id length running past the end */
    x = w;
    x.header[25] = 0xff;
    assert_int_equal(accept_wire(&x, pk.key, NOW, &r, &got, why), CRYPTO_ERR_MALFORMED);
    /* the encoder refuses what the decoder would */
    uint8_t buf[NODE_TASK_HEADER_MAX];
    size_t len;
    t.kind = 0;
    assert_int_equal(node_task_encode(&t, buf, sizeof buf, &len), CRYPTO_ERR_ARG);
    t.kind = NODE_TASK_TRAIN;
    t.experiment[0] = 0;
    assert_int_equal(node_task_encode(&t, buf, sizeof buf, &len), CRYPTO_ERR_BAD_ID);
    t.kind = NODE_TASK_PROBE;   /* a probe needs no experiment */
    assert_int_equal(node_task_encode(&t, buf, sizeof buf, &len), 0);
    assert_int_equal(node_task_encode(&t, buf, 100, &len), CRYPTO_ERR_BUFFER);
    crypto_key_free(k);
}

static void test_replay_cache_full(void **state)
{
    struct crypto_key *k = key_of("fpt", 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct node_task t, got;
    example(&t);
    static struct node_task_replay r;
    memset(&r, 0, sizeof r);
    struct wire first, w;
    char why[256];
    /* fill every slot with unexpired nonces, then one more */
    for (uint32_t i = 0; i <= NODE_TASK_REPLAY_SLOTS; i++) {
        memcpy(t.nonce, &i, sizeof i);
        t.expires_unix_ms = NOW + 1000 + i;
        sign_wire(&t, k, &w);
        if (i == 0)
            first = w;
        assert_int_equal(accept_wire(&w, pk.key, NOW, &r, &got, why), 0);
    }
    /* the oldest nonce was forgotten, yet its task is still refused */
    assert_int_equal(accept_wire(&first, pk.key, NOW, &r, &got, why), CRYPTO_ERR_REPLAYED);
    crypto_key_free(k);
}

/* Slots freed by expiry are reused out of order; a full cache must still drop the nonce
 * expiring first, not a recent one, or it refuses live tasks. */
static void test_replay_cache_drops_oldest(void **state)
{
    static struct node_task_replay r;
    memset(&r, 0, sizeof r);
    uint8_t nonce[NODE_TASK_NONCE_BYTES] = { 0 };
    uint32_t i;
    for (i = 0; i < NODE_TASK_REPLAY_SLOTS; i++) {
        memcpy(nonce, &i, sizeof i);
        assert_int_equal(node_task_replay_check(&r, nonce, NOW + 1000 + i, NOW), 0);
    }
    const int64_t later = NOW + 1005;   /* the first five have expired */
    for (; i < NODE_TASK_REPLAY_SLOTS + 6; i++) {
        memcpy(nonce, &i, sizeof i);
        assert_int_equal(node_task_replay_check(&r, nonce, NOW + 100000, later), 0);
    }
    memcpy(nonce, &i, sizeof i);
    assert_int_equal(node_task_replay_check(&r, nonce, NOW + 2000, later), 0);
}

int main(void)
{
    if (crypto_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_round_trip_and_replay),
        cmocka_unit_test(test_wrong_key_and_member),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_replay_cache_full),
        cmocka_unit_test(test_replay_cache_drops_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
