/* policies/plan.h: the round plan of every example policy is what the coordinator and
 * the worker used before there was a plan (when the Task carried the policy's values);
 * every round of a policy has a plan, dense exactly in the warm-up rounds; and what
 * cannot be planned (no such round, a model the trainer cannot build, a codec the
 * codec refuses) is refused with the reason. Runs from the repository root (or with
 * $AULAC_SRCDIR), as scripts/test.sh does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policies/plan.h"
#include "policies/policy.h"

static const char *example_path(const char *name, char *buf, size_t cap)
{
    const char *root = getenv("AULAC_SRCDIR");
    snprintf(buf, cap, "%s%spolicies/examples/%s", root ? root : "", root ? "/" : "", name);
    return buf;
}

static void load_example(const char *name, struct policy *p)
{
    char path[1024];
    struct policy_error err;
    if (policy_load_file(example_path(name, path, sizeof path), p, &err) != 0)
        fail_msg("%s", err.message);
}

/* What the code before policies/plan.c (commit e3431d1) used for a round, written down
 * from a run of those code paths over the example files:
 *   model, n_params    coordinator/coord.c load_policy and worker/worker.c
 *                      worker_model_from_policy: model.* into struct gpt2_config,
 *                      gpt2_num_params (the Task's model_params)
 *   trainer options    coordinator/service.c fill_task_locked: Task.params, the policy's
 *                      training.* and (float) training.inner.*, seed = model.seed; the
 *                      worker trained with exactly these. warmup_steps: worker.c
 *                      train_local read training.inner.warmup_steps. eps was not in the
 *                      Task: the trainer ran with its default 1e-8f, which is every
 *                      example's training.inner.eps
 *   uplink             Task.codec = coord_round_codec: policy_link_codec_params(uplink)
 *                      with k_per_block = block_size when round <= dense_warmup_rounds
 *   downlink           coord.c down_on = method != none || quant != fp32; experiment.c
 *                      downlink_compress: policy_link_codec_params(downlink), dense when
 *                      round <= its dense_warmup_rounds. When down_on was 0 the old
 *                      c->downlink was never read; the plan gives all zeros then.
 *   decay, scale, average   worker.c (float) uplink.error_feedback_decay; experiment.c
 *                      average_round (float) uplink.sparse_scale and uplink.average.
 * Rounds: the first, each side of a dense warm-up boundary, and the last. */
struct expect {
    const char *file;
    uint64_t round;
    struct gpt2_config model;
    size_t n_params;
    uint32_t local_steps, batch_size, seq_len, warmup_steps;
    float lr, weight_decay, grad_clip, beta1, beta2, eps;
    uint64_t seed;
    struct codec_params uplink;
    int downlink_on;
    struct codec_params downlink;
    float error_feedback_decay, sparse_scale;
    enum policy_average average;
};

/* One row per round; within a policy only the round and the codecs' k change. */
#define DEMO(round, up_k)   /* 366 k parameters; no warm-up; downlink k 256; decay 0.9 */  \
    {"demo.yaml", round, {256, 64, 3, 4, 96}, 366432, 20, 8, 64, 10, 0x1.89374cp-9f,       \
     0x1.47ae14p-7f, 0x1p+0f, 0x1.ccccccp-1f, 0x1.e66666p-1f, 0x1.5798eep-27f, 1337u,      \
     {1, 1024, up_k, 1, 3, 1}, 1, {1, 1024, 256, 1, 3, 1}, 0x1.ccccccp-1f, 0x1p+0f,       \
     POLICY_AVERAGE_SENDERS}
#define D124(round, up_k)   /* uplink dense in rounds 1-2; downlink dense fp16 */          \
    {"gpt2-124m-diloco.yaml", round, {50257, 1024, 12, 12, 768}, 124439808, 500, 64, 1024, \
     1000, 0x1.3a92a4p-11f, 0x1.99999ap-4f, 0x1p+0f, 0x1.ccccccp-1f, 0x1.e66666p-1f,       \
     0x1.5798eep-27f, 20240601u, {1, 4096, up_k, 1, 3, 1}, 1, {1, 4096, 4096, 2, 1, 1},     \
     0x1p+0f, 0x1p+0f, POLICY_AVERAGE_MEMBERS}
#define D355(round)         /* no warm-up; int4 uplink */                                  \
    {"gpt2-355m-fedadam.yaml", round,   {50257, 1024, 24, 16, 1024}, 354823168, 200, 32,    \
     1024, 2000, 0x1.3a92a4p-12f, 0x1.99999ap-4f, 0x1p+0f, 0x1.ccccccp-1f, 0x1.e66666p-1f,  \
     0x1.5798eep-27f, 7u, {1, 8192, 164, 4, 5, 1}, 1, {1, 4096, 205, 1, 3, 1}, 0x1p+0f,     \
     0x1p+0f, POLICY_AVERAGE_MEMBERS}
