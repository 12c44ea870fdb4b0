/* Credit at the round close (issue 12), through a real coordinator in this process: a
 * policy measuring tokens, rounds, bytes, alignment, loo and shapley on an evaluation set
 * held in --eval-sets; contribution_scores after each round_closed, credits before
 * experiment_finished, the retention store of accepted payloads and its pruning; the
 * close's determinism (a restart mid-experiment, another arrival order: the same models and
 * scores); the evaluation set checked at proposal and at start; the token bound. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "common/hex.h"
#include "common/log.h"
#include "aggregate/round.h"
#include "coordinator/state.h"
#include "credit/score.h"
#include "ledger/history.h"
#include "model/model_hash.h"
#include "trust_fixture.h"

#define ROUNDS 3
enum { N_MEMBERS = 3 };   /* fpt, vnpt, hust */

static const char eval_text[] =
    "Mở tệp\nLưu trang thành...\nIn trang này\nThoát\nTìm trong trang\nPhóng to\nThu nhỏ\n"
    "Toàn màn hình\nLịch sử\nDấu trang\nCông cụ\nTrợ giúp\nTải về\nTiện ích mở rộng\n"
    "Cài đặt\nĐồng bộ hoá\nMật khẩu đã lưu\nChế độ riêng tư\nMở thẻ mới\nĐóng thẻ\n";

/* The test's policy: dense int8 uplink (every coordinate summed from every member, so the
 * order of the sum shows in the bits), nesterov outer step (state before the step matters
 * to the scores), all six measures. evalset: the file name; hash: its hex; retention days. */
static void credit_policy(char *out, size_t cap, const char *name, const char *evalset,
                          const char *hash, int retention_days)
{
    snprintf(out, cap,
             "schema: 1\n"
             "metadata: {name: %s, proposer: hust, description: credit}\n"
             "model: {family: gpt2, vocab_size: 256, n_positions: 16, n_layer: 1, n_head: 2,"
             " n_embd: 16, seed: 11}\n"
             "data: {min_tokens_per_member: 100, validation_fraction: 0.05}\n"
             "training:\n"
             "  rounds: %d\n  local_steps: 2\n  batch_size: 2\n  seq_len: 16\n"
             "  inner: {kind: adamw, lr: 0.001, weight_decay: 0.0, beta1: 0.9, beta2: 0.95,"
             " grad_clip: 1.0, warmup_steps: 0}\n"
             "  outer: {kind: nesterov, lr: 0.7, momentum: 0.9}\n"
             "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n"
             "compression:\n"
             "  uplink: {method: topk, block_size: 256, k_per_block: 256, quant: int8,"
             " zstd_level: 1, error_feedback: false, dense_warmup_rounds: 0}\n"
             "  downlink: {method: none, quant: fp32}\n"
             "participation: {members: [fpt, vnpt, hust], min_members: 1,"
             " round_deadline_s: 600, grace_s: 1}\n"
             "contribution:\n"
             "  measures: [tokens, rounds, bytes, alignment, loo, shapley]\n"
             "  credit_weights: {shapley: 2, loo: 1, alignment: 1, tokens: 1, rounds: 1,"
             " bytes: 1}\n"
             "  evaluation_set: {name: %s, blake2b: %s, windows: 4}\n"
             "  shapley: {budget: 64, truncation: 0.0, round_truncation: 0.0}\n"
             "  payload_retention_days: %d\n",
             name, ROUNDS, evalset, hash, retention_days);
}

struct run {
    struct fx f;
    char evalsets[300];
    char eval_hash[65];
    char policy[4096];
    char id[COORD_EXPERIMENT_MAX + 1];
};

/* A prepared fixture whose --eval-sets holds eval.txt and whose policy file (paths[3])
 * is the credit policy: fx_start runs it. */
static void run_prepare(struct run *r, int retention_days)
{
    memset(r, 0, sizeof *r);
    fx_prepare(&r->f);
    snprintf(r->evalsets, sizeof r->evalsets, "%s/evalsets", r->f.dir);
    assert_int_equal(file_mkdirs(r->evalsets, 0755), 0);
    char path[400];
    snprintf(path, sizeof path, "%s/eval.txt", r->evalsets);
    fx_write(path, eval_text, 0644);
    uint8_t h[32];
    crypto_blake2b256(eval_text, strlen(eval_text), h);
    hex_encode(h, 32, r->eval_hash);
    credit_policy(r->policy, sizeof r->policy, "credit-test", "eval.txt", r->eval_hash,
                  retention_days);
    fx_write(r->f.paths[3], r->policy, 0644);
    r->f.opt.eval_sets_dir = r->evalsets;
    uint8_t ph[32];
    struct policy_error err;
    if (policy_identify("p.yaml", r->policy, strlen(r->policy), ph, r->id, sizeof r->id,
                        &err) != 0)
        fail_msg("the test policy does not load: %s", err.message);
}

