#ifndef AULAC_CREDIT_SCORE_H
#define AULAC_CREDIT_SCORE_H
/* Contribution measures of one closed round (formulas in policies/README.md,
 * "contribution", and credit/README.md):
 *
 *   tokens     the tokens the member claimed (bounded by the round plan at acceptance)
 *   rounds     1 for each round the member's update was accepted in
 *   bytes      the payload bytes it sent
 *   alignment  cos(decode(u_i), avg_N): the member's decoded update against the round's
 *              average update (aggregate/robust.h agg_combine_coalition over all
 *              members: the policy's aggregation rule, without DP noise), in a
 *              second pass over the payloads (memory O(model)); 0 for a zero vector
 *   loo        v(N) - v(N \ {i}): leave-one-out value
 *   shapley    Shapley value of i in the game v over the round's members; exact when
 *              2^n - 2 <= the budget, else GTG-Shapley (Liu et al. 2022)
 *
 * with the round's utility v(S) = L(base) - L(model_S): how much the model built from
 * the updates in S lowers the evaluation-set loss L (credit/evalset.h), where model_S is
 * agg_outer_trial(outer, base, agg_combine_coalition(S)) -- the policy's rule, with
 * multi_krum's fallback for coalitions smaller than 2f + 3 (aggregate/README.md) -- and
 * v(empty) = 0 (no evaluation).
 *
 * GTG-Shapley: between-round truncation (|v(N)| < round_truncation: every value 0);
 * permutations stratified by position, in blocks of 2n: each block draws one random
 * order of the members (a Fisher-Yates shuffle from a ChaCha20 stream keyed by the
 * round's seed) and walks it cyclically from its positions m = 0, 2, 4, ... then
 * 1, 3, 5, ..., each forwards and then reversed, so that for even n the block's first n
 * permutations put every member at every position once (n odd: the whole block, twice),
 * at n(n-1) distinct prefixes a block or fewer (44 of 56 for the first n at n = 8); within a
 * permutation, once |v(N) - v(prefix)| < truncation * |v(N)| the remaining marginals are
 * 0 (not evaluated); subset values are cached, so each distinct subset costs one
 * evaluation; the budget counts the distinct subsets (not N, not empty) the Shapley
 * computation has used, and sampling stops when the next permutation's worst case (its
 * proper prefixes not used yet) would exceed it — after the first stratum (the n, n odd
 * 2n, permutations that balance the positions), when the next stratum's worst case (its
 * distinct proper prefixes not used yet) would, so strata are walked whole — or after
 * CREDIT_MAX_PERMUTATIONS. The
 * estimate is the mean marginal over the permutations walked.
 *
 * L is capped at CREDIT_LOSS_CAP nats: a model whose loss is larger or not finite (an
 * update that blew the model up) counts as the cap, so every coalition has a value and
 * one member's wild update cannot void the round's scores; such an update gets a large
 * negative loo and Shapley value.
 *
 * Determinism: the seed is credit_round_seed() of ledger data only; evaluation is
 * single-threaded (credit/evalset.h); everything else is sequential in member-id order.
 * Same inputs, same bytes. */
#include <stddef.h>
#include <stdint.h>

#include "aggregate/round.h"
#include "credit/evalset.h"
#include "policies/plan.h"
#include "policies/policy.h"

#define CREDIT_MAX_PERMUTATIONS 100000
#define CREDIT_LOSS_CAP 100.0   /* nats per byte; a uniform byte model scores ln 256 = 5.55 */

/* seed = BLAKE2b-256("aulac/credit/seed/v1" 0x00 || experiment 0x00 || round u64 BE ||
 * base model hash || payload hash of each update in member-id order). */
void credit_round_seed(const char *experiment, uint64_t round, const uint8_t base_hash[32],
                       const struct agg_update *u, size_t n, uint8_t seed[32]);

struct credit_round_input {
    const struct policy *policy;          /* contribution.* (measures, shapley settings) */
    const struct policy_round_plan *plan; /* the round's plan */
    const struct outer_opt *outer;        /* the outer state before the round's step */
    const float *base;                    /* the round's base model */
    size_t n_params;
    const struct agg_update *updates;     /* sorted by member id (agg_sort) */
    size_t n;
    uint8_t seed[32];
    struct evaluator *ev;                 /* required when loo or shapley is measured */
    const float *avg_full;                /* NULL, or the average of all n updates as
                                             agg_combine makes it (include NULL, before any
                                             DP noise): used when no coalition is evaluated
                                             (no loo, no shapley) instead of computing it
                                             again into a buffer of its own */
    float *model_scratch;                 /* NULL, or n_params floats the scoring may use
                                             (and overwrite) as its model buffer instead
                                             of allocating one: the close lends the next
                                             model's buffer, not yet made */
};

struct credit_round_scores {
    size_t n;                             /* = input n */
    double (*value)[POLICY_MEASURES];     /* value[i][m] for member i; measures not in the
                                             policy are 0; malloc'd */
    uint64_t evaluations;                 /* model evaluations spent (base and full included) */
    double base_loss, model_loss;         /* L(base), L(model_N); NaN without evaluation */
    int exact;                            /* shapley computed exactly */
};

/* Scores every measure of in->policy->contribution.measures. Memory: a few n_params
 * buffers, never one per member. CREDIT_ERR_PAYLOAD (why names the member),
 * CREDIT_ERR_MODEL, CREDIT_ERR_NOMEM, CREDIT_ERR_ARG (no evaluator for loo/shapley). */
int credit_score_round(const struct credit_round_input *in, struct credit_round_scores *out,
                       char *why, size_t cap);
void credit_round_scores_free(struct credit_round_scores *s);

/* Shapley values of a game given as a value function over bit masks (tests and the
 * bench use it with known games): exact when n <= 20 and 2^n - 2 <= budget, else GTG.
 * v(0) must be 0. value receives the mask of members in the coalition. */
typedef int (*credit_game_fn)(void *arg, uint64_t mask, double *value);
int credit_shapley(size_t n, credit_game_fn v, void *arg, const struct policy_contribution *c,
                   const uint8_t seed[32], double *phi, uint64_t *evaluations, int *exact);

#endif
