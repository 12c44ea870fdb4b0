#include "ledger/entry.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hex.h"
#include "crypto/digest.h"

/* --- field tables -------------------------------------------------------------
 * Each entry type is a list of fields in ascending tag order; encode, decode,
 * free and JSON all walk the same table, so the documented layout
 * (ledger/README.md) is this table. */

enum kind {
    K_BOOL,      /* u8, 0 or 1 */
    K_U32,       /* u32 BE */
    K_U64,       /* u64 BE */
    K_I32,       /* i32 BE, two's complement */
    K_I64,       /* i64 BE, two's complement */
    K_F64,       /* IEEE 754 binary64, bits as u64 BE; an optional one is absent when NaN
                    and never NaN on the wire */
    K_F64F,      /* an optional f64 with a presence flag: double at off, uint8_t flag at
                    aux (0 absent, 1 present); on the wire as K_F64, never NaN */
    K_H32,       /* 32 bytes: hash or public key */
    K_SIG,       /* 64 bytes: Ed25519 signature */
    K_ID,        /* char[ENTRY_ID_MAX + 1]; 1..64 bytes on the wire */
    K_TEXT,      /* char *; UTF-8 without NUL, <= ENTRY_TEXT_MAX */
    K_BLOB,      /* uint8_t * + size_t at aux; <= ENTRY_BLOB_MAX */
    K_MEMBER,    /* struct entry_member, nested fields */
    K_MEMBERS,   /* struct entry_member * + uint32_t count at aux; tag repeated */
    K_IDS,       /* char (*)[ENTRY_ID_MAX + 1] + uint32_t count at aux; tag repeated */
    K_CODEC,     /* struct entry_codec, nested fields */
    K_MEASURES,  /* char [ENTRY_MEASURES_MAX][ENTRY_MEASURE_NAME_MAX + 1] + uint32_t count
                    at aux; tag repeated, 1..ENTRY_MEASURES_MAX names of 1..16 [a-z], each
                    once. Sets the entry's measure count for K_F64S */
    K_F64S,      /* double[ENTRY_MEASURES_MAX]: one f64 per measure of the entry, packed
                    in one field (8 x measures bytes) */
    K_MSCORES,   /* struct entry_member_score * + uint32_t count at aux; tag repeated */
    K_CSHARES,   /* struct entry_credit_share * + uint32_t count at aux; tag repeated */
};

typedef char measure_name[ENTRY_MEASURE_NAME_MAX + 1];

/* What a field's value depends on beyond itself: the measures of the entry (K_MEASURES
 * comes before, in tag order, every K_F64S that has one value per measure). */
struct cx {
    uint32_t n_values;
    const measure_name *names;
};

enum { OPT = 0, REQ = 1 };

struct field {
    uint16_t    tag;
    uint8_t     kind;
    uint8_t     required;   /* optional hashes/signatures are omitted when all zero,
                               optional texts when NULL, optional numbers when NaN */
    const char *name;
    size_t      off;
    size_t      aux;
};

#define F(tag, kind, req, type, m)        { tag, kind, req, #m, offsetof(type, m), 0 }
#define FL(tag, kind, req, type, m, cnt)  { tag, kind, req, #m, offsetof(type, m), offsetof(type, cnt) }
#define FF(tag, type, m, flag)            { tag, K_F64F, OPT, #m, offsetof(type, m), offsetof(type, flag) }
#define END                               { 0, 0, 0, NULL, 0, 0 }

static const struct field member_fields[] = {
    F(1, K_ID,   REQ, struct entry_member, id),
    F(2, K_TEXT, OPT, struct entry_member, organization),
    F(3, K_U32,  REQ, struct entry_member, roles),
    F(4, K_H32,  REQ, struct entry_member, public_key),
    END
};

static const struct field member_score_fields[] = {
    F(1, K_ID,   REQ, struct entry_member_score, member),
    F(2, K_H32,  REQ, struct entry_member_score, payload_hash),
    F(3, K_F64S, REQ, struct entry_member_score, values),
    END
};

static const struct field credit_share_fields[] = {
    F(1, K_ID,   REQ, struct entry_credit_share, member),
    F(2, K_F64,  REQ, struct entry_credit_share, share),
    F(3, K_F64S, REQ, struct entry_credit_share, measure_share),
    F(4, K_U64,  REQ, struct entry_credit_share, rounds),
    END
};

static const struct field codec_fields[] = {
    F(1, K_U32,  REQ, struct entry_codec, format_version),
    F(2, K_U32,  REQ, struct entry_codec, block_size),
    F(3, K_U32,  REQ, struct entry_codec, k_per_block),
    F(4, K_U32,  REQ, struct entry_codec, quant),
    F(5, K_I32,  REQ, struct entry_codec, zstd_level),
    F(6, K_BOOL, REQ, struct entry_codec, error_feedback),
    END
};

static const struct field genesis_fields[] = {
    F(1, K_TEXT,     OPT, struct entry_genesis, alliance),
    FL(2, K_MEMBERS, REQ, struct entry_genesis, members, n_members),
    F(3, K_TEXT,     OPT, struct entry_genesis, charter),
    END
};

static const struct field member_added_fields[] = {
    F(1, K_MEMBER, REQ, struct entry_member_added, member),
    F(2, K_H32,    OPT, struct entry_member_added, proposal_hash),
    END
};

static const struct field member_removed_fields[] = {
    F(1, K_ID,   REQ, struct entry_member_removed, member),
    F(2, K_TEXT, OPT, struct entry_member_removed, reason),
    F(3, K_H32,  OPT, struct entry_member_removed, proposal_hash),
    END
};

static const struct field key_rotated_fields[] = {
    F(1, K_ID,  REQ, struct entry_key_rotated, member),
    F(2, K_H32, REQ, struct entry_key_rotated, new_public_key),
    F(3, K_H32, OPT, struct entry_key_rotated, proposal_hash),
    END
};

static const struct field motion_fields[] = {
    F(1, K_H32,     REQ, struct entry_motion, proposal_hash),
    F(2, K_U32,     REQ, struct entry_motion, kind),
    F(3, K_ID,      REQ, struct entry_motion, proposer),
    F(4, K_ID,      OPT, struct entry_motion, experiment),
    FL(5, K_BLOB,   OPT, struct entry_motion, document, document_len),
    F(6, K_H32,     OPT, struct entry_motion, document_digest),
    F(7, K_H32,     OPT, struct entry_motion, content_hash),
    F(8, K_TEXT,    OPT, struct entry_motion, reason),
    F(9, K_I64,     REQ, struct entry_motion, created_ms),
    F(10, K_I64,    REQ, struct entry_motion, expires_ms),
    F(11, K_SIG,    REQ, struct entry_motion, signature),
    END
};

