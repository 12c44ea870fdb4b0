/* Roster governance: the statements' test vectors (crypto/README.md), the rules
 * (policies/governance.h) on their own, and the whole flow through the RPCs of a
 * real coordinator in this process: proposals, votes, quorum, the ledger entries
 * and the roster rebuilt from them after a restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/hex.h"
#include "common/log.h"
#include "policies/governance.h"
#include "trust_fixture.h"

static void unhex(const char *h, uint8_t *out, size_t n)
{
    assert_int_equal(hex_decode(h, out, n), 0);
}

static struct crypto_key *seed_key(const char *id, int first)
{
    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)(first + i);
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed(id, seed, &k), 0);
    return k;
}

static void example_proposal(struct roster_proposal *p)
{
    memset(p, 0, sizeof *p);
    strcpy(p->alliance, "au-lac");
    p->action = PROPOSAL_ADD;
    strcpy(p->proposer, "fpt");
    strcpy(p->member, "uet");
    strcpy(p->organization, "VNU University of Engineering and Technology");
    p->roles = 3;
    struct crypto_key *nk = seed_key("uet", 32);
    struct crypto_public_key pk;
    crypto_key_public(nk, &pk);
    memcpy(p->public_key, pk.key, 32);
    crypto_key_free(nk);
    strcpy(p->reason, "joins the alliance");
    p->created_unix_ms = 1767225600000;
    p->expires_unix_ms = 1767830400000;
}

static void statement_vectors(void **state)
{
    (void)state;
    struct crypto_key *k = seed_key("fpt", 0), *kv = seed_key("vnpt", 0);
    struct roster_proposal p;
    example_proposal(&p);
    uint8_t hash[32], want[64], sig[64], buf[PROPOSAL_HEADER_MAX];
    size_t len;
    assert_int_equal(proposal_encode(&p, buf, sizeof buf, &len), 0);
    assert_int_equal(len, 162);
    assert_int_equal(proposal_hash(&p, hash), 0);
    unhex("b090b0471ffae231fd95104936925362646f187cb4f3d4c513a5dc72c7d17558", want, 32);
    assert_memory_equal(hash, want, 32);
    assert_int_equal(proposal_sign(&p, k, sig), 0);
    unhex("6ce9e4eef1db150280501386146b595b365b2196d01cd87646e892823cb0ffd1"
          "e4b2a90b0fc1fc6ddaa647df848133929244761e5605cd8a6c1e5779bb851f00", want, 64);
    assert_memory_equal(sig, want, 64);
    assert_int_equal(proposal_sign(&p, kv, sig), CRYPTO_ERR_KEY_MISMATCH);

    struct roster_vote v = { 0 };
    memcpy(v.proposal_hash, hash, 32);
    strcpy(v.voter, "vnpt");
    v.approve = 1;
    uint8_t d[32];
    assert_int_equal(vote_digest(&v, d), 0);
    unhex("1a08029347b3caa0891a77c87444140a5e32557ace7bcce5543c74017a437b90", want, 32);
    assert_memory_equal(d, want, 32);
    assert_int_equal(vote_sign(&v, kv, sig), 0);
    unhex("1564fc1277ee1e0ac36fe82a96e99a3a307a69494986f53ba221d9a393378e33"
          "a8991cc10fcce3b5816acd614f93ddd243cee996be1e9b280b545fa793f58a06", want, 64);
    assert_memory_equal(sig, want, 64);
    struct crypto_public_key pk;
    crypto_key_public(kv, &pk);
    assert_int_equal(vote_verify(&v, pk.key, sig), 0);
    v.approve = 0;   /* a yes never passes for a no */
    assert_int_equal(vote_verify(&v, pk.key, sig), CRYPTO_ERR_BAD_SIGNATURE);
    crypto_key_free(k);
    crypto_key_free(kv);
}

static void proposal_field_rules(void **state)
{
    (void)state;
    struct roster_proposal p;
    char why[200];
    example_proposal(&p);
    assert_int_equal(proposal_check(&p, why, sizeof why), 0);
    p.organization[0] = 0;
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_ARG);
    assert_non_null(strstr(why, "organization"));
    example_proposal(&p);
    p.roles = 8;
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_ARG);
    example_proposal(&p);
    memset(p.public_key, 0, 32);           /* a small-order point */
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_BAD_KEY);
    example_proposal(&p);
    p.action = PROPOSAL_REMOVE;            /* a removal carries no key */
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_ARG);
    p.organization[0] = 0;
    p.roles = 0;
    memset(p.public_key, 0, 32);
    assert_int_equal(proposal_check(&p, why, sizeof why), 0);
    strcpy(p.reason, "line\nbreak");
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_ARG);
    example_proposal(&p);
    strcpy(p.member, "a-very-long-member-id-of-33-bytes");
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_BAD_ID);
    example_proposal(&p);
    p.expires_unix_ms = p.created_unix_ms;
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_ARG);
    example_proposal(&p);
    p.action = 4;
    assert_int_equal(proposal_check(&p, why, sizeof why), CRYPTO_ERR_ARG);
}

/* --- the rules alone ------------------------------------------------------------- */

static void add_members(struct governance_state *g, int n)
{
    for (int i = 0; i < n; i++) {
        struct gov_member m = { 0 };
        snprintf(m.id, sizeof m.id, "m%d", i);
        snprintf(m.organization, sizeof m.organization, "Org %d", i);
        m.roles = 1;
        struct crypto_key *k = seed_key(m.id, 40 + i);
        struct crypto_public_key pk;
        crypto_key_public(k, &pk);
        memcpy(m.public_key, pk.key, 32);
        crypto_key_free(k);
        assert_int_equal(gov_add_founding_member(g, &m), 0);
    }
}

