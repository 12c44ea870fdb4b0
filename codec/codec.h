#ifndef AULAC_CODEC_CODEC_H
#define AULAC_CODEC_CODEC_H
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Update compression (ARCHITECTURE §5): block top-k + per-block quantization + zstd.
 *
 * The flat fp32 vector is cut into blocks of block_size values (the last block may be
 * short). In each block the k_per_block values of largest magnitude are kept (ties go
 * to the lower index; exact zeros are never kept, so a block may keep fewer), their
 * in-block positions are stored as u16 gaps and their values quantized against a
 * per-block fp32 scale. k_per_block >= block_size is dense mode: every value, no
 * positions. A zstd frame wraps the body when zstd_level > 0 and it helps. The byte
 * layout is in codec/README.md.
 *
 * The decoder treats the payload as hostile: it validates the whole payload before it
 * writes a single float of the accumulator. */

/* Error codes (range -1300..-1399). */
#define CODEC_ERR_ARG        (-1300) /* NULL pointer, or error feedback without a residual */
#define CODEC_ERR_PARAMS     (-1301) /* codec_params out of range */
#define CODEC_ERR_NOMEM      (-1302)
#define CODEC_ERR_NONFINITE  (-1303) /* encode: NaN/Inf in delta + residual */
#define CODEC_ERR_TOO_LARGE  (-1304) /* n over CODEC_MAX_N */
#define CODEC_ERR_ZSTD       (-1305) /* compression failed */
#define CODEC_ERR_IO         (-1306) /* encode into a file: a read or write failed (errno) */
#define CODEC_ERR_TRUNCATED  (-1310) /* decode: fewer bytes than the header or body needs */
#define CODEC_ERR_MAGIC      (-1311) /* not a codec payload */
#define CODEC_ERR_VERSION    (-1312) /* unknown format version */
#define CODEC_ERR_HEADER     (-1313) /* header fields out of range (quant, block size, flags) */
#define CODEC_ERR_LENGTH     (-1314) /* vector length differs from the expected one */
#define CODEC_ERR_COUNT      (-1315) /* per-block or total count out of range */
#define CODEC_ERR_INDEX      (-1316) /* a position outside its block */
#define CODEC_ERR_SCALE      (-1317) /* a scale negative, NaN, Inf or too large */
#define CODEC_ERR_VALUE      (-1318) /* a value code the encoder never emits (NaN, -128...) */
#define CODEC_ERR_FRAME      (-1319) /* zstd frame malformed, size undeclared or over bound */
#define CODEC_ERR_TRAILING   (-1320) /* bytes after the payload's end */
#define CODEC_ERR_NO_CUDA    (-1330) /* built without CUDA, or no device */
#define CODEC_ERR_CUDA       (-1331) /* a CUDA runtime call failed (why/log says which) */

#define CODEC_FORMAT_VERSION 1
#define CODEC_MAX_BLOCK      65536u           /* in-block positions are u16 */
#define CODEC_MAX_N          (UINT64_C(1) << 36)
#define CODEC_HEADER_LEN     40

enum codec_quant {
    CODEC_QUANT_FP32 = 0,
    CODEC_QUANT_INT8 = 1,       /* q in [-127, 127], scale = max|v| / 127 */
    CODEC_QUANT_FP16 = 2,       /* IEEE half of v / scale, scale = max|v| / 65504 */
    CODEC_QUANT_FP8_E4M3 = 3,   /* OCP E4M3 (max 448) of v / scale, scale = max|v| / 448 */
    CODEC_QUANT_INT4 = 4,       /* q in [-7, 7], two per byte, scale = max|v| / 7 */
    CODEC_QUANT_COUNT = 5
};

struct codec_params {
    uint32_t format_version;    /* CODEC_FORMAT_VERSION */
    uint32_t block_size;        /* 1..CODEC_MAX_BLOCK */
    uint32_t k_per_block;       /* >= 1; >= block_size means dense */
    enum codec_quant quant;
    int zstd_level;             /* 0 = none, 1..22 */
    int error_feedback;         /* 0 or 1 */
};