/* Member who's update for the open round: a delta of values in [-0.01, 0.01] from salt,
 * claiming tokens. (The fixture's upd_make computes its values in unsigned arithmetic:
 * most of them are near 1.8e14, a model no evaluation survives: see huge_updates_...) */
static void make_update(struct fx *f, struct upd *u, int who, int salt, uint64_t tokens)
{
    upd_make(f, u, f->keys[who], salt);
    const size_t n = f->c->n_params;
    float *delta = malloc(n * sizeof *delta);
    assert_non_null(delta);
    for (size_t i = 0; i < n; i++)
        delta[i] = (float)((int)((i * 2654435761u + (unsigned)salt * 97u) % 2001) - 1000) * 1e-5f;
    struct policy_round_plan plan;
    assert_int_equal(policy_round_plan(&f->c->policy, u->e.round, &plan, NULL, 0), 0);
    free(u->payload);
    assert_int_equal(codec_encode(delta, n, &plan.uplink, NULL, &u->payload, &u->len), 0);
    free(delta);
    crypto_blake2b256(u->payload, u->len, u->e.payload_hash);
    u->e.payload_bytes = u->len;
    u->e.tokens = tokens;
    upd_sign(u, f->keys[who]);
}

static void submit(struct fx *f, int who, int salt, uint64_t tokens)
{
    struct signer s = { .key = f->keys[who] };
    struct upd u;
    make_update(f, &u, who, salt, tokens);
    struct fed_client *cl = fx_client(f, &s);
    Aulac__V1__Receipt *rc = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &rc, &st), 0);
    if (!rc->accepted)
        fail_msg("the update of %s was refused: %s", fx_ids[who], rc->reason);
    aulac__v1__receipt__free_unpacked(rc, NULL);
    fed_client_close(cl);
    upd_free(&u);
}

static const uint64_t tokens_of[N_MEMBERS] = { 64, 40, 24 };

/* Round r's update of member m: the same bytes in every run that reaches the same model. */
static void submit_round(struct fx *f, int m, uint64_t round)
{
    submit(f, m, (int)(round * 10 + (uint64_t)m), tokens_of[m]);
}

static void entry_at(struct fx *f, uint64_t index, struct entry *e)
{
    uint8_t *b;
    size_t len;
    assert_int_equal(ledger_get(f->c->ledger, index, &b, &len), 0);
    assert_int_equal(entry_decode(b, len, e), 0);
    free(b);
}

/* Every entry passes ledger/history; returns the count. */
static uint64_t history_ok(struct fx *f)
{
    uint64_t n = fx_ledger_size(f);
    struct ledger_history *h;
    assert_int_equal(ledger_history_new(&h), 0);
    char why[400];
    for (uint64_t i = 0; i < n; i++) {
        uint8_t *b;
        size_t len;
        assert_int_equal(ledger_get(f->c->ledger, i, &b, &len), 0);
        int rc = ledger_history_add(h, i, b, len, why, sizeof why);
        free(b);
        if (rc != 0)
            fail_msg("ledger history at #%" PRIu64 ": %s", i, why);
    }
    ledger_history_free(h);
    return n;
}

/* What a run recorded for experiment id, in ledger order. */
struct record {
    uint8_t model[ROUNDS][32];           /* round_closed model hashes */
    struct entry scores[ROUNDS];         /* contribution_scores entries */
    int n_scores;
    struct entry credits;
    int have_credits;
};

static void record_free(struct record *rec)
{
    for (int i = 0; i < rec->n_scores; i++)
        entry_free(&rec->scores[i]);
    if (rec->have_credits)
        entry_free(&rec->credits);
}

/* Walks the ledger, checking the order and content the design asks for: per round, the
 * accepted updates, round_closed, then at once contribution_scores naming every
 * participant in id order with its accepted payload hash; credits right before
 * experiment_finished. Checks every payload file of the retention store. */