static struct gov_proposal *add_proposal(struct governance_state *g, int action,
                                         const char *proposer, const char *member, int key_seed,
                                         int64_t now)
{
    struct roster_proposal p = { 0 };
    strcpy(p.alliance, g->alliance);
    p.action = (uint8_t)action;
    strcpy(p.proposer, proposer);
    strcpy(p.member, member);
    if (action == PROPOSAL_ADD) {
        strcpy(p.organization, "New");
        p.roles = 1;
    }
    if (key_seed >= 0) {
        struct crypto_key *k = seed_key(member, key_seed);
        struct crypto_public_key pk;
        crypto_key_public(k, &pk);
        memcpy(p.public_key, pk.key, 32);
        crypto_key_free(k);
    }
    p.created_unix_ms = now;
    p.expires_unix_ms = now + 1000;
    uint8_t hash[32], sig[64] = { 0 };
    char why[300];
    assert_int_equal(proposal_hash(&p, hash), 0);
    int rc = gov_check_proposal(g, &p, hash, now, 300000, why, sizeof why);
    if (rc != 0)
        fail_msg("proposal refused: %s", why);
    assert_int_equal(gov_add_proposal(g, &p, hash, sig, g->n_proposals + 10), 0);
    return &g->proposals[g->n_proposals - 1];
}

static void quorum_arithmetic(void **state)
{
    (void)state;
    static const struct { double q; int members; uint32_t needed; } cases[] = {
        { 0.66, 3, 2 }, { 0.66, 4, 3 }, { 0.7, 10, 7 }, { 0.5, 2, 1 }, { 0.5, 3, 2 },
        { 1.0, 5, 5 }, { 0.01, 5, 1 }, { 0.6, 5, 3 },
    };
    uint8_t zero[64] = { 0 };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct governance_state g;
        struct charter ch;
        charter_default(&ch);
        ch.roster_quorum = cases[i].q;
        gov_init(&g, "a", &ch);
        add_members(&g, cases[i].members);
        struct gov_proposal *p = add_proposal(&g, PROPOSAL_ADD, "m0", "new", 100, 1000);
        struct gov_tally t;
        enum gov_state s = gov_tally(&g, p, &t);
        assert_int_equal(t.voters, (uint32_t)cases[i].members);
        if (t.needed != cases[i].needed)
            fail_msg("quorum %.2f of %d: needed %u, want %u", cases[i].q, cases[i].members,
                     t.needed, cases[i].needed);
        assert_int_equal(t.yes, 1);
        assert_int_equal(s, cases[i].needed == 1 ? GOV_APPLIED : GOV_OPEN);
        /* approvals one by one until the quorum */
        for (int v = 1; s == GOV_OPEN; v++) {
            char voter[16];
            snprintf(voter, sizeof voter, "m%d", v);
            assert_int_equal(gov_check_vote(&g, p, voter, 1000, NULL, 0), 0);
            assert_int_equal(gov_add_vote(&g, p, voter, 1, zero, 0), 0);
            s = gov_tally(&g, p, &t);
            assert_int_equal(t.yes, (uint32_t)v + 1);
        }
        assert_int_equal(t.yes, cases[i].needed);
        assert_int_equal(gov_apply(&g, p, 99), 0);
        assert_non_null(gov_member_find(&g, "new"));
        gov_free(&g);
    }
}

static void voting_rules(void **state)
{
    (void)state;
    uint8_t zero[64] = { 0 };
    char why[300];
    struct governance_state g;
    struct charter ch;
    charter_default(&ch);
    ch.roster_quorum = 0.66;
    gov_init(&g, "a", &ch);
    add_members(&g, 3);   /* m0 m1 m2 */

    /* removal: the subject does not vote; 2 voters, 2 needed; one no rejects */
    struct gov_proposal *p = add_proposal(&g, PROPOSAL_REMOVE, "m0", "m2", -1, 1000);
    struct gov_tally t;
    assert_int_equal(gov_tally(&g, p, &t), GOV_OPEN);
    assert_int_equal(t.voters, 2);
    assert_int_equal(t.needed, 2);
    assert_int_equal(gov_check_vote(&g, p, "m2", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "own removal"));
    assert_int_equal(gov_check_vote(&g, p, "m0", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "already counted"));
    assert_int_equal(gov_check_vote(&g, p, "zz", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_int_equal(gov_add_vote(&g, p, "m1", 0, zero, 0), 0);
    assert_int_equal(gov_check_vote(&g, p, "m1", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "already voted"));
    assert_int_equal(gov_tally(&g, p, &t), GOV_REJECTED);
    p->state = GOV_REJECTED;

    /* expiry closes the votes */
    p = add_proposal(&g, PROPOSAL_ROTATE, "m1", "m1", 200, 1000);
    assert_int_equal(gov_state_at(p, 2001), GOV_EXPIRED);
    assert_int_equal(gov_check_vote(&g, p, "m0", 2001, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "expired"));
    /* approved: the old key is retired and never accepted again */
    uint8_t old_key[32];
    memcpy(old_key, gov_member_find(&g, "m1")->public_key, 32);
    assert_int_equal(gov_add_vote(&g, p, "m0", 1, zero, 0), 0);
    assert_int_equal(gov_tally(&g, p, &t), GOV_APPLIED);
    assert_int_equal(gov_apply(&g, p, 50), 0);
    const struct gov_retired *r = gov_retired_find(&g, "m1", old_key);
    assert_non_null(r);
    assert_int_equal(r->removed, 0);
    assert_int_equal(r->index, 50);
    struct roster_proposal back = { 0 };
    strcpy(back.alliance, "a");
    back.action = PROPOSAL_ROTATE;
    strcpy(back.proposer, "m1");
    strcpy(back.member, "m1");
    memcpy(back.public_key, old_key, 32);
    back.created_unix_ms = 1000;
    back.expires_unix_ms = 2000;
    uint8_t h[32];
    assert_int_equal(proposal_hash(&back, h), 0);
    assert_int_equal(gov_check_proposal(&g, &back, h, 1000, 300000, why, sizeof why),
                     GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "never accepted again"));

    /* a proposal made twice; a stale one; one from another alliance */
    p = add_proposal(&g, PROPOSAL_ADD, "m0", "new", 300, 1000);
    assert_int_equal(gov_check_proposal(&g, &p->p, p->hash, 1000, 300000, why, sizeof why),
                     GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "already made"));
    struct roster_proposal q = p->p;
    q.created_unix_ms = 1000;
    assert_int_equal(proposal_hash(&q, h), 0);
    assert_int_equal(gov_check_proposal(&g, &q, h, 1000 + 400000, 300000, why, sizeof why),
                     GOV_ERR_REFUSED);
    strcpy(q.alliance, "b");
    q.reason[0] = 'x';
    assert_int_equal(proposal_hash(&q, h), 0);
    assert_int_equal(gov_check_proposal(&g, &q, h, 1000, 300000, why, sizeof why),
                     GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "alliance"));

    /* two proposals to add the same member: the second is obsolete once the first applies */
    struct gov_proposal *first = &g.proposals[g.n_proposals - 1];
    size_t first_i = g.n_proposals - 1;
    struct gov_proposal *second = add_proposal(&g, PROPOSAL_ADD, "m1", "new", 301, 1001);
    first = &g.proposals[first_i];
    assert_int_equal(gov_add_vote(&g, first, "m1", 1, zero, 0), 0);
    assert_int_equal(gov_tally(&g, first, &t), GOV_APPLIED);
    assert_int_equal(gov_apply(&g, first, 60), 0);
    second = &g.proposals[g.n_proposals - 1];
    assert_int_equal(gov_add_vote(&g, second, "m0", 1, zero, 0), 0);
    assert_int_equal(gov_add_vote(&g, second, "m2", 1, zero, 0), 0);
    assert_int_equal(gov_tally(&g, second, &t), GOV_APPLIED);
    assert_int_equal(gov_applicable(&g, &second->p, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "already a member"));

    /* a vote by a member removed since no longer counts */
    struct gov_proposal *add2 = add_proposal(&g, PROPOSAL_ADD, "m0", "other", 400, 1002);
    size_t add2_i = g.n_proposals - 1;
    assert_int_equal(gov_add_vote(&g, add2, "m2", 1, zero, 0), 0);
    assert_int_equal(gov_tally(&g, add2, &t), GOV_OPEN);   /* 4 members: 3 needed */
    assert_int_equal(t.yes, 2);
    assert_int_equal(gov_replay_removed(&g, "m2", 70), 0);
    add2 = &g.proposals[add2_i];
    gov_tally(&g, add2, &t);
    assert_int_equal(t.yes, 1);
    assert_int_equal(t.voters, 3);
    const struct gov_retired *rm = gov_retired_find(&g, "m2", NULL);
    assert_non_null(rm);
    assert_int_equal(rm->removed, 1);
    gov_free(&g);
}


