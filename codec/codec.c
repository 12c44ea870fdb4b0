#include "codec/codec.h"
#include "common/fileio.h"
#include "common/why.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>
#define ZSTD_STATIC_LINKING_ONLY   /* ZSTD_getFrameHeader: the window size */
#include <zstd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "codec/codec_internal.h"
#include "codec/codec_quant.h"

/* Hot loops use GCC/Clang vector extensions, 4 lanes: GCC's -O2 cost model leaves the
 * plain loops scalar. They lower to SSE2 on baseline x86-64, NEON on arm64. */
#define CHUNK 16
#define VL 4
typedef float f32v __attribute__((vector_size(16)));
typedef int32_t i32v __attribute__((vector_size(16)));
typedef int8_t i8v __attribute__((vector_size(4)));
typedef uint8_t u8v __attribute__((vector_size(16)));

static inline f32v vload(const float *p)
{
    f32v v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void vstore(float *p, f32v v) { memcpy(p, &v, sizeof v); }
#ifndef __SSE2__
static inline i32v vloadi(const uint32_t *p)
{
    i32v v;
    memcpy(&v, p, sizeof v);
    return v;
}
#endif
static inline void vstorei(uint32_t *p, i32v v) { memcpy(p, &v, sizeof v); }
static inline i32v vmaxi(i32v a, i32v b)
{
    i32v m = a > b;
    return (a & m) | (b & ~m);
}
static inline int32_t hmaxi(i32v v)
{
    int32_t m = v[0];
    for (int j = 1; j < VL; j++)
        m = v[j] > m ? v[j] : m;
    return m;
}
static inline int any_set(i32v v)
{
    uint64_t w[2];
    memcpy(w, &v, sizeof w);
    return (w[0] | w[1]) != 0;
}

static inline uint16_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline float ldf(const uint8_t *p)
{
    float v;
    memcpy(&v, p, 4);
    return v;
}
static inline void st16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void st32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void st64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline void stf(uint8_t *p, float v) { memcpy(p, &v, 4); }

/* --- parameters ------------------------------------------------------------ */

void codec_params_default(struct codec_params *p)
{
    memset(p, 0, sizeof *p);
    p->format_version = CODEC_FORMAT_VERSION;
    p->block_size = 4096;
    p->k_per_block = 41;
    p->quant = CODEC_QUANT_INT8;
    p->zstd_level = 3;
    p->error_feedback = 1;
}

int codec_params_validate(const struct codec_params *p, char *why, size_t why_len)
{
    if (!p)
        return why_fail(why, why_len, CODEC_ERR_ARG, "no parameters");
    if (p->format_version != CODEC_FORMAT_VERSION)
        return why_fail(why, why_len, CODEC_ERR_PARAMS, "format_version %u (supported: %d)",
                    p->format_version, CODEC_FORMAT_VERSION);
    if (p->block_size < 1 || p->block_size > CODEC_MAX_BLOCK)
        return why_fail(why, why_len, CODEC_ERR_PARAMS, "block_size %u not in [1, %u]",
                    p->block_size, CODEC_MAX_BLOCK);
    if (p->k_per_block < 1)
        return why_fail(why, why_len, CODEC_ERR_PARAMS, "k_per_block must be at least 1");
    if ((unsigned)p->quant >= CODEC_QUANT_COUNT)
        return why_fail(why, why_len, CODEC_ERR_PARAMS, "quant %d unknown", (int)p->quant);
    if (p->zstd_level < 0 || p->zstd_level > 22)
        return why_fail(why, why_len, CODEC_ERR_PARAMS, "zstd_level %d not in [0, 22]",
                    p->zstd_level);
    if (p->error_feedback != 0 && p->error_feedback != 1)
        return why_fail(why, why_len, CODEC_ERR_PARAMS, "error_feedback must be 0 or 1");
    return 0;
}

uint64_t codec_body_len(int dense, enum codec_quant q, uint64_t n, uint64_t nb, uint64_t total)
{
    uint64_t scales = q == CODEC_QUANT_FP32 ? 0 : nb * 4;
    if (dense)
        return scales + codec_values_bytes(q, n);
    return nb * 2 + scales + total * 2 + codec_values_bytes(q, total);
}

/* Most values a sparse payload can carry: min(K, block length) per block. */
static uint64_t max_total(uint64_t n, uint32_t B, uint32_t K)
{
    if (n == 0)
        return 0;
    uint64_t nb = (n + B - 1) / B;
    uint64_t last = n - (nb - 1) * B;
    return (nb - 1) * K + (last < K ? last : K);
}

size_t codec_max_payload_len(size_t n, const struct codec_params *p)
{
    if (codec_params_validate(p, NULL, 0) || n > CODEC_MAX_N)
        return 0;
    uint32_t B = p->block_size, K = p->k_per_block < B ? p->k_per_block : B;
    uint64_t nb = (n + B - 1) / B;
    int dense = K == B;
    uint64_t body = codec_body_len(dense, p->quant, n, nb, dense ? n : max_total(n, B, K));
    uint64_t z = p->zstd_level > 0 ? ZSTD_compressBound((size_t)body) : 0;
    return (size_t)(CODEC_HEADER_LEN + (z > body ? z : body));
}

/* --- encode ---------------------------------------------------------------- */

static inline uint32_t abs_bits(float v) { return codec_f32_bits(v) & 0x7fffffffu; }

/* 1 if every delta[i] + residual[i] is finite. Runs before the residual is touched so a
 * refused encode leaves it as it was. */
static bool sum_all_finite(const float *d, const float *r, size_t n, codec_release_fn rel,
                           void *arg)
{
    const i32v expo = {0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000};
    size_t i = 0, done = 0;
    while (i + 4096 <= n) {
        i32v bad = {0};
        for (size_t j = i; j < i + 4096; j += VL) {
            i32v e = (i32v)(vload(d + j) + vload(r + j)) & expo;
            bad |= e == expo;
        }
        if (any_set(bad))
            return false;
        i += 4096;
        if (rel && i - done >= CODEC_RELEASE_CHUNK) {
            rel(arg, done, i);
            done = i;
        }
    }
    for (; i < n; i++)
        if ((codec_f32_bits(d[i] + r[i]) & 0x7f800000u) == 0x7f800000u)
            return false;
    if (rel && n > done)
        rel(arg, done, n);
    return true;
}

/* Calls rel for the residual's values [*done, upto) once they are CODEC_RELEASE_CHUNK or
 * more, or at the end (last). */
static void released_upto(codec_release_fn rel, void *arg, size_t *done, size_t upto, int last)
{
    if (rel && upto > *done && (last || upto - *done >= CODEC_RELEASE_CHUNK)) {
        rel(arg, *done, upto);
        *done = upto;
    }
}

/* v = delta + residual, written back into the residual, when feedback is on (r), else
 * v = delta; |v| bits into a[]; returns max |v| bits. */
static uint32_t load_block(const float *d, float *r, uint32_t *a, uint32_t len)
{
    /* Magnitude bits are below 2^31, so a signed max orders them; NaN and Inf sort above
     * every finite value, which is how the caller spots them (max >= 0x7f800000). */
    const i32v absmask = {0x7fffffff, 0x7fffffff, 0x7fffffff, 0x7fffffff};
    i32v mxv = {0};
    size_t i = 0, n = len;
    if (r) {
        for (; i + VL <= n; i += VL) {
            f32v x = vload(d + i) + vload(r + i);
            vstore(r + i, x);
            i32v b = (i32v)x & absmask;
            vstorei(a + i, b);
            mxv = vmaxi(mxv, b);
        }
    } else {
        for (; i + VL <= n; i += VL) {
            i32v b = (i32v)vload(d + i) & absmask;
            vstorei(a + i, b);
            mxv = vmaxi(mxv, b);
        }
    }
    uint32_t mx = (uint32_t)hmaxi(mxv);
    for (; i < n; i++) {
        float x = r ? d[i] + r[i] : d[i];
        if (r)
            r[i] = x;
        a[i] = abs_bits(x);
        mx = a[i] > mx ? a[i] : mx;
    }
    return mx;
}

static int cmp_u64_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : (x > y ? -1 : 0);
}

