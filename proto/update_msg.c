#include "proto/update_msg.h"

void update_envelope_set_codec(struct update_envelope *e, const struct codec_params *cp)
{
    e->codec.format_version = cp->format_version;
    e->codec.block_size = cp->block_size;
    e->codec.k_per_block = cp->k_per_block;
    e->codec.quant = (uint32_t)cp->quant;
    e->codec.zstd_level = cp->zstd_level;
    e->codec.error_feedback = cp->error_feedback ? 1 : 0;
}

void update_envelope_to_msg(const struct update_envelope *e,
                            const uint8_t sig[CRYPTO_SIGNATURE_BYTES],
                            Aulac__V1__UpdateHeader *h, Aulac__V1__CodecParams *cp)
{
    *cp = (Aulac__V1__CodecParams)AULAC__V1__CODEC_PARAMS__INIT;
    cp->format_version = e->codec.format_version;
    cp->block_size = e->codec.block_size;
    cp->k_per_block = e->codec.k_per_block;
    cp->quant = e->codec.quant;
    cp->zstd_level = e->codec.zstd_level;
    cp->error_feedback = e->codec.error_feedback != 0;
    *h = (Aulac__V1__UpdateHeader)AULAC__V1__UPDATE_HEADER__INIT;
    /* protobuf-c's fields are not const; packing only reads them */
    h->experiment_id = (char *)e->experiment;
    h->round = e->round;
    h->member_id = (char *)e->member;
    h->base_model_hash = (ProtobufCBinaryData){ CRYPTO_DIGEST_BYTES, (uint8_t *)e->base_model_hash };
    h->payload_hash = (ProtobufCBinaryData){ CRYPTO_DIGEST_BYTES, (uint8_t *)e->payload_hash };
    h->payload_bytes = e->payload_bytes;
    h->samples = e->samples;
    h->tokens = e->tokens;
    h->codec = cp;
    h->signature = (ProtobufCBinaryData){ CRYPTO_SIGNATURE_BYTES, (uint8_t *)sig };
}
