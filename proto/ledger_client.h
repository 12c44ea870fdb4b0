#ifndef AULAC_PROTO_LEDGER_CLIENT_H
#define AULAC_PROTO_LEDGER_CLIENT_H
/* Typed client of the ledger methods of the Federation service
 * (proto/service_ledger.h): checkpoints, proofs and entries, for workers and the
 * CLI. Replies are untrusted: callers verify checkpoints (ledger/checkpoint.h)
 * and proofs (ledger/merkle.h) before relying on them; the helpers here check
 * only shapes (hash lengths, page order).
 *
 * Every function returns 0 or a negative code (rpc_strerror); st (may be NULL)
 * gets the call's status with a printable line in st->details on failure, e.g.
 * "GetCheckpoint: NOT_FOUND: no checkpoint is stored yet". Replies are freed with
 * the generated aulac__v1__*__free_unpacked(reply, NULL). */
#include <stddef.h>
#include <stdint.h>

#include "ledger/merkle.h"
#include "proto/aulac.pb-c.h"
#include "proto/client.h"
#include "proto/rpc.h"

struct fed_ledger;

/* A channel of its own to target; ch may be NULL (plaintext). timeout_ms per
 * call, 0: 15 s. wait_for_ready: wait for the coordinator until the deadline. */
int fed_ledger_open(const char *target, const struct rpc_channel_options *ch,
                    int64_t timeout_ms, int wait_for_ready, struct fed_ledger **out)
                    __attribute__((warn_unused_result));
void fed_ledger_close(struct fed_ledger *c);   /* NULL is fine */

/* have_size 0: the latest checkpoint. */
int fed_get_checkpoint(struct fed_ledger *c, int have_size, uint64_t size,
                       Aulac__V1__Checkpoint **reply, struct rpc_status *st);
/* new_size 0: the latest checkpoint's size. The reply's hashes are copied into
 * proof (MERKLE_PROOF_MAX entries) with *proof_len; FED_ERR_BAD_REPLY when a
 * hash is not 32 bytes or there are too many. */
int fed_get_consistency_proof(struct fed_ledger *c, uint64_t old_size, uint64_t new_size,
                              Aulac__V1__Proof **reply, uint8_t (*proof)[32],
                              size_t *proof_len, struct rpc_status *st);
int fed_get_inclusion_proof(struct fed_ledger *c, uint64_t index, uint64_t size,
                            Aulac__V1__Proof **reply, uint8_t (*proof)[32],
                            size_t *proof_len, struct rpc_status *st);
/* One page from index from (count 0: a full page). FED_ERR_BAD_REPLY when the
 * entries are not consecutive from `from`. */
int fed_get_entries(struct fed_ledger *c, uint64_t from, uint64_t count,
                    Aulac__V1__EntriesPage **reply, struct rpc_status *st);
int fed_get_checkpoints(struct fed_ledger *c, uint64_t from_size, uint32_t count,
                        Aulac__V1__CheckpointsPage **reply, struct rpc_status *st);

/* Every member's latest cosigned checkpoint (unverified: ledger/witness.h checks). */
int fed_get_cosignatures(struct fed_ledger *c, Aulac__V1__CosignaturesReply **reply,
                         struct rpc_status *st);

/* A witness_proof_fn (ledger/witness.h) over the channel arg (a struct fed_ledger):
 * the consistency proof from old_size to new_size; 1 when the coordinator answers
 * OUT_OF_RANGE (it cannot prove it), -1 on any other failure; why gets the status. */
int fed_witness_proof(void *arg, uint64_t old_size, uint64_t new_size, uint8_t (*proof)[32],
                      size_t *proof_len, char *why, size_t why_cap);

/* Copies the repeated bytes of a proof into proof[MERKLE_PROOF_MAX]; 0 or
 * FED_ERR_BAD_REPLY. */
int fed_proof_hashes(const ProtobufCBinaryData *items, size_t n, uint8_t (*proof)[32],
                     size_t *proof_len);

#endif
