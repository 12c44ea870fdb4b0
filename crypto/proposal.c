#include "crypto/proposal.h"
#include "common/why.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crypto/key_private.h"
#include "crypto/statement.h"

const char *proposal_action_name(int action)
{
    switch (action) {
    case PROPOSAL_ADD: return "add";
    case PROPOSAL_REMOVE: return "remove";
    case PROPOSAL_ROTATE: return "rotate";
    }
    return NULL;
}

int proposal_key_valid(const uint8_t key[CRYPTO_PUBLIC_KEY_BYTES])
{
    if (!key || crypto_init())
        return 0;
    uint8_t curve[32];
    /* rejects non-canonical encodings, points off the curve and small-order points */
    return crypto_sign_ed25519_pk_to_curve25519(curve, key) == 0 && crypto_core_ed25519_is_valid_point(key);
}


int proposal_check(const struct roster_proposal *p, char *why, size_t cap)
{
    if (why && cap)
        why[0] = 0;
    if (!p)
        return why_fail(why, cap, CRYPTO_ERR_ARG, "no proposal");
    if (!p->alliance[0] || !stmt_text_ok(p->alliance, PROPOSAL_ALLIANCE_MAX))
        return why_fail(why, cap, CRYPTO_ERR_ARG, "alliance name must be 1..%d printable bytes",
                   PROPOSAL_ALLIANCE_MAX);
    if (!proposal_action_name(p->action))
        return why_fail(why, cap, CRYPTO_ERR_ARG, "action %u is not add (1), remove (2) or rotate (3)",
                   p->action);
    if (!crypto_id_valid(p->proposer))
        return why_fail(why, cap, CRYPTO_ERR_BAD_ID, "proposer id is not 1..64 of [a-z0-9._-]");
    if (!crypto_id_valid(p->member) || strlen(p->member) > PROPOSAL_MEMBER_MAX)
        return why_fail(why, cap, CRYPTO_ERR_BAD_ID, "member id is not 1..%d of [a-z0-9._-]",
                   PROPOSAL_MEMBER_MAX);
    if (!stmt_text_ok(p->organization, PROPOSAL_ORG_MAX))
        return why_fail(why, cap, CRYPTO_ERR_ARG, "organization must be at most %d printable bytes",
                   PROPOSAL_ORG_MAX);
    if (!stmt_text_ok(p->reason, PROPOSAL_REASON_MAX))
        return why_fail(why, cap, CRYPTO_ERR_ARG, "reason must be at most %d printable bytes",
                   PROPOSAL_REASON_MAX);
    if (p->created_unix_ms <= 0 || p->expires_unix_ms <= p->created_unix_ms)
        return why_fail(why, cap, CRYPTO_ERR_ARG, "the proposal must expire after it is created");
    switch (p->action) {
    case PROPOSAL_ADD:
        if (!p->organization[0])
            return why_fail(why, cap, CRYPTO_ERR_ARG, "adding a member needs its organization");
        if (p->roles == 0 || (p->roles & ~PROPOSAL_ROLES_ALL))
            return why_fail(why, cap, CRYPTO_ERR_ARG, "adding a member needs roles among member, "
                       "researcher, secretariat");
        if (!proposal_key_valid(p->public_key))
            return why_fail(why, cap, CRYPTO_ERR_BAD_KEY, "the new member's public key is not a "
                       "valid Ed25519 key");
        break;
    case PROPOSAL_REMOVE:
        if (p->organization[0] || p->roles || !stmt_all_zero(p->public_key, 32))
            return why_fail(why, cap, CRYPTO_ERR_ARG, "a removal carries no organization, roles or key");
        break;
    case PROPOSAL_ROTATE:
        if (p->organization[0] || p->roles)
            return why_fail(why, cap, CRYPTO_ERR_ARG, "a key rotation carries no organization or roles");
        if (!proposal_key_valid(p->public_key))
            return why_fail(why, cap, CRYPTO_ERR_BAD_KEY, "the new public key is not a valid Ed25519 key");
        break;
    }
    return 0;
}

