/* aulac experiment: propose a policy as an experiment, withdraw it, propose to cancel
 * one, list and show them (policies/GOVERNANCE.md). Motions are signed with the
 * member's key (crypto/motion.h) and sent over signed requests; `show --policy` gives
 * back the proposed file byte for byte from its ledger entry, re-checked here. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/artifact.h"
#include "cli/cli.h"
#include "cli/governance_cli.h"
#include "cli/signed_client.h"
#include "common/hex.h"
#include "common/timeutil.h"
#include "crypto/digest.h"
#include "crypto/motion.h"
#include "ledger/entry.h"
#include "ledger/history.h"
#include "policies/charter.h"
#include "policies/model_source.h"
#include "policies/policy.h"
#include "proto/ledger_client.h"
#include "proto/roster_msg.h"

static const char usage[] =
    "usage: aulac experiment propose FILE [--reason TEXT] [--expires-in DAYS] [--no-upload]\n"
    "                                 CONNECTION\n"
    "       aulac experiment withdraw ID CONNECTION\n"
    "       aulac experiment propose-cancel ID [--reason TEXT] [--expires-in DAYS] CONNECTION\n"
    "       aulac experiment list CONNECTION\n"
    "       aulac experiment show ID [--policy] CONNECTION\n"
    "\n"
    "Experiments run only when the alliance approved them (policies/GOVERNANCE.md):\n"
    "\n"
    "  propose         sign the policy FILE (its exact bytes, checked first as aulac\n"
    "                  policy check does) as an experiment proposal; members with a\n"
    "                  proposer role of the charter (default: researcher) may. The\n"
    "                  files the policy pins (model.init, model.config, model.tokenizer,\n"
    "                  at their paths relative to FILE's directory) are checked first,\n"
    "                  then uploaded once the proposal is filed (the coordinator takes\n"
    "                  only files an open proposal or approved experiment pins), one\n"
    "                  line each (aulac artifact put): an approved experiment starts\n"
    "                  only once the coordinator holds them\n"
    "  withdraw        withdraw your proposal while it is open, or your approved\n"
    "                  experiment before it starts\n"
    "  propose-cancel  propose to cancel an approved experiment (queued or running);\n"
    "                  any member may; its last model and ledger trail stay\n"
    "  list            every proposed experiment: state, proposer, votes, rounds done,\n"
    "                  final model\n"
    "  show            one experiment; with --policy, print the policy exactly as\n"
    "                  proposed, from its ledger entry (its digest and the proposer's\n"
    "                  signature re-checked): aulac experiment show ID --policy > p.yaml\n"
    "                  gives the same file and aulac policy check p.yaml the same hash\n"
    "\n"
    "Members vote with: aulac vote --proposal HASH|ID --yes|--no.\n"
    "ID is an experiment id (NAME-1a2b3c4d) or a proposal hash (64 hex characters).\n"
    "\n"
    "  --reason TEXT       why, signed and recorded with the proposal\n"
    "  --expires-in DAYS   votes close after DAYS (1..30; default: the charter's\n"
    "                      proposal_expiry_days)\n"
    "  --policy            show: print the proposed policy file, nothing else\n"
    "  --no-upload         propose: do not upload the pinned files (someone else does;\n"
    "                      the approved experiment waits for them)\n"
    "\n"
    "CONNECTION:\n" SIGNED_CLIENT_USAGE;

enum { O_REASON = 300, O_EXPIRES, O_POLICY, O_NO_UPLOAD };

/* --- shared with aulac charter and aulac vote (governance_cli.h) ------------------- */

int governance_fetch(struct signed_client *sc, const char *cmd, const uint8_t *only,
                     Aulac__V1__ProposalsReply **out)
{
    Aulac__V1__ProposalsRequest q = AULAC__V1__PROPOSALS_REQUEST__INIT;
    q.member_id = (char *)sc->member;
    q.include_closed = 1;
    if (only) {
        q.proposal_hash.data = (uint8_t *)only;
        q.proposal_hash.len = 32;
    }
    struct rpc_status st = { 0 };
    int rc = fed_list_proposals(sc->fc, &q, out, &st);
    if (rc != 0)
        return cli_fail(cmd, "%s", st.details[0] ? st.details : rpc_strerror(rc));
    return 0;
}

