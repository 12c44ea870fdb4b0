#ifndef AULAC_LEDGER_LEDGER_H
#define AULAC_LEDGER_LEDGER_H
/* The append-only, tamper-evident log (RFC 6962 / 9162 Merkle tree) on LMDB.
 *
 * One LMDB environment lives in the data directory (data.mdb, lock.mdb). The
 * ledger uses four named databases in it, all prefixed "ledger.":
 *
 *   ledger.entries  u64 BE leaf index -> entry bytes (exactly the hashed leaf)
 *   ledger.nodes    u8 level ‖ u64 BE i -> 32-byte hash of the complete subtree
 *                   over leaves [i·2^level, (i+1)·2^level); level 0 = leaf hashes
 *   ledger.index    name ‖ 0x00 ‖ key -> u64 BE leaf index (secondary indexes)
 *   ledger.meta     "format" -> u32 BE 1
 *   ledger.checkpoints  u64 BE tree size -> signed checkpoint note (checkpoint.h)
 *
 * Callers keep their own state databases in the same environment (ledger_env),
 * so a state change and the ledger entry that records it commit in one write
 * transaction:
 *
 *     MDB_txn *txn;
 *     ledger_txn_begin(l, &txn);
 *     ... mdb_put(txn, my_state_dbi, ...);
 *     ledger_append(l, txn, bytes, len, &index);
 *     ledger_txn_commit(l, txn);          // durable (fsync) when it returns 0
 *
 * On any error inside a write transaction, abort it: LMDB leaves a failed write
 * transaction unusable.
 *
 * Signed checkpoints: once ledger_set_signer() gave the ledger a key, every
 * ledger_txn_commit() of a transaction that appended entries also stores, in
 * that same transaction, a checkpoint of the new tree size signed with the key.
 * So entries beyond the newest checkpoint were never committed by a signer:
 * ledger_set_signer refuses such a log and ledger_audit fails it.
 * Appends committed together (ledger_append_batch, or several ledger_append
 * calls in one transaction) share one commit, one fsync and one checkpoint.
 * Not every checkpoint is kept: the latest always, and of the others the first
 * one at or past each multiple of checkpoint_interval entries (so an audit checks
 * about n / 1024 signatures, not one per commit). Members keep the checkpoints
 * they were given; consistency proofs need none stored.
 *
 * Appends cost O(log n) (one leaf, one leaf hash, the subtrees the leaf
 * completes); roots and proofs for any past size read O(log n) stored hashes.
 *
 * Read functions come in two forms: ledger_X(l, ...) runs in its own read-only
 * snapshot; ledger_X_txn(l, txn, ...) runs in the caller's transaction (e.g. the
 * root including an entry appended but not yet committed, to sign a receipt).
 *
 * A second process (the CLI) may open the same directory with read_only set
 * while the coordinator writes: it sees each committed state, never a partial one.
 * The handle is safe to share between threads (MDB_NOTLS); LMDB still allows one
 * write transaction at a time.
 *
 * Errors: ledger/errors.h. LMDB failures are logged with mdb_strerror and
 * returned as LEDGER_ERR_LMDB (LEDGER_ERR_MAP_FULL when the map is full). */
#include <stddef.h>
#include <stdint.h>
#include <lmdb.h>

#include "crypto/keys.h"
#include "ledger/checkpoint.h"
#include "ledger/errors.h"
#include "ledger/merkle.h"

#define LEDGER_DEFAULT_MAP_SIZE  (4ULL << 30)
#define LEDGER_DEFAULT_MAX_DBS   32
#define LEDGER_ENTRY_MAX         (64u << 20)   /* largest entry ledger_append takes */
#define LEDGER_INDEX_KEY_MAX     400           /* name + 1 + key, within LMDB's 511 */
#define LEDGER_UPDATE_KEY_MAX    (1 + 64 + 8 + 1 + 64)
#define LEDGER_LATEST            UINT64_MAX    /* "the latest checkpoint" */
#define LEDGER_DEFAULT_CHECKPOINT_INTERVAL 1024

struct ledger_options {
    uint64_t map_size;   /* initial LMDB map size in bytes; 0: 4 GiB (read-only: what the
                            file has). The map grows as needed (ledger/README.md) */
    unsigned max_dbs;    /* named databases in the environment, the ledger's 5 included; 0: 32 */
    int      read_only;  /* MDB_RDONLY: for readers beside a running coordinator */
    uint64_t checkpoint_interval;   /* checkpoints kept: the latest, and the first one
                                       signed at or past each multiple of this many
                                       entries; 0: 1024; 1: every one */
};

struct ledger;

/* Opens (creating when writable) the environment in dir; opts may be NULL.
 * LEDGER_ERR_IO (dir missing in read-only mode, or not creatable),
 * LEDGER_ERR_LMDB, LEDGER_ERR_CORRUPT (ledger.meta names an unknown format). */
