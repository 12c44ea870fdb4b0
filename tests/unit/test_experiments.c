/* Experiments the alliance decides, through the RPCs of a real coordinator in this
 * process: motions to run, cancel and amend the charter, votes, withdrawals, expiry,
 * every refusal of the "Bad input" with nothing half-written, the queue, and
 * the state rebuilt from the ledger after a restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/log.h"
#include "coordinator/governance.h"
#include "coordinator/queue.h"
#include "ledger/history.h"
#include "trust_fixture.h"

/* fx_policy under another metadata.name (so another policy hash). */
static void policy_named(const char *name, char *out, size_t cap)
{
    const char *at = strstr(fx_policy, "name: trust-test");
    assert_non_null(at);
    snprintf(out, cap, "%.*sname: %s%s", (int)(at - fx_policy), fx_policy, name,
             at + strlen("name: trust-test"));
}

static void expect_refused(Aulac__V1__GovernanceReply *g, const char *pat)
{
    assert_non_null(g);
    assert_false(g->accepted);
    if (!strstr(g->reason, pat))
        fail_msg("reason \"%s\" lacks \"%s\"", g->reason, pat);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
}

static Aulac__V1__GovernanceReply *accepted(Aulac__V1__GovernanceReply *g)
{
    assert_non_null(g);
    if (!g->accepted)
        fail_msg("refused: %s", g->reason);
    return g;
}

static Aulac__V1__ExperimentsReply *list(struct fed_client *cl, const char *member)
{
    Aulac__V1__ExperimentsRequest q = AULAC__V1__EXPERIMENTS_REQUEST__INIT;
    q.member_id = (char *)member;
    Aulac__V1__ExperimentsReply *r = NULL;
    struct rpc_status st;
    if (fed_list_experiments(cl, &q, &r, &st) != 0)
        fail_msg("ListExperiments: %s", st.details);
    return r;
}

/* The row of experiment id (ListExperiments with its id); free the reply. */
static Aulac__V1__ExperimentsReply *list_one(struct fed_client *cl, const char *member,
                                             const char *id)
{
    Aulac__V1__ExperimentsRequest q = AULAC__V1__EXPERIMENTS_REQUEST__INIT;
    q.member_id = (char *)member;
    q.experiment_id = (char *)id;
    Aulac__V1__ExperimentsReply *r = NULL;
    struct rpc_status st;
    if (fed_list_experiments(cl, &q, &r, &st) != 0)
        fail_msg("ListExperiments %s: %s", id, st.details);
    assert_int_equal(r->n_experiments, 1);
    assert_string_equal(r->experiments[0]->experiment_id, id);
    return r;
}

/* How many experiments the list shows: the fixture's own (proposed, approved and
 * running before each test) and any before; a test's rows follow. */
static size_t listed(struct fed_client *cl)
{
    Aulac__V1__ExperimentsReply *l = list(cl, "fpt");
    size_t n = l->n_experiments;
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    return n;
}

/* Every entry so far passes ledger/history (signatures against the roster of their
 * moment); returns the entry count. */
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
            fail_msg("ledger history: %s", why);
    }
    ledger_history_free(h);
    return n;
}

static void entry_at(struct fx *f, uint64_t index, struct entry *e)
{
    uint8_t *b;
    size_t len;
    assert_int_equal(ledger_get(f->c->ledger, index, &b, &len), 0);
    assert_int_equal(entry_decode(b, len, e), 0);
    free(b);
}

static Aulac__V1__GovernanceReply *withdraw(struct fed_client *cl, const struct crypto_key *k,
                                            const uint8_t hash[32])
{
    struct withdrawal w = { 0 };
    memcpy(w.proposal_hash, hash, 32);
    snprintf(w.member, sizeof w.member, "%s", crypto_key_member(k));
    uint8_t sig[64];
    assert_int_equal(withdrawal_sign(&w, k, sig), 0);
    Aulac__V1__WithdrawRequest q = AULAC__V1__WITHDRAW_REQUEST__INIT;
    q.proposal_hash.data = (uint8_t *)hash;
    q.proposal_hash.len = 32;
    q.member_id = w.member;
    q.signature.data = sig;
    q.signature.len = 64;
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status st;
    if (fed_withdraw(cl, &q, &r, &st) != 0)
        fail_msg("Withdraw: %s", st.details);
    return r;
}

struct clients {
    struct signer s[N_KEYS];
    struct fed_client *c[N_KEYS];
};

static void clients_open(struct fx *f, struct clients *k)
{
    for (int m = FPT; m <= HUST; m++) {
        k->s[m] = (struct signer){ .key = f->keys[m] };
        k->c[m] = fx_client(f, &k->s[m]);
    }
}

static void clients_close(struct clients *k)
{
    for (int m = FPT; m <= HUST; m++)
        fed_client_close(k->c[m]);
}

/* hust (researcher) proposes; fpt votes yes: approved, queued with the exact bytes, in
 * one transaction with the vote; the list shows it; a restart keeps all of it. */
