#include "proto/client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "proto/pb.h"
#include "proto/rpc_internal.h"
#include "proto/service.h"
#include "proto/service_ledger.h"
#include "proto/service_node.h"

#define FED_DEFAULT_CALL_TIMEOUT_MS    15000
#define FED_DEFAULT_STREAM_TIMEOUT_MS  (3600 * 1000)

struct fed_client {
    struct rpc_channel *ch;
    int64_t call_timeout_ms;
    int64_t stream_timeout_ms;
    int     wait_for_ready;
    const struct crypto_key *identity;
    fed_sign_fn sign;
    void   *sign_ctx;
    const volatile sig_atomic_t *interrupt;
};

int fed_client_open(const char *target, const struct fed_client_options *opts,
                    struct fed_client **out)
{
    static const struct fed_client_options defaults;
    if (!target || !out)
        return RPC_ERR_INVALID_ARG;
    *out = NULL;
    if (!opts)
        opts = &defaults;
    if (opts->call_timeout_ms < 0 || opts->stream_timeout_ms < 0)
        return RPC_ERR_INVALID_ARG;
    struct fed_client *c = calloc(1, sizeof *c);
    if (!c)
        return RPC_ERR_NOMEM;
    struct rpc_channel_options ch_opts = opts->channel;
    if (!ch_opts.max_message_bytes)
        ch_opts.max_message_bytes = FED_DEFAULT_MAX_MESSAGE_BYTES;
    int rc = rpc_channel_open(target, &ch_opts, &c->ch);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->call_timeout_ms = opts->call_timeout_ms ? opts->call_timeout_ms : FED_DEFAULT_CALL_TIMEOUT_MS;
    c->stream_timeout_ms =
        opts->stream_timeout_ms ? opts->stream_timeout_ms : FED_DEFAULT_STREAM_TIMEOUT_MS;
    c->wait_for_ready = opts->wait_for_ready;
    c->identity = opts->identity;
    c->sign = opts->sign;
    c->sign_ctx = opts->sign_ctx;
    c->interrupt = opts->interrupt;
    *out = c;
    return 0;
}

void fed_client_close(struct fed_client *c)
{
    if (!c)
        return;
    rpc_channel_close(c->ch);
    free(c);
}

int fed_client_wait_ready(struct fed_client *c, int64_t timeout_ms)
{
    return c ? rpc_channel_wait_ready(c->ch, timeout_ms) : RPC_ERR_INVALID_ARG;
}

static struct rpc_call_options call_options(const struct fed_client *c, int64_t timeout_ms)
{
    struct rpc_call_options o = {
        .timeout_ms = timeout_ms,
        .wait_for_ready = c->wait_for_ready,
    };
    return o;
}

/* --- request authentication ------------------------------------------------- */

/* The metadata of one signed request; lives as long as the call. */
struct signed_md {
    struct fed_request_auth a;
    char ts[24];
    struct rpc_metadata md[5];
};

static int default_sign(const struct crypto_key *k, const char *method, const uint8_t *body,
                        size_t len, struct fed_request_auth *a)
{
    struct crypto_public_key pk;
    crypto_key_public(k, &pk);
    memcpy(a->key_id, pk.key_id, sizeof a->key_id);
    return request_sign_new(k, method, body, len, time_now_unix_ms(), &a->st, a->signature);
}

/* Signs body for method into m and points o at it; nothing when the client has
 * no identity. 0 or FED_ERR_SIGN. */
static int sign_request(const struct fed_client *c, const char *method, const uint8_t *body,
                        size_t len, struct signed_md *m, struct rpc_call_options *o)
{
    if (!c->sign && !c->identity)
        return 0;
    memset(m, 0, sizeof *m);
    int rc = c->sign ? c->sign(c->sign_ctx, method, body, len, &m->a)
                     : default_sign(c->identity, method, body, len, &m->a);
    if (rc != 0 || !crypto_id_valid(m->a.st.member))
        return FED_ERR_SIGN;
    snprintf(m->ts, sizeof m->ts, "%" PRId64, m->a.st.timestamp_unix_ms);
    size_t n = 0;
    m->md[n++] = (struct rpc_metadata){ REQUEST_MD_MEMBER, (const uint8_t *)m->a.st.member,
                                        strlen(m->a.st.member) };
    m->md[n++] = (struct rpc_metadata){ REQUEST_MD_TIMESTAMP, (const uint8_t *)m->ts,
                                        strlen(m->ts) };
    m->md[n++] = (struct rpc_metadata){ REQUEST_MD_NONCE, m->a.st.nonce, REQUEST_NONCE_BYTES };
    m->md[n++] = (struct rpc_metadata){ REQUEST_MD_SIGNATURE, m->a.signature,
                                        CRYPTO_SIGNATURE_BYTES };
    if (m->a.key_id[0])
        m->md[n++] = (struct rpc_metadata){ REQUEST_MD_KEY_ID, (const uint8_t *)m->a.key_id,
                                            strlen(m->a.key_id) };
    o->metadata = m->md;
    o->n_metadata = n;
    return 0;
}

