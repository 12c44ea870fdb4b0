#include "proto/rpc_internal.h"

#include <limits.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "common/log.h"

enum { TAG_OPEN = 1, TAG_SEND, TAG_CLOSE_SEND, TAG_RECV, TAG_STATUS, TAG_UNARY, TAG_WATCH };
#define TAG(t) ((void *)(intptr_t)(t))

struct rpc_channel {
    grpc_channel *channel;
};

struct rpc_stream {
    grpc_call             *call;
    grpc_completion_queue *cq;
    grpc_metadata_array    initial_md;
    int got_initial_md;
    int half_closed;
    int send_failed;      /* the server ended or refused the call */
    int recv_failed;
};

/* --------------------------------------------------------------- channel */

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_INTEGER;
    a.key = (char *)key;
    a.value.integer = value;
    return a;
}

static grpc_arg string_arg(const char *key, const char *value)
{
    grpc_arg a;
    memset(&a, 0, sizeof a);
    a.type = GRPC_ARG_STRING;
    a.key = (char *)key;
    a.value.string = (char *)value;
    return a;
}

static int load_channel_credentials(const struct rpc_channel_options *o,
                                    grpc_channel_credentials **out)
{
    *out = NULL;
    if (!o->tls_ca_file) {
        if (o->tls_cert_file || o->tls_key_file || o->tls_server_name_override) {
            log_error("rpc: TLS client settings need tls_ca_file");
            return RPC_ERR_INVALID_ARG;
        }
        *out = grpc_insecure_credentials_create();
        return 0;
    }
    if (!o->tls_cert_file != !o->tls_key_file) {
        log_error("rpc: a client certificate needs both tls_cert_file and tls_key_file");
        return RPC_ERR_INVALID_ARG;
    }
    char *ca = NULL, *cert = NULL, *key = NULL;
    int rc = rpc_read_pem(o->tls_ca_file, &ca);
    if (rc == 0 && o->tls_cert_file)
        rc = rpc_read_pem(o->tls_cert_file, &cert);
    if (rc == 0 && o->tls_key_file)
        rc = rpc_read_pem(o->tls_key_file, &key);
    if (rc == 0) {
        grpc_ssl_pem_key_cert_pair pair = { .private_key = key, .cert_chain = cert };
        *out = grpc_ssl_credentials_create_ex(ca, cert ? &pair : NULL, NULL, NULL);
        if (!*out)
            rc = RPC_ERR_TLS;
    }
    rpc_free_pem(ca);
    rpc_free_pem(cert);
    rpc_free_pem(key);
    return rc;
}

int rpc_channel_open(const char *target, const struct rpc_channel_options *opts,
                     struct rpc_channel **out)
{
    static const struct rpc_channel_options defaults;
    if (!target || !out)
        return RPC_ERR_INVALID_ARG;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    struct rpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return RPC_ERR_NOMEM;
    grpc_init();
    grpc_channel_credentials *creds;
    int rc = load_channel_credentials(opts, &creds);
    if (rc != 0) {
        free(ch);
        grpc_shutdown();
        return rc;
    }
    size_t max = opts->max_message_bytes ? opts->max_message_bytes : RPC_DEFAULT_MAX_MESSAGE_BYTES;
    int max_int = max > INT_MAX ? INT_MAX : (int)max;
    grpc_arg args[6] = {
        int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, max_int),
        int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, max_int),
        int_arg(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, RPC_RECONNECT_BACKOFF_INITIAL_MS),
        int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, RPC_RECONNECT_BACKOFF_MAX_MS),
    };
    size_t n_args = 4;
    if (opts->tls_server_name_override)
        args[n_args++] = string_arg(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                                    opts->tls_server_name_override);
    if (opts->own_connection)
        args[n_args++] = int_arg(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    grpc_channel_args ch_args = { .num_args = n_args, .args = args };
    ch->channel = grpc_channel_create(target, creds, &ch_args);
    grpc_channel_credentials_release(creds);
    *out = ch;
    return 0;
}

