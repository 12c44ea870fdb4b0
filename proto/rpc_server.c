#include "proto/rpc_internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include <stdio.h>
#include "common/log.h"
#include "common/timeutil.h"
#include "proto/rpc_admission.h"

/* Tags on a call's own completion queue. Each op is plucked before the next
 * of its kind starts, so fixed values are unique per queue. */
enum { TAG_RECV = 1, TAG_SEND, TAG_FINISH, TAG_CLOSE };
#define TAG(t) ((void *)(intptr_t)(t))

#define EOS_CONFIRM_MS 50

struct rpc_call {
    struct rpc_server       *srv;
    const struct rpc_method *method;     /* NULL: a method we do not serve */
    grpc_completion_queue   *cq;         /* this call's own queue (pluck) */
    grpc_call               *call;
    gpr_timespec             deadline;
    grpc_metadata_array      md;
    grpc_call_details        details;    /* unregistered calls only */
    char                    *peer;       /* gpr_malloc'd on first use */
    pthread_t                thread;
    struct rpc_admission_slot slot;      /* guarded by srv->mu */
    int admitted;                        /* slot counted in srv->admission */
    gpr_timespec             recv_by;    /* the first message's deadline */
    int received;         /* request messages received so far */
    int close_pending;    /* RECV_CLOSE_ON_SERVER started, not plucked yet */
    int closed;
    int close_cancelled;  /* written by gRPC when the close completes */
    int initial_md_sent;
    int finished;         /* rpc_call_finish was called */
    int status_started;   /* ...and gRPC accepted its batch */
    int recv_eos;
    struct rpc_call *next_done;
};

struct rpc_server {
    grpc_server             *server;
    grpc_completion_queue   *cq;         /* new calls and the shutdown notice */
    const struct rpc_method *methods;
    size_t                   n_methods;
    void                   **registered; /* grpc handle per method */
    void                    *ctx;
    int                      grace_ms;
    int                      first_message_ms, message_gap_ms;
    pthread_t                dispatcher;
    int                      n_requested; /* dispatcher thread only */
    atomic_int               stopping;
    char                     shutdown_tag;

    pthread_mutex_t  mu;
    pthread_cond_t   cond;               /* CLOCK_MONOTONIC */
    int              n_active;           /* handler threads still serving */
    struct rpc_admission admission;
    int              shutdown_done;
    struct rpc_call *done;               /* handler threads to join */
};

/* ------------------------------------------------------------ call plumbing */

/* Gives the call's admission slot back: before the client can learn that the
 * call ended, so that its next call never finds its own last one counted. */
static void call_leave(struct rpc_call *c)
{
    if (!c->admitted)
        return;
    pthread_mutex_lock(&c->srv->mu);
    rpc_admission_leave(&c->srv->admission, &c->slot);
    pthread_mutex_unlock(&c->srv->mu);
    c->admitted = 0;
}

static void call_release_grpc(struct rpc_call *c)
{
    if (c->call)
        grpc_call_unref(c->call);
    c->call = NULL;
    grpc_metadata_array_destroy(&c->md);
    if (!c->method)
        grpc_call_details_destroy(&c->details);
    rpc_cq_destroy(c->cq);
    c->cq = NULL;
    if (c->peer)
        gpr_free(c->peer);
    c->peer = NULL;
}

static void call_free(struct rpc_call *c)
{
    call_release_grpc(c);
    free(c);
}

/* Ends the call with a status of its own while a batch is in flight; the
 * batch then completes (failed). The handler can no longer finish it. */
static void cancel_with_status(struct rpc_call *c, grpc_status_code code, const char *why)
{
    call_leave(c);
    grpc_call_cancel_with_status(c->call, code, why, NULL);
    c->finished = 1;
    c->status_started = 1;
}

/* Starts ops and blocks until they complete. The call's deadline, the client
 * going away, or rpc_server_stop always complete them; so does `by`, after
 * which the call is cancelled with DEADLINE_EXCEEDED and `why`. */
