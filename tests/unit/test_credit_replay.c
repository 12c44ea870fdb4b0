/* credit/replay (`aulac credits verify`) and ledger/export_read, on ledgers made here
 * the way the coordinator makes them: three members, two rounds, payloads compressed
 * with the policy's uplink and kept in the retention store, every round averaged,
 * scored and stepped with aggregate/ and credit/, and the credits at the end. A faithful
 * ledger matches; each way of lying (a payload byte, a missing payload, a score, a model
 * hash, a credit) is caught and named; the tolerance lets through what it should and no
 * more. export_read: an export reads back and audits; edits to it are named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aggregate/round.h"
#include "codec/codec.h"
#include "common/fileio.h"
#include "common/hex.h"
#include "credit/evalset.h"
#include "credit/replay.h"
#include "credit/score.h"
#include "credit/shares.h"
#include "crypto/digest.h"
#include "crypto/keys.h"
#include "ledger/checkpoint.h"
#include "ledger/entry.h"
#include "ledger/export_read.h"
#include "ledger/ledger.h"
#include "ledger/merkle.h"
#include "model/gpt2.h"
#include "model/model_hash.h"
#include "policies/plan.h"
#include "policies/policy.h"

#define ROUNDS 2
#define MEMBERS 3
static const char *const member_ids[MEMBERS] = { "alpha", "beta", "gamma" };

enum tamper {
    T_NONE,
    T_SHAPLEY_BIG,      /* a recorded shapley value off by 1e-3 */
    T_SHAPLEY_TINY,     /* off by 1e-7 relative: inside the tolerance */
    T_ALIGN_TINY,       /* an alignment off by one ulp: alignment is exact */
    T_MODEL_HASH,       /* round 1's round_closed names another model */
    T_CREDITS,          /* a credit share off by one ulp */
    T_SEED,             /* round 2's seed is not credit_round_seed's */
};

struct fix {
    char dir[256];                  /* the data directory */
    char evalsets[300];
    char id[POLICY_EXPERIMENT_ID_MAX + 1];
    uint8_t payload_hash[ROUNDS][MEMBERS][32];
    char *lines[256];               /* what the replay printed */
    size_t n_lines;
};

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void append(struct ledger *l, const struct entry *e)
{
    uint8_t *bytes;
    size_t len;
    assert_int_equal(entry_encode(e, &bytes, &len), 0);
    MDB_txn *txn;
    assert_int_equal(ledger_txn_begin(l, &txn), 0);
    assert_int_equal(ledger_append(l, txn, bytes, len, NULL), 0);
    assert_int_equal(ledger_txn_commit(l, txn), 0);
    free(bytes);
}

static const char eval_text[] =
    "Mot buoi sang mua thu, la vang roi tren con duong nho dan ve lang. "
    "Nguoi ta noi rang hoc mot biet muoi, nhung lam moi biet that. "
    "Cac thanh vien cua lien minh cung nhau huan luyen mot mo hinh ngon ngu. ";

static void write_evalset(struct fix *f, uint8_t hash[32])
{
    char path[400];
    assert_int_equal(file_mkdirs(f->evalsets, 0755), 0);
    snprintf(path, sizeof path, "%s/eval.txt", f->evalsets);
    assert_int_equal(file_write_atomic(path, eval_text, sizeof eval_text - 1, 0644), 0);
    crypto_blake2b256(eval_text, sizeof eval_text - 1, hash);
}

