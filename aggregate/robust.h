#ifndef AULAC_AGGREGATE_ROBUST_H
#define AULAC_AGGREGATE_ROBUST_H
/* The aggregation rules (policy aggregation.rule) and DP-FedAvg's clipping and noise:
 * the one function the coordinator's round close, the contribution measures and the
 * verifiers call to turn a round's accepted updates into its average update
 * (aggregate/README.md has every formula).
 *
 *   fedavg        agg_average (aggregate/round.h), bit for bit.
 *   clip          as fedavg, each update's decode scaled by min(1, norm_bound / ||d_i||)
 *                 (the weights and their sum W unchanged).
 *   trimmed_mean  coordinate-wise: of the k values of coordinate j, floor(trim * k) are
 *                 dropped at each end and the rest averaged (unweighted).
 *   median        coordinate-wise median (mean of the two middle values for even k),
 *                 unweighted.
 *   multi_krum    Krum scores s_i = sum of the n - f - 2 smallest ||d_i - d_j||^2 over
 *                 j != i; the m (policy select, default n - f; at most n - f) updates
 *                 of lowest score (ties: member-id order) are averaged as fedavg does.
 *
 * Sparse uplinks: compression.uplink.average says what a coordinate a member did not send
 * is: `members`: a zero, a value like any other; `senders`: absent (trimmed_mean and
 * median take the order statistics over the members that sent j; 0 where none did).
 * Krum's distances are always over the zero-filled vectors. Then outer_average's
 * sparse_scale is applied as agg_average does.
 *
 * privacy (policy.privacy.enabled): each update is clipped to privacy.clip first (as the
 * clip rule, with C; under the clip rule to the smaller of C and norm_bound), weights are
 * uniform (the policy requires weighting: uniform, rule
 * fedavg or clip, average: members); the noise is added by agg_dp_noise afterwards, so
 * that the measures and verifiers never draw it.
 *
 * Memory: trimmed_mean, median and multi_krum read the n payloads block by block with a
 * codec_reader each (codec/codec.h): extra memory O(n * block_size), never O(n * model).
 * fedavg and clip decode each payload straight into avg. */
#include <stddef.h>
#include <stdint.h>

#include "aggregate/dp_noise.h"
#include "aggregate/round.h"

/* What the rule did with one update (for the log, the ledger and the tests). */
struct agg_member_stat {
    double norm;                /* L2 norm of its decoded update (double) */
    float scale;                /* clip factor applied to it: 1 when not clipped */
    int used;                   /* 1: it entered the average (multi_krum: selected) */
    double krum_score;          /* multi_krum: its score; else 0 */
};

/* avg (n_params floats) = the rule's average of the updates u[i] with include == NULL or
 * include[i] != 0 (in array order: callers sort by member id). scratch: n_params floats
 * (the support of `senders` averaging), required when plan->average is senders, else
 * unused and may be NULL. Mapped payloads (agg_update.mapped) have their pages dropped
 * as they are consumed (agg_payload_consumed). stats: NULL or n entries
 * (entries of excluded updates are zeroed). When the included updates are too few for
 * the rule (multi_krum: fewer than 2f + 3), AGG_ERR_RULE with why; the coordinator
 * refuses to close such a round; coalitions of the contribution measures use
 * agg_combine_coalition. AGG_ERR_PAYLOAD (why names the member), AGG_ERR_NOMEM,
 * AGG_ERR_ARG. With no update included, avg is all zero. */
#define AGG_ERR_RULE (-1664)
int agg_combine(const struct policy *p, const struct policy_round_plan *plan,
                size_t n_params, const struct agg_update *u, size_t n,
                const uint8_t *include, float *avg, float *scratch,
                struct agg_member_stat *stats, char *why, size_t cap);

/* The smallest number of updates the policy's rule can aggregate (multi_krum: 2f + 3;
 * trimmed_mean: the least k with k - 2 floor(trim k) >= 1, i.e. 1; others 1). */
size_t agg_rule_min_updates(const struct policy *p);

/* As agg_combine for a coalition of the contribution measures (credit/score.h): a
 * coalition smaller than agg_rule_min_updates is averaged by multi_krum with the largest
 * f' < f it admits (f' = floor((k - 3) / 2); fedavg's average when k < 3), the other
 * rules as agg_combine. aggregate/README.md documents it. */
int agg_combine_coalition(const struct policy *p, const struct policy_round_plan *plan,
                          size_t n_params, const struct agg_update *u, size_t n,
                          const uint8_t *include, float *avg, float *scratch, char *why,
                          size_t cap);

/* The factor outer_average applies to a round's sum: sparse_scale when the uplink is
 * sparse (k_per_block < block_size), else 1. */
float agg_sparse_factor(const struct policy_round_plan *plan);

#endif
