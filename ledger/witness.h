#ifndef AULAC_LEDGER_WITNESS_H
#define AULAC_LEDGER_WITNESS_H
/* Witnessing: the members' cosigned checkpoints (cosignature.h), kept beside the
 * log, and the cross-check that turns them into split-view detection.
 *
 * Store. The coordinator keeps each member's latest cosigned checkpoint in the
 * LMDB database "witness.cosigned" of the ledger's environment (a side table, not
 * ledger entries: ledger/README.md "Witnesses" says why):
 *
 *   member id -> u64 BE cosignature time ‖ the cosigned note (coordinator's
 *                signature line, then the member's cosignature line)
 *
 * Cross-check. Given the checkpoint a verifier is about to rely on (C, verified)
 * and the cosigned checkpoints it was shown (each verified with the coordinator's
 * key and a witness's key), every one of them must describe the same log as C:
 * two of the same size must have the same root, each must be consistent with C
 * (RFC 9162 consistency proof from the smaller to the larger), and those larger than
 * C consistent with the largest. Anything else is a split view: the coordinator
 * signed two histories and showed them to different members. The report names who
 * cosigned which size and root.
 *
 * Errors: ledger/errors.h (LEDGER_ERR_SPLIT_VIEW, LEDGER_ERR_LMDB, ...). */
#include <stddef.h>
#include <stdint.h>

#include "ledger/cosignature.h"
#include "ledger/ledger.h"

#define WITNESS_DB          "witness.cosigned"
#define WITNESS_MEMBERS_MAX 256     /* witnesses looked at in one check */

/* --- store (the coordinator; the CLI reads it from a data directory) ---------------- */

struct witness_store;

/* Opens the database in the ledger's environment (creating it when the ledger is
 * writable; a read-only data directory without it has no cosignatures). The
 * handle lives until witness_store_close, which must come before ledger_close.
 * LEDGER_ERR_NOMEM, LEDGER_ERR_LMDB. */
int  witness_store_open(struct ledger *l, struct witness_store **out);
void witness_store_close(struct witness_store *s);   /* NULL is fine */

/* Stores note as member's latest cosigned checkpoint unless the stored one has a
 * later time: then nothing changes and *stored (may be NULL) is 0, else 1. The
 * note must have been verified (cosignature_verify) with timestamp. Commits its own
 * write transaction. LEDGER_ERR_READ_ONLY, LEDGER_ERR_TOO_LARGE, LEDGER_ERR_LMDB. */
int witness_store_put(struct witness_store *s, const char *member, const char *note,
                      size_t len, uint64_t timestamp, int *stored);

/* Calls fn for every stored cosigned checkpoint, in member order, from one
 * snapshot; note points into it (valid during the call). fn returns 0 to go on;
 * anything else stops the walk and is returned. LEDGER_ERR_LMDB, LEDGER_ERR_CORRUPT
 * (a value shorter than its time). */
typedef int (*witness_note_fn)(const char *member, const char *note, size_t len,
                               uint64_t timestamp, void *arg);
int witness_store_each(struct witness_store *s, witness_note_fn fn, void *arg);

/* --- cross-check ------------------------------------------------------------------------ */

/* The witnesses the founding roster names: the members of the genesis entry
 * (entry bytes, leaf 0; the caller proved its inclusion) but the coordinator, as
 * cosigners of the log origin. LEDGER_ERR_ENTRY_* (does not decode),
 * LEDGER_ERR_ENTRY_TYPE (not a genesis entry), LEDGER_ERR_RANGE (more than cap). */
int witness_set_from_genesis(const uint8_t *entry, size_t len, const char *origin,
                             struct cosigner *out, size_t cap, size_t *n);

/* One verified cosignature: who, on which checkpoint, when. */
struct witness_view {
    char              member[CRYPTO_ID_MAX + 1];
    struct checkpoint c;
    uint64_t          timestamp;
};

/* Adds to v[*n] (capacity cap) the cosignature of every cosigner of set[n_set]
 * found on note; notes that carry none add nothing. The coordinator's signature
 * must verify with log. A cosignature by a witness's key that does not verify is
 * an error (why names the member). LEDGER_ERR_NOTE_* / CHECKPOINT_*, LEDGER_ERR_RANGE
 * (v full). */
int witness_views_from_note(const char *note, size_t len, const struct checkpoint_key *log,
                            const struct cosigner *set, size_t n_set, struct witness_view *v,
                            size_t cap, size_t *n, char *why, size_t why_cap)
                            __attribute__((warn_unused_result));

/* Fills proof[MERKLE_PROOF_MAX] with the consistency proof from old_size to new_size
 * as the coordinator (or the data directory) gives it. Returns 0; > 0 with why when
 * the source cannot prove it (its log does not hold new_size entries: the check
 * reports the pair as not consistent); < 0 with why when it cannot be asked now
 * (unreachable: the check stops with that code, no verdict). */
typedef int (*witness_proof_fn)(void *arg, uint64_t old_size, uint64_t new_size,
                                uint8_t (*proof)[32], size_t *proof_len, char *why,
                                size_t why_cap);

struct witness_report {
    size_t consistent;          /* views consistent with C */
    size_t others;              /* distinct members other than self among them */
    char   others_list[512];    /* "fpt (size 12), vnpt (size 14)" */
    char   why[1024];           /* the split, when there is one */
};

/* Cross-checks v[n] against c (see above); self (may be NULL) is not counted in
 * r->others. Returns 0 or LEDGER_ERR_SPLIT_VIEW (r->why: "split view: hust cosigned
 * size 14 root ab12…, which is not consistent with the coordinator's checkpoint of
 * size 16 root cd34… (...)"), or the proof function's negative code. */
int witness_check(const struct checkpoint *c, const struct witness_view *v, size_t n,
                  const char *self, witness_proof_fn proof, void *arg,
                  struct witness_report *r) __attribute__((warn_unused_result));

#endif