static size_t policy_text(char *out, size_t cap, const uint8_t evalset_hash[32])
{
    char hex[65];
    hex_encode(evalset_hash, 32, hex);
    int n = snprintf(out, cap,
        "schema: 1\n"
        "metadata: { name: replay-test, proposer: alpha }\n"
        "model: { family: gpt2, vocab_size: 256, n_positions: 16, n_layer: 1, n_head: 2, "
        "n_embd: 16, seed: 7 }\n"
        "data: { min_tokens_per_member: 1000, validation_fraction: 0.1 }\n"
        "training:\n"
        "  rounds: %d\n"
        "  local_steps: 2\n"
        "  batch_size: 2\n"
        "  seq_len: 16\n"
        "  inner: { kind: adamw, lr: 0.005, weight_decay: 0.0, beta1: 0.9, beta2: 0.95, "
        "grad_clip: 1.0 }\n"
        "  outer: { kind: nesterov, lr: 0.7, momentum: 0.9 }\n"
        "aggregation: { rule: fedavg, weighting: tokens }\n"
        "compression:\n"
        "  uplink: { method: topk, block_size: 256, k_per_block: 32, quant: int8, zstd_level: 3, "
        "error_feedback: true }\n"
        "  downlink: { method: topk, block_size: 256, k_per_block: 128, quant: int8, "
        "zstd_level: 3, error_feedback: true }\n"
        "participation: { members: [alpha, beta, gamma], min_members: 2, round_deadline_s: 60, "
        "grace_s: 1 }\n"
        "contribution:\n"
        "  measures: [tokens, rounds, bytes, alignment, loo, shapley]\n"
        "  evaluation_set: { name: eval.txt, blake2b: %s, windows: 4 }\n"
        "  shapley: { budget: 64, truncation: 0.0, round_truncation: 0.0 }\n",
        ROUNDS, hex);
    assert_true(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* The coordinator's contribution_scores entry (coordinator/record.c scores_entry_fill):
 * the policy's measures in enum order. members: n records. */
static void scores_entry(const struct policy *p, const char *id, uint64_t round,
                         const struct agg_update *u, size_t n, const uint8_t seed[32],
                         const struct credit_round_scores *s,
                         struct entry_contribution_scores *e, struct entry_member_score *members)
{
    memset(e, 0, sizeof *e);
    snprintf(e->experiment, sizeof e->experiment, "%s", id);
    e->round = round;
    int which[POLICY_MEASURES];
    for (int m = 0; m < POLICY_MEASURES; m++) {
        if (!(p->contribution.measures & (1u << m)))
            continue;
        which[e->n_measures] = m;
        snprintf(e->measures[e->n_measures++], sizeof e->measures[0], "%s",
                 policy_measure_name((enum policy_measure)m));
    }
    memcpy(e->evalset_hash, p->contribution.evalset_hash, 32);
    memcpy(e->seed, seed, 32);
    e->evaluations = s->evaluations;
    e->exact = (uint8_t)s->exact;
    e->base_loss = s->base_loss;
    e->model_loss = s->model_loss;
    e->n = (uint32_t)n;
    e->members = members;
    for (size_t i = 0; i < n; i++) {
        memset(&members[i], 0, sizeof members[i]);
        memcpy(members[i].member, u[i].member, sizeof members[i].member);
        memcpy(members[i].payload_hash, u[i].payload_hash, 32);
        for (uint32_t k = 0; k < e->n_measures; k++)
            members[i].values[k] = s->value[i][which[k]];
    }
}

static int measure_index(const struct entry_contribution_scores *e, const char *name)
{
    for (uint32_t k = 0; k < e->n_measures; k++)
        if (strcmp(e->measures[k], name) == 0)
            return (int)k;
    fail_msg("no measure %s", name);
    return -1;
}

/* The experiment, as the coordinator would record it, with one lie (t). */
static void build(struct fix *f, enum tamper t)
{
    uint8_t es_hash[32];
    write_evalset(f, es_hash);
    char yaml[4096];
    size_t yaml_len = policy_text(yaml, sizeof yaml, es_hash);
    struct policy p;
    struct policy_error err;
    if (policy_load_buffer("replay-test.yaml", yaml, yaml_len, &p, &err) != 0)
        fail_msg("%s", err.message);
    uint8_t ph[32];
    assert_int_equal(policy_hash(&p, ph), 0);
    assert_int_equal(policy_experiment_id(&p, ph, f->id, sizeof f->id), 0);
    struct policy_round_plan plan;
    char why[400];
    assert_int_equal(policy_round_plan(&p, 1, &plan, why, sizeof why), 0);
    const size_t n = plan.n_params;

    struct ledger *l;
    assert_int_equal(ledger_open(f->dir, NULL, &l), 0);
    struct entry e = { .type = ENTRY_GENESIS, .timestamp_ms = 1 };
    struct entry_member gm[MEMBERS] = { 0 };
    for (int i = 0; i < MEMBERS; i++) {
        snprintf(gm[i].id, sizeof gm[i].id, "%s", member_ids[i]);
        gm[i].roles = ENTRY_ROLE_MEMBER;
        memset(gm[i].public_key, i + 1, 32);
    }
    e.u.genesis.alliance = "test-alliance";
    e.u.genesis.n_members = MEMBERS;
    e.u.genesis.members = gm;
    append(l, &e);

    uint8_t proposal[32];
    memset(proposal, 0x5a, 32);
    memset(&e, 0, sizeof e);
    e.type = ENTRY_POLICY_PROPOSED;
    e.timestamp_ms = 2;
    struct entry_motion *mo = &e.u.motion;
    memcpy(mo->proposal_hash, proposal, 32);
    mo->kind = 1;
    snprintf(mo->proposer, sizeof mo->proposer, "alpha");
    snprintf(mo->experiment, sizeof mo->experiment, "%s", f->id);
    mo->document = (uint8_t *)yaml;
    mo->document_len = yaml_len;
    crypto_blake2b256(yaml, yaml_len, mo->document_digest);
    memcpy(mo->content_hash, ph, 32);
    mo->created_ms = 1;
    mo->expires_ms = 1000000;
    append(l, &e);

    float *base = malloc(n * sizeof(float)), *next = malloc(n * sizeof(float));
    float *avg = malloc(n * sizeof(float)), *delta = malloc(n * sizeof(float));
    float *residual[MEMBERS], *down_residual = calloc(n, sizeof(float));
    for (int m = 0; m < MEMBERS; m++)
        residual[m] = calloc(n, sizeof(float));
    assert_int_equal(gpt2_init_params(&plan.model, p.model.seed, base), 0);
    uint8_t base_hash[32];
    model_hash(base, n, base_hash);
    memset(&e, 0, sizeof e);
    e.type = ENTRY_EXPERIMENT_STARTED;
    snprintf(e.u.experiment.experiment, sizeof e.u.experiment.experiment, "%s", f->id);
    memcpy(e.u.experiment.policy_hash, ph, 32);
    memcpy(e.u.experiment.model_hash, base_hash, 32);
    memcpy(e.u.experiment.proposal_hash, proposal, 32);
    e.u.experiment.rounds = ROUNDS;
    append(l, &e);

    struct evalset es;
    char path[600];
    snprintf(path, sizeof path, "%s/eval.txt", f->evalsets);
    assert_int_equal(evalset_load(path, es_hash, &es, why, sizeof why), 0);
    struct evaluator *ev;
    assert_int_equal(evaluator_create(&plan.model, &es, p.contribution.eval_windows, plan.seq_len,
                                      &ev, why, sizeof why), 0);
    struct outer_opt outer;
    assert_int_equal(agg_outer_init(&p, n, &outer), 0);
    struct credit_totals tot;
    credit_totals_init(&tot);
    snprintf(path, sizeof path, "%s/experiments/%s/payloads", f->dir, f->id);
    assert_int_equal(file_mkdirs(path, 0755), 0);

    uint64_t rng = 42;
    for (uint64_t r = 1; r <= ROUNDS; r++) {
        assert_int_equal(policy_round_plan(&p, r, &plan, why, sizeof why), 0);
        struct agg_update u[MEMBERS];
        uint8_t *payload[MEMBERS];
        memset(u, 0, sizeof u);
        /* listed out of id order: the replay sorts */
        for (int k = MEMBERS - 1; k >= 0; k--) {
            const int m = k;
            const float scale = 0.02f * (float)(m + 1);
            for (size_t i = 0; i < n; i++)
                delta[i] = scale * ((float)(splitmix(&rng) >> 40) / (float)(1u << 24) - 0.5f);
            size_t len;
            assert_int_equal(codec_encode(delta, n, &plan.uplink, residual[m], &payload[m], &len),
                             0);
            struct agg_update *x = &u[MEMBERS - 1 - k];
            snprintf(x->member, sizeof x->member, "%s", member_ids[m]);
            x->tokens = 1000u * (uint64_t)(m + 1);
            x->samples = 10;
            x->weight = agg_weight(p.aggregation.weighting, x->tokens, x->samples);
            x->payload = payload[m];
            x->len = len;
            crypto_blake2b256(payload[m], len, x->payload_hash);
            memcpy(f->payload_hash[r - 1][m], x->payload_hash, 32);
            char hex[65];
            hex_encode(x->payload_hash, 32, hex);
            snprintf(path, sizeof path, "%s/experiments/%s/payloads/%s.bin", f->dir, f->id, hex);
            assert_int_equal(file_write_atomic(path, payload[m], len, 0644), 0);
            memset(&e, 0, sizeof e);
            e.type = ENTRY_UPDATE_ACCEPTED;
            struct entry_update *up = &e.u.update;
            snprintf(up->experiment, sizeof up->experiment, "%s", f->id);
            up->round = r;
            snprintf(up->member, sizeof up->member, "%s", member_ids[m]);
            memcpy(up->payload_hash, x->payload_hash, 32);
            up->tokens = x->tokens;
            up->samples = x->samples;
            up->bytes = len;
            up->train_loss = 5.0;
            memcpy(up->base_model_hash, base_hash, 32);
            up->codec.format_version = CODEC_FORMAT_VERSION;
            up->codec.block_size = plan.uplink.block_size;
            up->codec.k_per_block = plan.uplink.k_per_block;
            up->codec.quant = plan.uplink.quant;
            up->codec.zstd_level = plan.uplink.zstd_level;
            up->codec.error_feedback = 1;
            append(l, &e);
        }
        agg_sort(u, MEMBERS);
        struct credit_round_input in = {
            .policy = &p, .plan = &plan, .outer = &outer, .base = base, .n_params = n,
            .updates = u, .n = MEMBERS, .ev = ev,
        };
        credit_round_seed(f->id, r, base_hash, u, MEMBERS, in.seed);
        struct credit_round_scores s;
        assert_int_equal(credit_score_round(&in, &s, why, sizeof why), 0);
        assert_int_equal(agg_average(&plan, n, u, MEMBERS, NULL, avg, NULL, why, sizeof why), 0);
        uint8_t agg_hash[32], next_hash[32];
        model_hash(avg, n, agg_hash);
        uint8_t *down = NULL;
        size_t down_len = 0;
        assert_int_equal(agg_next_model(&plan, &outer, down_residual, base, avg, n, next, &down,
                                        &down_len, why, sizeof why), 0);
        free(down);
        model_hash(next, n, next_hash);

        char participants[MEMBERS][ENTRY_ID_MAX + 1];
        memset(&e, 0, sizeof e);
        e.type = ENTRY_ROUND_CLOSED;
        struct entry_round_closed *rc = &e.u.round_closed;
        snprintf(rc->experiment, sizeof rc->experiment, "%s", f->id);
        rc->round = r;
        rc->n_participants = MEMBERS;
        for (int i = 0; i < MEMBERS; i++)
            memcpy(participants[i], u[i].member, sizeof participants[i]);
        rc->participants = participants;
        memcpy(rc->aggregate_hash, agg_hash, 32);
        memcpy(rc->model_hash, next_hash, 32);
        if (t == T_MODEL_HASH && r == 1)
            rc->model_hash[0] ^= 1;
        rc->mean_loss = 5.0;
        rc->tokens = 6000;
        append(l, &e);

        struct entry_member_score ms[MEMBERS];
        memset(&e, 0, sizeof e);
        e.type = ENTRY_CONTRIBUTION_SCORES;
        scores_entry(&p, f->id, r, u, MEMBERS, in.seed, &s, &e.u.scores, ms);
        struct entry_contribution_scores *se = &e.u.scores;
        if (r == 2) {
            double *v = &ms[1].values[measure_index(se, "shapley")];
            if (t == T_SHAPLEY_BIG)
                *v += 1e-3;
            if (t == T_SHAPLEY_TINY)
                *v += 1e-7 * fabs(*v);
            if (t == T_ALIGN_TINY) {
                double *a = &ms[2].values[measure_index(se, "alignment")];
                *a = nextafter(*a, 2.0);
            }
            if (t == T_SEED)
                se->seed[5] ^= 0x40;
        }
        assert_int_equal(credit_totals_add(&tot, se), 0);
        append(l, &e);
        credit_round_scores_free(&s);
        for (int m = 0; m < MEMBERS; m++)
            free(payload[m]);
        float *tmp = base;
        base = next;
        next = tmp;
        memcpy(base_hash, next_hash, 32);
    }
    memset(&e, 0, sizeof e);
    e.type = ENTRY_CREDITS;
    assert_int_equal(credit_shares(&tot, &p.contribution, &e.u.credits), 0);
    if (t == T_CREDITS)
        e.u.credits.members[0].share = nextafter(e.u.credits.members[0].share, 2.0);
    append(l, &e);
    free(e.u.credits.members);
    memset(&e, 0, sizeof e);
    e.type = ENTRY_EXPERIMENT_FINISHED;
    snprintf(e.u.experiment.experiment, sizeof e.u.experiment.experiment, "%s", f->id);
    memcpy(e.u.experiment.policy_hash, ph, 32);
    memcpy(e.u.experiment.model_hash, base_hash, 32);
    e.u.experiment.rounds = ROUNDS;
    append(l, &e);

    ledger_close(l);
    credit_totals_free(&tot);
    outer_free(&outer);
    evaluator_destroy(ev);
    evalset_free(&es);
    policy_free(&p);
    for (int m = 0; m < MEMBERS; m++)
        free(residual[m]);
    free(down_residual);
    free(base);
    free(next);
    free(avg);
    free(delta);
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/aulac-replay-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir) || sodium_init() < 0)
        return -1;
    snprintf(f->evalsets, sizeof f->evalsets, "%s/evalsets", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    for (size_t i = 0; i < f->n_lines; i++)
        free(f->lines[i]);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static void keep_line(void *arg, const char *text)
{
    struct fix *f = arg;
    if (getenv("AULAC_TEST_VERBOSE"))
        printf("    | %s\n", text);
    if (f->n_lines < sizeof f->lines / sizeof f->lines[0])
        f->lines[f->n_lines++] = strdup(text);
}

static int has_line(const struct fix *f, const char *prefix, const char *part)
{
    for (size_t i = 0; i < f->n_lines; i++)
        if (strncmp(f->lines[i], prefix, strlen(prefix)) == 0 && strstr(f->lines[i], part))
            return 1;
    return 0;
}

static void print_lines(const struct fix *f)
{
    for (size_t i = 0; i < f->n_lines; i++)
        fprintf(stderr, "    | %s\n", f->lines[i]);
}

#define ASSERT_LINE(f, prefix, part)                                                      \
    do {                                                                                  \
        if (!has_line(f, prefix, part)) {                                                 \
            print_lines(f);                                                               \
            fail_msg("no line \"%s...%s...\"", prefix, part);                             \
        }                                                                                 \
    } while (0)

static int get_from_ledger(void *arg, uint64_t index, uint8_t **bytes, size_t *len, char *why,
                           size_t cap)
{
    int rc = ledger_get(arg, index, bytes, len);
    if (rc)
        snprintf(why, cap, "%s", ledger_strerror(rc));
    return rc;
}

/* Replays f's data directory; returns credit_replay's code. */
static int replay(struct fix *f, const char *experiment, const char *evalsets,
                  struct replay_summary *sum)
{
    struct ledger *l;
    struct ledger_options lo = { .read_only = 1 };
    assert_int_equal(ledger_open(f->dir, &lo, &l), 0);
    struct replay_entries src = { .get = get_from_ledger, .arg = l };
    assert_int_equal(ledger_size(l, &src.size), 0);
    struct replay_options o = { .data_dir = f->dir, .evalset_dir = evalsets,
                                .experiment = experiment, .line = keep_line, .arg = f };
    char why[600] = "";
    int rc = credit_replay(&src, &o, sum, why, sizeof why);
    if (rc != 0)
        keep_line(f, why);
    ledger_close(l);
    return rc;
}

static void payload_file(const struct fix *f, int round, int member, char *out, size_t cap)
{
    char hex[65];
    hex_encode(f->payload_hash[round - 1][member], 32, hex);
    snprintf(out, cap, "%s/experiments/%s/payloads/%s.bin", f->dir, f->id, hex);
}

static void a_faithful_ledger_matches_every_round_and_the_credits(void **state)
{
    struct fix *f = *state;
    build(f, T_NONE);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    if (s.problems)
        print_lines(f);
    assert_int_equal(s.problems, 0);
    assert_int_equal(s.experiments, 1);
    assert_int_equal(s.rounds, ROUNDS);
    assert_int_equal(s.rounds_matched, ROUNDS);
    assert_int_equal(s.credits_matched, 1);
    ASSERT_LINE(f, "round 1: match (model ", "tokens rounds bytes alignment exact; loo shapley "
                "within tolerance, max |diff| 0;");
    ASSERT_LINE(f, "round 2: match", "exact Shapley");
    ASSERT_LINE(f, "credits: match", "from the recomputed scores, max |diff| 0");
}

static void a_flipped_payload_byte_names_the_round_and_the_member(void **state)
{
    struct fix *f = *state;
    build(f, T_NONE);
    char path[700];
    payload_file(f, 2, 1, path, sizeof path);   /* beta's of round 2 */
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 20, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, 20, SEEK_SET);
    fputc(c ^ 0x01, fp);
    fclose(fp);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    assert_int_equal(s.payloads_altered, 1);
    assert_true(s.problems > 0);
    assert_int_equal(s.rounds_matched, 1);
    ASSERT_LINE(f, "round 2: the payload of beta is altered: it hashes to ", "update_accepted says");
    ASSERT_LINE(f, "round 2: NOT CHECKED", "payloads are incomplete");
    ASSERT_LINE(f, "round 1: match", "");
}

static void a_deleted_payload_is_missing_and_no_later_round_is_rebuilt(void **state)
{
    struct fix *f = *state;
    build(f, T_NONE);
    char path[700], hex[65];
    payload_file(f, 1, 2, path, sizeof path);   /* gamma's of round 1 */
    assert_int_equal(unlink(path), 0);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    assert_int_equal(s.payloads_missing, 1);
    assert_int_equal(s.rounds_matched, 0);
    hex_encode(f->payload_hash[0][2], 32, hex);
    hex[16] = 0;
    ASSERT_LINE(f, "round 1: the payload of gamma (", hex);
    ASSERT_LINE(f, "round 1: the payload of gamma", "is missing");
    ASSERT_LINE(f, "round 2: NOT CHECKED", "earlier round that could not be rebuilt");
    ASSERT_LINE(f, "credits: match", "not every round was recomputed");
}

static void a_score_off_by_more_than_the_tolerance_is_a_mismatch(void **state)
{
    struct fix *f = *state;
    build(f, T_SHAPLEY_BIG);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    assert_int_equal(s.rounds_matched, 1);
    ASSERT_LINE(f, "round 2: MISMATCH", "shapley of beta is ");
    ASSERT_LINE(f, "round 2: MISMATCH", "> tolerance");
    /* the credits follow from the recorded scores: they match them */
    ASSERT_LINE(f, "credits: match", "");
}

static void a_score_within_the_tolerance_matches(void **state)
{
    struct fix *f = *state;
    build(f, T_SHAPLEY_TINY);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    if (s.problems)
        print_lines(f);
    assert_int_equal(s.problems, 0);
    ASSERT_LINE(f, "round 2: match", "within tolerance, max |diff| ");
    assert_false(has_line(f, "round 2: match", "max |diff| 0;"));
}

static void alignment_must_match_to_the_last_bit(void **state)
{
    struct fix *f = *state;
    build(f, T_ALIGN_TINY);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    assert_true(s.problems > 0);
    ASSERT_LINE(f, "round 2: MISMATCH", "alignment of gamma is ");
    ASSERT_LINE(f, "round 2: MISMATCH", "must match exactly");
}

static void a_wrong_model_hash_is_caught_and_later_rounds_are_not_rebuilt(void **state)
{
    struct fix *f = *state;
    build(f, T_MODEL_HASH);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    assert_int_equal(s.rounds_matched, 0);
    ASSERT_LINE(f, "round 1: MISMATCH", "the rebuilt model hashes to ");
    ASSERT_LINE(f, "round 2: NOT CHECKED", "could not be rebuilt");
}

static void a_seed_not_from_ledger_data_is_a_mismatch(void **state)
{
    struct fix *f = *state;
    build(f, T_SEED);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    ASSERT_LINE(f, "round 2: MISMATCH", "is not credit_round_seed's");
}

static void credits_that_do_not_follow_from_the_scores_are_a_mismatch(void **state)
{
    struct fix *f = *state;
    build(f, T_CREDITS);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, f->evalsets, &s), 0);
    assert_int_equal(s.rounds_matched, ROUNDS);
    assert_int_equal(s.credits_matched, 0);
    ASSERT_LINE(f, "credits: MISMATCH", "the share of alpha is ");
}

