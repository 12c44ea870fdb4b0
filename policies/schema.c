#include "policies/schema.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD_AT(base, off, type) ((type *)((char *)(base) + (off)))
#define CFIELD_AT(base, off, type) ((const type *)((const char *)(base) + (off)))
typedef char **strlist;

/* --- scalars -------------------------------------------------------------- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* YAML 1.2 core-schema integer: [-+]?[0-9]+ | 0x[0-9a-fA-F]+ | 0o[0-7]+.
 * Returns 0, -1 (not an integer) or -2 (does not fit in 64 bits). */
static int parse_int_text(const char *s, bool *neg, uint64_t *mag)
{
    *neg = false;
    *mag = 0;
    unsigned base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        s += 2;
    } else if (*s == '-' || *s == '+') {
        *neg = *s == '-';
        s++;
    }
    if (!*s)
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        unsigned d;
        if (is_digit(*s))
            d = (unsigned)(*s - '0');
        else if (base == 16 && *s >= 'a' && *s <= 'f')
            d = (unsigned)(*s - 'a' + 10);
        else if (base == 16 && *s >= 'A' && *s <= 'F')
            d = (unsigned)(*s - 'A' + 10);
        else
            return -1;
        if (d >= base)
            return -1;
        if (v > (UINT64_MAX - d) / base)
            return -2;
        v = v * base + d;
    }
    *mag = v;
    return 0;
}

/* YAML 1.2 core-schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
 * plus [-+]?.inf and .nan (which callers refuse). strtod() is given the digits without
 * the decimal point, so the process locale cannot change the result.
 * Returns 0 or -1 (not a number). */
static int parse_float_text(const char *s, double *out)
{
    const char *p = s;
    bool neg = false;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (p == s && (!strcmp(p, ".nan") || !strcmp(p, ".NaN") || !strcmp(p, ".NAN"))) {
        *out = NAN;
        return 0;
    }
    char digits[400];
    size_t nd = 0;
    long frac = 0;
    bool any = false, point = false;
    for (; *p && (is_digit(*p) || *p == '.'); p++) {
        if (*p == '.') {
            if (point)
                return -1;
            point = true;
            continue;
        }
        any = true;
        if (nd + 1 >= sizeof digits - 16)
            return -1;
        digits[nd++] = *p;
        if (point)
            frac++;
    }
    if (!any)
        return -1;
    long exp10 = 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        bool eneg = false;
        if (*p == '-' || *p == '+')
            eneg = *p++ == '-';
        if (!is_digit(*p))
            return -1;
        for (; is_digit(*p); p++) {
            if (exp10 < 100000)
                exp10 = exp10 * 10 + (*p - '0');
        }
        if (eneg)
            exp10 = -exp10;
    }
    if (*p)
        return -1;
    digits[nd] = '\0';
    char buf[sizeof digits + 32];
    snprintf(buf, sizeof buf, "%s%se%ld", neg ? "-" : "", digits, exp10 - frac);
    *out = strtod(buf, NULL);
    return 0;
}

void schema_format_double(double d, char *out, size_t out_len)
{
    if (d == 0) {
        snprintf(out, out_len, "0");
        return;
    }
    if (!isfinite(d)) {
        snprintf(out, out_len, isnan(d) ? "nan" : (d > 0 ? "inf" : "-inf"));
        return;
    }
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(out, out_len, "%.0f", d);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, out_len, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    /* Whatever the locale's decimal point was, the canonical one is '.'. */
    for (char *c = out; *c; c++)
        if (*c == ',')
            *c = '.';
}

bool schema_valid_id(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || is_digit(s[0])))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool valid_glob(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || strchr("._-*?[]!", c)) || c == '\0')
            return false;
    }
    return true;
}

/* A plain file name: 1..max of [A-Za-z0-9._-], so no directory part, and not "." or
 * "..". */
static bool valid_filename(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max || (len <= 2 && strspn(s, ".") == len))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '.' ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* Printable UTF-8 with \n and \t; no other control characters, no overlongs or
 * surrogates. */
static bool valid_text(const char *s, size_t len)
{
    return yaml_text_check(s, len, YAML_TEXT_NO_C1) == len;
}

/* One line of text: printable UTF-8 without any control character (no newline, no tab,
 * no NUL inside). */
static bool valid_line(const char *s, size_t len)
{
    return strlen(s) == len && valid_text(s, len) && !memchr(s, '\n', len) &&
           !memchr(s, '\t', len);
}

/* A relative path (SF_RELPATH): a line of 1..max bytes without '\\', '/'-separated
 * components none of which is empty, "." or "..". Why not into why. */
static bool valid_relpath(const char *s, size_t len, size_t max, const char **why)
{
    *why = NULL;
    if (len == 0 || len > max)
        *why = "the path is empty or too long";
    else if (!valid_line(s, len))
        *why = "the path holds control characters or invalid UTF-8";
    else if (s[0] == '/')
        *why = "an absolute path; give it relative to the policy file's directory";
    else if (memchr(s, '\\', len))
        *why = "a '\\' in the path; separate directories with '/'";
    for (const char *c = s; !*why && c < s + len;) {
        size_t n = strcspn(c, "/");
        if (n == 0)
            *why = "an empty path component (\"//\" or a trailing '/')";
        else if (n == 2 && c[0] == '.' && c[1] == '.')
            *why = "a \"..\" component; the file must lie at or below the policy file's directory";
        else if (n == 1 && c[0] == '.')
            *why = "a \".\" component; write the path without it";
        c += n;
        if (*c == '/')
            c++;
        if (!*why && c == s + len && s[len - 1] == '/')
            *why = "an empty path component (\"//\" or a trailing '/')";
    }
    return *why == NULL;
}

/* An environment variable name: [A-Za-z_][A-Za-z0-9_]*, 1..128 bytes. */
static bool valid_env_name(const char *s, size_t len)
{
    if (len == 0 || len > 128 || strlen(s) != len || is_digit(s[0]))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || is_digit(s[i]) ||
              s[i] == '_'))
            return false;
    return true;
}

/* --- the walk ------------------------------------------------------------- */

static void join_path(char *out, size_t out_len, const char *prefix, const char *key)
{
    int r = (prefix && *prefix) ? snprintf(out, out_len, "%s.%s", prefix, key)
                                : snprintf(out, out_len, "%s", key);
    if (r < 0 && out_len)
        out[0] = '\0';
}

const struct schema_seen *schema_seen(const struct schema_ctx *ctx, const char *path)
{
    for (size_t i = 0; i < ctx->n_seen; i++)
        if (!strcmp(ctx->seen[i].path, path))
            return &ctx->seen[i];
    return NULL;
}