/* --- motions: the rules alone ---------------------------------------------------------- */

static struct motion rule_motion(int kind, const char *proposer, uint8_t content, int64_t now)
{
    struct motion m;
    memset(&m, 0, sizeof m);
    strcpy(m.alliance, "a");
    m.kind = (uint8_t)kind;
    strcpy(m.proposer, proposer);
    if (kind != MOTION_CHARTER)
        snprintf(m.experiment, sizeof m.experiment, "exp-%02x", content);
    if (kind != MOTION_CANCEL) {
        memset(m.document_digest, content, 32);
        memset(m.content_hash, content, 32);
    }
    m.created_unix_ms = now;
    m.expires_unix_ms = now + 1000;
    return m;
}

static struct gov_proposal *add_motion(struct governance_state *g, const struct motion *m,
                                       const struct charter *ch, int64_t now)
{
    uint8_t hash[32], sig[64] = { 0 };
    char why[300];
    assert_int_equal(motion_hash(m, hash), 0);
    if (gov_check_motion(g, m, hash, ch, now, 300000, why, sizeof why) != 0)
        fail_msg("motion refused: %s", why);
    assert_int_equal(gov_add_motion(g, m, hash, sig, ch, g->n_proposals + 10), 0);
    return &g->proposals[g->n_proposals - 1];
}

static void expect_motion_refused(struct governance_state *g, const struct motion *m,
                                  const struct charter *ch, int64_t now, const char *pat)
{
    uint8_t hash[32];
    char why[400];
    assert_int_equal(motion_hash(m, hash), 0);
    assert_int_equal(gov_check_motion(g, m, hash, ch, now, 300000, why, sizeof why),
                     GOV_ERR_REFUSED);
    if (!strstr(why, pat))
        fail_msg("reason \"%s\" lacks \"%s\"", why, pat);
}

