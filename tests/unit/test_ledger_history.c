/* ledger/history: every member signature stored in the ledger re-checked against the
 * roster of its moment, and an update accepted once. Entries are built with the real
 * signing code (crypto/), encoded with entry_encode and fed as bytes, as `aulac
 * ledger verify` feeds them. Run under ASan too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/envelope.h"
#include "crypto/keys.h"
#include "crypto/motion.h"
#include "crypto/proposal.h"
#include "ledger/entry.h"
#include "ledger/history.h"

static const int64_t T0 = 1767225600000;
enum { FPT, VNPT, HUST, UET, VNPT2, COORD, N_KEYS };
static const char *const ids[N_KEYS] = { "fpt", "vnpt", "hust", "uet", "vnpt", "coordinator" };
static struct crypto_key *keys[N_KEYS];

static const uint8_t *pub(int who)
{
    static struct crypto_public_key pk[N_KEYS];
    crypto_key_public(keys[who], &pk[who]);
    return pk[who].key;
}

static int setup(void **state)
{
    for (int i = 0; i < N_KEYS; i++) {
        uint8_t seed[32];
        memset(seed, 0x10 * (i + 1), sizeof seed);
        if (crypto_key_from_seed(ids[i], seed, &keys[i]) != 0)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < N_KEYS; i++)
        crypto_key_free(keys[i]);
    return 0;
}

/* The log being built: encoded entries in order. */
struct log {
    uint8_t *b[32];
    size_t len[32];
    size_t n;
};

static void add(struct log *l, struct entry *e)
{
    e->timestamp_ms = T0 + (int64_t)l->n;
    assert_true(l->n < 32);
    assert_int_equal(entry_encode(e, &l->b[l->n], &l->len[l->n]), 0);
    l->n++;
}

static void log_free(struct log *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->b[i]);
}

/* Feeds the whole log; returns the first failure (why filled) or 0. */
static int check(struct log *l, struct ledger_history_counts *counts, char *why, size_t cap)
{
    struct ledger_history *h;
    assert_int_equal(ledger_history_new(&h), 0);
    int rc = 0;
    for (size_t i = 0; i < l->n && rc == 0; i++)
        rc = ledger_history_add(h, i, l->b[i], l->len[i], why, cap);
    if (counts)
        ledger_history_counts(h, counts);
    ledger_history_free(h);
    return rc;
}

static void genesis(struct log *l)
{
    struct entry_member m[4];
    memset(m, 0, sizeof m);
    const int who[4] = { FPT, VNPT, HUST, COORD };
    for (int i = 0; i < 4; i++) {
        snprintf(m[i].id, sizeof m[i].id, "%s", ids[who[i]]);
        m[i].roles = who[i] == COORD ? ENTRY_ROLE_COORDINATOR : ENTRY_ROLE_MEMBER;
        memcpy(m[i].public_key, pub(who[i]), 32);
    }
    struct entry e = { .type = ENTRY_GENESIS };
    e.u.genesis.alliance = "au-lac";
    e.u.genesis.n_members = 4;
    e.u.genesis.members = m;
    add(l, &e);
}

/* An accepted update of member (signed with key signer) for round. */
static struct entry update(int member, int signer, uint64_t round)
{
    struct update_envelope env;
    memset(&env, 0, sizeof env);
    strcpy(env.experiment, "gpt2-vi");
    env.round = round;
    strcpy(env.member, ids[member]);
    memset(env.base_model_hash, (int)round, 32);
    memset(env.payload_hash, 0x40 + member, 32);
    env.payload_bytes = 1000 + (uint64_t)member;
    env.samples = 8;
    env.tokens = 1024;
    env.codec = (struct envelope_codec){ 1, 256, 16, 1, -1, 1 };
    struct entry e = { .type = ENTRY_UPDATE_ACCEPTED };
    entry_update_from_envelope(&e.u.update, &env);
    assert_int_equal(envelope_sign(&env, keys[signer], e.u.update.envelope_signature), 0);
    e.u.update.train_loss = 3.0;
    return e;
}

