#include "aggregate/outer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int outer_init(struct outer_opt *o, enum outer_kind kind, size_t n, float lr, float momentum)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->n = n;
    o->lr = lr;
    o->momentum = momentum;
    o->beta1 = 0.9f;
    o->beta2 = 0.99f;
    o->tau = 1e-3f;
    if (kind != OUTER_FEDAVG) {
        o->m = calloc(n ? n : 1, sizeof(float));
        if (!o->m)
            return OUTER_ERR_NOMEM;
    }
    if (kind == OUTER_FEDADAM) {
        o->v = calloc(n ? n : 1, sizeof(float));
        if (!o->v) {
            outer_free(o);
            return OUTER_ERR_NOMEM;
        }
    }
    return 0;
}

void outer_free(struct outer_opt *o)
{
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

const char *outer_kind_name(enum outer_kind kind)
{
    switch (kind) {
    case OUTER_FEDAVG: return "fedavg";
    case OUTER_NESTEROV: return "nesterov";
    case OUTER_FEDADAM: return "fedadam";
    }
    return "unknown";
}

void outer_average(float *acc, const float *support, size_t n, double weight_sum,
                   float scale)
{
    if (support) {
        for (size_t i = 0; i < n; i++)
            acc[i] = support[i] > 0 ? acc[i] * scale / support[i] : 0.0f;
        return;
    }
    const float k = (float)(scale / weight_sum);
    for (size_t i = 0; i < n; i++)
        acc[i] *= k;
}

/* The step over values [lo, hi) of params, delta and the state. */
static void step_range(const struct outer_opt *o, float *params, const float *delta,
                       size_t lo, size_t hi)
{
    const float lr = o->lr, mu = o->momentum;
    switch (o->kind) {
    case OUTER_FEDAVG:
        for (size_t i = lo; i < hi; i++)
            params[i] -= lr * delta[i];
        break;
    case OUTER_NESTEROV:
        for (size_t i = lo; i < hi; i++) {
            float m = mu * o->m[i] + delta[i];
            o->m[i] = m;
            params[i] -= lr * (delta[i] + mu * m);
        }
        break;
    case OUTER_FEDADAM: {
        const float b1 = o->beta1, b2 = o->beta2, tau = o->tau;
        for (size_t i = lo; i < hi; i++) {
            float d = delta[i];
            float m = b1 * o->m[i] + (1.0f - b1) * d;
            float v = b2 * o->v[i] + (1.0f - b2) * d * d;
            o->m[i] = m;
            o->v[i] = v;
            params[i] -= lr * m / (sqrtf(v) + tau);
        }
        break;
    }
    }
}

void outer_step(struct outer_opt *o, float *params, const float *delta)
{
    for (size_t lo = 0; lo < o->n; lo += OUTER_CHUNK) {
        size_t hi = o->n - lo < OUTER_CHUNK ? o->n : lo + OUTER_CHUNK;
        step_range(o, params, delta, lo, hi);
        if (o->release && o->kind != OUTER_FEDAVG)
            o->release(o->release_arg, lo, hi);
    }
    o->step++;
}

static void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get_u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

enum { OUTER_HDR = OUTER_STATE_HEADER };   /* 4 + 4 + 4 + 8 + 8 */

static size_t vectors(const struct outer_opt *o)
{
    return (o->m ? 1u : 0u) + (o->v ? 1u : 0u);
}

size_t outer_state_bytes(const struct outer_opt *o)
{
    size_t vec = o->kind == OUTER_FEDADAM ? 2 : o->kind == OUTER_NESTEROV ? 1 : 0;
    return OUTER_HDR + vec * o->n * sizeof(float);
}

void outer_state_header(const struct outer_opt *o, uint8_t hdr[OUTER_STATE_HEADER])
{
    memcpy(hdr, "AUOS", 4);
    put_u32(hdr + 4, 1);
    put_u32(hdr + 8, (uint32_t)o->kind);
    put_u64(hdr + 12, o->n);
    put_u64(hdr + 20, o->step);
}

int outer_state_header_check(const struct outer_opt *o, const uint8_t *hdr, size_t len,
                             uint64_t *step)
{
    if (len < OUTER_HDR || memcmp(hdr, "AUOS", 4) != 0 || get_u32(hdr + 4) != 1)
        return OUTER_ERR_FORMAT;
    if (get_u32(hdr + 8) != (uint32_t)o->kind || get_u64(hdr + 12) != o->n)
        return OUTER_ERR_SIZE;
    *step = get_u64(hdr + 20);
    return 0;
}

int outer_state_encode(const struct outer_opt *o, uint8_t **out, size_t *len)
{
    size_t body = vectors(o) * o->n * sizeof(float);
    uint8_t *b = malloc(OUTER_HDR + body);
    if (!b)
        return OUTER_ERR_NOMEM;
    memcpy(b, "AUOS", 4);
    put_u32(b + 4, 1);
    put_u32(b + 8, (uint32_t)o->kind);
    put_u64(b + 12, o->n);
    put_u64(b + 20, o->step);
    uint8_t *p = b + OUTER_HDR;
    if (o->m) {
        memcpy(p, o->m, o->n * sizeof(float));
        p += o->n * sizeof(float);
    }
    if (o->v)
        memcpy(p, o->v, o->n * sizeof(float));
    *out = b;
    *len = OUTER_HDR + body;
    return 0;
}

int outer_state_decode(struct outer_opt *o, const uint8_t *buf, size_t len)
{
    if (len < OUTER_HDR || memcmp(buf, "AUOS", 4) != 0 || get_u32(buf + 4) != 1)
        return OUTER_ERR_FORMAT;
    if (get_u32(buf + 8) != (uint32_t)o->kind || get_u64(buf + 12) != o->n)
        return OUTER_ERR_SIZE;
    if (len != OUTER_HDR + vectors(o) * o->n * sizeof(float))
        return OUTER_ERR_SIZE;
    o->step = get_u64(buf + 20);
    const uint8_t *p = buf + OUTER_HDR;
    if (o->m) {
        memcpy(o->m, p, o->n * sizeof(float));
        p += o->n * sizeof(float);
    }
    if (o->v)
        memcpy(o->v, p, o->n * sizeof(float));
    return 0;
}
