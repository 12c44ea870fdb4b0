#include "policies/policy.h"

#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/schema.h"

_Static_assert(sizeof(enum policy_outer_kind) == sizeof(int) &&
               sizeof(enum codec_quant) == sizeof(int) &&
               sizeof(enum policy_model_family) == sizeof(int),
               "enums are stored through int pointers by the schema walker");

static const char *const family_names[] = {"gpt2", "external", NULL};
static const char *const inner_names[] = {"adamw", NULL};
static const char *const outer_names[] = {"fedavg", "nesterov", "fedadam", NULL};
static const char *const rule_names[] = {"fedavg", "trimmed_mean", "median", "multi_krum", "clip", NULL};
static const char *const weighting_names[] = {"tokens", "samples", "uniform", NULL};
static const char *const method_names[] = {"none", "topk", NULL};
static const char *const average_names[] = {"members", "senders", NULL};
/* Indexed by enum policy_measure. */
static const char *const measure_names[] = {"tokens", "rounds", "bytes", "alignment", "loo",
                                            "shapley", NULL};
_Static_assert(sizeof measure_names / sizeof measure_names[0] == POLICY_MEASURES + 1,
               "a name for every measure");
/* Indexed by enum codec_quant. */
static const char *const quant_names[] = {"fp32", "int8", "fp16", "fp8", "int4", NULL};

#define OFF(fld) offsetof(struct policy, fld)
#define U32(k, fld, lo, hi, fl) \
    {.key = k, .type = SF_U32, .off = OFF(fld), .imin = lo, .imax = hi, .flags = fl}
#define U64(k, fld, lo, hi, fl) \
    {.key = k, .type = SF_U64, .off = OFF(fld), .imin = lo, .imax = hi, .flags = fl}
#define INT(k, fld, lo, hi, fl) \
    {.key = k, .type = SF_INT, .off = OFF(fld), .imin = lo, .imax = hi, .flags = fl}
#define F64(k, fld, lo, hi, fl) \
    {.key = k, .type = SF_F64, .off = OFF(fld), .fmin = lo, .fmax = hi, .flags = fl}
#define BOOL(k, fld) {.key = k, .type = SF_BOOL, .off = OFF(fld)}
#define ENUM(k, fld, nm) {.key = k, .type = SF_ENUM, .off = OFF(fld), .names = nm}
/* Not applied by the code: refused whatever the value (see policies/README.md, "Key
 * status"). */
#define REFUSED(k, why) {.key = k, .type = SF_SECTION, .flags = SF_REFUSED, .note = why}
#define SECTION(k, ch, fl) {.key = k, .type = SF_SECTION, .children = ch, .flags = fl}
#define END {.key = NULL}

static const struct sfield metadata_fields[] = {
    {.key = "name", .type = SF_ID, .off = OFF(metadata.name), .imax = POLICY_NAME_MAX,
     .flags = SF_REQUIRED},
    {.key = "proposer", .type = SF_ID, .off = OFF(metadata.proposer), .imax = POLICY_ID_MAX},
    {.key = "description", .type = SF_TEXT, .off = OFF(metadata.description),
     .imax = POLICY_DESCRIPTION_MAX},
    END,
};

/* The GPT-2 sizes are its own: required with family gpt2 (post_model refuses them with
 * external, and they are 0, so without a canonical line, there). */
static bool family_gpt2(const void *base)
{
    return ((const struct policy *)base)->model.family == POLICY_FAMILY_GPT2;
}
#define GPT2_SIZE(k, fld, lo, hi, fl)                                                        \
    {.key = k, .type = SF_U32, .off = OFF(fld), .imin = lo, .imax = hi,                    \
     .flags = (fl) | SF_OMIT_ZERO, .required_if = family_gpt2}

/* A pinned file (model.init, model.config, model.tokenizer): {file, blake2b}; no
 * canonical line unless given. */
#define PINNED_FIELDS(which)                                                               \
    {.key = "file", .type = SF_RELPATH, .off = OFF(model.which.file),                     \
     .imax = POLICY_FILE_NAME_MAX, .flags = SF_REQUIRED},                                  \
    {.key = "blake2b", .type = SF_HEX32, .off = OFF(model.which.blake2b),                 \
     .flags = SF_REQUIRED},                                                                \
    END
static const struct sfield init_fields[] = {PINNED_FIELDS(init)};
static const struct sfield config_fields[] = {PINNED_FIELDS(config)};
static const struct sfield tokenizer_fields[] = {PINNED_FIELDS(tokenizer)};
#define PINNED(k, which)                                                                   \
    {.key = k, .type = SF_SECTION, .children = which##_fields,                             \
     .off = OFF(model.which.present), .flags = SF_PRESENT}

static const struct sfield model_fields[] = {
    ENUM("family", model.family, family_names),
    /* tokens are bytes: the trainer needs at least 256 rows (model/trainer.h) */
    GPT2_SIZE("vocab_size", model.vocab_size, 256, 1u << 20, 0),
    {.key = "n_positions", .alias = "seq_len", .type = SF_U32, .off = OFF(model.n_positions),
     .imin = 1, .imax = 1u << 16, .flags = SF_REQUIRED | SF_OMIT_ZERO,
     .required_if = family_gpt2},
    GPT2_SIZE("n_layer", model.n_layer, 1, 1024, SF_REQUIRED),
    GPT2_SIZE("n_head", model.n_head, 1, 1024, SF_REQUIRED),
    GPT2_SIZE("n_embd", model.n_embd, 1, 1u << 16, SF_REQUIRED),
    PINNED("init", init),
    PINNED("config", config),
    PINNED("tokenizer", tokenizer),
    U64("seed", model.seed, 0, UINT64_MAX, 0),
    END,
};

static const struct sfield data_fields[] = {
    U64("min_tokens_per_member", data.min_tokens_per_member, 0, UINT64_C(1) << 62, 0),
    F64("validation_fraction", data.validation_fraction, 0, 0.5, 0),
    END,
};

static const struct sfield inner_fields[] = {
    ENUM("kind", training.inner.kind, inner_names),
    F64("lr", training.inner.lr, 0, 10, SF_MIN_EXCL),
    F64("weight_decay", training.inner.weight_decay, 0, 10, 0),
    F64("beta1", training.inner.beta1, 0, 1, SF_MAX_EXCL),
    F64("beta2", training.inner.beta2, 0, 1, SF_MAX_EXCL),
    F64("eps", training.inner.eps, 0, 1, SF_MIN_EXCL),
    F64("grad_clip", training.inner.grad_clip, 0, 1e6, 0),
    U32("warmup_steps", training.inner.warmup_steps, 0, 1000000000, 0),
    END,
};

