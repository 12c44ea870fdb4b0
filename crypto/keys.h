#ifndef AULAC_CRYPTO_KEYS_H
#define AULAC_CRYPTO_KEYS_H
/* Ed25519 identities and their key files.
 *
 * A struct crypto_key is one party's key pair; its secret half lives in
 * sodium_malloc memory (guard pages, locked, wiped on free). A struct
 * crypto_public_key is the public half: what the roster and the ledger carry.
 *
 * Key files are text (crypto/README.md shows both):
 *
 *   aulac-secret-key v1            written 0600; crypto_key_load refuses the file
 *   id: fpt                        when group or others may read it
 *   key-id: 3f0c5e1a9b27d480
 *   secret: <base64 of the 32-byte Ed25519 seed>
 *
 *   aulac-public-key v1
 *   id: fpt
 *   key-id: 3f0c5e1a9b27d480
 *   public: <base64 of the 32-byte public key>
 *
 * The key id is a short fingerprint: hex of the first 8 bytes of
 * BLAKE2b-256(public key) (plain, no domain), 16 characters. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/digest.h"

#define CRYPTO_KEY_ID_CHARS 16
#define CRYPTO_KEY_FILE_MAX 4096   /* larger key files are refused as malformed */

struct crypto_key;   /* opaque */

struct crypto_public_key {
    char    id[CRYPTO_ID_MAX + 1];                 /* member id, NUL-terminated */
    uint8_t key[CRYPTO_PUBLIC_KEY_BYTES];
    char    key_id[CRYPTO_KEY_ID_CHARS + 1];       /* fingerprint of key */
};

/* New random key pair for member_id. CRYPTO_ERR_BAD_ID, _NOMEM, _INIT.
 * Free with crypto_key_free. */
int crypto_key_generate(const char *member_id, struct crypto_key **out);

/* Deterministic key pair from a 32-byte seed (test vectors, derived keys).
 * CRYPTO_ERR_BAD_ID, _NOMEM, _INIT. */
int crypto_key_from_seed(const char *member_id, const uint8_t seed[CRYPTO_SEED_BYTES],
                         struct crypto_key **out);

/* Wipes and frees; NULL is fine. */
void crypto_key_free(struct crypto_key *k);

/* Member id of the key; valid while k lives. */
const char *crypto_key_member(const struct crypto_key *k);
/* Public half (id, key, key id). */
void crypto_key_public(const struct crypto_key *k, struct crypto_public_key *out);

/* Writes the secret key file with mode 0600 (atomically: temp file, fsync, rename).
 * Refuses to replace an existing file unless overwrite is set: CRYPTO_ERR_KEY_EXISTS.
 * CRYPTO_ERR_IO (errno kept), _ARG. */
int crypto_key_save_secret(const struct crypto_key *k, const char *path, int overwrite);

/* Reads a secret key file. Refuses, before reading a byte of it, a file whose
 * mode lets group or others read, write or execute it: CRYPTO_ERR_KEY_PERMS
 * (the mode of the opened file: a symlink is judged by its target). CRYPTO_ERR_IO when it cannot
 * be opened, CRYPTO_ERR_KEY_FORMAT when it is malformed or its key-id line does
 * not match the key. Each refusal is also logged with the path and what to do. */
int crypto_key_load(const char *path, struct crypto_key **out);

/* Public key files (any mode; written 0644). CRYPTO_ERR_IO, _KEY_FORMAT
 * (also a key-id line that does not match the key, or a non-canonical point). */
int crypto_public_key_save(const struct crypto_public_key *pk, const char *path);
int crypto_public_key_load(const char *path, struct crypto_public_key *out);

/* Text form of a public key file, parsed from / written to memory.
 * format returns the length written (NUL excluded) or CRYPTO_ERR_BUFFER;
 * 256 bytes always suffice. */
int crypto_public_key_parse(const char *text, size_t len, struct crypto_public_key *out);
int crypto_public_key_format(const struct crypto_public_key *pk, char *buf, size_t cap);

/* Fingerprint of a public key: 16 lower-case hex characters + NUL. */
void crypto_key_id(const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                   char out[CRYPTO_KEY_ID_CHARS + 1]);

/* Base64 (standard alphabet, padded) of a 32-byte public key and back.
 * encode: out needs 45 bytes. decode: CRYPTO_ERR_KEY_FORMAT on anything but
 * exactly 32 bytes of canonical base64. */
void crypto_public_key_to_base64(const uint8_t key[CRYPTO_PUBLIC_KEY_BYTES], char out[45]);
int  crypto_public_key_from_base64(const char *b64, uint8_t key[CRYPTO_PUBLIC_KEY_BYTES]);

#endif
