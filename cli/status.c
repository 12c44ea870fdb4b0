#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client_tls.h"
#include "common/hex.h"
#include "proto/client.h"
#include "proto/status_json.h"

static const char usage[] =
    "usage: aulac status --coordinator ADDR (--tls-ca FILE [--tls-cert FILE --tls-key FILE]\n"
    "                    | --insecure) [--experiment ID] [--json]\n"
    "\n"
    "Shows the coordinator's experiment (or, with --experiment, any approved one): state (idle, running, finished, cancelled,\n"
    "failed) and round, how many approved experiments wait in its queue, each closed\n"
    "round's participants with their validation and training losses, and each member's\n"
    "contribution (rounds joined, tokens, bytes sent, rejected updates). With differential\n"
    "privacy (PRIVACY.md), the epsilon spent so far at the policy's delta, its budget, and\n"
    "each round's epsilon (as its round_closed ledger entry carries it).\n"
    "\n"
    "  --coordinator ADDR   gRPC address of the coordinator\n"
    "  --experiment ID      an approved experiment other than the current one (queued or\n"
    "                       ended: its state, rounds and last model; aulac experiment list)\n"
    CLIENT_TLS_USAGE
    "  --json               one JSON object instead of tables\n";

/* The reply's JSON object and a newline (proto/status_json.h: the same text the
 * coordinator's /api/v1/status answers). */
static int print_json(const Aulac__V1__StatusReply *r)
{
    struct jsonw w;
    jw_init(&w);
    status_json_write(&w, r);
    jw_raw(&w, "\n");
    size_t len;
    char *text = jw_finish(&w, &len);
    if (!text)
        return cli_fail("status", "out of memory rendering the JSON");
    fwrite(text, 1, len, stdout);
    free(text);
    return 0;
}

/* "512 bytes", "3.4 KiB", "1.2 GiB". */
static void human_bytes(uint64_t n, char *out, size_t cap)
{
    static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
    if (n < 1024) {
        snprintf(out, cap, "%llu bytes", (unsigned long long)n);
        return;
    }
    double v = (double)n / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024;
        u++;
    }
    snprintf(out, cap, "%.1f %s", v, units[u]);
}

