/* The member's own channel between its nodes (worker/node.h). */
#include "worker/node.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "crypto/request.h"
#include "proto/client.h"
#include "proto/pb.h"
#include "proto/service_node.h"

/* --- leader ------------------------------------------------------------------------ */

struct node_leader {
    struct node_leader_options o;
    const struct crypto_key *key;
    struct crypto_public_key pub;
    struct rpc_server *srv;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct node_task task;      /* the latest; seq 0: none yet */
    uint64_t seq_base;          /* wall-clock ms at start: seqs above a previous leader's */
    char *policy_yaml;
    uint64_t *fetched;          /* per node rank: the seq it last received */
    struct node_task_replay seen;   /* request nonces */
};

/* Checks the request signature (crypto/request.h) against the member's own key.
 * 0, or -1 with why. */
static int check_request(struct node_leader *l, struct rpc_call *call, const uint8_t *body,
                         size_t len, char *why, size_t cap)
{
    struct request_statement s = { 0 };
    uint8_t sig[CRYPTO_SIGNATURE_BYTES];
    const uint8_t *v;
    size_t n;
    char ts[24];
    if (rpc_call_metadata_get(call, REQUEST_MD_MEMBER, &v, &n) != 0 || n == 0 ||
        n >= sizeof s.member || memchr(v, 0, n)) {
        snprintf(why, cap, "unsigned request: the member's nodes sign every request");
        return -1;
    }
    memcpy(s.member, v, n);
    if (strcmp(s.member, l->pub.id) != 0) {
        snprintf(why, cap, "request from member '%.64s': this leader serves only '%s'",
                 s.member, l->pub.id);
        return -1;
    }
    char *end;
    if (rpc_call_metadata_get(call, REQUEST_MD_TIMESTAMP, &v, &n) != 0 || n == 0 ||
        n >= sizeof ts || memchr(v, 0, n) ||
        (memcpy(ts, v, n), ts[n] = 0, errno = 0,
         s.timestamp_unix_ms = strtoll(ts, &end, 10), errno != 0 || *end != 0) ||
        rpc_call_metadata_get(call, REQUEST_MD_NONCE, &v, &n) != 0 || n != sizeof s.nonce ||
        (memcpy(s.nonce, v, n), 0) ||
        rpc_call_metadata_get(call, REQUEST_MD_SIGNATURE, &v, &n) != 0 || n != sizeof sig) {
        snprintf(why, cap, "malformed request metadata (crypto/README.md \"Request\")");
        return -1;
    }
    memcpy(sig, v, n);
    int64_t now = time_now_unix_ms();
    if (s.timestamp_unix_ms < now - NODE_AUTH_SKEW_MS ||
        s.timestamp_unix_ms > now + NODE_AUTH_SKEW_MS) {
        snprintf(why, cap, "request timestamp %" PRId64 " s from the leader's clock (allowed "
                 "+-%d s): check the nodes' clocks", (s.timestamp_unix_ms - now) / 1000,
                 NODE_AUTH_SKEW_MS / 1000);
        return -1;
    }
    snprintf(s.method, sizeof s.method, "%s", rpc_call_method(call));
    request_body_digest(body, len, s.body_digest);
    if (request_verify(&s, l->pub.key, sig) != 0) {
        snprintf(why, cap, "request signature does not verify with member %s's key %s",
                 l->pub.id, l->pub.key_id);
        return -1;
    }
    pthread_mutex_lock(&l->mu);
    int replayed = node_task_replay_check(&l->seen, s.nonce,
                                          s.timestamp_unix_ms + NODE_AUTH_SKEW_MS, now) != 0;
    pthread_mutex_unlock(&l->mu);
    if (replayed) {
        snprintf(why, cap, "replayed request (nonce seen before)");
        return -1;
    }
    return 0;
}

/* The task for one follower, signed now, into r (header and sig are the caller's). */
static int sign_delivery(struct node_leader *l, const struct node_task *latest, uint32_t rank,
                         uint8_t *header, size_t *hlen, uint8_t sig[CRYPTO_SIGNATURE_BYTES])
{
    struct node_task t = *latest;
    snprintf(t.member, sizeof t.member, "%s", l->pub.id);
    t.node_rank = rank;
    t.nranks = (uint32_t)(l->o.nodes * l->o.gpus);
    t.first_rank = rank * (uint32_t)l->o.gpus;
    t.expires_unix_ms = time_now_unix_ms() + NODE_TASK_TTL_MS;
    randombytes_buf(t.nonce, sizeof t.nonce);
    int rc = node_task_encode(&t, header, NODE_TASK_HEADER_MAX, hlen);
    if (rc == 0)
        rc = node_task_sign(&t, l->key, sig);
    sodium_memzero(&t, sizeof t);
    return rc;
}