static int run_batch_by(struct rpc_call *c, const grpc_op *ops, size_t n, int tag,
                        gpr_timespec by, const char *why)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, TAG(tag), NULL);
    if (e != GRPC_CALL_OK) {
        log_error("rpc: %s: cannot start batch: %s", rpc_call_method(c),
                  grpc_call_error_to_string(e));
        return RPC_ERR_CALL_START;
    }
    grpc_event ev = grpc_completion_queue_pluck(c->cq, TAG(tag), by, NULL);
    if (ev.type == GRPC_QUEUE_TIMEOUT) {
        log_warn("rpc: %s from %s: %s; call cancelled", rpc_call_method(c), rpc_call_peer(c),
                 why);
        cancel_with_status(c, GRPC_STATUS_DEADLINE_EXCEEDED, why);
        grpc_completion_queue_pluck(c->cq, TAG(tag), gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        return RPC_ERR_CANCELLED;
    }
    return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : RPC_ERR_CANCELLED;
}

static int run_batch(struct rpc_call *c, const grpc_op *ops, size_t n, int tag)
{
    return run_batch_by(c, ops, n, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
}

static void poll_close(struct rpc_call *c, gpr_timespec until)
{
    if (!c->close_pending)
        return;
    grpc_event ev = grpc_completion_queue_pluck(c->cq, TAG(TAG_CLOSE), until, NULL);
    if (ev.type == GRPC_OP_COMPLETE) {
        c->close_pending = 0;
        c->closed = 1;
    }
}

/* RECV_CLOSE_ON_SERVER completes when the call is over for any reason; it is
 * how a handler learns the client went away. */
static void watch_close(struct rpc_call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    grpc_call_error e = grpc_call_start_batch(c->call, &op, 1, TAG(TAG_CLOSE), NULL);
    if (e == GRPC_CALL_OK)
        c->close_pending = 1;
    else
        log_error("rpc: %s: cannot watch for close: %s", rpc_call_method(c),
                  grpc_call_error_to_string(e));
}

/* Answers a call without a handler. cancel_with_status still sends the code
 * and message to the client as the call's status. */
static void refuse(struct rpc_call *c, grpc_status_code code, const char *why)
{
    grpc_call_cancel_with_status(c->call, code, why, NULL);
}

static void *call_main(void *arg)
{
    struct rpc_call *c = arg;
    struct rpc_server *srv = c->srv;

    watch_close(c);
    c->method->handler(c, srv->ctx);
    call_leave(c);
    if (!c->finished) {
        if (!rpc_call_is_cancelled(c))
            log_warn("rpc: %s: handler returned without finishing the call", c->method->path);
        rpc_call_finish(c, GRPC_STATUS_INTERNAL, "the server did not answer the call", NULL, 0);
    }
    if (!c->status_started)
        grpc_call_cancel(c->call, NULL);
    poll_close(c, gpr_inf_future(GPR_CLOCK_REALTIME));
    call_release_grpc(c);

    pthread_mutex_lock(&srv->mu);
    srv->n_active--;
    c->next_done = srv->done;
    srv->done = c;
    pthread_cond_broadcast(&srv->cond);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* ------------------------------------------------------------- dispatching */

static int request_call(struct rpc_server *srv, const struct rpc_method *m)
{
    struct rpc_call *c = calloc(1, sizeof *c);
    if (!c)
        return RPC_ERR_NOMEM;
    c->srv = srv;
    c->method = m;
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&c->md);
    grpc_call_error e;
    if (m) {
        e = grpc_server_request_registered_call(srv->server, srv->registered[m - srv->methods],
                                                &c->call, &c->deadline, &c->md, NULL,
                                                c->cq, srv->cq, c);
    } else {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(srv->server, &c->call, &c->details, &c->md,
                                     c->cq, srv->cq, c);
    }
    if (e != GRPC_CALL_OK) {
        log_error("rpc: cannot request calls for %s: %s", m ? m->path : "unknown methods",
                  grpc_call_error_to_string(e));
        call_free(c);
        return RPC_ERR_CALL_START;
    }
    srv->n_requested++;
    return 0;
}

/* A method whose call is not requested is never served again: ask until gRPC takes
 * the request (out of memory now and then) or the server stops. */
static void request_again(struct rpc_server *srv, const struct rpc_method *m)
{
    while (request_call(srv, m) != 0 && !atomic_load(&srv->stopping))
        time_sleep_ms(10);
}

static void reap_done(struct rpc_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    struct rpc_call *list = srv->done;
    srv->done = NULL;
    pthread_mutex_unlock(&srv->mu);
    while (list) {
        struct rpc_call *next = list->next_done;
        pthread_join(list->thread, NULL);
        free(list);
        list = next;
    }
}

static void accept_call(struct rpc_server *srv, struct rpc_call *c)
{
    if (!c->method) {
        char why[300];
        char *path = grpc_slice_to_c_string(c->details.method);
        snprintf(why, sizeof why, "unknown method %.256s", path);
        gpr_free(path);
        refuse(c, GRPC_STATUS_UNIMPLEMENTED, why);
        call_free(c);
        return;
    }
    char why[256];
    const char *peer = rpc_call_peer(c);
    pthread_mutex_lock(&srv->mu);
    int refused = rpc_admission_enter(&srv->admission, &c->slot, peer, time_mono_ms(), why,
                                      sizeof why);
    if (!refused)
        srv->n_active++;
    pthread_mutex_unlock(&srv->mu);
    if (refused) {
        log_warn("rpc: %s from %s: refused: %s", c->method->path, peer, why);
        refuse(c, GRPC_STATUS_RESOURCE_EXHAUSTED, why);
        call_free(c);
        return;
    }
    c->admitted = 1;
    c->recv_by = rpc_deadline_after_ms(srv->first_message_ms);
    if (pthread_create(&c->thread, NULL, call_main, c) != 0) {
        log_error("rpc: %s: cannot start a handler thread", c->method->path);
        call_leave(c);
        pthread_mutex_lock(&srv->mu);
        srv->n_active--;
        pthread_mutex_unlock(&srv->mu);
        refuse(c, GRPC_STATUS_UNAVAILABLE, "server cannot start a thread");
        call_free(c);
    }
}

/* The one thread reading the server's queue: hands each new call to a thread
 * of its own and asks gRPC for the next call of that method. Returns once the
 * shutdown notice has come and every pending request has been given back. */
static void *dispatch_loop(void *arg)
{
    struct rpc_server *srv = arg;
    int shutdown_seen = 0;
    while (!shutdown_seen || srv->n_requested > 0) {
        /* The timeout only bounds how long finished threads wait to be joined. */
        grpc_event ev = grpc_completion_queue_next(srv->cq, rpc_deadline_after_ms(1000), NULL);
        reap_done(srv);
        if (ev.type == GRPC_QUEUE_TIMEOUT)
            continue;
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.tag == &srv->shutdown_tag) {
            shutdown_seen = 1;
            pthread_mutex_lock(&srv->mu);
            srv->shutdown_done = 1;
            pthread_cond_broadcast(&srv->cond);
            pthread_mutex_unlock(&srv->mu);
            continue;
        }
        struct rpc_call *c = ev.tag;
        const struct rpc_method *m = c->method;
        srv->n_requested--;
        if (atomic_load(&srv->stopping)) {
            if (ev.success)
                refuse(c, GRPC_STATUS_UNAVAILABLE, "server is shutting down");
            call_free(c);
            continue;
        }
        if (!ev.success) {
            log_warn("rpc: a request for %s calls failed; asking again", m ? m->path : "other");
            call_free(c);
            request_again(srv, m);
            continue;
        }
        if (!c->method)
            c->deadline = c->details.deadline;
        request_again(srv, m);
        accept_call(srv, c);
    }
    return NULL;
}

