/* codec_reader (codec/codec.h): one payload read block by block, for the aggregation
 * rules that need every member's value of a coordinate at once (aggregate/robust.h).
 *
 * The body's sections are stored column by column (counts | scales | gaps | values), so
 * block b's bytes lie in up to four places. Each section is read by a cursor of its own:
 * a pointer into a raw body, or a zstd stream over the whole frame that skips to the
 * section's start and then delivers its bytes in order (the frame is decompressed once
 * per cursor, at most four times for a sparse body; the later sections skip over the
 * earlier ones). Memory: O(block_size) buffers plus, per zstd cursor, a streaming context
 * whose window is min(frame window, body_len) (2 MiB for a level-3 frame over 2 MiB).
 *
 * Every byte of a block goes through codec_block_head and codec_block_body, the parser
 * codec_decode_accumulate validates with (codec_internal.h), and the framing through
 * codec_payload_check, so the checks and their CODEC_ERR_* codes are the same. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "codec/codec.h"
#include "codec/codec_internal.h"
#include "codec/codec_quant.h"
#include "common/why.h"

struct cursor {
    const uint8_t *raw;         /* raw body: this section's next byte */
    ZSTD_DStream *z;            /* zstd body: a stream over the whole frame */
    ZSTD_inBuffer in;
    uint64_t skip;              /* body bytes before the section, still to skip */
    int ended;                  /* zstd said the frame is complete */
};

struct codec_reader {
    struct codec_header h;
    uint64_t nb;                /* blocks */
    uint64_t b;                 /* the next block */
    uint64_t sum;               /* counts of the blocks read */
    int dense, zstd;
    int failed;                 /* the error a block hit: every later call returns it */
    struct cursor counts, scales, gaps, values;
    uint64_t vnext;             /* offset of the next unread byte of the values section */
    uint8_t carry;              /* int4: the last byte read, which the next block may share */
    uint8_t *gbuf, *vbuf;       /* zstd: one block's gaps and value bytes */
};

static int cursor_open(struct cursor *c, const uint8_t *frame, size_t frame_len, int zstd,
                       uint64_t offset)
{
    memset(c, 0, sizeof *c);
    if (!zstd) {
        c->raw = frame + offset;
        return 0;
    }
    c->z = ZSTD_createDStream();
    if (!c->z)
        return CODEC_ERR_NOMEM;
    if (ZSTD_isError(ZSTD_DCtx_setParameter(c->z, ZSTD_d_windowLogMax,
                                            CODEC_ZSTD_WINDOW_LOG_MAX))) {
        ZSTD_freeDStream(c->z);
        c->z = NULL;
        return CODEC_ERR_NOMEM;
    }
    c->in.src = frame;
    c->in.size = frame_len;
    c->skip = offset;
    return 0;
}

static void cursor_close(struct cursor *c)
{
    if (c->z)
        ZSTD_freeDStream(c->z);
    c->z = NULL;
}

/* Exactly n decompressed bytes into dst (the frame's next ones). */
static int zread(struct cursor *c, uint8_t *dst, size_t n, char *why, size_t why_len)
{
    ZSTD_outBuffer out = {dst, n, 0};
    if (c->ended && n)
        return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame does not decode: short");
    while (out.pos < out.size) {
        size_t in0 = c->in.pos, out0 = out.pos;
        size_t ret = ZSTD_decompressStream(c->z, &out, &c->in);
        if (ZSTD_isError(ret))
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame does not decode: %s",
                            ZSTD_getErrorName(ret));
        if (out.pos < out.size && (ret == 0 || (c->in.pos == in0 && out.pos == out0)))
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame does not decode: short");
        if (ret == 0)
            c->ended = 1;
    }
    return 0;
}

