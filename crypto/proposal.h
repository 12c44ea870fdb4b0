#ifndef AULAC_CRYPTO_PROPOSAL_H
#define AULAC_CRYPTO_PROPOSAL_H
/* Governance statements: a member's proposal to change the roster (add a member,
 * remove one, rotate a member's key) and a member's vote on a proposal.
 * crypto/README.md gives every byte; policies/governance.h the rules that decide.
 *
 *   proposal hash = BLAKE2b-256(proposal header)     (what votes refer to)
 *   signature     = Ed25519(signer's secret key, digest of the header)
 *
 * Every function returns 0 or a crypto error (crypto/digest.h): CRYPTO_ERR_ARG
 * for NULL or for fields that break the rules below (proposal_check says which
 * in words), CRYPTO_ERR_BAD_ID, CRYPTO_ERR_KEY_MISMATCH from sign when the key
 * is not the proposer's / voter's, CRYPTO_ERR_BAD_SIGNATURE from verify. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/digest.h"
#include "crypto/keys.h"

#define PROPOSAL_DOMAIN        "aulac/roster-proposal/v1"
#define VOTE_DOMAIN            "aulac/vote/v1"
#define PROPOSAL_ALLIANCE_MAX  64
#define PROPOSAL_ORG_MAX       128
#define PROPOSAL_REASON_MAX    256
#define PROPOSAL_MEMBER_MAX    32     /* roster member ids are at most 32 bytes */
#define PROPOSAL_HEADER_MAX    1024   /* every header fits */
#define PROPOSAL_ROLES_ALL     0x7u   /* member | researcher | secretariat */

enum proposal_action {
    PROPOSAL_ADD    = 1,   /* a new member with its organization, roles and public key */
    PROPOSAL_REMOVE = 2,   /* a member leaves; its key is refused from then on */
    PROPOSAL_ROTATE = 3,   /* a member's key is replaced by public_key */
};

struct roster_proposal {
    char     alliance[PROPOSAL_ALLIANCE_MAX + 1];   /* binds the proposal to one alliance */
    uint8_t  action;                                /* enum proposal_action */
    char     proposer[CRYPTO_ID_MAX + 1];
    char     member[CRYPTO_ID_MAX + 1];             /* whom it is about */
    char     organization[PROPOSAL_ORG_MAX + 1];    /* add: required; otherwise "" */
    uint32_t roles;                                 /* add: non-empty subset of 0x7; otherwise 0 */
    uint8_t  public_key[CRYPTO_PUBLIC_KEY_BYTES];   /* add: the member's; rotate: the new key;
                                                       remove: all zero */
    char     reason[PROPOSAL_REASON_MAX + 1];       /* free text, may be "" */
    int64_t  created_unix_ms;
    int64_t  expires_unix_ms;                       /* votes after this are refused */
};

struct roster_vote {
    uint8_t proposal_hash[CRYPTO_DIGEST_BYTES];
    char    voter[CRYPTO_ID_MAX + 1];
    uint8_t approve;                                /* 1 yes, 0 no */
};

/* "add", "remove", "rotate"; NULL for anything else. */
const char *proposal_action_name(int action);

/* 1 when key is a usable Ed25519 public key (a valid point, not of small order). */
int proposal_key_valid(const uint8_t key[CRYPTO_PUBLIC_KEY_BYTES]);

/* The field rules: ids valid (member at most 32 bytes), texts without control
 * characters and within their limits, the per-action fields above, a valid
 * public key where one is required, created < expires. 0, or CRYPTO_ERR_ARG /
 * CRYPTO_ERR_BAD_ID / CRYPTO_ERR_BAD_KEY with why (may be NULL) in words. */
int proposal_check(const struct roster_proposal *p, char *why, size_t cap);

int proposal_encode(const struct roster_proposal *p, uint8_t *buf, size_t cap, size_t *len);
/* The proposal hash: the digest of the header. */
int proposal_hash(const struct roster_proposal *p, uint8_t out[CRYPTO_DIGEST_BYTES]);
int proposal_sign(const struct roster_proposal *p, const struct crypto_key *k,
                  uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int proposal_verify(const struct roster_proposal *p,
                    const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                    const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

int vote_encode(const struct roster_vote *v, uint8_t *buf, size_t cap, size_t *len);
int vote_digest(const struct roster_vote *v, uint8_t out[CRYPTO_DIGEST_BYTES]);
int vote_sign(const struct roster_vote *v, const struct crypto_key *k,
              uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int vote_verify(const struct roster_vote *v, const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

#endif