/* ------------------------------------------------------------ start / stop */

static int load_server_credentials(const struct rpc_server_options *o,
                                   grpc_server_credentials **out)
{
    *out = NULL;
    if (!o->tls_cert_file && !o->tls_key_file) {
        if (o->tls_client_ca_file || o->require_client_cert) {
            log_error("rpc: client certificate checks need a server certificate and key");
            return RPC_ERR_INVALID_ARG;
        }
        *out = grpc_insecure_server_credentials_create();
        return 0;
    }
    if (!o->tls_cert_file || !o->tls_key_file) {
        log_error("rpc: TLS needs both tls_cert_file and tls_key_file");
        return RPC_ERR_INVALID_ARG;
    }
    if (o->require_client_cert && !o->tls_client_ca_file) {
        log_error("rpc: require_client_cert needs tls_client_ca_file");
        return RPC_ERR_INVALID_ARG;
    }
    char *cert = NULL, *key = NULL, *ca = NULL;
    int rc = rpc_read_pem(o->tls_cert_file, &cert);
    if (rc == 0)
        rc = rpc_read_pem(o->tls_key_file, &key);
    if (rc == 0 && o->tls_client_ca_file)
        rc = rpc_read_pem(o->tls_client_ca_file, &ca);
    if (rc == 0) {
        grpc_ssl_pem_key_cert_pair pair = { .private_key = key, .cert_chain = cert };
        grpc_ssl_client_certificate_request_type req =
            o->require_client_cert ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
            : ca                   ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                   : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
        *out = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, req, NULL);
        if (!*out)
            rc = RPC_ERR_TLS;
    }
    rpc_free_pem(cert);
    rpc_free_pem(key);
    rpc_free_pem(ca);
    return rc;
}

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