static int cursor_skip(struct cursor *c, char *why, size_t why_len)
{
    uint8_t sink[4096];
    while (c->skip) {
        size_t k = c->skip < sizeof sink ? (size_t)c->skip : sizeof sink;
        int rc = zread(c, sink, k, why, why_len);
        if (rc)
            return rc;
        c->skip -= k;
    }
    return 0;
}

/* The section's next n bytes: in place (raw) or in buf (zstd). */
static int cursor_get(struct cursor *c, size_t n, uint8_t *buf, const uint8_t **out, char *why,
                      size_t why_len)
{
    if (!c->z) {
        *out = c->raw;
        c->raw += n;
        return 0;
    }
    int rc = cursor_skip(c, why, why_len);
    if (!rc && n)
        rc = zread(c, buf, n, why, why_len);
    *out = buf;
    return rc;
}

/* After the last block: the values cursor (the body's last section) must be at the
 * body's end and the frame must end there (its checksum, if any, checked). */
static int frame_end(struct cursor *c, char *why, size_t why_len)
{
    int rc = cursor_skip(c, why, why_len);
    if (rc)
        return rc;
    uint8_t x;
    while (!c->ended) {
        ZSTD_outBuffer out = {&x, 1, 0};
        size_t in0 = c->in.pos;
        size_t ret = ZSTD_decompressStream(c->z, &out, &c->in);
        if (ZSTD_isError(ret))
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame does not decode: %s",
                            ZSTD_getErrorName(ret));
        if (out.pos)
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame holds more than the "
                            "header's body");
        if (ret == 0)
            c->ended = 1;
        else if (c->in.pos == in0)
            return why_fail(why, why_len, CODEC_ERR_FRAME, "zstd frame does not decode: short");
    }
    /* codec_payload_check found the frame's end at the payload's end. */
    if (c->in.pos != c->in.size)
        return why_fail(why, why_len, CODEC_ERR_TRAILING, "%zu bytes after the zstd frame",
                        c->in.size - c->in.pos);
    return 0;
}

void codec_reader_free(struct codec_reader *r)
{
    if (!r)
        return;
    cursor_close(&r->counts);
    cursor_close(&r->scales);
    cursor_close(&r->gaps);
    cursor_close(&r->values);
    free(r->gbuf);
    free(r->vbuf);
    free(r);
}

int codec_reader_open(const uint8_t *payload, size_t len, size_t n_expected,
                      struct codec_reader **out, char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!out)
        return why_fail(why, why_len, CODEC_ERR_ARG, "no reader to return");
    *out = NULL;
    if (!payload)
        return why_fail(why, why_len, CODEC_ERR_ARG, "NULL payload");
    struct codec_reader *r = calloc(1, sizeof *r);
    if (!r)
        return why_fail(why, why_len, CODEC_ERR_NOMEM, "no memory for a payload reader");
    size_t frame_len;
    int rc = codec_payload_check(payload, len, n_expected, &r->h, &r->nb, &frame_len, why,
                                 why_len);
    if (rc) {
        free(r);
        return rc;
    }
    const struct codec_header *h = &r->h;
    const uint8_t *frame = payload + CODEC_HEADER_LEN;
    r->dense = h->k_per_block == h->block_size;
    r->zstd = (h->flags & CODEC_FLAG_ZSTD) != 0;
    const uint64_t counts_len = r->dense ? 0 : 2 * r->nb;
    const uint64_t scales_len = h->quant == CODEC_QUANT_FP32 ? 0 : 4 * r->nb;
    const uint64_t gaps_len = r->dense ? 0 : 2 * h->total;
    rc = 0;
    if (!r->dense)
        rc = cursor_open(&r->counts, frame, frame_len, r->zstd, 0);
    if (!rc && scales_len)
        rc = cursor_open(&r->scales, frame, frame_len, r->zstd, counts_len);
    if (!rc && !r->dense)
        rc = cursor_open(&r->gaps, frame, frame_len, r->zstd, counts_len + scales_len);
    if (!rc)
        rc = cursor_open(&r->values, frame, frame_len, r->zstd,
                         counts_len + scales_len + gaps_len);
    if (!rc && r->zstd) {
        size_t B = h->block_size;
        r->gbuf = malloc(2 * B);
        r->vbuf = malloc(4 * B + 1);
        if (!r->gbuf || !r->vbuf)
            rc = CODEC_ERR_NOMEM;
    }
    if (rc) {
        codec_reader_free(r);
        return why_fail(why, why_len, rc, "no memory for a payload reader");
    }
    *out = r;
    return 0;
}