static void proposed_approved_queued_and_rebuilt(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    const size_t base = listed(k.c[FPT]);
    char doc[sizeof fx_policy + 64];
    policy_named("exp-a", doc, sizeof doc);
    uint8_t h[32];
    Aulac__V1__GovernanceReply *g = accepted(fx_motion(k.c[HUST], f->keys[HUST],
                                             MOTION_EXPERIMENT, NULL, doc, strlen(doc),
                                             "exp-a.yaml", 0, h, NULL));
    assert_string_equal(g->proposal->state, "open");
    assert_int_equal(g->proposal->yes, 1);
    assert_int_equal(g->proposal->needed, 2);        /* 0.66 of 3 */
    assert_non_null(g->proposal->motion);
    uint64_t proposed_at = g->ledger_index;
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    struct entry e;
    entry_at(f, proposed_at, &e);
    assert_int_equal(e.type, ENTRY_POLICY_PROPOSED);
    assert_int_equal(e.u.motion.document_len, strlen(doc));
    assert_memory_equal(e.u.motion.document, doc, strlen(doc));   /* byte for byte */
    assert_string_equal(e.u.motion.proposer, "hust");
    char id[COORD_EXPERIMENT_MAX + 1];
    snprintf(id, sizeof id, "%s", e.u.motion.experiment);
    assert_non_null(strstr(id, "exp-a-"));
    entry_free(&e);

    uint64_t before = fx_ledger_size(f);
    g = accepted(fx_vote(k.c[FPT], f->keys[FPT], h, 1));
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    assert_int_equal(fx_ledger_size(f), before + 2);   /* the vote and the decision */
    entry_at(f, before + 1, &e);
    assert_int_equal(e.type, ENTRY_PROPOSAL_DECIDED);
    assert_int_equal(e.u.decided.outcome, ENTRY_OUTCOME_APPROVED);
    assert_int_equal(e.u.decided.yes, 2);
    assert_memory_equal(e.u.decided.proposal_hash, h, 32);
    entry_free(&e);
    struct experiment_info info;
    int found;
    assert_int_equal(queue_get(f->c, id, &info, &found), 0);
    assert_true(found);
    assert_int_equal(info.phase, PHASE_QUEUED);
    assert_int_equal(info.proposed_index, proposed_at);
    assert_memory_equal(info.proposal_hash, h, 32);
    assert_int_equal(info.policy_yaml_len, strlen(doc));
    assert_memory_equal(info.policy_yaml, doc, strlen(doc));
    experiment_info_free(&info);

    Aulac__V1__ExperimentsReply *l = list(k.c[VNPT], "vnpt");
    assert_int_equal(l->n_experiments, base + 1);   /* behind the fixture's, running */
    assert_string_equal(l->experiments[base]->experiment_id, id);
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    l = list_one(k.c[VNPT], "vnpt", id);
    assert_string_equal(l->experiments[0]->state, "queued");
    assert_string_equal(l->experiments[0]->proposer_id, "hust");
    assert_int_equal(l->experiments[0]->n_voted, 2);
    assert_string_equal(l->experiments[0]->voted[1], "fpt");
    assert_int_equal(l->experiments[0]->ledger_index, proposed_at);
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    uint64_t n = history_ok(f);
    clients_close(&k);

    fx_stop(f);
    fx_start(f);
    clients_open(f, &k);
    assert_int_equal(history_ok(f), n);
    assert_int_equal(listed(k.c[FPT]), base + 1);
    l = list_one(k.c[FPT], "fpt", id);
    assert_string_equal(l->experiments[0]->state, "queued");
    assert_int_equal(l->experiments[0]->decided_index, n - 1);
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    expect_refused(fx_vote(k.c[VNPT], f->keys[VNPT], h, 1), "approved: votes are closed");
    /* the same policy again, even from a fresh motion: refused naming the first */
    expect_refused(fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, doc,
                             strlen(doc), "exp-a.yaml", 0, h, NULL),
                   "was already proposed by hust as experiment exp-a-");
    assert_int_equal(fx_ledger_size(f), n);
    clients_close(&k);
}

/* The "Bad input": each a clear refusal, nothing written, the coordinator
 * keeps serving. */