/* flags: CALL_SIGNED to sign the request (member RPCs; not Hello and Status),
 * CALL_LONG_POLL for a long poll, which the client's interrupt flag cuts short. */
#define CALL_SIGNED    1
#define CALL_LONG_POLL 2
static int fed_unary(struct fed_client *c, const char *name, const char *path,
                     int64_t timeout_ms, const ProtobufCMessage *req,
                     const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                     struct rpc_status *st, int flags)
{
    *reply = NULL;
    rpc_status_set(st, GRPC_STATUS_OK, "", 0);
    if (!c)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    struct rpc_call_options o = call_options(c, timeout_ms);
    if (flags & CALL_LONG_POLL)
        o.interrupt = c->interrupt;
    if (!(flags & CALL_SIGNED)) {
        int rc = pb_unary(c->ch, path, &o, req, reply_desc, reply, st);
        return rc ? rpc_fail_named(st, name, rc, NULL) : 0;
    }
    uint8_t *body, *out;
    size_t body_len, out_len;
    int rc = pb_pack(req, &body, &body_len);
    if (rc != 0)
        return rpc_fail_named(st, name, rc, NULL);
    struct signed_md m;
    rc = sign_request(c, path, body, body_len, &m, &o);
    if (rc == 0)
        rc = rpc_unary(c->ch, path, &o, body, body_len, &out, &out_len, st);
    free(body);
    if (rc != 0)
        return rpc_fail_named(st, name, rc, NULL);
    *reply = pb_unpack(reply_desc, out, out_len, SIZE_MAX, &rc);
    free(out);
    return *reply ? 0 : rpc_fail_named(st, name, rc, NULL);
}

/* The typed unary calls' common part: a NULL req is RPC_ERR_INVALID_ARG, st may be
 * NULL. Returns the reply (a message of type d, for the caller's typed pointer) or
 * NULL; *rc gets 0 or the code. */
static void *fed_call(struct fed_client *c, const char *name, const char *method,
                      int64_t timeout_ms, int flags, const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *d, struct rpc_status *st, int *rc)
{
    struct rpc_status local;
    ProtobufCMessage *m = NULL;
    *rc = req ? fed_unary(c, name, method, timeout_ms, req, d, &m, st ? st : &local,
                          flags)
              : RPC_ERR_INVALID_ARG;
    return m;
}

/* The client's call timeout (Hello, Join, Status, governance); 0 without a client. */
static int64_t call_timeout(const struct fed_client *c)
{
    return c ? c->call_timeout_ms : 0;
}

/* A long poll's: the wait asked for and the margin. */
static int64_t poll_timeout(uint32_t wait_ms)
{
    return (int64_t)wait_ms + FED_LONG_POLL_MARGIN_MS;
}

int fed_hello(struct fed_client *c, const Aulac__V1__HelloRequest *req,
              Aulac__V1__HelloReply **reply, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (reply)
        *reply = fed_call(c, "Hello", FED_METHOD_HELLO, call_timeout(c), 0,
                          req ? &req->base : NULL, &aulac__v1__hello_reply__descriptor, st, &rc);
    return rc;
}

int fed_join(struct fed_client *c, const Aulac__V1__JoinRequest *req,
             Aulac__V1__JoinReply **reply, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (reply)
        *reply = fed_call(c, "Join", FED_METHOD_JOIN, call_timeout(c), 1,
                          req ? &req->base : NULL, &aulac__v1__join_reply__descriptor, st, &rc);
    return rc;
}

int fed_get_task(struct fed_client *c, const Aulac__V1__TaskRequest *req,
                 Aulac__V1__Task **task, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (task)
        *task = fed_call(c, "GetTask", FED_METHOD_GET_TASK, req ? poll_timeout(req->wait_ms) : 0,
                         CALL_SIGNED | CALL_LONG_POLL, req ? &req->base : NULL,
                         &aulac__v1__task__descriptor, st, &rc);
    return rc;
}

