/* aulac vote: approve or refuse a proposal: a roster change or a motion (an
 * experiment, a cancellation, a charter change). The proposal is fetched from the
 * coordinator and checked here before anything is signed: its fields must hash to
 * the proposal hash given on the command line and carry the proposer's valid
 * signature, so a coordinator cannot make a member vote on something else. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/governance_cli.h"
#include "cli/signed_client.h"
#include "common/hex.h"
#include "crypto/motion.h"
#include "crypto/proposal.h"
#include "policies/roster.h"
#include "proto/roster_msg.h"

static const char usage[] =
    "usage: aulac vote --proposal HASH|EXPERIMENT (--yes | --no) CONNECTION\n"
    "\n"
    "Votes on a proposal: a roster change (aulac member list shows them), an experiment,\n"
    "a cancellation (aulac experiment list) or a charter change. The vote is signed with\n"
    "your key and recorded in the ledger; when the approvals reach the charter's quorum\n"
    "the coordinator decides at once (applies the roster change, queues the experiment,\n"
    "cancels it, puts the charter in force). Each member votes once; the proposer's\n"
    "approval is already counted.\n"
    "\n"
    "  --proposal HASH   the proposal's hash (64 hex characters), or an experiment id\n"
    "                    (NAME-1a2b3c4d: its experiment proposal)\n"
    "  --yes / --no      approve or refuse\n"
    "\n"
    "CONNECTION:\n" SIGNED_CLIENT_USAGE;

enum { O_PROPOSAL = 300, O_YES, O_NO };

static void print_motion(FILE *f, const Aulac__V1__Motion *m)
{
    char h[17] = "-";
    if (m->content_hash.len == 32)
        hex_encode(m->content_hash.data, 8, h);
    switch (m->kind) {
    case MOTION_EXPERIMENT:
        fprintf(f, "  %s proposes experiment %s (policy hash %s…)\n", m->proposer_id,
                m->experiment_id, h);
        break;
    case MOTION_CANCEL:
        fprintf(f, "  %s proposes to cancel experiment %s\n", m->proposer_id, m->experiment_id);
        break;
    case MOTION_CHARTER:
        fprintf(f, "  %s proposes a new charter (charter hash %s…)\n", m->proposer_id, h);
        break;
    default:
        fprintf(f, "  unknown motion kind %u\n", m->kind);
    }
    if (m->reason && m->reason[0])
        fprintf(f, "  reason: %s\n", m->reason);
}

void governance_print_status(FILE *f, const Aulac__V1__ProposalStatus *ps)
{
    const Aulac__V1__RosterProposal *p = ps->proposal;
    const Aulac__V1__RosterChange *c = p ? p->change : NULL;
    if (ps->motion)
        print_motion(f, ps->motion);
    if (c) {
        char kid[CRYPTO_KEY_ID_CHARS + 1] = "-", roles[40] = "";
        if (c->public_key.len == 32)
            crypto_key_id(c->public_key.data, kid);
        roster_roles_format(c->roles, roles, sizeof roles);
        switch (c->action) {
        case AULAC__V1__ROSTER_CHANGE__ACTION__ADD:
            fprintf(f, "  %s proposes to add %s (%s; roles %s; key %s)\n", p->proposer_id,
                    c->member_id, c->organization, roles, kid);
            break;
        case AULAC__V1__ROSTER_CHANGE__ACTION__REMOVE:
            fprintf(f, "  %s proposes to remove %s\n", p->proposer_id, c->member_id);
            break;
        case AULAC__V1__ROSTER_CHANGE__ACTION__ROTATE:
            fprintf(f, "  %s proposes to rotate %s's key to %s\n", p->proposer_id,
                    c->member_id, kid);
            break;
        default:
            fprintf(f, "  unknown action %d\n", c->action);
        }
        if (c->reason && c->reason[0])
            fprintf(f, "  reason: %s\n", c->reason);
    }
    fprintf(f, "  state: %s; %u approval(s) of %u needed, %u refusal(s), %u voter(s); voted:",
            ps->state, ps->yes, ps->needed, ps->no, ps->voters);
    for (size_t i = 0; i < ps->n_voted; i++)
        fprintf(f, " %s", ps->voted[i]);
    fprintf(f, "\n  ledger: proposed at #%" PRIu64, ps->ledger_index);
    if (ps->outcome_index)
        fprintf(f, ", %s at #%" PRIu64, ps->motion ? "decided" : "applied", ps->outcome_index);
    fprintf(f, "\n");
    if (ps->note && ps->note[0] && strcmp(ps->state, "approved") != 0)
        fprintf(f, "  note: %s\n", ps->note);
}

/* Fetches the proposal and checks it against hash. 0, or 1 with a message. */
static int fetch_checked(struct signed_client *sc, const uint8_t hash[32],
                         Aulac__V1__ProposalsReply **out)
{
    if (governance_fetch(sc, "vote", hash, out) != 0)
        return 1;
    Aulac__V1__ProposalsReply *r = *out;
    char hex[65];
    hex_encode(hash, 32, hex);
    const Aulac__V1__ProposalStatus *ps = r->n_proposals == 1 ? r->proposals[0] : NULL;
    if (!ps || (!ps->proposal && !ps->motion))
        return cli_fail("vote", "the coordinator knows no proposal %s", hex);
    struct roster_proposal p;
    struct motion m;
    uint8_t sig[64], got[32];
    char why[300];
    int bad = ps->motion ? motion_from_status_msg(ps->motion, &m, sig, why, sizeof why)
                         : roster_proposal_from_msg(ps->proposal, &p, sig, why, sizeof why);
    if (bad)
        return cli_fail("vote", "the coordinator's copy of the proposal is unusable: %s", why);
    const char *proposer_id = ps->motion ? m.proposer : p.proposer;
    if ((ps->motion ? motion_hash(&m, got) : proposal_hash(&p, got)) != 0 ||
        !crypto_equal(got, hash, 32))
        return cli_fail("vote", "the coordinator's copy of proposal %.16s… does not hash to "
                        "it: refusing to vote on it", hex);
    const Aulac__V1__RosterMember *proposer = NULL;
    for (size_t i = 0; i < r->n_roster; i++)
        if (strcmp(r->roster[i]->member_id, proposer_id) == 0)
            proposer = r->roster[i];
    if (!proposer || proposer->public_key.len != 32 ||
        (ps->motion ? motion_verify(&m, proposer->public_key.data, sig)
                    : proposal_verify(&p, proposer->public_key.data, sig)) != 0)
        return cli_fail("vote", "proposal %.16s… is not validly signed by its proposer '%s' "
                        "(per the roster): refusing to vote on it", hex, proposer_id);
    return 0;
}