/* Fills *p with the defaults: v1, B 4096, k 41 (1%), int8, zstd 3, error feedback on. */
void codec_params_default(struct codec_params *p);

/* 0 or CODEC_ERR_PARAMS (why, when not NULL, says which field). */
int codec_params_validate(const struct codec_params *p, char *why, size_t why_len);

/* Compresses delta[0..n). With params->error_feedback, residual (n floats, required)
 * is added to delta before selection and receives what the payload does not carry
 * (dropped values and quantization error): delta + old residual == decoded + new
 * residual up to float rounding. Without it, residual is ignored and may be NULL.
 * *payload is malloc'd (caller frees) and *payload_len set.
 * Errors: CODEC_ERR_ARG, CODEC_ERR_PARAMS, CODEC_ERR_TOO_LARGE, CODEC_ERR_NONFINITE,
 * CODEC_ERR_NOMEM, CODEC_ERR_ZSTD; on error residual is unchanged and *payload NULL. */
int codec_encode(const float *delta, size_t n, const struct codec_params *params,
                 float *residual, uint8_t **payload, size_t *payload_len)
    __attribute__((warn_unused_result));

/* codec_encode, with release(arg, lo, hi) called as the residual is consumed: after the
 * finiteness check has read values [lo, hi), and again after the encode has read and
 * written them, in index order, every CODEC_RELEASE_CHUNK values or so (a multiple of
 * block_size) and at the end. A caller whose residual is a file mapping writes those
 * pages back and drops them; the payload and the residual are codec_encode's bit for bit.
 * release NULL is codec_encode. */
#define CODEC_RELEASE_CHUNK ((size_t)1 << 22)
typedef void (*codec_release_fn)(void *arg, size_t lo, size_t hi);
int codec_encode_released(const float *delta, size_t n, const struct codec_params *params,
                          float *residual, codec_release_fn release, void *arg,
                          uint8_t **payload, size_t *payload_len)
    __attribute__((warn_unused_result));

/* codec_encode_released with the payload written into the file fd at offset `at` (fd
 * open for reading and writing; its bytes from `at` on are replaced and it is truncated
 * to at + *payload_len), byte for byte the payload codec_encode would return, and the
 * residual likewise. A dense payload is never whole in memory: its body is quantized in
 * pieces of about CODEC_RELEASE_CHUNK values written in place, then compressed by a zstd
 * stream (pledged size, same level) from the file into the file behind it and moved over
 * the raw body when smaller; memory O(CODEC_RELEASE_CHUNK + a zstd context). A sparse
 * body (k < B) is at most k/B of the values and is made in memory, then written. Nothing
 * is fsynced (the caller's). Errors: codec_encode's, and CODEC_ERR_IO (errno set) when
 * the file cannot be read or written; the file's contents are then unspecified. */
int codec_encode_fd(const float *delta, size_t n, const struct codec_params *params,
                    float *residual, codec_release_fn release, void *arg, int fd, uint64_t at,
                    uint64_t *payload_len) __attribute__((warn_unused_result));

/* Before codec_encode(): residual[0..n) *= decay when params->error_feedback and
 * decay != 1 (policy compression.uplink.error_feedback_decay, in (0, 1]), so that the
 * residual forgets mass the global model has moved past; otherwise nothing. */
void codec_residual_decay(const struct codec_params *params, float *residual, size_t n,
                          float decay);

/* acc[0..n_expected) += weight * decode(payload). The payload is untrusted: every
 * length, count, position, scale and value code is checked, and the zstd frame must
 * declare its content size, which must match the body the header describes. On any
 * error acc is left untouched, a CODEC_ERR_* code returned and why (when not NULL)
 * names the failing block or field. Temporary memory: the decompressed body only
 * (bounded by the dense size of n_expected), never a dense copy of the vector. */