/* Quorums by kind: 5 members, roster 0.5 (3), experiments 0.6 (3), charter 0.8 (4). */
static void motion_tallies_use_the_quorum_of_their_kind(void **state)
{
    (void)state;
    uint8_t zero[64] = { 0 };
    struct governance_state g;
    struct charter ch;
    charter_default(&ch);
    ch.roster_quorum = 0.5;
    ch.experiment_quorum = 0.6;
    ch.charter_quorum = 0.8;
    ch.proposer_roles = ROSTER_ROLE_MEMBER;
    gov_init(&g, "a", &ch);
    add_members(&g, 5);
    struct gov_tally t;
    struct motion m = rule_motion(MOTION_EXPERIMENT, "m0", 1, 1000);
    struct gov_proposal *p = add_motion(&g, &m, NULL, 1000);
    assert_int_equal(gov_tally(&g, p, &t), GOV_OPEN);
    assert_int_equal(t.voters, 5);         /* every member votes on a motion */
    assert_int_equal(t.needed, 3);
    assert_int_equal(t.yes, 1);            /* the proposer's implicit yes */
    struct charter next = ch;
    next.charter_quorum = 0.9;
    struct motion c = rule_motion(MOTION_CHARTER, "m1", 2, 1000);
    struct gov_proposal *pc = add_motion(&g, &c, &next, 1000);
    assert_int_equal(gov_tally(&g, pc, &t), GOV_OPEN);
    assert_int_equal(t.needed, 4);
    struct gov_proposal *pr = add_proposal(&g, PROPOSAL_REMOVE, "m0", "m4", -1, 1000);
    assert_int_equal(gov_tally(&g, pr, &t), GOV_OPEN);
    assert_int_equal(t.voters, 4);
    assert_int_equal(t.needed, 2);
    /* one vote each; the proposer's is counted already; a no past V - needed rejects */
    p = &g.proposals[0];
    char why[300];
    assert_int_equal(gov_check_vote(&g, p, "m0", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "already counted"));
    assert_int_equal(gov_add_vote(&g, p, "m1", 0, zero, 30), 0);
    assert_int_equal(gov_check_vote(&g, p, "m1", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "already voted no on it (ledger #30)"));
    assert_int_equal(gov_add_vote(&g, p, "m2", 0, zero, 31), 0);
    assert_int_equal(gov_tally(&g, p, &t), GOV_OPEN);       /* 2 no: 3 yes still possible */
    assert_int_equal(gov_add_vote(&g, p, "m3", 0, zero, 32), 0);
    assert_int_equal(gov_tally(&g, p, &t), GOV_REJECTED);   /* 3 no > 5 - 3 */
    /* the charter motion: approved at 4, then in force */
    pc = &g.proposals[1];
    for (int v = 0; v < 5; v++) {
        char id[8];
        snprintf(id, sizeof id, "m%d", v);
        if (v != 1)
            assert_int_equal(gov_add_vote(&g, pc, id, 1, zero, 40), 0);
        if (v == 3)
            break;
    }
    assert_int_equal(gov_tally(&g, pc, &t), GOV_APPLIED);
    assert_int_equal(t.yes, 4);
    gov_decide(&g, pc, GOV_APPLIED, 41, "approved");
    assert_true(g.charter.charter_quorum == 0.9);
    gov_free(&g);
}

static void motion_refusals(void **state)
{
    (void)state;
    uint8_t zero[64] = { 0 };
    char why[400];
    struct governance_state g;
    gov_init(&g, "a", NULL);              /* the default charter: researchers propose */
    add_members(&g, 3);                   /* m0 m1 m2, role member */
    g.members[1].roles = ROSTER_ROLE_MEMBER | ROSTER_ROLE_RESEARCHER;
    struct motion m = rule_motion(MOTION_EXPERIMENT, "m0", 1, 1000);
    expect_motion_refused(&g, &m, NULL, 1000, "member m0 has roles [member]; proposing an "
                          "experiment needs the role researcher (charter.proposers)");
    g.charter.proposer_roles = ROSTER_ROLE_RESEARCHER | ROSTER_ROLE_SECRETARIAT;
    expect_motion_refused(&g, &m, NULL, 1000, "needs one of the roles researcher, "
                          "secretariat (charter.proposers)");
    g.charter.proposer_roles = ROSTER_ROLE_RESEARCHER;
    m = rule_motion(MOTION_EXPERIMENT, "m1", 1, 1000);
    struct gov_proposal *p = add_motion(&g, &m, NULL, 1000);
    size_t run_i = g.n_proposals - 1;
    /* the same motion again; the same policy in another motion */
    expect_motion_refused(&g, &m, NULL, 1000, "already made");
    m.created_unix_ms++;
    strcpy(m.reason, "again");
    expect_motion_refused(&g, &m, NULL, 1000, "was already proposed by m1 as experiment "
                          "exp-01 (ledger #10, open); a policy is proposed once: change "
                          "metadata.name or model.seed");
    /* expired: votes closed; and a stale or too long motion */
    assert_int_equal(gov_check_vote(&g, p, "m2", 2001, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "expired"));
    m = rule_motion(MOTION_EXPERIMENT, "m1", 2, 1000);
    m.expires_unix_ms = m.created_unix_ms + GOV_MAX_TTL_MS + 1;
    expect_motion_refused(&g, &m, NULL, 1000, "at most 30 days");
    m = rule_motion(MOTION_EXPERIMENT, "m1", 2, 1000);
    expect_motion_refused(&g, &m, NULL, 1000 + 400000, "from the coordinator's clock");
    m = rule_motion(MOTION_EXPERIMENT, "zz", 2, 1000);
    expect_motion_refused(&g, &m, NULL, 1000, "'zz' is not a current member");
    /* cancel: only an approved experiment, one open cancel at a time */
    struct motion c = rule_motion(MOTION_CANCEL, "m2", 1, 1000);
    expect_motion_refused(&g, &c, NULL, 1000, "no approved experiment exp-01 is known");
    p = &g.proposals[run_i];
    assert_int_equal(gov_add_vote(&g, p, "m0", 1, zero, 20), 0);
    struct gov_tally t;
    assert_int_equal(gov_tally(&g, p, &t), GOV_APPLIED);
    gov_decide(&g, p, GOV_APPLIED, 21, "approved");
    assert_non_null(gov_experiment_find(&g, "exp-01"));
    add_motion(&g, &c, NULL, 1000);
    c.created_unix_ms++;
    expect_motion_refused(&g, &c, NULL, 1000, "a cancellation of exp-01 is already open");
    /* charter: not the one in force */
    struct charter same = g.charter;
    struct motion ch = rule_motion(MOTION_CHARTER, "m0", 3, 1000);
    expect_motion_refused(&g, &ch, &same, 1000, "this charter is the one in force");
    /* withdrawal: the proposer, while open or approved-not-started */
    p = &g.proposals[run_i];
    assert_int_equal(gov_check_withdraw(&g, p, "m0", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "only its proposer m1 may withdraw it, not m0"));
    assert_int_equal(gov_check_withdraw(&g, p, "m1", 1000, why, sizeof why), 0);
    struct gov_proposal *cancel = &g.proposals[g.n_proposals - 1];
    assert_int_equal(gov_check_withdraw(&g, cancel, "m2", 1000, why, sizeof why), 0);
    assert_int_equal(gov_check_withdraw(&g, cancel, "m2", 5000, why, sizeof why),
                     GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "the cancel motion is expired: there is nothing to withdraw"));
    gov_decide(&g, cancel, GOV_WITHDRAWN, 50, "withdrawn");
    assert_int_equal(gov_check_vote(&g, cancel, "m0", 1000, why, sizeof why), GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "withdrawn: votes are closed"));
    struct gov_proposal *roster = add_proposal(&g, PROPOSAL_REMOVE, "m0", "m2", -1, 1000);
    assert_int_equal(gov_check_withdraw(&g, roster, "m0", 1000, why, sizeof why),
                     GOV_ERR_REFUSED);
    assert_non_null(strstr(why, "a roster proposal cannot be withdrawn"));
    assert_true(gov_default_expiry_ms(&g, 1000) == 1000 + 7LL * 24 * 3600 * 1000);
    gov_free(&g);
}

