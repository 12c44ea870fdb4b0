#ifndef AULAC_COORDINATOR_GOVERNANCE_H
#define AULAC_COORDINATOR_GOVERNANCE_H
/* The roster as governance, in the coordinator: the live roster is the ledger's
 * genesis entry plus every member_added / member_removed / key_rotated entry
 * after it, rebuilt from the ledger at every start (the roster file only founds
 * the ledger). Roster changes come only from signed proposals approved by a
 * quorum of current members (policies/governance.h has the rules); each
 * proposal, vote and change is a ledger entry, and a change commits in the same
 * transaction as the vote that approved it.
 *
 * Locking: the rules' state has its own reader/writer lock, so request
 * authentication (coordinator/auth.c) never waits on c->mu. Writers take c->mu
 * first, then that lock; nothing takes them the other way round. */
#include <stdint.h>

#include "coordinator/coord.h"
#include "proto/rpc.h"

/* After the ledger is open, before experiment_resume_or_start. Replays the
 * ledger's roster entries (or takes the roster file for a new ledger), then
 * syncs c->roster, c->members and c->n_eligible. COORD_ERR_NOMEM,
 * COORD_ERR_STATE (an entry does not decode or does not apply; logged). */
int  governance_open(struct coord *c);
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

#endif
