/* codec_cuda.h for builds without CUDA: every entry point says so. With CUDA the real
 * implementation is codec/codec_cuda.cu and this file compiles to nothing. */
#include "codec/codec_cuda.h"

#ifndef AULAC_HAVE_CUDA
#include <stdio.h>

int codec_cuda_device_count(void) { return 0; }

int codec_cuda_create(int device, void *stream, struct codec_cuda **out)
{
    if (out)
        *out = NULL;
    return CODEC_ERR_NO_CUDA;
}

void codec_cuda_destroy(struct codec_cuda *c) {}

int codec_cuda_encode(struct codec_cuda *c, const float *d_delta, size_t n,
                      const struct codec_params *params, float *d_residual,
                      uint8_t **payload, size_t *payload_len)
{
    if (payload)
        *payload = NULL;
    if (payload_len)
        *payload_len = 0;
    return CODEC_ERR_NO_CUDA;
}

int codec_cuda_decode_accumulate(struct codec_cuda *c, const uint8_t *payload, size_t len,
                                 size_t n_expected, float weight, float *d_acc, char *why,
                                 size_t why_len)
{
    if (why && why_len)
        snprintf(why, why_len, "this build has no CUDA support");
    return CODEC_ERR_NO_CUDA;
}

const char *codec_cuda_last_error(const struct codec_cuda *c)
{
    return "this build has no CUDA support";
}
#else
typedef int codec_cuda_absent_unused;    /* ISO C wants a declaration in every unit */
#endif
