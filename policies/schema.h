#ifndef AULAC_POLICIES_SCHEMA_H
#define AULAC_POLICIES_SCHEMA_H
/* Internal to policies/: a table describes a YAML section (keys, types, ranges, where
 * each value goes in a C struct); schema_walk() checks a parsed tree against it and
 * stores the values, and schema_canonical() writes them back out as the canonical
 * "key.path=value" lines. policy.c and site.c each own one table. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policies/yaml_tree.h"

enum sfield_type {
    SF_SECTION,   /* nested mapping: children */
    SF_U32,       /* uint32_t, imin..imax */
    SF_U64,       /* uint64_t, imin..imax */
    SF_INT,       /* int, imin..imax (non-negative ranges only) */
    SF_F64,       /* double, fmin..fmax (SF_MIN_EXCL / SF_MAX_EXCL) */
    SF_BOOL,      /* bool */
    SF_ENUM,      /* an enum stored as int: index into names */
    SF_ID,        /* char[imax + 1]: [a-z0-9][a-z0-9._-]*, 1..imax characters */
    SF_TEXT,      /* char * (malloc'd): printable UTF-8, newlines and tabs, <= imax bytes */
    SF_IDLIST,    /* char ** at off, size_t count at off2: ids, no duplicates, <= imax items */
    SF_GLOBLIST,  /* same with glob patterns ([a-z0-9._*?[]!-]) */
    SF_ENUMSET,   /* uint32_t bit set at off: a list of names, no duplicates */
    SF_FILENAME,  /* char[imax + 1]: a plain file name, 1..imax of [A-Za-z0-9._-] (no '/'),
                     not "." or ".." */
    SF_HEX32,     /* uint8_t[32]: 64 lower-case hex digits, e.g. a BLAKE2b-256 (not all
                     zero: all zero means not given, canonical value "") */
    SF_WEIGHTS,   /* double[] at off, indexed by names: a mapping name -> number in
                     fmin..fmax; each key given is recorded as seen at "path.name";
                     canonical: one line "path.name=value" for every name */
    SF_RELPATH,   /* char[imax + 1]: a relative file path, 1..imax bytes of printable UTF-8
                     without control characters or '\\'; '/'-separated components, none
                     empty, "." or ".." (so no absolute path, nothing above its base) */
    SF_STRING,    /* char * (malloc'd): 1..imax bytes of printable UTF-8, no control
                     characters (a path, an argument) */
    SF_STRLIST,   /* char ** at off (NULL-terminated), size_t count at off2: a list of
                     1..imax SF_STRINGs (an argv); order kept, repeats allowed */
    SF_ENVMAP,    /* char ** at off, size_t count at off2: a mapping NAME -> string,
                     at most imax entries, NAME [A-Za-z_][A-Za-z0-9_]* (at most 128
                     bytes), each value any non-null scalar's text (0..4096 bytes,
                     no control characters); stored as "NAME=value" in file order */
};

#define SF_REQUIRED  1u
#define SF_MIN_EXCL  2u
#define SF_MAX_EXCL  4u
#define SF_NOHASH    8u   /* parsed and stored, but not part of the canonical encoding */
/* Honest schema (policies/README.md, "Key status"): every key is applied by the code, or
 * refused when the file is checked. */
#define SF_REFUSED  16u   /* refused whatever its value, with note (POLICY_ERR_UNIMPLEMENTED);
                             stores nothing, encodes nothing, not offered as a valid key */
#define SF_FIXED    32u   /* scalars (U32, U64, INT, F64, BOOL, ENUM): accepted only with
                             the value base holds before the walk (its default: what the
                             code does); another value is refused with note
                             (POLICY_ERR_UNIMPLEMENTED) */
#define SF_ALL      64u   /* SF_IDLIST: the scalar `all` means every member (count 0), an
                             empty list is refused; canonical value of `all`: "*" */
#define SF_OMIT_ZERO 128u /* scalars: no canonical line while the value is 0 (a key that a
                             variant of the document leaves unset, e.g. the GPT-2 sizes of
                             a model of family external) */
