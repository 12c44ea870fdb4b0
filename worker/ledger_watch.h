#ifndef AULAC_WORKER_LEDGER_WATCH_H
#define AULAC_WORKER_LEDGER_WATCH_H
/* The member's own watch over the coordinator's ledger.
 *
 * The worker keeps the last checkpoint it saw (a signed note) in its state
 * directory, file "ledger-checkpoint". Every new checkpoint, whether fetched
 * (GetCheckpoint, before each round) or carried by a receipt, must be signed by
 * the coordinator's key under the origin "aulac/<alliance>" and be an extension
 * of the last one seen (a consistency proof from GetConsistencyProof); each
 * receipt's ledger entry must record the update as sent and its inclusion proof
 * must lead to the receipt's checkpoint. When the log was rewritten, or the
 * coordinator cannot prove what it claims, the watch logs why and from then on
 * ledger_watch_failed() is true: the worker stops (WORKER_EXIT_LEDGER).
 * Failures to reach the coordinator are only warnings: the check is retried.
 *
 * Witnessing (worker/witness.h): every checkpoint taken is cross-checked against the
 * members' cosigned checkpoints and cosigned; a split view fails the watch. A member
 * with no kept checkpoint waits, at the first refresh after the start (before its
 * first round), for --witness-quorum other members to have witnessed the ledger. */
#include "crypto/envelope.h"
#include "proto/aulac.pb-c.h"
#include "worker/worker.h"

#define LEDGER_WATCH_FILE "ledger-checkpoint"

/* Reads the coordinator's alliance (Hello) and the checkpoint kept in the state
 * directory, then checks the coordinator's latest checkpoint against it. Returns
 * 0, WORKER_EXIT_LEDGER (history rewritten, or the kept checkpoint is not signed
 * by this coordinator: logged with what to do) or WORKER_EXIT_ERROR. */
int  ledger_watch_start(struct worker *w);
void ledger_watch_stop(struct worker *w);

/* Fetches the latest checkpoint and checks it extends the last one seen. */
void ledger_watch_refresh(struct worker *w);

/* Checks the ledger part of a receipt for the update e signed with sig. */
void ledger_watch_receipt(struct worker *w, const Aulac__V1__Receipt *r,
                          const struct update_envelope *e, const uint8_t sig[64]);

/* 1 when ledger entry `index` records the acceptance of exactly the update e (same
 * experiment, round, member and payload hash): a refused resend after a lost receipt
 * then still counts as accepted. 0 otherwise (logged). */
int  ledger_watch_confirm_accepted(struct worker *w, uint64_t index,
                                   const struct update_envelope *e);

/* 1 once the coordinator's ledger failed a check: stop working for it. */
int  ledger_watch_failed(const struct worker *w);

#endif