static const struct field decided_fields[] = {
    F(1, K_H32,  REQ, struct entry_proposal_decided, proposal_hash),
    F(2, K_U32,  REQ, struct entry_proposal_decided, outcome),
    F(3, K_ID,   OPT, struct entry_proposal_decided, experiment),
    F(4, K_U32,  REQ, struct entry_proposal_decided, yes),
    F(5, K_U32,  REQ, struct entry_proposal_decided, no),
    F(6, K_U32,  REQ, struct entry_proposal_decided, needed),
    F(7, K_U32,  REQ, struct entry_proposal_decided, voters),
    F(8, K_TEXT, OPT, struct entry_proposal_decided, reason),
    F(9, K_SIG,  OPT, struct entry_proposal_decided, withdraw_signature),
    END
};

static const struct field vote_fields[] = {
    F(1, K_H32,  REQ, struct entry_vote, policy_hash),
    F(2, K_ID,   REQ, struct entry_vote, voter),
    F(3, K_BOOL, REQ, struct entry_vote, approve),
    F(4, K_SIG,  REQ, struct entry_vote, signature),
    END
};

static const struct field experiment_started_fields[] = {
    F(1, K_ID,  REQ, struct entry_experiment, experiment),
    F(2, K_H32, REQ, struct entry_experiment, policy_hash),
    F(3, K_H32, REQ, struct entry_experiment, model_hash),
    F(4, K_U64, REQ, struct entry_experiment, rounds),
    F(6, K_H32, OPT, struct entry_experiment, proposal_hash),
    F(7, K_H32, OPT, struct entry_experiment, dp_seed_commitment),
    F(8, K_U32, OPT, struct entry_experiment, dp_noise_scheme),
    END
};

static const struct field experiment_finished_fields[] = {
    F(1, K_ID,  REQ, struct entry_experiment, experiment),
    F(2, K_H32, OPT, struct entry_experiment, policy_hash),
    F(3, K_H32, REQ, struct entry_experiment, model_hash),
    F(4, K_U64, REQ, struct entry_experiment, rounds),
    F(5, K_TEXT, OPT, struct entry_experiment, reason),   /* why it ended early */
    F(6, K_H32, OPT, struct entry_experiment, proposal_hash),
    END
};

static const struct field experiment_stopped_fields[] = {   /* cancelled, failed */
    F(1, K_ID,   REQ, struct entry_experiment, experiment),
    F(2, K_H32,  OPT, struct entry_experiment, policy_hash),
    F(3, K_H32,  OPT, struct entry_experiment, model_hash),
    F(4, K_U64,  REQ, struct entry_experiment, rounds),
    F(5, K_TEXT, REQ, struct entry_experiment, reason),
    F(6, K_H32,  OPT, struct entry_experiment, proposal_hash),
    END
};

static const struct field update_accepted_fields[] = {
    F(1, K_ID,  REQ, struct entry_update, experiment),
    F(2, K_U64, REQ, struct entry_update, round),
    F(3, K_ID,  REQ, struct entry_update, member),
    F(4, K_H32, REQ, struct entry_update, payload_hash),
    F(5, K_U64, REQ, struct entry_update, tokens),
    F(6, K_U64, REQ, struct entry_update, samples),
    F(7, K_U64, REQ, struct entry_update, bytes),
    F(8, K_SIG, REQ, struct entry_update, envelope_signature),
    F(9, K_F64, REQ, struct entry_update, train_loss),
    F(11, K_H32, REQ, struct entry_update, base_model_hash),
    F(12, K_CODEC, REQ, struct entry_update, codec),
    F(13, K_F64, OPT, struct entry_update, val_loss),   /* absent when NaN */
    END
};

static const struct field update_rejected_fields[] = {
    F(1, K_ID,    REQ, struct entry_update, experiment),
    F(2, K_U64,   REQ, struct entry_update, round),
    F(3, K_ID,    REQ, struct entry_update, member),
    F(4, K_H32,   OPT, struct entry_update, payload_hash),
    F(5, K_U64,   REQ, struct entry_update, tokens),
    F(6, K_U64,   REQ, struct entry_update, samples),
    F(7, K_U64,   REQ, struct entry_update, bytes),
    F(8, K_SIG,   OPT, struct entry_update, envelope_signature),
    F(10, K_TEXT, REQ, struct entry_update, reason),
    END
};

static const struct field round_closed_fields[] = {
    F(1, K_ID,   REQ, struct entry_round_closed, experiment),
    F(2, K_U64,  REQ, struct entry_round_closed, round),
    FL(3, K_IDS, OPT, struct entry_round_closed, participants, n_participants),
    F(4, K_H32,  REQ, struct entry_round_closed, aggregate_hash),
    F(5, K_H32,  REQ, struct entry_round_closed, model_hash),
    F(6, K_F64,  REQ, struct entry_round_closed, mean_loss),
    F(7, K_U64,  REQ, struct entry_round_closed, tokens),
    FF(8, struct entry_round_closed, epsilon, has_epsilon),   /* with privacy only */
    END
};

static const struct field scores_fields[] = {
    F(1, K_ID,         REQ, struct entry_contribution_scores, experiment),
    F(2, K_U64,        REQ, struct entry_contribution_scores, round),
    FL(3, K_MEASURES,  REQ, struct entry_contribution_scores, measures, n_measures),
    F(4, K_H32,        OPT, struct entry_contribution_scores, evalset_hash),
    F(5, K_H32,        REQ, struct entry_contribution_scores, seed),
    F(6, K_U64,        REQ, struct entry_contribution_scores, evaluations),
    F(7, K_BOOL,       REQ, struct entry_contribution_scores, exact),
    F(8, K_F64,        REQ, struct entry_contribution_scores, base_loss),
    F(9, K_F64,        REQ, struct entry_contribution_scores, model_loss),
    FL(10, K_MSCORES,  OPT, struct entry_contribution_scores, members, n),
    END
};

static const struct field credits_fields[] = {
    F(1, K_ID,         REQ, struct entry_credits, experiment),
    F(2, K_U64,        REQ, struct entry_credits, rounds),
    FL(3, K_MEASURES,  REQ, struct entry_credits, measures, n_measures),
    F(4, K_F64S,       REQ, struct entry_credits, weights),
    FL(5, K_CSHARES,   OPT, struct entry_credits, members, n),
    END
};

static const struct field roster_proposed_fields[] = {
    F(1, K_H32,   REQ, struct entry_roster_proposed, proposal_hash),
    F(2, K_U32,   REQ, struct entry_roster_proposed, action),
    F(3, K_ID,    REQ, struct entry_roster_proposed, proposer),
    F(4, K_ID,    REQ, struct entry_roster_proposed, member),
    F(5, K_TEXT,  OPT, struct entry_roster_proposed, organization),
    F(6, K_U32,   REQ, struct entry_roster_proposed, roles),
    F(7, K_H32,   OPT, struct entry_roster_proposed, public_key),
    F(8, K_TEXT,  OPT, struct entry_roster_proposed, reason),
    F(9, K_I64,   REQ, struct entry_roster_proposed, created_ms),
    F(10, K_I64,  REQ, struct entry_roster_proposed, expires_ms),
    F(11, K_SIG,  REQ, struct entry_roster_proposed, signature),
    END
};

/* The rules of a whole entry beyond its fields' own (entry.h: contribution_scores,
 * credits, round_closed's epsilon): 0 or LEDGER_ERR_ENTRY_FIELD. Run on what is encoded and what is decoded. */
