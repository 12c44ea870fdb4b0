#ifndef AULAC_PROTO_RPC_H
#define AULAC_PROTO_RPC_H
/* Bytes-level gRPC glue over the gRPC C core (grpc/grpc.h).
 *
 * Server: every accepted call runs its handler on a thread of its own, so a
 * handler is plain blocking code: rpc_call_recv() the request(s),
 * rpc_call_send() stream messages, rpc_call_finish() with a status.
 * Client: rpc_unary() for one request / one reply, struct rpc_stream for
 * streams in either direction. One message is in flight at a time, so streams
 * of any total size use bounded memory.
 *
 * rpc_server_start() and rpc_channel_open() take a reference on the gRPC
 * library (grpc_init); rpc_server_stop() and rpc_channel_close() drop it.
 *
 * Return values: 0 on success, RPC_EOS (> 0) at the end of a stream, and a
 * negative code in -1500..-1599 on failure; rpc_strerror() describes any of
 * them (codes of proto/pb.h and proto/client.h share the range). */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <grpc/status.h>

#define RPC_EOS                 1      /* end of stream: no more messages */

#define RPC_ERR_INVALID_ARG     (-1500)
#define RPC_ERR_NOMEM           (-1501)
#define RPC_ERR_LISTEN          (-1502)  /* cannot listen on the address */
#define RPC_ERR_TLS_FILE        (-1503)  /* cannot read a certificate/key file */
#define RPC_ERR_TLS             (-1504)  /* cannot build TLS credentials */
#define RPC_ERR_THREAD          (-1505)
#define RPC_ERR_CALL_START      (-1506)  /* gRPC refused to start the call/op */
#define RPC_ERR_STATUS          (-1507)  /* call ended with a non-OK status */
#define RPC_ERR_CANCELLED       (-1508)  /* call cancelled, failed or past deadline */
#define RPC_ERR_FINISHED        (-1509)  /* call already finished */
#define RPC_ERR_NOT_FOUND       (-1510)  /* metadata key not present */
#define RPC_ERR_NO_REPLY        (-1511)  /* status OK but no reply message */
#define RPC_ERR_INTERRUPTED     (-1512)  /* the caller's interrupt flag cancelled the call */
/* -1520..-1529: proto/pb.h; -1530..-1539: proto/client.h */

#define RPC_DEFAULT_MAX_MESSAGE_BYTES  (4u << 20)
/* A client channel that lost its server tries to connect again after
 * RPC_RECONNECT_BACKOFF_INITIAL_MS, then ever less often (x1.6, jitter +-20 %)
 * but at least every RPC_RECONNECT_BACKOFF_MAX_MS; in between, calls that do not
 * wait for ready fail at once with the last connection error. (gRPC's defaults,
 * 1 s growing to 120 s, left a restarted coordinator unseen for many seconds.) */
#define RPC_RECONNECT_BACKOFF_INITIAL_MS  100
#define RPC_RECONNECT_BACKOFF_MAX_MS      1000
#define RPC_DEFAULT_MAX_CALLS          64
#define RPC_DEFAULT_SHUTDOWN_GRACE_MS  1000
#define RPC_DEFAULT_MAX_CALLS_PER_PEER 8       /* unauthenticated, per client address */
#define RPC_DEFAULT_FIRST_MESSAGE_MS   10000
#define RPC_DEFAULT_MESSAGE_GAP_MS     60000
#define RPC_DEFAULT_MEMORY_QUOTA_BYTES ((size_t)128 << 20)

/* Any code of the proto/ module (or 0, RPC_EOS) in words; never NULL. */
const char *rpc_strerror(int rc);
/* "OK", "CANCELLED", ..., "UNAUTHENTICATED"; never NULL. */
const char *rpc_status_name(grpc_status_code code);

/* The outcome of a client call. Caller-owned; details are copied in
 * (truncated to fit) and need no freeing. */
struct rpc_status {
    grpc_status_code code;
    char details[512];
};

/* One request metadata entry. Keys are lower-case; keys ending in "-bin"
 * carry arbitrary bytes, others printable ASCII. */
struct rpc_metadata {
    const char    *key;
    const uint8_t *value;
    size_t         value_len;
};

/* ------------------------------------------------------------------ server */