/* The k-th largest (1-based) of n distinct keys; reorders x. Quickselect with a
 * median-of-three pivot, falling back to a sort if it keeps choosing badly. */
static uint64_t kth_largest(uint64_t *x, uint32_t n, uint32_t k)
{
    int64_t lo = 0, hi = (int64_t)n - 1, target = (int64_t)k - 1;
    int rounds = 0;
    while (lo < hi) {
        if (++rounds > 64) {
            qsort(x + lo, (size_t)(hi - lo + 1), sizeof *x, cmp_u64_desc);
            break;
        }
        int64_t mid = lo + (hi - lo) / 2;
        uint64_t a = x[lo], b = x[mid], c = x[hi];
        uint64_t pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (x[i] > pivot)
                i++;
            while (x[j] < pivot)
                j--;
            if (i <= j) {
                uint64_t t = x[i];
                x[i] = x[j];
                x[j] = t;
                i++;
                j--;
            }
        }
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            break;
    }
    return x[target];
}

static uint32_t gather_candidates(const uint32_t *a, uint32_t len, uint32_t t, uint64_t *cand)
{
    /* t >= 1, so "a > t - 1" is "a >= t" in signed arithmetic (a < 2^31). Groups of 16
     * are tested with vector compares; only the hits are visited. */
    const int32_t t1 = (int32_t)t - 1;
    uint32_t c = 0, i = 0;
#ifdef __SSE2__
    const __m128i tv = _mm_set1_epi32(t1);
    for (; i + 16 <= len; i += 16) {
        __m128i m0 = _mm_cmpgt_epi32(_mm_loadu_si128((const __m128i *)(a + i)), tv);
        __m128i m1 = _mm_cmpgt_epi32(_mm_loadu_si128((const __m128i *)(a + i + 4)), tv);
        __m128i m2 = _mm_cmpgt_epi32(_mm_loadu_si128((const __m128i *)(a + i + 8)), tv);
        __m128i m3 = _mm_cmpgt_epi32(_mm_loadu_si128((const __m128i *)(a + i + 12)), tv);
        unsigned mask = (unsigned)_mm_movemask_epi8(
            _mm_packs_epi16(_mm_packs_epi32(m0, m1), _mm_packs_epi32(m2, m3)));
        while (mask) {
            uint32_t j = i + (uint32_t)__builtin_ctz(mask);
            cand[c++] = ((uint64_t)a[j] << 16) | (0xffffu - j);
            mask &= mask - 1;
        }
    }
#else
    const i32v tv = {t1, t1, t1, t1};
    for (; i + 16 <= len; i += 16) {
        i32v m = (vloadi(a + i) > tv) | (vloadi(a + i + 4) > tv) | (vloadi(a + i + 8) > tv) |
                 (vloadi(a + i + 12) > tv);
        if (!any_set(m))
            continue;
        for (uint32_t j = i; j < i + 16; j++) {
            cand[c] = ((uint64_t)a[j] << 16) | (0xffffu - j);
            c += a[j] >= t;
        }
    }
#endif
    for (; i < len; i++) {
        cand[c] = ((uint64_t)a[i] << 16) | (0xffffu - i);
        c += a[i] >= t;
    }
    return c;
}

/* Positions (increasing) of the k largest |v| of the block, ties to the lower index,
 * zeros never. The key (|v| bits << 16 | 0xffff - i) orders exactly that way and is
 * unique. 256 strided samples set a threshold expected to let about 3k values through,
 * so the exact selection runs over those only; when the sample misjudges (fewer than k
 * pass) every non-zero value is a candidate. Returns the count kept. */
static uint32_t select_block(const uint32_t *a, uint32_t len, uint32_t k, uint64_t *cand,
                             uint64_t *work, uint16_t *pos)
{
    uint32_t t = 1;
    if (len >= 256 && (uint64_t)len > 8ull * k) {
        uint32_t step = len / 256;
        uint32_t r = (uint32_t)((3ull * k * 256 + len - 1) / len);
        uint32_t top[32], have = 0;
        if (r < 32) {
            for (uint32_t j = 0; j < 256; j++) {
                uint32_t x = a[j * step];
                if (have > r && x <= top[r])
                    continue;
                uint32_t at = have <= r ? have++ : r;
                while (at > 0 && top[at - 1] < x) {
                    top[at] = top[at - 1];
                    at--;
                }
                top[at] = x;
            }
            if (top[r] > 1)
                t = top[r];
        }
    }
    uint32_t c = gather_candidates(a, len, t, cand);
    if (c < k && t > 1)
        c = gather_candidates(a, len, 1, cand);
    if (c <= k) {
        for (uint32_t j = 0; j < c; j++)
            pos[j] = (uint16_t)(0xffffu - (cand[j] & 0xffffu));
        return c;
    }
    memcpy(work, cand, (size_t)c * sizeof *work);
    uint64_t kth = kth_largest(work, c, k);
    uint32_t m = 0;
    for (uint32_t j = 0; j < c; j++) {
        pos[m] = (uint16_t)(0xffffu - (cand[j] & 0xffffu));
        m += cand[j] >= kth;
    }
    return m;
}

static inline void put_value(enum codec_quant q, uint8_t *vals, uint64_t j, uint32_t code)
{
    switch (q) {
    case CODEC_QUANT_FP32: st32(vals + 4 * j, code); break;
    case CODEC_QUANT_FP16: st16(vals + 2 * j, (uint16_t)code); break;
    case CODEC_QUANT_INT8:
    case CODEC_QUANT_FP8_E4M3: vals[j] = (uint8_t)code; break;
    case CODEC_QUANT_INT4:
        if (j & 1)
            vals[j >> 1] |= (uint8_t)((code & 0xfu) << 4);
        else
            vals[j >> 1] = (uint8_t)(code & 0xfu);
        break;
    default: break;
    }
}

/* Dense int8 is the common dense case; it gets a vector loop. Same arithmetic as
 * codec_quantize(): q = rint(v / scale) clamped to +-127, deq = q * scale. */
static void dense_int8_block(const float *v, float *r, uint32_t len, float scale, int8_t *out)
{
    if (!(scale > 0.0f)) {
        memset(out, 0, len);
        return;         /* the residual already holds v */
    }
    const f32v sv = {scale, scale, scale, scale};
    const f32v magic = {12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f};
    const f32v lim = {127.0f, 127.0f, 127.0f, 127.0f};
    size_t i = 0;
#ifdef __SSE2__
    /* The same arithmetic 16 values a step, narrowed to bytes with saturating packs
     * (exact: the codes are already within +-127). */
    const __m128 s4 = _mm_set1_ps(scale), m4 = _mm_set1_ps(12582912.0f);
    const __m128 hi4 = _mm_set1_ps(127.0f), lo4 = _mm_set1_ps(-127.0f);
    for (; i + 16 <= len; i += 16) {
        __m128i c[4];
        for (int j = 0; j < 4; j++) {
            __m128 x = _mm_loadu_ps(v + i + 4 * j);
            __m128 q = _mm_sub_ps(_mm_add_ps(_mm_div_ps(x, s4), m4), m4);
            q = _mm_min_ps(_mm_max_ps(q, lo4), hi4);
            c[j] = _mm_cvtps_epi32(q);
            if (r)
                _mm_storeu_ps(r + i + 4 * j, _mm_sub_ps(x, _mm_mul_ps(q, s4)));
        }
        __m128i b = _mm_packs_epi16(_mm_packs_epi32(c[0], c[1]), _mm_packs_epi32(c[2], c[3]));
        _mm_storeu_si128((__m128i *)(out + i), b);
    }
#endif
    for (; i + VL <= len; i += VL) {
        f32v x = vload(v + i);
        f32v q = (x / sv + magic) - magic;      /* |x / scale| <= ~127: exact RNE */
        i32v hi = q > lim, lo = q < -lim;
        q = (f32v)(((i32v)q & ~hi & ~lo) | ((i32v)lim & hi) | ((i32v)(-lim) & lo));
        i8v b = __builtin_convertvector(__builtin_convertvector(q, i32v), i8v);
        memcpy(out + i, &b, sizeof b);
        if (r)
            vstore(r + i, x - q * sv);
    }
    for (; i < len; i++) {
        float deq;
        out[i] = (int8_t)(int32_t)codec_quantize(CODEC_QUANT_INT8, v[i], scale, &deq);
        if (r)
            r[i] = v[i] - deq;
    }
}

