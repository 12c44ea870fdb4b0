/* aulac member: propose roster changes (add, remove, rotate a key) and list the
 * roster and its proposals. Each proposal is signed with the proposer's key
 * (crypto/proposal.h) and sent over a signed request. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/governance_cli.h"
#include "cli/signed_client.h"
#include "common/hex.h"
#include "common/timeutil.h"
#include "crypto/proposal.h"
#include "policies/roster.h"
#include "proto/roster_msg.h"

static const char usage[] =
    "usage: aulac member propose-add    --id ID --organization ORG --public-key FILE\n"
    "                                   [--roles R1,R2] [--reason TEXT] CONNECTION\n"
    "       aulac member propose-remove --id ID [--reason TEXT] CONNECTION\n"
    "       aulac member propose-rotate [--id ID] --public-key FILE [--reason TEXT] CONNECTION\n"
    "       aulac member list [--all] CONNECTION\n"
    "\n"
    "Changes the alliance roster the only way it changes: a proposal signed by a\n"
    "member, approved by a quorum of current members (aulac vote), then applied by\n"
    "the coordinator and recorded in the ledger. The proposer's own approval counts;\n"
    "the quorum is the alliance charter's quorum.roster, a fraction of the current members\n"
    "(policies/GOVERNANCE.md). A removed member, or a key rotated out, is refused\n"
    "from its next request on.\n"
    "\n"
    "  propose-add     a new member: its id, organization, roles (default: member) and\n"
    "                  the public key file its owner made with aulac keygen\n"
    "  propose-remove  a member leaves the alliance\n"
    "  propose-rotate  a member's key is replaced (--id defaults to --member: rotate your\n"
    "                  own key after making a new one with aulac keygen)\n"
    "  list            the roster and the open proposals (--all: closed ones too)\n"
    "\n"
    "  --id ID             whom the proposal is about\n"
    "  --organization ORG  the new member's organization\n"
    "  --roles LIST        comma-separated: member, researcher, secretariat\n"
    "  --public-key FILE   a .pub file (aulac keygen)\n"
    "  --reason TEXT       why, recorded with the proposal\n"
    "  --ttl-hours N       the proposal expires after N hours (default 168, at most 720)\n"
    "\n"
    "CONNECTION:\n" SIGNED_CLIENT_USAGE;

enum { O_ID = 300, O_ORG, O_ROLES, O_PUB, O_REASON, O_TTL, O_ALL };

static int parse_roles(const char *s, uint32_t *out)
{
    static const char *const names[] = { "member", "researcher", "secretariat" };
    *out = 0;
    const char *p = s;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = 0;
        for (int i = 0; i < 3; i++)
            if (strlen(names[i]) == n && strncmp(p, names[i], n) == 0) {
                *out |= 1u << i;
                found = 1;
            }
        if (!found)
            return -1;
        p += n;
        if (*p == ',')
            p++;
    }
    return *out ? 0 : -1;
}

static int propose(struct signed_client *sc, struct roster_proposal *p)
{
    uint8_t sig[64], hash[32];
    char why[300];
    if (proposal_check(p, why, sizeof why) != 0)
        return cli_fail("member", "%s", why);
    int rc = proposal_sign(p, sc->key, sig);
    if (rc == 0)
        rc = proposal_hash(p, hash);
    if (rc != 0)
        return cli_fail("member", "cannot sign the proposal: %s", crypto_strerror(rc));
    Aulac__V1__RosterProposal q;
    Aulac__V1__RosterChange ch;
    roster_proposal_to_msg(p, sig, &q, &ch);
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status st = { 0 };
    rc = fed_propose_roster_change(sc->fc, &q, &r, &st);
    if (rc != 0)
        return cli_fail("member", "%s", st.details[0] ? st.details : rpc_strerror(rc));
    if (!r->accepted) {
        cli_fail("member", "the coordinator refused the proposal: %s", r->reason);
        aulac__v1__governance_reply__free_unpacked(r, NULL);
        return 1;
    }
    char hex[65];
    hex_encode(hash, 32, hex);
    printf("proposal %s\n", hex);
    printf("recorded in the ledger at #%" PRIu64 "\n", r->ledger_index);
    if (r->proposal)
        governance_print_status(stdout, r->proposal);
    if (r->proposal && strcmp(r->proposal->state, "open") == 0)
        printf("members vote with: aulac vote --proposal %s --yes|--no ...\n", hex);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
    return 0;
}

static int list(struct signed_client *sc, int all)
{
    Aulac__V1__ProposalsRequest q = AULAC__V1__PROPOSALS_REQUEST__INIT;
    q.member_id = (char *)sc->member;
    q.include_closed = all;
    Aulac__V1__ProposalsReply *r = NULL;
    struct rpc_status st = { 0 };
    int rc = fed_list_proposals(sc->fc, &q, &r, &st);
    if (rc != 0)
        return cli_fail("member", "%s", st.details[0] ? st.details : rpc_strerror(rc));
    printf("alliance %s: %zu member(s), quorum %.2f of the current members\n", r->alliance,
           r->n_roster, r->quorum);
    printf("%-12s %-16s %-26s %s\n", "member", "key id", "roles", "organization");
    for (size_t i = 0; i < r->n_roster; i++) {
        char roles[40];
        roster_roles_format(r->roster[i]->roles, roles, sizeof roles);
        printf("%-12s %-16s %-26s %s\n", r->roster[i]->member_id, r->roster[i]->key_id, roles,
               r->roster[i]->organization);
    }
    printf("\n%zu %sproposal(s)\n", r->n_proposals, all ? "" : "open ");
    for (size_t i = 0; i < r->n_proposals; i++) {
        char hex[65] = "?";
        if (r->proposals[i]->proposal_hash.len == 32)
            hex_encode(r->proposals[i]->proposal_hash.data, 32, hex);
        printf("\nproposal %s\n", hex);
        governance_print_status(stdout, r->proposals[i]);
    }
    aulac__v1__proposals_reply__free_unpacked(r, NULL);
    return 0;
}

int cmd_member(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    int action = strcmp(sub, "propose-add") == 0      ? PROPOSAL_ADD
                 : strcmp(sub, "propose-remove") == 0 ? PROPOSAL_REMOVE
                 : strcmp(sub, "propose-rotate") == 0 ? PROPOSAL_ROTATE
                 : strcmp(sub, "list") == 0           ? 0
                                                      : -1;
    if (action < 0)
        return cli_usage_error("member", usage, "unknown subcommand '%s'", sub);
    struct signed_client sc = { 0 };
    const char *id = NULL, *org = NULL, *roles = "member", *pub = NULL, *reason = "";
    unsigned long long ttl_h = 168;
    int all = 0, ch;
    static const struct option lo[] = {
        SIGNED_CLIENT_OPTIONS,
        { "id", required_argument, 0, O_ID }, { "organization", required_argument, 0, O_ORG },
        { "roles", required_argument, 0, O_ROLES }, { "public-key", required_argument, 0, O_PUB },
        { "reason", required_argument, 0, O_REASON }, { "ttl-hours", required_argument, 0, O_TTL },
        { "all", no_argument, 0, O_ALL }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        if (signed_client_option(&sc, ch, optarg))
            continue;
        switch (ch) {
        case O_ID: id = optarg; break;
        case O_ORG: org = optarg; break;
        case O_ROLES: roles = optarg; break;
        case O_PUB: pub = optarg; break;
        case O_REASON: reason = optarg; break;
        case O_TTL:
            if (cli_parse_u64("member", "--ttl-hours", optarg, &ttl_h) != 0)
                return 2;
            if (ttl_h < 1 || ttl_h > 720)
                return cli_usage_error("member", usage, "--ttl-hours must be 1..720");
            break;
        case O_ALL: all = 1; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc - 1)
        return cli_usage_error("member", usage, "unexpected argument '%s'", argv[optind + 1]);

    struct roster_proposal p = { 0 };
    p.action = (uint8_t)action;
    if (action == PROPOSAL_ROTATE && !id)
        id = sc.member;
    if (action != 0) {
        if (!id)
            return cli_usage_error("member", usage, "--id is required");
        if (action != PROPOSAL_REMOVE && !pub)
            return cli_usage_error("member", usage, "--public-key is required");
        if (action == PROPOSAL_ADD && !org)
            return cli_usage_error("member", usage, "--organization is required");
        if (action == PROPOSAL_ADD && parse_roles(roles, &p.roles) != 0)
            return cli_usage_error("member", usage, "--roles: '%s' is not a comma-separated "
                                   "list of member, researcher, secretariat", roles);
        if (strlen(id) >= sizeof p.member || strlen(reason) >= sizeof p.reason ||
            (org && strlen(org) >= sizeof p.organization))
            return cli_usage_error("member", usage, "--id, --organization or --reason is too "
                                   "long");
        snprintf(p.member, sizeof p.member, "%s", id);
        snprintf(p.reason, sizeof p.reason, "%s", reason);
        if (action == PROPOSAL_ADD)
            snprintf(p.organization, sizeof p.organization, "%s", org);
        if (pub) {
            struct crypto_public_key pk;
            int rc = crypto_public_key_load(pub, &pk);
            if (rc != 0)
                return cli_fail("member", "cannot read the public key %s: %s", pub,
                                crypto_strerror(rc));
            if (strcmp(pk.id, id) != 0)
                return cli_fail("member", "%s is the key of '%s', not of '%s'", pub, pk.id, id);
            memcpy(p.public_key, pk.key, 32);
        }
    }
    int rc = signed_client_open(&sc, "member", usage);
    if (rc == 0) {
        if (action == 0) {
            rc = list(&sc, all);
        } else {
            snprintf(p.alliance, sizeof p.alliance, "%.64s", sc.alliance);
            snprintf(p.proposer, sizeof p.proposer, "%s", sc.member);
            p.created_unix_ms = time_now_unix_ms();
            p.expires_unix_ms = p.created_unix_ms + (int64_t)ttl_h * 3600 * 1000;
            rc = propose(&sc, &p);
        }
    }
    signed_client_close(&sc);
    return rc;
}
