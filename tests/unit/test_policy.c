/* Unit tests for policies/: the examples parse, the hash ignores formatting and follows
 * values, every kind of malformed policy is refused with file:line:col and key path,
 * and site policies refuse what they do not allow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/gpt2.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "policies/roster.h"
#include "policies/site.h"
#include "privacy/rdp.h"

/* The source tree: $AULAC_SRCDIR, else found from this file's path or from the test
 * binary's (build/tests/test_policy), so the test runs from any directory. */
static char root[2100];
static int has_examples(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/policies/examples/demo.yaml", dir);
    FILE *f = fopen(p, "r");
    if (f)
        fclose(f);
    return f != NULL;
}
static void find_root(void)
{
    const char *env = getenv("AULAC_SRCDIR");
    if (env && has_examples(env)) {
        snprintf(root, sizeof root, "%s/", env);
        return;
    }
    const char *f = __FILE__;
    const char *tail = strstr(f, "tests/unit/test_policy.c");
    char dir[1024];
    snprintf(dir, sizeof dir, "%.*s.", (int)(tail ? tail - f : 0), f);
    if (has_examples(dir)) {
        snprintf(root, sizeof root, "%s/", dir);
        return;
    }
    char exe[900] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    for (int up = 0; up < 4; up++) {
        char *slash = strrchr(exe, '/');
        if (!slash)
            break;
        *slash = '\0';
        if (has_examples(exe)) {
            snprintf(root, sizeof root, "%s/", exe);
            return;
        }
    }
    snprintf(root, sizeof root, "./");
}
static const char *path_of(const char *rel)
{
    static char buf[2400];
    snprintf(buf, sizeof buf, "%s%s", root, rel);
    return buf;
}

static const char *minimal =
    "schema: 1\n"
    "metadata:\n"
    "  name: t\n"
    "model:\n"
    "  n_positions: 64\n"
    "  n_layer: 2\n"
    "  n_head: 4\n"
    "  n_embd: 64\n"
    "training:\n"
    "  rounds: 3\n";

static int load(const char *text, struct policy *p, struct policy_error *e)
{
    return policy_load_buffer("t.yaml", text, strlen(text), p, e);
}

static void hash_of(const char *text, uint8_t h[32])
{
    struct policy p;
    struct policy_error e;
    int rc = load(text, &p, &e);
    if (rc)
        fail_msg("did not parse: %s", e.message);
    assert_int_equal(policy_hash(&p, h), 0);
    policy_free(&p);
}

/* The canonical text of a policy that must load; caller frees. */
static char *canonical_of(const char *text)
{
    struct policy p;
    struct policy_error e;
    char *canon;
    size_t len;
    if (load(text, &p, &e))
        fail_msg("did not parse: %s", e.message);
    assert_int_equal(policy_canonical(&p, &canon, &len), 0);
    assert_int_equal(strlen(canon), len);
    policy_free(&p);
    return canon;
}

/* The experiment id: name and the first 8 hex of the hash, the name cut so the id
 * stays within the 64-byte id rule. */
static void test_experiment_id(void **state)
{
    (void)state;
    struct policy p;
    memset(&p, 0, sizeof p);
    uint8_t h[32];
    for (int i = 0; i < 32; i++)
        h[i] = (uint8_t)(0xc0 + i);
    strcpy(p.metadata.name, "demo");
    char id[POLICY_EXPERIMENT_ID_MAX + 1];
    assert_int_equal(policy_experiment_id(&p, h, id, sizeof id), 0);
    assert_string_equal(id, "demo-c0c1c2c3");
    memset(p.metadata.name, 'a', POLICY_NAME_MAX);
    p.metadata.name[POLICY_NAME_MAX] = 0;
    assert_int_equal(policy_experiment_id(&p, h, id, sizeof id), 0);
    assert_int_equal(strlen(id), 64);
    assert_string_equal(id + 55, "-c0c1c2c3");
    assert_int_equal(policy_experiment_id(&p, h, id, 10), POLICY_ERR_ARG);
}

static void test_examples_parse(void **state)
{
    (void)state;
    struct policy p;
    struct policy_error e;
    /* every example: site-*.yaml are site policies, the rest experiments */
    glob_t g;
    char pattern[2500];
    snprintf(pattern, sizeof pattern, "%spolicies/examples/*.yaml", root);
    assert_int_equal(glob(pattern, 0, NULL, &g), 0);
    size_t experiments = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *base = strrchr(g.gl_pathv[i], '/') + 1;
        int rc;
        if (strncmp(base, "site-", 5) == 0) {
            struct site_policy s;
            rc = site_load_file(g.gl_pathv[i], &s, &e);
            site_policy_free(&s);
        } else {
            rc = policy_load_file(g.gl_pathv[i], &p, &e);
            if (!rc) {
                uint8_t h[32];
                assert_int_equal(policy_hash(&p, h), 0);
                policy_free(&p);
                experiments++;
            }
        }
        if (rc)
            fail_msg("%s: %s", g.gl_pathv[i], e.message);
    }
    print_message("%zu example files parse (%zu experiments)\n", g.gl_pathc, experiments);
    assert_true(experiments >= 5);
    globfree(&g);

    assert_int_equal(policy_load_file(path_of("policies/examples/demo.yaml"), &p, &e), 0);
    assert_string_equal(p.metadata.name, "demo-gpt2-bytes");
    assert_string_equal(p.metadata.proposer, "hust");
    assert_int_equal(p.participation.n_members, 3);
    assert_string_equal(p.participation.members[0], "fpt");
    assert_string_equal(p.participation.members[1], "vnpt");
    assert_string_equal(p.participation.members[2], "hust");
    assert_int_equal(p.model.family, POLICY_FAMILY_GPT2);
    assert_int_equal(p.model.vocab_size, 256);
    assert_true(p.model.n_layer >= 2 && p.model.n_layer <= 4);
    assert_true(p.model.n_embd >= 64 && p.model.n_embd <= 128);
    assert_int_equal(p.model.n_head, 4);
    assert_true(p.training.seq_len >= 64 && p.training.seq_len <= 128);
    assert_true(p.training.rounds >= 10);
    assert_int_equal(p.training.local_steps, 20);
    /* the demo recipe (bench/README.md, "Demo recipe"): FedAvg, 6.25 % uplinks with the
     * sparse-uplink knobs, no dense warm-up */
    assert_int_equal(p.training.outer.kind, POLICY_OUTER_FEDAVG);
    assert_true(p.training.outer.lr == 1.0 && p.training.outer.momentum == 0);
    assert_int_equal(p.compression.uplink.method, POLICY_COMPRESS_TOPK);
    assert_int_equal(p.compression.uplink.quant, CODEC_QUANT_INT8);
    assert_true(p.compression.uplink.error_feedback);
    assert_true(p.compression.uplink.error_feedback_decay == 0.9);
    assert_int_equal(p.compression.uplink.average, POLICY_AVERAGE_SENDERS);
    assert_int_equal(p.compression.uplink.dense_warmup_rounds, 0);
    struct policy_round_plan plan;   /* tests/unit/test_plan.c: the plans of every example */
    assert_int_equal(policy_round_plan(&p, p.training.rounds, &plan, NULL, 0), 0);
    assert_int_equal(plan.uplink.k_per_block, p.compression.uplink.k_per_block);
    assert_int_equal(policy_member_index(&p, "vnpt"), 1);
    assert_int_equal(policy_member_index(&p, "viettel"), -1);
    policy_free(&p);
    policy_free(&p);    /* twice is harmless */

    assert_int_equal(policy_load_file(path_of("policies/examples/gpt2-124m-diloco.yaml"), &p,
                                      &e), 0);
    assert_int_equal(policy_model_parameters(&p.model), 124439808u);
    assert_int_equal(p.compression.uplink.k_per_block, 41);     /* density 0.01 of 4096 */
    assert_int_equal(p.aggregation.rule, POLICY_AGG_CLIP);
    assert_true(p.aggregation.norm_bound == 50.0 && p.aggregation.norm_cap == 500.0);
    assert_int_equal(p.compression.downlink.quant, CODEC_QUANT_FP16);
    assert_int_equal(p.privacy.enabled, 0);
    policy_free(&p);

    /* the defences together: clipping with a cap, and DP with a budget */
    assert_int_equal(policy_load_file(path_of("policies/examples/gpt2-355m-robust-dp.yaml"), &p,
                                      &e), 0);
    assert_int_equal(policy_model_parameters(&p.model), 354823168u);
    assert_int_equal(p.aggregation.rule, POLICY_AGG_CLIP);
    assert_int_equal(p.aggregation.weighting, POLICY_WEIGHT_UNIFORM);
    assert_int_equal(p.privacy.enabled, 1);
    assert_true(p.privacy.clip == 1.0 && p.privacy.noise_multiplier == 5.0);
    assert_true(p.privacy.delta == 1e-5 && p.privacy.target_epsilon == 10.0);
    assert_int_equal(p.contribution.measures, 1u << POLICY_MEASURE_TOKENS |
                     1u << POLICY_MEASURE_ROUNDS | 1u << POLICY_MEASURE_BYTES);
    policy_free(&p);

    assert_int_equal(policy_load_file(path_of("policies/examples/sparse.yaml"), &p, &e), 0);
    assert_int_equal(p.compression.uplink.method, POLICY_COMPRESS_TOPK);
    assert_true(p.compression.uplink.k_per_block < p.compression.uplink.block_size);
    assert_true(p.compression.uplink.error_feedback);
    assert_true(p.compression.uplink.error_feedback_decay == 0.9);
    assert_int_equal(p.compression.uplink.average, POLICY_AVERAGE_SENDERS);
    assert_true(p.compression.uplink.sparse_scale == 2.0);
    policy_free(&p);
}

static void test_defaults(void **state)
{
    (void)state;
    struct policy p;
    struct policy_error e;
    assert_int_equal(load(minimal, &p, &e), 0);
    assert_int_equal(p.schema, 1);
    assert_string_equal(p.metadata.proposer, "");
    assert_string_equal(p.metadata.description, "");
    assert_int_equal(p.model.vocab_size, 256);
    assert_int_equal(p.training.seq_len, 64);
    assert_int_equal(p.training.local_steps, 100);
    assert_int_equal(p.training.outer.kind, POLICY_OUTER_FEDAVG);
    assert_true(p.training.outer.lr == 1.0 && p.training.outer.momentum == 0.0);
    assert_int_equal(p.aggregation.rule, POLICY_AGG_FEDAVG);
    assert_int_equal(p.aggregation.weighting, POLICY_WEIGHT_TOKENS);
    assert_int_equal(p.compression.uplink.block_size, 4096);
    assert_int_equal(p.compression.uplink.k_per_block, 41);
    assert_int_equal(p.compression.downlink.method, POLICY_COMPRESS_NONE);
    assert_int_equal(p.compression.downlink.k_per_block, 4096);
    assert_true(p.compression.uplink.error_feedback_decay == 1.0);
    assert_int_equal(p.compression.uplink.average, POLICY_AVERAGE_MEMBERS);
    assert_true(p.compression.uplink.sparse_scale == 1.0);
    assert_true(p.compression.downlink.error_feedback_decay == 1.0);
    assert_int_equal(p.compression.downlink.average, POLICY_AVERAGE_MEMBERS);
    assert_true(p.compression.downlink.sparse_scale == 1.0);
    assert_int_equal(p.participation.n_members, 0);
    assert_int_equal(p.participation.min_members, 1);
    assert_true(policy_all_members(&p));
    assert_true(p.training.inner.eps == 1e-8);
    policy_free(&p);

    /* nesterov brings its own lr and momentum; integral floats are integers */
    char buf[1024];
    snprintf(buf, sizeof buf, "%s  outer:\n    kind: nesterov\n  local_steps: 1e2\n", minimal);
    assert_int_equal(load(buf, &p, &e), 0);
    assert_true(p.training.outer.lr == 0.4 && p.training.outer.momentum == 0.9);
    assert_int_equal(p.training.local_steps, 100);
    policy_free(&p);

    /* model.seq_len is another name for model.n_positions */
    const char *alias = "schema: 1\nmetadata: {name: t}\n"
                        "model: {seq_len: 128, n_layer: 1, n_head: 2, n_embd: 8}\n"
                        "training: {rounds: 1}\n";
    assert_int_equal(load(alias, &p, &e), 0);
    assert_int_equal(p.model.n_positions, 128);
    policy_free(&p);
}

/* Same policy, written differently: comments, key order, flow style, quoting, number
 * spelling, list order, defaults spelled out. */
static const char *demo_a =
    "schema: 1\n"
    "metadata:\n"
    "  name: demo\n"
    "  proposer: hust\n"
    "  description: a small run\n"
    "model:\n"
    "  family: gpt2\n"
    "  n_positions: 64\n"
    "  n_layer: 2\n"
    "  n_head: 4\n"
    "  n_embd: 64\n"
    "training:\n"
    "  rounds: 12\n"
    "  local_steps: 20\n"
    "  inner:\n"
    "    lr: 0.003\n"
    "  outer:\n"
    "    kind: nesterov\n"
    "    lr: 0.7\n"
    "    momentum: 0.9\n"
    "compression:\n"
    "  uplink:\n"
    "    method: topk\n"
    "    block_size: 1024\n"
    "    k_per_block: 64\n"
    "participation:\n"
    "  members: [fpt, vnpt, hust]\n"
    "  min_members: 2\n";

static const char *demo_b =
    "# the same experiment\n"
    "participation: {min_members: 2, members: [hust, fpt, vnpt]}   # set order\n"
    "training:\n"
    "  outer: {momentum: 9e-1, lr: .70, kind: \"nesterov\"}\n"
    "  inner:\n"
    "      lr: 3.0e-3\n"
    "      kind: adamw        # the default, spelled out\n"
    "  local_steps: 0x14\n"
    "  rounds: 12\n"
    "compression:\n"
    "  uplink:\n"
    "    density: 0.0625      # 64 of 1024\n"
    "    block_size: 1024\n"
    "    method: 'topk'\n"
    "    quant: int8\n"
    "model: {n_embd: 64, n_head: 4, n_layer: 2, seq_len: 64, vocab_size: 256}\n"
    "metadata:\n"
    "  description: \"a small run\"\n"
    "  proposer: hust\n"
    "  name: demo\n"
    "schema: 1\n";

