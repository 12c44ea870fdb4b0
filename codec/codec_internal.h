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

/* Steps 1-4 of codec/README.md "Decoding hostile payloads", without decompressing:
 * the header (and n == n_expected), total, body_len, and the body's framing: a raw body
 * of exactly body_len bytes, or one zstd frame that declares body_len, has a window of
 * at most 2^CODEC_ZSTD_WINDOW_LOG_MAX bytes and ends exactly at the payload's end.
 * *nb = blocks; *frame_len = bytes after the header. 0 or a CODEC_ERR_* with why. */
#define CODEC_ZSTD_WINDOW_LOG_MAX 27
int codec_payload_check(const uint8_t *payload, size_t len, size_t n_expected,
                        struct codec_header *h, uint64_t *nb, size_t *frame_len, char *why,
                        size_t why_len);

/* One block of a payload: the only code that reads body bytes a sender chose is
 * codec_block_head (its count and scale) and codec_block_body (its positions and value
 * codes); the whole-payload validator (codec_view_open) and the streaming codec_reader
 * both call them, block after block. */
struct codec_block {
    uint64_t index;             /* block number */
    uint32_t len;               /* values the block covers (block_size; the last may be short) */
    uint32_t count;             /* values it carries (dense: len) */
    float scale;                /* its scale (1 for fp32) */
    uint64_t first;             /* index of its first value in the values section */
    uint32_t vskip;             /* int4: first & 1 (values points at the byte of value first) */
    const uint8_t *gaps;        /* sparse: count u16 gaps; dense: NULL */
    const uint8_t *values;      /* the byte holding value `first` */
};

/* Checks block b's scale (scale: 4 bytes; ignored for fp32) and, sparse, its count
 * (count: 2 bytes; ignored dense) given sum = the counts of the blocks before it; fills
 * blk except gaps and values. CODEC_ERR_SCALE or CODEC_ERR_COUNT. */
int codec_block_head(const struct codec_header *h, uint64_t b, const uint8_t *count,
                     const uint8_t *scale, uint64_t sum, struct codec_block *blk, char *why,
                     size_t why_len);
/* Bytes of the values section the block's values occupy, from the byte holding value
 * first (int4 blocks may share a byte with the block before or after). */
uint64_t codec_block_value_bytes(const struct codec_header *h, const struct codec_block *blk);
/* Byte offset of value j in the values section. */
uint64_t codec_value_offset(enum codec_quant q, uint64_t j);
/* Checks the block's positions (inside the block) and value codes (never-emitted codes;
 * the spare int4 nibble in the block holding the last value). CODEC_ERR_INDEX or
 * CODEC_ERR_VALUE. */
int codec_block_body(const struct codec_header *h, const struct codec_block *blk, char *why,
                     size_t why_len);
/* A checked block decoded: values[0..len) = code * scale, 0 where nothing is carried;
 * present (may be NULL) = 1 where a value is carried. */
void codec_block_decode(const struct codec_header *h, const struct codec_block *blk,
                        float *values, uint8_t *present);

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
