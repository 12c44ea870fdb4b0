/* Ledger reads over RPC: signed checkpoints, consistency and inclusion proofs, and
 * pages of entries and checkpoints, each from the LMDB log (ledger/ledger.h). */
#include "coordinator/service_ledger.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ledger/ledger.h"
#include "proto/pb.h"
#include "proto/service_ledger.h"

static void finish_error(struct rpc_call *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finish_error(struct rpc_call *call, grpc_status_code code, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rpc_call_finish(call, code, msg, NULL, 0);
}

static void storage_error(struct rpc_call *call, const char *what, int rc)
{
    log_error("ledger RPC: %s: %s", what, ledger_strerror(rc));
    finish_error(call, GRPC_STATUS_INTERNAL, "%s: %s", what, ledger_strerror(rc));
}

/* Size of the latest stored checkpoint (0 when none yet). */
static int latest_size(struct coord *c, uint64_t *size)
{
    char *note = NULL;
    int rc = ledger_checkpoint_get(c->ledger, LEDGER_LATEST, 0, &note, NULL, size);
    free(note);
    if (rc == LEDGER_ERR_NOT_FOUND) {
        *size = 0;
        return 0;
    }
    return rc;
}

void service_get_checkpoint(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__checkpoint_request__descriptor, &in) != 0)
        return;
    Aulac__V1__CheckpointRequest *q = (Aulac__V1__CheckpointRequest *)in;
    char *note = NULL;
    uint64_t found = 0;
    int rc = ledger_checkpoint_get(c->ledger, q->have_size ? q->size : LEDGER_LATEST, 0, &note,
                                   NULL, &found);
    if (rc == LEDGER_ERR_NOT_FOUND) {
        if (q->have_size)
            finish_error(call, GRPC_STATUS_NOT_FOUND, "no checkpoint of tree size %" PRIu64
                         " is stored (one is stored per commit); ask for the latest", q->size);
        else
            finish_error(call, GRPC_STATUS_NOT_FOUND, "no checkpoint is stored yet");
    } else if (rc != 0) {
        storage_error(call, "reading a checkpoint", rc);
    } else {
        Aulac__V1__Checkpoint r = AULAC__V1__CHECKPOINT__INIT;
        r.note = note;
        r.size = found;
        pb_call_finish(call, &r.base);
    }
    free(note);
    protobuf_c_message_free_unpacked(in, NULL);
}

/* Finishes the call with a proof; the checkpoint of size is attached when stored. */
static void finish_proof(struct coord *c, struct rpc_call *call, uint64_t old_size,
                         uint64_t size, uint8_t (*proof)[32], size_t len,
                         const uint8_t *leaf_hash)
{
    ProtobufCBinaryData items[MERKLE_PROOF_MAX];
    for (size_t i = 0; i < len; i++) {
        items[i].data = proof[i];
        items[i].len = 32;
    }
    char *note = NULL;
    if (ledger_checkpoint_get(c->ledger, size, 0, &note, NULL, NULL) != 0)
        note = NULL;
    Aulac__V1__Proof r = AULAC__V1__PROOF__INIT;
    r.old_size = old_size;
    r.size = size;
    r.hashes = items;
    r.n_hashes = len;
    r.checkpoint = note ? note : "";
    if (leaf_hash) {
        r.leaf_hash.data = (uint8_t *)leaf_hash;
        r.leaf_hash.len = 32;
    }
    pb_call_finish(call, &r.base);
    free(note);
}

void service_get_consistency_proof(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__consistency_proof_request__descriptor, &in) != 0)
        return;
    Aulac__V1__ConsistencyProofRequest *q = (Aulac__V1__ConsistencyProofRequest *)in;
    uint64_t old_size = q->old_size, new_size = q->new_size, size = 0;
    protobuf_c_message_free_unpacked(in, NULL);
    int rc = ledger_size(c->ledger, &size);
    if (rc == 0 && new_size == 0)
        rc = latest_size(c, &new_size);
    if (rc != 0) {
        storage_error(call, "reading the ledger size", rc);
        return;
    }
    if (new_size > size || old_size > new_size) {
        finish_error(call, GRPC_STATUS_OUT_OF_RANGE, "no consistency proof from size %"
                     PRIu64 " to %" PRIu64 ": the ledger has %" PRIu64 " entries and "
                     "the old size may not exceed the new", old_size, new_size, size);
        return;
    }
    uint8_t proof[MERKLE_PROOF_MAX][32];
    size_t len = MERKLE_PROOF_MAX;
    rc = ledger_consistency_proof(c->ledger, old_size, new_size, proof, &len);
    if (rc != 0) {
        storage_error(call, "making a consistency proof", rc);
        return;
    }
    finish_proof(c, call, old_size, new_size, proof, len, NULL);
}