int proposal_encode(const struct roster_proposal *p, uint8_t *buf, size_t cap, size_t *len)
{
    if (!p || !buf)
        return CRYPTO_ERR_ARG;
    int rc = proposal_check(p, NULL, 0);
    if (rc)
        return rc;
    struct stmt_writer w = { buf, cap, 0, 0 };
    stmt_put_domain(&w, PROPOSAL_DOMAIN);
    stmt_put_str(&w, p->alliance);
    stmt_put_be(&w, p->action, 1);
    stmt_put_str(&w, p->proposer);
    stmt_put_str(&w, p->member);
    stmt_put_str(&w, p->organization);
    stmt_put_be(&w, p->roles, 4);
    stmt_put(&w, p->public_key, CRYPTO_PUBLIC_KEY_BYTES);
    stmt_put_str(&w, p->reason);
    stmt_put_be(&w, (uint64_t)p->created_unix_ms, 8);
    stmt_put_be(&w, (uint64_t)p->expires_unix_ms, 8);
    return stmt_finish(&w, len);
}

int proposal_hash(const struct roster_proposal *p, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    uint8_t buf[PROPOSAL_HEADER_MAX];
    size_t len;
    if (!out)
        return CRYPTO_ERR_ARG;
    int rc = proposal_encode(p, buf, sizeof buf, &len);
    if (rc)
        return rc;
    crypto_blake2b256(buf, len, out);
    return 0;
}

int proposal_sign(const struct roster_proposal *p, const struct crypto_key *k,
                  uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!p || !k)
        return CRYPTO_ERR_ARG;
    if (strncmp(k->id, p->proposer, sizeof k->id) != 0)
        return CRYPTO_ERR_KEY_MISMATCH;
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = proposal_hash(p, d);
    return rc ? rc : crypto_signature_create(k, d, sizeof d, sig);
}

int proposal_verify(const struct roster_proposal *p,
                    const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                    const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = proposal_hash(p, d);
    return rc ? rc : crypto_signature_verify(public_key, d, sizeof d, sig);
}

int vote_encode(const struct roster_vote *v, uint8_t *buf, size_t cap, size_t *len)
{
    if (!v || !buf || v->approve > 1)
        return CRYPTO_ERR_ARG;
    if (!crypto_id_valid(v->voter))
        return CRYPTO_ERR_BAD_ID;
    struct stmt_writer w = { buf, cap, 0, 0 };
    stmt_put_domain(&w, VOTE_DOMAIN);
    stmt_put(&w, v->proposal_hash, CRYPTO_DIGEST_BYTES);
    stmt_put_str(&w, v->voter);
    stmt_put_be(&w, v->approve, 1);
    return stmt_finish(&w, len);
}

int vote_digest(const struct roster_vote *v, uint8_t out[CRYPTO_DIGEST_BYTES])
{
    uint8_t buf[PROPOSAL_HEADER_MAX];
    size_t len;
    if (!out)
        return CRYPTO_ERR_ARG;
    int rc = vote_encode(v, buf, sizeof buf, &len);
    if (rc)
        return rc;
    crypto_blake2b256(buf, len, out);
    return 0;
}

int vote_sign(const struct roster_vote *v, const struct crypto_key *k,
              uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    if (!v || !k)
        return CRYPTO_ERR_ARG;
    if (strncmp(k->id, v->voter, sizeof k->id) != 0)
        return CRYPTO_ERR_KEY_MISMATCH;
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = vote_digest(v, d);
    return rc ? rc : crypto_signature_create(k, d, sizeof d, sig);
}

int vote_verify(const struct roster_vote *v, const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                const uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    uint8_t d[CRYPTO_DIGEST_BYTES];
    int rc = vote_digest(v, d);
    return rc ? rc : crypto_signature_verify(public_key, d, sizeof d, sig);
}