int rpc_channel_wait_ready(struct rpc_channel *ch, int64_t timeout_ms)
{
    if (!ch || timeout_ms < 0)
        return RPC_ERR_INVALID_ARG;
    gpr_timespec deadline = rpc_deadline_after_ms(timeout_ms);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    int rc = 0;
    grpc_connectivity_state s;
    /* Plucking the watch is what polls the connection attempt: a channel nobody waits
     * on only notices at gRPC's backup poll, every 5 s. */
    while ((s = grpc_channel_check_connectivity_state(ch->channel, 1)) != GRPC_CHANNEL_READY) {
        if (s == GRPC_CHANNEL_SHUTDOWN) {
            rc = RPC_ERR_CANCELLED;
            break;
        }
        grpc_channel_watch_connectivity_state(ch->channel, s, deadline, cq, TAG(TAG_WATCH));
        grpc_event ev = grpc_completion_queue_pluck(cq, TAG(TAG_WATCH),
                                                    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success) {   /* the deadline passed */
            rc = RPC_ERR_CANCELLED;
            break;
        }
    }
    rpc_cq_destroy(cq);
    return rc;
}

void rpc_channel_close(struct rpc_channel *ch)
{
    if (!ch)
        return;
    grpc_channel_destroy(ch->channel);
    free(ch);
    grpc_shutdown();
}

/* ----------------------------------------------------------------- calls */

static void fail_status(struct rpc_status *st, int rc)
{
    const char *msg = rpc_strerror(rc);
    rpc_status_set(st, GRPC_STATUS_INTERNAL, msg, strlen(msg));
}

static void free_metadata(grpc_metadata *md, size_t n)
{
    if (!md)
        return;
    for (size_t i = 0; i < n; i++) {
        grpc_slice_unref(md[i].key);
        grpc_slice_unref(md[i].value);
    }
    free(md);
}

static int make_metadata(const struct rpc_call_options *o, grpc_metadata **out)
{
    *out = NULL;
    if (o->n_metadata == 0)
        return 0;
    if (!o->metadata)
        return RPC_ERR_INVALID_ARG;
    grpc_metadata *md = calloc(o->n_metadata, sizeof *md);
    if (!md)
        return RPC_ERR_NOMEM;
    for (size_t i = 0; i < o->n_metadata; i++) {
        const struct rpc_metadata *m = &o->metadata[i];
        if (!m->key || (!m->value && m->value_len)) {
            free_metadata(md, i);
            return RPC_ERR_INVALID_ARG;
        }
        md[i].key = grpc_slice_from_copied_string(m->key);
        md[i].value = grpc_slice_from_copied_buffer((const char *)m->value, m->value_len);
        if (!grpc_header_key_is_legal(md[i].key) ||
            (!grpc_is_binary_header(md[i].key) && !grpc_header_nonbin_value_is_legal(md[i].value))) {
            log_error("rpc: illegal request metadata key or value (key \"%s\")", m->key);
            free_metadata(md, i + 1);
            return RPC_ERR_INVALID_ARG;
        }
    }
    *out = md;
    return 0;
}

/* A call on its own pluck queue, with the deadline from opts. */
static int start_call(struct rpc_channel *ch, const char *method,
                      const struct rpc_call_options *opts,
                      grpc_call **call, grpc_completion_queue **cq)
{
    *call = NULL;
    *cq = NULL;
    if (!ch || !method || method[0] != '/' || !opts || opts->timeout_ms <= 0)
        return RPC_ERR_INVALID_ARG;
    *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_slice path = grpc_slice_from_copied_string(method);
    *call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, *cq, path, NULL,
                                     rpc_deadline_after_ms(opts->timeout_ms), NULL);
    grpc_slice_unref(path);
    if (!*call) {
        rpc_cq_destroy(*cq);
        *cq = NULL;
        return RPC_ERR_CALL_START;
    }
    return 0;
}

