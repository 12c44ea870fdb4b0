#ifndef AULAC_CODEC_CODEC_INTERNAL_H
#define AULAC_CODEC_CODEC_INTERNAL_H
/* Internal to codec/: the payload header, the validated view of a payload's sections,
 * and the final header + zstd stage, shared by the CPU codec (codec.c) and the CUDA
 * one (codec_cuda.cu), so both read and write the same bytes. */
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the codec reads and writes its little-endian format with plain loads"
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define CODEC_MAGIC "AUCP"
#define CODEC_FLAG_ZSTD 1u

struct codec_header {
    uint32_t version;
    enum codec_quant quant;
    uint32_t flags;
    uint32_t block_size;
    uint32_t k_per_block;       /* == block_size: dense */
    uint64_t n;
    uint64_t total;             /* values carried */
    uint64_t body_len;          /* bytes of the (uncompressed) body */
};

/* A payload whose every byte has been checked: positions inside their blocks, counts
 * within limits, scales finite, value codes valid. Section pointers are into the
 * payload or into owned (the decompressed body). */
struct codec_view {
    struct codec_header h;
    uint64_t nb;                /* blocks */
    int dense;
    const uint8_t *counts;      /* nb u16 (sparse only) */
    const uint8_t *scales;      /* nb f32 (absent for fp32) */
    const uint8_t *gaps;        /* total u16 (sparse only) */
    const uint8_t *values;      /* codec_values_bytes(quant, total) */
    uint8_t *owned;
};

/* Parses, decompresses and validates; 0 or a CODEC_ERR_* with why filled. */
int codec_view_open(const uint8_t *payload, size_t len, size_t n_expected,
                    struct codec_view *v, char *why, size_t why_len);
void codec_view_close(struct codec_view *v);

/* Bytes of the body for these dimensions. */
uint64_t codec_body_len(int dense, enum codec_quant q, uint64_t n, uint64_t nb, uint64_t total);

/* buf holds CODEC_HEADER_LEN spare bytes and then body_len bytes of body (malloc'd;
 * ownership passes here). Writes the header, applies zstd when asked and smaller, and
 * returns the payload (malloc'd) in *payload. 0 or CODEC_ERR_ZSTD / CODEC_ERR_NOMEM. */
int codec_finish(const struct codec_params *p, uint64_t n, uint64_t total, uint8_t *buf,
                 size_t body_len, uint8_t **payload, size_t *payload_len);

#ifdef __cplusplus
}
#endif

#endif
