/* The strict JSON reader of common/json.h: RFC 8259 text into a tree of values.
 *
 * Guarantees: every byte of the input is looked at once by a recursive descent whose
 * depth is bounded by JSON_MAX_DEPTH; every string in the tree is valid UTF-8 without
 * NUL; the members of an object are unique (checked by sorting the keys, so an object
 * of n members costs O(n log n), not O(n^2)); the tree holds at most JSON_MAX_NODES
 * values. On any refusal nothing is kept and why says "line L, column C: ..." (L and C
 * count from 1, C in characters of the line). */
#include "common/json.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct json_value {
    enum json_type type;
    size_t n;                       /* string bytes, or elements/members */
    union {
        char *s;                    /* JSON_STRING: n bytes + NUL */
        struct {
            char *text;             /* the number as written */
            double d;
        } num;
        struct {
            struct json_value **items;  /* n values (members' values for an object) */
            char **keys;                /* object: n keys, document order */
            size_t *sorted;             /* object: member indices sorted by key */
            size_t cap;
        } c;
    } u;
};

struct json_doc {
    struct json_value *root;
};

struct parser {
    const unsigned char *s;
    size_t len, pos;
    size_t nodes;
    int depth;
    char *why;
    size_t cap;
};

static void value_free(struct json_value *v)
{
    if (!v)
        return;
    switch (v->type) {
    case JSON_STRING:
        free(v->u.s);
        break;
    case JSON_NUMBER:
        free(v->u.num.text);
        break;
    case JSON_ARRAY:
    case JSON_OBJECT:
        for (size_t i = 0; i < v->n; i++) {
            value_free(v->u.c.items[i]);
            if (v->u.c.keys)
                free(v->u.c.keys[i]);
        }
        free(v->u.c.items);
        free(v->u.c.keys);
        free(v->u.c.sorted);
        break;
    default:
        break;
    }
    free(v);
}

/* Writes "line L, column C: msg" for byte offset at into why; returns rc. */
static int fail_at(struct parser *p, size_t at, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at(struct parser *p, size_t at, int rc, const char *fmt, ...)
{
    if (!p->why || p->cap == 0)
        return rc;
    size_t line = 1, col = 1;
    if (at > p->len)
        at = p->len;
    for (size_t i = 0; i < at; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else if ((p->s[i] & 0xC0) != 0x80) {
            col++;
        }
    }
    int n = snprintf(p->why, p->cap, "line %zu, column %zu: ", line, col);
    if (n < 0 || (size_t)n >= p->cap)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why + n, p->cap - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->pos++;
    }
}

