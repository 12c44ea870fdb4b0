#ifndef AULAC_POLICIES_GOVERNANCE_H
#define AULAC_POLICIES_GOVERNANCE_H
/* Roster governance: the live roster and the rules that change it.
 *
 * The roster starts as the founding roster (the ledger's genesis entry). It then
 * changes only by signed proposals (crypto/proposal.h) that a quorum of current
 * members approves:
 *
 *   voters V  = the current members; for a removal, all but the member removed
 *   needed    = max(1, ceil(quorum x V))          quorum: the charter's quorum.roster
 *   yes       = the proposer (while a voter) + the approving votes of current voters
 *   no        = the refusing votes of current voters
 *   approved  when yes >= needed;  rejected when no > V - needed;  otherwise open,
 *   until expires_ms, after which it is expired and votes are refused.
 *
 * Tallies are taken when a vote arrives, against the roster of that moment (a
 * vote by a member who has since been removed no longer counts). An approved
 * proposal is applied at once if it still makes sense (the member to add is not
 * a member by then, the one to remove or rotate still is, the key is unused);
 * otherwise it is obsolete. Keys that were ever in the roster and left it
 * (rotated out, or of a removed member) are remembered and never accepted again.
 *
 * This module only holds state and applies the rules; coordinator/governance.c
 * records every proposal, vote and change in the ledger and rebuilds this state
 * from it on restart. Not thread-safe: the caller locks. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/proposal.h"
#include "policies/charter.h"

#define GOV_MAX_OPEN            256                      /* open proposals at once */
#define GOV_MAX_TTL_MS          (30LL * 24 * 3600 * 1000)   /* a proposal lives at most 30 days */
#define GOV_MAX_MEMBERS         1024

enum gov_state {
    GOV_OPEN = 1,
    GOV_APPLIED,     /* approved and applied */
    GOV_REJECTED,
    GOV_EXPIRED,
    GOV_OBSOLETE,    /* approved, but no longer applicable */
};

struct gov_member {
    char     id[PROPOSAL_MEMBER_MAX + 1];
    char     organization[PROPOSAL_ORG_MAX + 1];
    uint32_t roles;
    uint8_t  public_key[32];
    uint64_t since_index;           /* ledger leaf of genesis / member_added / key_rotated */
};

/* A key that left the roster: rotated out, or the key of a removed member. */
struct gov_retired {
    char     member[PROPOSAL_MEMBER_MAX + 1];
    uint8_t  public_key[32];
    int      removed;               /* 1: the member was removed; 0: the key was rotated out */
    uint64_t index;                 /* the ledger leaf that retired it */
};

struct gov_vote {
    char    voter[PROPOSAL_MEMBER_MAX + 1];
    uint8_t approve;
    uint8_t signature[64];
    uint64_t index;
};

struct gov_proposal {
    struct roster_proposal p;
    uint8_t  hash[32];
    uint8_t  signature[64];
    uint64_t index;                 /* roster_proposed entry */
    uint64_t outcome_index;         /* member_added / removed / key_rotated entry; 0: none */
    enum gov_state state;           /* GOV_OPEN may have expired: see gov_state_at */
    char     note[200];
    struct gov_vote *votes;         /* explicit votes; the proposer's approval is implicit */
    size_t   n_votes, cap_votes;
};

struct gov_tally {
    uint32_t voters, needed, yes, no;
};

struct governance_state {
    char     alliance[PROPOSAL_ALLIANCE_MAX + 1];
    struct charter charter;         /* the alliance charter in force */
    struct gov_member *members;
    size_t   n_members, cap_members;
    struct gov_retired *retired;
    size_t   n_retired, cap_retired;
    struct gov_proposal *proposals; /* in ledger order */
    size_t   n_proposals, cap_proposals;
};

/* Error codes (range -1700..-1719). */
#define GOV_ERR_NOMEM     (-1700)
#define GOV_ERR_REFUSED   (-1701)   /* the proposal / vote breaks a rule: why says which */
#define GOV_ERR_LIMIT     (-1702)   /* too many members or open proposals */

const char *gov_state_name(enum gov_state s);   /* "open", "applied", ... */

/* charter NULL: charter_default(). */
void gov_init(struct governance_state *g, const char *alliance, const struct charter *charter);
void gov_free(struct governance_state *g);

/* Founding members (genesis). GOV_ERR_NOMEM, GOV_ERR_LIMIT, GOV_ERR_REFUSED
 * (duplicate id or key). */
int gov_add_founding_member(struct governance_state *g, const struct gov_member *m);

/* Valid until the state next changes; NULL when absent. */
const struct gov_member *gov_member_find(const struct governance_state *g, const char *id);
/* The latest retirement of this member's key (any key when key is NULL). */
const struct gov_retired *gov_retired_find(const struct governance_state *g, const char *member,
                                           const uint8_t *key);
struct gov_proposal *gov_proposal_find(struct governance_state *g, const uint8_t hash[32]);

/* The state at time now (an open proposal past expires_ms is expired). */
enum gov_state gov_state_at(const struct gov_proposal *p, int64_t now_ms);

/* Rules for a new proposal (its signature is the caller's business): the
 * proposer is a current member; the alliance is this one; created within
 * skew_ms of now, expires in the future and within GOV_MAX_TTL_MS of created;
 * not proposed before; and it makes sense now (see gov_applicable). 0 or
 * GOV_ERR_REFUSED / GOV_ERR_LIMIT with why. */
int gov_check_proposal(const struct governance_state *g, const struct roster_proposal *p,
                       const uint8_t hash[32], int64_t now_ms, int64_t skew_ms,
                       char *why, size_t cap);
/* Whether the change can be applied to the current roster. 0 or GOV_ERR_REFUSED. */
int gov_applicable(const struct governance_state *g, const struct roster_proposal *p,
                   char *why, size_t cap);
/* Records a proposal (state open). GOV_ERR_NOMEM. */
int gov_add_proposal(struct governance_state *g, const struct roster_proposal *p,
                     const uint8_t hash[32], const uint8_t signature[64], uint64_t index);

/* Rules for a vote: the proposal is open and not expired, the voter may vote
 * on it (current member, not the member being removed, not the proposer) and
 * has not voted yet. 0 or GOV_ERR_REFUSED with why. */
int gov_check_vote(struct governance_state *g, const struct gov_proposal *p,
                   const char *voter, int64_t now_ms, char *why, size_t cap);
int gov_add_vote(struct governance_state *g, struct gov_proposal *p, const char *voter,
                 int approve, const uint8_t signature[64], uint64_t index);

/* Counts against the current roster. Returns GOV_OPEN, GOV_APPLIED (meaning:
 * approved, apply it) or GOV_REJECTED. */
enum gov_state gov_tally(const struct governance_state *g, const struct gov_proposal *p,
                         struct gov_tally *t);

/* Applies an approved proposal to the roster, recorded at ledger leaf index:
 * marks it applied, retires keys. GOV_ERR_REFUSED when not applicable (the
 * caller marks it obsolete), GOV_ERR_NOMEM, GOV_ERR_LIMIT. */
int gov_apply(struct governance_state *g, struct gov_proposal *p, uint64_t index);

/* Roster changes replayed from the ledger (member_added / member_removed /
 * key_rotated entries), with or without a known proposal. */
int gov_replay_added(struct governance_state *g, const struct gov_member *m, uint64_t index);
int gov_replay_removed(struct governance_state *g, const char *member, uint64_t index);
int gov_replay_rotated(struct governance_state *g, const char *member, const uint8_t key[32],
                       uint64_t index);

#endif