static void bad_input_is_refused_and_nothing_is_written(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    uint8_t h[32];
    struct rpc_status st;
    char doc[sizeof fx_policy + 64];
    policy_named("exp-b", doc, sizeof doc);
    uint64_t n = fx_ledger_size(f);

    /* a proposal from a non-researcher names the role */
    expect_refused(fx_motion(k.c[FPT], f->keys[FPT], MOTION_EXPERIMENT, NULL, doc, strlen(doc),
                             "exp-b.yaml", 0, h, NULL),
                   "member fpt has roles [member]; proposing an experiment needs the role "
                   "researcher (charter.proposers)");
    /* a policy that fails the schema: every error as FILE:line:col: path: message, FILE
     * as sent, in file order; the reason counts them and gives the first */
    char bad[sizeof fx_policy + 64];
    static const char good[] = "rounds: 3\n  local_steps: 2";
    const char *r3 = strstr(doc, good);
    snprintf(bad, sizeof bad, "%.*srounds: three\n  local_steps: 0%s", (int)(r3 - doc), doc,
             r3 + strlen(good));
    Aulac__V1__GovernanceReply *g = fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT,
                                              NULL, bad, strlen(bad), "mine.yaml", 0, h, NULL);
    assert_non_null(g);
    assert_false(g->accepted);
    assert_int_equal(g->n_errors, 2);
    assert_string_equal(g->errors[0], "mine.yaml:6:11: training.rounds: expected a positive "
                        "integer, got \"three\"");
    assert_string_equal(g->errors[1], "mine.yaml:7:16: training.local_steps: expected an "
                        "integer in [1, 10000000], got 0");
    assert_string_equal(g->reason, "2 errors in mine.yaml; the first: mine.yaml:6:11: "
                        "training.rounds: expected a positive integer, got \"three\"");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    /* more than 50: the first 50 and a line that counts the rest */
    char many[sizeof fx_policy + 64 * 16];
    size_t m = (size_t)snprintf(many, sizeof many, "%s", doc);
    for (int i = 0; i < 64; i++)
        m += (size_t)snprintf(many + m, sizeof many - m, "extra%d: 1\n", i);
    g = fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, many, m, "many.yaml", 0, h,
                  NULL);
    assert_non_null(g);
    assert_false(g->accepted);
    assert_int_equal(g->n_errors, POLICY_ERRORS_MAX + 1);
    assert_memory_equal(g->errors[0], "many.yaml:17:1: extra0: unknown key", 35);
    assert_string_equal(g->errors[POLICY_ERRORS_MAX], "... and 14 more errors");
    assert_memory_equal(g->reason, "64 errors in many.yaml; the first: many.yaml:17:1: ", 51);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    /* too large, deeply nested, an alias bomb */
    size_t big = (2u << 20);
    char *huge = malloc(10u << 20);
    assert_non_null(huge);
    memset(huge, '#', 10u << 20);
    huge[0] = '#';
    g = fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, huge, big, "big.yaml", 0,
                  h, NULL);
    expect_refused(g, "big.yaml: is 2097152 bytes, over the 1 MiB limit for policy files");
    assert_null(fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, huge, 10u << 20,
                          "huge.yaml", 0, h, &st));
    assert_int_equal(st.code, GRPC_STATUS_RESOURCE_EXHAUSTED);   /* over the message limit */
    free(huge);
    char nested[400];
    size_t o = (size_t)snprintf(nested, sizeof nested, "schema: 1\nmetadata: ");
    for (int i = 0; i < 60; i++)
        nested[o++] = '[';
    for (int i = 0; i < 60; i++)
        nested[o++] = ']';
    nested[o] = 0;
    expect_refused(fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, nested,
                             strlen(nested), "deep.yaml", 0, h, NULL),
                   "nesting deeper than 32 levels");
    static const char bomb[] = "schema: 1\na: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n";
    expect_refused(fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, bomb,
                             strlen(bomb), "bomb.yaml", 0, h, NULL), "bomb.yaml:2:5: anchors (&name) are not supported");
    assert_int_equal(fx_ledger_size(f), n);

    /* votes on nothing; a second vote; a cancel of something never approved */
    uint8_t unknown[32];
    memset(unknown, 0x42, 32);
    expect_refused(fx_vote(k.c[FPT], f->keys[FPT], unknown, 1), "no proposal 4242424242424242");
    g = accepted(fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, doc, strlen(doc),
                           "exp-b.yaml", 0, h, NULL));
    char id[COORD_EXPERIMENT_MAX + 1];
    snprintf(id, sizeof id, "%s", g->proposal->motion->experiment_id);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    uint8_t cancel_h[32];
    expect_refused(fx_motion(k.c[FPT], f->keys[FPT], MOTION_CANCEL, id, NULL, 0, NULL, 0,
                             cancel_h, NULL), "no approved experiment");
    g = accepted(fx_vote(k.c[FPT], f->keys[FPT], h, 0));
    assert_string_equal(g->proposal->state, "open");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    expect_refused(fx_vote(k.c[FPT], f->keys[FPT], h, 1), "'fpt' has already voted no on it");
    expect_refused(fx_vote(k.c[HUST], f->keys[HUST], h, 1), "already counted");
    g = accepted(fx_vote(k.c[VNPT], f->keys[VNPT], h, 1));
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);

    /* a cancel of a finished experiment: the queue says finished (its record changed as
     * the lifecycle changes it when an experiment ends) */
    struct experiment_info info;
    int found;
    MDB_txn *txn;
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(ledger_txn_begin(f->c->ledger, &txn), 0);
    assert_int_equal(queue_get_txn(f->c, txn, id, &info, &found), 0);
    assert_true(found);
    assert_int_equal(info.phase, PHASE_QUEUED);
    info.phase = PHASE_FINISHED;
    info.rounds_done = 12;
    assert_int_equal(queue_record_put_txn(f->c, txn, &info), 0);
    assert_int_equal(queue_remove_txn(f->c, txn, info.seq), 0);
    assert_int_equal(ledger_txn_commit(f->c->ledger, txn), 0);
    pthread_mutex_unlock(&f->c->mu);
    experiment_info_free(&info);
    n = fx_ledger_size(f);
    expect_refused(fx_motion(k.c[FPT], f->keys[FPT], MOTION_CANCEL, id, NULL, 0, NULL, 0,
                             cancel_h, NULL),
                   "has finished after 12 round(s); there is nothing to cancel");
    expect_refused(withdraw(k.c[HUST], f->keys[HUST], h), "can no longer be withdrawn");
    assert_int_equal(fx_ledger_size(f), n);
    /* and it still serves */
    Aulac__V1__ExperimentsReply *l = list_one(k.c[HUST], "hust", id);
    assert_string_equal(l->experiments[0]->state, "finished");
    assert_int_equal(l->experiments[0]->rounds_done, 12);
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    history_ok(f);
    clients_close(&k);
}