static void read_record(struct run *r, struct record *rec)
{
    struct fx *f = &r->f;
    memset(rec, 0, sizeof *rec);
    const uint64_t n = history_ok(f);
    uint8_t hashes[ROUNDS][N_MEMBERS][32];
    char members[ROUNDS][N_MEMBERS][ENTRY_ID_MAX + 1];
    int n_acc[ROUNDS] = { 0 };
    int closed = 0, finished = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct entry e;
        entry_at(f, i, &e);
        if (e.type == ENTRY_UPDATE_ACCEPTED && strcmp(e.u.update.experiment, r->id) == 0) {
            const uint64_t round = e.u.update.round;
            assert_true(round >= 1 && round <= ROUNDS);
            int k = n_acc[round - 1]++;
            assert_true(k < N_MEMBERS);
            memcpy(hashes[round - 1][k], e.u.update.payload_hash, 32);
            snprintf(members[round - 1][k], sizeof members[0][0], "%s", e.u.update.member);
            assert_true(e.u.update.val_loss == 3.5);   /* the header's, fixture upd_header */
            /* the retention store holds the exact bytes under their hash */
            char hex[65], path[600];
            hex_encode(e.u.update.payload_hash, 32, hex);
            snprintf(path, sizeof path, "%s/experiments/%s/payloads/%s.bin", f->paths[0],
                     r->id, hex);
            uint8_t *bytes;
            size_t len;
            if (file_read_all(path, 1u << 30, &bytes, &len) != 0)
                fail_msg("no retained payload %s", path);
            uint8_t got[32];
            crypto_blake2b256(bytes, len, got);
            free(bytes);
            assert_memory_equal(got, e.u.update.payload_hash, 32);
            assert_int_equal(len, e.u.update.bytes);
        } else if (e.type == ENTRY_ROUND_CLOSED &&
                   strcmp(e.u.round_closed.experiment, r->id) == 0) {
            const uint64_t round = e.u.round_closed.round;
            assert_int_equal(round, (uint64_t)closed + 1);
            memcpy(rec->model[closed], e.u.round_closed.model_hash, 32);
            closed++;
            /* the next entry: its scores */
            struct entry s;
            assert_true(i + 1 < n);
            entry_at(f, i + 1, &s);
            assert_int_equal(s.type, ENTRY_CONTRIBUTION_SCORES);
            const struct entry_contribution_scores *cs = &s.u.scores;
            assert_string_equal(cs->experiment, r->id);
            assert_int_equal(cs->round, round);
            assert_int_equal(cs->n_measures, 6);
            static const char *const want[6] = { "tokens", "rounds", "bytes", "alignment",
                                                 "loo", "shapley" };
            for (int m = 0; m < 6; m++)
                assert_string_equal(cs->measures[m], want[m]);
            uint8_t eh[32];
            crypto_blake2b256(eval_text, strlen(eval_text), eh);
            assert_memory_equal(cs->evalset_hash, eh, 32);
            assert_int_equal(cs->exact, 1);             /* 2^3 - 2 <= budget 64 */
            assert_true(cs->evaluations > 0);
            assert_true(isfinite(cs->base_loss) && isfinite(cs->model_loss));
            assert_int_equal(cs->n, e.u.round_closed.n_participants);
            assert_int_equal(cs->n, N_MEMBERS);
            double sum_shapley = 0;
            for (uint32_t k = 0; k < cs->n; k++) {
                const struct entry_member_score *ms = &cs->members[k];
                /* participants in id order, each with its accepted payload's hash */
                if (k > 0)
                    assert_true(strcmp(cs->members[k - 1].member, ms->member) < 0);
                int found = 0;
                for (uint32_t p = 0; p < e.u.round_closed.n_participants; p++)
                    found |= strcmp(e.u.round_closed.participants[p], ms->member) == 0;
                assert_true(found);
                found = 0;
                for (int a = 0; a < n_acc[round - 1]; a++)
                    if (strcmp(members[round - 1][a], ms->member) == 0) {
                        assert_memory_equal(hashes[round - 1][a], ms->payload_hash, 32);
                        found = 1;
                    }
                assert_true(found);
                int who = strcmp(ms->member, "fpt") == 0 ? FPT
                          : strcmp(ms->member, "vnpt") == 0 ? VNPT : HUST;
                assert_true(ms->values[0] == (double)tokens_of[who]);   /* tokens */
                assert_true(ms->values[1] == 1.0);                      /* rounds */
                assert_true(ms->values[2] > 0);                         /* bytes */
                assert_true(ms->values[3] > -1.0 && ms->values[3] <= 1.0);
                sum_shapley += ms->values[5];
            }
            /* efficiency of exact Shapley: the values add up to v(N) */
            const double v_full = cs->base_loss - cs->model_loss;
            assert_true(fabs(sum_shapley - v_full) <= 1e-9 + 1e-6 * fabs(v_full));
            assert_true(rec->n_scores < ROUNDS);
            rec->scores[rec->n_scores++] = s;
        } else if (e.type == ENTRY_EXPERIMENT_FINISHED &&
                   strcmp(e.u.experiment.experiment, r->id) == 0) {
            finished = 1;
            struct entry c;
            entry_at(f, i - 1, &c);
            assert_int_equal(c.type, ENTRY_CREDITS);
            const struct entry_credits *cr = &c.u.credits;
            assert_string_equal(cr->experiment, r->id);
            assert_int_equal(cr->rounds, ROUNDS);
            assert_int_equal(cr->n, N_MEMBERS);
            assert_int_equal(cr->n_measures, 6);
            double sum = 0;
            for (uint32_t k = 0; k < cr->n; k++) {
                assert_true(cr->members[k].share >= 0);
                assert_int_equal(cr->members[k].rounds, ROUNDS);
                sum += cr->members[k].share;
            }
            assert_true(fabs(sum - 1.0) < 1e-9);
            rec->credits = c;
            rec->have_credits = 1;
        }
        entry_free(&e);
    }
    assert_int_equal(closed, rec->n_scores);
    assert_int_equal(finished, rec->have_credits);
}