static int record_seen(struct schema_ctx *ctx, const char *path, const struct ynode *k,
                       const struct ynode *v)
{
    if (ctx->n_seen == ctx->cap_seen) {
        size_t cap = ctx->cap_seen ? ctx->cap_seen * 2 : 64;
        struct schema_seen *s = realloc(ctx->seen, cap * sizeof *s);
        if (!s)
            return POLICY_ERR_NOMEM;
        ctx->seen = s;
        ctx->cap_seen = cap;
    }
    struct schema_seen *s = &ctx->seen[ctx->n_seen++];
    snprintf(s->path, sizeof s->path, "%s", path);
    s->line = k->line;
    s->column = k->column;
    s->vline = v ? v->line : k->line;
    s->vcolumn = v ? v->column : k->column;
    return 0;
}

void schema_ctx_free(struct schema_ctx *ctx)
{
    free(ctx->seen);
    ctx->seen = NULL;
    ctx->n_seen = ctx->cap_seen = 0;
}

static int name_index(const char *const *names, const char *s, size_t len)
{
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == len && !memcmp(names[i], s, len))
            return i;
    return -1;
}

/* "one of fedavg, nesterov, fedadam" */
static void names_list(const char *const *names, char *out, size_t out_len)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; names[i] && o < out_len; i++)
        o += (size_t)snprintf(out + o, out_len - o, "%s%s", i ? ", " : "one of ", names[i]);
}

/* An SF_FIXED enum: "fedavg (trimmed_mean, median, krum: not implemented yet)". */
static void fixed_names_list(const struct sfield *f, int fixed, char *out, size_t out_len)
{
    size_t o = (size_t)snprintf(out, out_len, "%s (", f->names[fixed]);
    int n = 0;
    for (int i = 0; f->names[i] && o < out_len; i++)
        if (i != fixed)
            o += (size_t)snprintf(out + o, out_len - o, "%s%s", n++ ? ", " : "", f->names[i]);
    if (o < out_len)
        snprintf(out + o, out_len - o, ": not implemented yet)");
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40)
        return 99;
    size_t d[41][41];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c)
                c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c)
                c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

static int err_at(struct schema_ctx *ctx, int code, const struct ynode *n, const char *path,
                  const char *fmt, const char *a, const char *b)
{
    char detail[600];
    snprintf(detail, sizeof detail, fmt, a, b ? b : "");
    yaml_error(ctx->err, code, ctx->file, n->line, n->column, path, "%s", detail);
    return code;
}

/* 017 is 17 in YAML 1.2 and octal 15 in YAML 1.1 (and to many YAML libraries); 019 is 19
 * or a string. A plain number whose integer part has a leading zero is refused, so that
 * nobody reading the signed policy with another YAML reader sees another value. */
static int refuse_leading_zero(struct schema_ctx *ctx, const struct ynode *v, const char *path)
{
    if (v->kind != YNODE_SCALAR || !v->plain)
        return 0;
    const char *s = v->text, *d;
    if (*s == '-' || *s == '+')
        s++;
    if (s[0] != '0' || !is_digit(s[1]))
        return 0;
    bool octal = true;
    uint64_t dec = 0, oct = 0;
    for (d = s; is_digit(*d); d++) {
        octal = octal && *d <= '7';
        if (dec < UINT64_MAX / 10)
            dec = dec * 10 + (uint64_t)(*d - '0');
        if (oct < UINT64_MAX / 8)
            oct = oct * 8 + (uint64_t)(*d - '0');
    }
    if (*d && *d != 'e' && *d != 'E')
        return 0;   /* 00.5: a decimal fraction to every reader */
    char got[64], readings[96], hint[96];
    ynode_describe(v, got, sizeof got);
    const char *sign = v->text[0] == '-' ? "-" : "";
    int digits = (int)(d - s) - 1;   /* after the first zero */
    if (*d) {
        snprintf(readings, sizeof readings, "YAML 1.2: a number, YAML 1.1: a string");
        snprintf(hint, sizeof hint, "write it without the leading zero");
    } else if (octal) {
        snprintf(readings, sizeof readings, "YAML 1.2: decimal %s%llu, YAML 1.1: octal %s%llu", sign,
                 (unsigned long long)dec, sign, (unsigned long long)oct);
        snprintf(hint, sizeof hint, "write %s%llu, or %s0o%.*s for octal", sign,
                 (unsigned long long)dec, sign, digits, s + 1);
    } else {
        snprintf(readings, sizeof readings, "YAML 1.2: decimal %s%llu, YAML 1.1: a string", sign,
                 (unsigned long long)dec);
        snprintf(hint, sizeof hint, "write %s%llu", sign, (unsigned long long)dec);
    }
    yaml_error(ctx->err, POLICY_ERR_TYPE, ctx->file, v->line, v->column, path,
               "%s has a leading zero, which YAML readers read differently (%s); %s", got, readings,
               hint);
    return POLICY_ERR_TYPE;
}

static void int_desc(const struct sfield *f, char *out, size_t len)
{
    snprintf(out, len, "%s", f->imin >= 1 ? "a positive integer" : "a non-negative integer");
}

static int store_int(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                     const char *path, void *base)
{
    char got[128], desc[64];
    int rz = refuse_leading_zero(ctx, v, path);
    if (rz)
        return rz;
    ynode_describe(v, got, sizeof got);
    int_desc(f, desc, sizeof desc);
    bool neg = false;
    uint64_t mag = 0;
    int rc = -1;
    if (v->kind == YNODE_SCALAR && v->plain && !ynode_is_null(v)) {
        rc = parse_int_text(v->text, &neg, &mag);
        if (rc == -1) {
            /* 1e6 and 2.0 are floats in YAML; an integral one is taken at its value. */
            double d;
            if (parse_float_text(v->text, &d) == 0 && isfinite(d) && d == floor(d) &&
                fabs(d) < 18446744073709551616.0) {
                neg = d < 0;
                mag = (uint64_t)fabs(d);
                rc = 0;
            } else if (parse_float_text(v->text, &d) == 0 && isfinite(d)) {
                rc = -3;
            }
        }
    }
    if (rc == -1 || rc == -3) {
        return err_at(ctx, POLICY_ERR_TYPE, v, path,
                      rc == -3 ? "expected %s, got a fraction: %s" : "expected %s, got %s",
                      desc, got);
    }
    if (rc == -2 || (neg && mag > 0) || mag < f->imin || mag > f->imax) {
        char range[96];
        snprintf(range, sizeof range, "an integer in [%llu, %llu]",
                 (unsigned long long)f->imin, (unsigned long long)f->imax);
        return err_at(ctx, POLICY_ERR_RANGE, v, path, "expected %s, got %s", range, got);
    }
    if (f->type == SF_U32)
        *FIELD_AT(base, f->off, uint32_t) = (uint32_t)mag;
    else if (f->type == SF_U64)
        *FIELD_AT(base, f->off, uint64_t) = mag;
    else
        *FIELD_AT(base, f->off, int) = (int)mag;
    return 0;
}

