#ifndef AULAC_POLICIES_POLICY_H
#define AULAC_POLICIES_POLICY_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Experiment policies: the YAML file a researcher proposes and the members vote on.
 *
 *   struct policy p;
 *   struct policy_error err;
 *   if (policy_load_file("demo.yaml", &p, &err) != 0) {
 *       fprintf(stderr, "%s\n", err.message);   // demo.yaml:12:5: training.local_steps: ...
 *       ...
 *   }
 *   uint8_t h[POLICY_HASH_LEN];
 *   policy_hash(&p, h);
 *   policy_free(&p);
 *
 * Every key, type, default and range is documented in policies/README.md. Parsing is
 * strict: unknown keys, duplicate keys, wrong types, out-of-range values, numbers with a
 * leading zero, anchors, aliases, tags, directives other than %YAML 1.2 and
 * multi-document streams are errors naming file:line:column and the key path. So is a
 * key the code does not apply (server momentum with outer fedavg, governance...:
 * POLICY_ERR_UNIMPLEMENTED, "not implemented yet"): what a policy says is what runs. The hash is taken over a canonical encoding of the parsed values (with defaults
 * filled in), so comments, key order, formatting and spelling out a default do not
 * change it. */

/* Error codes (range -1200..-1299). */
#define POLICY_ERR_IO           (-1200) /* the file could not be read */
#define POLICY_ERR_SYNTAX       (-1201) /* not well-formed YAML */
#define POLICY_ERR_UNKNOWN_KEY  (-1202)
#define POLICY_ERR_DUPLICATE    (-1203) /* a key appears twice in one mapping / list item twice */
#define POLICY_ERR_TYPE         (-1204) /* e.g. a string where an integer is expected */
#define POLICY_ERR_RANGE        (-1205) /* a value outside its documented range */
#define POLICY_ERR_MISSING      (-1206) /* a required key is absent */
#define POLICY_ERR_INVALID      (-1207) /* values inconsistent with each other */
#define POLICY_ERR_UNSUPPORTED  (-1208) /* anchors, aliases, tags, several documents */
#define POLICY_ERR_TOO_LARGE    (-1209) /* file, nesting or node count over the limits */
#define POLICY_ERR_NOMEM        (-1210)
#define POLICY_ERR_ARG          (-1211) /* NULL argument */
#define POLICY_ERR_UNIMPLEMENTED (-1212) /* a key or value the code does not apply (not
                                            implemented yet, or no longer a policy's) */
#define POLICY_ERR_SITE_REFUSED (-1220) /* site_check(): the site policy refuses the experiment */

#define POLICY_SCHEMA_VERSION   1
#define POLICY_NAME_MAX         64      /* metadata.name: [a-z0-9._-]{1,64} */
#define POLICY_ID_MAX           32      /* member ids, proposer: [a-z0-9._-]{1,32} */
#define POLICY_DESCRIPTION_MAX  4096    /* bytes of metadata.description */
#define POLICY_MAX_MEMBERS      1024
#define POLICY_FILE_MAX         (1u << 20)  /* policy files larger than 1 MiB are refused */
#define POLICY_MAX_PARAMETERS   (1ull << 36) /* models must have fewer parameters: the trainer's
                                                bound (model/gpt2.h GPT2_MAX_PARAMS) */
#define POLICY_HASH_LEN         32

/* model.family: the built-in GPT-2 (sizes in the policy; from the seed or from
 * model.init), or any model given as named tensors by its init file (model/layout.h;
 * trained only by plug-in trainers, worker/TRAINER.md). */
