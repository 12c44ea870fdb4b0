#define _GNU_SOURCE     /* memmem */
/* ledger/entry: round trips of every entry type, the documented byte layout,
 * JSON and one-line descriptions, and hostile bytes (every truncation, every
 * byte flipped, wrong order, missing fields, bad ids). Run under ASan too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "common/hex.h"
#include "crypto/envelope.h"
#include "crypto/keys.h"
#include "ledger/entry.h"
#include "ledger/history.h"
#include "ledger/merkle.h"

static const int64_t T0 = 1767225600000;   /* 2026-01-01T00:00:00.000Z */

static void fill(uint8_t *p, size_t n, uint8_t start)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(start + i);
}

static struct entry_member members[3];
static char participants[3][ENTRY_ID_MAX + 1] = { "fpt", "vnpt", "hust" };
static struct entry_member_score scores[2] = {
    { .member = "fpt", .values = { 1200000, 0.5, -0.125 } },
    { .member = "vnpt", .values = { 2400000, 0.25, 0.375 } },
};
static struct entry_credit_share shares[2] = {
    { .member = "fpt", .share = 0.3125, .measure_share = { 1.0 / 3, 0.25 }, .rounds = 12 },
    { .member = "vnpt", .share = 0.6875, .measure_share = { 2.0 / 3, 0.75 }, .rounds = 11 },
};
static const char three_measures[3][ENTRY_MEASURE_NAME_MAX + 1] = { "tokens", "alignment",
                                                                     "loo" };
static char yaml[] = "schema: 1\nmetadata:\n  name: gpt2-vi\n  description: \"Vietnamese \xe1\xba\xa1\"\n";

/* One filled example of every entry type. */
static struct entry sample(enum entry_type t)
{
    struct entry e;
    memset(&e, 0, sizeof e);
    e.type = t;
    e.timestamp_ms = T0 + (int64_t)t;
    static const char *ids[3] = { "fpt", "vnpt", "hust" };
    static char *orgs[3] = { "FPT Corporation", "VNPT", "Hanoi University of Science and Technology" };
    for (int i = 0; i < 3; i++) {
        snprintf(members[i].id, sizeof members[i].id, "%s", ids[i]);
        members[i].organization = orgs[i];
        members[i].roles = i == 0 ? (ENTRY_ROLE_MEMBER | ENTRY_ROLE_SECRETARIAT) : ENTRY_ROLE_MEMBER;
        fill(members[i].public_key, 32, (uint8_t)(0x10 * (i + 1)));
    }
    switch (t) {
    case ENTRY_GENESIS:
        e.u.genesis.alliance = "Au Lac";
        e.u.genesis.n_members = 3;
        e.u.genesis.members = members;
        break;
    case ENTRY_MEMBER_ADDED:
        e.u.member_added.member = members[2];
        e.u.member_added.member.organization = NULL;
        fill(e.u.member_added.proposal_hash, 32, 0x40);
        break;
    case ENTRY_MEMBER_REMOVED:
        strcpy(e.u.member_removed.member, "hust");
        e.u.member_removed.reason = "left the alliance";
        break;
    case ENTRY_KEY_ROTATED:
        strcpy(e.u.key_rotated.member, "vnpt");
        fill(e.u.key_rotated.new_public_key, 32, 0x77);
        fill(e.u.key_rotated.proposal_hash, 32, 0x99);
        break;
    case ENTRY_POLICY_PROPOSED:
    case ENTRY_CHARTER_PROPOSED:
    case ENTRY_CANCEL_PROPOSED:
        fill(e.u.motion.proposal_hash, 32, 0x11);
        e.u.motion.kind = t == ENTRY_POLICY_PROPOSED ? 1 : t == ENTRY_CANCEL_PROPOSED ? 2 : 3;
        strcpy(e.u.motion.proposer, "hust");
        if (t != ENTRY_CHARTER_PROPOSED)
            strcpy(e.u.motion.experiment, "gpt2-vi-01010101");
        if (t != ENTRY_CANCEL_PROPOSED) {
            e.u.motion.document = (uint8_t *)yaml;
            e.u.motion.document_len = strlen(yaml);
            fill(e.u.motion.document_digest, 32, 0x12);
            fill(e.u.motion.content_hash, 32, 1);
        }
        e.u.motion.reason = t == ENTRY_CANCEL_PROPOSED ? "diverged" : NULL;
        e.u.motion.created_ms = T0;
        e.u.motion.expires_ms = T0 + 7 * 86400000LL;
        fill(e.u.motion.signature, 64, 0xa0);
        break;
    case ENTRY_PROPOSAL_DECIDED:
        fill(e.u.decided.proposal_hash, 32, 0x11);
        e.u.decided.outcome = ENTRY_OUTCOME_WITHDRAWN;
        strcpy(e.u.decided.experiment, "gpt2-vi-01010101");
        e.u.decided.yes = 1;
        e.u.decided.needed = 2;
        e.u.decided.voters = 3;
        e.u.decided.reason = "withdrawn by its proposer";
        fill(e.u.decided.withdraw_signature, 64, 0xa8);
        break;
    case ENTRY_VOTE:
        fill(e.u.vote.policy_hash, 32, 1);
        strcpy(e.u.vote.voter, "fpt");
        e.u.vote.approve = 1;
        fill(e.u.vote.signature, 64, 0xb0);
        break;
    case ENTRY_EXPERIMENT_STARTED:
    case ENTRY_EXPERIMENT_FINISHED:
    case ENTRY_EXPERIMENT_CANCELLED:
    case ENTRY_EXPERIMENT_FAILED:
        strcpy(e.u.experiment.experiment, "gpt2-vi");
        fill(e.u.experiment.policy_hash, 32, 1);
        fill(e.u.experiment.model_hash, 32, 0xc0);
        e.u.experiment.rounds = t == ENTRY_EXPERIMENT_STARTED ? 100 : 42;
        if (t == ENTRY_EXPERIMENT_CANCELLED || t == ENTRY_EXPERIMENT_FAILED)
            e.u.experiment.reason = "quorum withdrew approval";
        if (t == ENTRY_EXPERIMENT_FINISHED)
            e.u.experiment.reason = "privacy budget: round 43 would spend epsilon 8.1 > 8";
        fill(e.u.experiment.proposal_hash, 32, 0x11);
        break;
    case ENTRY_UPDATE_ACCEPTED:
    case ENTRY_UPDATE_REJECTED:
        strcpy(e.u.update.experiment, "gpt2-vi");
        e.u.update.round = 3;
        strcpy(e.u.update.member, "vnpt");
        fill(e.u.update.payload_hash, 32, 0xd0);
        e.u.update.tokens = 1200000;
        e.u.update.samples = 2344;
        e.u.update.bytes = 5123456;
        fill(e.u.update.envelope_signature, 64, 0xe0);
        if (t == ENTRY_UPDATE_ACCEPTED) {
            e.u.update.train_loss = 2.314;
            e.u.update.val_loss = 2.875;
            fill(e.u.update.base_model_hash, 32, 0xa0);
            e.u.update.codec = (struct entry_codec){ .format_version = 1, .block_size = 4096,
                                                     .k_per_block = 64, .quant = 1,
                                                     .zstd_level = -3, .error_feedback = 1 };
        } else
            e.u.update.reason = "base model hash differs from round 3's";
        break;
    case ENTRY_ROUND_CLOSED:
        strcpy(e.u.round_closed.experiment, "gpt2-vi");
        e.u.round_closed.round = 3;
        e.u.round_closed.n_participants = 3;
        e.u.round_closed.participants = participants;
        fill(e.u.round_closed.aggregate_hash, 32, 0x21);
        fill(e.u.round_closed.model_hash, 32, 0x31);
        e.u.round_closed.mean_loss = 2.25;
        e.u.round_closed.tokens = 3600000;
        e.u.round_closed.has_epsilon = 1;
        e.u.round_closed.epsilon = 4.75;
        break;
    case ENTRY_CONTRIBUTION_SCORES:
        strcpy(e.u.scores.experiment, "gpt2-vi");
        e.u.scores.round = 3;
        e.u.scores.n_measures = 3;
        memcpy(e.u.scores.measures, three_measures, sizeof three_measures);
        fill(e.u.scores.evalset_hash, 32, 0x30);
        fill(e.u.scores.seed, 32, 0x50);
        e.u.scores.evaluations = 3;
        e.u.scores.exact = 1;
        e.u.scores.base_loss = 3.5;
        e.u.scores.model_loss = 3.25;
        fill(scores[0].payload_hash, 32, 0x80);
        fill(scores[1].payload_hash, 32, 0xa0);
        e.u.scores.n = 2;
        e.u.scores.members = scores;
        break;
    case ENTRY_CREDITS:
        strcpy(e.u.credits.experiment, "gpt2-vi");
        e.u.credits.rounds = 12;
        e.u.credits.n_measures = 2;
        strcpy(e.u.credits.measures[0], "tokens");
        strcpy(e.u.credits.measures[1], "shapley");
        e.u.credits.weights[0] = 1;
        e.u.credits.weights[1] = 2;
        e.u.credits.n = 2;
        e.u.credits.members = shares;
        break;
    case ENTRY_ROSTER_PROPOSED:
        fill(e.u.roster_proposed.proposal_hash, 32, 0x50);
        e.u.roster_proposed.action = 1;
        strcpy(e.u.roster_proposed.proposer, "fpt");
        strcpy(e.u.roster_proposed.member, "uet");
        e.u.roster_proposed.organization = "VNU University of Engineering and Technology";
        e.u.roster_proposed.roles = ENTRY_ROLE_MEMBER;
        fill(e.u.roster_proposed.public_key, 32, 0x60);
        e.u.roster_proposed.created_ms = T0;
        e.u.roster_proposed.expires_ms = T0 + 86400000;
        fill(e.u.roster_proposed.signature, 64, 0x70);
        break;
    }
    return e;
}