static int check_f64(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                     const char *path, double *out)
{
    char got[128];
    int rz = refuse_leading_zero(ctx, v, path);
    if (rz)
        return rz;
    ynode_describe(v, got, sizeof got);
    double d;
    if (v->kind != YNODE_SCALAR || !v->plain || ynode_is_null(v) ||
        parse_float_text(v->text, &d) != 0)
        return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected %s, got %s", "a number", got);
    bool lo_bad = (f->flags & SF_MIN_EXCL) ? !(d > f->fmin) : !(d >= f->fmin);
    bool hi_bad = (f->flags & SF_MAX_EXCL) ? !(d < f->fmax) : !(d <= f->fmax);
    if (!isfinite(d) || lo_bad || hi_bad) {
        char lo[40], hi[40], range[120];
        schema_format_double(f->fmin, lo, sizeof lo);
        schema_format_double(f->fmax, hi, sizeof hi);
        if (isinf(f->fmax))
            snprintf(range, sizeof range, "a finite number %s %s",
                     (f->flags & SF_MIN_EXCL) ? ">" : ">=", lo);
        else
            snprintf(range, sizeof range, "a number in %c%s, %s%c",
                     (f->flags & SF_MIN_EXCL) ? '(' : '[', lo, hi,
                     (f->flags & SF_MAX_EXCL) ? ')' : ']');
        return err_at(ctx, POLICY_ERR_RANGE, v, path, "expected %s, got %s", range, got);
    }
    *out = d == 0 ? 0.0 : d;   /* no -0 in canonical output */
    return 0;
}

static int store_string_list(struct schema_ctx *ctx, const struct sfield *f,
                             const struct ynode *v, const char *path, void *base)
{
    char got[128];
    ynode_describe(v, got, sizeof got);
    const char *what = (f->flags & SF_ALL) ? "all or a list of ids"
                       : f->type == SF_IDLIST ? "a list of ids" : "a list of name patterns";
    if (f->flags & SF_ALL) {
        if (v->kind == YNODE_SCALAR && v->len == 3 && !memcmp(v->text, "all", 3))
            return 0;   /* the default: count 0 */
        if (v->kind == YNODE_SEQ && v->n == 0)
            return err_at(ctx, POLICY_ERR_RANGE, v, path,
                          "an empty list names nobody; write `all` for every roster member "
                          "(members added later included), or list the members%s", "", NULL);
    } else if (ynode_is_null(v)) {
        return 0;
    }
    if (v->kind != YNODE_SEQ)
        return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected %s, got %s", what, got);
    if (v->n > f->imax) {
        char lim[32];
        snprintf(lim, sizeof lim, "%llu", (unsigned long long)f->imax);
        return err_at(ctx, POLICY_ERR_RANGE, v, path, "more than %s entries%s", lim, NULL);
    }
    char **list = calloc(v->n ? v->n : 1, sizeof *list);
    if (!list)
        return POLICY_ERR_NOMEM;
    size_t n = 0;
    int rc = 0;
    for (size_t i = 0; i < v->n && !rc; i++) {
        const struct ynode *it = v->vals[i];
        char item[128];
        ynode_describe(it, item, sizeof item);
        bool ok = it->kind == YNODE_SCALAR && !ynode_is_null(it) &&
                  (f->type == SF_IDLIST ? schema_valid_id(it->text, it->len, POLICY_ID_MAX)
                                        : valid_glob(it->text, it->len, POLICY_NAME_MAX));
        if (!ok) {
            rc = err_at(ctx, it->kind == YNODE_SCALAR ? POLICY_ERR_RANGE : POLICY_ERR_TYPE, it,
                        path,
                        f->type == SF_IDLIST
                            ? "expected an id ([a-z0-9][a-z0-9._-]*, at most 32 characters), got %s%s"
                            : "expected a name pattern ([a-z0-9._-] and * ? [ ] !, at most 64 characters), got %s%s",
                        item, NULL);
            break;
        }
        for (size_t j = 0; j < n; j++) {
            if (!strcmp(list[j], it->text)) {
                rc = err_at(ctx, POLICY_ERR_DUPLICATE, it, path, "%s is listed twice%s", item,
                            NULL);
                break;
            }
        }
        if (rc)
            break;
        list[n] = strdup(it->text);
        if (!list[n]) {
            rc = POLICY_ERR_NOMEM;
            break;
        }
        n++;
    }
    if (rc) {
        for (size_t j = 0; j < n; j++)
            free(list[j]);
        free(list);
        return rc;
    }
    char ***dst = FIELD_AT(base, f->off, char **);
    size_t *cnt = FIELD_AT(base, f->off2, size_t);
    if (*dst) {
        for (size_t j = 0; j < *cnt; j++)
            free((*dst)[j]);
        free(*dst);
    }
    *dst = list;
    *cnt = n;
    return 0;
}

static size_t scalar_size(enum sfield_type t)
{
    switch (t) {
    case SF_U32: return sizeof(uint32_t);
    case SF_U64: return sizeof(uint64_t);
    case SF_INT: case SF_ENUM: return sizeof(int);
    case SF_F64: return sizeof(double);
    case SF_BOOL: return sizeof(bool);
    default: return 0;
    }
}

static int store_value(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                       const char *path, void *base);
static int keep_going(struct schema_ctx *ctx, int rc);

/* SF_HEX32: 64 lower-case hex digits, quoted or not (a plain one that YAML reads as a
 * number is refused: quote it), not all zero. */
static int store_hex32(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                       const char *path, void *base)
{
    char got[128];
    ynode_describe(v, got, sizeof got);
    bool ok = v->kind == YNODE_SCALAR && !ynode_is_null(v) && v->len == 64;
    for (size_t i = 0; ok && i < 64; i++)
        ok = is_digit(v->text[i]) || (v->text[i] >= 'a' && v->text[i] <= 'f');
    if (!ok)
        return err_at(ctx, v->kind == YNODE_SCALAR ? POLICY_ERR_RANGE : POLICY_ERR_TYPE, v, path,
                      "expected 64 lower-case hex digits (a BLAKE2b-256, as b2sum -l 256 "
                      "prints it), got %s%s", got, NULL);
    bool neg;
    uint64_t mag;
    double d;
    if (v->plain && (parse_int_text(v->text, &neg, &mag) != -1 ||
                     parse_float_text(v->text, &d) == 0))
        return err_at(ctx, POLICY_ERR_TYPE, v, path,
                      "%s is a number to YAML readers; quote it%s", got, NULL);
    uint8_t *out = FIELD_AT(base, f->off, uint8_t), acc = 0;
    for (size_t i = 0; i < 32; i++) {
        char pair[3] = { v->text[2 * i], v->text[2 * i + 1], 0 };
        out[i] = (uint8_t)strtoul(pair, NULL, 16);
        acc |= out[i];
    }
    if (!acc)
        return err_at(ctx, POLICY_ERR_RANGE, v, path,
                      "all zeros, which is no file's hash; give the file's BLAKE2b-256 (b2sum "
                      "-l 256)%s%s", "", NULL);
    return 0;
}