/* The options with every 0 replaced by its default. */
static struct rpc_server_options options_resolved(const struct rpc_server_options *o)
{
    struct rpc_server_options r = *o;
    if (!r.max_message_bytes)
        r.max_message_bytes = RPC_DEFAULT_MAX_MESSAGE_BYTES;
    if (!r.max_concurrent_calls)
        r.max_concurrent_calls = RPC_DEFAULT_MAX_CALLS;
    if (!r.max_unauthenticated_calls)
        r.max_unauthenticated_calls = r.max_concurrent_calls >= 4 ? r.max_concurrent_calls / 4 : 1;
    if (!r.max_calls_per_peer)
        r.max_calls_per_peer = RPC_DEFAULT_MAX_CALLS_PER_PEER < r.max_unauthenticated_calls
                                   ? RPC_DEFAULT_MAX_CALLS_PER_PEER : r.max_unauthenticated_calls;
    if (!r.first_message_ms)
        r.first_message_ms = RPC_DEFAULT_FIRST_MESSAGE_MS;
    if (!r.message_gap_ms)
        r.message_gap_ms = RPC_DEFAULT_MESSAGE_GAP_MS;
    if (!r.memory_quota_bytes)
        r.memory_quota_bytes = RPC_DEFAULT_MEMORY_QUOTA_BYTES;
    if (!r.shutdown_grace_ms)
        r.shutdown_grace_ms = RPC_DEFAULT_SHUTDOWN_GRACE_MS;
    return r;
}

static int options_valid(const struct rpc_server_options *o, const struct rpc_method *methods,
                         size_t n_methods)
{
    if (!o || !o->listen_addr || !methods || n_methods == 0 || o->max_concurrent_calls < 0 ||
        o->max_unauthenticated_calls < 0 || o->max_calls_per_peer < 0 ||
        o->first_message_ms < 0 || o->message_gap_ms < 0 || o->shutdown_grace_ms < 0)
        return 0;
    for (size_t i = 0; i < n_methods; i++)
        if (!methods[i].path || methods[i].path[0] != '/' || !methods[i].handler)
            return 0;
    struct rpc_server_options r = options_resolved(o);
    if (r.max_unauthenticated_calls > r.max_concurrent_calls) {
        log_error("rpc: max_unauthenticated_calls (%d) exceeds max_concurrent_calls (%d)",
                  r.max_unauthenticated_calls, r.max_concurrent_calls);
        return 0;
    }
    if (r.memory_quota_bytes / 2 < r.max_message_bytes) {
        log_error("rpc: a memory quota of %zu bytes cannot hold two messages of the %zu "
                  "allowed", r.memory_quota_bytes, r.max_message_bytes);
        return 0;
    }
    return 1;
}