static const enum entry_type all_types[] = {
    ENTRY_GENESIS, ENTRY_MEMBER_ADDED, ENTRY_MEMBER_REMOVED, ENTRY_KEY_ROTATED,
    ENTRY_POLICY_PROPOSED, ENTRY_VOTE, ENTRY_EXPERIMENT_STARTED, ENTRY_EXPERIMENT_FINISHED,
    ENTRY_EXPERIMENT_CANCELLED, ENTRY_EXPERIMENT_FAILED, ENTRY_UPDATE_ACCEPTED,
    ENTRY_UPDATE_REJECTED, ENTRY_ROUND_CLOSED, ENTRY_CONTRIBUTION_SCORES, ENTRY_CREDITS,
    ENTRY_ROSTER_PROPOSED, ENTRY_CHARTER_PROPOSED, ENTRY_CANCEL_PROPOSED, ENTRY_PROPOSAL_DECIDED,
};
#define NTYPES (sizeof all_types / sizeof all_types[0])

static void every_type_round_trips(void **state)
{
    for (size_t t = 0; t < NTYPES; t++) {
        struct entry e = sample(all_types[t]), d;
        uint8_t *a, *b;
        size_t alen, blen;
        assert_int_equal(entry_encode(&e, &a, &alen), 0);
        assert_int_equal(entry_decode(a, alen, &d), 0);
        assert_int_equal(d.type, e.type);
        assert_int_equal(d.timestamp_ms, e.timestamp_ms);
        assert_int_equal(entry_encode(&d, &b, &blen), 0);
        assert_int_equal(alen, blen);
        assert_memory_equal(a, b, alen);   /* one encoding per entry */
        assert_non_null(entry_type_name(e.type));
        entry_free(&d);
        free(a);
        free(b);
    }
}

static void decoded_fields_are_the_written_ones(void **state)
{
    struct entry e = sample(ENTRY_GENESIS), d;
    uint8_t *a;
    size_t alen;
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_string_equal(d.u.genesis.alliance, "Au Lac");
    assert_int_equal(d.u.genesis.n_members, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(d.u.genesis.members[i].id, members[i].id);
        assert_string_equal(d.u.genesis.members[i].organization, members[i].organization);
        assert_int_equal(d.u.genesis.members[i].roles, members[i].roles);
        assert_memory_equal(d.u.genesis.members[i].public_key, members[i].public_key, 32);
    }
    entry_free(&d);
    free(a);

    e = sample(ENTRY_UPDATE_ACCEPTED);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_string_equal(d.u.update.experiment, "gpt2-vi");
    assert_int_equal(d.u.update.round, 3);
    assert_string_equal(d.u.update.member, "vnpt");
    assert_memory_equal(d.u.update.payload_hash, e.u.update.payload_hash, 32);
    assert_int_equal(d.u.update.tokens, 1200000);
    assert_int_equal(d.u.update.samples, 2344);
    assert_int_equal(d.u.update.bytes, 5123456);
    assert_memory_equal(d.u.update.envelope_signature, e.u.update.envelope_signature, 64);
    assert_true(d.u.update.train_loss == 2.314);
    assert_true(d.u.update.val_loss == 2.875);
    assert_null(d.u.update.reason);
    assert_memory_equal(d.u.update.base_model_hash, e.u.update.base_model_hash, 32);
    assert_memory_equal(&d.u.update.codec, &e.u.update.codec, sizeof d.u.update.codec);
    assert_int_equal(d.u.update.codec.zstd_level, -3);
    entry_free(&d);
    free(a);
    /* a validation loss not reported (NaN) is left out, and reads back as NaN */
    e.u.update.val_loss = NAN;
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_null(memmem(a, alen, "\x00\x0d\x00\x00\x00\x08", 6));
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_true(isnan(d.u.update.val_loss));
    entry_free(&d);
    free(a);

    e = sample(ENTRY_ROSTER_PROPOSED);
    e.u.roster_proposed.created_ms = -1;   /* i64 as signed: negative survives */
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_true(d.u.roster_proposed.created_ms == -1);
    assert_true(d.u.roster_proposed.expires_ms == T0 + 86400000);
    entry_free(&d);
    free(a);

    e = sample(ENTRY_POLICY_PROPOSED);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_int_equal(d.u.motion.document_len, strlen(yaml));
    assert_memory_equal(d.u.motion.document, yaml, strlen(yaml));
    assert_string_equal(d.u.motion.experiment, "gpt2-vi-01010101");
    assert_int_equal(d.u.motion.expires_ms, T0 + 7 * 86400000LL);
    entry_free(&d);
    free(a);

    /* a cancel carries no document, a charter names no experiment: both left out */
    e = sample(ENTRY_CANCEL_PROPOSED);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_null(d.u.motion.document);
    assert_int_equal(d.u.motion.document_len, 0);
    assert_string_equal(d.u.motion.reason, "diverged");
    entry_free(&d);
    free(a);
    e = sample(ENTRY_CHARTER_PROPOSED);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_null(memmem(a, alen, "gpt2-vi-01", 10));
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_string_equal(d.u.motion.experiment, "");
    entry_free(&d);
    free(a);
    e = sample(ENTRY_PROPOSAL_DECIDED);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_int_equal(d.u.decided.outcome, ENTRY_OUTCOME_WITHDRAWN);
    assert_int_equal(d.u.decided.voters, 3);
    assert_memory_equal(d.u.decided.withdraw_signature, e.u.decided.withdraw_signature, 64);
    entry_free(&d);
    free(a);
    /* the required fields of a motion: without its signature it does not decode */
    e = sample(ENTRY_POLICY_PROPOSED);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen - 70, &d), LEDGER_ERR_ENTRY_MISSING);
    free(a);

    e = sample(ENTRY_ROUND_CLOSED);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_int_equal(d.u.round_closed.n_participants, 3);
    assert_string_equal(d.u.round_closed.participants[2], "hust");
    entry_free(&d);
    free(a);

    e = sample(ENTRY_CONTRIBUTION_SCORES);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    const struct entry_contribution_scores *s = &d.u.scores;
    assert_string_equal(s->experiment, "gpt2-vi");
    assert_int_equal(s->round, 3);
    assert_int_equal(s->n_measures, 3);
    assert_string_equal(s->measures[0], "tokens");
    assert_string_equal(s->measures[2], "loo");
    assert_memory_equal(s->evalset_hash, e.u.scores.evalset_hash, 32);
    assert_memory_equal(s->seed, e.u.scores.seed, 32);
    assert_int_equal(s->evaluations, 3);
    assert_int_equal(s->exact, 1);
    assert_true(s->base_loss == 3.5 && s->model_loss == 3.25);
    assert_int_equal(s->n, 2);
    assert_string_equal(s->members[1].member, "vnpt");
    assert_memory_equal(s->members[1].payload_hash, scores[1].payload_hash, 32);
    assert_true(s->members[0].values[0] == 1200000 && s->members[0].values[2] == -0.125);
    assert_true(s->members[1].values[1] == 0.25 && s->members[1].values[2] == 0.375);
    assert_true(s->members[1].values[3] == 0);   /* past n_measures: untouched */
    entry_free(&d);
    free(a);
    /* no evaluation: the losses are NaN, the evaluation set hash left out */
    e.u.scores.base_loss = e.u.scores.model_loss = NAN;
    memset(e.u.scores.evalset_hash, 0, 32);
    e.u.scores.n = 0;
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    assert_true(isnan(d.u.scores.base_loss) && isnan(d.u.scores.model_loss));
    assert_int_equal(d.u.scores.n, 0);
    assert_null(d.u.scores.members);
    entry_free(&d);
    free(a);

    e = sample(ENTRY_CREDITS);
    assert_int_equal(entry_encode(&e, &a, &alen), 0);
    assert_int_equal(entry_decode(a, alen, &d), 0);
    const struct entry_credits *c = &d.u.credits;
    assert_string_equal(c->experiment, "gpt2-vi");
    assert_int_equal(c->rounds, 12);
    assert_int_equal(c->n_measures, 2);
    assert_string_equal(c->measures[1], "shapley");
    assert_true(c->weights[0] == 1 && c->weights[1] == 2);
    assert_int_equal(c->n, 2);
    assert_string_equal(c->members[0].member, "fpt");
    assert_true(c->members[0].share == 0.3125);
    assert_true(c->members[0].measure_share[0] == 1.0 / 3);
    assert_true(c->members[1].measure_share[1] == 0.75);
    assert_int_equal(c->members[1].rounds, 11);
    entry_free(&d);
    free(a);
}

