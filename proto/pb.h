#ifndef AULAC_PROTO_PB_H
#define AULAC_PROTO_PB_H
/* protobuf-c messages: packing, unpacking untrusted bytes, and sending them
 * over proto/rpc.h calls. Unpacked messages are freed with
 * protobuf_c_message_free_unpacked(msg, NULL) (or the generated
 * *__free_unpacked(msg, NULL)). Error codes share rpc_strerror(). */
#include <stddef.h>
#include <stdint.h>
#include <protobuf-c/protobuf-c.h>

#include "proto/rpc.h"

#define PB_ERR_MALFORMED   (-1520)  /* not a valid encoding of the message */
#define PB_ERR_TOO_LARGE   (-1521)  /* input over max_len, or decodes to too much memory */

/* Unpacking may allocate at most this many times the input size plus
 * PB_UNPACK_SLACK_BYTES; more (e.g. a flood of empty repeated or unknown
 * fields) is refused with PB_ERR_TOO_LARGE instead of exhausting memory. */
#define PB_UNPACK_AMPLIFICATION  16u
#define PB_UNPACK_SLACK_BYTES    (64u << 10)

/* Packs msg into a malloc'd buffer (at least 1 byte allocated, even for an
 * empty message) the caller frees. 0 or RPC_ERR_NOMEM. */
int pb_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len);

/* Unpacks untrusted bytes as a message of type desc. Returns the message, or
 * NULL with *err (may be NULL) set to PB_ERR_MALFORMED, PB_ERR_TOO_LARGE
 * (len > max_len, or the allocation budget above exceeded) or RPC_ERR_NOMEM. */
ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *desc,
                            const uint8_t *buf, size_t len, size_t max_len, int *err);

/* --- in a server handler --- */

/* Receives the next request message and unpacks it. On malformed bytes it
 * finishes the call with INVALID_ARGUMENT itself and returns PB_ERR_MALFORMED
 * (or PB_ERR_TOO_LARGE, and RPC_ERR_NOMEM when we are out of memory, with
 * RESOURCE_EXHAUSTED). Otherwise the codes of rpc_call_recv (RPC_EOS,
 * RPC_ERR_CANCELLED, ...). */
int pb_call_recv(struct rpc_call *call, const ProtobufCMessageDescriptor *desc,
                 ProtobufCMessage **out);
/* Finishes the call with the status for a pb_unpack error (or RPC_ERR_NOMEM). */
void pb_call_finish_unpack_error(struct rpc_call *call, int err);
/* Packs and sends one stream message (rpc_call_send codes, RPC_ERR_NOMEM). */
int pb_call_send(struct rpc_call *call, const ProtobufCMessage *msg);
/* Sends msg with the bulk bytes field (number bulk_field, which msg leaves empty)
 * holding bulk[0, bulk_len): msg's fields packed, then the bulk field's tag and length,
 * then the bulk bytes (protobuf allows any field order), so that the bulk bytes need no
 * buffer of their own: they are copied once, into the message gRPC sends, or, with
 * release, lent to gRPC and not copied at all (struct rpc_part: release(arg) is called
 * exactly once, when gRPC is done with them, whatever the outcome). Codes of
 * pb_call_send. */
int pb_call_send_bulk(struct rpc_call *call, const ProtobufCMessage *msg, uint32_t bulk_field,
                      const uint8_t *bulk, size_t bulk_len, void (*release)(void *arg),
                      void *arg);
/* Finishes the call with status OK and reply as the reply message. */
int pb_call_finish(struct rpc_call *call, const ProtobufCMessage *reply);

/* --- on a client --- */

/* rpc_unary with messages. On 0, *reply is the unpacked reply (free it as
 * above). Errors: those of rpc_unary; PB_ERR_MALFORMED / PB_ERR_TOO_LARGE for
 * a bad reply. */
int pb_unary(struct rpc_channel *ch, const char *method, const struct rpc_call_options *opts,
             const ProtobufCMessage *req, const ProtobufCMessageDescriptor *reply_desc,
             ProtobufCMessage **reply, struct rpc_status *st);

/* Stream messages on a client stream (codes of rpc_stream_send/recv plus the
 * unpack codes above; a malformed message cancels nothing by itself). */
int pb_stream_send(struct rpc_stream *s, const ProtobufCMessage *msg);
int pb_stream_recv(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
                   ProtobufCMessage **out);

/* The fields of a message other than its bulk bytes field may take at most this many
 * bytes when it is received with pb_stream_recv_bulk or split with pb_split_bulk. */
#define PB_BULK_MAX_REST   (64u << 10)

/* pb_stream_recv for a message with one large bytes field (number bulk_field), without
 * copying that field: the other fields are unpacked into *out, whose bulk field stays
 * empty; the bulk bytes stay in *msg at [*bulk_off, *bulk_off + *bulk_len) for the
 * caller to copy once, to where they belong (rpc_msg_copy). On 0 the caller frees *out
 * and *msg (rpc_msg_free); RPC_EOS at the end of the stream. Errors: those of
 * rpc_stream_recv_msg and pb_split_bulk. */
int pb_stream_recv_bulk(struct rpc_stream *s, const ProtobufCMessageDescriptor *desc,
                        uint32_t bulk_field, ProtobufCMessage **out, struct rpc_msg **msg,
                        size_t *bulk_off, size_t *bulk_len);

/* pb_call_recv for such a message on the server side: what pb_stream_recv_bulk gives,
 * from rpc_call_recv_msg. On a malformed or oversized message the call is finished with
 * the error, as pb_call_recv does. *bulk_off is 0 only when the bulk field is absent (a
 * present one starts after its tag), so an empty bulk field is told from none. */
int pb_call_recv_bulk(struct rpc_call *call, const ProtobufCMessageDescriptor *desc,
                      uint32_t bulk_field, ProtobufCMessage **out, struct rpc_msg **msg,
                      size_t *bulk_off, size_t *bulk_len);

/* The parser of pb_stream_recv_bulk: walks the top-level fields of the message in m
 * (protobuf wire format, fields in any order), unpacks all but the bulk field with
 * pb_unpack and says where the bulk field's bytes are (*bulk_len 0 when it is absent).
 * PB_ERR_MALFORMED: a field that does not parse (bad tag or varint, field number 0 or
 * above 2^29 - 1, a varint longer than 10 bytes or over 64 bits, a length past the end,
 * group wire types), the bulk field not length-delimited or given twice (protobuf-c
 * would take the last), or the rest not a valid message of desc; PB_ERR_TOO_LARGE: the
 * rest over PB_BULK_MAX_REST bytes; RPC_ERR_NOMEM. */
int pb_split_bulk(const struct rpc_msg *m, const ProtobufCMessageDescriptor *desc,
                  uint32_t bulk_field, ProtobufCMessage **out, size_t *bulk_off,
                  size_t *bulk_len);

#endif
