#ifndef AULAC_CODEC_CODEC_CUDA_H
#define AULAC_CODEC_CODEC_CUDA_H
#include <stddef.h>
#include <stdint.h>

#include "codec/codec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The update codec on a CUDA device: encodes the pseudo-gradient where it already is
 * (device memory) and accumulates decoded updates into a device accumulator. Payloads
 * are byte-for-byte the format of codec.h, and the kept set is the CPU codec's (same
 * top-k, same tie rule, same quantizer arithmetic); tests/unit/test_codec_cuda.c checks
 * both against each other.
 *
 * Always linkable: without CUDA (make NO_GPU=1, or no nvcc) every call returns
 * CODEC_ERR_NO_CUDA and codec_cuda_device_count() is 0. CUDA failures are returned as
 * CODEC_ERR_CUDA with the runtime's words in codec_cuda_last_error(); library code never
 * exits. A context is used by one thread at a time. */

struct codec_cuda;

/* Usable CUDA devices; 0 without a driver, a device or CUDA support. */
int codec_cuda_device_count(void);

/* A context on device `device`, working on `stream` (a cudaStream_t; NULL makes the
 * context create and own one). Errors: CODEC_ERR_NO_CUDA, CODEC_ERR_CUDA, CODEC_ERR_NOMEM. */
int codec_cuda_create(int device, void *stream, struct codec_cuda **out);
void codec_cuda_destroy(struct codec_cuda *c);

/* codec_encode() of d_delta[0..n) in device memory; d_residual (device, n floats) as in
 * codec_encode(). *payload is host memory from malloc (caller frees). Returns when the
 * payload is complete and the residual updated. On error the residual is unchanged
 * (CODEC_ERR_NONFINITE is detected before any write) except after CODEC_ERR_CUDA. */
int codec_cuda_encode(struct codec_cuda *c, const float *d_delta, size_t n,
                      const struct codec_params *params, float *d_residual,
                      uint8_t **payload, size_t *payload_len)
    __attribute__((warn_unused_result));

/* codec_decode_accumulate() into d_acc (device memory, n_expected floats). The payload
 * (host memory) is validated completely on the host first, so on any CODEC_ERR_* other
 * than CODEC_ERR_CUDA d_acc is untouched. */
int codec_cuda_decode_accumulate(struct codec_cuda *c, const uint8_t *payload, size_t len,
                                 size_t n_expected, float weight, float *d_acc, char *why,
                                 size_t why_len)
    __attribute__((warn_unused_result));

/* The last CUDA error of this context in words ("" if none; valid until the next call). */
const char *codec_cuda_last_error(const struct codec_cuda *c);

#ifdef __cplusplus
}
#endif

#endif
