/* libFuzzer target: common/json.h on hostile bytes. Every input must either parse or be
 * refused with a JSON_ERR_* code and a reason that starts "line L, column C: "; a parsed
 * document must keep json.h's promises: every string (keys too) is valid UTF-8 without
 * NUL, an object's keys are unique and each is found by json_get, nesting stays within
 * JSON_MAX_DEPTH and the tree within JSON_MAX_NODES values, and every accessor answers
 * without crashing.
 *
 *   scripts/fuzz.sh builds it with common/json.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

/* An independent UTF-8 check (RFC 3629): 1 when s[0..n) is valid. */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t c = s[i], cp;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 2, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 3, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 4, cp = c & 0x07;
        } else {
            return 0;
        }
        if (i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k;
    }
    return 1;
}

static void check_string(const char *s)
{
    if (!s || !utf8_ok((const unsigned char *)s, strlen(s)))
        abort();
}

static size_t walk(const struct json_value *v, int depth)
{
    if (!v || depth > JSON_MAX_DEPTH + 1)
        abort();
    size_t nodes = 1;
    double d;
    uint64_t u;
    int64_t i64;
    int b;
    switch (json_type(v)) {
    case JSON_STRING:
        check_string(json_str(v));
        break;
    case JSON_NUMBER:
        (void)json_double(v, &d);
        if (json_u64(v, &u) == 0 && json_i64(v, &i64) == 0 && (int64_t)u != i64)
            abort();
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        if (json_bool(v, &b) != 0 || b != (json_type(v) == JSON_TRUE))
            abort();
        break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        if (depth + 1 > JSON_MAX_DEPTH)
            abort();
        for (size_t i = 0; i < json_count(v); i++) {
            const char *key = NULL;
            const struct json_value *x = json_at(v, i, &key);
            if (json_type(v) == JSON_OBJECT) {
                check_string(key);
                if (json_get(v, key) != x) /* unique keys: the lookup finds this member */
                    abort();
            } else if (key) {
                abort();
            }
            nodes += walk(x, depth + 1);
        }
        if (json_at(v, json_count(v), NULL))
            abort();
        break;
    case JSON_NULL:
        break;
    }
    return nodes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_doc *d = NULL;
    char why[200] = "";
    int rc = json_parse((const char *)data, size, &d, why, sizeof why);
    if (rc != 0) {
        if (d || strncmp(why, "line ", 5) != 0 ||
            (rc != JSON_ERR_SYNTAX && rc != JSON_ERR_LIMIT && rc != JSON_ERR_NOMEM))
            abort();
        return 0;
    }
    if (!d || walk(json_root(d), 0) > JSON_MAX_NODES)
        abort();
    json_free(d);
    return 0;
}
