/* bench/scale: a real coordinator under N simulated members (bench/README.md, "Scale").
 *
 * Sets up an alliance in a run directory with the aulac CLI found next to this program
 * (keys, roster, a TLS CA and the coordinator's certificate, as scripts/demo.sh), writes
 * a policy of the chosen model size listing N members, starts aulac-coordinator on it
 * (TLS on loopback) and drives it with N member threads over real gRPC/TLS, each on its
 * own connection, signing every request with its own key. The members vote for the
 * policy, join, and for R rounds: long-poll GetTask, download the whole model (all N at
 * once), make a synthetic pseudo-gradient (seeded from the member and the round), compress
 * it with the real codec and the round's uplink (codec_encode with the member's
 * error-feedback residual, decayed as the worker does), sign the update envelope and
 * upload it with fed_submit_update (all N at once). Nobody trains.
 *
 * The phases of a round are separated by barriers, so that each figure is measured
 * while nothing else runs: download, the raw baselines, encoding (the tool's own CPU),
 * upload, round close. It prints, per round and in a summary: the coordinator's peak
 * RSS (VmHWM) and per-phase RSS, updates accepted per second, the coordinator's CPU time
 * (utime + stime from /proc) per update over the upload phase and over the close, the
 * round close time (last receipt to the first member's next task), the model download
 * throughput and the CPU it costs each side against raw loopback copies of the same
 * bytes to N receivers at once (the best of three copies; bench/lib/loopback_copy.c): in
 * plain TCP, and with TLS in OpenSSL's TLS 1.3 with the suite the coordinator negotiates
 * (what TLS itself costs on this machine), and the growth of the data directory.
 * Members download as the worker does: each chunk's data copied once from what gRPC
 * received, member 0's into its replica (fed_download_model_into), with the worker's
 * allocator setting (rpc_tune_malloc_for_streams). Members retry an upload that fails
 * in transport, as the worker does. The last line is "RESULT key=value ..." for
 * scripts (scripts/bench-scale.sh, tests/integration/scale_smoke.sh).
 *
 * Exit status: 0 every update accepted; 1 an error or a refused update; 3 the
 * coordinator died (killed by the kernel's OOM killer, typically): the figures measured
 * until then are printed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/lib/loopback_copy.h"
#include "codec/codec.h"
#include "crypto/digest.h"
#include "crypto/envelope.h"
#include "crypto/keys.h"
#include "crypto/proposal.h"
#include "model/model_hash.h"
#include "policies/plan.h"
#include "policies/policy.h"
#include "proto/client.h"
#include "proto/service.h"
#include "proto/update_msg.h"

#define MAX_MEMBERS 256
#define TASK_WAIT_MS 2000
#define UPLOAD_ATTEMPTS 5

/* --- options ----------------------------------------------------------------------- */

struct options {
    int members, rounds, keep, jobs, dense_warmup;   /* dense_warmup -1: the template's */
    const char *model;            /* tiny | 124m | 1b */
    const char *bin;              /* where aulac and aulac-coordinator are */
    const char *run_dir;          /* NULL: a new directory under $TMPDIR */
    const char *residuals;        /* auto | ram | file */
    double delta_std;             /* per-coordinate std of the synthetic pseudo-gradient */
    int quiet;
    int plaintext;                /* no TLS (to tell TLS's share of the download cost) */
    int downloads;                /* whole-model downloads per member per round (>= 1) */
};

static void usage(FILE *f)
{
    fprintf(f,
"usage: bench/scale [--members N] [--model tiny|124m|1b] [--rounds R] [options]\n"
"\n"
"Starts aulac-coordinator (TLS on loopback) in a fresh alliance and drives it with N\n"
"simulated members over real gRPC: each votes for the policy, joins, and every round\n"
"downloads the whole model (all at once), makes a seeded synthetic pseudo-gradient,\n"
"compresses it with the round's uplink codec and its error-feedback residual, signs the\n"
"update envelope and uploads it (all at once). Nobody trains. Prints the coordinator's\n"
"peak RSS (and over the model's fp32 bytes), updates accepted per second, coordinator\n"
"CPU time per update, round close time, download throughput (and CPU per GB at each end)\n"
"against raw loopback copies of the same bytes to N receivers (best of three each): plain\n"
"TCP, and, with TLS, a bare OpenSSL TLS 1.3 stream with the suite the coordinator\n"
"negotiates; and the data directory's growth per round; then one line RESULT key=value\n"
"... for scripts.\n"
"\n"
"  --members N       simulated members (default 4, at most %d)\n"
"  --model M         tiny (tests/integration/lib.sh's 1-layer policy), 124m\n"
"                    (policies/examples/gpt2-124m-diloco.yaml: 124,439,808 parameters)\n"
"                    or 1b (the same recipe, GPT-2 shaped: 18 layers of width 2048,\n"
"                    1,011,476,480 parameters) (default tiny)\n"
"  --rounds R        rounds (default 2)\n"
"  --dense-warmup K  rounds whose uplink is dense (default: for 124m and 1b the example\n"
"                    policy's 2, at most rounds - 1 so that one round is top-k; tiny: 0)\n"
"  --delta-std S     std of the synthetic pseudo-gradient per coordinate, scaled per\n"
"                    4096-block by a log-normal factor (default 0.002: a DiLoCo round's\n"
"                    change; 124m's update L2 norm ~25, under the policy's norm_cap)\n"
"  --jobs J          members encoding at once (default 2; fewer when memory is short)\n"
"  --residuals W     where the members' error-feedback residuals live: ram, file (a\n"
"                    shared mapping of a file in the run directory, for more members\n"
"                    than this machine's RAM holds) or auto (ram when they take under a\n"
"                    quarter of MemAvailable) (default auto)\n"
"  --bin DIR         where aulac and aulac-coordinator are (default: the directory\n"
"                    above this program's, i.e. the build directory)\n"
"  --run-dir DIR     use DIR (must not exist) instead of a new temporary directory\n"
"  --plaintext       no TLS (coordinator --insecure; no raw TLS copy either): to tell\n"
"                    TLS's share of the costs\n"
"  --downloads K     each member downloads the model K times in a row in each round's\n"
"                    download phase; the throughput is over all K (a steadier figure\n"
"                    on a busy machine) (default 1)\n"
"  --keep            leave the run directory (keys, policy, coordinator data and log)\n"
"  --quiet           no progress lines (the results only)\n"
"  -h, --help        this help\n"
"\n"
"Exit status: 0 every update accepted; 1 an error or a refused update; 3 the coordinator\n"
"died during the run (e.g. killed by the OOM killer): the figures until then are printed.\n",
            MAX_MEMBERS);
}

/* --- small helpers ----------------------------------------------------------------- */

static struct options opt;

/* Seconds on a clock: CLOCK_MONOTONIC (now_s) or CLOCK_PROCESS_CPUTIME_ID (self_cpu_s:
 * this process's CPU time, all its threads). */
