#ifndef AULAC_COORDINATOR_AUTH_H
#define AULAC_COORDINATOR_AUTH_H
/* Request authentication: every member RPC (Join, GetTask, DownloadModel,
 * SubmitUpdate, ProposeRosterChange, Vote, ListProposals) carries a signature
 * over (method, member, timestamp, nonce, body digest) in its metadata
 * (crypto/request.h). The coordinator refuses, with PERMISSION_DENIED and a
 * reason, what no retry can cure (the client should stop):
 *
 *   - a member that is not in the current roster (never was, or was removed);
 *   - a signature by a key that is not the member's roster key, as named by the
 *     request's key id (a rotated-out key is named as such);
 *
 * and with UNAUTHENTICATED and a reason what a fresh request may cure:
 *
 *   - missing or malformed metadata;
 *   - a timestamp more than AUTH_SKEW_MS from its clock;
 *   - a signature that does not verify with the member's current key (no key id,
 *     or the current key's);
 *   - a nonce seen before within the window (coordinator/replay.h, bounded), also
 *     across restarts: each accepted nonce is committed to LMDB (coord.replay) before
 *     the request is acted on and reloaded by auth_open();
 *   - a request message that names another member than the signer.
 *
 * A nonce that cannot be stored refuses the request with UNAVAILABLE (retry).
 * A refused SubmitUpdate is also recorded in the ledger as a rejected update, so
 * the member's and the alliance's record shows every attempt. An accepted call
 * leaves the server's unauthenticated budgets (rpc_call_set_authenticated). */
#include <protobuf-c/protobuf-c.h>

#include "coordinator/coord.h"
#include "proto/rpc.h"

#define AUTH_SKEW_MS          (5 * 60 * 1000)   /* +-5 minutes */
#define AUTH_REPLAY_CAPACITY  65536             /* nonces remembered at most (~3 MiB) */

/* Reloads the nonces of the last window from coord.replay (state_open_dbs first).
 * COORD_ERR_NOMEM, COORD_ERR_STATE. */
int  auth_open(struct coord *c);
void auth_close(struct coord *c);

/* Receives the request message (for a client stream: its first message) of a
 * member RPC, authenticates it and unpacks it into *out (free with
 * protobuf_c_message_free_unpacked). member (may be NULL) receives the
 * authenticated member id. Returns 0, or nonzero when the call has already been
 * finished (refused, malformed, or the client went away). */
int auth_call_recv(struct coord *c, struct rpc_call *call,
                   const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out,
                   char member[CRYPTO_ID_MAX + 1]);

#endif
