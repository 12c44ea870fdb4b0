#ifndef AULAC_PROTO_UPDATE_MSG_H
#define AULAC_PROTO_UPDATE_MSG_H
/* UpdateHeader messages (proto/aulac.proto) from the member's signed update envelope
 * (crypto/envelope.h; crypto/README.md "Update envelope" lists the fields they share,
 * and its SubmitUpdate vector gives the bytes). The one place a member (worker/worker.c,
 * bench/scale.c) builds the header it sends; the coordinator reads it back in
 * coordinator/update.c. Nothing here allocates. */
#include <stdint.h>

#include "codec/codec.h"
#include "crypto/envelope.h"
#include "proto/aulac.pb-c.h"

/* e->codec: the codec parameters the payload was encoded with (the round plan's uplink,
 * policies/plan.h), as the envelope signs them. */
void update_envelope_set_codec(struct update_envelope *e, const struct codec_params *cp);

/* Points h (and cp, which h->codec will point to) into e and sig, which must outlive h:
 * every signed field of h is e's (payload_bytes included), its signature is sig.
 * train_loss and val_loss, which nothing signs, are left 0 for the caller to set. */
void update_envelope_to_msg(const struct update_envelope *e,
                            const uint8_t sig[CRYPTO_SIGNATURE_BYTES],
                            Aulac__V1__UpdateHeader *h, Aulac__V1__CodecParams *cp);

#endif
