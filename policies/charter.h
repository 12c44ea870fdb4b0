#ifndef AULAC_POLICIES_CHARTER_H
#define AULAC_POLICIES_CHARTER_H
/* The alliance charter: the alliance-level rules that no experiment policy may
 * change (policies/GOVERNANCE.md). It is founded by the roster file's optional
 * `charter:` section, recorded in the ledger's genesis entry, and amended only by a
 * charter motion approved with the charter quorum in force.
 *
 *   charter:
 *     quorum:
 *       roster: 0.5          # roster changes (add / remove / rotate)       (0, 1]
 *       experiments: 0.5     # experiment proposals and cancellations        (0, 1]
 *       charter: 0.67        # amending the charter; >= the two above        (0, 1]
 *     proposers: [researcher]   # roles any of which lets a member propose an experiment
 *     proposal_expiry_days: 7   # default expiry of a proposal (1..30)
 *     concurrent_experiments: 1 # only 1 is implemented
 *
 * A charter document (what a charter motion carries) has the same keys at its top
 * level. Every key is optional; an absent one keeps its default. Errors are struct
 * policy_error (file:line:col: path: message) with the POLICY_ERR_* codes. */
#include <stddef.h>
#include <stdint.h>

#include "policies/policy.h"

#define CHARTER_EXPIRY_DAYS_MAX 30
#define CHARTER_HEADER          "# aulac charter v1\n"

struct charter {
    double   roster_quorum, experiment_quorum, charter_quorum;   /* (0, 1] */
    uint32_t proposer_roles;          /* ROSTER_ROLE_* bit set, non-empty */
    uint32_t proposal_expiry_days;    /* 1..30 */
    uint32_t concurrent_experiments;  /* 1 */
};

/* quorums 0.5 / 0.5 / 0.67, proposers [researcher], 7 days, 1 at a time. */
void charter_default(struct charter *c);

/* A charter document (keys at the top level; an empty document is the default
 * charter). name is used in messages. On error fills err and sets *out to the
 * default. POLICY_ERR_* (POLICY_ERR_RANGE for "not implemented yet"). */
int charter_load_buffer(const char *name, const void *bytes, size_t len, struct charter *out,
                        struct policy_error *err) __attribute__((warn_unused_result));
int charter_load_file(const char *path, struct charter *out, struct policy_error *err)
    __attribute__((warn_unused_result));

/* The canonical text: a YAML charter document that charter_load_buffer reads back to
 * the same charter, every key spelled out in a fixed order, numbers in their
 * shortest exact form (policies/GOVERNANCE.md has an example). *out is malloc'd and
 * NUL-terminated (not counted in *len); the caller frees. POLICY_ERR_NOMEM. */
int charter_format(const struct charter *c, char **out, size_t *len);

/* BLAKE2b-256 of charter_format's text. POLICY_ERR_NOMEM. */
int charter_hash(const struct charter *c, uint8_t out[32]);

/* 1 when a and b are the same rules. */
int charter_equal(const struct charter *a, const struct charter *b);

/* Internal to policies/ (roster.c): the charter in a parsed mapping (the roster's
 * `charter:` value, or a document's top level); prefix names it in messages. */
struct ynode;
int charter_from_node(const char *file, const struct ynode *map, const char *prefix, int line,
                      int column, struct charter *out, struct policy_error *err);

#endif