static void server_free(struct rpc_server *srv)
{
    grpc_completion_queue_shutdown(srv->cq);
    while (grpc_completion_queue_next(srv->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(srv->cq);
    pthread_cond_destroy(&srv->cond);
    pthread_mutex_destroy(&srv->mu);
    free(srv->registered);
    free(srv);
    grpc_shutdown();
}

static grpc_arg quota_arg(grpc_resource_quota *q)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_POINTER;
    a.key = (char *)GRPC_ARG_RESOURCE_QUOTA;
    a.value.pointer.p = q;
    a.value.pointer.vtable = grpc_resource_quota_arg_vtable();
    return a;
}

/* o: resolved (options_resolved). */
static struct rpc_server *server_new(const struct rpc_server_options *o,
                                     const struct rpc_method *methods, size_t n_methods,
                                     void *ctx)
{
    struct rpc_server *srv = calloc(1, sizeof *srv);
    void **registered = calloc(n_methods, sizeof *registered);
    if (!srv || !registered) {
        free(srv);
        free(registered);
        return NULL;
    }
    grpc_init();
    srv->registered = registered;
    srv->methods = methods;
    srv->n_methods = n_methods;
    srv->ctx = ctx;
    rpc_admission_init(&srv->admission, o->max_concurrent_calls, o->max_unauthenticated_calls,
                       o->max_calls_per_peer);
    srv->grace_ms = o->shutdown_grace_ms;
    srv->first_message_ms = o->first_message_ms;
    srv->message_gap_ms = o->message_gap_ms;
    atomic_init(&srv->stopping, 0);
    pthread_mutex_init(&srv->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->cond, &ca);
    pthread_condattr_destroy(&ca);

    int max_int = o->max_message_bytes > INT_MAX ? INT_MAX : (int)o->max_message_bytes;
    /* gRPC 1.51 grants flow-control window for the whole length a message
     * announces and applies the message limit only once it is all in memory;
     * the quota is what bounds that memory (rpc.h). */
    grpc_resource_quota *quota = grpc_resource_quota_create("aulac-rpc-server");
    grpc_resource_quota_resize(quota, o->memory_quota_bytes);
    grpc_arg args[] = {
        int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_int),
        int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max_int),
        /* With SO_REUSEPORT a second server on a busy port would "succeed". */
        int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0),
        /* A connection whose peer stops answering (a stopped or hung client) is closed
         * within RPC_KEEPALIVE_MS + RPC_KEEPALIVE_TIMEOUT_MS, with or without calls:
         * what gRPC still holds to write on it (chunks a download lent, rpc_part) is let
         * go then, not never. */
        int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, RPC_KEEPALIVE_MS),
        int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, RPC_KEEPALIVE_TIMEOUT_MS),
        int_arg(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1),
        int_arg(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0),
        quota_arg(quota),
    };
    grpc_channel_args ch_args = { .num_args = sizeof args / sizeof args[0], .args = args };
    srv->server = grpc_server_create(&ch_args, NULL);
    grpc_resource_quota_unref(quota);
    srv->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cq, NULL);
    return srv;
}

/* Before grpc_server_start: nothing is listening and no call exists. */
static void server_abandon(struct rpc_server *srv)
{
    grpc_server_destroy(srv->server);
    server_free(srv);
}

static int register_methods(struct rpc_server *srv)
{
    for (size_t i = 0; i < srv->n_methods; i++) {
        srv->registered[i] = grpc_server_register_method(
            srv->server, srv->methods[i].path, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
        if (!srv->registered[i]) {
            log_error("rpc: cannot register method %s (listed twice?)", srv->methods[i].path);
            return RPC_ERR_INVALID_ARG;
        }
    }
    return 0;
}

int rpc_server_start(const struct rpc_server_options *opts,
                     const struct rpc_method *methods, size_t n_methods,
                     void *ctx, struct rpc_server **out, int *bound_port)
{
    if (!out || !options_valid(opts, methods, n_methods))
        return RPC_ERR_INVALID_ARG;
    *out = NULL;
    struct rpc_server_options resolved = options_resolved(opts);
    struct rpc_server *srv = server_new(&resolved, methods, n_methods, ctx);
    if (!srv)
        return RPC_ERR_NOMEM;
    int rc = register_methods(srv);
    grpc_server_credentials *creds = NULL;
    if (rc == 0)
        rc = load_server_credentials(opts, &creds);
    if (rc != 0) {
        server_abandon(srv);
        return rc;
    }
    int port = grpc_server_add_http2_port(srv->server, opts->listen_addr, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        log_error("rpc: cannot listen on %s: address in use or invalid%s", opts->listen_addr,
                  opts->tls_cert_file ? ", or the TLS certificate/key is unusable" : "");
        server_abandon(srv);
        return RPC_ERR_LISTEN;
    }
    grpc_server_start(srv->server);

    for (size_t i = 0; i <= n_methods && rc == 0; i++)
        rc = request_call(srv, i < n_methods ? &methods[i] : NULL);
    if (rc == 0 && pthread_create(&srv->dispatcher, NULL, dispatch_loop, srv) != 0)
        rc = RPC_ERR_THREAD;
    if (rc != 0) {
        atomic_store(&srv->stopping, 1);
        grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);
        grpc_server_cancel_all_calls(srv->server);
        dispatch_loop(srv);
        grpc_server_destroy(srv->server);
        server_free(srv);
        return rc;
    }
    if (bound_port)
        *bound_port = port;
    *out = srv;
    return 0;
}

