#include "crypto/motion.h"

#include <stdio.h>
#include <string.h>

#include "common/why.h"
#include "crypto/key_private.h"
#include "crypto/statement.h"

const char *motion_kind_name(int kind)
{
    switch (kind) {
    case MOTION_EXPERIMENT: return "experiment";
    case MOTION_CANCEL: return "cancel";
    case MOTION_CHARTER: return "charter";
    }
    return NULL;
}

int motion_check(const struct motion *m, char *why, size_t cap)
{
    if (why && cap)
        why[0] = 0;
    if (!m)
        return why_fail(why, cap, CRYPTO_ERR_ARG, "no motion");
    if (!m->alliance[0] || !stmt_text_ok(m->alliance, PROPOSAL_ALLIANCE_MAX))
        return why_fail(why, cap, CRYPTO_ERR_ARG, "alliance name must be 1..%d printable bytes",
                        PROPOSAL_ALLIANCE_MAX);
    const char *kind = motion_kind_name(m->kind);
    if (!kind)
        return why_fail(why, cap, CRYPTO_ERR_ARG, "kind %u is not experiment (1), cancel (2) "
                        "or charter (3)", m->kind);
    if (!crypto_id_valid(m->proposer))
        return why_fail(why, cap, CRYPTO_ERR_BAD_ID, "proposer id is not 1..64 of [a-z0-9._-]");
    if (m->kind == MOTION_CHARTER ? m->experiment[0] != 0 : !crypto_id_valid(m->experiment))
        return why_fail(why, cap, CRYPTO_ERR_BAD_ID, m->kind == MOTION_CHARTER
                        ? "a charter motion names no experiment"
                        : "experiment id is not 1..64 of [a-z0-9._-]");
    int zero_doc = stmt_all_zero(m->document_digest, 32), zero_content = stmt_all_zero(m->content_hash, 32);
    if (m->kind == MOTION_CANCEL ? !zero_doc || !zero_content : zero_doc || zero_content)
        return why_fail(why, cap, CRYPTO_ERR_ARG, m->kind == MOTION_CANCEL
                        ? "a cancel motion carries no document (its hashes are zero)"
                        : "a %s motion needs its document digest and content hash", kind);
    if (!stmt_text_ok(m->reason, PROPOSAL_REASON_MAX))
        return why_fail(why, cap, CRYPTO_ERR_ARG, "reason must be at most %d printable bytes",
                        PROPOSAL_REASON_MAX);
    if (m->created_unix_ms <= 0 || m->expires_unix_ms <= m->created_unix_ms)
        return why_fail(why, cap, CRYPTO_ERR_ARG, "the motion must expire after it is created");
    return 0;
}

int motion_encode(const struct motion *m, uint8_t *buf, size_t cap, size_t *len)
{
    if (!m || !buf)
        return CRYPTO_ERR_ARG;
    int rc = motion_check(m, NULL, 0);
    if (rc)
        return rc;
    struct stmt_writer w = { buf, cap, 0, 0 };
    stmt_put_domain(&w, MOTION_DOMAIN);
    stmt_put_str(&w, m->alliance);
    stmt_put_be(&w, m->kind, 1);
    stmt_put_str(&w, m->proposer);
    stmt_put_str(&w, m->experiment);   /* id; "" (length 0) for a charter */
    stmt_put(&w, m->document_digest, CRYPTO_DIGEST_BYTES);
    stmt_put(&w, m->content_hash, CRYPTO_DIGEST_BYTES);
    stmt_put_str(&w, m->reason);
    stmt_put_be(&w, (uint64_t)m->created_unix_ms, 8);
    stmt_put_be(&w, (uint64_t)m->expires_unix_ms, 8);
    return stmt_finish(&w, len);
}

int withdrawal_encode(const struct withdrawal *w, uint8_t *buf, size_t cap, size_t *len)
{
    if (!w || !buf)
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(w->member))
        return CRYPTO_ERR_BAD_ID;
    struct stmt_writer s = { buf, cap, 0, 0 };
    stmt_put_domain(&s, WITHDRAW_DOMAIN);
    stmt_put(&s, w->proposal_hash, CRYPTO_DIGEST_BYTES);
    stmt_put_str(&s, w->member);
    return stmt_finish(&s, len);
}

typedef int (*encode_fn)(const void *x, uint8_t *buf, size_t cap, size_t *len);

/* BLAKE2b-256 of a statement's header. */
static int digest_of(encode_fn enc, const void *x, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    uint8_t buf[PROPOSAL_HEADER_MAX];
    size_t len;
    if (!out)
        return CRYPTO_ERR_ARG;
    int rc = enc(x, buf, sizeof buf, &len);
    if (rc)
        return rc;
    crypto_blake2b256(buf, len, out);
    return 0;
}

static int sign_as(encode_fn enc, const void *x, const char *signer, const struct crypto_key *k,
                   uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!x || !k)
        return CRYPTO_ERR_ARG;
    if (strncmp(k->id, signer, sizeof k->id) != 0)
        return CRYPTO_ERR_KEY_MISMATCH;
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = digest_of(enc, x, d);
    return rc ? rc : crypto_signature_create(k, d, sizeof d, sig);
}

static int verify_with(encode_fn enc, const void *x, const uint8_t key[CRYPTO_PUBLIC_KEY_BYTES],
                       const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = digest_of(enc, x, d);
    return rc ? rc : crypto_signature_verify(key, d, sizeof d, sig);
}

static int enc_motion(const void *x, uint8_t *buf, size_t cap, size_t *len)
{
    return motion_encode(x, buf, cap, len);
}

static int enc_withdrawal(const void *x, uint8_t *buf, size_t cap, size_t *len)
{
    return withdrawal_encode(x, buf, cap, len);
}

int motion_hash(const struct motion *m, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    return digest_of(enc_motion, m, out);
}

int motion_sign(const struct motion *m, const struct crypto_key *k,
                uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return sign_as(enc_motion, m, m ? m->proposer : "", k, sig);
}

int motion_verify(const struct motion *m, const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                  const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return verify_with(enc_motion, m, public_key, sig);
}

int withdrawal_digest(const struct withdrawal *w, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    return digest_of(enc_withdrawal, w, out);
}

int withdrawal_sign(const struct withdrawal *w, const struct crypto_key *k,
                    uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return sign_as(enc_withdrawal, w, w ? w->member : "", k, sig);
}

int withdrawal_verify(const struct withdrawal *w,
                      const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                      const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    return verify_with(enc_withdrawal, w, public_key, sig);
}