/* SF_WEIGHTS: a mapping of names (f->names) to numbers; every key is checked, each
 * error kept as a key's error (the walk goes on). */
static int store_weights(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                         const char *path, void *base)
{
    char names[256], got[128];
    names_list(f->names, names, sizeof names);
    ynode_describe(v, got, sizeof got);
    if (ynode_is_null(v))
        return 0;
    if (v->kind != YNODE_MAP)
        return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a mapping of names (%s) to "
                      "numbers, got %s", names, got);
    double *w = FIELD_AT(base, f->off, double);
    for (size_t i = 0; i < v->n; i++) {
        const struct ynode *k = v->keys[i], *val = v->vals[i];
        int rc;
        if (k->dup_line > 0) {
            yaml_duplicate_error(ctx->err, ctx->file, k, k->dup_line, k->dup_column);
            rc = POLICY_ERR_DUPLICATE;
        } else {
            char shown[40], sub[160], kname[64];
            size_t m = 0;
            for (size_t c = 0; k->kind == YNODE_SCALAR && c < k->len && m + 1 < sizeof shown; c++)
                shown[m++] = (k->text[c] > ' ' && k->text[c] <= '~') ? k->text[c] : '?';
            shown[m] = '\0';
            join_path(sub, sizeof sub, path, m ? shown : "?");
            int idx = k->kind == YNODE_SCALAR ? name_index(f->names, k->text, k->len) : -1;
            if (idx < 0) {
                ynode_describe(k, kname, sizeof kname);
                rc = err_at(ctx, POLICY_ERR_UNKNOWN_KEY, k, sub, "unknown name %s; expected %s",
                            kname, names);
            } else if ((rc = record_seen(ctx, sub, k, val)) == 0) {
                double d;
                if ((rc = check_f64(ctx, f, val, sub, &d)) == 0)
                    w[idx] = d;
            }
        }
        if ((rc = keep_going(ctx, rc)) != 0)
            return rc;
    }
    return 0;
}

/* Frees n strings of list and list itself. */
static void free_strings(char **list, size_t n)
{
    if (list)
        for (size_t i = 0; i < n; i++)
            free(list[i]);
    free(list);
}

/* The text of an SF_STRING-like scalar v, checked: 0 with *out malloc'd, or an error. */
static int string_of(struct schema_ctx *ctx, const struct ynode *v, const char *path,
                     size_t min, size_t max, const char *what, char **out)
{
    char got[128], lim[24];
    ynode_describe(v, got, sizeof got);
    *out = NULL;
    if (v->kind != YNODE_SCALAR || ynode_is_null(v))
        return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected %s, got %s", what, got);
    snprintf(lim, sizeof lim, "%zu", max);
    if (v->len < min || v->len > max)
        return err_at(ctx, POLICY_ERR_RANGE, v, path, min ? "expected 1 to %s bytes, got %s"
                      : "expected at most %s bytes, got %s", lim, got);
    if (v->len && !valid_line(v->text, v->len))
        return err_at(ctx, POLICY_ERR_RANGE, v, path,
                      "contains control characters (newline, tab, NUL) or invalid UTF-8%s%s",
                      "", NULL);
    *out = strdup(v->text);
    return *out ? 0 : POLICY_ERR_NOMEM;
}

/* SF_STRLIST: a list of strings (an argv), NULL-terminated. */
static int store_strlist(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                         const char *path, void *base)
{
    char got[128];
    ynode_describe(v, got, sizeof got);
    if (v->kind != YNODE_SEQ)
        return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a list of strings, got %s%s",
                      got, NULL);
    if (v->n == 0 || v->n > f->imax) {
        char lim[32];
        snprintf(lim, sizeof lim, "%llu", (unsigned long long)f->imax);
        return err_at(ctx, POLICY_ERR_RANGE, v, path, "expected 1 to %s strings, got %s", lim,
                      v->n ? got : "an empty list");
    }
    char **list = calloc(v->n + 1, sizeof *list);
    if (!list)
        return POLICY_ERR_NOMEM;
    for (size_t i = 0; i < v->n; i++) {
        int rc = string_of(ctx, v->vals[i], path, 1, 4096, "a string", &list[i]);
        if (rc) {
            free_strings(list, i);
            return rc;
        }
    }
    char ***dst = FIELD_AT(base, f->off, char **);
    size_t *cnt = FIELD_AT(base, f->off2, size_t);
    free_strings(*dst, *cnt);
    *dst = list;
    *cnt = v->n;
    return 0;
}

/* SF_ENVMAP: NAME: value pairs, stored as "NAME=value" in file order. */
static int store_envmap(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                        const char *path, void *base)
{
    char got[128];
    ynode_describe(v, got, sizeof got);
    if (ynode_is_null(v))
        return 0;
    if (v->kind != YNODE_MAP)
        return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a mapping of variable names to "
                      "values, got %s%s", got, NULL);
    if (v->n > f->imax) {
        char lim[32];
        snprintf(lim, sizeof lim, "%llu", (unsigned long long)f->imax);
        return err_at(ctx, POLICY_ERR_RANGE, v, path, "more than %s variables%s", lim, NULL);
    }
    char **list = calloc(v->n + 1, sizeof *list);
    if (!list)
        return POLICY_ERR_NOMEM;
    int rc = 0;
    size_t n = 0;
    for (; n < v->n && !rc; n++) {
        const struct ynode *k = v->keys[n];
        char kname[128];
        ynode_describe(k, kname, sizeof kname);
        if (k->dup_line > 0) {
            yaml_duplicate_error(ctx->err, ctx->file, k, k->dup_line, k->dup_column);
            rc = POLICY_ERR_DUPLICATE;
            break;
        }
        if (k->kind != YNODE_SCALAR || !valid_env_name(k->text, k->len)) {
            rc = err_at(ctx, POLICY_ERR_RANGE, k, path, "expected an environment variable "
                        "name ([A-Za-z_][A-Za-z0-9_]*, at most 128 characters), got %s%s",
                        kname, NULL);
            break;
        }
        char sub[160], *val;
        snprintf(sub, sizeof sub, "%s.%s", path, k->text);
        if ((rc = string_of(ctx, v->vals[n], sub, 0, 4096, "a value (a string)", &val)) != 0)
            break;
        size_t len = k->len + 1 + strlen(val) + 1;
        if ((list[n] = malloc(len)) != NULL)
            snprintf(list[n], len, "%s=%s", k->text, val);
        else
            rc = POLICY_ERR_NOMEM;
        free(val);
    }
    if (rc) {
        free_strings(list, n);
        return rc;
    }
    char ***dst = FIELD_AT(base, f->off, char **);
    size_t *cnt = FIELD_AT(base, f->off2, size_t);
    free_strings(*dst, *cnt);
    *dst = list;
    *cnt = v->n;
    return 0;
}