enum policy_model_family { POLICY_FAMILY_GPT2 = 0, POLICY_FAMILY_EXTERNAL = 1 };
enum policy_inner_kind { POLICY_INNER_ADAMW = 0 };
enum policy_outer_kind { POLICY_OUTER_FEDAVG = 0, POLICY_OUTER_NESTEROV = 1, POLICY_OUTER_FEDADAM = 2 };
/* aggregation.rule (aggregate/robust.h applies them; policies/README.md documents them). */
enum policy_agg_rule {
    POLICY_AGG_FEDAVG = 0, POLICY_AGG_TRIMMED_MEAN = 1, POLICY_AGG_MEDIAN = 2,
    POLICY_AGG_MULTI_KRUM = 3, POLICY_AGG_CLIP = 4
};
enum policy_weighting { POLICY_WEIGHT_TOKENS = 0, POLICY_WEIGHT_SAMPLES = 1, POLICY_WEIGHT_UNIFORM = 2 };
enum policy_compress_method { POLICY_COMPRESS_NONE = 0, POLICY_COMPRESS_TOPK = 1 };
/* How the coordinator averages a sparse round's updates, coordinate by coordinate:
 * over all members that reported (weight sum of the round), or over the members whose
 * payload carried that coordinate. */
enum policy_average { POLICY_AVERAGE_MEMBERS = 0, POLICY_AVERAGE_SENDERS = 1 };

struct policy_metadata {
    char name[POLICY_NAME_MAX + 1];
    char proposer[POLICY_ID_MAX + 1];   /* "" when not given */
    char *description;                  /* never NULL ("" when not given); owned */
};

/* A file a policy pins by hash (model.init, model.config, model.tokenizer): the
 * coordinator holds it content-addressed and serves it to members
 * (coordinator/artifacts.h); `file` is where the proposer's copy lies, relative to the
 * policy file's directory (it travels in the canonical text but names nothing on other
 * machines; the hash does). present 0 when the key is absent. */
#define POLICY_FILE_NAME_MAX 255
struct policy_file {
    int present;
    char file[POLICY_FILE_NAME_MAX + 1];
    uint8_t blake2b[32];        /* BLAKE2b-256 of the file's bytes */
};

struct policy_model {
    enum policy_model_family family;
    /* external: init required (its tensors are the model); config and tokenizer
     * optional. gpt2: init optional (continued pre-training: its tensors must be the
     * GPT-2 of the sizes below), tokenizer optional (then only plug-in trainers train
     * it: the built-in trainer reads bytes), config refused (the sizes are the config). */
    struct policy_file init, config, tokenizer;
    /* The GPT-2 sizes: family gpt2 only (0 for external; no canonical line then). */
    uint32_t vocab_size;
    uint32_t n_positions;   /* maximum context length (YAML: n_positions or seq_len) */
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_embd;
    uint64_t seed;
};

struct policy_data {
    uint64_t min_tokens_per_member;
    double validation_fraction;
};

struct policy_inner_optimizer {
    enum policy_inner_kind kind;
    double lr, weight_decay, beta1, beta2, eps, grad_clip;   /* grad_clip 0 = off */
    uint32_t warmup_steps;
};

struct policy_outer_optimizer {
    enum policy_outer_kind kind;
    double lr, momentum;        /* momentum: nesterov only (0 for the others) */
    double beta1, beta2, eps;   /* fedadam */
};

struct policy_training {
    uint32_t rounds;
    uint32_t local_steps;       /* H: inner steps per round */
    uint32_t batch_size;        /* sequences per inner step per member */
    uint32_t seq_len;           /* tokens per sequence; gpt2: <= model.n_positions (its
                                   default); external: required */
    struct policy_inner_optimizer inner;
    struct policy_outer_optimizer outer;
};

struct policy_aggregation {
    enum policy_agg_rule rule;  /* default fedavg */
    enum policy_weighting weighting;
    /* clip: each update is scaled to L2 norm <= norm_bound (required, > 0), and refused
     * only above norm_cap (0 = no cap). Other rules: updates with a larger L2 norm than
     * norm_bound are refused (0 = none); norm_cap is an error. */
    double norm_bound;
    double norm_cap;
    double trim;                /* trimmed_mean: beta, the fraction of the values of each
                                   coordinate dropped at each end, in (0, 0.5); required
                                   by trimmed_mean, an error with another rule */
    uint32_t byzantine;         /* multi_krum: f, the faulty members tolerated (>= 1;
                                   needs >= 2f + 3 reporting); required by multi_krum */
    uint32_t select;            /* multi_krum: m, the updates averaged (1..n - f);
                                   0 (default) = n - f of the n that reported */
};

