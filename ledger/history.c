#include "ledger/history.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "ledger/ledger.h"

struct member {
    char    id[ENTRY_ID_MAX + 1];
    uint8_t key[32];
    int     active;                    /* 0 once removed */
};

/* A roster proposal (motion 0) or a motion (motion 1) recorded so far. */
struct proposal {
    uint8_t  hash[32];
    uint32_t action;                   /* roster: 1 add, 2 remove, 3 rotate */
    char     member[ENTRY_ID_MAX + 1]; /* roster: whom it is about; motion: the proposer */
    uint8_t  key[32];                  /* roster: the key; motion: the content hash */
    int      motion;
    uint32_t kind;                     /* motion: enum motion_kind */
    char     experiment[ENTRY_ID_MAX + 1];
    uint32_t outcome;                  /* motion: 0 open, else enum entry_outcome */
    int      started;                  /* experiment motion: an experiment_started names it */
};

/* (experiment, round, member) accepted: the first 16 bytes of BLAKE2b-256 of the
 * ledger_update_key, in an open-addressing table (a zero slot is empty). */
struct accepted {
    uint8_t  digest[16];
    uint64_t index;
};

struct ledger_history {
    uint64_t next;
    int failed;                        /* the first failure's code, kept */
    char alliance[PROPOSAL_ALLIANCE_MAX + 1];
    struct member *members;
    size_t n_members, cap_members;
    struct proposal *proposals;
    size_t n_proposals, cap_proposals;
    struct accepted *accepted;
    size_t n_accepted, cap_accepted;   /* cap: a power of two */
    struct ledger_history_counts counts;
    uint8_t charter[32];               /* the charter in force (ledger_history_charter) */
    uint64_t charter_index;
    int governed;                      /* the genesis holds a charter: experiments start only
                                          under approved motions */
};

int ledger_history_new(struct ledger_history **out)
{
    if (!out)
        return LEDGER_ERR_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? 0 : LEDGER_ERR_NOMEM;
}

void ledger_history_free(struct ledger_history *h)
{
    if (!h)
        return;
    free(h->members);
    free(h->proposals);
    free(h->accepted);
    free(h);
}

void ledger_history_counts(const struct ledger_history *h, struct ledger_history_counts *out)
{
    *out = h->counts;
}

void ledger_history_charter(const struct ledger_history *h, uint8_t hash[32], uint64_t *index)
{
    memcpy(hash, h->charter, 32);
    if (index)
        *index = h->charter_index;
}

void entry_motion_from_motion(struct entry_motion *r, const struct motion *m,
                              const uint8_t hash[32], const uint8_t sig[64],
                              const uint8_t *document, size_t document_len)
{
    memcpy(r->proposal_hash, hash, 32);
    r->kind = m->kind;
    snprintf(r->proposer, sizeof r->proposer, "%s", m->proposer);
    snprintf(r->experiment, sizeof r->experiment, "%s", m->experiment);
    r->document = (uint8_t *)document;
    r->document_len = document ? document_len : 0;
    memcpy(r->document_digest, m->document_digest, 32);
    memcpy(r->content_hash, m->content_hash, 32);
    r->reason = m->reason[0] ? (char *)m->reason : NULL;
    r->created_ms = m->created_unix_ms;
    r->expires_ms = m->expires_unix_ms;
    memcpy(r->signature, sig, 64);
}

int entry_motion_motion(const struct entry_motion *r, const char *alliance, struct motion *m)
{
    memset(m, 0, sizeof *m);
    const char *reason = r->reason ? r->reason : "";
    if (strlen(alliance) > PROPOSAL_ALLIANCE_MAX || r->kind > 0xff ||
        strlen(reason) > PROPOSAL_REASON_MAX)
        return -1;
    snprintf(m->alliance, sizeof m->alliance, "%s", alliance);
    m->kind = (uint8_t)r->kind;
    snprintf(m->proposer, sizeof m->proposer, "%s", r->proposer);
    snprintf(m->experiment, sizeof m->experiment, "%s", r->experiment);
    memcpy(m->document_digest, r->document_digest, 32);
    memcpy(m->content_hash, r->content_hash, 32);
    snprintf(m->reason, sizeof m->reason, "%s", reason);
    m->created_unix_ms = r->created_ms;
    m->expires_unix_ms = r->expires_ms;
    return 0;
}