#define SPARSE(round)       /* no warm-up, no downlink, the sparse-uplink knobs */          \
    {"sparse.yaml", round, {256, 64, 6, 6, 192}, 2731008, 5, 8, 64, 0, 0x1.0624dep-10f,     \
     0x1.47ae14p-7f, 0x1p+0f, 0x1.ccccccp-1f, 0x1.e66666p-1f, 0x1.5798eep-27f, 1337u,      \
     {1, 4096, 41, 1, 3, 1}, 0, {0, 0, 0, 0, 0, 0}, 0x1.ccccccp-1f, 0x1p+1f,               \
     POLICY_AVERAGE_SENDERS}
static const struct expect expected[] = {
    DEMO(1, 64), DEMO(2, 64), DEMO(12, 64),
    D124(1, 4096), D124(2, 4096), D124(3, 41), D124(400, 41),
    D355(1), D355(600),
    SPARSE(1), SPARSE(48),
};

#define SAME(field, fmt)                                                                    \
    do {                                                                                    \
        if (got.field != want->field)                                                       \
            fail_msg("%s round %llu: " #field " is " fmt ", was " fmt, want->file,          \
                     (unsigned long long)want->round, got.field, want->field);              \
    } while (0)

static void same_codec(const struct expect *want, const char *link,
                       const struct codec_params *g, const struct codec_params *w)
{
    if (g->format_version != w->format_version || g->block_size != w->block_size ||
        g->k_per_block != w->k_per_block || g->quant != w->quant ||
        g->zstd_level != w->zstd_level || g->error_feedback != w->error_feedback)
        fail_msg("%s round %llu: %s codec is {%u, %u, %u, %d, %d, %d}, was {%u, %u, %u, %d, "
                 "%d, %d}", want->file, (unsigned long long)want->round, link,
                 g->format_version, g->block_size, g->k_per_block, (int)g->quant,
                 g->zstd_level, g->error_feedback, w->format_version, w->block_size,
                 w->k_per_block, (int)w->quant, w->zstd_level, w->error_feedback);
}

static void plan_is_what_the_task_carried_for_the_examples(void **state)
{
    (void)state;
    int demo_seen = 0;
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
        const struct expect *want = &expected[i];
        char path[1024];
        if (access(example_path(want->file, path, sizeof path), R_OK) != 0 &&
            strcmp(want->file, "demo.yaml") != 0) {
            print_message("%s is no longer an example; its expected plans are skipped\n",
                          want->file);
            continue;
        }
        demo_seen |= strcmp(want->file, "demo.yaml") == 0;
        struct policy p;
        load_example(want->file, &p);
        struct policy_round_plan got;
        char why[300] = "";
        if (policy_round_plan(&p, want->round, &got, why, sizeof why) != 0)
            fail_msg("%s round %llu: %s", want->file, (unsigned long long)want->round, why);
        SAME(round, "%llu");
        SAME(model.vocab_size, "%d");
        SAME(model.max_seq_len, "%d");
        SAME(model.n_layer, "%d");
        SAME(model.n_head, "%d");
        SAME(model.n_embd, "%d");
        SAME(n_params, "%zu");
        SAME(local_steps, "%u");
        SAME(batch_size, "%u");
        SAME(seq_len, "%u");
        SAME(warmup_steps, "%u");
        SAME(lr, "%a");
        SAME(weight_decay, "%a");
        SAME(grad_clip, "%a");
        SAME(beta1, "%a");
        SAME(beta2, "%a");
        SAME(eps, "%a");
        SAME(seed, "%llu");
        same_codec(want, "uplink", &got.uplink, &want->uplink);
        SAME(downlink_on, "%d");
        same_codec(want, "downlink", &got.downlink, &want->downlink);
        SAME(error_feedback_decay, "%a");
        SAME(sparse_scale, "%a");
        SAME(average, "%d");
        policy_free(&p);
    }
    assert_true(demo_seen);
}

/* Every round of every example (those added later too) has a plan; only k_per_block
 * changes between rounds, and a link is dense exactly in its warm-up rounds. */
static void every_round_has_a_plan_dense_in_its_warm_up(void **state)
{
    (void)state;
    char pattern[1024];
    glob_t g;
    assert_int_equal(glob(example_path("*.yaml", pattern, sizeof pattern), 0, NULL, &g), 0);
    int policies = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        if (strstr(g.gl_pathv[i], "/site-") || !strncmp(g.gl_pathv[i], "site-", 5))
            continue;   /* site policies */
        struct policy p;
        struct policy_error err;
        if (policy_load_file(g.gl_pathv[i], &p, &err) != 0)
            fail_msg("%s", err.message);
        policies++;
        struct policy_round_plan first, r;
        char why[300];
        assert_int_equal(policy_round_plan(&p, 1, &first, why, sizeof why), 0);
        const struct policy_link *up = &p.compression.uplink, *down = &p.compression.downlink;
        for (uint64_t round = 1; round <= p.training.rounds; round++) {
            if (policy_round_plan(&p, round, &r, why, sizeof why) != 0)
                fail_msg("%s round %llu: %s", g.gl_pathv[i], (unsigned long long)round, why);
            int up_dense = round <= up->dense_warmup_rounds || up->method == POLICY_COMPRESS_NONE;
            assert_int_equal(r.uplink.k_per_block, up_dense ? up->block_size : up->k_per_block);
            if (r.downlink_on) {
                int dense = round <= down->dense_warmup_rounds ||
                            down->method == POLICY_COMPRESS_NONE;
                assert_int_equal(r.downlink.k_per_block,
                                 dense ? down->block_size : down->k_per_block);
            }
            /* the rest is the first round's */
            r.round = first.round;
            r.uplink.k_per_block = first.uplink.k_per_block;
            r.downlink.k_per_block = first.downlink.k_per_block;
            assert_memory_equal(&r, &first, sizeof r);
        }
        policy_free(&p);
    }
    globfree(&g);
    assert_true(policies >= 2);
}

