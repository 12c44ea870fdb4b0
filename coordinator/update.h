#ifndef AULAC_COORDINATOR_UPDATE_H
#define AULAC_COORDINATOR_UPDATE_H
/* Verification and acceptance of one SubmitUpdate. */
#include "coordinator/coord.h"
#include "crypto/envelope.h"
#include "proto/aulac.pb-c.h"

struct update_check {
    /* as claimed by the header (ids possibly invalid: checked before use) */
    char member[CRYPTO_ID_MAX + 1];
    char experiment[CRYPTO_ID_MAX + 1];
    uint64_t round;
    int known_member;
    struct update_envelope env;
    uint8_t signature[CRYPTO_SIGNATURE_BYTES];
    float train_loss, val_loss;
    /* outcome */
    int accepted;
    int duplicate;                  /* refused as a resend of an accepted update */
    uint64_t duplicate_of;          /* the original acceptance's ledger index */
    char reason[320];
    /* the reason's metrics label (metrics.h's vocabulary, HTTP.md); NULL: "other" */
    const char *reason_label;
    uint64_t ledger_index, ledger_size;
    uint8_t ledger_root[32];
    uint8_t receipt_signature[CRYPTO_SIGNATURE_BYTES];
};

/* Everything that can be checked before the payload arrives: well-formed ids and
 * lengths, roster membership, participation, the envelope signature, codec
 * parameters, claimed counts, and the open round (experiment, round, duplicate,
 * base model). 0 when the payload should be read; -1 with u->reason otherwise (and
 * u->duplicate when it is this very update, accepted before). */
int update_check_header(struct coord *c, const Aulac__V1__UpdateHeader *h,
                        struct update_check *u);

/* The upload's place among those in flight, after update_check_header passed and before
 * any payload byte is read: one per member, at most opt.max_uploads at once, and its
 * declared payload_bytes must fit the data directory's free space beside the bytes the
 * uploads in flight declared, keeping free opt.upload_free_margin_bytes plus what the
 * round's close writes (c->close_reserve_bytes, models_close_write_bytes). 0, or -1 with
 * *code (GRPC_STATUS_ABORTED: the member's own upload is in flight;
 * GRPC_STATUS_RESOURCE_EXHAUSTED: the cap or the disk) and why, the call's message
 * (coordinator/HTTP.md, "SubmitUpdate refusals"). Not recorded in the ledger: the update
 * was not judged. update_upload_end gives the place back (after the receipt or the
 * failure). Take mu. */
int update_upload_begin(struct coord *c, const struct update_check *u, int *code, char *why,
                        size_t cap);
void update_upload_end(struct coord *c, const struct update_check *u);

/* Checks the spooled payload (all of it received: sp has every byte) against the signed
 * length and hash, re-checks the round, validates the whole payload from its file
 * outside mu (round_validate; at most COORD_MAX_VALIDATIONS at once), syncs it, checks
 * the round again under mu (it may have closed meanwhile), renames it into the payload
 * store (spool_commit) and commits the acceptance; when every eligible member has
 * reported it asks the timer thread to close the round and returns without waiting.
 * Refusals are recorded (update_reject). u->accepted tells the outcome; the return is 0
 * unless the coordinator failed (storage, memory: u->reason says so, nothing recorded).
 * The caller still discards sp (spool_discard: the file is gone from the spool either
 * way). */
struct spool;
int update_accept(struct coord *c, struct update_check *u, struct spool *sp);

/* Records u->reason as a rejection in the ledger and fills the receipt fields; counts it
 * in c->metrics under u->reason_label, for u->member when it is in the roster (else
 * METRICS_MEMBER_UNKNOWN). */
int update_reject(struct coord *c, struct update_check *u);

#endif