static void test_hash_invariance(void **state)
{
    (void)state;
    uint8_t a[32], b[32], c[32];
    hash_of(demo_a, a);
    hash_of(demo_b, b);
    assert_memory_equal(a, b, 32);

    /* a byte-order mark and Windows line endings change nothing either */
    char crlf[4096] = "\xef\xbb\xbf";
    size_t o = 3;
    for (const char *c = demo_a; *c; c++) {
        if (*c == '\n')
            crlf[o++] = '\r';
        crlf[o++] = *c;
    }
    crlf[o] = '\0';
    hash_of(crlf, c);
    assert_memory_equal(a, c, 32);

    /* any value change changes the hash */
    const char *changes[][2] = {
        {"  rounds: 12\n", "  rounds: 13\n"},
        {"    lr: 0.7\n", "    lr: 0.71\n"},
        {"  members: [fpt, vnpt, hust]\n", "  members: [fpt, vnpt, viettel]\n"},
        {"  description: a small run\n", "  description: a smaller run\n"},
        {"    k_per_block: 64\n", "    k_per_block: 65\n"},
        {"  name: demo\n", "  name: demo2\n"},
    };
    for (size_t i = 0; i < sizeof changes / sizeof *changes; i++) {
        char buf[2048];
        const char *at = strstr(demo_a, changes[i][0]);
        assert_non_null(at);
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - demo_a), demo_a, changes[i][1],
                 at + strlen(changes[i][0]));
        hash_of(buf, c);
        if (memcmp(a, c, 32) == 0)
            fail_msg("changing %s did not change the hash", changes[i][0]);
    }

    /* the uplink's decay, average and sparse scale: defaults spelled out change nothing,
     * any other value changes the hash and shows in the canonical text */
    const char *uplink_at = "    k_per_block: 64\n";
    const char *after = strstr(demo_a, uplink_at);
    assert_non_null(after);
    after += strlen(uplink_at);
    const char *tuned[][2] = {
        {"    error_feedback_decay: 1\n    average: members\n    sparse_scale: 1.0\n", NULL},
        {"    error_feedback_decay: 0.8\n", "compression.uplink.error_feedback_decay=0.8"},
        {"    average: senders\n", "compression.uplink.average=senders"},
        {"    sparse_scale: 2\n", "compression.uplink.sparse_scale=2"},
    };
    for (size_t i = 0; i < sizeof tuned / sizeof *tuned; i++) {
        char buf[2048];
        snprintf(buf, sizeof buf, "%.*s%s%s", (int)(after - demo_a), demo_a, tuned[i][0],
                 after);
        hash_of(buf, c);
        if ((memcmp(a, c, 32) == 0) != (tuned[i][1] == NULL))
            fail_msg("%s: the hash %s", tuned[i][0],
                     tuned[i][1] ? "did not change" : "changed for a default");
        char *text = canonical_of(buf);
        if (tuned[i][1] && !strstr(text, tuned[i][1]))
            fail_msg("the canonical text lacks %s", tuned[i][1]);
        if (!tuned[i][1] && (!strstr(text, "\ncompression.uplink.average=members\n") ||
                             !strstr(text, "\ncompression.uplink.error_feedback_decay=1\n") ||
                             !strstr(text, "\ncompression.uplink.sparse_scale=1\n")))
            fail_msg("the canonical text lacks the uplink defaults");
        assert_null(strstr(text, "compression.downlink.average"));
        free(text);
    }

    /* the canonical text itself */
    struct policy p;
    struct policy_error e;
    assert_int_equal(load(demo_b, &p, &e), 0);
    char *canon;
    size_t len;
    assert_int_equal(policy_canonical(&p, &canon, &len), 0);
    assert_int_equal(strlen(canon), len);
    assert_memory_equal(canon, "aulac-policy-canonical/v4\n", 26);
    assert_non_null(strstr(canon, "\ntraining.outer.lr=0.7\n"));
    assert_non_null(strstr(canon, "\ntraining.inner.lr=0.003\n"));
    assert_non_null(strstr(canon, "\nparticipation.members=fpt,hust,vnpt\n"));
    assert_non_null(strstr(canon, "\ncompression.uplink.k_per_block=64\n"));
    assert_null(strstr(canon, "density"));
    /* keys in byte order */
    const char *prev = NULL;
    for (char *line = strchr(canon, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        if (prev) {
            size_t lp = strcspn(prev, "="), ll = strcspn(line, "=");
            int cmp = memcmp(prev, line, lp < ll ? lp : ll);
            assert_true(cmp < 0 || (cmp == 0 && lp < ll));
        }
        prev = line;
    }
    free(canon);
    policy_free(&p);
}

/* The vector of policies/README.md ("Canonical encoding and hash"): the minimal policy's
 * canonical text, byte for byte, and its BLAKE2b-256 (b2sum -l 256 agrees). */
static void test_canonical_vector(void **state)
{
    (void)state;
    static const char want[] =
    "aulac-policy-canonical/v4\n"
    "aggregation.byzantine=0\n"
    "aggregation.norm_bound=0\n"
    "aggregation.norm_cap=0\n"
    "aggregation.rule=fedavg\n"
    "aggregation.select=0\n"
    "aggregation.trim=0\n"
    "aggregation.weighting=tokens\n"
    "compression.downlink.block_size=4096\n"
    "compression.downlink.dense_warmup_rounds=0\n"
    "compression.downlink.error_feedback=false\n"
    "compression.downlink.k_per_block=4096\n"
    "compression.downlink.method=none\n"
    "compression.downlink.quant=fp32\n"
    "compression.downlink.zstd_level=3\n"
    "compression.uplink.average=members\n"
    "compression.uplink.block_size=4096\n"
    "compression.uplink.dense_warmup_rounds=0\n"
    "compression.uplink.error_feedback=true\n"
    "compression.uplink.error_feedback_decay=1\n"
    "compression.uplink.k_per_block=41\n"
    "compression.uplink.method=topk\n"
    "compression.uplink.quant=int8\n"
    "compression.uplink.sparse_scale=1\n"
    "compression.uplink.zstd_level=3\n"
    "contribution.credit_weights.alignment=1\n"
    "contribution.credit_weights.bytes=1\n"
    "contribution.credit_weights.loo=0\n"
    "contribution.credit_weights.rounds=1\n"
    "contribution.credit_weights.shapley=0\n"
    "contribution.credit_weights.tokens=1\n"
    "contribution.evaluation_set.blake2b=\n"
    "contribution.evaluation_set.name=\n"
    "contribution.evaluation_set.windows=16\n"
    "contribution.measures=alignment,bytes,rounds,tokens\n"
    "contribution.payload_retention_days=30\n"
    "contribution.shapley.budget=64\n"
    "contribution.shapley.round_truncation=0.0001\n"
    "contribution.shapley.truncation=0.01\n"
    "data.min_tokens_per_member=0\n"
    "data.validation_fraction=0.01\n"
    "metadata.description=\n"
    "metadata.name=t\n"
    "metadata.proposer=\n"
    "model.family=gpt2\n"
    "model.n_embd=64\n"
    "model.n_head=4\n"
    "model.n_layer=2\n"
    "model.n_positions=64\n"
    "model.seed=1337\n"
    "model.vocab_size=256\n"
    "participation.grace_s=30\n"
    "participation.members=*\n"
    "participation.min_members=1\n"
    "participation.round_deadline_s=600\n"
    "privacy.clip=0\n"
    "privacy.delta=0\n"
    "privacy.noise_multiplier=0\n"
    "privacy.target_epsilon=0\n"
    "schema=1\n"
    "training.batch_size=8\n"
    "training.inner.beta1=0.9\n"
    "training.inner.beta2=0.95\n"
    "training.inner.eps=1e-08\n"
    "training.inner.grad_clip=1\n"
    "training.inner.kind=adamw\n"
    "training.inner.lr=0.0006\n"
    "training.inner.warmup_steps=0\n"
    "training.inner.weight_decay=0.1\n"
    "training.local_steps=100\n"
    "training.outer.beta1=0.9\n"
    "training.outer.beta2=0.99\n"
    "training.outer.eps=0.001\n"
    "training.outer.kind=fedavg\n"
    "training.outer.lr=1\n"
    "training.outer.momentum=0\n"
    "training.rounds=3\n"
    "training.seq_len=64\n";
    char *canon = canonical_of(minimal);
    assert_string_equal(canon, want);
    uint8_t h[32];
    hash_of(minimal, h);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    assert_string_equal(hex, "e106225d1112d7a0b2a4e9226a9be87d6ded17d5c1e26649519e2bc10d3d8d55");
    free(canon);
}

struct diff_seen {
    char line[8][160];
    size_t n, stop_at;
};

static int collect_diff(const char *path, const char *a, const char *b, void *arg)
{
    struct diff_seen *d = arg;
    if (d->n < 8)
        snprintf(d->line[d->n], sizeof d->line[0], "%s: %s -> %s", path, a ? a : "(absent)",
                 b ? b : "(absent)");
    return ++d->n == d->stop_at ? 42 : 0;
}

static char *replaced(const char *text, const char *const (*edits)[2], size_t n)
{
    char *out = strdup(text);
    for (size_t i = 0; i < n && out; i++) {
        char *at = strstr(out, edits[i][0]);
        assert_non_null(at);
        size_t len = strlen(out) - strlen(edits[i][0]) + strlen(edits[i][1]) + 1;
        char *next = malloc(len);
        assert_non_null(next);
        snprintf(next, len, "%.*s%s%s", (int)(at - out), out, edits[i][1],
                 at + strlen(edits[i][0]));
        free(out);
        out = next;
    }
    return out;
}

/* policy_diff: nothing for the same policy written differently; each changed key once,
 * in key order, with canonical values (members: all is "*"); the callback can stop it. */
static void test_policy_diff(void **state)
{
    (void)state;
    struct policy a, b;
    struct policy_error e;
    struct diff_seen d = {0};
    size_t n = 99;
    assert_int_equal(load(demo_a, &a, &e), 0);
    assert_int_equal(load(demo_b, &b, &e), 0);
    assert_int_equal(policy_diff(&a, &b, collect_diff, &d, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(d.n, 0);
    policy_free(&b);

    static const char *const edits[][2] = {
        {"  rounds: 12\n", "  rounds: 24\n"},
        {"    lr: 0.003\n", "    lr: 1e-3\n"},
        {"  members: [fpt, vnpt, hust]\n", "  members: all\n"},
        {"  description: a small run\n", "  description: \"two\\nlines\"\n"},
        {"    k_per_block: 64\n", "    density: 0.0625\n"},   /* the same k: no difference */
    };
    char *text = replaced(demo_a, edits, sizeof edits / sizeof *edits);
    assert_int_equal(load(text, &b, &e), 0);
    assert_int_equal(policy_diff(&a, &b, collect_diff, &d, &n), 0);
    const char *want[] = {
        "metadata.description: a small run -> two\\nlines",
        "participation.members: fpt,hust,vnpt -> *",
        "training.inner.lr: 0.003 -> 0.001",
        "training.rounds: 12 -> 24",
    };
    assert_int_equal(n, 4);
    assert_int_equal(d.n, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(d.line[i], want[i]);
    uint8_t ha[32], hb[32];
    assert_int_equal(policy_hash(&a, ha), 0);
    assert_int_equal(policy_hash(&b, hb), 0);
    assert_memory_not_equal(ha, hb, 32);
    /* the other way round, counting only; and a callback that stops at the second */
    assert_int_equal(policy_diff(&b, &a, NULL, NULL, &n), 0);
    assert_int_equal(n, 4);
    struct diff_seen stop = {.stop_at = 2};
    assert_int_equal(policy_diff(&a, &b, collect_diff, &stop, &n), 42);
    assert_int_equal(n, 2);
    assert_string_equal(stop.line[1], "participation.members: fpt,hust,vnpt -> *");
    assert_int_equal(policy_diff(NULL, &b, collect_diff, &d, &n), POLICY_ERR_ARG);
    assert_int_equal(n, 0);
    free(text);
    policy_free(&a);
    policy_free(&b);
}

struct bad_case {
    const char *yaml;
    int code;
    const char *message;    /* the whole message */
};

#define HEAD "schema: 1\nmetadata:\n  name: t\n"
#define MODEL "model:\n  n_positions: 64\n  n_layer: 2\n  n_head: 4\n  n_embd: 64\n"

static const struct bad_case bad_cases[] = {
    /* wrong type */
    {HEAD MODEL "training:\n  rounds: 3\n  local_steps: ten\n", POLICY_ERR_TYPE,
     "t.yaml:11:16: training.local_steps: expected a positive integer, got \"ten\""},
    {HEAD MODEL "training:\n  rounds: \"3\"\n", POLICY_ERR_TYPE,
     "t.yaml:10:12: training.rounds: expected a positive integer, got \"3\""},
    {HEAD MODEL "training:\n  rounds: 2.5\n", POLICY_ERR_TYPE,
     "t.yaml:10:11: training.rounds: expected a positive integer, got a fraction: 2.5"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    error_feedback: yes\n",
     POLICY_ERR_TYPE,
     "t.yaml:13:21: compression.uplink.error_feedback: expected true or false, got \"yes\""},
    {HEAD "model: 5\ntraining:\n  rounds: 3\n", POLICY_ERR_TYPE,
     "t.yaml:4:8: model: expected a mapping of keys, got 5"},
    {"- schema\n- 1\n", POLICY_ERR_TYPE, "t.yaml:1:1: expected a mapping of keys, got a list"},
    {HEAD MODEL "training:\n  rounds: 3\n  inner:\n    lr: fast\n", POLICY_ERR_TYPE,
     "t.yaml:12:9: training.inner.lr: expected a number, got \"fast\""},
    {HEAD MODEL "training:\n  rounds: 3\nparticipation:\n  members: fpt\n", POLICY_ERR_TYPE,
     "t.yaml:12:12: participation.members: expected all or a list of ids, got \"fpt\""},
    {HEAD MODEL "training:\n  rounds: 3\nparticipation:\n  members:\n", POLICY_ERR_TYPE,
     "t.yaml:12:3: participation.members: expected all or a list of ids, got null"},
    /* out of range */
    {HEAD MODEL "training:\n  rounds: 0\n", POLICY_ERR_RANGE,
     "t.yaml:10:11: training.rounds: expected an integer in [1, 10000000], got 0"},
    {HEAD MODEL "training:\n  rounds: -4\n", POLICY_ERR_RANGE,
     "t.yaml:10:11: training.rounds: expected an integer in [1, 10000000], got -4"},
    {HEAD MODEL "training:\n  rounds: 3\n  inner:\n    lr: -1e-3\n", POLICY_ERR_RANGE,
     "t.yaml:12:9: training.inner.lr: expected a number in (0, 10], got -1e-3"},
    {HEAD MODEL "training:\n  rounds: 3\n  inner:\n    beta2: 1\n", POLICY_ERR_RANGE,
     "t.yaml:12:12: training.inner.beta2: expected a number in [0, 1), got 1"},
    {HEAD MODEL "training:\n  rounds: 3\naggregation:\n  norm_bound: .inf\n", POLICY_ERR_RANGE,
     "t.yaml:12:15: aggregation.norm_bound: expected a finite number >= 0, got \".inf\""},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    quant: int3\n",
     POLICY_ERR_RANGE,
     "t.yaml:13:12: compression.uplink.quant: expected one of fp32, int8, fp16, fp8, int4, "
     "got \"int3\""},
    {"schema: 1\nmetadata:\n  name: Demo\n" MODEL "training:\n  rounds: 3\n", POLICY_ERR_RANGE,
     "t.yaml:3:9: metadata.name: expected a name of 1 to 64 characters from [a-z0-9._-] "
     "starting with a letter or digit, got \"Demo\""},
    {"schema: 2\nmetadata:\n  name: t\n" MODEL "training:\n  rounds: 3\n", POLICY_ERR_RANGE,
     "t.yaml:1:9: schema: schema version 2 is not supported (this aulac reads version 1)"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    error_feedback_decay: 0\n",
     POLICY_ERR_RANGE,
     "t.yaml:13:27: compression.uplink.error_feedback_decay: expected a number in (0, 1], got 0"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    error_feedback_decay: 1.5\n",
     POLICY_ERR_RANGE,
     "t.yaml:13:27: compression.uplink.error_feedback_decay: expected a number in (0, 1], "
     "got 1.5"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    sparse_scale: 0\n",
     POLICY_ERR_RANGE,
     "t.yaml:13:19: compression.uplink.sparse_scale: expected a number in (0, 100], got 0"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    sparse_scale: 101\n",
     POLICY_ERR_RANGE,
     "t.yaml:13:19: compression.uplink.sparse_scale: expected a number in (0, 100], got 101"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    average: foo\n",
     POLICY_ERR_RANGE,
     "t.yaml:13:14: compression.uplink.average: expected one of members, senders, got \"foo\""},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    error_feedback: false\n"
     "    error_feedback_decay: 0.9\n", POLICY_ERR_INVALID,
     "t.yaml:14:27: compression.uplink.error_feedback_decay: only meaningful with "
     "error_feedback: true (there is no residual)"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    method: none\n"
     "    error_feedback: false\n    average: senders\n", POLICY_ERR_INVALID,
     "t.yaml:15:14: compression.uplink.average: only meaningful with method: topk (method is "
     "none: every value is sent)"},
    {HEAD MODEL "training:\n  rounds: 99999999999999999999\n", POLICY_ERR_RANGE,
     "t.yaml:10:11: training.rounds: expected an integer in [1, 10000000], got "
     "99999999999999999999"},
    /* unknown and duplicate keys */
    {HEAD MODEL "  n_layers: 3\ntraining:\n  rounds: 3\n", POLICY_ERR_UNKNOWN_KEY,
     "t.yaml:9:3: model.n_layers: unknown key (did you mean \"n_layer\"?)"},
    {HEAD MODEL "training:\n  rounds: 3\nextra: 1\n", POLICY_ERR_UNKNOWN_KEY,
     "t.yaml:11:1: extra: unknown key; valid keys here: schema, metadata, model, data, "
     "training, aggregation, compression, participation, privacy, contribution"},
    /* the uplink's averaging keys mean nothing on the downlink */
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  downlink:\n    average: senders\n",
     POLICY_ERR_UNKNOWN_KEY,
     "t.yaml:13:5: compression.downlink.average: unknown key; valid keys here: method, "
     "block_size, k_per_block, density, quant, zstd_level, error_feedback, dense_warmup_rounds"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  downlink:\n"
     "    error_feedback_decay: 0.5\n", POLICY_ERR_UNKNOWN_KEY,
     "t.yaml:13:5: compression.downlink.error_feedback_decay: unknown key; valid keys here: "
     "method, block_size, k_per_block, density, quant, zstd_level, error_feedback, "
     "dense_warmup_rounds"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  downlink:\n    sparse_scale: 2\n",
     POLICY_ERR_UNKNOWN_KEY, NULL},
    {HEAD MODEL "training:\n  rounds: 3\n  rounds: 4\n", POLICY_ERR_DUPLICATE,
     "t.yaml:11:3: duplicate key \"rounds\" (first defined at line 10, column 3)"},
    {HEAD "model: {n_positions: 64, seq_len: 64, n_layer: 2, n_head: 4, n_embd: 64}\n"
     "training: {rounds: 3}\n", POLICY_ERR_DUPLICATE,
     "t.yaml:4:26: model.n_positions: \"seq_len\" sets the same value as the key at line 4, "
     "column 9; give only one"},
    {HEAD MODEL "training:\n  rounds: 3\nparticipation:\n  members: [fpt, vnpt, fpt]\n",
     POLICY_ERR_DUPLICATE, "t.yaml:12:24: participation.members: \"fpt\" is listed twice"},
    /* missing */
    {HEAD MODEL "training:\n  local_steps: 3\n", POLICY_ERR_MISSING,
     "t.yaml:10:3: training.rounds: required key is missing"},
    {"schema: 1\n" MODEL "training:\n  rounds: 3\n", POLICY_ERR_MISSING,
     "t.yaml:1:1: metadata.name: required key is missing"},
    {"", POLICY_ERR_MISSING, "t.yaml:1:1: schema: required key is missing"},
    {HEAD "model:\n  n_positions: 64\n  n_layer: 2\n  n_embd: 64\ntraining:\n  rounds: 3\n",
     POLICY_ERR_MISSING, "t.yaml:5:3: model.n_head: required key is missing"},
    /* inconsistent */
    {HEAD "model:\n  n_positions: 64\n  n_layer: 2\n  n_head: 3\n  n_embd: 64\n"
     "training:\n  rounds: 3\n", POLICY_ERR_INVALID,
     "t.yaml:8:11: model.n_embd: n_embd 64 is not divisible by n_head 3"},
    {HEAD MODEL "training:\n  rounds: 3\nparticipation:\n  members: [fpt, vnpt]\n"
     "  min_members: 3\n", POLICY_ERR_INVALID,
     "t.yaml:13:16: participation.min_members: min_members 3 is more than the 2 members listed"},
    {HEAD MODEL "training:\n  rounds: 3\n  seq_len: 128\n", POLICY_ERR_INVALID,
     "t.yaml:11:12: training.seq_len: seq_len 128 is longer than the model's n_positions 64"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  downlink:\n    k_per_block: 4\n",
     POLICY_ERR_INVALID,
     "t.yaml:13:18: compression.downlink.k_per_block: only meaningful with method: topk "
     "(method is none: every value is sent)"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    k_per_block: 4\n"
     "    density: 0.5\n", POLICY_ERR_INVALID,
     "t.yaml:14:14: compression.uplink.density: give either k_per_block or density, not both"},
    {HEAD MODEL "training:\n  rounds: 3\ncompression:\n  uplink:\n    block_size: 256\n"
     "    k_per_block: 300\n", POLICY_ERR_INVALID,
     "t.yaml:14:18: compression.uplink.k_per_block: k_per_block 300 is larger than "
     "block_size 256"},
    {HEAD MODEL "training:\n  rounds: 3\n  outer: {kind: fedadam, momentum: 0.9}\n",
     POLICY_ERR_INVALID,
     "t.yaml:11:36: training.outer.momentum: not used by fedadam (it takes beta1, beta2, eps)"},
    /* YAML itself */
    {HEAD MODEL "training:\n  rounds: [3\n", POLICY_ERR_SYNTAX, NULL},
    {HEAD MODEL "training:\n\trounds: 3\n", POLICY_ERR_SYNTAX, NULL},
    {HEAD MODEL "training: &t\n  rounds: 3\n", POLICY_ERR_UNSUPPORTED,
     "t.yaml:9:12: anchors (&name) are not supported in policy files"},
    {HEAD MODEL "training:\n  rounds: !!int 3\n", POLICY_ERR_UNSUPPORTED,
     "t.yaml:10:11: tags (!tag) are not supported in policy files"},
    {HEAD MODEL "training:\n  rounds: 3\n---\nschema: 1\n", POLICY_ERR_UNSUPPORTED,
     "t.yaml:11:1: only one YAML document is allowed in a policy file"},
    {HEAD MODEL "training:\n  rounds: 3\n  ? [a, b]\n  : 1\n", POLICY_ERR_UNSUPPORTED,
     "t.yaml:11:5: mapping keys must be plain strings"},
    {"schema: 1\x00\n", POLICY_ERR_SYNTAX, "t.yaml:1:10: NUL byte in a policy file"},
    {"schema: 1\nmetadata:\n  name: t\n  description: \xc3\xa9t\xe9\n", POLICY_ERR_SYNTAX,
     "t.yaml:4:18: invalid UTF-8 (byte 0xe9); policy files are UTF-8 text"},
    /* directives: policies are YAML 1.2; %TAG only serves tags */
    {"%YAML 1.1\n---\n" HEAD MODEL "training:\n  rounds: 3\n", POLICY_ERR_UNSUPPORTED,
     "t.yaml:1:1: %YAML 1.1: policy files are YAML 1.2, read with its core schema (under "
     "YAML 1.1, 017 would be octal 15 and yes would be true); remove the directive"},
    {"# note\n%TAG !e! tag:example.com,2000:\n---\n" HEAD MODEL "training:\n  rounds: 3\n",
     POLICY_ERR_UNSUPPORTED,
     "t.yaml:2:1: %TAG directives are not supported in policy files (nor are tags)"},
    {"%FOO bar\n---\n" HEAD MODEL "training:\n  rounds: 3\n", POLICY_ERR_UNSUPPORTED,
     "t.yaml:1:1: unknown YAML directive %FOO bar; policy files take none but %YAML 1.2"},
    /* leading zeros: 017 is 17 to YAML 1.2 and 15 to YAML 1.1 readers */
    {HEAD MODEL "training:\n  rounds: 017\n", POLICY_ERR_TYPE,
     "t.yaml:10:11: training.rounds: 017 has a leading zero, which YAML readers read "
     "differently (YAML 1.2: decimal 17, YAML 1.1: octal 15); write 17, or 0o17 for octal"},
    {HEAD MODEL "training:\n  rounds: 019\n", POLICY_ERR_TYPE,
     "t.yaml:10:11: training.rounds: 019 has a leading zero, which YAML readers read "
     "differently (YAML 1.2: decimal 19, YAML 1.1: a string); write 19"},
    {HEAD MODEL "training:\n  rounds: 3\n  inner:\n    lr: 01e-3\n", POLICY_ERR_TYPE,
     "t.yaml:12:9: training.inner.lr: 01e-3 has a leading zero, which YAML readers read "
     "differently (YAML 1.2: a number, YAML 1.1: a string); write it without the leading "
     "zero"},
    /* the trainer's bound on the model, checked where the model is written */
    {HEAD "model:\n  n_positions: 64\n  n_layer: 1024\n  n_head: 16\n  n_embd: 65536\n"
     "training:\n  rounds: 3\n", POLICY_ERR_INVALID,
     "t.yaml:4:1: model: the model has 52777451651072 parameters (vocab_size 256, "
     "n_positions 64, n_layer 1024, n_embd 65536); the trainer takes fewer than 2^36 = "
     "68719476736"},
    {"schema: 1\nmetadata:\n  description: 'it''s'\n", POLICY_ERR_UNSUPPORTED,
     "t.yaml:3:17: the '' escape in single-quoted strings is not supported; use double quotes "
     "for text that contains a single quote"},
};

