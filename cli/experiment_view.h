#ifndef AULAC_CLI_EXPERIMENT_VIEW_H
#define AULAC_CLI_EXPERIMENT_VIEW_H
/* What the ledger says about each experiment, gathered in one pass over its entries:
 * the state, the policy it runs (from its policy_proposed document), every accepted and
 * rejected update, every closed round, its contribution_scores entries and its credits
 * entry. aulac credits and aulac report are built from it and from nothing else.
 *
 * Entries are untrusted bytes: one that does not decode is counted (undecodable) and
 * skipped; strings are kept as recorded (a rejection reason is member-controlled text:
 * escape it before showing it anywhere that interprets it).
 *
 * Ownership: the views own everything they hold; experiment_views_free releases it. */
#include <stddef.h>
#include <stdint.h>

#include "ledger/entry.h"
#include "policies/policy.h"

enum ev_state { EV_PROPOSED = 0, EV_RUNNING, EV_FINISHED, EV_CANCELLED, EV_FAILED };

/* "proposed", "running", "finished", "cancelled", "failed". */
const char *ev_state_name(enum ev_state s);

struct ev_update {                       /* update_accepted / update_rejected */
    uint64_t index;                      /* its leaf index */
    uint64_t round;
    char     member[ENTRY_ID_MAX + 1];
    int      accepted;
    uint64_t tokens, bytes;
    double   train_loss, val_loss;       /* accepted; NaN when not recorded */
    char    *reason;                     /* rejected: as recorded; may be NULL */
};

struct ev_round {                        /* round_closed */
    uint64_t round;
    uint32_t n_participants;
    double   mean_loss;
    uint64_t tokens;
    int      has_epsilon;                /* differential privacy: the entry's epsilon */
    double   epsilon;                    /* spent after this round (PRIVACY.md) */
};

struct ev_experiment {
    char     id[ENTRY_ID_MAX + 1];
    enum ev_state state;
    int      started;
    uint8_t  policy_hash[32];            /* experiment_started's (zero before) */
    uint64_t rounds_planned;             /* experiment_started's */
    char    *end_reason;                 /* cancelled / failed, or finished early (e.g.
                                            "privacy budget: ..."); may be NULL */
    int      have_policy;                /* its policy document was found and parses */
    char     policy_name[POLICY_NAME_MAX + 1];
    struct policy_contribution contribution;   /* have_policy: contribution.* */
    size_t   n_updates, cap_updates;
    struct ev_update *updates;           /* ledger order */
    size_t   n_rounds, cap_rounds;
    struct ev_round *rounds;             /* ledger order (round order) */
    size_t   n_scores, cap_scores;
    struct entry *scores;                /* decoded contribution_scores entries, ledger order */
    int      have_credits;
    struct entry credits;                /* decoded credits entry (the first one) */
};

struct ev_proposal;                      /* a policy_proposed document seen, parsed */

struct experiment_views {
    const char *only;                    /* gather just this experiment id (NULL: all) */
    size_t   n, cap;
    struct ev_experiment **items;        /* in order of first appearance */
    uint64_t entries, undecodable;
    size_t   n_proposals, cap_proposals;
    struct ev_proposal *proposals;
};

/* Zeroes v; only (may be NULL) is kept by pointer: it must outlive v. */
void experiment_views_init(struct experiment_views *v, const char *only);
void experiment_views_free(struct experiment_views *v);

/* Adds entry index (its bytes). 0, or -1 when out of memory (nothing else fails: an entry
 * that does not decode is counted in undecodable). */
int experiment_views_add(struct experiment_views *v, uint64_t index, const uint8_t *data,
                         size_t len);

/* The experiment with this id, or NULL. */
struct ev_experiment *experiment_views_find(const struct experiment_views *v, const char *id);

/* The experiment's credits: a copy of its credits entry when it has one (*final = 1), else
 * the totals of its contribution_scores entries so far (credit/shares.h credit_totals_add
 * then credit_shares) under its policy's credit_weights, or weight 1 for each measure
 * scored when its policy is not known (*final = 0). out->members is malloc'd: release it
 * with ev_credits_free. 0; 1 when the experiment has neither scores nor credits (out
 * zeroed); -1 with why filled (scores entries that disagree on their measures, out of
 * memory). */
int ev_credits(const struct ev_experiment *x, struct entry_credits *out, int *final,
               char *why, size_t cap);
void ev_credits_free(struct entry_credits *c);

#endif