#define SF_PRESENT  256u  /* SF_SECTION: off is an int set to 1 when the file gives the
                             section; without it the section has no canonical lines (a key
                             added later leaves the documents without it unchanged) */

struct sfield {
    const char *key;
    enum sfield_type type;
    size_t off, off2;
    uint64_t imin, imax;
    double fmin, fmax;
    unsigned flags;
    const char *const *names;          /* SF_ENUM; NULL-ended */
    const struct sfield *children;     /* SF_SECTION; ended by an entry with key NULL */
    const char *alias;                 /* a second key accepted for the same value */
    const char *was;                   /* a former name: not accepted, but an unknown key
                                          spelled so gets "did you mean" this key */
    const char *note;                  /* SF_REFUSED / SF_FIXED: why, what to do instead */
    /* SF_REQUIRED: when set, the key is required only when this returns true for the
     * document as walked so far (the keys of the same mapping stored: a family's own
     * required keys). */
    bool (*required_if)(const void *base);
};

struct schema_seen {
    char path[160];             /* as long as the walk's paths */
    int line, column;           /* of the key */
    int vline, vcolumn;         /* of the value */
};

struct schema_ctx {
    const char *file;
    struct policy_error *err;   /* the error at hand */
    /* NULL: the walk stops at the first error. Otherwise every error of a key joins this
     * list and the walk goes on with the next key (policies/policy.h, policy_errors). */
    struct policy_errors *all;
    struct schema_seen *seen;
    size_t n_seen, cap_seen;
};

/* Walks map (may be NULL or null: an empty section) against fields, storing values
 * into base. line/column locate the mapping for "required key is missing" errors.
 * A repeated key (a tree read with YAML_TREE_KEEP_DUPLICATES) is an error of the walk.
 * Returns 0 or a POLICY_ERR_* with ctx->err filled; with ctx->all, 0 or
 * POLICY_ERR_NOMEM, the errors being in ctx->all. */
int schema_walk(struct schema_ctx *ctx, const struct ynode *map, const struct sfield *fields,
                void *base, const char *prefix, int line, int column);

/* The cross-field rules of a document, run once its walk found no error: 0, or a
 * POLICY_ERR_* with ctx->err filled. */
typedef int (*schema_post_fn)(struct schema_ctx *ctx, void *base);

/* A whole document against fields, every error in errors (cleared first): parses bytes
 * (repeated keys kept for the walk to report), walks them into base and, when the walk
 * found no error, runs post (may be NULL). An error that stops the reading (syntax,
 * limits, bytes NULL with len > 0) is the only one; out of memory too. Returns 0 or the
 * first error's code (errors->item[0].code). */
int schema_check(const char *file, const void *bytes, size_t len, const struct sfield *fields,
                 void *base, schema_post_fn post, struct policy_errors *errors);

/* The key (and value) position of path if it was given in the file, else NULL. */
const struct schema_seen *schema_seen(const struct schema_ctx *ctx, const char *path);

void schema_ctx_free(struct schema_ctx *ctx);

/* Releases what a walk allocated in base (SF_TEXT, SF_STRING, SF_IDLIST, SF_GLOBLIST,
 * SF_STRLIST, SF_ENVMAP). */
void schema_free(const struct sfield *fields, void *base);

/* Appends "prefix.key=value" lines for every field into a growing array of malloc'd
 * strings. Returns 0 or POLICY_ERR_NOMEM. */
struct schema_lines {
    char **line;
    size_t n, cap;
};
int schema_canonical(const struct sfield *fields, const void *base, const char *prefix,
                     struct schema_lines *out);
void schema_lines_free(struct schema_lines *l);

/* Shortest decimal that reads back as exactly d, with '.' whatever the locale. */
void schema_format_double(double d, char *out, size_t out_len);

/* The id rule ([a-z0-9][a-z0-9._-]*, 1..max bytes). */
bool schema_valid_id(const char *s, size_t len, size_t max);

#endif
