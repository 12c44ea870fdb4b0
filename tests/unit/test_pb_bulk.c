/* Large stream messages without copies (proto/pb.h, proto/rpc.h): pb_split_bulk, the
 * parser of the ModelChunks and ArtifactChunks a client receives, agrees with protobuf-c
 * with the data field first, in the middle and last, cut into slices at every offset (and
 * for some offsets into many slices), and refuses what is not one such message;
 * rpc_buffer_copy_parts copies what it must once and lends the rest, whose release runs
 * exactly once, when gRPC lets go of it. tests/fuzz/fuzz_model_chunk.c goes further. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>

#include "proto/aulac.pb-c.h"
#include "proto/pb.h"
#include "proto/rpc_internal.h"
#include "proto/service.h"

/* bytes[0, len) as a received message cut into slices at the given offsets. */
static struct rpc_msg *msg_cut(const uint8_t *bytes, size_t len, const size_t *cuts,
                               size_t n_cuts)
{
    grpc_slice slices[64];
    size_t n = 0, at = 0;
    assert_true(n_cuts < 63);
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        assert_true(end >= at && end <= len);
        slices[n++] = grpc_slice_from_copied_buffer((const char *)bytes + at, end - at);
        at = end;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n);
    for (size_t i = 0; i < n; i++)
        grpc_slice_unref(slices[i]);
    struct rpc_msg *m = rpc_msg_take(bb);
    assert_non_null(m);
    assert_int_equal(rpc_msg_len(m), len);
    return m;
}

/* A varint at p; its length. */
static size_t varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    for (; v >= 0x80; v >>= 7)
        p[n++] = (uint8_t)(v | 0x80);
    p[n++] = (uint8_t)v;
    return n;
}

/* A ModelChunk whose data field sits where `where` says among the others: 0 first,
 * 1 between offset and round, 2 last. Returns its length in out. */
static size_t model_chunk(uint8_t *out, int where, const uint8_t *data, size_t data_len)
{
    uint8_t hash[32], from[32];
    memset(hash, 0xab, 32);
    memset(from, 0xcd, 32);
    size_t n = 0;
    uint8_t dfield[16];
    size_t dh = varint(dfield, 4 << 3 | 2);
    dh += varint(dfield + dh, data_len);
    if (where == 0) {
        memcpy(out + n, dfield, dh), n += dh;
        memcpy(out + n, data, data_len), n += data_len;
    }
    out[n++] = 1 << 3 | 2, out[n++] = 32, memcpy(out + n, hash, 32), n += 32;
    out[n++] = 2 << 3 | 0, n += varint(out + n, 123456789);          /* total_bytes */
    out[n++] = 3 << 3 | 0, n += varint(out + n, 1u << 20);           /* offset */
    if (where == 1) {
        memcpy(out + n, dfield, dh), n += dh;
        memcpy(out + n, data, data_len), n += data_len;
    }
    out[n++] = 5 << 3 | 0, n += varint(out + n, 7);                  /* round */
    out[n++] = 6 << 3 | 0, out[n++] = 1;                             /* is_update */
    out[n++] = 7 << 3 | 2, out[n++] = 32, memcpy(out + n, from, 32), n += 32;
    n += varint(out + n, 99 << 3 | 5), memset(out + n, 0, 4), n += 4; /* unknown fixed32 */
    if (where == 2) {
        memcpy(out + n, dfield, dh), n += dh;
        memcpy(out + n, data, data_len), n += data_len;
    }
    return n;
}

static void data_field_numbers_are_the_protos(void **state)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(&aulac__v1__model_chunk__descriptor,
                                                        "data");
    assert_non_null(f);
    assert_int_equal(f->id, FED_MODEL_CHUNK_DATA_FIELD);
    assert_int_equal(f->type, PROTOBUF_C_TYPE_BYTES);
    f = protobuf_c_message_descriptor_get_field_by_name(&aulac__v1__artifact_chunk__descriptor,
                                                        "data");
    assert_non_null(f);
    assert_int_equal(f->id, FED_ARTIFACT_CHUNK_DATA_FIELD);
    assert_int_equal(f->type, PROTOBUF_C_TYPE_BYTES);
    f = protobuf_c_message_descriptor_get_field_by_name(&aulac__v1__update_chunk__descriptor,
                                                        "data");
    assert_non_null(f);
    assert_int_equal(f->id, FED_UPDATE_CHUNK_DATA_FIELD);
    assert_int_equal(f->type, PROTOBUF_C_TYPE_BYTES);
}