/* The encoding of e in hex (cap bytes at most); returns the encoded bytes (free them). */
static uint8_t *encode_hex(const struct entry *e, char *hex, size_t cap, size_t *len)
{
    uint8_t *a;
    assert_int_equal(entry_encode(e, &a, len), 0);
    assert_true(*len * 2 < cap);
    hex_encode(a, *len, hex);
    return a;
}

/* ledger/README.md walks through these bytes. */
static void documented_example_bytes(void **state)
{
    struct entry e = sample(ENTRY_MEMBER_REMOVED);
    e.timestamp_ms = T0;
    size_t len;
    char hex[256];
    uint8_t *a = encode_hex(&e, hex, sizeof hex, &len);
    assert_string_equal(hex,
        "41554c45" "02" "0003" "0000019b76daa800"
        "0001" "00000004" "68757374"
        "0002" "00000011" "6c6566742074686520616c6c69616e6365");
    free(a);
}

/* ledger/README.md's update_accepted example (ledger/entry_reference.py prints it):
 * the envelope of crypto/README.md's example, whose signature re-checks from the
 * decoded entry alone. */
static void documented_update_accepted_rechecks_its_signature(void **state)
{
    uint8_t seed[32];
    fill(seed, 32, 0);
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed("fpt", seed, &k), 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    struct update_envelope env;
    memset(&env, 0, sizeof env);
    strcpy(env.experiment, "gpt2-vi-small");
    env.round = 7;
    strcpy(env.member, "fpt");
    fill(env.base_model_hash, 32, 0xa0);
    crypto_blake2b256("example payload", 15, env.payload_hash);
    env.payload_bytes = 123456;
    env.samples = 2048;
    env.tokens = 1048576;
    env.codec = (struct envelope_codec){ 1, 4096, 64, 1, 3, 1 };
    struct entry e = { .type = ENTRY_UPDATE_ACCEPTED, .timestamp_ms = T0 };
    entry_update_from_envelope(&e.u.update, &env);
    assert_int_equal(envelope_sign(&env, k, e.u.update.envelope_signature), 0);
    e.u.update.train_loss = 2.5;
    size_t len;
    char hex[700];
    uint8_t *a = encode_hex(&e, hex, sizeof hex, &len);
    assert_string_equal(hex,
        "41554c45" "02" "000b" "0000019b76daa800"
        "0001" "0000000d" "677074322d76692d736d616c6c"
        "0002" "00000008" "0000000000000007"
        "0003" "00000003" "667074"
        "0004" "00000020" "4eb9c55d110e9af15f550fbb11e363e197ad66edd8ace3ab1de6cacaa1b3a3c8"
        "0005" "00000008" "0000000000100000"
        "0006" "00000008" "0000000000000800"
        "0007" "00000008" "000000000001e240"
        "0008" "00000040" "328f58116fb2e6e8fc3edbbc23b435144bd3566b984f6926b019b47d9a4f1b73"
                          "e432e870675f43af18cd4fec7b0cc80ffc5a0727242911eab1c54b5b976f5b01"
        "0009" "00000008" "4004000000000000"
        "000b" "00000020" "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "000c" "00000039"
            "0001" "00000004" "00000001" "0002" "00000004" "00001000"
            "0003" "00000004" "00000040" "0004" "00000004" "00000001"
            "0005" "00000004" "00000003" "0006" "00000001" "01");
    struct entry d;
    struct update_envelope back;
    assert_int_equal(entry_decode(a, len, &d), 0);
    entry_update_envelope(&d.u.update, &back);
    assert_int_equal(envelope_verify(&back, pk.key, d.u.update.envelope_signature), 0);
    strcpy(back.member, "hust");   /* credited to another member: no longer what was signed */
    assert_int_equal(envelope_verify(&back, pk.key, d.u.update.envelope_signature),
                     CRYPTO_ERR_BAD_SIGNATURE);
    entry_free(&d);

    /* with the validation loss fpt reported, 2.75: field 13 at the end, and the
     * signature still verifies (the loss is not signed) */
    char hex2[700];
    size_t len2;
    e.u.update.val_loss = 2.75;
    uint8_t *a2 = encode_hex(&e, hex2, sizeof hex2, &len2);
    assert_int_equal(len2, 336);
    assert_memory_equal(hex2, hex, 2 * len);
    assert_string_equal(hex2 + 2 * len, "000d" "00000008" "4006000000000000");
    uint8_t leaf[32];
    char lh[65];
    merkle_leaf_hash(a2, len2, leaf);
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "6a305ccd2715f40516221956ab33c67c8d047e4ad8c9fb1fde3f0cb3205261e2");
    assert_int_equal(entry_decode(a2, len2, &d), 0);
    assert_true(d.u.update.val_loss == 2.75);
    entry_update_envelope(&d.u.update, &back);
    assert_int_equal(envelope_verify(&back, pk.key, d.u.update.envelope_signature), 0);
    entry_free(&d);
    free(a2);
    free(a);
    crypto_key_free(k);
}

/* ledger/README.md's contribution_scores and credits examples (ledger/entry_reference.py
 * prints them). */