struct enc_scratch {
    uint32_t *a;
    uint64_t *cand, *work;
    uint16_t *pos;
};

static int encode_dense(const float *delta, uint64_t n, const struct codec_params *p,
                        float *residual, uint8_t *body, struct enc_scratch *s,
                        codec_release_fn rel, void *arg)
{
    size_t done = 0;
    enum codec_quant q = p->quant;
    uint32_t B = p->block_size;
    uint64_t nb = (n + B - 1) / B;
    uint8_t *scales = body;
    uint8_t *vals = body + (q == CODEC_QUANT_FP32 ? 0 : nb * 4);
    for (uint64_t b = 0; b < nb; b++) {
        uint64_t base = b * B;
        if (residual)
            released_upto(rel, arg, &done, (size_t)base, 0);
        uint32_t len = (uint32_t)(n - base < B ? n - base : B);
        float *r = residual ? residual + base : NULL;
        uint32_t mx = load_block(delta + base, r, s->a, len);
        if (mx >= 0x7f800000u)
            return CODEC_ERR_NONFINITE;
        const float *v = r ? r : delta + base;
        if (q == CODEC_QUANT_FP32) {
            memcpy(vals + base * 4, v, (size_t)len * 4);
            if (r)
                memset(r, 0, (size_t)len * 4);
            continue;
        }
        float scale = codec_block_scale(q, codec_bits_f32(mx));
        stf(scales + 4 * b, scale);
        if (q == CODEC_QUANT_INT8) {
            dense_int8_block(v, r, len, scale, (int8_t *)(vals + base));
            continue;
        }
        for (uint32_t i = 0; i < len; i++) {
            float deq;
            uint32_t code = codec_quantize(q, v[i], scale, &deq);
            put_value(q, vals, base + i, code);
            if (r)
                r[i] = v[i] - deq;
        }
    }
    if (residual)
        released_upto(rel, arg, &done, (size_t)n, 1);
    return 0;
}

/* Sparse body: counts | scales | gaps | values; values go to vals_tmp first because
 * their offset depends on the final count. Returns total via *total. */
static int encode_sparse(const float *delta, uint64_t n, const struct codec_params *p,
                         float *residual, uint8_t *body, uint8_t *vals_tmp,
                         struct enc_scratch *s, uint64_t *total_out, size_t *body_len,
                         codec_release_fn rel, void *arg)
{
    size_t done = 0;
    enum codec_quant q = p->quant;
    uint32_t B = p->block_size, K = p->k_per_block;
    uint64_t nb = (n + B - 1) / B;
    uint8_t *counts = body;
    uint8_t *scales = body + nb * 2;
    uint8_t *gaps = scales + (q == CODEC_QUANT_FP32 ? 0 : nb * 4);
    uint64_t total = 0;
    for (uint64_t b = 0; b < nb; b++) {
        uint64_t base = b * B;
        uint32_t len = (uint32_t)(n - base < B ? n - base : B);
        float *r = residual ? residual + base : NULL;
        uint32_t mx = load_block(delta + base, r, s->a, len);
        if (mx >= 0x7f800000u)
            return CODEC_ERR_NONFINITE;
        const float *v = r ? r : delta + base;
        uint32_t k = K < len ? K : len;
        uint32_t c = mx ? select_block(s->a, len, k, s->cand, s->work, s->pos) : 0;
        float scale = codec_block_scale(q, codec_bits_f32(mx));
        st16(counts + 2 * b, (uint16_t)c);
        if (q != CODEC_QUANT_FP32)
            stf(scales + 4 * b, scale);
        uint32_t prev = 0;
        for (uint32_t j = 0; j < c; j++) {
            uint32_t at = s->pos[j];
            st16(gaps + 2 * (total + j), (uint16_t)(j ? at - prev - 1 : at));
            prev = at;
            float deq;
            uint32_t code = codec_quantize(q, v[at], scale, &deq);
            put_value(q, vals_tmp, total + j, code);
            if (r)
                r[at] = v[at] - deq;
        }
        total += c;
        if (residual)
            released_upto(rel, arg, &done, (size_t)(base + len), b + 1 == nb);
    }
    uint8_t *vals = gaps + total * 2;
    memcpy(vals, vals_tmp, codec_values_bytes(q, total));
    *total_out = total;
    *body_len = (size_t)codec_body_len(0, q, n, nb, total);
    return 0;
}

int codec_finish(const struct codec_params *p, uint64_t n, uint64_t total, uint8_t *buf,
                 size_t body_len, uint8_t **payload, size_t *payload_len)
{
    uint32_t K = p->k_per_block < p->block_size ? p->k_per_block : p->block_size;
    uint8_t hdr[CODEC_HEADER_LEN];
    memcpy(hdr, CODEC_MAGIC, 4);
    st16(hdr + 4, CODEC_FORMAT_VERSION);
    hdr[6] = (uint8_t)p->quant;
    hdr[7] = 0;
    st32(hdr + 8, p->block_size);
    st32(hdr + 12, K);
    st64(hdr + 16, n);
    st64(hdr + 24, total);
    st64(hdr + 32, body_len);
    if (p->zstd_level > 0 && body_len > 0) {
        size_t bound = ZSTD_compressBound(body_len);
        uint8_t *z = malloc(CODEC_HEADER_LEN + bound);
        if (!z) {
            free(buf);
            return CODEC_ERR_NOMEM;
        }
        /* A dense body is quantized noise with no long repeats: the match search of
         * levels above 1 costs time and finds short spurious matches that make the frame
         * larger (16.8 MB of int8 codes: level 1 9.97 MB in 21 ms, level 3 10.32 MB in
         * 108 ms, level 9 10.43 MB in 381 ms), so dense bodies use level 1. */
        int level = K == p->block_size && p->zstd_level > 1 ? 1 : p->zstd_level;
        size_t zlen = ZSTD_compress(z + CODEC_HEADER_LEN, bound, buf + CODEC_HEADER_LEN,
                                    body_len, level);
        if (ZSTD_isError(zlen)) {
            free(z);
            free(buf);
            return CODEC_ERR_ZSTD;
        }
        if (zlen < body_len) {
            free(buf);
            hdr[7] = CODEC_FLAG_ZSTD;
            memcpy(z, hdr, CODEC_HEADER_LEN);
            uint8_t *shrunk = realloc(z, CODEC_HEADER_LEN + zlen);
            *payload = shrunk ? shrunk : z;
            *payload_len = CODEC_HEADER_LEN + zlen;
            return 0;
        }
        free(z);    /* incompressible: the raw body is smaller */
    }
    memcpy(buf, hdr, CODEC_HEADER_LEN);
    uint8_t *shrunk = realloc(buf, CODEC_HEADER_LEN + body_len);
    *payload = shrunk ? shrunk : buf;
    *payload_len = CODEC_HEADER_LEN + body_len;
    return 0;
}

