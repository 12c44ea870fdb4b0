/* bench/auth: what request authentication costs a signed RPC, end to end. Prints
 * figures; asserts nothing.
 *
 *   bench/auth [--requests N] [--clients C] [--dir DIR]
 *
 * Starts a coordinator in this process (data directory under DIR, default $TMPDIR or
 * /tmp: the fsync cost is the file system's) and times signed GetTask calls that
 * return at once (wait_ms 0, the task is ready): first N calls one after another
 * from one client, then N calls spread over C clients on their own threads. Each call
 * is a full gRPC round trip over loopback: request signing, the coordinator's
 * signature check, its replay check (which commits the nonce to LMDB), the task.
 * Run the same program on two trees to see what a change costs. */
#include <getopt.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/fileio.h"
#include "common/log.h"
#include "coordinator/coord.h"
#include "crypto/keys.h"
#include "proto/client.h"

static const char policy[] =
    "schema: 1\n"
    "metadata: {name: bench-auth, proposer: fpt}\n"
    "model: {vocab_size: 256, n_positions: 16, n_layer: 1, n_head: 2, n_embd: 16}\n"
    "training: {rounds: 3, local_steps: 2, batch_size: 2}\n"
    "participation: {members: [fpt], min_members: 1}\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct worker_arg {
    const char *addr;
    const struct crypto_key *key;
    int n;
    double *lat;        /* n latencies, seconds */
    int failed;
};

static void *run_client(void *p)
{
    struct worker_arg *w = p;
    struct fed_client_options o = { 0 };
    o.call_timeout_ms = 30000;
    o.identity = w->key;
    struct fed_client *cl;
    if (fed_client_open(w->addr, &o, &cl) != 0) {
        w->failed = w->n;
        return NULL;
    }
    for (int i = 0; i < w->n; i++) {
        Aulac__V1__TaskRequest q = AULAC__V1__TASK_REQUEST__INIT;
        q.member_id = "fpt";
        q.wait_ms = 0;
        Aulac__V1__Task *t = NULL;
        struct rpc_status st;
        double t0 = now_s();
        int rc = fed_get_task(cl, &q, &t, &st);
        w->lat[i] = now_s() - t0;
        if (rc != 0) {
            if (!w->failed)
                fprintf(stderr, "GetTask failed: %s\n", st.details);
            w->failed++;
        }
        if (t)
            aulac__v1__task__free_unpacked(t, NULL);
    }
    fed_client_close(cl);
    return NULL;
}

static void report(const char *what, double *lat, int n, double wall)
{
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += lat[i];
    printf("%-28s %6d calls  %8.0f calls/s  latency us: mean %7.1f  median %7.1f  p99 %7.1f\n",
           what, n, n / wall, 1e6 * sum / n, 1e6 * lat[n / 2], 1e6 * lat[(n * 99) / 100]);
}

static int write_file(const char *path, const char *text, unsigned mode)
{
    int rc = file_write_atomic(path, text, strlen(text), mode);
    if (rc != 0)
        fprintf(stderr, "cannot write %s\n", path);
    return rc;
}

int main(int argc, char **argv)
{
    int requests = 2000, clients = 8;
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    static const struct option lo[] = {
        { "requests", required_argument, 0, 'n' }, { "clients", required_argument, 0, 'c' },
        { "dir", required_argument, 0, 'd' }, { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 } };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (ch) {
        case 'n': requests = atoi(optarg); break;
        case 'c': clients = atoi(optarg); break;
        case 'd': base = optarg; break;
        case 'h':
            puts("usage: bench/auth [--requests N] [--clients C] [--dir DIR]");
            return 0;
        default: return 2;
        }
    }
    if (requests < 1 || clients < 1 || clients > 256) {
        fprintf(stderr, "--requests must be >= 1, --clients 1..256\n");
        return 2;
    }
    log_set_level(LOG_WARN);
    if (crypto_init() != 0)
        return 1;
    char dir[512], p_data[600], p_key[600], p_roster[600], p_policy[600], p_member[600];
    snprintf(dir, sizeof dir, "%s/aulac-bench-auth-XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror(dir);
        return 1;
    }
    snprintf(p_data, sizeof p_data, "%s/data", dir);
    snprintf(p_key, sizeof p_key, "%s/coordinator.key", dir);
    snprintf(p_roster, sizeof p_roster, "%s/roster.yaml", dir);
    snprintf(p_policy, sizeof p_policy, "%s/policy.yaml", dir);
    snprintf(p_member, sizeof p_member, "%s/fpt.key", dir);
    uint8_t seed[32];
    struct crypto_key *member, *coordinator;
    randombytes_buf(seed, sizeof seed);
    if (crypto_key_from_seed("fpt", seed, &member) != 0)
        return 1;
    randombytes_buf(seed, sizeof seed);
    if (crypto_key_from_seed("coordinator", seed, &coordinator) != 0)
        return 1;
    struct crypto_public_key pk;
    char b64[45], roster[512];
    crypto_key_public(member, &pk);
    crypto_public_key_to_base64(pk.key, b64);
    snprintf(roster, sizeof roster, "alliance: bench\nmembers:\n  - id: fpt\n"
             "    organization: FPT\n    roles: [member, researcher]\n    public_key: %s\n", b64);
    if (crypto_key_save_secret(coordinator, p_key, 0) != 0 ||
        crypto_key_save_secret(member, p_member, 0) != 0 ||
        write_file(p_roster, roster, 0644) || write_file(p_policy, policy, 0644))
        return 1;

    /* The policy is filed as fpt's proposal (--policy with --operator-key); fpt is the
     * whole alliance, so its approval alone starts the experiment. */
    const char *const policies[] = { p_policy };
    struct coord_options opt = { .data_dir = p_data, .key_path = p_key,
                                 .roster_path = p_roster, .policy_paths = policies,
                                 .n_policy_paths = 1, .operator_key_path = p_member,
                                 .listen_addr = "127.0.0.1:0", .max_calls = 512 };
    struct coord *c = calloc(1, sizeof *c);
    if (!c || coord_open(c, &opt) != 0 || coord_serve(c) != 0) {
        fprintf(stderr, "cannot start the coordinator\n");
        return 1;
    }
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", c->port);
    printf("signed GetTask (wait_ms 0) against an in-process coordinator, data in %s\n", dir);

    int failed = 0;
    double *lat = calloc((size_t)requests, sizeof *lat);
    struct worker_arg one = { addr, member, requests, lat, 0 };
    double t0 = now_s();
    run_client(&one);
    report("1 client, sequential", lat, requests, now_s() - t0);
    failed += one.failed;

    pthread_t th[256];
    struct worker_arg w[256];
    int per = requests / clients ? requests / clients : 1;
    double *all = calloc((size_t)per * (size_t)clients, sizeof *all);
    t0 = now_s();
    for (int i = 0; i < clients; i++) {
        w[i] = (struct worker_arg){ addr, member, per, all + (size_t)i * per, 0 };
        pthread_create(&th[i], NULL, run_client, &w[i]);
    }
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        failed += w[i].failed;
    }
    char what[64];
    snprintf(what, sizeof what, "%d clients, concurrent", clients);
    report(what, all, per * clients, now_s() - t0);
    if (failed)
        printf("%d call(s) failed\n", failed);

    coord_close(c);
    free(c);
    free(lat);
    free(all);
    crypto_key_free(member);
    crypto_key_free(coordinator);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return failed ? 1 : 0;
}
