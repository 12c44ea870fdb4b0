/* aulac-worker: a member's trainer. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "policies/site.h"
#include "proto/rpc.h"
#include "worker/health.h"
#include "worker/node_worker.h"
#include "worker/witness.h"
#include "worker/worker.h"

static const char usage[] =
    "usage: aulac-worker --coordinator HOST:PORT --member ID --key FILE --data DIR\n"
    "                    --state-dir DIR [options]\n"
    "\n"
    "Joins the alliance's coordinator as member ID and trains on the private corpus in\n"
    "DIR (any tree of UTF-8 text files; it never leaves this machine). For each round it\n"
    "downloads the base model when needed, trains locally, and uploads a signed,\n"
    "compressed update. It resumes from --state-dir after a restart, and rides out a\n"
    "coordinator restart (it retries every 0.25 s while the coordinator is away).\n"
    "The coordinator runs experiments one after another: the worker stays connected and\n"
    "moves on to the next (starting afresh: nothing of one experiment's replica,\n"
    "optimizer or residual is carried into the next). An experiment that --site refuses,\n"
    "or that does not list this member, it sits out, logging why, and waits for the next.\n"
    "SIGINT/SIGTERM stop it promptly: a wait for a task or the coordinator is cut short\n"
    "at once, a model download at its next chunk; local training stops without sending\n"
    "the round (the built-in trainer after its current step, a plug-in trainer's process\n"
    "group gets SIGTERM, then SIGKILL 5 s later); an upload already under way is finished\n"
    "(not retried); a call under way (Hello, Join: up to 15 s) ends first.\n"
    "Exit status: 0 with --exit-when-idle, its experiment ended and nothing is queued\n"
    "(or --max-rounds reached, or SIGINT/SIGTERM); 1 a local error;\n"
    "2 usage; 3 the coordinator or the site policy refuses; 4 the coordinator's ledger\n"
    "failed a check; 5 the member, or the key it signs with, is no longer in the\n"
    "alliance roster (removed, or key rotated: restart with the new --key).\n"
    "\n"
    "  --coordinator ADDR    the coordinator's gRPC address\n"
    "  --member ID           this member's id in the roster\n"
    "  --key FILE            this member's secret key (mode 0600)\n"
    "  --data DIR            the private corpus\n"
    "  --state-dir DIR       replica, optimizer state and residual (created 0700)\n"
    "  --site FILE           this site's policy (site.yaml): what it agrees to run. With\n"
    "                        governance: {auto_vote: approve-if-allowed} in it, the worker\n"
    "                        also votes for the member on every open experiment proposal\n"
    "                        (checking the proposed policy against the proposer's signed\n"
    "                        hash): yes when the site allows it, no otherwise, logging which\n"
    "                        and the site's reason; cancel and charter proposals are left\n"
    "                        to aulac vote (default auto_vote: never). Its trainer:\n"
    "                        section chooses who trains: builtin (the C GPT-2, the\n"
    "                        default) or command, the member's own program run per\n"
    "                        round through the plug-in protocol (worker/TRAINER.md:\n"
    "                        plan.json in, model.safetensors + metrics.json out, all\n"
    "                        validated; a refused round uploads nothing). A command\n"
    "                        trainer launches its own multi-GPU work: no --nodes\n"
    "  --coordinator-pub F   refuse a coordinator whose key differs from this .pub file\n"
    "  --tls-ca FILE         verify the coordinator's TLS certificate against this CA\n"
    "  --tls-cert FILE       client certificate (mutual TLS)\n"
    "  --tls-key FILE        client certificate key\n"
    "  --tls-server-name N   name expected in the coordinator's certificate\n"
    "  --insecure            plaintext connection (no TLS): loopback tests only\n"
    "  --threads N           CPU threads for training (default: all cores)\n"
    "  --gpus N              train on N local GPUs (CUDA builds)\n"
    "  --eval-windows N      validation windows per evaluation (default 32)\n"
    "  --max-rounds N        leave after N accepted rounds\n"
    "  --exit-when-idle      exit 0 once an experiment has ended (trained or sat out) and\n"
    "                        then no experiment runs and none is queued (default: keep\n"
    "                        waiting for the next experiment)\n"
    "  --connect-timeout S   give up when the coordinator stays unreachable S seconds\n"
    "                        (a follower node: when its leader does)\n"
    "\n"
    "Witnessing (ledger/README.md \"Witnesses\"): the worker cosigns every checkpoint it\n"
    "verified and cross-checks the other members' cosigned checkpoints; a split view (the\n"
    "coordinator showed members different ledgers) stops it with exit 4.\n"
    "  --witnesses FILE      roster file naming the witnesses and their keys (default: the\n"
    "                        members of the ledger's genesis entry)\n"
    "  --witness-quorum N    at first contact (no checkpoint kept in --state-dir), accept\n"
    "                        the ledger only once N other members cosigned checkpoints\n"
    "                        consistent with it (default 1; at most the other witnesses;\n"
    "                        0: do not wait)\n"
    "  --witness-wait S      wait that long for them, then stop with exit 4 (default 300)\n"
    "  --progress MODE       each round's progress (step/steps, tokens/s, loss, ETA, then\n"
    "                        upload bytes sent): tty, a live line rewritten in place;\n"
    "                        plain, log lines (every tenth of the steps or 30 s, and at\n"
    "                        the upload's end); off; auto (default): tty when stderr is a\n"
    "                        terminal, else plain\n"
    "  -v, --verbose         debug logging\n"
    "  -h, --help            this help\n"
    "\n"
    "Several nodes in one member (CUDA builds with GPUs; model/README.md): one worker per\n"
    "node, all with the member's --key and the same --nodes and --gpus. Only the leader\n"
    "talks to the coordinator; followers need neither --coordinator nor --state-dir.\n"
    "  --nodes N             nodes training this member's one replica (default 1)\n"
    "  --node-rank R         this node: 0 the leader (default), 1..N-1 a follower\n"
    "  --node-listen ADDR    leader: where the followers reach it (host:port)\n"
    "  --node-tls-cert FILE  leader: its certificate for the node channel (from the CA)\n"
    "  --node-tls-key FILE   leader: that certificate's key\n"
    "  --leader ADDR         follower: the leader's --node-listen address; its certificate\n"
    "                        is checked against --tls-ca (name: --tls-server-name)\n"
    "  --check-nodes         only check the node channel, TLS and keys (a signed probe from\n"
    "                        the leader to every follower), then exit; needs no GPU\n"
    "\n"
    "Health (container healthchecks, monitoring): a running worker keeps DIR/health in its\n"
    "--state-dir, rewritten as its loop runs (every task poll, training step, transfer\n"
    "chunk and retry; at least every 20 s while it waits for a task; worker/health.h).\n"
    "  --check-health        with --state-dir DIR only: read DIR/health, print one line and\n"
    "                        exit 0 when the worker reported within --health-max-age and the\n"
    "                        coordinator, if away, has been away no longer; 1 otherwise\n"
    "                        (no file, the worker stopped, stuck, or the coordinator gone)\n"
    "  --health-max-age S    seconds, at least 30 (default 120); set it above the time of\n"
    "                        one training step and of a round's evaluation (neither\n"
    "                        reports until it is done)\n";

#ifdef AULAC_TEST_BYZANTINE
/* Only in build/tests/aulac-worker-byzantine (Makefile, -DAULAC_TEST_BYZANTINE); the
 * aulac-worker program has neither the option nor this text (tests/integration/byzantine.sh
 * checks both). */
