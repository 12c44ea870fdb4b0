#ifndef AULAC_PROTO_CLIENT_H
#define AULAC_PROTO_CLIENT_H
/* Typed client of the Federation service (proto/aulac.proto).
 *
 * Every function returns 0 or a negative code (rpc_strerror). When st is not
 * NULL it receives the call's gRPC status (st->code stays OK when the failure
 * was local, e.g. a malformed reply); on failure st->details holds a
 * printable line such as "GetTask: UNAVAILABLE: failed to connect to all
 * addresses". Replies are unpacked messages the caller frees with the
 * generated aulac__v1__*__free_unpacked(reply, NULL).
 * Codes: RPC_ERR_STATUS (the server answered non-OK: see st),
 * RPC_ERR_INVALID_ARG, RPC_ERR_NOMEM, RPC_ERR_CALL_START, PB_ERR_MALFORMED /
 * PB_ERR_TOO_LARGE or FED_ERR_BAD_REPLY (the server's reply is unusable),
 * FED_ERR_ABORTED (a callback stopped a download). */
#include <stddef.h>
#include <stdint.h>

#include "crypto/keys.h"
#include "crypto/request.h"
#include "proto/aulac.pb-c.h"
#include "proto/rpc.h"

#define FED_ERR_ABORTED    (-1530)
#define FED_ERR_BAD_REPLY  (-1531)
#define FED_ERR_SIGN       (-1532)  /* the request could not be signed */

struct fed_client;

/* Request authentication (crypto/request.h): what one request carries in its
 * metadata. Every call but Hello and Status is signed when the client has an
 * identity or a signer. */
struct fed_request_auth {
    struct request_statement st;                 /* method, member, timestamp, nonce, body digest */
    uint8_t signature[CRYPTO_SIGNATURE_BYTES];
    char    key_id[CRYPTO_KEY_ID_CHARS + 1];     /* optional ("" to leave it out) */
};

/* Fills a for one request of method whose message bytes are body. Return 0 to
 * send the request, anything else to fail the call with FED_ERR_SIGN. */
typedef int (*fed_sign_fn)(void *ctx, const char *method, const uint8_t *body,
                           size_t body_len, struct fed_request_auth *a);

struct fed_client_options {
    struct rpc_channel_options channel;  /* TLS and message limit; zeros: plaintext,
                                            FED_DEFAULT_MAX_MESSAGE_BYTES */
    int64_t call_timeout_ms;     /* Hello, Join, Status; 0: 15 s */
    int64_t stream_timeout_ms;   /* whole DownloadModel / SubmitUpdate call; 0: 1 h */
    int     wait_for_ready;      /* 1: wait for the coordinator (until the deadline)
                                    instead of failing at once when it is down */
    const struct crypto_key *identity;  /* signs each request with the current time and a
                                           random nonce; must outlive the client */
    fed_sign_fn sign;            /* or a signer of one's own (tests); wins over identity */
    void       *sign_ctx;
    const volatile sig_atomic_t *interrupt;  /* when not NULL, a long poll (fed_get_task,
                                    fed_get_node_task) ends within RPC_INTERRUPT_POLL_MS of
                                    *interrupt becoming non-zero, with RPC_ERR_INTERRUPTED:
                                    a worker's stop flag, so SIGTERM is not held up by a
                                    poll of up to its wait_ms; must outlive the client */
};

/* opts may be NULL. The connection is made on the first call. A client may be
 * used from several threads at once. */
int fed_client_open(const char *target, const struct fed_client_options *opts,
                    struct fed_client **out) __attribute__((warn_unused_result));
/* No call may be running. NULL is a no-op. */
void fed_client_close(struct fed_client *c);
/* rpc_channel_wait_ready on the client's channel: after a call failed with UNAVAILABLE,
 * returns (0) as soon as the coordinator can be reached again, or RPC_ERR_CANCELLED
 * after timeout_ms. */
int fed_client_wait_ready(struct fed_client *c, int64_t timeout_ms);

int fed_hello(struct fed_client *c, const Aulac__V1__HelloRequest *req,
              Aulac__V1__HelloReply **reply, struct rpc_status *st);
int fed_join(struct fed_client *c, const Aulac__V1__JoinRequest *req,
             Aulac__V1__JoinReply **reply, struct rpc_status *st);
