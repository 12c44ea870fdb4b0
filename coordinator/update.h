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

/* Checks the payload against the signed hash, re-checks the round, validates the whole
 * payload (round_validate) and commits the acceptance; when every eligible member has
 * reported it asks the timer thread to close the round and returns without waiting. Refusals are recorded (update_reject). u->accepted tells the
 * outcome; the return is 0 unless storage failed. */
int update_accept(struct coord *c, struct update_check *u, const uint8_t *payload, size_t len);

/* Records u->reason as a rejection in the ledger and fills the receipt fields; counts it
 * in c->metrics under u->reason_label, for u->member when it is in the roster (else
 * METRICS_MEMBER_UNKNOWN). */
int update_reject(struct coord *c, struct update_check *u);

#endif