void service_get_inclusion_proof(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__inclusion_proof_request__descriptor, &in) != 0)
        return;
    Aulac__V1__InclusionProofRequest *q = (Aulac__V1__InclusionProofRequest *)in;
    uint64_t index = q->index, tree = q->size, size = 0;
    protobuf_c_message_free_unpacked(in, NULL);
    int rc = ledger_size(c->ledger, &size);
    if (rc == 0 && tree == 0)
        rc = latest_size(c, &tree);
    if (rc != 0) {
        storage_error(call, "reading the ledger size", rc);
        return;
    }
    if (tree > size || index >= tree) {
        finish_error(call, GRPC_STATUS_OUT_OF_RANGE, "no inclusion proof of entry %"
                     PRIu64 " in the tree of size %" PRIu64 ": the ledger has %" PRIu64
                     " entries (indexes 0..size-1)", index, tree, size);
        return;
    }
    uint8_t proof[MERKLE_PROOF_MAX][32], leaf[32];
    size_t len = MERKLE_PROOF_MAX;
    rc = ledger_inclusion_proof(c->ledger, index, tree, proof, &len);
    if (rc == 0)
        rc = ledger_leaf_hash(c->ledger, index, leaf);
    if (rc != 0) {
        storage_error(call, "making an inclusion proof", rc);
        return;
    }
    finish_proof(c, call, index, tree, proof, len, leaf);
}

void service_get_entries(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__entries_request__descriptor, &in) != 0)
        return;
    Aulac__V1__EntriesRequest *q = (Aulac__V1__EntriesRequest *)in;
    uint64_t from = q->from, count = q->count, size = 0;
    protobuf_c_message_free_unpacked(in, NULL);
    if (count == 0 || count > FED_LEDGER_PAGE_ITEMS)
        count = FED_LEDGER_PAGE_ITEMS;
    int rc = ledger_size(c->ledger, &size);
    if (rc != 0) {
        storage_error(call, "reading the ledger size", rc);
        return;
    }
    size_t n = from < size ? (size_t)(size - from < count ? size - from : count) : 0;
    Aulac__V1__LedgerEntry *rows = calloc(n + 1, sizeof *rows);
    Aulac__V1__LedgerEntry **ptrs = calloc(n + 1, sizeof *ptrs);
    size_t got = 0, bytes = 0;
    if (!rows || !ptrs) {
        rc = LEDGER_ERR_NOMEM;
    } else {
        for (; got < n; got++) {
            uint8_t *data;
            size_t len;
            if ((rc = ledger_get(c->ledger, from + got, &data, &len)) != 0)
                break;
            if (bytes + len > FED_LEDGER_PAGE_BYTES && got > 0) {
                free(data);
                break;
            }
            if (len > FED_LEDGER_PAGE_BYTES) {
                free(data);
                for (size_t i = 0; i < got; i++)
                    free(rows[i].data.data);
                free(rows);
                free(ptrs);
                finish_error(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "entry %" PRIu64 " is %zu "
                             "bytes, more than a reply can carry; read it from the data "
                             "directory (aulac ledger show --data-dir)", from + got, len);
                return;
            }
            aulac__v1__ledger_entry__init(&rows[got]);
            rows[got].index = from + got;
            rows[got].data.data = data;
            rows[got].data.len = len;
            ptrs[got] = &rows[got];
            bytes += len;
        }
    }
    if (rc != 0) {
        storage_error(call, "reading entries", rc);
    } else {
        Aulac__V1__EntriesPage r = AULAC__V1__ENTRIES_PAGE__INIT;
        r.entries = ptrs;
        r.n_entries = got;
        r.size = size;
        pb_call_finish(call, &r.base);
    }
    for (size_t i = 0; rows && i < got; i++)
        free(rows[i].data.data);
    free(rows);
    free(ptrs);
}

