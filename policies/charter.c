#define _GNU_SOURCE     /* asprintf */
#include "policies/charter.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policies/roster.h"
#include "policies/schema.h"

#define OFF(fld) offsetof(struct charter, fld)

static const char *const role_names[] = { "member", "researcher", "secretariat", NULL };

static const struct sfield quorum_fields[] = {
    {.key = "roster", .type = SF_F64, .off = OFF(roster_quorum), .fmin = 0, .fmax = 1,
     .flags = SF_MIN_EXCL},
    {.key = "experiments", .type = SF_F64, .off = OFF(experiment_quorum), .fmin = 0, .fmax = 1,
     .flags = SF_MIN_EXCL},
    {.key = "charter", .type = SF_F64, .off = OFF(charter_quorum), .fmin = 0, .fmax = 1,
     .flags = SF_MIN_EXCL},
    {.key = NULL},
};

static const struct sfield charter_fields[] = {
    {.key = "quorum", .type = SF_SECTION, .children = quorum_fields},
    {.key = "proposers", .type = SF_ENUMSET, .off = OFF(proposer_roles), .names = role_names},
    {.key = "proposal_expiry_days", .type = SF_U32, .off = OFF(proposal_expiry_days),
     .imin = 1, .imax = CHARTER_EXPIRY_DAYS_MAX},
    {.key = "concurrent_experiments", .type = SF_U32, .off = OFF(concurrent_experiments),
     .imin = 1, .imax = 1000},
    {.key = NULL},
};

_Static_assert(ROSTER_ROLE_MEMBER == 1 && ROSTER_ROLE_RESEARCHER == 2 &&
               ROSTER_ROLE_SECRETARIAT == 4, "charter roles are roster role bits");

void charter_default(struct charter *c)
{
    memset(c, 0, sizeof *c);
    c->roster_quorum = 0.5;
    c->experiment_quorum = 0.5;
    c->charter_quorum = 0.67;
    c->proposer_roles = ROSTER_ROLE_RESEARCHER;
    c->proposal_expiry_days = 7;
    c->concurrent_experiments = 1;
}

int charter_equal(const struct charter *a, const struct charter *b)
{
    return a->roster_quorum == b->roster_quorum && a->experiment_quorum == b->experiment_quorum &&
           a->charter_quorum == b->charter_quorum && a->proposer_roles == b->proposer_roles &&
           a->proposal_expiry_days == b->proposal_expiry_days &&
           a->concurrent_experiments == b->concurrent_experiments;
}

/* The value position of path, or of the mapping when the key was not given. */
static void where(const struct schema_ctx *ctx, const char *path, int line, int column,
                  int *l, int *c)
{
    const struct schema_seen *s = schema_seen(ctx, path);
    *l = s ? s->vline : line;
    *c = s ? s->vcolumn : column;
}

int charter_from_node(const char *file, const struct ynode *map, const char *prefix, int line,
                      int column, struct charter *out, struct policy_error *err)
{
    charter_default(out);
    struct schema_ctx ctx = {.file = file, .err = err};
    char path[160];
    int l, c, rc = schema_walk(&ctx, map, charter_fields, out, prefix, line, column);
#define PATH(key) (snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key), path)
    if (rc == 0 && out->proposer_roles == 0) {
        where(&ctx, PATH("proposers"), line, column, &l, &c);
        yaml_error(err, POLICY_ERR_RANGE, file, l, c, path, "at least one role must be able "
                   "to propose experiments (member, researcher, secretariat)");
        rc = POLICY_ERR_RANGE;
    }
    if (rc == 0 && (out->charter_quorum < out->roster_quorum ||
                    out->charter_quorum < out->experiment_quorum)) {
        where(&ctx, PATH("quorum.charter"), line, column, &l, &c);
        yaml_error(err, POLICY_ERR_INVALID, file, l, c, path, "the charter quorum %g is below "
                   "the roster quorum %g or the experiment quorum %g: changing the charter "
                   "must be at least as hard as what it governs", out->charter_quorum,
                   out->roster_quorum, out->experiment_quorum);
        rc = POLICY_ERR_INVALID;
    }
    if (rc == 0 && out->concurrent_experiments != 1) {
        where(&ctx, PATH("concurrent_experiments"), line, column, &l, &c);
        yaml_error(err, POLICY_ERR_RANGE, file, l, c, path, "%u experiments at once is not "
                   "implemented yet: the coordinator runs one experiment at a time (write 1)",
                   out->concurrent_experiments);
        rc = POLICY_ERR_RANGE;
    }
#undef PATH
    if (rc == POLICY_ERR_NOMEM && err->code != POLICY_ERR_NOMEM)
        yaml_error(err, rc, file, 0, 0, NULL, "out of memory");
    schema_ctx_free(&ctx);
    if (rc != 0)
        charter_default(out);
    return rc;
}

int charter_load_buffer(const char *name, const void *bytes, size_t len, struct charter *out,
                        struct policy_error *err)
{
    struct policy_error scratch;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    if (!name)
        name = "<charter>";
    charter_default(out);
    if (!bytes && len) {
        yaml_error(err, POLICY_ERR_ARG, name, 0, 0, NULL, "invalid argument");
        return POLICY_ERR_ARG;
    }
    struct ynode *root = NULL;
    int rc = yaml_tree_parse(name, bytes, len, &root, err);
    if (rc == 0)
        rc = charter_from_node(name, root, "", root ? root->line : 1, root ? root->column : 1,
                               out, err);
    yaml_tree_free(root);
    return rc;
}

int charter_load_file(const char *path, struct charter *out, struct policy_error *err)
{
    struct policy_error scratch;
    if (!err)
        err = &scratch;
    memset(err, 0, sizeof *err);
    charter_default(out);
    uint8_t *buf;
    size_t len;
    int rc = yaml_file_read(path, "charter", &buf, &len, err);
    if (rc != 0)
        return rc;
    rc = charter_load_buffer(path, buf, len, out, err);
    free(buf);
    return rc;
}

int charter_format(const struct charter *c, char **out, size_t *len)
{
    char r[40], e[40], ch[40], roles[40] = "";
    size_t o = 0;
    schema_format_double(c->roster_quorum, r, sizeof r);
    schema_format_double(c->experiment_quorum, e, sizeof e);
    schema_format_double(c->charter_quorum, ch, sizeof ch);
    for (int i = 0; role_names[i]; i++)
        if (c->proposer_roles & (1u << i))
            o += (size_t)snprintf(roles + o, sizeof roles - o, "%s%s", o ? ", " : "",
                                  role_names[i]);
    char *text = NULL;
    int n = asprintf(&text, CHARTER_HEADER
                     "quorum:\n  roster: %s\n  experiments: %s\n  charter: %s\n"
                     "proposers: [%s]\nproposal_expiry_days: %u\nconcurrent_experiments: %u\n",
                     r, e, ch, roles, c->proposal_expiry_days, c->concurrent_experiments);
    if (n < 0)
        return POLICY_ERR_NOMEM;
    *out = text;
    *len = (size_t)n;
    return 0;
}

int charter_hash(const struct charter *c, uint8_t out[32])
{
    char *text;
    size_t len;
    int rc = charter_format(c, &text, &len);
    if (rc != 0)
        return rc;
    if (sodium_init() < 0) {
        free(text);
        return POLICY_ERR_NOMEM;
    }
    crypto_generichash(out, 32, (const unsigned char *)text, len, NULL, 0);
    free(text);
    return 0;
}