static void handle_get_node_task(struct rpc_call *call, void *ctx)
{
    struct node_leader *l = ctx;
    uint8_t *body;
    size_t len;
    if (rpc_call_recv(call, &body, &len) != 0)
        return;
    char why[300];
    if (check_request(l, call, body, len, why, sizeof why) != 0) {
        log_warn("node channel: refused a request from %s: %s", rpc_call_peer(call), why);
        free(body);
        rpc_call_finish(call, GRPC_STATUS_UNAUTHENTICATED, why, NULL, 0);
        return;
    }
    int err = 0;
    Aulac__V1__NodeTaskRequest *q = (Aulac__V1__NodeTaskRequest *)pb_unpack(
        &aulac__v1__node_task_request__descriptor, body, len, 4096, &err);
    free(body);
    if (!q) {
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed NodeTaskRequest", NULL, 0);
        return;
    }
    uint32_t rank = q->node_rank;
    uint64_t after = q->after_seq;
    int64_t wait = q->wait_ms < NODE_MAX_LONG_POLL_MS ? q->wait_ms : NODE_MAX_LONG_POLL_MS;
    aulac__v1__node_task_request__free_unpacked(q, NULL);
    if (rank < 1 || rank >= (uint32_t)l->o.nodes) {
        snprintf(why, sizeof why, "node rank %u is not a follower of this %d-node member",
                 rank, l->o.nodes);
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, why, NULL, 0);
        return;
    }

    const int64_t until = time_mono_ms() + wait;
    struct node_task latest;
    char *policy = NULL;
    int have = 0;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (l->task.seq > after) {
            latest = l->task;
            policy = l->policy_yaml ? strdup(l->policy_yaml) : NULL;
            have = 1;
            break;
        }
        int64_t left = until - time_mono_ms();
        if (left <= 0 || rpc_call_is_cancelled(call))
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;   /* slices: notice a cancelled call */
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    pthread_mutex_unlock(&l->mu);

    Aulac__V1__NodeTask r = AULAC__V1__NODE_TASK__INIT;
    uint8_t header[NODE_TASK_HEADER_MAX], sig[CRYPTO_SIGNATURE_BYTES];
    size_t hlen = 0;
    const uint64_t delivered = have ? latest.seq : 0;
    if (have) {
        int rc = sign_delivery(l, &latest, rank, header, &hlen, sig);
        sodium_memzero(&latest, sizeof latest);
        if (rc != 0) {
            free(policy);
            rpc_call_finish(call, GRPC_STATUS_INTERNAL, "cannot sign the node task", NULL, 0);
            return;
        }
        r.header.data = header;
        r.header.len = hlen;
        r.signature.data = sig;
        r.signature.len = sizeof sig;
        r.policy_yaml = policy ? policy : "";
    }
    if (pb_call_finish(call, &r.base) == 0 && have) {
        pthread_mutex_lock(&l->mu);
        if (l->fetched[rank] < delivered)
            l->fetched[rank] = delivered;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    sodium_memzero(header, sizeof header);
    free(policy);
}

static const struct rpc_method node_methods[] = {
    { NODE_METHOD_GET_NODE_TASK, RPC_UNARY, handle_get_node_task },
};

int node_leader_start(const struct node_leader_options *o, const struct crypto_key *key,
                      struct node_leader **out, int *bound_port)
{
    *out = NULL;
    if (!o || !o->listen || o->nodes < 2 || o->gpus < 1 || !key)
        return RPC_ERR_INVALID_ARG;
    struct node_leader *l = calloc(1, sizeof *l);
    if (!l)
        return RPC_ERR_NOMEM;
    l->fetched = calloc((size_t)o->nodes, sizeof *l->fetched);
    if (!l->fetched) {
        free(l);
        return RPC_ERR_NOMEM;
    }
    l->o = *o;
    l->key = key;
    /* Followers ask for a seq above the last they took: a restarted leader counting from
     * 1 again would never be heard. Starting above the clock's ms at start keeps each
     * leader's seqs above those of one that ran before it (one task per ms at most). */
    l->seq_base = (uint64_t)time_now_unix_ms();
    crypto_key_public(key, &l->pub);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    struct rpc_server_options so = {
        .listen_addr = o->listen,
        .max_message_bytes = 1u << 20,
        .max_concurrent_calls = 4 * o->nodes,
        .tls_cert_file = o->tls_cert,
        .tls_key_file = o->tls_key,
    };
    int rc = rpc_server_start(&so, node_methods, sizeof node_methods / sizeof *node_methods, l,
                              &l->srv, bound_port);
    if (rc != 0) {
        node_leader_stop(l);
        return rc;
    }
    *out = l;
    return 0;
}

