/* DP-FedAvg's Gaussian noise (aggregate/dp_noise.h; aggregate/README.md, "Differential
 * privacy", has the layout and test vectors).
 *
 * Scheme 2 must give the same bits on every platform: it uses IEEE-754 double +, -, *, /
 * and sqrt only (each correctly rounded by the standard), written in the order the
 * README states. Three compiler behaviours would break that, and are excluded here:
 * fused multiply-add contraction (the Makefile compiles everything with
 * -ffp-contract=off; clang also honours the pragma below, GCC does not know it),
 * -ffast-math (refused below) and evaluation in wider precision (x87: refused below). */
#include "aggregate/dp_noise.h"

#include <float.h>
#include <math.h>
#include <sodium.h>
#include <string.h>

#include "aggregate/robust.h"

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif
#ifdef __FAST_MATH__
#error "aggregate/dp_noise.c must not be compiled with -ffast-math: the DP noise must be the same bits on every platform"
#endif
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "aggregate/dp_noise.c needs FLT_EVAL_METHOD == 0 (double rounded as double, e.g. SSE2 on x86, not x87)"
#endif

/* --- the logarithm --------------------------------------------------------- */

/* fdlibm's __ieee754_log (e_log.c), restricted to positive normal finite x:
 * ====================================================
 * Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.
 *
 * Developed at SunSoft, a Sun Microsystems, Inc. business.
 * Permission to use, copy, modify, and distribute this
 * software is freely granted, provided that this notice
 * is preserved.
 * ====================================================
 * Same constants, same operations in the same order; the word access is a memcpy of the
 * 64-bit pattern instead of fdlibm's unions. */
static const double ln2_hi = 0x1.62e42feep-1,            /* 3fe62e42 fee00000 */
                    ln2_lo = 0x1.a39ef35793c76p-33,      /* 3dea39ef 35793c76 */
                    Lg1 = 0x1.5555555555593p-1,          /* 3fe55555 55555593 */
                    Lg2 = 0x1.999999997fa04p-2,          /* 3fd99999 9997fa04 */
                    Lg3 = 0x1.2492494229359p-2,          /* 3fd24924 94229359 */
                    Lg4 = 0x1.c71c51d8e78afp-3,          /* 3fcc71c5 1d8e78af */
                    Lg5 = 0x1.7466496cb03dep-3,          /* 3fc74664 96cb03de */
                    Lg6 = 0x1.39a09d078c69fp-3,          /* 3fc39a09 d078c69f */
                    Lg7 = 0x1.2f112df3e5244p-3;          /* 3fc2f112 df3e5244 */

double agg_dp_log(double x)
{
    uint64_t bits;
    memcpy(&bits, &x, 8);
    int32_t hx = (int32_t)(bits >> 32);
    uint32_t lx = (uint32_t)bits;
    if (hx < 0x00100000 || hx >= 0x7ff00000)   /* negative, zero, subnormal, inf, NaN */
        return NAN;
    if (hx == 0x3ff00000 && lx == 0)
        return 0.0;                             /* log(1) = +0 */
    int32_t k = (hx >> 20) - 1023;
    hx &= 0x000fffff;
    int32_t i = (hx + 0x95f64) & 0x100000;
    /* x's mantissa with exponent 0 (1 + f in [1, sqrt 2)) or -1 ([sqrt 2 / 2, 1)) */
    bits = (uint64_t)(uint32_t)(hx | (i ^ 0x3ff00000)) << 32 | lx;
    memcpy(&x, &bits, 8);
    k += i >> 20;
    double f = x - 1.0, dk, R;
    if ((0x000fffff & (2 + hx)) < 3) {          /* -2^-20 <= f < 2^-20 */
        if (f == 0.0) {
            dk = (double)k;
            return dk * ln2_hi + dk * ln2_lo;   /* k != 0 here */
        }
        R = f * f * (0.5 - 0.33333333333333333 * f);
        if (k == 0)
            return f - R;
        dk = (double)k;
        return dk * ln2_hi - ((R - dk * ln2_lo) - f);
    }
    double s = f / (2.0 + f);
    dk = (double)k;
    double z = s * s;
    i = hx - 0x6147a;
    double w = z * z;
    int32_t j = 0x6b851 - hx;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    i |= j;
    R = t2 + t1;
    if (i > 0) {
        double hfsq = 0.5 * f * f;
        if (k == 0)
            return f - (hfsq - s * (hfsq + R));
        return dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
    }
    if (k == 0)
        return f - s * (f - R);
    return dk * ln2_hi - ((s * (f - R) - dk * ln2_lo) - f);
}

/* --- the stream ------------------------------------------------------------ */

/* The round's ChaCha20 keystream as little-endian u64 words, 512 at a time. */
struct dp_stream {
    uint8_t key[32];
    uint64_t block;             /* the next ChaCha20 block to generate */
    size_t used;                /* words of buf taken */
    uint64_t buf[512];
    uint8_t bytes[4096];
};

static uint64_t dp_next_word(struct dp_stream *st)
{
    static const uint8_t zeros[4096];
    static const uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];
    if (st->used == sizeof st->buf / sizeof st->buf[0]) {
        crypto_stream_chacha20_xor_ic(st->bytes, zeros, sizeof st->bytes, nonce, st->block,
                                      st->key);
        st->block += sizeof st->bytes / 64;
        for (size_t w = 0; w < sizeof st->buf / sizeof st->buf[0]; w++) {
            uint64_t v = 0;
            for (int b = 7; b >= 0; b--)
                v = v << 8 | st->bytes[8 * w + (size_t)b];
            st->buf[w] = v;
        }
        st->used = 0;
    }
    return st->buf[st->used++];
}