static void without_the_evaluation_set_the_scores_are_not_checked(void **state)
{
    struct fix *f = *state;
    build(f, T_NONE);
    char empty[400];
    snprintf(empty, sizeof empty, "%s/nothing-here", f->dir);
    struct replay_summary s;
    assert_int_equal(replay(f, NULL, empty, &s), 0);
    assert_true(s.problems >= ROUNDS);
    assert_int_equal(s.rounds_matched, 0);
    ASSERT_LINE(f, "experiment ", "give it with --eval-set FILE");
    ASSERT_LINE(f, "round 1: NOT CHECKED: its scores are not recomputed without the evaluation "
                "set (above); model ", "rebuilt bit for bit");
}

static void an_unknown_experiment_is_refused(void **state)
{
    struct fix *f = *state;
    build(f, T_NONE);
    struct replay_summary s;
    assert_int_equal(replay(f, "no-such-experiment", f->evalsets, &s), CREDIT_ERR_ARG);
    ASSERT_LINE(f, "no experiment no-such-experiment", "");
    while (f->n_lines > 0)
        free(f->lines[--f->n_lines]);
    assert_int_equal(replay(f, f->id, f->evalsets, &s), 0);
    assert_int_equal(s.problems, 0);
}

/* --- the export ------------------------------------------------------------------------ */

