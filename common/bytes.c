#include "common/bytes.h"

#include <stdlib.h>

static uint8_t *bw_reserve(struct bytes_writer *w, size_t n)
{
    if (w->failed)
        return NULL;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 64;
        while (cap < w->len + n)
            cap *= 2;
        uint8_t *nb = realloc(w->buf, cap);
        if (!nb) {
            w->failed = 1;
            return NULL;
        }
        w->buf = nb;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    w->len += n;
    return p;
}

void bw_raw(struct bytes_writer *w, const void *src, size_t n)
{
    uint8_t *p = bw_reserve(w, n);
    if (p && n)
        memcpy(p, src, n);
}

void bw_u8(struct bytes_writer *w, uint8_t v) { bw_raw(w, &v, 1); }

void bw_u32(struct bytes_writer *w, uint32_t v)
{
    uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
    bw_raw(w, b, 4);
}

void bw_u64(struct bytes_writer *w, uint64_t v)
{
    uint8_t b[8];
    be64_put(b, v);
    bw_raw(w, b, 8);
}

void bw_f32(struct bytes_writer *w, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    bw_u32(w, u);
}

void bw_f64(struct bytes_writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    bw_u64(w, u);
}

void bw_str(struct bytes_writer *w, const char *s)
{
    size_t n = strlen(s);
    if (n > 0xffff) {
        w->failed = 1;
        return;
    }
    uint8_t b[2] = { (uint8_t)(n >> 8), (uint8_t)n };
    bw_raw(w, b, 2);
    bw_raw(w, s, n);
}

const uint8_t *br_raw(struct bytes_reader *r, size_t n)
{
    if (r->failed || r->left < n) {
        r->failed = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint8_t br_u8(struct bytes_reader *r)
{
    const uint8_t *p = br_raw(r, 1);
    return p ? p[0] : 0;
}

uint32_t br_u32(struct bytes_reader *r)
{
    const uint8_t *p = br_raw(r, 4);
    return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

uint64_t br_u64(struct bytes_reader *r)
{
    const uint8_t *p = br_raw(r, 8);
    return p ? be64_get(p) : 0;
}

float br_f32(struct bytes_reader *r)
{
    uint32_t u = br_u32(r);
    float v;
    memcpy(&v, &u, 4);
    return v;
}

double br_f64(struct bytes_reader *r)
{
    uint64_t u = br_u64(r);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

void br_str(struct bytes_reader *r, char *out, size_t cap)
{
    const uint8_t *lp = br_raw(r, 2);
    size_t n = lp ? (size_t)(lp[0] << 8 | lp[1]) : 0;
    const uint8_t *s = br_raw(r, n);
    if (!s || n + 1 > cap) {
        r->failed = 1;
        if (cap)
            out[0] = 0;
        return;
    }
    memcpy(out, s, n);
    out[n] = 0;
}
