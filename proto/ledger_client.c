#include "proto/ledger_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pb.h"
#include "proto/rpc_internal.h"
#include "proto/service.h"
#include "proto/service_ledger.h"

#define LEDGER_CALL_TIMEOUT_MS 15000

struct fed_ledger {
    struct rpc_channel *ch;
    int64_t timeout_ms;
    int wait_for_ready;
};

int fed_ledger_open(const char *target, const struct rpc_channel_options *ch,
                    int64_t timeout_ms, int wait_for_ready, struct fed_ledger **out)
{
    if (!target || !out || timeout_ms < 0)
        return RPC_ERR_INVALID_ARG;
    *out = NULL;
    struct fed_ledger *c = calloc(1, sizeof *c);
    if (!c)
        return RPC_ERR_NOMEM;
    struct rpc_channel_options o = { 0 };
    if (ch)
        o = *ch;
    if (!o.max_message_bytes)
        o.max_message_bytes = FED_DEFAULT_MAX_MESSAGE_BYTES;
    int rc = rpc_channel_open(target, &o, &c->ch);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->timeout_ms = timeout_ms ? timeout_ms : LEDGER_CALL_TIMEOUT_MS;
    c->wait_for_ready = wait_for_ready;
    *out = c;
    return 0;
}

void fed_ledger_close(struct fed_ledger *c)
{
    if (!c)
        return;
    rpc_channel_close(c->ch);
    free(c);
}

static int call(struct fed_ledger *c, const char *name, const char *path,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
                ProtobufCMessage **reply, struct rpc_status *st)
{
    *reply = NULL;
    rpc_status_set(st, GRPC_STATUS_OK, "", 0);
    if (!c)
        return rpc_fail_named(st, name, RPC_ERR_INVALID_ARG, NULL);
    struct rpc_call_options o = { .timeout_ms = c->timeout_ms,
                                  .wait_for_ready = c->wait_for_ready };
    int rc = pb_unary(c->ch, path, &o, req, desc, reply, st);
    return rc ? rpc_fail_named(st, name, rc, NULL) : 0;
}

int fed_proof_hashes(const ProtobufCBinaryData *items, size_t n, uint8_t (*proof)[32],
                     size_t *proof_len)
{
    if (n > MERKLE_PROOF_MAX || (n && !items))
        return FED_ERR_BAD_REPLY;
    for (size_t i = 0; i < n; i++) {
        if (items[i].len != 32)
            return FED_ERR_BAD_REPLY;
        memcpy(proof[i], items[i].data, 32);
    }
    *proof_len = n;
    return 0;
}

int fed_get_checkpoint(struct fed_ledger *c, int have_size, uint64_t size,
                       Aulac__V1__Checkpoint **reply, struct rpc_status *st)
{
    struct rpc_status local;
    ProtobufCMessage *m;
    if (!reply)
        return RPC_ERR_INVALID_ARG;
    Aulac__V1__CheckpointRequest q = AULAC__V1__CHECKPOINT_REQUEST__INIT;
    q.have_size = have_size != 0;
    q.size = size;
    int rc = call(c, "GetCheckpoint", FED_METHOD_GET_CHECKPOINT, &q.base,
                  &aulac__v1__checkpoint__descriptor, &m, st ? st : &local);
    *reply = (Aulac__V1__Checkpoint *)m;
    return rc;
}

static int proof_call(struct fed_ledger *c, const char *name, const char *path,
                      const ProtobufCMessage *q, Aulac__V1__Proof **reply,
                      uint8_t (*proof)[32], size_t *proof_len, struct rpc_status *st)
{
    struct rpc_status local;
    ProtobufCMessage *m;
    if (!st)
        st = &local;
    if (!reply || !proof || !proof_len)
        return RPC_ERR_INVALID_ARG;
    int rc = call(c, name, path, q, &aulac__v1__proof__descriptor, &m, st);
    *reply = (Aulac__V1__Proof *)m;
    if (rc)
        return rc;
    if (fed_proof_hashes((*reply)->hashes, (*reply)->n_hashes, proof, proof_len) != 0) {
        aulac__v1__proof__free_unpacked(*reply, NULL);
        *reply = NULL;
        return rpc_fail_named(st, name, FED_ERR_BAD_REPLY,
                              "the proof has more than 65 hashes or one that is not 32 bytes");
    }
    return 0;
}

int fed_get_consistency_proof(struct fed_ledger *c, uint64_t old_size, uint64_t new_size,
                              Aulac__V1__Proof **reply, uint8_t (*proof)[32],
                              size_t *proof_len, struct rpc_status *st)
{
    Aulac__V1__ConsistencyProofRequest q = AULAC__V1__CONSISTENCY_PROOF_REQUEST__INIT;
    q.old_size = old_size;
    q.new_size = new_size;
    return proof_call(c, "GetConsistencyProof", FED_METHOD_GET_CONSISTENCY, &q.base, reply,
                      proof, proof_len, st);
}