/* Long poll: the deadline is req->wait_ms + FED_LONG_POLL_MARGIN_MS. */
int fed_get_task(struct fed_client *c, const Aulac__V1__TaskRequest *req,
                 Aulac__V1__Task **task, struct rpc_status *st);
/* The Node service (proto/service_node.h), for a follower node polling its leader
 * node: the same channel options and request signing. Long poll as fed_get_task. */
int fed_get_node_task(struct fed_client *c, const Aulac__V1__NodeTaskRequest *req,
                      Aulac__V1__NodeTask **task, struct rpc_status *st);
int fed_status(struct fed_client *c, const Aulac__V1__StatusRequest *req,
               Aulac__V1__StatusReply **reply, struct rpc_status *st);

/* Roster governance (signed requests; the proposal and vote carry their own
 * signatures too). A refusal by the coordinator is a 0 return with
 * (*reply)->accepted = 0 and the reason. */
int fed_propose_roster_change(struct fed_client *c, const Aulac__V1__RosterProposal *req,
                              Aulac__V1__GovernanceReply **reply, struct rpc_status *st);
int fed_vote(struct fed_client *c, const Aulac__V1__VoteRequest *req,
             Aulac__V1__GovernanceReply **reply, struct rpc_status *st);
int fed_list_proposals(struct fed_client *c, const Aulac__V1__ProposalsRequest *req,
                       Aulac__V1__ProposalsReply **reply, struct rpc_status *st);
/* Motions and experiments (policies/GOVERNANCE.md), the same way. */
int fed_propose_motion(struct fed_client *c, const Aulac__V1__Motion *req,
                       Aulac__V1__GovernanceReply **reply, struct rpc_status *st);
int fed_withdraw(struct fed_client *c, const Aulac__V1__WithdrawRequest *req,
                 Aulac__V1__GovernanceReply **reply, struct rpc_status *st);
int fed_list_experiments(struct fed_client *c, const Aulac__V1__ExperimentsRequest *req,
                         Aulac__V1__ExperimentsReply **reply, struct rpc_status *st);

/* Witnessing (ledger/witness.h): sends this member's cosigned checkpoint (signed
 * request). A refusal is a 0 return with (*reply)->accepted = 0 and the reason. */
int fed_add_cosignature(struct fed_client *c, const Aulac__V1__CosignatureRequest *req,
                        Aulac__V1__CosignatureReply **reply, struct rpc_status *st);

/* Called once per chunk, in order; the chunk is freed when it returns.
 * Return 0 to go on, anything else to cancel the download (FED_ERR_ABORTED). */
typedef int (*fed_chunk_fn)(const Aulac__V1__ModelChunk *chunk, void *ctx);

/* Streams the model chunk by chunk to on_chunk, never holding more than one
 * chunk. Checks the stream as untrusted input: chunks must be contiguous from
 * req->offset, agree on total_bytes, not run past it, and the last must end
 * at total_bytes (else FED_ERR_BAD_REPLY). The caller still checks the hash. */
int fed_download_model(struct fed_client *c, const Aulac__V1__ModelRequest *req,
                       fed_chunk_fn on_chunk, void *ctx, struct rpc_status *st);

/* Where a chunk's data goes: called once per chunk, after the sequence checks, with the
 * chunk's fields (data.len its length, data.data NULL). Returns where to copy data.len
 * bytes, or NULL to cancel the download (FED_ERR_ABORTED). The sequence checks bound
 * offset + data.len by the server's total_bytes only: dest checks total_bytes against
 * its own buffer. */
typedef uint8_t *(*fed_chunk_dest_fn)(const Aulac__V1__ModelChunk *chunk, void *ctx);

/* fed_download_model that copies each chunk's data once, from the bytes gRPC received
 * straight to where dest says, then calls on_chunk (may be NULL) with data.data there.
 * fed_download_model is this with its own buffer as the destination. */
int fed_download_model_into(struct fed_client *c, const Aulac__V1__ModelRequest *req,
                            fed_chunk_dest_fn dest, fed_chunk_fn on_chunk, void *ctx,
                            struct rpc_status *st);

