#ifndef AULAC_COORDINATOR_QUEUE_H
#define AULAC_COORDINATOR_QUEUE_H
/* Approved experiments and their queue (issue 11 design, section 5): LMDB table
 * coord.experiments (experiment id -> record) and coord.queue (u64 BE seq ->
 * experiment id), in the ledger's environment so that an approval, its ledger entry
 * and the queue push commit in one transaction. Record layouts: queue.c. */
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
    uint8_t *policy_yaml; size_t policy_yaml_len;   /* owned copy of the exact text */
};

/* Opens the two tables (at coord_open, after the ledger). COORD_ERR_STATE. */
int queue_open(struct coord *c);

/* In the caller's write txn (the approving vote's): appends to the queue.
 * COORD_ERR_STATE (an experiment of that id exists; LMDB), COORD_ERR_NOMEM. */
int queue_push_txn(struct coord *c, MDB_txn *txn, const struct experiment_info *e);
/* Approved cancel of a queued or running experiment, in the caller's txn: writes
 * experiment_cancelled with reason and the last model; a running one is stopped
 * (mu held; waits for a round close in progress). COORD_ERR_STATE when finished. */
int experiment_cancel_locked(struct coord *c, MDB_txn *txn, const char *experiment,
                             const char *reason, char *why, size_t cap);
int queue_get(struct coord *c, const char *experiment, struct experiment_info *out, int *found);
int queue_list(struct coord *c, struct experiment_info **out, size_t *n);   /* all, by seq */
void experiment_info_free(struct experiment_info *e);

#endif