static void test_malformed(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *c = &bad_cases[i];
        struct policy p;
        struct policy_error e;
        size_t len = strlen(c->yaml);
        if (c->message && strstr(c->message, "NUL byte"))
            len += 2;
        int rc = policy_load_buffer("t.yaml", c->yaml, len, &p, &e);
        if (rc != c->code) {
            print_error("case %zu: expected %d, got %d: %s\n", i, c->code, rc, e.message);
            bad++;
            continue;
        }
        assert_int_equal(e.code, rc);
        if (c->message && strcmp(e.message, c->message) != 0) {
            print_error("case %zu:\n  want: %s\n  got:  %s\n", i, c->message, e.message);
            bad++;
            continue;
        }
        /* every message starts with file:line:col */
        int line = 0, col = 0;
        assert_int_equal(sscanf(e.message, "t.yaml:%d:%d:", &line, &col), 2);
        assert_true(line >= 1 && col >= 1);
        assert_int_equal(line, e.line);
        assert_int_equal(col, e.column);
        /* nothing to free on failure, and freeing is harmless */
        assert_null(p.participation.members);
        assert_null(p.metadata.description);
        policy_free(&p);
    }
    assert_int_equal(bad, 0);
    /* syntax errors name the place */
    struct policy p;
    struct policy_error e;
    assert_int_equal(load(HEAD MODEL "training:\n\trounds: 3\n", &p, &e), POLICY_ERR_SYNTAX);
    assert_memory_equal(e.message, "t.yaml:10:1: YAML syntax error: ", 32);
    assert_int_equal(load(HEAD MODEL "training:\n  rounds: [3\n", &p, &e), POLICY_ERR_SYNTAX);
    print_message("syntax error example: %s\n", e.message);
    assert_int_equal(policy_load_file("/nonexistent/x.yaml", &p, &e), POLICY_ERR_IO);
    assert_string_equal(e.message, "/nonexistent/x.yaml: cannot read: No such file or directory");
    assert_int_equal(policy_load_buffer("t.yaml", NULL, 4, &p, NULL), POLICY_ERR_ARG);
    for (int code = -1200; code >= -1220; code--)
        assert_non_null(policy_strerror(code));
    assert_string_equal(policy_strerror(POLICY_ERR_MISSING), "required policy key missing");
    assert_string_not_equal(policy_strerror(POLICY_ERR_UNIMPLEMENTED), "unknown policy error");
}

/* The messages of a check, each checked against its own parts (code, line, column,
 * path in "file:line:col: path: message") and against want, in order; want ends with
 * NULL. */
static void expect_errors(const struct policy_errors *l, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    for (size_t i = 0; i < l->n; i++)
        print_message("  %s\n", l->item[i].message);
    assert_int_equal(l->n, n);
    assert_int_equal(l->total, n);
    for (size_t i = 0; i < n; i++) {
        const struct policy_error *e = &l->item[i];
        if (strcmp(e->message, want[i]) != 0)
            fail_msg("error %zu:\n  want: %s\n  got:  %s", i, want[i], e->message);
        char where[64];
        snprintf(where, sizeof where, "t.yaml:%d:%d: ", e->line, e->column);
        assert_memory_equal(e->message, where, strlen(where));
        if (e->path[0]) {
            assert_memory_equal(e->message + strlen(where), e->path, strlen(e->path));
            assert_memory_equal(e->message + strlen(where) + strlen(e->path), ": ", 2);
        }
        assert_true(e->code <= -1200 && e->code > -1300);
    }
}

static int check(const char *text, struct policy_errors *l)
{
    return policy_check_buffer("t.yaml", text, strlen(text), NULL, l);
}

/* A policy with errors in four sections gets four messages, in file order, with the
 * text policy_load_buffer gives for each alone; the cross-field rules (seq_len longer
 * than n_positions) wait until the keys are right; policy_load_buffer returns the first. */
static void every_error_of_a_policy_is_reported_in_file_order(void **state)
{
    (void)state;
    static struct policy_errors l;
    static const char text[] =
        HEAD
        "model:\n"
        "  n_positions: 64\n"
        "  n_layers: 2\n"                     /* 6: unknown key (a typo of n_layer) */
        "  n_head: 4\n"
        "  n_embd: 64\n"
        "training:\n"
        "  rounds: ten\n"                     /* 10: wrong type */
        "  seq_len: 128\n"                    /* cross-field: not reported */
        "compression:\n"
        "  uplink:\n"
        "    quant: int3\n"                   /* 14: out of range */
        "privacy:\n"                          /* 15 */
        "  noise_multiplier: 1.0\n";          /* 16:3: clip is missing */
    static const char *const want[] = {
        "t.yaml:6:3: model.n_layers: unknown key (did you mean \"n_layer\"?)",
        "t.yaml:10:11: training.rounds: expected a positive integer, got \"ten\"",
        "t.yaml:14:12: compression.uplink.quant: expected one of fp32, int8, fp16, fp8, int4, "
        "got \"int3\"",
        "t.yaml:16:3: privacy.clip: required key is missing",
        NULL,
    };
    struct policy p;
    memset(&p, 0x5a, sizeof p);
    assert_int_equal(policy_check_buffer("t.yaml", text, strlen(text), &p, &l),
                     POLICY_ERR_UNKNOWN_KEY);
    expect_errors(&l, want);
    assert_null(p.metadata.description);     /* left empty */
    assert_null(p.participation.members);
    struct policy_error e;
    assert_int_equal(load(text, &p, &e), POLICY_ERR_UNKNOWN_KEY);
    assert_memory_equal(&e, &l.item[0], sizeof e);
    char more[64] = "x";
    assert_int_equal(policy_errors_more(&l, more, sizeof more), 0);
    assert_string_equal(more, "");

    /* the same file fixed key by key: the cross-field rule speaks once the keys are right */
    static const char fixed[] = HEAD MODEL "training:\n  rounds: 10\n  seq_len: 128\n";
    assert_int_equal(check(fixed, &l), POLICY_ERR_INVALID);
    expect_errors(&l, (const char *const[]){
        "t.yaml:11:12: training.seq_len: seq_len 128 is longer than the model's n_positions 64",
        NULL});
    assert_int_equal(check(minimal, &l), 0);
    assert_int_equal(l.n + l.total, 0);
}

/* A missing key is located at its mapping, before the keys walked first; a repeated
 * key, an alias given twice, a section that is no mapping (nothing below it is missing),
 * a refused key with a value and a list with a repeated id are all reported, and the
 * walk goes on after each. */
static void missing_repeated_and_misplaced_keys_are_reported_and_the_walk_goes_on(void **s)
{
    (void)s;
    static struct policy_errors l;
    static const char text[] =
        "schema: 1\n"
        "metadata:\n"
        "  name: t\n"
        "  name: u\n"                                         /* 4 */
        "model:\n"                                            /* 6:3: n_head missing */
        "  n_positions: 64\n"
        "  seq_len: 64\n"                                     /* 7: alias of n_positions */
        "  n_layer: 2\n"
        "  n_embd: 0\n"                                       /* 9 */
        "training: 3\n"                                       /* 10 */
        "aggregation:\n"
        "  trim_fraction: 0.1\n"                              /* 12: the former name */
        "participation:\n"
        "  members: [fpt, fpt]\n";                            /* 14 */
    assert_int_equal(check(text, &l), POLICY_ERR_DUPLICATE);
    expect_errors(&l, (const char *const[]){
        "t.yaml:4:3: duplicate key \"name\" (first defined at line 3, column 3)",
        "t.yaml:6:3: model.n_head: required key is missing",
        "t.yaml:7:3: model.n_positions: \"seq_len\" sets the same value as the key at line 6, "
        "column 3; give only one",
        "t.yaml:9:11: model.n_embd: expected an integer in [1, 65536], got 0",
        "t.yaml:10:11: training: expected a mapping of keys, got 3",
        "t.yaml:12:3: aggregation.trim_fraction: unknown key (did you mean \"trim\"?)",
        "t.yaml:14:18: participation.members: \"fpt\" is listed twice",
        NULL});
    /* no section at all: every required key, at the top, in schema order */
    assert_int_equal(check("", &l), POLICY_ERR_MISSING);
    expect_errors(&l, (const char *const[]){
        "t.yaml:1:1: schema: required key is missing",
        "t.yaml:1:1: metadata.name: required key is missing",
        "t.yaml:1:1: model.n_positions: required key is missing",
        "t.yaml:1:1: training.rounds: required key is missing",
        NULL});
}

/* What leaves nothing to walk is the only error: YAML syntax, an alias, nesting, size, a
 * top level that is no mapping. */