struct policy_link {
    enum policy_compress_method method;
    uint32_t block_size;
    uint32_t k_per_block;       /* == block_size when method is none (dense) */
    double density;             /* k_per_block / block_size (the YAML may give either;
                                   density d means k = ceil(d * block_size)); not hashed */
    enum codec_quant quant;
    int zstd_level;             /* 0 = no zstd stage */
    bool error_feedback;
    uint32_t dense_warmup_rounds;
    /* Uplink only (the downlink's are always 1, members, 1): */
    double error_feedback_decay; /* worker: residual *= decay before each encode */
    enum policy_average average; /* coordinator: how sparse rounds are averaged */
    double sparse_scale;         /* coordinator: multiplies a sparse round's average */
};

struct policy_compression {
    struct policy_link uplink;
    struct policy_link downlink;
};

struct policy_participation {
    /* members: all (or absent): n_members 0, every member of the live roster at each
     * round, members added after approval included. Otherwise the fixed list of
     * n_members (>= 1) ids in file order; owned. */
    char **members;
    size_t n_members;
    uint32_t min_members;
    uint32_t round_deadline_s;
    uint32_t grace_s;
};

/* contribution.measures (policies/README.md, contribution; credit/score.h). */
enum policy_measure {
    POLICY_MEASURE_TOKENS = 0, POLICY_MEASURE_ROUNDS = 1, POLICY_MEASURE_BYTES = 2,
    POLICY_MEASURE_ALIGNMENT = 3, POLICY_MEASURE_LOO = 4, POLICY_MEASURE_SHAPLEY = 5,
    POLICY_MEASURES = 6
};
#define POLICY_EVALSET_NAME_MAX 128

struct policy_contribution {
    uint32_t measures;              /* bit set of 1u << enum policy_measure; default
                                       tokens, rounds, bytes, alignment */
    double credit_weights[POLICY_MEASURES];   /* [0, 1e6]; without credit_weights 1 for
                                       each measure listed; with it, the weights given and 0
                                       for a listed measure it leaves out; 0 for a measure
                                       not listed (a weight on one is an error); not all 0 */
    /* evaluation_set: required by loo and shapley; has_evalset 0 when absent. */
    int has_evalset;
    char evalset_name[POLICY_EVALSET_NAME_MAX + 1];   /* file name the coordinator holds */
    uint8_t evalset_hash[32];       /* BLAKE2b-256 of the file's bytes */
    uint32_t eval_windows;          /* windows of training.seq_len bytes; default 16 */
    uint32_t shapley_budget;        /* model evaluations per round; default 64 */
    double shapley_truncation;      /* within-round, relative to |v(N)|; default 0.01 */
    double round_truncation;        /* between-round, |v(N)| in nats; default 1e-4 */
    uint32_t payload_retention_days;/* accepted payloads kept after the experiment ends;
                                       default 30 */
};

/* Name of a measure ("tokens", "shapley", ...), NULL out of range; and back (-1). */
const char *policy_measure_name(enum policy_measure m);
int policy_measure_parse(const char *name);

/* privacy (member-level DP-FedAvg; PRIVACY.md, aggregate/robust.h agg_dp_noise,
 * privacy/rdp.h). enabled 0 when the section is absent (then every other field is 0). */
struct policy_privacy {
    int enabled;
    double clip;                /* C > 0: each member's decoded update scaled to L2 <= C */
    double noise_multiplier;    /* z >= 0: Gaussian noise of std z * C on the round's sum */
    double delta;               /* the delta epsilon is reported at; default 1e-5, (0, 0.1] */
    double target_epsilon;      /* > 0: the experiment ends before a round would pass it;
                                   0 = none (absent) */
};

struct policy {
    uint32_t schema;
    struct policy_metadata metadata;
    struct policy_model model;
    struct policy_data data;
    struct policy_training training;
    struct policy_aggregation aggregation;
    struct policy_compression compression;
    struct policy_participation participation;
    struct policy_contribution contribution;
    struct policy_privacy privacy;
};

