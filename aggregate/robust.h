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

/* DP-FedAvg's noise on the round's average of k clipped updates: avg[j] += N(0, s^2)
 * with s = z * C * f / k, f the factor outer_average applied to the sum (sparse_scale in
 * sparse rounds, else 1): the same as noise of std z * C on the sum before the average.
 * Nothing when privacy is off or z = 0. AGG_ERR_ARG when k = 0.
 *
 * The noise of round `round` is a function of (seed, round) alone, so anyone holding the
 * experiment's seed (revealed in its experiment_finished / _cancelled / _failed entry,
 * committed by BLAKE2b-256(seed) in experiment_started: PRIVACY.md) recomputes it:
 *   key    = BLAKE2b-256(seed (32) || "aulac/dp-noise" (14 bytes) || round (u64 LE))
 *   stream = ChaCha20 (libsodium crypto_stream_chacha20, 64-bit nonce of zeros, block
 *            counter from 0) keystream under key, read as little-endian u64 words w0 w1 ...
 *   for each pair of parameters j, j+1 (j = 0, 2, 4, ...) the next two words a, b:
 *            u1 = ((a >> 11) + 1) 2^-53 in (0, 1], u2 = (b >> 11) 2^-53 in [0, 1),
 *            r = sqrt(-2 ln u1), avg[j] += (float)(s r cos(2 pi u2)),
 *            avg[j+1] += (float)(s r sin(2 pi u2)) (when j + 1 < n_params)
 * in IEEE double (aggregate/README.md has a test vector). The seed is 32 bytes from
 * libsodium's CSPRNG, drawn when the experiment starts, committed in experiment_started,
 * and handed out only with the payloads once the experiment has ended. */
#define AGG_DP_SEED_BYTES 32
int agg_dp_noise(const struct policy *p, const struct policy_round_plan *plan, size_t k,
                 const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, float *avg,
                 size_t n_params);

/* The round key above (BLAKE2b-256(seed || "aulac/dp-noise" || round LE)). */
void agg_dp_round_key(const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, uint8_t key[32]);

/* The commitment experiment_started records: BLAKE2b-256(seed). */
void agg_dp_seed_commitment(const uint8_t seed[AGG_DP_SEED_BYTES], uint8_t out[32]);

#endif