enum entry_type entry_motion_type(uint32_t kind)
{
    switch (kind) {
    case MOTION_EXPERIMENT: return ENTRY_POLICY_PROPOSED;
    case MOTION_CANCEL: return ENTRY_CANCEL_PROPOSED;
    case MOTION_CHARTER: return ENTRY_CHARTER_PROPOSED;
    }
    return 0;
}

void entry_update_from_envelope(struct entry_update *u, const struct update_envelope *env)
{
    snprintf(u->experiment, sizeof u->experiment, "%s", env->experiment);
    u->round = env->round;
    snprintf(u->member, sizeof u->member, "%s", env->member);
    memcpy(u->payload_hash, env->payload_hash, 32);
    u->tokens = env->tokens;
    u->samples = env->samples;
    u->bytes = env->payload_bytes;
    memcpy(u->base_model_hash, env->base_model_hash, 32);
    u->val_loss = NAN;   /* not in the envelope: the caller sets it when the member reported one */
    u->codec = (struct entry_codec){ .format_version = env->codec.format_version,
                                     .block_size = env->codec.block_size,
                                     .k_per_block = env->codec.k_per_block,
                                     .quant = env->codec.quant,
                                     .zstd_level = env->codec.zstd_level,
                                     .error_feedback = env->codec.error_feedback };
}

void entry_update_envelope(const struct entry_update *u, struct update_envelope *env)
{
    memset(env, 0, sizeof *env);
    snprintf(env->experiment, sizeof env->experiment, "%s", u->experiment);
    env->round = u->round;
    snprintf(env->member, sizeof env->member, "%s", u->member);
    memcpy(env->base_model_hash, u->base_model_hash, 32);
    memcpy(env->payload_hash, u->payload_hash, 32);
    env->payload_bytes = u->bytes;
    env->samples = u->samples;
    env->tokens = u->tokens;
    env->codec = (struct envelope_codec){ .format_version = u->codec.format_version,
                                          .block_size = u->codec.block_size,
                                          .k_per_block = u->codec.k_per_block,
                                          .quant = u->codec.quant,
                                          .zstd_level = u->codec.zstd_level,
                                          .error_feedback = u->codec.error_feedback };
}

void entry_proposed_from_proposal(struct entry_roster_proposed *r, const struct roster_proposal *p,
                                  const uint8_t hash[32], const uint8_t sig[64])
{
    memcpy(r->proposal_hash, hash, 32);
    r->action = p->action;
    snprintf(r->proposer, sizeof r->proposer, "%s", p->proposer);
    snprintf(r->member, sizeof r->member, "%s", p->member);
    r->organization = p->organization[0] ? (char *)p->organization : NULL;
    r->roles = p->roles;
    memcpy(r->public_key, p->public_key, 32);
    r->reason = p->reason[0] ? (char *)p->reason : NULL;
    r->created_ms = p->created_unix_ms;
    r->expires_ms = p->expires_unix_ms;
    memcpy(r->signature, sig, 64);
}

int entry_proposed_proposal(const struct entry_roster_proposed *r, const char *alliance,
                            struct roster_proposal *p)
{
    memset(p, 0, sizeof *p);
    const char *org = r->organization ? r->organization : "";
    const char *reason = r->reason ? r->reason : "";
    if (strlen(alliance) > PROPOSAL_ALLIANCE_MAX || r->action > 0xff ||
        strlen(r->member) > PROPOSAL_MEMBER_MAX || strlen(org) > PROPOSAL_ORG_MAX ||
        strlen(reason) > PROPOSAL_REASON_MAX)
        return -1;
    snprintf(p->alliance, sizeof p->alliance, "%s", alliance);
    p->action = (uint8_t)r->action;
    snprintf(p->proposer, sizeof p->proposer, "%s", r->proposer);
    snprintf(p->member, sizeof p->member, "%s", r->member);
    snprintf(p->organization, sizeof p->organization, "%s", org);
    p->roles = r->roles;
    memcpy(p->public_key, r->public_key, 32);
    snprintf(p->reason, sizeof p->reason, "%s", reason);
    p->created_unix_ms = r->created_ms;
    p->expires_unix_ms = r->expires_ms;
    return 0;
}

/* --- the roster of the moment ------------------------------------------------------ */

