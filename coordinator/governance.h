#ifndef AULAC_COORDINATOR_GOVERNANCE_H
#define AULAC_COORDINATOR_GOVERNANCE_H
/* Governance in the coordinator: the roster, the charter and the motions that
 * decide experiments (policies/GOVERNANCE.md). The live roster is the ledger's
 * genesis entry plus every member_added / member_removed / key_rotated entry
 * after it, rebuilt from the ledger at every start (the roster file only founds
 * the ledger). Roster changes come only from signed proposals approved by a
 * quorum of current members (policies/governance.h has the rules); each
 * proposal, vote and change is a ledger entry, and a change commits in the same
 * transaction as the vote that approved it. Motions likewise: each motion, vote,
 * withdrawal and decision is an entry, and an approved experiment is queued
 * (coordinator/queue.h) in the transaction of its decision.
 *
 * Locking: the rules' state has its own reader/writer lock, so request
 * authentication (coordinator/auth.c) never waits on c->mu. Writers take c->mu
 * first, then that lock; nothing takes them the other way round. */
#include <stdint.h>

#include "coordinator/coord.h"
#include "policies/governance.h"
#include "proto/rpc.h"

/* After the ledger is open, before experiment_open (which counts the policy's
 * members in the live roster). Replays the ledger's governance entries (or takes
 * the roster file for a new ledger), decides the roster proposals that the
 * current roster decides, then syncs c->roster, c->members and c->n_eligible.
 * COORD_ERR_NOMEM, COORD_ERR_STATE (an entry does not decode or does not apply;
 * logged). */
int  governance_open(struct coord *c);
/* After experiment_resume_or_start: the motions still open that the current
 * roster and charter decide (policies/GOVERNANCE.md: tallied once after a
 * restart) get their proposal_decided entry and take effect (an approved cancel
 * stops the experiment that was just resumed). Takes mu and the write lock.
 * 0 or COORD_ERR_STATE (logged). */
int  governance_settle_motions(struct coord *c);
void governance_close(struct coord *c);

/* The current key of member id (copied). 0, or -1 with why (may be NULL):
 * never a member, or removed at which ledger entry. */
int governance_member_key(struct coord *c, const char *id, uint8_t key[32], char *why,
                          size_t cap);

/* After a signature by member id failed to verify with its current key: words
 * for why, naming a rotated-out key when key_id (may be NULL) is one. Returns 1 when
 * key_id names a key other than the member's roster key (rotated out, or never its
 * key): a refusal no retry can cure. 0 otherwise (a bad signature by the roster key). */
int governance_explain_bad_key(struct coord *c, const char *id, const char *key_id,
                               char *why, size_t cap);

/* The governance RPCs (proto/aulac.proto); ctx is the struct coord. */
void governance_on_propose(struct rpc_call *call, void *ctx);
void governance_on_vote(struct rpc_call *call, void *ctx);
void governance_on_list(struct rpc_call *call, void *ctx);
void governance_on_propose_motion(struct rpc_call *call, void *ctx);
void governance_on_withdraw(struct rpc_call *call, void *ctx);
void governance_on_list_experiments(struct rpc_call *call, void *ctx);

/* The open proposals (roster changes and motions) with their tallies at now (unix ms),
 * copied under the read lock for the HTTP API (coordinator/api.c): *out malloc'd, each
 * p.votes its own copy; free with governance_open_free. 0 or COORD_ERR_NOMEM. */
struct gov_open_proposal {
    struct gov_proposal p;
    struct gov_tally t;
    enum gov_state s;
};
int  governance_open_proposals(struct coord *c, int64_t now, struct gov_open_proposal **out,
                               size_t *n);
void governance_open_free(struct gov_open_proposal *list, size_t n);

/* The timer's turn (never a member's RPC thread): every open motion past its expiry
 * gets its proposal_decided (expired) entry. Takes mu and the write lock. */
void governance_tick(struct coord *c);

/* --policy FILE with --operator-key KEY (c->opt.operator_key_path): files an
 * experiment proposal of the policy at path signed by that member key, unless this
 * policy hash was proposed before, and logs what it did. Votes are then needed as
 * for any proposal. 0, or COORD_ERR_CONFIG (the key, the file or the proposal was
 * refused; logged), COORD_ERR_NOMEM. */
int governance_propose_operator(struct coord *c, const char *path);

#endif
