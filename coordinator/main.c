/* aulac-coordinator: runs the alliance's approved experiments, one after another. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "coordinator/coord.h"
#include "coordinator/governance.h"

static const char usage[] =
    "usage: aulac-coordinator --data-dir DIR --key FILE --roster FILE [--policy FILE]...\n"
    "                         [options]\n"
    "\n"
    "Runs the alliance's experiments one after another for the members of a roster:\n"
    "announces rounds, verifies and aggregates the members' signed updates, applies the\n"
    "outer optimizer, checkpoints the global model and records everything in the ledger\n"
    "under DIR. Experiments wait in a queue kept in DIR; the next starts when the\n"
    "current one ends. With nothing queued it serves idle. Restarted on the same DIR,\n"
    "it resumes the open round and keeps the queue.\n"
    "\n"
    "  --data-dir DIR        ledger, state, queue and checkpoints (created 0700)\n"
    "  --key FILE            the coordinator's secret key (aulac keygen --id coordinator)\n"
    "  --roster FILE         the alliance roster (YAML)\n"
    "  --policy FILE         file this policy (YAML) as an experiment proposal signed by\n"
    "                        the --operator-key member, unless it was proposed before;\n"
    "                        members then vote on it as on any proposal (aulac vote) and\n"
    "                        it runs once approved; may be given several times (filed in\n"
    "                        that order). Researchers normally use aulac experiment propose\n"
    "  --operator-key FILE   the operator's member secret key that signs --policy proposals\n"
    "                        (the member needs a role the charter lets propose)\n"
    "  --eval-sets DIR       where the evaluation sets that policies name are held\n"
    "                        (contribution.evaluation_set: a file name in DIR, pinned\n"
    "                        by its BLAKE2b-256; default: evalsets/ in the data dir);\n"
    "                        a proposal whose set is missing or differs is refused\n"
    "  --listen ADDR         gRPC address (default 127.0.0.1:7443; port 0 picks one)\n"
    "  --port-file FILE      write the bound port here once serving\n"
    "  --tls-cert FILE       server certificate chain (PEM); with --tls-key enables TLS\n"
    "  --tls-key FILE        server private key (PEM)\n"
    "  --tls-client-ca FILE  verify client certificates against this CA\n"
    "  --require-client-cert mutual TLS: refuse clients without a certificate\n"
    "  --insecure            serve plaintext (no TLS): for loopback tests only\n"
    "  --keep-checkpoints    keep only the current and previous model checkpoints\n"
    "  --max-artifact-bytes N  the largest pinned file (model init, config, tokenizer)\n"
    "                        members may upload, in bytes or with a K, M, G or T suffix\n"
    "                        (powers of 1024; default 64G)\n"
    "  --max-artifact-store-bytes N  all pinned files held together, uploads under way\n"
    "                        included (default 256G); an upload is also refused when it\n"
    "                        would leave less than 1G free on the data directory's disk\n"
    "  --max-uploads N       member updates received at once (default 32; one per member);\n"
    "                        more are refused with \"retry later\"\n"
    "  --upload-free-margin N  free space an update upload must leave on the data\n"
    "                        directory's disk beside those in progress (default 1G)\n"
    "  --max-calls N         concurrent RPCs (default 64); more are refused as busy\n"
    "  --max-unauthenticated-calls N\n"
    "                        of those, calls whose request signature has not verified\n"
    "                        yet (default a quarter of --max-calls): anonymous clients\n"
    "                        never hold the rest\n"
    "  --max-calls-per-peer N  unauthenticated calls from one client address (default 8)\n"
    "                        (addresses where a member signed a call in the last 10\n"
    "                        minutes are exempt from these two limits)\n"
    "  --first-message-timeout S  a call whose first request message has not come\n"
    "                        within S seconds is cancelled (default 10)\n"
    "  --message-timeout S   an upload that sends no next message within S seconds is\n"
    "                        cancelled (default 60)\n"
    "  --memory-quota MIB    memory gRPC may hold for all connections' incoming data\n"
    "                        (default 128); past it, streams are reset\n"
    "  --http ADDR:PORT      serve the read-only HTTP view (dashboard /, JSON /api/v1/...,\n"
    "                        Prometheus /metrics, /healthz, /readyz; coordinator/HTTP.md)\n"
    "                        on ADDR:PORT (off unless given). A loopback address\n"
    "                        (127.0.0.1:8080) may be plain HTTP; any other (0.0.0.0:8080)\n"
    "                        needs TLS (--tls-cert/--tls-key) and --http-token-file or\n"
    "                        --tls-client-ca, else the coordinator refuses to start\n"
    "  --http-token-file FILE  a bearer token (one line, 32+ characters, mode 0600; e.g.\n"
    "                        openssl rand -hex 32): every HTTP request but /healthz and\n"
    "                        /readyz needs 'Authorization: Bearer <token>'\n"
    "  --http-chartjs FILE   Chart.js served as /assets/chart.js (default: Debian's\n"
    "                        libjs-chart.js; absent: the dashboard has no charts)\n"
    "  -v, --verbose         debug logging\n"
    "  -h, --help            this help\n";

/* A whole decimal integer in lo..hi, or a message and -1. */
static int int_option(const char *name, const char *arg, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi) {
        fprintf(stderr, "aulac-coordinator: --%s must be an integer %ld..%ld, not '%s'\n",
                name, lo, hi, arg);
        return -1;
    }
    *out = v;
    return 0;
}