static const struct sfield outer_fields[] = {
    ENUM("kind", training.outer.kind, outer_names),
    F64("lr", training.outer.lr, 0, 10, SF_MIN_EXCL),
    F64("momentum", training.outer.momentum, 0, 1, SF_MAX_EXCL),
    F64("beta1", training.outer.beta1, 0, 1, SF_MAX_EXCL),
    F64("beta2", training.outer.beta2, 0, 1, SF_MAX_EXCL),
    F64("eps", training.outer.eps, 0, 1, SF_MIN_EXCL),
    END,
};

static const struct sfield training_fields[] = {
    U32("rounds", training.rounds, 1, 10000000, SF_REQUIRED),
    U32("local_steps", training.local_steps, 1, 10000000, 0),
    U32("batch_size", training.batch_size, 1, 65536, 0),
    U32("seq_len", training.seq_len, 1, 1u << 16, 0),
    SECTION("inner", inner_fields, 0),
    SECTION("outer", outer_fields, 0),
    END,
};

/* aggregation (policies/README.md): the rule that turns a round's updates into its
 * average (aggregate/robust.h applies it). Which keys go with which rule, and what the
 * members present must allow, is checked in post_aggregation. */
static const struct sfield aggregation_fields[] = {
    ENUM("rule", aggregation.rule, rule_names),
    ENUM("weighting", aggregation.weighting, weighting_names),
    F64("norm_bound", aggregation.norm_bound, 0, INFINITY, 0),
    F64("norm_cap", aggregation.norm_cap, 0, INFINITY, 0),
    /* trim_fraction and krum_byzantine before issue 13 (refused then) */
    {.key = "trim", .type = SF_F64, .off = OFF(aggregation.trim), .fmin = 0, .fmax = 0.5,
     .flags = SF_MIN_EXCL | SF_MAX_EXCL, .was = "trim_fraction"},
    {.key = "byzantine", .type = SF_U32, .off = OFF(aggregation.byzantine), .imin = 1,
     .imax = POLICY_MAX_MEMBERS, .was = "krum_byzantine"},
    U32("select", aggregation.select, 1, POLICY_MAX_MEMBERS, 0),
    END,
};

#define LINK_FIELDS(L)                                                                     \
    ENUM("method", compression.L.method, method_names),                                    \
    U32("block_size", compression.L.block_size, 1, CODEC_MAX_BLOCK, 0),                    \
    U32("k_per_block", compression.L.k_per_block, 1, CODEC_MAX_BLOCK, 0),                  \
    F64("density", compression.L.density, 0, 1, SF_MIN_EXCL | SF_NOHASH),                 \
    ENUM("quant", compression.L.quant, quant_names),                                       \
    INT("zstd_level", compression.L.zstd_level, 0, 22, 0),                                 \
    BOOL("error_feedback", compression.L.error_feedback),                                  \
    U32("dense_warmup_rounds", compression.L.dense_warmup_rounds, 0, 10000000, 0)

/* The uplink also says how the worker's residual decays and how the coordinator
 * averages sparse updates (policies/README.md, compression). */
static const struct sfield uplink_fields[] = {
    LINK_FIELDS(uplink),
    F64("error_feedback_decay", compression.uplink.error_feedback_decay, 0, 1, SF_MIN_EXCL),
    ENUM("average", compression.uplink.average, average_names),
    F64("sparse_scale", compression.uplink.sparse_scale, 0, 100, SF_MIN_EXCL),
    END,
};
static const struct sfield downlink_fields[] = {LINK_FIELDS(downlink), END};

static const struct sfield compression_fields[] = {
    SECTION("uplink", uplink_fields, 0),
    SECTION("downlink", downlink_fields, 0),
    END,
};

static const struct sfield participation_fields[] = {
    {.key = "members", .type = SF_IDLIST, .off = OFF(participation.members),
     .off2 = OFF(participation.n_members), .imax = POLICY_MAX_MEMBERS, .flags = SF_ALL},
    U32("min_members", participation.min_members, 1, POLICY_MAX_MEMBERS, 0),
    U32("round_deadline_s", participation.round_deadline_s, 1, 7 * 86400, 0),
    U32("grace_s", participation.grace_s, 0, 86400, 0),
    END,
};

/* contribution (policies/README.md): what the coordinator measures of each member's
 * updates, and how the measures weigh in its credit. Cross-field rules in post_contribution. */
static const struct sfield evaluation_set_fields[] = {
    {.key = "name", .type = SF_FILENAME, .off = OFF(contribution.evalset_name),
     .imax = POLICY_EVALSET_NAME_MAX, .flags = SF_REQUIRED},
    {.key = "blake2b", .type = SF_HEX32, .off = OFF(contribution.evalset_hash),
     .flags = SF_REQUIRED},
    U32("windows", contribution.eval_windows, 1, 4096, 0),
    END,
};

static const struct sfield shapley_fields[] = {
    U32("budget", contribution.shapley_budget, 1, 1000000, 0),
    F64("truncation", contribution.shapley_truncation, 0, 1, SF_MAX_EXCL),
    F64("round_truncation", contribution.round_truncation, 0, 10, 0),
    END,
};

static const struct sfield contribution_fields[] = {
    {.key = "measures", .type = SF_ENUMSET, .off = OFF(contribution.measures),
     .names = measure_names},
    {.key = "credit_weights", .type = SF_WEIGHTS, .off = OFF(contribution.credit_weights),
     .names = measure_names, .fmin = 0, .fmax = 1e6},
    SECTION("evaluation_set", evaluation_set_fields, 0),
    SECTION("shapley", shapley_fields, 0),
    U32("payload_retention_days", contribution.payload_retention_days, 0, 36500, 0),
    END,
};

/* privacy (policies/README.md, PRIVACY.md): member-level DP-FedAvg. Absent: no clipping,
 * no noise, every field 0 (so clip=0 in the canonical encoding says "absent": a given
 * clip is > 0). Cross-field rules in post_privacy. */
static const struct sfield privacy_fields[] = {
    F64("clip", privacy.clip, 0, INFINITY, SF_MIN_EXCL | SF_REQUIRED),
    F64("noise_multiplier", privacy.noise_multiplier, 0, INFINITY, SF_REQUIRED),
    F64("delta", privacy.delta, 0, 0.1, SF_MIN_EXCL),
    F64("target_epsilon", privacy.target_epsilon, 0, INFINITY, SF_MIN_EXCL),
    END,
};

