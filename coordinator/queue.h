#ifndef AULAC_COORDINATOR_QUEUE_H
#define AULAC_COORDINATOR_QUEUE_H
/* Approved experiments, in the order they run (queue.c has the record layouts):
 *
 *   coord.experiments  experiment id -> record (phase, hashes, rounds done, final model,
 *                      the exact policy text): every experiment ever queued, kept
 *   coord.queue        u64 big-endian seq -> experiment id: those waiting, oldest first
 *
 * An experiment is queued (queue_push_txn, in the transaction that approved it), leaves
 * the queue when the timer starts it (experiment.c, in the transaction that records
 * experiment_started), and ends finished, cancelled or failed. Writers take the caller's
 * write transaction (c->mu held); readers open their own read-only snapshot.
 * Errors: COORD_ERR_NOMEM, COORD_ERR_STATE (logged). */
#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>

#include "coordinator/coord.h"

enum exp_phase { PHASE_QUEUED = 1, PHASE_RUNNING, PHASE_FINISHED, PHASE_CANCELLED, PHASE_FAILED };

struct experiment_info {
    char     experiment[COORD_EXPERIMENT_MAX + 1];
    uint8_t  proposal_hash[32], policy_hash[32];
    uint64_t proposed_index;        /* ledger leaf of policy_proposed (0: none) */
    uint64_t seq;                   /* queue order */
    int      phase;                 /* enum exp_phase */
    uint64_t rounds_done;
    uint8_t  final_model_hash[32];  /* last model (finished / cancelled / failed) */
    int64_t  ended_ms;              /* unix ms it ended (finished / cancelled / failed);
                                       0 while queued or running, and in records written
                                       before version 2 */
    uint8_t *policy_yaml; size_t policy_yaml_len;   /* owned copy of the exact text */
};

/* After state_open_dbs: opens (creates) the two tables. */
int  queue_open_dbs(struct coord *c);

/* In the caller's write txn (the approving vote's): appends e to the queue with the next
 * seq and phase PHASE_QUEUED (e->seq and e->phase are ignored). COORD_ERR_STATE when an
 * experiment of that id was queued before (logged). */
int queue_push_txn(struct coord *c, MDB_txn *txn, const struct experiment_info *e);
/* Approved cancel of a queued or running experiment, in the caller's txn: writes
 * experiment_cancelled with reason and the last model; a running one is stopped (mu
 * held): its stored payloads of the open round are deleted, its last model and ledger
 * trail stay. A round close in progress (c->rnd.closing: computing outside mu) cannot be
 * waited for here, as it needs the write transaction the caller holds: it sees the
 * cancel when it takes mu again and drops its result. The in-memory state changes at
 * once: if the caller's transaction does not commit, it must stop the process (a
 * restart reads LMDB). COORD_ERR_STATE when finished or unknown (why says which).
 * Defined in lifecycle.c. */
int experiment_cancel_locked(struct coord *c, MDB_txn *txn, const char *experiment,
                             const char *reason, char *why, size_t cap);
/* The record of experiment (*found 0 when none); free out with experiment_info_free. */
int queue_get(struct coord *c, const char *experiment, struct experiment_info *out, int *found);
/* The same in the caller's transaction (sees what it wrote). */
int queue_get_txn(struct coord *c, MDB_txn *txn, const char *experiment,
                  struct experiment_info *out, int *found);
/* Every record, by seq (*out malloc'd; free each and the array: queue_list_free). */
int queue_list(struct coord *c, struct experiment_info **out, size_t *n);
void queue_list_free(struct experiment_info *list, size_t n);
void experiment_info_free(struct experiment_info *e);

/* --- used by experiment.c ---------------------------------------------------- */

/* The first waiting experiment (*found 0 when the queue is empty), in txn (NULL: a
 * read-only snapshot of its own). */
int queue_head(struct coord *c, MDB_txn *txn, struct experiment_info *out, int *found);
/* How many wait in the queue. */
int queue_length(struct coord *c, size_t *n);
/* Writes e's record as it is (phase, rounds, final model...), in txn. */
int queue_record_put_txn(struct coord *c, MDB_txn *txn, const struct experiment_info *e);
/* Takes the experiment of queue position seq out of the queue (its record stays). */
int queue_remove_txn(struct coord *c, MDB_txn *txn, uint64_t seq);
/* The record (*found 0 when none) whose policy hash is hash. */
int queue_find_policy(struct coord *c, const uint8_t hash[32], struct experiment_info *out,
                      int *found);
const char *queue_phase_name(int phase);
/* 1 for finished, cancelled and failed: an experiment that will not run again. */
int queue_phase_ended(int phase);

#endif