/* The experiment rebuilt from what the run left, with the library's round arithmetic
 * alone (what `aulac credits verify` does): model 0 from the policy's seed, then per round
 * the retained payloads in member-id order, the scores with the outer state before the
 * step, the next model. Seeds, scores and model hashes must be the recorded ones, bit for
 * bit. */
static void replay_matches(struct run *r, const struct record *rec)
{
    struct policy p;
    struct policy_error err;
    assert_int_equal(policy_load_buffer("p.yaml", r->policy, strlen(r->policy), &p, &err), 0);
    struct policy_round_plan plan;
    assert_int_equal(policy_round_plan(&p, 1, &plan, NULL, 0), 0);
    const size_t n = plan.n_params;
    float *model = malloc(n * sizeof *model), *next = malloc(n * sizeof *next),
          *avg = malloc(n * sizeof *avg);
    assert_true(model && next && avg);
    assert_int_equal(gpt2_init_params(&plan.model, p.model.seed, model), 0);
    struct outer_opt outer;
    assert_int_equal(agg_outer_init(&p, n, &outer), 0);
    char path[600], why[400];
    snprintf(path, sizeof path, "%s/eval.txt", r->evalsets);
    struct evalset es;
    assert_int_equal(evalset_load(path, p.contribution.evalset_hash, &es, why, sizeof why), 0);
    struct evaluator *ev;
    assert_int_equal(evaluator_create(&plan.model, &es, p.contribution.eval_windows,
                                      plan.seq_len, &ev, why, sizeof why), 0);
    for (int i = 0; i < rec->n_scores; i++) {
        const struct entry_contribution_scores *cs = &rec->scores[i].u.scores;
        assert_int_equal(policy_round_plan(&p, cs->round, &plan, NULL, 0), 0);
        struct agg_update u[N_MEMBERS];
        uint8_t *bytes[N_MEMBERS];
        assert_int_equal(cs->n, N_MEMBERS);
        for (uint32_t k = 0; k < cs->n; k++) {
            memset(&u[k], 0, sizeof u[k]);
            snprintf(u[k].member, sizeof u[k].member, "%s", cs->members[k].member);
            const int who = strcmp(u[k].member, "fpt") == 0 ? FPT
                            : strcmp(u[k].member, "vnpt") == 0 ? VNPT : HUST;
            u[k].tokens = tokens_of[who];
            u[k].samples = 4;
            u[k].weight = agg_weight(p.aggregation.weighting, u[k].tokens, u[k].samples);
            char hex[65];
            hex_encode(cs->members[k].payload_hash, 32, hex);
            snprintf(path, sizeof path, "%s/experiments/%s/payloads/%s.bin", r->f.paths[0],
                     r->id, hex);
            assert_int_equal(file_read_all(path, 1u << 30, &bytes[k], &u[k].len), 0);
            u[k].payload = bytes[k];
            memcpy(u[k].payload_hash, cs->members[k].payload_hash, 32);
        }
        agg_sort(u, cs->n);
        uint8_t base_hash[32];
        model_hash(model, n, base_hash);
        struct credit_round_input in = { .policy = &p, .plan = &plan, .outer = &outer,
                                         .base = model, .n_params = n, .updates = u,
                                         .n = cs->n, .ev = ev };
        credit_round_seed(r->id, cs->round, base_hash, u, cs->n, in.seed);
        assert_memory_equal(in.seed, cs->seed, 32);
        struct credit_round_scores sc;
        assert_int_equal(credit_score_round(&in, &sc, why, sizeof why), 0);
        assert_int_equal(sc.evaluations, cs->evaluations);
        assert_memory_equal(&sc.base_loss, &cs->base_loss, sizeof(double));
        assert_memory_equal(&sc.model_loss, &cs->model_loss, sizeof(double));
        static const int order[6] = { POLICY_MEASURE_TOKENS, POLICY_MEASURE_ROUNDS,
                                      POLICY_MEASURE_BYTES, POLICY_MEASURE_ALIGNMENT,
                                      POLICY_MEASURE_LOO, POLICY_MEASURE_SHAPLEY };
        for (uint32_t k = 0; k < cs->n; k++)
            for (int m = 0; m < 6; m++)
                if (memcmp(&sc.value[k][order[m]], &cs->members[k].values[m],
                           sizeof(double)) != 0)
                    fail_msg("round %" PRIu64 ": %s's %s is %.17g recorded, %.17g replayed",
                             cs->round, u[k].member, cs->measures[m], cs->members[k].values[m],
                             sc.value[k][order[m]]);
        credit_round_scores_free(&sc);
        float *support = NULL;   /* average: all (the policy's default) */
        assert_int_equal(agg_average(&plan, n, u, cs->n, NULL, avg, support, why, sizeof why),
                         0);
        assert_int_equal(agg_next_model(&plan, &outer, NULL, model, avg, n, next, NULL, NULL,
                                        why, sizeof why), 0);
        memcpy(model, next, n * sizeof *model);
        uint8_t h[32];
        model_hash(model, n, h);
        if (memcmp(h, rec->model[i], 32) != 0)
            fail_msg("round %" PRIu64 ": the replayed model differs from round_closed's",
                     cs->round);
        for (uint32_t k = 0; k < cs->n; k++)
            free(bytes[k]);
    }
    evaluator_destroy(ev);
    evalset_free(&es);
    outer_free(&outer);
    policy_free(&p);
    free(model);
    free(next);
    free(avg);
}