static const struct sfield policy_fields[] = {
    U32("schema", schema, 1, 1000, SF_REQUIRED),
    SECTION("metadata", metadata_fields, SF_REQUIRED),
    SECTION("model", model_fields, SF_REQUIRED),
    SECTION("data", data_fields, 0),
    SECTION("training", training_fields, SF_REQUIRED),
    SECTION("aggregation", aggregation_fields, 0),
    SECTION("compression", compression_fields, 0),
    SECTION("participation", participation_fields, 0),
    SECTION("privacy", privacy_fields, 0),
    SECTION("contribution", contribution_fields, 0),
    REFUSED("governance", "not part of an experiment policy any more: the quorum is the "
            "alliance charter's (charter.quorum in the roster file); remove the section"),
    END,
};

static void link_defaults(struct policy_link *l, bool uplink)
{
    l->method = uplink ? POLICY_COMPRESS_TOPK : POLICY_COMPRESS_NONE;
    l->block_size = 4096;
    l->k_per_block = 0;         /* derived after parsing */
    l->density = 0;
    l->quant = uplink ? CODEC_QUANT_INT8 : CODEC_QUANT_FP32;
    l->zstd_level = 3;
    l->error_feedback = uplink;
    l->dense_warmup_rounds = 0;
    l->error_feedback_decay = 1.0;
    l->average = POLICY_AVERAGE_MEMBERS;
    l->sparse_scale = 1.0;
}

static void policy_defaults(struct policy *p)
{
    memset(p, 0, sizeof *p);
    p->model.family = POLICY_FAMILY_GPT2;
    p->model.vocab_size = 256;
    p->model.seed = 1337;
    p->data.min_tokens_per_member = 0;
    p->data.validation_fraction = 0.01;
    p->training.local_steps = 100;
    p->training.batch_size = 8;
    p->training.seq_len = 0;    /* model.n_positions unless given */
    p->training.inner.kind = POLICY_INNER_ADAMW;
    p->training.inner.lr = 6e-4;
    p->training.inner.weight_decay = 0.1;
    p->training.inner.beta1 = 0.9;
    p->training.inner.beta2 = 0.95;
    p->training.inner.eps = 1e-8;
    p->training.inner.grad_clip = 1.0;
    p->training.outer.kind = POLICY_OUTER_FEDAVG;
    /* lr and momentum depend on the kind: filled after parsing unless given. */
    p->training.outer.beta1 = 0.9;
    p->training.outer.beta2 = 0.99;
    p->training.outer.eps = 1e-3;
    p->aggregation.rule = POLICY_AGG_FEDAVG;
    p->aggregation.weighting = POLICY_WEIGHT_TOKENS;
    link_defaults(&p->compression.uplink, true);
    link_defaults(&p->compression.downlink, false);
    p->participation.round_deadline_s = 600;
    p->participation.grace_s = 30;
    struct policy_contribution *c = &p->contribution;
    c->measures = 1u << POLICY_MEASURE_TOKENS | 1u << POLICY_MEASURE_ROUNDS |
                  1u << POLICY_MEASURE_BYTES | 1u << POLICY_MEASURE_ALIGNMENT;
    /* credit_weights: 1 per listed measure unless given, filled after parsing */
    c->eval_windows = 16;
    c->shapley_budget = 64;
    c->shapley_truncation = 0.01;
    c->round_truncation = 1e-4;
    c->payload_retention_days = 30;
}

/* --- cross-field rules ----------------------------------------------------- */

struct post {
    struct schema_ctx *ctx;
    const char *file;
    struct policy_error *err;
};

/* Error located at path's value when the file gave it, else at the key of fallback,
 * else at the top. */
static int fail_at(struct post *pc, int code, const char *path, const char *fallback,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int fail_at(struct post *pc, int code, const char *path, const char *fallback,
                   const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    const struct schema_seen *s = schema_seen(pc->ctx, path);
    int line = 1, column = 1;
    if (s) {
        line = s->vline;
        column = s->vcolumn;
    } else if (fallback && (s = schema_seen(pc->ctx, fallback)) != NULL) {
        line = s->line;
        column = s->column;
    }
    yaml_error(pc->err, code, pc->file, line, column, path, "%s", detail);
    return code;
}

static bool seen(struct post *pc, const char *path)
{
    return schema_seen(pc->ctx, path) != NULL;
}

/* Error located at the key of path (a section given in the file). */
static int fail_at_key(struct post *pc, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at_key(struct post *pc, int code, const char *path, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    const struct schema_seen *s = schema_seen(pc->ctx, path);
    yaml_error(pc->err, code, pc->file, s ? s->line : 1, s ? s->column : 1, path, "%s", detail);
    return code;
}

/* "tokens, rounds, bytes" of a measure set, in enum order. */
static void measure_set_words(uint32_t set, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int m = 0; m < POLICY_MEASURES && o < cap; m++)
        if (set & (1u << m))
            o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? ", " : "", measure_names[m]);
}

/* contribution: an evaluation set exactly when a measure evaluates models, a shapley
 * section only with shapley, weights only on listed measures (without credit_weights, 1
 * each; with it, the weights given and 0 for a listed measure it leaves out), not all
 * zero. */
static int post_contribution(struct post *pc, struct policy_contribution *c)
{
    char listed[128];
    measure_set_words(c->measures, listed, sizeof listed);
    if (c->measures == 0)
        return fail_at(pc, POLICY_ERR_RANGE, "contribution.measures", "contribution",
                       "lists no measure; list at least one of tokens, rounds, bytes, "
                       "alignment, loo, shapley (or leave the key out for tokens, rounds, "
                       "bytes, alignment)");
    uint32_t evaluated = c->measures & (1u << POLICY_MEASURE_LOO | 1u << POLICY_MEASURE_SHAPLEY);
    c->has_evalset = seen(pc, "contribution.evaluation_set");
    if (evaluated && !c->has_evalset) {
        char which[32];
        measure_set_words(evaluated, which, sizeof which);
        return fail_at(pc, POLICY_ERR_INVALID, "contribution.measures", "contribution",
                       "%s measure%s models on an evaluation set: add contribution.evaluation_set "
                       "(name, blake2b, windows)", evaluated == (1u << POLICY_MEASURE_LOO) ?
                       "loo" : evaluated == (1u << POLICY_MEASURE_SHAPLEY) ? "shapley" :
                       "loo and shapley", strchr(which, ',') ? "" : "s");
    }
    if (!evaluated && c->has_evalset)
        return fail_at_key(pc, POLICY_ERR_INVALID, "contribution.evaluation_set",
                           "only loo and shapley use an evaluation set, and contribution.measures "
                           "lists neither (%s); list one of them or remove the section", listed);
    if (seen(pc, "contribution.shapley") && !(c->measures & (1u << POLICY_MEASURE_SHAPLEY)))
        return fail_at_key(pc, POLICY_ERR_INVALID, "contribution.shapley",
                           "only used by the shapley measure, which contribution.measures does "
                           "not list (%s); list shapley or remove the section", listed);
    /* credit_weights absent: 1 per listed measure; given: those weights, 0 for the rest */
    bool weights_given = seen(pc, "contribution.credit_weights");
    double total = 0;
    for (int m = 0; m < POLICY_MEASURES; m++) {
        char path[64];
        snprintf(path, sizeof path, "contribution.credit_weights.%s", measure_names[m]);
        bool is_listed = c->measures & (1u << m);
        if (!seen(pc, path))
            c->credit_weights[m] = is_listed && !weights_given ? 1 : 0;
        else if (!is_listed)
            return fail_at(pc, POLICY_ERR_INVALID, path, "contribution.credit_weights",
                           "a weight for %s, which contribution.measures does not list (%s); "
                           "list %s or remove its weight", measure_names[m], listed,
                           measure_names[m]);
        total += c->credit_weights[m];
    }
    if (total == 0)
        return fail_at_key(pc, POLICY_ERR_INVALID, "contribution.credit_weights",
                           "every listed measure (%s) weighs 0, so no credit could be computed; "
                           "give at least one a positive weight", listed);
    return 0;
}