static void an_error_that_stops_the_reading_is_the_only_one(void **state)
{
    (void)state;
    static struct policy_errors l;
    char nested[200];
    size_t o = (size_t)snprintf(nested, sizeof nested, "schema: x\nmetadata: ");
    for (int i = 0; i < 40; i++)
        nested[o++] = '[';
    nested[o] = 0;
    const struct {
        const char *text;
        int code;
    } cases[] = {
        {"schema: x\nmodel: {n_layers: 2\ntraining: [\n", POLICY_ERR_SYNTAX},
        {"schema: x\nmodel: &m {}\ntraining: *m\nextra: 1\n", POLICY_ERR_UNSUPPORTED},
        {nested, POLICY_ERR_TOO_LARGE},
        {"- schema: x\n- extra: 1\n", POLICY_ERR_TYPE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        assert_int_equal(check(cases[i].text, &l), cases[i].code);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.total, 1);
        assert_int_equal(l.item[0].code, cases[i].code);
        assert_memory_equal(l.item[0].message, "t.yaml:", 7);
    }
    assert_int_equal(policy_check_file("/nonexistent/x.yaml", NULL, &l), POLICY_ERR_IO);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.item[0].message,
                        "/nonexistent/x.yaml: cannot read: No such file or directory");
    char *big = malloc(POLICY_FILE_MAX + 1);
    assert_non_null(big);
    memset(big, '#', POLICY_FILE_MAX + 1);
    assert_int_equal(policy_check_buffer("t.yaml", big, POLICY_FILE_MAX + 1, NULL, &l),
                     POLICY_ERR_TOO_LARGE);
    free(big);
    assert_int_equal(l.total, 1);
    assert_int_equal(policy_check_buffer("t.yaml", NULL, 3, NULL, &l), POLICY_ERR_ARG);
    assert_int_equal(l.total, 1);
    assert_int_equal(policy_check_buffer("t.yaml", "", 0, NULL, NULL), POLICY_ERR_ARG);
}

/* At most POLICY_ERRORS_MAX are kept, the first in file order (a missing key reported
 * after the keys below it included), and a line counts the rest. */
static void at_most_fifty_errors_are_kept_and_the_rest_counted(void **state)
{
    (void)state;
    static struct policy_errors l;
    char *text = malloc(8192);
    assert_non_null(text);
    size_t o = (size_t)snprintf(text, 8192, "%s", HEAD "model:\n  n_layer: 2\n  n_head: 4\n"
                                "  n_embd: 64\n");        /* 5:3: n_positions is missing */
    for (int i = 0; i < 60; i++)                          /* lines 8..67 */
        o += (size_t)snprintf(text + o, 8192 - o, "  extra%d: 1\n", i);
    snprintf(text + o, 8192 - o, "training:\n  rounds: many\n");   /* 69 */
    int rc = check(text, &l);
    assert_int_equal(rc, POLICY_ERR_MISSING);
    assert_int_equal(l.n, POLICY_ERRORS_MAX);
    assert_int_equal(l.total, 62);
    assert_string_equal(l.item[0].message, "t.yaml:5:3: model.n_positions: required key is "
                        "missing");
    assert_string_equal(l.item[1].message, "t.yaml:8:3: model.extra0: unknown key; valid keys "
                        "here: family, vocab_size, n_positions, n_layer, n_head, n_embd, init, config, "
                        "tokenizer, seed");
    assert_memory_equal(l.item[49].message, "t.yaml:56:3: model.extra48: ", 28);
    for (size_t i = 1; i < l.n; i++)
        assert_true(l.item[i - 1].line < l.item[i].line);
    char more[64];
    assert_int_equal(policy_errors_more(&l, more, sizeof more), 12);
    assert_string_equal(more, "... and 12 more errors");
    struct policy p;
    struct policy_error e;
    assert_int_equal(load(text, &p, &e), POLICY_ERR_MISSING);
    assert_memory_equal(&e, &l.item[0], sizeof e);
    free(text);

    /* the list itself: stable at one place, the last in file order left out when full */
    memset(&l, 0, sizeof l);
    struct policy_error x = {.line = 7, .column = 1};
    for (int i = 0; i < POLICY_ERRORS_MAX + 5; i++) {
        x.code = -1200 - i;
        policy_errors_add(&l, &x);
    }
    assert_int_equal(l.n, POLICY_ERRORS_MAX);
    assert_int_equal(l.item[POLICY_ERRORS_MAX - 1].code, -1200 - (POLICY_ERRORS_MAX - 1));
    x.line = 2;
    x.code = -1;
    policy_errors_add(&l, &x);
    assert_int_equal(l.item[0].code, -1);
    assert_int_equal(l.item[1].code, -1200);
    assert_int_equal(l.item[POLICY_ERRORS_MAX - 1].code, -1200 - (POLICY_ERRORS_MAX - 2));
    assert_int_equal(policy_errors_more(&l, more, sizeof more), 6);
    assert_string_equal(more, "... and 6 more errors");
    l.total = l.n + 1;
    assert_int_equal(policy_errors_more(&l, more, sizeof more), 1);
    assert_string_equal(more, "... and 1 more error");
}

/* Site policies share the walk: every error, in file order. */
static void every_error_of_a_site_policy_is_reported(void **state)
{
    (void)state;
    static struct policy_errors l;
    static const char text[] = "schema: 1\nmember: FPT\nallow:\n  proposers: [hust, hust]\n"
                               "limits:\n  max_gpus: 4\n  max_rounds: -1\n"
                               "require: {max_epsilon: 0}\n";
    struct site_policy s;
    assert_int_equal(site_policy_check_buffer("t.yaml", text, strlen(text), &s, &l),
                     POLICY_ERR_RANGE);
    expect_errors(&l, (const char *const[]){
        "t.yaml:2:9: member: expected a name of 1 to 32 characters from [a-z0-9._-] starting "
        "with a letter or digit, got \"FPT\"",
        "t.yaml:4:21: allow.proposers: \"hust\" is listed twice",
        "t.yaml:6:3: limits.max_gpus: unknown key; valid keys here: max_parameters, "
        "max_artifact_bytes, max_rounds, max_local_steps, max_batch_size, max_seq_len, max_tokens_per_round",
        "t.yaml:7:15: limits.max_rounds: expected an integer in [0, 10000000], got -1",
        "t.yaml:8:24: require.max_epsilon: expected a finite number > 0, got 0",
        NULL});
    assert_null(s.proposers);
    struct policy_error e;
    assert_int_equal(site_load_buffer("t.yaml", text, strlen(text), &s, &e), POLICY_ERR_RANGE);
    assert_memory_equal(&e, &l.item[0], sizeof e);
    assert_int_equal(site_policy_check_buffer("t.yaml", "schema: 2\n", 10, NULL, &l),
                     POLICY_ERR_RANGE);
    assert_int_equal(l.total, 1);
    assert_int_equal(site_policy_check_buffer("t.yaml", "schema: 1\n", 10, NULL, &l), 0);
    assert_int_equal(l.total, 0);
}

/* What YAML 1.2 and YAML 1.1 readers agree on still parses; the parameter bound is the
 * trainer's, to the parameter. */
static void test_numbers_directives_and_size(void **state)
{
    (void)state;
    struct policy p;
    struct policy_error e;
    assert_int_equal(load("%YAML 1.2\n---\n" HEAD MODEL "training:\n  rounds: 0o17\n"
                          "  inner: {lr: 0.5e-3}\ndata: {validation_fraction: 0.25}\n", &p, &e),
                     0);
    assert_int_equal(p.training.rounds, 15);
    assert_true(p.training.inner.lr == 0.5e-3 && p.data.validation_fraction == 0.25);
    policy_free(&p);
    assert_int_equal(load(HEAD MODEL "training:\n  rounds: 10\n  inner: {warmup_steps: 0}\n",
                          &p, &e), 0);
    policy_free(&p);
    /* n_embd 8192, n_layer 85 / 86 straddle 2^36 with the default vocabulary */
    const int layers[] = { 85, 86 };
    for (int i = 0; i < 2; i++) {
        char text[512];
        snprintf(text, sizeof text, HEAD "model: {n_positions: 1024, n_layer: %d, n_head: 64, "
                 "n_embd: 8192}\ntraining: {rounds: 1}\n", layers[i]);
        struct gpt2_config cfg = { .vocab_size = 256, .max_seq_len = 1024,
                                   .n_layer = layers[i], .n_head = 64, .n_embd = 8192 };
        int rc = load(text, &p, &e);
        assert_int_equal(rc == 0, gpt2_config_check(&cfg) == 0);
        assert_int_equal(rc == 0, i == 0);
        if (rc == 0)
            assert_true(policy_model_parameters(&p.model) < POLICY_MAX_PARAMETERS);
        else
            assert_non_null(strstr(e.message, "t.yaml:4:1: model: the model has "));
        policy_free(&p);
    }
}

/* participation.members: all (or absent) is every roster member at each round, as the
 * coordinator and site_check read it, and hashes apart from any list (even [all]: a
 * member named "all"); a list is just those; [] names nobody and is refused. */