/* --- through the coordinator ------------------------------------------------------- */

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    fx_prepare(f);
    fx_start(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fx_free(f);
    free(f);
    return 0;
}

static void expect_refused(Aulac__V1__GovernanceReply *g, const char *pat)
{
    assert_non_null(g);
    assert_false(g->accepted);
    if (!strstr(g->reason, pat))
        fail_msg("reason \"%s\" lacks \"%s\"", g->reason, pat);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
}

/* The roster_proposed entry at index holds what the proposer signed. */
static void check_proposal_entry(struct fx *f, uint64_t index, const struct crypto_key *proposer)
{
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ledger_get(f->c->ledger, index, &bytes, &len), 0);
    struct entry e;
    assert_int_equal(entry_decode(bytes, len, &e), 0);
    free(bytes);
    assert_int_equal(e.type, ENTRY_ROSTER_PROPOSED);
    const struct entry_roster_proposed *r = &e.u.roster_proposed;
    struct roster_proposal p = { 0 };
    strcpy(p.alliance, "trust-test");
    p.action = (uint8_t)r->action;
    strcpy(p.proposer, r->proposer);
    strcpy(p.member, r->member);
    snprintf(p.organization, sizeof p.organization, "%s", r->organization ? r->organization : "");
    p.roles = r->roles;
    memcpy(p.public_key, r->public_key, 32);
    snprintf(p.reason, sizeof p.reason, "%s", r->reason ? r->reason : "");
    p.created_unix_ms = (int64_t)r->created_ms;
    p.expires_unix_ms = (int64_t)r->expires_ms;
    uint8_t h[32];
    assert_int_equal(proposal_hash(&p, h), 0);
    assert_memory_equal(h, r->proposal_hash, 32);
    struct crypto_public_key pk;
    crypto_key_public(proposer, &pk);
    assert_int_equal(proposal_verify(&p, pk.key, r->signature), 0);
    entry_free(&e);
}

static void add_member_by_quorum(void **state)
{
    struct fx *f = *state;
    struct signer sf = { .key = f->keys[FPT] }, sv = { .key = f->keys[VNPT] },
                  su = { .key = f->keys[UET] };
    struct fed_client *cf = fx_client(f, &sf), *cv = fx_client(f, &sv), *cu = fx_client(f, &su);
    struct rpc_status st;
    Aulac__V1__TaskRequest tq = AULAC__V1__TASK_REQUEST__INIT;
    tq.member_id = "uet";
    Aulac__V1__Task *t = NULL;
    expect_status(fed_get_task(cu, &tq, &t, &st), &st, GRPC_STATUS_PERMISSION_DENIED,
                  "unknown member 'uet'");

    uint8_t h[32];
    Aulac__V1__GovernanceReply *g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_ADD, "uet",
                                               f->keys[UET], h);
    assert_true(g->accepted);
    assert_string_equal(g->proposal->state, "open");
    assert_int_equal(g->proposal->yes, 1);
    assert_int_equal(g->proposal->needed, 2);
    assert_int_equal(g->proposal->voters, 3);
    uint64_t proposed_at = g->ledger_index;
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    check_proposal_entry(f, proposed_at, f->keys[FPT]);
    expect_status(fed_get_task(cu, &tq, &t, &st), &st, GRPC_STATUS_PERMISSION_DENIED,
                  "unknown member 'uet'");

    g = fx_vote(cv, f->keys[VNPT], h, 1);
    assert_true(g->accepted);
    assert_string_equal(g->proposal->state, "approved");
    assert_int_equal(g->proposal->outcome_index, g->ledger_index + 1);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    struct entry e;
    uint64_t last;
    fx_last_entry(f, &e, &last);
    assert_int_equal(e.type, ENTRY_MEMBER_ADDED);
    assert_string_equal(e.u.member_added.member.id, "uet");
    assert_memory_equal(e.u.member_added.proposal_hash, h, 32);
    entry_free(&e);
    pthread_mutex_lock(&f->c->mu);
    assert_non_null(roster_find(&f->c->roster, "uet"));
    assert_int_equal(f->c->n_eligible, 4);
    pthread_mutex_unlock(&f->c->mu);

    /* uet's own key works at once: join, task, upload */
    Aulac__V1__JoinRequest jq = AULAC__V1__JOIN_REQUEST__INIT;
    struct join_request j = { 0 };
    strcpy(j.member, "uet");
    j.timestamp_unix_ms = time_now_unix_ms();
    randombytes_buf(j.nonce, 16);
    uint8_t jsig[64];
    assert_int_equal(envelope_join_sign(&j, f->keys[UET], jsig), 0);
    jq.member_id = "uet";
    jq.timestamp_ms = j.timestamp_unix_ms;
    jq.nonce.data = j.nonce;
    jq.nonce.len = 16;
    jq.signature.data = jsig;
    jq.signature.len = 64;
    Aulac__V1__JoinReply *jr = NULL;
    assert_int_equal(fed_join(cu, &jq, &jr, &st), 0);
    assert_true(jr->accepted);
    aulac__v1__join_reply__free_unpacked(jr, NULL);
    assert_int_equal(fed_get_task(cu, &tq, &t, &st), 0);
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__TRAIN);
    aulac__v1__task__free_unpacked(t, NULL);
    struct upd u;
    upd_make(f, &u, f->keys[UET], 1);
    Aulac__V1__Receipt *r = NULL;
    assert_int_equal(fed_submit_update(cu, &u.h, u.payload, u.len, 0, &r, &st), 0);
    assert_true(r->accepted);
    aulac__v1__receipt__free_unpacked(r, NULL);
    upd_free(&u);

    /* governance refusals, each with its reason */
    g = fx_vote(cf, f->keys[FPT], h, 1);
    expect_refused(g, "votes are closed");
    uint8_t unknown[32] = { 1 };
    expect_refused(fx_vote(cf, f->keys[FPT], unknown, 1), "no proposal");
    expect_refused(fx_propose(f, cf, f->keys[FPT], PROPOSAL_ADD, "uet", f->keys[UET], h),
                   "already a member");
    expect_refused(fx_propose(f, cf, f->keys[FPT], PROPOSAL_ADD, "ptit", f->keys[VNPT], h),
                   "already vnpt's key");
    fed_client_close(cf);
    fed_client_close(cv);
    fed_client_close(cu);
}