void codec_residual_decay(const struct codec_params *params, float *residual, size_t n,
                          float decay)
{
    if (!params || !residual || !params->error_feedback || decay == 1.0f)
        return;
    for (size_t i = 0; i < n; i++)
        residual[i] *= decay;
}

int codec_encode(const float *delta, size_t n, const struct codec_params *params,
                 float *residual, uint8_t **payload, size_t *payload_len)
{
    return codec_encode_released(delta, n, params, residual, NULL, NULL, payload, payload_len);
}

/* The encoders' common argument checks: 0, CODEC_ERR_ARG, CODEC_ERR_PARAMS or
 * CODEC_ERR_TOO_LARGE. */
static int encode_check(const float *delta, size_t n, const struct codec_params *params,
                        const float *residual)
{
    if (!params || (n && !delta))
        return CODEC_ERR_ARG;
    int rc = codec_params_validate(params, NULL, 0);
    if (rc)
        return rc;
    if ((uint64_t)n > CODEC_MAX_N)
        return CODEC_ERR_TOO_LARGE;
    if (params->error_feedback && n && !residual)
        return CODEC_ERR_ARG;
    return 0;
}

int codec_encode_released(const float *delta, size_t n, const struct codec_params *params,
                          float *residual, codec_release_fn release, void *arg,
                          uint8_t **payload, size_t *payload_len)
{
    if (!payload || !payload_len)
        return CODEC_ERR_ARG;
    *payload = NULL;
    *payload_len = 0;
    int rc = encode_check(delta, n, params, residual);
    if (rc)
        return rc;
    float *res = params->error_feedback ? residual : NULL;
    if (res && !sum_all_finite(delta, res, n, release, arg))
        return CODEC_ERR_NONFINITE;

    struct codec_params p = *params;
    uint32_t B = p.block_size;
    if (p.k_per_block > B)
        p.k_per_block = B;
    int dense = p.k_per_block == B;
    enum codec_quant q = p.quant;
    uint64_t nb = (n + B - 1) / B;

    struct enc_scratch s = {0};
    s.a = malloc((size_t)B * sizeof *s.a);
    if (!dense) {
        s.cand = malloc((size_t)B * sizeof *s.cand);
        s.work = malloc((size_t)B * sizeof *s.work);
        s.pos = malloc((size_t)B * sizeof *s.pos);
    }
    uint64_t mt = dense ? n : max_total(n, B, p.k_per_block);
    uint64_t cap = codec_body_len(dense, q, n, nb, mt);
    uint8_t *buf = malloc((size_t)(CODEC_HEADER_LEN + cap));
    uint8_t *vals_tmp = dense ? NULL : malloc((size_t)codec_values_bytes(q, mt) + 1);
    uint64_t total = 0;
    size_t body_len = 0;
    if (!s.a || !buf || (!dense && (!s.cand || !s.work || !s.pos || !vals_tmp))) {
        rc = CODEC_ERR_NOMEM;
    } else if (dense) {
        rc = encode_dense(delta, n, &p, res, buf + CODEC_HEADER_LEN, &s, release, arg);
        total = n;
        body_len = (size_t)cap;
    } else {
        rc = encode_sparse(delta, n, &p, res, buf + CODEC_HEADER_LEN, vals_tmp, &s, &total,
                           &body_len, release, arg);
    }
    free(s.a);
    free(s.cand);
    free(s.work);
    free(s.pos);
    free(vals_tmp);
    if (rc) {
        free(buf);
        return rc;
    }
    return codec_finish(&p, n, total, buf, body_len, payload, payload_len);
}


/* --- encode into a file ----------------------------------------------------- */

struct rel_shift {
    codec_release_fn rel;
    void *arg;
    size_t shift;
};

static void rel_shifted(void *a, size_t lo, size_t hi)
{
    struct rel_shift *s = a;
    s->rel(s->arg, lo + s->shift, hi + s->shift);
}

static void header_bytes(const struct codec_params *p, uint64_t n, uint64_t total,
                         uint64_t body_len, uint8_t flags, uint8_t hdr[CODEC_HEADER_LEN])
{
    memcpy(hdr, CODEC_MAGIC, 4);
    st16(hdr + 4, CODEC_FORMAT_VERSION);
    hdr[6] = (uint8_t)p->quant;
    hdr[7] = flags;
    st32(hdr + 8, p->block_size);
    st32(hdr + 12, p->k_per_block < p->block_size ? p->k_per_block : p->block_size);
    st64(hdr + 16, n);
    st64(hdr + 24, total);
    st64(hdr + 32, body_len);
}

enum { FD_IO_CHUNK = 1 << 20 };

/* The raw body at [at + 40, + body_len) of fd compressed as codec_finish does (one zstd
 * frame, content size declared) into fd right behind it; when smaller, moved over the raw
 * body with the zstd flag set. fd is truncated to the payload's end either way. */
static int finish_fd(const struct codec_params *p, uint64_t n, int fd, uint64_t at,
                     uint64_t body_len, uint64_t *payload_len)
{
    uint8_t hdr[CODEC_HEADER_LEN];
    uint64_t out_len = body_len;
    int rc = 0;
    if (p->zstd_level > 0 && body_len > 0) {
        uint8_t *in = malloc(FD_IO_CHUNK);
        size_t out_cap = ZSTD_CStreamOutSize();
        uint8_t *out = malloc(out_cap);
        ZSTD_CCtx *z = ZSTD_createCCtx();
        const uint64_t body = at + CODEC_HEADER_LEN, frame = body + body_len;
        uint64_t zlen = 0;
        /* As codec_finish: dense bodies use level 1 (only dense bodies come here). */
        int level = p->zstd_level > 1 ? 1 : p->zstd_level;
        /* The body is read through a read-only mapping that zstd keeps as its input
         * (stable input buffer: the frame ZSTD_compress makes of the same bytes, which a
         * stream fed by copies is not), its pages dropped a window behind the reading. */
        long page = sysconf(_SC_PAGESIZE);
        uint64_t map_at = body - body % (uint64_t)page;
        size_t map_len = (size_t)(body + body_len - map_at);
        uint8_t *map = mmap(NULL, map_len, PROT_READ, MAP_SHARED, fd, (off_t)map_at);
        if (map == MAP_FAILED)
            map = NULL;
        if (!in || !out || !z)
            rc = CODEC_ERR_NOMEM;
        else if (!map)
            rc = CODEC_ERR_IO;
        else if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, level)) ||
                 ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_stableInBuffer, 1)) ||
                 ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(z, body_len)))
            rc = CODEC_ERR_ZSTD;
        ZSTD_inBuffer ib = {map ? map + (body - map_at) : NULL, 0, 0};
        size_t dropped = 0;
        const size_t keep = (size_t)8 << 20;    /* over level 1's window at any size */
        while (rc == 0 && ib.size < body_len) {
            ib.size = body_len - ib.size < FD_IO_CHUNK ? (size_t)body_len
                                                       : ib.size + FD_IO_CHUNK;
            ZSTD_EndDirective end = ib.size == body_len ? ZSTD_e_end : ZSTD_e_continue;
            size_t left;
            do {
                ZSTD_outBuffer ob = {out, out_cap, 0};
                left = ZSTD_compressStream2(z, &ob, &ib, end);
                if (ZSTD_isError(left)) {
                    rc = CODEC_ERR_ZSTD;
                    break;
                }
                if (file_pwrite_all(fd, out, ob.pos, frame + zlen) != 0) {
                    rc = CODEC_ERR_IO;
                    break;
                }
                zlen += ob.pos;
            } while (end == ZSTD_e_end ? left != 0 : ib.pos < ib.size);
            size_t upto = (size_t)(body - map_at) + ib.pos;
            if (upto > keep + dropped + FD_IO_CHUNK) {
                size_t to = (upto - keep) - (upto - keep) % (size_t)page;
                madvise(map + dropped, to - dropped, MADV_DONTNEED);
                dropped = to;
            }
        }
        if (map)
            munmap(map, map_len);
        if (rc == 0 && zlen < body_len) {
            /* The frame over the raw body: [frame, + zlen) to [body, + zlen), disjoint
             * since zlen < body_len. */
            for (uint64_t off = 0; rc == 0 && off < zlen;) {
                size_t len = zlen - off < FD_IO_CHUNK ? (size_t)(zlen - off) : FD_IO_CHUNK;
                if (file_pread_all(fd, in, len, frame + off) != 0 ||
                    file_pwrite_all(fd, in, len, body + off) != 0)
                    rc = CODEC_ERR_IO;
                off += len;
            }
            out_len = zlen;
        }
        ZSTD_freeCCtx(z);
        free(in);
        free(out);
        if (rc)
            return rc;
    }
    header_bytes(p, n, n, body_len, out_len < body_len ? CODEC_FLAG_ZSTD : 0, hdr);
    if (file_pwrite_all(fd, hdr, sizeof hdr, at) != 0)
        return CODEC_ERR_IO;
    if (ftruncate(fd, (off_t)(at + CODEC_HEADER_LEN + out_len)) != 0)
        return CODEC_ERR_IO;
    *payload_len = CODEC_HEADER_LEN + out_len;
    return 0;
}