/* Where and why parsing failed. message is the whole line for a person:
 * "demo.yaml:12:5: training.local_steps: expected a positive integer, got \"ten\"".
 * line and column are 1-based (0 when the error has no position, e.g. POLICY_ERR_IO). */
struct policy_error {
    int code;
    int line, column;
    char path[128];             /* key path, "" when none (syntax errors) */
    char message[768];
};

/* Every error one check found, in file order (line, then column; errors at one place
 * in the order found), so that a researcher fixes them all in one pass:
 *
 *   demo.yaml:6:3: model.n_layers: unknown key (did you mean "n_layer"?)
 *   demo.yaml:11:11: training.rounds: expected a positive integer, got "ten"
 *   ...
 *
 * The walk goes on after an error in a key (unknown, duplicate, wrong type, out of range,
 * missing, not implemented yet) with the next key. An error that leaves nothing to walk
 * (YAML syntax, file size, nesting, nodes, anchors and aliases, a top level that is no
 * mapping) is the only one. The cross-field rules (POLICY_ERR_INVALID...) run only when
 * the walk found no error, so that one bad value does not bring bogus follow-ups.
 * At most POLICY_ERRORS_MAX are kept, the first in file order; total counts them all. */
#define POLICY_ERRORS_MAX 50
struct policy_errors {
    size_t n;                   /* kept in item[], <= POLICY_ERRORS_MAX */
    size_t total;               /* found; total - n were left out (the last in file order) */
    struct policy_error item[POLICY_ERRORS_MAX];
};

/* Adds e in file order; when the list is full the last in file order is left out (and
 * counted in total). */
void policy_errors_add(struct policy_errors *l, const struct policy_error *e);

/* The line that ends a list with errors left out: "... and 12 more errors" into out
 * (at most cap bytes with the NUL). Returns the number left out; 0 (out "") when none. */
size_t policy_errors_more(const struct policy_errors *l, char *out, size_t cap);

/* Parses and validates a policy as policy_load_buffer() does, recording every error in
 * *errors (cleared first; required). out may be NULL (only the verdict is wanted);
 * otherwise, on success, it holds the policy (release with policy_free()) and on failure
 * it is left empty. Returns 0, or the code of the first error (errors->item[0].code),
 * POLICY_ERR_NOMEM (then the only error) or POLICY_ERR_ARG. */
int policy_check_buffer(const char *name, const void *bytes, size_t len, struct policy *out,
                        struct policy_errors *errors) __attribute__((warn_unused_result));

/* Same for a file (read as policy_read_file() does: an unreadable file, a FIFO or one over
 * 1 MiB is the only error). The file name in messages is path as given. */
int policy_check_file(const char *path, struct policy *out, struct policy_errors *errors)
    __attribute__((warn_unused_result));

/* Parses and validates a policy file. On success fills *out (release with
 * policy_free()) and returns 0; otherwise returns a POLICY_ERR_* code, describes it in
 * *err (which may be NULL) and leaves *out empty (policy_free() on it is harmless).
 * The error is the first in file order of those policy_check_file() finds.
 * The file name in messages is path as given. */
int policy_load_file(const char *path, struct policy *out, struct policy_error *err)
    __attribute__((warn_unused_result));

/* Reads a policy file as policy_load_file() does, for a caller that keeps its bytes:
 * only a regular file of at most POLICY_FILE_MAX bytes (a FIFO or a device is refused
 * without blocking on it). *buf is malloc'd and NUL-terminated; caller frees. Returns
 * 0, POLICY_ERR_IO or POLICY_ERR_TOO_LARGE with err filled. */
int policy_read_file(const char *path, uint8_t **buf, size_t *len, struct policy_error *err)
    __attribute__((warn_unused_result));

/* Same, from memory; name is used in messages ("demo.yaml"). bytes need not be
 * NUL-terminated. */
int policy_load_buffer(const char *name, const void *bytes, size_t len,
                       struct policy *out, struct policy_error *err)
    __attribute__((warn_unused_result));

/* Releases what a loaded policy owns and zeroes it. */
void policy_free(struct policy *p);

