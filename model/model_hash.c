#include "model/model_hash.h"

#include "crypto/digest.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model_hash assumes a little-endian host: fp32 is hashed as stored in memory"
#endif

void model_hash(const float *params, size_t n, uint8_t out[32])
{
    struct crypto_digest_state s;
    (void)crypto_digest_init(&s, MODEL_HASH_DOMAIN);
    crypto_digest_update(&s, params, n * sizeof(float));
    crypto_digest_final(&s, out);
}
