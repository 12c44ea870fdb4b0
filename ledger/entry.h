#ifndef AULAC_LEDGER_ENTRY_H
#define AULAC_LEDGER_ENTRY_H
/* Ledger entries: what each leaf of the log says, and its byte encoding
 * (ledger/README.md documents every byte).
 *
 *   "AULE" | version u8 (2) | type u16 BE | timestamp ms i64 BE | fields
 *   field:  tag u16 BE | length u32 BE | value
 *
 * Fields appear in ascending tag order; a list repeats its tag once per element.
 * Decoders skip tags they do not know (newer writers may add fields), so
 * old readers still show new entries.
 *
 * One tagged struct holds any entry: set .type and fill the matching member of
 * the union. Ownership: a struct you fill yourself stays yours (point its
 * strings and arrays anywhere); a struct filled by entry_decode owns copies of
 * everything and is released with entry_free.
 *
 * Errors: ledger/errors.h (LEDGER_ERR_ENTRY_*, LEDGER_ERR_NOMEM, LEDGER_ERR_ARG). */
#include <stddef.h>
#include <stdint.h>

#include "ledger/errors.h"

#define ENTRY_MAGIC        "AULE"
#define ENTRY_VERSION      2             /* 2: update_accepted holds every field the
                                            member signed; roster_proposed times are i64 */
#define ENTRY_HEADER_BYTES 15
#define ENTRY_ID_MAX       64            /* ids: 1..64 of [a-z0-9._-], first a letter or digit */
#define ENTRY_TEXT_MAX     (1u << 20)    /* organization, reason */
#define ENTRY_BLOB_MAX     (16u << 20)   /* policy / charter documents */
#define ENTRY_LIST_MAX     100000        /* members, participants, member scores */

enum entry_type {
    ENTRY_GENESIS              = 1,
    ENTRY_MEMBER_ADDED         = 2,
    ENTRY_MEMBER_REMOVED       = 3,
    ENTRY_KEY_ROTATED          = 4,
    ENTRY_POLICY_PROPOSED      = 5,
    ENTRY_VOTE                 = 6,
    ENTRY_EXPERIMENT_STARTED   = 7,
    ENTRY_EXPERIMENT_FINISHED  = 8,
    ENTRY_EXPERIMENT_CANCELLED = 9,
    ENTRY_EXPERIMENT_FAILED    = 10,
    ENTRY_UPDATE_ACCEPTED      = 11,
    ENTRY_UPDATE_REJECTED      = 12,
    ENTRY_ROUND_CLOSED         = 13,
    ENTRY_CONTRIBUTION_SCORES  = 14,
    ENTRY_CREDITS              = 15,
    ENTRY_ROSTER_PROPOSED      = 16,
    ENTRY_CHARTER_PROPOSED     = 17,
    ENTRY_CANCEL_PROPOSED      = 18,
    ENTRY_PROPOSAL_DECIDED     = 19,
};

/* Roles, a bit set. */
enum {
    ENTRY_ROLE_MEMBER      = 1u << 0,
    ENTRY_ROLE_RESEARCHER  = 1u << 1,
    ENTRY_ROLE_SECRETARIAT = 1u << 2,
    ENTRY_ROLE_COORDINATOR = 1u << 3,   /* the key that signs receipts and checkpoints */
};

struct entry_member {
    char     id[ENTRY_ID_MAX + 1];
    char    *organization;               /* may be NULL (then omitted) */
    uint32_t roles;
    uint8_t  public_key[32];
};

struct entry_genesis {                   /* the founding roster; leaf 0 */
    char                *alliance;       /* name of the alliance; may be NULL */
    uint32_t             n_members;
    struct entry_member *members;
    char                *charter;        /* the alliance charter's canonical text
                                            (policies/charter.h); NULL in ledgers written
                                            before charters: the default charter */
};

struct entry_member_added {
    struct entry_member member;
    uint8_t             proposal_hash[32];   /* the approved governance proposal */
};

struct entry_member_removed {
    char    member[ENTRY_ID_MAX + 1];
    char   *reason;                      /* may be NULL */
    uint8_t proposal_hash[32];
};