static void print_text(const Aulac__V1__StatusReply *r)
{
    char hex[65] = "";
    if (r->model_hash.len == 32)
        hex_encode(r->model_hash.data, 32, hex);
    uint64_t shown = r->round > r->total_rounds ? r->total_rounds : r->round;
    if (!r->experiment_id[0])
        printf("no experiment (%s), %u queued\n", r->state, r->queue_length);
    else
        printf("experiment %s (policy %s): %s, round %" PRIu64 " of %" PRIu64 "; %u queued "
               "after it\n", r->experiment_id, r->policy_name, r->state, shown, r->total_rounds,
               r->queue_length);
    printf("global model %.16s, ledger %" PRIu64 " entries\n", hex, r->ledger_size);
    if (r->waiting && r->waiting[0])
        printf("waiting: %s\n", r->waiting);
    if (r->storage_error && r->storage_error[0])
        printf("STORAGE: %s (the close is retried)\n", r->storage_error);
    if (r->disk) {
        const Aulac__V1__DiskUsage *d = r->disk;
        char tot[32], fr[32], l[32], ck[32], pl[32], ex[32], ar[32], sp[32];
        human_bytes(d->total_bytes, tot, sizeof tot);
        human_bytes(d->free_bytes, fr, sizeof fr);
        human_bytes(d->ledger_bytes, l, sizeof l);
        human_bytes(d->checkpoint_bytes, ck, sizeof ck);
        human_bytes(d->payload_bytes, pl, sizeof pl);
        human_bytes(d->experiment_file_bytes, ex, sizeof ex);
        human_bytes(d->artifact_bytes, ar, sizeof ar);
        human_bytes(d->spool_bytes, sp, sizeof sp);
        printf("disk: data directory %s (ledger %s, checkpoints %s, payloads %s, outer "
               "state and downlink %s, artifacts %s, spool %s); %s free%s\n", tot, l, ck, pl,
               ex, ar, sp, fr, d->low_space ? " - LOW: free space or raise retention" : "");
    }
    if (r->privacy) {
        char budget[64] = "no target epsilon";
        if (r->target_epsilon > 0)
            snprintf(budget, sizeof budget, "target epsilon %g", r->target_epsilon);
        printf("privacy: epsilon %.4g spent at delta %g (noise multiplier %g; %s)\n",
               r->epsilon, r->privacy_delta, r->noise_multiplier, budget);
    }
    printf("\n");
    if (r->n_rounds) {
        printf("%-6s %-8s %-40s %s%s\n", "round", "members", "validation loss of the round's base model", "train loss",
               r->privacy ? "  epsilon" : "");
        for (size_t i = 0; i < r->n_rounds; i++) {
            const Aulac__V1__RoundSummary *s = r->rounds[i];
            char losses[256] = "";
            size_t used = 0;
            for (size_t k = 0; k < s->n_member_losses && used < sizeof losses; k++)
                used += (size_t)snprintf(losses + used, sizeof losses - used, "%s %.3f  ",
                                         s->member_losses[k]->member_id,
                                         s->member_losses[k]->val_loss);
            printf("%-6" PRIu64 " %-8zu %-40s %.4f", s->round, s->n_member_losses, losses,
                   s->mean_train_loss);
            if (r->privacy)
                printf("      %.4g", s->epsilon);
            printf("\n");
        }
        printf("\n");
    }
    printf("%-10s %-28s %8s %12s %14s %9s\n", "member", "organization", "rounds", "tokens",
           "bytes sent", "rejected");
    for (size_t i = 0; i < r->n_members; i++) {
        const Aulac__V1__MemberStatus *m = r->members[i];
        printf("%-10s %-28.28s %8" PRIu64 " %12" PRIu64 " %14" PRIu64 " %9" PRIu64 "\n",
               m->member_id, m->organization, m->rounds_joined, m->tokens, m->bytes_sent,
               m->rejected);
    }
}

int cmd_status(int argc, char **argv)
{
    const char *addr = NULL;
    struct fed_client_options co = { 0 };
    struct client_tls tls = { 0 };
    int json = 0, ch;
    const char *experiment = NULL;
    static const struct option lo[] = {
        { "coordinator", required_argument, 0, 'c' }, CLIENT_TLS_OPTIONS,
        { "experiment", required_argument, 0, 'e' },
        { "json", no_argument, 0, 'j' }, { "help", no_argument, 0, 'h' }, { 0, 0, 0, 0 } };
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (client_tls_option(&tls, ch, optarg))
            continue;
        switch (ch) {
        case 'c': addr = optarg; break;
        case 'j': json = 1; break;
        case 'e': experiment = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!addr)
        return cli_usage_error("status", usage, "--coordinator is required");
    int rc = client_tls_check(&tls, "status", usage);
    if (rc != 0)
        return rc;
    client_tls_channel(&tls, &co.channel);
    struct fed_client *c;
    rc = fed_client_open(addr, &co, &c);
    if (rc != 0)
        return cli_fail("status", "cannot open a channel to %s: %s", addr, rpc_strerror(rc));
    Aulac__V1__StatusRequest q = AULAC__V1__STATUS_REQUEST__INIT;
    q.experiment_id = (char *)(experiment ? experiment : "");
    Aulac__V1__StatusReply *r = NULL;
    struct rpc_status st = { 0 };
    rc = fed_status(c, &q, &r, &st);
    if (rc != 0) {
        fed_client_close(c);
        return cli_fail("status", "%s", st.details[0] ? st.details : rpc_strerror(rc));
    }
    if (json)
        rc = print_json(r);
    else
        print_text(r);
    aulac__v1__status_reply__free_unpacked(r, NULL);
    fed_client_close(c);
    return rc;
}