static void forged_governance_refused(void **state)
{
    struct fx *f = *state;
    struct signer sf = { .key = f->keys[FPT] }, sv = { .key = f->keys[VNPT] };
    struct fed_client *cf = fx_client(f, &sf), *cv = fx_client(f, &sv);
    uint64_t before = fx_ledger_size(f);
    /* a proposal in fpt's name signed by vnpt's key, sent by vnpt: the request is
     * vnpt's, the body names fpt */
    struct roster_proposal p = { 0 };
    strcpy(p.alliance, "trust-test");
    p.action = PROPOSAL_REMOVE;
    strcpy(p.proposer, "fpt");
    strcpy(p.member, "hust");
    p.created_unix_ms = time_now_unix_ms();
    p.expires_unix_ms = p.created_unix_ms + 60000;
    uint8_t sig[64], d[32];
    assert_int_equal(proposal_hash(&p, d), 0);
    assert_int_equal(crypto_signature_create(f->keys[VNPT], d, 32, sig), 0);
    Aulac__V1__RosterProposal q;
    Aulac__V1__RosterChange ch;
    roster_proposal_to_msg(&p, sig, &q, &ch);
    Aulac__V1__GovernanceReply *g = NULL;
    struct rpc_status st;
    expect_status(fed_propose_roster_change(cv, &q, &g, &st), &st,
                  GRPC_STATUS_UNAUTHENTICATED, "made for member 'fpt'");
    /* sent by fpt (valid request) but the proposal's signature is vnpt's */
    assert_int_equal(fed_propose_roster_change(cf, &q, &g, &st), 0);
    expect_refused(g, "bad signature: the proposal");
    /* stale, and for another alliance */
    p.created_unix_ms -= 3600 * 1000;
    assert_int_equal(proposal_sign(&p, f->keys[FPT], sig), 0);
    roster_proposal_to_msg(&p, sig, &q, &ch);
    assert_int_equal(fed_propose_roster_change(cf, &q, &g, &st), 0);
    expect_refused(g, "from the coordinator's clock");
    p.created_unix_ms = time_now_unix_ms();
    strcpy(p.alliance, "elsewhere");
    assert_int_equal(proposal_sign(&p, f->keys[FPT], sig), 0);
    roster_proposal_to_msg(&p, sig, &q, &ch);
    assert_int_equal(fed_propose_roster_change(cf, &q, &g, &st), 0);
    expect_refused(g, "alliance 'elsewhere'");
    /* a vote signed by someone else */
    strcpy(p.alliance, "trust-test");
    uint8_t h[32];
    g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_REMOVE, "hust", NULL, h);
    assert_true(g->accepted);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    uint64_t after_proposal = fx_ledger_size(f);
    assert_int_equal(after_proposal, before + 1);   /* refusals leave no entry */
    struct roster_vote v = { 0 };
    memcpy(v.proposal_hash, h, 32);
    strcpy(v.voter, "vnpt");
    v.approve = 1;
    assert_int_equal(vote_digest(&v, d), 0);
    assert_int_equal(crypto_signature_create(f->keys[HUST], d, 32, sig), 0);
    Aulac__V1__VoteRequest vq = AULAC__V1__VOTE_REQUEST__INIT;
    vq.proposal_hash.data = h;
    vq.proposal_hash.len = 32;
    vq.voter_id = "vnpt";
    vq.approve = 1;
    vq.signature.data = sig;
    vq.signature.len = 64;
    assert_int_equal(fed_vote(cv, &vq, &g, &st), 0);
    expect_refused(g, "bad signature: the vote");
    assert_int_equal(fx_ledger_size(f), after_proposal);
    pthread_mutex_lock(&f->c->mu);
    assert_non_null(roster_find(&f->c->roster, "hust"));
    pthread_mutex_unlock(&f->c->mu);
    fed_client_close(cf);
    fed_client_close(cv);
}

/* After add, rotate and remove, a restarted coordinator has the same roster, and
 * an open proposal keeps its votes. */