/* The canonical encoding (policies/README.md): sorted "key.path=value\n" lines behind a
 * header line. *out is malloc'd and NUL-terminated (not counted in *len); caller frees.
 * Returns 0 or POLICY_ERR_NOMEM / POLICY_ERR_ARG. */
int policy_canonical(const struct policy *p, char **out, size_t *len);

/* BLAKE2b-256 of policy_canonical(). Returns 0 or POLICY_ERR_NOMEM / POLICY_ERR_ARG. */
int policy_hash(const struct policy *p, uint8_t out[POLICY_HASH_LEN]);

/* One key whose canonical value differs: path "training.rounds", a_value and b_value as
 * the canonical encoding writes them ("12", "0.003", "fpt,hust", "*" for members: all);
 * NULL for a key only one side has (a pinned model file given on one side only, the
 * GPT-2 sizes of a gpt2 policy against an external one). The strings are
 * valid during the call. A non-zero return stops policy_diff, which returns it. */
typedef int (*policy_diff_fn)(const char *path, const char *a_value, const char *b_value,
                              void *arg);

/* Compares a and b key by key over their canonical encodings (defaults filled in, so
 * formatting and spelled-out defaults never differ), calling fn (may be NULL) for each
 * difference in key order. *n_diff (may be NULL) gets the number of differences: 0
 * exactly when the hashes are equal. Returns 0, POLICY_ERR_NOMEM / POLICY_ERR_ARG, or
 * what fn returned. */
int policy_diff(const struct policy *a, const struct policy *b, policy_diff_fn fn, void *arg,
                size_t *n_diff);
/* The id an approved policy runs as: "<metadata.name>-<first 8 hex of hash>" (the name
 * cut to 55 bytes, so the id fits the 64-byte id rule), so a changed policy never
 * reuses another's id. hash is policy_hash(p). Writes at most cap bytes with the NUL;
 * cap >= POLICY_EXPERIMENT_ID_MAX + 1 always fits. Returns 0 or POLICY_ERR_ARG. */
#define POLICY_EXPERIMENT_ID_MAX 64
int policy_experiment_id(const struct policy *p, const uint8_t hash[POLICY_HASH_LEN], char *out,
                         size_t cap);

/* A policy document's hash and experiment id (policy_load_buffer, policy_hash and
 * policy_experiment_id in one): what a proposal of it signs. id needs
 * POLICY_EXPERIMENT_ID_MAX + 1 bytes. 0, or a POLICY_ERR_* with err filled. */
int policy_identify(const char *name, const void *bytes, size_t len,
                    uint8_t hash[POLICY_HASH_LEN], char *id, size_t cap,
                    struct policy_error *err) __attribute__((warn_unused_result));

/* Same, with every error of the document in *errors (policy_check_buffer()): what a
 * proposer is told. */
int policy_identify_all(const char *name, const void *bytes, size_t len,
                        uint8_t hash[POLICY_HASH_LEN], char *id, size_t cap,
                        struct policy_errors *errors) __attribute__((warn_unused_result));

/* Number of trainable parameters of the policy's GPT-2 model (tied LM head); 0 for
 * family external, whose count is its init file's (policies/model_source.h
 * policy_model_layout). */
uint64_t policy_model_parameters(const struct policy_model *m);

/* Index of member id in participation.members, or -1. */
int policy_member_index(const struct policy *p, const char *member);

/* Whether member takes part: participation.members lists it, or is `all` (then every
 * member of the roster takes part; the caller checks the roster). */
bool policy_takes_part(const struct policy *p, const char *member);

/* participation.members is `all` (the live roster), not a fixed list. */
bool policy_all_members(const struct policy *p);

/* Names used in the YAML for the enums ("nesterov", "krum", "int8", ...). */
const char *policy_outer_kind_name(enum policy_outer_kind k);
const char *policy_agg_rule_name(enum policy_agg_rule r);
const char *policy_weighting_name(enum policy_weighting w);
const char *policy_quant_name(enum codec_quant q);

/* Words for any POLICY_ERR_* code. */
const char *policy_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
