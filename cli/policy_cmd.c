/* aulac policy check, aulac site check: validate the YAML files a researcher proposes
 * and a member's worker obeys, with the errors (file:line:col: path: message) the
 * coordinator and the worker would give. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/hex.h"
#include "policies/policy.h"
#include "policies/site.h"

static const char policy_usage[] =
    "usage: aulac policy check FILE\n"
    "\n"
    "Parses and validates an experiment policy as the coordinator does (policies/README.md);\n"
    "prints its canonical hash, the model size and the rounds, or the first error as\n"
    "FILE:line:col: key.path: message. Exit status 0 when valid, 1 when not.\n";

static const char site_usage[] =
    "usage: aulac site check FILE [--policy POLICY]\n"
    "\n"
    "Parses and validates a member's site policy (site.yaml) as the worker does; with\n"
    "--policy, also says whether that site lets its worker take part in the experiment\n"
    "POLICY, and why not. Errors are FILE:line:col: key.path: message. Exit status 0 when\n"
    "valid (and allowed), 1 otherwise.\n";

/* "CMD check FILE [options]" (or "CMD --help"): returns -1 to go on with *file (and
 * *policy for --policy), else the exit status. */
static int parse_check(const char *cmd, const char *usage, int argc, char **argv,
                       const struct option *lo, const char **file, const char **policy)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "check") != 0)
        return cli_usage_error(cmd, usage, "expected: %s check FILE", cmd);
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'p': *policy = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind + 1 != argc - 1)
        return cli_usage_error(cmd, usage, "expected one FILE");
    *file = argv[optind + 1];
    return -1;
}

int cmd_policy(int argc, char **argv)
{
    static const struct option lo[] = { { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    const char *file = NULL, *unused = NULL;
    int rc = parse_check("policy", policy_usage, argc, argv, lo, &file, &unused);
    if (rc >= 0)
        return rc;
    struct policy p;
    struct policy_error err;
    if (policy_load_file(file, &p, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    uint8_t h[32];
    char hex[65], members[48];
    if (policy_hash(&p, h) != 0) {
        policy_free(&p);
        return cli_fail("policy", "out of memory");
    }
    hex_encode(h, 32, hex);
    if (p.participation.n_members)
        snprintf(members, sizeof members, "%zu members", p.participation.n_members);
    else
        snprintf(members, sizeof members, "every roster member");
    printf("%s: ok\nname: %s\nhash: %s\nmodel: gpt2 %u layers, %u heads, %u wide, %llu "
           "parameters\nrounds: %u x %u local steps, %s (min %u)\n", file,
           p.metadata.name, hex, p.model.n_layer, p.model.n_head, p.model.n_embd,
           (unsigned long long)policy_model_parameters(&p.model), p.training.rounds,
           p.training.local_steps, members, p.participation.min_members);
    policy_free(&p);
    return 0;
}

int cmd_site(int argc, char **argv)
{
    static const struct option lo[] = {
        { "policy", required_argument, 0, 'p' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    const char *file = NULL, *policy_file = NULL;
    int rc = parse_check("site", site_usage, argc, argv, lo, &file, &policy_file);
    if (rc >= 0)
        return rc;
    struct site_policy s;
    struct policy_error err;
    if (site_load_file(file, &s, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    printf("%s: ok\n", file);
    if (!policy_file) {
        site_policy_free(&s);
        return 0;
    }
    struct policy p;
    if (policy_load_file(policy_file, &p, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        site_policy_free(&s);
        return 1;
    }
    char why[512];
    rc = site_check(&s, &p, why, sizeof why);
    if (rc == 0)
        printf("%s: this site allows experiment %s\n", file, p.metadata.name);
    else
        fprintf(stderr, "%s: refuses %s\n", file, why);
    policy_free(&p);
    site_policy_free(&s);
    return rc == 0 ? 0 : 1;
}