static int post_link(struct post *pc, struct policy *p, struct policy_link *l, const char *name)
{
    char pk[64], pd[64], pw[64], sec[24];
    snprintf(sec, sizeof sec, "compression.%.8s", name);
    snprintf(pk, sizeof pk, "%s.k_per_block", sec);
    snprintf(pd, sizeof pd, "%s.density", sec);
    snprintf(pw, sizeof pw, "%s.dense_warmup_rounds", sec);
    bool has_k = seen(pc, pk), has_d = seen(pc, pd);
    char pe[64], pa[64], ps[64];
    snprintf(pe, sizeof pe, "%s.error_feedback_decay", sec);
    snprintf(pa, sizeof pa, "%s.average", sec);
    snprintf(ps, sizeof ps, "%s.sparse_scale", sec);
    if (!l->error_feedback && seen(pc, pe))
        return fail_at(pc, POLICY_ERR_INVALID, pe, sec,
                       "only meaningful with error_feedback: true (there is no residual)");
    if (l->method == POLICY_COMPRESS_NONE) {
        const char *given = has_k ? pk : has_d ? pd : seen(pc, pa) ? pa : seen(pc, ps) ? ps
                          : seen(pc, pw) ? pw : NULL;
        if (given)
            return fail_at(pc, POLICY_ERR_INVALID, given, sec,
                           "only meaningful with method: topk (method is none: every value "
                           "is sent)");
        /* A dense fp32 downlink is off: members fetch the new model itself. */
        static const char *const off_keys[] = {"block_size", "zstd_level", "error_feedback"};
        for (int i = 0; i < 3 && !strcmp(name, "downlink") && l->quant == CODEC_QUANT_FP32;
             i++) {
            char path[64];
            snprintf(path, sizeof path, "%s.%s", sec, off_keys[i]);
            if (seen(pc, path))
                return fail_at(pc, POLICY_ERR_INVALID, path, sec,
                               "not applied: the downlink is off (method none, quant fp32: "
                               "members fetch the new model as it is); compress it (method: "
                               "topk, or another quant) or remove the key");
        }
        l->k_per_block = l->block_size;
    } else {
        if (has_k && has_d)
            return fail_at(pc, POLICY_ERR_INVALID, pd, sec,
                           "give either k_per_block or density, not both");
        if (has_d) {
            double k = ceil(l->density * l->block_size - 1e-9);
            l->k_per_block = k < 1 ? 1 : (k > l->block_size ? l->block_size : (uint32_t)k);
        } else if (!has_k) {
            l->k_per_block = (l->block_size + 99) / 100;   /* 1% */
        } else if (l->k_per_block > l->block_size) {
            return fail_at(pc, POLICY_ERR_INVALID, pk, sec,
                           "k_per_block %u is larger than block_size %u", l->k_per_block,
                           l->block_size);
        }
    }
    l->density = (double)l->k_per_block / l->block_size;
    if (l->dense_warmup_rounds > p->training.rounds) {
        return fail_at(pc, POLICY_ERR_INVALID, pw, sec,
                       "%u warm-up rounds but training.rounds is %u", l->dense_warmup_rounds,
                       p->training.rounds);
    }
    return 0;
}

/* aggregation: each rule's own keys only with it (trim: trimmed_mean; byzantine, select:
 * multi_krum; norm_cap: clip), weighting uniform (its default) for median and trimmed_mean,
 * which weigh every update alike, the keys a rule needs given, and multi_krum's f and m
 * workable with the fewest members a round may close with (participation.min_members,
 * already derived). trimmed_mean needs no such rule: trim < 0.5 drops floor(trim k) <
 * k / 2 values at each end of k, so at least one stays for every k >= 1. */
