#ifndef AULAC_CREDIT_REPLAY_H
#define AULAC_CREDIT_REPLAY_H
/* The credit verifier (`aulac credits verify`): replays experiments from their ledger
 * entries, the accepted payloads and the evaluation set alone, and says for every
 * closed round whether the recorded contribution_scores entry and model match what it
 * recomputes, and whether the credits entry matches (credit/README.md, "Verifying").
 *
 * For each experiment (the one asked for, or every one with contribution_scores):
 *   - the policy is its policy_proposed document, which must hash to the policy hash
 *     of experiment_started (and of the motion);
 *   - model 0 is the policy's round 0 (policies/model_source.h policy_model_init:
 *     gpt2_init_params(model.seed), or the tensors of the pinned model.init file, found
 *     by its hash in the artifact store), named by model_layout_hash (v1 for the built-in
 *     GPT-2, v2 for a named model), which must be experiment_started's;
 *   - each round R, at its round_closed entry: the round's update_accepted entries
 *     (their members must be round_closed's participants), each payload fetched by its
 *     hash and re-hashed (missing: "round R: the payload of MEMBER (HASH...) is
 *     missing"; altered: "round R: the payload of MEMBER is altered: it hashes to X...,
 *     update_accepted says Y..."), agg_sort, agg_weight, credit_round_seed,
 *     credit_score_round with the outer state before the step; then agg_combine (the
 *     policy's aggregation rule, aggregate/robust.h; whose
 *     hash must be round_closed's aggregate_hash) and agg_next_model (outer state and
 *     downlink residual carried across rounds), whose hash must be round_closed's
 *     model_hash; under privacy the DP noise is recomputed (agg_dp_noise) from the seed
 *     revealed with the payloads once the experiment has ended (replay_options.seed_dir),
 *     after checking it against experiment_started's commitment; before that (a running
 *     experiment, or a ledger without a commitment) the round is
 *     not rebuilt and says why (rounds_unchecked; credits verify then takes the round's
 *     model as recorded, as its count measures need no model); then the round's contribution_scores entry is compared: members,
 *     payload hashes, measures, evaluation-set hash, seed, evaluations and exact
 *     exactly, tokens/rounds/bytes/alignment exactly, loo/shapley/base_loss/model_loss
 *     within |a - b| <= CREDIT_REPLAY_ABS_TOL + CREDIT_REPLAY_REL_TOL * |a| (a: the
 *     recorded value);
 *   - the credits entry must equal credit_shares() of the recorded scores bit for bit
 *     (pure double arithmetic on ledger numbers), and the shares from the recomputed
 *     scores are shown against it (exact measures exactly, the others within the
 *     tolerance).
 * A round whose payloads are incomplete cannot be rebuilt, and neither can the later
 * ones (they start from its model): their payloads are still looked up and hashed, so
 * every missing or altered payload is named.
 *
 * Memory: O(model): the base and next model, the average, the outer state, the
 * downlink residual, the evaluator and credit_score_round's buffers; the payloads of
 * one round at a time, mapped from their files; the entries are read one at a time
 * (two passes: one to find the experiments and their policies, one per experiment). */
#include <stddef.h>
#include <stdint.h>

#define CREDIT_REPLAY_ABS_TOL 1e-6
#define CREDIT_REPLAY_REL_TOL 1e-4

/* |recorded - recomputed| <= ABS + REL * |recorded|, or both NaN. */
int credit_replay_close(double recorded, double recomputed);

/* The ledger's entries: size, and a malloc'd copy of entry index (the caller frees).
 * get returns 0, or non-zero with why (one line) when the entry cannot be read. */
struct replay_entries {
    uint64_t size;
    int (*get)(void *arg, uint64_t index, uint8_t **bytes, size_t *len, char *why, size_t cap);
    void *arg;
};

struct replay_options {
    /* Where payloads are: data_dir/experiments/<id>/payloads/<hex>.bin (the
     * coordinator's retention store), or payload_dir/<hex>.bin (an export). One. */
    const char *data_dir;
    const char *payload_dir;
    /* Where the DP noise seeds of ended experiments are (privacy): with data_dir its
     * experiments/<id>/dp-noise-seed; with payload_dir, seed_dir/<id>.seed (an export's
     * dp-seeds/). Each must hash to experiment_started's dp_seed_commitment. */
    const char *seed_dir;
    /* The evaluation set (loo, shapley): evalset_file, or evalset_dir/<the policy's
     * contribution.evaluation_set.name>; its hash must be the policy's. */
    const char *evalset_file;
    const char *evalset_dir;
    /* Where the files policies pin (model.init, ...) are, as <dir>/<BLAKE2b-256 hex>
     * (coordinator/artifacts.h); NULL: data_dir/artifacts. Each is hashed before use.
     * Needed only by policies that pin a model.init. */
    const char *artifacts_dir;
    const char *experiment;          /* only this one; NULL: every one with scores (or,
                                        models_only, every one with a closed round) */
    /* `aulac ledger replay`: only every round's average and model against round_closed's
     * aggregate_hash and model_hash (no evaluation set, no scores, no credits). */
    int models_only;
    /* Result lines (stdout) and progress (stderr; may be NULL), without newline. */
    void (*line)(void *arg, const char *text);
    void (*progress)(void *arg, const char *text);
    void *arg;
};

struct replay_summary {
    uint64_t experiments;            /* replayed */
    uint64_t rounds;                 /* closed rounds looked at */
    uint64_t rounds_matched;
    uint64_t payloads_missing, payloads_altered;
    uint64_t credits_checked, credits_matched;
    uint64_t problems;               /* every finding that is not a match */
    uint64_t rounds_unchecked;       /* DP rounds whose noise seed is not revealed (or not
                                        committed): model not rebuilt, not counted as
                                        problems (credits verify: its scores are checked
                                        and it counts as matched too); the CLI exits 3
                                        when there are any and no problem */
    /* The first round that does not match (or cannot be rebuilt), in ledger order. */
    int have_first_bad;
    uint64_t first_bad_round;
    char first_bad_experiment[65];
};

/* Replays as above, printing through o->line. Returns 0 when the replay ran (*out says
 * whether everything matched: out->problems == 0), or CREDIT_ERR_IO (an entry cannot
 * be read), CREDIT_ERR_FORMAT (the experiment asked for is not in the ledger),
 * CREDIT_ERR_NOMEM, CREDIT_ERR_ARG, with why. */
int credit_replay(const struct replay_entries *src, const struct replay_options *o,
                  struct replay_summary *out, char *why, size_t cap);

#endif
