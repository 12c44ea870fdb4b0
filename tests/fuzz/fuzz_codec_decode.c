/* libFuzzer target: codec_decode_accumulate() on hostile bytes. Every input must either
 * decode (finite results) or fail with a CODEC_ERR_* and leave the accumulator
 * bit-for-bit untouched. The streaming codec_reader must agree: it reads a payload the
 * whole decoder accepts to the end with the same values and carried positions, and
 * fails (a CODEC_ERR_*) on one it refuses. A custom mutator also mutates inside zstd frames (decompress,
 * mutate, recompress) so section checks behind zstd are reached.
 *
 *   clang -fsanitize=fuzzer,address,undefined -I. tests/fuzz/fuzz_codec_decode.c \
 *         codec/codec.c codec/reader.c common/why.c -lzstd -lm -o fuzz_codec_decode
 *                                                              (scripts/fuzz.sh does this) */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "codec/codec.h"

#define MAX_N (1u << 20)

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Decode against the length the header claims (when small), so the fuzzer gets past
     * the length check; otherwise against a fixed one. */
    uint64_t n = 0;
    struct codec_params p;
    size_t n_expected = 1000;
    if (codec_payload_info(data, size, &p, &n) == 0 && n <= MAX_N)
        n_expected = (size_t)n;
    float *acc = malloc((n_expected ? n_expected : 1) * sizeof *acc);
    float *copy = malloc((n_expected ? n_expected : 1) * sizeof *copy);
    if (!acc || !copy)
        abort();
    for (size_t i = 0; i < n_expected; i++)
        acc[i] = copy[i] = (float)(i % 11) - 5.0f;
    char why[256];
    int rc = codec_decode_accumulate(data, size, n_expected, 0.75f, acc, why, sizeof why);
    if (rc) {
        if (rc > -1300 || rc < -1399 || why[0] == '\0')
            abort();
        if (memcmp(acc, copy, n_expected * sizeof *acc) != 0)
            abort();    /* an error must leave the accumulator untouched */
    } else {
        for (size_t i = 0; i < n_expected; i++)
            if (!isfinite(acc[i]))
                abort();
    }
    /* The reader: values and support against a weight-1 decode into zeros. */
    for (size_t i = 0; i < n_expected; i++)
        acc[i] = copy[i] = 0.0f;
    int whole = codec_decode_accumulate_support(data, size, n_expected, 1.0f, acc, copy, NULL, 0);
    if ((whole == 0) != (rc == 0))
        abort();
    struct codec_reader *r;
    int rd = codec_reader_open(data, size, n_expected, &r, why, sizeof why);
    if (rd == 0) {
        uint32_t B = codec_reader_block_size(r);
        float *v = malloc(B * sizeof *v);
        uint8_t *pr = malloc(B);
        if (!v || !pr)
            abort();
        size_t at = 0, got;
        while ((rd = codec_reader_next(r, v, pr, &got, why, sizeof why)) == 0 && got) {
            if (got > B || at + got > n_expected)
                abort();
            for (size_t j = 0; j < got; j++)
                if (whole == 0 && (v[j] != acc[at + j] || pr[j] != (copy[at + j] != 0.0f)))
                    abort();
            at += got;
        }
        if (rd == 0 && at != n_expected)
            abort();
        free(v);
        free(pr);
        codec_reader_free(r);
    }
    if (rd != 0 && (rd > -1300 || rd < -1399 || why[0] == '\0'))
        abort();
    if ((rd == 0) != (whole == 0))
        abort();        /* the reader accepts exactly what the whole decoder accepts */
    free(acc);
    free(copy);
    return 0;
}

/* Half the time: if the input is a zstd-wrapped payload, mutate the decompressed body
 * and wrap it again with matching sizes. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned seed)
{
    if ((seed & 1) || size <= CODEC_HEADER_LEN || data[7] != 1)
        return LLVMFuzzerMutate(data, size, max_size);
    size_t zlen = size - CODEC_HEADER_LEN;
    unsigned long long body = ZSTD_getFrameContentSize(data + CODEC_HEADER_LEN, zlen);
    if (body == ZSTD_CONTENTSIZE_ERROR || body == ZSTD_CONTENTSIZE_UNKNOWN || body > (1u << 22))
        return LLVMFuzzerMutate(data, size, max_size);
    size_t cap = (size_t)body + 64;
    uint8_t *raw = malloc(cap);
    if (!raw)
        return LLVMFuzzerMutate(data, size, max_size);
    size_t got = ZSTD_decompress(raw, cap, data + CODEC_HEADER_LEN, zlen);
    if (ZSTD_isError(got)) {
        free(raw);
        return LLVMFuzzerMutate(data, size, max_size);
    }
    got = LLVMFuzzerMutate(raw, got, cap);
    size_t bound = ZSTD_compressBound(got);
    if (CODEC_HEADER_LEN + bound > max_size) {
        free(raw);
        return LLVMFuzzerMutate(data, size, max_size);
    }
    uint8_t *out = malloc(bound);
    size_t z = out ? ZSTD_compress(out, bound, raw, got, 1) : 0;
    if (!out || ZSTD_isError(z)) {
        free(raw);
        free(out);
        return LLVMFuzzerMutate(data, size, max_size);
    }
    memcpy(data + CODEC_HEADER_LEN, out, z);
    uint64_t body_len = got;
    if (seed & 2)       /* usually keep the header consistent with the new body */
        memcpy(data + 32, &body_len, 8);
    free(raw);
    free(out);
    return CODEC_HEADER_LEN + z;
}
