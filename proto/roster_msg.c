#include "proto/roster_msg.h"

#include <stdio.h>
#include <string.h>

#include "common/why.h"

static int copy_text(char *dst, size_t cap, const char *src, const char *what, char *why,
                     size_t why_cap)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        snprintf(why, why_cap, "malformed proposal: %s is longer than %zu bytes", what, cap - 1);
        return -1;
    }
    memcpy(dst, src ? src : "", n + 1);
    return 0;
}

int roster_proposal_from_msg(const Aulac__V1__RosterProposal *q, struct roster_proposal *p,
                             uint8_t sig[64], char *why, size_t cap)
{
    memset(p, 0, sizeof *p);
    const Aulac__V1__RosterChange *ch = q ? q->change : NULL;
    if (!ch) {
        snprintf(why, cap, "malformed proposal: no change");
        return -1;
    }
    if (q->signature.len != 64) {
        snprintf(why, cap, "malformed proposal: the signature must be 64 bytes");
        return -1;
    }
    if (ch->public_key.len != 0 && ch->public_key.len != 32) {
        snprintf(why, cap, "malformed proposal: the public key must be 32 bytes");
        return -1;
    }
    if (copy_text(p->alliance, sizeof p->alliance, q->alliance, "alliance", why, cap) ||
        copy_text(p->proposer, sizeof p->proposer, q->proposer_id, "proposer_id", why, cap) ||
        copy_text(p->member, sizeof p->member, ch->member_id, "member_id", why, cap) ||
        copy_text(p->organization, sizeof p->organization, ch->organization, "organization",
                  why, cap) ||
        copy_text(p->reason, sizeof p->reason, ch->reason, "reason", why, cap))
        return -1;
    p->action = ch->action >= 1 && ch->action <= 3 ? (uint8_t)ch->action : 0;
    p->roles = ch->roles;
    if (ch->public_key.len == 32)
        memcpy(p->public_key, ch->public_key.data, 32);
    p->created_unix_ms = q->created_ms;
    p->expires_unix_ms = q->expires_ms;
    memcpy(sig, q->signature.data, 64);
    return proposal_check(p, why, cap) == 0 ? 0 : -1;
}

void roster_proposal_to_msg(const struct roster_proposal *p, const uint8_t sig[64],
                            Aulac__V1__RosterProposal *q, Aulac__V1__RosterChange *ch)
{
    static const uint8_t zero[32];
    aulac__v1__roster_change__init(ch);
    ch->action = (Aulac__V1__RosterChange__Action)p->action;
    ch->member_id = (char *)p->member;
    ch->organization = (char *)p->organization;
    ch->roles = p->roles;
    if (memcmp(p->public_key, zero, 32) != 0) {
        ch->public_key.data = (uint8_t *)p->public_key;
        ch->public_key.len = 32;
    }
    ch->reason = (char *)p->reason;
    aulac__v1__roster_proposal__init(q);
    q->change = ch;
    q->proposer_id = (char *)p->proposer;
    q->created_ms = p->created_unix_ms;
    q->expires_ms = p->expires_unix_ms;
    q->signature.data = (uint8_t *)sig;
    q->signature.len = 64;
    q->alliance = (char *)p->alliance;
}

void motion_to_msg(const struct motion *m, const uint8_t sig[64], const uint8_t *document,
                   size_t document_len, const char *document_name, Aulac__V1__Motion *q)
{
    aulac__v1__motion__init(q);
    q->kind = m->kind;
    q->proposer_id = (char *)m->proposer;
    q->experiment_id = (char *)m->experiment;
    if (document) {
        q->document.data = (uint8_t *)document;
        q->document.len = document_len;
    } else if (m->kind != MOTION_CANCEL) {
        q->document_digest.data = (uint8_t *)m->document_digest;
        q->document_digest.len = 32;
    }
    q->document_name = (char *)(document_name ? document_name : "");
    if (m->kind != MOTION_CANCEL) {
        q->content_hash.data = (uint8_t *)m->content_hash;
        q->content_hash.len = 32;
    }
    q->reason = (char *)m->reason;
    q->created_ms = m->created_unix_ms;
    q->expires_ms = m->expires_unix_ms;
    q->signature.data = (uint8_t *)sig;
    q->signature.len = 64;
    q->alliance = (char *)m->alliance;
}

int motion_from_status_msg(const Aulac__V1__Motion *q, struct motion *m, uint8_t sig[64],
                           char *why, size_t cap)
{
    memset(m, 0, sizeof *m);
    const char *exp = q->experiment_id ? q->experiment_id : "";
    const char *reason = q->reason ? q->reason : "";
    const char *alliance = q->alliance ? q->alliance : "";
    const char *proposer = q->proposer_id ? q->proposer_id : "";
    if (q->kind > 0xff || strlen(exp) > CRYPTO_ID_MAX || strlen(proposer) > CRYPTO_ID_MAX ||
        strlen(reason) > PROPOSAL_REASON_MAX || strlen(alliance) > PROPOSAL_ALLIANCE_MAX ||
        q->signature.len != 64 ||
        (q->content_hash.len != 32 && q->content_hash.len != 0) ||
        (q->document_digest.len != 32 && q->document_digest.len != 0))
        return why_fail(why, cap, -1, "malformed motion message");
    m->kind = (uint8_t)q->kind;
    snprintf(m->alliance, sizeof m->alliance, "%s", alliance);
    snprintf(m->proposer, sizeof m->proposer, "%s", proposer);
    snprintf(m->experiment, sizeof m->experiment, "%s", exp);
    snprintf(m->reason, sizeof m->reason, "%s", reason);
    if (q->content_hash.len == 32)
        memcpy(m->content_hash, q->content_hash.data, 32);
    if (q->document_digest.len == 32)
        memcpy(m->document_digest, q->document_digest.data, 32);
    m->created_unix_ms = q->created_ms;
    m->expires_unix_ms = q->expires_ms;
    memcpy(sig, q->signature.data, 64);
    return motion_check(m, why, cap) == 0 ? 0 : -1;
}
