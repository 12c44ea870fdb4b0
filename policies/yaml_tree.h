#ifndef AULAC_POLICIES_YAML_TREE_H
#define AULAC_POLICIES_YAML_TREE_H
/* Internal to policies/: a YAML document read with libfyaml into a small tree that
 * remembers where every node starts, and the error formatting shared by policy.c and
 * site.c. Only plain data survives: anchors, aliases, tags, directives other than
 * %YAML 1.2 and multi-document streams are refused here, so nothing downstream has to
 * think of them; so are duplicate keys, unless the walk is to report them with the other
 * errors (YAML_TREE_KEEP_DUPLICATES). */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policies/policy.h"

#define YAML_TREE_MAX_DEPTH 32
#define YAML_TREE_MAX_NODES 100000

enum ynode_kind { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

struct ynode {
    enum ynode_kind kind;
    int line, column;           /* 1-based start of the node */
    /* scalar */
    char *text;                 /* NUL-terminated; may contain NUL if quoted "\0" */
    size_t len;
    bool plain;                 /* plain style: typed by content (number, bool, null) */
    /* map: keys[i] (scalars) -> vals[i]; seq: vals[i] */
    struct ynode **keys, **vals;
    size_t n, cap;
    bool pending;               /* map: keys[n] read, its value not yet */
    /* a key given before in its mapping (YAML_TREE_KEEP_DUPLICATES): where it was first */
    int dup_line, dup_column;
};

/* Parses one YAML document. On success *root is the document's top node (NULL for an
 * empty document). Errors fill err with file:line:col and return a POLICY_ERR_*. */
int yaml_tree_parse(const char *file, const void *bytes, size_t len,
                    struct ynode **root, struct policy_error *err);

/* The same; with YAML_TREE_KEEP_DUPLICATES a key repeated in a mapping is no error here:
 * it stays in the tree, marked (dup_line > 0) with its value, for a walk that reports it
 * (yaml_duplicate_error()) and goes on. */
#define YAML_TREE_KEEP_DUPLICATES 1u
int yaml_tree_parse_flags(const char *file, const void *bytes, size_t len, unsigned flags,
                          struct ynode **root, struct policy_error *err);

/* "file:line:col: duplicate key "rounds" (first defined at line 10, column 3)" at key,
 * first defined at line, column. */
void yaml_duplicate_error(struct policy_error *err, const char *file, const struct ynode *key,
                          int line, int column);

/* For the first-error-only callers (policy_load_*, site_load_*): *all gets a zeroed list
 * on the heap. out (size bytes; size 0: none) is the caller's result, which must not be
 * NULL and is zeroed when no list can be had. 0, or POLICY_ERR_ARG / POLICY_ERR_NOMEM
 * with err (may be NULL) filled. */
int yaml_errors_new(const char *file, void *out, size_t size, struct policy_errors **all,
                    struct policy_error *err);
/* Copies all's first error into err (may be NULL; zeroed when there is none), frees all
 * and returns rc. */
int yaml_errors_first(struct policy_errors *all, int rc, struct policy_error *err);
void yaml_tree_free(struct ynode *n);

/* Offset of the first byte that is not well-formed UTF-8 text, or len. Tab and newline
 * are allowed; carriage return with YAML_TEXT_CR; C1 controls (U+0080..U+009F) are
 * refused with YAML_TEXT_NO_C1. Overlongs and surrogates are always refused. */
#define YAML_TEXT_CR    1u
#define YAML_TEXT_NO_C1 2u
size_t yaml_text_check(const void *bytes, size_t len, unsigned flags);

/* Reads a policy, site or roster file (kind: "policy", "site policy", "roster") into a
 * malloc'd buffer. Only a regular file of at most POLICY_FILE_MAX bytes is read (FIFOs
 * and devices are refused without blocking, common/fileio.h). On failure fills err:
 * "file: is 2097152 bytes, over the 1 MiB limit for policy files" (POLICY_ERR_TOO_LARGE)
 * or "file: cannot read: is a FIFO (named pipe), not a regular file" (POLICY_ERR_IO). */
int yaml_file_read(const char *path, const char *kind, uint8_t **buf, size_t *len,
                   struct policy_error *err);

/* yaml_file_read() for a check: errors is cleared, and gets the error of a file that
 * cannot be read (path NULL: POLICY_ERR_ARG) as its only one. */
int yaml_errors_read(const char *path, const char *kind, uint8_t **buf, size_t *len,
                     struct policy_errors *errors);

/* A plain scalar that YAML reads as null: "", "~", "null", "Null", "NULL". */
bool ynode_is_null(const struct ynode *n);

/* Fills err: code, position, path and the message "file:line:col: path: <fmt>". */
void yaml_error(struct policy_error *err, int code, const char *file, int line, int column,
                const char *path, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* How a value is named in messages: "ten" in quotes, 12 bare, null, a mapping... */
void ynode_describe(const struct ynode *n, char *out, size_t out_len);

#endif
