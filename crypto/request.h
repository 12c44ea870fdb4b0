#ifndef AULAC_CRYPTO_REQUEST_H
#define AULAC_CRYPTO_REQUEST_H
/* Request authentication: the statement a member signs for every RPC it makes,
 * carried in gRPC metadata next to the request (crypto/README.md, "Request").
 *
 *   header    = "aulac/request/v1" 00 ‖ method (text) ‖ member (id)
 *               ‖ timestamp (i64 ms) ‖ nonce (16 bytes) ‖ body digest (32 bytes)
 *   digest    = BLAKE2b-256(header)
 *   signature = Ed25519(member's secret key, digest)
 *
 * The body digest is plain BLAKE2b-256 of the request message exactly as sent
 * on the wire (for a client stream: its first message), so the server checks
 * the bytes it received, never a re-serialization. The timestamp bounds the
 * request's life; the nonce makes each request unique within that window.
 *
 * Every function returns 0 or a crypto error (crypto/digest.h): CRYPTO_ERR_ARG
 * for NULL or out-of-range fields (a method that is not 1..128 printable ASCII
 * starting with '/'), CRYPTO_ERR_BAD_ID, CRYPTO_ERR_KEY_MISMATCH from sign when
 * the key is not the member's, CRYPTO_ERR_BAD_SIGNATURE from verify. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/digest.h"
#include "crypto/keys.h"

#define REQUEST_DOMAIN       "aulac/request/v1"
#define REQUEST_METHOD_MAX   128
#define REQUEST_NONCE_BYTES  16
#define REQUEST_HEADER_MAX   320    /* every header fits */

/* gRPC metadata keys (lower-case; "-bin" values are raw bytes). */
#define REQUEST_MD_MEMBER     "aulac-member"         /* the member id, ASCII */
#define REQUEST_MD_TIMESTAMP  "aulac-timestamp"      /* decimal Unix ms, ASCII */
#define REQUEST_MD_NONCE      "aulac-nonce-bin"      /* 16 bytes */
#define REQUEST_MD_SIGNATURE  "aulac-signature-bin"  /* 64 bytes */
#define REQUEST_MD_KEY_ID     "aulac-key-id"         /* signer's key id (16 hex); not signed,
                                                        only used to explain a refusal */

struct request_statement {
    char    method[REQUEST_METHOD_MAX + 1];     /* full gRPC path, e.g. "/aulac.v1.Federation/GetTask" */
    char    member[CRYPTO_ID_MAX + 1];
    int64_t timestamp_unix_ms;
    uint8_t nonce[REQUEST_NONCE_BYTES];
    uint8_t body_digest[CRYPTO_DIGEST_BYTES];
};

/* 1 when method is 1..128 bytes of printable ASCII (0x21..0x7e) starting with '/'. */
int request_method_valid(const char *method);

/* BLAKE2b-256 of the request message bytes (no domain). */
void request_body_digest(const void *body, size_t len, uint8_t out[CRYPTO_DIGEST_BYTES]);

/* Header bytes into buf (cap >= REQUEST_HEADER_MAX suffices); *len out. */
int request_encode(const struct request_statement *s, uint8_t *buf, size_t cap, size_t *len);
int request_digest(const struct request_statement *s, uint8_t out[CRYPTO_DIGEST_BYTES]);
int request_sign(const struct request_statement *s, const struct crypto_key *k,
                 uint8_t sig[CRYPTO_SIGNATURE_BYTES]);
int request_verify(const struct request_statement *s,
                   const uint8_t public_key[CRYPTO_PUBLIC_KEY_BYTES],
                   const uint8_t sig[CRYPTO_SIGNATURE_BYTES]) CRYPTO_WARN_UNUSED;

/* A fresh statement for one request by k's member: the given time, a random
 * nonce, the digest of body; signed into sig. */
int request_sign_new(const struct crypto_key *k, const char *method, const void *body,
                     size_t body_len, int64_t now_unix_ms, struct request_statement *s,
                     uint8_t sig[CRYPTO_SIGNATURE_BYTES]);

#endif
