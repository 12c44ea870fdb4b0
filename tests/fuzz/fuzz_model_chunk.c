/* libFuzzer target: pb_split_bulk (proto/pb.h), the parser of a received ModelChunk (and
 * ArtifactChunk) straight from the slices gRPC read it into, on hostile bytes cut into
 * hostile slices. Input: byte 0's low 3 bits say how many cut bytes follow (each cuts the
 * message at byte * length / 256); the rest is the message. Every input must either split
 * or be refused with PB_ERR_MALFORMED, PB_ERR_TOO_LARGE or RPC_ERR_NOMEM and nothing set;
 * a split message must be one protobuf-c also reads, with the same fields, and the data it
 * locates must be protobuf-c's data, byte for byte.
 *
 *   scripts/fuzz.sh builds it with proto/pb.c, proto/rpc_*.c and the generated
 *   aulac.pb-c.c, against gRPC and protobuf-c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "proto/aulac.pb-c.h"
#include "proto/pb.h"
#include "proto/rpc_internal.h"
#include "proto/service.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    grpc_init();
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

static void same_bytes(ProtobufCBinaryData a, ProtobufCBinaryData b)
{
    if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    if (size < 1)
        return 0;
    size_t n_cuts = in[0] & 7;
    if (size < 1 + n_cuts)
        return 0;
    const uint8_t *msg = in + 1 + n_cuts;
    const size_t len = size - 1 - n_cuts;
    size_t cuts[8];
    for (size_t i = 0; i < n_cuts; i++)
        cuts[i] = (size_t)in[1 + i] * len / 256;
    qsort(cuts, n_cuts, sizeof cuts[0], cmp_size);
    grpc_slice slices[9];
    size_t at = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        slices[i] = grpc_slice_from_copied_buffer((const char *)msg + at, end - at);
        at = end;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n_cuts + 1);
    for (size_t i = 0; i <= n_cuts; i++)
        grpc_slice_unref(slices[i]);
    struct rpc_msg *m = rpc_msg_take(bb);
    if (!m || rpc_msg_len(m) != len)
        abort();

    ProtobufCMessage *out = (ProtobufCMessage *)1;
    size_t off = 1, dlen = 1;
    int rc = pb_split_bulk(m, &aulac__v1__model_chunk__descriptor, FED_MODEL_CHUNK_DATA_FIELD,
                           &out, &off, &dlen);
    Aulac__V1__ModelChunk *pc = aulac__v1__model_chunk__unpack(NULL, len, msg);
    if (rc != 0) {
        if ((rc != PB_ERR_MALFORMED && rc != PB_ERR_TOO_LARGE && rc != RPC_ERR_NOMEM) || out ||
            off || dlen)
            abort();
    } else {
        Aulac__V1__ModelChunk *got = (Aulac__V1__ModelChunk *)out;
        if (!got || !pc || got->data.len || got->data.data || off > len || dlen > len - off)
            abort();
        uint8_t *data = malloc(dlen ? dlen : 1);
        if (!data || rpc_msg_copy(m, off, dlen, data) != 0)
            abort();
        same_bytes((ProtobufCBinaryData){ dlen, data }, pc->data);
        same_bytes(got->model_hash, pc->model_hash);
        same_bytes(got->from_model_hash, pc->from_model_hash);
        if (got->total_bytes != pc->total_bytes || got->offset != pc->offset ||
            got->round != pc->round || got->is_update != pc->is_update)
            abort();
        free(data);
        protobuf_c_message_free_unpacked(out, NULL);
    }
    if (pc)
        aulac__v1__model_chunk__free_unpacked(pc, NULL);
    rpc_msg_free(m);
    return 0;
}