/* The default expiry: the charter in force's proposal_expiry_days. */
static int charter_expiry_days(struct signed_client *sc, const char *cmd, unsigned *days)
{
    Aulac__V1__ProposalsReply *r = NULL;
    if (governance_fetch(sc, cmd, NULL, &r) != 0)
        return 1;
    struct charter ch;
    struct policy_error err;
    const char *text = r->charter ? r->charter : "";
    int rc = charter_load_buffer("the charter in force", text, strlen(text), &ch, &err);
    aulac__v1__proposals_reply__free_unpacked(r, NULL);
    if (rc != 0)
        return cli_fail(cmd, "the coordinator's charter does not read: %s", err.message);
    *days = ch.proposal_expiry_days;
    return 0;
}

int motion_submit(struct signed_client *sc, const char *cmd, struct motion *m, unsigned days,
                  const uint8_t *doc, size_t doc_len, const char *doc_name)
{
    if (days == 0 && charter_expiry_days(sc, cmd, &days) != 0)
        return 1;
    snprintf(m->alliance, sizeof m->alliance, "%.64s", sc->alliance);
    snprintf(m->proposer, sizeof m->proposer, "%s", sc->member);
    m->created_unix_ms = time_now_unix_ms();
    m->expires_unix_ms = m->created_unix_ms + (int64_t)days * 24 * 3600 * 1000;
    if (doc)
        crypto_blake2b256(doc, doc_len, m->document_digest);
    char why[300];
    if (motion_check(m, why, sizeof why) != 0)
        return cli_fail(cmd, "%s", why);
    uint8_t sig[64], hash[32];
    int rc = motion_sign(m, sc->key, sig);
    if (rc == 0)
        rc = motion_hash(m, hash);
    if (rc != 0)
        return cli_fail(cmd, "cannot sign the motion: %s", crypto_strerror(rc));
    Aulac__V1__Motion q;
    motion_to_msg(m, sig, doc, doc_len, doc_name, &q);
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status st = { 0 };
    rc = fed_propose_motion(sc->fc, &q, &r, &st);
    if (rc != 0)
        return cli_fail(cmd, "%s", st.details[0] ? st.details : rpc_strerror(rc));
    if (!r->accepted) {
        if (r->n_errors) {
            for (size_t i = 0; i < r->n_errors; i++)
                fprintf(stderr, "%s\n", r->errors[i]);
            cli_fail(cmd, "the coordinator refused the proposal (above)");
        } else {
            cli_fail(cmd, "the coordinator refused the proposal: %s", r->reason);
        }
        aulac__v1__governance_reply__free_unpacked(r, NULL);
        return 1;
    }
    char hex[65];
    hex_encode(hash, 32, hex);
    printf("proposal %s\nrecorded in the ledger at #%" PRIu64 "\n", hex, r->ledger_index);
    if (r->proposal)
        governance_print_status(stdout, r->proposal);
    if (r->proposal && strcmp(r->proposal->state, "open") == 0)
        printf("members vote with: aulac vote --proposal %s --yes|--no ...\n", hex);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
    return 0;
}

/* --- experiments --------------------------------------------------------------------- */

static int list_experiments(struct signed_client *sc, const char *only,
                            Aulac__V1__ExperimentsReply **out)
{
    Aulac__V1__ExperimentsRequest q = AULAC__V1__EXPERIMENTS_REQUEST__INIT;
    q.member_id = (char *)sc->member;
    q.experiment_id = (char *)(only ? only : "");
    struct rpc_status st = { 0 };
    int rc = fed_list_experiments(sc->fc, &q, out, &st);
    if (rc != 0)
        return cli_fail("experiment", "%s", st.details[0] ? st.details : rpc_strerror(rc));
    return 0;
}

