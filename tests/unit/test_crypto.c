/* crypto/: digests, Ed25519, key files and the signed statements. The
 * statement vectors come from crypto/reference.py, an independent Python
 * implementation of the byte layouts in crypto/README.md. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/hex.h"
#include "crypto/motion.h"
#include "crypto/digest.h"
#include "crypto/envelope.h"
#include "crypto/keys.h"
#include "crypto/request.h"
#include "model/model_hash.h"
#include "proto/aulac.pb-c.h"
#include "proto/pb.h"
#include "proto/service.h"
#include "proto/update_msg.h"

static char tmpdir[256];

static int group_setup(void **state)
{
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/aulac-crypto-XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(tmpdir))
        return -1;
    return crypto_init();
}

static int group_teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
    char h[300];
    assert_true(2 * n < sizeof h);
    hex_encode(p, n, h);
    assert_string_equal(h, want);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

/* --- digests and signatures ------------------------------------------------------- */

static void digest_is_blake2b_of_domain_nul_message(void **state)
{
    uint8_t a[32], b[32];
    /* BLAKE2b-256("aulac/test/v1" 0x00 "hello"), from hashlib */
    assert_int_equal(crypto_digest("aulac/test/v1", "hello", 5, a), 0);
    assert_hex(a, 32, "56bb61c975d2c4e50c8e093fa75386b487b46e874cda93b661e96d75db12a88b");
    uint8_t raw[14 + 5];
    memcpy(raw, "aulac/test/v1", 14);
    memcpy(raw + 14, "hello", 5);
    crypto_blake2b256(raw, 19, b);
    assert_memory_equal(a, b, 32);

    struct crypto_digest_state s;
    assert_int_equal(crypto_digest_init(&s, "aulac/test/v1"), 0);
    crypto_digest_update(&s, "he", 2);
    crypto_digest_update(&s, "", 0);
    crypto_digest_update(&s, "llo", 3);
    crypto_digest_final(&s, b);
    assert_memory_equal(a, b, 32);

    /* the NUL keeps domain and message apart */
    assert_int_equal(crypto_digest("aulac/test/v", "1hello", 6, b), 0);
    assert_memory_not_equal(a, b, 32);
    assert_int_equal(crypto_digest("", "x", 1, b), CRYPTO_ERR_ARG);
    assert_int_equal(crypto_digest(NULL, "x", 1, b), CRYPTO_ERR_ARG);

    crypto_blake2b256("", 0, a);   /* BLAKE2b-256 of nothing, a published value */
    assert_hex(a, 32, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

static void ed25519_matches_rfc8032_test1(void **state)
{
    uint8_t seed[32], sig[64];
    assert_int_equal(hex_decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, 32), 0);
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed("rfc8032", seed, &k), 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    assert_hex(pk.key, 32, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    assert_int_equal(crypto_signature_create(k, "", 0, sig), 0);
    assert_hex(sig, 64, "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
                        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b");
    assert_int_equal(crypto_signature_verify(pk.key, "", 0, sig), 0);
    sig[10] ^= 1;
    assert_int_equal(crypto_signature_verify(pk.key, "", 0, sig), CRYPTO_ERR_BAD_SIGNATURE);
    sig[10] ^= 1;
    assert_int_equal(crypto_signature_verify(pk.key, "x", 1, sig), CRYPTO_ERR_BAD_SIGNATURE);
    pk.key[0] ^= 1;
    assert_int_equal(crypto_signature_verify(pk.key, "", 0, sig), CRYPTO_ERR_BAD_SIGNATURE);
    crypto_key_free(k);
}

static void equal_and_ids(void **state)
{
    assert_true(crypto_equal("abcd", "abcd", 4));
    assert_false(crypto_equal("abcd", "abce", 4));
    assert_true(crypto_id_valid("fpt"));
    assert_true(crypto_id_valid("gpt2-vi_small.v2"));
    assert_false(crypto_id_valid(""));
    assert_false(crypto_id_valid("FPT"));
    assert_false(crypto_id_valid("a b"));
    assert_false(crypto_id_valid(".."));
    assert_false(crypto_id_valid("-rf"));
    assert_false(crypto_id_valid("x/y"));
    char long_id[70];
    memset(long_id, 'a', 65);
    long_id[65] = 0;
    assert_false(crypto_id_valid(long_id));
    long_id[64] = 0;
    assert_true(crypto_id_valid(long_id));
    assert_string_equal(crypto_strerror(CRYPTO_ERR_KEY_PERMS),
                        "secret key file is readable by group or others (chmod 600 it)");
    assert_string_equal(crypto_strerror(-1099), "unknown crypto error");
}

/* --- keys and key files -------------------------------------------------------------- */

static void key_files_round_trip(void **state)
{
    char sec[300], pub[300];
    path_in_tmp(sec, sizeof sec, "fpt.key");
    path_in_tmp(pub, sizeof pub, "fpt.pub");
    struct crypto_key *k, *k2;
    assert_int_equal(crypto_key_generate("fpt", &k), 0);
    assert_string_equal(crypto_key_member(k), "fpt");
    assert_int_equal(crypto_key_save_secret(k, sec, 0), 0);
    struct stat st;
    assert_int_equal(stat(sec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(crypto_key_save_secret(k, sec, 0), CRYPTO_ERR_KEY_EXISTS);

    struct crypto_public_key p1, p2;
    crypto_key_public(k, &p1);
    assert_int_equal(strlen(p1.key_id), 16);
    assert_int_equal(crypto_public_key_save(&p1, pub), 0);
    assert_int_equal(crypto_public_key_load(pub, &p2), 0);
    assert_string_equal(p2.id, "fpt");
    assert_memory_equal(p2.key, p1.key, 32);
    assert_string_equal(p2.key_id, p1.key_id);

    assert_int_equal(crypto_key_load(sec, &k2), 0);
    crypto_key_public(k2, &p2);
    assert_memory_equal(p2.key, p1.key, 32);
    uint8_t sig[64];
    assert_int_equal(crypto_signature_create(k2, "m", 1, sig), 0);
    assert_int_equal(crypto_signature_verify(p1.key, "m", 1, sig), 0);
    crypto_key_free(k);
    crypto_key_free(k2);
    crypto_key_free(NULL);
}

static void secret_key_readable_by_others_is_refused(void **state)
{
    char sec[300];
    path_in_tmp(sec, sizeof sec, "vnpt.key");
    struct crypto_key *k, *k2 = NULL;
    assert_int_equal(crypto_key_generate("vnpt", &k), 0);
    assert_int_equal(crypto_key_save_secret(k, sec, 1), 0);
    static const mode_t bad[] = { 0644, 0640, 0604, 0660, 0606, 0610 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chmod(sec, bad[i]), 0);
        assert_int_equal(crypto_key_load(sec, &k2), CRYPTO_ERR_KEY_PERMS);
        assert_null(k2);
    }
    assert_int_equal(chmod(sec, 0400), 0);
    assert_int_equal(crypto_key_load(sec, &k2), 0);
    crypto_key_free(k2);
    /* a symlink is judged by the file it points to */
    char link[300];
    path_in_tmp(link, sizeof link, "vnpt-link.key");
    assert_int_equal(symlink(sec, link), 0);
    assert_int_equal(crypto_key_load(link, &k2), 0);
    crypto_key_free(k2);
    assert_int_equal(chmod(sec, 0644), 0);
    assert_int_equal(crypto_key_load(link, &k2), CRYPTO_ERR_KEY_PERMS);
    /* overwrite=1 replaces it and restores 0600 */
    assert_int_equal(crypto_key_save_secret(k, sec, 1), 0);
    struct stat st;
    assert_int_equal(stat(sec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    crypto_key_free(k);
    char missing[300];
    path_in_tmp(missing, sizeof missing, "missing.key");
    assert_int_equal(crypto_key_load(missing, &k2), CRYPTO_ERR_IO);
}

static void malformed_key_files_are_refused(void **state)
{
    static const char *bad[] = {
        "",
        "aulac-secret-key v2\nid: fpt\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "aulac-secret-key v1\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "aulac-secret-key v1\nid: FPT\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "aulac-secret-key v1\nid: fpt\n",
        "aulac-secret-key v1\nid: fpt\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
        "aulac-secret-key v1\nid: fpt\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8fHw==\n",
        "aulac-secret-key v1\nid: fpt\nid: fpt\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "aulac-secret-key v1\nid: fpt\ncolour: blue\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "aulac-secret-key v1\nid: fpt\nkey-id: 0000000000000000\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "aulac-secret-key v1\nid: fpt\nsecret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nno colon here\n",
    };
    char path[300];
    path_in_tmp(path, sizeof path, "bad.key");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct crypto_key *k = NULL;
        write_text(path, bad[i], 0600);
        int rc = crypto_key_load(path, &k);
        if (rc != CRYPTO_ERR_KEY_FORMAT)
            fail_msg("case %zu: got %d (%s)", i, rc, crypto_strerror(rc));
        assert_null(k);
    }
    /* the same seed, well formed, with comments and CRLF, loads */
    struct crypto_key *k;
    write_text(path, "aulac-secret-key v1\r\n# test key\r\nid: fpt\r\nkey-id: 9d24e2eeaf27c2a0\r\n"
                     "secret: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\r\n", 0600);
    assert_int_equal(crypto_key_load(path, &k), 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    assert_string_equal(pk.key_id, "9d24e2eeaf27c2a0");
    crypto_key_free(k);

    struct crypto_public_key p;
    const char *good = "aulac-public-key v1\nid: fpt\nkey-id: 9d24e2eeaf27c2a0\n"
                       "public: A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n";
    assert_int_equal(crypto_public_key_parse(good, strlen(good), &p), 0);
    assert_hex(p.key, 32, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
    const char *wrong_id = "aulac-public-key v1\nid: fpt\nkey-id: 9d24e2eeaf27c2a1\n"
                           "public: A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=\n";
    assert_int_equal(crypto_public_key_parse(wrong_id, strlen(wrong_id), &p), CRYPTO_ERR_KEY_FORMAT);
    /* a small-order point can never verify anything honest */
    const char *weak = "aulac-public-key v1\nid: fpt\n"
                       "public: AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
    assert_int_equal(crypto_public_key_parse(weak, strlen(weak), &p), CRYPTO_ERR_BAD_KEY);
    char buf[256];
    assert_int_equal(crypto_public_key_format(&pk, buf, 10), CRYPTO_ERR_BUFFER);
    assert_true(crypto_public_key_format(&pk, buf, sizeof buf) > 0);
    assert_string_equal(buf, good);
}

static void bad_member_ids_are_refused(void **state)
{
    struct crypto_key *k = NULL;
    uint8_t seed[32] = { 0 };
    assert_int_equal(crypto_key_generate("Not Valid", &k), CRYPTO_ERR_BAD_ID);
    assert_null(k);
    assert_int_equal(crypto_key_from_seed("", seed, &k), CRYPTO_ERR_BAD_ID);
}

/* --- envelopes: the README's worked examples ------------------------------------------------ */

static struct crypto_key *vector_key(const char *member)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed(member, seed, &k), 0);
    return k;
}

static struct update_envelope vector_update(void)
{
    struct update_envelope e;
    memset(&e, 0, sizeof e);
    strcpy(e.experiment, "gpt2-vi-small");
    e.round = 7;
    strcpy(e.member, "fpt");
    for (int i = 0; i < 32; i++)
        e.base_model_hash[i] = (uint8_t)(0xa0 + i);
    crypto_blake2b256("example payload", 15, e.payload_hash);
    e.payload_bytes = 123456;
    e.samples = 2048;
    e.tokens = 1048576;
    e.codec = (struct envelope_codec){ .format_version = 1, .block_size = 4096, .k_per_block = 64,
                                       .quant = 1, .zstd_level = 3, .error_feedback = 1 };
    return e;
}

static void update_envelope_test_vector(void **state)
{
    struct crypto_key *k = vector_key("fpt");
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    assert_hex(pk.key, 32, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
    assert_string_equal(pk.key_id, "9d24e2eeaf27c2a0");

    struct update_envelope e = vector_update();
    assert_hex(e.payload_hash, 32, "4eb9c55d110e9af15f550fbb11e363e197ad66edd8ace3ab1de6cacaa1b3a3c8");
    uint8_t hdr[ENVELOPE_HEADER_MAX], d[32], sig[64];
    size_t len;
    assert_int_equal(envelope_encode(&e, hdr, sizeof hdr, &len), 0);
    assert_int_equal(len, 153);
    char h[2 * ENVELOPE_HEADER_MAX + 1];
    hex_encode(hdr, len, h);
    assert_string_equal(h,
        "61756c61632f7570646174652f763100" "000d677074322d76692d736d616c6c" "0000000000000007"
        "0003667074" "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "4eb9c55d110e9af15f550fbb11e363e197ad66edd8ace3ab1de6cacaa1b3a3c8"
        "000000000001e240" "0000000000000800" "0000000000100000"
        "00000001" "00001000" "00000040" "00000001" "00000003" "01");
    assert_int_equal(envelope_digest(&e, d), 0);
    assert_hex(d, 32, "1c2090b563a0e1a9ea705b6c333f6f8bf873fbf559b89454d429145502cefe22");
    assert_int_equal(envelope_sign(&e, k, sig), 0);
    assert_hex(sig, 64, "328f58116fb2e6e8fc3edbbc23b435144bd3566b984f6926b019b47d9a4f1b73"
                        "e432e870675f43af18cd4fec7b0cc80ffc5a0727242911eab1c54b5b976f5b01");
    assert_int_equal(envelope_verify(&e, pk.key, sig), 0);
    assert_int_equal(envelope_encode(&e, hdr, 152, &len), CRYPTO_ERR_BUFFER);
    crypto_key_free(k);
}

static void coordinator_statement_vectors(void **state)
{
    struct crypto_key *k = vector_key("coordinator");
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    uint8_t base[32], root[32], payload[32], d[32], sig[64];
    for (int i = 0; i < 32; i++) {
        base[i] = (uint8_t)(0xa0 + i);
        root[i] = (uint8_t)(0x50 + i);
    }
    crypto_blake2b256("example payload", 15, payload);

    struct task_announcement t = { .round = 7, .deadline_unix_ms = 1767229200000, .total_rounds = 100 };
    strcpy(t.experiment, "gpt2-vi-small");
    for (int i = 0; i < 32; i++)
        t.policy_hash[i] = (uint8_t)(0xc0 + i);
    memcpy(t.base_model_hash, base, 32);
    uint8_t hdr[ENVELOPE_HEADER_MAX];
    size_t len;
    assert_int_equal(envelope_task_encode(&t, hdr, sizeof hdr, &len), 0);
    assert_int_equal(len, 117);   /* crypto/reference.py prints the same header */
    assert_hex(hdr, len, "61756c61632f7461736b2f763200000d677074322d76692d736d616c6c"
                         "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                         "0000000000000007"
                         "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                         "0000019b77119680" "0000000000000064");
    assert_int_equal(envelope_task_digest(&t, d), 0);
    assert_hex(d, 32, "a5def8b8f6d611876e51c4f8d462a38e615e61ac7e3c3c45d9c34d52ea460c62");
    assert_int_equal(envelope_task_sign(&t, k, sig), 0);
    assert_hex(sig, 64, "48e8f1f972f055b23f68f39a62f88e41baf2d27190bf977300e333012c1b6b8d"
                        "447a4a0dfcf807596898eca00337446e2bcc6dd902d5721fe5d3e0e9ebd04301");
    assert_int_equal(envelope_task_verify(&t, pk.key, sig), 0);
    t.deadline_unix_ms++;
    assert_int_equal(envelope_task_verify(&t, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);
    t.deadline_unix_ms--;
    t.policy_hash[31] ^= 1;   /* a task signed for one policy is no task for another */
    assert_int_equal(envelope_task_verify(&t, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);

    struct update_receipt r = { .round = 7, .accepted = 1, .ledger_index = 41, .ledger_size = 42 };
    strcpy(r.experiment, "gpt2-vi-small");
    strcpy(r.member, "fpt");
    memcpy(r.payload_hash, payload, 32);
    memcpy(r.ledger_root, root, 32);
    assert_int_equal(envelope_receipt_digest(&r, d), 0);
    assert_hex(d, 32, "408f68f7d9fea5f949fad36f78e7c85a168e4225b165120479bb876f02357e1b");
    assert_int_equal(envelope_receipt_sign(&r, k, sig), 0);
    assert_hex(sig, 64, "fa43de91c18cdc1ec775c8059c93b2653dbb15dbad86a791d298e44756e209e2"
                        "8451f790e5b537164efd264bb990450cd3c3f6b1ad9d5d4e30d6d57c55c30902");
    assert_int_equal(envelope_receipt_verify(&r, pk.key, sig), 0);
    r.accepted = 0;
    assert_int_equal(envelope_receipt_verify(&r, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);
    r.accepted = 2;
    assert_int_equal(envelope_receipt_verify(&r, pk.key, sig), CRYPTO_ERR_ARG);

    crypto_key_free(k);
}

static void join_request_vector(void **state)
{
    struct crypto_key *k = vector_key("fpt");
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct join_request j = { .timestamp_unix_ms = 1767225600000 };
    strcpy(j.member, "fpt");
    for (int i = 0; i < 16; i++)
        j.nonce[i] = (uint8_t)(0xf0 + i);
    uint8_t d[32], sig[64];
    assert_int_equal(envelope_join_digest(&j, d), 0);
    assert_hex(d, 32, "842dddcca80bffc734fb5d2e20e3940e4c5a0e233854a76d75c219014d430af0");
    assert_int_equal(envelope_join_sign(&j, k, sig), 0);
    assert_hex(sig, 64, "c010e53c5e5409da34ce8ecb65dab403574248ddf41412ecf5842466cb5ac4be"
                        "a8f3ea05c6e1b742840536990d6ddf187aa3add9f58eef24e07419ec26793406");
    assert_int_equal(envelope_join_verify(&j, pk.key, sig), 0);
    j.nonce[15] ^= 1;
    assert_int_equal(envelope_join_verify(&j, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);
    strcpy(j.member, "vnpt");   /* fpt's key cannot sign for vnpt */
    assert_int_equal(envelope_join_sign(&j, k, sig), CRYPTO_ERR_KEY_MISMATCH);
    crypto_key_free(k);
}

/* Every field of the update envelope is covered by the signature. */
/* crypto/README.md "Model hash": the domain comes first, so it is not BLAKE2b-256 of
 * the parameter bytes alone. */
static void model_hash_vector(void **state)
{
    const float params[4] = { 1.0f, -2.0f, 0.5f, 0.0f };
    uint8_t h[32], plain[32];
    model_hash(params, 4, h);
    assert_hex(h, 32, "177229b9bf30235791a46c9821125474ec2fbe2528c95343bdaf56b73a771301");
    uint8_t bytes[16];
    memcpy(bytes, params, sizeof bytes);
    assert_hex(bytes, 16, "0000803f000000c00000003f00000000");
    crypto_blake2b256(bytes, sizeof bytes, plain);
    assert_memory_not_equal(h, plain, 32);
    assert_int_equal(crypto_digest(MODEL_HASH_DOMAIN, bytes, sizeof bytes, plain), 0);
    assert_memory_equal(h, plain, 32);
}

/* crypto/README.md "Request", SubmitUpdate: the body digest is over the first stream
 * message exactly as the client packs and sends it: UpdateChunk{header}, not the bare
 * UpdateHeader; the header is update_envelope_to_msg's, byte for byte. */
static void submit_update_request_vector(void **state)
{
    struct crypto_key *k = vector_key("fpt");
    struct update_envelope e = vector_update();
    /* The vector's codec fields are those of the codec parameters it was encoded with. */
    const struct codec_params used = { .format_version = 1, .block_size = 4096,
                                       .k_per_block = 64, .quant = CODEC_QUANT_INT8,
                                       .zstd_level = 3, .error_feedback = 1 };
    memset(&e.codec, 0, sizeof e.codec);
    update_envelope_set_codec(&e, &used);
    uint8_t sig[64];
    assert_int_equal(envelope_sign(&e, k, sig), 0);
    /* The header as members build it (proto/update_msg.h), from the envelope. */
    Aulac__V1__CodecParams cp;
    Aulac__V1__UpdateHeader h;
    update_envelope_to_msg(&e, sig, &h, &cp);
    h.train_loss = 3.25f;
    h.val_loss = 3.5f;
    Aulac__V1__UpdateChunk first = AULAC__V1__UPDATE_CHUNK__INIT;
    first.part_case = AULAC__V1__UPDATE_CHUNK__PART_HEADER;
    first.header = &h;
    uint8_t *msg;
    size_t len;
    assert_int_equal(pb_pack(&first.base, &msg, &len), 0);
    assert_int_equal(len, 195);
    char hex[2 * 195 + 1];
    hex_encode(msg, len, hex);
    assert_string_equal(hex,
        "0ac001"                                             /* UpdateChunk.header, 192 bytes */
        "0a0d677074322d76692d736d616c6c" "1007" "1a03667074"
        "2220a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "2a204eb9c55d110e9af15f550fbb11e363e197ad66edd8ace3ab1de6cacaa1b3a3c8"
        "30c0c407" "38801040808040"
        "4a0d" "0801" "108020" "1840" "2001" "2803" "3001"
        "5240328f58116fb2e6e8fc3edbbc23b435144bd3566b984f6926b019b47d9a4f1b73"
        "e432e870675f43af18cd4fec7b0cc80ffc5a0727242911eab1c54b5b976f5b01"
        "5d00005040" "6500006040");
    struct request_statement st = { 0 };
    strcpy(st.method, FED_METHOD_SUBMIT_UPDATE);
    strcpy(st.member, "fpt");
    st.timestamp_unix_ms = 1767225600000;
    for (int i = 0; i < 16; i++)
        st.nonce[i] = (uint8_t)(0xf0 + i);
    request_body_digest(msg, len, st.body_digest);
    assert_hex(st.body_digest, 32, "b16087823ad7610d266bf3365fb9b3d02168408080b2e536cd26732f2e1f2155");
    uint8_t d[32], rsig[64];
    assert_int_equal(request_digest(&st, d), 0);
    assert_hex(d, 32, "990938d6ec7edb532fa5f494d4d7e8759c38d6f38d3f9a741322dc2f29f30edb");
    assert_int_equal(request_sign(&st, k, rsig), 0);
    assert_hex(rsig, 64, "d9ec92ab0b737406efd641e92b2513d26f696b06f7f4c1b5f63063030e3912cc"
                         "e9e4bbb24e0699b2a127c7764de20d379cf74bfa75c01a0c754d0455fef3a808");
    /* The bare header (the mistake a client made from the old wording) differs. */
    uint8_t *bare, other[32];
    size_t bare_len;
    assert_int_equal(pb_pack(&h.base, &bare, &bare_len), 0);
    assert_int_equal(bare_len, len - 3);
    request_body_digest(bare, bare_len, other);
    assert_memory_not_equal(other, st.body_digest, 32);
    free(bare);
    free(msg);
    crypto_key_free(k);
}

static void tampered_envelope_fields_fail(void **state)
{
    struct crypto_key *k = vector_key("fpt");
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    const struct update_envelope good = vector_update();
    uint8_t sig[64];
    assert_int_equal(envelope_sign(&good, k, sig), 0);

    for (int field = 0; field < 14; field++) {
        struct update_envelope e = good;
        switch (field) {
        case 0:  strcpy(e.experiment, "gpt2-vi-smalm"); break;
        case 1:  e.round++; break;
        case 2:  strcpy(e.member, "fpu"); break;
        case 3:  e.base_model_hash[31] ^= 1; break;
        case 4:  e.payload_hash[0] ^= 0x80; break;
        case 5:  e.payload_bytes--; break;
        case 6:  e.samples++; break;
        case 7:  e.tokens += 1ULL << 40; break;
        case 8:  e.codec.format_version = 2; break;
        case 9:  e.codec.block_size = 2048; break;
        case 10: e.codec.k_per_block = 65; break;
        case 11: e.codec.quant = 2; break;
        case 12: e.codec.zstd_level = -3; break;
        case 13: e.codec.error_feedback = 0; break;
        }
        if (envelope_verify(&e, pk.key, sig) != CRYPTO_ERR_BAD_SIGNATURE)
            fail_msg("changing field %d did not break the signature", field);
    }
    /* moving bytes between adjacent ids must change the digest: lengths are signed */
    struct update_envelope a = good, b = good;
    strcpy(a.experiment, "ab");
    strcpy(a.member, "c");
    strcpy(b.experiment, "a");
    strcpy(b.member, "bc");
    uint8_t da[32], db[32];
    assert_int_equal(envelope_digest(&a, da), 0);
    assert_int_equal(envelope_digest(&b, db), 0);
    assert_memory_not_equal(da, db, 32);

    uint8_t bad_sig[64];
    memcpy(bad_sig, sig, 64);
    bad_sig[63] ^= 0x10;
    assert_int_equal(envelope_verify(&good, pk.key, bad_sig), CRYPTO_ERR_BAD_SIGNATURE);

    struct crypto_key *other;
    assert_int_equal(crypto_key_generate("fpt", &other), 0);
    struct crypto_public_key opk;
    crypto_key_public(other, &opk);
    assert_int_equal(envelope_verify(&good, opk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);

    struct crypto_key *vnpt = vector_key("vnpt");
    assert_int_equal(envelope_sign(&good, vnpt, sig), CRYPTO_ERR_KEY_MISMATCH);
    struct update_envelope e = good;
    strcpy(e.member, "FPT");
    assert_int_equal(envelope_digest(&e, da), CRYPTO_ERR_BAD_ID);
    e = good;
    e.codec.error_feedback = 2;
    assert_int_equal(envelope_digest(&e, da), CRYPTO_ERR_ARG);
    e = good;
    e.codec.zstd_level = -1;   /* two's complement on the wire */
    uint8_t hdr[ENVELOPE_HEADER_MAX];
    size_t len;
    assert_int_equal(envelope_encode(&e, hdr, sizeof hdr, &len), 0);
    assert_hex(hdr + len - 5, 4, "ffffffff");
    crypto_key_free(k);
    crypto_key_free(other);
    crypto_key_free(vnpt);
}

/* --- motions and withdrawals: crypto/README.md's vectors, from crypto/reference.py --- */

static struct motion vector_motion(void)
{
    struct motion m;
    memset(&m, 0, sizeof m);
    strcpy(m.alliance, "au-lac");
    m.kind = MOTION_EXPERIMENT;
    strcpy(m.proposer, "hust");
    strcpy(m.experiment, "demo-c0c1c2c3");
    crypto_blake2b256("example policy document", 23, m.document_digest);
    for (int i = 0; i < 32; i++)
        m.content_hash[i] = (uint8_t)(0xc0 + i);
    strcpy(m.reason, "first run");
    m.created_unix_ms = 1767225600000;
    m.expires_unix_ms = 1767830400000;
    return m;
}

/* Header bytes, digest and signature of one statement against the reference's. */
static void check_motion(const struct motion *m, const struct crypto_key *k, const char *header,
                         const char *digest, const char *signature)
{
    uint8_t hdr[PROPOSAL_HEADER_MAX], d[32], sig[64];
    size_t len;
    assert_int_equal(motion_encode(m, hdr, sizeof hdr, &len), 0);
    char h[2 * PROPOSAL_HEADER_MAX + 1];
    hex_encode(hdr, len, h);
    assert_string_equal(h, header);
    assert_int_equal(motion_hash(m, d), 0);
    assert_hex(d, 32, digest);
    assert_int_equal(motion_sign(m, k, sig), 0);
    assert_hex(sig, 64, signature);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    assert_int_equal(motion_verify(m, pk.key, sig), 0);
}

static void motion_vectors(void **state)
{
    struct crypto_key *hust = vector_key("hust"), *fpt = vector_key("fpt");
    struct crypto_key *vnpt = vector_key("vnpt");
    struct motion m = vector_motion();
    assert_hex(m.document_digest, 32,
               "98d55cfa41faa5323653ac89184dc614d2f84163881d41e19eaffac00daf5fbb");
    check_motion(&m, hust,
                 "61756c61632f6d6f74696f6e2f763100000661752d6c616301000468757374000d64656d6f2d"
                 "633063316332633398d55cfa41faa5323653ac89184dc614d2f84163881d41e19eaffac00daf5f"
                 "bbc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf000966697273"
                 "742072756e0000019b76daa8000000019b9ae72c00",
                 "17bbedffc943f8af454df0674e9c8ac2366c6defa502c76b82221ea9c95d6ba6",
                 "b1f662611eb01001e255b97d4b75107f083c70a98af243f44eb82a94213344bd"
                 "24ba41016e3c538db1889c1767a8fda8c3657bf9cb484dddb3dd573ee334420a");
    uint8_t motion_hash_[32];
    assert_int_equal(motion_hash(&m, motion_hash_), 0);
    uint8_t sig[64];
    assert_int_equal(motion_sign(&m, fpt, sig), CRYPTO_ERR_KEY_MISMATCH);

    struct motion c = vector_motion();
    c.kind = MOTION_CANCEL;
    strcpy(c.proposer, "fpt");
    memset(c.document_digest, 0, 32);
    memset(c.content_hash, 0, 32);
    c.reason[0] = 0;
    c.created_unix_ms = 1767229200000;
    c.expires_unix_ms = 1767834000000;
    check_motion(&c, fpt,
                 "61756c61632f6d6f74696f6e2f763100000661752d6c6163020003667074000d64656d6f2d6330"
                 "633163326333000000000000000000000000000000000000000000000000000000000000000000"
                 "0000000000000000000000000000000000000000000000000000000000000000000000019b7711"
                 "96800000019b9b1e1a80",
                 "d5d4d27a85828aa80f74d5154f9ffd15132311a1a98043578456530c7997f597",
                 "85e93d43a9c2e92e53fba52b6aa88ac09e32a5cb4aa2b0ffe01c930cf2db31d0"
                 "91f39dd462e68eb953c4e9800735cd1693b56cc76c04bbc44f42f107ed420b03");

    struct motion ch = vector_motion();
    ch.kind = MOTION_CHARTER;
    strcpy(ch.proposer, "fpt");
    ch.experiment[0] = 0;
    static const char charter[] =
        "# aulac charter v1\nquorum:\n  roster: 0.5\n  experiments: 0.5\n  charter: 0.67\n"
        "proposers: [researcher]\nproposal_expiry_days: 7\nconcurrent_experiments: 1\n";
    crypto_blake2b256(charter, strlen(charter), ch.document_digest);
    memcpy(ch.content_hash, ch.document_digest, 32);
    strcpy(ch.reason, "back to the defaults");
    check_motion(&ch, fpt,
                 "61756c61632f6d6f74696f6e2f763100000661752d6c61630300036670740000ce9e89984e5df5"
                 "f018fd0326ab594be02c2487700ebae8c92f23d3518c192a72ce9e89984e5df5f018fd0326ab59"
                 "4be02c2487700ebae8c92f23d3518c192a7200146261636b20746f207468652064656661756c74"
                 "730000019b76daa8000000019b9ae72c00",
                 "74f6a723a23373fdc7eb072763e1c2f2fcf9983eabc20876469a677cef985dc1",
                 "9e1f28081d24d44b6c65631d9bfb4bb632afc73151133072b6491927d87e2021"
                 "59e8fb70f38006530f55354ab28e8d43da9dfe8e54ae3e4efbf6502a25813507");

    /* a vote on a motion is the roster vote statement over the proposal hash */
    struct roster_vote v = { 0 };
    memcpy(v.proposal_hash, motion_hash_, 32);
    strcpy(v.voter, "vnpt");
    v.approve = 1;
    uint8_t d[32];
    assert_int_equal(vote_digest(&v, d), 0);
    assert_hex(d, 32, "dfee6619d52b3fe95d72583494103623cc3397d01dc63bb4ceb4d922f763f038");
    assert_int_equal(vote_sign(&v, vnpt, sig), 0);
    assert_hex(sig, 64, "34d8a99680b7d542278c0c6b02c30b892806cd6d17c84dc929e953a34c0b0b0b"
                        "a1f4c349c984394c5cd66a1e598fb0f1300b01e64a98719312804c38e814d50c");

    struct withdrawal w = { 0 };
    memcpy(w.proposal_hash, motion_hash_, 32);
    strcpy(w.member, "hust");
    uint8_t hdr[128];
    size_t len;
    assert_int_equal(withdrawal_encode(&w, hdr, sizeof hdr, &len), 0);
    assert_int_equal(len, 56);
    assert_hex(hdr, len, "61756c61632f77697468647261772f76310017bbedffc943f8af454df0674e9c8ac2"
                         "366c6defa502c76b82221ea9c95d6ba6000468757374");
    assert_int_equal(withdrawal_digest(&w, d), 0);
    assert_hex(d, 32, "9d412cc6de4e26f021e6287f51d03cb21b123cde0895c9a3b867023d61b829c5");
    assert_int_equal(withdrawal_sign(&w, hust, sig), 0);
    assert_hex(sig, 64, "34ba64b72703713eaca408697f881ef8fc08e09fa9cc0f1e6a9c1de20a7bc8b6"
                        "ea00d06683e1a9372315c8757631a36d7c2cea41dc9770149d69ea7debea4d09");
    struct crypto_public_key pk;
    crypto_key_public(hust, &pk);
    assert_int_equal(withdrawal_verify(&w, pk.key, sig), 0);
    strcpy(w.member, "fpt");   /* the same hash withdrawn by someone else is another statement */
    assert_int_equal(withdrawal_verify(&w, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);
    assert_int_equal(withdrawal_sign(&w, hust, sig), CRYPTO_ERR_KEY_MISMATCH);
    crypto_key_free(hust);
    crypto_key_free(fpt);
    crypto_key_free(vnpt);
}

static void motion_field_rules(void **state)
{
    char why[200];
    struct motion m = vector_motion();
    assert_int_equal(motion_check(&m, why, sizeof why), 0);
    m.kind = 4;
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_ARG);
    assert_non_null(strstr(why, "kind 4"));
    m = vector_motion();
    m.experiment[0] = 0;
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_BAD_ID);
    m = vector_motion();
    m.kind = MOTION_CHARTER;               /* a charter names no experiment */
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_BAD_ID);
    assert_non_null(strstr(why, "names no experiment"));
    m = vector_motion();
    m.kind = MOTION_CANCEL;                /* a cancel carries no document */
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_ARG);
    assert_non_null(strstr(why, "no document"));
    m = vector_motion();
    memset(m.content_hash, 0, 32);
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_ARG);
    assert_non_null(strstr(why, "content hash"));
    m = vector_motion();
    strcpy(m.reason, "tab\there");
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_ARG);
    m = vector_motion();
    m.expires_unix_ms = m.created_unix_ms;
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_ARG);
    m = vector_motion();
    strcpy(m.proposer, "Hust");
    assert_int_equal(motion_check(&m, why, sizeof why), CRYPTO_ERR_BAD_ID);
    /* domains keep a motion's digest apart from a roster proposal's and a vote's */
    struct withdrawal w = { 0 };
    strcpy(w.member, "hust");
    struct roster_vote v = { 0 };
    strcpy(v.voter, "hust");
    uint8_t a[32], b[32];
    assert_int_equal(withdrawal_digest(&w, a), 0);
    assert_int_equal(vote_digest(&v, b), 0);
    assert_memory_not_equal(a, b, 32);
}

/* Domains keep statements apart: a receipt signature is no task signature. */
static void domains_separate_statement_kinds(void **state)
{
    struct update_receipt r = { .round = 1 };
    struct task_announcement t = { .round = 1 };
    strcpy(r.experiment, "x");
    strcpy(r.member, "x");
    strcpy(t.experiment, "x");
    uint8_t a[32], b[32];
    assert_int_equal(envelope_receipt_digest(&r, a), 0);
    assert_int_equal(envelope_task_digest(&t, b), 0);
    assert_memory_not_equal(a, b, 32);
}

static void on_hashed(void *ctx, uint64_t done)
{
    *(uint64_t *)ctx = done;
}

/* crypto_blake2b256_fd/_file hash a file the way crypto_blake2b256 hashes its bytes
 * (across the 1 MiB read buffer), refuse a file shorter than asked; file_copy_atomic
 * copies it byte for byte with the mode asked. */
static void file_hash_and_copy(void **state)
{
    size_t n = (3u << 20) + 5;
    uint8_t *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (uint8_t)(i * 131 + (i >> 11));
    char path[300], copy[300];
    path_in_tmp(path, sizeof path, "hashme.bin");
    path_in_tmp(copy, sizeof copy, "hashme-copy.bin");
    assert_int_equal(file_write_atomic(path, data, n, 0600), 0);
    uint8_t want[32], got[32];
    crypto_blake2b256(data, n, want);
    assert_int_equal(crypto_blake2b256_file(path, got), 0);
    assert_memory_equal(got, want, 32);

    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint64_t done = 0;
    memset(got, 0, sizeof got);
    assert_int_equal(crypto_blake2b256_fd(fd, n, got, on_hashed, &done), 0);
    assert_memory_equal(got, want, 32);
    assert_int_equal(done, n);
    crypto_blake2b256(data, 1000, want);
    assert_int_equal(crypto_blake2b256_fd(fd, 1000, got, NULL, NULL), 0);
    assert_memory_equal(got, want, 32);
    assert_int_equal(crypto_blake2b256_fd(fd, n + 1, got, NULL, NULL), -EIO);
    close(fd);
    assert_int_equal(crypto_blake2b256_file("/nonexistent/aulac/file", got), -ENOENT);

    assert_int_equal(file_copy_atomic(path, copy, 0644), 0);
    uint8_t *back;
    size_t len;
    assert_int_equal(file_read_all(copy, (size_t)1 << 30, &back, &len), 0);
    assert_int_equal(len, n);
    assert_memory_equal(back, data, n);
    free(back);
    struct stat st;
    assert_int_equal(stat(copy, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(file_copy_atomic("/nonexistent/aulac/file", copy, 0644), -ENOENT);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(digest_is_blake2b_of_domain_nul_message),
        cmocka_unit_test(ed25519_matches_rfc8032_test1),
        cmocka_unit_test(equal_and_ids),
        cmocka_unit_test(key_files_round_trip),
        cmocka_unit_test(secret_key_readable_by_others_is_refused),
        cmocka_unit_test(malformed_key_files_are_refused),
        cmocka_unit_test(bad_member_ids_are_refused),
        cmocka_unit_test(update_envelope_test_vector),
        cmocka_unit_test(coordinator_statement_vectors),
        cmocka_unit_test(join_request_vector),
        cmocka_unit_test(model_hash_vector),
        cmocka_unit_test(submit_update_request_vector),
        cmocka_unit_test(tampered_envelope_fields_fail),
        cmocka_unit_test(domains_separate_statement_kinds),
        cmocka_unit_test(motion_vectors),
        cmocka_unit_test(motion_field_rules),
        cmocka_unit_test(file_hash_and_copy),
    };
    return cmocka_run_group_tests_name("crypto", tests, group_setup, group_teardown);
}