static void end_call(grpc_call *call, grpc_completion_queue *cq)
{
    if (call)
        grpc_call_unref(call);
    rpc_cq_destroy(cq);
}

static void init_md_op(grpc_op *op, const struct rpc_call_options *opts, grpc_metadata *md)
{
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    op->flags = opts->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
    op->data.send_initial_metadata.count = md ? opts->n_metadata : 0;
    op->data.send_initial_metadata.metadata = md;
}

/* Waits for the batch tagged tag; the call's deadline bounds the wait. With interrupt,
 * looks at *interrupt every RPC_INTERRUPT_POLL_MS and cancels the call once it is set
 * (the batch then completes at once); *interrupted says whether it did. */
static grpc_event wait_batch(grpc_call *call, grpc_completion_queue *cq, int tag,
                             const volatile sig_atomic_t *interrupt, int *interrupted)
{
    *interrupted = 0;
    for (;;) {
        const int sliced = interrupt && !*interrupted;
        gpr_timespec until = sliced ? rpc_deadline_after_ms(RPC_INTERRUPT_POLL_MS)
                                    : gpr_inf_future(GPR_CLOCK_REALTIME);
        grpc_event ev = grpc_completion_queue_pluck(cq, TAG(tag), until, NULL);
        if (ev.type != GRPC_QUEUE_TIMEOUT || !sliced)
            return ev;   /* (a timeout without a deadline of ours: the caller's failure) */
        if (*interrupt) {
            grpc_call_cancel(call, NULL);
            *interrupted = 1;
        }
    }
}

/* Starts ops and waits for them (wait_batch: the call's deadline bounds the wait; with
 * interrupt, so does the caller's flag, and *interrupted says whether it ended it). */
static int run_batch_interruptible(grpc_call *call, grpc_completion_queue *cq,
                                   const grpc_op *ops, size_t n, int tag,
                                   const volatile sig_atomic_t *interrupt, int *interrupted)
{
    *interrupted = 0;
    grpc_call_error e = grpc_call_start_batch(call, ops, n, TAG(tag), NULL);
    if (e != GRPC_CALL_OK) {
        log_error("rpc: cannot start batch: %s", grpc_call_error_to_string(e));
        return RPC_ERR_CALL_START;
    }
    grpc_event ev = wait_batch(call, cq, tag, interrupt, interrupted);
    return ev.type == GRPC_OP_COMPLETE && ev.success ? 0 : RPC_ERR_CANCELLED;
}

static int run_batch(grpc_call *call, grpc_completion_queue *cq, const grpc_op *ops, size_t n,
                     int tag)
{
    int interrupted;
    return run_batch_interruptible(call, cq, ops, n, tag, NULL, &interrupted);
}

/* RPC_ERR_INTERRUPTED, with st CANCELLED and its words. */
static int fail_interrupted(struct rpc_status *st)
{
    const char *msg = rpc_strerror(RPC_ERR_INTERRUPTED);
    rpc_status_set(st, GRPC_STATUS_CANCELLED, msg, strlen(msg));
    return RPC_ERR_INTERRUPTED;
}

