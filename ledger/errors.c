#include "ledger/errors.h"

#include <stdarg.h>
#include <stdio.h>

const char *ledger_strerror(int rc)
{
    switch (rc) {
    case LEDGER_OK:                  return "ok";
    case LEDGER_ERR_ARG:             return "invalid argument";
    case LEDGER_ERR_RANGE:           return "index or tree size out of range";
    case LEDGER_ERR_PROOF_CAPACITY:  return "proof buffer too small";
    case LEDGER_ERR_PROOF_LENGTH:    return "proof has the wrong number of hashes";
    case LEDGER_ERR_PROOF_MISMATCH:  return "proof does not match the root";
    case LEDGER_ERR_NOMEM:           return "out of memory";
    case LEDGER_ERR_LMDB:            return "LMDB error";
    case LEDGER_ERR_MAP_FULL:        return "ledger database full (raise the LMDB map size)";
    case LEDGER_ERR_NOT_FOUND:       return "not found";
    case LEDGER_ERR_EXISTS:          return "already recorded";
    case LEDGER_ERR_CORRUPT:         return "ledger corrupt: stored entry or hash does not match";
    case LEDGER_ERR_READ_ONLY:       return "ledger opened read-only";
    case LEDGER_ERR_TOO_LARGE:       return "entry or key too large";
    case LEDGER_ERR_IO:              return "ledger directory not accessible";
    case LEDGER_ERR_ENTRY_TRUNCATED: return "entry truncated";
    case LEDGER_ERR_ENTRY_MAGIC:     return "not an aulac ledger entry (bad magic)";
    case LEDGER_ERR_ENTRY_VERSION:   return "unsupported ledger entry version";
    case LEDGER_ERR_ENTRY_TYPE:      return "unknown ledger entry type";
    case LEDGER_ERR_ENTRY_FIELD:     return "malformed ledger entry field";
    case LEDGER_ERR_ENTRY_MISSING:   return "ledger entry lacks a required field";
    case LEDGER_ERR_ENTRY_ID:        return "invalid id in ledger entry";
    case LEDGER_ERR_NOTE_FORMAT:     return "malformed signed note";
    case LEDGER_ERR_CHECKPOINT_FORMAT: return "malformed checkpoint";
    case LEDGER_ERR_NOTE_UNSIGNED:   return "checkpoint not signed by the expected key";
    case LEDGER_ERR_NOTE_SIGNATURE:  return "checkpoint signature does not verify";
    case LEDGER_ERR_CHECKPOINT_MISMATCH: return "checkpoint does not match the log";
    case LEDGER_ERR_REWRITTEN:       return "ledger history was rewritten (not an extension of an earlier checkpoint)";
    case LEDGER_ERR_UNSIGNED_ENTRIES: return "entries are covered by no signed checkpoint";
    case LEDGER_ERR_MEMBER_SIGNATURE: return "a member's signature stored in the ledger does not verify";
    case LEDGER_ERR_HISTORY:         return "a ledger entry contradicts the entries before it";
    case LEDGER_ERR_SPLIT_VIEW:      return "split view: members were shown inconsistent ledgers";
    default:                         return "unknown ledger error";
    }
}

