#ifndef AULAC_COMMON_JSON_H
#define AULAC_COMMON_JSON_H
/* The one JSON reader for untrusted JSON files and lines (a plug-in trainer's
 * metrics.json and stdout lines, Hugging Face config.json): RFC 8259 text parsed into
 * a tree, bounded and strict.
 *
 *   struct json_doc *d; char why[200];
 *   if (json_parse(bytes, len, &d, why, sizeof why) != 0) { ... why: "line 3, column 7:
 *       expected ',' or '}'" ... }
 *   const struct json_value *steps = json_get(json_root(d), "steps");
 *   uint64_t n; if (json_u64(steps, &n) != 0) ...
 *   json_free(d);
 *
 * Refused: invalid UTF-8 (also in escapes: lone surrogates), control bytes in strings,
 * a key twice in one object, nesting deeper than JSON_MAX_DEPTH, more than
 * JSON_MAX_NODES values, anything but whitespace after the value, NUL in a string
 * (\u0000), numbers that are not JSON numbers. Numbers are kept as their text and as a
 * double. Errors: JSON_ERR_SYNTAX (why has line and column), JSON_ERR_LIMIT,
 * JSON_ERR_NOMEM. */
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64
#define JSON_MAX_NODES 1000000

enum json_error {
    JSON_ERR_SYNTAX = -1,
    JSON_ERR_LIMIT = -2,
    JSON_ERR_NOMEM = -3,
    JSON_ERR_TYPE = -4,      /* accessors: the value is absent or of another type/range */
};

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY,
                 JSON_OBJECT };

struct json_value;
struct json_doc;

/* Parses text[len] (need not be NUL-terminated). *out NULL on error. */
int json_parse(const char *text, size_t len, struct json_doc **out, char *why, size_t cap);
void json_free(struct json_doc *d);
const struct json_value *json_root(const struct json_doc *d);

/* All accessors take NULL and answer as for a value of another type. */
enum json_type json_type(const struct json_value *v);      /* JSON_NULL for NULL */
/* Object member by key; NULL when v is no object or the key is absent. */
const struct json_value *json_get(const struct json_value *v, const char *key);
/* Number of elements (array) or members (object); 0 otherwise. */
size_t json_count(const struct json_value *v);
/* Element i of an array, or the value of member i of an object (in document order,
 * key in *key when key is not NULL); NULL past the end. */
const struct json_value *json_at(const struct json_value *v, size_t i, const char **key);
/* The string (NUL-terminated UTF-8, no NUL inside; valid until json_free) or NULL. */
const char *json_str(const struct json_value *v);
/* Numbers: 0, or JSON_ERR_TYPE for another type, a fraction or exponent where an
 * integer is wanted, or a value out of range. */
int json_double(const struct json_value *v, double *out);
int json_u64(const struct json_value *v, uint64_t *out);   /* digits only, <= UINT64_MAX */
int json_i64(const struct json_value *v, int64_t *out);
int json_bool(const struct json_value *v, int *out);

#endif
