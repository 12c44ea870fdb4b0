#include "crypto/envelope.h"

#include <string.h>

#include "crypto/key_private.h"

/* Appends big-endian fields to a bounded buffer; any overflow sticks. */
struct writer {
    uint8_t *buf;
    size_t cap, len;
    int overflow;
};

static void put(struct writer *w, const void *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_be(struct writer *w, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put(w, b, (size_t)bytes);
}

static void put_u8(struct writer *w, uint8_t v)   { put_be(w, v, 1); }
static void put_u32(struct writer *w, uint32_t v) { put_be(w, v, 4); }
static void put_i32(struct writer *w, int32_t v)  { put_be(w, (uint32_t)v, 4); }
static void put_u64(struct writer *w, uint64_t v) { put_be(w, v, 8); }
static void put_i64(struct writer *w, int64_t v)  { put_be(w, (uint64_t)v, 8); }

static void put_domain(struct writer *w, const char *domain)
{
    put(w, domain, strlen(domain) + 1);   /* with its NUL */
}

static void put_id(struct writer *w, const char *id)
{
    size_t n = strlen(id);
    put_be(w, n, 2);
    put(w, id, n);
}

static int finish(struct writer *w, size_t *len)
{
    if (w->overflow)
        return CRYPTO_ERR_BUFFER;
    if (len)
        *len = w->len;
    return 0;
}

/* A statement type is an encoder; digest, sign and verify are the same for all. */
typedef int (*encode_fn)(const void *obj, uint8_t *buf, size_t cap, size_t *len);

static int digest_of(encode_fn enc, const void *obj, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    uint8_t buf[ENVELOPE_HEADER_MAX];
    size_t len;
    if (!out)
        return CRYPTO_ERR_ARG;
    int rc = enc(obj, buf, sizeof buf, &len);
    if (rc)
        return rc;
    crypto_blake2b256(buf, len, out);
    return 0;
}

static int sign_of(encode_fn enc, const void *obj, const struct crypto_key *k,
                   uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = digest_of(enc, obj, d);
    if (rc)
        return rc;
    return crypto_signature_create(k, d, sizeof d, sig);
}

static int verify_of(encode_fn enc, const void *obj, const uint8_t *public_key, const uint8_t *sig)
{
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = digest_of(enc, obj, d);
    if (rc)
        return rc;
    return crypto_signature_verify(public_key, d, sizeof d, sig);
}

static int member_of_key(const struct crypto_key *k, const char *member)
{
    if (!k)
        return CRYPTO_ERR_ARG;
    return strncmp(k->id, member, sizeof k->id) == 0 ? 0 : CRYPTO_ERR_KEY_MISMATCH;
}

/* --- update envelope -------------------------------------------------------- */

int envelope_encode(const struct update_envelope *e, uint8_t *buf, size_t cap, size_t *len)
{
    if (!e || !buf)
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(e->experiment) || !crypto_id_valid(e->member))
        return CRYPTO_ERR_BAD_ID;
    if (e->codec.error_feedback > 1)
        return CRYPTO_ERR_ARG;
    struct writer w = { buf, cap, 0, 0 };
    put_domain(&w, ENVELOPE_UPDATE_DOMAIN);
    put_id(&w, e->experiment);
    put_u64(&w, e->round);
    put_id(&w, e->member);
    put(&w, e->base_model_hash, 32);
    put(&w, e->payload_hash, 32);
    put_u64(&w, e->payload_bytes);
    put_u64(&w, e->samples);
    put_u64(&w, e->tokens);
    put_u32(&w, e->codec.format_version);
    put_u32(&w, e->codec.block_size);
    put_u32(&w, e->codec.k_per_block);
    put_u32(&w, e->codec.quant);
    put_i32(&w, e->codec.zstd_level);
    put_u8(&w, e->codec.error_feedback);
    return finish(&w, len);
}

static int enc_update(const void *o, uint8_t *b, size_t c, size_t *l) { return envelope_encode(o, b, c, l); }

int envelope_digest(const struct update_envelope *e, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    return digest_of(enc_update, e, out);
}