static struct timespec mono_after_ms(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

void rpc_server_stop(struct rpc_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, 1);
    grpc_server_shutdown_and_notify(srv->server, srv->cq, &srv->shutdown_tag);

    struct timespec until = mono_after_ms(srv->grace_ms);
    pthread_mutex_lock(&srv->mu);
    while (srv->n_active > 0 && !srv->shutdown_done)
        if (pthread_cond_timedwait(&srv->cond, &srv->mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&srv->mu);

    /* Ends calls still running and drops idle connections, which would
     * otherwise hold the shutdown notice back. */
    grpc_server_cancel_all_calls(srv->server);
    pthread_mutex_lock(&srv->mu);
    while (srv->n_active > 0 || !srv->shutdown_done)
        pthread_cond_wait(&srv->cond, &srv->mu);
    pthread_mutex_unlock(&srv->mu);

    pthread_join(srv->dispatcher, NULL);
    reap_done(srv);
    grpc_server_destroy(srv->server);
    server_free(srv);
}

/* ------------------------------------------------------ inside a handler */

/* The next request message as gRPC holds it (*out NULL unless 0). */
static int call_recv_buffer(struct rpc_call *c, grpc_byte_buffer **out)
{
    *out = NULL;
    if (c->finished)
        return RPC_ERR_FINISHED;
    if (c->recv_eos)
        return RPC_EOS;
    grpc_byte_buffer *bb = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &bb;
    int limit_ms = c->received ? c->srv->message_gap_ms : c->srv->first_message_ms;
    gpr_timespec by = c->received ? rpc_deadline_after_ms(limit_ms) : c->recv_by;
    char why[96];
    if (limit_ms % 1000)
        snprintf(why, sizeof why, "no request message within %d ms", limit_ms);
    else
        snprintf(why, sizeof why, "no request message within %d s", limit_ms / 1000);
    int rc = run_batch_by(c, &op, 1, TAG_RECV, by, why);
    if (rc != 0) {
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return rc;
    }
    if (!bb) {
        /* No message: the client half-closed, or the call died; gRPC reports
         * both alike. A cancellation completes the close watch at about the
         * same moment, a half-close never does before we finish, so a short
         * wait tells them apart: a truncated upload must not look complete. */
        poll_close(c, rpc_deadline_after_ms(EOS_CONFIRM_MS));
        if (c->closed && c->close_cancelled)
            return RPC_ERR_CANCELLED;
        c->recv_eos = 1;
        return RPC_EOS;
    }
    c->received++;
    *out = bb;
    return 0;
}

int rpc_call_recv(struct rpc_call *c, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    grpc_byte_buffer *bb;
    int rc = call_recv_buffer(c, &bb);
    if (rc != 0)
        return rc;
    rc = rpc_buffer_copy_out(bb, buf, len);
    grpc_byte_buffer_destroy(bb);
    return rc;
}

int rpc_call_recv_msg(struct rpc_call *c, struct rpc_msg **out)
{
    *out = NULL;
    grpc_byte_buffer *bb;
    int rc = call_recv_buffer(c, &bb);
    if (rc != 0)
        return rc;
    *out = rpc_msg_take(bb);
    return *out ? 0 : RPC_ERR_NOMEM;
}

static size_t add_initial_metadata(struct rpc_call *c, grpc_op *op)
{
    if (c->initial_md_sent)
        return 0;
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    op->data.send_initial_metadata.count = 0;
    c->initial_md_sent = 1;
    return 1;
}

int rpc_call_send(struct rpc_call *c, const uint8_t *buf, size_t len)
{
    const struct rpc_part part = { buf, len, NULL, NULL };
    return rpc_call_send_parts(c, &part, 1);
}

int rpc_call_send_parts(struct rpc_call *c, const struct rpc_part *parts, size_t n_parts)
{
    if (c->finished) {
        rpc_parts_release(parts, n_parts);
        return RPC_ERR_FINISHED;
    }
    grpc_byte_buffer *bb = rpc_buffer_copy_parts(parts, n_parts);
    if (!bb)
        return RPC_ERR_NOMEM;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = add_initial_metadata(c, &ops[0]);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = bb;
    n++;
    /* A client that stops reading (flow control holds the send) must not hold the call,
     * its thread and what the handler streams from forever. */
    const int limit_ms = c->srv->message_gap_ms;
    char why[96];
    if (limit_ms % 1000)
        snprintf(why, sizeof why, "the client took no stream message within %d ms", limit_ms);
    else
        snprintf(why, sizeof why, "the client took no stream message within %d s",
                 limit_ms / 1000);
    int rc = run_batch_by(c, ops, n, TAG_SEND, rpc_deadline_after_ms(limit_ms), why);
    grpc_byte_buffer_destroy(bb);
    return rc;
}

int rpc_call_finish(struct rpc_call *c, grpc_status_code code, const char *details,
                    const uint8_t *reply, size_t reply_len)
{
    if (c->finished)
        return RPC_ERR_FINISHED;
    c->finished = 1;
    call_leave(c);
    grpc_byte_buffer *bb = NULL;
    if (reply) {
        bb = rpc_buffer_copy_in(reply, reply_len);
        if (!bb) {
            code = GRPC_STATUS_INTERNAL;
            details = "server out of memory";
        }
    }
    grpc_slice details_slice = grpc_slice_from_copied_string(details ? details : "");
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t n = add_initial_metadata(c, &ops[0]);
    if (bb) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = bb;
        n++;
    }
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n].data.send_status_from_server.status_details = &details_slice;
    n++;
    int rc = run_batch(c, ops, n, TAG_FINISH);
    if (rc != RPC_ERR_CALL_START)
        c->status_started = 1;
    grpc_slice_unref(details_slice);
    if (bb)
        grpc_byte_buffer_destroy(bb);
    return rc;
}

