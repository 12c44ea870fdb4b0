#include "policies/site.h"

#include <fnmatch.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/schema.h"
#include "privacy/rdp.h"

#define OFF(fld) offsetof(struct site_policy, fld)

static const struct sfield allow_fields[] = {
    {.key = "proposers", .type = SF_IDLIST, .off = OFF(proposers), .off2 = OFF(n_proposers),
     .imax = POLICY_MAX_MEMBERS},
    {.key = "experiments", .type = SF_GLOBLIST, .off = OFF(experiments),
     .off2 = OFF(n_experiments), .imax = 1024},
    {.key = NULL},
};

static const struct sfield limits_fields[] = {
    {.key = "max_parameters", .type = SF_U64, .off = OFF(max_parameters), .imax = UINT64_C(1) << 50},
    {.key = "max_artifact_bytes", .type = SF_U64, .off = OFF(max_artifact_bytes),
     .imax = UINT64_C(1) << 50},
    {.key = "max_rounds", .type = SF_U32, .off = OFF(max_rounds), .imax = 10000000},
    {.key = "max_local_steps", .type = SF_U32, .off = OFF(max_local_steps), .imax = 10000000},
    {.key = "max_batch_size", .type = SF_U32, .off = OFF(max_batch_size), .imax = 65536},
    {.key = "max_seq_len", .type = SF_U32, .off = OFF(max_seq_len), .imax = 1u << 16},
    {.key = "max_tokens_per_round", .type = SF_U64, .off = OFF(max_tokens_per_round),
     .imax = UINT64_C(1) << 62},
    {.key = NULL},
};

/* require: what an experiment must give this site's data (DP, policies/README.md "Site
 * policy"); a key given is a requirement (> 0), a key left out none. */
static const struct sfield require_fields[] = {
    {.key = "min_noise_multiplier", .type = SF_F64, .off = OFF(require_min_noise_multiplier),
     .fmin = 0, .fmax = INFINITY, .flags = SF_MIN_EXCL},
    {.key = "max_epsilon", .type = SF_F64, .off = OFF(require_max_epsilon), .fmin = 0,
     .fmax = INFINITY, .flags = SF_MIN_EXCL},
    {.key = "max_delta", .type = SF_F64, .off = OFF(require_max_delta), .fmin = 0,
     .fmax = 0.1, .flags = SF_MIN_EXCL},
    {.key = NULL},
};

/* indexed by enum site_auto_vote */
static const char *const auto_vote_names[] = { "never", "approve-if-allowed", NULL };

static const struct sfield governance_fields[] = {
    {.key = "auto_vote", .type = SF_ENUM, .off = OFF(auto_vote), .names = auto_vote_names},
    {.key = NULL},
};

/* trainer (worker/TRAINER.md, "Choosing a trainer"); the keys of kind command are
 * checked against the kind in site_post. Indexed by enum site_trainer_kind / _mode. */
static const char *const trainer_kind_names[] = { "builtin", "command", NULL };
static const char *const trainer_mode_names[] = { "oneshot", "serve", NULL };

static const struct sfield trainer_fields[] = {
    {.key = "kind", .type = SF_ENUM, .off = OFF(trainer.kind), .names = trainer_kind_names},
    {.key = "command", .type = SF_STRLIST, .off = OFF(trainer.argv), .off2 = OFF(trainer.n_args),
     .imax = SITE_TRAINER_ARGS_MAX},
    {.key = "mode", .type = SF_ENUM, .off = OFF(trainer.mode), .names = trainer_mode_names},
    {.key = "workdir", .type = SF_STRING, .off = OFF(trainer.workdir), .imax = 4096},
    {.key = "timeout_s", .type = SF_U32, .off = OFF(trainer.timeout_s), .imin = 1,
     .imax = 604800},
    {.key = "env", .type = SF_ENVMAP, .off = OFF(trainer.env), .off2 = OFF(trainer.n_env),
     .imax = SITE_TRAINER_ENV_MAX},
    {.key = NULL},
};

static const struct sfield site_fields[] = {
    {.key = "schema", .type = SF_U32, .off = OFF(schema), .imin = 1, .imax = 1000,
     .flags = SF_REQUIRED},
    {.key = "member", .type = SF_ID, .off = OFF(member), .imax = POLICY_ID_MAX},
    {.key = "allow", .type = SF_SECTION, .children = allow_fields},
    {.key = "limits", .type = SF_SECTION, .children = limits_fields},
    {.key = "governance", .type = SF_SECTION, .children = governance_fields},
    {.key = "require", .type = SF_SECTION, .children = require_fields},
    {.key = "trainer", .type = SF_SECTION, .children = trainer_fields},
    {.key = NULL},
};