static int post_aggregation(struct post *pc, struct policy *p)
{
    struct policy_aggregation *a = &p->aggregation;
    const char *rule = policy_agg_rule_name(a->rule);
    static const struct {
        const char *path;
        enum policy_agg_rule rule;
        const char *what;
    } own[] = {
        {"aggregation.trim", POLICY_AGG_TRIMMED_MEAN, "the fraction trimmed at each end"},
        {"aggregation.byzantine", POLICY_AGG_MULTI_KRUM, "the faulty members tolerated"},
        {"aggregation.select", POLICY_AGG_MULTI_KRUM, "the updates averaged"},
        {"aggregation.norm_cap", POLICY_AGG_CLIP, "the norm above which an update is refused "
                                                  "instead of clipped"},
    };
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        if (a->rule != own[i].rule && seen(pc, own[i].path))
            return fail_at(pc, POLICY_ERR_INVALID, own[i].path, NULL,
                           "only used by rule %s (%s); rule is %s: remove the key or use "
                           "rule: %s", policy_agg_rule_name(own[i].rule), own[i].what, rule,
                           policy_agg_rule_name(own[i].rule));
    if (a->rule == POLICY_AGG_MEDIAN || a->rule == POLICY_AGG_TRIMMED_MEAN) {
        /* order statistics count each update once: uniform is what runs */
        if (!seen(pc, "aggregation.weighting"))
            a->weighting = POLICY_WEIGHT_UNIFORM;
        else if (a->weighting != POLICY_WEIGHT_UNIFORM)
            return fail_at(pc, POLICY_ERR_INVALID, "aggregation.weighting", NULL,
                           "weighting %s is not applied by rule %s, whose coordinate-wise "
                           "order statistics count each update once; write weighting: "
                           "uniform or leave the key out", policy_weighting_name(a->weighting),
                           rule);
    }
    const struct policy_participation *pp = &p->participation;
    switch (a->rule) {
    case POLICY_AGG_CLIP:
        if (!seen(pc, "aggregation.norm_bound"))
            return fail_at(pc, POLICY_ERR_MISSING, "aggregation.norm_bound", "aggregation",
                           "rule clip needs norm_bound, the L2 norm each update is scaled "
                           "down to (> 0)");
        if (a->norm_bound == 0)
            return fail_at(pc, POLICY_ERR_INVALID, "aggregation.norm_bound", NULL,
                           "rule clip needs norm_bound > 0, the L2 norm each update is "
                           "scaled down to (0 would zero every update)");
        if (a->norm_cap != 0 && a->norm_cap < a->norm_bound) {
            char cap[40], bound[40];
            schema_format_double(a->norm_cap, cap, sizeof cap);
            schema_format_double(a->norm_bound, bound, sizeof bound);
            return fail_at(pc, POLICY_ERR_INVALID, "aggregation.norm_cap", NULL,
                           "norm_cap %s is below norm_bound %s: updates with a norm between "
                           "them would be refused although clipping brings them to "
                           "norm_bound; give norm_cap >= norm_bound, or 0 for no cap", cap,
                           bound);
        }
        return 0;
    case POLICY_AGG_TRIMMED_MEAN:
        if (!seen(pc, "aggregation.trim"))
            return fail_at(pc, POLICY_ERR_MISSING, "aggregation.trim", "aggregation",
                           "rule trimmed_mean needs trim, the fraction of each coordinate's "
                           "values dropped at each end, in (0, 0.5)");
        return 0;
    case POLICY_AGG_MULTI_KRUM: {
        if (!seen(pc, "aggregation.byzantine"))
            return fail_at(pc, POLICY_ERR_MISSING, "aggregation.byzantine", "aggregation",
                           "rule multi_krum needs byzantine, the number f of faulty members "
                           "tolerated (>= 1; a round then needs 2f + 3 updates)");
        uint64_t f = a->byzantine, need = 2 * f + 3;
        if (pp->n_members && pp->n_members < need) {
            char fix[80];
            if (pp->n_members >= 5)
                snprintf(fix, sizeof fix, "lower byzantine to %zu or less",
                         (pp->n_members - 3) / 2);
            else
                snprintf(fix, sizeof fix, "multi_krum needs at least 5 (byzantine 1)");
            return fail_at(pc, POLICY_ERR_INVALID, "aggregation.byzantine", NULL,
                           "multi_krum with byzantine %llu needs 2f + 3 = %llu updates a "
                           "round, and participation.members lists only %zu members; %s",
                           (unsigned long long)f, (unsigned long long)need, pp->n_members,
                           fix);
        }
        if (pp->min_members < need)
            return fail_at(pc, POLICY_ERR_INVALID, "aggregation.byzantine",
                           "participation.min_members",
                           "multi_krum with byzantine %llu needs 2f + 3 = %llu updates a "
                           "round, and participation.min_members is %u%s, so a round could "
                           "close with fewer; raise min_members to %llu or lower byzantine",
                           (unsigned long long)f, (unsigned long long)need, pp->min_members,
                           seen(pc, "participation.min_members") ? "" : ", its default",
                           (unsigned long long)need);
        if (a->select > pp->min_members - f)
            return fail_at(pc, POLICY_ERR_INVALID, "aggregation.select", NULL,
                           "select %u is more than participation.min_members - byzantine = "
                           "%u - %llu = %llu, the updates multi_krum keeps in a round of "
                           "min_members; lower select or leave it out (n - f of the n that "
                           "report)", a->select, pp->min_members, (unsigned long long)f,
                           (unsigned long long)(pp->min_members - f));
        return 0;
    }
    case POLICY_AGG_FEDAVG:
    case POLICY_AGG_MEDIAN:
        return 0;
    }
    return 0;
}

/* privacy: delta's default, and what DP-FedAvg's accounting assumes of the rest of the
 * policy (PRIVACY.md): each member moves the round's sum by at most clip (rule fedavg or
 * clip, uniform weights, every member's share divided alike: average members), its update
 * is not evaluated on its own (no alignment, loo or shapley measure), and a target
 * epsilon can be met (noise_multiplier > 0). */
static int post_privacy(struct post *pc, struct policy *p)
{
    struct policy_privacy *v = &p->privacy;
    v->enabled = seen(pc, "privacy");
    if (!v->enabled)
        return 0;
    if (!seen(pc, "privacy.delta"))
        v->delta = 1e-5;
    if (v->noise_multiplier == 0 && seen(pc, "privacy.target_epsilon"))
        return fail_at(pc, POLICY_ERR_INVALID, "privacy.target_epsilon", NULL,
                       "a target epsilon with noise_multiplier 0: without noise epsilon is "
                       "infinite from the first round, so no round could run; give "
                       "noise_multiplier > 0 or remove target_epsilon");
    const struct policy_aggregation *a = &p->aggregation;
    if (a->rule != POLICY_AGG_FEDAVG && a->rule != POLICY_AGG_CLIP)
        return fail_at(pc, POLICY_ERR_INVALID, "aggregation.rule", "privacy",
                       "privacy (DP-FedAvg) needs rule fedavg or clip, not %s: its noise is "
                       "calibrated to a sum that each member moves by at most privacy.clip, "
                       "which %s's output is not", policy_agg_rule_name(a->rule),
                       policy_agg_rule_name(a->rule));
    if (a->weighting != POLICY_WEIGHT_UNIFORM)
        return fail_at(pc, POLICY_ERR_INVALID, "aggregation.weighting", "privacy",
                       "privacy needs weighting: uniform (weighting is %s%s): weighted by "
                       "%s, one member's share of the average is not bounded by clip / n, "
                       "the sensitivity the noise is calibrated to",
                       policy_weighting_name(a->weighting),
                       seen(pc, "aggregation.weighting") ? "" : ", the default",
                       policy_weighting_name(a->weighting));
    if (p->compression.uplink.average == POLICY_AVERAGE_SENDERS)
        return fail_at(pc, POLICY_ERR_INVALID, "compression.uplink.average", "privacy",
                       "privacy needs average: members: senders divides each coordinate by "
                       "the members that sent it, so one member's share of a coordinate is "
                       "not bounded by clip / n");
    uint32_t individual = p->contribution.measures &
                          (1u << POLICY_MEASURE_ALIGNMENT | 1u << POLICY_MEASURE_LOO |
                           1u << POLICY_MEASURE_SHAPLEY);
    if (individual) {
        char which[64];
        measure_set_words(individual, which, sizeof which);
        return fail_at(pc, POLICY_ERR_INVALID, "contribution.measures", "privacy",
                       "privacy with the measure%s %s%s: %s each member's update on its own, "
                       "which the noise on the round's sum does not cover (the scores would "
                       "reveal what DP hides); measure tokens, rounds or bytes only",
                       strchr(which, ',') ? "s" : "", which,
                       seen(pc, "contribution.measures") ? "" : " (the default measures)",
                       strchr(which, ',') ? "they evaluate" : "it evaluates");
    }
    return 0;
}

