/* worker/auto_vote: the worker's vote for its member from its site policy. The
 * decision (yes when the site allows the proposed policy, no with the site's reason,
 * nothing on cancel / charter / roster proposals, on its own member's proposals and on
 * those it voted on), the checks of what the coordinator sends (the motion against its
 * proposer's roster key, the policy text against the signed digest and policy hash),
 * when a try settles a proposal, and the site key governance.auto_vote. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/timeutil.h"
#include "ledger/entry.h"
#include "ledger/history.h"
#include "policies/site.h"
#include "proto/roster_msg.h"
#include "worker/auto_vote.h"
#include "trust_fixture.h"   /* fx_policy: a tiny policy, proposer fpt, rounds 3 */

static void load_site(const char *text, struct site_policy *s)
{
    struct policy_error err;
    if (site_load_buffer("site.yaml", text, strlen(text), s, &err) != 0)
        fail_msg("%s", err.message);
}

static void load_policy(struct policy *p)
{
    struct policy_error err;
    if (policy_load_buffer("p.yaml", fx_policy, strlen(fx_policy), p, &err) != 0)
        fail_msg("%s", err.message);
}

static const char auto_site[] = "schema: 1\ngovernance: {auto_vote: approve-if-allowed}\n";

static void site_allows_yes_refuses_no_with_the_reason(void **state)
{
    (void)state;
    struct site_policy s;
    struct policy p;
    load_policy(&p);
    char *voted[] = { "hust" };
    struct auto_vote_proposal ap = { .kind = MOTION_EXPERIMENT, .proposer = "hust",
                                     .voted = voted, .n_voted = 1, .policy = &p };
    char why[512];

    load_site(auto_site, &s);
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_YES);
    assert_string_equal(why, "this site allows experiment trust-test");
    site_policy_free(&s);

    load_site("schema: 1\nlimits: {max_rounds: 2}\ngovernance:\n  auto_vote: approve-if-allowed\n",
              &s);
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_NO);
    assert_string_equal(why, "experiment trust-test: training.rounds 3 is over this site's "
                             "limits.max_rounds 2");
    site_policy_free(&s);

    load_site("schema: 1\nallow: {proposers: [hust]}\n"
              "governance: {auto_vote: approve-if-allowed}\n", &s);
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_NO);
    assert_non_null(strstr(why, "proposer \"fpt\" is not in this site's allow.proposers (hust)"));
    site_policy_free(&s);

    /* require (DP): an experiment without privacy, or with less noise than the floor, gets
     * a no with the reason; one with enough noise a yes */
    load_site("schema: 1\nrequire: {min_noise_multiplier: 1}\n"
              "governance: {auto_vote: approve-if-allowed}\n", &s);
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_NO);
    assert_string_equal(why, "experiment trust-test: it has no privacy section (its updates are "
                             "neither clipped nor noised), and this site requires differential "
                             "privacy (require.min_noise_multiplier 1)");
    static const char agg[] = "aggregation: {rule: fedavg, weighting: tokens, norm_bound: 0}\n";
    char dp_text[sizeof fx_policy + 256];
    const char *at = strstr(fx_policy, agg);
    assert_non_null(at);
    snprintf(dp_text, sizeof dp_text, "%.*saggregation: {rule: fedavg, weighting: uniform}\n"
             "contribution: {measures: [tokens, rounds]}\n"
             "privacy: {clip: 1.0, noise_multiplier: %s}\n%s", (int)(at - fx_policy), fx_policy,
             "0.8", at + strlen(agg));
    struct policy dp;
    struct policy_error err;
    if (policy_load_buffer("dp.yaml", dp_text, strlen(dp_text), &dp, &err) != 0)
        fail_msg("%s", err.message);
    ap.policy = &dp;
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_NO);
    assert_string_equal(why, "experiment trust-test: privacy.noise_multiplier 0.8 is below this "
                             "site's require.min_noise_multiplier 1");
    policy_free(&dp);
    snprintf(dp_text, sizeof dp_text, "%.*saggregation: {rule: fedavg, weighting: uniform}\n"
             "contribution: {measures: [tokens, rounds]}\n"
             "privacy: {clip: 1.0, noise_multiplier: %s}\n%s", (int)(at - fx_policy), fx_policy,
             "1.5", at + strlen(agg));
    if (policy_load_buffer("dp.yaml", dp_text, strlen(dp_text), &dp, &err) != 0)
        fail_msg("%s", err.message);
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_YES);
    assert_string_equal(why, "this site allows experiment trust-test");
    policy_free(&dp);
    ap.policy = &p;
    site_policy_free(&s);

    /* no policy yet: it has to be fetched and verified first */
    ap.policy = NULL;
    load_site(auto_site, &s);
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, NULL, 0), AUTO_VOTE_NEEDS_POLICY);
    site_policy_free(&s);
    policy_free(&p);
}

