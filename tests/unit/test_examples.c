/* The example policies (policies/examples/, but the site-*.yaml ones) as the coordinator
 * takes them, unchanged: each loads and hashes (lifecycle.c load_policy), every one of its
 * rounds has a plan (the coordinator plans each round it opens), the members it lists can
 * satisfy its participation and its rule (the coordinator refuses to close a round with
 * fewer than agg_rule_min_updates updates, and waits for min_members: so min_members >=
 * agg_rule_min_updates, and a fixed member list holds min_members), and a privacy budget
 * lets at least one round run (privacy/rdp.h, q = 1: the budget check before each round).
 * tests/integration/examples_run.sh runs each of them, scaled down, on the real
 * coordinator; tests/integration/policy_cli.sh: `aulac policy check` passes each.
 * Runs from the repository root (or with $AULAC_SRCDIR), as scripts/test.sh does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregate/robust.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "privacy/rdp.h"

/* What one example allows, for the message and the checks. */
struct example_run {
    size_t min_updates;     /* agg_rule_min_updates */
    uint64_t dp_rounds;     /* privacy with a target: rounds within it; else rounds */
    double epsilon;         /* privacy: epsilon after dp_rounds rounds; else 0 */
};

/* Checks one loaded example; fails the test naming the file and the reason. */
static void check_example(const char *path, const struct policy *p, struct example_run *out)
{
    uint8_t h[32];
    if (policy_hash(p, h) != 0)
        fail_msg("%s: policy_hash failed", path);
    for (uint64_t r = 1; r <= p->training.rounds; r++) {
        struct policy_round_plan plan;
        char why[300] = "";
        if (policy_round_plan(p, r, &plan, why, sizeof why) != 0)
            fail_msg("%s: round %llu has no plan: %s", path, (unsigned long long)r, why);
    }
    const struct policy_participation *pp = &p->participation;
    out->min_updates = agg_rule_min_updates(p);
    if (out->min_updates < 1)
        fail_msg("%s: agg_rule_min_updates is 0", path);
    if (pp->min_members < out->min_updates)
        fail_msg("%s: participation.min_members %u is below the %zu updates rule %s needs to "
                 "close a round", path, pp->min_members, out->min_updates,
                 policy_agg_rule_name(p->aggregation.rule));
    if (!policy_all_members(p) && pp->n_members < pp->min_members)
        fail_msg("%s: participation lists %zu members, fewer than min_members %u", path,
                 pp->n_members, pp->min_members);
    out->dp_rounds = p->training.rounds;
    out->epsilon = 0;
    if (!p->privacy.enabled)
        return;
    const struct policy_privacy *pv = &p->privacy;
    if (pv->target_epsilon > 0) {
        uint64_t steps = 0;
        int rc = rdp_max_steps(1.0, pv->noise_multiplier, pv->delta, pv->target_epsilon,
                               p->training.rounds, &steps);
        if (rc != 0)
            fail_msg("%s: rdp_max_steps: %s", path, rdp_strerror(rc));
        if (steps < 1)
            fail_msg("%s: privacy.target_epsilon %g is spent before round 1 (noise_multiplier "
                     "%g, delta %g): the coordinator would end it at once", path,
                     pv->target_epsilon, pv->noise_multiplier, pv->delta);
        out->dp_rounds = steps;
    }
    int rc = rdp_epsilon(1.0, pv->noise_multiplier, out->dp_rounds, pv->delta, &out->epsilon);
    if (rc != 0)
        fail_msg("%s: rdp_epsilon: %s", path, rdp_strerror(rc));
    if (pv->target_epsilon > 0 && !(out->epsilon <= pv->target_epsilon))
        fail_msg("%s: epsilon %g after %llu rounds exceeds the target %g", path, out->epsilon,
                 (unsigned long long)out->dp_rounds, pv->target_epsilon);
}

static void every_example_runs_on_the_coordinator_as_written(void **state)
{
    (void)state;
    const char *root = getenv("AULAC_SRCDIR");
    char pattern[1024];
    snprintf(pattern, sizeof pattern, "%s%spolicies/examples/*.yaml", root ? root : "",
             root ? "/" : "");
    glob_t g;
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    size_t n = 0, robust = 0, dp = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        if (strncmp(base, "site-", 5) == 0)
            continue;
        struct policy p;
        struct policy_error err;
        if (policy_load_file(path, &p, &err) != 0)
            fail_msg("%s", err.message);
        struct example_run run;
        check_example(path, &p, &run);
        print_message("%-26s rule %-12s min_members %u >= %zu update(s) the rule needs",
                      base, policy_agg_rule_name(p.aggregation.rule),
                      p.participation.min_members, run.min_updates);
        if (p.privacy.enabled)
            print_message("; epsilon %.3f after %llu of %u rounds (z %g, delta %g)",
                          run.epsilon, (unsigned long long)run.dp_rounds, p.training.rounds,
                          p.privacy.noise_multiplier, p.privacy.delta);
        print_message("\n");
        robust += p.aggregation.rule != POLICY_AGG_FEDAVG;
        dp += p.privacy.enabled != 0;
        n++;
        policy_free(&p);
    }
    globfree(&g);
    assert_true(n >= 4);
    /* issue 13, item 6: the robust and DP examples are among them */
    assert_true(robust >= 1);
    assert_true(dp >= 1);
}

/* The checks refuse what the coordinator could not run: a rule that needs more updates
 * than min_members guarantees, and a budget spent before the first round. */
static void an_example_the_coordinator_cannot_run_is_refused(void **state)
{
    (void)state;
    struct policy p;
    struct policy_error err;
    static const char krum[] =
        "schema: 1\n"
        "metadata: {name: k, proposer: a}\n"
        "model: {family: gpt2, vocab_size: 256, n_positions: 32, n_layer: 1, n_head: 2, "
        "n_embd: 32, seed: 1}\n"
        "data: {min_tokens_per_member: 1000, validation_fraction: 0.1}\n"
        "training: {rounds: 3, local_steps: 2, batch_size: 4, seq_len: 32,\n"
        "  inner: {kind: adamw, lr: 0.001}, outer: {kind: fedavg, lr: 1.0}}\n"
        "aggregation: {rule: multi_krum, weighting: uniform, byzantine: 1}\n"
        "participation: {members: [a, b, c, d, e], min_members: 5}\n";
    assert_int_equal(policy_load_buffer("k.yaml", krum, sizeof krum - 1, &p, &err), 0);
    struct example_run run;
    check_example("k.yaml", &p, &run);
    assert_int_equal(run.min_updates, 5);   /* 2f + 3 */
    /* the same policy with two fewer members: what the coordinator would wait for forever.
     * The loader itself refuses it (design: multi_krum needs min_members >= 2f + 3). */
    policy_free(&p);
    char fewer[sizeof krum + 16];
    snprintf(fewer, sizeof fewer, "%.*smembers: [a, b, c], min_members: 3}\n",
             (int)(strstr(krum, "members: [a") - krum), krum);
    assert_int_not_equal(policy_load_buffer("k3.yaml", fewer, strlen(fewer), &p, &err), 0);
    assert_non_null(strstr(err.message, "multi_krum"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_example_runs_on_the_coordinator_as_written),
        cmocka_unit_test(an_example_the_coordinator_cannot_run_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