int codec_encode_fd(const float *delta, size_t n, const struct codec_params *params,
                    float *residual, codec_release_fn release, void *arg, int fd, uint64_t at,
                    uint64_t *payload_len)
{
    if (!payload_len || fd < 0)
        return CODEC_ERR_ARG;
    *payload_len = 0;
    int rc = encode_check(delta, n, params, residual);
    if (rc)
        return rc;
    struct codec_params p = *params;
    uint32_t B = p.block_size;
    if (p.k_per_block > B)
        p.k_per_block = B;
    if (p.k_per_block < B || n == 0) {
        /* A sparse body is small (at most k/B of the values): made in memory. */
        uint8_t *buf;
        size_t len;
        rc = codec_encode_released(delta, n, params, residual, release, arg, &buf, &len);
        if (rc)
            return rc;
        rc = file_pwrite_all(fd, buf, len, at) == 0 ? 0 : CODEC_ERR_IO;
        free(buf);
        if (rc == 0 && ftruncate(fd, (off_t)(at + len)) != 0)
            rc = CODEC_ERR_IO;
        if (rc == 0)
            *payload_len = len;
        return rc;
    }
    float *res = params->error_feedback ? residual : NULL;
    if (res && !sum_all_finite(delta, res, n, release, arg))
        return CODEC_ERR_NONFINITE;
    enum codec_quant q = p.quant;
    uint64_t nb = (n + B - 1) / B;
    const uint64_t scales_len = q == CODEC_QUANT_FP32 ? 0 : nb * 4;
    const uint64_t body_len = codec_body_len(1, q, n, nb, n);
    /* Whole blocks, an even count of values (int4 packs two a byte), about
     * CODEC_RELEASE_CHUNK values a piece. */
    uint64_t per = ((uint64_t)CODEC_RELEASE_CHUNK / (2u * B) + 1) * 2u * B;
    size_t piece_cap = (size_t)((per / B) * 4 + codec_values_bytes(q, per));
    struct enc_scratch s = {0};
    s.a = malloc((size_t)B * sizeof *s.a);
    uint8_t *piece = malloc(piece_cap);
    if (!s.a || !piece)
        rc = CODEC_ERR_NOMEM;
    for (uint64_t lo = 0; rc == 0 && lo < n; lo += per) {
        uint64_t len = n - lo < per ? n - lo : per;
        uint64_t pb = (len + B - 1) / B, psc = q == CODEC_QUANT_FP32 ? 0 : pb * 4;
        struct rel_shift sh = {release, arg, (size_t)lo};
        rc = encode_dense(delta + lo, len, &p, res ? res + lo : NULL, piece, &s,
                          release ? rel_shifted : NULL, &sh);
        if (rc == 0 &&
            (file_pwrite_all(fd, piece, psc, at + CODEC_HEADER_LEN + (lo / B) * 4) != 0 ||
             file_pwrite_all(fd, piece + psc, codec_values_bytes(q, len),
                             at + CODEC_HEADER_LEN + scales_len + codec_value_offset(q, lo)) != 0))
            rc = CODEC_ERR_IO;
    }
    free(s.a);
    free(piece);
    if (rc == 0)
        rc = finish_fd(&p, n, fd, at, body_len, payload_len);
    return rc;
}

/* --- decode ---------------------------------------------------------------- */

static int parse_header(const uint8_t *p, size_t len, struct codec_header *h, char *why,
                        size_t why_len)
{
    if (!p || len < CODEC_HEADER_LEN)
        return why_fail(why, why_len, CODEC_ERR_TRUNCATED, "payload of %zu bytes is shorter than "
                    "the %d byte header", len, CODEC_HEADER_LEN);
    if (memcmp(p, CODEC_MAGIC, 4) != 0)
        return why_fail(why, why_len, CODEC_ERR_MAGIC, "bad magic (not an aulac codec payload)");
    h->version = ld16(p + 4);
    if (h->version != CODEC_FORMAT_VERSION)
        return why_fail(why, why_len, CODEC_ERR_VERSION, "format version %u (supported: %d)",
                    h->version, CODEC_FORMAT_VERSION);
    h->quant = (enum codec_quant)p[6];
    h->flags = p[7];
    h->block_size = ld32(p + 8);
    h->k_per_block = ld32(p + 12);
    h->n = ld64(p + 16);
    h->total = ld64(p + 24);
    h->body_len = ld64(p + 32);
    if (p[6] >= CODEC_QUANT_COUNT)
        return why_fail(why, why_len, CODEC_ERR_HEADER, "unknown quantization %u", p[6]);
    if (h->flags & ~CODEC_FLAG_ZSTD)
        return why_fail(why, why_len, CODEC_ERR_HEADER, "unknown flags 0x%02x", h->flags);
    if (h->block_size < 1 || h->block_size > CODEC_MAX_BLOCK)
        return why_fail(why, why_len, CODEC_ERR_HEADER, "block_size %u not in [1, %u]",
                    h->block_size, CODEC_MAX_BLOCK);
    if (h->k_per_block < 1 || h->k_per_block > h->block_size)
        return why_fail(why, why_len, CODEC_ERR_HEADER, "k_per_block %u not in [1, block_size %u]",
                    h->k_per_block, h->block_size);
    if (h->n > CODEC_MAX_N)
        return why_fail(why, why_len, CODEC_ERR_HEADER, "n %llu over the limit",
                    (unsigned long long)h->n);
    return 0;
}

int codec_payload_info(const uint8_t *payload, size_t len, struct codec_params *params,
                       uint64_t *n)
{
    struct codec_header h;
    int rc = parse_header(payload, len, &h, NULL, 0);
    if (rc)
        return rc;
    if (params) {
        memset(params, 0, sizeof *params);
        params->format_version = h.version;
        params->block_size = h.block_size;
        params->k_per_block = h.k_per_block;
        params->quant = h.quant;
    }
    if (n)
        *n = h.n;
    return 0;
}

/* --- one block: the only parser of a payload's body bytes ---------------- */

static inline uint64_t value_byte(enum codec_quant q, uint64_t j)
{
    return q == CODEC_QUANT_INT4 ? j >> 1 : j * codec_value_bytes(q);
}