/* The data field first, in the middle and last, cut at every offset (and, for some, in
 * many slices at once): the same fields as protobuf-c reads from the whole message, and
 * the data where it is. */
static void split_agrees_with_protobuf_c(void **state)
{
    uint8_t data[300], buf[512];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    for (int where = 0; where < 3; where++) {
        size_t len = model_chunk(buf, where, data, sizeof data);
        Aulac__V1__ModelChunk *want = aulac__v1__model_chunk__unpack(NULL, len, buf);
        assert_non_null(want);
        for (size_t cut = 0; cut <= len; cut++) {
            size_t cuts[40];
            size_t n_cuts = 0;
            cuts[n_cuts++] = cut;
            /* and, for some cuts, many more slices after it */
            for (size_t c = cut + 1 + cut % 5; cut % 3 == 0 && c < len && n_cuts < 40; c += 13)
                cuts[n_cuts++] = c;
            struct rpc_msg *m = msg_cut(buf, len, cuts, n_cuts);
            ProtobufCMessage *out;
            size_t off, dlen;
            assert_int_equal(pb_split_bulk(m, &aulac__v1__model_chunk__descriptor,
                                           FED_MODEL_CHUNK_DATA_FIELD, &out, &off, &dlen), 0);
            Aulac__V1__ModelChunk *got = (Aulac__V1__ModelChunk *)out;
            assert_int_equal(got->data.len, 0);
            assert_null(got->data.data);
            assert_int_equal(got->total_bytes, want->total_bytes);
            assert_int_equal(got->offset, want->offset);
            assert_int_equal(got->round, want->round);
            assert_int_equal(got->is_update, want->is_update);
            assert_int_equal(got->model_hash.len, 32);
            assert_memory_equal(got->model_hash.data, want->model_hash.data, 32);
            assert_memory_equal(got->from_model_hash.data, want->from_model_hash.data, 32);
            assert_int_equal(dlen, want->data.len);
            uint8_t back[sizeof data];
            assert_int_equal(rpc_msg_copy(m, off, dlen, back), 0);
            assert_memory_equal(back, want->data.data, dlen);
            protobuf_c_message_free_unpacked(out, NULL);
            rpc_msg_free(m);
        }
        aulac__v1__model_chunk__free_unpacked(want, NULL);
    }
}

/* What pb_call_send_bulk sends (msg's fields, then the data field) splits back. */
static void send_layout_splits_back(void **state)
{
    Aulac__V1__ModelChunk ch = AULAC__V1__MODEL_CHUNK__INIT;
    uint8_t hash[32] = { 1, 2, 3 };
    ch.model_hash.data = hash;
    ch.model_hash.len = 32;
    ch.total_bytes = 1000;
    ch.offset = 200;
    ch.round = 3;
    uint8_t data[200];
    memset(data, 0x5a, sizeof data);
    uint8_t head[128];
    size_t n = protobuf_c_message_pack(&ch.base, head);
    n += varint(head + n, FED_MODEL_CHUNK_DATA_FIELD << 3 | 2);
    n += varint(head + n, sizeof data);
    const struct rpc_part parts[2] = { { head, n, NULL, NULL }, { data, sizeof data, NULL, NULL } };
    grpc_byte_buffer *bb = rpc_buffer_copy_parts(parts, 2);
    assert_non_null(bb);
    struct rpc_msg *m = rpc_msg_take(bb);
    assert_non_null(m);
    ProtobufCMessage *out;
    size_t off, dlen;
    assert_int_equal(pb_split_bulk(m, &aulac__v1__model_chunk__descriptor,
                                   FED_MODEL_CHUNK_DATA_FIELD, &out, &off, &dlen), 0);
    Aulac__V1__ModelChunk *got = (Aulac__V1__ModelChunk *)out;
    assert_int_equal(got->offset, 200);
    assert_int_equal(got->total_bytes, 1000);
    assert_int_equal(got->round, 3);
    assert_int_equal(off, n);
    assert_int_equal(dlen, sizeof data);
    /* protobuf-c reads the same bytes as the same message, data included */
    uint8_t whole[512];
    assert_int_equal(rpc_msg_copy(m, 0, rpc_msg_len(m), whole), 0);
    Aulac__V1__ModelChunk *pc = aulac__v1__model_chunk__unpack(NULL, rpc_msg_len(m), whole);
    assert_non_null(pc);
    assert_int_equal(pc->data.len, sizeof data);
    assert_memory_equal(pc->data.data, data, sizeof data);
    aulac__v1__model_chunk__free_unpacked(pc, NULL);
    protobuf_c_message_free_unpacked(out, NULL);
    rpc_msg_free(m);
}