static const char usage_test_byzantine[] =
    "\n"
    "TEST BUILD (aulac-worker-byzantine, for tests/integration/byzantine.sh only):\n"
    "  --test-byzantine scale=F  train honestly, then multiply every update by F (e.g. -10)\n"
    "                        before compressing, signing and uploading it: a legitimate\n"
    "                        member attacking the average\n";

/* "scale=F" with F finite and not 0: 0 and *scale, or -1 with the reason printed. */
static int parse_test_byzantine(const char *s, float *scale)
{
    char *end;
    if (strncmp(s, "scale=", 6) == 0) {
        float v = strtof(s + 6, &end);
        if (s[6] != 0 && *end == 0 && isfinite(v) && v != 0) {
            *scale = v;
            return 0;
        }
    }
    fprintf(stderr, "aulac-worker-byzantine: --test-byzantine expects scale=F with F a finite "
                    "non-zero number (e.g. scale=-10), got '%s'\n", s);
    return -1;
}
#endif

static void print_usage(FILE *f)
{
    fputs(usage, f);
#ifdef AULAC_TEST_BYZANTINE
    fputs(usage_test_byzantine, f);
#endif
}

static void on_signal(int sig) { (void)sig; worker_request_stop(); }

static int parse_int(const char *flag, const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > hi) {
        fprintf(stderr, "aulac-worker: %s expects an integer in %d..%d, got '%s'\n", flag, lo,
                hi, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    log_set_component("worker");
    rpc_tune_malloc_for_streams();
    struct worker_options o = { .witness_quorum = WITNESS_DEFAULT_QUORUM,
                                .witness_wait_s = WITNESS_DEFAULT_WAIT_S };
    int insecure = 0, tmp, check_health = 0, health_max_age = HEALTH_DEFAULT_MAX_AGE;
    enum { O_COORD = 256, O_MEMBER, O_KEY, O_DATA, O_STATE, O_SITE, O_PUB, O_CA, O_CERT,
           O_TKEY, O_SNAME, O_INSECURE, O_THREADS, O_GPUS, O_EVAL, O_MAXR, O_IDLE, O_CTO,
           O_NODES, O_NRANK, O_NLISTEN, O_NCERT, O_NKEY, O_LEADER, O_CHECK, O_WITNESSES,
           O_WQUORUM, O_WWAIT, O_PROGRESS, O_TEST_BYZANTINE, O_CHECK_HEALTH, O_HEALTH_AGE };
    static const struct option longopts[] = {
        { "coordinator", required_argument, 0, O_COORD },
        { "member", required_argument, 0, O_MEMBER },
        { "key", required_argument, 0, O_KEY },
        { "data", required_argument, 0, O_DATA },
        { "state-dir", required_argument, 0, O_STATE },
        { "site", required_argument, 0, O_SITE },
        { "coordinator-pub", required_argument, 0, O_PUB },
        { "tls-ca", required_argument, 0, O_CA },
        { "tls-cert", required_argument, 0, O_CERT },
        { "tls-key", required_argument, 0, O_TKEY },
        { "tls-server-name", required_argument, 0, O_SNAME },
        { "insecure", no_argument, 0, O_INSECURE },
        { "threads", required_argument, 0, O_THREADS },
        { "gpus", required_argument, 0, O_GPUS },
        { "eval-windows", required_argument, 0, O_EVAL },
        { "max-rounds", required_argument, 0, O_MAXR },
        { "exit-when-idle", no_argument, 0, O_IDLE },
        { "connect-timeout", required_argument, 0, O_CTO },
        { "nodes", required_argument, 0, O_NODES },
        { "node-rank", required_argument, 0, O_NRANK },
        { "node-listen", required_argument, 0, O_NLISTEN },
        { "node-tls-cert", required_argument, 0, O_NCERT },
        { "node-tls-key", required_argument, 0, O_NKEY },
        { "leader", required_argument, 0, O_LEADER },
        { "check-nodes", no_argument, 0, O_CHECK },
        { "witnesses", required_argument, 0, O_WITNESSES },
        { "witness-quorum", required_argument, 0, O_WQUORUM },
        { "witness-wait", required_argument, 0, O_WWAIT },
        { "progress", required_argument, 0, O_PROGRESS },
        { "check-health", no_argument, 0, O_CHECK_HEALTH },
        { "health-max-age", required_argument, 0, O_HEALTH_AGE },
#ifdef AULAC_TEST_BYZANTINE
        { "test-byzantine", required_argument, 0, O_TEST_BYZANTINE },
#endif
        { "verbose", no_argument, 0, 'v' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
        switch (ch) {
        case O_COORD: o.coordinator = optarg; break;
        case O_MEMBER: o.member = optarg; break;
        case O_KEY: o.key_path = optarg; break;
        case O_DATA: o.data_dir = optarg; break;
        case O_STATE: o.state_dir = optarg; break;
        case O_SITE: o.site_path = optarg; break;
        case O_PUB: o.coordinator_pub = optarg; break;
        case O_CA: o.tls_ca = optarg; break;
        case O_CERT: o.tls_cert = optarg; break;
        case O_TKEY: o.tls_key = optarg; break;
        case O_SNAME: o.tls_server_name = optarg; break;
        case O_INSECURE: insecure = 1; break;
        case O_PROGRESS:
            if (progress_mode_parse(optarg, &o.progress) != 0) {
                fprintf(stderr, "aulac-worker: --progress expects auto, tty, plain or off, "
                                "got '%s'\n", optarg);
                return WORKER_EXIT_USAGE;
            }
            break;
        case O_THREADS:
            if (parse_int("--threads", optarg, 0, 1024, &o.threads)) return WORKER_EXIT_USAGE;
            break;
        case O_GPUS:
            if (parse_int("--gpus", optarg, 0, 64, &o.gpus)) return WORKER_EXIT_USAGE;
            break;
        case O_EVAL:
            if (parse_int("--eval-windows", optarg, 1, 1 << 20, &o.eval_windows))
                return WORKER_EXIT_USAGE;
            break;
        case O_IDLE: o.exit_when_idle = 1; break;
        case O_MAXR:
            if (parse_int("--max-rounds", optarg, 1, 1 << 30, &o.max_rounds))
                return WORKER_EXIT_USAGE;
            break;
        case O_CTO:
            if (parse_int("--connect-timeout", optarg, 1, 1 << 30, &tmp))
                return WORKER_EXIT_USAGE;
            o.connect_timeout_ms = (int64_t)tmp * 1000;
            break;
        case O_NODES:
            if (parse_int("--nodes", optarg, 1, 1024, &o.nodes)) return WORKER_EXIT_USAGE;
            break;
        case O_NRANK:
            if (parse_int("--node-rank", optarg, 0, 1023, &o.node_rank)) return WORKER_EXIT_USAGE;
            break;
        case O_NLISTEN: o.node_listen = optarg; break;
        case O_NCERT: o.node_tls_cert = optarg; break;
        case O_NKEY: o.node_tls_key = optarg; break;
        case O_LEADER: o.leader = optarg; break;
        case O_CHECK: o.check_nodes = 1; break;
        case O_CHECK_HEALTH: check_health = 1; break;
        case O_HEALTH_AGE:
            if (parse_int("--health-max-age", optarg, 30, 1 << 24, &health_max_age))
                return WORKER_EXIT_USAGE;
            break;
        case O_WITNESSES: o.witnesses = optarg; break;
        case O_WQUORUM:
            if (parse_int("--witness-quorum", optarg, 0, 256, &o.witness_quorum))
                return 2;
            break;
        case O_WWAIT:
            if (parse_int("--witness-wait", optarg, 0, 1 << 24, &o.witness_wait_s))
                return 2;
            break;
#ifdef AULAC_TEST_BYZANTINE
        case O_TEST_BYZANTINE:
            if (parse_test_byzantine(optarg, &o.test_byzantine_scale))
                return WORKER_EXIT_USAGE;
            break;
#endif
        case 'v': log_set_level(LOG_DEBUG); break;
        case 'h': print_usage(stdout); return 0;
        default: print_usage(stderr); return WORKER_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aulac-worker: unexpected argument '%s'\n%s", argv[optind], usage);
        return WORKER_EXIT_USAGE;
    }
    if (check_health) {   /* reads the running worker's file; connects to nothing */
        if (!o.state_dir) {
            fprintf(stderr, "aulac-worker: --check-health needs --state-dir DIR (the running "
                            "worker's)\n");
            return WORKER_EXIT_USAGE;
        }
        char msg[512];
        int bad = health_check(o.state_dir, health_max_age, msg, sizeof msg);
        puts(msg);
        return bad ? WORKER_EXIT_ERROR : 0;
    }
    o.insecure = insecure;
    /* a follower node never talks to the coordinator; a channel check trains nothing */
    const int follower = o.nodes > 1 && o.node_rank > 0, training = !o.check_nodes;
    const char *missing = !o.coordinator && !follower && training ? "--coordinator"
                        : !o.member ? "--member" : !o.key_path ? "--key"
                        : !o.data_dir && training ? "--data"
                        : !o.state_dir && !follower && training ? "--state-dir" : NULL;
    if (missing) {
        fprintf(stderr, "aulac-worker: %s is required\n%s", missing, usage);
        return WORKER_EXIT_USAGE;
    }
    if (!o.tls_ca && !insecure) {
        fprintf(stderr, "aulac-worker: no --tls-ca given: pass the alliance CA to check the "
                        "coordinator, or --insecure for a plaintext connection\n");
        return WORKER_EXIT_USAGE;
    }
    if (insecure)
        log_warn("connecting without TLS (--insecure)");
#ifdef AULAC_TEST_BYZANTINE
    if (o.test_byzantine_scale != 0)
        log_warn("TEST BUILD: --test-byzantine scale=%g: every update this member sends is "
                 "its honest update multiplied by %g", (double)o.test_byzantine_scale,
                 (double)o.test_byzantine_scale);
#endif
    if (o.nodes > 1 && o.site_path) {
        /* a command trainer launches its own multi-node, multi-GPU training */
        struct site_policy site;
        struct policy_error err;
        if (site_load_file(o.site_path, &site, &err) != 0) {
            log_error("%s", err.message);
            return WORKER_EXIT_ERROR;
        }
        int command = site.trainer.kind == SITE_TRAINER_COMMAND;
        site_policy_free(&site);
        if (command) {
            log_error("--nodes %d: this site trains with a command trainer (%s: trainer.kind "
                      "command), which launches its own multi-node and multi-GPU training; "
                      "run one aulac-worker for the member, without --nodes", o.nodes,
                      o.site_path);
            return WORKER_EXIT_USAGE;
        }
    }
    int pre = node_worker_preflight(&o);
    if (pre != 0)
        return pre;
    struct sigaction sa = { 0 };
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    static struct worker w;
    return worker_run(&w, &o);
}
