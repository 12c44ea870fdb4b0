#include "policies/roster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/keys.h"
#include "policies/yaml_tree.h"

static const char *const role_names[] = { "member", "researcher", "secretariat", NULL };

void roster_free(struct roster *r)
{
    if (!r)
        return;
    free(r->members);
    memset(r, 0, sizeof *r);
}

const struct roster_member *roster_find(const struct roster *r, const char *id)
{
    for (size_t i = 0; i < r->n_members; i++)
        if (strcmp(r->members[i].id, id) == 0)
            return &r->members[i];
    return NULL;
}

void roster_roles_format(uint32_t roles, char *out, size_t out_len)
{
    size_t used = 0;
    out[0] = 0;
    for (int i = 0; role_names[i]; i++) {
        if (!(roles & (1u << i)))
            continue;
        int n = snprintf(out + used, out_len - used, "%s%s", used ? "," : "", role_names[i]);
        if (n < 0 || (size_t)n >= out_len - used)
            break;
        used += (size_t)n;
    }
}

static int id_ok(const struct ynode *v, size_t max)
{
    if (v->kind != YNODE_SCALAR || v->len == 0 || v->len > max || strlen(v->text) != v->len)
        return 0;
    for (size_t i = 0; i < v->len; i++) {
        char c = v->text[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 (i > 0 && (c == '.' || c == '_' || c == '-'));
        if (!ok)
            return 0;
    }
    return 1;
}

static int text_ok(const struct ynode *v, size_t max)
{
    if (v->kind != YNODE_SCALAR || v->len == 0 || v->len > max || strlen(v->text) != v->len)
        return 0;
    for (size_t i = 0; i < v->len; i++)
        if ((unsigned char)v->text[i] < 0x20)
            return 0;
    return 1;
}

static int parse_roles(const char *file, const struct ynode *v, const char *path,
                       uint32_t *roles, struct policy_error *err)
{
    char got[64];
    if (v->kind != YNODE_SEQ || v->n == 0) {
        ynode_describe(v, got, sizeof got);
        yaml_error(err, POLICY_ERR_TYPE, file, v->line, v->column, path,
                   "expected a non-empty list of roles (member, researcher, secretariat), got %s",
                   got);
        return err->code;
    }
    *roles = 0;
    for (size_t i = 0; i < v->n; i++) {
        const struct ynode *r = v->vals[i];
        int found = -1;
        for (int k = 0; r->kind == YNODE_SCALAR && role_names[k]; k++)
            if (strcmp(r->text, role_names[k]) == 0)
                found = k;
        if (found < 0) {
            ynode_describe(r, got, sizeof got);
            yaml_error(err, POLICY_ERR_RANGE, file, r->line, r->column, path,
                       "unknown role %s (roles: member, researcher, secretariat)", got);
            return err->code;
        }
        if (*roles & (1u << found)) {
            yaml_error(err, POLICY_ERR_DUPLICATE, file, r->line, r->column, path,
                       "role \"%s\" is listed twice", role_names[found]);
            return err->code;
        }
        *roles |= 1u << found;
    }
    return 0;
}

static int parse_member(const char *file, const struct ynode *m, size_t idx,
                        struct roster_member *out, struct policy_error *err)
{
    char path[64], got[64];
    snprintf(path, sizeof path, "members[%zu]", idx);
    if (m->kind != YNODE_MAP) {
        ynode_describe(m, got, sizeof got);
        yaml_error(err, POLICY_ERR_TYPE, file, m->line, m->column, path,
                   "expected a mapping with id, organization, roles, public_key, got %s", got);
        return err->code;
    }
    memset(out, 0, sizeof *out);
    int have_id = 0, have_key = 0, have_roles = 0;
    for (size_t i = 0; i < m->n; i++) {
        const struct ynode *k = m->keys[i], *v = m->vals[i];
        char kpath[96];
        snprintf(kpath, sizeof kpath, "%s.%s", path, k->text);
        if (strcmp(k->text, "id") == 0) {
            if (!id_ok(v, POLICY_ID_MAX)) {
                ynode_describe(v, got, sizeof got);
                yaml_error(err, POLICY_ERR_TYPE, file, v->line, v->column, kpath,
                           "expected an id of 1..%d characters [a-z0-9._-], got %s",
                           POLICY_ID_MAX, got);
                return err->code;
            }
            memcpy(out->id, v->text, v->len + 1);
            have_id = 1;
        } else if (strcmp(k->text, "organization") == 0) {
            if (!text_ok(v, ROSTER_ORG_MAX)) {
                ynode_describe(v, got, sizeof got);
                yaml_error(err, POLICY_ERR_TYPE, file, v->line, v->column, kpath,
                           "expected an organization name of 1..%d printable bytes, got %s",
                           ROSTER_ORG_MAX, got);
                return err->code;
            }
            memcpy(out->organization, v->text, v->len + 1);
        } else if (strcmp(k->text, "roles") == 0) {
            if (parse_roles(file, v, kpath, &out->roles, err) != 0)
                return err->code;
            have_roles = 1;
        } else if (strcmp(k->text, "public_key") == 0) {
            if (v->kind != YNODE_SCALAR ||
                crypto_public_key_from_base64(v->text, out->public_key) != 0) {
                ynode_describe(v, got, sizeof got);
                yaml_error(err, POLICY_ERR_TYPE, file, v->line, v->column, kpath,
                           "expected the base64 of a 32-byte Ed25519 public key "
                           "(the 'public:' line of the member's .pub file), got %s", got);
                return err->code;
            }
            have_key = 1;
        } else {
            yaml_error(err, POLICY_ERR_UNKNOWN_KEY, file, k->line, k->column, kpath,
                       "unknown key (a member has id, organization, roles, public_key)");
            return err->code;
        }
    }
    const char *missing = !have_id ? "id" : !have_key ? "public_key" : NULL;
    if (missing) {
        yaml_error(err, POLICY_ERR_MISSING, file, m->line, m->column, path,
                   "required key '%s' is missing", missing);
        return err->code;
    }
    if (!have_roles)
        out->roles = ROSTER_ROLE_MEMBER;
    if (!out->organization[0])
        snprintf(out->organization, sizeof out->organization, "%s", out->id);
    return 0;
}

static int parse_root(const char *file, const struct ynode *root, struct roster *out,
                      struct policy_error *err)
{
    char got[64];
    if (!root || root->kind != YNODE_MAP) {
        yaml_error(err, POLICY_ERR_TYPE, file, root ? root->line : 1, root ? root->column : 1,
                   "", "a roster is a mapping with 'alliance' and 'members'");
        return err->code;
    }
    const struct ynode *members = NULL;
    for (size_t i = 0; i < root->n; i++) {
        const struct ynode *k = root->keys[i], *v = root->vals[i];
        if (strcmp(k->text, "alliance") == 0) {
            if (!id_ok(v, POLICY_NAME_MAX)) {
                ynode_describe(v, got, sizeof got);
                yaml_error(err, POLICY_ERR_TYPE, file, v->line, v->column, "alliance",
                           "expected a name of 1..%d characters [a-z0-9._-], got %s",
                           POLICY_NAME_MAX, got);
                return err->code;
            }
            memcpy(out->alliance, v->text, v->len + 1);
        } else if (strcmp(k->text, "members") == 0) {
            members = v;
        } else if (strcmp(k->text, "charter") == 0) {
            int rc = charter_from_node(file, v, "charter", k->line, k->column, &out->charter,
                                       err);
            if (rc != 0)
                return rc;
        } else {
            yaml_error(err, POLICY_ERR_UNKNOWN_KEY, file, k->line, k->column, k->text,
                       "unknown key (a roster has alliance, members and charter)");
            return err->code;
        }
    }
    if (!members || members->kind != YNODE_SEQ || members->n == 0) {
        int line = members ? members->line : root->line, col = members ? members->column : root->column;
        yaml_error(err, members ? POLICY_ERR_TYPE : POLICY_ERR_MISSING, file, line, col,
                   "members", "expected a non-empty list of members");
        return err->code;
    }
    if (members->n > ROSTER_MAX_MEMBERS) {
        yaml_error(err, POLICY_ERR_TOO_LARGE, file, members->line, members->column, "members",
                   "at most %d members", ROSTER_MAX_MEMBERS);
        return err->code;
    }
    if (!out->alliance[0])
        snprintf(out->alliance, sizeof out->alliance, "alliance");
    out->members = calloc(members->n, sizeof *out->members);
    if (!out->members) {
        yaml_error(err, POLICY_ERR_NOMEM, file, 0, 0, "", "out of memory");
        return err->code;
    }
    for (size_t i = 0; i < members->n; i++) {
        struct roster_member *m = &out->members[i];
        if (parse_member(file, members->vals[i], i, m, err) != 0)
            return err->code;
        for (size_t j = 0; j < i; j++) {
            const struct roster_member *o = &out->members[j];
            const char *what = strcmp(o->id, m->id) == 0 ? "id"
                             : memcmp(o->public_key, m->public_key, 32) == 0 ? "public key" : NULL;
            if (what) {
                const struct ynode *n = members->vals[i];
                yaml_error(err, POLICY_ERR_DUPLICATE, file, n->line, n->column, "members",
                           "member '%s' has the same %s as member '%s'", m->id, what, o->id);
                return err->code;
            }
        }
        out->n_members = i + 1;
    }
    return 0;
}

int roster_load_buffer(const char *name, const void *bytes, size_t len, struct roster *out,
                       struct policy_error *err)
{
    struct policy_error local;
    if (!err)
        err = &local;
    memset(err, 0, sizeof *err);
    memset(out, 0, sizeof *out);
    charter_default(&out->charter);
    struct ynode *root = NULL;
    int rc = yaml_tree_parse(name, bytes, len, &root, err);
    if (rc == 0)
        rc = parse_root(name, root, out, err);
    yaml_tree_free(root);
    if (rc != 0)
        roster_free(out);
    return rc;
}

int roster_load_file(const char *path, struct roster *out, struct policy_error *err)
{
    struct policy_error local;
    if (!err)
        err = &local;
    memset(out, 0, sizeof *out);
    uint8_t *buf;
    size_t len;
    memset(err, 0, sizeof *err);
    int rc = yaml_file_read(path, "roster", &buf, &len, err);
    if (rc != 0)
        return rc;
    rc = roster_load_buffer(path, buf, len, out, err);
    free(buf);
    return rc;
}

int roster_roles_parse(const char *text, uint32_t *roles)
{
    *roles = 0;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, ",");
        int found = -1;
        for (int i = 0; role_names[i]; i++)
            if (strlen(role_names[i]) == n && strncmp(p, role_names[i], n) == 0)
                found = i;
        if (found < 0)
            return -1;
        *roles |= 1u << found;
        p += n;
        if (*p == ',')
            p++;
    }
    return *roles ? 0 : -1;
}