int envelope_sign(const struct update_envelope *e, const struct crypto_key *k,
                  uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!e)
        return CRYPTO_ERR_ARG;
    int rc = member_of_key(k, e->member);
    return rc ? rc : sign_of(enc_update, e, k, sig);
}

int envelope_verify(const struct update_envelope *e,
                    const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                    const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return verify_of(enc_update, e, public_key, sig);
}

/* --- task announcement ---------------------------------------------------- */

int envelope_task_encode(const struct task_announcement *t, uint8_t *buf, size_t cap, size_t *len)
{
    if (!t || !buf)
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(t->experiment))
        return CRYPTO_ERR_BAD_ID;
    struct writer w = { buf, cap, 0, 0 };
    put_domain(&w, ENVELOPE_TASK_DOMAIN);
    put_id(&w, t->experiment);
    put(&w, t->policy_hash, 32);
    put_u64(&w, t->round);
    put(&w, t->base_model_hash, 32);
    put_i64(&w, t->deadline_unix_ms);
    put_u64(&w, t->total_rounds);
    return finish(&w, len);
}

static int enc_task(const void *o, uint8_t *b, size_t c, size_t *l) { return envelope_task_encode(o, b, c, l); }

int envelope_task_digest(const struct task_announcement *t, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    return digest_of(enc_task, t, out);
}

int envelope_task_sign(const struct task_announcement *t, const struct crypto_key *k,
                       uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return sign_of(enc_task, t, k, sig);
}

int envelope_task_verify(const struct task_announcement *t,
                         const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                         const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return verify_of(enc_task, t, public_key, sig);
}

/* --- receipt ---------------------------------------------------------------- */

int envelope_receipt_encode(const struct update_receipt *r, uint8_t *buf, size_t cap, size_t *len)
{
    if (!r || !buf)
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(r->experiment) || !crypto_id_valid(r->member))
        return CRYPTO_ERR_BAD_ID;
    if (r->accepted > 1)
        return CRYPTO_ERR_ARG;
    struct writer w = { buf, cap, 0, 0 };
    put_domain(&w, ENVELOPE_RECEIPT_DOMAIN);
    put_id(&w, r->experiment);
    put_u64(&w, r->round);
    put_id(&w, r->member);
    put(&w, r->payload_hash, 32);
    put_u8(&w, r->accepted);
    put_u64(&w, r->ledger_index);
    put_u64(&w, r->ledger_size);
    put(&w, r->ledger_root, 32);
    return finish(&w, len);
}

static int enc_receipt(const void *o, uint8_t *b, size_t c, size_t *l) { return envelope_receipt_encode(o, b, c, l); }

int envelope_receipt_digest(const struct update_receipt *r, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    return digest_of(enc_receipt, r, out);
}

int envelope_receipt_sign(const struct update_receipt *r, const struct crypto_key *k,
                          uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return sign_of(enc_receipt, r, k, sig);
}

int envelope_receipt_verify(const struct update_receipt *r,
                            const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                            const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return verify_of(enc_receipt, r, public_key, sig);
}

/* --- join request ------------------------------------------------------------- */

int envelope_join_encode(const struct join_request *j, uint8_t *buf, size_t cap, size_t *len)
{
    if (!j || !buf)
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(j->member))
        return CRYPTO_ERR_BAD_ID;
    struct writer w = { buf, cap, 0, 0 };
    put_domain(&w, ENVELOPE_JOIN_DOMAIN);
    put_id(&w, j->member);
    put_i64(&w, j->timestamp_unix_ms);
    put(&w, j->nonce, ENVELOPE_NONCE_BYTES);
    return finish(&w, len);
}

static int enc_join(const void *o, uint8_t *b, size_t c, size_t *l) { return envelope_join_encode(o, b, c, l); }

int envelope_join_digest(const struct join_request *j, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    return digest_of(enc_join, j, out);
}

int envelope_join_sign(const struct join_request *j, const struct crypto_key *k,
                       uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!j)
        return CRYPTO_ERR_ARG;
    int rc = member_of_key(k, j->member);
    return rc ? rc : sign_of(enc_join, j, k, sig);
}

int envelope_join_verify(const struct join_request *j,
                         const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                         const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return verify_of(enc_join, j, public_key, sig);
}