uint32_t codec_reader_block_size(const struct codec_reader *r)
{
    return r ? r->h.block_size : 0;
}

static int next_block(struct codec_reader *r, float *values, uint8_t *present, size_t *len,
                      char *why, size_t why_len)
{
    const struct codec_header *h = &r->h;
    if (r->b == r->nb) {
        if (!r->dense && r->sum != h->total)
            return why_fail(why, why_len, CODEC_ERR_COUNT, "block counts add up to %llu, header "
                            "says %llu", (unsigned long long)r->sum,
                            (unsigned long long)h->total);
        if (r->zstd) {
            int rc = frame_end(&r->values, why, why_len);
            if (rc)
                return rc;
        }
        r->b++;         /* the end is reported once checked; later calls report it again */
        *len = 0;
        return 0;
    }
    if (r->b > r->nb) {
        *len = 0;
        return 0;
    }
    const uint8_t *cp = NULL, *sp = NULL;
    uint8_t cbuf[2], sbuf[4];
    int rc = 0;
    if (!r->dense)
        rc = cursor_get(&r->counts, 2, cbuf, &cp, why, why_len);
    if (!rc && h->quant != CODEC_QUANT_FP32)
        rc = cursor_get(&r->scales, 4, sbuf, &sp, why, why_len);
    if (rc)
        return rc;
    struct codec_block blk;
    if ((rc = codec_block_head(h, r->b, cp, sp, r->sum, &blk, why, why_len)) != 0)
        return rc;
    if (!r->dense && (rc = cursor_get(&r->gaps, 2 * (size_t)blk.count, r->gbuf, &blk.gaps, why,
                                      why_len)) != 0)
        return rc;
    uint64_t start = codec_value_offset(h->quant, blk.first);
    uint64_t nbytes = codec_block_value_bytes(h, &blk);
    if (nbytes) {
        /* An int4 block may begin in the byte the block before ended in. */
        int shared = start < r->vnext;
        if (!r->zstd) {
            if (shared)
                r->values.raw--;
            rc = cursor_get(&r->values, (size_t)nbytes, NULL, &blk.values, why, why_len);
        } else {
            if (shared)
                r->vbuf[0] = r->carry;
            const uint8_t *got;
            rc = cursor_get(&r->values, (size_t)nbytes - (size_t)shared, r->vbuf + shared, &got,
                            why, why_len);
            blk.values = r->vbuf;
            r->carry = r->vbuf[nbytes - 1];
        }
        if (rc)
            return rc;
        r->vnext = start + nbytes;
    } else {
        blk.values = r->zstd ? r->vbuf : r->values.raw;
    }
    if ((rc = codec_block_body(h, &blk, why, why_len)) != 0)
        return rc;
    codec_block_decode(h, &blk, values, present);
    r->sum += r->dense ? 0 : blk.count;
    r->b++;
    *len = blk.len;
    return 0;
}

int codec_reader_next(struct codec_reader *r, float *values, uint8_t *present, size_t *len,
                      char *why, size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!r || !values || !len)
        return why_fail(why, why_len, CODEC_ERR_ARG, "NULL reader, values or length");
    *len = 0;
    if (r->failed)
        return why_fail(why, why_len, r->failed, "the payload failed at an earlier block");
    int rc = next_block(r, values, present, len, why, why_len);
    if (rc) {
        r->failed = rc;
        *len = 0;
    }
    return rc;
}