static struct roster_proposal proposal(int proposer, int action, int member, const char *reason)
{
    struct roster_proposal p;
    memset(&p, 0, sizeof p);
    strcpy(p.alliance, "au-lac");
    p.action = (uint8_t)action;
    strcpy(p.proposer, ids[proposer]);
    strcpy(p.member, ids[member]);
    if (action == PROPOSAL_ADD) {
        strcpy(p.organization, "VNU University of Engineering and Technology");
        p.roles = 1;
    }
    if (action != PROPOSAL_REMOVE)
        memcpy(p.public_key, pub(member), 32);
    snprintf(p.reason, sizeof p.reason, "%s", reason);
    p.created_unix_ms = T0;
    p.expires_unix_ms = T0 + 86400000;
    return p;
}

/* roster_proposed entry of p, signed by its proposer; *hash gets the proposal hash. */
static struct entry proposed(const struct roster_proposal *p, int signer, uint8_t hash[32])
{
    struct entry e = { .type = ENTRY_ROSTER_PROPOSED };
    uint8_t sig[64];
    assert_int_equal(proposal_hash(p, hash), 0);
    assert_int_equal(proposal_sign(p, keys[signer], sig), 0);
    entry_proposed_from_proposal(&e.u.roster_proposed, p, hash, sig);
    return e;
}

static struct entry vote(const uint8_t hash[32], int voter, int approve)
{
    struct roster_vote v;
    memset(&v, 0, sizeof v);
    memcpy(v.proposal_hash, hash, 32);
    strcpy(v.voter, ids[voter]);
    v.approve = (uint8_t)approve;
    struct entry e = { .type = ENTRY_VOTE };
    memcpy(e.u.vote.policy_hash, hash, 32);
    strcpy(e.u.vote.voter, ids[voter]);
    e.u.vote.approve = (uint8_t)approve;
    assert_int_equal(vote_sign(&v, keys[voter], e.u.vote.signature), 0);
    return e;
}

/* genesis; round 1 (vnpt, hust); fpt proposes uet, vnpt votes, uet added; round 2
 * (uet); vnpt rotates its key; round 3 (vnpt, new key); hust removed. */
static void honest_log(struct log *l)
{
    uint8_t h_add[32], h_rot[32], h_rm[32];
    genesis(l);
    struct entry e = update(VNPT, VNPT, 1);
    add(l, &e);
    e = update(HUST, HUST, 1);
    add(l, &e);
    struct roster_proposal p = proposal(FPT, PROPOSAL_ADD, UET, "joins the alliance");
    e = proposed(&p, FPT, h_add);
    add(l, &e);
    e = vote(h_add, VNPT, 1);
    add(l, &e);
    e = (struct entry){ .type = ENTRY_MEMBER_ADDED };
    strcpy(e.u.member_added.member.id, "uet");
    e.u.member_added.member.roles = 1;
    memcpy(e.u.member_added.member.public_key, pub(UET), 32);
    memcpy(e.u.member_added.proposal_hash, h_add, 32);
    add(l, &e);
    e = update(UET, UET, 2);
    add(l, &e);
    p = proposal(VNPT, PROPOSAL_ROTATE, VNPT2, "");
    e = proposed(&p, VNPT, h_rot);
    add(l, &e);
    e = vote(h_rot, FPT, 1);
    add(l, &e);
    e = (struct entry){ .type = ENTRY_KEY_ROTATED };
    strcpy(e.u.key_rotated.member, "vnpt");
    memcpy(e.u.key_rotated.new_public_key, pub(VNPT2), 32);
    memcpy(e.u.key_rotated.proposal_hash, h_rot, 32);
    add(l, &e);
    e = update(VNPT, VNPT2, 3);
    add(l, &e);
    p = proposal(FPT, PROPOSAL_REMOVE, HUST, "left");
    e = proposed(&p, FPT, h_rm);
    add(l, &e);
    e = (struct entry){ .type = ENTRY_MEMBER_REMOVED };
    strcpy(e.u.member_removed.member, "hust");
    memcpy(e.u.member_removed.proposal_hash, h_rm, 32);
    add(l, &e);
}

