#ifndef AULAC_LEDGER_ERRORS_H
#define AULAC_LEDGER_ERRORS_H
/* Error codes of ledger/ (range -1100..-1199): Merkle proofs, the LMDB log and
 * entry encoding. ledger_strerror() turns any of them into words. */

enum ledger_error {
    LEDGER_OK = 0,
    /* arguments and proofs (merkle.h) */
    LEDGER_ERR_ARG             = -1100, /* NULL pointer or invalid argument */
    LEDGER_ERR_RANGE           = -1101, /* index >= size, old size > new size, size > log size */
    LEDGER_ERR_PROOF_CAPACITY  = -1102, /* proof buffer too small for the proof */
    LEDGER_ERR_PROOF_LENGTH    = -1103, /* proof has the wrong number of hashes */
    LEDGER_ERR_PROOF_MISMATCH  = -1104, /* proof does not lead to the given root(s) */
    LEDGER_ERR_NOMEM           = -1105,
    /* the log (ledger.h) */
    LEDGER_ERR_LMDB            = -1110, /* LMDB error (logged with mdb_strerror) */
    LEDGER_ERR_MAP_FULL        = -1111, /* LMDB map full: reopen with a larger map_size */
    LEDGER_ERR_NOT_FOUND       = -1112, /* no such entry or index key */
    LEDGER_ERR_EXISTS          = -1113, /* index key already present */
    LEDGER_ERR_CORRUPT         = -1114, /* stored bytes disagree with stored hashes */
    LEDGER_ERR_READ_ONLY       = -1115, /* write on a ledger opened read-only */
    LEDGER_ERR_TOO_LARGE       = -1116, /* entry or key over its size limit */
    LEDGER_ERR_IO              = -1117, /* data directory missing or not accessible */
    /* entries (entry.h) */
    LEDGER_ERR_ENTRY_TRUNCATED = -1150, /* ends in the middle of a header or field */
    LEDGER_ERR_ENTRY_MAGIC     = -1151, /* not an aulac ledger entry */
    LEDGER_ERR_ENTRY_VERSION   = -1152, /* entry format version this build does not read */
    LEDGER_ERR_ENTRY_TYPE      = -1153, /* unknown entry type */
    LEDGER_ERR_ENTRY_FIELD     = -1154, /* bad field: length, value or order */
    LEDGER_ERR_ENTRY_MISSING   = -1155, /* required field absent */
    LEDGER_ERR_ENTRY_ID        = -1156, /* id outside 1..64 of [a-z0-9._-] */
    /* signed checkpoints (checkpoint.h) */
    LEDGER_ERR_NOTE_FORMAT     = -1160, /* signed note malformed (framing, UTF-8, signature line) */
    LEDGER_ERR_CHECKPOINT_FORMAT = -1161, /* checkpoint text malformed (origin, size, root) */
    LEDGER_ERR_NOTE_UNSIGNED   = -1162, /* no signature by the expected key */
    LEDGER_ERR_NOTE_SIGNATURE  = -1163, /* a signature by the expected key does not verify */
    LEDGER_ERR_CHECKPOINT_MISMATCH = -1164, /* checkpoint disagrees with the log it claims */
    LEDGER_ERR_REWRITTEN       = -1165, /* a newer checkpoint is not an extension of an older one */
    LEDGER_ERR_UNSIGNED_ENTRIES = -1166, /* entries beyond the newest signed checkpoint, or none */
    LEDGER_ERR_SPLIT_VIEW      = -1167, /* members cosigned checkpoints of inconsistent logs (witness.h) */
    /* what members signed (history.h) */
    LEDGER_ERR_MEMBER_SIGNATURE = -1170, /* a member's signature stored in an entry does not verify */
    LEDGER_ERR_HISTORY         = -1171, /* an entry contradicts the ones before it */
};

const char *ledger_strerror(int rc);

#endif