static void roster_rebuilt_after_restart(void **state)
{
    struct fx *f = *state;
    struct signer sf = { .key = f->keys[FPT] }, sv = { .key = f->keys[VNPT] };
    struct fed_client *cf = fx_client(f, &sf), *cv = fx_client(f, &sv);
    uint8_t h[32];
    Aulac__V1__GovernanceReply *g;
    struct crypto_key *vnpt2 = fx_key("vnpt", 13);

    g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_ADD, "uet", f->keys[UET], h);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = fx_vote(cv, f->keys[VNPT], h, 1);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);

    g = fx_propose(f, cv, f->keys[VNPT], PROPOSAL_ROTATE, "vnpt", vnpt2, h);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = fx_vote(cf, f->keys[FPT], h, 1);              /* 4 members: 3 needed */
    assert_string_equal(g->proposal->state, "open");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    struct signer su = { .key = f->keys[UET] };
    struct fed_client *cu = fx_client(f, &su);
    g = fx_vote(cu, f->keys[UET], h, 1);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);

    g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_REMOVE, "hust", NULL, h);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = fx_vote(cu, f->keys[UET], h, 1);              /* voters fpt, vnpt, uet: 2 needed */
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);

    uint8_t pending[32];
    g = fx_propose(f, cu, f->keys[UET], PROPOSAL_REMOVE, "fpt", NULL, pending);
    assert_string_equal(g->proposal->state, "open");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    fed_client_close(cf);
    fed_client_close(cv);
    fed_client_close(cu);

    fx_stop(f);
    fx_start(f);
    struct coord *c = f->c;
    pthread_mutex_lock(&c->mu);
    assert_int_equal(c->roster.n_members, 3);
    assert_non_null(roster_find(&c->roster, "fpt"));
    assert_non_null(roster_find(&c->roster, "uet"));
    assert_null(roster_find(&c->roster, "hust"));
    const struct roster_member *v = roster_find(&c->roster, "vnpt");
    struct crypto_public_key pk;
    crypto_key_public(vnpt2, &pk);
    assert_memory_equal(v->public_key, pk.key, 32);
    assert_int_equal(c->n_eligible, 3);
    pthread_mutex_unlock(&c->mu);

    /* the old vnpt key is refused, the new one lists the pending proposal */
    struct signer old = { .key = f->keys[VNPT] }, fresh = { .key = vnpt2 };
    struct fed_client *co = fx_client(f, &old), *cn = fx_client(f, &fresh);
    Aulac__V1__ProposalsRequest lq = AULAC__V1__PROPOSALS_REQUEST__INIT;
    lq.member_id = "vnpt";
    Aulac__V1__ProposalsReply *lr = NULL;
    struct rpc_status st;
    expect_status(fed_list_proposals(co, &lq, &lr, &st), &st, GRPC_STATUS_PERMISSION_DENIED,
                  "rotated out");
    assert_int_equal(fed_list_proposals(cn, &lq, &lr, &st), 0);
    assert_int_equal(lr->n_roster, 3);
    assert_int_equal(lr->n_proposals, 1);
    assert_memory_equal(lr->proposals[0]->proposal_hash.data, pending, 32);
    assert_int_equal(lr->proposals[0]->voters, 2);    /* vnpt and uet; fpt is the subject */
    aulac__v1__proposals_reply__free_unpacked(lr, NULL);
    lq.include_closed = 1;
    assert_int_equal(fed_list_proposals(cn, &lq, &lr, &st), 0);
    size_t roster_changes = 0, motions = 0;   /* the motion: the fixture's experiment */
    for (size_t i = 0; i < lr->n_proposals; i++) {
        roster_changes += lr->proposals[i]->proposal != NULL;
        motions += lr->proposals[i]->motion != NULL;
    }
    assert_int_equal(roster_changes, 4);
    assert_int_equal(motions, 1);
    aulac__v1__proposals_reply__free_unpacked(lr, NULL);
    /* and the pending one is decided after the restart: vnpt refuses */
    g = fx_vote(cn, vnpt2, pending, 0);
    assert_string_equal(g->proposal->state, "rejected");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    fed_client_close(co);
    fed_client_close(cn);
    crypto_key_free(vnpt2);
}

/* Removing the only member that has not reported closes the round. */
static void removal_closes_the_round(void **state)
{
    struct fx *f = *state;
    struct signer sf = { .key = f->keys[FPT] }, sv = { .key = f->keys[VNPT] };
    struct fed_client *cf = fx_client(f, &sf), *cv = fx_client(f, &sv);
    struct rpc_status st;
    for (int m = FPT; m <= VNPT; m++) {
        struct upd u;
        upd_make(f, &u, f->keys[m], m + 1);
        Aulac__V1__Receipt *r = NULL;
        assert_int_equal(fed_submit_update(m == FPT ? cf : cv, &u.h, u.payload, u.len, 0, &r,
                                           &st), 0);
        assert_true(r->accepted);
        aulac__v1__receipt__free_unpacked(r, NULL);
        upd_free(&u);
    }
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->rnd.number, 1);
    pthread_mutex_unlock(&f->c->mu);
    uint8_t h[32];
    Aulac__V1__GovernanceReply *g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_REMOVE, "hust",
                                               NULL, h);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = fx_vote(cv, f->keys[VNPT], h, 1);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    /* The coordinator's timer closes the round the removal left complete (within its
     * 200 ms tick); give it up to 10 s. */
    uint64_t round = 0;
    size_t eligible = 0;
    for (int i = 0; i < 200 && round < 2; i++) {
        pthread_mutex_lock(&f->c->mu);
        round = f->c->rnd.number;
        eligible = f->c->n_eligible;
        pthread_mutex_unlock(&f->c->mu);
        if (round < 2)
            usleep(50000);
    }
    assert_int_equal(round, 2);
    assert_int_equal(eligible, 2);
    fed_client_close(cf);
    fed_client_close(cv);
}

/* participation.members: all is every member of the live roster (policies/README.md):
 * the coordinator starts, waits for all three founders before it closes a round, and
 * takes a member the alliance adds later. */