int  ledger_open(const char *dir, const struct ledger_options *opts, struct ledger **out);
void ledger_close(struct ledger *l);   /* no transaction may be open; NULL is fine */

/* The shared environment, for callers' own databases. Valid until ledger_close.
 * Callers begin their transactions on it with ledger_read_begin / ledger_txn_begin (or
 * hold ledger_map_hold around their own): the map grows (mdb_env_set_mapsize) only while
 * no transaction of this process is active, which those calls make known. */
MDB_env *ledger_env(struct ledger *l);

/* A read-only snapshot with the map lock held; ledger_read_end aborts it and releases
 * the lock. begin: LEDGER_ERR_LMDB, LEDGER_ERR_ARG. Another process's growth of the map
 * (MDB_MAP_RESIZED) is adopted here. */
int  ledger_read_begin(struct ledger *l, MDB_txn **txn);
void ledger_read_end(struct ledger *l, MDB_txn *txn);
/* The map lock alone, shared, for a transaction begun on ledger_env directly; released
 * after that transaction ends. */
void ledger_map_hold(struct ledger *l);
void ledger_map_release(struct ledger *l);

/* Write transactions. begin: LEDGER_ERR_READ_ONLY, LEDGER_ERR_LMDB. begin first grows
 * the map (to twice its size) when the last LEDGER_ERR_MAP_FULL of this process came
 * after its last growth or more than half of it is in use, provided no transaction of
 * this process is active; a transaction that fails with LEDGER_ERR_MAP_FULL is aborted by
 * its caller and retried in a new one.
 * commit: the transaction is gone whatever it returns. With a signer set, commit
 * first stores the checkpoint of the transaction's tree size if it appended. */
int  ledger_txn_begin(struct ledger *l, MDB_txn **txn);
int  ledger_txn_commit(struct ledger *l, MDB_txn *txn);
void ledger_txn_abort(struct ledger *l, MDB_txn *txn);

/* Appends entry (len 1..LEDGER_ENTRY_MAX bytes) as the next leaf; *index gets
 * its leaf index (may be NULL). LEDGER_ERR_TOO_LARGE, LEDGER_ERR_MAP_FULL,
 * LEDGER_ERR_CORRUPT (stored leaves are not 0..n-1), LEDGER_ERR_LMDB. */
int ledger_append(struct ledger *l, MDB_txn *txn, const uint8_t *entry, size_t len,
                  uint64_t *index);

/* Appends n entries as consecutive leaves; *first_index (may be NULL) gets the
 * index of the first. Every length is checked before anything is written. Same
 * errors as ledger_append. */
int ledger_append_batch(struct ledger *l, MDB_txn *txn, const uint8_t *const *entries,
                        const size_t *lens, size_t n, uint64_t *first_index);

/* From now on every commit that appends also stores a checkpoint signed by key
 * under origin (checkpoint.h; key must outlive the ledger or the next call).
 * Since a checkpoint commits with the entries it covers, a log written by a signer
 * ends with a checkpoint of its whole size; set_signer refuses (logged, naming the
 * entries) to sign on top of any other log:
 *   LEDGER_ERR_CHECKPOINT_MISMATCH  the log no longer holds what its last stored
 *                                   checkpoint signed (entries removed or altered);
 *   LEDGER_ERR_UNSIGNED_ENTRIES     entries lie beyond the newest stored checkpoint,
 *                                   or the log has entries and no checkpoint at all
 *                                   (written without the key, or checkpoints deleted).
 * An empty log is fine. Also LEDGER_ERR_ARG (origin not a key name),
 * LEDGER_ERR_READ_ONLY, LEDGER_ERR_LMDB. */
int ledger_set_signer(struct ledger *l, const char *origin, const struct crypto_key *key);

/* A copy of a stored signed checkpoint note (malloc'd, NUL-terminated; the caller
 * frees *note; *len and *found_size may be NULL). size: the tree size, or
 * LEDGER_LATEST; at_least: the smallest stored size >= size instead of exactly
 * size. The note is as stored: verify it before relying on it.
 * LEDGER_ERR_NOT_FOUND, LEDGER_ERR_NOMEM. */
int ledger_checkpoint_get(struct ledger *l, uint64_t size, int at_least, char **note,
                          size_t *len, uint64_t *found_size);

/* Calls fn for each stored checkpoint of size >= from_size, in size order, from
 * one snapshot; note points into it (valid during the call). fn returns 0 to go
 * on; anything else stops the walk and is returned. */
typedef int (*ledger_checkpoint_fn)(uint64_t size, const char *note, size_t len, void *arg);
int ledger_checkpoint_each(struct ledger *l, uint64_t from_size, ledger_checkpoint_fn fn,
                           void *arg);
/* Number of leaves. */
int ledger_size(struct ledger *l, uint64_t *size);
int ledger_size_txn(struct ledger *l, MDB_txn *txn, uint64_t *size);