struct ckpt_page {
    Aulac__V1__Checkpoint *rows;
    Aulac__V1__Checkpoint **ptrs;
    size_t n, max;
    int more;
};

static int add_checkpoint(uint64_t size, const char *note, size_t len, void *arg)
{
    struct ckpt_page *p = arg;
    if (p->n == p->max) {
        p->more = 1;
        return 1;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return LEDGER_ERR_NOMEM;
    memcpy(copy, note, len);
    copy[len] = '\0';
    aulac__v1__checkpoint__init(&p->rows[p->n]);
    p->rows[p->n].size = size;
    p->rows[p->n].note = copy;
    p->ptrs[p->n] = &p->rows[p->n];
    p->n++;
    return 0;
}

void service_get_checkpoints(struct rpc_call *call, void *ctx)
{
    struct coord *c = ctx;
    ProtobufCMessage *in;
    if (pb_call_recv(call, &aulac__v1__checkpoints_request__descriptor, &in) != 0)
        return;
    Aulac__V1__CheckpointsRequest *q = (Aulac__V1__CheckpointsRequest *)in;
    struct ckpt_page p = { .max = q->count && q->count < FED_LEDGER_PAGE_ITEMS ? q->count
                                                                             : FED_LEDGER_PAGE_ITEMS };
    uint64_t from = q->from_size;
    protobuf_c_message_free_unpacked(in, NULL);
    p.rows = calloc(p.max, sizeof *p.rows);
    p.ptrs = calloc(p.max, sizeof *p.ptrs);
    int rc = p.rows && p.ptrs ? ledger_checkpoint_each(c->ledger, from, add_checkpoint, &p)
                              : LEDGER_ERR_NOMEM;
    if (rc < 0) {
        storage_error(call, "reading checkpoints", rc);
    } else {
        Aulac__V1__CheckpointsPage r = AULAC__V1__CHECKPOINTS_PAGE__INIT;
        r.checkpoints = p.ptrs;
        r.n_checkpoints = p.n;
        r.more = p.more;
        pb_call_finish(call, &r.base);
    }
    for (size_t i = 0; i < p.n; i++)
        free(p.rows[i].note);
    free(p.rows);
    free(p.ptrs);
}

/* --- receipts ----------------------------------------------------------------------- */

void receipt_ledger_fill(struct coord *c, const struct update_check *u, Aulac__V1__Receipt *r,
                         struct receipt_ledger *rl)
{
    memset(rl, 0, sizeof *rl);
    size_t len = 0, proof_len = MERKLE_PROOF_MAX;
    uint64_t tree = 0;
    int rc = ledger_get(c->ledger, u->ledger_index, &rl->entry, &len);
    if (rc == 0)
        rc = ledger_checkpoint_get(c->ledger, u->ledger_size, 1, &rl->note, NULL, &tree);
    if (rc == 0)
        rc = ledger_inclusion_proof(c->ledger, u->ledger_index, tree, rl->proof, &proof_len);
    if (rc != 0) {
        log_warn("the receipt for ledger entry %" PRIu64 " goes without its checkpoint and "
                 "inclusion proof: %s", u->ledger_index, ledger_strerror(rc));
        receipt_ledger_free(rl);
        return;
    }
    for (size_t i = 0; i < proof_len; i++) {
        rl->items[i].data = rl->proof[i];
        rl->items[i].len = 32;
    }
    r->ledger_entry.data = rl->entry;
    r->ledger_entry.len = len;
    r->checkpoint = rl->note;
    r->inclusion_proof = rl->items;
    r->n_inclusion_proof = proof_len;
}

void receipt_ledger_free(struct receipt_ledger *rl)
{
    free(rl->entry);
    free(rl->note);
    rl->entry = NULL;
    rl->note = NULL;
}
