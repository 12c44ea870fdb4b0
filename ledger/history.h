#ifndef AULAC_LEDGER_HISTORY_H
#define AULAC_LEDGER_HISTORY_H
/* What members signed, re-checked from the ledger alone (ledger/README.md, "What
 * verify checks beyond the hashes"). The hashes and checkpoints say the coordinator
 * published these entries; this says each member signature stored in them holds
 * against the roster of its moment, so a coordinator (or anyone holding its key)
 * cannot credit one member's update to another, invent votes, or count an update
 * twice without it showing.
 *
 * Feed every entry in index order from leaf 0. The checker keeps the roster of
 * each moment: the genesis members (not the coordinator's own key), then each
 * member_added, member_removed and key_rotated in order. It checks:
 *   - update_accepted: the member is in the roster; the update envelope rebuilt
 *     from the entry's fields (crypto/envelope.h) verifies with the member's key
 *     of that moment; (experiment, round, member) is accepted once;
 *   - roster_proposed: the proposer is in the roster; the header rebuilt from the
 *     entry (alliance from genesis; crypto/proposal.h) hashes to the stored
 *     proposal hash and the proposer's signature verifies;
 *   - policy_proposed / cancel_proposed / charter_proposed (motions): the kind is the
 *     entry type's; the proposer is in the roster; the document hashes to the stored
 *     document digest; the motion rebuilt from the entry (alliance from genesis;
 *     crypto/motion.h) hashes to the stored proposal hash and the proposer's
 *     signature verifies; a proposal hash is recorded once;
 *   - vote: the voter is in the roster, its signature verifies, and it names an
 *     earlier roster_proposed or motion entry;
 *   - proposal_decided: names an earlier motion, with a known outcome, once (an
 *     approved experiment may later be withdrawn); a withdrawal carries the
 *     proposer's signature (crypto/motion.h), which verifies with its key of the
 *     moment; an approved charter motion puts its charter hash in force;
 *   - member_added / member_removed / key_rotated: they apply to the roster before
 *     them, and a proposal hash they carry names an earlier roster_proposed entry
 *     of the same change;
 *   - genesis is leaf 0 and only leaf 0; its charter text (if any) is the charter in
 *     force until an approved charter motion replaces it;
 *   - contribution_scores: names a round that a round_closed entry before it closed (same
 *     experiment and round), scored once; its members are that round's participants in
 *     id order, each with the payload hash of its update_accepted entry for the round;
 *   - credits: of an experiment an experiment_started entry started, once, counting as
 *     many rounds as contribution_scores entries of it came before; no round_closed or
 *     contribution_scores of the experiment after it (it comes after the last round).
 * Other entries only have to decode. Quorums are not recounted here
 * (policies/GOVERNANCE.md).
 *
 * Errors (ledger/errors.h): LEDGER_ERR_ENTRY_* (the entry does not decode),
 * LEDGER_ERR_MEMBER_SIGNATURE, LEDGER_ERR_HISTORY, LEDGER_ERR_NOMEM, LEDGER_ERR_ARG
 * (entries out of order). Each failure writes one line into why naming the entry
 * index, the member and, for updates, the experiment and round. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/envelope.h"
#include "crypto/motion.h"
#include "crypto/proposal.h"
#include "ledger/entry.h"
#include "ledger/errors.h"

struct ledger_history;

struct ledger_history_counts {
    uint64_t entries;          /* checked so far */
    uint64_t updates;          /* update envelope signatures verified */
    uint64_t proposals;        /* roster proposal signatures verified */
    uint64_t votes;            /* vote signatures verified */
    uint64_t roster_changes;   /* member_added / member_removed / key_rotated applied */
    uint64_t motions;          /* motion signatures verified */
    uint64_t decisions;        /* proposal_decided entries (withdrawal signatures verified) */
    uint64_t charter_changes;  /* approved charter motions */
    uint64_t scores;           /* contribution_scores entries matched to their rounds */
    uint64_t credits;          /* credits entries */
};

/* LEDGER_ERR_NOMEM. Free with ledger_history_free (NULL is fine). */
int  ledger_history_new(struct ledger_history **out);
void ledger_history_free(struct ledger_history *h);

/* Checks the entry of leaf index, which must be the next one (0, 1, ...). Once it
 * fails, the history stays failed: later calls return the same code. */
int ledger_history_add(struct ledger_history *h, uint64_t index, const uint8_t *bytes,
                       size_t len, char *why, size_t why_cap);

void ledger_history_counts(const struct ledger_history *h, struct ledger_history_counts *out);

/* The charter in force after the entries checked so far: BLAKE2b-256 of the genesis
 * charter text or the charter hash of the last approved charter motion, and the
 * entry that put it in force. *hash is all zero for a genesis without a charter
 * (the default charter, policies/GOVERNANCE.md). */
void ledger_history_charter(const struct ledger_history *h, uint8_t hash[32], uint64_t *index);

/* The one mapping between an accepted update's entry and the envelope its member
 * signed: the coordinator records with the first, verifiers rebuild with the second.
 * The first leaves train_loss alone and sets val_loss to NaN (not reported; neither is
 * signed): the caller fills them from the member's report. */
void entry_update_from_envelope(struct entry_update *u, const struct update_envelope *env);
void entry_update_envelope(const struct entry_update *u, struct update_envelope *env);

/* The same for a roster_proposed entry and the proposal its proposer signed. The
 * first fills r from p, hash and sig (r's organization and reason point into p,
 * or are NULL when empty). The second rebuilds the proposal of alliance from r:
 * 0, or -1 when a field of r is over a proposal's limit (then it cannot be one). */
void entry_proposed_from_proposal(struct entry_roster_proposed *r, const struct roster_proposal *p,
                                  const uint8_t hash[32], const uint8_t sig[64]);
int  entry_proposed_proposal(const struct entry_roster_proposed *r, const char *alliance,
                             struct roster_proposal *p);

/* The same for a motion entry and the motion its proposer signed. The first fills r
 * from m, hash, sig and the document (NULL for a cancel); r's strings point into m.
 * The second rebuilds the motion of alliance from r: 0, or -1 when a field of r is
 * over a motion's limit. entry_motion_type maps a kind to its entry type (0: none). */
void entry_motion_from_motion(struct entry_motion *r, const struct motion *m,
                              const uint8_t hash[32], const uint8_t sig[64],
                              const uint8_t *document, size_t document_len);
int  entry_motion_motion(const struct entry_motion *r, const char *alliance, struct motion *m);
enum entry_type entry_motion_type(uint32_t kind);

#endif
