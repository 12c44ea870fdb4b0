/* aulac: keys, status, ledger and model tools for members and the secretariat. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"

static const char usage[] =
    "usage: aulac COMMAND [options]     (aulac COMMAND --help for each)\n"
    "\n"
    "  keygen          make an Ed25519 key pair for a member or the coordinator\n"
    "  roster add      add a member's public key to the founding roster (show: list it)\n"
    "  status          the coordinator's experiment, rounds and contributions\n"
    "  ledger show     print ledger entries (text or JSON lines)\n"
    "  ledger verify   recompute every leaf, the Merkle root and every signed checkpoint\n"
    "  ledger replay   recompute every round's model from round 0 (ledger + payloads) and\n"
    "                  check the hashes the ledger recorded\n"
    "  ledger checkpoint|proof|consistency|export   signed tree heads, inclusion and\n"
    "                  consistency proofs, JSON-lines export (data dir or coordinator)\n"
    "  witness check   cross-check the members' cosigned checkpoints: catch a split view\n"
    "  eval            validation loss of a saved model on a corpus\n"
    "  solo            train a policy's model on one member's corpus alone (same compute)\n"
    "  policy check    parse and validate a policy file, print its hash\n"
    "  policy diff     the keys two policy files set differently\n"
    "  site check      validate a member's site policy (site.yaml), optionally against a policy\n"
    "  member          propose roster changes (add, remove, rotate a key); list the roster\n"
    "  vote            approve or refuse a proposal (roster change, experiment, charter)\n"
    "  experiment      propose a policy as an experiment, withdraw, propose-cancel, list, show\n"
    "  artifact        upload (put) or fetch (get) the files policies pin by hash\n"
    "  charter         the alliance charter in force; propose an amendment\n"
    "  credits         each member's credit share per experiment (table, CSV or JSON)\n"
    "  credits verify  recompute every contribution score, model and credit from the ledger,\n"
    "                  the payloads and the evaluation set (data dir or ledger export)\n"
    "  report          an experiment's credit report as one self-contained HTML file\n"
    "  tls init|issue  the alliance CA and TLS certificates (uses openssl)\n";

/* aulac credits verify ... | aulac credits ...: two commands, one name. */
static int cmd_credits(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return cmd_credits_verify(argc - 1, argv + 1);
    return cmd_credits_show(argc, argv);
}

int main(int argc, char **argv)
{
    log_set_component("aulac");
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cmd_status(argc - 1, argv + 1);
    if (strcmp(cmd, "ledger") == 0)
        return cmd_ledger(argc - 1, argv + 1);
    if (strcmp(cmd, "witness") == 0)
        return cmd_witness(argc - 1, argv + 1);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 1, argv + 1);
    if (strcmp(cmd, "solo") == 0)
        return cmd_solo(argc - 1, argv + 1);
    if (strcmp(cmd, "policy") == 0)
        return cmd_policy(argc - 1, argv + 1);
    if (strcmp(cmd, "site") == 0)
        return cmd_site(argc - 1, argv + 1);
    if (strcmp(cmd, "member") == 0)
        return cmd_member(argc - 1, argv + 1);
    if (strcmp(cmd, "vote") == 0)
        return cmd_vote(argc - 1, argv + 1);
    if (strcmp(cmd, "experiment") == 0)
        return cmd_experiment(argc - 1, argv + 1);
    if (strcmp(cmd, "artifact") == 0)
        return cmd_artifact(argc - 1, argv + 1);
    if (strcmp(cmd, "charter") == 0)
        return cmd_charter(argc - 1, argv + 1);
    if (strcmp(cmd, "roster") == 0)
        return cmd_roster(argc - 1, argv + 1);
    if (strcmp(cmd, "credits") == 0)
        return cmd_credits(argc - 1, argv + 1);
    if (strcmp(cmd, "tls") == 0)
        return cmd_tls(argc - 1, argv + 1);
    if (strcmp(cmd, "report") == 0)
        return cmd_report(argc - 1, argv + 1);
    fprintf(stderr, "aulac: unknown command '%s'\n%s", cmd, usage);
    return 2;
}