/* The experiment ID names: its id or its proposal hash. *out is freed with the reply. */
static int find_experiment(struct signed_client *sc, const char *id,
                           Aulac__V1__ExperimentsReply **reply,
                           const Aulac__V1__ExperimentStatus **out)
{
    uint8_t hash[32];
    int by_hash = strlen(id) == 64 && hex_decode(id, hash, 32) == 0;
    if (list_experiments(sc, by_hash ? NULL : id, reply) != 0)
        return 1;
    *out = NULL;
    for (size_t i = 0; i < (*reply)->n_experiments; i++) {
        const Aulac__V1__ExperimentStatus *x = (*reply)->experiments[i];
        if (by_hash ? x->proposal_hash.len == 32 && memcmp(x->proposal_hash.data, hash, 32) == 0
                    : strcmp(x->experiment_id, id) == 0)
            *out = x;
    }
    if (!*out)
        return cli_fail("experiment", "no experiment %s is known to the coordinator (aulac "
                        "experiment list shows them)", id);
    return 0;
}

int governance_experiment_hash(struct signed_client *sc, const char *id, uint8_t hash[32])
{
    Aulac__V1__ExperimentsReply *r = NULL;
    const Aulac__V1__ExperimentStatus *x;
    int rc = find_experiment(sc, id, &r, &x);
    if (rc == 0)
        memcpy(hash, x->proposal_hash.data, 32);
    if (r)
        aulac__v1__experiments_reply__free_unpacked(r, NULL);
    return rc;
}

static void short_hex(const ProtobufCBinaryData *b, char out[20])
{
    if (b->len == 32) {
        hex_encode(b->data, 8, out);
        strcat(out, "…");
    } else {
        snprintf(out, 20, "-");
    }
}

static int cmd_list(struct signed_client *sc)
{
    Aulac__V1__ExperimentsReply *r = NULL;
    if (list_experiments(sc, NULL, &r) != 0)
        return 1;
    printf("%-40s %-10s %-10s %-14s %7s  %s\n", "experiment", "state", "proposer",
           "votes", "rounds", "final model");
    for (size_t i = 0; i < r->n_experiments; i++) {
        const Aulac__V1__ExperimentStatus *x = r->experiments[i];
        char votes[40], model[20];
        snprintf(votes, sizeof votes, "%u/%u (%u no)", x->yes, x->needed, x->no);
        short_hex(&x->final_model_hash, model);
        printf("%-40s %-10s %-10s %-14s %7" PRIu64 "  %s\n", x->experiment_id, x->state,
               x->proposer_id, votes, x->rounds_done, model);
    }
    printf("%zu experiment(s)\n", r->n_experiments);
    aulac__v1__experiments_reply__free_unpacked(r, NULL);
    return 0;
}

/* The policy_proposed entry at index, re-checked: its document hashes to its digest,
 * the motion to the proposal hash, and the proposer's roster key verifies it. */
static int fetch_policy(struct signed_client *sc, const Aulac__V1__ExperimentStatus *x,
                        struct entry *e)
{
    struct rpc_channel_options ch;
    client_tls_channel(&sc->tls, &ch);
    struct fed_ledger *lc = NULL;
    Aulac__V1__EntriesPage *page = NULL;
    struct rpc_status st = { 0 };
    int rc = fed_ledger_open(sc->coordinator, &ch, 15000, 0, &lc);
    if (rc == 0)
        rc = fed_get_entries(lc, x->ledger_index, 1, &page, &st);
    fed_ledger_close(lc);
    if (rc != 0)
        return cli_fail("experiment", "cannot read ledger entry #%" PRIu64 ": %s",
                        x->ledger_index, st.details[0] ? st.details : rpc_strerror(rc));
    rc = page->n_entries == 1 ? entry_decode(page->entries[0]->data.data,
                                             page->entries[0]->data.len, e) : -1;
    aulac__v1__entries_page__free_unpacked(page, NULL);
    if (rc != 0 || e->type != ENTRY_POLICY_PROPOSED) {
        if (rc == 0)
            entry_free(e);
        return cli_fail("experiment", "ledger entry #%" PRIu64 " is not a policy proposal",
                        x->ledger_index);
    }
    uint8_t digest[32], hash[32];
    struct motion m;
    Aulac__V1__ProposalsReply *pr = NULL;
    const char *problem = NULL;
    crypto_blake2b256(e->u.motion.document, e->u.motion.document_len, digest);
    if (!crypto_equal(digest, e->u.motion.document_digest, 32))
        problem = "its document does not hash to the signed document digest";
    else if (entry_motion_motion(&e->u.motion, sc->alliance, &m) != 0 ||
             motion_hash(&m, hash) != 0 || x->proposal_hash.len != 32 ||
             !crypto_equal(hash, x->proposal_hash.data, 32))
        problem = "it is not the motion with this proposal hash";
    else if (governance_fetch(sc, "experiment", NULL, &pr) != 0)
        problem = "the roster could not be read";
    if (!problem) {
        const Aulac__V1__RosterMember *pm = NULL;
        for (size_t i = 0; i < pr->n_roster; i++)
            if (strcmp(pr->roster[i]->member_id, m.proposer) == 0)
                pm = pr->roster[i];
        if (!pm || pm->public_key.len != 32 ||
            motion_verify(&m, pm->public_key.data, e->u.motion.signature) != 0)
            problem = "the proposer's signature does not verify with its roster key";
    }
    if (pr)
        aulac__v1__proposals_reply__free_unpacked(pr, NULL);
    if (problem) {
        entry_free(e);
        return cli_fail("experiment", "ledger entry #%" PRIu64 " refused: %s", x->ledger_index,
                        problem);
    }
    return 0;
}

