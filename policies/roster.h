#ifndef AULAC_POLICIES_ROSTER_H
#define AULAC_POLICIES_ROSTER_H
/* The founding roster: who the alliance's members are and the keys they sign with.
 *
 *   alliance: vn-llm
 *   members:
 *     - id: fpt
 *       organization: FPT Corporation
 *       roles: [member, researcher]
 *       public_key: 6bq3...=          # base64 of the 32-byte Ed25519 public key
 *   charter:                          # optional: the alliance charter (policies/charter.h)
 *     quorum: {roster: 0.5, experiments: 0.5, charter: 0.67}
 *
 * The coordinator records the roster as the ledger's genesis entry; later changes are
 * governance proposals, never edits of this file. Errors use struct policy_error
 * (file:line:col and the key path) and the POLICY_ERR_* codes. */
#include <stddef.h>
#include <stdint.h>

#include "policies/charter.h"
#include "policies/policy.h"

#define ROSTER_MAX_MEMBERS 1024
#define ROSTER_ORG_MAX     128

enum roster_role {
    ROSTER_ROLE_MEMBER = 1u << 0,
    ROSTER_ROLE_RESEARCHER = 1u << 1,
    ROSTER_ROLE_SECRETARIAT = 1u << 2,
};

struct roster_member {
    char id[POLICY_ID_MAX + 1];
    char organization[ROSTER_ORG_MAX + 1];
    uint32_t roles;                 /* bit set of enum roster_role */
    uint8_t public_key[32];
};

struct roster {
    char alliance[POLICY_NAME_MAX + 1];
    struct roster_member *members;  /* owned */
    size_t n_members;
    struct charter charter;         /* the `charter:` section; charter_default() when absent */
};

/* Parses a roster file / buffer; on error fills err and leaves *out empty. Checks: ids
 * valid and unique, public keys valid base64 of 32 bytes and unique, roles known,
 * at least one member, the charter section (if any) valid. */
int roster_load_file(const char *path, struct roster *out, struct policy_error *err)
    __attribute__((warn_unused_result));
int roster_load_buffer(const char *name, const void *bytes, size_t len, struct roster *out,
                       struct policy_error *err) __attribute__((warn_unused_result));
void roster_free(struct roster *r);

/* The member with this id, or NULL. Valid while r lives. */
const struct roster_member *roster_find(const struct roster *r, const char *id);

/* The roster as YAML that roster_load_buffer reads back to the same roster: a
 * malloc'd, NUL-terminated text the caller frees. POLICY_ERR_NOMEM. */
int roster_format(const struct roster *r, char **out, size_t *len);

/* Appends m (copied). POLICY_ERR_DUPLICATE when its id or public key is already there,
 * with why (may be NULL) naming the other member; POLICY_ERR_TOO_LARGE, _NOMEM. */
int roster_add(struct roster *r, const struct roster_member *m, char *why, size_t why_len);

/* "member,researcher" for a role set; out needs 40 bytes. */
void roster_roles_format(uint32_t roles, char *out, size_t out_len);
/* Parses "member,researcher" into a role set; -1 on an unknown or empty role. */
int roster_roles_parse(const char *text, uint32_t *roles);

#endif