static void documented_scores_and_credits_bytes(void **state)
{
    struct entry e = { .type = ENTRY_CONTRIBUTION_SCORES, .timestamp_ms = T0 };
    struct entry_contribution_scores *s = &e.u.scores;
    struct entry_member_score m[2] = {
        { .member = "fpt", .values = { 1048576.0, 0.75, 0.1875 } },
        { .member = "hust", .values = { 524288.0, 0.5, 0.0625 } },
    };
    fill(m[0].payload_hash, 32, 0x80);
    fill(m[1].payload_hash, 32, 0xa0);
    strcpy(s->experiment, "gpt2-vi-small");
    s->round = 7;
    s->n_measures = 3;
    strcpy(s->measures[0], "tokens");
    strcpy(s->measures[1], "alignment");
    strcpy(s->measures[2], "shapley");
    fill(s->evalset_hash, 32, 0x30);
    fill(s->seed, 32, 0x50);
    s->evaluations = 4;
    s->exact = 1;
    s->base_loss = 3.5;
    s->model_loss = 3.25;
    s->n = 2;
    s->members = m;
    size_t len;
    char hex[1024], lh[65];
    uint8_t leaf[32];
    uint8_t *a = encode_hex(&e, hex, sizeof hex, &len);
    assert_int_equal(len, 380);
    assert_string_equal(hex,
        "41554c45" "02" "000e" "0000019b76daa800"
        "0001" "0000000d" "677074322d76692d736d616c6c"
        "0002" "00000008" "0000000000000007"
        "0003" "00000006" "746f6b656e73"
        "0003" "00000009" "616c69676e6d656e74"
        "0003" "00000007" "736861706c6579"
        "0004" "00000020" "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"
        "0005" "00000020" "505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f"
        "0006" "00000008" "0000000000000004"
        "0007" "00000001" "01"
        "0008" "00000008" "400c000000000000"
        "0009" "00000008" "400a000000000000"
        "000a" "0000004d"
            "0001" "00000003" "667074"
            "0002" "00000020" "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
            "0003" "00000018" "4130000000000000" "3fe8000000000000" "3fc8000000000000"
        "000a" "0000004e"
            "0001" "00000004" "68757374"
            "0002" "00000020" "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
            "0003" "00000018" "4120000000000000" "3fe0000000000000" "3fb0000000000000");
    merkle_leaf_hash(a, len, leaf);
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "6380e96cda2bf0dd2043f01f3c3a6403938ad6cdd19af31bd898d42b8997624d");
    free(a);

    e = (struct entry){ .type = ENTRY_CREDITS, .timestamp_ms = T0 };
    struct entry_credits *c = &e.u.credits;
    struct entry_credit_share sh[2] = {
        { .member = "fpt", .share = (1 * 0.625 + 2 * 0.75) / 3, .measure_share = { 0.625, 0.75 },
          .rounds = 12 },
        { .member = "hust", .share = (1 * 0.375 + 2 * 0.25) / 3, .measure_share = { 0.375, 0.25 },
          .rounds = 11 },
    };
    strcpy(c->experiment, "gpt2-vi-small");
    c->rounds = 12;
    c->n_measures = 2;
    strcpy(c->measures[0], "tokens");
    strcpy(c->measures[1], "shapley");
    c->weights[0] = 1;
    c->weights[1] = 2;
    c->n = 2;
    c->members = sh;
    a = encode_hex(&e, hex, sizeof hex, &len);
    assert_int_equal(len, 226);
    assert_string_equal(hex,
        "41554c45" "02" "000f" "0000019b76daa800"
        "0001" "0000000d" "677074322d76692d736d616c6c"
        "0002" "00000008" "000000000000000c"
        "0003" "00000006" "746f6b656e73"
        "0003" "00000007" "736861706c6579"
        "0004" "00000010" "3ff0000000000000" "4000000000000000"
        "0005" "0000003b"
            "0001" "00000003" "667074"
            "0002" "00000008" "3fe6aaaaaaaaaaab"
            "0003" "00000010" "3fe4000000000000" "3fe8000000000000"
            "0004" "00000008" "000000000000000c"
        "0005" "0000003c"
            "0001" "00000004" "68757374"
            "0002" "00000008" "3fd2aaaaaaaaaaab"
            "0003" "00000010" "3fd8000000000000" "3fd0000000000000"
            "0004" "00000008" "000000000000000b");
    merkle_leaf_hash(a, len, leaf);
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "19f2595ba9f44cb087a018443f5852a0943a59f90150b380e8647d6a664a1cdb");
    free(a);
}


/* ledger/README.md's policy_proposed example (ledger/entry_reference.py prints it):
 * crypto/README.md's experiment motion with its document, re-checked from the entry. */
static void documented_policy_proposed_rechecks_its_signature(void **state)
{
    uint8_t seed[32];
    fill(seed, 32, 0);
    struct crypto_key *k;
    assert_int_equal(crypto_key_from_seed("hust", seed, &k), 0);
    struct motion m = { .kind = MOTION_EXPERIMENT };
    strcpy(m.alliance, "au-lac");
    strcpy(m.proposer, "hust");
    strcpy(m.experiment, "demo-c0c1c2c3");
    static const char doc[] = "example policy document";
    crypto_blake2b256(doc, strlen(doc), m.document_digest);
    fill(m.content_hash, 32, 0xc0);
    strcpy(m.reason, "first run");
    m.created_unix_ms = 1767225600000;
    m.expires_unix_ms = 1767830400000;
    uint8_t hash[32], sig[64];
    assert_int_equal(motion_hash(&m, hash), 0);
    assert_int_equal(motion_sign(&m, k, sig), 0);
    struct entry e = { .type = ENTRY_POLICY_PROPOSED, .timestamp_ms = T0 };
    entry_motion_from_motion(&e.u.motion, &m, hash, sig, (const uint8_t *)doc, strlen(doc));
    size_t len;
    char hex[700];
    uint8_t *a = encode_hex(&e, hex, sizeof hex, &len);
    assert_string_equal(hex, "41554c450200050000019b76daa80000010000002017bbedffc943f8af454df0674e9c8ac2366c6defa502c76b82221ea9c95d6ba6000200000004000000010003000000046875737400040000000d64656d6f2d63306331633263330005000000176578616d706c6520706f6c69637920646f63756d656e7400060000002098d55cfa41faa5323653ac89184dc614d2f84163881d41e19eaffac00daf5fbb000700000020c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf00080000000966697273742072756e0009000000080000019b76daa800000a000000080000019b9ae72c00000b00000040b1f662611eb01001e255b97d4b75107f083c70a98af243f44eb82a94213344bd24ba41016e3c538db1889c1767a8fda8c3657bf9cb484dddb3dd573ee334420a");
    uint8_t leaf[32];
    merkle_leaf_hash(a, len, leaf);
    char lh[65];
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "3116ffdad94fdb089f74bd2e37222d2ccd321f5bfa0ce54a49df2b03b1d7766f");
    struct entry d;
    struct motion back;
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_int_equal(entry_motion_motion(&d.u.motion, "au-lac", &back), 0);
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    assert_int_equal(motion_verify(&back, pk.key, d.u.motion.signature), 0);
    strcpy(back.proposer, "fpt");   /* credited to another member: not what was signed */
    assert_int_equal(motion_verify(&back, pk.key, d.u.motion.signature), CRYPTO_ERR_BAD_SIGNATURE);
    entry_free(&d);
    free(a);
    crypto_key_free(k);
}