/* Withdrawals by the proposer (open, and approved but still queued), refused for
 * others; a cancel approved by vote takes a queued experiment off the queue. */
static void withdraw_and_cancel(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    const size_t base = listed(k.c[FPT]);
    char a[sizeof fx_policy + 64], b[sizeof fx_policy + 64], c3[sizeof fx_policy + 64];
    policy_named("exp-w1", a, sizeof a);
    policy_named("exp-w2", b, sizeof b);
    policy_named("exp-c", c3, sizeof c3);
    uint8_t ha[32], hb[32], hc[32], hx[32];
    aulac__v1__governance_reply__free_unpacked(accepted(fx_motion(
        k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, a, strlen(a), "a.yaml", 0, ha,
        NULL)), NULL);
    expect_refused(withdraw(k.c[FPT], f->keys[FPT], ha), "only its proposer hust may withdraw");
    Aulac__V1__GovernanceReply *g = accepted(withdraw(k.c[HUST], f->keys[HUST], ha));
    assert_string_equal(g->proposal->state, "withdrawn");
    struct entry e;
    entry_at(f, g->ledger_index, &e);
    assert_int_equal(e.type, ENTRY_PROPOSAL_DECIDED);
    assert_int_equal(e.u.decided.outcome, ENTRY_OUTCOME_WITHDRAWN);
    struct withdrawal w = { 0 };
    memcpy(w.proposal_hash, ha, 32);
    strcpy(w.member, "hust");
    struct crypto_public_key pk;
    crypto_key_public(f->keys[HUST], &pk);
    assert_int_equal(withdrawal_verify(&w, pk.key, e.u.decided.withdraw_signature), 0);
    entry_free(&e);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    expect_refused(fx_vote(k.c[FPT], f->keys[FPT], ha, 1), "withdrawn: votes are closed");
    expect_refused(withdraw(k.c[HUST], f->keys[HUST], ha), "is withdrawn: there is nothing");

    /* approved, queued, then withdrawn: experiment_cancelled follows the decision */
    aulac__v1__governance_reply__free_unpacked(accepted(fx_motion(
        k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, b, strlen(b), "b.yaml", 0, hb,
        NULL)), NULL);
    aulac__v1__governance_reply__free_unpacked(accepted(fx_vote(k.c[VNPT], f->keys[VNPT], hb,
                                                                1)), NULL);
    uint64_t n = fx_ledger_size(f);
    g = accepted(withdraw(k.c[HUST], f->keys[HUST], hb));
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    assert_int_equal(fx_ledger_size(f), n + 2);
    fx_last_entry(f, &e, NULL);
    assert_int_equal(e.type, ENTRY_EXPERIMENT_CANCELLED);
    assert_memory_equal(e.u.experiment.proposal_hash, hb, 32);
    assert_non_null(strstr(e.u.experiment.reason, "withdrawn by its proposer"));
    entry_free(&e);

    /* a cancel motion by any member, approved by the quorum */
    g = accepted(fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, c3, strlen(c3),
                           "c.yaml", 0, hc, NULL));
    char id[COORD_EXPERIMENT_MAX + 1];
    snprintf(id, sizeof id, "%s", g->proposal->motion->experiment_id);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    aulac__v1__governance_reply__free_unpacked(accepted(fx_vote(k.c[VNPT], f->keys[VNPT], hc,
                                                                1)), NULL);
    g = accepted(fx_motion(k.c[FPT], f->keys[FPT], MOTION_CANCEL, id, NULL, 0, NULL, 0, hx,
                           NULL));
    assert_string_equal(g->proposal->state, "open");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    expect_refused(fx_motion(k.c[VNPT], f->keys[VNPT], MOTION_CANCEL, id, NULL, 0, NULL, 0,
                             hb, NULL), "a cancellation of");
    n = fx_ledger_size(f);
    g = accepted(fx_vote(k.c[VNPT], f->keys[VNPT], hx, 1));
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    assert_int_equal(fx_ledger_size(f), n + 3);   /* vote, decision, experiment_cancelled */
    fx_last_entry(f, &e, NULL);
    assert_int_equal(e.type, ENTRY_EXPERIMENT_CANCELLED);
    assert_string_equal(e.u.experiment.experiment, id);
    entry_free(&e);
    struct experiment_info info;
    int found;
    assert_int_equal(queue_get(f->c, id, &info, &found), 0);
    assert_int_equal(info.phase, PHASE_CANCELLED);
    experiment_info_free(&info);
    Aulac__V1__ExperimentsReply *l = list(k.c[FPT], "fpt");
    assert_int_equal(l->n_experiments, base + 3);
    assert_string_equal(l->experiments[base]->state, "withdrawn");
    assert_string_equal(l->experiments[base + 1]->state, "withdrawn");
    assert_string_equal(l->experiments[base + 2]->state, "cancelled");
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    history_ok(f);
    clients_close(&k);
}