int fed_get_node_task(struct fed_client *c, const Aulac__V1__NodeTaskRequest *req,
                      Aulac__V1__NodeTask **task, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (task)
        *task = fed_call(c, "GetNodeTask", NODE_METHOD_GET_NODE_TASK,
                         req ? poll_timeout(req->wait_ms) : 0, CALL_SIGNED | CALL_LONG_POLL,
                         req ? &req->base : NULL, &aulac__v1__node_task__descriptor, st, &rc);
    return rc;
}

int fed_status(struct fed_client *c, const Aulac__V1__StatusRequest *req,
               Aulac__V1__StatusReply **reply, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (reply)
        *reply = fed_call(c, "Status", FED_METHOD_STATUS, call_timeout(c), 0,
                          req ? &req->base : NULL, &aulac__v1__status_reply__descriptor, st, &rc);
    return rc;
}

/* The governance calls: signed, with the call timeout, answered by a GovernanceReply. */
static int governance_call(struct fed_client *c, const char *name, const char *method,
                           const ProtobufCMessage *req, Aulac__V1__GovernanceReply **reply,
                           struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (reply)
        *reply = fed_call(c, name, method, call_timeout(c), 1, req,
                          &aulac__v1__governance_reply__descriptor, st, &rc);
    return rc;
}

int fed_propose_roster_change(struct fed_client *c, const Aulac__V1__RosterProposal *req,
                              Aulac__V1__GovernanceReply **reply, struct rpc_status *st)
{
    return governance_call(c, "ProposeRosterChange", FED_METHOD_PROPOSE_ROSTER,
                           req ? &req->base : NULL, reply, st);
}

int fed_vote(struct fed_client *c, const Aulac__V1__VoteRequest *req,
             Aulac__V1__GovernanceReply **reply, struct rpc_status *st)
{
    return governance_call(c, "Vote", FED_METHOD_VOTE, req ? &req->base : NULL, reply, st);
}

int fed_propose_motion(struct fed_client *c, const Aulac__V1__Motion *req,
                       Aulac__V1__GovernanceReply **reply, struct rpc_status *st)
{
    return governance_call(c, "ProposeMotion", FED_METHOD_PROPOSE_MOTION,
                           req ? &req->base : NULL, reply, st);
}

int fed_withdraw(struct fed_client *c, const Aulac__V1__WithdrawRequest *req,
                 Aulac__V1__GovernanceReply **reply, struct rpc_status *st)
{
    return governance_call(c, "Withdraw", FED_METHOD_WITHDRAW, req ? &req->base : NULL, reply,
                           st);
}

int fed_list_experiments(struct fed_client *c, const Aulac__V1__ExperimentsRequest *req,
                         Aulac__V1__ExperimentsReply **reply, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (reply)
        *reply = fed_call(c, "ListExperiments", FED_METHOD_LIST_EXPERIMENTS, call_timeout(c), 1,
                          req ? &req->base : NULL, &aulac__v1__experiments_reply__descriptor,
                          st, &rc);
    return rc;
}

int fed_list_proposals(struct fed_client *c, const Aulac__V1__ProposalsRequest *req,
                       Aulac__V1__ProposalsReply **reply, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (reply)
        *reply = fed_call(c, "ListProposals", FED_METHOD_LIST_PROPOSALS, call_timeout(c), 1,
                          req ? &req->base : NULL, &aulac__v1__proposals_reply__descriptor,
                          st, &rc);
    return rc;
}

int fed_add_cosignature(struct fed_client *c, const Aulac__V1__CosignatureRequest *req,
                        Aulac__V1__CosignatureReply **reply, struct rpc_status *st)
{
    int rc = RPC_ERR_INVALID_ARG;
    if (reply)
        *reply = fed_call(c, "AddCosignature", FED_METHOD_ADD_COSIGNATURE, call_timeout(c), 1,
                          req ? &req->base : NULL, &aulac__v1__cosignature_reply__descriptor,
                          st, &rc);
    return rc;
}

/* ------------------------------------------------- chunked downloads (shared) */

/* The sequence a server stream of chunks must follow (DownloadModel, GetArtifact):
 * the first chunk starts at the offset asked for, each next one where the previous
 * ended, every chunk names the same total and none runs past it (nor past max_chunk
 * bytes when that is set). */
