#ifndef AULAC_PROTO_SERVICE_LEDGER_H
#define AULAC_PROTO_SERVICE_LEDGER_H
/* The ledger methods of the Federation service (proto/aulac.proto): paths and
 * page limits shared by the coordinator and proto/ledger_client.h. They are
 * unauthenticated reads, like Status: anyone who can reach the coordinator may
 * audit its ledger; but AddCosignature, a signed member RPC (proto/client.h). */

#define FED_METHOD_GET_CHECKPOINT      "/aulac.v1.Federation/GetCheckpoint"        /* unary */
#define FED_METHOD_GET_CONSISTENCY     "/aulac.v1.Federation/GetConsistencyProof"  /* unary */
#define FED_METHOD_GET_INCLUSION       "/aulac.v1.Federation/GetInclusionProof"    /* unary */
#define FED_METHOD_GET_ENTRIES         "/aulac.v1.Federation/GetEntries"           /* unary, paged */
#define FED_METHOD_GET_CHECKPOINTS     "/aulac.v1.Federation/GetCheckpoints"       /* unary, paged */
#define FED_METHOD_ADD_COSIGNATURE     "/aulac.v1.Federation/AddCosignature"       /* unary, signed */
#define FED_METHOD_GET_COSIGNATURES    "/aulac.v1.Federation/GetCosignatures"      /* unary */

/* A page of GetEntries / GetCheckpoints holds at most this many items, and the
 * entries of one page at most FED_LEDGER_PAGE_BYTES bytes (one entry larger than
 * that cannot be fetched over RPC: read the data directory instead). */
#define FED_LEDGER_PAGE_ITEMS  1000u
#define FED_LEDGER_PAGE_BYTES  (3u << 20)

#endif