void site_policy_init(struct site_policy *s)
{
    memset(s, 0, sizeof *s);
    s->schema = 1;
    s->any_proposer = true;
    s->any_experiment = true;
    s->trainer.timeout_s = SITE_TRAINER_TIMEOUT_DEFAULT;
}

void site_policy_free(struct site_policy *s)
{
    if (!s)
        return;
    schema_free(site_fields, s);
    memset(s, 0, sizeof *s);
}

/* trainer: kind command needs its command; the other keys say how to run a command,
 * so kind builtin (the default) takes none of them. */
static int trainer_post(struct schema_ctx *ctx, struct site_policy *s)
{
    static const char *const command_keys[] = { "trainer.command", "trainer.mode",
                                                "trainer.workdir", "trainer.timeout_s",
                                                "trainer.env" };
    if (s->trainer.kind == SITE_TRAINER_COMMAND) {
        /* AULAC_* is the worker's: it sets AULAC_PLAN itself and passes none of its own
         * AULAC_* settings to the plug-in (worker/TRAINER.md) */
        for (size_t i = 0; i < s->trainer.n_env; i++) {
            const char *e = s->trainer.env[i];
            if (strncmp(e, "AULAC_", 6) != 0)
                continue;
            const struct schema_seen *at = schema_seen(ctx, "trainer.env");
            char key[160];
            snprintf(key, sizeof key, "trainer.env.%.*s", (int)strcspn(e, "="), e);
            yaml_error(ctx->err, POLICY_ERR_INVALID, ctx->file, at ? at->line : 1,
                       at ? at->column : 1, key, "names starting with AULAC_ are the "
                       "worker's own (it sets AULAC_PLAN for the plug-in); choose another "
                       "name");
            return POLICY_ERR_INVALID;
        }
        if (s->trainer.n_args > 0)
            return 0;
        const struct schema_seen *at = schema_seen(ctx, "trainer.kind");
        yaml_error(ctx->err, POLICY_ERR_MISSING, ctx->file, at ? at->line : 1,
                   at ? at->column : 1, "trainer.command", "kind command needs command, the "
                   "plug-in's argv list (no shell), e.g. [python3, "
                   "/opt/aulac/plugins/torch_causal_lm.py] (worker/TRAINER.md)");
        return POLICY_ERR_MISSING;
    }
    for (size_t i = 0; i < sizeof command_keys / sizeof *command_keys; i++) {
        const struct schema_seen *at = schema_seen(ctx, command_keys[i]);
        if (!at)
            continue;
        yaml_error(ctx->err, POLICY_ERR_INVALID, ctx->file, at->line, at->column,
                   command_keys[i], "only used by kind: command (a plug-in trainer); the "
                   "trainer is builtin%s: set trainer.kind: command or remove the key",
                   schema_seen(ctx, "trainer.kind") ? "" : ", the default");
        return POLICY_ERR_INVALID;
    }
    return 0;
}

/* The rules after the walk (schema_check's post). */
static int site_post(struct schema_ctx *ctx, void *base)
{
    struct site_policy *s = base;
    s->any_proposer = schema_seen(ctx, "allow.proposers") == NULL;
    s->any_experiment = schema_seen(ctx, "allow.experiments") == NULL;
    if (s->schema != POLICY_SCHEMA_VERSION) {
        const struct schema_seen *at = schema_seen(ctx, "schema");
        yaml_error(ctx->err, POLICY_ERR_RANGE, ctx->file, at ? at->vline : 1,
                   at ? at->vcolumn : 1, "schema",
                   "schema version %u is not supported (this aulac reads version %d)",
                   s->schema, POLICY_SCHEMA_VERSION);
        return POLICY_ERR_RANGE;
    }
    return trainer_post(ctx, s);
}

int site_policy_check_buffer(const char *name, const void *bytes, size_t len,
                             struct site_policy *out, struct policy_errors *errors)
{
    if (!errors)
        return POLICY_ERR_ARG;
    struct site_policy scratch, *s = out ? out : &scratch;
    memset(s, 0, sizeof *s);
    s->trainer.timeout_s = SITE_TRAINER_TIMEOUT_DEFAULT;
    int rc = schema_check(name ? name : "<site>", bytes, len, site_fields, s, site_post,
                          errors);
    if (rc || !out)
        site_policy_free(s);
    return rc;
}