struct chunk_seq {
    uint64_t next_offset;
    uint64_t total;
    size_t   max_chunk;     /* 0: no per-chunk limit */
    size_t   n_chunks;
    char     why[200];
};

/* Checks one chunk against the sequence so far and advances it; on a violation
 * returns FED_ERR_BAD_REPLY with d->why saying what. */
static int chunk_seq_take(struct chunk_seq *d, uint64_t offset, uint64_t total, size_t len)
{
    if (d->n_chunks > 0 && total != d->total) {
        snprintf(d->why, sizeof d->why, "chunk says total %" PRIu64 " bytes, earlier %" PRIu64,
                 total, d->total);
        return FED_ERR_BAD_REPLY;
    }
    if (offset != d->next_offset) {
        snprintf(d->why, sizeof d->why, "chunk at offset %" PRIu64 ", expected %" PRIu64,
                 offset, d->next_offset);
        return FED_ERR_BAD_REPLY;
    }
    if ((d->max_chunk && len > d->max_chunk) || offset > total || len > total - offset) {
        snprintf(d->why, sizeof d->why,
                 "chunk [%" PRIu64 ", +%zu) runs past total %" PRIu64 " bytes%s",
                 offset, len, total, d->max_chunk ? " or the chunk limit" : "");
        return FED_ERR_BAD_REPLY;
    }
    d->total = total;
    d->next_offset += len;
    d->n_chunks++;
    return 0;
}

/* A reusable buffer for chunks whose caller gives no destination of its own. */
struct chunk_buf {
    uint8_t *p;
    size_t   cap;
};

/* At least len bytes of b (never NULL for len 0), or NULL when out of memory. */
static uint8_t *chunk_buf_get(struct chunk_buf *b, size_t len)
{
    if (len > b->cap || !b->p) {
        uint8_t *p = realloc(b->p, len ? len : 1);
        if (!p)
            return NULL;
        b->p = p;
        b->cap = len;
    }
    return b->p;
}

/* One received chunk: its fields unpacked (its data field left empty) and its data at
 * [at, at + len) of msg, not yet copied. */
struct chunk_in {
    ProtobufCMessage     *fields;
    const struct rpc_msg *msg;
    size_t                at, len;
};

/* Checks one received chunk (through chunk_seq_take), copies its data once to where it
 * goes and hands it on; nonzero stops the stream (FED_ERR_BAD_REPLY with d->why set,
 * FED_ERR_ABORTED or RPC_ERR_NOMEM). */
typedef int (*chunk_take_fn)(const struct chunk_in *in, struct chunk_seq *d, void *ctx);

/* Reads chunks (their data field number data_field) until the end of the stream or the
 * first problem; frees each chunk. */
static int recv_chunks(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
                       uint32_t data_field, struct chunk_seq *d, chunk_take_fn take, void *ctx)
{
    for (;;) {
        struct chunk_in in;
        struct rpc_msg *msg;
        int rc = pb_stream_recv_bulk(s, desc, data_field, &in.fields, &msg, &in.at, &in.len);
        if (rc == RPC_EOS)
            return 0;
        if (rc != 0)
            return rc;
        in.msg = msg;
        rc = take(&in, d, ctx);
        protobuf_c_message_free_unpacked(in.fields, NULL);
        rpc_msg_free(msg);
        if (rc != 0)
            return rc;
    }
}

/* Copies in's data once, to dst, shows it as the chunk's data field (*data, empty until
 * now) while deliver(in->fields, t) runs, then empties the field again: the chunk is
 * freed with protobuf-c, which must never free dst. FED_ERR_ABORTED when deliver says
 * stop, else 0. */
static int chunk_deliver(const struct chunk_in *in, uint8_t *dst, ProtobufCBinaryData *data,
                         int (*deliver)(const ProtobufCMessage *chunk, void *t), void *t)
{
    rpc_msg_copy(in->msg, in->at, in->len, dst);   /* in range: pb_split_bulk's */
    data->data = dst;
    data->len = in->len;
    int rc = deliver(in->fields, t) != 0 ? FED_ERR_ABORTED : 0;
    data->data = NULL;
    data->len = 0;
    return rc;
}

/* One signed server-stream download: sends req to method, feeds every chunk (of
 * type desc) to take until the stream ends. Returns 0 once the server ended the
 * stream with OK after at least one chunk, all in sequence (the caller checks where
 * the sequence had to end); otherwise fed_fail's code with st saying why. */
