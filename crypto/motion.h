#ifndef AULAC_CRYPTO_MOTION_H
#define AULAC_CRYPTO_MOTION_H
/* Motions: a member's signed proposal that is not a roster change (run an experiment,
 * cancel one, amend the charter), and the proposer's signed withdrawal of one.
 * crypto/README.md gives every byte with worked examples; policies/governance.h the
 * rules that decide; votes on motions are the roster vote statement (proposal.h).
 *
 *   proposal hash = BLAKE2b-256(motion header)          (what votes refer to)
 *   signature     = Ed25519(proposer's secret key, proposal hash)
 *
 * Every function returns 0 or a crypto error (crypto/digest.h): CRYPTO_ERR_ARG for
 * NULL or fields that break the rules (motion_check says which in words),
 * CRYPTO_ERR_BAD_ID, CRYPTO_ERR_KEY_MISMATCH from sign when the key is not the
 * proposer's / member's, CRYPTO_ERR_BAD_SIGNATURE from verify. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/digest.h"
#include "crypto/keys.h"
#include "crypto/proposal.h"

#define MOTION_DOMAIN      "aulac/motion/v1"
#define WITHDRAW_DOMAIN    "aulac/withdraw/v1"

enum motion_kind {
    MOTION_EXPERIMENT = 1,   /* run a policy as experiment `experiment` */
    MOTION_CANCEL     = 2,   /* cancel experiment `experiment` (queued or running) */
    MOTION_CHARTER    = 3,   /* the charter document becomes the charter */
};

struct motion {
    char     alliance[PROPOSAL_ALLIANCE_MAX + 1];
    uint8_t  kind;                              /* enum motion_kind */
    char     proposer[CRYPTO_ID_MAX + 1];
    char     experiment[CRYPTO_ID_MAX + 1];     /* kinds 1, 2: an id; kind 3: "" */
    uint8_t  document_digest[CRYPTO_DIGEST_BYTES];  /* BLAKE2b-256 of the document's exact
                                                       bytes; zero for a cancel */
    uint8_t  content_hash[CRYPTO_DIGEST_BYTES];     /* 1: policy hash; 3: charter hash;
                                                       zero for a cancel */
    char     reason[PROPOSAL_REASON_MAX + 1];   /* free text, may be "" */
    int64_t  created_unix_ms;
    int64_t  expires_unix_ms;                   /* votes after this are refused */
};

struct withdrawal {
    uint8_t proposal_hash[CRYPTO_DIGEST_BYTES];
    char    member[CRYPTO_ID_MAX + 1];          /* the proposer */
};

/* "experiment", "cancel", "charter"; NULL for anything else. */
const char *motion_kind_name(int kind);

/* The field rules: alliance 1..64 printable bytes; a known kind; proposer an id;
 * experiment an id for kinds 1 and 2 and "" for 3; both hashes non-zero for kinds 1
 * and 3 and zero for 2; reason at most 256 bytes without control characters;
 * 0 < created < expires. 0, or CRYPTO_ERR_ARG / CRYPTO_ERR_BAD_ID with why (may be
 * NULL) in words. */
int motion_check(const struct motion *m, char *why, size_t cap);

int motion_encode(const struct motion *m, uint8_t *buf, size_t cap, size_t *len);
/* The proposal hash: the digest of the header. */
int motion_hash(const struct motion *m, uint8_t out[CRYPTO_DIGEST_BYTES]);
int motion_sign(const struct motion *m, const struct crypto_key *k,
                uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int motion_verify(const struct motion *m, const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                  const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

int withdrawal_encode(const struct withdrawal *w, uint8_t *buf, size_t cap, size_t *len);
int withdrawal_digest(const struct withdrawal *w, uint8_t out[CRYPTO_DIGEST_BYTES]);
int withdrawal_sign(const struct withdrawal *w, const struct crypto_key *k,
                    uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int withdrawal_verify(const struct withdrawal *w,
                      const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                      const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

#endif