static void json_and_description(void **state)
{
    struct entry e = sample(ENTRY_UPDATE_ACCEPTED);
    char *j = entry_to_json(&e);
    assert_non_null(j);
    assert_non_null(strstr(j, "{\"type\":\"update_accepted\",\"version\":2,\"timestamp_ms\":1767225600011,"
                              "\"time\":\"2026-01-01T00:00:00.011Z\",\"experiment\":\"gpt2-vi\",\"round\":3,"
                              "\"member\":\"vnpt\",\"payload_hash\":\"d0d1d2"));
    assert_non_null(strstr(j, "\"tokens\":1200000,\"samples\":2344,\"bytes\":5123456,"));
    assert_non_null(strstr(j, "\"train_loss\":2.3140000000000001,\"base_model_hash\":\"a0a1"));
    assert_non_null(strstr(j, "\"codec\":{\"format_version\":1,\"block_size\":4096,"
                              "\"k_per_block\":64,\"quant\":1,\"zstd_level\":-3,"
                              "\"error_feedback\":true},\"val_loss\":2.875}"));
    free(j);

    char line[256];
    entry_describe(&e, line, sizeof line);
    assert_string_equal(line, "update accepted: vnpt, gpt2-vi round 3, 1.20M tokens, "
                              "payload d0d1d2d3d4d5d6d7…, loss 2.3140, validation loss 2.8750");
    e.u.update.val_loss = NAN;   /* not reported: left out */
    j = entry_to_json(&e);
    assert_non_null(strstr(j, "\"error_feedback\":true}}"));
    assert_null(strstr(j, "val_loss"));
    free(j);
    entry_describe(&e, line, sizeof line);
    assert_null(strstr(line, "validation"));

    /* scores: the measures, then each member's values by measure name */
    e = sample(ENTRY_CONTRIBUTION_SCORES);
    j = entry_to_json(&e);
    assert_string_equal(j,
        "{\"type\":\"contribution_scores\",\"version\":2,\"timestamp_ms\":1767225600014,"
        "\"time\":\"2026-01-01T00:00:00.014Z\",\"experiment\":\"gpt2-vi\",\"round\":3,"
        "\"measures\":[\"tokens\",\"alignment\",\"loo\"],"
        "\"evalset_hash\":\"303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f\","
        "\"seed\":\"505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f\","
        "\"evaluations\":3,\"exact\":true,\"base_loss\":3.5,\"model_loss\":3.25,"
        "\"members\":[{\"member\":\"fpt\",\"payload_hash\":"
        "\"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f\","
        "\"values\":{\"tokens\":1200000,\"alignment\":0.5,\"loo\":-0.125}},"
        "{\"member\":\"vnpt\",\"payload_hash\":"
        "\"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\","
        "\"values\":{\"tokens\":2400000,\"alignment\":0.25,\"loo\":0.375}}]}");
    free(j);
    entry_describe(&e, line, sizeof line);
    assert_string_equal(line, "contribution scores: gpt2-vi round 3, 2 members, by tokens, "
                              "alignment, loo (3 evaluations, shapley exact)");
    e.u.scores.base_loss = NAN;
    j = entry_to_json(&e);
    assert_non_null(strstr(j, "\"base_loss\":null,\"model_loss\":3.25,"));
    free(j);

    e = sample(ENTRY_CREDITS);
    j = entry_to_json(&e);
    assert_string_equal(j,
        "{\"type\":\"credits\",\"version\":2,\"timestamp_ms\":1767225600015,"
        "\"time\":\"2026-01-01T00:00:00.015Z\",\"experiment\":\"gpt2-vi\",\"rounds\":12,"
        "\"measures\":[\"tokens\",\"shapley\"],\"weights\":{\"tokens\":1,\"shapley\":2},"
        "\"members\":[{\"member\":\"fpt\",\"share\":0.3125,\"measure_share\":"
        "{\"tokens\":0.33333333333333331,\"shapley\":0.25},\"rounds\":12},"
        "{\"member\":\"vnpt\",\"share\":0.6875,\"measure_share\":"
        "{\"tokens\":0.66666666666666663,\"shapley\":0.75},\"rounds\":11}]}");
    free(j);
    entry_describe(&e, line, sizeof line);
    assert_string_equal(line, "credits: gpt2-vi, 12 rounds scored, 2 members, by tokens, "
                              "shapley; largest share vnpt 68.8%");

    e = sample(ENTRY_GENESIS);
    j = entry_to_json(&e);
    assert_non_null(strstr(j, "\"members\":[{\"id\":\"fpt\",\"organization\":\"FPT Corporation\","
                              "\"roles\":[\"member\",\"secretariat\"],\"public_key\":\"101112"));
    free(j);
    entry_describe(&e, line, sizeof line);
    assert_string_equal(line, "genesis: alliance Au Lac, 3 founding members (fpt, ...)");

    /* strings are escaped and invalid UTF-8 replaced; NaN becomes null */
    e = sample(ENTRY_UPDATE_REJECTED);
    e.u.update.reason = "bad \"norm\"\n\xff";
    j = entry_to_json(&e);
    assert_non_null(strstr(j, "\"reason\":\"bad \\\"norm\\\"\\n\\ufffd\""));
    assert_null(strstr(j, "envelope_signature\":\"00"));
    free(j);
    e = sample(ENTRY_ROUND_CLOSED);
    e.u.round_closed.mean_loss = NAN;
    j = entry_to_json(&e);
    assert_non_null(strstr(j, "\"mean_loss\":null"));
    free(j);

    for (size_t t = 0; t < NTYPES; t++) {
        e = sample(all_types[t]);
        j = entry_to_json(&e);
        assert_non_null(j);
        entry_describe(&e, line, sizeof line);
        print_message("    %-22s %s\n", entry_type_name(e.type), line);
        free(j);
    }
}

static void encode_refuses_bad_input(void **state)
{
    uint8_t *a;
    size_t len;
    struct entry e = sample(ENTRY_UPDATE_ACCEPTED);
    strcpy(e.u.update.member, "VNPT");
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_ID);
    e = sample(ENTRY_UPDATE_REJECTED);
    e.u.update.reason = NULL;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_MISSING);
    e = sample(ENTRY_VOTE);
    e.u.vote.approve = 2;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    e = sample(ENTRY_GENESIS);
    e.u.genesis.n_members = 0;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_MISSING);
    e.type = (enum entry_type)99;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_TYPE);
}

/* ledger/README.md's round_closed with epsilon and experiment_finished with a reason
 * (ledger/entry_reference.py prints them); epsilon present only with has_epsilon, never
 * NaN nor negative, on either side; a reason on a finished experiment. */
