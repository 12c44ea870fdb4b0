#include "crypto/request.h"

#include <sodium.h>
#include <string.h>

#include "crypto/key_private.h"
#include "crypto/statement.h"

int request_method_valid(const char *method)
{
    if (!method)
        return 0;
    size_t n = strnlen(method, REQUEST_METHOD_MAX + 1);
    if (n == 0 || n > REQUEST_METHOD_MAX || method[0] != '/')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (method[i] < 0x21 || method[i] > 0x7e)
            return 0;
    return 1;
}

void request_body_digest(const void *body, size_t len, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    crypto_blake2b256(body, len, out);
}

int request_encode(const struct request_statement *s, uint8_t *buf, size_t cap, size_t *len)
{
    if (!s || !buf)
        return CRYPTO_ERR_ARG;
    if (!request_method_valid(s->method))
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(s->member))
        return CRYPTO_ERR_BAD_ID;
    struct stmt_writer w = { buf, cap, 0, 0 };
    stmt_put_domain(&w, REQUEST_DOMAIN);
    stmt_put_str(&w, s->method);
    stmt_put_str(&w, s->member);
    stmt_put_be(&w, (uint64_t)s->timestamp_unix_ms, 8);
    stmt_put(&w, s->nonce, REQUEST_NONCE_BYTES);
    stmt_put(&w, s->body_digest, CRYPTO_DIGEST_BYTES);
    return stmt_finish(&w, len);
}

int request_digest(const struct request_statement *s, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    uint8_t buf[REQUEST_HEADER_MAX];
    size_t len;
    if (!out)
        return CRYPTO_ERR_ARG;
    int rc = request_encode(s, buf, sizeof buf, &len);
    if (rc)
        return rc;
    crypto_blake2b256(buf, len, out);
    return 0;
}

int request_sign(const struct request_statement *s, const struct crypto_key *k,
                 uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!s || !k)
        return CRYPTO_ERR_ARG;
    if (strncmp(k->id, s->member, sizeof k->id) != 0)
        return CRYPTO_ERR_KEY_MISMATCH;
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = request_digest(s, d);
    return rc ? rc : crypto_signature_create(k, d, sizeof d, sig);
}

int request_verify(const struct request_statement *s,
                   const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                   const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = request_digest(s, d);
    return rc ? rc : crypto_signature_verify(public_key, d, sizeof d, sig);
}

int request_sign_new(const struct crypto_key *k, const char *method, const void *body,
                     size_t body_len, int64_t now_unix_ms, struct request_statement *s,
                     uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!k || !method || (!body && body_len) || !s || !sig)
        return CRYPTO_ERR_ARG;
    if (crypto_init())
        return CRYPTO_ERR_INIT;
    memset(s, 0, sizeof *s);
    if (!request_method_valid(method))
        return CRYPTO_ERR_ARG;
    memcpy(s->method, method, strlen(method) + 1);
    memcpy(s->member, k->id, sizeof s->member);
    s->timestamp_unix_ms = now_unix_ms;
    randombytes_buf(s->nonce, sizeof s->nonce);
    request_body_digest(body, body_len, s->body_digest);
    return request_sign(s, k, sig);
}