int site_policy_check_file(const char *path, struct site_policy *out,
                           struct policy_errors *errors)
{
    if (!errors)
        return POLICY_ERR_ARG;
    if (out)
        memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    int rc = yaml_errors_read(path, "site policy", &buf, &len, errors);
    if (rc == 0)
        rc = site_policy_check_buffer(path, buf, len, out, errors);
    free(buf);
    return rc;
}

int site_load_buffer(const char *name, const void *bytes, size_t len, struct site_policy *out,
                     struct policy_error *err)
{
    struct policy_errors *all;
    int rc = yaml_errors_new(name, out, sizeof *out, &all, err);
    return rc ? rc : yaml_errors_first(all, site_policy_check_buffer(name, bytes, len, out,
                                                                      all), err);
}

int site_load_file(const char *path, struct site_policy *out, struct policy_error *err)
{
    struct policy_errors *all;
    int rc = yaml_errors_new(path, out, sizeof *out, &all, err);
    return rc ? rc : yaml_errors_first(all, site_policy_check_file(path, out, all), err);
}

const char *site_auto_vote_name(int auto_vote)
{
    if (auto_vote < 0 || auto_vote > SITE_AUTO_VOTE_APPROVE_IF_ALLOWED)
        return NULL;
    return auto_vote_names[auto_vote];
}

static int refuse(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return POLICY_ERR_SITE_REFUSED;
}

static void join_list(char *const *items, size_t n, char *out, size_t out_len)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < out_len; i++) {
        int r = snprintf(out + o, out_len - o, "%s%s", i ? ", " : "", items[i]);
        if (r < 0)
            break;
        o += (size_t)r;
    }
    if (n == 0)
        snprintf(out, out_len, "none");
}

/* require: the experiment's DP against this site's floor on the noise and ceiling on
 * epsilon. The epsilon it can spend is the accountant's after all its rounds (q = 1:
 * every member takes part in every round; privacy/rdp.h), or its target_epsilon when
 * smaller (the coordinator ends the experiment before a round would pass it). */
static int check_require(const struct site_policy *s, const struct policy *p, char *why,
                         size_t why_len)
{
    const char *name = p->metadata.name;
    double min_z = s->require_min_noise_multiplier, max_eps = s->require_max_epsilon;
    if (min_z <= 0 && max_eps <= 0)
        return 0;
    const struct policy_privacy *v = &p->privacy;
    char floor_s[40], ceil_s[40], z_s[40], what[160];
    schema_format_double(min_z, floor_s, sizeof floor_s);
    schema_format_double(max_eps, ceil_s, sizeof ceil_s);
    if (min_z > 0 && max_eps > 0)
        snprintf(what, sizeof what, "require.min_noise_multiplier %s and require.max_epsilon %s",
                 floor_s, ceil_s);
    else if (min_z > 0)
        snprintf(what, sizeof what, "require.min_noise_multiplier %s", floor_s);
    else
        snprintf(what, sizeof what, "require.max_epsilon %s", ceil_s);
    if (!v->enabled)
        return refuse(why, why_len,
                      "experiment %s: it has no privacy section (its updates are neither "
                      "clipped nor noised), and this site requires differential privacy (%s)",
                      name, what);
    schema_format_double(v->noise_multiplier, z_s, sizeof z_s);
    if (min_z > 0 && v->noise_multiplier < min_z)
        return refuse(why, why_len,
                      "experiment %s: privacy.noise_multiplier %s is below this site's "
                      "require.min_noise_multiplier %s", name, z_s, floor_s);
    if (max_eps <= 0)
        return 0;
    const double max_delta = s->require_max_delta > 0 ? s->require_max_delta
                                                      : SITE_DEFAULT_MAX_DELTA;
    if (v->delta > max_delta)
        return refuse(why, why_len,
                      "experiment %s: privacy.delta %g is over this site's require.max_delta "
                      "%g%s (its epsilon would be a weaker promise)", name, v->delta, max_delta,
                      s->require_max_delta > 0 ? "" : ", the default with require.max_epsilon");
    double eps;
    int rc = rdp_epsilon(1.0, v->noise_multiplier, p->training.rounds, v->delta, &eps);
    if (rc != 0)
        return refuse(why, why_len,
                      "experiment %s: its epsilon cannot be computed (noise_multiplier %s, "
                      "delta %g: %s), and this site has require.max_epsilon %s", name, z_s,
                      v->delta, rdp_strerror(rc), ceil_s);
    if (v->target_epsilon > 0 && v->target_epsilon < eps) {
        if (v->target_epsilon > max_eps)
            return refuse(why, why_len,
                          "experiment %s: it may spend epsilon %.4g at delta %g (its "
                          "privacy.target_epsilon; its %u rounds would spend %.4g), over this "
                          "site's require.max_epsilon %s", name, v->target_epsilon, v->delta,
                          p->training.rounds, eps, ceil_s);
        return 0;
    }
    if (!(eps <= max_eps))
        return refuse(why, why_len,
                      "experiment %s: epsilon after its %u rounds is %.4g at delta %g "
                      "(noise_multiplier %s), over this site's require.max_epsilon %s", name,
                      p->training.rounds, eps, v->delta, z_s, ceil_s);
    return 0;
}