static int download_stream(struct fed_client *c, const char *name, const char *method,
                           const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                           uint32_t data_field, struct chunk_seq *d, chunk_take_fn take,
                           void *ctx, struct rpc_status *st)
{
    struct rpc_call_options o = call_options(c, c->stream_timeout_ms);
    uint8_t *body;
    size_t body_len;
    struct signed_md sm;
    int rc = pb_pack(req, &body, &body_len);
    if (rc == 0 && (rc = sign_request(c, method, body, body_len, &sm, &o)) != 0)
        free(body);
    if (rc != 0)
        return rpc_fail_named(st, name, rc, NULL);
    struct rpc_stream *s;
    rc = rpc_stream_open(c->ch, method, &o, &s);
    if (rc != 0) {
        free(body);
        return rpc_fail_named(st, name, rc, NULL);
    }
    rc = rpc_stream_send(s, body, body_len);
    free(body);
    if (rc == 0)
        rc = rpc_stream_close_send(s);
    if (rc == 0)
        rc = recv_chunks(s, desc, data_field, d, take, ctx);
    /* RPC_ERR_CANCELLED: the status below says why. Anything else is ours. */
    int local_failure = rc != 0 && rc != RPC_ERR_CANCELLED;
    if (local_failure)
        rpc_stream_cancel(s);
    int frc = rpc_stream_finish(s, st);
    if (local_failure)
        return rpc_fail_named(st, name, rc, d->why[0] ? d->why : NULL);
    if (frc != 0)
        return rpc_fail_named(st, name, frc, NULL);
    if (rc != 0)
        return rpc_fail_named(st, name, FED_ERR_BAD_REPLY, "stream broke but the status is OK");
    if (d->n_chunks == 0)
        return rpc_fail_named(st, name, FED_ERR_BAD_REPLY, "the server sent no chunk");
    return 0;
}

/* ----------------------------------------------------------- DownloadModel */

struct model_take_ctx {
    fed_chunk_dest_fn dest;      /* NULL: buf */
    fed_chunk_fn on_chunk;       /* may be NULL */
    void *ctx;
    struct chunk_buf buf;
};

static int model_deliver(const ProtobufCMessage *chunk, void *ctx)
{
    const struct model_take_ctx *t = ctx;
    return t->on_chunk ? t->on_chunk((const Aulac__V1__ModelChunk *)chunk, t->ctx) : 0;
}

static int take_model_chunk(const struct chunk_in *in, struct chunk_seq *d, void *ctx)
{
    Aulac__V1__ModelChunk *ch = (Aulac__V1__ModelChunk *)in->fields;
    struct model_take_ctx *t = ctx;
    int rc = chunk_seq_take(d, ch->offset, ch->total_bytes, in->len);
    if (rc != 0)
        return rc;
    ch->data.len = in->len;
    uint8_t *dst = t->dest ? t->dest(ch, t->ctx) : chunk_buf_get(&t->buf, in->len);
    ch->data.len = 0;
    if (!dst)
        return t->dest ? FED_ERR_ABORTED : RPC_ERR_NOMEM;
    return chunk_deliver(in, dst, &ch->data, model_deliver, t);
}

int fed_download_model(struct fed_client *c, const Aulac__V1__ModelRequest *req,
                       fed_chunk_fn on_chunk, void *ctx, struct rpc_status *st)
{
    return fed_download_model_into(c, req, NULL, on_chunk, ctx, st);   /* refuses NULL */
}

int fed_download_model_into(struct fed_client *c, const Aulac__V1__ModelRequest *req,
                            fed_chunk_dest_fn dest, fed_chunk_fn on_chunk, void *ctx,
                            struct rpc_status *st)
{
    static const char name[] = "DownloadModel";
    struct rpc_status local;
    if (!st)
        st = &local;
    rpc_status_set(st, GRPC_STATUS_OK, "", 0);
    if (!c || !req || (!dest && !on_chunk))
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    struct chunk_seq d = { .next_offset = req->offset };
    struct model_take_ctx t = { dest, on_chunk, ctx, { 0 } };
    int rc = download_stream(c, name, FED_METHOD_DOWNLOAD_MODEL, &req->base,
                             &aulac__v1__model_chunk__descriptor, FED_MODEL_CHUNK_DATA_FIELD,
                             &d, take_model_chunk, &t, st);
    free(t.buf.p);
    if (rc != 0)
        return rc;
    if (d.next_offset != d.total) {
        snprintf(d.why, sizeof d.why, "stream ended at %" PRIu64 " of %" PRIu64 " bytes",
                 d.next_offset, d.total);
        return rpc_fail_named(st, name, FED_ERR_BAD_REPLY, d.why);
    }
    return 0;
}