static void round_closed_epsilon_and_finished_reason(void **state)
{
    char parts[2][ENTRY_ID_MAX + 1] = { "fpt", "hust" };
    struct entry e = { .type = ENTRY_ROUND_CLOSED, .timestamp_ms = T0 }, d;
    struct entry_round_closed *r = &e.u.round_closed;
    strcpy(r->experiment, "gpt2-vi-small");
    r->round = 7;
    r->n_participants = 2;
    r->participants = parts;
    fill(r->aggregate_hash, 32, 0x30);
    fill(r->model_hash, 32, 0x50);
    r->mean_loss = 3.25;
    r->tokens = 1572864;
    r->has_epsilon = 1;
    r->epsilon = 2.5;
    static const char with_eps[] =
        "41554c45" "02" "000d" "0000019b76daa800"
        "0001" "0000000d" "677074322d76692d736d616c6c"
        "0002" "00000008" "0000000000000007"
        "0003" "00000003" "667074"
        "0003" "00000004" "68757374"
        "0004" "00000020" "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"
        "0005" "00000020" "505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f"
        "0006" "00000008" "400a000000000000"
        "0007" "00000008" "0000000000180000"
        "0008" "00000008" "4004000000000000";
    char hex[1024], lh[65];
    uint8_t leaf[32];
    size_t len;
    uint8_t *a = encode_hex(&e, hex, sizeof hex, &len);
    assert_int_equal(len, 185);
    assert_string_equal(hex, with_eps);
    merkle_leaf_hash(a, len, leaf);
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "9a0c2a24abed51c948280dcfe9119e8473dbf59a6dbcbd6c9195b737e1eb6519");
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_int_equal(d.u.round_closed.has_epsilon, 1);
    assert_true(d.u.round_closed.epsilon == 2.5);
    char *j = entry_to_json(&d);
    assert_non_null(strstr(j, "\"mean_loss\":3.25,\"tokens\":1572864,\"epsilon\":2.5}"));
    free(j);
    char line[256];
    entry_describe(&d, line, sizeof line);
    assert_non_null(strstr(line, "mean loss 3.2500, model 50515253"));
    assert_non_null(strstr(line, "…, epsilon 2.5"));
    entry_free(&d);
    free(a);

    /* without privacy (has_epsilon 0, as a zeroed struct): the same bytes without field
     * 8, read back as has_epsilon 0 and NaN; no epsilon in JSON or the description */
    r->has_epsilon = 0;
    r->epsilon = 0;
    a = encode_hex(&e, hex, sizeof hex, &len);
    assert_int_equal(len, 185 - 14);
    assert_memory_equal(hex, with_eps, 2 * len);
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_int_equal(d.u.round_closed.has_epsilon, 0);
    assert_true(isnan(d.u.round_closed.epsilon));
    j = entry_to_json(&d);
    assert_null(strstr(j, "epsilon"));
    free(j);
    entry_describe(&d, line, sizeof line);
    assert_null(strstr(line, "epsilon"));
    entry_free(&d);
    free(a);

    /* no noise: +inf is allowed, null in JSON; NaN, negative, a flag of 2 are refused */
    r->has_epsilon = 1;
    r->epsilon = INFINITY;
    a = encode_hex(&e, hex, sizeof hex, &len);
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_true(isinf(d.u.round_closed.epsilon));
    j = entry_to_json(&d);
    assert_non_null(strstr(j, "\"epsilon\":null}"));
    free(j);
    entry_free(&d);
    free(a);
    uint8_t *bad;
    r->epsilon = NAN;
    assert_int_equal(entry_encode(&e, &bad, &len), LEDGER_ERR_ENTRY_FIELD);
    r->epsilon = -0.5;
    assert_int_equal(entry_encode(&e, &bad, &len), LEDGER_ERR_ENTRY_FIELD);
    r->epsilon = 1;
    r->has_epsilon = 2;
    assert_int_equal(entry_encode(&e, &bad, &len), LEDGER_ERR_ENTRY_FIELD);
    r->has_epsilon = 1;
    r->epsilon = 0;   /* nothing spent yet is a value, written */
    a = encode_hex(&e, hex, sizeof hex, &len);
    assert_int_equal(len, 185);
    free(a);

    /* decoding: NaN bits, a negative value, a short field are refused */
    static const uint8_t nan_bits[8] = { 0x7f, 0xf8, 0, 0, 0, 0, 0, 0 };
    static const uint8_t neg_bits[8] = { 0xbf, 0xe0, 0, 0, 0, 0, 0, 0 };   /* -0.5 */
    const uint8_t *bits[3] = { nan_bits, neg_bits, nan_bits };
    size_t bits_len[3] = { 8, 8, 4 };
    r->has_epsilon = 0;
    uint8_t *base = encode_hex(&e, hex, sizeof hex, &len);
    for (int i = 0; i < 3; i++) {
        uint8_t buf[256];
        assert_true(len + 6 + 8 <= sizeof buf);
        memcpy(buf, base, len);
        uint8_t tl[6] = { 0, 8, 0, 0, 0, (uint8_t)bits_len[i] };
        memcpy(buf + len, tl, 6);
        memcpy(buf + len + 6, bits[i], bits_len[i]);
        assert_int_equal(entry_decode(buf, len + 6 + bits_len[i], &d), LEDGER_ERR_ENTRY_FIELD);
    }
    free(base);

    /* experiment_finished with the reason it ended early */
    struct entry f = { .type = ENTRY_EXPERIMENT_FINISHED, .timestamp_ms = T0 };
    strcpy(f.u.experiment.experiment, "gpt2-vi-small");
    fill(f.u.experiment.model_hash, 32, 0x50);
    f.u.experiment.rounds = 7;
    f.u.experiment.reason = "privacy budget: round 8 would spend epsilon 8.53 > 8";
    a = encode_hex(&f, hex, sizeof hex, &len);
    assert_int_equal(len, 144);
    assert_string_equal(hex,
        "41554c45" "02" "0008" "0000019b76daa800"
        "0001" "0000000d" "677074322d76692d736d616c6c"
        "0003" "00000020" "505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f"
        "0004" "00000008" "0000000000000007"
        "0005" "00000034" "70726976616379206275646765743a20726f756e64203820776f756c64207370"
                          "656e6420657073696c6f6e20382e3533203e2038");
    merkle_leaf_hash(a, len, leaf);
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "ef3947f3084dd3a68805feefb106c4a47b80e0e2fa3adaff3b4365196cbcda3d");
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_string_equal(d.u.experiment.reason, f.u.experiment.reason);
    j = entry_to_json(&d);
    assert_non_null(strstr(j, "\"rounds\":7,\"reason\":\"privacy budget: round 8 would"));
    free(j);
    entry_describe(&d, line, sizeof line);
    assert_non_null(strstr(line, "experiment finished: gpt2-vi-small after 7 rounds, final "
                                 "model 5051525354555657…: privacy budget: round 8"));
    entry_free(&d);
    free(a);
    f.u.experiment.reason = NULL;   /* finished as planned: no field 5 */
    a = encode_hex(&f, hex, sizeof hex, &len);
    assert_int_equal(len, 144 - 6 - 52);
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_null(d.u.experiment.reason);
    entry_describe(&d, line, sizeof line);
    assert_true(line[strlen(line) - 1] != ' ');
    assert_null(strstr(line, ": privacy"));
    entry_free(&d);
    free(a);
}

/* ledger/README.md's DP noise seed example (ledger/entry_reference.py prints it): the
 * seed 00 01 .. 1f committed by experiment_started (field 7, BLAKE2b-256 of the seed)
 * and the noise scheme 2 (field 8); without field 8 the entry an earlier version wrote
 * (scheme 1); neither when zero (no privacy). */
static void dp_seed_commitment(void **state)
{
    (void)state;
    char hex[1024], lh[65];
    uint8_t leaf[32];
    size_t len;
    struct entry d;
    struct entry st = { .type = ENTRY_EXPERIMENT_STARTED, .timestamp_ms = T0 };
    strcpy(st.u.experiment.experiment, "gpt2-vi-small");
    fill(st.u.experiment.policy_hash, 32, 0x10);
    fill(st.u.experiment.model_hash, 32, 0x30);
    st.u.experiment.rounds = 12;
    uint8_t seed[32];
    fill(seed, 32, 0x00);
    crypto_generichash(st.u.experiment.dp_seed_commitment, 32, seed, 32, NULL, 0);
    st.u.experiment.dp_noise_scheme = 2;
    uint8_t *a = encode_hex(&st, hex, sizeof hex, &len);
    assert_int_equal(len, 172);
    assert_string_equal(hex,
        "41554c45" "02" "0007" "0000019b76daa800"
        "0001" "0000000d" "677074322d76692d736d616c6c"
        "0002" "00000020" "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
        "0003" "00000020" "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f"
        "0004" "00000008" "000000000000000c"
        "0007" "00000020" "cb2f5160fc1f7e05a55ef49d340b48da2e5a78099d53393351cd579dd42503d6"
        "0008" "00000004" "00000002");
    merkle_leaf_hash(a, len, leaf);
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "acf8e16e29a93048d4846af211c1c7a7f7dd63b3ce22fc3f82256e860766b1fe");
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_memory_equal(d.u.experiment.dp_seed_commitment, st.u.experiment.dp_seed_commitment, 32);
    assert_int_equal(d.u.experiment.dp_noise_scheme, 2);
    char *j = entry_to_json(&d);
    assert_non_null(strstr(j, "\"dp_seed_commitment\":\"cb2f5160fc1f7e05"));
    assert_non_null(strstr(j, "\"dp_noise_scheme\":2"));
    free(j);
    entry_free(&d);
    free(a);

    /* an earlier version's entry: no field 8, which decodes as scheme 0 (read: 1) */
    st.u.experiment.dp_noise_scheme = 0;
    a = encode_hex(&st, hex, sizeof hex, &len);
    assert_int_equal(len, 162);
    merkle_leaf_hash(a, len, leaf);
    hex_encode(leaf, 32, lh);
    assert_string_equal(lh, "4ccf3d26e61044a966f85b38be9f156ebbcd2f7cf294e55d574cdd7c8719c102");
    assert_int_equal(entry_decode(a, len, &d), 0);
    assert_int_equal(d.u.experiment.dp_noise_scheme, 0);
    j = entry_to_json(&d);
    assert_null(strstr(j, "dp_noise_scheme"));
    free(j);
    entry_free(&d);
    free(a);

    /* without privacy: neither field */
    memset(st.u.experiment.dp_seed_commitment, 0, 32);
    a = encode_hex(&st, hex, sizeof hex, &len);
    assert_int_equal(len, 162 - 6 - 32);
    free(a);
}

/* --- hostile bytes ----------------------------------------------------------------- */

static void every_truncation_is_handled(void **state)
{
    for (size_t t = 0; t < NTYPES; t++) {
        struct entry e = sample(all_types[t]), d;
        uint8_t *a;
        size_t len;
        assert_int_equal(entry_encode(&e, &a, &len), 0);
        for (size_t cut = 0; cut < len; cut++) {
            /* a copy of exactly cut bytes, so ASan sees any read past the end */
            uint8_t *p = malloc(cut ? cut : 1);
            memcpy(p, a, cut);
            int rc = entry_decode(p, cut, &d);
            if (rc == 0) {
                /* cutting exactly at a field boundary can leave a valid entry
                 * only when what was cut is optional or a list tail */
                entry_free(&d);
            } else {
                assert_true(rc <= -1150 && rc >= -1199);
            }
            free(p);
        }
        free(a);
    }
}