int codec_decode_accumulate(const uint8_t *payload, size_t len, size_t n_expected,
                            float weight, float *acc, char *why, size_t why_len)
    __attribute__((warn_unused_result));

/* As codec_decode_accumulate(), and also support[i] += weight for every position i the
 * payload carries (every position of a dense payload; a kept value that quantized to
 * zero still counts): with it a receiver averages each coordinate over the senders that
 * carried it (policy compression.uplink.average: senders). support may be NULL; like
 * acc, it is untouched when the payload is refused. */
int codec_decode_accumulate_support(const uint8_t *payload, size_t len, size_t n_expected,
                                    float weight, float *acc, float *support, char *why,
                                    size_t why_len) __attribute__((warn_unused_result));

/* As codec_decode_accumulate_support() with acc[i] += (weight * scale) * decode(payload)[i]
 * (the float product weight * scale times each block's scale) and support[i] += weight:
 * an update scaled down (a clip factor) that still counts with its full weight in the
 * support. scale 1 is codec_decode_accumulate_support() bit for bit. */
int codec_decode_accumulate_scaled(const uint8_t *payload, size_t len, size_t n_expected,
                                   float weight, float scale, float *acc, float *support,
                                   char *why, size_t why_len) __attribute__((warn_unused_result));

/* The L2 norm of decode(payload), computed in double without writing any vector: what a
 * receiver checks against a norm bound before it accumulates. Validates the payload as
 * codec_decode_accumulate does (same errors). */
int codec_payload_norm(const uint8_t *payload, size_t len, size_t n_expected, double *l2,
                       char *why, size_t why_len) __attribute__((warn_unused_result));

/* Reads the header only (no body checks): the parameters the payload was encoded with
 * (zstd_level and error_feedback are reported as 0) and its vector length. Lets a
 * receiver refuse payloads that are denser than its policy allows.
 * Errors: CODEC_ERR_TRUNCATED, CODEC_ERR_MAGIC, CODEC_ERR_VERSION, CODEC_ERR_HEADER. */
int codec_payload_info(const uint8_t *payload, size_t len, struct codec_params *params,
                       uint64_t *n);

/* A payload read block by block, for rules that need every member's value of a
 * coordinate at once (aggregate/robust.h): memory O(block_size) plus a zstd streaming
 * context, never the decompressed body. codec_reader_open checks the header (as
 * codec_payload_info, and n == n_expected); each codec_reader_next checks its block as
 * the decoder does (counts, positions, scales, value codes; the zstd frame as it
 * streams; trailing bytes at the end), so a payload codec_decode_accumulate accepts reads
 * whole, and one it refuses fails at some block with the same CODEC_ERR_* code.
 *   codec_reader_next: values[0..*len) = the next block's decoded values, 0 where the
 *   payload carries nothing; present[0..*len) (may be NULL) = 1 where it carries a value
 *   (every position of a dense payload). *len = 0 at the end (after the last block;
 *   values and present are sized codec_reader_block_size()). */
struct codec_reader;
int codec_reader_open(const uint8_t *payload, size_t len, size_t n_expected,
                      struct codec_reader **out, char *why, size_t why_len)
    __attribute__((warn_unused_result));
uint32_t codec_reader_block_size(const struct codec_reader *r);
int codec_reader_next(struct codec_reader *r, float *values, uint8_t *present, size_t *len,
                      char *why, size_t why_len) __attribute__((warn_unused_result));
void codec_reader_free(struct codec_reader *r);
/* Largest payload codec_encode() can produce for n values with these params
 * (0 if params invalid or n too large). */
size_t codec_max_payload_len(size_t n, const struct codec_params *params);

/* Words for any CODEC_ERR_* code. */
const char *codec_strerror(int code);
const char *codec_quant_name(enum codec_quant q);

#ifdef __cplusplus
}
#endif

#endif
