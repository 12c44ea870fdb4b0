/* common/json: the strict reader of untrusted JSON. Every refusal of json.h, with its
 * line and column; the accessors' types and ranges; the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"

/* Parses s (strlen) and expects refusal rc with why containing want. */
static void refuse(const char *s, size_t len, int rc, const char *want)
{
    struct json_doc *d = (struct json_doc *)1;
    char why[200] = "";
    int got = json_parse(s, len, &d, why, sizeof why);
    if (got != rc || !strstr(why, want))
        fail_msg("input <%.60s>: rc %d (want %d), why \"%s\" (want \"%s\")", s, got, rc, why,
                 want);
    assert_null(d);
}

static void refuse_s(const char *s, int rc, const char *want)
{
    refuse(s, strlen(s), rc, want);
}

static struct json_doc *accept_s(const char *s)
{
    struct json_doc *d = NULL;
    char why[200] = "";
    int rc = json_parse(s, strlen(s), &d, why, sizeof why);
    if (rc != 0)
        fail_msg("input <%.60s> refused: %s", s, why);
    assert_non_null(d);
    return d;
}

static void test_values(void **state)
{
    (void)state;
    struct json_doc *d = accept_s(
        " {\"steps\": 20, \"loss\": [2.5, -1e-3, 0], \"ok\": true, \"no\": false,\n"
        "  \"nothing\": null, \"name\": \"Vi\\u1ec7t \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\","
        "  \"emoji\": \"\\ud83d\\ude00 \xf0\x9f\x98\x80\", \"big\": 18446744073709551615,"
        "  \"neg\": -9223372036854775808, \"empty\": {}, \"arr\": []}\r\n\t ");
    const struct json_value *r = json_root(d);
    assert_int_equal(json_type(r), JSON_OBJECT);
    assert_int_equal(json_count(r), 11);
    uint64_t u;
    int64_t i;
    double x;
    int b;
    assert_int_equal(json_u64(json_get(r, "steps"), &u), 0);
    assert_int_equal(u, 20);
    const struct json_value *loss = json_get(r, "loss");
    assert_int_equal(json_type(loss), JSON_ARRAY);
    assert_int_equal(json_count(loss), 3);
    assert_int_equal(json_double(json_at(loss, 0, NULL), &x), 0);
    assert_true(x == 2.5);
    assert_int_equal(json_double(json_at(loss, 1, NULL), &x), 0);
    assert_true(x == -1e-3);
    assert_null(json_at(loss, 3, NULL));
    /* integers are digits only */
    assert_int_equal(json_u64(json_at(loss, 0, NULL), &u), JSON_ERR_TYPE);
    assert_int_equal(json_i64(json_at(loss, 1, NULL), &i), JSON_ERR_TYPE);
    assert_int_equal(json_u64(json_at(loss, 2, NULL), &u), 0);
    assert_int_equal(json_bool(json_get(r, "ok"), &b), 0);
    assert_int_equal(b, 1);
    assert_int_equal(json_bool(json_get(r, "no"), &b), 0);
    assert_int_equal(b, 0);
    assert_int_equal(json_bool(json_get(r, "nothing"), &b), JSON_ERR_TYPE);
    assert_int_equal(json_type(json_get(r, "nothing")), JSON_NULL);
    assert_string_equal(json_str(json_get(r, "name")),
                        "Vi\xe1\xbb\x87t \"q\" \\ / \b\f\n\r\t");
    assert_string_equal(json_str(json_get(r, "emoji")), "\xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
    assert_int_equal(json_u64(json_get(r, "big"), &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(json_i64(json_get(r, "big"), &i), JSON_ERR_TYPE);
    assert_int_equal(json_i64(json_get(r, "neg"), &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(json_u64(json_get(r, "neg"), &u), JSON_ERR_TYPE);
    assert_int_equal(json_count(json_get(r, "empty")), 0);
    assert_null(json_get(json_get(r, "empty"), "x"));
    assert_null(json_get(r, "absent"));
    /* members in document order */
    const char *key;
    assert_non_null(json_at(r, 0, &key));
    assert_string_equal(key, "steps");
    assert_non_null(json_at(r, 10, &key));
    assert_string_equal(key, "arr");
    assert_null(json_at(r, 11, &key));
    assert_null(key);
    /* accessors on the wrong type or NULL */
    assert_null(json_str(json_get(r, "steps")));
    assert_null(json_get(loss, "steps"));
    assert_int_equal(json_count(json_get(r, "name")), 0);
    assert_int_equal(json_u64(NULL, &u), JSON_ERR_TYPE);
    assert_int_equal(json_double(json_get(r, "name"), &x), JSON_ERR_TYPE);
    assert_int_equal(json_type(NULL), JSON_NULL);
    json_free(d);

    /* scalars at the top; numbers of every JSON form */
    d = accept_s("\"x\"");
    assert_string_equal(json_str(json_root(d)), "x");
    json_free(d);
    d = accept_s("-0.5E+2");
    assert_int_equal(json_double(json_root(d), &x), 0);
    assert_true(x == -50);
    json_free(d);
    d = accept_s("1e999"); /* a JSON number, but no double: json_double says so */
    assert_int_equal(json_double(json_root(d), &x), JSON_ERR_TYPE);
    json_free(d);
    d = accept_s("18446744073709551616"); /* UINT64_MAX + 1 */
    assert_int_equal(json_u64(json_root(d), &u), JSON_ERR_TYPE);
    assert_int_equal(json_double(json_root(d), &x), 0);
    json_free(d);
    d = accept_s("9223372036854775807");
    assert_int_equal(json_i64(json_root(d), &i), 0);
    assert_true(i == INT64_MAX);
    json_free(d);
    d = accept_s("[0, -0, 10, 1.25e-2]");
    assert_int_equal(json_i64(json_at(json_root(d), 1, NULL), &i), 0);
    assert_int_equal(i, 0);
    json_free(d);
    json_free(NULL);
}

static void test_syntax_refusals(void **state)
{
    (void)state;
    refuse_s("", JSON_ERR_SYNTAX, "line 1, column 1: expected a value, found the end");
    refuse_s("   \n ", JSON_ERR_SYNTAX, "line 2, column 2: expected a value");
    refuse_s("{\"a\": 1,\n \"b\" 2}", JSON_ERR_SYNTAX, "line 2, column 6: expected ':'");
    refuse_s("{\"a\": 1\n\n  \"b\": 2}", JSON_ERR_SYNTAX, "line 3, column 3: expected ',' or '}'");
    refuse_s("[1 2]", JSON_ERR_SYNTAX, "line 1, column 4: expected ',' or ']'");
    refuse_s("[1,]", JSON_ERR_SYNTAX, "line 1, column 4: expected a value, found ']'");
    refuse_s("{\"a\":1,}", JSON_ERR_SYNTAX, "expected a key");
    refuse_s("{a: 1}", JSON_ERR_SYNTAX, "expected a key (a string), found 'a'");
    refuse_s("{'a': 1}", JSON_ERR_SYNTAX, "expected a key");
    refuse_s("[1", JSON_ERR_SYNTAX, "found the end of the text");
    refuse_s("{\"a\": 1} x", JSON_ERR_SYNTAX, "line 1, column 10: 'x' after the value");
    refuse_s("{} {}", JSON_ERR_SYNTAX, "after the value");
    refuse_s("[tru]", JSON_ERR_SYNTAX, "line 1, column 2: expected a value (true");
    refuse_s("[truex]", JSON_ERR_SYNTAX, "unexpected 'x' after a value");
    refuse_s("nul", JSON_ERR_SYNTAX, "expected a value");
    refuse_s("NaN", JSON_ERR_SYNTAX, "expected a value, found 'N'");
    refuse_s("[Infinity]", JSON_ERR_SYNTAX, "expected a value, found 'I'");
    refuse_s("/* c */ 1", JSON_ERR_SYNTAX, "expected a value, found '/'");
    /* numbers */
    refuse_s("01", JSON_ERR_SYNTAX, "leading zeros");
    refuse_s("-", JSON_ERR_SYNTAX, "a number needs a digit");
    refuse_s("+1", JSON_ERR_SYNTAX, "expected a value, found '+'");
    refuse_s("1.", JSON_ERR_SYNTAX, "a digit must follow the decimal point");
    refuse_s(".5", JSON_ERR_SYNTAX, "expected a value, found '.'");
    refuse_s("1e", JSON_ERR_SYNTAX, "an exponent needs a digit");
    refuse_s("1e+", JSON_ERR_SYNTAX, "an exponent needs a digit");
    refuse_s("0x10", JSON_ERR_SYNTAX, "unexpected 'x' after a value");
    refuse_s("[1.5.2]", JSON_ERR_SYNTAX, "unexpected '.'");
    refuse_s("[1-2]", JSON_ERR_SYNTAX, "unexpected '-'");
    /* whitespace is space, tab, LF, CR only */
    refuse_s("\f1", JSON_ERR_SYNTAX, "found byte 0x0c");
    refuse_s("\xef\xbb\xbf{}", JSON_ERR_SYNTAX, "byte order mark");
    refuse("[1]\0", 4, JSON_ERR_SYNTAX, "byte 0x00 after the value");
}

static void test_string_refusals(void **state)
{
    (void)state;
    refuse_s("\"abc", JSON_ERR_SYNTAX, "line 1, column 1: string not terminated");
    refuse_s("\"abc\\\"", JSON_ERR_SYNTAX, "string not terminated");
    refuse_s("\"a\tb\"", JSON_ERR_SYNTAX, "line 1, column 3: control byte 0x09");
    refuse_s("\"a\nb\"", JSON_ERR_SYNTAX, "control byte 0x0a");
    refuse("\"a\0b\"", 5, JSON_ERR_SYNTAX, "control byte 0x00");
    refuse_s("\"\\x41\"", JSON_ERR_SYNTAX, "invalid escape \\x");
    refuse_s("\"\\u12\"", JSON_ERR_SYNTAX, "\\u needs four hex digits");
    refuse_s("\"\\u12G4\"", JSON_ERR_SYNTAX, "\\u needs four hex digits");
    refuse_s("\"\\u0000\"", JSON_ERR_SYNTAX, "\\u0000 (NUL)");
    /* surrogates in escapes: pairs only */
    refuse_s("\"\\ud800\"", JSON_ERR_SYNTAX, "high surrogate \\uD800 not followed");
    refuse_s("\"\\ud800x\"", JSON_ERR_SYNTAX, "high surrogate");
    refuse_s("\"\\ud800\\u0041\"", JSON_ERR_SYNTAX, "high surrogate");
    refuse_s("\"\\ud800\\ud800\"", JSON_ERR_SYNTAX, "high surrogate");
    refuse_s("\"\\udc00\"", JSON_ERR_SYNTAX, "lone low surrogate \\uDC00");
    refuse_s("\"ok \\ude00\\ud83d\"", JSON_ERR_SYNTAX, "line 1, column 5: lone low surrogate");
    /* UTF-8: truncated, overlong, surrogates, beyond U+10FFFF, stray continuation */
    refuse_s("\"\xc3\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xe1\xbb\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xc0\xaf\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xc1\xbf\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xe0\x80\xaf\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xf0\x80\x80\xaf\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xed\xa0\x80\"", JSON_ERR_SYNTAX, "invalid UTF-8");  /* U+D800 */
    refuse_s("\"\xed\xbf\xbf\"", JSON_ERR_SYNTAX, "invalid UTF-8");  /* U+DFFF */
    refuse_s("\"\xf4\x90\x80\x80\"", JSON_ERR_SYNTAX, "invalid UTF-8"); /* U+110000 */
    refuse_s("\"\xf5\x80\x80\x80\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\x80\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xff\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    refuse_s("\"\xe1\x41\x41\"", JSON_ERR_SYNTAX, "invalid UTF-8");
    /* also in keys, with the column counted in characters */
    refuse_s("{\"\xc3\xa9\xc3\xa9\": 1, \"k\xc3\": 2}", JSON_ERR_SYNTAX,
             "line 1, column 13: invalid UTF-8");
    /* the edges that are valid */
    struct json_doc *d = accept_s("[\"\xed\x9f\xbf\", \"\xee\x80\x80\", \"\xf4\x8f\xbf\xbf\","
                                  " \"\\uffff\", \"\\udbff\\udfff\", \"\\u007f\"]");
    const struct json_value *r = json_root(d);
    assert_string_equal(json_str(json_at(r, 3, NULL)), "\xef\xbf\xbf");
    assert_string_equal(json_str(json_at(r, 4, NULL)), "\xf4\x8f\xbf\xbf");
    json_free(d);
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    refuse_s("{\"a\": 1, \"b\": 2, \"a\": 3}", JSON_ERR_SYNTAX,
             "line 1, column 1: the object starting here has the key \"a\" twice");
    refuse_s("[{}, {\"x\": {\"k\": 1, \"\\u006b\": 2}}]", JSON_ERR_SYNTAX,
             "line 1, column 12: the object starting here has the key \"k\" twice");
    /* keys that differ only in case or in a later byte are distinct; lookups find each */
    struct json_doc *d = accept_s("{\"a\": 1, \"A\": 2, \"ab\": 3, \"a\\u0062c\": 4}");
    uint64_t u;
    assert_int_equal(json_u64(json_get(json_root(d), "A"), &u), 0);
    assert_int_equal(u, 2);
    assert_int_equal(json_u64(json_get(json_root(d), "abc"), &u), 0);
    assert_int_equal(u, 4);
    assert_int_equal(json_u64(json_get(json_root(d), "ab"), &u), 0);
    assert_int_equal(u, 3);
    json_free(d);

    /* a big object: duplicates found by sorting, not by comparing every pair */
    size_t n = 200000, cap = n * 16 + 16, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    s[len++] = '}';
    d = NULL;
    assert_int_equal(json_parse(s, len, &d, NULL, 0), 0);
    assert_int_equal(json_count(json_root(d)), n);
    assert_int_equal(json_u64(json_get(json_root(d), "k123456"), &u), 0);
    assert_int_equal(u, 123456);
    json_free(d);
    len--;
    len += (size_t)snprintf(s + len, cap - len, ",\"k77\":0}");
    refuse(s, len, JSON_ERR_SYNTAX, "the key \"k77\" twice");
    free(s);
}

static void test_limits(void **state)
{
    (void)state;
    char deep[2 * JSON_MAX_DEPTH + 8];
    size_t n = 0;
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[n++] = '[';
    for (int i = 0; i < JSON_MAX_DEPTH; i++)
        deep[n++] = ']';
    struct json_doc *d = NULL;
    assert_int_equal(json_parse(deep, n, &d, NULL, 0), 0); /* exactly the limit */
    json_free(d);
    /* one more level, of objects and arrays mixed: {"":[{"":[... */
    char mixed[8 * (JSON_MAX_DEPTH + 1) + 8];
    n = 0;
    for (int i = 0; i <= JSON_MAX_DEPTH; i++) {
        if (i % 2 == 0) {
            memcpy(mixed + n, "{\"\":", 4);
            n += 4;
        } else {
            mixed[n++] = '[';
        }
    }
    refuse(mixed, n, JSON_ERR_LIMIT, "nested deeper than 64");

    /* a million values are fine, one more is not: [0,0,...] has n + 1 values */
    size_t count = JSON_MAX_NODES - 1, len = 0;
    char *s = malloc(2 * count + 8);
    assert_non_null(s);
    s[len++] = '[';
    for (size_t i = 0; i < count; i++) {
        s[len++] = '0';
        s[len++] = ',';
    }
    s[len - 1] = ']';
    d = NULL;
    assert_int_equal(json_parse(s, len, &d, NULL, 0), 0);
    assert_int_equal(json_count(json_root(d)), count);
    json_free(d);
    s[len - 1] = ',';
    s[len++] = '0';
    s[len++] = ']';
    refuse(s, len, JSON_ERR_LIMIT, "more than 1000000 values");
    free(s);
}

static void test_why_optional(void **state)
{
    (void)state;
    struct json_doc *d = (struct json_doc *)1;
    assert_int_equal(json_parse("[", 1, &d, NULL, 0), JSON_ERR_SYNTAX);
    assert_null(d);
    char tiny[8];
    assert_int_equal(json_parse("[", 1, &d, tiny, sizeof tiny), JSON_ERR_SYNTAX);
    assert_true(strlen(tiny) < sizeof tiny);
    /* not NUL-terminated input: only len bytes are read */
    const char buf[] = {'[', '1', ']', '@'};
    assert_int_equal(json_parse(buf, 3, &d, NULL, 0), 0);
    json_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),           cmocka_unit_test(test_syntax_refusals),
        cmocka_unit_test(test_string_refusals),  cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_limits),           cmocka_unit_test(test_why_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