typedef int (*entry_rules_fn)(const void *u);

static int finite_or_nan(double d)
{
    return isfinite(d) || isnan(d);
}

static int finite_nonneg(double d)
{
    return isfinite(d) && d >= 0;
}

static int scores_rules(const void *u)
{
    const struct entry_contribution_scores *s = u;
    if (!finite_or_nan(s->base_loss) || !finite_or_nan(s->model_loss))
        return LEDGER_ERR_ENTRY_FIELD;
    for (uint32_t i = 0; i < s->n; i++) {
        if (i && strcmp(s->members[i - 1].member, s->members[i].member) >= 0)
            return LEDGER_ERR_ENTRY_FIELD;   /* not in strictly increasing id order */
        for (uint32_t m = 0; m < s->n_measures; m++)
            if (!isfinite(s->members[i].values[m]))
                return LEDGER_ERR_ENTRY_FIELD;
    }
    return 0;
}

static int credits_rules(const void *u)
{
    const struct entry_credits *c = u;
    for (uint32_t m = 0; m < c->n_measures; m++)
        if (!finite_nonneg(c->weights[m]))
            return LEDGER_ERR_ENTRY_FIELD;
    for (uint32_t i = 0; i < c->n; i++) {
        if (i && strcmp(c->members[i - 1].member, c->members[i].member) >= 0)
            return LEDGER_ERR_ENTRY_FIELD;
        if (!finite_nonneg(c->members[i].share))
            return LEDGER_ERR_ENTRY_FIELD;
        for (uint32_t m = 0; m < c->n_measures; m++)
            if (!finite_nonneg(c->members[i].measure_share[m]))
                return LEDGER_ERR_ENTRY_FIELD;
    }
    return 0;
}

static int round_closed_rules(const void *u)
{
    const struct entry_round_closed *r = u;
    if (r->has_epsilon > 1)
        return LEDGER_ERR_ENTRY_FIELD;
    if (r->has_epsilon && !(r->epsilon >= 0))   /* also refuses NaN; +inf allowed */
        return LEDGER_ERR_ENTRY_FIELD;
    return 0;
}

struct type_desc {
    enum entry_type     type;
    const char         *name;    /* JSON */
    const char         *words;   /* entry_describe */
    const struct field *fields;
    entry_rules_fn      rules;   /* NULL: the fields' own checks are all */
};

static const struct type_desc types[] = {
    { ENTRY_GENESIS,              "genesis",              "genesis",              genesis_fields, NULL },
    { ENTRY_MEMBER_ADDED,         "member_added",         "member added",         member_added_fields, NULL },
    { ENTRY_MEMBER_REMOVED,       "member_removed",       "member removed",       member_removed_fields, NULL },
    { ENTRY_KEY_ROTATED,          "key_rotated",          "key rotated",          key_rotated_fields, NULL },
    { ENTRY_POLICY_PROPOSED,      "policy_proposed",      "experiment proposed",  motion_fields, NULL },
    { ENTRY_VOTE,                 "vote",                 "vote",                 vote_fields, NULL },
    { ENTRY_EXPERIMENT_STARTED,   "experiment_started",   "experiment started",   experiment_started_fields, NULL },
    { ENTRY_EXPERIMENT_FINISHED,  "experiment_finished",  "experiment finished",  experiment_finished_fields, NULL },
    { ENTRY_EXPERIMENT_CANCELLED, "experiment_cancelled", "experiment cancelled", experiment_stopped_fields, NULL },
    { ENTRY_EXPERIMENT_FAILED,    "experiment_failed",    "experiment failed",    experiment_stopped_fields, NULL },
    { ENTRY_UPDATE_ACCEPTED,      "update_accepted",      "update accepted",      update_accepted_fields, NULL },
    { ENTRY_UPDATE_REJECTED,      "update_rejected",      "update rejected",      update_rejected_fields, NULL },
    { ENTRY_ROUND_CLOSED,         "round_closed",         "round closed",         round_closed_fields, round_closed_rules },
    { ENTRY_CONTRIBUTION_SCORES,  "contribution_scores",  "contribution scores",  scores_fields, scores_rules },
    { ENTRY_CREDITS,              "credits",              "credits",              credits_fields, credits_rules },
    { ENTRY_ROSTER_PROPOSED,      "roster_proposed",      "roster change proposed", roster_proposed_fields, NULL },
    { ENTRY_CHARTER_PROPOSED,     "charter_proposed",     "charter change proposed", motion_fields, NULL },
    { ENTRY_CANCEL_PROPOSED,      "cancel_proposed",      "cancellation proposed", motion_fields, NULL },
    { ENTRY_PROPOSAL_DECIDED,     "proposal_decided",     "proposal decided",     decided_fields, NULL },
};

static const struct type_desc *type_of(uint32_t t)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if ((uint32_t)types[i].type == t)
            return &types[i];
    return NULL;
}

const char *entry_type_name(enum entry_type t)
{
    const struct type_desc *d = type_of((uint32_t)t);
    return d ? d->name : NULL;
}

/* The fields of a record kind (K_MEMBER, K_MEMBERS, K_CODEC, K_MSCORES, K_CSHARES). */
static const struct field *nested_fields(enum kind k)
{
    switch (k) {
    case K_CODEC:    return codec_fields;
    case K_MSCORES:  return member_score_fields;
    case K_CSHARES:  return credit_share_fields;
    default:         return member_fields;
    }
}

static size_t element_size(enum kind k)
{
    switch (k) {
    case K_MEMBERS: return sizeof(struct entry_member);
    case K_IDS:     return ENTRY_ID_MAX + 1;
    case K_MSCORES: return sizeof(struct entry_member_score);
    case K_CSHARES: return sizeof(struct entry_credit_share);
    default:        return 0;
    }
}

/* Lists of records in an array the decoder allocates. */
static int is_record_list(enum kind k)
{
    return k == K_MEMBERS || k == K_MSCORES || k == K_CSHARES;
}

/* A measure name: 1..ENTRY_MEASURE_NAME_MAX of [a-z]. */
static int measure_name_valid(const char *p, size_t n)
{
    if (n == 0 || n > ENTRY_MEASURE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] < 'a' || p[i] > 'z')
            return 0;
    return 1;
}

static int all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

#define AT(base, off, type) ((type *)((uint8_t *)(base) + (off)))

/* --- encoding ---------------------------------------------------------------------- */

struct buf {
    uint8_t *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const void *d, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, d, n);
    b->len += n;
}