/* Describes the byte at pos for an error message. */
static const char *what_is(struct parser *p, char buf[16])
{
    if (p->pos >= p->len)
        return "the end of the text";
    unsigned char c = p->s[p->pos];
    if (c >= 0x21 && c < 0x7F)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static struct json_value *new_node(struct parser *p, enum json_type t, int *rc)
{
    if (p->nodes >= JSON_MAX_NODES) {
        *rc = fail_at(p, p->pos, JSON_ERR_LIMIT, "more than %d values", JSON_MAX_NODES);
        return NULL;
    }
    struct json_value *v = calloc(1, sizeof *v);
    if (!v) {
        *rc = fail_at(p, p->pos, JSON_ERR_NOMEM, "out of memory");
        return NULL;
    }
    p->nodes++;
    v->type = t;
    *rc = 0;
    return v;
}

/* Length (1..4) of the valid UTF-8 sequence at s[0..avail), or 0 when invalid
 * (overlong forms, surrogates U+D800..U+DFFF, code points above U+10FFFF, truncation). */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (avail < n)
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

static int hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *d, unsigned cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* A string at pos (which holds '"') into a malloc'd NUL-terminated buffer. The decoded
 * text is never longer than the raw text, so one allocation of the raw length suffices. */
static int parse_string(struct parser *p, char **out, size_t *out_len)
{
    size_t start = ++p->pos, end = start;
    /* find the closing quote first, to size the buffer */
    while (end < p->len && p->s[end] != '"') {
        if (p->s[end] == '\\' && end + 1 < p->len)
            end++;
        end++;
    }
    if (end >= p->len)
        return fail_at(p, start - 1, JSON_ERR_SYNTAX, "string not terminated");
    char *d = malloc(end - start + 1);
    if (!d)
        return fail_at(p, start, JSON_ERR_NOMEM, "out of memory");
    size_t n = 0;
    int rc = 0;
    while (p->pos < end) {
        unsigned char c = p->s[p->pos];
        if (c < 0x20) {
            rc = fail_at(p, p->pos, JSON_ERR_SYNTAX,
                         "control byte 0x%02x in a string (escape it)", c);
            goto bad;
        }
        if (c >= 0x80) {
            size_t k = utf8_len(p->s + p->pos, end - p->pos);
            if (!k) {
                rc = fail_at(p, p->pos, JSON_ERR_SYNTAX, "invalid UTF-8 in a string");
                goto bad;
            }
            memcpy(d + n, p->s + p->pos, k);
            n += k;
            p->pos += k;
            continue;
        }
        if (c != '\\') {
            d[n++] = (char)c;
            p->pos++;
            continue;
        }
        size_t esc = p->pos;
        unsigned char e = p->s[p->pos + 1]; /* exists: end > pos + 1 by the scan above */
        p->pos += 2;
        switch (e) {
        case '"': d[n++] = '"'; break;
        case '\\': d[n++] = '\\'; break;
        case '/': d[n++] = '/'; break;
        case 'b': d[n++] = '\b'; break;
        case 'f': d[n++] = '\f'; break;
        case 'n': d[n++] = '\n'; break;
        case 'r': d[n++] = '\r'; break;
        case 't': d[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (end - p->pos < 4 || hex4(p->s + p->pos, &cp)) {
                rc = fail_at(p, esc, JSON_ERR_SYNTAX, "\\u needs four hex digits");
                goto bad;
            }
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                rc = fail_at(p, esc, JSON_ERR_SYNTAX,
                             "lone low surrogate \\u%04X (not a character)", cp);
                goto bad;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (end - p->pos < 6 || p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' ||
                    hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                    rc = fail_at(p, esc, JSON_ERR_SYNTAX,
                                 "high surrogate \\u%04X not followed by a low surrogate",
                                 cp);
                    goto bad;
                }
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            if (cp == 0) {
                rc = fail_at(p, esc, JSON_ERR_SYNTAX, "\\u0000 (NUL) in a string");
                goto bad;
            }
            /* at most 4 bytes out for 6 (or 12) bytes in */
            n += put_utf8(d + n, cp);
            break;
        }
        default:
            rc = fail_at(p, esc, JSON_ERR_SYNTAX, "invalid escape \\%c",
                         e >= 0x21 && e < 0x7F ? e : '?');
            goto bad;
        }
    }
    p->pos = end + 1;
    d[n] = 0;
    *out = d;
    *out_len = n;
    return 0;
bad:
    free(d);
    return rc;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int parse_number(struct parser *p, struct json_value *v)
{
    size_t start = p->pos, i = p->pos;
    if (i < p->len && p->s[i] == '-')
        i++;
    if (i >= p->len || !is_digit(p->s[i]))
        return fail_at(p, i, JSON_ERR_SYNTAX, "a number needs a digit here");
    if (p->s[i] == '0') {
        i++;
        if (i < p->len && is_digit(p->s[i]))
            return fail_at(p, i, JSON_ERR_SYNTAX, "a number has no leading zeros");
    } else {
        while (i < p->len && is_digit(p->s[i]))
            i++;
    }
    if (i < p->len && p->s[i] == '.') {
        i++;
        if (i >= p->len || !is_digit(p->s[i]))
            return fail_at(p, i, JSON_ERR_SYNTAX, "a digit must follow the decimal point");
        while (i < p->len && is_digit(p->s[i]))
            i++;
    }
    if (i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        if (i >= p->len || !is_digit(p->s[i]))
            return fail_at(p, i, JSON_ERR_SYNTAX, "an exponent needs a digit");
        while (i < p->len && is_digit(p->s[i]))
            i++;
    }
    size_t n = i - start;
    char *t = malloc(n + 1);
    if (!t)
        return fail_at(p, start, JSON_ERR_NOMEM, "out of memory");
    memcpy(t, p->s + start, n);
    t[n] = 0;
    v->u.num.text = t;
    v->u.num.d = strtod(t, NULL); /* may be +-HUGE_VAL: json_double refuses that */
    p->pos = i;
    return 0;
}

static int parse_value(struct parser *p, struct json_value **out);

static int grow(struct parser *p, struct json_value *v, int object)
{
    if (v->n < v->u.c.cap)
        return 0;
    size_t cap = v->u.c.cap ? v->u.c.cap * 2 : 4;
    struct json_value **items = realloc(v->u.c.items, cap * sizeof *items);
    if (!items)
        return fail_at(p, p->pos, JSON_ERR_NOMEM, "out of memory");
    v->u.c.items = items;
    if (object) {
        char **keys = realloc(v->u.c.keys, cap * sizeof *keys);
        if (!keys)
            return fail_at(p, p->pos, JSON_ERR_NOMEM, "out of memory");
        v->u.c.keys = keys;
    }
    v->u.c.cap = cap;
    return 0;
}

/* qsort context: the object being sorted (qsort has none, and one parse runs per
 * thread at a time; the variable is thread-local). */
static __thread char **sort_keys;

static int cmp_key(const void *a, const void *b)
{
    return strcmp(sort_keys[*(const size_t *)a], sort_keys[*(const size_t *)b]);
}

/* Sorts the member indices by key and refuses a key present twice. */
static int index_keys(struct parser *p, struct json_value *v, size_t open)
{
    if (v->n == 0)
        return 0;
    v->u.c.sorted = malloc(v->n * sizeof(size_t));
    if (!v->u.c.sorted)
        return fail_at(p, open, JSON_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < v->n; i++)
        v->u.c.sorted[i] = i;
    sort_keys = v->u.c.keys;
    qsort(v->u.c.sorted, v->n, sizeof(size_t), cmp_key);
    sort_keys = NULL;
    for (size_t i = 1; i < v->n; i++) {
        const char *k = v->u.c.keys[v->u.c.sorted[i]];
        if (strcmp(v->u.c.keys[v->u.c.sorted[i - 1]], k) == 0)
            return fail_at(p, open, JSON_ERR_SYNTAX,
                           "the object starting here has the key \"%.64s\" twice", k);
    }
    return 0;
}

static int parse_container(struct parser *p, struct json_value *v)
{
    int object = v->type == JSON_OBJECT;
    unsigned char close = object ? '}' : ']';
    size_t open = p->pos;
    if (++p->depth > JSON_MAX_DEPTH)
        return fail_at(p, open, JSON_ERR_LIMIT, "nested deeper than %d", JSON_MAX_DEPTH);
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        p->depth--;
        return 0;
    }
    for (;;) {
        int rc = grow(p, v, object);
        if (rc)
            return rc;
        char buf[16];
        if (object) {
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail_at(p, p->pos, JSON_ERR_SYNTAX, "expected a key (a string), found %s",
                               what_is(p, buf));
            char *key;
            size_t klen;
            if ((rc = parse_string(p, &key, &klen)))
                return rc;
            skip_ws(p);
            if (p->pos >= p->len || p->s[p->pos] != ':') {
                free(key);
                return fail_at(p, p->pos, JSON_ERR_SYNTAX, "expected ':', found %s",
                               what_is(p, buf));
            }
            p->pos++;
            struct json_value *item;
            if ((rc = parse_value(p, &item))) {
                free(key);
                return rc;
            }
            v->u.c.keys[v->n] = key;
            v->u.c.items[v->n++] = item;
        } else {
            struct json_value *item;
            if ((rc = parse_value(p, &item)))
                return rc;
            v->u.c.items[v->n++] = item;
        }
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == ',') {
            p->pos++;
            continue;
        }
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            break;
        }
        return fail_at(p, p->pos, JSON_ERR_SYNTAX, "expected ',' or '%c', found %s", close,
                       what_is(p, buf));
    }
    p->depth--;
    return object ? index_keys(p, v, open) : 0;
}

