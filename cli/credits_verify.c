/* aulac credits verify: recompute every contribution score, model and credit of the
 * ledger's experiments from the ledger, the accepted payloads and the evaluation set
 * alone (credit/replay.h), from the coordinator's data directory or from an export
 * (`aulac ledger export --data-dir D --payloads DIR`) on any machine.
 * aulac ledger replay: the same replay (one function, run_replay) for the models alone:
 * every round's average and model from round 0, against the hashes round_closed
 * recorded, naming the first round that differs. */
#include <getopt.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/hex.h"
#include "credit/evalset.h"
#include "credit/replay.h"
#include "ledger/export_read.h"
#include "ledger/ledger.h"

#define CMD "credits verify"

static const char usage[] =
    "usage: aulac credits verify --data-dir D [--eval-set FILE | --eval-sets DIR]\n"
    "                            [--artifacts DIR] [--experiment ID]\n"
    "       aulac credits verify --export DIR (--eval-set FILE | --eval-sets DIR)\n"
    "                            [--artifacts DIR] [--experiment ID]\n"
    "\n"
    "Recomputes, from the ledger, the accepted payloads and the evaluation set alone, every\n"
    "contribution score, every round's model and the credits of each experiment that has\n"
    "contribution_scores entries (or of the one named), and says for each round whether it\n"
    "matches what the coordinator recorded:\n"
    "  - the policy: the experiment's policy_proposed document, whose hash must be the one\n"
    "    experiment_started names; model 0: gpt2_init_params(model.seed), or the tensors\n"
    "    of the policy's pinned model.init file (an external model, or a GPT-2 from a\n"
    "    checkpoint), hash checked;\n"
    "  - each round: its update_accepted entries, each payload by its hash (a missing or\n"
    "    altered payload is named with its round and member), the contribution measures\n"
    "    (credit/score.h) with the seed from ledger data, then the round's average and\n"
    "    model (outer optimizer and downlink state carried over), whose hashes must be\n"
    "    round_closed's;\n"
    "  - the contribution_scores entry: members, payload hashes, seed, evaluations, and\n"
    "    tokens, rounds, bytes and alignment exactly; loo, shapley and the losses within\n"
    "    |a - b| <= 1e-6 + 1e-4 |a| (evaluation runs OpenBLAS kernels picked for the CPU,\n"
    "    so another machine may differ in the last bits; on the coordinator's machine they\n"
    "    match bit for bit): credit/README.md, \"Verifying\";\n"
    "  - the credits entry: exactly the shares its recorded scores give (credit/shares.h),\n"
    "    and the shares of the recomputed scores beside it.\n"
    "One line per round: \"round 3: match (...)\" or \"round 3: MISMATCH: ...\", then a summary.\n"
    "\n"
    "  --data-dir D      the coordinator's data directory (opened read-only; it may be\n"
    "                    running): its ledger, and the payloads it keeps in\n"
    "                    D/experiments/<id>/payloads/<payload hash hex>.bin for\n"
    "                    contribution.payload_retention_days after an experiment ends\n"
    "  --export DIR      what `aulac ledger export --data-dir D --payloads DIR` wrote:\n"
    "                    DIR/entries.jsonl and DIR/payloads/<hex>.bin. The entries are\n"
    "                    checked first as `aulac ledger verify` would: leaf hashes, the\n"
    "                    signed checkpoints (genesis coordinator key), member signatures\n"
    "  --eval-set FILE   the evaluation set (needed when loo or shapley is measured); its\n"
    "                    BLAKE2b-256 must be the one the policy pins\n"
    "  --eval-sets DIR   or a directory holding it under the policy's\n"
    "                    contribution.evaluation_set.name (default with --data-dir:\n"
    "                    D/evalsets, the coordinator's default)\n"
    "  --artifacts DIR   the files policies pin, as DIR/<BLAKE2b-256 hex> (default with\n"
    "                    --data-dir: D/artifacts, the coordinator's store; fetch one with\n"
    "                    aulac artifact get HASH -o DIR/HASH); each is hashed before use\n"
    "  --experiment ID   only this experiment\n"
    "\n"
    "The ledger's own integrity with --data-dir is `aulac ledger verify --data-dir D`.\n"
    "Progress goes to stderr. Exit status: 0 when every round and credit matches, 1 on\n"
    "any mismatch, missing or altered payload, or when nothing could be checked, 2 usage,\n"
    "3 when everything checked matches but the models of some DP rounds could not be\n"
    "rebuilt (their noise seed is not revealed, or the ledger commits to none).\n";

#define REPLAY_CMD "ledger replay"