int governance_experiment_policy(struct signed_client *sc, const char *id, uint8_t **doc,
                                 size_t *len)
{
    Aulac__V1__ExperimentsReply *r = NULL;
    const Aulac__V1__ExperimentStatus *x;
    struct entry e;
    int rc = find_experiment(sc, id, &r, &x);
    if (rc == 0 && (rc = fetch_policy(sc, x, &e)) == 0) {
        *doc = e.u.motion.document;   /* taken from the entry */
        *len = e.u.motion.document_len;
        e.u.motion.document = NULL;
        entry_free(&e);
    }
    if (r)
        aulac__v1__experiments_reply__free_unpacked(r, NULL);
    return rc;
}

static int cmd_show(struct signed_client *sc, const char *id, int policy)
{
    Aulac__V1__ExperimentsReply *r = NULL;
    const Aulac__V1__ExperimentStatus *x;
    int rc = find_experiment(sc, id, &r, &x);
    if (rc == 0 && policy) {
        struct entry e;
        rc = fetch_policy(sc, x, &e);
        if (rc == 0) {
            if (fwrite(e.u.motion.document, 1, e.u.motion.document_len, stdout) !=
                e.u.motion.document_len)
                rc = cli_fail("experiment", "cannot write the policy to standard output");
            entry_free(&e);
        }
    } else if (rc == 0) {
        char h[65], ph[65], model[20];
        hex_encode(x->proposal_hash.data, 32, h);
        if (x->policy_hash.len == 32)
            hex_encode(x->policy_hash.data, 32, ph);
        else
            snprintf(ph, sizeof ph, "-");
        short_hex(&x->final_model_hash, model);
        printf("experiment %s\n  state: %s\n  proposer: %s\n  proposal: %s\n  policy hash: %s\n"
               "  votes: %u of %u needed, %u no, %u voter(s); voted:", x->experiment_id,
               x->state, x->proposer_id, h, ph, x->yes, x->needed, x->no, x->voters);
        for (size_t i = 0; i < x->n_voted; i++)
            printf(" %s", x->voted[i]);
        printf("\n  rounds done: %" PRIu64 "\n  final model: %s\n  ledger: proposed at #%" PRIu64,
               x->rounds_done, model, x->ledger_index);
        if (x->decided_index)
            printf(", decided at #%" PRIu64, x->decided_index);
        printf("\n");
        if (x->reason && x->reason[0])
            printf("  reason: %s\n", x->reason);
        if (x->note && x->note[0])
            printf("  note: %s\n", x->note);
    }
    if (r)
        aulac__v1__experiments_reply__free_unpacked(r, NULL);
    return rc;
}