static void put_be(struct buf *b, uint64_t v, int bytes)
{
    uint8_t t[8];
    for (int i = 0; i < bytes; i++)
        t[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put(b, t, (size_t)bytes);
}

static void put_tl(struct buf *b, uint16_t tag, uint32_t len)
{
    put_be(b, tag, 2);
    put_be(b, len, 4);
}

static uint64_t f64_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static int encode_record(const struct field *fields, const void *base, struct buf *b,
                         struct cx *cx);

static int encode_nested(uint16_t tag, const struct field *fields, const void *base, struct buf *b,
                         struct cx *cx)
{
    put_tl(b, tag, 0);
    size_t start = b->len;
    int rc = encode_record(fields, base, b, cx);
    if (rc || b->oom)
        return rc;
    size_t n = b->len - start;
    if (n > UINT32_MAX)
        return LEDGER_ERR_ENTRY_FIELD;
    for (int i = 0; i < 4; i++)
        b->p[start - 4 + i] = (uint8_t)(n >> (8 * (3 - i)));
    return 0;
}

static int encode_id(uint16_t tag, const char *id, struct buf *b)
{
    if (!crypto_id_valid(id))
        return LEDGER_ERR_ENTRY_ID;
    size_t n = strlen(id);
    put_tl(b, tag, (uint32_t)n);
    put(b, id, n);
    return 0;
}

/* K_MEASURES: n names, each valid and listed once; the entry's values follow them. */
static int encode_measures(const struct field *f, const measure_name *names,
                           uint32_t n, struct buf *b, struct cx *cx)
{
    if (n == 0)
        return LEDGER_ERR_ENTRY_MISSING;
    if (n > ENTRY_MEASURES_MAX)
        return LEDGER_ERR_ENTRY_FIELD;
    for (uint32_t i = 0; i < n; i++) {
        size_t len = strnlen(names[i], ENTRY_MEASURE_NAME_MAX + 1);
        if (!measure_name_valid(names[i], len))
            return LEDGER_ERR_ENTRY_FIELD;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(names[j], names[i]) == 0)
                return LEDGER_ERR_ENTRY_FIELD;
        put_tl(b, f->tag, (uint32_t)len);
        put(b, names[i], len);
    }
    cx->n_values = n;
    cx->names = names;
    return 0;
}

static int encode_record(const struct field *fields, const void *base, struct buf *b,
                         struct cx *cx)
{
    int rc = 0;
    for (const struct field *f = fields; f->name && rc == 0; f++) {
        const void *v = AT(base, f->off, const void);
        switch ((enum kind)f->kind) {
        case K_BOOL:
            if (*(const uint8_t *)v > 1)
                return LEDGER_ERR_ENTRY_FIELD;
            put_tl(b, f->tag, 1);
            put_be(b, *(const uint8_t *)v, 1);
            break;
        case K_U32:
            if (!f->required && *(const uint32_t *)v == 0)
                break;   /* an optional u32 is left out when zero */
            put_tl(b, f->tag, 4);
            put_be(b, *(const uint32_t *)v, 4);
            break;
        case K_U64:
            put_tl(b, f->tag, 8);
            put_be(b, *(const uint64_t *)v, 8);
            break;
        case K_I32:
            put_tl(b, f->tag, 4);
            put_be(b, (uint32_t)*(const int32_t *)v, 4);
            break;
        case K_I64:
            put_tl(b, f->tag, 8);
            put_be(b, (uint64_t)*(const int64_t *)v, 8);
            break;
        case K_F64:
            if (!f->required && isnan(*(const double *)v))
                break;   /* an optional number is left out when NaN (not given) */
            put_tl(b, f->tag, 8);
            put_be(b, f64_bits(*(const double *)v), 8);
            break;
        case K_F64F:
            if (!*AT(base, f->aux, const uint8_t))
                break;   /* absent */
            if (isnan(*(const double *)v))
                return LEDGER_ERR_ENTRY_FIELD;
            put_tl(b, f->tag, 8);
            put_be(b, f64_bits(*(const double *)v), 8);
            break;
        case K_F64S:
            if (cx->n_values == 0 || cx->n_values > ENTRY_MEASURES_MAX)
                return LEDGER_ERR_ENTRY_MISSING;   /* values without measures */
            put_tl(b, f->tag, 8 * cx->n_values);
            for (uint32_t i = 0; i < cx->n_values; i++)
                put_be(b, f64_bits(((const double *)v)[i]), 8);
            break;
        case K_H32:
        case K_SIG: {
            size_t n = f->kind == K_H32 ? 32 : 64;
            if (!f->required && all_zero(v, n))
                break;
            put_tl(b, f->tag, (uint32_t)n);
            put(b, v, n);
            break;
        }
        case K_ID:
            if (!f->required && !*(const char *)v)
                break;   /* an optional id is left out when empty */
            rc = encode_id(f->tag, v, b);
            break;
        case K_TEXT: {
            const char *s = *(const char *const *)v;
            if (!s) {
                if (f->required)
                    return LEDGER_ERR_ENTRY_MISSING;
                break;
            }
            size_t n = strlen(s);
            if (n > ENTRY_TEXT_MAX)
                return LEDGER_ERR_ENTRY_FIELD;
            put_tl(b, f->tag, (uint32_t)n);
            put(b, s, n);
            break;
        }
        case K_BLOB: {
            const uint8_t *p = *(const uint8_t *const *)v;
            size_t n = *AT(base, f->aux, const size_t);
            if (n && !p)
                return LEDGER_ERR_ARG;
            if (!p && !f->required)
                break;   /* an optional blob is left out when absent */
            if (n > ENTRY_BLOB_MAX)
                return LEDGER_ERR_ENTRY_FIELD;
            put_tl(b, f->tag, (uint32_t)n);
            put(b, p, n);
            break;
        }
        case K_MEMBER:
        case K_CODEC:
            rc = encode_nested(f->tag, nested_fields(f->kind), v, b, cx);
            break;
        case K_MEASURES:
            rc = encode_measures(f, v, *AT(base, f->aux, const uint32_t), b, cx);
            break;
        case K_MEMBERS:
        case K_IDS:
        case K_MSCORES:
        case K_CSHARES: {
            const uint8_t *arr = *(const uint8_t *const *)v;
            uint32_t n = *AT(base, f->aux, const uint32_t);
            if (n && !arr)
                return LEDGER_ERR_ARG;
            if (n > ENTRY_LIST_MAX)
                return LEDGER_ERR_ENTRY_FIELD;
            if (f->required && n == 0)
                return LEDGER_ERR_ENTRY_MISSING;
            size_t es = element_size(f->kind);
            for (uint32_t i = 0; i < n && rc == 0; i++) {
                const void *el = arr + (size_t)i * es;
                rc = f->kind == K_IDS ? encode_id(f->tag, el, b)
                                      : encode_nested(f->tag, nested_fields(f->kind), el, b, cx);
            }
            break;
        }
        }
    }
    return rc;
}

int entry_encode(const struct entry *e, uint8_t **out, size_t *len)
{
    if (!e || !out || !len)
        return LEDGER_ERR_ARG;
    *out = NULL;
    *len = 0;
    const struct type_desc *d = type_of((uint32_t)e->type);
    if (!d)
        return LEDGER_ERR_ENTRY_TYPE;
    struct buf b = { 0 };
    struct cx cx = { 0 };
    put(&b, ENTRY_MAGIC, 4);
    put_be(&b, ENTRY_VERSION, 1);
    put_be(&b, (uint16_t)e->type, 2);
    put_be(&b, (uint64_t)e->timestamp_ms, 8);
    int rc = encode_record(d->fields, &e->u, &b, &cx);
    if (rc == 0 && d->rules)
        rc = d->rules(&e->u);   /* after the fields: their shapes are checked by then */
    if (rc == 0 && b.oom)
        rc = LEDGER_ERR_NOMEM;
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* --- decoding untrusted bytes -------------------------------------------------------- */

static uint64_t rd_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    return v;
}