static const char replay_usage[] =
    "usage: aulac ledger replay --data-dir D [--artifacts DIR] [--experiment ID]\n"
    "       aulac ledger replay --export DIR [--artifacts DIR] [--experiment ID]\n"
    "\n"
    "Recomputes every round's global model of each experiment from round 0, from the ledger\n"
    "and the accepted payloads alone, and checks the hashes the coordinator recorded:\n"
    "  - model 0: gpt2_init_params(model.seed) of the experiment's policy (its\n"
    "    policy_proposed document, hash checked), or the tensors of its pinned model.init\n"
    "    file; its hash must be experiment_started's;\n"
    "  - each round: its update_accepted entries in member-id order, each payload by its\n"
    "    hash (a missing or altered payload is named with its round and member), the\n"
    "    policy's aggregation rule (aggregate/robust.h), whose hash must be round_closed's\n"
    "    aggregate_hash, then the outer optimizer and the downlink error feedback carried\n"
    "    across rounds (aggregate/outer.h), whose hash must be round_closed's model_hash;\n"
    "  - differential privacy: the noise of round R is drawn from (seed, R) (PRIVACY.md):\n"
    "    experiment_started commits to the seed (BLAKE2b-256); once the experiment has\n"
    "    ended the seed is revealed with the payloads (D/experiments/<id>/dp-noise-seed,\n"
    "    or DIR/dp-seeds/<id>.seed in an export), checked against the commitment, and\n"
    "    every round's noise recomputed; before that (a running experiment), or in a\n"
    "    ledger written before seeds were committed, its rounds are listed NOT CHECKED\n"
    "    with the reason.\n"
    "The aggregate is a function of the ledger and the payloads alone: the updates are\n"
    "combined in member-id order whatever order they arrived in, on one thread.\n"
    "One line per round (\"round 3: match (...)\", \"round 3: MISMATCH: ...\", or\n"
    "\"round 3: NOT CHECKED: ...\"), then a summary naming the first round that differs.\n"
    "\n"
    "  --data-dir D      the coordinator's data directory (opened read-only; it may be\n"
    "                    running): its ledger and D/experiments/<id>/payloads/<hex>.bin\n"
    "  --export DIR      what `aulac ledger export --data-dir D --payloads DIR` wrote:\n"
    "                    DIR/entries.jsonl and DIR/payloads/<hex>.bin. The entries are\n"
    "                    audited first as `aulac ledger verify` would (leaf hashes, signed\n"
    "                    checkpoints, member signatures); an export that fails the audit\n"
    "                    is still replayed, to name the rounds, and the exit status is 1\n"
    "  --artifacts DIR   the files policies pin, as DIR/<BLAKE2b-256 hex> (default with\n"
    "                    --data-dir: D/artifacts)\n"
    "  --experiment ID   only this experiment (default: every one with a closed round)\n"
    "\n"
    "Progress goes to stderr. Exit status: 0 when every round was rebuilt and matches;\n"
    "1 when a round differs, a payload is missing or altered, the export fails its audit,\n"
    "or nothing could be replayed; 2 usage; 3 when every round checked matches but some\n"
    "DP rounds are NOT CHECKED (listed with why: the seed is not revealed, or the ledger\n"
    "commits to none, which an audited coordinator must not be allowed to pass as 0).\n";

struct verify_opts {
    const char *data_dir, *export_dir, *eval_set, *eval_sets, *experiment, *artifacts;
};

/* Which command runs: credits verify (scores, models, credits) or ledger replay. */
struct replay_cmd {
    const char *name;             /* for messages: "credits verify" */
    const char *usage;
    int models_only;
};

static const struct replay_cmd credits_cmd = { CMD, usage, 0 };
static const struct replay_cmd replay_cmd = { REPLAY_CMD, replay_usage, 1 };

static void print_line(void *arg, const char *text)
{
    (void)arg;
    printf("%s\n", text);
    fflush(stdout);
}

struct progress_state {
    time_t last;
    const char *name;
};

/* At most one progress line a second: long replays show they are alive. */
static void print_progress(void *arg, const char *text)
{
    struct progress_state *p = arg;
    time_t now = time(NULL);
    if (now == p->last)
        return;
    p->last = now;
    fprintf(stderr, "aulac %s: %s\n", p->name, text);
}

static int ledger_get_cb(void *arg, uint64_t index, uint8_t **bytes, size_t *len, char *why,
                         size_t cap)
{
    int rc = ledger_get(arg, index, bytes, len);
    if (rc != 0)
        snprintf(why, cap, "%s", ledger_strerror(rc));
    return rc;
}

static int export_get_cb(void *arg, uint64_t index, uint8_t **bytes, size_t *len, char *why,
                         size_t cap)
{
    return export_entry(arg, index, bytes, len, why, cap);
}