static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }
static double self_cpu_s(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (opt.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "scale: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static double mb(double bytes) { return bytes / 1e6; }

/* Runs argv[0] with argv, its output appended to log_path; 0 when it exited 0. */
static int run_cmd(char *const argv[], const char *log_path)
{
    pid_t p = fork();
    if (p < 0)
        return -1;
    if (p == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(p, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    int ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static uint64_t du_total;
static int du_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path; (void)type; (void)ftw;
    du_total += (uint64_t)sb->st_blocks * 512;
    return 0;
}
/* Bytes allocated on disk under dir (du): st_blocks of every file and directory. */
static uint64_t du(const char *dir)
{
    du_total = 0;
    nftw(dir, du_cb, 32, FTW_PHYS);
    return du_total;
}

static int rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb; (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}
static void rm_rf(const char *dir) { nftw(dir, rm_cb, 32, FTW_DEPTH | FTW_PHYS); }

/* A field "Name:   value kB" of /proc/pid/status, in bytes; 0 when unreadable. */
static uint64_t proc_status_kb(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    uint64_t v = 0;
    size_t nl = strlen(name);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
            v = strtoull(line + nl + 1, NULL, 10) * 1024;
            break;
        }
    fclose(f);
    return v;
}

/* utime + stime of pid in seconds; -1 when unreadable. */
static double proc_cpu_s(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime(15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    uint64_t v = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "MemAvailable:", 13) == 0)
            v = strtoull(line + 13, NULL, 10) * 1024;
    if (f)
        fclose(f);
    return v;
}

/* --- the run ----------------------------------------------------------------------- */

enum phase { PH_SETUP, PH_DOWNLOAD, PH_BASELINE, PH_ENCODE, PH_UPLOAD, PH_CLOSE, PH_COUNT };
static const char *phase_name[PH_COUNT] = { "setup", "download", "baseline", "encode",
                                            "upload", "close" };

struct member {
    int idx;
    char id[16];
    pthread_t th;
    struct crypto_key *key;
    struct fed_client *cl;
    float *residual;            /* n floats: anonymous or a shared file mapping */
    /* this round */
    uint64_t round;
    uint8_t base[32];
    double t_task;              /* when the round's task came */
    uint64_t dl_bytes;
    char payload_path[PATH_MAX];
    size_t payload_len;
    uint8_t payload_hash[32];
    double norm;                /* L2 norm of the dense synthetic pseudo-gradient */
    double t_receipt;
    int accepted;
    char reason[256];
    int retries;                /* upload attempts that failed in transport and were retried */
    char retry_why[600];        /* the first such failure */
    int failed;
    char why[512];
};

struct bench {
    char dir[1024];            /* the run directory (checked to fit) */
    char addr[64];
    pid_t coord;
    struct policy policy;
    uint8_t policy_hash[32];
    char experiment[CRYPTO_ID_MAX + 1];
    size_t n;                   /* parameters */
    uint64_t model_bytes;
    uint8_t *model0;             /* member 0's replica: it downloads into it (pre-faulted) */
    char tls_version[16], tls_suite[64];   /* what the coordinator negotiates ("" plaintext) */
    struct member *m;
    pthread_barrier_t bar;
    sem_t enc_sem;
    atomic_int abort;           /* a member failed or the coordinator died */
    /* the coordinator, watched by the sampler */
    atomic_int phase;
    atomic_int coord_dead;      /* 1 once it has exited */
    int coord_status;           /* its wait status */
    int coord_died_phase, coord_died_round;
    atomic_int round_now;
    uint64_t (*rss_max)[PH_COUNT];  /* [round][phase]: VmRSS seen (sampled every 20 ms) */
    uint64_t (*anon_max)[PH_COUNT]; /* the same of RssAnon (the rest is mapped files:
                                       LMDB's map, where uploads are stored) */
    uint64_t hwm;               /* last VmHWM read */
    pthread_mutex_t mu;
    atomic_int stop_sampler;
};
static struct bench B;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench/scale: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (B.coord > 0 && !B.coord_dead) {
        kill(B.coord, SIGKILL);
        waitpid(B.coord, NULL, 0);
    }
    if (B.dir[0])
        fprintf(stderr, "bench/scale: the run directory %s is left for a look (coordinator.log)\n",
                B.dir);
    exit(1);
}

static void *sampler(void *arg)
{
    (void)arg;
    while (!B.stop_sampler) {
        int st;
        if (!B.coord_dead) {
            pid_t r = waitpid(B.coord, &st, WNOHANG);
            if (r == B.coord) {
                B.coord_status = st;
                B.coord_died_phase = B.phase;
                B.coord_died_round = B.round_now;
                B.coord_dead = 1;
                B.abort = 1;
            } else {
                uint64_t rss = proc_status_kb(B.coord, "VmRSS");
                uint64_t anon = proc_status_kb(B.coord, "RssAnon");
                uint64_t hwm = proc_status_kb(B.coord, "VmHWM");
                pthread_mutex_lock(&B.mu);
                int ph = B.phase, r = B.round_now;
                if (r >= 0 && r <= opt.rounds + 1 && rss > B.rss_max[r][ph])
                    B.rss_max[r][ph] = rss;
                if (r >= 0 && r <= opt.rounds + 1 && anon > B.anon_max[r][ph])
                    B.anon_max[r][ph] = anon;
                if (hwm > B.hwm)
                    B.hwm = hwm;
                pthread_mutex_unlock(&B.mu);
            }
        }
        usleep(20000);
    }
    return NULL;
}

static void sync_all(void) { pthread_barrier_wait(&B.bar); }

/* Main's barriers, counted: a run that aborts meets the members' remaining ones. */
static int main_synced;
static void main_sync(void)
{
    sync_all();
    main_synced++;
}

static void member_fail(struct member *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void member_fail(struct member *x, const char *fmt, ...)
{
    if (!x->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->why, sizeof x->why, fmt, ap);
        va_end(ap);
        x->failed = 1;
        if (!B.coord_dead)
            fprintf(stderr, "bench/scale: member %s: %s\n", x->id, x->why);
    }
    B.abort = 1;
}

static int transient(const struct rpc_status *st)
{
    return st->code == GRPC_STATUS_UNAVAILABLE || st->code == GRPC_STATUS_RESOURCE_EXHAUSTED ||
           st->code == GRPC_STATUS_UNAUTHENTICATED || st->code == GRPC_STATUS_DEADLINE_EXCEEDED;
}

/* Hello (retried while the coordinator is busy: many members connect at once), the
 * votes for every open proposal, and Join until the experiment runs. */
static int member_setup(struct member *x)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/keys/%s.key", B.dir, x->id);
    int rc = crypto_key_load(path, &x->key);
    if (rc != 0) {
        member_fail(x, "cannot load %s: %s", path, crypto_strerror(rc));
        return -1;
    }
    char ca[PATH_MAX];
    snprintf(ca, sizeof ca, "%s/tls/ca.pem", B.dir);
    struct fed_client_options co = { 0 };
    co.channel.tls_ca_file = opt.plaintext ? NULL : ca;
    co.channel.own_connection = 1;   /* a member's own TCP connection, as a real worker */
    co.identity = x->key;
    co.call_timeout_ms = 60000;
    if ((rc = fed_client_open(B.addr, &co, &x->cl)) != 0) {
        member_fail(x, "cannot open a channel to %s: %s", B.addr, rpc_strerror(rc));
        return -1;
    }
    /* The round-0 model is made, hashed and written before the experiment runs: 120 s,
     * plus 100 s per GB of model (the 1b model on a loaded machine takes minutes). */
    const double wait_s = 120 + (double)B.model_bytes / 1e7;
    double give_up = now_s() + wait_s;
    for (;;) {   /* Hello */
        Aulac__V1__HelloRequest q = AULAC__V1__HELLO_REQUEST__INIT;
        q.client_version = "bench/scale";
        q.member_id = x->id;
        Aulac__V1__HelloReply *r = NULL;
        struct rpc_status st = { 0 };
        rc = fed_hello(x->cl, &q, &r, &st);
        if (rc == 0) {
            aulac__v1__hello_reply__free_unpacked(r, NULL);
            break;
        }
        if (!transient(&st) || now_s() > give_up || B.abort) {
            member_fail(x, "Hello: %s", st.details[0] ? st.details : rpc_strerror(rc));
            return -1;
        }
        usleep(100000 + (useconds_t)(x->idx % 8) * 25000);
    }
    for (int voted = 0; !voted;) {   /* votes */
        Aulac__V1__ProposalsRequest q = AULAC__V1__PROPOSALS_REQUEST__INIT;
        q.member_id = x->id;
        Aulac__V1__ProposalsReply *r = NULL;
        struct rpc_status st = { 0 };
        rc = fed_list_proposals(x->cl, &q, &r, &st);
        if (rc != 0) {
            if (!transient(&st) || now_s() > give_up || B.abort) {
                member_fail(x, "ListProposals: %s", st.details[0] ? st.details : rpc_strerror(rc));
                return -1;
            }
            usleep(200000);
            continue;
        }
        for (size_t i = 0; i < r->n_proposals; i++) {
            const Aulac__V1__ProposalStatus *ps = r->proposals[i];
            if (!ps->motion || !ps->state || strcmp(ps->state, "open") != 0 ||
                ps->proposal_hash.len != 32)
                continue;
            struct roster_vote v = { 0 };
            memcpy(v.proposal_hash, ps->proposal_hash.data, 32);
            snprintf(v.voter, sizeof v.voter, "%s", x->id);
            v.approve = 1;
            uint8_t sig[CRYPTO_SIGNATURE_BYTES];
            if (vote_sign(&v, x->key, sig) != 0) {
                member_fail(x, "cannot sign a vote");
                aulac__v1__proposals_reply__free_unpacked(r, NULL);
                return -1;
            }
            Aulac__V1__VoteRequest vq = AULAC__V1__VOTE_REQUEST__INIT;
            vq.proposal_hash.data = v.proposal_hash;
            vq.proposal_hash.len = 32;
            vq.voter_id = x->id;
            vq.approve = 1;
            vq.signature.data = sig;
            vq.signature.len = sizeof sig;
            Aulac__V1__GovernanceReply *gr = NULL;
            struct rpc_status vst = { 0 };
            /* a refusal (the proposer's own vote, a vote after the quorum) is fine */
            if (fed_vote(x->cl, &vq, &gr, &vst) == 0)
                aulac__v1__governance_reply__free_unpacked(gr, NULL);
        }
        aulac__v1__proposals_reply__free_unpacked(r, NULL);
        voted = 1;
    }
    for (;;) {   /* Join until the experiment runs */
        Aulac__V1__JoinRequest q = AULAC__V1__JOIN_REQUEST__INIT;
        q.member_id = x->id;
        Aulac__V1__JoinReply *r = NULL;
        struct rpc_status st = { 0 };
        rc = fed_join(x->cl, &q, &r, &st);
        if (rc != 0) {
            if (!transient(&st) || now_s() > give_up || B.abort) {
                member_fail(x, "Join: %s", st.details[0] ? st.details : rpc_strerror(rc));
                return -1;
            }
            usleep(200000);
            continue;
        }
        int ok = r->accepted && r->experiment_id && r->experiment_id[0];
        if (ok) {
            if (r->policy_hash.len != 32 || memcmp(r->policy_hash.data, B.policy_hash, 32) != 0) {
                member_fail(x, "the coordinator runs experiment %s with another policy than "
                            "the bench wrote", r->experiment_id);
                aulac__v1__join_reply__free_unpacked(r, NULL);
                return -1;
            }
            pthread_mutex_lock(&B.mu);
            snprintf(B.experiment, sizeof B.experiment, "%s", r->experiment_id);
            pthread_mutex_unlock(&B.mu);
        } else if (!r->accepted) {
            member_fail(x, "Join refused: %s", r->reason);
            aulac__v1__join_reply__free_unpacked(r, NULL);
            return -1;
        }
        aulac__v1__join_reply__free_unpacked(r, NULL);
        if (ok)
            return 0;
        if (now_s() > give_up || B.abort) {
            member_fail(x, "no experiment runs after %.0f s (the votes did not approve it?)",
                        wait_s);
            return -1;
        }
        usleep(200000);
    }
}