int rpc_unary(struct rpc_channel *ch, const char *method,
              const struct rpc_call_options *opts,
              const uint8_t *req, size_t req_len,
              uint8_t **reply, size_t *reply_len, struct rpc_status *st)
{
    *reply = NULL;
    *reply_len = 0;
    if (!req && req_len) {
        fail_status(st, RPC_ERR_INVALID_ARG);
        return RPC_ERR_INVALID_ARG;
    }
    if (opts && opts->interrupt && *opts->interrupt)
        return fail_interrupted(st);   /* already stopping: nothing is sent */
    grpc_metadata *md = NULL;
    grpc_call *call = NULL;
    grpc_completion_queue *cq = NULL;
    int rc = opts ? make_metadata(opts, &md) : RPC_ERR_INVALID_ARG;
    if (rc == 0)
        rc = start_call(ch, method, opts, &call, &cq);
    grpc_byte_buffer *req_bb = rc == 0 ? rpc_buffer_copy_in(req, req_len) : NULL;
    if (rc == 0 && !req_bb)
        rc = RPC_ERR_NOMEM;
    if (rc != 0) {
        free_metadata(md, opts ? opts->n_metadata : 0);
        end_call(call, cq);
        fail_status(st, rc);
        return rc;
    }

    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_byte_buffer *reply_bb = NULL;
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    init_md_op(&ops[0], opts, md);
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &reply_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &code;
    ops[5].data.recv_status_on_client.status_details = &details;
    /* (RECV_STATUS_ON_CLIENT always completes; its outcome is in code, not in rc) */
    int interrupted;
    rc = run_batch_interruptible(call, cq, ops, 6, TAG_UNARY, opts->interrupt, &interrupted);

    if (rc == RPC_ERR_CALL_START) {
        fail_status(st, rc);
    } else if (interrupted && code != GRPC_STATUS_OK) {
        rc = fail_interrupted(st);
    } else {
        /* RECV_STATUS_ON_CLIENT reports failures in code, not in success. */
        rpc_status_set(st, code, (const char *)GRPC_SLICE_START_PTR(details),
                       GRPC_SLICE_LENGTH(details));
        if (code != GRPC_STATUS_OK) {
            rc = RPC_ERR_STATUS;
        } else if (!reply_bb) {
            rc = RPC_ERR_NO_REPLY;
            fail_status(st, rc);
        } else {
            rc = rpc_buffer_copy_out(reply_bb, reply, reply_len);
        }
    }
    if (reply_bb)
        grpc_byte_buffer_destroy(reply_bb);
    grpc_byte_buffer_destroy(req_bb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    free_metadata(md, opts->n_metadata);
    end_call(call, cq);
    return rc;
}

/* --------------------------------------------------------------- streams */

int rpc_stream_open(struct rpc_channel *ch, const char *method,
                    const struct rpc_call_options *opts, struct rpc_stream **out)
{
    if (!out || !opts)
        return RPC_ERR_INVALID_ARG;
    *out = NULL;
    grpc_metadata *md = NULL;
    int rc = make_metadata(opts, &md);
    if (rc != 0)
        return rc;
    struct rpc_stream *s = calloc(1, sizeof *s);
    if (!s) {
        free_metadata(md, opts->n_metadata);
        return RPC_ERR_NOMEM;
    }
    rc = start_call(ch, method, opts, &s->call, &s->cq);
    if (rc != 0) {
        free_metadata(md, opts->n_metadata);
        free(s);
        return rc;
    }
    grpc_metadata_array_init(&s->initial_md);
    grpc_op op;
    memset(&op, 0, sizeof op);
    init_md_op(&op, opts, md);
    rc = run_batch(s->call, s->cq, &op, 1, TAG_OPEN);
    free_metadata(md, opts->n_metadata);
    if (rc == RPC_ERR_CALL_START) {
        grpc_metadata_array_destroy(&s->initial_md);
        end_call(s->call, s->cq);
        free(s);
        return rc;
    }
    /* Any other failure shows in the status at rpc_stream_finish. */
    s->send_failed = s->recv_failed = rc != 0;
    *out = s;
    return 0;
}

int rpc_stream_send(struct rpc_stream *s, const uint8_t *buf, size_t len)
{
    if (!buf && len)
        return RPC_ERR_INVALID_ARG;
    if (s->send_failed)
        return RPC_ERR_CANCELLED;
    if (s->half_closed)
        return RPC_ERR_FINISHED;
    grpc_byte_buffer *bb = rpc_buffer_copy_in(buf, len);
    if (!bb)
        return RPC_ERR_NOMEM;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    int rc = run_batch(s->call, s->cq, &op, 1, TAG_SEND);
    grpc_byte_buffer_destroy(bb);
    if (rc != 0)
        s->send_failed = 1;
    return rc;
}

int rpc_stream_close_send(struct rpc_stream *s)
{
    if (s->half_closed)
        return 0;
    if (s->send_failed)
        return RPC_ERR_CANCELLED;
    s->half_closed = 1;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    int rc = run_batch(s->call, s->cq, &op, 1, TAG_CLOSE_SEND);
    if (rc != 0)
        s->send_failed = 1;
    return rc;
}

static size_t add_recv_initial_md(struct rpc_stream *s, grpc_op *op)
{
    if (s->got_initial_md)
        return 0;
    s->got_initial_md = 1;
    op->op = GRPC_OP_RECV_INITIAL_METADATA;
    op->data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
    return 1;
}

/* Receives the next message's byte buffer: 0 with *bb, RPC_EOS at the end of the stream
 * (*bb NULL), or the batch's error. */
static int stream_recv_buffer(struct rpc_stream *s, grpc_byte_buffer **bb)
{
    *bb = NULL;
    if (s->recv_failed)
        return RPC_ERR_CANCELLED;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = add_recv_initial_md(s, &ops[0]);
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n].data.recv_message.recv_message = bb;
    n++;
    int rc = run_batch(s->call, s->cq, ops, n, TAG_RECV);
    if (rc != 0) {
        s->recv_failed = 1;
        if (*bb)
            grpc_byte_buffer_destroy(*bb);
        *bb = NULL;
    }
    return rc == 0 && !*bb ? RPC_EOS : rc;
}

