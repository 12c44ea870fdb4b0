#ifndef AULAC_CRYPTO_DIGEST_H
#define AULAC_CRYPTO_DIGEST_H
/* Digests, signatures and comparisons: the primitives every signed object uses.
 *
 *   digest  = BLAKE2b-256( domain ‖ 0x00 ‖ message )
 *   signature = Ed25519( secret key, message )          (64 bytes, RFC 8032)
 *
 * The domain string (e.g. "aulac/update/v1") keeps a digest of one kind of object
 * from ever being accepted as a digest of another kind. It must be non-empty, at
 * most CRYPTO_DOMAIN_MAX bytes and contain no NUL. crypto/README.md documents the
 * byte layouts built on top of this. */
#include <stddef.h>
#include <stdint.h>
#include <sodium.h>

#define CRYPTO_DIGEST_BYTES     32   /* BLAKE2b-256 */
#define CRYPTO_PUBLIC_KEY_BYTES 32   /* Ed25519 public key */
#define CRYPTO_SEED_BYTES       32   /* Ed25519 seed: the secret from which the key pair derives */
#define CRYPTO_SIGNATURE_BYTES  64   /* Ed25519 detached signature */
#define CRYPTO_DOMAIN_MAX       64
#define CRYPTO_ID_MAX           64   /* member and experiment ids */

#define CRYPTO_WARN_UNUSED __attribute__((warn_unused_result))

/* Error codes of crypto/ (range -1000..-1099). */
enum crypto_error {
    CRYPTO_OK = 0,
    CRYPTO_ERR_ARG            = -1000, /* NULL pointer, bad length, bad domain */
    CRYPTO_ERR_INIT           = -1001, /* sodium_init() failed */
    CRYPTO_ERR_NOMEM          = -1002, /* sodium_malloc/malloc failed */
    CRYPTO_ERR_BAD_SIGNATURE  = -1003, /* signature does not verify */
    CRYPTO_ERR_BAD_ID         = -1004, /* id empty, longer than 64 or outside [a-z0-9._-] */
    CRYPTO_ERR_IO             = -1005, /* key file could not be read or written */
    CRYPTO_ERR_KEY_PERMS      = -1006, /* secret key file readable by group or others */
    CRYPTO_ERR_KEY_FORMAT     = -1007, /* key file malformed (header, field, base64, length) */
    CRYPTO_ERR_KEY_EXISTS     = -1008, /* refusing to overwrite an existing secret key file */
    CRYPTO_ERR_KEY_MISMATCH   = -1009, /* key's member id or key id differs from what is claimed */
    CRYPTO_ERR_BAD_KEY        = -1010, /* public key bytes are not a valid Ed25519 point */
    CRYPTO_ERR_BUFFER         = -1011, /* caller's buffer too small */
    CRYPTO_ERR_MALFORMED      = -1012, /* received statement bytes do not decode */
    CRYPTO_ERR_EXPIRED        = -1013, /* statement past its expiry (or valid for too long) */
    CRYPTO_ERR_REPLAYED       = -1014, /* statement's nonce was seen before */
};

/* Words for any crypto error code (and "ok" for 0). Never NULL. */
const char *crypto_strerror(int rc);

/* Initializes libsodium; safe to call any number of times from any thread.
 * Every function that needs it calls it itself. CRYPTO_ERR_INIT. */
int crypto_init(void);

/* --- BLAKE2b-256 with a domain -------------------------------------------- */

struct crypto_digest_state {
    crypto_generichash_blake2b_state st;
};

/* Streaming: init with the domain, update any number of times, final once.
 * init returns CRYPTO_ERR_ARG for a bad domain. */
int  crypto_digest_init(struct crypto_digest_state *s, const char *domain);
void crypto_digest_update(struct crypto_digest_state *s, const void *data, size_t len);
void crypto_digest_final(struct crypto_digest_state *s, uint8_t out[CRYPTO_DIGEST_BYTES]);

/* One shot. CRYPTO_ERR_ARG for a bad domain. */
int crypto_digest(const char *domain, const void *data, size_t len,
                  uint8_t out[CRYPTO_DIGEST_BYTES]);

/* Plain BLAKE2b-256 with no domain (e.g. payload hashes, file hashes). */
void crypto_blake2b256(const void *data, size_t len, uint8_t out[CRYPTO_DIGEST_BYTES]);

/* Told the bytes hashed so far, after each read of a file being hashed. */
typedef void (*crypto_progress_fn)(void *ctx, uint64_t done);

/* Plain BLAKE2b-256 of the first size bytes of the open file fd, read with pread
 * from offset 0 (the file position is left alone). progress may be NULL.
 * 0; -EIO when the file ends before size bytes; -ENOMEM; or read's -errno. */
int crypto_blake2b256_fd(int fd, uint64_t size, uint8_t out[CRYPTO_DIGEST_BYTES],
                         crypto_progress_fn progress, void *ctx);

/* Plain BLAKE2b-256 of the whole file at path (its size when opened). 0 or -errno. */
int crypto_blake2b256_file(const char *path, uint8_t out[CRYPTO_DIGEST_BYTES]);

/* --- Ed25519 ---------------------------------------------------------------- */

struct crypto_key;   /* crypto/keys.h */

/* Detached Ed25519 signature of msg with k's secret key. CRYPTO_ERR_ARG. */
int crypto_signature_create(const struct crypto_key *k, const void *msg, size_t len,
                            uint8_t sig[CRYPTO_SIGNATURE_BYTES]);

/* 0 when sig is a valid signature of msg by public_key, CRYPTO_ERR_BAD_SIGNATURE
 * otherwise (also for a malformed key), CRYPTO_ERR_ARG for NULL arguments. */
int crypto_signature_verify(const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                            const void *msg, size_t len,
                            const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

/* Constant-time equality of two len-byte buffers: 1 when equal, 0 otherwise. */
int crypto_equal(const void *a, const void *b, size_t len) CRYPTO_WARN_UNUSED;

/* 1 when id is a valid member/experiment id: 1..64 bytes of [a-z0-9._-], the first
 * one a letter or digit. */
int crypto_id_valid(const char *id);

#endif