/* Long-polls for round `want` (after_round want - 1): 0 with the task's fields in x, 1
 * when the experiment finished, -1 on failure. */
static int member_task(struct member *x, uint64_t want)
{
    double give_up = now_s() + 3600;
    for (;;) {
        if (B.abort)
            return -1;
        Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
        q.member_id = x->id;
        q.experiment_id = B.experiment;
        q.after_round = want - 1;
        q.have_round = want > 1;
        q.wait_ms = TASK_WAIT_MS;
        Aulac__V1__Task *t = NULL;
        struct rpc_status st = { 0 };
        int rc = fed_get_task(x->cl, &q, &t, &st);
        if (rc != 0) {
            if (!transient(&st) || now_s() > give_up) {
                member_fail(x, "GetTask: %s", st.details[0] ? st.details : rpc_strerror(rc));
                return -1;
            }
            usleep(100000);
            continue;
        }
        int out = 2;
        if (t->kind == AULAC__V1__TASK__KIND__FINISHED) {
            out = 1;
        } else if (t->kind == AULAC__V1__TASK__KIND__TRAIN && t->round == want &&
                   t->base_model_hash.len == 32) {
            memcpy(x->base, t->base_model_hash.data, 32);
            x->round = t->round;
            out = 0;
        } else if (t->kind == AULAC__V1__TASK__KIND__TRAIN && t->round > want) {
            member_fail(x, "the coordinator announces round %" PRIu64 " while the member "
                        "waits for round %" PRIu64, t->round, want);
            out = -1;
        }
        aulac__v1__task__free_unpacked(t, NULL);
        if (out != 2) {
            x->t_task = now_s();
            return out;
        }
    }
}

struct dl_ctx {
    struct member *x;
    uint64_t bytes, total;
};

static int check_chunk(const Aulac__V1__ModelChunk *ch, struct dl_ctx *d)
{
    if (ch->is_update || ch->total_bytes != B.model_bytes)
        return 1;   /* the bench asks for the whole model */
    d->total = ch->total_bytes;
    d->bytes += ch->data.len;
    return B.abort ? 1 : 0;
}

static int on_chunk(const Aulac__V1__ModelChunk *ch, void *arg)
{
    return check_chunk(ch, arg);
}

/* Member 0's chunks go straight into its replica (B.model0), as a worker's do. */
static uint8_t *chunk_dest(const Aulac__V1__ModelChunk *ch, void *arg)
{
    return check_chunk(ch, arg) == 0 ? B.model0 + ch->offset : NULL;
}

/* The whole model of the round, each chunk's data copied once from what gRPC received,
 * as the worker does: member 0 into its replica B.model0 (its hash is checked after the
 * timed phase, member_check_model: the raw baseline's receivers do no more than receive
 * either, so both figures are the transport's), the others into the client's chunk
 * buffer. */
static void member_download(struct member *x)
{
    struct dl_ctx d = { .x = x };
    Aulac__V1__ModelRequest q = AULAC__V1__MODEL_REQUEST__INIT;
    q.member_id = x->id;
    q.experiment_id = B.experiment;
    q.model_hash.data = x->base;
    q.model_hash.len = 32;
    struct rpc_status st = { 0 };
    int rc = x->idx == 0 ? fed_download_model_into(x->cl, &q, chunk_dest, NULL, &d, &st)
                         : fed_download_model(x->cl, &q, on_chunk, &d, &st);
    x->dl_bytes = d.bytes;
    if (rc != 0) {
        member_fail(x, "DownloadModel: %s", st.details[0] ? st.details : rpc_strerror(rc));
        return;
    }
    if (d.bytes != B.model_bytes) {
        member_fail(x, "downloaded %" PRIu64 " bytes; the model has %" PRIu64, d.bytes,
                    B.model_bytes);
        return;
    }
}

/* Member 0, after the download phase: its replica hashes to the task's base model. */
static void member_check_model(struct member *x)
{
    struct crypto_digest_state h;
    uint8_t got[32];
    crypto_digest_init(&h, MODEL_HASH_DOMAIN);
    crypto_digest_update(&h, B.model0, B.model_bytes);
    crypto_digest_final(&h, got);
    if (memcmp(got, x->base, 32) != 0)
        member_fail(x, "the downloaded model does not hash to the task's base model");
}

/* splitmix64 */
static uint64_t mix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The synthetic pseudo-gradient of member x in round r: per 4096-block a scale
 * delta_std * exp(0.5 z) (z standard normal: some blocks move more, as layers do), times
 * an approximately normal value per coordinate (the sum of four uniform 16-bit draws,
 * standardised). Seeded from the member index and the round. Returns its L2 norm. */
static double make_delta(float *d, size_t n, int member, uint64_t r)
{
    uint64_t s = 0x5ca1ab1eULL ^ ((uint64_t)member << 32) ^ (r * 0x9e3779b97f4a7c15ULL);
    const double k = 1.0 / (65536.0 * sqrt(4.0 / 12.0));
    double sum2 = 0;
    for (size_t b = 0; b < n; b += 4096) {
        double u1 = ((double)(mix64(&s) >> 11) + 0.5) / 9007199254740992.0;
        double u2 = (double)(mix64(&s) >> 11) / 9007199254740992.0;
        double z = sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
        const float scale = (float)(opt.delta_std * exp(0.5 * z) * k);
        size_t e = b + 4096 < n ? b + 4096 : n;
        double bs = 0;
        for (size_t i = b; i < e; i++) {
            uint64_t v = mix64(&s);
            int32_t sum = (int32_t)(v & 0xffff) + (int32_t)((v >> 16) & 0xffff) +
                          (int32_t)((v >> 32) & 0xffff) + (int32_t)(v >> 48) - 2 * 65535;
            float f = scale * (float)sum;
            d[i] = f;
            bs += (double)f * f;
        }
        sum2 += bs;
    }
    return sqrt(sum2);
}

/* Encodes x's round-r update as the worker does (residual decayed, codec_encode with
 * error feedback), writes it to payloads/<id>.bin. */
