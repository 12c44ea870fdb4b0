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

/* Open-addressing tables keyed by the first 16 bytes of a BLAKE2b-256 digest (a zero
 * slot is empty): the accepted updates, keyed by their ledger_update_key (experiment,
 * round, member), and the closed rounds, keyed by round_key (experiment, round). */
struct slot {
    uint8_t  digest[16];
    uint64_t index;                    /* the entry that recorded it */
    uint8_t  hash[32];                 /* accepted: the payload hash; round: the digest of
                                          its participants in id order (participants_digest) */
    uint32_t n;                        /* round: its participants */
    uint64_t scored;                   /* round: 1 + the index of its contribution_scores
                                          entry; 0 while unscored */
};

struct table {
    struct slot *slot;
    size_t n, cap;                     /* cap: a power of two */
};

/* An experiment named by an experiment_started, round_closed or contribution entry. */
struct experiment {
    char     id[ENTRY_ID_MAX + 1];
    int      started;                  /* an experiment_started entry names it */
    uint64_t scored_rounds;            /* contribution_scores entries */
    uint64_t last_closed;              /* 1 + the index of its last round_closed; 0: none */
    uint64_t credited;                 /* 1 + the index of its credits entry; 0: none */
};

struct ledger_history {
    uint64_t next;
    int failed;                        /* the first failure's code, kept */
    char alliance[PROPOSAL_ALLIANCE_MAX + 1];
    struct member *members;
    size_t n_members, cap_members;
    struct proposal *proposals;
    size_t n_proposals, cap_proposals;
    struct table accepted;             /* (experiment, round, member) -> payload hash */
    struct table rounds;               /* (experiment, round) closed -> participants */
    struct experiment *experiments;
    size_t n_experiments, cap_experiments;
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
    free(h->accepted.slot);
    free(h->rounds.slot);
    free(h->experiments);
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

/* --- tables of accepted updates and closed rounds ---------------------------------- */

static uint64_t slot_of(const uint8_t d[16], size_t cap)
{
    uint64_t v;
    memcpy(&v, d, 8);
    return v & (cap - 1);
}

static int is_empty(const struct slot *a)
{
    static const uint8_t zero[16];
    return memcmp(a->digest, zero, 16) == 0;
}

static struct slot *slot_at(struct slot *t, size_t cap, const uint8_t d[16])
{
    for (uint64_t i = slot_of(d, cap);; i = (i + 1) & (cap - 1))
        if (is_empty(&t[i]) || memcmp(t[i].digest, d, 16) == 0)
            return &t[i];
}

/* The table key of bytes: BLAKE2b-256, first 16 bytes, never all zero. */
static void table_digest(const void *key, size_t len, uint8_t d[32])
{
    crypto_blake2b256(key, len, d);
    d[0] |= 1;   /* never all zero: that marks an empty slot */
}

/* The slot of d, or NULL. */
static struct slot *table_find(struct table *t, const uint8_t d[16])
{
    if (!t->cap)
        return NULL;
    struct slot *s = slot_at(t->slot, t->cap, d);
    return is_empty(s) ? NULL : s;
}

/* The slot of d: the one there, or a new zeroed one holding d (*fresh = 1). NULL when
 * out of memory. */
static struct slot *table_put(struct table *t, const uint8_t d[16], int *fresh)
{
    if (2 * (t->n + 1) > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        struct slot *n = calloc(cap, sizeof *n);
        if (!n)
            return NULL;
        for (size_t i = 0; i < t->cap; i++)
            if (!is_empty(&t->slot[i]))
                *slot_at(n, cap, t->slot[i].digest) = t->slot[i];
        free(t->slot);
        t->slot = n;
        t->cap = cap;
    }
    struct slot *s = slot_at(t->slot, t->cap, d);
    *fresh = is_empty(s);
    if (*fresh) {
        memcpy(s->digest, d, 16);
        t->n++;
    }
    return s;
}

/* The accepted-update key of (experiment, round, member); <0: LEDGER_ERR_ENTRY_ID. */
static int update_digest(const char *experiment, uint64_t round, const char *member,
                         uint8_t d[32])
{
    uint8_t key[LEDGER_UPDATE_KEY_MAX];
    int klen = ledger_update_key(experiment, round, member, key);
    if (klen < 0)
        return klen;
    table_digest(key, (size_t)klen, d);
    return 0;
}

/* The closed-round key of (experiment, round): u8 length, experiment, u64 BE round. */
static void round_digest(const char *experiment, uint64_t round, uint8_t d[32])
{
    uint8_t key[1 + ENTRY_ID_MAX + 8];
    size_t n = strnlen(experiment, ENTRY_ID_MAX);
    key[0] = (uint8_t)n;
    memcpy(key + 1, experiment, n);
    for (int i = 0; i < 8; i++)
        key[1 + n + i] = (uint8_t)(round >> (8 * (7 - i)));
    table_digest(key, 1 + n + 8, d);
}

/* 0 when newly recorded, 1 with *first set when (experiment, round, member) was
 * accepted before, or LEDGER_ERR_NOMEM / LEDGER_ERR_ENTRY_ID. */
static int accepted_once(struct ledger_history *h, const struct entry_update *u, uint64_t index,
                         uint64_t *first)
{
    uint8_t d[32];
    int rc = update_digest(u->experiment, u->round, u->member, d);
    if (rc < 0)
        return rc;
    int fresh;
    struct slot *a = table_put(&h->accepted, d, &fresh);
    if (!a)
        return LEDGER_ERR_NOMEM;
    if (!fresh) {
        *first = a->index;
        return 1;
    }
    a->index = index;
    memcpy(a->hash, u->payload_hash, 32);
    return 0;
}

/* --- experiments and their rounds ----------------------------------------------------- */

/* The experiment of id, added (not started, nothing recorded) when new; NULL when out of
 * memory. */
static struct experiment *experiment_of(struct ledger_history *h, const char *id)
{
    for (size_t i = 0; i < h->n_experiments; i++)
        if (strcmp(h->experiments[i].id, id) == 0)
            return &h->experiments[i];
    if (grow((void **)&h->experiments, h->n_experiments, &h->cap_experiments,
             sizeof *h->experiments))
        return NULL;
    struct experiment *e = &h->experiments[h->n_experiments++];
    memset(e, 0, sizeof *e);
    snprintf(e->id, sizeof e->id, "%s", id);
    return e;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A digest of the ids, each with its NUL, in the order given: two lists of ids have the
 * same digest exactly when they are the same list. */
static void ids_digest(const char *const *ids, size_t n, uint8_t d[32])
{
    struct crypto_digest_state st;
    (void)crypto_digest_init(&st, "aulac/history/ids/v1");   /* a valid constant domain */
    for (size_t i = 0; i < n; i++)
        crypto_digest_update(&st, ids[i], strlen(ids[i]) + 1);
    crypto_digest_final(&st, d);
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

/* round_closed: recorded with its participants (as a set, in id order), for the
 * contribution_scores that follows; never after the experiment's credits. */
static int check_round_closed(const struct ctx *x, const struct entry_round_closed *r)
{
    struct ledger_history *h = x->h;
    struct experiment *ex = experiment_of(h, r->experiment);
    if (!ex)
        return LEDGER_ERR_NOMEM;
    if (ex->credited)
        return refuse(x, LEDGER_ERR_HISTORY, "round %" PRIu64 " of %s closes after the "
                      "experiment's credits (entry %" PRIu64 "): credits come after its last "
                      "round", r->round, r->experiment, ex->credited - 1);
    const char **ids = malloc((r->n_participants ? r->n_participants : 1) * sizeof *ids);
    if (!ids)
        return LEDGER_ERR_NOMEM;
    for (uint32_t i = 0; i < r->n_participants; i++)
        ids[i] = r->participants[i];
    qsort(ids, r->n_participants, sizeof *ids, cmp_id);
    uint8_t d[32], set[32];
    ids_digest(ids, r->n_participants, set);
    free(ids);
    round_digest(r->experiment, r->round, d);
    int fresh;
    struct slot *s = table_put(&h->rounds, d, &fresh);
    if (!s)
        return LEDGER_ERR_NOMEM;
    s->index = x->index;
    memcpy(s->hash, set, 32);
    s->n = r->n_participants;
    ex->last_closed = x->index + 1;
    return 0;
}

/* contribution_scores: of a round closed before it, once, not after the credits; its
 * members are the round's participants (the codec already holds them in strictly
 * increasing id order), each with the payload hash of its update_accepted entry. */
static int check_scores(const struct ctx *x, const struct entry_contribution_scores *c)
{
    struct ledger_history *h = x->h;
    uint8_t d[32];
    round_digest(c->experiment, c->round, d);
    struct slot *r = table_find(&h->rounds, d);
    if (!r)
        return refuse(x, LEDGER_ERR_HISTORY, "contribution scores of %s round %" PRIu64 " name "
                      "a round that no earlier round_closed entry closes", c->experiment,
                      c->round);
    if (r->scored)
        return refuse(x, LEDGER_ERR_HISTORY, "contribution scores of %s round %" PRIu64 " are "
                      "recorded twice (first at entry %" PRIu64 "); a round is scored once",
                      c->experiment, c->round, r->scored - 1);
    struct experiment *ex = experiment_of(h, c->experiment);
    if (!ex)
        return LEDGER_ERR_NOMEM;
    if (ex->credited)
        return refuse(x, LEDGER_ERR_HISTORY, "contribution scores of %s round %" PRIu64 " come "
                      "after the experiment's credits (entry %" PRIu64 ")", c->experiment,
                      c->round, ex->credited - 1);
    for (uint32_t i = 0; i < c->n; i++) {
        const struct entry_member_score *m = &c->members[i];
        uint8_t k[32];
        int rc = update_digest(c->experiment, c->round, m->member, k);
        if (rc < 0)
            return rc;
        const struct slot *a = table_find(&h->accepted, k);
        if (!a)
            return refuse(x, LEDGER_ERR_HISTORY, "contribution scores of %s round %" PRIu64
                          " score %s, whose update for that round no earlier update_accepted "
                          "entry holds", c->experiment, c->round, m->member);
        if (!crypto_equal(a->hash, m->payload_hash, 32)) {
            char got[17], want[17];
            hex_encode(m->payload_hash, 8, got);
            hex_encode(a->hash, 8, want);
            return refuse(x, LEDGER_ERR_HISTORY, "contribution scores of %s round %" PRIu64
                          " give %s's payload hash as %s…, but its update_accepted (entry %"
                          PRIu64 ") holds %s…", c->experiment, c->round, m->member, got,
                          a->index, want);
        }
    }
    const char **ids = malloc((c->n ? c->n : 1) * sizeof *ids);
    if (!ids)
        return LEDGER_ERR_NOMEM;
    for (uint32_t i = 0; i < c->n; i++)
        ids[i] = c->members[i].member;
    uint8_t set[32];
    ids_digest(ids, c->n, set);
    free(ids);
    if (c->n != r->n || !crypto_equal(set, r->hash, 32))
        return refuse(x, LEDGER_ERR_HISTORY, "contribution scores of %s round %" PRIu64 " score "
                      "%u member%s, who are not the round's %u participant%s (round_closed at "
                      "entry %" PRIu64 ")", c->experiment, c->round, c->n, c->n == 1 ? "" : "s",
                      r->n, r->n == 1 ? "" : "s", r->index);
    r->scored = x->index + 1;
    ex->scored_rounds++;
    h->counts.scores++;
    return 0;
}

/* credits: of a started experiment, once, after its last round_closed (a round closed
 * later is refused there), counting the rounds scored before it. */
static int check_credits(const struct ctx *x, const struct entry_credits *c)
{
    struct experiment *ex = experiment_of(x->h, c->experiment);
    if (!ex)
        return LEDGER_ERR_NOMEM;
    if (!ex->started)
        return refuse(x, LEDGER_ERR_HISTORY, "credits of %s, which no earlier "
                      "experiment_started entry starts", c->experiment);
    if (ex->credited)
        return refuse(x, LEDGER_ERR_HISTORY, "credits of %s are recorded twice (first at entry %"
                      PRIu64 ")", c->experiment, ex->credited - 1);
    if (c->rounds != ex->scored_rounds)
        return refuse(x, LEDGER_ERR_HISTORY, "credits of %s count %" PRIu64 " scored round%s, "
                      "but %" PRIu64 " contribution_scores entr%s of it come%s before",
                      c->experiment, c->rounds, c->rounds == 1 ? "" : "s", ex->scored_rounds,
                      ex->scored_rounds == 1 ? "y" : "ies", ex->scored_rounds == 1 ? "s" : "");
    ex->credited = x->index + 1;
    x->h->counts.credits++;
    return 0;
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
    case ENTRY_EXPERIMENT_STARTED: {
        int rc = check_started(x, &e->u.experiment);
        struct experiment *ex = rc ? NULL : experiment_of(x->h, e->u.experiment.experiment);
        if (rc == 0 && !ex)
            rc = LEDGER_ERR_NOMEM;
        if (ex)
            ex->started = 1;
        return rc;
    }
    case ENTRY_ROUND_CLOSED:
        return check_round_closed(x, &e->u.round_closed);
    case ENTRY_CONTRIBUTION_SCORES:
        return check_scores(x, &e->u.scores);
    case ENTRY_CREDITS:
        return check_credits(x, &e->u.credits);
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