/* Rounds from the open one to the last: order[] is the order members send in; with
 * stop_in_round, the coordinator is restarted once that round has two of its updates. */
static void run_rounds(struct run *r, const int order[N_MEMBERS], uint64_t stop_in_round)
{
    for (uint64_t round = fx_wait_round(&r->f, 1); round <= ROUNDS; round++) {
        for (int k = 0; k < N_MEMBERS; k++) {
            if (round == stop_in_round && k == 2) {
                fx_stop(&r->f);
                fx_start(&r->f);
                pthread_mutex_lock(&r->f.c->mu);
                assert_int_equal(r->f.c->rnd.number, round);
                assert_int_equal(r->f.c->rnd.n_accepted, 2);
                pthread_mutex_unlock(&r->f.c->mu);
            }
            submit_round(&r->f, order[k], round);
        }
        assert_int_equal(fx_wait_round(&r->f, round + 1), round + 1);
    }
    pthread_mutex_lock(&r->f.c->mu);
    assert_int_equal(r->f.c->state, EXP_FINISHED);
    pthread_mutex_unlock(&r->f.c->mu);
}

/* The recorded scores of two runs are the same bytes (timestamps aside). */
static void expect_same_scores(const struct record *a, const struct record *b)
{
    assert_int_equal(a->n_scores, b->n_scores);
    for (int i = 0; i < a->n_scores; i++) {
        const struct entry_contribution_scores *x = &a->scores[i].u.scores,
                                               *y = &b->scores[i].u.scores;
        assert_int_equal(x->round, y->round);
        assert_memory_equal(x->seed, y->seed, 32);
        assert_int_equal(x->evaluations, y->evaluations);
        assert_memory_equal(&x->base_loss, &y->base_loss, sizeof(double));
        assert_memory_equal(&x->model_loss, &y->model_loss, sizeof(double));
        assert_int_equal(x->n, y->n);
        for (uint32_t k = 0; k < x->n; k++) {
            assert_string_equal(x->members[k].member, y->members[k].member);
            assert_memory_equal(x->members[k].payload_hash, y->members[k].payload_hash, 32);
            if (memcmp(x->members[k].values, y->members[k].values,
                       x->n_measures * sizeof(double)) != 0)
                fail_msg("round %" PRIu64 ": %s's scores differ between the runs", x->round,
                         x->members[k].member);
        }
    }
    assert_int_equal(a->have_credits, b->have_credits);
    for (uint32_t k = 0; a->have_credits && k < a->credits.u.credits.n; k++)
        assert_memory_equal(&a->credits.u.credits.members[k].share,
                            &b->credits.u.credits.members[k].share, sizeof(double));
}

static const int in_id_order[N_MEMBERS] = { FPT, HUST, VNPT };
static const int reversed[N_MEMBERS] = { VNPT, HUST, FPT };

/* The whole experiment: scores after each close, credits before the finish, payloads
 * retained; a run restarted mid-round and a run whose members send in another order record
 * the same models and the same scores, bit for bit. */
