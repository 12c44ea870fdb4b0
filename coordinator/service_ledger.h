#ifndef AULAC_COORDINATOR_SERVICE_LEDGER_H
#define AULAC_COORDINATOR_SERVICE_LEDGER_H
/* The ledger methods of the Federation service (proto/service_ledger.h) and the
 * ledger part of a receipt. Handlers take the struct coord as ctx, like those of
 * service.c, and answer bad requests with INVALID_ARGUMENT / OUT_OF_RANGE /
 * NOT_FOUND and a line that says what to ask instead. */
#include "coordinator/coord.h"
#include "coordinator/update.h"
#include "proto/aulac.pb-c.h"
#include "proto/rpc.h"

void service_get_checkpoint(struct rpc_call *call, void *ctx);
void service_get_consistency_proof(struct rpc_call *call, void *ctx);
void service_get_inclusion_proof(struct rpc_call *call, void *ctx);
void service_get_entries(struct rpc_call *call, void *ctx);
void service_get_checkpoints(struct rpc_call *call, void *ctx);

/* What a receipt carries beyond its signed fields: the decision's ledger entry,
 * a signed checkpoint that includes it and the inclusion proof. */
struct receipt_ledger {
    uint8_t *entry;
    char *note;
    uint8_t proof[MERKLE_PROOF_MAX][32];
    ProtobufCBinaryData items[MERKLE_PROOF_MAX];
};

/* Fills r's ledger fields from u->ledger_index and u->ledger_size; what r points
 * to lives in rl until receipt_ledger_free. Leaves them empty (logged) when the
 * ledger cannot supply them: the receipt is still sent. */
void receipt_ledger_fill(struct coord *c, const struct update_check *u, Aulac__V1__Receipt *r,
                         struct receipt_ledger *rl);
void receipt_ledger_free(struct receipt_ledger *rl);

#endif