/* ------------------------------------------------------------ SubmitUpdate */

/* first: the packed header message, already signed for the call's metadata. */
static int send_update(struct rpc_stream *s, const uint8_t *first, size_t first_len,
                       const uint8_t *payload, size_t payload_len, size_t chunk_bytes,
                       fed_send_progress_fn progress, void *pctx)
{
    Aulac__V1__UpdateChunk msg = AULAC__V1__UPDATE_CHUNK__INIT;
    int rc = rpc_stream_send(s, first, first_len);
    for (size_t off = 0; rc == 0 && off < payload_len; off += chunk_bytes) {
        size_t n = payload_len - off < chunk_bytes ? payload_len - off : chunk_bytes;
        msg.part_case = AULAC__V1__UPDATE_CHUNK__PART_DATA;
        msg.data.data = (uint8_t *)payload + off;
        msg.data.len = n;
        rc = pb_stream_send(s, &msg.base);
        if (rc == 0 && progress)
            progress(pctx, off + n, payload_len);
    }
    if (rc == 0)
        rc = rpc_stream_close_send(s);
    return rc;
}

int fed_submit_update(struct fed_client *c, const Aulac__V1__UpdateHeader *hdr,
                      const uint8_t *payload, size_t payload_len, size_t chunk_bytes,
                      Aulac__V1__Receipt **receipt, struct rpc_status *st)
{
    return fed_submit_update_progress(c, hdr, payload, payload_len, chunk_bytes, NULL, NULL,
                                      receipt, st);
}

int fed_submit_update_progress(struct fed_client *c, const Aulac__V1__UpdateHeader *hdr,
                               const uint8_t *payload, size_t payload_len, size_t chunk_bytes,
                               fed_send_progress_fn progress, void *pctx,
                               Aulac__V1__Receipt **receipt, struct rpc_status *st)
{
    static const char name[] = "SubmitUpdate";
    struct rpc_status local;
    if (!st)
        st = &local;
    rpc_status_set(st, GRPC_STATUS_OK, "", 0);
    if (!receipt)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    *receipt = NULL;
    if (chunk_bytes == 0)
        chunk_bytes = FED_MAX_CHUNK_BYTES;
    if (!c || !hdr || (!payload && payload_len) || chunk_bytes > FED_MAX_CHUNK_BYTES)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    if (hdr->payload_bytes != payload_len)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG,
                              "header payload_bytes differs from the payload");

    struct rpc_call_options o = call_options(c, c->stream_timeout_ms);
    Aulac__V1__UpdateChunk head = AULAC__V1__UPDATE_CHUNK__INIT;
    head.part_case = AULAC__V1__UPDATE_CHUNK__PART_HEADER;
    head.header = (Aulac__V1__UpdateHeader *)hdr;  /* packing only reads it */
    uint8_t *first;
    size_t first_len;
    struct signed_md sm;
    int rc = pb_pack(&head.base, &first, &first_len);
    if (rc == 0 && (rc = sign_request(c, FED_METHOD_SUBMIT_UPDATE, first, first_len, &sm, &o)) != 0)
        free(first);
    if (rc != 0)
        return rpc_fail_named(st, name, rc, NULL);
    struct rpc_stream *s;
    rc = rpc_stream_open(c->ch, FED_METHOD_SUBMIT_UPDATE, &o, &s);
    if (rc != 0) {
        free(first);
        return rpc_fail_named(st, name, rc, NULL);
    }
    /* RPC_ERR_CANCELLED here may just mean the coordinator answered before
     * reading everything (a rejection): its receipt is still read below. */
    rc = send_update(s, first, first_len, payload, payload_len, chunk_bytes, progress, pctx);
    free(first);
    if (rc != 0 && rc != RPC_ERR_CANCELLED) {
        rpc_stream_cancel(s);
        rpc_stream_finish(s, st);
        return rpc_fail_named(st, name, rc, NULL);
    }
    ProtobufCMessage *m = NULL;
    int rrc = pb_stream_recv(s, &aulac__v1__receipt__descriptor, &m);
    int frc = rpc_stream_finish(s, st);
    if (frc != 0 || rrc != 0) {
        if (m)
            aulac__v1__receipt__free_unpacked((Aulac__V1__Receipt *)m, NULL);
        if (frc != 0)
            return rpc_fail_named(st, name, frc, NULL);
        if (rrc == RPC_EOS || rrc == RPC_ERR_CANCELLED)
            return rpc_fail_named(st, name, FED_ERR_BAD_REPLY, "status OK but no receipt");
        return rpc_fail_named(st, name, rrc, NULL);
    }
    *receipt = (Aulac__V1__Receipt *)m;
    return 0;
}