static void json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(fp, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", fp);
        else if (*p < 0x20)
            fprintf(fp, "\\u%04x", *p);
        else
            fputc(*p, fp);
    }
    fputc('"', fp);
}

struct export_edit {
    uint64_t index;             /* the entry to edit */
    int kind;                   /* 0 none, 1 other bytes (leaf kept), 2 other bytes and
                                   their leaf, 3 skip the line, 4 no checkpoints,
                                   5 a broken line */
};

static int write_ckpt(uint64_t size, const char *note, size_t len, void *arg)
{
    FILE *fp = arg;
    char *copy = strndup(note, len);
    fprintf(fp, "{\"checkpoint_size\":%llu,\"checkpoint\":", (unsigned long long)size);
    json_str(fp, copy);
    fprintf(fp, "}\n");
    free(copy);
    return 0;
}

/* DIR/entries.jsonl as `aulac ledger export` writes it, with one edit. */
static void write_export(const char *data_dir, const char *path, struct export_edit edit)
{
    struct ledger *l;
    struct ledger_options lo = { .read_only = 1 };
    assert_int_equal(ledger_open(data_dir, &lo, &l), 0);
    uint64_t n;
    assert_int_equal(ledger_size(l, &n), 0);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *bytes;
        size_t len;
        assert_int_equal(ledger_get(l, i, &bytes, &len), 0);
        uint8_t leaf[32];
        merkle_leaf_hash(bytes, len, leaf);
        if (edit.kind && edit.index == i) {
            if (edit.kind == 3) {
                free(bytes);
                continue;
            }
            if (edit.kind == 5) {
                fprintf(fp, "{\"index\":%llu,\"leaf_hash\":\"00\",\n", (unsigned long long)i);
                free(bytes);
                continue;
            }
            if (edit.kind == 1 || edit.kind == 2) {
                bytes[len - 1] ^= 1;   /* the last field's last byte */
                if (edit.kind == 2)
                    merkle_leaf_hash(bytes, len, leaf);
            }
        }
        char leaf_hex[65];
        hex_encode(leaf, 32, leaf_hex);
        size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
        char *b64 = malloc(cap);
        sodium_bin2base64(b64, cap, bytes, len, sodium_base64_VARIANT_ORIGINAL);
        struct entry e;
        char *j = NULL;
        if (entry_decode(bytes, len, &e) == 0) {
            j = entry_to_json(&e);
            entry_free(&e);
        }
        fprintf(fp, "{\"index\":%llu,\"leaf_hash\":\"%s\",\"bytes\":\"%s\",\"entry\":%s}\n",
                (unsigned long long)i, leaf_hex, b64, j ? j : "null");
        free(j);
        free(b64);
        free(bytes);
    }
    if (edit.kind != 4)
        assert_int_equal(ledger_checkpoint_each(l, 0, write_ckpt, fp), 0);
    fclose(fp);
    ledger_close(l);
}

