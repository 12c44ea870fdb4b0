#ifndef AULAC_PROTO_RPC_INTERNAL_H
#define AULAC_PROTO_RPC_INTERNAL_H
/* Shared by rpc_server.c and rpc_client.c; not part of the public API. */
#include <stddef.h>
#include <stdint.h>
#include <grpc/grpc.h>

#include "proto/rpc.h"

/* Copies a received message into a malloc'd buffer (at least 1 byte
 * allocated). 0 or RPC_ERR_NOMEM. Does not destroy bb. */
int rpc_buffer_copy_out(grpc_byte_buffer *bb, uint8_t **out, size_t *len);

/* A byte buffer holding a private copy of buf: gRPC may keep referring to
 * the slice after the send completes, so caller memory is never lent out.
 * NULL on allocation failure. Destroy with grpc_byte_buffer_destroy. */
grpc_byte_buffer *rpc_buffer_copy_in(const uint8_t *buf, size_t len);

/* The message of bb (taken: destroyed with the message, or at once on failure) as an
 * rpc_msg. NULL on allocation failure. */
struct rpc_msg *rpc_msg_take(grpc_byte_buffer *bb);

/* A byte buffer holding the concatenation of n parts: the copied ones copied once, the
 * lent ones referred to (their release runs when gRPC is done with them; at once when
 * this fails). NULL on allocation failure. Destroy with grpc_byte_buffer_destroy. */
grpc_byte_buffer *rpc_buffer_copy_parts(const struct rpc_part *parts, size_t n);
/* Releases the lent parts of parts[0, n) (a send that never built its buffer). */
void rpc_parts_release(const struct rpc_part *parts, size_t n);

/* Deadline timeout_ms from now, for grpc calls and plucks. */
gpr_timespec rpc_deadline_after_ms(int64_t timeout_ms);

/* Milliseconds from now until t: 0 if passed, INT64_MAX if infinite. */
int64_t rpc_ms_until(gpr_timespec t);

/* Reads a PEM file (at most 1 MiB) into a malloc'd NUL-terminated string.
 * 0 or RPC_ERR_TLS_FILE (logged with the path and reason). */
int rpc_read_pem(const char *path, char **out);
/* Wipes and frees a PEM that may hold a private key. NULL is a no-op. */
void rpc_free_pem(char *pem);

/* Shuts a pluck completion queue down and destroys it. Every batch started on it
 * must have been plucked already. */
void rpc_cq_destroy(grpc_completion_queue *cq);

/* Rewrites st->details into one printable line naming the method ("GetTask:
 * UNAVAILABLE: ..."): the server's status and details for RPC_ERR_STATUS, otherwise
 * reason, or rpc_strerror(rc) when reason is NULL. Returns rc. */
int rpc_fail_named(struct rpc_status *st, const char *method, int rc, const char *reason);

/* Fills a status (code + copied, truncated details). */
void rpc_status_set(struct rpc_status *st, grpc_status_code code, const char *details,
                    size_t details_len);

#endif