static void honest_history_verifies(void **state)
{
    struct log l = { 0 };
    honest_log(&l);
    struct ledger_history_counts k;
    char why[400];
    assert_int_equal(check(&l, &k, why, sizeof why), 0);
    assert_int_equal(k.entries, l.n);
    assert_int_equal(k.updates, 4);
    assert_int_equal(k.proposals, 3);
    assert_int_equal(k.votes, 2);
    assert_int_equal(k.roster_changes, 3);
    log_free(&l);
}

/* The forgery: vnpt's update credited to hust (hashes recomputed, so only
 * the signature can tell). */
static void update_credited_to_another_member_is_named(void **state)
{
    struct log l = { 0 };
    genesis(&l);
    struct entry e = update(HUST, HUST, 1);
    add(&l, &e);
    e = update(VNPT, VNPT, 1);
    strcpy(e.u.update.member, "hust");
    add(&l, &e);
    char why[400];
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_MEMBER_SIGNATURE);
    assert_string_equal(why, "entry 2: the update envelope of hust for gpt2-vi round 1 does "
                             "not verify with hust's key of that moment: this entry is not "
                             "what hust signed");
    log_free(&l);
}

static void update_accepted_twice_is_named(void **state)
{
    struct log l = { 0 };
    genesis(&l);
    struct entry e = update(HUST, HUST, 1);
    add(&l, &e);
    e = update(VNPT, VNPT, 1);
    add(&l, &e);
    e = update(HUST, HUST, 1);   /* the same signed update, counted again */
    add(&l, &e);
    char why[400];
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 3: an update of hust for gpt2-vi round 1 was already "
                             "accepted at entry 1; each member is counted once per round");
    /* the next round is another key */
    log_free(&l);
    memset(&l, 0, sizeof l);
    genesis(&l);
    e = update(HUST, HUST, 1);
    add(&l, &e);
    e = update(HUST, HUST, 2);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), 0);
    log_free(&l);
}

/* After the rotation vnpt's old key no longer counts; after the removal hust's
 * updates are refused. */
static void roster_of_the_moment_decides(void **state)
{
    struct log l = { 0 };
    honest_log(&l);
    struct entry e = update(VNPT, VNPT, 4);   /* old key */
    add(&l, &e);
    char why[400];
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_MEMBER_SIGNATURE);
    assert_non_null(strstr(why, "entry 13: the update envelope of vnpt for gpt2-vi round 4 "
                                "does not verify with vnpt's key of that moment"));
    free(l.b[--l.n]);
    e = update(HUST, HUST, 4);   /* removed at entry 12 */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 13: an update of hust for gpt2-vi round 4 is recorded as "
                             "accepted, but hust is removed from the roster at that point");
    free(l.b[--l.n]);
    e = update(UET, UET, 0);   /* uet before it was added: build a log without the add */
    log_free(&l);
    memset(&l, 0, sizeof l);
    genesis(&l);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "entry 1: an update of uet for gpt2-vi round 0 is recorded as "
                                "accepted, but uet is not in the roster"));
    log_free(&l);
}