int codec_block_head(const struct codec_header *h, uint64_t b, const uint8_t *count,
                     const uint8_t *scale, uint64_t sum, struct codec_block *blk, char *why,
                     size_t why_len)
{
    const uint32_t B = h->block_size, K = h->k_per_block;
    const int dense = K == B;
    memset(blk, 0, sizeof *blk);
    blk->index = b;
    blk->len = (uint32_t)(h->n - b * B < B ? h->n - b * B : B);
    blk->scale = 1.0f;
    if (h->quant != CODEC_QUANT_FP32) {
        float s = ldf(scale);
        if ((codec_f32_bits(s) >> 31) || !(s * codec_qmax(h->quant) <= FLT_MAX))
            return why_fail(why, why_len, CODEC_ERR_SCALE, "block %llu: scale %g is negative, "
                        "not finite or too large", (unsigned long long)b, (double)s);
        blk->scale = s;
    }
    if (dense) {
        blk->count = blk->len;
        blk->first = b * B;
    } else {
        uint32_t c = ld16(count);
        if (c > K || c > blk->len)
            return why_fail(why, why_len, CODEC_ERR_COUNT, "block %llu: %u values, more than "
                        "min(k_per_block %u, block length %u)", (unsigned long long)b, c, K,
                        blk->len);
        if (sum + c > h->total)
            return why_fail(why, why_len, CODEC_ERR_COUNT, "block counts add up to more than "
                        "the header's total %llu", (unsigned long long)h->total);
        blk->count = c;
        blk->first = sum;
    }
    blk->vskip = h->quant == CODEC_QUANT_INT4 ? (uint32_t)(blk->first & 1) : 0;
    return 0;
}

uint64_t codec_block_value_bytes(const struct codec_header *h, const struct codec_block *blk)
{
    if (!blk->count)
        return 0;
    return value_byte(h->quant, blk->first + blk->count - 1) - value_byte(h->quant, blk->first) +
           (h->quant == CODEC_QUANT_INT4 ? 1 : codec_value_bytes(h->quant));
}

uint64_t codec_value_offset(enum codec_quant q, uint64_t j) { return value_byte(q, j); }

int codec_block_body(const struct codec_header *h, const struct codec_block *blk, char *why,
                     size_t why_len)
{
    const enum codec_quant q = h->quant;
    const uint32_t c = blk->count;
    const uint8_t *x = blk->values;
    if (h->k_per_block != h->block_size && c) {
        /* Positions: first = gap[0], next = previous + 1 + gap: increasing by
         * construction, so the last one is the only one to bound. */
        uint64_t last = c - 1;
        for (uint32_t j = 0; j < c; j++)
            last += ld16(blk->gaps + 2 * j);
        if (last >= blk->len)
            return why_fail(why, why_len, CODEC_ERR_INDEX, "block %llu: position %llu is "
                        "outside the block of %u", (unsigned long long)blk->index,
                        (unsigned long long)last, blk->len);
    }
    uint32_t i = 0;
    switch (q) {
    case CODEC_QUANT_INT8:
    case CODEC_QUANT_FP8_E4M3: {
        /* int8: -128 is never emitted; e4m3: S.1111.111 is NaN. */
        uint8_t mask = q == CODEC_QUANT_INT8 ? 0xff : 0x7f;
        uint8_t bad = q == CODEC_QUANT_INT8 ? 0x80 : 0x7f;
        const u8v mv = {mask, mask, mask, mask, mask, mask, mask, mask,
                        mask, mask, mask, mask, mask, mask, mask, mask};
        const u8v bv = {bad, bad, bad, bad, bad, bad, bad, bad,
                        bad, bad, bad, bad, bad, bad, bad, bad};
        u8v hit = {0};
        for (; i + 16 <= c; i += 16) {
            u8v b;
            memcpy(&b, x + i, sizeof b);
            hit |= (u8v)((b & mv) == bv);
        }
        uint64_t w[2];
        memcpy(w, &hit, sizeof w);
        if (w[0] | w[1])
            i = 0;      /* find it for the message */
        for (; i < c; i++)
            if ((x[i] & mask) == bad)
                return why_fail(why, why_len, CODEC_ERR_VALUE, "value %llu: code 0x%02x is not a "
                            "valid %s value", (unsigned long long)(blk->first + i), x[i],
                            codec_quant_name(q));
        return 0;
    }
    case CODEC_QUANT_INT4:
        for (; i < c; i++) {
            uint32_t j = blk->vskip + i;
            if (((x[j >> 1] >> ((j & 1) * 4)) & 0xf) == 0x8)
                return why_fail(why, why_len, CODEC_ERR_VALUE, "value %llu: int4 code -8 is never "
                            "emitted", (unsigned long long)(blk->first + i));
        }
        /* The block holding the payload's last value holds the spare nibble, if any. */
        if (c && blk->first + c == h->total && (h->total & 1) &&
            (x[(blk->vskip + c - 1) >> 1] & 0xf0))
            return why_fail(why, why_len, CODEC_ERR_VALUE, "the spare last int4 nibble is not 0");
        return 0;
    case CODEC_QUANT_FP16:
        for (; i < c; i++)
            if ((ld16(x + 2 * i) & 0x7c00u) == 0x7c00u)
                return why_fail(why, why_len, CODEC_ERR_VALUE, "value %llu: fp16 Inf or NaN",
                            (unsigned long long)(blk->first + i));
        return 0;
    case CODEC_QUANT_FP32:
        for (; i < c; i++)
            if ((ld32(x + 4 * i) & 0x7f800000u) == 0x7f800000u)
                return why_fail(why, why_len, CODEC_ERR_VALUE, "value %llu: fp32 Inf or NaN",
                            (unsigned long long)(blk->first + i));
        return 0;
    default:
        return why_fail(why, why_len, CODEC_ERR_HEADER, "unknown quantization");
    }
}

static inline float code_value(enum codec_quant q, const uint8_t *vals, uint64_t j);

void codec_block_decode(const struct codec_header *h, const struct codec_block *blk,
                        float *values, uint8_t *present)
{
    const enum codec_quant q = h->quant;
    const float s = blk->scale;
    if (h->k_per_block == h->block_size) {
        for (uint32_t i = 0; i < blk->len; i++)
            values[i] = code_value(q, blk->values, blk->vskip + i) * s;
        if (present)
            memset(present, 1, blk->len);
        return;
    }
    memset(values, 0, (size_t)blk->len * sizeof *values);
    if (present)
        memset(present, 0, blk->len);
    uint32_t at = 0;
    for (uint32_t e = 0; e < blk->count; e++) {
        at = e ? at + 1u + ld16(blk->gaps + 2 * e) : ld16(blk->gaps);
        /* The same product the accumulator adds with weight 1: code * (1 * s). */
        values[at] = code_value(q, blk->values, blk->vskip + e) * s;
        if (present)
            present[at] = 1;
    }
}

/* Every block in order through codec_block_head / codec_block_body (the one parser of
 * body bytes, shared with codec_reader), then the count total. */
static int validate_sections(struct codec_view *v, char *why, size_t why_len)
{
    const struct codec_header *h = &v->h;
    uint64_t sum = 0;
    for (uint64_t b = 0; b < v->nb; b++) {
        struct codec_block blk;
        int rc = codec_block_head(h, b, v->dense ? NULL : v->counts + 2 * b,
                                  v->scales ? v->scales + 4 * b : NULL, sum, &blk, why, why_len);
        if (rc)
            return rc;
        blk.gaps = v->dense ? NULL : v->gaps + 2 * blk.first;
        blk.values = v->values + value_byte(h->quant, blk.first);
        if ((rc = codec_block_body(h, &blk, why, why_len)) != 0)
            return rc;
        if (!v->dense)
            sum += blk.count;
    }
    if (!v->dense && sum != h->total)
        return why_fail(why, why_len, CODEC_ERR_COUNT, "block counts add up to %llu, header "
                    "says %llu", (unsigned long long)sum, (unsigned long long)h->total);
    return 0;
}