int site_check(const struct site_policy *s, const struct policy *p, char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!s || !p)
        return POLICY_ERR_ARG;
    char list[512];
    const char *name = p->metadata.name;
    const char *proposer = p->metadata.proposer;

    if (!s->any_proposer) {
        bool ok = false;
        for (size_t i = 0; i < s->n_proposers && !ok; i++)
            ok = !strcmp(s->proposers[i], proposer);
        if (!ok) {
            join_list(s->proposers, s->n_proposers, list, sizeof list);
            return refuse(why, why_len,
                          "experiment %s: proposer \"%s\" is not in this site's "
                          "allow.proposers (%s)", name, proposer[0] ? proposer : "(none given)",
                          list);
        }
    }
    if (!s->any_experiment) {
        bool ok = false;
        for (size_t i = 0; i < s->n_experiments && !ok; i++)
            ok = fnmatch(s->experiments[i], name, 0) == 0;
        if (!ok) {
            join_list(s->experiments, s->n_experiments, list, sizeof list);
            return refuse(why, why_len,
                          "experiment %s: name matches none of this site's "
                          "allow.experiments (%s)", name, list);
        }
    }
    if (s->member[0] && !policy_takes_part(p, s->member))
        return refuse(why, why_len,
                      "experiment %s: this site (%s) is not among its participation.members",
                      name, s->member);

    if (s->trainer.kind == SITE_TRAINER_BUILTIN) {
        if (p->model.family != POLICY_FAMILY_GPT2)
            return refuse(why, why_len,
                          "experiment %s: its model is of family external, and this site's "
                          "trainer is builtin: the built-in trainer trains only GPT-2 on "
                          "bytes; set trainer.kind: command with a plug-in "
                          "(worker/TRAINER.md)", name);
        if (p->model.tokenizer.present)
            return refuse(why, why_len,
                          "experiment %s: its model has a tokenizer (model.tokenizer %s), "
                          "and this site's trainer is builtin: the built-in trainer trains "
                          "only GPT-2 on bytes; set trainer.kind: command with a plug-in "
                          "(worker/TRAINER.md)", name, p->model.tokenizer.file);
    }
    /* Family external: the count is the init file's, which the policy alone does not
     * give (policy_model_parameters() is 0); the worker checks limits.max_parameters
     * once it has the layout. */
    uint64_t params = policy_model_parameters(&p->model);
    if (s->max_parameters && params > s->max_parameters)
        return refuse(why, why_len,
                      "experiment %s: the model has %llu parameters, over this site's "
                      "limits.max_parameters %llu", name, (unsigned long long)params,
                      (unsigned long long)s->max_parameters);
    const struct policy_training *t = &p->training;
    if (s->max_rounds && t->rounds > s->max_rounds)
        return refuse(why, why_len,
                      "experiment %s: training.rounds %u is over this site's "
                      "limits.max_rounds %u", name, t->rounds, s->max_rounds);
    if (s->max_local_steps && t->local_steps > s->max_local_steps)
        return refuse(why, why_len,
                      "experiment %s: training.local_steps %u is over this site's "
                      "limits.max_local_steps %u", name, t->local_steps, s->max_local_steps);
    if (s->max_batch_size && t->batch_size > s->max_batch_size)
        return refuse(why, why_len,
                      "experiment %s: training.batch_size %u is over this site's "
                      "limits.max_batch_size %u", name, t->batch_size, s->max_batch_size);
    if (s->max_seq_len && t->seq_len > s->max_seq_len)
        return refuse(why, why_len,
                      "experiment %s: training.seq_len %u is over this site's "
                      "limits.max_seq_len %u", name, t->seq_len, s->max_seq_len);
    uint64_t tokens = (uint64_t)t->local_steps * t->batch_size * t->seq_len;
    if (s->max_tokens_per_round && tokens > s->max_tokens_per_round)
        return refuse(why, why_len,
                      "experiment %s: %llu tokens per round (local_steps x batch_size x "
                      "seq_len) is over this site's limits.max_tokens_per_round %llu", name,
                      (unsigned long long)tokens, (unsigned long long)s->max_tokens_per_round);
    return check_require(s, p, why, why_len);
}