/* Root of the tree of the first size leaves (size <= ledger size, 0 gives H("")).
 * LEDGER_ERR_RANGE, LEDGER_ERR_CORRUPT (a stored hash is missing). */
int ledger_root(struct ledger *l, uint64_t size, uint8_t out[32]);
int ledger_root_txn(struct ledger *l, MDB_txn *txn, uint64_t size, uint8_t out[32]);

/* A copy of entry index: *bytes is malloc'd, the caller frees it.
 * LEDGER_ERR_NOT_FOUND, LEDGER_ERR_NOMEM. */
int ledger_get(struct ledger *l, uint64_t index, uint8_t **bytes, size_t *len);
int ledger_get_txn(struct ledger *l, MDB_txn *txn, uint64_t index, uint8_t **bytes, size_t *len);

/* Stored leaf hash of entry index. LEDGER_ERR_NOT_FOUND. */
int ledger_leaf_hash(struct ledger *l, uint64_t index, uint8_t out[32]);

/* Proofs against the tree of the first size (new_size) leaves, from one snapshot.
 * *proof_len: capacity in, length out (MERKLE_PROOF_MAX always suffices).
 * LEDGER_ERR_RANGE, LEDGER_ERR_PROOF_CAPACITY, LEDGER_ERR_CORRUPT. */
int ledger_inclusion_proof(struct ledger *l, uint64_t index, uint64_t size,
                           uint8_t (*proof)[32], size_t *proof_len);
int ledger_inclusion_proof_txn(struct ledger *l, MDB_txn *txn, uint64_t index, uint64_t size,
                               uint8_t (*proof)[32], size_t *proof_len);
int ledger_consistency_proof(struct ledger *l, uint64_t old_size, uint64_t new_size,
                             uint8_t (*proof)[32], size_t *proof_len);

/* Full audit of one snapshot: every leaf hash is recomputed from the stored
 * entry bytes and every stored subtree hash from its children, so the stored
 * roots are known to cover exactly the stored entries. Returns 0, or
 * LEDGER_ERR_CORRUPT with *bad_index = the first leaf index at which stored
 * bytes and hashes disagree (a missing leaf, edited entry bytes or an edited
 * hash of a subtree that ends there). progress (may be NULL) is called every
 * 4096 leaves and once at the end. size_out/root_out (may be NULL) receive the
 * verified size and root. */
typedef void (*ledger_progress_fn)(uint64_t done, uint64_t total, void *arg);
int ledger_verify_all(struct ledger *l, uint64_t *bad_index,
                      ledger_progress_fn progress, void *arg,
                      uint64_t *size_out, uint8_t root_out[32]);

/* ledger_verify_all plus every stored checkpoint, in the same pass: each note
 * must parse, be signed by key (when key is not NULL), and carry the root that
 * the stored entries give at its size; a checkpoint beyond the log's size means
 * entries were removed; and the newest checkpoint must cover every entry.
 * Returns 0 or the first problem in index order: LEDGER_ERR_CORRUPT (bad_index =
 * first bad leaf), LEDGER_ERR_CHECKPOINT_MISMATCH or a checkpoint.h error
 * (bad_checkpoint = that checkpoint's size, bad_index = the first index that may
 * differ from what was signed), LEDGER_ERR_UNSIGNED_ENTRIES (bad_index = the
 * first entry no checkpoint covers); why says which. */
struct ledger_audit {
    uint64_t size;                  /* verified entries */
    uint8_t  root[32];              /* their root */
    uint64_t checkpoints;           /* checkpoints checked and matching */
    uint64_t last_good_checkpoint;  /* size of the last of them (0: none) */
    uint64_t bad_index;
    uint64_t bad_checkpoint;
    char     why[320];
};
int ledger_audit(struct ledger *l, const struct checkpoint_key *key,
                 ledger_progress_fn progress, void *arg, struct ledger_audit *out);

/* Secondary indexes: name (1..64 chars, no NUL) ‖ key -> leaf index, written in
 * the caller's write transaction. put refuses to replace: LEDGER_ERR_EXISTS,
 * which is how "(experiment, round, member) is accepted once" is enforced.
 * get: txn may be NULL (own snapshot). LEDGER_ERR_NOT_FOUND, LEDGER_ERR_TOO_LARGE. */
int ledger_index_put(struct ledger *l, MDB_txn *txn, const char *name,
                     const void *key, size_t key_len, uint64_t value);
int ledger_index_get(struct ledger *l, MDB_txn *txn, const char *name,
                     const void *key, size_t key_len, uint64_t *value);

/* Key for the (experiment, round, member) index: u8 len ‖ experiment ‖ u64 BE
 * round ‖ u8 len ‖ member; keys of one experiment and round share a prefix.
 * out needs LEDGER_UPDATE_KEY_MAX bytes. Returns the length, or LEDGER_ERR_ENTRY_ID. */
int ledger_update_key(const char *experiment, uint64_t round, const char *member,
                      uint8_t out[LEDGER_UPDATE_KEY_MAX]);

#endif