int codec_payload_check(const uint8_t *payload, size_t len, size_t n_expected,
                        struct codec_header *h, uint64_t *nb_out, size_t *frame_len, char *why,
                        size_t why_len)
{
    int rc = parse_header(payload, len, h, why, why_len);
    if (rc)
        return rc;
    if (h->n != (uint64_t)n_expected)
        return why_fail(why, why_len, CODEC_ERR_LENGTH, "payload holds %llu values, expected %zu",
                    (unsigned long long)h->n, n_expected);
    uint32_t B = h->block_size, K = h->k_per_block;
    uint64_t nb = (h->n + B - 1) / B;
    int dense = K == B;
    uint64_t limit = dense ? h->n : max_total(h->n, B, K);
    if (dense ? h->total != h->n : h->total > limit)
        return why_fail(why, why_len, CODEC_ERR_COUNT, "total %llu values is impossible for n %llu, "
                    "block %u, k %u", (unsigned long long)h->total, (unsigned long long)h->n, B,
                    K);
    uint64_t body_len = codec_body_len(dense, h->quant, h->n, nb, h->total);
    if (h->body_len != body_len || body_len > SIZE_MAX - CODEC_HEADER_LEN)
        return why_fail(why, why_len, CODEC_ERR_HEADER, "body length %llu, the header's counts "
                    "need %llu", (unsigned long long)h->body_len, (unsigned long long)body_len);
    *nb_out = nb;
    const uint8_t *src = payload + CODEC_HEADER_LEN;
    size_t rest = len - CODEC_HEADER_LEN;
    if (h->flags & CODEC_FLAG_ZSTD) {
        unsigned long long fcs = ZSTD_getFrameContentSize(src, rest);
        if (fcs == ZSTD_CONTENTSIZE_ERROR)
            return why_fail(why, why_len, rest < 18 ? CODEC_ERR_TRUNCATED : CODEC_ERR_FRAME,
                        "body is not a zstd frame");
        if (fcs == ZSTD_CONTENTSIZE_UNKNOWN)
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame does not declare its size");
        if (fcs != body_len)
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame declares %llu bytes, the "
                        "header %llu", fcs, (unsigned long long)body_len);
        /* The window bounds what a streaming reader (codec_reader) holds; zstd's encoder
         * never writes one above 2^27 (level 22), so neither decoder accepts more. */
        ZSTD_frameHeader fh;
        if (ZSTD_getFrameHeader(&fh, src, rest) != 0)
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame header unreadable");
        if (fh.windowSize > (1ull << CODEC_ZSTD_WINDOW_LOG_MAX))
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame window of %llu bytes, "
                        "over the limit 2^%d", fh.windowSize, CODEC_ZSTD_WINDOW_LOG_MAX);
        size_t csize = ZSTD_findFrameCompressedSize(src, rest);
        if (ZSTD_isError(csize))
            return why_fail(why, why_len, CODEC_ERR_TRUNCATED, "zstd frame truncated or malformed: "
                        "%s", ZSTD_getErrorName(csize));
        if (csize != rest)
            return why_fail(why, why_len, CODEC_ERR_TRAILING, "%zu bytes after the zstd frame",
                        rest - csize);
    } else {
        if (rest < body_len)
            return why_fail(why, why_len, CODEC_ERR_TRUNCATED, "body has %zu of %llu bytes", rest,
                        (unsigned long long)body_len);
        if (rest > body_len)
            return why_fail(why, why_len, CODEC_ERR_TRAILING, "%llu bytes after the body",
                        (unsigned long long)(rest - body_len));
    }
    *frame_len = rest;
    return 0;
}

int codec_view_open(const uint8_t *payload, size_t len, size_t n_expected,
                    struct codec_view *v, char *why, size_t why_len)
{
    memset(v, 0, sizeof *v);
    struct codec_header *h = &v->h;
    size_t rest;
    int rc = codec_payload_check(payload, len, n_expected, h, &v->nb, &rest, why, why_len);
    if (rc)
        return rc;
    v->dense = h->k_per_block == h->block_size;
    const uint64_t body_len = h->body_len;
    const uint8_t *src = payload + CODEC_HEADER_LEN;
    const uint8_t *body;
    if (h->flags & CODEC_FLAG_ZSTD) {
        v->owned = malloc(body_len ? (size_t)body_len : 1);
        if (!v->owned)
            return why_fail(why, why_len, CODEC_ERR_NOMEM, "no memory for a %llu byte body",
                        (unsigned long long)body_len);
        size_t got = ZSTD_decompress(v->owned, (size_t)body_len, src, rest);
        if (ZSTD_isError(got) || got != body_len) {
            codec_view_close(v);
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame does not decode: %s",
                        ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
        }
        body = v->owned;
    } else {
        body = src;
    }

    const uint8_t *c = body;
    if (!v->dense) {
        v->counts = c;
        c += v->nb * 2;
    }
    if (h->quant != CODEC_QUANT_FP32) {
        v->scales = c;
        c += v->nb * 4;
    }
    if (!v->dense) {
        v->gaps = c;
        c += h->total * 2;
    }
    v->values = c;
    rc = validate_sections(v, why, why_len);
    if (rc)
        codec_view_close(v);
    return rc;
}

void codec_view_close(struct codec_view *v)
{
    free(v->owned);
    v->owned = NULL;
}

static inline float code_value(enum codec_quant q, const uint8_t *vals, uint64_t j)
{
    switch (q) {
    case CODEC_QUANT_INT8: return (float)(int8_t)vals[j];
    case CODEC_QUANT_INT4: {
        uint8_t nib = (uint8_t)((vals[j >> 1] >> ((j & 1) * 4)) & 0xf);
        return (float)((int8_t)(uint8_t)(nib << 4) >> 4);
    }
    case CODEC_QUANT_FP16: return codec_f16_to_f32(ld16(vals + 2 * j));
    case CODEC_QUANT_FP8_E4M3: return codec_e4m3_to_f32(vals[j]);
    default: return ldf(vals + 4 * j);
    }
}

static void accumulate_dense(const struct codec_view *v, float weight, float *acc)
{
    enum codec_quant q = v->h.quant;
    uint32_t B = v->h.block_size;
    uint64_t n = v->h.n;
    for (uint64_t b = 0; b < v->nb; b++) {
        uint64_t base = b * B;
        uint32_t len = (uint32_t)(n - base < B ? n - base : B);
        float ws = v->scales ? weight * ldf(v->scales + 4 * b) : weight;
        float *a = acc + base;
        uint32_t i = 0;
        const f32v wv = {ws, ws, ws, ws};
        if (q == CODEC_QUANT_INT8) {
            const int8_t *x = (const int8_t *)v->values + base;
#ifdef __SSE2__
            /* 16 codes a step, sign-extended in registers (the generic 4-lane loop below
             * widens them one by one through general registers). */
            const __m128 w4 = _mm_set1_ps(ws);
            for (; i + 16 <= len; i += 16) {
                __m128i b = _mm_loadu_si128((const __m128i *)(x + i));
                __m128i lo16 = _mm_srai_epi16(_mm_unpacklo_epi8(b, b), 8);
                __m128i hi16 = _mm_srai_epi16(_mm_unpackhi_epi8(b, b), 8);
                __m128i q0 = _mm_srai_epi32(_mm_unpacklo_epi16(lo16, lo16), 16);
                __m128i q1 = _mm_srai_epi32(_mm_unpackhi_epi16(lo16, lo16), 16);
                __m128i q2 = _mm_srai_epi32(_mm_unpacklo_epi16(hi16, hi16), 16);
                __m128i q3 = _mm_srai_epi32(_mm_unpackhi_epi16(hi16, hi16), 16);
                float *o = a + i;
                _mm_storeu_ps(o, _mm_add_ps(_mm_loadu_ps(o), _mm_mul_ps(_mm_cvtepi32_ps(q0), w4)));
                _mm_storeu_ps(o + 4, _mm_add_ps(_mm_loadu_ps(o + 4),
                                                _mm_mul_ps(_mm_cvtepi32_ps(q1), w4)));
                _mm_storeu_ps(o + 8, _mm_add_ps(_mm_loadu_ps(o + 8),
                                                _mm_mul_ps(_mm_cvtepi32_ps(q2), w4)));
                _mm_storeu_ps(o + 12, _mm_add_ps(_mm_loadu_ps(o + 12),
                                                 _mm_mul_ps(_mm_cvtepi32_ps(q3), w4)));
            }
#endif
            for (; i + VL <= len; i += VL) {
                i8v b;
                memcpy(&b, x + i, sizeof b);
                f32v f = __builtin_convertvector(__builtin_convertvector(b, i32v), f32v);
                vstore(a + i, vload(a + i) + f * wv);
            }
        } else if (q == CODEC_QUANT_FP32) {
            const uint8_t *x = v->values + 4 * base;
            for (; i + VL <= len; i += VL) {
                f32v f;
                memcpy(&f, x + 4 * i, sizeof f);
                vstore(a + i, vload(a + i) + f * wv);
            }
        }
        for (; i < len; i++)
            a[i] += code_value(q, v->values, base + i) * ws;
    }
}