static void member_encode(struct member *x, const struct policy_round_plan *plan)
{
    sem_wait(&B.enc_sem);
    float *d = B.abort ? NULL : malloc(B.n * sizeof(float));
    uint8_t *payload = NULL;
    size_t len = 0;
    int rc = -1;
    if (d) {
        x->norm = make_delta(d, B.n, x->idx, x->round);
        const struct codec_params *cp = &plan->uplink;
        codec_residual_decay(cp, x->residual, B.n, plan->error_feedback_decay);
        rc = codec_encode(d, B.n, cp, cp->error_feedback ? x->residual : NULL, &payload, &len);
        if (rc != 0)
            member_fail(x, "codec_encode: %s", codec_strerror(rc));
    } else if (!B.abort) {
        member_fail(x, "out of memory for the pseudo-gradient (%zu floats)", B.n);
    }
    free(d);
    sem_post(&B.enc_sem);
    if (rc != 0) {
        free(payload);
        return;
    }
    crypto_blake2b256(payload, len, x->payload_hash);
    x->payload_len = len;
    snprintf(x->payload_path, sizeof x->payload_path, "%s/payloads/%s.bin", B.dir, x->id);
    int fd = open(x->payload_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t off = 0;
    while (fd >= 0 && off < len) {
        ssize_t w = write(fd, payload + off, len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (fd < 0 || off != len || close(fd) != 0)
        member_fail(x, "cannot write %s", x->payload_path);
    free(payload);
}

/* fed_submit_update, retried as the worker retries (worker/worker.c) when the call
 * fails in transport (UNAVAILABLE: the connection was reset; RESOURCE_EXHAUSTED: gRPC's
 * memory quota reset the stream): at most UPLOAD_ATTEMPTS attempts, 0.25 s apart and
 * doubling. Each retry is counted in x->retries, the first failure kept in
 * x->retry_why. */
static int submit_with_retries(struct member *x, const Aulac__V1__UpdateHeader *h,
                               const uint8_t *payload, Aulac__V1__Receipt **r,
                               struct rpc_status *st)
{
    int rc = 0;
    for (int attempt = 1, wait_ms = 250;; attempt++, wait_ms *= 2) {
        *st = (struct rpc_status){ 0 };
        rc = fed_submit_update(x->cl, h, payload, x->payload_len, 0, r, st);
        int transport = st->code == GRPC_STATUS_UNAVAILABLE ||
                        st->code == GRPC_STATUS_RESOURCE_EXHAUSTED;
        if (rc == 0 || !transport || attempt == UPLOAD_ATTEMPTS)
            return rc;
        if (!x->retries++)
            snprintf(x->retry_why, sizeof x->retry_why, "%s",
                     st->details[0] ? st->details : rpc_strerror(rc));
        usleep((useconds_t)wait_ms * 1000);
    }
}

/* Signs the envelope and uploads the payload (mapped from its file). */
static void member_upload(struct member *x, const struct policy_round_plan *plan)
{
    x->accepted = 0;
    x->t_receipt = 0;
    int fd = open(x->payload_path, O_RDONLY);
    const uint8_t *payload = fd >= 0 ? mmap(NULL, x->payload_len, PROT_READ, MAP_SHARED, fd, 0)
                                     : MAP_FAILED;
    if (fd >= 0)
        close(fd);
    if (payload == MAP_FAILED) {
        member_fail(x, "cannot map %s", x->payload_path);
        return;
    }
    struct update_envelope e = { 0 };
    snprintf(e.experiment, sizeof e.experiment, "%s", B.experiment);
    snprintf(e.member, sizeof e.member, "%s", x->id);
    e.round = x->round;
    memcpy(e.base_model_hash, x->base, 32);
    memcpy(e.payload_hash, x->payload_hash, 32);
    e.payload_bytes = x->payload_len;
    e.samples = (uint64_t)plan->local_steps * plan->batch_size;
    e.tokens = e.samples * plan->seq_len;
    update_envelope_set_codec(&e, &plan->uplink);
    uint8_t sig[CRYPTO_SIGNATURE_BYTES];
    if (envelope_sign(&e, x->key, sig) != 0) {
        member_fail(x, "cannot sign the update envelope");
        munmap((void *)payload, x->payload_len);
        return;
    }
    Aulac__V1__CodecParams hc;
    Aulac__V1__UpdateHeader h;
    update_envelope_to_msg(&e, sig, &h, &hc);
    /* synthetic losses: nobody trained (the coordinator only averages and shows them) */
    h.train_loss = 3.0f + 0.01f * (float)x->idx;
    h.val_loss = 3.1f + 0.01f * (float)x->idx;
    Aulac__V1__Receipt *r = NULL;
    struct rpc_status st = { 0 };
    int rc = submit_with_retries(x, &h, payload, &r, &st);
    x->t_receipt = now_s();
    munmap((void *)payload, x->payload_len);
    if (rc != 0) {
        member_fail(x, "SubmitUpdate of round %" PRIu64 ": %s", x->round,
                    st.details[0] ? st.details : rpc_strerror(rc));
        return;
    }
    /* a retry of an update whose first attempt got through: accepted then */
    x->accepted = r->accepted || (r->duplicate && r->accepted_index > 0);
    if (!x->accepted) {   /* the round would wait for its deadline: the run stops */
        snprintf(x->reason, sizeof x->reason, "%s", r->reason ? r->reason : "");
        member_fail(x, "round %" PRIu64 " update refused: %s", x->round, x->reason);
    }
    aulac__v1__receipt__free_unpacked(r, NULL);
}

static struct policy_round_plan *plans;   /* [rounds + 1], 1-based */

/* One member: every phase of every round between the barriers main waits on too. A
 * member that failed (or whose run aborted) still meets every barrier. */
static void *member_main(void *arg)
{
    struct member *x = arg;
    if (member_setup(x) != 0)
        B.abort = 1;
    sync_all();   /* all joined */
    for (int r = 1; r <= opt.rounds; r++) {
        if (!B.abort && !x->failed) {
            int t = member_task(x, (uint64_t)r);
            if (t == 1)
                member_fail(x, "the experiment finished before round %d", r);
        }
        sync_all();   /* (A) every member has round r's task */
        sync_all();   /* (B) download */
        for (int k = 0; k < opt.downloads && !B.abort; k++)
            member_download(x);
        sync_all();   /* (C) downloaded; main measures the raw baseline */
        sync_all();   /* (D) encode */
        if (!B.abort && !x->failed && x->idx == 0)
            member_check_model(x);
        if (!B.abort)
            member_encode(x, &plans[r]);
        sync_all();   /* (E) encoded */
        sync_all();   /* (F) upload */
        if (!B.abort)
            member_upload(x, &plans[r]);
        sync_all();   /* (G) uploaded */
    }
    if (!B.abort && !x->failed) {   /* the last close: the experiment's end */
        int t = member_task(x, (uint64_t)opt.rounds + 1);
        if (t == 0)
            member_fail(x, "round %d runs after the last round", opt.rounds + 1);
    }
    sync_all();
    return NULL;
}

/* --- the baselines ----------------------------------------------------------------- */

/* A raw copy's best: bytes per second and CPU seconds per GB at both ends (-1, -1: not
 * measured, or every copy failed). */
struct baseline {
    double rate, cpu_gb;
};

/* The same bytes (B.model0, the model member 0 downloaded) copied over loopback to
 * opt.members receivers at once (bench/lib/loopback_copy.c), in plain TCP, or in TLS
 * with the coordinator's certificate and the suite it negotiated (B.tls_suite): the
 * best of three copies, so that a slow moment of the machine never flatters the ratio. */
static struct baseline best_copy(int tls)
{
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX], err[512];
    snprintf(cert, sizeof cert, "%s/tls/coordinator.pem", B.dir);
    snprintf(key, sizeof key, "%s/tls/coordinator.key", B.dir);
    snprintf(ca, sizeof ca, "%s/tls/ca.pem", B.dir);
    struct loopback_tls t = { cert, key, ca, B.tls_suite };
    struct baseline best = { -1, -1 };
    for (int k = 0; k < 3; k++) {
        struct loopback_result r;
        if (loopback_copy(B.model0, B.model_bytes, opt.members, tls ? &t : NULL, &r, err,
                          sizeof err) != 0) {   /* the run goes on: the baseline is missing */
            fprintf(stderr, "bench/scale: the loopback %s copy %d of 3 failed: %s\n",
                    tls ? "TLS" : "TCP", k + 1, err);
            continue;
        }
        if (r.bytes_per_s > best.rate)
            best = (struct baseline){ r.bytes_per_s,
                                      r.cpu_s / ((double)B.model_bytes * opt.members / 1e9) };
    }
    return best;
}

/* The baselines over the rounds they were measured in: the download rates of those
 * rounds, the baselines' rates and CPU per GB, summed, and how many. */
struct baseline_sum {
    double dl, rate, cpu_gb;
    int n;
};

static void baseline_add(struct baseline_sum *s, double download_rate, const struct baseline *b)
{
    if (b->rate <= 0)
        return;
    s->dl += download_rate;
    s->rate += b->rate;
    s->cpu_gb += b->cpu_gb;
    s->n++;
}

/* A rate in MB/s ("1916"), or "-" when it was not measured. */
static const char *rate_mb(char *buf, size_t cap, double bytes_per_s)
{
    if (bytes_per_s > 0)
        snprintf(buf, cap, "%.0f", mb(bytes_per_s));
    else
        snprintf(buf, cap, "-");
    return buf;
}

/* "74 %", or "-" when whole was not measured. */
static const char *pct(char *buf, size_t cap, double part, double whole)
{
    if (whole > 0)
        snprintf(buf, cap, "%.0f %%", 100 * part / whole);
    else
        snprintf(buf, cap, "-");
    return buf;
}

/* --- set-up ------------------------------------------------------------------------ */

struct model_shape {
    const char *name;
    int vocab, positions, layers, heads, embd;
    int deadline_s;
};

static const struct model_shape shapes[] = {
    /* tests/integration/lib.sh write_policy's model */
    { "tiny", 256, 32, 1, 2, 32, 120 },
    /* policies/examples/gpt2-124m-diloco.yaml */
    { "124m", 50257, 1024, 12, 12, 768, 5400 },
    /* GPT-2 shaped: L (12 d^2 + 13 d) + (V + P) d + 2 d = 1,011,476,480 parameters */
    { "1b", 50257, 1024, 18, 16, 2048, 5400 },
};

/* The policy: for 124m and 1b the example policy's recipe (local steps, batch, inner and
 * outer optimizer, clip aggregation, 1 % top-k int8 uplink with its dense warm-up, fp16
 * downlink, deadline); for tiny, tests/integration/lib.sh's. Every member is listed; the
 * round closes when all have reported. */
static void write_policy(const struct model_shape *s, const char *path)
{
    char members[MAX_MEMBERS * 8] = "";
    for (int i = 0; i < opt.members; i++) {
        char one[16];
        snprintf(one, sizeof one, "%sm%03d", i ? ", " : "", i + 1);
        strcat(members, one);
    }
    int min_members = opt.members > 1 ? (opt.members * 2 + 2) / 3 : 1;
    char text[16384];
    if (strcmp(s->name, "tiny") == 0) {
        snprintf(text, sizeof text,
"schema: 1\n"
"metadata: { name: scale-tiny, proposer: m001 }\n"
"model: { family: gpt2, vocab_size: %d, n_positions: %d, n_layer: %d, n_head: %d, n_embd: %d, seed: 7 }\n"
"data: { min_tokens_per_member: 1000, validation_fraction: 0.1 }\n"
"training:\n"
"  rounds: %d\n"
"  local_steps: 12\n"
"  batch_size: 4\n"
"  seq_len: 32\n"
"  inner: { kind: adamw, lr: 0.005, weight_decay: 0.0, beta1: 0.9, beta2: 0.95, grad_clip: 1.0 }\n"
"  outer: { kind: nesterov, lr: 0.4, momentum: 0.9 }\n"
"aggregation: { rule: fedavg, weighting: tokens }\n"
"compression:\n"
"  uplink: { method: topk, block_size: 256, k_per_block: 32, quant: int8, zstd_level: 3, error_feedback: true, dense_warmup_rounds: %d }\n"
"  downlink: { method: topk, block_size: 256, k_per_block: 128, quant: int8, zstd_level: 3, error_feedback: true }\n"
"participation: { members: [%s], min_members: %d, round_deadline_s: %d, grace_s: 1 }\n",
                 s->vocab, s->positions, s->layers, s->heads, s->embd, opt.rounds,
                 opt.dense_warmup < 0 ? 0 : opt.dense_warmup, members, min_members,
                 s->deadline_s);
    } else {
        snprintf(text, sizeof text,
"schema: 1\n"
"metadata:\n"
"  name: scale-%s\n"
"  proposer: m001\n"
"model:\n"
"  family: gpt2\n"
"  vocab_size: %d\n"
"  n_positions: %d\n"
"  n_layer: %d\n"
"  n_head: %d\n"
"  n_embd: %d\n"
"  seed: 20240601\n"
"data:\n"
"  min_tokens_per_member: 2000000000\n"
"  validation_fraction: 0.005\n"
"training:\n"
"  rounds: %d\n"
"  local_steps: 500\n"
"  batch_size: 64\n"
"  seq_len: 1024\n"
"  inner: { kind: adamw, lr: 6.0e-4, weight_decay: 0.1, beta1: 0.9, beta2: 0.95, eps: 1.0e-8, grad_clip: 1.0, warmup_steps: %d }\n"
"  outer: { kind: nesterov, lr: 0.4, momentum: 0.9 }\n"
"aggregation: { rule: clip, weighting: tokens, norm_bound: 50.0, norm_cap: 500.0 }\n"
"compression:\n"
"  uplink: { method: topk, block_size: 4096, density: 0.01, quant: int8, zstd_level: 3, error_feedback: true, dense_warmup_rounds: %d }\n"
"  downlink: { method: none, quant: fp16, zstd_level: 1, error_feedback: true }\n"
"participation: { members: [%s], min_members: %d, round_deadline_s: %d, grace_s: 300 }\n",
                 s->name, s->vocab, s->positions, s->layers, s->heads, s->embd, opt.rounds,
                 /* the example's 1000, within the experiment's inner steps */
                 opt.rounds * 500 > 1000 ? 1000 : opt.rounds * 250,
                 /* the example's 2, leaving at least one top-k round */
                 opt.dense_warmup >= 0 ? opt.dense_warmup : opt.rounds > 2 ? 2 : opt.rounds - 1, members, min_members,
                 s->deadline_s);
    }
    if (write_file(path, text) != 0)
        die("cannot write %s: %s", path, strerror(errno));
}

/* Keys, roster (m001 also researcher; a charter whose experiment quorum every member's
 * vote meets), the TLS CA and the coordinator's certificate, with the aulac CLI. */
static void make_alliance(const char *aulac)
{
    char keys[PATH_MAX], roster[PATH_MAX], log[PATH_MAX], tls[PATH_MAX], pub[PATH_MAX];
    snprintf(keys, sizeof keys, "%s/keys", B.dir);
    snprintf(roster, sizeof roster, "%s/roster.yaml", B.dir);
    snprintf(log, sizeof log, "%s/setup.log", B.dir);
    snprintf(tls, sizeof tls, "%s/tls", B.dir);
    char *kc[] = { (char *)aulac, "keygen", "--id", "coordinator", "--dir", keys, NULL };
    if (run_cmd(kc, log) != 0)
        die("aulac keygen failed (%s)", log);
    for (int i = 0; i < opt.members; i++) {
        char *id = B.m[i].id, org[64];
        snprintf(org, sizeof org, "Org %s", id);
        char *k[] = { (char *)aulac, "keygen", "--id", id, "--dir", keys, NULL };
        snprintf(pub, sizeof pub, "%s/keys/%s.pub", B.dir, id);
        char *ra[] = { (char *)aulac, "roster", "add", "--roster", roster, "--alliance",
                       "scale-bench", "--pub", pub, "--organization", org, "--roles",
                       i == 0 ? "member,researcher" : "member", NULL };
        if (run_cmd(k, log) != 0 || run_cmd(ra, log) != 0)
            die("aulac keygen / roster add for %s failed (%s)", id, log);
    }
    FILE *f = fopen(roster, "a");
    if (!f || fputs("charter:\n  quorum: { roster: 0.66, experiments: 0.67, charter: 0.75 }\n"
                    "  proposers: [researcher]\n", f) < 0 || fclose(f) != 0)
        die("cannot append the charter to %s", roster);
    char *ti[] = { (char *)aulac, "tls", "init", "--dir", tls, "--name", "scale-bench", NULL };
    char *tc[] = { (char *)aulac, "tls", "issue", "--ca-dir", tls, "--name", "coordinator",
                   "--server", "--dns", "localhost", "--ip", "127.0.0.1", NULL };
    if (run_cmd(ti, log) != 0 || run_cmd(tc, log) != 0)
        die("aulac tls init / issue failed (%s)", log);
}

static void start_coordinator(const char *coordinator)
{
    char data[PATH_MAX], key[PATH_MAX], roster[PATH_MAX], policy[PATH_MAX], op[PATH_MAX],
        port[PATH_MAX], cert[PATH_MAX], tkey[PATH_MAX], log[PATH_MAX], calls[16];
    snprintf(data, sizeof data, "%s/coordinator", B.dir);
    snprintf(key, sizeof key, "%s/keys/coordinator.key", B.dir);
    snprintf(roster, sizeof roster, "%s/roster.yaml", B.dir);
    snprintf(policy, sizeof policy, "%s/policy.yaml", B.dir);
    snprintf(op, sizeof op, "%s/keys/m001.key", B.dir);
    snprintf(port, sizeof port, "%s/port", B.dir);
    snprintf(cert, sizeof cert, "%s/tls/coordinator.pem", B.dir);
    snprintf(tkey, sizeof tkey, "%s/tls/coordinator.key", B.dir);
    snprintf(log, sizeof log, "%s/coordinator.log", B.dir);
    /* every member long-polls and streams at once: room for all of them, twice */
    snprintf(calls, sizeof calls, "%d", opt.members * 2 + 16 > 64 ? opt.members * 2 + 16 : 64);
    char *argv[] = { (char *)coordinator, "--data-dir", data, "--key", key, "--roster", roster,
                     "--policy", policy, "--operator-key", op, "--listen", "127.0.0.1:0",
                     "--port-file", port, "--tls-cert", cert, "--tls-key", tkey,
                     "--max-calls", calls, NULL, NULL };
    if (opt.plaintext) {   /* in place of --tls-cert CERT --tls-key KEY */
        argv[15] = "--insecure";
        argv[16] = "--max-calls";
        argv[17] = calls;
        argv[18] = NULL;
    }
    pid_t p = fork();
    if (p < 0)
        die("fork: %s", strerror(errno));
    if (p == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        /* When memory runs out (the 1b row on a small machine), the kernel's OOM killer
         * takes the coordinator first, not a bystander: it is what the run measures. */
        int oom = open("/proc/self/oom_score_adj", O_WRONLY);
        if (oom >= 0) {
            if (write(oom, "1000", 4) != 4) {
                /* (the default score applies) */
            }
            close(oom);
        }
        execv(coordinator, argv);
        _exit(127);
    }
    B.coord = p;
    for (int i = 0; i < 600; i++) {
        FILE *f = fopen(port, "r");
        int pn = 0;
        if (f) {
            if (fscanf(f, "%d", &pn) != 1)
                pn = 0;
            fclose(f);
        }
        if (pn > 0) {
            snprintf(B.addr, sizeof B.addr, "127.0.0.1:%d", pn);
            return;
        }
        int st;
        if (waitpid(p, &st, WNOHANG) == p) {
            B.coord_dead = 1;
            die("the coordinator exited at start-up (%s)", log);
        }
        usleep(100000);
    }
    die("the coordinator did not serve within 60 s (%s)", log);
}

/* What the coordinator's TLS negotiates (B.tls_version, B.tls_suite): the raw TLS copy
 * uses the same suite. gRPC's own client gets the same from it: both sides use OpenSSL's
 * default TLS 1.3 suites. */
static void probe_tls(void)
{
    char ca[PATH_MAX], err[512];
    snprintf(ca, sizeof ca, "%s/tls/ca.pem", B.dir);
    const char *colon = strrchr(B.addr, ':');
    if (!colon || loopback_tls_probe(atoi(colon + 1), ca, B.tls_version, sizeof B.tls_version,
                                     B.tls_suite, sizeof B.tls_suite, err, sizeof err) != 0)
        die("cannot tell the coordinator's TLS suite: %s", colon ? err : B.addr);
    if (strcmp(B.tls_version, "TLSv1.3") != 0)   /* the bare TLS copy speaks TLS 1.3 only */
        die("the coordinator negotiated %s (%s), not TLSv1.3", B.tls_version, B.tls_suite);
    say("the coordinator negotiates %s with %s", B.tls_version, B.tls_suite);
}

/* --- main -------------------------------------------------------------------------- */

struct round_result {
    int done, dense;
    double dl_s, dl_cpu, enc_s, up_s, up_cpu, close_s, close_cpu;
    double dl_members_cpu;          /* this process's CPU over the download (the members') */
    struct baseline tcp, tls;       /* the raw copies (tls in plaintext: -1, not measured) */
    uint64_t payload_bytes;   /* all members' */
    int accepted;
    int retries;              /* upload attempts failed in transport and retried */
    uint64_t disk_before, disk_after;
    double norm;
};

/* 1 when the kernel log (dmesg, where readable) says the OOM killer took pid. */
static int oom_killed(pid_t pid)
{
    FILE *f = popen("dmesg 2>/dev/null", "r");
    if (!f)
        return 0;
    char line[1024], want[64];
    snprintf(want, sizeof want, "Killed process %d ", (int)pid);
    int hit = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, want) && strstr(line, "Out of memory"))
            hit = 1;
    pclose(f);
    return hit;
}