/* --------------------------------------------------------------- GetArtifact */

struct artifact_take_ctx {
    const uint8_t *hash;    /* 32 bytes asked for */
    fed_artifact_chunk_fn on_chunk;
    void *ctx;
    struct chunk_buf buf;
};

static int artifact_deliver(const ProtobufCMessage *chunk, void *ctx)
{
    const struct artifact_take_ctx *t = ctx;
    return t->on_chunk((const Aulac__V1__ArtifactChunk *)chunk, t->ctx);
}

static int take_artifact_chunk(const struct chunk_in *in, struct chunk_seq *d, void *ctx)
{
    Aulac__V1__ArtifactChunk *ch = (Aulac__V1__ArtifactChunk *)in->fields;
    struct artifact_take_ctx *t = ctx;
    if (ch->blake2b.len != 32 || memcmp(ch->blake2b.data, t->hash, 32) != 0) {
        snprintf(d->why, sizeof d->why, "chunk at offset %" PRIu64 " names another file "
                 "than the one asked for", ch->offset);
        return FED_ERR_BAD_REPLY;
    }
    int rc = chunk_seq_take(d, ch->offset, ch->total_bytes, in->len);
    if (rc != 0)
        return rc;
    uint8_t *dst = chunk_buf_get(&t->buf, in->len);
    if (!dst)
        return RPC_ERR_NOMEM;
    return chunk_deliver(in, dst, &ch->data, artifact_deliver, t);
}

int fed_get_artifact(struct fed_client *c, const Aulac__V1__ArtifactRequest *req,
                     fed_artifact_chunk_fn on_chunk, void *ctx, struct rpc_status *st)
{
    static const char name[] = "GetArtifact";
    struct rpc_status local;
    if (!st)
        st = &local;
    rpc_status_set(st, GRPC_STATUS_OK, "", 0);
    if (!c || !req || !on_chunk || req->blake2b.len != 32)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    struct chunk_seq d = { .next_offset = req->offset, .max_chunk = FED_MAX_CHUNK_BYTES };
    struct artifact_take_ctx t = { req->blake2b.data, on_chunk, ctx, { 0 } };
    int rc = download_stream(c, name, FED_METHOD_GET_ARTIFACT, &req->base,
                             &aulac__v1__artifact_chunk__descriptor,
                             FED_ARTIFACT_CHUNK_DATA_FIELD, &d, take_artifact_chunk, &t, st);
    free(t.buf.p);
    if (rc != 0)
        return rc;
    uint64_t end = d.total;
    if (req->length && req->length < d.total - req->offset)
        end = req->offset + req->length;
    if (d.next_offset != end) {
        snprintf(d.why, sizeof d.why, "stream ended at %" PRIu64 " bytes, expected %" PRIu64
                 " (file of %" PRIu64 ")", d.next_offset, end, d.total);
        return rpc_fail_named(st, name, FED_ERR_BAD_REPLY, d.why);
    }
    return 0;
}

/* --------------------------------------------------------------- PutArtifact */

/* Packs the chunk at off (n bytes read from src into buf). */
static int pack_artifact_chunk(const struct fed_artifact_source *src, uint64_t off,
                               uint8_t *buf, size_t n, int first, uint8_t **out,
                               size_t *out_len)
{
    Aulac__V1__ArtifactChunk msg = AULAC__V1__ARTIFACT_CHUNK__INIT;
    msg.blake2b.data = (uint8_t *)src->blake2b;
    msg.blake2b.len = 32;
    msg.total_bytes = src->total_bytes;
    msg.offset = off;
    msg.data.data = buf;
    msg.data.len = n;
    if (first) {
        msg.member_id = (char *)src->member_id;
        msg.name = (char *)(src->name ? src->name : "");
    }
    return pb_pack(&msg.base, out, out_len);
}