/* "1048576", "512M", "64G": bytes, K/M/G/T powers of 1024; at least 1. */
static int size_option(const char *name, const char *arg, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(arg, &end, 10);
    unsigned shift = 0;
    if (end != arg && *end && !end[1]) {
        const char *units = "KMGT", *u = strchr(units, *end == 'k' ? 'K' : *end);
        if (u) {
            shift = 10u * (unsigned)(u - units + 1);
            end++;
        }
    }
    if (errno || end == arg || *end || arg[0] == '-' || v == 0 || (v << shift) >> shift != v) {
        fprintf(stderr, "aulac-coordinator: --%s must be a size in bytes (a K, M, G or T "
                        "suffix multiplies by powers of 1024), not '%s'\n", name, arg);
        return -1;
    }
    *out = (uint64_t)v << shift;
    return 0;
}

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

int main(int argc, char **argv)
{
    log_set_component("coordinator");
    struct coord_options o = { 0 };
    o.listen_addr = "127.0.0.1:7443";
    o.max_calls = 64;
    int insecure = 0;
    const char *policies[64];
    size_t n_policies = 0;
    enum { O_DATA = 256, O_KEY, O_ROSTER, O_POLICY, O_LISTEN, O_PORTFILE, O_CERT, O_TKEY,
           O_CCA, O_REQ, O_INSECURE, O_KEEP, O_MAXCALLS, O_MAXUNAUTH, O_PERPEER, O_FIRSTMSG,
           O_MSGGAP, O_QUOTA, O_OPKEY, O_EVALSETS, O_HTTP, O_HTTPTOKEN, O_HTTPCHART,
           O_MAXARTIFACT, O_MAXSTORE, O_MAXUPLOADS, O_UPLOADMARGIN };
    static const struct option longopts[] = {
        { "data-dir", required_argument, 0, O_DATA },
        { "key", required_argument, 0, O_KEY },
        { "roster", required_argument, 0, O_ROSTER },
        { "policy", required_argument, 0, O_POLICY },
        { "operator-key", required_argument, 0, O_OPKEY },
        { "eval-sets", required_argument, 0, O_EVALSETS },
        { "listen", required_argument, 0, O_LISTEN },
        { "port-file", required_argument, 0, O_PORTFILE },
        { "tls-cert", required_argument, 0, O_CERT },
        { "tls-key", required_argument, 0, O_TKEY },
        { "tls-client-ca", required_argument, 0, O_CCA },
        { "require-client-cert", no_argument, 0, O_REQ },
        { "insecure", no_argument, 0, O_INSECURE },
        { "keep-checkpoints", no_argument, 0, O_KEEP },
        { "max-artifact-bytes", required_argument, 0, O_MAXARTIFACT },
        { "max-artifact-store-bytes", required_argument, 0, O_MAXSTORE },
        { "max-uploads", required_argument, 0, O_MAXUPLOADS },
        { "upload-free-margin", required_argument, 0, O_UPLOADMARGIN },
        { "max-calls", required_argument, 0, O_MAXCALLS },
        { "max-unauthenticated-calls", required_argument, 0, O_MAXUNAUTH },
        { "max-calls-per-peer", required_argument, 0, O_PERPEER },
        { "first-message-timeout", required_argument, 0, O_FIRSTMSG },
        { "message-timeout", required_argument, 0, O_MSGGAP },
        { "memory-quota", required_argument, 0, O_QUOTA },
        { "http", required_argument, 0, O_HTTP },
        { "http-token-file", required_argument, 0, O_HTTPTOKEN },
        { "http-chartjs", required_argument, 0, O_HTTPCHART },
        { "verbose", no_argument, 0, 'v' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int ch;
    long v = 0;
    while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (ch) {
        case O_DATA: o.data_dir = optarg; break;
        case O_KEY: o.key_path = optarg; break;
        case O_ROSTER: o.roster_path = optarg; break;
        case O_POLICY:
            if (n_policies == sizeof policies / sizeof policies[0]) {
                fprintf(stderr, "aulac-coordinator: at most %zu --policy files\n",
                        sizeof policies / sizeof policies[0]);
                return 2;
            }
            policies[n_policies++] = optarg;
            break;
        case O_OPKEY: o.operator_key_path = optarg; break;
        case O_EVALSETS: o.eval_sets_dir = optarg; break;
        case O_LISTEN: o.listen_addr = optarg; break;
        case O_PORTFILE: o.port_file = optarg; break;
        case O_CERT: o.tls_cert = optarg; break;
        case O_TKEY: o.tls_key = optarg; break;
        case O_CCA: o.tls_client_ca = optarg; break;
        case O_REQ: o.require_client_cert = 1; break;
        case O_INSECURE: insecure = 1; break;
        case O_KEEP: o.keep_checkpoints = 1; break;
        case O_MAXARTIFACT:
            if (size_option("max-artifact-bytes", optarg, &o.max_artifact_bytes) != 0)
                return 2;
            break;
        case O_MAXSTORE:
            if (size_option("max-artifact-store-bytes", optarg,
                            &o.max_artifact_store_bytes) != 0)
                return 2;
            break;
        case O_MAXUPLOADS:
            if (int_option("max-uploads", optarg, 1, 10000, &v) != 0)
                return 2;
            o.max_uploads = (int)v;
            break;
        case O_UPLOADMARGIN:
            if (size_option("upload-free-margin", optarg, &o.upload_free_margin_bytes) != 0)
                return 2;
            break;
        case O_MAXCALLS:
            if (int_option("max-calls", optarg, 1, 10000, &v) != 0)
                return 2;
            o.max_calls = (int)v;
            break;
        case O_MAXUNAUTH:
            if (int_option("max-unauthenticated-calls", optarg, 1, 10000, &v) != 0)
                return 2;
            o.max_unauthenticated_calls = (int)v;
            break;
        case O_PERPEER:
            if (int_option("max-calls-per-peer", optarg, 1, 10000, &v) != 0)
                return 2;
            o.max_calls_per_peer = (int)v;
            break;
        case O_FIRSTMSG:
            if (int_option("first-message-timeout", optarg, 1, 3600, &v) != 0)
                return 2;
            o.first_message_ms = (int)v * 1000;
            break;
        case O_MSGGAP:
            if (int_option("message-timeout", optarg, 1, 3600, &v) != 0)
                return 2;
            o.message_gap_ms = (int)v * 1000;
            break;
        case O_QUOTA:
            if (int_option("memory-quota", optarg, 16, 1 << 20, &v) != 0)
                return 2;
            o.memory_quota_bytes = (size_t)v << 20;
            break;
        case O_HTTP: o.http_listen = optarg; break;
        case O_HTTPTOKEN: o.http_token_file = optarg; break;
        case O_HTTPCHART: o.http_chartjs = optarg; break;
        case 'v': log_set_level(LOG_DEBUG); break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aulac-coordinator: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }
    const char *missing = !o.data_dir ? "--data-dir" : !o.key_path ? "--key"
                        : !o.roster_path ? "--roster" : NULL;
    if (missing) {
        fprintf(stderr, "aulac-coordinator: %s is required\n%s", missing, usage);
        return 2;
    }
    o.policy_paths = policies;
    o.n_policy_paths = n_policies;
    if (n_policies > 0 && !o.operator_key_path) {
        fprintf(stderr, "aulac-coordinator: --policy files an experiment proposal, which a "
                        "member signs: give --operator-key MEMBER.key (the operator's member "
                        "key), or let a researcher propose it with aulac experiment propose\n");
        return 2;
    }
    if (o.operator_key_path && n_policies == 0) {
        fprintf(stderr, "aulac-coordinator: --operator-key only signs --policy proposals; "
                        "give --policy FILE too\n");
        return 2;
    }
    if (o.max_unauthenticated_calls > o.max_calls) {
        fprintf(stderr, "aulac-coordinator: --max-unauthenticated-calls (%d) cannot exceed "
                        "--max-calls (%d)\n", o.max_unauthenticated_calls, o.max_calls);
        return 2;
    }
    if (!o.tls_cert != !o.tls_key) {
        fprintf(stderr, "aulac-coordinator: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if ((o.http_token_file || o.http_chartjs) && !o.http_listen) {
        fprintf(stderr, "aulac-coordinator: --http-token-file and --http-chartjs configure "
                        "the HTTP view: give --http ADDR:PORT too\n");
        return 2;
    }
    if (!o.tls_cert && !insecure) {
        fprintf(stderr, "aulac-coordinator: no TLS certificate given: pass --tls-cert and "
                        "--tls-key, or --insecure to serve plaintext on a trusted network\n");
        return 2;
    }
    if (insecure)
        log_warn("serving without TLS (--insecure): anyone on the network path can read the "
                 "traffic; member signatures still protect every update");

    struct sigaction sa = { 0 };
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct coord c;
    int rc = coord_open(&c, &o);
    if (rc == 0)
        rc = coord_serve(&c);
    if (rc != 0) {
        log_error("cannot start: %s", coord_strerror(rc));
        coord_close(&c);
        return 1;
    }
    while (!stop_requested)
        usleep(100 * 1000);
    log_info("stopping");
    coord_close(&c);
    return 0;
}