static void cancel_charter_and_roster_proposals_get_no_vote(void **state)
{
    (void)state;
    struct site_policy s;
    load_site(auto_site, &s);
    char *voted[] = { "hust" };
    char why[512];
    static const struct { int kind; const char *name; } kinds[] = {
        { MOTION_CANCEL, "a cancel proposal" },
        { MOTION_CHARTER, "a charter proposal" },
        { 0, "a roster proposal" },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        struct auto_vote_proposal ap = { .kind = kinds[i].kind, .proposer = "hust",
                                         .voted = voted, .n_voted = 1 };
        assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why),
                         AUTO_VOTE_CANNOT_JUDGE);
        assert_non_null(strstr(why, kinds[i].name));
        assert_non_null(strstr(why, "left to a vote by hand (aulac vote)"));
    }
    site_policy_free(&s);
}

static void voted_proposed_or_never_does_nothing(void **state)
{
    (void)state;
    struct site_policy s;
    struct policy p;
    load_policy(&p);
    char *voted[] = { "hust", "vnpt" };
    struct auto_vote_proposal ap = { .kind = MOTION_EXPERIMENT, .proposer = "hust",
                                     .voted = voted, .n_voted = 2, .policy = &p };
    char why[512];
    load_site(auto_site, &s);
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_NONE);
    assert_string_equal(why, "vnpt has voted on it");
    assert_int_equal(auto_vote_decide(&s, "hust", &ap, why, sizeof why), AUTO_VOTE_NONE);
    assert_string_equal(why, "hust proposed it (its approval is counted)");
    /* a cancel its member voted on is not even reported */
    ap.kind = MOTION_CANCEL;
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_NONE);
    site_policy_free(&s);

    load_site("schema: 1\ngovernance: {auto_vote: never}\n", &s);
    ap.kind = MOTION_EXPERIMENT;
    ap.n_voted = 1;
    assert_int_equal(auto_vote_decide(&s, "vnpt", &ap, why, sizeof why), AUTO_VOTE_NONE);
    assert_string_equal(why, "governance.auto_vote is never");
    site_policy_free(&s);
    policy_free(&p);
}

/* --- what the coordinator sends ---------------------------------------------------- */

struct proposal_fx {
    struct crypto_key *hust, *fpt;
    struct motion m;
    uint8_t sig[64], hash[32];
    Aulac__V1__Motion msg;
    Aulac__V1__RosterMember members[2], *roster[2];
    struct crypto_public_key pub[2];
    Aulac__V1__ProposalStatus ps, *pps[1];
    Aulac__V1__ProposalsReply r;
};

/* hust's signed experiment motion for doc (its hash and id from the real document). */
static void proposal_fx_init(struct proposal_fx *f, const char *doc)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(crypto_key_generate("hust", &f->hust), 0);
    assert_int_equal(crypto_key_generate("fpt", &f->fpt), 0);
    f->m.kind = MOTION_EXPERIMENT;
    snprintf(f->m.alliance, sizeof f->m.alliance, "vote-alliance");
    snprintf(f->m.proposer, sizeof f->m.proposer, "hust");
    struct policy_error err;
    assert_int_equal(policy_identify("p.yaml", doc, strlen(doc), f->m.content_hash,
                                     f->m.experiment, sizeof f->m.experiment, &err), 0);
    crypto_blake2b256(doc, strlen(doc), f->m.document_digest);
    f->m.created_unix_ms = time_now_unix_ms();
    f->m.expires_unix_ms = f->m.created_unix_ms + 3600 * 1000;
    assert_int_equal(motion_sign(&f->m, f->hust, f->sig), 0);
    assert_int_equal(motion_hash(&f->m, f->hash), 0);
    motion_to_msg(&f->m, f->sig, NULL, 0, NULL, &f->msg);   /* as in ProposalStatus */

    const struct crypto_key *keys[2] = { f->hust, f->fpt };
    for (int i = 0; i < 2; i++) {
        aulac__v1__roster_member__init(&f->members[i]);
        crypto_key_public(keys[i], &f->pub[i]);
        f->members[i].member_id = (char *)crypto_key_member(keys[i]);
        f->members[i].public_key.data = f->pub[i].key;
        f->members[i].public_key.len = 32;
        f->roster[i] = &f->members[i];
    }
    aulac__v1__proposal_status__init(&f->ps);
    f->ps.proposal_hash.data = f->hash;
    f->ps.proposal_hash.len = 32;
    f->ps.state = "open";
    f->ps.motion = &f->msg;
    f->pps[0] = &f->ps;
    aulac__v1__proposals_reply__init(&f->r);
    f->r.alliance = "vote-alliance";
    f->r.n_roster = 2;
    f->r.roster = f->roster;
    f->r.n_proposals = 1;
    f->r.proposals = f->pps;
}