static int literal(struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return -1;
    p->pos += n;
    return 0;
}

/* One value (leading whitespace skipped) into *out; on error nothing is kept. */
static int parse_value(struct parser *p, struct json_value **out)
{
    *out = NULL;
    skip_ws(p);
    char buf[16];
    if (p->pos >= p->len)
        return fail_at(p, p->pos, JSON_ERR_SYNTAX, "expected a value, found the end of the text");
    unsigned char c = p->s[p->pos];
    enum json_type t;
    switch (c) {
    case '{': t = JSON_OBJECT; break;
    case '[': t = JSON_ARRAY; break;
    case '"': t = JSON_STRING; break;
    case 't': t = JSON_TRUE; break;
    case 'f': t = JSON_FALSE; break;
    case 'n': t = JSON_NULL; break;
    default:
        if (c == '-' || is_digit(c)) {
            t = JSON_NUMBER;
            break;
        }
        if (c == 0xEF && p->pos == 0 && p->len >= 3 && p->s[1] == 0xBB && p->s[2] == 0xBF)
            return fail_at(p, p->pos, JSON_ERR_SYNTAX, "a byte order mark is not JSON");
        return fail_at(p, p->pos, JSON_ERR_SYNTAX, "expected a value, found %s",
                       what_is(p, buf));
    }
    int rc;
    struct json_value *v = new_node(p, t, &rc);
    if (!v)
        return rc;
    size_t at = p->pos;
    switch (t) {
    case JSON_OBJECT:
    case JSON_ARRAY:
        rc = parse_container(p, v);
        break;
    case JSON_STRING:
        rc = parse_string(p, &v->u.s, &v->n);
        break;
    case JSON_NUMBER:
        rc = parse_number(p, v);
        break;
    case JSON_TRUE:
        rc = literal(p, "true");
        break;
    case JSON_FALSE:
        rc = literal(p, "false");
        break;
    case JSON_NULL:
        rc = literal(p, "null");
        break;
    }
    if (rc == -1 && t != JSON_OBJECT && t != JSON_ARRAY && t != JSON_STRING &&
        t != JSON_NUMBER)
        rc = fail_at(p, at, JSON_ERR_SYNTAX, "expected a value (true, false or null?)");
    if (rc) {
        value_free(v);
        return rc;
    }
    /* a literal or number must not run into letters or digits ("truex", "1x") */
    if ((t == JSON_TRUE || t == JSON_FALSE || t == JSON_NULL || t == JSON_NUMBER) &&
        p->pos < p->len) {
        unsigned char n = p->s[p->pos];
        if ((n >= 'a' && n <= 'z') || (n >= 'A' && n <= 'Z') || is_digit(n) || n == '_' ||
            n == '.' || n == '+' || n == '-') {
            value_free(v);
            return fail_at(p, p->pos, JSON_ERR_SYNTAX, "unexpected %s after a value",
                           what_is(p, buf));
        }
    }
    *out = v;
    return 0;
}