static void test_members_all(void **state)
{
    (void)state;
    struct policy p;
    struct policy_error e;
    struct site_policy s;
    char why[256];
    uint8_t absent[32], all[32], listed[32], named_all[32];
    hash_of(HEAD MODEL "training: {rounds: 1}\n", absent);
    hash_of(HEAD MODEL "training: {rounds: 1}\nparticipation: {members: all}\n", all);
    hash_of(HEAD MODEL "training: {rounds: 1}\nparticipation: {members: [fpt]}\n", listed);
    hash_of(HEAD MODEL "training: {rounds: 1}\nparticipation: {members: [all]}\n", named_all);
    assert_memory_equal(absent, all, 32);
    assert_memory_not_equal(all, listed, 32);
    assert_memory_not_equal(all, named_all, 32);

    assert_int_equal(load(HEAD MODEL "training: {rounds: 1}\nparticipation:\n  members: all\n"
                          "  min_members: 5\n", &p, &e), 0);
    assert_true(policy_all_members(&p));
    assert_int_equal(p.participation.n_members, 0);
    assert_int_equal(p.participation.min_members, 5);   /* checked against the roster */
    assert_true(policy_takes_part(&p, "viettel"));
    char *canon = canonical_of(HEAD MODEL "training: {rounds: 1}\n");
    assert_non_null(strstr(canon, "\nparticipation.members=*\n"));
    free(canon);
    const char site[] = "schema: 1\nmember: viettel\n";
    assert_int_equal(site_load_buffer("site.yaml", site, strlen(site), &s, &e), 0);
    assert_int_equal(site_check(&s, &p, why, sizeof why), 0);
    policy_free(&p);

    assert_int_equal(load(HEAD MODEL "training: {rounds: 1}\nparticipation: {members: [fpt]}\n",
                          &p, &e), 0);
    assert_false(policy_all_members(&p));
    assert_true(policy_takes_part(&p, "fpt"));
    assert_false(policy_takes_part(&p, "viettel"));
    assert_int_equal(site_check(&s, &p, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    policy_free(&p);

    assert_int_equal(load(HEAD MODEL "training: {rounds: 1}\nparticipation: {members: [all]}\n",
                          &p, &e), 0);
    assert_false(policy_all_members(&p));
    assert_true(policy_takes_part(&p, "all"));
    assert_false(policy_takes_part(&p, "fpt"));
    policy_free(&p);
    canon = canonical_of(HEAD MODEL "training: {rounds: 1}\nparticipation: {members: [all]}\n");
    assert_non_null(strstr(canon, "\nparticipation.members=all\n"));
    free(canon);

    assert_int_equal(load(HEAD MODEL "training: {rounds: 1}\nparticipation: {members: []}\n",
                          &p, &e), POLICY_ERR_RANGE);
    assert_string_equal(e.message, "t.yaml:10:26: participation.members: an empty list names "
                        "nobody; write `all` for every roster member (members added later "
                        "included), or list the members");
    assert_null(p.participation.members);
    site_policy_free(&s);
}

/* What the code does not apply is refused when the policy is checked, naming the key
 * and saying it is not implemented yet; the value the code uses anyway, spelled out,
 * is accepted and changes nothing. */
static void test_unapplied_keys_refused(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {HEAD MODEL "training: {rounds: 3}\ngovernance:\n  quorum: 0.66\n",
         POLICY_ERR_UNIMPLEMENTED, "t.yaml:10:1: governance: not part of an experiment policy "
         "any more: the quorum is the alliance charter's (charter.quorum in the roster file); "
         "remove the section"},
        {HEAD MODEL "training:\n  rounds: 3\n  outer: {kind: fedavg, momentum: 0.5}\n",
         POLICY_ERR_UNIMPLEMENTED, "t.yaml:11:35: training.outer.momentum: server momentum "
         "with kind fedavg is not implemented yet (its step is lr x the average); use kind: "
         "nesterov, or momentum: 0"},
        {HEAD MODEL "training:\n  rounds: 3\n  outer: {momentum: 0.9}\n",
         POLICY_ERR_UNIMPLEMENTED, NULL},
        {HEAD MODEL "training: {rounds: 3}\ncompression:\n  downlink: {zstd_level: 1}\n",
         POLICY_ERR_INVALID, "t.yaml:11:26: compression.downlink.zstd_level: not applied: the "
         "downlink is off (method none, quant fp32: members fetch the new model as it is); "
         "compress it (method: topk, or another quant) or remove the key"},
        {HEAD MODEL "training: {rounds: 3}\ncompression:\n  downlink: {error_feedback: true}\n",
         POLICY_ERR_INVALID, NULL},
        {HEAD MODEL "training: {rounds: 3}\ncompression:\n  uplink: {method: none, "
         "error_feedback: false, dense_warmup_rounds: 1}\n", POLICY_ERR_INVALID,
         "t.yaml:11:70: compression.uplink.dense_warmup_rounds: only meaningful with method: "
         "topk (method is none: every value is sent)"},
        {HEAD "model: {vocab_size: 128, n_positions: 64, n_layer: 2, n_head: 4, n_embd: 64}\n"
         "training: {rounds: 3}\n", POLICY_ERR_RANGE,
         "t.yaml:4:21: model.vocab_size: expected an integer in [256, 1048576], got 128"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct policy p;
        struct policy_error e;
        int rc = load(cases[i].yaml, &p, &e);
        if (rc != cases[i].code || e.code != rc ||
            (cases[i].message && strcmp(e.message, cases[i].message) != 0)) {
            print_error("case %zu: want %d %s\n  got %d %s\n", i, cases[i].code,
                        cases[i].message ? cases[i].message : "", rc, e.message);
            bad++;
        }
        if (cases[i].code == POLICY_ERR_UNIMPLEMENTED && !strstr(e.message, "not implemented") &&
            !strstr(e.message, "not part of an experiment policy"))
            fail_msg("case %zu does not say it is not implemented: %s", i, e.message);
        policy_free(&p);
    }
    assert_int_equal(bad, 0);

    /* the values the code applies anyway, spelled out, are the default policy */
    uint8_t plain[32], spelled[32];
    hash_of(minimal, plain);
    hash_of(HEAD MODEL "training:\n  rounds: 3\n  inner: {kind: adamw, eps: 1.0e-8}\n"
            "  outer: {kind: fedavg, momentum: 0}\n"
            "aggregation: {rule: fedavg}\n", spelled);
    assert_memory_equal(plain, spelled, 32);
    hash_of(HEAD MODEL "training: {rounds: 3}\ncompression:\n  downlink: {quant: fp16, "
            "zstd_level: 1, error_feedback: true, block_size: 1024}\n", spelled);
}
/* Loads text (which must load) into *p. */
static void load_ok(const char *text, struct policy *p)
{
    struct policy_error e;
    if (load(text, p, &e) != 0)
        fail_msg("did not load: %s\n%s", e.message, text);
}

/* Each case must fail with its code and, when given, exactly its message. */
static void expect_refusals(const struct bad_case *cases, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        struct policy p;
        struct policy_error e;
        int rc = load(cases[i].yaml, &p, &e);
        if (rc != cases[i].code || e.code != rc ||
            (cases[i].message && strcmp(e.message, cases[i].message) != 0)) {
            print_error("case %zu: want %d %s\n  got  %d %s\n", i, cases[i].code,
                        cases[i].message ? cases[i].message : "", rc, e.message);
            bad++;
        }
        policy_free(&p);
    }
    assert_int_equal(bad, 0);
}

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
/* Lines 1..9; what follows starts at line 10. */
#define BASE9 HEAD MODEL "training: {rounds: 3}\n"
#define FIVE "participation: {members: [a, b, c, d, e]}\n"

/* aggregation.rule and its keys (policies/README.md, aggregation): every rule loads with
 * its keys and they reach struct policy and the canonical text; each key of one rule
 * given with another, each key a rule needs left out, and what the members present
 * cannot give (multi_krum's 2f + 3, select <= min_members - f) is refused, naming the
 * keys and why. */
static void test_aggregation_rules(void **state)
{
    (void)state;
    struct policy p;
    load_ok(BASE9 "aggregation: {rule: clip, norm_bound: 5, norm_cap: 50}\n", &p);
    assert_int_equal(p.aggregation.rule, POLICY_AGG_CLIP);
    assert_true(p.aggregation.norm_bound == 5 && p.aggregation.norm_cap == 50);
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: clip, norm_bound: 5, norm_cap: 5}\n", &p);
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: trimmed_mean, trim: 0.2, norm_bound: 100}\n", &p);
    assert_int_equal(p.aggregation.rule, POLICY_AGG_TRIMMED_MEAN);
    assert_true(p.aggregation.trim == 0.2 && p.aggregation.norm_bound == 100);
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: median}\n", &p);
    assert_int_equal(p.aggregation.rule, POLICY_AGG_MEDIAN);
    assert_int_equal(p.aggregation.weighting, POLICY_WEIGHT_UNIFORM);   /* what median does */
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: trimmed_mean, trim: 0.1, weighting: uniform}\n", &p);
    assert_int_equal(p.aggregation.weighting, POLICY_WEIGHT_UNIFORM);
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: multi_krum, byzantine: 1}\n" FIVE, &p);
    assert_int_equal(p.aggregation.weighting, POLICY_WEIGHT_TOKENS);    /* averages as fedavg */
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: multi_krum, byzantine: 1}\n" FIVE, &p);
    assert_int_equal(p.aggregation.rule, POLICY_AGG_MULTI_KRUM);
    assert_int_equal(p.aggregation.byzantine, 1);
    assert_int_equal(p.aggregation.select, 0);            /* n - f of the n that report */
    assert_int_equal(p.participation.min_members, 5);
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: multi_krum, byzantine: 2, select: 5}\n"
            "participation: {members: all, min_members: 7}\n", &p);
    assert_int_equal(p.aggregation.select, 5);
    policy_free(&p);
    assert_string_equal(policy_agg_rule_name(POLICY_AGG_MULTI_KRUM), "multi_krum");
    assert_string_equal(policy_agg_rule_name(POLICY_AGG_CLIP), "clip");

    /* the canonical text carries every key; each value moves the hash */
    char *text = canonical_of(BASE9 "aggregation: {rule: multi_krum, byzantine: 1, select: 3}\n"
                              FIVE);
    assert_non_null(strstr(text, "\naggregation.byzantine=1\naggregation.norm_bound=0\n"
                           "aggregation.norm_cap=0\naggregation.rule=multi_krum\n"
                           "aggregation.select=3\naggregation.trim=0\n"));
    free(text);
    text = canonical_of(BASE9 "aggregation: {rule: trimmed_mean, trim: 0.25}\n");
    assert_non_null(strstr(text, "\naggregation.rule=trimmed_mean\n"));
    assert_non_null(strstr(text, "\naggregation.trim=0.25\n"));
    free(text);
    const char *variants[] = {
        BASE9,
        BASE9 "aggregation: {rule: median}\n",
        BASE9 "aggregation: {rule: trimmed_mean, trim: 0.25}\n",
        BASE9 "aggregation: {rule: trimmed_mean, trim: 0.2}\n",
        BASE9 "aggregation: {rule: clip, norm_bound: 5}\n",
        BASE9 "aggregation: {rule: clip, norm_bound: 5, norm_cap: 6}\n",
        BASE9 "aggregation: {rule: multi_krum, byzantine: 1}\n" FIVE,
        BASE9 "aggregation: {rule: multi_krum, byzantine: 1, select: 2}\n" FIVE,
        BASE9 FIVE,
    };
    uint8_t h[sizeof variants / sizeof *variants][32];
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        hash_of(variants[i], h[i]);
        for (size_t j = 0; j < i; j++)
            if (memcmp(h[i], h[j], 32) == 0)
                fail_msg("variants %zu and %zu hash alike", j, i);
    }
    uint8_t spelled[32];
    hash_of(BASE9 "aggregation: {rule: fedavg, norm_bound: 0}\n", spelled);
    assert_memory_equal(h[0], spelled, 32);
    hash_of(BASE9 "aggregation: {rule: median, weighting: uniform}\n", spelled);
    assert_memory_equal(h[1], spelled, 32);
    text = canonical_of(variants[1]);
    assert_non_null(strstr(text, "\naggregation.weighting=uniform\n"));
    free(text);

    static const struct bad_case cases[] = {
        /* names and ranges */
        {BASE9 "aggregation: {rule: krum}\n", POLICY_ERR_RANGE,
         "t.yaml:10:21: aggregation.rule: expected one of fedavg, trimmed_mean, median, "
         "multi_krum, clip, got \"krum\""},
        {BASE9 "aggregation: {rule: trimmed_mean, trim: 0.5}\n", POLICY_ERR_RANGE,
         "t.yaml:10:41: aggregation.trim: expected a number in (0, 0.5), got 0.5"},
        {BASE9 "aggregation: {rule: trimmed_mean, trim: 0}\n", POLICY_ERR_RANGE,
         "t.yaml:10:41: aggregation.trim: expected a number in (0, 0.5), got 0"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 0}\n", POLICY_ERR_RANGE,
         "t.yaml:10:44: aggregation.byzantine: expected an integer in [1, 1024], got 0"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 1, select: 0}\n", POLICY_ERR_RANGE,
         "t.yaml:10:55: aggregation.select: expected an integer in [1, 1024], got 0"},
        {BASE9 "aggregation: {rule: clip, norm_bound: 1, norm_cap: -1}\n", POLICY_ERR_RANGE,
         "t.yaml:10:52: aggregation.norm_cap: expected a finite number >= 0, got -1"},
        /* the former names and misspellings: did you mean */
        {BASE9 "aggregation: {rule: multi_krum, krum_byzantine: 1}\n", POLICY_ERR_UNKNOWN_KEY,
         "t.yaml:10:33: aggregation.krum_byzantine: unknown key (did you mean \"byzantine\"?)"},
        {BASE9 "aggregation: {rule: trimmed_mean, trim_fraction: 0.1}\n",
         POLICY_ERR_UNKNOWN_KEY,
         "t.yaml:10:35: aggregation.trim_fraction: unknown key (did you mean \"trim\"?)"},
        {BASE9 "aggregation: {rule: multi_krum, byzantin: 1}\n", POLICY_ERR_UNKNOWN_KEY,
         "t.yaml:10:33: aggregation.byzantin: unknown key (did you mean \"byzantine\"?)"},
        /* a rule's keys with another rule */
        {BASE9 "aggregation: {trim: 0.1}\n", POLICY_ERR_INVALID,
         "t.yaml:10:21: aggregation.trim: only used by rule trimmed_mean (the fraction trimmed "
         "at each end); rule is fedavg: remove the key or use rule: trimmed_mean"},
        {BASE9 "aggregation: {rule: median, byzantine: 1}\n" FIVE, POLICY_ERR_INVALID,
         "t.yaml:10:40: aggregation.byzantine: only used by rule multi_krum (the faulty "
         "members tolerated); rule is median: remove the key or use rule: multi_krum"},
        {BASE9 "aggregation: {rule: clip, norm_bound: 1, select: 2}\n", POLICY_ERR_INVALID,
         "t.yaml:10:50: aggregation.select: only used by rule multi_krum (the updates "
         "averaged); rule is clip: remove the key or use rule: multi_krum"},
        {BASE9 "aggregation: {norm_bound: 5, norm_cap: 10}\n", POLICY_ERR_INVALID,
         "t.yaml:10:40: aggregation.norm_cap: only used by rule clip (the norm above which an "
         "update is refused instead of clipped); rule is fedavg: remove the key or use rule: "
         "clip"},
        {BASE9 "aggregation: {rule: trimmed_mean, trim: 0.1, norm_cap: 0}\n", POLICY_ERR_INVALID,
         NULL},
        /* median and trimmed_mean weigh each update alike */
        {BASE9 "aggregation: {rule: median, weighting: tokens}\n", POLICY_ERR_INVALID,
         "t.yaml:10:40: aggregation.weighting: weighting tokens is not applied by rule median, "
         "whose coordinate-wise order statistics count each update once; write weighting: "
         "uniform or leave the key out"},
        {BASE9 "aggregation: {rule: trimmed_mean, trim: 0.1, weighting: samples}\n",
         POLICY_ERR_INVALID, NULL},
        /* what a rule needs */
        {BASE9 "aggregation:\n  rule: clip\n", POLICY_ERR_MISSING,
         "t.yaml:10:1: aggregation.norm_bound: rule clip needs norm_bound, the L2 norm each "
         "update is scaled down to (> 0)"},
        {BASE9 "aggregation: {rule: clip, norm_bound: 0}\n", POLICY_ERR_INVALID,
         "t.yaml:10:39: aggregation.norm_bound: rule clip needs norm_bound > 0, the L2 norm "
         "each update is scaled down to (0 would zero every update)"},
        {BASE9 "aggregation: {rule: clip, norm_bound: 10, norm_cap: 5}\n", POLICY_ERR_INVALID,
         "t.yaml:10:53: aggregation.norm_cap: norm_cap 5 is below norm_bound 10: updates with a "
         "norm between them would be refused although clipping brings them to norm_bound; "
         "give norm_cap >= norm_bound, or 0 for no cap"},
        {BASE9 "aggregation: {rule: trimmed_mean}\n", POLICY_ERR_MISSING,
         "t.yaml:10:1: aggregation.trim: rule trimmed_mean needs trim, the fraction of each "
         "coordinate's values dropped at each end, in (0, 0.5)"},
        {BASE9 "aggregation: {rule: multi_krum}\n" FIVE, POLICY_ERR_MISSING,
         "t.yaml:10:1: aggregation.byzantine: rule multi_krum needs byzantine, the number f of "
         "faulty members tolerated (>= 1; a round then needs 2f + 3 updates)"},
        /* multi_krum: 2f + 3 updates at the fewest members a round closes with */
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 1}\n", POLICY_ERR_INVALID,
         "t.yaml:10:44: aggregation.byzantine: multi_krum with byzantine 1 needs 2f + 3 = 5 "
         "updates a round, and participation.min_members is 1, its default, so a round could "
         "close with fewer; raise min_members to 5 or lower byzantine"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 2}\n"
         "participation: {members: all, min_members: 6}\n", POLICY_ERR_INVALID,
         "t.yaml:10:44: aggregation.byzantine: multi_krum with byzantine 2 needs 2f + 3 = 7 "
         "updates a round, and participation.min_members is 6, so a round could close with "
         "fewer; raise min_members to 7 or lower byzantine"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 2}\n" FIVE, POLICY_ERR_INVALID,
         "t.yaml:10:44: aggregation.byzantine: multi_krum with byzantine 2 needs 2f + 3 = 7 "
         "updates a round, and participation.members lists only 5 members; lower byzantine "
         "to 1 or less"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 1}\n"
         "participation: {members: [a, b, c, d]}\n", POLICY_ERR_INVALID,
         "t.yaml:10:44: aggregation.byzantine: multi_krum with byzantine 1 needs 2f + 3 = 5 "
         "updates a round, and participation.members lists only 4 members; multi_krum needs "
         "at least 5 (byzantine 1)"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 1, select: 5}\n" FIVE,
         POLICY_ERR_INVALID,
         "t.yaml:10:55: aggregation.select: select 5 is more than participation.min_members - "
         "byzantine = 5 - 1 = 4, the updates multi_krum keeps in a round of min_members; "
         "lower select or leave it out (n - f of the n that report)"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 2, select: 7}\n"
         "participation: {members: all, min_members: 8}\n", POLICY_ERR_INVALID, NULL},
    };
    expect_refusals(cases, sizeof cases / sizeof *cases);
}

/* privacy (DP-FedAvg): the section's keys, delta's default, its canonical lines, and each
 * refusal: the keys' ranges, a target epsilon without noise, and every setting under
 * which the noise would not cover one member (another rule, weights, senders averaging,
 * measures that evaluate each update). */
#define DP_OK "aggregation: {weighting: uniform}\ncontribution: {measures: [tokens, rounds, bytes]}\n"
static void test_privacy(void **state)
{
    (void)state;
    struct policy p;
    load_ok(minimal, &p);
    assert_int_equal(p.privacy.enabled, 0);
    assert_true(p.privacy.clip == 0 && p.privacy.noise_multiplier == 0 &&
                p.privacy.delta == 0 && p.privacy.target_epsilon == 0);
    policy_free(&p);
    load_ok(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1}\n", &p);
    assert_int_equal(p.privacy.enabled, 1);
    assert_true(p.privacy.clip == 1.0 && p.privacy.noise_multiplier == 1.1);
    assert_true(p.privacy.delta == 1e-5 && p.privacy.target_epsilon == 0);
    policy_free(&p);
    load_ok(BASE9 "aggregation: {rule: clip, norm_bound: 2, weighting: uniform}\n"
            "contribution: {measures: [bytes]}\n"
            "privacy: {clip: 0.5, noise_multiplier: 2, delta: 1e-6, target_epsilon: 8}\n", &p);
    assert_int_equal(p.aggregation.rule, POLICY_AGG_CLIP);
    assert_true(p.privacy.clip == 0.5 && p.privacy.noise_multiplier == 2);
    assert_true(p.privacy.delta == 1e-6 && p.privacy.target_epsilon == 8);
    policy_free(&p);
    load_ok(BASE9 DP_OK "privacy: {clip: 1, noise_multiplier: 0}\n", &p);   /* clipping only */
    assert_int_equal(p.privacy.enabled, 1);
    policy_free(&p);

    char *text = canonical_of(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1}\n");
    assert_non_null(strstr(text, "\nprivacy.clip=1\nprivacy.delta=1e-05\n"
                           "privacy.noise_multiplier=1.1\nprivacy.target_epsilon=0\nschema=1\n"));
    free(text);
    uint8_t a[32], b[32];
    hash_of(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1}\n", a);
    hash_of(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1, delta: 1.0e-5}\n", b);
    assert_memory_equal(a, b, 32);   /* the default spelled out */
    const char *moved[] = {
        BASE9 DP_OK,
        BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1, delta: 1e-6}\n",
        BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.2}\n",
        BASE9 DP_OK "privacy: {clip: 2.0, noise_multiplier: 1.1}\n",
        BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1, target_epsilon: 10}\n",
    };
    for (size_t i = 0; i < sizeof moved / sizeof *moved; i++) {
        hash_of(moved[i], b);
        if (memcmp(a, b, 32) == 0)
            fail_msg("variant %zu hashes as the first", i);
    }

    static const struct bad_case cases[] = {
        {BASE9 DP_OK "privacy:\n", POLICY_ERR_MISSING,
         "t.yaml:12:1: privacy.clip: required key is missing"},
        {BASE9 DP_OK "privacy: {noise_multiplier: 1}\n", POLICY_ERR_MISSING,
         "t.yaml:12:10: privacy.clip: required key is missing"},
        {BASE9 DP_OK "privacy: {clip: 1}\n", POLICY_ERR_MISSING,
         "t.yaml:12:10: privacy.noise_multiplier: required key is missing"},
        {BASE9 DP_OK "privacy: {clip: 0, noise_multiplier: 1}\n", POLICY_ERR_RANGE,
         "t.yaml:12:17: privacy.clip: expected a finite number > 0, got 0"},
        {BASE9 DP_OK "privacy: {clip: 1, noise_multiplier: -1}\n", POLICY_ERR_RANGE,
         "t.yaml:12:38: privacy.noise_multiplier: expected a finite number >= 0, got -1"},
        {BASE9 DP_OK "privacy: {clip: 1, noise_multiplier: .nan}\n", POLICY_ERR_RANGE, NULL},
        {BASE9 DP_OK "privacy: {clip: 1, noise_multiplier: 1, delta: 0.2}\n", POLICY_ERR_RANGE,
         "t.yaml:12:48: privacy.delta: expected a number in (0, 0.1], got 0.2"},
        {BASE9 DP_OK "privacy: {clip: 1, noise_multiplier: 1, delta: 0}\n", POLICY_ERR_RANGE,
         NULL},
        {BASE9 DP_OK "privacy: {clip: 1, noise_multiplier: 1, target_epsilon: 0}\n",
         POLICY_ERR_RANGE,
         "t.yaml:12:57: privacy.target_epsilon: expected a finite number > 0, got 0"},
        {BASE9 DP_OK "privacy: {clip: 1, noise: 1}\n", POLICY_ERR_UNKNOWN_KEY,
         "t.yaml:12:20: privacy.noise: unknown key (did you mean \"noise_multiplier\"?)"},
        {BASE9 DP_OK "privacy: {clip: 1, noise_multipler: 1}\n", POLICY_ERR_UNKNOWN_KEY,
         "t.yaml:12:20: privacy.noise_multipler: unknown key (did you mean "
         "\"noise_multiplier\"?)"},
        /* a target epsilon without noise: epsilon is infinite from round 1 */
        {BASE9 DP_OK "privacy: {clip: 1, noise_multiplier: 0, target_epsilon: 8}\n",
         POLICY_ERR_INVALID,
         "t.yaml:12:57: privacy.target_epsilon: a target epsilon with noise_multiplier 0: "
         "without noise epsilon is infinite from the first round, so no round could run; give "
         "noise_multiplier > 0 or remove target_epsilon"},
        /* the rules whose output one member moves by more than clip */
        {BASE9 "aggregation: {rule: median, weighting: uniform}\n"
         "contribution: {measures: [tokens]}\nprivacy: {clip: 1, noise_multiplier: 1}\n",
         POLICY_ERR_INVALID,
         "t.yaml:10:21: aggregation.rule: privacy (DP-FedAvg) needs rule fedavg or clip, not "
         "median: its noise is calibrated to a sum that each member moves by at most "
         "privacy.clip, which median's output is not"},
        {BASE9 "aggregation: {rule: multi_krum, byzantine: 1, weighting: uniform}\n" FIVE
         "contribution: {measures: [tokens]}\nprivacy: {clip: 1, noise_multiplier: 1}\n",
         POLICY_ERR_INVALID, NULL},
        {BASE9 "aggregation: {rule: trimmed_mean, trim: 0.1, weighting: uniform}\n"
         "contribution: {measures: [tokens]}\nprivacy: {clip: 1, noise_multiplier: 1}\n",
         POLICY_ERR_INVALID, NULL},
        /* weights: the default tokens, then samples given */
        {BASE9 "contribution: {measures: [tokens]}\nprivacy: {clip: 1, noise_multiplier: 1}\n",
         POLICY_ERR_INVALID,
         "t.yaml:11:1: aggregation.weighting: privacy needs weighting: uniform (weighting is "
         "tokens, the default): weighted by tokens, one member's share of the average is not "
         "bounded by clip / n, the sensitivity the noise is calibrated to"},
        {BASE9 "aggregation: {weighting: samples}\ncontribution: {measures: [tokens]}\n"
         "privacy: {clip: 1, noise_multiplier: 1}\n", POLICY_ERR_INVALID,
         "t.yaml:10:26: aggregation.weighting: privacy needs weighting: uniform (weighting is "
         "samples): weighted by samples, one member's share of the average is not bounded by "
         "clip / n, the sensitivity the noise is calibrated to"},
        {BASE9 DP_OK "compression: {uplink: {average: senders}}\n"
         "privacy: {clip: 1, noise_multiplier: 1}\n", POLICY_ERR_INVALID,
         "t.yaml:12:33: compression.uplink.average: privacy needs average: members: senders "
         "divides each coordinate by the members that sent it, so one member's share of a "
         "coordinate is not bounded by clip / n"},
        /* measures that evaluate each update on its own */
        {BASE9 "aggregation: {weighting: uniform}\nprivacy: {clip: 1, noise_multiplier: 1}\n",
         POLICY_ERR_INVALID,
         "t.yaml:11:1: contribution.measures: privacy with the measure alignment (the default "
         "measures): it evaluates each member's update on its own, which the noise on the "
         "round's sum does not cover (the scores would reveal what DP hides); measure tokens, "
         "rounds or bytes only"},
        {BASE9 "aggregation: {weighting: uniform}\n"
         "contribution:\n  measures: [tokens, loo, shapley]\n"
         "  evaluation_set: {name: e.txt, blake2b: " HEX64 "}\n"
         "privacy: {clip: 1, noise_multiplier: 1}\n", POLICY_ERR_INVALID,
         "t.yaml:12:13: contribution.measures: privacy with the measures loo, shapley: they "
         "evaluate each member's update on its own, which the noise on the round's sum does "
         "not cover (the scores would reveal what DP hides); measure tokens, rounds or bytes "
         "only"},
    };
    expect_refusals(cases, sizeof cases / sizeof *cases);
}