int rpc_stream_recv(struct rpc_stream *s, uint8_t **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    grpc_byte_buffer *bb;
    int rc = stream_recv_buffer(s, &bb);
    if (rc != 0)
        return rc;
    rc = rpc_buffer_copy_out(bb, buf, len);
    grpc_byte_buffer_destroy(bb);
    return rc;
}

int rpc_stream_recv_msg(struct rpc_stream *s, struct rpc_msg **out)
{
    *out = NULL;
    grpc_byte_buffer *bb;
    int rc = stream_recv_buffer(s, &bb);
    if (rc != 0)
        return rc;
    *out = rpc_msg_take(bb);
    return *out ? 0 : RPC_ERR_NOMEM;
}

void rpc_tune_malloc_for_streams(void)
{
#ifdef M_MMAP_THRESHOLD
    if (mallopt(M_MMAP_THRESHOLD, 32 << 20) != 1 || mallopt(M_TRIM_THRESHOLD, 64 << 20) != 1)
        log_warn("glibc refused the download buffers' allocator settings (mmap threshold "
                 "32 MiB, trim threshold 64 MiB): downloads work, slower");
#endif
}

void rpc_stream_cancel(struct rpc_stream *s)
{
    grpc_call_cancel(s->call, NULL);
}

int rpc_stream_finish(struct rpc_stream *s, struct rpc_status *st)
{
    if (!s->half_closed && !s->send_failed)
        rpc_stream_close_send(s);
    grpc_metadata_array trailing_md;
    grpc_metadata_array_init(&trailing_md);
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = add_recv_initial_md(s, &ops[0]);
    ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[n].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[n].data.recv_status_on_client.status = &code;
    ops[n].data.recv_status_on_client.status_details = &details;
    n++;
    int rc = run_batch(s->call, s->cq, ops, n, TAG_STATUS);
    if (rc == RPC_ERR_CALL_START) {
        fail_status(st, rc);
    } else {
        rpc_status_set(st, code, (const char *)GRPC_SLICE_START_PTR(details),
                       GRPC_SLICE_LENGTH(details));
        rc = code == GRPC_STATUS_OK ? 0 : RPC_ERR_STATUS;
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_metadata_array_destroy(&s->initial_md);
    end_call(s->call, s->cq);
    free(s);
    return rc;
}
