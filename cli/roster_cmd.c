#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/fileio.h"
#include "crypto/keys.h"
#include "policies/roster.h"

static const char usage[] =
    "usage: aulac roster add --roster FILE --pub FILE [--organization NAME]\n"
    "                        [--roles member,researcher,secretariat] [--alliance NAME]\n"
    "       aulac roster show --roster FILE\n"
    "\n"
    "Prepares the founding roster, before the coordinator's first start records it in the\n"
    "ledger; afterwards members change only through governance (aulac member propose-*).\n"
    "\n"
    "add   appends the member of a public key file (aulac keygen's ID.pub) to the roster,\n"
    "      creating the file when absent (then --alliance is required). Refuses a member\n"
    "      whose id or key is already there. The file is rewritten atomically.\n"
    "show  validates the roster and lists its members\n"
    "\n"
    "  --organization NAME  the member's organization (default: its id)\n"
    "  --roles LIST         comma-separated (default: member)\n";

static int show(const char *path)
{
    struct roster r;
    struct policy_error err;
    if (roster_load_file(path, &r, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("alliance %s: %zu member(s)\n", r.alliance, r.n_members);
    for (size_t i = 0; i < r.n_members; i++) {
        char roles[40], id[CRYPTO_KEY_ID_CHARS + 1];
        roster_roles_format(r.members[i].roles, roles, sizeof roles);
        crypto_key_id(r.members[i].public_key, id);
        printf("  %-12s key %s  %-24s %s\n", r.members[i].id, id, roles,
               r.members[i].organization);
    }
    roster_free(&r);
    return 0;
}

int cmd_roster(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "add") != 0 && strcmp(sub, "show") != 0)
        return cli_usage_error("roster", usage, "unknown subcommand '%s'", sub);
    const char *path = NULL, *pub = NULL, *org = NULL, *roles = "member", *alliance = NULL;
    int ch;
    static const struct option lo[] = {
        { "roster", required_argument, 0, 'r' }, { "pub", required_argument, 0, 'p' },
        { "organization", required_argument, 0, 'o' }, { "roles", required_argument, 0, 'R' },
        { "alliance", required_argument, 0, 'a' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'r': path = optarg; break;
        case 'p': pub = optarg; break;
        case 'o': org = optarg; break;
        case 'R': roles = optarg; break;
        case 'a': alliance = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!path)
        return cli_usage_error("roster", usage, "--roster is required");
    if (strcmp(sub, "show") == 0)
        return show(path);
    if (!pub)
        return cli_usage_error("roster", usage, "--pub is required");

    struct roster_member m = { 0 };
    if (roster_roles_parse(roles, &m.roles) != 0)
        return cli_usage_error("roster", usage, "--roles '%s': roles are member, researcher, "
                               "secretariat, comma-separated", roles);
    if (org && (strlen(org) == 0 || strlen(org) > ROSTER_ORG_MAX || strchr(org, '\n')))
        return cli_usage_error("roster", usage, "--organization must be 1..%d characters on "
                               "one line", ROSTER_ORG_MAX);
    struct crypto_public_key pk;
    int rc = crypto_public_key_load(pub, &pk);
    if (rc != 0)
        return cli_fail("roster", "%s: %s", pub, crypto_strerror(rc));
    if (strlen(pk.id) > POLICY_ID_MAX)
        return cli_fail("roster", "%s: member id '%s' is longer than %d characters", pub, pk.id,
                        POLICY_ID_MAX);
    snprintf(m.id, sizeof m.id, "%s", pk.id);
    snprintf(m.organization, sizeof m.organization, "%s", org ? org : pk.id);
    memcpy(m.public_key, pk.key, 32);

    struct roster r = { 0 };
    struct policy_error err;
    if (file_exists(path)) {
        if (roster_load_file(path, &r, &err) != 0) {
            fprintf(stderr, "%s\n", err.message);
            return 1;
        }
        if (alliance && strcmp(alliance, r.alliance) != 0) {
            cli_fail("roster", "%s belongs to alliance '%s', not '%s'", path, r.alliance,
                     alliance);
            roster_free(&r);
            return 1;
        }
    } else if (!alliance) {
        return cli_usage_error("roster", usage, "%s does not exist: give --alliance to create it",
                               path);
    } else {
        snprintf(r.alliance, sizeof r.alliance, "%s", alliance);
        charter_default(&r.charter);
    }
    char why[200] = "";
    char *text = NULL;
    size_t len = 0;
    rc = roster_add(&r, &m, why, sizeof why);
    if (rc == 0)
        rc = roster_format(&r, &text, &len);
    struct roster check;
    if (rc == 0 && roster_load_buffer(path, text, len, &check, &err) != 0)
        rc = err.code;    /* what we write must read back */
    else if (rc == 0)
        roster_free(&check);
    if (rc == 0 && (rc = file_write_atomic(path, text, len, 0644)) != 0)
        snprintf(why, sizeof why, "cannot write %s: %s", path, strerror(-rc));
    free(text);
    roster_free(&r);
    if (rc != 0)
        return cli_fail("roster", "%s", why[0] ? why : policy_strerror(rc));
    printf("%s: added %s (key %s)\n", path, m.id, pk.key_id);
    return 0;
}
