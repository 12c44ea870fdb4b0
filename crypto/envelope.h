#ifndef AULAC_CRYPTO_ENVELOPE_H
#define AULAC_CRYPTO_ENVELOPE_H
/* Signed statements: the member's update envelope and the coordinator's task
 * announcements and receipts, and a member's join request. (Ledger checkpoints are
 * C2SP signed notes: ledger/checkpoint.h.)
 *
 * Each is a fixed binary header (crypto/README.md gives every byte) that begins
 * with its domain string and a NUL:
 *
 *   digest    = BLAKE2b-256(header)          (= crypto_digest(domain, rest of header))
 *   signature = Ed25519(secret key, digest)  (64 bytes)
 *
 * Integers are big-endian, ids are a u16 big-endian length and that many bytes
 * (1..64 of [a-z0-9._-]). Never sign a re-serialized protobuf: build one of these
 * structs from the message's fields and verify that.
 *
 * Every function returns 0 or a crypto error (crypto/digest.h): CRYPTO_ERR_ARG
 * for NULL or out-of-range fields (a flag other than 0/1), CRYPTO_ERR_BAD_ID for
 * an invalid id, CRYPTO_ERR_BAD_SIGNATURE from the verify functions. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/digest.h"
#include "crypto/keys.h"

#define ENVELOPE_UPDATE_DOMAIN     "aulac/update/v1"
#define ENVELOPE_TASK_DOMAIN       "aulac/task/v2"
#define ENVELOPE_RECEIPT_DOMAIN    "aulac/receipt/v1"
#define ENVELOPE_JOIN_DOMAIN       "aulac/join/v1"

#define ENVELOPE_HEADER_MAX 512    /* every header below fits */
#define ENVELOPE_NONCE_BYTES 16

/* Codec parameters as the update was encoded (codec/ owns their meaning). */
struct envelope_codec {
    uint32_t format_version;
    uint32_t block_size;
    uint32_t k_per_block;
    uint32_t quant;            /* codec's quantization enum value */
    int32_t  zstd_level;
    uint8_t  error_feedback;   /* 0 or 1 */
};

/* What a member signs for one uploaded update. */
struct update_envelope {
    char     experiment[CRYPTO_ID_MAX + 1];
    uint64_t round;
    char     member[CRYPTO_ID_MAX + 1];
    uint8_t  base_model_hash[CRYPTO_DIGEST_BYTES];
    uint8_t  payload_hash[CRYPTO_DIGEST_BYTES];   /* BLAKE2b-256 of the compressed payload */
    uint64_t payload_bytes;
    uint64_t samples;
    uint64_t tokens;
    struct envelope_codec codec;
};

/* Header bytes into buf (cap >= ENVELOPE_HEADER_MAX always suffices); *len out.
 * CRYPTO_ERR_BUFFER when cap is too small. */
int envelope_encode(const struct update_envelope *e, uint8_t *buf, size_t cap, size_t *len);
int envelope_digest(const struct update_envelope *e, uint8_t out[CRYPTO_DIGEST_BYTES]);
/* CRYPTO_ERR_KEY_MISMATCH when k does not belong to e->member. */
int envelope_sign(const struct update_envelope *e, const struct crypto_key *k,
                  uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int envelope_verify(const struct update_envelope *e,
                    const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                    const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

/* Coordinator: round r of an experiment is open, to be trained as the policy with that
 * hash plans it (policies/plan.h); the task carries nothing else of the policy. */
struct task_announcement {
    char     experiment[CRYPTO_ID_MAX + 1];
    uint8_t  policy_hash[CRYPTO_DIGEST_BYTES];
    uint64_t round;
    uint8_t  base_model_hash[CRYPTO_DIGEST_BYTES];
    int64_t  deadline_unix_ms;
    uint64_t total_rounds;
};

int envelope_task_encode(const struct task_announcement *t, uint8_t *buf, size_t cap, size_t *len);
int envelope_task_digest(const struct task_announcement *t, uint8_t out[CRYPTO_DIGEST_BYTES]);
int envelope_task_sign(const struct task_announcement *t, const struct crypto_key *k,
                       uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int envelope_task_verify(const struct task_announcement *t,
                         const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                         const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

/* Coordinator: what became of a member's update, and where the ledger records it
 * (the leaf index, and the tree size and root that include it). */
struct update_receipt {
    char     experiment[CRYPTO_ID_MAX + 1];
    uint64_t round;
    char     member[CRYPTO_ID_MAX + 1];
    uint8_t  payload_hash[CRYPTO_DIGEST_BYTES];
    uint8_t  accepted;                       /* 1 accepted, 0 rejected */
    uint64_t ledger_index;
    uint64_t ledger_size;
    uint8_t  ledger_root[32];                /* RFC 6962 SHA-256 root at ledger_size */
};

int envelope_receipt_encode(const struct update_receipt *r, uint8_t *buf, size_t cap, size_t *len);
int envelope_receipt_digest(const struct update_receipt *r, uint8_t out[CRYPTO_DIGEST_BYTES]);
int envelope_receipt_sign(const struct update_receipt *r, const struct crypto_key *k,
                          uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int envelope_receipt_verify(const struct update_receipt *r,
                            const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                            const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

/* Member: authenticate a session. The coordinator rejects stale timestamps and
 * remembers nonces within its acceptance window. */
struct join_request {
    char    member[CRYPTO_ID_MAX + 1];
    int64_t timestamp_unix_ms;
    uint8_t nonce[ENVELOPE_NONCE_BYTES];
};

int envelope_join_encode(const struct join_request *j, uint8_t *buf, size_t cap, size_t *len);
int envelope_join_digest(const struct join_request *j, uint8_t out[CRYPTO_DIGEST_BYTES]);
/* CRYPTO_ERR_KEY_MISMATCH when k does not belong to j->member. */
int envelope_join_sign(const struct join_request *j, const struct crypto_key *k,
                       uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int envelope_join_verify(const struct join_request *j,
                         const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                         const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

#endif