int json_parse(const char *text, size_t len, struct json_doc **out, char *why, size_t cap)
{
    if (why && cap)
        why[0] = 0;
    if (!out)
        return JSON_ERR_SYNTAX;
    *out = NULL;
    struct parser p = {.s = (const unsigned char *)text, .len = text ? len : 0, .why = why,
                       .cap = cap};
    struct json_doc *d = calloc(1, sizeof *d);
    if (!d)
        return fail_at(&p, 0, JSON_ERR_NOMEM, "out of memory");
    int rc = parse_value(&p, &d->root);
    if (!rc) {
        skip_ws(&p);
        char buf[16];
        if (p.pos < p.len)
            rc = fail_at(&p, p.pos, JSON_ERR_SYNTAX, "%s after the value (only whitespace may "
                         "follow it)", what_is(&p, buf));
    }
    if (rc) {
        json_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void json_free(struct json_doc *d)
{
    if (!d)
        return;
    value_free(d->root);
    free(d);
}

const struct json_value *json_root(const struct json_doc *d)
{
    return d ? d->root : NULL;
}

enum json_type json_type(const struct json_value *v)
{
    return v ? v->type : JSON_NULL;
}

const struct json_value *json_get(const struct json_value *v, const char *key)
{
    if (!v || v->type != JSON_OBJECT || !key || v->n == 0)
        return NULL;
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t m = v->u.c.sorted[mid];
        int c = strcmp(v->u.c.keys[m], key);
        if (c == 0)
            return v->u.c.items[m];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t json_count(const struct json_value *v)
{
    return v && (v->type == JSON_ARRAY || v->type == JSON_OBJECT) ? v->n : 0;
}

const struct json_value *json_at(const struct json_value *v, size_t i, const char **key)
{
    if (key)
        *key = NULL;
    if (!v || (v->type != JSON_ARRAY && v->type != JSON_OBJECT) || i >= v->n)
        return NULL;
    if (key && v->type == JSON_OBJECT)
        *key = v->u.c.keys[i];
    return v->u.c.items[i];
}

const char *json_str(const struct json_value *v)
{
    return v && v->type == JSON_STRING ? v->u.s : NULL;
}

int json_double(const struct json_value *v, double *out)
{
    if (!v || v->type != JSON_NUMBER || !isfinite(v->u.num.d))
        return JSON_ERR_TYPE;
    *out = v->u.num.d;
    return 0;
}

/* Digits only (no sign, fraction or exponent), at most UINT64_MAX. */
static int digits_u64(const char *s, uint64_t *out)
{
    uint64_t x = 0;
    if (!*s)
        return JSON_ERR_TYPE;
    for (; *s; s++) {
        if (!is_digit((unsigned char)*s))
            return JSON_ERR_TYPE;
        unsigned d = (unsigned)(*s - '0');
        if (x > (UINT64_MAX - d) / 10)
            return JSON_ERR_TYPE;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

int json_u64(const struct json_value *v, uint64_t *out)
{
    if (!v || v->type != JSON_NUMBER)
        return JSON_ERR_TYPE;
    uint64_t x;
    if (digits_u64(v->u.num.text, &x))
        return JSON_ERR_TYPE;
    *out = x;
    return 0;
}

int json_i64(const struct json_value *v, int64_t *out)
{
    if (!v || v->type != JSON_NUMBER)
        return JSON_ERR_TYPE;
    const char *t = v->u.num.text;
    int neg = t[0] == '-';
    uint64_t x;
    if (digits_u64(t + neg, &x))
        return JSON_ERR_TYPE;
    if (neg) {
        if (x > (uint64_t)INT64_MAX + 1)
            return JSON_ERR_TYPE;
        *out = x == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)x;
    } else {
        if (x > (uint64_t)INT64_MAX)
            return JSON_ERR_TYPE;
        *out = (int64_t)x;
    }
    return 0;
}

int json_bool(const struct json_value *v, int *out)
{
    if (!v || (v->type != JSON_TRUE && v->type != JSON_FALSE))
        return JSON_ERR_TYPE;
    *out = v->type == JSON_TRUE;
    return 0;
}
