#ifndef AULAC_COORDINATOR_STATE_H
#define AULAC_COORDINATOR_STATE_H
/* The coordinator's LMDB records (state.c has the layouts). Writers take the caller's
 * write transaction; readers open their own read-only snapshot. Errors: COORD_ERR_*. */
#include "aggregate/round.h"
#include "coordinator/coord.h"
#include "credit/shares.h"

struct experiment_record {
    char experiment[COORD_EXPERIMENT_MAX + 1];
    uint8_t policy_hash[32];
    int state;                      /* enum coord_exp_state */
    uint64_t round, total_rounds;
    uint8_t model_hash[32];         /* base model of the open round */
    uint64_t completed_rounds;      /* outer optimizer steps taken */
    int64_t round_opened_ms;
};

struct round_summary {
    uint64_t round;
    uint8_t model_hash[32];         /* the model the round produced */
    float mean_train_loss;
    uint64_t tokens, bytes;
    int64_t closed_ms;
    struct round_member *members;   /* malloc'd */
    size_t n_members;
};

int state_open_dbs(struct coord *c);

int state_put_experiment(struct coord *c, MDB_txn *txn);
int state_get_experiment(struct coord *c, struct experiment_record *rec, int *found);
int state_delete_experiment(struct coord *c, MDB_txn *txn);   /* nothing loaded at restart */

int state_put_member(struct coord *c, MDB_txn *txn, const struct member_stats *m);
int state_load_members(struct coord *c);

/* coord.payloads: the open round's accepted updates, metadata only (the payload is the
 * file payload_path(experiment, payload_hash), coordinator/spool.h, renamed there before
 * the row commits). */
int state_put_payload(struct coord *c, MDB_txn *txn, const struct round_member *m,
                      double weight, uint64_t ledger_index, const uint8_t payload_hash[32],
                      size_t len);
/* A row of the earlier layout (version 1: the payload bytes inside the row), as a data dir
 * written by an earlier version holds: for tests of the conversion only. */
int state_put_payload_v1(struct coord *c, MDB_txn *txn, const struct round_member *m,
                         double weight, uint64_t ledger_index, const uint8_t *payload,
                         size_t len);
/* Converts every version 1 row of coord.payloads (any experiment, any round): its bytes
 * are written to the payload store (file_write_atomic: durable before the row changes)
 * and the row rewritten as version 2, all rows in one transaction. Idempotent: a
 * version 2 row is left alone, and a crash before the commit leaves version 1 rows whose
 * conversion writes the same files again. *converted: rows converted. At start, before
 * anything reads the rows. COORD_ERR_STATE, COORD_ERR_IO, COORD_ERR_NOMEM. */
int state_convert_payload_rows(struct coord *c, size_t *converted);
typedef int (*state_payload_fn)(struct coord *c, const struct round_member *m, double weight,
                                const uint8_t payload_hash[32], size_t len, void *arg);
int state_each_payload(struct coord *c, state_payload_fn fn, void *arg);
int state_delete_payloads(struct coord *c, MDB_txn *txn);
/* The open round's stored updates as the round's arithmetic takes them (aggregate/round.h),
 * their rows read in txn (a read-only transaction the caller may end at once):
 * u[i].payload is a read-only private mapping of the payload's store file (mapped = 1:
 * a reader may drop consumed pages with madvise(MADV_DONTNEED)), payload_hash its
 * BLAKE2b-256 as accepted, the weight agg_weight() of the policy's weighting. Key order;
 * the caller sorts (agg_sort) and gives the mappings back with
 * state_round_updates_release. *n gets the count; COORD_ERR_STATE when a row is
 * unreadable, a store file has another length or there are more than cap;
 * COORD_ERR_IO when a store file is missing or cannot be opened or mapped (nothing stays
 * mapped on failure). When a store file is the failure (missing, unreadable, another
 * length) and why is not NULL, why[why_cap] names the member, the round, the file's path
 * and the error; for a missing file also what the operator can do (put it back, or
 * cancel the experiment). why is "" for every other failure. */
int state_round_updates(struct coord *c, MDB_txn *txn, struct agg_update *u, size_t cap,
                        size_t *n, char *why, size_t why_cap);
/* Unmaps u[0..n)'s mapped payloads (payload_unmap); heap ones (mapped 0) are left. */
void state_round_updates_release(struct agg_update *u, size_t n);

/* coord.credit: the running credit totals of experiment (credit/shares.h), updated by each
 * round close in its transaction. *found 0 (t initialized empty) when none yet. txn NULL:
 * read in a read-only snapshot of its own. */
int state_get_credit(struct coord *c, MDB_txn *txn, const char *experiment,
                     struct credit_totals *t, int *found);
int state_put_credit(struct coord *c, MDB_txn *txn, const struct credit_totals *t);

/* coord.replay: a signed request accepted at timestamp_ms (its replay key), committed
 * (durable) before it returns 0; rows older than prune_before_ms go in the same
 * transaction. state_replay_each calls fn for every row from from_ms on, oldest first. */
#define STATE_REPLAY_KEY_BYTES 16
int state_replay_record(struct coord *c, const uint8_t key[STATE_REPLAY_KEY_BYTES],
                        int64_t timestamp_ms, int64_t prune_before_ms);
typedef void (*state_replay_fn)(int64_t timestamp_ms, const uint8_t *key, void *arg);
int state_replay_each(struct coord *c, int64_t from_ms, state_replay_fn fn, void *arg);

int state_put_round(struct coord *c, MDB_txn *txn, const struct round_summary *s);
/* The summary of round `round` of experiment (not necessarily the loaded one). */
int state_get_round(struct coord *c, const char *experiment, uint64_t round,
                    struct round_summary *s, int *found);

#endif