static struct member *member_find(struct ledger_history *h, const char *id)
{
    for (size_t i = 0; i < h->n_members; i++)
        if (strcmp(h->members[i].id, id) == 0)
            return &h->members[i];
    return NULL;
}

static struct member *active_member(struct ledger_history *h, const char *id)
{
    struct member *m = member_find(h, id);
    return m && m->active ? m : NULL;
}

/* Grows *arr (elements of size es) to hold one more; 0 or LEDGER_ERR_NOMEM. */
static int grow(void **arr, size_t n, size_t *cap, size_t es)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 16;
    void *p = realloc(*arr, c * es);
    if (!p)
        return LEDGER_ERR_NOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

static int member_add(struct ledger_history *h, const char *id, const uint8_t key[32])
{
    struct member *m = member_find(h, id);   /* a member removed earlier may come back */
    if (!m) {
        int rc = grow((void **)&h->members, h->n_members, &h->cap_members, sizeof *m);
        if (rc)
            return rc;
        m = &h->members[h->n_members++];
        snprintf(m->id, sizeof m->id, "%s", id);
    }
    memcpy(m->key, key, 32);
    m->active = 1;
    return 0;
}

static struct proposal *proposal_find(struct ledger_history *h, const uint8_t hash[32])
{
    for (size_t i = 0; i < h->n_proposals; i++)
        if (memcmp(h->proposals[i].hash, hash, 32) == 0)
            return &h->proposals[i];
    return NULL;
}

static struct proposal *proposal_new(struct ledger_history *h, const uint8_t hash[32])
{
    if (grow((void **)&h->proposals, h->n_proposals, &h->cap_proposals, sizeof *h->proposals))
        return NULL;
    struct proposal *q = &h->proposals[h->n_proposals++];
    memset(q, 0, sizeof *q);
    memcpy(q->hash, hash, 32);
    return q;
}

/* --- accepted updates ---------------------------------------------------------------- */

static uint64_t slot_of(const uint8_t d[16], size_t cap)
{
    uint64_t v;
    memcpy(&v, d, 8);
    return v & (cap - 1);
}

static int is_empty(const struct accepted *a)
{
    static const uint8_t zero[16];
    return memcmp(a->digest, zero, 16) == 0;
}

static struct accepted *accepted_slot(struct accepted *t, size_t cap, const uint8_t d[16])
{
    for (uint64_t i = slot_of(d, cap);; i = (i + 1) & (cap - 1))
        if (is_empty(&t[i]) || memcmp(t[i].digest, d, 16) == 0)
            return &t[i];
}

/* 0 when newly recorded, 1 with *first set when (experiment, round, member) was
 * accepted before, or LEDGER_ERR_NOMEM / LEDGER_ERR_ENTRY_ID. */
static int accepted_once(struct ledger_history *h, const struct entry_update *u, uint64_t index,
                         uint64_t *first)
{
    uint8_t key[LEDGER_UPDATE_KEY_MAX], d[32];
    int klen = ledger_update_key(u->experiment, u->round, u->member, key);
    if (klen < 0)
        return klen;
    crypto_blake2b256(key, (size_t)klen, d);
    d[0] |= 1;   /* never all zero: that marks an empty slot */
    if (2 * (h->n_accepted + 1) > h->cap_accepted) {
        size_t cap = h->cap_accepted ? 2 * h->cap_accepted : 1024;
        struct accepted *t = calloc(cap, sizeof *t);
        if (!t)
            return LEDGER_ERR_NOMEM;
        for (size_t i = 0; i < h->cap_accepted; i++)
            if (!is_empty(&h->accepted[i]))
                *accepted_slot(t, cap, h->accepted[i].digest) = h->accepted[i];
        free(h->accepted);
        h->accepted = t;
        h->cap_accepted = cap;
    }
    struct accepted *a = accepted_slot(h->accepted, h->cap_accepted, d);
    if (!is_empty(a)) {
        *first = a->index;
        return 1;
    }
    memcpy(a->digest, d, 16);
    a->index = index;
    h->n_accepted++;
    return 0;
}

/* --- one entry ------------------------------------------------------------------------ */

struct ctx {
    struct ledger_history *h;
    uint64_t index;
    char *why;
    size_t cap;
};

