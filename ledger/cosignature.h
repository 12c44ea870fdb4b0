#ifndef AULAC_LEDGER_COSIGNATURE_H
#define AULAC_LEDGER_COSIGNATURE_H
/* Member cosignatures of checkpoints: C2SP tlog-cosignature/v1, Ed25519
 * (c2sp.org/tlog-cosignature). A member that verified a checkpoint as consistent
 * with every one it saw before signs, with its member key, the statement "as of
 * time T, the largest consistent tree I have seen of this log has this root":
 *
 *   cosignature/v1                           header line (domain separation)
 *   time 1767225600                          POSIX seconds, decimal, no leading zero
 *   aulac/au-lac-demo                        the checkpoint text, exactly as signed
 *   42                                       by the coordinator (extension lines
 *   UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm8=   included), final newline included
 *
 * and adds one signature line to the coordinator's signed note:
 *
 *   — aulac/au-lac-demo/witness/hust base64(key ID ‖ u64 BE time ‖ Ed25519 signature)
 *
 * The cosigner's key name is "<origin>/witness/<member id>"; its key ID is the first
 * four bytes of SHA-256(name ‖ 0x0A ‖ 0x04 ‖ 32-byte public key) (type 0x04:
 * cosignature/v1). A note with the coordinator's signature line and cosignature
 * lines is still a valid checkpoint note: checkpoint_verify ignores the cosignatures.
 *
 * Member keys sign nothing else that is not a 32-byte digest (crypto/README.md), and
 * a cosigned message is longer, so a cosignature is never valid as another statement.
 *
 * Functions return 0 or a ledger error (ledger/errors.h); where they take why/why_cap
 * (why may be NULL), a failure also writes one line saying what is wrong. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/keys.h"
#include "ledger/checkpoint.h"

#define COSIGNATURE_TYPE        0x04
#define COSIGNATURE_HEADER      "cosignature/v1\n"
#define COSIGNATURE_NAME_INFIX  "/witness/"
#define COSIGNATURE_NAME_MAX    (CHECKPOINT_ORIGIN_MAX + 9 + CRYPTO_ID_MAX)
#define COSIGNATURE_BLOB_BYTES  (4 + 8 + 64)   /* key ID ‖ timestamp ‖ signature */
#define COSIGNATURE_LINE_MAX    (4 + COSIGNATURE_NAME_MAX + 1 + 104 + 2)
#define COSIGNATURE_TIME_MAX    INT64_MAX      /* timestamps above are refused */

/* Who cosigns: a member id and its Ed25519 public key, under the name
 * "<origin>/witness/<member>" of the log's origin. */
struct cosigner {
    char     member[CRYPTO_ID_MAX + 1];
    char     name[COSIGNATURE_NAME_MAX + 1];
    uint8_t  public_key[32];
    uint32_t id;                  /* SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4], BE */
};

/* SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public_key)[:4], big-endian. */
uint32_t cosignature_key_id(const char *name, const uint8_t public_key[32]);

/* Fills k for member (a valid member id) of the log named origin (a valid key
 * name). LEDGER_ERR_ARG. */
int cosigner_init(struct cosigner *k, const char *origin, const char *member,
                  const uint8_t public_key[32]);

/* The signed message "cosignature/v1\ntime T\n" ‖ text into out; *len its length.
 * text is the checkpoint text ending in a newline. LEDGER_ERR_ARG (cap too small,
 * timestamp above COSIGNATURE_TIME_MAX, text not ending in a newline). */
int cosignature_message(const char *text, size_t text_len, uint64_t timestamp, char *out,
                        size_t cap, size_t *len);

/* Cosigns a checkpoint note (signed by the coordinator: the caller verified it) at
 * timestamp with key as member: out gets the note followed by the member's
 * cosignature line (NUL-terminated, *len without the NUL). The note's text is what
 * is cosigned. out needs CHECKPOINT_NOTE_MAX bytes at most. LEDGER_ERR_ARG,
 * LEDGER_ERR_NOTE_FORMAT (the note's framing). */
int cosignature_add(const char *note, size_t len, const char *origin, const char *member,
                    const struct crypto_key *key, uint64_t timestamp, char *out, size_t cap,
                    size_t *out_len);

/* Verifies an untrusted cosigned note: a checkpoint signed by log (checkpoint_verify)
 * that carries a cosignature by k; signature lines by other keys are ignored, at
 * least one by k must be there and every one by k must verify. *out (may be NULL)
 * gets the checkpoint, *timestamp (may be NULL) the cosignature's time (the
 * latest, when k signed more than once). LEDGER_ERR_NOTE_FORMAT,
 * LEDGER_ERR_CHECKPOINT_FORMAT, LEDGER_ERR_CHECKPOINT_MISMATCH (origin),
 * LEDGER_ERR_NOTE_UNSIGNED (no cosignature by k, or no signature by log),
 * LEDGER_ERR_NOTE_SIGNATURE (a signature by log or by k does not verify, or a
 * timestamp above COSIGNATURE_TIME_MAX). */
int cosignature_verify(const char *note, size_t len, const struct checkpoint_key *log,
                       const struct cosigner *k, struct checkpoint *out, uint64_t *timestamp,
                       char *why, size_t why_cap) __attribute__((warn_unused_result));

/* The note as the log signed it: its text and only the signature lines by log
 * (name and key ID), others (cosignatures) dropped, into out (NUL-terminated).
 * The note must have been verified with log. LEDGER_ERR_ARG (cap too small). */
int cosignature_base_note(const char *note, size_t len, const struct checkpoint_key *log,
                          char *out, size_t cap, size_t *out_len);

/* Number of signature lines of a note whose framing is valid (checkpoint_parse
 * accepted it); 0 when it has none. */
size_t cosignature_count_lines(const char *note, size_t len);

#endif