static void free_record(const struct field *fields, void *base);

static int decode_record(const struct field *fields, void *base, const uint8_t *p, size_t len,
                         int depth, struct cx *cx);

static int decode_id(const uint8_t *p, size_t n, char *out)
{
    if (n == 0 || n > ENTRY_ID_MAX)
        return LEDGER_ERR_ENTRY_ID;
    memcpy(out, p, n);
    out[n] = 0;
    if (strlen(out) != n || !crypto_id_valid(out))
        return LEDGER_ERR_ENTRY_ID;
    return 0;
}

/* Adds a zeroed element to a list field; the count includes it at once, so a
 * failure while filling it is still freed by free_record. */
static void *list_grow(const struct field *f, void *base)
{
    uint8_t **arr = AT(base, f->off, uint8_t *);
    uint32_t *n = AT(base, f->aux, uint32_t);
    size_t es = element_size(f->kind);
    if (*n >= ENTRY_LIST_MAX)
        return NULL;
    /* capacity is the next power of two >= count: full when count is one */
    if ((*n & (*n - 1)) == 0) {
        uint8_t *q = realloc(*arr, (size_t)(*n ? 2 * *n : 1) * es);
        if (!q)
            return NULL;
        *arr = q;
    }
    uint8_t *el = *arr + (size_t)(*n) * es;
    memset(el, 0, es);
    (*n)++;
    return el;
}

/* One element of a K_MEASURES list: a valid name, not given before. */
static int decode_measure(const struct field *f, void *base, const uint8_t *p, size_t n,
                          struct cx *cx)
{
    measure_name *names = AT(base, f->off, measure_name);
    uint32_t *count = AT(base, f->aux, uint32_t);
    if (*count >= ENTRY_MEASURES_MAX || !measure_name_valid((const char *)p, n))
        return LEDGER_ERR_ENTRY_FIELD;
    memcpy(names[*count], p, n);
    names[*count][n] = 0;
    for (uint32_t j = 0; j < *count; j++)
        if (strcmp(names[j], names[*count]) == 0)
            return LEDGER_ERR_ENTRY_FIELD;
    (*count)++;
    cx->n_values = *count;
    cx->names = (const measure_name *)names;
    return 0;
}

static int decode_value(const struct field *f, void *base, const uint8_t *p, size_t n, int depth,
                        struct cx *cx)
{
    void *v = AT(base, f->off, void);
    switch ((enum kind)f->kind) {
    case K_BOOL:
        if (n != 1 || p[0] > 1)
            return LEDGER_ERR_ENTRY_FIELD;
        *(uint8_t *)v = p[0];
        return 0;
    case K_U32:
        if (n != 4)
            return LEDGER_ERR_ENTRY_FIELD;
        *(uint32_t *)v = (uint32_t)rd_be(p, 4);
        return 0;
    case K_U64:
        if (n != 8)
            return LEDGER_ERR_ENTRY_FIELD;
        *(uint64_t *)v = rd_be(p, 8);
        return 0;
    case K_I32:
        if (n != 4)
            return LEDGER_ERR_ENTRY_FIELD;
        *(int32_t *)v = (int32_t)(uint32_t)rd_be(p, 4);
        return 0;
    case K_I64:
        if (n != 8)
            return LEDGER_ERR_ENTRY_FIELD;
        *(int64_t *)v = (int64_t)rd_be(p, 8);
        return 0;
    case K_F64: {
        if (n != 8)
            return LEDGER_ERR_ENTRY_FIELD;
        uint64_t u = rd_be(p, 8);
        memcpy(v, &u, 8);
        if (!f->required && isnan(*(double *)v))
            return LEDGER_ERR_ENTRY_FIELD;   /* NaN is written as absence: one encoding */
        return 0;
    }
    case K_F64F: {
        if (n != 8)
            return LEDGER_ERR_ENTRY_FIELD;
        uint64_t u = rd_be(p, 8);
        memcpy(v, &u, 8);
        if (isnan(*(double *)v))
            return LEDGER_ERR_ENTRY_FIELD;   /* absence is the only way to say "none" */
        *AT(base, f->aux, uint8_t) = 1;
        return 0;
    }
    case K_F64S:
        /* one value per measure of the entry, whose measures come first */
        if (cx->n_values == 0 || n != 8 * (size_t)cx->n_values)
            return LEDGER_ERR_ENTRY_FIELD;
        for (uint32_t i = 0; i < cx->n_values; i++) {
            uint64_t u = rd_be(p + 8 * i, 8);
            memcpy((double *)v + i, &u, 8);
        }
        return 0;
    case K_MEASURES:
        return decode_measure(f, base, p, n, cx);
    case K_H32:
    case K_SIG:
        if (n != (f->kind == K_H32 ? 32u : 64u))
            return LEDGER_ERR_ENTRY_FIELD;
        memcpy(v, p, n);
        return 0;
    case K_ID:
        return decode_id(p, n, v);
    case K_TEXT: {
        if (n > ENTRY_TEXT_MAX || memchr(p, 0, n))
            return LEDGER_ERR_ENTRY_FIELD;
        char *s = malloc(n + 1);
        if (!s)
            return LEDGER_ERR_NOMEM;
        memcpy(s, p, n);
        s[n] = 0;
        *(char **)v = s;
        return 0;
    }
    case K_BLOB: {
        if (n > ENTRY_BLOB_MAX)
            return LEDGER_ERR_ENTRY_FIELD;
        uint8_t *s = malloc(n ? n : 1);
        if (!s)
            return LEDGER_ERR_NOMEM;
        memcpy(s, p, n);
        *(uint8_t **)v = s;
        *AT(base, f->aux, size_t) = n;
        return 0;
    }
    case K_MEMBER:
    case K_CODEC:
        return decode_record(nested_fields(f->kind), v, p, n, depth + 1, cx);
    case K_MEMBERS:
    case K_IDS:
    case K_MSCORES:
    case K_CSHARES: {
        void *el = list_grow(f, base);
        if (!el)
            return *AT(base, f->aux, uint32_t) >= ENTRY_LIST_MAX ? LEDGER_ERR_ENTRY_FIELD
                                                                 : LEDGER_ERR_NOMEM;
        if (f->kind == K_IDS)
            return decode_id(p, n, el);
        return decode_record(nested_fields(f->kind), el, p, n, depth + 1, cx);
    }
    }
    return LEDGER_ERR_ENTRY_FIELD;
}

static int is_list(const struct field *f)
{
    return f->kind == K_IDS || f->kind == K_MEASURES || is_record_list((enum kind)f->kind);
}