static const char *describe_death(int st, char *buf, size_t cap)
{
    if (WIFSIGNALED(st))
        snprintf(buf, cap, "killed by signal %d%s", WTERMSIG(st),
                 WTERMSIG(st) != SIGKILL ? ""
                 : oom_killed(B.coord) ? " by the kernel's OOM killer (dmesg: Out of memory)"
                                       : " (the OOM killer, most likely; dmesg does not say)");
    else
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(st));
    return buf;
}

/* Bytes the coordinator serves in a round's download phase. */
static double served_bytes(void)
{
    return (double)opt.downloads * opt.members * (double)B.model_bytes;
}

/* The download phase's figures, against the raw copies of the same bytes. */
static void report_download(int r, const struct round_result *q)
{
    double served_gb = served_bytes() / 1e9, dl_rate = served_bytes() / q->dl_s;
    char times[32] = "", tls[256] = "", p1[16], p2[16], r1[16], r2[16];
    if (opt.downloads > 1)
        snprintf(times, sizeof times, ", %d times in a row", opt.downloads);
    say("round %d: download %d x %.1f MB at once%s in %.2f s = %.0f MB/s; CPU s per GB served: "
        "coordinator %.2f, members %.2f", r, opt.members, mb((double)B.model_bytes), times,
        q->dl_s, mb(dl_rate), q->dl_cpu / served_gb, q->dl_members_cpu / served_gb);
    if (!opt.plaintext)
        snprintf(tls, sizeof tls, "; TLS (OpenSSL, %s %s): %s MB/s (download %s of it), "
                 "%.2f CPU s per GB", B.tls_version, B.tls_suite,
                 rate_mb(r1, sizeof r1, q->tls.rate),
                 pct(p1, sizeof p1, dl_rate, q->tls.rate), q->tls.cpu_gb);
    say("round %d: raw loopback copies of the same bytes to %d receiver%s, best of 3 each, "
        "both ends' CPU: TCP %s MB/s (download %s of it), %.2f CPU s per GB%s", r,
        opt.members, opt.members == 1 ? "" : "s", rate_mb(r2, sizeof r2, q->tcp.rate),
        pct(p2, sizeof p2, dl_rate, q->tcp.rate), q->tcp.cpu_gb, tls);
}

