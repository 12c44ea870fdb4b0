#ifndef AULAC_MODEL_MODEL_HASH_H
#define AULAC_MODEL_MODEL_HASH_H
#include <stddef.h>
#include <stdint.h>

/* The hash that names a model everywhere (tasks, envelopes, checkpoints, ledger):
 * BLAKE2b-256 over "aulac/model/v1" 0x00 and the flat parameter vector as
 * little-endian fp32 in the canonical tensor order of model/gpt2.h. */
#define MODEL_HASH_DOMAIN "aulac/model/v1"

void model_hash(const float *params, size_t n, uint8_t out[32]);

#endif