/* SF_FIXED: the value must be the one base held (the default, what the code does). */
static int store_fixed(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                       const char *path, void *base)
{
    unsigned char was[sizeof(uint64_t) > sizeof(double) ? sizeof(uint64_t) : sizeof(double)];
    size_t size = scalar_size(f->type);
    memcpy(was, FIELD_AT(base, f->off, unsigned char), size);
    int rc = store_value(ctx, f, v, path, base);
    if (rc == 0 && memcmp(was, FIELD_AT(base, f->off, unsigned char), size) != 0) {
        char got[128];
        ynode_describe(v, got, sizeof got);
        memcpy(FIELD_AT(base, f->off, unsigned char), was, size);
        return err_at(ctx, POLICY_ERR_UNIMPLEMENTED, v, path, "%s is not implemented yet; %s",
                      got, f->note);
    }
    return rc;
}

static int store_value(struct schema_ctx *ctx, const struct sfield *f, const struct ynode *v,
                       const char *path, void *base)
{
    char got[128];
    ynode_describe(v, got, sizeof got);
    switch (f->type) {
    case SF_SECTION:
        if (f->flags & SF_PRESENT)
            *FIELD_AT(base, f->off, int) = 1;
        return schema_walk(ctx, v, f->children, base, path, v->line, v->column);
    case SF_U32:
    case SF_U64:
    case SF_INT:
        return store_int(ctx, f, v, path, base);
    case SF_F64: {
        double d;
        int rc = check_f64(ctx, f, v, path, &d);
        if (!rc)
            *FIELD_AT(base, f->off, double) = d;
        return rc;
    }
    case SF_BOOL: {
        if (v->kind == YNODE_SCALAR && v->plain) {
            if (!strcmp(v->text, "true") || !strcmp(v->text, "True") || !strcmp(v->text, "TRUE")) {
                *FIELD_AT(base, f->off, bool) = true;
                return 0;
            }
            if (!strcmp(v->text, "false") || !strcmp(v->text, "False") ||
                !strcmp(v->text, "FALSE")) {
                *FIELD_AT(base, f->off, bool) = false;
                return 0;
            }
        }
        return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected true or false, got %s%s", got,
                      NULL);
    }
    case SF_ENUM: {
        int idx = v->kind == YNODE_SCALAR ? name_index(f->names, v->text, v->len) : -1;
        if (idx < 0) {
            char names[256];
            if (f->flags & SF_FIXED)
                fixed_names_list(f, *FIELD_AT(base, f->off, int), names, sizeof names);
            else
                names_list(f->names, names, sizeof names);
            return err_at(ctx, v->kind == YNODE_SCALAR ? POLICY_ERR_RANGE : POLICY_ERR_TYPE, v,
                          path, "expected %s, got %s", names, got);
        }
        *FIELD_AT(base, f->off, int) = idx;
        return 0;
    }
    case SF_ID: {
        if (v->kind != YNODE_SCALAR || ynode_is_null(v))
            return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a name, got %s%s", got, NULL);
        if (!schema_valid_id(v->text, v->len, (size_t)f->imax)) {
            char lim[24];
            snprintf(lim, sizeof lim, "%llu", (unsigned long long)f->imax);
            yaml_error(ctx->err, POLICY_ERR_RANGE, ctx->file, v->line, v->column, path,
                       "expected a name of 1 to %s characters from [a-z0-9._-] starting with "
                       "a letter or digit, got %s", lim, got);
            return POLICY_ERR_RANGE;
        }
        memcpy(FIELD_AT(base, f->off, char), v->text, v->len + 1);
        return 0;
    }
    case SF_TEXT: {
        if (v->kind != YNODE_SCALAR)
            return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a string, got %s%s", got, NULL);
        const char *t = ynode_is_null(v) ? "" : v->text;
        size_t len = ynode_is_null(v) ? 0 : v->len;
        if (len > f->imax) {
            char lim[24];
            snprintf(lim, sizeof lim, "%llu", (unsigned long long)f->imax);
            return err_at(ctx, POLICY_ERR_RANGE, v, path, "longer than %s bytes%s", lim, NULL);
        }
        if (!valid_text(t, len))
            return err_at(ctx, POLICY_ERR_RANGE, v, path,
                          "contains control characters or invalid UTF-8%s%s", "", NULL);
        char *copy = strdup(t);
        if (!copy)
            return POLICY_ERR_NOMEM;
        char **dst = FIELD_AT(base, f->off, char *);
        free(*dst);
        *dst = copy;
        return 0;
    }
    case SF_IDLIST:
    case SF_GLOBLIST:
        return store_string_list(ctx, f, v, path, base);
    case SF_FILENAME: {
        if (v->kind != YNODE_SCALAR || ynode_is_null(v))
            return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a file name, got %s%s", got,
                          NULL);
        if (!valid_filename(v->text, v->len, (size_t)f->imax)) {
            char lim[24];
            snprintf(lim, sizeof lim, "%llu", (unsigned long long)f->imax);
            yaml_error(ctx->err, POLICY_ERR_RANGE, ctx->file, v->line, v->column, path,
                       "expected a file name of 1 to %s characters from [A-Za-z0-9._-] (no "
                       "directory), got %s", lim, got);
            return POLICY_ERR_RANGE;
        }
        memcpy(FIELD_AT(base, f->off, char), v->text, v->len + 1);
        return 0;
    }
    case SF_RELPATH: {
        if (v->kind != YNODE_SCALAR || ynode_is_null(v))
            return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a relative file path, got "
                          "%s%s", got, NULL);
        const char *why;
        if (!valid_relpath(v->text, v->len, (size_t)f->imax, &why)) {
            char lim[24];
            snprintf(lim, sizeof lim, "%llu", (unsigned long long)f->imax);
            yaml_error(ctx->err, POLICY_ERR_RANGE, ctx->file, v->line, v->column, path,
                       "expected a relative file path of 1 to %s bytes, got %s: %s", lim, got,
                       why);
            return POLICY_ERR_RANGE;
        }
        memcpy(FIELD_AT(base, f->off, char), v->text, v->len + 1);
        return 0;
    }
    case SF_STRING: {
        char *copy;
        int rc = string_of(ctx, v, path, 1, (size_t)f->imax, "a string", &copy);
        if (rc)
            return rc;
        char **dst = FIELD_AT(base, f->off, char *);
        free(*dst);
        *dst = copy;
        return 0;
    }
    case SF_STRLIST:
        return store_strlist(ctx, f, v, path, base);
    case SF_ENVMAP:
        return store_envmap(ctx, f, v, path, base);
    case SF_HEX32:
        return store_hex32(ctx, f, v, path, base);
    case SF_WEIGHTS:
        return store_weights(ctx, f, v, path, base);
    case SF_ENUMSET: {
        char names[256];
        names_list(f->names, names, sizeof names);
        if (ynode_is_null(v)) {
            *FIELD_AT(base, f->off, uint32_t) = 0;
            return 0;
        }
        if (v->kind != YNODE_SEQ)
            return err_at(ctx, POLICY_ERR_TYPE, v, path, "expected a list, each %s; got %s",
                          names, got);
        uint32_t set = 0;
        for (size_t i = 0; i < v->n; i++) {
            const struct ynode *it = v->vals[i];
            char item[128];
            ynode_describe(it, item, sizeof item);
            int idx = it->kind == YNODE_SCALAR ? name_index(f->names, it->text, it->len) : -1;
            if (idx < 0)
                return err_at(ctx, POLICY_ERR_RANGE, it, path, "expected %s, got %s",
                              names, item);
            if (set & (1u << idx))
                return err_at(ctx, POLICY_ERR_DUPLICATE, it, path, "%s is listed twice%s", item,
                              NULL);
            set |= 1u << idx;
        }
        *FIELD_AT(base, f->off, uint32_t) = set;
        return 0;
    }
    }
    return POLICY_ERR_TYPE;
}

