#ifndef AULAC_CRYPTO_STATEMENT_H
#define AULAC_CRYPTO_STATEMENT_H
/* Private to crypto/: a bounded big-endian writer for statement headers
 * (crypto/README.md, "Encodings"). Any overflow sticks and is reported by
 * stmt_finish as CRYPTO_ERR_BUFFER. */
#include <stdint.h>
#include <string.h>

#include "crypto/digest.h"

struct stmt_writer {
    uint8_t *buf;
    size_t cap, len;
    int overflow;
};

static inline void stmt_put(struct stmt_writer *w, const void *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = 1;
        return;
    }
    if (n)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static inline void stmt_put_be(struct stmt_writer *w, uint64_t v, int bytes)
{
    uint8_t b[8];
    for (int i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    stmt_put(w, b, (size_t)bytes);
}

static inline void stmt_put_domain(struct stmt_writer *w, const char *domain)
{
    stmt_put(w, domain, strlen(domain) + 1);   /* with its NUL */
}

/* id and text share one encoding: u16 BE length, then the bytes. */
static inline void stmt_put_str(struct stmt_writer *w, const char *s)
{
    size_t n = strlen(s);
    if (n > 0xffff) {
        w->overflow = 1;
        return;
    }
    stmt_put_be(w, n, 2);
    stmt_put(w, s, n);
}

/* 1 when the n bytes at p are all zero. */
static inline int stmt_all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

/* Text rules of statement fields: at most max bytes, no C0 control character or DEL. */
static inline int stmt_text_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

static inline int stmt_finish(const struct stmt_writer *w, size_t *len)
{
    if (w->overflow)
        return CRYPTO_ERR_BUFFER;
    if (len)
        *len = w->len;
    return 0;
}

#endif