/* Sends the chunks after the first (already sent); stops at the first failure. */
static int send_artifact_rest(struct rpc_stream *s, const struct fed_artifact_source *src,
                              uint8_t *buf, size_t chunk_bytes, uint64_t off)
{
    int rc = 0;
    while (rc == 0 && off < src->total_bytes) {
        size_t n = src->total_bytes - off < chunk_bytes ? (size_t)(src->total_bytes - off)
                                                        : chunk_bytes;
        if (src->read(src->read_ctx, off, buf, n) != 0)
            return FED_ERR_ABORTED;
        uint8_t *msg;
        size_t len;
        rc = pack_artifact_chunk(src, off, buf, n, 0, &msg, &len);
        if (rc != 0)
            return rc;
        rc = rpc_stream_send(s, msg, len);
        free(msg);
        off += n;
        if (rc == 0 && src->progress)
            src->progress(src->progress_ctx, off, src->total_bytes);
    }
    return rc;
}

int fed_put_artifact(struct fed_client *c, const struct fed_artifact_source *src,
                     Aulac__V1__ArtifactReceipt **receipt, struct rpc_status *st)
{
    static const char name[] = "PutArtifact";
    struct rpc_status local;
    if (!st)
        st = &local;
    rpc_status_set(st, GRPC_STATUS_OK, "", 0);
    if (!receipt)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    *receipt = NULL;
    if (!c || !src || !src->read || !src->member_id || src->chunk_bytes > FED_MAX_CHUNK_BYTES)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    size_t chunk_bytes = src->chunk_bytes ? src->chunk_bytes : FED_MAX_CHUNK_BYTES;
    uint8_t *buf = malloc(chunk_bytes);
    if (!buf)
        return rpc_fail_named(st, name, RPC_ERR_NOMEM, NULL);

    size_t n0 = src->total_bytes < chunk_bytes ? (size_t)src->total_bytes : chunk_bytes;
    if (src->read(src->read_ctx, 0, buf, n0) != 0) {
        free(buf);
        return rpc_fail_named(st, name, FED_ERR_ABORTED, "reading the file failed");
    }
    uint8_t *first;
    size_t first_len;
    struct rpc_call_options o = call_options(c, c->stream_timeout_ms);
    struct signed_md sm;
    int rc = pack_artifact_chunk(src, 0, buf, n0, 1, &first, &first_len);
    if (rc == 0 && (rc = sign_request(c, FED_METHOD_PUT_ARTIFACT, first, first_len, &sm, &o)) != 0)
        free(first);
    if (rc != 0) {
        free(buf);
        return rpc_fail_named(st, name, rc, NULL);
    }
    struct rpc_stream *s;
    rc = rpc_stream_open(c->ch, FED_METHOD_PUT_ARTIFACT, &o, &s);
    if (rc != 0) {
        free(first);
        free(buf);
        return rpc_fail_named(st, name, rc, NULL);
    }
    rc = rpc_stream_send(s, first, first_len);
    free(first);
    if (rc == 0 && src->progress)
        src->progress(src->progress_ctx, n0, src->total_bytes);
    if (rc == 0)
        rc = send_artifact_rest(s, src, buf, chunk_bytes, n0);
    free(buf);
    if (rc == 0)
        rc = rpc_stream_close_send(s);
    /* RPC_ERR_CANCELLED may mean the coordinator answered before reading everything
     * (already held, a refusal): its answer is still read below. */
    if (rc != 0 && rc != RPC_ERR_CANCELLED) {
        rpc_stream_cancel(s);
        rpc_stream_finish(s, st);
        return rpc_fail_named(st, name, rc,
                              rc == FED_ERR_ABORTED ? "reading the file failed" : NULL);
    }
    ProtobufCMessage *m = NULL;
    int rrc = pb_stream_recv(s, &aulac__v1__artifact_receipt__descriptor, &m);
    int frc = rpc_stream_finish(s, st);
    if (frc != 0 || rrc != 0) {
        if (m)
            aulac__v1__artifact_receipt__free_unpacked((Aulac__V1__ArtifactReceipt *)m, NULL);
        if (frc != 0)
            return rpc_fail_named(st, name, frc, NULL);
        if (rrc == RPC_EOS || rrc == RPC_ERR_CANCELLED)
            return rpc_fail_named(st, name, FED_ERR_BAD_REPLY, "status OK but no receipt");
        return rpc_fail_named(st, name, rrc, NULL);
    }
    *receipt = (Aulac__V1__ArtifactReceipt *)m;
    return 0;
}