int roster_add(struct roster *r, const struct roster_member *m, char *why, size_t why_len)
{
    for (size_t i = 0; i < r->n_members; i++) {
        const struct roster_member *o = &r->members[i];
        const char *what = strcmp(o->id, m->id) == 0 ? "id"
                         : memcmp(o->public_key, m->public_key, 32) == 0 ? "public key" : NULL;
        if (what) {
            if (why)
                snprintf(why, why_len, "member '%s' has the same %s as member '%s'", m->id,
                         what, o->id);
            return POLICY_ERR_DUPLICATE;
        }
    }
    if (r->n_members >= ROSTER_MAX_MEMBERS)
        return POLICY_ERR_TOO_LARGE;
    struct roster_member *grown = realloc(r->members, (r->n_members + 1) * sizeof *grown);
    if (!grown)
        return POLICY_ERR_NOMEM;
    r->members = grown;
    r->members[r->n_members++] = *m;
    return 0;
}

/* A YAML double-quoted scalar: organization names may hold any printable text. */
static void put_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int roster_format(const struct roster *r, char **out, size_t *len)
{
    FILE *f = open_memstream(out, len);
    if (!f)
        return POLICY_ERR_NOMEM;
    fprintf(f, "# The alliance's founding roster: recorded as the ledger's first entry.\n"
               "# Later changes are governance proposals (aulac member propose-*).\n"
               "alliance: %s\nmembers:\n", r->alliance);
    for (size_t i = 0; i < r->n_members; i++) {
        const struct roster_member *m = &r->members[i];
        char roles[40], b64[45];
        roster_roles_format(m->roles, roles, sizeof roles);
        crypto_public_key_to_base64(m->public_key, b64);
        fprintf(f, "  - id: %s\n    organization: ", m->id);
        put_quoted(f, m->organization);
        fprintf(f, "\n    roles: [");
        for (const char *p = roles; *p; p++)
            fputs(*p == ',' ? ", " : (char[2]){ *p, 0 }, f);
        fprintf(f, "]\n    public_key: %s\n", b64);
    }
    struct charter def;
    charter_default(&def);
    if (!charter_equal(&r->charter, &def)) {
        char *text;
        size_t tlen;
        if (charter_format(&r->charter, &text, &tlen) != 0) {
            fclose(f);
            free(*out);
            *out = NULL;
            return POLICY_ERR_NOMEM;
        }
        /* the canonical charter, one level down, after its header line */
        fputs("charter:\n", f);
        for (const char *line = strchr(text, '\n') + 1; *line;) {
            const char *nl = strchr(line, '\n');
            fprintf(f, "  %.*s\n", (int)(nl - line), line);
            line = nl + 1;
        }
        free(text);
    }
    return fclose(f) == 0 ? 0 : POLICY_ERR_NOMEM;
}