static void forged_votes_proposals_and_changes_are_refused(void **state)
{
    uint8_t h[32];
    char why[400];
    struct log l = { 0 };
    genesis(&l);
    struct roster_proposal p = proposal(FPT, PROPOSAL_ADD, UET, "joins");
    struct entry e = proposed(&p, FPT, h);
    add(&l, &e);
    e = vote(h, VNPT, 1);
    e.u.vote.approve = 0;   /* a yes turned into a no */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_MEMBER_SIGNATURE);
    assert_non_null(strstr(why, "entry 2: the vote of vnpt on "));
    assert_non_null(strstr(why, "does not verify with vnpt's key of that moment"));
    free(l.b[--l.n]);
    e = vote(h, UET, 1);   /* uet is no member yet */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "a vote by uet on"));
    free(l.b[--l.n]);

    /* a proposal whose stored fields were edited after signing */
    e = proposed(&p, FPT, h);
    e.u.roster_proposed.reason = "edited";
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "entry 2: the roster proposal by fpt to add uet does not hash "
                                "to its stored proposal hash"));
    free(l.b[--l.n]);
    /* signed by another key than the proposer's */
    e = proposed(&p, FPT, h);
    struct roster_proposal q = p;
    strcpy(q.proposer, "hust");
    assert_int_equal(proposal_sign(&q, keys[HUST], e.u.roster_proposed.signature), 0);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_MEMBER_SIGNATURE);
    assert_non_null(strstr(why, "does not verify with fpt's key of that moment"));
    free(l.b[--l.n]);

    /* a change that names no proposal, or another one than it applies */
    e = (struct entry){ .type = ENTRY_MEMBER_ADDED };
    strcpy(e.u.member_added.member.id, "uet");
    e.u.member_added.member.roles = 1;
    memcpy(e.u.member_added.member.public_key, pub(HUST), 32);   /* not the proposed key */
    memcpy(e.u.member_added.proposal_hash, h, 32);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "the change to uet is not the one proposal"));
    free(l.b[--l.n]);
    memset(e.u.member_added.proposal_hash, 0x99, 32);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "which no earlier roster_proposed entry holds"));
    free(l.b[--l.n]);
    e = (struct entry){ .type = ENTRY_MEMBER_REMOVED };
    strcpy(e.u.member_removed.member, "uet");
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 2: member uet is removed but not in the roster");
    log_free(&l);
}

static void genesis_order_and_policy_rules(void **state)
{
    char why[400];
    struct log l = { 0 };
    struct entry e = update(HUST, HUST, 1);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 0: the first entry is a update_accepted, not the genesis "
                             "roster");
    log_free(&l);
    memset(&l, 0, sizeof l);
    genesis(&l);
    genesis(&l);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "entry 1: a second genesis entry"));
    free(l.b[--l.n]);

    /* entries out of order, undecodable bytes, and a failed history stays failed */
    struct ledger_history *h;
    assert_int_equal(ledger_history_new(&h), 0);
    assert_int_equal(ledger_history_add(h, 1, l.b[0], l.len[0], why, sizeof why), LEDGER_ERR_ARG);
    assert_int_equal(ledger_history_add(h, 0, l.b[0], l.len[0], why, sizeof why), 0);
    assert_int_equal(ledger_history_add(h, 1, (const uint8_t *)"AULE", 4, why, sizeof why),
                     LEDGER_ERR_ENTRY_TRUNCATED);
    assert_non_null(strstr(why, "entry 1: does not decode"));
    assert_int_equal(ledger_history_add(h, 1, l.b[0], l.len[0], why, sizeof why),
                     LEDGER_ERR_ENTRY_TRUNCATED);
    ledger_history_free(h);
    log_free(&l);
}

/* --- motions ------------------------------------------------------------------------ */

static const char policy_doc[] = "schema: 1\nmetadata: {name: demo}\n";
static const char charter_doc[] = "quorum: {roster: 0.6, charter: 0.8}\n";

static struct motion motion_of(int proposer, int kind, const char *doc)
{
    struct motion m;
    memset(&m, 0, sizeof m);
    strcpy(m.alliance, "au-lac");
    m.kind = (uint8_t)kind;
    strcpy(m.proposer, ids[proposer]);
    if (kind != MOTION_CHARTER)
        strcpy(m.experiment, "demo-01020304");
    if (doc) {
        crypto_blake2b256(doc, strlen(doc), m.document_digest);
        memset(m.content_hash, kind, 32);
    }
    m.created_unix_ms = T0;
    m.expires_unix_ms = T0 + 86400000;
    return m;
}

/* The motion's entry, signed by signer; *hash gets its proposal hash. */
static struct entry motion_entry(const struct motion *m, int signer, const char *doc,
                                 uint8_t hash[32])
{
    struct entry e = { .type = entry_motion_type(m->kind) };
    uint8_t sig[64];
    assert_int_equal(motion_hash(m, hash), 0);
    assert_int_equal(crypto_signature_create(keys[signer], hash, 32, sig), 0);
    entry_motion_from_motion(&e.u.motion, m, hash, sig, (const uint8_t *)doc,
                             doc ? strlen(doc) : 0);
    return e;
}