/* contribution: defaults, every key, the canonical lines and the hash, each cross-field
 * rule and each value error with file:line:col. */
#define CONTRIB HEAD MODEL "training: {rounds: 3}\ncontribution:\n"

static void test_contribution(void **state)
{
    (void)state;
    struct policy p;
    struct policy_error e;
    assert_int_equal(load(minimal, &p, &e), 0);
    const struct policy_contribution *c = &p.contribution;
    assert_int_equal(c->measures, 1u << POLICY_MEASURE_TOKENS | 1u << POLICY_MEASURE_ROUNDS |
                                  1u << POLICY_MEASURE_BYTES | 1u << POLICY_MEASURE_ALIGNMENT);
    static const double default_weights[POLICY_MEASURES] = { 1, 1, 1, 1, 0, 0 };
    assert_memory_equal(c->credit_weights, default_weights, sizeof default_weights);
    assert_int_equal(c->has_evalset, 0);
    assert_string_equal(c->evalset_name, "");
    assert_int_equal(c->eval_windows, 16);
    assert_int_equal(c->shapley_budget, 64);
    assert_true(c->shapley_truncation == 0.01 && c->round_truncation == 1e-4);
    assert_int_equal(c->payload_retention_days, 30);
    policy_free(&p);

    static const char full[] = CONTRIB
        "  measures: [tokens, rounds, bytes, alignment, loo, shapley]\n"
        "  credit_weights: {shapley: 2, tokens: 1}\n"
        "  evaluation_set:\n"
        "    name: vi-firefox-ui.txt\n"
        "    blake2b: " HEX64 "\n"
        "    windows: 8\n"
        "  shapley:\n"
        "    budget: 128\n"
        "    truncation: 0.05\n"
        "    round_truncation: 1.0e-3\n"
        "  payload_retention_days: 7\n";
    if (load(full, &p, &e) != 0)
        fail_msg("%s", e.message);
    assert_int_equal(c->measures, (1u << POLICY_MEASURES) - 1);
    /* credit_weights given: the weights given, 0 for the listed measures it leaves out */
    static const double given[POLICY_MEASURES] = { 1, 0, 0, 0, 0, 2 };
    assert_memory_equal(c->credit_weights, given, sizeof given);
    assert_int_equal(c->has_evalset, 1);
    assert_string_equal(c->evalset_name, "vi-firefox-ui.txt");
    assert_int_equal(c->evalset_hash[0], 0x01);
    assert_int_equal(c->evalset_hash[31], 0xef);
    assert_int_equal(c->eval_windows, 8);
    assert_int_equal(c->shapley_budget, 128);
    assert_true(c->shapley_truncation == 0.05 && c->round_truncation == 1e-3);
    assert_int_equal(c->payload_retention_days, 7);
    policy_free(&p);
    char *text = canonical_of(full);
    static const char *const lines[] = {
        "\ncontribution.credit_weights.alignment=0\n", "\ncontribution.credit_weights.shapley=2\n",
        "\ncontribution.credit_weights.tokens=1\n",
        "\ncontribution.evaluation_set.blake2b=" HEX64 "\n",
        "\ncontribution.evaluation_set.name=vi-firefox-ui.txt\n",
        "\ncontribution.evaluation_set.windows=8\n",
        "\ncontribution.measures=alignment,bytes,loo,rounds,shapley,tokens\n",
        "\ncontribution.payload_retention_days=7\n", "\ncontribution.shapley.budget=128\n",
        "\ncontribution.shapley.round_truncation=0.001\n",
        "\ncontribution.shapley.truncation=0.05\n",
    };
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        if (!strstr(text, lines[i]))
            fail_msg("the canonical text lacks %s", lines[i] + 1);
    free(text);

    /* the defaults spelled out are the default policy; list order is no value; any
     * value moves the hash */
    uint8_t plain[32], same[32], other[32];
    hash_of(minimal, plain);
    hash_of(CONTRIB "  measures: [alignment, bytes, rounds, tokens]\n"
            "  credit_weights: {tokens: 1, rounds: 1, bytes: 1, alignment: 1}\n"
            "  payload_retention_days: 30\n", same);
    assert_memory_equal(plain, same, 32);
    hash_of(CONTRIB "  measures: [tokens, alignment, rounds, bytes]\n", same);
    assert_memory_equal(plain, same, 32);
    static const char *const changes[] = {
        "  measures: [tokens, rounds, bytes]\n",
        "  credit_weights: {tokens: 2, rounds: 1, bytes: 1, alignment: 1}\n",
        "  credit_weights: {tokens: 1, rounds: 1, bytes: 1}\n",
        "  payload_retention_days: 0\n",
    };
    for (size_t i = 0; i < sizeof changes / sizeof *changes; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s%s", CONTRIB, changes[i]);
        hash_of(buf, other);
        if (memcmp(plain, other, 32) == 0)
            fail_msg("%s did not change the hash", changes[i]);
    }
    uint8_t full_hash[32];
    hash_of(full, full_hash);
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", full);
    *strstr(buf, "    windows: 8") = '#';    /* a comment now: the default 16 */
    hash_of(buf, other);
    assert_memory_not_equal(full_hash, other, 32);

    /* the cross-field rules and the values, each with its place */
    static const struct bad_case cases[] = {
        {CONTRIB "  measures: [tokens, loo]\n", POLICY_ERR_INVALID,
         "t.yaml:11:13: contribution.measures: loo measures models on an evaluation set: add "
         "contribution.evaluation_set (name, blake2b, windows)"},
        {CONTRIB "  measures: [shapley, loo]\n", POLICY_ERR_INVALID,
         "t.yaml:11:13: contribution.measures: loo and shapley measure models on an evaluation "
         "set: add contribution.evaluation_set (name, blake2b, windows)"},
        {CONTRIB "  evaluation_set:\n    name: e.txt\n    blake2b: " HEX64 "\n",
         POLICY_ERR_INVALID, "t.yaml:11:3: contribution.evaluation_set: only loo and shapley "
         "use an evaluation set, and contribution.measures lists neither (tokens, rounds, "
         "bytes, alignment); list one of them or remove the section"},
        {CONTRIB "  shapley: {budget: 10}\n", POLICY_ERR_INVALID,
         "t.yaml:11:3: contribution.shapley: only used by the shapley measure, which "
         "contribution.measures does not list (tokens, rounds, bytes, alignment); list shapley "
         "or remove the section"},
        {CONTRIB "  credit_weights: {loo: 1, tokens: 1}\n", POLICY_ERR_INVALID,
         "t.yaml:11:25: contribution.credit_weights.loo: a weight for loo, which "
         "contribution.measures does not list (tokens, rounds, bytes, alignment); list loo or "
         "remove its weight"},
        {CONTRIB "  measures: [tokens]\n  credit_weights: {tokens: 0}\n", POLICY_ERR_INVALID,
         "t.yaml:12:3: contribution.credit_weights: every listed measure (tokens) weighs 0, so "
         "no credit could be computed; give at least one a positive weight"},
        {CONTRIB "  credit_weights: {}\n", POLICY_ERR_INVALID,
         "t.yaml:11:3: contribution.credit_weights: every listed measure (tokens, rounds, "
         "bytes, alignment) weighs 0, so no credit could be computed; give at least one a "
         "positive weight"},
        {CONTRIB "  measures: []\n", POLICY_ERR_RANGE,
         "t.yaml:11:13: contribution.measures: lists no measure; list at least one of tokens, "
         "rounds, bytes, alignment, loo, shapley (or leave the key out for tokens, rounds, "
         "bytes, alignment)"},
        {CONTRIB "  measures: [tokens, novelty]\n", POLICY_ERR_RANGE,
         "t.yaml:11:22: contribution.measures: expected one of tokens, rounds, bytes, "
         "alignment, loo, shapley, got \"novelty\""},
        {CONTRIB "  credit_weights: {token: 1}\n", POLICY_ERR_UNKNOWN_KEY,
         "t.yaml:11:20: contribution.credit_weights.token: unknown name \"token\"; expected "
         "one of tokens, rounds, bytes, alignment, loo, shapley"},
        {CONTRIB "  credit_weights: {tokens: -1}\n", POLICY_ERR_RANGE,
         "t.yaml:11:28: contribution.credit_weights.tokens: expected a number in [0, 1000000], "
         "got -1"},
        {CONTRIB "  credit_weights: [tokens]\n", POLICY_ERR_TYPE,
         "t.yaml:11:19: contribution.credit_weights: expected a mapping of names (one of "
         "tokens, rounds, bytes, alignment, loo, shapley) to numbers, got a list"},
        {CONTRIB "  credit_weights: {tokens: 1, tokens: 2}\n", POLICY_ERR_DUPLICATE,
         "t.yaml:11:31: duplicate key \"tokens\" (first defined at line 11, column 20)"},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: e.txt, blake2b: 0123}\n",
         POLICY_ERR_RANGE, "t.yaml:12:42: contribution.evaluation_set.blake2b: expected 64 "
         "lower-case hex digits (a BLAKE2b-256, as b2sum -l 256 prints it), got 0123"},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: e.txt, blake2b: "
         "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef}\n",
         POLICY_ERR_RANGE, NULL},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: e.txt, blake2b: "
         "0000000000000000000000000000000000000000000000000000000000000000}\n",
         POLICY_ERR_TYPE, NULL},   /* a plain number to YAML (also all zeros) */
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: e.txt, blake2b: "
         "\"0000000000000000000000000000000000000000000000000000000000000000\"}\n",
         POLICY_ERR_RANGE, "t.yaml:12:43: contribution.evaluation_set.blake2b: all zeros, "
         "which is no file's hash; give the file's BLAKE2b-256 (b2sum -l 256)"},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: ../e.txt, blake2b: " HEX64 "}\n",
         POLICY_ERR_RANGE, "t.yaml:12:26: contribution.evaluation_set.name: expected a file "
         "name of 1 to 128 characters from [A-Za-z0-9._-] (no directory), got \"../e.txt\""},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: .., blake2b: " HEX64 "}\n",
         POLICY_ERR_RANGE, NULL},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: e.txt}\n", POLICY_ERR_MISSING,
         "t.yaml:12:19: contribution.evaluation_set.blake2b: required key is missing"},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: e.txt, blake2b: " HEX64
         ", windows: 0}\n", POLICY_ERR_RANGE, NULL},
        {CONTRIB "  measures: [loo]\n  evaluation_set: {name: e.txt, blake2b: " HEX64
         ", windows: 4097}\n", POLICY_ERR_RANGE, NULL},
        {CONTRIB "  measures: [shapley]\n  evaluation_set: {name: e.txt, blake2b: " HEX64
         "}\n  shapley: {budget: 0}\n", POLICY_ERR_RANGE,
         "t.yaml:13:21: contribution.shapley.budget: expected an integer in [1, 1000000], got 0"},
        {CONTRIB "  measures: [shapley]\n  evaluation_set: {name: e.txt, blake2b: " HEX64
         "}\n  shapley: {truncation: 1}\n", POLICY_ERR_RANGE,
         "t.yaml:13:25: contribution.shapley.truncation: expected a number in [0, 1), got 1"},
        {CONTRIB "  measures: [shapley]\n  evaluation_set: {name: e.txt, blake2b: " HEX64
         "}\n  shapley: {round_truncation: 11}\n", POLICY_ERR_RANGE, NULL},
        {CONTRIB "  payload_retention_days: 36501\n", POLICY_ERR_RANGE,
         "t.yaml:11:27: contribution.payload_retention_days: expected an integer in [0, 36500], "
         "got 36501"},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = load(cases[i].yaml, &p, &e);
        if (rc != cases[i].code || e.code != rc ||
            (cases[i].message && strcmp(e.message, cases[i].message) != 0)) {
            print_error("case %zu: want %d %s\n  got %d %s\n", i, cases[i].code,
                        cases[i].message ? cases[i].message : "", rc, e.message);
            bad++;
        }
        policy_free(&p);
    }
    assert_int_equal(bad, 0);

    /* the walk goes on inside credit_weights and the evaluation set: every error at once */
    static const char several[] = CONTRIB
        "  measures: [loo]\n"
        "  credit_weights: {lo: 1, loo: x}\n"
        "  evaluation_set: {name: a/b, blake2b: 12}\n";
    struct policy_errors all;
    assert_int_equal(policy_check_buffer("t.yaml", several, strlen(several), NULL, &all),
                     POLICY_ERR_UNKNOWN_KEY);
    assert_int_equal(all.total, 4);
    assert_string_equal(all.item[0].message, "t.yaml:12:20: contribution.credit_weights.lo: "
                        "unknown name \"lo\"; expected one of tokens, rounds, bytes, alignment, "
                        "loo, shapley");
    assert_string_equal(all.item[1].message, "t.yaml:12:32: contribution.credit_weights.loo: "
                        "expected a number, got \"x\"");
    assert_non_null(strstr(all.item[2].message, "t.yaml:13:26: contribution.evaluation_set.name"));
    assert_non_null(strstr(all.item[3].message, "t.yaml:13:40: contribution.evaluation_set.blake2b"));

    /* the measure names, both ways */
    for (int m = 0; m < POLICY_MEASURES; m++)
        assert_int_equal(policy_measure_parse(policy_measure_name((enum policy_measure)m)), m);
    assert_string_equal(policy_measure_name(POLICY_MEASURE_ALIGNMENT), "alignment");
    assert_null(policy_measure_name(POLICY_MEASURES));
    assert_int_equal(policy_measure_parse("Tokens"), -1);
    assert_int_equal(policy_measure_parse(NULL), -1);
}