struct entry_key_rotated {
    char    member[ENTRY_ID_MAX + 1];
    uint8_t new_public_key[32];
    uint8_t proposal_hash[32];
};

/* A signed motion (crypto/motion.h): policy_proposed (kind 1, run an experiment),
 * cancel_proposed (kind 2), charter_proposed (kind 3). Every field the proposer
 * signed is here, with the document's exact bytes, so anyone can re-check it and
 * rebuild the document byte for byte. */
struct entry_motion {
    uint8_t  proposal_hash[32];          /* BLAKE2b-256 of the signed motion header */
    uint32_t kind;                       /* 1 experiment, 2 cancel, 3 charter */
    char     proposer[ENTRY_ID_MAX + 1];
    char     experiment[ENTRY_ID_MAX + 1];   /* "" (omitted) for a charter */
    uint8_t *document;                   /* the policy / charter file as proposed; NULL
                                            (omitted) for a cancel */
    size_t   document_len;
    uint8_t  document_digest[32];        /* BLAKE2b-256 of document; zero for a cancel */
    uint8_t  content_hash[32];           /* policy hash / charter hash; zero for a cancel */
    char    *reason;                     /* may be NULL */
    int64_t  created_ms, expires_ms;     /* Unix ms, as signed */
    uint8_t  signature[64];              /* proposer's */
};

/* How a motion ended (written for motions; roster proposals end in member_added...). */
enum entry_outcome {
    ENTRY_OUTCOME_APPROVED  = 1,
    ENTRY_OUTCOME_REJECTED  = 2,
    ENTRY_OUTCOME_EXPIRED   = 3,
    ENTRY_OUTCOME_WITHDRAWN = 4,
    ENTRY_OUTCOME_OBSOLETE  = 5,
};

struct entry_proposal_decided {
    uint8_t  proposal_hash[32];
    uint32_t outcome;                    /* enum entry_outcome */
    char     experiment[ENTRY_ID_MAX + 1];   /* "" (omitted) for a charter */
    uint32_t yes, no, needed, voters;    /* the tally that decided it */
    char    *reason;                     /* may be NULL */
    uint8_t  withdraw_signature[64];     /* outcome 4: the proposer's withdrawal
                                            (crypto/motion.h); else zero (omitted) */
};

/* A signed proposal to change the roster (crypto/proposal.h has the statement the
 * proposer signed; every signed field is here so anyone can re-check it). */
struct entry_roster_proposed {
    uint8_t  proposal_hash[32];          /* BLAKE2b-256 of the signed proposal header */
    uint32_t action;                     /* 1 add, 2 remove, 3 rotate */
    char     proposer[ENTRY_ID_MAX + 1];
    char     member[ENTRY_ID_MAX + 1];   /* whom it is about */
    char    *organization;               /* add; may be NULL */
    uint32_t roles;                      /* add; else 0 */
    uint8_t  public_key[32];             /* add / rotate; all zero for remove */
    char    *reason;                     /* may be NULL */
    int64_t  created_ms, expires_ms;     /* Unix ms, as signed (i64) */
    uint8_t  signature[64];              /* proposer's */
};

struct entry_vote {
    uint8_t policy_hash[32];             /* what is voted on: a policy hash or a roster
                                            proposal hash */
    char    voter[ENTRY_ID_MAX + 1];
    uint8_t approve;                     /* 1 yes, 0 no */
    uint8_t signature[64];
};

/* started / finished / cancelled / failed */
struct entry_experiment {
    char     experiment[ENTRY_ID_MAX + 1];
    uint8_t  policy_hash[32];
    uint8_t  model_hash[32];             /* started: initial model; finished: final model; else optional */
    uint64_t rounds;                     /* started: planned; otherwise completed */
    char    *reason;                     /* cancelled / failed: why (required on the wire);
                                            finished: optional, why it ended before its
                                            planned rounds (e.g. "privacy budget: ...");
                                            started: not written. May be NULL */
    uint8_t  proposal_hash[32];          /* the approved policy_proposed motion; zero
                                            (omitted) for an experiment run without one */
    uint8_t  dp_seed_commitment[32];     /* started, privacy on: BLAKE2b-256 of the DP
                                            noise seed (aggregate/robust.h, PRIVACY.md);
                                            zero (omitted) without privacy or from an
                                            earlier version */
    uint32_t dp_noise_scheme;            /* started, privacy on: how the noise is drawn
                                            from the seed (aggregate/dp_noise.h
                                            AGG_DP_SCHEME_*: 2 = the libm-free polar
                                            method); zero (omitted) without privacy and
                                            in ledgers written before it, where a
                                            dp_seed_commitment means scheme 1 */
};