static void scores_credits_and_retention(void **state)
{
    (void)state;
    struct run a, b, c;
    struct record ra, rb, rc;

    run_prepare(&a, 30);
    fx_start(&a.f);
    run_rounds(&a, in_id_order, 0);
    read_record(&a, &ra);
    assert_int_equal(ra.n_scores, ROUNDS);
    assert_true(ra.have_credits);
    replay_matches(&a, &ra);

    run_prepare(&b, 30);
    fx_start(&b.f);
    run_rounds(&b, reversed, 0);
    read_record(&b, &rb);
    for (int i = 0; i < ROUNDS; i++)
        if (memcmp(ra.model[i], rb.model[i], 32) != 0)
            fail_msg("round %d: another arrival order gave another model", i + 1);
    expect_same_scores(&ra, &rb);

    run_prepare(&c, 30);
    fx_start(&c.f);
    run_rounds(&c, in_id_order, 2);
    read_record(&c, &rc);
    for (int i = 0; i < ROUNDS; i++)
        if (memcmp(ra.model[i], rc.model[i], 32) != 0)
            fail_msg("round %d: the restarted run made another model", i + 1);
    expect_same_scores(&ra, &rc);

    /* Retention: kept for 30 days after the end, then the timer's pass removes them,
     * and the experiment's DP noise seed with them (PRIVACY.md: the seed never goes
     * without its payloads; this policy has no privacy, so the test puts one there). */
    char dir[600], seed[600];
    snprintf(dir, sizeof dir, "%s/experiments/%s/payloads", a.f.paths[0], a.id);
    assert_true(file_exists(dir));
    snprintf(seed, sizeof seed, "%s/experiments/%s/dp-noise-seed", a.f.paths[0], a.id);
    assert_int_equal(file_write_atomic(seed, "0123456789abcdef0123456789abcdef", 32, 0600), 0);
    struct experiment_info info;
    int found;
    assert_int_equal(queue_get(a.f.c, a.id, &info, &found), 0);
    assert_true(found);
    assert_int_equal(info.phase, PHASE_FINISHED);
    assert_true(info.ended_ms > 0 && info.ended_ms <= time_now_unix_ms());
    const int64_t ended = info.ended_ms;
    experiment_info_free(&info);
    const int64_t day = 24LL * 3600 * 1000;
    assert_int_equal(coord_prune_payloads(a.f.c, ended + 30 * day), 0);
    assert_true(file_exists(dir));
    assert_true(file_exists(seed));
    assert_int_equal(coord_prune_payloads(a.f.c, ended + 30 * day + 1),
                     (size_t)(ROUNDS * N_MEMBERS));
    assert_false(file_exists(dir));
    assert_false(file_exists(seed));
    assert_int_equal(coord_prune_payloads(a.f.c, ended + 60 * day), 0);

    record_free(&ra);
    record_free(&rb);
    record_free(&rc);
    fx_free(&a.f);
    fx_free(&b.f);
    fx_free(&c.f);
}

static void expect_refused(Aulac__V1__GovernanceReply *g, const char *pat)
{
    assert_non_null(g);
    assert_false(g->accepted);
    if (!strstr(g->reason, pat))
        fail_msg("reason \"%s\" lacks \"%s\"", g->reason, pat);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
}

/* A proposal whose evaluation set is not held, or differs from the pinned hash, is refused
 * with the check's message and nothing is written; one that is held is accepted. */
static void proposal_needs_the_evaluation_set(void **state)
{
    (void)state;
    struct run r;
    run_prepare(&r, 30);
    r.f.idle = 1;
    fx_start(&r.f);
    struct signer s = { .key = r.f.keys[HUST] };
    struct fed_client *cl = fx_client(&r.f, &s);
    char doc[4096];
    uint8_t h[32];
    const uint64_t n = fx_ledger_size(&r.f);

    credit_policy(doc, sizeof doc, "missing-set", "absent.txt", r.eval_hash, 30);
    expect_refused(fx_motion(cl, r.f.keys[HUST], MOTION_EXPERIMENT, NULL, doc, strlen(doc),
                             "missing.yaml", 0, h, NULL),
                   "contribution.evaluation_set: ");
    expect_refused(fx_motion(cl, r.f.keys[HUST], MOTION_EXPERIMENT, NULL, doc, strlen(doc),
                             "missing.yaml", 0, h, NULL), "absent.txt");
    assert_int_equal(fx_ledger_size(&r.f), n);

    char other[65];
    memset(other, 'a', 64);
    other[64] = 0;
    credit_policy(doc, sizeof doc, "wrong-hash", "eval.txt", other, 30);
    Aulac__V1__GovernanceReply *g = fx_motion(cl, r.f.keys[HUST], MOTION_EXPERIMENT, NULL, doc,
                                              strlen(doc), "wrong.yaml", 0, h, NULL);
    assert_non_null(g);
    assert_false(g->accepted);
    if (!strstr(g->reason, "contribution.evaluation_set: ") || !strstr(g->reason, other) ||
        !strstr(g->reason, r.eval_hash))
        fail_msg("reason \"%s\" lacks the check's message with both hashes", g->reason);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    assert_int_equal(fx_ledger_size(&r.f), n);

    g = fx_motion(cl, r.f.keys[HUST], MOTION_EXPERIMENT, NULL, r.policy, strlen(r.policy),
                  "good.yaml", 0, h, NULL);
    assert_non_null(g);
    if (!g->accepted)
        fail_msg("refused: %s", g->reason);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    assert_int_equal(fx_ledger_size(&r.f), n + 1);
    fed_client_close(cl);
    fx_free(&r.f);
}