/* model: each family's keys. gpt2: its sizes (required by the walk), init and tokenizer
 * optional, config refused (the sizes are the config). external: init required, the
 * GPT-2 sizes refused (they are 0: no canonical lines), training.seq_len required (no
 * n_positions to default to), and no measure that evaluates models on the coordinator
 * (it runs only the built-in GPT-2). */
static int post_model(struct post *pc, struct policy *p)
{
    struct policy_model *m = &p->model;
    if (m->family == POLICY_FAMILY_GPT2) {
        if (m->config.present)
            return fail_at_key(pc, POLICY_ERR_INVALID, "model.config",
                               "family gpt2 takes no config: the GPT-2 sizes (vocab_size, "
                               "n_positions, n_layer, n_head, n_embd) are the config; remove "
                               "model.config, or use family: external");
        return 0;
    }
    static const char *const sizes[] = {"model.vocab_size", "model.n_positions",
                                        "model.n_layer", "model.n_head", "model.n_embd"};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (seen(pc, sizes[i]))
            return fail_at_key(pc, POLICY_ERR_INVALID, sizes[i],
                               "a size of the built-in GPT-2, not used by family external, "
                               "whose tensors are those of model.init (and of model.config "
                               "when given); remove the key%s", i == 1 ?
                               " (training.seq_len is the sequence length)" : "");
    if (!m->init.present)
        return fail_at(pc, POLICY_ERR_MISSING, "model.init", "model",
                       "family external needs init: {file, blake2b}, the safetensors file "
                       "of round 0's tensors (its names and shapes are the model)");
    if (!seen(pc, "training.seq_len"))
        return fail_at(pc, POLICY_ERR_MISSING, "training.seq_len", "training",
                       "family external needs training.seq_len, the tokens per sequence "
                       "(it has no n_positions to take it from)");
    m->vocab_size = m->n_positions = m->n_layer = m->n_head = m->n_embd = 0;
    uint32_t evaluated = p->contribution.measures &
                         (1u << POLICY_MEASURE_LOO | 1u << POLICY_MEASURE_SHAPLEY);
    if (evaluated) {
        char which[32];
        measure_set_words(evaluated, which, sizeof which);
        return fail_at(pc, POLICY_ERR_UNIMPLEMENTED, "contribution.measures", "contribution",
                       "%s with family external is not implemented: the coordinator "
                       "evaluates only the built-in GPT-2; use tokens, rounds, bytes, "
                       "alignment", which);
    }
    return 0;
}

static int post_training(struct post *pc, struct policy *p);

static int post_validate(struct post *pc, struct policy *p)
{
    int rc;
    if (p->schema != POLICY_SCHEMA_VERSION)
        return fail_at(pc, POLICY_ERR_RANGE, "schema", NULL,
                       "schema version %u is not supported (this aulac reads version %d)",
                       p->schema, POLICY_SCHEMA_VERSION);

    if ((rc = post_model(pc, p)))
        return rc;
    struct policy_model *m = &p->model;
    if (m->family == POLICY_FAMILY_EXTERNAL)
        return post_training(pc, p);
    if (m->n_embd % m->n_head != 0)
        return fail_at(pc, POLICY_ERR_INVALID, "model.n_embd", "model",
                       "n_embd %u is not divisible by n_head %u", m->n_embd, m->n_head);

    uint64_t n_params = policy_model_parameters(m);
    if (n_params >= POLICY_MAX_PARAMETERS) {
        const struct schema_seen *s = schema_seen(pc->ctx, "model");
        yaml_error(pc->err, POLICY_ERR_INVALID, pc->file, s ? s->line : 1, s ? s->column : 1,
                   "model", "the model has %llu parameters (vocab_size %u, n_positions %u, "
                   "n_layer %u, n_embd %u); the trainer takes fewer than 2^36 = %llu",
                   (unsigned long long)n_params, m->vocab_size, m->n_positions, m->n_layer,
                   m->n_embd, (unsigned long long)POLICY_MAX_PARAMETERS);
        return POLICY_ERR_INVALID;
    }

    struct policy_training *t = &p->training;
    if (!seen(pc, "training.seq_len"))
        t->seq_len = m->n_positions;
    else if (t->seq_len > m->n_positions)
        return fail_at(pc, POLICY_ERR_INVALID, "training.seq_len", "training",
                       "seq_len %u is longer than the model's n_positions %u", t->seq_len,
                       m->n_positions);
    return post_training(pc, p);
}

/* Everything after the model's own rules, whatever the family. */
static int post_training(struct post *pc, struct policy *p)
{
    int rc;
    struct policy_training *t = &p->training;
    if (t->inner.warmup_steps > (uint64_t)t->local_steps * t->rounds)
        return fail_at(pc, POLICY_ERR_INVALID, "training.inner.warmup_steps", "training",
                       "%u warm-up steps but the experiment has only %llu inner steps",
                       t->inner.warmup_steps,
                       (unsigned long long)t->local_steps * t->rounds);

    struct policy_outer_optimizer *o = &t->outer;
    if (!seen(pc, "training.outer.lr"))
        o->lr = o->kind == POLICY_OUTER_NESTEROV ? 0.4 : (o->kind == POLICY_OUTER_FEDADAM ? 0.01 : 1.0);
    if (!seen(pc, "training.outer.momentum"))
        o->momentum = o->kind == POLICY_OUTER_NESTEROV ? 0.9 : 0.0;
    if (o->kind == POLICY_OUTER_FEDADAM && seen(pc, "training.outer.momentum"))
        return fail_at(pc, POLICY_ERR_INVALID, "training.outer.momentum", NULL,
                       "not used by fedadam (it takes beta1, beta2, eps)");
    if (o->kind == POLICY_OUTER_FEDAVG && o->momentum != 0)
        return fail_at(pc, POLICY_ERR_UNIMPLEMENTED, "training.outer.momentum", NULL,
                       "server momentum with kind fedavg is not implemented yet (its step "
                       "is lr x the average); use kind: nesterov, or momentum: 0");
    if (o->kind != POLICY_OUTER_FEDADAM) {
        static const char *const adam_keys[] = {"training.outer.beta1", "training.outer.beta2",
                                                "training.outer.eps"};
        for (int i = 0; i < 3; i++)
            if (seen(pc, adam_keys[i]))
                return fail_at(pc, POLICY_ERR_INVALID, adam_keys[i], NULL,
                               "only used by kind: fedadam (kind is %s)",
                               policy_outer_kind_name(o->kind));
    }

    if ((rc = post_link(pc, p, &p->compression.uplink, "uplink")))
        return rc;
    if ((rc = post_link(pc, p, &p->compression.downlink, "downlink")))
        return rc;

    struct policy_participation *pp = &p->participation;
    if (!seen(pc, "participation.min_members"))
        pp->min_members = pp->n_members ? (uint32_t)pp->n_members : 1;
    else if (pp->n_members && pp->min_members > pp->n_members)
        return fail_at(pc, POLICY_ERR_INVALID, "participation.min_members", "participation",
                       "min_members %u is more than the %zu members listed", pp->min_members,
                       pp->n_members);
    if (pp->grace_s > pp->round_deadline_s && seen(pc, "participation.grace_s"))
        return fail_at(pc, POLICY_ERR_INVALID, "participation.grace_s", "participation",
                       "grace_s %u is longer than round_deadline_s %u", pp->grace_s,
                       pp->round_deadline_s);
    if ((rc = post_contribution(pc, &p->contribution)))
        return rc;
    if ((rc = post_aggregation(pc, p)))
        return rc;
    return post_privacy(pc, p);
}