static int split(const uint8_t *buf, size_t len)
{
    struct rpc_msg *m = msg_cut(buf, len, (size_t[]){ len / 2 }, 1);
    ProtobufCMessage *out = NULL;
    size_t off = 9, dlen = 9;
    int rc = pb_split_bulk(m, &aulac__v1__model_chunk__descriptor, FED_MODEL_CHUNK_DATA_FIELD,
                           &out, &off, &dlen);
    if (rc != 0) {
        assert_null(out);
        assert_int_equal(off, 0);
        assert_int_equal(dlen, 0);
    } else {
        protobuf_c_message_free_unpacked(out, NULL);
    }
    rpc_msg_free(m);
    return rc;
}

static void bad_messages_refused(void **state)
{
    static uint8_t b[PB_BULK_MAX_REST + 64];
    /* empty: a valid message with nothing set */
    assert_int_equal(split(b, 0), 0);
    /* the data field twice */
    size_t n = 0;
    b[n++] = 4 << 3 | 2, b[n++] = 1, b[n++] = 'x';
    b[n++] = 4 << 3 | 2, b[n++] = 1, b[n++] = 'y';
    assert_int_equal(split(b, n), PB_ERR_MALFORMED);
    /* the data field as a varint */
    n = 0;
    b[n++] = 4 << 3 | 0, b[n++] = 1;
    assert_int_equal(split(b, n), PB_ERR_MALFORMED);
    /* field number 0 */
    n = 0;
    b[n++] = 0 << 3 | 0, b[n++] = 1;
    assert_int_equal(split(b, n), PB_ERR_MALFORMED);
    /* a group (wire type 3) and wire type 7 */
    b[0] = 9 << 3 | 3;
    assert_int_equal(split(b, 1), PB_ERR_MALFORMED);
    b[0] = 9 << 3 | 7;
    assert_int_equal(split(b, 1), PB_ERR_MALFORMED);
    /* a length past the end, for data and for another field */
    n = 0;
    b[n++] = 4 << 3 | 2, b[n++] = 10, b[n++] = 'x';
    assert_int_equal(split(b, n), PB_ERR_MALFORMED);
    b[0] = 1 << 3 | 2;
    assert_int_equal(split(b, n), PB_ERR_MALFORMED);
    /* a truncated tag, varint and fixed64 */
    b[0] = 0x80;
    assert_int_equal(split(b, 1), PB_ERR_MALFORMED);
    b[0] = 2 << 3 | 0, b[1] = 0x80;
    assert_int_equal(split(b, 2), PB_ERR_MALFORMED);
    b[0] = 9 << 3 | 1;
    assert_int_equal(split(b, 5), PB_ERR_MALFORMED);
    /* a varint of 11 bytes, and one that overflows 64 bits in its 10th */
    b[0] = 2 << 3 | 0;
    memset(b + 1, 0xff, 10), b[11] = 1;
    assert_int_equal(split(b, 12), PB_ERR_MALFORMED);
    memset(b + 1, 0xff, 9), b[10] = 2;
    assert_int_equal(split(b, 11), PB_ERR_MALFORMED);
    /* a known field of the wrong type: protobuf-c refuses the rest */
    n = 0;
    b[n++] = 1 << 3 | 0, b[n++] = 5;   /* model_hash as a varint */
    assert_int_equal(split(b, n), PB_ERR_MALFORMED);
    /* the other fields over PB_BULK_MAX_REST (an unknown bytes field), data or not */
    n = 0;
    n += varint(b + n, 50 << 3 | 2);
    n += varint(b + n, PB_BULK_MAX_REST);
    memset(b + n, 'z', PB_BULK_MAX_REST), n += PB_BULK_MAX_REST;
    assert_int_equal(split(b, n), PB_ERR_TOO_LARGE);
    /* ... and exactly PB_BULK_MAX_REST is fine (tag 2 bytes, length 3) */
    n = 0;
    n += varint(b + n, 50 << 3 | 2);
    n += varint(b + n, PB_BULK_MAX_REST - 5);
    memset(b + n, 'z', PB_BULK_MAX_REST - 5), n += PB_BULK_MAX_REST - 5;
    assert_int_equal(n, PB_BULK_MAX_REST);
    assert_int_equal(split(b, n), 0);
}

