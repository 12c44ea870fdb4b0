#ifndef AULAC_COORDINATOR_WITNESS_H
#define AULAC_COORDINATOR_WITNESS_H
/* The witnessing RPCs of the Federation service (proto/aulac.proto,
 * ledger/witness.h): members send the checkpoints they cosigned; anyone reads every
 * member's latest. Handlers take the struct coord as ctx. */
#include "coordinator/coord.h"
#include "proto/rpc.h"

/* Opens c->witness in the ledger's environment (after the ledger). COORD_ERR_STATE. */
int  coord_witness_open(struct coord *c);
void coord_witness_close(struct coord *c);

/* AddCosignature (a signed member RPC): verifies the coordinator's signature, the
 * member's cosignature with its roster key and the time, and stores it. */
void witness_on_add_cosignature(struct rpc_call *call, void *ctx);
/* GetCosignatures: every stored cosigned checkpoint. */
void witness_on_get_cosignatures(struct rpc_call *call, void *ctx);

#endif