/* Policy, site and roster files are read by one reader that refuses anything but a
 * regular file without blocking on it, and states the size limit. */
static void test_file_kinds(void **state)
{
    (void)state;
    char dir[] = "/tmp/aulac-policy-files-XXXXXX", fifo[64], big[64];
    assert_non_null(mkdtemp(dir));
    snprintf(fifo, sizeof fifo, "%s/fifo.yaml", dir);
    snprintf(big, sizeof big, "%s/big.yaml", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);   /* nobody ever writes: a blocking open hangs */
    FILE *f = fopen(big, "w");
    assert_non_null(f);
    for (int i = 0; i < (1 << 20) / 32 + 1; i++)
        fputs("# -----------------------------\n", f);   /* 32 bytes */
    fclose(f);
    struct policy p;
    struct site_policy s;
    struct roster r;
    struct policy_error e;
    char want[256];
    assert_int_equal(policy_load_file(fifo, &p, &e), POLICY_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot read: is a FIFO (named pipe), not a regular file",
             fifo);
    assert_string_equal(e.message, want);
    assert_int_equal(site_load_file(fifo, &s, &e), POLICY_ERR_IO);
    assert_string_equal(e.message, want);
    assert_int_equal(roster_load_file(fifo, &r, &e), POLICY_ERR_IO);
    assert_string_equal(e.message, want);
    assert_int_equal(policy_load_file("/dev/zero", &p, &e), POLICY_ERR_IO);
    assert_string_equal(e.message,
                        "/dev/zero: cannot read: is a character device, not a regular file");
    assert_int_equal(policy_load_file(dir, &p, &e), POLICY_ERR_IO);
    snprintf(want, sizeof want, "%s: cannot read: is a directory, not a regular file", dir);
    assert_string_equal(e.message, want);
    assert_int_equal(policy_load_file(big, &p, &e), POLICY_ERR_TOO_LARGE);
    snprintf(want, sizeof want, "%s: is 1048608 bytes, over the 1 MiB limit for policy files",
             big);
    assert_string_equal(e.message, want);
    assert_int_equal(site_load_file(big, &s, &e), POLICY_ERR_TOO_LARGE);
    assert_non_null(strstr(e.message, "over the 1 MiB limit for site policy files"));
    assert_int_equal(roster_load_file(big, &r, &e), POLICY_ERR_TOO_LARGE);
    assert_non_null(strstr(e.message, "over the 1 MiB limit for roster files"));
    /* one byte less is within the limit: then it is the content that is wrong */
    assert_int_equal(truncate(big, 1 << 20), 0);
    assert_int_equal(policy_load_file(big, &p, &e), POLICY_ERR_MISSING);
    unlink(fifo);
    unlink(big);
    rmdir(dir);
}

static int site_text(const char *text, struct site_policy *s, struct policy_error *e)
{
    return site_load_buffer("site.yaml", text, strlen(text), s, e);
}

/* A site's require (policies/README.md, "Site policy"): an experiment without privacy,
 * with less noise than the floor, or whose epsilon after all its rounds (or its target
 * epsilon when smaller) is over the ceiling is refused with the reason; one that meets
 * both is allowed. The epsilons are the accountant's (privacy/rdp.h). */
