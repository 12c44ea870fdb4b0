#include "policies/plan.h"

#include <string.h>

#include "common/why.h"

/* A link's codec in round `round`: the policy's own parameters (format version 1; k =
 * block_size when the link is dense), every value kept in its dense warm-up rounds.
 * Checked before the warm-up applies, so that every round of a policy is refused or
 * none. */
static int link_codec(const struct policy_link *l, const char *name, uint64_t round,
                      struct codec_params *out, char *why, size_t cap)
{
    memset(out, 0, sizeof *out);
    out->format_version = CODEC_FORMAT_VERSION;
    out->block_size = l->block_size;
    out->k_per_block = l->method == POLICY_COMPRESS_NONE ? l->block_size : l->k_per_block;
    out->quant = l->quant;
    out->zstd_level = l->zstd_level;
    out->error_feedback = l->error_feedback ? 1 : 0;
    char detail[200];
    if (codec_params_validate(out, detail, sizeof detail) != 0)
        return why_fail(why, cap, POLICY_ERR_INVALID, "compression.%s: %s", name, detail);
    if (round <= l->dense_warmup_rounds)
        out->k_per_block = out->block_size;
    return 0;
}

static int plan_round(const struct policy *p, uint64_t round, struct policy_round_plan *plan,
                      char *why, size_t cap)
{
    const struct policy_training *t = &p->training;
    if (round < 1 || round > t->rounds)
        return why_fail(why, cap, POLICY_ERR_RANGE, "round %llu is outside the experiment's "
                        "rounds 1..%u (training.rounds)", (unsigned long long)round, t->rounds);
    plan->round = round;

    const struct policy_model *m = &p->model;
    /* family external: plan->model zero, n_params 0: the layout's (model_source.h) */
    if (m->family == POLICY_FAMILY_GPT2) {
        plan->model.vocab_size = (int)m->vocab_size;
        plan->model.max_seq_len = (int)m->n_positions;
        plan->model.n_layer = (int)m->n_layer;
        plan->model.n_head = (int)m->n_head;
        plan->model.n_embd = (int)m->n_embd;
        if (gpt2_config_check(&plan->model) != 0)
            return why_fail(why, cap, POLICY_ERR_INVALID, "model: vocab_size %u, n_positions %u, "
                            "n_layer %u, n_head %u, n_embd %u do not describe a GPT-2 the trainer "
                            "builds (model/gpt2.h: every size at least 1, n_embd a multiple of "
                            "n_head, fewer than 2^36 parameters)", m->vocab_size, m->n_positions,
                            m->n_layer, m->n_head, m->n_embd);
        plan->n_params = gpt2_num_params(&plan->model);
    }

    plan->local_steps = t->local_steps;
    plan->batch_size = t->batch_size;
    plan->seq_len = t->seq_len;
    plan->warmup_steps = t->inner.warmup_steps;
    plan->lr = (float)t->inner.lr;
    plan->weight_decay = (float)t->inner.weight_decay;
    plan->grad_clip = (float)t->inner.grad_clip;
    plan->beta1 = (float)t->inner.beta1;
    plan->beta2 = (float)t->inner.beta2;
    plan->eps = (float)t->inner.eps;
    plan->seed = m->seed;

    const struct policy_compression *c = &p->compression;
    int rc = link_codec(&c->uplink, "uplink", round, &plan->uplink, why, cap);
    if (rc != 0)
        return rc;
    plan->downlink_on = c->downlink.method != POLICY_COMPRESS_NONE ||
                        c->downlink.quant != CODEC_QUANT_FP32;
    if (plan->downlink_on &&
        (rc = link_codec(&c->downlink, "downlink", round, &plan->downlink, why, cap)) != 0)
        return rc;
    plan->error_feedback_decay = (float)c->uplink.error_feedback_decay;
    plan->sparse_scale = (float)c->uplink.sparse_scale;
    plan->average = c->uplink.average;
    return 0;
}

int policy_round_plan(const struct policy *p, uint64_t round, struct policy_round_plan *out,
                      char *why, size_t cap)
{
    if (!out)
        return why_fail(why, cap, POLICY_ERR_ARG, "no plan to fill");
    memset(out, 0, sizeof *out);
    if (!p)
        return why_fail(why, cap, POLICY_ERR_ARG, "no policy to plan from");
    int rc = plan_round(p, round, out, why, cap);
    if (rc != 0)
        memset(out, 0, sizeof *out);
    return rc;
}
