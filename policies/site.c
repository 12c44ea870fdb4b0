#include "policies/site.h"

#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/schema.h"

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
    {.key = "max_rounds", .type = SF_U32, .off = OFF(max_rounds), .imax = 10000000},
    {.key = "max_local_steps", .type = SF_U32, .off = OFF(max_local_steps), .imax = 10000000},
    {.key = "max_batch_size", .type = SF_U32, .off = OFF(max_batch_size), .imax = 65536},
    {.key = "max_seq_len", .type = SF_U32, .off = OFF(max_seq_len), .imax = 1u << 16},
    {.key = "max_tokens_per_round", .type = SF_U64, .off = OFF(max_tokens_per_round),
     .imax = UINT64_C(1) << 62},
    {.key = NULL},
};

/* indexed by enum site_auto_vote */
static const char *const auto_vote_names[] = { "never", "approve-if-allowed", NULL };

static const struct sfield governance_fields[] = {
    {.key = "auto_vote", .type = SF_ENUM, .off = OFF(auto_vote), .names = auto_vote_names},
    {.key = NULL},
};

static const struct sfield site_fields[] = {
    {.key = "schema", .type = SF_U32, .off = OFF(schema), .imin = 1, .imax = 1000,
     .flags = SF_REQUIRED},
    {.key = "member", .type = SF_ID, .off = OFF(member), .imax = POLICY_ID_MAX},
    {.key = "allow", .type = SF_SECTION, .children = allow_fields},
    {.key = "limits", .type = SF_SECTION, .children = limits_fields},
    {.key = "governance", .type = SF_SECTION, .children = governance_fields},
    /* require.min_noise_multiplier would ask for noise that experiments cannot add */
    {.key = "require", .type = SF_SECTION, .flags = SF_REFUSED,
     .note = "not implemented yet: experiments cannot add noise (their privacy section is not "
             "implemented), so no experiment could meet require.min_noise_multiplier; remove "
             "the section"},
    {.key = NULL},
};

void site_policy_init(struct site_policy *s)
{
    memset(s, 0, sizeof *s);
    s->schema = 1;
    s->any_proposer = true;
    s->any_experiment = true;
}

void site_policy_free(struct site_policy *s)
{
    if (!s)
        return;
    schema_free(site_fields, s);
    memset(s, 0, sizeof *s);
}

/* The rules after the walk (schema_check's post). */
static int site_post(struct schema_ctx *ctx, void *base)
{
    struct site_policy *s = base;
    s->any_proposer = schema_seen(ctx, "allow.proposers") == NULL;
    s->any_experiment = schema_seen(ctx, "allow.experiments") == NULL;
    if (s->schema == POLICY_SCHEMA_VERSION)
        return 0;
    const struct schema_seen *at = schema_seen(ctx, "schema");
    yaml_error(ctx->err, POLICY_ERR_RANGE, ctx->file, at ? at->vline : 1, at ? at->vcolumn : 1,
               "schema", "schema version %u is not supported (this aulac reads version %d)",
               s->schema, POLICY_SCHEMA_VERSION);
    return POLICY_ERR_RANGE;
}

int site_policy_check_buffer(const char *name, const void *bytes, size_t len,
                             struct site_policy *out, struct policy_errors *errors)
{
    if (!errors)
        return POLICY_ERR_ARG;
    struct site_policy scratch, *s = out ? out : &scratch;
    memset(s, 0, sizeof *s);
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
    return 0;
}