static void accumulate_sparse(const struct codec_view *v, float weight, float *acc)
{
    enum codec_quant q = v->h.quant;
    uint32_t B = v->h.block_size;
    uint64_t j = 0;
    for (uint64_t b = 0; b < v->nb; b++) {
        uint32_t c = ld16(v->counts + 2 * b);
        if (!c)
            continue;
        float ws = v->scales ? weight * ldf(v->scales + 4 * b) : weight;
        float *a = acc + b * B;
        const uint8_t *g = v->gaps + 2 * j;
        uint32_t at = ld16(g);
        if (q == CODEC_QUANT_INT8) {
            const int8_t *x = (const int8_t *)v->values + j;
            a[at] += (float)x[0] * ws;
            for (uint32_t e = 1; e < c; e++) {
                at += 1u + ld16(g + 2 * e);
                a[at] += (float)x[e] * ws;
            }
        } else {
            a[at] += code_value(q, v->values, j) * ws;
            for (uint32_t e = 1; e < c; e++) {
                at += 1u + ld16(g + 2 * e);
                a[at] += code_value(q, v->values, j + e) * ws;
            }
        }
        j += c;
    }
}

/* support[i] += weight for every position the sparse payload carries. */
static void support_sparse(const struct codec_view *v, float weight, float *support)
{
    uint32_t B = v->h.block_size;
    uint64_t j = 0;
    for (uint64_t b = 0; b < v->nb; b++) {
        uint32_t c = ld16(v->counts + 2 * b);
        if (!c)
            continue;
        float *s = support + b * B;
        const uint8_t *g = v->gaps + 2 * j;
        uint32_t at = ld16(g);
        s[at] += weight;
        for (uint32_t e = 1; e < c; e++) {
            at += 1u + ld16(g + 2 * e);
            s[at] += weight;
        }
        j += c;
    }
}

int codec_decode_accumulate(const uint8_t *payload, size_t len, size_t n_expected,
                            float weight, float *acc, char *why, size_t why_len)
{
    return codec_decode_accumulate_support(payload, len, n_expected, weight, acc, NULL, why,
                                           why_len);
}

int codec_decode_accumulate_support(const uint8_t *payload, size_t len, size_t n_expected,
                                    float weight, float *acc, float *support, char *why,
                                    size_t why_len)
{
    return codec_decode_accumulate_scaled(payload, len, n_expected, weight, 1.0f, acc, support,
                                          why, why_len);
}

int codec_decode_accumulate_scaled(const uint8_t *payload, size_t len, size_t n_expected,
                                   float weight, float scale, float *acc, float *support,
                                   char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!payload || (n_expected && !acc))
        return why_fail(why, why_len, CODEC_ERR_ARG, "NULL payload or accumulator");
    if (!isfinite(weight) || !isfinite(scale))
        return why_fail(why, why_len, CODEC_ERR_ARG, "weight or scale is not finite");
    struct codec_view v;
    int rc = codec_view_open(payload, len, n_expected, &v, why, why_len);
    if (rc)
        return rc;
    /* scale 1: weight * 1 == weight, so the products are codec_decode_accumulate's. */
    const float wacc = weight * scale;
    if (v.dense)
        accumulate_dense(&v, wacc, acc);
    else
        accumulate_sparse(&v, wacc, acc);
    if (support && v.dense)
        for (uint64_t i = 0; i < v.h.n; i++)
            support[i] += weight;
    else if (support)
        support_sparse(&v, weight, support);
    codec_view_close(&v);
    return 0;
}

const char *codec_quant_name(enum codec_quant q)
{
    switch (q) {
    case CODEC_QUANT_FP32: return "fp32";
    case CODEC_QUANT_INT8: return "int8";
    case CODEC_QUANT_FP16: return "fp16";
    case CODEC_QUANT_FP8_E4M3: return "fp8";
    case CODEC_QUANT_INT4: return "int4";
    default: return "?";
    }
}

const char *codec_strerror(int code)
{
    switch (code) {
    case 0: return "success";
    case CODEC_ERR_ARG: return "invalid argument to the codec";
    case CODEC_ERR_PARAMS: return "codec parameters out of range";
    case CODEC_ERR_NOMEM: return "out of memory";
    case CODEC_ERR_NONFINITE: return "update contains NaN or Inf";
    case CODEC_ERR_TOO_LARGE: return "update too large for the codec";
    case CODEC_ERR_ZSTD: return "zstd compression failed";
    case CODEC_ERR_IO: return "the payload file could not be read or written";
    case CODEC_ERR_TRUNCATED: return "payload truncated";
    case CODEC_ERR_MAGIC: return "not a codec payload";
    case CODEC_ERR_VERSION: return "unsupported codec format version";
    case CODEC_ERR_HEADER: return "codec header invalid";
    case CODEC_ERR_LENGTH: return "payload length does not match the model";
    case CODEC_ERR_COUNT: return "payload value count invalid";
    case CODEC_ERR_INDEX: return "payload position out of range";
    case CODEC_ERR_SCALE: return "payload scale invalid";
    case CODEC_ERR_VALUE: return "payload value invalid";
    case CODEC_ERR_FRAME: return "payload zstd frame invalid";
    case CODEC_ERR_TRAILING: return "trailing bytes after payload";
    case CODEC_ERR_NO_CUDA: return "no CUDA device or CUDA support";
    case CODEC_ERR_CUDA: return "CUDA error in the codec";
    default: return "unknown codec error";
    }
}

int codec_payload_norm(const uint8_t *payload, size_t len, size_t n_expected, double *l2,
                       char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!payload || !l2)
        return why_fail(why, why_len, CODEC_ERR_ARG, "NULL payload or result");
    struct codec_view v;
    int rc = codec_view_open(payload, len, n_expected, &v, why, why_len);
    if (rc != 0)
        return rc;
    const enum codec_quant q = v.h.quant;
    const uint32_t B = v.h.block_size;
    double sum = 0;
    uint64_t j = 0;
    for (uint64_t b = 0; b < v.nb; b++) {
        uint64_t kept = v.dense ? (v.h.n - b * B < B ? v.h.n - b * B : B) : ld16(v.counts + 2 * b);
        double s = v.scales ? (double)ldf(v.scales + 4 * b) : 1.0, block = 0;
        for (uint64_t e = 0; e < kept; e++) {
            double x = (double)code_value(q, v.values, j + e);
            block += x * x;
        }
        sum += block * s * s;
        j += kept;
    }
    codec_view_close(&v);
    *l2 = sqrt(sum);
    return 0;
}
