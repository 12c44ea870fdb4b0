#ifndef AULAC_PROTO_ROSTER_MSG_H
#define AULAC_PROTO_ROSTER_MSG_H
/* RosterProposal messages (proto/aulac.proto) <-> the signed statement
 * (crypto/proposal.h), and Motion messages from a motion (crypto/motion.h; the
 * coordinator reads them back in coordinator/governance.c). The one place where a proposal's fields are read from
 * untrusted protobuf: over-long texts are refused, never truncated (truncation
 * would change what was signed). */
#include <stddef.h>
#include <stdint.h>

#include "crypto/motion.h"
#include "crypto/proposal.h"
#include "proto/aulac.pb-c.h"

/* Fills p and sig from q and checks the field rules (proposal_check).
 * 0, or -1 with why in words. */
int roster_proposal_from_msg(const Aulac__V1__RosterProposal *q, struct roster_proposal *p,
                             uint8_t sig[64], char *why, size_t cap);

/* Points q (and ch, which q->change will point to) into p and sig: both must
 * outlive q. */
void roster_proposal_to_msg(const struct roster_proposal *p, const uint8_t sig[64],
                            Aulac__V1__RosterProposal *q, Aulac__V1__RosterChange *ch);

/* Points q into m, sig, the document (may be NULL) and its name (may be NULL): all
 * must outlive q. The content hash is left out for a cancel. */
void motion_to_msg(const struct motion *m, const uint8_t sig[64], const uint8_t *document,
                   size_t document_len, const char *document_name, Aulac__V1__Motion *q);

/* The motion of a ProposalStatus's Motion (document digest given, no document) and
 * its signature, checked by motion_check. 0, or -1 with why. */
int motion_from_status_msg(const Aulac__V1__Motion *q, struct motion *m, uint8_t sig[64],
                           char *why, size_t cap);

#endif
