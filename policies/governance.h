#ifndef AULAC_POLICIES_GOVERNANCE_H
#define AULAC_POLICIES_GOVERNANCE_H
/* Governance: the live roster, the charter in force, and the rules that change them
 * and decide experiments.
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
 * Motions (crypto/motion.h: run an experiment, cancel one, amend the charter) are
 * tallied the same way, every current member a voter, with the charter's quorum of
 * their kind: quorum.experiments for run and cancel, quorum.charter for a charter.
 * Proposing an experiment needs one of the charter's proposer roles; the same
 * policy (content hash) is proposed once, whatever became of it; a cancel names an
 * approved experiment and only one cancel of it is open at a time; a charter motion
 * proposes a charter other than the one in force. The proposer may withdraw its
 * motion while it is open, or an approved experiment before it starts.
 *
 * This module only holds state and applies the rules; coordinator/governance.c
 * records every proposal, vote and change in the ledger and rebuilds this state
 * from it on restart. Not thread-safe: the caller locks. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/motion.h"
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
    GOV_WITHDRAWN,   /* a motion its proposer withdrew */
};

enum gov_family { GOV_ROSTER = 0, GOV_MOTION = 1 };

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
    enum gov_family family;
    struct roster_proposal p;       /* GOV_ROSTER */
    struct motion m;                /* GOV_MOTION */
    struct charter charter;         /* a charter motion: the charter it proposes */
    uint8_t  hash[32];
    uint8_t  signature[64];
    uint64_t index;                 /* roster_proposed / motion entry */
    uint64_t outcome_index;         /* member_added / removed / key_rotated entry, or the
                                       proposal_decided of a motion; 0: none */
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

const char *gov_state_name(enum gov_state s);   /* "open", "approved", ... */

/* The proposer and the expiry of either family. */
const char *gov_proposer(const struct gov_proposal *p);
int64_t gov_expires_ms(const struct gov_proposal *p);
/* The quorum that decides p under the charter in force. */
double gov_quorum(const struct governance_state *g, const struct gov_proposal *p);
/* created + the charter's proposal_expiry_days: the default expiry of a proposal. */
int64_t gov_default_expiry_ms(const struct governance_state *g, int64_t created_ms);

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

/* Rules for a new motion (its signature is the caller's business): as for a roster
 * proposal (current member, this alliance, clock window, expiry within 30 days, not
 * made before, open limit), then by kind: an experiment needs a proposer role of the
 * charter ("member hust has roles [member]; proposing an experiment needs the role
 * researcher (charter.proposers)") and a policy never proposed before (naming the
 * earlier proposal); a cancel names an experiment approved here with no other cancel
 * of it open; a charter motion (charter: what its document parses to) differs from
 * the charter in force. Whether a cancelled experiment has finished is the caller's
 * to check. 0 or GOV_ERR_REFUSED / GOV_ERR_LIMIT with why. */
int gov_check_motion(const struct governance_state *g, const struct motion *m,
                     const uint8_t hash[32], const struct charter *charter, int64_t now_ms,
                     int64_t skew_ms, char *why, size_t cap);
/* Records a motion (state open); charter for kind 3, else NULL. GOV_ERR_NOMEM. */
int gov_add_motion(struct governance_state *g, const struct motion *m, const uint8_t hash[32],
                   const uint8_t signature[64], const struct charter *charter, uint64_t index);
/* The approved experiment motion of experiment id, or NULL. */
struct gov_proposal *gov_experiment_find(struct governance_state *g, const char *experiment);

/* Rules for a withdrawal: p is a motion, member its proposer, and p is open (not
 * expired) or an approved experiment (whether it has started is the caller's to
 * check). 0 or GOV_ERR_REFUSED with why. */
int gov_check_withdraw(const struct governance_state *g, const struct gov_proposal *p,
                       const char *member, int64_t now_ms, char *why, size_t cap);

/* Marks a motion decided (approved, rejected, expired, withdrawn, obsolete) at ledger
 * leaf index with a note; an approved charter motion puts its charter in force. */
void gov_decide(struct governance_state *g, struct gov_proposal *p, enum gov_state s,
                uint64_t index, const char *note);

/* Rules for a vote: the proposal is open and not expired, the voter may vote
 * on it (current member, not the member being removed, not the proposer) and
 * has not voted yet. 0 or GOV_ERR_REFUSED with why. */
int gov_check_vote(struct governance_state *g, const struct gov_proposal *p,
                   const char *voter, int64_t now_ms, char *why, size_t cap);
int gov_add_vote(struct governance_state *g, struct gov_proposal *p, const char *voter,
                 int approve, const uint8_t signature[64], uint64_t index);

/* Counts against the current roster, with gov_quorum(g, p). Returns GOV_OPEN,
 * GOV_APPLIED (meaning: approved, apply it) or GOV_REJECTED. */
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