/* A charter motion passes only with the charter quorum in force (0.67 of 3 = all
 * three); from its decision on the new charter governs, across a restart. */
static void charter_amended_by_its_own_quorum(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    static const char doc[] = "quorum: {roster: 0.5, experiments: 0.34, charter: 0.67}\n"
                              "proposers: [member]\n";
    uint8_t h[32];
    expect_refused(fx_motion(k.c[FPT], f->keys[FPT], MOTION_CHARTER, NULL,
                             "quorum: {charter: 0.1}\n", 23, "amend.yaml", 0, h, NULL),
                   "amend.yaml:1:19: quorum.charter: the charter quorum 0.1 is below");
    Aulac__V1__GovernanceReply *g = accepted(fx_motion(k.c[FPT], f->keys[FPT], MOTION_CHARTER,
                                                       NULL, doc, strlen(doc), "amend.yaml", 0,
                                                       h, NULL));
    assert_int_equal(g->proposal->needed, 3);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = accepted(fx_vote(k.c[VNPT], f->keys[VNPT], h, 1));
    assert_string_equal(g->proposal->state, "open");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = accepted(fx_vote(k.c[HUST], f->keys[HUST], h, 1));
    assert_string_equal(g->proposal->state, "approved");
    uint64_t decided = g->proposal->outcome_index;
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    history_ok(f);
    clients_close(&k);
    fx_stop(f);
    fx_start(f);
    clients_open(f, &k);
    Aulac__V1__ProposalsRequest lq = AULAC__V1__PROPOSALS_REQUEST__INIT;
    lq.member_id = "fpt";
    Aulac__V1__ProposalsReply *lr = NULL;
    struct rpc_status st;
    assert_int_equal(fed_list_proposals(k.c[FPT], &lq, &lr, &st), 0);
    assert_true(lr->quorum == 0.5);
    assert_int_equal(lr->charter_index, decided);
    assert_non_null(strstr(lr->charter, "experiments: 0.34"));
    aulac__v1__proposals_reply__free_unpacked(lr, NULL);
    /* now any member proposes, and one more approval of three carries it */
    char pol[sizeof fx_policy + 64];
    policy_named("exp-m", pol, sizeof pol);
    g = accepted(fx_motion(k.c[FPT], f->keys[FPT], MOTION_EXPERIMENT, NULL, pol, strlen(pol),
                           "m.yaml", 0, h, NULL));
    assert_int_equal(g->proposal->needed, 2);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    clients_close(&k);
}

/* The timer writes the expiry; votes after it are refused; a restart keeps it. */
static void expiry_is_decided_by_the_timer(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    const size_t base = listed(k.c[FPT]);
    char pol[sizeof fx_policy + 64];
    policy_named("exp-e", pol, sizeof pol);
    uint8_t h[32];
    aulac__v1__governance_reply__free_unpacked(accepted(fx_motion(
        k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, pol, strlen(pol), "e.yaml", 1200, h,
        NULL)), NULL);
    struct entry e = { 0 };
    for (int i = 0; i < 200; i++) {     /* the timer ticks every 200 ms; allow 20 s */
        fx_last_entry(f, &e, NULL);
        int done = e.type == ENTRY_PROPOSAL_DECIDED;
        if (done)
            break;
        entry_free(&e);
        usleep(100000);
    }
    assert_int_equal(e.type, ENTRY_PROPOSAL_DECIDED);
    assert_int_equal(e.u.decided.outcome, ENTRY_OUTCOME_EXPIRED);
    assert_memory_equal(e.u.decided.proposal_hash, h, 32);
    entry_free(&e);
    expect_refused(fx_vote(k.c[FPT], f->keys[FPT], h, 1), "expired: votes are closed");
    uint64_t n = history_ok(f);
    clients_close(&k);
    fx_stop(f);
    fx_start(f);
    usleep(500000);                      /* a tick after the restart writes nothing again */
    assert_int_equal(fx_ledger_size(f), n);
    clients_open(f, &k);
    Aulac__V1__ExperimentsReply *l = list(k.c[FPT], "fpt");
    assert_int_equal(l->n_experiments, base + 1);
    assert_string_equal(l->experiments[base]->state, "expired");
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    clients_close(&k);
}

/* A restart mid-vote loses nothing: the open motion keeps its vote and is decided by
 * the next one after the restart. */