static void every_flipped_byte_is_handled(void **state)
{
    int accepted = 0, rejected = 0;
    for (size_t t = 0; t < NTYPES; t++) {
        struct entry e = sample(all_types[t]), d;
        uint8_t *a;
        size_t len;
        assert_int_equal(entry_encode(&e, &a, &len), 0);
        for (size_t i = 0; i < len; i++) {
            for (int x = 0; x < 3; x++) {
                static const uint8_t masks[3] = { 0x01, 0x80, 0xff };
                uint8_t *p = malloc(len);
                memcpy(p, a, len);
                p[i] ^= masks[x];
                if (entry_decode(p, len, &d) == 0) {
                    char *j = entry_to_json(&d);
                    char line[512];
                    entry_describe(&d, line, sizeof line);
                    assert_non_null(j);
                    free(j);
                    entry_free(&d);
                    accepted++;
                } else {
                    rejected++;
                }
                free(p);
            }
        }
        free(a);
    }
    print_message("    flipped bytes: %d decoded (values changed), %d rejected\n", accepted, rejected);
}

/* Hand-built entries for the specific-error cases. */
struct raw {
    uint8_t b[1024];
    size_t n;
};

static void raw_header(struct raw *r, uint16_t type)
{
    static const uint8_t head[15] = { 'A', 'U', 'L', 'E', ENTRY_VERSION, 0, 0, 0, 0, 0x01, 0x9b,
                                      0x76, 0xda, 0xa8, 0x00 };
    memcpy(r->b, head, 15);
    r->b[5] = (uint8_t)(type >> 8);
    r->b[6] = (uint8_t)type;
    r->n = 15;
}

static void raw_bytes(struct raw *r, const void *p, size_t n)
{
    assert_true(r->n + n <= sizeof r->b);
    memcpy(r->b + r->n, p, n);
    r->n += n;
}

/* tag, declared length, then the given value bytes (which may differ in length) */
static void raw_tlv_len(struct raw *r, uint16_t tag, uint32_t declared, const void *v, size_t n)
{
    uint8_t tl[6] = { (uint8_t)(tag >> 8), (uint8_t)tag, (uint8_t)(declared >> 24),
                      (uint8_t)(declared >> 16), (uint8_t)(declared >> 8), (uint8_t)declared };
    raw_bytes(r, tl, 6);
    raw_bytes(r, v, n);
}

static void raw_tlv(struct raw *r, uint16_t tag, const void *v, size_t n)
{
    raw_tlv_len(r, tag, (uint32_t)n, v, n);
}

static void raw_str(struct raw *r, uint16_t tag, const char *s)
{
    raw_tlv(r, tag, s, strlen(s));
}

static int decode_raw(const struct raw *r)
{
    struct entry d;
    uint8_t *copy = malloc(r->n);
    memcpy(copy, r->b, r->n);
    int rc = entry_decode(copy, r->n, &d);
    if (rc == 0)
        entry_free(&d);
    free(copy);
    return rc;
}

static void specific_decode_errors(void **state)
{
    struct raw r;
    struct entry d;

    raw_header(&r, ENTRY_MEMBER_REMOVED);
    raw_str(&r, 1, "hust");
    raw_str(&r, 2, "g0ne");
    assert_int_equal(entry_decode(r.b, r.n, &d), 0);
    assert_string_equal(d.u.member_removed.member, "hust");
    assert_string_equal(d.u.member_removed.reason, "g0ne");
    assert_int_equal(d.timestamp_ms, T0);
    entry_free(&d);

    r.b[0] = 'X';
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_MAGIC);
    r.b[0] = 'A';
    r.b[4] = 1;   /* version 1 entries lack what version 2 requires: refused by version */
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_VERSION);
    r.b[4] = 3;
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_VERSION);
    r.b[4] = ENTRY_VERSION;
    r.b[6] = 77;
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_TYPE);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* out of order */
    raw_str(&r, 2, "g0ne");
    raw_str(&r, 1, "hust");
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* a field that is not a list, twice */
    raw_str(&r, 1, "hust");
    raw_str(&r, 1, "hust");
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* tag 0 */
    raw_tlv(&r, 0, "", 0);
    raw_str(&r, 1, "hust");
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* required id absent */
    raw_str(&r, 2, "g0ne");
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_MISSING);

    static const char *bad_ids[] = { "HUST", "", "-x", "hu st", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        raw_header(&r, ENTRY_MEMBER_REMOVED);
        raw_str(&r, 1, bad_ids[i]);
        assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_ID);
    }
    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* NUL inside an id */
    raw_tlv(&r, 1, "hu\0t", 4);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_ID);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* NUL inside a text */
    raw_str(&r, 1, "hust");
    raw_tlv(&r, 2, "a\0", 2);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* value shorter than its length */
    raw_tlv_len(&r, 1, 4, "hus", 3);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_TRUNCATED);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* length near 2^32 */
    raw_tlv_len(&r, 1, 0xffffffffu, "hust", 4);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_TRUNCATED);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* half a tag-length */
    raw_str(&r, 1, "hust");
    raw_bytes(&r, "\x00\x02\x00", 3);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_TRUNCATED);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* hash of the wrong size */
    raw_str(&r, 1, "hust");
    raw_tlv(&r, 3, "0123456789abcdef0123456789abcde", 31);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);

    uint8_t zero[64] = { 0 };
    raw_header(&r, ENTRY_VOTE);                    /* approve = 2 */
    raw_tlv(&r, 1, zero, 32);
    raw_str(&r, 2, "fpt");
    raw_tlv(&r, 3, "\x02", 1);
    raw_tlv(&r, 4, zero, 64);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);

    raw_header(&r, ENTRY_MEMBER_REMOVED);          /* unknown tag from a newer writer: skipped */
    raw_str(&r, 1, "hust");
    raw_tlv(&r, 99, "\x12\x34", 2);
    raw_tlv(&r, 99, "\x56", 1);
    assert_int_equal(entry_decode(r.b, r.n, &d), 0);
    assert_string_equal(d.u.member_removed.member, "hust");
    assert_null(d.u.member_removed.reason);
    entry_free(&d);

    raw_header(&r, ENTRY_MEMBER_REMOVED);
    assert_int_equal(entry_decode(r.b, 10, &d), LEDGER_ERR_ENTRY_TRUNCATED);
    assert_int_equal(entry_decode(r.b, 15, &d), LEDGER_ERR_ENTRY_MISSING);
    assert_string_equal(ledger_strerror(LEDGER_ERR_ENTRY_ID), "invalid id in ledger entry");
}