static int decode_record(const struct field *fields, void *base, const uint8_t *p, size_t len,
                         int depth, struct cx *cx)
{
    uint64_t seen = 0;
    unsigned last_tag = 0;
    size_t pos = 0;
    if (depth > 1)
        return LEDGER_ERR_ENTRY_FIELD;   /* records nest one level at most */
    while (pos < len) {
        if (len - pos < 6)
            return LEDGER_ERR_ENTRY_TRUNCATED;
        unsigned tag = (unsigned)rd_be(p + pos, 2);
        size_t n = (size_t)rd_be(p + pos + 2, 4);
        pos += 6;
        if (n > len - pos)
            return LEDGER_ERR_ENTRY_TRUNCATED;
        const struct field *f = NULL;
        int fi = 0;
        for (const struct field *g = fields; g->name; g++, fi++)
            if (g->tag == tag) {
                f = g;
                break;
            }
        /* canonical order: tags ascend; only a list may repeat its tag (an
         * unknown tag may be a newer writer's list) */
        if (tag == 0 || tag < last_tag || (tag == last_tag && f && !is_list(f)))
            return LEDGER_ERR_ENTRY_FIELD;
        last_tag = tag;
        if (f) {
            int rc = decode_value(f, base, p + pos, n, depth, cx);
            if (rc)
                return rc;
            seen |= (uint64_t)1 << fi;
        }
        pos += n;
    }
    int fi = 0;
    for (const struct field *f = fields; f->name; f++, fi++) {
        if (seen & ((uint64_t)1 << fi))
            continue;
        if (f->required)
            return LEDGER_ERR_ENTRY_MISSING;
        if (f->kind == K_F64 || f->kind == K_F64F)
            *AT(base, f->off, double) = NAN;   /* an optional number not given (K_F64F:
                                                  its flag stays 0) */
    }
    return 0;
}

int entry_decode(const uint8_t *data, size_t len, struct entry *e)
{
    if (!e || (!data && len))
        return LEDGER_ERR_ARG;
    memset(e, 0, sizeof *e);
    if (len < ENTRY_HEADER_BYTES)
        return len >= 4 && memcmp(data, ENTRY_MAGIC, 4) != 0 ? LEDGER_ERR_ENTRY_MAGIC
                                                             : LEDGER_ERR_ENTRY_TRUNCATED;
    if (memcmp(data, ENTRY_MAGIC, 4) != 0)
        return LEDGER_ERR_ENTRY_MAGIC;
    if (data[4] != ENTRY_VERSION)
        return LEDGER_ERR_ENTRY_VERSION;
    const struct type_desc *d = type_of((uint32_t)rd_be(data + 5, 2));
    if (!d)
        return LEDGER_ERR_ENTRY_TYPE;
    e->type = d->type;
    e->timestamp_ms = (int64_t)rd_be(data + 7, 8);
    struct cx cx = { 0 };
    int rc = decode_record(d->fields, &e->u, data + ENTRY_HEADER_BYTES, len - ENTRY_HEADER_BYTES, 0,
                           &cx);
    if (rc == 0 && d->rules)
        rc = d->rules(&e->u);
    if (rc)
        entry_free(e);
    return rc;
}

static void free_record(const struct field *fields, void *base)
{
    for (const struct field *f = fields; f->name; f++) {
        void *v = AT(base, f->off, void);
        switch ((enum kind)f->kind) {
        case K_TEXT:
        case K_BLOB:
            free(*(void **)v);
            *(void **)v = NULL;
            break;
        case K_MEMBER:
        case K_CODEC:
            free_record(nested_fields(f->kind), v);
            break;
        case K_MEMBERS:
        case K_MSCORES:
        case K_CSHARES: {
            uint8_t *arr = *(uint8_t **)v;
            uint32_t n = *AT(base, f->aux, uint32_t);
            for (uint32_t i = 0; arr && i < n; i++)
                free_record(nested_fields(f->kind), arr + (size_t)i * element_size(f->kind));
            free(arr);
            *(void **)v = NULL;
            break;
        }
        case K_IDS:
            free(*(void **)v);
            *(void **)v = NULL;
            break;
        default:
            break;
        }
    }
}

void entry_free(struct entry *e)
{
    if (!e)
        return;
    const struct type_desc *d = type_of((uint32_t)e->type);
    if (d)
        free_record(d->fields, &e->u);
    memset(e, 0, sizeof *e);
}

/* --- JSON --------------------------------------------------------------------------- */

struct str {
    char *p;
    size_t len, cap;
    int oom;
};

static void sput(struct str *s, const char *d, size_t n)
{
    if (s->oom)
        return;
    if (n + 1 > s->cap - s->len) {
        size_t cap = s->cap ? s->cap : 256;
        while (cap - s->len < n + 1)
            cap *= 2;
        char *p = realloc(s->p, cap);
        if (!p) {
            s->oom = 1;
            return;
        }
        s->p = p;
        s->cap = cap;
    }
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = 0;
}

static void sputs(struct str *s, const char *d)
{
    sput(s, d, strlen(d));
}

__attribute__((format(printf, 2, 3)))
static void sprintf_(struct str *s, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sput(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of a valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    static const uint32_t min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string; bytes that are not valid UTF-8 become U+FFFD. */
static void json_string(struct str *s, const uint8_t *p, size_t n)
{
    sput(s, "\"", 1);
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = { '\\', (char)c };
            sput(s, esc, 2);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            switch (c) {
            case '\n': sputs(s, "\\n"); break;
            case '\r': sputs(s, "\\r"); break;
            case '\t': sputs(s, "\\t"); break;
            default: sprintf_(s, "\\u%04x", c);
            }
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                sputs(s, "\\ufffd");
                i++;
            } else {
                sput(s, (const char *)p + i, l);
                i += l;
            }
        }
    }
    sput(s, "\"", 1);
}

static void json_hex(struct str *s, const uint8_t *p, size_t n)
{
    char h[129];
    hex_encode(p, n, h);
    sput(s, "\"", 1);
    sput(s, h, 2 * n);
    sput(s, "\"", 1);
}

static void json_double(struct str *s, double d)
{
    if (!isfinite(d))
        sputs(s, "null");
    else
        sprintf_(s, "%.17g", d);
}

static void json_roles(struct str *s, uint32_t roles)
{
    static const char *names[] = { "member", "researcher", "secretariat", "coordinator" };
    int first = 1;
    sput(s, "[", 1);
    for (unsigned b = 0; b < 32; b++) {
        if (!(roles & (1u << b)))
            continue;
        if (!first)
            sput(s, ",", 1);
        first = 0;
        if (b < 4)
            sprintf_(s, "\"%s\"", names[b]);
        else
            sprintf_(s, "\"role-bit-%u\"", b);
    }
    sput(s, "]", 1);
}

static void json_record(struct str *s, const struct field *fields, const void *base,
                        struct cx *cx);