int main(int argc, char **argv)
{
    /* The N members share this process, and while they encode no call of theirs reads
     * their connections: gRPC's backup poller does, one connection's event per poll,
     * every 5 s by default. 32 idle members then answered the coordinator's keepalive
     * pings too late (it closes a connection whose ping goes unanswered for
     * RPC_KEEPALIVE_TIMEOUT_MS, 20 s), and their uploads met closed connections. A
     * worker holds one connection. Before gRPC starts (its first channel). */
    setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", 0);
    rpc_tune_malloc_for_streams();   /* the members download as workers do */
    opt = (struct options){ .members = 4, .rounds = 2, .jobs = 2, .dense_warmup = -1,
                            .model = "tiny", .residuals = "auto", .delta_std = 0.002,
                            .downloads = 1 };
    static const struct option lo[] = {
        { "members", required_argument, 0, 'n' }, { "model", required_argument, 0, 'm' },
        { "rounds", required_argument, 0, 'r' }, { "dense-warmup", required_argument, 0, 'w' },
        { "delta-std", required_argument, 0, 's' }, { "jobs", required_argument, 0, 'j' },
        { "residuals", required_argument, 0, 'e' }, { "bin", required_argument, 0, 'b' },
        { "run-dir", required_argument, 0, 'd' }, { "keep", no_argument, 0, 'k' },
        { "quiet", no_argument, 0, 'q' }, { "plaintext", no_argument, 0, 'p' },
        { "downloads", required_argument, 0, 'D' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'n': opt.members = atoi(optarg); break;
        case 'm': opt.model = optarg; break;
        case 'r': opt.rounds = atoi(optarg); break;
        case 'w': opt.dense_warmup = atoi(optarg); break;
        case 's': opt.delta_std = atof(optarg); break;
        case 'j': opt.jobs = atoi(optarg); break;
        case 'e': opt.residuals = optarg; break;
        case 'b': opt.bin = optarg; break;
        case 'd': opt.run_dir = optarg; break;
        case 'k': opt.keep = 1; break;
        case 'q': opt.quiet = 1; break;
        case 'p': opt.plaintext = 1; break;
        case 'D': opt.downloads = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || opt.members < 1 || opt.members > MAX_MEMBERS || opt.rounds < 1 ||
        opt.rounds > 1000 || opt.jobs < 1 || !(opt.delta_std > 0) || opt.downloads < 1 ||
        opt.downloads > 100 ||
        (strcmp(opt.residuals, "auto") && strcmp(opt.residuals, "ram") &&
         strcmp(opt.residuals, "file"))) {
        usage(stderr);
        return 2;
    }
    const struct model_shape *shape = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (strcmp(opt.model, shapes[i].name) == 0)
            shape = &shapes[i];
    if (!shape) {
        fprintf(stderr, "bench/scale: --model %s: use tiny, 124m or 1b\n", opt.model);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (crypto_init() != 0)
        die("libsodium does not initialise");

    /* where the programs are */
    char bin[PATH_MAX], aulac[PATH_MAX + 16], coordinator[PATH_MAX + 32];
    if (opt.bin) {
        snprintf(bin, sizeof bin, "%s", opt.bin);
    } else {
        ssize_t l = readlink("/proc/self/exe", bin, sizeof bin - 1);
        if (l <= 0)
            die("cannot read /proc/self/exe: give --bin");
        bin[l] = 0;
        for (int up = 0; up < 2; up++) {
            char *s = strrchr(bin, '/');
            if (s)
                *s = 0;
        }
    }
    snprintf(aulac, sizeof aulac, "%s/aulac", bin);
    snprintf(coordinator, sizeof coordinator, "%s/aulac-coordinator", bin);
    if (access(aulac, X_OK) != 0 || access(coordinator, X_OK) != 0)
        die("%s and %s are needed (make; or give --bin DIR)", aulac, coordinator);

    /* the run directory */
    if (opt.run_dir && strlen(opt.run_dir) > 900) {
        fprintf(stderr, "bench/scale: --run-dir: a path of at most 900 bytes\n");
        return 2;
    }
    if (opt.run_dir) {
        if (mkdir(opt.run_dir, 0700) != 0)
            die("cannot make %s: %s", opt.run_dir, strerror(errno));
        snprintf(B.dir, sizeof B.dir, "%s", opt.run_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        if (tmp && strlen(tmp) > 900)
            tmp = NULL;
        snprintf(B.dir, sizeof B.dir, "%s/aulac-scale.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        if (!mkdtemp(B.dir))
            die("mkdtemp %s: %s", B.dir, strerror(errno));
    }
    char sub[PATH_MAX + 16];
    snprintf(sub, sizeof sub, "%s/payloads", B.dir);
    mkdir(sub, 0700);
    snprintf(sub, sizeof sub, "%s/residuals", B.dir);
    mkdir(sub, 0700);
    pthread_mutex_init(&B.mu, NULL);

    B.m = calloc((size_t)opt.members, sizeof *B.m);
    if (!B.m)
        die("out of memory");
    for (int i = 0; i < opt.members; i++) {
        B.m[i].idx = i;
        snprintf(B.m[i].id, sizeof B.m[i].id, "m%03d", i + 1);
    }

    /* policy and its plans */
    char policy_path[PATH_MAX + 16];
    snprintf(policy_path, sizeof policy_path, "%s/policy.yaml", B.dir);
    write_policy(shape, policy_path);
    struct policy_error perr;
    if (policy_load_file(policy_path, &B.policy, &perr) != 0)
        die("the policy the bench wrote does not load: %s", perr.message);
    if (policy_hash(&B.policy, B.policy_hash) != 0)
        die("cannot hash the policy");
    plans = calloc((size_t)opt.rounds + 1, sizeof *plans);
    if (!plans)
        die("out of memory");
    for (int r = 1; r <= opt.rounds; r++) {
        char why[300];
        if (policy_round_plan(&B.policy, (uint64_t)r, &plans[r], why, sizeof why) != 0)
            die("no plan for round %d: %s", r, why);
    }
    B.n = plans[1].n_params;
    B.model_bytes = (uint64_t)B.n * sizeof(float);
    /* Member 0's replica, resident before the download as a worker's is. */
    B.model0 = mmap(NULL, B.model_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                    -1, 0);
    if (B.model0 == MAP_FAILED)
        die("out of memory for member 0's replica (%" PRIu64 " bytes)", B.model_bytes);
    /* Not inherited by the processes this tool starts (the coordinator, the CLI): a fork
     * would make every page copy-on-write, and the download would fault on each. */
    madvise(B.model0, B.model_bytes, MADV_DONTFORK);
    memset(B.model0, 0, B.model_bytes);

    /* residuals */
    uint64_t avail = mem_available();
    uint64_t res_total = (uint64_t)opt.members * B.model_bytes;
    int in_file = strcmp(opt.residuals, "file") == 0 ||
                  (strcmp(opt.residuals, "auto") == 0 && res_total > avail / 4);
    for (int i = 0; i < opt.members; i++) {
        struct member *x = &B.m[i];
        void *p;
        if (in_file) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/residuals/%s.f32", B.dir, x->id);
            int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
            if (fd < 0 || ftruncate(fd, (off_t)B.model_bytes) != 0)
                die("cannot make %s: %s", path, strerror(errno));
            p = mmap(NULL, B.model_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            close(fd);
        } else {
            p = mmap(NULL, B.model_bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        }
        if (p == MAP_FAILED)
            die("cannot map the residual of %s: %s", x->id, strerror(errno));
        x->residual = p;   /* zero at first */
    }
    /* encoders at once: each holds a dense pseudo-gradient and its payload */
    uint64_t per_job = B.model_bytes * 2;
    int jobs = opt.jobs;
    while (jobs > 1 && (uint64_t)jobs * per_job > avail / 4)
        jobs--;
    if (jobs > opt.members)
        jobs = opt.members;
    sem_init(&B.enc_sem, 0, (unsigned)jobs);

    const uint32_t warm = B.policy.compression.uplink.dense_warmup_rounds;
    char uplink[96];
    if (warm == 0)
        snprintf(uplink, sizeof uplink, "top-k uplink");
    else
        snprintf(uplink, sizeof uplink, "dense uplink in rounds 1-%u, then top-k", warm);
    say("model %s: %zu parameters, %.1f MB fp32; %d members, %d rounds (%s), %s on "
        "loopback; residuals in %s, %d encoding at once; run dir %s", opt.model, B.n,
        mb((double)B.model_bytes), opt.members, opt.rounds, uplink,
        opt.plaintext ? "plaintext" : "TLS", in_file ? "files" : "RAM",
        jobs, B.dir);
    say("setting up: %d member keys, roster, TLS CA and certificate (aulac CLI)", opt.members);
    make_alliance(aulac);
    start_coordinator(coordinator);
    say("coordinator pid %d serving on %s (log %s/coordinator.log)", (int)B.coord, B.addr, B.dir);
    if (!opt.plaintext)
        probe_tls();

    B.rss_max = calloc((size_t)opt.rounds + 2, sizeof *B.rss_max);
    B.anon_max = calloc((size_t)opt.rounds + 2, sizeof *B.anon_max);
    if (!B.rss_max || !B.anon_max)
        die("out of memory");
    pthread_t samp;
    pthread_create(&samp, NULL, sampler, NULL);
    pthread_barrier_init(&B.bar, NULL, (unsigned)opt.members + 1);
    for (int i = 0; i < opt.members; i++)
        if (pthread_create(&B.m[i].th, NULL, member_main, &B.m[i]) != 0)
            die("cannot start member thread %d", i);

    struct round_result *res = calloc((size_t)opt.rounds + 1, sizeof *res);
    double t_setup = now_s();
    main_sync();   /* joined */
    say("%d members voted for the policy and joined experiment %s in %.1f s", opt.members,
        B.experiment, now_s() - t_setup);
    double last_receipt = 0, cpu_after_upload = 0;
    B.round_now = 1;
    int prev = 0;
    for (int r = 1; r <= opt.rounds + 1; r++) {
        const int final = r == opt.rounds + 1;
        if (final) {
            main_sync();   /* the members saw the experiment finish */
        } else {
            main_sync();   /* (A) */
        }
        if (prev) {   /* the previous round's close: last receipt to the first next task */
            double first = 0;
            for (int i = 0; i < opt.members; i++)
                if (B.m[i].t_task > 0 && (first == 0 || B.m[i].t_task < first))
                    first = B.m[i].t_task;
            res[prev].close_s = first > last_receipt ? first - last_receipt : -1;
            double cpu = proc_cpu_s(B.coord);
            res[prev].close_cpu = cpu >= 0 ? cpu - cpu_after_upload : -1;
            char data[PATH_MAX + 16];
            snprintf(data, sizeof data, "%s/coordinator", B.dir);
            res[prev].disk_after = du(data);
            res[prev].done = !B.abort;
            struct round_result *q = &res[prev];
            if (q->done)
                say("round %d closed in %.2f s (coordinator CPU %.2f s); data directory "
                    "%+.1f MB (now %.1f MB)", prev, q->close_s, q->close_cpu,
                    mb((double)q->disk_after - (double)q->disk_before), mb((double)q->disk_after));
        }
        if (final || B.abort)
            break;
        B.round_now = r;   /* (until here the sampler counted round r - 1's close) */
        for (int i = 0; i < opt.members; i++)
            B.m[i].t_task = 0;
        struct round_result *q = &res[r];
        char data[PATH_MAX + 16];
        snprintf(data, sizeof data, "%s/coordinator", B.dir);
        q->disk_before = du(data);
        q->dense = plans[r].uplink.k_per_block >= plans[r].uplink.block_size;
        /* download */
        B.phase = PH_DOWNLOAD;
        double dl_cpu0 = proc_cpu_s(B.coord), self_cpu0 = self_cpu_s();
        double t0 = now_s();
        main_sync();   /* (B) */
        main_sync();   /* (C) */
        q->dl_s = now_s() - t0;
        q->dl_cpu = proc_cpu_s(B.coord) - dl_cpu0;
        q->dl_members_cpu = self_cpu_s() - self_cpu0;
        if (B.abort)
            break;
        B.phase = PH_BASELINE;
        q->tcp = best_copy(0);
        q->tls = opt.plaintext ? (struct baseline){ -1, -1 } : best_copy(1);
        report_download(r, q);
        /* encode */
        B.phase = PH_ENCODE;
        t0 = now_s();
        main_sync();   /* (D) */
        main_sync();   /* (E) */
        q->enc_s = now_s() - t0;
        if (B.abort)
            break;
        for (int i = 0; i < opt.members; i++) {
            q->payload_bytes += B.m[i].payload_len;
            q->norm += B.m[i].norm / opt.members;
        }
        say("round %d: %d %s updates encoded in %.1f s (by this tool), %.1f MB each, "
            "pseudo-gradient L2 norm %.1f", r, opt.members, q->dense ? "dense" : "top-k",
            q->enc_s, mb((double)q->payload_bytes / opt.members), q->norm);
        /* upload */
        B.phase = PH_UPLOAD;
        double cpu0 = proc_cpu_s(B.coord);
        t0 = now_s();
        main_sync();   /* (F) */
        main_sync();   /* (G) */
        cpu_after_upload = proc_cpu_s(B.coord);
        B.phase = PH_CLOSE;
        last_receipt = 0;
        const struct member *retried = NULL;
        for (int i = 0; i < opt.members; i++) {
            q->accepted += B.m[i].accepted;
            if (B.m[i].t_receipt > last_receipt)
                last_receipt = B.m[i].t_receipt;
            q->retries += B.m[i].retries;
            if (B.m[i].retries && !retried)
                retried = &B.m[i];
            B.m[i].retries = 0;
        }
        q->up_s = last_receipt > t0 ? last_receipt - t0 : now_s() - t0;
        q->up_cpu = cpu0 >= 0 && cpu_after_upload >= 0 ? cpu_after_upload - cpu0 : -1;
        say("round %d: %d/%d updates accepted in %.2f s = %.2f updates/s; coordinator CPU "
            "%.2f s = %.3f s per update", r, q->accepted, opt.members, q->up_s,
            q->accepted / q->up_s, q->up_cpu, q->accepted ? q->up_cpu / q->accepted : 0);
        if (retried)   /* on stderr whatever --quiet says: the coordinator reset uploads */
            fprintf(stderr, "bench/scale: round %d: %d upload attempt%s failed in transport and "
                    "%s retried, as a worker retries; the first: %s: %s\n", r, q->retries,
                    q->retries == 1 ? "" : "s", q->retries == 1 ? "was" : "were", retried->id,
                    retried->retry_why);
        prev = r;
    }
    /* the end: members are past their last barrier once main passed it */
    B.phase = PH_CLOSE;
    uint64_t hwm = proc_status_kb(B.coord, "VmHWM");
    pthread_mutex_lock(&B.mu);
    if (hwm > B.hwm)
        B.hwm = hwm;
    hwm = B.hwm;
    pthread_mutex_unlock(&B.mu);
    if (B.abort) {
        /* members may be waiting at barriers main skipped: meet them until they are done */
        while (main_synced < 2 + 7 * opt.rounds)
            main_sync();
    }
    for (int i = 0; i < opt.members; i++)
        pthread_join(B.m[i].th, NULL);
    int died = B.coord_dead;
    B.stop_sampler = 1;
    pthread_join(samp, NULL);
    if (!died) {
        kill(B.coord, SIGTERM);
        int st;
        for (int i = 0; i < 100 && waitpid(B.coord, &st, WNOHANG) == 0; i++)
            usleep(100000);
        if (waitpid(B.coord, &st, WNOHANG) == 0) {
            kill(B.coord, SIGKILL);
            waitpid(B.coord, &st, 0);
        }
    }
    for (int i = 0; i < opt.members; i++) {
        fed_client_close(B.m[i].cl);
        crypto_key_free(B.m[i].key);
        munmap(B.m[i].residual, B.model_bytes);
    }

    /* --- the results --- */
    int rounds_done = 0, accepted = 0, expected = 0, retries = 0;
    double ups_d = 0, ups_s = 0, cpu_d = 0, cpu_s = 0, close_sum = 0, dl = 0;
    double gb_cpu[2] = { 0 };   /* the download's CPU s per GB: coordinator, members */
    struct baseline_sum tcp = { 0 }, tls = { 0 };
    int nd = 0, ns = 0;
    uint64_t disk_sum = 0;
    double close_k[2] = { 0, 0 }, disk_k[2] = { 0, 0 };   /* [dense]: sums */
    int closed_k[2] = { 0, 0 };
    printf("\nbench/scale: model %s (%zu parameters, %.1f MB fp32), %d members, %s on "
           "loopback\n", opt.model, B.n, mb((double)B.model_bytes), opt.members,
           opt.plaintext ? "plaintext gRPC" : "gRPC with TLS");
    printf("%5s %6s %10s %9s %9s %6s %9s %11s %10s %9s %12s %9s %11s %10s\n", "round",
           "uplink", "upload MB", "accepted", "upd/s", "", "CPU s/upd", "download MB/s",
           "raw MB/s", "ratio", "raw TLS MB/s", "ratio", "close s", "disk +MB");
    for (int r = 1; r <= opt.rounds; r++) {
        struct round_result *q = &res[r];
        if (!q->up_s)
            continue;
        expected += opt.members;
        accepted += q->accepted;
        retries += q->retries;
        double dlr = served_bytes() / q->dl_s;
        char p1[16], p2[16], r1[16], r2[16];
        printf("%5d %6s %10.2f %6d/%-2d %9.2f %6s %9.3f %13.0f %10s %9s %12s %9s %11.2f "
               "%10.1f\n", r, q->dense ? "dense" : "top-k",
               mb((double)q->payload_bytes / opt.members), q->accepted, opt.members,
               q->accepted / q->up_s, "", q->accepted ? q->up_cpu / q->accepted : -1, mb(dlr),
               rate_mb(r1, sizeof r1, q->tcp.rate), pct(p1, sizeof p1, dlr, q->tcp.rate),
               rate_mb(r2, sizeof r2, q->tls.rate),
               pct(p2, sizeof p2, dlr, q->tls.rate), q->done ? q->close_s : -1,
               q->done ? mb((double)q->disk_after - (double)q->disk_before) : -1);
        dl += dlr;
        gb_cpu[0] += q->dl_cpu / (served_bytes() / 1e9);
        gb_cpu[1] += q->dl_members_cpu / (served_bytes() / 1e9);
        baseline_add(&tcp, dlr, &q->tcp);
        baseline_add(&tls, dlr, &q->tls);
        if (q->dense) {
            ups_d += q->accepted / q->up_s;
            cpu_d += q->accepted ? q->up_cpu / q->accepted : 0;
            nd++;
        } else {
            ups_s += q->accepted / q->up_s;
            cpu_s += q->accepted ? q->up_cpu / q->accepted : 0;
            ns++;
        }
        if (q->done) {
            rounds_done++;
            close_sum += q->close_s;
            uint64_t grew = q->disk_after > q->disk_before ? q->disk_after - q->disk_before : 0;
            disk_sum += grew;
            close_k[q->dense] += q->close_s;
            disk_k[q->dense] += (double)grew;
            closed_k[q->dense]++;
        }
    }
    int measured = nd + ns;
    for (int r = 1; r <= opt.rounds && r <= B.round_now; r++) {
        printf("coordinator RSS in round %d (MB, the most sampled in each phase; anonymous "
               "memory in brackets, the rest is mapped files):", r);
        for (int p = PH_DOWNLOAD; p < PH_COUNT; p++)
            printf(" %s %.0f (%.0f)", phase_name[p], mb((double)B.rss_max[r][p]),
                   mb((double)B.anon_max[r][p]));
        printf("\n");
    }
    printf("coordinator peak RSS (VmHWM) %.1f MB = %.2f x the model's fp32 bytes\n", mb((double)hwm),
           (double)hwm / (double)B.model_bytes);
    printf("coordinator CPU time is the process total (utime + stime): it exposes no split "
           "into verify, decode, accumulate and ledger\n");
    char death[128] = "";
    if (died) {
        describe_death(B.coord_status, death, sizeof death);
        printf("THE COORDINATOR DIED in round %d during the %s phase: %s; its peak RSS until "
               "then %.1f MB = %.2f x the model\n", B.coord_died_round,
               phase_name[B.coord_died_phase], death, mb((double)hwm),
               (double)hwm / (double)B.model_bytes);
    }
    if (died) {   /* what the coordinator said last */
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/coordinator.log", B.dir);
        FILE *f = fopen(p, "r");
        char lines[5][512];
        int nl = 0;
        while (f && fgets(lines[nl % 5], sizeof lines[0], f))
            nl++;
        if (f)
            fclose(f);
        printf("the coordinator's last log lines:\n");
        for (int i = nl > 5 ? nl - 5 : 0; i < nl; i++)
            printf("  %s", lines[i % 5]);
    }
    char how[48] = "";   /* ":signal-9", ":exit-1" */
    if (died)
        snprintf(how, sizeof how, ":%s-%d", WIFSIGNALED(B.coord_status) ? "signal" : "exit",
                 WIFSIGNALED(B.coord_status) ? WTERMSIG(B.coord_status)
                                             : WEXITSTATUS(B.coord_status));
    const char *status = died ? "died" : (B.abort || accepted != opt.members * opt.rounds)
                                                ? "failed" : "ok";
    printf("RESULT model=%s members=%d rounds=%d rounds_closed=%d accepted=%d expected=%d "
           "model_bytes=%" PRIu64 " peak_rss_bytes=%" PRIu64 " rss_ratio=%.3f "
           "updates_per_s_dense=%.3f updates_per_s_sparse=%.3f cpu_per_update_dense_s=%.4f "
           "cpu_per_update_sparse_s=%.4f close_s=%.3f download_MBps=%.1f raw_MBps=%.1f "
           "download_ratio=%.3f disk_per_round_bytes=%.0f close_dense_s=%.3f "
           "close_sparse_s=%.3f disk_dense_round_bytes=%.0f disk_sparse_round_bytes=%.0f "
           "raw_tls_MBps=%.1f download_tls_ratio=%.3f download_cpu_per_gb_coordinator=%.3f "
           "download_cpu_per_gb_members=%.3f raw_cpu_per_gb=%.3f raw_tls_cpu_per_gb=%.3f "
           "upload_retries=%d tls=%d tls_suite=%s coordinator=%s%s\n",
           opt.model, opt.members, opt.rounds, rounds_done, accepted, opt.members * opt.rounds,
           B.model_bytes, hwm, (double)hwm / (double)B.model_bytes, nd ? ups_d / nd : -1,
           ns ? ups_s / ns : -1, nd ? cpu_d / nd : -1, ns ? cpu_s / ns : -1,
           rounds_done ? close_sum / rounds_done : -1, measured ? mb(dl / measured) : -1,
           tcp.n ? mb(tcp.rate / tcp.n) : -1, tcp.n ? tcp.dl / tcp.rate : -1,
           rounds_done ? (double)disk_sum / rounds_done : -1,
           closed_k[1] ? close_k[1] / closed_k[1] : -1, closed_k[0] ? close_k[0] / closed_k[0] : -1,
           closed_k[1] ? disk_k[1] / closed_k[1] : -1, closed_k[0] ? disk_k[0] / closed_k[0] : -1,
           tls.n ? mb(tls.rate / tls.n) : -1, tls.n ? tls.dl / tls.rate : -1,
           measured ? gb_cpu[0] / measured : -1, measured ? gb_cpu[1] / measured : -1,
           tcp.n ? tcp.cpu_gb / tcp.n : -1, tls.n ? tls.cpu_gb / tls.n : -1, retries,
           !opt.plaintext,
           opt.plaintext ? "none" : B.tls_suite, status, how);
    fflush(stdout);
    for (int i = 0; i < opt.members; i++)
        if (B.m[i].failed && !died)
            fprintf(stderr, "bench/scale: member %s failed: %s\n", B.m[i].id, B.m[i].why);
    policy_free(&B.policy);
    free(plans);
    free(res);
    free(B.rss_max);
    free(B.anon_max);
    free(B.m);
    if (opt.keep) {
        fprintf(stderr, "bench/scale: run directory left at %s\n", B.dir);
    } else if (B.abort && !died) {   /* the logs for a look; not gigabytes of scratch */
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/residuals", B.dir);
        rm_rf(p);
        snprintf(p, sizeof p, "%s/payloads", B.dir);
        rm_rf(p);
        fprintf(stderr, "bench/scale: run directory left at %s (coordinator.log, setup.log; "
                "the coordinator's data directory)\n", B.dir);
    } else {
        rm_rf(B.dir);
    }
    if (died)
        return 3;
    return strcmp(status, "ok") == 0 ? 0 : 1;
}