/* --- public ---------------------------------------------------------------- */

/* The cross-field rules (schema_check's post). */
static int policy_post(struct schema_ctx *ctx, void *base)
{
    struct policy *p = base;
    struct post pc = {.ctx = ctx, .file = ctx->file, .err = ctx->err};
    int rc = post_validate(&pc, p);
    if (!rc && !p->metadata.description && !(p->metadata.description = strdup("")))
        rc = POLICY_ERR_NOMEM;
    return rc;
}

int policy_check_buffer(const char *name, const void *bytes, size_t len, struct policy *out,
                        struct policy_errors *errors)
{
    if (!errors)
        return POLICY_ERR_ARG;
    struct policy scratch, *p = out ? out : &scratch;
    policy_defaults(p);
    int rc = schema_check(name ? name : "<policy>", bytes, len, policy_fields, p, policy_post,
                          errors);
    if (rc || !out)
        policy_free(p);
    return rc;
}

int policy_check_file(const char *path, struct policy *out, struct policy_errors *errors)
{
    if (!errors)
        return POLICY_ERR_ARG;
    uint8_t *buf;
    size_t len;
    int rc = yaml_errors_read(path, "policy", &buf, &len, errors);
    if (rc == 0)
        rc = policy_check_buffer(path, buf, len, out, errors);
    else if (out)
        memset(out, 0, sizeof *out);
    free(buf);
    return rc;
}

int policy_load_buffer(const char *name, const void *bytes, size_t len, struct policy *out,
                       struct policy_error *err)
{
    struct policy_errors *all;
    int rc = yaml_errors_new(name, out, sizeof *out, &all, err);
    return rc ? rc : yaml_errors_first(all, policy_check_buffer(name, bytes, len, out, all), err);
}

int policy_load_file(const char *path, struct policy *out, struct policy_error *err)
{
    struct policy_errors *all;
    int rc = yaml_errors_new(path, out, sizeof *out, &all, err);
    return rc ? rc : yaml_errors_first(all, policy_check_file(path, out, all), err);
}

int policy_read_file(const char *path, uint8_t **buf, size_t *len, struct policy_error *err)
{
    return yaml_file_read(path, "policy", buf, len, err);
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    schema_free(policy_fields, p);
    memset(p, 0, sizeof *p);
}

static int cmp_line(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t lx = strcspn(x, "="), ly = strcspn(y, "=");
    int c = memcmp(x, y, lx < ly ? lx : ly);
    if (c)
        return c;
    return lx < ly ? -1 : (lx > ly);
}

#define CANONICAL_HEADER "aulac-policy-canonical/v4\n"

/* The canonical "key.path=value\n" lines of p, sorted by key path. */
static int canonical_lines(const struct policy *p, struct schema_lines *lines)
{
    int rc = schema_canonical(policy_fields, p, "", lines);
    if (rc) {
        schema_lines_free(lines);
        return rc;
    }
    qsort(lines->line, lines->n, sizeof *lines->line, cmp_line);
    return 0;
}

int policy_canonical(const struct policy *p, char **out, size_t *len)
{
    if (!p || !out || !len)
        return POLICY_ERR_ARG;
    *out = NULL;
    *len = 0;
    struct schema_lines lines = {0};
    int rc = canonical_lines(p, &lines);
    if (rc)
        return rc;
    size_t total = strlen(CANONICAL_HEADER) + 1;
    for (size_t i = 0; i < lines.n; i++)
        total += strlen(lines.line[i]);
    char *buf = malloc(total);
    if (!buf) {
        schema_lines_free(&lines);
        return POLICY_ERR_NOMEM;
    }
    size_t o = 0;
    memcpy(buf, CANONICAL_HEADER, strlen(CANONICAL_HEADER));
    o += strlen(CANONICAL_HEADER);
    for (size_t i = 0; i < lines.n; i++) {
        size_t l = strlen(lines.line[i]);
        memcpy(buf + o, lines.line[i], l);
        o += l;
    }
    buf[o] = '\0';
    schema_lines_free(&lines);
    *out = buf;
    *len = o;
    return 0;
}

int policy_hash(const struct policy *p, uint8_t out[POLICY_HASH_LEN])
{
    if (!p || !out)
        return POLICY_ERR_ARG;
    char *canon;
    size_t len;
    int rc = policy_canonical(p, &canon, &len);
    if (rc)
        return rc;
    if (sodium_init() < 0) {
        free(canon);
        return POLICY_ERR_NOMEM;
    }
    crypto_generichash(out, POLICY_HASH_LEN, (const unsigned char *)canon, len, NULL, 0);
    free(canon);
    return 0;
}

/* "key.path=value\n" split into its key (length *klen) and value (copied into val,
 * without the newline). */
static const char *line_value(const char *line, size_t *klen, char **val)
{
    *klen = strcspn(line, "=");
    const char *v = line + *klen + (line[*klen] == '=');
    *val = strndup(v, strcspn(v, "\n"));
    return *val;
}