static void empty_member_list_means_live_roster(void **state)
{
    (void)state;
    struct fx fx, *f = &fx;
    fx_prepare(f);
    char text[sizeof fx_policy + 16];
    const char *list = strstr(fx_policy, "members: [fpt, vnpt, hust, uet]");
    assert_non_null(list);
    snprintf(text, sizeof text, "%.*smembers: all%s", (int)(list - fx_policy), fx_policy,
             list + strlen("members: [fpt, vnpt, hust, uet]"));
    fx_write(f->paths[3], text, 0644);
    fx_start(f);
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->n_eligible, 3);
    pthread_mutex_unlock(&f->c->mu);

    struct signer sg[N_KEYS];
    struct fed_client *cl[N_KEYS];
    for (int m = FPT; m < N_KEYS; m++) {
        sg[m] = (struct signer){ .key = f->keys[m] };
        cl[m] = fx_client(f, &sg[m]);
    }
    struct rpc_status st;
    uint64_t round = 0;
    for (int m = FPT; m <= HUST; m++) {
        pthread_mutex_lock(&f->c->mu);
        round = f->c->rnd.number;
        pthread_mutex_unlock(&f->c->mu);
        assert_int_equal(round, 1);       /* not closed before the last founder reports */
        struct upd u;
        upd_make(f, &u, f->keys[m], m + 1);
        Aulac__V1__Receipt *r = NULL;
        assert_int_equal(fed_submit_update(cl[m], &u.h, u.payload, u.len, 0, &r, &st), 0);
        if (!r->accepted)
            fail_msg("%s: %s", fx_ids[m], r->reason);
        aulac__v1__receipt__free_unpacked(r, NULL);
        upd_free(&u);
    }
    assert_int_equal(fx_wait_round(f, 2), 2);

    uint8_t h[32];
    Aulac__V1__GovernanceReply *g = fx_propose(f, cl[FPT], f->keys[FPT], PROPOSAL_ADD, "uet",
                                               f->keys[UET], h);
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    g = fx_vote(cl[VNPT], f->keys[VNPT], h, 1);
    assert_string_equal(g->proposal->state, "approved");
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    pthread_mutex_lock(&f->c->mu);
    assert_int_equal(f->c->n_eligible, 4);
    pthread_mutex_unlock(&f->c->mu);
    Aulac__V1__TaskRequest tq = AULAC__V1__TASK_REQUEST__INIT;
    tq.member_id = "uet";
    Aulac__V1__Task *t = NULL;
    assert_int_equal(fed_get_task(cl[UET], &tq, &t, &st), 0);
    assert_int_equal(t->kind, AULAC__V1__TASK__KIND__TRAIN);
    aulac__v1__task__free_unpacked(t, NULL);
    struct upd u;
    upd_make(f, &u, f->keys[UET], 9);
    Aulac__V1__Receipt *r = NULL;
    assert_int_equal(fed_submit_update(cl[UET], &u.h, u.payload, u.len, 0, &r, &st), 0);
    if (!r->accepted)
        fail_msg("uet: %s", r->reason);
    aulac__v1__receipt__free_unpacked(r, NULL);
    upd_free(&u);
    for (int m = FPT; m < N_KEYS; m++)
        fed_client_close(cl[m]);
    fx_free(f);
}


/* The genesis entry records the roster file's charter; after that the ledger's charter
 * governs, whatever the roster file says at a restart. */
static void genesis_charter_governs(void **state)
{
    struct fx *f = *state;
    uint8_t *bytes;
    size_t len;
    assert_int_equal(ledger_get(f->c->ledger, 0, &bytes, &len), 0);
    struct entry e;
    assert_int_equal(entry_decode(bytes, len, &e), 0);
    free(bytes);
    assert_int_equal(e.type, ENTRY_GENESIS);
    assert_non_null(e.u.genesis.charter);
    struct charter ch;
    struct policy_error err;
    assert_int_equal(charter_load_buffer("genesis", e.u.genesis.charter,
                                         strlen(e.u.genesis.charter), &ch, &err), 0);
    assert_true(ch.roster_quorum == 0.66 && ch.experiment_quorum == 0.66);
    entry_free(&e);

    fx_stop(f);
    char roster[8192];
    FILE *rf = fopen(f->paths[2], "r");
    assert_non_null(rf);
    size_t n = fread(roster, 1, sizeof roster - 1, rf);
    fclose(rf);
    roster[n] = 0;
    char *sec = strstr(roster, "charter:");
    assert_non_null(sec);
    snprintf(sec, sizeof roster - (size_t)(sec - roster), "charter:\n  quorum: {roster: 1.0, "
             "experiments: 1.0, charter: 1.0}\n");
    fx_write(f->paths[2], roster, 0644);
    fx_start(f);
    struct signer sf = { .key = f->keys[FPT] };
    struct fed_client *cf = fx_client(f, &sf);
    Aulac__V1__ProposalsRequest lq = AULAC__V1__PROPOSALS_REQUEST__INIT;
    lq.member_id = "fpt";
    Aulac__V1__ProposalsReply *lr = NULL;
    struct rpc_status st;
    assert_int_equal(fed_list_proposals(cf, &lq, &lr, &st), 0);
    assert_true(lr->quorum == 0.66);
    aulac__v1__proposals_reply__free_unpacked(lr, NULL);
    uint8_t h[32];
    Aulac__V1__GovernanceReply *g = fx_propose(f, cf, f->keys[FPT], PROPOSAL_ADD, "uet",
                                               f->keys[UET], h);
    assert_int_equal(g->proposal->needed, 2);   /* 0.66 of 3, not 1.0 of 3 */
    aulac__v1__governance_reply__free_unpacked(g, NULL);
    fed_client_close(cf);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(statement_vectors),
        cmocka_unit_test(proposal_field_rules),
        cmocka_unit_test(quorum_arithmetic),
        cmocka_unit_test(voting_rules),
        cmocka_unit_test(motion_tallies_use_the_quorum_of_their_kind),
        cmocka_unit_test(motion_refusals),
        cmocka_unit_test_setup_teardown(add_member_by_quorum, setup, teardown),
        cmocka_unit_test_setup_teardown(forged_governance_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(roster_rebuilt_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(removal_closes_the_round, setup, teardown),
        cmocka_unit_test(empty_member_list_means_live_roster),
        cmocka_unit_test_setup_teardown(genesis_charter_governs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