static void proposal_fx_free(struct proposal_fx *f)
{
    crypto_key_free(f->hust);
    crypto_key_free(f->fpt);
}

/* The policy_proposed entry of f's motion holding doc, encoded. */
static uint8_t *entry_of(const struct proposal_fx *f, const uint8_t hash[32], const char *doc,
                         size_t *len)
{
    struct entry e = { .type = ENTRY_POLICY_PROPOSED, .timestamp_ms = 1 };
    entry_motion_from_motion(&e.u.motion, &f->m, hash, f->sig, (const uint8_t *)doc,
                             strlen(doc));
    uint8_t *out = NULL;
    assert_int_equal(entry_encode(&e, &out, len), 0);
    return out;
}

static void the_motion_must_verify_with_its_proposers_roster_key(void **state)
{
    (void)state;
    struct proposal_fx f;
    proposal_fx_init(&f, fx_policy);
    struct motion m;
    char why[300];
    assert_int_equal(auto_vote_motion(&f.r, &f.ps, &m, why, sizeof why), 0);
    assert_string_equal(m.experiment, f.m.experiment);

    /* the roster says hust's key is fpt's */
    f.members[0].public_key.data = f.pub[1].key;
    assert_int_equal(auto_vote_motion(&f.r, &f.ps, &m, why, sizeof why), -1);
    assert_string_equal(why, "its signature does not verify with hust's roster key");
    f.members[0].public_key.data = f.pub[0].key;

    /* a proposer not in the roster */
    f.members[0].member_id = "uet";
    assert_int_equal(auto_vote_motion(&f.r, &f.ps, &m, why, sizeof why), -1);
    assert_string_equal(why, "its proposer hust is not in the roster");
    f.members[0].member_id = "hust";

    /* a listed hash that is not the motion's */
    uint8_t other[32];
    memcpy(other, f.hash, 32);
    other[0] ^= 1;
    f.ps.proposal_hash.data = other;
    assert_int_equal(auto_vote_motion(&f.r, &f.ps, &m, why, sizeof why), -1);
    assert_string_equal(why, "the motion does not hash to its proposal hash");
    f.ps.proposal_hash.data = f.hash;

    /* a motion of another alliance */
    f.r.alliance = "elsewhere";
    assert_int_equal(auto_vote_motion(&f.r, &f.ps, &m, why, sizeof why), -1);
    assert_non_null(strstr(why, "alliance 'vote-alliance', not of 'elsewhere'"));
    proposal_fx_free(&f);
}