static int cmd_withdraw(struct signed_client *sc, const char *id)
{
    struct withdrawal w = { 0 };
    if (governance_experiment_hash(sc, id, w.proposal_hash) != 0)
        return 1;
    snprintf(w.member, sizeof w.member, "%s", sc->member);
    uint8_t sig[64];
    int rc = withdrawal_sign(&w, sc->key, sig);
    if (rc != 0)
        return cli_fail("experiment", "cannot sign the withdrawal: %s", crypto_strerror(rc));
    Aulac__V1__WithdrawRequest q = AULAC__V1__WITHDRAW_REQUEST__INIT;
    q.proposal_hash.data = w.proposal_hash;
    q.proposal_hash.len = 32;
    q.member_id = w.member;
    q.signature.data = sig;
    q.signature.len = 64;
    Aulac__V1__GovernanceReply *r = NULL;
    struct rpc_status st = { 0 };
    rc = fed_withdraw(sc->fc, &q, &r, &st);
    if (rc != 0)
        return cli_fail("experiment", "%s", st.details[0] ? st.details : rpc_strerror(rc));
    if (!r->accepted)
        rc = cli_fail("experiment", "the coordinator refused the withdrawal: %s", r->reason);
    else
        printf("withdrawn: recorded in the ledger at #%" PRIu64 "\n", r->ledger_index);
    aulac__v1__governance_reply__free_unpacked(r, NULL);
    return rc;
}

/* Uploads the files p pins, found next to the policy file, each checked against its
 * pin first. 0, or 1 with the reason printed. */
/* The pinned files of p next to the policy file, checked before anything is filed
 * (policy_file_next_to: present, and hashing to their pins); uploaded once the proposal
 * is filed (uploading = 1): the coordinator takes only files that an open proposal or
 * an approved experiment pins. 0, or 1 with the reason printed. */
static int pinned_files(struct signed_client *sc, const struct policy *p, const char *file,
                        int uploading)
{
    static const char *const keys[] = { "model.init", "model.config", "model.tokenizer" };
    const struct policy_file *files[] = { &p->model.init, &p->model.config,
                                          &p->model.tokenizer };
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        dir[0] = 0;
    int failed = 0;
    for (size_t i = 0; i < 3; i++) {
        if (!files[i]->present)
            continue;
        char path[4096 + 300], why[600], label[400];
        if (policy_file_next_to(dir, keys[i], files[i], path, sizeof path, why, sizeof why) != 0)
            return cli_fail("experiment", "%s; nothing proposed (give the file, or propose "
                            "with --no-upload when another member uploads it)", why);
        snprintf(label, sizeof label, "%s (%s)", keys[i], files[i]->file);
        if (!uploading) {
            uint8_t got[32];
            int hrc = crypto_blake2b256_file(path, got);
            if (hrc != 0)
                return cli_fail("experiment", "cannot read %s: %s; nothing proposed", path,
                                strerror(-hrc));
            if (memcmp(got, files[i]->blake2b, 32) != 0) {
                char g[65], w[65];
                hex_encode(got, 32, g);
                hex_encode(files[i]->blake2b, 32, w);
                return cli_fail("experiment", "%s: %s has BLAKE2b-256 %s, the policy pins "
                                "%s; nothing uploaded, nothing proposed", label, path, g, w);
            }
            continue;
        }
        if (artifact_upload_file(sc, "experiment", path, label, files[i]->blake2b) != 0) {
            fprintf(stderr, "aulac experiment: the proposal is filed; the experiment waits "
                    "for this file once approved: upload it with aulac artifact put %s\n",
                    path);
            failed = 1;
        }
    }
    return failed;
}