static void raw_be(uint8_t *out, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        out[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

/* n doubles, big-endian bits, packed (a K_F64S value) */
static size_t raw_f64s(uint8_t *out, const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t u;
        memcpy(&u, &v[i], 8);
        raw_be(out + 8 * i, u, 8);
    }
    return 8 * n;
}

/* A contribution_scores entry by hand: the measures given, then one member record per
 * id with n_values values each (value i = i + 1, value 0 = first_value). */
static void raw_scores(struct raw *r, const char *const *measures, size_t n_measures,
                       const char *const *ids, size_t n_ids, size_t n_values, double first_value)
{
    uint8_t u[8], h[32] = { 0x50 };
    raw_header(r, ENTRY_CONTRIBUTION_SCORES);
    raw_str(r, 1, "gpt2-vi");
    raw_be(u, 3, 8);
    raw_tlv(r, 2, u, 8);
    for (size_t i = 0; i < n_measures; i++)
        raw_str(r, 3, measures[i]);
    raw_tlv(r, 5, h, 32);
    raw_be(u, 1, 8);
    raw_tlv(r, 6, u, 8);
    raw_tlv(r, 7, "\x00", 1);
    double losses[2] = { 3.5, 3.25 };
    raw_f64s(u, &losses[0], 1);
    raw_tlv(r, 8, u, 8);
    raw_f64s(u, &losses[1], 1);
    raw_tlv(r, 9, u, 8);
    for (size_t i = 0; i < n_ids; i++) {
        struct raw m = { .n = 0 };
        double v[ENTRY_MEASURES_MAX + 2];
        uint8_t packed[8 * (ENTRY_MEASURES_MAX + 2)];
        for (size_t k = 0; k < n_values; k++)
            v[k] = k ? (double)k + 1 : first_value;
        raw_str(&m, 1, ids[i]);
        raw_tlv(&m, 2, h, 32);
        raw_tlv(&m, 3, packed, raw_f64s(packed, v, n_values));
        raw_tlv(r, 10, m.b, m.n);
    }
}

/* contribution_scores and credits: the rules of entry.h, encoding and decoding. */
static void scores_and_credits_refuse_bad_input(void **state)
{
    static const char *const two[] = { "tokens", "alignment" };
    static const char *const ids[] = { "fpt", "hust", "vnpt" };
    struct raw r;
    raw_scores(&r, two, 2, ids, 3, 2, 0.5);
    assert_int_equal(decode_raw(&r), 0);                       /* the well-formed one */
    raw_scores(&r, two, 2, ids, 3, 3, 0.5);                    /* a value too many */
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    raw_scores(&r, two, 2, ids, 3, 1, 0.5);                    /* a value short */
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    raw_scores(&r, two, 0, ids, 3, 2, 0.5);                    /* members without measures */
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    raw_scores(&r, two, 0, ids, 0, 0, 0.5);                    /* no measure at all */
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_MISSING);
    static const char *const unsorted[] = { "fpt", "vnpt", "hust" };
    raw_scores(&r, two, 2, unsorted, 3, 2, 0.5);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    static const char *const twice[] = { "fpt", "fpt" };
    raw_scores(&r, two, 2, twice, 2, 2, 0.5);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    static const char *const bad_names[][2] = {
        { "Tokens", "alignment" }, { "to-ken", "alignment" }, { "tokens", "" },
        { "tokens", "abcdefghijklmnopq" },                    /* 17 letters */
        { "tokens", "tokens" },                               /* listed twice */
        { "tokens", "loo2" },
    };
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        raw_scores(&r, bad_names[i], 2, ids, 1, 2, 0.5);
        if (decode_raw(&r) != LEDGER_ERR_ENTRY_FIELD)
            fail_msg("measures %s, %s decoded", bad_names[i][0], bad_names[i][1]);
    }
    static const char *const sixteen[] = { "abcdefghijklmnop", "z" };  /* 16: the longest */
    raw_scores(&r, sixteen, 2, ids, 1, 2, 0.5);
    assert_int_equal(decode_raw(&r), 0);
    static const char *const nine[] = { "a", "b", "c", "d", "e", "f", "g", "h", "i" };
    raw_scores(&r, nine, 8, ids, 1, 8, 0.5);
    assert_int_equal(decode_raw(&r), 0);
    raw_scores(&r, nine, 9, ids, 0, 0, 0.5);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    raw_scores(&r, two, 2, ids, 3, 2, INFINITY);               /* values are finite */
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    raw_scores(&r, two, 2, ids, 3, 2, NAN);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
    static const char *const unknown[] = { "tokens", "novelty" };  /* a newer measure */
    raw_scores(&r, unknown, 2, ids, 3, 2, -1.5);
    struct entry d;
    assert_int_equal(entry_decode(r.b, r.n, &d), 0);
    assert_string_equal(d.u.scores.measures[1], "novelty");
    assert_true(d.u.scores.members[2].values[0] == -1.5);
    entry_free(&d);

    /* the encoder keeps the same rules */
    uint8_t *a;
    size_t len;
    struct entry e = sample(ENTRY_CONTRIBUTION_SCORES);
    e.u.scores.n_measures = 0;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_MISSING);
    e.u.scores.n_measures = ENTRY_MEASURES_MAX + 1;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    e = sample(ENTRY_CONTRIBUTION_SCORES);
    strcpy(e.u.scores.measures[1], "Alignment");
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    strcpy(e.u.scores.measures[1], "tokens");
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    e = sample(ENTRY_CONTRIBUTION_SCORES);
    struct entry_member_score swapped[2] = { scores[1], scores[0] };
    e.u.scores.members = swapped;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    struct entry_member_score bad[2] = { scores[0], scores[1] };
    e.u.scores.members = bad;
    bad[1].values[2] = INFINITY;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    bad[1].values[2] = 1;
    bad[1].values[5] = NAN;                                    /* past n_measures: not read */
    assert_int_equal(entry_encode(&e, &a, &len), 0);
    free(a);
    strcpy(bad[1].member, "Vnpt");
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_ID);
    e = sample(ENTRY_CONTRIBUTION_SCORES);
    e.u.scores.model_loss = -INFINITY;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);

    e = sample(ENTRY_CREDITS);
    e.u.credits.weights[1] = -1;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    e = sample(ENTRY_CREDITS);
    struct entry_credit_share sh[2] = { shares[0], shares[1] };
    e.u.credits.members = sh;
    sh[0].share = NAN;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    sh[0].share = 0.5;
    sh[1].measure_share[0] = -0.25;
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);
    sh[1].measure_share[0] = 0.25;
    strcpy(sh[1].member, "fpt");                               /* not increasing */
    assert_int_equal(entry_encode(&e, &a, &len), LEDGER_ERR_ENTRY_FIELD);

    /* update_accepted: val_loss absent reads as NaN; a NaN written out is refused (NaN is
     * written as absence, so every entry has one encoding) */
    e = sample(ENTRY_UPDATE_ACCEPTED);
    e.u.update.val_loss = NAN;
    assert_int_equal(entry_encode(&e, &a, &len), 0);
    assert_true(len + 14 <= sizeof r.b);
    memcpy(r.b, a, len);
    r.n = len;
    free(a);
    uint8_t v[8];
    double two_and_half = 2.5, nan = NAN;
    raw_f64s(v, &two_and_half, 1);
    raw_tlv(&r, 13, v, 8);
    assert_int_equal(entry_decode(r.b, r.n, &d), 0);
    assert_true(d.u.update.val_loss == 2.5);
    entry_free(&d);
    r.n -= 14;
    raw_f64s(v, &nan, 1);
    raw_tlv(&r, 13, v, 8);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);
}

/* A list element that fails half way is still freed (ASan's leak check). */
static void partial_list_is_freed(void **state)
{
    struct raw m1, m2, r;
    uint8_t key[32] = { 1 };
    m1.n = m2.n = 0;
    raw_str(&m1, 1, "fpt");
    raw_str(&m1, 2, "FPT");
    raw_tlv(&m1, 3, "\x00\x00\x00\x01", 4);
    raw_tlv(&m1, 4, key, 32);
    raw_str(&m2, 2, "VNPT");       /* allocated ... */
    raw_str(&m2, 1, "vnpt");       /* ... then out of order */
    raw_header(&r, ENTRY_GENESIS);
    raw_str(&r, 1, "Au Lac");
    raw_tlv(&r, 2, m1.b, m1.n);
    raw_tlv(&r, 2, m2.b, m2.n);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_FIELD);

    raw_header(&r, ENTRY_GENESIS);  /* the good member alone decodes */
    raw_str(&r, 1, "Au Lac");
    raw_tlv(&r, 2, m1.b, m1.n);
    assert_int_equal(decode_raw(&r), 0);

    raw_header(&r, ENTRY_GENESIS);  /* an empty member record lacks its id */
    raw_tlv(&r, 2, "", 0);
    assert_int_equal(decode_raw(&r), LEDGER_ERR_ENTRY_MISSING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_type_round_trips),
        cmocka_unit_test(decoded_fields_are_the_written_ones),
        cmocka_unit_test(documented_example_bytes),
        cmocka_unit_test(documented_update_accepted_rechecks_its_signature),
        cmocka_unit_test(documented_policy_proposed_rechecks_its_signature),
        cmocka_unit_test(documented_scores_and_credits_bytes),
        cmocka_unit_test(json_and_description),
        cmocka_unit_test(round_closed_epsilon_and_finished_reason),
        cmocka_unit_test(dp_seed_commitment),
        cmocka_unit_test(encode_refuses_bad_input),
        cmocka_unit_test(every_truncation_is_handled),
        cmocka_unit_test(every_flipped_byte_is_handled),
        cmocka_unit_test(specific_decode_errors),
        cmocka_unit_test(partial_list_is_freed),
        cmocka_unit_test(scores_and_credits_refuse_bad_input),
    };
    return cmocka_run_group_tests_name("ledger entry", tests, NULL, NULL);
}