static void open_motion_survives_a_restart(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    char pol[sizeof fx_policy + 64];
    policy_named("exp-r", pol, sizeof pol);
    static const char ch[] = "quorum: {experiments: 0.6, charter: 0.9}\n";
    uint8_t h[32], hc[32];
    Aulac__V1__GovernanceReply *g = accepted(fx_motion(k.c[HUST], f->keys[HUST],
                                                       MOTION_EXPERIMENT, NULL, pol,
                                                       strlen(pol), "r.yaml", 0, h, NULL));
    char id[COORD_EXPERIMENT_MAX + 1];
    snprintf(id, sizeof id, "%s", g->proposal->motion->experiment_id);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    aulac__v1__governance_reply__free_unpacked(accepted(fx_motion(
        k.c[FPT], f->keys[FPT], MOTION_CHARTER, NULL, ch, strlen(ch), "c.yaml", 0, hc, NULL)),
        NULL);
    g = accepted(fx_vote(k.c[VNPT], f->keys[VNPT], hc, 1));
    assert_string_equal(g->proposal->state, "open");    /* 2 of 3, the charter needs 3 */
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    clients_close(&k);
    fx_stop(f);
    fx_start(f);
    clients_open(f, &k);
    expect_refused(fx_vote(k.c[VNPT], f->keys[VNPT], hc, 1), "'vnpt' has already voted yes");
    g = accepted(fx_vote(k.c[HUST], f->keys[HUST], hc, 1));
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = accepted(fx_vote(k.c[FPT], f->keys[FPT], h, 1));
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    Aulac__V1__ExperimentsReply *l = list_one(k.c[FPT], "fpt", id);   /* behind the fixture's */
    assert_string_equal(l->experiments[0]->state, "queued");
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    history_ok(f);
    clients_close(&k);
}

/* --policy with --operator-key: filed once, signed by the operator's member key; a
 * policy proposed before (the fixture's own, paths[3]) files nothing; a member without
 * the proposer role, or a policy that does not load, is refused with nothing written. */
static void operator_files_the_policy_once(void **state)
{
    struct fx *f = *state;
    char path[300], op[300], doc[sizeof fx_policy + 64];
    snprintf(path, sizeof path, "%s/hust.key", f->dir);
    assert_int_equal(crypto_key_save_secret(f->keys[HUST], path, 0), 0);
    f->c->opt.operator_key_path = path;
    snprintf(op, sizeof op, "%s/operator.yaml", f->dir);
    policy_named("exp-op", doc, sizeof doc);
    fx_write(op, doc, 0644);
    uint64_t n = fx_ledger_size(f);
    assert_int_equal(governance_propose_operator(f->c, f->paths[3]), 0);   /* the fixture's */
    assert_int_equal(fx_ledger_size(f), n);
    assert_int_equal(governance_propose_operator(f->c, op), 0);
    assert_int_equal(fx_ledger_size(f), n + 1);
    struct entry e;
    fx_last_entry(f, &e, NULL);
    assert_int_equal(e.type, ENTRY_POLICY_PROPOSED);
    assert_string_equal(e.u.motion.proposer, "hust");
    assert_int_equal(e.u.motion.document_len, strlen(doc));
    assert_memory_equal(e.u.motion.document, doc, strlen(doc));
    entry_free(&e);
    assert_int_equal(governance_propose_operator(f->c, op), 0);   /* already filed */
    assert_int_equal(fx_ledger_size(f), n + 1);
    snprintf(path, sizeof path, "%s/fpt.key", f->dir);     /* fpt is no researcher */
    assert_int_equal(crypto_key_save_secret(f->keys[FPT], path, 0), 0);
    f->c->opt.operator_key_path = path;
    policy_named("exp-op2", doc, sizeof doc);
    fx_write(op, doc, 0644);
    assert_int_equal(governance_propose_operator(f->c, op), COORD_ERR_CONFIG);
    fx_write(op, "schema: 1\n", 0644);
    assert_int_equal(governance_propose_operator(f->c, op), COORD_ERR_CONFIG);
    assert_int_equal(fx_ledger_size(f), n + 1);
    history_ok(f);
}

/* The state of one proposal (ListProposals with its hash). */
static void expect_proposal_state(struct fed_client *cl, const uint8_t hash[32],
                                  const char *state)
{
    Aulac__V1__ProposalsRequest q = AULAC__V1__PROPOSALS_REQUEST__INIT;
    q.member_id = "fpt";
    q.proposal_hash.data = (uint8_t *)hash;
    q.proposal_hash.len = 32;
    Aulac__V1__ProposalsReply *r = NULL;
    struct rpc_status st;
    if (fed_list_proposals(cl, &q, &r, &st) != 0)
        fail_msg("ListProposals: %s", st.details);
    assert_int_equal(r->n_proposals, 1);
    assert_string_equal(r->proposals[0]->state, state);
    aulac__v1__proposals_reply__free_unpacked(r, NULL);
}

/* The first ledger entry at or after index `from` of type, decoded (entry_free it);
 * fails when there is none. */
static uint64_t entry_find(struct fx *f, uint64_t from, unsigned type, struct entry *e)
{
    uint64_t n = fx_ledger_size(f);
    for (uint64_t i = from; i < n; i++) {
        entry_at(f, i, e);
        if (e->type == type)
            return i;
        entry_free(e);
    }
    fail_msg("no entry of type %u from #%" PRIu64 " to #%" PRIu64, type, from, n);
    return 0;
}

/* The fixture's experiment runs (the list counts its closed rounds); a cancel approved
 * by vote stops it in the vote's transaction (vote, decision, experiment_cancelled
 * naming the experiment's own motion), keeps its last model, and the queued experiment
 * starts next. */
