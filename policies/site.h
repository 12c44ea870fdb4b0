#ifndef AULAC_POLICIES_SITE_H
#define AULAC_POLICIES_SITE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policies/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A worker's own site policy (site.yaml): which experiments this member's machines may
 * run. The worker checks every task against it and refuses, with the reason, what it
 * does not allow. Same strict YAML rules and error messages as experiment policies;
 * the keys are in policies/README.md ("Site policy").
 *
 *   schema: 1
 *   member: fpt
 *   allow:
 *     proposers: [hust, vnpt]
 *     experiments: ["demo-*", "gpt2-124m-*"]
 *   limits:
 *     max_parameters: 200000000
 *     max_artifact_bytes: 68719476736
 *     max_rounds: 5000
 *     max_local_steps: 1000
 *   governance:
 *     auto_vote: approve-if-allowed     (worker/auto_vote.h; default never)
 */

/* governance.auto_vote: whether the member's worker votes on experiment proposals for
 * it (worker/auto_vote.h): yes when site_check allows the proposed policy, no with the
 * site's reason otherwise. */
enum site_auto_vote {
    SITE_AUTO_VOTE_NEVER = 0,            /* "never": members vote by hand (aulac vote) */
    SITE_AUTO_VOTE_APPROVE_IF_ALLOWED,   /* "approve-if-allowed" */
};

#define SITE_DEFAULT_MAX_DELTA 1e-5

/* trainer: which trainer this member trains with (worker/TRAINER.md). */
enum site_trainer_kind { SITE_TRAINER_BUILTIN = 0, SITE_TRAINER_COMMAND = 1 };
enum site_trainer_mode { SITE_TRAINER_ONESHOT = 0, SITE_TRAINER_SERVE = 1 };
#define SITE_TRAINER_ARGS_MAX 64
#define SITE_TRAINER_ENV_MAX 64
#define SITE_TRAINER_TIMEOUT_DEFAULT 3600u
#define SITE_DEFAULT_MAX_ARTIFACT_BYTES (64ULL << 30)   /* limits.max_artifact_bytes */

struct site_trainer {
    int kind;                   /* enum site_trainer_kind; builtin when the section is absent */
    int mode;                   /* enum site_trainer_mode */
    char **argv;                /* command: n_args >= 1 strings, NULL-terminated; owned */
    size_t n_args;
    char *workdir;              /* owned; NULL: <state dir>/trainer */
    uint32_t timeout_s;         /* per round; 1..604800, default 3600 */
    char **env;                 /* "KEY=value" strings, n_env of them; owned */
    size_t n_env;
};

struct site_policy {
    uint32_t schema;
    char member[POLICY_ID_MAX + 1];     /* this site's member id; "" = not checked */
    bool any_proposer;                  /* allow.proposers absent: every proposer */
    char **proposers;                   /* allowed proposers; owned */
    size_t n_proposers;
    bool any_experiment;                /* allow.experiments absent: every name */
    char **experiments;                 /* fnmatch(3) patterns for metadata.name; owned */
    size_t n_experiments;
    /* Compute budget; 0 means no limit. max_parameters: site_check() checks it for
     * family gpt2 (the count follows from the policy); for family external the count is
     * the init file's, so the worker checks it once it has the layout
     * (policies/model_source.h policy_model_layout). */
    uint64_t max_parameters;
    /* The largest pinned file (model.init, config, tokenizer) the worker downloads;
     * 0: SITE_DEFAULT_MAX_ARTIFACT_BYTES. */
    uint64_t max_artifact_bytes;
    uint32_t max_rounds;
    uint32_t max_local_steps;
    uint32_t max_batch_size;
    uint32_t max_seq_len;
    uint64_t max_tokens_per_round;      /* local_steps * batch_size * seq_len */
    /* require: what an experiment must give this site's data (0 = no requirement).
     * min_noise_multiplier: the experiment's privacy.noise_multiplier must be at least this
     * (an experiment without privacy is refused). max_epsilon: the experiment's epsilon
     * after all its rounds (privacy/rdp.h, at its privacy.delta; or its target_epsilon
     * when that is smaller) must be at most this. Checked by site_check: when the worker
     * joins and when it votes. */
    double require_min_noise_multiplier;
    double require_max_epsilon;
    /* max_delta: the experiment's privacy.delta must be at most this (an epsilon at a
     * larger delta is a weaker promise); given or not, it applies whenever max_epsilon is
     * given, with SITE_DEFAULT_MAX_DELTA when left out (0 here). */
    double require_max_delta;
    int auto_vote;                      /* enum site_auto_vote */
    struct site_trainer trainer;
};

/* An allow-everything site policy (no limits), whose trainer is builtin (so it sits out
 * family external and tokenizer models, as a worker without site.yaml does). Owns
 * nothing; site_policy_free() is still fine to call. */
void site_policy_init(struct site_policy *s);

/* Parse site.yaml. Returns 0 or a POLICY_ERR_* with err filled (file:line:col: path:
 * message). On error *out is left allow-nothing-owned and zeroed. */
int site_load_file(const char *path, struct site_policy *out, struct policy_error *err)
    __attribute__((warn_unused_result));
int site_load_buffer(const char *name, const void *bytes, size_t len,
                     struct site_policy *out, struct policy_error *err)
    __attribute__((warn_unused_result));

/* Same, with every error in *errors, as policy_check_buffer() / policy_check_file() do
 * for experiment policies (policies/policy.h). out may be NULL. Returns 0 or the first
 * error's code. */
int site_policy_check_buffer(const char *name, const void *bytes, size_t len,
                             struct site_policy *out, struct policy_errors *errors)
    __attribute__((warn_unused_result));
int site_policy_check_file(const char *path, struct site_policy *out,
                           struct policy_errors *errors) __attribute__((warn_unused_result));

void site_policy_free(struct site_policy *s);

/* "never", "approve-if-allowed" (as written in site.yaml); NULL for anything else. */
const char *site_auto_vote_name(int auto_vote);

/* 0 if the site allows the experiment p; otherwise POLICY_ERR_SITE_REFUSED with the
 * first reason in why ("proposer \"mallory\" is not in allow.proposers (hust, vnpt)"),
 * or POLICY_ERR_ARG. A site whose trainer is builtin refuses family external and a
 * model with a tokenizer (the built-in trainer trains only GPT-2 on bytes). */
int site_check(const struct site_policy *s, const struct policy *p, char *why, size_t why_len)
    __attribute__((warn_unused_result));

#ifdef __cplusplus
}
#endif

#endif
