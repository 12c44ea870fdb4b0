#ifndef AULAC_POLICIES_PLAN_H
#define AULAC_POLICIES_PLAN_H
/* The round plan: everything a round of an experiment is run with, derived from the
 * approved policy in one place. The coordinator and every worker call it with the same
 * policy (the one whose hash the signed task names) and the round number, and get the
 * same plan; nothing of it travels in the task.
 *
 *   struct policy_round_plan plan;
 *   char why[256];
 *   if (policy_round_plan(&policy, round, &plan, why, sizeof why) != 0)
 *       log_error("%s", why);   // "compression.uplink: zstd_level 40 is outside ..."
 *
 * The model, the trainer options, average and sparse_scale are the same in every round;
 * only the codecs' k_per_block changes (k = block_size, dense, in the link's
 * dense_warmup_rounds: rounds 1..N). A caller that needs only what never changes (the
 * model, to allocate buffers) asks for round 1. policies/README.md, "The round plan". */
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"
#include "model/gpt2.h"
#include "policies/policy.h"

#ifdef __cplusplus
extern "C" {
#endif

struct policy_round_plan {
    uint64_t round;                 /* 1..training.rounds */

    /* The model. Family gpt2: model.*; n_params = gpt2_num_params(&model) (tied LM
     * head). Family external: model all zero and n_params 0; the model is the init
     * file's tensors, and every daemon takes its size from the layout
     * (policies/model_source.h policy_model_layout: n_params). */
    struct gpt2_config model;
    size_t n_params;

    /* The trainer: training.* and training.inner.*, as the trainer takes them. */
    uint32_t local_steps;           /* inner steps this round */
    uint32_t batch_size;            /* sequences per inner step for the whole member */
    uint32_t seq_len;
    uint32_t warmup_steps;          /* linear lr warm-up over the replica's first steps */
    float lr, weight_decay, grad_clip, beta1, beta2, eps;   /* grad_clip 0: off */
    uint64_t seed;                  /* model.seed: the init seed, and the base of every
                                       member's data seed */

    /* The uplink codec (member -> coordinator): compression.uplink, dense in its
     * warm-up rounds. */
    struct codec_params uplink;
    /* Whether the coordinator broadcasts the round's model change compressed: when
     * compression.downlink is anything but dense fp32 (method none and quant fp32). Its
     * codec, dense in its warm-up rounds; all zero when downlink_on is 0. */
    int downlink_on;
    struct codec_params downlink;

    /* Sparse uplinks (compression.uplink): the worker decays its residual by
     * error_feedback_decay before each encode; the coordinator averages with `average`
     * and multiplies by sparse_scale in rounds whose uplink is sparse
     * (uplink.k_per_block < uplink.block_size), and by 1 in dense rounds. */
    float error_feedback_decay;
    float sparse_scale;
    enum policy_average average;
};

/* Fills *out with the plan of round `round` of policy p. Returns 0, or with a reason
 * in why (cap bytes, may be NULL) and *out zeroed:
 *   POLICY_ERR_ARG    p or out NULL
 *   POLICY_ERR_RANGE  round outside 1..training.rounds
 *   POLICY_ERR_INVALID family gpt2 and the model is not a GPT-2 the trainer builds
 *                     (model/gpt2.h gpt2_config_check), or a link's codec parameters are refused by
 *                     codec_params_validate (why names compression.uplink/downlink).
 * A policy that policy_load_*() accepted gives a plan for every one of its rounds or
 * for none. */
int policy_round_plan(const struct policy *p, uint64_t round, struct policy_round_plan *out,
                      char *why, size_t cap) __attribute__((warn_unused_result));

#ifdef __cplusplus
}
#endif

#endif
