#ifndef AULAC_PROTO_SERVICE_H
#define AULAC_PROTO_SERVICE_H
/* The Federation service of proto/aulac.proto: method paths and limits
 * shared by the coordinator (server) and the typed client (proto/client.h). */

#define FED_METHOD_HELLO           "/aulac.v1.Federation/Hello"           /* unary */
#define FED_METHOD_JOIN            "/aulac.v1.Federation/Join"            /* unary */
#define FED_METHOD_GET_TASK        "/aulac.v1.Federation/GetTask"         /* unary, long poll */
#define FED_METHOD_DOWNLOAD_MODEL  "/aulac.v1.Federation/DownloadModel"   /* server stream */
#define FED_METHOD_SUBMIT_UPDATE   "/aulac.v1.Federation/SubmitUpdate"    /* client stream */
#define FED_METHOD_STATUS          "/aulac.v1.Federation/Status"          /* unary */
#define FED_METHOD_PROPOSE_ROSTER  "/aulac.v1.Federation/ProposeRosterChange" /* unary */
#define FED_METHOD_VOTE            "/aulac.v1.Federation/Vote"            /* unary */
#define FED_METHOD_LIST_PROPOSALS  "/aulac.v1.Federation/ListProposals"   /* unary */
#define FED_METHOD_PROPOSE_MOTION  "/aulac.v1.Federation/ProposeMotion"   /* unary */
#define FED_METHOD_WITHDRAW        "/aulac.v1.Federation/Withdraw"        /* unary */
#define FED_METHOD_LIST_EXPERIMENTS "/aulac.v1.Federation/ListExperiments" /* unary */
#define FED_METHOD_PUT_ARTIFACT    "/aulac.v1.Federation/PutArtifact"     /* client stream */
#define FED_METHOD_GET_ARTIFACT    "/aulac.v1.Federation/GetArtifact"     /* server stream */

/* DownloadModel answers with at least one ModelChunk; chunks are contiguous
 * from the requested offset, all carry the same total_bytes, and the last
 * ends at total_bytes (a resume at the end sends one empty chunk).
 * SubmitUpdate's first message is the header, then data chunks in order.
 *
 * PutArtifact: ArtifactChunks whose offsets follow each other from 0, all naming the
 * same blake2b and total_bytes, the first carrying member_id and name (and the request
 * signature covers that first message, as SubmitUpdate's header chunk); the stream may
 * end right after a chunk that reaches total_bytes (an empty file: one empty chunk).
 * The coordinator may answer before the end (already held, over its size cap) and
 * stops reading; the answer is one ArtifactReceipt or a status with the reason.
 * GetArtifact answers with at least one ArtifactChunk: chunks are contiguous from the
 * request's offset, all carry the file's blake2b and total_bytes, and the last ends
 * at min(offset + length, total_bytes) (length 0: total_bytes); an empty range is one
 * empty chunk. An offset past total_bytes is OUT_OF_RANGE, an unknown hash NOT_FOUND. */

/* Largest data part of a ModelChunk or UpdateChunk. */
#define FED_MAX_CHUNK_BYTES            (1u << 20)
/* The data fields' numbers of ModelChunk and ArtifactChunk (proto/aulac.proto): the
 * bulk fields pb_call_send_bulk sends last and pb_stream_recv_bulk leaves uncopied; and
 * UpdateChunk's, which the coordinator stores from gRPC's buffers (pb_call_recv_bulk). */
#define FED_MODEL_CHUNK_DATA_FIELD     4u
#define FED_ARTIFACT_CHUNK_DATA_FIELD  5u
#define FED_UPDATE_CHUNK_DATA_FIELD    2u
/* Message limit both sides set unless configured otherwise: a full chunk
 * plus its header fits with room to spare. */
#define FED_DEFAULT_MAX_MESSAGE_BYTES  (4u << 20)
/* Longest GetTask wait a server should honour, and the extra time a client
 * allows on top of wait_ms for the reply to arrive. */
#define FED_MAX_LONG_POLL_MS           60000u
#define FED_LONG_POLL_MARGIN_MS        10000u

#endif