struct rpc_server;
struct rpc_call;

enum rpc_kind {
    RPC_UNARY,          /* one request, one reply */
    RPC_SERVER_STREAM,  /* one request, a stream of replies */
    RPC_CLIENT_STREAM,  /* a stream of requests, one reply */
    RPC_BIDI_STREAM,    /* both; the glue treats all kinds the same */
};

/* Runs on the call's own thread. It should end with rpc_call_finish(); if it
 * returns without, the glue finishes the call with INTERNAL. ctx is the
 * pointer given to rpc_server_start(). */
typedef void (*rpc_handler)(struct rpc_call *call, void *ctx);

struct rpc_method {
    const char    *path;      /* "/aulac.v1.Federation/Hello"; must outlive the server */
    enum rpc_kind  kind;
    rpc_handler    handler;
};

/* Limits against clients that hold the server's resources without using them.
 * Every refusal reaches the client as a status with a reason:
 *
 *   - Calls: at most max_concurrent_calls run at once. A call starts
 *     unauthenticated; at most max_unauthenticated_calls of those, and at most
 *     max_calls_per_peer of those from one client address (the peer's host,
 *     any port), run at once. rpc_call_set_authenticated() moves a call out of
 *     both, so anonymous clients never take more than max_unauthenticated_calls
 *     slots from authenticated ones; and an address from which a call
 *     authenticated in the last 10 minutes is exempt from both (members keep
 *     their way in while anonymous clients on other addresses fill the
 *     budget). Refused: RESOURCE_EXHAUSTED.
 *   - Time: a call's first request message must arrive within first_message_ms
 *     of its start, and each next one within message_gap_ms of the handler
 *     asking for it; otherwise the call ends with DEADLINE_EXCEEDED ("no request
 *     message within N s") and rpc_call_recv returns RPC_ERR_CANCELLED.
 *     Likewise each streamed response message must be taken by the client (HTTP/2
 *     flow control) within message_gap_ms of rpc_call_send, or the call ends with
 *     DEADLINE_EXCEEDED ("the client took no stream message within N s") and
 *     rpc_call_send returns RPC_ERR_CANCELLED: a download abandoned without a cancel
 *     frees its handler. Nothing limits how long a handler may take to answer (long
 *     polls).
 *   - Memory: gRPC buffers a whole incoming message before it applies
 *     max_message_bytes (gRPC 1.51), so the bytes held for all connections are
 *     bounded by a gRPC resource quota of memory_quota_bytes. Past it gRPC
 *     resets streams (RST_STREAM ENHANCE_YOUR_CALM: RESOURCE_EXHAUSTED at the
 *     client), beginning with the oldest connection that has calls: under such
 *     an attack a member's call in flight may be reset too and must be retried;
 *     nothing it was told succeeded is lost. */
/* The server pings every connection this often and closes one whose peer has not
 * answered a ping within the timeout (a stopped or hung client). A client answers
 * while one of its calls polls; an idle one only through gRPC's backup poller, which
 * handles one connection's event per poll (GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS,
 * 5 s by default): a process idling on many connections at once (bench/scale's
 * simulated members) must poll more often, or lose some of them. */
#define RPC_KEEPALIVE_MS          60000
#define RPC_KEEPALIVE_TIMEOUT_MS  20000

struct rpc_server_options {
    const char *listen_addr;          /* "127.0.0.1:0" picks a free port */
    size_t      max_message_bytes;    /* both directions; 0: RPC_DEFAULT_MAX_MESSAGE_BYTES */
    int         max_concurrent_calls; /* 0: RPC_DEFAULT_MAX_CALLS */
    int         max_unauthenticated_calls; /* <= max_concurrent_calls;
                                         0: a quarter of it (at least 1) */
    int         max_calls_per_peer;   /* unauthenticated calls from one address;
                                         0: RPC_DEFAULT_MAX_CALLS_PER_PEER (at most
                                         max_unauthenticated_calls) */
    int         first_message_ms;     /* 0: RPC_DEFAULT_FIRST_MESSAGE_MS */
    int         message_gap_ms;       /* 0: RPC_DEFAULT_MESSAGE_GAP_MS */
    size_t      memory_quota_bytes;   /* at least 2 * max_message_bytes;
                                         0: RPC_DEFAULT_MEMORY_QUOTA_BYTES */
    int         shutdown_grace_ms;    /* rpc_server_stop waits this long for calls
                                         to end before cancelling them; 0: default */
    /* TLS: cert and key both NULL means an insecure (plaintext) listener. */
    const char *tls_cert_file;        /* PEM chain */
    const char *tls_key_file;         /* PEM private key */
    const char *tls_client_ca_file;   /* verify client certificates against it */
    int         require_client_cert;  /* mutual TLS: refuse clients without one */
};

