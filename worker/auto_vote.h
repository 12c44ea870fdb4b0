#ifndef AULAC_WORKER_AUTO_VOTE_H
#define AULAC_WORKER_AUTO_VOTE_H
/* The worker's vote on experiment proposals, for its member, from its site policy
 * (site.yaml `governance: auto_vote: approve-if-allowed`; policies/README.md).
 *
 * A thread of its own, with its own signed connection to the coordinator, polls the
 * open proposals (ListProposals: every AUTO_VOTE_POLL_OPEN_MS while some are open and
 * not settled, AUTO_VOTE_POLL_IDLE_MS otherwise), while the worker trains and while it
 * waits between experiments. For each open experiment proposal the member neither
 * proposed nor voted on, it takes the proposed policy's exact text from the proposal's
 * policy_proposed ledger entry (GetEntries), and trusts it only when the motion hashes
 * to the proposal hash and verifies with its proposer's roster key, and the text hashes
 * to the signed document digest and parses to the signed policy hash and experiment
 * id. It then runs site_check on it and signs a vote (crypto/proposal.h): yes when the
 * site allows the policy, no otherwise; the log says which, with the site's reason for
 * a no. Cancel and charter proposals it leaves to a vote by hand (said once in the
 * log). A vote the coordinator refuses (already voted, expired, closed) is logged and
 * not sent again; a proposal it could not vote on after AUTO_VOTE_MAX_TRIES failed
 * tries (coordinator unreachable, ledger entry unreadable) is given up with a log line.
 *
 * The pure parts (the decision, the checks of what the coordinator sent) are exposed
 * for tests. */
#include <stddef.h>
#include <stdint.h>

#include "crypto/motion.h"
#include "policies/policy.h"
#include "policies/site.h"
#include "proto/aulac.pb-c.h"

#define AUTO_VOTE_POLL_OPEN_MS 2000
#define AUTO_VOTE_POLL_IDLE_MS 5000
#define AUTO_VOTE_CALL_MS      5000   /* each call's deadline (also bounds the stop) */
#define AUTO_VOTE_MAX_TRIES    5

struct worker;

/* What the worker does about one open proposal. */
enum auto_vote_action {
    AUTO_VOTE_NONE,           /* auto_vote is never, or the member proposed it or voted */
    AUTO_VOTE_CANNOT_JUDGE,   /* a cancel or charter proposal: left to a vote by hand */
    AUTO_VOTE_NEEDS_POLICY,   /* an experiment: decide again with its verified policy */
    AUTO_VOTE_YES,            /* the site allows the proposed policy */
    AUTO_VOTE_NO,             /* the site refuses it (why: site_check's reason) */
};

struct auto_vote_proposal {
    int kind;                      /* enum motion_kind */
    const char *proposer;
    char *const *voted;            /* who has voted so far (the proposer first) */
    size_t n_voted;
    const struct policy *policy;   /* kind MOTION_EXPERIMENT: the verified proposed policy,
                                      or NULL before it was fetched */
};

/* The decision for member under site (pure). why (may be NULL) gets the reason in
 * words for every action (for AUTO_VOTE_NO, site_check's reason). */
enum auto_vote_action auto_vote_decide(const struct site_policy *site, const char *member,
                                       const struct auto_vote_proposal *p, char *why,
                                       size_t cap);

/* The motion of ps, an open proposal of the ListProposals reply r, checked as before a
 * vote: it is a motion of r's alliance, hashes to ps->proposal_hash, and its
 * proposer's key in r's roster verifies its signature. 0, or -1 with why. */
int auto_vote_motion(const Aulac__V1__ProposalsReply *r, const Aulac__V1__ProposalStatus *ps,
                     struct motion *m, char *why, size_t cap);

/* The policy the verified experiment motion m (proposal hash proposal_hash) proposes,
 * from entry: the bytes of its policy_proposed ledger entry. Trusted only when the
 * entry is that motion's, its document hashes to m's signed document digest, and the
 * document parses to m's policy hash and experiment id. 0 with *out filled (the
 * caller policy_free()s it), or -1 with why. */
int auto_vote_policy(const struct motion *m, const uint8_t proposal_hash[32],
                     const uint8_t *entry, size_t entry_len, struct policy *out, char *why,
                     size_t cap);

/* How one try to vote on a proposal went. */
enum auto_vote_try {
    AUTO_VOTE_RECORDED,   /* the coordinator recorded the vote */
    AUTO_VOTE_REFUSED,    /* it refused it (already voted, expired, closed, ...) */
    AUTO_VOTE_FAILED,     /* no answer, or the policy could not be read: may pass later */
};

/* After a try: 1 when the proposal is settled (the vote recorded; refused, which is
 * never sent again; or failed for the AUTO_VOTE_MAX_TRIES-th time), 0 to try again at
 * the next listing. *failures counts the failed tries. */
int auto_vote_settled_after(enum auto_vote_try outcome, int *failures);

/* Starts the thread when w->site says approve-if-allowed (else does nothing), with
 * its own channel to w->opt.coordinator signed by w->key; w's options, key and site
 * must outlive auto_vote_stop. 0, or WORKER_EXIT_ERROR (logged). */
int  auto_vote_start(struct worker *w);
/* Stops the thread (waits for a call in progress, at most AUTO_VOTE_CALL_MS) and
 * frees everything. No-op when not started. */
void auto_vote_stop(struct worker *w);

#endif
