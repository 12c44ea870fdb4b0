#ifndef AULAC_AGGREGATE_ROUND_H
#define AULAC_AGGREGATE_ROUND_H
/* A round's arithmetic, in one place: the coordinator's round close, the contribution
 * measures (credit/score.h) and `aulac credits verify` (credit/replay.h) all call these,
 * so a verifier that holds the ledger and the payloads gets the coordinator's model bit
 * for bit.
 *
 * Order: updates are summed in the order of the array, which every caller sorts by
 * member id (bytewise strcmp): the sum is a function of the round's accepted updates,
 * not of the order they arrived in (aggregate/README.md).
 *
 * Memory: O(model). Payloads are read where they lie (an LMDB read transaction, a
 * mapped file) and decoded straight into the sum; no dense copy per member is made. */
#include <stddef.h>
#include <stdint.h>

#include "aggregate/outer.h"
#include "codec/codec.h"
#include "policies/plan.h"
#include "policies/policy.h"

#define AGG_ERR_ARG     (-1660)
#define AGG_ERR_NOMEM   (-1661)
#define AGG_ERR_PAYLOAD (-1662)   /* a payload does not decode (why names the member) */
#define AGG_ERR_MODEL   (-1663)   /* the new model has non-finite parameters */
#define AGG_ERR_IO      (-1665)   /* agg_next_model_fd: the downlink file could not be written */

#define AGG_MEMBER_MAX 64         /* member ids: ENTRY_ID_MAX */

/* One accepted update of the round. */
struct agg_update {
    char member[AGG_MEMBER_MAX + 1];
    uint64_t tokens, samples;
    double weight;                /* agg_weight() of the policy's weighting */
    const uint8_t *payload;       /* the compressed update as the member sent it */
    size_t len;
    uint8_t payload_hash[32];     /* BLAKE2b-256 of payload (as update_accepted records) */
    int mapped;                   /* 1: payload is a read-only private file mapping: a reader
                                   * may madvise(MADV_DONTNEED) page ranges it has consumed
                                   * (they come back from the file when touched again); 0:
                                   * heap memory, never madvised */
};

/* A reader is done with payload bytes [lo, hi) of u: when u->mapped, the whole pages
 * inside that range are dropped (madvise MADV_DONTNEED; they come back from the file if
 * touched again), so a round's resident payload pages stay O(chunk); when u->mapped is
 * 0 nothing is done (heap memory is never madvised). agg_average*, the robust rules and
 * the contribution measures call it as they consume payloads. */
void agg_payload_consumed(const struct agg_update *u, size_t lo, size_t hi);

/* The update's weight under aggregation.weighting: tokens, samples or 1. */
double agg_weight(enum policy_weighting w, uint64_t tokens, uint64_t samples);

/* Sorts u[0..n) by member id (strcmp). */
void agg_sort(struct agg_update *u, size_t n);

/* avg = the round's average update over the updates u[i] with include == NULL or
 * include[i] != 0, summed in array order: acc = sum weight * decode(payload) (and, when
 * plan->average is senders, support = sum of weight over the updates that carried each
 * value), then outer_average with plan->sparse_scale in sparse rounds (uplink
 * k_per_block < block_size), 1 in dense ones. support: n_params floats of scratch, needed
 * (non-NULL) when plan->average is POLICY_AVERAGE_SENDERS, else ignored. With no update
 * included, avg is all zero. AGG_ERR_PAYLOAD with why (cap bytes) naming the member. */
int agg_average(const struct policy_round_plan *plan, size_t n_params,
                const struct agg_update *u, size_t n, const uint8_t *include, float *avg,
                float *support, char *why, size_t cap);

/* agg_average with update i's decode scaled by scale[i] (a clip factor; NULL: all 1):
 * acc += (float)w_i * scale[i] * decode(payload_i) (codec_decode_accumulate_scaled), while
 * support and W keep the unscaled weights. scale NULL is agg_average bit for bit. */
int agg_average_scaled(const struct policy_round_plan *plan, size_t n_params,
                       const struct agg_update *u, size_t n, const uint8_t *include,
                       const float *scale, float *avg, float *support, char *why, size_t cap);

/* The outer step from base along avg into out (n floats), leaving *outer unchanged: its
 * state (momentum, Adam moments, step) is copied into scratch first. scratch: 2 * n floats
 * for fedadam, n for nesterov, NULL allowed for fedavg. out may not alias base or avg. */
void agg_outer_trial(const struct outer_opt *outer, const float *base, const float *avg,
                     size_t n, float *out, float *scratch);

/* The round close's new model, as the coordinator makes it: next = base, outer_step
 * (outer's state advances) along avg; every value must be finite (AGG_ERR_MODEL). Then,
 * when plan->downlink_on: delta = next - base is compressed with plan->downlink (with
 * down_residual as server-side error feedback when the downlink's error_feedback is on;
 * the residual advances) into *down (malloc'd, *down_len; the caller frees), and next
 * becomes base + decode(*down), which every replica can rebuild. avg is used as scratch
 * and destroyed. down may be NULL only when plan->downlink_on is 0. */
int agg_next_model(const struct policy_round_plan *plan, struct outer_opt *outer,
                   float *down_residual, const float *base, float *avg, size_t n, float *next,
                   uint8_t **down, size_t *down_len, char *why, size_t cap);

/* agg_next_model with down_release(down_arg, lo, hi) called as the downlink's
 * error-feedback residual is consumed (codec_encode_released): a caller whose residual is
 * a file mapping drops its pages as it goes; and base_release(base_arg, lo, hi) after
 * each pass that reads base has read base[lo, hi) (chunks of OUTER_CHUNK values, in index
 * order; base is read in up to three passes): a caller whose base model is a file mapping
 * drops those pages (the coordinator: snapshot_drop_range). Either hook NULL: none;
 * both NULL is agg_next_model. The chunking changes no bit of the result. */
int agg_next_model_released(const struct policy_round_plan *plan, struct outer_opt *outer,
                            float *down_residual, codec_release_fn down_release,
                            void *down_arg, const float *base, codec_release_fn base_release,
                            void *base_arg, float *avg, size_t n, float *next, uint8_t **down,
                            size_t *down_len, char *why, size_t cap);

/* agg_next_model_released with the downlink update written into the file down_fd at
 * offset down_at (codec_encode_fd: the same bytes, never whole in memory; *down_len its
 * length; nothing fsynced), and next = base + decode(update) read back block by block
 * from a read-only mapping of the file whose pages are dropped as it goes (the same
 * floats as agg_next_model's). plan->downlink_on must be set. AGG_ERR_IO (errno set):
 * the file could not be written or mapped. */
int agg_next_model_fd(const struct policy_round_plan *plan, struct outer_opt *outer,
                      float *down_residual, codec_release_fn down_release, void *down_arg,
                      const float *base, codec_release_fn base_release, void *base_arg,
                      float *avg, size_t n, float *next, int down_fd, uint64_t down_at,
                      uint64_t *down_len, char *why, size_t cap);

/* The outer optimizer the policy asks for (training.outer), with zero state. */
int agg_outer_init(const struct policy *p, size_t n_params, struct outer_opt *out);

#endif