/* The last experiment_failed entry of id, its reason checked for pat. */
static void expect_failed(struct fx *f, const char *id, const char *pat)
{
    uint64_t n = fx_ledger_size(f);
    for (uint64_t i = n; i-- > 0;) {
        struct entry e;
        entry_at(f, i, &e);
        if (e.type == ENTRY_EXPERIMENT_FAILED && strcmp(e.u.experiment.experiment, id) == 0) {
            if (!strstr(e.u.experiment.reason, pat))
                fail_msg("failure reason \"%s\" lacks \"%s\"", e.u.experiment.reason, pat);
            entry_free(&e);
            return;
        }
        entry_free(&e);
    }
    fail_msg("no experiment_failed entry for %s", id);
}

/* At load the check runs again: a running experiment whose evaluation set changed under
 * it fails at restart with the reason, and so does a queued one when its turn comes. */
static void start_and_resume_need_the_evaluation_set(void **state)
{
    (void)state;
    struct run r;
    run_prepare(&r, 30);
    fx_start(&r.f);
    /* a second credit experiment, queued behind the running one */
    char doc[4096], id2[COORD_EXPERIMENT_MAX + 1];
    credit_policy(doc, sizeof doc, "credit-next", "eval.txt", r.eval_hash, 30);
    fx_approve_policy(&r.f, doc);
    uint8_t ph[32];
    struct policy_error err;
    assert_int_equal(policy_identify("p.yaml", doc, strlen(doc), ph, id2, sizeof id2, &err), 0);
    submit_round(&r.f, FPT, 1);

    /* the set changes on disk; the running experiment fails at its restart */
    char path[400];
    snprintf(path, sizeof path, "%s/eval.txt", r.evalsets);
    fx_write(path, "another text, long enough for a window of sixteen bytes\n", 0644);
    fx_stop(&r.f);
    fx_start(&r.f);
    expect_failed(&r.f, r.id, "contribution.evaluation_set: ");
    expect_failed(&r.f, r.id, r.eval_hash);
    /* the queued one is next: it fails at its start the same way (the timer moves on) */
    for (int i = 0; i < 200; i++) {
        struct experiment_info info;
        int found;
        assert_int_equal(queue_get(r.f.c, id2, &info, &found), 0);
        int phase = info.phase;
        experiment_info_free(&info);
        if (phase == PHASE_FAILED)
            break;
        time_sleep_ms(50);
    }
    expect_failed(&r.f, id2, "contribution.evaluation_set: ");
    history_ok(&r.f);
    fx_free(&r.f);
}

/* A member claiming more tokens than the round's plan allows is refused; the reason
 * gives the bound (2 steps x batch 2 x 16 tokens = 64). */
static void token_claim_over_the_plan_is_refused(void **state)
{
    (void)state;
    struct run r;
    run_prepare(&r, 30);
    fx_start(&r.f);
    struct signer s = { .key = r.f.keys[VNPT] };
    struct upd u;
    make_update(&r.f, &u, VNPT, 5, 65);
    struct fed_client *cl = fx_client(&r.f, &s);
    Aulac__V1__Receipt *rc = NULL;
    struct rpc_status st;
    assert_int_equal(fed_submit_update(cl, &u.h, u.payload, u.len, 0, &rc, &st), 0);
    assert_false(rc->accepted);
    if (!strstr(rc->reason, "65 tokens") || !strstr(rc->reason, "(64 tokens"))
        fail_msg("reason \"%s\" lacks the claim and the bound", rc->reason);
    aulac__v1__receipt__free_unpacked(rc, NULL);
    fx_expect_rejection(&r.f, "vnpt", "at most 4 samples of 16 tokens (64 tokens");
    fx_expect_nothing_aggregated(&r.f);
    /* the bound itself is accepted */
    submit(&r.f, VNPT, 5, 64);
    fed_client_close(cl);
    upd_free(&u);
    fx_free(&r.f);
}

/* A cancel of the running experiment deletes its open round's stored update rows: their
 * payloads stay in the retention store, where their acceptance put them (their
 * update_accepted entries name them), and the store is pruned once the cancel is older
 * than the retention. */
