#ifndef AULAC_LEDGER_CHECKPOINT_H
#define AULAC_LEDGER_CHECKPOINT_H
/* Signed checkpoints of the log: C2SP tlog-checkpoint text in a C2SP signed note
 * (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), signed with Ed25519.
 *
 *   aulac/au-lac-demo                        origin: "aulac/" + alliance
 *   42                                       tree size, decimal, no leading zero
 *   qb5Lc9XbOdUVEHmpLOTlTeJbCt3w8S7ZzYqvbDrwmTo=   base64 of the RFC 6962 root
 *                                            (blank line)
 *   — aulac/au-lac-demo AbCdEf…==            em dash, space, key name, space,
 *                                            base64(key ID (4 bytes BE) ‖ signature)
 *
 * The signature is Ed25519 over the note text (the three lines, each ending in
 * a newline). The key name is the origin; the key ID is the first four bytes of
 * SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key). No extension lines are
 * written; extension lines in notes read are accepted and ignored.
 *
 * Notes read from anywhere (RPC, files, LMDB) are untrusted bytes: parsing checks
 * every byte before use. Only checkpoint_verify says a note is authentic.
 *
 * Functions return 0 or a ledger error (ledger/errors.h): LEDGER_ERR_ARG,
 * LEDGER_ERR_NOTE_FORMAT, LEDGER_ERR_CHECKPOINT_FORMAT, LEDGER_ERR_NOTE_UNSIGNED,
 * LEDGER_ERR_NOTE_SIGNATURE, LEDGER_ERR_CHECKPOINT_MISMATCH, LEDGER_ERR_REWRITTEN.
 * Where a function takes why/why_cap (why may be NULL), a failure also writes one
 * line saying what is wrong and where (e.g. "line 2: tree size '007' has a
 * leading zero"). */
#include <stddef.h>
#include <stdint.h>

#include "crypto/keys.h"
#include "ledger/errors.h"
#include "ledger/merkle.h"

#define CHECKPOINT_ORIGIN_MAX 128    /* bytes of origin / key name */
#define CHECKPOINT_NOTE_MAX   8192   /* longest signed note parsed (16+ Ed25519 signatures) */
#define CHECKPOINT_SIGNED_MAX 512    /* longest note checkpoint_sign writes (+ NUL) */
#define CHECKPOINT_ORIGIN_PREFIX "aulac/"

struct checkpoint {
    char     origin[CHECKPOINT_ORIGIN_MAX + 1];
    uint64_t size;
    uint8_t  root[32];
};

/* What a verifier trusts: a key name and an Ed25519 public key. */
struct checkpoint_key {
    char     name[CHECKPOINT_ORIGIN_MAX + 1];
    uint8_t  public_key[32];
    uint32_t id;                 /* the signed-note key ID of (name, public key) */
};

/* "aulac/<alliance>" into out. LEDGER_ERR_ARG when the result is not a valid
 * key name (empty alliance, spaces or '+', too long). */
int checkpoint_origin(const char *alliance, char *out, size_t cap);

/* 1 when name is a valid signed-note key name of at most CHECKPOINT_ORIGIN_MAX
 * bytes: non-empty, printable ASCII without space or '+'. */
int checkpoint_name_valid(const char *name);

/* SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public_key)[:4], big-endian. */
uint32_t checkpoint_key_id(const char *name, const uint8_t public_key[32]);
/* The same with another signature type byte (0x04: cosignature/v1). */
uint32_t checkpoint_typed_key_id(const char *name, uint8_t type, const uint8_t public_key[32]);

/* Fills k (id included). LEDGER_ERR_ARG for an invalid name. */
int checkpoint_key_init(struct checkpoint_key *k, const char *name, const uint8_t public_key[32]);

/* The note text "origin\nsize\nbase64(root)\n" into out (NUL-terminated);
 * *len (may be NULL) gets its length. LEDGER_ERR_ARG (bad origin, cap too small). */
int checkpoint_format(const struct checkpoint *c, char *out, size_t cap, size_t *len);

/* Generic signed notes (c2sp.org/signed-note, Ed25519 type 0x01).
 * note_sign: text (text_len bytes ending in a newline; may be out itself) then a
 * blank line and one signature line by key under name, into out (NUL-terminated;
 * *len without the NUL). LEDGER_ERR_ARG (bad name, no final newline, cap short).
 * note_open: checks an untrusted note's framing (UTF-8, no control characters
 * but newline, text / blank line / signature lines, each '— name base64' with a
 * 4-byte key ID), ignores signatures by other keys, and requires at least one
 * by key, every one of which must verify. *text_len (may be NULL) gets the
 * length of the signed text, which starts at note[0]. */
int checkpoint_note_sign(const char *text, size_t text_len, const char *name,
                         const struct crypto_key *key, char *out, size_t cap, size_t *len);
int checkpoint_note_open(const char *note, size_t len, const struct checkpoint_key *key,
                         size_t *text_len, char *why, size_t why_cap)
                         __attribute__((warn_unused_result));

/* The signed checkpoint: text, blank line, one signature line by key under the name
 * c->origin. out needs CHECKPOINT_SIGNED_MAX bytes; NUL-terminated, *len
 * (may be NULL) without the NUL. LEDGER_ERR_ARG. */
int checkpoint_sign(const struct checkpoint *c, const struct crypto_key *key,
                    char *out, size_t cap, size_t *len);

/* Parses an untrusted signed note and checks it was signed by key: the note
 * framing and every signature line must be well formed; signatures by other
 * keys are ignored, one by key must be present and every one by key must verify;
 * the checkpoint's origin must equal key->name. *out is filled only on success.
 * LEDGER_ERR_NOTE_FORMAT, LEDGER_ERR_CHECKPOINT_FORMAT, LEDGER_ERR_NOTE_UNSIGNED,
 * LEDGER_ERR_NOTE_SIGNATURE, LEDGER_ERR_CHECKPOINT_MISMATCH (origin). */
int checkpoint_verify(const char *note, size_t len, const struct checkpoint_key *key,
                      struct checkpoint *out, char *why, size_t why_cap)
                      __attribute__((warn_unused_result));

/* Parses an untrusted signed note without checking any signature (to show it;
 * never to rely on it). The framing is checked as by checkpoint_verify. */
int checkpoint_parse(const char *note, size_t len, struct checkpoint *out,
                     char *why, size_t why_cap);

/* Checks that the log of checkpoint b extends the log of checkpoint a, both
 * already verified, with proof (RFC 9162 consistency proof from a->size to
 * b->size; ignored when the sizes are equal). LEDGER_ERR_REWRITTEN with why
 * naming both sizes when b is smaller, equal with another root, or the proof
 * does not verify ("ledger at size N is not an extension of the one seen at size
 * M: history was rewritten (...)"); LEDGER_ERR_CHECKPOINT_MISMATCH when the
 * origins differ. */
int checkpoint_check_extension(const struct checkpoint *a, const struct checkpoint *b,
                               const uint8_t (*proof)[32], size_t proof_len,
                               char *why, size_t why_cap)
                               __attribute__((warn_unused_result));

#endif