static bool section_has_required(const struct sfield *f, char *path, size_t path_len,
                                 const char *prefix)
{
    for (; f->key; f++) {
        char sub[160];
        join_path(sub, sizeof sub, prefix, f->key);
        if (f->flags & SF_REQUIRED) {
            snprintf(path, path_len, "%s", sub);
            if (f->type != SF_SECTION)
                return true;
            section_has_required(f->children, path, path_len, sub);
            return true;
        }
    }
    return false;
}

/* The error ctx->err holds, of code rc: with ctx->all it joins the list and the walk
 * goes on (0); otherwise, and out of memory, the walk stops with rc. */
static int keep_going(struct schema_ctx *ctx, int rc)
{
    if (rc == 0 || rc == POLICY_ERR_NOMEM || !ctx->all)
        return rc;
    policy_errors_add(ctx->all, ctx->err);
    return 0;
}

/* The field of key k (by its name or alias), or NULL. */
static const struct sfield *field_of(const struct sfield *fields, const struct ynode *k)
{
    for (const struct sfield *c = fields; c->key; c++)
        if ((strlen(c->key) == k->len && !memcmp(c->key, k->text, k->len)) ||
            (c->alias && strlen(c->alias) == k->len && !memcmp(c->alias, k->text, k->len)))
            return c;
    return NULL;
}

/* Whether part (at least 4 bytes) is whole '_'-separated words of s: "noise" of
 * "noise_multiplier". */
static bool word_part(const char *s, const char *part)
{
    size_t lp = strlen(part), ls = strlen(s);
    if (lp < 4 || lp >= ls)
        return false;
    for (const char *at = strstr(s, part); at; at = strstr(at + 1, part))
        if ((at == s || at[-1] == '_') && (at[lp] == '\0' || at[lp] == '_'))
            return true;
    return false;
}

/* The key an unknown key k was most likely meant to be, or NULL: the nearest at most 2
 * edits away; else the key it was once named (sfield.was: trim_fraction for trim); else
 * one of which k is whole words (noise for noise_multiplier). */
static const char *meant_key(const struct sfield *fields, const struct ynode *k)
{
    const char *best = NULL;
    size_t bestd = 3;
    for (const struct sfield *c = fields; c->key; c++) {
        if (c->flags & SF_REFUSED)
            continue;
        size_t d = edit_distance(k->text, c->key);
        if (d < bestd) {
            bestd = d;
            best = c->key;
        }
    }
    for (const struct sfield *c = fields; c->key && !best; c++)
        if (!(c->flags & SF_REFUSED) && c->was && strcmp(k->text, c->was) == 0)
            best = c->key;
    for (const struct sfield *c = fields; c->key && !best; c++)
        if (!(c->flags & SF_REFUSED) && word_part(c->key, k->text))
            best = c->key;
    return best;
}

/* Whether a missing key f of map is already reported as an unknown key that means it
 * ("n_layers: unknown key (did you mean "n_layer"?)"): one mistake, one error. */
static bool misspelled(const struct ynode *map, const struct sfield *fields,
                       const struct sfield *f)
{
    size_t n = (map && map->kind == YNODE_MAP) ? map->n : 0;
    for (size_t i = 0; i < n; i++) {
        const struct ynode *k = map->keys[i];
        if (!k->dup_line && !field_of(fields, k) && meant_key(fields, k) == f->key)
            return true;
    }
    return false;
}

static int unknown_key(struct schema_ctx *ctx, const struct ynode *k,
                       const struct sfield *fields, const char *prefix)
{
    /* The key goes into a one-line message: printable ASCII only. */
    char shown[64], path[160];
    size_t m = 0;
    for (size_t c = 0; c < k->len && m + 1 < sizeof shown; c++)
        shown[m++] = (k->text[c] > ' ' && k->text[c] <= '~') ? k->text[c] : '?';
    shown[m] = '\0';
    join_path(path, sizeof path, prefix, m ? shown : "?");
    const char *best = meant_key(fields, k);
    char valid[400];
    size_t o = 0;
    valid[0] = '\0';
    for (const struct sfield *c = fields; c->key && o < sizeof valid; c++)
        if (!(c->flags & SF_REFUSED))
            o += (size_t)snprintf(valid + o, sizeof valid - o, "%s%s", o ? ", " : "", c->key);
    if (best)
        yaml_error(ctx->err, POLICY_ERR_UNKNOWN_KEY, ctx->file, k->line, k->column, path,
                   "unknown key (did you mean \"%s\"?)", best);
    else
        yaml_error(ctx->err, POLICY_ERR_UNKNOWN_KEY, ctx->file, k->line, k->column, path,
                   "unknown key; valid keys here: %s", valid);
    return POLICY_ERR_UNKNOWN_KEY;
}