static struct entry decided(const uint8_t hash[32], uint32_t outcome, int withdrawer)
{
    struct entry e = { .type = ENTRY_PROPOSAL_DECIDED };
    memcpy(e.u.decided.proposal_hash, hash, 32);
    e.u.decided.outcome = outcome;
    e.u.decided.yes = 2;
    e.u.decided.needed = 2;
    e.u.decided.voters = 3;
    if (withdrawer >= 0) {
        struct withdrawal w = { 0 };
        memcpy(w.proposal_hash, hash, 32);
        strcpy(w.member, ids[withdrawer]);
        uint8_t d[32];
        assert_int_equal(withdrawal_digest(&w, d), 0);
        assert_int_equal(crypto_signature_create(keys[withdrawer], d, 32,
                                                 e.u.decided.withdraw_signature), 0);
    }
    return e;
}

/* A log with an approved experiment, a withdrawn one, an approved charter change and
 * a started experiment; then each forgery on top of it is named. */
static void motions_verify_against_the_roster_of_their_moment(void **state)
{
    char why[400];
    struct log l = { 0 };
    genesis(&l);
    uint8_t h_run[32], h_wd[32], h_ch[32], h_cancel[32];
    struct motion run = motion_of(HUST, MOTION_EXPERIMENT, policy_doc);
    struct entry e = motion_entry(&run, HUST, policy_doc, h_run);
    add(&l, &e);
    e = vote(h_run, VNPT, 1);
    add(&l, &e);
    e = decided(h_run, ENTRY_OUTCOME_APPROVED, -1);
    add(&l, &e);
    struct motion other = motion_of(FPT, MOTION_EXPERIMENT, "schema: 1\n");
    strcpy(other.experiment, "other-0a0b0c0d");
    e = motion_entry(&other, FPT, "schema: 1\n", h_wd);
    add(&l, &e);
    e = decided(h_wd, ENTRY_OUTCOME_WITHDRAWN, FPT);
    add(&l, &e);
    struct motion ch = motion_of(VNPT, MOTION_CHARTER, charter_doc);
    e = motion_entry(&ch, VNPT, charter_doc, h_ch);
    add(&l, &e);
    e = decided(h_ch, ENTRY_OUTCOME_APPROVED, -1);
    add(&l, &e);
    e = (struct entry){ .type = ENTRY_EXPERIMENT_STARTED };
    strcpy(e.u.experiment.experiment, "demo-01020304");
    memcpy(e.u.experiment.proposal_hash, h_run, 32);
    memset(e.u.experiment.policy_hash, MOTION_EXPERIMENT, 32);   /* the motion's content */
    add(&l, &e);
    const struct entry started = e;
    struct motion cancel = motion_of(FPT, MOTION_CANCEL, NULL);
    e = motion_entry(&cancel, FPT, NULL, h_cancel);
    add(&l, &e);
    struct ledger_history_counts n;
    if (check(&l, &n, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(n.motions, 4);
    assert_int_equal(n.decisions, 3);
    assert_int_equal(n.charter_changes, 1);
    assert_int_equal(n.votes, 1);
    /* the charter in force is the approved one's, from its decision on */
    struct ledger_history *hist;
    assert_int_equal(ledger_history_new(&hist), 0);
    for (size_t i = 0; i < l.n; i++)
        assert_int_equal(ledger_history_add(hist, i, l.b[i], l.len[i], why, sizeof why), 0);
    uint8_t in_force[32], want[32];
    uint64_t at;
    ledger_history_charter(hist, in_force, &at);
    memset(want, MOTION_CHARTER, 32);
    assert_memory_equal(in_force, want, 32);
    assert_int_equal(at, 7);
    ledger_history_free(hist);

    /* each forgery, appended to the honest log, is named */
    size_t honest = l.n;
    struct motion forged = motion_of(HUST, MOTION_EXPERIMENT, policy_doc);
    strcpy(forged.experiment, "forged-00000000");
    uint8_t h[32];
    e = motion_entry(&forged, VNPT, policy_doc, h);          /* hust's motion, vnpt's key */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_MEMBER_SIGNATURE);
    assert_string_equal(why, "entry 10: the experiment motion by hust does not verify with "
                             "hust's key of that moment");
    free(l.b[--l.n]);
    e = motion_entry(&forged, HUST, "schema: 2\n", h);       /* another document */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "holds a document that does not hash to its signed document "
                                "digest"));
    free(l.b[--l.n]);
    e = motion_entry(&forged, HUST, policy_doc, h);
    e.type = ENTRY_CANCEL_PROPOSED;                            /* kind and type disagree */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 10: a cancel_proposed entry holds a motion of kind 1");
    free(l.b[--l.n]);
    e = motion_entry(&run, HUST, policy_doc, h);               /* recorded twice */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "the same experiment motion is recorded twice"));
    free(l.b[--l.n]);
    uint8_t unknown[32];
    memset(unknown, 0x5a, 32);
    e = vote(unknown, FPT, 1);                                  /* a vote on nothing */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "which no earlier proposal or motion entry holds"));
    free(l.b[--l.n]);
    e = decided(h_run, ENTRY_OUTCOME_REJECTED, -1);              /* decided twice */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "is decided twice"));
    free(l.b[--l.n]);
    e = decided(h_run, ENTRY_OUTCOME_WITHDRAWN, HUST);           /* withdrawn after its start */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "is decided twice"));
    free(l.b[--l.n]);
    e = decided(h_cancel, ENTRY_OUTCOME_WITHDRAWN, VNPT);        /* withdrawn by another */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_MEMBER_SIGNATURE);
    assert_non_null(strstr(why, "does not verify with its proposer fpt's key"));
    free(l.b[--l.n]);
    e = decided(unknown, ENTRY_OUTCOME_APPROVED, -1);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "which no earlier motion entry holds"));
    free(l.b[--l.n]);
    e = started;                                                 /* started twice */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "entry 10: experiment demo-01020304 (proposal "));
    assert_non_null(strstr(why, "…) starts twice"));
    free(l.b[--l.n]);
    assert_int_equal(l.n, honest);

    /* another policy than the approved one, under the approved proposal */
    for (size_t i = 8; i < honest; i++)   /* up to the experiment_started (#8), which goes */
        free(l.b[i]);
    l.n = 8;
    e = started;
    memset(e.u.experiment.policy_hash, 0x77, 32);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_non_null(strstr(why, "which approved experiment demo-01020304 with another policy "
                                "hash or id"));
    log_free(&l);
}