static int cmd_propose(struct signed_client *sc, const char *file, const char *reason,
                       unsigned days, int upload)
{
    uint8_t *doc = NULL;
    size_t len = 0;
    struct policy_error err;
    static struct policy_errors errors;   /* 45 KiB: off the stack */
    struct motion m = { .kind = MOTION_EXPERIMENT };
    if (policy_read_file(file, &doc, &len, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    if (policy_identify_all(file, doc, len, m.content_hash, m.experiment, sizeof m.experiment,
                            &errors) != 0) {
        cli_print_policy_errors(&errors);
        free(doc);
        return 1;
    }
    snprintf(m.reason, sizeof m.reason, "%s", reason);
    printf("experiment %s (policy %s)\n", m.experiment, file);
    struct policy p;
    int have_p = 0;
    if (upload) {
        if (policy_load_buffer(file, doc, len, &p, &err) != 0) {   /* it identified above */
            free(doc);
            return cli_fail("experiment", "%s", err.message);
        }
        have_p = 1;
        if (pinned_files(sc, &p, file, 0) != 0) {   /* all there before anything is filed */
            policy_free(&p);
            free(doc);
            return 1;
        }
    }
    int rc = motion_submit(sc, "experiment", &m, days, doc, len, file);
    free(doc);
    if (rc == 0 && have_p && (p.model.init.present || p.model.config.present ||
                              p.model.tokenizer.present)) {
        printf("uploading the pinned files now that the proposal is filed (the coordinator "
               "takes only files a proposal pins):\n");
        fflush(stdout);
        rc = pinned_files(sc, &p, file, 1);
    }
    if (have_p)
        policy_free(&p);
    return rc;
}

/* --expires-in DAYS: 1..30, or 0 with a message on bad input. */
unsigned governance_parse_days(const char *cmd, const char *arg)
{
    unsigned long long v;
    if (cli_parse_u64(cmd, "--expires-in", arg, &v) != 0)
        return 0;
    if (v < 1 || v > CHARTER_EXPIRY_DAYS_MAX) {
        cli_fail(cmd, "--expires-in must be 1..%d days", CHARTER_EXPIRY_DAYS_MAX);
        return 0;
    }
    return (unsigned)v;
}

int cmd_experiment(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    static const char *const subs[] = { "propose", "withdraw", "propose-cancel", "list",
                                        "show", NULL };
    int which = -1;
    for (int i = 0; subs[i]; i++)
        if (strcmp(sub, subs[i]) == 0)
            which = i;
    if (which < 0)
        return cli_usage_error("experiment", usage, "unknown subcommand '%s'", sub);
    struct signed_client sc = { 0 };
    const char *reason = "";
    unsigned days = 0;
    int policy = 0, upload = 1, ch;
    static const struct option lo[] = {
        SIGNED_CLIENT_OPTIONS,
        { "reason", required_argument, 0, O_REASON },
        { "expires-in", required_argument, 0, O_EXPIRES },
        { "policy", no_argument, 0, O_POLICY }, { "no-upload", no_argument, 0, O_NO_UPLOAD },
        { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc - 1, argv + 1, "h", lo, NULL)) != -1) {
        if (signed_client_option(&sc, ch, optarg))
            continue;
        switch (ch) {
        case O_REASON: reason = optarg; break;
        case O_EXPIRES:
            if ((days = governance_parse_days("experiment", optarg)) == 0)
                return 2;
            break;
        case O_POLICY: policy = 1; break;
        case O_NO_UPLOAD: upload = 0; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    const int want_arg = which != 3;
    int args = argc - 1 - optind;
    if (args != want_arg)
        return cli_usage_error("experiment", usage, want_arg ? "%s needs one %s" :
                               "%s takes no argument", sub, which == 0 ? "FILE" : "ID");
    const char *arg = want_arg ? argv[optind + 1] : NULL;
    if ((reason[0] && which != 0 && which != 2) || (days && which != 0 && which != 2) ||
        (policy && which != 4) || (!upload && which != 0))
        return cli_usage_error("experiment", usage, "an option does not apply to %s", sub);
    if (strlen(reason) > PROPOSAL_REASON_MAX)
        return cli_usage_error("experiment", usage, "--reason is over %d bytes",
                               PROPOSAL_REASON_MAX);
    if (which == 0)
        sc.stream_timeout_ms = 24LL * 3600 * 1000;   /* pinned files of many GiB */
    int rc = signed_client_open(&sc, "experiment", usage);
    if (rc == 0) {
        switch (which) {
        case 0: rc = cmd_propose(&sc, arg, reason, days, upload); break;
        case 1: rc = cmd_withdraw(&sc, arg); break;
        case 2: {
            struct motion m = { .kind = MOTION_CANCEL };
            snprintf(m.experiment, sizeof m.experiment, "%.64s", arg);
            snprintf(m.reason, sizeof m.reason, "%s", reason);
            rc = motion_submit(&sc, "experiment", &m, days, NULL, 0, NULL);
            break;
        }
        case 3: rc = cmd_list(&sc); break;
        default: rc = cmd_show(&sc, arg, policy); break;
        }
    }
    signed_client_close(&sc);
    return rc;
}