static void the_policy_must_hash_to_what_the_proposer_signed(void **state)
{
    (void)state;
    struct proposal_fx f;
    proposal_fx_init(&f, fx_policy);
    struct policy p;
    char why[300];
    size_t len;

    uint8_t *e = entry_of(&f, f.hash, fx_policy, &len);
    assert_int_equal(auto_vote_policy(&f.m, f.hash, e, len, &p, why, sizeof why), 0);
    assert_string_equal(p.metadata.name, "trust-test");
    assert_int_equal(p.training.rounds, 3);
    policy_free(&p);

    /* another proposal's entry */
    uint8_t other[32];
    memcpy(other, f.hash, 32);
    other[31] ^= 1;
    assert_int_equal(auto_vote_policy(&f.m, other, e, len, &p, why, sizeof why), -1);
    assert_string_equal(why, "its ledger entry is not its policy_proposed entry");
    free(e);

    /* a text other than the one signed (one more round) */
    char *changed = strdup(fx_policy);
    strstr(changed, "rounds: 3")[8] = '4';
    e = entry_of(&f, f.hash, changed, &len);
    assert_int_equal(auto_vote_policy(&f.m, f.hash, e, len, &p, why, sizeof why), -1);
    assert_string_equal(why, "the policy text in its ledger entry does not hash to the "
                             "document digest hust signed");
    free(e);

    /* the signed digest of a text whose policy hash is not the signed one */
    crypto_blake2b256(changed, strlen(changed), f.m.document_digest);
    e = entry_of(&f, f.hash, changed, &len);
    assert_int_equal(auto_vote_policy(&f.m, f.hash, e, len, &p, why, sizeof why), -1);
    assert_string_equal(why, "the proposed policy does not hash to the policy hash hust signed");
    free(e);

    /* a text that does not parse */
    crypto_blake2b256("rounds: [", 9, f.m.document_digest);
    e = entry_of(&f, f.hash, "rounds: [", &len);
    assert_int_equal(auto_vote_policy(&f.m, f.hash, e, len, &p, why, sizeof why), -1);
    assert_string_equal(why, "the proposed policy does not parse: proposed policy:2:1: YAML "
                             "syntax error: flow sequence without a closing bracket");
    free(e);

    assert_int_equal(auto_vote_policy(&f.m, f.hash, (const uint8_t *)"junk", 4, &p, why,
                                      sizeof why), -1);
    assert_string_equal(why, "its ledger entry does not decode");
    free(changed);
    proposal_fx_free(&f);
}

static void a_refusal_settles_at_once_failures_after_the_last_try(void **state)
{
    (void)state;
    int failures = 0;
    assert_int_equal(auto_vote_settled_after(AUTO_VOTE_RECORDED, &failures), 1);
    assert_int_equal(auto_vote_settled_after(AUTO_VOTE_REFUSED, &failures), 1);
    assert_int_equal(failures, 0);
    for (int i = 1; i < AUTO_VOTE_MAX_TRIES; i++)
        assert_int_equal(auto_vote_settled_after(AUTO_VOTE_FAILED, &failures), 0);
    assert_int_equal(auto_vote_settled_after(AUTO_VOTE_FAILED, &failures), 1);
    assert_int_equal(failures, AUTO_VOTE_MAX_TRIES);
}

static void site_governance_auto_vote_key(void **state)
{
    (void)state;
    struct site_policy s;
    load_site("schema: 1\n", &s);
    assert_int_equal(s.auto_vote, SITE_AUTO_VOTE_NEVER);
    site_policy_free(&s);
    load_site("schema: 1\ngovernance: {auto_vote: never}\n", &s);
    assert_int_equal(s.auto_vote, SITE_AUTO_VOTE_NEVER);
    site_policy_free(&s);
    load_site(auto_site, &s);
    assert_int_equal(s.auto_vote, SITE_AUTO_VOTE_APPROVE_IF_ALLOWED);
    assert_string_equal(site_auto_vote_name(s.auto_vote), "approve-if-allowed");
    site_policy_free(&s);
    assert_null(site_auto_vote_name(7));

    struct policy_error err;
    static const char bad[] = "schema: 1\ngovernance:\n  auto_vote: always\n";
    assert_int_equal(site_load_buffer("site.yaml", bad, strlen(bad), &s, &err), POLICY_ERR_RANGE);
    assert_non_null(strstr(err.message, "site.yaml:3:14: governance.auto_vote: expected"));
    assert_non_null(strstr(err.message, "approve-if-allowed"));
    static const char unknown[] = "schema: 1\ngovernance: {quorum: 0.5}\n";
    assert_int_not_equal(site_load_buffer("site.yaml", unknown, strlen(unknown), &s, &err), 0);
    assert_non_null(strstr(err.message, "site.yaml:2:14: governance.quorum"));
}

int main(void)
{
    if (crypto_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(site_allows_yes_refuses_no_with_the_reason),
        cmocka_unit_test(cancel_charter_and_roster_proposals_get_no_vote),
        cmocka_unit_test(voted_proposed_or_never_does_nothing),
        cmocka_unit_test(the_motion_must_verify_with_its_proposers_roster_key),
        cmocka_unit_test(the_policy_must_hash_to_what_the_proposer_signed),
        cmocka_unit_test(a_refusal_settles_at_once_failures_after_the_last_try),
        cmocka_unit_test(site_governance_auto_vote_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