int cmd_vote(int argc, char **argv)
{
    struct signed_client sc = { 0 };
    const char *hash_hex = NULL;
    int approve = -1, ch;
    static const struct option lo[] = {
        SIGNED_CLIENT_OPTIONS,
        { "proposal", required_argument, 0, O_PROPOSAL }, { "yes", no_argument, 0, O_YES },
        { "no", no_argument, 0, O_NO }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (signed_client_option(&sc, ch, optarg))
            continue;
        switch (ch) {
        case O_PROPOSAL: hash_hex = optarg; break;
        case O_YES:
        case O_NO:
            if (approve >= 0 && approve != (ch == O_YES))
                return cli_usage_error("vote", usage, "--yes and --no contradict each other");
            approve = ch == O_YES;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_usage_error("vote", usage, "unexpected argument '%s'", argv[optind]);
    uint8_t hash[32];
    if (!hash_hex || !hash_hex[0])
        return cli_usage_error("vote", usage, "--proposal needs the 64-hex-character hash "
                               "of a proposal, or an experiment id");
    int by_id = strlen(hash_hex) != 64 || hex_decode(hash_hex, hash, 32) != 0;
    if (by_id && !crypto_id_valid(hash_hex))
        return cli_usage_error("vote", usage, "--proposal '%s' is neither a proposal hash (64 "
                               "hex characters) nor an experiment id", hash_hex);
    if (approve < 0)
        return cli_usage_error("vote", usage, "say --yes or --no");
    int rc = signed_client_open(&sc, "vote", usage);
    Aulac__V1__ProposalsReply *pr = NULL;
    char hex[65];
    if (rc == 0 && by_id && (rc = governance_experiment_hash(&sc, hash_hex, hash)) == 0) {
        hex_encode(hash, 32, hex);
        hash_hex = hex;
    }
    if (rc == 0)
        rc = fetch_checked(&sc, hash, &pr);
    if (rc == 0) {
        printf("proposal %s\n", hash_hex);
        governance_print_status(stdout, pr->proposals[0]);
        struct roster_vote v = { 0 };
        memcpy(v.proposal_hash, hash, 32);
        snprintf(v.voter, sizeof v.voter, "%s", sc.member);
        v.approve = (uint8_t)approve;
        uint8_t sig[64];
        int src = vote_sign(&v, sc.key, sig);
        if (src != 0) {
            rc = cli_fail("vote", "cannot sign the vote: %s", crypto_strerror(src));
        } else {
            Aulac__V1__VoteRequest q = AULAC__V1__VOTE_REQUEST__INIT;
            q.proposal_hash.data = hash;
            q.proposal_hash.len = 32;
            q.voter_id = (char *)sc.member;
            q.approve = approve;
            q.signature.data = sig;
            q.signature.len = 64;
            Aulac__V1__GovernanceReply *r = NULL;
            struct rpc_status st = { 0 };
            int frc = fed_vote(sc.fc, &q, &r, &st);
            if (frc != 0) {
                rc = cli_fail("vote", "%s", st.details[0] ? st.details : rpc_strerror(frc));
            } else if (!r->accepted) {
                rc = cli_fail("vote", "the coordinator refused the vote: %s", r->reason);
            } else {
                printf("vote %s by %s recorded in the ledger at #%" PRIu64 "\n",
                       approve ? "yes" : "no", sc.member, r->ledger_index);
                if (r->proposal)
                    governance_print_status(stdout, r->proposal);
            }
            if (r)
                aulac__v1__governance_reply__free_unpacked(r, NULL);
        }
    }
    if (pr)
        aulac__v1__proposals_reply__free_unpacked(pr, NULL);
    signed_client_close(&sc);
    return rc;
}