/* One key k: v of a mapping. */
static int walk_key(struct schema_ctx *ctx, const struct ynode *k, const struct ynode *v,
                    const struct sfield *fields, void *base, const char *prefix)
{
    if (k->dup_line > 0) {
        yaml_duplicate_error(ctx->err, ctx->file, k, k->dup_line, k->dup_column);
        return POLICY_ERR_DUPLICATE;
    }
    const struct sfield *f = field_of(fields, k);
    if (!f)
        return unknown_key(ctx, k, fields, prefix);
    char path[160];
    join_path(path, sizeof path, prefix, f->key);
    if (f->flags & SF_REFUSED) {
        yaml_error(ctx->err, POLICY_ERR_UNIMPLEMENTED, ctx->file, k->line, k->column, path,
                   "%s", f->note);
        return POLICY_ERR_UNIMPLEMENTED;
    }
    const struct schema_seen *prev = schema_seen(ctx, path);
    if (prev) {
        /* Only an alias can get here: repeated keys are marked by the tree. */
        char kname[128];
        ynode_describe(k, kname, sizeof kname);
        yaml_error(ctx->err, POLICY_ERR_DUPLICATE, ctx->file, k->line, k->column, path,
                   "%s sets the same value as the key at line %d, column %d; give only one",
                   kname, prev->line, prev->column);
        return POLICY_ERR_DUPLICATE;
    }
    int rc = record_seen(ctx, path, k, v);
    if (rc)
        return rc;
    return (f->flags & SF_FIXED) ? store_fixed(ctx, f, v, path, base)
                                 : store_value(ctx, f, v, path, base);
}

int schema_walk(struct schema_ctx *ctx, const struct ynode *map, const struct sfield *fields,
                void *base, const char *prefix, int line, int column)
{
    if (map && !ynode_is_null(map) && map->kind != YNODE_MAP) {
        /* nothing below to walk, and nothing missing to report */
        char got[128];
        ynode_describe(map, got, sizeof got);
        yaml_error(ctx->err, POLICY_ERR_TYPE, ctx->file, map->line, map->column, prefix,
                   "expected a mapping of keys, got %s", got);
        return keep_going(ctx, POLICY_ERR_TYPE);
    }
    size_t n = (map && map->kind == YNODE_MAP) ? map->n : 0;
    int rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = keep_going(ctx, walk_key(ctx, map->keys[i], map->vals[i], fields, base,
                                           prefix))) != 0)
            return rc;
    for (const struct sfield *f = fields; f->key; f++) {
        if (!(f->flags & SF_REQUIRED) || (f->required_if && !f->required_if(base)))
            continue;
        char path[160];
        join_path(path, sizeof path, prefix, f->key);
        if (schema_seen(ctx, path) || misspelled(map, fields, f))
            continue;
        char missing[160];
        snprintf(missing, sizeof missing, "%s", path);
        if (f->type == SF_SECTION)
            section_has_required(f->children, missing, sizeof missing, path);
        yaml_error(ctx->err, POLICY_ERR_MISSING, ctx->file, line, column, missing,
                   "required key is missing");
        if ((rc = keep_going(ctx, POLICY_ERR_MISSING)) != 0)
            return rc;
    }
    return 0;
}

int schema_check(const char *file, const void *bytes, size_t len, const struct sfield *fields,
                 void *base, schema_post_fn post, struct policy_errors *errors)
{
    errors->n = errors->total = 0;
    struct policy_error err = {0};
    struct ynode *root = NULL;
    int rc = POLICY_ERR_ARG;
    if (!bytes && len)
        yaml_error(&err, rc, file, 0, 0, NULL, "invalid argument");
    else
        rc = yaml_tree_parse_flags(file, bytes, len, YAML_TREE_KEEP_DUPLICATES, &root, &err);
    if (rc) {
        policy_errors_add(errors, &err);
        return rc;
    }
    struct schema_ctx ctx = {.file = file, .err = &err, .all = errors};
    rc = schema_walk(&ctx, root, fields, base, "", root ? root->line : 1,
                     root ? root->column : 1);
    if (!rc && errors->total == 0 && post && (rc = post(&ctx, base)) != 0 &&
        rc != POLICY_ERR_NOMEM)
        policy_errors_add(errors, &err);
    if (rc == POLICY_ERR_NOMEM) {
        errors->n = errors->total = 0;
        yaml_error(&err, rc, file, 0, 0, NULL, "out of memory");
        policy_errors_add(errors, &err);
    }
    schema_ctx_free(&ctx);
    yaml_tree_free(root);
    return errors->total ? errors->item[0].code : 0;
}

void schema_free(const struct sfield *fields, void *base)
{
    for (const struct sfield *f = fields; f->key; f++) {
        if (f->flags & SF_REFUSED)
            continue;
        if (f->type == SF_SECTION) {
            schema_free(f->children, base);
        } else if (f->type == SF_TEXT || f->type == SF_STRING) {
            char **p = FIELD_AT(base, f->off, char *);
            free(*p);
            *p = NULL;
        } else if (f->type == SF_IDLIST || f->type == SF_GLOBLIST || f->type == SF_STRLIST ||
                   f->type == SF_ENVMAP) {
            char ***p = FIELD_AT(base, f->off, char **);
            size_t *cnt = FIELD_AT(base, f->off2, size_t);
            if (*p)
                for (size_t i = 0; i < *cnt; i++)
                    free((*p)[i]);
            free(*p);
            *p = NULL;
            *cnt = 0;
        }
    }
}

/* --- canonical lines ------------------------------------------------------ */

static int push_line(struct schema_lines *l, const char *path, const char *value)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 128;
        char **p = realloc(l->line, cap * sizeof *p);
        if (!p)
            return POLICY_ERR_NOMEM;
        l->line = p;
        l->cap = cap;
    }
    size_t len = strlen(path) + 1 + strlen(value) + 2;
    char *s = malloc(len);
    if (!s)
        return POLICY_ERR_NOMEM;
    snprintf(s, len, "%s=%s\n", path, value);
    l->line[l->n++] = s;
    return 0;
}

void schema_lines_free(struct schema_lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->line[i]);
    free(l->line);
    l->line = NULL;
    l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Text values: bytes as they are, except '\\' -> "\\\\", newline -> "\\n", tab -> "\\t",
 * so every value stays on one line. */
