#ifndef AULAC_COORDINATOR_STATUS_H
#define AULAC_COORDINATOR_STATUS_H
/* The coordinator's status: the one function that builds the Status RPC's reply and
 * the HTTP API's /api/v1/status (whose JSON is proto/status_json.h's, like `aulac status
 * --json`). */
#include "coordinator/coord.h"
#include "proto/aulac.pb-c.h"

/* "idle", "running", "finished", "failed", "cancelled" (the loaded experiment's). */
const char *coord_state_name(enum coord_exp_state s);

/* The status of experiment (NULL or "": the loaded one, else any approved one, queued or
 * ended; at most COORD_EXPERIMENT_MAX bytes, callers refuse longer ids): state, rounds,
 * closed rounds with their members' losses, members' contributions, ledger head,
 * privacy spent. Holds c->mu only to copy the loaded experiment's fields and the member
 * tables; reads stored rounds, the queue and the ledger without it.
 * *out is owned by the caller: aulac__v1__status_reply__free_unpacked(*out, NULL).
 * 0, COORD_ERR_NOT_FOUND (no such experiment was approved here), COORD_ERR_NOMEM. */
int coord_status_reply(struct coord *c, const char *experiment, Aulac__V1__StatusReply **out);

#endif