__attribute__((format(printf, 3, 4)))
static int refuse(const struct ctx *x, int rc, const char *fmt, ...)
{
    if (x->why && x->cap) {
        int n = snprintf(x->why, x->cap, "entry %" PRIu64 ": ", x->index);
        if (n > 0 && (size_t)n < x->cap) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(x->why + n, x->cap - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return rc;
}

static int check_genesis(const struct ctx *x, const struct entry_genesis *g)
{
    struct ledger_history *h = x->h;
    if (x->index != 0)
        return refuse(x, LEDGER_ERR_HISTORY, "a second genesis entry (the founding roster is "
                      "entry 0 only)");
    if (g->alliance)
        snprintf(h->alliance, sizeof h->alliance, "%s", g->alliance);
    if (g->charter) {
        crypto_blake2b256(g->charter, strlen(g->charter), h->charter);
        h->governed = 1;
    }
    for (uint32_t i = 0; i < g->n_members; i++) {
        const struct entry_member *m = &g->members[i];
        if (m->roles & ENTRY_ROLE_COORDINATOR)
            continue;   /* the coordinator signs checkpoints, not as a member */
        if (member_find(h, m->id))
            return refuse(x, LEDGER_ERR_HISTORY, "genesis names member %s twice", m->id);
        int rc = member_add(h, m->id, m->public_key);
        if (rc)
            return rc;
    }
    return 0;
}

static int check_update(const struct ctx *x, const struct entry_update *u)
{
    struct ledger_history *h = x->h;
    const struct member *m = member_find(h, u->member);
    if (!m || !m->active)
        return refuse(x, LEDGER_ERR_HISTORY, "an update of %s for %s round %" PRIu64 " is "
                      "recorded as accepted, but %s is %s the roster at that point", u->member,
                      u->experiment, u->round, u->member, m ? "removed from" : "not in");
    struct update_envelope env;
    entry_update_envelope(u, &env);
    if (envelope_verify(&env, m->key, u->envelope_signature) != 0)
        return refuse(x, LEDGER_ERR_MEMBER_SIGNATURE, "the update envelope of %s for %s round "
                      "%" PRIu64 " does not verify with %s's key of that moment: this entry "
                      "is not what %s signed", u->member, u->experiment, u->round, u->member,
                      u->member);
    uint64_t first = 0;
    int rc = accepted_once(h, u, x->index, &first);
    if (rc == 1)
        return refuse(x, LEDGER_ERR_HISTORY, "an update of %s for %s round %" PRIu64 " was "
                      "already accepted at entry %" PRIu64 "; each member is counted once per "
                      "round", u->member, u->experiment, u->round, first);
    if (rc < 0)
        return rc;
    h->counts.updates++;
    return 0;
}

static int check_proposed(const struct ctx *x, const struct entry_roster_proposed *r)
{
    struct ledger_history *h = x->h;
    const struct member *m = active_member(h, r->proposer);
    if (!m)
        return refuse(x, LEDGER_ERR_HISTORY, "a roster proposal by %s, who is not in the "
                      "roster at that point", r->proposer);
    struct roster_proposal p;
    char why[200] = "a field is over its limit";
    int fits = entry_proposed_proposal(r, h->alliance, &p) == 0 &&
               proposal_check(&p, why, sizeof why) == 0;
    if (!fits)
        return refuse(x, LEDGER_ERR_HISTORY, "the roster proposal by %s is not a valid "
                      "proposal: %s", r->proposer, why);
    uint8_t hash[32];
    if (proposal_hash(&p, hash) != 0 || !crypto_equal(hash, r->proposal_hash, 32))
        return refuse(x, LEDGER_ERR_HISTORY, "the roster proposal by %s to %s %s does not hash "
                      "to its stored proposal hash", r->proposer,
                      proposal_action_name(p.action), r->member);
    if (proposal_verify(&p, m->key, r->signature) != 0)
        return refuse(x, LEDGER_ERR_MEMBER_SIGNATURE, "the roster proposal by %s to %s %s does "
                      "not verify with %s's key of that moment", r->proposer,
                      proposal_action_name(p.action), r->member, r->proposer);
    if (proposal_find(h, hash))
        return refuse(x, LEDGER_ERR_HISTORY, "the same roster proposal is recorded twice");
    struct proposal *q = proposal_new(h, hash);
    if (!q)
        return LEDGER_ERR_NOMEM;
    q->action = r->action;
    snprintf(q->member, sizeof q->member, "%s", r->member);
    memcpy(q->key, r->public_key, 32);
    h->counts.proposals++;
    return 0;
}

static int check_motion(const struct ctx *x, enum entry_type type, const struct entry_motion *r)
{
    struct ledger_history *h = x->h;
    const char *what = motion_kind_name((int)r->kind);
    if (!what || entry_motion_type(r->kind) != type)
        return refuse(x, LEDGER_ERR_HISTORY, "a %s entry holds a motion of kind %u",
                      entry_type_name(type), r->kind);
    const struct member *m = active_member(h, r->proposer);
    if (!m)
        return refuse(x, LEDGER_ERR_HISTORY, "a%s %s motion by %s, who is not in the roster "
                      "at that point", r->kind == MOTION_EXPERIMENT ? "n" : "", what,
                      r->proposer);
    uint8_t digest[32], hash[32];
    if (r->document)
        crypto_blake2b256(r->document, r->document_len, digest);
    else
        memset(digest, 0, 32);
    if (!crypto_equal(digest, r->document_digest, 32))
        return refuse(x, LEDGER_ERR_HISTORY, "the %s motion by %s holds a document that does "
                      "not hash to its signed document digest: it is not the file %s proposed",
                      what, r->proposer, r->proposer);
    struct motion mo;
    char why[200] = "a field is over its limit";
    if (entry_motion_motion(r, h->alliance, &mo) != 0 || motion_check(&mo, why, sizeof why) != 0)
        return refuse(x, LEDGER_ERR_HISTORY, "the %s motion by %s is not a valid motion: %s",
                      what, r->proposer, why);
    if (motion_hash(&mo, hash) != 0 || !crypto_equal(hash, r->proposal_hash, 32))
        return refuse(x, LEDGER_ERR_HISTORY, "the %s motion by %s does not hash to its stored "
                      "proposal hash", what, r->proposer);
    if (motion_verify(&mo, m->key, r->signature) != 0)
        return refuse(x, LEDGER_ERR_MEMBER_SIGNATURE, "the %s motion by %s does not verify with "
                      "%s's key of that moment", what, r->proposer, r->proposer);
    if (proposal_find(h, hash))
        return refuse(x, LEDGER_ERR_HISTORY, "the same %s motion is recorded twice", what);
    struct proposal *q = proposal_new(h, hash);
    if (!q)
        return LEDGER_ERR_NOMEM;
    q->motion = 1;
    q->kind = r->kind;
    snprintf(q->member, sizeof q->member, "%s", r->proposer);
    snprintf(q->experiment, sizeof q->experiment, "%s", r->experiment);
    memcpy(q->key, r->content_hash, 32);
    h->counts.motions++;
    return 0;
}

static int check_decided(const struct ctx *x, const struct entry_proposal_decided *d)
{
    struct ledger_history *h = x->h;
    char hx[17];
    hex_encode(d->proposal_hash, 8, hx);
    struct proposal *p = proposal_find(h, d->proposal_hash);
    if (!p || !p->motion)
        return refuse(x, LEDGER_ERR_HISTORY, "a decision on proposal %s…, which no earlier "
                      "motion entry holds", hx);
    if (d->outcome < ENTRY_OUTCOME_APPROVED || d->outcome > ENTRY_OUTCOME_OBSOLETE)
        return refuse(x, LEDGER_ERR_HISTORY, "a decision on proposal %s… with unknown outcome "
                      "%u", hx, d->outcome);
    /* decided once; only an approved experiment may be withdrawn afterwards, before it starts */
    int late_withdrawal = p->outcome == ENTRY_OUTCOME_APPROVED && p->kind == MOTION_EXPERIMENT &&
                          d->outcome == ENTRY_OUTCOME_WITHDRAWN && !p->started;
    if (p->outcome && !late_withdrawal)
        return refuse(x, LEDGER_ERR_HISTORY, "proposal %s… is decided twice", hx);
    if (d->outcome == ENTRY_OUTCOME_WITHDRAWN) {
        const struct member *m = active_member(h, p->member);
        struct withdrawal w = { 0 };
        memcpy(w.proposal_hash, d->proposal_hash, 32);
        snprintf(w.member, sizeof w.member, "%s", p->member);
        if (!m || withdrawal_verify(&w, m->key, d->withdraw_signature) != 0)
            return refuse(x, LEDGER_ERR_MEMBER_SIGNATURE, "the withdrawal of proposal %s… does "
                          "not verify with its proposer %s's key of that moment", hx, p->member);
    }
    p->outcome = d->outcome;
    if (p->kind == MOTION_CHARTER && d->outcome == ENTRY_OUTCOME_APPROVED) {
        memcpy(h->charter, p->key, 32);
        h->charter_index = x->index;
        h->counts.charter_changes++;
    }
    h->counts.decisions++;
    return 0;
}

/* experiment_started names the approved motion it runs: the same experiment id and
 * policy hash, started once; from then on it can no longer be withdrawn. A ledger whose
 * genesis holds a charter starts no experiment without one (older ledgers, founded before
 * the charter, may name none). */
static int check_started(const struct ctx *x, const struct entry_experiment *e)
{
    static const uint8_t zero[32];
    if (memcmp(e->proposal_hash, zero, 32) == 0) {
        if (x->h->governed)
            return refuse(x, LEDGER_ERR_HISTORY, "experiment %s starts without naming the "
                          "approved proposal it runs", e->experiment);
        return 0;
    }
    struct proposal *p = proposal_find(x->h, e->proposal_hash);
    char hx[17];
    hex_encode(e->proposal_hash, 8, hx);
    if (!p || !p->motion || p->kind != MOTION_EXPERIMENT || p->outcome != ENTRY_OUTCOME_APPROVED)
        return refuse(x, LEDGER_ERR_HISTORY, "experiment %s starts under proposal %s…, which "
                      "is no approved experiment motion before it", e->experiment, hx);
    if (strcmp(p->experiment, e->experiment) != 0 || memcmp(p->key, e->policy_hash, 32) != 0)
        return refuse(x, LEDGER_ERR_HISTORY, "experiment %s starts under proposal %s…, which "
                      "approved experiment %s with another policy hash or id", e->experiment,
                      hx, p->experiment);
    if (p->started)
        return refuse(x, LEDGER_ERR_HISTORY, "experiment %s (proposal %s…) starts twice",
                      e->experiment, hx);
    p->started = 1;
    return 0;
}

static int check_vote(const struct ctx *x, const struct entry_vote *v)
{
    const struct member *m = active_member(x->h, v->voter);
    char h[17];
    hex_encode(v->policy_hash, 8, h);
    if (!m)
        return refuse(x, LEDGER_ERR_HISTORY, "a vote by %s on %s…, who is not in the roster "
                      "at that point", v->voter, h);
    if (!proposal_find(x->h, v->policy_hash))
        return refuse(x, LEDGER_ERR_HISTORY, "a vote by %s on %s…, which no earlier proposal "
                      "or motion entry holds", v->voter, h);
    struct roster_vote rv;
    memset(&rv, 0, sizeof rv);
    memcpy(rv.proposal_hash, v->policy_hash, 32);
    snprintf(rv.voter, sizeof rv.voter, "%s", v->voter);
    rv.approve = v->approve;
    if (vote_verify(&rv, m->key, v->signature) != 0)
        return refuse(x, LEDGER_ERR_MEMBER_SIGNATURE, "the vote of %s on %s… does not verify "
                      "with %s's key of that moment", v->voter, h, v->voter);
    x->h->counts.votes++;
    return 0;
}

/* A roster change naming a proposal must match a roster_proposed entry before it. */
static int check_outcome(const struct ctx *x, const uint8_t hash[32], uint32_t action,
                         const char *member, const uint8_t *key)
{
    static const uint8_t zero[32];
    if (memcmp(hash, zero, 32) == 0)
        return 0;
    const struct proposal *p = proposal_find(x->h, hash);
    char hx[17];
    hex_encode(hash, 8, hx);
    if (!p || p->motion)
        return refuse(x, LEDGER_ERR_HISTORY, "the change to %s names proposal %s…, which no "
                      "earlier roster_proposed entry holds", member, hx);
    if (p->action != action || strcmp(p->member, member) != 0 ||
        (key && memcmp(p->key, key, 32) != 0))
        return refuse(x, LEDGER_ERR_HISTORY, "the change to %s is not the one proposal %s… "
                      "proposed", member, hx);
    return 0;
}

static int check_roster_change(const struct ctx *x, const struct entry *e)
{
    struct ledger_history *h = x->h;
    int rc;
    switch (e->type) {
    case ENTRY_MEMBER_ADDED: {
        const struct entry_member_added *a = &e->u.member_added;
        if (active_member(h, a->member.id))
            return refuse(x, LEDGER_ERR_HISTORY, "member %s is added but already in the "
                          "roster", a->member.id);
        if ((rc = check_outcome(x, a->proposal_hash, PROPOSAL_ADD, a->member.id,
                                a->member.public_key)) != 0)
            return rc;
        rc = member_add(h, a->member.id, a->member.public_key);
        break;
    }
    case ENTRY_MEMBER_REMOVED: {
        const struct entry_member_removed *r = &e->u.member_removed;
        struct member *m = active_member(h, r->member);
        if (!m)
            return refuse(x, LEDGER_ERR_HISTORY, "member %s is removed but not in the roster",
                          r->member);
        if ((rc = check_outcome(x, r->proposal_hash, PROPOSAL_REMOVE, r->member, NULL)) != 0)
            return rc;
        m->active = 0;
        break;
    }
    default: {   /* ENTRY_KEY_ROTATED */
        const struct entry_key_rotated *k = &e->u.key_rotated;
        struct member *m = active_member(h, k->member);
        if (!m)
            return refuse(x, LEDGER_ERR_HISTORY, "the key of %s is rotated but %s is not in "
                          "the roster", k->member, k->member);
        if ((rc = check_outcome(x, k->proposal_hash, PROPOSAL_ROTATE, k->member,
                                k->new_public_key)) != 0)
            return rc;
        memcpy(m->key, k->new_public_key, 32);
        break;
    }
    }
    if (rc == 0)
        h->counts.roster_changes++;
    return rc;
}

static int check_entry(const struct ctx *x, const struct entry *e)
{
    if (x->index == 0 && e->type != ENTRY_GENESIS)
        return refuse(x, LEDGER_ERR_HISTORY, "the first entry is a %s, not the genesis "
                      "roster", entry_type_name(e->type));
    switch (e->type) {
    case ENTRY_GENESIS:
        return check_genesis(x, &e->u.genesis);
    case ENTRY_UPDATE_ACCEPTED:
        return check_update(x, &e->u.update);
    case ENTRY_ROSTER_PROPOSED:
        return check_proposed(x, &e->u.roster_proposed);
    case ENTRY_VOTE:
        return check_vote(x, &e->u.vote);
    case ENTRY_MEMBER_ADDED:
    case ENTRY_MEMBER_REMOVED:
    case ENTRY_KEY_ROTATED:
        return check_roster_change(x, e);
    case ENTRY_POLICY_PROPOSED:
    case ENTRY_CHARTER_PROPOSED:
    case ENTRY_CANCEL_PROPOSED:
        return check_motion(x, e->type, &e->u.motion);
    case ENTRY_PROPOSAL_DECIDED:
        return check_decided(x, &e->u.decided);
    case ENTRY_EXPERIMENT_STARTED:
        return check_started(x, &e->u.experiment);
    default:
        return 0;
    }
}

int ledger_history_add(struct ledger_history *h, uint64_t index, const uint8_t *bytes,
                       size_t len, char *why, size_t why_cap)
{
    if (why && why_cap)
        why[0] = '\0';
    if (!h || (!bytes && len))
        return LEDGER_ERR_ARG;
    const struct ctx x = { h, index, why, why_cap };
    if (h->failed)
        return refuse(&x, h->failed, "not checked: an earlier entry failed");
    if (index != h->next)
        return refuse(&x, LEDGER_ERR_ARG, "given out of order (expected entry %" PRIu64 ")",
                      h->next);
    struct entry e;
    int rc = entry_decode(bytes, len, &e);
    if (rc) {
        rc = refuse(&x, rc, "does not decode: %s", ledger_strerror(rc));
    } else {
        rc = check_entry(&x, &e);
        if (rc == LEDGER_ERR_NOMEM || rc == LEDGER_ERR_ENTRY_ID)
            refuse(&x, rc, "%s", ledger_strerror(rc));
        entry_free(&e);
    }
    if (rc) {
        h->failed = rc;
        return rc;
    }
    h->next++;
    h->counts.entries++;
    return 0;
}