static int parse(const struct replay_cmd *rc_, int argc, char **argv, struct verify_opts *o)
{
    const char *cmd = rc_->name, *use = rc_->usage;
    static const struct option lo[] = {
        { "data-dir", required_argument, 0, 'd' }, { "export", required_argument, 0, 'x' },
        { "eval-set", required_argument, 0, 'e' }, { "eval-sets", required_argument, 0, 'E' },
        { "experiment", required_argument, 0, 'm' }, { "artifacts", required_argument, 0, 'a' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    int ch;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        switch (ch) {
        case 'd': o->data_dir = optarg; break;
        case 'x': o->export_dir = optarg; break;
        case 'e':
        case 'E':
            if (rc_->models_only)
                return cli_usage_error(cmd, use, "ledger replay checks the models alone: no "
                                       "evaluation set (credits verify checks the scores)");
            if (ch == 'e')
                o->eval_set = optarg;
            else
                o->eval_sets = optarg;
            break;
        case 'm': o->experiment = optarg; break;
        case 'a': o->artifacts = optarg; break;
        case 'h': fputs(use, stdout); return 0;
        case ':':
            return cli_usage_error(cmd, use, "%s needs a value", argv[optind - 1]);
        default:
            return cli_usage_error(cmd, use, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error(cmd, use, "unexpected argument '%s'", argv[optind]);
    if (!o->data_dir == !o->export_dir)
        return cli_usage_error(cmd, use, "give one source: --data-dir D or --export DIR");
    if (o->eval_set && o->eval_sets)
        return cli_usage_error(cmd, use, "--eval-set FILE or --eval-sets DIR, not both");
    return -1;
}

/* ledger replay's summary: OK, or the first round that differs. */
static int report_replay(const struct replay_summary *s, int audit_failed)
{
    char unchecked[120] = "";
    if (s->rounds_unchecked)
        snprintf(unchecked, sizeof unchecked, "; %" PRIu64 " DP round(s) not checked (above: "
                 "why)", s->rounds_unchecked);
    if (s->problems == 0 && !audit_failed && s->rounds_unchecked) {
        printf("ledger replay: INCOMPLETE: %" PRIu64 " experiment(s), %" PRIu64 " round(s): "
               "%" PRIu64 " model(s) rebuilt from round 0 bit for bit, %" PRIu64 " DP round(s) "
               "NOT CHECKED (above: why); exit status 3\n", s->experiments, s->rounds,
               s->rounds_matched, s->rounds_unchecked);
        return 3;
    }
    if (s->problems == 0 && !audit_failed) {
        printf("ledger replay: OK: %" PRIu64 " experiment(s), %" PRIu64 " round(s): %" PRIu64
               " model(s) rebuilt from round 0 bit for bit\n", s->experiments, s->rounds,
               s->rounds_matched);
        return 0;
    }
    printf("ledger replay: FAILED: ");
    if (s->have_first_bad)
        printf("the first round that differs is round %" PRIu64 " of %s; ", s->first_bad_round,
               s->first_bad_experiment);
    printf("%" PRIu64 " problem(s): %" PRIu64 " of %" PRIu64 " round(s) match%s", s->problems,
           s->rounds_matched, s->rounds, unchecked);
    if (s->payloads_missing || s->payloads_altered)
        printf("; %" PRIu64 " payload(s) missing, %" PRIu64 " altered", s->payloads_missing,
               s->payloads_altered);
    if (audit_failed)
        printf("; the export fails its audit (above)");
    printf("\n");
    return 1;
}

static int report(const struct replay_summary *s)
{
    if (s->problems == 0 && s->rounds_unchecked) {
        printf("credits verify: INCOMPLETE: %" PRIu64 " experiment(s), %" PRIu64 " round(s) "
               "and %" PRIu64 " credits entr%s recomputed and matching, but the models of %"
               PRIu64 " DP round(s) are NOT CHECKED (their noise seed is not at hand: above); "
               "exit status 3\n", s->experiments, s->rounds, s->credits_checked,
               s->credits_checked == 1 ? "y" : "ies", s->rounds_unchecked);
        return 3;
    }
    if (s->problems == 0) {
        printf("credits verify: OK: %" PRIu64 " experiment(s), %" PRIu64 " round(s) and %" PRIu64
               " credits entr%s recomputed; everything matches\n", s->experiments, s->rounds,
               s->credits_checked, s->credits_checked == 1 ? "y" : "ies");
        return 0;
    }
    printf("credits verify: FAILED: %" PRIu64 " problem(s): %" PRIu64 " of %" PRIu64 " round(s) "
           "match", s->problems, s->rounds_matched, s->rounds);
    if (s->credits_checked)
        printf(", %" PRIu64 " of %" PRIu64 " credits entr%s", s->credits_matched,
               s->credits_checked, s->credits_checked == 1 ? "y" : "ies");
    if (s->payloads_missing || s->payloads_altered)
        printf("; %" PRIu64 " payload(s) missing, %" PRIu64 " altered", s->payloads_missing,
               s->payloads_altered);
    printf("\n");
    return 1;
}

/* The one replay both commands run: opens the source (a data directory, or an export
 * audited first), runs credit_replay and reports. */
static int run_replay(const struct replay_cmd *cmd, int argc, char **argv)
{
    struct verify_opts o = { 0 };
    int rc = parse(cmd, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (sodium_init() < 0)
        return cli_fail(cmd->name, "libsodium failed to initialize");
    struct progress_state ps = { 0, cmd->name };
    char evalsets[4096];
    int audit_failed = 0;
    struct replay_options ro = {
        .evalset_file = o.eval_set, .evalset_dir = o.eval_sets, .experiment = o.experiment,
        .artifacts_dir = o.artifacts, .models_only = cmd->models_only,
        .line = print_line, .progress = print_progress, .arg = &ps,
    };
    struct replay_entries src = { 0 };
    struct ledger *l = NULL;
    struct export_reader *xr = NULL;
    char why[1600], payloads[4096], seeds[4096];
    if (o.data_dir) {
        struct ledger_options lo = { .read_only = 1 };
        rc = ledger_open(o.data_dir, &lo, &l);
        if (rc != 0)
            return cli_fail(cmd->name, "cannot open the ledger in %s: %s", o.data_dir,
                            ledger_strerror(rc));
        if ((rc = ledger_size(l, &src.size)) != 0) {
            ledger_close(l);
            return cli_fail(cmd->name, "cannot read the ledger size in %s: %s", o.data_dir,
                            ledger_strerror(rc));
        }
        src.get = ledger_get_cb;
        src.arg = l;
        ro.data_dir = o.data_dir;
        if (!o.eval_set && !o.eval_sets && !cmd->models_only) {
            snprintf(evalsets, sizeof evalsets, "%s/evalsets", o.data_dir);
            ro.evalset_dir = evalsets;
        }
        printf("ledger %s: %" PRIu64 " entries (their hashes and signatures: aulac ledger verify "
               "--data-dir %s)\n", o.data_dir, src.size, o.data_dir);
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/entries.jsonl", o.export_dir);
        fprintf(stderr, "aulac %s: reading %s\n", cmd->name, path);
        rc = export_open(path, &xr, why, sizeof why);
        if (rc != 0) {
            printf("ledger export %s: FAILED: %s\n", path, why);
            return 1;
        }
        struct export_audit a;
        rc = export_audit(xr, &a, why, sizeof why);
        if (rc != 0 && cmd->models_only) {
            /* The replay does not trust the entries either: it still names the rounds
             * whose recorded hashes the payloads do not give. */
            printf("ledger export %s: FAILED its audit: %s; replaying it anyway to name the "
                   "rounds\n", path, why);
            audit_failed = 1;
        } else if (rc != 0) {
            printf("ledger export %s: FAILED: %s\n", path, why);
            export_close(xr);
            return 1;
        }
        char root[65];
        hex_encode(a.root, 32, root);
        if (!audit_failed)
            printf("ledger export %s: OK, %" PRIu64 " entries, root %s; %" PRIu64 " checkpoint(s) "
               "signed by %s (key ID %08x, from the genesis entry) match them; %" PRIu64
               " member signature(s) re-checked\n", path, a.size, root, a.checkpoints, a.key_name,
               (unsigned)a.key_id, a.signatures);
        src.size = export_size(xr);
        src.get = export_get_cb;
        src.arg = xr;
        snprintf(payloads, sizeof payloads, "%s/payloads", o.export_dir);
        ro.payload_dir = payloads;
        snprintf(seeds, sizeof seeds, "%s/dp-seeds", o.export_dir);
        ro.seed_dir = seeds;
    }
    fflush(stdout);
    struct replay_summary sum;
    rc = credit_replay(&src, &ro, &sum, why, sizeof why);
    ledger_close(l);
    export_close(xr);
    if (rc != 0)
        return cli_fail(cmd->name, "%s", why);
    return cmd->models_only ? report_replay(&sum, audit_failed) : report(&sum);
}

int cmd_credits_verify(int argc, char **argv)
{
    return run_replay(&credits_cmd, argc, argv);
}

int cmd_ledger_replay(int argc, char **argv)
{
    return run_replay(&replay_cmd, argc, argv);
}