static int get_from_export(void *arg, uint64_t index, uint8_t **bytes, size_t *len, char *why,
                           size_t cap)
{
    return export_entry(arg, index, bytes, len, why, cap);
}

static void an_export_replays_like_the_data_directory(void **state)
{
    struct fix *f = *state;
    build(f, T_NONE);
    char xdir[400], path[500], cmd[1400];
    snprintf(xdir, sizeof xdir, "%s/export", f->dir);
    snprintf(path, sizeof path, "%s/payloads", xdir);
    assert_int_equal(file_mkdirs(path, 0755), 0);
    snprintf(cmd, sizeof cmd, "cp '%s'/experiments/*/payloads/*.bin '%s/'", f->dir, path);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/entries.jsonl", xdir);
    write_export(f->dir, path, (struct export_edit){ 0 });
    struct export_reader *xr;
    char why[600];
    if (export_open(path, &xr, why, sizeof why) != 0)
        fail_msg("%s", why);
    struct replay_entries src = { .size = export_size(xr), .get = get_from_export, .arg = xr };
    char payloads[500];
    snprintf(payloads, sizeof payloads, "%s/payloads", xdir);
    snprintf(path, sizeof path, "%s/eval.txt", f->evalsets);
    struct replay_options o = { .payload_dir = payloads, .evalset_file = path,
                                .line = keep_line, .arg = f };
    struct replay_summary s;
    assert_int_equal(credit_replay(&src, &o, &s, why, sizeof why), 0);
    export_close(xr);
    if (s.problems)
        print_lines(f);
    assert_int_equal(s.problems, 0);
    assert_int_equal(s.rounds_matched, ROUNDS);
    assert_int_equal(s.credits_matched, 1);
}