/* Binds, starts and returns a running server; *bound_port (may be NULL)
 * receives the port actually bound. methods[] and ctx must outlive the server.
 * Errors: RPC_ERR_INVALID_ARG, RPC_ERR_LISTEN (address in use or invalid),
 * RPC_ERR_TLS_FILE, RPC_ERR_TLS, RPC_ERR_NOMEM, RPC_ERR_THREAD. */
int rpc_server_start(const struct rpc_server_options *opts,
                     const struct rpc_method *methods, size_t n_methods,
                     void *ctx, struct rpc_server **out, int *bound_port)
    __attribute__((warn_unused_result));

/* Stops accepting calls, gives running calls shutdown_grace_ms to end, then
 * cancels the rest, joins every thread and frees the server. From the moment
 * it is called, rpc_call_is_cancelled() is true for every call. NULL is a
 * no-op. Must not be called from a handler. */
void rpc_server_stop(struct rpc_server *srv);

/* Inside a handler. All of these are for the handler's own thread only. */

/* Next request message into a malloc'd buffer the caller frees (never NULL on
 * success, even for an empty message). Returns 0, RPC_EOS when the client has
 * closed its side, RPC_ERR_CANCELLED (client gone, deadline, shutdown, message
 * over the size limit, no message in time: gRPC has already told the client;
 * the call is over, and rpc_call_finish gives RPC_ERR_FINISHED or
 * RPC_ERR_CANCELLED) or RPC_ERR_FINISHED.
 * RPC_EOS comes after a short wait (50 ms) that tells a clean end of stream
 * from a cancelled one; rpc_call_finish still reports a later cancellation. */
int rpc_call_recv(struct rpc_call *call, uint8_t **buf, size_t *len);

/* Sends one stream message; returns when gRPC has taken it (flow control), so
 * buf may be reused at once. RPC_ERR_CANCELLED (the client cancelled, went away, or took
 * nothing for message_gap_ms), RPC_ERR_FINISHED. */
int rpc_call_send(struct rpc_call *call, const uint8_t *buf, size_t len);

/* One piece of a message sent in pieces. A part with a release function is lent to gRPC,
 * not copied: gRPC reads buf[0, len) until it has written it to the connection, which may
 * be after rpc_call_send_parts returns and after the call ends (at the latest when the
 * connection closes: a peer that stops answering is cut off after RPC_KEEPALIVE_MS +
 * RPC_KEEPALIVE_TIMEOUT_MS); then release(arg) is called, exactly once whatever the
 * outcome (also when the send fails or never starts), from any thread, which may be one
 * of gRPC's: it must take no lock the caller may hold while it calls into proto/rpc.h. */
struct rpc_part {
    const void *buf;
    size_t      len;
    void      (*release)(void *arg);   /* NULL: copied */
    void       *arg;
};

/* rpc_call_send of the concatenation of n parts: each byte of a copied part is copied
 * once, into the message gRPC sends (a header and a large body need no buffer of their
 * own); lent parts are not copied at all. */
int rpc_call_send_parts(struct rpc_call *call, const struct rpc_part *parts, size_t n);

/* Ends the call: optional reply message (NULL for none), then the status.
 * details may be NULL. Call once; a second call gives RPC_ERR_FINISHED.
 * RPC_ERR_CANCELLED if the client is gone (nothing to do about it). */
int rpc_call_finish(struct rpc_call *call, grpc_status_code code, const char *details,
                    const uint8_t *reply, size_t reply_len);

/* The method path being served. Valid until the handler returns. */
const char *rpc_call_method(const struct rpc_call *call);

/* The client's address ("ipv4:127.0.0.1:53422"); unauthenticated, for logs
 * only. Valid until the handler returns; never NULL. */
