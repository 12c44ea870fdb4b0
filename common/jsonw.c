#include "common/jsonw.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jw_init(struct jsonw *w)
{
    memset(w, 0, sizeof *w);
}

static int jw_reserve(struct jsonw *w, size_t more)
{
    if (w->failed)
        return -1;
    if (w->len + more + 1 <= w->cap)
        return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + more + 1) {
        if (cap > SIZE_MAX / 2) {
            w->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->failed = 1;
        return -1;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

static void jw_bytes(struct jsonw *w, const char *s, size_t n)
{
    if (jw_reserve(w, n) != 0)
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

void jw_raw(struct jsonw *w, const char *s)
{
    jw_bytes(w, s, strlen(s));
}

void jw_printf(struct jsonw *w, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        w->failed = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        jw_bytes(w, small, (size_t)n);
        return;
    }
    if (jw_reserve(w, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(w->buf + w->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    w->len += (size_t)n;
}

void jw_str(struct jsonw *w, const char *s)
{
    jw_bytes(w, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char esc[8];
        switch (*p) {
        case '"': jw_bytes(w, "\\\"", 2); break;
        case '\\': jw_bytes(w, "\\\\", 2); break;
        case '\n': jw_bytes(w, "\\n", 2); break;
        case '\r': jw_bytes(w, "\\r", 2); break;
        case '\t': jw_bytes(w, "\\t", 2); break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                jw_bytes(w, esc, 6);
            } else {
                jw_bytes(w, (const char *)p, 1);
            }
        }
    }
    jw_bytes(w, "\"", 1);
}

void jw_key(struct jsonw *w, const char *k)
{
    jw_str(w, k);
    jw_bytes(w, ":", 1);
}

void jw_num(struct jsonw *w, double v)
{
    if (isfinite(v))
        jw_printf(w, "%.17g", v);
    else
        jw_raw(w, "null");
}

void jw_fixed(struct jsonw *w, double v)
{
    if (isfinite(v))
        jw_printf(w, "%.6f", v);
    else
        jw_raw(w, "null");
}

void jw_u64(struct jsonw *w, uint64_t v)
{
    jw_printf(w, "%" PRIu64, v);
}

void jw_i64(struct jsonw *w, int64_t v)
{
    jw_printf(w, "%" PRId64, v);
}

void jw_hex(struct jsonw *w, const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    jw_bytes(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        char two[2] = { digits[b[i] >> 4], digits[b[i] & 15] };
        jw_bytes(w, two, 2);
    }
    jw_bytes(w, "\"", 1);
}

char *jw_finish(struct jsonw *w, size_t *len)
{
    if (!w->failed && jw_reserve(w, 0) == 0) {
        char *out = w->buf;
        out[w->len] = 0;
        if (len)
            *len = w->len;
        memset(w, 0, sizeof *w);
        return out;
    }
    jw_free(w);
    return NULL;
}

void jw_free(struct jsonw *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
    w->failed = 1;
}
