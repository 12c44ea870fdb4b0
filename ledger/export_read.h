#ifndef AULAC_LEDGER_EXPORT_READ_H
#define AULAC_LEDGER_EXPORT_READ_H
/* Reads back what `aulac ledger export` writes (and `ledger export --payloads DIR`
 * puts in DIR/entries.jsonl): one JSON object per line,
 *
 *   {"index":N,"leaf_hash":"<64 hex>","bytes":"<base64 of the entry>","entry":{...}}
 *   ... one per entry, indexes 0, 1, 2, ... in order, then
 *   {"checkpoint_size":S,"checkpoint":"<the signed note>"}   one per stored checkpoint
 *
 * The file is untrusted: the entry bytes (base64, decoded with libsodium) are what
 * counts, "entry" (the decoded fields, for people) is skipped, every line's leaf hash
 * is recomputed from its bytes and must equal the one written, and export_audit
 * checks the checkpoints against the root of the entries and the genesis key, and
 * every member signature (ledger/history.h), as `aulac ledger verify` does for a data
 * directory. This is the one parser of the format.
 *
 * Memory: 40 bytes per entry (its line's offset and leaf hash) and the checkpoint
 * notes; an entry's bytes are read again from the file when asked for.
 *
 * Errors (ledger/errors.h): LEDGER_ERR_IO (the file cannot be read), LEDGER_ERR_CORRUPT
 * (a line is malformed, indexes are not 0, 1, 2..., bytes do not hash to their leaf
 * hash; why names the line), LEDGER_ERR_NOMEM, LEDGER_ERR_RANGE. */
#include <stddef.h>
#include <stdint.h>

#include "ledger/checkpoint.h"

struct export_reader;

#define EXPORT_LINE_MAX ((size_t)96 << 20)   /* longest line read: base64 of a
                                                 LEDGER_ENTRY_MAX entry and its JSON */

/* Opens and scans path. why (cap bytes) names the line and the problem:
 * "entries.jsonl:12: the bytes of entry 11 hash to 3f2a9c01..., the line says ...". */
int  export_open(const char *path, struct export_reader **out, char *why, size_t cap);
void export_close(struct export_reader *r);   /* NULL is fine */

uint64_t export_size(const struct export_reader *r);          /* entries */
size_t   export_checkpoint_count(const struct export_reader *r);
/* Checkpoint i (0 .. count-1) in file order: its note (NUL-terminated, owned by r) and
 * the tree size the line gives. */
const char *export_checkpoint(const struct export_reader *r, size_t i, uint64_t *size);

/* A copy of entry index's bytes (*bytes malloc'd; the caller frees), read again from
 * the file; its leaf hash must still be the one found at open (LEDGER_ERR_CORRUPT).
 * LEDGER_ERR_RANGE, LEDGER_ERR_IO, LEDGER_ERR_NOMEM. */
int export_entry(struct export_reader *r, uint64_t index, uint8_t **bytes, size_t *len,
                 char *why, size_t cap);

/* The entries' tree, checked as `aulac ledger verify` checks a data directory: the
 * coordinator key is the one the genesis entry names (the key of the role coordinator)
 * and the log's name "aulac/<alliance>"; every checkpoint line must be signed by it,
 * for its size, with the root of the first size entries; the newest must cover every
 * entry; and every entry goes through ledger/history.h (member signatures against the
 * roster of their moment). Returns 0, or the first problem's code with why (one line). */
struct export_audit {
    uint64_t size;
    uint8_t  root[32];
    uint64_t checkpoints;          /* verified */
    char     key_name[CHECKPOINT_ORIGIN_MAX + 1];
    uint32_t key_id;
    uint64_t signatures;           /* member signatures re-checked (updates, proposals,
                                      votes, motions) */
};
int export_audit(struct export_reader *r, struct export_audit *out, char *why, size_t cap);

#endif