const char *rpc_call_peer(struct rpc_call *call);

/* Request metadata value for key (exact, lower-case). *value points into the
 * call and is valid until the handler returns; "-bin" values are already
 * decoded. If a key repeats, the first value. RPC_ERR_NOT_FOUND. */
int rpc_call_metadata_get(const struct rpc_call *call, const char *key,
                          const uint8_t **value, size_t *value_len);

/* Milliseconds left until the client's deadline: 0 when passed, INT64_MAX
 * when the client set none. */
int64_t rpc_call_deadline_ms(const struct rpc_call *call);

/* The handler has authenticated the request (a signature verified): the call
 * leaves the unauthenticated budgets (struct rpc_server_options) and counts
 * only against max_concurrent_calls. Call once the first message is checked;
 * a second call is a no-op. */
void rpc_call_set_authenticated(struct rpc_call *call);

/* 1 if the call can no longer succeed: client cancelled or disconnected,
 * deadline passed, or the server is stopping. Cheap and non-blocking: a
 * handler that waits on its own condition variable (long poll) should wait
 * in slices of <= 100 ms and check this between them. */
int rpc_call_is_cancelled(struct rpc_call *call);

/* ------------------------------------------------------------------ client */

struct rpc_channel;
struct rpc_stream;

struct rpc_channel_options {
    size_t      max_message_bytes;    /* both directions; 0: RPC_DEFAULT_MAX_MESSAGE_BYTES */
    /* TLS: tls_ca_file set means TLS, checking the server against that CA. */
    const char *tls_ca_file;
    const char *tls_cert_file;        /* client certificate for mutual TLS */
    const char *tls_key_file;
    const char *tls_server_name_override; /* name expected in the server cert */
    int         own_connection;       /* 1: this channel never shares its TCP connection
                                         with another channel of the process (gRPC's
                                         local subchannel pool); 0: channels to the same
                                         target with the same settings share one. A
                                         process simulating many clients (bench/scale)
                                         sets it so that each has its own connection */
};

/* Per-call settings. */
struct rpc_call_options {
    int64_t timeout_ms;                   /* > 0: every call has a deadline */
    const struct rpc_metadata *metadata;  /* request metadata; may be NULL */
    size_t  n_metadata;
    int     wait_for_ready;               /* 1: wait for the connection until the
                                             deadline instead of failing fast */
    const volatile sig_atomic_t *interrupt;  /* unary calls: when not NULL, the call is
                                             cancelled within RPC_INTERRUPT_POLL_MS of
                                             *interrupt becoming non-zero, and fails with
                                             RPC_ERR_INTERRUPTED (a stopping process's long
                                             poll); NULL: only the deadline ends a wait */
};
#define RPC_INTERRUPT_POLL_MS 100

/* Opens a channel; it connects lazily on the first call. opts may be NULL
 * (insecure, default limits). Errors: RPC_ERR_INVALID_ARG, RPC_ERR_TLS_FILE,
 * RPC_ERR_TLS, RPC_ERR_NOMEM. A channel may be used by many threads at once. */
int rpc_channel_open(const char *target, const struct rpc_channel_options *opts,
                     struct rpc_channel **out) __attribute__((warn_unused_result));

/* Every call and stream on it must have ended. NULL is a no-op. */
void rpc_channel_close(struct rpc_channel *ch);

/* Waits up to timeout_ms for the channel to be connected, connecting if it is idle,
 * and returns as soon as it is: 0, or RPC_ERR_CANCELLED when it is not by then (or is
 * shut down), RPC_ERR_INVALID_ARG. For a client whose calls failed because the server
 * is away: a call that does not wait for ready fails at once while the channel is in
 * reconnect backoff, and a channel nobody waits on processes its reconnection attempts
 * late; this waits on it, so the next call goes out as soon as the server is back. */
int rpc_channel_wait_ready(struct rpc_channel *ch, int64_t timeout_ms);