int node_leader_publish(struct node_leader *l, const struct node_task *t,
                        const char *policy_yaml)
{
    char *copy = policy_yaml ? strdup(policy_yaml) : NULL;
    if (policy_yaml && !copy)
        return -1;
    pthread_mutex_lock(&l->mu);
    uint64_t seq = (l->task.seq > l->seq_base ? l->task.seq : l->seq_base) + 1;
    l->task = *t;
    l->task.seq = seq;
    free(l->policy_yaml);
    l->policy_yaml = copy;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int node_leader_wait_fetched(struct node_leader *l, int64_t timeout_ms,
                             const volatile sig_atomic_t *stop)
{
    const int64_t until = time_mono_ms() + timeout_ms;
    pthread_mutex_lock(&l->mu);
    int rc = -1;
    for (;;) {
        int all = 1;
        for (int r = 1; r < l->o.nodes; r++)
            all &= l->fetched[r] >= l->task.seq;
        if (all) {
            rc = 0;
            break;
        }
        if ((timeout_ms > 0 && time_mono_ms() >= until) || (stop && *stop))
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

void node_leader_stop(struct node_leader *l)
{
    if (!l)
        return;
    rpc_server_stop(l->srv);
    sodium_memzero(&l->task, sizeof l->task);
    free(l->policy_yaml);
    free(l->fetched);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* --- follower ---------------------------------------------------------------------- */

struct node_follower {
    struct fed_client *client;
    const struct crypto_key *key;
    struct crypto_public_key pub;
    int nodes, gpus, rank;
    uint64_t last_seq;
    struct node_task_replay seen;
};

int node_follower_open(const char *leader, const struct rpc_channel_options *ch,
                       const struct crypto_key *key, int nodes, int gpus, int node_rank,
                       const volatile sig_atomic_t *interrupt, struct node_follower **out)
{
    *out = NULL;
    if (!leader || !key || nodes < 2 || gpus < 1 || node_rank < 1 || node_rank >= nodes)
        return RPC_ERR_INVALID_ARG;
    struct node_follower *f = calloc(1, sizeof *f);
    if (!f)
        return RPC_ERR_NOMEM;
    struct fed_client_options co = { 0 };
    if (ch)
        co.channel = *ch;
    co.identity = key;
    co.interrupt = interrupt;
    int rc = fed_client_open(leader, &co, &f->client);
    if (rc != 0) {
        free(f);
        return rc;
    }
    f->key = key;
    crypto_key_public(key, &f->pub);
    f->nodes = nodes, f->gpus = gpus, f->rank = node_rank;
    *out = f;
    return 0;
}

static int refused(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refused(char *why, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    return NODE_POLL_REFUSED;
}

int node_follower_next(struct node_follower *f, uint32_t wait_ms, struct node_task *t,
                       char **policy_yaml, char *why, size_t why_cap)
{
    *policy_yaml = NULL;
    Aulac__V1__NodeTaskRequest q = AULAC__V1__NODE_TASK_REQUEST__INIT;
    q.member_id = f->pub.id;
    q.node_rank = (uint32_t)f->rank;
    q.after_seq = f->last_seq;
    q.wait_ms = wait_ms;
    Aulac__V1__NodeTask *r = NULL;
    struct rpc_status st = { 0 };
    int rc = fed_get_node_task(f->client, &q, &r, &st);
    if (rc == RPC_ERR_INTERRUPTED)
        return NODE_POLL_NOTHING;   /* stopping: the caller looks at its stop flag */
    if (rc != 0) {
        snprintf(why, why_cap, "%s", st.details[0] ? st.details : rpc_strerror(rc));
        if (st.code == GRPC_STATUS_UNAUTHENTICATED || st.code == GRPC_STATUS_INVALID_ARGUMENT)
            return refused(why, why_cap, "the leader refused this node (do all nodes hold "
                           "the same member key, --nodes and --node-rank?): %.400s", st.details);
        return NODE_POLL_UNREACHABLE;
    }
    if (r->header.len == 0) {
        aulac__v1__node_task__free_unpacked(r, NULL);
        return NODE_POLL_NOTHING;
    }
    rc = node_task_accept(r->header.data, r->header.len, r->signature.data, r->signature.len,
                          f->pub.id, f->pub.key, time_now_unix_ms(), &f->seen, t, why,
                          why_cap);
    if (rc == 0) {
        const uint32_t nranks = (uint32_t)(f->nodes * f->gpus);
        if (t->node_rank != (uint32_t)f->rank || t->nranks != nranks ||
            t->first_rank != (uint32_t)(f->rank * f->gpus))
            rc = refused(why, why_cap, "the leader sent node %u (ranks %u.. of %u) a task; "
                         "this is node %d of --nodes %d with --gpus %d (ranks %d.. of %u): "
                         "give every node the same --nodes and --gpus", t->node_rank,
                         t->first_rank, t->nranks, f->rank, f->nodes, f->gpus,
                         f->rank * f->gpus, nranks);
        else if (t->seq <= f->last_seq)
            rc = refused(why, why_cap, "node task seq %" PRIu64 " is not newer than %" PRIu64,
                         t->seq, f->last_seq);
    } else {
        rc = NODE_POLL_REFUSED;
    }
    if (rc == 0) {
        f->last_seq = t->seq;
        *policy_yaml = strdup(r->policy_yaml ? r->policy_yaml : "");
        if (!*policy_yaml)
            rc = refused(why, why_cap, "out of memory");
    }
    if (rc != 0)
        sodium_memzero(t, sizeof *t);
    aulac__v1__node_task__free_unpacked(r, NULL);
    return rc;
}

void node_follower_close(struct node_follower *f)
{
    if (!f)
        return;
    fed_client_close(f->client);
    free(f);
}
