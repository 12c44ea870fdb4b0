#ifndef AULAC_WORKER_WITNESS_H
#define AULAC_WORKER_WITNESS_H
/* The member as a witness of the coordinator's ledger (ledger/witness.h).
 *
 * After the ledger watch (ledger_watch.h) verified the coordinator's latest
 * checkpoint as an extension of every one seen before, the member cross-checks the
 * cosigned checkpoints the coordinator serves (GetCosignatures) against it, then
 * cosigns it with its member key and sends the cosignature (AddCosignature),
 * keeping its latest cosigned checkpoint in state-dir/ledger-cosigned. At start it
 * sends that kept one again, so that a coordinator showing another history learns,
 * and serves to every member, what this member saw.
 *
 * Witnesses are the members of --witnesses FILE (a roster file), or else of the
 * ledger's genesis entry (proved included in the verified checkpoint); the member
 * itself never counts toward a quorum. */
#include <stddef.h>

#include "ledger/checkpoint.h"
#include "proto/ledger_client.h"
#include "worker/worker.h"

#define WITNESS_KEPT_FILE        "ledger-cosigned"
#define WITNESS_DEFAULT_QUORUM   1
#define WITNESS_DEFAULT_WAIT_S   300
#define WITNESS_RECOSIGN_S       600   /* cosign the same checkpoint again after this */

struct member_witness;

/* log: the coordinator's checkpoint key; lc: the ledger channel (both outlive m).
 * Loads --witnesses when given. WORKER_EXIT_ERROR (logged) on a bad file. */
int  member_witness_open(struct worker *w, struct fed_ledger *lc,
                         const struct checkpoint_key *log, struct member_witness **out);
void member_witness_close(struct member_witness *m);   /* NULL is fine */

/* Sends the kept cosigned checkpoint again (nothing when there is none). */
void member_witness_republish(struct member_witness *m);

/* c (its signed note) was just verified as an extension of everything seen:
 * cross-checks the cosigned checkpoints served, then cosigns c and sends it.
 * 0; -1 with why (a split view, or a witness set that cannot be read): stop. Being
 * unable to reach the coordinator is only logged. */
int  member_witness_refresh(struct member_witness *m, const struct checkpoint *c,
                            const char *note, size_t len, char *why, size_t cap);

/* 1 when the last cross-check found at least the quorum (--witness-quorum, at most
 * the number of other witnesses; 0: always) of other members' cosigned checkpoints
 * consistent with the checkpoint checked, or when the witnesses name no other
 * member (logged); 0 otherwise, with what was found in why. */
int  member_witness_quorum_met(struct member_witness *m, char *why, size_t cap);

#endif