/* A refusal: rc, *out all zero, and why containing each of the words. */
static void expect_refusal(const struct policy *p, uint64_t round, int rc, const char *w1,
                           const char *w2)
{
    struct policy_round_plan out;
    memset(&out, 0xa5, sizeof out);
    char why[300] = "";
    assert_int_equal(policy_round_plan(p, round, &out, why, sizeof why), rc);
    static const struct policy_round_plan zero;
    assert_memory_equal(&out, &zero, sizeof out);
    if (!strstr(why, w1) || (w2 && !strstr(why, w2)))
        fail_msg("the reason \"%s\" does not say \"%s\"%s%s", why, w1, w2 ? " and " : "",
                 w2 ? w2 : "");
    print_message("refused: %s\n", why);
}

static void what_cannot_be_planned_is_refused_with_the_reason(void **state)
{
    (void)state;
    struct policy p;
    load_example("demo.yaml", &p);
    struct policy_round_plan out;
    char why[300] = "";
    assert_int_equal(policy_round_plan(NULL, 1, &out, why, sizeof why), POLICY_ERR_ARG);
    assert_true(why[0] != '\0');
    assert_int_equal(policy_round_plan(&p, 1, NULL, NULL, 0), POLICY_ERR_ARG);

    expect_refusal(&p, 0, POLICY_ERR_RANGE, "round 0", "1..12 (training.rounds)");
    expect_refusal(&p, 13, POLICY_ERR_RANGE, "round 13", "1..12 (training.rounds)");
    assert_int_equal(policy_round_plan(&p, 13, &out, NULL, 0), POLICY_ERR_RANGE);  /* no why */

    /* Values a loaded policy never has (the parser refuses them): the plan still checks
     * what the coordinator checked before it ran an experiment. */
    struct policy bad = p;
    bad.model.n_head = 5;   /* n_embd 96 */
    expect_refusal(&bad, 1, POLICY_ERR_INVALID, "model:", "n_head 5");
    bad = p;
    bad.model.n_layer = 0;
    expect_refusal(&bad, 1, POLICY_ERR_INVALID, "model:", "n_layer 0");
    bad = p;
    bad.compression.uplink.zstd_level = 23;
    expect_refusal(&bad, 2, POLICY_ERR_INVALID, "compression.uplink: ", "zstd_level 23");
    /* ... in its dense warm-up round too: every round of a policy is planned, or none */
    expect_refusal(&bad, 1, POLICY_ERR_INVALID, "compression.uplink: ", "zstd_level 23");
    bad = p;
    bad.compression.uplink.block_size = 0;
    expect_refusal(&bad, 2, POLICY_ERR_INVALID, "compression.uplink: ", "block_size 0");
    bad = p;
    bad.compression.downlink.quant = (enum codec_quant)99;
    expect_refusal(&bad, 1, POLICY_ERR_INVALID, "compression.downlink: ", "quant 99");

    /* A downlink that is off is not a codec: nothing of it is checked or planned. */
    bad = p;
    bad.compression.downlink.method = POLICY_COMPRESS_NONE;
    bad.compression.downlink.quant = CODEC_QUANT_FP32;
    bad.compression.downlink.zstd_level = 99;
    assert_int_equal(policy_round_plan(&bad, 1, &out, why, sizeof why), 0);
    assert_int_equal(out.downlink_on, 0);
    assert_int_equal(out.downlink.block_size, 0);
    /* ... and a dense downlink in another precision is on. */
    bad.compression.downlink.quant = CODEC_QUANT_FP16;
    bad.compression.downlink.zstd_level = 1;
    assert_int_equal(policy_round_plan(&bad, 1, &out, why, sizeof why), 0);
    assert_int_equal(out.downlink_on, 1);
    assert_int_equal(out.downlink.k_per_block, out.downlink.block_size);
    policy_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plan_is_what_the_task_carried_for_the_examples),
        cmocka_unit_test(every_round_has_a_plan_dense_in_its_warm_up),
        cmocka_unit_test(what_cannot_be_planned_is_refused_with_the_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