/* Scheme 2: two independent standard normals from the stream (Marsaglia polar method),
 * times sigma: x0 = sigma * N0, x1 = sigma * N1. */
static void polar_pair(struct dp_stream *st, double sigma, double *x0, double *x1)
{
    double u, v, q;
    do {
        u = (double)(dp_next_word(st) >> 11) * 0x1p-52 - 1.0;   /* exact, [-1, 1) */
        v = (double)(dp_next_word(st) >> 11) * 0x1p-52 - 1.0;
        q = u * u + v * v;
    } while (!(q > 0.0 && q < 1.0));
    /* q >= 2^-104 (the smallest nonzero u*u), so agg_dp_log sees a normal number. */
    double m = sqrt(-2.0 * agg_dp_log(q) / q);
    *x0 = sigma * (u * m);
    *x1 = sigma * (v * m);
}

/* Scheme 1 (earlier versions): Box-Muller with libm, kept for replay only, in its
 * order: x0 = (sigma * r) * cos(2 pi u2), x1 = (sigma * r) * sin(2 pi u2). */
static void box_muller_libm_pair(struct dp_stream *st, double sigma, double *x0, double *x1)
{
    const double two_pi = 6.283185307179586476925286766559;
    double u1 = (double)((dp_next_word(st) >> 11) + 1) * 0x1p-53;   /* (0, 1] */
    double u2 = (double)(dp_next_word(st) >> 11) * 0x1p-53;         /* [0, 1) */
    double r = sqrt(-2.0 * log(u1));
    *x0 = sigma * r * cos(two_pi * u2);
    *x1 = sigma * r * sin(two_pi * u2);
}

/* --- the noise ------------------------------------------------------------- */

void agg_dp_round_key(const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, uint8_t key[32])
{
    static const char label[] = "aulac/dp-noise";   /* 14 bytes, no NUL */
    uint8_t msg[AGG_DP_SEED_BYTES + sizeof label - 1 + 8];
    memcpy(msg, seed, AGG_DP_SEED_BYTES);
    memcpy(msg + AGG_DP_SEED_BYTES, label, sizeof label - 1);
    for (int i = 0; i < 8; i++)
        msg[AGG_DP_SEED_BYTES + sizeof label - 1 + i] = (uint8_t)(round >> (8 * i));
    crypto_generichash(key, 32, msg, sizeof msg, NULL, 0);
    sodium_memzero(msg, sizeof msg);
}

void agg_dp_seed_commitment(const uint8_t seed[AGG_DP_SEED_BYTES], uint8_t out[32])
{
    crypto_generichash(out, 32, seed, AGG_DP_SEED_BYTES, NULL, 0);
}

int agg_dp_noise_scheme(const struct policy *p, const struct policy_round_plan *plan,
                        size_t k, const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round,
                        float *avg, size_t n_params, unsigned scheme)
{
    if (!p || !plan || (n_params && !avg))
        return AGG_ERR_ARG;
    if (scheme != AGG_DP_SCHEME_POLAR && scheme != AGG_DP_SCHEME_BOX_MULLER_LIBM)
        return AGG_ERR_ARG;
    if (!p->privacy.enabled || p->privacy.noise_multiplier == 0)
        return 0;
    if (k == 0 || !seed)
        return AGG_ERR_ARG;
    if (sodium_init() < 0)
        return AGG_ERR_ARG;
    const double s = p->privacy.noise_multiplier * p->privacy.clip *
                     (double)agg_sparse_factor(plan) / (double)k;
    struct dp_stream st;
    st.block = 0;
    st.used = sizeof st.buf / sizeof st.buf[0];
    agg_dp_round_key(seed, round, st.key);
    for (size_t j = 0; j < n_params; j += 2) {
        double x0, x1;
        if (scheme == AGG_DP_SCHEME_POLAR)
            polar_pair(&st, s, &x0, &x1);
        else
            box_muller_libm_pair(&st, s, &x0, &x1);
        avg[j] += (float)x0;
        if (j + 1 < n_params)
            avg[j + 1] += (float)x1;
    }
    sodium_memzero(&st, sizeof st);   /* the key and the keystream */
    return 0;
}

int agg_dp_normals(const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, unsigned scheme,
                   double sigma, double *out, size_t n)
{
    if (!seed || (n && !out))
        return AGG_ERR_ARG;
    if (scheme != AGG_DP_SCHEME_POLAR && scheme != AGG_DP_SCHEME_BOX_MULLER_LIBM)
        return AGG_ERR_ARG;
    if (sodium_init() < 0)
        return AGG_ERR_ARG;
    struct dp_stream st;
    st.block = 0;
    st.used = sizeof st.buf / sizeof st.buf[0];
    agg_dp_round_key(seed, round, st.key);
    for (size_t j = 0; j < n; j += 2) {
        double x0, x1;
        if (scheme == AGG_DP_SCHEME_POLAR)
            polar_pair(&st, sigma, &x0, &x1);
        else
            box_muller_libm_pair(&st, sigma, &x0, &x1);
        out[j] = x0;
        if (j + 1 < n)
            out[j + 1] = x1;
    }
    sodium_memzero(&st, sizeof st);
    return 0;
}

int agg_dp_noise(const struct policy *p, const struct policy_round_plan *plan, size_t k,
                 const uint8_t seed[AGG_DP_SEED_BYTES], uint64_t round, float *avg,
                 size_t n_params)
{
    return agg_dp_noise_scheme(p, plan, k, seed, round, avg, n_params, AGG_DP_SCHEME);
}
