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

/* Writes v as a protobuf varint at p; returns its length (at most 10). */
static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

#define WIRE_VARINT  0
#define WIRE_FIXED64 1
#define WIRE_LEN     2
#define WIRE_FIXED32 5

int pb_call_send_bulk(struct rpc_call *call, const ProtobufCMessage *msg, uint32_t bulk_field,
                      const uint8_t *bulk, size_t bulk_len, void (*release)(void *arg),
                      void *arg)
{
    uint8_t *head = malloc(protobuf_c_message_get_packed_size(msg) + 20);
    if (!head) {
        if (release)
            release(arg);
        return RPC_ERR_NOMEM;
    }
    size_t head_len = protobuf_c_message_pack(msg, head);
    if (bulk_len) {   /* proto3 leaves an empty bytes field out */
        head_len += put_varint(head + head_len, (uint64_t)bulk_field << 3 | WIRE_LEN);
        head_len += put_varint(head + head_len, bulk_len);
    }
    const struct rpc_part parts[2] = { { head, head_len, NULL, NULL },
                                       { bulk, bulk_len, release, arg } };
    int rc = rpc_call_send_parts(call, parts, 2);
    free(head);
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

/* Reads the varint at *off of m (len bytes in all) and moves *off past it; -1 when it
 * runs past the end, is longer than 10 bytes or overflows 64 bits. */
static int read_varint(const struct rpc_msg *m, size_t len, size_t *off, uint64_t *v)
{
    uint8_t b[10];
    size_t n = len - *off < sizeof b ? len - *off : sizeof b;
    if (n == 0 || rpc_msg_copy(m, *off, n, b) != 0)
        return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 9 && b[i] > 1)
            return -1;
        x |= (uint64_t)(b[i] & 0x7f) << (7 * i);
        if (!(b[i] & 0x80)) {
            *off += i + 1;
            *v = x;
            return 0;
        }
    }
    return -1;
}

int pb_split_bulk(const struct rpc_msg *m, const ProtobufCMessageDescriptor *desc,
                  uint32_t bulk_field, ProtobufCMessage **out, size_t *bulk_off,
                  size_t *bulk_len)
{
    *out = NULL;
    *bulk_off = *bulk_len = 0;
    const size_t len = rpc_msg_len(m);
    uint8_t *rest = malloc(len < PB_BULK_MAX_REST && len ? len : PB_BULK_MAX_REST);
    if (!rest)
        return RPC_ERR_NOMEM;
    size_t rest_len = 0, off = 0;
    int found = 0, rc = 0;
    while (rc == 0 && off < len) {
        const size_t start = off;
        uint64_t tag, v;
        if (read_varint(m, len, &off, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
            rc = PB_ERR_MALFORMED;
            break;
        }
        const uint64_t field = tag >> 3;
        const unsigned wire = (unsigned)(tag & 7);
        if (field == bulk_field && (wire != WIRE_LEN || found)) {
            rc = PB_ERR_MALFORMED;
            break;
        }
        switch (wire) {
        case WIRE_VARINT:
            rc = read_varint(m, len, &off, &v) != 0 ? PB_ERR_MALFORMED : 0;
            break;
        case WIRE_FIXED64:
        case WIRE_FIXED32: {
            size_t n = wire == WIRE_FIXED64 ? 8 : 4;
            if (len - off < n)
                rc = PB_ERR_MALFORMED;
            else
                off += n;
            break;
        }
        case WIRE_LEN:
            if (read_varint(m, len, &off, &v) != 0 || v > len - off) {
                rc = PB_ERR_MALFORMED;
            } else if (field == bulk_field) {
                found = 1;
                *bulk_off = off;
                *bulk_len = (size_t)v;
            }
            if (rc == 0)
                off += (size_t)v;
            break;
        default:   /* groups (3, 4) are not proto3; 6 and 7 do not exist */
            rc = PB_ERR_MALFORMED;
        }
        if (rc != 0 || field == bulk_field)
            continue;
        if (off - start > PB_BULK_MAX_REST - rest_len)
            rc = PB_ERR_TOO_LARGE;
        else if (rpc_msg_copy(m, start, off - start, rest + rest_len) != 0)
            rc = PB_ERR_MALFORMED;
        else
            rest_len += off - start;
    }
    if (rc == 0)
        *out = pb_unpack(desc, rest, rest_len, SIZE_MAX, &rc);
    free(rest);
    if (rc != 0)
        *bulk_off = *bulk_len = 0;
    return rc;
}

int pb_stream_recv_bulk(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
                        uint32_t bulk_field, ProtobufCMessage **out, struct rpc_msg **msg,
                        size_t *bulk_off, size_t *bulk_len)
{
    *out = NULL;
    *bulk_off = *bulk_len = 0;
    int rc = rpc_stream_recv_msg(s, msg);
    if (rc != 0)
        return rc;
    rc = pb_split_bulk(*msg, desc, bulk_field, out, bulk_off, bulk_len);
    if (rc != 0) {
        rpc_msg_free(*msg);
        *msg = NULL;
    }
    return rc;
}

int pb_call_recv_bulk(struct rpc_call *call, const ProtobufCMessageDescriptor *desc,
                      uint32_t bulk_field, ProtobufCMessage **out, struct rpc_msg **msg,
                      size_t *bulk_off, size_t *bulk_len)
{
    *out = NULL;
    *bulk_off = *bulk_len = 0;
    int rc = rpc_call_recv_msg(call, msg);
    if (rc == RPC_ERR_NOMEM)
        pb_call_finish_unpack_error(call, rc);
    if (rc != 0)
        return rc;
    rc = pb_split_bulk(*msg, desc, bulk_field, out, bulk_off, bulk_len);
    if (rc != 0) {
        rpc_msg_free(*msg);
        *msg = NULL;
        pb_call_finish_unpack_error(call, rc);
    }
    return rc;
}