/* One request, one reply. On 0, *reply is a malloc'd buffer the caller frees.
 * st (may be NULL) always receives the call's status. Errors:
 * RPC_ERR_STATUS (see st), RPC_ERR_NO_REPLY, RPC_ERR_INVALID_ARG,
 * RPC_ERR_CALL_START, RPC_ERR_NOMEM, RPC_ERR_INTERRUPTED (opts->interrupt was set
 * before the call, which then sends nothing, or while it waited, which cancelled it;
 * st: CANCELLED; a reply that arrived first is returned as usual). */
int rpc_unary(struct rpc_channel *ch, const char *method,
              const struct rpc_call_options *opts,
              const uint8_t *req, size_t req_len,
              uint8_t **reply, size_t *reply_len, struct rpc_status *st);

/* Streams. Use from one thread. Pattern:
 *   rpc_stream_open → rpc_stream_send… → rpc_stream_close_send →
 *   rpc_stream_recv… until RPC_EOS → rpc_stream_finish.
 * When send fails (RPC_ERR_CANCELLED) the server has ended or refused the
 * call: stop sending; its reply, if any, can still be received. When recv
 * fails, go to rpc_stream_finish for the status. To stop reading a server
 * stream early, rpc_stream_cancel first, or finish waits for the server
 * until the deadline. */
int rpc_stream_open(struct rpc_channel *ch, const char *method,
                    const struct rpc_call_options *opts, struct rpc_stream **out)
    __attribute__((warn_unused_result));
int rpc_stream_send(struct rpc_stream *s, const uint8_t *buf, size_t len);
int rpc_stream_close_send(struct rpc_stream *s);
/* Next message into a malloc'd buffer the caller frees; RPC_EOS at the end. */
int rpc_stream_recv(struct rpc_stream *s, uint8_t **buf, size_t *len);

/* A received message as the transport holds it: the pieces gRPC read from the
 * connection, not copied into one buffer. Read it with rpc_msg_copy; free it with
 * rpc_msg_free. For large stream messages whose bytes the caller copies once, into
 * where they belong (pb_stream_recv_bulk). */
struct rpc_msg;
/* Next message without copying it; RPC_EOS at the end (*out NULL), errors as
 * rpc_stream_recv. */
int rpc_stream_recv_msg(struct rpc_stream *s, struct rpc_msg **out);
size_t rpc_msg_len(const struct rpc_msg *m);
/* Copies the message's bytes [off, off + len) to dst. 0, or RPC_ERR_INVALID_ARG when
 * the range runs past the message (nothing copied). */
int rpc_msg_copy(const struct rpc_msg *m, size_t off, size_t len, void *dst);
/* Calls fn(ctx, p, n) for each contiguous piece of the message's bytes [off, off + len),
 * in order, without copying them (a piece may be empty only when len is 0: no call).
 * 0; fn's first non-zero return, at which it stops; RPC_ERR_INVALID_ARG when the range
 * runs past the message (no call). */
int rpc_msg_each(const struct rpc_msg *m, size_t off, size_t len,
                 int (*fn)(void *ctx, const uint8_t *p, size_t n), void *ctx);
/* NULL is a no-op. */
void rpc_msg_free(struct rpc_msg *m);
/* rpc_call_recv without copying the message: *out as rpc_stream_recv_msg's (the caller
 * frees it); RPC_EOS at the end (*out NULL); errors as rpc_call_recv. For a server
 * that stores large request messages (SubmitUpdate's payload chunks). */
int rpc_call_recv_msg(struct rpc_call *call, struct rpc_msg **out);
/* For a process that receives large streams (a worker downloading models): keeps the
 * buffers gRPC allocates for each read in glibc's heap between messages (mmap threshold
 * 32 MiB, trim threshold 64 MiB, both fixed) instead of mapping fresh pages and faulting
 * each one in for every read, which costs about as much as copying the bytes
 * (bench/README.md, Scale). The price: each malloc arena may keep up to 64 MiB of freed
 * memory. Call once at the start of main. Logs a warning where glibc refuses a value
 * (a 32-bit build caps the mmap threshold lower); a no-op without glibc. */
void rpc_tune_malloc_for_streams(void);
void rpc_stream_cancel(struct rpc_stream *s);
/* Half-closes if not done, waits for the status, frees s (always, once).
 * 0 if the status is OK, else RPC_ERR_STATUS; st (may be NULL) gets it. */
int rpc_stream_finish(struct rpc_stream *s, struct rpc_status *st);

#endif