const char *rpc_call_method(const struct rpc_call *c)
{
    return c->method ? c->method->path : "(unknown method)";
}

const char *rpc_call_peer(struct rpc_call *c)
{
    if (!c->peer && c->call)
        c->peer = grpc_call_get_peer(c->call);
    return c->peer ? c->peer : "unknown";
}

int rpc_call_metadata_get(const struct rpc_call *c, const char *key,
                          const uint8_t **value, size_t *value_len)
{
    for (size_t i = 0; i < c->md.count; i++) {
        if (grpc_slice_str_cmp(c->md.metadata[i].key, key) == 0) {
            *value = GRPC_SLICE_START_PTR(c->md.metadata[i].value);
            *value_len = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
            return 0;
        }
    }
    *value = NULL;
    *value_len = 0;
    return RPC_ERR_NOT_FOUND;
}

int64_t rpc_call_deadline_ms(const struct rpc_call *c)
{
    return rpc_ms_until(c->deadline);
}

void rpc_call_set_authenticated(struct rpc_call *c)
{
    pthread_mutex_lock(&c->srv->mu);
    if (c->admitted)
        rpc_admission_authenticated(&c->srv->admission, &c->slot, time_mono_ms());
    pthread_mutex_unlock(&c->srv->mu);
}

int rpc_call_is_cancelled(struct rpc_call *c)
{
    if (atomic_load(&c->srv->stopping))
        return 1;
    poll_close(c, gpr_inf_past(GPR_CLOCK_MONOTONIC));
    if (c->closed)
        return c->close_cancelled != 0;
    return rpc_call_deadline_ms(c) == 0;
}
