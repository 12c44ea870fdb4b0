#include "proto/pb.h"

#include <stdlib.h>

struct unpack_budget {
    size_t left;
    int    refused;
    int    oom;                     /* malloc failed: ours, not the message's */
};

static void *budget_alloc(void *data, size_t size)
{
    struct unpack_budget *b = data;
    if (size > b->left) {
        b->refused = 1;
        return NULL;
    }
    b->left -= size;
    void *p = malloc(size);
    b->oom |= !p;
    return p;
}

/* Plain free: memory from budget_alloc is malloc'd, so the unpacked message
 * can later be freed with the default (NULL) allocator. */
static void budget_free(void *data, void *ptr)
{
    free(ptr);
}

int pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    *out = NULL;
    *len = 0;
    if (!buf)
        return RPC_ERR_NOMEM;
    *len = protobuf_c_message_pack(msg, buf);
    *out = buf;
    return 0;
}

ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *desc,
                            const uint8_t *buf, size_t len, size_t max_len, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    *err = 0;
    if (len > max_len) {
        *err = PB_ERR_TOO_LARGE;
        return NULL;
    }
    size_t cap_len = (SIZE_MAX - PB_UNPACK_SLACK_BYTES) / PB_UNPACK_AMPLIFICATION;
    struct unpack_budget budget = {
        .left = (len < cap_len ? len : cap_len) * PB_UNPACK_AMPLIFICATION + PB_UNPACK_SLACK_BYTES,
    };
    ProtobufCAllocator allocator = {
        .alloc = budget_alloc, .free = budget_free, .allocator_data = &budget,
    };
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &allocator, len, buf);
    if (!msg) {
        *err = budget.refused ? PB_ERR_TOO_LARGE : budget.oom ? RPC_ERR_NOMEM : PB_ERR_MALFORMED;
        return NULL;
    }
    return msg;
}

int pb_call_recv(struct rpc_call *call, const ProtobufCMessageDescriptor *desc,
                 ProtobufCMessage **out)
{
    uint8_t *buf;
    size_t len;
    *out = NULL;
    int rc = rpc_call_recv(call, &buf, &len);
    if (rc == RPC_ERR_NOMEM)
        pb_call_finish_unpack_error(call, rc);
    if (rc != 0)
        return rc;
    int err;
    *out = pb_unpack(desc, buf, len, SIZE_MAX, &err);
    free(buf);
    if (*out)
        return 0;
    pb_call_finish_unpack_error(call, err);
    return err;
}

void pb_call_finish_unpack_error(struct rpc_call *call, int err)
{
    if (err == RPC_ERR_NOMEM)
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "the server is short of memory to read the request; retry later", NULL,
                        0);
    else if (err == PB_ERR_TOO_LARGE)
        rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                        "request decodes to more memory than allowed", NULL, 0);
    else
        rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed request message", NULL, 0);
}

int pb_call_send(struct rpc_call *call, const ProtobufCMessage *msg)
{
    uint8_t *buf;
    size_t len;
    int rc = pb_pack(msg, &buf, &len);
    if (rc != 0)
        return rc;
    rc = rpc_call_send(call, buf, len);
    free(buf);
    return rc;
}

int pb_call_finish(struct rpc_call *call, const ProtobufCMessage *reply)
{
    uint8_t *buf;
    size_t len;
    int rc = pb_pack(reply, &buf, &len);
    if (rc != 0) {
        rpc_call_finish(call, GRPC_STATUS_INTERNAL, "out of memory packing the reply", NULL, 0);
        return rc;
    }
    rc = rpc_call_finish(call, GRPC_STATUS_OK, NULL, buf, len);
    free(buf);
    return rc;
}

int pb_unary(struct rpc_channel *ch, const char *method, const struct rpc_call_options *opts,
             const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
             ProtobufCMessage **reply, struct rpc_status *st)
{
    uint8_t *req_buf, *reply_buf;
    size_t req_len, reply_len;
    *reply = NULL;
    int rc = pb_pack(req, &req_buf, &req_len);
    if (rc != 0)
        return rc;
    rc = rpc_unary(ch, method, opts, req_buf, req_len, &reply_buf, &reply_len, st);
    free(req_buf);
    if (rc != 0)
        return rc;
    *reply = pb_unpack(reply_desc, reply_buf, reply_len, SIZE_MAX, &rc);
    free(reply_buf);
    return *reply ? 0 : rc;
}

int pb_stream_send(struct rpc_stream *s, const ProtobufCMessage *msg)
{
    uint8_t *buf;
    size_t len;
    int rc = pb_pack(msg, &buf, &len);
    if (rc != 0)
        return rc;
    rc = rpc_stream_send(s, buf, len);
    free(buf);
    return rc;
}

int pb_stream_recv(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage **out)
{
    uint8_t *buf;
    size_t len;
    *out = NULL;
    int rc = rpc_stream_recv(s, &buf, &len);
    if (rc != 0)
        return rc;
    *out = pb_unpack(desc, buf, len, SIZE_MAX, &rc);
    free(buf);
    return *out ? 0 : rc;
}