/* A ledger founded with a charter starts no experiment that names no approved proposal;
 * one founded before the charter existed may. */
static void governed_ledger_starts_only_approved_experiments(void **state)
{
    (void)state;
    char why[400];
    struct log l = { 0 };
    genesis(&l);
    struct entry e = (struct entry){ .type = ENTRY_EXPERIMENT_STARTED };
    strcpy(e.u.experiment.experiment, "demo-01020304");
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), 0);       /* founded before charters */
    log_free(&l);
    memset(&l, 0, sizeof l);
    struct entry_member m = { 0 };
    snprintf(m.id, sizeof m.id, "%s", ids[FPT]);
    m.roles = ENTRY_ROLE_MEMBER;
    memcpy(m.public_key, pub(FPT), 32);
    struct entry g = { .type = ENTRY_GENESIS };
    g.u.genesis.alliance = "au-lac";
    g.u.genesis.n_members = 1;
    g.u.genesis.members = &m;
    g.u.genesis.charter = "quorum: {experiments: 0.5}\n";
    add(&l, &g);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 1: experiment demo-01020304 starts without naming the "
                             "approved proposal it runs");
    log_free(&l);
}

/* --- contribution entries ------------------------------------------------------------ */

static struct entry started_entry(void)
{
    struct entry e = { .type = ENTRY_EXPERIMENT_STARTED };
    strcpy(e.u.experiment.experiment, "gpt2-vi");
    e.u.experiment.rounds = 2;
    return e;
}