/* The codec parameters an update envelope signs (crypto/envelope.h). */
struct entry_codec {
    uint32_t format_version;
    uint32_t block_size;
    uint32_t k_per_block;
    uint32_t quant;
    int32_t  zstd_level;
    uint8_t  error_feedback;             /* 0 or 1 */
};

/* accepted / rejected. An accepted update holds every field of the envelope the
 * member signed, so its signature re-checks from the entry and the roster alone. */
struct entry_update {
    char     experiment[ENTRY_ID_MAX + 1];
    uint64_t round;
    char     member[ENTRY_ID_MAX + 1];
    uint8_t  payload_hash[32];
    uint64_t tokens;
    uint64_t samples;
    uint64_t bytes;
    uint8_t  envelope_signature[64];
    double   train_loss;                 /* accepted only */
    double   val_loss;                   /* accepted only, optional: the validation loss the
                                            member reported with the update. Not part of the
                                            envelope (not signed): informational. NaN when not
                                            reported (then the field is absent) */
    char    *reason;                     /* rejected: why, as told to the worker */
    uint8_t  base_model_hash[32];        /* accepted only: the model it was trained from */
    struct entry_codec codec;            /* accepted only: as signed */
};

struct entry_round_closed {
    char      experiment[ENTRY_ID_MAX + 1];
    uint64_t  round;
    uint32_t  n_participants;
    char    (*participants)[ENTRY_ID_MAX + 1];
    uint8_t   aggregate_hash[32];
    uint8_t   model_hash[32];
    double    mean_loss;
    uint64_t  tokens;
    /* Differential privacy (PRIVACY.md): the epsilon spent by the experiment after this
     * round, at the policy's privacy.delta: rdp_epsilon(1, noise_multiplier, round,
     * delta) (privacy/rdp.h). Present only when has_epsilon is 1 (an experiment with
     * privacy); a zeroed struct leaves it out. epsilon is >= 0 and not NaN; +inf (no
     * noise) is allowed and shows as null in JSON. */
    uint8_t   has_epsilon;               /* 0 or 1 */
    double    epsilon;                   /* valid when has_epsilon; decoded absent: NaN */
};

#define ENTRY_MEASURES_MAX  8           /* measures of one scores / credits entry */
#define ENTRY_MEASURE_NAME_MAX 16        /* "tokens", "alignment", "shapley", ... */

/* contribution_scores and credits are checked whole by entry_encode and entry_decode
 * (LEDGER_ERR_ENTRY_FIELD otherwise): 1..ENTRY_MEASURES_MAX measures, each named by 1..16
 * of [a-z] and listed once; every member record holds exactly one value per measure
 * (on the wire; in the structs values[0..n_measures)); members in strictly increasing id
 * order (strcmp); every value finite (base_loss and model_loss may also be NaN: no
 * evaluation); credits' shares and weights also >= 0. A decoder accepts measure names it
 * does not know (a newer writer's measures). */

/* One member's values in a contribution_scores entry, one per measure in the entry's
 * measure order, and the update they were computed from. */
struct entry_member_score {
    char     member[ENTRY_ID_MAX + 1];
    uint8_t  payload_hash[32];           /* of its accepted update (update_accepted) */
    double   values[ENTRY_MEASURES_MAX]; /* n_measures used */
};

/* contribution_scores: every member's value per measure for one closed round, written
 * in the round close's transaction (credit/score.h; ledger/README.md). */