static void approved_cancel_stops_the_running_experiment(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    char running[COORD_EXPERIMENT_MAX + 1];
    uint8_t last_model[32], motion_of_running[32];
    pthread_mutex_lock(&f->c->mu);
    const int was = f->c->state;
    snprintf(running, sizeof running, "%s", f->c->experiment);
    pthread_mutex_unlock(&f->c->mu);
    assert_int_equal(was, EXP_RUNNING);
    for (int who = FPT; who <= HUST; who++)   /* round 1 closes */
        fx_submit_accepted(f, who, 1 + who);
    assert_int_equal(fx_wait_round(f, 2), 2);
    Aulac__V1__ExperimentsReply *l = list_one(k.c[FPT], "fpt", running);
    assert_string_equal(l->experiments[0]->state, "running");
    assert_int_equal(l->experiments[0]->rounds_done, 1);
    assert_int_equal(l->experiments[0]->final_model_hash.len, 0);
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    fx_submit_accepted(f, FPT, 9);     /* an update of round 2, dropped by the cancel */
    pthread_mutex_lock(&f->c->mu);
    memcpy(last_model, f->c->rnd.base->hash, 32);
    memcpy(motion_of_running, f->c->proposal_hash, 32);
    pthread_mutex_unlock(&f->c->mu);
    char next_doc[sizeof fx_policy + 64];
    policy_named("exp-next", next_doc, sizeof next_doc);
    uint8_t hn[32], hx[32];
    Aulac__V1__GovernanceReply *g = accepted(fx_motion(k.c[HUST], f->keys[HUST],
                                                       MOTION_EXPERIMENT, NULL, next_doc,
                                                       strlen(next_doc), "next.yaml", 0, hn,
                                                       NULL));
    char next[COORD_EXPERIMENT_MAX + 1];
    snprintf(next, sizeof next, "%s", g->proposal->motion->experiment_id);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    aulac__v1__governance_reply__free_unpacked(accepted(fx_vote(k.c[VNPT], f->keys[VNPT], hn,
                                                                1)), NULL);
    aulac__v1__governance_reply__free_unpacked(accepted(fx_motion(
        k.c[FPT], f->keys[FPT], MOTION_CANCEL, running, NULL, 0, NULL, 0, hx, NULL)), NULL);
    uint64_t n = fx_ledger_size(f);
    g = accepted(fx_vote(k.c[VNPT], f->keys[VNPT], hx, 1));
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    struct entry e;
    entry_at(f, n + 1, &e);
    assert_int_equal(e.type, ENTRY_PROPOSAL_DECIDED);
    assert_memory_equal(e.u.decided.proposal_hash, hx, 32);
    entry_free(&e);
    entry_at(f, n + 2, &e);
    assert_int_equal(e.type, ENTRY_EXPERIMENT_CANCELLED);
    assert_string_equal(e.u.experiment.experiment, running);
    assert_memory_equal(e.u.experiment.proposal_hash, motion_of_running, 32);
    assert_memory_equal(e.u.experiment.model_hash, last_model, 32);
    assert_non_null(strstr(e.u.experiment.reason, "cancelled by the members' vote"));
    entry_free(&e);
    struct experiment_info info;
    int found;
    assert_int_equal(queue_get(f->c, running, &info, &found), 0);
    assert_true(found);
    assert_int_equal(info.phase, PHASE_CANCELLED);
    assert_memory_equal(info.final_model_hash, last_model, 32);
    experiment_info_free(&info);
    assert_true(fx_wait_running(f, next));   /* the timer starts the queued one */
    l = list_one(k.c[FPT], "fpt", running);
    assert_string_equal(l->experiments[0]->state, "cancelled");
    assert_int_equal(l->experiments[0]->rounds_done, 1);
    assert_int_equal(l->experiments[0]->final_model_hash.len, 32);
    assert_memory_equal(l->experiments[0]->final_model_hash.data, last_model, 32);
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    history_ok(f);
    clients_close(&k);
}

/* A cancel of the running experiment waits for votes; a charter change lowers the
 * experiment quorum so that its tally now carries it. Tallies are taken when votes
 * arrive (policies/GOVERNANCE.md), so it stays open until the restart, which decides
 * it against the charter in force: the coordinator comes back with the experiment
 * cancelled (not refusing to start). */