/* round_closed of gpt2-vi round with the members who[0..n) as participants */
static struct entry closed_entry(uint64_t round, const int *who, uint32_t n)
{
    static char parts[4][ENTRY_ID_MAX + 1];
    struct entry e = { .type = ENTRY_ROUND_CLOSED };
    strcpy(e.u.round_closed.experiment, "gpt2-vi");
    e.u.round_closed.round = round;
    for (uint32_t i = 0; i < n; i++)
        strcpy(parts[i], ids[who[i]]);
    e.u.round_closed.n_participants = n;
    e.u.round_closed.participants = parts;
    return e;
}

/* contribution_scores of gpt2-vi round for who[0..n) (in that order), one measure, with
 * the payload hashes update() gives them */
static struct entry scores_entry(uint64_t round, const int *who, uint32_t n)
{
    static struct entry_member_score m[4];
    struct entry e = { .type = ENTRY_CONTRIBUTION_SCORES };
    struct entry_contribution_scores *s = &e.u.scores;
    strcpy(s->experiment, "gpt2-vi");
    s->round = round;
    s->n_measures = 1;
    strcpy(s->measures[0], "tokens");
    s->base_loss = s->model_loss = NAN;
    memset(m, 0, sizeof m);
    for (uint32_t i = 0; i < n; i++) {
        strcpy(m[i].member, ids[who[i]]);
        memset(m[i].payload_hash, 0x40 + who[i], 32);
        m[i].values[0] = 1024;
    }
    s->n = n;
    s->members = m;
    return e;
}

static struct entry credits_entry(uint64_t rounds)
{
    static struct entry_credit_share m[2] = {
        { .member = "fpt", .share = 0.75, .measure_share = { 0.75 }, .rounds = 2 },
        { .member = "hust", .share = 0.25, .measure_share = { 0.25 }, .rounds = 1 },
    };
    struct entry e = { .type = ENTRY_CREDITS };
    strcpy(e.u.credits.experiment, "gpt2-vi");
    e.u.credits.rounds = rounds;
    e.u.credits.n_measures = 1;
    strcpy(e.u.credits.measures[0], "tokens");
    e.u.credits.weights[0] = 1;
    e.u.credits.n = 2;
    e.u.credits.members = m;
    return e;
}

/* genesis; started; round 1 (hust, fpt accepted; closed listing hust, fpt; scored fpt,
 * hust); round 2 (fpt; closed; scored); credits of 2 rounds: entries 0..9 */
static void contribution_log(struct log *l)
{
    static const int r1_closed[] = { HUST, FPT }, r1[] = { FPT, HUST }, r2[] = { FPT };
    genesis(l);
    struct entry e = started_entry();
    add(l, &e);
    e = update(HUST, HUST, 1);
    add(l, &e);
    e = update(FPT, FPT, 1);
    add(l, &e);
    e = closed_entry(1, r1_closed, 2);
    add(l, &e);
    e = scores_entry(1, r1, 2);
    add(l, &e);
    e = update(FPT, FPT, 2);
    add(l, &e);
    e = closed_entry(2, r2, 1);
    add(l, &e);
    e = scores_entry(2, r2, 1);
    add(l, &e);
    e = credits_entry(2);
    add(l, &e);
}

static void contribution_entries_match_their_rounds(void **state)
{
    (void)state;
    char why[400];
    struct log l = { 0 };
    contribution_log(&l);
    struct ledger_history_counts k;
    if (check(&l, &k, why, sizeof why) != 0)
        fail_msg("%s", why);
    assert_int_equal(k.scores, 2);
    assert_int_equal(k.credits, 1);
    assert_int_equal(k.entries, 10);
    log_free(&l);
}

/* Each way a contribution entry can disagree with the ledger before it, named with its
 * index. */