struct entry_contribution_scores {
    char     experiment[ENTRY_ID_MAX + 1];
    uint64_t round;
    uint32_t n_measures;                 /* 1..ENTRY_MEASURES_MAX */
    char     measures[ENTRY_MEASURES_MAX][ENTRY_MEASURE_NAME_MAX + 1];
    uint8_t  evalset_hash[32];           /* zero when no evaluation-based measure */
    uint8_t  seed[32];                   /* credit_round_seed() */
    uint64_t evaluations;                /* model evaluations spent */
    uint8_t  exact;                      /* shapley computed exactly (1) or GTG (0) */
    double   base_loss, model_loss;      /* evaluation loss of the base and the round's
                                            model; NaN without evaluation */
    uint32_t n;                          /* members, in member-id order */
    struct entry_member_score *members;
};

/* One member's credit: its share under credit_weights and its share per measure. */
struct entry_credit_share {
    char     member[ENTRY_ID_MAX + 1];
    double   share;                      /* the credit: sum_m w_m share_m / sum_m w_m */
    double   measure_share[ENTRY_MEASURES_MAX];
    uint64_t rounds;                     /* rounds in which it was scored */
};

/* credits: written when an experiment finishes (credit/shares.h has the normalization). */
struct entry_credits {
    char     experiment[ENTRY_ID_MAX + 1];
    uint64_t rounds;                     /* rounds scored */
    uint32_t n_measures;
    char     measures[ENTRY_MEASURES_MAX][ENTRY_MEASURE_NAME_MAX + 1];
    double   weights[ENTRY_MEASURES_MAX];
    uint32_t n;                          /* members, in member-id order */
    struct entry_credit_share *members;
};

struct entry {
    enum entry_type type;
    int64_t         timestamp_ms;        /* unix ms, set by the writer */
    union {
        struct entry_genesis         genesis;
        struct entry_member_added    member_added;
        struct entry_member_removed  member_removed;
        struct entry_key_rotated     key_rotated;
        struct entry_motion          motion;       /* POLICY_ / CHARTER_ / CANCEL_PROPOSED */
        struct entry_proposal_decided decided;
        struct entry_vote            vote;
        struct entry_experiment      experiment;   /* the four EXPERIMENT_* types */
        struct entry_update          update;       /* UPDATE_ACCEPTED, UPDATE_REJECTED */
        struct entry_round_closed    round_closed;
        struct entry_contribution_scores scores;  /* CONTRIBUTION_SCORES */
        struct entry_credits         credits;      /* CREDITS */
        struct entry_roster_proposed roster_proposed;
    } u;
};

/* "update_accepted", ...; NULL for an unknown type. */
const char *entry_type_name(enum entry_type t);

/* Encodes e into a malloc'd buffer (*out, *len); the caller frees *out.
 * Validates first: LEDGER_ERR_ENTRY_TYPE, LEDGER_ERR_ENTRY_ID, LEDGER_ERR_ENTRY_FIELD
 * (a string with a NUL byte or over its limit, a flag other than 0/1). */
int entry_encode(const struct entry *e, uint8_t **out, size_t *len);

/* Decodes untrusted bytes into *e (zeroed first). On success the caller calls
 * entry_free(e); on failure nothing needs freeing. Every length is checked
 * against what remains; ids are checked; strings may not contain NUL. */
int entry_decode(const uint8_t *data, size_t len, struct entry *e);

/* Frees what entry_decode allocated and zeroes *e. Only for decoded entries. */
void entry_free(struct entry *e);

/* JSON object, one line, malloc'd, NUL-terminated: {"type":"update_accepted",
 * "timestamp_ms":...,"time":"2026-...Z", fields...}. Hashes, keys and
 * signatures are lower-case hex; roles an array of names; non-finite numbers null.
 * Returns NULL when out of memory. The caller frees. */
char *entry_to_json(const struct entry *e);

/* One line for people, e.g. "update accepted: fpt, gpt2-vi round 3, 1.20M tokens,
 * payload 3f2a9c01…, loss 2.3140". Truncated to cap; returns what snprintf would. */
int entry_describe(const struct entry *e, char *buf, size_t cap);

#endif