/* A small signed log for export_read: genesis naming the coordinator, a few entries. */
static void signed_log(const char *dir, uint64_t *n)
{
    struct crypto_key *k;
    assert_int_equal(crypto_key_generate("coordinator", &k), 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct ledger *l;
    struct ledger_options lo = { .checkpoint_interval = 1 };
    assert_int_equal(ledger_open(dir, &lo, &l), 0);
    assert_int_equal(ledger_set_signer(l, "aulac/test-alliance", k), 0);
    struct entry e = { .type = ENTRY_GENESIS, .timestamp_ms = 1 };
    struct entry_member gm[2] = { 0 };
    snprintf(gm[0].id, sizeof gm[0].id, "coordinator");
    gm[0].roles = ENTRY_ROLE_COORDINATOR;
    memcpy(gm[0].public_key, pk.key, 32);
    snprintf(gm[1].id, sizeof gm[1].id, "alpha");
    gm[1].roles = ENTRY_ROLE_MEMBER;
    memset(gm[1].public_key, 7, 32);
    e.u.genesis.alliance = "test-alliance";
    e.u.genesis.n_members = 2;
    e.u.genesis.members = gm;
    append(l, &e);
    char parts[1][ENTRY_ID_MAX + 1] = { "alpha" };
    for (uint64_t r = 1; r <= 5; r++) {
        memset(&e, 0, sizeof e);
        e.type = ENTRY_ROUND_CLOSED;
        e.timestamp_ms = (int64_t)(100 + r);
        snprintf(e.u.round_closed.experiment, sizeof e.u.round_closed.experiment, "exp-1");
        e.u.round_closed.round = r;
        e.u.round_closed.n_participants = 1;
        e.u.round_closed.participants = parts;
        memset(e.u.round_closed.model_hash, (int)r, 32);
        append(l, &e);
    }
    assert_int_equal(ledger_size(l, n), 0);
    ledger_close(l);
    crypto_key_free(k);
}

static void export_read_reads_back_and_audits_an_export(void **state)
{
    struct fix *f = *state;
    uint64_t n;
    signed_log(f->dir, &n);
    char path[400], why[600];
    snprintf(path, sizeof path, "%s/entries.jsonl", f->dir);
    write_export(f->dir, path, (struct export_edit){ 0 });
    struct export_reader *xr;
    if (export_open(path, &xr, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(export_size(xr), n);
    assert_true(export_checkpoint_count(xr) >= 1);
    struct ledger *l;
    struct ledger_options lo = { .read_only = 1 };
    assert_int_equal(ledger_open(f->dir, &lo, &l), 0);
    for (uint64_t i = n; i-- > 0;) {   /* backwards: every read seeks */
        uint8_t *a, *b;
        size_t la, lb;
        assert_int_equal(export_entry(xr, i, &a, &la, why, sizeof why), 0);
        assert_int_equal(ledger_get(l, i, &b, &lb), 0);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
    }
    uint8_t *none;
    size_t nl;
    assert_int_equal(export_entry(xr, n, &none, &nl, why, sizeof why), LEDGER_ERR_RANGE);
    struct export_audit a;
    if (export_audit(xr, &a, why, sizeof why) != 0)
        fail_msg("%s", why);
    uint8_t root[32];
    assert_int_equal(ledger_root(l, n, root), 0);
    assert_memory_equal(a.root, root, 32);
    assert_int_equal(a.size, n);
    assert_true(a.checkpoints >= 1);
    assert_string_equal(a.key_name, "aulac/test-alliance");
    ledger_close(l);
    export_close(xr);
}

static void open_fails(const char *path, const char *part)
{
    struct export_reader *xr = NULL;
    char why[600] = "";
    int rc = export_open(path, &xr, why, sizeof why);
    if (rc == 0 || !strstr(why, part)) {
        export_close(xr);
        fail_msg("export_open gave %d \"%s\", expected an error with \"%s\"", rc, why, part);
    }
    assert_null(xr);
}

static void audit_fails(const char *path, int code, const char *part)
{
    struct export_reader *xr;
    char why[600] = "";
    if (export_open(path, &xr, why, sizeof why) != 0)
        fail_msg("%s", why);
    struct export_audit a;
    int rc = export_audit(xr, &a, why, sizeof why);
    export_close(xr);
    if (rc != code || !strstr(why, part))
        fail_msg("export_audit gave %d \"%s\", expected %d with \"%s\"", rc, why, code, part);
}

static void export_read_names_what_was_edited(void **state)
{
    struct fix *f = *state;
    uint64_t n;
    signed_log(f->dir, &n);
    char path[400];
    snprintf(path, sizeof path, "%s/entries.jsonl", f->dir);
    /* bytes edited, leaf hash kept: the line (line 4 = entry 3) is named at open */
    write_export(f->dir, path, (struct export_edit){ 3, 1 });
    open_fails(path, "entries.jsonl:4: the bytes of entry 3 hash to leaf ");
    /* bytes and leaf hash edited together: the signed root no longer covers them */
    write_export(f->dir, path, (struct export_edit){ 3, 2 });
    audit_fails(path, LEDGER_ERR_CHECKPOINT_MISMATCH, "do not hash to the root");
    /* a line left out */
    write_export(f->dir, path, (struct export_edit){ 2, 3 });
    open_fails(path, "entry 3 where entry 2 should be");
    /* no checkpoint lines: nothing signs the entries */
    write_export(f->dir, path, (struct export_edit){ 0, 4 });
    audit_fails(path, LEDGER_ERR_UNSIGNED_ENTRIES, "covered by no signed checkpoint");
    /* a broken line */
    write_export(f->dir, path, (struct export_edit){ 1, 5 });
    open_fails(path, "entries.jsonl:2: ");
    /* not a file */
    open_fails(f->dir, "is not a regular file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_faithful_ledger_matches_every_round_and_the_credits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_flipped_payload_byte_names_the_round_and_the_member,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_deleted_payload_is_missing_and_no_later_round_is_rebuilt,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_score_off_by_more_than_the_tolerance_is_a_mismatch,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(a_score_within_the_tolerance_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(alignment_must_match_to_the_last_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_wrong_model_hash_is_caught_and_later_rounds_are_not_rebuilt, setup, teardown),
        cmocka_unit_test_setup_teardown(a_seed_not_from_ledger_data_is_a_mismatch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(credits_that_do_not_follow_from_the_scores_are_a_mismatch,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(without_the_evaluation_set_the_scores_are_not_checked,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(an_unknown_experiment_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(an_export_replays_like_the_data_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(export_read_reads_back_and_audits_an_export, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(export_read_names_what_was_edited, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
