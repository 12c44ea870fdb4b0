#ifndef AULAC_CODEC_CODEC_QUANT_H
#define AULAC_CODEC_CODEC_QUANT_H
/* Internal to codec/: the number formats, shared word for word by the CPU codec and the
 * CUDA kernels so both produce the same bytes. Every conversion rounds to nearest, ties
 * to even, and saturates instead of producing Inf or NaN. Compiled as C and as CUDA. */
#include <stdint.h>

#include "codec/codec.h"

#ifdef __CUDACC__
#define CODEC_HD static __host__ __device__ __forceinline__
#else
#include <math.h>
#include <string.h>
#define CODEC_HD static inline
#endif

/* A product the device compiler may not fuse into a following add (nvcc contracts
 * a * b - c into an FMA by default), so host and device round it the same way. */
#ifdef __CUDA_ARCH__
#define CODEC_MUL(a, b) __fmul_rn((a), (b))
#else
#define CODEC_MUL(a, b) ((a) * (b))
#endif

CODEC_HD uint32_t codec_f32_bits(float f)
{
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
#endif
}

CODEC_HD float codec_bits_f32(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, 4);
    return f;
#endif
}

/* Round to nearest, ties to even, for |x| < 2^22 (larger floats are integers already).
 * The add-and-subtract form is exact IEEE arithmetic, so host and device agree
 * bit for bit and no libm call is needed. */
CODEC_HD float codec_rint(float x)
{
    float ax = x < 0.0f ? -x : x;
    if (!(ax < 4194304.0f))
        return x;
    const float m = 12582912.0f;            /* 1.5 * 2^23 */
    return (x + m) - m;
}

/* Bytes per stored value; int4 packs two per byte (see codec_values_bytes). */
CODEC_HD uint32_t codec_value_bytes(enum codec_quant q)
{
    return q == CODEC_QUANT_FP32 ? 4 : (q == CODEC_QUANT_FP16 ? 2 : 1);
}

CODEC_HD uint64_t codec_values_bytes(enum codec_quant q, uint64_t count)
{
    return q == CODEC_QUANT_INT4 ? (count + 1) / 2 : count * codec_value_bytes(q);
}

/* The largest code magnitude of each format, which max|v| of a block maps to:
 * scale = max|v| / codec_qmax. A valid payload's codes never exceed it, so a scale with
 * scale * codec_qmax finite cannot overflow on decode. fp32 has no scale. */
CODEC_HD float codec_qmax(enum codec_quant q)
{
    switch (q) {
    case CODEC_QUANT_INT8: return 127.0f;
    case CODEC_QUANT_INT4: return 7.0f;
    case CODEC_QUANT_FP8_E4M3: return 448.0f;
    case CODEC_QUANT_FP16: return 65504.0f;
    default: return 1.0f;
    }
}

/* scale = max|v| / qmax, nudged down in the rare case (max|v| near FLT_MAX) where
 * scale * qmax would round up to Inf. */
CODEC_HD float codec_block_scale(enum codec_quant q, float amax)
{
    float qm = codec_qmax(q);
    float s = amax / qm;
    while (CODEC_MUL(s, qm) > 3.4028234663852886e38f)
        s = codec_bits_f32(codec_f32_bits(s) - 1u);
    return s;
}

/* --- IEEE half ------------------------------------------------------------ */

CODEC_HD uint16_t codec_f32_to_f16(float f)
{
    uint32_t x = codec_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    x &= 0x7fffffffu;
    if (x >= 0x477ff000u)               /* >= 65520 rounds to Inf: saturate */
        return (uint16_t)(sign | 0x7bffu);
    if (x < 0x38800000u) {              /* below 2^-14: subnormal half */
        float a = codec_bits_f32(x) * 16777216.0f;  /* exact: times 2^24 */
        uint32_t m = (uint32_t)codec_rint(a);        /* 0..1024; 1024 = min normal */
        return (uint16_t)(sign | m);
    }
    uint32_t r = (x + 0x0fffu + ((x >> 13) & 1u)) >> 13;
    r -= 112u << 10;
    if (r > 0x7bffu)
        r = 0x7bffu;
    return (uint16_t)(sign | r);
}

CODEC_HD float codec_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float v = (float)m * 5.9604644775390625e-8f;    /* m * 2^-24, exact */
        return codec_bits_f32(codec_f32_bits(v) | sign);
    }
    return codec_bits_f32(sign | ((e + 112u) << 23) | (m << 13));   /* e == 31 refused */
}

/* --- OCP FP8 E4M3 (bias 7, no Inf, S.1111.111 is NaN, max 448) --------------- */

CODEC_HD uint8_t codec_f32_to_e4m3(float f)
{
    uint32_t x = codec_f32_bits(f);
    uint8_t sign = (uint8_t)((x >> 24) & 0x80u);
    x &= 0x7fffffffu;
    if (x >= 0x43e00000u)               /* >= 448: saturate */
        return (uint8_t)(sign | 0x7eu);
    if (x < 0x3c800000u) {              /* below 2^-6: subnormal, steps of 2^-9 */
        float a = codec_bits_f32(x) * 512.0f;
        uint32_t m = (uint32_t)codec_rint(a);       /* 0..8; 8 = min normal */
        return (uint8_t)(sign | m);
    }
    uint32_t r = (x + 0x7ffffu + ((x >> 20) & 1u)) >> 20;
    r -= 120u << 3;
    if (r > 0x7eu)
        r = 0x7eu;
    return (uint8_t)(sign | r);
}

CODEC_HD float codec_e4m3_to_f32(uint8_t b)
{
    uint32_t sign = (uint32_t)(b & 0x80u) << 24;
    uint32_t e = (b >> 3) & 0xfu, m = b & 7u;
    if (e == 0) {
        float v = (float)m * 0.001953125f;              /* m * 2^-9 */
        return codec_bits_f32(codec_f32_bits(v) | sign);
    }
    return codec_bits_f32(sign | ((e + 120u) << 23) | (m << 20));  /* 0x7f refused */
}

/* --- one value -------------------------------------------------------------- */

/* Quantizes v against scale (> 0) into its code; int8/int4 as a signed integer in the
 * low bits of the result, fp16/fp8 as their bit patterns. *deq receives exactly what
 * the decoder will reconstruct (code value * scale). */
CODEC_HD uint32_t codec_quantize(enum codec_quant q, float v, float scale, float *deq)
{
    if (q == CODEC_QUANT_FP32) {
        *deq = v;
        return codec_f32_bits(v);
    }
    if (!(scale > 0.0f)) {
        *deq = 0.0f;
        return 0;
    }
    float x = v / scale;
    switch (q) {
    case CODEC_QUANT_INT8:
    case CODEC_QUANT_INT4: {
        float lim = q == CODEC_QUANT_INT8 ? 127.0f : 7.0f;
        float r = codec_rint(x);
        r = r > lim ? lim : (r < -lim ? -lim : r);
        *deq = CODEC_MUL(r, scale);
        return (uint32_t)(int32_t)r;
    }
    case CODEC_QUANT_FP16: {
        uint16_t h = codec_f32_to_f16(x);
        *deq = CODEC_MUL(codec_f16_to_f32(h), scale);
        return h;
    }
    case CODEC_QUANT_FP8_E4M3: {
        uint8_t b = codec_f32_to_e4m3(x);
        *deq = CODEC_MUL(codec_e4m3_to_f32(b), scale);
        return b;
    }
    default:
        *deq = 0.0f;
        return 0;
    }
}

#endif