static void json_value(struct str *s, const struct field *f, const void *base, struct cx *cx)
{
    const void *v = AT(base, f->off, const void);
    switch ((enum kind)f->kind) {
    case K_BOOL:
        sputs(s, *(const uint8_t *)v ? "true" : "false");
        break;
    case K_U32:
        if (strcmp(f->name, "roles") == 0)
            json_roles(s, *(const uint32_t *)v);
        else
            sprintf_(s, "%" PRIu32, *(const uint32_t *)v);
        break;
    case K_U64:
        sprintf_(s, "%" PRIu64, *(const uint64_t *)v);
        break;
    case K_I32:
        sprintf_(s, "%" PRId32, *(const int32_t *)v);
        break;
    case K_I64:
        sprintf_(s, "%" PRId64, *(const int64_t *)v);
        break;
    case K_F64:
    case K_F64F:
        json_double(s, *(const double *)v);
        break;
    case K_F64S:   /* an object: measure name -> value */
        sput(s, "{", 1);
        for (uint32_t i = 0; cx->names && i < cx->n_values; i++) {
            if (i)
                sput(s, ",", 1);
            json_string(s, (const uint8_t *)cx->names[i], strlen(cx->names[i]));
            sput(s, ":", 1);
            json_double(s, ((const double *)v)[i]);
        }
        sput(s, "}", 1);
        break;
    case K_MEASURES: {
        const measure_name *names = v;
        uint32_t n = *AT(base, f->aux, const uint32_t);
        if (n > ENTRY_MEASURES_MAX)
            n = ENTRY_MEASURES_MAX;   /* a struct filled by hand may say more */
        sput(s, "[", 1);
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                sput(s, ",", 1);
            json_string(s, (const uint8_t *)names[i], strlen(names[i]));
        }
        sput(s, "]", 1);
        cx->n_values = n;
        cx->names = names;
        break;
    }
    case K_H32:
        json_hex(s, v, 32);
        break;
    case K_SIG:
        json_hex(s, v, 64);
        break;
    case K_ID:
        json_string(s, v, strlen(v));
        break;
    case K_TEXT: {
        const char *t = *(const char *const *)v;
        json_string(s, (const uint8_t *)t, strlen(t));
        break;
    }
    case K_BLOB:
        json_string(s, *(const uint8_t *const *)v, *AT(base, f->aux, const size_t));
        break;
    case K_MEMBER:
    case K_CODEC:
        json_record(s, nested_fields(f->kind), v, cx);
        break;
    case K_MEMBERS:
    case K_IDS:
    case K_MSCORES:
    case K_CSHARES: {
        const uint8_t *arr = *(const uint8_t *const *)v;
        uint32_t n = *AT(base, f->aux, const uint32_t);
        size_t es = element_size(f->kind);
        sput(s, "[", 1);
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                sput(s, ",", 1);
            const void *el = arr + (size_t)i * es;
            if (f->kind == K_IDS)
                json_string(s, el, strlen(el));
            else
                json_record(s, nested_fields(f->kind), el, cx);
        }
        sput(s, "]", 1);
        break;
    }
    }
}

/* Absent optional fields are left out, as on the wire. */
static int present(const struct field *f, const void *base)
{
    const void *v = AT(base, f->off, const void);
    if (f->required)
        return f->kind != K_TEXT || *(const char *const *)v;
    switch ((enum kind)f->kind) {
    case K_F64:  return !isnan(*(const double *)v);
    case K_F64F: return *AT(base, f->aux, const uint8_t) != 0;
    case K_H32:  return !all_zero(v, 32);
    case K_SIG:  return !all_zero(v, 64);
    case K_TEXT:
    case K_BLOB: return *(const void *const *)v != NULL;
    case K_ID:   return *(const char *)v != 0;
    case K_U32:  return *(const uint32_t *)v != 0;
    default:     return 1;
    }
}

static void json_record(struct str *s, const struct field *fields, const void *base,
                        struct cx *cx)
{
    int first = 1;
    sput(s, "{", 1);
    for (const struct field *f = fields; f->name; f++) {
        if (!present(f, base))
            continue;
        if (!first)
            sput(s, ",", 1);
        first = 0;
        sprintf_(s, "\"%s\":", f->name);
        json_value(s, f, base, cx);
    }
    sput(s, "}", 1);
}

static void iso_time(int64_t ms, char out[80])
{
    time_t t = (time_t)(ms / 1000);
    int rem = (int)(ms % 1000);
    if (rem < 0) {
        rem += 1000;
        t -= 1;
    }
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year > 9999 - 1900 || tm.tm_year < -1900) {
        snprintf(out, 80, "invalid");
        return;
    }
    snprintf(out, 80, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rem);
}

char *entry_to_json(const struct entry *e)
{
    struct str s = { 0 };
    const struct type_desc *d = e ? type_of((uint32_t)e->type) : NULL;
    char when[80];
    if (!d)
        return NULL;
    iso_time(e->timestamp_ms, when);
    sprintf_(&s, "{\"type\":\"%s\",\"version\":%d,\"timestamp_ms\":%" PRId64 ",\"time\":\"%s\"",
             d->name, ENTRY_VERSION, e->timestamp_ms, when);
    /* the type's fields follow in the same object */
    struct str body = { 0 };
    struct cx cx = { 0 };
    json_record(&body, d->fields, &e->u, &cx);
    if (body.oom) {
        free(body.p);
        free(s.p);
        return NULL;
    }
    if (body.len > 2) {
        sput(&s, ",", 1);
        sput(&s, body.p + 1, body.len - 1);   /* skip its '{' */
    } else {
        sput(&s, "}", 1);
    }
    free(body.p);
    if (s.oom) {
        free(s.p);
        return NULL;
    }
    return s.p;
}

/* --- one line for people ----------------------------------------------------------- */

static void human_count(uint64_t v, char out[16])
{
    if (v >= 1000000000ULL)
        snprintf(out, 16, "%.2fG", (double)v / 1e9);
    else if (v >= 1000000ULL)
        snprintf(out, 16, "%.2fM", (double)v / 1e6);
    else if (v >= 10000ULL)
        snprintf(out, 16, "%.1fk", (double)v / 1e3);
    else
        snprintf(out, 16, "%" PRIu64, v);
}

static void short_hex(const uint8_t *h, char out[17])
{
    hex_encode(h, 8, out);
}

/* "tokens, alignment, shapley" */
static void measure_list(const measure_name *names, uint32_t n, char *out,
                         size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < n && i < ENTRY_MEASURES_MAX && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? ", " : "", ENTRY_MEASURE_NAME_MAX,
                              names[i]);
}