static void restart_decides_a_cancel_of_the_running_experiment(void **state)
{
    struct fx *f = *state;
    struct clients k;
    clients_open(f, &k);
    char running[COORD_EXPERIMENT_MAX + 1];
    pthread_mutex_lock(&f->c->mu);
    snprintf(running, sizeof running, "%s", f->c->experiment);
    pthread_mutex_unlock(&f->c->mu);
    uint8_t hx[32], hc[32];
    aulac__v1__governance_reply__free_unpacked(accepted(fx_motion(
        k.c[FPT], f->keys[FPT], MOTION_CANCEL, running, NULL, 0, NULL, 0, hx, NULL)), NULL);
    static const char charter[] = "quorum: {roster: 0.66, experiments: 0.1, charter: 0.67}\n"
                                  "proposers: [researcher]\n";
    aulac__v1__governance_reply__free_unpacked(accepted(fx_motion(
        k.c[FPT], f->keys[FPT], MOTION_CHARTER, NULL, charter, strlen(charter), "c.yaml", 0,
        hc, NULL)), NULL);
    aulac__v1__governance_reply__free_unpacked(accepted(fx_vote(k.c[VNPT], f->keys[VNPT], hc,
                                                                1)), NULL);
    Aulac__V1__GovernanceReply *g = accepted(fx_vote(k.c[HUST], f->keys[HUST], hc, 1));
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    expect_proposal_state(k.c[FPT], hx, "open");
    uint64_t n = history_ok(f);
    clients_close(&k);

    fx_stop(f);
    fx_start(f);
    clients_open(f, &k);
    expect_proposal_state(k.c[FPT], hx, "approved");
    struct entry e;
    uint64_t at = entry_find(f, n, ENTRY_PROPOSAL_DECIDED, &e);
    assert_memory_equal(e.u.decided.proposal_hash, hx, 32);
    assert_int_equal(e.u.decided.outcome, ENTRY_OUTCOME_APPROVED);
    entry_free(&e);
    entry_at(f, at + 1, &e);
    assert_int_equal(e.type, ENTRY_EXPERIMENT_CANCELLED);
    assert_string_equal(e.u.experiment.experiment, running);
    entry_free(&e);
    pthread_mutex_lock(&f->c->mu);
    const int now = f->c->state;
    pthread_mutex_unlock(&f->c->mu);
    assert_int_equal(now, EXP_CANCELLED);
    Aulac__V1__ExperimentsReply *l = list_one(k.c[FPT], "fpt", running);
    assert_string_equal(l->experiments[0]->state, "cancelled");
    aulac__v1__experiments_reply__free_unpacked(l, NULL);
    history_ok(f);
    clients_close(&k);
}

/* An experiment whose only member joined the alliance by vote (not in the roster file)
 * runs, and resumes after a restart: the restart counts the members of the live
 * roster, not of the founding file. */
static void restart_resumes_an_experiment_of_a_member_added_by_vote(void **state)
{
    struct fx *f = *state;
    f->idle = 1;
    fx_start(f);
    struct clients k;
    clients_open(f, &k);
    uint8_t h[32];
    aulac__v1__governance_reply__free_unpacked(fx_propose(f, k.c[FPT], f->keys[FPT],
                                                          PROPOSAL_ADD, "uet", f->keys[UET],
                                                          h), NULL);
    Aulac__V1__GovernanceReply *g = fx_vote(k.c[VNPT], f->keys[VNPT], h, 1);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    char named[sizeof fx_policy + 64], doc[sizeof fx_policy + 64];
    policy_named("exp-uet", named, sizeof named);
    const char *list_at = strstr(named, "members: [fpt, vnpt, hust, uet]");
    assert_non_null(list_at);
    snprintf(doc, sizeof doc, "%.*smembers: [uet]%s", (int)(list_at - named), named,
             list_at + strlen("members: [fpt, vnpt, hust, uet]"));
    g = accepted(fx_motion(k.c[HUST], f->keys[HUST], MOTION_EXPERIMENT, NULL, doc, strlen(doc),
                           "uet.yaml", 0, h, NULL));
    char id[COORD_EXPERIMENT_MAX + 1];
    snprintf(id, sizeof id, "%s", g->proposal->motion->experiment_id);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    aulac__v1__governance_reply__free_unpacked(accepted(fx_vote(k.c[FPT], f->keys[FPT], h, 1)),
                                               NULL);
    g = accepted(fx_vote(k.c[VNPT], f->keys[VNPT], h, 1));   /* 3 of 4 members */
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    clients_close(&k);
    assert_true(fx_wait_running(f, id));
    uint64_t n = history_ok(f);

    fx_stop(f);
    fx_start(f);
    pthread_mutex_lock(&f->c->mu);
    const int now = f->c->state;
    char resumed[COORD_EXPERIMENT_MAX + 1];
    snprintf(resumed, sizeof resumed, "%s", f->c->experiment);
    const size_t eligible = f->c->n_eligible;
    pthread_mutex_unlock(&f->c->mu);
    assert_int_equal(now, EXP_RUNNING);
    assert_string_equal(resumed, id);
    assert_int_equal(eligible, 1);
    assert_int_equal(fx_ledger_size(f), n);   /* nothing recorded: no experiment_failed */
    struct experiment_info info;
    int found;
    assert_int_equal(queue_get(f->c, id, &info, &found), 0);
    assert_int_equal(info.phase, PHASE_RUNNING);
    experiment_info_free(&info);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(proposed_approved_queued_and_rebuilt, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(bad_input_is_refused_and_nothing_is_written,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(withdraw_and_cancel, fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(charter_amended_by_its_own_quorum, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(expiry_is_decided_by_the_timer, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(operator_files_the_policy_once, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(open_motion_survives_a_restart, fx_setup_started,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(approved_cancel_stops_the_running_experiment,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(restart_decides_a_cancel_of_the_running_experiment,
                                        fx_setup_started, fx_teardown),
        cmocka_unit_test_setup_teardown(restart_resumes_an_experiment_of_a_member_added_by_vote,
                                        fx_setup_prepared, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
