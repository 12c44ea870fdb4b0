/* Writes seed inputs for fuzz_ledger_entry (one valid entry of every type) and
 * fuzz_checkpoint_note (signed checkpoints, including one with an extension line and
 * a second signature) into two directories.
 *
 *   make_ledger_seeds ENTRY_DIR NOTE_DIR */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/checkpoint.h"
#include "ledger/entry.h"

static void write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3 || sodium_init() < 0)
        return 2;
    struct entry_member m[2] = {
        { .id = "fpt", .organization = "FPT Corporation", .roles = ENTRY_ROLE_MEMBER },
        { .id = "coordinator", .roles = ENTRY_ROLE_COORDINATOR },
    };
    char participants[2][ENTRY_ID_MAX + 1] = { "fpt", "vnpt" };
    struct entry_member_score scores[2] = {
        { .member = "fpt", .values = { 1000, 1, 0.5 } },
        { .member = "vnpt", .values = { 3000, 1, -0.25 } },
    };
    struct entry_credit_share shares[2] = {
        { .member = "fpt", .share = 0.4, .measure_share = { 0.25, 0.5, 1 }, .rounds = 3 },
        { .member = "vnpt", .share = 0.6, .measure_share = { 0.75, 0.5, 0 }, .rounds = 3 },
    };
    static const char measures[3][ENTRY_MEASURE_NAME_MAX + 1] = { "tokens", "rounds", "loo" };
    for (int t = ENTRY_GENESIS; t <= ENTRY_PROPOSAL_DECIDED; t++) {
        struct entry e = { .type = (enum entry_type)t, .timestamp_ms = 1767225600000 };
        switch (t) {
        case ENTRY_GENESIS:
            e.u.genesis.alliance = "au-lac";
            e.u.genesis.n_members = 2;
            e.u.genesis.members = m;
            e.u.genesis.charter = "quorum: {roster: 0.5}\n";
            break;
        case ENTRY_MEMBER_ADDED: e.u.member_added.member = m[0]; break;
        case ENTRY_MEMBER_REMOVED:
            strcpy(e.u.member_removed.member, "hust");
            e.u.member_removed.reason = "left";
            break;
        case ENTRY_KEY_ROTATED: strcpy(e.u.key_rotated.member, "hust"); break;
        case ENTRY_POLICY_PROPOSED: case ENTRY_CHARTER_PROPOSED: case ENTRY_CANCEL_PROPOSED:
            e.u.motion.kind = t == ENTRY_POLICY_PROPOSED ? 1 : t == ENTRY_CANCEL_PROPOSED ? 2 : 3;
            strcpy(e.u.motion.proposer, "hust");
            if (t != ENTRY_CHARTER_PROPOSED)
                strcpy(e.u.motion.experiment, "gpt2-vi-01020304");
            if (t != ENTRY_CANCEL_PROPOSED) {
                e.u.motion.document = (uint8_t *)"schema: 1\n";
                e.u.motion.document_len = 10;
                memset(e.u.motion.document_digest, 3, 32);
                memset(e.u.motion.content_hash, 4, 32);
            }
            e.u.motion.reason = "why";
            e.u.motion.created_ms = 1767225600000;
            e.u.motion.expires_ms = 1767830400000;
            memset(e.u.motion.signature, 5, 64);
            break;
        case ENTRY_PROPOSAL_DECIDED:
            e.u.decided.outcome = 4;
            strcpy(e.u.decided.experiment, "gpt2-vi-01020304");
            e.u.decided.yes = 1;
            e.u.decided.reason = "withdrawn";
            memset(e.u.decided.withdraw_signature, 6, 64);
            break;
        case ENTRY_ROSTER_PROPOSED:
            strcpy(e.u.roster_proposed.proposer, "fpt");
            strcpy(e.u.roster_proposed.member, "uet");
            e.u.roster_proposed.action = 1;
            break;
        case ENTRY_VOTE: strcpy(e.u.vote.voter, "fpt"); e.u.vote.approve = 1; break;
        case ENTRY_EXPERIMENT_STARTED: case ENTRY_EXPERIMENT_FINISHED:
        case ENTRY_EXPERIMENT_CANCELLED: case ENTRY_EXPERIMENT_FAILED:
            strcpy(e.u.experiment.experiment, "gpt2-vi");
            e.u.experiment.rounds = 3;
            e.u.experiment.reason = "stopped";
            memset(e.u.experiment.proposal_hash, 8, 32);
            break;
        case ENTRY_UPDATE_ACCEPTED: case ENTRY_UPDATE_REJECTED:
            strcpy(e.u.update.experiment, "gpt2-vi");
            strcpy(e.u.update.member, "fpt");
            e.u.update.round = 2;
            e.u.update.tokens = 1000;
            e.u.update.reason = "late";
            memset(e.u.update.envelope_signature, 7, 64);
            memset(e.u.update.base_model_hash, 9, 32);
            e.u.update.codec = (struct entry_codec){ 1, 4096, 64, 1, -3, 1 };
            e.u.update.val_loss = 2.75;
            break;
        case ENTRY_ROUND_CLOSED:
            strcpy(e.u.round_closed.experiment, "gpt2-vi");
            e.u.round_closed.n_participants = 2;
            e.u.round_closed.participants = participants;
            break;
        case ENTRY_CONTRIBUTION_SCORES:
            strcpy(e.u.scores.experiment, "gpt2-vi");
            e.u.scores.round = 2;
            e.u.scores.n_measures = 3;
            memcpy(e.u.scores.measures, measures, sizeof measures);
            memset(e.u.scores.evalset_hash, 0x0e, 32);
            e.u.scores.evaluations = 3;
            e.u.scores.exact = 1;
            e.u.scores.base_loss = 3.5;
            e.u.scores.model_loss = 3.25;
            e.u.scores.n = 2;
            e.u.scores.members = scores;
            break;
        case ENTRY_CREDITS:
            strcpy(e.u.credits.experiment, "gpt2-vi");
            e.u.credits.rounds = 3;
            e.u.credits.n_measures = 3;
            memcpy(e.u.credits.measures, measures, sizeof measures);
            e.u.credits.weights[0] = e.u.credits.weights[1] = e.u.credits.weights[2] = 1;
            e.u.credits.n = 2;
            e.u.credits.members = shares;
            break;
        }
        uint8_t *buf;
        size_t len;
        if (entry_encode(&e, &buf, &len) != 0)
            continue;   /* a type this seed set does not fill completely */
        char name[32];
        snprintf(name, sizeof name, "type-%02d", t);
        write_file(argv[1], name, buf, len);
        free(buf);
    }

    uint8_t seed[32];
    for (int i = 0; i < 32; i++)
        seed[i] = (uint8_t)i;
    struct crypto_key *k;
    if (crypto_key_from_seed("coordinator", seed, &k) != 0)
        return 1;
    static const uint64_t sizes[] = { 0, 1, 42, 18446744073709551615ULL };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct checkpoint c = { .origin = "aulac/au-lac-demo", .size = sizes[i] };
        memset(c.root, (int)(0x50 + i), 32);
        char note[CHECKPOINT_SIGNED_MAX], name[32];
        size_t len;
        if (checkpoint_sign(&c, k, note, sizeof note, &len) != 0)
            return 1;
        snprintf(name, sizeof name, "note-%zu", i);
        write_file(argv[2], name, note, len);
    }
    static const char text[] = "aulac/au-lac-demo\n7\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
                               "extension line\n";
    char note[CHECKPOINT_SIGNED_MAX + 64];
    size_t len;
    if (checkpoint_note_sign(text, strlen(text), "aulac/au-lac-demo", k, note,
                             CHECKPOINT_SIGNED_MAX, &len) != 0)
        return 1;
    len += (size_t)snprintf(note + len, sizeof note - len, "\xe2\x80\x94 witness/w1 AAAAAAECAwQ=\n");
    write_file(argv[2], "note-extension-witness", note, len);
    crypto_key_free(k);
    return 0;
}