static void cancel_keeps_the_open_rounds_payloads(void **state)
{
    (void)state;
    struct run r;
    run_prepare(&r, 2);
    fx_start(&r.f);
    for (int m = FPT; m <= HUST; m++)
        submit_round(&r.f, m, 1);
    assert_int_equal(fx_wait_round(&r.f, 2), 2);
    submit_round(&r.f, VNPT, 2);   /* stored, never closed */
    struct upd u;
    make_update(&r.f, &u, VNPT, 2 * 10 + VNPT, tokens_of[VNPT]);
    char hex[65], path[600];
    hex_encode(u.e.payload_hash, 32, hex);
    upd_free(&u);
    snprintf(path, sizeof path, "%s/experiments/%s/payloads/%s.bin", r.f.paths[0], r.id, hex);
    assert_true(file_exists(path));    /* stored at its acceptance (coordinator/spool.h) */

    struct signer s = { .key = r.f.keys[FPT] }, t = { .key = r.f.keys[VNPT] };
    struct fed_client *cf = fx_client(&r.f, &s), *cv = fx_client(&r.f, &t);
    uint8_t hx[32];
    Aulac__V1__GovernanceReply *g = fx_motion(cf, r.f.keys[FPT], MOTION_CANCEL, r.id, NULL, 0,
                                              NULL, 0, hx, NULL);
    assert_non_null(g);
    assert_true(g->accepted);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = fx_vote(cv, r.f.keys[VNPT], hx, 1);
    assert_true(g->accepted);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    fed_client_close(cf);
    fed_client_close(cv);
    pthread_mutex_lock(&r.f.c->mu);
    assert_int_equal(r.f.c->state, EXP_CANCELLED);
    pthread_mutex_unlock(&r.f.c->mu);
    assert_true(file_exists(path));
    uint8_t *bytes;
    size_t len;
    assert_int_equal(file_read_all(path, 1u << 30, &bytes, &len), 0);
    uint8_t h[32];
    crypto_blake2b256(bytes, len, h);
    free(bytes);
    char got[65];
    hex_encode(h, 32, got);
    assert_string_equal(got, hex);

    struct experiment_info info;
    int found;
    assert_int_equal(queue_get(r.f.c, r.id, &info, &found), 0);
    assert_int_equal(info.phase, PHASE_CANCELLED);
    const int64_t ended = info.ended_ms;
    experiment_info_free(&info);
    const int64_t day = 24LL * 3600 * 1000;
    assert_int_equal(coord_prune_payloads(r.f.c, ended + 2 * day), 0);
    assert_int_equal(coord_prune_payloads(r.f.c, ended + 2 * day + 1), N_MEMBERS + 1);
    assert_false(file_exists(path));
    history_ok(&r.f);
    fx_free(&r.f);
}

/* Updates no evaluation survives (the fixture's, values near 1.8e14: the model stays
 * finite, its loss does not): every round still closes, without a contribution_scores
 * entry, and the experiment finishes without credits; the ledger stays consistent. */
/* The fixture's updates are huge (their models' losses are not finite): every coalition
 * counts at the loss cap, so each round is still scored and the experiment credited. */
static void wild_updates_are_scored_at_the_loss_cap(void **state)
{
    (void)state;
    struct run r;
    run_prepare(&r, 30);
    fx_start(&r.f);
    for (uint64_t round = 1; round <= ROUNDS; round++) {
        for (int m = FPT; m <= HUST; m++)
            fx_submit_accepted(&r.f, m, (int)(round * 10) + m);
        assert_int_equal(fx_wait_round(&r.f, round + 1), round + 1);
    }
    pthread_mutex_lock(&r.f.c->mu);
    assert_int_equal(r.f.c->state, EXP_FINISHED);
    pthread_mutex_unlock(&r.f.c->mu);
    const uint64_t n = history_ok(&r.f);
    int closed = 0, scored = 0, credits = 0, finished = 0;
    for (uint64_t i = 0; i < n; i++) {
        struct entry e;
        entry_at(&r.f, i, &e);
        if (e.type == ENTRY_CONTRIBUTION_SCORES) {
            scored++;
            assert_true(e.u.scores.model_loss == CREDIT_LOSS_CAP);
            assert_true(e.u.scores.base_loss <= CREDIT_LOSS_CAP);
        }
        closed += e.type == ENTRY_ROUND_CLOSED;
        credits += e.type == ENTRY_CREDITS;
        finished += e.type == ENTRY_EXPERIMENT_FINISHED;
        entry_free(&e);
    }
    assert_int_equal(closed, ROUNDS);
    assert_int_equal(scored, ROUNDS);
    assert_int_equal(credits, 1);
    assert_int_equal(finished, 1);
    fx_free(&r.f);
}

int main(void)
{
    log_set_level(getenv("TEST_VERBOSE") ? LOG_INFO : LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scores_credits_and_retention),
        cmocka_unit_test(proposal_needs_the_evaluation_set),
        cmocka_unit_test(start_and_resume_need_the_evaluation_set),
        cmocka_unit_test(token_claim_over_the_plan_is_refused),
        cmocka_unit_test(wild_updates_are_scored_at_the_loss_cap),
        cmocka_unit_test(cancel_keeps_the_open_rounds_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