int entry_describe(const struct entry *e, char *buf, size_t cap)
{
    const struct type_desc *d = e ? type_of((uint32_t)e->type) : NULL;
    char h[17], c1[16];
    if (!d)
        return snprintf(buf, cap, "unknown entry type");
    switch (e->type) {
    case ENTRY_GENESIS: {
        const struct entry_genesis *g = &e->u.genesis;
        char first[ENTRY_ID_MAX + 16] = "";
        if (g->n_members)
            snprintf(first, sizeof first, " (%s%s)", g->members[0].id, g->n_members > 1 ? ", ..." : "");
        return snprintf(buf, cap, "genesis: alliance %s, %u founding member%s%s",
                        g->alliance ? g->alliance : "(unnamed)", g->n_members,
                        g->n_members == 1 ? "" : "s", first);
    }
    case ENTRY_MEMBER_ADDED: {
        const struct entry_member *m = &e->u.member_added.member;
        return snprintf(buf, cap, "member added: %s (%s)", m->id, m->organization ? m->organization : "no organization");
    }
    case ENTRY_MEMBER_REMOVED:
        return snprintf(buf, cap, "member removed: %s%s%s", e->u.member_removed.member,
                        e->u.member_removed.reason ? ": " : "",
                        e->u.member_removed.reason ? e->u.member_removed.reason : "");
    case ENTRY_KEY_ROTATED:
        short_hex(e->u.key_rotated.new_public_key, h);
        return snprintf(buf, cap, "key rotated: %s, new key %s…", e->u.key_rotated.member, h);
    case ENTRY_POLICY_PROPOSED:
    case ENTRY_CHARTER_PROPOSED:
    case ENTRY_CANCEL_PROPOSED: {
        const struct entry_motion *m = &e->u.motion;
        short_hex(m->proposal_hash, h);
        if (e->type == ENTRY_CANCEL_PROPOSED)
            return snprintf(buf, cap, "cancellation proposed: %s proposes to cancel %s "
                            "(proposal %s…)", m->proposer, m->experiment, h);
        if (e->type == ENTRY_CHARTER_PROPOSED)
            return snprintf(buf, cap, "charter change proposed: by %s, %zu bytes (proposal %s…)",
                            m->proposer, m->document_len, h);
        return snprintf(buf, cap, "experiment proposed: %s by %s, %zu bytes of policy "
                        "(proposal %s…)", m->experiment, m->proposer, m->document_len, h);
    }
    case ENTRY_PROPOSAL_DECIDED: {
        static const char *const outcomes[] = { "decided", "approved", "rejected", "expired",
                                                "withdrawn", "obsolete" };
        const struct entry_proposal_decided *d = &e->u.decided;
        short_hex(d->proposal_hash, h);
        return snprintf(buf, cap, "proposal %s…%s%s %s (%u yes, %u no, %u of %u needed)%s%s", h,
                        d->experiment[0] ? " for " : "", d->experiment,
                        outcomes[d->outcome <= 5 ? d->outcome : 0], d->yes, d->no, d->needed,
                        d->voters, d->reason ? ": " : "", d->reason ? d->reason : "");
    }
    case ENTRY_VOTE:
        short_hex(e->u.vote.policy_hash, h);
        return snprintf(buf, cap, "vote: %s votes %s on %s…", e->u.vote.voter,
                        e->u.vote.approve ? "yes" : "no", h);
    case ENTRY_ROSTER_PROPOSED: {
        const struct entry_roster_proposed *p = &e->u.roster_proposed;
        static const char *const verbs[] = { "change", "add", "remove", "rotate the key of" };
        short_hex(p->proposal_hash, h);
        return snprintf(buf, cap, "roster change proposed: %s proposes to %s %s (proposal %s…)",
                        p->proposer, verbs[p->action <= 3 ? p->action : 0], p->member, h);
    }
    case ENTRY_EXPERIMENT_STARTED:
        short_hex(e->u.experiment.model_hash, h);
        return snprintf(buf, cap, "experiment started: %s, %" PRIu64 " rounds, initial model %s…",
                        e->u.experiment.experiment, e->u.experiment.rounds, h);
    case ENTRY_EXPERIMENT_FINISHED:
        short_hex(e->u.experiment.model_hash, h);
        return snprintf(buf, cap, "experiment finished: %s after %" PRIu64 " rounds, final model %s…%s%s",
                        e->u.experiment.experiment, e->u.experiment.rounds, h,
                        e->u.experiment.reason ? ": " : "",
                        e->u.experiment.reason ? e->u.experiment.reason : "");
    case ENTRY_EXPERIMENT_CANCELLED:
    case ENTRY_EXPERIMENT_FAILED:
        return snprintf(buf, cap, "%s: %s after %" PRIu64 " rounds: %s", d->words,
                        e->u.experiment.experiment, e->u.experiment.rounds,
                        e->u.experiment.reason ? e->u.experiment.reason : "no reason given");
    case ENTRY_UPDATE_ACCEPTED: {
        const struct entry_update *u = &e->u.update;
        human_count(u->tokens, c1);
        short_hex(u->payload_hash, h);
        char val[40] = "";
        if (!isnan(u->val_loss))
            snprintf(val, sizeof val, ", validation loss %.4f", u->val_loss);
        return snprintf(buf, cap, "update accepted: %s, %s round %" PRIu64 ", %s tokens, payload %s…, loss %.4f%s",
                        u->member, u->experiment, u->round, c1, h, u->train_loss, val);
    }
    case ENTRY_UPDATE_REJECTED: {
        const struct entry_update *u = &e->u.update;
        return snprintf(buf, cap, "update rejected: %s, %s round %" PRIu64 ": %s", u->member,
                        u->experiment, u->round, u->reason ? u->reason : "no reason given");
    }
    case ENTRY_ROUND_CLOSED: {
        const struct entry_round_closed *r = &e->u.round_closed;
        human_count(r->tokens, c1);
        short_hex(r->model_hash, h);
        char eps[48] = "";
        if (r->has_epsilon)
            snprintf(eps, sizeof eps, ", epsilon %.4g", r->epsilon);
        return snprintf(buf, cap, "round closed: %s round %" PRIu64 ", %u participant%s, %s tokens, mean loss %.4f, model %s…%s",
                        r->experiment, r->round, r->n_participants, r->n_participants == 1 ? "" : "s",
                        c1, r->mean_loss, h, eps);
    }
    case ENTRY_CONTRIBUTION_SCORES: {
        const struct entry_contribution_scores *s = &e->u.scores;
        char by[ENTRY_MEASURES_MAX * (ENTRY_MEASURE_NAME_MAX + 2) + 1];
        measure_list(s->measures, s->n_measures, by, sizeof by);
        return snprintf(buf, cap, "contribution scores: %s round %" PRIu64 ", %u member%s, by %s"
                        " (%" PRIu64 " evaluation%s%s)", s->experiment, s->round, s->n,
                        s->n == 1 ? "" : "s", by, s->evaluations,
                        s->evaluations == 1 ? "" : "s", s->exact ? ", shapley exact" : "");
    }
    case ENTRY_CREDITS: {
        const struct entry_credits *c = &e->u.credits;
        char by[ENTRY_MEASURES_MAX * (ENTRY_MEASURE_NAME_MAX + 2) + 1], top[ENTRY_ID_MAX + 40] = "";
        measure_list(c->measures, c->n_measures, by, sizeof by);
        uint32_t best = 0;
        for (uint32_t i = 1; i < c->n; i++)
            if (c->members[i].share > c->members[best].share)
                best = i;
        if (c->n)
            snprintf(top, sizeof top, "; largest share %s %.1f%%", c->members[best].member,
                     100.0 * c->members[best].share);
        return snprintf(buf, cap, "credits: %s, %" PRIu64 " round%s scored, %u member%s, by %s%s",
                        c->experiment, c->rounds, c->rounds == 1 ? "" : "s", c->n,
                        c->n == 1 ? "" : "s", by, top);
    }
    }
    return snprintf(buf, cap, "%s", d->words);
}