int fed_get_inclusion_proof(struct fed_ledger *c, uint64_t index, uint64_t size,
                            Aulac__V1__Proof **reply, uint8_t (*proof)[32],
                            size_t *proof_len, struct rpc_status *st)
{
    Aulac__V1__InclusionProofRequest q = AULAC__V1__INCLUSION_PROOF_REQUEST__INIT;
    q.index = index;
    q.size = size;
    return proof_call(c, "GetInclusionProof", FED_METHOD_GET_INCLUSION, &q.base, reply, proof,
                      proof_len, st);
}

int fed_get_entries(struct fed_ledger *c, uint64_t from, uint64_t count,
                    Aulac__V1__EntriesPage **reply, struct rpc_status *st)
{
    struct rpc_status local;
    ProtobufCMessage *m;
    if (!st)
        st = &local;
    if (!reply)
        return RPC_ERR_INVALID_ARG;
    Aulac__V1__EntriesRequest q = AULAC__V1__ENTRIES_REQUEST__INIT;
    q.from = from;
    q.count = count;
    int rc = call(c, "GetEntries", FED_METHOD_GET_ENTRIES, &q.base,
                  &aulac__v1__entries_page__descriptor, &m, st);
    *reply = (Aulac__V1__EntriesPage *)m;
    if (rc)
        return rc;
    Aulac__V1__EntriesPage *p = *reply;
    char why[160] = "";
    if (count && p->n_entries > count)
        snprintf(why, sizeof why, "%zu entries for a request of %" PRIu64, p->n_entries, count);
    for (size_t i = 0; !why[0] && i < p->n_entries; i++)
        if (!p->entries[i] || p->entries[i]->index != from + i)
            snprintf(why, sizeof why, "entry %zu of the page is not index %" PRIu64, i, from + i);
    if (why[0]) {
        aulac__v1__entries_page__free_unpacked(p, NULL);
        *reply = NULL;
        return rpc_fail_named(st, "GetEntries", FED_ERR_BAD_REPLY, why);
    }
    return 0;
}

int fed_get_checkpoints(struct fed_ledger *c, uint64_t from_size, uint32_t count,
                        Aulac__V1__CheckpointsPage **reply, struct rpc_status *st)
{
    struct rpc_status local;
    ProtobufCMessage *m;
    if (!st)
        st = &local;
    if (!reply)
        return RPC_ERR_INVALID_ARG;
    Aulac__V1__CheckpointsRequest q = AULAC__V1__CHECKPOINTS_REQUEST__INIT;
    q.from_size = from_size;
    q.count = count;
    int rc = call(c, "GetCheckpoints", FED_METHOD_GET_CHECKPOINTS, &q.base,
                  &aulac__v1__checkpoints_page__descriptor, &m, st);
    *reply = (Aulac__V1__CheckpointsPage *)m;
    if (rc)
        return rc;
    Aulac__V1__CheckpointsPage *p = *reply;
    uint64_t prev = 0;
    for (size_t i = 0; i < p->n_checkpoints; i++) {
        if (!p->checkpoints[i] || p->checkpoints[i]->size < from_size ||
            (i && p->checkpoints[i]->size <= prev)) {
            aulac__v1__checkpoints_page__free_unpacked(p, NULL);
            *reply = NULL;
            return rpc_fail_named(st, "GetCheckpoints", FED_ERR_BAD_REPLY,
                                  "checkpoints out of order or below the requested size");
        }
        prev = p->checkpoints[i]->size;
    }
    return 0;
}

int fed_get_cosignatures(struct fed_ledger *c, Aulac__V1__CosignaturesReply **reply,
                         struct rpc_status *st)
{
    struct rpc_status local;
    ProtobufCMessage *m;
    if (!reply)
        return RPC_ERR_INVALID_ARG;
    Aulac__V1__CosignaturesRequest q = AULAC__V1__COSIGNATURES_REQUEST__INIT;
    int rc = call(c, "GetCosignatures", FED_METHOD_GET_COSIGNATURES, &q.base,
                  &aulac__v1__cosignatures_reply__descriptor, &m, st ? st : &local);
    *reply = (Aulac__V1__CosignaturesReply *)m;
    return rc;
}

int fed_witness_proof(void *arg, uint64_t old_size, uint64_t new_size, uint8_t (*proof)[32],
                      size_t *proof_len, char *why, size_t why_cap)
{
    Aulac__V1__Proof *p = NULL;
    struct rpc_status st;
    int rc = fed_get_consistency_proof(arg, old_size, new_size, &p, proof, proof_len, &st);
    if (p)
        aulac__v1__proof__free_unpacked(p, NULL);
    if (rc == 0)
        return 0;
    if (why && why_cap)
        snprintf(why, why_cap, "%s", st.details);
    return st.code == GRPC_STATUS_OUT_OF_RANGE ? 1 : -1;
}