static char *escape_text(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(2 * len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\\' || s[i] == '\n' || s[i] == '\t') {
            out[o++] = '\\';
            out[o++] = s[i] == '\\' ? '\\' : (s[i] == '\n' ? 'n' : 't');
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static int push_list(struct schema_lines *out, const char *path, char *const *items, size_t n)
{
    /* Lists of ids are sets: sorted, comma-separated. */
    char **sorted = malloc((n ? n : 1) * sizeof *sorted);
    if (!sorted)
        return POLICY_ERR_NOMEM;
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        sorted[i] = items[i];
        total += strlen(items[i]) + 1;
    }
    qsort(sorted, n, sizeof *sorted, cmp_str);
    char *buf = malloc(total);
    if (!buf) {
        free(sorted);
        return POLICY_ERR_NOMEM;
    }
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, total - o, "%s%s", i ? "," : "", sorted[i]);
    int rc = push_line(out, path, buf);
    free(buf);
    free(sorted);
    return rc;
}

/* SF_OMIT_ZERO: whether the scalar at f is 0. */
static bool is_zero(const struct sfield *f, const void *base)
{
    switch (f->type) {
    case SF_U32: return *CFIELD_AT(base, f->off, uint32_t) == 0;
    case SF_U64: return *CFIELD_AT(base, f->off, uint64_t) == 0;
    case SF_INT: case SF_ENUM: return *CFIELD_AT(base, f->off, int) == 0;
    case SF_F64: return *CFIELD_AT(base, f->off, double) == 0;
    case SF_BOOL: return !*CFIELD_AT(base, f->off, bool);
    default: return false;
    }
}

/* SF_STRING, SF_STRLIST, SF_ENVMAP (site.yaml's trainer: no hashed document has them
 * today; written so that a list keeps its order and its items stay apart): each item
 * escaped as text, with ',' written "\\,", joined with ','. */
static int push_strings(struct schema_lines *out, const char *path, const struct sfield *f,
                        const void *base)
{
    char *const *items;
    size_t n;
    const char *one;
    if (f->type == SF_STRING) {
        one = *CFIELD_AT(base, f->off, char *);
        if (!one)
            one = "";
        items = (char *const *)&one;
        n = 1;
    } else {
        items = *CFIELD_AT(base, f->off, strlist);
        n = items ? *CFIELD_AT(base, f->off2, size_t) : 0;
    }
    size_t total = 1;
    for (size_t i = 0; i < n; i++)
        total += 3 * strlen(items[i]) + 1;
    char *buf = malloc(total);
    if (!buf)
        return POLICY_ERR_NOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf[o++] = ',';
        for (const char *c = items[i]; *c; c++) {
            if (*c == '\\' || *c == ',')
                buf[o++] = '\\';
            buf[o++] = *c;
        }
    }
    buf[o] = '\0';
    int rc = push_line(out, path, buf);
    free(buf);
    return rc;
}

int schema_canonical(const struct sfield *fields, const void *base, const char *prefix,
                     struct schema_lines *out)
{
    for (const struct sfield *f = fields; f->key; f++) {
        if (f->flags & (SF_NOHASH | SF_REFUSED))
            continue;
        if (f->type == SF_SECTION && (f->flags & SF_PRESENT) &&
            !*CFIELD_AT(base, f->off, int))
            continue;   /* not given: no lines, as before the key existed */
        if ((f->flags & SF_OMIT_ZERO) && is_zero(f, base))
            continue;
        char path[160], val[512];
        join_path(path, sizeof path, prefix, f->key);
        int rc = 0;
        switch (f->type) {
        case SF_SECTION:
            rc = schema_canonical(f->children, base, path, out);
            break;
        case SF_U32:
            snprintf(val, sizeof val, "%u", *CFIELD_AT(base, f->off, uint32_t));
            rc = push_line(out, path, val);
            break;
        case SF_U64:
            snprintf(val, sizeof val, "%llu",
                     (unsigned long long)*CFIELD_AT(base, f->off, uint64_t));
            rc = push_line(out, path, val);
            break;
        case SF_INT:
            snprintf(val, sizeof val, "%d", *CFIELD_AT(base, f->off, int));
            rc = push_line(out, path, val);
            break;
        case SF_F64:
            schema_format_double(*CFIELD_AT(base, f->off, double), val, sizeof val);
            rc = push_line(out, path, val);
            break;
        case SF_BOOL:
            rc = push_line(out, path, *CFIELD_AT(base, f->off, bool) ? "true" : "false");
            break;
        case SF_ENUM: {
            int idx = *CFIELD_AT(base, f->off, int);
            rc = push_line(out, path, f->names[idx]);
            break;
        }
        case SF_ID:
        case SF_FILENAME:
        case SF_RELPATH:   /* no '\\', no control characters: as it is */
            rc = push_line(out, path, CFIELD_AT(base, f->off, char));
            break;
        case SF_STRING:
        case SF_STRLIST:
        case SF_ENVMAP:
            rc = push_strings(out, path, f, base);
            break;
        case SF_HEX32: {
            const uint8_t *h = CFIELD_AT(base, f->off, uint8_t);
            uint8_t acc = 0;
            for (int i = 0; i < 32; i++) {
                snprintf(val + 2 * i, sizeof val - 2 * (size_t)i, "%02x", h[i]);
                acc |= h[i];
            }
            rc = push_line(out, path, acc ? val : "");   /* all zero: not given */
            break;
        }
        case SF_WEIGHTS:
            for (int i = 0; f->names[i] && rc == 0; i++) {
                char sub[160];
                join_path(sub, sizeof sub, path, f->names[i]);
                schema_format_double(CFIELD_AT(base, f->off, double)[i], val, sizeof val);
                rc = push_line(out, sub, val);
            }
            break;
        case SF_TEXT: {
            const char *t = *CFIELD_AT(base, f->off, char *);
            char *e = escape_text(t ? t : "");
            if (!e)
                return POLICY_ERR_NOMEM;
            rc = push_line(out, path, e);
            free(e);
            break;
        }
        case SF_IDLIST:
        case SF_GLOBLIST:
            if ((f->flags & SF_ALL) && *CFIELD_AT(base, f->off2, size_t) == 0)
                rc = push_line(out, path, "*");   /* `all`: no id has a '*' */
            else
                rc = push_list(out, path, *CFIELD_AT(base, f->off, strlist),
                               *CFIELD_AT(base, f->off2, size_t));
            break;
        case SF_ENUMSET: {
            uint32_t set = *CFIELD_AT(base, f->off, uint32_t);
            char *items[32];
            size_t n = 0;
            for (int i = 0; f->names[i] && i < 32; i++)
                if (set & (1u << i))
                    items[n++] = (char *)f->names[i];
            rc = push_list(out, path, items, n);
            break;
        }
        }
        if (rc)
            return rc;
    }
    return 0;
}
