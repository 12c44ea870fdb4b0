/* aulac charter: the alliance charter in force, and motions to amend it
 * (policies/GOVERNANCE.md). */
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
#include "policies/charter.h"

static const char usage[] =
    "usage: aulac charter propose FILE [--reason TEXT] [--expires-in DAYS] CONNECTION\n"
    "       aulac charter show CONNECTION\n"
    "\n"
    "The charter holds the alliance's rules: the quorums for roster changes, for\n"
    "experiments and for the charter itself, who may propose experiments, how long\n"
    "proposals stay open, how many experiments run at once (policies/GOVERNANCE.md).\n"
    "\n"
    "  propose   sign the charter document FILE (the keys of the roster file's charter:\n"
    "            section, at its top level; checked here first) as a charter motion; it\n"
    "            passes with the charter quorum of the charter in force\n"
    "  show      the charter in force (its canonical text, which is a charter document\n"
    "            to edit and propose), its hash and the ledger entry that set it\n"
    "\n"
    "  --reason TEXT       why, signed and recorded with the proposal\n"
    "  --expires-in DAYS   votes close after DAYS (1..30; default: proposal_expiry_days)\n"
    "\n"
    "CONNECTION:\n" SIGNED_CLIENT_USAGE;

enum { O_REASON = 300, O_EXPIRES };

static int show(struct signed_client *sc)
{
    Aulac__V1__ProposalsReply *r = NULL;
    if (governance_fetch(sc, "charter", NULL, &r) != 0)
        return 1;
    char hex[65] = "?";
    if (r->charter_hash.len == 32)
        hex_encode(r->charter_hash.data, 32, hex);
    printf("# the charter of alliance %s, in force since ledger entry #%" PRIu64 "%s\n"
           "# charter hash %s\n%s", r->alliance, r->charter_index,
           r->charter_index ? "" : " (genesis)", hex, r->charter ? r->charter : "");
    aulac__v1__proposals_reply__free_unpacked(r, NULL);
    return 0;
}

static int propose(struct signed_client *sc, const char *file, const char *reason,
                   unsigned days)
{
    struct charter ch;
    struct policy_error err;
    uint8_t *doc = NULL;
    size_t len = 0;
    if (policy_read_file(file, &doc, &len, &err) != 0 ||
        charter_load_buffer(file, doc, len, &ch, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        free(doc);
        return 1;
    }
    struct motion m = { .kind = MOTION_CHARTER };
    snprintf(m.reason, sizeof m.reason, "%s", reason);
    int rc = charter_hash(&ch, m.content_hash) == 0
                 ? motion_submit(sc, "charter", &m, days, doc, len, file)
                 : cli_fail("charter", "out of memory");
    free(doc);
    return rc;
}

int cmd_charter(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    int is_propose = strcmp(sub, "propose") == 0;
    if (!is_propose && strcmp(sub, "show") != 0)
        return cli_usage_error("charter", usage, "unknown subcommand '%s'", sub);
    struct signed_client sc = { 0 };
    const char *reason = "";
    unsigned days = 0;
    int ch;
    static const struct option lo[] = {
        SIGNED_CLIENT_OPTIONS,
        { "reason", required_argument, 0, O_REASON },
        { "expires-in", required_argument, 0, O_EXPIRES },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        if (signed_client_option(&sc, ch, optarg))
            continue;
        switch (ch) {
        case O_REASON: reason = optarg; break;
        case O_EXPIRES:
            if ((days = governance_parse_days("charter", optarg)) == 0)
                return 2;
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    int args = argc - 1 - optind;
    if (args != is_propose)
        return cli_usage_error("charter", usage, is_propose ? "propose needs one FILE"
                                                             : "show takes no argument");
    if (!is_propose && (reason[0] || days))
        return cli_usage_error("charter", usage, "--reason and --expires-in go with propose");
    if (strlen(reason) > PROPOSAL_REASON_MAX)
        return cli_usage_error("charter", usage, "--reason is over %d bytes",
                               PROPOSAL_REASON_MAX);
    int rc = signed_client_open(&sc, "charter", usage);
    if (rc == 0)
        rc = is_propose ? propose(&sc, argv[optind + 1], reason, days) : show(&sc);
    signed_client_close(&sc);
    return rc;
}