static int diff_report(policy_diff_fn fn, void *arg, const char *line, size_t klen,
                       const char *a, const char *b)
{
    if (!fn)
        return 0;
    char *path = strndup(line, klen);
    if (!path)
        return POLICY_ERR_NOMEM;
    int rc = fn(path, a, b, arg);
    free(path);
    return rc;
}

int policy_diff(const struct policy *a, const struct policy *b, policy_diff_fn fn, void *arg,
                size_t *n_diff)
{
    if (n_diff)
        *n_diff = 0;
    if (!a || !b)
        return POLICY_ERR_ARG;
    struct schema_lines la = {0}, lb = {0};
    int rc = canonical_lines(a, &la);
    if (rc == 0 && (rc = canonical_lines(b, &lb)) != 0)
        schema_lines_free(&la);
    if (rc)
        return rc;
    size_t i = 0, j = 0, n = 0;
    while (rc == 0 && (i < la.n || j < lb.n)) {
        /* both sorted by key: a merge walk, a key on one side only is NULL on the other */
        int order = i == la.n ? 1 : j == lb.n ? -1 : cmp_line(&la.line[i], &lb.line[j]);
        const char *line = order <= 0 ? la.line[i] : lb.line[j];
        size_t klen;
        char *va = NULL, *vb = NULL;
        if ((order <= 0 && !line_value(la.line[i], &klen, &va)) ||
            (order >= 0 && !line_value(lb.line[j], &klen, &vb))) {
            rc = POLICY_ERR_NOMEM;
        } else if (order != 0 || strcmp(va, vb) != 0) {
            n++;
            rc = diff_report(fn, arg, line, klen, va, vb);
        }
        free(va);
        free(vb);
        i += order <= 0;
        j += order >= 0;
    }
    schema_lines_free(&la);
    schema_lines_free(&lb);
    if (n_diff)
        *n_diff = n;
    return rc;
}

int policy_experiment_id(const struct policy *p, const uint8_t hash[POLICY_HASH_LEN], char *out,
                         size_t cap)
{
    if (!p || !hash || !out || cap == 0)
        return POLICY_ERR_ARG;
    static const char digits[] = "0123456789abcdef";
    char hex[9];
    for (int i = 0; i < 4; i++) {
        hex[2 * i] = digits[hash[i] >> 4];
        hex[2 * i + 1] = digits[hash[i] & 15];
    }
    hex[8] = 0;
    int n = snprintf(out, cap, "%.55s-%s", p->metadata.name, hex);
    return n < 0 || (size_t)n >= cap ? POLICY_ERR_ARG : 0;
}

int policy_identify_all(const char *name, const void *bytes, size_t len,
                        uint8_t hash[POLICY_HASH_LEN], char *id, size_t cap,
                        struct policy_errors *errors)
{
    struct policy p;
    int rc = policy_check_buffer(name, bytes, len, &p, errors);
    if (rc != 0)
        return rc;
    rc = policy_hash(&p, hash);
    if (rc == 0)
        rc = policy_experiment_id(&p, hash, id, cap);
    policy_free(&p);
    if (rc != 0) {
        struct policy_error err = {.code = rc};
        snprintf(err.message, sizeof err.message, "%s: %s", name ? name : "<policy>",
                 policy_strerror(rc));
        policy_errors_add(errors, &err);
    }
    return rc;
}

int policy_identify(const char *name, const void *bytes, size_t len,
                    uint8_t hash[POLICY_HASH_LEN], char *id, size_t cap,
                    struct policy_error *err)
{
    struct policy_errors *all;
    int rc = yaml_errors_new(name, NULL, 0, &all, err);
    return rc ? rc : yaml_errors_first(all, policy_identify_all(name, bytes, len, hash, id,
                                                                  cap, all), err);
}

uint64_t policy_model_parameters(const struct policy_model *m)
{
    if (m->family != POLICY_FAMILY_GPT2)
        return 0;   /* the init file's: policies/model_source.h */
    uint64_t C = m->n_embd, V = m->vocab_size, T = m->n_positions, L = m->n_layer;
    /* wte + wpe + per layer (ln_1, attn qkv + proj, ln_2, mlp fc + proj) + ln_f;
     * the LM head is tied to wte. */
    return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C;
}

bool policy_all_members(const struct policy *p)
{
    return p->participation.n_members == 0;
}

bool policy_takes_part(const struct policy *p, const char *member)
{
    return policy_all_members(p) || policy_member_index(p, member) >= 0;
}

int policy_member_index(const struct policy *p, const char *member)
{
    if (!p || !member)
        return -1;
    for (size_t i = 0; i < p->participation.n_members; i++)
        if (!strcmp(p->participation.members[i], member))
            return (int)i;
    return -1;
}

static const char *name_or(const char *const *names, int n, int i)
{
    return (i >= 0 && i < n) ? names[i] : "?";
}

const char *policy_outer_kind_name(enum policy_outer_kind k)
{
    return name_or(outer_names, 3, (int)k);
}
const char *policy_agg_rule_name(enum policy_agg_rule r) { return name_or(rule_names, 5, (int)r); }
const char *policy_weighting_name(enum policy_weighting w)
{
    return name_or(weighting_names, 3, (int)w);
}
const char *policy_quant_name(enum codec_quant q) { return name_or(quant_names, 5, (int)q); }

const char *policy_measure_name(enum policy_measure m)
{
    return (int)m >= 0 && m < POLICY_MEASURES ? measure_names[m] : NULL;
}

int policy_measure_parse(const char *name)
{
    for (int m = 0; name && m < POLICY_MEASURES; m++)
        if (strcmp(measure_names[m], name) == 0)
            return m;
    return -1;
}

const char *policy_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case POLICY_ERR_IO: return "policy file could not be read";
    case POLICY_ERR_SYNTAX: return "policy is not well-formed YAML";
    case POLICY_ERR_UNKNOWN_KEY: return "unknown key in policy";
    case POLICY_ERR_DUPLICATE: return "duplicate key or list entry in policy";
    case POLICY_ERR_TYPE: return "policy value has the wrong type";
    case POLICY_ERR_RANGE: return "policy value out of range";
    case POLICY_ERR_MISSING: return "required policy key missing";
    case POLICY_ERR_INVALID: return "policy values inconsistent";
    case POLICY_ERR_UNSUPPORTED: return "YAML feature not supported in policies";
    case POLICY_ERR_TOO_LARGE: return "policy file too large or too deeply nested";
    case POLICY_ERR_NOMEM: return "out of memory";
    case POLICY_ERR_ARG: return "invalid argument";
    case POLICY_ERR_UNIMPLEMENTED: return "policy key not applied by this aulac (not implemented yet)";
    case POLICY_ERR_SITE_REFUSED: return "site policy refuses the experiment";
    default: return "unknown policy error";
    }
}
