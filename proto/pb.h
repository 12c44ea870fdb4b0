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

#endif