static int released;
static void count_release(void *arg)
{
    released += *(int *)arg;
}

/* Lent parts are referred to, not copied: released once, when the last reference to the
 * message goes; copied parts are copied (their buffer may change at once). */
static void lent_parts_released_once(void **state)
{
    uint8_t a[10], b[1000], c[7];
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    memset(c, 'c', sizeof c);
    int one = 1, ten = 10;
    released = 0;
    const struct rpc_part parts[4] = { { a, sizeof a, NULL, NULL },
                                       { b, sizeof b, count_release, &one },
                                       { c, sizeof c, NULL, NULL },
                                       { b, 100, count_release, &ten } };
    grpc_byte_buffer *bb = rpc_buffer_copy_parts(parts, 4);
    assert_non_null(bb);
    memset(a, 'x', sizeof a);   /* copied: the message keeps 'a' */
    assert_int_equal(released, 0);
    grpc_byte_buffer *other = grpc_byte_buffer_copy(bb);   /* a second reference */
    grpc_byte_buffer_destroy(bb);
    assert_int_equal(released, 0);
    struct rpc_msg *m = rpc_msg_take(other);
    assert_non_null(m);
    assert_int_equal(rpc_msg_len(m), 10 + 1000 + 7 + 100);
    uint8_t got[1117];
    assert_int_equal(rpc_msg_copy(m, 0, sizeof got, got), 0);
    assert_int_equal(got[0], 'a');
    assert_int_equal(got[9], 'a');
    assert_int_equal(got[10], 'b');
    assert_int_equal(got[1010], 'c');
    assert_int_equal(got[1017], 'b');
    assert_int_equal(rpc_msg_copy(m, 1000, 118, got), RPC_ERR_INVALID_ARG);
    assert_int_equal(released, 0);
    rpc_msg_free(m);
    assert_int_equal(released, 11);
    /* only lent parts, and none */
    released = 0;
    const struct rpc_part lent[1] = { { b, sizeof b, count_release, &one } };
    bb = rpc_buffer_copy_parts(lent, 1);
    assert_int_equal(grpc_byte_buffer_length(bb), sizeof b);
    grpc_byte_buffer_destroy(bb);
    assert_int_equal(released, 1);
    bb = rpc_buffer_copy_parts(NULL, 0);
    assert_int_equal(grpc_byte_buffer_length(bb), 0);
    grpc_byte_buffer_destroy(bb);
    /* a send that never starts releases what it was lent */
    released = 0;
    rpc_parts_release(parts, 4);
    assert_int_equal(released, 11);
}

int main(void)
{
    grpc_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_field_numbers_are_the_protos),
        cmocka_unit_test(split_agrees_with_protobuf_c),
        cmocka_unit_test(send_layout_splits_back),
        cmocka_unit_test(bad_messages_refused),
        cmocka_unit_test(lent_parts_released_once),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    grpc_shutdown();
    return rc;
}