/* Sends hdr, then payload in chunks of chunk_bytes (0: FED_MAX_CHUNK_BYTES;
 * at most that), and returns the coordinator's receipt. hdr->payload_bytes
 * must equal payload_len. A receipt with accepted = 0 is still a 0 return:
 * the reason is in (*receipt)->reason. If the coordinator stops reading
 * early, sending stops and its answer is returned all the same. */
int fed_submit_update(struct fed_client *c, const Aulac__V1__UpdateHeader *hdr,
                      const uint8_t *payload, size_t payload_len, size_t chunk_bytes,
                      Aulac__V1__Receipt **receipt, struct rpc_status *st);

/* Called after each payload chunk is handed to the stream: sent of total bytes. */
typedef void (*fed_send_progress_fn)(void *ctx, uint64_t sent, uint64_t total);
/* fed_submit_update, calling progress (may be NULL) after every chunk sent. */
int fed_submit_update_progress(struct fed_client *c, const Aulac__V1__UpdateHeader *hdr,
                               const uint8_t *payload, size_t payload_len, size_t chunk_bytes,
                               fed_send_progress_fn progress, void *pctx,
                               Aulac__V1__Receipt **receipt, struct rpc_status *st);

/* ----------------------------------------------------------------- artifacts */

/* Called once per chunk of a GetArtifact stream, in order; the chunk is freed when it
 * returns. Return 0 to go on, anything else to cancel the download (FED_ERR_ABORTED). */
typedef int (*fed_artifact_chunk_fn)(const Aulac__V1__ArtifactChunk *chunk, void *ctx);

/* GetArtifact (signed request): streams bytes [req->offset, req->offset + req->length)
 * (length 0: to the end of the file) of the pinned file req->blake2b (32 bytes) names,
 * chunk by chunk to on_chunk, never holding more than one chunk. Checks the stream as
 * untrusted input (else FED_ERR_BAD_REPLY): every chunk names req->blake2b, all agree
 * on total_bytes, they are contiguous from req->offset, none runs past total_bytes, and
 * the last ends at the range's end, min(offset + length, total_bytes). The caller
 * still hashes the whole file. Refusals are RPC_ERR_STATUS with st->code: NOT_FOUND
 * (the coordinator does not hold the hash), OUT_OF_RANGE (offset past the end),
 * PERMISSION_DENIED / UNAUTHENTICATED (request authentication). */
int fed_get_artifact(struct fed_client *c, const Aulac__V1__ArtifactRequest *req,
                     fed_artifact_chunk_fn on_chunk, void *ctx, struct rpc_status *st);

/* Fills buf with the len bytes of the file at offset: 0, or anything else to stop the
 * upload (FED_ERR_ABORTED). */
typedef int (*fed_read_fn)(void *ctx, uint64_t offset, uint8_t *buf, size_t len);

/* What fed_put_artifact uploads. */
struct fed_artifact_source {
    uint8_t     blake2b[32];       /* plain BLAKE2b-256 of the whole file (no domain:
                                      crypto_blake2b256), as the policy pins it */
    uint64_t    total_bytes;
    const char *member_id;         /* the signer */
    const char *name;              /* file name for the coordinator's messages; may be NULL */
    fed_read_fn read;              /* the file's bytes, asked for in order */
    void       *read_ctx;
    size_t      chunk_bytes;       /* 0: FED_MAX_CHUNK_BYTES; at most that */
    fed_send_progress_fn progress; /* after every chunk sent; may be NULL */
    void       *progress_ctx;
};

/* PutArtifact (signed request; the signature covers the first chunk, which carries
 * member_id, name and the first data): streams the file and returns the coordinator's
 * receipt ((*receipt)->already_held: it had the file and wrote nothing). The
 * coordinator may answer before the end (already held): sending stops and its answer
 * is returned. Refusals are RPC_ERR_STATUS with st->code and the reason in
 * st->details: INVALID_ARGUMENT (the bytes do not hash to blake2b, offsets, sizes),
 * RESOURCE_EXHAUSTED (over the coordinator's --max-artifact-bytes, or its disk),
 * ABORTED (the same file is being uploaded by another call right now: retry later,
 * it will then be already held), PERMISSION_DENIED / UNAUTHENTICATED. */
int fed_put_artifact(struct fed_client *c, const struct fed_artifact_source *src,
                     Aulac__V1__ArtifactReceipt **receipt, struct rpc_status *st);

#endif