static void test_site_require(void **state)
{
    (void)state;
    struct policy demo, dp, capped, dp0;
    struct site_policy t;
    struct policy_error e;
    char why[512], site[256];
    assert_int_equal(policy_load_file(path_of("policies/examples/demo.yaml"), &demo, &e), 0);
    load_ok(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1}\n", &dp);
    load_ok(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1, target_epsilon: 2}\n",
            &capped);
    load_ok(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 0}\n", &dp0);
    struct policy loose;
    load_ok(BASE9 DP_OK "privacy: {clip: 1.0, noise_multiplier: 1.1, delta: 0.1}\n", &loose);
    double eps;
    assert_int_equal(rdp_epsilon(1.0, 1.1, 3, 1e-5, &eps), 0);
    assert_true(eps > 2 && eps < 100);   /* 3 rounds at z = 1.1 spend more than the target 2 */
    char eps_s[40];
    snprintf(eps_s, sizeof eps_s, "%.4g", eps);

    /* no requirement: everything goes */
    assert_int_equal(site_text("schema: 1\n", &t, &e), 0);
    assert_int_equal(site_check(&t, &demo, why, sizeof why), 0);
    assert_int_equal(site_check(&t, &dp0, why, sizeof why), 0);
    site_policy_free(&t);

    const struct {
        const char *site;
        const struct policy *p;
        const char *why;       /* NULL: allowed */
    } cases[] = {
        {"require: {min_noise_multiplier: 1}", &demo,
         "experiment demo-gpt2-bytes: it has no privacy section (its updates are neither "
         "clipped nor noised), and this site requires differential privacy "
         "(require.min_noise_multiplier 1)"},
        {"require: {max_epsilon: 8}", &demo,
         "experiment demo-gpt2-bytes: it has no privacy section (its updates are neither "
         "clipped nor noised), and this site requires differential privacy "
         "(require.max_epsilon 8)"},
        {"require: {min_noise_multiplier: 0.5, max_epsilon: 8}", &demo,
         "experiment demo-gpt2-bytes: it has no privacy section (its updates are neither "
         "clipped nor noised), and this site requires differential privacy "
         "(require.min_noise_multiplier 0.5 and require.max_epsilon 8)"},
        {"require: {min_noise_multiplier: 1.2}", &dp,
         "experiment t: privacy.noise_multiplier 1.1 is below this site's "
         "require.min_noise_multiplier 1.2"},
        {"require: {min_noise_multiplier: 1.1}", &dp, NULL},
        {"require: {min_noise_multiplier: 0.5}", &dp0,
         "experiment t: privacy.noise_multiplier 0 is below this site's "
         "require.min_noise_multiplier 0.5"},
        {"require: {max_epsilon: 1000}", &dp0,
         "experiment t: epsilon after its 3 rounds is inf at delta 1e-05 (noise_multiplier 0), "
         "over this site's require.max_epsilon 1000"},
        /* the target caps what the experiment can spend */
        {"require: {max_epsilon: 2}", &capped, NULL},
        {"require: {max_epsilon: 1.5}", &capped, "!target"},
        {"require: {max_epsilon: 1.5}", &dp, "!rounds"},
        /* a ceiling on epsilon holds at a ceiling on delta (default 1e-5) */
        {"require: {max_epsilon: 1000000}", &loose,
         "experiment t: privacy.delta 0.1 is over this site's require.max_delta 1e-05, the "
         "default with require.max_epsilon (its epsilon would be a weaker promise)"},
        {"require: {max_epsilon: 1000000, max_delta: 0.01}", &loose,
         "experiment t: privacy.delta 0.1 is over this site's require.max_delta 0.01 (its "
         "epsilon would be a weaker promise)"},
        {"require: {max_epsilon: 1000000, max_delta: 0.1}", &loose, NULL},
        {"require: {min_noise_multiplier: 1}", &loose, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(site, sizeof site, "schema: 1\n%s\n", cases[i].site);
        assert_int_equal(site_text(site, &t, &e), 0);
        int rc = site_check(&t, cases[i].p, why, sizeof why);
        char want[512];
        const char *w = cases[i].why;
        if (w && !strcmp(w, "!target"))
            snprintf(want, sizeof want, "experiment t: it may spend epsilon 2 at delta 1e-05 "
                     "(its privacy.target_epsilon; its 3 rounds would spend %s), over this "
                     "site's require.max_epsilon 1.5", eps_s);
        else if (w && !strcmp(w, "!rounds"))
            snprintf(want, sizeof want, "experiment t: epsilon after its 3 rounds is %s at "
                     "delta 1e-05 (noise_multiplier 1.1), over this site's "
                     "require.max_epsilon 1.5", eps_s);
        else
            snprintf(want, sizeof want, "%s", w ? w : "");
        if (rc != (w ? POLICY_ERR_SITE_REFUSED : 0) || strcmp(why, want) != 0)
            fail_msg("case %zu (%s): rc %d\n  want: %s\n  got:  %s", i, cases[i].site, rc, want,
                     why);
        site_policy_free(&t);
    }
    /* just over and just under the epsilon after all rounds */
    snprintf(site, sizeof site, "schema: 1\nrequire: {max_epsilon: %.17g}\n", eps * 1.000001);
    assert_int_equal(site_text(site, &t, &e), 0);
    assert_int_equal(site_check(&t, &dp, why, sizeof why), 0);
    site_policy_free(&t);
    snprintf(site, sizeof site, "schema: 1\nrequire: {max_epsilon: %.17g}\n", eps * 0.999999);
    assert_int_equal(site_text(site, &t, &e), 0);
    assert_int_equal(site_check(&t, &dp, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_non_null(strstr(why, "epsilon after its 3 rounds is"));
    site_policy_free(&t);
    /* more rounds spend more: 30 rounds at the same noise are over what 3 are */
    struct policy longer;
    load_ok(HEAD MODEL "training: {rounds: 30}\n" DP_OK
            "privacy: {clip: 1.0, noise_multiplier: 1.1}\n", &longer);
    snprintf(site, sizeof site, "schema: 1\nrequire: {max_epsilon: %.17g}\n", eps * 1.000001);
    assert_int_equal(site_text(site, &t, &e), 0);
    assert_int_equal(site_check(&t, &longer, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_non_null(strstr(why, "epsilon after its 30 rounds is"));
    site_policy_free(&t);
    policy_free(&longer);
    policy_free(&demo);
    policy_free(&dp);
    policy_free(&capped);
    policy_free(&dp0);
    policy_free(&loose);
}

static void test_site(void **state)
{
    (void)state;
    struct site_policy s;
    struct policy_error e;
    struct policy demo, big;
    char why[512];
    int rc = site_load_file(path_of("policies/examples/site-fpt.yaml"), &s, &e);
    if (rc)
        fail_msg("%s", e.message);
    assert_string_equal(s.member, "fpt");
    assert_false(s.any_proposer);
    assert_int_equal(s.n_experiments, 2);
    assert_int_equal(policy_load_file(path_of("policies/examples/demo.yaml"), &demo, &e), 0);
    assert_int_equal(policy_load_file(path_of("policies/examples/gpt2-124m-diloco.yaml"), &big,
                                      &e), 0);
    assert_int_equal(site_check(&s, &demo, why, sizeof why), 0);
    assert_string_equal(why, "");
    assert_int_equal(site_check(&s, &big, why, sizeof why), 0);

    struct site_policy t;
    const char *cases[][2] = {
        {"schema: 1\nallow: {proposers: [vnpt]}\n",
         "experiment demo-gpt2-bytes: proposer \"hust\" is not in this site's allow.proposers "
         "(vnpt)"},
        {"schema: 1\nallow: {proposers: []}\n",
         "experiment demo-gpt2-bytes: proposer \"hust\" is not in this site's allow.proposers "
         "(none)"},
        {"schema: 1\nallow: {experiments: [\"gpt2-*\", \"llama-?b\"]}\n",
         "experiment demo-gpt2-bytes: name matches none of this site's allow.experiments "
         "(gpt2-*, llama-?b)"},
        {"schema: 1\nmember: viettel\n",
         "experiment demo-gpt2-bytes: this site (viettel) is not among its participation.members"},
        {"schema: 1\nlimits: {max_parameters: 100000}\n",
         "experiment demo-gpt2-bytes: the model has 366432 parameters, over this site's "
         "limits.max_parameters 100000"},
        {"schema: 1\nlimits: {max_rounds: 10}\n",
         "experiment demo-gpt2-bytes: training.rounds 12 is over this site's limits.max_rounds 10"},
        {"schema: 1\nlimits: {max_local_steps: 19}\n",
         "experiment demo-gpt2-bytes: training.local_steps 20 is over this site's "
         "limits.max_local_steps 19"},
        {"schema: 1\nlimits: {max_batch_size: 4}\n",
         "experiment demo-gpt2-bytes: training.batch_size 8 is over this site's "
         "limits.max_batch_size 4"},
        {"schema: 1\nlimits: {max_seq_len: 32}\n",
         "experiment demo-gpt2-bytes: training.seq_len 64 is over this site's "
         "limits.max_seq_len 32"},
        {"schema: 1\nlimits: {max_tokens_per_round: 10000}\n",
         "experiment demo-gpt2-bytes: 10240 tokens per round (local_steps x batch_size x "
         "seq_len) is over this site's limits.max_tokens_per_round 10000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rc = site_load_buffer("site.yaml", cases[i][0], strlen(cases[i][0]), &t, &e);
        if (rc)
            fail_msg("case %zu: %s", i, e.message);
        rc = site_check(&t, &demo, why, sizeof why);
        assert_int_equal(rc, POLICY_ERR_SITE_REFUSED);
        if (strcmp(why, cases[i][1]) != 0)
            fail_msg("case %zu:\n  want: %s\n  got:  %s", i, cases[i][1], why);
        site_policy_free(&t);
    }
    /* the 124M model is over a 100M budget */
    rc = site_text("schema: 1\nlimits:\n  max_parameters: 1e8\n", &t, &e);
    assert_int_equal(rc, 0);
    assert_int_equal(site_check(&t, &big, why, sizeof why), POLICY_ERR_SITE_REFUSED);
    assert_non_null(strstr(why, "124439808 parameters"));
    site_policy_free(&t);

    /* parse errors use the same messages */
    rc = site_text("schema: 1\nlimits:\n  max_gpus: 4\n", &t, &e);
    assert_int_equal(rc, POLICY_ERR_UNKNOWN_KEY);
    assert_string_equal(e.message, "site.yaml:3:3: limits.max_gpus: unknown key; valid keys "
                        "here: max_parameters, max_artifact_bytes, max_rounds, max_local_steps, max_batch_size, "
                        "max_seq_len, max_tokens_per_round");
    rc = site_text("schema: 1\nallow:\n  experiments: [\"a/b\"]\n", &t, &e);
    assert_int_equal(rc, POLICY_ERR_RANGE);
    if (!strstr(e.message, "site.yaml:3:18: allow.experiments: expected a name pattern"))
        fail_msg("%s", e.message);
    /* require: a key given is a requirement, so 0 is refused; an unknown key is helped */
    rc = site_text("schema: 1\nrequire:\n  min_noise_multiplier: 0\n", &t, &e);
    assert_int_equal(rc, POLICY_ERR_RANGE);
    assert_string_equal(e.message, "site.yaml:3:25: require.min_noise_multiplier: expected a "
                        "finite number > 0, got 0");
    rc = site_text("schema: 1\nrequire:\n  max_epsilon: .inf\n", &t, &e);
    assert_int_equal(rc, POLICY_ERR_RANGE);
    rc = site_text("schema: 1\nrequire:\n  min_noise: 1\n", &t, &e);
    assert_int_equal(rc, POLICY_ERR_UNKNOWN_KEY);
    assert_string_equal(e.message, "site.yaml:3:3: require.min_noise: unknown key (did you "
                        "mean \"min_noise_multiplier\"?)");
    rc = site_text("member: fpt\n", &t, &e);
    assert_int_equal(rc, POLICY_ERR_MISSING);
    assert_string_equal(e.message, "site.yaml:1:1: schema: required key is missing");

    site_policy_init(&t);
    assert_int_equal(site_check(&t, &big, why, sizeof why), 0);
    site_policy_free(&t);
    assert_int_equal(site_check(NULL, &big, why, sizeof why), POLICY_ERR_ARG);

    site_policy_free(&s);
    policy_free(&demo);
    policy_free(&big);
}

/* model.family external and the pinned files (model.init, .config, .tokenizer): the
 * keys, each family's rules with their messages, the canonical lines (only when given, so
 * an old policy's text and hash do not move), policy_model_parameters, the round plan and
 * policy_diff. */
#define PIN_A "3f2a9c41aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define PIN_B "9c41000000000000000000000000000000000000000000000000000000000001"
#define EXT_HEAD HEAD "model:\n  family: external\n"
#define EXT_INIT "  init: {file: llama-tiny/model.safetensors, blake2b: \"" PIN_A "\"}\n"
#define EXT_TRAINING "training: {rounds: 3, seq_len: 128}\n"

static void expect_error(const char *text, int code, const char *message)
{
    struct policy p;
    struct policy_error e;
    int rc = load(text, &p, &e);
    if (rc != code || strcmp(e.message, message) != 0)
        fail_msg("got %d \"%s\", expected %d \"%s\"", rc, e.message, code, message);
}

static void test_external_model(void **state)
{
    (void)state;
    /* the smallest external policy */
    const char *ext = EXT_HEAD EXT_INIT EXT_TRAINING;
    struct policy p;
    struct policy_error e;
    if (load(ext, &p, &e) != 0)
        fail_msg("%s", e.message);
    assert_int_equal(p.model.family, POLICY_FAMILY_EXTERNAL);
    assert_true(p.model.init.present);
    assert_false(p.model.config.present);
    assert_false(p.model.tokenizer.present);
    assert_string_equal(p.model.init.file, "llama-tiny/model.safetensors");
    assert_int_equal(p.model.init.blake2b[0], 0x3f);
    assert_int_equal(p.model.init.blake2b[31], 0xaa);
    assert_int_equal(p.model.vocab_size, 0);
    assert_int_equal(p.model.n_positions, 0);
    assert_int_equal(p.model.n_layer + p.model.n_head + p.model.n_embd, 0);
    assert_int_equal(p.training.seq_len, 128);
    assert_int_equal(policy_model_parameters(&p.model), 0);
    struct policy_round_plan plan;
    char why[256];
    assert_int_equal(policy_round_plan(&p, 1, &plan, why, sizeof why), 0);
    assert_int_equal(plan.n_params, 0);
    struct gpt2_config zero;
    memset(&zero, 0, sizeof zero);
    assert_memory_equal(&plan.model, &zero, sizeof zero);
    assert_int_equal(plan.seq_len, 128);
    assert_int_equal(plan.local_steps, 100);
    policy_free(&p);

    /* canonical: family external, the init's two lines, no GPT-2 size */
    char *canon = canonical_of(ext);
    assert_non_null(strstr(canon, "\nmodel.family=external\n"));
    assert_non_null(strstr(canon, "\nmodel.init.blake2b=" PIN_A "\nmodel.init.file="
                                  "llama-tiny/model.safetensors\nmodel.seed=1337\n"));
    assert_null(strstr(canon, "model.vocab_size"));
    assert_null(strstr(canon, "model.n_"));
    assert_null(strstr(canon, "model.config"));
    assert_null(strstr(canon, "model.tokenizer"));
    assert_non_null(strstr(canon, "\ntraining.seq_len=128\n"));
    free(canon);

    /* with config and tokenizer: their lines, in key order */
    const char *full = EXT_HEAD EXT_INIT
        "  config: {file: llama-tiny/config.json, blake2b: \"" PIN_B "\"}\n"
        "  tokenizer:\n    file: llama-tiny/tokenizer.json\n    blake2b: \"" PIN_B "\"\n"
        EXT_TRAINING;
    canon = canonical_of(full);
    assert_non_null(strstr(canon, "\nmodel.config.blake2b=" PIN_B "\nmodel.config.file="
                                  "llama-tiny/config.json\nmodel.family=external\n"
                                  "model.init.blake2b=" PIN_A "\n"));
    assert_non_null(strstr(canon, "\nmodel.seed=1337\nmodel.tokenizer.blake2b=" PIN_B
                                  "\nmodel.tokenizer.file=llama-tiny/tokenizer.json\n"));
    free(canon);
    uint8_t h1[32], h2[32];
    hash_of(ext, h1);
    hash_of(full, h2);
    assert_memory_not_equal(h1, h2, 32);

    /* the old policies: no line of the new keys, the same text (test_canonical_vector
     * holds the whole of it) */
    canon = canonical_of(minimal);
    assert_null(strstr(canon, "model.init"));
    assert_null(strstr(canon, "model.config"));
    assert_null(strstr(canon, "model.tokenizer"));
    assert_non_null(strstr(canon, "\nmodel.family=gpt2\nmodel.n_embd=64\n"));
    free(canon);

    /* gpt2 with init and tokenizer: the sizes stay, the two files' lines join them */
    const char *gpt2_init = HEAD MODEL
        "  init: {file: gpt2/model.safetensors, blake2b: \"" PIN_A "\"}\n"
        "  tokenizer: {file: gpt2/tokenizer.json, blake2b: \"" PIN_B "\"}\n"
        "training:\n  rounds: 3\n";
    canon = canonical_of(gpt2_init);
    assert_non_null(strstr(canon, "\nmodel.family=gpt2\nmodel.init.blake2b=" PIN_A
                                  "\nmodel.init.file=gpt2/model.safetensors\nmodel.n_embd=64\n"));
    assert_non_null(strstr(canon, "\nmodel.tokenizer.file=gpt2/tokenizer.json\n"
                                  "model.vocab_size=256\n"));
    free(canon);
    if (load(gpt2_init, &p, &e) != 0)
        fail_msg("%s", e.message);
    assert_int_equal(policy_model_parameters(&p.model), 2 * 64 * 256 / 2 + 64 * 64 +
                     2 * (12 * 64 * 64 + 13 * 64) + 2 * 64);
    struct policy q;
    assert_int_equal(load(minimal, &q, &e), 0);
    size_t n = 0;
    assert_int_equal(policy_diff(&q, &p, NULL, NULL, &n), 0);
    assert_int_equal(n, 4);   /* init.blake2b, init.file, tokenizer.blake2b, tokenizer.file */
    policy_free(&q);
    policy_free(&p);

    /* each family's refusals */
    expect_error(HEAD MODEL "  config: {file: c.json, blake2b: \"" PIN_A "\"}\n"
                 "training:\n  rounds: 3\n", POLICY_ERR_INVALID,
                 "t.yaml:9:3: model.config: family gpt2 takes no config: the GPT-2 sizes "
                 "(vocab_size, n_positions, n_layer, n_head, n_embd) are the config; remove "
                 "model.config, or use family: external");
    static const char *const sizes[] = {"vocab_size: 512", "n_positions: 64", "seq_len: 64",
                                        "n_layer: 2", "n_head: 4", "n_embd: 64"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        char text[1024], msg[512], key[32];
        snprintf(text, sizeof text, EXT_HEAD "  %s\n" EXT_INIT EXT_TRAINING, sizes[i]);
        snprintf(key, sizeof key, "%.*s", (int)strcspn(sizes[i], ":"), sizes[i]);
        snprintf(msg, sizeof msg, "t.yaml:6:3: model.%s: a size of the built-in GPT-2, not used "
                 "by family external, whose tensors are those of model.init (and of "
                 "model.config when given); remove the key%s",
                 strcmp(key, "seq_len") ? key : "n_positions",
                 strncmp(sizes[i] + 1, "_positions", 10) && strcmp(key, "seq_len") ? "" :
                 " (training.seq_len is the sequence length)");
        expect_error(text, POLICY_ERR_INVALID, msg);
    }
    expect_error(EXT_HEAD EXT_TRAINING, POLICY_ERR_MISSING,
                 "t.yaml:4:1: model.init: family external needs init: {file, blake2b}, the "
                 "safetensors file of round 0's tensors (its names and shapes are the model)");
    expect_error(EXT_HEAD EXT_INIT "training: {rounds: 3}\n", POLICY_ERR_MISSING,
                 "t.yaml:7:1: training.seq_len: family external needs training.seq_len, the "
                 "tokens per sequence (it has no n_positions to take it from)");
    expect_error(EXT_HEAD EXT_INIT EXT_TRAINING
                 "contribution:\n  measures: [tokens, shapley]\n"
                 "  evaluation_set: {name: e.bin, blake2b: \"" PIN_A "\"}\n",
                 POLICY_ERR_UNIMPLEMENTED,
                 "t.yaml:9:13: contribution.measures: shapley with family external is not "
                 "implemented: the coordinator evaluates only the built-in GPT-2; use tokens, "
                 "rounds, bytes, alignment");
    expect_error(EXT_HEAD EXT_INIT EXT_TRAINING "contribution: {measures: [loo, alignment]}\n",
                 POLICY_ERR_UNIMPLEMENTED,
                 "t.yaml:8:26: contribution.measures: loo with family external is not "
                 "implemented: the coordinator evaluates only the built-in GPT-2; use tokens, "
                 "rounds, bytes, alignment");
    /* alignment, bytes, rounds, tokens work for any model */
    assert_int_equal(load(EXT_HEAD EXT_INIT EXT_TRAINING
                          "contribution: {measures: [tokens, rounds, bytes, alignment]}\n", &p,
                          &e), 0);
    policy_free(&p);
    /* a family external without the GPT-2 sizes is no missing-key error, gpt2 still is */
    expect_error(HEAD "model:\n  family: gpt2\n  n_layer: 2\n  n_head: 4\n  n_embd: 64\n"
                 "training:\n  rounds: 3\n", POLICY_ERR_MISSING,
                 "t.yaml:5:3: model.n_positions: required key is missing");
    {
        static struct policy_errors l;
        const char *gpt3 = HEAD "model:\n  family: gpt3\n" EXT_TRAINING;
        assert_int_not_equal(check(gpt3, &l), 0);
        bool found = false;
        for (size_t i = 0; i < l.n; i++)
            found |= strcmp(l.item[i].message, "t.yaml:5:11: model.family: expected one of "
                            "gpt2, external, got \"gpt3\"") == 0;
        assert_true(found);
    }

    /* the pinned file's keys */
    static const struct {
        const char *init, *message;
        int code;
    } bad[] = {
        {"{file: /srv/m.safetensors, blake2b: \"" PIN_A "\"}", "t.yaml:6:16: model.init.file: "
         "expected a relative file path of 1 to 255 bytes, got \"/srv/m.safetensors\": an "
         "absolute path; give it relative to the policy file's directory", POLICY_ERR_RANGE},
        {"{file: ../m.safetensors, blake2b: \"" PIN_A "\"}", "t.yaml:6:16: model.init.file: "
         "expected a relative file path of 1 to 255 bytes, got \"../m.safetensors\": a \"..\" "
         "component; the file must lie at or below the policy file's directory",
         POLICY_ERR_RANGE},
        {"{file: a/../../m, blake2b: \"" PIN_A "\"}", "t.yaml:6:16: model.init.file: expected a "
         "relative file path of 1 to 255 bytes, got \"a/../../m\": a \"..\" component; the "
         "file must lie at or below the policy file's directory", POLICY_ERR_RANGE},
        {"{file: a//m, blake2b: \"" PIN_A "\"}", "t.yaml:6:16: model.init.file: expected a "
         "relative file path of 1 to 255 bytes, got \"a//m\": an empty path component (\"//\" "
         "or a trailing '/')", POLICY_ERR_RANGE},
        {"{file: a/, blake2b: \"" PIN_A "\"}", "t.yaml:6:16: model.init.file: expected a "
         "relative file path of 1 to 255 bytes, got \"a/\": an empty path component (\"//\" "
         "or a trailing '/')", POLICY_ERR_RANGE},
        {"{file: ./m, blake2b: \"" PIN_A "\"}", "t.yaml:6:16: model.init.file: expected a "
         "relative file path of 1 to 255 bytes, got \"./m\": a \".\" component; write the path "
         "without it", POLICY_ERR_RANGE},
        {"{file: 'a\\m', blake2b: \"" PIN_A "\"}", "t.yaml:6:17: model.init.file: expected a "
         "relative file path of 1 to 255 bytes, got \"a\\\\m\": a '\\' in the path; separate "
         "directories with '/'", POLICY_ERR_RANGE},
        {"{file: \"a\\tm\", blake2b: \"" PIN_A "\"}", "t.yaml:6:17: model.init.file: expected a "
         "relative file path of 1 to 255 bytes, got \"a\\x09m\": the path holds control "
         "characters or invalid UTF-8", POLICY_ERR_RANGE},
        {"{file: \"a\\0m\", blake2b: \"" PIN_A "\"}", NULL, POLICY_ERR_RANGE},
        {"{file: \"\", blake2b: \"" PIN_A "\"}", "t.yaml:6:17: model.init.file: expected a "
         "relative file path of 1 to 255 bytes, got \"\": the path is empty or too long",
         POLICY_ERR_RANGE},
        {"{file: [m], blake2b: \"" PIN_A "\"}", "t.yaml:6:16: model.init.file: expected a "
         "relative file path, got a list", POLICY_ERR_TYPE},
        {"{file: m, blake2b: \"3F2A\"}", "t.yaml:6:29: model.init.blake2b: expected 64 "
         "lower-case hex digits (a BLAKE2b-256, as b2sum -l 256 prints it), got \"3F2A\"",
         POLICY_ERR_RANGE},
        {"{file: m}", "t.yaml:6:9: model.init.blake2b: required key is missing",
         POLICY_ERR_MISSING},
        {"{blake2b: \"" PIN_A "\"}", "t.yaml:6:9: model.init.file: required key is missing",
         POLICY_ERR_MISSING},
        {"{file: m, blake2b: \"" PIN_A "\", size: 3}", "t.yaml:6:96: model.init.size: unknown "
         "key (did you mean \"file\"?)", POLICY_ERR_UNKNOWN_KEY},
        {"m.safetensors", "t.yaml:6:9: model.init: expected a mapping of keys, got "
         "\"m.safetensors\"", POLICY_ERR_TYPE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[1024];
        snprintf(text, sizeof text, EXT_HEAD "  init: %s\n" EXT_TRAINING, bad[i].init);
        int rc = load(text, &p, &e);
        if (rc != bad[i].code || (bad[i].message && strcmp(e.message, bad[i].message) != 0))
            fail_msg("case %zu: got %d \"%s\", expected %d \"%s\"", i, rc, e.message,
                     bad[i].code, bad[i].message ? bad[i].message : "");
    }
    /* 255 bytes of path are fine, 256 are not */
    char text[1024], path[300];
    memset(path, 'a', 256);
    path[256] = '\0';
    snprintf(text, sizeof text, EXT_HEAD "  init: {file: %s, blake2b: \"" PIN_A "\"}\n"
             EXT_TRAINING, path);
    assert_int_equal(load(text, &p, &e), POLICY_ERR_RANGE);
    path[255] = '\0';
    snprintf(text, sizeof text, EXT_HEAD "  init: {file: %s, blake2b: \"" PIN_A "\"}\n"
             EXT_TRAINING, path);
    assert_int_equal(load(text, &p, &e), 0);
    assert_int_equal(strlen(p.model.init.file), 255);
    policy_free(&p);
}

int main(void)
{
    find_root();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_parse),
        cmocka_unit_test(test_experiment_id),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_hash_invariance),
        cmocka_unit_test(test_canonical_vector),
        cmocka_unit_test(test_contribution),
        cmocka_unit_test(test_policy_diff),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(every_error_of_a_policy_is_reported_in_file_order),
        cmocka_unit_test(missing_repeated_and_misplaced_keys_are_reported_and_the_walk_goes_on),
        cmocka_unit_test(an_error_that_stops_the_reading_is_the_only_one),
        cmocka_unit_test(at_most_fifty_errors_are_kept_and_the_rest_counted),
        cmocka_unit_test(every_error_of_a_site_policy_is_reported),
        cmocka_unit_test(test_numbers_directives_and_size),
        cmocka_unit_test(test_file_kinds),
        cmocka_unit_test(test_members_all),
        cmocka_unit_test(test_unapplied_keys_refused),
        cmocka_unit_test(test_aggregation_rules),
        cmocka_unit_test(test_privacy),
        cmocka_unit_test(test_site),
        cmocka_unit_test(test_site_require),
        cmocka_unit_test(test_external_model),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