static void contribution_entries_that_disagree_are_named(void **state)
{
    (void)state;
    static const int fpt_hust[] = { FPT, HUST }, fpt[] = { FPT }, fpt_vnpt[] = { FPT, VNPT },
                     hust[] = { HUST };
    char why[400];
    struct log l = { 0 };
    contribution_log(&l);
    for (size_t i = 5; i < l.n; i++)   /* keep genesis .. round 1 closed (entries 0..4) */
        free(l.b[i]);
    l.n = 5;

    struct entry e = scores_entry(2, fpt, 1);                  /* round 2 is not closed */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 5: contribution scores of gpt2-vi round 2 name a round "
                             "that no earlier round_closed entry closes");
    free(l.b[--l.n]);
    e = scores_entry(1, fpt, 1);                               /* hust left out */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 5: contribution scores of gpt2-vi round 1 score 1 member, "
                             "who are not the round's 2 participants (round_closed at entry 4)");
    free(l.b[--l.n]);
    e = scores_entry(1, fpt_vnpt, 2);                          /* vnpt sent nothing */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 5: contribution scores of gpt2-vi round 1 score vnpt, whose "
                             "update for that round no earlier update_accepted entry holds");
    free(l.b[--l.n]);
    e = scores_entry(1, fpt_hust, 2);                          /* another payload for hust */
    memset(e.u.scores.members[1].payload_hash, 0x77, 32);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 5: contribution scores of gpt2-vi round 1 give hust's "
                             "payload hash as 7777777777777777…, but its update_accepted (entry "
                             "2) holds 4242424242424242…");
    free(l.b[--l.n]);
    e = scores_entry(1, fpt_hust, 2);                          /* scored twice */
    add(&l, &e);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 6: contribution scores of gpt2-vi round 1 are recorded "
                             "twice (first at entry 5); a round is scored once");
    free(l.b[--l.n]);

    /* a round whose accepted update is not among its participants: round 2 closes with
     * fpt only although hust's update was accepted; scoring both is refused */
    e = update(HUST, HUST, 2);
    add(&l, &e);                                               /* 6 */
    e = update(FPT, FPT, 2);
    add(&l, &e);                                               /* 7 */
    e = closed_entry(2, fpt, 1);
    add(&l, &e);                                               /* 8 */
    e = scores_entry(2, fpt_hust, 2);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 9: contribution scores of gpt2-vi round 2 score 2 members, "
                             "who are not the round's 1 participant (round_closed at entry 8)");
    free(l.b[--l.n]);

    /* credits: the rounds they count, once, after the last round, of a started experiment */
    e = credits_entry(2);                                      /* only round 1 was scored */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 9: credits of gpt2-vi count 2 scored rounds, but 1 "
                             "contribution_scores entry of it comes before");
    free(l.b[--l.n]);
    e = credits_entry(1);
    add(&l, &e);                                               /* 9: round 2 is left unscored */
    assert_int_equal(check(&l, NULL, why, sizeof why), 0);
    e = scores_entry(2, fpt, 1);                               /* scores after the credits */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 10: contribution scores of gpt2-vi round 2 come after the "
                             "experiment's credits (entry 9)");
    free(l.b[--l.n]);
    e = credits_entry(1);                                      /* credited twice */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 10: credits of gpt2-vi are recorded twice (first at entry "
                             "9)");
    free(l.b[--l.n]);
    e = closed_entry(3, hust, 1);                              /* a round after the credits */
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 10: round 3 of gpt2-vi closes after the experiment's "
                             "credits (entry 9): credits come after its last round");
    log_free(&l);

    /* credits of an experiment never started */
    memset(&l, 0, sizeof l);
    genesis(&l);
    e = credits_entry(0);
    add(&l, &e);
    assert_int_equal(check(&l, NULL, why, sizeof why), LEDGER_ERR_HISTORY);
    assert_string_equal(why, "entry 1: credits of gpt2-vi, which no earlier experiment_started "
                             "entry starts");
    log_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(honest_history_verifies),
        cmocka_unit_test(update_credited_to_another_member_is_named),
        cmocka_unit_test(update_accepted_twice_is_named),
        cmocka_unit_test(roster_of_the_moment_decides),
        cmocka_unit_test(forged_votes_proposals_and_changes_are_refused),
        cmocka_unit_test(genesis_order_and_policy_rules),
        cmocka_unit_test(motions_verify_against_the_roster_of_their_moment),
        cmocka_unit_test(governed_ledger_starts_only_approved_experiments),
        cmocka_unit_test(contribution_entries_match_their_rounds),
        cmocka_unit_test(contribution_entries_that_disagree_are_named),
    };
    return cmocka_run_group_tests_name("ledger history", tests, setup, teardown);
}
