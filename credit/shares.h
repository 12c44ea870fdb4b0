#ifndef AULAC_CREDIT_SHARES_H
#define AULAC_CREDIT_SHARES_H
/* Credits: each member's share of an experiment under contribution.credit_weights, from
 * its rounds' contribution_scores entries (written down in credit/README.md and
 * policies/README.md):
 *
 *   total_m(i)  = sum over the experiment's scored rounds of max(0, value_m(i, r));
 *                 a member absent from a round adds 0 for it; negative values (an update
 *                 that made the model worse, or pointed against the aggregate) add 0:
 *                 credit is never taken away, and a harmful update earns nothing
 *   share_m(i)  = total_m(i) / sum_j total_m(j)   (0 for all when the sum is 0)
 *   credit(i)   = sum_m w_m share_m(i) / sum_m w_m  over the policy's measures
 *
 * Sums run in round order, then member-id order, in double: the same entries give the
 * same bytes. Shares sum to 1 (up to rounding) unless every total is 0. */
#include <stddef.h>
#include <stdint.h>

#include "ledger/entry.h"
#include "policies/policy.h"

struct credit_totals {
    char experiment[ENTRY_ID_MAX + 1];
    uint32_t n_measures;
    char measures[ENTRY_MEASURES_MAX][ENTRY_MEASURE_NAME_MAX + 1];
    size_t n, cap;                       /* members seen, sorted by id */
    struct entry_credit_share *members;  /* measure_share holds the running totals */
    uint64_t rounds;
};

void credit_totals_init(struct credit_totals *t);
void credit_totals_free(struct credit_totals *t);
/* Adds one round's scores (the same experiment and measures, in the same order, every
 * round; members in strictly increasing id order; finite values: CREDIT_ERR_FORMAT
 * otherwise, and t is left as it was). CREDIT_ERR_NOMEM. */
int credit_totals_add(struct credit_totals *t, const struct entry_contribution_scores *s);
/* The credits entry of the totals under the policy's weights: out->members is malloc'd
 * (free it with free(); NULL when there is no member); out's strings are copies.
 * CREDIT_ERR_FORMAT (a measure name that is none of policies/policy.h's),
 * CREDIT_ERR_NOMEM. */
int credit_shares(const struct credit_totals *t, const struct policy_contribution *c,
                  struct entry_credits *out);

/* Bytes and struct of totals for the coordinator's state record ("coord.credit"):
 * encode / decode, every length checked (layout and vector: credit/README.md, "The totals
 * record"). decode overwrites *t (free what it held first); on CREDIT_ERR_FORMAT or
 * CREDIT_ERR_NOMEM *t is empty. */
int credit_totals_encode(const struct credit_totals *t, uint8_t **out, size_t *len);
int credit_totals_decode(struct credit_totals *t, const uint8_t *buf, size_t len);

#endif
